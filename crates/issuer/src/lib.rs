//! The issuer role: a bank or card issuer. It owns bank customers and their
//! KYC data, cards (the PAN never leaves it in clear), accounts and the
//! ledger, the token vault and quick-pay agreements, and talks to the wallet
//! only through the signed partner API.
//!
//! - [`authorisations`]: flow F5 at a POS: a tap's EMV data checked against
//!   the token vault (state, domain, cryptogram, a rising ATC).
//! - [`customers`]: customers, cards and the bank app's sessions.
//! - [`seed`]: the seed files of a sandbox bank (demo customers and cards).
//! - [`bindings`]: flow F1 on the bank's side (binding addresses, binding
//!   messages, quick-pay agreements) and the F2 registration it starts.
//! - [`debits`]: debits and refunds by quick-pay agreement (the money path
//!   of flows F3, F4 and F5).
//! - [`ledger`]: the bank's ledger as a service.
//! - [`virtual_cards`]: flow F5 (virtual card products, the review of an
//!   application, pre-verification, issuing the card with its card code,
//!   agreement and token; tokenisation and de-tokenisation at the vault).

pub mod authorisations;
pub mod bindings;
pub mod customers;
pub mod debits;
pub mod ledger;
pub mod seed;
pub mod virtual_cards;

use paybridge_domain::event::EventTopic;
use std::sync::Arc;

use paybridge_adapters::dispatcher::OutboxDispatcher;
use paybridge_adapters::partner::{ping_answer, receive_event, PartnerDirectory, PartnerSide};
use paybridge_api::partner::{PartnerEvent, PartnerEventAck, PartnerPing};
use paybridge_crypto::master::DerivedKeys;
use paybridge_crypto::password::PasswordHasher;
use paybridge_domain::card::BinRange;
use paybridge_domain::partner::{PartnerId, Role};
use paybridge_domain::{Clock, ServiceError};
use paybridge_store::{IssuerStore, KeyVault};

/// One bank's services.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// Our partner id, as the wallet knows us (`demo-bank`).
    pub id: PartnerId,
    /// Display name, e.g. "Demo Bank".
    pub name: String,
    pub store: Arc<dyn IssuerStore>,
    pub clock: Arc<dyn Clock>,
    /// The wallet(s) this bank works with.
    pub wallets: PartnerDirectory,
    pub dispatcher: Arc<OutboxDispatcher>,
    /// Seals PANs and customers' personal data at rest.
    pub vault: Arc<KeyVault>,
    /// Blind-index, OTP and session-token keys.
    pub keys: DerivedKeys,
    pub passwords: PasswordHasher,
    /// The card numbers this bank issues.
    pub bins: BinRange,
    /// Flow F5, if this bank issues virtual cards.
    pub virtual_cards: Option<virtual_cards::VirtualCardIssuing>,
}

/// Demo Bank's BIN range (made up): 621999, 16 or 19 digits.
pub fn sandbox_bins() -> BinRange {
    BinRange {
        prefixes: vec!["621999".into()],
        lengths: vec![16, 19],
    }
}

#[async_trait::async_trait]
impl PartnerSide for Issuer {
    fn ping(&self, caller: &PartnerId) -> PartnerPing {
        ping_answer(&self.id, Role::Issuer, caller, self.clock.now())
    }

    async fn receive_partner_event(
        &self,
        from: &PartnerId,
        event: &PartnerEvent,
    ) -> Result<PartnerEventAck, ServiceError> {
        // Acting on an event is idempotent, so a redelivery may act again.
        if event.topic == EventTopic::BindingUnbound.as_str() {
            if let Some(id) = event.data.get("binding_id").and_then(|v| v.as_str()) {
                self.unbound_by_wallet(from, id).await?;
            }
        }
        if event.topic == EventTopic::CardTokenChanged.as_str() {
            if let Ok(change) = serde_json::from_value::<
                paybridge_api::virtual_card::TokenStateChange,
            >(event.data.clone())
            {
                self.token_changed_by_wallet(from, &change).await?;
            }
        }
        let (ack, _new) = receive_event(self.store.as_ref(), from, event, self.clock.now()).await?;
        Ok(ack)
    }
}

impl Issuer {
    pub fn ledger(&self) -> ledger::Ledger {
        ledger::Ledger {
            store: self.store.clone(),
            clock: self.clock.clone(),
        }
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
