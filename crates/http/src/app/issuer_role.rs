//! The issuer (bank) role, wired: its store, vault, partner client for the
//! wallet, dispatcher, seed files, and its routes under [`ISSUER_PREFIX`].

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use paybridge_adapters::device_push::PushHub;
use paybridge_adapters::dispatcher::OutboxDispatcher;
use paybridge_adapters::partner::PartnerDirectory;
use paybridge_crypto::password::PasswordHasher;
use paybridge_crypto::IndexPurpose;
use paybridge_issuer::seed::SeedFile;
use paybridge_issuer::virtual_cards::{
    sandbox_products, sandbox_token_bins, VirtualCardIssuing, SANDBOX_BLOCKED_ID_NUMBERS,
};
use paybridge_issuer::Issuer;
use paybridge_store::{IdempotencyStore, KeyStore, KeyVault, NonceStore, Store};
use utoipa_axum::router::OpenApiRouter;

use super::{partner_client, BuildContext, IssuerRoleConfig, ISSUER_PREFIX};
use crate::middleware::idempotency::Idempotency;
use crate::middleware::partner_auth::PartnerAuth;
use crate::routes;

/// The issuer role, built.
pub(super) struct IssuerRole {
    pub service: Issuer,
    pub routes: OpenApiRouter,
    pub store: Arc<Store>,
}

pub(super) async fn build(
    i: &IssuerRoleConfig,
    ctx: &BuildContext<'_>,
) -> anyhow::Result<IssuerRole> {
    // Held until the keys and seeds exist: instances that start together
    // on one database make them once, one after another.
    let (store, startup) = Store::open_for_startup(&i.store)
        .await
        .context("cannot open the issuer store")?;
    super::claim_signing_key(&store, &i.id, &i.key, ctx.clock).await?;
    let wallets = PartnerDirectory::new([partner_client(
        &i.id, &i.key, &i.wallet, ctx.local, ctx.clock,
    )]);
    let shared = Arc::new(store.clone());
    let dispatcher = Arc::new(OutboxDispatcher::new(
        shared.clone(),
        Arc::new(wallets.clone()),
        Arc::new(PushHub::default()),
        ctx.clock.clone(),
        ctx.metrics.dispatch_counters("issuer"),
    ));
    let vault = KeyVault::open(
        shared.clone() as Arc<dyn KeyStore>,
        ctx.master_key.clone(),
        "issuer",
        ctx.clock.now(),
    )
    .await
    .context("cannot open the issuer's encryption keys")?;
    let service = Issuer {
        id: i.id.clone(),
        name: i.name.clone(),
        store: shared.clone(),
        clock: ctx.clock.clone(),
        wallets,
        dispatcher,
        vault: Arc::new(vault),
        keys: ctx.master_key.derived_keys("issuer"),
        passwords: PasswordHasher::default(),
        bins: i.bins.clone(),
        virtual_cards: None,
    };
    let service = Issuer {
        virtual_cards: ctx.identity.clone().map(|identity| {
            let blocked = SANDBOX_BLOCKED_ID_NUMBERS
                .iter()
                .map(|n| service.keys.index.index(IndexPurpose::IdNumber, n))
                .collect();
            VirtualCardIssuing::new(
                sandbox_products(),
                sandbox_token_bins(),
                identity,
                blocked,
                &ctx.master_key.derive(i.id.as_str(), "emv-imk-ac"),
            )
        }),
        ..service
    };
    for (n, text) in i.seeds.iter().enumerate() {
        let seed = SeedFile::parse(text).with_context(|| format!("seed file #{}", n + 1))?;
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
    startup.release().await;
    let auth = Arc::new(PartnerAuth {
        me: i.id.clone(),
        key: i.key.clone(),
        known: HashMap::from([(i.wallet.id.clone(), i.wallet.public_keys.clone())]),
        nonces: shared.clone() as Arc<dyn NonceStore>,
        clock: ctx.clock.clone(),
    });
    let idem = Arc::new(Idempotency::new(
        shared.clone() as Arc<dyn IdempotencyStore>,
        ctx.clock.clone(),
        ctx.master_key,
        i.id.as_str(),
    ));
    let routes = OpenApiRouter::new().nest(
        ISSUER_PREFIX,
        routes::partner::router(Arc::new(service.clone()), auth.clone(), idem.clone())
            .merge(routes::binding_partner::issuer_router(
                service.clone(),
                auth.clone(),
                idem.clone(),
            ))
            .merge(routes::card_partner::issuer_router(
                service.clone(),
                auth,
                idem.clone(),
            ))
            .merge(routes::bank_app::router(service.clone(), idem)),
    );
    Ok(IssuerRole {
        service,
        routes,
        store: shared,
    })
}
