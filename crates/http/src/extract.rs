//! Extractors that answer bad input with our envelope: a JSON body, a
//! query string, and typed ids in the path. Messages name the field and what was expected, and never
//! echo the value sent (it may be a PAN or a phone number).

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use paybridge_domain::ids::IdKind;
use paybridge_domain::{ErrorCode, Id};
use serde::de::DeserializeOwned;
use serde::Serialize;

use paybridge_wallet::device_proof::PresentedProof;

use crate::error::ApiError;

/// Path parameters parsed into their typed ids ([`Id`], or a pair of them).
/// Text that cannot be an id of that kind answers exactly what an unknown id
/// answers (`404 not_found`, "no such device"), so the shape of an id tells a
/// prober nothing and no handler parses ids by hand.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

fn no_such<K: IdKind>() -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no such {}", K::NOUN))
}

impl<S: Send + Sync, K: IdKind> FromRequestParts<S> for ApiPath<Id<K>> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| no_such::<K>())?;
        text.parse().map(ApiPath).map_err(|_| no_such::<K>())
    }
}

impl<S: Send + Sync, A: IdKind, B: IdKind> FromRequestParts<S> for ApiPath<(Id<A>, Id<B>)> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((a, b)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| no_such::<A>())?;
        let a = a.parse().map_err(|_| no_such::<A>())?;
        let b = b.parse().map_err(|_| no_such::<B>())?;
        Ok(ApiPath((a, b)))
    }
}

/// Who the route's authentication middleware proved the caller to be: a
/// wallet session (`SessionUser`), a bank app session
/// (`BankSessionCustomer`), a merchant key (`MerchantCaller`) or a signed
/// partner (`VerifiedPartner`). A route mounted without its middleware
/// answers `401 session_invalid` rather than trusting anything, never a 500.
#[derive(Debug, Clone)]
pub struct Authenticated<T>(pub T);

impl<S: Send + Sync, T: Clone + Send + Sync + 'static> FromRequestParts<S> for Authenticated<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<T>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(|| {
                tracing::error!(
                    caller = std::any::type_name::<T>(),
                    "a route ran without its authentication middleware"
                );
                ApiError::new(ErrorCode::SessionInvalid, "this route needs authentication")
            })
    }
}

/// A JSON request body, or a JSON response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime_lite::Mime>().ok())
        .is_some_and(|m| m.is_json())
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(&e))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Maps a failure to read the body: too large (413) or broken (400).
pub fn body_error(e: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return too_large();
        }
        source = err.source();
    }
    if e.to_string().contains("length limit") {
        return too_large();
    }
    ApiError::new(
        ErrorCode::InvalidRequest,
        "the request body could not be read",
    )
}

pub fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        format!(
            "the body is larger than this route accepts ({} bytes; photo and frame uploads {} bytes)",
            crate::MAX_BODY_BYTES,
            crate::routes::virtual_cards::MAX_UPLOAD_BODY_BYTES
        ),
    )
}

/// Parses JSON, telling a syntax error (400) from a shape error (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner_text = e.inner().to_string();
        // For an unknown field the last path segment is the unknown key: the
        // caller's text, which must not be echoed. Name its parent instead.
        let path = if inner_text.starts_with("unknown field") {
            let segments: Vec<String> = e.path().iter().map(|s| s.to_string()).collect();
            match segments.split_last() {
                Some((_, parent)) if !parent.is_empty() => parent.join("."),
                _ => ".".to_owned(),
            }
        } else {
            e.path().to_string()
        };
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::new(
                ErrorCode::InvalidRequest,
                describe_data_error(&path, &inner),
            ),
            _ => ApiError::new(
                ErrorCode::InvalidJson,
                format!(
                    "the body is not valid JSON (line {}, column {})",
                    inner.line(),
                    inner.column()
                ),
            ),
        }
    })
}

/// Describes a shape error by field and expectation, without the value sent.
fn describe_data_error(path: &str, e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde_json appends " at line L column C"; drop it.
    let text = text.split(" at line ").next().unwrap_or(&text);
    let field = if path == "." {
        "the body".to_owned()
    } else {
        format!("`{path}`")
    };
    if let Some(rest) = text.strip_prefix("missing field ") {
        return format!("missing field {rest}");
    }
    if text.starts_with("unknown field") {
        let expected = text
            .split_once(", expected ")
            .map(|(_, x)| x)
            .unwrap_or("none");
        return format!("{field}: unknown field; expected {expected}");
    }
    if text.starts_with("unknown variant") {
        let expected = text
            .split_once(", expected ")
            .map(|(_, x)| x)
            .unwrap_or("a known value");
        return format!("{field}: unknown value; expected {expected}");
    }
    if text.starts_with("invalid type")
        || text.starts_with("invalid value")
        || text.starts_with("invalid length")
    {
        let expected = text
            .split_once(", expected ")
            .map(|(_, x)| x)
            .unwrap_or("another value");
        return format!("{field}: expected {expected}");
    }
    // Our own validation messages (newtype constructors) never contain input.
    format!("{field}: {text}")
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A query string.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let text = e.into_inner().to_string();
                let message = match text.strip_prefix("missing field ") {
                    Some(rest) => format!("missing query parameter {rest}"),
                    None => format!("query parameter `{path}` is invalid"),
                };
                ApiError::new(ErrorCode::InvalidRequest, message)
            })
    }
}

/// Just enough media-type parsing to accept `application/json`,
/// `application/json; charset=utf-8` and `application/*+json`.
mod mime_lite {
    #[derive(Debug)]
    pub struct Mime(String);

    impl std::str::FromStr for Mime {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let essence = s.split(';').next().ok_or(())?.trim().to_ascii_lowercase();
            Ok(Mime(essence))
        }
    }

    impl Mime {
        pub fn is_json(&self) -> bool {
            self.0 == "application/json"
                || (self.0.starts_with("application/") && self.0.ends_with("+json"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        phone: String,
        kind: Kind,
        amount: i64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Phone,
        Pc,
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_422() {
        let e = parse_json::<Req>(b"{not json").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidJson);
        let e = parse_json::<Req>(br#"{"phone":"1","kind":"phone"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::InvalidRequest, "missing field `amount`")
        );
    }

    #[test]
    fn messages_never_echo_the_value() {
        let pan = "4111111111111111";
        let e = parse_json::<Req>(br#"{"phone":"1","kind":"4111111111111111","amount":1}"#)
            .unwrap_err();
        assert_eq!(e.message, "`kind`: unknown value; expected `phone` or `pc`");
        let e = parse_json::<Req>(br#"{"phone":13812345678,"kind":"pc","amount":1}"#).unwrap_err();
        assert_eq!(e.message, "`phone`: expected a string");
        let e =
            parse_json::<Req>(br#"{"phone":"1","kind":"pc","amount":1,"4111111111111111":"x"}"#)
                .unwrap_err();
        assert!(!e.message.contains(pan), "{}", e.message);
        assert!(
            e.message
                .contains("unknown field; expected one of `phone`, `kind`, `amount`"),
            "{}",
            e.message
        );
    }
}

/// A request's device proof (its `DPoP` header, RFC 9449) with what the
/// proof must name: the method, the path as the client sent it (before any
/// router nesting) and the `Host`. Two `DPoP` headers are refused.
#[derive(Debug, Clone)]
pub struct DeviceProofRequest {
    proof: Option<String>,
    method: String,
    path: String,
    host: Option<String>,
}

/// The request's device proof as the wallet checks it, borrowed from the
/// request (no copy on the session middleware's path). Two `DPoP`
/// headers are refused.
pub fn presented_proof(parts: &Parts) -> Result<PresentedProof<'_>, ApiError> {
    let mut proofs = parts
        .headers
        .get_all(paybridge_crypto::device_proof::PROOF_HEADER)
        .iter();
    let proof = match (proofs.next(), proofs.next()) {
        (None, _) => None,
        (Some(v), None) => Some(v.to_str().map_err(|_| {
            ApiError::new(ErrorCode::DpopProofInvalid, "the DPoP header is not text")
        })?),
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::DpopProofInvalid,
                "send one DPoP header, not several",
            ))
        }
    };
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    Ok(PresentedProof {
        proof,
        method: parts.method.as_str(),
        path: uri.path(),
        host: parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok()),
    })
}

impl DeviceProofRequest {
    pub fn of(parts: &Parts) -> Result<Self, ApiError> {
        let p = presented_proof(parts)?;
        Ok(Self {
            proof: p.proof.map(str::to_owned),
            method: p.method.to_owned(),
            path: p.path.to_owned(),
            host: p.host.map(str::to_owned),
        })
    }

    pub fn has_proof(&self) -> bool {
        self.proof.is_some()
    }

    pub fn presented(&self) -> PresentedProof<'_> {
        PresentedProof {
            proof: self.proof.as_deref(),
            method: &self.method,
            path: &self.path,
            host: self.host.as_deref(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DeviceProofRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::of(parts)
    }
}

/// The address the request came from (the TCP peer), when the server knows
/// it: the key of per-address budgets such as the SMS one.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
