//! The wallet role, wired: its store, vault, partner clients for the
//! banks, dispatcher (push channels, partner events, merchant webhooks),
//! the OS push relays it trusts, and its routes.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use paybridge_adapters::device_push::PushHub;
use paybridge_adapters::dispatcher::OutboxDispatcher;
use paybridge_adapters::partner::PartnerDirectory;
use paybridge_adapters::push_relay::SandboxPushRelay;
use paybridge_adapters::sms::{HttpSmsGateway, SandboxSmsGateway};
use paybridge_client::{PartnerClient, PartnerClientConfig};
use paybridge_crypto::device_proof::NonceKey;
use paybridge_crypto::password::PasswordHasher;
use paybridge_crypto::{PartnerKeyPair, PartnerPublicKey};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::payment_request::payment_request_ttl;
use paybridge_store::{IdempotencyStore, KeyStore, KeyVault, NonceStore, Store};
use paybridge_wallet::device_proof::DeviceProofs;
use paybridge_wallet::webauthn::build_webauthn;
use paybridge_wallet::webhook_guard::EndpointPolicy;
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;

use super::{partner_client, BuildContext, WalletRoleConfig, ISSUER_PREFIX, SANDBOX_RELAY_ID};
use crate::middleware::idempotency::Idempotency;
use crate::middleware::partner_auth::PartnerAuth;
use crate::routes;

/// The wallet role, built.
pub(super) struct WalletRole {
    pub service: Wallet,
    pub routes: OpenApiRouter,
    pub store: Arc<Store>,
    /// A client signing as the in-process sandbox OS push relay (sandbox only).
    pub sandbox_relay_client: Option<PartnerClient>,
}

pub(super) async fn build(
    w: &WalletRoleConfig,
    ctx: &BuildContext<'_>,
) -> anyhow::Result<WalletRole> {
    // Held until the keys and the sandbox seed exist: instances that start
    // together on one database make them once, one after another.
    let (store, startup) = Store::open_for_startup(&w.store)
        .await
        .context("cannot open the wallet store")?;
    super::claim_signing_key(&store, &w.id, &w.key, ctx.clock).await?;
    let store = Arc::new(store);
    let service = service(w, ctx, store.clone()).await?;
    let (relay_auth, sandbox_relay_client) = relays(w, ctx, &store);
    let routes = routes(w, ctx, &service, &store, relay_auth);
    if ctx.sandbox {
        service
            .seed_sandbox_merchant()
            .await
            .context("cannot seed the sandbox merchant")?;
    }
    startup.release().await;
    Ok(WalletRole {
        service,
        routes,
        store,
        sandbox_relay_client,
    })
}

/// The wallet's services on `store`, with their partners and gateways.
async fn service(
    w: &WalletRoleConfig,
    ctx: &BuildContext<'_>,
    store: Arc<Store>,
) -> anyhow::Result<Wallet> {
    let issuers = PartnerDirectory::new(w.issuers.iter().map(|peer| {
        partner_client(
            &w.id,
            &w.key,
            peer,
            &format!("{}{ISSUER_PREFIX}", ctx.local),
            ctx.clock,
        )
    }));
    let push_hub = Arc::new(PushHub::default());
    let vault = Arc::new(
        KeyVault::open(
            store.clone() as Arc<dyn KeyStore>,
            ctx.master_key.clone(),
            "wallet",
            ctx.clock.now(),
        )
        .await
        .context("cannot open the wallet's encryption keys")?,
    );
    let dispatcher = Arc::new(
        OutboxDispatcher::new(
            store.clone(),
            Arc::new(issuers.clone()),
            push_hub.clone(),
            ctx.clock.clone(),
            ctx.metrics.dispatch_counters("wallet"),
        )
        .with_webhooks(Arc::new(paybridge_wallet::webhooks::MerchantWebhooks::new(
            store.clone(),
            vault.clone(),
            ctx.clock.clone(),
            webhook_policy(ctx.sandbox),
        ))),
    );
    let sms: Option<Arc<dyn paybridge_adapters::sms::SmsGateway>> = match &w.sms_gateway {
        Some(provider) => Some(Arc::new(HttpSmsGateway::new(provider.clone()))),
        None if ctx.sandbox => Some(Arc::new(SandboxSmsGateway::new(
            store.clone(),
            ctx.clock.clone(),
        ))),
        None => None,
    };
    Ok(Wallet {
        id: w.id.clone(),
        store: store.clone(),
        clock: ctx.clock.clone(),
        issuers,
        push_hub,
        dispatcher,
        vault,
        keys: ctx.master_key.derived_keys("wallet"),
        passwords: PasswordHasher::default(),
        webauthn: Arc::new(build_webauthn(&w.webauthn).context("invalid WebAuthn relying party")?),
        sms,
        app_origin: w.webauthn.origin.as_str().trim_end_matches('/').to_owned(),
        policy: Default::default(),
        relay: ctx
            .sandbox
            .then(|| Arc::new(SandboxPushRelay::new(store.clone(), ctx.clock.clone())) as _),
        payment_request_ttl_secs: payment_request_ttl(w.payment_request_ttl_secs)
            .map_err(|e| anyhow::anyhow!("payment request lifetime: {}", e.message))?,
        webhook_policy: webhook_policy(ctx.sandbox),
        sms_caps: {
            let default = paybridge_wallet::otp::SmsCaps::default();
            paybridge_wallet::otp::SmsCaps {
                per_ip_hour: w.sms_ip_hourly_cap.unwrap_or(default.per_ip_hour),
                global_per_hour: w.sms_global_hourly_cap.unwrap_or(default.global_per_hour),
            }
        },
        pairing_ip_hourly_cap: w.pairing_ip_hourly_cap.map_or(
            paybridge_domain::device_pairing::MAX_PAIRINGS_PER_ADDRESS_HOUR,
            i64::from,
        ),
        task_key: Arc::new(paybridge_crypto::signed_message::MessageKey::from_seed(
            &ctx.master_key.derive("wallet", "execution-task-signing"),
        )),
        identity: ctx.identity.clone(),
        card_media_retention_secs: w.card_media_retention_secs.map_or(0, i64::from),
        device_proofs: Arc::new(DeviceProofs::new(
            NonceKey::from_bytes(*ctx.master_key.derive("wallet", "dpop-nonce")),
            w.webauthn.origin.as_str(),
        )),
    })
}

/// Where webhooks may go: the sandbox posts to receivers on this machine.
fn webhook_policy(sandbox: bool) -> EndpointPolicy {
    if sandbox {
        EndpointPolicy::SANDBOX
    } else {
        EndpointPolicy::PUBLIC_HTTPS
    }
}

/// The OS push relays that may relay gestures: the configured ones, and
/// (sandbox) this process's own relay, whose client signs with a key made now.
fn relays(
    w: &WalletRoleConfig,
    ctx: &BuildContext<'_>,
    store: &Arc<Store>,
) -> (Arc<PartnerAuth>, Option<PartnerClient>) {
    let mut known: HashMap<PartnerId, Vec<PartnerPublicKey>> = w
        .relays
        .iter()
        .map(|p| (p.id.clone(), p.public_keys.clone()))
        .collect();
    let mut sandbox_client = None;
    if ctx.sandbox {
        let key = Arc::new(PartnerKeyPair::generate());
        let relay_id: PartnerId = SANDBOX_RELAY_ID.parse().expect("a valid partner id");
        known.insert(relay_id.clone(), vec![key.public()]);
        sandbox_client = Some(PartnerClient::new(
            PartnerClientConfig {
                me: relay_id,
                key,
                peer: w.id.clone(),
                peer_keys: vec![w.key.public()],
                base_url: ctx.local.to_owned(),
            },
            ctx.clock.clone(),
        ));
    }
    (partner_auth(w, ctx, store, known), sandbox_client)
}

/// Checks partner signatures for calls to this wallet from `known`.
fn partner_auth(
    w: &WalletRoleConfig,
    ctx: &BuildContext<'_>,
    store: &Arc<Store>,
    known: HashMap<PartnerId, Vec<PartnerPublicKey>>,
) -> Arc<PartnerAuth> {
    Arc::new(PartnerAuth {
        me: w.id.clone(),
        key: w.key.clone(),
        known,
        nonces: store.clone() as Arc<dyn NonceStore>,
        clock: ctx.clock.clone(),
    })
}

/// Every wallet route: the banks' partner API, the relays' gestures, the
/// wallet app, merchants and devices.
fn routes(
    w: &WalletRoleConfig,
    ctx: &BuildContext<'_>,
    service: &Wallet,
    store: &Arc<Store>,
    relay_auth: Arc<PartnerAuth>,
) -> OpenApiRouter {
    let banks = w
        .issuers
        .iter()
        .map(|p| (p.id.clone(), p.public_keys.clone()))
        .collect();
    let auth = partner_auth(w, ctx, store, banks);
    let idem = Arc::new(Idempotency::new(
        store.clone() as Arc<dyn IdempotencyStore>,
        ctx.clock.clone(),
        ctx.master_key,
        w.id.as_str(),
    ));
    OpenApiRouter::new()
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
        .merge(routes::bindings::router(service.clone(), idem.clone()))
        .merge(routes::security_auth::router(service.clone()))
        .merge(routes::merchant_api::router(service.clone(), idem.clone()))
        .merge(routes::payments::router(service.clone(), idem.clone()))
        .merge(routes::cross_device::router(service.clone(), idem.clone()))
        .merge(routes::cross_device::relay_router(
            service.clone(),
            relay_auth,
        ))
        .merge(routes::device_pairings::router(
            service.clone(),
            idem.clone(),
        ))
        .merge(routes::transfer_agreements::router(service.clone()))
        .merge(routes::transfer_payments::router(
            service.clone(),
            idem.clone(),
        ))
        .merge(routes::virtual_cards::router(service.clone(), idem.clone()))
        .merge(routes::wallet_app::router(service.clone(), idem.clone()))
        .merge(routes::devices::router(
            routes::devices::DevicesState {
                wallet: service.clone(),
                stopping: ctx.stopping.clone(),
            },
            idem,
        ))
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            crate::middleware::session_auth::device_nonce,
        ))
}
