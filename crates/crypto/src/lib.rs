//! Cryptography of paybridge, in one place so that it is reviewed in one place.
//!
//! - [`signing`]: Ed25519 signatures over partner requests and responses
//!   (the `PAYBRIDGE-ED25519` authorization scheme).
//! - [`keyfile`]: the role keys kept in the data directory (0600).
//! - [`secret`]: wrappers that keep secrets out of `Debug` output and zero them on drop.
//! - [`envelope`]: AES-256-GCM envelope encryption at rest, with key ids and rotation.
//! - [`blind_index`]: keyed HMAC indexes for looking up encrypted values.
//! - [`otp`]: one-time codes: generation, keyed hashes, constant-time checks.
//! - [`master`]: the master key; KEK wrapping and per-role derived HMAC keys.
//! - [`password`]: Argon2id password hashes, with equal time for unknown accounts.
//! - [`token`]: opaque session tokens and their keyed hashes.
//! - [`digest`]: SHA-256 helpers.
//! - [`device_proof`]: device keys and their DPoP proofs of possession (RFC 9449, Ed25519).
//! - [`webhook`]: Stripe-style webhook signatures (`t=…,v1=…`).
//! - [`emv`]: EMV card cryptography (Option A master keys, common session
//!   keys, application cryptograms, ARPC), for flow F5's tokens.
//! - [`hpke_box`]: key material sealed to one device's secure element
//!   (HPKE, RFC 9180), for flow F5's tokens.
//! - [`signed_message`]: flow F3's signed messages (compact JWS, Ed25519,
//!   one `typ` per kind), and the wallet's key for payment execution tasks.

pub mod blind_index;
pub mod device_proof;
pub mod digest;
pub mod emv;
pub mod envelope;
pub mod hpke_box;
pub mod keyfile;
pub mod master;
pub mod otp;
pub mod password;
pub mod secret;
pub mod signed_message;
pub mod signing;
pub mod token;
pub mod webhook;

pub use blind_index::{BlindIndexKey, IndexPurpose};
pub use secret::Secret;
pub use signing::{PartnerKeyPair, PartnerPublicKey};
