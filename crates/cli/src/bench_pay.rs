//! `paybridge bench cross-device`: orders paid per second end to end through
//! flow F4, on a fresh store. One household per concurrent worker (a bank
//! customer with a card bound to a wallet account, a payment password, a PC
//! and a trusted phone) is prepared before the clock starts. The timed part,
//! per order: the merchant creates it (API key), the PC asks for it to be
//! paid (correspondence look-up, push to the phone), the phone approves with
//! the payment password (Argon2id), the bank debits by agreement (signed
//! call, ledger), the wallet credits the merchant and marks both paid. At the
//! end every order must be paid, each card debited exactly its orders, the
//! merchant credited their sum, and both ledgers balanced.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use paybridge_domain::identity::IdNumber;
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use paybridge_wallet::Wallet;
use serde_json::{json, Value};

use crate::bench::{BenchStore, Tally};
use crate::bench_bind::{one_binding, post, prepare, BenchApp};

#[derive(Debug, Clone, Args)]
pub struct PayBenchArgs {
    /// Which store the in-process server runs on (a fresh SQLite file or
    /// PostgreSQL schema per role, removed afterwards).
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: BenchStore,
    /// Concurrent households (each a PC and a phone paying in turn).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Orders to pay in all.
    #[arg(long, default_value_t = 400)]
    pub orders: usize,
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

/// Each order's amount, in minor units.
const ORDER_AMOUNT: i64 = 100;
const PIN: &str = "482916";

struct Household {
    pc_token: String,
    pc: String,
    phone_token: String,
    binding: String,
    card: paybridge_domain::ids::CardId,
}

pub async fn cross_device(args: PayBenchArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.concurrency >= 1 && args.orders >= 1,
        "--concurrency and --orders must be at least 1"
    );
    let app = BenchApp::start(
        "cross-device",
        args.store,
        &args.database_url,
        args.concurrency,
    )
    .await?;
    let result = run(&args, &app).await;
    app.finish().await;
    result
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = client.request(method, url).json(&body);
    // POSTs that create or move something carry an Idempotency-Key.
    req = req.header(
        "idempotency-key",
        format!("bench-{:032x}", rand::random::<u128>()),
    );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "{status}: {v}");
    Ok(v)
}

async fn newest_code(wallet: &Wallet, phone: &str) -> anyhow::Result<String> {
    let inbox = wallet.store.sms_for_phone(phone, 1).await?;
    inbox
        .first()
        .and_then(|m| {
            m.body
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .map(str::to_owned)
        })
        .context("no code")
}

/// A household: card bound, payment password, a PC, a trusted phone.
async fn household(i: usize, app: &BenchApp) -> anyhow::Result<Household> {
    let base = &app.base;
    let client = reqwest::Client::new();
    let p = prepare(i, &app.wallet, &app.issuer).await?;
    let binding = one_binding(base, &client, &app.wallet, &app.issuer, &p).await?;
    call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/me/payment-password"),
        Some(&p.token),
        json!({ "new_password": PIN }),
    )
    .await?;
    let mut devices = Vec::new();
    for (kind, name) in [("pc", "Bench PC"), ("phone", "Bench phone")] {
        let d = post(
            &client,
            format!("{base}/v1/devices"),
            &p.token,
            Some(json!({"type": kind, "name": name})),
        )
        .await?;
        devices.push(d["id"].as_str().context("device id")?.to_owned());
    }
    // Security authentication of the phone (a new device), then its session.
    let env = json!({"emulator": false, "rooted": false, "os": "android", "os_version": "14"});
    let auth = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/security-authentications"),
        None,
        json!({"phone": p.phone, "device_id": devices[1], "environment": env}),
    )
    .await?;
    let id = auth["id"].as_str().context("auth id")?.to_owned();
    let last4 = IdNumber::complete(&format!("110105{:011}", i))
        .last(4)
        .to_owned();
    for (step, body) in [
        (
            "otp",
            json!({"code": newest_code(&app.wallet, &p.phone).await?}),
        ),
        ("identity", json!({ "id_number_last4": last4 })),
        ("passwords", json!({})),
    ] {
        call(
            &client,
            reqwest::Method::POST,
            format!("{base}/v1/security-authentications/{id}/{step}"),
            None,
            body,
        )
        .await
        .with_context(|| format!("security authentication, step {step}"))?;
    }
    let session = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/sessions"),
        None,
        json!({"phone": p.phone, "password": "Bench wallet 2026", "device_id": devices[1]}),
    )
    .await?;
    Ok(Household {
        pc_token: p.token,
        pc: devices[0].clone(),
        phone_token: session["token"].as_str().context("session")?.to_owned(),
        binding,
        card: p.card,
    })
}

/// One order, timed from its creation to the phone's paid answer.
async fn one_order(
    base: &str,
    client: &reqwest::Client,
    merchant: &str,
    h: &Household,
    reference: String,
) -> anyhow::Result<()> {
    let order = post(
        client,
        format!("{base}/v1/orders"),
        SANDBOX_MERCHANT_KEY,
        Some(json!({"amount": {"amount": ORDER_AMOUNT, "currency": "CNY"}, "description": "bench", "reference": reference})),
    )
    .await?;
    let request = post(
        client,
        format!("{base}/v1/payment-requests"),
        &h.pc_token,
        Some(json!({"merchant_id": merchant, "order_id": order["id"], "terminal_id": h.pc})),
    )
    .await?;
    anyhow::ensure!(request["state"] == "presented", "not presented: {request}");
    let paid = post(
        client,
        format!(
            "{base}/v1/payment-requests/{}/approvals",
            request["id"].as_str().unwrap_or_default()
        ),
        &h.phone_token,
        Some(json!({"binding_id": h.binding, "payment_password": PIN})),
    )
    .await?;
    anyhow::ensure!(paid["state"] == "paid", "not paid: {paid}");
    Ok(())
}

async fn run(args: &PayBenchArgs, app: &BenchApp) -> anyhow::Result<bool> {
    let store_name = match args.store {
        BenchStore::Sqlite => "sqlite",
        BenchStore::Postgres => "postgres",
    };
    let progress = crate::bench::preparing(
        args.concurrency as u64,
        &format!("preparing households (bound card, PC, trusted phone) on {store_name}"),
    );
    let started = Instant::now();
    let mut households = Vec::new();
    for i in 0..args.concurrency {
        households.push(household(i, app).await?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let merchant = app
        .wallet
        .authenticate_merchant(SANDBOX_MERCHANT_KEY)
        .await?
        .merchant_id;
    let merchant_account = app
        .wallet
        .store
        .merchant(&merchant)
        .await?
        .context("the sandbox merchant")?
        .account_id;
    eprintln!(
        "prepared in {:.1} s; paying…",
        started.elapsed().as_secs_f64()
    );

    let households = Arc::new(households);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (households, next, base, merchant, total) = (
            households.clone(),
            next.clone(),
            app.base.clone(),
            merchant.to_string(),
            args.orders,
        );
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut tally = Tally::new();
            let mut paid = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                let h = &households[w];
                let result = one_order(&base, &client, &merchant, h, format!("bench-{i}")).await;
                if tally.record(result, t).is_some() {
                    paid += 1;
                }
            }
            (tally, paid)
        }));
    }
    let mut tally = Tally::new();
    let mut paid = 0u64;
    let mut per_household = Vec::new();
    for w in workers {
        let (t, p) = w.await?;
        tally.merge(t);
        paid += p;
        per_household.push(p);
    }
    let elapsed = started.elapsed().as_secs_f64();

    // Money checks: each card debited exactly its orders, the merchant
    // credited their sum, both ledgers balanced.
    let mut cards_ok = true;
    for (h, n) in households.iter().zip(&per_household) {
        let card = app.issuer.store.bank_card(&h.card).await?.context("card")?;
        let account = app
            .issuer
            .store
            .ledger_account(&card.account_id)
            .await?
            .context("card account")?;
        let balance = account.credits_posted - account.debits_posted;
        cards_ok &= balance == 100_000 - *n as i64 * ORDER_AMOUNT;
    }
    let m = app
        .wallet
        .store
        .ledger_account(&merchant_account)
        .await?
        .context("merchant account")?;
    let merchant_ok = m.credits_posted - m.debits_posted == paid as i64 * ORDER_AMOUNT;
    let (wt, it) = (
        app.wallet.store.ledger_totals().await?,
        app.issuer.store.ledger_totals().await?,
    );
    let balanced = wt.debits_posted == wt.credits_posted && it.debits_posted == it.credits_posted;
    let invariants_ok = paid as usize == args.orders
        && tally.errors.is_empty()
        && cards_ok
        && merchant_ok
        && balanced;
    let throughput = paid as f64 / elapsed;
    println!(
        "cross-device bench on {store_name}: {} households paying concurrently, {:.1} s",
        args.concurrency, elapsed
    );
    println!("  orders        {paid} paid ({throughput:.1}/s)");
    tally.print();
    println!(
        "  invariants    {} (cards debited exactly: {cards_ok}, merchant credited the sum: {merchant_ok}, ledgers balanced: {balanced})",
        if invariants_ok { "ok" } else { "BROKEN" },
    );
    if args.json {
        println!(
            "{}",
            json!({
                "scenario": "cross-device",
                "store": store_name,
                "concurrency": args.concurrency,
                "seconds": elapsed,
                "orders": paid,
                "throughput_per_s": throughput,
                "latency_ms": tally.latency_json(),
                "errors": tally.errors,
                "invariants_ok": invariants_ok,
            })
        );
    }
    Ok(invariants_ok)
}
