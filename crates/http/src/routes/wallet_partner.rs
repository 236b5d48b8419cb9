//! The wallet's signed partner API, called by issuers.

use std::sync::Arc;

use axum::extract::State;
use axum::Extension;
use paybridge_api::partner::{PartnerEvent, PartnerEventAck, PartnerPing};
use paybridge_api::ErrorBody;
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::partner_auth::{partner_auth, PartnerAuth, VerifiedPartner};

/// Signed ping: proves both sides' keys and clocks agree.
#[utoipa::path(get, path = "/v1/partner/ping", tag = "partner",
    security(("partner_signature" = [])),
    responses(
        (status = 200, body = PartnerPing),
        (status = 401, description = "Missing, invalid, expired or replayed signature; unknown partner", body = ErrorBody)))]
async fn ping(
    State(wallet): State<Wallet>,
    Extension(caller): Extension<VerifiedPartner>,
) -> ApiJson<PartnerPing> {
    ApiJson(wallet.ping(&caller.0))
}

/// An issuer's event for the wallet; acknowledged once received (again for a redelivery).
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
    State(wallet): State<Wallet>,
    Extension(caller): Extension<VerifiedPartner>,
    ApiJson(event): ApiJson<PartnerEvent>,
) -> ApiResult<ApiJson<PartnerEventAck>> {
    Ok(ApiJson(
        wallet.receive_partner_event(&caller.0, &event).await?,
    ))
}

pub fn router(wallet: Wallet, auth: Arc<PartnerAuth>, idem: Arc<Idempotency>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(ping))
        .routes(routes!(events))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency))
        .layer(axum::middleware::from_fn_with_state(auth, partner_auth))
        .with_state(wallet)
}
