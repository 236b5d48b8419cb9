//! Virtual card applications on the issuer's side (`domain::card_issuing`),
//! keyed by the wallet's application id so that every call on one is
//! idempotent. Issuing writes everything the card is made of in one
//! transaction: the customer (a first-card applicant), the card and its
//! account, the quick-pay agreement, the vault token and the decided
//! application; nothing is half-issued.

use async_trait::async_trait;
use paybridge_domain::card_application::ApplicantKind;
use paybridge_domain::card_issuing::{ReviewStage, ReviewState};
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{CardApplicationId, CustomerId};
use paybridge_domain::ledger::Account;
use paybridge_domain::{ErrorCode, Timestamp, WireName};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::bank::{insert_card, insert_customer, StoredCard, StoredCustomer};
use crate::bindings::{insert_agreement, StoredAgreement};
use crate::db::Store;
use crate::error::{corrupt, StoreError};
use crate::outbox::append_events;
use crate::token_vault::{insert_vault_token, StoredVaultToken};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBankApplication {
    /// The wallet's application id.
    pub id: CardApplicationId,
    pub wallet_id: String,
    pub product: String,
    /// Name, ID number and phone as the wallet sent them, sealed.
    pub applicant_sealed: String,
    pub id_number_index: String,
    /// The wallet's binding id the quick-pay agreement will name.
    pub binding_id: String,
    pub applicant_kind: ApplicantKind,
    /// The bank's customer (an existing cardholder; a first-card
    /// applicant's once issued).
    pub customer_id: Option<CustomerId>,
    pub state: ReviewState,
    pub match_score: Option<i64>,
    pub card_id: Option<String>,
    pub token_id: Option<String>,
    pub agreement_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// Everything an issued card is made of.
#[derive(Debug, Clone, Copy)]
pub struct CardIssue<'a> {
    /// A first-card applicant becomes a customer.
    pub new_customer: Option<&'a StoredCustomer>,
    pub card: &'a StoredCard,
    pub account: &'a Account,
    pub agreement: &'a StoredAgreement,
    pub token: &'a StoredVaultToken,
    /// The product's cards-per-person limit: the card takes a free slot
    /// below it, or is not issued.
    pub max_per_person: u32,
}

/// Why an issue did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    Issued,
    /// The application moved since it was read (a racing call issued it).
    Stale,
    /// A generated number (PAN, card code, token, agreement) or the
    /// customer's ID number collided: draw again.
    Collision,
    /// Every slot of the product's limit is taken (a racing issue won).
    LimitReached,
}

#[async_trait]
pub trait CardIssuingStore: Send + Sync + std::fmt::Debug {
    /// Records a received application; if one with this id exists, returns
    /// it instead (`false`): a forwarded application is idempotent.
    async fn bank_application_receive(
        &self,
        a: &StoredBankApplication,
        events: &[NewEvent],
    ) -> Result<(StoredBankApplication, bool), StoreError>;
    async fn bank_application(
        &self,
        id: &CardApplicationId,
    ) -> Result<Option<StoredBankApplication>, StoreError>;
    /// Saves `a` (read at its version), e.g. rejected; `false` if it moved.
    async fn bank_application_update(
        &self,
        a: &StoredBankApplication,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    /// Saves `a` as issued with everything the card is made of.
    async fn bank_application_issue(
        &self,
        a: &StoredBankApplication,
        issue: CardIssue<'_>,
        events: &[NewEvent],
    ) -> Result<IssueOutcome, StoreError>;
    /// Cards of `product` the person with this ID number holds.
    async fn bank_product_holdings(
        &self,
        id_number_index: &str,
        product: &str,
    ) -> Result<u32, StoreError>;
}

const COLUMNS: &str = "id, wallet_id, product, applicant_sealed, id_number_index, binding_id, \
     applicant_kind, customer_id, state, reason, match_score, card_id, token_id, agreement_id, \
     created_at, updated_at, version";

fn from_row(r: &AnyRow) -> Result<StoredBankApplication, StoreError> {
    let text = |c: &str| -> Result<String, StoreError> { Ok(r.try_get::<String, _>(c)?) };
    let opt =
        |c: &str| -> Result<Option<String>, StoreError> { Ok(r.try_get::<Option<String>, _>(c)?) };
    let stage = text("state")?;
    let reason = opt("reason")?
        .map(|f| ErrorCode::from_wire(&f).ok_or_else(|| corrupt(format!("reason {f}"))))
        .transpose()?;
    let state = ReviewStage::from_wire_name(&stage)
        .and_then(|s| ReviewState::from_parts(s, reason))
        .ok_or_else(|| corrupt(format!("bank application state {stage} with its reason")))?;
    let kind = text("applicant_kind")?;
    Ok(StoredBankApplication {
        id: text("id")?.parse().map_err(corrupt)?,
        wallet_id: text("wallet_id")?,
        product: text("product")?,
        applicant_sealed: text("applicant_sealed")?,
        id_number_index: text("id_number_index")?,
        binding_id: text("binding_id")?,
        applicant_kind: ApplicantKind::from_wire_name(&kind)
            .ok_or_else(|| corrupt(format!("applicant {kind}")))?,
        customer_id: opt("customer_id")?
            .map(|c| c.parse())
            .transpose()
            .map_err(corrupt)?,
        state,
        match_score: r.try_get("match_score")?,
        card_id: opt("card_id")?,
        token_id: opt("token_id")?,
        agreement_id: opt("agreement_id")?,
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

async fn update_at_version(
    conn: &mut sqlx::AnyConnection,
    a: &StoredBankApplication,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE bank_card_applications SET customer_id = $3, state = $4, reason = $5, \
         match_score = $6, card_id = $7, token_id = $8, agreement_id = $9, updated_at = $10, \
         version = version + 1 WHERE id = $1 AND version = $2",
    )
    .bind(a.id.as_str())
    .bind(a.version)
    .bind(a.customer_id.as_ref().map(|c| c.as_str().to_owned()))
    .bind(a.state.stage().as_str())
    .bind(a.state.reason().map(|c| c.as_str()))
    .bind(a.match_score)
    .bind(a.card_id.clone())
    .bind(a.token_id.clone())
    .bind(a.agreement_id.clone())
    .bind(to_unix_micros(a.updated_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Takes the first free slot below the product's limit for the card;
/// `false` if all are taken. A unique key decides between racing issues.
async fn take_holding_slot(
    conn: &mut sqlx::AnyConnection,
    a: &StoredBankApplication,
    issue: CardIssue<'_>,
) -> Result<bool, StoreError> {
    for slot in 0..i64::from(issue.max_per_person) {
        let n = sqlx::query(
            "INSERT INTO bank_product_holdings (id_number_index, product, slot, card_id) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&a.id_number_index)
        .bind(&a.product)
        .bind(slot)
        .bind(issue.card.id.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if n == 1 {
            return Ok(true);
        }
    }
    Ok(false)
}

#[async_trait]
impl CardIssuingStore for Store {
    async fn bank_application_receive(
        &self,
        a: &StoredBankApplication,
        events: &[NewEvent],
    ) -> Result<(StoredBankApplication, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(&format!(
            "INSERT INTO bank_card_applications ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0) \
             ON CONFLICT (id) DO NOTHING"
        ))
        .bind(a.id.as_str())
        .bind(&a.wallet_id)
        .bind(&a.product)
        .bind(&a.applicant_sealed)
        .bind(&a.id_number_index)
        .bind(&a.binding_id)
        .bind(a.applicant_kind.as_str())
        .bind(a.customer_id.as_ref().map(|c| c.as_str().to_owned()))
        .bind(a.state.stage().as_str())
        .bind(a.state.reason().map(|c| c.as_str()))
        .bind(a.match_score)
        .bind(a.card_id.clone())
        .bind(a.token_id.clone())
        .bind(a.agreement_id.clone())
        .bind(to_unix_micros(a.created_at))
        .bind(to_unix_micros(a.updated_at))
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n == 1 {
            append_events(tx.conn(), events).await?;
            tx.commit().await?;
            return Ok((a.clone(), true));
        }
        drop(tx);
        let existing = self
            .bank_application(&a.id)
            .await?
            .ok_or_else(|| corrupt("an application conflicted but cannot be found"))?;
        Ok((existing, false))
    }

    async fn bank_application(
        &self,
        id: &CardApplicationId,
    ) -> Result<Option<StoredBankApplication>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM bank_card_applications WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn bank_application_update(
        &self,
        a: &StoredBankApplication,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !update_at_version(tx.conn(), a).await? {
            return Ok(false);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn bank_application_issue(
        &self,
        a: &StoredBankApplication,
        issue: CardIssue<'_>,
        events: &[NewEvent],
    ) -> Result<IssueOutcome, StoreError> {
        // The application is saved last (it names the card); a stale one
        // rolls everything back.
        let mut tx = self.begin_write().await?;
        if let Some(c) = issue.new_customer {
            if !insert_customer(tx.conn(), c).await? {
                return Ok(IssueOutcome::Collision);
            }
        }
        let card_code_taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM bank_cards WHERE card_code = $1")
                .bind(issue.card.card_code.clone())
                .fetch_optional(tx.conn())
                .await?;
        if card_code_taken.is_some() || !insert_card(tx.conn(), issue.card, issue.account).await? {
            return Ok(IssueOutcome::Collision);
        }
        if !insert_agreement(tx.conn(), issue.agreement).await? {
            return Ok(IssueOutcome::Collision);
        }
        if !insert_vault_token(tx.conn(), issue.token).await? {
            return Ok(IssueOutcome::Collision);
        }
        if !take_holding_slot(tx.conn(), a, issue).await? {
            return Ok(IssueOutcome::LimitReached);
        }
        if !update_at_version(tx.conn(), a).await? {
            return Ok(IssueOutcome::Stale);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(IssueOutcome::Issued)
    }

    async fn bank_product_holdings(
        &self,
        id_number_index: &str,
        product: &str,
    ) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM bank_product_holdings \
             WHERE id_number_index = $1 AND product = $2",
        )
        .bind(id_number_index)
        .bind(product)
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}
