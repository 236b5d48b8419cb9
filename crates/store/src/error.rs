//! Store errors. Callers branch on the variant; the source is for logs only.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded; worth retrying later.
    #[error("the store is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A row holds something this version cannot read: a bug or a bad migration.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Any other database error: a bug in our SQL.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db)
                if db.code().as_deref() == Some("5") || db.code().as_deref() == Some("517") =>
            {
                // SQLITE_BUSY / SQLITE_BUSY_SNAPSHOT: another process held the
                // write lock past the busy timeout.
                StoreError::Unavailable(e)
            }
            other => StoreError::Database(other),
        }
    }
}

/// Whether a statement failed on a unique constraint (a race another writer won).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

impl From<StoreError> for paybridge_domain::ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => paybridge_domain::ServiceError::Unavailable {
                code: paybridge_domain::ErrorCode::StoreUnavailable,
                source: Box::new(e),
            },
            other => paybridge_domain::ServiceError::Internal(Box::new(other)),
        }
    }
}
