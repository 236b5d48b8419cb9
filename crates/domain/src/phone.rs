//! Phone numbers: the reserved phone at the bank, the wallet user's phone.
//! Personal data: shown masked (`138****5678`), never logged.

use std::fmt;
use std::str::FromStr;

/// A phone number: an optional `+` and 5 to 15 digits (E.164's limit).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a phone number is an optional '+' and 5 to 15 digits")]
pub struct InvalidPhoneNumber;

impl PhoneNumber {
    /// The number itself, for sending a message to it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For display: the first three and last four digits, the rest as `*`.
    pub fn masked(&self) -> String {
        let digits: Vec<char> = self.0.chars().collect();
        let n = digits.len();
        if n <= 7 {
            return "*".repeat(n);
        }
        let keep_head = if self.0.starts_with('+') { 4 } else { 3 };
        digits
            .iter()
            .enumerate()
            .map(|(i, c)| if i < keep_head || i >= n - 4 { *c } else { '*' })
            .collect()
    }
}

impl FromStr for PhoneNumber {
    type Err = InvalidPhoneNumber;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        if (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidPhoneNumber)
        }
    }
}

impl fmt::Debug for PhoneNumber {
    /// Masked: a phone number in a debug print is still personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_a_bank_statement() {
        let p: PhoneNumber = "13812345678".parse().unwrap();
        assert_eq!(p.masked(), "138****5678");
        assert_eq!(format!("{p:?}"), "PhoneNumber(138****5678)");
        let intl: PhoneNumber = "+8613812345678".parse().unwrap();
        assert_eq!(intl.masked(), "+861******5678");
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        for bad in [
            "",
            "1234",
            "138-1234-5678",
            "+",
            "1234567890123456",
            "abc12345",
        ] {
            assert!(bad.parse::<PhoneNumber>().is_err(), "{bad}");
        }
    }
}
