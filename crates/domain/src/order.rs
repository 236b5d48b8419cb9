//! Merchants' orders as a state machine (flows F3, F4, F5 pay them).
//!
//! ```text
//! open ──start paying──▶ paying ──paid──▶ paid ──refund──▶ partially_refunded ──refund──▶ refunded
//!  │  ◀──payment failed──┘                    └───────────refund (all)───────────────────▶
//!  └──cancel──▶ cancelled      open/paying past expiry ──▶ expired
//! ```
//!
//! Amounts and currency are the order's, fixed at creation: nothing a device
//! sends changes them.

use crate::error::{DomainError, ErrorCode};
use crate::{Money, Timestamp};

/// Orders expire 15 minutes after creation unless the merchant says otherwise.
pub const ORDER_DEFAULT_TTL_SECS: i64 = 15 * 60;
/// Bounds of a merchant-chosen expiry.
pub const ORDER_MIN_TTL_SECS: i64 = 60;
pub const ORDER_MAX_TTL_SECS: i64 = 24 * 3600;
/// The largest order, in minor units (¥1,000,000.00): far above a retail
/// payment, far below where sums of amounts could overflow.
pub const ORDER_MAX_AMOUNT_MINOR: i64 = 100_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum OrderState {
    Open,
    Paying,
    Paid,
    PartiallyRefunded,
    Refunded,
    Expired,
    Cancelled,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Open => "open",
            OrderState::Paying => "paying",
            OrderState::Paid => "paid",
            OrderState::PartiallyRefunded => "partially_refunded",
            OrderState::Refunded => "refunded",
            OrderState::Expired => "expired",
            OrderState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OrderState> {
        <Self as strum::IntoEnumIterator>::iter().find(|o| o.as_str() == s)
    }
}

/// The parts of an order the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderStatus {
    pub state: OrderState,
    pub amount: Money,
    pub refunded_minor: i64,
    pub expires_at: Timestamp,
}

fn refuse(code: ErrorCode, m: &str) -> DomainError {
    DomainError::new(code, m)
}

/// Checks a merchant-chosen expiry.
pub fn order_ttl(secs: Option<i64>) -> Result<i64, DomainError> {
    let ttl = secs.unwrap_or(ORDER_DEFAULT_TTL_SECS);
    if !(ORDER_MIN_TTL_SECS..=ORDER_MAX_TTL_SECS).contains(&ttl) {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "expires_in_secs: from 60 to 86400",
        ));
    }
    Ok(ttl)
}

impl OrderStatus {
    /// A new order of a strictly positive amount.
    pub fn open(amount: Money, now: Timestamp, ttl_secs: i64) -> Result<Self, DomainError> {
        if amount.amount_minor <= 0 {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "amount: must be positive",
            ));
        }
        if amount.amount_minor > ORDER_MAX_AMOUNT_MINOR {
            return Err(DomainError::new(
                ErrorCode::InvalidRequest,
                format!("amount: at most {ORDER_MAX_AMOUNT_MINOR} minor units per order"),
            ));
        }
        Ok(Self {
            state: OrderState::Open,
            amount,
            refunded_minor: 0,
            expires_at: now + time::Duration::seconds(ttl_secs),
        })
    }

    /// Whether an unpaid order ran out of time.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        matches!(self.state, OrderState::Open | OrderState::Paying) && now >= self.expires_at
    }

    fn payable(&self, now: Timestamp) -> Result<(), DomainError> {
        if self.is_expired(now) || self.state == OrderState::Expired {
            return Err(refuse(ErrorCode::OrderExpired, "the order expired"));
        }
        Ok(())
    }

    /// A payment starts: only one at a time.
    pub fn start_paying(self, now: Timestamp) -> Result<Self, DomainError> {
        self.payable(now)?;
        match self.state {
            OrderState::Open => Ok(Self {
                state: OrderState::Paying,
                ..self
            }),
            OrderState::Paying => Err(refuse(
                ErrorCode::OrderNotPayable,
                "a payment of this order is in progress",
            )),
            _ => Err(refuse(
                ErrorCode::OrderNotPayable,
                "the order is not open for payment",
            )),
        }
    }

    /// The payment failed (declined, refused by the bank): open again.
    pub fn payment_failed(self) -> Result<Self, DomainError> {
        match self.state {
            OrderState::Paying => Ok(Self {
                state: OrderState::Open,
                ..self
            }),
            _ => Err(refuse(
                ErrorCode::OrderNotPayable,
                "no payment of this order is in progress",
            )),
        }
    }

    /// The money moved. (An order paying when it expired is still paid: the
    /// debit happened; expiry only stops new payments.)
    pub fn paid(self) -> Result<Self, DomainError> {
        match self.state {
            OrderState::Paying => Ok(Self {
                state: OrderState::Paid,
                ..self
            }),
            _ => Err(refuse(
                ErrorCode::OrderNotPayable,
                "no payment of this order is in progress",
            )),
        }
    }

    pub fn cancel(self, now: Timestamp) -> Result<Self, DomainError> {
        match self.state {
            OrderState::Open if !self.is_expired(now) => Ok(Self {
                state: OrderState::Cancelled,
                ..self
            }),
            OrderState::Open => Err(refuse(ErrorCode::OrderExpired, "the order expired")),
            _ => Err(refuse(
                ErrorCode::OrderNotPayable,
                "only an open order can be cancelled",
            )),
        }
    }

    pub fn expire(self, now: Timestamp) -> Option<Self> {
        (self.state == OrderState::Open && self.is_expired(now)).then_some(Self {
            state: OrderState::Expired,
            ..self
        })
    }

    /// Refunds `amount` (minor units) of a paid order, at most what is left.
    pub fn refund(self, amount_minor: i64) -> Result<Self, DomainError> {
        if !matches!(self.state, OrderState::Paid | OrderState::PartiallyRefunded) {
            return Err(refuse(
                ErrorCode::OrderNotRefundable,
                "only a paid order can be refunded",
            ));
        }
        let left = self.amount.amount_minor - self.refunded_minor;
        if amount_minor <= 0 || amount_minor > left {
            return Err(refuse(
                ErrorCode::OrderNotRefundable,
                &format!("a refund is from 1 to {left} (what is left of the order)"),
            ));
        }
        let refunded = self.refunded_minor + amount_minor;
        Ok(Self {
            state: if refunded == self.amount.amount_minor {
                OrderState::Refunded
            } else {
                OrderState::PartiallyRefunded
            },
            refunded_minor: refunded,
            ..self
        })
    }
}

impl OrderStatus {
    /// A reserved refund failed at the bank: `amount_minor` is refundable again.
    pub fn refund_reverted(self, amount_minor: i64) -> Result<Self, DomainError> {
        if !matches!(
            self.state,
            OrderState::PartiallyRefunded | OrderState::Refunded
        ) || amount_minor <= 0
            || amount_minor > self.refunded_minor
        {
            return Err(refuse(
                ErrorCode::OrderNotRefundable,
                "no such refund to revert",
            ));
        }
        let refunded = self.refunded_minor - amount_minor;
        Ok(Self {
            state: if refunded == 0 {
                OrderState::Paid
            } else {
                OrderState::PartiallyRefunded
            },
            refunded_minor: refunded,
            ..self
        })
    }
}

crate::wire_names!(OrderState);

/// What a bank's refusal of a debit says about the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebitRefusal {
    /// The bank looked and said no (its check for an earlier debit with
    /// the same payment id comes first): nothing was debited, the order
    /// opens again.
    Declined,
    /// In progress, throttled, a server error, or a code we do not know:
    /// the card may have been debited. The order stays `paying` until the
    /// reconciliation asks the bank.
    Unknown,
}

/// Bank error codes that are a definite no for a debit.
pub const DEFINITE_DEBIT_DECLINES: [ErrorCode; 4] = [
    ErrorCode::InsufficientFunds,
    ErrorCode::CardInvalid,
    ErrorCode::NotFound,
    ErrorCode::InvalidRequest,
];

/// Classifies a bank's refusal (`status`, `code`) of a debit. Only a
/// client error with a code of [`DEFINITE_DEBIT_DECLINES`] is a decline;
/// 409 (in progress) and 429 (throttled) never are, whatever their code.
pub fn debit_refusal(status: u16, code: &str) -> DebitRefusal {
    let definite = (400..500).contains(&status)
        && status != 409
        && status != 429
        && DEFINITE_DEBIT_DECLINES.iter().any(|c| c.as_str() == code);
    if definite {
        DebitRefusal::Declined
    } else {
        DebitRefusal::Unknown
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_refund_is_refundable_again() {
        let paid = order().start_paying(t0()).unwrap().paid().unwrap();
        let part = paid.refund(4_000).unwrap().refund(6_000).unwrap();
        assert_eq!(part.state, OrderState::Refunded);
        let back = part.refund_reverted(6_000).unwrap();
        assert_eq!(
            (back.state, back.refunded_minor),
            (OrderState::PartiallyRefunded, 4_000)
        );
        let all = back.refund_reverted(4_000).unwrap();
        assert_eq!((all.state, all.refunded_minor), (OrderState::Paid, 0));
        assert!(all.refund_reverted(1).is_err());
        assert!(back.refund_reverted(4_001).is_err());
    }

    use super::*;

    #[test]
    fn only_a_definite_no_is_a_declined_debit() {
        assert_eq!(
            debit_refusal(422, "insufficient_funds"),
            DebitRefusal::Declined
        );
        assert_eq!(debit_refusal(404, "not_found"), DebitRefusal::Declined);
        assert_eq!(debit_refusal(422, "card_invalid"), DebitRefusal::Declined);
        for (status, code) in [
            (409, "idempotency_request_in_progress"),
            (429, "rate_limited"),
            (409, "not_found"),
            (422, "idempotency_key_reused"),
            (401, "signature_expired"),
            (500, "internal_error"),
            (503, "insufficient_funds"),
            (418, "teapot"),
        ] {
            assert_eq!(
                debit_refusal(status, code),
                DebitRefusal::Unknown,
                "{status} {code}"
            );
        }
    }
    use crate::Currency;
    use time::macros::datetime;

    fn t0() -> Timestamp {
        datetime!(2026-11-23 08:00 UTC)
    }

    fn order() -> OrderStatus {
        OrderStatus::open(
            Money::new(10_000, Currency::CNY),
            t0(),
            ORDER_DEFAULT_TTL_SECS,
        )
        .unwrap()
    }

    #[test]
    fn pay_then_refund_in_parts() {
        let o = order().start_paying(t0()).unwrap();
        assert_eq!(
            o.start_paying(t0()).unwrap_err().code,
            ErrorCode::OrderNotPayable
        );
        let o = o.paid().unwrap();
        assert_eq!(o.cancel(t0()).unwrap_err().code, ErrorCode::OrderNotPayable);
        let o = o.refund(4_000).unwrap();
        assert_eq!(
            (o.state, o.refunded_minor),
            (OrderState::PartiallyRefunded, 4_000)
        );
        assert_eq!(
            o.refund(6_001).unwrap_err().code,
            ErrorCode::OrderNotRefundable
        );
        let o = o.refund(6_000).unwrap();
        assert_eq!(o.state, OrderState::Refunded);
        assert!(o.refund(1).is_err());
    }

    #[test]
    fn failures_reopen_and_expiry_stops_new_payments() {
        let o = order()
            .start_paying(t0())
            .unwrap()
            .payment_failed()
            .unwrap();
        assert_eq!(o.state, OrderState::Open);
        let late = t0() + time::Duration::seconds(ORDER_DEFAULT_TTL_SECS);
        assert_eq!(
            o.start_paying(late).unwrap_err().code,
            ErrorCode::OrderExpired
        );
        assert_eq!(o.expire(late).unwrap().state, OrderState::Expired);
        assert!(o.expire(t0()).is_none());
        assert_eq!(o.cancel(t0()).unwrap().state, OrderState::Cancelled);
        assert!(OrderStatus::open(Money::new(0, Currency::CNY), t0(), 60).is_err());
        assert!(order_ttl(Some(30)).is_err());
        assert_eq!(order_ttl(None).unwrap(), ORDER_DEFAULT_TTL_SECS);
    }

    #[test]
    fn states_round_trip() {
        for s in <OrderState as strum::IntoEnumIterator>::iter() {
            assert_eq!(OrderState::parse(s.as_str()), Some(s));
        }
    }
}
