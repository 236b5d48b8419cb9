//! Building and running the application.
//!
//! One process hosts the wallet, one issuer, or both (`--role all`, the
//! default). Even then the two reach each other only through the signed
//! partner API, over loopback: the wallet's client for the bank points at
//! `http://127.0.0.1:<port>/bank` and the bank's client for the wallet at
//! `http://127.0.0.1:<port>`. Each role has its own store.
//!
//! Each role is wired in its own module ([`wallet_role`], [`issuer_role`]);
//! this one binds the listener, adds the sandbox and system routes and the
//! outer middleware, and runs the server with its background loops.

use crate::middleware::rate_limit::{rate_limit, RateLimits};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use paybridge_adapters::push_relay::SandboxPushRelay;
use paybridge_adapters::sandbox::SandboxParties;
use paybridge_adapters::sms::SandboxSmsGateway;
use paybridge_client::{PartnerClient, PartnerClientConfig};
use paybridge_crypto::master::MasterKey;
use paybridge_crypto::{PartnerKeyPair, PartnerPublicKey};
use paybridge_domain::card::BinRange;
use paybridge_domain::partner::PartnerId;
use paybridge_domain::{Clock, ErrorCode};
use paybridge_issuer::Issuer;
use paybridge_store::{IdempotencyStore, SandboxStore, Store, StoreConfig};
use paybridge_wallet::webauthn::WebauthnConfig;
use paybridge_wallet::Wallet;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

mod issuer_role;
mod wallet_role;

use crate::background;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::middleware::envelope::envelope_errors;
use crate::middleware::idempotency::Idempotency;
use crate::middleware::request_context::request_context;
use crate::openapi::ApiDoc;
use crate::routes;

/// What building either role needs from the whole app.
pub(crate) struct BuildContext<'a> {
    pub master_key: &'a MasterKey,
    pub sandbox: bool,
    /// `http://127.0.0.1:<port>`: where a role in this process reaches the other.
    pub local: &'a str,
    pub clock: &'a Arc<dyn Clock>,
    pub metrics: &'a Arc<Metrics>,
    /// Turns true when the server stops (open push channels end).
    pub stopping: &'a watch::Receiver<bool>,
    /// The identity authority both roles talk to (flow F5): the sandbox
    /// one, shared by the roles of this process; none outside the sandbox.
    pub identity: Option<Arc<dyn paybridge_adapters::identity::IdentityAuthority>>,
}

/// Path prefix of an issuer's API, so both roles can share one listener.
pub const ISSUER_PREFIX: &str = "/bank";

/// The other organisation, as one role sees it.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub id: PartnerId,
    /// Base URL including the API prefix; `None` means "this process" (loopback).
    pub base_url: Option<String>,
    /// Accepted public keys (several during a rotation).
    pub public_keys: Vec<PartnerPublicKey>,
}

#[derive(Debug, Clone)]
pub struct WalletRoleConfig {
    pub id: PartnerId,
    pub store: StoreConfig,
    pub key: Arc<PartnerKeyPair>,
    /// The banks registered with this wallet.
    pub issuers: Vec<PeerConfig>,
    /// The relying party of the phones' WebAuthn credentials.
    pub webauthn: WebauthnConfig,
    /// OS push relays allowed to relay phones' gestures (flow F4). With the
    /// sandbox on, the in-process sandbox relay is added with a key made at start.
    pub relays: Vec<PeerConfig>,
    /// Lifetime of cross-device payment requests [default: 120 s].
    pub payment_request_ttl_secs: Option<i64>,
    /// Codes the wallet may send in an hour, all phones together
    /// (default `paybridge_domain::otp::OTP_GLOBAL_HOURLY_CAP`).
    pub sms_global_hourly_cap: Option<u32>,
    /// Codes requests from one client address may cause in an hour; 0 is
    /// off (default `paybridge_domain::otp::OTP_IP_HOURLY_CAP`).
    pub sms_ip_hourly_cap: Option<u32>,
    /// Business binding requests (flow F3's pairings) one client address
    /// may start in an hour; 0 is off (default
    /// `paybridge_domain::device_pairing::MAX_PAIRINGS_PER_ADDRESS_HOUR`).
    pub pairing_ip_hourly_cap: Option<u32>,
    /// Seconds a virtual card application's photos and frames are kept
    /// after it is decided (flow F5); default 0: deleted at once.
    pub card_media_retention_secs: Option<u32>,
    /// A real SMS provider; without one, OTPs go to the sandbox outbox
    /// (sandbox on) or flows that need one answer 503.
    pub sms_gateway: Option<paybridge_adapters::sms::HttpSmsConfig>,
}

/// The sandbox OS push relay's partner id.
pub const SANDBOX_RELAY_ID: &str = "sandbox-push-relay";

#[derive(Debug, Clone)]
pub struct IssuerRoleConfig {
    pub id: PartnerId,
    pub name: String,
    pub store: StoreConfig,
    pub key: Arc<PartnerKeyPair>,
    pub wallet: PeerConfig,
    /// The card numbers this bank issues.
    pub bins: BinRange,
    /// Seed files (TOML) applied at start, in order; idempotent.
    pub seeds: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub listen: SocketAddr,
    pub wallet: Option<WalletRoleConfig>,
    pub issuer: Option<IssuerRoleConfig>,
    /// Serve the sandbox parties' endpoints.
    pub sandbox: bool,
    pub clock: Arc<dyn Clock>,
    /// Wraps the roles' encryption keys and derives their HMAC keys.
    pub master_key: MasterKey,
    /// Requests per client IP and per credential.
    pub rate_limits: crate::RateLimitConfig,
    /// When set, `/metrics` needs it as a bearer token.
    pub metrics_token: Option<paybridge_crypto::Secret<String>>,
}

/// A built application, bound to its port, ready to run.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
    pub wallet: Option<Wallet>,
    pub issuer: Option<Issuer>,
    purgeable: Vec<Store>,
    clock: Arc<dyn Clock>,
    /// Tells long-lived answers (push channels) that the server stops.
    stopping: watch::Sender<bool>,
}

fn loopback_base(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Refuses to serve role `id` with `key` on a store whose first instance
/// signed with another key: the partners know one key per role, so such an
/// instance's calls would all be refused, and its answers distrusted.
pub(crate) async fn claim_signing_key(
    store: &Store,
    id: &PartnerId,
    key: &PartnerKeyPair,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<()> {
    use paybridge_store::keys::KeyStore;
    let ours = key.public().to_base64();
    let recorded = store
        .signing_key_claim(id.as_str(), &ours, clock.now())
        .await
        .with_context(|| format!("cannot read the signing key recorded for {id}"))?;
    anyhow::ensure!(
        recorded == ours,
        "this store's {id} signs with key {recorded}, but this instance has key {ours}: \
         instances that share a store must share the role keys (copy keys/{id}.ed25519 \
         from the first instance's data directory) and the master key"
    );
    Ok(())
}

pub(crate) fn partner_client(
    me: &PartnerId,
    key: &Arc<PartnerKeyPair>,
    peer: &PeerConfig,
    local: &str,
    clock: &Arc<dyn Clock>,
) -> PartnerClient {
    PartnerClient::new(
        PartnerClientConfig {
            me: me.clone(),
            key: key.clone(),
            peer: peer.id.clone(),
            peer_keys: peer.public_keys.clone(),
            base_url: peer.base_url.clone().unwrap_or_else(|| local.to_owned()),
        },
        clock.clone(),
    )
}

impl App {
    /// Binds the listener, opens and migrates the stores, wires the roles.
    pub async fn build(config: AppConfig) -> anyhow::Result<App> {
        anyhow::ensure!(
            config.wallet.is_some() || config.issuer.is_some(),
            "at least one role (wallet or issuer) must be configured"
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let local = loopback_base(addr);
        let clock = config.clock.clone();
        let metrics = Arc::new(Metrics::default());
        let mut openapi = OpenApiRouter::with_openapi(ApiDoc::openapi());
        let mut purgeable = Vec::new();
        let (stopping, stopping_rx) = watch::channel(false);

        let ctx = BuildContext {
            master_key: &config.master_key,
            sandbox: config.sandbox,
            local: &local,
            clock: &clock,
            metrics: &metrics,
            stopping: &stopping_rx,
            identity: config.sandbox.then(|| {
                Arc::new(paybridge_adapters::identity::SandboxIdentityAuthority::new(
                    clock.clone(),
                )) as Arc<dyn paybridge_adapters::identity::IdentityAuthority>
            }),
        };
        let mut sandbox_store: Option<Arc<dyn SandboxStore>> = None;
        let mut sandbox_relay_client = None;
        let mut wallet = None;
        if let Some(w) = &config.wallet {
            let role = wallet_role::build(w, &ctx).await?;
            purgeable.push((*role.store).clone());
            openapi = openapi.merge(role.routes);
            sandbox_store = Some(role.store);
            sandbox_relay_client = role.sandbox_relay_client;
            wallet = Some(role.service);
        }
        let mut issuer = None;
        if let Some(i) = &config.issuer {
            let role = issuer_role::build(i, &ctx).await?;
            purgeable.push((*role.store).clone());
            openapi = openapi.merge(role.routes);
            sandbox_store.get_or_insert(role.store);
            issuer = Some(role.service);
        }

        if config.sandbox {
            let store = sandbox_store.expect("a role is configured, so a store exists");
            let parties = SandboxParties {
                sms: Arc::new(SandboxSmsGateway::new(store.clone(), clock.clone())),
                relay: Arc::new(SandboxPushRelay::new(store.clone(), clock.clone())),
                store: store.clone(),
                relay_client: sandbox_relay_client,
            };
            let idem_store = match (&wallet, &issuer) {
                (Some(w), _) => w.store.clone() as Arc<dyn IdempotencyStore>,
                (None, Some(i)) => i.store.clone() as Arc<dyn IdempotencyStore>,
                (None, None) => unreachable!("checked above"),
            };
            let idem = Arc::new(Idempotency::new(
                idem_store,
                clock.clone(),
                &config.master_key,
                "sandbox",
            ));
            openapi = openapi.merge(routes::sandbox::router(parties, idem));
        }

        let openapi_json = Arc::new(OnceLock::new());
        openapi = openapi.merge(routes::system::router(routes::system::SystemState {
            wallet: wallet.clone(),
            issuer: issuer.clone(),
            metrics: metrics.clone(),
            openapi_json: openapi_json.clone(),
            metrics_token: config.metrics_token.clone().map(Arc::new),
        }));
        let (router, mut doc) = openapi.split_for_parts();
        // The partner router is mounted twice (wallet, and issuer under
        // /bank); operation ids must stay unique across the document.
        for (path, item) in doc.paths.paths.iter_mut() {
            if path.starts_with(ISSUER_PREFIX) {
                for op in [
                    &mut item.get,
                    &mut item.post,
                    &mut item.put,
                    &mut item.delete,
                    &mut item.patch,
                ]
                .into_iter()
                .flatten()
                {
                    if let Some(id) = &op.operation_id {
                        op.operation_id = Some(format!("bank_{id}"));
                    }
                }
            }
        }
        crate::openapi::document_common_answers(&mut doc);
        crate::openapi::document_cross_field_rules(&mut doc);
        openapi_json
            .set(
                doc.to_pretty_json()
                    .context("cannot render the OpenAPI document")?,
            )
            .expect("set once");

        let router = router
            .fallback(route_not_found)
            .layer(DefaultBodyLimit::max(crate::MAX_BODY_BYTES))
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                crate::REQUEST_TIMEOUT,
            ))
            .layer(CatchPanicLayer::new())
            .layer(axum::middleware::from_fn(envelope_errors))
            .layer(axum::middleware::from_fn_with_state(
                RateLimits::new(config.rate_limits),
                rate_limit,
            ))
            .layer(axum::middleware::from_fn_with_state(
                metrics,
                request_context,
            ));

        Ok(App {
            listener,
            router,
            addr,
            wallet,
            issuer,
            purgeable,
            clock,
            stopping,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        loopback_base(self.addr)
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes the
    /// requests in flight, stops the dispatchers and closes the stores.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for dispatcher in self
            .wallet
            .iter()
            .map(|w| w.dispatcher.clone())
            .chain(self.issuer.iter().map(|i| i.dispatcher.clone()))
        {
            tasks.push(tokio::spawn(dispatcher.run(stop_rx.clone())));
        }
        if let Some(w) = &self.wallet {
            tasks.push(tokio::spawn(background::payment_expiry_loop(
                w.clone(),
                stop_rx.clone(),
            )));
            tasks.push(tokio::spawn(background::payment_recovery_loop(
                w.clone(),
                stop_rx.clone(),
            )));
        }
        let vaults = self
            .wallet
            .iter()
            .map(|w| w.vault.clone())
            .chain(self.issuer.iter().map(|i| i.vault.clone()))
            .collect();
        tasks.push(tokio::spawn(background::key_refresh_loop(
            vaults,
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(background::purge_loop(
            self.purgeable.clone(),
            self.clock.clone(),
            stop_rx.clone(),
        )));

        let stopping = self.stopping;
        // The peer's address rides with each request (per-IP rate limits).
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, service)
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Push channels end, so the graceful shutdown can finish.
                let _ = stopping.send(true);
            })
            .await;
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
        for store in &self.purgeable {
            store.close().await;
        }
        result.context("the HTTP server failed")
    }
}

async fn route_not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::RouteNotFound,
        format!("no route for {method} {}", uri.path()),
    )
}
