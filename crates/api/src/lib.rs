//! Wire types of the paybridge HTTP APIs, shared by the server (which derives
//! its OpenAPI document from them) and the typed client.
//!
//! - [`error`]: the error envelope every 4xx/5xx answer carries.
//! - [`system`]: health, readiness.
//! - [`partner`]: the signed server-to-server API between wallet and issuers.
//! - [`sandbox`]: the sandbox parties' mailboxes.
//! - [`wallet`]: the wallet app's API (accounts, sessions, devices, WebAuthn, push channel).
//! - [`bank`]: the bank app's API (sessions, cards).
//! - [`merchant`]: the merchant API (orders, refunds, API keys, webhooks).

/// `Debug` that prints only the type's name: for request bodies carrying
/// passwords, PINs or personal data.
#[macro_export]
macro_rules! redacted_debug {
    ($($t:ty),* $(,)?) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), " { <redacted> }"))
            }
        }
    )*};
}

pub mod bank;
pub mod error;
pub mod merchant;
pub mod partner;
pub mod sandbox;
pub mod system;
pub mod wallet;

pub use error::{ErrorBody, ErrorDetail};

/// Format of every time on the wire: RFC 3339, UTC.
pub use paybridge_domain::clock::rfc3339;
