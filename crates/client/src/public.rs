//! Client of the public API (apps, devices, demos, tests). Errors come back as
//! the server's stable code and message.

use paybridge_api::ErrorBody;
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
    #[error("cannot read the answer")]
    Decode(#[source] serde_json::Error),
}

impl ApiError {
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl PublicClient {
    pub fn new(base_url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(crate::CONNECT_TIMEOUT)
            .timeout(crate::REQUEST_TIMEOUT)
            .build()
            .expect("the HTTP client builds with static settings");
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            bearer: None,
        }
    }

    /// The same client, authenticated with a bearer session token.
    pub fn with_bearer(&self, token: impl Into<String>) -> Self {
        Self {
            bearer: Some(token.into()),
            ..self.clone()
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send::<(), T>(reqwest::Method::GET, path, None, None)
            .await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotency_key: Option<&str>,
    ) -> Result<T, ApiError> {
        self.send(reqwest::Method::POST, path, Some(body), idempotency_key)
            .await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |source| ApiError::Unreachable {
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&bytes).map_err(ApiError::Decode)
        } else {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => (e.error.code, e.error.message),
                Err(_) => (
                    "unknown".into(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ),
            };
            Err(ApiError::Refused {
                status,
                code,
                message,
            })
        }
    }
}
