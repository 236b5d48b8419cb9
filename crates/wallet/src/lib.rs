//! The wallet role: the third-party payment platform. It owns wallet
//! accounts, devices, bindings to bank cards, payments and merchants, and
//! talks to the issuers only through the signed partner API.
//!
//! Services run the domain's state machines and persist each decision with
//! its outbox events in one transaction. Flows join as modules here.

pub mod otp;

use std::sync::Arc;

use paybridge_adapters::device_push::PushHub;
use paybridge_adapters::dispatcher::OutboxDispatcher;
use paybridge_adapters::partner::{ping_answer, receive_event, PartnerDirectory, PartnerSide};
use paybridge_api::partner::{PartnerEvent, PartnerEventAck, PartnerPing};
use paybridge_domain::partner::{PartnerId, Role};
use paybridge_domain::{Clock, ServiceError};
use paybridge_store::WalletStore;

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
        let (ack, _new) = receive_event(self.store.as_ref(), from, event, self.clock.now()).await?;
        Ok(ack)
    }
}

impl Wallet {
    /// Ready when the store answers.
    pub async fn ready(&self) -> Result<(), ServiceError> {
        self.store.outbox_stats().await?;
        Ok(())
    }
}
