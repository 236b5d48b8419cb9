//! The signed partner calls of flow F5 at the issuer: the wallet lists the
//! virtual card products, forwards a checked card application, and sends
//! it again with its evidence (the OTP proof or the identity authority's
//! reference number), upon which the bank pre-verifies and issues the card.

use std::sync::Arc;

use axum::extract::State;
use paybridge_api::virtual_card::{
    CardApplicationAnswer, CardIssued, CardProductList, ForwardCardApplication,
    ResubmitCardApplication,
};
use paybridge_api::ErrorBody;
use paybridge_domain::ids::CardApplicationId;
use paybridge_issuer::Issuer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, Authenticated};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::partner_auth::{partner_auth, PartnerAuth, VerifiedPartner};

/// The bank's virtual card products.
#[utoipa::path(get, path = "/v1/partner/card-products", tag = "partner",
    security(("partner_signature" = [])),
    responses(
        (status = 200, body = CardProductList), (status = 401, body = ErrorBody),
        (status = 404, description = "not_found: this bank issues no virtual cards", body = ErrorBody)))]
async fn card_products(
    State(issuer): State<Issuer>,
    Authenticated(_caller): Authenticated<VerifiedPartner>,
) -> ApiResult<ApiJson<CardProductList>> {
    Ok(ApiJson(CardProductList {
        issuer: issuer.id.to_string(),
        products: issuer.card_products()?,
    }))
}

/// The wallet forwards a card application it checked (申请卡的信息): the
/// bank answers whether the applicant is an existing cardholder (with the
/// reserved phone for the OTP) or a first-card applicant. Idempotent on
/// `application_id`.
#[utoipa::path(post, path = "/v1/partner/card-applications", tag = "partner",
    security(("partner_signature" = [])),
    params(("Idempotency-Key" = String, Header, description = "`forward:<application id>`")),
    request_body = ForwardCardApplication,
    responses(
        (status = 200, body = CardApplicationAnswer), (status = 401, body = ErrorBody),
        (status = 404, description = "not_found: no such product", body = ErrorBody),
        (status = 409, description = "idempotency_key_reused: the id with other details", body = ErrorBody),
        (status = 422, description = "invalid_request", body = ErrorBody)))]
async fn forward_card_application(
    State(issuer): State<Issuer>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiJson(req): ApiJson<ForwardCardApplication>,
) -> ApiResult<ApiJson<CardApplicationAnswer>> {
    Ok(ApiJson(
        issuer.receive_card_application(&caller.0, &req).await?,
    ))
}

/// The wallet sends the application again with its evidence; the bank
/// pre-verifies (前置验证) and issues the card: card code, token (its key
/// material sealed to the phone's secure element) and quick-pay agreement.
/// A refusal is final and answered the same way every time.
#[utoipa::path(post, path = "/v1/partner/card-applications/{application_id}/resubmissions", tag = "partner",
    security(("partner_signature" = [])),
    params(("application_id" = String, Path),
        ("Idempotency-Key" = String, Header, description = "`resubmit:<application id>`")),
    request_body = ResubmitCardApplication,
    responses(
        (status = 200, body = CardIssued), (status = 401, body = ErrorBody),
        (status = 403, description = "identity_blocked", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "application_step (the other path's evidence), card_limit_reached", body = ErrorBody),
        (status = 422, description = "otp_proof_invalid, reference_invalid, identity_mismatch, score_too_low, invalid_request", body = ErrorBody)))]
async fn resubmit_card_application(
    State(issuer): State<Issuer>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiPath(id): ApiPath<CardApplicationId>,
    ApiJson(req): ApiJson<ResubmitCardApplication>,
) -> ApiResult<ApiJson<CardIssued>> {
    Ok(ApiJson(
        issuer
            .resubmit_card_application(&caller.0, &id, &req)
            .await?,
    ))
}

pub fn issuer_router(
    issuer: Issuer,
    auth: Arc<PartnerAuth>,
    idem: Arc<Idempotency>,
) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(card_products))
        .routes(routes!(forward_card_application))
        .routes(routes!(resubmit_card_application))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency))
        .layer(axum::middleware::from_fn_with_state(auth, partner_auth))
        .with_state(issuer)
}
