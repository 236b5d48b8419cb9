//! The simulated parties of paybridge, as programs that know only the
//! public API through the typed client ([`paybridge_client`]): what a real
//! app on each device would do, step by step. The demos, benches and tests
//! drive these instead of each writing its own HTTP calls.
//!
//! - [`phone`]: the wallet app on the user's phone: account, login, security
//!   authentication of the phone as a new device, binding a card, the
//!   device's push channel, approving a payment with the payment password or
//!   the phone's passkey.
//! - [`passkey`]: the phone's WebAuthn authenticator (webauthn-rs's
//!   software passkey: real attestation, signed assertions, a counter).
//! - [`terminal`]: a first device (PC, TV, car, IoT box) that asks the phone
//!   to pay and hears the outcome on its push channel (flow F4).
//! - [`first_device`]: flow F3's first devices (a smart TV, a car head unit,
//!   an IoT box): pairing by a user code, signed transfer payment requests;
//!   [`phone_delegation`]: the phone's part in F3 (approving a device,
//!   confirming, executing tasks, completing).
//! - [`bank_app`]: the issuer's own app on the customer's phone: cards and
//!   balances, "bind to wallet" (flow F1) and "open a wallet" (flow F2).
//! - [`inbox`]: the SMS inbox of a phone number (the sandbox gateway's outbox).
//! - [`phone_virtual_card`]: the phone's part in flow F5 (its secure
//!   element's key, applying for a virtual card, the OTP or photos and video
//!   frames, writing the token into the secure element).
//! - [`secure_element`]: the phone's secure element for flow F5: its own
//!   key, token keys installed only as HPKE boxes sealed to it, cryptograms
//!   with a rising transaction counter, the card application of each token.
//! - [`nfc`]: the NFC field between a POS and a phone, in process or over
//!   TCP (each APDU a length-prefixed frame, one connection a tap);
//!   [`pos`]: a POS terminal that taps over it and traces every APDU.

pub mod bank_app;
pub mod first_device;
pub mod inbox;
pub mod nfc;
pub mod passkey;
pub mod phone;
pub mod phone_delegation;
pub mod phone_virtual_card;
pub mod pos;
pub mod secure_element;
pub mod terminal;

pub use bank_app::BankCustomer;
pub use first_device::{FirstDevice, FirstDeviceModel};
pub use inbox::SmsInbox;
pub use passkey::Passkey;
pub use phone::Phone;
pub use terminal::Terminal;

use paybridge_client::{ApiError, PushError};

/// Why a device could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Push(#[from] PushError),
    /// The device's own state does not allow the step (no session yet…).
    #[error("{0}")]
    NotReady(&'static str),
    /// The server answered, but not as the flow goes.
    #[error("{0}")]
    Unexpected(String),
    /// The passkey could not answer the ceremony.
    #[error("the passkey refused: {0}")]
    Passkey(String),
}

impl DeviceError {
    /// The server's error code, when it refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            DeviceError::Api(e) => e.code(),
            DeviceError::Push(PushError::Api(e)) => e.code(),
            _ => None,
        }
    }
}

pub type DeviceResult<T> = Result<T, DeviceError>;
