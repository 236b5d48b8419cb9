//! Flow F1, the bank's side: the bank app starts binding a card to the
//! wallet (QR or push), and the bank opens the quick-pay agreement when the
//! wallet reports the customer's OTP passed. The PAN never leaves the bank:
//! the wallet gets the card's id, type and last four digits.

use paybridge_api::partner::{
    AccountLookup, AccountLookupAnswer, AccountRegistered, AccountRegistration, ActivateBinding,
    AgreementIssued, BindingAddress, BindingAgreement, BindingOffer, BindingRequestAnswer,
    BindingState as PartnerBindingState,
};
use paybridge_crypto::IndexPurpose;
use paybridge_crypto::Secret;
use paybridge_domain::agreement::AgreementStatus;
use paybridge_domain::card::CardStatus;
use paybridge_domain::event::Destination;
use paybridge_domain::happened::Happened;
use paybridge_domain::ids::{CardId, CustomerId, QuickPayAgreementId};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::{ErrorCode, ServiceError, Timestamp};
use paybridge_store::keys::SealedColumn;
use paybridge_store::{StoredAgreement, StoredOffer};
use rand::Rng;

use crate::customers::{CUSTOMER_ID_NUMBER, CUSTOMER_NAME, CUSTOMER_PHONE};
use crate::Issuer;

/// How long the bank honours a binding it offered (longer than the
/// wallet's own binding lifetime: the wallet's expiry decides first).
pub const BINDING_OFFER_TTL_SECS: i64 = 30 * 60;

pub const AGREEMENT_NUMBER: SealedColumn = SealedColumn {
    table: "quick_pay_agreements",
    id_column: "id",
    column: "number_sealed",
};

/// How the bank app asks the wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingMode {
    /// Show a QR code the wallet app scans.
    Qr,
    /// Push a binding message to the customer's wallet app.
    Push,
}

/// What "open the wallet and bind" did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationStart {
    Registered {
        account_id: String,
        binding_id: String,
    },
    /// The customer has a wallet account: a binding message was pushed (if
    /// the account matched on phone and identity).
    ExistingAccount { binding_id: Option<String> },
}

/// What the wallet answered.
#[derive(Debug, Clone)]
pub enum BindingStart {
    Qr(BindingAddress),
    Pushed {
        binding_id: String,
        expires_at: String,
    },
    /// No wallet account has this phone and identity: offer registration.
    NoWalletUser,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementView {
    pub id: QuickPayAgreementId,
    pub card_id: CardId,
    pub last4: String,
    pub wallet_id: String,
    pub binding_id: String,
    pub status: AgreementStatus,
    pub created_at: Timestamp,
}

/// A fresh quick-pay agreement number: `QP` and 20 random digits.
pub(crate) fn agreement_number() -> Secret<String> {
    let mut rng = rand::rngs::OsRng;
    let digits: String = (0..20)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    Secret::new(format!("QP{digits}"))
}

impl Issuer {
    fn wallet(&self) -> Result<&paybridge_client::PartnerClient, ServiceError> {
        self.wallets.iter().next().ok_or_else(|| {
            ServiceError::rejected(ErrorCode::PartnerUnknown, "no wallet is configured")
        })
    }

    /// What the wallet may know of one of the customer's cards and of them.
    async fn offer_for(
        &self,
        customer: &CustomerId,
        card: &CardId,
    ) -> Result<BindingOffer, ServiceError> {
        let card = self
            .store
            .bank_card(card)
            .await?
            .filter(|c| &c.customer_id == customer)
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such card"))?;
        let c = self
            .store
            .bank_customer(customer)
            .await?
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such customer"))?;
        let id = c.id.as_str();
        Ok(BindingOffer {
            card_ref: card.id.to_string(),
            holder_name: self
                .vault
                .open_text(&CUSTOMER_NAME, id, &c.name_sealed)
                .await?
                .expose()
                .clone(),
            holder_id_number: self
                .vault
                .open_text(&CUSTOMER_ID_NUMBER, id, &c.id_number_sealed)
                .await?
                .expose()
                .clone(),
            phone: self
                .vault
                .open_text(&CUSTOMER_PHONE, id, &c.phone_sealed)
                .await?
                .expose()
                .clone(),
            bank_name: self.name.clone(),
            card_type: card.card_type.as_str().to_owned(),
            last4: card.last4.clone(),
        })
    }

    /// Keeps the bank's own record of a binding it offered `wallet` for
    /// `card`: only such an offer, unexpired, gets an agreement.
    async fn record_offer(
        &self,
        wallet: &PartnerId,
        customer: &CustomerId,
        card: &CardId,
        binding_id: &str,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        self.store
            .binding_offer_record(&StoredOffer {
                binding_id: binding_id.to_owned(),
                card_id: card.clone(),
                customer_id: customer.clone(),
                wallet_id: wallet.to_string(),
                created_at: now,
                expires_at: now + time::Duration::seconds(BINDING_OFFER_TTL_SECS),
            })
            .await?;
        Ok(())
    }

    /// A card already bound to `wallet` is not offered to it again (the
    /// wallet would refuse the binding; the offer would only pile up).
    async fn refuse_a_card_bound_to(
        &self,
        customer: &CustomerId,
        card: &CardId,
        wallet: &PartnerId,
    ) -> Result<(), ServiceError> {
        let bound = self.store.agreements_of(customer).await?.iter().any(|a| {
            &a.card_id == card
                && a.wallet_id == wallet.as_str()
                && a.status == paybridge_domain::agreement::AgreementStatus::Active
        });
        if bound {
            return Err(ServiceError::rejected(
                ErrorCode::BindingExists,
                "this card is bound to the wallet already; unbind it there first",
            ));
        }
        Ok(())
    }

    /// The bank app's "bind to wallet" on one of the customer's cards.
    pub async fn start_wallet_binding(
        &self,
        customer: &CustomerId,
        card: &CardId,
        mode: BindingMode,
    ) -> Result<BindingStart, ServiceError> {
        let offer = self.offer_for(customer, card).await?;
        let wallet = self.wallet()?;
        self.refuse_a_card_bound_to(customer, card, wallet.peer())
            .await?;
        let key = format!(
            "bind:{}:{}",
            card,
            paybridge_domain::ids::RequestId::generate()
        );
        match mode {
            BindingMode::Qr => {
                let address: BindingAddress = wallet
                    .call(
                        reqwest::Method::POST,
                        "/v1/partner/binding-addresses",
                        Some(&offer),
                        Some(&key),
                    )
                    .await?;
                self.record_offer(wallet.peer(), customer, card, &address.binding_id)
                    .await?;
                Ok(BindingStart::Qr(address))
            }
            BindingMode::Push => {
                let answer: BindingRequestAnswer = wallet
                    .call(
                        reqwest::Method::POST,
                        "/v1/partner/binding-requests",
                        Some(&offer),
                        Some(&key),
                    )
                    .await?;
                match (answer.status.as_str(), answer.binding_id, answer.expires_at) {
                    ("pushed", Some(binding_id), Some(expires_at)) => {
                        self.record_offer(wallet.peer(), customer, card, &binding_id)
                            .await?;
                        Ok(BindingStart::Pushed {
                            binding_id,
                            expires_at,
                        })
                    }
                    _ => Ok(BindingStart::NoWalletUser),
                }
            }
        }
    }

    /// Flow F2: "open the wallet and bind this card". When the customer has
    /// no wallet account the bank registers one with what it verified,
    /// opens the binding's agreement and completes the binding at once;
    /// when they have one, it pushes a binding message instead (flow F1).
    pub async fn start_wallet_registration(
        &self,
        customer: &CustomerId,
        card: &CardId,
    ) -> Result<RegistrationStart, ServiceError> {
        let offer = self.offer_for(customer, card).await?;
        let wallet = self.wallet()?;
        self.refuse_a_card_bound_to(customer, card, wallet.peer())
            .await?;
        let lookup: AccountLookupAnswer = wallet
            .call(
                reqwest::Method::POST,
                "/v1/partner/account-lookups",
                Some(&AccountLookup {
                    phone: offer.phone.clone(),
                    holder_id_number: offer.holder_id_number.clone(),
                }),
                None,
            )
            .await?;
        if lookup.exists {
            let pushed = self
                .start_wallet_binding(customer, card, BindingMode::Push)
                .await?;
            return Ok(RegistrationStart::ExistingAccount {
                binding_id: match pushed {
                    BindingStart::Pushed { binding_id, .. } => Some(binding_id),
                    _ => None,
                },
            });
        }
        let reference = format!("reg:{card}");
        let registered: AccountRegistered = wallet
            .call(
                reqwest::Method::POST,
                "/v1/partner/account-registrations",
                Some(&AccountRegistration {
                    reference: reference.clone(),
                    customer: offer,
                }),
                Some(&reference),
            )
            .await?;
        self.record_offer(wallet.peer(), customer, card, &registered.binding_id)
            .await?;
        let agreement = self
            .activate_binding(
                wallet.peer(),
                &ActivateBinding {
                    binding_id: registered.binding_id.clone(),
                    card_ref: card.to_string(),
                },
            )
            .await?;
        let _: PartnerBindingState = wallet
            .call(
                reqwest::Method::POST,
                &format!("/v1/partner/bindings/{}/agreement", registered.binding_id),
                Some(&BindingAgreement {
                    agreement_number: agreement.agreement_number,
                }),
                Some(&format!("agreement:{}", registered.binding_id)),
            )
            .await?;
        tracing::info!(customer.id = %customer, binding.id = %registered.binding_id, "wallet account registered and card bound");
        Ok(RegistrationStart::Registered {
            account_id: registered.account_id,
            binding_id: registered.binding_id,
        })
    }

    /// The wallet reports a binding's OTP passed: open (or return) its
    /// quick-pay agreement. Idempotent on the binding id.
    pub async fn activate_binding(
        &self,
        wallet: &PartnerId,
        req: &ActivateBinding,
    ) -> Result<AgreementIssued, ServiceError> {
        let not_found = || ServiceError::rejected(ErrorCode::NotFound, "no such card");
        let card_id: CardId = req.card_ref.parse().map_err(|_| not_found())?;
        // A retry of an activation that happened gets its agreement again;
        // anything else must be the bank's own unexpired offer, for this
        // card and this wallet.
        let done = self
            .store
            .agreement_by_binding(&req.binding_id)
            .await?
            .is_some();
        if !done {
            let offer = self
                .store
                .binding_offer(&req.binding_id)
                .await?
                .filter(|o| o.card_id == card_id && o.wallet_id == wallet.as_str())
                .ok_or_else(|| {
                    ServiceError::rejected(ErrorCode::NotFound, "this bank offered no such binding")
                })?;
            if self.clock.now() >= offer.expires_at {
                return Err(ServiceError::rejected(
                    ErrorCode::BindingExpired,
                    "the bank's offer of this binding has expired",
                ));
            }
        }
        let card = self
            .store
            .bank_card(&card_id)
            .await?
            .ok_or_else(not_found)?;
        if card.status != CardStatus::Active {
            return Err(ServiceError::rejected(
                ErrorCode::CardInvalid,
                "the card is not active",
            ));
        }
        let id = QuickPayAgreementId::generate();
        let number = agreement_number();
        let candidate = StoredAgreement {
            number_sealed: self
                .vault
                .seal(&AGREEMENT_NUMBER, id.as_str(), number.expose().as_bytes())
                .await,
            number_index: self
                .keys
                .index
                .index(IndexPurpose::Agreement, number.expose()),
            card_id: card.id.clone(),
            customer_id: card.customer_id.clone(),
            wallet_id: wallet.to_string(),
            binding_id: req.binding_id.clone(),
            status: AgreementStatus::Active,
            created_at: self.clock.now(),
            id,
        };
        let (agreement, created) = self.store.agreement_for_binding(&candidate).await?;
        if agreement.card_id != card.id || agreement.wallet_id != wallet.as_str() {
            return Err(ServiceError::rejected(
                ErrorCode::IdempotencyKeyReused,
                "this binding already has an agreement for another card",
            ));
        }
        if created {
            tracing::info!(agreement.id = %agreement.id, card.id = %card.id, "quick-pay agreement opened");
        }
        let number = self
            .vault
            .open_text(
                &AGREEMENT_NUMBER,
                agreement.id.as_str(),
                &agreement.number_sealed,
            )
            .await?;
        Ok(AgreementIssued {
            agreement_id: agreement.id.to_string(),
            agreement_number: number.expose().clone(),
        })
    }

    pub async fn customer_bindings(
        &self,
        customer: &CustomerId,
        limit: Option<u32>,
        after: Option<&QuickPayAgreementId>,
    ) -> Result<(Vec<AgreementView>, Option<QuickPayAgreementId>), ServiceError> {
        let limit = paybridge_domain::page::page_limit(limit)?;
        let page = self.store.agreements_page(customer, limit, after).await?;
        let (agreements, next) =
            paybridge_domain::page::paged(page, limit, |a| &a.id, "a binding of this customer")?;
        let mut out = Vec::new();
        for a in agreements {
            let last4 = self
                .store
                .bank_card(&a.card_id)
                .await?
                .map(|c| c.last4)
                .unwrap_or_default();
            out.push(AgreementView {
                id: a.id,
                card_id: a.card_id,
                last4,
                wallet_id: a.wallet_id,
                binding_id: a.binding_id,
                status: a.status,
                created_at: a.created_at,
            });
        }
        Ok((out, next))
    }

    /// The customer unbinds in the bank app; the wallet is told.
    pub async fn unbind_from_bank(
        &self,
        customer: &CustomerId,
        id: &QuickPayAgreementId,
    ) -> Result<(), ServiceError> {
        let a = self
            .store
            .agreement(id)
            .await?
            .filter(|a| &a.customer_id == customer)
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such binding"))?;
        let wallet: PartnerId = a.wallet_id.parse().map_err(ServiceError::internal)?;
        let event = Happened::AgreementCancelled {
            binding_id: a.binding_id.clone(),
            card_ref: a.card_id.to_string(),
        }
        .to(Destination::Partner(wallet), self.clock.now());
        self.store
            .agreement_cancel(&a.id, self.clock.now(), &[event])
            .await?;
        Ok(())
    }

    /// The wallet unbound a card (`binding.unbound` event): only that
    /// wallet's agreement for the binding ends.
    pub async fn unbound_by_wallet(
        &self,
        wallet: &PartnerId,
        binding_id: &str,
    ) -> Result<(), ServiceError> {
        let agreement = self
            .store
            .agreement_by_binding(binding_id)
            .await?
            .filter(|a| a.wallet_id == wallet.as_str());
        if let Some(a) = agreement {
            self.store
                .agreement_cancel(&a.id, self.clock.now(), &[])
                .await?;
        }
        Ok(())
    }
}
