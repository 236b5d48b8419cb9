//! Invariants a role's store must hold whenever no request is in flight.
//!
//! [`AuditStore::audit`] reads them all in one pass and names each breach;
//! the test app runs it when every test ends (on both stores), and an
//! operator can run it against a live database: it only reads.
//!
//! What is checked, and why it can only fail through a bug:
//! - the ledger balances (debits equal credits, posted and pending) and every
//!   account's totals equal the sums of its transfers;
//! - no outbox event is dead (every change reached its receiver);
//! - no idempotency claim is stuck `in_progress` (every request that claimed
//!   a key finished and saved its answer, or released the claim);
//! - no order is left `paying` (a charge that started either ended paid or
//!   reopened the order);
//! - no binding is active without its verification: the bank's agreement is
//!   there, and either the holder proved the reserved phone (a verified OTP)
//!   or the bank attested the customer (a registration binding);
//! - flow F3: no transfer payment is left `executing` (its debit's outcome
//!   was learnt), none is debited or paid for an order that is not paid,
//!   no agreement outlives its revoked first device, and no payment waits
//!   on an agreement that is not active;
//! - every time in every event payload is an RFC 3339 string (a field named
//!   `…_at`, `…_until` or `created`), and no payload carries a time as
//!   `time`'s default tuple (`[2026, 335, 7, 20, …]`).

use async_trait::async_trait;
use sqlx::Row;

use crate::db::Store;
use crate::error::StoreError;
use crate::ledger::LedgerStore;

/// Breaches named by [`AuditStore::audit`]; empty when all holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub breaches: Vec<String>,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.breaches.is_empty()
    }
}

#[async_trait]
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Checks every invariant of this store (read only).
    async fn audit(&self) -> Result<AuditReport, StoreError>;
}

/// One counting query per invariant: `(what it means, SQL returning `n`)`.
const COUNTED: &[(&str, &str)] = &[
    (
        "dead outbox events",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM outbox_events WHERE dead_at IS NOT NULL",
    ),
    (
        "idempotency claims stuck in_progress",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM idempotency_keys WHERE state = 'in_progress'",
    ),
    (
        "orders left paying",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM orders WHERE state = 'paying'",
    ),
    (
        "active bindings without the bank's agreement",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM bindings \
         WHERE state = 'active' AND agreement_sealed IS NULL",
    ),
    (
        "active bindings whose holder neither passed the OTP nor was attested by the bank",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM bindings b \
         WHERE b.state = 'active' AND b.channel NOT IN ('registration', 'virtual_card') \
           AND NOT EXISTS (SELECT 1 FROM otp_challenges o \
                           WHERE o.id = b.otp_id AND o.state = 'verified')",
    ),
    (
        "quick bindings without an issued application that passed the OTP or the identity check",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM bindings b \
         WHERE b.state = 'active' AND b.channel = 'virtual_card' \
           AND NOT EXISTS (SELECT 1 FROM card_applications a \
                           WHERE a.binding_id = b.id AND a.state IN ('issued', 'provisioned') \
                             AND (a.match_score IS NOT NULL \
                                  OR EXISTS (SELECT 1 FROM otp_challenges o \
                                             WHERE o.id = a.otp_id AND o.state = 'verified')))",
    ),
    (
        "card tokens whose quick binding is unbound but the token is not deactivated",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM card_tokens t \
         JOIN bindings b ON b.id = t.binding_id \
         WHERE b.state <> 'active' AND t.state <> 'deactivated'",
    ),
    (
        "vault tokens of a card that is not active, still active",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM token_vault t \
         JOIN bank_cards c ON c.id = t.card_id \
         WHERE c.status <> 'active' AND t.state = 'active'",
    ),
    (
        "transfer payments left executing",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM transfer_payments WHERE state = 'executing'",
    ),
    (
        "transfer payments debited or paid whose order is not paid",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM transfer_payments t \
         JOIN orders o ON o.id = t.order_id \
         WHERE t.state IN ('debited', 'paid') \
           AND o.state NOT IN ('paid', 'partially_refunded', 'refunded')",
    ),
    (
        "transfer agreements not revoked whose first device is",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM transfer_agreements a \
         JOIN devices d ON d.id = a.device_id \
         WHERE a.state <> 'revoked' AND d.status = 'revoked'",
    ),
    (
        "transfer payments waiting on an agreement that is not active",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM transfer_payments t \
         JOIN transfer_agreements a ON a.id = t.agreement_id \
         WHERE a.state <> 'active' \
           AND t.state IN ('awaiting_confirmation', 'confirmed', 'task_issued')",
    ),
];

#[async_trait]
impl AuditStore for Store {
    async fn audit(&self) -> Result<AuditReport, StoreError> {
        let mut breaches = Vec::new();
        let totals = self.ledger_totals().await?;
        if totals.debits_posted != totals.credits_posted {
            breaches.push(format!(
                "ledger posted totals differ: debits {} ≠ credits {}",
                totals.debits_posted, totals.credits_posted
            ));
        }
        if totals.debits_pending != totals.credits_pending {
            breaches.push(format!(
                "ledger pending totals differ: debits {} ≠ credits {}",
                totals.debits_pending, totals.credits_pending
            ));
        }
        let drifted = self.ledger_inconsistent_accounts().await?;
        if !drifted.is_empty() {
            let ids: Vec<&str> = drifted.iter().map(|a| a.as_str()).collect();
            breaches.push(format!(
                "ledger accounts whose totals differ from their transfers: {}",
                ids.join(", ")
            ));
        }
        for (what, sql) in COUNTED {
            let n: i64 = sqlx::query(sql).fetch_one(&self.pool).await?.try_get("n")?;
            if n != 0 {
                breaches.push(format!("{n} {what}"));
            }
        }
        let events = sqlx::query("SELECT topic, payload FROM outbox_events ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        for row in events {
            let topic: String = row.try_get("topic")?;
            let payload: String = row.try_get("payload")?;
            let payload: serde_json::Value = serde_json::from_str(&payload)
                .map_err(|e| crate::error::corrupt(format!("outbox payload of {topic}: {e}")))?;
            if let Some(path) = misformatted_time(&payload, "") {
                breaches.push(format!("event {topic}: {path} is not an RFC 3339 time"));
            }
        }
        Ok(AuditReport { breaches })
    }
}

/// The first place in `v` where a time is not written as RFC 3339.
fn misformatted_time(v: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::Object(fields) => fields.iter().find_map(|(k, field)| {
            let here = format!("{path}.{k}");
            let is_time = k.ends_with("_at") || k.ends_with("_until") || k == "created";
            let bad = is_time
                && !matches!(field, Value::Null)
                && !field
                    .as_str()
                    .is_some_and(paybridge_domain::clock::is_rfc3339);
            if bad {
                Some(here)
            } else {
                misformatted_time(field, &here)
            }
        }),
        Value::Array(items) => {
            // `time`'s own serde form: year, ordinal day, hour, minute, …
            let tuple = items.len() >= 6
                && items.iter().all(|i| i.is_i64())
                && items[0]
                    .as_i64()
                    .is_some_and(|y| (1970..=9999).contains(&y));
            if tuple {
                return Some(path.to_owned());
            }
            items
                .iter()
                .enumerate()
                .find_map(|(i, item)| misformatted_time(item, &format!("{path}[{i}]")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::misformatted_time;
    use serde_json::json;

    #[test]
    fn times_must_be_rfc3339_strings() {
        let good =
            json!({"expires_at": "2026-12-01T07:20:12Z", "next": {"seen_at": null}, "n": [1, 2]});
        assert_eq!(misformatted_time(&good, ""), None);
        let tuple = json!({"page": {"expires": [2026, 335, 7, 20, 12, 0, 0, 0, 0]}});
        assert_eq!(
            misformatted_time(&tuple, "").as_deref(),
            Some(".page.expires")
        );
        let unix = json!({"items": [{"created": 1764573612}]});
        assert_eq!(
            misformatted_time(&unix, "").as_deref(),
            Some(".items[0].created")
        );
    }
}
