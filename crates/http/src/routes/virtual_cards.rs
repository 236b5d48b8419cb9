//! Flow F5 in the wallet app, over HTTP: registering the phone's secure
//! element key, the card products, a virtual card application on both
//! paths (the OTP, or the ID card photos and the video face check's
//! frames), resuming one whose call to the bank was lost, and the card
//! tokens: what the phone writes into its secure element, and suspending,
//! resuming and deleting them.
//!
//! Photos and frames are the only bodies above the API's 64 KiB limit:
//! their two routes take up to [`MAX_UPLOAD_BODY_BYTES`], and at most
//! [`UPLOAD_SLOTS`] of them are read at once, so uploads cannot take the
//! server's memory.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use paybridge_api::virtual_card::{
    CardApplicationBody, CardApplicationOtp, CardApplicationPhotos, CardApplicationVideo,
    CardProductList, CardProductQuery, CardTokenBody, CardTokenList, RegisterSecureElementKey,
    SecureElementKeyBody, StartCardApplication, TokenProvisioning,
};
use paybridge_api::ErrorBody;
use paybridge_domain::ids::{CardApplicationId, CardTokenId};
use paybridge_wallet::accounts::SessionUser;
use paybridge_wallet::otp::SendContext;
use paybridge_wallet::virtual_cards::TokenAction;
use paybridge_wallet::Wallet;
use tokio::sync::Semaphore;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, ClientIp};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::session_auth::wallet_session;

/// The largest photo or frames upload: two 2 MiB photos, or twelve 512 KiB
/// frames, in base64 (4/3), with room for the JSON around them.
pub const MAX_UPLOAD_BODY_BYTES: usize = 9 * 1024 * 1024;
/// Uploads read at once, all clients together.
pub const UPLOAD_SLOTS: usize = 8;

/// Registers this phone's secure element key (X25519), signed by the
/// phone's device key: the bank seals token keys to it.
#[utoipa::path(post, path = "/v1/secure-element-key", tag = "virtual_card",
    security(("session" = [])),
    request_body = RegisterSecureElementKey,
    responses(
        (status = 200, body = SecureElementKeyBody), (status = 401, body = ErrorBody),
        (status = 401, description = "device_signature_invalid", body = ErrorBody),
        (status = 403, description = "device_proof_required", body = ErrorBody),
        (status = 422, description = "message_mismatch (another device, not fresh), invalid_request", body = ErrorBody)))]
async fn register_secure_element_key(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiJson(req): ApiJson<RegisterSecureElementKey>,
) -> ApiResult<ApiJson<SecureElementKeyBody>> {
    Ok(ApiJson(
        w.register_secure_element_key(&user, &req.registration)
            .await?,
    ))
}

/// A bank's virtual card products.
#[utoipa::path(get, path = "/v1/card-products", tag = "virtual_card",
    security(("session" = [])),
    params(CardProductQuery),
    responses(
        (status = 200, body = CardProductList), (status = 401, body = ErrorBody),
        (status = 404, description = "partner_unknown, not_found", body = ErrorBody),
        (status = 422, description = "invalid_request: the query names `issuer` only", body = ErrorBody),
        (status = 502, description = "partner_unreachable", body = ErrorBody)))]
async fn card_products(
    State(w): State<Wallet>,
    Authenticated(_user): Authenticated<SessionUser>,
    ApiQuery(q): ApiQuery<CardProductQuery>,
) -> ApiResult<ApiJson<CardProductList>> {
    Ok(ApiJson(w.card_products(&q.issuer).await?))
}

/// "Apply for a virtual card": the payment password, the bank and product,
/// and the card application (name and ID number, the account's own). The
/// answer says the path: `otp_sent` (existing cardholder) or
/// `photos_requested` (first card).
#[utoipa::path(post, path = "/v1/card-applications", tag = "virtual_card",
    security(("session" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = StartCardApplication,
    responses(
        (status = 201, body = CardApplicationBody), (status = 401, body = ErrorBody),
        (status = 403, description = "payment_password_invalid, security_auth_required, device_proof_required, identity_blocked", body = ErrorBody),
        (status = 409, description = "application_pending, secure_element_missing, card_limit_reached", body = ErrorBody),
        (status = 422, description = "identity_mismatch, invalid_request", body = ErrorBody),
        (status = 502, description = "partner_unreachable: resume it later", body = ErrorBody)))]
async fn start_card_application(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<StartCardApplication>,
) -> ApiResult<(StatusCode, ApiJson<CardApplicationBody>)> {
    let send = SendContext::new(Some(&user.user_id), ip);
    let body = w.start_card_application(&user, &req, &send).await?;
    Ok((StatusCode::CREATED, ApiJson(body)))
}

/// One of the account's applications.
#[utoipa::path(get, path = "/v1/card-applications/{application_id}", tag = "virtual_card",
    security(("session" = [])),
    params(("application_id" = String, Path)),
    responses((status = 200, body = CardApplicationBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn read_card_application(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<CardApplicationId>,
) -> ApiResult<ApiJson<CardApplicationBody>> {
    Ok(ApiJson(w.card_application(&user, &id).await?))
}

/// Existing cardholder: the OTP the reserved phone received. Right, the
/// application goes to the bank again and the card is issued.
#[utoipa::path(post, path = "/v1/card-applications/{application_id}/otp", tag = "virtual_card",
    security(("session" = [])),
    params(("application_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = CardApplicationOtp,
    responses(
        (status = 200, body = CardApplicationBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "application_step", body = ErrorBody),
        (status = 422, description = "otp_invalid, otp_expired, application_expired", body = ErrorBody),
        (status = 502, description = "partner_unreachable: resume it", body = ErrorBody)))]
async fn card_application_otp(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<CardApplicationId>,
    ApiJson(req): ApiJson<CardApplicationOtp>,
) -> ApiResult<ApiJson<CardApplicationBody>> {
    Ok(ApiJson(
        w.submit_card_application_otp(&user, &id, &req.code).await?,
    ))
}

/// First-card applicant: the ID card's front and back (JPEG or PNG, told
/// by content, at most 2 MiB each, base64). The video face check's
/// instruction policy comes back.
#[utoipa::path(post, path = "/v1/card-applications/{application_id}/photos", tag = "virtual_card",
    security(("session" = [])),
    params(("application_id" = String, Path)),
    request_body = CardApplicationPhotos,
    responses(
        (status = 200, body = CardApplicationBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "application_step", body = ErrorBody),
        (status = 413, description = "image_too_large", body = ErrorBody),
        (status = 422, description = "image_invalid, application_expired", body = ErrorBody)))]
async fn card_application_photos(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<CardApplicationId>,
    ApiJson(req): ApiJson<CardApplicationPhotos>,
) -> ApiResult<ApiJson<CardApplicationBody>> {
    Ok(ApiJson(
        w.submit_card_application_photos(&user, &id, &req.front, &req.back)
            .await?,
    ))
}

/// First-card applicant: the frames captured during the video face check
/// (3 to 12, JPEG or PNG, at most 512 KiB each, base64). The identity
/// authority scores them; the bank looks the score up and issues.
#[utoipa::path(post, path = "/v1/card-applications/{application_id}/video", tag = "virtual_card",
    security(("session" = [])),
    params(("application_id" = String, Path)),
    request_body = CardApplicationVideo,
    responses(
        (status = 200, body = CardApplicationBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "application_step, card_limit_reached", body = ErrorBody),
        (status = 413, description = "image_too_large", body = ErrorBody),
        (status = 422, description = "video_frames_invalid, image_invalid, score_too_low, identity_mismatch, application_expired", body = ErrorBody),
        (status = 502, description = "partner_unreachable: resume it", body = ErrorBody)))]
async fn card_application_video(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<CardApplicationId>,
    ApiJson(req): ApiJson<CardApplicationVideo>,
) -> ApiResult<ApiJson<CardApplicationBody>> {
    Ok(ApiJson(
        w.submit_card_application_video(&user, &id, &req.frames)
            .await?,
    ))
}

/// Sends the application's pending call to the bank again (its answer was
/// lost, or the bank was unreachable; the bank is idempotent on it), or,
/// waiting for the OTP, sends a new code to the reserved phone.
#[utoipa::path(post, path = "/v1/card-applications/{application_id}/resume", tag = "virtual_card",
    security(("session" = [])),
    params(("application_id" = String, Path)),
    responses(
        (status = 200, body = CardApplicationBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "application_step: nothing to resume", body = ErrorBody),
        (status = 429, description = "otp_resend_too_soon, or an SMS budget spent", body = ErrorBody),
        (status = 422, description = "application_expired", body = ErrorBody),
        (status = 502, description = "partner_unreachable", body = ErrorBody)))]
async fn resume_card_application(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ClientIp(ip): ClientIp,
    ApiPath(id): ApiPath<CardApplicationId>,
) -> ApiResult<ApiJson<CardApplicationBody>> {
    let send = SendContext::new(Some(&user.user_id), ip);
    Ok(ApiJson(w.resume_card_application(&user, &id, &send).await?))
}

/// The account's card tokens, newest first.
#[utoipa::path(get, path = "/v1/card-tokens", tag = "virtual_card",
    security(("session" = [])),
    responses((status = 200, body = CardTokenList), (status = 401, body = ErrorBody)))]
async fn list_card_tokens(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
) -> ApiResult<ApiJson<CardTokenList>> {
    Ok(ApiJson(CardTokenList {
        tokens: w.card_tokens(&user).await?,
    }))
}

#[utoipa::path(get, path = "/v1/card-tokens/{token_id}", tag = "virtual_card",
    security(("session" = [])),
    params(("token_id" = String, Path)),
    responses((status = 200, body = CardTokenBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn read_card_token(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<CardTokenId>,
) -> ApiResult<ApiJson<CardTokenBody>> {
    Ok(ApiJson(w.card_token(&user, &id).await?))
}

/// What the phone writes into its secure element: the card code and the
/// bank's box, which only that element can open. Only on the phone the
/// token was issued to, until it has installed it.
#[utoipa::path(get, path = "/v1/card-tokens/{token_id}/provisioning", tag = "virtual_card",
    security(("session" = [])),
    params(("token_id" = String, Path)),
    responses(
        (status = 200, body = TokenProvisioning), (status = 401, body = ErrorBody),
        (status = 403, description = "device_proof_required", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "application_step: installed already", body = ErrorBody)))]
async fn token_provisioning(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<CardTokenId>,
) -> ApiResult<ApiJson<TokenProvisioning>> {
    Ok(ApiJson(w.token_provisioning(&user, &id).await?))
}

/// The phone wrote the token into its secure element: the wallet drops the
/// box and the application is provisioned.
#[utoipa::path(post, path = "/v1/card-tokens/{token_id}/installed", tag = "virtual_card",
    security(("session" = [])),
    params(("token_id" = String, Path)),
    responses(
        (status = 200, body = CardTokenBody), (status = 401, body = ErrorBody),
        (status = 403, description = "device_proof_required", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn token_installed(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<CardTokenId>,
) -> ApiResult<ApiJson<CardTokenBody>> {
    Ok(ApiJson(w.token_installed(&user, &id).await?))
}

async fn change_token(
    w: &Wallet,
    user: &SessionUser,
    id: &CardTokenId,
    action: TokenAction,
) -> ApiResult<ApiJson<CardTokenBody>> {
    Ok(ApiJson(w.change_card_token(user, id, action).await?))
}

/// The cardholder suspends a token: it pays nowhere until resumed.
#[utoipa::path(post, path = "/v1/card-tokens/{token_id}/suspend", tag = "virtual_card",
    security(("session" = [])),
    params(("token_id" = String, Path)),
    responses(
        (status = 200, body = CardTokenBody), (status = 401, body = ErrorBody),
        (status = 403, description = "security_auth_required", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "token_inactive (not active)", body = ErrorBody)))]
async fn suspend_card_token(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<CardTokenId>,
) -> ApiResult<ApiJson<CardTokenBody>> {
    change_token(&w, &user, &id, TokenAction::Suspend).await
}

/// The cardholder resumes a token they suspended (the bank's hold is the
/// bank's to lift).
#[utoipa::path(post, path = "/v1/card-tokens/{token_id}/resume", tag = "virtual_card",
    security(("session" = [])),
    params(("token_id" = String, Path)),
    responses(
        (status = 200, body = CardTokenBody), (status = 401, body = ErrorBody),
        (status = 403, description = "security_auth_required", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "token_inactive (not suspended, or suspended by the bank)", body = ErrorBody)))]
async fn resume_card_token(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<CardTokenId>,
) -> ApiResult<ApiJson<CardTokenBody>> {
    change_token(&w, &user, &id, TokenAction::Resume).await
}

/// The cardholder deletes a token: deactivated for good, and its quick
/// binding unbound.
#[utoipa::path(post, path = "/v1/card-tokens/{token_id}/delete", tag = "virtual_card",
    security(("session" = [])),
    params(("token_id" = String, Path)),
    responses(
        (status = 200, body = CardTokenBody), (status = 401, body = ErrorBody),
        (status = 403, description = "security_auth_required", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "token_inactive (deleted already)", body = ErrorBody)))]
async fn delete_card_token(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<CardTokenId>,
) -> ApiResult<ApiJson<CardTokenBody>> {
    change_token(&w, &user, &id, TokenAction::Delete).await
}

/// Waits for one of the upload slots before the body is read.
async fn upload_slot(State(slots): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    let _permit = slots
        .acquire()
        .await
        .expect("the semaphore is never closed");
    next.run(req).await
}

pub fn router(wallet: Wallet, idem: Arc<Idempotency>) -> OpenApiRouter {
    let starting = OpenApiRouter::new()
        .routes(routes!(start_card_application))
        .routes(routes!(card_application_otp))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency));
    // Uploads move the application at most once (a retry finds it moved):
    // no Idempotency-Key, which would copy megabytes into the table.
    let uploads = OpenApiRouter::new()
        .routes(routes!(card_application_photos))
        .routes(routes!(card_application_video))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(Semaphore::new(UPLOAD_SLOTS)),
            upload_slot,
        ));
    OpenApiRouter::new()
        .routes(routes!(register_secure_element_key))
        .routes(routes!(card_products))
        .routes(routes!(read_card_application))
        .routes(routes!(resume_card_application))
        .routes(routes!(list_card_tokens))
        .routes(routes!(read_card_token))
        .routes(routes!(token_provisioning))
        .routes(routes!(token_installed))
        .routes(routes!(suspend_card_token))
        .routes(routes!(resume_card_token))
        .routes(routes!(delete_card_token))
        .merge(starting)
        .merge(uploads)
        .layer(axum::middleware::from_fn_with_state(
            wallet.clone(),
            wallet_session,
        ))
        .with_state(wallet)
}
