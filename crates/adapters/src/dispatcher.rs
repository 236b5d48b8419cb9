//! The outbox dispatcher: claims due events, delivers each to its
//! destination, and records the outcome. Delivery is at least once: an event
//! is marked delivered only after the destination acknowledged it; failures
//! are retried with exponential backoff and jitter until
//! [`MAX_DELIVERY_ATTEMPTS`], then parked as dead (and counted). Claims are
//! leases, so events claimed by a dispatcher that died are retried after a
//! restart, by this process or another one on the same database.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use paybridge_api::partner::PartnerEvent;
use paybridge_domain::event::{retry_delay_secs, Destination, MAX_DELIVERY_ATTEMPTS};
use paybridge_domain::Clock;
use paybridge_store::{OutboxStore, StoreError, StoredEvent};
use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use tokio::sync::{watch, Notify};

use crate::device_push::DeviceNotifier;
use crate::partner::PartnerGateway;

/// Events claimed per round.
pub const DISPATCH_BATCH: i64 = 64;
/// Deliveries in flight at once.
pub const DISPATCH_CONCURRENCY: usize = 8;
/// A claim's lease: longer than a partner call may take (15 s), so a live
/// dispatcher never sees its events claimed by another.
pub const DISPATCH_LEASE_SECS: i64 = 60;
/// When idle, look for due retries this often (new events wake it at once).
pub const DISPATCH_IDLE_POLL: Duration = Duration::from_millis(500);

/// Counters since start, registered in `/metrics` by the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct DispatchCounters {
    pub delivered: Counter,
    pub failed: Counter,
    pub dead: Counter,
}

#[derive(Debug)]
pub struct OutboxDispatcher {
    store: Arc<dyn OutboxStore>,
    partners: Arc<dyn PartnerGateway>,
    devices: Arc<dyn DeviceNotifier>,
    /// Merchants' webhook endpoints (the wallet's dispatcher only).
    webhooks: Option<Arc<dyn WebhookGateway>>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    pub counters: DispatchCounters,
}

/// Outcome of one round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchRound {
    pub claimed: usize,
    pub delivered: usize,
    pub failed: usize,
}

/// Posts an event to a merchant's webhook endpoint, signed.
#[async_trait::async_trait]
pub trait WebhookGateway: Send + Sync + std::fmt::Debug {
    async fn deliver_webhook(
        &self,
        merchant: &paybridge_domain::ids::MerchantId,
        event: &StoredEvent,
    ) -> Result<(), crate::partner::DeliveryError>;
}

impl OutboxDispatcher {
    /// Adds delivery to merchants' webhook endpoints.
    pub fn with_webhooks(mut self, gateway: Arc<dyn WebhookGateway>) -> Self {
        self.webhooks = Some(gateway);
        self
    }

    pub fn new(
        store: Arc<dyn OutboxStore>,
        partners: Arc<dyn PartnerGateway>,
        devices: Arc<dyn DeviceNotifier>,
        clock: Arc<dyn Clock>,
        counters: DispatchCounters,
    ) -> Self {
        Self {
            store,
            partners,
            devices,
            webhooks: None,
            clock,
            wake: Arc::new(Notify::new()),
            counters,
        }
    }

    /// Call after committing new events, to deliver them without waiting for the poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Claims one batch of due events and delivers it.
    pub async fn run_once(&self) -> Result<DispatchRound, StoreError> {
        let now = self.clock.now();
        let lease = now + time::Duration::seconds(DISPATCH_LEASE_SECS);
        let events = self
            .store
            .outbox_claim_due(now, lease, DISPATCH_BATCH)
            .await?;
        let claimed = events.len();
        let results: Vec<Result<bool, StoreError>> = futures::stream::iter(events)
            .map(|event| self.deliver_one(event))
            .buffer_unordered(DISPATCH_CONCURRENCY)
            .collect()
            .await;
        let mut round = DispatchRound {
            claimed,
            ..Default::default()
        };
        for r in results {
            if r? {
                round.delivered += 1;
            } else {
                round.failed += 1;
            }
        }
        Ok(round)
    }

    /// Delivers one event and records the outcome; `Ok(true)` when delivered.
    async fn deliver_one(&self, event: StoredEvent) -> Result<bool, StoreError> {
        let outcome = match &event.destination {
            Destination::Partner(partner) => {
                let wire = PartnerEvent {
                    id: event.id.to_string(),
                    topic: event.topic.to_string(),
                    occurred_at: paybridge_api::rfc3339(event.occurred_at),
                    data: event.payload.clone(),
                };
                self.partners
                    .deliver(partner, &wire)
                    .await
                    .map_err(|e| (e.transient, e.message))
            }
            Destination::Device(device) => {
                self.devices.notify(device, event.seq);
                Ok(())
            }
            Destination::Merchant(merchant) => match &self.webhooks {
                Some(gateway) => gateway
                    .deliver_webhook(merchant, &event)
                    .await
                    .map_err(|e| (e.transient, e.message)),
                None => Err((false, "no webhook gateway in this role".to_owned())),
            },
            Destination::Internal => Ok(()),
        };
        let now = self.clock.now();
        match outcome {
            Ok(()) => {
                self.store.outbox_mark_delivered(&event.id, now).await?;
                self.counters.delivered.inc();
                tracing::debug!(event.id = %event.id, event.topic = %event.topic, "event delivered");
                Ok(true)
            }
            Err((transient, message)) => {
                let attempts = event.attempts + 1;
                let retry_at = (transient && attempts < MAX_DELIVERY_ATTEMPTS).then(|| {
                    // ±20 % jitter keeps a recovering partner from being hit by
                    // every retry in the same second.
                    let base = retry_delay_secs(event.attempts) as f64;
                    let jittered = base * rand::thread_rng().gen_range(0.8..1.2);
                    now + time::Duration::milliseconds((jittered * 1_000.0) as i64)
                });
                self.store
                    .outbox_mark_failed(&event.id, &message, retry_at, now)
                    .await?;
                self.counters.failed.inc();
                if retry_at.is_none() {
                    self.counters.dead.inc();
                    tracing::error!(event.id = %event.id, event.topic = %event.topic, attempts, error = %message, "event parked as dead");
                } else {
                    tracing::warn!(event.id = %event.id, event.topic = %event.topic, attempts, error = %message, "event delivery failed; will retry");
                }
                Ok(false)
            }
        }
    }

    /// Runs until `shutdown` turns true: a round whenever woken, or every
    /// [`DISPATCH_IDLE_POLL`] for due retries.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.run_once().await {
                // A full batch: there is probably more; go on at once.
                Ok(round) if round.claimed as i64 == DISPATCH_BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox dispatch round failed; retrying"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(DISPATCH_IDLE_POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
