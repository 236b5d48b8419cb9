//! A first device (PC, TV, car, IoT box): it holds its own key pair and
//! session, asks the user's phone to pay an order, and hears the outcome
//! on its own push channel.

use paybridge_api::wallet::{
    ChannelQuery, CreatePaymentRequest, DeviceBody, Login, PaymentRequestBody, RegisterDevice,
};
use paybridge_client::{DeviceSigner, PushChannel, WalletApp};
use paybridge_domain::device::DeviceType;
use paybridge_domain::ids::{DeviceId, MerchantId, OrderId, PaymentRequestId};

use crate::phone::public_key_of;
use crate::{DeviceResult, Phone};

/// Whether the phone must be woken by a gesture on its lock screen first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The phone shows a prompt; a swipe (relayed by the OS) opens the page.
    ByGesture,
    /// The payment page opens on the phone at once.
    Directly,
}

#[derive(Debug, Clone)]
pub struct Terminal {
    /// The terminal's own session, every call signed with its key.
    app: WalletApp,
    device: DeviceBody,
}

impl Terminal {
    /// Pairs a first device (a PC, TV, car or IoT box) with the account:
    /// the terminal makes its key pair, the phone (on its trusted device's
    /// session) registers the public key, and the terminal logs in with
    /// the account's phone number and login password, naming itself and
    /// proving its key. A device the account had under the same name and
    /// kind is revoked first (pairing again replaces it).
    pub async fn pair(
        phone: &Phone,
        login_password: &str,
        kind: DeviceType,
        name: &str,
    ) -> DeviceResult<Self> {
        phone.retire_devices_named(kind, name).await?;
        let account = phone.app()?;
        let signer = DeviceSigner::generate();
        let device = account
            .register_device(&RegisterDevice {
                device_type: kind.as_str().to_owned(),
                name: name.to_owned(),
                public_key: public_key_of(&signer),
            })
            .await?;
        let terminal = WalletApp::new(phone.anonymous().client().base_url()).on_device(signer);
        let session = terminal
            .login(&Login {
                phone: phone.number().to_owned(),
                password: login_password.to_owned(),
                device_id: Some(device.id.to_string()),
            })
            .await?;
        Ok(Self {
            app: terminal.signed_in(session.token),
            device,
        })
    }

    pub fn id(&self) -> &DeviceId {
        &self.device.id
    }

    pub fn name(&self) -> &str {
        &self.device.name
    }

    pub fn app(&self) -> &WalletApp {
        &self.app
    }

    /// Opens this device's push channel.
    pub async fn open_push_channel(&self) -> DeviceResult<PushChannel> {
        let query = ChannelQuery { after: None };
        Ok(self.app.device_events(self.id(), &query).await?)
    }

    /// Checkout on this device: asks the account's phone to pay `order`.
    pub async fn ask_to_pay(
        &self,
        merchant: &MerchantId,
        order: &OrderId,
        wake: Wake,
    ) -> DeviceResult<PaymentRequestBody> {
        let body = CreatePaymentRequest {
            merchant_id: merchant.to_string(),
            order_id: order.to_string(),
            terminal_id: self.id().to_string(),
            gesture_required: Some(wake == Wake::ByGesture),
            open_with: None,
        };
        Ok(self.app.create_payment_request(&body).await?)
    }

    /// The payment request as this device sees it now.
    pub async fn payment_request(
        &self,
        payment: &PaymentRequestId,
    ) -> DeviceResult<PaymentRequestBody> {
        Ok(self.app.payment_request(payment).await?)
    }
}
