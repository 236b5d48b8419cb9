//! The event outbox. Events are appended inside the same transaction as the
//! state change that caused them ([`append_events`]), so there is never a
//! change without its event nor an event without its change. A dispatcher
//! then claims due events with a lease, delivers them, and records the
//! outcome; a crash mid-delivery only means the lease runs out and the event
//! is delivered again (at least once; receivers de-duplicate on the event id).

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::{Destination, NewEvent, Topic};
use paybridge_domain::ids::EventId;
use paybridge_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::db::Store;
use crate::error::{corrupt, StoreError};

/// Longest error text kept per event: enough to diagnose, bounded in size.
pub const LAST_ERROR_MAX_CHARS: usize = 500;

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Position in this store's outbox; increases with every append.
    pub seq: i64,
    pub id: EventId,
    pub topic: Topic,
    pub destination: Destination,
    pub payload: serde_json::Value,
    pub occurred_at: Timestamp,
    /// Failed delivery attempts so far.
    pub attempts: i64,
}

/// Outbox health, for metrics.
/// An event and what became of its delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub event: StoredEvent,
    pub delivered_at: Option<Timestamp>,
    pub dead_at: Option<Timestamp>,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    pub pending: i64,
    pub dead: i64,
}

#[async_trait]
pub trait OutboxStore: Send + Sync + std::fmt::Debug {
    /// Appends events in a transaction of their own (when no state changes
    /// with them; otherwise a store method appends them in its transaction).
    async fn outbox_append(&self, events: &[NewEvent]) -> Result<(), StoreError>;

    /// Claims up to `limit` events due at `now` (oldest first) for delivery,
    /// hiding them from other dispatchers until `lease_until`.
    async fn outbox_claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    async fn outbox_mark_delivered(&self, id: &EventId, now: Timestamp) -> Result<(), StoreError>;

    /// Hands claimed events back for a later round, at `at`, without
    /// counting an attempt (their destination was busy or just failed).
    async fn outbox_defer(&self, ids: &[EventId], at: Timestamp) -> Result<(), StoreError>;

    /// Records a failed attempt. `retry_at: None` parks the event as dead.
    async fn outbox_mark_failed(
        &self,
        id: &EventId,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Events for one destination after `after_seq`, oldest first: how a
    /// device catches up on what it missed while offline.
    async fn outbox_events_for(
        &self,
        destination: &Destination,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    async fn outbox_get(&self, id: &EventId) -> Result<Option<(StoredEvent, bool)>, StoreError>;

    /// A destination's events with their delivery state, newest first,
    /// after the event `after`; `None` when `after` is not one of its events.
    async fn outbox_deliveries(
        &self,
        destination: &Destination,
        limit: u32,
        after: Option<&EventId>,
    ) -> Result<Option<Vec<Delivery>>, StoreError>;

    /// Delivers an event of `destination` again (now), whatever became of it.
    async fn outbox_requeue(
        &self,
        id: &EventId,
        destination: &Destination,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;
}

/// Appends `events` on `conn`, inside the caller's transaction.
pub async fn append_events(
    conn: &mut AnyConnection,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    for e in events {
        if let Destination::Device(device) = &e.destination {
            // A device reads its events in `seq` order. On PostgreSQL two
            // transactions could commit their sequence numbers out of order
            // and a reader would skip the later-committed smaller one; this
            // lock (held to commit) makes one device's events commit in
            // sequence order. SQLite has one writer, so nothing to do.
            if conn.backend_name() == "PostgreSQL" {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(device.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
        }
        let occurred = to_unix_micros(e.occurred_at);
        sqlx::query(
            "INSERT INTO outbox_events (id, topic, destination, payload, occurred_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.id.as_str())
        .bind(e.topic.as_str())
        .bind(e.destination.to_string())
        .bind(e.payload.to_string())
        .bind(occurred)
        .bind(occurred)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

const EVENT_COLUMNS: &str = "seq, id, topic, destination, payload, occurred_at, attempts";

fn event_from_row(row: &AnyRow) -> Result<StoredEvent, StoreError> {
    let id: String = row.try_get("id")?;
    let topic: String = row.try_get("topic")?;
    let destination: String = row.try_get("destination")?;
    let payload: String = row.try_get("payload")?;
    Ok(StoredEvent {
        seq: row.try_get("seq")?,
        id: id.parse().map_err(corrupt)?,
        topic: topic.parse().map_err(corrupt)?,
        destination: destination.parse().map_err(corrupt)?,
        payload: serde_json::from_str(&payload).map_err(corrupt)?,
        occurred_at: from_unix_micros(row.try_get("occurred_at")?),
        attempts: row.try_get("attempts")?,
    })
}

#[async_trait]
impl OutboxStore for Store {
    async fn outbox_append(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        append_events(tx.conn(), events).await?;
        tx.commit().await
    }

    async fn outbox_claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let now_us = to_unix_micros(now);
        let mut tx = self.begin_write().await?;
        // The due condition is repeated on the outer UPDATE: under PostgreSQL
        // read committed, a row claimed meanwhile by another dispatcher is
        // re-checked after its lock is released and then no longer matches.
        let rows = sqlx::query(&format!(
            "UPDATE outbox_events SET next_attempt_at = $2 \
             WHERE seq IN (SELECT seq FROM outbox_events \
                           WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1 \
                           ORDER BY seq LIMIT $3) \
               AND delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1 \
             RETURNING {EVENT_COLUMNS}"
        ))
        .bind(now_us)
        .bind(to_unix_micros(lease_until))
        .bind(limit)
        .fetch_all(tx.conn())
        .await?;
        tx.commit().await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    async fn outbox_mark_delivered(&self, id: &EventId, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE outbox_events SET delivered_at = $2, last_error = NULL \
             WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id.as_str())
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn outbox_defer(&self, ids: &[EventId], at: Timestamp) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        // One statement for the lot (a claimed batch is a few hundred at most).
        let placeholders = (0..ids.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE outbox_events SET next_attempt_at = $1 \
             WHERE id IN ({placeholders}) AND delivered_at IS NULL AND dead_at IS NULL"
        );
        let mut query = sqlx::query(&sql).bind(to_unix_micros(at));
        for id in ids {
            query = query.bind(id.as_str());
        }
        query.execute(tx.conn()).await?;
        tx.commit().await
    }

    async fn outbox_mark_failed(
        &self,
        id: &EventId,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let error: String = error.chars().take(LAST_ERROR_MAX_CHARS).collect();
        let mut tx = self.begin_write().await?;
        let query = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE outbox_events SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 \
                 WHERE id = $1 AND delivered_at IS NULL",
            )
            .bind(id.as_str())
            .bind(error)
            .bind(to_unix_micros(at)),
            None => sqlx::query(
                "UPDATE outbox_events SET attempts = attempts + 1, last_error = $2, dead_at = $3 \
                 WHERE id = $1 AND delivered_at IS NULL",
            )
            .bind(id.as_str())
            .bind(error)
            .bind(to_unix_micros(now)),
        };
        query.execute(tx.conn()).await?;
        tx.commit().await
    }

    async fn outbox_events_for(
        &self,
        destination: &Destination,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM outbox_events \
             WHERE destination = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(destination.to_string())
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn outbox_get(&self, id: &EventId) -> Result<Option<(StoredEvent, bool)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS}, delivered_at FROM outbox_events WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let delivered: Option<i64> = row.try_get("delivered_at")?;
            Ok((event_from_row(&row)?, delivered.is_some()))
        })
        .transpose()
    }

    async fn outbox_deliveries(
        &self,
        destination: &Destination,
        limit: u32,
        after: Option<&EventId>,
    ) -> Result<Option<Vec<Delivery>>, StoreError> {
        let before_seq = match after {
            None => i64::MAX,
            Some(after) => {
                let seq: Option<i64> = sqlx::query_scalar(
                    "SELECT seq FROM outbox_events WHERE id = $1 AND destination = $2",
                )
                .bind(after.to_string())
                .bind(destination.to_string())
                .fetch_optional(&self.pool)
                .await?;
                match seq {
                    Some(seq) => seq,
                    None => return Ok(None),
                }
            }
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS}, delivered_at, dead_at, next_attempt_at, last_error FROM outbox_events \
             WHERE destination = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        ))
        .bind(destination.to_string())
        .bind(before_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    event: event_from_row(r)?,
                    delivered_at: r
                        .try_get::<Option<i64>, _>("delivered_at")?
                        .map(from_unix_micros),
                    dead_at: r
                        .try_get::<Option<i64>, _>("dead_at")?
                        .map(from_unix_micros),
                    next_attempt_at: from_unix_micros(r.try_get("next_attempt_at")?),
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect::<Result<_, StoreError>>()
            .map(Some)
    }

    async fn outbox_requeue(
        &self,
        id: &EventId,
        destination: &Destination,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE outbox_events SET delivered_at = NULL, dead_at = NULL, next_attempt_at = $3 \
             WHERE id = $1 AND destination = $2",
        )
        .bind(id.as_str())
        .bind(destination.to_string())
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let row = sqlx::query(
            "SELECT \
               CAST(COUNT(CASE WHEN delivered_at IS NULL AND dead_at IS NULL THEN 1 END) AS BIGINT) AS pending, \
               CAST(COUNT(CASE WHEN dead_at IS NOT NULL THEN 1 END) AS BIGINT) AS dead \
             FROM outbox_events",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxStats {
            pending: row.try_get("pending")?,
            dead: row.try_get("dead")?,
        })
    }
}
