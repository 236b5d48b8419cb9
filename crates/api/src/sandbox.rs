//! The sandbox parties' mailboxes, served only when the sandbox is on.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Query of the SMS outbox.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SmsQuery {
    /// The phone number whose messages to list (digits, optional leading `+`).
    #[param(pattern = r"^\+?[0-9]{5,15}$")]
    pub phone: String,
    /// At most this many messages, newest first (default 20, max 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Send a text through the sandbox SMS gateway (for trying the gateway out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendSms {
    #[schema(example = "13800138000", pattern = r"^\+?[0-9]{5,15}$")]
    pub phone: String,
    #[schema(
        example = "Your paybridge code is 123456",
        min_length = 1,
        max_length = 280
    )]
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SmsMessageView {
    pub id: String,
    pub phone: String,
    pub body: String,
    /// RFC 3339.
    pub sent_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SmsList {
    pub messages: Vec<SmsMessageView>,
}

/// Query of the OS push relay's messages for one device token.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RelayQuery {
    #[param(min_length = 1, max_length = 256)]
    pub device_token: String,
    /// At most this many messages, newest first (default 20, max 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RelayMessageView {
    pub id: String,
    pub device_token: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub sent_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RelayList {
    pub messages: Vec<RelayMessageView>,
}

/// The sandbox identity authority (flow F5) scores a first-card
/// applicant's photos and frames as someone else's (10–39) when any of
/// them contains these bytes: how a sandbox client shows another face.
pub const SANDBOX_MISMATCH_MARKER: &[u8] = b"SANDBOX-MISMATCH";
