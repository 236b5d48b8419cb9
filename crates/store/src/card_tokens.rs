//! Card tokens of flow F5 on the wallet's side (`domain::card_token`), and
//! the secure element keys of phones they are sealed to. The wallet keeps a
//! token sealed, with its card code and the binding it pays by; the HPKE
//! box of its key material waits here (unopenable by the wallet) until the
//! phone installed it. A token changes only at the version it was read at;
//! unbinding its quick binding deactivates it in the same transaction.

use async_trait::async_trait;
use paybridge_domain::card_token::{TokenActor, TokenStage, TokenState};
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{CardTokenId, DeviceId, UserId};
use paybridge_domain::{Timestamp, WireName};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::bindings::{update_binding_at_version, StoredBinding};
use crate::db::Store;
use crate::error::{corrupt, StoreError};
use crate::outbox::append_events;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCardToken {
    /// The issuer's token id.
    pub id: CardTokenId,
    pub issuer_id: String,
    pub user_id: UserId,
    /// The phone whose secure element holds it (its domain).
    pub device_id: DeviceId,
    pub application_id: String,
    pub binding_id: String,
    pub card_code: String,
    pub token_sealed: String,
    pub token_last4: String,
    /// The issuer's HPKE box for the phone's secure element, until installed.
    pub key_box: Option<String>,
    pub state: TokenState,
    pub installed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// A phone's secure element encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecureElementKey {
    pub device_id: DeviceId,
    /// X25519, base64url.
    pub public_key: String,
    pub registered_at: Timestamp,
}

#[async_trait]
pub trait CardTokenStore: Send + Sync + std::fmt::Debug {
    /// Registers (or replaces) a phone's secure element key.
    async fn secure_element_key_set(
        &self,
        key: &StoredSecureElementKey,
        events: &[NewEvent],
    ) -> Result<(), StoreError>;
    async fn secure_element_key(
        &self,
        device: &DeviceId,
    ) -> Result<Option<StoredSecureElementKey>, StoreError>;
    async fn card_token(&self, id: &CardTokenId) -> Result<Option<StoredCardToken>, StoreError>;
    async fn card_token_by_binding(
        &self,
        binding_id: &str,
    ) -> Result<Option<StoredCardToken>, StoreError>;
    /// A user's tokens, newest first.
    async fn card_tokens_of(&self, user: &UserId) -> Result<Vec<StoredCardToken>, StoreError>;
    /// Saves `t` (read at its version), and the binding it takes with it
    /// (read at its version); `false` if either moved.
    async fn card_token_change(
        &self,
        t: &StoredCardToken,
        binding: Option<&StoredBinding>,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
}

const COLUMNS: &str = "id, issuer_id, user_id, device_id, application_id, binding_id, card_code, \
     token_sealed, token_last4, key_box, state, state_by, installed_at, created_at, updated_at, version";

fn from_row(r: &AnyRow) -> Result<StoredCardToken, StoreError> {
    let text = |c: &str| -> Result<String, StoreError> { Ok(r.try_get::<String, _>(c)?) };
    let stage = text("state")?;
    let by = r
        .try_get::<Option<String>, _>("state_by")?
        .map(|b| TokenActor::from_wire_name(&b).ok_or_else(|| corrupt(format!("token actor {b}"))))
        .transpose()?;
    let state = TokenStage::from_wire_name(&stage)
        .and_then(|s| TokenState::from_parts(s, by))
        .ok_or_else(|| corrupt(format!("token state {stage} by {by:?}")))?;
    Ok(StoredCardToken {
        id: text("id")?.parse().map_err(corrupt)?,
        issuer_id: text("issuer_id")?,
        user_id: text("user_id")?.parse().map_err(corrupt)?,
        device_id: text("device_id")?.parse().map_err(corrupt)?,
        application_id: text("application_id")?,
        binding_id: text("binding_id")?,
        card_code: text("card_code")?,
        token_sealed: text("token_sealed")?,
        token_last4: text("token_last4")?,
        key_box: r.try_get("key_box")?,
        state,
        installed_at: r
            .try_get::<Option<i64>, _>("installed_at")?
            .map(from_unix_micros),
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

/// Inserts a token in the caller's transaction (with the application that
/// issued it and its quick binding).
pub(crate) async fn insert_card_token(
    conn: &mut sqlx::AnyConnection,
    t: &StoredCardToken,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO card_tokens ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0)"
    ))
    .bind(t.id.as_str())
    .bind(&t.issuer_id)
    .bind(t.user_id.as_str())
    .bind(t.device_id.as_str())
    .bind(&t.application_id)
    .bind(&t.binding_id)
    .bind(&t.card_code)
    .bind(&t.token_sealed)
    .bind(&t.token_last4)
    .bind(t.key_box.clone())
    .bind(t.state.stage().as_str())
    .bind(t.state.actor().map(|a| a.as_str()))
    .bind(t.installed_at.map(to_unix_micros))
    .bind(to_unix_micros(t.created_at))
    .bind(to_unix_micros(t.updated_at))
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    async fn one_card_token(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<StoredCardToken>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM card_tokens WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }
}

#[async_trait]
impl CardTokenStore for Store {
    async fn secure_element_key_set(
        &self,
        key: &StoredSecureElementKey,
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO secure_element_keys (device_id, public_key, registered_at) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id) DO UPDATE SET public_key = excluded.public_key, \
             registered_at = excluded.registered_at",
        )
        .bind(key.device_id.as_str())
        .bind(&key.public_key)
        .bind(to_unix_micros(key.registered_at))
        .execute(tx.conn())
        .await?;
        append_events(tx.conn(), events).await?;
        tx.commit().await
    }

    async fn secure_element_key(
        &self,
        device: &DeviceId,
    ) -> Result<Option<StoredSecureElementKey>, StoreError> {
        let row = sqlx::query(
            "SELECT device_id, public_key, registered_at FROM secure_element_keys WHERE device_id = $1",
        )
        .bind(device.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<_, StoreError> {
            let id: String = r.try_get("device_id")?;
            Ok(StoredSecureElementKey {
                device_id: id.parse().map_err(corrupt)?,
                public_key: r.try_get("public_key")?,
                registered_at: from_unix_micros(r.try_get("registered_at")?),
            })
        })
        .transpose()
    }

    async fn card_token(&self, id: &CardTokenId) -> Result<Option<StoredCardToken>, StoreError> {
        self.one_card_token("id", id.as_str()).await
    }

    async fn card_token_by_binding(
        &self,
        binding_id: &str,
    ) -> Result<Option<StoredCardToken>, StoreError> {
        self.one_card_token("binding_id", binding_id).await
    }

    async fn card_tokens_of(&self, user: &UserId) -> Result<Vec<StoredCardToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM card_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn card_token_change(
        &self,
        t: &StoredCardToken,
        binding: Option<&StoredBinding>,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE card_tokens SET key_box = $3, state = $4, state_by = $5, installed_at = $6, \
             updated_at = $7, version = version + 1 WHERE id = $1 AND version = $2",
        )
        .bind(t.id.as_str())
        .bind(t.version)
        .bind(t.key_box.clone())
        .bind(t.state.stage().as_str())
        .bind(t.state.actor().map(|a| a.as_str()))
        .bind(t.installed_at.map(to_unix_micros))
        .bind(to_unix_micros(t.updated_at))
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        if let Some(b) = binding {
            if !update_binding_at_version(tx.conn(), b).await? {
                return Ok(false);
            }
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }
}
