//! Flow F2 end to end over real HTTP on both stores: the bank registers a
//! wallet account for a customer without one (restricted, card bound at
//! once), the owner passes security authentication on a new phone and the
//! account becomes fully active; an existing customer goes the push path;
//! and the bad inputs of the issue.

use paybridge_domain::device::DeviceType;
use paybridge_domain::event::Destination;
use paybridge_domain::ids::UserId;
use paybridge_testkit::code;
use paybridge_testkit::{app_tests, TestApp};
use serde_json::{json, Value};

app_tests!(
    a_new_customer_is_registered_bound_authenticated_and_pay_ready,
    a_restricted_account_cannot_pair_devices_or_bind_cards,
    an_existing_customer_goes_the_push_path,
    registrations_are_idempotent_on_the_reference_and_never_duplicate,
    security_authentication_refuses_bad_devices_and_counts_wrong_answers,
    each_security_condition_can_be_switched_off,
    security_authentication_is_refused_where_no_condition_asks_for_it,
    security_authentication_of_an_account_with_a_login_password_needs_it,
    a_new_device_is_pending_until_its_security_authentication_passes,
    security_authentication_of_a_phone_with_no_account_answers_like_one_with_an_account,
    wrong_id_digits_are_counted_per_account_across_authentications,
);

const LI_PHONE: &str = "13900139000";

async fn bank_token(app: &TestApp, username: &str) -> String {
    let (s, v) = app
        .call(
            "POST",
            "/bank/v1/app/sessions",
            None,
            Some(json!({"username": username, "password": "Sandbox#2026"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

async fn first_card(app: &TestApp, bank: &str) -> String {
    let (_, cards) = app
        .call("GET", "/bank/v1/app/cards", Some(bank), None)
        .await;
    cards["cards"][0]["id"].as_str().unwrap().to_owned()
}

/// Li Si (no wallet account) asks the bank to open one and bind her card.
async fn register_li(app: &TestApp) -> Value {
    let bank = bank_token(app, "li.si").await;
    let card = first_card(app, &bank).await;
    let (s, v) = app
        .call(
            "POST",
            &format!("/bank/v1/app/cards/{card}/wallet-registrations"),
            Some(&bank),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v
}

fn environment() -> Value {
    json!({"emulator": false, "rooted": false, "os": "android", "os_version": "14", "attributes": ["sandbox:attested"]})
}

/// Starts security authentication from a new phone, which makes its key
/// pair and signs the request with it.
async fn start_auth(app: &TestApp, phone: &str, env: Value) -> (u16, Value) {
    let device = paybridge_client::DeviceSigner::generate();
    let key = paybridge_devices::phone::public_key_of(&device);
    app.call_on(
        &device,
        "POST",
        "/v1/security-authentications",
        None,
        Some(json!({"phone": phone, "device": {"type": "phone", "name": "Li's new phone", "public_key": key}, "environment": env})),
    )
    .await
}

async fn sms_code(app: &TestApp, phone: &str) -> String {
    let (_, inbox) = app
        .call(
            "GET",
            &format!("/v1/sandbox/sms?phone={phone}&limit=1"),
            None,
            None,
        )
        .await;
    inbox["messages"][0]["body"]
        .as_str()
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned()
}

/// A well-formed code that is not `right`.
fn not(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

async fn step(app: &TestApp, id: &str, name: &str, body: Value) -> (u16, Value) {
    app.call(
        "POST",
        &format!("/v1/security-authentications/{id}/{name}"),
        None,
        Some(body),
    )
    .await
}

async fn a_new_customer_is_registered_bound_authenticated_and_pay_ready(app: &TestApp) {
    let started = register_li(app).await;
    assert_eq!(started["status"], "registered");
    let account = started["account_id"].as_str().unwrap().to_owned();
    let binding = started["binding_id"].as_str().unwrap().to_owned();
    // The bank sees the binding active.
    let bank = bank_token(app, "li.si").await;
    let (_, theirs) = app
        .call("GET", "/bank/v1/app/bindings", Some(&bank), None)
        .await;
    assert_eq!(theirs["bindings"][0]["binding_id"], binding.as_str());
    assert_eq!(theirs["bindings"][0]["status"], "active");
    // The account has no password yet: no login.
    let (s, _) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": LI_PHONE, "password": "anything at all 1"})),
        )
        .await;
    assert_eq!(s, 401);

    // First use of the wallet app on a new phone.
    let (s, auth) = start_auth(app, LI_PHONE, environment()).await;
    assert_eq!(s, 201, "{auth}");
    let conditions: Vec<&str> = auth["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(conditions, vec!["partner_registered", "new_device"]);
    assert_eq!(auth["otp"]["phone_masked"], "139****9000");
    assert_eq!(auth["passwords_needed"], json!(["login", "payment"]));
    let id = auth["id"].as_str().unwrap().to_owned();
    // Steps go in order.
    let (s, e) = step(app, &id, "identity", json!({"id_number_last4": "4567"})).await;
    assert_eq!((s, code(&e)), (409, "security_auth_step"));
    let (s, v) = step(
        app,
        &id,
        "otp",
        json!({"code": sms_code(app, LI_PHONE).await}),
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("otp_verified")), "{v}");
    let (s, v) = step(app, &id, "identity", json!({"id_number_last4": "4567"})).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("identity_confirmed")),
        "{v}"
    );
    let (s, e) = step(
        app,
        &id,
        "passwords",
        json!({"login_password": "Li's password 1", "payment_password": "123456"}),
    )
    .await;
    assert_eq!((s, code(&e)), (422, "password_too_weak"));
    let (s, done) = step(
        app,
        &id,
        "passwords",
        json!({"login_password": "Li's password 1", "payment_password": "730245"}),
    )
    .await;
    assert_eq!((s, done["state"].as_str()), (200, Some("passed")), "{done}");
    let token = done["session"]["token"].as_str().unwrap().to_owned();
    assert_eq!(done["session"]["device_id"], auth["device_id"]);

    // Pay-ready: active, with passwords, the bank-attested identity, the card bound.
    let (_, me) = app.call("GET", "/v1/me", Some(&token), None).await;
    assert_eq!(me["id"], account.as_str());
    assert_eq!(me["status"], "active");
    assert_eq!(me["has_payment_password"], true);
    assert_eq!(me["registered_by"], "demo-bank");
    assert_eq!(me["identity"]["name_masked"], "*四");
    let (_, bindings) = app.call("GET", "/v1/bindings", Some(&token), None).await;
    assert_eq!(bindings["bindings"][0]["state"], "active");
    assert_eq!(bindings["bindings"][0]["id"], binding.as_str());
    let (_, devices) = app.call("GET", "/v1/devices", Some(&token), None).await;
    assert_eq!(devices["devices"][0]["id"], auth["device_id"]);
    // The new passwords work; the finished authentication cannot be replayed.
    let (s, _) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": LI_PHONE, "password": "Li's password 1"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, e) = step(
        app,
        &id,
        "passwords",
        json!({"login_password": "Another pass 2"}),
    )
    .await;
    assert_eq!((s, code(&e)), (409, "security_auth_closed"));
    let user: UserId = account.parse().unwrap();
    let device = auth["device_id"].as_str().unwrap().parse().unwrap();
    assert!(app
        .wallet
        .store
        .device_trusted(&user, &device)
        .await
        .unwrap());
    // The trusted phone logs in; a new phone of the same account must pass
    // security authentication first (condition "new device"), unless a
    // trusted device paired it.
    let login = |device: Value| {
        let body = json!({"phone": LI_PHONE, "password": "Li's password 1", "device_id": device});
        let key = app.device_key(device.as_str().unwrap()).unwrap();
        async move {
            app.call_on(&key, "POST", "/v1/sessions", None, Some(body))
                .await
        }
    };
    assert_eq!(login(auth["device_id"].clone()).await.0, 201);
    let (_, plain) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": LI_PHONE, "password": "Li's password 1"})),
        )
        .await;
    let plain_token = plain["token"].as_str().unwrap();
    let second = app.device(plain_token, "phone", "second phone").await;
    let (s, e) = login(json!(second)).await;
    assert_eq!((s, code(&e)), (403, "security_auth_required"));
    let paired = app.device(&token, "pc", "paired PC").await;
    let (s, e) = login(json!(paired)).await;
    assert_eq!(s, 201, "paired by the trusted phone: {e}");
    // Changing the payment password is sensitive: not from a session without a trusted device.
    let change = json!({"new_password": "602915", "current_password": "730245"});
    let (s, e) = app
        .call(
            "POST",
            "/v1/me/payment-password",
            Some(plain_token),
            Some(change.clone()),
        )
        .await;
    assert_eq!((s, code(&e)), (403, "security_auth_required"));
    let (s, _) = app
        .call(
            "POST",
            "/v1/me/payment-password",
            Some(&token),
            Some(change),
        )
        .await;
    assert_eq!(s, 204, "from the trusted phone's session");
    // Every transition was an event.
    let events = app
        .wallet
        .store
        .outbox_events_for(&Destination::Internal, 0, 1000)
        .await
        .unwrap();
    let topics: Vec<&str> = events.iter().map(|e| e.topic.as_str()).collect();
    for t in [
        "account.registered",
        "security_auth.otp_sent",
        "security_auth.otp_verified",
        "security_auth.identity_confirmed",
        "security_auth.passed",
        "account.security_authenticated",
    ] {
        assert!(topics.contains(&t), "{t} in {topics:?}");
    }
}

async fn a_restricted_account_cannot_pair_devices_or_bind_cards(app: &TestApp) {
    let started = register_li(app).await;
    let user: UserId = started["account_id"].as_str().unwrap().parse().unwrap();
    let session = paybridge_wallet::accounts::SessionUser {
        session_id: paybridge_domain::ids::SessionId::generate(),
        user_id: user.clone(),
        device_id: None,
    };
    let key = paybridge_crypto::device_proof::DeviceKey::generate().public_jwk();
    let e = app
        .wallet
        .register_device(&session, DeviceType::Pc, "PC", &key)
        .await
        .unwrap_err();
    assert_eq!(e.code().as_str(), "account_restricted");
    let e = app
        .wallet
        .claim_binding_address(&user, "http://localhost:8080/bind/pbb_x")
        .await
        .unwrap_err();
    assert_eq!(e.code().as_str(), "account_restricted");
}

async fn an_existing_customer_goes_the_push_path(app: &TestApp) {
    let body = json!({"phone": "13800138000", "password": "correct horse 9"});
    assert_eq!(app.register_account(body).await.0, 201);
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let (s, v) = app
        .call(
            "POST",
            &format!("/bank/v1/app/cards/{card}/wallet-registrations"),
            Some(&bank),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["status"], "existing_account");
    assert!(v["binding_id"].as_str().unwrap().starts_with("bnd_"));
    assert_eq!(
        v["account_id"],
        Value::Null,
        "the bank learns no account data"
    );
}

fn registration(reference: &str, phone: &str, id_number: &str) -> Value {
    json!({"reference": reference, "customer": {"card_ref": "card_abc", "holder_name": "Chen Jing",
        "holder_id_number": id_number, "phone": phone, "bank_name": "Demo Bank", "card_type": "debit", "last4": "0099"}})
}

async fn register(app: &TestApp, body: &Value, key: &str) -> Result<Value, (u16, String)> {
    app.bank_to_wallet()
        .call::<_, Value>(
            reqwest::Method::POST,
            "/v1/partner/account-registrations",
            Some(body),
            Some(key),
        )
        .await
        .map_err(|e| match e {
            paybridge_client::PartnerError::Refused { status, code, .. } => (status, code),
            other => panic!("{other}"),
        })
}

async fn registrations_are_idempotent_on_the_reference_and_never_duplicate(app: &TestApp) {
    let id = "110108197501012346";
    let first = register(app, &registration("ref-1", "13600136000", id), "k1")
        .await
        .unwrap();
    assert_eq!(
        (first["status"].as_str(), first["created"].as_bool()),
        (Some("restricted"), Some(true))
    );
    // A retry (even with another Idempotency-Key) returns the same account.
    let again = register(app, &registration("ref-1", "13600136000", id), "k2")
        .await
        .unwrap();
    assert_eq!(again["account_id"], first["account_id"]);
    assert_eq!(again["created"], false);
    // The reference with other data, another reference for the same phone or person.
    assert_eq!(
        register(app, &registration("ref-1", "13600136001", id), "k3")
            .await
            .unwrap_err(),
        (422, "idempotency_key_reused".into())
    );
    assert_eq!(
        register(
            app,
            &registration("ref-2", "13600136000", "310104198511204567"),
            "k4"
        )
        .await
        .unwrap_err(),
        (409, "account_exists".into())
    );
    assert_eq!(
        register(app, &registration("ref-3", "13600136009", id), "k5")
            .await
            .unwrap_err(),
        (409, "account_exists".into())
    );
    // Inconsistent data.
    assert_eq!(
        register(
            app,
            &registration("ref-4", "13600136008", "110108197501012345"),
            "k6"
        )
        .await
        .unwrap_err(),
        (422, "identity_invalid".into())
    );
    assert_eq!(
        register(app, &registration("ref-5", "12ab", id), "k7")
            .await
            .unwrap_err()
            .0,
        422
    );
    assert_eq!(
        register(
            app,
            &registration("bad reference!", "13600136007", id),
            "k8"
        )
        .await
        .unwrap_err()
        .0,
        422
    );
    // Unsigned: refused.
    let (s, e) = app
        .call(
            "POST",
            "/v1/partner/account-registrations",
            None,
            Some(registration("ref-6", "13600136006", id)),
        )
        .await;
    assert_eq!((s, code(&e)), (401, "signature_missing"));
    // The bank only learns whether an account exists.
    let exists: Value = app
        .bank_to_wallet()
        .call(
            reqwest::Method::POST,
            "/v1/partner/account-lookups",
            Some(&json!({"phone": "13600136000", "holder_id_number": id})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(exists, json!({"exists": true}));
}

async fn security_authentication_refuses_bad_devices_and_counts_wrong_answers(app: &TestApp) {
    register_li(app).await;
    for (env, reason) in [
        (
            json!({"emulator": true, "rooted": false, "os": "android", "os_version": "14"}),
            "emulator",
        ),
        (
            json!({"emulator": false, "rooted": true, "os": "android", "os_version": "14"}),
            "rooted",
        ),
        (
            json!({"emulator": false, "rooted": false, "os": "android", "os_version": "8"}),
            "os_unsupported",
        ),
        (
            json!({"emulator": false, "rooted": false, "os": "ios", "os_version": "17", "attributes": ["risk:hooked"]}),
            "flagged",
        ),
    ] {
        let (s, e) = start_auth(app, LI_PHONE, env).await;
        assert_eq!(
            (s, code(&e)),
            (422, "device_environment_refused"),
            "{reason}"
        );
        assert!(e["error"]["message"].as_str().unwrap().contains(reason));
    }
    let risk = app
        .wallet
        .store
        .outbox_events_for(&Destination::Internal, 0, 1000)
        .await
        .unwrap();
    assert_eq!(
        risk.iter()
            .filter(|e| e.topic.as_str() == "risk.device_environment_refused")
            .count(),
        4
    );

    let (_, auth) = start_auth(app, LI_PHONE, environment()).await;
    let id = auth["id"].as_str().unwrap().to_owned();
    let right = sms_code(app, LI_PHONE).await;
    let wrong = not(&right);
    let (s, e) = step(app, &id, "otp", json!({"code": wrong})).await;
    assert_eq!((s, code(&e)), (422, "otp_invalid"));
    assert_eq!(step(app, &id, "otp", json!({"code": right})).await.0, 200);
    for i in 1..=4 {
        let (s, e) = step(app, &id, "identity", json!({"id_number_last4": "0000"})).await;
        assert_eq!((s, code(&e)), (422, "identity_digits_wrong"), "try {i}");
    }
    let (s, e) = step(app, &id, "identity", json!({"id_number_last4": "0000"})).await;
    assert_eq!((s, code(&e)), (429, "security_auth_locked"));
    let (s, e) = step(app, &id, "identity", json!({"id_number_last4": "4567"})).await;
    assert_eq!((s, code(&e)), (409, "security_auth_closed"));
    let (s, _) = step(app, "sau_nonsense", "otp", json!({"code": "123456"})).await;
    assert_eq!(s, 404);
}

async fn each_security_condition_can_be_switched_off(app: &TestApp) {
    use paybridge_domain::registration::SecurityPolicy;
    let body = json!({"phone": "13800138000", "password": "correct horse 9"});
    app.register_account(body.clone()).await;
    let (_, s) = app.call("POST", "/v1/sessions", None, Some(body)).await;
    let token = s["token"].as_str().unwrap().to_owned();
    let device_id = app.device(&token, "phone", "phone").await;
    let device: paybridge_domain::ids::DeviceId = device_id.parse().unwrap();
    let phone: paybridge_domain::phone::PhoneNumber = "13800138000".parse().unwrap();
    // On (the default): refused. Off: the same login passes.
    let proof = app.login_proof(&device_id);
    let on = app
        .wallet
        .login(
            &phone,
            "correct horse 9",
            Some(&device),
            &app.presented_login(&proof),
        )
        .await
        .unwrap_err();
    assert_eq!(on.code().as_str(), "security_auth_required");
    let mut relaxed = app.wallet.clone();
    relaxed.policy = SecurityPolicy {
        new_device: false,
        ..SecurityPolicy::default()
    };
    let proof = app.login_proof(&device_id);
    assert!(relaxed
        .login(
            &phone,
            "correct horse 9",
            Some(&device),
            &app.presented_login(&proof)
        )
        .await
        .is_ok());
    // Sensitive operations likewise.
    let user: UserId = s["user_id"].as_str().unwrap().parse().unwrap();
    relaxed
        .set_payment_password(&user, None, None, "482916")
        .await
        .unwrap();
    let on = app
        .wallet
        .set_payment_password(&user, None, Some("482916"), "730245")
        .await
        .unwrap_err();
    assert_eq!(on.code().as_str(), "security_auth_required");
    relaxed.policy = SecurityPolicy {
        sensitive_operation: false,
        ..SecurityPolicy::default()
    };
    relaxed
        .set_payment_password(&user, None, Some("482916"), "730245")
        .await
        .unwrap();
    // Partner-registered accounts: without the condition, only the device one remains.
    let strict = SecurityPolicy::default();
    let facts = paybridge_domain::registration::SecurityFacts {
        partner_registered_unauthenticated: true,
        device_trusted: false,
        sensitive: false,
        passwords_locked: false,
    };
    assert_eq!(strict.conditions(&facts).len(), 2);
    let no_partner = SecurityPolicy {
        partner_registered: false,
        ..strict
    };
    assert_eq!(no_partner.conditions(&facts).len(), 1);
}

/// Security authentication is a step-up for a condition, not a way in: on
/// a device already trusted for an active account it is refused, and
/// nothing is sent or registered.
async fn security_authentication_is_refused_where_no_condition_asks_for_it(app: &TestApp) {
    use paybridge_api::sandbox::SmsQuery;
    use paybridge_api::wallet::{RegisterDevice, StartSecurityAuth};
    use paybridge_devices::phone::genuine_android;
    const PHONE: &str = "13911110777";
    let mut phone = app.phone(PHONE);
    phone.register("correct horse 9").await.unwrap();
    let token = phone.log_in("correct horse 9").await.unwrap().token.clone();
    let device = app.device(&token, "phone", "Trusted phone").await;
    app.trust_device(PHONE, &device, "0000").await;
    let sandbox = paybridge_client::SandboxApi::new(&app.base_url);
    let texts = || async {
        sandbox
            .sms(&SmsQuery {
                phone: PHONE.into(),
                limit: Some(100),
            })
            .await
            .unwrap()
            .messages
            .len()
    };
    let sent = texts().await;
    let devices = app.app_of(&token);
    let count = || async {
        devices
            .devices(&paybridge_api::wallet::DeviceListQuery {
                include_revoked: None,
                limit: None,
                after: None,
            })
            .await
            .unwrap()
            .devices
            .len()
    };
    let before = count().await;
    let trusted =
        paybridge_devices::Phone::with_key(&app.base_url, PHONE, app.device_key(&device).unwrap());
    let again = trusted
        .anonymous()
        .start_security_auth(&StartSecurityAuth {
            phone: PHONE.into(),
            device: None,
            device_id: Some(device.clone()),
            environment: genuine_android(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(409), Some("security_auth_not_required")),
        "{again}"
    );
    assert_eq!(texts().await, sent, "no code was sent");
    assert_eq!(count().await, before);
    // A new device is a condition: that one runs.
    let new = phone
        .anonymous()
        .start_security_auth(&StartSecurityAuth {
            phone: PHONE.into(),
            device: Some(RegisterDevice {
                device_type: "phone".into(),
                name: "Second phone".into(),
                public_key: phone.public_key(),
            }),
            device_id: None,
            environment: genuine_android(),
        })
        .await
        .unwrap();
    assert_eq!(new.conditions.len(), 1, "{new:?}");
}

/// A step-up, not a takeover: the phone's SMS and the ID digits are not
/// enough to trust a new device of an account that has a login password.
async fn security_authentication_of_an_account_with_a_login_password_needs_it(app: &TestApp) {
    let phone = app.phone("13911110555");
    phone.register("correct horse 9").await.unwrap();
    let device = paybridge_client::DeviceSigner::generate();
    let key = paybridge_devices::phone::public_key_of(&device);
    let (s, auth) = app
        .call_on(
            &device,
            "POST",
            "/v1/security-authentications",
            None,
            Some(json!({"phone": "13911110555", "environment": environment(),
                "device": {"type": "phone", "name": "New phone", "public_key": key}})),
        )
        .await;
    assert_eq!(s, 201, "{auth}");
    assert_eq!(auth["passwords_needed"], json!(["login", "payment"]));
    let id = auth["id"].as_str().unwrap().to_owned();
    let otp = sms_code(app, "13911110555").await;
    assert_eq!(step(app, &id, "otp", json!({ "code": otp })).await.0, 200);
    assert_eq!(
        step(app, &id, "identity", json!({"id_number_last4": "0000"}))
            .await
            .0,
        200
    );
    let (s, e) = step(app, &id, "passwords", json!({"payment_password": "730245"})).await;
    assert_eq!((s, code(&e)), (422, "invalid_request"), "{e}");
    let (s, e) = step(
        app,
        &id,
        "passwords",
        json!({"login_password": "guessed wrong 1", "payment_password": "730245"}),
    )
    .await;
    assert_eq!((s, code(&e)), (401, "credentials_invalid"), "{e}");
    let (s, done) = step(
        app,
        &id,
        "passwords",
        json!({"login_password": "correct horse 9", "payment_password": "730245"}),
    )
    .await;
    assert_eq!((s, done["state"].as_str()), (200, Some("passed")), "{done}");
}

/// Attack: start security authentications from devices of one's own (each
/// would be an account's device, under its cap, a login target and a
/// correspondence for payment requests) without ever passing them.
async fn a_new_device_is_pending_until_its_security_authentication_passes(app: &TestApp) {
    let started = register_li(app).await;
    let user: UserId = started["account_id"].as_str().unwrap().parse().unwrap();
    let devices = || async {
        app.wallet
            .store
            .devices_of(&user, paybridge_domain::device::DeviceFilter::WithRevoked)
            .await
            .unwrap()
            .len()
    };
    let (s, lapsed) = start_auth(app, LI_PHONE, environment()).await;
    assert_eq!(s, 201, "{lapsed}");
    let (_, abandoned) = start_auth(app, LI_PHONE, environment()).await;
    // Neither is a device of the account, nor a login target.
    assert_eq!(devices().await, 0);
    let lapsed_id = lapsed["device_id"].as_str().unwrap();
    let (s, e) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(
                json!({"phone": LI_PHONE, "password": "anything at all 1", "device_id": lapsed_id}),
            ),
        )
        .await;
    assert_eq!(s, 401, "{e}");
    // A pending device expires with its authentication.
    app.clock.advance(time::Duration::minutes(16));
    let id = lapsed["id"].as_str().unwrap();
    let (s, e) = step(
        app,
        id,
        "otp",
        json!({"code": sms_code(app, LI_PHONE).await}),
    )
    .await;
    assert_eq!((s, code(&e)), (409, "security_auth_closed"), "{e}");
    assert_eq!(devices().await, 0);
    // The one that passes is written, active and trusted; the others never are.
    let (_, auth) = start_auth(app, LI_PHONE, environment()).await;
    let id = auth["id"].as_str().unwrap().to_owned();
    step(
        app,
        &id,
        "otp",
        json!({"code": sms_code(app, LI_PHONE).await}),
    )
    .await;
    step(app, &id, "identity", json!({"id_number_last4": "4567"})).await;
    let (s, done) = step(
        app,
        &id,
        "passwords",
        json!({"login_password": "Li's password 1", "payment_password": "730245"}),
    )
    .await;
    assert_eq!((s, done["state"].as_str()), (200, Some("passed")), "{done}");
    let token = done["session"]["token"].as_str().unwrap();
    let (_, listed) = app.call("GET", "/v1/devices", Some(token), None).await;
    let listed = listed["devices"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], auth["device_id"]);
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(devices().await, 1);
    let device: paybridge_domain::ids::DeviceId =
        auth["device_id"].as_str().unwrap().parse().unwrap();
    assert!(app
        .wallet
        .store
        .device_trusted(&user, &device)
        .await
        .unwrap());
    for pending in [&lapsed, &abandoned] {
        assert_ne!(pending["device_id"], auth["device_id"]);
    }
}

/// Enumeration: the start answers a phone with no account exactly as it
/// answers a new device of an account (status, shape, a real code sent);
/// the wrong code is counted alike; only the phone's holder, with the right
/// code, learns that the phone has no account.
async fn security_authentication_of_a_phone_with_no_account_answers_like_one_with_an_account(
    app: &TestApp,
) {
    // An account opened in the app, with no payment password yet.
    let phone = "13700137000";
    let (s, v) = app
        .register_account(json!({"phone": phone, "password": "correct horse 42"}))
        .await;
    assert_eq!(s, 201, "{v}");
    let nobody = "13012345678";
    let (s_known, known) = start_auth(app, phone, environment()).await;
    let (s_none, none) = start_auth(app, nobody, environment()).await;
    assert_eq!((s_known, s_none), (201, 201), "{known} {none}");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&known), keys(&none));
    assert_eq!(keys(&known["otp"]), keys(&none["otp"]));
    for field in ["conditions", "state"] {
        assert_eq!(known[field], none[field], "{field}");
    }
    assert_eq!(none["conditions"], json!(["new_device"]));
    assert_eq!(known["passwords_needed"], none["passwords_needed"]);
    // The bad environment is refused alike (no account to flag it on).
    let rooted = json!({"emulator": false, "rooted": true, "os": "android", "os_version": "14"});
    let (a, ea) = start_auth(app, phone, rooted.clone()).await;
    let (b, eb) = start_auth(app, nobody, rooted).await;
    assert_eq!((a, code(&ea)), (b, code(&eb)));
    assert_eq!(ea["error"]["message"], eb["error"]["message"]);
    // A registered device named for a phone without an account: no such device.
    let device = paybridge_client::DeviceSigner::generate();
    for phone in [phone, nobody] {
        let (s, e) = app
            .call_on(
                &device,
                "POST",
                "/v1/security-authentications",
                None,
                Some(json!({"phone": phone, "device_id": "dev_0000000000000000000000000", "environment": environment()})),
            )
            .await;
        assert_eq!((s, code(&e)), (404, "not_found"), "{phone}: {e}");
    }

    let id = none["id"].as_str().unwrap().to_owned();
    // Out of order, as for an account: the step, not the account, answers.
    let (s, e) = step(app, &id, "identity", json!({"id_number_last4": "0000"})).await;
    assert_eq!((s, code(&e)), (409, "security_auth_step"), "{e}");
    let right = sms_code(app, nobody).await;
    let wrong = not(&right);
    let (s, e) = step(app, &id, "otp", json!({"code": wrong})).await;
    assert_eq!((s, code(&e)), (422, "otp_invalid"));
    let (s, e) = step(app, &id, "otp", json!({"code": right})).await;
    assert_eq!((s, code(&e)), (404, "not_found"), "{e}");
    // Over: it never passes, and created no account and no device.
    let (s, e) = step(app, &id, "otp", json!({"code": right})).await;
    assert_eq!((s, code(&e)), (409, "security_auth_closed"), "{e}");
    let (s, v) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": nobody, "password": "correct horse 42"})),
        )
        .await;
    assert_eq!((s, code(&v)), (401, "credentials_invalid"));
}

/// Attack: guess the four ID digits a few at a time, starting a new
/// authentication before each one fails: the account counts them too.
async fn wrong_id_digits_are_counted_per_account_across_authentications(app: &TestApp) {
    register_li(app).await;
    // Through the code step: what an attacker holding the SMS reaches.
    async fn at_identity_step(app: &TestApp) -> String {
        let (s, auth) = start_auth(app, LI_PHONE, environment()).await;
        assert_eq!(s, 201, "{auth}");
        let id = auth["id"].as_str().unwrap().to_owned();
        let code = sms_code(app, LI_PHONE).await;
        assert_eq!(step(app, &id, "otp", json!({"code": code})).await.0, 200);
        id
    }
    let first = at_identity_step(app).await;
    for i in 1..=3 {
        let (s, e) = step(app, &first, "identity", json!({"id_number_last4": "0000"})).await;
        assert_eq!((s, code(&e)), (422, "identity_digits_wrong"), "try {i}");
    }
    let second = at_identity_step(app).await;
    let (s, e) = step(app, &second, "identity", json!({"id_number_last4": "0000"})).await;
    assert_eq!((s, code(&e)), (422, "identity_digits_wrong"));
    // The fifth wrong answer in a row for the account, the second of this
    // authentication: locked, and the authentication fails.
    let (s, e) = step(app, &second, "identity", json!({"id_number_last4": "0000"})).await;
    assert_eq!((s, code(&e)), (429, "security_auth_locked"), "{e}");
    let (s, e) = step(app, &second, "identity", json!({"id_number_last4": "4567"})).await;
    assert_eq!((s, code(&e)), (409, "security_auth_closed"), "{e}");
    // A fresh authentication is locked too, even with the right digits.
    let third = at_identity_step(app).await;
    let (s, e) = step(app, &third, "identity", json!({"id_number_last4": "4567"})).await;
    assert_eq!((s, code(&e)), (429, "security_auth_locked"), "{e}");
    // Until the lock runs out.
    app.clock.advance(time::Duration::seconds(
        paybridge_domain::registration::ID_DIGITS_LOCK_SECS,
    ));
    let fourth = at_identity_step(app).await;
    let (s, e) = step(app, &fourth, "identity", json!({"id_number_last4": "4567"})).await;
    assert_eq!(s, 200, "{e}");
}
