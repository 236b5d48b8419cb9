//! The wallet app's side of flow F1: claim a binding (scanned QR code or
//! pushed message), confirm it (an OTP to the reserved phone), complete it
//! with the code; list and unbind.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use paybridge_api::wallet::{
    BindingBody, BindingConfirmation, BindingList, ClaimAddress, CompleteBinding, PageQuery,
};
use paybridge_api::{rfc3339, ErrorBody};
use paybridge_domain::ids::BindingId;
use paybridge_domain::ErrorCode;
use paybridge_wallet::accounts::SessionUser;
use paybridge_wallet::bindings::BindingView;
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, ClientIp};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::session_auth::wallet_session;

fn body(b: BindingView) -> BindingBody {
    BindingBody {
        id: b.id,
        issuer: b.issuer_id,
        state: b.state.stage(),
        failure: b.state.failure(),
        bank_name: b.bank_name,
        card_type: b.card_type,
        last4: b.last4,
        masked_card: b.masked_card,
        holder_name_masked: b.holder_name_masked,
        phone_masked: b.phone_masked,
        expires_at: rfc3339(b.expires_at),
        created_at: rfc3339(b.created_at),
    }
}

/// Claims a scanned binding address: the first claimant wins.
#[utoipa::path(post, path = "/v1/bindings/claims", tag = "bindings",
    security(("session" = [])),
    request_body = ClaimAddress,
    responses(
        (status = 200, body = BindingBody), (status = 401, body = ErrorBody),
        (status = 404, description = "unknown address", body = ErrorBody),
        (status = 409, description = "binding_already_claimed", body = ErrorBody),
        (status = 422, description = "binding_expired, identity_mismatch", body = ErrorBody)))]
async fn claim_address(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiJson(req): ApiJson<ClaimAddress>,
) -> ApiResult<ApiJson<BindingBody>> {
    Ok(ApiJson(body(
        w.claim_binding_address(&user.user_id, &req.address).await?,
    )))
}

/// Claims a binding pushed to this account (push path).
#[utoipa::path(post, path = "/v1/bindings/{binding_id}/claim", tag = "bindings",
    security(("session" = [])),
    params(("binding_id" = String, Path)),
    responses(
        (status = 200, body = BindingBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn claim_offered(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<BindingId>,
) -> ApiResult<ApiJson<BindingBody>> {
    Ok(ApiJson(body(
        w.claim_offered_binding(&user.user_id, &id).await?,
    )))
}

/// Confirms the card shown: an OTP goes to the phone reserved at the bank
/// (again, after the resend wait, when asked again).
#[utoipa::path(post, path = "/v1/bindings/{binding_id}/confirmation", tag = "bindings",
    security(("session" = [])),
    params(("binding_id" = String, Path)),
    responses(
        (status = 200, body = BindingConfirmation), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "otp_resend_too_soon, otp_rate_limited", body = ErrorBody)))]
async fn confirm(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ClientIp(client_ip): ClientIp,
    ApiPath(id): ApiPath<BindingId>,
) -> ApiResult<ApiJson<BindingConfirmation>> {
    let (binding, otp) = w.confirm_binding(&user.user_id, &id, client_ip).await?;
    Ok(ApiJson(BindingConfirmation {
        binding: body(binding),
        otp: super::wallet_app::otp_body(otp),
    }))
}

/// Completes the binding with the code (and the payment password, when the
/// account has one): the bank opens the quick-pay agreement.
#[utoipa::path(post, path = "/v1/bindings/{binding_id}/completion", tag = "bindings",
    security(("session" = [])),
    params(("binding_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = CompleteBinding,
    responses(
        (status = 400, description = "idempotency_key_missing, idempotency_key_invalid", body = ErrorBody),
        (status = 200, body = BindingBody), (status = 401, body = ErrorBody),
        (status = 403, description = "payment_password_invalid", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "binding_not_pending, otp_already_used, binding_exists", body = ErrorBody),
        (status = 422, description = "otp_invalid, otp_expired, binding_expired", body = ErrorBody),
        (status = 429, description = "otp_locked, password_locked", body = ErrorBody),
        (status = 502, body = ErrorBody)))]
async fn complete(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<BindingId>,
    ApiJson(req): ApiJson<CompleteBinding>,
) -> ApiResult<ApiJson<BindingBody>> {
    Ok(ApiJson(body(
        w.complete_binding(
            &user.user_id,
            &id,
            &req.code,
            req.payment_password.as_deref(),
        )
        .await?,
    )))
}

/// The account's bindings, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/bindings", tag = "bindings",
    security(("session" = [])),
    params(PageQuery),
    responses((status = 200, body = BindingList), (status = 401, body = ErrorBody),
        (status = 422, description = "invalid_request: limit out of 1 to 100, or an unknown cursor", body = ErrorBody)))]
async fn list(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<BindingList>> {
    let unknown = || {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "after: not a binding of this account (use `next` of the page before)",
        )
    };
    let after: Option<BindingId> = page
        .after
        .as_deref()
        .map(|a| a.parse().map_err(|_| unknown()))
        .transpose()?;
    let (bindings, next) = w
        .bindings(&user.user_id, page.limit, after.as_ref())
        .await?;
    Ok(ApiJson(BindingList {
        bindings: bindings.into_iter().map(body).collect(),
        next,
    }))
}

/// One binding (another account's is 404).
#[utoipa::path(get, path = "/v1/bindings/{binding_id}", tag = "bindings",
    security(("session" = [])),
    params(("binding_id" = String, Path)),
    responses((status = 200, body = BindingBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<BindingId>,
) -> ApiResult<ApiJson<BindingBody>> {
    Ok(ApiJson(body(w.binding(&user.user_id, &id).await?)))
}

/// Unbinds (or cancels a pending binding); the bank is told.
#[utoipa::path(delete, path = "/v1/bindings/{binding_id}", tag = "bindings",
    security(("session" = [])),
    params(("binding_id" = String, Path)),
    responses((status = 200, body = BindingBody), (status = 401, body = ErrorBody),
        (status = 403, description = "security_auth_required: unbinding an active card needs a trusted device's session", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn unbind(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<BindingId>,
) -> ApiResult<(StatusCode, ApiJson<BindingBody>)> {
    Ok((StatusCode::OK, ApiJson(body(w.unbind(&user, &id).await?))))
}

pub fn router(wallet: Wallet, idem: Arc<Idempotency>) -> OpenApiRouter {
    // Completing a binding opens the bank's agreement: it takes an Idempotency-Key.
    let completing = OpenApiRouter::new()
        .routes(routes!(complete))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency));
    OpenApiRouter::new()
        .routes(routes!(claim_address))
        .routes(routes!(claim_offered))
        .routes(routes!(confirm))
        .merge(completing)
        .routes(routes!(list))
        .routes(routes!(get_one, unbind))
        .layer(axum::middleware::from_fn_with_state(
            wallet.clone(),
            wallet_session,
        ))
        .with_state(wallet)
}
