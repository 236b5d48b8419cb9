//! What happened, as typed event payloads. Every outbox event a service
//! writes is one [`Happened`]; [`Happened::topic`] is the one place that
//! picks its topic, and its fields are its payload (serialised as they are,
//! so partners, webhooks and push channels see the same JSON as before).
//!
//! Families with many steps (a binding, an order, a payment request) carry
//! their facts once and the step that happened as a small enum, so a binding
//! event can only have a binding topic.

use serde::Serialize;

use crate::card_application::ApplicationStage;
use crate::card_issuing::ReviewStage;
use crate::card_token::{TokenActor, TokenStage};
use crate::clock::Timestamp;
use crate::device::DeviceType;
use crate::error::ErrorCode;
use crate::event::{Destination, EventTopic, NewEvent};
use crate::ids::{
    BindingId, CardApplicationId, CardTokenId, CredentialId, DeviceId, MerchantId, OrderId,
    PairingId, PaymentRequestId, RefundId, SecurityAuthId, TransferAgreementId, TransferPaymentId,
    UserId,
};
use crate::money::Money;
use crate::order::OrderState;
use crate::payment_request::PaymentRequestStage;
use crate::registration::AuthState;
use crate::transfer_agreement::{AgreementState, UsageCategory};
use crate::transfer_payment::{CompletedBy, TransferPaymentStage};

/// How an account came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationChannel {
    /// Its owner registered in the wallet app.
    App,
    /// A bank registered it for its customer (flow F2).
    Partner,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Happened {
    AccountRegistered {
        user_id: UserId,
        channel: RegistrationChannel,
        #[serde(skip_serializing_if = "Option::is_none")]
        registered_by: Option<String>,
    },
    PaymentPasswordSet {
        user_id: UserId,
    },
    IdentitySet {
        user_id: UserId,
        /// The bank whose binding attested the identity; none when self-declared.
        #[serde(skip_serializing_if = "Option::is_none")]
        attested_by: Option<String>,
    },
    SecurityAuthenticated {
        user_id: UserId,
        device_id: DeviceId,
        conditions: String,
    },
    SecurityAuth(SecurityAuthFacts),

    Binding {
        #[serde(skip)]
        step: BindingStep,
        #[serde(flatten)]
        binding: BindingFacts,
    },
    /// The bank's side of an unbinding, told to the wallet.
    AgreementCancelled {
        binding_id: String,
        card_ref: String,
    },

    CardFunded {
        card_id: String,
        amount: Money,
    },
    CardDebited {
        card_id: String,
        agreement_id: String,
        payment_id: String,
        amount: Money,
    },
    CardRefunded {
        payment_id: String,
        refund_id: String,
        amount: Money,
    },

    DeviceRegistered {
        user_id: UserId,
        device_id: DeviceId,
        #[serde(rename = "type")]
        device_type: DeviceType,
    },
    DeviceRevoked {
        device_id: DeviceId,
    },
    CredentialRegistered {
        user_id: UserId,
        device_id: DeviceId,
        credential_id: CredentialId,
    },

    Order {
        #[serde(skip)]
        step: OrderStep,
        #[serde(flatten)]
        order: OrderFacts,
    },
    RefundStarted {
        refund_id: RefundId,
        order_id: OrderId,
        amount: Money,
    },
    RefundFailed {
        refund_id: RefundId,
        order_id: OrderId,
        code: &'static str,
    },

    /// A payment request as its phone or terminal is told.
    PaymentRequest {
        #[serde(skip)]
        step: PaymentRequestStep,
        #[serde(flatten)]
        request: Box<PaymentRequestFacts>,
    },
    /// Any payment request transition, for audit.
    PaymentRequestChanged {
        payment_id: PaymentRequestId,
        state: PaymentRequestStage,
    },

    /// A business binding request moved (flow F3), for audit.
    DevicePairing {
        #[serde(skip)]
        step: PairingStep,
        pairing_id: PairingId,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<UserId>,
        /// The first device, once the user approved it.
        #[serde(skip_serializing_if = "Option::is_none")]
        device_id: Option<DeviceId>,
    },
    /// A transfer payment agreement moved (flow F3). Its terms are sealed
    /// in the agreement; an event names only ids and the state.
    TransferAgreement {
        #[serde(skip)]
        step: AgreementStep,
        agreement_id: TransferAgreementId,
        device_id: DeviceId,
        state: AgreementState,
    },
    /// The transfer payment message (转移支付消息): what the phone shows
    /// for the user to confirm or decline.
    TransferPaymentMessage {
        #[serde(flatten)]
        payment: Box<TransferPaymentFacts>,
        /// RFC 3339: answer before this.
        expires_at: String,
    },
    /// The payment execution task (支付执行任务) for the phone to execute.
    PaymentExecutionTask {
        transfer_payment_id: TransferPaymentId,
        /// The task as the wallet signed it (a compact JWS).
        task: String,
        /// Base64url SHA-256 of `task`: what the execution and the
        /// biometric approval are bound to.
        task_hash: String,
        /// The phone passes the biometric before executing (not for a
        /// small amount under a direct policy).
        biometric_required: bool,
        /// RFC 3339.
        expires_at: String,
    },
    /// The payment result notification (支付结果通知), to both devices.
    PaymentResult {
        #[serde(flatten)]
        payment: Box<TransferPaymentFacts>,
        result: TransferPaymentStage,
        /// Why it failed (a stable error code), for a failed payment.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<ErrorCode>,
        /// `phone` (its completion message) or `wallet` (the phone went
        /// quiet after the debit), for a paid payment.
        #[serde(skip_serializing_if = "Option::is_none")]
        completed_by: Option<CompletedBy>,
    },
    /// Any transfer payment transition, for audit.
    TransferPaymentChanged {
        transfer_payment_id: TransferPaymentId,
        state: TransferPaymentStage,
    },

    /// A virtual card application moved at the wallet (flow F5). The
    /// applicant is sealed in the application; an event names ids only.
    CardApplication {
        application_id: CardApplicationId,
        user_id: UserId,
        state: ApplicationStage,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<ErrorCode>,
    },
    /// The issuer's review of an application moved (flow F5).
    CardReview {
        application_id: CardApplicationId,
        state: ReviewStage,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<ErrorCode>,
    },
    /// A card token's state, as one side tells the other and the phone
    /// (flow F5): never the token number.
    CardToken {
        token_id: CardTokenId,
        card_code: String,
        state: TokenStage,
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<TokenActor>,
    },
    /// A phone registered its secure element's encryption key (flow F5).
    SecureElementKeyRegistered {
        user_id: UserId,
        device_id: DeviceId,
    },

    AuthenticatorCounterRegressed {
        user_id: UserId,
        device_id: DeviceId,
        stored: i64,
        presented: i64,
    },
    BindingIdentityMismatch {
        binding_id: BindingId,
        user_id: UserId,
        issuer: String,
    },
    DeviceEnvironmentRefused {
        user_id: UserId,
        reason: &'static str,
        os: String,
    },
    PaymentPasswordWrong {
        user_id: UserId,
        failed_attempts: u32,
    },
}

/// What happened to a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingStep {
    Created,
    Offered,
    Claimed,
    OtpSent,
    Activated,
    Expired,
    Failed,
    Cancelled,
    Unbound,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BindingFacts {
    pub binding_id: BindingId,
    pub card_ref: String,
    pub state: &'static str,
    pub bank_name: String,
    pub last4: String,
}

/// What happened to a merchant's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStep {
    Created,
    Paid,
    Refunded,
    Expired,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderFacts {
    pub order_id: OrderId,
    pub reference: String,
    pub state: OrderState,
    pub amount: Money,
    /// Refunded so far, in minor units.
    pub refunded: i64,
}

/// What a payment request's phone or terminal is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentRequestStep {
    GestureRequested,
    GestureReceived,
    ScanRequested,
    Scanned,
    Presented,
    Paid,
    Declined,
    Expired,
    /// The phone's prompt is withdrawn (a newer request replaced it).
    Withdrawn,
    /// The terminal's request was replaced by its newer one.
    Superseded,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentRequestFacts {
    pub payment_id: PaymentRequestId,
    pub state: PaymentRequestStage,
    pub order_id: OrderId,
    pub amount: Money,
    pub description: String,
    pub merchant: PaymentMerchantFacts,
    pub requested_by: RequestingDeviceFacts,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentMerchantFacts {
    pub id: MerchantId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestingDeviceFacts {
    pub device_id: DeviceId,
    pub name: String,
    #[serde(rename = "type")]
    pub device_type: DeviceType,
}

/// What happened to a business binding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingStep {
    Started,
    Claimed,
    Approved,
    Denied,
    Collected,
}

/// What happened to a transfer payment agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgreementStep {
    Created,
    /// Its limits, categories or approval policy changed.
    Changed,
    Suspended,
    Resumed,
    Revoked,
}

/// A transfer payment as the phone and the first device are told of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferPaymentFacts {
    pub transfer_payment_id: TransferPaymentId,
    pub order_id: OrderId,
    pub amount: Money,
    pub description: String,
    pub merchant: PaymentMerchantFacts,
    pub requested_by: RequestingDeviceFacts,
    pub usage: UsageFacts,
}

/// A first device's device usage (设备使用信息), as the phone shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageFacts {
    pub category: UsageCategory,
    pub purpose: String,
    pub counter: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityAuthFacts {
    pub security_auth_id: SecurityAuthId,
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub conditions: String,
    pub digit_attempts: u32,
    #[serde(skip)]
    pub state: AuthState,
}

impl Happened {
    /// The topic of what happened: the one mapping.
    pub fn topic(&self) -> EventTopic {
        use EventTopic as T;
        match self {
            Happened::AccountRegistered { .. } => T::AccountRegistered,
            Happened::PaymentPasswordSet { .. } => T::AccountPaymentPasswordSet,
            Happened::IdentitySet { .. } => T::AccountIdentitySet,
            Happened::SecurityAuthenticated { .. } => T::AccountSecurityAuthenticated,
            Happened::SecurityAuth(a) => match a.state {
                AuthState::OtpSent => T::SecurityAuthOtpSent,
                // A counted wrong answer keeps the state.
                AuthState::OtpVerified if a.digit_attempts > 0 => T::SecurityAuthIdentityWrong,
                AuthState::OtpVerified => T::SecurityAuthOtpVerified,
                AuthState::IdentityConfirmed => T::SecurityAuthIdentityConfirmed,
                AuthState::Passed => T::SecurityAuthPassed,
                AuthState::Failed => T::SecurityAuthFailed,
            },
            Happened::Binding { step, .. } => match step {
                BindingStep::Created => T::BindingCreated,
                BindingStep::Offered => T::BindingOffered,
                BindingStep::Claimed => T::BindingClaimed,
                BindingStep::OtpSent => T::BindingOtpSent,
                BindingStep::Activated => T::BindingActivated,
                BindingStep::Expired => T::BindingExpired,
                BindingStep::Failed => T::BindingFailed,
                BindingStep::Cancelled => T::BindingCancelled,
                BindingStep::Unbound => T::BindingUnbound,
            },
            Happened::AgreementCancelled { .. } => T::BindingUnbound,
            Happened::CardFunded { .. } => T::CardFunded,
            Happened::CardDebited { .. } => T::CardDebited,
            Happened::CardRefunded { .. } => T::CardRefunded,
            Happened::DeviceRegistered { .. } => T::DeviceRegistered,
            Happened::DeviceRevoked { .. } => T::DeviceRevoked,
            Happened::CredentialRegistered { .. } => T::DeviceCredentialRegistered,
            Happened::Order { step, .. } => match step {
                OrderStep::Created => T::OrderCreated,
                OrderStep::Paid => T::OrderPaid,
                OrderStep::Refunded => T::OrderRefunded,
                OrderStep::Expired => T::OrderExpired,
                OrderStep::Cancelled => T::OrderCancelled,
            },
            Happened::RefundStarted { .. } => T::RefundStarted,
            Happened::RefundFailed { .. } => T::RefundFailed,
            Happened::PaymentRequest { step, .. } => match step {
                PaymentRequestStep::GestureRequested => T::PaymentRequestGestureRequested,
                PaymentRequestStep::GestureReceived => T::PaymentRequestGestureReceived,
                PaymentRequestStep::ScanRequested => T::PaymentRequestScanRequested,
                PaymentRequestStep::Scanned => T::PaymentRequestScanned,
                PaymentRequestStep::Presented => T::PaymentRequestPresented,
                PaymentRequestStep::Paid => T::PaymentRequestPaid,
                PaymentRequestStep::Declined => T::PaymentRequestDeclined,
                PaymentRequestStep::Expired => T::PaymentRequestExpired,
                PaymentRequestStep::Withdrawn => T::PaymentRequestWithdrawn,
                PaymentRequestStep::Superseded => T::PaymentRequestSuperseded,
            },
            Happened::PaymentRequestChanged { .. } => T::PaymentRequestChanged,
            Happened::DevicePairing { step, .. } => match step {
                PairingStep::Started => T::DevicePairingStarted,
                PairingStep::Claimed => T::DevicePairingClaimed,
                PairingStep::Approved => T::DevicePairingApproved,
                PairingStep::Denied => T::DevicePairingDenied,
                PairingStep::Collected => T::DevicePairingCollected,
            },
            Happened::TransferAgreement { step, .. } => match step {
                AgreementStep::Created => T::TransferAgreementCreated,
                AgreementStep::Changed => T::TransferAgreementChanged,
                AgreementStep::Suspended => T::TransferAgreementSuspended,
                AgreementStep::Resumed => T::TransferAgreementResumed,
                AgreementStep::Revoked => T::TransferAgreementRevoked,
            },
            Happened::TransferPaymentMessage { .. } => T::TransferPaymentMessage,
            Happened::PaymentExecutionTask { .. } => T::TransferPaymentExecutionTask,
            Happened::PaymentResult { .. } => T::TransferPaymentResult,
            Happened::TransferPaymentChanged { .. } => T::TransferPaymentChanged,
            Happened::CardApplication { .. } | Happened::CardReview { .. } => {
                T::CardApplicationChanged
            }
            Happened::CardToken { .. } => T::CardTokenChanged,
            Happened::SecureElementKeyRegistered { .. } => T::DeviceSecureElementKeyRegistered,
            Happened::AuthenticatorCounterRegressed { .. } => T::RiskAuthenticatorCounterRegressed,
            Happened::BindingIdentityMismatch { .. } => T::RiskBindingIdentityMismatch,
            Happened::DeviceEnvironmentRefused { .. } => T::RiskDeviceEnvironmentRefused,
            Happened::PaymentPasswordWrong { .. } => T::RiskPaymentPasswordWrong,
        }
    }

    /// The outbox event of what happened, for `to`.
    pub fn to(&self, to: Destination, occurred_at: Timestamp) -> NewEvent {
        let payload =
            serde_json::to_value(self).expect("event payloads are plain data and always serialise");
        NewEvent::of(self.topic(), to, payload, occurred_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_its_fields_and_the_step_picks_the_topic() {
        let order = OrderFacts {
            order_id: OrderId::generate(),
            reference: "cart-1".into(),
            state: OrderState::Paid,
            amount: Money::new(1999, "CNY".parse().unwrap()),
            refunded: 0,
        };
        let h = Happened::Order {
            step: OrderStep::Paid,
            order: order.clone(),
        };
        let e = h.to(Destination::Internal, time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(e.topic, EventTopic::OrderPaid);
        assert_eq!(
            e.payload,
            serde_json::json!({"order_id": order.order_id, "reference": "cart-1", "state": "paid",
                "amount": order.amount, "refunded": 0})
        );
        let auth = |state, digit_attempts| {
            Happened::SecurityAuth(SecurityAuthFacts {
                security_auth_id: SecurityAuthId::generate(),
                user_id: UserId::generate(),
                device_id: DeviceId::generate(),
                conditions: "new_device".into(),
                digit_attempts,
                state,
            })
            .topic()
        };
        assert_eq!(
            auth(AuthState::OtpVerified, 0),
            EventTopic::SecurityAuthOtpVerified
        );
        assert_eq!(
            auth(AuthState::OtpVerified, 1),
            EventTopic::SecurityAuthIdentityWrong
        );
        let registered = Happened::AccountRegistered {
            user_id: UserId::generate(),
            channel: RegistrationChannel::App,
            registered_by: None,
        };
        let payload = serde_json::to_value(&registered).unwrap();
        assert_eq!(payload["channel"], "app");
        assert!(payload.get("registered_by").is_none());
    }
}
