//! The error envelope: `{"error": {"code", "message", "request_id"}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code to branch on, e.g. `idempotency_key_reused`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// Human-readable explanation; may change between versions.
    pub message: String,
    /// The request's id (also in the `x-request-id` header), for support.
    #[schema(example = "req_0c5m3v1f7q9d2k4h8j6n0p2r4t")]
    pub request_id: String,
}
