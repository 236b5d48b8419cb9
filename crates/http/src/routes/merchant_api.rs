//! The merchant API: orders and API keys, authenticated by the merchant's
//! secret key. Another merchant's order is 404.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use paybridge_api::merchant::{
    ApiKeyBody, ApiKeyList, CreateOrder, CreateRefund, NewApiKeyBody, OrderBody, RefundBody,
    RefundCreated, RefundList, SetWebhookEndpoint, WebhookDeliveryBody, WebhookDeliveryList,
    WebhookEndpointBody,
};
use paybridge_api::{rfc3339, ErrorBody, PageQuery};
use paybridge_domain::ids::{ApiKeyId, EventId, OrderId, RefundId};
use paybridge_domain::{Currency, ErrorCode, Money};
use paybridge_wallet::merchants::{MerchantCaller, NewOrder};
use paybridge_wallet::views::{ApiKeyView, OrderView, RefundView};
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::session_auth::merchant_key;
use crate::routes::page_cursor;

pub(crate) fn order_body(o: OrderView) -> OrderBody {
    let currency = o.status.amount.currency;
    OrderBody {
        id: o.id,
        merchant_id: o.merchant_id,
        reference: o.reference,
        description: o.description,
        amount: o.status.amount.into(),
        refunded: Money::new(o.status.refunded_minor, currency).into(),
        state: o.status.state,
        expires_at: rfc3339(o.status.expires_at),
        created_at: rfc3339(o.created_at),
    }
}

fn key_body(k: ApiKeyView) -> ApiKeyBody {
    ApiKeyBody {
        id: k.id,
        prefix: k.prefix,
        created_at: rfc3339(k.created_at),
        revoked_at: k.revoked_at.map(rfc3339),
    }
}

/// Creates an order. The same `reference` with the same content returns the
/// same order.
#[utoipa::path(post, path = "/v1/orders", tag = "merchants",
    security(("merchant_key" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = CreateOrder,
    responses(
        (status = 201, description = "created, or the order a retry with the same reference and content created", body = OrderBody),
        (status = 401, description = "api_key_invalid", body = ErrorBody),
        (status = 409, description = "order_reference_reused (another order's, or a cancelled or expired one's)", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_order(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
    ApiJson(req): ApiJson<CreateOrder>,
) -> ApiResult<(StatusCode, ApiJson<OrderBody>)> {
    let currency: Currency = req.amount.currency.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "amount.currency: an ISO 4217 code we support",
        )
    })?;
    let (order, _) = w
        .create_order(
            &m.merchant_id,
            &NewOrder {
                amount: Money::new(req.amount.amount, currency),
                description: req.description,
                reference: req.reference,
                expires_in_secs: req.expires_in_secs,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, ApiJson(order_body(order))))
}

/// One of the merchant's orders.
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "merchants",
    security(("merchant_key" = [])),
    params(("order_id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_order(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<ApiJson<OrderBody>> {
    Ok(ApiJson(order_body(w.order(&m.merchant_id, &id).await?)))
}

/// Cancels an open order.
#[utoipa::path(post, path = "/v1/orders/{order_id}/cancel", tag = "merchants",
    security(("merchant_key" = [])),
    params(("order_id" = String, Path)),
    responses(
        (status = 200, body = OrderBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "order_not_payable", body = ErrorBody), (status = 422, description = "order_expired", body = ErrorBody)))]
async fn cancel_order(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<ApiJson<OrderBody>> {
    Ok(ApiJson(order_body(
        w.cancel_order(&m.merchant_id, &id).await?,
    )))
}

/// The merchant's API keys (prefixes only), oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/api-keys", tag = "merchants",
    security(("merchant_key" = [])),
    params(PageQuery),
    responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorBody),
        (status = 422, description = "invalid_request: limit out of 1 to 100, or an unknown cursor", body = ErrorBody)))]
async fn list_keys(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<ApiKeyList>> {
    let after: Option<ApiKeyId> =
        page_cursor(page.after.as_deref(), "an API key of this merchant")?;
    let (keys, next) = w
        .api_keys(&m.merchant_id, page.limit, after.as_ref())
        .await?;
    Ok(ApiJson(ApiKeyList {
        keys: keys.into_iter().map(key_body).collect(),
        next: next.map(|k| k.to_string()),
    }))
}

/// A new API key; its secret is shown in this answer only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "merchants",
    security(("merchant_key" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry: the same key comes back")),
    responses((status = 201, body = NewApiKeyBody), (status = 400, description = "idempotency_key_missing, idempotency_key_invalid", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn create_key(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
) -> ApiResult<(StatusCode, ApiJson<NewApiKeyBody>)> {
    let (key, secret) = w.create_api_key(&m.merchant_id).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(NewApiKeyBody {
            key: key_body(key),
            secret: secret.expose().clone(),
        }),
    ))
}

/// Revokes an API key (also the one in use).
#[utoipa::path(delete, path = "/v1/api-keys/{key_id}", tag = "merchants",
    security(("merchant_key" = [])),
    params(("key_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
    ApiPath(id): ApiPath<ApiKeyId>,
) -> ApiResult<StatusCode> {
    w.revoke_api_key(&m.merchant_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets where order events are posted; answers with a new signing secret
/// (shown once; the previous one stops working).
#[utoipa::path(put, path = "/v1/webhook-endpoint", tag = "merchants",
    security(("merchant_key" = [])),
    request_body = SetWebhookEndpoint,
    responses((status = 200, body = WebhookEndpointBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_webhook(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
    ApiJson(req): ApiJson<SetWebhookEndpoint>,
) -> ApiResult<ApiJson<WebhookEndpointBody>> {
    let secret = w.set_webhook_endpoint(&m.merchant_id, &req.url).await?;
    Ok(ApiJson(WebhookEndpointBody {
        url: req.url,
        secret: secret.expose().clone(),
    }))
}

/// The merchant's webhook deliveries, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/webhook-deliveries", tag = "merchants",
    security(("merchant_key" = [])),
    params(PageQuery),
    responses((status = 200, body = WebhookDeliveryList), (status = 401, body = ErrorBody),
        (status = 422, description = "invalid_request: limit out of 1 to 100, or an unknown cursor", body = ErrorBody)))]
async fn list_deliveries(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<WebhookDeliveryList>> {
    let after: Option<EventId> = page_cursor(page.after.as_deref(), "an event of this merchant")?;
    let (deliveries, next) = w
        .webhook_deliveries(&m.merchant_id, page.limit, after.as_ref())
        .await?;
    Ok(ApiJson(WebhookDeliveryList {
        deliveries: deliveries
            .into_iter()
            .map(|d| {
                let status = if d.delivered_at.is_some() {
                    "delivered"
                } else if d.dead_at.is_some() {
                    "dead"
                } else {
                    "pending"
                };
                WebhookDeliveryBody {
                    event_id: d.event.id.to_string(),
                    event_type: d.event.topic.to_string(),
                    status: status.to_owned(),
                    attempts: d.event.attempts,
                    last_error: d.last_error,
                    created_at: rfc3339(d.event.occurred_at),
                    delivered_at: d.delivered_at.map(rfc3339),
                    next_attempt_at: (status == "pending").then(|| rfc3339(d.next_attempt_at)),
                }
            })
            .collect(),
        next: next.map(|e| e.to_string()),
    }))
}

/// Sends one delivery again, now.
#[utoipa::path(post, path = "/v1/webhook-deliveries/{event_id}/resend", tag = "merchants",
    security(("merchant_key" = [])),
    params(("event_id" = String, Path)),
    responses((status = 202), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn resend_delivery(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
    ApiPath(id): ApiPath<EventId>,
) -> ApiResult<StatusCode> {
    w.resend_webhook(&m.merchant_id, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

fn refund_body(r: RefundView) -> RefundBody {
    RefundBody {
        id: r.id,
        order_id: r.order_id,
        reference: r.reference,
        amount: r.amount.into(),
        state: r.status.stage(),
        failure: r.status.failure().map(ToString::to_string),
        created_at: rfc3339(r.created_at),
    }
}

/// Refunds (part of) a paid order to the card it was paid with: reserved on
/// the order and the merchant's balance, returned by the bank, then posted.
/// The same `reference` again answers or resumes the same refund.
#[utoipa::path(post, path = "/v1/orders/{order_id}/refunds", tag = "merchants",
    security(("merchant_key" = [])),
    params(("order_id" = String, Path),
        ("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = CreateRefund,
    responses(
        (status = 201, body = RefundCreated), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "order_reference_reused (this reference, another amount)", body = ErrorBody),
        (status = 422, description = "order_not_refundable (not paid, or more than is left), insufficient_funds (merchant balance), invalid_request", body = ErrorBody),
        (status = 502, description = "the bank could not be reached; retry with the same reference", body = ErrorBody)))]
async fn refund_order(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(req): ApiJson<CreateRefund>,
) -> ApiResult<(StatusCode, ApiJson<RefundCreated>)> {
    let currency: Currency = req.amount.currency.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "amount.currency: an ISO 4217 code we support",
        )
    })?;
    let (order, refund) = w
        .refund_order(
            &m.merchant_id,
            &id,
            Money::new(req.amount.amount, currency),
            &req.reference,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(RefundCreated {
            refund: refund_body(refund),
            order: order_body(order),
        }),
    ))
}

/// The refunds of one of the merchant's orders, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/orders/{order_id}/refunds", tag = "merchants",
    security(("merchant_key" = [])),
    params(("order_id" = String, Path), PageQuery),
    responses((status = 200, body = RefundList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "invalid_request: limit out of 1 to 100, or an unknown cursor", body = ErrorBody)))]
async fn list_refunds(
    State(w): State<Wallet>,
    Authenticated(m): Authenticated<MerchantCaller>,
    ApiPath(id): ApiPath<OrderId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<RefundList>> {
    let after: Option<RefundId> = page_cursor(page.after.as_deref(), "a refund of this order")?;
    let (refunds, next) = w
        .refunds(&m.merchant_id, &id, page.limit, after.as_ref())
        .await?;
    Ok(ApiJson(RefundList {
        refunds: refunds.into_iter().map(refund_body).collect(),
        next: next.map(|r| r.to_string()),
    }))
}

pub fn router(wallet: Wallet, idem: Arc<Idempotency>) -> OpenApiRouter {
    // A new key's secret is in its saved answer, sealed like every saved
    // answer: a retry gets the same key, not a second one.
    let creating = OpenApiRouter::new()
        .routes(routes!(create_order))
        .routes(routes!(refund_order, list_refunds))
        .routes(routes!(list_keys, create_key))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency));
    OpenApiRouter::new()
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
        .routes(routes!(revoke_key))
        .routes(routes!(set_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(resend_delivery))
        .merge(creating)
        .layer(axum::middleware::from_fn_with_state(
            wallet.clone(),
            merchant_key,
        ))
        .with_state(wallet)
}
