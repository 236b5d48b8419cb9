//! The outbox dispatcher: claims due events, delivers each to its
//! destination, and records the outcome. Delivery is at least once: an event
//! is marked delivered only after the destination acknowledged it; failures
//! are retried with exponential backoff and jitter until
//! [`MAX_DELIVERY_ATTEMPTS`], then parked as dead (and counted). Claims are
//! leases, so events claimed by a dispatcher that died are retried after a
//! restart, by this process or another one on the same database.
//!
//! One slow or dead destination (a merchant's endpoint taking its full
//! timeout) must not hold up the others: a round delivers each
//! destination's events on a lane of its own (a few at a time), lanes run
//! side by side, and a round still running after [`DISPATCH_SLOW_ROUND`]
//! gets the next round beside it, which skips the destinations still being
//! delivered to (their events handed back unattempted). Quick rounds follow
//! one another, so events are claimed once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use paybridge_api::partner::PartnerEvent;
use paybridge_domain::event::{retry_delay_secs, Destination, MAX_DELIVERY_ATTEMPTS};
use paybridge_domain::ids::EventId;
use paybridge_domain::Clock;
use paybridge_store::{OutboxStore, StoreError, StoredEvent};
use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use tokio::sync::{watch, Notify, Semaphore};

use crate::device_push::DeviceNotifier;
use crate::partner::PartnerGateway;

/// Events claimed per round.
pub const DISPATCH_BATCH: i64 = 64;
/// Deliveries in flight at once (one per destination lane).
pub const DISPATCH_CONCURRENCY: usize = 8;

/// A claim's lease: longer than a partner call may take (15 s), so a live
/// dispatcher never sees its events claimed by another.
pub const DISPATCH_LEASE_SECS: i64 = 60;
/// When idle, look for due retries this often (new events wake it at once).
pub const DISPATCH_IDLE_POLL: Duration = Duration::from_millis(500);
/// A round still running after this is waiting on a slow destination: the
/// next round starts beside it.
pub const DISPATCH_SLOW_ROUND: Duration = Duration::from_secs(1);
/// Deliveries in flight at once on one destination's lane.
pub const DISPATCH_LANE_CONCURRENCY: usize = 4;

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
    /// Destinations some round of this dispatcher is delivering to now.
    busy: std::sync::Mutex<HashSet<Destination>>,
    /// One permit per delivery lane, shared by all rounds.
    lanes: Arc<Semaphore>,
}

/// Outcome of one round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchRound {
    pub claimed: usize,
    pub delivered: usize,
    pub failed: usize,
    /// Handed back unattempted: their destination was busy, or failed
    /// just before them in this round.
    pub deferred: usize,
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
            busy: Default::default(),
            lanes: Arc::new(Semaphore::new(DISPATCH_CONCURRENCY)),
        }
    }

    /// Call after committing new events, to deliver them without waiting for the poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Claims one batch of due events and delivers it: each destination's
    /// events on a lane of its own ([`DISPATCH_LANE_CONCURRENCY`] at a
    /// time), up to [`DISPATCH_CONCURRENCY`] lanes at once. Events of destinations another round is still
    /// delivering to are handed back unattempted, due at once (a later
    /// round, or another instance, takes them).
    pub async fn run_once(&self) -> Result<DispatchRound, StoreError> {
        let now = self.clock.now();
        let lease = now + time::Duration::seconds(DISPATCH_LEASE_SECS);
        let events = self
            .store
            .outbox_claim_due(now, lease, DISPATCH_BATCH)
            .await?;
        let mut round = DispatchRound {
            claimed: events.len(),
            ..Default::default()
        };
        let mut lanes: Vec<(Destination, Vec<StoredEvent>)> = Vec::new();
        for event in events {
            match lanes.iter_mut().find(|(d, _)| *d == event.destination) {
                Some((_, queue)) => queue.push(event),
                None => lanes.push((event.destination.clone(), vec![event])),
            }
        }
        let mut mine = Vec::with_capacity(lanes.len());
        for (destination, queue) in lanes {
            if self.take_lane(&destination) {
                mine.push((destination, queue));
            } else {
                round.deferred += self.defer(&queue, now).await?;
            }
        }
        let results: Vec<Result<DispatchRound, StoreError>> = futures::stream::iter(mine)
            .map(|(destination, queue)| self.deliver_lane(destination, queue))
            .buffer_unordered(DISPATCH_CONCURRENCY)
            .collect()
            .await;
        for lane in results {
            let lane = lane?;
            round.delivered += lane.delivered;
            round.failed += lane.failed;
            round.deferred += lane.deferred;
        }
        Ok(round)
    }

    /// Marks `destination` busy for this dispatcher; `false` if it was.
    fn take_lane(&self, destination: &Destination) -> bool {
        self.busy
            .lock()
            .expect("the busy set is never poisoned")
            .insert(destination.clone())
    }

    /// Delivers one destination's events. After a failure the rest wait
    /// (unattempted) instead of each taking the full timeout of an endpoint
    /// that is down.
    async fn deliver_lane(
        &self,
        destination: Destination,
        queue: Vec<StoredEvent>,
    ) -> Result<DispatchRound, StoreError> {
        let _lane = self
            .lanes
            .clone()
            .acquire_owned()
            .await
            .expect("the lane semaphore is never closed");
        // A few at a time on the lane; once one fails, the rest are not
        // tried (each would wait out the same endpoint's timeout).
        let failed = std::sync::atomic::AtomicBool::new(false);
        let outcomes: Vec<Result<Option<bool>, StoreError>> = futures::stream::iter(queue)
            .map(|event| {
                let failed = &failed;
                async move {
                    if failed.load(std::sync::atomic::Ordering::SeqCst) {
                        self.defer(std::slice::from_ref(&event), self.clock.now())
                            .await?;
                        return Ok(None);
                    }
                    let delivered = self.deliver_one(event).await?;
                    if !delivered {
                        failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(Some(delivered))
                }
            })
            .buffered(DISPATCH_LANE_CONCURRENCY)
            .collect()
            .await;
        let mut lane = DispatchRound::default();
        let outcome = outcomes.into_iter().try_for_each(|o| {
            match o? {
                Some(true) => lane.delivered += 1,
                Some(false) => lane.failed += 1,
                None => lane.deferred += 1,
            }
            Ok::<_, StoreError>(())
        });
        self.busy
            .lock()
            .expect("the busy set is never poisoned")
            .remove(&destination);
        outcome.map(|()| lane)
    }

    async fn defer(
        &self,
        events: &[StoredEvent],
        at: paybridge_domain::Timestamp,
    ) -> Result<usize, StoreError> {
        let ids: Vec<EventId> = events.iter().map(|e| e.id.clone()).collect();
        self.store.outbox_defer(&ids, at).await?;
        Ok(events.len())
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
    /// [`DISPATCH_IDLE_POLL`] for due retries. A round waiting on a slow
    /// destination does not hold up the next one; on shutdown the rounds in
    /// flight finish.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut rounds = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(done) = rounds.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "an outbox dispatch round panicked");
                }
            }
            if self.lanes.available_permits() == 0 || rounds.len() >= DISPATCH_CONCURRENCY {
                tokio::select! {
                    _ = rounds.join_next() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let me = self.clone();
            let (claimed_tx, claimed_rx) = tokio::sync::oneshot::channel();
            rounds.spawn(async move {
                let round = me.run_once().await;
                // Full of work, not of events handed back (that would spin).
                let full = matches!(&round, Ok(r) if r.claimed as i64 == DISPATCH_BATCH
                    && r.deferred < r.claimed);
                if let Err(e) = &round {
                    tracing::warn!(error = %e, "outbox dispatch round failed; retrying");
                }
                let _ = claimed_tx.send(full);
            });
            // Rounds follow one another while they are quick (so events are
            // claimed once, in order). Only a round still running after
            // DISPATCH_SLOW_ROUND, waiting on some slow destination, gets a
            // round beside it (which skips the busy destinations).
            let finished = tokio::select! {
                full = claimed_rx => Some(full.unwrap_or(false)),
                _ = tokio::time::sleep(DISPATCH_SLOW_ROUND) => None,
                _ = shutdown.changed() => Some(false),
            };
            match finished {
                // Slow, or a full batch (there is probably more): go on.
                None | Some(true) => continue,
                Some(false) => {}
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(DISPATCH_IDLE_POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
        while rounds.join_next().await.is_some() {}
    }
}
