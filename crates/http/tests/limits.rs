//! Rate limits over real HTTP: a flood from one client IP, or on one
//! credential, is answered `429 rate_limited` with `Retry-After` before any
//! work is done, and other clients are not held up. (In memory: the same
//! on either store, so one store is enough.) And `/metrics` behind a token.

use paybridge_http::{Rate, RateLimitConfig};
use paybridge_store::Backend;
use paybridge_testkit::{code, TestApp, TEST_LOGIN_PASSWORD};

async fn app(limits: RateLimitConfig) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |c| c.rate_limits = limits)
        .await
        .expect("SQLite is always available")
}

#[tokio::test]
async fn a_flood_from_one_client_ip_is_answered_429_with_retry_after() {
    let app = app(RateLimitConfig {
        per_ip: Some(Rate {
            per_second: 1,
            burst: 5,
        }),
        per_credential: None,
    })
    .await;
    for _ in 0..5 {
        assert_eq!(app.call("GET", "/healthz", None, None).await.0, 200);
    }
    let resp = reqwest::get(format!("{}/healthz", app.base_url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "rate_limited");
    app.stop().await;
}

#[tokio::test]
async fn a_flood_on_one_credential_does_not_hold_up_another() {
    let app = app(RateLimitConfig {
        per_ip: None,
        per_credential: Some(Rate {
            per_second: 1,
            burst: 3,
        }),
    })
    .await;
    let mut tokens = Vec::new();
    for number in ["13800138000", "13900139000"] {
        let mut phone = app.phone(number);
        phone.register(TEST_LOGIN_PASSWORD).await.unwrap();
        let session = phone.log_in(TEST_LOGIN_PASSWORD).await.unwrap();
        tokens.push(session.token.clone());
    }
    let (flooder, other) = (&tokens[0], &tokens[1]);
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(app.call("GET", "/v1/me", Some(flooder), None).await.0);
    }
    assert_eq!(answers, vec![200, 200, 200, 429]);
    assert_eq!(app.call("GET", "/v1/me", Some(other), None).await.0, 200);
    // Unauthenticated calls are not this limit's.
    assert_eq!(app.call("GET", "/healthz", None, None).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn metrics_behind_a_token_answer_only_the_scraper_that_sends_it() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.metrics_token = Some(paybridge_crypto::Secret::new("scrape-me-2026".to_owned()))
    })
    .await
    .unwrap();
    let get = |token: Option<&str>| {
        let mut req = reqwest::Client::new().get(format!("{}/metrics", app.base_url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(None).await, 401);
    assert_eq!(get(Some("scrape-me-2025")).await, 401);
    assert_eq!(get(Some("scrape-me-2026")).await, 200);
    app.stop().await;
}
