//! Dev-only helpers: spawn the real paybridge app on port 0 against a fresh
//! SQLite file or PostgreSQL schema, a manual clock both roles share,
//! clients that sign as the bank or the wallet, and log capture.
//!
//! - [`logs`]: captures what the app logs, to assert on it.
//!
//! The parties themselves (phone, bank app, PC) are `paybridge-devices`;
//! the helpers here drive them and the typed client.
//!
//! Every app a test spawns has both stores' invariants checked when the
//! test ends ([`TestApp::stop`], or `Drop` for a test that does not stop
//! it): balanced ledgers, no dead event, no stuck idempotency claim, no
//! order left paying, no binding active without its verification.

pub mod logs;

use std::sync::Arc;

use paybridge_api::wallet::{ClaimAddress, CompleteBinding, RegisterDevice};
use paybridge_client::{MerchantApi, PartnerClient, PartnerClientConfig, PublicClient, WalletApp};
use paybridge_crypto::PartnerKeyPair;
use paybridge_devices::bank_app::Offer;
use paybridge_devices::phone::{genuine_android, SecurityAnswers, ThisDevice};
use paybridge_devices::{BankCustomer, Phone, SmsInbox};
use paybridge_domain::binding::BindingStage;
use paybridge_domain::partner::PartnerId;
use paybridge_domain::{Clock, ManualClock};
use paybridge_http::{App, AppConfig, IssuerRoleConfig, PeerConfig, WalletRoleConfig};
use paybridge_issuer::Issuer;
use paybridge_store::testing::StoreGuard;
use paybridge_store::Backend;
use paybridge_wallet::Wallet;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use paybridge_store::testing::postgres_unavailable;

/// The login password [`TestApp::payer`] gives its accounts.
pub const TEST_LOGIN_PASSWORD: &str = "correct horse 9";
/// The payment password [`TestApp::trust_device`] sets when one is missing.
pub const TEST_PAYMENT_PASSWORD: &str = "730245";
/// Every seeded sandbox bank customer's password.
pub const SANDBOX_BANK_PASSWORD: &str = "Sandbox#2026";

/// The stable error code of an error answer (`""` when it has none).
pub fn code(v: &serde_json::Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A fresh store location on `backend`; `None` when PostgreSQL is
/// unreachable and not required (a notice has been printed).
pub async fn store_guard(backend: Backend) -> Option<StoreGuard> {
    match backend {
        Backend::Sqlite => Some(StoreGuard::sqlite()),
        Backend::Postgres => StoreGuard::postgres().await,
    }
}

/// Both roles in one process, as `paybridge serve` runs them.
#[derive(Debug)]
pub struct TestApp {
    pub base_url: String,
    pub clock: ManualClock,
    pub wallet: Wallet,
    pub issuer: Issuer,
    pub wallet_key: Arc<PartnerKeyPair>,
    pub issuer_key: Arc<PartnerKeyPair>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    /// Set once the invariants ran, so `Drop` does not run them again.
    invariants_checked: bool,
    _stores: Vec<StoreGuard>,
}

pub fn wallet_id() -> PartnerId {
    "wallet".parse().expect("valid id")
}

pub fn bank_id() -> PartnerId {
    "demo-bank".parse().expect("valid id")
}

/// A fresh random master key (each test app has its own).
pub fn test_master_key() -> paybridge_crypto::master::MasterKey {
    paybridge_crypto::master::MasterKey::from_bytes(paybridge_crypto::master::MasterKey::generate())
}

/// A clock starting now (signatures are checked against it on both sides).
pub fn manual_clock() -> ManualClock {
    ManualClock::new(paybridge_domain::SystemClock.now())
}

/// Spawns a built app; returns its stop switch and task.
pub fn run(app: App) -> (oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>) {
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (tx, handle)
}

impl TestApp {
    /// `None` when `backend` is PostgreSQL and it is unreachable (and not required).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        let wallet_store = store_guard(backend).await?;
        let issuer_store = store_guard(backend).await?;
        let clock = manual_clock();
        let wallet_key = Arc::new(PartnerKeyPair::generate());
        let issuer_key = Arc::new(PartnerKeyPair::generate());
        let config = AppConfig {
            master_key: test_master_key(),
            listen: "127.0.0.1:0".parse().expect("address"),
            wallet: Some(WalletRoleConfig {
                webauthn: Default::default(),
                relays: Vec::new(),
                payment_request_ttl_secs: None,
                id: wallet_id(),
                store: wallet_store.config.clone(),
                key: wallet_key.clone(),
                issuers: vec![PeerConfig {
                    id: bank_id(),
                    base_url: None,
                    public_keys: vec![issuer_key.public()],
                }],
            }),
            issuer: Some(IssuerRoleConfig {
                bins: paybridge_issuer::sandbox_bins(),
                seeds: vec![paybridge_issuer::seed::SANDBOX_SEED.to_owned()],
                id: bank_id(),
                name: "Demo Bank".into(),
                store: issuer_store.config.clone(),
                key: issuer_key.clone(),
                wallet: PeerConfig {
                    id: wallet_id(),
                    base_url: None,
                    public_keys: vec![wallet_key.public()],
                },
            }),
            sandbox: true,
            clock: Arc::new(clock.clone()),
        };
        let app = App::build(config).await.expect("the app builds");
        let base_url = app.base_url();
        let wallet = app.wallet.clone().expect("wallet role");
        let issuer = app.issuer.clone().expect("issuer role");
        let (stop, handle) = run(app);
        Some(TestApp {
            base_url,
            clock,
            wallet,
            issuer,
            wallet_key,
            issuer_key,
            stop: Some(stop),
            handle: Some(handle),
            invariants_checked: false,
            _stores: vec![wallet_store, issuer_store],
        })
    }

    pub fn public(&self) -> PublicClient {
        PublicClient::new(&self.base_url)
    }

    /// The wallet app's typed client (sign in with [`WalletApp::signed_in`]).
    pub fn wallet_app(&self) -> WalletApp {
        WalletApp::new(&self.base_url)
    }

    /// A merchant's typed client with `api_key`.
    pub fn merchant(&self, api_key: &str) -> MerchantApi {
        MerchantApi::new(&self.base_url, api_key)
    }

    /// The wallet app on a phone with `number`.
    pub fn phone(&self, number: &str) -> Phone {
        Phone::new(&self.base_url, number)
    }

    /// A client that signs as the bank and calls the wallet.
    pub fn bank_to_wallet(&self) -> PartnerClient {
        self.signed_client(
            bank_id(),
            self.issuer_key.clone(),
            wallet_id(),
            self.wallet_key.clone(),
            &self.base_url,
        )
    }

    /// A client that signs as the wallet and calls the bank.
    pub fn wallet_to_bank(&self) -> PartnerClient {
        self.signed_client(
            wallet_id(),
            self.wallet_key.clone(),
            bank_id(),
            self.issuer_key.clone(),
            &format!("{}/bank", self.base_url),
        )
    }

    /// Any signed client, with this app's clock.
    pub fn signed_client(
        &self,
        me: PartnerId,
        key: Arc<PartnerKeyPair>,
        peer: PartnerId,
        peer_key: Arc<PartnerKeyPair>,
        base_url: &str,
    ) -> PartnerClient {
        PartnerClient::new(
            PartnerClientConfig {
                me,
                key,
                peer,
                peer_keys: vec![peer_key.public()],
                base_url: base_url.to_owned(),
            },
            Arc::new(self.clock.clone()),
        )
    }

    /// The shared manual clock's time.
    pub fn clock_now(&self) -> paybridge_domain::Timestamp {
        self.clock.now()
    }

    /// A raw call at the wire: JSON in and out, a bearer token when given,
    /// a fresh `Idempotency-Key` on every POST; returns the status and the
    /// JSON answer (`null` for an empty one). For what the typed client
    /// cannot send or does not show (malformed ids and bodies, exact
    /// envelopes and headers); a flow's steps go through
    /// [`TestApp::wallet_app`], [`TestApp::merchant`] or the devices.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new().request(
            method.parse().expect("an HTTP method"),
            format!("{}{path}", self.base_url),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if method == "POST" {
            req = req.header("idempotency-key", format!("test-{}", rand::random::<u64>()));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        (status, json)
    }

    /// The newest six-digit code the sandbox SMS gateway sent to `phone`.
    pub async fn sms_code(&self, phone: &str) -> String {
        SmsInbox::new(&self.base_url, phone)
            .latest_code()
            .await
            .expect("a code in the newest text message")
    }

    /// Passes security authentication for a registered device of the account
    /// with `phone` (whose owner knows `id_last4`, or any four characters
    /// when the account has no identity; a missing payment password is set
    /// to 730245); returns the session on it.
    pub async fn trust_device(&self, phone: &str, device_id: &str, id_last4: &str) -> String {
        let mut device = Phone::new(&self.base_url, phone);
        let answers = SecurityAnswers {
            device: ThisDevice::Registered(device_id.parse().expect("a device id")),
            environment: genuine_android(),
            id_number_last4: id_last4.to_owned(),
            login_password: Some("Trusted device 2026".into()),
            payment_password: Some(TEST_PAYMENT_PASSWORD.into()),
        };
        let done = device
            .pass_security_auth(answers)
            .await
            .expect("security authentication passes");
        done.session.expect("a session").token
    }

    /// Binds card number `card_index` of bank customer `username` (password
    /// `Sandbox#2026`, reserved phone `reserved_phone`) to the wallet account
    /// of `wallet_token` through the QR path of flow F1; returns the
    /// binding id.
    pub async fn bind_card(
        &self,
        username: &str,
        card_index: usize,
        reserved_phone: &str,
        wallet_token: &str,
    ) -> String {
        let bank = self.bank_customer(username).await;
        let card = bank.card(card_index).await.expect("a card");
        let offer = bank
            .offer_binding(&card, Offer::Qr)
            .await
            .expect("the bank offers the card");
        let wallet = self.wallet_app().signed_in(wallet_token);
        let address = ClaimAddress {
            address: offer.url.expect("a binding address"),
        };
        let claimed = wallet
            .claim_binding_address(&address)
            .await
            .expect("the address is claimed");
        wallet
            .confirm_binding(&claimed.id)
            .await
            .expect("a code is sent");
        let completion = CompleteBinding {
            code: self.sms_code(reserved_phone).await,
            payment_password: None,
        };
        let done = wallet
            .complete_binding(&claimed.id, &completion)
            .await
            .expect("the binding completes");
        assert_eq!(done.state, BindingStage::Active, "{done:?}");
        done.id.to_string()
    }

    /// Registers a device (`kind`: phone, pc, tv, car, iot) on the account
    /// of `token`; returns its id.
    pub async fn device(&self, token: &str, kind: &str, name: &str) -> String {
        let body = RegisterDevice {
            device_type: kind.to_owned(),
            name: name.to_owned(),
        };
        self.wallet_app()
            .signed_in(token)
            .register_device(&body)
            .await
            .expect("the device registers")
            .id
            .to_string()
    }

    /// A wallet account for `phone` (login password `correct horse 9`) with
    /// card `card_index` of bank customer `username` bound and payment
    /// password `pin` set; returns (session token, binding id).
    pub async fn payer(
        &self,
        username: &str,
        card_index: usize,
        phone: &str,
        pin: &str,
    ) -> (String, String) {
        let mut payer = Phone::new(&self.base_url, phone);
        payer
            .register(TEST_LOGIN_PASSWORD)
            .await
            .expect("the account registers");
        let token = payer
            .log_in(TEST_LOGIN_PASSWORD)
            .await
            .expect("the login succeeds")
            .token
            .clone();
        let binding = self.bind_card(username, card_index, phone, &token).await;
        payer
            .set_payment_password(pin)
            .await
            .expect("the payment password is set");
        (token, binding)
    }

    /// Demo bank customer `username` signed in to the bank app.
    pub async fn bank_customer(&self, username: &str) -> BankCustomer {
        BankCustomer::log_in(&self.base_url, username, SANDBOX_BANK_PASSWORD)
            .await
            .expect("the bank app login succeeds")
    }

    /// The balance (minor units) of card `card_index` of demo bank customer
    /// `username`, as the bank app shows it.
    pub async fn card_balance(&self, username: &str, card_index: usize) -> i64 {
        let bank = self.bank_customer(username).await;
        bank.card(card_index).await.expect("a card").balance.amount
    }

    /// Order `id` of the sandbox merchant (Demo Shop), as its API shows it.
    pub async fn sandbox_order(&self, id: &str) -> serde_json::Value {
        let order = self
            .merchant(paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY)
            .order(&id.parse().expect("an order id"))
            .await
            .expect("the order");
        serde_json::to_value(order).expect("an order serialises")
    }

    /// The state of the sandbox merchant's order `id`.
    pub async fn order_state(&self, id: &str) -> String {
        self.sandbox_order(id).await["state"]
            .as_str()
            .expect("an order state")
            .to_owned()
    }

    /// The balance (minor units) of the merchant of `api_key` in the wallet's ledger.
    pub async fn merchant_balance(&self, api_key: &str) -> i64 {
        let m = self
            .wallet
            .authenticate_merchant(api_key)
            .await
            .expect("a merchant key")
            .merchant_id;
        let m = self.wallet.store.merchant(&m).await.unwrap().unwrap();
        let a = self
            .wallet
            .store
            .ledger_account(&m.account_id)
            .await
            .unwrap()
            .unwrap();
        a.credits_posted - a.debits_posted
    }

    /// Checks the invariants of both roles' stores (see
    /// [`paybridge_store::audit`]); panics naming every breach.
    pub async fn assert_invariants(&self) {
        let mut breaches = Vec::new();
        for (role, report) in [
            ("wallet", self.wallet.store.audit().await),
            ("issuer", self.issuer.store.audit().await),
        ] {
            let report =
                report.unwrap_or_else(|e| panic!("the {role} store cannot be audited: {e}"));
            breaches.extend(report.breaches.into_iter().map(|b| format!("{role}: {b}")));
        }
        assert!(
            breaches.is_empty(),
            "invariants broken when the test ended:\n  {}",
            breaches.join("\n  ")
        );
    }

    /// Checks the invariants, then stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.invariants_checked = true;
        self.assert_invariants().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    /// A test that ends without [`TestApp::stop`] still has the invariants
    /// checked (unless it is already failing), on runtimes that can block.
    fn drop(&mut self) {
        if !self.invariants_checked && !std::thread::panicking() {
            self.invariants_checked = true;
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                    tokio::task::block_in_place(|| rt.block_on(self.assert_invariants()));
                }
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Declares `sqlite::name` and `postgres::name` tests running `name(TestApp)`.
#[macro_export]
macro_rules! app_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let app = $crate::TestApp::spawn(paybridge_store::Backend::Sqlite).await.expect("SQLite is always available");
                    super::$name(&app).await;
                    app.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(app) = $crate::TestApp::spawn(paybridge_store::Backend::Postgres).await {
                        super::$name(&app).await;
                        app.stop().await;
                    }
                }
            )*
        }
    };
}
