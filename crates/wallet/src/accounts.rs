//! Wallet accounts: registration, login sessions, the payment password and
//! the real-name identity.
//!
//! Login answers the same, in the same time, whether or not the phone has an
//! account: wrong-password counters are kept per phone (blind index) for
//! unknown phones too, and an unknown phone still costs one Argon2id check.

use paybridge_crypto::token::{generate_token, well_formed_token, TokenKind};
use paybridge_crypto::IndexPurpose;
use paybridge_crypto::Secret;
use paybridge_domain::account::AccountStatus;
use paybridge_domain::credentials::{
    check_login_password, check_payment_password, is_six_digits, PasswordGuard, LOGIN_LOCK_SECS,
    PAYMENT_PASSWORD_LOCK_SECS,
};
use paybridge_domain::event::Destination;
use paybridge_domain::happened::{Happened, RegistrationChannel};
use paybridge_domain::identity::{IdNumber, PersonName};
use paybridge_domain::ids::{DeviceId, OtpId, SessionId, UserId};
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::{ErrorCode, ServiceError, Timestamp};
use paybridge_kernel::login::{self, LoginTry};
use paybridge_kernel::{on_conflict, Attempt};
use paybridge_store::keys::SealedColumn;
use paybridge_store::{SealedIdentity, StoredSession, StoredUser, UserWrite};

use crate::device_proof::PresentedProof;
use crate::otp::IssuedOtp;
use crate::Wallet;

/// A wallet session lasts a day; the app logs in again after that.
pub const SESSION_TTL_SECS: i64 = 24 * 3600;

/// What the codes that open an account are for (also in their text).
pub const REGISTRATION_PURPOSE: &str = "opening your wallet account";

pub const PHONE: SealedColumn = col("phone_sealed");
pub const NAME: SealedColumn = col("name_sealed");
pub const ID_NUMBER: SealedColumn = col("id_number_sealed");

const fn col(column: &'static str) -> SealedColumn {
    SealedColumn {
        table: "wallet_users",
        id_column: "id",
        column,
    }
}

/// What the account's owner may see of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub id: UserId,
    pub phone_masked: String,
    pub status: AccountStatus,
    pub has_payment_password: bool,
    pub registered_by: Option<String>,
    pub identity: Option<IdentityView>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityView {
    pub name_masked: String,
    pub id_number_masked: String,
    /// When it was recorded.
    pub verified_at: Timestamp,
    /// Attested by a bank; `false` for one the owner declared.
    pub verified: bool,
}

/// Whether a payment password is the account's first or replaces one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinChange {
    First,
    Replace,
}

/// A session just opened: the token is shown once.
#[derive(Debug)]
pub struct OpenedSession {
    pub id: SessionId,
    pub token: Secret<String>,
    pub user_id: UserId,
    pub device_id: Option<DeviceId>,
    pub expires_at: Timestamp,
}

/// Who a request's bearer token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub session_id: SessionId,
    pub user_id: UserId,
    /// The device this request proved to be (its session is bound to the
    /// device's key and the request carried a proof by it); `None` for a
    /// session bound to no device.
    pub device_id: Option<DeviceId>,
}

impl SessionUser {
    /// The device this request proved to be, or `403 device_proof_required`.
    pub fn proven_device(&self) -> Result<&DeviceId, ServiceError> {
        self.device_id.as_ref().ok_or_else(|| {
            ServiceError::rejected(
                ErrorCode::DeviceProofRequired,
                "this needs a session on a device, proved by the device's key: log in naming the device and sign each request (DPoP)",
            )
        })
    }

    /// Acting for device `id` needs a session proved to be that device: a
    /// session of device A cannot act for device B.
    pub fn require_device(&self, id: &DeviceId) -> Result<(), ServiceError> {
        if self.proven_device()? == id {
            Ok(())
        } else {
            Err(ServiceError::rejected(
                ErrorCode::DeviceProofRequired,
                "this is for another device than the one this session is bound to",
            ))
        }
    }
}

/// A device a session is bound to, and the thumbprint of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoundDevice {
    pub id: DeviceId,
    pub thumbprint: String,
}

fn wrong_key() -> ServiceError {
    ServiceError::rejected(
        ErrorCode::DpopProofInvalid,
        "the DPoP proof is not made by this device's key",
    )
}

fn invalid_session() -> ServiceError {
    ServiceError::rejected(
        ErrorCode::SessionInvalid,
        "the session is unknown, expired or revoked; log in again",
    )
}

impl Wallet {
    fn phone_index(&self, phone: &PhoneNumber) -> String {
        self.protector().index_of(phone)
    }

    pub(crate) async fn load_user(&self, id: &UserId) -> Result<StoredUser, ServiceError> {
        self.store
            .user(id)
            .await?
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such account"))
    }

    async fn view(&self, u: &StoredUser) -> Result<AccountView, ServiceError> {
        let identity = match &u.identity {
            None => None,
            Some(i) => {
                let id_number = self
                    .vault
                    .open_text(&ID_NUMBER, u.id.as_str(), &i.id_number_sealed)
                    .await?;
                let masked = IdNumber::parse(id_number.expose())
                    .map(|n| n.masked())
                    .unwrap_or_else(|_| "******************".into());
                Some(IdentityView {
                    name_masked: i.name_masked.clone(),
                    id_number_masked: masked,
                    verified_at: i.verified_at,
                    verified: i.attested,
                })
            }
        };
        Ok(AccountView {
            id: u.id.clone(),
            phone_masked: u.phone_masked.clone(),
            status: u.status,
            has_payment_password: u.pay_password_hash.is_some(),
            registered_by: u.registered_by.clone(),
            identity,
            created_at: u.created_at,
        })
    }

    /// Step one of opening an account: a code goes to the phone. Nothing
    /// is created until the code comes back ([`Self::register_account`]),
    /// and the answer is the same whether or not the phone already has an
    /// account: only the phone's holder learns that, at step two.
    pub async fn start_registration(
        &self,
        phone: &PhoneNumber,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<IssuedOtp, ServiceError> {
        let sent_for = crate::otp::SendContext::new(None, client_ip);
        self.otp_service()?
            .issue(REGISTRATION_PURPOSE, phone, &sent_for)
            .await
    }

    /// Step two: the code sent to the phone, and the login password. The
    /// phone is the one the code went to, so every account's phone is
    /// verified (flows F1 and F2 match accounts by it).
    pub async fn register_account(
        &self,
        otp: &OtpId,
        code: &str,
        password: &str,
    ) -> Result<AccountView, ServiceError> {
        // The challenge first (unknown: 404), then the password before the
        // code is judged: a weak password does not cost a code.
        let codes = self.otp_service()?;
        let challenge = codes.challenge_for(otp, REGISTRATION_PURPOSE).await?;
        check_login_password(password)?;
        codes.verify(otp, code).await?;
        let phone = &codes.phone_of(&challenge).await?;
        let now = self.clock.now();
        let index = self.phone_index(phone);
        if self.store.user_by_phone(&index).await?.is_some() {
            return Err(ServiceError::rejected(
                ErrorCode::PhoneAlreadyRegistered,
                "this phone number already has a wallet account; log in instead",
            ));
        }
        let id = UserId::generate();
        let phone = self.protector().shown(&PHONE, id.as_str(), phone).await;
        let user = StoredUser {
            phone_sealed: phone.sealed,
            phone_index: index,
            phone_masked: phone.masked,
            password_hash: Some(self.hash_password(password).await?),
            pay_password_hash: None,
            pay_guard: PasswordGuard::default(),
            status: AccountStatus::Active,
            registered_by: None,
            identity: None,
            created_at: now,
            version: 0,
            id: id.clone(),
        };
        let event = Happened::AccountRegistered {
            user_id: id.clone(),
            channel: RegistrationChannel::App,
            registered_by: None,
        }
        .to(Destination::Internal, now);
        match self.store.user_create(&user, &[event]).await? {
            UserWrite::Done => {}
            _ => {
                return Err(ServiceError::rejected(
                    ErrorCode::PhoneAlreadyRegistered,
                    "this phone number already has a wallet account; log in instead",
                ))
            }
        }
        tracing::info!(user.id = %id, "wallet account registered");
        self.view(&user).await
    }

    /// Checks phone and password and opens a session, optionally bound to
    /// one of the account's devices: then the request must carry a proof
    /// by the device's key, and so must every request of the session
    /// (revoking the device ends it).
    pub async fn login(
        &self,
        phone: &PhoneNumber,
        password: &str,
        device: Option<&DeviceId>,
        proof: &PresentedProof<'_>,
    ) -> Result<OpenedSession, ServiceError> {
        // The proof first: it is cheap, and a client without a fresh nonce
        // retries, which must not cost a second password check.
        let proved = match device {
            Some(_) => Some(self.device_proofs.check(proof, None, self.clock.now())?),
            None => None,
        };
        let login_index = self.login_index(phone);
        let user = self.store.user_by_phone(&self.phone_index(phone)).await?;
        let correct = self
            .verify_password(
                user.as_ref().and_then(|u| u.password_hash.clone()),
                password,
            )
            .await
            && user.is_some();
        self.judge_login(&login_index, correct).await?;
        let user = user.expect("a correct login has an account");
        let mut bound = None;
        if let (Some(device), Some(proved)) = (device, proved) {
            let found = self.named_active_device(&user.id, device).await?;
            let key = crate::devices::proved_key(found, &proved)?;
            // Security condition "new device" (flow F2).
            if self.policy.new_device && !self.store.device_trusted(&user.id, device).await? {
                return Err(ServiceError::rejected(
                    ErrorCode::SecurityAuthRequired,
                    "this device is new for the account: pass security authentication on it first",
                ));
            }
            bound = Some(BoundDevice {
                id: device.clone(),
                thumbprint: key.thumbprint,
            });
            // A login on a trusted device, proved by its key and with the
            // password, is the step-up that is not by SMS: it unlocks the
            // phone's and the account's codes and the account's ID digits
            // after wrong answers in a row.
            let codes = self.otp_service()?;
            codes.unlock_phone(phone).await?;
            codes.unlock_account(&user.id).await?;
            self.reset_guard(&crate::registration::id_digits_guard(&user.id))
                .await?;
        }
        self.open_session(&user.id, bound).await
    }

    /// The key of a phone's wrong-login counter (kept for unknown phones too).
    pub(crate) fn login_index(&self, phone: &PhoneNumber) -> String {
        self.keys
            .index
            .index(IndexPurpose::LoginPhone, phone.as_str())
    }

    /// The account's phone number, unsealed.
    pub(crate) async fn phone_of(&self, user: &StoredUser) -> Result<PhoneNumber, ServiceError> {
        let phone = self
            .vault
            .open_text(&PHONE, user.id.as_str(), &user.phone_sealed)
            .await?;
        phone.expose().parse().map_err(ServiceError::internal)
    }

    /// Forgets the wrong logins of `user`'s phone (after a step-up).
    pub(crate) async fn reset_login_guard(&self, user: &StoredUser) -> Result<(), ServiceError> {
        let index = self.login_index(&self.phone_of(user).await?);
        self.reset_guard(&index).await
    }

    /// Forgets the wrong tries counted under `index` among the login counters.
    async fn reset_guard(&self, index: &str) -> Result<(), ServiceError> {
        // Racing wrong tries may move it meanwhile; a few tries, then leave it.
        for _ in 0..3 {
            let current = self.store.login_guard(index).await?;
            if current == PasswordGuard::default()
                || self
                    .store
                    .login_guard_replace(index, &current, &PasswordGuard::default())
                    .await?
            {
                break;
            }
        }
        Ok(())
    }

    /// Counts a login try against the phone's counter (also under racing tries).
    pub(crate) async fn judge_login(
        &self,
        login_index: &str,
        correct: bool,
    ) -> Result<(), ServiceError> {
        login::judge(
            self.store.as_ref(),
            self.clock.as_ref(),
            LoginTry {
                login_index,
                correct,
                lock_secs: LOGIN_LOCK_SECS,
                wrong: "wrong phone number or password",
            },
        )
        .await
    }

    pub(crate) async fn open_session(
        &self,
        user: &UserId,
        device: Option<BoundDevice>,
    ) -> Result<OpenedSession, ServiceError> {
        let (session, opened) = self.new_session(user, device);
        self.store.session_create(&session).await?;
        tracing::info!(user.id = %user, session.id = %session.id, "session opened");
        Ok(opened)
    }

    /// A new session of `user` (bound to `device`'s key when given): the
    /// row to store and what its holder is told, once.
    pub(crate) fn new_session(
        &self,
        user: &UserId,
        device: Option<BoundDevice>,
    ) -> (StoredSession, OpenedSession) {
        let now = self.clock.now();
        let (device, key_thumbprint) = match device {
            Some(d) => (Some(d.id), Some(d.thumbprint)),
            None => (None, None),
        };
        let token = generate_token(TokenKind::Session);
        let session = StoredSession {
            id: SessionId::generate(),
            token_hash: self.keys.tokens.hash(token.expose()),
            subject: user.as_str().to_owned(),
            device_id: device.clone(),
            key_thumbprint,
            created_at: now,
            expires_at: now + time::Duration::seconds(SESSION_TTL_SECS),
            revoked_at: None,
        };
        let opened = OpenedSession {
            id: session.id.clone(),
            token,
            user_id: user.clone(),
            device_id: device,
            expires_at: session.expires_at,
        };
        (session, opened)
    }

    /// The session a bearer token speaks for. A session bound to a device
    /// key needs a proof by that key with every request: a stolen token
    /// alone is refused.
    pub async fn authenticate(
        &self,
        token: &str,
        proof: &PresentedProof<'_>,
    ) -> Result<SessionUser, ServiceError> {
        if !well_formed_token(TokenKind::Session, token) {
            return Err(invalid_session());
        }
        let session = self
            .store
            .session_by_token(&self.keys.tokens.hash(token))
            .await?
            .filter(|s| s.is_live(self.clock.now()))
            .ok_or_else(invalid_session)?;
        let user_id: UserId = session.subject.parse().map_err(|_| invalid_session())?;
        let device_id = match &session.key_thumbprint {
            Some(bound) => {
                let proved = self
                    .device_proofs
                    .check(proof, Some(token), self.clock.now())?;
                if &proved.thumbprint != bound {
                    return Err(wrong_key());
                }
                session.device_id
            }
            // A session opened without a device's proof speaks for no device.
            None => None,
        };
        Ok(SessionUser {
            session_id: session.id,
            user_id,
            device_id,
        })
    }

    pub async fn logout(&self, s: &SessionUser) -> Result<(), ServiceError> {
        self.store
            .session_revoke(&s.session_id, s.user_id.as_str(), self.clock.now())
            .await?;
        Ok(())
    }

    pub async fn account(&self, user: &UserId) -> Result<AccountView, ServiceError> {
        let u = self.load_user(user).await?;
        self.view(&u).await
    }

    /// Sets the payment password; changing one needs the current one (a
    /// wrong current one counts towards the lock). Changing it, or setting
    /// the first one on an account that already has a card bound, is a
    /// sensitive operation: a session on a trusted device (or the
    /// binding's own code, see `complete_binding`), so a stolen login
    /// password alone cannot choose the PIN that spends the card.
    pub async fn set_payment_password(
        &self,
        user: &UserId,
        device: Option<&DeviceId>,
        current: Option<&str>,
        new: &str,
    ) -> Result<(), ServiceError> {
        check_payment_password(new)?;
        let u = self.load_user(user).await?;
        let change = if u.pay_password_hash.is_some() {
            self.require_trusted_device(user, device).await?;
            let current = current.ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::PaymentPasswordInvalid,
                    "changing the payment password needs the current one",
                )
            })?;
            self.verify_payment_password(user, current).await?;
            PinChange::Replace
        } else {
            if self.store.binding_active_for_user(user).await? {
                self.require_trusted_device(user, device).await?;
            }
            PinChange::First
        };
        let hash = self.hash_password(new).await?;
        self.store_payment_password(user, hash, change).await
    }

    /// Stores a payment password's hash (and forgets the wrong tries). A
    /// first one is refused when one was set meanwhile.
    pub(crate) async fn store_payment_password(
        &self,
        user: &UserId,
        hash: String,
        change: PinChange,
    ) -> Result<(), ServiceError> {
        on_conflict("the account", || async {
            let mut u = self.load_user(user).await?;
            if change == PinChange::First && u.pay_password_hash.is_some() {
                return Err(ServiceError::rejected(
                    ErrorCode::PaymentPasswordInvalid,
                    "a payment password was set meanwhile; change it with the current one",
                ));
            }
            u.pay_password_hash = Some(hash.clone());
            u.pay_guard = PasswordGuard::default();
            let event = Happened::PaymentPasswordSet {
                user_id: user.clone(),
            }
            .to(Destination::Internal, self.clock.now());
            Ok(
                match self.store.user_update_credentials(&u, &[event]).await? {
                    UserWrite::Done => Attempt::Done(()),
                    UserWrite::Stale | UserWrite::Duplicate => Attempt::Lost,
                },
            )
        })
        .await
    }

    /// A sensitive operation needs a session on a device that passed
    /// security authentication (when the policy says so).
    pub async fn require_trusted_device(
        &self,
        user: &UserId,
        device: Option<&DeviceId>,
    ) -> Result<(), ServiceError> {
        if !self.policy.sensitive_operation {
            return Ok(());
        }
        let trusted = match device {
            Some(d) => self.store.device_trusted(user, d).await?,
            None => false,
        };
        if trusted {
            Ok(())
        } else {
            Err(ServiceError::rejected(
                ErrorCode::SecurityAuthRequired,
                "a sensitive operation: use a session on a device that passed security authentication",
            ))
        }
    }

    /// Checks the payment password. Five wrong tries lock it for 30
    /// minutes; every wrong try is counted, also under racing tries.
    pub async fn verify_payment_password(
        &self,
        user: &UserId,
        pin: &str,
    ) -> Result<(), ServiceError> {
        on_conflict("the payment password's counter", || async {
            let now = self.clock.now();
            let Some(mut u) = self.store.user(user).await? else {
                // Same work and answer as a wrong password.
                self.verify_password(None, pin).await;
                return Err(ServiceError::rejected(
                    ErrorCode::PaymentPasswordInvalid,
                    "wrong payment password",
                ));
            };
            if let Err(refusal) = u.pay_guard.admit(now) {
                return Err(refusal
                    .into_error(ErrorCode::PaymentPasswordInvalid, now)
                    .into());
            }
            let hash = if is_six_digits(pin) {
                u.pay_password_hash.clone()
            } else {
                None
            };
            let correct = self.verify_password(hash, pin).await;
            if u.pay_password_hash.is_none() {
                return Err(ServiceError::rejected(
                    ErrorCode::PaymentPasswordNotSet,
                    "the account has no payment password yet; set one first",
                ));
            }
            let (next, outcome) = u.pay_guard.record(correct, now, PAYMENT_PASSWORD_LOCK_SECS);
            if next != u.pay_guard {
                u.pay_guard = next;
                let events = if outcome.is_err() {
                    vec![Happened::PaymentPasswordWrong {
                        user_id: user.clone(),
                        failed_attempts: next.failed_attempts,
                    }
                    .to(Destination::Internal, now)]
                } else {
                    Vec::new()
                };
                if self.store.user_update_credentials(&u, &events).await? == UserWrite::Stale {
                    return Ok(Attempt::Lost);
                }
            }
            outcome
                .map(Attempt::Done)
                .map_err(|r| r.into_error(ErrorCode::PaymentPasswordInvalid, now).into())
        })
        .await
    }

    /// Records the account's real-name identity (name and ID number, sealed)
    /// as its owner declares it: unverified (a bank attests it when a card
    /// of that person binds), so it blocks nobody's bank-attested identity,
    /// no bank's account look-up matches it, and it is no step-up factor.
    /// It is not changed later, but for a bank's attestation.
    pub async fn set_identity(
        &self,
        user: &UserId,
        name: &PersonName,
        id_number: &IdNumber,
    ) -> Result<IdentityView, ServiceError> {
        let u = self.load_user(user).await?;
        if u.identity.is_some() {
            return Err(ServiceError::rejected(
                ErrorCode::IdentityAlreadyVerified,
                "the account already has a real-name identity",
            ));
        }
        let now = self.clock.now();
        let personal = self.protector();
        let sealed_name = personal.shown(&NAME, u.id.as_str(), name).await;
        let sealed_id = personal.indexed(&ID_NUMBER, u.id.as_str(), id_number).await;
        let identity = SealedIdentity {
            name_sealed: sealed_name.sealed,
            name_masked: sealed_name.masked,
            id_number_sealed: sealed_id.sealed,
            id_number_index: sealed_id.index,
            verified_at: now,
            // Typed in by the owner: unverified until a bank attests it.
            attested: false,
        };
        let event = Happened::IdentitySet {
            user_id: user.clone(),
            attested_by: None,
        }
        .to(Destination::Internal, now);
        match self
            .store
            .user_set_identity(user, u.version, &identity, &[event])
            .await?
        {
            UserWrite::Done => Ok(IdentityView {
                name_masked: identity.name_masked,
                id_number_masked: id_number.masked(),
                verified_at: now,
                verified: false,
            }),
            UserWrite::Duplicate => Err(ServiceError::rejected(
                ErrorCode::IdentityInUse,
                "this identity belongs to another wallet account",
            )),
            UserWrite::Stale => Err(ServiceError::rejected(
                ErrorCode::IdentityAlreadyVerified,
                "the account changed meanwhile; look at it again",
            )),
        }
    }

    /// The account's identity in clear, for the flows that compare it with
    /// a bank's records (never for display).
    pub async fn identity_of(
        &self,
        user: &UserId,
    ) -> Result<Option<(PersonName, IdNumber)>, ServiceError> {
        let u = self.load_user(user).await?;
        let Some(i) = &u.identity else {
            return Ok(None);
        };
        let name = self
            .vault
            .open_text(&NAME, u.id.as_str(), &i.name_sealed)
            .await?;
        let number = self
            .vault
            .open_text(&ID_NUMBER, u.id.as_str(), &i.id_number_sealed)
            .await?;
        let corrupt = |e: paybridge_domain::DomainError| ServiceError::internal(e);
        Ok(Some((
            PersonName::parse(name.expose()).map_err(corrupt)?,
            IdNumber::parse(number.expose()).map_err(corrupt)?,
        )))
    }
}
