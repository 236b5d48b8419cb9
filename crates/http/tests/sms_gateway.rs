//! One-time codes through a real SMS provider over HTTP (here a fake one on
//! this machine), as `serve --sms-gateway-url … --sms-gateway-token …` sends
//! them, on both stores: the code reaches the provider with its key, the
//! flow completes with it, nothing goes to the sandbox outbox, and a
//! provider that is down is a 502 (retry later), not a 500.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use paybridge_adapters::sms::HttpSmsConfig;
use paybridge_client::DeviceSigner;
use paybridge_devices::phone::{genuine_android, public_key_of};
use paybridge_store::Backend;
use paybridge_testkit::{code, TestApp, TEST_LOGIN_PASSWORD};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Provider {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    status: Arc<AtomicU16>,
}

async fn accept(
    State(p): State<Provider>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    p.got.lock().unwrap().push((auth, body));
    StatusCode::from_u16(p.status.load(Ordering::SeqCst)).unwrap()
}

impl Provider {
    /// The six-digit code in the newest message the provider was given.
    fn last_code(&self) -> String {
        let got = self.got.lock().unwrap();
        let text = got.last().expect("a message").1["text"]
            .as_str()
            .unwrap()
            .to_owned();
        text.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .expect("a six-digit code")
            .to_owned()
    }
}

async fn provider() -> (String, Provider) {
    let p = Provider::default();
    p.status.store(202, Ordering::SeqCst);
    let app = Router::new()
        .route("/v1/messages", post(accept))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/messages", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, p)
}

const PHONE: &str = "13800138000";

async fn start_auth(app: &TestApp) -> (u16, Value) {
    let device = DeviceSigner::generate();
    let key = public_key_of(&device);
    app.call_on(
        &device,
        "POST",
        "/v1/security-authentications",
        None,
        Some(json!({"phone": PHONE, "environment": genuine_android(),
            "device": {"type": "phone", "name": "New phone", "public_key": key}})),
    )
    .await
}

async fn codes_go_through_the_provider(backend: Backend) {
    let (url, provider) = provider().await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.wallet.as_mut().unwrap().sms_gateway = Some(HttpSmsConfig {
            url: url.parse().unwrap(),
            token: paybridge_crypto::Secret::new("provider-key-1".into()),
        });
    })
    .await
    else {
        return;
    };
    // Opening the account: its code comes through the provider too.
    let (s, started) = app
        .call(
            "POST",
            "/v1/accounts",
            None,
            Some(json!({ "phone": PHONE })),
        )
        .await;
    assert_eq!(s, 202, "{started}");
    let (s, account) = app
        .call(
            "POST",
            "/v1/accounts/confirmation",
            None,
            Some(
                json!({"otp_id": started["otp"]["id"], "code": provider.last_code(),
                "password": TEST_LOGIN_PASSWORD}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{account}");
    let (s, auth) = start_auth(&app).await;
    assert_eq!(s, 201, "{auth}");
    let (authorization, message) = provider.got.lock().unwrap().last().cloned().unwrap();
    assert_eq!(authorization, "Bearer provider-key-1");
    assert_eq!(message["to"], PHONE);
    assert!(message["reference"].as_str().unwrap().starts_with("sms_"));
    let sent = provider.last_code();
    // The code from the provider completes the step; the sandbox outbox is empty.
    let id = auth["id"].as_str().unwrap();
    let (s, v) = app
        .call(
            "POST",
            &format!("/v1/security-authentications/{id}/otp"),
            None,
            Some(json!({ "code": sent })),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("otp_verified")), "{v}");
    let (_, outbox) = app
        .call("GET", &format!("/v1/sandbox/sms?phone={PHONE}"), None, None)
        .await;
    assert_eq!(outbox["messages"].as_array().unwrap().len(), 0, "{outbox}");
    // A provider that is down: the caller gets a 502 to retry later, not a 500.
    provider.status.store(503, Ordering::SeqCst);
    let (s, e) = start_auth(&app).await;
    assert_eq!((s, code(&e)), (502, "partner_unreachable"), "{e}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_codes_go_through_a_real_sms_provider() {
    codes_go_through_the_provider(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_codes_go_through_a_real_sms_provider() {
    codes_go_through_the_provider(Backend::Postgres).await;
}
