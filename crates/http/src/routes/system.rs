//! Health, readiness, metrics and the OpenAPI document.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use paybridge_api::system::{Health, Readiness, ReadinessCheck};
use paybridge_issuer::Issuer;
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::ApiJson;
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct SystemState {
    pub wallet: Option<Wallet>,
    pub issuer: Option<Issuer>,
    pub metrics: Arc<Metrics>,
    /// Filled once the whole router (and so the document) is built.
    pub openapi_json: Arc<OnceLock<String>>,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub metrics_token: Option<Arc<paybridge_crypto::Secret<String>>>,
}

impl SystemState {
    fn roles(&self) -> Vec<String> {
        let mut roles = Vec::new();
        if self.wallet.is_some() {
            roles.push("wallet".to_owned());
        }
        if self.issuer.is_some() {
            roles.push("issuer".to_owned());
        }
        roles
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "The process is alive", body = Health)))]
async fn healthz(State(s): State<SystemState>) -> ApiJson<Health> {
    ApiJson(Health {
        status: "ok".into(),
        roles: s.roles(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: every role's store answers.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A dependency is down", body = Readiness)))]
async fn readyz(State(s): State<SystemState>) -> impl IntoResponse {
    let mut checks = Vec::new();
    if let Some(w) = &s.wallet {
        checks.push(check("wallet_store", w.ready().await.is_ok()));
    }
    if let Some(i) = &s.issuer {
        checks.push(check("issuer_store", i.ready().await.is_ok()));
    }
    let ready = checks.iter().all(|c| c.status == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" }.into(),
        checks,
    };
    (status, ApiJson(body))
}

fn check(name: &str, ok: bool) -> ReadinessCheck {
    ReadinessCheck {
        name: name.into(),
        status: if ok { "ok" } else { "unavailable" }.into(),
    }
}

/// Prometheus metrics (OpenMetrics text format). With `--metrics-token`
/// set, only a scraper sending it as a bearer token gets them.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Metrics in the OpenMetrics text format", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "session_invalid: a metrics token is configured and was not sent", body = paybridge_api::ErrorBody)))]
async fn metrics(
    State(s): State<SystemState>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, crate::error::ApiError> {
    if let Some(expected) = &s.metrics_token {
        use subtle::ConstantTimeEq;
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(sent.as_bytes().ct_eq(expected.expose().as_bytes())) {
            return Err(crate::error::ApiError::new(
                paybridge_domain::ErrorCode::SessionInvalid,
                "send the metrics token as `Authorization: Bearer <token>`",
            ));
        }
    }
    // Outbox gauges are read at scrape time; a store that does not answer
    // leaves the last values in place.
    if let Some(w) = &s.wallet {
        if let Ok(stats) = w.outbox_stats().await {
            s.metrics.set_outbox("wallet", stats.pending, stats.dead);
        }
    }
    if let Some(i) = &s.issuer {
        if let Ok(stats) = i.outbox_stats().await {
            s.metrics.set_outbox("issuer", stats.pending, stats.dead);
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    ))
}

/// This OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
async fn openapi(State(s): State<SystemState>) -> impl IntoResponse {
    let json = s.openapi_json.get().cloned().unwrap_or_else(|| "{}".into());
    ([(header::CONTENT_TYPE, "application/json")], json)
}

pub fn router(state: SystemState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .with_state(state)
}
