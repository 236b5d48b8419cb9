//! Money as integer minor units of an ISO 4217 currency. No floats anywhere:
//! 12.34 CNY is `Money { amount_minor: 1234, currency: CNY }`. Arithmetic is
//! checked, and mixing currencies is an error, never a silent conversion.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An ISO 4217 alphabetic code we support, with its minor-unit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// Currencies paybridge accepts, with their minor-unit exponents (ISO 4217).
/// Kept short on purpose: adding one is a decision, not an accident of input.
const SUPPORTED: &[(&str, u8)] = &[
    ("CNY", 2),
    ("HKD", 2),
    ("TWD", 2),
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("SGD", 2),
];

impl Currency {
    pub const CNY: Currency = Currency {
        code: *b"CNY",
        exponent: 2,
    };

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).expect("currency codes are ASCII")
    }

    /// Number of decimal places of the minor unit (2 for CNY, 0 for JPY).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unsupported currency")]
    UnsupportedCurrency,
    #[error("currencies differ")]
    CurrencyMismatch,
    #[error("amount out of range")]
    Overflow,
    #[error("amount must be positive")]
    NotPositive,
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SUPPORTED
            .iter()
            .find(|(code, _)| *code == s)
            .map(|(code, exponent)| Currency {
                code: code.as_bytes().try_into().expect("three letters"),
                exponent: *exponent,
            })
            .ok_or(MoneyError::UnsupportedCurrency)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount of money. On the wire: `{"amount": 1234, "currency": "CNY"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    #[serde(rename = "amount")]
    pub amount_minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Self {
        Self {
            amount_minor,
            currency,
        }
    }

    /// A strictly positive amount, as every payment and transfer must be.
    pub fn positive(amount_minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount_minor <= 0 {
            return Err(MoneyError::NotPositive);
        }
        Ok(Self::new(amount_minor, currency))
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .amount_minor
            .checked_add(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(sum, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let diff = self
            .amount_minor
            .checked_sub(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(diff, self.currency))
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch)
        }
    }
}

impl fmt::Display for Money {
    /// Human form, e.g. `12.34 CNY`, `-0.05 CNY`, `500 JPY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = u32::from(self.currency.exponent());
        if exp == 0 {
            return write!(f, "{} {}", self.amount_minor, self.currency);
        }
        let scale = 10u64.pow(exp);
        let abs = self.amount_minor.unsigned_abs();
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / scale,
            abs % scale,
            self.currency,
            width = exp as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_form_is_minor_units_and_code() {
        let m = Money::new(1234, Currency::CNY);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"amount":1234,"currency":"CNY"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Money>(r#"{"amount":1,"currency":"XXX"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":1.5,"currency":"CNY"}"#).is_err());
    }

    #[test]
    fn display_uses_the_currency_exponent() {
        assert_eq!(Money::new(1234, Currency::CNY).to_string(), "12.34 CNY");
        assert_eq!(Money::new(-5, Currency::CNY).to_string(), "-0.05 CNY");
        let jpy: Currency = "JPY".parse().unwrap();
        assert_eq!(Money::new(500, jpy).to_string(), "500 JPY");
    }

    #[test]
    fn mixing_currencies_is_an_error() {
        let usd: Currency = "USD".parse().unwrap();
        assert_eq!(
            Money::new(1, Currency::CNY).checked_add(Money::new(1, usd)),
            Err(MoneyError::CurrencyMismatch)
        );
    }

    #[test]
    fn only_positive_amounts_are_payable() {
        assert_eq!(
            Money::positive(0, Currency::CNY),
            Err(MoneyError::NotPositive)
        );
        assert!(Money::positive(1, Currency::CNY).is_ok());
    }

    proptest! {
        #[test]
        fn add_then_sub_is_identity(a in -1_000_000_000_000i64..1_000_000_000_000, b in -1_000_000_000_000i64..1_000_000_000_000) {
            let x = Money::new(a, Currency::CNY);
            let y = Money::new(b, Currency::CNY);
            prop_assert_eq!(x.checked_add(y).unwrap().checked_sub(y).unwrap(), x);
        }

        #[test]
        fn overflow_is_reported_not_wrapped(a in i64::MAX - 10..=i64::MAX, b in 11i64..1000) {
            prop_assert_eq!(Money::new(a, Currency::CNY).checked_add(Money::new(b, Currency::CNY)), Err(MoneyError::Overflow));
        }
    }
}
