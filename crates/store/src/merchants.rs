//! Merchants, their API keys and orders. An order changes only at the
//! version it was read at (two payments of one order cannot both start).

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{ApiKeyId, MerchantId, OrderId, RefundId};
use paybridge_domain::ledger::{Account, AccountId};
use paybridge_domain::order::{OrderState, OrderStatus};
use paybridge_domain::refund::{RefundFailure, RefundStatus};
use paybridge_domain::{Currency, ErrorCode, Money, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{PageOf, PageOrder, Store};
use crate::error::{corrupt, StoreError};
use crate::ledger::insert_account;
use crate::outbox::append_events;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMerchant {
    pub id: MerchantId,
    pub name: String,
    /// The merchant's balance in the wallet's ledger.
    pub account_id: AccountId,
    pub created_at: Timestamp,
    /// Where order events are posted, and their signing secret (sealed).
    pub webhook_url: Option<String>,
    pub webhook_secret_sealed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApiKey {
    pub id: ApiKeyId,
    pub merchant_id: MerchantId,
    /// The key's visible start, e.g. `sk_test_demo`.
    pub prefix: String,
    pub key_hash: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    pub id: OrderId,
    pub merchant_id: MerchantId,
    pub reference: String,
    pub description: String,
    pub status: OrderStatus,
    /// The wallet user paying it, and with which binding.
    pub payer_user_id: Option<String>,
    pub binding_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// A refund of (part of) a paid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefund {
    pub id: RefundId,
    pub order_id: OrderId,
    pub reference: String,
    pub amount: Money,
    pub status: RefundStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What starting a refund found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundBegin {
    Started,
    /// The merchant used this reference for a refund of this order before.
    Exists(Box<StoredRefund>),
    /// The order moved meanwhile: read and try again.
    OrderMoved,
}

/// What creating an order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCreate {
    Created,
    /// The merchant used this reference for another order.
    ReferenceTaken(Box<StoredOrder>),
}

#[async_trait]
pub trait MerchantStore: Send + Sync + std::fmt::Debug {
    /// Creates a merchant, its ledger account and its first API key together;
    /// `false` if the merchant id exists (seeding twice).
    async fn merchant_create(
        &self,
        m: &StoredMerchant,
        account: &Account,
        key: &StoredApiKey,
    ) -> Result<bool, StoreError>;
    async fn merchant(&self, id: &MerchantId) -> Result<Option<StoredMerchant>, StoreError>;
    async fn merchant_set_webhook(
        &self,
        id: &MerchantId,
        url: &str,
        secret_sealed: &str,
    ) -> Result<(), StoreError>;
    async fn api_key_create(&self, key: &StoredApiKey) -> Result<(), StoreError>;
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<StoredApiKey>, StoreError>;
    async fn api_keys_of(&self, merchant: &MerchantId) -> Result<Vec<StoredApiKey>, StoreError>;
    /// A page of the merchant's keys, oldest first, after the key `after`;
    /// `None` when `after` is not one of its keys.
    async fn api_keys_page(
        &self,
        merchant: &MerchantId,
        limit: u32,
        after: Option<&ApiKeyId>,
    ) -> Result<Option<Vec<StoredApiKey>>, StoreError>;
    /// Revokes a live key of `merchant`; `false` if there is none.
    async fn api_key_revoke(
        &self,
        merchant: &MerchantId,
        id: &ApiKeyId,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn order_create(
        &self,
        o: &StoredOrder,
        events: &[NewEvent],
    ) -> Result<OrderCreate, StoreError>;
    async fn order(&self, id: &OrderId) -> Result<Option<StoredOrder>, StoreError>;
    /// Up to `limit` orders still `paying` whose last change is before
    /// `before`, oldest first: payments a crash or an unknown bank answer
    /// left half done, for the reconciler to resume.
    async fn orders_stalled_paying(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredOrder>, StoreError>;
    async fn order_by_reference(
        &self,
        merchant: &MerchantId,
        reference: &str,
    ) -> Result<Option<StoredOrder>, StoreError>;
    /// Saves a new status if the row is at `o.version`; `false` if it moved.
    async fn order_update(&self, o: &StoredOrder, events: &[NewEvent]) -> Result<bool, StoreError>;
    /// Records `r` (pending) and the order's reserved refund (`o`, read at
    /// its version) together.
    async fn refund_begin(
        &self,
        o: &StoredOrder,
        r: &StoredRefund,
        events: &[NewEvent],
    ) -> Result<RefundBegin, StoreError>;
    /// Saves the refund's outcome, and the order's (if given, at its version).
    async fn refund_finish(
        &self,
        r: &StoredRefund,
        order: Option<&StoredOrder>,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    async fn refunds_of(&self, order: &OrderId) -> Result<Vec<StoredRefund>, StoreError>;
    /// A page of the order's refunds, oldest first, after the refund
    /// `after`; `None` when `after` is not one of its refunds.
    async fn refunds_page(
        &self,
        order: &OrderId,
        limit: u32,
        after: Option<&RefundId>,
    ) -> Result<Option<Vec<StoredRefund>>, StoreError>;
    /// Up to `limit` refunds still `pending` whose last change is before
    /// `before`, oldest first: refunds a crash or an unknown bank answer
    /// left half done, for the reconciler to resume.
    async fn refunds_stalled_pending(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredRefund>, StoreError>;
}

const API_KEY_COLUMNS: &str = "id, merchant_id, prefix, key_hash, created_at, revoked_at";

const REFUND_COLUMNS: &str =
    "id, order_id, reference, amount, currency, state, failure, created_at, updated_at";

/// A failed refund's `failure` column is `code: message`; the two other
/// states have none.
fn refund_status(state: String, failure: Option<String>) -> Result<RefundStatus, StoreError> {
    match (state.as_str(), failure) {
        ("pending", None) => Ok(RefundStatus::Pending),
        ("succeeded", None) => Ok(RefundStatus::Succeeded),
        ("failed", Some(f)) => {
            let (code, message) = f
                .split_once(": ")
                .ok_or_else(|| corrupt(format!("refund failure without a code: {f}")))?;
            let code = ErrorCode::from_wire(code)
                .ok_or_else(|| corrupt(format!("refund failure with an unknown code: {code}")))?;
            Ok(RefundStatus::Failed(RefundFailure {
                code,
                message: message.to_owned(),
            }))
        }
        (state, _) => Err(corrupt(format!("refund in an unknown state: {state}"))),
    }
}

fn refund_failure_column(s: &RefundStatus) -> Option<String> {
    s.failure().map(RefundFailure::to_string)
}

fn refund_from_row(r: &AnyRow) -> Result<StoredRefund, StoreError> {
    let id: String = r.try_get("id")?;
    let order: String = r.try_get("order_id")?;
    let currency: String = r.try_get("currency")?;
    let currency: Currency = currency.parse().map_err(corrupt)?;
    Ok(StoredRefund {
        id: id.parse().map_err(corrupt)?,
        order_id: order.parse().map_err(corrupt)?,
        reference: r.try_get("reference")?,
        amount: Money::new(r.try_get("amount")?, currency),
        status: refund_status(r.try_get("state")?, r.try_get("failure")?)?,
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
    })
}

async fn update_order_at_version(
    conn: &mut sqlx::AnyConnection,
    o: &StoredOrder,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE orders SET state = $3, refunded = $4, updated_at = $5, payer_user_id = $6, \
         binding_id = $7, version = version + 1 WHERE id = $1 AND version = $2",
    )
    .bind(o.id.as_str())
    .bind(o.version)
    .bind(o.status.state.as_str())
    .bind(o.status.refunded_minor)
    .bind(to_unix_micros(o.updated_at))
    .bind(o.payer_user_id.clone())
    .bind(o.binding_id.clone())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

fn key_from_row(r: &AnyRow) -> Result<StoredApiKey, StoreError> {
    let id: String = r.try_get("id")?;
    let merchant: String = r.try_get("merchant_id")?;
    Ok(StoredApiKey {
        id: id.parse().map_err(corrupt)?,
        merchant_id: merchant.parse().map_err(corrupt)?,
        prefix: r.try_get("prefix")?,
        key_hash: r.try_get("key_hash")?,
        created_at: from_unix_micros(r.try_get("created_at")?),
        revoked_at: r
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_unix_micros),
    })
}

const ORDER_COLUMNS: &str =
    "id, merchant_id, reference, description, amount, currency, refunded, state, \
     expires_at, created_at, updated_at, version, payer_user_id, binding_id";

fn order_from_row(r: &AnyRow) -> Result<StoredOrder, StoreError> {
    let id: String = r.try_get("id")?;
    let merchant: String = r.try_get("merchant_id")?;
    let currency: String = r.try_get("currency")?;
    let state: String = r.try_get("state")?;
    let currency: Currency = currency.parse().map_err(corrupt)?;
    Ok(StoredOrder {
        id: id.parse().map_err(corrupt)?,
        merchant_id: merchant.parse().map_err(corrupt)?,
        reference: r.try_get("reference")?,
        description: r.try_get("description")?,
        status: OrderStatus {
            state: OrderState::parse(&state)
                .ok_or_else(|| corrupt(format!("order state {state}")))?,
            amount: Money::new(r.try_get("amount")?, currency),
            refunded_minor: r.try_get("refunded")?,
            expires_at: from_unix_micros(r.try_get("expires_at")?),
        },
        payer_user_id: r.try_get("payer_user_id")?,
        binding_id: r.try_get("binding_id")?,
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

async fn insert_key(conn: &mut sqlx::AnyConnection, k: &StoredApiKey) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO merchant_api_keys (id, merchant_id, prefix, key_hash, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(k.id.as_str())
    .bind(k.merchant_id.as_str())
    .bind(&k.prefix)
    .bind(&k.key_hash)
    .bind(to_unix_micros(k.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl MerchantStore for Store {
    async fn merchant_create(
        &self,
        m: &StoredMerchant,
        account: &Account,
        key: &StoredApiKey,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM merchants WHERE id = $1")
            .bind(m.id.as_str())
            .fetch_optional(tx.conn())
            .await?;
        if exists.is_some() {
            return Ok(false);
        }
        insert_account(tx.conn(), account, m.created_at).await?;
        sqlx::query(
            "INSERT INTO merchants (id, name, account_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(m.id.as_str())
        .bind(&m.name)
        .bind(m.account_id.as_str())
        .bind(to_unix_micros(m.created_at))
        .execute(tx.conn())
        .await?;
        insert_key(tx.conn(), key).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn merchant(&self, id: &MerchantId) -> Result<Option<StoredMerchant>, StoreError> {
        let row =
            sqlx::query("SELECT id, name, account_id, created_at, webhook_url, webhook_secret_sealed FROM merchants WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let id: String = r.try_get("id")?;
            let account: String = r.try_get("account_id")?;
            Ok(StoredMerchant {
                id: id.parse().map_err(corrupt)?,
                name: r.try_get("name")?,
                account_id: account.parse().map_err(corrupt)?,
                created_at: from_unix_micros(r.try_get("created_at")?),
                webhook_url: r.try_get("webhook_url")?,
                webhook_secret_sealed: r.try_get("webhook_secret_sealed")?,
            })
        })
        .transpose()
    }

    async fn merchant_set_webhook(
        &self,
        id: &MerchantId,
        url: &str,
        secret_sealed: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE merchants SET webhook_url = $2, webhook_secret_sealed = $3 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(url)
        .bind(secret_sealed)
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn api_key_create(&self, key: &StoredApiKey) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_key(tx.conn(), key).await?;
        tx.commit().await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<StoredApiKey>, StoreError> {
        let row = sqlx::query(
            "SELECT id, merchant_id, prefix, key_hash, created_at, revoked_at FROM merchant_api_keys WHERE key_hash = $1",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn api_keys_of(&self, merchant: &MerchantId) -> Result<Vec<StoredApiKey>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM merchant_api_keys WHERE merchant_id = $1 ORDER BY created_at, id"
        ))
        .bind(merchant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn api_keys_page(
        &self,
        merchant: &MerchantId,
        limit: u32,
        after: Option<&ApiKeyId>,
    ) -> Result<Option<Vec<StoredApiKey>>, StoreError> {
        let rows = self
            .page_rows(PageOf {
                table: "merchant_api_keys",
                columns: API_KEY_COLUMNS,
                owner_column: "merchant_id",
                owner: merchant.as_str(),
                order: PageOrder::OldestFirst,
                limit,
                after: after.map(|a| a.as_str()),
            })
            .await?;
        rows.map(|rows| rows.iter().map(key_from_row).collect())
            .transpose()
    }

    async fn api_key_revoke(
        &self,
        merchant: &MerchantId,
        id: &ApiKeyId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE merchant_api_keys SET revoked_at = $3 WHERE id = $1 AND merchant_id = $2 AND revoked_at IS NULL",
        )
        .bind(id.as_str())
        .bind(merchant.as_str())
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn order_create(
        &self,
        o: &StoredOrder,
        events: &[NewEvent],
    ) -> Result<OrderCreate, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(&format!(
            "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, NULL, NULL) \
             ON CONFLICT (merchant_id, reference) DO NOTHING"
        ))
        .bind(o.id.as_str())
        .bind(o.merchant_id.as_str())
        .bind(&o.reference)
        .bind(&o.description)
        .bind(o.status.amount.amount_minor)
        .bind(o.status.amount.currency.code())
        .bind(o.status.refunded_minor)
        .bind(o.status.state.as_str())
        .bind(to_unix_micros(o.status.expires_at))
        .bind(to_unix_micros(o.created_at))
        .bind(to_unix_micros(o.updated_at))
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n == 0 {
            drop(tx);
            let existing = self
                .order_by_reference(&o.merchant_id, &o.reference)
                .await?
                .ok_or_else(|| corrupt("an order reference conflicted but cannot be found"))?;
            return Ok(OrderCreate::ReferenceTaken(Box::new(existing)));
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(OrderCreate::Created)
    }

    async fn order(&self, id: &OrderId) -> Result<Option<StoredOrder>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    async fn orders_stalled_paying(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredOrder>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE state = 'paying' AND updated_at < $1 \
             ORDER BY updated_at, id LIMIT $2"
        ))
        .bind(to_unix_micros(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_from_row).collect()
    }

    async fn order_by_reference(
        &self,
        merchant: &MerchantId,
        reference: &str,
    ) -> Result<Option<StoredOrder>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = $1 AND reference = $2"
        ))
        .bind(merchant.as_str())
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    async fn order_update(&self, o: &StoredOrder, events: &[NewEvent]) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let moved = update_order_at_version(tx.conn(), o).await?;
        if moved {
            append_events(tx.conn(), events).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn refund_begin(
        &self,
        o: &StoredOrder,
        r: &StoredRefund,
        events: &[NewEvent],
    ) -> Result<RefundBegin, StoreError> {
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = $1 AND reference = $2"
        ))
        .bind(r.order_id.as_str())
        .bind(&r.reference)
        .fetch_optional(tx.conn())
        .await?;
        if let Some(row) = existing {
            return Ok(RefundBegin::Exists(Box::new(refund_from_row(&row)?)));
        }
        if !update_order_at_version(tx.conn(), o).await? {
            return Ok(RefundBegin::OrderMoved);
        }
        sqlx::query(&format!(
            "INSERT INTO refunds ({REFUND_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(r.id.as_str())
        .bind(r.order_id.as_str())
        .bind(&r.reference)
        .bind(r.amount.amount_minor)
        .bind(r.amount.currency.code())
        .bind(r.status.as_str())
        .bind(refund_failure_column(&r.status))
        .bind(to_unix_micros(r.created_at))
        .bind(to_unix_micros(r.updated_at))
        .execute(tx.conn())
        .await?;
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(RefundBegin::Started)
    }

    async fn refund_finish(
        &self,
        r: &StoredRefund,
        order: Option<&StoredOrder>,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(o) = order {
            if !update_order_at_version(tx.conn(), o).await? {
                return Ok(false);
            }
        }
        let n = sqlx::query(
            "UPDATE refunds SET state = $2, failure = $3, updated_at = $4 WHERE id = $1 AND state = 'pending'",
        )
        .bind(r.id.as_str())
        .bind(r.status.as_str())
        .bind(refund_failure_column(&r.status))
        .bind(to_unix_micros(r.updated_at))
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

    async fn refunds_of(&self, order: &OrderId) -> Result<Vec<StoredRefund>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = $1 ORDER BY created_at, id"
        ))
        .bind(order.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(refund_from_row).collect()
    }

    async fn refunds_page(
        &self,
        order: &OrderId,
        limit: u32,
        after: Option<&RefundId>,
    ) -> Result<Option<Vec<StoredRefund>>, StoreError> {
        let rows = self
            .page_rows(PageOf {
                table: "refunds",
                columns: REFUND_COLUMNS,
                owner_column: "order_id",
                owner: order.as_str(),
                order: PageOrder::OldestFirst,
                limit,
                after: after.map(|a| a.as_str()),
            })
            .await?;
        rows.map(|rows| rows.iter().map(refund_from_row).collect())
            .transpose()
    }

    async fn refunds_stalled_pending(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredRefund>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE state = 'pending' AND updated_at < $1 \
             ORDER BY updated_at, id LIMIT $2"
        ))
        .bind(to_unix_micros(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(refund_from_row).collect()
    }
}
