//! Transfer payments of flow F3 (`domain::transfer_payment`). A payment
//! changes only at the version it was read at, and every change that
//! touches its agreement's usage (counting it at the request, counting it
//! again at the second agreement state, giving it back when it fails)
//! writes the agreement at its version in the same transaction: two
//! racing payments cannot both count against the limits as they stood.
//! Creating one is serialised per account, so the device's and the
//! phone's pending caps and pace hold under racing requests.

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{
    DeviceId, MerchantId, OrderId, TransferAgreementId, TransferPaymentId, UserId,
};
use paybridge_domain::transfer_agreement::{ConfirmRoute, DeviceUsage, UsageCategory};
use paybridge_domain::transfer_payment::{
    check_pace, CompletedBy, DevicePace, TransferPaymentStage, TransferPaymentState,
    TransferPaymentStatus,
};
use paybridge_domain::{ErrorCode, Money, Timestamp, WireName};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Store;
use crate::error::{corrupt, is_unique_violation, StoreError};
use crate::outbox::append_events;
use crate::transfer_agreements::{update_agreement_at_version, StoredTransferAgreement};

/// A payment execution task as the wallet signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTask {
    /// The compact JWS the phone received.
    pub jws: String,
    /// Base64url SHA-256 of `jws`.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransferPayment {
    pub id: TransferPaymentId,
    pub agreement_id: TransferAgreementId,
    pub user_id: UserId,
    /// The first device that asked.
    pub device_id: DeviceId,
    /// The agreement's phone: it confirms and executes.
    pub phone_id: DeviceId,
    pub order_id: OrderId,
    pub merchant_id: MerchantId,
    /// What the device signed for (the order's amount).
    pub amount: Money,
    pub usage: DeviceUsage,
    pub status: TransferPaymentStatus,
    pub task: Option<IssuedTask>,
    pub completed_by: Option<CompletedBy>,
    /// When the first agreement state counted it against the limits.
    pub counted_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// What creating a transfer payment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferCreate {
    Created,
    /// The agreement moved since it was read: read and judge again.
    Stale,
    /// The device or its phone may not ask now (`domain::transfer_payment::check_pace`).
    Paced(DevicePace),
    /// The order has an open or paid transfer payment already.
    OrderBusy,
}

#[async_trait]
pub trait TransferPaymentStore: Send + Sync + std::fmt::Debug {
    /// Saves a new payment with its agreement (read at its version, its
    /// usage now counting the payment), unless the device's or phone's pace
    /// since `pace_since` refuses it or the order is taken.
    async fn transfer_payment_create(
        &self,
        p: &StoredTransferPayment,
        agreement: &StoredTransferAgreement,
        pace_since: Timestamp,
        events: &[NewEvent],
    ) -> Result<TransferCreate, StoreError>;
    async fn transfer_payment(
        &self,
        id: &TransferPaymentId,
    ) -> Result<Option<StoredTransferPayment>, StoreError>;
    /// Saves `p` (read at its version) and, when given, its agreement (read
    /// at its version) in one transaction; `false` if either moved.
    async fn transfer_payment_update(
        &self,
        p: &StoredTransferPayment,
        agreement: Option<&StoredTransferAgreement>,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    /// Payments whose step's time ran out (see
    /// `TransferPaymentStatus::is_due`), oldest first.
    async fn transfer_payments_due(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredTransferPayment>, StoreError>;
    /// The agreement's payments not yet decided.
    async fn transfer_payments_open_of(
        &self,
        agreement: &TransferAgreementId,
    ) -> Result<Vec<StoredTransferPayment>, StoreError>;
}

const COLUMNS: &str = "id, agreement_id, user_id, device_id, phone_id, order_id, merchant_id, \
     amount_minor, currency, category, counter, purpose, route, state, failure, task, task_hash, \
     completed_by, counted_at, created_at, updated_at, expires_at, version";

/// The stages that are not decided yet, as an SQL list.
fn open_list() -> String {
    sql_list(&TransferPaymentStage::OPEN)
}

/// The stages whose amount no longer counts, as an SQL list.
fn released_list() -> String {
    sql_list(&TransferPaymentStage::RELEASED)
}

fn sql_list(stages: &[TransferPaymentStage]) -> String {
    stages
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn from_row(r: &AnyRow) -> Result<StoredTransferPayment, StoreError> {
    let text = |c: &str| -> Result<String, StoreError> { Ok(r.try_get::<String, _>(c)?) };
    let opt =
        |c: &str| -> Result<Option<String>, StoreError> { Ok(r.try_get::<Option<String>, _>(c)?) };
    let stage = text("state")?;
    let failure = opt("failure")?
        .map(|f| ErrorCode::from_wire(&f).ok_or_else(|| corrupt(format!("failure {f}"))))
        .transpose()?;
    let state = TransferPaymentStage::from_wire_name(&stage)
        .and_then(|s| TransferPaymentState::from_parts(s, failure))
        .ok_or_else(|| corrupt(format!("transfer payment state {stage} with its failure")))?;
    let route = text("route")?;
    let category = text("category")?;
    let completed_by = opt("completed_by")?
        .map(|c| {
            CompletedBy::from_wire_name(&c).ok_or_else(|| corrupt(format!("completed_by {c}")))
        })
        .transpose()?;
    let task = match (opt("task")?, opt("task_hash")?) {
        (Some(jws), Some(hash)) => Some(IssuedTask { jws, hash }),
        (None, None) => None,
        _ => return Err(corrupt("a transfer payment's task without its hash")),
    };
    let currency = text("currency")?;
    Ok(StoredTransferPayment {
        id: text("id")?.parse().map_err(corrupt)?,
        agreement_id: text("agreement_id")?.parse().map_err(corrupt)?,
        user_id: text("user_id")?.parse().map_err(corrupt)?,
        device_id: text("device_id")?.parse().map_err(corrupt)?,
        phone_id: text("phone_id")?.parse().map_err(corrupt)?,
        order_id: text("order_id")?.parse().map_err(corrupt)?,
        merchant_id: text("merchant_id")?.parse().map_err(corrupt)?,
        amount: Money::new(
            r.try_get("amount_minor")?,
            currency.parse().map_err(corrupt)?,
        ),
        usage: DeviceUsage {
            category: UsageCategory::from_wire_name(&category)
                .ok_or_else(|| corrupt(format!("category {category}")))?,
            counter: u64::try_from(r.try_get::<i64, _>("counter")?).map_err(corrupt)?,
            purpose: text("purpose")?,
        },
        status: TransferPaymentStatus {
            state,
            route: ConfirmRoute::from_wire_name(&route)
                .ok_or_else(|| corrupt(format!("route {route}")))?,
            expires_at: from_unix_micros(r.try_get("expires_at")?),
        },
        task,
        completed_by,
        counted_at: from_unix_micros(r.try_get("counted_at")?),
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

/// Saves `p`'s state, task and completion if it is still at `p.version`.
pub(crate) async fn update_payment_at_version(
    conn: &mut sqlx::AnyConnection,
    p: &StoredTransferPayment,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE transfer_payments SET state = $3, failure = $4, task = $5, task_hash = $6, \
         completed_by = $7, counted_at = $8, updated_at = $9, expires_at = $10, \
         version = version + 1 WHERE id = $1 AND version = $2",
    )
    .bind(p.id.as_str())
    .bind(p.version)
    .bind(p.status.state.as_str())
    .bind(p.status.state.failure().map(|c| c.as_str()))
    .bind(p.task.as_ref().map(|t| t.jws.clone()))
    .bind(p.task.as_ref().map(|t| t.hash.clone()))
    .bind(p.completed_by.map(|c| c.as_str()))
    .bind(to_unix_micros(p.counted_at))
    .bind(to_unix_micros(p.updated_at))
    .bind(to_unix_micros(p.status.expires_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// What the device and its phone asked for since `since`, as of `now`.
async fn pace(
    conn: &mut sqlx::AnyConnection,
    device: &DeviceId,
    phone: &DeviceId,
    since: Timestamp,
    now: Timestamp,
) -> Result<DevicePace, StoreError> {
    // Waiting for the user or the phone, and not past its time yet; or
    // executing (never expired: its debit decides).
    let pending =
        "((state IN ('awaiting_confirmation', 'confirmed', 'task_issued') AND expires_at > $3) \
                   OR state = 'executing')";
    let row = sqlx::query(&format!(
        "SELECT \
         CAST(COALESCE(SUM(CASE WHEN device_id = $1 AND created_at >= $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS device_requests, \
         CAST(COALESCE(SUM(CASE WHEN device_id = $1 AND created_at >= $2 AND state = 'declined' THEN 1 ELSE 0 END), 0) AS BIGINT) AS device_declines, \
         CAST(COALESCE(SUM(CASE WHEN device_id = $1 AND {pending} THEN 1 ELSE 0 END), 0) AS BIGINT) AS device_pending, \
         CAST(COALESCE(SUM(CASE WHEN phone_id = $4 AND created_at >= $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS phone_requests, \
         CAST(COALESCE(SUM(CASE WHEN phone_id = $4 AND {pending} THEN 1 ELSE 0 END), 0) AS BIGINT) AS phone_pending \
         FROM transfer_payments WHERE (device_id = $1 OR phone_id = $4) \
         AND (created_at >= $2 OR state = 'executing')"
    ))
    .bind(device.as_str())
    .bind(to_unix_micros(since))
    .bind(to_unix_micros(now))
    .bind(phone.as_str())
    .fetch_one(conn)
    .await?;
    Ok(DevicePace {
        device_requests: row.try_get("device_requests")?,
        device_declines: row.try_get("device_declines")?,
        device_pending: row.try_get("device_pending")?,
        phone_requests: row.try_get("phone_requests")?,
        phone_pending: row.try_get("phone_pending")?,
    })
}

#[async_trait]
impl TransferPaymentStore for Store {
    async fn transfer_payment_create(
        &self,
        p: &StoredTransferPayment,
        agreement: &StoredTransferAgreement,
        pace_since: Timestamp,
        events: &[NewEvent],
    ) -> Result<TransferCreate, StoreError> {
        let mut tx = self.begin_write().await?;
        if tx.conn().backend_name() == "PostgreSQL" {
            // One creation at a time per account: the phone is the
            // account's, so its caps cannot be passed by racing devices.
            // (SQLite: one writer.)
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("transfer-payments:{}", p.user_id))
                .execute(tx.conn())
                .await?;
        }
        let paced = pace(
            tx.conn(),
            &p.device_id,
            &p.phone_id,
            pace_since,
            p.created_at,
        )
        .await?;
        if check_pace(paced).is_err() {
            return Ok(TransferCreate::Paced(paced));
        }
        let taken: i64 = sqlx::query_scalar(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM transfer_payments \
             WHERE order_id = $1 AND state NOT IN ({})",
            released_list()
        ))
        .bind(p.order_id.as_str())
        .fetch_one(tx.conn())
        .await?;
        if taken > 0 {
            return Ok(TransferCreate::OrderBusy);
        }
        if !update_agreement_at_version(tx.conn(), agreement).await? {
            return Ok(TransferCreate::Stale);
        }
        let inserted = sqlx::query(&format!(
            "INSERT INTO transfer_payments ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, NULL, NULL, \
              $16, $17, $18, $19, 0)"
        ))
        .bind(p.id.as_str())
        .bind(p.agreement_id.as_str())
        .bind(p.user_id.as_str())
        .bind(p.device_id.as_str())
        .bind(p.phone_id.as_str())
        .bind(p.order_id.as_str())
        .bind(p.merchant_id.as_str())
        .bind(p.amount.amount_minor)
        .bind(p.amount.currency.code())
        .bind(p.usage.category.as_str())
        .bind(i64::try_from(p.usage.counter).map_err(corrupt)?)
        .bind(&p.usage.purpose)
        .bind(p.status.route.as_str())
        .bind(p.status.state.as_str())
        .bind(p.status.state.failure().map(|c| c.as_str()))
        .bind(to_unix_micros(p.counted_at))
        .bind(to_unix_micros(p.created_at))
        .bind(to_unix_micros(p.updated_at))
        .bind(to_unix_micros(p.status.expires_at))
        .execute(tx.conn())
        .await;
        match inserted {
            Ok(_) => {}
            // Another account's payment of the same order won the race.
            Err(e) if is_unique_violation(&e) => return Ok(TransferCreate::OrderBusy),
            Err(e) => return Err(e.into()),
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(TransferCreate::Created)
    }

    async fn transfer_payment(
        &self,
        id: &TransferPaymentId,
    ) -> Result<Option<StoredTransferPayment>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM transfer_payments WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn transfer_payment_update(
        &self,
        p: &StoredTransferPayment,
        agreement: Option<&StoredTransferAgreement>,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !update_payment_at_version(tx.conn(), p).await? {
            return Ok(false);
        }
        if let Some(a) = agreement {
            if !update_agreement_at_version(tx.conn(), a).await? {
                return Ok(false);
            }
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn transfer_payments_due(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredTransferPayment>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM transfer_payments WHERE state IN ({}) AND expires_at <= $1 \
             ORDER BY expires_at, id LIMIT $2",
            open_list()
        ))
        .bind(to_unix_micros(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn transfer_payments_open_of(
        &self,
        agreement: &TransferAgreementId,
    ) -> Result<Vec<StoredTransferPayment>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM transfer_payments WHERE agreement_id = $1 AND state IN ({}) \
             ORDER BY created_at, id",
            open_list()
        ))
        .bind(agreement.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }
}
