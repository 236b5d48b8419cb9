//! The bank's customers and cards. Values arrive sealed by the service (the
//! store never sees a PAN or an ID number in clear); look-ups go by blind
//! index.

use async_trait::async_trait;
use paybridge_domain::card::{CardStatus, CardType};
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::ids::{CardId, CustomerId};
use paybridge_domain::ledger::{Account, AccountId};
use paybridge_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Store;
use crate::error::{corrupt, StoreError};
use crate::ledger::insert_account;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCustomer {
    pub id: CustomerId,
    /// The bank app login name (sandbox credentials).
    pub username: String,
    pub password_hash: String,
    pub name_sealed: String,
    pub name_masked: String,
    pub id_number_sealed: String,
    pub id_number_index: String,
    pub phone_sealed: String,
    pub phone_index: String,
    pub phone_masked: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCard {
    pub id: CardId,
    pub customer_id: CustomerId,
    pub pan_sealed: String,
    pub pan_index: String,
    pub last4: String,
    pub card_type: CardType,
    /// `MM/YY`.
    pub expiry: String,
    pub account_id: AccountId,
    pub status: CardStatus,
    pub created_at: Timestamp,
    /// A virtual card's card code (卡代号, flow F5): its public reference.
    pub card_code: Option<String>,
    /// The card product it was issued as (virtual cards).
    pub product: Option<String>,
}

/// Why a customer or card was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankCreate {
    Created,
    /// The login name, ID number (customer) or PAN (card) is taken.
    Duplicate,
}

#[async_trait]
pub trait BankStore: Send + Sync + std::fmt::Debug {
    async fn bank_customer_create(&self, c: &StoredCustomer) -> Result<BankCreate, StoreError>;
    async fn bank_customer(&self, id: &CustomerId) -> Result<Option<StoredCustomer>, StoreError>;
    async fn bank_customer_by_username(
        &self,
        username: &str,
    ) -> Result<Option<StoredCustomer>, StoreError>;
    async fn bank_customer_by_id_number(
        &self,
        id_number_index: &str,
    ) -> Result<Option<StoredCustomer>, StoreError>;
    /// Creates a card and its ledger account in one transaction.
    async fn bank_card_create(
        &self,
        card: &StoredCard,
        account: &Account,
    ) -> Result<BankCreate, StoreError>;
    async fn bank_card(&self, id: &CardId) -> Result<Option<StoredCard>, StoreError>;
    async fn bank_card_by_pan(&self, pan_index: &str) -> Result<Option<StoredCard>, StoreError>;
    /// A customer's cards, oldest first.
    async fn bank_cards_of(&self, customer: &CustomerId) -> Result<Vec<StoredCard>, StoreError>;
    /// A page of the customer's cards, oldest first, after the card
    /// `after`; `None` when `after` is not one of its cards.
    async fn bank_cards_page(
        &self,
        customer: &CustomerId,
        limit: u32,
        after: Option<&CardId>,
    ) -> Result<Option<Vec<StoredCard>>, StoreError>;
}

const CUSTOMER_COLUMNS: &str =
    "id, username, password_hash, name_sealed, name_masked, id_number_sealed, \
     id_number_index, phone_sealed, phone_index, phone_masked, created_at";
const CARD_COLUMNS: &str =
    "id, customer_id, pan_sealed, pan_index, last4, card_type, expiry, account_id, \
     status, created_at, card_code, product";

fn customer_from_row(r: &AnyRow) -> Result<StoredCustomer, StoreError> {
    let id: String = r.try_get("id")?;
    Ok(StoredCustomer {
        id: id.parse().map_err(corrupt)?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        name_sealed: r.try_get("name_sealed")?,
        name_masked: r.try_get("name_masked")?,
        id_number_sealed: r.try_get("id_number_sealed")?,
        id_number_index: r.try_get("id_number_index")?,
        phone_sealed: r.try_get("phone_sealed")?,
        phone_index: r.try_get("phone_index")?,
        phone_masked: r.try_get("phone_masked")?,
        created_at: from_unix_micros(r.try_get("created_at")?),
    })
}

fn card_from_row(r: &AnyRow) -> Result<StoredCard, StoreError> {
    let id: String = r.try_get("id")?;
    let customer: String = r.try_get("customer_id")?;
    let account: String = r.try_get("account_id")?;
    let card_type: String = r.try_get("card_type")?;
    Ok(StoredCard {
        id: id.parse().map_err(corrupt)?,
        customer_id: customer.parse().map_err(corrupt)?,
        pan_sealed: r.try_get("pan_sealed")?,
        pan_index: r.try_get("pan_index")?,
        last4: r.try_get("last4")?,
        card_type: card_type.parse().map_err(corrupt)?,
        expiry: r.try_get("expiry")?,
        account_id: account.parse().map_err(corrupt)?,
        status: {
            let s: String = r.try_get("status")?;
            CardStatus::parse(&s).ok_or_else(|| corrupt(format!("card status {s}")))?
        },
        created_at: from_unix_micros(r.try_get("created_at")?),
        card_code: r.try_get("card_code")?,
        product: r.try_get("product")?,
    })
}

/// Inserts a customer in the caller's transaction; `false` if the login
/// name or ID number is taken.
pub(crate) async fn insert_customer(
    conn: &mut sqlx::AnyConnection,
    c: &StoredCustomer,
) -> Result<bool, StoreError> {
    let n = sqlx::query(&format!(
        "INSERT INTO bank_customers ({CUSTOMER_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
    ))
    .bind(c.id.as_str())
    .bind(&c.username)
    .bind(&c.password_hash)
    .bind(&c.name_sealed)
    .bind(&c.name_masked)
    .bind(&c.id_number_sealed)
    .bind(&c.id_number_index)
    .bind(&c.phone_sealed)
    .bind(&c.phone_index)
    .bind(&c.phone_masked)
    .bind(to_unix_micros(c.created_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Inserts a card and its ledger account in the caller's transaction;
/// `false` if the PAN is taken.
pub(crate) async fn insert_card(
    conn: &mut sqlx::AnyConnection,
    card: &StoredCard,
    account: &Account,
) -> Result<bool, StoreError> {
    let taken: Option<String> =
        sqlx::query_scalar("SELECT id FROM bank_cards WHERE pan_index = $1")
            .bind(&card.pan_index)
            .fetch_optional(&mut *conn)
            .await?;
    if taken.is_some() {
        return Ok(false);
    }
    if !insert_account(&mut *conn, account, card.created_at).await? {
        return Err(corrupt(format!("account id {} taken", account.id)));
    }
    sqlx::query(&format!(
        "INSERT INTO bank_cards ({CARD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(card.id.as_str())
    .bind(card.customer_id.as_str())
    .bind(&card.pan_sealed)
    .bind(&card.pan_index)
    .bind(&card.last4)
    .bind(card.card_type.as_str())
    .bind(&card.expiry)
    .bind(card.account_id.as_str())
    .bind(card.status.as_str())
    .bind(to_unix_micros(card.created_at))
    .bind(card.card_code.clone())
    .bind(card.product.clone())
    .execute(conn)
    .await?;
    Ok(true)
}

impl Store {
    async fn one_customer(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<StoredCustomer>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CUSTOMER_COLUMNS} FROM bank_customers WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(customer_from_row).transpose()
    }

    async fn one_card(&self, column: &str, value: &str) -> Result<Option<StoredCard>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CARD_COLUMNS} FROM bank_cards WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(card_from_row).transpose()
    }
}

#[async_trait]
impl BankStore for Store {
    async fn bank_customer_create(&self, c: &StoredCustomer) -> Result<BankCreate, StoreError> {
        let mut tx = self.begin_write().await?;
        let created = insert_customer(tx.conn(), c).await?;
        tx.commit().await?;
        Ok(if created {
            BankCreate::Created
        } else {
            BankCreate::Duplicate
        })
    }

    async fn bank_customer(&self, id: &CustomerId) -> Result<Option<StoredCustomer>, StoreError> {
        self.one_customer("id", id.as_str()).await
    }

    async fn bank_customer_by_username(
        &self,
        username: &str,
    ) -> Result<Option<StoredCustomer>, StoreError> {
        self.one_customer("username", username).await
    }

    async fn bank_customer_by_id_number(
        &self,
        id_number_index: &str,
    ) -> Result<Option<StoredCustomer>, StoreError> {
        self.one_customer("id_number_index", id_number_index).await
    }

    async fn bank_card_create(
        &self,
        card: &StoredCard,
        account: &Account,
    ) -> Result<BankCreate, StoreError> {
        let mut tx = self.begin_write().await?;
        if !insert_card(tx.conn(), card, account).await? {
            return Ok(BankCreate::Duplicate);
        }
        tx.commit().await?;
        Ok(BankCreate::Created)
    }

    async fn bank_card(&self, id: &CardId) -> Result<Option<StoredCard>, StoreError> {
        self.one_card("id", id.as_str()).await
    }

    async fn bank_card_by_pan(&self, pan_index: &str) -> Result<Option<StoredCard>, StoreError> {
        self.one_card("pan_index", pan_index).await
    }

    async fn bank_cards_of(&self, customer: &CustomerId) -> Result<Vec<StoredCard>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CARD_COLUMNS} FROM bank_cards WHERE customer_id = $1 ORDER BY created_at, last4, id"
        ))
        .bind(customer.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(card_from_row).collect()
    }

    async fn bank_cards_page(
        &self,
        customer: &CustomerId,
        limit: u32,
        after: Option<&CardId>,
    ) -> Result<Option<Vec<StoredCard>>, StoreError> {
        // The order the bank shows them in: as issued, then by last digits
        // (the demo customers' cards are issued at one instant).
        let start = match after {
            None => (i64::MIN, String::new(), String::new()),
            Some(after) => {
                let Some(card) = self
                    .bank_card(after)
                    .await?
                    .filter(|c| &c.customer_id == customer)
                else {
                    return Ok(None);
                };
                (
                    to_unix_micros(card.created_at),
                    card.last4,
                    card.id.to_string(),
                )
            }
        };
        let rows = sqlx::query(&format!(
            "SELECT {CARD_COLUMNS} FROM bank_cards WHERE customer_id = $1 \
             AND (created_at > $2 OR (created_at = $2 AND (last4 > $3 OR (last4 = $3 AND id > $4)))) \
             ORDER BY created_at, last4, id LIMIT $5"
        ))
        .bind(customer.as_str())
        .bind(start.0)
        .bind(start.1)
        .bind(start.2)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(card_from_row)
            .collect::<Result<_, _>>()
            .map(Some)
    }
}
