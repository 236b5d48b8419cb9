//! Flow F2, the wallet's side (seed 001): a bank asks whether its customer
//! has a wallet account, registers one when not (restricted: it cannot pay,
//! bind cards or pair devices), and completes the card binding at once; at
//! first use the wallet runs security authentication through the app
//! (device environment, OTP, the ID number's last digits, passwords), after
//! which the account is fully active and the device trusted.

use paybridge_crypto::digest::sha256_hex;
use paybridge_crypto::IndexPurpose;
use paybridge_domain::account::AccountStatus;
use paybridge_domain::binding::BindingStatus;
use paybridge_domain::credentials::{
    check_login_password, check_payment_password, PasswordGuard, MAX_CONSECUTIVE_FAILURES,
};
use paybridge_domain::device::{DeviceStatus, DeviceType};
use paybridge_domain::event::{Destination, NewEvent};
use paybridge_domain::happened::{BindingStep, Happened, RegistrationChannel, SecurityAuthFacts};
use paybridge_domain::identity::IdNumber;
use paybridge_domain::ids::{BindingId, DeviceId, SecurityAuthId, UserId};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::registration::{
    AuthState, AuthStatus, DeviceEnvironment, SecurityCondition, SecurityFacts, ID_DIGITS_ASKED,
};
use paybridge_domain::{ErrorCode, ServiceError, WireName};
use paybridge_store::{
    BindingWrite, DeviceCreate, PendingDevice, RegistrationWrite, SealedIdentity, StoredDevice,
    StoredRegistration, StoredSecurityAuth, StoredUser, UserWrite,
};

use crate::accounts::{OpenedSession, ID_NUMBER, NAME, PHONE};
use crate::bindings::{view, BindingView, CheckedOffer, AGREEMENT};
use crate::device_proof::PresentedProof;
use crate::otp::IssuedOtp;
use crate::Wallet;

/// What a bank's registration request produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerRegistration {
    pub user_id: UserId,
    pub binding_id: String,
    /// `false` when the same request was answered before.
    pub created: bool,
}

/// The device a security authentication is for.
#[derive(Debug, Clone)]
pub enum AuthDevice {
    /// A device the account registered before (it becomes trusted).
    Existing(DeviceId),
    /// A device seen for the first time (registered now, with its key).
    New {
        device_type: DeviceType,
        name: String,
        public_key: paybridge_crypto::device_proof::DeviceJwk,
    },
}

/// A security authentication in progress, as the app sees it.
#[derive(Debug, Clone)]
pub struct SecurityAuthView {
    pub id: SecurityAuthId,
    pub device_id: DeviceId,
    pub conditions: Vec<SecurityCondition>,
    pub state: AuthState,
    /// The passwords the account still needs (`login`, `payment`).
    pub passwords_needed: Vec<&'static str>,
    pub otp: Option<IssuedOtp>,
}

fn check_reference(r: &str) -> Result<(), ServiceError> {
    let ok = (1..=64).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::rejected(
            ErrorCode::InvalidRequest,
            "reference: 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'",
        ))
    }
}

impl Wallet {
    /// Whether a wallet account has this phone or this identity. The bank
    /// learns nothing else.
    pub async fn account_exists(
        &self,
        phone: &PhoneNumber,
        id_number: &IdNumber,
    ) -> Result<bool, ServiceError> {
        let by_phone = self
            .store
            .user_by_phone(&self.protector().index_of(phone))
            .await?;
        if by_phone.is_some() {
            return Ok(true);
        }
        let by_id = self
            .store
            .user_by_id_number(&self.protector().index_of(id_number))
            .await?;
        Ok(by_id.is_some())
    }

    /// Registers a restricted account for a bank's customer with the
    /// identity the bank verified, and a binding of the card waiting for the
    /// bank's agreement. Idempotent on the bank's reference.
    pub async fn register_for_partner(
        &self,
        issuer: &PartnerId,
        reference: &str,
        offer: &CheckedOffer,
    ) -> Result<PartnerRegistration, ServiceError> {
        check_reference(reference)?;
        // What was asked, keyed (no personal data in clear in the hash input's store).
        let request_hash = self.keys.index.index(
            IndexPurpose::Registration,
            &sha256_hex(
                format!(
                    "{}|{}|{}|{}|{}|{}",
                    offer.phone.as_str(),
                    offer.holder_id_number.expose(),
                    offer.holder_name.expose(),
                    offer.card_ref,
                    offer.card_type.as_str(),
                    offer.last4
                )
                .as_bytes(),
            ),
        );
        if let Some(existing) = self.store.registration(issuer.as_str(), reference).await? {
            return self.same_registration(existing, &request_hash);
        }
        // The bank's data must agree with a wallet identity it names.
        let id_index = self.protector().index_of(&offer.holder_id_number);
        if let Some(owner) = self.store.user_by_id_number(&id_index).await? {
            let same_name = self
                .identity_of(&owner.id)
                .await?
                .is_some_and(|(name, _)| name.matches(&offer.holder_name));
            if !same_name {
                return Err(ServiceError::rejected(
                    ErrorCode::IdentityMismatch,
                    "the name does not match the identity on record for this ID number",
                ));
            }
        }
        if self
            .account_exists(&offer.phone, &offer.holder_id_number)
            .await?
        {
            return Err(ServiceError::rejected(
                ErrorCode::AccountExists,
                "this phone or identity already has a wallet account: bind through it (push path)",
            ));
        }
        let now = self.clock.now();
        let user_id = UserId::generate();
        let personal = self.protector();
        let phone = personal
            .indexed(&PHONE, user_id.as_str(), &offer.phone)
            .await;
        let name = personal
            .shown(&NAME, user_id.as_str(), &offer.holder_name)
            .await;
        let id_number = personal
            .indexed(&ID_NUMBER, user_id.as_str(), &offer.holder_id_number)
            .await;
        let user = StoredUser {
            phone_sealed: phone.sealed,
            phone_index: phone.index,
            phone_masked: phone.masked,
            password_hash: None,
            pay_password_hash: None,
            pay_guard: PasswordGuard::default(),
            status: AccountStatus::Restricted,
            registered_by: Some(issuer.to_string()),
            identity: Some(SealedIdentity {
                name_sealed: name.sealed,
                name_masked: name.masked,
                id_number_sealed: id_number.sealed,
                id_number_index: id_number.index,
                verified_at: now,
                attested: true,
            }),
            created_at: now,
            version: 0,
            id: user_id.clone(),
        };
        let mut binding = self
            .new_binding(issuer, offer, "registration", None, Some(user_id.clone()))
            .await;
        binding.status = BindingStatus::created(now).claim(now)?;
        let registration = StoredRegistration {
            issuer_id: issuer.to_string(),
            reference: reference.to_owned(),
            request_hash: request_hash.clone(),
            user_id: user_id.clone(),
            binding_id: binding.id.to_string(),
        };
        let mut events = vec![Happened::AccountRegistered {
            user_id: user_id.clone(),
            channel: RegistrationChannel::Partner,
            registered_by: Some(issuer.to_string()),
        }
        .to(Destination::Internal, now)];
        events.extend(self.binding_events(&binding, BindingStep::Claimed).await?);
        match self
            .store
            .register_partner_account(&registration, &user, &binding, &events)
            .await?
        {
            RegistrationWrite::Created => {
                tracing::info!(user.id = %user_id, issuer = %issuer, "account registered by a bank");
                Ok(PartnerRegistration {
                    user_id,
                    binding_id: binding.id.to_string(),
                    created: true,
                })
            }
            RegistrationWrite::Existing(existing) => {
                self.same_registration(existing, &request_hash)
            }
            RegistrationWrite::AccountExists => Err(ServiceError::rejected(
                ErrorCode::AccountExists,
                "this phone or identity already has a wallet account: bind through it (push path)",
            )),
        }
    }

    fn same_registration(
        &self,
        existing: StoredRegistration,
        request_hash: &str,
    ) -> Result<PartnerRegistration, ServiceError> {
        if existing.request_hash != request_hash {
            return Err(ServiceError::rejected(
                ErrorCode::IdempotencyKeyReused,
                "this reference was used for another registration",
            ));
        }
        Ok(PartnerRegistration {
            user_id: existing.user_id,
            binding_id: existing.binding_id,
            created: false,
        })
    }

    /// The bank opened the agreement of a registration's binding: it is
    /// active at once (the bank authenticated its customer itself).
    pub async fn activate_registered_binding(
        &self,
        issuer: &PartnerId,
        binding_id: &BindingId,
        agreement_number: &str,
    ) -> Result<BindingView, ServiceError> {
        let not_found = || ServiceError::rejected(ErrorCode::NotFound, "no such binding");
        let mut b = self
            .store
            .binding(binding_id)
            .await?
            .filter(|b| b.issuer_id == issuer.as_str() && b.channel == "registration")
            .ok_or_else(not_found)?;
        if b.status.state == paybridge_domain::binding::BindingState::Active {
            return Ok(view(&b)); // a retry
        }
        let now = self.clock.now();
        b.status = b.status.activate_attested(now)?;
        b.agreement_sealed = Some(
            self.vault
                .seal(&AGREEMENT, b.id.as_str(), agreement_number.as_bytes())
                .await,
        );
        b.updated_at = now;
        let events = self.binding_events(&b, BindingStep::Activated).await?;
        match self.store.binding_update(&b, &events).await? {
            BindingWrite::Done => Ok(view(&b)),
            _ => Err(ServiceError::rejected(
                ErrorCode::BindingNotPending,
                "the binding changed meanwhile",
            )),
        }
    }

    /// Refuses what a restricted account may not do yet.
    pub(crate) async fn require_unrestricted(&self, user: &UserId) -> Result<(), ServiceError> {
        Ok(self.load_user(user).await?.status.require_unrestricted()?)
    }

    /// The passwords the last step takes: `login` (the account's, checked
    /// like a login; or a new one when it has none; not asked when the
    /// authentication is the step-up for locked passwords) and `payment`
    /// (when the account has none yet).
    fn passwords_needed(u: &StoredUser, step_up: bool) -> Vec<&'static str> {
        let mut out = Vec::new();
        if u.password_hash.is_none() || !step_up {
            out.push("login");
        }
        if u.pay_password_hash.is_none() {
            out.push("payment");
        }
        out
    }

    /// A new device has no place when the account's devices are full.
    async fn refuse_when_devices_full(&self, user: &UserId) -> Result<(), ServiceError> {
        let active = self
            .store
            .devices_of(user, paybridge_domain::device::DeviceFilter::Active)
            .await?
            .len();
        if active >= paybridge_domain::device::MAX_ACTIVE_DEVICES {
            return Err(device_limit_reached());
        }
        Ok(())
    }

    /// Writes the device a security authentication held pending, now that
    /// it passed: an active device of the account, trusted by that pass.
    async fn create_passed_device(
        &self,
        a: &StoredSecurityAuth,
        pending: &PendingDevice,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let d = StoredDevice {
            id: a.device_id.clone(),
            user_id: a.user_id.clone(),
            device_type: pending.device_type,
            name: pending.name.clone(),
            status: DeviceStatus::Active,
            created_at: now,
            last_seen_at: now,
            has_credential: false,
            key: Some(pending.key.clone()),
            paired_by: None,
        };
        if self.store.device_create(&d, &[]).await? == DeviceCreate::LimitReached {
            return Err(device_limit_reached());
        }
        Ok(())
    }

    /// Starts security authentication on a device of the account with this
    /// phone: the request carries a proof by the device's key, the
    /// environment is checked, the device registered (not yet trusted), an
    /// OTP sent to the account's phone.
    pub async fn start_security_auth(
        &self,
        phone: &PhoneNumber,
        device: &AuthDevice,
        environment: &DeviceEnvironment,
        proof: &PresentedProof<'_>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<SecurityAuthView, ServiceError> {
        let proved = self.device_proofs.check(proof, None, self.clock.now())?;
        let new_key = match device {
            AuthDevice::New { public_key, .. } => {
                let key = crate::devices::key_record(public_key)?;
                if key.thumbprint != proved.thumbprint {
                    return Err(ServiceError::rejected(
                        ErrorCode::DpopProofInvalid,
                        "the DPoP proof is not made by the key being registered",
                    ));
                }
                Some(key)
            }
            AuthDevice::Existing(_) => None,
        };
        let user = self
            .store
            .user_by_phone(&self.protector().index_of(phone))
            .await?;
        let now = self.clock.now();
        if let Err(reason) = environment.check() {
            if let Some(user) = &user {
                self.store
                    .outbox_append(&[Happened::DeviceEnvironmentRefused {
                        user_id: user.id.clone(),
                        reason: reason.as_str(),
                        os: environment.os.clone(),
                    }
                    .to(Destination::Internal, now)])
                    .await?;
            }
            return Err(ServiceError::rejected(
                ErrorCode::DeviceEnvironmentRefused,
                format!("this device cannot be used: {}", reason.as_str()),
            ));
        }
        let Some(user) = user else {
            return self
                .start_decoy_auth(phone, device, new_key, client_ip)
                .await;
        };
        // Which device, and whether it is trusted, before anything is written:
        // an authentication no condition asks for is refused whole.
        let known = match device {
            AuthDevice::Existing(id) => {
                let d = self.named_active_device(&user.id, id).await?;
                let d_id = d.id.clone();
                crate::devices::proved_key(d, &proved)?;
                Some(d_id)
            }
            AuthDevice::New { .. } => None,
        };
        let device_trusted = match &known {
            Some(id) => self.store.device_trusted(&user.id, id).await?,
            None => false,
        };
        let login_guard = self.store.login_guard(&self.login_index(phone)).await?;
        let conditions = self.policy.conditions(&SecurityFacts {
            partner_registered_unauthenticated: user.status == AccountStatus::Restricted,
            device_trusted,
            sensitive: false,
            passwords_locked: [user.pay_guard, login_guard]
                .iter()
                .any(|g| g.consecutive_failures >= MAX_CONSECUTIVE_FAILURES),
        });
        if conditions.is_empty() {
            return Err(ServiceError::rejected(
                ErrorCode::SecurityAuthNotRequired,
                "this device is trusted for this account: log in instead",
            ));
        }
        // The step-up for locked passwords cannot ask for them, so it needs
        // a factor other than the SMS: the ID digits. Without an identity
        // on record the phone's text alone would unlock the account.
        if conditions.contains(&SecurityCondition::PasswordsLocked)
            && !user.identity.as_ref().is_some_and(|i| i.attested)
        {
            return Err(ServiceError::rejected(
                ErrorCode::StepUpUnavailable,
                "the passwords are locked and the account has no bank-attested identity to confirm instead: contact support",
            ));
        }
        // A new device is held pending in the authentication: nothing is
        // written to the account's devices unless it passes.
        let (device, new_device) = match (known.as_ref(), device) {
            (Some(id), _) | (None, AuthDevice::Existing(id)) => (id.clone(), None),
            (
                None,
                AuthDevice::New {
                    device_type, name, ..
                },
            ) => {
                let pending = pending_device(*device_type, name, new_key)?;
                self.refuse_when_devices_full(&user.id).await?;
                (DeviceId::generate(), Some(pending))
            }
        };
        let phone_clear = self
            .vault
            .open_text(&PHONE, user.id.as_str(), &user.phone_sealed)
            .await?;
        let phone_clear: PhoneNumber = phone_clear
            .expose()
            .parse()
            .map_err(ServiceError::internal)?;
        let otp = self
            .otp_service()?
            .issue(
                "security authentication",
                &phone_clear,
                &crate::otp::SendContext::new(Some(&user.id), client_ip),
            )
            .await?;
        let auth = StoredSecurityAuth {
            id: SecurityAuthId::generate(),
            user_id: user.id.clone(),
            device_id: device.clone(),
            new_device,
            conditions: conditions
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(","),
            status: AuthStatus::started(now),
            otp_id: otp.id.clone(),
            created_at: now,
            version: 0,
        };
        let event = auth_event(&auth, &auth.status, self.clock.now());
        self.store.security_auth_create(&auth, &[event]).await?;
        Ok(SecurityAuthView {
            id: auth.id,
            device_id: device,
            conditions: conditions.to_vec(),
            state: auth.status.state,
            passwords_needed: Self::passwords_needed(
                &user,
                conditions.contains(&SecurityCondition::PasswordsLocked),
            ),
            otp: Some(otp),
        })
    }

    /// A phone with no account gets what a new device of an account gets:
    /// a pending authentication and a real code sent to the phone, counted
    /// in the same SMS budgets. So the start tells no one whether the phone
    /// has an account; only the phone's holder, who reads the code, learns
    /// it at the next step. A registered device named for a phone with no
    /// account is "no such device", as for an account that lacks it.
    async fn start_decoy_auth(
        &self,
        phone: &PhoneNumber,
        device: &AuthDevice,
        new_key: Option<paybridge_store::DeviceKeyRecord>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<SecurityAuthView, ServiceError> {
        let AuthDevice::New {
            device_type, name, ..
        } = device
        else {
            return Err(ServiceError::rejected(
                ErrorCode::NotFound,
                "no such active device on this account",
            ));
        };
        let pending = pending_device(*device_type, name, new_key)?;
        let otp = self
            .otp_service()?
            .issue(
                "security authentication",
                phone,
                &crate::otp::SendContext::new(None, client_ip),
            )
            .await?;
        let now = self.clock.now();
        let conditions = [SecurityCondition::NewDevice];
        let auth = StoredSecurityAuth {
            id: SecurityAuthId::generate(),
            // No account has it: the authentication can never pass.
            user_id: UserId::generate(),
            device_id: DeviceId::generate(),
            new_device: Some(pending),
            conditions: conditions[0].as_str().to_owned(),
            status: AuthStatus::started(now),
            otp_id: otp.id.clone(),
            created_at: now,
            version: 0,
        };
        // No event: there is no account whose history it would be.
        self.store.security_auth_create(&auth, &[]).await?;
        Ok(SecurityAuthView {
            id: auth.id,
            device_id: auth.device_id,
            conditions: conditions.to_vec(),
            state: auth.status.state,
            // What an account opened in the app, with no payment password
            // yet, is asked for.
            passwords_needed: vec!["login", "payment"],
            otp: Some(otp),
        })
    }

    /// Whether the authentication is the step-up for locked passwords.
    fn is_step_up(a: &StoredSecurityAuth) -> bool {
        a.conditions
            .split(',')
            .any(|c| c == SecurityCondition::PasswordsLocked.as_str())
    }

    async fn load_auth(&self, id: &SecurityAuthId) -> Result<StoredSecurityAuth, ServiceError> {
        self.store.security_auth(id).await?.ok_or_else(|| {
            ServiceError::rejected(ErrorCode::NotFound, "no such security authentication")
        })
    }

    async fn auth_view(
        &self,
        a: &StoredSecurityAuth,
        status: AuthStatus,
    ) -> Result<SecurityAuthView, ServiceError> {
        let user = self.load_user(&a.user_id).await?;
        Ok(SecurityAuthView {
            id: a.id.clone(),
            device_id: a.device_id.clone(),
            // Written by this service from known conditions: a name it no
            // longer knows is skipped rather than failing the read.
            conditions: a
                .conditions
                .split(',')
                .filter_map(SecurityCondition::from_wire_name)
                .collect(),
            state: status.state,
            passwords_needed: Self::passwords_needed(&user, Self::is_step_up(a)),
            otp: None,
        })
    }

    async fn save_auth(
        &self,
        a: &StoredSecurityAuth,
        status: &AuthStatus,
    ) -> Result<(), ServiceError> {
        let event = auth_event(a, status, self.clock.now());
        if !self
            .store
            .security_auth_update(&a.id, a.version, status, &[event])
            .await?
        {
            return Err(ServiceError::rejected(
                ErrorCode::SecurityAuthStep,
                "this step was just answered (a duplicate submission?)",
            ));
        }
        Ok(())
    }

    /// Step 2: the code sent to the account's phone.
    pub async fn security_auth_otp(
        &self,
        id: &SecurityAuthId,
        code: &str,
    ) -> Result<SecurityAuthView, ServiceError> {
        let a = self.load_auth(id).await?;
        let next = a.status.otp_verified(self.clock.now())?;
        if let Err(e) = self.otp_service()?.verify(&a.otp_id, code).await {
            if e.code() == ErrorCode::OtpLocked {
                self.save_auth(&a, &a.status.fail()).await?;
            }
            return Err(e);
        }
        if self.store.user(&a.user_id).await?.is_none() {
            // Only the phone's holder gets here (the code was right): the
            // phone has no account, which they may know.
            self.save_auth(&a, &a.status.fail()).await?;
            return Err(ServiceError::rejected(
                ErrorCode::NotFound,
                "no wallet account has this phone: open one in the app instead",
            ));
        }
        self.save_auth(&a, &next).await?;
        self.auth_view(&a, next).await
    }

    /// Step 3: the last digits of the account's ID number (counted; five
    /// wrong answers fail the authentication).
    pub async fn security_auth_identity(
        &self,
        id: &SecurityAuthId,
        last_digits: &str,
    ) -> Result<SecurityAuthView, ServiceError> {
        let a = self.load_auth(id).await?;
        // The step first: before the code is verified, nothing is read of
        // the account (an authentication of a phone with none says nothing).
        a.status.ready_for_identity(self.clock.now())?;
        let correct = match self.identity_of(&a.user_id).await? {
            Some((_, number)) => {
                let expected = number.last(ID_DIGITS_ASKED);
                subtle_eq(expected, &last_digits.trim().to_ascii_uppercase())
            }
            // No identity on record: the step never passes by itself. It is
            // waived only because the last step then checks the account's
            // login password; a step-up that waives the login password was
            // refused at the start, and an account with neither fails here.
            None => {
                !Self::is_step_up(&a) && self.load_user(&a.user_id).await?.password_hash.is_some()
            }
        };
        // Counted per account too, across its authentications: a new
        // authentication buys no fresh guesses at four digits.
        match self.judge_id_digits(&a.user_id, correct).await {
            Ok(()) => {}
            // Wrong, with tries left: the authentication's own count answers.
            Err(ServiceError::Rejected(e)) if e.code == ErrorCode::CredentialsInvalid => {}
            // Locked (now or before): the authentication fails.
            Err(ServiceError::Rejected(e)) => {
                self.save_auth(&a, &a.status.fail()).await?;
                return Err(ServiceError::rejected(
                    ErrorCode::SecurityAuthLocked,
                    format!(
                        "too many wrong answers to this account's ID digits: {}",
                        e.message
                    ),
                ));
            }
            Err(e) => return Err(e),
        }
        let (next, outcome) = a.status.identity(correct, self.clock.now())?;
        self.save_auth(&a, &next).await?;
        outcome?;
        self.auth_view(&a, next).await
    }

    /// The ID digits' counter of `user`, across authentications: like a
    /// password's (five wrong in a row lock it, each lock longer, a hundred
    /// need a login on a trusted device).
    async fn judge_id_digits(&self, user: &UserId, correct: bool) -> Result<(), ServiceError> {
        paybridge_kernel::login::judge(
            self.store.as_ref(),
            self.clock.as_ref(),
            paybridge_kernel::login::LoginTry {
                login_index: &id_digits_guard(user),
                correct,
                lock_secs: paybridge_domain::registration::ID_DIGITS_LOCK_SECS,
                wrong: "wrong ID digits",
            },
        )
        .await
    }

    /// Step 4: the passwords the account lacks. Then the account is active,
    /// the device trusted, and a session opened on it.
    pub async fn security_auth_passwords(
        &self,
        id: &SecurityAuthId,
        login_password: Option<&str>,
        payment_password: Option<&str>,
    ) -> Result<(SecurityAuthView, OpenedSession), ServiceError> {
        let a = self.load_auth(id).await?;
        let next = a.status.passwords_set(self.clock.now())?;
        let mut user = self.load_user(&a.user_id).await?;
        match &user.password_hash {
            None => {
                let p = login_password.ok_or_else(|| {
                    ServiceError::rejected(
                        ErrorCode::InvalidRequest,
                        "login_password: the account needs one",
                    )
                })?;
                check_login_password(p)?;
                user.password_hash = Some(self.hash_password(p).await?);
            }
            // A step-up, not a takeover: whoever holds the phone's SMS and
            // knows the ID digits must also know the login password (a
            // wrong one counts like a wrong login). Not asked when this
            // authentication is the step-up that unlocks the passwords.
            Some(hash) if !Self::is_step_up(&a) => {
                let p = login_password.ok_or_else(|| {
                    ServiceError::rejected(
                        ErrorCode::InvalidRequest,
                        "login_password: give the account's login password",
                    )
                })?;
                let correct = self.verify_password(Some(hash.clone()), p).await;
                let phone = self.phone_of(&user).await?;
                self.judge_login(&self.login_index(&phone), correct).await?;
            }
            Some(_) => {}
        }
        if user.pay_password_hash.is_none() {
            let p = payment_password.ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::InvalidRequest,
                    "payment_password: the account needs one",
                )
            })?;
            check_payment_password(p)?;
            user.pay_password_hash = Some(self.hash_password(p).await?);
        }
        if a.new_device.is_some() {
            // Checked before the pass is saved, so a full account is told
            // while the authentication can still be retried.
            self.refuse_when_devices_full(&a.user_id).await?;
        }
        self.save_auth(&a, &next).await?;
        if let Some(pending) = &a.new_device {
            self.create_passed_device(&a, pending).await?;
        }
        user.status = user.status.authenticated();
        // Passing is the step-up that unlocks the passwords, however many
        // wrong tries they had.
        user.pay_guard = PasswordGuard::default();
        self.reset_login_guard(&user).await?;
        let event = Happened::SecurityAuthenticated {
            user_id: user.id.clone(),
            device_id: a.device_id.clone(),
            conditions: a.conditions.clone(),
        }
        .to(Destination::Internal, self.clock.now());
        if self.store.user_update_credentials(&user, &[event]).await? != UserWrite::Done {
            return Err(ServiceError::rejected(
                ErrorCode::SecurityAuthStep,
                "the account changed meanwhile; retry",
            ));
        }
        // The session is bound to the device's key (checked when the
        // authentication started): its token is useless without the key.
        let key = match &a.new_device {
            Some(pending) => pending.key.clone(),
            None => self
                .load_device(&a.user_id, &a.device_id)
                .await?
                .key
                .ok_or_else(|| {
                    ServiceError::Internal("a security-authenticated device has no key".into())
                })?,
        };
        let session = self
            .open_session(
                &a.user_id,
                Some(crate::accounts::BoundDevice {
                    id: a.device_id.clone(),
                    thumbprint: key.thumbprint,
                }),
            )
            .await?;
        Ok((self.auth_view(&a, next).await?, session))
    }
}

/// The device a new device's authentication holds pending: its name
/// checked, its key the one the request's proof was made with.
fn pending_device(
    device_type: DeviceType,
    name: &str,
    key: Option<paybridge_store::DeviceKeyRecord>,
) -> Result<PendingDevice, ServiceError> {
    Ok(PendingDevice {
        device_type,
        name: paybridge_domain::device::check_device_name(name)?,
        key: key.expect("a new device's key was checked against its proof"),
    })
}

/// The key of an account's ID-digit counter among the login counters.
pub(crate) fn id_digits_guard(user: &UserId) -> String {
    format!("id-digits:{user}")
}

/// Every transition of a security authentication is an event
/// (`security_auth.otp_sent`, `….otp_verified`, `….identity_confirmed`,
/// `….passed`, `….failed`; a counted wrong answer keeps its state).
fn auth_event(
    a: &StoredSecurityAuth,
    status: &AuthStatus,
    now: paybridge_domain::Timestamp,
) -> NewEvent {
    Happened::SecurityAuth(SecurityAuthFacts {
        security_auth_id: a.id.clone(),
        user_id: a.user_id.clone(),
        device_id: a.device_id.clone(),
        conditions: a.conditions.clone(),
        digit_attempts: status.digit_attempts,
        state: status.state,
    })
    .to(Destination::Internal, now)
}

fn device_limit_reached() -> ServiceError {
    ServiceError::rejected(
        ErrorCode::DeviceLimitReached,
        "the account has too many devices; revoke one first",
    )
}

/// Equality in time independent of where the strings differ.
fn subtle_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
