//! The signed partner API. The wallet serves it at `/v1/partner/…` (called by
//! issuers) and each issuer at `/bank/v1/partner/…` (called by the wallet):
//! the same endpoints, answered by the role behind [`PartnerSide`].

use std::sync::Arc;

use axum::extract::State;
use paybridge_adapters::partner::PartnerSide;
use paybridge_api::partner::{PartnerEvent, PartnerEventAck, PartnerPing};
use paybridge_api::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Authenticated};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::partner_auth::{partner_auth, PartnerAuth, VerifiedPartner};

type Side = Arc<dyn PartnerSide>;

/// Signed ping: proves both sides' keys and clocks agree.
#[utoipa::path(get, path = "/v1/partner/ping", tag = "partner",
    security(("partner_signature" = [])),
    responses(
        (status = 200, body = PartnerPing),
        (status = 401, description = "Missing, invalid, expired or replayed signature; unknown partner", body = ErrorBody)))]
async fn ping(
    State(side): State<Side>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
) -> ApiJson<PartnerPing> {
    ApiJson(side.ping(&caller.0))
}

/// The other party's event; acknowledged once received (again, as a duplicate, for a redelivery).
#[utoipa::path(post, path = "/v1/partner/events", tag = "partner",
    security(("partner_signature" = [])),
    params(("Idempotency-Key" = String, Header, description = "The event id")),
    request_body = PartnerEvent,
    responses(
        (status = 200, body = PartnerEventAck),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn events(
    State(side): State<Side>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiJson(event): ApiJson<PartnerEvent>,
) -> ApiResult<ApiJson<PartnerEventAck>> {
    Ok(ApiJson(
        side.receive_partner_event(&caller.0, &event).await?,
    ))
}

/// The partner API of one role; nest it under the role's prefix.
pub fn router(side: Side, auth: Arc<PartnerAuth>, idem: Arc<Idempotency>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(ping))
        .routes(routes!(events))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency))
        .layer(axum::middleware::from_fn_with_state(auth, partner_auth))
        .with_state(side)
}
