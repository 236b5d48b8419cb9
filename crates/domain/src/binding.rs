//! Bindings of bank cards to wallet accounts (flow F1), as a state machine.
//!
//! ```text
//! created ──claim──▶ claimed ──send OTP──▶ otp_sent ──confirm──▶ active ──unbind──▶ unbound
//!    │                  │                     │
//!    └── expire / fail / cancel (from any state before active) ──▶ expired | failed | cancelled
//! (nothing) ──quick binding: the issuer issued a virtual card (F5)──▶ active
//! ```
//!
//! The **quick binding** (快捷绑卡) of flow F5 is its own path: the issuer
//! issued the virtual card to the applicant the wallet vouched for (payment
//! password, verified identity, and the OTP or the identity authority's
//! score) and signed its quick-pay agreement, so the binding is born active
//! ([`BindingStatus::quick_bound`]).
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

/// Where a binding is; a failed one carries why. [`BindingStage`] is the
/// state's name alone (the wire's `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter, strum::EnumDiscriminants)]
#[strum_discriminants(name(BindingStage), derive(Hash, strum::EnumIter))]
pub enum BindingState {
    Created,
    Claimed,
    OtpSent,
    Active,
    Expired,
    /// Failed, and why (the bank tells its customer).
    Failed(BindingFailure),
    Cancelled,
    Unbound,
}

impl BindingStage {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingStage::Created => "created",
            BindingStage::Claimed => "claimed",
            BindingStage::OtpSent => "otp_sent",
            BindingStage::Active => "active",
            BindingStage::Expired => "expired",
            BindingStage::Failed => "failed",
            BindingStage::Cancelled => "cancelled",
            BindingStage::Unbound => "unbound",
        }
    }
}

impl BindingState {
    pub fn stage(self) -> BindingStage {
        BindingStage::from(self)
    }

    pub fn as_str(self) -> &'static str {
        self.stage().as_str()
    }

    /// The state from its stored name and, for a failed binding, its
    /// failure's; `None` for a pair that cannot be (a failure without
    /// `failed`, or the other way round).
    pub fn parse(state: &str, failure: Option<&str>) -> Option<BindingState> {
        let found = <Self as strum::IntoEnumIterator>::iter().find(|b| b.as_str() == state)?;
        match (found, failure) {
            (BindingState::Failed(_), Some(f)) => {
                BindingFailure::parse(f).map(BindingState::Failed)
            }
            (BindingState::Failed(_), None) | (_, Some(_)) => None,
            (other, None) => Some(other),
        }
    }

    /// Why it failed, if it did.
    pub fn failure(self) -> Option<BindingFailure> {
        match self {
            BindingState::Failed(f) => Some(f),
            _ => None,
        }
    }

    /// No transition leaves these.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BindingState::Expired
                | BindingState::Failed(_)
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
/// (`Default` only lets the state list itself; no binding fails by default.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, strum::EnumIter)]
pub enum BindingFailure {
    /// The wallet user's verified real name is not the card holder's.
    #[default]
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

    pub fn parse(s: &str) -> Option<BindingFailure> {
        <Self as strum::IntoEnumIterator>::iter().find(|f| f.as_str() == s)
    }
}

/// How a pending binding ends other than active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingEnd {
    Expired,
    Cancelled,
    Failed(BindingFailure),
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

    /// A quick binding (flow F5): active from the start, on the issuer's
    /// agreement for the card it issued.
    pub fn quick_bound(now: Timestamp) -> Self {
        Self {
            state: BindingState::Active,
            expires_at: now,
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
    pub fn end(self, how: BindingEnd) -> Result<BindingStatus, DomainError> {
        let to = match how {
            BindingEnd::Expired => BindingState::Expired,
            BindingEnd::Cancelled => BindingState::Cancelled,
            BindingEnd::Failed(f) => BindingState::Failed(f),
        };
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

crate::wire_names!(BindingStage, BindingFailure);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_binding_is_born_active_and_unbinds_like_any() {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let q = BindingStatus::quick_bound(now);
        assert_eq!(q.state, BindingState::Active);
        assert!(!q.is_expired(now + time::Duration::days(400)));
        assert_eq!(q.claim(now).unwrap_err().code, ErrorCode::BindingNotPending);
        assert_eq!(q.unbind().unwrap().state, BindingState::Unbound);
    }
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
        assert!(b.end(BindingEnd::Cancelled).is_err());
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
            claimed.end(BindingEnd::Expired).unwrap().state,
            BindingState::Expired
        );
    }

    #[test]
    fn states_round_trip() {
        for s in <BindingState as strum::IntoEnumIterator>::iter() {
            let failure = s.failure().map(BindingFailure::as_str);
            assert_eq!(BindingState::parse(s.as_str(), failure), Some(s));
        }
        for f in <BindingFailure as strum::IntoEnumIterator>::iter() {
            let failed = BindingState::Failed(f);
            assert_eq!(
                BindingState::parse("failed", Some(f.as_str())),
                Some(failed)
            );
        }
        assert_eq!(BindingState::parse("failed", None), None);
        assert_eq!(BindingState::parse("active", Some("otp_locked")), None);
    }
}
