//! The wallet app on the user's phone. It holds what a real app holds: the
//! account's phone number, its session, which registered device it is, the
//! device's own key pair (every request it sends carries a proof by it),
//! its passkey, and the SMS inbox of its number.

use paybridge_api::wallet::{
    AccountBody, ApprovePayment, BindingBody, ChannelQuery, ClaimAddress, CompleteBinding,
    ConfirmRegistration, CredentialBody, DeviceEnvironmentBody, Login, PaymentRequestBody,
    RegisterAccount, RegisterDevice, SecurityAuthBody, SecurityAuthIdentity, SecurityAuthOtp,
    SecurityAuthPasswords, SessionBody, SetPaymentPassword, StartSecurityAuth, WebauthnApproval,
};
use std::sync::Arc;

use paybridge_api::wallet::{DeviceBody, DeviceListQuery, DevicePublicKey};
use paybridge_client::{DeviceSigner, PushChannel, WalletApp};
use paybridge_domain::device::{DeviceStage, DeviceType};
use paybridge_domain::ids::{BindingId, DeviceId, PaymentRequestId};

use crate::{DeviceError, DeviceResult, Passkey, SmsInbox};

/// What registering an account for the phone's number found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Created(AccountBody),
    /// The number already has an account (a demo run again).
    AlreadyRegistered,
}

/// Which device the phone is when it runs security authentication.
#[derive(Debug, Clone)]
pub enum ThisDevice {
    /// Seen for the first time: the authentication registers it, named
    /// so, with the phone's key.
    New { name: String },
    /// Registered by the account before (with this phone's key); it
    /// becomes trusted.
    Registered(DeviceId),
}

/// What the person answers during security authentication.
#[derive(Debug, Clone)]
pub struct SecurityAnswers {
    pub device: ThisDevice,
    pub environment: DeviceEnvironmentBody,
    pub id_number_last4: String,
    /// The account's login password (checked like a login), or a new one
    /// when the account has none yet (a bank-registered account); not
    /// asked of the step-up that unlocks locked passwords.
    pub login_password: Option<String>,
    /// Given when the account has none yet.
    pub payment_password: Option<String>,
}

/// The public half of a device key, as a device registers it.
pub fn public_key_of(signer: &DeviceSigner) -> DevicePublicKey {
    let jwk = signer.public_jwk();
    DevicePublicKey {
        kty: jwk.kty,
        crv: jwk.crv,
        x: jwk.x,
    }
}

/// A genuine, unrooted Android 14 phone as its OS reports itself.
pub fn genuine_android() -> DeviceEnvironmentBody {
    DeviceEnvironmentBody {
        emulator: false,
        rooted: false,
        os: "android".into(),
        os_version: "14".into(),
        attributes: Vec::new(),
    }
}

#[derive(Debug)]
pub struct Phone {
    signer: Arc<DeviceSigner>,
    anonymous: WalletApp,
    signed_in: Option<(WalletApp, SessionBody)>,
    number: String,
    device: Option<DeviceId>,
    passkey: Passkey,
    inbox: SmsInbox,
    /// The wallet's task-signing keys the app trusts (pinned at install).
    wallet_keys: Vec<paybridge_api::delegated::WalletKey>,
    /// The phone's secure element (flow F5's card tokens).
    secure_element: Arc<crate::secure_element::SecureElement>,
}

impl Phone {
    /// The wallet app on a phone with `number`, talking to `server_url`;
    /// the phone makes its device key pair now.
    pub fn new(server_url: &str, number: &str) -> Self {
        Self::with_key(server_url, number, DeviceSigner::generate())
    }

    /// The wallet app on a phone whose device key is `signer` (a test that
    /// registered the key from another session).
    pub fn with_key(server_url: &str, number: &str, signer: Arc<DeviceSigner>) -> Self {
        Self {
            anonymous: WalletApp::new(server_url).on_device(signer.clone()),
            signer,
            signed_in: None,
            number: number.to_owned(),
            device: None,
            passkey: Passkey::new(),
            inbox: SmsInbox::new(server_url, number),
            wallet_keys: Vec::new(),
            secure_element: Arc::new(crate::secure_element::SecureElement::new()),
        }
    }

    /// The phone's secure element.
    pub fn secure_element(&self) -> &Arc<crate::secure_element::SecureElement> {
        &self.secure_element
    }

    pub fn number(&self) -> &str {
        &self.number
    }

    pub fn inbox(&self) -> &SmsInbox {
        &self.inbox
    }

    /// Which registered device of the account this phone is, once known.
    pub fn device_id(&self) -> Option<&DeviceId> {
        self.device.as_ref()
    }

    /// The phone is the account's registered device `device` (registered
    /// from another session with this phone's key; its next login names it).
    pub fn is_device(&mut self, device: DeviceId) {
        self.device = Some(device);
    }

    /// The wallet's task-signing keys the app trusts.
    pub fn wallet_keys(&self) -> &[paybridge_api::delegated::WalletKey] {
        &self.wallet_keys
    }

    /// Pins the wallet's task-signing keys, as a real app ships with them:
    /// fetched here once, from the wallet the app is installed for.
    pub async fn pin_wallet_keys(&mut self) -> DeviceResult<()> {
        self.wallet_keys = self.anonymous.wallet_keys().await?.keys;
        Ok(())
    }

    /// The phone's device key.
    pub fn signer(&self) -> &Arc<DeviceSigner> {
        &self.signer
    }

    /// The public half of the phone's device key, as a device registers it.
    pub fn public_key(&self) -> DevicePublicKey {
        public_key_of(&self.signer)
    }

    /// Revokes the account's active devices of `kind` named `name`, but this
    /// phone: what an earlier install (a demo run before) left behind. A
    /// sensitive operation: the phone's session must be a trusted device's.
    pub async fn retire_devices_named(&self, kind: DeviceType, name: &str) -> DeviceResult<()> {
        let app = self.app()?;
        let listed = app
            .devices(&DeviceListQuery {
                include_revoked: None,
                limit: None,
                after: None,
            })
            .await?;
        for old in listed.devices.iter().filter(|d| {
            d.name == name
                && d.device_type == kind
                && d.status == DeviceStage::Active
                && Some(&d.id) != self.device.as_ref()
        }) {
            app.revoke_device(&old.id).await?;
        }
        Ok(())
    }

    /// Registers this phone, with its key, as a device of the account
    /// `account` is signed in to; its next login names it.
    pub async fn register_on(
        &mut self,
        account: &WalletApp,
        name: &str,
    ) -> DeviceResult<DeviceBody> {
        let body = RegisterDevice {
            device_type: DeviceType::Phone.as_str().to_owned(),
            name: name.to_owned(),
            public_key: self.public_key(),
        };
        let device = account.register_device(&body).await?;
        self.device = Some(device.id.clone());
        Ok(device)
    }

    pub fn session(&self) -> Option<&SessionBody> {
        self.signed_in.as_ref().map(|(_, s)| s)
    }

    /// The wallet app with the phone's session.
    pub fn app(&self) -> DeviceResult<&WalletApp> {
        self.signed_in
            .as_ref()
            .map(|(app, _)| app)
            .ok_or(DeviceError::NotReady(
                "the phone has no session: log in first",
            ))
    }

    /// The wallet app before login (registration, security authentication).
    pub fn anonymous(&self) -> &WalletApp {
        &self.anonymous
    }

    /// Opens a wallet account for the phone's number.
    /// The code goes to the phone's inbox and comes back with the password.
    pub async fn register(&self, password: &str) -> DeviceResult<Registration> {
        let started = self
            .anonymous
            .register(&RegisterAccount {
                phone: self.number.clone(),
            })
            .await?;
        let body = ConfirmRegistration {
            otp_id: started.otp.id.to_string(),
            code: self.inbox.latest_code().await?,
            password: password.to_owned(),
        };
        match self.anonymous.confirm_registration(&body).await {
            Ok(account) => Ok(Registration::Created(account)),
            Err(e) if e.code() == Some("phone_already_registered") => {
                Ok(Registration::AlreadyRegistered)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Logs in, naming the phone's device when it is one of the account's.
    pub async fn log_in(&mut self, password: &str) -> DeviceResult<&SessionBody> {
        let body = Login {
            phone: self.number.clone(),
            password: password.to_owned(),
            device_id: self.device.as_ref().map(|d| d.to_string()),
        };
        let session = self.anonymous.login(&body).await?;
        Ok(self.keep(session))
    }

    fn keep(&mut self, session: SessionBody) -> &SessionBody {
        let app = self.anonymous.signed_in(session.token.clone());
        &self.signed_in.insert((app, session)).1
    }

    /// Security authentication of this phone for the account: the code
    /// from the SMS inbox, the ID digits, the passwords the account lacks.
    /// On success the phone is a trusted device with a session on it.
    pub async fn pass_security_auth(
        &mut self,
        answers: SecurityAnswers,
    ) -> DeviceResult<SecurityAuthBody> {
        let (device, device_id) = match answers.device {
            ThisDevice::New { name } => (
                Some(RegisterDevice {
                    device_type: DeviceType::Phone.as_str().to_owned(),
                    name,
                    public_key: self.public_key(),
                }),
                None,
            ),
            ThisDevice::Registered(id) => (None, Some(id.to_string())),
        };
        let started = self
            .anonymous
            .start_security_auth(&StartSecurityAuth {
                phone: self.number.clone(),
                device,
                device_id,
                environment: answers.environment,
            })
            .await?;
        let id = started.id.clone();
        self.device = Some(started.device_id.clone());
        let code = self.inbox.latest_code().await?;
        let app = &self.anonymous;
        app.security_auth_otp(&id, &SecurityAuthOtp { code })
            .await?;
        let identity = SecurityAuthIdentity {
            id_number_last4: answers.id_number_last4,
        };
        app.security_auth_identity(&id, &identity).await?;
        let needs = |p: &str| started.passwords_needed.iter().any(|n| n == p);
        let passwords = SecurityAuthPasswords {
            login_password: needed(needs("login"), answers.login_password, "a login password")?,
            payment_password: needed(
                needs("payment"),
                answers.payment_password,
                "a payment password",
            )?,
        };
        let done = app.security_auth_passwords(&id, &passwords).await?;
        match &done.session {
            Some(session) => {
                self.keep(session.clone());
                Ok(done)
            }
            None => Err(DeviceError::Unexpected(format!(
                "security authentication ended {} without a session",
                done.state.as_str()
            ))),
        }
    }

    /// Sets the account's first payment password.
    pub async fn set_payment_password(&self, password: &str) -> DeviceResult<()> {
        let body = SetPaymentPassword {
            new_password: password.to_owned(),
            current_password: None,
        };
        Ok(self.app()?.set_payment_password(&body).await?)
    }

    /// Registers the phone's passkey as its WebAuthn credential.
    pub async fn register_passkey(&mut self) -> DeviceResult<CredentialBody> {
        let device = self.this_device()?.clone();
        let app = self.app()?.clone();
        let ceremony = app.start_credential_registration(&device).await?;
        let answer = self.passkey.create(&ceremony)?;
        Ok(app
            .finish_credential_registration(&device, &ceremony.ceremony_id, &answer)
            .await?)
    }

    /// The phone's passkey (a test may use it for a forged ceremony).
    pub fn passkey(&mut self) -> &mut Passkey {
        &mut self.passkey
    }

    /// Opens this device's push channel.
    pub async fn open_push_channel(&self) -> DeviceResult<PushChannel> {
        let query = ChannelQuery { after: None };
        Ok(self
            .app()?
            .device_events(self.this_device()?, &query)
            .await?)
    }

    fn this_device(&self) -> DeviceResult<&DeviceId> {
        self.device.as_ref().ok_or(DeviceError::NotReady(
            "the phone is no registered device yet",
        ))
    }

    /// Scans a binding QR code (flow F1, QR path).
    pub async fn scan_binding_address(&self, address: &str) -> DeviceResult<BindingBody> {
        let body = ClaimAddress {
            address: address.to_owned(),
        };
        Ok(self.app()?.claim_binding_address(&body).await?)
    }

    /// Taps the binding message the bank pushed (flow F1, push path).
    pub async fn accept_offered_binding(&self, binding: &BindingId) -> DeviceResult<BindingBody> {
        Ok(self.app()?.claim_offered_binding(binding).await?)
    }

    /// Confirms a claimed binding: the code goes to the card's reserved
    /// phone (whose inbox is `reserved`), and comes back with the payment
    /// password (the account's, or its first one: the binding sets it).
    pub async fn confirm_binding(
        &self,
        binding: &BindingId,
        reserved: &SmsInbox,
        payment_password: &str,
    ) -> DeviceResult<BindingBody> {
        let app = self.app()?;
        app.confirm_binding(binding).await?;
        let code = reserved.latest_code().await?;
        let body = CompleteBinding {
            code,
            payment_password: Some(payment_password.to_owned()),
        };
        Ok(app.complete_binding(binding, &body).await?)
    }

    /// Pays a presented payment request with `binding` and the payment password.
    pub async fn approve_with_password(
        &self,
        payment: &PaymentRequestId,
        binding: &BindingId,
        password: &str,
    ) -> DeviceResult<PaymentRequestBody> {
        let body = ApprovePayment {
            binding_id: binding.to_string(),
            payment_password: Some(password.to_owned()),
            webauthn: None,
        };
        Ok(self.app()?.approve_payment(payment, &body).await?)
    }

    /// Pays a presented payment request with `binding` and the phone's
    /// passkey (the biometric): the assertion signs the request's challenge.
    pub async fn approve_with_passkey(
        &mut self,
        payment: &PaymentRequestId,
        binding: &BindingId,
    ) -> DeviceResult<PaymentRequestBody> {
        let app = self.app()?.clone();
        let ceremony = app.approval_challenge(payment).await?;
        let answer = self.passkey.get(&ceremony)?;
        let body = ApprovePayment {
            binding_id: binding.to_string(),
            payment_password: None,
            webauthn: Some(WebauthnApproval {
                ceremony_id: ceremony.ceremony_id.to_string(),
                credential: answer.credential,
            }),
        };
        Ok(app.approve_payment(payment, &body).await?)
    }
}

fn needed(needed: bool, given: Option<String>, what: &'static str) -> DeviceResult<Option<String>> {
    match (needed, given) {
        (false, _) => Ok(None),
        (true, Some(p)) => Ok(Some(p)),
        (true, None) => Err(DeviceError::NotReady(what)),
    }
}
