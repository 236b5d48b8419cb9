//! Bearer sessions of the wallet app and the bank app. The token is
//! checked against the role's store (only its keyed hash is kept there); the
//! session then rides in the request's extensions and scopes idempotency.
//! A wallet session bound to a device key also needs each request's proof
//! of possession (DPoP); see [`paybridge_wallet::device_proof`].

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use paybridge_crypto::device_proof::{NONCE_HEADER, PROOF_HEADER};
use paybridge_domain::ErrorCode;
use paybridge_issuer::Issuer;
use paybridge_wallet::Wallet;

use super::Caller;
use crate::error::ApiError;
use crate::extract::presented_proof;

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
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// The wallet session's token: `Authorization: DPoP <token>` (RFC 9449
/// §7.1, for a session bound to a device key) or `Bearer <token>`.
fn wallet_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("DPoP "))
    {
        Some(token) => Ok(token.trim()),
        None => bearer(headers),
    }
}

/// Wallet app routes: a live wallet session is required, and a session
/// bound to a device key needs the request's proof by that key.
pub async fn wallet_session(State(wallet): State<Wallet>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let user = match (wallet_token(&parts.headers), presented_proof(&parts)) {
        (Ok(token), Ok(proof)) => wallet
            .authenticate(token, &proof)
            .await
            .map_err(ApiError::from),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let mut req = Request::from_parts(parts, body);
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

/// Every answer to a request that carried a device proof, or that refused
/// one, gets a fresh server nonce (`DPoP-Nonce`, RFC 9449 §8) so the device
/// signs its next request with it; a refused proof's answer says why in
/// `WWW-Authenticate` (RFC 9449 §7.1), which is how a client knows to sign
/// again with the new nonce.
pub async fn device_nonce(State(wallet): State<Wallet>, req: Request, next: Next) -> Response {
    let had_proof = req.headers().contains_key(PROOF_HEADER);
    let mut response = next.run(req).await;
    let challenge = match response.extensions().get::<ErrorCode>() {
        Some(ErrorCode::UseDpopNonce) => Some(r#"DPoP error="use_dpop_nonce", algs="EdDSA""#),
        Some(ErrorCode::DpopProofInvalid) => {
            Some(r#"DPoP error="invalid_dpop_proof", algs="EdDSA""#)
        }
        _ => None,
    };
    if let Some(challenge) = challenge {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    if had_proof || challenge.is_some() {
        let nonce = wallet.device_proofs.nonce(wallet.clock.now());
        if let Ok(v) = HeaderValue::from_str(&nonce) {
            response.headers_mut().insert(NONCE_HEADER, v);
        }
    }
    response
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
