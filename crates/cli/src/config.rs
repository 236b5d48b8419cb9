//! Configuration: command-line flags, each also an environment variable
//! (`PAYBRIDGE_…`), over an optional TOML file (`--config`), over defaults.
//! This module turns the three into the `AppConfig` the HTTP layer builds.

use paybridge_adapters::sms::HttpSmsConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use paybridge_crypto::keyfile;
use paybridge_crypto::keyfile::{decode_secret, load_or_create_secret};
use paybridge_crypto::master::{MasterKey, MASTER_KEY_ENV};
use paybridge_crypto::{PartnerKeyPair, PartnerPublicKey};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::SystemClock;
use paybridge_http::{
    AppConfig, IssuerRoleConfig, PeerConfig, Rate, RateLimitConfig, WalletRoleConfig,
};
use paybridge_issuer::sandbox_bins;
use paybridge_issuer::seed::SANDBOX_SEED;
use paybridge_store::StoreConfig;
use paybridge_wallet::webauthn::WebauthnConfig;
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./paybridge-data";
pub const DEFAULT_WALLET_ID: &str = "wallet";
pub const DEFAULT_ISSUER_ID: &str = "demo-bank";
pub const DEFAULT_ISSUER_NAME: &str = "Demo Bank";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleChoice {
    /// The wallet and the sandbox bank in one process.
    All,
    Wallet,
    Issuer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Where the stores live; shared by `serve`, `migrate` and `keys`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Folder for the SQLite files and the role keys [default: ./paybridge-data]
    #[arg(long, env = "PAYBRIDGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use PostgreSQL instead of SQLite (postgres://user@host:5432/db); each
    /// role gets its own schema (paybridge_wallet, paybridge_issuer).
    #[arg(long, env = "PAYBRIDGE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Which roles this process plays [default: all]
    #[arg(long, env = "PAYBRIDGE_ROLE", value_enum)]
    pub role: Option<RoleChoice>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "PAYBRIDGE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Do not serve the sandbox parties (SMS outbox, push relay).
    #[arg(long, env = "PAYBRIDGE_NO_SANDBOX")]
    pub no_sandbox: bool,
    /// Serve the sandbox on a non-loopback address anyway. The sandbox
    /// publishes every OTP it sends (GET /v1/sandbox/sms): anyone who can
    /// reach the address can pass any OTP step.
    #[arg(long, env = "PAYBRIDGE_SANDBOX_ON_PUBLIC_ADDRESS")]
    pub sandbox_on_public_address: bool,
    /// Log format [default: pretty]
    #[arg(long, env = "PAYBRIDGE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// With --role wallet: the bank's base URL, e.g. http://bank.example:8080/bank
    #[arg(long, env = "PAYBRIDGE_ISSUER_URL")]
    pub issuer_url: Option<String>,
    /// With --role wallet: the bank's public key (base64; `paybridge keys show` on its side)
    #[arg(long, env = "PAYBRIDGE_ISSUER_PUBLIC_KEY")]
    pub issuer_public_key: Option<String>,
    /// With --role issuer: the wallet's base URL, e.g. http://wallet.example:8080
    #[arg(long, env = "PAYBRIDGE_WALLET_URL")]
    pub wallet_url: Option<String>,
    /// With --role issuer: the wallet's public key (base64)
    #[arg(long, env = "PAYBRIDGE_WALLET_PUBLIC_KEY")]
    pub wallet_public_key: Option<String>,
    /// This bank's partner id [default: demo-bank]
    #[arg(long, env = "PAYBRIDGE_ISSUER_ID")]
    pub issuer_id: Option<String>,
    /// A seed file of bank customers and cards (TOML, as the README shows);
    /// repeatable; applied after the sandbox bank's demo data.
    #[arg(long = "seed", value_name = "FILE")]
    pub seeds: Vec<PathBuf>,
    /// WebAuthn relying party id of the phones' credentials [default: localhost]
    #[arg(long, env = "PAYBRIDGE_WEBAUTHN_RP_ID")]
    pub webauthn_rp_id: Option<String>,
    /// Origin the wallet app presents to WebAuthn [default: http://localhost:8080]
    #[arg(long, env = "PAYBRIDGE_WEBAUTHN_ORIGIN")]
    pub webauthn_origin: Option<String>,
    /// How long a cross-device payment request waits for the phone, in
    /// seconds (30 to 900) [default: 120]
    #[arg(long, env = "PAYBRIDGE_PAYMENT_REQUEST_TTL_SECS")]
    pub payment_request_ttl_secs: Option<i64>,
    /// Text messages (OTPs) the wallet may send in an hour, all phones
    /// together: the ceiling on what SMS pumping can cost [default: 10000]
    #[arg(long, env = "PAYBRIDGE_SMS_GLOBAL_HOURLY_CAP", value_parser = clap::value_parser!(u32).range(1..))]
    pub sms_global_hourly_cap: Option<u32>,
    /// Text messages requests from one client address may cause in an
    /// hour; 0 switches the budget off (behind a proxy, where every client
    /// has the proxy's address) [default: 50]
    #[arg(long, env = "PAYBRIDGE_SMS_IP_HOURLY_CAP")]
    pub sms_ip_hourly_cap: Option<u32>,
    /// Device pairings (flow F3) one client address may start in an hour;
    /// 0 switches the cap off (behind a proxy) [default: 20]
    #[arg(long, env = "PAYBRIDGE_PAIRING_IP_HOURLY_CAP")]
    pub pairing_ip_hourly_cap: Option<u32>,
    /// Seconds a virtual card application's ID card photos and video
    /// frames are kept after it is decided (flow F5); 0 deletes them at
    /// once [default: 0]
    #[arg(long, env = "PAYBRIDGE_CARD_MEDIA_RETENTION_SECS")]
    pub card_media_retention_secs: Option<u32>,
    /// Requests per second one client IP may send, in bursts of twice as
    /// many; 0 switches the limit off [default: 500]
    #[arg(long, env = "PAYBRIDGE_RATE_LIMIT_PER_IP")]
    pub rate_limit_per_ip: Option<u32>,
    /// Requests per second one credential (session, merchant key, partner)
    /// may send, in bursts of twice as many; 0 switches it off [default: 100]
    #[arg(long, env = "PAYBRIDGE_RATE_LIMIT_PER_CREDENTIAL")]
    pub rate_limit_per_credential: Option<u32>,
    /// A token `/metrics` then needs as `Authorization: Bearer <token>`
    /// (without one, anyone who reaches the port reads the metrics)
    #[arg(long, env = "PAYBRIDGE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// A real SMS provider for one-time codes: `POST <url>` with
    /// `{"to","text","reference"}` and a bearer token. Without one, codes go
    /// to the sandbox outbox (sandbox on), or OTP flows answer 503
    #[arg(long, env = "PAYBRIDGE_SMS_GATEWAY_URL")]
    pub sms_gateway_url: Option<String>,
    /// The SMS provider's API token
    #[arg(long, env = "PAYBRIDGE_SMS_GATEWAY_TOKEN", hide_env_values = true)]
    pub sms_gateway_token: Option<String>,
}

/// The TOML file. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub role: Option<RoleChoice>,
    pub sandbox: Option<bool>,
    pub log_format: Option<LogFormat>,
    /// Requests per second per client IP (0: off).
    pub rate_limit_per_ip: Option<u32>,
    /// Requests per second per credential (0: off).
    pub rate_limit_per_credential: Option<u32>,
    #[serde(default)]
    pub wallet: FileWallet,
    #[serde(default)]
    pub issuer: FileIssuer,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWallet {
    pub id: Option<String>,
    /// Banks registered with this wallet, beyond the one in this process.
    #[serde(default)]
    pub issuers: Vec<FilePeer>,
    pub webauthn_rp_id: Option<String>,
    pub webauthn_origin: Option<String>,
    /// OS push relays allowed to relay phones' gestures (signed calls).
    #[serde(default)]
    pub relays: Vec<FilePeer>,
    pub payment_request_ttl_secs: Option<i64>,
    pub sms_global_hourly_cap: Option<u32>,
    pub sms_ip_hourly_cap: Option<u32>,
    pub pairing_ip_hourly_cap: Option<u32>,
    pub card_media_retention_secs: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIssuer {
    pub id: Option<String>,
    pub name: Option<String>,
    pub wallet: Option<FilePeer>,
    /// Seed files applied at start (after --seed files).
    #[serde(default)]
    pub seeds: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePeer {
    pub id: String,
    pub base_url: String,
    /// Base64 Ed25519 public keys; more than one during a rotation.
    pub public_keys: Vec<String>,
}

pub fn load_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Everything resolved.
#[derive(Debug)]
pub struct Resolved {
    pub app: AppConfig,
    pub log_format: LogFormat,
    pub data_dir: PathBuf,
    pub description: Vec<String>,
}

pub fn data_dir(args: &StoreArgs, file: &FileConfig) -> PathBuf {
    args.data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

fn role(args: &StoreArgs, file: &FileConfig) -> RoleChoice {
    args.role.or(file.role).unwrap_or(RoleChoice::All)
}

fn partner_id(text: &str, what: &str) -> anyhow::Result<PartnerId> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("{what} {text:?}: {e}"))
}

fn public_key(text: &str, what: &str) -> anyhow::Result<PartnerPublicKey> {
    text.parse().map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// Store configs per role.
pub fn store_config(args: &StoreArgs, file: &FileConfig, role_name: &str) -> StoreConfig {
    match args
        .database_url
        .clone()
        .or_else(|| file.database_url.clone())
    {
        Some(url) => StoreConfig::Postgres {
            url,
            schema: format!("paybridge_{role_name}"),
            max_connections: paybridge_store::db::POSTGRES_DEFAULT_MAX_CONNECTIONS,
        },
        None => StoreConfig::Sqlite {
            path: data_dir(args, file).join(format!("{role_name}.db")),
        },
    }
}

/// The master key: `PAYBRIDGE_MASTER_KEY` (base64, 32 bytes) if set, else
/// `<data dir>/keys/master.key`, created (0600) on first start. Returns the
/// key and where it came from, for the banner.
pub fn master_key(data_dir: &Path) -> anyhow::Result<(MasterKey, String)> {
    if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
        let key = decode_secret(&text)
            .with_context(|| format!("{MASTER_KEY_ENV} is not a base64 32-byte key"))?;
        return Ok((MasterKey::from_bytes(key), format!("from {MASTER_KEY_ENV}")));
    }
    let path = data_dir.join("keys").join("master.key");
    let (key, created) = load_or_create_secret(&path, MasterKey::generate)?;
    let note = if created {
        " (new key created; back it up)"
    } else {
        ""
    };
    Ok((
        MasterKey::from_bytes(key),
        format!("{}{note}", path.display()),
    ))
}

/// Loads the role's key from `<data dir>/keys/<id>.ed25519`, creating it on first start.
pub fn role_key(data_dir: &Path, id: &PartnerId) -> anyhow::Result<(Arc<PartnerKeyPair>, bool)> {
    let path = data_dir.join("keys").join(format!("{id}.ed25519"));
    let (key, created) = keyfile::load_or_create(&path)?;
    Ok((Arc::new(key), created))
}

pub fn wallet_id(file: &FileConfig) -> anyhow::Result<PartnerId> {
    partner_id(
        file.wallet.id.as_deref().unwrap_or(DEFAULT_WALLET_ID),
        "wallet id",
    )
}

pub fn issuer_id(args_issuer_id: Option<&str>, file: &FileConfig) -> anyhow::Result<PartnerId> {
    partner_id(
        args_issuer_id
            .or(file.issuer.id.as_deref())
            .unwrap_or(DEFAULT_ISSUER_ID),
        "issuer id",
    )
}

fn file_peer(p: &FilePeer) -> anyhow::Result<PeerConfig> {
    Ok(PeerConfig {
        id: partner_id(&p.id, "partner id")?,
        base_url: Some(peer_url(&p.base_url, &format!("base_url of {}", p.id))?),
        public_keys: p
            .public_keys
            .iter()
            .map(|k| public_key(k, &format!("public key of {}", p.id)))
            .collect::<Result<_, _>>()?,
    })
}

pub fn resolve(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<Resolved> {
    let role = role(&args.store, file);
    let dir = data_dir(&args.store, file);
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address parses"));
    let sandbox = !args.no_sandbox && file.sandbox.unwrap_or(true);
    if sandbox && !listen.ip().is_loopback() && !args.sandbox_on_public_address {
        bail!(
            "refusing to serve the sandbox on {listen}: it publishes every OTP it sends \
             (GET /v1/sandbox/sms), so anyone who reaches this address passes any OTP step. \
             Listen on 127.0.0.1, or add --no-sandbox, or --sandbox-on-public-address if that is \
             really what you want"
        );
    }
    let log_format = args
        .log_format
        .or(file.log_format)
        .unwrap_or(LogFormat::Pretty);
    let mut description = Vec::new();
    let keys = RoleKeys::load(role, &dir, file, args, &mut description)?;
    let mut wallet = wallet_role(args, file, &keys, &mut description)?;
    if let Some(w) = &mut wallet {
        // Outside the sandbox a passkey answers only the configured origin.
        w.webauthn.allow_any_port = sandbox;
    }
    let issuer = issuer_role(args, file, &keys, sandbox, &mut description)?;

    let stores: Vec<String> = wallet
        .iter()
        .map(|w| describe_store(&w.store))
        .chain(issuer.iter().map(|i| describe_store(&i.store)))
        .collect();
    description.push(format!("store     {}", stores.join(", ")));
    description.push(format!(
        "sandbox   {}",
        if sandbox {
            "on: SMS outbox GET /v1/sandbox/sms?phone=…, push relay GET /v1/sandbox/push-relay?device_token=…"
        } else {
            "off"
        }
    ));

    let (master_key, master_source) = master_key(&dir)?;
    description.push(format!("master    {master_source}"));
    description.push(
        if args.metrics_token.is_some() {
            "metrics   /metrics needs the metrics token"
        } else {
            "metrics   /metrics is open to whoever reaches this port (--metrics-token protects it)"
        }
        .to_owned(),
    );
    Ok(Resolved {
        app: AppConfig {
            listen,
            wallet,
            issuer,
            sandbox,
            clock: Arc::new(SystemClock),
            master_key,
            metrics_token: args
                .metrics_token
                .clone()
                .map(paybridge_crypto::Secret::new),
            rate_limits: RateLimitConfig {
                per_ip: rate(
                    args.rate_limit_per_ip.or(file.rate_limit_per_ip),
                    paybridge_http::middleware::rate_limit::DEFAULT_PER_IP,
                ),
                per_credential: rate(
                    args.rate_limit_per_credential
                        .or(file.rate_limit_per_credential),
                    paybridge_http::middleware::rate_limit::DEFAULT_PER_CREDENTIAL,
                ),
            },
        },
        log_format,
        data_dir: dir,
        description,
    })
}

/// The roles this process serves, their ids and signing keys (created on
/// first start in the data directory).
struct RoleKeys {
    role: RoleChoice,
    wallet_id: PartnerId,
    issuer_id: PartnerId,
    wallet: Option<Arc<PartnerKeyPair>>,
    issuer: Option<Arc<PartnerKeyPair>>,
}

impl RoleKeys {
    fn load(
        role: RoleChoice,
        dir: &Path,
        file: &FileConfig,
        args: &ServeArgs,
        description: &mut Vec<String>,
    ) -> anyhow::Result<Self> {
        let wallet_id = wallet_id(file)?;
        let issuer_id = issuer_id(args.issuer_id.as_deref(), file)?;
        let wallet = matches!(role, RoleChoice::All | RoleChoice::Wallet)
            .then(|| role_key(dir, &wallet_id))
            .transpose()?;
        let issuer = matches!(role, RoleChoice::All | RoleChoice::Issuer)
            .then(|| role_key(dir, &issuer_id))
            .transpose()?;
        for (id, key) in [(&wallet_id, &wallet), (&issuer_id, &issuer)] {
            if let Some((key, created)) = key {
                let note = if *created { " (new key created)" } else { "" };
                description.push(format!(
                    "key       {id}: {}{note}",
                    key.public().to_base64()
                ));
            }
        }
        Ok(Self {
            role,
            wallet_id,
            issuer_id,
            wallet: wallet.map(|(k, _)| k),
            issuer: issuer.map(|(k, _)| k),
        })
    }
}

/// The wallet role's configuration, when this process serves it: its banks
/// (the in-process one, or the ones the flags and the file name).
fn wallet_role(
    args: &ServeArgs,
    file: &FileConfig,
    keys: &RoleKeys,
    description: &mut Vec<String>,
) -> anyhow::Result<Option<WalletRoleConfig>> {
    let Some(key) = &keys.wallet else {
        return Ok(None);
    };
    let mut issuers = Vec::new();
    match (keys.role, &keys.issuer) {
        (RoleChoice::All, Some(ikey)) => issuers.push(PeerConfig {
            id: keys.issuer_id.clone(),
            base_url: None,
            public_keys: vec![ikey.public()],
        }),
        _ => {
            if let (Some(url), Some(pk)) = (&args.issuer_url, &args.issuer_public_key) {
                issuers.push(PeerConfig {
                    id: keys.issuer_id.clone(),
                    base_url: Some(peer_url(url, "--issuer-url")?),
                    public_keys: vec![public_key(pk, "--issuer-public-key")?],
                });
            }
        }
    }
    for p in &file.wallet.issuers {
        issuers.push(file_peer(p)?);
    }
    if issuers.is_empty() {
        bail!("the wallet has no bank: give --issuer-url and --issuer-public-key, or [[wallet.issuers]] in the config file");
    }
    description.push(format!(
        "wallet    {}, banks: {}",
        keys.wallet_id,
        issuers
            .iter()
            .map(|p| p.id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let rp_id = args
        .webauthn_rp_id
        .clone()
        .or_else(|| file.wallet.webauthn_rp_id.clone())
        .unwrap_or_else(|| "localhost".into());
    let origin = args
        .webauthn_origin
        .clone()
        .or_else(|| file.wallet.webauthn_origin.clone())
        .unwrap_or_else(|| "http://localhost:8080".into());
    Ok(Some(WalletRoleConfig {
        id: keys.wallet_id.clone(),
        store: store_config(&args.store, file, "wallet"),
        key: key.clone(),
        issuers,
        webauthn: WebauthnConfig {
            rp_id,
            origin: url::Url::parse(&origin)
                .with_context(|| format!("invalid WebAuthn origin {origin:?}"))?,
            allow_any_port: true,
        },
        relays: file
            .wallet
            .relays
            .iter()
            .map(file_peer)
            .collect::<anyhow::Result<_>>()?,
        payment_request_ttl_secs: args
            .payment_request_ttl_secs
            .or(file.wallet.payment_request_ttl_secs),
        sms_global_hourly_cap: args
            .sms_global_hourly_cap
            .or(file.wallet.sms_global_hourly_cap),
        sms_ip_hourly_cap: args.sms_ip_hourly_cap.or(file.wallet.sms_ip_hourly_cap),
        pairing_ip_hourly_cap: args
            .pairing_ip_hourly_cap
            .or(file.wallet.pairing_ip_hourly_cap),
        card_media_retention_secs: args
            .card_media_retention_secs
            .or(file.wallet.card_media_retention_secs),
        sms_gateway: sms_gateway(args)?,
    }))
}

/// Whether `url` names this machine (loopback), where plain http is fine.
fn on_this_machine(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A partner's base URL: https, or http on this machine (partner calls are
/// signed, but their bodies carry agreement numbers and amounts).
fn peer_url(url: &str, what: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("{what}: invalid URL {url:?}"))?;
    anyhow::ensure!(
        parsed.scheme() == "https" || (parsed.scheme() == "http" && on_this_machine(&parsed)),
        "{what}: a partner outside this machine is reached over https, not {url:?}"
    );
    Ok(url.to_owned())
}

/// The real SMS provider, when its URL is given (with its token). Outside
/// this machine it must be https: the messages hold one-time codes.
fn sms_gateway(args: &ServeArgs) -> anyhow::Result<Option<HttpSmsConfig>> {
    let Some(url) = &args.sms_gateway_url else {
        return Ok(None);
    };
    let url = url::Url::parse(url).with_context(|| format!("invalid SMS gateway URL {url:?}"))?;
    anyhow::ensure!(
        url.scheme() == "https" || (url.scheme() == "http" && on_this_machine(&url)),
        "the SMS gateway URL must be https (http only on this machine): the messages hold one-time codes"
    );
    let token = args
        .sms_gateway_token
        .clone()
        .context("--sms-gateway-url needs --sms-gateway-token (or PAYBRIDGE_SMS_GATEWAY_TOKEN)")?;
    Ok(Some(HttpSmsConfig {
        url,
        token: paybridge_crypto::Secret::new(token),
    }))
}

/// The issuer role's configuration, when this process serves it: its wallet
/// and its seed data (the sandbox's demo customers, and any seed files).
fn issuer_role(
    args: &ServeArgs,
    file: &FileConfig,
    keys: &RoleKeys,
    sandbox: bool,
    description: &mut Vec<String>,
) -> anyhow::Result<Option<IssuerRoleConfig>> {
    let Some(key) = &keys.issuer else {
        return Ok(None);
    };
    let wallet_peer = match (keys.role, &keys.wallet) {
        (RoleChoice::All, Some(wkey)) => PeerConfig {
            id: keys.wallet_id.clone(),
            base_url: None,
            public_keys: vec![wkey.public()],
        },
        _ => match (&args.wallet_url, &args.wallet_public_key, &file.issuer.wallet) {
            (Some(url), Some(pk), _) => PeerConfig {
                id: keys.wallet_id.clone(),
                base_url: Some(peer_url(url, "--wallet-url")?),
                public_keys: vec![public_key(pk, "--wallet-public-key")?],
            },
            (_, _, Some(p)) => file_peer(p)?,
            _ => bail!("the bank has no wallet: give --wallet-url and --wallet-public-key, or [issuer.wallet] in the config file"),
        },
    };
    let issuer_name = file
        .issuer
        .name
        .clone()
        .unwrap_or_else(|| DEFAULT_ISSUER_NAME.to_owned());
    description.push(format!(
        "issuer    {} ({issuer_name}), wallet: {}",
        keys.issuer_id, wallet_peer.id
    ));
    let mut seeds = Vec::new();
    if sandbox {
        seeds.push(SANDBOX_SEED.to_owned());
        description.push(
            "bank app  demo customers zhang.san, li.si, wang.fang (password Sandbox#2026): POST /bank/v1/app/sessions"
                .to_owned(),
        );
    }
    for path in args.seeds.iter().chain(&file.issuer.seeds) {
        seeds.push(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read seed file {}", path.display()))?,
        );
        description.push(format!("seed      {}", path.display()));
    }
    Ok(Some(IssuerRoleConfig {
        id: keys.issuer_id.clone(),
        name: issuer_name,
        store: store_config(&args.store, file, "issuer"),
        key: key.clone(),
        wallet: wallet_peer,
        bins: sandbox_bins(),
        seeds,
    }))
}

pub fn describe_store(store: &StoreConfig) -> String {
    match store {
        StoreConfig::Sqlite { path } => format!("SQLite {}", path.display()),
        StoreConfig::Postgres { url, schema, .. } => {
            // Never print a password that may be in the URL.
            let shown = match url.split_once('@') {
                Some((creds, rest)) => match creds.rsplit_once(':') {
                    Some((user, _)) if user.contains("//") && !user.ends_with('/') => {
                        format!("{user}:***@{rest}")
                    }
                    _ => url.clone(),
                },
                None => url.clone(),
            };
            format!("PostgreSQL {shown} (schema {schema})")
        }
    }
}

/// A configured rate (requests per second, bursts of twice as many; 0 is
/// off), or the default.
fn rate(per_second: Option<u32>, default: Rate) -> Option<Rate> {
    match per_second {
        None => Some(default),
        Some(0) => None,
        Some(n) => Some(Rate {
            per_second: n,
            burst: n.saturating_mul(2),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_passwords_are_not_printed() {
        let s = describe_store(&StoreConfig::Postgres {
            url: "postgres://app:s3cret@db:5432/pay".into(),
            schema: "paybridge_wallet".into(),
            max_connections: 4,
        });
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("postgres://app:***@db:5432/pay"), "{s}");
    }

    fn serve_args(extra: &[&str]) -> ServeArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        use clap::Parser;
        Cli::parse_from(std::iter::once("serve").chain(extra.iter().copied())).serve
    }

    #[test]
    fn an_sms_gateway_is_https_with_a_token_unless_on_this_machine() {
        let ok = sms_gateway(&serve_args(&[
            "--sms-gateway-url",
            "https://sms.example/v1/messages",
            "--sms-gateway-token",
            "k",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(ok.url.host_str(), Some("sms.example"));
        assert!(sms_gateway(&serve_args(&[
            "--sms-gateway-url",
            "http://127.0.0.1:9000/send",
            "--sms-gateway-token",
            "k"
        ]))
        .is_ok());
        let plain = sms_gateway(&serve_args(&[
            "--sms-gateway-url",
            "http://sms.example/v1/messages",
            "--sms-gateway-token",
            "k",
        ]));
        assert!(plain.unwrap_err().to_string().contains("https"));
        let no_token = sms_gateway(&serve_args(&[
            "--sms-gateway-url",
            "https://sms.example/v1/messages",
        ]));
        assert!(no_token.unwrap_err().to_string().contains("token"));
        assert!(sms_gateway(&serve_args(&[])).unwrap().is_none());
    }

    #[test]
    fn partners_outside_this_machine_are_https() {
        assert!(peer_url("https://bank.example/bank", "p").is_ok());
        assert!(peer_url("http://127.0.0.1:9090/bank", "p").is_ok());
        assert!(peer_url("http://localhost:9090/bank", "p").is_ok());
        assert!(peer_url("http://[::1]:9090/bank", "p").is_ok());
        let e = peer_url("http://bank.example/bank", "--issuer-url").unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
        assert!(peer_url("http://10.0.0.5/bank", "p").is_err());
        assert!(peer_url("not a url", "p").is_err());
    }

    #[test]
    fn the_config_file_refuses_unknown_keys() {
        assert!(toml::from_str::<FileConfig>("listen = \"127.0.0.1:9\"\n").is_ok());
        assert!(toml::from_str::<FileConfig>("lisen = \"127.0.0.1:9\"\n").is_err());
        let f: FileConfig = toml::from_str(
            "role = \"wallet\"\n[[wallet.issuers]]\nid = \"other-bank\"\nbase_url = \"http://x/bank\"\npublic_keys = [\"k\"]\n",
        )
        .unwrap();
        assert_eq!(f.role, Some(RoleChoice::Wallet));
        assert_eq!(f.wallet.issuers[0].id, "other-bank");
    }
}
