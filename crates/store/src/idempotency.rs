//! Idempotency keys: a client that retries a creating POST with the same
//! `Idempotency-Key` gets the first answer again instead of a second effect.
//!
//! A key is scoped to its caller (a partner, a session, a merchant), so two
//! callers can never see each other's answers. The first request *claims* the
//! key (`in_progress`, with a lock lease); when it finishes, its status and
//! body are saved (`completed`) and replayed to every later request with the
//! same key and the same request hash, for at least [`IDEMPOTENCY_TTL_SECS`].
//! What a known key gets is the domain's decision
//! ([`paybridge_domain::idempotency::decide`]); this module locks, reads and
//! saves.

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::idempotency::{decide, ClaimState, Decision, KnownKey};
use paybridge_domain::Timestamp;
use sqlx::Row;

use crate::db::Store;
use crate::error::StoreError;

/// How long a completed answer is kept for replay: 24 hours, as the API promises.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3_600;
/// How long a claim stays `in_progress` without renewal before another
/// request may take it over: the request holding it renews it every
/// [`IDEMPOTENCY_RENEW_SECS`] while it runs, so a claim of a process that
/// is gone (crashed, killed) is free within this, not after the longest
/// request.
pub const IDEMPOTENCY_LOCK_SECS: i64 = 10;
/// How often a running request renews its claim.
pub const IDEMPOTENCY_RENEW_SECS: u64 = 3;

/// A saved answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What [`IdempotencyStore::idempotency_begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// The key is ours: run the request, then complete or abandon it.
    Started,
    /// The same request finished before: answer with this.
    Replay(SavedResponse),
    /// The same key is being processed by a concurrent request.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync + std::fmt::Debug {
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        now: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError>;

    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        response: &SavedResponse,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Releases a claim without saving (the request failed on our side), so
    /// that a retry runs it again.
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<(), StoreError>;

    /// The request holding the claim is still running: its lease runs
    /// [`IDEMPOTENCY_LOCK_SECS`] from `now`. `false` if the claim is gone.
    async fn idempotency_renew(
        &self,
        scope: &str,
        key: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Deletes answers past their time; returns how many.
    async fn idempotency_purge(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// The answer saved under a key, as stored (sealed by the HTTP layer):
    /// for audits and for tests that check nothing is kept in clear.
    async fn idempotency_saved(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<SavedResponse>, StoreError>;
}

#[async_trait]
impl IdempotencyStore for Store {
    async fn idempotency_saved(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<SavedResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT response_status, response_body FROM idempotency_keys \
             WHERE scope = $1 AND idem_key = $2 AND response_status IS NOT NULL",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SavedResponse {
                status: u16::try_from(r.try_get::<i64, _>("response_status")?)
                    .map_err(crate::error::corrupt)?,
                body: r.try_get("response_body")?,
            })
        })
        .transpose()
    }

    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        now: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        let now_us = to_unix_micros(now);
        let locked_until = now_us + IDEMPOTENCY_LOCK_SECS * 1_000_000;
        let expires_at = now_us + IDEMPOTENCY_TTL_SECS * 1_000_000;
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys \
             (scope, idem_key, request_hash, state, locked_until, created_at, expires_at) \
             VALUES ($1, $2, $3, 'in_progress', $4, $5, $6) \
             ON CONFLICT (scope, idem_key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(request_hash)
        .bind(locked_until)
        .bind(now_us)
        .bind(expires_at)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if inserted == 1 {
            tx.commit().await?;
            return Ok(IdempotencyBegin::Started);
        }
        let row = sqlx::query(
            "SELECT request_hash, state, response_status, response_body, locked_until, expires_at \
             FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_one(tx.conn())
        .await?;
        let saved_hash: String = row.try_get("request_hash")?;
        let state: String = row.try_get("state")?;
        let row_locked_until: i64 = row.try_get("locked_until")?;
        let known = KnownKey {
            request_hash: &saved_hash,
            state: match state.as_str() {
                "in_progress" => ClaimState::InProgress {
                    lease_until: from_unix_micros(row_locked_until),
                },
                "completed" => ClaimState::Completed,
                other => return Err(crate::error::corrupt(format!("idempotency state {other}"))),
            },
            expires_at: from_unix_micros(row.try_get("expires_at")?),
        };
        let outcome = match decide(&known, request_hash, now) {
            Decision::TakeOver => {
                // Only if nobody took it over since we read it.
                let claimed = sqlx::query(
                    "UPDATE idempotency_keys SET request_hash = $3, state = 'in_progress', \
                     response_status = NULL, response_body = NULL, locked_until = $4, \
                     created_at = $5, expires_at = $6 \
                     WHERE scope = $1 AND idem_key = $2 AND locked_until = $7",
                )
                .bind(scope)
                .bind(key)
                .bind(request_hash)
                .bind(locked_until)
                .bind(now_us)
                .bind(expires_at)
                .bind(row_locked_until)
                .execute(tx.conn())
                .await?
                .rows_affected();
                if claimed == 1 {
                    IdempotencyBegin::Started
                } else {
                    IdempotencyBegin::InProgress
                }
            }
            Decision::Mismatch => IdempotencyBegin::Mismatch,
            Decision::Replay => {
                let status: i64 = row.try_get("response_status")?;
                let body: Vec<u8> = row.try_get("response_body")?;
                IdempotencyBegin::Replay(SavedResponse {
                    status: u16::try_from(status).map_err(crate::error::corrupt)?,
                    body,
                })
            }
            Decision::InProgress => IdempotencyBegin::InProgress,
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        response: &SavedResponse,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let now_us = to_unix_micros(now);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'completed', response_status = $3, \
             response_body = $4, locked_until = $5, expires_at = $6 \
             WHERE scope = $1 AND idem_key = $2",
        )
        .bind(scope)
        .bind(key)
        .bind(i64::from(response.status))
        .bind(response.body.clone())
        .bind(now_us)
        .bind(now_us + IDEMPOTENCY_TTL_SECS * 1_000_000)
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND state = 'in_progress'",
        )
        .bind(scope)
        .bind(key)
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn idempotency_renew(
        &self,
        scope: &str,
        key: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let until = to_unix_micros(now) + IDEMPOTENCY_LOCK_SECS * 1_000_000;
        let mut tx = self.begin_write().await?;
        let renewed = sqlx::query(
            "UPDATE idempotency_keys SET locked_until = $3 \
             WHERE scope = $1 AND idem_key = $2 AND state = 'in_progress'",
        )
        .bind(scope)
        .bind(key)
        .bind(until)
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(renewed == 1)
    }

    async fn idempotency_purge(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "DELETE FROM idempotency_keys WHERE expires_at <= $1 AND state = 'completed'",
        )
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
