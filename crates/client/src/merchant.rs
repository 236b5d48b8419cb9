//! The merchant API, one method per endpoint, authenticated with an API key.

use paybridge_api::merchant::{
    ApiKeyList, CreateOrder, CreateRefund, NewApiKeyBody, OrderBody, RefundCreated, RefundList,
    SetWebhookEndpoint, WebhookDeliveryList, WebhookEndpointBody,
};
use paybridge_domain::ids::{ApiKeyId, EventId, OrderId};

use crate::{ApiError, PublicClient};

/// A merchant's server calling paybridge with its API key.
#[derive(Debug, Clone)]
pub struct MerchantApi {
    client: PublicClient,
}

type Answer<T> = Result<T, ApiError>;

impl MerchantApi {
    /// A merchant with `api_key` talking to the wallet at `base_url`.
    pub fn new(base_url: impl Into<String>, api_key: &str) -> Self {
        Self::on(PublicClient::new(base_url).with_bearer(api_key))
    }

    pub fn on(client: PublicClient) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &PublicClient {
        &self.client
    }

    /// `POST /v1/orders`
    pub async fn create_order(&self, body: &CreateOrder) -> Answer<OrderBody> {
        self.client.post("/v1/orders", body).await
    }

    /// `GET /v1/orders/{order_id}`
    pub async fn order(&self, order: &OrderId) -> Answer<OrderBody> {
        self.client.get(&format!("/v1/orders/{order}")).await
    }

    /// `POST /v1/orders/{order_id}/cancel`
    pub async fn cancel_order(&self, order: &OrderId) -> Answer<OrderBody> {
        self.client
            .post_empty(&format!("/v1/orders/{order}/cancel"))
            .await
    }

    /// `POST /v1/orders/{order_id}/refunds`
    pub async fn refund_order(
        &self,
        order: &OrderId,
        body: &CreateRefund,
    ) -> Answer<RefundCreated> {
        self.client
            .post(&format!("/v1/orders/{order}/refunds"), body)
            .await
    }

    /// `GET /v1/orders/{order_id}/refunds`
    pub async fn refunds(&self, order: &OrderId) -> Answer<RefundList> {
        self.client
            .get(&format!("/v1/orders/{order}/refunds"))
            .await
    }

    /// `GET /v1/api-keys`
    pub async fn api_keys(&self) -> Answer<ApiKeyList> {
        self.client.get("/v1/api-keys").await
    }

    /// `POST /v1/api-keys`
    pub async fn create_api_key(&self) -> Answer<NewApiKeyBody> {
        self.client.post_empty("/v1/api-keys").await
    }

    /// `DELETE /v1/api-keys/{key_id}`
    pub async fn revoke_api_key(&self, key: &ApiKeyId) -> Answer<()> {
        self.client.delete(&format!("/v1/api-keys/{key}")).await
    }

    /// `PUT /v1/webhook-endpoint`
    pub async fn set_webhook_endpoint(
        &self,
        body: &SetWebhookEndpoint,
    ) -> Answer<WebhookEndpointBody> {
        self.client.put("/v1/webhook-endpoint", body).await
    }

    /// `GET /v1/webhook-deliveries`
    pub async fn webhook_deliveries(&self) -> Answer<WebhookDeliveryList> {
        self.client.get("/v1/webhook-deliveries").await
    }

    /// `POST /v1/webhook-deliveries/{event_id}/resend`
    pub async fn resend_webhook(&self, event: &EventId) -> Answer<()> {
        self.client
            .post_empty(&format!("/v1/webhook-deliveries/{event}/resend"))
            .await
    }
}
