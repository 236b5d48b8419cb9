//! The merchant API over real HTTP on both stores: API keys (shown once,
//! prefix only afterwards, revocable), orders (create idempotently by
//! reference, read, cancel, expire) and their bad inputs.

use paybridge_testkit::code;
use paybridge_testkit::{app_tests, TestApp};
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use serde_json::{json, Value};
use time::Duration;

app_tests!(
    the_sandbox_merchant_creates_reads_and_cancels_orders,
    orders_are_idempotent_by_reference_and_private_to_their_merchant,
    orders_expire_and_bad_orders_are_refused,
    api_keys_are_shown_once_and_revocable,
    a_saved_idempotent_answer_keeps_no_secret_in_clear,
);

fn order(reference: &str, amount: i64) -> Value {
    json!({"amount": {"amount": amount, "currency": "CNY"}, "description": "2 coffees", "reference": reference})
}

async fn the_sandbox_merchant_creates_reads_and_cancels_orders(app: &TestApp) {
    let key = SANDBOX_MERCHANT_KEY;
    let (s, o) = app
        .call(
            "POST",
            "/v1/orders",
            Some(key),
            Some(order("cart-1", 2_400)),
        )
        .await;
    assert_eq!(s, 201, "{o}");
    assert!(o["id"].as_str().unwrap().starts_with("ord_"));
    assert_eq!(o["state"], "open");
    assert_eq!(o["amount"], json!({"amount": 2400, "currency": "CNY"}));
    assert_eq!(o["refunded"]["amount"], 0);
    let id = o["id"].as_str().unwrap();
    let (s, again) = app
        .call("GET", &format!("/v1/orders/{id}"), Some(key), None)
        .await;
    assert_eq!((s, again["id"].as_str()), (200, Some(id)));
    let (s, c) = app
        .call("POST", &format!("/v1/orders/{id}/cancel"), Some(key), None)
        .await;
    assert_eq!((s, c["state"].as_str()), (200, Some("cancelled")));
    // Cancelling again changes nothing.
    let (s, c) = app
        .call("POST", &format!("/v1/orders/{id}/cancel"), Some(key), None)
        .await;
    assert_eq!((s, c["state"].as_str()), (200, Some("cancelled")));
    // Without a key, or with junk: refused alike.
    for bad in [None, Some("sk_test_nonsense"), Some("pbs_aaaa")] {
        let (s, e) = app
            .call("GET", &format!("/v1/orders/{id}"), bad, None)
            .await;
        assert_eq!((s, code(&e)), (401, "api_key_invalid"), "{bad:?}");
    }
}

async fn orders_are_idempotent_by_reference_and_private_to_their_merchant(app: &TestApp) {
    let key = SANDBOX_MERCHANT_KEY;
    let (_, first) = app
        .call("POST", "/v1/orders", Some(key), Some(order("cart-2", 990)))
        .await;
    let (s, second) = app
        .call("POST", "/v1/orders", Some(key), Some(order("cart-2", 990)))
        .await;
    assert_eq!(
        (s, second["id"].clone()),
        (201, first["id"].clone()),
        "a retry by reference"
    );
    let (s, e) = app
        .call("POST", "/v1/orders", Some(key), Some(order("cart-2", 991)))
        .await;
    assert_eq!((s, code(&e)), (409, "order_reference_reused"));

    // Another merchant sees none of it.
    let (other, other_key) = app.wallet.create_merchant("Other Shop").await.unwrap();
    assert!(other.id.as_str().starts_with("mer_"));
    let id = first["id"].as_str().unwrap();
    for (method, path) in [
        ("GET", format!("/v1/orders/{id}")),
        ("POST", format!("/v1/orders/{id}/cancel")),
    ] {
        let (s, e) = app
            .call(method, &path, Some(other_key.expose()), None)
            .await;
        assert_eq!((s, code(&e)), (404, "not_found"), "{method} {path}");
    }
    // The same reference is free for the other merchant.
    let (s, _) = app
        .call(
            "POST",
            "/v1/orders",
            Some(other_key.expose()),
            Some(order("cart-2", 5)),
        )
        .await;
    assert_eq!(s, 201);
}

async fn orders_expire_and_bad_orders_are_refused(app: &TestApp) {
    let key = SANDBOX_MERCHANT_KEY;
    let mut short = order("cart-3", 100);
    short["expires_in_secs"] = json!(60);
    let (_, o) = app.call("POST", "/v1/orders", Some(key), Some(short)).await;
    let id = o["id"].as_str().unwrap();
    app.clock.advance(Duration::seconds(60));
    let (_, o) = app
        .call("GET", &format!("/v1/orders/{id}"), Some(key), None)
        .await;
    assert_eq!(o["state"], "expired");
    let (s, e) = app
        .call("POST", &format!("/v1/orders/{id}/cancel"), Some(key), None)
        .await;
    assert_eq!((s, code(&e)), (409, "order_not_payable"));

    let mut bad_ttl = order("cart-4", 100);
    bad_ttl["expires_in_secs"] = json!(10);
    for (body, why) in [
        (order("cart-5", 0), "zero amount"),
        (order("cart-6", -5), "negative amount"),
        (
            json!({"amount": {"amount": 100, "currency": "XXX"}, "description": "x", "reference": "r"}),
            "currency",
        ),
        (
            json!({"amount": {"amount": 100, "currency": "CNY"}, "description": "", "reference": "r"}),
            "description",
        ),
        (order("", 100), "reference"),
        (bad_ttl, "expiry"),
        (
            json!({"amount": {"amount": 100, "currency": "CNY"}, "description": "x", "reference": "r", "merchant": "mer_x"}),
            "unknown field",
        ),
    ] {
        let (s, e) = app.call("POST", "/v1/orders", Some(key), Some(body)).await;
        assert_eq!((s, code(&e)), (422, "invalid_request"), "{why}: {e}");
    }
    let (s, _) = app
        .call("GET", "/v1/orders/ord_nonsense", Some(key), None)
        .await;
    assert_eq!(s, 404);
}

async fn api_keys_are_shown_once_and_revocable(app: &TestApp) {
    let key = SANDBOX_MERCHANT_KEY;
    let (s, created) = app.call("POST", "/v1/api-keys", Some(key), None).await;
    assert_eq!(s, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk_test_") && secret.len() == 40);
    assert_eq!(created["key"]["prefix"], &secret[..12]);
    let (_, list) = app.call("GET", "/v1/api-keys", Some(&secret), None).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    assert!(
        !list.to_string().contains(&secret),
        "the secret is never shown again"
    );
    // Stored only as a keyed hash.
    let stored = app
        .wallet
        .store
        .api_keys_of(
            &app.wallet
                .authenticate_merchant(&secret)
                .await
                .unwrap()
                .merchant_id,
        )
        .await
        .unwrap();
    assert!(stored.iter().all(|k| !k.key_hash.contains(&secret[8..])));

    let id = created["key"]["id"].as_str().unwrap();
    assert_eq!(
        app.call("DELETE", &format!("/v1/api-keys/{id}"), Some(key), None)
            .await
            .0,
        204
    );
    let (s, e) = app.call("GET", "/v1/api-keys", Some(&secret), None).await;
    assert_eq!((s, code(&e)), (401, "api_key_invalid"));
    assert_eq!(
        app.call("DELETE", &format!("/v1/api-keys/{id}"), Some(key), None)
            .await
            .0,
        404
    );
    // Another merchant's key cannot be revoked by this one.
    let (_, other_key) = app.wallet.create_merchant("Other Shop").await.unwrap();
    let (_, other_list) = app
        .call("GET", "/v1/api-keys", Some(other_key.expose()), None)
        .await;
    let other_id = other_list["keys"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/v1/api-keys/{other_id}"),
            Some(key),
            None
        )
        .await
        .0,
        404
    );
}

async fn a_saved_idempotent_answer_keeps_no_secret_in_clear(app: &TestApp) {
    let create = || async {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/api-keys", app.base_url))
            .bearer_auth(SANDBOX_MERCHANT_KEY)
            .header("idempotency-key", "new-key-1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json::<Value>().await.unwrap()
    };
    let first = create().await;
    let secret = first["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk_"));
    let merchant = app
        .wallet
        .authenticate_merchant(SANDBOX_MERCHANT_KEY)
        .await
        .unwrap()
        .merchant_id;
    let saved = app
        .wallet
        .store
        .idempotency_saved(&format!("merchant:{merchant}|/v1/api-keys"), "new-key-1")
        .await
        .unwrap()
        .expect("the answer is saved");
    let stored = String::from_utf8_lossy(&saved.body);
    assert!(
        !stored.contains(&secret),
        "the secret is not stored in clear"
    );
    assert!(stored.starts_with("pb1."), "sealed: {stored}");
    // The retry still gets the same answer, secret included.
    let again = create().await;
    assert_eq!(again["secret"], secret.as_str());
    assert_eq!(again["key"]["id"], first["key"]["id"]);
}
