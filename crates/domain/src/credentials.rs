//! Rules for what a person types to prove it is them: the login password,
//! the six-digit payment password, and the lockout after wrong tries. Hashing
//! (Argon2id) is the crypto crate's; this module decides what is acceptable
//! and what a wrong answer costs.

use crate::error::{DomainError, ErrorCode};
use crate::Timestamp;

/// Login passwords: long enough to resist guessing, short enough to hash fast.
pub const LOGIN_PASSWORD_MIN_CHARS: usize = 8;
pub const LOGIN_PASSWORD_MAX_CHARS: usize = 128;

/// Wrong tries before a password is locked.
pub const PASSWORD_MAX_ATTEMPTS: u32 = 5;
/// How long a payment password stays locked after the last allowed wrong try.
pub const PAYMENT_PASSWORD_LOCK_SECS: i64 = 30 * 60;
/// How long a login stays locked (shorter: the phone owner may just have forgotten).
pub const LOGIN_LOCK_SECS: i64 = 15 * 60;

pub fn check_login_password(password: &str) -> Result<(), DomainError> {
    let n = password.chars().count();
    if !(LOGIN_PASSWORD_MIN_CHARS..=LOGIN_PASSWORD_MAX_CHARS).contains(&n) {
        return Err(DomainError::new(
            ErrorCode::PasswordTooWeak,
            format!(
                "a login password has {LOGIN_PASSWORD_MIN_CHARS} to {LOGIN_PASSWORD_MAX_CHARS} characters"
            ),
        ));
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|x| **x).count() < 2 {
        return Err(DomainError::new(
            ErrorCode::PasswordTooWeak,
            "a login password mixes at least two of: lower case, upper case, digits, symbols",
        ));
    }
    Ok(())
}

/// Exactly six digits, and not one of the patterns tried first (all equal,
/// ascending or descending runs).
pub fn check_payment_password(pin: &str) -> Result<(), DomainError> {
    if !is_six_digits(pin) {
        return Err(DomainError::new(
            ErrorCode::PasswordTooWeak,
            "a payment password is exactly 6 digits",
        ));
    }
    let d: Vec<i16> = pin.bytes().map(|b| i16::from(b - b'0')).collect();
    let steps: Vec<i16> = d.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.iter().all(|s| *s == steps[0]) && steps[0].abs() <= 1 {
        return Err(DomainError::new(
            ErrorCode::PasswordTooWeak,
            "a payment password cannot be all one digit or a run like 123456",
        ));
    }
    Ok(())
}

pub fn is_six_digits(pin: &str) -> bool {
    pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit())
}

/// The wrong-try counter of one password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PasswordGuard {
    pub failed_attempts: u32,
    pub locked_until: Option<Timestamp>,
}

/// Why a try was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardRefusal {
    /// Wrong; `remaining` more tries before the lock.
    Wrong { remaining: u32 },
    /// Locked until then (also when this try locked it).
    Locked { until: Timestamp },
}

impl PasswordGuard {
    /// Before checking the password: refused outright while locked.
    pub fn admit(&self, now: Timestamp) -> Result<(), GuardRefusal> {
        match self.locked_until {
            Some(until) if now < until => Err(GuardRefusal::Locked { until }),
            _ => Ok(()),
        }
    }

    /// After checking: the guard to save and the outcome. A success resets
    /// the count; a lock that has run out starts a fresh count.
    pub fn record(
        self,
        correct: bool,
        now: Timestamp,
        lock_secs: i64,
    ) -> (PasswordGuard, Result<(), GuardRefusal>) {
        let base = match self.locked_until {
            Some(until) if now >= until => PasswordGuard::default(),
            _ => self,
        };
        if correct {
            return (PasswordGuard::default(), Ok(()));
        }
        let failed = base.failed_attempts + 1;
        if failed >= PASSWORD_MAX_ATTEMPTS {
            let until = now + time::Duration::seconds(lock_secs);
            (
                PasswordGuard {
                    failed_attempts: failed,
                    locked_until: Some(until),
                },
                Err(GuardRefusal::Locked { until }),
            )
        } else {
            (
                PasswordGuard {
                    failed_attempts: failed,
                    locked_until: None,
                },
                Err(GuardRefusal::Wrong {
                    remaining: PASSWORD_MAX_ATTEMPTS - failed,
                }),
            )
        }
    }
}

impl GuardRefusal {
    /// As an error the caller sees; `wrong` is the code for a wrong answer.
    pub fn into_error(self, wrong: ErrorCode, now: Timestamp) -> DomainError {
        match self {
            GuardRefusal::Wrong { remaining } => DomainError::new(
                wrong,
                format!("wrong password; {remaining} tries left before it is locked"),
            ),
            GuardRefusal::Locked { until } => DomainError::new(
                ErrorCode::PasswordLocked,
                format!(
                    "too many wrong tries; locked for another {} minutes",
                    ((until - now).whole_seconds() + 59) / 60
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn payment_passwords_are_six_digits_and_not_trivial() {
        assert!(check_payment_password("482916").is_ok());
        assert!(check_payment_password("135790").is_ok());
        for bad in ["12345", "1234567", "12a456", "111111", "123456", "654321"] {
            assert_eq!(
                check_payment_password(bad).unwrap_err().code,
                ErrorCode::PasswordTooWeak,
                "{bad}"
            );
        }
    }

    #[test]
    fn login_passwords_need_length_and_variety() {
        assert!(check_login_password("correct horse 9").is_ok());
        assert!(check_login_password("short1").is_err());
        assert!(check_login_password("alllowercaseletters").is_err());
    }

    #[test]
    fn five_wrong_tries_lock_for_the_period_then_a_fresh_count() {
        let t0 = datetime!(2026-01-01 00:00 UTC);
        let mut g = PasswordGuard::default();
        for i in 1..=4 {
            let (next, r) = g.record(false, t0, PAYMENT_PASSWORD_LOCK_SECS);
            assert_eq!(r, Err(GuardRefusal::Wrong { remaining: 5 - i }));
            g = next;
        }
        let (g, r) = g.record(false, t0, PAYMENT_PASSWORD_LOCK_SECS);
        let until = t0 + time::Duration::minutes(30);
        assert_eq!(r, Err(GuardRefusal::Locked { until }));
        assert_eq!(
            g.admit(t0 + time::Duration::minutes(29)),
            Err(GuardRefusal::Locked { until })
        );
        assert!(g.admit(until).is_ok());
        let (g, r) = g.record(false, until, PAYMENT_PASSWORD_LOCK_SECS);
        assert_eq!(r, Err(GuardRefusal::Wrong { remaining: 4 }));
        let (g, r) = g.record(true, until, PAYMENT_PASSWORD_LOCK_SECS);
        assert!(r.is_ok());
        assert_eq!(g, PasswordGuard::default());
    }
}
