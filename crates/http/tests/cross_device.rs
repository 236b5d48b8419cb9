//! Flow F4 end to end over real HTTP on both stores: a PC asks, the phone
//! pays. Direct push, gesture from the phone and through the OS push relay,
//! QR fallback, decline, expiry, supersede, the phone's pending cap, every
//! bad input, and one debit per order under concurrent approvals.

use paybridge_api::wallet::CeremonyBody;
use paybridge_devices::Passkey;
use paybridge_domain::event::Destination;
use paybridge_domain::ids::DeviceId;
use paybridge_testkit::code;
use paybridge_testkit::{app_tests, TestApp};
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use serde_json::{json, Value};
use time::Duration;

app_tests!(
    a_pc_asks_and_the_phone_pays_with_its_password,
    a_gesture_on_the_phone_opens_the_page_and_the_biometric_pays,
    the_os_push_relay_relays_a_gesture_with_a_signed_call,
    without_a_live_phone_the_pc_shows_a_qr_code_the_phone_scans,
    declined_expired_and_superseded_requests_tell_the_pc,
    each_bad_input_has_its_code_and_nothing_is_debited,
    concurrent_approvals_debit_once,
    a_terminal_the_user_keeps_declining_or_that_asks_too_often_waits,
    the_terminal_and_the_phone_show_the_same_two_digits,
    a_terminal_racing_its_own_requests_stays_within_its_pace,
);

const PHONE: &str = "13800138000";
const PIN: &str = "482916";
/// Zhang San's ID number ends so (seeded bank data).
const ID_LAST4: &str = "1239";

/// Zhang San's wallet: a card bound, a PC and a trusted phone.
struct Household {
    /// The account's session on no device (as the login gives it).
    account_token: String,
    /// The PC's session, bound to its key.
    pc_token: String,
    pc: String,
    phone: String,
    phone_token: String,
    binding: String,
    merchant: String,
}

async fn household(app: &TestApp, card_index: usize) -> Household {
    let (token, binding) = app.payer("zhang.san", card_index, PHONE, PIN).await;
    let phone = app.device(&token, "phone", "Zhang's phone").await;
    let phone_token = app.trust_device(PHONE, &phone, ID_LAST4).await;
    let (pc, pc_token) = app
        .pair_terminal(&phone_token, PHONE, "pc", "Study PC")
        .await;
    let merchant = app
        .wallet
        .authenticate_merchant(SANDBOX_MERCHANT_KEY)
        .await
        .unwrap()
        .merchant_id
        .to_string();
    Household {
        account_token: token,
        pc_token,
        pc,
        phone,
        phone_token,
        binding,
        merchant,
    }
}

async fn order(app: &TestApp, reference: &str, amount: i64) -> String {
    let body = json!({"amount": {"amount": amount, "currency": "CNY"}, "description": "green tea", "reference": reference});
    let (s, o) = app
        .call("POST", "/v1/orders", Some(SANDBOX_MERCHANT_KEY), Some(body))
        .await;
    assert_eq!(s, 201, "{o}");
    o["id"].as_str().unwrap().to_owned()
}

async fn ask(h: &Household, app: &TestApp, order: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"merchant_id": h.merchant, "order_id": order, "terminal_id": h.pc});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.call(
        "POST",
        "/v1/payment-requests",
        Some(&h.pc_token),
        Some(body),
    )
    .await
}

async fn approve(app: &TestApp, token: &str, id: &str, body: Value) -> (u16, Value) {
    app.call(
        "POST",
        &format!("/v1/payment-requests/{id}/approvals"),
        Some(token),
        Some(body),
    )
    .await
}

async fn pay_with_pin(app: &TestApp, h: &Household, id: &str) -> (u16, Value) {
    approve(
        app,
        &h.phone_token,
        id,
        json!({"binding_id": h.binding, "payment_password": PIN}),
    )
    .await
}

/// Topics pushed to a device, oldest first.
async fn topics(app: &TestApp, device: &str) -> Vec<(String, Value)> {
    let id: DeviceId = device.parse().unwrap();
    app.wallet
        .store
        .outbox_events_for(&Destination::Device(id), 0, 200)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.topic.as_str().to_owned(), e.payload))
        .collect()
}

async fn has_topic(app: &TestApp, device: &str, topic: &str, payment: &str) -> bool {
    topics(app, device)
        .await
        .iter()
        .any(|(t, p)| t == topic && p["payment_id"] == payment)
}

async fn register_credential(app: &TestApp, h: &Household) -> Passkey {
    let mut soft = Passkey::new();
    let phone = app.app_of(&h.phone_token);
    let device = h.phone.parse().unwrap();
    let ceremony = phone.start_credential_registration(&device).await.unwrap();
    let answer = soft.create(&ceremony).unwrap();
    phone
        .finish_credential_registration(&device, &ceremony.ceremony_id, &answer)
        .await
        .unwrap();
    soft
}

/// Starts the biometric approval of `id`; returns (ceremony id, options).
async fn challenge(app: &TestApp, h: &Household, id: &str) -> (String, CeremonyBody) {
    let c = app
        .app_of(&h.phone_token)
        .approval_challenge(&id.parse().unwrap())
        .await
        .unwrap();
    (c.ceremony_id.to_string(), c)
}

async fn a_pc_asks_and_the_phone_pays_with_its_password(app: &TestApp) {
    let h = household(app, 0).await;
    let before = app.card_balance("zhang.san", 0).await;
    let merchant_before = app.merchant_balance(SANDBOX_MERCHANT_KEY).await;
    let ord = order(app, "x-1", 3_800).await;
    let (s, r) = ask(&h, app, &ord, json!({})).await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap();
    assert!(id.starts_with("pay_"));
    assert_eq!(r["state"], "presented");
    assert_eq!(r["phone"]["device_id"], h.phone.as_str());
    assert_eq!(r["requested_by"]["name"], "Study PC");
    assert_eq!(r["amount"], json!({"amount": 3800, "currency": "CNY"}));
    assert_eq!(r["show_qr"], false);
    assert!(r["qr"]["svg"].as_str().unwrap().starts_with("<?xml"));

    // The payment response on the phone's channel: what, to whom, who asked.
    let pushed = topics(app, &h.phone).await;
    let (_, page) = pushed
        .iter()
        .find(|(t, p)| t == "payment_request.presented" && p["payment_id"] == id)
        .expect("the payment page was pushed");
    assert_eq!(page["amount"]["amount"], 3800);
    assert_eq!(page["merchant"]["name"], "Demo Shop");
    assert_eq!(page["requested_by"]["name"], "Study PC");

    // The phone reads the page and pays; the PC is told; the merchant too.
    let (s, p) = app
        .call(
            "GET",
            &format!("/v1/payment-requests/{id}"),
            Some(&h.phone_token),
            None,
        )
        .await;
    assert_eq!((s, p["state"].as_str()), (200, Some("presented")));
    assert!(
        p["qr"].is_null(),
        "the QR is only shown to the asking PC, once"
    );
    let (s, paid) = pay_with_pin(app, &h, id).await;
    assert_eq!(s, 200, "{paid}");
    assert_eq!(paid["state"], "paid");
    assert_eq!(paid["approved_with"], "payment_password");
    assert_eq!(app.order_state(&ord).await, "paid");
    assert!(has_topic(app, &h.pc, "payment_request.paid", id).await);
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 3_800);
    assert_eq!(
        app.merchant_balance(SANDBOX_MERCHANT_KEY).await,
        merchant_before + 3_800
    );
    let totals = app.wallet.store.ledger_totals().await.unwrap();
    assert_eq!(totals.debits_posted, totals.credits_posted);
    // A retry answers the paid request; nothing more is debited.
    let (s, again) = pay_with_pin(app, &h, id).await;
    assert_eq!((s, again["state"].as_str()), (200, Some("paid")));
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 3_800);
    // The PC reads the outcome too.
    let (_, seen) = app
        .call(
            "GET",
            &format!("/v1/payment-requests/{id}"),
            Some(&h.pc_token),
            None,
        )
        .await;
    assert_eq!(seen["state"], "paid");
}

async fn a_gesture_on_the_phone_opens_the_page_and_the_biometric_pays(app: &TestApp) {
    let h = household(app, 0).await;
    let mut soft = register_credential(app, &h).await;
    let ord = order(app, "x-2", 1_250).await;
    let (s, r) = ask(&h, app, &ord, json!({"gesture_required": true})).await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["state"], "awaiting_gesture");
    assert!(has_topic(app, &h.phone, "payment_request.gesture_requested", id).await);
    assert!(!has_topic(app, &h.phone, "payment_request.presented", id).await);
    // The OS push relay was handed the prompt for the phone too.
    let (_, relay) = app
        .call(
            "GET",
            &format!("/v1/sandbox/push-relay?device_token={}", h.phone),
            None,
            None,
        )
        .await;
    assert_eq!(relay["messages"][0]["payload"]["payment_id"], id);

    // No paying before the gesture; junk gestures are refused.
    let (s, e) = pay_with_pin(app, &h, id).await;
    assert_eq!((s, code(&e)), (409, "payment_request_closed"));
    let path = format!("/v1/payment-requests/{id}/gestures");
    let gesture = |g: &'static str| {
        app.call(
            "POST",
            &path,
            Some(&h.phone_token),
            Some(json!({"gesture": g})),
        )
    };
    let (s, e) = gesture("wave").await;
    assert_eq!((s, code(&e)), (422, "invalid_request"));
    let (s, p) = gesture("swipe").await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["state"], "presented");
    assert_eq!(p["gesture"], json!({"gesture": "swipe", "route": "direct"}));
    assert!(has_topic(app, &h.phone, "payment_request.presented", id).await);
    let (s, e) = gesture("tap").await;
    assert_eq!((s, code(&e)), (409, "gesture_not_expected"));

    // The biometric approval, bound to this payment.
    let (ceremony, options) = challenge(app, &h, id).await;
    assert_eq!(options.options["publicKey"]["userVerification"], "required");
    let answer = soft.get(&options).unwrap().credential;
    let (s, paid) = approve(
        app,
        &h.phone_token,
        id,
        json!({"binding_id": h.binding, "webauthn": {"ceremony_id": ceremony, "credential": answer}}),
    )
    .await;
    assert_eq!(s, 200, "{paid}");
    assert_eq!(paid["approved_with"], "webauthn");
    assert_eq!(app.order_state(&ord).await, "paid");
    assert!(has_topic(app, &h.pc, "payment_request.paid", id).await);
}

async fn the_os_push_relay_relays_a_gesture_with_a_signed_call(app: &TestApp) {
    let h = household(app, 0).await;
    let ord = order(app, "x-3", 900).await;
    let (_, r) = ask(&h, app, &ord, json!({"gesture_required": true})).await;
    let id = r["id"].as_str().unwrap();
    let relay = |device: &str, g: &str| {
        app.call(
            "POST",
            "/v1/sandbox/push-relay/gestures",
            None,
            Some(json!({"payment_id": id, "device_id": device, "gesture": g})),
        )
    };
    // A gesture on another phone is not this request's.
    let other = app.device(&h.phone_token, "phone", "Old phone").await;
    let (s, e) = relay(&other, "raise").await;
    assert_eq!((s, code(&e)), (409, "gesture_not_expected"), "{e}");
    let (s, p) = relay(&h.phone, "raise").await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["gesture"], json!({"gesture": "raise", "route": "relay"}));
    assert!(has_topic(app, &h.phone, "payment_request.presented", id).await);
    assert!(has_topic(app, &h.pc, "payment_request.gesture_received", id).await);

    // The wallet's relay route takes only signed calls from a relay: not
    // unsigned ones, and not a bank's.
    let body = json!({"payment_id": id, "device_id": h.phone, "gesture": "tap"});
    let (s, e) = app
        .call("POST", "/v1/relay/gestures", None, Some(body.clone()))
        .await;
    assert_eq!((s, code(&e)), (401, "signature_missing"));
    let r: Result<Value, _> = app
        .bank_to_wallet()
        .call(
            reqwest::Method::POST,
            "/v1/relay/gestures",
            Some(&body),
            None,
        )
        .await;
    match r {
        Err(paybridge_client::PartnerError::Refused { status, .. }) => assert_eq!(status, 401),
        other => panic!("a bank cannot relay gestures: {other:?}"),
    }
    let (s, paid) = pay_with_pin(app, &h, id).await;
    assert_eq!((s, paid["state"].as_str()), (200, Some("paid")), "{paid}");
}

async fn without_a_live_phone_the_pc_shows_a_qr_code_the_phone_scans(app: &TestApp) {
    let h = household(app, 0).await;
    // The phone's channel has not been seen for 11 minutes: no correspondence.
    app.clock.advance(Duration::minutes(11));
    let ord = order(app, "x-4", 600).await;
    let (s, r) = ask(&h, app, &ord, json!({})).await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["state"], "awaiting_scan");
    assert_eq!(r["show_qr"], true);
    assert!(r["phone"].is_null());
    assert!(!has_topic(app, &h.phone, "payment_request.presented", id).await);
    let url = r["qr"]["url"].as_str().unwrap().to_owned();
    assert!(r["qr"]["png_base64"].as_str().unwrap().len() > 100);

    // Someone else's phone cannot use the code; a made-up code is unknown.
    let li = json!({"phone": "13900139000", "password": "correct horse 9"});
    app.register_account(li.clone()).await;
    let (_, s) = app.call("POST", "/v1/sessions", None, Some(li)).await;
    let li_token = s["token"].as_str().unwrap().to_owned();
    let li_phone = app.device(&li_token, "phone", "Li's phone").await;
    let li_phone_token = app.trust_device("13900139000", &li_phone, "0000").await;
    let scan = |token: String, code: String| async move {
        app.call(
            "POST",
            "/v1/payment-scans",
            Some(&token),
            Some(json!({ "code": code })),
        )
        .await
    };
    let (s, _) = scan(li_phone_token, url.clone()).await;
    assert_eq!(s, 404);
    let (s, _) = scan(h.phone_token.clone(), "https://x/pay/pbq_nothing".into()).await;
    assert_eq!(s, 404);
    // The PC's own session cannot scan: it is no phone.
    let (s, e) = scan(h.pc_token.clone(), url.clone()).await;
    assert_eq!((s, code(&e)), (422, "invalid_request"));

    let (s, p) = scan(h.phone_token.clone(), url.clone()).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["state"], "presented");
    assert_eq!(p["phone"]["device_id"], h.phone.as_str());
    assert!(has_topic(app, &h.pc, "payment_request.scanned", id).await);
    let (s, paid) = pay_with_pin(app, &h, id).await;
    assert_eq!((s, paid["state"].as_str()), (200, Some("paid")), "{paid}");
    let (s, e) = scan(h.phone_token.clone(), url).await;
    assert_eq!((s, code(&e)), (409, "payment_request_closed"));

    // A live phone that prefers its scanner is sent to the scanner.
    app.wallet
        .store
        .device_touch(&h.phone.parse().unwrap(), app.clock_now())
        .await
        .unwrap();
    let ord = order(app, "x-5", 700).await;
    let (_, r) = ask(&h, app, &ord, json!({"open_with": "scanner"})).await;
    assert_eq!(r["state"], "awaiting_scan");
    assert_eq!(r["phone"]["device_id"], h.phone.as_str());
    let id = r["id"].as_str().unwrap();
    assert!(has_topic(app, &h.phone, "payment_request.scan_requested", id).await);
    let (s, p) = scan(
        h.phone_token.clone(),
        r["qr"]["url"].as_str().unwrap().into(),
    )
    .await;
    assert_eq!((s, p["state"].as_str()), (200, Some("presented")));
}

async fn declined_expired_and_superseded_requests_tell_the_pc(app: &TestApp) {
    let h = household(app, 0).await;
    let before = app.card_balance("zhang.san", 0).await;
    let ord = order(app, "x-6", 1_000).await;

    // Declined on the phone: the PC is told; nothing can be paid on it.
    let (_, r) = ask(&h, app, &ord, json!({})).await;
    let first = r["id"].as_str().unwrap().to_owned();
    let (s, d) = app
        .call(
            "POST",
            &format!("/v1/payment-requests/{first}/decline"),
            Some(&h.phone_token),
            None,
        )
        .await;
    assert_eq!((s, d["state"].as_str()), (200, Some("declined")), "{d}");
    assert!(has_topic(app, &h.pc, "payment_request.declined", &first).await);
    let (s, e) = pay_with_pin(app, &h, &first).await;
    assert_eq!((s, code(&e)), (409, "payment_request_closed"));
    assert_eq!(app.order_state(&ord).await, "open");

    // A newer request from the PC supersedes its pending one; the phone's
    // page is withdrawn.
    let (_, r) = ask(&h, app, &ord, json!({})).await;
    let second = r["id"].as_str().unwrap().to_owned();
    let (_, r) = ask(&h, app, &ord, json!({})).await;
    let third = r["id"].as_str().unwrap().to_owned();
    let (_, old) = app
        .call(
            "GET",
            &format!("/v1/payment-requests/{second}"),
            Some(&h.pc_token),
            None,
        )
        .await;
    assert_eq!(old["state"], "superseded");
    assert!(has_topic(app, &h.phone, "payment_request.withdrawn", &second).await);
    assert!(has_topic(app, &h.pc, "payment_request.superseded", &second).await);

    // Two minutes later the third has expired: read, or by the sweeper.
    app.clock.advance(Duration::seconds(121));
    let (s, e) = pay_with_pin(app, &h, &third).await;
    assert_eq!((s, code(&e)), (422, "payment_request_expired"), "{e}");
    assert!(has_topic(app, &h.pc, "payment_request.expired", &third).await);
    let (_, r) = ask(&h, app, &ord, json!({})).await;
    let fourth = r["id"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::seconds(121));
    assert_eq!(app.wallet.expire_due_payment_requests().await.unwrap(), 1);
    assert!(has_topic(app, &h.phone, "payment_request.expired", &fourth).await);
    assert_eq!(
        app.card_balance("zhang.san", 0).await,
        before,
        "nothing was debited"
    );

    // At most three pending requests per phone, whichever terminal asks.
    app.wallet
        .store
        .device_touch(&h.phone.parse().unwrap(), app.clock_now())
        .await
        .unwrap();
    for (i, name) in ["TV", "Car", "Kiosk", "Fridge"].iter().enumerate() {
        let kind = if i == 1 { "car" } else { "iot" };
        let (terminal, on_terminal) = app.pair_terminal(&h.phone_token, PHONE, kind, name).await;
        let ord = order(app, &format!("cap-{i}"), 100).await;
        let (s, e) = app
            .call(
                "POST",
                "/v1/payment-requests",
                Some(&on_terminal),
                Some(json!({"merchant_id": h.merchant, "order_id": ord, "terminal_id": terminal})),
            )
            .await;
        if i < 3 {
            assert_eq!(s, 201, "{e}");
        } else {
            assert_eq!((s, code(&e)), (429, "too_many_pending_payments"));
        }
    }
}

async fn each_bad_input_has_its_code_and_nothing_is_debited(app: &TestApp) {
    // Card 1 holds ¥50.00.
    let h = household(app, 1).await;
    let ord = order(app, "x-7", 8_000).await;

    // An order of another merchant; an unknown order.
    let (other, _) = app.wallet.create_merchant("Other Shop").await.unwrap();
    let (s, e) = app
        .call(
            "POST",
            "/v1/payment-requests",
            Some(&h.pc_token),
            Some(
                json!({"merchant_id": other.id.to_string(), "order_id": ord, "terminal_id": h.pc}),
            ),
        )
        .await;
    assert_eq!((s, code(&e)), (404, "not_found"));
    let (s, _) = ask(&h, app, "ord_nonsense", json!({})).await;
    assert_eq!(s, 404);

    // A terminal of another account, an unknown one, a phone as terminal,
    // and a device session naming another terminal.
    let li = json!({"phone": "13900139000", "password": "correct horse 9"});
    app.register_account(li.clone()).await;
    let (_, s) = app.call("POST", "/v1/sessions", None, Some(li)).await;
    let li_pc = app
        .device(s["token"].as_str().unwrap(), "pc", "Li's PC")
        .await;
    for terminal in [li_pc.as_str(), "dev_nonsense"] {
        let (s, e) = ask(&h, app, &ord, json!({"terminal_id": terminal})).await;
        assert_eq!((s, code(&e)), (403, "terminal_not_of_account"), "{e}");
    }
    let (s, e) = app
        .call(
            "POST",
            "/v1/payment-requests",
            Some(&h.phone_token),
            Some(json!({"merchant_id": h.merchant, "order_id": ord, "terminal_id": h.phone})),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (422, "invalid_request"),
        "a phone is no terminal"
    );
    // A session on no device, or the PC's token without the PC's key, asks nothing.
    let (s, e) = app
        .call(
            "POST",
            "/v1/payment-requests",
            Some(&h.account_token),
            Some(json!({"merchant_id": h.merchant, "order_id": ord, "terminal_id": h.pc})),
        )
        .await;
    assert_eq!((s, code(&e)), (403, "device_proof_required"));
    let stolen = paybridge_client::WalletApp::new(&app.base_url).signed_in(&h.pc_token);
    let e = stolen
        .create_payment_request(&paybridge_api::wallet::CreatePaymentRequest {
            merchant_id: h.merchant.clone(),
            order_id: ord.clone(),
            terminal_id: h.pc.clone(),
            gesture_required: None,
            open_with: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(401), Some("dpop_proof_invalid"))
    );
    let (s, e) = app
        .call(
            "POST",
            "/v1/payment-requests",
            Some(&h.phone_token),
            Some(json!({"merchant_id": h.merchant, "order_id": ord, "terminal_id": h.pc})),
        )
        .await;
    assert_eq!((s, code(&e)), (403, "terminal_not_of_account"));
    let (s, e) = ask(&h, app, &ord, json!({"open_with": "fax"})).await;
    assert_eq!((s, code(&e)), (422, "invalid_request"));
    let (s, e) = ask(&h, app, &ord, json!({"amount": 1})).await;
    assert_eq!(
        (s, code(&e)),
        (422, "invalid_request"),
        "no amount from the device: {e}"
    );

    let (_, r) = ask(&h, app, &ord, json!({})).await;
    let id = r["id"].as_str().unwrap().to_owned();
    // Approving from the PC; both or neither approval; a gesture nobody asked for.
    let (s, e) = approve(
        app,
        &h.pc_token,
        &id,
        json!({"binding_id": h.binding, "payment_password": PIN}),
    )
    .await;
    assert_eq!((s, code(&e)), (403, "terminal_not_of_account"));
    let (s, e) = approve(app, &h.phone_token, &id, json!({"binding_id": h.binding})).await;
    assert_eq!((s, code(&e)), (422, "invalid_request"));
    let (s, e) = app
        .call(
            "POST",
            &format!("/v1/payment-requests/{id}/gestures"),
            Some(&h.phone_token),
            Some(json!({"gesture": "tap"})),
        )
        .await;
    assert_eq!((s, code(&e)), (409, "gesture_not_expected"));

    // An order paid meanwhile cannot be asked for.
    let paid = order(app, "x-10", 100).await;
    let (s, e) = app
        .call(
            "POST",
            &format!("/v1/orders/{paid}/payments"),
            Some(&h.phone_token),
            Some(json!({"binding_id": h.binding, "payment_password": PIN})),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    let (s, e) = ask(&h, app, &paid, json!({})).await;
    assert_eq!((s, code(&e)), (409, "order_not_payable"));

    // Insufficient funds: refused, the page stays open, the order open.
    let (s, e) = pay_with_pin(app, &h, &id).await;
    assert_eq!((s, code(&e)), (422, "insufficient_funds"), "{e}");
    assert_eq!(app.order_state(&ord).await, "open");

    // A biometric assertion for another payment's challenge is refused.
    let mut soft = register_credential(app, &h).await;
    let cheap = order(app, "x-8", 100).await;
    let (tv, on_tv) = app.pair_terminal(&h.phone_token, PHONE, "tv", "TV").await;
    let (_, other_request) = app
        .call(
            "POST",
            "/v1/payment-requests",
            Some(&on_tv),
            Some(json!({"merchant_id": h.merchant, "order_id": cheap, "terminal_id": tv})),
        )
        .await;
    let other_id = other_request["id"].as_str().unwrap().to_owned();
    let (ceremony, options) = challenge(app, &h, &other_id).await;
    let answer = soft.get(&options).unwrap().credential;
    let (s, e) = approve(
        app,
        &h.phone_token,
        &id,
        json!({"binding_id": h.binding, "webauthn": {"ceremony_id": ceremony, "credential": answer}}),
    )
    .await;
    assert_eq!((s, code(&e)), (403, "webauthn_rejected"), "{e}");

    // Wrong passwords lock the payment password (the fifth locks it).
    for _ in 0..4 {
        let (s, e) = approve(
            app,
            &h.phone_token,
            &id,
            json!({"binding_id": h.binding, "payment_password": "000001"}),
        )
        .await;
        assert_eq!((s, code(&e)), (403, "payment_password_invalid"), "{e}");
    }
    let wrong = json!({"binding_id": h.binding, "payment_password": "000001"});
    let (s, e) = approve(app, &h.phone_token, &id, wrong).await;
    assert_eq!((s, code(&e)), (429, "password_locked"), "{e}");
    let (s, e) = pay_with_pin(app, &h, &id).await;
    assert_eq!(
        (s, code(&e)),
        (429, "password_locked"),
        "even the right one: {e}"
    );
    assert_eq!(
        app.card_balance("zhang.san", 1).await,
        4_900,
        "only the ¥1 order was debited"
    );

    // An expired order cannot be asked for.
    let expired = order(app, "x-9", 100).await;
    app.clock.advance(Duration::minutes(16));
    let (s, e) = ask(&h, app, &expired, json!({})).await;
    assert_eq!((s, code(&e)), (422, "order_expired"));
}

async fn concurrent_approvals_debit_once(app: &TestApp) {
    let h = household(app, 0).await;
    let before = app.card_balance("zhang.san", 0).await;
    let ord = order(app, "x-11", 2_000).await;
    let (_, r) = ask(&h, app, &ord, json!({})).await;
    let id = r["id"].as_str().unwrap().to_owned();
    let answers = futures::future::join_all((0..8).map(|_| pay_with_pin(app, &h, &id))).await;
    for (s, v) in &answers {
        assert!(
            (*s == 200 && v["state"] == "paid") || (*s == 409 && code(v) == "order_not_payable"),
            "{s} {v}"
        );
    }
    let (s, again) = pay_with_pin(app, &h, &id).await;
    assert_eq!((s, again["state"].as_str()), (200, Some("paid")), "{again}");
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 2_000);
    let paid_events = topics(app, &h.pc)
        .await
        .into_iter()
        .filter(|(t, p)| t == "payment_request.paid" && p["payment_id"] == id.as_str())
        .count();
    assert_eq!(paid_events, 1);
    let merchant = app
        .wallet
        .store
        .outbox_events_for(&Destination::Merchant(h.merchant.parse().unwrap()), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        merchant
            .iter()
            .filter(|e| e.topic.as_str() == "order.paid")
            .count(),
        1
    );
    let totals = app.issuer.store.ledger_totals().await.unwrap();
    assert_eq!(totals.debits_posted, totals.credits_posted);
}

async fn a_terminal_the_user_keeps_declining_or_that_asks_too_often_waits(app: &TestApp) {
    let h = household(app, 0).await;
    let decline = |id: String| {
        let token = h.phone_token.clone();
        async move {
            app.call(
                "POST",
                &format!("/v1/payment-requests/{id}/decline"),
                Some(&token),
                None,
            )
            .await
        }
    };
    for i in 0..3 {
        let ord = order(app, &format!("nag-{i}"), 100).await;
        let (s, r) = ask(&h, app, &ord, json!({})).await;
        assert_eq!(s, 201, "{r}");
        let (s, _) = decline(r["id"].as_str().unwrap().to_owned()).await;
        assert_eq!(s, 200);
    }
    let ord = order(app, "nag-3", 100).await;
    let (s, e) = ask(&h, app, &ord, json!({})).await;
    assert_eq!((s, code(&e)), (429, "payment_requests_throttled"), "{e}");
    // Another terminal of the account is not held up by this one.
    let (tv, on_tv) = app.pair_terminal(&h.phone_token, PHONE, "tv", "TV").await;
    let (s, r) = app
        .call(
            "POST",
            "/v1/payment-requests",
            Some(&on_tv),
            Some(json!({"merchant_id": h.merchant, "order_id": ord, "terminal_id": tv})),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    decline(r["id"].as_str().unwrap().to_owned()).await;
    // Ten minutes on, the PC may ask again; twenty asks in a window at most.
    app.clock.advance(Duration::minutes(11));
    for i in 0..20 {
        let ord = order(app, &format!("often-{i}"), 100).await;
        let (s, r) = ask(&h, app, &ord, json!({})).await;
        assert_eq!(s, 201, "ask {i}: {r}");
    }
    let ord = order(app, "often-20", 100).await;
    let (s, e) = ask(&h, app, &ord, json!({})).await;
    assert_eq!((s, code(&e)), (429, "payment_requests_throttled"), "{e}");
}

async fn the_terminal_and_the_phone_show_the_same_two_digits(app: &TestApp) {
    let h = household(app, 0).await;
    let mut seen = std::collections::HashSet::new();
    for i in 0..6 {
        let ord = order(app, &format!("match-{i}"), 100).await;
        let (_, on_pc) = ask(&h, app, &ord, json!({})).await;
        let code = on_pc["match_code"].as_str().unwrap().to_owned();
        assert!(
            code.len() == 2 && code.bytes().all(|b| b.is_ascii_digit()),
            "{code}"
        );
        let (_, on_phone) = app
            .call(
                "GET",
                &format!("/v1/payment-requests/{}", on_pc["id"].as_str().unwrap()),
                Some(&h.phone_token),
                None,
            )
            .await;
        assert_eq!(on_phone["match_code"], code.as_str());
        seen.insert(code);
    }
    assert!(
        seen.len() > 1,
        "the digits differ from request to request: {seen:?}"
    );
}

/// Attack: a terminal fires its requests all at once, so that each one's
/// pace check sees none of the others (and, with no live phone, no
/// phone's pending cap stops them either): the pace is judged again in the
/// creating transaction, and the terminal's pending requests are read again
/// there, so at most twenty are made in the window and one stays pending.
async fn a_terminal_racing_its_own_requests_stays_within_its_pace(app: &TestApp) {
    let h = household(app, 0).await;
    // The phone's channel is old news: requests wait for a scan instead,
    // and no phone's pending cap applies.
    app.clock.advance(Duration::seconds(
        paybridge_domain::payment_request::PHONE_LIVE_WINDOW_SECS + 60,
    ));
    let max = paybridge_domain::payment_request::MAX_REQUESTS_PER_TERMINAL as usize;
    for i in 0..max - 1 {
        let ord = order(app, &format!("pace-{i}"), 100).await;
        let (s, r) = ask(&h, app, &ord, json!({})).await;
        assert_eq!(s, 201, "ask {i}: {r}");
        assert_eq!(r["state"], "awaiting_scan", "{r}");
    }
    let mut orders = Vec::new();
    for i in 0..10 {
        orders.push(order(app, &format!("race-{i}"), 100).await);
    }
    let answers =
        futures::future::join_all(orders.iter().map(|o| ask(&h, app, o, json!({})))).await;
    for (s, e) in answers.iter().filter(|(s, _)| *s != 201) {
        assert!(
            [(429, "payment_requests_throttled"), (409, "contended")].contains(&(*s, code(e))),
            "{s} {e}"
        );
    }
    let pc: DeviceId = h.pc.parse().unwrap();
    let activity = app
        .wallet
        .store
        .payment_request_activity_of_terminal(&pc, app.clock_now() - Duration::hours(1))
        .await
        .unwrap();
    assert!(
        activity.requested as usize <= max,
        "{} requests made in one window",
        activity.requested
    );
    let pending = app
        .wallet
        .store
        .payment_requests_pending_of_terminal(&pc)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "a terminal has one pending request");
}
