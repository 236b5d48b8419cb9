//! Devices over real HTTP on both stores: register, list, rename, revoke,
//! privacy between accounts, WebAuthn with a software authenticator (the
//! real ceremonies), the signature counter, and the push channel's order
//! and replay.

use paybridge_testkit::code;
use std::time::Duration as StdDuration;

use paybridge_api::wallet::CeremonyBody;
use paybridge_devices::Passkey;
use paybridge_domain::event::{Destination, NewEvent};
use paybridge_domain::ids::DeviceId;
use paybridge_testkit::{app_tests, TestApp};
use serde_json::{json, Value};
use time::Duration;

app_tests!(
    devices_are_registered_listed_renamed_revoked_and_private,
    a_phone_registers_a_credential_and_approves_with_user_verification,
    a_counter_that_does_not_advance_is_refused,
    revoking_a_device_ends_its_sessions,
    the_push_channel_delivers_in_order_and_replays_what_was_missed,
    a_device_holds_at_most_three_push_channels,
);

const PASSWORD: &str = "correct horse 9";

async fn account(app: &TestApp, phone: &str) -> String {
    let body = json!({"phone": phone, "password": PASSWORD});
    assert_eq!(app.register_account(body.clone()).await.0, 201);
    let (_, s) = app.call("POST", "/v1/sessions", None, Some(body)).await;
    s["token"].as_str().unwrap().to_owned()
}

/// A phone of the account of `token`, registered with its key and
/// trusted by security authentication; returns (device id, the phone's
/// session token, bound to its key).
async fn trusted_phone(app: &TestApp, token: &str, number: &str) -> (String, String) {
    let dev = app.device(token, "phone", "Alice's phone").await;
    let on_phone = app.trust_device(number, &dev, "0000").await;
    (dev, on_phone)
}

async fn devices_are_registered_listed_renamed_revoked_and_private(app: &TestApp) {
    let alice = account(app, "13800138000").await;
    let bob = account(app, "13900139000").await;
    let (phone, on_phone) = trusted_phone(app, &alice, "13800138000").await;
    app.clock.advance(Duration::seconds(1));
    // The trusted phone's session pairs the PC: trusted at once.
    let pc = app.device(&on_phone, "pc", "Alice's PC").await;
    assert!(phone.starts_with("dev_"));
    let (_, d) = app
        .call("GET", &format!("/v1/devices/{pc}"), Some(&alice), None)
        .await;
    assert_eq!(d["paired"], true, "{d}");
    assert!(d["key_thumbprint"].as_str().is_some_and(|t| t.len() == 43));
    let (_, d) = app
        .call("GET", &format!("/v1/devices/{phone}"), Some(&alice), None)
        .await;
    assert_eq!(d["paired"], false, "registered from a session on no device");
    // A device without a usable public key is refused.
    let (s, e) = app
        .call(
            "POST",
            "/v1/devices",
            Some(&alice),
            Some(json!({"type": "pc", "name": "x"})),
        )
        .await;
    assert_eq!((s, code(&e)), (422, "invalid_request"));
    let (s, e) = app
        .call(
            "POST",
            "/v1/devices",
            Some(&alice),
            Some(json!({"type": "pc", "name": "x",
                "public_key": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}})),
        )
        .await;
    assert_eq!((s, code(&e)), (422, "invalid_request"), "{e}");
    let key = paybridge_devices::phone::public_key_of(&paybridge_client::DeviceSigner::generate());
    let (s, e) = app
        .call(
            "POST",
            "/v1/devices",
            Some(&alice),
            Some(json!({"type": "watch", "name": "x", "public_key": key})),
        )
        .await;
    assert_eq!((s, code(&e)), (422, "invalid_request"));

    let (_, list) = app.call("GET", "/v1/devices", Some(&alice), None).await;
    let ids: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![pc.as_str(), phone.as_str()], "newest first");
    // A page at a time: one, then the next after its cursor, then none.
    let (_, first) = app
        .call("GET", "/v1/devices?limit=1", Some(&alice), None)
        .await;
    assert_eq!(first["devices"][0]["id"], pc.as_str());
    let next = first["next"].as_str().unwrap().to_owned();
    let (_, second) = app
        .call(
            "GET",
            &format!("/v1/devices?limit=1&after={next}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(second["devices"][0]["id"], phone.as_str());
    let next = second["next"].as_str().unwrap().to_owned();
    let (_, last) = app
        .call(
            "GET",
            &format!("/v1/devices?limit=1&after={next}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(last["devices"].as_array().unwrap().len(), 0);
    assert!(last["next"].is_null());
    for bad in [
        "?limit=0".to_owned(),
        "?limit=101".to_owned(),
        format!("?after={phone}"),
    ] {
        let who = if bad.contains("after") { &bob } else { &alice };
        let (s, e) = app
            .call("GET", &format!("/v1/devices{bad}"), Some(who), None)
            .await;
        assert_eq!((s, code(&e)), (422, "invalid_request"), "{bad}");
    }
    let (_, theirs) = app.call("GET", "/v1/devices", Some(&bob), None).await;
    assert_eq!(theirs["devices"].as_array().unwrap().len(), 0);

    // Another account's device does not exist for Bob.
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "mine"}))),
        ("DELETE", None),
    ] {
        let (s, e) = app
            .call(method, &format!("/v1/devices/{phone}"), Some(&bob), body)
            .await;
        assert_eq!((s, code(&e)), (404, "not_found"), "{method}");
    }
    // Renaming and revoking are sensitive: a session on no device cannot.
    for (method, body) in [("PATCH", Some(json!({"name": "mine"}))), ("DELETE", None)] {
        let (s, e) = app
            .call(method, &format!("/v1/devices/{pc}"), Some(&alice), body)
            .await;
        assert_eq!((s, code(&e)), (403, "security_auth_required"), "{method}");
    }
    let (s, _) = app
        .call("GET", "/v1/devices/dev_nonsense", Some(&alice), None)
        .await;
    assert_eq!(s, 404);

    let (s, d) = app
        .call(
            "PATCH",
            &format!("/v1/devices/{pc}"),
            Some(&on_phone),
            Some(json!({"name": "  Work PC "})),
        )
        .await;
    assert_eq!((s, d["name"].as_str()), (200, Some("Work PC")));
    let (s, _) = app
        .call(
            "DELETE",
            &format!("/v1/devices/{pc}"),
            Some(&on_phone),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = app
        .call(
            "DELETE",
            &format!("/v1/devices/{pc}"),
            Some(&on_phone),
            None,
        )
        .await;
    assert_eq!(s, 204, "revoking twice changes nothing");
    let (_, d) = app
        .call("GET", &format!("/v1/devices/{pc}"), Some(&on_phone), None)
        .await;
    assert_eq!(d["status"], "revoked");
    assert!(d["revoked_at"].is_string());
    let (s, e) = app
        .call(
            "PATCH",
            &format!("/v1/devices/{pc}"),
            Some(&on_phone),
            Some(json!({"name": "again"})),
        )
        .await;
    assert_eq!((s, code(&e)), (403, "device_revoked"));
    let (_, list) = app.call("GET", "/v1/devices", Some(&on_phone), None).await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
    let (_, list) = app
        .call(
            "GET",
            "/v1/devices?include_revoked=true",
            Some(&on_phone),
            None,
        )
        .await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 2);
}

/// Registers a credential on `device` with `phone`.
async fn register_credential(app: &TestApp, token: &str, device: &str, phone: &mut Passkey) {
    let wallet = app.app_of(token);
    let device = device.parse().unwrap();
    let c = wallet.start_credential_registration(&device).await.unwrap();
    assert_eq!(
        c.options["publicKey"]["authenticatorSelection"]["userVerification"], "required",
        "the biometric is required"
    );
    let answer = phone.create(&c).unwrap();
    let r = wallet
        .finish_credential_registration(&device, &c.ceremony_id, &answer)
        .await
        .unwrap();
    assert_eq!(r.device_id, device);
    assert!(r.credential_id.to_string().starts_with("cred_"));
}

/// Starts an approval; returns (ceremony id, options).
async fn start_assertion(app: &TestApp, token: &str, device: &str) -> (String, CeremonyBody) {
    let c = app
        .app_of(token)
        .start_credential_assertion(&device.parse().unwrap())
        .await
        .unwrap();
    (c.ceremony_id.to_string(), c)
}

async fn finish_assertion(
    app: &TestApp,
    token: &str,
    device: &str,
    ceremony: &str,
    answer: &Value,
) -> (u16, Value) {
    app.call(
        "POST",
        &format!("/v1/devices/{device}/credential/assertions/{ceremony}"),
        Some(token),
        Some(json!({"credential": answer})),
    )
    .await
}

async fn a_phone_registers_a_credential_and_approves_with_user_verification(app: &TestApp) {
    let account_token = account(app, "13800138000").await;
    let (dev, token) = trusted_phone(app, &account_token, "13800138000").await;
    // Only the phone's own session, proved by its key, registers its credential.
    let (s, e) = app
        .call(
            "POST",
            &format!("/v1/devices/{dev}/credential/registrations"),
            Some(&account_token),
            None,
        )
        .await;
    assert_eq!((s, code(&e)), (403, "device_proof_required"));
    let mut phone = Passkey::new();
    register_credential(app, &token, &dev, &mut phone).await;
    let (_, d) = app
        .call("GET", &format!("/v1/devices/{dev}"), Some(&token), None)
        .await;
    assert_eq!(d["has_credential"], true);
    let (s, e) = app
        .call(
            "POST",
            &format!("/v1/devices/{dev}/credential/registrations"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!((s, code(&e)), (409, "credential_exists"));

    let (ceremony, options) = start_assertion(app, &token, &dev).await;
    assert_eq!(options.options["publicKey"]["userVerification"], "required");
    let answer = phone.get(&options).unwrap().credential;
    let (s, ok) = finish_assertion(app, &token, &dev, &ceremony, &answer).await;
    assert_eq!(s, 200, "{ok}");
    assert_eq!(
        (ok["verified"].as_bool(), ok["counter"].as_u64()),
        (Some(true), Some(1))
    );
    // A finished ceremony is used up.
    let (s, e) = finish_assertion(app, &token, &dev, &ceremony, &answer).await;
    assert_eq!((s, code(&e)), (409, "ceremony_used"));

    // An answer to one challenge does not finish another.
    let (first, _) = start_assertion(app, &token, &dev).await;
    let (_, second_options) = start_assertion(app, &token, &dev).await;
    let answer = phone.get(&second_options).unwrap().credential;
    let (s, e) = finish_assertion(app, &token, &dev, &first, &answer).await;
    assert_eq!((s, code(&e)), (403, "webauthn_rejected"), "{e}");

    // Too late.
    let (late, options) = start_assertion(app, &token, &dev).await;
    let answer = phone.get(&options).unwrap().credential;
    app.clock.advance(Duration::minutes(6));
    let (s, e) = finish_assertion(app, &token, &dev, &late, &answer).await;
    assert_eq!((s, code(&e)), (422, "ceremony_expired"));

    // Junk instead of a credential; an unknown ceremony; a PC.
    let (next, _) = start_assertion(app, &token, &dev).await;
    let (s, e) = finish_assertion(app, &token, &dev, &next, &json!({"id": 1})).await;
    assert_eq!((s, code(&e)), (422, "invalid_request"));
    let (s, _) = finish_assertion(app, &token, &dev, "wac_nonsense", &json!({})).await;
    assert_eq!(s, 404);
    let pc = app.device(&token, "pc", "PC").await;
    let (s, e) = app
        .call(
            "POST",
            &format!("/v1/devices/{pc}/credential/registrations"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (403, "device_proof_required"),
        "the phone's session cannot act for the PC"
    );
    let on_pc = app.device_login("13800138000", PASSWORD, &pc).await;
    let (s, e) = app
        .call(
            "POST",
            &format!("/v1/devices/{pc}/credential/registrations"),
            Some(&on_pc),
            None,
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (422, "invalid_request"),
        "a PC has no passkey"
    );

    // Revoked: the credential and the phone's sessions are gone with it.
    app.call("DELETE", &format!("/v1/devices/{dev}"), Some(&token), None)
        .await;
    let (s, e) = app
        .call(
            "POST",
            &format!("/v1/devices/{dev}/credential/assertions"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!((s, code(&e)), (401, "session_invalid"));
    let gone = app
        .wallet
        .store
        .credential_of_device(&dev.parse().unwrap())
        .await
        .unwrap();
    assert!(gone.is_none());
}

async fn a_counter_that_does_not_advance_is_refused(app: &TestApp) {
    let account_token = account(app, "13800138000").await;
    let (dev, token) = trusted_phone(app, &account_token, "13800138000").await;
    let mut phone = Passkey::new();
    register_credential(app, &token, &dev, &mut phone).await;
    let (ceremony, options) = start_assertion(app, &token, &dev).await;
    let answer = phone.get(&options).unwrap().credential;
    assert_eq!(
        finish_assertion(app, &token, &dev, &ceremony, &answer)
            .await
            .0,
        200
    );

    // The server has seen a higher counter (as if a clone had been used).
    let device_id: DeviceId = dev.parse().unwrap();
    let cred = app
        .wallet
        .store
        .credential_of_device(&device_id)
        .await
        .unwrap()
        .unwrap();
    assert!(app
        .wallet
        .store
        .credential_used(
            &cred.id,
            cred.sign_count,
            &cred.passkey,
            100,
            app.clock_now()
        )
        .await
        .unwrap());
    let (ceremony, options) = start_assertion(app, &token, &dev).await;
    let answer = phone.get(&options).unwrap().credential;
    let (s, e) = finish_assertion(app, &token, &dev, &ceremony, &answer).await;
    assert_eq!((s, code(&e)), (403, "webauthn_rejected"));
    assert!(e["error"]["message"].as_str().unwrap().contains("counter"));
}

async fn revoking_a_device_ends_its_sessions(app: &TestApp) {
    let token = account(app, "13800138000").await;
    let dev = app.device(&token, "phone", "Alice's phone").await;
    let login_on_phone = || async {
        app.call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": "13800138000", "password": PASSWORD, "device_id": dev})),
        )
        .await
    };
    // A device new to the account needs security authentication first.
    let signer = app.device_key(&dev).unwrap();
    let on_device = app.wallet_app().on_device(signer.clone());
    let login = paybridge_api::wallet::Login {
        phone: "13800138000".into(),
        password: PASSWORD.into(),
        device_id: Some(dev.clone()),
    };
    // Naming a device without its key's proof is refused.
    let (s, e) = login_on_phone().await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"), "{e}");
    // With it: a device new to the account needs security authentication first.
    let e = on_device.login(&login).await.unwrap_err();
    assert_eq!(e.code(), Some("security_auth_required"));
    let first = app.trust_device("13800138000", &dev, "0000").await;
    let on_phone = on_device.login(&login).await.unwrap();
    app.remember_device_session(&on_phone.token, signer);
    let phone_token = on_phone.token.as_str();
    assert_eq!(
        app.call("GET", "/v1/me", Some(phone_token), None).await.0,
        200
    );
    app.call("DELETE", &format!("/v1/devices/{dev}"), Some(&first), None)
        .await;
    let (s, e) = app.call("GET", "/v1/me", Some(phone_token), None).await;
    assert_eq!((s, code(&e)), (401, "session_invalid"));
    assert_eq!(app.call("GET", "/v1/me", Some(&token), None).await.0, 200);
    // Logging in on a revoked device is refused.
    let e = on_device.login(&login).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
}

/// Reads `n` events from an SSE answer: (seq, topic, data).
async fn read_events(resp: &mut reqwest::Response, n: usize) -> Vec<(i64, String, Value)> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(StdDuration::from_secs(10), resp.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap();
        let Some(chunk) = chunk else { break };
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut topic, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse::<i64>().unwrap());
                } else if let Some(v) = line.strip_prefix("event:") {
                    topic = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                }
            }
            if let (Some(id), Some(topic), Some(data)) = (id, topic, data) {
                out.push((id, topic, data));
            }
        }
    }
    out
}

async fn open_channel(
    app: &TestApp,
    token: &str,
    device: &str,
    last: Option<i64>,
) -> reqwest::Response {
    let path = format!("/v1/devices/{device}/events");
    let mut req = reqwest::Client::new().get(format!("{}{path}", app.base_url));
    for (name, value) in app.session_headers(token, "GET", &path) {
        req = req.header(name, value);
    }
    if let Some(l) = last {
        req = req.header("last-event-id", l.to_string());
    }
    req.send().await.unwrap()
}

async fn the_push_channel_delivers_in_order_and_replays_what_was_missed(app: &TestApp) {
    let account_token = account(app, "13800138000").await;
    let other = account(app, "13900139000").await;
    let (dev, token) = trusted_phone(app, &account_token, "13800138000").await;
    let device_id: DeviceId = dev.parse().unwrap();
    let push = |n: i64| {
        NewEvent::new(
            "payment.requested".parse().unwrap(),
            Destination::Device(device_id.clone()),
            json!({"n": n}),
            app.clock_now(),
        )
    };
    app.wallet
        .store
        .outbox_append(&[push(1), push(2)])
        .await
        .unwrap();

    let mut resp = open_channel(app, &token, &dev, None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let first = read_events(&mut resp, 2).await;
    assert_eq!(
        first
            .iter()
            .map(|e| e.2["data"]["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(first[0].0 < first[1].0);
    assert_eq!(first[0].1, "payment.requested");
    // Live: a new event arrives on the open channel.
    app.wallet.store.outbox_append(&[push(3)]).await.unwrap();
    let live = read_events(&mut resp, 1).await;
    assert_eq!(live[0].2["data"]["n"], 3);
    drop(resp);

    // Offline, two more; reconnecting after the first gets the rest, in order.
    app.wallet
        .store
        .outbox_append(&[push(4), push(5)])
        .await
        .unwrap();
    let mut resp = open_channel(app, &token, &dev, Some(first[0].0)).await;
    let replay = read_events(&mut resp, 4).await;
    assert_eq!(
        replay
            .iter()
            .map(|e| e.2["data"]["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );

    // Only the device's own session, proved by its key, opens its channel:
    // not another account's, not this account's session on no device, not
    // the bare token without the key's proof. Bad Last-Event-ID: refused.
    for who in [&other, &account_token] {
        let (s, e) = app
            .call("GET", &format!("/v1/devices/{dev}/events"), Some(who), None)
            .await;
        assert_eq!((s, code(&e)), (403, "device_proof_required"));
    }
    let stolen = reqwest::Client::new()
        .get(format!("{}/v1/devices/{dev}/events", app.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 401, "a token without its key is useless");
    let path = format!("/v1/devices/{dev}/events");
    let mut bad = reqwest::Client::new().get(format!("{}{path}", app.base_url));
    for (name, value) in app.session_headers(&token, "GET", &path) {
        bad = bad.header(name, value);
    }
    let bad = bad
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);

    // Revoking the device tells the channel, then closes it.
    app.call("DELETE", &format!("/v1/devices/{dev}"), Some(&token), None)
        .await;
    let last = read_events(&mut resp, 1).await;
    assert_eq!(last[0].1, "device.revoked");
    let end = tokio::time::timeout(StdDuration::from_secs(10), resp.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(end.is_none(), "the channel closes");
    let (s, e) = app
        .call(
            "GET",
            &format!("/v1/devices/{dev}/events"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (401, "session_invalid"),
        "its session ended with it"
    );
}

/// Outside the sandbox a passkey's answer counts only from the configured
/// origin: a page on another port of the same host is another origin.
async fn only_the_configured_origin_registers_a_passkey(backend: paybridge_store::Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        if let Some(w) = &mut c.wallet {
            w.webauthn.allow_any_port = false;
        }
    })
    .await
    else {
        return;
    };
    let token = account(&app, "13800138000").await;
    let (dev, on_phone) = trusted_phone(&app, &token, "13800138000").await;
    let wallet = app.app_of(&on_phone);
    let device: DeviceId = dev.parse().unwrap();
    let other_port = url::Url::parse("http://localhost:9999").unwrap();
    let c = wallet.start_credential_registration(&device).await.unwrap();
    let answer = Passkey::at_origin(other_port).create(&c).unwrap();
    let e = wallet
        .finish_credential_registration(&device, &c.ceremony_id, &answer)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("webauthn_rejected"), "{e}");
    let c = wallet.start_credential_registration(&device).await.unwrap();
    let answer = Passkey::new().create(&c).unwrap();
    assert!(wallet
        .finish_credential_registration(&device, &c.ceremony_id, &answer)
        .await
        .is_ok());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_only_the_configured_origin_registers_a_passkey() {
    only_the_configured_origin_registers_a_passkey(paybridge_store::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_only_the_configured_origin_registers_a_passkey() {
    only_the_configured_origin_registers_a_passkey(paybridge_store::Backend::Postgres).await;
}

async fn a_device_holds_at_most_three_push_channels(app: &TestApp) {
    let account_token = account(app, "13800138000").await;
    let (dev, token) = trusted_phone(app, &account_token, "13800138000").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let resp = open_channel(app, &token, &dev, None).await;
        assert_eq!(resp.status(), 200);
        open.push(resp);
    }
    let resp = open_channel(app, &token, &dev, None).await;
    assert_eq!(resp.status(), 429);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(code(&e), "too_many_push_channels");
    // Another device of the account is not held up.
    let (pc, on_pc) = app.pair_terminal(&token, "13800138000", "pc", "PC").await;
    assert_eq!(open_channel(app, &on_pc, &pc, None).await.status(), 200);
    drop(open);
}
