//! The sandbox parties' endpoints: the SMS gateway's outbox (the demo's and
//! tests' stand-in for a phone's inbox) and the OS push relay's messages.
//! Mounted only when the sandbox is on.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use paybridge_adapters::sandbox::SandboxParties;
use paybridge_api::sandbox::{RelayList, RelayQuery, SendSms, SmsList, SmsMessageView, SmsQuery};
use paybridge_api::wallet::{PaymentRequestBody, RelayedGesture};
use paybridge_api::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::idempotency::{idempotency, Idempotency};

/// Messages the sandbox SMS gateway delivered to one phone, newest first.
#[utoipa::path(get, path = "/v1/sandbox/sms", tag = "sandbox",
    params(SmsQuery),
    responses((status = 200, body = SmsList), (status = 422, body = ErrorBody)))]
async fn list_sms(
    State(s): State<SandboxParties>,
    ApiQuery(q): ApiQuery<SmsQuery>,
) -> ApiResult<ApiJson<SmsList>> {
    Ok(ApiJson(SmsList {
        messages: s.sms_inbox(&q.phone, q.limit).await?,
    }))
}

/// Sends a text through the sandbox SMS gateway.
#[utoipa::path(post, path = "/v1/sandbox/sms", tag = "sandbox",
    params(("Idempotency-Key" = String, Header, description = "Unique per message; reuse it to retry")),
    request_body = SendSms,
    responses(
        (status = 201, body = SmsMessageView),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn send_sms(
    State(s): State<SandboxParties>,
    ApiJson(req): ApiJson<SendSms>,
) -> ApiResult<(StatusCode, ApiJson<SmsMessageView>)> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.send_sms(&req.phone, &req.body).await?),
    ))
}

/// Messages the sandbox OS push relay was handed for one device token, newest first.
#[utoipa::path(get, path = "/v1/sandbox/push-relay", tag = "sandbox",
    params(RelayQuery),
    responses((status = 200, body = RelayList), (status = 422, body = ErrorBody)))]
async fn list_relay(
    State(s): State<SandboxParties>,
    ApiQuery(q): ApiQuery<RelayQuery>,
) -> ApiResult<ApiJson<RelayList>> {
    Ok(ApiJson(RelayList {
        messages: s.relay_messages(&q.device_token, q.limit).await?,
    }))
}

/// The sandbox OS push relay relays a gesture made on a phone (as the
/// phone vendor's push server would): it signs the call to the wallet's
/// `POST /v1/relay/gestures` and answers with the wallet's answer.
#[utoipa::path(post, path = "/v1/sandbox/push-relay/gestures", tag = "sandbox",
    request_body = RelayedGesture,
    responses(
        (status = 200, body = PaymentRequestBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn relay_gesture(
    State(s): State<SandboxParties>,
    ApiJson(req): ApiJson<RelayedGesture>,
) -> ApiResult<ApiJson<PaymentRequestBody>> {
    Ok(ApiJson(s.relay_gesture(&req).await?))
}

pub fn router(parties: SandboxParties, idem: Arc<Idempotency>) -> OpenApiRouter {
    // A layer wraps whole paths, also their 405 (axum's Router::route_layer
    // does too): a POST to the relay's GET-only path must be a 405, not an
    // idempotency 400, so only the SMS path takes the layer.
    OpenApiRouter::new()
        .routes(routes!(list_sms, send_sms))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency))
        .routes(routes!(list_relay))
        // A relayed gesture is answered once by the wallet; no Idempotency-Key.
        .routes(routes!(relay_gesture))
        .with_state(parties)
}
