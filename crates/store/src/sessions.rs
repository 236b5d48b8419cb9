//! Login sessions and wrong-password counters, shared by the wallet (wallet
//! accounts) and the bank (bank app customers).

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::credentials::PasswordGuard;
use paybridge_domain::ids::{DeviceId, SessionId};
use paybridge_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Store;
use crate::error::{corrupt, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub id: SessionId,
    pub token_hash: String,
    /// Whose session: a `usr_…` or a `cus_…`.
    pub subject: String,
    /// The device it was opened on.
    pub device_id: Option<DeviceId>,
    /// The RFC 7638 thumbprint of the key the session is bound to: every
    /// request of the session must carry a proof by that key.
    pub key_thumbprint: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl StoredSession {
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    async fn session_create(&self, session: &StoredSession) -> Result<(), StoreError>;
    async fn session_by_token(&self, token_hash: &str)
        -> Result<Option<StoredSession>, StoreError>;
    /// Revokes one session of `subject`; `false` if there is none live.
    async fn session_revoke(
        &self,
        id: &SessionId,
        subject: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Revokes every live session of `subject` opened on `device`.
    async fn session_revoke_device(
        &self,
        subject: &str,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// The counter for a login name's blind index (fresh when none).
    async fn login_guard(&self, login_index: &str) -> Result<PasswordGuard, StoreError>;
    /// Saves `new` if the counter is still `expected` (concurrent wrong
    /// tries must each count); `false` if it moved meanwhile.
    async fn login_guard_replace(
        &self,
        login_index: &str,
        expected: &PasswordGuard,
        new: &PasswordGuard,
    ) -> Result<bool, StoreError>;
}

fn session_from_row(row: &AnyRow) -> Result<StoredSession, StoreError> {
    let id: String = row.try_get("id")?;
    let device: Option<String> = row.try_get("device_id")?;
    Ok(StoredSession {
        id: id.parse().map_err(corrupt)?,
        token_hash: row.try_get("token_hash")?,
        subject: row.try_get("subject")?,
        device_id: device.map(|d| d.parse()).transpose().map_err(corrupt)?,
        key_thumbprint: row.try_get("key_thumbprint")?,
        created_at: from_unix_micros(row.try_get("created_at")?),
        expires_at: from_unix_micros(row.try_get("expires_at")?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_unix_micros),
    })
}

/// Inserts session `s` in the caller's transaction.
pub(crate) async fn insert_session(
    conn: &mut sqlx::AnyConnection,
    s: &StoredSession,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, subject, device_id, key_thumbprint, created_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
    )
    .bind(s.id.as_str())
    .bind(&s.token_hash)
    .bind(&s.subject)
    .bind(s.device_id.as_ref().map(|d| d.as_str().to_owned()))
    .bind(s.key_thumbprint.clone())
    .bind(to_unix_micros(s.created_at))
    .bind(to_unix_micros(s.expires_at))
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl SessionStore for Store {
    async fn session_create(&self, s: &StoredSession) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_session(tx.conn(), s).await?;
        tx.commit().await
    }

    async fn session_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<StoredSession>, StoreError> {
        let row = sqlx::query(
            "SELECT id, token_hash, subject, device_id, key_thumbprint, created_at, expires_at, revoked_at \
             FROM sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn session_revoke(
        &self,
        id: &SessionId,
        subject: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND subject = $2 AND revoked_at IS NULL",
        )
        .bind(id.as_str())
        .bind(subject)
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn session_revoke_device(
        &self,
        subject: &str,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE sessions SET revoked_at = $3 WHERE subject = $1 AND device_id = $2 AND revoked_at IS NULL",
        )
        .bind(subject)
        .bind(device.as_str())
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn login_guard(&self, login_index: &str) -> Result<PasswordGuard, StoreError> {
        let row = sqlx::query(
            "SELECT failed_attempts, locked_until, locks, consecutive_failures \
             FROM login_guards WHERE login_index = $1",
        )
        .bind(login_index)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(PasswordGuard::default()),
            Some(r) => Ok(PasswordGuard {
                failed_attempts: u32::try_from(r.try_get::<i64, _>("failed_attempts")?)
                    .map_err(corrupt)?,
                locked_until: r
                    .try_get::<Option<i64>, _>("locked_until")?
                    .map(from_unix_micros),
                locks: u32::try_from(r.try_get::<i64, _>("locks")?).map_err(corrupt)?,
                consecutive_failures: u32::try_from(r.try_get::<i64, _>("consecutive_failures")?)
                    .map_err(corrupt)?,
            }),
        }
    }

    async fn login_guard_replace(
        &self,
        login_index: &str,
        expected: &PasswordGuard,
        new: &PasswordGuard,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        // Inserted when there is no row yet (a fresh counter), else updated
        // only if the row still holds what the caller judged against.
        let n = sqlx::query(
            "INSERT INTO login_guards (login_index, failed_attempts, locked_until, locks, consecutive_failures) \
             VALUES ($1, $4, $5, $6, $7) \
             ON CONFLICT (login_index) DO UPDATE SET failed_attempts = excluded.failed_attempts, \
             locked_until = excluded.locked_until, locks = excluded.locks, \
             consecutive_failures = excluded.consecutive_failures \
             WHERE login_guards.failed_attempts = $2 AND COALESCE(login_guards.locked_until, -1) = $3 \
             AND login_guards.consecutive_failures = $8",
        )
        .bind(login_index)
        .bind(i64::from(expected.failed_attempts))
        .bind(expected.locked_until.map(to_unix_micros).unwrap_or(-1))
        .bind(i64::from(new.failed_attempts))
        .bind(new.locked_until.map(to_unix_micros))
        .bind(i64::from(new.locks))
        .bind(i64::from(new.consecutive_failures))
        .bind(i64::from(expected.consecutive_failures))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }
}
