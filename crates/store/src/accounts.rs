//! Wallet accounts: phone (sealed, unique by blind index), login and payment
//! password hashes, the payment password's wrong-try counter, the real-name
//! identity (sealed, one account per person). Changes that judge a counter
//! are conditional on the row's version.

use async_trait::async_trait;
use paybridge_domain::account::AccountStatus;
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::credentials::PasswordGuard;
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::UserId;
use paybridge_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Store;
use crate::error::{corrupt, is_unique_violation, StoreError};
use crate::outbox::append_events;

/// A sealed real-name identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedIdentity {
    pub name_sealed: String,
    pub name_masked: String,
    pub id_number_sealed: String,
    pub id_number_index: String,
    /// When it was recorded.
    pub verified_at: Timestamp,
    /// Attested by a bank (flows F1 and F2); `false` when the owner
    /// declared it: then it is unique to nobody and matched by no look-up.
    pub attested: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    pub id: UserId,
    pub phone_sealed: String,
    pub phone_index: String,
    pub phone_masked: String,
    pub password_hash: Option<String>,
    pub pay_password_hash: Option<String>,
    pub pay_guard: PasswordGuard,
    pub status: AccountStatus,
    /// The bank that registered the account (flow F2), if one did.
    pub registered_by: Option<String>,
    pub identity: Option<SealedIdentity>,
    pub created_at: Timestamp,
    pub version: i64,
}

/// What a conditional change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserWrite {
    Done,
    /// The row moved since it was read: read again and re-judge.
    Stale,
    /// A unique value (phone, ID number) belongs to another account.
    Duplicate,
}

#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    async fn user_create(
        &self,
        user: &StoredUser,
        events: &[NewEvent],
    ) -> Result<UserWrite, StoreError>;
    async fn user(&self, id: &UserId) -> Result<Option<StoredUser>, StoreError>;
    async fn user_by_phone(&self, phone_index: &str) -> Result<Option<StoredUser>, StoreError>;
    async fn user_by_id_number(
        &self,
        id_number_index: &str,
    ) -> Result<Option<StoredUser>, StoreError>;
    /// Saves the payment password (hash and counter) and status of `user`
    /// if the row is at `user.version`.
    async fn user_update_credentials(
        &self,
        user: &StoredUser,
        events: &[NewEvent],
    ) -> Result<UserWrite, StoreError>;
    /// Records an identity if the row is at `version` and has no attested
    /// one (a bank attesting may replace a declared one).
    async fn user_set_identity(
        &self,
        id: &UserId,
        version: i64,
        identity: &SealedIdentity,
        events: &[NewEvent],
    ) -> Result<UserWrite, StoreError>;
}

const USER_COLUMNS: &str =
    "id, phone_sealed, phone_index, phone_masked, password_hash, pay_password_hash, \
     pay_failed_attempts, pay_locked_until, status, registered_by, name_sealed, name_masked, \
     id_number_sealed, id_number_index, identity_verified_at, created_at, pay_locks, \
     pay_consecutive_failures, declared_id_number_index, version";

fn user_from_row(r: &AnyRow) -> Result<StoredUser, StoreError> {
    let id: String = r.try_get("id")?;
    let status: String = r.try_get("status")?;
    let identity = match (
        r.try_get::<Option<String>, _>("name_sealed")?,
        r.try_get::<Option<String>, _>("name_masked")?,
        r.try_get::<Option<String>, _>("id_number_sealed")?,
        r.try_get::<Option<String>, _>("id_number_index")?,
        r.try_get::<Option<String>, _>("declared_id_number_index")?,
        r.try_get::<Option<i64>, _>("identity_verified_at")?,
    ) {
        (Some(ns), Some(nm), Some(is), attested, declared, Some(at))
            if attested.is_some() != declared.is_some() =>
        {
            Some(SealedIdentity {
                name_sealed: ns,
                name_masked: nm,
                id_number_sealed: is,
                attested: attested.is_some(),
                id_number_index: attested.or(declared).expect("one of the two"),
                verified_at: from_unix_micros(at),
            })
        }
        (None, None, None, None, None, None) => None,
        _ => return Err(corrupt(format!("wallet user {id} has a partial identity"))),
    };
    Ok(StoredUser {
        phone_sealed: r.try_get("phone_sealed")?,
        phone_index: r.try_get("phone_index")?,
        phone_masked: r.try_get("phone_masked")?,
        password_hash: r.try_get("password_hash")?,
        pay_password_hash: r.try_get("pay_password_hash")?,
        pay_guard: PasswordGuard {
            failed_attempts: u32::try_from(r.try_get::<i64, _>("pay_failed_attempts")?)
                .map_err(corrupt)?,
            locked_until: r
                .try_get::<Option<i64>, _>("pay_locked_until")?
                .map(from_unix_micros),
            locks: u32::try_from(r.try_get::<i64, _>("pay_locks")?).map_err(corrupt)?,
            consecutive_failures: u32::try_from(r.try_get::<i64, _>("pay_consecutive_failures")?)
                .map_err(corrupt)?,
        },
        status: AccountStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("account status {status}")))?,
        registered_by: r.try_get("registered_by")?,
        identity,
        created_at: from_unix_micros(r.try_get("created_at")?),
        version: r.try_get("version")?,
        id: id.parse().map_err(corrupt)?,
    })
}

impl Store {
    async fn one_user(&self, column: &str, value: &str) -> Result<Option<StoredUser>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM wallet_users WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }
}

/// Inserts an account inside the caller's transaction; `false` when its
/// phone or identity already has one.
pub(crate) async fn insert_user(
    conn: &mut sqlx::AnyConnection,
    u: &StoredUser,
) -> Result<bool, StoreError> {
    let id = u.identity.as_ref();
    let n = sqlx::query(&format!(
        "INSERT INTO wallet_users ({USER_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 0) \
             ON CONFLICT DO NOTHING"
    ))
    .bind(u.id.as_str())
    .bind(&u.phone_sealed)
    .bind(&u.phone_index)
    .bind(&u.phone_masked)
    .bind(u.password_hash.clone())
    .bind(u.pay_password_hash.clone())
    .bind(i64::from(u.pay_guard.failed_attempts))
    .bind(u.pay_guard.locked_until.map(to_unix_micros))
    .bind(u.status.as_str())
    .bind(u.registered_by.clone())
    .bind(id.map(|i| i.name_sealed.clone()))
    .bind(id.map(|i| i.name_masked.clone()))
    .bind(id.map(|i| i.id_number_sealed.clone()))
    .bind(id.filter(|i| i.attested).map(|i| i.id_number_index.clone()))
    .bind(id.map(|i| to_unix_micros(i.verified_at)))
    .bind(to_unix_micros(u.created_at))
    .bind(i64::from(u.pay_guard.locks))
    .bind(i64::from(u.pay_guard.consecutive_failures))
    .bind(id.filter(|i| !i.attested).map(|i| i.id_number_index.clone()))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[async_trait]
impl AccountStore for Store {
    async fn user_create(
        &self,
        u: &StoredUser,
        events: &[NewEvent],
    ) -> Result<UserWrite, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(identity) = u.identity.as_ref().filter(|i| i.attested) {
            let taken: Option<String> =
                sqlx::query_scalar("SELECT id FROM wallet_users WHERE id_number_index = $1")
                    .bind(&identity.id_number_index)
                    .fetch_optional(tx.conn())
                    .await?;
            if taken.is_some() {
                return Ok(UserWrite::Duplicate);
            }
        }
        let n = u64::from(insert_user(tx.conn(), u).await?);
        if n == 0 {
            return Ok(UserWrite::Duplicate);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(UserWrite::Done)
    }

    async fn user(&self, id: &UserId) -> Result<Option<StoredUser>, StoreError> {
        self.one_user("id", id.as_str()).await
    }

    async fn user_by_phone(&self, phone_index: &str) -> Result<Option<StoredUser>, StoreError> {
        self.one_user("phone_index", phone_index).await
    }

    async fn user_by_id_number(
        &self,
        id_number_index: &str,
    ) -> Result<Option<StoredUser>, StoreError> {
        self.one_user("id_number_index", id_number_index).await
    }

    async fn user_update_credentials(
        &self,
        u: &StoredUser,
        events: &[NewEvent],
    ) -> Result<UserWrite, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE wallet_users SET password_hash = $3, pay_password_hash = $4, pay_failed_attempts = $5, \
             pay_locked_until = $6, status = $7, pay_locks = $8, pay_consecutive_failures = $9, \
             version = version + 1 WHERE id = $1 AND version = $2",
        )
        .bind(u.id.as_str())
        .bind(u.version)
        .bind(u.password_hash.clone())
        .bind(u.pay_password_hash.clone())
        .bind(i64::from(u.pay_guard.failed_attempts))
        .bind(u.pay_guard.locked_until.map(to_unix_micros))
        .bind(u.status.as_str())
        .bind(i64::from(u.pay_guard.locks))
        .bind(i64::from(u.pay_guard.consecutive_failures))
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(UserWrite::Stale);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(UserWrite::Done)
    }

    async fn user_set_identity(
        &self,
        id: &UserId,
        version: i64,
        identity: &SealedIdentity,
        events: &[NewEvent],
    ) -> Result<UserWrite, StoreError> {
        let mut tx = self.begin_write().await?;
        // Only an attested identity is one person's: a declared one is
        // unique to nobody (it must not block the person's own account).
        if identity.attested {
            let taken: Option<String> = sqlx::query_scalar(
                "SELECT id FROM wallet_users WHERE id_number_index = $1 AND id <> $2",
            )
            .bind(&identity.id_number_index)
            .bind(id.as_str())
            .fetch_optional(tx.conn())
            .await?;
            if taken.is_some() {
                return Ok(UserWrite::Duplicate);
            }
        }
        let (attested, declared) = if identity.attested {
            (Some(identity.id_number_index.clone()), None)
        } else {
            (None, Some(identity.id_number_index.clone()))
        };
        // Over no identity, or (a bank attesting) over a declared one.
        let n = sqlx::query(
            "UPDATE wallet_users SET name_sealed = $3, name_masked = $4, id_number_sealed = $5, \
             id_number_index = $6, identity_verified_at = $7, declared_id_number_index = $8, \
             version = version + 1 \
             WHERE id = $1 AND version = $2 AND id_number_index IS NULL",
        )
        .bind(id.as_str())
        .bind(version)
        .bind(&identity.name_sealed)
        .bind(&identity.name_masked)
        .bind(&identity.id_number_sealed)
        .bind(attested)
        .bind(to_unix_micros(identity.verified_at))
        .bind(declared)
        .execute(tx.conn())
        .await;
        // Two accounts racing for one person: the unique index decides.
        let n = match n {
            Err(e) if is_unique_violation(&e) => return Ok(UserWrite::Duplicate),
            other => other?.rows_affected(),
        };
        if n == 0 {
            return Ok(UserWrite::Stale);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(UserWrite::Done)
    }
}
