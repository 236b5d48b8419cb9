//! Devices of the logged-in wallet account, their WebAuthn credentials, and
//! each device's push channel (server-sent events).
//!
//! The push channel is the wallet's [`PushChannel`] served as server-sent
//! events: a device that reconnects with `Last-Event-ID` (or `?after=`)
//! gets what it missed, then what comes. A revoked device's channel
//! delivers `device.revoked` and closes.
//!
//! [`PushChannel`]: paybridge_wallet::push_channel::PushChannel

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use paybridge_api::rfc3339;
use paybridge_api::wallet::{
    AssertionBody, CeremonyAnswer, CeremonyBody, ChannelQuery, CredentialBody, DeviceBody,
    DeviceEvent, DeviceList, DeviceListQuery, DevicePublicKey, RegisterDevice, RenameDevice,
};
use paybridge_api::ErrorBody;
use paybridge_crypto::device_proof::DeviceJwk;
use paybridge_domain::device::{DeviceFilter, DeviceType};
use paybridge_domain::ids::{CeremonyId, DeviceId};
use paybridge_domain::ErrorCode;
use paybridge_wallet::accounts::SessionUser;
use paybridge_wallet::views::{ChannelEvent, DeviceView};
use paybridge_wallet::webauthn::CeremonyStarted;
use paybridge_wallet::Wallet;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::session_auth::wallet_session;

/// What an approval through the generic endpoint is bound to.
pub const DEVICE_CHECK_PURPOSE: &str = "device.check";

#[derive(Debug, Clone)]
pub struct DevicesState {
    pub wallet: Wallet,
    /// Turns true when the server stops: open channels end so it can.
    pub stopping: watch::Receiver<bool>,
}

fn device_body(d: DeviceView) -> DeviceBody {
    DeviceBody {
        id: d.id,
        device_type: d.device_type,
        name: d.name,
        status: d.status.stage(),
        has_credential: d.has_credential,
        key_thumbprint: d.key_thumbprint,
        paired: d.paired,
        created_at: rfc3339(d.created_at),
        last_seen_at: rfc3339(d.last_seen_at),
        revoked_at: d.status.revoked_at().map(rfc3339),
    }
}

pub(crate) fn ceremony_body<T: serde::Serialize>(c: CeremonyStarted<T>) -> ApiResult<CeremonyBody> {
    Ok(CeremonyBody {
        ceremony_id: c.id,
        options: serde_json::to_value(&c.options).map_err(|e| {
            tracing::error!(error = %e, "cannot render WebAuthn options");
            ApiError::new(
                ErrorCode::InternalError,
                "internal error; it has been logged",
            )
        })?,
        expires_at: rfc3339(c.expires_at),
    })
}

fn answer<T: serde::de::DeserializeOwned>(a: CeremonyAnswer) -> ApiResult<T> {
    serde_json::from_value(a.credential).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "credential: not a WebAuthn PublicKeyCredential in JSON form",
        )
    })
}

/// The wire form of a device key, as the crypto layer reads it.
pub(crate) fn device_jwk(k: &DevicePublicKey) -> DeviceJwk {
    DeviceJwk {
        kty: k.kty.clone(),
        crv: k.crv.clone(),
        x: k.x.clone(),
    }
}

/// Registers a device of the account with its public key. From the
/// session of a trusted device it pairs the device (trusted at once);
/// otherwise the device must pass security authentication before it can
/// log in.
#[utoipa::path(post, path = "/v1/devices", tag = "devices",
    security(("session" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = RegisterDevice,
    responses(
        (status = 201, body = DeviceBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "device_limit_reached", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn register_device(
    State(s): State<DevicesState>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiJson(req): ApiJson<RegisterDevice>,
) -> ApiResult<(StatusCode, ApiJson<DeviceBody>)> {
    let t: DeviceType = req.device_type.parse()?;
    let d = s
        .wallet
        .register_device(&user, t, &req.name, &device_jwk(&req.public_key))
        .await?;
    Ok((StatusCode::CREATED, ApiJson(device_body(d))))
}

/// The account's devices, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/devices", tag = "devices",
    security(("session" = [])),
    params(DeviceListQuery),
    responses((status = 200, body = DeviceList), (status = 401, body = ErrorBody),
        (status = 422, description = "invalid_request: limit out of 1 to 100, or an unknown cursor", body = ErrorBody)))]
async fn list_devices(
    State(s): State<DevicesState>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiQuery(q): ApiQuery<DeviceListQuery>,
) -> ApiResult<ApiJson<DeviceList>> {
    let after: Option<DeviceId> = q
        .after
        .as_deref()
        .map(|a| {
            a.parse().map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "after: not a device of this account (use `next` of the page before)",
                )
            })
        })
        .transpose()?;
    let (devices, next) = s
        .wallet
        .devices(
            &user.user_id,
            if q.include_revoked.unwrap_or(false) {
                DeviceFilter::WithRevoked
            } else {
                DeviceFilter::Active
            },
            q.limit,
            after.as_ref(),
        )
        .await?;
    Ok(ApiJson(DeviceList {
        devices: devices.into_iter().map(device_body).collect(),
        next,
    }))
}

/// One device of the account (another account's device is 404).
#[utoipa::path(get, path = "/v1/devices/{device_id}", tag = "devices",
    security(("session" = [])),
    params(("device_id" = String, Path)),
    responses((status = 200, body = DeviceBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_device(
    State(s): State<DevicesState>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<ApiJson<DeviceBody>> {
    let d = s.wallet.device(&user.user_id, &id).await?;
    Ok(ApiJson(device_body(d)))
}

/// Renames an active device.
#[utoipa::path(patch, path = "/v1/devices/{device_id}", tag = "devices",
    security(("session" = [])),
    params(("device_id" = String, Path)),
    request_body = RenameDevice,
    responses(
        (status = 200, body = DeviceBody), (status = 401, body = ErrorBody),
        (status = 403, description = "device_revoked; security_auth_required: not a trusted device's session", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn rename_device(
    State(s): State<DevicesState>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(req): ApiJson<RenameDevice>,
) -> ApiResult<ApiJson<DeviceBody>> {
    let d = s.wallet.rename_device(&user, &id, &req.name).await?;
    Ok(ApiJson(device_body(d)))
}

/// Revokes a device: its credential is deleted, its sessions and push channel end.
#[utoipa::path(delete, path = "/v1/devices/{device_id}", tag = "devices",
    security(("session" = [])),
    params(("device_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, description = "security_auth_required: not a trusted device's session", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn revoke_device(
    State(s): State<DevicesState>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<StatusCode> {
    s.wallet.revoke_device(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts registering the phone's WebAuthn credential (user verification required).
#[utoipa::path(post, path = "/v1/devices/{device_id}/credential/registrations", tag = "devices",
    security(("session" = [])),
    params(("device_id" = String, Path)),
    responses(
        (status = 201, body = CeremonyBody), (status = 401, body = ErrorBody),
        (status = 403, description = "device_revoked; device_proof_required: not this device's own session", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "credential_exists", body = ErrorBody),
        (status = 422, description = "not a phone", body = ErrorBody)))]
async fn start_registration(
    State(s): State<DevicesState>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<(StatusCode, ApiJson<CeremonyBody>)> {
    user.require_device(&id)?;
    let c = s
        .wallet
        .start_credential_registration(&user.user_id, &id)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(ceremony_body(c)?)))
}

/// Finishes the registration with the authenticator's answer.
#[utoipa::path(post, path = "/v1/devices/{device_id}/credential/registrations/{ceremony_id}", tag = "devices",
    security(("session" = [])),
    params(("device_id" = String, Path), ("ceremony_id" = String, Path)),
    request_body = CeremonyAnswer,
    responses(
        (status = 201, body = CredentialBody), (status = 401, body = ErrorBody),
        (status = 403, description = "webauthn_rejected, device_revoked, device_proof_required", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "ceremony_used, credential_exists", body = ErrorBody),
        (status = 422, description = "ceremony_expired, invalid_request", body = ErrorBody)))]
async fn finish_registration(
    State(s): State<DevicesState>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath((id, ceremony)): ApiPath<(DeviceId, CeremonyId)>,
    ApiJson(req): ApiJson<CeremonyAnswer>,
) -> ApiResult<(StatusCode, ApiJson<CredentialBody>)> {
    user.require_device(&id)?;
    let device = id;
    let credential = s
        .wallet
        .finish_credential_registration(&user.user_id, &device, &ceremony, &answer(req)?)
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CredentialBody {
            credential_id: credential,
            device_id: device,
        }),
    ))
}

/// Starts an approval with the phone's credential (here: a check that the
/// phone and its biometric work; payment flows bind approvals to payments).
#[utoipa::path(post, path = "/v1/devices/{device_id}/credential/assertions", tag = "devices",
    security(("session" = [])),
    params(("device_id" = String, Path)),
    responses(
        (status = 201, body = CeremonyBody), (status = 401, body = ErrorBody),
        (status = 403, description = "device_revoked, device_proof_required", body = ErrorBody),
        (status = 404, description = "no such device, or no credential", body = ErrorBody)))]
async fn start_assertion(
    State(s): State<DevicesState>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<(StatusCode, ApiJson<CeremonyBody>)> {
    user.require_device(&id)?;
    let c = s
        .wallet
        .start_assertion(&user.user_id, &id, DEVICE_CHECK_PURPOSE)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(ceremony_body(c)?)))
}

/// Finishes the approval: user verified, counter advanced, single use.
#[utoipa::path(post, path = "/v1/devices/{device_id}/credential/assertions/{ceremony_id}", tag = "devices",
    security(("session" = [])),
    params(("device_id" = String, Path), ("ceremony_id" = String, Path)),
    request_body = CeremonyAnswer,
    responses(
        (status = 200, body = AssertionBody), (status = 401, body = ErrorBody),
        (status = 403, description = "webauthn_rejected, device_revoked, device_proof_required", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "ceremony_used", body = ErrorBody),
        (status = 422, description = "ceremony_expired, invalid_request", body = ErrorBody)))]
async fn finish_assertion(
    State(s): State<DevicesState>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath((id, ceremony)): ApiPath<(DeviceId, CeremonyId)>,
    ApiJson(req): ApiJson<CeremonyAnswer>,
) -> ApiResult<ApiJson<AssertionBody>> {
    user.require_device(&id)?;
    let a = s
        .wallet
        .finish_assertion(
            &user.user_id,
            &id,
            &ceremony,
            DEVICE_CHECK_PURPOSE,
            &answer(req)?,
        )
        .await?;
    Ok(ApiJson(AssertionBody {
        verified: true,
        device_id: a.device_id,
        counter: a.counter,
    }))
}

/// The device's push channel: `text/event-stream`, one event per message
/// (`id` = sequence number, `event` = topic, `data` = [`DeviceEvent`]).
/// Resume with `Last-Event-ID` or `?after=`.
#[utoipa::path(get, path = "/v1/devices/{device_id}/events", tag = "devices",
    security(("session" = [])),
    params(("device_id" = String, Path), ChannelQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The last sequence number received")),
    responses(
        (status = 200, content_type = "text/event-stream", body = DeviceEvent),
        (status = 401, body = ErrorBody), (status = 403, description = "device_revoked, device_proof_required: not this device's own session", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn channel(
    State(s): State<DevicesState>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiQuery(q): ApiQuery<ChannelQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    user.require_device(&id)?;
    let device = id.clone();
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Last-Event-ID must be a sequence number",
                )
            })?,
        None => match q.after {
            Some(n) if n < 0 => {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "after: a sequence number (0 or more)",
                ))
            }
            n => n.unwrap_or(0),
        },
    };
    let channel = s
        .wallet
        .open_push_channel(&user.user_id, &device, after, s.stopping)
        .await?;
    let events = channel.into_stream().map(|e| Ok(sse_event(&e)));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn sse_event(e: &ChannelEvent) -> Event {
    let body = DeviceEvent {
        seq: e.seq,
        id: e.id.clone(),
        topic: e.topic.to_string(),
        occurred_at: rfc3339(e.occurred_at),
        data: e.data.clone(),
    };
    Event::default()
        .id(e.seq.to_string())
        .event(e.topic.as_str())
        .json_data(&body)
        .unwrap_or_else(|_| Event::default().comment("unrenderable event"))
}

pub fn router(state: DevicesState, idem: Arc<Idempotency>) -> OpenApiRouter {
    let wallet = state.wallet.clone();
    let creating = OpenApiRouter::new()
        .routes(routes!(register_device, list_devices))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency));
    OpenApiRouter::new()
        .routes(routes!(get_device, rename_device, revoke_device))
        .routes(routes!(start_registration))
        .routes(routes!(finish_registration))
        .routes(routes!(start_assertion))
        .routes(routes!(finish_assertion))
        .routes(routes!(channel))
        .merge(creating)
        .layer(axum::middleware::from_fn_with_state(wallet, wallet_session))
        .with_state(state)
}
