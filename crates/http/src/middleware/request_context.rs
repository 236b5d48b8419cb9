//! Gives every request an id (the caller's `x-request-id` when it is sane,
//! else a fresh `req_…`), a tracing span carrying it, a metrics sample and
//! one log line when it finishes. The span holds the route template
//! (`/v1/sandbox/sms`), never the raw path or query, which may carry personal
//! data (`?phone=…`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use paybridge_domain::ids::RequestId;
use paybridge_domain::ErrorCode;
use tracing::Instrument;

use crate::error::REQUEST_ID;
use crate::metrics::Metrics;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request id accepted from a caller.
pub const REQUEST_ID_MAX_LEN: usize = 64;

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= REQUEST_ID_MAX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| s.to_owned())
}

pub async fn request_context(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(sane_request_id)
        .unwrap_or_else(|| RequestId::generate().to_string());
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request.id = %id, http.method = %method, http.route = %route);
    let started = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    metrics.observe_request(&method, &route, status, elapsed);
    let code = response.extensions().get::<ErrorCode>().map(|c| c.as_str());
    let _entered = span.enter();
    let latency_ms = elapsed.as_secs_f64() * 1_000.0;
    if status >= 500 {
        tracing::error!(
            http.status = status,
            error.code = code,
            latency_ms,
            "request failed"
        );
    } else if status >= 400 {
        tracing::info!(
            http.status = status,
            error.code = code,
            latency_ms,
            "request refused"
        );
    } else {
        tracing::info!(http.status = status, latency_ms, "request served");
    }
    response
}
