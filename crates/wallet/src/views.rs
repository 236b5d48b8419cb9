//! What the wallet's services hand to the HTTP layer: the parts of its
//! records a caller may see, typed. Store rows (`Stored*`) stop at the
//! services; a key's hash, a row's version, a payer's ids and a QR code's
//! hash never leave them.

use paybridge_domain::device::{DeviceStatus, DeviceType};
use paybridge_domain::event::Topic;
use paybridge_domain::ids::{
    ApiKeyId, DeviceId, EventId, MerchantId, OrderId, PaymentRequestId, RefundId,
};
use paybridge_domain::order::OrderStatus;
use paybridge_domain::payment_request::{Gesture, GestureRoute, OpenWith, PaymentRequestStatus};
use paybridge_domain::refund::RefundStatus;
use paybridge_domain::{Money, Timestamp};
use paybridge_store::{
    StoredApiKey, StoredDevice, StoredEvent, StoredOrder, StoredPaymentRequest, StoredRefund,
};

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
