//! The issuer role: a bank or card issuer. It owns bank customers and their
//! KYC data, cards (the PAN never leaves it in clear), accounts and the
//! ledger, the token vault and quick-pay agreements, and talks to the wallet
//! only through the signed partner API.

pub mod ledger;

use std::sync::Arc;

use paybridge_adapters::dispatcher::OutboxDispatcher;
use paybridge_adapters::partner::{ping_answer, receive_event, PartnerDirectory, PartnerSide};
use paybridge_api::partner::{PartnerEvent, PartnerEventAck, PartnerPing};
use paybridge_domain::partner::{PartnerId, Role};
use paybridge_domain::{Clock, ServiceError};
use paybridge_store::IssuerStore;

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
        let (ack, _new) = receive_event(self.store.as_ref(), from, event, self.clock.now()).await?;
        Ok(ack)
    }
}

impl Issuer {
    /// Ready when the store answers.
    pub async fn ready(&self) -> Result<(), ServiceError> {
        self.store.outbox_stats().await?;
        Ok(())
    }
}
