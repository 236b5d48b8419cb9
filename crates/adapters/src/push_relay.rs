//! The OS push relay: the phone vendor's push server that can carry messages
//! to a phone (and, in flow F4, carry a gesture back). The sandbox relay keeps
//! what it was handed in a mailbox readable at `GET /v1/sandbox/push-relay`.

use std::sync::Arc;

use async_trait::async_trait;
use paybridge_domain::ids::RelayMessageId;
use paybridge_domain::Clock;
use paybridge_store::{RelayMessage, SandboxStore};

use crate::AdapterError;

/// Largest payload an OS push service accepts (APNs allows 4 KiB).
pub const RELAY_PAYLOAD_MAX_BYTES: usize = 4_096;

#[async_trait]
pub trait PushRelay: Send + Sync + std::fmt::Debug {
    async fn push(
        &self,
        device_token: &str,
        payload: &serde_json::Value,
    ) -> Result<RelayMessageId, AdapterError>;
}

#[derive(Debug, Clone)]
pub struct SandboxPushRelay {
    store: Arc<dyn SandboxStore>,
    clock: Arc<dyn Clock>,
}

impl SandboxPushRelay {
    pub fn new(store: Arc<dyn SandboxStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

#[async_trait]
impl PushRelay for SandboxPushRelay {
    async fn push(
        &self,
        device_token: &str,
        payload: &serde_json::Value,
    ) -> Result<RelayMessageId, AdapterError> {
        if payload.to_string().len() > RELAY_PAYLOAD_MAX_BYTES {
            return Err(AdapterError::Refused(format!(
                "payload larger than {RELAY_PAYLOAD_MAX_BYTES} bytes"
            )));
        }
        let message = RelayMessage {
            id: RelayMessageId::generate(),
            device_token: device_token.to_owned(),
            payload: payload.clone(),
            sent_at: self.clock.now(),
        };
        self.store.relay_record(&message).await?;
        tracing::info!(relay.id = %message.id, "sandbox push relayed");
        Ok(message.id)
    }
}
