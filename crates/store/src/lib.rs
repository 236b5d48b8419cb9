//! Storage of paybridge.
//!
//! One [`Store`] type runs the same SQL on two dialects: embedded SQLite (the
//! default; WAL, busy timeout, `BEGIN IMMEDIATE` for writes behind one writer
//! gate) and PostgreSQL (a pool; production and several API servers). The SQL
//! is written once in the portable subset both speak (`$n` parameters,
//! `ON CONFLICT`, `RETURNING`, conditional updates instead of row locks), so
//! the two behave the same by construction; what differs — connection setup,
//! transaction start, DDL — lives in [`db`] and `migrations/{sqlite,postgres}`.
//! The conformance suite (`tests/conformance.rs`) runs every test on both.
//!
//! Behaviour is grouped into traits by who uses it, one module each:
//! - shared by both roles: [`IdempotencyStore`] ([`idempotency`]), [`NonceStore`]
//!   ([`nonces`]), [`OutboxStore`] ([`outbox`]), [`InboxStore`] ([`inbox`]),
//!   [`LedgerStore`] ([`ledger`]: the bank's accounts; the wallet's merchant balances);
//! - keys of encryption at rest: [`KeyStore`], and [`KeyVault`] on top ([`keys`]);
//! - sessions and wrong-password counters (both roles): [`SessionStore`] ([`sessions`]);
//! - the bank's customers and cards: [`BankStore`] ([`bank`]);
//! - wallet accounts and devices: [`AccountStore`] ([`accounts`]), [`DeviceStore`] ([`devices`]);
//! - OTP challenges: [`OtpStore`] ([`otp`]);
//! - flow F1 and F2: [`BindingStore`], [`AgreementStore`] ([`bindings`]),
//!   [`RegistrationStore`] ([`registration`]);
//! - merchants, orders, refunds: [`MerchantStore`] ([`merchants`]); flow F4:
//!   [`PaymentRequestStore`] ([`payment_requests`]);
//! - flow F3: [`PairingStore`] ([`pairings`]: business binding requests),
//!   [`TransferAgreementStore`] ([`transfer_agreements`]),
//!   [`TransferPaymentStore`] ([`transfer_payments`]);
//! - flow F5: [`CardApplicationStore`] ([`card_applications`]: the wallet's
//!   virtual card applications, photos and frames), [`CardTokenStore`]
//!   ([`card_tokens`]: the wallet's card tokens and phones' secure element
//!   keys); at the issuer, [`CardIssuingStore`] ([`card_issuing`]: its
//!   review and the issue of a card) and [`TokenVaultStore`] ([`token_vault`]);
//! - the sandbox parties: [`SandboxStore`] ([`sandbox`]);
//! - invariants every store must hold, read in one pass: [`AuditStore`] ([`audit`]);
//! - [`WalletStore`] and [`IssuerStore`] gather what each role may touch ([`roles`]).
//!
//! Errors are [`StoreError`] ([`error`]); throwaway test databases live in
//! [`testing`].
//!
//! Each role has its own database (SQLite file or PostgreSQL schema): the
//! wallet and the bank are different organisations and share no tables.

pub mod accounts;
pub mod audit;
pub mod bank;
pub mod bindings;
pub mod card_applications;
pub mod card_issuing;
pub mod card_tokens;
pub mod db;
pub mod devices;
pub mod error;
pub mod idempotency;
pub mod inbox;
pub mod keys;
pub mod ledger;
pub mod merchants;
pub mod nonces;
pub mod otp;
pub mod outbox;
pub mod pairings;
pub mod payment_requests;
pub mod registration;
pub mod roles;
pub mod sandbox;
pub mod sessions;
pub mod testing;
pub mod token_vault;
pub mod transfer_agreements;
pub mod transfer_payments;

pub use accounts::{AccountStore, SealedIdentity, StoredUser, UserWrite};
pub use audit::{AuditReport, AuditStore};
pub use bank::{BankCreate, BankStore, StoredCard, StoredCustomer};
pub use bindings::{
    AgreementStore, BindingStore, BindingWrite, StoredAgreement, StoredBinding, StoredOffer,
};
pub use card_applications::{
    ApplicationStart, CardApplicationStore, Issuance, StoredCardApplication, StoredMedia,
};
pub use card_issuing::{CardIssue, CardIssuingStore, IssueOutcome, StoredBankApplication};
pub use card_tokens::{CardTokenStore, StoredCardToken, StoredSecureElementKey};
pub use db::{Backend, StartupLock, Store, StoreConfig};
pub use devices::{
    CeremonyTake, DeviceCreate, DeviceKeyRecord, DeviceStore, StoredCeremony, StoredCredential,
    StoredDevice,
};
pub use error::StoreError;
pub use idempotency::{IdempotencyBegin, IdempotencyStore, SavedResponse};
pub use inbox::InboxStore;
pub use keys::{
    media_seal_key, transfer_agreement_seal_key, KeyStore, KeyVault, RotationReport, SealedColumn,
    VaultError, BANK_CARD_APPLICANT, CARD_APPLICANT, CARD_APPLICATION_MEDIA,
    CARD_APPLICATION_REFERENCE, PAIRING_DEVICE_INFO, SEALED_COLUMNS, TRANSFER_AGREEMENT_INFO,
    VAULT_TOKEN, WALLET_CARD_TOKEN,
};
pub use ledger::{LedgerStore, LedgerTotals, TransferOutcome};
pub use merchants::{
    MerchantStore, OrderCreate, RefundBegin, StoredApiKey, StoredMerchant, StoredOrder,
    StoredRefund,
};
pub use nonces::NonceStore;
pub use otp::{OtpSend, OtpStore, SendBudget, SendLimit, StoredOtp};
pub use outbox::{Delivery, OutboxStats, OutboxStore, StoredEvent};
pub use pairings::{PairingApprove, PairingCaps, PairingCreate, PairingStore, StoredPairing};
pub use payment_requests::{PaymentRequestCreate, PaymentRequestStore, StoredPaymentRequest};
pub use registration::{
    PendingDevice, RegistrationStore, RegistrationWrite, StoredRegistration, StoredSecurityAuth,
};
pub use roles::{IssuerStore, WalletStore};
pub use sandbox::{RelayMessage, SandboxStore, SmsMessage};
pub use sessions::{SessionStore, StoredSession};
pub use token_vault::{Detokenised, StoredVaultToken, TokenVaultStore};
pub use transfer_agreements::{AgreementChange, StoredTransferAgreement, TransferAgreementStore};
pub use transfer_payments::{
    IssuedTask, StoredTransferPayment, TransferCreate, TransferPaymentStore,
};
