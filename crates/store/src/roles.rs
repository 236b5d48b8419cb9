//! What each role may touch. A service holds an `Arc<dyn WalletStore>` or an
//! `Arc<dyn IssuerStore>`, so the compiler keeps the wallet out of the bank's
//! tables and the other way round. Flow-specific traits join these as the
//! flows are built.

use crate::{
    IdempotencyStore, InboxStore, LedgerStore, NonceStore, OtpStore, OutboxStore, SandboxStore,
};

/// Everything the wallet server stores.
pub trait WalletStore:
    IdempotencyStore + NonceStore + OutboxStore + InboxStore + LedgerStore + OtpStore + SandboxStore
{
}

/// Everything an issuer (bank) server stores.
pub trait IssuerStore:
    IdempotencyStore + NonceStore + OutboxStore + InboxStore + LedgerStore + SandboxStore
{
}

impl WalletStore for crate::Store {}
impl IssuerStore for crate::Store {}
