//! Cryptography of paybridge, in one place so that it is reviewed in one place.
//!
//! - [`signing`]: Ed25519 signatures over partner requests and responses
//!   (the `PAYBRIDGE-ED25519` authorization scheme).
//! - [`keyfile`]: the role keys kept in the data directory (0600).
//! - [`secret`]: wrappers that keep secrets out of `Debug` output and zero them on drop.
//! - [`digest`]: SHA-256 helpers.

pub mod digest;
pub mod keyfile;
pub mod secret;
pub mod signing;

pub use secret::Secret;
pub use signing::{PartnerKeyPair, PartnerPublicKey};
