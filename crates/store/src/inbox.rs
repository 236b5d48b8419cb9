//! The partner inbox: events received from the other party, kept by event id
//! so that a redelivered event is acknowledged again but acted on once.

use async_trait::async_trait;
use paybridge_domain::clock::to_unix_micros;
use paybridge_domain::ids::EventId;
use paybridge_domain::partner::PartnerId;
use paybridge_domain::Timestamp;

use crate::db::Store;
use crate::error::StoreError;

#[async_trait]
pub trait InboxStore: Send + Sync + std::fmt::Debug {
    /// Records a received event; `false` when it was received before.
    async fn inbox_record(
        &self,
        partner: &PartnerId,
        event_id: &EventId,
        topic: &str,
        payload: &serde_json::Value,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    async fn inbox_count(&self, partner: &PartnerId) -> Result<i64, StoreError>;
}

#[async_trait]
impl InboxStore for Store {
    async fn inbox_record(
        &self,
        partner: &PartnerId,
        event_id: &EventId,
        topic: &str,
        payload: &serde_json::Value,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO partner_inbox (partner_id, event_id, topic, payload, received_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (partner_id, event_id) DO NOTHING",
        )
        .bind(partner.as_str())
        .bind(event_id.as_str())
        .bind(topic)
        .bind(payload.to_string())
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    async fn inbox_count(&self, partner: &PartnerId) -> Result<i64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM partner_inbox WHERE partner_id = $1",
        )
        .bind(partner.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }
}
