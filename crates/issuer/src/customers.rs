//! The bank's customers and their cards, and the bank app's sessions.
//!
//! A customer's name, ID number and reserved phone, and a card's PAN, are
//! sealed before they reach the store; look-ups go by blind index; what
//! leaves this module for display is masked (a card shows its last four
//! digits only).

use paybridge_crypto::token::{generate_token, well_formed_token, TokenKind};
use paybridge_crypto::IndexPurpose;
use paybridge_crypto::Secret;
use paybridge_domain::card::{mask_last4, BinRange, CardStatus, CardType, Expiry, Pan};
use paybridge_domain::credentials::{check_login_password, LOGIN_LOCK_SECS};
use paybridge_domain::event::Destination;
use paybridge_domain::happened::Happened;
use paybridge_domain::identity::{IdNumber, PersonName};
use paybridge_domain::ids::{CardId, CustomerId, SessionId};
use paybridge_domain::ledger::{
    Account, AccountFlags, AccountId, TransferId, TransferKind, TransferRequest,
};
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::{Currency, ErrorCode, Money, ServiceError, Timestamp};
use paybridge_kernel::ledger::derived_id;
use paybridge_kernel::login::{self, LoginTry};
use paybridge_store::keys::SealedColumn;
use paybridge_store::{BankCreate, StoredCard, StoredCustomer, StoredSession};

use crate::Issuer;

/// A bank app session lasts half an hour, as banking apps' do.
pub const BANK_SESSION_TTL_SECS: i64 = 30 * 60;

const fn col(table: &'static str, column: &'static str) -> SealedColumn {
    SealedColumn {
        table,
        id_column: "id",
        column,
    }
}
pub const CUSTOMER_NAME: SealedColumn = col("bank_customers", "name_sealed");
pub const CUSTOMER_ID_NUMBER: SealedColumn = col("bank_customers", "id_number_sealed");
pub const CUSTOMER_PHONE: SealedColumn = col("bank_customers", "phone_sealed");
pub const CARD_PAN: SealedColumn = col("bank_cards", "pan_sealed");

/// A new customer, as the bank's back office (or a seed file) enters them.
#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub username: String,
    pub password: Secret<String>,
    pub name: PersonName,
    pub id_number: IdNumber,
    pub phone: PhoneNumber,
}

#[derive(Debug, Clone)]
pub struct NewCard {
    /// `None`: the bank picks a number in its BIN range.
    pub pan: Option<Pan>,
    pub card_type: CardType,
    pub expiry: Expiry,
    /// Money put on the card's account when it is opened.
    pub opening_balance: Money,
    /// For credit cards: how far below zero the account may go.
    pub credit_limit_minor: i64,
}

/// A card about to be made, whatever made it (a seed, the bank app, a
/// virtual card's issue).
pub(crate) struct NewCardParts<'a> {
    pub customer: CustomerId,
    pub pan: &'a Pan,
    pub card_type: CardType,
    pub expiry: &'a Expiry,
    pub currency: Currency,
    pub credit_limit_minor: i64,
    pub card_code: Option<String>,
    pub product: Option<String>,
}

/// What the card's owner sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardView {
    pub id: CardId,
    pub bank_name: String,
    pub card_type: CardType,
    pub last4: String,
    pub masked: String,
    pub expiry: String,
    pub status: CardStatus,
    pub balance: Money,
    pub available: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerView {
    pub id: CustomerId,
    pub name_masked: String,
    pub phone_masked: String,
}

#[derive(Debug)]
pub struct OpenedBankSession {
    pub id: SessionId,
    pub token: Secret<String>,
    pub customer: CustomerView,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankSessionCustomer {
    pub session_id: SessionId,
    pub customer_id: CustomerId,
}

fn check_username(u: &str) -> Result<(), ServiceError> {
    let ok = (3..=32).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::rejected(
            ErrorCode::InvalidRequest,
            "a bank login name has 3 to 32 characters: a-z, 0-9, '.', '_' or '-'",
        ))
    }
}

impl Issuer {
    /// The bank's settlement account in `currency`: the other side of every
    /// deposit and card payment. It may go below zero (it is the bank's).
    pub async fn settlement_account(&self, currency: Currency) -> Result<AccountId, ServiceError> {
        let id = derived_id::<paybridge_domain::ledger::AccountKind>(&format!(
            "{}:settlement:{}",
            self.id,
            currency.code()
        ));
        let account = Account::new(id.clone(), currency, AccountFlags::default(), 0);
        self.store
            .ledger_open_account(&account, self.clock.now())
            .await?;
        Ok(id)
    }

    pub async fn create_customer(&self, c: &NewCustomer) -> Result<StoredCustomer, ServiceError> {
        check_username(&c.username)?;
        check_login_password(c.password.expose())?;
        let id = CustomerId::generate();
        let password_hash = self.hash_password(c.password.expose()).await?;
        let personal = self.protector();
        let name = personal.shown(&CUSTOMER_NAME, id.as_str(), &c.name).await;
        let id_number = personal
            .indexed(&CUSTOMER_ID_NUMBER, id.as_str(), &c.id_number)
            .await;
        let phone = personal
            .indexed(&CUSTOMER_PHONE, id.as_str(), &c.phone)
            .await;
        let customer = StoredCustomer {
            username: c.username.clone(),
            password_hash,
            name_sealed: name.sealed,
            name_masked: name.masked,
            id_number_sealed: id_number.sealed,
            id_number_index: id_number.index,
            phone_sealed: phone.sealed,
            phone_index: phone.index,
            phone_masked: phone.masked,
            created_at: self.clock.now(),
            id,
        };
        match self.store.bank_customer_create(&customer).await? {
            BankCreate::Created => Ok(customer),
            BankCreate::Duplicate => Err(ServiceError::rejected(
                ErrorCode::IdentityInUse,
                "a customer with this login name or ID number exists",
            )),
        }
    }

    /// Issues a card on a new ledger account, funded from the settlement account.
    pub async fn issue_card(
        &self,
        customer: &CustomerId,
        new: &NewCard,
    ) -> Result<StoredCard, ServiceError> {
        let pan = match &new.pan {
            Some(pan) => pan.clone(),
            None => {
                let prefix = &self.bins.prefixes[0];
                let length = *self
                    .bins
                    .lengths
                    .iter()
                    .min()
                    .expect("a BIN range has lengths");
                let serial: u64 =
                    rand::random::<u64>() % 10u64.pow((length - prefix.len() - 1) as u32);
                BinRange::make_pan(prefix, serial, length)
            }
        };
        if !self.bins.admits(&pan) {
            return Err(ServiceError::rejected(
                ErrorCode::CardInvalid,
                format!("{} issues cards in its own BIN range only", self.name),
            ));
        }
        if new.expiry.is_expired(self.clock.now()) {
            return Err(ServiceError::rejected(
                ErrorCode::CardInvalid,
                "the expiry is in the past",
            ));
        }
        if new.opening_balance.amount_minor < 0 || new.credit_limit_minor < 0 {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "opening balance and credit limit cannot be negative",
            ));
        }
        self.store
            .bank_customer(customer)
            .await?
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such customer"))?;
        let currency = new.opening_balance.currency;
        let settlement = self.settlement_account(currency).await?;
        let (card, account) = self
            .card_with_account(NewCardParts {
                customer: customer.clone(),
                pan: &pan,
                card_type: new.card_type,
                expiry: &new.expiry,
                currency,
                credit_limit_minor: new.credit_limit_minor,
                card_code: None,
                product: None,
            })
            .await;
        let id = card.id.clone();
        if self.store.bank_card_create(&card, &account).await? == BankCreate::Duplicate {
            return Err(ServiceError::rejected(
                ErrorCode::CardInvalid,
                "a card with this number exists",
            ));
        }
        if new.opening_balance.amount_minor > 0 {
            let transfer = TransferRequest {
                id: format!("card-opening:{id}")
                    .parse::<TransferId>()
                    .expect("valid transfer id"),
                debit_account: settlement,
                credit_account: account.id.clone(),
                amount: new.opening_balance,
                kind: TransferKind::Posted,
            };
            let event = Happened::CardFunded {
                card_id: id.to_string(),
                amount: new.opening_balance,
            }
            .to(Destination::Internal, self.clock.now());
            self.ledger().transfer(&transfer, &[event]).await?;
        }
        tracing::info!(card.id = %id, customer.id = %customer, "card issued");
        Ok(card)
    }

    /// A new card and its ledger account (never below zero but for the
    /// credit limit), the PAN sealed and blind-indexed: what both a plain
    /// card and a virtual card's issue store.
    pub(crate) async fn card_with_account(&self, new: NewCardParts<'_>) -> (StoredCard, Account) {
        let id = CardId::generate();
        let account = Account::new(
            AccountId::generate(),
            new.currency,
            AccountFlags {
                debits_must_not_exceed_credits: true,
                credits_must_not_exceed_debits: false,
            },
            new.credit_limit_minor,
        );
        let card = StoredCard {
            customer_id: new.customer,
            pan_sealed: self
                .vault
                .seal(&CARD_PAN, id.as_str(), new.pan.expose().as_bytes())
                .await,
            pan_index: self.keys.index.index(IndexPurpose::Pan, new.pan.expose()),
            last4: new.pan.last4().to_owned(),
            card_type: new.card_type,
            expiry: new.expiry.to_string(),
            account_id: account.id.clone(),
            status: CardStatus::Active,
            created_at: self.clock.now(),
            id,
            card_code: new.card_code,
            product: new.product,
        };
        (card, account)
    }

    async fn card_view(&self, card: &StoredCard) -> Result<CardView, ServiceError> {
        let account = self.ledger().account(&card.account_id).await?;
        Ok(CardView {
            id: card.id.clone(),
            bank_name: self.name.clone(),
            card_type: card.card_type,
            masked: mask_last4(&card.last4),
            last4: card.last4.clone(),
            expiry: card.expiry.clone(),
            status: card.status,
            balance: account.balance(),
            // What the customer can spend: the money, less holds, plus any credit line.
            available: Money::new(
                account.available().amount_minor + account.overdraft_limit_minor,
                account.currency,
            ),
        })
    }

    pub async fn customer_cards(
        &self,
        customer: &CustomerId,
        limit: Option<u32>,
        after: Option<&CardId>,
    ) -> Result<(Vec<CardView>, Option<CardId>), ServiceError> {
        let limit = paybridge_domain::page::page_limit(limit)?;
        let page = self.store.bank_cards_page(customer, limit, after).await?;
        let (cards, next) =
            paybridge_domain::page::paged(page, limit, |c| &c.id, "a card of this customer")?;
        let mut out = Vec::new();
        for card in &cards {
            out.push(self.card_view(card).await?);
        }
        Ok((out, next))
    }

    /// One of the customer's cards; another customer's card is "not found".
    pub async fn customer_card(
        &self,
        customer: &CustomerId,
        card: &CardId,
    ) -> Result<CardView, ServiceError> {
        let card = self
            .store
            .bank_card(card)
            .await?
            .filter(|c| &c.customer_id == customer)
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such card"))?;
        self.card_view(&card).await
    }

    pub async fn customer_view(&self, id: &CustomerId) -> Result<CustomerView, ServiceError> {
        let c = self
            .store
            .bank_customer(id)
            .await?
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such customer"))?;
        Ok(CustomerView {
            id: c.id,
            name_masked: c.name_masked,
            phone_masked: c.phone_masked,
        })
    }

    /// Bank app login with the customer's sandbox credentials. Unknown
    /// names answer like wrong passwords, in the same time.
    pub async fn bank_login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<OpenedBankSession, ServiceError> {
        let login_index = self.keys.index.index(IndexPurpose::LoginUsername, username);
        let customer = self.store.bank_customer_by_username(username).await?;
        let correct = self
            .verify_password(customer.as_ref().map(|c| c.password_hash.clone()), password)
            .await
            && customer.is_some();
        self.judge_login(&login_index, correct).await?;
        let customer = customer.expect("a correct login has a customer");
        let now = self.clock.now();
        let token = generate_token(TokenKind::Session);
        let session = StoredSession {
            id: SessionId::generate(),
            token_hash: self.keys.tokens.hash(token.expose()),
            subject: customer.id.as_str().to_owned(),
            device_id: None,
            key_thumbprint: None,
            created_at: now,
            expires_at: now + time::Duration::seconds(BANK_SESSION_TTL_SECS),
            revoked_at: None,
        };
        self.store.session_create(&session).await?;
        tracing::info!(customer.id = %customer.id, session.id = %session.id, "bank app session opened");
        Ok(OpenedBankSession {
            id: session.id,
            token,
            customer: CustomerView {
                id: customer.id,
                name_masked: customer.name_masked,
                phone_masked: customer.phone_masked,
            },
            expires_at: session.expires_at,
        })
    }

    async fn judge_login(&self, login_index: &str, correct: bool) -> Result<(), ServiceError> {
        login::judge(
            self.store.as_ref(),
            self.clock.as_ref(),
            LoginTry {
                login_index,
                correct,
                lock_secs: LOGIN_LOCK_SECS,
                wrong: "wrong login name or password",
            },
        )
        .await
    }

    pub async fn bank_authenticate(
        &self,
        token: &str,
    ) -> Result<BankSessionCustomer, ServiceError> {
        let invalid = || {
            ServiceError::rejected(
                ErrorCode::SessionInvalid,
                "the session is unknown, expired or revoked; log in again",
            )
        };
        if !well_formed_token(TokenKind::Session, token) {
            return Err(invalid());
        }
        let session = self
            .store
            .session_by_token(&self.keys.tokens.hash(token))
            .await?
            .filter(|s| s.is_live(self.clock.now()))
            .ok_or_else(invalid)?;
        Ok(BankSessionCustomer {
            session_id: session.id,
            customer_id: session.subject.parse().map_err(|_| invalid())?,
        })
    }

    pub async fn bank_logout(&self, s: &BankSessionCustomer) -> Result<(), ServiceError> {
        self.store
            .session_revoke(&s.session_id, s.customer_id.as_str(), self.clock.now())
            .await?;
        Ok(())
    }
}
