//! Throwaway databases for tests, on either dialect.
//!
//! SQLite: a fresh file in a temporary folder. PostgreSQL: a fresh schema in
//! the test database (`PAYBRIDGE_TEST_DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`), so tests run in parallel and
//! each drops its schema when done. When PostgreSQL cannot be reached, the
//! PostgreSQL half is skipped with a notice on the terminal, unless
//! `PAYBRIDGE_REQUIRE_POSTGRES=1` (as CI sets), which makes it a failure.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::db::{Store, StoreConfig};

pub const TEST_DATABASE_URL_ENV: &str = "PAYBRIDGE_TEST_DATABASE_URL";
pub const REQUIRE_POSTGRES_ENV: &str = "PAYBRIDGE_REQUIRE_POSTGRES";
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Small pools: many tests run at once against one server.
const TEST_POOL_SIZE: u32 = 8;

/// A store that removes itself when dropped.
#[derive(Debug)]
pub struct TestDb {
    pub store: Store,
    pub config: StoreConfig,
    _guard: StoreGuard,
}

/// A store location (SQLite folder or PostgreSQL schema) removed on drop,
/// for tests that let something else (the app) open the store.
#[derive(Debug)]
pub struct StoreGuard {
    pub config: StoreConfig,
    cleanup: Cleanup,
}

impl StoreGuard {
    pub fn sqlite() -> StoreGuard {
        let (config, dir) = sqlite_config();
        StoreGuard {
            config,
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// A fresh, migrated PostgreSQL schema, or `None` (after the notice)
    /// when PostgreSQL is unreachable and not required.
    pub async fn postgres() -> Option<StoreGuard> {
        TestDb::postgres().await.map(|db| {
            let TestDb {
                store: _,
                config: _,
                _guard,
            } = db;
            _guard
        })
    }
}

impl Drop for StoreGuard {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { url, schema } => drop_schema(url, schema),
        }
    }
}

#[derive(Debug)]
enum Cleanup {
    Dir(PathBuf),
    Schema { url: String, schema: String },
}

/// The PostgreSQL test database URL.
pub fn postgres_url() -> String {
    std::env::var(TEST_DATABASE_URL_ENV).unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.into())
}

fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A config for a fresh SQLite file (the folder is created on open).
pub fn sqlite_config() -> (StoreConfig, PathBuf) {
    let dir = std::env::temp_dir().join(format!("paybridge-test-{}", random_suffix()));
    (
        StoreConfig::Sqlite {
            path: dir.join("store.db"),
        },
        dir,
    )
}

/// A config for a fresh PostgreSQL schema.
pub fn postgres_config() -> StoreConfig {
    StoreConfig::Postgres {
        url: postgres_url(),
        schema: format!("pbt_{}", random_suffix()),
        max_connections: TEST_POOL_SIZE,
    }
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let guard = StoreGuard::sqlite();
        let store = Store::open(&guard.config)
            .await
            .expect("open SQLite test store");
        TestDb {
            store,
            config: guard.config.clone(),
            _guard: guard,
        }
    }

    /// A fresh PostgreSQL schema, or `None` (after a notice) when PostgreSQL
    /// is unreachable and not required.
    pub async fn postgres() -> Option<TestDb> {
        let config = postgres_config();
        let StoreConfig::Postgres { url, schema, .. } = &config else {
            unreachable!("postgres_config builds a PostgreSQL config")
        };
        match Store::open(&config).await {
            Ok(store) => Some(TestDb {
                store,
                _guard: StoreGuard {
                    cleanup: Cleanup::Schema {
                        url: url.clone(),
                        schema: schema.clone(),
                    },
                    config: config.clone(),
                },
                config,
            }),
            Err(e) => {
                postgres_unavailable(&e);
                None
            }
        }
    }
}

/// Fails (in CI) or prints a notice once (on a developer's machine).
pub fn postgres_unavailable(error: &dyn std::fmt::Display) {
    if std::env::var(REQUIRE_POSTGRES_ENV).is_ok_and(|v| v == "1") {
        panic!(
            "PostgreSQL is required ({REQUIRE_POSTGRES_ENV}=1) but unreachable at {}: {error}",
            postgres_url()
        );
    }
    static NOTICED: AtomicBool = AtomicBool::new(false);
    if !NOTICED.swap(true, Ordering::SeqCst) {
        // Written to the terminal directly: the test harness captures
        // `eprintln!` of passing tests, and this must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTICE: PostgreSQL unreachable at {} ({error}); skipping the PostgreSQL half of the store tests. \
             Set {REQUIRE_POSTGRES_ENV}=1 to make this a failure.\n",
            postgres_url()
        );
    }
}

/// Creates an empty schema `schema` on the PostgreSQL at `url` (for a
/// tool's tables kept apart, such as pgbench's; [`drop_schema`] removes it).
pub async fn create_schema(url: &str, schema: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await?;
    conn.close().await
}

/// Drops a test schema from a thread of its own: `Drop` cannot await, and it
/// may run inside or outside a runtime.
pub fn drop_schema(url: &str, schema: &str) {
    let (url, schema) = (url.to_owned(), schema.to_owned());
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cleanup runtime");
        rt.block_on(async move {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        });
    });
    let _ = handle.join();
}

/// Declares `sqlite::name` and `postgres::name` tests running
/// `name(&TestDb)` on a fresh store of each dialect (the conformance suites).
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::testing::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = $crate::testing::TestDb::postgres().await {
                        super::$name(&db).await;
                    }
                }
            )*
        }
    };
}
