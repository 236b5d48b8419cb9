//! Partner routes: verify the caller's `PAYBRIDGE-ED25519` signature (known
//! partner, known key, audience, ±300 s, signature, unseen nonce) before the
//! handler runs, and sign every answer — errors included — over its status,
//! body and the request's nonce. The partner's identity comes from the
//! verified signature only, never from a header taken on trust.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{OriginalUri, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use paybridge_crypto::signing::{
    new_nonce, AuthorizationParams, Received, SignatureError, SignedHeaders, SignedResponse,
    MAX_CLOCK_SKEW_SECS, RESPONSE_SIGNATURE_HEADER,
};
use paybridge_crypto::{PartnerKeyPair, PartnerPublicKey};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::{Clock, ErrorCode, ServiceError};
use paybridge_store::NonceStore;

use super::Caller;
use crate::error::ApiError;
use crate::extract::body_error;

/// Largest answer we sign (answers are buffered to be hashed).
pub const SIGNED_RESPONSE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The partner a request was verified to come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPartner(pub PartnerId);

/// What a role needs to check and sign partner calls.
#[derive(Debug)]
pub struct PartnerAuth {
    pub me: PartnerId,
    pub key: Arc<PartnerKeyPair>,
    /// Partners allowed to call, with their accepted public keys.
    pub known: HashMap<PartnerId, Vec<PartnerPublicKey>>,
    pub nonces: Arc<dyn NonceStore>,
    pub clock: Arc<dyn Clock>,
}

impl PartnerAuth {
    fn sign(
        &self,
        response: Response,
        request_nonce: &str,
    ) -> impl std::future::Future<Output = Response> + '_ {
        let request_nonce = request_nonce.to_owned();
        async move {
            let (mut parts, body) = response.into_parts();
            let bytes = match to_bytes(body, SIGNED_RESPONSE_MAX_BYTES).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "answer too large to sign");
                    return ApiError::new(
                        ErrorCode::InternalError,
                        "internal error; it has been logged",
                    )
                    .into_response();
                }
            };
            let header = SignedResponse {
                from: &self.me,
                status: parts.status.as_u16(),
                request_nonce: &request_nonce,
                timestamp: self.clock.now().unix_timestamp(),
                nonce: &new_nonce(),
                body: &bytes,
            }
            .header(&self.key);
            parts.headers.insert(
                RESPONSE_SIGNATURE_HEADER,
                HeaderValue::from_str(&header).expect("signature headers are ASCII"),
            );
            Response::from_parts(parts, Body::from(bytes))
        }
    }

    async fn verify(
        &self,
        req: Request,
        params: &AuthorizationParams,
    ) -> Result<Request, ApiError> {
        let refuse = |code, message: &str| {
            tracing::warn!(partner.id = %params.partner, error.code = %code, "partner call refused");
            ApiError::new(code, message)
        };
        let keys = self.known.get(&params.partner).ok_or_else(|| {
            refuse(
                ErrorCode::PartnerUnknown,
                "this partner is not registered here",
            )
        })?;
        let key = keys
            .iter()
            .find(|k| k.key_id() == params.key_id)
            .ok_or_else(|| {
                refuse(
                    ErrorCode::SignatureInvalid,
                    "unknown key id for this partner",
                )
            })?;
        let (parts, body) = req.into_parts();
        let bytes = to_bytes(body, crate::MAX_BODY_BYTES)
            .await
            .map_err(|e| body_error(&e))?;
        let path_and_query = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| parts.uri.clone());
        let path_and_query = path_and_query
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let now = self.clock.now();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let signed_headers = SignedHeaders {
            content_type: header("content-type"),
            idempotency_key: header("idempotency-key"),
        };
        params
            .verify(
                &self.me,
                key,
                &Received {
                    method: parts.method.as_str(),
                    path_and_query: &path_and_query,
                    headers: signed_headers,
                    body: &bytes,
                },
                now.unix_timestamp(),
            )
            .map_err(|e| match e {
                SignatureError::Expired => refuse(
                    ErrorCode::SignatureExpired,
                    &format!("the signed timestamp is more than {MAX_CLOCK_SKEW_SECS} s away from our clock"),
                ),
                SignatureError::WrongAudience => {
                    refuse(ErrorCode::SignatureInvalid, "the request is addressed to another party")
                }
                _ => refuse(ErrorCode::SignatureInvalid, "the signature does not verify"),
            })?;
        let first_use = self
            .nonces
            .nonce_first_use(&params.partner, &params.nonce, now)
            .await
            .map_err(|e| ApiError::from(ServiceError::from(e)))?;
        if !first_use {
            return Err(refuse(
                ErrorCode::NonceReplayed,
                "this nonce was used before",
            ));
        }
        let mut req = Request::from_parts(parts, Body::from(bytes));
        req.extensions_mut()
            .insert(VerifiedPartner(params.partner.clone()));
        req.extensions_mut()
            .insert(Caller::Partner(params.partner.clone()));
        Ok(req)
    }
}

pub async fn partner_auth(
    State(auth): State<Arc<PartnerAuth>>,
    req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let params = match header.as_deref().map(AuthorizationParams::parse) {
        None => {
            let e = ApiError::new(
                ErrorCode::SignatureMissing,
                "partner calls must be signed (Authorization: PAYBRIDGE-ED25519 …)",
            );
            return auth.sign(e.into_response(), "").await;
        }
        Some(Err(_)) => {
            let e = ApiError::new(
                ErrorCode::SignatureInvalid,
                "the Authorization header is not a valid PAYBRIDGE-ED25519 signature",
            );
            return auth.sign(e.into_response(), "").await;
        }
        Some(Ok(p)) => p,
    };
    let response = match auth.verify(req, &params).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    auth.sign(response, &params.nonce).await
}
