//! A **transfer payment** of flow F3 (seed 002, claims 1, 4–11): a paired
//! first device asks (the **transfer payment request**), the phone confirms
//! (the **confirm payment message**) or the agreement does for small
//! amounts, the wallet judges the **second agreement state** and issues a
//! **payment execution task** to the phone, the phone executes it (the
//! debit runs), the phone's **payment completion message** ends it, and the
//! **payment result notification** goes to both devices.
//!
//! ```text
//!                    ┌─(with the user)─▶ awaiting_confirmation ──confirm payment message: approve──┐
//! transfer payment ──┤                          └──decline──▶ declined                             ▼
//!   request          └─(direct: small amount)──────────────────────────────────────────────▶ confirmed
//! confirmed ──second agreement state holds──▶ task_issued ──phone executes the task──▶ executing
//! confirmed ──second agreement state refuses──▶ failed
//! executing ──the bank debited──▶ debited ──payment completion message (or the wallet, after a grace)──▶ paid
//! executing ──the bank refused──▶ failed
//! awaiting_confirmation | confirmed | task_issued ──past its expiry──▶ expired
//! awaiting_confirmation | confirmed | task_issued ──agreement suspended or revoked──▶ failed
//! ```
//!
//! Once the phone has submitted the executed task the payment is never
//! expired: the debit's outcome decides it (an unknown outcome stays
//! `executing` until the reconciliation knows). Once the bank debited, the
//! phone's completion message normally follows at once; if it never comes,
//! the wallet completes the payment itself after
//! [`COMPLETION_GRACE_SECS`], because the money moved and both devices
//! must hear of it.

use crate::error::{DomainError, ErrorCode};
use crate::transfer_agreement::ConfirmRoute;
use crate::Timestamp;

/// How long the user has to answer the transfer payment message.
pub const CONFIRMATION_TTL_SECS: i64 = 2 * 60;
/// How long the phone has to execute a payment execution task.
pub const EXECUTION_TASK_TTL_SECS: i64 = 2 * 60;
/// How long after the debit the wallet waits for the phone's completion
/// message before it completes the payment (and notifies) itself.
pub const COMPLETION_GRACE_SECS: i64 = 30;
/// How long an executing payment waits before the wallet asks what became
/// of its debit (and again after each unknown answer).
pub const EXECUTION_SETTLE_SECS: i64 = 30;
/// Pending transfer payments one first device may have at once: at most
/// one transfer payment message waits on the phone for a device.
pub const MAX_PENDING_PER_DEVICE: i64 = 1;
/// Pending transfer payments one phone may be asked about at once, from
/// all of the account's first devices together.
pub const MAX_PENDING_PER_PHONE: i64 = 3;
/// The window a device's and a phone's pace is judged over.
pub const PACE_WINDOW_SECS: i64 = 10 * 60;
/// Transfer payment requests one first device may make in that window.
pub const MAX_REQUESTS_PER_DEVICE: i64 = 20;
/// Declines of one device's requests in that window after which it waits:
/// no prompt fatigue (a device the user keeps saying no to is not theirs).
pub const MAX_DECLINES_PER_DEVICE: i64 = 3;
/// Transfer payment requests one phone may be asked about in that window.
pub const MAX_REQUESTS_PER_PHONE: i64 = 60;
/// Longest "what it is for" of a device usage, in characters.
pub const PURPOSE_MAX_CHARS: usize = 80;

/// Where a transfer payment is. A failed one carries why (a stable error
/// code: `insufficient_funds`, `amount_over_limit`, `agreement_inactive`…).
/// [`TransferPaymentStage`] is the state's name alone (what is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumDiscriminants)]
#[strum_discriminants(name(TransferPaymentStage), derive(Hash, strum::EnumIter))]
pub enum TransferPaymentState {
    AwaitingConfirmation,
    Confirmed,
    TaskIssued,
    Executing,
    Debited,
    Paid,
    Declined,
    Failed { reason: ErrorCode },
    Expired,
}

impl TransferPaymentStage {
    /// Stages that still count against the device's and the phone's
    /// pending caps: nothing is decided yet.
    pub const PENDING: [TransferPaymentStage; 4] = [
        Self::AwaitingConfirmation,
        Self::Confirmed,
        Self::TaskIssued,
        Self::Executing,
    ];
    /// Stages not decided yet: the wallet still acts on them (the pending
    /// ones, and a debited one waiting for its completion message).
    pub const OPEN: [TransferPaymentStage; 5] = [
        Self::AwaitingConfirmation,
        Self::Confirmed,
        Self::TaskIssued,
        Self::Executing,
        Self::Debited,
    ];
    /// Stages in which a payment's amount no longer counts against the
    /// agreement's limits.
    pub const RELEASED: [TransferPaymentStage; 3] = [Self::Declined, Self::Failed, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingConfirmation => "awaiting_confirmation",
            Self::Confirmed => "confirmed",
            Self::TaskIssued => "task_issued",
            Self::Executing => "executing",
            Self::Debited => "debited",
            Self::Paid => "paid",
            Self::Declined => "declined",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }
}

crate::wire_names!(TransferPaymentStage);

impl TransferPaymentState {
    pub fn stage(self) -> TransferPaymentStage {
        TransferPaymentStage::from(self)
    }

    pub fn as_str(self) -> &'static str {
        self.stage().as_str()
    }

    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Paid | Self::Declined | Self::Failed { .. } | Self::Expired
        )
    }

    /// Whether it still counts against the device's and phone's pending caps.
    pub fn is_pending(self) -> bool {
        TransferPaymentStage::PENDING.contains(&self.stage())
    }

    /// The state of a stored payment: its stage and, for a failed one, why.
    /// `None` when the parts do not make a state.
    pub fn from_parts(stage: TransferPaymentStage, reason: Option<ErrorCode>) -> Option<Self> {
        use TransferPaymentStage as S;
        Some(match stage {
            S::AwaitingConfirmation => Self::AwaitingConfirmation,
            S::Confirmed => Self::Confirmed,
            S::TaskIssued => Self::TaskIssued,
            S::Executing => Self::Executing,
            S::Debited => Self::Debited,
            S::Paid => Self::Paid,
            S::Declined => Self::Declined,
            S::Failed => Self::Failed { reason: reason? },
            S::Expired => Self::Expired,
        })
    }

    /// Why a failed payment failed.
    pub fn failure(self) -> Option<ErrorCode> {
        match self {
            Self::Failed { reason } => Some(reason),
            _ => None,
        }
    }
}

/// Who ended a debited payment: the phone with its payment completion
/// message, or the wallet when the phone went quiet after the debit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum CompletedBy {
    Phone,
    Wallet,
}

impl CompletedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            CompletedBy::Phone => "phone",
            CompletedBy::Wallet => "wallet",
        }
    }
}

crate::wire_names!(CompletedBy);

/// Where a transfer payment is, how it is confirmed, and until when its
/// current step may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferPaymentStatus {
    pub state: TransferPaymentState,
    pub route: ConfirmRoute,
    /// Until when the current step may be answered; for `executing` when
    /// the debit is next asked about, for `debited` when the wallet
    /// completes it without the phone.
    pub expires_at: Timestamp,
}

fn closed(state: TransferPaymentState) -> DomainError {
    DomainError::new(
        ErrorCode::TransferPaymentClosed,
        format!("this transfer payment is {}", state.as_str()),
    )
}

fn no_task() -> DomainError {
    DomainError::new(
        ErrorCode::ExecutionTaskInvalid,
        "no payment execution task of this payment was executed",
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

    /// Whether its step's time ran out and the wallet should act: expire
    /// it, ask about its debit, or complete it without the phone.
    pub fn is_due(self, now: Timestamp) -> bool {
        !self.state.is_final() && now >= self.expires_at
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

    fn to_until(self, state: TransferPaymentState, now: Timestamp, secs: i64) -> Self {
        Self {
            state,
            expires_at: now + time::Duration::seconds(secs),
            ..self
        }
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
        Ok(self.to_until(
            TransferPaymentState::TaskIssued,
            now,
            EXECUTION_TASK_TTL_SECS,
        ))
    }

    /// The second agreement state refused (suspended, limits used or
    /// lowered meanwhile): the payment fails with that refusal's code.
    pub fn refused_at_confirmation(
        self,
        reason: ErrorCode,
        now: Timestamp,
    ) -> Result<Self, DomainError> {
        self.expect(TransferPaymentState::Confirmed, now)?;
        Ok(self.to(TransferPaymentState::Failed { reason }))
    }

    /// The phone submitted the executed task, signed: the debit starts. The
    /// wallet asks about the debit itself if nothing is known by
    /// [`EXECUTION_SETTLE_SECS`].
    pub fn executing(self, now: Timestamp) -> Result<Self, DomainError> {
        match self.at(now) {
            TransferPaymentState::TaskIssued => {
                Ok(self.to_until(TransferPaymentState::Executing, now, EXECUTION_SETTLE_SECS))
            }
            // A task executed before, or never issued: no task to execute.
            TransferPaymentState::AwaitingConfirmation
            | TransferPaymentState::Confirmed
            | TransferPaymentState::Executing
            | TransferPaymentState::Debited
            | TransferPaymentState::Paid => Err(DomainError::new(
                ErrorCode::ExecutionTaskInvalid,
                "this payment has no payment execution task waiting to be executed",
            )),
            TransferPaymentState::Expired => Err(DomainError::new(
                ErrorCode::TransferPaymentExpired,
                "the payment execution task expired; the device may ask again",
            )),
            s => Err(closed(s)),
        }
    }

    /// The debit's outcome is still unknown: ask again later.
    pub fn still_executing(self, now: Timestamp) -> Result<Self, DomainError> {
        if self.state != TransferPaymentState::Executing {
            return Err(closed(self.state));
        }
        Ok(self.to_until(TransferPaymentState::Executing, now, EXECUTION_SETTLE_SECS))
    }

    /// The bank debited: the phone's completion message is awaited, for
    /// at most [`COMPLETION_GRACE_SECS`].
    pub fn debited(self, now: Timestamp) -> Result<Self, DomainError> {
        if self.state != TransferPaymentState::Executing {
            return Err(closed(self.state));
        }
        Ok(self.to_until(TransferPaymentState::Debited, now, COMPLETION_GRACE_SECS))
    }

    /// The bank refused the debit for good.
    pub fn debit_failed(self, reason: ErrorCode) -> Result<Self, DomainError> {
        if self.state != TransferPaymentState::Executing {
            return Err(closed(self.state));
        }
        Ok(self.to(TransferPaymentState::Failed { reason }))
    }

    /// The payment completion message (or the wallet, once the grace is
    /// over): the payment is paid and its result is told.
    pub fn completed(self) -> Result<Self, DomainError> {
        match self.state {
            TransferPaymentState::Debited => Ok(self.to(TransferPaymentState::Paid)),
            TransferPaymentState::Executing => Err(DomainError::new(
                ErrorCode::PaymentPending,
                "the bank has not confirmed the debit yet; send the completion message once it has",
            )),
            TransferPaymentState::Paid
            | TransferPaymentState::Declined
            | TransferPaymentState::Failed { .. }
            | TransferPaymentState::Expired => Err(closed(self.state)),
            _ => Err(no_task()),
        }
    }

    /// Past its expiry before the phone executed it.
    pub fn expire(self, now: Timestamp) -> Result<Self, DomainError> {
        match self.at(now) {
            TransferPaymentState::Expired => Ok(self.to(TransferPaymentState::Expired)),
            s => Err(closed(s)),
        }
    }

    /// The agreement was suspended or revoked: a payment not yet executing
    /// stops (one already executing is decided by its debit).
    pub fn stopped(self, now: Timestamp) -> Option<Self> {
        match self.at(now) {
            TransferPaymentState::AwaitingConfirmation
            | TransferPaymentState::Confirmed
            | TransferPaymentState::TaskIssued => Some(self.to(TransferPaymentState::Failed {
                reason: ErrorCode::AgreementInactive,
            })),
            _ => None,
        }
    }
}

/// What one first device and its phone asked for lately: the inputs of
/// [`check_pace`], counted over the last [`PACE_WINDOW_SECS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DevicePace {
    pub device_requests: i64,
    pub device_declines: i64,
    pub device_pending: i64,
    pub phone_requests: i64,
    pub phone_pending: i64,
}

/// Whether a first device may ask now: one pending payment per device, a
/// few per phone, a bounded pace per device and per phone, and a wait for
/// a device the user keeps declining.
pub fn check_pace(p: DevicePace) -> Result<(), DomainError> {
    let minutes = PACE_WINDOW_SECS / 60;
    if p.device_pending >= MAX_PENDING_PER_DEVICE {
        return Err(DomainError::new(
            ErrorCode::TooManyPendingPayments,
            "this device already has a payment waiting for the phone; wait for its result",
        ));
    }
    if p.phone_pending >= MAX_PENDING_PER_PHONE {
        return Err(DomainError::new(
            ErrorCode::TooManyPendingPayments,
            format!(
                "the phone already has {} payments waiting; answer or let them expire first",
                p.phone_pending
            ),
        ));
    }
    if p.device_declines >= MAX_DECLINES_PER_DEVICE {
        return Err(DomainError::new(
            ErrorCode::PaymentRequestsThrottled,
            format!(
                "the user declined {MAX_DECLINES_PER_DEVICE} payments of this device: it may ask again within {minutes} minutes"
            ),
        ));
    }
    if p.device_requests >= MAX_REQUESTS_PER_DEVICE {
        return Err(DomainError::new(
            ErrorCode::PaymentRequestsThrottled,
            format!("this device asked {MAX_REQUESTS_PER_DEVICE} times in {minutes} minutes: wait"),
        ));
    }
    if p.phone_requests >= MAX_REQUESTS_PER_PHONE {
        return Err(DomainError::new(
            ErrorCode::PaymentRequestsThrottled,
            format!(
                "the phone was asked {MAX_REQUESTS_PER_PHONE} times in {minutes} minutes: wait"
            ),
        ));
    }
    Ok(())
}

/// What a device usage's "what it is for" may be: 1 to
/// [`PURPOSE_MAX_CHARS`] printable characters (the phone shows it).
pub fn check_purpose(purpose: &str) -> Result<String, DomainError> {
    let p = purpose.trim();
    let n = p.chars().count();
    if n == 0 || n > PURPOSE_MAX_CHARS || p.chars().any(char::is_control) {
        return Err(DomainError::new(
            ErrorCode::InvalidRequest,
            format!("usage.purpose: 1 to {PURPOSE_MAX_CHARS} printable characters"),
        ));
    }
    Ok(p.to_owned())
}

/// What a biometric approval of a payment execution task is bound to: the
/// task's hash (the task names the payment, amount, payee, agreement,
/// expiry and a nonce), so an assertion for another task does not pass.
pub fn task_approval_purpose(task_hash: &str) -> String {
    format!("transfer-task:{task_hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: Timestamp = datetime!(2026-12-01 10:00 UTC);

    fn executing() -> TransferPaymentStatus {
        TransferPaymentStatus::requested(ConfirmRoute::WithUser, T0)
            .approve(T0)
            .unwrap()
            .task_issued(T0)
            .unwrap()
            .executing(T0)
            .unwrap()
    }

    #[test]
    fn with_the_user_it_is_approved_tasked_executed_debited_and_completed() {
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
        assert!(s.is_due(T0 + time::Duration::seconds(EXECUTION_SETTLE_SECS)));
        assert_eq!(
            s.completed().unwrap_err().code,
            ErrorCode::PaymentPending,
            "no completion before the debit"
        );
        let d = s.debited(T0).unwrap();
        assert!(!d.state.is_pending() && !d.state.is_final());
        assert_eq!(d.completed().unwrap().state, TransferPaymentState::Paid);
        assert_eq!(
            d.completed().unwrap().completed().unwrap_err().code,
            ErrorCode::TransferPaymentClosed
        );
        let failed = s.debit_failed(ErrorCode::InsufficientFunds).unwrap();
        assert_eq!(failed.state.failure(), Some(ErrorCode::InsufficientFunds));
        assert!(failed.state.is_final());
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
        let refused = s
            .refused_at_confirmation(ErrorCode::AmountOverLimit, T0)
            .unwrap();
        assert_eq!(refused.state.failure(), Some(ErrorCode::AmountOverLimit));
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
    fn late_answers_are_expired_and_tasks_execute_once() {
        let s = TransferPaymentStatus::requested(ConfirmRoute::WithUser, T0);
        let late = T0 + time::Duration::seconds(CONFIRMATION_TTL_SECS);
        assert_eq!(
            s.approve(late).unwrap_err().code,
            ErrorCode::TransferPaymentExpired
        );
        assert_eq!(s.expire(late).unwrap().state, TransferPaymentState::Expired);
        assert_eq!(
            s.expire(T0).unwrap_err().code,
            ErrorCode::TransferPaymentClosed
        );
        // No task yet, or one executed already: a completion or an execution has no task.
        assert_eq!(
            s.executing(T0).unwrap_err().code,
            ErrorCode::ExecutionTaskInvalid
        );
        assert_eq!(
            s.completed().unwrap_err().code,
            ErrorCode::ExecutionTaskInvalid
        );
        assert_eq!(
            executing().executing(T0).unwrap_err().code,
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
    fn stopping_stops_what_is_not_executing() {
        let s = TransferPaymentStatus::requested(ConfirmRoute::WithUser, T0);
        assert_eq!(
            s.stopped(T0).unwrap().state.failure(),
            Some(ErrorCode::AgreementInactive)
        );
        assert!(executing().stopped(T0).is_none());
        let paid = executing().debited(T0).unwrap().completed().unwrap();
        assert!(paid.stopped(T0).is_none());
    }

    #[test]
    fn a_stored_state_round_trips_and_a_failure_needs_its_reason() {
        for stage in <TransferPaymentStage as strum::IntoEnumIterator>::iter() {
            let reason = (stage == TransferPaymentStage::Failed).then_some(ErrorCode::Timeout);
            let state = TransferPaymentState::from_parts(stage, reason).unwrap();
            assert_eq!(state.stage(), stage);
            assert_eq!(state.failure(), reason);
        }
        assert!(TransferPaymentState::from_parts(TransferPaymentStage::Failed, None).is_none());
    }

    #[test]
    fn the_pace_allows_one_pending_per_device_and_waits_after_declines() {
        assert!(check_pace(DevicePace::default()).is_ok());
        let code = |p: DevicePace| check_pace(p).unwrap_err().code;
        assert_eq!(
            code(DevicePace {
                device_pending: MAX_PENDING_PER_DEVICE,
                ..Default::default()
            }),
            ErrorCode::TooManyPendingPayments
        );
        assert_eq!(
            code(DevicePace {
                phone_pending: MAX_PENDING_PER_PHONE,
                ..Default::default()
            }),
            ErrorCode::TooManyPendingPayments
        );
        for p in [
            DevicePace {
                device_declines: MAX_DECLINES_PER_DEVICE,
                ..Default::default()
            },
            DevicePace {
                device_requests: MAX_REQUESTS_PER_DEVICE,
                ..Default::default()
            },
            DevicePace {
                phone_requests: MAX_REQUESTS_PER_PHONE,
                ..Default::default()
            },
        ] {
            assert_eq!(code(p), ErrorCode::PaymentRequestsThrottled, "{p:?}");
        }
    }

    #[test]
    fn a_purpose_is_short_printable_text() {
        assert_eq!(check_purpose(" 4K film rental ").unwrap(), "4K film rental");
        for bad in ["", "  ", "a\nb", &"x".repeat(PURPOSE_MAX_CHARS + 1)] {
            assert!(check_purpose(bad).is_err(), "{bad:?}");
        }
    }
}
