//! `Idempotency-Key` on creating POSTs. The first request with a key runs and
//! its answer is saved; a retry with the same key and body gets that answer
//! again (header `idempotent-replayed: true`); the same key with another body
//! is refused (422 `idempotency_key_reused`); a duplicate arriving while the
//! first is still running is refused (409 `idempotency_request_in_progress`).
//! Keys are scoped to the authenticated caller and the path.
//!
//! Answers of 5xx, 429 and 401 are not saved, so a retry runs again.
//!
//! A saved answer may carry a secret (a binding address, a QR code, an
//! agreement number, a session token): it is sealed (AES-256-GCM under a
//! key derived from the master key, bound to its scope and key) and opened
//! only to be replayed, so the table holds none in clear.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use paybridge_crypto::envelope::{Kek, Keyring};
use paybridge_crypto::master::MasterKey;
use paybridge_crypto::token::TokenHasher;
use paybridge_domain::{Clock, ErrorCode, ServiceError};
use paybridge_store::idempotency::IDEMPOTENCY_RENEW_SECS;
use paybridge_store::{IdempotencyBegin, IdempotencyStore, SavedResponse};

use super::Caller;
use crate::error::ApiError;
use crate::extract::body_error;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest key accepted (Stripe's limit).
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;
/// Largest answer saved for replay.
pub const SAVED_RESPONSE_MAX_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
pub struct Idempotency {
    pub store: Arc<dyn IdempotencyStore>,
    pub clock: Arc<dyn Clock>,
    /// Keys the stored request hash. The body may carry a password, a PIN
    /// or an OTP: a plain SHA-256 of it would let whoever reads the table
    /// brute-force them without Argon2's cost.
    pub request_key: Arc<TokenHasher>,
    /// Seals the saved answers.
    pub answer_key: Arc<Keyring>,
}

impl Idempotency {
    pub fn new(
        store: Arc<dyn IdempotencyStore>,
        clock: Arc<dyn Clock>,
        master: &MasterKey,
        role: &str,
    ) -> Self {
        let key = master.derive(role, "idempotency-request-hash");
        let answers = master.derive(role, "idempotency-answers");
        Self {
            store,
            clock,
            request_key: Arc::new(TokenHasher::from_bytes(*key)),
            answer_key: Arc::new(Keyring::new(Kek::from_bytes(*answers), [])),
        }
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_MAX_LEN && k.bytes().all(|b| b.is_ascii_graphic())
}

pub async fn idempotency(
    State(idem): State<Arc<Idempotency>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    match run(&idem, req, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(idem: &Idempotency, req: Request, next: Next) -> Result<Response, ApiError> {
    let key = match req.headers().get(IDEMPOTENCY_KEY_HEADER) {
        None => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyMissing,
                "this POST creates or moves something: send an `Idempotency-Key` header (e.g. a UUID) and reuse it when retrying",
            ))
        }
        Some(v) => match v.to_str() {
            Ok(k) if valid_key(k) => k.to_owned(),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::IdempotencyKeyInvalid,
                    format!("`Idempotency-Key` must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} visible ASCII characters"),
                ))
            }
        },
    };
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Anonymous);
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, crate::MAX_BODY_BYTES)
        .await
        .map_err(|e| body_error(&e))?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let scope = format!("{}|{}", caller.scope(), parts.uri.path());
    let mut hashed = Vec::with_capacity(bytes.len() + path.len() + 8);
    hashed.extend_from_slice(parts.method.as_str().as_bytes());
    hashed.push(b'\n');
    hashed.extend_from_slice(path.as_bytes());
    hashed.push(b'\n');
    hashed.extend_from_slice(&bytes);
    let request_hash = idem.request_key.hash_bytes(&hashed);
    let store_error = |e| ApiError::from(ServiceError::from(e));

    match idem
        .store
        .idempotency_begin(&scope, &key, &request_hash, idem.clock.now())
        .await
        .map_err(store_error)?
    {
        IdempotencyBegin::Started => {}
        IdempotencyBegin::Replay(saved) => return Ok(replay(idem.open(saved, &scope, &key))),
        IdempotencyBegin::InProgress => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyRequestInProgress,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ))
        }
        IdempotencyBegin::Mismatch => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different request; use a new key",
            ))
        }
    }

    // Run the request, renewing the claim while it runs: a claim whose
    // process is gone stops being renewed and is free within seconds.
    let handled = next.run(Request::from_parts(parts, Body::from(bytes)));
    let renew = async {
        let mut every = tokio::time::interval(Duration::from_secs(IDEMPOTENCY_RENEW_SECS));
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(e) = idem
                .store
                .idempotency_renew(&scope, &key, idem.clock.now())
                .await
            {
                tracing::warn!(error = %e, "could not renew an idempotency claim");
            }
        }
    };
    // A handler that panics (an invariant assertion: a bug) must not hold
    // the key until its lease runs out: the claim is released, then the
    // panic goes on to the catch-panic layer, which answers 500.
    let handled = std::panic::AssertUnwindSafe(handled).catch_unwind();
    let response = tokio::select! {
        response = handled => match response {
            Ok(response) => response,
            Err(panic) => {
                let _ = idem.store.idempotency_abandon(&scope, &key).await;
                std::panic::resume_unwind(panic);
            }
        },
        _ = renew => unreachable!("the renewal loop never ends"),
    };
    let status = response.status();
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, SAVED_RESPONSE_MAX_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "answer too large to save for idempotency");
            let _ = idem.store.idempotency_abandon(&scope, &key).await;
            return Err(ApiError::new(
                ErrorCode::InternalError,
                "internal error; it has been logged",
            ));
        }
    };
    // Nothing happened on a 5xx, a 429 or a 401 (a device proof without a
    // fresh nonce is refused before anything is done): the retry with the
    // same key must run again, not replay the refusal.
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::UNAUTHORIZED;
    let outcome = if transient {
        idem.store.idempotency_abandon(&scope, &key).await
    } else {
        let saved = SavedResponse {
            status: status.as_u16(),
            body: idem
                .answer_key
                .seal(&body, &answer_context(&scope, &key))
                .into_bytes(),
        };
        idem.store
            .idempotency_complete(&scope, &key, &saved, idem.clock.now())
            .await
    };
    if let Err(e) = outcome {
        // The effect happened; only the replay record is missing. The claim's
        // lease runs out and a retry then runs again, which the flows
        // tolerate (they are idempotent on their own business keys).
        tracing::error!(error = %e, "could not record the idempotent answer");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// What a saved answer is sealed for: its caller-and-path scope and key.
fn answer_context(scope: &str, key: &str) -> String {
    format!("idempotent-answer:{scope}:{key}")
}

impl Idempotency {
    /// The saved answer in clear. One saved before answers were sealed is
    /// replayed as it is (such rows live a day at most).
    fn open(&self, saved: SavedResponse, scope: &str, key: &str) -> SavedResponse {
        let opened = std::str::from_utf8(&saved.body).ok().and_then(|sealed| {
            self.answer_key
                .open(sealed, &answer_context(scope, key))
                .ok()
        });
        match opened {
            Some(body) => SavedResponse {
                status: saved.status,
                body: body.expose().clone(),
            },
            None => saved,
        }
    }
}

fn replay(saved: SavedResponse) -> Response {
    let status = StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK);
    let mut response = (status, saved.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}
