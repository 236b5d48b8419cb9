//! Wire types of the paybridge HTTP APIs, shared by the server (which derives
//! its OpenAPI document from them) and the typed client.
//!
//! - [`error`]: the error envelope every 4xx/5xx answer carries.
//! - [`system`]: health, readiness.
//! - [`partner`]: the signed server-to-server API between wallet and issuers.
//! - [`sandbox`]: the sandbox parties' mailboxes.

pub mod error;
pub mod partner;
pub mod sandbox;
pub mod system;

pub use error::{ErrorBody, ErrorDetail};

/// Format of every time on the wire: RFC 3339, UTC.
pub fn rfc3339(t: paybridge_domain::Timestamp) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("UTC timestamps always format as RFC 3339")
}
