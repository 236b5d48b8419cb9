//! Roles in separate processes (here: separate apps and listeners), as
//! `--role wallet` and `--role issuer` run them: one wallet with two banks,
//! each reaching the other only by signed HTTP, and no bank able to speak
//! for another.

use std::sync::Arc;

use paybridge_api::partner::PartnerPing;
use paybridge_client::{PartnerClient, PartnerClientConfig, PartnerError};
use paybridge_crypto::PartnerKeyPair;
use paybridge_domain::partner::PartnerId;
use paybridge_http::{App, AppConfig, IssuerRoleConfig, PeerConfig, WalletRoleConfig};
use paybridge_store::Backend;
use paybridge_testkit::{manual_clock, run, store_guard, wallet_id};

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn one_wallet_two_banks(backend: Backend) {
    let (Some(ws), Some(s1), Some(s2)) = (
        store_guard(backend).await,
        store_guard(backend).await,
        store_guard(backend).await,
    ) else {
        return;
    };
    let clock = manual_clock();
    let wallet_key = Arc::new(PartnerKeyPair::generate());
    let banks: Vec<(PartnerId, Arc<PartnerKeyPair>, std::net::SocketAddr)> = ["bank-a", "bank-b"]
        .iter()
        .map(|id| {
            (
                id.parse().unwrap(),
                Arc::new(PartnerKeyPair::generate()),
                free_addr(),
            )
        })
        .collect();
    let wallet_addr = free_addr();
    let wallet_app = App::build(AppConfig {
        master_key: paybridge_testkit::test_master_key(),
        rate_limits: Default::default(),
        metrics_token: None,
        listen: wallet_addr,
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
            store: ws.config.clone(),
            key: wallet_key.clone(),
            issuers: banks
                .iter()
                .map(|(id, key, addr)| PeerConfig {
                    id: id.clone(),
                    base_url: Some(format!("http://{addr}/bank")),
                    public_keys: vec![key.public()],
                })
                .collect(),
        }),
        issuer: None,
        sandbox: false,
        clock: Arc::new(clock.clone()),
    })
    .await
    .unwrap();
    let wallet = wallet_app.wallet.clone().unwrap();
    let mut running = vec![run(wallet_app)];
    for ((id, key, addr), store) in banks.iter().zip([&s1, &s2]) {
        let app = App::build(AppConfig {
            master_key: paybridge_testkit::test_master_key(),
            rate_limits: Default::default(),
            metrics_token: None,
            listen: *addr,
            wallet: None,
            issuer: Some(IssuerRoleConfig {
                bins: paybridge_issuer::sandbox_bins(),
                seeds: vec![paybridge_issuer::seed::SANDBOX_SEED.to_owned()],
                id: id.clone(),
                name: id.to_string(),
                store: store.config.clone(),
                key: key.clone(),
                wallet: PeerConfig {
                    id: wallet_id(),
                    base_url: Some(format!("http://{wallet_addr}")),
                    public_keys: vec![wallet_key.public()],
                },
            }),
            sandbox: false,
            clock: Arc::new(clock.clone()),
        })
        .await
        .unwrap();
        // The issuer alone serves no wallet routes.
        running.push(run(app));
    }

    // The wallet reaches each bank, and each bank the wallet.
    for (id, key, addr) in &banks {
        let ping: PartnerPing = wallet
            .issuers
            .get(id)
            .unwrap()
            .get("/v1/partner/ping")
            .await
            .unwrap();
        assert_eq!(
            (ping.partner.as_str(), ping.caller.as_str()),
            (id.as_str(), "wallet")
        );
        let to_wallet = PartnerClient::new(
            PartnerClientConfig {
                me: id.clone(),
                key: key.clone(),
                peer: wallet_id(),
                peer_keys: vec![wallet_key.public()],
                base_url: format!("http://{wallet_addr}"),
            },
            Arc::new(clock.clone()),
        );
        let ping: PartnerPing = to_wallet.get("/v1/partner/ping").await.unwrap();
        assert_eq!(ping.caller, id.as_str());
        let health: serde_json::Value = reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["roles"], serde_json::json!(["issuer"]));
    }
    // Bank B cannot speak for bank A: its key is not A's.
    let (a, _, _) = &banks[0];
    let (_, b_key, _) = &banks[1];
    let impersonator = PartnerClient::new(
        PartnerClientConfig {
            me: a.clone(),
            key: b_key.clone(),
            peer: wallet_id(),
            peer_keys: vec![wallet_key.public()],
            base_url: format!("http://{wallet_addr}"),
        },
        Arc::new(clock.clone()),
    );
    let err = impersonator
        .get::<PartnerPing>("/v1/partner/ping")
        .await
        .unwrap_err();
    assert!(
        matches!(err, PartnerError::Refused { status: 401, ref code, .. } if code == "signature_invalid"),
        "{err:?}"
    );
    // A wallet-only process serves no bank routes.
    let resp = reqwest::get(format!("http://{wallet_addr}/bank/v1/partner/ping"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    for (stop, task) in running {
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_one_wallet_two_banks() {
    one_wallet_two_banks(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_one_wallet_two_banks() {
    one_wallet_two_banks(Backend::Postgres).await;
}

/// The two roles' signing keys of one installation.
#[derive(Clone)]
struct RoleKeys {
    wallet: Arc<PartnerKeyPair>,
    issuer: Arc<PartnerKeyPair>,
}

impl RoleKeys {
    fn generate() -> Self {
        Self {
            wallet: Arc::new(PartnerKeyPair::generate()),
            issuer: Arc::new(PartnerKeyPair::generate()),
        }
    }
}

/// Both roles, sandbox on, on the given stores, listening anywhere.
fn both_roles(
    wallet_store: &paybridge_store::StoreConfig,
    issuer_store: &paybridge_store::StoreConfig,
    master: &paybridge_crypto::master::MasterKey,
    keys: &RoleKeys,
) -> AppConfig {
    let wallet_key = keys.wallet.clone();
    let issuer_key = keys.issuer.clone();
    let bank: PartnerId = "demo-bank".parse().unwrap();
    AppConfig {
        master_key: master.clone(),
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
            store: wallet_store.clone(),
            key: wallet_key.clone(),
            issuers: vec![PeerConfig {
                id: bank.clone(),
                base_url: None,
                public_keys: vec![issuer_key.public()],
            }],
        }),
        issuer: Some(IssuerRoleConfig {
            bins: paybridge_issuer::sandbox_bins(),
            seeds: vec![paybridge_issuer::seed::SANDBOX_SEED.to_owned()],
            id: bank.clone(),
            name: "Demo Bank".into(),
            store: issuer_store.clone(),
            key: issuer_key,
            wallet: PeerConfig {
                id: wallet_id(),
                base_url: None,
                public_keys: vec![wallet_key.public()],
            },
        }),
        sandbox: true,
        clock: Arc::new(manual_clock()),
    }
}

/// Several `serve` instances started at once on a fresh PostgreSQL: the
/// schema, the migrations, the roles' keys and the sandbox seeds are each
/// made once, and every instance starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_several_instances_start_together_on_a_fresh_database() {
    for _ in 0..3 {
        let (Some(ws), Some(is)) = (
            store_guard(Backend::Postgres).await,
            store_guard(Backend::Postgres).await,
        ) else {
            return;
        };
        let master = paybridge_testkit::test_master_key();
        let keys = RoleKeys::generate();
        let configs: Vec<AppConfig> = (0..4)
            .map(|_| both_roles(&ws.config, &is.config, &master, &keys))
            .collect();
        let started = futures::future::join_all(configs.into_iter().map(App::build)).await;
        for app in &started {
            assert!(
                app.is_ok(),
                "an instance failed to start: {:?}",
                app.as_ref().err()
            );
        }
    }
}

/// Attack (or slip): an instance joins a store with role keys of its own.
/// Its partner calls would all be refused and its answers distrusted, so
/// it refuses to start and says what must be shared.
async fn an_instance_with_other_role_keys_refuses_to_start(backend: Backend) {
    let (Some(ws), Some(is)) = (store_guard(backend).await, store_guard(backend).await) else {
        return;
    };
    let master = paybridge_testkit::test_master_key();
    let keys = RoleKeys::generate();
    let first = App::build(both_roles(&ws.config, &is.config, &master, &keys))
        .await
        .expect("the first instance starts");
    let same = App::build(both_roles(&ws.config, &is.config, &master, &keys)).await;
    assert!(same.is_ok(), "{:?}", same.err());
    for other in [
        RoleKeys {
            wallet: Arc::new(PartnerKeyPair::generate()),
            ..keys.clone()
        },
        RoleKeys {
            issuer: Arc::new(PartnerKeyPair::generate()),
            ..keys.clone()
        },
    ] {
        let refused = App::build(both_roles(&ws.config, &is.config, &master, &other)).await;
        let Err(refused) = refused else {
            panic!("an instance with other role keys is refused");
        };
        let said = format!("{refused:#}");
        assert!(said.contains("must share the role keys"), "{said}");
    }
    drop((first, same));
}

#[tokio::test]
async fn sqlite_an_instance_with_other_role_keys_refuses_to_start() {
    an_instance_with_other_role_keys_refuses_to_start(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_an_instance_with_other_role_keys_refuses_to_start() {
    an_instance_with_other_role_keys_refuses_to_start(Backend::Postgres).await;
}
