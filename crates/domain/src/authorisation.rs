//! A card token's authorisation at the issuer (flow F5 at a POS): why a tap
//! is declined, as a reason of our own and the ISO 8583 response code a
//! POS shows. The checks run in this order, the first failure the reason:
//!
//! ```text
//! EMV data readable → token known → token active → channel nfc allowed
//!   → cryptogram verifies with the token's key → ATC above any accepted
//!   → (then the debit: funds)
//! ```
//!
//! The ATC is taken only after the cryptogram verified, so garbage cannot
//! burn a token's counters.

/// Why the issuer declines a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum DeclineReason {
    /// The EMV data lacks a data object the cryptogram covers, or has one
    /// twice or of the wrong length.
    FormatError,
    /// No token with this number in the vault.
    UnknownToken,
    /// The token is suspended or deactivated.
    TokenInactive,
    /// The token may not pay over this channel (its domain restriction).
    ChannelNotAllowed,
    /// The application cryptogram does not verify: other data (an amount
    /// changed) or another key.
    CryptogramInvalid,
    /// The ATC is not above the highest accepted: a replayed or older
    /// cryptogram.
    AtcReplayed,
    /// The card's account cannot pay the amount.
    InsufficientFunds,
}

impl DeclineReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclineReason::FormatError => "format_error",
            DeclineReason::UnknownToken => "unknown_token",
            DeclineReason::TokenInactive => "token_inactive",
            DeclineReason::ChannelNotAllowed => "channel_not_allowed",
            DeclineReason::CryptogramInvalid => "cryptogram_invalid",
            DeclineReason::AtcReplayed => "atc_replayed",
            DeclineReason::InsufficientFunds => "insufficient_funds",
        }
    }

    /// The ISO 8583 (field 39) response code a POS shows.
    pub fn response_code(self) -> &'static str {
        match self {
            DeclineReason::FormatError => "30",
            DeclineReason::UnknownToken => "14",
            DeclineReason::TokenInactive => "62",
            DeclineReason::ChannelNotAllowed => "57",
            DeclineReason::CryptogramInvalid | DeclineReason::AtcReplayed => "63",
            DeclineReason::InsufficientFunds => "51",
        }
    }
}

crate::wire_names!(DeclineReason);

/// The response code of an approval.
pub const APPROVED: &str = "00";
/// The authorisation response code (ARC) an approval's ARPC covers.
pub const APPROVED_ARC: [u8; 2] = *b"00";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireName;
    use strum::IntoEnumIterator;

    #[test]
    fn every_reason_has_its_name_and_a_two_digit_code() {
        for r in DeclineReason::iter() {
            assert_eq!(DeclineReason::from_wire_name(r.as_str()), Some(r));
            let code = r.response_code();
            assert!(code.len() == 2 && code != APPROVED, "{r}");
        }
    }
}
