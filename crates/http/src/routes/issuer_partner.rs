//! An issuer's signed partner API, called by the wallet. Served under `/bank`.

use std::sync::Arc;

use axum::extract::State;
use axum::Extension;
use paybridge_api::partner::{PartnerEvent, PartnerEventAck, PartnerPing};
use paybridge_api::ErrorBody;
use paybridge_issuer::Issuer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::partner_auth::{partner_auth, PartnerAuth, VerifiedPartner};

/// Signed ping: proves both sides' keys and clocks agree.
#[utoipa::path(get, path = "/bank/v1/partner/ping", tag = "partner",
    security(("partner_signature" = [])),
    responses(
        (status = 200, body = PartnerPing),
        (status = 401, description = "Missing, invalid, expired or replayed signature; unknown partner", body = ErrorBody)))]
async fn ping(
    State(issuer): State<Issuer>,
    Extension(caller): Extension<VerifiedPartner>,
) -> ApiJson<PartnerPing> {
    ApiJson(issuer.ping(&caller.0))
}

/// The wallet's event for this issuer; acknowledged once received (again for a redelivery).
#[utoipa::path(post, path = "/bank/v1/partner/events", tag = "partner",
    security(("partner_signature" = [])),
    params(("Idempotency-Key" = String, Header, description = "The event id")),
    request_body = PartnerEvent,
    responses(
        (status = 200, body = PartnerEventAck),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn events(
    State(issuer): State<Issuer>,
    Extension(caller): Extension<VerifiedPartner>,
    ApiJson(event): ApiJson<PartnerEvent>,
) -> ApiResult<ApiJson<PartnerEventAck>> {
    Ok(ApiJson(
        issuer.receive_partner_event(&caller.0, &event).await?,
    ))
}

pub fn router(issuer: Issuer, auth: Arc<PartnerAuth>, idem: Arc<Idempotency>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(ping))
        .routes(routes!(events))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency))
        .layer(axum::middleware::from_fn_with_state(auth, partner_auth))
        .with_state(issuer)
}
