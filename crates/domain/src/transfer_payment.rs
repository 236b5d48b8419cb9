//! A **transfer payment** of flow F3 (seed 002, claims 1, 4–11): a paired
//! first device asks, the phone confirms (or the agreement does, for small
//! amounts), the wallet issues a **payment execution task** to the phone,
//! the phone executes it, and the **payment result notification** goes to
//! both devices.
//!
//! ```text
//!                     ┌─(with the user)─▶ awaiting_confirmation ──confirm payment message: approve──┐
//! transfer payment ───┤                          └──decline──▶ declined                             ▼
//!   request           └─(direct: small amount)──────────────────────────────────────────────▶ confirmed
//! confirmed ──second agreement state holds──▶ task_issued ──phone executes──▶ executing ──debit──▶ paid | failed
//! confirmed ──second agreement state refuses──▶ failed
//! any state before executing, past its expiry ──▶ expired
//! ```
//!
//! Once the phone has submitted the task the payment is never expired: the
//! debit's outcome decides it (an unknown outcome stays `executing` until
//! the reconciliation knows).

use crate::error::{DomainError, ErrorCode};
use crate::transfer_agreement::ConfirmRoute;
use crate::Timestamp;

/// How long the user has to answer the transfer payment message.
pub const CONFIRMATION_TTL_SECS: i64 = 2 * 60;
/// How long the phone has to execute a payment execution task.
pub const EXECUTION_TASK_TTL_SECS: i64 = 2 * 60;
/// Pending transfer payments one first device may have at once.
pub const MAX_PENDING_PER_DEVICE: i64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum TransferPaymentState {
    AwaitingConfirmation,
    Confirmed,
    TaskIssued,
    Executing,
    Paid,
    Declined,
    Failed,
    Expired,
}

impl TransferPaymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingConfirmation => "awaiting_confirmation",
            Self::Confirmed => "confirmed",
            Self::TaskIssued => "task_issued",
            Self::Executing => "executing",
            Self::Paid => "paid",
            Self::Declined => "declined",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Paid | Self::Declined | Self::Failed | Self::Expired
        )
    }

    /// Whether it still counts against the device's pending cap and the
    /// agreement's limits without being paid.
    pub fn is_pending(self) -> bool {
        !self.is_final()
    }
}

crate::wire_names!(TransferPaymentState);

/// Where a transfer payment is, and until when its current step may be
/// answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferPaymentStatus {
    pub state: TransferPaymentState,
    pub route: ConfirmRoute,
    pub expires_at: Timestamp,
}

fn closed(state: TransferPaymentState) -> DomainError {
    DomainError::new(
        ErrorCode::TransferPaymentClosed,
        format!("this transfer payment is {}", state.as_str()),
    )
}

impl TransferPaymentStatus {
    /// The transfer payment request was admitted against the first
    /// agreement state: the phone is asked, or (direct) it is confirmed.
    pub fn requested(route: ConfirmRoute, now: Timestamp) -> Self {
        Self {
            state: match route {
                ConfirmRoute::WithUser => TransferPaymentState::AwaitingConfirmation,
                ConfirmRoute::Direct => TransferPaymentState::Confirmed,
            },
            route,
            expires_at: now + time::Duration::seconds(CONFIRMATION_TTL_SECS),
        }
    }

    /// The state as of `now`: a step not answered in time is expired.
    pub fn at(self, now: Timestamp) -> TransferPaymentState {
        match self.state {
            TransferPaymentState::AwaitingConfirmation
            | TransferPaymentState::Confirmed
            | TransferPaymentState::TaskIssued
                if now >= self.expires_at =>
            {
                TransferPaymentState::Expired
            }
            s => s,
        }
    }

    fn expect(self, expected: TransferPaymentState, now: Timestamp) -> Result<(), DomainError> {
        match self.at(now) {
            s if s == expected => Ok(()),
            TransferPaymentState::Expired => Err(DomainError::new(
                ErrorCode::TransferPaymentExpired,
                "this transfer payment expired; the device may ask again",
            )),
            s => Err(closed(s)),
        }
    }

    fn to(self, state: TransferPaymentState) -> Self {
        Self { state, ..self }
    }

    /// The user approved the transfer payment message (the confirm payment
    /// message): the confirm payment request is made.
    pub fn approve(self, now: Timestamp) -> Result<Self, DomainError> {
        self.expect(TransferPaymentState::AwaitingConfirmation, now)?;
        Ok(self.to(TransferPaymentState::Confirmed))
    }

    /// The user declined the transfer payment message.
    pub fn decline(self, now: Timestamp) -> Result<Self, DomainError> {
        self.expect(TransferPaymentState::AwaitingConfirmation, now)?;
        Ok(self.to(TransferPaymentState::Declined))
    }

    /// The second agreement state held: the payment execution task goes to
    /// the phone, which has [`EXECUTION_TASK_TTL_SECS`] to execute it.
    pub fn task_issued(self, now: Timestamp) -> Result<Self, DomainError> {
        self.expect(TransferPaymentState::Confirmed, now)?;
        Ok(Self {
            state: TransferPaymentState::TaskIssued,
            expires_at: now + time::Duration::seconds(EXECUTION_TASK_TTL_SECS),
            ..self
        })
    }

    /// The second agreement state refused (revoked, limits used meanwhile).
    pub fn refused_at_confirmation(self, now: Timestamp) -> Result<Self, DomainError> {
        self.expect(TransferPaymentState::Confirmed, now)?;
        Ok(self.to(TransferPaymentState::Failed))
    }

    /// The phone submitted the task, signed: the debit starts.
    pub fn executing(self, now: Timestamp) -> Result<Self, DomainError> {
        self.expect(TransferPaymentState::TaskIssued, now)?;
        Ok(self.to(TransferPaymentState::Executing))
    }

    /// The debit's definite outcome (the payment completion message).
    pub fn completed(self, paid: bool) -> Result<Self, DomainError> {
        if self.state != TransferPaymentState::Executing {
            return Err(DomainError::new(
                ErrorCode::ExecutionTaskInvalid,
                "no payment execution task is being executed for this payment",
            ));
        }
        Ok(self.to(if paid {
            TransferPaymentState::Paid
        } else {
            TransferPaymentState::Failed
        }))
    }

    /// The agreement was revoked or suspended: a payment not yet executing
    /// stops (one already executing is decided by its debit).
    pub fn stopped(self, now: Timestamp) -> Option<Self> {
        match self.at(now) {
            TransferPaymentState::AwaitingConfirmation
            | TransferPaymentState::Confirmed
            | TransferPaymentState::TaskIssued => Some(self.to(TransferPaymentState::Failed)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: Timestamp = datetime!(2026-12-01 10:00 UTC);

    #[test]
    fn with_the_user_it_is_approved_then_tasked_executed_and_paid() {
        let s = TransferPaymentStatus::requested(ConfirmRoute::WithUser, T0);
        assert_eq!(s.state, TransferPaymentState::AwaitingConfirmation);
        let s = s.approve(T0).unwrap();
        let s = s.task_issued(T0).unwrap();
        assert_eq!(
            s.expires_at,
            T0 + time::Duration::seconds(EXECUTION_TASK_TTL_SECS)
        );
        let s = s.executing(T0).unwrap();
        // Executing never expires: the debit decides.
        assert_eq!(
            s.at(T0 + time::Duration::hours(1)),
            TransferPaymentState::Executing
        );
        assert_eq!(s.completed(true).unwrap().state, TransferPaymentState::Paid);
        assert_eq!(
            s.completed(false).unwrap().state,
            TransferPaymentState::Failed
        );
    }

    #[test]
    fn direct_payments_skip_the_user_but_not_the_task() {
        let s = TransferPaymentStatus::requested(ConfirmRoute::Direct, T0);
        assert_eq!(s.state, TransferPaymentState::Confirmed);
        assert_eq!(
            s.approve(T0).unwrap_err().code,
            ErrorCode::TransferPaymentClosed
        );
        assert!(s.task_issued(T0).is_ok());
    }

    #[test]
    fn a_decline_is_final_and_an_approve_after_it_is_refused() {
        let s = TransferPaymentStatus::requested(ConfirmRoute::WithUser, T0);
        let d = s.decline(T0).unwrap();
        assert!(d.state.is_final());
        assert_eq!(
            d.approve(T0).unwrap_err().code,
            ErrorCode::TransferPaymentClosed
        );
        assert_eq!(
            d.decline(T0).unwrap_err().code,
            ErrorCode::TransferPaymentClosed
        );
    }

    #[test]
    fn late_answers_are_expired_and_out_of_order_steps_refused() {
        let s = TransferPaymentStatus::requested(ConfirmRoute::WithUser, T0);
        let late = T0 + time::Duration::seconds(CONFIRMATION_TTL_SECS);
        assert_eq!(
            s.approve(late).unwrap_err().code,
            ErrorCode::TransferPaymentExpired
        );
        assert_eq!(
            s.executing(T0).unwrap_err().code,
            ErrorCode::TransferPaymentClosed
        );
        assert_eq!(
            s.completed(true).unwrap_err().code,
            ErrorCode::ExecutionTaskInvalid
        );
        let tasked = s.approve(T0).unwrap().task_issued(T0).unwrap();
        let task_late = T0 + time::Duration::seconds(EXECUTION_TASK_TTL_SECS);
        assert_eq!(
            tasked.executing(task_late).unwrap_err().code,
            ErrorCode::TransferPaymentExpired
        );
    }

    #[test]
    fn revoking_stops_what_is_not_executing() {
        let s = TransferPaymentStatus::requested(ConfirmRoute::WithUser, T0);
        assert_eq!(s.stopped(T0).unwrap().state, TransferPaymentState::Failed);
        let executing = s
            .approve(T0)
            .unwrap()
            .task_issued(T0)
            .unwrap()
            .executing(T0)
            .unwrap();
        assert!(executing.stopped(T0).is_none());
        let paid = executing.completed(true).unwrap();
        assert!(paid.stopped(T0).is_none());
    }
}
