//! HTTP layer of paybridge: builds the application from a configuration
//! ([`App::build`]) and serves it ([`App::run_until_stopped`]). The binary
//! and the tests build the very same app.
//!
//! Data flows one way: HTTP → role service → domain → store. Handlers here
//! extract, call one service method and map the result; they hold no SQL and
//! no business rules.
//!
//! - [`app`]: configuration, wiring per role, graceful shutdown.
//! - [`background`]: the loops that run beside the server (purges, expiry).
//! - [`routes`]: routers per role (system, wallet partner API, issuer partner API, sandbox).
//! - [`middleware`]: request context, error envelope, partner signatures, idempotency.
//! - [`extract`]: JSON body and query extractors with our error answers.
//! - [`error`]: `ApiError` and the envelope.
//! - [`metrics`], [`openapi`].

pub mod app;
pub mod background;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod routes;

pub use app::{App, AppConfig, IssuerRoleConfig, PeerConfig, WalletRoleConfig};
pub use middleware::rate_limit::{Rate, RateLimitConfig};

/// Largest request body accepted: partner calls and API requests are small
/// JSON documents; 64 KiB leaves room and bounds memory per request.
/// (ID photos for flow F5 get a route-specific limit.)
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A request running longer than this is answered with 504 `timeout`.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
