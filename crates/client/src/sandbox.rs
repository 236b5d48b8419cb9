//! The sandbox's outside parties (the SMS gateway's outbox, the OS push
//! relay) and the system endpoints, one method per endpoint.

use paybridge_api::sandbox::{RelayList, RelayQuery, SendSms, SmsList, SmsMessageView, SmsQuery};
use paybridge_api::system::Health;
use paybridge_api::wallet::{PaymentRequestBody, RelayedGesture};

use crate::{ApiError, PublicClient};

#[derive(Debug, Clone)]
pub struct SandboxApi {
    client: PublicClient,
}

type Answer<T> = Result<T, ApiError>;

impl SandboxApi {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::on(PublicClient::new(base_url))
    }

    pub fn on(client: PublicClient) -> Self {
        Self { client }
    }

    /// `GET /healthz`
    pub async fn health(&self) -> Answer<Health> {
        self.client.get("/healthz").await
    }

    /// `GET /v1/sandbox/sms`: the messages the sandbox gateway sent to a phone.
    pub async fn sms(&self, query: &SmsQuery) -> Answer<SmsList> {
        self.client.get_query("/v1/sandbox/sms", query).await
    }

    /// `POST /v1/sandbox/sms`
    pub async fn send_sms(&self, body: &SendSms) -> Answer<SmsMessageView> {
        self.client.post("/v1/sandbox/sms", body).await
    }

    /// `GET /v1/sandbox/push-relay`: what the OS push relay delivered to a device token.
    pub async fn push_relay(&self, query: &RelayQuery) -> Answer<RelayList> {
        self.client.get_query("/v1/sandbox/push-relay", query).await
    }

    /// `POST /v1/sandbox/push-relay/gestures`: a gesture made on a lock-screen prompt.
    pub async fn relay_gesture(&self, body: &RelayedGesture) -> Answer<PaymentRequestBody> {
        self.client
            .post("/v1/sandbox/push-relay/gestures", body)
            .await
    }
}

/// The first run of exactly six digits in a text message.
pub fn six_digits(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .map(str::to_owned)
}
