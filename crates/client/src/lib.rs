//! Typed HTTP clients for paybridge.
//!
//! - [`partner`]: the signed server-to-server client the wallet and the
//!   issuers use to call each other (request signing, response verification).
//! - [`public`]: the client apps, devices, demos and tests use.

pub mod partner;
pub mod public;

pub use partner::{PartnerClient, PartnerClientConfig, PartnerError};
pub use public::{ApiError, PublicClient};

/// Connect timeout for every outgoing call: loopback and LAN partners answer
/// in milliseconds; a partner that does not accept a connection in 3 s is down.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Whole-request timeout for partner calls.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
