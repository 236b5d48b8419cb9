//! The signed partner client. Each request is signed with our key for one
//! peer (the audience); each answer must carry the peer's signature over its
//! status, body and our request's nonce, or it is refused.

use std::sync::Arc;

use paybridge_api::ErrorBody;
use paybridge_crypto::signing::{
    self, SignatureError, SignedHeaders, SignedRequest, RESPONSE_SIGNATURE_HEADER,
};

/// The media type of every partner call's body (signed with it).
const JSON: &str = "application/json";
use paybridge_crypto::{PartnerKeyPair, PartnerPublicKey};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::Clock;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Who we are, whom we call, and how to check its answers.
#[derive(Debug, Clone)]
pub struct PartnerClientConfig {
    pub me: PartnerId,
    pub key: Arc<PartnerKeyPair>,
    pub peer: PartnerId,
    /// The peer's accepted public keys (several during a key rotation).
    pub peer_keys: Vec<PartnerPublicKey>,
    /// The peer's base URL including its API prefix, e.g.
    /// `http://127.0.0.1:8080/bank` for an issuer, `http://127.0.0.1:8080` for the wallet.
    pub base_url: String,
}

#[derive(Debug, Clone)]
pub struct PartnerClient {
    http: reqwest::Client,
    config: Arc<PartnerClientConfig>,
    clock: Arc<dyn Clock>,
}

/// Why a partner call failed.
#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    #[error("cannot reach partner {peer}")]
    Unreachable {
        peer: PartnerId,
        #[source]
        source: reqwest::Error,
    },
    #[error("the answer of partner {peer} is not validly signed: {reason}")]
    BadSignature {
        peer: PartnerId,
        reason: SignatureError,
    },
    #[error("partner {peer} refused the call: {status} {code}")]
    Refused {
        peer: PartnerId,
        status: u16,
        code: String,
        message: String,
    },
    #[error("the answer of partner {peer} cannot be read")]
    Decode {
        peer: PartnerId,
        #[source]
        source: serde_json::Error,
    },
}

impl PartnerError {
    /// Worth retrying later (the outbox does): the partner was unreachable or
    /// answered with a server error. A 4xx is final.
    pub fn is_transient(&self) -> bool {
        match self {
            PartnerError::Unreachable { .. } => true,
            PartnerError::Refused { status, .. } => {
                *status >= 500 || *status == 429 || *status == 409
            }
            PartnerError::BadSignature { .. } | PartnerError::Decode { .. } => false,
        }
    }
}

/// A verified answer: status and body bytes.
#[derive(Debug, Clone)]
pub struct PartnerResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl PartnerClient {
    pub fn new(config: PartnerClientConfig, clock: Arc<dyn Clock>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(crate::CONNECT_TIMEOUT)
            .timeout(crate::REQUEST_TIMEOUT)
            .build()
            .expect("the HTTP client builds with static settings");
        Self {
            http,
            config: Arc::new(config),
            clock,
        }
    }

    pub fn peer(&self) -> &PartnerId {
        &self.config.peer
    }

    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// Sends a signed request and verifies the signed answer, whatever its status.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        idempotency_key: Option<&str>,
    ) -> Result<PartnerResponse, PartnerError> {
        let peer = self.config.peer.clone();
        let url = format!("{}{}", self.config.base_url.trim_end_matches('/'), path);
        let parsed = reqwest::Url::parse(&url).map_err(|_| PartnerError::Refused {
            peer: peer.clone(),
            status: 0,
            code: "invalid_url".into(),
            message: format!("bad partner URL {url}"),
        })?;
        let path_and_query = match parsed.query() {
            Some(q) => format!("{}?{q}", parsed.path()),
            None => parsed.path().to_owned(),
        };
        let nonce = signing::new_nonce();
        let timestamp = self.clock.now().unix_timestamp();
        let authorization = SignedRequest {
            method: method.as_str(),
            path_and_query: &path_and_query,
            from: &self.config.me,
            to: &peer,
            timestamp,
            nonce: &nonce,
            headers: SignedHeaders {
                content_type: JSON,
                idempotency_key: idempotency_key.unwrap_or_default(),
            },
            body: &body,
        }
        .authorization(&self.config.key);

        let mut request = self
            .http
            .request(method, parsed)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::CONTENT_TYPE, JSON);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response =
            request
                .body(body)
                .send()
                .await
                .map_err(|source| PartnerError::Unreachable {
                    peer: peer.clone(),
                    source,
                })?;
        let status = response.status().as_u16();
        let signature = response
            .headers()
            .get(RESPONSE_SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|source| PartnerError::Unreachable {
                peer: peer.clone(),
                source,
            })?;
        signing::verify_response(
            signature.as_deref(),
            &peer,
            &self.config.peer_keys,
            status,
            &nonce,
            &bytes,
            self.clock.now().unix_timestamp(),
        )
        .map_err(|reason| PartnerError::BadSignature {
            peer: peer.clone(),
            reason,
        })?;
        Ok(PartnerResponse {
            status,
            body: bytes.to_vec(),
        })
    }

    /// A signed call whose 2xx answer is JSON of type `T`; any other status
    /// becomes [`PartnerError::Refused`] with the partner's error code.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<T, PartnerError> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).expect("request types serialize"),
            None => Vec::new(),
        };
        let response = self.send(method, path, bytes, idempotency_key).await?;
        let peer = || self.config.peer.clone();
        if (200..300).contains(&response.status) {
            serde_json::from_slice(&response.body).map_err(|source| PartnerError::Decode {
                peer: peer(),
                source,
            })
        } else {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&response.body) {
                Ok(e) => (e.error.code, e.error.message),
                Err(_) => ("unknown".into(), String::new()),
            };
            Err(PartnerError::Refused {
                peer: peer(),
                status: response.status,
                code,
                message,
            })
        }
    }

    /// Signed `GET`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, PartnerError> {
        self.call::<(), T>(reqwest::Method::GET, path, None, None)
            .await
    }
}

impl From<PartnerError> for paybridge_domain::ServiceError {
    /// A failed call to the other organisation, as our caller should see it:
    /// the partner is unreachable or answered badly (502), never a 500.
    fn from(e: PartnerError) -> Self {
        use paybridge_domain::ErrorCode;
        let code = match &e {
            PartnerError::Unreachable { .. } => ErrorCode::PartnerUnreachable,
            PartnerError::Refused { status, .. } if *status >= 500 => ErrorCode::PartnerUnreachable,
            _ => ErrorCode::PartnerResponseInvalid,
        };
        paybridge_domain::ServiceError::Unavailable {
            code,
            source: Box::new(e),
        }
    }
}
