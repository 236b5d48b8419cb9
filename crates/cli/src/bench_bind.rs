//! `paybridge bench bind`: completed bindings of flow F1 per second. An
//! in-process server (both roles, sandbox SMS) runs on a fresh store. Each
//! binding has its own bank customer and wallet account, prepared before the
//! clock starts (Argon2id hashing dominates preparation, not the flow). The
//! timed part is the flow itself: the bank asks for a binding address (signed
//! partner call), the wallet app claims it, confirms (OTP through the SMS
//! gateway), reads the code and completes (signed call back to the bank,
//! which opens the quick-pay agreement). At the end every binding must be
//! active on both sides.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use paybridge_crypto::master::MasterKey;
use paybridge_crypto::{PartnerKeyPair, Secret};
use paybridge_domain::card::{CardType, Expiry};
use paybridge_domain::identity::{IdNumber, PersonName};
use paybridge_domain::ids::{CardId, CustomerId};
use paybridge_domain::{Currency, Money, SystemClock};
use paybridge_http::{App, AppConfig, IssuerRoleConfig, PeerConfig, WalletRoleConfig};
use paybridge_issuer::bindings::{BindingMode, BindingStart};
use paybridge_issuer::customers::{NewCard, NewCustomer};
use paybridge_issuer::{sandbox_bins, Issuer};
use paybridge_store::StoreConfig;
use paybridge_wallet::Wallet;
use serde_json::{json, Value};

use crate::bench::{BenchStore, Tally};

/// The login password of every bench wallet account.
pub const BENCH_LOGIN_PASSWORD: &str = "Bench wallet 2026";
/// The payment password each bench account chooses when its card binds.
pub const BENCH_PIN: &str = "482916";

#[derive(Debug, Clone, Args)]
pub struct BindBenchArgs {
    /// Which store the in-process server runs on (a fresh SQLite file or
    /// PostgreSQL schema per role, removed afterwards).
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: BenchStore,
    /// Concurrent customers binding.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Bindings to complete (each with its own customer and wallet account).
    #[arg(long, default_value_t = 200)]
    pub bindings: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
    /// PostgreSQL to use with `--store postgres`.
    #[arg(
        long,
        env = "PAYBRIDGE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub database_url: String,
}

/// One prepared pair: the bank's customer and card, the wallet's session.
pub(crate) struct Pair {
    pub(crate) customer: CustomerId,
    pub(crate) card: CardId,
    pub(crate) phone: String,
    pub(crate) token: String,
}

pub async fn bind(args: BindBenchArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.concurrency >= 1 && args.bindings >= 1,
        "--concurrency and --bindings must be at least 1"
    );
    let app = BenchApp::start("bind", args.store, &args.database_url, args.concurrency).await?;
    let result = run(&args, &app.base, app.wallet.clone(), app.issuer.clone()).await;
    app.finish().await;
    result
}

/// An in-process server (both roles, sandbox on) on a fresh store, for a bench.
pub(crate) struct BenchApp {
    pub(crate) base: String,
    pub(crate) wallet: Wallet,
    pub(crate) issuer: Issuer,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: std::path::PathBuf,
    stores: [StoreConfig; 2],
}

impl BenchApp {
    pub(crate) async fn start(
        scenario: &str,
        bench_store: BenchStore,
        database_url: &str,
        concurrency: usize,
    ) -> anyhow::Result<BenchApp> {
        let suffix = format!("{:012x}", rand::random::<u64>() >> 16);
        let dir = std::env::temp_dir().join(format!("paybridge-bench-{scenario}-{suffix}"));
        let store = |role: &str| match bench_store {
            BenchStore::Sqlite => StoreConfig::Sqlite {
                path: dir.join(format!("{role}.db")),
            },
            BenchStore::Postgres => StoreConfig::Postgres {
                url: database_url.to_owned(),
                schema: format!("bench_{suffix}_{role}"),
                max_connections: (concurrency as u32 * 2).clamp(4, 64),
            },
        };
        let (wallet_store, issuer_store) = (store("wallet"), store("issuer"));
        let (wkey, ikey) = (
            Arc::new(PartnerKeyPair::generate()),
            Arc::new(PartnerKeyPair::generate()),
        );
        let app = App::build(AppConfig {
            listen: "127.0.0.1:0".parse()?,
            wallet: Some(WalletRoleConfig {
                id: "wallet".parse()?,
                store: wallet_store.clone(),
                key: wkey.clone(),
                issuers: vec![PeerConfig {
                    id: "demo-bank".parse()?,
                    base_url: None,
                    public_keys: vec![ikey.public()],
                }],
                webauthn: Default::default(),
                relays: Vec::new(),
                payment_request_ttl_secs: None,
                sms_global_hourly_cap: Some(u32::MAX),
                // Every simulated phone texts from 127.0.0.1 (see the rate
                // limits below); each phone and account keeps its budget.
                sms_ip_hourly_cap: Some(0),
                // Every bench device pairs from this machine.
                pairing_ip_hourly_cap: Some(0),
                card_media_retention_secs: None,
                sms_gateway: None,
            }),
            issuer: Some(IssuerRoleConfig {
                id: "demo-bank".parse()?,
                name: "Demo Bank".into(),
                store: issuer_store.clone(),
                key: ikey,
                wallet: PeerConfig {
                    id: "wallet".parse()?,
                    base_url: None,
                    public_keys: vec![wkey.public()],
                },
                bins: sandbox_bins(),
                seeds: Vec::new(),
            }),
            sandbox: true,
            clock: Arc::new(SystemClock),
            master_key: MasterKey::from_bytes(MasterKey::generate()),
            // Every simulated client is 127.0.0.1: a per-IP limit would
            // measure the limit, not the server. Each credential keeps its.
            rate_limits: paybridge_http::RateLimitConfig {
                per_ip: None,
                ..Default::default()
            },
            metrics_token: None,
        })
        .await?;
        let base = app.base_url();
        let wallet = app.wallet.clone().context("wallet role")?;
        let issuer = app.issuer.clone().context("issuer role")?;
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Ok(BenchApp {
            base,
            wallet,
            issuer,
            stop,
            server,
            dir,
            stores: [wallet_store, issuer_store],
        })
    }

    /// Stops the server and drops what the bench created.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        let _ = std::fs::remove_dir_all(&self.dir);
        for s in self.stores {
            if let StoreConfig::Postgres { url, schema, .. } = s {
                paybridge_store::testing::drop_schema(&url, &schema);
            }
        }
    }
}

/// A bank customer with a card, and a wallet account for the same phone
/// (opened over HTTP like the app does: the code comes back from the
/// sandbox inbox).
pub(crate) async fn prepare(
    i: usize,
    base: &str,
    wallet: &Wallet,
    issuer: &Issuer,
) -> anyhow::Result<Pair> {
    let phone = format!("137{:08}", i);
    let customer = issuer
        .create_customer(&NewCustomer {
            username: format!("bench.{i}"),
            password: Secret::new("Bench#2026".into()),
            name: PersonName::parse(&format!("Bench Customer {i}"))?,
            id_number: IdNumber::complete(&format!("110105{:011}", i)),
            phone: phone.parse()?,
        })
        .await?;
    let card = issuer
        .issue_card(
            &customer.id,
            &NewCard {
                pan: None,
                card_type: CardType::Debit,
                expiry: Expiry::new(12, 2035)?,
                opening_balance: Money::new(100_000, Currency::CNY),
                credit_limit_minor: 0,
            },
        )
        .await?;
    let phone_number = phone.parse()?;
    paybridge_devices::Phone::new(base, &phone)
        .register(BENCH_LOGIN_PASSWORD)
        .await
        .context("opening the wallet account")?;
    let session = wallet
        .login(
            &phone_number,
            BENCH_LOGIN_PASSWORD,
            None,
            &paybridge_wallet::device_proof::PresentedProof::NONE,
        )
        .await?;
    Ok(Pair {
        customer: customer.id,
        card: card.id,
        phone,
        token: session.token.expose().clone(),
    })
}

pub(crate) async fn post(
    client: &reqwest::Client,
    url: String,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = client.post(url).bearer_auth(token);
    // POSTs that create or move something carry an Idempotency-Key.
    req = req.header(
        "idempotency-key",
        format!("bench-{:032x}", rand::random::<u128>()),
    );
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "{status}: {v}");
    Ok(v)
}

/// One binding, timed from the bank's request to the active answer.
pub(crate) async fn one_binding(
    base: &str,
    client: &reqwest::Client,
    wallet: &Wallet,
    issuer: &Issuer,
    p: &Pair,
) -> anyhow::Result<String> {
    let BindingStart::Qr(address) = issuer
        .start_wallet_binding(&p.customer, &p.card, BindingMode::Qr)
        .await?
    else {
        anyhow::bail!("no binding address");
    };
    let claimed = post(
        client,
        format!("{base}/v1/bindings/claims"),
        &p.token,
        Some(json!({"address": address.url})),
    )
    .await?;
    let id = claimed["id"].as_str().context("binding id")?.to_owned();
    post(
        client,
        format!("{base}/v1/bindings/{id}/confirmation"),
        &p.token,
        None,
    )
    .await?;
    let inbox = wallet.store.sms_for_phone(&p.phone, 1).await?;
    let code = inbox
        .first()
        .and_then(|m| {
            m.body
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .map(str::to_owned)
        })
        .context("no code")?;
    let done = post(
        client,
        format!("{base}/v1/bindings/{id}/completion"),
        &p.token,
        Some(json!({"code": code, "payment_password": BENCH_PIN})),
    )
    .await?;
    anyhow::ensure!(done["state"] == "active", "not active: {done}");
    Ok(id)
}

async fn run(
    args: &BindBenchArgs,
    base: &str,
    wallet: Wallet,
    issuer: Issuer,
) -> anyhow::Result<bool> {
    let store_name = match args.store {
        BenchStore::Sqlite => "sqlite",
        BenchStore::Postgres => "postgres",
    };
    let progress = crate::bench::preparing(
        args.bindings as u64,
        &format!("preparing customers, cards and wallet accounts on {store_name}"),
    );
    let started = Instant::now();
    let mut pairs = Vec::with_capacity(args.bindings);
    let mut batch = Vec::new();
    for i in 0..args.bindings {
        let (w, iss, base) = (wallet.clone(), issuer.clone(), base.to_owned());
        batch.push(tokio::spawn(
            async move { prepare(i, &base, &w, &iss).await },
        ));
        if batch.len() == 16 || i + 1 == args.bindings {
            for t in batch.drain(..) {
                pairs.push(t.await??);
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    eprintln!(
        "prepared in {:.1} s; binding…",
        started.elapsed().as_secs_f64()
    );

    let pairs = Arc::new(pairs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (pairs, next, base, wallet, issuer) = (
            pairs.clone(),
            next.clone(),
            base.to_owned(),
            wallet.clone(),
            issuer.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut tally = Tally::new();
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(p) = pairs.get(i) else { break };
                let t = Instant::now();
                let result = one_binding(&base, &client, &wallet, &issuer, p).await;
                if let Some(id) = tally.record(result, t) {
                    done.push((i, id));
                }
            }
            (tally, done)
        }));
    }
    let mut tally = Tally::new();
    let mut done = Vec::new();
    for w in workers {
        let (t, d) = w.await?;
        tally.merge(t);
        done.extend(d);
    }
    let elapsed = started.elapsed().as_secs_f64();

    // Every completed binding is active on both sides.
    let mut both_sides = 0;
    for (i, id) in &done {
        let p = &pairs[*i];
        let bank_side = issuer.store.agreement_by_binding(id).await?;
        if bank_side.is_some_and(|a| a.status.is_active() && a.customer_id == p.customer) {
            both_sides += 1;
        }
    }
    let invariants_ok =
        both_sides == done.len() && done.len() == args.bindings && tally.errors.is_empty();
    let throughput = done.len() as f64 / elapsed;
    println!(
        "bind bench on {store_name}: {} concurrent customers, {:.1} s",
        args.concurrency, elapsed
    );
    println!("  bindings      {} active ({throughput:.1}/s)", done.len());
    tally.print();
    println!(
        "  invariants    {} ({both_sides} of {} active on both sides)",
        if invariants_ok { "ok" } else { "BROKEN" },
        done.len()
    );
    if args.json {
        println!(
            "{}",
            json!({
                "scenario": "bind",
                "store": store_name,
                "concurrency": args.concurrency,
                "seconds": elapsed,
                "bindings": done.len(),
                "throughput_per_s": throughput,
                "latency_ms": tally.latency_json(),
                "errors": tally.errors,
                "invariants_ok": invariants_ok,
            })
        );
    }
    Ok(invariants_ok)
}
