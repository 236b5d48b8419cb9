//! Middleware, outermost first: request context (id, span, metrics, log),
//! error envelope, panic catcher; on partner routes, signature verification
//! and response signing; on creating POSTs, idempotency.

pub mod envelope;
pub mod idempotency;
pub mod partner_auth;
pub mod request_context;

use paybridge_domain::partner::PartnerId;

/// Who is calling, as established by authentication. Scopes idempotency keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A partner, authenticated by its signature.
    Partner(PartnerId),
    /// No authentication (health, sandbox).
    Anonymous,
}

impl Caller {
    pub fn scope(&self) -> String {
        match self {
            Caller::Partner(p) => format!("partner:{p}"),
            Caller::Anonymous => "anonymous".into(),
        }
    }
}
