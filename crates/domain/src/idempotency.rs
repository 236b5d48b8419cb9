//! The idempotency decision: what a request carrying an `Idempotency-Key`
//! that is already known gets. Pure, in the shape of [`crate::ledger::apply`]:
//! the store finds the key's record, asks [`decide`], and carries out the
//! answer (take the claim over, replay, or refuse) in the same transaction.
//!
//! ```text
//!                      ┌── expired ─────────────────────────────▶ take over
//! known key ──────────▶├── in progress, lease run out, same body ─▶ take over (its owner died)
//!                      ├── another body ─────────────────────────▶ mismatch
//!                      ├── completed ────────────────────────────▶ replay the saved answer
//!                      └── in progress ──────────────────────────▶ in progress (wait, retry)
//! ```

use crate::Timestamp;

/// Where a known key's request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    /// A request holds the key until its lease ends.
    InProgress { lease_until: Timestamp },
    /// Its answer is saved.
    Completed,
}

/// A known key's record, as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownKey<'a> {
    /// Hash of the request that first used the key.
    pub request_hash: &'a str,
    pub state: ClaimState,
    /// After this the record is forgotten (as if the key were new).
    pub expires_at: Timestamp,
}

/// What the new request with a known key gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The key is free for this request (expired, or its holder died).
    TakeOver,
    /// The same request finished before: answer with what was saved.
    Replay,
    /// A concurrent request with this key is still running.
    InProgress,
    /// The key was used for another request.
    Mismatch,
}

/// The decision for a request hashing to `request_hash` at `now`.
pub fn decide(known: &KnownKey<'_>, request_hash: &str, now: Timestamp) -> Decision {
    if known.expires_at <= now {
        return Decision::TakeOver;
    }
    let same = known.request_hash == request_hash;
    match known.state {
        ClaimState::InProgress { lease_until } if lease_until <= now && same => Decision::TakeOver,
        _ if !same => Decision::Mismatch,
        ClaimState::Completed => Decision::Replay,
        ClaimState::InProgress { .. } => Decision::InProgress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: Timestamp = datetime!(2026-12-01 08:00 UTC);

    fn known(state: ClaimState, expires_in_secs: i64) -> KnownKey<'static> {
        KnownKey {
            request_hash: "h1",
            state,
            expires_at: NOW + time::Duration::seconds(expires_in_secs),
        }
    }

    fn leased(secs: i64) -> ClaimState {
        ClaimState::InProgress {
            lease_until: NOW + time::Duration::seconds(secs),
        }
    }

    #[test]
    fn each_case_has_its_answer() {
        use Decision::*;
        assert_eq!(decide(&known(ClaimState::Completed, 10), "h1", NOW), Replay);
        assert_eq!(
            decide(&known(ClaimState::Completed, 10), "h2", NOW),
            Mismatch
        );
        assert_eq!(
            decide(&known(ClaimState::Completed, 0), "h2", NOW),
            TakeOver,
            "expired"
        );
        assert_eq!(decide(&known(leased(30), 10), "h1", NOW), InProgress);
        assert_eq!(decide(&known(leased(30), 10), "h2", NOW), Mismatch);
        assert_eq!(
            decide(&known(leased(0), 10), "h1", NOW),
            TakeOver,
            "its owner died"
        );
        assert_eq!(
            decide(&known(leased(0), 10), "h2", NOW),
            Mismatch,
            "a dead claim is taken over only by the same request"
        );
    }
}
