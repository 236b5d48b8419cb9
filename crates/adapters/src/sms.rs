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
