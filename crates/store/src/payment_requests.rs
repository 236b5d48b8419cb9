//! Cross-device payment requests (flow F4). A request changes only at the
//! version it was read at; creating one supersedes the terminal's older
//! pending requests and checks the phone's pending cap in the same
//! transaction, serialised per account.

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{DeviceId, OrderId, PaymentRequestId, UserId};
use paybridge_domain::payment_request::{
    ApprovalMethod, Gesture, GestureRoute, OpenWith, PaymentRequestStage, PaymentRequestState,
    PaymentRequestStatus, TerminalActivity,
};
use paybridge_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Store;
use crate::error::{corrupt, StoreError};
use crate::outbox::append_events;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPaymentRequest {
    pub id: PaymentRequestId,
    pub user_id: UserId,
    pub order_id: OrderId,
    /// The first terminal, which asked.
    pub terminal_id: DeviceId,
    /// The second terminal: the phone pushed to, or the one that scanned.
    pub phone_id: Option<DeviceId>,
    pub status: PaymentRequestStatus,
    pub open_with: OpenWith,
    pub gesture_required: bool,
    pub gesture: Option<(Gesture, GestureRoute)>,
    pub scan_code_hash: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// What creating a request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentRequestCreate {
    Created,
    /// One of the requests to supersede moved meanwhile: read and try again.
    Conflict,
    /// The phone already has this many pending requests.
    PhoneBusy(i64),
    /// The terminal asked too often or was declined too often within its
    /// window (`domain::payment_request::check_terminal_pace`).
    Throttled(TerminalActivity),
}

#[async_trait]
pub trait PaymentRequestStore: Send + Sync + std::fmt::Debug {
    /// Saves `r`, moving each of `superseded` (read at its version) to its new
    /// state, unless the phone would then have more than `max_pending`
    /// pending requests.
    async fn payment_request_create(
        &self,
        r: &StoredPaymentRequest,
        superseded: &[StoredPaymentRequest],
        max_pending: i64,
        terminal_since: Timestamp,
        events: &[NewEvent],
    ) -> Result<PaymentRequestCreate, StoreError>;
    async fn payment_request(
        &self,
        id: &PaymentRequestId,
    ) -> Result<Option<StoredPaymentRequest>, StoreError>;
    async fn payment_request_by_scan_code(
        &self,
        code_hash: &str,
    ) -> Result<Option<StoredPaymentRequest>, StoreError>;
    /// The terminal's requests still waiting for the user.
    async fn payment_requests_pending_of_terminal(
        &self,
        terminal: &DeviceId,
    ) -> Result<Vec<StoredPaymentRequest>, StoreError>;
    /// How many requests the terminal made since `since`, and how many of
    /// those the user declined.
    async fn payment_request_activity_of_terminal(
        &self,
        terminal: &DeviceId,
        since: Timestamp,
    ) -> Result<TerminalActivity, StoreError>;
    /// Pending requests past their expiry, oldest first.
    async fn payment_requests_due(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredPaymentRequest>, StoreError>;
    /// Saves a new state if the row is at `r.version`; `false` if it moved.
    async fn payment_request_update(
        &self,
        r: &StoredPaymentRequest,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
}

/// How many requests `terminal` made since `since`, and how many of those
/// were declined.
async fn terminal_activity(
    conn: &mut sqlx::AnyConnection,
    terminal: &DeviceId,
    since: Timestamp,
) -> Result<TerminalActivity, StoreError> {
    let row = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS requested, \
         CAST(COALESCE(SUM(CASE WHEN state = 'declined' THEN 1 ELSE 0 END), 0) AS BIGINT) AS declined \
         FROM payment_requests WHERE terminal_id = $1 AND created_at >= $2",
    )
    .bind(terminal.as_str())
    .bind(to_unix_micros(since))
    .fetch_one(&mut *conn)
    .await?;
    Ok(TerminalActivity {
        requested: row.try_get("requested")?,
        declined: row.try_get("declined")?,
    })
}

const COLUMNS: &str = "id, user_id, order_id, terminal_id, phone_id, state, open_with, \
     gesture_required, gesture, gesture_route, scan_code_hash, binding_id, approved_with, \
     created_at, updated_at, expires_at, version";

fn from_row(r: &AnyRow) -> Result<StoredPaymentRequest, StoreError> {
    let text = |c: &str| -> Result<String, StoreError> { Ok(r.try_get::<String, _>(c)?) };
    let opt =
        |c: &str| -> Result<Option<String>, StoreError> { Ok(r.try_get::<Option<String>, _>(c)?) };
    let state = text("state")?;
    let open_with = text("open_with")?;
    let gesture = match (opt("gesture")?, opt("gesture_route")?) {
        (Some(g), Some(route)) => Some((
            Gesture::parse(&g).ok_or_else(|| corrupt(format!("gesture {g}")))?,
            GestureRoute::parse(&route).ok_or_else(|| corrupt(format!("gesture route {route}")))?,
        )),
        _ => None,
    };
    Ok(StoredPaymentRequest {
        id: text("id")?.parse().map_err(corrupt)?,
        user_id: text("user_id")?.parse().map_err(corrupt)?,
        order_id: text("order_id")?.parse().map_err(corrupt)?,
        terminal_id: text("terminal_id")?.parse().map_err(corrupt)?,
        phone_id: opt("phone_id")?
            .map(|p| p.parse())
            .transpose()
            .map_err(corrupt)?,
        status: PaymentRequestStatus {
            state: stored_state(&state, opt("binding_id")?, opt("approved_with")?)?,
            expires_at: from_unix_micros(r.try_get("expires_at")?),
        },
        open_with: OpenWith::parse(&open_with)
            .ok_or_else(|| corrupt(format!("open_with {open_with}")))?,
        gesture_required: r.try_get::<i64, _>("gesture_required")? == 1,
        gesture,
        scan_code_hash: text("scan_code_hash")?,
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

/// A stored stage with its columns: a `paid` row must name its binding and
/// approval, others need not.
fn stored_state(
    stage: &str,
    binding: Option<String>,
    approved_with: Option<String>,
) -> Result<PaymentRequestState, StoreError> {
    let parsed = PaymentRequestStage::parse(stage).and_then(|stage| {
        let binding = match binding.as_deref().map(str::parse) {
            Some(Ok(b)) => Some(b),
            Some(Err(_)) => return None,
            None => None,
        };
        let approved_with = approved_with.as_deref().and_then(ApprovalMethod::parse);
        PaymentRequestState::from_parts(stage, binding, approved_with)
    });
    parsed.ok_or_else(|| {
        corrupt(format!(
            "payment request state {stage} with its binding and approval"
        ))
    })
}

/// The binding and approval columns of a state (set only when paid).
fn payment_columns(state: &PaymentRequestState) -> (Option<String>, Option<&'static str>) {
    match state.payment() {
        Some((binding, approved_with)) => (Some(binding.to_string()), Some(approved_with.as_str())),
        None => (None, None),
    }
}

fn pending_list() -> String {
    PaymentRequestStage::PENDING
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn update_at_version(
    conn: &mut sqlx::AnyConnection,
    r: &StoredPaymentRequest,
) -> Result<bool, StoreError> {
    let (gesture, route) = match r.gesture {
        Some((g, route)) => (Some(g.as_str()), Some(route.as_str())),
        None => (None, None),
    };
    let (binding, approved_with) = payment_columns(&r.status.state);
    let n = sqlx::query(
        "UPDATE payment_requests SET state = $3, phone_id = $4, gesture = $5, gesture_route = $6, \
         binding_id = $7, approved_with = $8, updated_at = $9, version = version + 1 \
         WHERE id = $1 AND version = $2",
    )
    .bind(r.id.as_str())
    .bind(r.version)
    .bind(r.status.state.as_str())
    .bind(r.phone_id.as_ref().map(|p| p.as_str().to_owned()))
    .bind(gesture)
    .bind(route)
    .bind(binding)
    .bind(approved_with)
    .bind(to_unix_micros(r.updated_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[async_trait]
impl PaymentRequestStore for Store {
    async fn payment_request_create(
        &self,
        r: &StoredPaymentRequest,
        superseded: &[StoredPaymentRequest],
        max_pending: i64,
        terminal_since: Timestamp,
        events: &[NewEvent],
    ) -> Result<PaymentRequestCreate, StoreError> {
        let mut tx = self.begin_write().await?;
        // One creation at a time per account, so neither the phone's
        // pending count nor the terminal's pace (a terminal is one
        // account's) can be passed by racing requests. (SQLite: one writer.)
        if tx.conn().backend_name() == "PostgreSQL" {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("payment-requests:{}", r.user_id))
                .execute(tx.conn())
                .await?;
        }
        let activity = terminal_activity(tx.conn(), &r.terminal_id, terminal_since).await?;
        if paybridge_domain::payment_request::check_terminal_pace(activity).is_err() {
            return Ok(PaymentRequestCreate::Throttled(activity));
        }
        for old in superseded {
            if !update_at_version(tx.conn(), old).await? {
                return Ok(PaymentRequestCreate::Conflict);
            }
        }
        // The terminal's other pending requests were read before this lock:
        // one created meanwhile is not among those superseded, so read again
        // (a terminal has one pending request at a time).
        let others: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM payment_requests WHERE terminal_id = $1 AND state IN ({}) AND expires_at > $2",
            pending_list()
        ))
        .bind(r.terminal_id.as_str())
        .bind(to_unix_micros(r.created_at))
        .fetch_one(tx.conn())
        .await?;
        if others > 0 {
            return Ok(PaymentRequestCreate::Conflict);
        }
        if let Some(phone) = &r.phone_id {
            let pending: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM payment_requests WHERE phone_id = $1 AND state IN ({}) AND expires_at > $2",
                pending_list()
            ))
            .bind(phone.as_str())
            .bind(to_unix_micros(r.created_at))
            .fetch_one(tx.conn())
            .await?;
            if pending >= max_pending {
                return Ok(PaymentRequestCreate::PhoneBusy(pending));
            }
        }
        let (gesture, route) = match r.gesture {
            Some((g, route)) => (Some(g.as_str()), Some(route.as_str())),
            None => (None, None),
        };
        let (binding, approved_with) = payment_columns(&r.status.state);
        sqlx::query(&format!(
            "INSERT INTO payment_requests ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0)"
        ))
        .bind(r.id.as_str())
        .bind(r.user_id.as_str())
        .bind(r.order_id.as_str())
        .bind(r.terminal_id.as_str())
        .bind(r.phone_id.as_ref().map(|p| p.as_str().to_owned()))
        .bind(r.status.state.as_str())
        .bind(r.open_with.as_str())
        .bind(i64::from(r.gesture_required))
        .bind(gesture)
        .bind(route)
        .bind(&r.scan_code_hash)
        .bind(binding)
        .bind(approved_with)
        .bind(to_unix_micros(r.created_at))
        .bind(to_unix_micros(r.updated_at))
        .bind(to_unix_micros(r.status.expires_at))
        .execute(tx.conn())
        .await?;
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(PaymentRequestCreate::Created)
    }

    async fn payment_request(
        &self,
        id: &PaymentRequestId,
    ) -> Result<Option<StoredPaymentRequest>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_requests WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn payment_request_by_scan_code(
        &self,
        code_hash: &str,
    ) -> Result<Option<StoredPaymentRequest>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_requests WHERE scan_code_hash = $1"
        ))
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn payment_request_activity_of_terminal(
        &self,
        terminal: &DeviceId,
        since: Timestamp,
    ) -> Result<TerminalActivity, StoreError> {
        let mut conn = self.pool.acquire().await?;
        terminal_activity(&mut conn, terminal, since).await
    }

    async fn payment_requests_pending_of_terminal(
        &self,
        terminal: &DeviceId,
    ) -> Result<Vec<StoredPaymentRequest>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_requests WHERE terminal_id = $1 AND state IN ({}) \
             ORDER BY created_at, id",
            pending_list()
        ))
        .bind(terminal.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn payment_requests_due(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredPaymentRequest>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_requests WHERE state IN ({}) AND expires_at <= $1 \
             ORDER BY expires_at, id LIMIT $2",
            pending_list()
        ))
        .bind(to_unix_micros(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn payment_request_update(
        &self,
        r: &StoredPaymentRequest,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let moved = update_at_version(tx.conn(), r).await?;
        if moved {
            append_events(tx.conn(), events).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }
}
