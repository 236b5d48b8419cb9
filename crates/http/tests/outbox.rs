//! The outbox over real HTTP, on both stores: events reach the other party
//! signed; a partner that is down gets them later with backoff; events
//! claimed by a process that died are delivered after a restart.

use std::sync::Arc;

use paybridge_crypto::PartnerKeyPair;
use paybridge_domain::event::{Destination, NewEvent, RETRY_BASE_SECS};
use paybridge_domain::{Clock, ManualClock};
use paybridge_http::{App, AppConfig, IssuerRoleConfig, PeerConfig, WalletRoleConfig};
use paybridge_store::testing::StoreGuard;
use paybridge_store::Backend;
use paybridge_testkit::{bank_id, manual_clock, run, store_guard, wallet_id};

fn event(clock: &ManualClock) -> NewEvent {
    NewEvent::new(
        "binding.activated".parse().unwrap(),
        Destination::Partner(bank_id()),
        serde_json::json!({"binding": "bnd_test"}),
        clock.now(),
    )
}

struct Keys {
    wallet: Arc<PartnerKeyPair>,
    bank: Arc<PartnerKeyPair>,
    /// The same across restarts, as the data directory's master.key is.
    master: paybridge_crypto::master::MasterKey,
}

fn wallet_config(
    store: &StoreGuard,
    keys: &Keys,
    bank_url: String,
    clock: &ManualClock,
) -> AppConfig {
    AppConfig {
        master_key: keys.master.clone(),
        rate_limits: Default::default(),
        metrics_token: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        wallet: Some(WalletRoleConfig {
            webauthn: Default::default(),
            relays: Vec::new(),
            payment_request_ttl_secs: None,
            sms_global_hourly_cap: None,
            sms_ip_hourly_cap: None,
            pairing_ip_hourly_cap: None,
            card_media_retention_secs: None,
            sms_gateway: None,
            id: wallet_id(),
            store: store.config.clone(),
            key: keys.wallet.clone(),
            issuers: vec![PeerConfig {
                id: bank_id(),
                base_url: Some(bank_url),
                public_keys: vec![keys.bank.public()],
            }],
        }),
        issuer: None,
        sandbox: false,
        clock: Arc::new(clock.clone()),
    }
}

fn bank_config(
    store: &StoreGuard,
    keys: &Keys,
    listen: std::net::SocketAddr,
    wallet_url: String,
    clock: &ManualClock,
) -> AppConfig {
    AppConfig {
        master_key: keys.master.clone(),
        rate_limits: Default::default(),
        metrics_token: None,
        listen,
        wallet: None,
        issuer: Some(IssuerRoleConfig {
            bins: paybridge_issuer::sandbox_bins(),
            seeds: vec![paybridge_issuer::seed::SANDBOX_SEED.to_owned()],
            id: bank_id(),
            name: "Demo Bank".into(),
            store: store.config.clone(),
            key: keys.bank.clone(),
            wallet: PeerConfig {
                id: wallet_id(),
                base_url: Some(wallet_url),
                public_keys: vec![keys.wallet.public()],
            },
        }),
        sandbox: false,
        clock: Arc::new(clock.clone()),
    }
}

/// A port nothing listens on (yet).
fn free_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn delivers_later_when_the_partner_was_down(backend: Backend) {
    let (Some(wallet_store), Some(bank_store)) =
        (store_guard(backend).await, store_guard(backend).await)
    else {
        return;
    };
    let clock = manual_clock();
    let keys = Keys {
        wallet: Arc::new(PartnerKeyPair::generate()),
        bank: Arc::new(PartnerKeyPair::generate()),
        master: paybridge_testkit::test_master_key(),
    };
    let bank_addr = free_port();
    let wallet_app = App::build(wallet_config(
        &wallet_store,
        &keys,
        format!("http://{bank_addr}/bank"),
        &clock,
    ))
    .await
    .unwrap();
    let wallet_url = wallet_app.base_url();
    let wallet = wallet_app.wallet.clone().unwrap();
    // The wallet runs without its background dispatcher loop: the test drives rounds.
    let e = event(&clock);
    wallet
        .store
        .outbox_append(std::slice::from_ref(&e))
        .await
        .unwrap();

    let round = wallet.dispatcher.run_once().await.unwrap();
    assert_eq!(
        (round.claimed, round.delivered, round.failed),
        (1, 0, 1),
        "the bank is down"
    );
    // Not retried before its backoff.
    assert_eq!(wallet.dispatcher.run_once().await.unwrap().claimed, 0);

    let bank_app = App::build(bank_config(
        &bank_store,
        &keys,
        bank_addr,
        wallet_url,
        &clock,
    ))
    .await
    .unwrap();
    let bank = bank_app.issuer.clone().unwrap();
    let (stop_bank, bank_task) = run(bank_app);
    let (stop_wallet, wallet_task) = run(wallet_app);

    clock.advance(time::Duration::seconds(RETRY_BASE_SECS * 2));
    // The background dispatcher may get there first; either way it is delivered once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Wait for the wallet's record of the delivery (the bank commits the
    // event to its inbox a moment before the wallet hears the answer).
    while !wallet.store.outbox_get(&e.id).await.unwrap().unwrap().1 {
        wallet.dispatcher.run_once().await.unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "delivered after the bank came up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(bank.store.inbox_count(&wallet_id()).await.unwrap(), 1);
    let (stored, delivered) = wallet.store.outbox_get(&e.id).await.unwrap().unwrap();
    assert!(delivered);
    assert_eq!(stored.attempts, 1);
    let _ = stop_bank.send(());
    let _ = stop_wallet.send(());
    bank_task.await.unwrap().unwrap();
    wallet_task.await.unwrap().unwrap();
}

async fn redelivers_after_a_restart(backend: Backend) {
    let (Some(wallet_store), Some(bank_store)) =
        (store_guard(backend).await, store_guard(backend).await)
    else {
        return;
    };
    let clock = manual_clock();
    let keys = Keys {
        wallet: Arc::new(PartnerKeyPair::generate()),
        bank: Arc::new(PartnerKeyPair::generate()),
        master: paybridge_testkit::test_master_key(),
    };
    let bank_addr = free_port();

    // First life of the wallet: an event is claimed, then the process dies
    // before delivering it (simulated: claimed and never marked).
    let first = App::build(wallet_config(
        &wallet_store,
        &keys,
        format!("http://{bank_addr}/bank"),
        &clock,
    ))
    .await
    .unwrap();
    let wallet_url = first.base_url();
    let store = first.wallet.clone().unwrap().store;
    let e = event(&clock);
    store.outbox_append(std::slice::from_ref(&e)).await.unwrap();
    let lease = clock.now() + time::Duration::seconds(60);
    assert_eq!(
        store
            .outbox_claim_due(clock.now(), lease, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    drop(first);

    // The bank is up; the wallet restarts on the same store.
    let bank_app = App::build(bank_config(
        &bank_store,
        &keys,
        bank_addr,
        wallet_url,
        &clock,
    ))
    .await
    .unwrap();
    let bank = bank_app.issuer.clone().unwrap();
    let (stop_bank, bank_task) = run(bank_app);
    let second = App::build(wallet_config(
        &wallet_store,
        &keys,
        format!("http://{bank_addr}/bank"),
        &clock,
    ))
    .await
    .unwrap();
    let wallet = second.wallet.clone().unwrap();
    assert_eq!(
        wallet.dispatcher.run_once().await.unwrap().claimed,
        0,
        "still leased"
    );
    clock.advance(time::Duration::seconds(61));
    let round = wallet.dispatcher.run_once().await.unwrap();
    assert_eq!((round.claimed, round.delivered), (1, 1));
    assert_eq!(bank.store.inbox_count(&wallet_id()).await.unwrap(), 1);
    let _ = stop_bank.send(());
    bank_task.await.unwrap().unwrap();
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn delivers_later_when_the_partner_was_down() {
        super::delivers_later_when_the_partner_was_down(paybridge_store::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redelivers_after_a_restart() {
        super::redelivers_after_a_restart(paybridge_store::Backend::Sqlite).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn delivers_later_when_the_partner_was_down() {
        super::delivers_later_when_the_partner_was_down(paybridge_store::Backend::Postgres).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redelivers_after_a_restart() {
        super::redelivers_after_a_restart(paybridge_store::Backend::Postgres).await;
    }
}
