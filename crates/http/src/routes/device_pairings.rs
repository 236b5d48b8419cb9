//! Flow F3's pairing over HTTP (RFC 8628 style): the first device starts a
//! business binding request and later collects its session, both without a
//! session but with a DPoP proof by its own key; the phone (a trusted
//! phone's session) enters the code, reads the request, approves it with
//! the biometric and its terms, or denies it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use paybridge_api::delegated::{
    AgreementTermsBody, ApprovePairing, DeviceInfoBody, EnterUserCode, PairedDevice, PairingBody,
    PairingQr, PairingStarted, StartPairing, TransferAgreementBody,
};
use paybridge_api::wallet::{CeremonyBody, SessionBody};
use paybridge_api::{rfc3339, ErrorBody};
use paybridge_domain::device_pairing::DeviceInfo;
use paybridge_domain::ids::{BindingId, PairingId};
use paybridge_domain::ErrorCode;
use paybridge_wallet::accounts::SessionUser;
use paybridge_wallet::device_pairing::{PairingStart, PairingTerms, PairingView};
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Authenticated, ClientIp, DeviceProofRequest};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::session_auth::wallet_session;
use crate::routes::devices::{ceremony_body, device_jwk};
use crate::routes::transfer_agreements::{
    agreement_body, device_agreement_body, limits_of, policy_of,
};

fn info_body(i: DeviceInfo) -> DeviceInfoBody {
    DeviceInfoBody {
        device_type: i.device_type,
        model: i.model,
        vendor: i.vendor,
        serial: i.serial,
    }
}

fn pairing_body(v: PairingView) -> PairingBody {
    PairingBody {
        id: v.id,
        state: v.state,
        device: info_body(v.device),
        key_thumbprint: v.key_thumbprint,
        device_id: v.device_id,
        agreement_id: v.agreement_id,
        expires_at: rfc3339(v.expires_at),
    }
}

/// The terms a body names, parsed once.
fn terms_of(b: &AgreementTermsBody) -> ApiResult<PairingTerms> {
    let binding: BindingId = b
        .binding_id
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "no such binding"))?;
    let limits = limits_of(&b.limits)?;
    Ok(PairingTerms {
        binding,
        name: b.name.clone(),
        limits,
        categories: b.categories.clone(),
        policy: policy_of(&b.approval, limits.currency)?,
    })
}

/// A first device starts a business binding request with its device info
/// and public key, proving the key with a DPoP proof (no session). It
/// shows `user_code` (and the QR of `verification_uri_complete`) and asks
/// `…/session` every `interval` seconds until the user answers.
#[utoipa::path(post, path = "/v1/device-pairings", tag = "delegated",
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = StartPairing,
    responses(
        (status = 201, body = PairingStarted),
        (status = 401, description = "dpop_proof_invalid, use_dpop_nonce: a proof by the key the request names", body = ErrorBody),
        (status = 422, description = "invalid_request (device info, key)", body = ErrorBody),
        (status = 429, description = "rate_limited (pairings per address an hour, or open pairings)", body = ErrorBody)))]
async fn start_pairing(
    State(w): State<Wallet>,
    proof: DeviceProofRequest,
    ClientIp(client_ip): ClientIp,
    ApiJson(req): ApiJson<StartPairing>,
) -> ApiResult<(StatusCode, ApiJson<PairingStarted>)> {
    let d = &req.device;
    let key = device_jwk(&req.public_key);
    let start = PairingStart {
        device_type: d.device_type,
        model: &d.model,
        vendor: &d.vendor,
        serial: &d.serial,
        public_key: &key,
    };
    let started = w
        .start_pairing(start, &proof.presented(), client_ip)
        .await?;
    let (svg, png_base64) = paybridge_wallet::qr::render(&started.verification_uri_complete)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot render the pairing QR code");
            ApiError::new(
                ErrorCode::InternalError,
                "internal error; it has been logged",
            )
        })?;
    Ok((
        StatusCode::CREATED,
        ApiJson(PairingStarted {
            id: started.id,
            user_code: started.user_code.display(),
            verification_uri: started.verification_uri,
            verification_uri_complete: started.verification_uri_complete,
            qr: PairingQr { svg, png_base64 },
            interval: started.interval_secs,
            expires_at: rfc3339(started.expires_at),
        }),
    ))
}

/// The first device asks whether it was approved, with a DPoP proof by its
/// key (RFC 8628 §3.4): `409 pairing_pending` until the user answers, `429
/// slow_down` when asking within `interval`, `403 pairing_denied`, `422
/// pairing_expired`; once approved, its session (bound to its key) and its
/// agreement, once.
#[utoipa::path(post, path = "/v1/device-pairings/{pairing_id}/session", tag = "delegated",
    params(("pairing_id" = String, Path), ("Idempotency-Key" = String, Header, description = "One per poll; reuse it to retry a poll")),
    responses(
        (status = 200, body = PairedDevice),
        (status = 401, description = "dpop_proof_invalid, use_dpop_nonce", body = ErrorBody),
        (status = 403, description = "pairing_denied", body = ErrorBody),
        (status = 404, description = "no such pairing (or not this key's)", body = ErrorBody),
        (status = 409, description = "pairing_pending, pairing_closed (collected already)", body = ErrorBody),
        (status = 422, description = "pairing_expired", body = ErrorBody),
        (status = 429, description = "slow_down", body = ErrorBody)))]
async fn collect_pairing_session(
    State(w): State<Wallet>,
    proof: DeviceProofRequest,
    ApiPath(id): ApiPath<PairingId>,
) -> ApiResult<ApiJson<PairedDevice>> {
    let c = w.poll_pairing(&id, &proof.presented()).await?;
    Ok(ApiJson(PairedDevice {
        device_id: c.device_id,
        session: SessionBody {
            session_id: c.session.id,
            token: c.session.token.expose().clone(),
            user_id: c.session.user_id,
            device_id: c.session.device_id.map(|d| d.to_string()),
            expires_at: rfc3339(c.session.expires_at),
        },
        agreement: device_agreement_body(c.agreement),
    }))
}

/// The phone enters or scans the code a device shows: the request is this
/// account's to answer, and the phone shows what device it is. Five wrong
/// codes in a row lock entry for a while (counted per account).
#[utoipa::path(post, path = "/v1/device-pairings/claims", tag = "delegated",
    security(("session" = [])),
    request_body = EnterUserCode,
    responses(
        (status = 200, body = PairingBody), (status = 401, body = ErrorBody),
        (status = 403, description = "security_auth_required, device_proof_required (a trusted phone's session)", body = ErrorBody),
        (status = 409, description = "pairing_closed (another phone entered it)", body = ErrorBody),
        (status = 422, description = "user_code_invalid, pairing_expired", body = ErrorBody),
        (status = 429, description = "password_locked (too many wrong codes)", body = ErrorBody)))]
async fn claim_pairing(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiJson(req): ApiJson<EnterUserCode>,
) -> ApiResult<ApiJson<PairingBody>> {
    Ok(ApiJson(pairing_body(
        w.enter_user_code(&user, &req.user_code).await?,
    )))
}

/// A request this phone claimed.
#[utoipa::path(get, path = "/v1/device-pairings/{pairing_id}", tag = "delegated",
    security(("session" = [])),
    params(("pairing_id" = String, Path)),
    responses(
        (status = 200, body = PairingBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn read_pairing(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<PairingId>,
) -> ApiResult<ApiJson<PairingBody>> {
    Ok(ApiJson(pairing_body(w.pairing(&user, &id).await?)))
}

/// Starts the biometric approval of a claimed request, bound to the
/// device, the card, the name and the terms in the body: the approval
/// must carry exactly the same.
#[utoipa::path(post, path = "/v1/device-pairings/{pairing_id}/approval-challenges", tag = "delegated",
    security(("session" = [])),
    params(("pairing_id" = String, Path)),
    request_body = AgreementTermsBody,
    responses(
        (status = 201, body = CeremonyBody), (status = 401, body = ErrorBody),
        (status = 403, description = "security_auth_required, device_proof_required", body = ErrorBody),
        (status = 404, description = "no such pairing, binding, or credential on this phone", body = ErrorBody),
        (status = 409, description = "pairing_closed, binding_not_pending (the card is not bound)", body = ErrorBody),
        (status = 422, description = "invalid_request (terms), pairing_expired", body = ErrorBody)))]
async fn pairing_approval_challenge(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<PairingId>,
    ApiJson(req): ApiJson<AgreementTermsBody>,
) -> ApiResult<(StatusCode, ApiJson<CeremonyBody>)> {
    let c = w
        .start_pairing_approval(&user, &id, &terms_of(&req)?)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(ceremony_body(c)?)))
}

/// The user approves with the biometric: the device is paired and its
/// transfer payment agreement made (sealed); the device collects its
/// session when it next asks.
#[utoipa::path(post, path = "/v1/device-pairings/{pairing_id}/approval", tag = "delegated",
    security(("session" = [])),
    params(("pairing_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = ApprovePairing,
    responses(
        (status = 201, body = TransferAgreementBody), (status = 401, body = ErrorBody),
        (status = 403, description = "webauthn_rejected (e.g. approved for other terms), security_auth_required", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "pairing_closed, ceremony_used, device_limit_reached", body = ErrorBody),
        (status = 422, description = "invalid_request, pairing_expired, ceremony_expired", body = ErrorBody)))]
async fn approve_pairing(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<PairingId>,
    ApiJson(req): ApiJson<ApprovePairing>,
) -> ApiResult<(StatusCode, ApiJson<TransferAgreementBody>)> {
    let terms = terms_of(&req.terms)?;
    let ceremony = req
        .webauthn
        .ceremony_id
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "no such ceremony"))?;
    let credential = serde_json::from_value(req.webauthn.credential).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "webauthn.credential: not a WebAuthn PublicKeyCredential in JSON form",
        )
    })?;
    let v = w
        .approve_pairing(&user, &id, &terms, &ceremony, &credential)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(agreement_body(v))))
}

/// The user declines to pair the device; it is told when it next asks.
#[utoipa::path(post, path = "/v1/device-pairings/{pairing_id}/denial", tag = "delegated",
    security(("session" = [])),
    params(("pairing_id" = String, Path)),
    responses(
        (status = 200, body = PairingBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "pairing_closed", body = ErrorBody),
        (status = 422, description = "pairing_expired", body = ErrorBody)))]
async fn deny_pairing(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<PairingId>,
) -> ApiResult<ApiJson<PairingBody>> {
    Ok(ApiJson(pairing_body(w.deny_pairing(&user, &id).await?)))
}

pub fn router(wallet: Wallet, idem: Arc<Idempotency>) -> OpenApiRouter {
    // The device's own calls carry its key's proof, not a session.
    let device = OpenApiRouter::new()
        .routes(routes!(start_pairing))
        .routes(routes!(collect_pairing_session))
        .layer(axum::middleware::from_fn_with_state(
            idem.clone(),
            idempotency,
        ))
        .with_state(wallet.clone());
    let approving = OpenApiRouter::new()
        .routes(routes!(approve_pairing))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency));
    let phone = OpenApiRouter::new()
        .routes(routes!(claim_pairing))
        .routes(routes!(read_pairing))
        .routes(routes!(pairing_approval_challenge))
        .routes(routes!(deny_pairing))
        .merge(approving)
        .layer(axum::middleware::from_fn_with_state(
            wallet.clone(),
            wallet_session,
        ))
        .with_state(wallet);
    device.merge(phone)
}
