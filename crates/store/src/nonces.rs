//! Seen nonces of signed partner requests. A nonce is accepted once per
//! partner; it is kept for [`NONCE_RETENTION_SECS`], longer than the signed
//! timestamp window on both sides, so a replay is refused either by the
//! timestamp check or by this table, never by neither.

use async_trait::async_trait;
use paybridge_domain::clock::to_unix_micros;
use paybridge_domain::partner::PartnerId;
use paybridge_domain::Timestamp;

use crate::db::Store;
use crate::error::StoreError;

/// Twice the ±300 s signature window, plus a margin.
pub const NONCE_RETENTION_SECS: i64 = 900;

#[async_trait]
pub trait NonceStore: Send + Sync + std::fmt::Debug {
    /// Records the nonce; `false` when this partner used it before (a replay).
    async fn nonce_first_use(
        &self,
        partner: &PartnerId,
        nonce: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Forgets nonces older than the retention; returns how many.
    async fn nonce_purge(&self, now: Timestamp) -> Result<u64, StoreError>;
}

#[async_trait]
impl NonceStore for Store {
    async fn nonce_first_use(
        &self,
        partner: &PartnerId,
        nonce: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO partner_nonces (partner_id, nonce, seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (partner_id, nonce) DO NOTHING",
        )
        .bind(partner.as_str())
        .bind(nonce)
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    async fn nonce_purge(&self, now: Timestamp) -> Result<u64, StoreError> {
        let cutoff = to_unix_micros(now) - NONCE_RETENTION_SECS * 1_000_000;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM partner_nonces WHERE seen_at < $1")
            .bind(cutoff)
            .execute(tx.conn())
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
