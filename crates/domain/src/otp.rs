//! OTP challenges as a state machine. A challenge is issued for one purpose
//! and one phone; it is answered at most [`OTP_MAX_ATTEMPTS`] times, within
//! [`OTP_TTL_SECS`], and succeeds once. Resending waits
//! [`OTP_RESEND_AFTER_SECS`]; a phone gets at most [`OTP_HOURLY_CAP`] codes
//! an hour. Whether the entered code matches is decided by the caller
//! (with the keyed hash, in constant time) and passed in: this module only
//! decides what follows.

use crate::clock::Timestamp;

/// A code is valid for five minutes.
pub const OTP_TTL_SECS: i64 = 300;
/// Wrong answers before the challenge is dead.
pub const OTP_MAX_ATTEMPTS: u32 = 5;
/// Least time between two sends of one challenge.
pub const OTP_RESEND_AFTER_SECS: i64 = 60;
/// Most codes sent to one phone in an hour, whatever the challenge.
pub const OTP_HOURLY_CAP: u32 = 10;
/// Most codes one account may cause in a day, to any phone (its own, or the
/// phones reserved for the cards it binds).
pub const OTP_ACCOUNT_DAILY_CAP: u32 = 30;
/// Most codes requests from one client IP may cause in an hour (a carrier's
/// NAT puts many phones behind one address, so it is a multiple of the
/// per-phone cap).
pub const OTP_IP_HOURLY_CAP: u32 = 50;
/// Most codes the whole wallet sends in an hour unless configured: the
/// ceiling on what an attacker spreading over phones and addresses can cost.
pub const OTP_GLOBAL_HOURLY_CAP: u32 = 10_000;
/// Wrong answers in a row to one phone's challenges (across challenges)
/// before its codes are refused until a step-up that is not by SMS.
pub const OTP_MAX_CONSECUTIVE_FAILURES: u32 = 100;
/// The longest window any SMS budget counts over: sends older than this
/// are forgotten.
pub const OTP_BUDGET_MEMORY_SECS: i64 = 24 * 3600;

/// Where a challenge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpState {
    /// Waiting for the code.
    Pending,
    /// Answered correctly; used up.
    Verified,
    /// Too many wrong answers; dead.
    Locked,
}

/// The parts of a challenge the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpStatus {
    pub state: OtpState,
    pub attempts: u32,
    pub expires_at: Timestamp,
    pub last_sent_at: Timestamp,
}

/// Why an answer or a resend was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    #[error("the code is wrong; {remaining} attempts left")]
    Wrong { remaining: u32 },
    #[error("too many wrong codes; ask for a new one")]
    Locked,
    #[error("the code has expired; ask for a new one")]
    Expired,
    #[error("the code was already used")]
    AlreadyUsed,
    #[error("wait {retry_after_secs} s before asking for another code")]
    ResendTooSoon { retry_after_secs: i64 },
    #[error("too many codes were sent to this phone in the last hour")]
    HourlyCapReached,
}

impl OtpStatus {
    pub fn issued(now: Timestamp) -> Self {
        Self {
            state: OtpState::Pending,
            attempts: 0,
            expires_at: now + time::Duration::seconds(OTP_TTL_SECS),
            last_sent_at: now,
        }
    }

    /// The answer `code_matches` at `now`: the new status, and the outcome.
    /// A wrong answer is counted even when it is refused, so the status must
    /// be saved either way.
    pub fn answer(self, code_matches: bool, now: Timestamp) -> (OtpStatus, Result<(), OtpError>) {
        match self.state {
            OtpState::Verified => return (self, Err(OtpError::AlreadyUsed)),
            OtpState::Locked => return (self, Err(OtpError::Locked)),
            OtpState::Pending => {}
        }
        if now >= self.expires_at {
            return (self, Err(OtpError::Expired));
        }
        if code_matches {
            return (
                OtpStatus {
                    state: OtpState::Verified,
                    ..self
                },
                Ok(()),
            );
        }
        let attempts = self.attempts + 1;
        if attempts >= OTP_MAX_ATTEMPTS {
            (
                OtpStatus {
                    state: OtpState::Locked,
                    attempts,
                    ..self
                },
                Err(OtpError::Locked),
            )
        } else {
            (
                OtpStatus { attempts, ..self },
                Err(OtpError::Wrong {
                    remaining: OTP_MAX_ATTEMPTS - attempts,
                }),
            )
        }
    }

    /// A resend at `now`, given how many codes the phone got in the last hour:
    /// a fresh code with a fresh lifetime, or why not. The wrong answers
    /// already given still count (a resend must not buy new guesses), and
    /// a locked challenge stays dead: only a new one, with its own limits,
    /// can follow it.
    pub fn resend(
        self,
        sent_to_phone_last_hour: u32,
        now: Timestamp,
    ) -> Result<OtpStatus, OtpError> {
        match self.state {
            OtpState::Verified => return Err(OtpError::AlreadyUsed),
            OtpState::Locked => return Err(OtpError::Locked),
            OtpState::Pending => {}
        }
        let wait = (self.last_sent_at + time::Duration::seconds(OTP_RESEND_AFTER_SECS) - now)
            .whole_seconds();
        if wait > 0 {
            return Err(OtpError::ResendTooSoon {
                retry_after_secs: wait,
            });
        }
        check_hourly_cap(sent_to_phone_last_hour)?;
        Ok(OtpStatus {
            attempts: self.attempts,
            ..OtpStatus::issued(now)
        })
    }
}

impl From<OtpError> for crate::error::DomainError {
    fn from(e: OtpError) -> Self {
        use crate::error::ErrorCode as C;
        let code = match e {
            OtpError::Wrong { .. } => C::OtpInvalid,
            OtpError::Locked => C::OtpLocked,
            OtpError::Expired => C::OtpExpired,
            OtpError::AlreadyUsed => C::OtpAlreadyUsed,
            OtpError::ResendTooSoon { .. } => C::OtpResendTooSoon,
            OtpError::HourlyCapReached => C::OtpRateLimited,
        };
        crate::error::DomainError::new(code, e.to_string())
    }
}

/// Before sending any code to a phone.
pub fn check_hourly_cap(sent_to_phone_last_hour: u32) -> Result<(), OtpError> {
    if sent_to_phone_last_hour >= OTP_HOURLY_CAP {
        Err(OtpError::HourlyCapReached)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn clock() -> ManualClock {
        ManualClock::new(time::macros::datetime!(2026-11-23 08:00 UTC))
    }

    #[test]
    fn a_right_code_verifies_once() {
        let c = clock();
        let (s, r) = OtpStatus::issued(c.now()).answer(true, c.now());
        assert_eq!((s.state, r), (OtpState::Verified, Ok(())));
        assert_eq!(s.answer(true, c.now()).1, Err(OtpError::AlreadyUsed));
    }

    #[test]
    fn five_wrong_codes_lock_it_even_for_the_right_one() {
        let c = clock();
        let mut s = OtpStatus::issued(c.now());
        for remaining in (1..OTP_MAX_ATTEMPTS).rev() {
            let (next, r) = s.answer(false, c.now());
            assert_eq!(r, Err(OtpError::Wrong { remaining }));
            s = next;
        }
        let (s, r) = s.answer(false, c.now());
        assert_eq!(
            (s.state, s.attempts, r),
            (OtpState::Locked, OTP_MAX_ATTEMPTS, Err(OtpError::Locked))
        );
        assert_eq!(s.answer(true, c.now()).1, Err(OtpError::Locked));
    }

    #[test]
    fn codes_expire_after_five_minutes() {
        let c = clock();
        let s = OtpStatus::issued(c.now());
        c.advance(time::Duration::seconds(OTP_TTL_SECS - 1));
        assert_eq!(s.answer(true, c.now()).1, Ok(()));
        c.advance(time::Duration::seconds(1));
        let (after, r) = s.answer(true, c.now());
        assert_eq!(
            (r, after),
            (Err(OtpError::Expired), s),
            "nothing changes on an expired answer"
        );
    }

    #[test]
    fn resend_waits_a_minute_and_respects_the_hourly_cap() {
        let c = clock();
        let s = OtpStatus::issued(c.now());
        c.advance(time::Duration::seconds(20));
        assert_eq!(
            s.resend(1, c.now()),
            Err(OtpError::ResendTooSoon {
                retry_after_secs: 40
            })
        );
        c.advance(time::Duration::seconds(40));
        let fresh = s.resend(1, c.now()).unwrap();
        assert_eq!(
            (fresh.attempts, fresh.expires_at),
            (0, c.now() + time::Duration::seconds(OTP_TTL_SECS))
        );
        c.advance(time::Duration::seconds(60));
        assert_eq!(
            fresh.resend(OTP_HOURLY_CAP, c.now()),
            Err(OtpError::HourlyCapReached)
        );
    }

    #[test]
    fn a_resend_keeps_the_wrong_answers_and_never_revives_a_locked_challenge() {
        let c = clock();
        let s = OtpStatus::issued(c.now());
        let (s, _) = s.answer(false, c.now());
        let (s, _) = s.answer(false, c.now());
        c.advance(time::Duration::seconds(OTP_RESEND_AFTER_SECS));
        let again = s.resend(1, c.now()).unwrap();
        assert_eq!(again.attempts, 2, "a new code does not buy new guesses");
        let (after, r) = again.answer(false, c.now());
        assert_eq!(
            r,
            Err(OtpError::Wrong {
                remaining: OTP_MAX_ATTEMPTS - 3
            })
        );
        let (locked, _) =
            (3..OTP_MAX_ATTEMPTS).fold((after, Ok(())), |(s, _), _| s.answer(false, c.now()));
        assert_eq!(locked.state, OtpState::Locked);
        c.advance(time::Duration::seconds(OTP_RESEND_AFTER_SECS));
        assert_eq!(locked.resend(1, c.now()), Err(OtpError::Locked));
        let (_, r) = locked.answer(true, c.now());
        assert_eq!(r, Err(OtpError::Locked), "not even the right code");
    }
}
