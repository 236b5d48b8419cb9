//! Wallet accounts over real HTTP on both stores: registration, login
//! sessions and their lockout, the payment password and its lockout, the
//! real-name identity, and what is kept at rest.

use paybridge_domain::ids::UserId;
use paybridge_testkit::code;
use paybridge_testkit::{app_tests, TestApp};
use serde_json::{json, Value};
use time::Duration;

app_tests!(
    register_login_read_and_log_out,
    an_account_is_created_only_after_the_phone_returns_the_code,
    logins_lock_after_five_wrong_tries_and_unknown_phones_answer_alike,
    sessions_expire_after_a_day,
    payment_password_is_set_checked_and_locked_for_thirty_minutes,
    payment_password_locks_grow_and_a_hundred_wrong_tries_need_a_step_up,
    identity_is_recorded_once_and_one_account_per_person,
    a_declared_identity_never_blocks_the_persons_attested_one,
    personal_data_is_sealed_at_rest,
);

pub const PHONE: &str = "13800138000";
pub const PASSWORD: &str = "correct horse 9";

/// Registers `phone` and logs in; returns (user id, token).
pub async fn account(app: &TestApp, phone: &str) -> (String, String) {
    let (s, acc) = app
        .register_account(json!({"phone": phone, "password": PASSWORD}))
        .await;
    assert_eq!(s, 201, "{acc}");
    let (s, session) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": phone, "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, 201, "{session}");
    (
        acc["id"].as_str().unwrap().to_owned(),
        session["token"].as_str().unwrap().to_owned(),
    )
}

async fn register_login_read_and_log_out(app: &TestApp) {
    let (s, acc) = app
        .register_account(json!({"phone": PHONE, "password": PASSWORD}))
        .await;
    assert_eq!(s, 201, "{acc}");
    assert!(acc["id"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(acc["phone_masked"], "138****8000");
    assert_eq!(acc["status"], "active");
    assert!(!acc.to_string().contains(PHONE));

    let (s, dup) = app
        .register_account(json!({"phone": PHONE, "password": PASSWORD}))
        .await;
    assert_eq!((s, code(&dup)), (409, "phone_already_registered"));
    let (s, weak) = app
        .register_account(json!({"phone": "13900000001", "password": "short"}))
        .await;
    assert_eq!((s, code(&weak)), (422, "password_too_weak"));
    let (s, bad) = app
        .register_account(json!({"phone": "12ab", "password": PASSWORD}))
        .await;
    assert_eq!((s, code(&bad)), (422, "invalid_request"));

    let (s, wrong) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": PHONE, "password": "wrong horse 9"})),
        )
        .await;
    assert_eq!((s, code(&wrong)), (401, "credentials_invalid"));
    let (s, session) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": PHONE, "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, 201, "{session}");
    let token = session["token"].as_str().unwrap();
    assert!(token.starts_with("pbs_"));
    assert_eq!(session["user_id"], acc["id"]);

    let (s, me) = app.call("GET", "/v1/me", Some(token), None).await;
    assert_eq!(s, 200);
    assert_eq!(me["id"], acc["id"]);
    assert_eq!(me["has_payment_password"], false);
    assert_eq!(me["identity"], Value::Null);

    for bad_token in [None, Some("pbs_nonsense"), Some("not-a-token")] {
        let (s, e) = app.call("GET", "/v1/me", bad_token, None).await;
        assert_eq!((s, code(&e)), (401, "session_invalid"), "{bad_token:?}");
    }
    let (s, _) = app
        .call("DELETE", "/v1/sessions/current", Some(token), None)
        .await;
    assert_eq!(s, 204);
    let (s, e) = app.call("GET", "/v1/me", Some(token), None).await;
    assert_eq!((s, code(&e)), (401, "session_invalid"));
}

/// Attack: open an account for someone else's number (no code from it),
/// or learn from the registration whether a number has an account.
async fn an_account_is_created_only_after_the_phone_returns_the_code(app: &TestApp) {
    let other = "13900000077";
    account(app, PHONE).await;
    let start = |phone: &'static str| async move {
        app.call(
            "POST",
            "/v1/accounts",
            None,
            Some(json!({ "phone": phone })),
        )
        .await
    };
    // Known and unknown numbers get the same answer (the masked number
    // and times aside); a code goes to each.
    let (s_known, known) = start(PHONE).await;
    let (s_new, started) = start(other).await;
    assert_eq!((s_known, s_new), (202, 202), "{known} {started}");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v["otp"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&known), keys(&started));
    let by_phone = app
        .wallet
        .keys
        .index
        .index(paybridge_crypto::IndexPurpose::Phone, other);
    assert!(app
        .wallet
        .store
        .user_by_phone(&by_phone)
        .await
        .unwrap()
        .is_none());
    let confirm = |code: String| {
        let otp = started["otp"]["id"].clone();
        async move {
            app.call(
                "POST",
                "/v1/accounts/confirmation",
                None,
                Some(json!({"otp_id": otp, "code": code, "password": PASSWORD})),
            )
            .await
        }
    };
    // A guessed code creates nothing; a weak password does not spend the code.
    let real = app.sms_code(other).await;
    let wrong = if real == "000000" { "111111" } else { "000000" };
    let (s, e) = confirm(wrong.to_owned()).await;
    assert_eq!((s, code(&e)), (422, "otp_invalid"), "{e}");
    assert!(app
        .wallet
        .store
        .user_by_phone(&by_phone)
        .await
        .unwrap()
        .is_none());
    let (s, e) = app
        .call(
            "POST",
            "/v1/accounts/confirmation",
            None,
            Some(json!({"otp_id": started["otp"]["id"], "code": real, "password": "short"})),
        )
        .await;
    assert_eq!((s, code(&e)), (422, "password_too_weak"));
    // A challenge that does not exist opens nothing.
    let (s, e) = app
        .call(
            "POST",
            "/v1/accounts/confirmation",
            None,
            Some(json!({"otp_id": "otp_unknown", "code": "123456", "password": PASSWORD})),
        )
        .await;
    assert_eq!((s, code(&e)), (404, "not_found"));
    // The number's holder opens it, once.
    let (s, acc) = confirm(real.clone()).await;
    assert_eq!(s, 201, "{acc}");
    assert!(app
        .wallet
        .store
        .user_by_phone(&by_phone)
        .await
        .unwrap()
        .is_some());
    let (s, again) = confirm(real).await;
    assert_eq!((s, code(&again)), (409, "otp_already_used"), "{again}");
    // The known number's holder learns it already has an account.
    let (s, dup) = app
        .call(
            "POST",
            "/v1/accounts/confirmation",
            None,
            Some(json!({"otp_id": known["otp"]["id"], "code": app.sms_code(PHONE).await, "password": PASSWORD})),
        )
        .await;
    assert_eq!((s, code(&dup)), (409, "phone_already_registered"));
}

async fn wrong_login(app: &TestApp, phone: &str, password: &str) -> (u16, Value) {
    app.call(
        "POST",
        "/v1/sessions",
        None,
        Some(json!({"phone": phone, "password": password})),
    )
    .await
}

async fn logins_lock_after_five_wrong_tries_and_unknown_phones_answer_alike(app: &TestApp) {
    account(app, PHONE).await;
    let unknown = "13911112222";
    for attempt in 1..=4 {
        let known = wrong_login(app, PHONE, "wrong horse 9").await;
        let other = wrong_login(app, unknown, "wrong horse 9").await;
        assert_eq!(
            (known.0, code(&known.1)),
            (401, "credentials_invalid"),
            "try {attempt}"
        );
        // Same answer whether or not the phone has an account.
        assert_eq!(known.1["error"]["message"], other.1["error"]["message"]);
        assert_eq!(known.0, other.0);
    }
    let known = wrong_login(app, PHONE, "wrong horse 9").await;
    let other = wrong_login(app, unknown, "wrong horse 9").await;
    assert_eq!((known.0, code(&known.1)), (429, "password_locked"));
    assert_eq!(known.1["error"]["message"], other.1["error"]["message"]);
    // Locked: even the right password is refused, and counts nothing more.
    let right = wrong_login(app, PHONE, PASSWORD).await;
    assert_eq!((right.0, code(&right.1)), (429, "password_locked"));
    app.clock.advance(Duration::minutes(15));
    let right = wrong_login(app, PHONE, PASSWORD).await;
    assert_eq!(right.0, 201, "{}", right.1);
}

async fn sessions_expire_after_a_day(app: &TestApp) {
    let (_, token) = account(app, PHONE).await;
    app.clock.advance(Duration::hours(23));
    assert_eq!(app.call("GET", "/v1/me", Some(&token), None).await.0, 200);
    app.clock.advance(Duration::hours(1));
    let (s, e) = app.call("GET", "/v1/me", Some(&token), None).await;
    assert_eq!((s, code(&e)), (401, "session_invalid"));
}

async fn verify(app: &TestApp, token: &str, pin: &str) -> (u16, Value) {
    app.call(
        "POST",
        "/v1/me/payment-password/verify",
        Some(token),
        Some(json!({"password": pin})),
    )
    .await
}

async fn payment_password_is_set_checked_and_locked_for_thirty_minutes(app: &TestApp) {
    let (_, token) = account(app, PHONE).await;
    let (s, e) = verify(app, &token, "482916").await;
    assert_eq!((s, code(&e)), (409, "payment_password_not_set"));
    for weak in ["123456", "111111", "12345", "abcdef"] {
        let (s, e) = app
            .call(
                "POST",
                "/v1/me/payment-password",
                Some(&token),
                Some(json!({"new_password": weak})),
            )
            .await;
        assert_eq!((s, code(&e)), (422, "password_too_weak"), "{weak}");
    }
    let (s, _) = app
        .call(
            "POST",
            "/v1/me/payment-password",
            Some(&token),
            Some(json!({"new_password": "482916"})),
        )
        .await;
    assert_eq!(s, 204);
    let (s, me) = app.call("GET", "/v1/me", Some(&token), None).await;
    assert_eq!((s, me["has_payment_password"].as_bool()), (200, Some(true)));
    assert_eq!(verify(app, &token, "482916").await.0, 200);

    for i in 1..=4 {
        let (s, e) = verify(app, &token, "000001").await;
        assert_eq!((s, code(&e)), (403, "payment_password_invalid"), "try {i}");
        assert!(e["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{} tries left", 5 - i)));
    }
    let (s, e) = verify(app, &token, "not digits").await;
    assert_eq!((s, code(&e)), (429, "password_locked"), "{e}");
    let (s, e) = verify(app, &token, "482916").await;
    assert_eq!((s, code(&e)), (429, "password_locked"));
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("30 minutes"));
    app.clock.advance(Duration::minutes(29));
    assert_eq!(verify(app, &token, "482916").await.0, 429);
    app.clock.advance(Duration::minutes(1));
    assert_eq!(verify(app, &token, "482916").await.0, 200);

    // Changing it is sensitive: a session on a trusted device, and the current one.
    let (s, e) = app
        .call(
            "POST",
            "/v1/me/payment-password",
            Some(&token),
            Some(json!({"new_password": "730245", "current_password": "482916"})),
        )
        .await;
    assert_eq!((s, code(&e)), (403, "security_auth_required"));
    let phone = app.device(&token, "phone", "phone").await;
    let trusted = app.trust_device(PHONE, &phone, "0000").await;
    let (s, e) = app
        .call(
            "POST",
            "/v1/me/payment-password",
            Some(&trusted),
            Some(json!({"new_password": "730245"})),
        )
        .await;
    assert_eq!((s, code(&e)), (403, "payment_password_invalid"));
    let (s, _) = app
        .call(
            "POST",
            "/v1/me/payment-password",
            Some(&trusted),
            Some(json!({"new_password": "730245", "current_password": "482916"})),
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(verify(app, &token, "482916").await.0, 403);
    assert_eq!(verify(app, &token, "730245").await.0, 200);
}

async fn identity_is_recorded_once_and_one_account_per_person(app: &TestApp) {
    let (_, token) = account(app, PHONE).await;
    let (_, other) = account(app, "13900139000").await;
    let (s, e) = app
        .call(
            "POST",
            "/v1/me/identity",
            Some(&token),
            Some(json!({"name": "张三", "id_number": "110105199003071238"})),
        )
        .await;
    assert_eq!((s, code(&e)), (422, "identity_invalid"));
    let (s, id) = app
        .call(
            "POST",
            "/v1/me/identity",
            Some(&token),
            Some(json!({"name": "张三", "id_number": "110105199003071239"})),
        )
        .await;
    assert_eq!(s, 201, "{id}");
    assert_eq!(id["name_masked"], "*三");
    assert_eq!(id["id_number_masked"], "110***********1239");
    assert!(!id.to_string().contains("19900307"));
    let (s, e) = app
        .call(
            "POST",
            "/v1/me/identity",
            Some(&token),
            Some(json!({"name": "张三", "id_number": "110105199003071239"})),
        )
        .await;
    assert_eq!((s, code(&e)), (409, "identity_already_verified"));
    assert_eq!(id["verified"], false, "declared, not attested: {id}");
    // Another account may declare the same: a declared identity is
    // nobody's (one person, one account holds for attested ones).
    let (s, v) = app
        .call(
            "POST",
            "/v1/me/identity",
            Some(&other),
            Some(json!({"name": "张三", "id_number": "110105199003071239"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (_, me) = app.call("GET", "/v1/me", Some(&token), None).await;
    assert_eq!(me["identity"]["name_masked"], "*三");
}

/// Attack: squat a person's ID number by declaring it on one's own account,
/// so that their bank-attested identity is refused ("one person, one
/// account"), their cards never bind, and their bank is told they already
/// have a wallet account (flow F2).
async fn a_declared_identity_never_blocks_the_persons_attested_one(app: &TestApp) {
    let (_, squatter) = account(app, "13900000099").await;
    let (s, _) = app
        .call(
            "POST",
            "/v1/me/identity",
            Some(&squatter),
            Some(json!({"name": "张三", "id_number": "110105199003071239"})),
        )
        .await;
    assert_eq!(s, 201);
    // The bank's look-up for Zhang San (no account with his phone yet)
    // does not match the declared identity.
    let by_id = app
        .wallet
        .account_exists(
            &"13800138000".parse().unwrap(),
            &paybridge_domain::identity::IdNumber::parse("110105199003071239").unwrap(),
        )
        .await
        .unwrap();
    assert!(!by_id);
    // Zhang San's own account binds his card; the bank attests his identity.
    let (token, _) = app.payer("zhang.san", 0, PHONE, "482916").await;
    let (_, me) = app.call("GET", "/v1/me", Some(&token), None).await;
    assert_eq!(me["identity"]["verified"], true, "{me}");
    assert_eq!(me["identity"]["name_masked"], "*三");
}

async fn personal_data_is_sealed_at_rest(app: &TestApp) {
    let (id, token) = account(app, PHONE).await;
    app.call(
        "POST",
        "/v1/me/identity",
        Some(&token),
        Some(json!({"name": "张三", "id_number": "110105199003071239"})),
    )
    .await;
    let user = app
        .wallet
        .store
        .user(&id.parse::<UserId>().unwrap())
        .await
        .unwrap()
        .unwrap();
    let identity = user.identity.clone().unwrap();
    for sealed in [
        &user.phone_sealed,
        &identity.name_sealed,
        &identity.id_number_sealed,
    ] {
        assert!(sealed.starts_with("pb1."), "{sealed}");
        assert!(!sealed.contains(PHONE) && !sealed.contains("110105199003071239"));
    }
    assert!(user.password_hash.unwrap().starts_with("$argon2id$"));
    // The wallet can still read them for its checks.
    let (name, number) = app.wallet.identity_of(&user.id).await.unwrap().unwrap();
    assert_eq!(
        (name.expose(), number.expose()),
        ("张三", "110105199003071239")
    );
}

/// The step-up for locked passwords on the trusted phone `device` of the
/// account with `phone`: the code and the ID digits, no password.
async fn step_up(
    app: &TestApp,
    phone: &str,
    device: &str,
    id_last4: &str,
) -> paybridge_devices::DeviceResult<paybridge_api::wallet::SecurityAuthBody> {
    let signer = app.device_key(device).unwrap();
    let mut holder = paybridge_devices::Phone::with_key(&app.base_url, phone, signer);
    holder
        .pass_security_auth(paybridge_devices::phone::SecurityAnswers {
            device: paybridge_devices::phone::ThisDevice::Registered(device.parse().unwrap()),
            environment: paybridge_devices::phone::genuine_android(),
            id_number_last4: id_last4.into(),
            login_password: None,
            payment_password: None,
        })
        .await
}

async fn payment_password_locks_grow_and_a_hundred_wrong_tries_need_a_step_up(app: &TestApp) {
    // The step-up cannot ask for the locked passwords: it asks for the ID
    // digits, so the account needs a bank-attested identity: binding Zhang
    // San's card gives it one (and its payment password).
    let (token, _) = app.payer("zhang.san", 0, PHONE, "482916").await;
    let phone = app.device(&token, "phone", "phone").await;
    app.trust_device(PHONE, &phone, "1239").await;
    let login = || async {
        let body = json!({"phone": PHONE, "password": PASSWORD});
        let (_, s) = app.call("POST", "/v1/sessions", None, Some(body)).await;
        s["token"].as_str().unwrap().to_owned()
    };
    let mut lock_minutes = Vec::new();
    let mut last = (0, Value::Null);
    'rounds: for _ in 0..20 {
        // Locks outlast a session: each round logs in again.
        let token = login().await;
        for _ in 0..5 {
            last = verify(app, &token, "135790").await;
            match (last.0, code(&last.1)) {
                (422 | 403, "payment_password_invalid") => {}
                (429, "password_locked") => {
                    let message = last.1["error"]["message"].as_str().unwrap();
                    let minutes: i64 = message
                        .split_whitespace()
                        .find_map(|w| w.parse().ok())
                        .unwrap();
                    lock_minutes.push(minutes);
                    app.clock.advance(Duration::minutes(minutes));
                }
                (403, "security_auth_required") => break 'rounds,
                other => panic!("unexpected {other:?}: {}", last.1),
            }
        }
    }
    assert_eq!(
        &lock_minutes[..8],
        &[30, 60, 120, 240, 480, 960, 1440, 1440]
    );
    assert_eq!(lock_minutes.len(), 19, "{lock_minutes:?}");
    assert_eq!((last.0, code(&last.1)), (403, "security_auth_required"));
    // Not even the right password opens it now, nor waiting.
    app.clock.advance(Duration::days(3));
    let token = login().await;
    let (s, e) = verify(app, &token, "482916").await;
    assert_eq!((s, code(&e)), (403, "security_auth_required"), "{e}");
    // The trusted phone's security authentication is the step-up: it runs
    // (its only condition: the locked password) and unlocks it.
    let done = step_up(app, PHONE, &phone, "1239").await.unwrap();
    assert_eq!(
        done.conditions,
        vec![paybridge_domain::registration::SecurityCondition::PasswordsLocked]
    );
    assert_eq!(verify(app, &token, "482916").await.0, 200);

    // Attack: with the passwords locked, an account with no identity on
    // record would have only the phone's text left to unlock them.
    let other = "13900000078";
    let (id, other_token) = account(app, other).await;
    let other_phone = app.device(&other_token, "phone", "phone").await;
    app.trust_device(other, &other_phone, "0000").await;
    let user_id: UserId = id.parse().unwrap();
    let mut user = app.wallet.store.user(&user_id).await.unwrap().unwrap();
    user.pay_guard.consecutive_failures = 100;
    app.wallet
        .store
        .user_update_credentials(&user, &[])
        .await
        .unwrap();
    let refused = step_up(app, other, &other_phone, "0000").await.unwrap_err();
    assert_eq!(refused.code(), Some("step_up_unavailable"), "{refused:?}");
}
