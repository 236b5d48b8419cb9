//! `paybridge bench …`: load scenarios run through the service layer against
//! a fresh store, reporting throughput and latency, and checking the money
//! invariants at the end (a run that breaks them exits non-zero).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use paybridge_domain::ledger::{AccountFlags, AccountId, TransferKind, TransferRequest};
use paybridge_domain::{Currency, Money, ServiceError, SystemClock};
use paybridge_issuer::ledger::Ledger;
use paybridge_store::{LedgerStore, Store, StoreConfig};
use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchStore {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Args)]
pub struct LedgerBenchArgs {
    /// Which store to run against (a fresh SQLite file or PostgreSQL schema, removed afterwards).
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: BenchStore,
    /// Concurrent clients submitting debits.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
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
    /// Customer accounts debited (fewer means more contention).
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
}

/// Each customer starts with this much (minor units); debits are 1..=1000,
/// so busy accounts run dry during a long run and `insufficient_funds`
/// appears among the errors, as it would in life.
const OPENING_BALANCE_MINOR: i64 = 200_000;
const MERCHANTS: usize = 10;
/// One debit in this many is submitted a second time, as a client retry.
const RETRY_ONE_IN: u32 = 50;

#[derive(Debug, Default)]
struct WorkerReport {
    ok: u64,
    retries_ok: u64,
    errors: BTreeMap<String, u64>,
    latency_us: Option<Histogram<u64>>,
}

fn code_of(e: &ServiceError) -> String {
    e.code().as_str().to_owned()
}

pub async fn ledger(args: LedgerBenchArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.concurrency >= 1 && args.accounts >= 1,
        "--concurrency and --accounts must be at least 1"
    );
    let suffix = format!("{:016x}", rand::random::<u64>());
    let (config, cleanup_dir) = match args.store {
        BenchStore::Sqlite => {
            let dir = std::env::temp_dir().join(format!("paybridge-bench-{suffix}"));
            (
                StoreConfig::Sqlite {
                    path: dir.join("bench.db"),
                },
                Some(dir),
            )
        }
        BenchStore::Postgres => (
            StoreConfig::Postgres {
                url: args.database_url.clone(),
                schema: format!("bench_{suffix}"),
                max_connections: (args.concurrency as u32).clamp(4, 64),
            },
            None,
        ),
    };
    let store = Store::open(&config)
        .await
        .context("cannot open the bench store")?;
    let result = run(&args, store.clone()).await;
    store.close().await;
    if let Some(dir) = cleanup_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let StoreConfig::Postgres { url, schema, .. } = &config {
        paybridge_store::testing::drop_schema(url, schema);
    }
    result
}

async fn run(args: &LedgerBenchArgs, store: Store) -> anyhow::Result<bool> {
    let store_name = match args.store {
        BenchStore::Sqlite => "sqlite",
        BenchStore::Postgres => "postgres",
    };
    let ledger = Ledger {
        store: Arc::new(store.clone()),
        clock: Arc::new(SystemClock),
    };
    let cny = Currency::CNY;
    let no_overdraft = AccountFlags {
        debits_must_not_exceed_credits: true,
        ..Default::default()
    };
    let progress = preparing(
        args.accounts as u64,
        &format!("setting up customer accounts on {store_name}"),
    );
    let bank = ledger
        .open_account(cny, AccountFlags::default(), 0)
        .await?
        .id;
    let mut customers = Vec::with_capacity(args.accounts);
    for i in 0..args.accounts {
        let id = ledger.open_account(cny, no_overdraft, 0).await?.id;
        ledger
            .transfer(
                &TransferRequest {
                    id: format!("fund-{i}").parse().expect("valid id"),
                    debit_account: bank.clone(),
                    credit_account: id.clone(),
                    amount: Money::new(OPENING_BALANCE_MINOR, cny),
                    kind: TransferKind::Posted,
                },
                &[],
            )
            .await?;
        customers.push(id);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let mut merchants = Vec::new();
    for _ in 0..MERCHANTS {
        merchants.push(
            ledger
                .open_account(cny, AccountFlags::default(), 0)
                .await?
                .id,
        );
    }
    let before = store.ledger_totals().await?;
    let customers = Arc::new(customers);
    let merchants = Arc::new(merchants);

    eprintln!(
        "running {} clients for {} s…",
        args.concurrency, args.seconds
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let workers = (0..args.concurrency).map(|w| {
        let (ledger, customers, merchants) = (ledger.clone(), customers.clone(), merchants.clone());
        tokio::spawn(async move { worker(w, ledger, customers, merchants, deadline).await })
    });
    let reports = futures::future::join_all(workers).await;
    let elapsed = started.elapsed().as_secs_f64();

    let mut total = WorkerReport {
        latency_us: Some(Histogram::new(3).expect("histogram")),
        ..Default::default()
    };
    for r in reports {
        let r = r.context("a bench client panicked")?;
        total.ok += r.ok;
        total.retries_ok += r.retries_ok;
        for (code, n) in r.errors {
            *total.errors.entry(code).or_default() += n;
        }
        if let (Some(all), Some(h)) = (total.latency_us.as_mut(), r.latency_us.as_ref()) {
            all.add(h).expect("same histogram bounds");
        }
    }

    // Invariants: debits equal credits; every account equals its transfers;
    // every transfer is recorded once; no customer below zero.
    let after = store.ledger_totals().await?;
    let inconsistent = store.ledger_inconsistent_accounts().await?;
    let mut overdrawn = 0;
    for id in customers.iter() {
        if ledger.account(id).await?.available().amount_minor < 0 {
            overdrawn += 1;
        }
    }
    let balanced = after.debits_posted == after.credits_posted
        && after.debits_pending == after.credits_pending;
    let recorded_once = after.transfers == before.transfers + total.ok as i64;
    let invariants_ok = balanced && inconsistent.is_empty() && recorded_once && overdrawn == 0;

    let h = total.latency_us.as_ref().expect("histogram");
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    let throughput = total.ok as f64 / elapsed;
    println!(
        "ledger bench on {store_name}: {} clients, {:.1} s",
        args.concurrency, elapsed
    );
    println!(
        "  transfers     {} posted ({:.0}/s), {} retries answered with the original",
        total.ok, throughput, total.retries_ok
    );
    println!(
        "  latency       p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(0.50),
        ms(0.90),
        ms(0.99),
        h.max() as f64 / 1_000.0
    );
    println!("  errors        {:?}", total.errors);
    println!(
        "  invariants    {} (debits = credits: {balanced}; accounts match transfers: {}; each transfer once: {recorded_once}; overdrawn accounts: {overdrawn})",
        if invariants_ok { "ok" } else { "BROKEN" },
        inconsistent.is_empty()
    );
    if args.json {
        let json = serde_json::json!({
            "scenario": "ledger",
            "store": store_name,
            "concurrency": args.concurrency,
            "seconds": elapsed,
            "transfers": total.ok,
            "throughput_per_s": throughput,
            "latency_ms": { "p50": ms(0.50), "p90": ms(0.90), "p99": ms(0.99), "max": h.max() as f64 / 1_000.0 },
            "errors": total.errors,
            "retries_answered": total.retries_ok,
            "invariants_ok": invariants_ok,
        });
        println!("{json}");
    }
    Ok(invariants_ok)
}

async fn worker(
    w: usize,
    ledger: Ledger,
    customers: Arc<Vec<AccountId>>,
    merchants: Arc<Vec<AccountId>>,
    deadline: Instant,
) -> WorkerReport {
    let mut report = WorkerReport {
        latency_us: Some(Histogram::new(3).expect("histogram")),
        ..Default::default()
    };
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let (request, retry) = {
            let mut rng = rand::thread_rng();
            let request = TransferRequest {
                id: format!("debit-{w}-{n}").parse().expect("valid id"),
                debit_account: customers[rng.gen_range(0..customers.len())].clone(),
                credit_account: merchants[rng.gen_range(0..merchants.len())].clone(),
                amount: Money::new(rng.gen_range(1..=1_000), Currency::CNY),
                kind: TransferKind::Posted,
            };
            (request, rng.gen_ratio(1, RETRY_ONE_IN))
        };
        let t0 = Instant::now();
        let outcome = ledger.transfer(&request, &[]).await;
        let us = t0.elapsed().as_micros() as u64;
        if let Some(h) = report.latency_us.as_mut() {
            let _ = h.record(us.max(1));
        }
        match outcome {
            Ok(first) => {
                report.ok += 1;
                if retry {
                    // A client that did not see the answer retries: it must
                    // get the same transfer back, not a second debit.
                    match ledger.transfer(&request, &[]).await {
                        Ok(again) if again == first => report.retries_ok += 1,
                        Ok(_) => {
                            *report
                                .errors
                                .entry("retry_answered_differently".into())
                                .or_default() += 1
                        }
                        Err(e) => {
                            *report
                                .errors
                                .entry(format!("retry_{}", code_of(&e)))
                                .or_default() += 1
                        }
                    }
                }
            }
            Err(e) => *report.errors.entry(code_of(&e)).or_default() += 1,
        }
    }
    report
}

/// What the workers of an end-to-end bench saw: latencies of the runs that
/// succeeded, and failures counted by their (shortened) message.
pub(crate) struct Tally {
    hist: Histogram<u64>,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            hist: Histogram::new(3).expect("histogram"),
            errors: BTreeMap::new(),
        }
    }

    /// Records one run that started at `started`; `Some` of its value if it succeeded.
    pub(crate) fn record<T>(
        &mut self,
        result: anyhow::Result<T>,
        started: std::time::Instant,
    ) -> Option<T> {
        match result {
            Ok(v) => {
                self.hist.record(started.elapsed().as_micros() as u64).ok();
                Some(v)
            }
            Err(e) => {
                *self
                    .errors
                    .entry(e.to_string().chars().take(80).collect())
                    .or_default() += 1;
                None
            }
        }
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.hist.add(other.hist).ok();
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1_000.0
    }

    fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1_000.0
    }

    /// Prints the latency and error lines of the report.
    pub(crate) fn print(&self) {
        println!(
            "  latency       p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.max_ms()
        );
        println!("  errors        {:?}", self.errors);
    }

    /// `latency_ms` of the JSON report.
    pub(crate) fn latency_json(&self) -> serde_json::Value {
        serde_json::json!({"p50": self.ms(0.5), "p90": self.ms(0.9), "p99": self.ms(0.99), "max": self.max_ms()})
    }
}

/// A progress bar on standard error for a bench's preparation (it can take
/// tens of seconds: every account costs an Argon2id hash). Hidden when
/// standard error is not a terminal, so logs and `--json` stay clean.
pub(crate) fn preparing(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} ({eta} left)")
            .expect("a valid template"),
    );
    bar.set_message(what.to_owned());
    if bar.is_hidden() {
        eprintln!("{what}: {len} to prepare…");
    }
    bar
}
