//! The parties that sign their calls to each other: the wallet and the issuers
//! (banks). Partner ids are chosen by the operator (`wallet`, `demo-bank`), so
//! they are short slugs rather than random ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest partner id: it travels in every signed header.
pub const PARTNER_ID_MAX_LEN: usize = 32;

/// Which role a process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Wallet,
    Issuer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Wallet => "wallet",
            Role::Issuer => "issuer",
        }
    }
}

/// A partner's id: 1–32 of `a-z`, `0-9`, `-`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartnerId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a partner id is 1 to 32 characters of a-z, 0-9 and '-', starting with a letter")]
pub struct InvalidPartnerId;

impl PartnerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PartnerId {
    type Err = InvalidPartnerId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= PARTNER_ID_MAX_LEN
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidPartnerId)
        }
    }
}

impl TryFrom<String> for PartnerId {
    type Error = InvalidPartnerId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PartnerId> for String {
    fn from(p: PartnerId) -> String {
        p.0
    }
}

impl fmt::Display for PartnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_ids_are_slugs() {
        assert!("demo-bank".parse::<PartnerId>().is_ok());
        assert!("wallet".parse::<PartnerId>().is_ok());
        for bad in ["", "Demo", "1bank", "bank_1", "a b", &"a".repeat(33)] {
            assert!(bad.parse::<PartnerId>().is_err(), "{bad:?}");
        }
    }
}
