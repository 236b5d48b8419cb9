//! The sandbox parties as a service: what their HTTP endpoints call. Exists
//! only when the sandbox is on.

use std::sync::Arc;

use paybridge_api::sandbox::{RelayMessageView, SmsMessageView};
use paybridge_api::wallet::{PaymentRequestBody, RelayedGesture};
use paybridge_client::{PartnerClient, PartnerError};
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::{ErrorCode, ServiceError};
use paybridge_store::SandboxStore;

use crate::push_relay::PushRelay;
use crate::sms::SmsGateway;

/// Default and largest page of a mailbox listing.
pub const MAILBOX_DEFAULT_LIMIT: u32 = 20;
pub const MAILBOX_MAX_LIMIT: u32 = 100;
/// Longest device token the relay accepts (APNs tokens are 64 hex characters,
/// FCM tokens up to about 200).
pub const DEVICE_TOKEN_MAX_LEN: usize = 256;

#[derive(Debug, Clone)]
pub struct SandboxParties {
    pub store: Arc<dyn SandboxStore>,
    pub sms: Arc<dyn SmsGateway>,
    pub relay: Arc<dyn PushRelay>,
    /// The sandbox relay's signed client to the wallet of this process
    /// (relays gestures, flow F4); `None` without a wallet role here.
    pub relay_client: Option<PartnerClient>,
}

fn page(limit: Option<u32>) -> Result<i64, ServiceError> {
    match limit.unwrap_or(MAILBOX_DEFAULT_LIMIT) {
        n @ 1..=MAILBOX_MAX_LIMIT => Ok(i64::from(n)),
        _ => Err(ServiceError::rejected(
            ErrorCode::InvalidRequest,
            format!("`limit` must be between 1 and {MAILBOX_MAX_LIMIT}"),
        )),
    }
}

fn phone(text: &str) -> Result<PhoneNumber, ServiceError> {
    text.parse()
        .map_err(|e: paybridge_domain::phone::InvalidPhoneNumber| {
            ServiceError::rejected(ErrorCode::InvalidRequest, format!("`phone`: {e}"))
        })
}

impl SandboxParties {
    /// The SMS mailbox of one phone, newest first.
    pub async fn sms_inbox(
        &self,
        phone_text: &str,
        limit: Option<u32>,
    ) -> Result<Vec<SmsMessageView>, ServiceError> {
        let phone = phone(phone_text)?;
        let messages = self
            .store
            .sms_for_phone(phone.as_str(), page(limit)?)
            .await?;
        Ok(messages
            .into_iter()
            .map(|m| SmsMessageView {
                id: m.id.to_string(),
                phone: m.phone,
                body: m.body,
                sent_at: paybridge_api::rfc3339(m.sent_at),
            })
            .collect())
    }

    /// Sends a text through the sandbox gateway.
    pub async fn send_sms(
        &self,
        phone_text: &str,
        body: &str,
    ) -> Result<SmsMessageView, ServiceError> {
        let phone = phone(phone_text)?;
        if body.is_empty() || body.chars().count() > crate::sms::SMS_MAX_CHARS {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                format!(
                    "`body` must be 1 to {} characters",
                    crate::sms::SMS_MAX_CHARS
                ),
            ));
        }
        let id = self
            .sms
            .send(phone.as_str(), body)
            .await
            .map_err(adapter_error)?;
        let sent = self
            .store
            .sms_for_phone(phone.as_str(), MAILBOX_MAX_LIMIT.into())
            .await?;
        let m = sent
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ServiceError::Internal("sent SMS not found in the mailbox".into()))?;
        Ok(SmsMessageView {
            id: m.id.to_string(),
            phone: m.phone,
            body: m.body,
            sent_at: paybridge_api::rfc3339(m.sent_at),
        })
    }

    /// What the OS push relay was handed for one device token, newest first.
    pub async fn relay_messages(
        &self,
        device_token: &str,
        limit: Option<u32>,
    ) -> Result<Vec<RelayMessageView>, ServiceError> {
        if device_token.is_empty() || device_token.len() > DEVICE_TOKEN_MAX_LEN {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                format!("`device_token` must be 1 to {DEVICE_TOKEN_MAX_LEN} characters"),
            ));
        }
        let messages = self
            .store
            .relay_for_device(device_token, page(limit)?)
            .await?;
        Ok(messages
            .into_iter()
            .map(|m| RelayMessageView {
                id: m.id.to_string(),
                device_token: m.device_token,
                payload: m.payload,
                sent_at: paybridge_api::rfc3339(m.sent_at),
            })
            .collect())
    }
}

impl SandboxParties {
    /// The OS push relay carries a gesture made on a phone to the wallet,
    /// as the vendor's server would: a signed call to `/v1/relay/gestures`.
    pub async fn relay_gesture(
        &self,
        gesture: &RelayedGesture,
    ) -> Result<PaymentRequestBody, ServiceError> {
        let client = self.relay_client.as_ref().ok_or_else(|| {
            ServiceError::rejected(
                ErrorCode::RouteNotFound,
                "no wallet runs in this process for the sandbox relay to reach",
            )
        })?;
        match client
            .call(
                reqwest::Method::POST,
                "/v1/relay/gestures",
                Some(gesture),
                None,
            )
            .await
        {
            Ok(body) => Ok(body),
            // The wallet's refusal is the answer (its code and message).
            Err(PartnerError::Refused {
                status,
                code,
                message,
                ..
            }) if status < 500 => Err(ServiceError::rejected(
                ErrorCode::from_wire(&code).unwrap_or(ErrorCode::PartnerResponseInvalid),
                message,
            )),
            Err(e) => Err(e.into()),
        }
    }
}

fn adapter_error(e: crate::AdapterError) -> ServiceError {
    match e {
        crate::AdapterError::Refused(m) => ServiceError::rejected(ErrorCode::InvalidRequest, m),
        crate::AdapterError::Store(s) => s.into(),
        crate::AdapterError::Unavailable(source) => ServiceError::Unavailable {
            code: ErrorCode::PartnerUnreachable,
            source,
        },
    }
}
