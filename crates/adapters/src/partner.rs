//! The other organisation. The wallet knows its issuers (several banks) and
//! each issuer knows its wallet; each is reached by signed HTTP only, even
//! when both roles run in one process.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use paybridge_api::partner::{PartnerEvent, PartnerEventAck};
use paybridge_client::{PartnerClient, PartnerError};
use paybridge_domain::partner::PartnerId;

/// Where a partner receives our events (under its base URL).
pub const PARTNER_EVENTS_PATH: &str = "/v1/partner/events";

/// Why an event could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// Retry later (unreachable, 5xx) or give up now (refused, no such partner).
    pub transient: bool,
    pub message: String,
}

#[async_trait]
pub trait PartnerGateway: Send + Sync + std::fmt::Debug {
    async fn deliver(&self, partner: &PartnerId, event: &PartnerEvent)
        -> Result<(), DeliveryError>;
}

/// The partners this role knows, by id.
#[derive(Debug, Clone, Default)]
pub struct PartnerDirectory {
    clients: Arc<BTreeMap<PartnerId, PartnerClient>>,
}

impl PartnerDirectory {
    pub fn new(clients: impl IntoIterator<Item = PartnerClient>) -> Self {
        Self {
            clients: Arc::new(clients.into_iter().map(|c| (c.peer().clone(), c)).collect()),
        }
    }

    pub fn get(&self, id: &PartnerId) -> Option<&PartnerClient> {
        self.clients.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PartnerClient> {
        self.clients.values()
    }
}

#[async_trait]
impl PartnerGateway for PartnerDirectory {
    async fn deliver(
        &self,
        partner: &PartnerId,
        event: &PartnerEvent,
    ) -> Result<(), DeliveryError> {
        let client = self.get(partner).ok_or_else(|| DeliveryError {
            transient: false,
            message: format!("no partner {partner} is configured"),
        })?;
        // The event id doubles as the idempotency key: a redelivery is a retry.
        let ack: Result<PartnerEventAck, PartnerError> = client
            .call(
                reqwest::Method::POST,
                PARTNER_EVENTS_PATH,
                Some(event),
                Some(&event.id),
            )
            .await;
        match ack {
            Ok(_) => Ok(()),
            Err(e) => Err(DeliveryError {
                transient: e.is_transient(),
                message: e.to_string(),
            }),
        }
    }
}

/// Longest accepted event payload from a partner, serialized.
pub const PARTNER_EVENT_MAX_BYTES: usize = 16 * 1024;

/// The receiving side: checks an event from `from` and records it in the
/// inbox. Returns the acknowledgement and whether it is new (to act on).
pub async fn receive_event(
    inbox: &dyn paybridge_store::InboxStore,
    from: &PartnerId,
    event: &PartnerEvent,
    now: paybridge_domain::Timestamp,
) -> Result<(PartnerEventAck, bool), paybridge_domain::ServiceError> {
    use paybridge_domain::{ErrorCode, ServiceError};
    let invalid = |what: &str| ServiceError::rejected(ErrorCode::InvalidRequest, what.to_owned());
    let id: paybridge_domain::ids::EventId = event
        .id
        .parse()
        .map_err(|_| invalid("`id` is not an event id (evt_…)"))?;
    let topic: paybridge_domain::event::Topic = event
        .topic
        .parse()
        .map_err(|_| invalid("`topic` is not a dotted lowercase topic"))?;
    time::OffsetDateTime::parse(
        &event.occurred_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| invalid("`occurred_at` is not an RFC 3339 time"))?;
    if event.data.to_string().len() > PARTNER_EVENT_MAX_BYTES {
        return Err(invalid("`data` is too large"));
    }
    let new = inbox
        .inbox_record(from, &id, topic.as_str(), &event.data, now)
        .await?;
    tracing::info!(partner.id = %from, event.id = %id, event.topic = %topic, duplicate = !new, "partner event received");
    Ok((
        PartnerEventAck {
            id: event.id.clone(),
            duplicate: !new,
        },
        new,
    ))
}

/// What each role answers on its side of the partner API. The wallet and the
/// issuers serve the same endpoints (ping, events); what they do with an
/// event differs by role, behind this trait.
#[async_trait]
pub trait PartnerSide: Send + Sync + std::fmt::Debug {
    /// Answers a signed ping from `caller`.
    fn ping(&self, caller: &PartnerId) -> paybridge_api::partner::PartnerPing;

    /// Receives an event from `from` (recorded once, acted on once).
    async fn receive_partner_event(
        &self,
        from: &PartnerId,
        event: &PartnerEvent,
    ) -> Result<PartnerEventAck, paybridge_domain::ServiceError>;
}

/// The ping answer, the same for every role.
pub fn ping_answer(
    me: &PartnerId,
    role: paybridge_domain::partner::Role,
    caller: &PartnerId,
    now: paybridge_domain::Timestamp,
) -> paybridge_api::partner::PartnerPing {
    paybridge_api::partner::PartnerPing {
        partner: me.to_string(),
        role: role.as_str().into(),
        caller: caller.to_string(),
        time: paybridge_api::rfc3339(now),
    }
}
