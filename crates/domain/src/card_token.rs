//! Flow F5's **card token** (标记) and **card code** (卡代号): PAN
//! tokenisation (主卡号的标记化) at the issuer, after EMVCo Payment
//! Tokenisation. A virtual card's PAN stays in the issuer's token vault;
//! the phone's secure element and the wallet know the card only by its
//! card code (a public reference) and its token (a PAN-shaped number from
//! a separate token BIN range, valid only in its domain: this wallet, this
//! device, the channels allowed).
//!
//! ```text
//! active ──suspend (cardholder or issuer)──▶ suspended ──resume (the one who suspended, or the issuer)──▶ active
//! active | suspended ──deactivate (cardholder, issuer, or the quick binding unbound)──▶ deactivated
//! ```
//!
//! The vocabulary is MDES's (`active`, `suspended`, `deactivated`); a
//! deactivated token never pays again.

use crate::card::{luhn_check_digit, BinRange, Pan};
use crate::error::{DomainError, ErrorCode};

/// Who moved a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum TokenActor {
    /// The cardholder, from the wallet app.
    Cardholder,
    /// The issuer (fraud, a lost phone reported to the bank).
    Issuer,
}

impl TokenActor {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenActor::Cardholder => "cardholder",
            TokenActor::Issuer => "issuer",
        }
    }
}

/// Where a token is. A suspended or deactivated one says who did it.
/// [`TokenStage`] is its name alone (what is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumDiscriminants)]
#[strum_discriminants(name(TokenStage), derive(Hash, strum::EnumIter))]
pub enum TokenState {
    Active,
    Suspended { by: TokenActor },
    Deactivated { by: TokenActor },
}

impl TokenStage {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStage::Active => "active",
            TokenStage::Suspended => "suspended",
            TokenStage::Deactivated => "deactivated",
        }
    }
}

crate::wire_names!(TokenActor, TokenStage);

fn not_now(state: TokenState, what: &str) -> DomainError {
    DomainError::new(
        ErrorCode::TokenInactive,
        format!("a {} token cannot be {what}", state.stage().as_str()),
    )
}

impl TokenState {
    pub fn stage(self) -> TokenStage {
        TokenStage::from(self)
    }

    /// Who suspended or deactivated it, if anyone.
    pub fn actor(self) -> Option<TokenActor> {
        match self {
            TokenState::Active => None,
            TokenState::Suspended { by } | TokenState::Deactivated { by } => Some(by),
        }
    }

    /// The state of a stored token: its stage and who moved it.
    pub fn from_parts(stage: TokenStage, by: Option<TokenActor>) -> Option<Self> {
        Some(match stage {
            TokenStage::Active => TokenState::Active,
            TokenStage::Suspended => TokenState::Suspended { by: by? },
            TokenStage::Deactivated => TokenState::Deactivated { by: by? },
        })
    }

    pub fn suspend(self, by: TokenActor) -> Result<Self, DomainError> {
        match self {
            TokenState::Active => Ok(TokenState::Suspended { by }),
            other => Err(not_now(other, "suspended")),
        }
    }

    /// A token suspended by the issuer is resumed by the issuer only (the
    /// cardholder cannot lift the bank's hold); the issuer may resume any.
    pub fn resume(self, by: TokenActor) -> Result<Self, DomainError> {
        match self {
            TokenState::Suspended { by: held } if held == by || by == TokenActor::Issuer => {
                Ok(TokenState::Active)
            }
            TokenState::Suspended { .. } => Err(DomainError::new(
                ErrorCode::TokenInactive,
                "the issuer suspended this token: only the issuer can resume it",
            )),
            other => Err(not_now(other, "resumed")),
        }
    }

    pub fn deactivate(self, by: TokenActor) -> Result<Self, DomainError> {
        match self {
            TokenState::Active | TokenState::Suspended { .. } => Ok(TokenState::Deactivated { by }),
            other => Err(not_now(other, "deactivated")),
        }
    }

    /// Whether it may pay in a channel of its domain.
    pub fn pays(self) -> bool {
        self == TokenState::Active
    }
}

/// Where a token may pay (EMVCo's token domain restriction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, strum::EnumIter)]
pub enum TokenChannel {
    /// At a POS, tapped over NFC.
    Nfc,
    /// Online, by an order at the wallet.
    Online,
}

impl TokenChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenChannel::Nfc => "nfc",
            TokenChannel::Online => "online",
        }
    }
}

crate::wire_names!(TokenChannel);

/// Digits of a card token: a PAN's length.
pub const TOKEN_DIGITS: usize = 16;

/// A token number from `range` (a token BIN range, apart from the PANs'):
/// its prefix, random digits, a Luhn check digit. `random` gives one
/// decimal digit per call (the caller draws them from the OS).
pub fn token_number(range: &BinRange, mut random: impl FnMut() -> u8) -> Pan {
    let prefix = range
        .prefixes
        .first()
        .expect("a token BIN range has a prefix");
    let mut payload = prefix.clone();
    while payload.len() < TOKEN_DIGITS - 1 {
        payload.push(char::from(b'0' + random() % 10));
    }
    let check = luhn_check_digit(&payload);
    payload.push(check);
    Pan::parse(&payload).expect("a Luhn-valid number of PAN length")
}

/// A card code (卡代号): the virtual card's public reference, which the
/// wallet and the phone quote; it names the card without being its number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CardCode(String);

/// Characters of a card code after its `CC` prefix.
pub const CARD_CODE_LEN: usize = 12;
const CARD_CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl CardCode {
    /// A code from 12 random words (Crockford base32, no look-alikes).
    pub fn from_random(words: [u8; CARD_CODE_LEN]) -> Self {
        let body: String = words
            .iter()
            .map(|w| CARD_CODE_ALPHABET[usize::from(w % 32)] as char)
            .collect();
        Self(format!("CC{body}"))
    }

    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let ok = text.len() == CARD_CODE_LEN + 2
            && text.starts_with("CC")
            && text[2..].bytes().all(|b| CARD_CODE_ALPHABET.contains(&b));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(DomainError::new(
                ErrorCode::InvalidRequest,
                "card_code: CC and 12 characters",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::luhn_valid;

    fn token_bins() -> BinRange {
        BinRange {
            prefixes: vec!["489537".into()],
            lengths: vec![16],
        }
    }

    #[test]
    fn the_lifecycle_suspends_resumes_and_deactivates_for_good() {
        use TokenActor::*;
        let s = TokenState::Active.suspend(Cardholder).unwrap();
        assert_eq!(s.actor(), Some(Cardholder));
        assert!(!s.pays());
        assert_eq!(s.resume(Cardholder).unwrap(), TokenState::Active);
        // The bank's hold is the bank's to lift.
        let held = TokenState::Active.suspend(Issuer).unwrap();
        assert_eq!(
            held.resume(Cardholder).unwrap_err().code,
            ErrorCode::TokenInactive
        );
        assert_eq!(held.resume(Issuer).unwrap(), TokenState::Active);
        assert_eq!(s.resume(Issuer).unwrap(), TokenState::Active);
        let gone = held.deactivate(Cardholder).unwrap();
        for refused in [
            gone.suspend(Issuer),
            gone.resume(Issuer),
            gone.deactivate(Issuer),
        ] {
            assert_eq!(refused.unwrap_err().code, ErrorCode::TokenInactive);
        }
        assert!(!gone.pays());
        for state in [TokenState::Active, s, gone] {
            assert_eq!(
                TokenState::from_parts(state.stage(), state.actor()),
                Some(state)
            );
        }
        assert_eq!(TokenState::from_parts(TokenStage::Suspended, None), None);
    }

    #[test]
    fn token_numbers_come_from_the_token_range_and_pass_luhn() {
        let mut n = 0u8;
        let t = token_number(&token_bins(), || {
            n = n.wrapping_add(7);
            n
        });
        assert_eq!(t.expose().len(), TOKEN_DIGITS);
        assert!(t.expose().starts_with("489537"));
        assert!(luhn_valid(t.expose()));
        assert!(token_bins().admits(&t));
    }

    #[test]
    fn card_codes_are_public_references_of_a_fixed_form() {
        let c = CardCode::from_random([0, 1, 2, 31, 32, 255, 9, 10, 11, 12, 13, 14]);
        assert_eq!(c.as_str().len(), 14);
        assert_eq!(CardCode::parse(c.as_str()).unwrap(), c);
        for bad in ["", "CC123", "XX0123456789AB", "CC0123456789AI"] {
            assert!(CardCode::parse(bad).is_err(), "{bad}");
        }
    }
}
