//! Wake-ups for devices' live push channels. Device events live in the
//! outbox (in order, with a sequence number); a channel reads them from there
//! and waits here for the next one, so a device that reconnects catches up
//! from its last sequence and nothing depends on this in-memory hub alone.

use std::collections::HashMap;
use std::sync::Mutex;

use paybridge_domain::ids::DeviceId;
use tokio::sync::broadcast;

/// Wake-ups buffered per device channel; a slow channel that misses some
/// simply re-reads the outbox, so a small buffer is enough.
pub const DEVICE_WAKEUP_BUFFER: usize = 16;

pub trait DeviceNotifier: Send + Sync + std::fmt::Debug {
    /// A new event for `device` was stored at `seq`.
    fn notify(&self, device: &DeviceId, seq: i64);
}

/// The in-process hub.
#[derive(Debug, Default)]
pub struct PushHub {
    channels: Mutex<HashMap<DeviceId, broadcast::Sender<i64>>>,
}

impl PushHub {
    /// Subscribes to wake-ups for `device`, unless it already has `max`
    /// open channels (checked and taken under one lock, so racing opens
    /// cannot pass the cap together).
    pub fn subscribe_at_most(
        &self,
        device: &DeviceId,
        max: usize,
    ) -> Option<broadcast::Receiver<i64>> {
        let mut channels = self.channels.lock().expect("push hub lock");
        let sender = channels
            .entry(device.clone())
            .or_insert_with(|| broadcast::channel(DEVICE_WAKEUP_BUFFER).0);
        (sender.receiver_count() < max).then(|| sender.subscribe())
    }

    /// Subscribes to wake-ups for `device`.
    pub fn subscribe(&self, device: &DeviceId) -> broadcast::Receiver<i64> {
        let mut channels = self.channels.lock().expect("push hub lock");
        channels
            .entry(device.clone())
            .or_insert_with(|| broadcast::channel(DEVICE_WAKEUP_BUFFER).0)
            .subscribe()
    }
}

impl DeviceNotifier for PushHub {
    fn notify(&self, device: &DeviceId, seq: i64) {
        let mut channels = self.channels.lock().expect("push hub lock");
        if let Some(sender) = channels.get(device) {
            if sender.send(seq).is_err() {
                // Nobody listens any more: forget the channel.
                channels.remove(device);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_are_woken_for_their_device_only() {
        let hub = PushHub::default();
        let (a, b) = (DeviceId::generate(), DeviceId::generate());
        let mut rx = hub.subscribe(&a);
        hub.notify(&b, 1);
        hub.notify(&a, 2);
        assert_eq!(rx.recv().await.unwrap(), 2);
    }
}
