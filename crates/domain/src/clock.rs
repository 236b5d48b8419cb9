//! The time seam. Services receive a [`Clock`]; nothing else reads the system
//! time, so tests can move time forward (OTP expiry, lockouts, replay windows)
//! without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::OffsetDateTime;

/// A point in time, UTC. Stored as microseconds since the Unix epoch.
pub type Timestamp = OffsetDateTime;

/// Format of every time on the wire (bodies, events, webhooks): RFC 3339, UTC.
pub fn rfc3339(t: Timestamp) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("UTC timestamps always format as RFC 3339")
}

/// Whether `s` is a time as [`rfc3339`] writes it.
pub fn is_rfc3339(s: &str) -> bool {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// Source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(to_unix_micros(start))),
        }
    }

    /// Moves the clock forward (or backward, for a negative duration).
    pub fn advance(&self, by: time::Duration) {
        let micros = i64::try_from(by.whole_microseconds()).expect("duration fits in i64 micros");
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }

    pub fn set(&self, to: Timestamp) {
        self.micros.store(to_unix_micros(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        from_unix_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// Microseconds since the Unix epoch: how timestamps are stored in both databases.
pub fn to_unix_micros(t: Timestamp) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).expect("timestamp within i64 microseconds")
}

/// Inverse of [`to_unix_micros`].
pub fn from_unix_micros(micros: i64) -> Timestamp {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .expect("stored timestamps are within range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = time::macros::datetime!(2026-01-01 00:00 UTC);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(time::Duration::seconds(301));
        assert_eq!(clock.now(), start + time::Duration::seconds(301));
        let shared = clock.clone();
        shared.advance(time::Duration::minutes(1));
        assert_eq!(clock.now(), start + time::Duration::seconds(361));
    }

    #[test]
    fn micros_round_trip() {
        let t = time::macros::datetime!(2026-11-23 08:00:00.123456 UTC);
        assert_eq!(from_unix_micros(to_unix_micros(t)), t);
    }
}
