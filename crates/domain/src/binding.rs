//! Bindings of bank cards to wallet accounts (flow F1), as a state machine.
//!
//! ```text
//! created ──claim──▶ claimed ──send OTP──▶ otp_sent ──confirm──▶ active ──unbind──▶ unbound
//!    │                  │                     │
//!    └── expire / fail / cancel (from any state before active) ──▶ expired | failed | cancelled
//! ```
//!
//! A binding starts when the bank asks for a binding address (QR path) or
//! sends a binding operation request (push path). The address is single use
//! and dies after [`BINDING_ADDRESS_TTL_SECS`]; the first wallet user to
//! claim it owns the binding. Every transition is an event (the services
//! write it to the outbox with the new state).

use crate::error::{DomainError, ErrorCode};
use crate::Timestamp;

/// A binding address (and a pushed binding message) lives five minutes.
pub const BINDING_ADDRESS_TTL_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum BindingState {
    Created,
    Claimed,
    OtpSent,
    Active,
    Expired,
    Failed,
    Cancelled,
    Unbound,
}

impl BindingState {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingState::Created => "created",
            BindingState::Claimed => "claimed",
            BindingState::OtpSent => "otp_sent",
            BindingState::Active => "active",
            BindingState::Expired => "expired",
            BindingState::Failed => "failed",
            BindingState::Cancelled => "cancelled",
            BindingState::Unbound => "unbound",
        }
    }

    pub fn parse(s: &str) -> Option<BindingState> {
        <Self as strum::IntoEnumIterator>::iter().find(|b| b.as_str() == s)
    }

    /// No transition leaves these.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BindingState::Expired
                | BindingState::Failed
                | BindingState::Cancelled
                | BindingState::Unbound
        )
    }

    /// Still on its way to active.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            BindingState::Created | BindingState::Claimed | BindingState::OtpSent
        )
    }
}

/// Why a binding failed (its own codes, so the bank can tell the customer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingFailure {
    /// The wallet user's verified real name is not the card holder's.
    IdentityMismatch,
    /// The OTP was answered wrongly too many times.
    OtpLocked,
    /// The bank refused to open the quick-pay agreement.
    IssuerRefused,
}

impl BindingFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingFailure::IdentityMismatch => "identity_mismatch",
            BindingFailure::OtpLocked => "otp_locked",
            BindingFailure::IssuerRefused => "issuer_refused",
        }
    }
}

/// The parts of a binding the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingStatus {
    pub state: BindingState,
    pub expires_at: Timestamp,
}

fn refuse(code: ErrorCode, message: &str) -> DomainError {
    DomainError::new(code, message)
}

impl BindingStatus {
    pub fn created(now: Timestamp) -> Self {
        Self {
            state: BindingState::Created,
            expires_at: now + time::Duration::seconds(BINDING_ADDRESS_TTL_SECS),
        }
    }

    /// Whether a pending binding ran out of time by `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.state.is_pending() && now >= self.expires_at
    }

    fn pending(&self, now: Timestamp) -> Result<(), DomainError> {
        if self.is_expired(now) || self.state == BindingState::Expired {
            return Err(refuse(
                ErrorCode::BindingExpired,
                "the binding expired; start again from the bank app",
            ));
        }
        if self.state.is_final() || self.state == BindingState::Active {
            return Err(refuse(
                ErrorCode::BindingNotPending,
                "the binding is no longer waiting for this step",
            ));
        }
        Ok(())
    }

    /// The first claimant takes a created binding.
    pub fn claim(self, now: Timestamp) -> Result<BindingStatus, DomainError> {
        self.pending(now)?;
        if self.state != BindingState::Created {
            return Err(refuse(
                ErrorCode::BindingAlreadyClaimed,
                "this binding address was already used",
            ));
        }
        Ok(BindingStatus {
            state: BindingState::Claimed,
            ..self
        })
    }

    /// The user confirmed the card: an OTP goes to the reserved phone.
    /// Asking again (a resend) keeps it in `otp_sent`.
    pub fn send_otp(self, now: Timestamp) -> Result<BindingStatus, DomainError> {
        self.pending(now)?;
        if self.state == BindingState::Created {
            return Err(refuse(
                ErrorCode::BindingNotPending,
                "claim the binding first",
            ));
        }
        Ok(BindingStatus {
            state: BindingState::OtpSent,
            ..self
        })
    }

    /// The OTP (and payment password) passed and the bank opened the agreement.
    pub fn activate(self, now: Timestamp) -> Result<BindingStatus, DomainError> {
        self.pending(now)?;
        if self.state != BindingState::OtpSent {
            return Err(refuse(
                ErrorCode::BindingNotPending,
                "the binding is not waiting for its code",
            ));
        }
        Ok(BindingStatus {
            state: BindingState::Active,
            ..self
        })
    }

    /// A bank that registered the account for its customer (flow F2) has
    /// authenticated them in its own app: the binding is active at once.
    pub fn activate_attested(self, now: Timestamp) -> Result<BindingStatus, DomainError> {
        self.pending(now)?;
        if self.state != BindingState::Claimed {
            return Err(refuse(
                ErrorCode::BindingNotPending,
                "the binding is not waiting for the bank",
            ));
        }
        Ok(BindingStatus {
            state: BindingState::Active,
            ..self
        })
    }

    /// Ends a pending binding as failed, cancelled or expired.
    pub fn end(self, to: BindingState) -> Result<BindingStatus, DomainError> {
        debug_assert!(matches!(
            to,
            BindingState::Failed | BindingState::Cancelled | BindingState::Expired
        ));
        if !self.state.is_pending() {
            return Err(refuse(
                ErrorCode::BindingNotPending,
                "the binding is no longer pending",
            ));
        }
        Ok(BindingStatus { state: to, ..self })
    }

    pub fn unbind(self) -> Result<BindingStatus, DomainError> {
        if self.state != BindingState::Active {
            return Err(refuse(
                ErrorCode::BindingNotPending,
                "only an active binding can be unbound",
            ));
        }
        Ok(BindingStatus {
            state: BindingState::Unbound,
            ..self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn t0() -> Timestamp {
        datetime!(2026-11-23 08:00 UTC)
    }

    #[test]
    fn the_happy_path_and_its_guards() {
        let b = BindingStatus::created(t0());
        assert_eq!(
            b.send_otp(t0()).unwrap_err().code,
            ErrorCode::BindingNotPending
        );
        let b = b.claim(t0()).unwrap();
        assert_eq!(
            b.claim(t0()).unwrap_err().code,
            ErrorCode::BindingAlreadyClaimed
        );
        assert_eq!(
            b.activate(t0()).unwrap_err().code,
            ErrorCode::BindingNotPending
        );
        let b = b.send_otp(t0()).unwrap();
        let b = b.send_otp(t0()).unwrap();
        let b = b.activate(t0()).unwrap();
        assert_eq!(b.state, BindingState::Active);
        assert!(
            !b.is_expired(t0() + time::Duration::days(1)),
            "active bindings do not expire"
        );
        assert_eq!(
            b.claim(t0()).unwrap_err().code,
            ErrorCode::BindingNotPending
        );
        assert!(b.end(BindingState::Cancelled).is_err());
        let b = b.unbind().unwrap();
        assert!(b.state.is_final());
        assert!(b.unbind().is_err());
    }

    #[test]
    fn pending_bindings_expire_after_five_minutes() {
        let b = BindingStatus::created(t0());
        let late = t0() + time::Duration::seconds(BINDING_ADDRESS_TTL_SECS);
        assert_eq!(b.claim(late).unwrap_err().code, ErrorCode::BindingExpired);
        let claimed = b.claim(late - time::Duration::seconds(1)).unwrap();
        assert_eq!(
            claimed.send_otp(late).unwrap_err().code,
            ErrorCode::BindingExpired
        );
        assert_eq!(
            claimed.end(BindingState::Expired).unwrap().state,
            BindingState::Expired
        );
    }

    #[test]
    fn states_round_trip() {
        for s in <BindingState as strum::IntoEnumIterator>::iter() {
            assert_eq!(BindingState::parse(s.as_str()), Some(s));
        }
    }
}
