//! `paybridge demo …`: plays the people of a flow — the bank app, the wallet
//! app, the SMS inbox — against a server over HTTP, printing each step as the
//! person would see it. Without `--server` it starts one in-process on a
//! temporary SQLite store. Exits non-zero unless the flow reaches its end on
//! both sides.

use paybridge_issuer::bindings::BindingMode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use paybridge_crypto::master::MasterKey;
use paybridge_crypto::PartnerKeyPair;
use paybridge_domain::SystemClock;
use paybridge_http::{App, AppConfig, IssuerRoleConfig, PeerConfig, WalletRoleConfig};
use paybridge_issuer::sandbox_bins;
use paybridge_issuer::seed::SANDBOX_SEED;
use paybridge_store::StoreConfig;
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// A running paybridge (both roles, sandbox on), e.g. http://127.0.0.1:8080.
    /// Without it, one is started in-process on a temporary SQLite store.
    #[arg(long)]
    pub server: Option<String>,
}

/// The demo customer of the sandbox bank whose card is bound.
const BANK_USER: &str = "zhang.san";
pub(crate) const BANK_PASSWORD: &str = "Sandbox#2026";
pub(crate) const RESERVED_PHONE: &str = "13800138000";
/// The payment password every demo sets (and uses when one is set).
pub(crate) const DEMO_PAYMENT_PASSWORD: &str = "730245";
pub(crate) const WALLET_PASSWORD: &str = "Demo wallet 2026";

/// A server for the demo: the given one, or an in-process one.
pub(crate) struct Server {
    pub(crate) base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: Option<std::path::PathBuf>,
}

impl Server {
    pub(crate) async fn start(args: &DemoArgs) -> anyhow::Result<Server> {
        if let Some(url) = &args.server {
            return Ok(Server {
                base: url.trim_end_matches('/').to_owned(),
                stop: None,
                task: None,
                dir: None,
            });
        }
        let dir =
            std::env::temp_dir().join(format!("paybridge-demo-{:016x}", rand::random::<u64>()));
        let (wkey, ikey) = (
            Arc::new(PartnerKeyPair::generate()),
            Arc::new(PartnerKeyPair::generate()),
        );
        let (wid, iid) = ("wallet".parse()?, "demo-bank".parse()?);
        let app = App::build(AppConfig {
            listen: "127.0.0.1:0".parse()?,
            wallet: Some(WalletRoleConfig {
                id: "wallet".parse()?,
                store: StoreConfig::Sqlite {
                    path: dir.join("wallet.db"),
                },
                key: wkey.clone(),
                issuers: vec![PeerConfig {
                    id: iid,
                    base_url: None,
                    public_keys: vec![ikey.public()],
                }],
                webauthn: Default::default(),
                relays: Vec::new(),
                payment_request_ttl_secs: None,
            }),
            issuer: Some(IssuerRoleConfig {
                id: "demo-bank".parse()?,
                name: "Demo Bank".into(),
                store: StoreConfig::Sqlite {
                    path: dir.join("issuer.db"),
                },
                key: ikey,
                wallet: PeerConfig {
                    id: wid,
                    base_url: None,
                    public_keys: vec![wkey.public()],
                },
                bins: sandbox_bins(),
                seeds: vec![SANDBOX_SEED.to_owned()],
            }),
            sandbox: true,
            clock: Arc::new(SystemClock),
            master_key: MasterKey::from_bytes(MasterKey::generate()),
        })
        .await
        .context("cannot start the in-process server")?;
        let base = app.base_url();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        println!("(a paybridge server runs in-process at {base}, on a temporary SQLite store)\n");
        Ok(Server {
            base,
            stop: Some(stop),
            task: Some(task),
            dir: Some(dir),
        })
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// JSON over HTTP as an app does it.
pub(crate) struct Http {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
}

impl Http {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if method == Method::POST {
            req = req.header(
                "idempotency-key",
                format!("demo-{:016x}", rand::random::<u64>()),
            );
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            },
        ))
    }

    /// A call that must succeed.
    pub(crate) async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, v) = self.call(method.clone(), path, token, body).await?;
        if !(200..300).contains(&status) {
            bail!("{method} {path} answered {status}: {v}");
        }
        Ok(v)
    }
}

pub(crate) fn say(who: &str, what: impl AsRef<str>) {
    println!("{who:<12} {}", what.as_ref());
}

pub(crate) fn money(v: &Value) -> String {
    let minor = v["amount"].as_i64().unwrap_or(0);
    format!(
        "{} {}.{:02}",
        v["currency"].as_str().unwrap_or(""),
        minor / 100,
        (minor % 100).abs()
    )
}

/// The wallet app logs in as the owner of `phone` (registering the account the first time).
pub(crate) async fn wallet_login(http: &Http, phone: &str) -> anyhow::Result<String> {
    let creds = json!({"phone": phone, "password": WALLET_PASSWORD});
    let (status, v) = http
        .call(Method::POST, "/v1/accounts", None, Some(creds.clone()))
        .await?;
    match status {
        201 => say(
            "wallet app",
            format!(
                "registered a wallet account for {}",
                v["phone_masked"].as_str().unwrap_or("")
            ),
        ),
        409 => say("wallet app", "this phone already has a wallet account"),
        _ => bail!("registration answered {status}: {v}"),
    }
    let s = http
        .ok(Method::POST, "/v1/sessions", None, Some(creds))
        .await
        .context("wallet login")?;
    say("wallet app", "logged in");
    Ok(s["token"].as_str().unwrap_or_default().to_owned())
}

/// The SMS inbox: the newest text to `phone`, shown masked, and its code.
pub(crate) async fn latest_code(http: &Http, phone: &str) -> anyhow::Result<String> {
    let inbox = http
        .ok(
            Method::GET,
            &format!("/v1/sandbox/sms?phone={phone}&limit=1"),
            None,
            None,
        )
        .await?;
    let body = inbox["messages"][0]["body"]
        .as_str()
        .context("no text message arrived")?
        .to_owned();
    let masked: paybridge_domain::phone::PhoneNumber = phone.parse()?;
    say("SMS inbox", format!("to {}: \"{body}\"", masked.masked()));
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .map(str::to_owned)
        .context("no code in the text message")
}

/// Runs flow F1 by QR code or by push message.
pub async fn bind(args: DemoArgs, mode: BindingMode) -> anyhow::Result<()> {
    let server = Server::start(&args).await?;
    let http = Http {
        base: server.base.clone(),
        client: reqwest::Client::new(),
    };
    let result = play_bind(&http, mode).await.map(|_| ());
    server.stop().await;
    result
}

pub(crate) async fn play_bind(http: &Http, mode: BindingMode) -> anyhow::Result<String> {
    let (bank, card) = bank_app_card(http).await?;
    // The wallet app of the card holder (a binding message goes to the
    // account with the reserved phone and the holder's identity).
    let wallet = wallet_login(http, RESERVED_PHONE).await?;
    unbind_earlier_run(http, &wallet, &card).await?;
    let binding_id = match mode {
        BindingMode::Push => start_by_push(http, &bank, &wallet, &card).await?,
        BindingMode::Qr => start_by_qr(http, &bank, &wallet, &card).await?,
    };
    confirm_binding(http, &wallet, &binding_id).await?;
    active_on_both_sides(http, &bank, &wallet, &card, &binding_id).await?;
    println!("\nbinding {binding_id} is active on both sides");
    Ok(binding_id)
}

/// The bank app: logs in as the demo customer; their first card.
async fn bank_app_card(http: &Http) -> anyhow::Result<(String, Value)> {
    // The bank app.
    let s = http
        .ok(
            Method::POST,
            "/bank/v1/app/sessions",
            None,
            Some(json!({"username": BANK_USER, "password": BANK_PASSWORD})),
        )
        .await
        .context("bank app login (is the sandbox bank seeded?)")?;
    let bank = s["token"].as_str().unwrap_or_default().to_owned();
    say(
        "bank app",
        format!(
            "logged in as {} ({})",
            s["customer"]["name_masked"].as_str().unwrap_or(""),
            BANK_USER
        ),
    );
    let cards = http
        .ok(Method::GET, "/bank/v1/app/cards", Some(&bank), None)
        .await?;
    let card = cards["cards"][0].clone();
    card["id"].as_str().context("the customer has no card")?;
    say(
        "bank app",
        format!(
            "card {} ({}, {}), balance {}",
            card["masked"].as_str().unwrap_or(""),
            card["type"].as_str().unwrap_or(""),
            card["bank_name"].as_str().unwrap_or(""),
            money(&card["balance"])
        ),
    );
    Ok((bank, card))
}

/// A re-run against the same server unbinds the card an earlier run bound.
async fn unbind_earlier_run(http: &Http, wallet: &str, card: &Value) -> anyhow::Result<()> {
    let existing = http
        .ok(Method::GET, "/v1/bindings", Some(wallet), None)
        .await?;
    for b in existing["bindings"].as_array().into_iter().flatten() {
        if b["state"] == "active" && b["last4"] == card["last4"] {
            http.ok(
                Method::DELETE,
                &format!("/v1/bindings/{}", b["id"].as_str().unwrap_or("")),
                Some(wallet),
                None,
            )
            .await?;
            say(
                "wallet app",
                "(unbound this card from an earlier run first)",
            );
        }
    }
    Ok(())
}

/// The bank app's "Bind to wallet" on `card`, by QR code or push message.
async fn bank_starts_binding(
    http: &Http,
    bank: &str,
    card: &Value,
    mode: BindingMode,
) -> anyhow::Result<Value> {
    let card_id = card["id"].as_str().unwrap_or_default();
    let mode = match mode {
        BindingMode::Qr => "qr",
        BindingMode::Push => "push",
    };
    http.ok(
        Method::POST,
        &format!("/bank/v1/app/cards/{card_id}/wallet-bindings"),
        Some(bank),
        Some(json!({ "mode": mode })),
    )
    .await
}

/// Push path: the bank asks the wallet, the wallet app gets a binding message.
async fn start_by_push(
    http: &Http,
    bank: &str,
    wallet: &str,
    card: &Value,
) -> anyhow::Result<String> {
    let started = bank_starts_binding(http, bank, card, BindingMode::Push).await?;
    if started["status"] != "pushed" {
        bail!("the wallet found no account for this customer: {started}");
    }
    say(
        "bank app",
        "\"Bind to wallet\": a binding message was sent to your wallet app",
    );
    let id = started["binding_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    say(
        "wallet app",
        format!(
            "notification: \"Bind your {} card {}?\" (tapped)",
            card["bank_name"].as_str().unwrap_or(""),
            card["masked"].as_str().unwrap_or("")
        ),
    );
    http.ok(
        Method::POST,
        &format!("/v1/bindings/{id}/claim"),
        Some(wallet),
        None,
    )
    .await?;
    Ok(id)
}

/// QR path: the bank app shows a binding address, the wallet app scans it.
async fn start_by_qr(
    http: &Http,
    bank: &str,
    wallet: &str,
    card: &Value,
) -> anyhow::Result<String> {
    let started = bank_starts_binding(http, bank, card, BindingMode::Qr).await?;
    let url = started["url"]
        .as_str()
        .context("no binding address")?
        .to_owned();
    say(
        "bank app",
        format!(
            "\"Bind to wallet\": scan this code with the wallet app (valid until {})",
            started["expires_at"].as_str().unwrap_or("")
        ),
    );
    if let Ok(code) = qrcode::QrCode::new(url.as_bytes()) {
        let art = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build();
        for line in art.lines() {
            println!("{:13}{line}", "");
        }
    }
    let claimed = http
        .ok(
            Method::POST,
            "/v1/bindings/claims",
            Some(wallet),
            Some(json!({"address": url})),
        )
        .await?;
    say("wallet app", "scanned the code");
    Ok(claimed["id"].as_str().unwrap_or_default().to_owned())
}

/// The wallet app shows the card, sends the OTP to the reserved phone, and
/// completes with the code (and the payment password, if the account has one).
async fn confirm_binding(http: &Http, wallet: &str, binding_id: &str) -> anyhow::Result<()> {
    let shown = http
        .ok(
            Method::GET,
            &format!("/v1/bindings/{binding_id}"),
            Some(wallet),
            None,
        )
        .await?;
    say(
        "wallet app",
        format!(
            "bind {} {} card {} of {}, phone {}? [Confirm]",
            shown["bank_name"].as_str().unwrap_or(""),
            shown["card_type"].as_str().unwrap_or(""),
            shown["masked_card"].as_str().unwrap_or(""),
            shown["holder_name_masked"].as_str().unwrap_or(""),
            shown["phone_masked"].as_str().unwrap_or("")
        ),
    );
    let confirmation = http
        .ok(
            Method::POST,
            &format!("/v1/bindings/{binding_id}/confirmation"),
            Some(wallet),
            None,
        )
        .await?;
    say(
        "wallet app",
        format!(
            "a code was sent to {}",
            confirmation["otp"]["phone_masked"].as_str().unwrap_or("")
        ),
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let code = latest_code(http, RESERVED_PHONE).await?;
    // An account with a payment password confirms with it too (the demos
    // all use DEMO_PAYMENT_PASSWORD).
    let me = http.ok(Method::GET, "/v1/me", Some(wallet), None).await?;
    let mut completion = json!({ "code": code });
    if me["has_payment_password"] == true {
        completion["payment_password"] = DEMO_PAYMENT_PASSWORD.into();
        say("wallet app", "entered the payment password");
    }
    let done = http
        .ok(
            Method::POST,
            &format!("/v1/bindings/{binding_id}/completion"),
            Some(wallet),
            Some(completion),
        )
        .await?;
    say(
        "wallet app",
        format!(
            "entered {code}: binding {}",
            done["state"].as_str().unwrap_or("")
        ),
    );
    Ok(())
}

/// Both the wallet app and the bank app must show the binding active.
async fn active_on_both_sides(
    http: &Http,
    bank: &str,
    wallet: &str,
    card: &Value,
    binding_id: &str,
) -> anyhow::Result<()> {
    // Both sides must show it active.
    let mine = http
        .ok(
            Method::GET,
            &format!("/v1/bindings/{binding_id}"),
            Some(wallet),
            None,
        )
        .await?;
    let theirs = http
        .ok(Method::GET, "/bank/v1/app/bindings", Some(bank), None)
        .await?;
    let bank_side = theirs["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["binding_id"] == binding_id)
        .cloned();
    let bank_status = bank_side
        .as_ref()
        .map(|a| a["status"].clone())
        .unwrap_or(Value::Null);
    say(
        "wallet app",
        format!(
            "my cards: {} {} — {}",
            mine["bank_name"].as_str().unwrap_or(""),
            mine["masked_card"].as_str().unwrap_or(""),
            mine["state"].as_str().unwrap_or("")
        ),
    );
    say(
        "bank app",
        format!(
            "wallet bindings: {} with wallet — {}",
            card["masked"].as_str().unwrap_or(""),
            bank_status.as_str().unwrap_or("missing")
        ),
    );
    if mine["state"] != "active" || bank_status != "active" {
        bail!(
            "the binding is not active on both sides (wallet: {}, bank: {bank_status})",
            mine["state"]
        );
    }
    Ok(())
}

/// Flow F2: a bank customer without a wallet account asks the bank app to
/// open one and bind a card; then, on a new phone, the wallet app runs
/// security authentication.
pub async fn register(args: DemoArgs) -> anyhow::Result<()> {
    let server = Server::start(&args).await?;
    let http = Http {
        base: server.base.clone(),
        client: reqwest::Client::new(),
    };
    let result = play_register(&http).await;
    server.stop().await;
    result
}

/// The demo customer without a wallet account (until this demo runs).
const NEW_CUSTOMER: &str = "li.si";
const NEW_CUSTOMER_PHONE: &str = "13900139000";
const NEW_CUSTOMER_ID_LAST4: &str = "4567";

async fn play_register(http: &Http) -> anyhow::Result<()> {
    let s = http
        .ok(
            Method::POST,
            "/bank/v1/app/sessions",
            None,
            Some(json!({"username": NEW_CUSTOMER, "password": BANK_PASSWORD})),
        )
        .await
        .context("bank app login (is the sandbox bank seeded?)")?;
    let bank = s["token"].as_str().unwrap_or_default().to_owned();
    say(
        "bank app",
        format!(
            "logged in as {} ({NEW_CUSTOMER})",
            s["customer"]["name_masked"].as_str().unwrap_or("")
        ),
    );
    let cards = http
        .ok(Method::GET, "/bank/v1/app/cards", Some(&bank), None)
        .await?;
    let card = cards["cards"][0].clone();
    let card_id = card["id"]
        .as_str()
        .context("the customer has no card")?
        .to_owned();
    say(
        "bank app",
        format!(
            "\"Open the wallet and bind card {}\"",
            card["masked"].as_str().unwrap_or("")
        ),
    );
    let started = http
        .ok(
            Method::POST,
            &format!("/bank/v1/app/cards/{card_id}/wallet-registrations"),
            Some(&bank),
            None,
        )
        .await?;
    match started["status"].as_str() {
        Some("registered") => say(
            "bank app",
            "a wallet account was opened for you and the card bound; open the wallet app to finish",
        ),
        Some("existing_account") => {
            say(
                "bank app",
                "you already have a wallet account: a binding message was sent to it instead",
            );
            bail!("{NEW_CUSTOMER} already has a wallet account on this server; the registration demo needs a customer without one (run it without --server)");
        }
        _ => bail!("unexpected answer: {started}"),
    }
    let binding_id = started["binding_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // The wallet app, first opened on a new phone.
    say(
        "wallet app",
        format!("first start on a new phone; phone number {NEW_CUSTOMER_PHONE}"),
    );
    let auth = http
        .ok(
            Method::POST,
            "/v1/security-authentications",
            None,
            Some(json!({
                "phone": NEW_CUSTOMER_PHONE,
                "device": {"type": "phone", "name": "Li's phone"},
                "environment": {"emulator": false, "rooted": false, "os": "android", "os_version": "14", "attributes": ["sandbox:attested"]}
            })),
        )
        .await?;
    let id = auth["id"].as_str().unwrap_or_default().to_owned();
    say(
        "wallet app",
        format!(
            "security check required ({}); device environment passed",
            auth["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    say(
        "wallet app",
        format!(
            "a code was sent to {}",
            auth["otp"]["phone_masked"].as_str().unwrap_or("")
        ),
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let code = latest_code(http, NEW_CUSTOMER_PHONE).await?;
    http.ok(
        Method::POST,
        &format!("/v1/security-authentications/{id}/otp"),
        None,
        Some(json!({"code": code})),
    )
    .await?;
    say("wallet app", format!("entered {code}"));
    http.ok(
        Method::POST,
        &format!("/v1/security-authentications/{id}/identity"),
        None,
        Some(json!({"id_number_last4": NEW_CUSTOMER_ID_LAST4})),
    )
    .await?;
    say(
        "wallet app",
        "confirmed the last four characters of the ID number",
    );
    let done = http
        .ok(
            Method::POST,
            &format!("/v1/security-authentications/{id}/passwords"),
            None,
            Some(json!({"login_password": WALLET_PASSWORD, "payment_password": DEMO_PAYMENT_PASSWORD})),
        )
        .await?;
    say(
        "wallet app",
        format!(
            "set a login password and a payment password: security check {}",
            done["state"].as_str().unwrap_or("")
        ),
    );
    let token = done["session"]["token"]
        .as_str()
        .context("no session")?
        .to_owned();

    let me = http.ok(Method::GET, "/v1/me", Some(&token), None).await?;
    let binding = http
        .ok(
            Method::GET,
            &format!("/v1/bindings/{binding_id}"),
            Some(&token),
            None,
        )
        .await?;
    say(
        "wallet app",
        format!(
            "account {} ({}), registered by {}",
            me["phone_masked"].as_str().unwrap_or(""),
            me["status"].as_str().unwrap_or(""),
            me["registered_by"].as_str().unwrap_or("")
        ),
    );
    say(
        "wallet app",
        format!(
            "my cards: {} {} — {}",
            binding["bank_name"].as_str().unwrap_or(""),
            binding["masked_card"].as_str().unwrap_or(""),
            binding["state"].as_str().unwrap_or("")
        ),
    );
    if me["status"] != "active" || binding["state"] != "active" {
        bail!(
            "the account is {} and the binding {}",
            me["status"],
            binding["state"]
        );
    }
    println!(
        "\naccount {} is active and card {} bound",
        me["id"].as_str().unwrap_or(""),
        binding["masked_card"].as_str().unwrap_or("")
    );
    Ok(())
}
