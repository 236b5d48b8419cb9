//! The merchant API (secret key as `Authorization: Bearer sk_test_…`):
//! orders and API keys.

use paybridge_domain::ids::{ApiKeyId, MerchantId, OrderId, RefundId};
use paybridge_domain::order::OrderState;
use paybridge_domain::refund::RefundStage;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wallet::MoneyBody;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    pub amount: MoneyBody,
    #[schema(example = "2 coffees", min_length = 1, max_length = 200)]
    pub description: String,
    /// The merchant's own reference, unique among its orders.
    #[schema(example = "cart-1042", pattern = "^[!-~]{1,64}$")]
    pub reference: String,
    /// Seconds until the order expires (60 to 86400; default 900).
    #[schema(minimum = 60, maximum = 86400)]
    pub expires_in_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderBody {
    #[schema(value_type = String, example = "ord_…")]
    pub id: OrderId,
    /// The payee: a first terminal names it in its payment request (F4).
    #[schema(value_type = String, example = "mer_…")]
    pub merchant_id: MerchantId,
    pub reference: String,
    pub description: String,
    pub amount: MoneyBody,
    pub refunded: MoneyBody,
    #[schema(schema_with = crate::wire_enum::<OrderState>)]
    pub state: OrderState,
    /// RFC 3339.
    pub expires_at: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyBody {
    #[schema(value_type = String, example = "key_…")]
    pub id: ApiKeyId,
    /// The key's visible start.
    #[schema(example = "sk_test_abcd")]
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A new key: the secret is shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewApiKeyBody {
    pub key: ApiKeyBody,
    pub secret: String,
}

crate::redacted_debug!(NewApiKeyBody);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub keys: Vec<ApiKeyBody>,
    /// The cursor of the next page (`?after=`), when there may be one.
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetWebhookEndpoint {
    #[schema(
        example = "https://shop.example/paybridge/webhooks",
        max_length = 2048,
        pattern = "^https?://[!-~]+$"
    )]
    pub url: String,
}

/// The endpoint and its signing secret (shown this once).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointBody {
    pub url: String,
    /// `whsec_…`: verify `paybridge-signature: t=…,v1=…` (HMAC-SHA256 of `t.body`).
    pub secret: String,
}

crate::redacted_debug!(WebhookEndpointBody);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryBody {
    /// The event id (also the body's `id`): de-duplicate on it.
    #[schema(example = "evt_…")]
    pub event_id: String,
    #[schema(example = "order.created")]
    pub event_type: String,
    /// `delivered`, `pending` (will be retried) or `dead` (given up).
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub next_attempt_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryList {
    pub deliveries: Vec<WebhookDeliveryBody>,
    /// The cursor of the next page (`?after=`), when there may be one.
    #[serde(default)]
    pub next: Option<String>,
}

/// The wallet app pays an order with a bound card.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayOrder {
    #[schema(example = "bnd_…")]
    pub binding_id: String,
    pub payment_password: String,
}

crate::redacted_debug!(PayOrder);

/// Refund (part of) a paid order to the card it was paid with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    pub amount: MoneyBody,
    /// Yours, unique per refund of the order: retrying with it resumes the same refund.
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundBody {
    #[schema(value_type = String, example = "ref_…")]
    pub id: RefundId,
    #[schema(value_type = String)]
    pub order_id: OrderId,
    pub reference: String,
    pub amount: MoneyBody,
    /// `pending` (the bank's answer is awaited; retry), `succeeded`, `failed`.
    #[schema(schema_with = crate::wire_enum::<RefundStage>)]
    pub state: RefundStage,
    /// `<code>: <message>` of a failed refund.
    pub failure: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundCreated {
    pub refund: RefundBody,
    pub order: OrderBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundList {
    pub refunds: Vec<RefundBody>,
    /// The cursor of the next page (`?after=`), when there may be one.
    #[serde(default)]
    pub next: Option<String>,
}
