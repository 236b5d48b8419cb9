//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format:
//! requests by route and status, latency by route, and the outbox of each
//! role (pending, dead, delivered, failed).

use std::sync::Arc;
use std::time::Duration;

use paybridge_adapters::dispatcher::DispatchCounters;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub role: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    outbox_pending: Family<RoleLabels, Gauge>,
    outbox_dead: Family<RoleLabels, Gauge>,
    delivered: Family<RoleLabels, Counter>,
    failed: Family<RoleLabels, Counter>,
    parked: Family<RoleLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("paybridge");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        // 0.5 ms to ~16 s.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        let outbox_pending = Family::<RoleLabels, Gauge>::default();
        registry.register(
            "outbox_pending_events",
            "Outbox events not yet delivered",
            outbox_pending.clone(),
        );
        let outbox_dead = Family::<RoleLabels, Gauge>::default();
        registry.register(
            "outbox_dead_events",
            "Outbox events parked after too many failed deliveries",
            outbox_dead.clone(),
        );
        let delivered = Family::<RoleLabels, Counter>::default();
        registry.register(
            "outbox_delivered",
            "Outbox events delivered",
            delivered.clone(),
        );
        let failed = Family::<RoleLabels, Counter>::default();
        registry.register(
            "outbox_delivery_failures",
            "Failed outbox delivery attempts",
            failed.clone(),
        );
        let parked = Family::<RoleLabels, Counter>::default();
        registry.register(
            "outbox_parked",
            "Outbox events parked as dead",
            parked.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            outbox_pending,
            outbox_dead,
            delivered,
            failed,
            parked,
        }
    }
}

impl Metrics {
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        // Label values come from a fixed set: a made-up method must not grow
        // a new series (it is counted as `other`).
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The counters a role's dispatcher increments.
    pub fn dispatch_counters(&self, role: &str) -> DispatchCounters {
        let labels = RoleLabels {
            role: role.to_owned(),
        };
        DispatchCounters {
            delivered: self.delivered.get_or_create(&labels).clone(),
            failed: self.failed.get_or_create(&labels).clone(),
            dead: self.parked.get_or_create(&labels).clone(),
        }
    }

    pub fn set_outbox(&self, role: &str, pending: i64, dead: i64) {
        let labels = RoleLabels {
            role: role.to_owned(),
        };
        self.outbox_pending.get_or_create(&labels).set(pending);
        self.outbox_dead.get_or_create(&labels).set(dead);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding metrics into a String cannot fail");
        out
    }
}

pub type SharedMetrics = Arc<Metrics>;
