//! Bindings (wallet side) and quick-pay agreements (bank side) of flow F1.
//! A binding changes only at the version it was read at, so two racing
//! steps (two claimants, a double-submitted confirm) cannot both pass.

use async_trait::async_trait;
use paybridge_domain::agreement::AgreementStatus;
use paybridge_domain::binding::{BindingState, BindingStatus};
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{BindingId, CardId, CustomerId, OtpId, QuickPayAgreementId, UserId};
use paybridge_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{PageOf, PageOrder, Store};
use crate::error::{corrupt, is_unique_violation, StoreError};
use crate::outbox::append_events;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBinding {
    pub id: BindingId,
    pub issuer_id: String,
    /// The bank's id of the card (never its number).
    pub card_ref: String,
    /// `qr` or `push`.
    pub channel: String,
    /// Keyed hash of the binding address's secret (QR path).
    pub address_hash: Option<String>,
    pub user_id: Option<UserId>,
    /// Its state (a failure is inside `Failed`, stored in the `failure` column).
    pub status: BindingStatus,
    pub holder_name_sealed: String,
    pub holder_name_masked: String,
    pub holder_id_number_sealed: String,
    pub holder_id_number_index: String,
    pub phone_sealed: String,
    pub phone_masked: String,
    pub bank_name: String,
    pub card_type: String,
    pub last4: String,
    pub otp_id: Option<OtpId>,
    pub agreement_sealed: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// What a conditional binding change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingWrite {
    Done,
    /// The row moved since it was read.
    Stale,
    /// The user already has an active binding of this card.
    Duplicate,
}

/// A binding the bank offered to a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOffer {
    pub binding_id: String,
    pub card_id: CardId,
    pub customer_id: CustomerId,
    pub wallet_id: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAgreement {
    pub id: QuickPayAgreementId,
    pub number_sealed: String,
    pub number_index: String,
    pub card_id: CardId,
    pub customer_id: CustomerId,
    pub wallet_id: String,
    pub binding_id: String,
    pub status: AgreementStatus,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait BindingStore: Send + Sync + std::fmt::Debug {
    async fn binding_create(
        &self,
        b: &StoredBinding,
        events: &[NewEvent],
    ) -> Result<(), StoreError>;
    async fn binding(&self, id: &BindingId) -> Result<Option<StoredBinding>, StoreError>;
    async fn binding_by_address(
        &self,
        address_hash: &str,
    ) -> Result<Option<StoredBinding>, StoreError>;
    /// A user's bindings, newest first.
    async fn bindings_of(&self, user: &UserId) -> Result<Vec<StoredBinding>, StoreError>;
    /// Whether `user` has any active binding.
    async fn binding_active_for_user(&self, user: &UserId) -> Result<bool, StoreError>;
    /// Whether `user` has an active binding of card `card_ref` at `issuer`
    /// other than `except` (at most one can be: a unique index).
    async fn binding_active_for_card(
        &self,
        user: &UserId,
        issuer: &str,
        card_ref: &str,
        except: &BindingId,
    ) -> Result<bool, StoreError>;
    /// At most `limit` of a user's bindings, newest first, after the
    /// binding `after` (a cursor); `None` if `after` is not theirs.
    async fn bindings_page(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&BindingId>,
    ) -> Result<Option<Vec<StoredBinding>>, StoreError>;
    /// Saves `b` (state, user, failure, OTP, agreement) if the row is at `b.version`.
    async fn binding_update(
        &self,
        b: &StoredBinding,
        events: &[NewEvent],
    ) -> Result<BindingWrite, StoreError>;
}

#[async_trait]
pub trait AgreementStore: Send + Sync + std::fmt::Debug {
    /// Records a binding the bank offered (once per binding id; a second
    /// record of the same id changes nothing). It supersedes the card's
    /// other live offers to the same wallet: one live offer per card and
    /// wallet account, the newest.
    async fn binding_offer_record(&self, offer: &StoredOffer) -> Result<(), StoreError>;
    async fn binding_offer(&self, binding_id: &str) -> Result<Option<StoredOffer>, StoreError>;
    /// Creates the agreement of a binding, or returns the one it already has.
    async fn agreement_for_binding(
        &self,
        a: &StoredAgreement,
    ) -> Result<(StoredAgreement, bool), StoreError>;
    async fn agreements_of(
        &self,
        customer: &CustomerId,
    ) -> Result<Vec<StoredAgreement>, StoreError>;
    /// A page of the customer's agreements, newest first, after the
    /// agreement `after`; `None` when `after` is not one of theirs.
    async fn agreements_page(
        &self,
        customer: &CustomerId,
        limit: u32,
        after: Option<&QuickPayAgreementId>,
    ) -> Result<Option<Vec<StoredAgreement>>, StoreError>;
    async fn agreement(
        &self,
        id: &QuickPayAgreementId,
    ) -> Result<Option<StoredAgreement>, StoreError>;
    async fn agreement_by_number(
        &self,
        number_index: &str,
    ) -> Result<Option<StoredAgreement>, StoreError>;
    async fn agreement_by_binding(
        &self,
        binding_id: &str,
    ) -> Result<Option<StoredAgreement>, StoreError>;
    /// Cancels an active agreement; `false` if it was not active.
    async fn agreement_cancel(
        &self,
        id: &QuickPayAgreementId,
        now: Timestamp,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
}

const BINDING_COLUMNS: &str = "id, issuer_id, card_ref, channel, address_hash, user_id, state, failure, \
     holder_name_sealed, holder_name_masked, holder_id_number_sealed, holder_id_number_index, phone_sealed, \
     phone_masked, bank_name, card_type, last4, otp_id, agreement_sealed, expires_at, created_at, updated_at, version";

fn binding_from_row(r: &AnyRow) -> Result<StoredBinding, StoreError> {
    let id: String = r.try_get("id")?;
    let state: String = r.try_get("state")?;
    let failure: Option<String> = r.try_get("failure")?;
    let user: Option<String> = r.try_get("user_id")?;
    let otp: Option<String> = r.try_get("otp_id")?;
    Ok(StoredBinding {
        id: id.parse().map_err(corrupt)?,
        issuer_id: r.try_get("issuer_id")?,
        card_ref: r.try_get("card_ref")?,
        channel: r.try_get("channel")?,
        address_hash: r.try_get("address_hash")?,
        user_id: user.map(|u| u.parse()).transpose().map_err(corrupt)?,
        status: BindingStatus {
            state: BindingState::parse(&state, failure.as_deref())
                .ok_or_else(|| corrupt(format!("binding state {state} ({failure:?})")))?,
            expires_at: from_unix_micros(r.try_get("expires_at")?),
        },
        holder_name_sealed: r.try_get("holder_name_sealed")?,
        holder_name_masked: r.try_get("holder_name_masked")?,
        holder_id_number_sealed: r.try_get("holder_id_number_sealed")?,
        holder_id_number_index: r.try_get("holder_id_number_index")?,
        phone_sealed: r.try_get("phone_sealed")?,
        phone_masked: r.try_get("phone_masked")?,
        bank_name: r.try_get("bank_name")?,
        card_type: r.try_get("card_type")?,
        last4: r.try_get("last4")?,
        otp_id: otp.map(|o| o.parse()).transpose().map_err(corrupt)?,
        agreement_sealed: r.try_get("agreement_sealed")?,
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

const AGREEMENT_COLUMNS: &str = "id, number_sealed, number_index, card_id, customer_id, wallet_id, binding_id, status, created_at";

fn agreement_from_row(r: &AnyRow) -> Result<StoredAgreement, StoreError> {
    let id: String = r.try_get("id")?;
    let card: String = r.try_get("card_id")?;
    let customer: String = r.try_get("customer_id")?;
    Ok(StoredAgreement {
        id: id.parse().map_err(corrupt)?,
        number_sealed: r.try_get("number_sealed")?,
        number_index: r.try_get("number_index")?,
        card_id: card.parse().map_err(corrupt)?,
        customer_id: customer.parse().map_err(corrupt)?,
        wallet_id: r.try_get("wallet_id")?,
        binding_id: r.try_get("binding_id")?,
        status: {
            let s: String = r.try_get("status")?;
            AgreementStatus::parse(&s).ok_or_else(|| corrupt(format!("agreement status {s}")))?
        },
        created_at: from_unix_micros(r.try_get("created_at")?),
    })
}

impl Store {
    async fn one_binding(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<StoredBinding>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {BINDING_COLUMNS} FROM bindings WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(binding_from_row).transpose()
    }

    async fn one_agreement(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<StoredAgreement>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {AGREEMENT_COLUMNS} FROM quick_pay_agreements WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(agreement_from_row).transpose()
    }
}

/// Inserts a binding inside the caller's transaction.
pub(crate) async fn insert_binding(
    conn: &mut sqlx::AnyConnection,
    b: &StoredBinding,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
            "INSERT INTO bindings ({BINDING_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, 0)"
        ))
        .bind(b.id.as_str())
        .bind(&b.issuer_id)
        .bind(&b.card_ref)
        .bind(&b.channel)
        .bind(b.address_hash.clone())
        .bind(b.user_id.as_ref().map(|u| u.as_str().to_owned()))
        .bind(b.status.state.as_str())
        .bind(b.status.state.failure().map(|f| f.as_str()))
        .bind(&b.holder_name_sealed)
        .bind(&b.holder_name_masked)
        .bind(&b.holder_id_number_sealed)
        .bind(&b.holder_id_number_index)
        .bind(&b.phone_sealed)
        .bind(&b.phone_masked)
        .bind(&b.bank_name)
        .bind(&b.card_type)
        .bind(&b.last4)
        .bind(b.otp_id.as_ref().map(|o| o.as_str().to_owned()))
        .bind(b.agreement_sealed.clone())
        .bind(to_unix_micros(b.status.expires_at))
        .bind(to_unix_micros(b.created_at))
        .bind(to_unix_micros(b.updated_at))
        .execute(conn)
        .await?;
    Ok(())
}

/// Saves a binding's moving parts if the row is at `b.version`: the rows
/// changed (0 or 1), or the database's refusal (a unique index).
async fn update_binding_rows(
    conn: &mut sqlx::AnyConnection,
    b: &StoredBinding,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE bindings SET user_id = $3, state = $4, failure = $5, otp_id = $6, agreement_sealed = $7, \
         updated_at = $8, version = version + 1 WHERE id = $1 AND version = $2",
    )
    .bind(b.id.as_str())
    .bind(b.version)
    .bind(b.user_id.as_ref().map(|u| u.as_str().to_owned()))
    .bind(b.status.state.as_str())
    .bind(b.status.state.failure().map(|f| f.as_str()))
    .bind(b.otp_id.as_ref().map(|o| o.as_str().to_owned()))
    .bind(b.agreement_sealed.clone())
    .bind(to_unix_micros(b.updated_at))
    .execute(conn)
    .await?
    .rows_affected())
}

/// Saves a binding in the caller's transaction (with what moves with it);
/// `false` if it moved since it was read.
pub(crate) async fn update_binding_at_version(
    conn: &mut sqlx::AnyConnection,
    b: &StoredBinding,
) -> Result<bool, StoreError> {
    Ok(update_binding_rows(conn, b).await? == 1)
}

#[async_trait]
impl BindingStore for Store {
    async fn binding_create(
        &self,
        b: &StoredBinding,
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_binding(tx.conn(), b).await?;
        append_events(tx.conn(), events).await?;
        tx.commit().await
    }

    async fn binding(&self, id: &BindingId) -> Result<Option<StoredBinding>, StoreError> {
        self.one_binding("id", id.as_str()).await
    }

    async fn binding_by_address(
        &self,
        address_hash: &str,
    ) -> Result<Option<StoredBinding>, StoreError> {
        self.one_binding("address_hash", address_hash).await
    }

    async fn bindings_of(&self, user: &UserId) -> Result<Vec<StoredBinding>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BINDING_COLUMNS} FROM bindings WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(binding_from_row).collect()
    }

    async fn binding_active_for_user(&self, user: &UserId) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM bindings WHERE user_id = $1 AND state = 'active'",
        )
        .bind(user.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    async fn binding_active_for_card(
        &self,
        user: &UserId,
        issuer: &str,
        card_ref: &str,
        except: &BindingId,
    ) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM bindings WHERE user_id = $1 AND issuer_id = $2 \
             AND card_ref = $3 AND state = 'active' AND id <> $4",
        )
        .bind(user.as_str())
        .bind(issuer)
        .bind(card_ref)
        .bind(except.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    async fn bindings_page(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&BindingId>,
    ) -> Result<Option<Vec<StoredBinding>>, StoreError> {
        let rows = self
            .page_rows(PageOf {
                table: "bindings",
                columns: BINDING_COLUMNS,
                owner_column: "user_id",
                owner: user.as_str(),
                order: PageOrder::NewestFirst,
                limit,
                after: after.map(|a| a.as_str()),
            })
            .await?;
        rows.map(|rows| rows.iter().map(binding_from_row).collect())
            .transpose()
    }

    async fn binding_update(
        &self,
        b: &StoredBinding,
        events: &[NewEvent],
    ) -> Result<BindingWrite, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = update_binding_rows(tx.conn(), b).await;
        let n = match n {
            Err(e) if is_unique_violation(&e) => return Ok(BindingWrite::Duplicate),
            other => other?,
        };
        if n == 0 {
            return Ok(BindingWrite::Stale);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(BindingWrite::Done)
    }
}

/// Inserts a quick-pay agreement in the caller's transaction; `false` if
/// its binding has one already.
pub(crate) async fn insert_agreement(
    conn: &mut sqlx::AnyConnection,
    a: &StoredAgreement,
) -> Result<bool, StoreError> {
    let n = sqlx::query(&format!(
        "INSERT INTO quick_pay_agreements ({AGREEMENT_COLUMNS}, cancelled_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) ON CONFLICT (binding_id) DO NOTHING"
    ))
    .bind(a.id.as_str())
    .bind(&a.number_sealed)
    .bind(&a.number_index)
    .bind(a.card_id.as_str())
    .bind(a.customer_id.as_str())
    .bind(&a.wallet_id)
    .bind(&a.binding_id)
    .bind(a.status.as_str())
    .bind(to_unix_micros(a.created_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[async_trait]
impl AgreementStore for Store {
    async fn binding_offer_record(&self, o: &StoredOffer) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE binding_offers SET expires_at = $4 \
             WHERE card_id = $1 AND wallet_id = $2 AND binding_id <> $3 AND expires_at > $4",
        )
        .bind(o.card_id.as_str())
        .bind(&o.wallet_id)
        .bind(&o.binding_id)
        .bind(to_unix_micros(o.created_at))
        .execute(tx.conn())
        .await?;
        sqlx::query(
            "INSERT INTO binding_offers (binding_id, card_id, customer_id, wallet_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (binding_id) DO NOTHING",
        )
        .bind(&o.binding_id)
        .bind(o.card_id.as_str())
        .bind(o.customer_id.as_str())
        .bind(&o.wallet_id)
        .bind(to_unix_micros(o.created_at))
        .bind(to_unix_micros(o.expires_at))
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn binding_offer(&self, binding_id: &str) -> Result<Option<StoredOffer>, StoreError> {
        let row = sqlx::query(
            "SELECT binding_id, card_id, customer_id, wallet_id, created_at, expires_at \
             FROM binding_offers WHERE binding_id = $1",
        )
        .bind(binding_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let card: String = r.try_get("card_id")?;
            let customer: String = r.try_get("customer_id")?;
            Ok(StoredOffer {
                binding_id: r.try_get("binding_id")?,
                card_id: card.parse().map_err(corrupt)?,
                customer_id: customer.parse().map_err(corrupt)?,
                wallet_id: r.try_get("wallet_id")?,
                created_at: from_unix_micros(r.try_get("created_at")?),
                expires_at: from_unix_micros(r.try_get("expires_at")?),
            })
        })
        .transpose()
    }

    async fn agreement_for_binding(
        &self,
        a: &StoredAgreement,
    ) -> Result<(StoredAgreement, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = u64::from(insert_agreement(tx.conn(), a).await?);
        tx.commit().await?;
        if n == 1 {
            return Ok((a.clone(), true));
        }
        let existing = self
            .agreement_by_binding(&a.binding_id)
            .await?
            .ok_or_else(|| corrupt("an agreement conflicted but cannot be found"))?;
        Ok((existing, false))
    }

    async fn agreements_of(
        &self,
        customer: &CustomerId,
    ) -> Result<Vec<StoredAgreement>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AGREEMENT_COLUMNS} FROM quick_pay_agreements WHERE customer_id = $1 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(customer.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(agreement_from_row).collect()
    }

    async fn agreements_page(
        &self,
        customer: &CustomerId,
        limit: u32,
        after: Option<&QuickPayAgreementId>,
    ) -> Result<Option<Vec<StoredAgreement>>, StoreError> {
        let rows = self
            .page_rows(PageOf {
                table: "quick_pay_agreements",
                columns: AGREEMENT_COLUMNS,
                owner_column: "customer_id",
                owner: customer.as_str(),
                order: PageOrder::NewestFirst,
                limit,
                after: after.map(|a| a.as_str()),
            })
            .await?;
        rows.map(|rows| rows.iter().map(agreement_from_row).collect())
            .transpose()
    }

    async fn agreement(
        &self,
        id: &QuickPayAgreementId,
    ) -> Result<Option<StoredAgreement>, StoreError> {
        self.one_agreement("id", id.as_str()).await
    }

    async fn agreement_by_number(
        &self,
        number_index: &str,
    ) -> Result<Option<StoredAgreement>, StoreError> {
        self.one_agreement("number_index", number_index).await
    }

    async fn agreement_by_binding(
        &self,
        binding_id: &str,
    ) -> Result<Option<StoredAgreement>, StoreError> {
        self.one_agreement("binding_id", binding_id).await
    }

    async fn agreement_cancel(
        &self,
        id: &QuickPayAgreementId,
        now: Timestamp,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE quick_pay_agreements SET status = 'cancelled', cancelled_at = $2 \
             WHERE id = $1 AND status = 'active'",
        )
        .bind(id.as_str())
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }
}
