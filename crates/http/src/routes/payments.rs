//! The wallet app pays a merchant's order with a bound card.

use std::sync::Arc;

use axum::extract::State;
use paybridge_api::merchant::{OrderBody, PayOrder};
use paybridge_api::ErrorBody;
use paybridge_domain::ids::{BindingId, OrderId};
use paybridge_domain::ErrorCode;
use paybridge_wallet::accounts::SessionUser;
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Authenticated};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::session_auth::wallet_session;
use crate::routes::merchant_api::order_body;

/// Pays an order with a bound card and the payment password. A retry (or a
/// concurrent duplicate) never debits twice.
#[utoipa::path(post, path = "/v1/orders/{order_id}/payments", tag = "wallet",
    security(("session" = [])),
    params(("order_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = PayOrder,
    responses(
        (status = 400, description = "idempotency_key_missing, idempotency_key_invalid", body = ErrorBody),
        (status = 200, body = OrderBody), (status = 401, body = ErrorBody),
        (status = 403, description = "payment_password_invalid, account_restricted", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "order_not_payable (paid, cancelled, or being paid)", body = ErrorBody),
        (status = 422, description = "order_expired, insufficient_funds", body = ErrorBody),
        (status = 429, description = "password_locked", body = ErrorBody),
        (status = 502, description = "the bank could not be reached; retry: it cannot debit twice", body = ErrorBody)))]
async fn pay(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(order): ApiPath<OrderId>,
    ApiJson(req): ApiJson<PayOrder>,
) -> ApiResult<ApiJson<OrderBody>> {
    let binding: BindingId = req
        .binding_id
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "no such binding"))?;
    Ok(ApiJson(order_body(
        w.pay_order(&user.user_id, &order, &binding, &req.payment_password)
            .await?,
    )))
}

pub fn router(wallet: Wallet, idem: Arc<Idempotency>) -> OpenApiRouter {
    // Paying moves money: it takes an Idempotency-Key.
    OpenApiRouter::new()
        .routes(routes!(pay))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency))
        .layer(axum::middleware::from_fn_with_state(
            wallet.clone(),
            wallet_session,
        ))
        .with_state(wallet)
}
