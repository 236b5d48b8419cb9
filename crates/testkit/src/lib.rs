//! Dev-only helpers: spawn the real paybridge app on port 0 against a fresh
//! SQLite file or PostgreSQL schema, a manual clock both roles share,
//! clients that sign as the bank or the wallet, and log capture.
//!
//! - [`logs`]: captures what the app logs, to assert on it.
//! - [`delegated`]: flow F3's fixtures (a paired TV and its phone, terms,
//!   orders, what devices were pushed).
//! - [`virtual_card`]: flow F5's fixtures (an existing cardholder's phone,
//!   first-card applicants of the sandbox citizen registry).
//!
//! The parties themselves (phone, bank app, PC) are `paybridge-devices`;
//! the helpers here drive them and the typed client.
//!
//! Every app a test spawns has both stores' invariants checked when the
//! test ends ([`TestApp::stop`], or `Drop` for a test that does not stop
//! it): balanced ledgers, no dead event, no stuck idempotency claim, no
//! order left paying, no binding active without its verification.

pub mod delegated;
pub mod logs;
pub mod virtual_card;

use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

use paybridge_api::wallet::{ClaimAddress, CompleteBinding, Login, RegisterDevice};
use paybridge_client::{
    DeviceSigner, MerchantApi, PartnerClient, PartnerClientConfig, PublicClient, WalletApp,
};
use paybridge_crypto::PartnerKeyPair;
use paybridge_devices::bank_app::Offer;
use paybridge_devices::phone::{genuine_android, public_key_of, SecurityAnswers, ThisDevice};
use paybridge_devices::{BankCustomer, FirstDevice, FirstDeviceModel, Phone, SmsInbox};
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
    /// The keys of the devices tests registered, and which device each
    /// device-bound session token belongs to: [`TestApp::call`] and
    /// [`TestApp::app_of`] sign with them like the device's app would.
    device_keys: std::sync::Mutex<DeviceKeys>,
    _stores: Vec<StoreGuard>,
}

#[derive(Debug, Default)]
struct DeviceKeys {
    by_device: HashMap<String, Arc<DeviceSigner>>,
    by_token: HashMap<String, Arc<DeviceSigner>>,
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
        Self::spawn_with(backend, |_| {}).await
    }

    /// [`TestApp::spawn`] with the configuration changed by `adjust`
    /// first (tighter limits, say).
    pub async fn spawn_with(
        backend: Backend,
        adjust: impl FnOnce(&mut AppConfig),
    ) -> Option<TestApp> {
        let wallet_store = store_guard(backend).await?;
        let issuer_store = store_guard(backend).await?;
        let clock = manual_clock();
        let wallet_key = Arc::new(PartnerKeyPair::generate());
        let issuer_key = Arc::new(PartnerKeyPair::generate());
        let mut config = AppConfig {
            master_key: test_master_key(),
            rate_limits: Default::default(),
            metrics_token: None,
            listen: "127.0.0.1:0".parse().expect("address"),
            wallet: Some(WalletRoleConfig {
                webauthn: Default::default(),
                relays: Vec::new(),
                payment_request_ttl_secs: None,
                sms_global_hourly_cap: None,
                sms_ip_hourly_cap: None,
                pairing_ip_hourly_cap: None,
                card_media_retention_secs: None,
                sms_gateway: None,
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
        adjust(&mut config);
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
            device_keys: Default::default(),
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

    fn keys(&self) -> std::sync::MutexGuard<'_, DeviceKeys> {
        self.device_keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wallet app signed in with `token`; when the token is a device's
    /// session that a helper opened, on that device (signing every call).
    pub fn app_of(&self, token: &str) -> WalletApp {
        let app = self.wallet_app().signed_in(token);
        match self.keys().by_token.get(token) {
            Some(signer) => app.on_device(signer.clone()),
            None => app,
        }
    }

    /// The key of device `device_id`, if a helper registered it.
    pub fn device_key(&self, device_id: &str) -> Option<Arc<DeviceSigner>> {
        self.keys().by_device.get(device_id).cloned()
    }

    /// Pairs a terminal (`kind`: pc, tv, car, iot) from the trusted phone's
    /// session `phone_token`, then logs in on it with the account's phone
    /// and [`TEST_LOGIN_PASSWORD`]; returns (device id, the terminal's
    /// session token).
    pub async fn pair_terminal(
        &self,
        phone_token: &str,
        phone: &str,
        kind: &str,
        name: &str,
    ) -> (String, String) {
        let id = self.device(phone_token, kind, name).await;
        let token = self.device_login(phone, TEST_LOGIN_PASSWORD, &id).await;
        (id, token)
    }

    /// A login proof by device `device_id`'s key with a fresh nonce, for a
    /// test that calls `Wallet::login` directly; present it with
    /// [`TestApp::presented_login`].
    pub fn login_proof(&self, device_id: &str) -> String {
        let signer = self
            .device_key(device_id)
            .expect("a device a helper registered");
        let nonce = self.wallet.device_proofs.nonce(self.clock.now());
        signer.prove_with_nonce(
            "POST",
            &format!("{}/v1/sessions", self.base_url),
            None,
            &nonce,
        )
    }

    /// `proof` as the HTTP layer presents a login's proof to the wallet.
    pub fn presented_login<'a>(
        &'a self,
        proof: &'a str,
    ) -> paybridge_wallet::device_proof::PresentedProof<'a> {
        paybridge_wallet::device_proof::PresentedProof {
            proof: Some(proof),
            method: "POST",
            path: "/v1/sessions",
            host: self.base_url.strip_prefix("http://"),
        }
    }

    /// The headers a device's app sends with a request of its session
    /// `token` to `method path` (`Authorization: DPoP …` and a fresh
    /// proof), for a test that builds the request itself. A token that is
    /// no device's session gets `Authorization: Bearer …` alone.
    pub fn session_headers(&self, token: &str, method: &str, path: &str) -> Vec<(String, String)> {
        match self.keys().by_token.get(token) {
            Some(signer) => vec![
                ("authorization".into(), format!("DPoP {token}")),
                (
                    "dpop".into(),
                    signer.prove_with_nonce(
                        method,
                        &format!("{}{path}", self.base_url),
                        Some(token),
                        &self.wallet.device_proofs.nonce(self.clock.now()),
                    ),
                ),
            ],
            None => vec![("authorization".into(), format!("Bearer {token}"))],
        }
    }

    /// A session opened on a device whose key a helper holds (an answer
    /// with `token` and `device_id`, or a `session` holding them) is signed
    /// for from then on.
    fn learn_device_session(&self, answer: &serde_json::Value) {
        let session = if answer["session"].is_object() {
            &answer["session"]
        } else {
            answer
        };
        if let (Some(token), Some(device)) =
            (session["token"].as_str(), session["device_id"].as_str())
        {
            let mut keys = self.keys();
            if let Some(signer) = keys.by_device.get(device).cloned() {
                keys.by_token.insert(token.to_owned(), signer);
            }
        }
    }

    /// Remembers that `token` is a session of the device with `signer`.
    pub fn remember_device_session(&self, token: &str, signer: Arc<DeviceSigner>) {
        self.keys().by_token.insert(token.to_owned(), signer);
    }

    /// Logs in on device `device_id` (registered by a helper, trusted) with
    /// the account's phone and login password; returns the session token,
    /// which [`TestApp::call`] then signs for.
    pub async fn device_login(&self, phone: &str, password: &str, device_id: &str) -> String {
        let signer = self
            .device_key(device_id)
            .expect("a device a helper registered");
        let session = self
            .wallet_app()
            .on_device(signer.clone())
            .login(&Login {
                phone: phone.to_owned(),
                password: password.to_owned(),
                device_id: Some(device_id.to_owned()),
            })
            .await
            .expect("the device logs in");
        self.remember_device_session(&session.token, signer);
        session.token
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
        let client = match token {
            Some(t) => self.app_of(t).client().clone(),
            None => PublicClient::new(&self.base_url),
        };
        self.call_with(client, method, path, body).await
    }

    /// [`TestApp::call`] from device `device` (every request signed with
    /// its key), e.g. a security authentication of a new device.
    pub async fn call_on(
        &self,
        device: &Arc<DeviceSigner>,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut client = PublicClient::new(&self.base_url).with_device(device.clone());
        if let Some(t) = token {
            client = client.with_bearer(t);
        }
        let answer = self.call_with(client, method, path, body).await;
        if let Some(id) = answer.1["device_id"].as_str() {
            self.keys()
                .by_device
                .entry(id.to_owned())
                .or_insert_with(|| device.clone());
        }
        answer
    }

    async fn call_with(
        &self,
        client: PublicClient,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let key = (method == "POST").then(|| format!("test-{}", rand::random::<u64>()));
        let (status, json) = client
            .call_raw(
                method.parse().expect("an HTTP method"),
                path,
                body.as_ref(),
                key.as_deref(),
            )
            .await
            .expect("the server answers");
        self.learn_device_session(&json);
        (status, json)
    }

    /// Opens an account at the wire, both steps: `body` is
    /// `{"phone", "password"}`; the code is read from the sandbox inbox.
    /// Answers the second step's status and body (or the first's, when
    /// that one is refused).
    pub async fn register_account(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let phone = body["phone"].clone();
        let (s, started) = self
            .call(
                "POST",
                "/v1/accounts",
                None,
                Some(json!({ "phone": phone })),
            )
            .await;
        if s != 202 {
            return (s, started);
        }
        let code = self.sms_code(phone.as_str().unwrap_or_default()).await;
        self.call(
            "POST",
            "/v1/accounts/confirmation",
            None,
            Some(json!({
                "otp_id": started["otp"]["id"],
                "code": code,
                "password": body["password"],
            })),
        )
        .await
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
        let signer = self
            .device_key(device_id)
            .expect("a device a helper registered");
        let mut device = Phone::with_key(&self.base_url, phone, signer.clone());
        let answers = SecurityAnswers {
            device: ThisDevice::Registered(device_id.parse().expect("a device id")),
            environment: genuine_android(),
            id_number_last4: id_last4.to_owned(),
            login_password: Some(TEST_LOGIN_PASSWORD.into()),
            payment_password: Some(TEST_PAYMENT_PASSWORD.into()),
        };
        let done = device
            .pass_security_auth(answers)
            .await
            .expect("security authentication passes");
        let token = done.session.expect("a session").token;
        self.remember_device_session(&token, signer);
        token
    }

    /// Binds card number `card_index` of bank customer `username` (password
    /// `Sandbox#2026`, reserved phone `reserved_phone`) to the wallet account
    /// of `wallet_token` through the QR path of flow F1, with payment
    /// password `pin` (the account's, or its first: the binding sets it);
    /// returns the binding id.
    pub async fn bind_card(
        &self,
        username: &str,
        card_index: usize,
        reserved_phone: &str,
        wallet_token: &str,
        pin: &str,
    ) -> String {
        let bank = self.bank_customer(username).await;
        let card = bank.card(card_index).await.expect("a card");
        let offer = bank
            .offer_binding(&card, Offer::Qr)
            .await
            .expect("the bank offers the card");
        let wallet = self.app_of(wallet_token);
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
            payment_password: Some(pin.to_owned()),
        };
        let done = wallet
            .complete_binding(&claimed.id, &completion)
            .await
            .expect("the binding completes");
        assert_eq!(done.state, BindingStage::Active, "{done:?}");
        done.id.to_string()
    }

    /// Registers a device (`kind`: phone, pc, tv, car, iot) with a key made
    /// now on the account of `token`; returns its id. From a trusted
    /// device's session this pairs it (then [`TestApp::device_login`]
    /// opens its session); otherwise it must pass security authentication
    /// ([`TestApp::trust_device`]).
    pub async fn device(&self, token: &str, kind: &str, name: &str) -> String {
        let signer = DeviceSigner::generate();
        let body = RegisterDevice {
            device_type: kind.to_owned(),
            name: name.to_owned(),
            public_key: public_key_of(&signer),
        };
        let id = self
            .app_of(token)
            .register_device(&body)
            .await
            .expect("the device registers")
            .id
            .to_string();
        self.keys().by_device.insert(id.clone(), signer);
        id
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
        // The binding sets the first payment password.
        let binding = self
            .bind_card(username, card_index, phone, &token, pin)
            .await;
        (token, binding)
    }

    /// Zhang San's wallet account (card `card_index` bound, payment
    /// password `pin`) on a phone that passed security authentication,
    /// holds a passkey and pinned the wallet's task keys: the phone of flow
    /// F3. Returns the phone (signed in on itself) and the binding.
    pub async fn f3_phone(&self, card_index: usize, pin: &str) -> (Phone, String) {
        self.f3_phone_of("zhang.san", "13800138000", "1239", card_index, pin)
            .await
    }

    /// [`TestApp::f3_phone`] for another demo customer: `username`, whose
    /// reserved phone is `number` and whose ID number ends `id_last4`.
    pub async fn f3_phone_of(
        &self,
        username: &str,
        number: &str,
        id_last4: &str,
        card_index: usize,
        pin: &str,
    ) -> (Phone, String) {
        let (token, binding) = self.payer(username, card_index, number, pin).await;
        let mut phone = self.phone(number);
        phone
            .register_on(&self.app_of(&token), "My phone")
            .await
            .expect("the phone registers");
        let device = phone.device_id().expect("a device id").clone();
        phone
            .pass_security_auth(SecurityAnswers {
                device: ThisDevice::Registered(device),
                environment: genuine_android(),
                id_number_last4: id_last4.into(),
                login_password: Some(TEST_LOGIN_PASSWORD.into()),
                payment_password: None,
            })
            .await
            .expect("security authentication passes");
        phone
            .register_passkey()
            .await
            .expect("the passkey registers");
        phone
            .pin_wallet_keys()
            .await
            .expect("the wallet's keys are pinned");
        (phone, binding)
    }

    /// Pairs a first device of `model` through `phone` with `terms` (flow
    /// F3): the device starts the request, the phone enters its code and
    /// approves with the biometric, the device collects its session.
    pub async fn pair_first_device(
        &self,
        phone: &mut Phone,
        model: FirstDeviceModel,
        terms: &paybridge_api::delegated::AgreementTermsBody,
    ) -> (FirstDevice, paybridge_api::delegated::TransferAgreementBody) {
        let mut device = FirstDevice::new(&self.base_url, model);
        let code = device
            .start_pairing()
            .await
            .expect("the device starts pairing")
            .user_code
            .clone();
        let claimed = phone
            .enter_pairing_code(&code)
            .await
            .expect("the phone enters the code");
        let agreement = phone
            .approve_pairing(&claimed.id, terms)
            .await
            .expect("the phone approves");
        device
            .poll_pairing()
            .await
            .expect("the device collects its session");
        (device, agreement)
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
