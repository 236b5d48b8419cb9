//! The transport of the public API (apps, devices, demos, tests): JSON in
//! and out, an optional bearer credential, an `Idempotency-Key` on every
//! POST, and errors as the server's stable code and message. The typed
//! facades ([`crate::WalletApp`], [`crate::MerchantApi`], [`crate::BankApp`],
//! [`crate::SandboxApi`]) are written on it, one method per endpoint.
//!
//! A client on a device ([`PublicClient::with_device`]) signs every request
//! with the device's key (a `DPoP` proof, RFC 9449) and sends its session
//! token as `Authorization: DPoP <token>`. It keeps the server's latest
//! nonce from each answer's `DPoP-Nonce`, and when the server asks for a
//! fresh one (`401 use_dpop_nonce`) it signs again and resends once, under
//! the same idempotency key.

use std::sync::{Arc, Mutex};

use paybridge_api::ErrorBody;
use paybridge_crypto::device_proof::{
    DeviceJwk, DeviceKey, ProofTarget, NONCE_HEADER, PROOF_HEADER,
};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct PublicClient {
    http: reqwest::Client,
    base_url: String,
    bearer: Option<String>,
    device: Option<Arc<DeviceSigner>>,
}

/// A device's key pair and the server's latest nonce: what a device app
/// keeps to sign its requests.
#[derive(Debug)]
pub struct DeviceSigner {
    key: DeviceKey,
    nonce: Mutex<Option<String>>,
}

impl DeviceSigner {
    /// A device with a key pair made now.
    pub fn generate() -> Arc<Self> {
        Arc::new(Self {
            key: DeviceKey::generate(),
            nonce: Mutex::new(None),
        })
    }

    /// The public key the device registers.
    pub fn public_jwk(&self) -> DeviceJwk {
        self.key.public_jwk()
    }

    /// Signs a flow F3 message (a compact JWS of kind `typ`) with the
    /// device's key: its payload is `claims` in JSON.
    pub fn sign_message<T: Serialize>(
        &self,
        typ: paybridge_crypto::signed_message::MessageType,
        claims: &T,
    ) -> String {
        let payload = serde_json::to_vec(claims).expect("claims are plain data and serialise");
        self.key.sign_message(typ, &payload)
    }

    /// A proof for one request, with the latest nonce the server gave.
    pub fn prove(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        let nonce = self.nonce.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.key.prove(&ProofTarget {
            method,
            url,
            access_token,
            nonce: nonce.as_deref(),
            iat: time::OffsetDateTime::now_utc().unix_timestamp(),
        })
    }

    /// A proof signed with a nonce the caller got itself (a test that calls
    /// the services directly).
    pub fn prove_with_nonce(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: &str,
    ) -> String {
        self.key.prove(&ProofTarget {
            method,
            url,
            access_token,
            nonce: Some(nonce),
            iat: time::OffsetDateTime::now_utc().unix_timestamp(),
        })
    }

    fn remember_nonce(&self, response: &reqwest::Response) {
        if let Some(n) = response
            .headers()
            .get(NONCE_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            *self.nonce.lock().unwrap_or_else(|p| p.into_inner()) = Some(n.to_owned());
        }
    }
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
            device: None,
        }
    }

    /// The same client on a device: every request carries a proof by the
    /// device's key.
    pub fn with_device(&self, device: Arc<DeviceSigner>) -> Self {
        Self {
            device: Some(device),
            ..self.clone()
        }
    }

    pub fn device(&self) -> Option<&Arc<DeviceSigner>> {
        self.device.as_ref()
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
        self.finish(path, || self.request(Method::GET, path).query(query))
            .await
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
        let response = self
            .exchange(path, || {
                self.request(Method::GET, path)
                    .header("accept", "text/event-stream")
                    .timeout(crate::STREAM_TIMEOUT)
            })
            .await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| self.unreachable(path, source))?;
        Err(refusal(status, &bytes))
    }

    /// Any call, its answer read whatever the status: `(status, JSON)`,
    /// an empty body as `null` and a body that is not JSON as a string.
    /// For tests and tools that look at refusals as much as at answers.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, serde_json::Value), ApiError> {
        let response = self
            .exchange(path, || {
                self.with_body(method.clone(), path, body, idempotency_key)
            })
            .await?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| self.unreachable(path, e))?;
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        Ok((status, json))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn unreachable(&self, path: &str, source: reqwest::Error) -> ApiError {
        ApiError::Unreachable {
            url: self.url(path),
            source,
        }
    }

    /// A request with the credential and, on a device, a fresh proof.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = self.url(path);
        let mut request = self.http.request(method.clone(), &url);
        match (&self.device, &self.bearer) {
            (Some(device), token) => {
                request = request.header(
                    PROOF_HEADER,
                    device.prove(method.as_str(), &url, token.as_deref()),
                );
                if let Some(token) = token {
                    request = request.header("authorization", format!("DPoP {token}"));
                }
            }
            (None, Some(token)) => request = request.bearer_auth(token),
            (None, None) => {}
        }
        request
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<T, ApiError> {
        self.finish(path, || {
            self.with_body(method.clone(), path, body, idempotency_key)
        })
        .await
    }

    /// A request with a JSON body and an idempotency key, when given.
    fn with_body<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self.request(method, path);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request
    }

    /// Sends the request `build` makes. On a device, an answer asking for a
    /// fresh nonce (`401 use_dpop_nonce`) is retried once with a new proof.
    async fn exchange(
        &self,
        path: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        let response = build()
            .send()
            .await
            .map_err(|e| self.unreachable(path, e))?;
        let Some(device) = &self.device else {
            return Ok(response);
        };
        device.remember_nonce(&response);
        let asks_for_nonce = response.status() == reqwest::StatusCode::UNAUTHORIZED
            && response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("use_dpop_nonce"));
        if !asks_for_nonce {
            return Ok(response);
        }
        let again = build()
            .send()
            .await
            .map_err(|e| self.unreachable(path, e))?;
        device.remember_nonce(&again);
        Ok(again)
    }

    async fn finish<T: DeserializeOwned>(
        &self,
        path: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let response = self.exchange(path, build).await?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.unreachable(path, e))?;
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
