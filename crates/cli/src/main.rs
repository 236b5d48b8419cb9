//! The `paybridge` binary. Thin on purpose: it parses the configuration and
//! hands it to `paybridge_http::App`, which the tests build the same way.
//!
//! - [`config`]: flags, `PAYBRIDGE_*` variables and the TOML file, resolved
//!   into an `AppConfig`; [`logging`]: the log format.
//! - [`demo`], [`demo_cross_device`], [`demo_delegated`],
//!   [`demo_virtual_card`]: `paybridge demo <flow>`, each flow played end
//!   to end by its parties, in-process or against `--server`.
//! - [`bench`], [`bench_bind`], [`bench_pay`], [`bench_delegated`],
//!   [`bench_tokenise`]: `paybridge bench <scenario>`.

mod bench;
mod bench_bind;
mod bench_delegated;
mod bench_pay;
mod bench_tokenise;
mod config;
mod demo;
mod demo_cross_device;
mod demo_delegated;
mod demo_virtual_card;
mod logging;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use paybridge_http::App;
use paybridge_issuer::bindings::BindingMode;
use paybridge_store::Store;

use config::{RoleChoice, ServeArgs, StoreArgs};

#[derive(Debug, Parser)]
#[command(
    name = "paybridge",
    version,
    about = "Payment-platform core: wallet, issuers and devices"
)]
struct Cli {
    /// TOML configuration file; flags and PAYBRIDGE_* variables override it.
    #[arg(long, env = "PAYBRIDGE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the wallet and the sandbox bank (or one role) with every sandbox party.
    Serve(Box<ServeArgs>),
    /// Create and migrate the stores, then exit.
    Migrate(StoreArgs),
    /// Keys: the roles' partner signing keys (show) and the keys of data at rest (rotate).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Load scenarios with figures and invariant checks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Play a flow as its people would (bank app, wallet app, SMS inbox).
    #[command(subcommand)]
    Demo(DemoCommand),
}

#[derive(Debug, Subcommand)]
enum DemoCommand {
    /// Flow F1 by QR code: the bank app shows a code, the wallet app scans it.
    BindQr(demo::DemoArgs),
    /// Flow F1 by push message: the bank asks, the wallet app is notified.
    BindPush(demo::DemoArgs),
    /// Flow F2: the bank opens a wallet account for its customer and binds a
    /// card; the wallet app passes security authentication on a new phone.
    Register(demo::DemoArgs),
    /// Flow F4: a PC asks, the phone (after a gesture relayed by the OS push
    /// relay) pays with its password; the PC is told and the merchant's
    /// webhook, received by a small receiver this demo runs, is verified.
    CrossDevice(demo::DemoArgs),
    /// Flow F3: a smart TV pairs by its user code, the phone approves it with
    /// the biometric, and the TV pays through the phone (signed request,
    /// confirm payment message, execution task, completion); both devices
    /// get the payment result notification. `--direct` plays a small amount
    /// paid without a prompt.
    Delegated(demo_delegated::DelegatedDemoArgs),
    /// Flow F5: the phone applies for a virtual card with the payment
    /// password; an existing cardholder proves the reserved phone by OTP
    /// (`--first-card`: ID card photos and a video face check, scored by the
    /// identity authority); the bank issues and tokenises the card, the
    /// wallet quick-binds it and the phone writes the token into its secure
    /// element.
    VirtualCard(demo_virtual_card::VirtualCardDemoArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Concurrent debits through the ledger service; checks the ledger balances at the end.
    Ledger(bench::LedgerBenchArgs),
    /// Completed card bindings (flow F1) per second, end to end over HTTP.
    Bind(bench_bind::BindBenchArgs),
    /// Orders paid per second through flow F4 (merchant order, PC request,
    /// phone approval, bank debit), end to end over HTTP; checks the money.
    CrossDevice(bench_pay::PayBenchArgs),
    /// Transfer payments paid per second through flow F3 (merchant order, the
    /// TV's signed request, the phone's confirmation, the execution task with
    /// the biometric, the bank debit, the completion), end to end over HTTP;
    /// checks the money.
    Delegated(bench_delegated::DelegatedBenchArgs),
    /// PAN tokenisations and de-tokenisations per second at the issuer's
    /// token vault (flow F5); on PostgreSQL, compared with pgbench's TPC-B
    /// and select-only on the same server.
    Tokenise(bench_tokenise::TokeniseBenchArgs),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print the public keys of this installation's roles (creating them on first use).
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// This bank's partner id [default: demo-bank]
        #[arg(long, env = "PAYBRIDGE_ISSUER_ID")]
        issuer_id: Option<String>,
    },
    /// Start a new key-encryption key for each role's data at rest and
    /// re-encrypt every sealed value under it (old keys stay readable).
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = config::load_file(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(*args, file)),
        Command::Migrate(args) => runtime.block_on(migrate(args, file)),
        Command::Keys(KeysCommand::Show { store, issuer_id }) => {
            keys_show(&store, issuer_id.as_deref(), &file)
        }
        Command::Keys(KeysCommand::Rotate { store }) => runtime.block_on(keys_rotate(store, file)),
        Command::Demo(DemoCommand::BindQr(args)) => {
            runtime.block_on(demo::bind(args, BindingMode::Qr))
        }
        Command::Demo(DemoCommand::BindPush(args)) => {
            runtime.block_on(demo::bind(args, BindingMode::Push))
        }
        Command::Demo(DemoCommand::Register(args)) => runtime.block_on(demo::register(args)),
        Command::Demo(DemoCommand::CrossDevice(args)) => {
            runtime.block_on(demo_cross_device::run(args))
        }
        Command::Demo(DemoCommand::Delegated(args)) => runtime.block_on(demo_delegated::run(args)),
        Command::Demo(DemoCommand::VirtualCard(args)) => {
            runtime.block_on(demo_virtual_card::run(args))
        }
        Command::Bench(BenchCommand::Delegated(args)) => {
            if !runtime.block_on(bench_delegated::delegated(args))? {
                anyhow::bail!("the transfer payments or the money checks failed");
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Tokenise(args)) => {
            if !runtime.block_on(bench_tokenise::tokenise(args))? {
                anyhow::bail!(
                    "some tokenisations failed, or the vault does not map its tokens back"
                );
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Bind(args)) => {
            if !runtime.block_on(bench_bind::bind(args))? {
                anyhow::bail!("some bindings are not active on both sides");
            }
            Ok(())
        }
        Command::Bench(BenchCommand::CrossDevice(args)) => {
            if !runtime.block_on(bench_pay::cross_device(args))? {
                anyhow::bail!("some orders were not paid, or the money does not add up");
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Ledger(args)) => {
            let invariants_ok = runtime.block_on(bench::ledger(args))?;
            if !invariants_ok {
                anyhow::bail!("the ledger invariants do not hold after the run");
            }
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs, file: config::FileConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let resolved = config::resolve(&args, &file)?;
    logging::init(resolved.log_format);
    let app = App::build(resolved.app).await?;
    let base = app.base_url();
    let mut banner = vec![format!(
        "paybridge {} serving on {base} (ready in {} ms)",
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_millis()
    )];
    banner.extend(resolved.description.iter().map(|line| format!("  {line}")));
    banner.push(format!(
        "  api       {base}/openapi.json   health {base}/healthz   metrics {base}/metrics"
    ));
    banner.push(format!("  data      {}", resolved.data_dir.display()));
    banner.push("Press Ctrl+C to stop.".into());
    say(&banner.join("\n"));
    app.run_until_stopped(shutdown_signal()).await?;
    say("paybridge stopped.");
    Ok(())
}

async fn migrate(args: StoreArgs, file: config::FileConfig) -> anyhow::Result<()> {
    let role = args.role.or(file.role).unwrap_or(RoleChoice::All);
    let roles: &[&str] = match role {
        RoleChoice::All => &["wallet", "issuer"],
        RoleChoice::Wallet => &["wallet"],
        RoleChoice::Issuer => &["issuer"],
    };
    for role in roles {
        let store_config = config::store_config(&args, &file, role);
        let store = Store::open(&store_config)
            .await
            .with_context(|| format!("cannot migrate the {role} store"))?;
        store.close().await;
        println!(
            "migrated {role} store: {}",
            config::describe_store(&store_config)
        );
    }
    Ok(())
}

async fn keys_rotate(args: StoreArgs, file: config::FileConfig) -> anyhow::Result<()> {
    let role = args.role.or(file.role).unwrap_or(RoleChoice::All);
    let roles: &[&str] = match role {
        RoleChoice::All => &["wallet", "issuer"],
        RoleChoice::Wallet => &["wallet"],
        RoleChoice::Issuer => &["issuer"],
    };
    let (master, _) = config::master_key(&config::data_dir(&args, &file))?;
    for role in roles {
        let store_config = config::store_config(&args, &file, role);
        let store = Store::open(&store_config)
            .await
            .with_context(|| format!("cannot open the {role} store"))?;
        let vault = paybridge_store::KeyVault::open(
            std::sync::Arc::new(store.clone()),
            master.clone(),
            role,
            paybridge_domain::Clock::now(&paybridge_domain::SystemClock),
        )
        .await
        .with_context(|| format!("cannot open the {role} keys"))?;
        let report = vault
            .rotate(paybridge_domain::Clock::now(&paybridge_domain::SystemClock))
            .await
            .with_context(|| format!("cannot rotate the {role} keys"))?;
        store.close().await;
        println!(
            "{role}: key {} -> {}; {} sealed values re-wrapped under the new key, {} already under it",
            report.previous, report.active, report.rewrapped, report.current
        );
    }
    Ok(())
}

fn keys_show(
    args: &StoreArgs,
    issuer_id: Option<&str>,
    file: &config::FileConfig,
) -> anyhow::Result<()> {
    let dir = config::data_dir(args, file);
    let role = args.role.or(file.role).unwrap_or(RoleChoice::All);
    let mut ids = Vec::new();
    if matches!(role, RoleChoice::All | RoleChoice::Wallet) {
        ids.push(config::wallet_id(file)?);
    }
    if matches!(role, RoleChoice::All | RoleChoice::Issuer) {
        ids.push(config::issuer_id(issuer_id, file)?);
    }
    for id in ids {
        let (key, created) = config::role_key(&dir, &id)?;
        let public = key.public();
        let note = if created { "  (created now)" } else { "" };
        println!(
            "{id}\t{}\tkey_id={}{note}",
            public.to_base64(),
            public.key_id()
        );
    }
    Ok(())
}

/// Prints to stdout, ignoring a closed pipe: a supervisor that stops reading
/// our banner must not bring the server down (`println!` would panic).
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Resolves on Ctrl+C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}
