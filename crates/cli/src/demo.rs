//! `paybridge demo …`: plays the people of a flow against a server over
//! HTTP, printing each step as the person would see it. The parties are the
//! programs of `paybridge-devices` (the bank app, the wallet app on the
//! phone, the SMS inbox); this module only narrates. Without `--server` it
//! starts one in-process on a temporary SQLite store. Exits non-zero unless
//! the flow reaches its end on both sides.

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use paybridge_api::bank::CardBody;
use paybridge_api::wallet::MoneyBody;
use paybridge_crypto::master::MasterKey;
use paybridge_crypto::PartnerKeyPair;
use paybridge_devices::bank_app::Offer;
use paybridge_devices::phone::{genuine_android, Registration, SecurityAnswers, ThisDevice};
use paybridge_devices::{BankCustomer, Phone, SmsInbox};
use paybridge_domain::account::AccountStatus;
use paybridge_domain::agreement::AgreementStatus;
use paybridge_domain::binding::BindingStage;
use paybridge_domain::device::DeviceType;
use paybridge_domain::ids::BindingId;
use paybridge_domain::SystemClock;
use paybridge_http::{App, AppConfig, IssuerRoleConfig, PeerConfig, WalletRoleConfig};
use paybridge_issuer::bindings::BindingMode;
use paybridge_issuer::sandbox_bins;
use paybridge_issuer::seed::SANDBOX_SEED;
use paybridge_store::StoreConfig;

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
/// The last digits of Zhang San's ID number (security authentication).
const ID_LAST4: &str = "1239";
/// The name the demo's phone registers under as a device of the account.
pub(crate) const PHONE_NAME: &str = "Demo phone";

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
                sms_global_hourly_cap: None,
                sms_ip_hourly_cap: None,
                pairing_ip_hourly_cap: None,
                card_media_retention_secs: None,
                sms_gateway: None,
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
            rate_limits: Default::default(),
            metrics_token: None,
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

pub(crate) fn say(who: &str, what: impl AsRef<str>) {
    println!("{who:<12} {}", what.as_ref());
}

pub(crate) fn money(m: &MoneyBody) -> String {
    let minor = m.amount;
    format!("{} {}.{:02}", m.currency, minor / 100, (minor % 100).abs())
}

/// The wallet app on the phone with `number` logs in (registering the
/// account the first time: a login that finds no account costs one wrong
/// try on the phone's counter, where registering again would cost a text
/// message of the phone's hourly budget on every run).
pub(crate) async fn wallet_login(base: &str, number: &str) -> anyhow::Result<Phone> {
    let mut phone = Phone::new(base, number);
    match phone.log_in(WALLET_PASSWORD).await {
        Ok(_) => {
            say("wallet app", "this phone already has a wallet account");
        }
        Err(e) if e.code() == Some("credentials_invalid") => {
            match phone.register(WALLET_PASSWORD).await? {
                Registration::Created(account) => say(
                    "wallet app",
                    format!(
                        "registered a wallet account for {} (with the code texted to it)",
                        account.phone_masked
                    ),
                ),
                Registration::AlreadyRegistered => anyhow::bail!(
                    "{number} has a wallet account with another password than the demo's"
                ),
            }
            phone
                .log_in(WALLET_PASSWORD)
                .await
                .context("wallet login")?;
        }
        Err(e) => return Err(e).context("wallet login"),
    }
    say("wallet app", "logged in");
    Ok(phone)
}

/// The SMS inbox shows its newest text to the person, masked.
pub(crate) async fn show_latest_text(inbox: &SmsInbox, number: &str) -> anyhow::Result<()> {
    let body = inbox.latest().await?;
    let masked: paybridge_domain::phone::PhoneNumber = number.parse()?;
    say("SMS inbox", format!("to {}: \"{body}\"", masked.masked()));
    Ok(())
}

/// Runs flow F1 by QR code or by push message.
pub async fn bind(args: DemoArgs, mode: BindingMode) -> anyhow::Result<()> {
    let server = Server::start(&args).await?;
    let result = play_bind(&server.base, mode).await.map(|_| ());
    server.stop().await;
    result
}

/// What flow F1 leaves: the card holder's wallet app (logged in), the
/// binding, and the phone as a trusted device if a re-run needed one.
pub(crate) struct Bound {
    pub wallet: Phone,
    pub binding: BindingId,
    pub trusted: Option<Phone>,
}

/// Flow F1 to its end.
pub(crate) async fn play_bind(base: &str, mode: BindingMode) -> anyhow::Result<Bound> {
    let (bank, card) = bank_app_card(base).await?;
    // The wallet app of the card holder (a binding message goes to the
    // account with the reserved phone and the holder's identity).
    let wallet = wallet_login(base, RESERVED_PHONE).await?;
    let trusted = unbind_earlier_run(base, &bank, &wallet, &card).await?;
    let binding_id = match mode {
        BindingMode::Push => start_by_push(&bank, &wallet, &card).await?,
        BindingMode::Qr => start_by_qr(&bank, &wallet, &card).await?,
    };
    confirm_binding(&wallet, &binding_id).await?;
    active_on_both_sides(&bank, &wallet, &card, &binding_id).await?;
    println!("\nbinding {binding_id} is active on both sides");
    Ok(Bound {
        wallet,
        binding: binding_id,
        trusted,
    })
}

/// The bank app: logs in as the demo customer; their first card.
async fn bank_app_card(base: &str) -> anyhow::Result<(BankCustomer, CardBody)> {
    let bank = BankCustomer::log_in(base, BANK_USER, BANK_PASSWORD)
        .await
        .context("bank app login (is the sandbox bank seeded?)")?;
    say(
        "bank app",
        format!("logged in as {} ({BANK_USER})", bank.customer().name_masked),
    );
    let card = bank.card(0).await?;
    say(
        "bank app",
        format!(
            "card {} ({}, {}), balance {}",
            card.masked,
            card.card_type,
            card.bank_name,
            money(&card.balance)
        ),
    );
    Ok((bank, card))
}

/// A re-run against the same server unbinds the card an earlier run bound.
/// Unbinding is a sensitive operation, so the phone first becomes a
/// trusted device of the account (returned, for the flow that follows).
async fn unbind_earlier_run(
    base: &str,
    bank: &BankCustomer,
    wallet: &Phone,
    card: &CardBody,
) -> anyhow::Result<Option<Phone>> {
    let earlier: Vec<BindingId> = wallet
        .app()?
        .bindings()
        .await?
        .bindings
        .into_iter()
        .filter(|b| b.state == BindingStage::Active && b.last4 == card.last4)
        .map(|b| b.id)
        .collect();
    if earlier.is_empty() {
        return Ok(None);
    }
    let phone = trusted_phone(base).await?;
    for id in &earlier {
        phone.app()?.unbind(id).await?;
        say(
            "wallet app",
            "(unbound this card from an earlier run first)",
        );
    }
    // The wallet tells the bank by an event after its commit; the bank
    // offers the card again only once it has heard (it refuses to offer a
    // card still bound to the wallet).
    for id in &earlier {
        let mut waited = 0;
        while bank.binding_of(id.as_str()).await?.map(|a| a.status) == Some(AgreementStatus::Active)
        {
            anyhow::ensure!(waited < 100, "the bank did not hear of the unbinding");
            waited += 1;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    Ok(Some(phone))
}

/// The demo's phone as a trusted device of Zhang San's account: it makes
/// its key pair and passes security authentication as a new device (each
/// run is a new install), then retires the phones an earlier run left
/// under the same name. Its session is bound to its key.
pub(crate) async fn trusted_phone(base: &str) -> anyhow::Result<Phone> {
    trusted_phone_of(base, RESERVED_PHONE, ID_LAST4).await
}

/// [`trusted_phone`] for the account of phone `number`, whose ID number
/// ends `id_last4`.
pub(crate) async fn trusted_phone_of(
    base: &str,
    number: &str,
    id_last4: &str,
) -> anyhow::Result<Phone> {
    let mut phone = Phone::new(base, number);
    say("phone", "a new device: security authentication first");
    let answers = SecurityAnswers {
        device: ThisDevice::New {
            name: PHONE_NAME.into(),
        },
        environment: genuine_android(),
        id_number_last4: id_last4.into(),
        login_password: Some(WALLET_PASSWORD.into()),
        payment_password: Some(DEMO_PAYMENT_PASSWORD.into()),
    };
    phone
        .pass_security_auth(answers)
        .await
        .context("security authentication")?;
    say("phone", "device trusted; its session is bound to its key");
    phone
        .retire_devices_named(DeviceType::Phone, PHONE_NAME)
        .await?;
    Ok(phone)
}

/// Push path: the bank asks the wallet, the wallet app gets a binding message.
async fn start_by_push(
    bank: &BankCustomer,
    wallet: &Phone,
    card: &CardBody,
) -> anyhow::Result<BindingId> {
    let started = bank.offer_binding(card, Offer::Push).await?;
    if started.status != "pushed" {
        bail!("the wallet found no account for this customer: {started:?}");
    }
    say(
        "bank app",
        "\"Bind to wallet\": a binding message was sent to your wallet app",
    );
    let id: BindingId = started
        .binding_id
        .context("no binding id in the bank's answer")?
        .parse()?;
    say(
        "wallet app",
        format!(
            "notification: \"Bind your {} card {}?\" (tapped)",
            card.bank_name, card.masked
        ),
    );
    wallet.accept_offered_binding(&id).await?;
    Ok(id)
}

/// QR path: the bank app shows a binding address, the wallet app scans it.
async fn start_by_qr(
    bank: &BankCustomer,
    wallet: &Phone,
    card: &CardBody,
) -> anyhow::Result<BindingId> {
    let started = bank.offer_binding(card, Offer::Qr).await?;
    let url = started.url.context("no binding address")?;
    say(
        "bank app",
        format!(
            "\"Bind to wallet\": scan this code with the wallet app (valid until {})",
            started.expires_at.unwrap_or_default()
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
    let claimed = wallet.scan_binding_address(&url).await?;
    say("wallet app", "scanned the code");
    Ok(claimed.id)
}

/// The wallet app shows the card, sends the OTP to the reserved phone, and
/// completes with the code (and the payment password, if the account has one).
async fn confirm_binding(wallet: &Phone, binding_id: &BindingId) -> anyhow::Result<()> {
    let app = wallet.app()?;
    let shown = app.binding(binding_id).await?;
    say(
        "wallet app",
        format!(
            "bind {} {} card {} of {}, phone {}? [Confirm]",
            shown.bank_name,
            shown.card_type,
            shown.masked_card,
            shown.holder_name_masked,
            shown.phone_masked
        ),
    );
    // The payment password comes with the code: the account's, or its
    // first one, which the binding sets (the demos all use
    // DEMO_PAYMENT_PASSWORD).
    let had_one = app.me().await?.has_payment_password;
    let reserved = SmsInbox::new(&wallet_base(wallet), RESERVED_PHONE);
    let done = wallet
        .confirm_binding(binding_id, &reserved, DEMO_PAYMENT_PASSWORD)
        .await?;
    say(
        "wallet app",
        format!("a code was sent to {}", done.phone_masked),
    );
    show_latest_text(&reserved, RESERVED_PHONE).await?;
    if had_one {
        say("wallet app", "entered the payment password");
    } else {
        say("wallet app", "chose a payment password");
    }
    say(
        "wallet app",
        format!("entered the code: binding {}", done.state),
    );
    Ok(())
}

fn wallet_base(wallet: &Phone) -> String {
    wallet.anonymous().client().base_url().to_owned()
}

/// Both the wallet app and the bank app must show the binding active.
async fn active_on_both_sides(
    bank: &BankCustomer,
    wallet: &Phone,
    card: &CardBody,
    binding_id: &BindingId,
) -> anyhow::Result<()> {
    let mine = wallet.app()?.binding(binding_id).await?;
    let theirs = bank.binding_of(binding_id.as_str()).await?;
    let bank_status = theirs.map(|a| a.status);
    let bank_shown = bank_status.map_or("missing", |s| s.as_str());
    say(
        "wallet app",
        format!(
            "my cards: {} {} — {}",
            mine.bank_name, mine.masked_card, mine.state
        ),
    );
    say(
        "bank app",
        format!(
            "wallet bindings: {} with wallet — {bank_shown}",
            card.masked
        ),
    );
    if mine.state != BindingStage::Active || bank_status != Some(AgreementStatus::Active) {
        bail!(
            "the binding is not active on both sides (wallet: {}, bank: {bank_shown})",
            mine.state
        );
    }
    Ok(())
}

/// Flow F2: a bank customer without a wallet account asks the bank app to
/// open one and bind a card; then, on a new phone, the wallet app runs
/// security authentication.
pub async fn register(args: DemoArgs) -> anyhow::Result<()> {
    let server = Server::start(&args).await?;
    let result = play_register(&server.base).await;
    server.stop().await;
    result
}

/// The demo customer without a wallet account (until this demo runs).
const NEW_CUSTOMER: &str = "li.si";
const NEW_CUSTOMER_PHONE: &str = "13900139000";
const NEW_CUSTOMER_ID_LAST4: &str = "4567";

async fn play_register(base: &str) -> anyhow::Result<()> {
    let binding_id = bank_opens_a_wallet(base).await?;
    let phone = new_phone_trusted(base).await?;
    registered_and_bound(&phone, &binding_id).await
}

/// The bank app opens a wallet account for the customer and binds a card.
async fn bank_opens_a_wallet(base: &str) -> anyhow::Result<BindingId> {
    let bank = BankCustomer::log_in(base, NEW_CUSTOMER, BANK_PASSWORD)
        .await
        .context("bank app login (is the sandbox bank seeded?)")?;
    say(
        "bank app",
        format!(
            "logged in as {} ({NEW_CUSTOMER})",
            bank.customer().name_masked
        ),
    );
    let card = bank.card(0).await?;
    say(
        "bank app",
        format!("\"Open the wallet and bind card {}\"", card.masked),
    );
    let started = bank.open_wallet_with(&card).await?;
    match started.status.as_str() {
        "registered" => say(
            "bank app",
            "a wallet account was opened for you and the card bound; open the wallet app to finish",
        ),
        "existing_account" => {
            say(
                "bank app",
                "you already have a wallet account: a binding message was sent to it instead",
            );
            bail!("{NEW_CUSTOMER} already has a wallet account on this server; the registration demo needs a customer without one (run it without --server)");
        }
        other => bail!("unexpected answer: {other}"),
    }
    Ok(started
        .binding_id
        .context("no binding id in the bank's answer")?
        .parse()?)
}

/// The wallet app, first opened on a new phone: security authentication
/// (code, ID digits, both passwords) makes it a trusted device.
async fn new_phone_trusted(base: &str) -> anyhow::Result<Phone> {
    say(
        "wallet app",
        format!("first start on a new phone; phone number {NEW_CUSTOMER_PHONE}"),
    );
    let mut phone = Phone::new(base, NEW_CUSTOMER_PHONE);
    let mut environment = genuine_android();
    environment.attributes.push("sandbox:attested".into());
    let answers = SecurityAnswers {
        device: ThisDevice::New {
            name: "Li's phone".into(),
        },
        environment,
        id_number_last4: NEW_CUSTOMER_ID_LAST4.into(),
        login_password: Some(WALLET_PASSWORD.into()),
        payment_password: Some(DEMO_PAYMENT_PASSWORD.into()),
    };
    let done = phone.pass_security_auth(answers).await?;
    say(
        "wallet app",
        format!(
            "security check required ({}); device environment passed",
            done.conditions
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    show_latest_text(phone.inbox(), NEW_CUSTOMER_PHONE).await?;
    say(
        "wallet app",
        "entered the code; confirmed the last four characters of the ID number",
    );
    say(
        "wallet app",
        format!(
            "set a login password and a payment password: security check {}",
            done.state
        ),
    );
    Ok(phone)
}

/// The new phone's wallet app shows the account and the bound card, both active.
async fn registered_and_bound(phone: &Phone, binding_id: &BindingId) -> anyhow::Result<()> {
    let app = phone.app()?;
    let me = app.me().await?;
    let binding = app.binding(binding_id).await?;
    say(
        "wallet app",
        format!(
            "account {} ({}), registered by {}",
            me.phone_masked,
            me.status,
            me.registered_by.as_deref().unwrap_or("")
        ),
    );
    say(
        "wallet app",
        format!(
            "my cards: {} {} — {}",
            binding.bank_name, binding.masked_card, binding.state
        ),
    );
    if me.status != AccountStatus::Active || binding.state != BindingStage::Active {
        bail!(
            "the account is {} and the binding {}",
            me.status,
            binding.state
        );
    }
    println!(
        "\naccount {} is active and card {} bound",
        me.id, binding.masked_card
    );
    Ok(())
}
