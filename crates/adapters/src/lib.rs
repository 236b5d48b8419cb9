//! Outside parties behind traits. Each has a sandbox implementation (used by
//! `paybridge serve` by default, and by every test) and a seam for a real
//! provider:
//!
//! - [`sms`]: the SMS gateway that delivers OTPs to reserved phones.
//! - [`push_relay`]: the OS vendor's push server (the "second server").
//! - [`identity`]: the identity authority (flow F5): the wallet submits ID
//!   photos and video frames for a score and a reference number; the issuer
//!   looks the score up by that reference.
//! - [`partner`]: the other organisation (wallet ↔ issuer), reached by signed HTTP.
//! - [`device_push`]: wake-ups for devices' live push channels.
//! - [`dispatcher`]: delivers outbox events to all of the above, at least once.
//! - [`sandbox`]: the sandbox parties as a service, for their HTTP endpoints.

pub mod device_push;
pub mod dispatcher;
pub mod identity;
pub mod partner;
pub mod push_relay;
pub mod sandbox;
pub mod sms;

/// An outside party failed.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("the provider is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the provider refused the request: {0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] paybridge_store::StoreError),
}
