//! Mailboxes of the sandbox parties: the SMS gateway's outbox (what a phone
//! would have received) and the OS push relay's messages. Kept in the store so
//! that every API server behind a load balancer shows the same mailbox.

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::ids::{RelayMessageId, SmsId};
use paybridge_domain::Timestamp;
use sqlx::Row;

use crate::db::Store;
use crate::error::{corrupt, StoreError};

/// A text message the sandbox SMS gateway "delivered".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMessage {
    pub id: SmsId,
    pub phone: String,
    pub body: String,
    pub sent_at: Timestamp,
}

/// A message handed to the sandbox OS push relay for a device token.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayMessage {
    pub id: RelayMessageId,
    pub device_token: String,
    pub payload: serde_json::Value,
    pub sent_at: Timestamp,
}

#[async_trait]
pub trait SandboxStore: Send + Sync + std::fmt::Debug {
    async fn sms_record(&self, message: &SmsMessage) -> Result<(), StoreError>;
    /// Newest first, at most `limit`.
    async fn sms_for_phone(&self, phone: &str, limit: i64) -> Result<Vec<SmsMessage>, StoreError>;
    async fn relay_record(&self, message: &RelayMessage) -> Result<(), StoreError>;
    /// Newest first, at most `limit`.
    async fn relay_for_device(
        &self,
        device_token: &str,
        limit: i64,
    ) -> Result<Vec<RelayMessage>, StoreError>;
}

#[async_trait]
impl SandboxStore for Store {
    async fn sms_record(&self, m: &SmsMessage) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO sandbox_sms (id, phone, body, sent_at) VALUES ($1, $2, $3, $4)")
            .bind(m.id.as_str())
            .bind(&m.phone)
            .bind(&m.body)
            .bind(to_unix_micros(m.sent_at))
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    async fn sms_for_phone(&self, phone: &str, limit: i64) -> Result<Vec<SmsMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, phone, body, sent_at FROM sandbox_sms WHERE phone = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(phone)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                Ok(SmsMessage {
                    id: id.parse().map_err(corrupt)?,
                    phone: r.try_get("phone")?,
                    body: r.try_get("body")?,
                    sent_at: from_unix_micros(r.try_get("sent_at")?),
                })
            })
            .collect()
    }

    async fn relay_record(&self, m: &RelayMessage) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sandbox_relay_messages (id, device_token, payload, sent_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(m.id.as_str())
        .bind(&m.device_token)
        .bind(m.payload.to_string())
        .bind(to_unix_micros(m.sent_at))
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn relay_for_device(
        &self,
        device_token: &str,
        limit: i64,
    ) -> Result<Vec<RelayMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, device_token, payload, sent_at FROM sandbox_relay_messages \
             WHERE device_token = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(device_token)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let payload: String = r.try_get("payload")?;
                Ok(RelayMessage {
                    id: id.parse().map_err(corrupt)?,
                    device_token: r.try_get("device_token")?,
                    payload: serde_json::from_str(&payload).map_err(corrupt)?,
                    sent_at: from_unix_micros(r.try_get("sent_at")?),
                })
            })
            .collect()
    }
}
