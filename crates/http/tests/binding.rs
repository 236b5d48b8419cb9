//! Flow F1 end to end over real HTTP on both stores: the bank app starts a
//! binding (QR or push), the wallet app claims, confirms and completes it
//! with the OTP from the sandbox SMS inbox; both sides see it; unbinding on
//! either side tells the other; and every bad input of the issue.

use paybridge_domain::event::Destination;
use paybridge_domain::ids::DeviceId;
use paybridge_testkit::code;
use paybridge_testkit::{app_tests, TestApp};
use serde_json::{json, Value};
use time::Duration;

app_tests!(
    qr_path_binds_a_card_and_both_sides_see_it,
    the_first_claimant_wins_and_addresses_are_single_use,
    expired_unknown_and_other_users_bindings_are_refused,
    wrong_codes_are_counted_and_five_fail_the_binding,
    a_resent_code_does_not_buy_new_guesses,
    a_holder_who_is_not_the_account_owner_fails_the_binding,
    push_path_reaches_the_wallet_user_or_says_there_is_none,
    unbinding_on_either_side_tells_the_other,
    payment_password_and_one_active_binding_per_card,
    a_card_never_binds_to_an_account_without_a_payment_password,
    a_card_has_one_live_offer_and_the_bank_app_offers_idempotently,
    a_push_offer_for_a_card_already_bound_is_refused_before_the_bank_is_asked,
    unsigned_partner_calls_are_refused,
    bindings_are_listed_a_page_at_a_time,
);

const RESERVED_PHONE: &str = "13800138000";
/// The payment password the accounts choose when their first card binds.
const PIN: &str = "482916";

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

/// The bank customer's first card id.
async fn first_card(app: &TestApp, bank: &str) -> String {
    let (_, cards) = app
        .call("GET", "/bank/v1/app/cards", Some(bank), None)
        .await;
    cards["cards"][0]["id"].as_str().unwrap().to_owned()
}

async fn wallet_user(app: &TestApp, phone: &str) -> String {
    let body = json!({"phone": phone, "password": "correct horse 9"});
    assert_eq!(app.register_account(body.clone()).await.0, 201);
    let (_, s) = app.call("POST", "/v1/sessions", None, Some(body)).await;
    s["token"].as_str().unwrap().to_owned()
}

async fn start(app: &TestApp, bank: &str, card: &str, mode: &str) -> Value {
    let (s, v) = app
        .call(
            "POST",
            &format!("/bank/v1/app/cards/{card}/wallet-bindings"),
            Some(bank),
            Some(json!({"mode": mode})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v
}

/// The newest code the sandbox SMS gateway sent to the reserved phone.
async fn sms_code(app: &TestApp) -> String {
    let (_, inbox) = app
        .call(
            "GET",
            &format!("/v1/sandbox/sms?phone={RESERVED_PHONE}&limit=1"),
            None,
            None,
        )
        .await;
    let body = inbox["messages"][0]["body"].as_str().unwrap().to_owned();
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned()
}

async fn confirm(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    app.call(
        "POST",
        &format!("/v1/bindings/{id}/confirmation"),
        Some(token),
        None,
    )
    .await
}

async fn complete(
    app: &TestApp,
    token: &str,
    id: &str,
    code: &str,
    pin: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({"code": code});
    if let Some(p) = pin {
        body["payment_password"] = json!(p);
    }
    app.call(
        "POST",
        &format!("/v1/bindings/{id}/completion"),
        Some(token),
        Some(body),
    )
    .await
}

/// Claims `url`, confirms, completes: the active binding.
async fn bind_by_qr(app: &TestApp, token: &str, url: &str) -> Value {
    let (s, b) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(token),
            Some(json!({"address": url})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(confirm(app, token, &id).await.0, 200);
    let (s, b) = complete(app, token, &id, &sms_code(app).await, Some(PIN)).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Attack: bind a card, then spend it with a payment password chosen later
/// from any session (a stolen login password). A binding needs the payment
/// password; an account without one chooses it in the same step, set only
/// when the code from the card's phone comes back.
async fn a_card_never_binds_to_an_account_without_a_payment_password(app: &TestApp) {
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let wallet = wallet_user(app, "13911110021").await;
    let url = start(app, &bank, &card, "qr").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, b) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(&wallet),
            Some(json!({"address": url})),
        )
        .await;
    let id = b["id"].as_str().unwrap().to_owned();
    confirm(app, &wallet, &id).await;
    let otp = sms_code(app).await;
    let (s, e) = complete(app, &wallet, &id, &otp, None).await;
    assert_eq!((s, code(&e)), (409, "payment_password_not_set"), "{e}");
    let (s, e) = complete(app, &wallet, &id, &otp, Some("123456")).await;
    assert_eq!((s, code(&e)), (422, "password_too_weak"), "{e}");
    // A wrong code sets nothing.
    let wrong = if otp == "000000" { "111111" } else { "000000" };
    let (s, _) = complete(app, &wallet, &id, wrong, Some(PIN)).await;
    assert_eq!(s, 422);
    let (_, me) = app.call("GET", "/v1/me", Some(&wallet), None).await;
    assert_eq!(me["has_payment_password"], false);
    // Neither refusal spent the code; the binding sets the password.
    let (s, b) = complete(app, &wallet, &id, &otp, Some(PIN)).await;
    assert_eq!((s, b["state"].as_str()), (200, Some("active")), "{b}");
    let (_, me) = app.call("GET", "/v1/me", Some(&wallet), None).await;
    assert_eq!(me["has_payment_password"], true);
    let (s, _) = app
        .call(
            "POST",
            "/v1/me/payment-password/verify",
            Some(&wallet),
            Some(json!({ "password": PIN })),
        )
        .await;
    assert_eq!(s, 200);
    // Choosing another one now is a change: the current one and a trusted device.
    let (s, e) = app
        .call(
            "POST",
            "/v1/me/payment-password",
            Some(&wallet),
            Some(json!({"new_password": "730245", "current_password": PIN})),
        )
        .await;
    assert_eq!((s, code(&e)), (403, "security_auth_required"), "{e}");
}

/// Attack (the fuzzer's): every bank-app call made a new offer, also for
/// a card already bound (one account reached 1,917 bindings), and each
/// offer stayed good for the bank. Now the newest offer supersedes the
/// others, a card bound to the wallet is not offered again, and a retry
/// under the same `Idempotency-Key` is the same offer.
async fn a_card_has_one_live_offer_and_the_bank_app_offers_idempotently(app: &TestApp) {
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let wallet = wallet_user(app, "13911110031").await;
    let path = format!("/bank/v1/app/cards/{card}/wallet-bindings");
    let client = paybridge_client::PublicClient::new(&app.base_url).with_bearer(&bank);
    let offer = |key: &'static str| {
        let (client, path) = (client.clone(), path.clone());
        async move {
            client
                .call_raw(
                    reqwest::Method::POST,
                    &path,
                    Some(&json!({"mode": "qr"})),
                    Some(key),
                )
                .await
                .unwrap()
        }
    };
    let (s, first) = offer("offer-1").await;
    assert_eq!(s, 201, "{first}");
    let (_, again) = offer("offer-1").await;
    assert_eq!(again, first, "a retry is the same offer");
    let (_, second) = offer("offer-2").await;
    assert_ne!(second["binding_id"], first["binding_id"]);
    // The superseded offer can still be claimed at the wallet, but the
    // bank no longer opens an agreement for it.
    let claim = |url: Value| {
        let wallet = wallet.clone();
        async move {
            let (s, b) = app
                .call(
                    "POST",
                    "/v1/bindings/claims",
                    Some(&wallet),
                    Some(json!({ "address": url })),
                )
                .await;
            assert_eq!(s, 200, "{b}");
            let id = b["id"].as_str().unwrap().to_owned();
            assert_eq!(confirm(app, &wallet, &id).await.0, 200);
            complete(app, &wallet, &id, &sms_code(app).await, Some(PIN)).await
        }
    };
    let (s, e) = claim(first["url"].clone()).await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bank refused"),
        "{e}"
    );
    let (s, b) = claim(second["url"].clone()).await;
    assert_eq!((s, b["state"].as_str()), (200, Some("active")), "{b}");
    // Bound now: the bank offers it to the wallet no more, by either path.
    let (s, e) = offer("offer-3").await;
    assert_eq!((s, code(&e)), (409, "binding_exists"), "{e}");
    let (s, e) = app
        .call(
            "POST",
            &format!("/bank/v1/app/cards/{card}/wallet-registrations"),
            Some(&bank),
            None,
        )
        .await;
    assert_eq!((s, code(&e)), (409, "binding_exists"), "{e}");
}

async fn qr_path_binds_a_card_and_both_sides_see_it(app: &TestApp) {
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let wallet = wallet_user(app, "13911110000").await;
    let phone = json!({"id": app.device(&wallet, "phone", "phone").await});

    let started = start(app, &bank, &card, "qr").await;
    assert_eq!(started["status"], "qr_ready");
    let url = started["url"].as_str().unwrap();
    assert!(url.starts_with("http://localhost:8080/bind/pbb_"));
    assert!(url.len() > 40, "at least 128 bits of secret");
    assert!(started["qr_svg"].as_str().unwrap().contains("<svg"));
    assert!(!started["qr_png_base64"].as_str().unwrap().is_empty());

    let (s, claimed) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(&wallet),
            Some(json!({"address": url})),
        )
        .await;
    assert_eq!(s, 200, "{claimed}");
    assert_eq!(claimed["state"], "claimed");
    assert_eq!(claimed["bank_name"], "Demo Bank");
    assert_eq!(claimed["last4"], "0014");
    assert_eq!(claimed["holder_name_masked"], "*三");
    assert_eq!(claimed["phone_masked"], "138****8000");
    assert!(!claimed.to_string().contains("6219990000000014"));
    let id = claimed["id"].as_str().unwrap().to_owned();

    let (s, c) = confirm(app, &wallet, &id).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["binding"]["state"], "otp_sent");
    assert_eq!(c["otp"]["phone_masked"], "138****8000");
    let (s, active) = complete(app, &wallet, &id, &sms_code(app).await, Some(PIN)).await;
    assert_eq!(s, 200, "{active}");
    assert_eq!(active["state"], "active");

    // Both sides see it.
    let (_, list) = app.call("GET", "/v1/bindings", Some(&wallet), None).await;
    assert_eq!(list["bindings"][0]["state"], "active");
    let (_, theirs) = app
        .call("GET", "/bank/v1/app/bindings", Some(&bank), None)
        .await;
    assert_eq!(theirs["bindings"][0]["status"], "active");
    assert_eq!(theirs["bindings"][0]["binding_id"], id.as_str());
    assert_eq!(theirs["bindings"][0]["last4"], "0014");
    // The phone was told (its push channel's events).
    let device: DeviceId = phone["id"].as_str().unwrap().parse().unwrap();
    let events = app
        .wallet
        .store
        .outbox_events_for(&Destination::Device(device), 0, 100)
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.topic.as_str() == "binding.activated"),
        "{events:?}"
    );
    // The account took the bank-attested identity.
    let (_, me) = app.call("GET", "/v1/me", Some(&wallet), None).await;
    assert_eq!(me["identity"]["name_masked"], "*三");
    // The wallet holds the agreement number, sealed.
    let user: paybridge_domain::ids::UserId = me["id"].as_str().unwrap().parse().unwrap();
    let number = app
        .wallet
        .agreement_number(&user, &id.parse().unwrap())
        .await
        .unwrap();
    assert!(number.starts_with("QP") && number.len() == 22);
}

async fn the_first_claimant_wins_and_addresses_are_single_use(app: &TestApp) {
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let url = start(app, &bank, &card, "qr").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = wallet_user(app, "13911110001").await;
    let b = wallet_user(app, "13911110002").await;
    // Both race to claim: exactly one wins.
    let (ra, rb) = tokio::join!(
        app.call(
            "POST",
            "/v1/bindings/claims",
            Some(&a),
            Some(json!({"address": url}))
        ),
        app.call(
            "POST",
            "/v1/bindings/claims",
            Some(&b),
            Some(json!({"address": url}))
        ),
    );
    let mut statuses = [ra.0, rb.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{ra:?} {rb:?}");
    let (winner, loser) = if ra.0 == 200 { (&a, &b) } else { (&b, &a) };
    let loser_answer = if ra.0 == 200 { &rb.1 } else { &ra.1 };
    assert_eq!(code(loser_answer), "binding_already_claimed");
    // The winner is not disturbed, and the address does not work twice.
    let id = if ra.0 == 200 {
        ra.1["id"].as_str().unwrap().to_owned()
    } else {
        rb.1["id"].as_str().unwrap().to_owned()
    };
    let (s, _) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(loser),
            Some(json!({"address": url})),
        )
        .await;
    assert_eq!(s, 409);
    assert_eq!(confirm(app, winner, &id).await.0, 200);
    assert_eq!(
        complete(app, winner, &id, &sms_code(app).await, Some(PIN))
            .await
            .0,
        200
    );
    let (s, e) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(winner),
            Some(json!({"address": url})),
        )
        .await;
    assert_eq!((s, code(&e)), (409, "binding_not_pending"));
}

async fn expired_unknown_and_other_users_bindings_are_refused(app: &TestApp) {
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let wallet = wallet_user(app, "13911110003").await;
    let other = wallet_user(app, "13911110004").await;
    let (s, e) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(&wallet),
            Some(json!({"address": "http://localhost:8080/bind/pbb_nothing"})),
        )
        .await;
    assert_eq!((s, code(&e)), (404, "not_found"));

    let url = start(app, &bank, &card, "qr").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance(Duration::minutes(5));
    let (s, e) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(&wallet),
            Some(json!({"address": url})),
        )
        .await;
    assert_eq!((s, code(&e)), (422, "binding_expired"));

    // Expiry between the steps.
    let url = start(app, &bank, &card, "qr").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, b) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(&wallet),
            Some(json!({"address": url})),
        )
        .await;
    let id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(confirm(app, &wallet, &id).await.0, 200);
    let code_now = sms_code(app).await;
    // Someone else's binding: not found, for every step.
    assert_eq!(
        app.call("GET", &format!("/v1/bindings/{id}"), Some(&other), None)
            .await
            .0,
        404
    );
    assert_eq!(confirm(app, &other, &id).await.0, 404);
    assert_eq!(
        complete(app, &other, &id, &code_now, Some(PIN)).await.0,
        404
    );
    app.clock.advance(Duration::minutes(5));
    let (s, e) = complete(app, &wallet, &id, &code_now, Some(PIN)).await;
    assert_eq!((s, code(&e)), (422, "binding_expired"));
    let (_, b) = app
        .call("GET", &format!("/v1/bindings/{id}"), Some(&wallet), None)
        .await;
    assert_eq!(b["state"], "expired");
    // Nothing reached the bank.
    let (_, theirs) = app
        .call("GET", "/bank/v1/app/bindings", Some(&bank), None)
        .await;
    assert_eq!(theirs["bindings"].as_array().unwrap().len(), 0);
}

/// A binding of Zhang San's first card claimed by QR by a new account with
/// `phone`; returns (its session, the binding id).
async fn claimed_by_qr(app: &TestApp, phone: &str) -> (String, String) {
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let wallet = wallet_user(app, phone).await;
    let url = start(app, &bank, &card, "qr").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, b) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(&wallet),
            Some(json!({"address": url})),
        )
        .await;
    (wallet, b["id"].as_str().unwrap().to_owned())
}

async fn wrong_codes_are_counted_and_five_fail_the_binding(app: &TestApp) {
    let (wallet, id) = claimed_by_qr(app, "13911110005").await;
    confirm(app, &wallet, &id).await;
    let right = sms_code(app).await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..4 {
        let (s, e) = complete(app, &wallet, &id, wrong, Some(PIN)).await;
        assert_eq!((s, code(&e)), (422, "otp_invalid"));
    }
    let (s, e) = complete(app, &wallet, &id, wrong, Some(PIN)).await;
    assert_eq!((s, code(&e)), (429, "otp_locked"));
    let (s, e) = complete(app, &wallet, &id, &right, Some(PIN)).await;
    assert_eq!(s, 409, "{e}");
    let (_, b) = app
        .call("GET", &format!("/v1/bindings/{id}"), Some(&wallet), None)
        .await;
    assert_eq!(
        (b["state"].as_str(), b["failure"].as_str()),
        (Some("failed"), Some("otp_locked"))
    );
}

async fn a_resent_code_does_not_buy_new_guesses(app: &TestApp) {
    let (wallet, id) = claimed_by_qr(app, "13911110009").await;
    confirm(app, &wallet, &id).await;
    let first = sms_code(app).await;
    let wrong = |right: &str| {
        if right == "000000" {
            "111111"
        } else {
            "000000"
        }
        .to_owned()
    };
    for _ in 0..3 {
        let (s, e) = complete(app, &wallet, &id, &wrong(&first), Some(PIN)).await;
        assert_eq!((s, code(&e)), (422, "otp_invalid"));
    }
    // A new code after the resend wait: the three wrong answers still count.
    app.clock.advance(time::Duration::seconds(61));
    let (s, resent) = confirm(app, &wallet, &id).await;
    assert_eq!(s, 200, "a new code is sent: {resent}");
    let second = sms_code(app).await;
    let (s, e) = complete(app, &wallet, &id, &wrong(&second), Some(PIN)).await;
    assert_eq!((s, code(&e)), (422, "otp_invalid"), "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 attempts left"),
        "{e}"
    );
    let (s, e) = complete(app, &wallet, &id, &wrong(&second), Some(PIN)).await;
    assert_eq!((s, code(&e)), (429, "otp_locked"));
    // Locked for good: asking again sends nothing new, the right code fails.
    app.clock.advance(time::Duration::seconds(61));
    let (s, _) = app
        .call(
            "POST",
            &format!("/v1/bindings/{id}/confirmation"),
            Some(&wallet),
            None,
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = complete(app, &wallet, &id, &second, Some(PIN)).await;
    assert_eq!(s, 409);
}

async fn a_holder_who_is_not_the_account_owner_fails_the_binding(app: &TestApp) {
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let wallet = wallet_user(app, "13911110006").await;
    let (s, _) = app
        .call(
            "POST",
            "/v1/me/identity",
            Some(&wallet),
            Some(json!({"name": "李四", "id_number": "310104198511204567"})),
        )
        .await;
    assert_eq!(s, 201);
    let url = start(app, &bank, &card, "qr").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, e) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(&wallet),
            Some(json!({"address": url})),
        )
        .await;
    assert_eq!((s, code(&e)), (422, "identity_mismatch"));
    let (_, list) = app.call("GET", "/v1/bindings", Some(&wallet), None).await;
    assert_eq!(list["bindings"][0]["failure"], "identity_mismatch");
    let risk = app
        .wallet
        .store
        .outbox_events_for(&Destination::Internal, 0, 1000)
        .await
        .unwrap();
    assert!(risk
        .iter()
        .any(|e| e.topic.as_str() == "risk.binding_identity_mismatch"));
}

async fn push_path_reaches_the_wallet_user_or_says_there_is_none(app: &TestApp) {
    // Li Si has no wallet account yet.
    let li = bank_token(app, "li.si").await;
    let li_card = first_card(app, &li).await;
    let none = start(app, &li, &li_card, "push").await;
    assert_eq!(none["status"], "no_wallet_user");

    // Zhang San's wallet account uses the phone reserved at the bank.
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let wallet = wallet_user(app, RESERVED_PHONE).await;
    let phone = json!({"id": app.device(&wallet, "phone", "phone").await});
    let pushed = start(app, &bank, &card, "push").await;
    assert_eq!(pushed["status"], "pushed");
    let id = pushed["binding_id"].as_str().unwrap().to_owned();
    let device: DeviceId = phone["id"].as_str().unwrap().parse().unwrap();
    let events = app
        .wallet
        .store
        .outbox_events_for(&Destination::Device(device), 0, 100)
        .await
        .unwrap();
    let offered = events
        .iter()
        .find(|e| e.topic.as_str() == "binding.offered")
        .expect("a binding message");
    assert_eq!(offered.payload["binding_id"], id.as_str());
    assert!(!offered.payload.to_string().contains(RESERVED_PHONE));

    let (s, b) = app
        .call(
            "POST",
            &format!("/v1/bindings/{id}/claim"),
            Some(&wallet),
            None,
        )
        .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("claimed")), "{b}");
    assert_eq!(confirm(app, &wallet, &id).await.0, 200);
    let (s, b) = complete(app, &wallet, &id, &sms_code(app).await, Some(PIN)).await;
    assert_eq!((s, b["state"].as_str()), (200, Some("active")), "{b}");
}

async fn unbinding_on_either_side_tells_the_other(app: &TestApp) {
    let bank = bank_token(app, "zhang.san").await;
    let (_, cards) = app
        .call("GET", "/bank/v1/app/cards", Some(&bank), None)
        .await;
    let (c1, c2) = (
        cards["cards"][0]["id"].as_str().unwrap().to_owned(),
        cards["cards"][1]["id"].as_str().unwrap().to_owned(),
    );
    let wallet = wallet_user(app, "13911110007").await;
    let b1 = bind_by_qr(
        app,
        &wallet,
        start(app, &bank, &c1, "qr").await["url"].as_str().unwrap(),
    )
    .await;
    let b2 = bind_by_qr(
        app,
        &wallet,
        start(app, &bank, &c2, "qr").await["url"].as_str().unwrap(),
    )
    .await;

    // Unbinding is sensitive: not from a session on no device.
    let unbind = |token: String| {
        let path = format!("/v1/bindings/{}", b1["id"].as_str().unwrap());
        async move { app.call("DELETE", &path, Some(&token), None).await }
    };
    let (s, e) = unbind(wallet.clone()).await;
    assert_eq!((s, code(&e)), (403, "security_auth_required"));
    let phone = app.device(&wallet, "phone", "phone").await;
    // Zhang San's ID number (attested by the bank at binding) ends in 1239.
    let on_phone = app.trust_device("13911110007", &phone, "1239").await;
    // The wallet unbinds the first: the bank hears it through the outbox.
    let (s, u) = unbind(on_phone).await;
    assert_eq!((s, u["state"].as_str()), (200, Some("unbound")));
    app.wallet.dispatcher.run_once().await.unwrap();
    let (_, theirs) = app
        .call("GET", "/bank/v1/app/bindings", Some(&bank), None)
        .await;
    let status_of = |binding: &Value| {
        theirs["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["binding_id"] == binding["id"])
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of(&b1), "cancelled");
    assert_eq!(status_of(&b2), "active");

    // The bank unbinds the second: the wallet hears it.
    let agreement = theirs["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["binding_id"] == b2["id"])
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/bank/v1/app/bindings/{agreement}"),
            Some(&bank),
            None
        )
        .await
        .0,
        204
    );
    app.issuer.dispatcher.run_once().await.unwrap();
    let (_, b) = app
        .call(
            "GET",
            &format!("/v1/bindings/{}", b2["id"].as_str().unwrap()),
            Some(&wallet),
            None,
        )
        .await;
    assert_eq!(b["state"], "unbound");
    // Another customer cannot unbind it.
    let li = bank_token(app, "li.si").await;
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/bank/v1/app/bindings/{agreement}"),
            Some(&li),
            None
        )
        .await
        .0,
        404
    );
}

async fn payment_password_and_one_active_binding_per_card(app: &TestApp) {
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let wallet = wallet_user(app, "13911110008").await;
    app.call(
        "POST",
        "/v1/me/payment-password",
        Some(&wallet),
        Some(json!({"new_password": "482916"})),
    )
    .await;
    let url = start(app, &bank, &card, "qr").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, b) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(&wallet),
            Some(json!({"address": url})),
        )
        .await;
    let id = b["id"].as_str().unwrap().to_owned();
    confirm(app, &wallet, &id).await;
    let otp = sms_code(app).await;
    let (s, e) = complete(app, &wallet, &id, &otp, None).await;
    assert_eq!((s, code(&e)), (403, "payment_password_invalid"));
    let (s, e) = complete(app, &wallet, &id, &otp, Some("000001")).await;
    assert_eq!((s, code(&e)), (403, "payment_password_invalid"));
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("4 tries left"));
    // A wrong payment password did not use up the code.
    let (s, b) = complete(app, &wallet, &id, &otp, Some("482916")).await;
    assert_eq!((s, b["state"].as_str()), (200, Some("active")), "{b}");
    // Double-submitted: the second is refused, nothing changes.
    let (s, _) = complete(app, &wallet, &id, "123456", Some("482916")).await;
    assert_eq!(s, 409);

    // The same card again, while the first binding is active (the bank
    // app refuses that now; a bank that does not is refused by the wallet).
    let url = offer_past_the_bank_app(app, &card, "binding-addresses").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, b) = app
        .call(
            "POST",
            "/v1/bindings/claims",
            Some(&wallet),
            Some(json!({"address": url})),
        )
        .await;
    let id2 = b["id"].as_str().unwrap().to_owned();
    let (s, e) = confirm(app, &wallet, &id2).await;
    assert_eq!(
        (s, code(&e)),
        (409, "binding_exists"),
        "no code is sent: {e}"
    );
    let (s, e) = complete(app, &wallet, &id2, &otp, Some("482916")).await;
    assert_eq!(s, 409, "{e}");
    let (_, b2) = app
        .call("GET", &format!("/v1/bindings/{id2}"), Some(&wallet), None)
        .await;
    assert_eq!(b2["state"], "cancelled", "{b2}");
}

/// An offer of Zhang San's first card signed by the bank but made past its
/// bank app (as a bank without the bank app's checks would): `kind` is
/// `binding-addresses` (QR) or `binding-requests` (push).
async fn offer_past_the_bank_app(app: &TestApp, card: &str, kind: &str) -> Value {
    let offer = json!({"card_ref": card, "holder_name": "张三", "holder_id_number": "110105199003071239",
        "phone": RESERVED_PHONE, "bank_name": "Demo Bank", "card_type": "debit", "last4": "0014"});
    app.bank_to_wallet()
        .call(
            reqwest::Method::POST,
            &format!("/v1/partner/{kind}"),
            Some(&offer),
            Some(&format!("past-the-app-{}", rand::random::<u64>())),
        )
        .await
        .expect("the wallet takes the offer")
}

async fn unsigned_partner_calls_are_refused(app: &TestApp) {
    let offer = json!({"card_ref": "card_x", "holder_name": "张三", "holder_id_number": "110105199003071239",
        "phone": RESERVED_PHONE, "bank_name": "Demo Bank", "card_type": "debit", "last4": "0014"});
    for path in [
        "/v1/partner/binding-addresses",
        "/v1/partner/binding-requests",
        "/bank/v1/partner/bindings/activations",
    ] {
        let (s, e) = app.call("POST", path, None, Some(offer.clone())).await;
        assert_eq!((s, code(&e)), (401, "signature_missing"), "{path}");
    }
    // Signed by the bank but malformed: refused with the field named, nothing created.
    let mut bad = offer.clone();
    bad["holder_id_number"] = json!("110105199003071238");
    let r: Result<Value, _> = app
        .bank_to_wallet()
        .call(
            reqwest::Method::POST,
            "/v1/partner/binding-addresses",
            Some(&bad),
            Some("k-1"),
        )
        .await;
    match r {
        Err(paybridge_client::PartnerError::Refused { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (422, "identity_invalid"))
        }
        other => panic!("{other:?}"),
    }
}

async fn a_push_offer_for_a_card_already_bound_is_refused_before_the_bank_is_asked(app: &TestApp) {
    // Zhang San's card 0 is bound (QR path) to the account of its reserved phone.
    let (wallet, bound) = app.payer("zhang.san", 0, RESERVED_PHONE, "482916").await;
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    // The bank offers the same card by push (what the API fuzzer did; the
    // bank app refuses that now, so the offer comes straight from the bank).
    let pushed = offer_past_the_bank_app(app, &card, "binding-requests").await;
    assert_eq!(pushed["status"], "pushed", "{pushed}");
    let id = pushed["binding_id"].as_str().unwrap().to_owned();
    let (s, _) = app
        .call(
            "POST",
            &format!("/v1/bindings/{id}/claim"),
            Some(&wallet),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let sent = app.sms_code(RESERVED_PHONE).await;
    let (s, e) = confirm(app, &wallet, &id).await;
    assert_eq!((s, code(&e)), (409, "binding_exists"), "{e}");
    assert_eq!(app.sms_code(RESERVED_PHONE).await, sent, "no code was sent");
    let (s, _) = complete(app, &wallet, &id, &sent, Some("482916")).await;
    assert_eq!(s, 409);
    // Both sides agree: one active binding and one active agreement, the first.
    let (_, mine) = app.call("GET", "/v1/bindings", Some(&wallet), None).await;
    let active = active_ones(&mine, "state", "id");
    assert_eq!(active, vec![bound.as_str()], "{mine}");
    let (_, theirs) = app
        .call("GET", "/bank/v1/app/bindings", Some(&bank), None)
        .await;
    let agreements = active_ones(&theirs, "status", "binding_id");
    assert_eq!(agreements, vec![bound.as_str()], "{theirs}");
}

/// The `id_field` of the listed bindings whose `state_field` is `active`.
fn active_ones<'a>(list: &'a Value, state_field: &str, id_field: &str) -> Vec<&'a str> {
    list["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b[state_field] == "active")
        .filter_map(|b| b[id_field].as_str())
        .collect()
}

async fn bindings_are_listed_a_page_at_a_time(app: &TestApp) {
    let bank = bank_token(app, "zhang.san").await;
    let card = first_card(app, &bank).await;
    let wallet = wallet_user(app, "13911110009").await;
    let other = wallet_user(app, "13911110010").await;
    let mut claimed = Vec::new();
    for _ in 0..5 {
        let url = start(app, &bank, &card, "qr").await["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let (s, b) = app
            .call(
                "POST",
                "/v1/bindings/claims",
                Some(&wallet),
                Some(json!({"address": url})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        claimed.push(b["id"].as_str().unwrap().to_owned());
        app.clock.advance(Duration::seconds(1));
    }
    claimed.reverse();
    let page = |query: String| {
        let token = wallet.clone();
        async move {
            app.call("GET", &format!("/v1/bindings{query}"), Some(&token), None)
                .await
        }
    };
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let (s, p) = page(query.clone()).await;
        assert_eq!(s, 200, "{p}");
        let ids: Vec<String> = p["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 2);
        seen.extend(ids);
        match p["next"].as_str() {
            Some(next) => query = format!("?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, claimed, "every binding once, newest first");
    let (_, all) = page(String::new()).await;
    assert_eq!(all["bindings"].as_array().unwrap().len(), 5);
    assert!(all["next"].is_null());
    // Out of bounds, or a cursor that is not the account's: refused.
    for bad in ["?limit=0", "?limit=101", "?after=bnd_nonsense", "?limit=-1"] {
        let (s, e) = page(bad.to_owned()).await;
        assert_eq!((s, code(&e)), (422, "invalid_request"), "{bad}: {e}");
    }
    let (s, e) = app
        .call(
            "GET",
            &format!("/v1/bindings?after={}", claimed[0]),
            Some(&other),
            None,
        )
        .await;
    assert_eq!((s, code(&e)), (422, "invalid_request"), "{e}");
}
