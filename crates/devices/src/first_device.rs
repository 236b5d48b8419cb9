//! A first device of flow F3 (a smart TV, a car head unit, an IoT box): it
//! cannot pay by itself, so it pairs with the user's phone once and then
//! asks the wallet to pay through it. It makes its own key pair, starts a
//! business binding request with its device info, shows the user code,
//! polls (with its key's proof) until the phone approved, and signs every
//! transfer payment request with its key, carrying its device usage and
//! its own counter. It knows only the public API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use paybridge_api::delegated::{
    CreateTransferPayment, DeviceAgreementBody, DeviceInfoBody, DeviceUsageBody, PairedDevice,
    PairingStarted, StartPairing, TransferPaymentBody, TransferPaymentRequestClaims,
};
use paybridge_api::wallet::{ChannelQuery, MoneyBody};
use paybridge_client::{DeviceSigner, PushChannel, WalletApp};
use paybridge_crypto::signed_message::MessageType;
use paybridge_domain::device::DeviceType;
use paybridge_domain::ids::{DeviceId, MerchantId, OrderId};
use paybridge_domain::transfer_agreement::UsageCategory;

use crate::phone::public_key_of;
use crate::{DeviceError, DeviceResult};

/// What a first device says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstDeviceModel {
    pub kind: DeviceType,
    pub model: String,
    pub vendor: String,
    pub serial: String,
}

impl FirstDeviceModel {
    /// A living-room smart TV (film rentals, subscriptions).
    pub fn smart_tv() -> Self {
        Self::of(DeviceType::Tv, "Bravia XR-55A80L", "Sony")
    }

    /// A car's head unit (fuel, parking).
    pub fn car_head_unit() -> Self {
        Self::of(DeviceType::Car, "iDrive 8", "BMW")
    }

    /// A smart-home box (subscriptions, in-app purchases).
    pub fn iot_box() -> Self {
        Self::of(DeviceType::Iot, "Mi Smart Hub 2", "Xiaomi")
    }

    fn of(kind: DeviceType, model: &str, vendor: &str) -> Self {
        Self {
            kind,
            model: model.into(),
            vendor: vendor.into(),
            serial: format!("SN-{:010}", rand::random::<u32>()),
        }
    }
}

/// A first device paired with its session.
#[derive(Debug, Clone)]
struct Paired {
    app: WalletApp,
    device_id: DeviceId,
}

/// A first device and what it holds: its key, its pairing, its session,
/// and its own counter of the transfer payment requests it signed.
#[derive(Debug)]
pub struct FirstDevice {
    signer: Arc<DeviceSigner>,
    anonymous: WalletApp,
    model: FirstDeviceModel,
    pairing: Option<PairingStarted>,
    paired: Option<Paired>,
    counter: AtomicU64,
}

impl FirstDevice {
    /// A device talking to the wallet at `server_url`; it makes its key pair now.
    pub fn new(server_url: &str, model: FirstDeviceModel) -> Self {
        let signer = DeviceSigner::generate();
        Self {
            anonymous: WalletApp::new(server_url).on_device(signer.clone()),
            signer,
            model,
            pairing: None,
            paired: None,
            counter: AtomicU64::new(0),
        }
    }

    pub fn model(&self) -> &FirstDeviceModel {
        &self.model
    }

    /// The device's key (a test signs with it directly).
    pub fn signer(&self) -> &Arc<DeviceSigner> {
        &self.signer
    }

    /// The business binding request (业务绑定请求): its device info and
    /// public key, with a proof of the key. Returns what it shows: the
    /// user code and the QR code.
    pub async fn start_pairing(&mut self) -> DeviceResult<&PairingStarted> {
        let body = StartPairing {
            device: DeviceInfoBody {
                device_type: self.model.kind,
                model: self.model.model.clone(),
                vendor: self.model.vendor.clone(),
                serial: self.model.serial.clone(),
            },
            public_key: public_key_of(&self.signer),
        };
        let started = self.anonymous.start_pairing(&body).await?;
        Ok(self.pairing.insert(started))
    }

    /// The request it started, once started.
    pub fn pairing(&self) -> Option<&PairingStarted> {
        self.pairing.as_ref()
    }

    /// Asks once whether it was approved; on approval keeps its session.
    /// A pending request is `pairing_pending`; asking again within the
    /// interval is `slow_down`.
    pub async fn poll_pairing(&mut self) -> DeviceResult<DeviceAgreementBody> {
        let pairing = self
            .pairing
            .as_ref()
            .ok_or(DeviceError::NotReady("start pairing first"))?;
        let paired: PairedDevice = self.anonymous.collect_pairing(&pairing.id).await?;
        self.counter
            .fetch_max(paired.agreement.last_counter, Ordering::SeqCst);
        self.paired = Some(Paired {
            app: self.anonymous.signed_in(paired.session.token),
            device_id: paired.device_id,
        });
        Ok(paired.agreement)
    }

    /// Polls every `interval` (and longer after `slow_down`, RFC 8628
    /// §3.5) until approved, denied, expired or `timeout` passed.
    pub async fn wait_until_paired(
        &mut self,
        timeout: Duration,
    ) -> DeviceResult<DeviceAgreementBody> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut interval = Duration::from_secs(
            self.pairing
                .as_ref()
                .map_or(5, |p| p.interval.max(1) as u64),
        );
        loop {
            match self.poll_pairing().await {
                Ok(agreement) => return Ok(agreement),
                Err(e) if e.code() == Some("pairing_pending") => {}
                Err(e) if e.code() == Some("slow_down") => interval += Duration::from_secs(5),
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() + interval > deadline {
                return Err(DeviceError::Unexpected(
                    "the phone did not answer the pairing in time".into(),
                ));
            }
            tokio::time::sleep(interval).await;
        }
    }

    fn paired(&self) -> DeviceResult<&Paired> {
        self.paired
            .as_ref()
            .ok_or(DeviceError::NotReady("the device is not paired yet"))
    }

    /// Its own session's app (every call signed with its key).
    pub fn app(&self) -> DeviceResult<&WalletApp> {
        Ok(&self.paired()?.app)
    }

    pub fn id(&self) -> DeviceResult<&DeviceId> {
        Ok(&self.paired()?.device_id)
    }

    /// Opens the device's push channel (where its payment results arrive).
    pub async fn open_push_channel(&self) -> DeviceResult<PushChannel> {
        let paired = self.paired()?;
        let query = ChannelQuery { after: None };
        Ok(paired.app.device_events(&paired.device_id, &query).await?)
    }

    /// A signed transfer payment request for `order`, with the next counter.
    pub fn sign_request(
        &self,
        merchant: &MerchantId,
        order: &OrderId,
        amount: &MoneyBody,
        category: UsageCategory,
        purpose: &str,
    ) -> DeviceResult<String> {
        let counter = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        self.sign_request_with(merchant, order, amount, category, purpose, counter)
    }

    /// The same with a chosen counter (a test replays an old one).
    pub fn sign_request_with(
        &self,
        merchant: &MerchantId,
        order: &OrderId,
        amount: &MoneyBody,
        category: UsageCategory,
        purpose: &str,
        counter: u64,
    ) -> DeviceResult<String> {
        let claims = TransferPaymentRequestClaims {
            device_id: self.id()?.to_string(),
            merchant_id: merchant.to_string(),
            order_id: order.to_string(),
            amount: amount.clone(),
            usage: DeviceUsageBody {
                category,
                counter,
                purpose: purpose.to_owned(),
            },
        };
        Ok(self
            .signer
            .sign_message(MessageType::TransferPaymentRequest, &claims))
    }

    /// The transfer payment request (转移支付请求): asks the wallet to pay
    /// `order` through the phone, for `purpose`.
    pub async fn request_payment(
        &self,
        merchant: &MerchantId,
        order: &OrderId,
        amount: &MoneyBody,
        category: UsageCategory,
        purpose: &str,
    ) -> DeviceResult<TransferPaymentBody> {
        let request = self.sign_request(merchant, order, amount, category, purpose)?;
        self.send_request(request).await
    }

    /// Sends a signed request as it is.
    pub async fn send_request(&self, request: String) -> DeviceResult<TransferPaymentBody> {
        Ok(self
            .app()?
            .request_transfer_payment(&CreateTransferPayment { request })
            .await?)
    }

    /// Its agreement's public part: limits and what is left of them.
    pub async fn agreement(&self) -> DeviceResult<DeviceAgreementBody> {
        Ok(self.app()?.device_agreement().await?)
    }

    /// Unpairs itself: its agreement is revoked, its session ends.
    pub async fn unpair(&self) -> DeviceResult<DeviceAgreementBody> {
        Ok(self.app()?.unpair().await?)
    }
}
