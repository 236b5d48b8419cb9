//! Flow F1, the wallet's side: binding a bank card to a wallet account when
//! the bank starts it (seed 000).
//!
//! QR path: the bank asks for a binding address; the wallet app claims it
//! (first claimant wins), sees the masked card, confirms; an OTP goes to the
//! phone reserved at the bank; the code (and the payment password, where the
//! account has one) completes it, and the bank opens the quick-pay agreement.
//! Push path: the bank sends a binding operation request; the wallet finds
//! the account by reserved phone and real-name identity and pushes a binding
//! message to its devices; the app continues at the claim.
//!
//! The state machine is `paybridge_domain::binding`; each change is saved at
//! the version it was read at, with its events.

use paybridge_api::partner::{ActivateBinding, AgreementIssued, BindingOffer};
use paybridge_crypto::token::{generate_token, TokenKind};
use paybridge_domain::binding::{BindingEnd, BindingFailure, BindingState, BindingStatus};
use paybridge_domain::card::{mask_last4, CardType};
use paybridge_domain::card_token::TokenActor;
use paybridge_domain::credentials::check_payment_password;
use paybridge_domain::device::DeviceFilter;
use paybridge_domain::event::{Destination, NewEvent};
use paybridge_domain::happened::{BindingFacts, BindingStep, Happened};
use paybridge_domain::identity::{IdNumber, PersonName};
use paybridge_domain::ids::{BindingId, UserId};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::{DomainError, ErrorCode, ServiceError, Timestamp};
use paybridge_store::keys::SealedColumn;
use paybridge_store::{BindingWrite, SealedIdentity, StoredBinding, UserWrite};

use crate::accounts::PinChange;
use crate::otp::IssuedOtp;
use crate::Wallet;

const fn col(column: &'static str) -> SealedColumn {
    SealedColumn {
        table: "bindings",
        id_column: "id",
        column,
    }
}
pub const HOLDER_NAME: SealedColumn = col("holder_name_sealed");
pub const HOLDER_ID_NUMBER: SealedColumn = col("holder_id_number_sealed");
pub const PHONE: SealedColumn = col("phone_sealed");
pub const AGREEMENT: SealedColumn = col("agreement_sealed");

/// The OTP purpose shown in the text message.
const OTP_PURPOSE: &str = "binding your bank card";

/// A bank's offer, checked.
#[derive(Debug, Clone)]
pub struct CheckedOffer {
    pub card_ref: String,
    pub holder_name: PersonName,
    pub holder_id_number: IdNumber,
    pub phone: PhoneNumber,
    pub bank_name: String,
    pub card_type: CardType,
    pub last4: String,
}

impl CheckedOffer {
    pub fn check(o: &BindingOffer) -> Result<CheckedOffer, DomainError> {
        let bad = |m: &str| DomainError::new(ErrorCode::InvalidRequest, m);
        if o.card_ref.is_empty() || o.card_ref.len() > 64 {
            return Err(bad("card_ref: 1 to 64 characters"));
        }
        if o.bank_name.trim().is_empty() || o.bank_name.chars().count() > 64 {
            return Err(bad("bank_name: 1 to 64 characters"));
        }
        if o.last4.len() != 4 || !o.last4.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("last4: the card number's last four digits"));
        }
        Ok(CheckedOffer {
            card_ref: o.card_ref.clone(),
            holder_name: PersonName::parse(&o.holder_name)?,
            holder_id_number: IdNumber::parse(&o.holder_id_number)?,
            phone: o
                .phone
                .parse()
                .map_err(|_| bad("phone: an optional '+' and 5 to 15 digits"))?,
            bank_name: o.bank_name.trim().to_owned(),
            card_type: o.card_type.parse()?,
            last4: o.last4.clone(),
        })
    }
}

/// What the wallet app shows of a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingView {
    pub id: BindingId,
    pub issuer_id: String,
    /// A failed binding's state says why.
    pub state: BindingState,
    pub bank_name: String,
    pub card_type: String,
    pub last4: String,
    pub masked_card: String,
    pub holder_name_masked: String,
    pub phone_masked: String,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
}

/// A fresh binding address: the secret URL is shown once, to the bank.
#[derive(Debug, Clone)]
pub struct NewAddress {
    pub binding_id: BindingId,
    pub url: String,
    pub expires_at: Timestamp,
}

pub(crate) fn view(b: &StoredBinding) -> BindingView {
    BindingView {
        id: b.id.clone(),
        issuer_id: b.issuer_id.clone(),
        state: b.status.state,
        bank_name: b.bank_name.clone(),
        card_type: b.card_type.clone(),
        last4: b.last4.clone(),
        masked_card: mask_last4(&b.last4),
        holder_name_masked: b.holder_name_masked.clone(),
        phone_masked: b.phone_masked.clone(),
        expires_at: b.status.expires_at,
        created_at: b.created_at,
    }
}

fn not_found() -> ServiceError {
    ServiceError::rejected(ErrorCode::NotFound, "no such binding")
}

/// The secret part of a binding address URL (`…/bind/<token>`), or the token itself.
fn address_token(address: &str) -> &str {
    address.rsplit('/').next().unwrap_or(address).trim()
}

impl Wallet {
    pub(crate) async fn new_binding(
        &self,
        issuer: &PartnerId,
        offer: &CheckedOffer,
        channel: &str,
        address_hash: Option<String>,
        user: Option<UserId>,
    ) -> StoredBinding {
        let now = self.clock.now();
        let id = BindingId::generate();
        let personal = self.protector();
        let name = personal
            .shown(&HOLDER_NAME, id.as_str(), &offer.holder_name)
            .await;
        let id_number = personal
            .indexed(&HOLDER_ID_NUMBER, id.as_str(), &offer.holder_id_number)
            .await;
        let phone = personal.shown(&PHONE, id.as_str(), &offer.phone).await;
        StoredBinding {
            issuer_id: issuer.to_string(),
            card_ref: offer.card_ref.clone(),
            channel: channel.into(),
            address_hash,
            user_id: user,
            status: BindingStatus::created(now),
            holder_name_sealed: name.sealed,
            holder_name_masked: name.masked,
            holder_id_number_sealed: id_number.sealed,
            holder_id_number_index: id_number.index,
            phone_sealed: phone.sealed,
            phone_masked: phone.masked,
            bank_name: offer.bank_name.clone(),
            card_type: offer.card_type.as_str().to_owned(),
            last4: offer.last4.clone(),
            otp_id: None,
            agreement_sealed: None,
            created_at: now,
            updated_at: now,
            version: 0,
            id,
        }
    }

    pub(crate) fn binding_event(b: &StoredBinding, step: BindingStep, to: Destination) -> NewEvent {
        Happened::Binding {
            step,
            binding: BindingFacts {
                binding_id: b.id.clone(),
                card_ref: b.card_ref.clone(),
                state: b.status.state.as_str(),
                bank_name: b.bank_name.clone(),
                last4: b.last4.clone(),
            },
        }
        .to(to, b.updated_at)
    }

    /// Events of a binding's change: kept for audit, and pushed to the
    /// account's active devices so every open app sees it.
    pub(crate) async fn binding_events(
        &self,
        b: &StoredBinding,
        step: BindingStep,
    ) -> Result<Vec<NewEvent>, ServiceError> {
        let mut events = vec![Self::binding_event(b, step, Destination::Internal)];
        if let Some(user) = &b.user_id {
            for d in self.store.devices_of(user, DeviceFilter::Active).await? {
                events.push(Self::binding_event(b, step, Destination::Device(d.id)));
            }
        }
        Ok(events)
    }

    /// QR path: a single-use, unguessable address (256 random bits) for the
    /// bank app to show as a QR code.
    pub async fn create_binding_address(
        &self,
        issuer: &PartnerId,
        offer: &CheckedOffer,
    ) -> Result<NewAddress, ServiceError> {
        let token = generate_token(TokenKind::BindingAddress);
        let hash = self.keys.tokens.hash(token.expose());
        let b = self
            .new_binding(issuer, offer, "qr", Some(hash), None)
            .await;
        let events = self.binding_events(&b, BindingStep::Created).await?;
        self.store.binding_create(&b, &events).await?;
        tracing::info!(binding.id = %b.id, issuer = %issuer, "binding address created");
        Ok(NewAddress {
            url: format!(
                "{}/bind/{}",
                self.app_origin.trim_end_matches('/'),
                token.expose()
            ),
            binding_id: b.id,
            expires_at: b.status.expires_at,
        })
    }

    /// Push path: finds the account by reserved phone and identity and
    /// pushes a binding message to its devices; `None` when no account
    /// matches both (the bank may then register one, flow F2).
    pub async fn offer_binding(
        &self,
        issuer: &PartnerId,
        offer: &CheckedOffer,
    ) -> Result<Option<StoredBinding>, ServiceError> {
        let by_phone = self
            .store
            .user_by_phone(&self.protector().index_of(&offer.phone))
            .await?;
        let id_index = self.protector().index_of(&offer.holder_id_number);
        let user = by_phone.filter(|u| {
            u.identity
                .as_ref()
                .is_none_or(|i| i.id_number_index == id_index)
        });
        let Some(user) = user else {
            return Ok(None);
        };
        let b = self
            .new_binding(issuer, offer, "push", None, Some(user.id.clone()))
            .await;
        let events = self.binding_events(&b, BindingStep::Offered).await?;
        self.store.binding_create(&b, &events).await?;
        tracing::info!(binding.id = %b.id, user.id = %user.id, "binding message pushed");
        Ok(Some(b))
    }

    async fn load_binding(
        &self,
        user: &UserId,
        id: &BindingId,
    ) -> Result<StoredBinding, ServiceError> {
        self.store
            .binding(id)
            .await?
            .filter(|b| b.user_id.as_ref() == Some(user))
            .ok_or_else(not_found)
    }

    /// Saves a binding change; a stale write is a lost race for the same step.
    pub(crate) async fn save_binding(
        &self,
        b: &StoredBinding,
        step: BindingStep,
    ) -> Result<(), ServiceError> {
        let events = self.binding_events(b, step).await?;
        match self.store.binding_update(b, &events).await? {
            BindingWrite::Done => Ok(()),
            BindingWrite::Stale => Err(ServiceError::rejected(
                ErrorCode::BindingNotPending,
                "the binding changed meanwhile (a duplicate submission?)",
            )),
            BindingWrite::Duplicate => Err(ServiceError::rejected(
                ErrorCode::BindingExists,
                "this card is already bound to the account",
            )),
        }
    }

    /// Ends a pending binding (expired, failed, cancelled).
    async fn end_binding(&self, mut b: StoredBinding, how: BindingEnd) -> Result<(), ServiceError> {
        let Ok(status) = b.status.end(how) else {
            return Ok(());
        };
        b.status = status;
        b.updated_at = self.clock.now();
        let topic = match how {
            BindingEnd::Expired => BindingStep::Expired,
            BindingEnd::Cancelled => BindingStep::Cancelled,
            BindingEnd::Failed(_) => BindingStep::Failed,
        };
        // Losing a race here means someone else moved it on: fine.
        let _ = self.save_binding(&b, topic).await;
        Ok(())
    }

    /// Applies a rule that may refuse; an expired binding is recorded as such.
    async fn step(
        &self,
        b: &StoredBinding,
        rule: impl FnOnce(BindingStatus, Timestamp) -> Result<BindingStatus, DomainError>,
    ) -> Result<BindingStatus, ServiceError> {
        let now = self.clock.now();
        match rule(b.status, now) {
            Ok(s) => Ok(s),
            Err(e) => {
                if b.status.is_expired(now) {
                    self.end_binding(b.clone(), BindingEnd::Expired).await?;
                }
                Err(e.into())
            }
        }
    }

    /// Checks the claimant against the card holder; a mismatch fails the
    /// binding and is recorded as a risk event.
    async fn check_holder(&self, user: &UserId, b: &StoredBinding) -> Result<(), ServiceError> {
        let account = self.load_user(user).await?;
        let matches = match &account.identity {
            // No identity yet: the bank's attested one becomes the account's on
            // success, unless the holder already owns another wallet account.
            None => self
                .store
                .user_by_id_number(&b.holder_id_number_index)
                .await?
                .is_none_or(|owner| &owner.id == user),
            Some(identity) => {
                identity.id_number_index == b.holder_id_number_index
                    && self.holder_name_matches(user, b).await?
            }
        };
        if matches {
            return Ok(());
        }
        self.store
            .outbox_append(&[Happened::BindingIdentityMismatch {
                binding_id: b.id.clone(),
                user_id: user.clone(),
                issuer: b.issuer_id.clone(),
            }
            .to(Destination::Internal, self.clock.now())])
            .await?;
        let mut failed = b.clone();
        failed.user_id = Some(user.clone());
        self.end_binding(failed, BindingEnd::Failed(BindingFailure::IdentityMismatch))
            .await?;
        Err(ServiceError::rejected(
            ErrorCode::IdentityMismatch,
            "the card holder is not the wallet account's verified owner",
        ))
    }

    async fn holder_name_matches(
        &self,
        user: &UserId,
        b: &StoredBinding,
    ) -> Result<bool, ServiceError> {
        let holder = self
            .vault
            .open_text(&HOLDER_NAME, b.id.as_str(), &b.holder_name_sealed)
            .await?;
        let holder = PersonName::parse(holder.expose()).map_err(ServiceError::internal)?;
        Ok(self
            .identity_of(user)
            .await?
            .is_some_and(|(name, _)| name.matches(&holder)))
    }

    /// QR path: the first wallet user to claim the address owns the binding.
    pub async fn claim_binding_address(
        &self,
        user: &UserId,
        address: &str,
    ) -> Result<BindingView, ServiceError> {
        self.require_unrestricted(user).await?;
        let hash = self.keys.tokens.hash(address_token(address));
        let b = self.store.binding_by_address(&hash).await?.ok_or_else(|| {
            ServiceError::rejected(ErrorCode::NotFound, "no such binding address")
        })?;
        if b.user_id.as_ref().is_some_and(|u| u != user) {
            return Err(ServiceError::rejected(
                ErrorCode::BindingAlreadyClaimed,
                "this binding address was already used",
            ));
        }
        self.claim(user, b).await
    }

    /// Push path: the user taps the binding message.
    pub async fn claim_offered_binding(
        &self,
        user: &UserId,
        id: &BindingId,
    ) -> Result<BindingView, ServiceError> {
        self.require_unrestricted(user).await?;
        let b = self.load_binding(user, id).await?;
        self.claim(user, b).await
    }

    async fn claim(
        &self,
        user: &UserId,
        mut b: StoredBinding,
    ) -> Result<BindingView, ServiceError> {
        let status = self.step(&b, |s, now| s.claim(now)).await?;
        self.check_holder(user, &b).await?;
        b.status = status;
        b.user_id = Some(user.clone());
        b.updated_at = self.clock.now();
        match self.save_binding(&b, BindingStep::Claimed).await {
            Err(e) if e.code() == ErrorCode::BindingNotPending => Err(ServiceError::rejected(
                ErrorCode::BindingAlreadyClaimed,
                "this binding address was already used",
            )),
            other => other.map(|()| view(&b)),
        }
    }

    /// The user confirmed the card: an OTP goes to the phone reserved at the
    /// bank. Asking again re-sends (after the resend wait).
    pub async fn confirm_binding(
        &self,
        user: &UserId,
        id: &BindingId,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<(BindingView, IssuedOtp), ServiceError> {
        let sent_for = crate::otp::SendContext::new(Some(user), client_ip);
        let mut b = self.load_binding(user, id).await?;
        self.refuse_a_card_already_bound(&b).await?;
        let status = self.step(&b, |s, now| s.send_otp(now)).await?;
        let otp = self.otp_service()?;
        let resent = match &b.otp_id {
            Some(existing) => match otp.resend(existing, &sent_for).await {
                Ok(issued) => Some(issued),
                // The code was used up: a fresh challenge.
                Err(e) if e.code() == ErrorCode::OtpAlreadyUsed => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let issued = match resent {
            Some(issued) => issued,
            None => {
                let phone = self
                    .vault
                    .open_text(&PHONE, b.id.as_str(), &b.phone_sealed)
                    .await?;
                let phone: PhoneNumber = phone.expose().parse().map_err(ServiceError::internal)?;
                otp.issue(OTP_PURPOSE, &phone, &sent_for).await?
            }
        };
        b.status = status;
        b.otp_id = Some(issued.id.clone());
        b.updated_at = self.clock.now();
        self.save_binding(&b, BindingStep::OtpSent).await?;
        Ok((view(&b), issued))
    }

    /// The code from the text message (and the payment password, where the
    /// account has one) completes the binding: the bank opens the quick-pay
    /// agreement and the binding is active.
    pub async fn complete_binding(
        &self,
        user: &UserId,
        id: &BindingId,
        code: &str,
        payment_password: Option<&str>,
    ) -> Result<BindingView, ServiceError> {
        let mut b = self.load_binding(user, id).await?;
        // Checked again before the bank is asked: had it opened a second
        // agreement for a card the account already has, the two sides
        // would disagree on that agreement's fate.
        self.refuse_a_card_already_bound(&b).await?;
        let status = self.step(&b, |s, now| s.activate(now)).await?;
        let otp_id = b.otp_id.clone().ok_or_else(|| {
            ServiceError::rejected(ErrorCode::BindingNotPending, "confirm the binding first")
        })?;
        // The payment password first: a wrong one (counted towards its own
        // lock) must not use up the code from the text message. A card is
        // never bound to an account without one: an account that has none
        // chooses it here, and the code to the card's phone sets it.
        let account = self.load_user(user).await?;
        let first_pin = if account.pay_password_hash.is_some() {
            let pin = payment_password.ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::PaymentPasswordInvalid,
                    "this account has a payment password: send it with the code",
                )
            })?;
            self.verify_payment_password(user, pin).await?;
            None
        } else {
            let pin = payment_password.ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::PaymentPasswordNotSet,
                    "this account has no payment password: choose one (six digits) and send it with the code; the binding sets it",
                )
            })?;
            check_payment_password(pin)?;
            Some(self.hash_password(pin).await?)
        };
        if let Err(e) = self.otp_service()?.verify(&otp_id, code).await {
            if e.code() == ErrorCode::OtpLocked {
                self.end_binding(b, BindingEnd::Failed(BindingFailure::OtpLocked))
                    .await?;
            }
            return Err(e);
        }
        // An account without an attested identity takes the bank's (the
        // holder matched a declared one, checked at the claim).
        if !account.identity.as_ref().is_some_and(|i| i.attested) {
            self.adopt_holder_identity(user, account.version, &b)
                .await?;
        }
        if let Some(hash) = first_pin {
            self.store_payment_password(user, hash, PinChange::First)
                .await?;
        }
        let issuer: PartnerId = b.issuer_id.parse().map_err(ServiceError::internal)?;
        let client = self.bank_client(&issuer)?;
        let answer: Result<AgreementIssued, _> = client
            .call(
                reqwest::Method::POST,
                "/v1/partner/bindings/activations",
                Some(&ActivateBinding {
                    binding_id: b.id.to_string(),
                    card_ref: b.card_ref.clone(),
                }),
                Some(&format!("activate:{}", b.id)),
            )
            .await;
        let issued = match answer {
            Ok(a) => a,
            Err(paybridge_client::PartnerError::Refused { status, code, .. }) if status < 500 => {
                tracing::warn!(binding.id = %b.id, partner.code = %code, "the bank refused the binding");
                self.end_binding(b, BindingEnd::Failed(BindingFailure::IssuerRefused))
                    .await?;
                return Err(ServiceError::rejected(
                    ErrorCode::BindingNotPending,
                    "the bank refused to open the agreement; the binding failed",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        b.status = status;
        b.agreement_sealed = Some(
            self.vault
                .seal(
                    &AGREEMENT,
                    b.id.as_str(),
                    issued.agreement_number.as_bytes(),
                )
                .await,
        );
        b.updated_at = self.clock.now();
        self.save_binding(&b, BindingStep::Activated).await?;
        tracing::info!(binding.id = %b.id, user.id = %user, "binding active");
        Ok(view(&b))
    }

    /// A binding offered for a card the account already has bound ends
    /// here (`409 binding_exists`), before any code is sent or the bank is
    /// asked for a second agreement.
    async fn refuse_a_card_already_bound(&self, b: &StoredBinding) -> Result<(), ServiceError> {
        let Some(user) = &b.user_id else {
            return Ok(());
        };
        let bound = self
            .store
            .binding_active_for_card(user, &b.issuer_id, &b.card_ref, &b.id)
            .await?;
        if !bound {
            return Ok(());
        }
        if b.status.state.is_pending() {
            self.end_binding(b.clone(), BindingEnd::Cancelled).await?;
        }
        Err(ServiceError::rejected(
            ErrorCode::BindingExists,
            "this card is already bound to the account",
        ))
    }

    async fn adopt_holder_identity(
        &self,
        user: &UserId,
        version: i64,
        b: &StoredBinding,
    ) -> Result<(), ServiceError> {
        let name = self
            .vault
            .open_text(&HOLDER_NAME, b.id.as_str(), &b.holder_name_sealed)
            .await?;
        let number = self
            .vault
            .open_text(&HOLDER_ID_NUMBER, b.id.as_str(), &b.holder_id_number_sealed)
            .await?;
        let name = PersonName::parse(name.expose()).map_err(ServiceError::internal)?;
        let number = IdNumber::parse(number.expose()).map_err(ServiceError::internal)?;
        let identity = SealedIdentity {
            name_sealed: self
                .vault
                .seal(
                    &crate::accounts::NAME,
                    user.as_str(),
                    name.expose().as_bytes(),
                )
                .await,
            name_masked: name.masked(),
            id_number_sealed: self
                .vault
                .seal(
                    &crate::accounts::ID_NUMBER,
                    user.as_str(),
                    number.expose().as_bytes(),
                )
                .await,
            id_number_index: b.holder_id_number_index.clone(),
            verified_at: self.clock.now(),
            attested: true,
        };
        let event = Happened::IdentitySet {
            user_id: user.clone(),
            attested_by: Some(b.issuer_id.clone()),
        }
        .to(Destination::Internal, self.clock.now());
        match self
            .store
            .user_set_identity(user, version, &identity, &[event])
            .await?
        {
            UserWrite::Done | UserWrite::Stale => Ok(()),
            UserWrite::Duplicate => Err(ServiceError::rejected(
                ErrorCode::IdentityInUse,
                "the card holder already has another wallet account",
            )),
        }
    }

    /// A page of the account's bindings, newest first: at most `limit`
    /// (1 to 100, default 50) after the binding `after`; the second value
    /// is the cursor of the next page, if there may be one.
    pub async fn bindings(
        &self,
        user: &UserId,
        limit: Option<u32>,
        after: Option<&BindingId>,
    ) -> Result<(Vec<BindingView>, Option<BindingId>), ServiceError> {
        let limit = paybridge_domain::page::page_limit(limit)?;
        let now = self.clock.now();
        let page = self
            .store
            .bindings_page(user, limit, after)
            .await?
            .ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::InvalidRequest,
                    "after: not a binding of this account (use `next` of the page before)",
                )
            })?;
        let next = paybridge_domain::page::next_cursor(&page, limit, |b| &b.id);
        let views = page
            .iter()
            .map(|b| {
                let mut v = view(b);
                if b.status.is_expired(now) {
                    v.state = BindingState::Expired;
                }
                v
            })
            .collect();
        Ok((views, next))
    }

    pub async fn binding(
        &self,
        user: &UserId,
        id: &BindingId,
    ) -> Result<BindingView, ServiceError> {
        let b = self.load_binding(user, id).await?;
        let mut v = view(&b);
        if b.status.is_expired(self.clock.now()) {
            v.state = BindingState::Expired;
        }
        Ok(v)
    }

    /// Unbinds an active binding, or cancels a pending one; the bank is told.
    pub async fn unbind(
        &self,
        session: &crate::accounts::SessionUser,
        id: &BindingId,
    ) -> Result<BindingView, ServiceError> {
        let user = &session.user_id;
        let mut b = self.load_binding(user, id).await?;
        if b.status.state.is_pending() {
            self.end_binding(b.clone(), BindingEnd::Cancelled).await?;
            return self.binding(user, id).await;
        }
        // Ending an active agreement is a sensitive operation.
        self.require_trusted_device(user, session.device_id.as_ref())
            .await?;
        // A quick binding (flow F5) ends with its card token: deactivated,
        // and the binding unbound with it, in one transaction.
        if b.channel == "virtual_card"
            && self
                .deactivate_token_of_binding(b.id.as_str(), TokenActor::Cardholder)
                .await?
        {
            return self.binding(user, id).await;
        }
        b.status = b.status.unbind()?;
        b.updated_at = self.clock.now();
        let issuer: PartnerId = b.issuer_id.parse().map_err(ServiceError::internal)?;
        let mut events = self.binding_events(&b, BindingStep::Unbound).await?;
        events.push(Self::binding_event(
            &b,
            BindingStep::Unbound,
            Destination::Partner(issuer),
        ));
        match self.store.binding_update(&b, &events).await? {
            BindingWrite::Done => Ok(view(&b)),
            _ => Err(ServiceError::rejected(
                ErrorCode::BindingNotPending,
                "the binding changed meanwhile",
            )),
        }
    }

    /// The bank unbound a card on its side (`binding.unbound` event).
    pub async fn unbound_by_issuer(
        &self,
        issuer: &PartnerId,
        binding_id: &str,
    ) -> Result<(), ServiceError> {
        let Ok(id) = binding_id.parse::<BindingId>() else {
            return Ok(());
        };
        let Some(mut b) = self.store.binding(&id).await? else {
            return Ok(());
        };
        if b.issuer_id != issuer.as_str() || b.status.state != BindingState::Active {
            return Ok(());
        }
        if b.channel == "virtual_card"
            && self
                .deactivate_token_of_binding(b.id.as_str(), TokenActor::Issuer)
                .await?
        {
            return Ok(());
        }
        b.status = b.status.unbind()?;
        b.updated_at = self.clock.now();
        let events = self.binding_events(&b, BindingStep::Unbound).await?;
        self.store.binding_update(&b, &events).await?;
        Ok(())
    }

    /// The agreement number of an active binding, for debiting the card.
    pub async fn agreement_number(
        &self,
        user: &UserId,
        id: &BindingId,
    ) -> Result<String, ServiceError> {
        let b = self.load_binding(user, id).await?;
        let sealed = b
            .agreement_sealed
            .filter(|_| b.status.state == BindingState::Active)
            .ok_or_else(|| {
                ServiceError::rejected(ErrorCode::BindingNotPending, "the binding is not active")
            })?;
        Ok(self
            .vault
            .open_text(&AGREEMENT, b.id.as_str(), &sealed)
            .await?
            .expose()
            .clone())
    }
}
