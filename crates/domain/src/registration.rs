//! Flow F2: a bank registers a wallet account for its customer (the account
//! starts restricted), and the wallet runs security authentication when a
//! security condition holds, before the account is fully usable (seed 001).
//!
//! Security authentication, as a state machine:
//!
//! ```text
//! started ──environment ok──▶ otp_sent ──code──▶ otp_verified ──ID digits──▶ identity_confirmed ──passwords──▶ passed
//!    └──environment refused──▶ failed            (5 wrong digits, or the code locked) ──▶ failed
//! ```

use crate::error::{DomainError, ErrorCode};
use crate::Timestamp;

/// A security authentication must finish within 15 minutes.
pub const SECURITY_AUTH_TTL_SECS: i64 = 15 * 60;
/// Wrong tries at the ID number's last digits before it fails.
pub const ID_DIGITS_MAX_ATTEMPTS: u32 = 5;
/// How many trailing characters of the ID number are asked for.
pub const ID_DIGITS_ASKED: usize = 4;
/// How long an account's ID-digit step stays locked after five wrong
/// answers in a row across its authentications (each lock longer).
pub const ID_DIGITS_LOCK_SECS: i64 = 30 * 60;

/// Why security authentication is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumIter)]
pub enum SecurityCondition {
    /// A bank registered the account and its owner never authenticated.
    PartnerRegistered,
    /// The device is not yet trusted for this account.
    NewDevice,
    /// The operation is sensitive (changing credentials, unbinding, large payments).
    SensitiveOperation,
    /// The login or payment password had 100 wrong tries in a row: only
    /// this step-up unlocks it (always on).
    PasswordsLocked,
}

impl SecurityCondition {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityCondition::PartnerRegistered => "partner_registered",
            SecurityCondition::NewDevice => "new_device",
            SecurityCondition::SensitiveOperation => "sensitive_operation",
            SecurityCondition::PasswordsLocked => "passwords_locked",
        }
    }
}

/// Which conditions demand security authentication (configurable; all on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityPolicy {
    pub partner_registered: bool,
    pub new_device: bool,
    pub sensitive_operation: bool,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        Self {
            partner_registered: true,
            new_device: true,
            sensitive_operation: true,
        }
    }
}

/// What is true of the account, device and operation at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityFacts {
    pub partner_registered_unauthenticated: bool,
    pub device_trusted: bool,
    pub sensitive: bool,
    /// A password needs a step-up ([`crate::credentials::MAX_CONSECUTIVE_FAILURES`]).
    pub passwords_locked: bool,
}

impl SecurityPolicy {
    /// The conditions that hold and are switched on.
    pub fn conditions(&self, f: &SecurityFacts) -> Vec<SecurityCondition> {
        let mut out = Vec::new();
        if self.partner_registered && f.partner_registered_unauthenticated {
            out.push(SecurityCondition::PartnerRegistered);
        }
        if self.new_device && !f.device_trusted {
            out.push(SecurityCondition::NewDevice);
        }
        if self.sensitive_operation && f.sensitive {
            out.push(SecurityCondition::SensitiveOperation);
        }
        if f.passwords_locked {
            out.push(SecurityCondition::PasswordsLocked);
        }
        out
    }
}

/// What the app reports about the device it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEnvironment {
    pub emulator: bool,
    pub rooted: bool,
    /// `android`, `ios` or `harmonyos`.
    pub os: String,
    /// e.g. `14` or `17.4`.
    pub os_version: String,
    /// Attributes the platform's attestation reported; `risk:*` ones refuse.
    pub attributes: Vec<String>,
}

/// Oldest supported OS major versions.
pub const MIN_OS_MAJOR: [(&str, u32); 3] = [("android", 10), ("ios", 15), ("harmonyos", 3)];

/// Why a device environment was refused (each is its own reason code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvironmentRefusal {
    Emulator,
    Rooted,
    OsUnsupported,
    Flagged,
}

impl EnvironmentRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentRefusal::Emulator => "emulator",
            EnvironmentRefusal::Rooted => "rooted",
            EnvironmentRefusal::OsUnsupported => "os_unsupported",
            EnvironmentRefusal::Flagged => "flagged",
        }
    }
}

impl DeviceEnvironment {
    pub fn check(&self) -> Result<(), EnvironmentRefusal> {
        if self.emulator {
            return Err(EnvironmentRefusal::Emulator);
        }
        if self.rooted {
            return Err(EnvironmentRefusal::Rooted);
        }
        let major: Option<u32> = self
            .os_version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok());
        let supported = MIN_OS_MAJOR
            .iter()
            .find(|(os, _)| *os == self.os.to_ascii_lowercase())
            .zip(major)
            .is_some_and(|((_, min), major)| major >= *min);
        if !supported {
            return Err(EnvironmentRefusal::OsUnsupported);
        }
        // Matched as the platform means them: case and padding do not hide a risk.
        if self
            .attributes
            .iter()
            .any(|a| a.trim().to_ascii_lowercase().starts_with("risk:"))
        {
            return Err(EnvironmentRefusal::Flagged);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumIter)]
pub enum AuthState {
    OtpSent,
    OtpVerified,
    IdentityConfirmed,
    Passed,
    Failed,
}

impl AuthState {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthState::OtpSent => "otp_sent",
            AuthState::OtpVerified => "otp_verified",
            AuthState::IdentityConfirmed => "identity_confirmed",
            AuthState::Passed => "passed",
            AuthState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<AuthState> {
        <Self as strum::IntoEnumIterator>::iter().find(|a| a.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthStatus {
    pub state: AuthState,
    pub digit_attempts: u32,
    pub expires_at: Timestamp,
}

fn refuse(code: ErrorCode, m: &str) -> DomainError {
    DomainError::new(code, m)
}

impl AuthStatus {
    /// Started after the environment check passed and the OTP went out.
    pub fn started(now: Timestamp) -> Self {
        Self {
            state: AuthState::OtpSent,
            digit_attempts: 0,
            expires_at: now + time::Duration::seconds(SECURITY_AUTH_TTL_SECS),
        }
    }

    fn at(&self, expected: AuthState, now: Timestamp) -> Result<(), DomainError> {
        if matches!(self.state, AuthState::Passed | AuthState::Failed) {
            return Err(refuse(
                ErrorCode::SecurityAuthClosed,
                "this security authentication is over; start a new one",
            ));
        }
        if now >= self.expires_at {
            return Err(refuse(
                ErrorCode::SecurityAuthClosed,
                "this security authentication expired; start a new one",
            ));
        }
        if self.state != expected {
            return Err(refuse(
                ErrorCode::SecurityAuthStep,
                &format!(
                    "the next step is not this one (now: {})",
                    self.state.as_str()
                ),
            ));
        }
        Ok(())
    }

    pub fn otp_verified(self, now: Timestamp) -> Result<AuthStatus, DomainError> {
        self.at(AuthState::OtpSent, now)?;
        Ok(AuthStatus {
            state: AuthState::OtpVerified,
            ..self
        })
    }

    /// The OTP challenge died: the authentication fails.
    pub fn fail(self) -> AuthStatus {
        AuthStatus {
            state: AuthState::Failed,
            ..self
        }
    }

    /// Whether the ID digits are the step this authentication is at.
    pub fn ready_for_identity(&self, now: Timestamp) -> Result<(), DomainError> {
        self.at(AuthState::OtpVerified, now)
    }

    /// The last digits of the ID number: the new status, and the outcome
    /// (a wrong answer is counted; the fifth fails the authentication).
    pub fn identity(
        self,
        correct: bool,
        now: Timestamp,
    ) -> Result<(AuthStatus, Result<(), DomainError>), DomainError> {
        self.at(AuthState::OtpVerified, now)?;
        if correct {
            return Ok((
                AuthStatus {
                    state: AuthState::IdentityConfirmed,
                    ..self
                },
                Ok(()),
            ));
        }
        let attempts = self.digit_attempts + 1;
        if attempts >= ID_DIGITS_MAX_ATTEMPTS {
            return Ok((
                AuthStatus {
                    state: AuthState::Failed,
                    digit_attempts: attempts,
                    ..self
                },
                Err(refuse(
                    ErrorCode::SecurityAuthLocked,
                    "too many wrong answers; the authentication failed",
                )),
            ));
        }
        Ok((
            AuthStatus {
                digit_attempts: attempts,
                ..self
            },
            Err(refuse(
                ErrorCode::IdentityDigitsWrong,
                &format!(
                    "those are not the last digits of your ID number; {} tries left",
                    ID_DIGITS_MAX_ATTEMPTS - attempts
                ),
            )),
        ))
    }

    pub fn passwords_set(self, now: Timestamp) -> Result<AuthStatus, DomainError> {
        self.at(AuthState::IdentityConfirmed, now)?;
        Ok(AuthStatus {
            state: AuthState::Passed,
            ..self
        })
    }
}

crate::wire_names!(AuthState, SecurityCondition);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn env() -> DeviceEnvironment {
        DeviceEnvironment {
            emulator: false,
            rooted: false,
            os: "android".into(),
            os_version: "14".into(),
            attributes: vec!["sandbox:play-integrity-ok".into()],
        }
    }

    #[test]
    fn environments_are_checked_one_reason_each() {
        assert!(env().check().is_ok());
        assert_eq!(
            DeviceEnvironment {
                emulator: true,
                ..env()
            }
            .check(),
            Err(EnvironmentRefusal::Emulator)
        );
        assert_eq!(
            DeviceEnvironment {
                rooted: true,
                ..env()
            }
            .check(),
            Err(EnvironmentRefusal::Rooted)
        );
        assert_eq!(
            DeviceEnvironment {
                os_version: "9".into(),
                ..env()
            }
            .check(),
            Err(EnvironmentRefusal::OsUnsupported)
        );
        assert_eq!(
            DeviceEnvironment {
                os: "symbian".into(),
                ..env()
            }
            .check(),
            Err(EnvironmentRefusal::OsUnsupported)
        );
        assert!(DeviceEnvironment {
            os: "ios".into(),
            os_version: "17.4".into(),
            ..env()
        }
        .check()
        .is_ok());
        for flagged in [
            "risk:hooking-framework",
            "RISK:root",
            " risk:root",
            "Risk:emulator\t",
        ] {
            assert_eq!(
                DeviceEnvironment {
                    attributes: vec![flagged.into()],
                    ..env()
                }
                .check(),
                Err(EnvironmentRefusal::Flagged),
                "{flagged:?}"
            );
        }
    }

    #[test]
    fn policy_conditions_follow_the_switches() {
        let facts = SecurityFacts {
            partner_registered_unauthenticated: true,
            device_trusted: false,
            sensitive: true,
            passwords_locked: false,
        };
        assert_eq!(SecurityPolicy::default().conditions(&facts).len(), 3);
        let off = SecurityPolicy {
            partner_registered: false,
            new_device: true,
            sensitive_operation: false,
        };
        assert_eq!(off.conditions(&facts), vec![SecurityCondition::NewDevice]);
        let calm = SecurityFacts {
            partner_registered_unauthenticated: false,
            device_trusted: true,
            sensitive: false,
            passwords_locked: false,
        };
        assert!(SecurityPolicy::default().conditions(&calm).is_empty());
        // A password locked for a step-up asks for one, whatever the switches.
        let locked = SecurityFacts {
            passwords_locked: true,
            ..calm
        };
        let all_off = SecurityPolicy {
            partner_registered: false,
            new_device: false,
            sensitive_operation: false,
        };
        assert_eq!(
            all_off.conditions(&locked),
            vec![SecurityCondition::PasswordsLocked]
        );
    }

    #[test]
    fn steps_go_in_order_and_wrong_digits_lock() {
        let t0 = datetime!(2026-11-23 08:00 UTC);
        let s = AuthStatus::started(t0);
        assert_eq!(
            s.passwords_set(t0).unwrap_err().code,
            ErrorCode::SecurityAuthStep
        );
        let s = s.otp_verified(t0).unwrap();
        let mut s2 = s;
        for i in 1..ID_DIGITS_MAX_ATTEMPTS {
            let (next, outcome) = s2.identity(false, t0).unwrap();
            assert_eq!(
                outcome.unwrap_err().code,
                ErrorCode::IdentityDigitsWrong,
                "try {i}"
            );
            s2 = next;
        }
        let (locked, outcome) = s2.identity(false, t0).unwrap();
        assert_eq!(outcome.unwrap_err().code, ErrorCode::SecurityAuthLocked);
        assert_eq!(locked.state, AuthState::Failed);
        assert_eq!(
            locked.identity(true, t0).unwrap_err().code,
            ErrorCode::SecurityAuthClosed
        );
        let (ok, outcome) = s.identity(true, t0).unwrap();
        assert!(outcome.is_ok());
        let passed = ok.passwords_set(t0).unwrap();
        assert_eq!(passed.state, AuthState::Passed);
        let late = t0 + time::Duration::seconds(SECURITY_AUTH_TTL_SECS);
        assert_eq!(
            ok.passwords_set(late).unwrap_err().code,
            ErrorCode::SecurityAuthClosed
        );
    }
}
