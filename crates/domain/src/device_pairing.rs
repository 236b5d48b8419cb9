//! Pairing a first device for flow F3 (seed 002, claims 2–3): the
//! **business binding request**. A TV, car head unit, IoT box or PC uploads
//! its **device info** and shows a short user code (and a QR of it); the
//! user enters or scans the code on a trusted phone and approves or denies.
//! Shaped after OAuth 2.0 Device Authorization (RFC 8628): an unambiguous
//! alphabet, a 10-minute expiry, and `slow_down` for a device that polls
//! too fast. Entry attempts are limited per account that enters codes (a
//! wrong code names no pairing, so it cannot be counted on one): at most
//! [`USER_CODE_MAX_WRONG_ENTRIES`] wrong entries in a row, counted like a
//! password's wrong tries (RFC 8628 §5.1: 34.5 bits and a rate limit).
//!
//! ```text
//! pending ──approved on the phone──▶ approved ──device collects its session──▶ collected
//!    ├─────denied on the phone─────▶ denied
//!    └────────past its expiry───────▶ expired
//! ```

use crate::error::{DomainError, ErrorCode};
use crate::Timestamp;

/// A business binding request lives 10 minutes (RFC 8628 §3.2 `expires_in`).
pub const PAIRING_TTL_SECS: i64 = 10 * 60;
/// How often the first device may ask whether it was approved.
pub const PAIRING_POLL_INTERVAL_SECS: i64 = 5;
/// Wrong user codes one account may enter in a row before its entry is
/// locked for a while.
pub const USER_CODE_MAX_WRONG_ENTRIES: u32 = 5;
/// The user code's alphabet: 20 consonants, no vowels (no words), no
/// look-alikes (RFC 8628 §6.1: base-20, 8 characters ≈ 34.5 bits).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a user code (shown as `XXXX-XXXX`).
pub const USER_CODE_LEN: usize = 8;

/// A user code, normalised: 8 characters of [`USER_CODE_ALPHABET`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserCode(String);

impl UserCode {
    /// A code from 8 random words (the caller draws them from the OS). The
    /// bias of `% 20` over a `u32` is below 2⁻²⁸: negligible.
    pub fn from_random(words: [u32; USER_CODE_LEN]) -> Self {
        let n = USER_CODE_ALPHABET.len() as u32;
        Self(
            words
                .iter()
                .map(|w| USER_CODE_ALPHABET[(w % n) as usize] as char)
                .collect(),
        )
    }

    /// What the user typed: case, spaces and dashes do not matter
    /// (RFC 8628 §6.1); anything else outside the alphabet is refused.
    pub fn parse(typed: &str) -> Result<Self, DomainError> {
        let code: String = typed
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if code.len() != USER_CODE_LEN || !code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)) {
            return Err(DomainError::new(
                ErrorCode::UserCodeInvalid,
                "the code is the 8 letters the device shows, like BDFG-HJKL",
            ));
        }
        Ok(Self(code))
    }

    /// The normalised form (what is hashed and compared).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How the device shows it: `BDFG-HJKL`.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum PairingState {
    Pending,
    Approved,
    Collected,
    Denied,
    Expired,
}

impl PairingState {
    pub fn as_str(self) -> &'static str {
        match self {
            PairingState::Pending => "pending",
            PairingState::Approved => "approved",
            PairingState::Collected => "collected",
            PairingState::Denied => "denied",
            PairingState::Expired => "expired",
        }
    }
}

crate::wire_names!(PairingState);

/// Where a business binding request is, and its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingStatus {
    pub state: PairingState,
    pub expires_at: Timestamp,
    /// When the first device last asked (for `slow_down`).
    pub last_polled_at: Option<Timestamp>,
}

fn refuse(code: ErrorCode, message: &str) -> DomainError {
    DomainError::new(code, message)
}

impl PairingStatus {
    pub fn started(now: Timestamp) -> Self {
        Self {
            state: PairingState::Pending,
            expires_at: now + time::Duration::seconds(PAIRING_TTL_SECS),
            last_polled_at: None,
        }
    }

    /// The state as of `now`: a pending request past its expiry is expired.
    pub fn at(self, now: Timestamp) -> PairingState {
        match self.state {
            PairingState::Pending | PairingState::Approved if now >= self.expires_at => {
                PairingState::Expired
            }
            s => s,
        }
    }

    fn pending(self, now: Timestamp) -> Result<(), DomainError> {
        match self.at(now) {
            PairingState::Pending => Ok(()),
            PairingState::Expired => Err(refuse(
                ErrorCode::PairingExpired,
                "this pairing expired: start it again on the device",
            )),
            _ => Err(refuse(
                ErrorCode::PairingClosed,
                "this pairing was already answered",
            )),
        }
    }

    /// The user approved on the phone (with the biometric).
    pub fn approve(self, now: Timestamp) -> Result<PairingStatus, DomainError> {
        self.pending(now)?;
        Ok(PairingStatus {
            state: PairingState::Approved,
            ..self
        })
    }

    /// The user said no on the phone.
    pub fn deny(self, now: Timestamp) -> Result<PairingStatus, DomainError> {
        self.pending(now)?;
        Ok(PairingStatus {
            state: PairingState::Denied,
            ..self
        })
    }

    /// The first device asks how it went. Asking again within
    /// [`PAIRING_POLL_INTERVAL_SECS`] is `slow_down` (RFC 8628 §3.5); the
    /// poll is recorded either way, so a device that keeps hammering keeps
    /// being told.
    pub fn poll(self, now: Timestamp) -> (PairingStatus, Result<PairingState, DomainError>) {
        let next = PairingStatus {
            last_polled_at: Some(now),
            ..self
        };
        if let Some(last) = self.last_polled_at {
            if now - last < time::Duration::seconds(PAIRING_POLL_INTERVAL_SECS) {
                return (
                    next,
                    Err(refuse(
                        ErrorCode::SlowDown,
                        &format!("ask at most every {PAIRING_POLL_INTERVAL_SECS} seconds"),
                    )),
                );
            }
        }
        (next, Ok(self.at(now)))
    }

    /// The approved device collects its session, once.
    pub fn collect(self, now: Timestamp) -> Result<PairingStatus, DomainError> {
        match self.at(now) {
            PairingState::Approved => Ok(PairingStatus {
                state: PairingState::Collected,
                ..self
            }),
            PairingState::Pending => Err(refuse(
                ErrorCode::PairingPending,
                "the user has not answered yet",
            )),
            PairingState::Denied => Err(refuse(
                ErrorCode::PairingDenied,
                "the user declined to pair this device",
            )),
            PairingState::Expired => Err(refuse(
                ErrorCode::PairingExpired,
                "this pairing expired: start it again on the device",
            )),
            PairingState::Collected => Err(refuse(
                ErrorCode::PairingClosed,
                "this pairing's session was already collected",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: Timestamp = datetime!(2026-12-01 10:00 UTC);

    #[test]
    fn user_codes_use_the_unambiguous_alphabet_and_forgive_case_and_dashes() {
        let code = UserCode::from_random([0, 1, 2, 3, 19, 20, 39, u32::MAX]);
        assert_eq!(code.as_str().len(), USER_CODE_LEN);
        assert!(code
            .as_str()
            .bytes()
            .all(|b| USER_CODE_ALPHABET.contains(&b)));
        assert_eq!(&code.as_str()[..4], "BCDF");
        let shown = code.display();
        assert_eq!(shown.len(), 9);
        assert_eq!(UserCode::parse(&shown).unwrap(), code);
        assert_eq!(
            UserCode::parse(&shown.to_lowercase().replace('-', " ")).unwrap(),
            code
        );
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "BCDF-GHJA",
            "0CDF-GHJK",
            "BCDF_GHJK",
        ] {
            let e = UserCode::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::UserCodeInvalid, "{bad}");
        }
    }

    #[test]
    fn a_pairing_is_answered_once_within_ten_minutes() {
        let s = PairingStatus::started(T0);
        let approved = s.approve(T0).unwrap();
        assert_eq!(approved.state, PairingState::Approved);
        assert_eq!(
            approved.approve(T0).unwrap_err().code,
            ErrorCode::PairingClosed
        );
        assert_eq!(
            approved.deny(T0).unwrap_err().code,
            ErrorCode::PairingClosed
        );
        let collected = approved.collect(T0).unwrap();
        assert_eq!(
            collected.collect(T0).unwrap_err().code,
            ErrorCode::PairingClosed
        );

        let late = T0 + time::Duration::seconds(PAIRING_TTL_SECS);
        assert_eq!(s.at(late), PairingState::Expired);
        assert_eq!(s.approve(late).unwrap_err().code, ErrorCode::PairingExpired);
        assert_eq!(
            approved.collect(late).unwrap_err().code,
            ErrorCode::PairingExpired
        );
        let denied = s.deny(T0).unwrap();
        assert_eq!(
            denied.collect(T0).unwrap_err().code,
            ErrorCode::PairingDenied
        );
        assert_eq!(s.collect(T0).unwrap_err().code, ErrorCode::PairingPending);
    }

    #[test]
    fn a_device_polling_too_fast_is_told_to_slow_down() {
        let s = PairingStatus::started(T0);
        let (s, first) = s.poll(T0);
        assert_eq!(first.unwrap(), PairingState::Pending);
        let soon = T0 + time::Duration::seconds(PAIRING_POLL_INTERVAL_SECS - 1);
        let (s, again) = s.poll(soon);
        assert_eq!(again.unwrap_err().code, ErrorCode::SlowDown);
        // The hammering poll counts: the interval runs from it.
        let (_, later) = s.poll(T0 + time::Duration::seconds(PAIRING_POLL_INTERVAL_SECS));
        assert_eq!(later.unwrap_err().code, ErrorCode::SlowDown);
        let (_, ok) = s.poll(soon + time::Duration::seconds(PAIRING_POLL_INTERVAL_SECS));
        assert_eq!(ok.unwrap(), PairingState::Pending);
    }
}
