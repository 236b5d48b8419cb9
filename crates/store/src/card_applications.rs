//! Virtual card applications of flow F5, the wallet's side
//! (`domain::card_application`), with the ID card photos and video frames
//! of first-card applicants. The applicant, the reserved phone, the
//! identity authority's reference number and every image arrive sealed by
//! the service. An application changes only at the version it was read at;
//! the step that issues it writes its quick binding and its card token in
//! the same transaction.

use async_trait::async_trait;
use paybridge_domain::card_application::{
    ApplicantKind, ApplicationStage, ApplicationState, ApplicationStatus,
};
use paybridge_domain::clock::{from_unix_micros, to_unix_micros};
use paybridge_domain::event::NewEvent;
use paybridge_domain::ids::{CardApplicationId, DeviceId, UserId};
use paybridge_domain::{ErrorCode, Timestamp, WireName};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::bindings::{insert_binding, StoredBinding};
use crate::card_tokens::{insert_card_token, StoredCardToken};
use crate::db::Store;
use crate::error::{corrupt, is_unique_violation, StoreError};
use crate::outbox::append_events;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCardApplication {
    pub id: CardApplicationId,
    pub user_id: UserId,
    /// The phone it was made on (a trusted, device-bound session): the
    /// card's token goes to this phone's secure element.
    pub device_id: DeviceId,
    pub issuer_id: String,
    pub product: String,
    /// The card application (name and ID number), sealed.
    pub applicant_sealed: String,
    /// Known once the issuer answered.
    pub applicant_kind: Option<ApplicantKind>,
    pub status: ApplicationStatus,
    /// Existing cardholder: the OTP to the reserved phone, and the phone.
    pub otp_id: Option<String>,
    pub phone_sealed: Option<String>,
    pub phone_masked: Option<String>,
    /// First-card applicant: the video face check's instruction policy.
    pub video_policy: Option<String>,
    /// The identity authority's reference number, sealed, and its score.
    pub reference_sealed: Option<String>,
    pub match_score: Option<i64>,
    /// The quick binding's id, chosen at the start (the issuer's agreement
    /// names it before the binding exists).
    pub binding_id: String,
    pub card_code: Option<String>,
    pub token_id: Option<String>,
    /// When the photos and frames are deleted (set when it is decided).
    pub media_purge_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// An ID card photo or a video frame, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    pub application_id: CardApplicationId,
    /// `id_front`, `id_back`, `frame_00` … `frame_11`.
    pub slot: String,
    /// `image/jpeg` or `image/png`, as told by the content.
    pub content_type: String,
    pub size_bytes: i64,
    pub content_sealed: String,
    pub created_at: Timestamp,
}

/// What starting an application found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationStart {
    Started,
    /// The account has a pending application already (one at a time).
    Pending,
}

/// What issuing an application writes with it.
#[derive(Debug, Clone, Copy)]
pub struct Issuance<'a> {
    pub binding: &'a StoredBinding,
    pub token: &'a StoredCardToken,
}

#[async_trait]
pub trait CardApplicationStore: Send + Sync + std::fmt::Debug {
    /// Inserts a new application; [`ApplicationStart::Pending`] if the
    /// account has one under way.
    async fn card_application_start(
        &self,
        a: &StoredCardApplication,
        events: &[NewEvent],
    ) -> Result<ApplicationStart, StoreError>;
    async fn card_application(
        &self,
        id: &CardApplicationId,
    ) -> Result<Option<StoredCardApplication>, StoreError>;
    /// The account's application under way, if any (it may be past its
    /// expiry and not yet swept).
    async fn card_application_pending_of(
        &self,
        user: &UserId,
    ) -> Result<Option<StoredCardApplication>, StoreError>;
    /// Saves `a` (read at its version) with the media it brings; `false`
    /// if the application moved.
    async fn card_application_update(
        &self,
        a: &StoredCardApplication,
        media: &[StoredMedia],
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    /// Saves `a` as issued with its quick binding and card token, all or
    /// nothing; `false` if the application moved or the binding exists.
    async fn card_application_issue(
        &self,
        a: &StoredCardApplication,
        issued: Issuance<'_>,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;
    /// An application's photos and frames, by slot.
    async fn card_application_media(
        &self,
        id: &CardApplicationId,
    ) -> Result<Vec<StoredMedia>, StoreError>;
    /// Deletes the media of applications whose purge time has come;
    /// returns how many images went.
    async fn card_application_media_purge(&self, now: Timestamp) -> Result<u64, StoreError>;
    /// At most `limit` applications still pending past their expiry.
    async fn card_applications_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<StoredCardApplication>, StoreError>;
}

const COLUMNS: &str = "id, user_id, device_id, issuer_id, product, applicant_sealed, applicant_kind, \
     state, reason, otp_id, phone_sealed, phone_masked, video_policy, reference_sealed, match_score, \
     binding_id, card_code, token_id, media_purge_at, expires_at, created_at, updated_at, version";

const PENDING: &str = "('forwarded', 'otp_sent', 'resubmitted', 'photos_requested', \
     'video_requested', 'identity_checked')";

fn from_row(r: &AnyRow) -> Result<StoredCardApplication, StoreError> {
    let text = |c: &str| -> Result<String, StoreError> { Ok(r.try_get::<String, _>(c)?) };
    let opt =
        |c: &str| -> Result<Option<String>, StoreError> { Ok(r.try_get::<Option<String>, _>(c)?) };
    let stage = text("state")?;
    let reason = opt("reason")?
        .map(|f| ErrorCode::from_wire(&f).ok_or_else(|| corrupt(format!("reason {f}"))))
        .transpose()?;
    let state = ApplicationStage::from_wire_name(&stage)
        .and_then(|s| ApplicationState::from_parts(s, reason))
        .ok_or_else(|| corrupt(format!("card application state {stage} with its reason")))?;
    let kind = opt("applicant_kind")?
        .map(|k| ApplicantKind::from_wire_name(&k).ok_or_else(|| corrupt(format!("applicant {k}"))))
        .transpose()?;
    Ok(StoredCardApplication {
        id: text("id")?.parse().map_err(corrupt)?,
        user_id: text("user_id")?.parse().map_err(corrupt)?,
        device_id: text("device_id")?.parse().map_err(corrupt)?,
        issuer_id: text("issuer_id")?,
        product: text("product")?,
        applicant_sealed: text("applicant_sealed")?,
        applicant_kind: kind,
        status: ApplicationStatus {
            state,
            expires_at: from_unix_micros(r.try_get("expires_at")?),
        },
        otp_id: opt("otp_id")?,
        phone_sealed: opt("phone_sealed")?,
        phone_masked: opt("phone_masked")?,
        video_policy: opt("video_policy")?,
        reference_sealed: opt("reference_sealed")?,
        match_score: r.try_get("match_score")?,
        binding_id: text("binding_id")?,
        card_code: opt("card_code")?,
        token_id: opt("token_id")?,
        media_purge_at: r
            .try_get::<Option<i64>, _>("media_purge_at")?
            .map(from_unix_micros),
        created_at: from_unix_micros(r.try_get("created_at")?),
        updated_at: from_unix_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

const MEDIA_COLUMNS: &str =
    "application_id, slot, content_type, size_bytes, content_sealed, created_at";

fn media_from_row(r: &AnyRow) -> Result<StoredMedia, StoreError> {
    let id: String = r.try_get("application_id")?;
    Ok(StoredMedia {
        application_id: id.parse().map_err(corrupt)?,
        slot: r.try_get("slot")?,
        content_type: r.try_get("content_type")?,
        size_bytes: r.try_get("size_bytes")?,
        content_sealed: r.try_get("content_sealed")?,
        created_at: from_unix_micros(r.try_get("created_at")?),
    })
}

/// Saves the application's moving parts if it is still at `a.version`.
async fn update_at_version(
    conn: &mut sqlx::AnyConnection,
    a: &StoredCardApplication,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE card_applications SET applicant_kind = $3, state = $4, reason = $5, otp_id = $6, \
         phone_sealed = $7, phone_masked = $8, video_policy = $9, reference_sealed = $10, \
         match_score = $11, card_code = $12, token_id = $13, media_purge_at = $14, \
         updated_at = $15, version = version + 1 WHERE id = $1 AND version = $2",
    )
    .bind(a.id.as_str())
    .bind(a.version)
    .bind(a.applicant_kind.map(|k| k.as_str()))
    .bind(a.status.state.stage().as_str())
    .bind(a.status.state.rejection().map(|c| c.as_str()))
    .bind(a.otp_id.clone())
    .bind(a.phone_sealed.clone())
    .bind(a.phone_masked.clone())
    .bind(a.video_policy.clone())
    .bind(a.reference_sealed.clone())
    .bind(a.match_score)
    .bind(a.card_code.clone())
    .bind(a.token_id.clone())
    .bind(a.media_purge_at.map(to_unix_micros))
    .bind(to_unix_micros(a.updated_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

async fn insert_media(conn: &mut sqlx::AnyConnection, m: &StoredMedia) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO card_application_media ({MEDIA_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(m.application_id.as_str())
    .bind(&m.slot)
    .bind(&m.content_type)
    .bind(m.size_bytes)
    .bind(&m.content_sealed)
    .bind(to_unix_micros(m.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl CardApplicationStore for Store {
    async fn card_application_start(
        &self,
        a: &StoredCardApplication,
        events: &[NewEvent],
    ) -> Result<ApplicationStart, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO card_applications ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, 0)"
        ))
        .bind(a.id.as_str())
        .bind(a.user_id.as_str())
        .bind(a.device_id.as_str())
        .bind(&a.issuer_id)
        .bind(&a.product)
        .bind(&a.applicant_sealed)
        .bind(a.applicant_kind.map(|k| k.as_str()))
        .bind(a.status.state.stage().as_str())
        .bind(a.status.state.rejection().map(|c| c.as_str()))
        .bind(a.otp_id.clone())
        .bind(a.phone_sealed.clone())
        .bind(a.phone_masked.clone())
        .bind(a.video_policy.clone())
        .bind(a.reference_sealed.clone())
        .bind(a.match_score)
        .bind(&a.binding_id)
        .bind(a.card_code.clone())
        .bind(a.token_id.clone())
        .bind(a.media_purge_at.map(to_unix_micros))
        .bind(to_unix_micros(a.status.expires_at))
        .bind(to_unix_micros(a.created_at))
        .bind(to_unix_micros(a.updated_at))
        .execute(tx.conn())
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Ok(ApplicationStart::Pending),
            other => other?,
        };
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(ApplicationStart::Started)
    }

    async fn card_application(
        &self,
        id: &CardApplicationId,
    ) -> Result<Option<StoredCardApplication>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM card_applications WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn card_application_pending_of(
        &self,
        user: &UserId,
    ) -> Result<Option<StoredCardApplication>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM card_applications WHERE user_id = $1 AND state IN {PENDING}"
        ))
        .bind(user.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn card_application_update(
        &self,
        a: &StoredCardApplication,
        media: &[StoredMedia],
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !update_at_version(tx.conn(), a).await? {
            return Ok(false);
        }
        for m in media {
            insert_media(tx.conn(), m).await?;
        }
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn card_application_issue(
        &self,
        a: &StoredCardApplication,
        issued: Issuance<'_>,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !update_at_version(tx.conn(), a).await? {
            return Ok(false);
        }
        match insert_binding(tx.conn(), issued.binding).await {
            Err(StoreError::Database(e)) if is_unique_violation(&e) => return Ok(false),
            other => other?,
        }
        insert_card_token(tx.conn(), issued.token).await?;
        append_events(tx.conn(), events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn card_application_media(
        &self,
        id: &CardApplicationId,
    ) -> Result<Vec<StoredMedia>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MEDIA_COLUMNS} FROM card_application_media WHERE application_id = $1 ORDER BY slot"
        ))
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(media_from_row).collect()
    }

    async fn card_application_media_purge(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "DELETE FROM card_application_media WHERE application_id IN \
             (SELECT id FROM card_applications WHERE media_purge_at IS NOT NULL AND media_purge_at <= $1)",
        )
        .bind(to_unix_micros(now))
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn card_applications_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<StoredCardApplication>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM card_applications WHERE state IN {PENDING} AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2"
        ))
        .bind(to_unix_micros(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }
}
