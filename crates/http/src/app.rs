//! Building and running the application.
//!
//! One process hosts the wallet, one issuer, or both (`--role all`, the
//! default). Even then the two reach each other only through the signed
//! partner API, over loopback: the wallet's client for the bank points at
//! `http://127.0.0.1:<port>/bank` and the bank's client for the wallet at
//! `http://127.0.0.1:<port>`. Each role has its own store.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use paybridge_adapters::device_push::PushHub;
use paybridge_adapters::dispatcher::OutboxDispatcher;
use paybridge_adapters::partner::PartnerDirectory;
use paybridge_adapters::push_relay::SandboxPushRelay;
use paybridge_adapters::sandbox::SandboxParties;
use paybridge_adapters::sms::SandboxSmsGateway;
use paybridge_client::{PartnerClient, PartnerClientConfig};
use paybridge_crypto::master::MasterKey;
use paybridge_crypto::password::PasswordHasher;
use paybridge_crypto::{PartnerKeyPair, PartnerPublicKey};
use paybridge_domain::card::BinRange;
use paybridge_domain::partner::PartnerId;
use paybridge_domain::payment_request::payment_request_ttl;
use paybridge_domain::{Clock, ErrorCode};
use paybridge_issuer::seed::SeedFile;
use paybridge_issuer::Issuer;
use paybridge_store::{
    IdempotencyStore, KeyStore, KeyVault, NonceStore, SandboxStore, Store, StoreConfig,
};
use paybridge_wallet::webauthn::{build_webauthn, WebauthnConfig};
use paybridge_wallet::Wallet;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::middleware::envelope::envelope_errors;
use crate::middleware::idempotency::Idempotency;
use crate::middleware::partner_auth::PartnerAuth;
use crate::middleware::request_context::request_context;
use crate::openapi::ApiDoc;
use crate::routes;

/// How often expired nonces and idempotency answers are purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);
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

fn partner_client(
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

        let mut wallet = None;
        // The sandbox OS push relay signs its calls with a key made now.
        let sandbox_relay_key = Arc::new(PartnerKeyPair::generate());
        let mut sandbox_relay_client = None;
        let mut sandbox_store: Option<Arc<dyn SandboxStore>> = None;
        if let Some(w) = &config.wallet {
            let store = Store::open(&w.store)
                .await
                .context("cannot open the wallet store")?;
            purgeable.push(store.clone());
            let issuers = PartnerDirectory::new(w.issuers.iter().map(|peer| {
                partner_client(
                    &w.id,
                    &w.key,
                    peer,
                    &format!("{local}{ISSUER_PREFIX}"),
                    &clock,
                )
            }));
            let push_hub = Arc::new(PushHub::default());
            let shared = Arc::new(store.clone());
            let vault = KeyVault::open(
                shared.clone() as Arc<dyn KeyStore>,
                config.master_key.clone(),
                "wallet",
                clock.now(),
            )
            .await
            .context("cannot open the wallet's encryption keys")?;
            let vault = Arc::new(vault);
            let dispatcher = Arc::new(
                OutboxDispatcher::new(
                    shared.clone(),
                    Arc::new(issuers.clone()),
                    push_hub.clone(),
                    clock.clone(),
                    metrics.dispatch_counters("wallet"),
                )
                .with_webhooks(Arc::new(
                    paybridge_wallet::webhooks::MerchantWebhooks::new(
                        shared.clone(),
                        vault.clone(),
                        clock.clone(),
                    ),
                )),
            );
            let sms: Option<Arc<dyn paybridge_adapters::sms::SmsGateway>> = config
                .sandbox
                .then(|| Arc::new(SandboxSmsGateway::new(shared.clone(), clock.clone())) as _);
            let service = Wallet {
                id: w.id.clone(),
                store: shared.clone(),
                clock: clock.clone(),
                issuers,
                push_hub,
                dispatcher,
                vault,
                keys: config.master_key.derived_keys("wallet"),
                passwords: PasswordHasher::default(),
                webauthn: Arc::new(
                    build_webauthn(&w.webauthn).context("invalid WebAuthn relying party")?,
                ),
                sms,
                app_origin: w.webauthn.origin.as_str().trim_end_matches('/').to_owned(),
                policy: Default::default(),
                relay: config
                    .sandbox
                    .then(|| Arc::new(SandboxPushRelay::new(shared.clone(), clock.clone())) as _),
                payment_request_ttl_secs: payment_request_ttl(w.payment_request_ttl_secs)
                    .map_err(|e| anyhow::anyhow!("payment request lifetime: {}", e.message))?,
            };
            // The OS push relays that may relay gestures: the configured
            // ones, and the sandbox relay of this process.
            let mut relays: HashMap<PartnerId, Vec<PartnerPublicKey>> = w
                .relays
                .iter()
                .map(|p| (p.id.clone(), p.public_keys.clone()))
                .collect();
            if config.sandbox {
                let relay_id: PartnerId = SANDBOX_RELAY_ID.parse().expect("a valid partner id");
                relays.insert(relay_id.clone(), vec![sandbox_relay_key.public()]);
                sandbox_relay_client = Some(PartnerClient::new(
                    PartnerClientConfig {
                        me: relay_id,
                        key: sandbox_relay_key.clone(),
                        peer: w.id.clone(),
                        peer_keys: vec![w.key.public()],
                        base_url: local.clone(),
                    },
                    clock.clone(),
                ));
            }
            let relay_auth = Arc::new(PartnerAuth {
                me: w.id.clone(),
                key: w.key.clone(),
                known: relays,
                nonces: shared.clone() as Arc<dyn NonceStore>,
                clock: clock.clone(),
            });
            let auth = Arc::new(PartnerAuth {
                me: w.id.clone(),
                key: w.key.clone(),
                known: w
                    .issuers
                    .iter()
                    .map(|p| (p.id.clone(), p.public_keys.clone()))
                    .collect::<HashMap<_, _>>(),
                nonces: shared.clone() as Arc<dyn NonceStore>,
                clock: clock.clone(),
            });
            let idem = Arc::new(Idempotency {
                store: shared.clone() as Arc<dyn IdempotencyStore>,
                clock: clock.clone(),
            });
            openapi = openapi
                .merge(routes::partner::router(
                    Arc::new(service.clone()),
                    auth.clone(),
                    idem.clone(),
                ))
                .merge(routes::binding_partner::wallet_router(
                    service.clone(),
                    auth,
                    idem.clone(),
                ))
                .merge(routes::bindings::router(service.clone()))
                .merge(routes::security_auth::router(service.clone()))
                .merge(routes::merchant_api::router(service.clone(), idem.clone()))
                .merge(routes::payments::router(service.clone()))
                .merge(routes::cross_device::router(service.clone(), idem.clone()))
                .merge(routes::cross_device::relay_router(
                    service.clone(),
                    relay_auth,
                ))
                .merge(routes::wallet_app::router(service.clone(), idem.clone()))
                .merge(routes::devices::router(
                    routes::devices::DevicesState {
                        wallet: service.clone(),
                        stopping: stopping_rx.clone(),
                    },
                    idem,
                ));
            if config.sandbox {
                service
                    .seed_sandbox_merchant()
                    .await
                    .context("cannot seed the sandbox merchant")?;
            }
            sandbox_store = Some(shared);
            wallet = Some(service);
        }

        let mut issuer = None;
        if let Some(i) = &config.issuer {
            let store = Store::open(&i.store)
                .await
                .context("cannot open the issuer store")?;
            purgeable.push(store.clone());
            let wallets =
                PartnerDirectory::new([partner_client(&i.id, &i.key, &i.wallet, &local, &clock)]);
            let shared = Arc::new(store.clone());
            let dispatcher = Arc::new(OutboxDispatcher::new(
                shared.clone(),
                Arc::new(wallets.clone()),
                Arc::new(PushHub::default()),
                clock.clone(),
                metrics.dispatch_counters("issuer"),
            ));
            let vault = KeyVault::open(
                shared.clone() as Arc<dyn KeyStore>,
                config.master_key.clone(),
                "issuer",
                clock.now(),
            )
            .await
            .context("cannot open the issuer's encryption keys")?;
            let service = Issuer {
                id: i.id.clone(),
                name: i.name.clone(),
                store: shared.clone(),
                clock: clock.clone(),
                wallets,
                dispatcher,
                vault: Arc::new(vault),
                keys: config.master_key.derived_keys("issuer"),
                passwords: PasswordHasher::default(),
                bins: i.bins.clone(),
            };
            for (n, text) in i.seeds.iter().enumerate() {
                let seed =
                    SeedFile::parse(text).with_context(|| format!("seed file #{}", n + 1))?;
                let report = service
                    .apply_seed(&seed)
                    .await
                    .with_context(|| format!("cannot apply seed file #{}", n + 1))?;
                tracing::info!(
                    customers = report.customers_created,
                    cards = report.cards_created,
                    kept = report.kept,
                    "seed applied"
                );
            }
            let auth = Arc::new(PartnerAuth {
                me: i.id.clone(),
                key: i.key.clone(),
                known: HashMap::from([(i.wallet.id.clone(), i.wallet.public_keys.clone())]),
                nonces: shared.clone() as Arc<dyn NonceStore>,
                clock: clock.clone(),
            });
            let idem = Arc::new(Idempotency {
                store: shared.clone() as Arc<dyn IdempotencyStore>,
                clock: clock.clone(),
            });
            openapi = openapi.nest(
                ISSUER_PREFIX,
                routes::partner::router(Arc::new(service.clone()), auth.clone(), idem.clone())
                    .merge(routes::binding_partner::issuer_router(
                        service.clone(),
                        auth,
                        idem,
                    ))
                    .merge(routes::bank_app::router(service.clone())),
            );
            if sandbox_store.is_none() {
                sandbox_store = Some(shared);
            }
            issuer = Some(service);
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
            let idem = Arc::new(Idempotency {
                store: idem_store,
                clock: clock.clone(),
            });
            openapi = openapi.merge(routes::sandbox::router(parties, idem));
        }

        let openapi_json = Arc::new(OnceLock::new());
        openapi = openapi.merge(routes::system::router(routes::system::SystemState {
            wallet: wallet.clone(),
            issuer: issuer.clone(),
            metrics: metrics.clone(),
            openapi_json: openapi_json.clone(),
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
            tasks.push(tokio::spawn(payment_expiry_loop(
                w.clone(),
                stop_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(purge_loop(
            self.purgeable.clone(),
            self.clock.clone(),
            stop_rx.clone(),
        )));

        let stopping = self.stopping;
        let result = axum::serve(self.listener, self.router)
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

/// Forgets nonces past their window and idempotency answers past 24 h.
async fn purge_loop(stores: Vec<Store>, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        for store in &stores {
            let now = clock.now();
            if let Err(e) = store.nonce_purge(now).await {
                tracing::warn!(error = %e, "nonce purge failed");
            }
            if let Err(e) = store.idempotency_purge(now).await {
                tracing::warn!(error = %e, "idempotency purge failed");
            }
        }
    }
}

/// How often pending cross-device payment requests past their expiry are
/// expired (and their terminal and phone told).
pub const PAYMENT_EXPIRY_INTERVAL: Duration = Duration::from_secs(5);

async fn payment_expiry_loop(wallet: Wallet, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PAYMENT_EXPIRY_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        match wallet.expire_due_payment_requests().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "payment requests expired"),
            Err(e) => tracing::warn!(error = %e, "payment request expiry failed"),
        }
    }
}
