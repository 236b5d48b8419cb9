//! Bearer sessions of the wallet app and the bank app. The token is
//! checked against the role's store (only its keyed hash is kept there); the
//! session then rides in the request's extensions and scopes idempotency.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use paybridge_domain::ErrorCode;
use paybridge_issuer::Issuer;
use paybridge_wallet::Wallet;

use super::Caller;
use crate::error::ApiError;

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::SessionInvalid,
                "send the session token as `Authorization: Bearer <token>`; log in to get one",
            )
        })
}

fn refuse(e: ApiError) -> Response {
    let mut r = e.into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

/// Wallet app routes: a live wallet session is required.
pub async fn wallet_session(
    State(wallet): State<Wallet>,
    mut req: Request,
    next: Next,
) -> Response {
    let user = match bearer(req.headers()) {
        Ok(token) => wallet.authenticate(token).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match user {
        Ok(user) => {
            req.extensions_mut()
                .insert(Caller::User(user.user_id.to_string()));
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Err(e) => refuse(e),
    }
}

/// Bank app routes: a live bank session is required.
pub async fn bank_session(State(issuer): State<Issuer>, mut req: Request, next: Next) -> Response {
    let customer = match bearer(req.headers()) {
        Ok(token) => issuer
            .bank_authenticate(token)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match customer {
        Ok(c) => {
            req.extensions_mut()
                .insert(Caller::Customer(c.customer_id.to_string()));
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Err(e) => refuse(e),
    }
}

/// Merchant API routes: a live secret key is required.
pub async fn merchant_key(State(wallet): State<Wallet>, mut req: Request, next: Next) -> Response {
    let caller = match bearer(req.headers()) {
        Ok(key) => wallet
            .authenticate_merchant(key)
            .await
            .map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            ErrorCode::ApiKeyInvalid,
            "send the secret key as `Authorization: Bearer sk_test_…`",
        )),
    };
    match caller {
        Ok(m) => {
            req.extensions_mut()
                .insert(Caller::Merchant(m.merchant_id.to_string()));
            req.extensions_mut().insert(m);
            next.run(req).await
        }
        Err(e) => refuse(e),
    }
}
