//! Merchants' webhooks: every order state change is an outbox event for the
//! merchant's endpoint, posted signed (`paybridge-signature: t=…,v1=…`,
//! HMAC-SHA256 over `t.body` with the endpoint's secret, as Stripe does),
//! with the event id in the body and a header, retried by the dispatcher
//! with backoff for about three days. A merchant lists deliveries and can
//! send one again. Where a webhook may go is [`crate::webhook_guard`]'s.
//! What a merchant sees of a failed delivery is a short generic reason;
//! the transport's own text (which could tell a prober about the network)
//! goes to the log only.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use paybridge_adapters::dispatcher::WebhookGateway;
use paybridge_adapters::partner::DeliveryError;
use paybridge_crypto::webhook::{generate_secret, sign, WEBHOOK_SIGNATURE_HEADER};
use paybridge_crypto::Secret;
use paybridge_domain::event::Destination;
use paybridge_domain::ids::{EventId, MerchantId};
use paybridge_domain::{Clock, ErrorCode, ServiceError};
use paybridge_store::keys::SealedColumn;
use paybridge_store::{Delivery, KeyVault, StoredEvent, WalletStore};
use serde_json::json;

use crate::webhook_guard::{webhook_client, EndpointPolicy};
use crate::Wallet;

pub const WEBHOOK_SECRET: SealedColumn = SealedColumn {
    table: "merchants",
    id_column: "id",
    column: "webhook_secret_sealed",
};
/// A merchant's endpoint must answer within this.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The body posted to the endpoint.
pub fn webhook_body(e: &StoredEvent) -> serde_json::Value {
    json!({
        "id": e.id,
        "type": e.topic.as_str(),
        "created": paybridge_domain::clock::rfc3339(e.occurred_at),
        "data": e.payload,
    })
}

/// Delivers merchant events over HTTP (the dispatcher's gateway).
#[derive(Debug, Clone)]
pub struct MerchantWebhooks {
    pub store: Arc<dyn WalletStore>,
    pub vault: Arc<KeyVault>,
    pub clock: Arc<dyn Clock>,
    pub policy: EndpointPolicy,
    pub client: reqwest::Client,
}

impl MerchantWebhooks {
    pub fn new(
        store: Arc<dyn WalletStore>,
        vault: Arc<KeyVault>,
        clock: Arc<dyn Clock>,
        policy: EndpointPolicy,
    ) -> Self {
        Self {
            store,
            vault,
            clock,
            policy,
            client: webhook_client(policy, WEBHOOK_TIMEOUT),
        }
    }
}

/// What the merchant is told of a delivery that did not reach its endpoint.
fn unreachable_reason(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "endpoint timed out"
    } else if e.is_connect() {
        "endpoint unreachable (connection failed or address not allowed)"
    } else {
        "endpoint unreachable"
    }
}

fn transient(message: String) -> DeliveryError {
    DeliveryError {
        transient: true,
        message,
    }
}

#[async_trait]
impl WebhookGateway for MerchantWebhooks {
    async fn deliver_webhook(
        &self,
        merchant: &MerchantId,
        event: &StoredEvent,
    ) -> Result<(), DeliveryError> {
        let m = self
            .store
            .merchant(merchant)
            .await
            .map_err(|e| transient(e.to_string()))?
            .ok_or_else(|| DeliveryError {
                transient: false,
                message: "no such merchant".into(),
            })?;
        let (Some(url), Some(sealed)) = (m.webhook_url, m.webhook_secret_sealed) else {
            // No endpoint configured: nothing to deliver (the event stays listed).
            return Ok(());
        };
        // Checked again on every delivery: an endpoint stored under a
        // looser policy (the sandbox) is not called under a strict one.
        if let Some(why) = url::Url::parse(&url)
            .ok()
            .and_then(|u| self.policy.refusal(&u).map(str::to_owned))
        {
            return Err(DeliveryError {
                transient: false,
                message: format!("endpoint not allowed: it must be {why}"),
            });
        }
        let secret = self
            .vault
            .open_text(&WEBHOOK_SECRET, merchant.as_str(), &sealed)
            .await
            .map_err(|e| transient(e.to_string()))?;
        let body = serde_json::to_vec(&webhook_body(event)).expect("JSON serialises");
        let signature = sign(secret.expose(), self.clock.now().unix_timestamp(), &body);
        let resp = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .header(WEBHOOK_SIGNATURE_HEADER, signature)
            .header("paybridge-event-id", event.id.as_str())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                tracing::info!(merchant.id = %merchant, error = %e, "webhook endpoint unreachable");
                transient(unreachable_reason(&e).to_owned())
            })?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            // Every non-2xx is retried: the merchant may be deploying a fix.
            Err(transient(format!("endpoint answered {status}")))
        }
    }
}

/// An http(s) URL with a host, of visible ASCII only: the URL parser drops
/// tabs and line breaks silently, so a URL with CR/LF would be stored as
/// one text and delivered to another.
fn valid_url(url: &str) -> bool {
    url.len() <= 2048
        && url.bytes().all(|b| b.is_ascii_graphic())
        && url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

impl Wallet {
    /// Sets the merchant's webhook endpoint; returns a new signing secret
    /// (shown once; an earlier secret stops working).
    pub async fn set_webhook_endpoint(
        &self,
        merchant: &MerchantId,
        url: &str,
    ) -> Result<Secret<String>, ServiceError> {
        if !valid_url(url) {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "url: an http(s) URL of at most 2048 visible ASCII characters",
            ));
        }
        if let Some(why) = url::Url::parse(url)
            .ok()
            .and_then(|u| self.webhook_policy.refusal(&u))
        {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                format!("url: {why}"),
            ));
        }
        let secret = generate_secret();
        let sealed = self
            .vault
            .seal(
                &WEBHOOK_SECRET,
                merchant.as_str(),
                secret.expose().as_bytes(),
            )
            .await;
        self.store
            .merchant_set_webhook(merchant, url, &sealed)
            .await?;
        Ok(secret)
    }

    pub async fn webhook_deliveries(
        &self,
        merchant: &MerchantId,
        limit: Option<u32>,
        after: Option<&EventId>,
    ) -> Result<(Vec<Delivery>, Option<EventId>), ServiceError> {
        let limit = paybridge_domain::page::page_limit(limit)?;
        let page = self
            .store
            .outbox_deliveries(&Destination::Merchant(merchant.clone()), limit, after)
            .await?;
        Ok(paybridge_domain::page::paged(
            page,
            limit,
            |d| &d.event.id,
            "an event of this merchant",
        )?)
    }

    /// Sends one of the merchant's events again, now.
    pub async fn resend_webhook(
        &self,
        merchant: &MerchantId,
        id: &EventId,
    ) -> Result<(), ServiceError> {
        if !self
            .store
            .outbox_requeue(
                id,
                &Destination::Merchant(merchant.clone()),
                self.clock.now(),
            )
            .await?
        {
            return Err(ServiceError::rejected(
                ErrorCode::NotFound,
                "no such delivery",
            ));
        }
        self.dispatcher.wake();
        Ok(())
    }
}
