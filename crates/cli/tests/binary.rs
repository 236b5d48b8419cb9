//! The `paybridge` binary as a newcomer runs it: `serve` starts on a fresh
//! data folder, answers `/healthz`, and stops cleanly on SIGTERM; `keys show`
//! is stable and the key files are private; `migrate` works on PostgreSQL.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_paybridge"))
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paybridge-cli-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `serve` and returns the child and the base URL it printed.
fn serve(args: &[&str], cwd: &PathBuf) -> (Child, String) {
    let mut child = bin()
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    // Keep draining, as a terminal would.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    (child, url)
}

/// The stores a bench test runs on: SQLite, and PostgreSQL when it answers.
fn bench_stores() -> Vec<&'static str> {
    let mut stores = vec!["sqlite"];
    let pg = Command::new("pg_isready")
        .args(["-h", "127.0.0.1", "-p", "5432", "-q"])
        .status();
    if pg.is_ok_and(|s| s.success()) {
        stores.push("postgres");
    } else {
        paybridge_store::testing::postgres_unavailable(&"pg_isready failed");
    }
    stores
}

fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "paybridge did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn serve_survives_a_closed_stdout() {
    let dir = temp_dir();
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    drop(reader);
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(200));
    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    terminate(&mut child);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn serve_starts_on_a_fresh_folder_and_stops_on_sigterm() {
    let dir = temp_dir();
    let (mut child, url) = serve(&[], &dir);
    let health: serde_json::Value = reqwest::get(format!("{url}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["roles"], serde_json::json!(["wallet", "issuer"]));
    let sms = reqwest::get(format!("{url}/v1/sandbox/sms?phone=13800138000"))
        .await
        .unwrap();
    assert_eq!(sms.status().as_u16(), 200, "the sandbox is on by default");
    terminate(&mut child);
    for f in [
        "paybridge-data/wallet.db",
        "paybridge-data/issuer.db",
        "paybridge-data/keys/wallet.ed25519",
        "paybridge-data/keys/demo-bank.ed25519",
    ] {
        assert!(dir.join(f).exists(), "{f} created on first run");
    }
    // Second start on the same folder: same keys, already migrated.
    let (mut child, url) = serve(&["--no-sandbox"], &dir);
    let sms = reqwest::get(format!("{url}/v1/sandbox/sms?phone=13800138000"))
        .await
        .unwrap();
    assert_eq!(
        sms.status().as_u16(),
        404,
        "--no-sandbox removes the sandbox endpoints"
    );
    terminate(&mut child);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn keys_show_is_stable_and_key_files_are_private() {
    let dir = temp_dir();
    let show = || {
        let out = bin()
            .args(["keys", "show", "--data-dir"])
            .arg(dir.join("data"))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let first = show();
    assert!(
        first.contains("wallet\t") && first.contains("demo-bank\t"),
        "{first}"
    );
    assert!(first.contains("created now"));
    let second = show();
    assert_eq!(
        first.replace("  (created now)", ""),
        second,
        "the same keys on the second call"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("data/keys/wallet.ed25519"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_flag_or_config_is_a_clear_error() {
    let out = bin().args(["serve", "--role", "bank"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'bank'"));
    let dir = temp_dir();
    let config = dir.join("paybridge.toml");
    std::fs::write(&config, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = bin()
        .arg("--config")
        .arg(&config)
        .args(["serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid config file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A wallet alone needs to be told where its bank is.
    let out = bin()
        .args(["serve", "--role", "wallet", "--data-dir"])
        .arg(dir.join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the wallet has no bank"));
    // The sandbox publishes its OTPs: not on a public address by accident.
    let out = bin()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.join("e"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve the sandbox on 0.0.0.0:0") && err.contains("--no-sandbox"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `serve --database-url` and `migrate` against PostgreSQL, in a database of
/// their own that is dropped afterwards.
#[tokio::test]
async fn serve_and_migrate_on_postgres() {
    use sqlx::Connection;
    let admin_url = paybridge_store::testing::postgres_url();
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(c) => c,
        Err(e) => return paybridge_store::testing::postgres_unavailable(&e),
    };
    let db = format!("pbcli_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{base}/{db}");
    let dir = temp_dir();

    let out = bin()
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("schema paybridge_wallet") && text.contains("schema paybridge_issuer"),
        "{text}"
    );

    let (mut child, base_url) = serve(&["--database-url", &url], &dir);
    let ready: serde_json::Value = reqwest::get(format!("{base_url}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    terminate(&mut child);

    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `paybridge bench ledger` runs, reports, and finds the ledger balanced.
/// Runs `paybridge bench <scenario> --store <store> <args> --json`, which
/// must succeed; returns its output and the JSON object of its last line.
fn bench_json(scenario: &str, store: &str, args: &[&str]) -> (String, serde_json::Value) {
    let out = bin()
        .args(["bench", scenario, "--store", store])
        .args(args)
        .arg("--json")
        .env(
            "PAYBRIDGE_DATABASE_URL",
            paybridge_store::testing::postgres_url(),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    (stdout, last)
}

#[test]
fn bench_ledger_reports_and_checks_invariants() {
    let stores = bench_stores();
    for store in stores {
        let (stdout, last) = bench_json(
            "ledger",
            store,
            &["--concurrency", "8", "--seconds", "1", "--accounts", "20"],
        );
        assert_eq!(last["scenario"], "ledger");
        assert_eq!(last["store"], store);
        assert_eq!(last["invariants_ok"], true, "{stdout}");
        assert!(last["transfers"].as_u64().unwrap() > 0);
        for key in ["p50", "p90", "p99", "max"] {
            assert!(last["latency_ms"][key].is_number());
        }
        assert!(last["errors"].is_object() && last["throughput_per_s"].is_number());
    }
}

async fn bank_login(url: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{url}/bank/v1/app/sessions"))
        .json(&serde_json::json!({"username": "zhang.san", "password": "Sandbox#2026"}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_demo_bank_is_seeded_and_keys_rotate_without_losing_data() {
    let dir = temp_dir();
    let (mut child, url) = serve(&[], &dir);
    assert_eq!(
        bank_login(&url).await.as_u16(),
        201,
        "a demo customer logs in"
    );
    terminate(&mut child);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("paybridge-data/keys/master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the master key is private");
    }

    let rotate = || {
        let out = bin()
            .args(["keys", "rotate", "--data-dir"])
            .arg(dir.join("paybridge-data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = rotate();
    // Demo Bank holds 3 customers (name, ID number, phone) and 4 PANs.
    assert!(first.contains("issuer: key k"), "{first}");
    assert!(
        first.contains("13 sealed values re-wrapped under the new key, 0 already under it"),
        "{first}"
    );
    assert!(first.contains("wallet: key k"), "{first}");
    let second = rotate();
    assert!(second.contains("13 sealed values re-wrapped"), "{second}");

    // Everything still opens after two rotations: the server starts (and
    // re-applies the seed, which reads the cards back) and logins work.
    let (mut child, url) = serve(&[], &dir);
    assert_eq!(bank_login(&url).await.as_u16(), 201);
    terminate(&mut child);

    // Another master key cannot open the stores: a clear error, not garbage.
    let out = bin()
        .args(["keys", "rotate", "--data-dir"])
        .arg(dir.join("paybridge-data"))
        .env(
            "PAYBRIDGE_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master key"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn demo_register_ends_with_an_active_account_and_a_bound_card() {
    let out = bin().args(["demo", "register"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("is active and card"), "{stdout}");
    assert!(stdout.contains("security check passed"), "{stdout}");
}

#[test]
fn demo_bind_qr_and_bind_push_end_with_active_bindings() {
    for flow in ["bind-qr", "bind-push"] {
        let out = bin().args(["demo", flow]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{flow}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("is active on both sides"), "{stdout}");
        assert!(stdout.contains("SMS inbox"), "{stdout}");
        // What a person sees is masked.
        assert!(!stdout.contains("6219990000000014") && !stdout.contains("110105199003071239"));
    }
}

#[test]
fn demo_cross_device_ends_with_a_paid_order_a_told_pc_and_a_webhook() {
    let out = bin().args(["demo", "cross-device"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "awaiting_gesture",
        "relayed the swipe",
        "payment page: CNY 128.00 to Demo Shop",
        "\"Paid — CNY 128.00\"",
        "order.paid (signature verified)",
        "is paid, the PC was told and the merchant's webhook received",
    ] {
        assert!(stdout.contains(step), "missing {step:?}: {stdout}");
    }
    assert!(!stdout.contains("6219990000000014") && !stdout.contains("110105199003071239"));
}

#[test]
fn demo_delegated_ends_with_both_devices_told_of_a_paid_order() {
    for args in [
        &["demo", "delegated"][..],
        &["demo", "delegated", "--direct"],
    ] {
        let out = bin().args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("the TV and the phone both have the payment result notification"),
            "{stdout}"
        );
    }
}

#[test]
fn demo_virtual_card_ends_with_the_token_in_the_secure_element_on_both_paths() {
    for (args, path_steps) in [
        (
            &["demo", "virtual-card"][..],
            &["非第一卡用户", "SMS inbox"][..],
        ),
        (
            &["demo", "virtual-card", "--first-card"],
            &[
                "第一卡用户",
                "指令策略",
                "视频面签",
                "公安部系统",
                "备查身份号码",
                "反查",
            ],
        ),
    ] {
        let out = bin().args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for step in path_steps.iter().chain(&[
            "安全芯片",
            "验证服务器",
            "前置验证",
            "卡代号",
            "快捷签约",
            "主卡号的标记化",
            "快捷绑卡",
            "into its secure element: installed = true",
            "the token is in the phone's secure element and quick binding",
        ]) {
            assert!(stdout.contains(step), "{args:?} missing {step:?}: {stdout}");
        }
        // No full ID number, PAN or token on the screen.
        assert!(!stdout.contains("110105199003071239") && !stdout.contains("440106198811200033"));
        assert!(!stdout.contains("625999") && !stdout.contains("629999"));
    }
}

#[tokio::test]
async fn demos_run_against_a_server_and_again() {
    let dir = temp_dir();
    let (mut child, url) = serve(&[], &dir);
    // The cross-device demo sets a payment password; the binding demos
    // after it must still complete (with it).
    for flow in [
        "bind-push",
        "cross-device",
        "bind-qr",
        "cross-device",
        "bind-push",
    ] {
        let out = bin()
            .args(["demo", flow, "--server", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{flow}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    terminate(&mut child);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_cross_device_pays_every_order_on_both_stores() {
    for store in bench_stores() {
        let (stdout, last) = bench_json(
            "cross-device",
            store,
            &["--concurrency", "3", "--orders", "9"],
        );
        assert_eq!(last["scenario"], "cross-device");
        assert_eq!(last["store"], store);
        assert_eq!(last["orders"], 9);
        assert_eq!(last["invariants_ok"], true, "{stdout}");
    }
}

#[test]
fn bench_bind_completes_every_binding_on_both_stores() {
    let stores = bench_stores();
    for store in stores {
        let (stdout, last) = bench_json("bind", store, &["--concurrency", "4", "--bindings", "12"]);
        assert_eq!(last["scenario"], "bind");
        assert_eq!(last["store"], store);
        assert_eq!(last["bindings"], 12);
        assert_eq!(last["invariants_ok"], true, "{stdout}");
        assert!(last["throughput_per_s"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bench_tokenise_maps_every_token_back_on_both_stores() {
    for store in bench_stores() {
        let (stdout, last) = bench_json(
            "tokenise",
            store,
            &[
                "--concurrency",
                "4",
                "--seconds",
                "1",
                "--cards",
                "10",
                "--pgbench-scale",
                "1",
            ],
        );
        assert_eq!(last["scenario"], "tokenise");
        assert_eq!(last["store"], store);
        assert_eq!(last["invariants_ok"], true, "{stdout}");
        assert!(last["tokenisations"].as_u64().unwrap() > 0);
        assert!(last["detokenisations"].as_u64().unwrap() > 0);
        if store == "postgres" {
            // Compared with pgbench on the same server, when it is installed.
            let pgbench = &last["pgbench"];
            if Command::new("pgbench").arg("--version").output().is_ok() {
                assert!(pgbench["tpcb_tps"].as_f64().unwrap() > 0.0, "{stdout}");
                assert!(pgbench["tokenise_vs_tpcb"].is_number(), "{stdout}");
            } else {
                assert!(pgbench["error"].is_string(), "{stdout}");
            }
        } else {
            assert!(last["pgbench"].is_null());
        }
    }
}
