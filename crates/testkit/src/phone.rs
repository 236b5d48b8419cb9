//! A simulated phone's authenticator: webauthn-authenticator-rs's software
//! passkey, so tests and demos run the real WebAuthn ceremonies (attestation,
//! signed assertions, a counter that advances) against the server.

use serde_json::Value;
use url::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

/// The origin the sandbox wallet app presents (the server's default).
pub const APP_ORIGIN: &str = "http://localhost:8080";

pub struct SoftPhone {
    authenticator: SoftPasskey,
    origin: Url,
}

impl std::fmt::Debug for SoftPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SoftPhone")
    }
}

impl Default for SoftPhone {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftPhone {
    /// A phone whose authenticator verifies its user (the biometric passes).
    pub fn new() -> Self {
        Self {
            authenticator: SoftPasskey::new(true),
            origin: Url::parse(APP_ORIGIN).expect("valid origin"),
        }
    }

    /// `navigator.credentials.create(options)`: the answer as JSON.
    pub fn create(&mut self, options: &Value) -> Value {
        let options: CreationChallengeResponse =
            serde_json::from_value(options.clone()).expect("creation options from the server");
        let credential = self
            .authenticator
            .do_registration(self.origin.clone(), options)
            .expect("the soft authenticator registers");
        serde_json::to_value(credential).expect("serialisable")
    }

    /// `navigator.credentials.get(options)`: the answer as JSON.
    pub fn get(&mut self, options: &Value) -> Value {
        let options: RequestChallengeResponse =
            serde_json::from_value(options.clone()).expect("request options from the server");
        let credential = self
            .authenticator
            .do_authentication(self.origin.clone(), options)
            .expect("the soft authenticator signs");
        serde_json::to_value(credential).expect("serialisable")
    }
}
