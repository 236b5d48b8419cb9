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
use paybridge_adapters::sms::SandboxSmsGateway;
use paybridge_client::{PartnerClient, PartnerClientConfig};
use paybridge_crypto::password::PasswordHasher;
use paybridge_crypto::{PartnerKeyPair, PartnerPublicKey};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::payment_request::payment_request_ttl;
use paybridge_store::{IdempotencyStore, KeyStore, KeyVault, NonceStore, Store};
use paybridge_wallet::webauthn::build_webauthn;
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
    // The sandbox OS push relay signs its calls with a key made now.
    let sandbox_relay_key = Arc::new(PartnerKeyPair::generate());
    let mut sandbox_relay_client = None;
    let store = Store::open(&w.store)
        .await
        .context("cannot open the wallet store")?;
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
    let shared = Arc::new(store.clone());
    let vault = KeyVault::open(
        shared.clone() as Arc<dyn KeyStore>,
        ctx.master_key.clone(),
        "wallet",
        ctx.clock.now(),
    )
    .await
    .context("cannot open the wallet's encryption keys")?;
    let vault = Arc::new(vault);
    let dispatcher = Arc::new(
        OutboxDispatcher::new(
            shared.clone(),
            Arc::new(issuers.clone()),
            push_hub.clone(),
            ctx.clock.clone(),
            ctx.metrics.dispatch_counters("wallet"),
        )
        .with_webhooks(Arc::new(paybridge_wallet::webhooks::MerchantWebhooks::new(
            shared.clone(),
            vault.clone(),
            ctx.clock.clone(),
        ))),
    );
    let sms: Option<Arc<dyn paybridge_adapters::sms::SmsGateway>> = ctx
        .sandbox
        .then(|| Arc::new(SandboxSmsGateway::new(shared.clone(), ctx.clock.clone())) as _);
    let service = Wallet {
        id: w.id.clone(),
        store: shared.clone(),
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
            .then(|| Arc::new(SandboxPushRelay::new(shared.clone(), ctx.clock.clone())) as _),
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
    if ctx.sandbox {
        let relay_id: PartnerId = SANDBOX_RELAY_ID.parse().expect("a valid partner id");
        relays.insert(relay_id.clone(), vec![sandbox_relay_key.public()]);
        sandbox_relay_client = Some(PartnerClient::new(
            PartnerClientConfig {
                me: relay_id,
                key: sandbox_relay_key.clone(),
                peer: w.id.clone(),
                peer_keys: vec![w.key.public()],
                base_url: ctx.local.to_owned(),
            },
            ctx.clock.clone(),
        ));
    }
    let relay_auth = Arc::new(PartnerAuth {
        me: w.id.clone(),
        key: w.key.clone(),
        known: relays,
        nonces: shared.clone() as Arc<dyn NonceStore>,
        clock: ctx.clock.clone(),
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
        clock: ctx.clock.clone(),
    });
    let idem = Arc::new(Idempotency {
        store: shared.clone() as Arc<dyn IdempotencyStore>,
        clock: ctx.clock.clone(),
    });
    let routes = OpenApiRouter::new()
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
                stopping: ctx.stopping.clone(),
            },
            idem,
        ));
    if ctx.sandbox {
        service
            .seed_sandbox_merchant()
            .await
            .context("cannot seed the sandbox merchant")?;
    }
    Ok(WalletRole {
        service,
        routes,
        store: shared,
        sandbox_relay_client,
    })
}
