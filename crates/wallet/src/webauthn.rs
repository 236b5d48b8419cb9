//! WebAuthn on the wallet's phones: a phone registers a credential whose
//! use requires user verification (the biometric), and later approves with
//! an assertion.
//!
//! webauthn-rs picks each challenge itself, so an approval is bound to what
//! it approves here: the ceremony's server state is stored with a `purpose`
//! (for a payment: its id, amount and payee), is single use, expires after
//! five minutes, and is refused if finished for another purpose. The
//! signature counter must advance at every use (a counter that goes back
//! means a cloned authenticator); two assertions racing for one counter
//! value cannot both pass.

use paybridge_domain::event::Destination;
use paybridge_domain::happened::Happened;
use paybridge_domain::ids::{CeremonyId, CredentialId, DeviceId, UserId};
use paybridge_domain::{ErrorCode, ServiceError, Timestamp};
use paybridge_store::{CeremonyTake, StoredCeremony, StoredCredential, StoredDevice};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid,
    Webauthn, WebauthnBuilder,
};

use crate::Wallet;

/// A ceremony must finish within five minutes of its start.
pub const CEREMONY_TTL_SECS: i64 = 300;

/// The relying party the phones' credentials are scoped to.
#[derive(Debug, Clone)]
pub struct WebauthnConfig {
    /// e.g. `localhost` or `pay.example.com`.
    pub rp_id: String,
    /// The origin the wallet app presents, e.g. `https://pay.example.com`.
    pub origin: Url,
    /// Accept the origin's host on any port: the sandbox only (apps and
    /// tests on the machine run on whatever port they got). Outside it, a
    /// page on another port of the same host is another origin.
    pub allow_any_port: bool,
}

impl Default for WebauthnConfig {
    fn default() -> Self {
        Self {
            rp_id: "localhost".into(),
            origin: Url::parse("http://localhost:8080").expect("valid URL"),
            allow_any_port: true,
        }
    }
}

pub fn build_webauthn(config: &WebauthnConfig) -> anyhow::Result<Webauthn> {
    Ok(WebauthnBuilder::new(&config.rp_id, &config.origin)?
        .rp_name("paybridge")
        .allow_any_port(config.allow_any_port)
        .build()?)
}

/// A started ceremony: the options go to the phone's authenticator.
#[derive(Debug, Clone)]
pub struct CeremonyStarted<T> {
    pub id: CeremonyId,
    pub options: T,
    pub expires_at: Timestamp,
}

/// A passed assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub device_id: DeviceId,
    pub counter: u32,
}

fn refused(message: impl Into<String>) -> ServiceError {
    ServiceError::rejected(ErrorCode::WebauthnRejected, message)
}

/// The WebAuthn user handle: stable per account, reveals nothing about it.
fn user_handle(user: &UserId) -> Uuid {
    let digest = Sha256::digest(format!("paybridge-user-handle:{user}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

impl Wallet {
    async fn phone_for_credentials(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<StoredDevice, ServiceError> {
        let d = self.active_device(user, device).await?;
        if !d.device_type.can_hold_credential() {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "only a phone registers a credential to approve payments",
            ));
        }
        Ok(d)
    }

    async fn take_ceremony(
        &self,
        user: &UserId,
        device: &DeviceId,
        id: &CeremonyId,
        kind: &str,
    ) -> Result<StoredCeremony, ServiceError> {
        let now = self.clock.now();
        let c = match self.store.ceremony_take(user, id, now).await? {
            CeremonyTake::Taken(c) => c,
            CeremonyTake::AlreadyUsed => {
                return Err(ServiceError::rejected(
                    ErrorCode::CeremonyUsed,
                    "this ceremony was already finished; start a new one",
                ))
            }
            CeremonyTake::NotFound => {
                return Err(ServiceError::rejected(
                    ErrorCode::NotFound,
                    "no such ceremony",
                ))
            }
        };
        if c.kind != kind || &c.device_id != device {
            return Err(ServiceError::rejected(
                ErrorCode::NotFound,
                "no such ceremony for this device",
            ));
        }
        if now >= c.expires_at {
            return Err(ServiceError::rejected(
                ErrorCode::CeremonyExpired,
                "the ceremony expired; start a new one",
            ));
        }
        Ok(c)
    }

    /// Starts registering the phone's credential.
    pub async fn start_credential_registration(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<CeremonyStarted<CreationChallengeResponse>, ServiceError> {
        let d = self.phone_for_credentials(user, device).await?;
        if d.has_credential {
            return Err(ServiceError::rejected(
                ErrorCode::CredentialExists,
                "this phone already has a credential; revoke and re-register the device to replace it",
            ));
        }
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user_handle(user), user.as_str(), &d.name, None)
            .map_err(|e| refused(format!("cannot start the registration: {e}")))?;
        self.save_ceremony(
            user,
            device,
            "registration",
            &format!("device:{device}"),
            &state,
        )
        .await
        .map(|(id, expires_at)| CeremonyStarted {
            id,
            options,
            expires_at,
        })
    }

    async fn save_ceremony<S: serde::Serialize>(
        &self,
        user: &UserId,
        device: &DeviceId,
        kind: &str,
        purpose: &str,
        state: &S,
    ) -> Result<(CeremonyId, Timestamp), ServiceError> {
        let id = CeremonyId::generate();
        let expires_at = self.clock.now() + time::Duration::seconds(CEREMONY_TTL_SECS);
        self.store
            .ceremony_create(&StoredCeremony {
                id: id.clone(),
                user_id: user.clone(),
                device_id: device.clone(),
                kind: kind.into(),
                purpose: purpose.into(),
                state: serde_json::to_string(state).map_err(ServiceError::internal)?,
                expires_at,
            })
            .await?;
        Ok((id, expires_at))
    }

    /// Finishes the registration with the authenticator's answer.
    pub async fn finish_credential_registration(
        &self,
        user: &UserId,
        device: &DeviceId,
        ceremony: &CeremonyId,
        answer: &RegisterPublicKeyCredential,
    ) -> Result<CredentialId, ServiceError> {
        self.phone_for_credentials(user, device).await?;
        let c = self
            .take_ceremony(user, device, ceremony, "registration")
            .await?;
        let state: PasskeyRegistration =
            serde_json::from_str(&c.state).map_err(ServiceError::internal)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(answer, &state)
            .map_err(|e| refused(format!("the credential was not accepted: {e}")))?;
        let now = self.clock.now();
        let credential = StoredCredential {
            id: CredentialId::generate(),
            user_id: user.clone(),
            device_id: device.clone(),
            credential_id: data_encoding::BASE64URL_NOPAD.encode(passkey.cred_id().as_ref()),
            passkey: serde_json::to_string(&passkey).map_err(ServiceError::internal)?,
            sign_count: 0,
        };
        let event = Happened::CredentialRegistered {
            user_id: user.clone(),
            device_id: device.clone(),
            credential_id: credential.id.clone(),
        }
        .to(Destination::Internal, now);
        if !self
            .store
            .credential_create(&credential, now, &[event])
            .await?
        {
            return Err(ServiceError::rejected(
                ErrorCode::CredentialExists,
                "this phone already has a credential, or the credential is registered elsewhere",
            ));
        }
        tracing::info!(user.id = %user, device.id = %device, "WebAuthn credential registered");
        Ok(credential.id)
    }

    /// Starts an approval with the phone's credential, bound to `purpose`.
    pub async fn start_assertion(
        &self,
        user: &UserId,
        device: &DeviceId,
        purpose: &str,
    ) -> Result<CeremonyStarted<RequestChallengeResponse>, ServiceError> {
        self.phone_for_credentials(user, device).await?;
        let credential = self
            .store
            .credential_of_device(device)
            .await?
            .ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::NotFound,
                    "this phone has no credential; register one first",
                )
            })?;
        let passkey: Passkey =
            serde_json::from_str(&credential.passkey).map_err(ServiceError::internal)?;
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&[passkey])
            .map_err(|e| refused(format!("cannot start the approval: {e}")))?;
        let (id, expires_at) = self
            .save_ceremony(user, device, "authentication", purpose, &state)
            .await?;
        Ok(CeremonyStarted {
            id,
            options,
            expires_at,
        })
    }

    /// Checks the phone's assertion for `purpose`: the ceremony must have
    /// been started for exactly that purpose, the user verified, and the
    /// counter advanced.
    pub async fn finish_assertion(
        &self,
        user: &UserId,
        device: &DeviceId,
        ceremony: &CeremonyId,
        purpose: &str,
        answer: &PublicKeyCredential,
    ) -> Result<Assertion, ServiceError> {
        self.phone_for_credentials(user, device).await?;
        let c = self
            .take_ceremony(user, device, ceremony, "authentication")
            .await?;
        if c.purpose != purpose {
            return Err(refused(
                "this approval was started for other data; start a new one",
            ));
        }
        let credential = self
            .store
            .credential_of_device(device)
            .await?
            .ok_or_else(|| refused("the phone's credential was removed"))?;
        let state: PasskeyAuthentication =
            serde_json::from_str(&c.state).map_err(ServiceError::internal)?;
        let result = self
            .webauthn
            .finish_passkey_authentication(answer, &state)
            .map_err(|e| refused(format!("the approval was not accepted: {e}")))?;
        if !result.user_verified() {
            return Err(refused(
                "the approval was not verified by the user (biometric)",
            ));
        }
        let now = self.clock.now();
        let stored = credential.sign_count;
        let counter = i64::from(result.counter());
        if (counter != 0 || stored != 0) && counter <= stored {
            self.store
                .outbox_append(&[Happened::AuthenticatorCounterRegressed {
                    user_id: user.clone(),
                    device_id: device.clone(),
                    stored,
                    presented: counter,
                }
                .to(Destination::Internal, now)])
                .await?;
            tracing::warn!(user.id = %user, device.id = %device, stored, presented = counter, "WebAuthn counter did not advance");
            return Err(refused(
                "the authenticator's counter did not advance; it may have been cloned",
            ));
        }
        let mut passkey: Passkey =
            serde_json::from_str(&credential.passkey).map_err(ServiceError::internal)?;
        passkey.update_credential(&result);
        let saved = self
            .store
            .credential_used(
                &credential.id,
                stored,
                &serde_json::to_string(&passkey).map_err(ServiceError::internal)?,
                counter,
                now,
            )
            .await?;
        if !saved {
            return Err(refused("another approval used this counter value first"));
        }
        Ok(Assertion {
            device_id: device.clone(),
            counter: result.counter(),
        })
    }
}
