//! The issuer's **token vault** (flow F5): the only place a card token maps
//! back to its card, and so to the PAN. A token is sealed and found by its
//! blind index; its domain (one wallet, one device of that wallet, the
//! channels allowed) and its state (`domain::card_token`) travel with it.
//! A token changes only at the version it was read at.

use async_trait::async_trait;
use paybridge_domain::card_token::{TokenActor, TokenStage, TokenState};
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{CardId, CardTokenId};
use paybridge_domain::{Timestamp, WireName};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Store;
use crate::error::{corrupt, is_unique_violation, StoreError};
use crate::outbox::append_events;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVaultToken {
    pub id: CardTokenId,
    /// Blind index of the token number: how a token presented is found.
    pub token_index: String,
    pub token_sealed: String,
    pub card_id: CardId,
    /// The domain: the wallet it was issued to, that wallet's device id of
    /// the phone holding it, and the channels (`nfc,online`).
    pub wallet_id: String,
    pub device_id: String,
    pub channels: String,
    /// PAN sequence number, two digits.
    pub psn: String,
    /// `MM/YY`.
    pub expiry: String,
    pub state: TokenState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// A token found by its number, with its card's sealed PAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detokenised {
    pub token: StoredVaultToken,
    pub pan_sealed: String,
}

#[async_trait]
pub trait TokenVaultStore: Send + Sync + std::fmt::Debug {
    /// Stores a new token; `false` if its number is taken (draw another).
    async fn vault_token_insert(
        &self,
        t: &StoredVaultToken,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    async fn vault_token(&self, id: &CardTokenId) -> Result<Option<StoredVaultToken>, StoreError>;
    /// De-tokenisation: the token with this number's blind index, and the
    /// sealed PAN of its card, in one read.
    async fn vault_detokenise(&self, token_index: &str) -> Result<Option<Detokenised>, StoreError>;
    /// The tokens of a card.
    async fn vault_tokens_of_card(
        &self,
        card: &CardId,
    ) -> Result<Vec<StoredVaultToken>, StoreError>;
    /// Saves `t`'s state (read at its version); `false` if it moved.
    async fn vault_token_update(
        &self,
        t: &StoredVaultToken,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    /// Takes `atc` as the token's highest accepted transaction counter if
    /// it is above the one held; `false` when it is not (a replayed or an
    /// older cryptogram) or there is no such token. One conditional write,
    /// so of racing taps with one ATC exactly one is accepted.
    async fn vault_token_accept_atc(&self, id: &CardTokenId, atc: u16) -> Result<bool, StoreError>;
    /// The highest transaction counter accepted for the token, if any.
    async fn vault_token_highest_atc(&self, id: &CardTokenId) -> Result<Option<u16>, StoreError>;
}

const COLUMNS: &str =
    "id, token_index, token_sealed, card_id, wallet_id, device_id, channels, psn, \
     expiry, state, state_by, created_at, updated_at, version";

/// De-tokenisation's one read (the hot path of a tap), written once.
static DETOKENISE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let columns = COLUMNS
        .split(", ")
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {columns}, c.pan_sealed FROM token_vault t \
         JOIN bank_cards c ON c.id = t.card_id WHERE t.token_index = $1"
    )
});

fn from_row(r: &AnyRow) -> Result<StoredVaultToken, StoreError> {
    let text = |c: &str| -> Result<String, StoreError> { Ok(r.try_get::<String, _>(c)?) };
    let stage = text("state")?;
    let by = r
        .try_get::<Option<String>, _>("state_by")?
        .map(|b| TokenActor::from_wire_name(&b).ok_or_else(|| corrupt(format!("token actor {b}"))))
        .transpose()?;
    let state = TokenStage::from_wire_name(&stage)
        .and_then(|s| TokenState::from_parts(s, by))
        .ok_or_else(|| corrupt(format!("token state {stage} by {by:?}")))?;
    Ok(StoredVaultToken {
        id: text("id")?.parse().map_err(corrupt)?,
        token_index: text("token_index")?,
        token_sealed: text("token_sealed")?,
        card_id: text("card_id")?.parse().map_err(corrupt)?,
        wallet_id: text("wallet_id")?,
        device_id: text("device_id")?,
        channels: text("channels")?,
        psn: text("psn")?,
        expiry: text("expiry")?,
        state,
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

/// Inserts a token in the caller's transaction; `false` if its number (or
/// id) is taken.
pub(crate) async fn insert_vault_token(
    conn: &mut sqlx::AnyConnection,
    t: &StoredVaultToken,
) -> Result<bool, StoreError> {
    let n = sqlx::query(&format!(
        "INSERT INTO token_vault ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0) ON CONFLICT DO NOTHING"
    ))
    .bind(t.id.as_str())
    .bind(&t.token_index)
    .bind(&t.token_sealed)
    .bind(t.card_id.as_str())
    .bind(&t.wallet_id)
    .bind(&t.device_id)
    .bind(&t.channels)
    .bind(&t.psn)
    .bind(&t.expiry)
    .bind(t.state.stage().as_str())
    .bind(t.state.actor().map(|a| a.as_str()))
    .bind(to_unix_micros(t.created_at))
    .bind(to_unix_micros(t.updated_at))
    .execute(conn)
    .await;
    match n {
        Err(e) if is_unique_violation(&e) => Ok(false),
        other => Ok(other?.rows_affected() == 1),
    }
}

#[async_trait]
impl TokenVaultStore for Store {
    async fn vault_token_insert(
        &self,
        t: &StoredVaultToken,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !insert_vault_token(tx.conn(), t).await? {
            return Ok(false);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn vault_token(&self, id: &CardTokenId) -> Result<Option<StoredVaultToken>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM token_vault WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn vault_detokenise(&self, token_index: &str) -> Result<Option<Detokenised>, StoreError> {
        let row = sqlx::query(DETOKENISE_SQL.as_str())
            .bind(token_index)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| -> Result<_, StoreError> {
            Ok(Detokenised {
                token: from_row(&r)?,
                pan_sealed: r.try_get("pan_sealed")?,
            })
        })
        .transpose()
    }

    async fn vault_tokens_of_card(
        &self,
        card: &CardId,
    ) -> Result<Vec<StoredVaultToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM token_vault WHERE card_id = $1 ORDER BY created_at, id"
        ))
        .bind(card.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn vault_token_update(
        &self,
        t: &StoredVaultToken,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE token_vault SET state = $3, state_by = $4, updated_at = $5, \
             version = version + 1 WHERE id = $1 AND version = $2",
        )
        .bind(t.id.as_str())
        .bind(t.version)
        .bind(t.state.stage().as_str())
        .bind(t.state.actor().map(|a| a.as_str()))
        .bind(to_unix_micros(t.updated_at))
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn vault_token_accept_atc(&self, id: &CardTokenId, atc: u16) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE token_vault SET highest_atc = $2 \
             WHERE id = $1 AND (highest_atc IS NULL OR highest_atc < $2)",
        )
        .bind(id.as_str())
        .bind(i64::from(atc))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn vault_token_highest_atc(&self, id: &CardTokenId) -> Result<Option<u16>, StoreError> {
        let row = sqlx::query("SELECT highest_atc FROM token_vault WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let held: Option<i64> = row.try_get("highest_atc")?;
        Ok(held.and_then(|n| u16::try_from(n).ok()))
    }
}
