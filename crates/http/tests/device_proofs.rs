//! Devices prove who they are (DPoP, RFC 9449), over real HTTP on both
//! stores. Each test is an attack on a device-bound session or on the
//! steps that bind one, and what stops it.

use std::sync::Arc;

use paybridge_client::DeviceSigner;
use paybridge_devices::phone::{genuine_android, public_key_of};
use paybridge_testkit::{app_tests, code, TestApp, TEST_LOGIN_PASSWORD};
use serde_json::{json, Value};
use time::Duration;

app_tests!(
    a_stolen_session_token_without_the_device_key_is_refused,
    a_proof_made_for_another_request_or_used_twice_is_refused,
    a_stale_nonce_is_answered_with_a_fresh_one_and_the_retry_passes,
    a_login_naming_a_device_needs_that_devices_key,
    a_new_device_cannot_register_a_key_it_does_not_hold,
    a_session_of_one_device_cannot_act_for_another,
    a_refused_proof_is_never_replayed_as_the_idempotent_answer,
);

const PHONE: &str = "13800138000";

/// An account with a trusted phone: (account token on no device, phone
/// id, the phone's session token, the phone's key).
async fn trusted_phone(app: &TestApp) -> (String, String, String, Arc<DeviceSigner>) {
    let mut phone = app.phone(PHONE);
    phone.register(TEST_LOGIN_PASSWORD).await.unwrap();
    let token = phone
        .log_in(TEST_LOGIN_PASSWORD)
        .await
        .unwrap()
        .token
        .clone();
    let device = app.device(&token, "phone", "Zhang's phone").await;
    let on_phone = app.trust_device(PHONE, &device, "0000").await;
    let key = app.device_key(&device).unwrap();
    (token, device, on_phone, key)
}

/// `GET path` with the headers given, as raw HTTP: (status, headers, body).
async fn get(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", app.base_url));
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// `GET /v1/me` of session `token` with `proof` as its `DPoP` header.
async fn me_with(
    app: &TestApp,
    token: &str,
    proof: String,
) -> (u16, reqwest::header::HeaderMap, Value) {
    get(
        app,
        "/v1/me",
        &[("authorization", format!("DPoP {token}")), ("dpop", proof)],
    )
    .await
}

fn nonce(app: &TestApp) -> String {
    app.wallet.device_proofs.nonce(app.clock_now())
}

async fn a_stolen_session_token_without_the_device_key_is_refused(app: &TestApp) {
    let (_, _, on_phone, key) = trusted_phone(app).await;
    let url = format!("{}/v1/me", app.base_url);
    // The owner, with its key: fine.
    let proof = key.prove_with_nonce("GET", &url, Some(&on_phone), &nonce(app));
    let (s, _, _) = me_with(app, &on_phone, proof).await;
    assert_eq!(s, 200);
    // The token alone, as Bearer or DPoP: refused, and told how to prove.
    for scheme in ["Bearer", "DPoP"] {
        let (s, headers, e) = get(
            app,
            "/v1/me",
            &[("authorization", format!("{scheme} {on_phone}"))],
        )
        .await;
        assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"), "{scheme}");
        assert!(headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_dpop_proof"));
    }
    // The token with a proof by a key the thief made: refused.
    let thief = DeviceSigner::generate();
    let forged = thief.prove_with_nonce("GET", &url, Some(&on_phone), &nonce(app));
    let (s, _, e) = me_with(app, &on_phone, forged).await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"));
    assert!(e["error"]["message"].as_str().unwrap().contains("key"));
}

async fn a_proof_made_for_another_request_or_used_twice_is_refused(app: &TestApp) {
    let (_, _, on_phone, key) = trusted_phone(app).await;
    let me = format!("{}/v1/me", app.base_url);
    let send = |proof: String| me_with(app, &on_phone, proof);
    let n = nonce(app);
    for (why, proof) in [
        (
            "another URL",
            key.prove_with_nonce(
                "GET",
                &format!("{}/v1/devices", app.base_url),
                Some(&on_phone),
                &n,
            ),
        ),
        (
            "another method",
            key.prove_with_nonce("POST", &me, Some(&on_phone), &n),
        ),
        (
            "another host",
            key.prove_with_nonce("GET", "https://evil.example/v1/me", Some(&on_phone), &n),
        ),
        (
            "another token",
            key.prove_with_nonce("GET", &me, Some("ses_other"), &n),
        ),
        ("no token hash", key.prove_with_nonce("GET", &me, None, &n)),
        ("not a JWS", "e30.e30.e30".to_owned()),
    ] {
        let (s, _, e) = send(proof).await;
        assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"), "{why}: {e}");
    }
    // One proof, one request.
    let once = key.prove_with_nonce("GET", &me, Some(&on_phone), &n);
    assert_eq!(send(once.clone()).await.0, 200);
    let (s, _, e) = send(once).await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"), "a replay");
    // Two DPoP headers: refused.
    let (s, _, e) = get(
        app,
        "/v1/me",
        &[
            ("authorization", format!("DPoP {on_phone}")),
            (
                "dpop",
                key.prove_with_nonce("GET", &me, Some(&on_phone), &n),
            ),
            (
                "dpop",
                key.prove_with_nonce("GET", &me, Some(&on_phone), &n),
            ),
        ],
    )
    .await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"));
}

async fn a_stale_nonce_is_answered_with_a_fresh_one_and_the_retry_passes(app: &TestApp) {
    let (_, _, on_phone, key) = trusted_phone(app).await;
    let me = format!("{}/v1/me", app.base_url);
    let old = nonce(app);
    app.clock.advance(Duration::minutes(3));
    let (s, headers, e) = me_with(
        app,
        &on_phone,
        key.prove_with_nonce("GET", &me, Some(&on_phone), &old),
    )
    .await;
    assert_eq!((s, code(&e)), (401, "use_dpop_nonce"));
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("use_dpop_nonce"));
    let fresh = headers["dpop-nonce"].to_str().unwrap().to_owned();
    assert_ne!(fresh, old);
    let (s, headers, _) = me_with(
        app,
        &on_phone,
        key.prove_with_nonce("GET", &me, Some(&on_phone), &fresh),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        headers.contains_key("dpop-nonce"),
        "every proved answer has the next nonce"
    );
    // The typed client does the same by itself after hours.
    app.clock.advance(Duration::hours(5));
    let me = app.app_of(&on_phone).me().await.unwrap();
    assert_eq!(me.phone_masked, "138****8000");
}

async fn a_login_naming_a_device_needs_that_devices_key(app: &TestApp) {
    let (_, device, _, key) = trusted_phone(app).await;
    let body = json!({"phone": PHONE, "password": TEST_LOGIN_PASSWORD, "device_id": device});
    // Without a proof, with someone else's key: refused before the password counts.
    let (s, e) = app
        .call("POST", "/v1/sessions", None, Some(body.clone()))
        .await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"));
    let thief = DeviceSigner::generate();
    let (s, e) = app
        .call_on(&thief, "POST", "/v1/sessions", None, Some(body.clone()))
        .await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"), "{e}");
    // With its own key: a session bound to it, that only its key can use.
    let (s, session) = app
        .call_on(&key, "POST", "/v1/sessions", None, Some(body))
        .await;
    assert_eq!(s, 201, "{session}");
    assert_eq!(session["device_id"], device.as_str());
    let token = session["token"].as_str().unwrap();
    let stolen = paybridge_client::WalletApp::new(&app.base_url).signed_in(token);
    let e = stolen.me().await.unwrap_err();
    assert_eq!(e.code(), Some("dpop_proof_invalid"));
    assert!(app.app_of(token).me().await.is_ok());
    // A login naming no device is a session on no device: it proves nothing.
    let (s, plain) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": PHONE, "password": TEST_LOGIN_PASSWORD})),
        )
        .await;
    assert_eq!(s, 201);
    assert!(plain["device_id"].is_null());
}

async fn a_new_device_cannot_register_a_key_it_does_not_hold(app: &TestApp) {
    let (token, ..) = trusted_phone(app).await;
    let devices = || async {
        let (_, list) = app.call("GET", "/v1/devices", Some(&token), None).await;
        list["devices"].as_array().unwrap().len()
    };
    let before = devices().await;
    let holder = DeviceSigner::generate();
    let other = DeviceSigner::generate();
    // Starts security authentication naming `key`, signed by `signer` (or unsigned).
    let start = |signer: Option<&Arc<DeviceSigner>>, key: Value| {
        let body = json!({"phone": PHONE, "environment": genuine_android(),
            "device": {"type": "phone", "name": "New phone", "public_key": key}});
        let path = "/v1/security-authentications";
        let signer = signer.cloned();
        async move {
            match signer {
                Some(signer) => app.call_on(&signer, "POST", path, None, Some(body)).await,
                None => app.call("POST", path, None, Some(body)).await,
            }
        }
    };
    // The body names one key, the proof is by another: refused, nothing made.
    let (s, e) = start(Some(&holder), json!(public_key_of(&other))).await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"), "{e}");
    let (s, e) = start(None, json!(public_key_of(&holder))).await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"), "no proof: {e}");
    // A malformed key is a bad request.
    let (s, e) = start(
        Some(&holder),
        json!({"kty": "EC", "crv": "P-256", "x": "AAAA"}),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(devices().await, before, "no device was made");
    // Its own key, proved: the authentication starts.
    let (s, auth) = start(Some(&holder), json!(public_key_of(&holder))).await;
    assert_eq!(s, 201, "{auth}");
}

async fn a_session_of_one_device_cannot_act_for_another(app: &TestApp) {
    let (token, phone, on_phone, _) = trusted_phone(app).await;
    let (pc, on_pc) = app.pair_terminal(&on_phone, PHONE, "pc", "Study PC").await;
    // Each device's credential is registered only from its own session.
    for (device, token) in [(&pc, &on_phone), (&phone, &on_pc), (&phone, &token)] {
        let (s, e) = app
            .call(
                "POST",
                &format!("/v1/devices/{device}/credential/registrations"),
                Some(token),
                None,
            )
            .await;
        assert_eq!((s, code(&e)), (403, "device_proof_required"));
    }
    // A paired PC's session is a trusted device's: it may pair too, but a
    // session on no device may not revoke.
    let (s, e) = app
        .call("DELETE", &format!("/v1/devices/{pc}"), Some(&token), None)
        .await;
    assert_eq!((s, code(&e)), (403, "security_auth_required"));
    let (s, _) = app
        .call(
            "DELETE",
            &format!("/v1/devices/{pc}"),
            Some(&on_phone),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, e) = app.call("GET", "/v1/me", Some(&on_pc), None).await;
    assert_eq!(
        (s, code(&e)),
        (401, "session_invalid"),
        "the PC's session ended"
    );
}

async fn a_refused_proof_is_never_replayed_as_the_idempotent_answer(app: &TestApp) {
    let (_, _, on_phone, key) = trusted_phone(app).await;
    let path = "/v1/devices";
    let url = format!("{}{path}", app.base_url);
    let body = json!({"type": "tv", "name": "Living room TV",
        "public_key": public_key_of(&DeviceSigner::generate())});
    let post = |proof: String| {
        let (token, body, url) = (on_phone.clone(), body.clone(), url.clone());
        async move {
            let resp = reqwest::Client::new()
                .post(&url)
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .header("idempotency-key", "pair-tv-1")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            (status, headers, resp.json::<Value>().await.unwrap())
        }
    };
    let old = nonce(app);
    app.clock.advance(Duration::minutes(3));
    let (s, headers, e) = post(key.prove_with_nonce("POST", &url, Some(&on_phone), &old)).await;
    assert_eq!((s, code(&e)), (401, "use_dpop_nonce"));
    let fresh = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let (s, _, tv) = post(key.prove_with_nonce("POST", &url, Some(&on_phone), &fresh)).await;
    assert_eq!(s, 201, "the retry under the same key runs: {tv}");
    let (s, headers, again) =
        post(key.prove_with_nonce("POST", &url, Some(&on_phone), &fresh)).await;
    assert_eq!((s, &again["id"]), (201, &tv["id"]), "then it is replayed");
    assert_eq!(headers["idempotent-replayed"], "true");
}
