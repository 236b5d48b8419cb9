//! Pairing a first device for flow F3 (seed 002, claims 2–3): the
//! **business binding request**. A TV, car head unit, IoT box or PC makes
//! its own key pair, uploads its **device info** and shows a short user
//! code (and a QR of it); the user enters or scans the code on a trusted
//! phone (which claims the request for the account), sees the device, and
//! approves (with the biometric, choosing the card, limits, categories and
//! approval policy) or denies. Shaped after OAuth 2.0 Device Authorization
//! (RFC 8628): an unambiguous alphabet, a 10-minute expiry, and `slow_down`
//! for a device that polls too fast. Entry attempts are limited per account
//! that enters codes (a wrong code names no pairing, so it cannot be
//! counted on one): at most [`USER_CODE_MAX_WRONG_ENTRIES`] wrong entries
//! in a row, counted like a password's wrong tries (RFC 8628 §5.1: 34.5
//! bits and a rate limit).
//!
//! ```text
//! pending ──code entered on a phone──▶ claimed ──approved──▶ approved ──device collects its session──▶ collected
//!                                         └──────denied────▶ denied
//! pending | claimed | approved ──past its expiry──▶ expired
//! ```
//!
//! Approving starts a new 10-minute window for the device to collect its
//! session: the device polls every few seconds, so it collects at once.

use crate::device::DeviceType;
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
/// Business binding requests one client address may start in an hour: a
/// device pairs once; a flood of requests is somebody farming user codes.
pub const MAX_PAIRINGS_PER_ADDRESS_HOUR: i64 = 20;
/// Business binding requests waiting for a phone at once, wallet-wide: a
/// bound on what unauthenticated callers can make the wallet store.
pub const MAX_OPEN_PAIRINGS: i64 = 100_000;
/// Longest model, vendor or serial of a device's info, in characters.
pub const DEVICE_INFO_FIELD_MAX_CHARS: usize = 64;

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

/// What a first device says of itself in its business binding request
/// (终端设备信息): shown to the user on the phone, sealed into the
/// transfer payment agreement. Its public key travels beside it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceInfo {
    #[serde(rename = "type")]
    pub device_type: DeviceType,
    /// e.g. "Bravia XR-55A80L".
    pub model: String,
    /// e.g. "Sony".
    pub vendor: String,
    /// The maker's serial number.
    pub serial: String,
}

impl DeviceInfo {
    /// Checks what a device sent: a first device (not a phone: a phone pays
    /// for itself), and model, vendor and serial of 1 to
    /// [`DEVICE_INFO_FIELD_MAX_CHARS`] printable characters (a serial:
    /// letters, digits, `-`, `_`, `.`, `:`).
    pub fn new(
        device_type: DeviceType,
        model: &str,
        vendor: &str,
        serial: &str,
    ) -> Result<Self, DomainError> {
        if device_type == DeviceType::Phone {
            return Err(DomainError::new(
                ErrorCode::InvalidRequest,
                "device.type: a first device is a pc, tv, car or iot box (a phone pays for itself)",
            ));
        }
        let text = |field: &str, v: &str| -> Result<String, DomainError> {
            let v = v.trim();
            let n = v.chars().count();
            if n == 0 || n > DEVICE_INFO_FIELD_MAX_CHARS || v.chars().any(char::is_control) {
                return Err(DomainError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "device.{field}: 1 to {DEVICE_INFO_FIELD_MAX_CHARS} printable characters"
                    ),
                ));
            }
            Ok(v.to_owned())
        };
        let serial = text("serial", serial)?;
        if !serial
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            return Err(DomainError::new(
                ErrorCode::InvalidRequest,
                "device.serial: letters, digits, '-', '_', '.' and ':'",
            ));
        }
        Ok(Self {
            device_type,
            model: text("model", model)?,
            vendor: text("vendor", vendor)?,
            serial,
        })
    }

    /// The name the device gets unless the user gives one: vendor and model.
    pub fn default_name(&self) -> String {
        format!("{} {}", self.vendor, self.model)
            .chars()
            .take(crate::device::DEVICE_NAME_MAX_CHARS)
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum PairingState {
    Pending,
    /// A phone of an account entered the code; only that account answers.
    Claimed,
    Approved,
    Collected,
    Denied,
    Expired,
}

impl PairingState {
    pub fn as_str(self) -> &'static str {
        match self {
            PairingState::Pending => "pending",
            PairingState::Claimed => "claimed",
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

    /// The state as of `now`: a request not finished before its expiry is expired.
    pub fn at(self, now: Timestamp) -> PairingState {
        match self.state {
            PairingState::Pending | PairingState::Claimed | PairingState::Approved
                if now >= self.expires_at =>
            {
                PairingState::Expired
            }
            s => s,
        }
    }

    /// Whether the phone's user may still answer it.
    fn answerable(self, expected: PairingState, now: Timestamp) -> Result<(), DomainError> {
        match self.at(now) {
            s if s == expected => Ok(()),
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

    /// A phone entered (or scanned) the code: the request is this
    /// account's to answer from now on.
    pub fn claim(self, now: Timestamp) -> Result<PairingStatus, DomainError> {
        self.answerable(PairingState::Pending, now)?;
        Ok(PairingStatus {
            state: PairingState::Claimed,
            ..self
        })
    }

    /// The user approved on the phone (with the biometric); the device has
    /// a fresh [`PAIRING_TTL_SECS`] to collect its session.
    pub fn approve(self, now: Timestamp) -> Result<PairingStatus, DomainError> {
        self.answerable(PairingState::Claimed, now)?;
        Ok(PairingStatus {
            state: PairingState::Approved,
            expires_at: now + time::Duration::seconds(PAIRING_TTL_SECS),
            ..self
        })
    }

    /// The user said no on the phone.
    pub fn deny(self, now: Timestamp) -> Result<PairingStatus, DomainError> {
        self.answerable(PairingState::Claimed, now)?;
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
            PairingState::Pending | PairingState::Claimed => Err(refuse(
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
    fn a_pairing_is_claimed_then_answered_once_within_ten_minutes() {
        let started = PairingStatus::started(T0);
        assert_eq!(
            started.approve(T0).unwrap_err().code,
            ErrorCode::PairingClosed,
            "only a claimed pairing is answered"
        );
        let s = started.claim(T0).unwrap();
        assert_eq!(s.state, PairingState::Claimed);
        assert_eq!(s.claim(T0).unwrap_err().code, ErrorCode::PairingClosed);
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
        assert_eq!(started.at(late), PairingState::Expired);
        assert_eq!(s.at(late), PairingState::Expired);
        assert_eq!(s.approve(late).unwrap_err().code, ErrorCode::PairingExpired);
        // Approving started a new window to collect in.
        let approved_late = s
            .approve(late - time::Duration::seconds(1))
            .unwrap()
            .collect(late)
            .unwrap();
        assert_eq!(approved_late.state, PairingState::Collected);
        assert_eq!(
            approved
                .collect(T0 + time::Duration::seconds(PAIRING_TTL_SECS))
                .unwrap_err()
                .code,
            ErrorCode::PairingExpired
        );
        let denied = s.deny(T0).unwrap();
        assert_eq!(
            denied.collect(T0).unwrap_err().code,
            ErrorCode::PairingDenied
        );
        assert_eq!(s.collect(T0).unwrap_err().code, ErrorCode::PairingPending);
        assert_eq!(
            started.collect(T0).unwrap_err().code,
            ErrorCode::PairingPending
        );
    }

    #[test]
    fn device_info_is_a_first_device_with_short_printable_fields() {
        let tv = DeviceInfo::new(DeviceType::Tv, " Bravia XR-55 ", "Sony", "SN-123:A").unwrap();
        assert_eq!(tv.model, "Bravia XR-55");
        assert_eq!(tv.default_name(), "Sony Bravia XR-55");
        let long = "x".repeat(DEVICE_INFO_FIELD_MAX_CHARS + 1);
        for (t, model, vendor, serial) in [
            (DeviceType::Phone, "P", "V", "S1"),
            (DeviceType::Tv, "", "V", "S1"),
            (DeviceType::Tv, long.as_str(), "V", "S1"),
            (DeviceType::Car, "M", "V\u{7}", "S1"),
            (DeviceType::Iot, "M", "V", "S 1"),
        ] {
            let e = DeviceInfo::new(t, model, vendor, serial).unwrap_err();
            assert_eq!(
                e.code,
                ErrorCode::InvalidRequest,
                "{model:?} {vendor:?} {serial:?}"
            );
        }
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
