//! The one place errors become HTTP answers. Every error leaves as
//! `{"error": {"code", "message", "request_id"}}` with the status its code's
//! kind demands; internal detail goes to the log, never to the body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use paybridge_api::{ErrorBody, ErrorDetail};
use paybridge_domain::{DomainError, ErrorCode, ErrorKind, ServiceError};

tokio::task_local! {
    /// The id of the request being served, set by the request-context middleware.
    pub static REQUEST_ID: String;
}

/// The current request's id, or `unknown` outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| "unknown".into())
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
    }
}

/// The envelope's JSON bytes for a code and message.
pub fn envelope(code: ErrorCode, message: &str) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code: code.as_str().to_owned(),
            message: message.to_owned(),
            request_id: current_request_id(),
        },
    })
    .expect("the error envelope serializes")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.code.kind());
        let mut response = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            envelope(self.code, &self.message),
        )
            .into_response();
        // Lets the request log say which code was answered.
        response.extensions_mut().insert(self.code);
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::new(e.code, e.message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Rejected(d) => d.into(),
            ServiceError::Unavailable { code, source } => {
                tracing::warn!(error = %source, error.code = %code, "dependency unavailable");
                let message = match code {
                    ErrorCode::StoreUnavailable => "the store is unavailable; retry later",
                    ErrorCode::PartnerUnreachable => {
                        "the partner could not be reached; retry later"
                    }
                    _ => "the partner's answer could not be used",
                };
                ApiError::new(code, message)
            }
            ServiceError::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                ApiError::new(
                    ErrorCode::InternalError,
                    "internal error; it has been logged",
                )
            }
        }
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;
