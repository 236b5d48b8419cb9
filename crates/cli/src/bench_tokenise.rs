//! `paybridge bench tokenise`: PAN tokenisations and de-tokenisations per
//! second at the issuer's token vault (flow F5), through the issuer's
//! service (`Issuer::tokenise` / `Issuer::detokenise`) on a fresh store.
//!
//! Cards are issued before the clock starts. Then two timed phases of
//! `--seconds` each, `--concurrency` workers: tokenise (read the card, make
//! a Luhn-valid token of the token BIN range, seal it, blind-index it,
//! insert it into the vault), then de-tokenise tokens made in the first
//! phase at random (one indexed read joining the card, then open the PAN).
//! Every de-tokenisation must find its token's card, and the vault must
//! hold exactly the tokens made.
//!
//! With `--store postgres` the same PostgreSQL is measured by pgbench (when
//! it is installed): TPC-B and select-only, same clients, same time, in a
//! schema of their own. The report gives our figures as ratios of those:
//! storing a token against TPC-B, reading one against select-only.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use paybridge_crypto::Secret;
use paybridge_domain::card::{CardType, Expiry};
use paybridge_domain::card_token::TokenChannel;
use paybridge_domain::identity::{IdNumber, PersonName};
use paybridge_domain::ids::CardId;
use paybridge_domain::{Currency, Money};
use paybridge_issuer::customers::{NewCard, NewCustomer};
use paybridge_issuer::virtual_cards::TokenDomain;
use paybridge_issuer::Issuer;
use rand::Rng;
use serde_json::json;
use tokio::sync::Mutex;

use crate::bench::{preparing, BenchStore, Tally};
use crate::bench_bind::BenchApp;

/// The figures of an open-source card vault on the same PostgreSQL, as
/// fractions of pgbench: storing a card against TPC-B, reading one against
/// select-only. Ours should be above both.
const VAULT_TPCB_RATIO: f64 = 0.72;
const VAULT_SELECT_RATIO: f64 = 0.41;
/// Cards per bank customer (each customer costs an Argon2id hash).
const CARDS_PER_CUSTOMER: usize = 25;

#[derive(Debug, Clone, Args)]
pub struct TokeniseBenchArgs {
    /// Which store the issuer runs on (a fresh SQLite file or PostgreSQL
    /// schema, removed afterwards).
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: BenchStore,
    /// Concurrent workers (and pgbench clients).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How long each phase runs (tokenise, de-tokenise, and each pgbench run).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Cards issued before the clock starts, tokenised at random.
    #[arg(long, default_value_t = 200)]
    pub cards: usize,
    /// pgbench's scale factor (100,000 accounts each) for the comparison.
    #[arg(long, default_value_t = 10)]
    pub pgbench_scale: u32,
    /// Skip the pgbench comparison.
    #[arg(long)]
    pub no_pgbench: bool,
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

pub async fn tokenise(args: TokeniseBenchArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.concurrency >= 1 && args.cards >= 1 && args.seconds >= 1,
        "--concurrency, --cards and --seconds must be at least 1"
    );
    let app = BenchApp::start("tokenise", args.store, &args.database_url, args.concurrency).await?;
    let result = run(&args, app.issuer.clone()).await;
    app.finish().await;
    let (mut report, ok) = result?;
    if args.store == BenchStore::Postgres && !args.no_pgbench {
        report["pgbench"] = compare_with_pgbench(&args, &report).await;
    }
    if args.json {
        println!("{report}");
    }
    Ok(ok)
}

/// A phase's counts and latencies.
struct Phase {
    done: u64,
    seconds: f64,
    tally: Tally,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.done as f64 / self.seconds
    }
}

async fn run(
    args: &TokeniseBenchArgs,
    issuer: Issuer,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let store_name = match args.store {
        BenchStore::Sqlite => "sqlite",
        BenchStore::Postgres => "postgres",
    };
    let cards = Arc::new(issue_cards(&issuer, args.cards).await?);
    let domain = |w: usize| TokenDomain {
        wallet: "wallet".parse().expect("a partner id"),
        device_id: format!("dev_bench_{w:04}"),
        channels: vec![TokenChannel::Nfc, TokenChannel::Online],
    };

    eprintln!(
        "tokenising with {} workers for {} s…",
        args.concurrency, args.seconds
    );
    let made: Arc<Mutex<Vec<(String, CardId)>>> = Arc::new(Mutex::new(Vec::new()));
    let tokenised = timed(args, |w, deadline| {
        let (issuer, cards, made, domain) =
            (issuer.clone(), cards.clone(), made.clone(), domain(w));
        async move {
            let mut tally = Tally::new();
            let mut done = 0u64;
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let card = cards[rand::thread_rng().gen_range(0..cards.len())].clone();
                let t0 = Instant::now();
                let result = issuer
                    .tokenise(&card, &domain)
                    .await
                    .map_err(anyhow::Error::from);
                if let Some((_, number)) = tally.record(result, t0) {
                    done += 1;
                    mine.push((number.expose().clone(), card));
                }
            }
            made.lock().await.extend(mine);
            (done, tally)
        }
    })
    .await?;
    let made = Arc::new(std::mem::take(&mut *made.lock().await));
    anyhow::ensure!(
        !made.is_empty(),
        "no token was made: {:?}",
        tokenised.tally.errors
    );

    eprintln!(
        "de-tokenising with {} workers for {} s…",
        args.concurrency, args.seconds
    );
    let wrong = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let detokenised = timed(args, |_, deadline| {
        let (issuer, made, wrong) = (issuer.clone(), made.clone(), wrong.clone());
        async move {
            let mut tally = Tally::new();
            let mut done = 0u64;
            while Instant::now() < deadline {
                let (number, card) = &made[rand::thread_rng().gen_range(0..made.len())];
                let t0 = Instant::now();
                let result = issuer.detokenise(number).await.map_err(anyhow::Error::from);
                if let Some(found) = tally.record(result, t0) {
                    done += 1;
                    // The vault must map the token back to its own card.
                    let right = found.is_some_and(|f| {
                        f.token.card_id == *card && f.pan.expose() != number.as_str()
                    });
                    if !right {
                        wrong.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            (done, tally)
        }
    })
    .await?;

    // The vault holds exactly the tokens made, each found on its card.
    let mut held = 0usize;
    for card in cards.iter() {
        held += issuer.store.vault_tokens_of_card(card).await?.len();
    }
    let wrong = wrong.load(std::sync::atomic::Ordering::Relaxed);
    let all_held = held == made.len();
    let ok = all_held && wrong == 0 && tokenised.tally.errors.is_empty();

    println!(
        "tokenise bench on {store_name}: {} workers, {} cards, {:.1} s a phase",
        args.concurrency, args.cards, tokenised.seconds
    );
    println!(
        "  tokenise      {} tokens ({:.0}/s)",
        tokenised.done,
        tokenised.per_second()
    );
    tokenised.tally.print();
    println!(
        "  de-tokenise   {} look-ups ({:.0}/s)",
        detokenised.done,
        detokenised.per_second()
    );
    detokenised.tally.print();
    println!(
        "  checks        {} (vault holds the {} tokens made: {all_held}; look-ups on the wrong card or none: {wrong})",
        if ok { "ok" } else { "BROKEN" },
        made.len()
    );
    let report = json!({
        "scenario": "tokenise",
        "store": store_name,
        "concurrency": args.concurrency,
        "cards": args.cards,
        "seconds": tokenised.seconds,
        "tokenisations": tokenised.done,
        "tokenisations_per_s": tokenised.per_second(),
        "tokenise_latency_ms": tokenised.tally.latency_json(),
        "detokenisations": detokenised.done,
        "detokenisations_per_s": detokenised.per_second(),
        "detokenise_latency_ms": detokenised.tally.latency_json(),
        "errors": tokenised.tally.errors.iter().chain(detokenised.tally.errors.iter())
            .fold(BTreeMap::<String, u64>::new(), |mut all, (k, v)| { *all.entry(k.clone()).or_default() += v; all }),
        "invariants_ok": ok,
        "pgbench": null,
    });
    Ok((report, ok))
}

/// Runs `worker(w, deadline)` on `--concurrency` tasks for `--seconds`.
async fn timed<F, Fut>(args: &TokeniseBenchArgs, worker: F) -> anyhow::Result<Phase>
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = (u64, Tally)> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|w| tokio::spawn(worker(w, deadline)))
        .collect();
    let mut phase = Phase {
        done: 0,
        seconds: 0.0,
        tally: Tally::new(),
    };
    for task in tasks {
        let (done, tally) = task.await.context("a bench worker panicked")?;
        phase.done += done;
        phase.tally.merge(tally);
    }
    phase.seconds = started.elapsed().as_secs_f64();
    Ok(phase)
}

/// `n` active debit cards, [`CARDS_PER_CUSTOMER`] to a bank customer.
async fn issue_cards(issuer: &Issuer, n: usize) -> anyhow::Result<Vec<CardId>> {
    let progress = preparing(n as u64, "issuing cards");
    let mut cards = Vec::with_capacity(n);
    let mut customer = None;
    for i in 0..n {
        if i % CARDS_PER_CUSTOMER == 0 {
            let c = i / CARDS_PER_CUSTOMER;
            customer = Some(
                issuer
                    .create_customer(&NewCustomer {
                        username: format!("vault.{c}"),
                        password: Secret::new("Bench#2026".into()),
                        name: PersonName::parse(&format!("Vault Customer {c}"))?,
                        id_number: IdNumber::complete(&format!("110105{c:011}")),
                        phone: format!("136{c:08}").parse()?,
                    })
                    .await?
                    .id,
            );
        }
        let owner = customer.as_ref().expect("a customer for every card");
        let card = issuer
            .issue_card(
                owner,
                &NewCard {
                    pan: None,
                    card_type: CardType::Debit,
                    expiry: Expiry::new(12, 2035)?,
                    opening_balance: Money::new(0, Currency::CNY),
                    credit_limit_minor: 0,
                },
            )
            .await?;
        cards.push(card.id);
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(cards)
}

/// pgbench on the same PostgreSQL, in a schema of its own (dropped after):
/// TPC-B and select-only with our clients and time. `null` figures, with
/// the reason, when pgbench cannot run.
async fn compare_with_pgbench(
    args: &TokeniseBenchArgs,
    ours: &serde_json::Value,
) -> serde_json::Value {
    match pgbench_figures(args).await {
        Ok((tpcb, select_only)) => {
            let store_ratio = ours["tokenisations_per_s"].as_f64().unwrap_or(0.0) / tpcb;
            let read_ratio = ours["detokenisations_per_s"].as_f64().unwrap_or(0.0) / select_only;
            println!(
                "  pgbench       TPC-B {tpcb:.0} tps, select-only {select_only:.0} tps (scale {}, {} clients)",
                args.pgbench_scale, args.concurrency
            );
            println!(
                "  ratios        tokenise / TPC-B {store_ratio:.2}× (target > {VAULT_TPCB_RATIO}×); de-tokenise / select-only {read_ratio:.2}× (target > {VAULT_SELECT_RATIO}×)"
            );
            json!({
                "tpcb_tps": tpcb,
                "select_only_tps": select_only,
                "scale": args.pgbench_scale,
                "tokenise_vs_tpcb": store_ratio,
                "detokenise_vs_select_only": read_ratio,
                "targets": {"tokenise_vs_tpcb": VAULT_TPCB_RATIO, "detokenise_vs_select_only": VAULT_SELECT_RATIO},
                "above_targets": store_ratio > VAULT_TPCB_RATIO && read_ratio > VAULT_SELECT_RATIO,
            })
        }
        Err(e) => {
            println!("  pgbench       not run: {e:#}");
            json!({"error": format!("{e:#}")})
        }
    }
}

async fn pgbench_figures(args: &TokeniseBenchArgs) -> anyhow::Result<(f64, f64)> {
    let schema = format!("bench_pgbench_{:012x}", rand::random::<u64>() >> 16);
    paybridge_store::testing::create_schema(&args.database_url, &schema)
        .await
        .context("creating pgbench's schema")?;
    let result = (|| {
        eprintln!("pgbench: initialising scale {}…", args.pgbench_scale);
        pgbench(
            args,
            &schema,
            &["-i", "-q", "-s", &args.pgbench_scale.to_string()],
        )?;
        let clients = args.concurrency.to_string();
        let threads = std::thread::available_parallelism()
            .map(|n| n.get().min(args.concurrency))
            .unwrap_or(1)
            .to_string();
        let seconds = args.seconds.to_string();
        let common = ["-c", &clients, "-j", &threads, "-T", &seconds, "-n"];
        eprintln!("pgbench: TPC-B for {} s…", args.seconds);
        let tpcb = tps(&pgbench(args, &schema, &common)?)?;
        eprintln!("pgbench: select-only for {} s…", args.seconds);
        let mut select = common.to_vec();
        select.push("-S");
        let select_only = tps(&pgbench(args, &schema, &select)?)?;
        Ok((tpcb, select_only))
    })();
    paybridge_store::testing::drop_schema(&args.database_url, &schema);
    result
}

/// Runs pgbench against `--database-url` with `schema` first on its
/// search path; answers its standard output.
fn pgbench(args: &TokeniseBenchArgs, schema: &str, flags: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("pgbench")
        .args(flags)
        .arg(&args.database_url)
        .env("PGOPTIONS", format!("-c search_path={schema}"))
        .output()
        .context("pgbench is not installed (it comes with the PostgreSQL server packages)")?;
    anyhow::ensure!(
        out.status.success(),
        "pgbench {}: {}",
        flags.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `tps = …` figure of a pgbench report.
fn tps(report: &str) -> anyhow::Result<f64> {
    report
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("tps = ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .with_context(|| format!("no tps in pgbench's report: {report}"))
}

#[cfg(test)]
mod tests {
    use super::tps;

    #[test]
    fn reads_the_tps_of_a_pgbench_report() {
        let report = "transaction type: <builtin: TPC-B (sort of)>\nnumber of clients: 16\nlatency average = 6.251 ms\ninitial connection time = 22.3 ms\ntps = 2559.712394 (without initial connection time)\n";
        assert!((tps(report).unwrap() - 2559.712394).abs() < 1e-9);
        assert!(tps("no figures here").is_err());
    }
}
