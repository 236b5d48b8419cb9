//! What each role may touch. A service holds an `Arc<dyn WalletStore>` or an
//! `Arc<dyn IssuerStore>`, so the compiler keeps the wallet out of the bank's
//! tables and the other way round. Flow-specific traits join these as the
//! flows are built.

use crate::{
    AccountStore, AgreementStore, AuditStore, BankStore, BindingStore, CardApplicationStore,
    CardIssuingStore, CardTokenStore, DeviceStore, IdempotencyStore, InboxStore, KeyStore,
    LedgerStore, MerchantStore, NonceStore, OtpStore, OutboxStore, PairingStore,
    PaymentRequestStore, RegistrationStore, SandboxStore, SessionStore, TokenVaultStore,
    TransferAgreementStore, TransferPaymentStore,
};

/// Everything the wallet server stores.
pub trait WalletStore:
    AuditStore
    + IdempotencyStore
    + NonceStore
    + OutboxStore
    + InboxStore
    + LedgerStore
    + OtpStore
    + SandboxStore
    + KeyStore
    + SessionStore
    + AccountStore
    + DeviceStore
    + BindingStore
    + RegistrationStore
    + MerchantStore
    + PaymentRequestStore
    + PairingStore
    + TransferAgreementStore
    + TransferPaymentStore
    + CardApplicationStore
    + CardTokenStore
{
}

/// Everything an issuer (bank) server stores.
pub trait IssuerStore:
    AuditStore
    + IdempotencyStore
    + NonceStore
    + OutboxStore
    + InboxStore
    + LedgerStore
    + SandboxStore
    + KeyStore
    + SessionStore
    + BankStore
    + AgreementStore
    + CardIssuingStore
    + TokenVaultStore
{
}

impl WalletStore for crate::Store {}
impl IssuerStore for crate::Store {}
