//! Opening a store on either dialect, migrating it, and starting write
//! transactions the way each dialect wants.
//!
//! The two migration folders are the same file for file, line for line,
//! except for the type words in [`DIALECT_TYPE_WORDS`] (a fitness test
//! holds them to that): a schema change is written once and copied.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Once};
use std::time::Duration;

use paybridge_domain::ids::UserId;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::StoreError;

/// Which end of a list its first page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageOrder {
    NewestFirst,
    OldestFirst,
}

/// One page of one owner's rows of a table (see [`Store::page_rows`]).
pub(crate) struct PageOf<'a> {
    pub table: &'static str,
    pub columns: &'static str,
    pub owner_column: &'static str,
    pub owner: &'a str,
    pub order: PageOrder,
    pub limit: u32,
    pub after: Option<&'a str>,
}

/// SQLite waits this long for another process's write lock before failing
/// with `store_unavailable`. In-process writers queue on the writer gate
/// instead and never spin on the lock.
pub const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;
/// SQLite connections: WAL lets readers run beside the one writer.
pub const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// Default PostgreSQL pool size per role; each API server holds one pool.
pub const POSTGRES_DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a pooled connection before `store_unavailable`.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The only words in which `migrations/sqlite` and `migrations/postgres`
/// may differ: (SQLite, PostgreSQL). Times are BIGINT microseconds and
/// flags BIGINT in both, so nothing else needs a dialect.
pub const DIALECT_TYPE_WORDS: &[(&str, &str)] = &[
    // An append-only sequence (outbox, sandbox mailboxes).
    (
        "INTEGER PRIMARY KEY AUTOINCREMENT",
        "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    ),
    // Raw bytes (saved idempotent answers).
    ("BLOB", "BYTEA"),
];

/// Which SQL engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where a store lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// An SQLite file, created when missing.
    Sqlite { path: std::path::PathBuf },
    /// A PostgreSQL database; `schema` isolates one role (or one test).
    Postgres {
        url: String,
        schema: String,
        max_connections: u32,
    },
}

/// A handle on one role's database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer at a time; queueing writers here, in order,
    /// is fairer and faster than letting them spin on the busy handler.
    writer_gate: Option<Arc<Semaphore>>,
}

/// A write transaction. On SQLite it holds the writer gate until it ends.
#[derive(Debug)]
pub struct WriteTx {
    pub(crate) tx: Transaction<'static, Any>,
    _gate: Option<OwnedSemaphorePermit>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(StoreError::from)
    }

    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

impl Store {
    /// Opens (creating if needed) and migrates the store.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let store = Self::connect(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens and migrates the store for a starting instance, holding the
    /// store's start-up lock until the returned guard is released: on
    /// PostgreSQL, instances that start together create the schema, run the
    /// migrations and seed one after another (a session advisory lock per
    /// schema), so none fails on another's half-done work. On SQLite (one
    /// process per file) the guard holds nothing.
    pub async fn open_for_startup(
        config: &StoreConfig,
    ) -> Result<(Store, StartupLock), StoreError> {
        let lock = match config {
            StoreConfig::Postgres { url, schema, .. } => {
                install_drivers();
                let options = AnyConnectOptions::from_str(url)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?;
                sqlx::query("SELECT CAST(pg_advisory_lock(hashtext($1)) AS TEXT)")
                    .bind(format!("paybridge-startup:{schema}"))
                    .execute(&pool)
                    .await?;
                StartupLock { pool: Some(pool) }
            }
            StoreConfig::Sqlite { .. } => StartupLock { pool: None },
        };
        let store = Self::open(config).await?;
        Ok((store, lock))
    }

    /// Opens without migrating.
    pub async fn connect(config: &StoreConfig) -> Result<Store, StoreError> {
        install_drivers();
        match config {
            StoreConfig::Sqlite { path } => Self::connect_sqlite(path).await,
            StoreConfig::Postgres {
                url,
                schema,
                max_connections,
            } => Self::connect_postgres(url, schema, *max_connections).await,
        }
    }

    async fn connect_sqlite(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.into()))?;
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(SQLITE_MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL: readers never block the writer. synchronous=FULL:
                    // a committed payment survives a power cut, at the cost
                    // of an fsync per commit.
                    conn.execute(
                        format!(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};"
                        )
                        .as_str(),
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Store {
            pool,
            backend: Backend::Sqlite,
            writer_gate: Some(Arc::new(Semaphore::new(1))),
        })
    }

    async fn connect_postgres(
        url: &str,
        schema: &str,
        max_connections: u32,
    ) -> Result<Store, StoreError> {
        if !valid_schema_name(schema) {
            return Err(StoreError::Corrupt(format!(
                "invalid PostgreSQL schema name {schema:?}: use lowercase letters, digits and _"
            )));
        }
        // Create the schema on a throwaway connection, then point every
        // pooled connection at it.
        let options = AnyConnectOptions::from_str(url)?;
        {
            let bootstrap = AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.clone())
                .await?;
            bootstrap
                .execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
                .await?;
            bootstrap.close().await;
        }
        let set_path = format!("SET search_path TO {schema}");
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    conn.execute(set_path.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Store {
            pool,
            backend: Backend::Postgres,
            writer_gate: None,
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// A page of `owner`'s rows of a table, ordered by `created_at`, then
    /// `id`: at most `limit`, after the row `after` (or from the first).
    /// `None` when `after` is not one of the owner's rows.
    pub(crate) async fn page_rows(
        &self,
        page: PageOf<'_>,
    ) -> Result<Option<Vec<sqlx::any::AnyRow>>, StoreError> {
        let PageOf {
            table,
            columns,
            owner_column,
            owner,
            order,
            limit,
            after,
        } = page;
        let Some((at, id)) = self
            .page_start_in(table, owner_column, owner, order, after)
            .await?
        else {
            return Ok(None);
        };
        let (past, direction) = match order {
            PageOrder::NewestFirst => ("<", "DESC"),
            PageOrder::OldestFirst => (">", "ASC"),
        };
        let rows = sqlx::query(&format!(
            "SELECT {columns} FROM {table} WHERE {owner_column} = $1 \
             AND (created_at {past} $2 OR (created_at = $2 AND id {past} $3)) \
             ORDER BY created_at {direction}, id {direction} LIMIT $4"
        ))
        .bind(owner)
        .bind(at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(rows))
    }

    /// Where a page of `user`'s rows of `table` (newest first by
    /// `created_at`, then `id`) starts; see [`Store::page_start_in`].
    pub(crate) async fn page_start(
        &self,
        table: &'static str,
        user: &UserId,
        after: Option<&str>,
    ) -> Result<Option<(i64, String)>, StoreError> {
        self.page_start_in(
            table,
            "user_id",
            user.as_str(),
            PageOrder::NewestFirst,
            after,
        )
        .await
    }

    /// Where a page of `owner`'s rows of `table` starts: after the row
    /// `after` (its `created_at` and id), or before the first row in
    /// `order`. `None` when `after` is not one of the owner's rows.
    async fn page_start_in(
        &self,
        table: &'static str,
        owner_column: &'static str,
        owner: &str,
        order: PageOrder,
        after: Option<&str>,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let Some(after) = after else {
            let before_all = match order {
                PageOrder::NewestFirst => i64::MAX,
                PageOrder::OldestFirst => i64::MIN,
            };
            return Ok(Some((before_all, String::new())));
        };
        let at: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT created_at FROM {table} WHERE id = $1 AND {owner_column} = $2"
        ))
        .bind(after)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        Ok(at.map(|at| (at, after.to_owned())))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A trivial query, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite (take the write
    /// lock now, so a read-then-write transaction never fails to upgrade), a
    /// plain `BEGIN` (read committed) on PostgreSQL.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let gate = match &self.writer_gate {
            Some(gate) => Some(
                gate.clone()
                    .acquire_owned()
                    .await
                    .expect("the writer gate is never closed"),
            ),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx { tx, _gate: gate })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Held while an instance starts (see [`Store::open_for_startup`]).
#[derive(Debug)]
pub struct StartupLock {
    /// The connection holding the advisory lock; closing it releases it.
    pool: Option<AnyPool>,
}

impl StartupLock {
    /// Lets the next starting instance go on.
    pub async fn release(self) {
        if let Some(pool) = self.pool {
            pool.close().await;
        }
    }
}
