//! The signed partner API between the wallet and the issuers. Every request
//! and response here travels with a `PAYBRIDGE-ED25519` signature.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Answer to a signed ping: who answered, and its clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartnerPing {
    /// The answering partner's id, e.g. `wallet` or `demo-bank`.
    pub partner: String,
    /// `wallet` or `issuer`.
    pub role: String,
    /// The caller, as authenticated by its signature.
    pub caller: String,
    /// The answering server's time (RFC 3339), to diagnose clock skew.
    pub time: String,
}

/// An event delivered to the other party's callback endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerEvent {
    /// Stable across redeliveries: de-duplicate on it.
    #[schema(example = "evt_0c5m3v1f7q9d2k4h8j6n0p2r4t")]
    pub id: String,
    #[schema(example = "binding.activated")]
    pub topic: String,
    /// RFC 3339.
    pub occurred_at: String,
    /// Topic-specific data; never a PAN, ID number, phone number or OTP.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Acknowledgement of a [`PartnerEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartnerEventAck {
    pub id: String,
    /// `true` when this event had been received before (and was not acted on again).
    pub duplicate: bool,
}
