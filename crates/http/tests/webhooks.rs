//! Merchant webhooks over real HTTP on both stores: every order state change
//! is posted to the merchant's endpoint, signed Stripe-style; failures are
//! retried and listed; a delivery can be sent again.

use paybridge_testkit::code;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use paybridge_crypto::webhook::verify;
use paybridge_domain::clock::is_rfc3339;
use paybridge_testkit::{app_tests, TestApp};
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use serde_json::{json, Value};

app_tests!(
    order_changes_reach_the_endpoint_signed,
    failed_deliveries_are_listed_retried_and_can_be_resent,
    webhook_endpoints_are_checked,
    outside_the_sandbox_a_webhook_goes_only_to_a_public_https_endpoint,
    a_slow_endpoint_does_not_hold_up_other_merchants_deliveries,
);

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    status: Arc<AtomicU16>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.got.lock().unwrap().push((headers, body));
    StatusCode::from_u16(r.status.load(Ordering::SeqCst)).unwrap()
}

/// A merchant's endpoint on port 0; answers `status`.
async fn endpoint(status: u16) -> (String, Receiver) {
    let r = Receiver::default();
    r.status.store(status, Ordering::SeqCst);
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, r)
}

/// Runs the dispatcher until the merchant's deliveries settle (the app's own
/// dispatcher runs too, so either may deliver).
async fn settle(app: &TestApp, want: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        app.wallet.dispatcher.run_once().await.unwrap();
        let (_, list) = app
            .call(
                "GET",
                "/v1/webhook-deliveries",
                Some(SANDBOX_MERCHANT_KEY),
                None,
            )
            .await;
        if want(&list) {
            return list;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("deliveries did not settle");
}

async fn set_endpoint(app: &TestApp, url: &str) -> String {
    let (s, v) = app
        .call(
            "PUT",
            "/v1/webhook-endpoint",
            Some(SANDBOX_MERCHANT_KEY),
            Some(json!({"url": url})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["secret"].as_str().unwrap().to_owned()
}

async fn create_order(app: &TestApp, reference: &str) -> String {
    let body = json!({"amount": {"amount": 1200, "currency": "CNY"}, "description": "tea", "reference": reference});
    let (s, o) = app
        .call("POST", "/v1/orders", Some(SANDBOX_MERCHANT_KEY), Some(body))
        .await;
    assert_eq!(s, 201, "{o}");
    o["id"].as_str().unwrap().to_owned()
}

async fn order_changes_reach_the_endpoint_signed(app: &TestApp) {
    let (url, receiver) = endpoint(200).await;
    let secret = set_endpoint(app, &url).await;
    assert!(secret.starts_with("whsec_"));
    let id = create_order(app, "w-1").await;
    app.call(
        "POST",
        &format!("/v1/orders/{id}/cancel"),
        Some(SANDBOX_MERCHANT_KEY),
        None,
    )
    .await;
    settle(app, |l| {
        let d = l["deliveries"].as_array().unwrap();
        d.len() == 2 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;

    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let now = app.clock_now().unix_timestamp();
    let mut types = Vec::new();
    for (headers, body) in &got {
        let signature = headers["paybridge-signature"].to_str().unwrap();
        assert!(
            verify(&secret, signature, body, now),
            "signed with the endpoint's secret"
        );
        assert!(!verify("whsec_other", signature, body, now));
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            headers["paybridge-event-id"].to_str().unwrap(),
            v["id"].as_str().unwrap()
        );
        assert_eq!(v["data"]["order_id"], id.as_str());
        let created = v["created"].as_str().expect("created is a time");
        assert!(is_rfc3339(created), "created is RFC 3339: {created}");
        types.push(v["type"].as_str().unwrap().to_owned());
    }
    types.sort();
    assert_eq!(types, vec!["order.cancelled", "order.created"]);
    let (_, list) = app
        .call(
            "GET",
            "/v1/webhook-deliveries",
            Some(SANDBOX_MERCHANT_KEY),
            None,
        )
        .await;
    assert!(list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "delivered"));
}

async fn failed_deliveries_are_listed_retried_and_can_be_resent(app: &TestApp) {
    let (url, receiver) = endpoint(500).await;
    set_endpoint(app, &url).await;
    create_order(app, "w-2").await;
    settle(app, |l| l["deliveries"][0]["attempts"].as_i64() >= Some(1)).await;
    let (_, list) = app
        .call(
            "GET",
            "/v1/webhook-deliveries",
            Some(SANDBOX_MERCHANT_KEY),
            None,
        )
        .await;
    let d = &list["deliveries"][0];
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("pending"), Some(1)),
        "{list}"
    );
    assert!(d["last_error"].as_str().unwrap().contains("500"), "{d}");
    assert!(d["next_attempt_at"].is_string());
    let event_id = d["event_id"].as_str().unwrap().to_owned();

    // The endpoint is fixed; the merchant sends it again at once.
    receiver.status.store(200, Ordering::SeqCst);
    let (s, _) = app
        .call(
            "POST",
            &format!("/v1/webhook-deliveries/{event_id}/resend"),
            Some(SANDBOX_MERCHANT_KEY),
            None,
        )
        .await;
    assert_eq!(s, 202);
    settle(app, |l| l["deliveries"][0]["status"] == "delivered").await;
    let (_, list) = app
        .call(
            "GET",
            "/v1/webhook-deliveries",
            Some(SANDBOX_MERCHANT_KEY),
            None,
        )
        .await;
    assert_eq!(list["deliveries"][0]["status"], "delivered");
    assert_eq!(
        receiver.got.lock().unwrap().len(),
        2,
        "the failed try and the resent one"
    );
    // A delivered event can be sent again too (same event id: receivers de-duplicate).
    app.call(
        "POST",
        &format!("/v1/webhook-deliveries/{event_id}/resend"),
        Some(SANDBOX_MERCHANT_KEY),
        None,
    )
    .await;
    for _ in 0..100 {
        app.wallet.dispatcher.run_once().await.unwrap();
        if receiver.got.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[1].0["paybridge-event-id"],
        got[2].0["paybridge-event-id"]
    );
    // Another merchant cannot touch it.
    let (_, other) = app.wallet.create_merchant("Other Shop").await.unwrap();
    let (s, e) = app
        .call(
            "POST",
            &format!("/v1/webhook-deliveries/{event_id}/resend"),
            Some(other.expose()),
            None,
        )
        .await;
    assert_eq!((s, code(&e)), (404, "not_found"));
    let (_, theirs) = app
        .call("GET", "/v1/webhook-deliveries", Some(other.expose()), None)
        .await;
    assert_eq!(theirs["deliveries"].as_array().unwrap().len(), 0);
}

async fn webhook_endpoints_are_checked(app: &TestApp) {
    for bad in ["ftp://x/y", "not a url", "http://"] {
        let (s, e) = app
            .call(
                "PUT",
                "/v1/webhook-endpoint",
                Some(SANDBOX_MERCHANT_KEY),
                Some(json!({"url": bad})),
            )
            .await;
        assert_eq!((s, code(&e)), (422, "invalid_request"), "{bad}");
    }
    // A new secret replaces the old one.
    let first = set_endpoint(app, "https://shop.example/hooks").await;
    let second = set_endpoint(app, "https://shop.example/hooks").await;
    assert_ne!(first, second);
}

async fn outside_the_sandbox_a_webhook_goes_only_to_a_public_https_endpoint(app: &TestApp) {
    use paybridge_adapters::dispatcher::WebhookGateway;
    use paybridge_wallet::webhook_guard::EndpointPolicy;
    let mut strict = app.wallet.clone();
    strict.webhook_policy = EndpointPolicy::PUBLIC_HTTPS;
    let merchant = app
        .wallet
        .authenticate_merchant(SANDBOX_MERCHANT_KEY)
        .await
        .unwrap()
        .merchant_id;
    for bad in [
        "http://shop.example/hooks",
        "https://127.0.0.1:8443/hooks",
        "https://localhost/hooks",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/hooks",
        "https://100.64.1.1/hooks",
        "https://[::1]/hooks",
        "https://[::ffff:192.168.0.1]/hooks",
        "https://0.0.0.0/hooks",
    ] {
        let e = strict
            .set_webhook_endpoint(&merchant, bad)
            .await
            .unwrap_err();
        assert_eq!(e.code().as_str(), "invalid_request", "{bad}");
    }
    assert!(strict
        .set_webhook_endpoint(&merchant, "https://shop.example/hooks")
        .await
        .is_ok());

    // An endpoint stored under the sandbox's looser policy is not called
    // under a strict one, and the merchant is told why in plain words.
    let (url, receiver) = endpoint(200).await;
    set_endpoint(app, &url).await;
    let id = create_order(app, "w-ssrf").await;
    let event = app
        .wallet
        .store
        .outbox_events_for(
            &paybridge_domain::event::Destination::Merchant(merchant.clone()),
            0,
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.payload["order_id"] == id.as_str() || e.payload["id"] == id.as_str())
        .expect("the order's event");
    let gateway = paybridge_wallet::webhooks::MerchantWebhooks::new(
        app.wallet.store.clone(),
        app.wallet.vault.clone(),
        app.wallet.clock.clone(),
        EndpointPolicy::PUBLIC_HTTPS,
    );
    let e = gateway
        .deliver_webhook(&merchant, &event)
        .await
        .unwrap_err();
    assert!(!e.transient);
    assert!(e.message.contains("not allowed"), "{}", e.message);
    assert!(
        receiver.got.lock().unwrap().is_empty(),
        "nothing was posted"
    );
}

/// An endpoint that holds every request until the test lets it go.
async fn stalled_endpoint() -> (String, Arc<tokio::sync::Semaphore>, Receiver) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let r = Receiver::default();
    r.status.store(200, Ordering::SeqCst);
    let (g, rec) = (gate.clone(), r.clone());
    let app = Router::new().route(
        "/hooks",
        post(move |headers: HeaderMap, body: Bytes| {
            let (g, rec) = (g.clone(), rec.clone());
            async move {
                rec.got.lock().unwrap().push((headers, body));
                g.acquire().await.unwrap().forget();
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, gate, r)
}

/// Attack (or bad luck): one merchant's endpoint answers slowly (here: not
/// until told to), and every other merchant's webhooks wait behind it.
async fn a_slow_endpoint_does_not_hold_up_other_merchants_deliveries(app: &TestApp) {
    let (slow_url, gate, slow) = stalled_endpoint().await;
    set_endpoint(app, &slow_url).await;
    let (_, other_key) = app.wallet.create_merchant("Other Shop").await.unwrap();
    let (fast_url, fast) = endpoint(200).await;
    let (s, v) = app
        .call(
            "PUT",
            "/v1/webhook-endpoint",
            Some(other_key.expose()),
            Some(json!({ "url": fast_url })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The slow merchant's first event is taken and hangs in its endpoint.
    create_order(app, "slow-1").await;
    app.wallet.dispatcher.wake();
    for _ in 0..200 {
        if !slow.got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        slow.got.lock().unwrap().len(),
        1,
        "the slow endpoint got its call"
    );
    // More for it, and one for the other merchant: the other's arrives
    // while the slow endpoint still holds its first request.
    create_order(app, "slow-2").await;
    let body = json!({"amount": {"amount": 900, "currency": "CNY"}, "description": "cake", "reference": "fast-1"});
    let (s, _) = app
        .call("POST", "/v1/orders", Some(other_key.expose()), Some(body))
        .await;
    assert_eq!(s, 201);
    // The server's own dispatcher loop delivers (no help from the test).
    for _ in 0..200 {
        app.wallet.dispatcher.wake();
        if !fast.got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        fast.got.lock().unwrap().len(),
        1,
        "the other merchant was not held up"
    );
    assert_eq!(
        slow.got.lock().unwrap().len(),
        1,
        "a busy endpoint gets one request at a time"
    );
    // Let the slow endpoint go: its queue drains, in its own lane.
    gate.add_permits(100);
    settle(app, |l| {
        let d = l["deliveries"].as_array().unwrap();
        d.len() == 2 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(slow.got.lock().unwrap().len(), 2);
}
