//! A device's push channel: its outbox events in sequence order, as a
//! stream the HTTP layer serves as server-sent events.
//!
//! The channel reads what the device missed (after the sequence number it
//! resumes from), then waits for a wake-up from the dispatcher (an event
//! for this device committed on this instance) or polls (events written by
//! another instance wake only that one). It ends after `device.revoked`,
//! when the device is no longer active, or when the server stops. While
//! open it refreshes the device's `last_seen_at`, so a connected phone stays
//! the terminal correspondence of flow F4.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::Stream;
use paybridge_domain::event::{Destination, EventTopic};
use paybridge_domain::ids::{DeviceId, UserId};
use paybridge_domain::{ErrorCode, ServiceError};
use paybridge_store::StoredEvent;
use tokio::sync::{broadcast, watch};

use crate::views::ChannelEvent;
use crate::Wallet;

/// Push channels one device may hold open at once on one server (an app
/// reconnecting may briefly hold two; a flood holds no more).
pub const MAX_CHANNELS_PER_DEVICE: usize = 3;

/// How often a waiting channel looks at the outbox even without a wake-up
/// (events written by another API instance wake only that instance).
pub const CHANNEL_POLL: Duration = Duration::from_secs(2);
/// Events read from the outbox per round.
const CHANNEL_BATCH: i64 = 100;
/// How often an open channel refreshes its device's `last_seen_at`.
const CHANNEL_TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// The topic after which a channel closes.
const REVOKED_TOPIC: EventTopic = EventTopic::DeviceRevoked;

/// An open channel; see the module docs.
#[derive(Debug)]
pub struct PushChannel {
    wallet: Wallet,
    user: UserId,
    device: DeviceId,
    /// The last sequence number handed out.
    after: i64,
    buffer: VecDeque<StoredEvent>,
    wakeups: broadcast::Receiver<i64>,
    stopping: watch::Receiver<bool>,
    /// Set after `device.revoked` went out: the stream ends.
    closing: bool,
    /// When `last_seen_at` was last refreshed.
    touched: Instant,
}

impl Wallet {
    /// Opens the push channel of an active device of `user`, resuming after
    /// sequence number `after`; it ends when `stopping` turns true.
    pub async fn open_push_channel(
        &self,
        user: &UserId,
        device: &DeviceId,
        after: i64,
        stopping: watch::Receiver<bool>,
    ) -> Result<PushChannel, ServiceError> {
        self.active_device(user, device).await?;
        // Subscribe before the first read, so no wake-up falls between them.
        let wakeups = self
            .push_hub
            .subscribe_at_most(device, MAX_CHANNELS_PER_DEVICE)
            .ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::TooManyPushChannels,
                    format!(
                        "this device has {MAX_CHANNELS_PER_DEVICE} push channels open on this server; close one first"
                    ),
                )
            })?;
        self.store.device_touch(device, self.clock.now()).await?;
        Ok(PushChannel {
            wallet: self.clone(),
            user: user.clone(),
            device: device.clone(),
            after: after.max(0),
            buffer: VecDeque::new(),
            wakeups,
            stopping,
            closing: false,
            touched: Instant::now(),
        })
    }
}

impl PushChannel {
    /// The next event, or `None` when the channel has ended.
    pub async fn next_event(&mut self) -> Option<ChannelEvent> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                self.after = e.seq;
                if e.topic == REVOKED_TOPIC {
                    self.closing = true;
                }
                return Some(e.into());
            }
            if self.closing || *self.stopping.borrow() {
                return None;
            }
            self.touch_if_due().await;
            if let Some(events) = self.unread().await {
                if !events.is_empty() {
                    self.buffer.extend(events);
                    continue;
                }
            }
            // Nothing new: is the device still allowed to listen?
            match self.wallet.store.device_of(&self.user, &self.device).await {
                Ok(Some(d)) if d.status.is_active() => {}
                Ok(_) => {
                    // Revoked between the read above and this look-up: its
                    // `device.revoked` committed with the revocation, so one
                    // more read delivers it before the channel ends.
                    match self.unread().await {
                        Some(events) if !events.is_empty() => {
                            self.buffer.extend(events);
                            continue;
                        }
                        _ => return None,
                    }
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = self.wakeups.recv() => {}
                _ = tokio::time::sleep(CHANNEL_POLL) => {}
                _ = self.stopping.changed() => {}
            }
        }
    }

    /// The device's events after the last one delivered; `None` (logged)
    /// when the outbox cannot be read this round.
    async fn unread(&self) -> Option<Vec<StoredEvent>> {
        match self
            .wallet
            .store
            .outbox_events_for(
                &Destination::Device(self.device.clone()),
                self.after,
                CHANNEL_BATCH,
            )
            .await
        {
            Ok(events) => Some(events),
            Err(e) => {
                tracing::warn!(error = %e, device.id = %self.device, "push channel cannot read the outbox");
                None
            }
        }
    }

    async fn touch_if_due(&mut self) {
        if self.touched.elapsed() < CHANNEL_TOUCH_INTERVAL {
            return;
        }
        self.touched = Instant::now();
        let now = self.wallet.clock.now();
        if let Err(e) = self.wallet.store.device_touch(&self.device, now).await {
            tracing::warn!(error = %e, device.id = %self.device, "push channel cannot refresh last_seen_at");
        }
    }

    /// The channel as a stream of events.
    pub fn into_stream(self) -> impl Stream<Item = ChannelEvent> + Send {
        futures::stream::unfold(self, |mut channel| async move {
            channel.next_event().await.map(|e| (e, channel))
        })
    }
}
