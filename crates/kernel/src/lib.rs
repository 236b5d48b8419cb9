//! The kernel both role services (`paybridge-wallet`, `paybridge-issuer`)
//! are written on: the few mechanisms that are the same on either side of
//! the partner API, so that each lives once.
//!
//! - [`retry`]: one loop for compare-and-set writes that lost a race, with
//!   its own error code (`contended`), never confused with throttling;
//! - [`login`]: judging a login try against its wrong-password counter;
//! - [`passwords`]: Argon2id hashing and checking off the async threads;
//! - [`personal`]: sealing, masking and blind-indexing a personal-data field;
//! - [`ledger`]: transfer ids and what a submitted transfer came to.

pub mod ledger;
pub mod login;
pub mod passwords;
pub mod personal;
pub mod retry;

pub use retry::{on_conflict, Attempt};
