//! Refunds of paid orders as a state machine (the order keeps the amounts:
//! [`crate::order::OrderStatus::refund`] reserves, `refund_reverted` gives back).
//!
//! ```text
//! pending ──the bank returned the money──▶ succeeded
//!    └──refused (the bank, or the merchant's balance)──▶ failed(code, message)
//! ```
//!
//! A refund whose bank call has no known outcome stays `pending`; the same
//! merchant reference resumes it. Only a pending refund moves, and it moves
//! once: `succeeded` and `failed` are final.

use crate::error::{DomainError, ErrorCode};

/// Why a refund failed, as the merchant is told (the code is stable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundFailure {
    pub code: ErrorCode,
    pub message: String,
}

/// `code: message`, as the merchant sees it and the store keeps it.
impl std::fmt::Display for RefundFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Where a refund is; a failed one carries why. [`RefundStage`] is the
/// state's name alone (the wire's `state`).
#[derive(Debug, Clone, PartialEq, Eq, strum::EnumDiscriminants)]
#[strum_discriminants(name(RefundStage), derive(Hash, strum::EnumIter))]
pub enum RefundStatus {
    /// Reserved on the order and the merchant's balance; the bank has not
    /// (knowingly) returned the money yet.
    Pending,
    Succeeded,
    Failed(RefundFailure),
}

impl RefundStage {
    /// The state's wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStage::Pending => "pending",
            RefundStage::Succeeded => "succeeded",
            RefundStage::Failed => "failed",
        }
    }
}

impl RefundStatus {
    pub fn stage(&self) -> RefundStage {
        RefundStage::from(self)
    }

    /// The state's wire and storage name.
    pub fn as_str(&self) -> &'static str {
        self.stage().as_str()
    }

    pub fn failure(&self) -> Option<&RefundFailure> {
        match self {
            RefundStatus::Failed(f) => Some(f),
            _ => None,
        }
    }

    /// The bank returned the money.
    pub fn succeed(&self) -> Result<RefundStatus, DomainError> {
        self.leave_pending(RefundStatus::Succeeded)
    }

    /// The bank, or the merchant's balance, refused it.
    pub fn fail(&self, failure: RefundFailure) -> Result<RefundStatus, DomainError> {
        self.leave_pending(RefundStatus::Failed(failure))
    }

    fn leave_pending(&self, next: RefundStatus) -> Result<RefundStatus, DomainError> {
        match self {
            RefundStatus::Pending => Ok(next),
            done => Err(DomainError::new(
                ErrorCode::OrderNotRefundable,
                format!("the refund is already {}", done.as_str()),
            )),
        }
    }

    /// What a merchant asking for this refund again is answered: the refund
    /// (`Ok(true)` when it still has to be carried out), or its failure.
    pub fn on_retry(&self) -> Result<bool, DomainError> {
        match self {
            RefundStatus::Pending => Ok(true),
            RefundStatus::Succeeded => Ok(false),
            RefundStatus::Failed(f) => Err(DomainError::new(f.code, f.message.clone())),
        }
    }
}

crate::wire_names!(RefundStage);

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> RefundFailure {
        RefundFailure {
            code: ErrorCode::InsufficientFunds,
            message: "the merchant's balance cannot cover the refund".into(),
        }
    }

    #[test]
    fn a_pending_refund_ends_once() {
        let done = RefundStatus::Pending.succeed().unwrap();
        assert_eq!(done, RefundStatus::Succeeded);
        assert!(done.succeed().is_err());
        assert!(done.fail(refused()).is_err());
        let failed = RefundStatus::Pending.fail(refused()).unwrap();
        assert_eq!(failed.failure(), Some(&refused()));
        assert_eq!(
            failed.succeed().unwrap_err().code,
            ErrorCode::OrderNotRefundable
        );
    }

    #[test]
    fn a_retry_resumes_pending_answers_done_and_repeats_the_failure() {
        assert_eq!(RefundStatus::Pending.on_retry(), Ok(true));
        assert_eq!(RefundStatus::Succeeded.on_retry(), Ok(false));
        let e = RefundStatus::Failed(refused()).on_retry().unwrap_err();
        assert_eq!((e.code, e.message), (refused().code, refused().message));
    }
}
