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
use futures::future::BoxFuture;
use paybridge_api::merchant::{CreateOrder, OrderBody};
use paybridge_api::wallet::MoneyBody;
use paybridge_client::MerchantApi;
use paybridge_devices::phone::{genuine_android, SecurityAnswers, ThisDevice};
use paybridge_devices::terminal::Wake;
use paybridge_devices::{Phone, Terminal};
use paybridge_domain::device::{DeviceType, MAX_ACTIVE_DEVICES};
use paybridge_domain::identity::IdNumber;
use paybridge_domain::ids::BindingId;
use paybridge_domain::ledger::AccountId;
use paybridge_domain::payment_request::{PaymentRequestStage, MAX_REQUESTS_PER_TERMINAL};
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use serde_json::json;

use crate::bench::{BenchStore, Tally};
use crate::bench_bind::{one_binding, prepare, BenchApp, BENCH_LOGIN_PASSWORD};

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

/// One household's parties, each on its own device key: the PCs' and
/// the phone's sessions are bound to their keys, so every call signs a
/// proof (DPoP) like the real apps would. A terminal may ask at most
/// [`MAX_REQUESTS_PER_TERMINAL`] times per window, so a household that pays
/// more orders has more PCs and takes them in turn: the bench keeps the
/// limits it measures under.
struct Household {
    pcs: Vec<Terminal>,
    phone: Phone,
    binding: BindingId,
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

/// Bench customer `i`'s card bound to their wallet account (with the bench
/// payment password) and their phone made a trusted device of it (security
/// authentication as a new device): what every paying bench starts from.
pub(crate) async fn bound_household(
    i: usize,
    app: &BenchApp,
) -> anyhow::Result<(Phone, BindingId, paybridge_domain::ids::CardId)> {
    let base = &app.base;
    let client = reqwest::Client::new();
    let p = prepare(i, base, &app.wallet, &app.issuer).await?;
    let binding = one_binding(base, &client, &app.wallet, &app.issuer, &p).await?;
    let mut phone = Phone::new(base, &p.phone);
    let last4 = IdNumber::complete(&format!("110105{:011}", i))
        .last(4)
        .to_owned();
    phone
        .pass_security_auth(SecurityAnswers {
            device: ThisDevice::New {
                name: "Bench phone".into(),
            },
            environment: genuine_android(),
            id_number_last4: last4,
            login_password: Some(BENCH_LOGIN_PASSWORD.into()),
            payment_password: None,
        })
        .await
        .context("security authentication of the phone")?;
    Ok((phone, binding.parse()?, p.card))
}

/// A household: card bound, payment password, a trusted phone and the PCs
/// it paired.
async fn household(i: usize, app: &BenchApp, terminals: usize) -> anyhow::Result<Household> {
    let (phone, binding, card) = bound_household(i, app).await?;
    let mut pcs = Vec::with_capacity(terminals);
    for n in 0..terminals {
        let name = format!("Bench PC {n}");
        pcs.push(
            Terminal::pair(&phone, BENCH_LOGIN_PASSWORD, DeviceType::Pc, &name)
                .await
                .context("pairing a PC")?,
        );
    }
    Ok(Household {
        pcs,
        phone,
        binding,
        card,
    })
}

/// The money checks at a paying bench's end: each card debited exactly its
/// payments, the merchant credited their sum, both ledgers balanced.
pub(crate) struct MoneyChecks {
    pub(crate) cards_ok: bool,
    pub(crate) merchant_ok: bool,
    pub(crate) balanced: bool,
}

impl MoneyChecks {
    /// `paid[i]` payments of `amount` from bench card `cards[i]` (each
    /// opened with 1,000.00) to the merchant of `merchant_account`.
    pub(crate) async fn run(
        app: &BenchApp,
        cards: &[paybridge_domain::ids::CardId],
        paid: &[u64],
        amount: i64,
        merchant_account: &paybridge_domain::ledger::AccountId,
    ) -> anyhow::Result<MoneyChecks> {
        let mut cards_ok = true;
        for (card, n) in cards.iter().zip(paid) {
            let card = app.issuer.store.bank_card(card).await?.context("card")?;
            let account = app
                .issuer
                .store
                .ledger_account(&card.account_id)
                .await?
                .context("card account")?;
            let balance = account.credits_posted - account.debits_posted;
            cards_ok &= balance == 100_000 - *n as i64 * amount;
        }
        let m = app
            .wallet
            .store
            .ledger_account(merchant_account)
            .await?
            .context("merchant account")?;
        let total: u64 = paid.iter().sum();
        let merchant_ok = m.credits_posted - m.debits_posted == total as i64 * amount;
        let (wt, it) = (
            app.wallet.store.ledger_totals().await?,
            app.issuer.store.ledger_totals().await?,
        );
        let balanced =
            wt.debits_posted == wt.credits_posted && it.debits_posted == it.credits_posted;
        Ok(MoneyChecks {
            cards_ok,
            merchant_ok,
            balanced,
        })
    }
}

/// The ledger account of the sandbox merchant the paying benches pay.
pub(crate) async fn bench_merchant_account(app: &BenchApp) -> anyhow::Result<AccountId> {
    let merchant = app
        .wallet
        .authenticate_merchant(SANDBOX_MERCHANT_KEY)
        .await?
        .merchant_id;
    let account = app
        .wallet
        .store
        .merchant(&merchant)
        .await?
        .context("the sandbox merchant")?
        .account_id;
    Ok(account)
}

/// One payment of a bench: household `H` pays the merchant's new order;
/// `usize` is which of the household's payments it is.
pub(crate) type PayOne<H> =
    for<'a> fn(OrderBody, &'a H, usize) -> BoxFuture<'a, anyhow::Result<()>>;

/// Pays `total` orders of `amount` with one worker per household: worker
/// `w` pays orders `w`, `w + n`, … (`n` households) in turn, each timed
/// from the merchant creating it to `pay`'s end. Answers the merged tally
/// and how many each household paid.
pub(crate) async fn pay_per_household<H: Send + Sync + 'static>(
    app: &BenchApp,
    households: Arc<Vec<H>>,
    total: usize,
    amount: i64,
    pay: PayOne<H>,
) -> anyhow::Result<(Tally, Vec<u64>)> {
    let stride = households.len();
    let mut workers = Vec::new();
    for w in 0..stride {
        let (households, base) = (households.clone(), app.base.clone());
        workers.push(tokio::spawn(async move {
            let shop = MerchantApi::new(&base, SANDBOX_MERCHANT_KEY);
            let mut tally = Tally::new();
            let mut paid = 0u64;
            for (nth, i) in (w..total).step_by(stride).enumerate() {
                let t = Instant::now();
                let order = CreateOrder {
                    amount: MoneyBody {
                        amount,
                        currency: "CNY".into(),
                    },
                    description: "bench".into(),
                    reference: format!("bench-{i}"),
                    expires_in_secs: None,
                };
                let result = match shop.create_order(&order).await {
                    Ok(order) => pay(order, &households[w], nth).await,
                    Err(e) => Err(e.into()),
                };
                if tally.record(result, t).is_some() {
                    paid += 1;
                }
            }
            (tally, paid)
        }));
    }
    let mut tally = Tally::new();
    let mut per_household = Vec::new();
    for w in workers {
        let (t, p) = w.await?;
        tally.merge(t);
        per_household.push(p);
    }
    Ok((tally, per_household))
}

fn pay_one(order: OrderBody, h: &Household, nth: usize) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(one_order(order, h, nth))
}

/// The PC asks for the order to be paid; the phone pays it.
async fn one_order(order: OrderBody, h: &Household, nth: usize) -> anyhow::Result<()> {
    let pc = &h.pcs[nth / MAX_REQUESTS_PER_TERMINAL as usize % h.pcs.len()];
    let request = pc
        .ask_to_pay(&order.merchant_id, &order.id, Wake::Directly)
        .await?;
    anyhow::ensure!(
        request.state == PaymentRequestStage::Presented,
        "not presented: {request:?}"
    );
    let paid = h
        .phone
        .approve_with_password(&request.id, &h.binding, crate::bench_bind::BENCH_PIN)
        .await?;
    anyhow::ensure!(
        paid.state == PaymentRequestStage::Paid,
        "not paid: {paid:?}"
    );
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
    // Each household pays every `concurrency`-th order, so all pay the same
    // number, and has a PC per MAX_REQUESTS_PER_TERMINAL of them.
    let per_household = args.orders.div_ceil(args.concurrency);
    let terminals = per_household.div_ceil(MAX_REQUESTS_PER_TERMINAL as usize);
    anyhow::ensure!(
        terminals < MAX_ACTIVE_DEVICES,
        "{per_household} orders per household need {terminals} PCs, above the {MAX_ACTIVE_DEVICES} devices of an account: raise --concurrency"
    );
    let mut households = Vec::new();
    for i in 0..args.concurrency {
        households.push(household(i, app, terminals).await?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let merchant_account = bench_merchant_account(app).await?;
    eprintln!(
        "prepared in {:.1} s; paying…",
        started.elapsed().as_secs_f64()
    );
    let households = Arc::new(households);
    let started = Instant::now();
    let (tally, per_household) =
        pay_per_household(app, households.clone(), args.orders, ORDER_AMOUNT, pay_one).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let paid: u64 = per_household.iter().sum();

    let cards: Vec<_> = households.iter().map(|h| h.card.clone()).collect();
    let money =
        MoneyChecks::run(app, &cards, &per_household, ORDER_AMOUNT, &merchant_account).await?;
    let (cards_ok, merchant_ok, balanced) = (money.cards_ok, money.merchant_ok, money.balanced);
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
