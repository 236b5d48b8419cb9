//! Keys of encryption at rest, and the [`KeyVault`] services seal and open
//! personal data with.
//!
//! Every sealed column is listed in [`SEALED_COLUMNS`] and sealed for the
//! context `<table>.<column>:<row id>` (see [`sealed_context`]), so a
//! ciphertext copied to another row or column does not open, and
//! `paybridge keys rotate` can re-wrap every sealed value without knowing
//! what it is.

use async_trait::async_trait;
use paybridge_crypto::envelope::{EnvelopeError, Keyring};
use paybridge_crypto::master::{MasterKey, WrongMasterKey};
use paybridge_crypto::Secret;
use paybridge_domain::clock::to_unix_micros;
use paybridge_domain::Timestamp;
use sqlx::Row;
use tokio::sync::RwLock;

use crate::db::Store;
use crate::error::StoreError;

/// A column holding sealed values, and what names its row in the sealed
/// context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedColumn {
    pub table: &'static str,
    /// The row's id column, or an SQL expression over the row's columns
    /// when a value is bound to more than its id (a transfer payment
    /// agreement: its id, user and device).
    pub id_column: &'static str,
    pub column: &'static str,
}

const fn col(table: &'static str, column: &'static str) -> SealedColumn {
    SealedColumn {
        table,
        id_column: "id",
        column,
    }
}

/// Every sealed column in either role's schema. A new sealed column must be
/// added here, or rotation leaves it under the old key (a test checks that
/// every `*_sealed` column of the schema is listed).
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    col("otp_challenges", "phone_sealed"),
    col("bank_customers", "name_sealed"),
    col("bank_customers", "id_number_sealed"),
    col("bank_customers", "phone_sealed"),
    col("bank_cards", "pan_sealed"),
    col("wallet_users", "phone_sealed"),
    col("wallet_users", "name_sealed"),
    col("wallet_users", "id_number_sealed"),
    col("bindings", "holder_name_sealed"),
    col("bindings", "holder_id_number_sealed"),
    col("bindings", "phone_sealed"),
    col("bindings", "agreement_sealed"),
    col("quick_pay_agreements", "number_sealed"),
    col("merchants", "webhook_secret_sealed"),
    PAIRING_DEVICE_INFO,
    TRANSFER_AGREEMENT_INFO,
    CARD_APPLICANT,
    col("card_applications", "phone_sealed"),
    CARD_APPLICATION_REFERENCE,
    CARD_APPLICATION_MEDIA,
    WALLET_CARD_TOKEN,
    BANK_CARD_APPLICANT,
    VAULT_TOKEN,
];

/// Flow F5: a virtual card application's applicant (name, ID number), at
/// the wallet.
pub const CARD_APPLICANT: SealedColumn = col("card_applications", "applicant_sealed");
/// Flow F5: the identity authority's reference number of an application.
pub const CARD_APPLICATION_REFERENCE: SealedColumn = col("card_applications", "reference_sealed");
/// Flow F5: an ID card photo or video frame, bound to its application and slot.
pub const CARD_APPLICATION_MEDIA: SealedColumn = SealedColumn {
    table: "card_application_media",
    id_column: "application_id || '/' || slot",
    column: "content_sealed",
};
/// Flow F5: a card token number as the wallet keeps it.
pub const WALLET_CARD_TOKEN: SealedColumn = col("card_tokens", "token_sealed");
/// Flow F5: the applicant as the issuer received it.
pub const BANK_CARD_APPLICANT: SealedColumn = col("bank_card_applications", "applicant_sealed");
/// Flow F5: a card token number in the issuer's token vault.
pub const VAULT_TOKEN: SealedColumn = col("token_vault", "token_sealed");

/// What an application's image in `slot` is sealed for (the same text as
/// [`CARD_APPLICATION_MEDIA`]'s `id_column` gives in SQL).
pub fn media_seal_key(application: &str, slot: &str) -> String {
    format!("{application}/{slot}")
}

/// The sealed column of a business binding request's device info (flow F3).
pub const PAIRING_DEVICE_INFO: SealedColumn = col("device_pairings", "device_info_sealed");

/// The sealed column of the payment agreement information (flow F3),
/// bound to the agreement's id, user and device.
pub const TRANSFER_AGREEMENT_INFO: SealedColumn = SealedColumn {
    table: "transfer_agreements",
    id_column: "id || '/' || user_id || '/' || device_id",
    column: "info_sealed",
};

/// What the payment agreement information of agreement `id` is sealed for:
/// the agreement, its user and its device together (the same text as
/// [`TRANSFER_AGREEMENT_INFO`]'s `id_column` gives in SQL), so a sealed
/// agreement copied to another row, user or device does not open.
pub fn transfer_agreement_seal_key(id: &str, user: &str, device: &str) -> String {
    format!("{id}/{user}/{device}")
}

/// The associated data a value in `column` of row `id` is sealed for.
pub fn sealed_context(column: &SealedColumn, id: &str) -> String {
    format!("{}.{}:{id}", column.table, column.column)
}

impl Store {
    /// Every `(table, column)` of this store's schema whose column name ends
    /// with `suffix` (tests check that every `_sealed` column is rotated).
    pub async fn columns_ending_with(
        &self,
        suffix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let sql = match self.backend() {
            crate::Backend::Sqlite => {
                "SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' ORDER BY 1, 2"
            }
            crate::Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) AS t, CAST(column_name AS TEXT) AS c \
                 FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2"
            }
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        let mut out = Vec::new();
        for r in rows {
            let (t, c): (String, String) = (r.try_get("t")?, r.try_get("c")?);
            if c.ends_with(suffix) {
                out.push((t, c));
            }
        }
        Ok(out)
    }
}

/// A key-encryption key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKek {
    pub id: String,
    pub wrapped: String,
    pub active: bool,
}

#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    async fn kek_list(&self) -> Result<Vec<StoredKek>, StoreError>;
    /// Stores the first KEK as active unless another process did first;
    /// `false` when one was already there.
    async fn kek_insert_first(&self, kek: &StoredKek, now: Timestamp) -> Result<bool, StoreError>;
    /// Stores `kek` and makes it the only active one.
    async fn kek_activate_new(&self, kek: &StoredKek, now: Timestamp) -> Result<(), StoreError>;
    /// Records `public_key` as the key `partner_id` signs with on this
    /// store, unless one is recorded already; answers the recorded one.
    async fn signing_key_claim(
        &self,
        partner_id: &str,
        public_key: &str,
        now: Timestamp,
    ) -> Result<String, StoreError>;
    /// Up to `limit` (row id, sealed value) of `column` with ids after `after`, in id order.
    async fn sealed_batch(
        &self,
        column: &SealedColumn,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// Replaces one sealed value if it is still `old`.
    async fn sealed_replace(
        &self,
        column: &SealedColumn,
        id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
impl KeyStore for Store {
    async fn kek_list(&self) -> Result<Vec<StoredKek>, StoreError> {
        let rows =
            sqlx::query("SELECT id, wrapped, active FROM encryption_keys ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredKek {
                    id: r.try_get("id")?,
                    wrapped: r.try_get("wrapped")?,
                    active: r.try_get::<i64, _>("active")? == 1,
                })
            })
            .collect()
    }

    async fn kek_insert_first(&self, kek: &StoredKek, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO encryption_keys (id, wrapped, active, created_at) \
             SELECT $1, $2, 1, $3 WHERE NOT EXISTS (SELECT 1 FROM encryption_keys) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&kek.id)
        .bind(&kek.wrapped)
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    async fn signing_key_claim(
        &self,
        partner_id: &str,
        public_key: &str,
        now: Timestamp,
    ) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO signing_keys (partner_id, public_key, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(partner_id)
        .bind(public_key)
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?;
        let recorded: String =
            sqlx::query_scalar("SELECT public_key FROM signing_keys WHERE partner_id = $1")
                .bind(partner_id)
                .fetch_one(tx.conn())
                .await?;
        tx.commit().await?;
        Ok(recorded)
    }

    async fn kek_activate_new(&self, kek: &StoredKek, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE encryption_keys SET active = 0 WHERE active = 1")
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "INSERT INTO encryption_keys (id, wrapped, active, created_at) VALUES ($1, $2, 1, $3)",
        )
        .bind(&kek.id)
        .bind(&kek.wrapped)
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn sealed_batch(
        &self,
        column: &SealedColumn,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        // Table and column names come from SEALED_COLUMNS, never from input.
        let sql = format!(
            "SELECT {id} AS id, {c} AS sealed FROM {t} WHERE {id} > $1 AND {c} IS NOT NULL \
             ORDER BY {id} LIMIT $2",
            id = column.id_column,
            c = column.column,
            t = column.table
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("sealed")?)))
            .collect()
    }

    async fn sealed_replace(
        &self,
        column: &SealedColumn,
        id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {t} SET {c} = $3 WHERE {id} = $1 AND {c} = $2",
            id = column.id_column,
            c = column.column,
            t = column.table
        );
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(&sql)
            .bind(id)
            .bind(old)
            .bind(new)
            .execute(tx.conn())
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }
}

/// Why the vault could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    WrongMasterKey(#[from] WrongMasterKey),
    #[error("sealed value in {table}.{column} of {id}: {source}")]
    Envelope {
        table: &'static str,
        column: &'static str,
        id: String,
        source: EnvelopeError,
    },
}

impl From<VaultError> for paybridge_domain::ServiceError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Store(s) => s.into(),
            other => paybridge_domain::ServiceError::Internal(Box::new(other)),
        }
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub previous: String,
    pub active: String,
    /// Values moved to the new key.
    pub rewrapped: u64,
    /// Values already under it.
    pub current: u64,
}

/// How often a running server reads its key ring again (so it seals with
/// the key `keys rotate` made active, within this many seconds).
pub const KEY_REFRESH_SECS: u64 = 30;

/// One role's keyring, loaded from its store, with the master key to unwrap
/// it. Servers that were running during a `keys rotate` meet values under the
/// new key; on an unknown key id the vault reloads the keyring once, and the
/// server reloads it every [`KEY_REFRESH_SECS`] to seal with the new key.
#[derive(Debug)]
pub struct KeyVault {
    store: std::sync::Arc<dyn KeyStore>,
    master: MasterKey,
    role: String,
    ring: RwLock<Keyring>,
}

impl KeyVault {
    /// Loads the role's KEKs, creating the first one on a new store.
    pub async fn open(
        store: std::sync::Arc<dyn KeyStore>,
        master: MasterKey,
        role: &str,
        now: Timestamp,
    ) -> Result<KeyVault, VaultError> {
        if store.kek_list().await?.is_empty() {
            let kek = paybridge_crypto::envelope::Kek::generate();
            let stored = StoredKek {
                id: kek.id().to_owned(),
                wrapped: master.wrap_kek(role, &kek),
                active: true,
            };
            store.kek_insert_first(&stored, now).await?;
        }
        let ring = load_ring(store.as_ref(), &master, role).await?;
        Ok(KeyVault {
            store,
            master,
            role: role.to_owned(),
            ring: RwLock::new(ring),
        })
    }

    pub async fn active_key_id(&self) -> String {
        self.ring.read().await.active_id().to_owned()
    }

    /// Seals `plaintext` for row `id` of `column`.
    pub async fn seal(&self, column: &SealedColumn, id: &str, plaintext: &[u8]) -> String {
        self.ring
            .read()
            .await
            .seal(plaintext, &sealed_context(column, id))
    }

    /// Opens a value sealed for row `id` of `column`.
    pub async fn open_value(
        &self,
        column: &SealedColumn,
        id: &str,
        sealed: &str,
    ) -> Result<Secret<Vec<u8>>, VaultError> {
        let context = sealed_context(column, id);
        let first = self.ring.read().await.open(sealed, &context);
        let result = match first {
            Err(EnvelopeError::UnknownKey) => {
                self.reload().await?;
                self.ring.read().await.open(sealed, &context)
            }
            other => other,
        };
        result.map_err(|source| VaultError::Envelope {
            table: column.table,
            column: column.column,
            id: id.to_owned(),
            source,
        })
    }

    /// Seals `value` as JSON for row `id` of `column` (a record of several
    /// personal fields sealed together).
    pub async fn seal_json<T: serde::Serialize>(
        &self,
        column: &SealedColumn,
        id: &str,
        value: &T,
    ) -> String {
        let json = serde_json::to_vec(value).expect("sealed records are plain data");
        self.seal(column, id, &json).await
    }

    /// Opens a record [`KeyVault::seal_json`] sealed.
    pub async fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        column: &SealedColumn,
        id: &str,
        sealed: &str,
    ) -> Result<T, VaultError> {
        let bytes = self.open_value(column, id, sealed).await?;
        serde_json::from_slice(bytes.expose()).map_err(|_| VaultError::Envelope {
            table: column.table,
            column: column.column,
            id: id.to_owned(),
            source: EnvelopeError::Malformed,
        })
    }

    /// Opens a value that was sealed from UTF-8 text.
    pub async fn open_text(
        &self,
        column: &SealedColumn,
        id: &str,
        sealed: &str,
    ) -> Result<Secret<String>, VaultError> {
        let bytes = self.open_value(column, id, sealed).await?;
        String::from_utf8(bytes.expose().clone())
            .map(Secret::new)
            .map_err(|_| VaultError::Envelope {
                table: column.table,
                column: column.column,
                id: id.to_owned(),
                source: EnvelopeError::Malformed,
            })
    }

    /// Reads the key ring again: after `keys rotate` (another process, or
    /// another instance) this instance seals with the new active key. The
    /// server calls it every [`KEY_REFRESH_SECS`].
    pub async fn reload(&self) -> Result<(), VaultError> {
        let ring = load_ring(self.store.as_ref(), &self.master, &self.role).await?;
        *self.ring.write().await = ring;
        Ok(())
    }

    /// Makes a new KEK active, then re-wraps every sealed value under it.
    pub async fn rotate(&self, now: Timestamp) -> Result<RotationReport, VaultError> {
        let previous = self.active_key_id().await;
        let kek = paybridge_crypto::envelope::Kek::generate();
        self.store
            .kek_activate_new(
                &StoredKek {
                    id: kek.id().to_owned(),
                    wrapped: self.master.wrap_kek(&self.role, &kek),
                    active: true,
                },
                now,
            )
            .await?;
        self.reload().await?;
        let (rewrapped, current) = self.rewrap_all().await?;
        Ok(RotationReport {
            previous,
            active: self.active_key_id().await,
            rewrapped,
            current,
        })
    }

    /// Moves every sealed value under an older KEK to the active one.
    /// Returns (moved, already current).
    pub async fn rewrap_all(&self) -> Result<(u64, u64), VaultError> {
        const BATCH: i64 = 500;
        let (mut moved, mut current) = (0, 0);
        for column in SEALED_COLUMNS {
            let mut after = String::new();
            loop {
                let batch = self.store.sealed_batch(column, &after, BATCH).await?;
                let Some((last, _)) = batch.last() else { break };
                after = last.clone();
                for (id, sealed) in &batch {
                    let ring = self.ring.read().await;
                    let envelope_err = |source| VaultError::Envelope {
                        table: column.table,
                        column: column.column,
                        id: id.clone(),
                        source,
                    };
                    if !ring.needs_rewrap(sealed).map_err(envelope_err)? {
                        current += 1;
                        continue;
                    }
                    let new = ring
                        .rewrap(sealed, &sealed_context(column, id))
                        .map_err(envelope_err)?;
                    drop(ring);
                    // A row changed meanwhile was sealed anew, under the active key.
                    if self.store.sealed_replace(column, id, sealed, &new).await? {
                        moved += 1;
                    }
                }
            }
        }
        Ok((moved, current))
    }
}

async fn load_ring(
    store: &dyn KeyStore,
    master: &MasterKey,
    role: &str,
) -> Result<Keyring, VaultError> {
    let stored = store.kek_list().await?;
    let mut active = None;
    let mut older = Vec::new();
    for k in stored {
        let kek = master.unwrap_kek(role, &k.id, &k.wrapped)?;
        if k.active {
            active = Some(kek);
        } else {
            older.push(kek);
        }
    }
    let active =
        active.ok_or_else(|| StoreError::Corrupt("encryption_keys has no active key".into()))?;
    Ok(Keyring::new(active, older))
}
