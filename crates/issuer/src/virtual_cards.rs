//! Flow F5 on the bank's side (卡发行机构服务器): the virtual card
//! products, the review of an application the wallet forwards (existing
//! cardholder or first-card applicant), the **pre-verification** (前置验证),
//! and the issue of the card with its card code (卡代号), quick-pay
//! agreement (快捷签约, 协议号) and card token (标记) from the **token
//! vault**, whose key material is sealed to the phone's secure element.
//!
//! The issuer keys everything on the wallet's application id, so a
//! forwarded or resubmitted application that is sent again gets the same
//! answer: the same path, the same card, the same token (its box sealed
//! afresh to the same secure element), the same refusal.
//!
//! The token's master key for cryptograms is derived from the issuer master
//! key by EMV Option A ([`paybridge_crypto::emv`]); the issuer master key
//! is derived from paybridge's master key and never leaves the issuer.

use std::collections::HashSet;
use std::sync::Arc;

use paybridge_adapters::identity::IdentityAuthority;
use paybridge_api::virtual_card::{
    CardApplicationAnswer, CardIssued, CardProductBody, ForwardCardApplication, OtpProof,
    ResubmitCardApplication, TokenKeyMaterial, TOKEN_KEYS_INFO,
};
use paybridge_crypto::emv::icc_master_key;
use paybridge_crypto::hpke_box;
use paybridge_crypto::IndexPurpose;
use paybridge_crypto::Secret;
use paybridge_domain::agreement::AgreementStatus;
use paybridge_domain::card::{BinRange, CardStatus, CardType, Expiry, Pan};
use paybridge_domain::card_application::ApplicantKind;
use paybridge_domain::card_issuing::{
    pre_verify, CardProduct, Evidence, PreVerification, ReviewState,
};
use paybridge_domain::card_token::{
    token_number, CardCode, TokenActor, TokenChannel, TokenStage, TokenState,
};
use paybridge_domain::event::Destination;
use paybridge_domain::happened::Happened;
use paybridge_domain::identity::{IdNumber, PersonName};
use paybridge_domain::ids::{
    BindingId, CardApplicationId, CardId, CardTokenId, CustomerId, QuickPayAgreementId,
};
use paybridge_domain::ledger::Account;
use paybridge_domain::partner::PartnerId;
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::{Currency, ErrorCode, ServiceError, Timestamp};
use paybridge_store::{
    CardIssue, IssueOutcome, StoredAgreement, StoredBankApplication, StoredCard, StoredCustomer,
    StoredVaultToken, BANK_CARD_APPLICANT, VAULT_TOKEN,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::bindings::{agreement_number, AGREEMENT_NUMBER};
use crate::customers::{NewCardParts, CARD_PAN, CUSTOMER_ID_NUMBER, CUSTOMER_NAME, CUSTOMER_PHONE};
use crate::Issuer;

/// A token's PAN sequence number: one token per card domain here.
const TOKEN_PSN: &str = "01";
/// Numbers drawn again when one collides (PAN, card code, token), at most.
const ISSUE_ATTEMPTS: usize = 4;
/// An OTP proof older than this is not accepted (the wallet resubmits at once).
const OTP_PROOF_MAX_AGE_SECS: i64 = 10 * 60;

/// What a bank needs to issue virtual cards.
#[derive(Clone)]
pub struct VirtualCardIssuing {
    pub products: Vec<CardProduct>,
    /// Where card tokens come from (apart from the PANs' ranges).
    pub token_bins: BinRange,
    /// Where the issuer looks a first-card applicant's score up.
    pub identity: Arc<dyn IdentityAuthority>,
    /// Blind indexes of the ID numbers the bank does not issue to.
    pub blocked: HashSet<String>,
    /// The issuer master key for application cryptograms (IMK-AC).
    imk_ac: Arc<Zeroizing<[u8; 16]>>,
}

impl std::fmt::Debug for VirtualCardIssuing {
    /// Never prints the issuer master key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCardIssuing")
            .field("products", &self.products.len())
            .field("blocked", &self.blocked.len())
            .finish_non_exhaustive()
    }
}

impl VirtualCardIssuing {
    /// `imk_seed`: 32 bytes derived from the master key for this issuer;
    /// the IMK-AC is its first 16.
    pub fn new(
        products: Vec<CardProduct>,
        token_bins: BinRange,
        identity: Arc<dyn IdentityAuthority>,
        blocked: HashSet<String>,
        imk_seed: &[u8; 32],
    ) -> Self {
        let mut imk = Zeroizing::new([0u8; 16]);
        imk.copy_from_slice(&imk_seed[..16]);
        Self {
            products,
            token_bins,
            identity,
            blocked,
            imk_ac: Arc::new(imk),
        }
    }

    pub fn product(&self, id: &str) -> Option<&CardProduct> {
        self.products.iter().find(|p| p.id == id)
    }

    /// Checks an application cryptogram of `token` at `atc` over `data`
    /// with the token's key, derived here from the issuer master key (EMV
    /// Option A, common session key): the ARPC (method 1, approved) when
    /// it verifies, `None` when it does not.
    pub(crate) fn verify_cryptogram(
        &self,
        token: &str,
        psn: &str,
        atc: u16,
        data: &[u8],
        arqc: &[u8; 8],
    ) -> Option<[u8; 8]> {
        use paybridge_crypto::emv::{arpc_method_1, cryptogram_matches, session_key, Padding};
        let mk = icc_master_key(&self.imk_ac, token, psn).ok()?;
        let sk = session_key(&mk, atc);
        cryptogram_matches(&sk, data, Padding::Method2, arqc)
            .then(|| arpc_method_1(&sk, arqc, paybridge_domain::authorisation::APPROVED_ARC))
    }

    /// The token's master key for cryptograms (EMV Option A), hex.
    fn token_master_key(&self, token: &Pan) -> Result<Secret<String>, ServiceError> {
        let mk = icc_master_key(&self.imk_ac, token.expose(), TOKEN_PSN)
            .map_err(ServiceError::internal)?;
        Ok(Secret::new(hex::encode_upper(*mk)))
    }
}

/// Demo Bank's virtual card products (made up).
pub fn sandbox_products() -> Vec<CardProduct> {
    vec![
        CardProduct {
            id: "virtual_credit".into(),
            name: "Demo Bank Virtual Credit".into(),
            card_type: CardType::Credit,
            bins: BinRange {
                prefixes: vec!["625999".into()],
                lengths: vec![16],
            },
            credit_limit_minor: 500_000,
            max_per_person: 1,
            min_score: 80,
            validity_years: 5,
        },
        CardProduct {
            id: "virtual_debit".into(),
            name: "Demo Bank Virtual Debit (Class II)".into(),
            card_type: CardType::Debit,
            bins: BinRange {
                prefixes: vec!["625998".into()],
                lengths: vec![16],
            },
            credit_limit_minor: 0,
            max_per_person: 2,
            min_score: 85,
            validity_years: 10,
        },
    ]
}

/// Demo Bank's token BIN range (made up): tokens never look like its PANs.
pub fn sandbox_token_bins() -> BinRange {
    BinRange {
        prefixes: vec!["629999".into()],
        lengths: vec![16],
    }
}

/// The sandbox bank does not issue to this citizen of the sandbox registry
/// (钱伟): the blocked-identity case of the demos and tests.
pub const SANDBOX_BLOCKED_ID_NUMBERS: &[&str] = &["110101197912310044"];

/// The applicant as the issuer keeps it, sealed.
#[derive(Serialize, Deserialize)]
struct Applicant {
    name: String,
    id_number: String,
    phone: String,
}

/// What a token is issued for.
#[derive(Debug, Clone)]
pub struct TokenDomain {
    pub wallet: PartnerId,
    /// The wallet's device id of the phone that holds it.
    pub device_id: String,
    pub channels: Vec<TokenChannel>,
}

/// A token found by its number.
#[derive(Debug, Clone)]
pub struct FoundToken {
    pub token: StoredVaultToken,
    pub pan: Pan,
}

fn channels_text(channels: &[TokenChannel]) -> String {
    let mut names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

fn card_code() -> CardCode {
    let mut words = [0u8; paybridge_domain::card_token::CARD_CODE_LEN];
    rand::rngs::OsRng.fill(&mut words);
    CardCode::from_random(words)
}

fn random_digit() -> u8 {
    rand::rngs::OsRng.gen_range(0..10u8)
}

fn refused(code: ErrorCode, message: impl Into<String>) -> ServiceError {
    ServiceError::rejected(code, message)
}

/// The message a pre-verification failure is refused with.
fn refusal_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::IdentityMismatch => {
            "the name does not match the bank's record of this ID number"
        }
        ErrorCode::IdentityBlocked => "the bank does not issue cards to this applicant",
        ErrorCode::ScoreTooLow => "the identity check's match score is below the bank's threshold",
        ErrorCode::CardLimitReached => {
            "the applicant holds as many cards of this product as it allows"
        }
        _ => "the bank refused the application",
    }
}

impl Issuer {
    pub(crate) fn cards(&self) -> Result<&VirtualCardIssuing, ServiceError> {
        self.virtual_cards.as_ref().ok_or_else(|| {
            refused(
                ErrorCode::NotFound,
                format!("{} issues no virtual cards", self.name),
            )
        })
    }

    /// The virtual card products, as the wallet lists them.
    pub fn card_products(&self) -> Result<Vec<CardProductBody>, ServiceError> {
        Ok(self
            .cards()?
            .products
            .iter()
            .map(|p| CardProductBody {
                id: p.id.clone(),
                name: p.name.clone(),
                card_type: p.card_type.as_str().to_owned(),
                credit_limit: (p.card_type == CardType::Credit).then(|| {
                    paybridge_domain::Money::new(p.credit_limit_minor, Currency::CNY).into()
                }),
                max_per_person: p.max_per_person,
            })
            .collect())
    }

    /// A card application the wallet forwards: the issuer tells an
    /// existing cardholder (their reserved phone comes back, for the OTP)
    /// from a first-card applicant (photos and a video face check next).
    pub async fn receive_card_application(
        &self,
        wallet: &PartnerId,
        req: &ForwardCardApplication,
    ) -> Result<CardApplicationAnswer, ServiceError> {
        let invalid = |m: &str| refused(ErrorCode::InvalidRequest, m);
        let id: CardApplicationId = req
            .application_id
            .parse()
            .map_err(|_| invalid("application_id: a vca_ id"))?;
        req.binding_id
            .parse::<BindingId>()
            .map_err(|_| invalid("binding_id: a bnd_ id"))?;
        let product = self
            .cards()?
            .product(&req.product)
            .ok_or_else(|| refused(ErrorCode::NotFound, "no such card product"))?;
        let name = PersonName::parse(&req.name)?;
        let id_number = IdNumber::parse(&req.id_number)?;
        let phone: PhoneNumber = req
            .phone
            .parse()
            .map_err(|_| invalid("phone: a mainland mobile number"))?;
        let id_index = self
            .keys
            .index
            .index(IndexPurpose::IdNumber, id_number.expose());
        if self.store.bank_application(&id).await?.is_none() {
            // What the pre-verification refuses whatever the evidence is
            // refused at once: the applicant is spared the OTP or the video.
            // It is judged again at issue (a block or a card may come
            // meanwhile; the holding slot decides a race).
            let early = PreVerification {
                identity_matches: true,
                blocked: self.cards()?.blocked.contains(&id_index),
                cards_of_product: self
                    .store
                    .bank_product_holdings(&id_index, &product.id)
                    .await?,
                score: None,
            };
            if let Err(reason) = pre_verify(product, &early) {
                return Err(refused(reason, refusal_message(reason)));
            }
        }
        let customer = self.store.bank_customer_by_id_number(&id_index).await?;
        let kind = match customer {
            Some(_) => ApplicantKind::ExistingCardholder,
            None => ApplicantKind::FirstCard,
        };
        let applicant = Applicant {
            name: name.expose().to_owned(),
            id_number: id_number.expose().to_owned(),
            phone: phone.as_str().to_owned(),
        };
        let sealed = self
            .vault
            .seal_json(&BANK_CARD_APPLICANT, id.as_str(), &applicant)
            .await;
        let now = self.clock.now();
        let candidate = StoredBankApplication {
            id: id.clone(),
            wallet_id: wallet.to_string(),
            product: product.id.clone(),
            applicant_sealed: sealed,
            id_number_index: id_index.clone(),
            binding_id: req.binding_id.clone(),
            applicant_kind: kind,
            customer_id: customer.as_ref().map(|c| c.id.clone()),
            state: ReviewState::received(kind),
            match_score: None,
            card_id: None,
            token_id: None,
            agreement_id: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let event = Happened::CardReview {
            application_id: id.clone(),
            state: candidate.state.stage(),
            reason: None,
        }
        .to(Destination::Internal, now);
        let (stored, _new) = self
            .store
            .bank_application_receive(&candidate, &[event])
            .await?;
        if stored.wallet_id != wallet.as_str()
            || stored.id_number_index != id_index
            || stored.product != product.id
            || stored.binding_id != req.binding_id
        {
            return Err(refused(
                ErrorCode::IdempotencyKeyReused,
                "this application id was forwarded with other details",
            ));
        }
        let reserved_phone = match (&stored.applicant_kind, &stored.customer_id) {
            (ApplicantKind::ExistingCardholder, Some(c)) => {
                Some(self.reserved_phone(c).await?.expose().clone())
            }
            _ => None,
        };
        Ok(CardApplicationAnswer {
            application_id: id.to_string(),
            applicant: stored.applicant_kind.as_str().to_owned(),
            reserved_phone,
        })
    }

    async fn reserved_phone(&self, customer: &CustomerId) -> Result<Secret<String>, ServiceError> {
        let c = self
            .store
            .bank_customer(customer)
            .await?
            .ok_or_else(|| ServiceError::internal(std::io::Error::other("customer gone")))?;
        Ok(self
            .vault
            .open_text(&CUSTOMER_PHONE, c.id.as_str(), &c.phone_sealed)
            .await?)
    }

    async fn applicant_of(&self, a: &StoredBankApplication) -> Result<Applicant, ServiceError> {
        Ok(self
            .vault
            .open_json(&BANK_CARD_APPLICANT, a.id.as_str(), &a.applicant_sealed)
            .await?)
    }

    /// The wallet resubmits an application with its evidence (the OTP
    /// proof, or the identity authority's reference number); the issuer
    /// pre-verifies and issues the card, or refuses for good.
    pub async fn resubmit_card_application(
        &self,
        wallet: &PartnerId,
        id: &CardApplicationId,
        req: &ResubmitCardApplication,
    ) -> Result<CardIssued, ServiceError> {
        let invalid = |m: &str| refused(ErrorCode::InvalidRequest, m);
        let a = self
            .store
            .bank_application(id)
            .await?
            .filter(|a| a.wallet_id == wallet.as_str())
            .ok_or_else(|| refused(ErrorCode::NotFound, "no such card application"))?;
        hpke_box::check_public_key(&req.secure_element_key)
            .map_err(|_| invalid("secure_element_key: an X25519 public key, base64url"))?;
        if req.device_id.is_empty() || req.device_id.len() > 64 {
            return Err(invalid("device_id: the wallet's id of the phone"));
        }
        match a.state {
            ReviewState::Issued => return self.issued_answer(&a, req).await,
            ReviewState::Rejected { reason } => {
                return Err(refused(reason, refusal_message(reason)))
            }
            _ => {}
        }
        let evidence = match (&req.otp_proof, &req.identity_reference) {
            (Some(_), None) => Evidence::OtpProof,
            (None, Some(_)) => Evidence::IdentityReference,
            _ => return Err(invalid(
                "exactly one of otp_proof (existing cardholder) or identity_reference (first card)",
            )),
        };
        a.state.accepts(evidence)?;
        let applicant = self.applicant_of(&a).await?;
        let product = self
            .cards()?
            .product(&a.product)
            .cloned()
            .ok_or_else(|| refused(ErrorCode::NotFound, "the card product is withdrawn"))?;
        let (identity_matches, score) = match (&req.otp_proof, &req.identity_reference) {
            (Some(proof), _) => {
                let customer = a.customer_id.as_ref().ok_or_else(|| {
                    ServiceError::internal(std::io::Error::other(
                        "an existing cardholder without customer",
                    ))
                })?;
                self.check_otp_proof(&a, customer, proof).await?;
                (self.same_name(customer, &applicant.name).await?, None)
            }
            (_, Some(reference)) => {
                let score = self
                    .cards()?
                    .identity
                    .look_up(reference, a.id.as_str(), &applicant.id_number)
                    .await
                    .map_err(|e| ServiceError::Unavailable {
                        code: ErrorCode::PartnerUnreachable,
                        source: Box::new(e),
                    })?
                    .ok_or_else(|| {
                        refused(
                            ErrorCode::ReferenceInvalid,
                            "the identity authority has no check by this reference number for this application and ID number",
                        )
                    })?;
                (true, Some(score))
            }
            _ => unreachable!("evidence was checked above"),
        };
        let cards = self.cards()?;
        let check = PreVerification {
            identity_matches,
            blocked: cards.blocked.contains(&a.id_number_index),
            cards_of_product: self
                .store
                .bank_product_holdings(&a.id_number_index, &product.id)
                .await?,
            score,
        };
        let scored = StoredBankApplication {
            match_score: score.map(i64::from),
            ..a.clone()
        };
        if let Err(reason) = pre_verify(&product, &check) {
            return self.reject(&scored, reason).await;
        }
        self.issue(&scored, &product, &applicant, req).await
    }

    /// The OTP proof must be the wallet's, for this application and the
    /// reserved phone, verified after the application came and recently.
    async fn check_otp_proof(
        &self,
        a: &StoredBankApplication,
        customer: &CustomerId,
        proof: &OtpProof,
    ) -> Result<(), ServiceError> {
        let bad = |m: &str| refused(ErrorCode::OtpProofInvalid, m);
        if proof.application_id != a.id.as_str() {
            return Err(bad("the OTP proof is for another application"));
        }
        let reserved = self.reserved_phone(customer).await?;
        if proof.phone != *reserved.expose() {
            return Err(bad("the OTP went to a phone other than the reserved one"));
        }
        if !proof.otp_id.starts_with("otp_") {
            return Err(bad("otp_id: an otp_ id"));
        }
        let at = time::OffsetDateTime::parse(
            &proof.verified_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|_| bad("verified_at: RFC 3339"))?;
        let now = self.clock.now();
        let fresh = at >= a.created_at
            && at <= now + time::Duration::seconds(5)
            && now - at <= time::Duration::seconds(OTP_PROOF_MAX_AGE_SECS);
        if !fresh {
            return Err(bad("the OTP was not verified during this application"));
        }
        Ok(())
    }

    async fn same_name(&self, customer: &CustomerId, name: &str) -> Result<bool, ServiceError> {
        let c = self
            .store
            .bank_customer(customer)
            .await?
            .ok_or_else(|| ServiceError::internal(std::io::Error::other("customer gone")))?;
        let on_record = self
            .vault
            .open_text(&CUSTOMER_NAME, c.id.as_str(), &c.name_sealed)
            .await?;
        let (Ok(a), Ok(b)) = (
            PersonName::parse(on_record.expose()),
            PersonName::parse(name),
        ) else {
            return Ok(false);
        };
        Ok(a.matches(&b))
    }

    async fn reject<T>(
        &self,
        a: &StoredBankApplication,
        reason: ErrorCode,
    ) -> Result<T, ServiceError> {
        let mut next = a.clone();
        next.state = a.state.decided(Err(reason))?;
        next.updated_at = self.clock.now();
        let event = Happened::CardReview {
            application_id: a.id.clone(),
            state: next.state.stage(),
            reason: Some(reason),
        }
        .to(Destination::Internal, next.updated_at);
        // A racing call decided it first: its decision stands.
        if !self.store.bank_application_update(&next, &[event]).await? {
            tracing::info!(application.id = %a.id, "a racing call decided the application");
        }
        Err(refused(reason, refusal_message(reason)))
    }

    /// Makes the card, its agreement and its token, and writes them with
    /// the decided application in one transaction.
    async fn issue(
        &self,
        a: &StoredBankApplication,
        product: &CardProduct,
        applicant: &Applicant,
        req: &ResubmitCardApplication,
    ) -> Result<CardIssued, ServiceError> {
        let now = self.clock.now();
        for _ in 0..ISSUE_ATTEMPTS {
            let parts = self.card_parts(a, product, applicant, req, now).await?;
            let mut next = a.clone();
            next.state = a.state.decided(Ok(()))?;
            next.customer_id = Some(parts.card.customer_id.clone());
            next.card_id = Some(parts.card.id.to_string());
            next.token_id = Some(parts.token.id.to_string());
            next.agreement_id = Some(parts.agreement.id.to_string());
            next.updated_at = now;
            let event = Happened::CardReview {
                application_id: a.id.clone(),
                state: next.state.stage(),
                reason: None,
            }
            .to(Destination::Internal, now);
            let issue = CardIssue {
                new_customer: parts.new_customer.as_ref(),
                card: &parts.card,
                account: &parts.account,
                agreement: &parts.agreement,
                token: &parts.token,
                max_per_person: product.max_per_person,
            };
            match self
                .store
                .bank_application_issue(&next, issue, &[event])
                .await?
            {
                IssueOutcome::Issued => {
                    tracing::info!(application.id = %a.id, card.id = %parts.card.id,
                        token.id = %parts.token.id, "virtual card issued");
                    return self.issued_answer(&next, req).await;
                }
                IssueOutcome::Collision => continue,
                IssueOutcome::LimitReached => {
                    return self.reject(a, ErrorCode::CardLimitReached).await
                }
                IssueOutcome::Stale => {
                    // A racing call decided it: answer as it did.
                    let now_stored =
                        self.store.bank_application(&a.id).await?.ok_or_else(|| {
                            ServiceError::internal(std::io::Error::other("application gone"))
                        })?;
                    return match now_stored.state {
                        ReviewState::Issued => self.issued_answer(&now_stored, req).await,
                        ReviewState::Rejected { reason } => {
                            Err(refused(reason, refusal_message(reason)))
                        }
                        _ => Err(refused(
                            ErrorCode::ApplicationStep,
                            "the application changed meanwhile; send it again",
                        )),
                    };
                }
            }
        }
        Err(ServiceError::internal(std::io::Error::other(
            "generated numbers kept colliding",
        )))
    }

    async fn card_parts(
        &self,
        a: &StoredBankApplication,
        product: &CardProduct,
        applicant: &Applicant,
        req: &ResubmitCardApplication,
        now: Timestamp,
    ) -> Result<CardParts, ServiceError> {
        let new_customer = match &a.customer_id {
            Some(_) => None,
            None => Some(self.first_card_customer(applicant, now).await?),
        };
        let customer_id = a
            .customer_id
            .clone()
            .or_else(|| new_customer.as_ref().map(|c| c.id.clone()))
            .expect("a customer, existing or new");
        let pan = {
            let prefix = &product.bins.prefixes[0];
            let length = product.bins.lengths[0];
            let serial: u64 =
                rand::rngs::OsRng.gen_range(0..10u64.pow((length - prefix.len() - 1) as u32));
            BinRange::make_pan(prefix, serial, length)
        };
        let expiry = {
            let date = now.date();
            Expiry::new(
                u8::from(date.month()),
                u16::try_from(date.year()).unwrap_or(2000) + u16::from(product.validity_years),
            )?
        };
        let (card, account) = self
            .card_with_account(NewCardParts {
                customer: customer_id.clone(),
                pan: &pan,
                card_type: product.card_type,
                expiry: &expiry,
                currency: Currency::CNY,
                credit_limit_minor: product.credit_limit_minor,
                card_code: Some(card_code().as_str().to_owned()),
                product: Some(product.id.clone()),
            })
            .await;
        let card_id = card.id.clone();
        let agreement_id = QuickPayAgreementId::generate();
        let number = agreement_number();
        let agreement = StoredAgreement {
            number_sealed: self
                .vault
                .seal(
                    &AGREEMENT_NUMBER,
                    agreement_id.as_str(),
                    number.expose().as_bytes(),
                )
                .await,
            number_index: self
                .keys
                .index
                .index(IndexPurpose::Agreement, number.expose()),
            card_id: card_id.clone(),
            customer_id,
            wallet_id: a.wallet_id.clone(),
            binding_id: a.binding_id.clone(),
            status: AgreementStatus::Active,
            created_at: now,
            id: agreement_id,
        };
        let domain = TokenDomain {
            wallet: a.wallet_id.parse().map_err(ServiceError::internal)?,
            device_id: req.device_id.clone(),
            channels: vec![TokenChannel::Nfc, TokenChannel::Online],
        };
        let (token, _number) = self.vault_token_for(&card, &domain, now).await?;
        Ok(CardParts {
            new_customer,
            card,
            account,
            agreement,
            token,
        })
    }

    /// A first-card applicant becomes a customer of the bank, with no bank
    /// app login yet (an unusable password hash: they set one at the bank).
    async fn first_card_customer(
        &self,
        applicant: &Applicant,
        now: Timestamp,
    ) -> Result<StoredCustomer, ServiceError> {
        let id = CustomerId::generate();
        let personal = self.protector();
        let name = PersonName::parse(&applicant.name)?;
        let id_number = IdNumber::parse(&applicant.id_number)?;
        let phone: PhoneNumber = applicant.phone.parse().map_err(ServiceError::internal)?;
        let name = personal.shown(&CUSTOMER_NAME, id.as_str(), &name).await;
        let id_number = personal
            .indexed(&CUSTOMER_ID_NUMBER, id.as_str(), &id_number)
            .await;
        let phone = personal.indexed(&CUSTOMER_PHONE, id.as_str(), &phone).await;
        Ok(StoredCustomer {
            username: format!("vc-{}", id.as_str()),
            password_hash: paybridge_crypto::password::UNUSABLE_HASH.to_owned(),
            name_sealed: name.sealed,
            name_masked: name.masked,
            id_number_sealed: id_number.sealed,
            id_number_index: id_number.index,
            phone_sealed: phone.sealed,
            phone_index: phone.index,
            phone_masked: phone.masked,
            created_at: now,
            id,
        })
    }

    /// A fresh vault token for `card` in `domain`, not yet stored.
    async fn vault_token_for(
        &self,
        card: &StoredCard,
        domain: &TokenDomain,
        now: Timestamp,
    ) -> Result<(StoredVaultToken, Pan), ServiceError> {
        let number = token_number(&self.cards()?.token_bins, random_digit);
        let id = CardTokenId::generate();
        let token = StoredVaultToken {
            token_index: self.keys.index.index(IndexPurpose::Token, number.expose()),
            token_sealed: self
                .vault
                .seal(&VAULT_TOKEN, id.as_str(), number.expose().as_bytes())
                .await,
            card_id: card.id.clone(),
            wallet_id: domain.wallet.to_string(),
            device_id: domain.device_id.clone(),
            channels: channels_text(&domain.channels),
            psn: TOKEN_PSN.to_owned(),
            expiry: card.expiry.clone(),
            state: TokenState::Active,
            created_at: now,
            updated_at: now,
            version: 0,
            id,
        };
        Ok((token, number))
    }

    /// The answer for an issued application, rebuilt from what was stored
    /// (a resubmission sent again gets the same card and token; the key
    /// material is sealed afresh to the same secure element).
    async fn issued_answer(
        &self,
        a: &StoredBankApplication,
        req: &ResubmitCardApplication,
    ) -> Result<CardIssued, ServiceError> {
        let missing =
            || ServiceError::internal(std::io::Error::other("issued application incomplete"));
        let card_id: CardId = a
            .card_id
            .as_deref()
            .ok_or_else(missing)?
            .parse()
            .map_err(ServiceError::internal)?;
        let token_id: CardTokenId = a
            .token_id
            .as_deref()
            .ok_or_else(missing)?
            .parse()
            .map_err(ServiceError::internal)?;
        let card = self.store.bank_card(&card_id).await?.ok_or_else(missing)?;
        let token = self
            .store
            .vault_token(&token_id)
            .await?
            .ok_or_else(missing)?;
        if token.device_id != req.device_id {
            return Err(refused(
                ErrorCode::IdempotencyKeyReused,
                "this application's token was issued to another device",
            ));
        }
        let agreement = self
            .store
            .agreement_by_binding(&a.binding_id)
            .await?
            .ok_or_else(missing)?;
        let number = self
            .vault
            .open_text(
                &AGREEMENT_NUMBER,
                agreement.id.as_str(),
                &agreement.number_sealed,
            )
            .await?;
        let token_number = self
            .vault
            .open_text(&VAULT_TOKEN, token.id.as_str(), &token.token_sealed)
            .await?;
        let pan_shaped = Pan::parse(token_number.expose()).map_err(ServiceError::internal)?;
        let material = TokenKeyMaterial {
            token_id: token.id.to_string(),
            token: token_number.expose().clone(),
            psn: token.psn.clone(),
            expiry: token.expiry.clone(),
            mk_ac: self
                .cards()?
                .token_master_key(&pan_shaped)?
                .expose()
                .clone(),
        };
        let plain = Zeroizing::new(serde_json::to_vec(&material).expect("plain data serialises"));
        let key_box = hpke_box::seal_to(
            &req.secure_element_key,
            TOKEN_KEYS_INFO,
            token.id.as_str().as_bytes(),
            &plain,
        )
        .map_err(|_| {
            refused(
                ErrorCode::InvalidRequest,
                "secure_element_key: an X25519 public key, base64url",
            )
        })?;
        Ok(CardIssued {
            application_id: a.id.to_string(),
            bank_name: self.name.clone(),
            card_code: card.card_code.clone().ok_or_else(missing)?,
            card_type: card.card_type.as_str().to_owned(),
            last4: card.last4.clone(),
            token_id: token.id.to_string(),
            token: token_number.expose().clone(),
            agreement_id: agreement.id.to_string(),
            agreement_number: number.expose().clone(),
            key_box,
        })
    }

    /// Tokenisation (主卡号的标记化): a new token for a card in a domain,
    /// stored in the vault. Returns the token's id and number.
    pub async fn tokenise(
        &self,
        card_id: &CardId,
        domain: &TokenDomain,
    ) -> Result<(CardTokenId, Secret<String>), ServiceError> {
        let card = self
            .store
            .bank_card(card_id)
            .await?
            .ok_or_else(|| refused(ErrorCode::NotFound, "no such card"))?;
        if card.status != CardStatus::Active {
            return Err(refused(ErrorCode::CardInvalid, "the card is not active"));
        }
        let now = self.clock.now();
        for _ in 0..ISSUE_ATTEMPTS {
            let (token, number) = self.vault_token_for(&card, domain, now).await?;
            if self.store.vault_token_insert(&token, &[]).await? {
                return Ok((token.id, Secret::new(number.expose().to_owned())));
            }
        }
        Err(ServiceError::internal(std::io::Error::other(
            "token numbers kept colliding",
        )))
    }

    /// De-tokenisation: the token with this number and its card's PAN, if
    /// the vault has it. Only the issuer can do this.
    pub async fn detokenise(&self, token: &str) -> Result<Option<FoundToken>, ServiceError> {
        let index = self.keys.index.index(IndexPurpose::Token, token);
        let Some(found) = self.store.vault_detokenise(&index).await? else {
            return Ok(None);
        };
        let pan = self
            .vault
            .open_text(&CARD_PAN, found.token.card_id.as_str(), &found.pan_sealed)
            .await?;
        Ok(Some(FoundToken {
            pan: Pan::parse(pan.expose()).map_err(ServiceError::internal)?,
            token: found.token,
        }))
    }
}

struct CardParts {
    new_customer: Option<StoredCustomer>,
    card: StoredCard,
    account: Account,
    agreement: StoredAgreement,
    token: StoredVaultToken,
}

/// What the bank does to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankTokenAction {
    /// A hold (fraud, a phone reported lost): only the bank lifts it.
    Suspend,
    Resume,
    /// Deactivated for good.
    Delete,
}

/// A vault token as its card's owner sees it (never the full number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    pub id: CardTokenId,
    pub card_id: CardId,
    pub token_last4: String,
    pub state: TokenState,
    pub wallet: String,
    pub channels: Vec<String>,
    pub created_at: Timestamp,
}

impl Issuer {
    async fn token_view(&self, t: &StoredVaultToken) -> Result<TokenView, ServiceError> {
        let number = self
            .vault
            .open_text(&VAULT_TOKEN, t.id.as_str(), &t.token_sealed)
            .await?;
        let n = number.expose();
        Ok(TokenView {
            id: t.id.clone(),
            card_id: t.card_id.clone(),
            token_last4: n[n.len().saturating_sub(4)..].to_owned(),
            state: t.state,
            wallet: t.wallet_id.clone(),
            channels: t.channels.split(',').map(str::to_owned).collect(),
            created_at: t.created_at,
        })
    }

    /// The tokens of one of the customer's cards.
    pub async fn card_tokens(
        &self,
        customer: &CustomerId,
        card: &CardId,
    ) -> Result<Vec<TokenView>, ServiceError> {
        self.store
            .bank_card(card)
            .await?
            .filter(|c| &c.customer_id == customer)
            .ok_or_else(|| refused(ErrorCode::NotFound, "no such card"))?;
        let mut views = Vec::new();
        for t in self.store.vault_tokens_of_card(card).await? {
            views.push(self.token_view(&t).await?);
        }
        Ok(views)
    }

    /// The bank moves one of the customer's tokens; the wallet is told.
    pub async fn bank_token_action(
        &self,
        customer: &CustomerId,
        id: &CardTokenId,
        action: BankTokenAction,
    ) -> Result<TokenView, ServiceError> {
        let t = self
            .store
            .vault_token(id)
            .await?
            .ok_or_else(|| refused(ErrorCode::NotFound, "no such token"))?;
        self.store
            .bank_card(&t.card_id)
            .await?
            .filter(|c| &c.customer_id == customer)
            .ok_or_else(|| refused(ErrorCode::NotFound, "no such token"))?;
        let by = TokenActor::Issuer;
        let state = match action {
            BankTokenAction::Suspend => t.state.suspend(by)?,
            BankTokenAction::Resume => t.state.resume(by)?,
            BankTokenAction::Delete => t.state.deactivate(by)?,
        };
        let moved = self.move_vault_token(t, state, true).await?;
        self.token_view(&moved).await
    }

    /// Saves a vault token's state with its events; `tell_wallet` when the
    /// bank moved it (the wallet moved it itself otherwise).
    async fn move_vault_token(
        &self,
        t: StoredVaultToken,
        state: TokenState,
        tell_wallet: bool,
    ) -> Result<StoredVaultToken, ServiceError> {
        let now = self.clock.now();
        let mut next = t.clone();
        next.state = state;
        next.updated_at = now;
        let card_code = self
            .store
            .bank_card(&t.card_id)
            .await?
            .and_then(|c| c.card_code)
            .unwrap_or_default();
        let fact = Happened::CardToken {
            token_id: t.id.clone(),
            card_code,
            state: state.stage(),
            by: state.actor(),
        };
        let mut events = vec![fact.to(Destination::Internal, now)];
        if tell_wallet {
            let wallet: PartnerId = t.wallet_id.parse().map_err(ServiceError::internal)?;
            events.push(fact.to(Destination::Partner(wallet), now));
        }
        if !self.store.vault_token_update(&next, &events).await? {
            return Err(refused(
                ErrorCode::TokenInactive,
                "the token changed meanwhile; read it again",
            ));
        }
        tracing::info!(token.id = %t.id, state = state.stage().as_str(), "vault token changed");
        Ok(StoredVaultToken {
            version: next.version + 1,
            ..next
        })
    }

    /// The wallet moved a token for the cardholder (`card_token.changed`):
    /// the vault follows. Idempotent: a state already held is no change;
    /// a change the rules forbid (lifting the bank's hold) is ignored.
    pub(crate) async fn token_changed_by_wallet(
        &self,
        wallet: &PartnerId,
        change: &paybridge_api::virtual_card::TokenStateChange,
    ) -> Result<(), ServiceError> {
        let Ok(id) = change.token_id.parse::<CardTokenId>() else {
            return Ok(());
        };
        let Some(t) = self
            .store
            .vault_token(&id)
            .await?
            .filter(|t| t.wallet_id == wallet.as_str())
        else {
            return Ok(());
        };
        let Some(stage) = <TokenStage as paybridge_domain::WireName>::from_wire_name(&change.state)
        else {
            return Ok(());
        };
        if stage == t.state.stage() || t.state.stage() == TokenStage::Deactivated {
            return Ok(());
        }
        let by = TokenActor::Cardholder;
        let next = match stage {
            TokenStage::Active => t.state.resume(by),
            TokenStage::Suspended => t.state.suspend(by),
            TokenStage::Deactivated => t.state.deactivate(by),
        };
        match next {
            Ok(state) => {
                self.move_vault_token(t, state, false).await?;
            }
            Err(e) => {
                tracing::warn!(token.id = %id, error = %e.message, "the wallet's token change does not apply")
            }
        }
        Ok(())
    }
}
