//! The transport of the public API (apps, devices, demos, tests): JSON in
//! and out, an optional bearer credential, an `Idempotency-Key` on every
//! POST, and errors as the server's stable code and message. The typed
//! facades ([`crate::WalletApp`], [`crate::MerchantApi`], [`crate::BankApp`],
//! [`crate::SandboxApi`]) are written on it, one method per endpoint.

use paybridge_api::ErrorBody;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct PublicClient {
    http: reqwest::Client,
    base_url: String,
    bearer: Option<String>,
}

/// A failed public API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach paybridge at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot read the answer: {0}")]
    Decode(#[source] serde_json::Error),
}

impl ApiError {
    /// The server's stable error code, when it refused the call.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A fresh idempotency key: each typed call is one intent; a caller that
/// retries one intent passes its own key to [`PublicClient::post_with_key`].
pub fn fresh_idempotency_key() -> String {
    format!("pbc-{}", uuid::Uuid::new_v4().simple())
}

impl PublicClient {
    pub fn new(base_url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(crate::CONNECT_TIMEOUT)
            .timeout(crate::REQUEST_TIMEOUT)
            .build()
            .expect("the HTTP client builds with static settings");
        Self::with_http(http, base_url)
    }

    /// A client on an existing connection pool (a long-lived push channel
    /// needs one without the whole-request timeout).
    pub fn with_http(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            bearer: None,
        }
    }

    /// The same client, authenticated with a bearer credential (a session
    /// token, a bank-app session or a merchant API key).
    pub fn with_bearer(&self, token: impl Into<String>) -> Self {
        Self {
            bearer: Some(token.into()),
            ..self.clone()
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn bearer(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send::<(), T>(Method::GET, path, None, None).await
    }

    pub async fn get_query<Q: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ApiError> {
        let request = self.request(Method::GET, path).query(query);
        self.finish(path, request).await
    }

    /// POST with a fresh idempotency key.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.post_with_key(path, body, &fresh_idempotency_key())
            .await
    }

    /// POST without a body, with a fresh idempotency key.
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let key = fresh_idempotency_key();
        self.send::<(), T>(Method::POST, path, None, Some(&key))
            .await
    }

    /// POST under the caller's idempotency key: a retry of one intent.
    pub async fn post_with_key<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotency_key: &str,
    ) -> Result<T, ApiError> {
        self.send(Method::POST, path, Some(body), Some(idempotency_key))
            .await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send(Method::PUT, path, Some(body), None).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send(Method::PATCH, path, Some(body), None).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send::<(), T>(Method::DELETE, path, None, None).await
    }

    /// A GET whose answer is read as a stream (a device's push channel):
    /// the response once its status is a success, else the server's error.
    pub async fn open_stream(&self, path: &str) -> Result<reqwest::Response, ApiError> {
        let url = self.url(path);
        let response = self
            .request(Method::GET, path)
            .header("accept", "text/event-stream")
            .timeout(crate::STREAM_TIMEOUT)
            .send()
            .await
            .map_err(|source| ApiError::Unreachable {
                url: url.clone(),
                source,
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ApiError::Unreachable { url, source })?;
        Err(refusal(status, &bytes))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<T, ApiError> {
        let mut request = self.request(method, path);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.finish(path, request).await
    }

    async fn finish<T: DeserializeOwned>(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let unreachable = |source| ApiError::Unreachable {
            url: self.url(path),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !(200..300).contains(&status) {
            return Err(refusal(status, &bytes));
        }
        // A 204 has no body; `()` (and any `Option`) reads it as `null`.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(ApiError::Decode)
    }
}

fn refusal(status: u16, bytes: &[u8]) -> ApiError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => (
            "unknown".into(),
            String::from_utf8_lossy(bytes).into_owned(),
        ),
    };
    ApiError::Refused {
        status,
        code,
        message,
    }
}
