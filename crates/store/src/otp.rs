//! OTP challenges' storage. A status change is saved only if the row is
//! still at the version it was read at, so two concurrent answers cannot
//! both be judged against the same attempt count.

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::ids::{OtpId, UserId};
use paybridge_domain::otp::{OtpState, OtpStatus};
use paybridge_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Store;
use crate::error::{corrupt, StoreError};

/// A challenge as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOtp {
    pub id: OtpId,
    pub purpose: String,
    /// The phone, sealed with envelope encryption.
    pub phone_sealed: String,
    /// Blind index of the phone (for the hourly cap).
    pub phone_index: String,
    /// For display: `138****5678`.
    pub phone_masked: String,
    /// The account the code was sent for (none for a registration).
    pub account: Option<UserId>,
    pub code_hash: String,
    pub status: OtpStatus,
    pub version: i64,
}

/// How many codes may be sent within each limit's window. Checked and
/// counted in the transaction that records the send, with each limit's
/// sends serialised (an advisory lock per key on PostgreSQL, taken in the
/// order given; the one writer on SQLite): any number of concurrent sends
/// stays within every limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBudget {
    /// The phone's limit first, then the wider ones.
    pub limits: Vec<SendLimit>,
}

/// One budget: at most `max` sends counted under `key` in the last
/// `window_secs`. Keys are the phone's blind index, or `account:…`,
/// `ip:…` (a blind index too) and `global`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendLimit {
    pub key: String,
    pub max: u32,
    pub window_secs: i64,
}

impl SendBudget {
    /// Only a phone's hourly limit.
    pub fn phone_per_hour(phone_index: &str, max: u32) -> Self {
        Self {
            limits: vec![SendLimit {
                key: phone_index.to_owned(),
                max,
                window_secs: 3600,
            }],
        }
    }
}

/// Whether a send was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpSend {
    Sent,
    /// The budget's limit number `limit` is spent: nothing was written.
    BudgetSpent {
        limit: usize,
    },
    /// (A resend) the challenge moved meanwhile: nothing was written.
    Stale,
}

#[async_trait]
pub trait OtpStore: Send + Sync + std::fmt::Debug {
    /// Stores a new challenge and counts a send, within every limit of `budget`.
    async fn otp_create(
        &self,
        otp: &StoredOtp,
        now: Timestamp,
        budget: &SendBudget,
    ) -> Result<OtpSend, StoreError>;
    /// A resend: a new code hash and status if the row is still at
    /// `expected_version`, counted as a send within `budget`.
    async fn otp_resend(
        &self,
        id: &OtpId,
        expected_version: i64,
        status: &OtpStatus,
        code_hash: &str,
        now: Timestamp,
        budget: &SendBudget,
    ) -> Result<OtpSend, StoreError>;
    async fn otp_get(&self, id: &OtpId) -> Result<Option<StoredOtp>, StoreError>;
    /// Saves a new status (an answer) if the row is still at
    /// `expected_version`; `false` if it moved meanwhile.
    async fn otp_update(
        &self,
        id: &OtpId,
        expected_version: i64,
        status: &OtpStatus,
    ) -> Result<bool, StoreError>;
    /// Codes sent to a phone (by blind index) since `since`.
    async fn otp_sends_since(&self, phone_index: &str, since: Timestamp)
        -> Result<u32, StoreError>;
    /// Wrong answers in a row counted under `guard` (a phone's blind
    /// index, or `account:<user id>`), across challenges.
    async fn otp_guard_failures(&self, guard: &str) -> Result<u32, StoreError>;
    /// Counts a wrong answer under `guard` (atomically: racing answers are
    /// all counted); answers the new count.
    async fn otp_guard_failed(&self, guard: &str, now: Timestamp) -> Result<u32, StoreError>;
    /// Clears the count under `guard` (a right answer, or a step-up).
    async fn otp_guard_clear(&self, guard: &str) -> Result<(), StoreError>;
    /// Forgets the sends before `before` (no budget counts them any more).
    async fn otp_sends_purge(&self, before: Timestamp) -> Result<u64, StoreError>;
}

fn state_str(s: OtpState) -> &'static str {
    match s {
        OtpState::Pending => "pending",
        OtpState::Verified => "verified",
        OtpState::Locked => "locked",
    }
}

fn otp_from_row(row: &AnyRow) -> Result<StoredOtp, StoreError> {
    let id: String = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(StoredOtp {
        id: id.parse().map_err(corrupt)?,
        purpose: row.try_get("purpose")?,
        phone_sealed: row.try_get("phone_sealed")?,
        phone_index: row.try_get("phone_index")?,
        phone_masked: row.try_get("phone_masked")?,
        account: row
            .try_get::<Option<String>, _>("account_id")?
            .map(|a| a.parse().map_err(corrupt))
            .transpose()?,
        code_hash: row.try_get("code_hash")?,
        status: OtpStatus {
            state: match state.as_str() {
                "pending" => OtpState::Pending,
                "verified" => OtpState::Verified,
                "locked" => OtpState::Locked,
                other => return Err(corrupt(format!("otp state {other}"))),
            },
            attempts: u32::try_from(attempts).map_err(corrupt)?,
            expires_at: from_unix_micros(row.try_get("expires_at")?),
            last_sent_at: from_unix_micros(row.try_get("last_sent_at")?),
        },
        version: row.try_get("version")?,
    })
}

#[async_trait]
impl OtpStore for Store {
    async fn otp_create(
        &self,
        otp: &StoredOtp,
        now: Timestamp,
        budget: &SendBudget,
    ) -> Result<OtpSend, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(limit) = spent_limit(tx.conn(), budget, now).await? {
            return Ok(OtpSend::BudgetSpent { limit });
        }
        sqlx::query(
            "INSERT INTO otp_challenges (id, purpose, phone_sealed, phone_index, phone_masked, code_hash, \
             state, attempts, expires_at, last_sent_at, created_at, account_id, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0)",
        )
        .bind(otp.id.as_str())
        .bind(&otp.purpose)
        .bind(&otp.phone_sealed)
        .bind(&otp.phone_index)
        .bind(&otp.phone_masked)
        .bind(&otp.code_hash)
        .bind(state_str(otp.status.state))
        .bind(i64::from(otp.status.attempts))
        .bind(to_unix_micros(otp.status.expires_at))
        .bind(to_unix_micros(otp.status.last_sent_at))
        .bind(to_unix_micros(now))
        .bind(otp.account.as_ref().map(|a| a.as_str().to_owned()))
        .execute(tx.conn())
        .await?;
        count_send(tx.conn(), budget, now).await?;
        tx.commit().await?;
        Ok(OtpSend::Sent)
    }

    async fn otp_resend(
        &self,
        id: &OtpId,
        expected_version: i64,
        status: &OtpStatus,
        code_hash: &str,
        now: Timestamp,
        budget: &SendBudget,
    ) -> Result<OtpSend, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(limit) = spent_limit(tx.conn(), budget, now).await? {
            return Ok(OtpSend::BudgetSpent { limit });
        }
        if !set_status(tx.conn(), id, expected_version, status, Some(code_hash)).await? {
            return Ok(OtpSend::Stale);
        }
        count_send(tx.conn(), budget, now).await?;
        tx.commit().await?;
        Ok(OtpSend::Sent)
    }

    async fn otp_get(&self, id: &OtpId) -> Result<Option<StoredOtp>, StoreError> {
        let row = sqlx::query(
            "SELECT id, purpose, phone_sealed, phone_index, phone_masked, code_hash, state, attempts, \
             expires_at, last_sent_at, account_id, version FROM otp_challenges WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(otp_from_row).transpose()
    }

    async fn otp_update(
        &self,
        id: &OtpId,
        expected_version: i64,
        status: &OtpStatus,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = set_status(tx.conn(), id, expected_version, status, None).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn otp_guard_failures(&self, guard: &str) -> Result<u32, StoreError> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT consecutive_failures FROM otp_phone_guards WHERE phone_index = $1",
        )
        .bind(guard)
        .fetch_optional(&self.pool)
        .await?;
        u32::try_from(n.unwrap_or(0)).map_err(corrupt)
    }

    async fn otp_guard_failed(&self, guard: &str, now: Timestamp) -> Result<u32, StoreError> {
        let mut tx = self.begin_write().await?;
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO otp_phone_guards (phone_index, consecutive_failures, updated_at) VALUES ($1, 1, $2) \
             ON CONFLICT (phone_index) DO UPDATE SET \
             consecutive_failures = otp_phone_guards.consecutive_failures + 1, updated_at = $2 \
             RETURNING consecutive_failures",
        )
        .bind(guard)
        .bind(to_unix_micros(now))
        .fetch_one(tx.conn())
        .await?;
        tx.commit().await?;
        u32::try_from(n).map_err(corrupt)
    }

    async fn otp_guard_clear(&self, guard: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM otp_phone_guards WHERE phone_index = $1")
            .bind(guard)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    async fn otp_sends_purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM otp_sends WHERE sent_at < $1")
            .bind(to_unix_micros(before))
            .execute(tx.conn())
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn otp_sends_since(
        &self,
        phone_index: &str,
        since: Timestamp,
    ) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM otp_sends WHERE phone_index = $1 AND sent_at > $2",
        )
        .bind(phone_index)
        .bind(to_unix_micros(since))
        .fetch_one(&self.pool)
        .await?;
        u32::try_from(n).map_err(corrupt)
    }
}

/// Serialises the sends under each limit of `budget` and answers the
/// first limit that one more send would exceed, if any.
async fn spent_limit(
    conn: &mut sqlx::AnyConnection,
    budget: &SendBudget,
    now: Timestamp,
) -> Result<Option<usize>, StoreError> {
    for (i, limit) in budget.limits.iter().enumerate() {
        if conn.backend_name() == "PostgreSQL" {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("otp-sends:{}", limit.key))
                .execute(&mut *conn)
                .await?;
        }
        let since = now - time::Duration::seconds(limit.window_secs);
        let sent: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM otp_sends WHERE phone_index = $1 AND sent_at > $2",
        )
        .bind(&limit.key)
        .bind(to_unix_micros(since))
        .fetch_one(&mut *conn)
        .await?;
        if sent >= i64::from(limit.max) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Counts one send under every limit's key (`phone_index` holds any
/// budget key, the phone's being the first).
async fn count_send(
    conn: &mut sqlx::AnyConnection,
    budget: &SendBudget,
    now: Timestamp,
) -> Result<(), StoreError> {
    for limit in &budget.limits {
        sqlx::query("INSERT INTO otp_sends (phone_index, sent_at) VALUES ($1, $2)")
            .bind(&limit.key)
            .bind(to_unix_micros(now))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn set_status(
    conn: &mut sqlx::AnyConnection,
    id: &OtpId,
    expected_version: i64,
    status: &OtpStatus,
    new_code_hash: Option<&str>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE otp_challenges SET state = $3, attempts = $4, expires_at = $5, last_sent_at = $6, \
         code_hash = COALESCE($7, code_hash), version = version + 1 \
         WHERE id = $1 AND version = $2",
    )
    .bind(id.as_str())
    .bind(expected_version)
    .bind(state_str(status.state))
    .bind(i64::from(status.attempts))
    .bind(to_unix_micros(status.expires_at))
    .bind(to_unix_micros(status.last_sent_at))
    .bind(new_code_hash)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}
