//! The SMS gateway. The sandbox gateway "delivers" by writing to a mailbox in
//! the store that `GET /v1/sandbox/sms?phone=…` reads: the demo's and the
//! tests' stand-in for the user's phone.

use std::sync::Arc;

use async_trait::async_trait;
use paybridge_domain::ids::SmsId;
use paybridge_domain::Clock;
use paybridge_store::{SandboxStore, SmsMessage};

use crate::AdapterError;

/// Longest message we send: one concatenated SMS of 70 UCS-2 characters × 4.
pub const SMS_MAX_CHARS: usize = 280;

#[async_trait]
pub trait SmsGateway: Send + Sync + std::fmt::Debug {
    /// Sends `body` to `phone`; returns the gateway's message id.
    async fn send(&self, phone: &str, body: &str) -> Result<SmsId, AdapterError>;
}

/// Writes messages to the sandbox mailbox.
#[derive(Debug, Clone)]
pub struct SandboxSmsGateway {
    store: Arc<dyn SandboxStore>,
    clock: Arc<dyn Clock>,
}

impl SandboxSmsGateway {
    pub fn new(store: Arc<dyn SandboxStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

#[async_trait]
impl SmsGateway for SandboxSmsGateway {
    async fn send(&self, phone: &str, body: &str) -> Result<SmsId, AdapterError> {
        if body.chars().count() > SMS_MAX_CHARS {
            return Err(AdapterError::Refused(format!(
                "message longer than {SMS_MAX_CHARS} characters"
            )));
        }
        let message = SmsMessage {
            id: SmsId::generate(),
            phone: phone.to_owned(),
            body: body.to_owned(),
            sent_at: self.clock.now(),
        };
        self.store.sms_record(&message).await?;
        // Log the id only: the body may hold an OTP and the phone is personal data.
        tracing::info!(sms.id = %message.id, "sandbox SMS delivered");
        Ok(message.id)
    }
}

/// Where a real SMS provider takes messages: `POST <url>` with
/// `Authorization: Bearer <token>` and `{"to", "text", "reference"}`.
#[derive(Debug, Clone)]
pub struct HttpSmsConfig {
    pub url: url::Url,
    pub token: paybridge_crypto::Secret<String>,
}

/// How long the provider may take to accept a message.
pub const SMS_GATEWAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A real SMS provider over HTTP (the shape most of them take: a JSON POST
/// with a bearer key). A 2xx means accepted; a 4xx is a refusal (a bad
/// number, a bad key), anything else or no answer is the provider being
/// unavailable, so the caller answers 503 and the user may try again.
#[derive(Debug, Clone)]
pub struct HttpSmsGateway {
    config: HttpSmsConfig,
    client: reqwest::Client,
}

impl HttpSmsGateway {
    pub fn new(config: HttpSmsConfig) -> Self {
        Self {
            config,
            client: reqwest::Client::builder()
                .timeout(SMS_GATEWAY_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a plain HTTP client builds"),
        }
    }
}

#[async_trait]
impl SmsGateway for HttpSmsGateway {
    async fn send(&self, phone: &str, body: &str) -> Result<SmsId, AdapterError> {
        if body.chars().count() > SMS_MAX_CHARS {
            return Err(AdapterError::Refused(format!(
                "message longer than {SMS_MAX_CHARS} characters"
            )));
        }
        let id = SmsId::generate();
        let answer = self
            .client
            .post(self.config.url.clone())
            .bearer_auth(self.config.token.expose())
            .json(&serde_json::json!({"to": phone, "text": body, "reference": id.as_str()}))
            .send()
            .await
            .map_err(|e| AdapterError::Unavailable(Box::new(e)))?;
        let status = answer.status();
        if status.is_success() {
            // The id only: the body holds an OTP and the phone is personal data.
            tracing::info!(sms.id = %id, "SMS accepted by the provider");
            Ok(id)
        } else if status.is_client_error() {
            Err(AdapterError::Refused(format!(
                "the SMS provider answered {status}"
            )))
        } else {
            Err(AdapterError::Unavailable(
                format!("the SMS provider answered {status}").into(),
            ))
        }
    }
}
