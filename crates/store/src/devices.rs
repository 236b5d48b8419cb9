//! Devices of wallet accounts, their WebAuthn credentials, and WebAuthn
//! ceremonies in progress (single use: taking one marks it used).

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::device::{DeviceFilter, DeviceStatus, DeviceType, MAX_ACTIVE_DEVICES};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{CeremonyId, CredentialId, DeviceId, UserId};
use paybridge_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Store;
use crate::error::{corrupt, StoreError};
use crate::outbox::append_events;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDevice {
    pub id: DeviceId,
    pub user_id: UserId,
    pub device_type: DeviceType,
    pub name: String,
    pub status: DeviceStatus,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// Whether a WebAuthn credential is registered for it.
    pub has_credential: bool,
    /// The device's own public key (a JWK) and its RFC 7638 thumbprint;
    /// `None` only for devices registered before devices had keys.
    pub key: Option<DeviceKeyRecord>,
    /// The trusted device whose session paired this one, if any.
    pub paired_by: Option<DeviceId>,
}

/// A device's public key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeyRecord {
    /// The public JWK, as JSON.
    pub public_key: String,
    pub thumbprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub id: CredentialId,
    pub user_id: UserId,
    pub device_id: DeviceId,
    /// The authenticator's credential id, base64url.
    pub credential_id: String,
    /// webauthn-rs's `Passkey` as JSON.
    pub passkey: String,
    pub sign_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCeremony {
    pub id: CeremonyId,
    pub user_id: UserId,
    pub device_id: DeviceId,
    /// `registration` or `authentication`.
    pub kind: String,
    /// What the ceremony approves, checked when it finishes.
    pub purpose: String,
    /// webauthn-rs's server state as JSON.
    pub state: String,
    pub expires_at: Timestamp,
}

/// What taking a ceremony found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CeremonyTake {
    Taken(StoredCeremony),
    AlreadyUsed,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCreate {
    Created,
    /// The account already has the most active devices allowed.
    LimitReached,
}

#[async_trait]
pub trait DeviceStore: Send + Sync + std::fmt::Debug {
    async fn device_create(
        &self,
        device: &StoredDevice,
        events: &[NewEvent],
    ) -> Result<DeviceCreate, StoreError>;
    /// The device if it belongs to `user` (so others' devices are "not found").
    async fn device_of(
        &self,
        user: &UserId,
        id: &DeviceId,
    ) -> Result<Option<StoredDevice>, StoreError>;
    async fn device(&self, id: &DeviceId) -> Result<Option<StoredDevice>, StoreError>;
    /// At most `limit` of a user's devices, newest first, after the device
    /// `after` (a cursor); `None` if `after` is not theirs.
    async fn devices_page(
        &self,
        user: &UserId,
        which: DeviceFilter,
        limit: u32,
        after: Option<&DeviceId>,
    ) -> Result<Option<Vec<StoredDevice>>, StoreError>;
    /// A user's devices, newest first.
    async fn devices_of(
        &self,
        user: &UserId,
        which: DeviceFilter,
    ) -> Result<Vec<StoredDevice>, StoreError>;
    async fn device_rename(
        &self,
        user: &UserId,
        id: &DeviceId,
        name: &str,
    ) -> Result<bool, StoreError>;
    /// Revokes an active device and deletes its credential; `false` if it was
    /// not active.
    async fn device_revoke(
        &self,
        user: &UserId,
        id: &DeviceId,
        now: Timestamp,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    async fn device_touch(&self, id: &DeviceId, now: Timestamp) -> Result<(), StoreError>;

    async fn ceremony_create(&self, c: &StoredCeremony) -> Result<(), StoreError>;
    /// Takes a ceremony of `user` for good: returns it and marks it used.
    /// Someone else's ceremony is `NotFound`.
    async fn ceremony_take(
        &self,
        user: &UserId,
        id: &CeremonyId,
        now: Timestamp,
    ) -> Result<CeremonyTake, StoreError>;

    /// Stores a device's credential (replacing none: one per device).
    async fn credential_create(
        &self,
        c: &StoredCredential,
        now: Timestamp,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    async fn credential_of_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<StoredCredential>, StoreError>;
    /// Saves the credential after a use if its counter is still
    /// `expected_count` (two assertions racing cannot both pass).
    async fn credential_used(
        &self,
        id: &CredentialId,
        expected_count: i64,
        passkey: &str,
        new_count: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}

const DEVICE_SELECT: &str =
    "SELECT d.id, d.user_id, d.device_type, d.name, d.status, d.created_at, \
     d.last_seen_at, d.revoked_at, d.public_key, d.key_thumbprint, d.paired_by, \
     (SELECT COUNT(*) FROM webauthn_credentials c WHERE c.device_id = d.id) AS credentials \
     FROM devices d";

fn device_from_row(r: &AnyRow) -> Result<StoredDevice, StoreError> {
    let id: String = r.try_get("id")?;
    let user: String = r.try_get("user_id")?;
    let t: String = r.try_get("device_type")?;
    let status: String = r.try_get("status")?;
    Ok(StoredDevice {
        id: id.parse().map_err(corrupt)?,
        user_id: user.parse().map_err(corrupt)?,
        device_type: t.parse().map_err(corrupt)?,
        name: r.try_get("name")?,
        status: match (status.as_str(), r.try_get::<Option<i64>, _>("revoked_at")?) {
            ("active", None) => DeviceStatus::Active,
            ("revoked", Some(at)) => DeviceStatus::Revoked {
                at: from_unix_micros(at),
            },
            (other, _) => return Err(corrupt(format!("device status {other}"))),
        },
        created_at: from_unix_micros(r.try_get("created_at")?),
        last_seen_at: from_unix_micros(r.try_get("last_seen_at")?),
        has_credential: r.try_get::<i64, _>("credentials")? > 0,
        key: match (
            r.try_get::<Option<String>, _>("public_key")?,
            r.try_get::<Option<String>, _>("key_thumbprint")?,
        ) {
            (Some(public_key), Some(thumbprint)) => Some(DeviceKeyRecord {
                public_key,
                thumbprint,
            }),
            (None, None) => None,
            _ => return Err(corrupt("a device key without its thumbprint")),
        },
        paired_by: r
            .try_get::<Option<String>, _>("paired_by")?
            .map(|d| d.parse())
            .transpose()
            .map_err(corrupt)?,
    })
}

fn credential_from_row(r: &AnyRow) -> Result<StoredCredential, StoreError> {
    let id: String = r.try_get("id")?;
    let user: String = r.try_get("user_id")?;
    let device: String = r.try_get("device_id")?;
    Ok(StoredCredential {
        id: id.parse().map_err(corrupt)?,
        user_id: user.parse().map_err(corrupt)?,
        device_id: device.parse().map_err(corrupt)?,
        credential_id: r.try_get("credential_id")?,
        passkey: r.try_get("passkey")?,
        sign_count: r.try_get("sign_count")?,
    })
}

/// Inserts device `d` in the caller's transaction unless its account
/// already has [`MAX_ACTIVE_DEVICES`] active ones (creation is serialised
/// per account, so the limit holds under races).
pub(crate) async fn insert_device(
    conn: &mut sqlx::AnyConnection,
    d: &StoredDevice,
) -> Result<DeviceCreate, StoreError> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT id FROM wallet_users WHERE id = $1 FOR UPDATE")
            .bind(d.user_id.as_str())
            .execute(&mut *conn)
            .await?;
    }
    let active: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM devices WHERE user_id = $1 AND status = 'active'",
    )
    .bind(d.user_id.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if active >= MAX_ACTIVE_DEVICES as i64 {
        return Ok(DeviceCreate::LimitReached);
    }
    sqlx::query(
        "INSERT INTO devices (id, user_id, device_type, name, status, created_at, last_seen_at, revoked_at, \
         public_key, key_thumbprint, paired_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(d.id.as_str())
    .bind(d.user_id.as_str())
    .bind(d.device_type.as_str())
    .bind(&d.name)
    .bind(d.status.as_str())
    .bind(to_unix_micros(d.created_at))
    .bind(to_unix_micros(d.last_seen_at))
    .bind(d.status.revoked_at().map(to_unix_micros))
    .bind(d.key.as_ref().map(|k| k.public_key.clone()))
    .bind(d.key.as_ref().map(|k| k.thumbprint.clone()))
    .bind(d.paired_by.as_ref().map(|p| p.as_str().to_owned()))
    .execute(&mut *conn)
    .await?;
    Ok(DeviceCreate::Created)
}

/// Revokes `user`'s active device `id` in the caller's transaction: its
/// credential is deleted and its sessions end. `false` if it was not active.
pub(crate) async fn revoke_device(
    conn: &mut sqlx::AnyConnection,
    user: &UserId,
    id: &DeviceId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE devices SET status = 'revoked', revoked_at = $3 \
         WHERE id = $1 AND user_id = $2 AND status = 'active'",
    )
    .bind(id.as_str())
    .bind(user.as_str())
    .bind(to_unix_micros(now))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM webauthn_credentials WHERE device_id = $1")
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE sessions SET revoked_at = $3 WHERE subject = $1 AND device_id = $2 AND revoked_at IS NULL",
    )
    .bind(user.as_str())
    .bind(id.as_str())
    .bind(to_unix_micros(now))
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

#[async_trait]
impl DeviceStore for Store {
    async fn device_create(
        &self,
        d: &StoredDevice,
        events: &[NewEvent],
    ) -> Result<DeviceCreate, StoreError> {
        let mut tx = self.begin_write().await?;
        if insert_device(tx.conn(), d).await? == DeviceCreate::LimitReached {
            return Ok(DeviceCreate::LimitReached);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(DeviceCreate::Created)
    }

    async fn device_of(
        &self,
        user: &UserId,
        id: &DeviceId,
    ) -> Result<Option<StoredDevice>, StoreError> {
        let row = sqlx::query(&format!(
            "{DEVICE_SELECT} WHERE d.id = $1 AND d.user_id = $2"
        ))
        .bind(id.as_str())
        .bind(user.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn device(&self, id: &DeviceId) -> Result<Option<StoredDevice>, StoreError> {
        let row = sqlx::query(&format!("{DEVICE_SELECT} WHERE d.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn devices_of(
        &self,
        user: &UserId,
        which: DeviceFilter,
    ) -> Result<Vec<StoredDevice>, StoreError> {
        let filter = match which {
            DeviceFilter::WithRevoked => "",
            DeviceFilter::Active => " AND d.status = 'active'",
        };
        let rows = sqlx::query(&format!(
            "{DEVICE_SELECT} WHERE d.user_id = $1{filter} ORDER BY d.created_at DESC, d.id DESC"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(device_from_row).collect()
    }

    async fn devices_page(
        &self,
        user: &UserId,
        which: DeviceFilter,
        limit: u32,
        after: Option<&DeviceId>,
    ) -> Result<Option<Vec<StoredDevice>>, StoreError> {
        let filter = match which {
            DeviceFilter::WithRevoked => "",
            DeviceFilter::Active => " AND d.status = 'active'",
        };
        let Some((at, id)) = self
            .page_start("devices", user, after.map(|a| a.as_str()))
            .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(&format!(
            "{DEVICE_SELECT} WHERE d.user_id = $1{filter} \
             AND (d.created_at < $2 OR (d.created_at = $2 AND d.id < $3)) \
             ORDER BY d.created_at DESC, d.id DESC LIMIT $4"
        ))
        .bind(user.as_str())
        .bind(at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(device_from_row)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    async fn device_rename(
        &self,
        user: &UserId,
        id: &DeviceId,
        name: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE devices SET name = $3 WHERE id = $1 AND user_id = $2 AND status = 'active'",
        )
        .bind(id.as_str())
        .bind(user.as_str())
        .bind(name)
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn device_revoke(
        &self,
        user: &UserId,
        id: &DeviceId,
        now: Timestamp,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !revoke_device(tx.conn(), user, id, now).await? {
            return Ok(false);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn device_touch(&self, id: &DeviceId, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE devices SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2")
            .bind(id.as_str())
            .bind(to_unix_micros(now))
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    async fn ceremony_create(&self, c: &StoredCeremony) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (id, user_id, device_id, kind, purpose, state, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(c.id.as_str())
        .bind(c.user_id.as_str())
        .bind(c.device_id.as_str())
        .bind(&c.kind)
        .bind(&c.purpose)
        .bind(&c.state)
        .bind(to_unix_micros(c.expires_at))
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn ceremony_take(
        &self,
        user: &UserId,
        id: &CeremonyId,
        now: Timestamp,
    ) -> Result<CeremonyTake, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE webauthn_ceremonies SET used_at = $3 WHERE id = $1 AND user_id = $2 AND used_at IS NULL \
             RETURNING id, user_id, device_id, kind, purpose, state, expires_at",
        )
        .bind(id.as_str())
        .bind(user.as_str())
        .bind(to_unix_micros(now))
        .fetch_optional(tx.conn())
        .await?;
        let Some(r) = row else {
            let exists: Option<String> = sqlx::query_scalar(
                "SELECT id FROM webauthn_ceremonies WHERE id = $1 AND user_id = $2",
            )
            .bind(id.as_str())
            .bind(user.as_str())
            .fetch_optional(tx.conn())
            .await?;
            tx.commit().await?;
            return Ok(if exists.is_some() {
                CeremonyTake::AlreadyUsed
            } else {
                CeremonyTake::NotFound
            });
        };
        tx.commit().await?;
        let cid: String = r.try_get("id")?;
        let uid: String = r.try_get("user_id")?;
        let did: String = r.try_get("device_id")?;
        Ok(CeremonyTake::Taken(StoredCeremony {
            id: cid.parse().map_err(corrupt)?,
            user_id: uid.parse().map_err(corrupt)?,
            device_id: did.parse().map_err(corrupt)?,
            kind: r.try_get("kind")?,
            purpose: r.try_get("purpose")?,
            state: r.try_get("state")?,
            expires_at: from_unix_micros(r.try_get("expires_at")?),
        }))
    }

    async fn credential_create(
        &self,
        c: &StoredCredential,
        now: Timestamp,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "INSERT INTO webauthn_credentials (id, user_id, device_id, credential_id, passkey, sign_count, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS \
             (SELECT 1 FROM devices WHERE id = $3 AND user_id = $2 AND status = 'active') \
             ON CONFLICT DO NOTHING",
        )
        .bind(c.id.as_str())
        .bind(c.user_id.as_str())
        .bind(c.device_id.as_str())
        .bind(&c.credential_id)
        .bind(&c.passkey)
        .bind(c.sign_count)
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

    async fn credential_of_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id, device_id, credential_id, passkey, sign_count \
             FROM webauthn_credentials WHERE device_id = $1",
        )
        .bind(device.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(credential_from_row).transpose()
    }

    async fn credential_used(
        &self,
        id: &CredentialId,
        expected_count: i64,
        passkey: &str,
        new_count: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE webauthn_credentials SET passkey = $3, sign_count = $4, last_used_at = $5 \
             WHERE id = $1 AND sign_count = $2",
        )
        .bind(id.as_str())
        .bind(expected_count)
        .bind(passkey)
        .bind(new_count)
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }
}
