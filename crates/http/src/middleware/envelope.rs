//! Turns every error answer that is not already our JSON envelope (axum's
//! 405, a caught panic, a timeout) into one, so that a client only ever
//! parses one error shape.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use paybridge_domain::ErrorCode;

use crate::error::envelope;

fn code_for(status: StatusCode) -> (ErrorCode, &'static str) {
    match status.as_u16() {
        404 => (ErrorCode::RouteNotFound, "no such route"),
        405 => (
            ErrorCode::MethodNotAllowed,
            "this method is not served on this path",
        ),
        408 | 504 => (ErrorCode::Timeout, "the request took too long"),
        413 => (ErrorCode::BodyTooLarge, "the body is too large"),
        415 => (ErrorCode::UnsupportedMediaType, "unsupported content type"),
        429 => (ErrorCode::RateLimited, "too many requests; slow down"),
        s if s >= 500 => (
            ErrorCode::InternalError,
            "internal error; it has been logged",
        ),
        _ => (ErrorCode::InvalidRequest, "the request is invalid"),
    }
}

pub async fn envelope_errors(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let status = response.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The body was refused before its end was read, so the connection
        // cannot carry another request: say so, or a client may send its
        // next request on a connection the server is closing.
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (code, message) = code_for(status);
    let (mut parts, _body) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static header"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.extensions.insert(code);
    Response::from_parts(parts, Body::from(envelope(code, message)))
}
