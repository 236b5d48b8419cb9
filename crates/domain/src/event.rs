//! Outbox events. Every state change writes its events in the same transaction
//! as the change itself; a dispatcher then delivers each to its destination at
//! least once. The event id is stable across retries so receivers de-duplicate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{DeviceId, EventId, MerchantId};
use crate::partner::PartnerId;

/// Longest topic name, e.g. `binding.activated`.
pub const TOPIC_MAX_LEN: usize = 64;

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// The other party's signed callback endpoint.
    Partner(PartnerId),
    /// A device's push channel.
    Device(DeviceId),
    /// A merchant's webhook endpoint.
    Merchant(MerchantId),
    /// Kept in the outbox for readers (audit, risk) but delivered nowhere.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event destination")]
pub struct InvalidDestination;

impl fmt::Display for Destination {
    /// Storage form: `partner:demo-bank`, `device:dev_…`, `internal`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Partner(p) => write!(f, "partner:{p}"),
            Destination::Device(d) => write!(f, "device:{d}"),
            Destination::Merchant(m) => write!(f, "merchant:{m}"),
            Destination::Internal => f.write_str("internal"),
        }
    }
}

impl FromStr for Destination {
    type Err = InvalidDestination;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "internal" {
            return Ok(Destination::Internal);
        }
        match s.split_once(':') {
            Some(("partner", p)) => p
                .parse()
                .map(Destination::Partner)
                .map_err(|_| InvalidDestination),
            Some(("device", d)) => d
                .parse()
                .map(Destination::Device)
                .map_err(|_| InvalidDestination),
            Some(("merchant", m)) => m
                .parse()
                .map(Destination::Merchant)
                .map_err(|_| InvalidDestination),
            _ => Err(InvalidDestination),
        }
    }
}

/// A dotted lowercase topic such as `binding.activated`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Topic(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a topic is dotted lowercase words, at most 64 characters")]
pub struct InvalidTopic;

impl Topic {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Topic {
    type Err = InvalidTopic;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= TOPIC_MAX_LEN
            && s.split('.')
                .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidTopic)
        }
    }
}

impl TryFrom<String> for Topic {
    type Error = InvalidTopic;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
impl From<Topic> for String {
    fn from(t: Topic) -> String {
        t.0
    }
}
impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every topic paybridge writes, in one place: the wire name of each is
/// [`EventTopic::as_str`] (an exhaustive match, so a new topic has one).
/// Partners and webhooks receive these names; they are part of the API and
/// are never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum EventTopic {
    AccountIdentitySet,
    AccountPaymentPasswordSet,
    AccountRegistered,
    AccountSecurityAuthenticated,

    BindingActivated,
    BindingCancelled,
    BindingClaimed,
    BindingCreated,
    BindingExpired,
    BindingFailed,
    BindingOffered,
    BindingOtpSent,
    BindingUnbound,

    CardApplicationChanged,
    CardDebited,
    CardFunded,
    CardRefunded,
    CardTokenChanged,

    DeviceCredentialRegistered,
    DevicePairingApproved,
    DevicePairingClaimed,
    DevicePairingCollected,
    DevicePairingDenied,
    DevicePairingStarted,
    DeviceRegistered,
    DeviceRevoked,
    DeviceSecureElementKeyRegistered,

    OrderCancelled,
    OrderCreated,
    OrderExpired,
    OrderPaid,
    OrderRefunded,

    PaymentRequestChanged,
    PaymentRequestDeclined,
    PaymentRequestExpired,
    PaymentRequestGestureReceived,
    PaymentRequestGestureRequested,
    PaymentRequestPaid,
    PaymentRequestPresented,
    PaymentRequestScanRequested,
    PaymentRequestScanned,
    PaymentRequestSuperseded,
    PaymentRequestWithdrawn,

    RefundFailed,
    RefundStarted,

    RiskAuthenticatorCounterRegressed,
    RiskBindingIdentityMismatch,
    RiskDeviceEnvironmentRefused,
    RiskPaymentPasswordWrong,

    SecurityAuthFailed,
    SecurityAuthIdentityConfirmed,
    SecurityAuthIdentityWrong,
    SecurityAuthOtpSent,
    SecurityAuthOtpVerified,
    SecurityAuthPassed,

    TransferAgreementChanged,
    TransferAgreementCreated,
    TransferAgreementResumed,
    TransferAgreementRevoked,
    TransferAgreementSuspended,

    TransferPaymentChanged,
    TransferPaymentExecutionTask,
    TransferPaymentMessage,
    TransferPaymentResult,
}

impl EventTopic {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventTopic::AccountIdentitySet => "account.identity_set",
            EventTopic::AccountPaymentPasswordSet => "account.payment_password_set",
            EventTopic::AccountRegistered => "account.registered",
            EventTopic::AccountSecurityAuthenticated => "account.security_authenticated",
            EventTopic::BindingActivated => "binding.activated",
            EventTopic::BindingCancelled => "binding.cancelled",
            EventTopic::BindingClaimed => "binding.claimed",
            EventTopic::BindingCreated => "binding.created",
            EventTopic::BindingExpired => "binding.expired",
            EventTopic::BindingFailed => "binding.failed",
            EventTopic::BindingOffered => "binding.offered",
            EventTopic::BindingOtpSent => "binding.otp_sent",
            EventTopic::BindingUnbound => "binding.unbound",
            EventTopic::CardApplicationChanged => "card_application.changed",
            EventTopic::CardDebited => "card.debited",
            EventTopic::CardTokenChanged => "card_token.changed",
            EventTopic::CardFunded => "card.funded",
            EventTopic::CardRefunded => "card.refunded",
            EventTopic::DeviceCredentialRegistered => "device.credential_registered",
            EventTopic::DevicePairingApproved => "device_pairing.approved",
            EventTopic::DevicePairingClaimed => "device_pairing.claimed",
            EventTopic::DevicePairingCollected => "device_pairing.collected",
            EventTopic::DevicePairingDenied => "device_pairing.denied",
            EventTopic::DevicePairingStarted => "device_pairing.started",
            EventTopic::DeviceRegistered => "device.registered",
            EventTopic::DeviceRevoked => "device.revoked",
            EventTopic::DeviceSecureElementKeyRegistered => "device.secure_element_key_registered",
            EventTopic::OrderCancelled => "order.cancelled",
            EventTopic::OrderCreated => "order.created",
            EventTopic::OrderExpired => "order.expired",
            EventTopic::OrderPaid => "order.paid",
            EventTopic::OrderRefunded => "order.refunded",
            EventTopic::PaymentRequestChanged => "payment_request.changed",
            EventTopic::PaymentRequestDeclined => "payment_request.declined",
            EventTopic::PaymentRequestExpired => "payment_request.expired",
            EventTopic::PaymentRequestGestureReceived => "payment_request.gesture_received",
            EventTopic::PaymentRequestGestureRequested => "payment_request.gesture_requested",
            EventTopic::PaymentRequestPaid => "payment_request.paid",
            EventTopic::PaymentRequestPresented => "payment_request.presented",
            EventTopic::PaymentRequestScanRequested => "payment_request.scan_requested",
            EventTopic::PaymentRequestScanned => "payment_request.scanned",
            EventTopic::PaymentRequestSuperseded => "payment_request.superseded",
            EventTopic::PaymentRequestWithdrawn => "payment_request.withdrawn",
            EventTopic::RefundFailed => "refund.failed",
            EventTopic::RefundStarted => "refund.started",
            EventTopic::RiskAuthenticatorCounterRegressed => "risk.authenticator_counter_regressed",
            EventTopic::RiskBindingIdentityMismatch => "risk.binding_identity_mismatch",
            EventTopic::RiskDeviceEnvironmentRefused => "risk.device_environment_refused",
            EventTopic::RiskPaymentPasswordWrong => "risk.payment_password_wrong",
            EventTopic::SecurityAuthFailed => "security_auth.failed",
            EventTopic::SecurityAuthIdentityConfirmed => "security_auth.identity_confirmed",
            EventTopic::SecurityAuthIdentityWrong => "security_auth.identity_wrong",
            EventTopic::SecurityAuthOtpSent => "security_auth.otp_sent",
            EventTopic::SecurityAuthOtpVerified => "security_auth.otp_verified",
            EventTopic::SecurityAuthPassed => "security_auth.passed",
            EventTopic::TransferAgreementChanged => "transfer_agreement.changed",
            EventTopic::TransferAgreementCreated => "transfer_agreement.created",
            EventTopic::TransferAgreementResumed => "transfer_agreement.resumed",
            EventTopic::TransferAgreementRevoked => "transfer_agreement.revoked",
            EventTopic::TransferAgreementSuspended => "transfer_agreement.suspended",
            EventTopic::TransferPaymentChanged => "transfer_payment.changed",
            EventTopic::TransferPaymentExecutionTask => "transfer_payment.execution_task",
            EventTopic::TransferPaymentMessage => "transfer_payment.message",
            EventTopic::TransferPaymentResult => "transfer_payment.result",
        }
    }
}

impl From<EventTopic> for Topic {
    fn from(t: EventTopic) -> Topic {
        Topic(t.as_str().to_owned())
    }
}

impl PartialEq<EventTopic> for Topic {
    fn eq(&self, other: &EventTopic) -> bool {
        self.0 == other.as_str()
    }
}

impl fmt::Display for EventTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to be written to the outbox with a state change.
///
/// `payload` must hold only what the destination may see: masked card data,
/// ids, amounts. Never a PAN, ID number, phone number or OTP.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: EventId,
    pub topic: Topic,
    pub destination: Destination,
    pub payload: serde_json::Value,
    pub occurred_at: Timestamp,
}

impl NewEvent {
    /// An event of one of our topics.
    pub fn of(
        topic: EventTopic,
        destination: Destination,
        payload: serde_json::Value,
        occurred_at: Timestamp,
    ) -> Self {
        Self::new(topic.into(), destination, payload, occurred_at)
    }

    pub fn new(
        topic: Topic,
        destination: Destination,
        payload: serde_json::Value,
        occurred_at: Timestamp,
    ) -> Self {
        Self {
            id: EventId::generate(),
            topic,
            destination,
            payload,
            occurred_at,
        }
    }
}

/// Delivery policy: exponential backoff from [`RETRY_BASE_SECS`], doubling up
/// to [`RETRY_MAX_DELAY_SECS`], until [`MAX_DELIVERY_ATTEMPTS`]. With these
/// numbers an event is retried for a little over three days before it is
/// parked as dead, long enough to ride out a partner's weekend outage.
pub const RETRY_BASE_SECS: i64 = 2;
/// Longest pause between two attempts: one hour.
pub const RETRY_MAX_DELAY_SECS: i64 = 3_600;
/// Attempts before an event is parked as dead (and counted in metrics).
pub const MAX_DELIVERY_ATTEMPTS: i64 = 85;

/// How long to wait after `attempts` failed deliveries, before jitter.
pub fn retry_delay_secs(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 30) as u32;
    RETRY_BASE_SECS
        .saturating_mul(1i64 << exp)
        .min(RETRY_MAX_DELAY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_is_a_valid_unique_topic() {
        let mut seen = std::collections::HashSet::new();
        for t in <EventTopic as strum::IntoEnumIterator>::iter() {
            assert!(t.as_str().parse::<Topic>().is_ok(), "{t}");
            assert!(seen.insert(t.as_str()), "{t} twice");
        }
    }

    #[test]
    fn destinations_round_trip() {
        for d in [
            Destination::Partner("demo-bank".parse().unwrap()),
            Destination::Device(DeviceId::generate()),
            Destination::Internal,
        ] {
            assert_eq!(d.to_string().parse::<Destination>().unwrap(), d);
        }
        assert!("mailbox:x".parse::<Destination>().is_err());
        assert!("device:usr_x".parse::<Destination>().is_err());
    }

    #[test]
    fn topics_are_dotted_lowercase() {
        assert!("binding.activated".parse::<Topic>().is_ok());
        assert!("partner.ping_sent".parse::<Topic>().is_ok());
        for bad in ["", "Binding", "a..b", ".a", "a.", "a-b"] {
            assert!(bad.parse::<Topic>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backoff_doubles_then_caps() {
        assert_eq!(retry_delay_secs(0), 2);
        assert_eq!(retry_delay_secs(1), 4);
        assert_eq!(retry_delay_secs(5), 64);
        assert_eq!(retry_delay_secs(11), 3_600);
        assert_eq!(retry_delay_secs(1_000), 3_600);
        let total: i64 = (0..MAX_DELIVERY_ATTEMPTS).map(retry_delay_secs).sum();
        assert!(
            total > 3 * 86_400,
            "retries cover at least three days: {total}"
        );
    }
}
