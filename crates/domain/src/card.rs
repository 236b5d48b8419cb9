//! Bank cards as the issuer knows them. A PAN is personal data: it is checked
//! (length, Luhn, the bank's BIN ranges), stored sealed, and shown only as its
//! last four digits. `Debug` never prints it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::error::{DomainError, ErrorCode};
use crate::Timestamp;

/// A primary account number: 13 to 19 digits with a valid Luhn check digit.
#[derive(Clone, PartialEq, Eq)]
pub struct Pan(String);

/// The Luhn sum of `digits` (rightmost digit in position 1) is a multiple of 10.
pub fn luhn_valid(digits: &str) -> bool {
    luhn_sum(digits, false).is_multiple_of(10)
}

/// The digit that makes `payload ‖ digit` Luhn-valid.
pub fn luhn_check_digit(payload: &str) -> char {
    let sum = luhn_sum(payload, true);
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Doubling starts at the rightmost digit when `double_first`, else at the second.
fn luhn_sum(digits: &str, double_first: bool) -> u32 {
    digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if (i % 2 == 0) == double_first {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum()
}

impl Pan {
    /// Accepts digits with optional spaces or dashes between groups.
    pub fn parse(text: &str) -> Result<Pan, DomainError> {
        let digits: String = text.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if !(13..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::new(
                ErrorCode::CardInvalid,
                "a card number has 13 to 19 digits",
            ));
        }
        if !luhn_valid(&digits) {
            return Err(DomainError::new(
                ErrorCode::CardInvalid,
                "the card number's check digit is wrong",
            ));
        }
        Ok(Pan(digits))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// The issuer identification number (first six digits).
    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    /// `•••• 1234`: what any screen may show.
    pub fn masked(&self) -> String {
        mask_last4(self.last4())
    }
}

/// `•••• 1234` from the last four digits.
pub fn mask_last4(last4: &str) -> String {
    format!("•••• {last4}")
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

/// The card numbers one bank issues: PANs starting with one of `prefixes`,
/// of one of the lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinRange {
    pub prefixes: Vec<String>,
    pub lengths: Vec<usize>,
}

impl BinRange {
    pub fn admits(&self, pan: &Pan) -> bool {
        self.prefixes.iter().any(|p| pan.expose().starts_with(p))
            && self.lengths.contains(&pan.expose().len())
    }

    /// The PAN with `prefix`, `serial` zero-padded in the middle and a Luhn
    /// check digit, `length` digits long.
    pub fn make_pan(prefix: &str, serial: u64, length: usize) -> Pan {
        let body_len = length - prefix.len() - 1;
        let payload = format!("{prefix}{serial:0body_len$}");
        let check = luhn_check_digit(&payload);
        Pan(format!("{payload}{check}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumIter)]
#[serde(rename_all = "snake_case")]
pub enum CardType {
    Debit,
    Credit,
}

impl CardType {
    pub fn as_str(self) -> &'static str {
        match self {
            CardType::Debit => "debit",
            CardType::Credit => "credit",
        }
    }
}

impl FromStr for CardType {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <Self as strum::IntoEnumIterator>::iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                DomainError::new(ErrorCode::CardInvalid, "a card type is debit or credit")
            })
    }
}

/// Whether a card can be debited. A blocked card refuses debits and new
/// bindings; nothing unblocks it but the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum CardStatus {
    Active,
    Blocked,
}

impl CardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CardStatus::Active => "active",
            CardStatus::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<CardStatus> {
        <Self as strum::IntoEnumIterator>::iter().find(|c| c.as_str() == s)
    }
}

/// A card's expiry: valid through the last day of `month`/`year`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub month: u8,
    pub year: u16,
}

impl Expiry {
    pub fn new(month: u8, year: u16) -> Result<Expiry, DomainError> {
        if !(1..=12).contains(&month) || !(2000..=2099).contains(&year) {
            return Err(DomainError::new(
                ErrorCode::CardInvalid,
                "an expiry is MM/YY with a month from 01 to 12",
            ));
        }
        Ok(Expiry { month, year })
    }

    /// `MM/YY`.
    pub fn parse(text: &str) -> Result<Expiry, DomainError> {
        let bad = || DomainError::new(ErrorCode::CardInvalid, "an expiry is MM/YY");
        let (m, y) = text.split_once('/').ok_or_else(bad)?;
        if m.len() != 2 || y.len() != 2 {
            return Err(bad());
        }
        let month: u8 = m.parse().map_err(|_| bad())?;
        let year: u16 = y.parse().map_err(|_| bad())?;
        Expiry::new(month, 2000 + year)
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        let month = Month::try_from(self.month).expect("checked on construction");
        let first = Date::from_calendar_date(i32::from(self.year), month, 1)
            .expect("checked on construction");
        let next_month_start = first
            .checked_add(time::Duration::days(i64::from(
                month.length(i32::from(self.year)),
            )))
            .expect("within range");
        now.date() >= next_month_start
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{:02}", self.month, self.year % 100)
    }
}

crate::wire_names!(CardStatus);

impl fmt::Display for CardType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Its serde form is derived (snake_case, the same names as `as_str`).
impl crate::wire_name::WireName for CardType {
    fn wire_name(self) -> &'static str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn luhn_accepts_known_test_numbers_and_rejects_a_changed_digit() {
        assert!(Pan::parse("4242 4242 4242 4242").is_ok());
        assert!(Pan::parse("4242-4242-4242-4242").is_ok());
        let err = Pan::parse("4242424242424241").unwrap_err();
        assert_eq!(err.code, ErrorCode::CardInvalid);
        assert!(Pan::parse("4242").is_err());
        assert!(Pan::parse("42424242424242a2").is_err());
    }

    #[test]
    fn made_pans_are_luhn_valid_and_in_range() {
        for serial in [0, 1, 42, 99_999] {
            let pan = BinRange::make_pan("622202", serial, 19);
            assert_eq!(pan.expose().len(), 19);
            assert!(luhn_valid(pan.expose()));
            let range = BinRange {
                prefixes: vec!["622202".into()],
                lengths: vec![16, 19],
            };
            assert!(range.admits(&pan));
        }
        let other = BinRange::make_pan("621700", 7, 19);
        let range = BinRange {
            prefixes: vec!["622202".into()],
            lengths: vec![19],
        };
        assert!(!range.admits(&other));
    }

    #[test]
    fn debug_and_masked_show_last_four_only() {
        let pan = Pan::parse("4242424242424242").unwrap();
        assert_eq!(pan.masked(), "•••• 4242");
        assert_eq!(format!("{pan:?}"), "Pan(•••• 4242)");
        assert_eq!(pan.bin(), "424242");
    }

    #[test]
    fn expiry_runs_through_the_last_day_of_its_month() {
        let e = Expiry::parse("02/28").unwrap();
        assert_eq!(e.to_string(), "02/28");
        assert!(!e.is_expired(datetime!(2028-02-29 23:59 UTC)));
        assert!(e.is_expired(datetime!(2028-03-01 00:00 UTC)));
        assert!(Expiry::parse("13/28").is_err());
        assert!(Expiry::parse("1/28").is_err());
    }
}
