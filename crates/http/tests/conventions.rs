//! API conventions over real HTTP, on both stores: health and readiness,
//! the OpenAPI document, request ids, the error envelope for every kind of
//! bad input, and idempotency on a public creating POST.

use paybridge_testkit::code;
use paybridge_testkit::{app_tests, TestApp};
use serde_json::{json, Value};

app_tests!(
    health_and_readiness_answer,
    the_openapi_document_lists_every_route_and_every_listed_route_is_served,
    the_openapi_document_lists_the_values_of_every_state,
    the_openapi_document_lists_the_answers_every_layer_can_give,
    inputs_an_api_fuzzer_found_are_refused_or_bounded,
    request_ids_are_generated_or_propagated,
    bad_input_gets_an_enveloped_4xx,
    sandbox_sms_send_is_idempotent_and_readable,
    metrics_count_requests_by_route,
);

async fn get(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = reqwest::get(format!("{}{path}", app.base_url))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

async fn health_and_readiness_answer(app: &TestApp) {
    let (s, _, v) = get(app, "/healthz").await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    assert_eq!(v["roles"], json!(["wallet", "issuer"]));
    let (s, _, v) = get(app, "/readyz").await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ready")));
    assert_eq!(v["checks"].as_array().unwrap().len(), 2);
}

async fn the_openapi_document_lists_every_route_and_every_listed_route_is_served(app: &TestApp) {
    let (s, _, doc) = get(app, "/openapi.json").await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/v1/partner/ping", "get"),
        ("/v1/partner/events", "post"),
        ("/bank/v1/partner/ping", "get"),
        ("/bank/v1/partner/events", "post"),
        ("/v1/sandbox/sms", "get"),
        ("/v1/sandbox/sms", "post"),
        ("/v1/sandbox/push-relay", "get"),
        ("/v1/accounts", "post"),
        ("/v1/accounts/confirmation", "post"),
        ("/v1/sessions", "post"),
        ("/v1/sessions/current", "delete"),
        ("/v1/me", "get"),
        ("/v1/me/payment-password", "post"),
        ("/v1/me/payment-password/verify", "post"),
        ("/v1/me/identity", "post"),
        ("/v1/devices", "post"),
        ("/v1/devices", "get"),
        ("/v1/devices/{device_id}", "get"),
        ("/v1/devices/{device_id}", "patch"),
        ("/v1/devices/{device_id}", "delete"),
        ("/v1/devices/{device_id}/credential/registrations", "post"),
        (
            "/v1/devices/{device_id}/credential/registrations/{ceremony_id}",
            "post",
        ),
        ("/v1/devices/{device_id}/credential/assertions", "post"),
        (
            "/v1/devices/{device_id}/credential/assertions/{ceremony_id}",
            "post",
        ),
        ("/v1/devices/{device_id}/events", "get"),
        ("/bank/v1/app/sessions", "post"),
        ("/bank/v1/app/sessions/current", "delete"),
        ("/bank/v1/app/me", "get"),
        ("/bank/v1/app/cards", "get"),
        ("/bank/v1/app/cards/{card_id}", "get"),
        ("/bank/v1/app/cards/{card_id}/wallet-bindings", "post"),
        ("/bank/v1/app/bindings", "get"),
        ("/bank/v1/app/bindings/{agreement_id}", "delete"),
        ("/v1/partner/binding-addresses", "post"),
        ("/v1/partner/binding-requests", "post"),
        ("/bank/v1/partner/bindings/activations", "post"),
        ("/v1/bindings/claims", "post"),
        ("/v1/bindings/{binding_id}/claim", "post"),
        ("/v1/bindings/{binding_id}/confirmation", "post"),
        ("/v1/bindings/{binding_id}/completion", "post"),
        ("/v1/bindings", "get"),
        ("/v1/bindings/{binding_id}", "get"),
        ("/v1/bindings/{binding_id}", "delete"),
        ("/v1/partner/account-lookups", "post"),
        ("/v1/partner/account-registrations", "post"),
        ("/v1/partner/bindings/{binding_id}/agreement", "post"),
        ("/v1/security-authentications", "post"),
        ("/v1/security-authentications/{auth_id}/otp", "post"),
        ("/v1/security-authentications/{auth_id}/identity", "post"),
        ("/v1/security-authentications/{auth_id}/passwords", "post"),
        ("/bank/v1/app/cards/{card_id}/wallet-registrations", "post"),
        ("/v1/orders", "post"),
        ("/v1/orders/{order_id}", "get"),
        ("/v1/orders/{order_id}/cancel", "post"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys/{key_id}", "delete"),
        ("/v1/webhook-endpoint", "put"),
        ("/v1/webhook-deliveries", "get"),
        ("/v1/webhook-deliveries/{event_id}/resend", "post"),
        ("/v1/orders/{order_id}/payments", "post"),
        ("/v1/orders/{order_id}/refunds", "post"),
        ("/v1/orders/{order_id}/refunds", "get"),
        ("/bank/v1/partner/refunds", "post"),
        ("/v1/payment-requests", "post"),
        ("/v1/payment-requests/{payment_id}", "get"),
        ("/v1/payment-requests/{payment_id}/gestures", "post"),
        (
            "/v1/payment-requests/{payment_id}/approval-challenges",
            "post",
        ),
        ("/v1/payment-requests/{payment_id}/approvals", "post"),
        ("/v1/payment-requests/{payment_id}/decline", "post"),
        ("/v1/payment-scans", "post"),
        ("/v1/relay/gestures", "post"),
        ("/v1/sandbox/push-relay/gestures", "post"),
        ("/v1/device-pairings", "post"),
        ("/v1/device-pairings/{pairing_id}/session", "post"),
        ("/v1/device-pairings/claims", "post"),
        ("/v1/device-pairings/{pairing_id}", "get"),
        (
            "/v1/device-pairings/{pairing_id}/approval-challenges",
            "post",
        ),
        ("/v1/device-pairings/{pairing_id}/approval", "post"),
        ("/v1/device-pairings/{pairing_id}/denial", "post"),
        ("/v1/transfer-agreements", "get"),
        ("/v1/transfer-agreements/{agreement_id}", "get"),
        ("/v1/transfer-agreements/{agreement_id}", "patch"),
        ("/v1/transfer-agreements/{agreement_id}/suspend", "post"),
        ("/v1/transfer-agreements/{agreement_id}/resume", "post"),
        ("/v1/transfer-agreements/{agreement_id}/revoke", "post"),
        ("/v1/device-agreement", "get"),
        ("/v1/device-agreement/unpair", "post"),
        ("/v1/transfer-payments", "post"),
        ("/v1/transfer-payments/{transfer_payment_id}", "get"),
        (
            "/v1/transfer-payments/{transfer_payment_id}/confirmation",
            "post",
        ),
        (
            "/v1/transfer-payments/{transfer_payment_id}/approval-challenges",
            "post",
        ),
        (
            "/v1/transfer-payments/{transfer_payment_id}/execution",
            "post",
        ),
        (
            "/v1/transfer-payments/{transfer_payment_id}/completion",
            "post",
        ),
        ("/v1/wallet-keys", "get"),
        ("/v1/secure-element-key", "post"),
        ("/v1/card-products", "get"),
        ("/v1/card-applications", "post"),
        ("/v1/card-applications/{application_id}", "get"),
        ("/v1/card-applications/{application_id}/otp", "post"),
        ("/v1/card-applications/{application_id}/photos", "post"),
        ("/v1/card-applications/{application_id}/video", "post"),
        ("/v1/card-applications/{application_id}/resume", "post"),
        ("/v1/card-tokens", "get"),
        ("/v1/card-tokens/{token_id}", "get"),
        ("/v1/card-tokens/{token_id}/provisioning", "get"),
        ("/v1/card-tokens/{token_id}/installed", "post"),
        ("/v1/card-tokens/{token_id}/suspend", "post"),
        ("/v1/card-tokens/{token_id}/resume", "post"),
        ("/v1/card-tokens/{token_id}/delete", "post"),
        ("/bank/v1/partner/card-products", "get"),
        ("/bank/v1/partner/card-applications", "post"),
        (
            "/bank/v1/partner/card-applications/{application_id}/resubmissions",
            "post",
        ),
        ("/bank/v1/app/cards/{card_id}/tokens", "get"),
        ("/bank/v1/app/tokens/{token_id}/suspend", "post"),
        ("/bank/v1/app/tokens/{token_id}/resume", "post"),
        ("/bank/v1/app/tokens/{token_id}/delete", "post"),
        ("/bank/v1/partner/debits", "post"),
        ("/bank/v1/partner/debits", "get"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is documented"
        );
    }
    // Every documented operation is routed: the router answers anything but
    // `route_not_found` / `method_not_allowed` for it.
    let client = reqwest::Client::new();
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let resp = client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{path}", app.base_url),
                )
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert!(
                !matches!(code(&body), "route_not_found" | "method_not_allowed"),
                "{method} {path} is documented but not served ({status})"
            );
        }
    }
    assert_eq!(
        operations,
        expected.len(),
        "every route is in the document, and only those"
    );
    let mut ids = std::collections::HashSet::new();
    for item in paths.values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"]
                .as_str()
                .expect("every operation has an id");
            assert!(ids.insert(id.to_owned()), "operationId {id} is not unique");
        }
    }
    for schema in [
        "ErrorBody",
        "PartnerEvent",
        "PartnerPing",
        "Health",
        "SmsList",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema}"
        );
    }
    assert!(doc["components"]["securitySchemes"]
        .get("partner_signature")
        .is_some());
}

/// A state, kind or method on the wire is one of fixed names, and the
/// document says which (so generated clients get enums, not free text).
async fn the_openapi_document_lists_the_values_of_every_state(app: &TestApp) {
    let (_, _, doc) = get(app, "/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    let values = |schema: &str, field: &str| -> Vec<String> {
        let p = &schemas[schema]["properties"][field];
        let list = p["enum"].as_array().or(p["items"]["enum"].as_array());
        list.unwrap_or_else(|| panic!("{schema}.{field} lists no values: {p}"))
            .iter()
            .map(|v| v.as_str().unwrap_or("null").to_owned())
            .collect()
    };
    assert_eq!(
        values("OrderBody", "state"),
        [
            "open",
            "paying",
            "paid",
            "partially_refunded",
            "refunded",
            "expired",
            "cancelled"
        ]
    );
    assert_eq!(
        values("PaymentRequestBody", "approved_with"),
        ["payment_password", "webauthn", "null"]
    );
    assert_eq!(
        values("DeviceBody", "type"),
        ["phone", "pc", "tv", "car", "iot"]
    );
    assert_eq!(
        values("SecurityAuthBody", "conditions"),
        [
            "partner_registered",
            "new_device",
            "sensitive_operation",
            "passwords_locked"
        ]
    );
    for (schema, field) in [
        ("AccountBody", "status"),
        ("SecurityAuthBody", "state"),
        ("PaymentRequestBody", "state"),
        ("PaymentRequestBody", "open_with"),
        ("GestureBody", "gesture"),
        ("GestureBody", "route"),
        ("PaymentDevice", "type"),
        ("CardBody", "type"),
        ("CardBody", "status"),
        ("BankBindingBody", "status"),
        ("BindingBody", "state"),
        ("BindingBody", "failure"),
        ("DeviceBody", "status"),
        ("RefundBody", "state"),
    ] {
        assert!(!values(schema, field).is_empty());
    }
}

/// What a schemathesis run and hand-made inputs found (security issue §8).
async fn inputs_an_api_fuzzer_found_are_refused_or_bounded(app: &TestApp) {
    use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY as KEY;
    // A made-up HTTP method grows no metrics series of its own.
    let client = reqwest::Client::new();
    let odd = reqwest::Method::from_bytes(b"QAMETHOD123").unwrap();
    client
        .request(odd, format!("{}/healthz", app.base_url))
        .send()
        .await
        .unwrap();
    let metrics = client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("QAMETHOD123"),
        "a series per made-up method"
    );
    assert!(metrics.contains("method=\"other\""), "{metrics}");

    // A webhook URL with a line break is refused, not stored.
    for url in [
        "http://127.0.0.1:9/hooks\r\nX-Injected: 1",
        "http://127.0.0.1:9/ho\toks",
    ] {
        let (s, e) = app
            .call(
                "PUT",
                "/v1/webhook-endpoint",
                Some(KEY),
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!((s, code(&e)), (422, "invalid_request"), "{url:?}: {e}");
    }

    // Amounts are bounded per order.
    let order = |amount: i64, reference: &str| json!({"amount": {"amount": amount, "currency": "CNY"}, "description": "x", "reference": reference});
    let (s, e) = app
        .call(
            "POST",
            "/v1/orders",
            Some(KEY),
            Some(order(i64::MAX, "huge")),
        )
        .await;
    assert_eq!((s, code(&e)), (422, "invalid_request"), "{e}");

    // A cancelled order's reference is no retry: it names an order that can
    // never be paid.
    let (s, o) = app
        .call(
            "POST",
            "/v1/orders",
            Some(KEY),
            Some(order(100, "cancel-me")),
        )
        .await;
    assert_eq!(s, 201, "{o}");
    let id = o["id"].as_str().unwrap();
    let (s, _) = app
        .call("POST", &format!("/v1/orders/{id}/cancel"), Some(KEY), None)
        .await;
    assert_eq!(s, 200);
    let (s, again) = app
        .call(
            "POST",
            "/v1/orders",
            Some(KEY),
            Some(order(100, "cancel-me")),
        )
        .await;
    assert_eq!(
        (s, code(&again)),
        (409, "order_reference_reused"),
        "{again}"
    );

    // A negative resume point of a push channel is refused like a huge one.
    let mut phone = app.phone("13700137001");
    phone.register("correct horse 9").await.unwrap();
    let token = phone.log_in("correct horse 9").await.unwrap().token.clone();
    let device = app.device(&token, "phone", "Fuzzed phone").await;
    let on_phone = app.trust_device("13700137001", &device, "0000").await;
    for after in ["-1", "9223372036854775808"] {
        let (s, e) = app
            .call(
                "GET",
                &format!("/v1/devices/{device}/events?after={after}"),
                Some(&on_phone),
                None,
            )
            .await;
        assert_eq!(
            (s, code(&e)),
            (422, "invalid_request"),
            "after={after}: {e}"
        );
    }
}

async fn request_ids_are_generated_or_propagated(app: &TestApp) {
    let (_, headers, _) = get(app, "/healthz").await;
    assert!(headers["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let resp = reqwest::Client::new()
        .get(format!("{}/nope", app.base_url))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["request_id"], "trace-abc-123");
    // An id that is not sane is replaced, not echoed.
    let resp = reqwest::Client::new()
        .get(format!("{}/healthz", app.base_url))
        .header("x-request-id", "x".repeat(200))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
}

async fn bad_input_gets_an_enveloped_4xx(app: &TestApp) {
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.base_url);
    let post = |body: Vec<u8>, content_type: &'static str, key: Option<&'static str>| {
        let mut r = client
            .post(url("/v1/sandbox/sms"))
            .header("content-type", content_type)
            .body(body);
        if let Some(k) = key {
            r = r.header("idempotency-key", k);
        }
        async move {
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let cases: Vec<((u16, Value), u16, &str)> = vec![
        (
            post(b"{\"phone\":".to_vec(), "application/json", Some("k1")).await,
            400,
            "invalid_json",
        ),
        (
            post(
                br#"{"phone":13800138000,"body":"x"}"#.to_vec(),
                "application/json",
                Some("k2"),
            )
            .await,
            422,
            "invalid_request",
        ),
        (
            post(
                br#"{"phone":"13800138000"}"#.to_vec(),
                "application/json",
                Some("k3"),
            )
            .await,
            422,
            "invalid_request",
        ),
        (
            post(
                br#"{"phone":"not-a-phone","body":"x"}"#.to_vec(),
                "application/json",
                Some("k4"),
            )
            .await,
            422,
            "invalid_request",
        ),
        (
            post(
                br#"{"phone":"13800138000","body":"x"}"#.to_vec(),
                "text/plain",
                Some("k5"),
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            post(
                vec![b'x'; paybridge_http::MAX_BODY_BYTES + 1],
                "application/json",
                Some("k6"),
            )
            .await,
            413,
            "body_too_large",
        ),
        (
            post(
                br#"{"phone":"13800138000","body":"x"}"#.to_vec(),
                "application/json",
                None,
            )
            .await,
            400,
            "idempotency_key_missing",
        ),
    ];
    for ((status, body), want_status, want_code) in cases {
        assert_eq!((status, code(&body)), (want_status, want_code), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 5);
    }
    let (s, _, v) = get(app, "/v1/sandbox/sms").await;
    assert_eq!(
        (s, code(&v)),
        (422, "invalid_request"),
        "missing query parameter"
    );
    let (s, _, v) = get(app, "/v1/sandbox/sms?phone=13800138000&limit=1000").await;
    assert_eq!((s, code(&v)), (422, "invalid_request"));
    let (s, _, v) = get(app, "/v1/sandbox/sms?phone=13800138000&limit=abc").await;
    assert_eq!((s, code(&v)), (422, "invalid_request"));
    let (s, _, v) = get(app, "/v1/nothing/here").await;
    assert_eq!((s, code(&v)), (404, "route_not_found"));
    // A body refused before its end closes the connection, and says so: a
    // client must not send its next request on it.
    let resp = client
        .post(url("/v1/sandbox/sms"))
        .header("content-type", "application/json")
        .header("idempotency-key", "k7")
        .body(vec![b'x'; 4 * paybridge_http::MAX_BODY_BYTES])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(resp.headers()["connection"], "close");
    let resp = client.delete(url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(
        code(&resp.json::<Value>().await.unwrap()),
        "method_not_allowed"
    );
    // Nothing was sent by any of the refused requests.
    let (_, _, v) = get(app, "/v1/sandbox/sms?phone=13800138000").await;
    assert_eq!(v["messages"], json!([]));
}

async fn sandbox_sms_send_is_idempotent_and_readable(app: &TestApp) {
    let client = reqwest::Client::new();
    let send = |key: &'static str, body: Value| {
        let req = client
            .post(format!("{}/v1/sandbox/sms", app.base_url))
            .header("idempotency-key", key)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.headers().get("idempotent-replayed").is_some(),
                resp.json::<Value>().await.unwrap(),
            )
        }
    };
    let msg = json!({"phone": "13800138000", "body": "hello"});
    let (s1, replayed1, first) = send("sms-1", msg.clone()).await;
    let (s2, replayed2, second) = send("sms-1", msg.clone()).await;
    assert_eq!((s1, replayed1, s2, replayed2), (201, false, 201, true));
    assert_eq!(first, second);
    let (s3, _, v) = send("sms-1", json!({"phone": "13800138000", "body": "other"})).await;
    assert_eq!((s3, code(&v)), (422, "idempotency_key_reused"));
    let (_, _, inbox) = get(app, "/v1/sandbox/sms?phone=13800138000").await;
    assert_eq!(inbox["messages"].as_array().unwrap().len(), 1, "sent once");
    assert_eq!(inbox["messages"][0]["body"], "hello");
}

async fn metrics_count_requests_by_route(app: &TestApp) {
    get(app, "/healthz").await;
    let text = reqwest::get(format!("{}/metrics", app.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"paybridge_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("paybridge_outbox_pending_events{role=\"wallet\"} 0"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

/// Routes reach the router only through utoipa-axum's `routes!` (and its
/// `nest`), which document each as they add it; a plain `.route(` or a
/// nested service would bypass the document.
#[test]
fn no_route_bypasses_the_openapi_document() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for needle in [".route(", ".route_service(", ".nest_service("] {
                    if text.contains(needle) {
                        offenders.push(format!("{} uses {needle}", path.display()));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}

/// What the layers answer before a handler runs is in the document for
/// every operation: 429 everywhere, 400/413/415/422 where a body is taken,
/// 422 where a query is, 401 where a credential is needed. And a body that is too large, not
/// JSON or of another media type really gets those.
async fn the_openapi_document_lists_the_answers_every_layer_can_give(app: &TestApp) {
    let (_, _, doc) = get(app, "/openapi.json").await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let answers = op["responses"].as_object().unwrap();
            let has = |s: &str| answers.contains_key(s);
            assert!(has("429"), "{method} {path}: 429");
            if op.get("requestBody").is_some() {
                for s in ["400", "413", "415", "422"] {
                    assert!(has(s), "{method} {path}: {s}");
                }
            }
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                assert!(has("401"), "{method} {path}: 401");
            }
            // A query is parsed (unknown or malformed parameters refused)
            // before the handler runs.
            let takes_query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["in"] == "query");
            if takes_query {
                assert!(has("422"), "{method} {path}: 422 for its query");
            }
            // The key's format, as the middleware enforces it, so a client
            // generated from the document sends valid ones.
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("idempotency-key"))
                {
                    let schema = &p["schema"];
                    assert_eq!(
                        (schema["minLength"].as_u64(), schema["maxLength"].as_u64()),
                        (Some(1), Some(255)),
                        "{method} {path}"
                    );
                    assert_eq!(schema["pattern"], "^[!-~]+$", "{method} {path}");
                    assert!(has("400"), "{method} {path}: 400");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 60, "{checked} operations");
    // And the layers do answer so.
    let send = |content_type: &str, body: Vec<u8>| {
        let req = reqwest::Client::new()
            .post(format!("{}/v1/accounts", app.base_url))
            .header("idempotency-key", format!("k-{}", rand::random::<u64>()))
            .header("content-type", content_type.to_owned())
            .body(body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send("application/json", b"{".to_vec()).await, 400);
    assert_eq!(send("text/plain", b"{}".to_vec()).await, 415);
    assert_eq!(send("application/json", b"{}".to_vec()).await, 422);
    assert_eq!(
        send(
            "application/json",
            vec![b' '; paybridge_http::MAX_BODY_BYTES + 1]
        )
        .await,
        413
    );
}
