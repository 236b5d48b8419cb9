//! Flow F5's wire types (virtual cards, card tokens, the phone's secure
//! element). So far: what the issuer seals to a phone's secure element when
//! it provisions a token ([`TokenKeyMaterial`], inside an HPKE box: see
//! `paybridge_crypto::hpke_box`). The application and token routes join
//! here as they are built.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The HPKE `info` of a token's key material: what the box is for.
pub const TOKEN_KEYS_INFO: &[u8] = b"paybridge token key material v1";

/// What a secure element needs to make a token's cryptograms, sealed by
/// the issuer to that element's own key (the box's associated data is the
/// token's id): the token (a PAN-shaped number of the token BIN range),
/// its PAN sequence number and expiry, and the token's master key for
/// application cryptograms (derived from the issuer master key by EMV
/// Option A). The issuer master key never leaves the issuer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenKeyMaterial {
    /// The token's id at the issuer (`ctk_…`).
    pub token_id: String,
    /// The card token: what the POS reads, never the PAN.
    pub token: String,
    /// PAN sequence number, two digits.
    pub psn: String,
    /// `MM/YY`.
    pub expiry: String,
    /// The token's master key for application cryptograms (MK-AC), hex.
    pub mk_ac: String,
}

crate::redacted_debug!(TokenKeyMaterial);
