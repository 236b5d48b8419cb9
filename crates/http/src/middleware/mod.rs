//! Middleware, outermost first: request context (id, span, metrics, log),
//! error envelope, panic catcher; on partner routes, signature verification
//! and response signing; on creating POSTs, idempotency.

pub mod envelope;
pub mod idempotency;
pub mod partner_auth;
pub mod rate_limit;
pub mod request_context;
pub mod session_auth;

use paybridge_domain::partner::PartnerId;

/// Who is calling, as established by authentication. Scopes idempotency keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A partner, authenticated by its signature.
    Partner(PartnerId),
    /// A wallet account, authenticated by its session.
    User(String),
    /// A bank app customer, authenticated by their session.
    Customer(String),
    /// A merchant, authenticated by its API key.
    Merchant(String),
    /// No authentication (health, sandbox, registration).
    Anonymous,
}

impl Caller {
    pub fn scope(&self) -> String {
        match self {
            Caller::Partner(p) => format!("partner:{p}"),
            Caller::User(u) => format!("user:{u}"),
            Caller::Customer(c) => format!("customer:{c}"),
            Caller::Merchant(m) => format!("merchant:{m}"),
            Caller::Anonymous => "anonymous".into(),
        }
    }
}
