//! No personal data or secrets in the logs: requests carrying a PAN, a phone
//! number and an OTP — in the query, in bodies, in bad bodies — are served
//! and refused while every log line is captured; none of the three appears,
//! and the request ids do (so the capture itself works). Passwords, PINs,
//! ID numbers, session tokens and the seeded cards' PANs do not appear either.

use paybridge_store::Backend;
use paybridge_testkit::logs::{subscriber, CapturedLogs};
use paybridge_testkit::TestApp;
use serde_json::json;

const PAN: &str = "6222020200112233445";
const PHONE: &str = "13812345678";
const OTP: &str = "482913";
const LOGIN_PASSWORD: &str = "correct horse 9";
const PIN: &str = "730245";
const ID_NUMBER: &str = "110105199003071239";
const SEEDED_PAN: &str = "6219990000000014";
const BANK_PASSWORD: &str = "Sandbox#2026";

async fn no_pii_in_logs(backend: Backend) {
    let logs = CapturedLogs::default();
    // Our crates at the most verbose level, everything else as shipped.
    let _guard = tracing::subscriber::set_default(subscriber(&logs, "info,sqlx=warn,paybridge_http=trace,paybridge_adapters=trace,paybridge_wallet=trace,paybridge_issuer=trace,paybridge_store=trace,paybridge_client=trace"));
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let client = reqwest::Client::new();
    let mut request_ids = Vec::new();

    let body = json!({"phone": PHONE, "body": format!("Your code is {OTP}; card {PAN}")});
    let resp = client
        .post(format!("{}/v1/sandbox/sms", app.base_url))
        .header("idempotency-key", "pii-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    request_ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());

    let resp = client
        .get(format!("{}/v1/sandbox/sms?phone={PHONE}", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    request_ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());
    assert!(
        resp.text().await.unwrap().contains(OTP),
        "the sandbox inbox shows the message"
    );

    // Refused bodies carrying the secrets in wrong places.
    for bad in [
        json!({"phone": PAN, "body": OTP}),
        json!({"phone": PHONE, "body": OTP, "pan": PAN}),
        json!({"phone": [PHONE], "body": OTP}),
    ] {
        let resp = client
            .post(format!("{}/v1/sandbox/sms", app.base_url))
            .header("idempotency-key", format!("pii-{}", rand_key()))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422);
        request_ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains(PAN) && !text.contains(PHONE) && !text.contains(OTP),
            "error bodies echo nothing: {text}"
        );
    }
    // A partner call with the secrets in the body and a bad signature.
    let resp = client
        .post(format!("{}/v1/partner/events?phone={PHONE}", app.base_url))
        .header("authorization", format!("PAYBRIDGE-ED25519 partner=\"demo-bank\",to=\"wallet\",key_id=\"x\",timestamp=\"1\",nonce=\"{OTP}{OTP}{OTP}\",signature=\"{PAN}\""))
        .json(&json!({"pan": PAN}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    request_ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());

    // Accounts, sessions, the payment password, the identity, the bank app:
    // passwords, PINs, ID numbers, tokens and the seeded PANs stay out too.
    let (s, _) = app
        .register_account(json!({"phone": PHONE, "password": LOGIN_PASSWORD}))
        .await;
    assert_eq!(s, 201);
    let (s, _) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": PHONE, "password": "wrong horse 9"})),
        )
        .await;
    assert_eq!(s, 401);
    let (_, session) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": PHONE, "password": LOGIN_PASSWORD})),
        )
        .await;
    let token = session["token"].as_str().unwrap().to_owned();
    for (path, body) in [
        ("/v1/me/payment-password", json!({"new_password": PIN})),
        (
            "/v1/me/payment-password/verify",
            json!({"password": "000001"}),
        ),
        (
            "/v1/me/identity",
            json!({"name": "张三", "id_number": ID_NUMBER}),
        ),
        (
            "/v1/me/identity",
            json!({"name": "张三", "id_number": "110105199003071238"}),
        ),
    ] {
        app.call("POST", path, Some(&token), Some(body)).await;
    }
    let (s, bank) = app
        .call(
            "POST",
            "/bank/v1/app/sessions",
            None,
            Some(json!({"username": "zhang.san", "password": BANK_PASSWORD})),
        )
        .await;
    assert_eq!(s, 201);
    let bank_token = bank["token"].as_str().unwrap().to_owned();
    let (s, _) = app
        .call("GET", "/bank/v1/app/cards", Some(&bank_token), None)
        .await;
    assert_eq!(s, 200);

    app.stop().await;
    let text = logs.text();
    for secret in [
        LOGIN_PASSWORD,
        PIN,
        ID_NUMBER,
        SEEDED_PAN,
        BANK_PASSWORD,
        &token,
        &bank_token,
    ] {
        assert!(!text.contains(secret), "{secret} leaked into the logs");
    }
    for id in &request_ids {
        assert!(text.contains(id.as_str()), "request {id} was logged");
    }
    for secret in [PAN, PHONE, OTP] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the logs:\n{text}"
        );
    }
}

fn rand_key() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite_no_pii_in_logs() {
    no_pii_in_logs(Backend::Sqlite).await;
}

#[tokio::test(flavor = "current_thread")]
async fn postgres_no_pii_in_logs() {
    no_pii_in_logs(Backend::Postgres).await;
}
