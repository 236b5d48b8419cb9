//! The ledger's storage. [`LedgerStore::ledger_submit`] runs one transfer
//! as one write transaction: it checks the transfer id, locks the accounts
//! (on PostgreSQL with `FOR UPDATE`, always in id order so that two
//! transfers between the same accounts cannot deadlock; on SQLite the write
//! transaction already excludes other writers), asks the domain to decide
//! ([`paybridge_domain::ledger::apply`]), and saves the new totals, the
//! transfer and its events together.

use async_trait::async_trait;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ledger::{
    apply, expire, Account, AccountFlags, AccountId, LedgerError, PendingState, Transfer,
    TransferId, TransferKind, TransferRequest,
};
use paybridge_domain::{Money, Timestamp};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::db::{Backend, Store};
use crate::error::{corrupt, StoreError};
use crate::outbox::append_events;

/// How a row is read inside a write transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Locked until the transaction ends (PostgreSQL `FOR UPDATE`; SQLite's
    /// single writer already excludes the others).
    ForUpdate,
    Plain,
}

const FLAG_DEBITS_LE_CREDITS: i64 = 1;
const FLAG_CREDITS_LE_DEBITS: i64 = 2;

/// What became of a submitted transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    /// Recorded now.
    Created(Transfer),
    /// The same transfer was recorded before: nothing changed.
    Exists(Transfer),
    /// Refused by the ledger's rules: nothing changed.
    Refused(LedgerError),
    /// A named account (or pending transfer) does not exist.
    NotFound,
}

/// Sums over all accounts. Debits equal credits, always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerTotals {
    pub accounts: i64,
    pub transfers: i64,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub debits_pending: i64,
    pub credits_pending: i64,
}

#[async_trait]
pub trait LedgerStore: Send + Sync + std::fmt::Debug {
    /// Creates an account with zero totals; `false` if the id exists.
    async fn ledger_open_account(
        &self,
        account: &Account,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn ledger_account(&self, id: &AccountId) -> Result<Option<Account>, StoreError>;
    async fn ledger_transfer(&self, id: &TransferId) -> Result<Option<Transfer>, StoreError>;
    /// Decides and records a transfer, with `events`, atomically.
    async fn ledger_submit(
        &self,
        request: &TransferRequest,
        events: &[NewEvent],
        now: Timestamp,
    ) -> Result<TransferOutcome, StoreError>;
    /// Expires up to `limit` pending transfers whose timeout has passed; returns how many.
    async fn ledger_expire_due(&self, now: Timestamp, limit: i64) -> Result<u64, StoreError>;
    async fn ledger_totals(&self) -> Result<LedgerTotals, StoreError>;
    /// Accounts whose stored totals differ from the sums of their transfers
    /// (should be none, ever).
    async fn ledger_inconsistent_accounts(&self) -> Result<Vec<AccountId>, StoreError>;
}

const ACCOUNT_COLUMNS: &str = "id, currency, flags, overdraft_limit, debits_pending, debits_posted, credits_pending, credits_posted";
const TRANSFER_COLUMNS: &str = "id, debit_account_id, credit_account_id, amount, requested_amount, currency, kind, pending_id, timeout_secs, pending_state, expires_at, created_at";

fn account_from_row(row: &AnyRow) -> Result<Account, StoreError> {
    let id: String = row.try_get("id")?;
    let currency: String = row.try_get("currency")?;
    let flags: i64 = row.try_get("flags")?;
    Ok(Account {
        id: id.parse().map_err(corrupt)?,
        currency: currency.parse().map_err(|_| corrupt("currency"))?,
        flags: AccountFlags {
            debits_must_not_exceed_credits: flags & FLAG_DEBITS_LE_CREDITS != 0,
            credits_must_not_exceed_debits: flags & FLAG_CREDITS_LE_DEBITS != 0,
        },
        overdraft_limit_minor: row.try_get("overdraft_limit")?,
        debits_pending: row.try_get("debits_pending")?,
        debits_posted: row.try_get("debits_posted")?,
        credits_pending: row.try_get("credits_pending")?,
        credits_posted: row.try_get("credits_posted")?,
    })
}

/// A stored transfer and the amount its submitter asked for (0 = "all of
/// the pending amount"), which is what a resubmission is compared against.
fn transfer_from_row(row: &AnyRow) -> Result<(Transfer, i64), StoreError> {
    let id: String = row.try_get("id")?;
    let debit: String = row.try_get("debit_account_id")?;
    let credit: String = row.try_get("credit_account_id")?;
    let currency: String = row.try_get("currency")?;
    let kind: String = row.try_get("kind")?;
    let pending_id: Option<String> = row.try_get("pending_id")?;
    let timeout_secs: Option<i64> = row.try_get("timeout_secs")?;
    let pending_state: Option<String> = row.try_get("pending_state")?;
    let expires_at: Option<i64> = row.try_get("expires_at")?;
    let pending_id = || -> Result<TransferId, StoreError> {
        pending_id
            .clone()
            .ok_or_else(|| corrupt("pending_id missing"))?
            .parse()
            .map_err(corrupt)
    };
    let kind = match kind.as_str() {
        "posted" => TransferKind::Posted,
        "pending" => TransferKind::Pending {
            timeout_secs: timeout_secs.ok_or_else(|| corrupt("timeout missing"))?,
        },
        "post_pending" => TransferKind::PostPending {
            pending_id: pending_id()?,
        },
        "void_pending" => TransferKind::VoidPending {
            pending_id: pending_id()?,
        },
        other => return Err(corrupt(format!("transfer kind {other}"))),
    };
    let currency = currency.parse().map_err(|_| corrupt("currency"))?;
    Ok((
        Transfer {
            id: id.parse().map_err(corrupt)?,
            debit_account: debit.parse().map_err(corrupt)?,
            credit_account: credit.parse().map_err(corrupt)?,
            amount: Money::new(row.try_get("amount")?, currency),
            kind,
            pending_state: pending_state
                .map(|s| s.parse().map_err(|_| corrupt("pending state")))
                .transpose()?,
            expires_at: expires_at.map(from_unix_micros),
            created_at: from_unix_micros(row.try_get("created_at")?),
        },
        row.try_get("requested_amount")?,
    ))
}

fn kind_columns(kind: &TransferKind) -> (&'static str, Option<String>, Option<i64>) {
    match kind {
        TransferKind::Posted => ("posted", None, None),
        TransferKind::Pending { timeout_secs } => ("pending", None, Some(*timeout_secs)),
        TransferKind::PostPending { pending_id } => {
            ("post_pending", Some(pending_id.to_string()), None)
        }
        TransferKind::VoidPending { pending_id } => {
            ("void_pending", Some(pending_id.to_string()), None)
        }
    }
}

impl Store {
    /// `FOR UPDATE` where the dialect has row locks (PostgreSQL); SQLite's
    /// write transaction already holds the database's single write lock.
    fn lock_rows(&self) -> &'static str {
        match self.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    async fn find_transfer(
        &self,
        conn: &mut AnyConnection,
        id: &TransferId,
        read: Read,
    ) -> Result<Option<(Transfer, i64)>, StoreError> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE id = $1{}",
            match read {
                Read::ForUpdate => self.lock_rows(),
                Read::Plain => "",
            }
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(transfer_from_row).transpose()
    }

    /// Locks and loads two accounts, in id order.
    async fn lock_accounts(
        &self,
        conn: &mut AnyConnection,
        a: &AccountId,
        b: &AccountId,
    ) -> Result<Vec<Account>, StoreError> {
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id IN ($1, $2) ORDER BY id{}",
            self.lock_rows()
        );
        let rows = sqlx::query(&sql)
            .bind(first.as_str())
            .bind(second.as_str())
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(account_from_row).collect()
    }

    async fn save_totals(conn: &mut AnyConnection, account: &Account) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE ledger_accounts SET debits_pending = $2, debits_posted = $3, \
             credits_pending = $4, credits_posted = $5 WHERE id = $1",
        )
        .bind(account.id.as_str())
        .bind(account.debits_pending)
        .bind(account.debits_posted)
        .bind(account.credits_pending)
        .bind(account.credits_posted)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        // PostgreSQL 23505; SQLite 2067 (SQLITE_CONSTRAINT_UNIQUE) or 1555 (primary key).
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("23505") | Some("2067") | Some("1555")
        ),
        _ => false,
    }
}

/// Inserts an account inside the caller's transaction (a card and its
/// account are created together); `false` if the id is taken.
pub(crate) async fn insert_account(
    conn: &mut AnyConnection,
    account: &Account,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let flags = i64::from(account.flags.debits_must_not_exceed_credits) * FLAG_DEBITS_LE_CREDITS
        + i64::from(account.flags.credits_must_not_exceed_debits) * FLAG_CREDITS_LE_DEBITS;
    let n = sqlx::query(
        "INSERT INTO ledger_accounts (id, currency, flags, overdraft_limit, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(account.id.as_str())
    .bind(account.currency.code())
    .bind(flags)
    .bind(account.overdraft_limit_minor)
    .bind(to_unix_micros(now))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[async_trait]
impl LedgerStore for Store {
    async fn ledger_open_account(
        &self,
        account: &Account,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let created = insert_account(tx.conn(), account, now).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn ledger_account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn ledger_transfer(&self, id: &TransferId) -> Result<Option<Transfer>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(self
            .find_transfer(&mut conn, id, Read::Plain)
            .await?
            .map(|(t, _)| t))
    }

    async fn ledger_submit(
        &self,
        request: &TransferRequest,
        events: &[NewEvent],
        now: Timestamp,
    ) -> Result<TransferOutcome, StoreError> {
        // Times are stored in microseconds; decide with the same precision so
        // that what is returned now equals what is read back later.
        let now = from_unix_micros(to_unix_micros(now));
        let mut tx = self.begin_write().await?;
        // Lock the accounts first, then look for the id: a concurrent
        // submission of the same transfer locks the same accounts, so once we
        // hold them its row (if it committed) is visible, and a retry is
        // answered "exists" rather than judged again on the new balances.
        let accounts = self
            .lock_accounts(tx.conn(), &request.debit_account, &request.credit_account)
            .await?;
        if let Some((existing, requested)) = self
            .find_transfer(tx.conn(), &request.id, Read::Plain)
            .await?
        {
            return Ok(resubmission(existing, requested, request));
        }
        let pending = match &request.kind {
            TransferKind::PostPending { pending_id } | TransferKind::VoidPending { pending_id } => {
                match self
                    .find_transfer(tx.conn(), pending_id, Read::ForUpdate)
                    .await?
                {
                    Some((p, _)) if matches!(p.kind, TransferKind::Pending { .. }) => Some(p),
                    _ => return Ok(TransferOutcome::NotFound),
                }
            }
            _ => None,
        };
        let find = |id: &AccountId| accounts.iter().find(|a| &a.id == id);
        let (Some(debit), Some(credit)) =
            (find(&request.debit_account), find(&request.credit_account))
        else {
            return Ok(TransferOutcome::NotFound);
        };
        let applied = match apply(request, debit, credit, pending.as_ref(), now) {
            Ok(a) => a,
            Err(e) => return Ok(TransferOutcome::Refused(e)),
        };
        Self::save_totals(tx.conn(), &applied.debit).await?;
        Self::save_totals(tx.conn(), &applied.credit).await?;
        let t = &applied.transfer;
        let (kind, pending_id, timeout_secs) = kind_columns(&t.kind);
        let inserted = sqlx::query(&format!(
            "INSERT INTO ledger_transfers ({TRANSFER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(t.id.as_str())
        .bind(t.debit_account.as_str())
        .bind(t.credit_account.as_str())
        .bind(t.amount.amount_minor)
        .bind(request.amount.amount_minor)
        .bind(t.amount.currency.code())
        .bind(kind)
        .bind(pending_id)
        .bind(timeout_secs)
        .bind(t.pending_state.map(|s| s.as_str()))
        .bind(t.expires_at.map(to_unix_micros))
        .bind(to_unix_micros(t.created_at))
        .execute(tx.conn())
        .await;
        if let Err(e) = inserted {
            if is_unique_violation(&e) {
                // A concurrent submission of the same id (PostgreSQL) won the
                // race while we waited: answer as a resubmission.
                drop(tx);
                let mut conn = self.pool.acquire().await?;
                return match self
                    .find_transfer(&mut conn, &request.id, Read::Plain)
                    .await?
                {
                    Some((existing, requested)) => Ok(resubmission(existing, requested, request)),
                    // The unique index on pending_id: the pending was settled meanwhile.
                    None => Ok(TransferOutcome::Refused(LedgerError::PendingAlreadyPosted)),
                };
            }
            return Err(e.into());
        }
        if let Some((pending_id, state)) = &applied.settles {
            sqlx::query("UPDATE ledger_transfers SET pending_state = $2 WHERE id = $1 AND pending_state = 'pending'")
                .bind(pending_id.as_str())
                .bind(state.as_str())
                .execute(tx.conn())
                .await?;
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(TransferOutcome::Created(applied.transfer))
    }

    async fn ledger_expire_due(&self, now: Timestamp, limit: i64) -> Result<u64, StoreError> {
        let due = sqlx::query(
            "SELECT id FROM ledger_transfers WHERE pending_state = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(to_unix_micros(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut expired = 0;
        for row in &due {
            let id: String = row.try_get("id")?;
            let id: TransferId = id.parse().map_err(corrupt)?;
            let mut tx = self.begin_write().await?;
            // Same lock order as a submission (accounts, then the pending
            // transfer), so expiry and a concurrent post cannot deadlock.
            let Some((p, _)) = self.find_transfer(tx.conn(), &id, Read::Plain).await? else {
                continue;
            };
            let accounts = self
                .lock_accounts(tx.conn(), &p.debit_account, &p.credit_account)
                .await?;
            let Some((p, _)) = self.find_transfer(tx.conn(), &id, Read::ForUpdate).await? else {
                continue;
            };
            if p.pending_state != Some(PendingState::Pending) {
                continue; // settled meanwhile
            }
            let find = |id: &AccountId| {
                accounts
                    .iter()
                    .find(|a| &a.id == id)
                    .ok_or_else(|| corrupt("transfer of a missing account"))
            };
            let (d, c) = expire(&p, find(&p.debit_account)?, find(&p.credit_account)?);
            Self::save_totals(tx.conn(), &d).await?;
            Self::save_totals(tx.conn(), &c).await?;
            sqlx::query("UPDATE ledger_transfers SET pending_state = 'expired' WHERE id = $1")
                .bind(p.id.as_str())
                .execute(tx.conn())
                .await?;
            tx.commit().await?;
            expired += 1;
        }
        Ok(expired)
    }

    async fn ledger_totals(&self) -> Result<LedgerTotals, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS accounts, \
               CAST(COALESCE(SUM(debits_posted), 0) AS BIGINT) AS debits_posted, \
               CAST(COALESCE(SUM(credits_posted), 0) AS BIGINT) AS credits_posted, \
               CAST(COALESCE(SUM(debits_pending), 0) AS BIGINT) AS debits_pending, \
               CAST(COALESCE(SUM(credits_pending), 0) AS BIGINT) AS credits_pending \
             FROM ledger_accounts",
        )
        .fetch_one(&self.pool)
        .await?;
        let transfers: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_transfers")
                .fetch_one(&self.pool)
                .await?;
        Ok(LedgerTotals {
            accounts: row.try_get("accounts")?,
            transfers,
            debits_posted: row.try_get("debits_posted")?,
            credits_posted: row.try_get("credits_posted")?,
            debits_pending: row.try_get("debits_pending")?,
            credits_pending: row.try_get("credits_pending")?,
        })
    }

    async fn ledger_inconsistent_accounts(&self) -> Result<Vec<AccountId>, StoreError> {
        // Posted totals are the sums of posted and post_pending transfers;
        // pending totals the sums of pending transfers still pending.
        let rows = sqlx::query(
            "SELECT a.id FROM ledger_accounts a \
             LEFT JOIN (SELECT debit_account_id AS id, \
                    SUM(CASE WHEN kind IN ('posted', 'post_pending') THEN amount ELSE 0 END) AS posted, \
                    SUM(CASE WHEN pending_state = 'pending' THEN amount ELSE 0 END) AS pending \
                  FROM ledger_transfers GROUP BY debit_account_id) d ON d.id = a.id \
             LEFT JOIN (SELECT credit_account_id AS id, \
                    SUM(CASE WHEN kind IN ('posted', 'post_pending') THEN amount ELSE 0 END) AS posted, \
                    SUM(CASE WHEN pending_state = 'pending' THEN amount ELSE 0 END) AS pending \
                  FROM ledger_transfers GROUP BY credit_account_id) c ON c.id = a.id \
             WHERE a.debits_posted <> COALESCE(d.posted, 0) OR a.debits_pending <> COALESCE(d.pending, 0) \
                OR a.credits_posted <> COALESCE(c.posted, 0) OR a.credits_pending <> COALESCE(c.pending, 0)",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                id.parse().map_err(corrupt)
            })
            .collect()
    }
}

fn resubmission(
    existing: Transfer,
    requested_minor: i64,
    request: &TransferRequest,
) -> TransferOutcome {
    if existing.is_resubmission(requested_minor, request) {
        TransferOutcome::Exists(existing)
    } else {
        TransferOutcome::Refused(LedgerError::ExistsWithDifferentFields)
    }
}
