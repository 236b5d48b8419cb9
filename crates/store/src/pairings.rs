//! Business binding requests of flow F3 (`domain::device_pairing`). A
//! request changes only at the version it was read at. Creating one checks
//! the per-address and wallet-wide caps in its transaction; approving one
//! writes the first device and its transfer payment agreement with it, and
//! collecting one writes the device's session with it, so neither step can
//! be half done.

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::device::DeviceType;
use paybridge_domain::device_pairing::{PairingState, PairingStatus};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{DeviceId, PairingId, TransferAgreementId, UserId};
use paybridge_domain::{Timestamp, WireName};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Store;
use crate::devices::{insert_device, DeviceCreate, DeviceKeyRecord, StoredDevice};
use crate::error::{corrupt, is_unique_violation, StoreError};
use crate::outbox::append_events;
use crate::sessions::{insert_session, StoredSession};
use crate::transfer_agreements::{insert_agreement, StoredTransferAgreement};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPairing {
    pub id: PairingId,
    /// Keyed hash of the normalised user code.
    pub user_code_hash: String,
    pub device_type: DeviceType,
    /// The device info (model, vendor, serial), sealed.
    pub device_info_sealed: String,
    /// The key the first device made; its session is bound to it.
    pub key: DeviceKeyRecord,
    pub status: PairingStatus,
    /// Blind index of the address that started it, when known.
    pub client_index: Option<String>,
    /// The account whose phone entered the code, and that phone.
    pub claimed: Option<(UserId, DeviceId)>,
    /// The first device and its agreement, once approved.
    pub approved: Option<(DeviceId, TransferAgreementId)>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// What starting a business binding request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingCreate {
    Created,
    /// The client address started its hourly share already.
    AddressBusy,
    /// The wallet holds as many open requests as it will.
    WalletBusy,
    /// The user code is an open request's already: draw another.
    CodeTaken,
}

/// What approving a business binding request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingApprove {
    Approved,
    /// The request moved meanwhile: read and judge again.
    Stale,
    /// The account has the most active devices allowed.
    DeviceLimitReached,
}

/// The caps a new business binding request is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingCaps {
    /// Requests one client address may start since `since`.
    pub per_address: i64,
    pub since: Timestamp,
    /// Open requests the wallet holds at once.
    pub open: i64,
}

#[async_trait]
pub trait PairingStore: Send + Sync + std::fmt::Debug {
    /// Saves a new request, within `caps`.
    async fn pairing_create(
        &self,
        p: &StoredPairing,
        caps: PairingCaps,
        events: &[NewEvent],
    ) -> Result<PairingCreate, StoreError>;
    async fn pairing(&self, id: &PairingId) -> Result<Option<StoredPairing>, StoreError>;
    /// The open (pending or claimed) request with this user code, if any.
    async fn pairing_by_code(&self, code_hash: &str) -> Result<Option<StoredPairing>, StoreError>;
    /// Saves a new state if the row is at `p.version`; `false` if it moved.
    async fn pairing_update(
        &self,
        p: &StoredPairing,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    /// Saves the approval (`p`, read at its version) with the first device
    /// it pairs and that device's agreement, in one transaction.
    async fn pairing_approve(
        &self,
        p: &StoredPairing,
        device: &StoredDevice,
        agreement: &StoredTransferAgreement,
        events: &[NewEvent],
    ) -> Result<PairingApprove, StoreError>;
    /// Saves the collection (`p`, read at its version) with the device's
    /// new session; `false` if the request moved.
    async fn pairing_collect(
        &self,
        p: &StoredPairing,
        session: &StoredSession,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    /// Open requests past their expiry are marked expired; returns how many.
    async fn pairings_expire(&self, now: Timestamp, limit: i64) -> Result<u64, StoreError>;
}

const COLUMNS: &str = "id, user_code_hash, device_type, device_info_sealed, public_key, \
     key_thumbprint, state, client_index, claimed_by, claimed_on, device_id, agreement_id, \
     last_polled_at, created_at, updated_at, expires_at, version";

fn from_row(r: &AnyRow) -> Result<StoredPairing, StoreError> {
    let text = |c: &str| -> Result<String, StoreError> { Ok(r.try_get::<String, _>(c)?) };
    let opt =
        |c: &str| -> Result<Option<String>, StoreError> { Ok(r.try_get::<Option<String>, _>(c)?) };
    let state = text("state")?;
    let device_type = text("device_type")?;
    let pair = |a: &str, b: &str| -> Result<Option<(String, String)>, StoreError> {
        Ok(match (opt(a)?, opt(b)?) {
            (Some(x), Some(y)) => Some((x, y)),
            (None, None) => None,
            _ => return Err(corrupt(format!("device pairing: {a} without {b}"))),
        })
    };
    Ok(StoredPairing {
        id: text("id")?.parse().map_err(corrupt)?,
        user_code_hash: text("user_code_hash")?,
        device_type: device_type.parse().map_err(corrupt)?,
        device_info_sealed: text("device_info_sealed")?,
        key: DeviceKeyRecord {
            public_key: text("public_key")?,
            thumbprint: text("key_thumbprint")?,
        },
        status: PairingStatus {
            state: PairingState::from_wire_name(&state)
                .ok_or_else(|| corrupt(format!("device pairing state {state}")))?,
            expires_at: from_unix_micros(r.try_get("expires_at")?),
            last_polled_at: r
                .try_get::<Option<i64>, _>("last_polled_at")?
                .map(from_unix_micros),
        },
        client_index: opt("client_index")?,
        claimed: pair("claimed_by", "claimed_on")?
            .map(|(u, d)| {
                Ok::<_, StoreError>((u.parse().map_err(corrupt)?, d.parse().map_err(corrupt)?))
            })
            .transpose()?,
        approved: pair("device_id", "agreement_id")?
            .map(|(d, a)| {
                Ok::<_, StoreError>((d.parse().map_err(corrupt)?, a.parse().map_err(corrupt)?))
            })
            .transpose()?,
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

async fn update_at_version(
    conn: &mut sqlx::AnyConnection,
    p: &StoredPairing,
) -> Result<bool, StoreError> {
    let (claimed_by, claimed_on) = match &p.claimed {
        Some((u, d)) => (Some(u.to_string()), Some(d.to_string())),
        None => (None, None),
    };
    let (device, agreement) = match &p.approved {
        Some((d, a)) => (Some(d.to_string()), Some(a.to_string())),
        None => (None, None),
    };
    let n = sqlx::query(
        "UPDATE device_pairings SET state = $3, claimed_by = $4, claimed_on = $5, device_id = $6, \
         agreement_id = $7, last_polled_at = $8, updated_at = $9, expires_at = $10, version = version + 1 \
         WHERE id = $1 AND version = $2",
    )
    .bind(p.id.as_str())
    .bind(p.version)
    .bind(p.status.state.as_str())
    .bind(claimed_by)
    .bind(claimed_on)
    .bind(device)
    .bind(agreement)
    .bind(p.status.last_polled_at.map(to_unix_micros))
    .bind(to_unix_micros(p.updated_at))
    .bind(to_unix_micros(p.status.expires_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[async_trait]
impl PairingStore for Store {
    async fn pairing_create(
        &self,
        p: &StoredPairing,
        caps: PairingCaps,
        events: &[NewEvent],
    ) -> Result<PairingCreate, StoreError> {
        let mut tx = self.begin_write().await?;
        if tx.conn().backend_name() == "PostgreSQL" {
            // One start at a time, so neither cap can be passed by racing
            // starts. (SQLite: one writer.)
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('device-pairings'))")
                .execute(tx.conn())
                .await?;
        }
        if let Some(index) = &p.client_index {
            let started: i64 = sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM device_pairings \
                 WHERE client_index = $1 AND created_at >= $2",
            )
            .bind(index)
            .bind(to_unix_micros(caps.since))
            .fetch_one(tx.conn())
            .await?;
            if started >= caps.per_address {
                return Ok(PairingCreate::AddressBusy);
            }
        }
        let open: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM device_pairings \
             WHERE state IN ('pending', 'claimed') AND expires_at > $1",
        )
        .bind(to_unix_micros(p.created_at))
        .fetch_one(tx.conn())
        .await?;
        if open >= caps.open {
            return Ok(PairingCreate::WalletBusy);
        }
        let inserted = sqlx::query(&format!(
            "INSERT INTO device_pairings ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL, NULL, NULL, $9, $10, $11, 0)"
        ))
        .bind(p.id.as_str())
        .bind(&p.user_code_hash)
        .bind(p.device_type.as_str())
        .bind(&p.device_info_sealed)
        .bind(&p.key.public_key)
        .bind(&p.key.thumbprint)
        .bind(p.status.state.as_str())
        .bind(p.client_index.clone())
        .bind(to_unix_micros(p.created_at))
        .bind(to_unix_micros(p.updated_at))
        .bind(to_unix_micros(p.status.expires_at))
        .execute(tx.conn())
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(PairingCreate::CodeTaken),
            Err(e) => return Err(e.into()),
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(PairingCreate::Created)
    }

    async fn pairing(&self, id: &PairingId) -> Result<Option<StoredPairing>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM device_pairings WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn pairing_by_code(&self, code_hash: &str) -> Result<Option<StoredPairing>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM device_pairings \
             WHERE user_code_hash = $1 AND state IN ('pending', 'claimed')"
        ))
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn pairing_update(
        &self,
        p: &StoredPairing,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let moved = update_at_version(tx.conn(), p).await?;
        if moved {
            append_events(tx.conn(), events).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn pairing_approve(
        &self,
        p: &StoredPairing,
        device: &StoredDevice,
        agreement: &StoredTransferAgreement,
        events: &[NewEvent],
    ) -> Result<PairingApprove, StoreError> {
        let mut tx = self.begin_write().await?;
        // The device first: the request then names it. Returning before
        // the commit rolls everything back.
        if insert_device(tx.conn(), device).await? == DeviceCreate::LimitReached {
            return Ok(PairingApprove::DeviceLimitReached);
        }
        if !update_at_version(tx.conn(), p).await? {
            return Ok(PairingApprove::Stale);
        }
        insert_agreement(tx.conn(), agreement).await?;
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(PairingApprove::Approved)
    }

    async fn pairing_collect(
        &self,
        p: &StoredPairing,
        session: &StoredSession,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !update_at_version(tx.conn(), p).await? {
            return Ok(false);
        }
        insert_session(tx.conn(), session).await?;
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn pairings_expire(&self, now: Timestamp, limit: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE device_pairings SET state = 'expired', version = version + 1, updated_at = $1 \
             WHERE id IN (SELECT id FROM device_pairings \
                          WHERE state IN ('pending', 'claimed', 'approved') AND expires_at <= $1 \
                          ORDER BY expires_at LIMIT $2)",
        )
        .bind(to_unix_micros(now))
        .bind(limit)
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
