//! Typed HTTP clients for paybridge.
//!
//! - [`partner`]: the signed server-to-server client the wallet and the
//!   issuers use to call each other (request signing, response verification).
//! - [`public`]: the transport of the public API (JSON, bearer, idempotency
//!   keys, the server's error codes), and on it one typed method per endpoint:
//!   [`wallet_app`] (the wallet app and first devices; flow F3's calls in
//!   [`delegated`], flow F5's in [`virtual_card`]), [`merchant`] (a
//!   merchant's server), [`bank_app`] (the issuer's own app), [`sandbox`]
//!   (the sandbox's SMS outbox and push relay, health).
//! - [`push`]: a device's push channel, read as the device reads it.

pub mod bank_app;
pub mod delegated;
pub mod merchant;
pub mod partner;
pub mod public;
pub mod push;
pub mod sandbox;
pub mod virtual_card;
pub mod wallet_app;

pub use bank_app::BankApp;
pub use merchant::MerchantApi;
pub use partner::{PartnerClient, PartnerClientConfig, PartnerError};
pub use public::{ApiError, DeviceSigner, PublicClient};
pub use push::{PushChannel, PushError};
pub use sandbox::SandboxApi;
pub use wallet_app::WalletApp;

/// Connect timeout for every outgoing call: loopback and LAN partners answer
/// in milliseconds; a partner that does not accept a connection in 3 s is down.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Whole-request timeout for partner calls.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long one push channel read may stay open (the server closes it sooner).
pub const STREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
