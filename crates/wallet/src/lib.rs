//! The wallet role: the third-party payment platform. It owns wallet
//! accounts, devices, bindings to bank cards, payments and merchants, and
//! talks to the issuers only through the signed partner API.
//!
//! Services run the domain's state machines and persist each decision with
//! its outbox events in one transaction; they hand [`views`] (never store
//! rows) to the HTTP layer. Flows join as modules here:
//!
//! - [`accounts`]: registration, sessions, the payment password, identity.
//! - [`devices`], [`device_proof`], [`webauthn`], [`push_channel`]: the
//!   account's devices, their keys and proofs of possession, their
//!   passkeys, and each device's stream of events.
//! - [`otp`]: OTPs to reserved phones.
//! - [`bindings`], [`qr`]: flow F1 (binding a bank card), binding-address QR codes.
//! - [`registration`]: flow F2 (bank-assisted registration, security authentication).
//! - [`merchants`], [`payments`], [`refunds`], [`webhooks`], [`webhook_guard`]:
//!   merchants, orders, paying them with a bound card, refunds, webhooks and
//!   where they may go.
//! - [`cross_device`]: flow F4 (a PC, TV, car or IoT box asks the phone to pay).
//! - [`device_pairing`], [`transfer_agreements`], [`transfer_payments`]:
//!   flow F3 (a first device paired by a user code pays through the phone,
//!   within its transfer payment agreement).
//! - [`virtual_cards`]: flow F5 (a virtual card application on both paths,
//!   the quick binding, card tokens for the phone's secure element and
//!   their lifecycle); it answers with the API's bodies.
//! - [`views`]: what the services return to the HTTP layer.

pub mod accounts;
pub mod bindings;
pub mod cross_device;
pub mod device_pairing;
pub mod device_proof;
pub mod devices;
pub mod merchants;
pub mod otp;
pub mod payments;
pub mod push_channel;
pub mod qr;
pub mod refunds;
pub mod registration;
pub mod transfer_agreements;
pub mod transfer_payments;
pub mod views;
pub mod virtual_cards;
pub mod webauthn;
pub mod webhook_guard;
pub mod webhooks;

use paybridge_domain::event::EventTopic;
use std::sync::Arc;

use paybridge_adapters::device_push::PushHub;
use paybridge_adapters::dispatcher::OutboxDispatcher;
use paybridge_adapters::partner::{ping_answer, receive_event, PartnerDirectory, PartnerSide};
use paybridge_api::partner::{PartnerEvent, PartnerEventAck, PartnerPing};
use paybridge_crypto::master::DerivedKeys;
use paybridge_crypto::password::PasswordHasher;
use paybridge_domain::partner::{PartnerId, Role};
use paybridge_domain::{Clock, ServiceError};
use paybridge_store::{KeyVault, WalletStore};

/// The wallet's services and what they share.
#[derive(Debug, Clone)]
pub struct Wallet {
    /// Our partner id, as the issuers know us (`wallet`).
    pub id: PartnerId,
    pub store: Arc<dyn WalletStore>,
    pub clock: Arc<dyn Clock>,
    /// The banks registered with this wallet.
    pub issuers: PartnerDirectory,
    pub push_hub: Arc<PushHub>,
    pub dispatcher: Arc<OutboxDispatcher>,
    /// Seals personal data at rest (phones, identities).
    pub vault: Arc<KeyVault>,
    /// Blind-index, OTP and session-token keys.
    pub keys: DerivedKeys,
    pub passwords: PasswordHasher,
    pub webauthn: Arc<webauthn_rs::Webauthn>,
    /// Sends OTPs; `None` when no SMS gateway is configured (then flows
    /// that need one answer 503).
    pub sms: Option<Arc<dyn paybridge_adapters::sms::SmsGateway>>,
    /// The wallet app's public origin, e.g. `https://pay.example.com`:
    /// binding addresses are `<origin>/bind/<secret>`.
    pub app_origin: String,
    /// When security authentication is required (flow F2).
    pub policy: paybridge_domain::registration::SecurityPolicy,
    /// The OS push relay that also carries gesture prompts to phones (F4);
    /// `None` without one (the push channel alone carries them).
    pub relay: Option<Arc<dyn paybridge_adapters::push_relay::PushRelay>>,
    /// How long a cross-device payment request waits for the user.
    pub payment_request_ttl_secs: i64,
    /// Nonces and replay memory for devices' proofs of possession.
    pub device_proofs: Arc<device_proof::DeviceProofs>,
    /// Where merchants' webhooks may go.
    pub webhook_policy: webhook_guard::EndpointPolicy,
    /// The SMS budgets per client address and for the whole wallet.
    pub sms_caps: otp::SmsCaps,
    /// Business binding requests one client address may start in an hour
    /// (flow F3); 0 is off.
    pub pairing_ip_hourly_cap: i64,
    /// Signs payment execution tasks (flow F3); derived from the master key.
    pub task_key: Arc<paybridge_crypto::signed_message::MessageKey>,
    /// Scores first-card applicants' photos and frames (flow F5); `None`
    /// without one (that path answers 503).
    pub identity: Option<Arc<dyn paybridge_adapters::identity::IdentityAuthority>>,
    /// How long an application's photos and frames are kept after it is
    /// decided (flow F5); 0 deletes them at the decision's next sweep.
    pub card_media_retention_secs: i64,
}

#[async_trait::async_trait]
impl PartnerSide for Wallet {
    fn ping(&self, caller: &PartnerId) -> PartnerPing {
        ping_answer(&self.id, Role::Wallet, caller, self.clock.now())
    }

    async fn receive_partner_event(
        &self,
        from: &PartnerId,
        event: &PartnerEvent,
    ) -> Result<PartnerEventAck, ServiceError> {
        // Acting on an event is idempotent, so a redelivery may act again.
        if event.topic == EventTopic::BindingUnbound.as_str() {
            if let Some(id) = event.data.get("binding_id").and_then(|v| v.as_str()) {
                self.unbound_by_issuer(from, id).await?;
            }
        }
        if event.topic == EventTopic::CardTokenChanged.as_str() {
            if let Ok(change) = serde_json::from_value::<
                paybridge_api::virtual_card::TokenStateChange,
            >(event.data.clone())
            {
                self.token_changed_by_issuer(from, &change).await?;
            }
        }
        let (ack, _new) = receive_event(self.store.as_ref(), from, event, self.clock.now()).await?;
        Ok(ack)
    }
}

impl Wallet {
    /// OTP challenges through the configured SMS gateway.
    pub fn otp_service(&self) -> Result<otp::OtpService, ServiceError> {
        let sms = self.sms.clone().ok_or_else(|| ServiceError::Unavailable {
            code: paybridge_domain::ErrorCode::PartnerUnreachable,
            source: "no SMS gateway is configured".into(),
        })?;
        Ok(otp::OtpService {
            store: self.store.clone(),
            sms,
            hasher: self.keys.otp.clone(),
            vault: self.vault.clone(),
            index_key: self.keys.index.clone(),
            clock: self.clock.clone(),
            caps: self.sms_caps,
        })
    }

    /// Argon2id off the async threads: it is meant to be slow.
    pub(crate) async fn hash_password(&self, password: &str) -> Result<String, ServiceError> {
        paybridge_kernel::passwords::hash(&self.passwords, password).await
    }

    /// See [`paybridge_kernel::passwords::verify`].
    pub(crate) async fn verify_password(&self, stored: Option<String>, password: &str) -> bool {
        paybridge_kernel::passwords::verify(&self.passwords, stored, password).await
    }

    /// Seals, masks and blind-indexes this role's personal data.
    pub(crate) fn protector(&self) -> paybridge_kernel::personal::Protector<'_> {
        paybridge_kernel::personal::Protector {
            vault: &self.vault,
            index: &self.keys.index,
        }
    }

    /// Events waiting for delivery and events given up on (for metrics).
    pub async fn outbox_stats(&self) -> Result<paybridge_store::OutboxStats, ServiceError> {
        Ok(self.store.outbox_stats().await?)
    }

    /// Ready when the store answers.
    pub async fn ready(&self) -> Result<(), ServiceError> {
        self.store.outbox_stats().await?;
        Ok(())
    }
}
