//! The issuer's own app on the customer's phone, signed in as one customer.

use paybridge_api::bank::{
    BankBindingBody, BankLogin, CardBody, CustomerBody, StartWalletBinding, WalletBindingStarted,
    WalletRegistrationStarted,
};
use paybridge_client::BankApp;

use crate::{DeviceError, DeviceResult};

/// How the bank app offers a card to the wallet (flow F1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// A binding address shown as a QR code for the wallet app to scan.
    Qr,
    /// A binding message pushed to the wallet account of the customer.
    Push,
}

impl Offer {
    fn mode(self) -> &'static str {
        match self {
            Offer::Qr => "qr",
            Offer::Push => "push",
        }
    }
}

/// A bank customer signed in to the bank app.
#[derive(Debug, Clone)]
pub struct BankCustomer {
    app: BankApp,
    customer: CustomerBody,
}

impl BankCustomer {
    /// Logs in to the sandbox bank served at `server_url` under `/bank`.
    pub async fn log_in(server_url: &str, username: &str, password: &str) -> DeviceResult<Self> {
        let app = BankApp::of_sandbox_server(server_url);
        let session = app
            .login(&BankLogin {
                username: username.to_owned(),
                password: password.to_owned(),
            })
            .await?;
        Ok(Self {
            app: app.signed_in(session.token),
            customer: session.customer,
        })
    }

    pub fn customer(&self) -> &CustomerBody {
        &self.customer
    }

    /// The typed bank app client, signed in.
    pub fn app(&self) -> &BankApp {
        &self.app
    }

    pub async fn cards(&self) -> DeviceResult<Vec<CardBody>> {
        Ok(self.app.cards().await?.cards)
    }

    /// Card number `index` of the customer's cards, in the bank's order.
    pub async fn card(&self, index: usize) -> DeviceResult<CardBody> {
        self.cards()
            .await?
            .into_iter()
            .nth(index)
            .ok_or_else(|| DeviceError::Unexpected(format!("the customer has no card {index}")))
    }

    /// "Bind to wallet" on a card.
    pub async fn offer_binding(
        &self,
        card: &CardBody,
        how: Offer,
    ) -> DeviceResult<WalletBindingStarted> {
        let body = StartWalletBinding {
            mode: how.mode().to_owned(),
        };
        Ok(self.app.start_wallet_binding(&card.id, &body).await?)
    }

    /// "Open a wallet and bind this card" (flow F2).
    pub async fn open_wallet_with(
        &self,
        card: &CardBody,
    ) -> DeviceResult<WalletRegistrationStarted> {
        Ok(self.app.start_wallet_registration(&card.id).await?)
    }

    /// The wallet bindings the bank keeps for this customer.
    pub async fn bindings(&self) -> DeviceResult<Vec<BankBindingBody>> {
        Ok(self.app.bindings().await?.bindings)
    }

    /// The bank's side of the wallet's binding `binding_id`, if it has one.
    pub async fn binding_of(&self, binding_id: &str) -> DeviceResult<Option<BankBindingBody>> {
        Ok(self
            .bindings()
            .await?
            .into_iter()
            .find(|b| b.binding_id == binding_id))
    }
}
