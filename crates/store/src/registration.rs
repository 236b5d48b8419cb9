//! Flow F2's storage: bank-registered accounts (the account, its attested
//! identity and the pending binding written in one transaction, keyed by the
//! bank's reference) and security authentications.

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::device::DeviceType;
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{DeviceId, OtpId, SecurityAuthId, UserId};
use paybridge_domain::registration::{AuthState, AuthStatus};
use paybridge_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::accounts::{insert_user, StoredUser};
use crate::bindings::{insert_binding, StoredBinding};
use crate::db::Store;
use crate::devices::DeviceKeyRecord;
use crate::error::{corrupt, is_unique_violation, StoreError};
use crate::outbox::append_events;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegistration {
    pub issuer_id: String,
    pub reference: String,
    /// Hash of what was asked, so a reused reference with other data is refused.
    pub request_hash: String,
    pub user_id: UserId,
    pub binding_id: String,
}

/// What registering found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationWrite {
    Created,
    /// This reference was registered before: its record.
    Existing(StoredRegistration),
    /// The phone or identity already has an account.
    AccountExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecurityAuth {
    pub id: SecurityAuthId,
    pub user_id: UserId,
    pub device_id: DeviceId,
    /// A device seen for the first time: held here, pending, and written
    /// to `devices` only when the authentication passes.
    pub new_device: Option<PendingDevice>,
    /// Comma-separated condition names.
    pub conditions: String,
    pub status: AuthStatus,
    pub otp_id: OtpId,
    pub created_at: Timestamp,
    pub version: i64,
}

/// A new device waiting for its security authentication to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDevice {
    pub device_type: DeviceType,
    pub name: String,
    pub key: DeviceKeyRecord,
}

#[async_trait]
pub trait RegistrationStore: Send + Sync + std::fmt::Debug {
    async fn registration(
        &self,
        issuer: &str,
        reference: &str,
    ) -> Result<Option<StoredRegistration>, StoreError>;
    /// Writes the account, its binding and the registration together.
    async fn register_partner_account(
        &self,
        r: &StoredRegistration,
        user: &StoredUser,
        binding: &StoredBinding,
        events: &[NewEvent],
    ) -> Result<RegistrationWrite, StoreError>;
    async fn security_auth_create(
        &self,
        a: &StoredSecurityAuth,
        events: &[NewEvent],
    ) -> Result<(), StoreError>;
    async fn security_auth(
        &self,
        id: &SecurityAuthId,
    ) -> Result<Option<StoredSecurityAuth>, StoreError>;
    /// Saves a new status (with its events) if the row is at `version`;
    /// `false` if it moved.
    async fn security_auth_update(
        &self,
        id: &SecurityAuthId,
        version: i64,
        status: &AuthStatus,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    /// Whether `device` passed a security authentication for `user`.
    async fn device_trusted(&self, user: &UserId, device: &DeviceId) -> Result<bool, StoreError>;
}

fn registration_from_row(r: &AnyRow) -> Result<StoredRegistration, StoreError> {
    let user: String = r.try_get("user_id")?;
    Ok(StoredRegistration {
        issuer_id: r.try_get("issuer_id")?,
        reference: r.try_get("reference")?,
        request_hash: r.try_get("request_hash")?,
        user_id: user.parse().map_err(corrupt)?,
        binding_id: r.try_get("binding_id")?,
    })
}

fn pending_from_row(r: &AnyRow) -> Result<Option<PendingDevice>, StoreError> {
    let Some(kind) = r.try_get::<Option<String>, _>("new_device_type")? else {
        return Ok(None);
    };
    Ok(Some(PendingDevice {
        device_type: kind.parse::<DeviceType>().map_err(corrupt)?,
        name: r
            .try_get::<Option<String>, _>("new_device_name")?
            .ok_or_else(|| corrupt("a pending device without a name"))?,
        key: DeviceKeyRecord {
            public_key: r
                .try_get::<Option<String>, _>("new_device_key")?
                .ok_or_else(|| corrupt("a pending device without a key"))?,
            thumbprint: r
                .try_get::<Option<String>, _>("new_device_thumbprint")?
                .ok_or_else(|| corrupt("a pending device without a thumbprint"))?,
        },
    }))
}

fn auth_from_row(r: &AnyRow) -> Result<StoredSecurityAuth, StoreError> {
    let user: String = r.try_get("user_id")?;
    let device: String = r.try_get("device_id")?;
    let otp: String = r.try_get("otp_id")?;
    let state: String = r.try_get("state")?;
    let id: String = r.try_get("id")?;
    Ok(StoredSecurityAuth {
        id: id.parse().map_err(corrupt)?,
        user_id: user.parse().map_err(corrupt)?,
        device_id: device.parse().map_err(corrupt)?,
        new_device: pending_from_row(r)?,
        conditions: r.try_get("conditions")?,
        status: AuthStatus {
            state: AuthState::parse(&state)
                .ok_or_else(|| corrupt(format!("auth state {state}")))?,
            digit_attempts: u32::try_from(r.try_get::<i64, _>("digit_attempts")?)
                .map_err(corrupt)?,
            expires_at: from_unix_micros(r.try_get("expires_at")?),
        },
        otp_id: otp.parse().map_err(corrupt)?,
        created_at: from_unix_micros(r.try_get("created_at")?),
        version: r.try_get("version")?,
    })
}

#[async_trait]
impl RegistrationStore for Store {
    async fn registration(
        &self,
        issuer: &str,
        reference: &str,
    ) -> Result<Option<StoredRegistration>, StoreError> {
        let row = sqlx::query(
            "SELECT issuer_id, reference, request_hash, user_id, binding_id FROM partner_registrations \
             WHERE issuer_id = $1 AND reference = $2",
        )
        .bind(issuer)
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(registration_from_row).transpose()
    }

    async fn register_partner_account(
        &self,
        r: &StoredRegistration,
        user: &StoredUser,
        binding: &StoredBinding,
        events: &[NewEvent],
    ) -> Result<RegistrationWrite, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO partner_registrations (issuer_id, reference, request_hash, user_id, binding_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&r.issuer_id)
        .bind(&r.reference)
        .bind(&r.request_hash)
        .bind(r.user_id.as_str())
        .bind(&r.binding_id)
        .bind(to_unix_micros(user.created_at))
        .execute(tx.conn())
        .await?
        .rows_affected();
        if inserted == 0 {
            drop(tx);
            let existing = self
                .registration(&r.issuer_id, &r.reference)
                .await?
                .ok_or_else(|| corrupt("a registration conflicted but cannot be found"))?;
            return Ok(RegistrationWrite::Existing(existing));
        }
        match insert_user(tx.conn(), user).await {
            Ok(true) => {}
            Ok(false) => return Ok(RegistrationWrite::AccountExists),
            Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                return Ok(RegistrationWrite::AccountExists)
            }
            Err(e) => return Err(e),
        }
        insert_binding(tx.conn(), binding).await?;
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(RegistrationWrite::Created)
    }

    async fn security_auth_create(
        &self,
        a: &StoredSecurityAuth,
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO security_auths (id, user_id, device_id, conditions, state, otp_id, digit_attempts, \
             expires_at, created_at, version, new_device_type, new_device_name, new_device_key, \
             new_device_thumbprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, $13)",
        )
        .bind(a.id.as_str())
        .bind(a.user_id.as_str())
        .bind(a.device_id.as_str())
        .bind(&a.conditions)
        .bind(a.status.state.as_str())
        .bind(a.otp_id.as_str())
        .bind(i64::from(a.status.digit_attempts))
        .bind(to_unix_micros(a.status.expires_at))
        .bind(to_unix_micros(a.created_at))
        .bind(a.new_device.as_ref().map(|d| d.device_type.as_str()))
        .bind(a.new_device.as_ref().map(|d| d.name.clone()))
        .bind(a.new_device.as_ref().map(|d| d.key.public_key.clone()))
        .bind(a.new_device.as_ref().map(|d| d.key.thumbprint.clone()))
        .execute(tx.conn())
        .await?;
        append_events(tx.conn(), events).await?;
        tx.commit().await
    }

    async fn security_auth(
        &self,
        id: &SecurityAuthId,
    ) -> Result<Option<StoredSecurityAuth>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id, device_id, conditions, state, otp_id, digit_attempts, expires_at, created_at, version, \
             new_device_type, new_device_name, new_device_key, new_device_thumbprint \
             FROM security_auths WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(auth_from_row).transpose()
    }

    async fn security_auth_update(
        &self,
        id: &SecurityAuthId,
        version: i64,
        status: &AuthStatus,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE security_auths SET state = $3, digit_attempts = $4, version = version + 1 \
             WHERE id = $1 AND version = $2",
        )
        .bind(id.as_str())
        .bind(version)
        .bind(status.state.as_str())
        .bind(i64::from(status.digit_attempts))
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n == 1 {
            append_events(tx.conn(), events).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn device_trusted(&self, user: &UserId, device: &DeviceId) -> Result<bool, StoreError> {
        // Trusted: it passed security authentication, or a trusted device's
        // session paired it.
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM security_auths WHERE user_id = $1 AND device_id = $2 AND state = 'passed' \
             UNION ALL SELECT CAST(COUNT(*) AS BIGINT) FROM devices WHERE user_id = $1 AND id = $2 AND paired_by IS NOT NULL \
             ORDER BY 1 DESC LIMIT 1",
        )
        .bind(user.as_str())
        .bind(device.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}
