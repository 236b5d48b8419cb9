//! The SMS inbox of one phone number: what the sandbox gateway sent to it.

use std::time::Duration;

use paybridge_client::SandboxApi;

use crate::{DeviceError, DeviceResult};

/// How long a text may take to arrive: sends are committed with the step
/// that causes them, so one retry after a short pause covers a slow store.
const ARRIVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct SmsInbox {
    sandbox: SandboxApi,
    number: String,
}

impl SmsInbox {
    pub fn new(server_url: &str, number: &str) -> Self {
        Self {
            sandbox: SandboxApi::new(server_url),
            number: number.to_owned(),
        }
    }

    /// The newest text message's body.
    pub async fn latest(&self) -> DeviceResult<String> {
        for attempt in 0..2 {
            let inbox = self
                .sandbox
                .sms(&paybridge_api::sandbox::SmsQuery {
                    phone: self.number.clone(),
                    limit: Some(1),
                })
                .await?;
            if let Some(m) = inbox.messages.into_iter().next() {
                return Ok(m.body);
            }
            if attempt == 0 {
                tokio::time::sleep(ARRIVAL).await;
            }
        }
        Err(DeviceError::Unexpected(format!(
            "no text message arrived for {}",
            self.number
        )))
    }

    /// The six-digit code in the newest text message.
    pub async fn latest_code(&self) -> DeviceResult<String> {
        let body = self.latest().await?;
        paybridge_client::sandbox::six_digits(&body)
            .ok_or_else(|| DeviceError::Unexpected(format!("no code in \"{body}\"")))
    }
}
