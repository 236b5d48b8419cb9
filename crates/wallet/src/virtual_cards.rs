//! Flow F5 at the wallet (验证服务器, the verification server): a virtual
//! card application from the payment password to the token in the
//! phone's secure element (seed 004, claims 1, 2, 5, 6).
//!
//! 1. The user enters the account's payment password on a trusted phone
//!    and gives the card application (name, ID number); the wallet checks
//!    it against the account's identity and forwards it to the issuer.
//! 2. The issuer tells an **existing cardholder** (the wallet sends an OTP
//!    to the reserved phone and resubmits with proof of it) from a
//!    **first-card applicant** (the app uploads the ID card photos, then the
//!    frames of a video face check; the wallet has the identity authority
//!    score them and passes the **reference number**, which the issuer
//!    looks up itself).
//! 3. The issuer pre-verifies and issues: card code, token, agreement
//!    number, and the token's key material sealed to the phone's secure
//!    element. The wallet **quick-binds** the card (a binding born active)
//!    and keeps the box for the phone, which writes the token into its
//!    secure element and says so.
//!
//! Every call to the issuer is recorded before it is made (`forwarded`,
//! `resubmitted`, `identity_checked`), so a lost answer is resumed
//! ([`Wallet::resume_card_application`]) with the same application id, on
//! which the issuer is idempotent. The wallet never sees the PAN; the
//! token number it keeps sealed.
//!
//! The token lifecycle (suspend, resume, delete) runs here for the
//! cardholder and arrives from the issuer as `card_token.changed` partner
//! events; each side tells the other through the outbox, and the phone is
//! told on its push channel.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use paybridge_adapters::identity::{IdentitySubmission, IdentityVerdict};
use paybridge_api::virtual_card::{
    CardApplicationAnswer, CardApplicationBody, CardIssued, CardProductList, CardTokenBody,
    ForwardCardApplication, OtpProof, PhotoPolicyBody, ResubmitCardApplication,
    SecureElementKeyBody, SecureElementKeyClaims, StartCardApplication, TokenProvisioning,
    TokenStateChange, VideoPolicyBody,
};
use paybridge_client::PartnerError;
use paybridge_crypto::hpke_box;
use paybridge_crypto::signed_message::MessageType;
use paybridge_domain::binding::BindingStatus;
use paybridge_domain::card::Pan;
use paybridge_domain::card_application::{
    check_frames, check_photos, ApplicantKind, ApplicationState, ApplicationStatus, ImageKind,
    PhotoPolicy, VideoPolicy,
};
use paybridge_domain::card_token::{CardCode, TokenActor, TokenStage, TokenState};
use paybridge_domain::event::{Destination, NewEvent};
use paybridge_domain::happened::BindingStep;
use paybridge_domain::happened::Happened;
use paybridge_domain::identity::{IdNumber, PersonName};
use paybridge_domain::ids::{BindingId, CardApplicationId, CardTokenId, OtpId};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::{ErrorCode, ServiceError, Timestamp, WireName};
use paybridge_store::keys::SealedColumn;
use paybridge_store::{
    ApplicationStart, Issuance, StoredBinding, StoredCardApplication, StoredCardToken, StoredMedia,
    StoredSecureElementKey, CARD_APPLICANT, CARD_APPLICATION_MEDIA, CARD_APPLICATION_REFERENCE,
    WALLET_CARD_TOKEN,
};
use serde::{Deserialize, Serialize};

use crate::accounts::SessionUser;
use crate::bindings::{AGREEMENT, HOLDER_ID_NUMBER, HOLDER_NAME, PHONE as BINDING_PHONE};
use crate::otp::SendContext;
use crate::transfer_payments::device_message;
use crate::Wallet;

/// The reserved phone an existing cardholder's OTP went to.
const APPLICATION_PHONE: SealedColumn = SealedColumn {
    table: "card_applications",
    id_column: "id",
    column: "phone_sealed",
};
const OTP_PURPOSE: &str = "applying for a virtual card";
/// A secure element key registration is fresh for five minutes.
const SE_KEY_MAX_AGE_SECS: i64 = 5 * 60;

/// The card application as the wallet keeps it, sealed.
#[derive(Serialize, Deserialize)]
struct Applicant {
    name: String,
    id_number: String,
}

/// Decodes a base64 upload; an upload that is not base64 is an invalid image.
fn decode_image(text: &str, what: &str) -> Result<Vec<u8>, ServiceError> {
    B64.decode(text.as_bytes()).map_err(|_| {
        ServiceError::rejected(
            ErrorCode::ImageInvalid,
            format!("{what}: base64 of a JPEG or PNG image"),
        )
    })
}

fn content_type(bytes: &[u8]) -> &'static str {
    match ImageKind::sniff(bytes) {
        Some(ImageKind::Png) => "image/png",
        _ => "image/jpeg",
    }
}

fn image_types() -> Vec<String> {
    vec!["image/jpeg".into(), "image/png".into()]
}

fn video_policy_body(p: &VideoPolicy) -> VideoPolicyBody {
    VideoPolicyBody {
        actions: p.actions.iter().map(|a| a.as_str().to_owned()).collect(),
        digits: p.digits.clone(),
        frames_min: p.frames_min as u32,
        frames_max: p.frames_max as u32,
        frame_max_bytes: p.frame_max_bytes as u64,
        types: image_types(),
    }
}

fn video_policy_of(body: &VideoPolicyBody) -> VideoPolicy {
    VideoPolicy {
        actions: body
            .actions
            .iter()
            .filter_map(|a| paybridge_domain::card_application::VideoAction::from_wire_name(a))
            .collect(),
        digits: body.digits.clone(),
        frames_min: body.frames_min as usize,
        frames_max: body.frames_max as usize,
        frame_max_bytes: body.frame_max_bytes as usize,
    }
}

fn token_body(t: &StoredCardToken) -> CardTokenBody {
    CardTokenBody {
        id: t.id.to_string(),
        issuer: t.issuer_id.clone(),
        card_code: t.card_code.clone(),
        token_last4: t.token_last4.clone(),
        state: t.state.stage().as_str().to_owned(),
        state_by: t.state.actor().map(|a| a.as_str().to_owned()),
        device_id: t.device_id.to_string(),
        binding_id: t.binding_id.clone(),
        installed: t.installed_at.is_some(),
        created_at: paybridge_api::rfc3339(t.created_at),
    }
}

/// Whether a partner's refusal is final for the application (a 4xx that
/// is not about timing); anything else leaves it to be resumed.
fn final_refusal(e: &PartnerError) -> Option<ErrorCode> {
    match e {
        PartnerError::Refused { status, code, .. }
            if (400..500).contains(status)
                && *status != 408
                && *status != 429
                && code != "idempotency_request_in_progress" =>
        {
            Some(ErrorCode::from_wire(code).unwrap_or(ErrorCode::PartnerResponseInvalid))
        }
        _ => None,
    }
}

/// The OTP an application in `otp_sent` waits for.
fn otp_of(a: &StoredCardApplication) -> Result<OtpId, ServiceError> {
    a.otp_id
        .as_deref()
        .ok_or_else(|| ServiceError::internal(std::io::Error::other("otp_sent without an OTP")))?
        .parse()
        .map_err(ServiceError::internal)
}

fn not_found() -> ServiceError {
    ServiceError::rejected(ErrorCode::NotFound, "no such card application")
}

fn no_token() -> ServiceError {
    ServiceError::rejected(ErrorCode::NotFound, "no such card token")
}

/// What the wallet tells about a card token, and to whom.
enum TokenNews {
    /// The phone only (the token was issued or the issuer moved it).
    Phone,
    /// The phone and the issuer (the cardholder moved it).
    PhoneAndIssuer,
}

impl Wallet {
    fn identity_authority(
        &self,
    ) -> Result<&std::sync::Arc<dyn paybridge_adapters::identity::IdentityAuthority>, ServiceError>
    {
        self.identity
            .as_ref()
            .ok_or_else(|| ServiceError::Unavailable {
                code: ErrorCode::PartnerUnreachable,
                source: "no identity authority is configured".into(),
            })
    }

    // ---- the secure element's key ----

    /// The phone registers its secure element's encryption key, signed by
    /// its device key: what the issuer will seal token keys to.
    pub async fn register_secure_element_key(
        &self,
        session: &SessionUser,
        registration: &str,
    ) -> Result<SecureElementKeyBody, ServiceError> {
        let device_id = session.proven_device()?;
        let device = self
            .store
            .device(device_id)
            .await?
            .filter(|d| d.user_id == session.user_id)
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such device"))?;
        let claims: SecureElementKeyClaims =
            device_message(&device, registration, MessageType::SecureElementKey)?;
        if claims.device_id != device_id.as_str() {
            return Err(ServiceError::rejected(
                ErrorCode::MessageMismatch,
                "the registration names another device",
            ));
        }
        hpke_box::check_public_key(&claims.public_key).map_err(|_| {
            ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "public_key: an X25519 public key, base64url (32 bytes)",
            )
        })?;
        let now = self.clock.now();
        let age = now.unix_timestamp() - claims.iat;
        if !(-30..=SE_KEY_MAX_AGE_SECS).contains(&age) {
            return Err(ServiceError::rejected(
                ErrorCode::MessageMismatch,
                "the registration is not fresh (iat within five minutes)",
            ));
        }
        if let Some(held) = self.store.secure_element_key(device_id).await? {
            if held.registered_at.unix_timestamp() > claims.iat {
                return Err(ServiceError::rejected(
                    ErrorCode::MessageMismatch,
                    "an older registration than the one held",
                ));
            }
        }
        let key = StoredSecureElementKey {
            device_id: device_id.clone(),
            public_key: claims.public_key,
            registered_at: now,
        };
        let event = Happened::SecureElementKeyRegistered {
            user_id: session.user_id.clone(),
            device_id: device_id.clone(),
        }
        .to(Destination::Internal, now);
        self.store.secure_element_key_set(&key, &[event]).await?;
        Ok(SecureElementKeyBody {
            device_id: key.device_id.to_string(),
            public_key: key.public_key,
            registered_at: paybridge_api::rfc3339(now),
        })
    }

    // ---- applications ----

    /// The card products of a bank, as it lists them.
    pub async fn card_products(&self, issuer: &str) -> Result<CardProductList, ServiceError> {
        let issuer: PartnerId = issuer
            .parse()
            .map_err(|_| ServiceError::rejected(ErrorCode::PartnerUnknown, "no such bank"))?;
        Ok(self
            .bank_client(&issuer)?
            .get("/v1/partner/card-products")
            .await?)
    }

    async fn load_application(
        &self,
        session: &SessionUser,
        id: &CardApplicationId,
    ) -> Result<StoredCardApplication, ServiceError> {
        self.store
            .card_application(id)
            .await?
            .filter(|a| a.user_id == session.user_id)
            .ok_or_else(not_found)
    }

    async fn applicant(&self, a: &StoredCardApplication) -> Result<Applicant, ServiceError> {
        Ok(self
            .vault
            .open_json(&CARD_APPLICANT, a.id.as_str(), &a.applicant_sealed)
            .await?)
    }

    /// An application as its owner sees it (a pending one past its expiry
    /// reads as expired).
    pub async fn card_application(
        &self,
        session: &SessionUser,
        id: &CardApplicationId,
    ) -> Result<CardApplicationBody, ServiceError> {
        let a = self.load_application(session, id).await?;
        self.application_body(&a).await
    }

    async fn application_body(
        &self,
        a: &StoredCardApplication,
    ) -> Result<CardApplicationBody, ServiceError> {
        let applicant = self.applicant(a).await?;
        let state = a.status.at(self.clock.now());
        let video_policy = match (state, &a.video_policy) {
            (ApplicationState::VideoRequested, Some(p)) => {
                Some(serde_json::from_str(p).map_err(ServiceError::internal)?)
            }
            _ => None,
        };
        Ok(CardApplicationBody {
            id: a.id.to_string(),
            issuer: a.issuer_id.clone(),
            product: a.product.clone(),
            state: state.stage().as_str().to_owned(),
            reason: state.rejection().map(|c| c.as_str().to_owned()),
            applicant: a.applicant_kind.map(|k| k.as_str().to_owned()),
            name_masked: PersonName::parse(&applicant.name)
                .map(|n| n.masked())
                .unwrap_or_default(),
            otp_phone_masked: a.phone_masked.clone(),
            photo_policy: (state == ApplicationState::PhotosRequested).then(|| PhotoPolicyBody {
                sides: vec!["id_front".into(), "id_back".into()],
                types: image_types(),
                max_bytes: PhotoPolicy::default().max_bytes as u64,
            }),
            video_policy,
            card_code: a.card_code.clone(),
            token_id: a.token_id.clone(),
            binding_id: matches!(
                state,
                ApplicationState::Issued | ApplicationState::Provisioned
            )
            .then(|| a.binding_id.clone()),
            expires_at: paybridge_api::rfc3339(a.status.expires_at),
            created_at: paybridge_api::rfc3339(a.created_at),
        })
    }

    fn application_event(a: &StoredCardApplication, now: Timestamp) -> NewEvent {
        Happened::CardApplication {
            application_id: a.id.clone(),
            user_id: a.user_id.clone(),
            state: a.status.state.stage(),
            reason: a.status.state.rejection(),
        }
        .to(Destination::Internal, now)
    }

    /// Saves `next` (read at its version) with its media and event; a
    /// racing step that moved it first is told as `application_step`.
    async fn save_application(
        &self,
        next: &StoredCardApplication,
        media: &[StoredMedia],
    ) -> Result<StoredCardApplication, ServiceError> {
        let now = self.clock.now();
        let event = Self::application_event(next, now);
        if !self
            .store
            .card_application_update(next, media, &[event])
            .await?
        {
            return Err(ServiceError::rejected(
                ErrorCode::ApplicationStep,
                "the application changed meanwhile; read it again",
            ));
        }
        Ok(StoredCardApplication {
            version: next.version + 1,
            ..next.clone()
        })
    }

    /// "Apply for a virtual card": the payment password on a trusted
    /// phone, the application checked against the account's identity, then
    /// forwarded to the bank.
    pub async fn start_card_application(
        &self,
        session: &SessionUser,
        req: &StartCardApplication,
        send: &SendContext,
    ) -> Result<CardApplicationBody, ServiceError> {
        let user = &session.user_id;
        let device = session.proven_device()?.clone();
        self.require_trusted_device(user, Some(&device)).await?;
        self.verify_payment_password(user, &req.payment_password)
            .await?;
        let name = PersonName::parse(&req.name)?;
        let id_number = IdNumber::parse(&req.id_number)?;
        let issuer: PartnerId = req
            .issuer
            .parse()
            .map_err(|_| ServiceError::rejected(ErrorCode::PartnerUnknown, "no such bank"))?;
        self.bank_client(&issuer)?;
        if req.product.is_empty() || req.product.len() > 64 {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "product: a product id of the bank",
            ));
        }
        let account = self
            .store
            .user(user)
            .await?
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such account"))?;
        self.check_against_identity(&account, &name, &id_number)
            .await?;
        if self.store.secure_element_key(&device).await?.is_none() {
            return Err(ServiceError::rejected(
                ErrorCode::SecureElementMissing,
                "register this phone's secure element key first",
            ));
        }
        let now = self.clock.now();
        if let Some(old) = self.store.card_application_pending_of(user).await? {
            if old.status.at(now) == ApplicationState::Expired {
                self.expire_application(old).await?;
            }
        }
        let id = CardApplicationId::generate();
        let applicant = Applicant {
            name: name.expose().to_owned(),
            id_number: id_number.expose().to_owned(),
        };
        let a = StoredCardApplication {
            applicant_sealed: self
                .vault
                .seal_json(&CARD_APPLICANT, id.as_str(), &applicant)
                .await,
            id,
            user_id: user.clone(),
            device_id: device,
            issuer_id: issuer.to_string(),
            product: req.product.clone(),
            applicant_kind: None,
            status: ApplicationStatus::forwarded(now),
            otp_id: None,
            phone_sealed: None,
            phone_masked: None,
            video_policy: None,
            reference_sealed: None,
            match_score: None,
            binding_id: BindingId::generate().to_string(),
            card_code: None,
            token_id: None,
            media_purge_at: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let event = Self::application_event(&a, now);
        if self.store.card_application_start(&a, &[event]).await? == ApplicationStart::Pending {
            return Err(ServiceError::rejected(
                ErrorCode::ApplicationPending,
                "an application is under way on this account: finish it or let it expire",
            ));
        }
        tracing::info!(application.id = %a.id, issuer = %issuer, "card application forwarded");
        let a = self.forward(a, &account.phone_sealed, send).await?;
        self.application_body(&a).await
    }

    /// The application must be the account's own identity (the one a bank
    /// attested, or the one its owner declared: a first-card applicant has
    /// no bank yet, and the identity authority checks them).
    async fn check_against_identity(
        &self,
        account: &paybridge_store::StoredUser,
        name: &PersonName,
        id_number: &IdNumber,
    ) -> Result<(), ServiceError> {
        let mismatch = |m: &str| ServiceError::rejected(ErrorCode::IdentityMismatch, m);
        let identity = account
            .identity
            .as_ref()
            .ok_or_else(|| mismatch("the account has no real-name identity yet: set it first"))?;
        let index = self
            .keys
            .index
            .index(paybridge_crypto::IndexPurpose::IdNumber, id_number.expose());
        let on_record = self
            .vault
            .open_text(
                &crate::accounts::NAME,
                account.id.as_str(),
                &identity.name_sealed,
            )
            .await?;
        let same_name = PersonName::parse(on_record.expose()).is_ok_and(|n| n.matches(name));
        if index != identity.id_number_index || !same_name {
            return Err(mismatch(
                "the application does not match the account's real-name identity",
            ));
        }
        Ok(())
    }

    /// Sends the application to the bank (again, when resumed) and takes
    /// the path it answers with.
    async fn forward(
        &self,
        a: StoredCardApplication,
        account_phone_sealed: &str,
        send: &SendContext,
    ) -> Result<StoredCardApplication, ServiceError> {
        let issuer: PartnerId = a.issuer_id.parse().map_err(ServiceError::internal)?;
        let applicant = self.applicant(&a).await?;
        let phone = self
            .vault
            .open_text(
                &crate::accounts::PHONE,
                a.user_id.as_str(),
                account_phone_sealed,
            )
            .await?;
        let body = ForwardCardApplication {
            application_id: a.id.to_string(),
            product: a.product.clone(),
            name: applicant.name,
            id_number: applicant.id_number,
            phone: phone.expose().clone(),
            binding_id: a.binding_id.clone(),
        };
        let answer: Result<CardApplicationAnswer, _> = self
            .bank_client(&issuer)?
            .call(
                reqwest::Method::POST,
                "/v1/partner/card-applications",
                Some(&body),
                Some(&format!("forward:{}", a.id)),
            )
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => return Err(self.refused_by_bank(&a, e).await),
        };
        let now = self.clock.now();
        let kind = ApplicantKind::from_wire_name(&answer.applicant).ok_or_else(|| {
            ServiceError::Unavailable {
                code: ErrorCode::PartnerResponseInvalid,
                source: "the bank named no applicant kind we know".into(),
            }
        })?;
        let mut next = a.clone();
        next.applicant_kind = Some(kind);
        next.status = a.status.answered(kind, now)?;
        next.updated_at = now;
        if kind == ApplicantKind::ExistingCardholder {
            let reserved: PhoneNumber = answer
                .reserved_phone
                .as_deref()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| ServiceError::Unavailable {
                    code: ErrorCode::PartnerResponseInvalid,
                    source: "the bank sent no reserved phone for an existing cardholder".into(),
                })?;
            let otp = self
                .otp_service()?
                .issue(OTP_PURPOSE, &reserved, send)
                .await?;
            next.otp_id = Some(otp.id.to_string());
            next.phone_masked = Some(otp.phone_masked);
            next.phone_sealed = Some(
                self.vault
                    .seal(
                        &APPLICATION_PHONE,
                        a.id.as_str(),
                        reserved.as_str().as_bytes(),
                    )
                    .await,
            );
        }
        self.save_application(&next, &[]).await
    }

    /// A bank's answer that is not a yes: a final refusal rejects the
    /// application (with the bank's reason); anything else leaves it where
    /// it was, to be resumed.
    async fn refused_by_bank(&self, a: &StoredCardApplication, e: PartnerError) -> ServiceError {
        match final_refusal(&e) {
            Some(reason) => {
                tracing::info!(application.id = %a.id, reason = reason.as_str(), "the bank refused the application");
                match self.reject(a, reason).await {
                    Ok(()) => ServiceError::rejected(
                        reason,
                        format!("the bank refused the application: {}", reason.as_str()),
                    ),
                    Err(e) => e,
                }
            }
            None => e.into(),
        }
    }

    async fn reject(
        &self,
        a: &StoredCardApplication,
        reason: ErrorCode,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let mut next = a.clone();
        next.status = a.status.rejected(reason, now)?;
        next.media_purge_at = Some(self.media_purge_time(now));
        next.updated_at = now;
        self.save_application(&next, &[]).await?;
        Ok(())
    }

    fn media_purge_time(&self, decided_at: Timestamp) -> Timestamp {
        decided_at + time::Duration::seconds(self.card_media_retention_secs)
    }

    async fn expire_application(&self, a: StoredCardApplication) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let mut next = a.clone();
        next.status = a.status.expire(now)?;
        next.media_purge_at = Some(self.media_purge_time(now));
        next.updated_at = now;
        let event = Self::application_event(&next, now);
        // A racing step that moved it first wins; nothing to do then.
        self.store
            .card_application_update(&next, &[], &[event])
            .await?;
        Ok(())
    }

    /// Existing cardholder: the OTP the reserved phone received. Right, it
    /// is recorded as verified and the application goes to the bank again
    /// with the proof.
    pub async fn submit_card_application_otp(
        &self,
        session: &SessionUser,
        id: &CardApplicationId,
        code: &str,
    ) -> Result<CardApplicationBody, ServiceError> {
        let a = self.load_application(session, id).await?;
        let now = self.clock.now();
        let status = a.status.otp_verified(now)?;
        let otp_id = otp_of(&a)?;
        let otp = self.otp_service()?;
        otp.challenge_for(&otp_id, OTP_PURPOSE).await?;
        otp.verify(&otp_id, code).await?;
        let mut next = a.clone();
        next.status = status;
        next.updated_at = now;
        let a = self.save_application(&next, &[]).await?;
        let a = self.resubmit(a).await?;
        self.application_body(&a).await
    }

    /// First-card applicant: the ID card's two sides, checked by content
    /// and size, sealed; the video face check's policy comes next.
    pub async fn submit_card_application_photos(
        &self,
        session: &SessionUser,
        id: &CardApplicationId,
        front: &str,
        back: &str,
    ) -> Result<CardApplicationBody, ServiceError> {
        let a = self.load_application(session, id).await?;
        let now = self.clock.now();
        let status = a.status.photos_received(now)?;
        let front = decode_image(front, "front")?;
        let back = decode_image(back, "back")?;
        check_photos(&PhotoPolicy::default(), &front, &back)?;
        let mut media = Vec::new();
        for (slot, bytes) in [("id_front", &front), ("id_back", &back)] {
            media.push(self.sealed_media(&a, slot, bytes, now).await);
        }
        let words: [u8; 5] = rand::random();
        let mut next = a.clone();
        next.status = status;
        next.video_policy = Some(
            serde_json::to_string(&video_policy_body(&VideoPolicy::from_random(words)))
                .expect("plain data serialises"),
        );
        next.updated_at = now;
        let a = self.save_application(&next, &media).await?;
        self.application_body(&a).await
    }

    async fn sealed_media(
        &self,
        a: &StoredCardApplication,
        slot: &str,
        bytes: &[u8],
        now: Timestamp,
    ) -> StoredMedia {
        StoredMedia {
            application_id: a.id.clone(),
            slot: slot.to_owned(),
            content_type: content_type(bytes).to_owned(),
            size_bytes: bytes.len() as i64,
            content_sealed: self
                .vault
                .seal(
                    &CARD_APPLICATION_MEDIA,
                    &paybridge_store::media_seal_key(a.id.as_str(), slot),
                    bytes,
                )
                .await,
            created_at: now,
        }
    }

    /// First-card applicant: the frames of the video face check. The
    /// identity authority scores photos and frames; its reference number
    /// goes to the bank, which looks the score up itself.
    pub async fn submit_card_application_video(
        &self,
        session: &SessionUser,
        id: &CardApplicationId,
        frames: &[String],
    ) -> Result<CardApplicationBody, ServiceError> {
        let a = self.load_application(session, id).await?;
        let now = self.clock.now();
        let status = a.status.identity_checked(now)?;
        let policy = a
            .video_policy
            .as_deref()
            .map(serde_json::from_str::<VideoPolicyBody>)
            .transpose()
            .map_err(ServiceError::internal)?
            .map(|b| video_policy_of(&b))
            .ok_or_else(|| ServiceError::internal(std::io::Error::other("no video policy")))?;
        if frames.len() > policy.frames_max {
            check_frames(&policy, &vec![Vec::new(); frames.len()])?;
        }
        let frames: Vec<Vec<u8>> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| decode_image(f, &format!("frames[{i}]")))
            .collect::<Result<_, _>>()?;
        check_frames(&policy, &frames)?;
        let authority = self.identity_authority()?.clone();
        let applicant = self.applicant(&a).await?;
        let mut photos = std::collections::HashMap::new();
        for m in self.store.card_application_media(&a.id).await? {
            let bytes = self
                .vault
                .open_value(
                    &CARD_APPLICATION_MEDIA,
                    &paybridge_store::media_seal_key(a.id.as_str(), &m.slot),
                    &m.content_sealed,
                )
                .await?;
            photos.insert(m.slot, bytes.expose().clone());
        }
        let submission = IdentitySubmission {
            application: a.id.to_string(),
            name: applicant.name,
            id_number: applicant.id_number,
            photo_front: photos.remove("id_front").unwrap_or_default(),
            photo_back: photos.remove("id_back").unwrap_or_default(),
            video_frames: frames.clone(),
        };
        let verdict =
            authority
                .check(&submission)
                .await
                .map_err(|e| ServiceError::Unavailable {
                    code: ErrorCode::PartnerUnreachable,
                    source: Box::new(e),
                })?;
        let (score, reference) = match verdict {
            IdentityVerdict::Scored { score, reference } => (score, reference),
            IdentityVerdict::UnknownCitizen => {
                self.reject(&a, ErrorCode::IdentityMismatch).await?;
                return Err(ServiceError::rejected(
                    ErrorCode::IdentityMismatch,
                    "the identity authority has no citizen with this name and ID number",
                ));
            }
        };
        let mut media = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            media.push(
                self.sealed_media(&a, &format!("frame_{i:02}"), f, now)
                    .await,
            );
        }
        let mut next = a.clone();
        next.status = status;
        next.match_score = Some(i64::from(score));
        next.reference_sealed = Some(
            self.vault
                .seal(
                    &CARD_APPLICATION_REFERENCE,
                    a.id.as_str(),
                    reference.as_bytes(),
                )
                .await,
        );
        next.updated_at = now;
        let a = self.save_application(&next, &media).await?;
        let a = self.resubmit(a).await?;
        self.application_body(&a).await
    }

    /// Sends the application to the bank again with its evidence, and
    /// quick-binds the card it issues.
    async fn resubmit(
        &self,
        a: StoredCardApplication,
    ) -> Result<StoredCardApplication, ServiceError> {
        let issuer: PartnerId = a.issuer_id.parse().map_err(ServiceError::internal)?;
        let se = self
            .store
            .secure_element_key(&a.device_id)
            .await?
            .ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::SecureElementMissing,
                    "the phone's secure element key is gone: register it again, then resume",
                )
            })?;
        let (otp_proof, identity_reference) = match a.status.state {
            ApplicationState::Resubmitted => {
                let sealed = a.phone_sealed.as_deref().ok_or_else(|| {
                    ServiceError::internal(std::io::Error::other("no reserved phone"))
                })?;
                let phone = self
                    .vault
                    .open_text(&APPLICATION_PHONE, a.id.as_str(), sealed)
                    .await?;
                (
                    Some(OtpProof {
                        application_id: a.id.to_string(),
                        otp_id: a.otp_id.clone().unwrap_or_default(),
                        phone: phone.expose().clone(),
                        verified_at: paybridge_api::rfc3339(a.updated_at),
                    }),
                    None,
                )
            }
            ApplicationState::IdentityChecked => {
                let sealed = a.reference_sealed.as_deref().ok_or_else(|| {
                    ServiceError::internal(std::io::Error::other("no reference number"))
                })?;
                let reference = self
                    .vault
                    .open_text(&CARD_APPLICATION_REFERENCE, a.id.as_str(), sealed)
                    .await?;
                (None, Some(reference.expose().clone()))
            }
            other => {
                return Err(ServiceError::rejected(
                    ErrorCode::ApplicationStep,
                    format!(
                        "this application is {}: nothing to send",
                        other.stage().as_str()
                    ),
                ))
            }
        };
        let body = ResubmitCardApplication {
            otp_proof,
            identity_reference,
            device_id: a.device_id.to_string(),
            secure_element_key: se.public_key,
        };
        let issued: Result<CardIssued, _> = self
            .bank_client(&issuer)?
            .call(
                reqwest::Method::POST,
                &format!("/v1/partner/card-applications/{}/resubmissions", a.id),
                Some(&body),
                Some(&format!("resubmit:{}", a.id)),
            )
            .await;
        match issued {
            Ok(issued) => self.quick_bind(a, issued).await,
            Err(e) => Err(self.refused_by_bank(&a, e).await),
        }
    }

    /// The bank issued the card: the wallet quick-binds it (a binding born
    /// active on the bank's agreement) and keeps the token, sealed, with
    /// the box for the phone's secure element. All in one transaction.
    async fn quick_bind(
        &self,
        a: StoredCardApplication,
        issued: CardIssued,
    ) -> Result<StoredCardApplication, ServiceError> {
        let bad = |m: &'static str| ServiceError::Unavailable {
            code: ErrorCode::PartnerResponseInvalid,
            source: m.into(),
        };
        let code =
            CardCode::parse(&issued.card_code).map_err(|_| bad("a card code not of ours"))?;
        let token_id: CardTokenId = issued
            .token_id
            .parse()
            .map_err(|_| bad("a token id not of ours"))?;
        let token = Pan::parse(&issued.token).map_err(|_| bad("a token that is no card number"))?;
        if !issued.key_box.starts_with("hpke1.") || issued.application_id != a.id.as_str() {
            return Err(bad("a key box or application not of ours"));
        }
        let now = self.clock.now();
        let applicant = self.applicant(&a).await?;
        let name = PersonName::parse(&applicant.name)?;
        let id_number = IdNumber::parse(&applicant.id_number)?;
        let account = self
            .store
            .user(&a.user_id)
            .await?
            .ok_or_else(|| ServiceError::internal(std::io::Error::other("account gone")))?;
        let binding_id: BindingId = a.binding_id.parse().map_err(ServiceError::internal)?;
        let phone = self
            .vault
            .open_text(
                &crate::accounts::PHONE,
                a.user_id.as_str(),
                &account.phone_sealed,
            )
            .await?;
        let binding = StoredBinding {
            issuer_id: a.issuer_id.clone(),
            card_ref: code.as_str().to_owned(),
            channel: "virtual_card".into(),
            address_hash: None,
            user_id: Some(a.user_id.clone()),
            status: BindingStatus::quick_bound(now),
            holder_name_sealed: self
                .vault
                .seal(&HOLDER_NAME, binding_id.as_str(), name.expose().as_bytes())
                .await,
            holder_name_masked: name.masked(),
            holder_id_number_sealed: self
                .vault
                .seal(
                    &HOLDER_ID_NUMBER,
                    binding_id.as_str(),
                    id_number.expose().as_bytes(),
                )
                .await,
            holder_id_number_index: self
                .keys
                .index
                .index(paybridge_crypto::IndexPurpose::IdNumber, id_number.expose()),
            phone_sealed: self
                .vault
                .seal(
                    &BINDING_PHONE,
                    binding_id.as_str(),
                    phone.expose().as_bytes(),
                )
                .await,
            phone_masked: account.phone_masked.clone(),
            bank_name: issued.bank_name.clone(),
            card_type: issued.card_type.clone(),
            last4: issued.last4.clone(),
            otp_id: a
                .otp_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(ServiceError::internal)?,
            agreement_sealed: Some(
                self.vault
                    .seal(
                        &AGREEMENT,
                        binding_id.as_str(),
                        issued.agreement_number.as_bytes(),
                    )
                    .await,
            ),
            created_at: now,
            updated_at: now,
            version: 0,
            id: binding_id,
        };
        let card_token = StoredCardToken {
            token_sealed: self
                .vault
                .seal(
                    &WALLET_CARD_TOKEN,
                    token_id.as_str(),
                    token.expose().as_bytes(),
                )
                .await,
            token_last4: token.last4().to_owned(),
            id: token_id,
            issuer_id: a.issuer_id.clone(),
            user_id: a.user_id.clone(),
            device_id: a.device_id.clone(),
            application_id: a.id.to_string(),
            binding_id: a.binding_id.clone(),
            card_code: code.as_str().to_owned(),
            key_box: Some(issued.key_box.clone()),
            state: TokenState::Active,
            installed_at: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let mut next = a.clone();
        next.status = a.status.issued(now)?;
        next.card_code = Some(card_token.card_code.clone());
        next.token_id = Some(card_token.id.to_string());
        next.media_purge_at = Some(self.media_purge_time(now));
        next.updated_at = now;
        let mut events = vec![Self::application_event(&next, now)];
        events.extend(
            self.binding_events(&binding, BindingStep::Activated)
                .await?,
        );
        events.extend(Self::token_events(&card_token, TokenNews::Phone, now)?);
        let issuance = Issuance {
            binding: &binding,
            token: &card_token,
        };
        if !self
            .store
            .card_application_issue(&next, issuance, &events)
            .await?
        {
            // A racing resume issued it first: the stored one is the answer.
            let stored = self
                .store
                .card_application(&a.id)
                .await?
                .ok_or_else(not_found)?;
            if matches!(
                stored.status.state,
                ApplicationState::Issued | ApplicationState::Provisioned
            ) {
                return Ok(stored);
            }
            return Err(ServiceError::rejected(
                ErrorCode::ApplicationStep,
                "the application changed meanwhile; read it again",
            ));
        }
        tracing::info!(application.id = %a.id, token.id = %card_token.id, binding.id = %binding.id,
            "virtual card issued and quick-bound");
        Ok(StoredCardApplication {
            version: next.version + 1,
            ..next
        })
    }

    /// Sends an application's pending call to the bank again (its answer
    /// was lost, or the bank was unreachable), or a waiting OTP again.
    pub async fn resume_card_application(
        &self,
        session: &SessionUser,
        id: &CardApplicationId,
        send: &SendContext,
    ) -> Result<CardApplicationBody, ServiceError> {
        let a = self.load_application(session, id).await?;
        let now = self.clock.now();
        let a = match a.status.at(now) {
            ApplicationState::Forwarded => {
                let account = self.store.user(&a.user_id).await?.ok_or_else(not_found)?;
                self.forward(a, &account.phone_sealed, send).await?
            }
            ApplicationState::Resubmitted | ApplicationState::IdentityChecked => {
                self.resubmit(a).await?
            }
            ApplicationState::OtpSent => {
                // The code expired or never came: a new one for the same
                // challenge, after the resend wait and within the budgets.
                self.otp_service()?.resend(&otp_of(&a)?, send).await?;
                a
            }
            ApplicationState::Expired => {
                return Err(ServiceError::rejected(
                    ErrorCode::ApplicationExpired,
                    "this application expired; start a new one",
                ))
            }
            other => {
                return Err(ServiceError::rejected(
                    ErrorCode::ApplicationStep,
                    format!(
                        "this application is {}: nothing to resume",
                        other.stage().as_str()
                    ),
                ))
            }
        };
        self.application_body(&a).await
    }

    /// Ends the applications left pending past their expiry and deletes
    /// the photos and frames whose retention is over (a background loop).
    pub async fn sweep_card_applications(&self) -> Result<(u64, u64), ServiceError> {
        let now = self.clock.now();
        let due = self.store.card_applications_due(now, 100).await?;
        let expired = due.len() as u64;
        for a in due {
            self.expire_application(a).await?;
        }
        let purged = self.store.card_application_media_purge(now).await?;
        Ok((expired, purged))
    }

    // ---- card tokens ----

    fn token_events(
        t: &StoredCardToken,
        news: TokenNews,
        now: Timestamp,
    ) -> Result<Vec<NewEvent>, ServiceError> {
        let fact = Happened::CardToken {
            token_id: t.id.clone(),
            card_code: t.card_code.clone(),
            state: t.state.stage(),
            by: t.state.actor(),
        };
        let mut events = vec![
            fact.to(Destination::Internal, now),
            fact.to(Destination::Device(t.device_id.clone()), now),
        ];
        if matches!(news, TokenNews::PhoneAndIssuer) {
            let issuer: PartnerId = t.issuer_id.parse().map_err(ServiceError::internal)?;
            events.push(fact.to(Destination::Partner(issuer), now));
        }
        Ok(events)
    }

    async fn load_token(
        &self,
        session: &SessionUser,
        id: &CardTokenId,
    ) -> Result<StoredCardToken, ServiceError> {
        self.store
            .card_token(id)
            .await?
            .filter(|t| t.user_id == session.user_id)
            .ok_or_else(no_token)
    }

    /// The account's card tokens, newest first.
    pub async fn card_tokens(
        &self,
        session: &SessionUser,
    ) -> Result<Vec<CardTokenBody>, ServiceError> {
        Ok(self
            .store
            .card_tokens_of(&session.user_id)
            .await?
            .iter()
            .map(token_body)
            .collect())
    }

    pub async fn card_token(
        &self,
        session: &SessionUser,
        id: &CardTokenId,
    ) -> Result<CardTokenBody, ServiceError> {
        Ok(token_body(&self.load_token(session, id).await?))
    }

    /// What the phone writes into its secure element: only the phone the
    /// token was issued to, only until it has installed it.
    pub async fn token_provisioning(
        &self,
        session: &SessionUser,
        id: &CardTokenId,
    ) -> Result<TokenProvisioning, ServiceError> {
        let t = self.load_token(session, id).await?;
        if session.proven_device()? != &t.device_id {
            return Err(no_token());
        }
        let key_box = t.key_box.clone().ok_or_else(|| {
            ServiceError::rejected(
                ErrorCode::ApplicationStep,
                "the token is in this phone's secure element already",
            )
        })?;
        Ok(TokenProvisioning {
            token_id: t.id.to_string(),
            card_code: t.card_code.clone(),
            key_box,
        })
    }

    /// The phone wrote the token into its secure element: the box goes
    /// (the wallet keeps no copy of what only the element may read) and the
    /// application is provisioned.
    pub async fn token_installed(
        &self,
        session: &SessionUser,
        id: &CardTokenId,
    ) -> Result<CardTokenBody, ServiceError> {
        let t = self.load_token(session, id).await?;
        if session.proven_device()? != &t.device_id {
            return Err(no_token());
        }
        if t.installed_at.is_some() {
            return Ok(token_body(&t));
        }
        let now = self.clock.now();
        let mut next = t.clone();
        next.key_box = None;
        next.installed_at = Some(now);
        next.updated_at = now;
        if !self.store.card_token_change(&next, None, &[]).await? {
            return Err(ServiceError::rejected(
                ErrorCode::ApplicationStep,
                "the token changed meanwhile; read it again",
            ));
        }
        let application: CardApplicationId =
            t.application_id.parse().map_err(ServiceError::internal)?;
        if let Some(a) = self.store.card_application(&application).await? {
            if a.status.state == ApplicationState::Issued {
                let mut done = a.clone();
                done.status = a.status.provisioned()?;
                done.updated_at = now;
                // A racing confirmation provisioned it first: the same end.
                let _ = self.save_application(&done, &[]).await;
            }
        }
        tracing::info!(token.id = %t.id, "card token written into the secure element");
        Ok(token_body(&StoredCardToken {
            version: next.version + 1,
            ..next
        }))
    }

    /// The cardholder suspends, resumes or deletes a token, from a trusted
    /// phone; the issuer is told through the outbox, the phone on its push
    /// channel. Deleting unbinds the quick binding in the same transaction.
    pub async fn change_card_token(
        &self,
        session: &SessionUser,
        id: &CardTokenId,
        action: TokenAction,
    ) -> Result<CardTokenBody, ServiceError> {
        self.require_trusted_device(&session.user_id, session.device_id.as_ref())
            .await?;
        let t = self.load_token(session, id).await?;
        let by = TokenActor::Cardholder;
        let state = match action {
            TokenAction::Suspend => t.state.suspend(by)?,
            TokenAction::Resume => t.state.resume(by)?,
            TokenAction::Delete => t.state.deactivate(by)?,
        };
        self.move_token(t, state, TokenNews::PhoneAndIssuer).await
    }

    /// Saves a token's new state, unbinding its quick binding when it is
    /// deactivated, with the events of both.
    async fn move_token(
        &self,
        t: StoredCardToken,
        state: TokenState,
        news: TokenNews,
    ) -> Result<CardTokenBody, ServiceError> {
        let now = self.clock.now();
        let mut next = t.clone();
        next.state = state;
        next.updated_at = now;
        let tell_issuer = matches!(news, TokenNews::PhoneAndIssuer);
        let mut events = Self::token_events(&next, news, now)?;
        let mut unbound = None;
        if state.stage() == TokenStage::Deactivated {
            let binding_id: BindingId = t.binding_id.parse().map_err(ServiceError::internal)?;
            if let Some(mut b) = self.store.binding(&binding_id).await? {
                if b.status.state == paybridge_domain::binding::BindingState::Active {
                    b.status = b.status.unbind()?;
                    b.updated_at = now;
                    events.extend(self.binding_events(&b, BindingStep::Unbound).await?);
                    if tell_issuer {
                        let issuer: PartnerId =
                            b.issuer_id.parse().map_err(ServiceError::internal)?;
                        events.push(Self::binding_event(
                            &b,
                            BindingStep::Unbound,
                            Destination::Partner(issuer),
                        ));
                    }
                    unbound = Some(b);
                }
            }
        }
        if !self
            .store
            .card_token_change(&next, unbound.as_ref(), &events)
            .await?
        {
            return Err(ServiceError::rejected(
                ErrorCode::TokenInactive,
                "the token changed meanwhile; read it again",
            ));
        }
        tracing::info!(token.id = %t.id, state = state.stage().as_str(), "card token changed");
        Ok(token_body(&StoredCardToken {
            version: next.version + 1,
            ..next
        }))
    }

    /// Unbinding a quick binding deactivates its token (the binding's own
    /// unbind path calls this for `virtual_card` bindings).
    pub(crate) async fn deactivate_token_of_binding(
        &self,
        binding_id: &str,
        by: TokenActor,
    ) -> Result<bool, ServiceError> {
        let Some(t) = self.store.card_token_by_binding(binding_id).await? else {
            return Ok(false);
        };
        if t.state.stage() == TokenStage::Deactivated {
            return Ok(true);
        }
        let state = t.state.deactivate(by)?;
        let news = match by {
            TokenActor::Cardholder => TokenNews::PhoneAndIssuer,
            TokenActor::Issuer => TokenNews::Phone,
        };
        self.move_token(t, state, news).await?;
        Ok(true)
    }

    /// The issuer moved a token (`card_token.changed`): the wallet follows
    /// and tells the phone. Idempotent: a state already held is no change.
    pub(crate) async fn token_changed_by_issuer(
        &self,
        issuer: &PartnerId,
        change: &TokenStateChange,
    ) -> Result<(), ServiceError> {
        let Ok(id) = change.token_id.parse::<CardTokenId>() else {
            return Ok(());
        };
        let Some(t) = self
            .store
            .card_token(&id)
            .await?
            .filter(|t| t.issuer_id == issuer.as_str())
        else {
            return Ok(());
        };
        let Some(stage) = TokenStage::from_wire_name(&change.state) else {
            return Ok(());
        };
        if stage == t.state.stage() || t.state.stage() == TokenStage::Deactivated {
            return Ok(());
        }
        let by = TokenActor::Issuer;
        let next = match stage {
            TokenStage::Active => t.state.resume(by),
            TokenStage::Suspended => t.state.suspend(by),
            TokenStage::Deactivated => t.state.deactivate(by),
        };
        match next {
            Ok(state) => {
                self.move_token(t, state, TokenNews::Phone).await?;
            }
            Err(e) => {
                tracing::warn!(token.id = %id, error = %e.message, "the issuer's token change does not apply")
            }
        }
        Ok(())
    }
}

/// What the cardholder does to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAction {
    Suspend,
    Resume,
    /// Deleted from the wallet: deactivated for good, its binding unbound.
    Delete,
}
