//! A first device (PC, TV, car, IoT box): it asks the user's phone to pay
//! an order and hears the outcome on its own push channel.

use paybridge_api::wallet::{
    ChannelQuery, CreatePaymentRequest, DeviceBody, DeviceListQuery, PaymentRequestBody,
    RegisterDevice,
};
use paybridge_client::{PushChannel, WalletApp};
use paybridge_domain::device::{DeviceStage, DeviceType};
use paybridge_domain::ids::{DeviceId, MerchantId, OrderId, PaymentRequestId};

use crate::DeviceResult;

/// Whether the phone must be woken by a gesture on its lock screen first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The phone shows a prompt; a swipe (relayed by the OS) opens the page.
    ByGesture,
    /// The payment page opens on the phone at once.
    Directly,
}

/// The account's active device `name` of `kind`, registered with the
/// account's session `account` when it has none (a demo run again finds
/// the one it registered before).
pub async fn registered_device(
    account: &WalletApp,
    kind: DeviceType,
    name: &str,
) -> DeviceResult<DeviceBody> {
    let existing = account
        .devices(&DeviceListQuery {
            include_revoked: None,
        })
        .await?
        .devices
        .into_iter()
        .find(|d| d.name == name && d.device_type == kind && d.status == DeviceStage::Active);
    match existing {
        Some(d) => Ok(d),
        None => {
            let body = RegisterDevice {
                device_type: kind.as_str().to_owned(),
                name: name.to_owned(),
            };
            Ok(account.register_device(&body).await?)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Terminal {
    app: WalletApp,
    device: DeviceBody,
}

impl Terminal {
    /// The account's active device `name` of `kind` (a PC, TV, car or IoT
    /// box), registered with the account's session `account` when missing.
    pub async fn pair(account: &WalletApp, kind: DeviceType, name: &str) -> DeviceResult<Self> {
        Ok(Self {
            app: account.clone(),
            device: registered_device(account, kind, name).await?,
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
