//! What the wallet's services hand to the HTTP layer: the parts of its
//! records a caller may see, typed. Store rows (`Stored*`) stop at the
//! services; a key's hash, a row's version, a payer's ids and a QR code's
//! hash never leave them.

use paybridge_domain::device::{DeviceStatus, DeviceType};
use paybridge_domain::event::Topic;
use paybridge_domain::ids::{
    ApiKeyId, BindingId, DeviceId, EventId, MerchantId, OrderId, PaymentRequestId, RefundId,
    TransferAgreementId, TransferPaymentId,
};
use paybridge_domain::order::OrderStatus;
use paybridge_domain::payment_request::{Gesture, GestureRoute, OpenWith, PaymentRequestStatus};
use paybridge_domain::refund::RefundStatus;
use paybridge_domain::transfer_agreement::{
    AgreementLimits, AgreementState, AgreementUsage, ApprovalPolicy, ConfirmRoute, DeviceUsage,
    UsageCategory,
};
use paybridge_domain::transfer_payment::{CompletedBy, TransferPaymentState};
use paybridge_domain::{Money, Timestamp};
use paybridge_store::{
    StoredApiKey, StoredDevice, StoredEvent, StoredOrder, StoredPaymentRequest, StoredRefund,
};

use crate::transfer_agreements::{Agreement, UsageRecord};

/// One of the account's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    pub id: DeviceId,
    pub device_type: DeviceType,
    pub name: String,
    pub status: DeviceStatus,
    pub has_credential: bool,
    pub key_thumbprint: Option<String>,
    pub paired: bool,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

impl From<StoredDevice> for DeviceView {
    fn from(d: StoredDevice) -> Self {
        DeviceView {
            id: d.id,
            device_type: d.device_type,
            name: d.name,
            status: d.status,
            has_credential: d.has_credential,
            key_thumbprint: d.key.map(|k| k.thumbprint),
            paired: d.paired_by.is_some(),
            created_at: d.created_at,
            last_seen_at: d.last_seen_at,
        }
    }
}

/// A merchant's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub id: OrderId,
    pub merchant_id: MerchantId,
    pub reference: String,
    pub description: String,
    pub status: OrderStatus,
    pub created_at: Timestamp,
}

impl From<StoredOrder> for OrderView {
    fn from(o: StoredOrder) -> Self {
        OrderView {
            id: o.id,
            merchant_id: o.merchant_id,
            reference: o.reference,
            description: o.description,
            status: o.status,
            created_at: o.created_at,
        }
    }
}

/// A merchant's API key: its visible prefix only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyView {
    pub id: ApiKeyId,
    pub prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl From<StoredApiKey> for ApiKeyView {
    fn from(k: StoredApiKey) -> Self {
        ApiKeyView {
            id: k.id,
            prefix: k.prefix,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A refund of (part of) an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundView {
    pub id: RefundId,
    pub order_id: OrderId,
    pub reference: String,
    pub amount: Money,
    pub status: RefundStatus,
    pub created_at: Timestamp,
}

impl From<StoredRefund> for RefundView {
    fn from(r: StoredRefund) -> Self {
        RefundView {
            id: r.id,
            order_id: r.order_id,
            reference: r.reference,
            amount: r.amount,
            status: r.status,
            created_at: r.created_at,
        }
    }
}

/// A cross-device payment request (flow F4) as its two devices see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequestView {
    pub id: PaymentRequestId,
    pub status: PaymentRequestStatus,
    pub open_with: OpenWith,
    pub gesture_required: bool,
    pub gesture: Option<(Gesture, GestureRoute)>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<StoredPaymentRequest> for PaymentRequestView {
    fn from(r: StoredPaymentRequest) -> Self {
        PaymentRequestView {
            id: r.id,
            status: r.status,
            open_with: r.open_with,
            gesture_required: r.gesture_required,
            gesture: r.gesture,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The payment page: the request, what it pays, and who asked and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPageView {
    pub request: PaymentRequestView,
    pub order: OrderView,
    pub merchant_name: String,
    pub terminal: DeviceView,
    pub phone: Option<DeviceView>,
    /// The two digits the terminal and the phone both show (number matching).
    pub match_code: String,
}

/// One event on a device's push channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelEvent {
    /// Position in the device's stream (`Last-Event-ID` resumes after it).
    pub seq: i64,
    pub id: EventId,
    pub topic: Topic,
    pub occurred_at: Timestamp,
    pub data: serde_json::Value,
}

impl From<StoredEvent> for ChannelEvent {
    fn from(e: StoredEvent) -> Self {
        ChannelEvent {
            seq: e.seq,
            id: e.id,
            topic: e.topic,
            occurred_at: e.occurred_at,
            data: e.payload,
        }
    }
}

/// The first device of a transfer payment agreement (flow F3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementDeviceView {
    pub device_id: DeviceId,
    pub name: String,
    pub device_type: DeviceType,
    pub model: String,
    pub vendor: String,
}

/// A transfer payment agreement as the phone shows it: the device, the
/// card (masked), the terms and the usage so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementView {
    pub id: TransferAgreementId,
    pub state: AgreementState,
    pub device: AgreementDeviceView,
    pub binding_id: BindingId,
    pub bank_name: String,
    pub last4: String,
    pub phone_id: DeviceId,
    pub limits: AgreementLimits,
    pub categories: Vec<UsageCategory>,
    pub policy: ApprovalPolicy,
    /// Counted today and this month, as of now.
    pub usage: AgreementUsage,
    pub left_today: i64,
    pub left_this_month: i64,
    pub recent: Vec<UsageRecord>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl AgreementView {
    pub(crate) fn of(a: &Agreement, bank_name: String, last4: String, now: Timestamp) -> Self {
        let (left_today, left_this_month) = a.usage.left(&a.limits, now);
        AgreementView {
            id: a.row.id.clone(),
            state: a.row.state,
            device: AgreementDeviceView {
                device_id: a.device.device_id.clone(),
                name: a.device.name.clone(),
                device_type: a.device.info.device_type,
                model: a.device.info.model.clone(),
                vendor: a.device.info.vendor.clone(),
            },
            binding_id: a.binding.clone(),
            bank_name,
            last4,
            phone_id: a.row.phone_id.clone(),
            limits: a.limits,
            categories: a.categories.clone(),
            policy: a.policy,
            usage: a.usage.rolled(now),
            left_today,
            left_this_month,
            recent: a.recent.clone(),
            created_at: a.row.created_at,
            updated_at: a.row.updated_at,
        }
    }
}

/// A transfer payment agreement's public part, as its first device reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAgreementView {
    pub id: TransferAgreementId,
    pub state: AgreementState,
    pub limits: AgreementLimits,
    pub categories: Vec<UsageCategory>,
    pub policy: ApprovalPolicy,
    pub left_today: i64,
    pub left_this_month: i64,
    pub last_counter: u64,
}

impl DeviceAgreementView {
    pub(crate) fn of(a: &Agreement, now: Timestamp) -> Self {
        let (left_today, left_this_month) = a.usage.left(&a.limits, now);
        DeviceAgreementView {
            id: a.row.id.clone(),
            state: a.row.state,
            limits: a.limits,
            categories: a.categories.clone(),
            policy: a.policy,
            left_today,
            left_this_month,
            last_counter: a.usage.last_counter,
        }
    }
}

/// A payment execution task as the phone receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// The compact JWS the wallet signed.
    pub jws: String,
    pub hash: String,
    pub biometric_required: bool,
    pub expires_at: Timestamp,
}

/// A transfer payment (flow F3) as its first device and its phone see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferPaymentView {
    pub id: TransferPaymentId,
    /// As of now (a step not answered in time reads `expired`).
    pub state: TransferPaymentState,
    pub route: ConfirmRoute,
    pub agreement_id: TransferAgreementId,
    pub requested_by: DeviceView,
    pub phone_id: DeviceId,
    pub order_id: OrderId,
    pub merchant_id: MerchantId,
    pub merchant_name: String,
    pub description: String,
    pub amount: Money,
    pub usage: DeviceUsage,
    /// Only in the phone's view.
    pub task: Option<TaskView>,
    pub completed_by: Option<CompletedBy>,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
