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
/// Each lock since the last success lasts twice the one before, up to this.
pub const MAX_LOCK_SECS: i64 = 24 * 3600;
/// Consecutive wrong tries (across locks) after which the password cannot
/// be used until the person passes a step-up (NIST SP 800-63B 5.2.2: at
/// most 100 consecutive failed attempts).
pub const MAX_CONSECUTIVE_FAILURES: u32 = 100;

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

/// The wrong-try counter of one password. A lock that runs out starts a
/// fresh count of tries, but the locks and the wrong tries since the last
/// success go on counting: each lock is longer, and after
/// [`MAX_CONSECUTIVE_FAILURES`] only a step-up unlocks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PasswordGuard {
    /// Wrong tries since the last lock ran out (or the last success).
    pub failed_attempts: u32,
    pub locked_until: Option<Timestamp>,
    /// Locks since the last success.
    pub locks: u32,
    /// Wrong tries since the last success, across locks.
    pub consecutive_failures: u32,
}

/// Why a try was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardRefusal {
    /// Wrong; `remaining` more tries before the lock.
    Wrong { remaining: u32 },
    /// Locked until then (also when this try locked it).
    Locked { until: Timestamp },
    /// Too many wrong tries in a row: only a step-up (security
    /// authentication) unlocks it.
    StepUpRequired,
}

impl PasswordGuard {
    /// Before checking the password: refused outright while locked.
    pub fn admit(&self, now: Timestamp) -> Result<(), GuardRefusal> {
        if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES {
            return Err(GuardRefusal::StepUpRequired);
        }
        match self.locked_until {
            Some(until) if now < until => Err(GuardRefusal::Locked { until }),
            _ => Ok(()),
        }
    }

    /// After checking: the guard to save and the outcome. A success resets
    /// everything; a lock that has run out starts a fresh count of tries;
    /// the `n`-th lock since the last success lasts `lock_secs × 2ⁿ⁻¹`, at
    /// most [`MAX_LOCK_SECS`].
    pub fn record(
        self,
        correct: bool,
        now: Timestamp,
        lock_secs: i64,
    ) -> (PasswordGuard, Result<(), GuardRefusal>) {
        if correct {
            return (PasswordGuard::default(), Ok(()));
        }
        let base = match self.locked_until {
            Some(until) if now >= until => PasswordGuard {
                failed_attempts: 0,
                locked_until: None,
                ..self
            },
            _ => self,
        };
        let failed = base.failed_attempts + 1;
        let consecutive_failures = base.consecutive_failures.saturating_add(1);
        if consecutive_failures >= MAX_CONSECUTIVE_FAILURES {
            return (
                PasswordGuard {
                    failed_attempts: failed,
                    consecutive_failures,
                    ..base
                },
                Err(GuardRefusal::StepUpRequired),
            );
        }
        if failed >= PASSWORD_MAX_ATTEMPTS {
            let secs = lock_secs
                .saturating_mul(1i64 << base.locks.min(20))
                .min(MAX_LOCK_SECS.max(lock_secs));
            let until = now + time::Duration::seconds(secs);
            (
                PasswordGuard {
                    failed_attempts: failed,
                    locked_until: Some(until),
                    locks: base.locks.saturating_add(1),
                    consecutive_failures,
                },
                Err(GuardRefusal::Locked { until }),
            )
        } else {
            (
                PasswordGuard {
                    failed_attempts: failed,
                    locked_until: None,
                    consecutive_failures,
                    ..base
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
            GuardRefusal::StepUpRequired => DomainError::new(
                ErrorCode::SecurityAuthRequired,
                format!(
                    "{MAX_CONSECUTIVE_FAILURES} wrong tries in a row: pass security authentication to use it again"
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

    /// Five wrong tries, then the lock runs out, again and again.
    fn lock_again(g: PasswordGuard, now: Timestamp) -> (PasswordGuard, Result<(), GuardRefusal>) {
        let mut g = g;
        let mut last = Ok(());
        for _ in 0..PASSWORD_MAX_ATTEMPTS {
            let (next, r) = g.record(false, now, PAYMENT_PASSWORD_LOCK_SECS);
            g = next;
            last = r;
        }
        (g, last)
    }

    #[test]
    fn each_lock_is_twice_as_long_as_the_last_up_to_a_day() {
        let mut now = datetime!(2026-01-01 00:00 UTC);
        let mut g = PasswordGuard::default();
        let mut lengths = Vec::new();
        for _ in 0..8 {
            let (next, r) = lock_again(g, now);
            let Err(GuardRefusal::Locked { until }) = r else {
                panic!("locked: {r:?}")
            };
            lengths.push((until - now).whole_minutes());
            g = next;
            now = until;
        }
        assert_eq!(lengths, vec![30, 60, 120, 240, 480, 960, 1440, 1440]);
        // A success forgets all of it.
        let (g, _) = g.record(true, now, PAYMENT_PASSWORD_LOCK_SECS);
        let (_, r) = lock_again(g, now);
        assert_eq!(
            r,
            Err(GuardRefusal::Locked {
                until: now + time::Duration::minutes(30)
            })
        );
    }

    #[test]
    fn a_hundred_wrong_tries_in_a_row_need_a_step_up_whatever_the_locks() {
        let mut now = datetime!(2026-01-01 00:00 UTC);
        let mut g = PasswordGuard::default();
        for _ in 0..(MAX_CONSECUTIVE_FAILURES / PASSWORD_MAX_ATTEMPTS - 1) {
            let (next, r) = lock_again(g, now);
            let Err(GuardRefusal::Locked { until }) = r else {
                panic!("locked: {r:?}")
            };
            g = next;
            now = until;
        }
        assert_eq!(g.consecutive_failures, MAX_CONSECUTIVE_FAILURES - 5);
        let (g, r) = lock_again(g, now);
        assert_eq!(r, Err(GuardRefusal::StepUpRequired));
        // Not even the right password, nor waiting, opens it.
        let later = now + time::Duration::days(30);
        assert_eq!(g.admit(later), Err(GuardRefusal::StepUpRequired));
        assert_eq!(
            GuardRefusal::StepUpRequired
                .into_error(ErrorCode::PaymentPasswordInvalid, later)
                .code,
            ErrorCode::SecurityAuthRequired
        );
    }
}
