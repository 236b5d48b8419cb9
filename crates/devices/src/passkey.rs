//! The phone's WebAuthn authenticator: webauthn-authenticator-rs's software
//! passkey, so tests and demos run the real ceremonies (attestation, signed
//! assertions, a counter that advances) against the server.

use paybridge_api::wallet::{CeremonyAnswer, CeremonyBody};
use url::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

use crate::{DeviceError, DeviceResult};

/// The origin the sandbox wallet app presents (the server's default).
pub const APP_ORIGIN: &str = "http://localhost:8080";

pub struct Passkey {
    authenticator: SoftPasskey,
    origin: Url,
}

impl std::fmt::Debug for Passkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Passkey(origin={})", self.origin)
    }
}

impl Default for Passkey {
    fn default() -> Self {
        Self::new()
    }
}

impl Passkey {
    /// A passkey whose authenticator verifies its user (the biometric passes).
    pub fn new() -> Self {
        Self::at_origin(Url::parse(APP_ORIGIN).expect("a valid origin"))
    }

    /// A passkey used from another origin (a phishing page, in a test).
    pub fn at_origin(origin: Url) -> Self {
        Self {
            authenticator: SoftPasskey::new(true),
            origin,
        }
    }

    /// `navigator.credentials.create(options)` for a registration ceremony.
    pub fn create(&mut self, ceremony: &CeremonyBody) -> DeviceResult<CeremonyAnswer> {
        let options: CreationChallengeResponse =
            serde_json::from_value(ceremony.options.clone())
                .map_err(|e| DeviceError::Unexpected(format!("creation options: {e}")))?;
        let credential = self
            .authenticator
            .do_registration(self.origin.clone(), options)
            .map_err(|e| DeviceError::Passkey(format!("{e:?}")))?;
        answer(credential)
    }

    /// `navigator.credentials.get(options)` for an assertion ceremony.
    pub fn get(&mut self, ceremony: &CeremonyBody) -> DeviceResult<CeremonyAnswer> {
        let options: RequestChallengeResponse = serde_json::from_value(ceremony.options.clone())
            .map_err(|e| DeviceError::Unexpected(format!("request options: {e}")))?;
        let credential = self
            .authenticator
            .do_authentication(self.origin.clone(), options)
            .map_err(|e| DeviceError::Passkey(format!("{e:?}")))?;
        answer(credential)
    }
}

fn answer(credential: impl serde::Serialize) -> DeviceResult<CeremonyAnswer> {
    let credential = serde_json::to_value(credential)
        .map_err(|e| DeviceError::Unexpected(format!("credential: {e}")))?;
    Ok(CeremonyAnswer { credential })
}
