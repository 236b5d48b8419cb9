//! Real-name identity: a person's name and national ID number. Personal
//! data: stored sealed (with a blind index for look-ups), shown masked,
//! never logged. ID numbers follow the PRC resident identity card format the
//! seeds assume: 17 digits and an ISO 7064 MOD 11-2 check character (`0-9`
//! or `X`).

use std::fmt;

use crate::error::{DomainError, ErrorCode};

/// A validated resident ID number (upper-case `X`).
#[derive(Clone, PartialEq, Eq)]
pub struct IdNumber(String);

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

/// The check character for 17 leading digits.
pub fn id_check_char(first17: &str) -> char {
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    char::from(CHECK[(sum % 11) as usize])
}

impl IdNumber {
    pub fn parse(text: &str) -> Result<IdNumber, DomainError> {
        let t = text.trim().to_ascii_uppercase();
        let bad = |m: &str| DomainError::new(ErrorCode::IdentityInvalid, m);
        if t.len() != 18
            || !t[..17].bytes().all(|b| b.is_ascii_digit())
            || !matches!(t.as_bytes()[17], b'0'..=b'9' | b'X')
        {
            return Err(bad("an ID number is 17 digits and a check digit or X"));
        }
        if id_check_char(&t[..17]) != char::from(t.as_bytes()[17]) {
            return Err(bad("the ID number's check digit is wrong"));
        }
        Ok(IdNumber(t))
    }

    /// Builds a valid number from 17 digits (sandbox data, tests).
    pub fn complete(first17: &str) -> IdNumber {
        IdNumber(format!("{first17}{}", id_check_char(first17)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last `n` characters, for "confirm the last digits of your ID" checks.
    pub fn last(&self, n: usize) -> &str {
        &self.0[self.0.len() - n.min(self.0.len())..]
    }

    /// `110***********123X`: first three and last four.
    pub fn masked(&self) -> String {
        format!("{}{}{}", &self.0[..3], "*".repeat(11), self.last(4))
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

/// A person's name as on their ID: 1 to 64 characters, no control characters.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(text: &str) -> Result<PersonName, DomainError> {
        let t = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let n = t.chars().count();
        if n == 0 || n > 64 || t.chars().any(char::is_control) {
            return Err(DomainError::new(
                ErrorCode::IdentityInvalid,
                "a name has 1 to 64 characters",
            ));
        }
        Ok(PersonName(t))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Names compare with case and inner spacing normalised.
    pub fn matches(&self, other: &PersonName) -> bool {
        self.0.to_lowercase() == other.0.to_lowercase()
    }

    /// For display to someone who should recognise, not learn, the name:
    /// `*三` / `**明` for a name without spaces (every character but the last
    /// hidden, as Chinese apps do), `Z**** S**` for a name in words.
    pub fn masked(&self) -> String {
        if self.0.contains(' ') {
            self.0
                .split(' ')
                .map(|w| {
                    let mut cs = w.chars();
                    let first = cs.next().map(String::from).unwrap_or_default();
                    format!("{first}{}", "*".repeat(cs.count()))
                })
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            let n = self.0.chars().count();
            let last = self.0.chars().last().expect("non-empty");
            if n == 1 {
                "*".into()
            } else {
                format!("{}{last}", "*".repeat(n - 1))
            }
        }
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonName({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_need_their_check_character() {
        let id = IdNumber::complete("11010519491231002");
        assert_eq!(id.expose(), "11010519491231002X");
        assert!(IdNumber::parse("11010519491231002x").is_ok());
        let err = IdNumber::parse("110105194912310021").unwrap_err();
        assert_eq!(err.code, ErrorCode::IdentityInvalid);
        assert!(IdNumber::parse("1101051949123100").is_err());
        assert_eq!(id.masked(), "110***********002X");
        assert_eq!(id.last(4), "002X");
        assert!(!format!("{id:?}").contains("1949"));
    }

    #[test]
    fn names_mask_and_match() {
        let zh = PersonName::parse("张三").unwrap();
        assert_eq!(zh.masked(), "*三");
        let en = PersonName::parse("  Wang   Fang ").unwrap();
        assert_eq!(en.expose(), "Wang Fang");
        assert_eq!(en.masked(), "W*** F***");
        assert!(en.matches(&PersonName::parse("wang fang").unwrap()));
        assert!(!en.matches(&PersonName::parse("Wang Fan").unwrap()));
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse("a\u{7}b").is_err());
    }
}
