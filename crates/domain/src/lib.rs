//! Pure domain of paybridge: the words of the five flows as types, and the rules
//! that hold between them. Nothing here performs I/O, reads the clock on its own
//! or knows about HTTP or SQL: the layers above pass time and randomness in.
//!
//! Layout:
//! - [`ids`]: prefixed, typed identifiers (`usr_…`, `dev_…`, `evt_…`).
//! - [`money`]: integer minor units and ISO 4217 currencies.
//! - [`error`]: the stable error codes every layer maps to.
//! - [`clock`]: the time seam (system and manual clocks).
//! - [`event`]: outbox events and where they are delivered; [`happened`]:
//!   their typed payloads, each with its one topic.
//! - [`partner`]: the parties (wallet, issuers) and their ids.
//! - [`card`], [`identity`], [`credentials`], [`device`]: bank cards (PAN, Luhn, BIN),
//!   real-name identity, password rules and lockout, device types.
//! - [`glossary`]: seed term → our name.
//! - [`phone`]: phone numbers (the reserved phone, the wallet user's phone).
//! - [`otp`]: OTP challenges.
//! - [`page`]: list pages (a limit and a cursor).
//! - [`wire_name`]: enums that travel as fixed names ([`WireName`], `wire_names!`).
//! - [`idempotency`]: what a retried `Idempotency-Key` gets ([`idempotency::decide`]).
//! - [`ledger`]: double-entry accounts and transfers (two-phase), decided by
//!   [`ledger::apply`].
//! - The flows' lifecycles, each an explicit state machine: [`account`]
//!   (active, or restricted until security authentication), [`agreement`]
//!   (the bank's quick-pay agreements), [`binding`] (F1),
//!   [`registration`] (F2 and security authentication), [`order`] and
//!   [`refund`] (merchants' orders), [`payment_request`] (F4),
//!   [`device_pairing`] (F3's business binding request) and
//!   [`transfer_agreement`] (F3's transfer payment agreement and its limits),
//!   [`transfer_payment`] (F3's payments, from request to result),
//!   [`card_application`] (F5's virtual card application, both paths, and
//!   its instruction policies), [`card_issuing`] (the issuer's review of it:
//!   card products, pre-verification) and [`card_token`] (F5's card tokens
//!   and card codes); [`authorisation`]: why the issuer declines a tap.

pub mod account;
pub mod agreement;
pub mod authorisation;
pub mod binding;
pub mod card;
pub mod card_application;
pub mod card_issuing;
pub mod card_token;
pub mod clock;
pub mod credentials;
pub mod device;
pub mod device_pairing;
pub mod error;
pub mod event;
pub mod glossary;
pub mod happened;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod order;
pub mod otp;
pub mod page;
pub mod partner;
pub mod payment_request;
pub mod phone;
pub mod refund;
pub mod registration;
pub mod transfer_agreement;
pub mod transfer_payment;
pub mod wire_name;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{DomainError, ErrorCode, ErrorKind, ServiceError};
pub use ids::Id;
pub use money::{Currency, Money, MoneyError};
pub use wire_name::WireName;
