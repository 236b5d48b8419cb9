//! Agreements a bank keeps with a wallet for one of its customers' cards.
//!
//! A quick-pay agreement (快捷签约, flows F1 and F2) is what the wallet
//! debits a bound card by:
//!
//! ```text
//! active ──the card is unbound (either side)──▶ cancelled
//! ```
//!
//! A cancelled agreement refuses every debit; it is never active again (a
//! new binding makes a new agreement).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum AgreementStatus {
    Active,
    Cancelled,
}

impl AgreementStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgreementStatus::Active => "active",
            AgreementStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<AgreementStatus> {
        <Self as strum::IntoEnumIterator>::iter().find(|a| a.as_str() == s)
    }

    /// Whether the wallet may debit by it.
    pub fn is_active(self) -> bool {
        self == AgreementStatus::Active
    }
}

crate::wire_names!(AgreementStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in <AgreementStatus as strum::IntoEnumIterator>::iter() {
            assert_eq!(AgreementStatus::parse(s.as_str()), Some(s));
        }
        assert!(!AgreementStatus::Cancelled.is_active());
    }
}
