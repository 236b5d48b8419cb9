//! Transfer payment agreements of flow F3 (`domain::transfer_agreement`).
//! Everything of an agreement but its ids and state is sealed (the payment
//! agreement information, [`crate::keys::TRANSFER_AGREEMENT_INFO`]); the
//! store never opens it. An agreement changes only at the version it was
//! read at; a change that stops its pending payments and (revoked) its
//! device writes them in the same transaction.

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{DeviceId, TransferAgreementId, UserId};
use paybridge_domain::transfer_agreement::AgreementState;
use paybridge_domain::{Timestamp, WireName};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{PageOf, PageOrder, Store};
use crate::devices::revoke_device;
use crate::error::{corrupt, StoreError};
use crate::outbox::append_events;
use crate::transfer_payments::{update_payment_at_version, StoredTransferPayment};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransferAgreement {
    pub id: TransferAgreementId,
    pub user_id: UserId,
    /// The first device it lets pay.
    pub device_id: DeviceId,
    /// The phone that approved it: it confirms and executes the payments.
    pub phone_id: DeviceId,
    pub state: AgreementState,
    /// The payment agreement information, sealed for id, user and device.
    pub info_sealed: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// What an agreement change takes with it, in its transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgreementChange<'a> {
    /// Pending payments it stops (each read at its version, in its new state).
    pub stopped: &'a [StoredTransferPayment],
    /// Revoke the first device too (its sessions end, its credential goes).
    pub revoke_device: bool,
}

#[async_trait]
pub trait TransferAgreementStore: Send + Sync + std::fmt::Debug {
    async fn transfer_agreement(
        &self,
        id: &TransferAgreementId,
    ) -> Result<Option<StoredTransferAgreement>, StoreError>;
    /// The agreement query result: every agreement of `user`, oldest first.
    async fn transfer_agreements_of(
        &self,
        user: &UserId,
    ) -> Result<Vec<StoredTransferAgreement>, StoreError>;
    /// At most `limit` of `user`'s agreements, newest first, after the
    /// agreement `after`; `None` if `after` is not theirs.
    async fn transfer_agreements_page(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&TransferAgreementId>,
    ) -> Result<Option<Vec<StoredTransferAgreement>>, StoreError>;
    /// Saves `a` (read at its version) with what the change takes with it;
    /// `false` if the agreement or one of the payments moved.
    async fn transfer_agreement_change(
        &self,
        a: &StoredTransferAgreement,
        change: AgreementChange<'_>,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
}

const COLUMNS: &str =
    "id, user_id, device_id, phone_id, state, info_sealed, created_at, updated_at, version";

fn from_row(r: &AnyRow) -> Result<StoredTransferAgreement, StoreError> {
    let text = |c: &str| -> Result<String, StoreError> { Ok(r.try_get::<String, _>(c)?) };
    let state = text("state")?;
    Ok(StoredTransferAgreement {
        id: text("id")?.parse().map_err(corrupt)?,
        user_id: text("user_id")?.parse().map_err(corrupt)?,
        device_id: text("device_id")?.parse().map_err(corrupt)?,
        phone_id: text("phone_id")?.parse().map_err(corrupt)?,
        state: AgreementState::from_wire_name(&state)
            .ok_or_else(|| corrupt(format!("transfer agreement state {state}")))?,
        info_sealed: text("info_sealed")?,
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

/// Inserts a new agreement in the caller's transaction (with the pairing
/// that approves it).
pub(crate) async fn insert_agreement(
    conn: &mut sqlx::AnyConnection,
    a: &StoredTransferAgreement,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO transfer_agreements ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)"
    ))
    .bind(a.id.as_str())
    .bind(a.user_id.as_str())
    .bind(a.device_id.as_str())
    .bind(a.phone_id.as_str())
    .bind(a.state.as_str())
    .bind(&a.info_sealed)
    .bind(to_unix_micros(a.created_at))
    .bind(to_unix_micros(a.updated_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// Saves `a`'s state and sealed information if it is still at `a.version`.
pub(crate) async fn update_agreement_at_version(
    conn: &mut sqlx::AnyConnection,
    a: &StoredTransferAgreement,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE transfer_agreements SET state = $3, info_sealed = $4, updated_at = $5, \
         version = version + 1 WHERE id = $1 AND version = $2",
    )
    .bind(a.id.as_str())
    .bind(a.version)
    .bind(a.state.as_str())
    .bind(&a.info_sealed)
    .bind(to_unix_micros(a.updated_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[async_trait]
impl TransferAgreementStore for Store {
    async fn transfer_agreement(
        &self,
        id: &TransferAgreementId,
    ) -> Result<Option<StoredTransferAgreement>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM transfer_agreements WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn transfer_agreements_of(
        &self,
        user: &UserId,
    ) -> Result<Vec<StoredTransferAgreement>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM transfer_agreements WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn transfer_agreements_page(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&TransferAgreementId>,
    ) -> Result<Option<Vec<StoredTransferAgreement>>, StoreError> {
        let rows = self
            .page_rows(PageOf {
                table: "transfer_agreements",
                columns: COLUMNS,
                owner_column: "user_id",
                owner: user.as_str(),
                order: PageOrder::NewestFirst,
                limit,
                after: after.map(|a| a.as_str()),
            })
            .await?;
        rows.map(|rows| rows.iter().map(from_row).collect())
            .transpose()
    }

    async fn transfer_agreement_change(
        &self,
        a: &StoredTransferAgreement,
        change: AgreementChange<'_>,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !update_agreement_at_version(tx.conn(), a).await? {
            return Ok(false);
        }
        for p in change.stopped {
            if !update_payment_at_version(tx.conn(), p).await? {
                return Ok(false);
            }
        }
        if change.revoke_device {
            revoke_device(tx.conn(), &a.user_id, &a.device_id, a.updated_at).await?;
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }
}
