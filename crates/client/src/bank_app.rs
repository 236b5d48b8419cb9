//! The issuer's own app API (the bank app on the customer's phone), one
//! method per endpoint. In one process the issuer is served under
//! [`BankApp::PREFIX`]; a bank on its own host passes its base URL whole.

use paybridge_api::bank::{
    BankBindingList, BankLogin, BankSessionBody, CardBody, CardList, CustomerBody,
    StartWalletBinding, WalletBindingStarted, WalletRegistrationStarted,
};

use crate::{ApiError, PublicClient};

/// The bank app's view of its bank.
#[derive(Debug, Clone)]
pub struct BankApp {
    client: PublicClient,
}

type Answer<T> = Result<T, ApiError>;

impl BankApp {
    /// Where the sandbox issuer is mounted when both roles share a process.
    pub const PREFIX: &'static str = "/bank";

    /// The bank app of the issuer served under `/bank` at `server_url`.
    pub fn of_sandbox_server(server_url: &str) -> Self {
        let base = format!("{}{}", server_url.trim_end_matches('/'), Self::PREFIX);
        Self::on(PublicClient::new(base))
    }

    pub fn on(client: PublicClient) -> Self {
        Self { client }
    }

    /// The same app with a customer's bank session.
    pub fn signed_in(&self, session_token: impl Into<String>) -> Self {
        Self::on(self.client.with_bearer(session_token))
    }

    pub fn client(&self) -> &PublicClient {
        &self.client
    }

    /// `POST /v1/app/sessions`
    pub async fn login(&self, body: &BankLogin) -> Answer<BankSessionBody> {
        self.client.post("/v1/app/sessions", body).await
    }

    /// `DELETE /v1/app/sessions/current`
    pub async fn logout(&self) -> Answer<()> {
        self.client.delete("/v1/app/sessions/current").await
    }

    /// `GET /v1/app/me`
    pub async fn me(&self) -> Answer<CustomerBody> {
        self.client.get("/v1/app/me").await
    }

    /// `GET /v1/app/cards`
    pub async fn cards(&self) -> Answer<CardList> {
        self.client.get("/v1/app/cards").await
    }

    /// `GET /v1/app/cards/{card_id}`
    pub async fn card(&self, card: &str) -> Answer<CardBody> {
        self.client.get(&format!("/v1/app/cards/{card}")).await
    }

    /// `POST /v1/app/cards/{card_id}/wallet-bindings` (flow F1)
    pub async fn start_wallet_binding(
        &self,
        card: &str,
        body: &StartWalletBinding,
    ) -> Answer<WalletBindingStarted> {
        let path = format!("/v1/app/cards/{card}/wallet-bindings");
        self.client.post(&path, body).await
    }

    /// `POST /v1/app/cards/{card_id}/wallet-registrations` (flow F2)
    pub async fn start_wallet_registration(&self, card: &str) -> Answer<WalletRegistrationStarted> {
        let path = format!("/v1/app/cards/{card}/wallet-registrations");
        self.client.post_empty(&path).await
    }

    /// `GET /v1/app/bindings`
    pub async fn bindings(&self) -> Answer<BankBindingList> {
        self.client.get("/v1/app/bindings").await
    }

    /// `DELETE /v1/app/bindings/{agreement_id}`
    pub async fn unbind(&self, agreement: &str) -> Answer<()> {
        self.client
            .delete(&format!("/v1/app/bindings/{agreement}"))
            .await
    }
}
