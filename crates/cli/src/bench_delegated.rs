//! `paybridge bench delegated`: paid transfer payments per second end to
//! end through flow F3, on a fresh store. One household per concurrent
//! worker is prepared before the clock starts: a bank customer's card
//! bound to their wallet account, the phone trusted (security
//! authentication) with its passkey and the wallet's task key pinned, and
//! smart TVs paired by their user codes (a device may ask at most
//! [`MAX_REQUESTS_PER_DEVICE`] times per window, so a household that pays
//! more has more TVs and takes them in turn). The timed part, per payment:
//! the merchant creates an order; a TV signs and sends its transfer payment
//! request (first agreement state, usage recorded, sealed again); with the
//! user (the default) the phone signs its confirm payment message; the
//! wallet judges the second agreement state and signs the payment execution
//! task; the phone checks it, passes the biometric (a WebAuthn assertion;
//! not for `--direct`), executes it (the bank debits by agreement), and
//! sends its completion message. At the end every payment must be paid,
//! each card debited exactly its payments, the merchant credited their sum
//! and both ledgers balanced.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use futures::future::BoxFuture;
use paybridge_api::delegated::{AgreementLimitsBody, AgreementTermsBody, ApprovalBody, Decision};
use paybridge_api::merchant::OrderBody;
use paybridge_api::wallet::MoneyBody;
use paybridge_devices::{FirstDevice, FirstDeviceModel, Phone};
use paybridge_domain::device::MAX_ACTIVE_DEVICES;
use paybridge_domain::transfer_agreement::{ApprovalMode, UsageCategory, MAX_MONTHLY_LIMIT_MINOR};
use paybridge_domain::transfer_payment::{
    TransferPaymentStage, MAX_REQUESTS_PER_DEVICE, MAX_REQUESTS_PER_PHONE,
};
use serde_json::json;
use tokio::sync::Mutex;

use crate::bench::BenchStore;
use crate::bench_bind::BenchApp;
use crate::bench_pay::{bench_merchant_account, bound_household, pay_per_household, MoneyChecks};

#[derive(Debug, Clone, Args)]
pub struct DelegatedBenchArgs {
    /// Which store the in-process server runs on (a fresh SQLite file or
    /// PostgreSQL schema per role, removed afterwards).
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: BenchStore,
    /// Concurrent households (each a phone and its TVs paying in turn).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Transfer payments to pay in all.
    #[arg(long, default_value_t = 400)]
    pub payments: usize,
    /// The small-amount route: payments within the agreement's direct
    /// ceiling, executed by the phone without a prompt.
    #[arg(long)]
    pub direct: bool,
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

/// Each payment's amount, in minor units.
const PAYMENT_AMOUNT: i64 = 100;

/// One household: its phone (behind a lock: one user, one phone), its TVs
/// and its card.
struct Household {
    phone: Mutex<Phone>,
    tvs: Vec<FirstDevice>,
    card: paybridge_domain::ids::CardId,
}

fn cny(amount: i64) -> MoneyBody {
    MoneyBody {
        amount,
        currency: "CNY".into(),
    }
}

/// Terms wide enough for the whole run: the largest monthly limit, and for
/// `--direct` a ceiling above every payment.
fn terms(binding: &str, direct: bool) -> AgreementTermsBody {
    AgreementTermsBody {
        binding_id: binding.to_owned(),
        name: None,
        limits: AgreementLimitsBody {
            per_payment: cny(10_000),
            per_day: cny(MAX_MONTHLY_LIMIT_MINOR),
            per_month: cny(MAX_MONTHLY_LIMIT_MINOR),
        },
        categories: vec![UsageCategory::InApp],
        approval: ApprovalBody {
            mode: if direct {
                ApprovalMode::SmallAmountsDirect
            } else {
                ApprovalMode::EveryPayment
            },
            direct_ceiling: direct.then(|| cny(1_000)),
        },
    }
}

pub async fn delegated(args: DelegatedBenchArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.concurrency >= 1 && args.payments >= 1,
        "--concurrency and --payments must be at least 1"
    );
    let app = BenchApp::start(
        "delegated",
        args.store,
        &args.database_url,
        args.concurrency,
    )
    .await?;
    let result = run(&args, &app).await;
    app.finish().await;
    result
}

/// Pairs a TV through `phone` with `terms`, as the flow does it.
async fn paired_tv(
    base: &str,
    phone: &mut Phone,
    terms: &AgreementTermsBody,
) -> anyhow::Result<FirstDevice> {
    let mut tv = FirstDevice::new(base, FirstDeviceModel::smart_tv());
    let code = tv.start_pairing().await?.user_code.clone();
    let claimed = phone.enter_pairing_code(&code).await?;
    phone.approve_pairing(&claimed.id, terms).await?;
    tv.poll_pairing()
        .await
        .context("the TV collects its session")?;
    Ok(tv)
}

async fn household(
    i: usize,
    app: &BenchApp,
    tvs: usize,
    direct: bool,
) -> anyhow::Result<Household> {
    let (mut phone, binding, card) = bound_household(i, app).await?;
    phone.register_passkey().await?;
    phone.pin_wallet_keys().await?;
    let terms = terms(binding.as_str(), direct);
    let mut paired = Vec::with_capacity(tvs);
    for _ in 0..tvs {
        paired.push(paired_tv(&app.base, &mut phone, &terms).await?);
    }
    Ok(Household {
        phone: Mutex::new(phone),
        tvs: paired,
        card,
    })
}

fn pay_one(order: OrderBody, h: &Household, nth: usize) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(one_payment(order, h, nth))
}

/// A TV asks for the order to be paid; the phone confirms, executes and
/// completes it.
async fn one_payment(order: OrderBody, h: &Household, nth: usize) -> anyhow::Result<()> {
    let tv = &h.tvs[nth / MAX_REQUESTS_PER_DEVICE as usize % h.tvs.len()];
    let requested = tv
        .request_payment(
            &order.merchant_id,
            &order.id,
            &cny(PAYMENT_AMOUNT),
            UsageCategory::InApp,
            "bench rental",
        )
        .await?;
    let mut phone = h.phone.lock().await;
    let tasked = match requested.state {
        TransferPaymentStage::AwaitingConfirmation => {
            phone
                .answer_transfer_payment(&requested, Decision::Approve)
                .await?
        }
        _ => phone.app()?.transfer_payment(&requested.id).await?,
    };
    let done = phone.execute_and_complete(&tasked).await?;
    anyhow::ensure!(
        done.state == TransferPaymentStage::Paid,
        "not paid: {done:?}"
    );
    Ok(())
}

async fn run(args: &DelegatedBenchArgs, app: &BenchApp) -> anyhow::Result<bool> {
    let store_name = match args.store {
        BenchStore::Sqlite => "sqlite",
        BenchStore::Postgres => "postgres",
    };
    let route = if args.direct { "direct" } else { "with_user" };
    // Each household pays every `concurrency`-th payment, within its
    // phone's pace, with a TV per MAX_REQUESTS_PER_DEVICE of them.
    let per_household = args.payments.div_ceil(args.concurrency);
    anyhow::ensure!(
        per_household <= MAX_REQUESTS_PER_PHONE as usize,
        "{per_household} payments per household is above a phone's {MAX_REQUESTS_PER_PHONE} per window: raise --concurrency"
    );
    let tvs = per_household.div_ceil(MAX_REQUESTS_PER_DEVICE as usize);
    anyhow::ensure!(
        tvs < MAX_ACTIVE_DEVICES,
        "{per_household} payments per household need {tvs} TVs, above the {MAX_ACTIVE_DEVICES} devices of an account: raise --concurrency"
    );
    let progress = crate::bench::preparing(
        args.concurrency as u64,
        &format!("preparing households (bound card, trusted phone with a passkey, {tvs} paired TVs) on {store_name}"),
    );
    let started = Instant::now();
    let mut households = Vec::new();
    for i in 0..args.concurrency {
        households.push(household(i, app, tvs, args.direct).await?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let merchant_account = bench_merchant_account(app).await?;
    eprintln!(
        "prepared in {:.1} s; paying ({route})…",
        started.elapsed().as_secs_f64()
    );
    let households = Arc::new(households);
    let started = Instant::now();
    let (tally, per_household) = pay_per_household(
        app,
        households.clone(),
        args.payments,
        PAYMENT_AMOUNT,
        pay_one,
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let paid: u64 = per_household.iter().sum();

    let cards: Vec<_> = households.iter().map(|h| h.card.clone()).collect();
    let money = MoneyChecks::run(
        app,
        &cards,
        &per_household,
        PAYMENT_AMOUNT,
        &merchant_account,
    )
    .await?;
    let invariants_ok = paid as usize == args.payments
        && tally.errors.is_empty()
        && money.cards_ok
        && money.merchant_ok
        && money.balanced;
    let throughput = paid as f64 / elapsed;
    println!(
        "delegated bench on {store_name} ({route}): {} households paying concurrently, {:.1} s",
        args.concurrency, elapsed
    );
    println!("  payments      {paid} paid ({throughput:.1}/s)");
    tally.print();
    println!(
        "  invariants    {} (cards debited exactly: {}, merchant credited the sum: {}, ledgers balanced: {})",
        if invariants_ok { "ok" } else { "BROKEN" },
        money.cards_ok,
        money.merchant_ok,
        money.balanced,
    );
    if args.json {
        println!(
            "{}",
            json!({
                "scenario": "delegated",
                "store": store_name,
                "route": route,
                "concurrency": args.concurrency,
                "seconds": elapsed,
                "payments": paid,
                "throughput_per_s": throughput,
                "latency_ms": tally.latency_json(),
                "errors": tally.errors,
                "invariants_ok": invariants_ok,
            })
        );
    }
    Ok(invariants_ok)
}
