//! The signed partner API over real HTTP, on both stores: good calls both
//! ways, and every way a call can be forged, tampered with or replayed.

use paybridge_testkit::code;
use std::sync::Arc;

use paybridge_api::partner::{PartnerEvent, PartnerEventAck, PartnerPing};
use paybridge_client::PartnerError;
use paybridge_crypto::signing::{new_nonce, SignatureError, SignedRequest};
use paybridge_crypto::PartnerKeyPair;
use paybridge_domain::ids::EventId;
use paybridge_domain::partner::PartnerId;
use paybridge_domain::Clock;
use paybridge_testkit::{app_tests, bank_id, wallet_id, TestApp};
use serde_json::{json, Value};

app_tests!(
    signed_ping_works_both_ways,
    a_forged_or_tampered_call_is_refused_and_nothing_is_written,
    a_stale_or_future_timestamp_is_refused,
    timestamps_that_overflow_or_are_spelled_twice_are_refused,
    a_replayed_nonce_is_refused,
    a_response_not_signed_by_the_partner_is_rejected_by_the_client,
    partner_events_are_acknowledged_once,
    malformed_partner_requests_get_4xx_and_nothing_is_written,
    concurrent_duplicate_events_are_recorded_once,
    binding_and_registration_calls_tampered_or_replayed_are_refused,
    the_bank_opens_agreements_only_for_its_own_unexpired_offers,
);

async fn signed_ping_works_both_ways(app: &TestApp) {
    let ping: PartnerPing = app.bank_to_wallet().get("/v1/partner/ping").await.unwrap();
    assert_eq!(
        (
            ping.partner.as_str(),
            ping.role.as_str(),
            ping.caller.as_str()
        ),
        ("wallet", "wallet", "demo-bank")
    );
    // The wallet's own directory client, as the flows use it.
    let bank = app.wallet.issuers.get(&bank_id()).unwrap();
    let ping: PartnerPing = bank.get("/v1/partner/ping").await.unwrap();
    assert_eq!(
        (
            ping.partner.as_str(),
            ping.role.as_str(),
            ping.caller.as_str()
        ),
        ("demo-bank", "issuer", "wallet")
    );
}

fn event_json(id: &EventId) -> Value {
    json!({"id": id.to_string(), "topic": "binding.activated", "occurred_at": "2026-11-23T08:00:00Z", "data": {"binding": "bnd_x"}})
}

/// A signed request as the bank would send it, to be tampered with.
struct Call {
    method: &'static str,
    path: String,
    body: Vec<u8>,
    from: PartnerId,
    to: PartnerId,
    key: Arc<PartnerKeyPair>,
    timestamp: i64,
    nonce: String,
    idempotency_key: String,
}

impl Call {
    fn bank(app: &TestApp, path: &str, body: &Value) -> Call {
        Call {
            method: "POST",
            path: path.into(),
            body: serde_json::to_vec(body).unwrap(),
            from: bank_id(),
            to: wallet_id(),
            key: app.issuer_key.clone(),
            timestamp: app.clock.now().unix_timestamp(),
            nonce: new_nonce(),
            idempotency_key: new_nonce(),
        }
    }

    fn authorization(&self) -> String {
        SignedRequest {
            method: self.method,
            path_and_query: &self.path,
            from: &self.from,
            to: &self.to,
            timestamp: self.timestamp,
            nonce: &self.nonce,
            headers: paybridge_crypto::signing::SignedHeaders {
                content_type: "application/json",
                idempotency_key: &self.idempotency_key,
            },
            body: &self.body,
        }
        .authorization(&self.key)
    }

    /// Sends with the given Authorization header, path and body.
    async fn send_as(
        &self,
        app: &TestApp,
        authorization: Option<&str>,
        path: &str,
        body: &[u8],
    ) -> (u16, Value) {
        self.send_with_key(app, authorization, path, body, &self.idempotency_key)
            .await
    }

    /// Sends with the given Authorization header, path, body and
    /// Idempotency-Key (a man in the middle may change any of them).
    async fn send_with_key(
        &self,
        app: &TestApp,
        authorization: Option<&str>,
        path: &str,
        body: &[u8],
        idempotency_key: &str,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(
                self.method.parse().unwrap(),
                format!("{}{path}", app.base_url),
            )
            .header("content-type", "application/json")
            .header("idempotency-key", idempotency_key)
            .body(body.to_vec());
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        assert!(
            resp.headers().contains_key("paybridge-signature"),
            "every partner answer is signed"
        );
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn send(&self, app: &TestApp) -> (u16, Value) {
        self.send_as(app, Some(&self.authorization()), &self.path, &self.body)
            .await
    }
}

async fn inbox_count(app: &TestApp) -> i64 {
    app.wallet.store.inbox_count(&bank_id()).await.unwrap()
}

async fn a_forged_or_tampered_call_is_refused_and_nothing_is_written(app: &TestApp) {
    let body = event_json(&EventId::generate());
    let good = Call::bank(app, "/v1/partner/events", &body);

    let (s, v) = good.send_as(app, None, &good.path, &good.body).await;
    assert_eq!((s, code(&v)), (401, "signature_missing"));
    let (s, v) = good
        .send_as(
            app,
            Some("PAYBRIDGE-ED25519 partner=\"demo-bank\""),
            &good.path,
            &good.body,
        )
        .await;
    assert_eq!((s, code(&v)), (401, "signature_invalid"));
    let (s, v) = good
        .send_as(app, Some("Bearer abc"), &good.path, &good.body)
        .await;
    assert_eq!((s, code(&v)), (401, "signature_invalid"));

    // Body or path changed after signing.
    let auth = good.authorization();
    let mut other = body.clone();
    other["data"]["binding"] = json!("bnd_y");
    let (s, v) = good
        .send_as(
            app,
            Some(&auth),
            &good.path,
            &serde_json::to_vec(&other).unwrap(),
        )
        .await;
    assert_eq!((s, code(&v)), (401, "signature_invalid"));
    let (s, v) = good
        .send_as(app, Some(&auth), "/v1/partner/events?x=1", &good.body)
        .await;
    assert_eq!((s, code(&v)), (401, "signature_invalid"));
    // The retry key swapped in transit (so that a debit would run twice).
    let (s, v) = good
        .send_with_key(app, Some(&auth), &good.path, &good.body, "another-key-123")
        .await;
    assert_eq!((s, code(&v)), (401, "signature_invalid"));

    // Signed by a key the wallet does not know for this bank.
    let forged = Call {
        key: Arc::new(PartnerKeyPair::generate()),
        nonce: new_nonce(),
        ..Call::bank(app, "/v1/partner/events", &body)
    };
    let (s, v) = forged.send(app).await;
    assert_eq!((s, code(&v)), (401, "signature_invalid"));

    // A partner the wallet does not know.
    let stranger = Call {
        from: "evil-bank".parse().unwrap(),
        ..Call::bank(app, "/v1/partner/events", &body)
    };
    let (s, v) = stranger.send(app).await;
    assert_eq!((s, code(&v)), (401, "partner_unknown"));

    // Addressed to another party (a request the bank signed for someone else).
    let misdirected = Call {
        to: "other-wallet".parse().unwrap(),
        ..Call::bank(app, "/v1/partner/events", &body)
    };
    let (s, v) = misdirected.send(app).await;
    assert_eq!((s, code(&v)), (401, "signature_invalid"));

    assert_eq!(inbox_count(app).await, 0, "no refused call wrote anything");
    // And the genuine call still goes through.
    let (s, v) = Call::bank(app, "/v1/partner/events", &body).send(app).await;
    assert_eq!((s, v["duplicate"].as_bool()), (200, Some(false)));
    assert_eq!(inbox_count(app).await, 1);
}

async fn a_stale_or_future_timestamp_is_refused(app: &TestApp) {
    let body = event_json(&EventId::generate());
    let now = app.clock.now().unix_timestamp();
    for timestamp in [now - 301, now + 301] {
        let call = Call {
            timestamp,
            ..Call::bank(app, "/v1/partner/events", &body)
        };
        let (s, v) = call.send(app).await;
        assert_eq!((s, code(&v)), (401, "signature_expired"));
    }
    let call = Call {
        timestamp: now - 299,
        ..Call::bank(app, "/v1/partner/events", &body)
    };
    assert_eq!(call.send(app).await.0, 200, "within the window is fine");
}

/// Security issue §7: the extremes of an i64 once overflowed the skew
/// arithmetic (a panic in a debug build); a second spelling of a signed
/// number (`+…`, `0…`) is not the number that was signed.
async fn timestamps_that_overflow_or_are_spelled_twice_are_refused(app: &TestApp) {
    let body = event_json(&EventId::generate());
    for timestamp in [i64::MIN, i64::MAX, i64::MIN + 1] {
        let call = Call {
            timestamp,
            ..Call::bank(app, "/v1/partner/events", &body)
        };
        let (s, v) = call.send(app).await;
        assert_eq!(s, 401, "{timestamp}: {v}");
        assert!(code(&v).starts_with("signature_"), "{v}");
    }
    let call = Call::bank(app, "/v1/partner/events", &body);
    let signed = call.authorization();
    let now = call.timestamp.to_string();
    for respelled in [format!("+{now}"), format!("0{now}")] {
        let header = signed.replace(
            &format!("timestamp=\"{now}\""),
            &format!("timestamp=\"{respelled}\""),
        );
        assert_ne!(header, signed);
        let (s, v) = call
            .send_as(app, Some(&header), &call.path, &call.body)
            .await;
        assert_eq!(
            (s, code(&v)),
            (401, "signature_invalid"),
            "{respelled}: {v}"
        );
    }
    assert_eq!(call.send(app).await.0, 200, "the canonical spelling passes");
}

async fn a_replayed_nonce_is_refused(app: &TestApp) {
    let call = Call::bank(app, "/v1/partner/events", &event_json(&EventId::generate()));
    assert_eq!(call.send(app).await.0, 200);
    let (s, v) = call.send(app).await;
    assert_eq!((s, code(&v)), (401, "nonce_replayed"));
    // The same nonce from another partner is not a replay of this one's,
    // but that partner must still sign validly: here it cannot.
    assert_eq!(inbox_count(app).await, 1);
}

async fn a_response_not_signed_by_the_partner_is_rejected_by_the_client(app: &TestApp) {
    // The client expects the wallet's key but is given another one.
    let impostor_key = Arc::new(PartnerKeyPair::generate());
    let client = app.signed_client(
        bank_id(),
        app.issuer_key.clone(),
        wallet_id(),
        impostor_key,
        &app.base_url,
    );
    let err = client
        .get::<PartnerPing>("/v1/partner/ping")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PartnerError::BadSignature {
                reason: SignatureError::Invalid,
                ..
            }
        ),
        "{err:?}"
    );
}

async fn partner_events_are_acknowledged_once(app: &TestApp) {
    let client = app.bank_to_wallet();
    let id = EventId::generate();
    let event: PartnerEvent = serde_json::from_value(event_json(&id)).unwrap();
    let post = |key: &'static str, event: PartnerEvent| {
        let client = client.clone();
        async move {
            client
                .call::<_, PartnerEventAck>(
                    reqwest::Method::POST,
                    "/v1/partner/events",
                    Some(&event),
                    Some(key),
                )
                .await
        }
    };
    let first = post("key-1", event.clone()).await.unwrap();
    assert!(!first.duplicate);
    // A retry with the same key replays the saved answer (signed anew).
    let replay = post("key-1", event.clone()).await.unwrap();
    assert_eq!(replay, first);
    // A redelivery with another key is acknowledged as a duplicate.
    let again = post("key-2", event.clone()).await.unwrap();
    assert!(again.duplicate);
    // The same key for another body is refused.
    let mut other = event.clone();
    other.topic = "binding.unbound".into();
    let err = post("key-1", other).await.unwrap_err();
    assert!(
        matches!(err, PartnerError::Refused { status: 422, ref code, .. } if code == "idempotency_key_reused"),
        "{err:?}"
    );
    assert_eq!(inbox_count(app).await, 1);
}

async fn malformed_partner_requests_get_4xx_and_nothing_is_written(app: &TestApp) {
    let client = app.bank_to_wallet();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "invalid_json"),
        (br#"{"id": 5, "topic": "a.b", "occurred_at": "2026-11-23T08:00:00Z", "data": {}}"#.to_vec(), 422, "invalid_request"),
        (br#"{"topic": "a.b", "occurred_at": "2026-11-23T08:00:00Z", "data": {}}"#.to_vec(), 422, "invalid_request"),
        (serde_json::to_vec(&json!({"id": EventId::generate().to_string(), "topic": "a.b", "occurred_at": "2026-11-23T08:00:00Z", "data": {}, "extra": 1})).unwrap(), 422, "invalid_request"),
        (serde_json::to_vec(&json!({"id": "evt_nope", "topic": "a.b", "occurred_at": "2026-11-23T08:00:00Z", "data": {}})).unwrap(), 422, "invalid_request"),
        (serde_json::to_vec(&json!({"id": EventId::generate().to_string(), "topic": "Not A Topic", "occurred_at": "2026-11-23T08:00:00Z", "data": {}})).unwrap(), 422, "invalid_request"),
        (serde_json::to_vec(&json!({"id": EventId::generate().to_string(), "topic": "a.b", "occurred_at": "yesterday", "data": {}})).unwrap(), 422, "invalid_request"),
        (vec![b' '; paybridge_http::MAX_BODY_BYTES + 1], 413, "body_too_large"),
    ];
    for (body, status, expected) in cases {
        let resp = client
            .send(
                reqwest::Method::POST,
                "/v1/partner/events",
                body,
                Some(&new_nonce()),
            )
            .await
            .expect("a signed answer");
        let v: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!((resp.status, code(&v)), (status, expected), "{v}");
        assert!(v["error"]["request_id"].as_str().unwrap().len() > 4);
    }
    // No Idempotency-Key on a creating POST.
    let body = serde_json::to_vec(&event_json(&EventId::generate())).unwrap();
    let resp = client
        .send(reqwest::Method::POST, "/v1/partner/events", body, None)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!((resp.status, code(&v)), (400, "idempotency_key_missing"));
    assert_eq!(inbox_count(app).await, 0);
}

async fn concurrent_duplicate_events_are_recorded_once(app: &TestApp) {
    let client = app.bank_to_wallet();
    let event: PartnerEvent = serde_json::from_value(event_json(&EventId::generate())).unwrap();
    let tasks = (0..16).map(|_| {
        let client = client.clone();
        let event = event.clone();
        tokio::spawn(async move {
            client
                .call::<_, PartnerEventAck>(
                    reqwest::Method::POST,
                    "/v1/partner/events",
                    Some(&event),
                    Some("same-key"),
                )
                .await
        })
    });
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    for r in &results {
        match r {
            Ok(ack) => assert!(
                !ack.duplicate,
                "every success is the first answer, replayed"
            ),
            Err(PartnerError::Refused {
                status: 409, code, ..
            }) => assert_eq!(code, "idempotency_request_in_progress"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(results.iter().any(|r| r.is_ok()));
    assert_eq!(inbox_count(app).await, 1);
}

async fn binding_and_registration_calls_tampered_or_replayed_are_refused(app: &TestApp) {
    let offer = json!({"card_ref": "card_x", "holder_name": "张三", "holder_id_number": "110105199003071239",
        "phone": "13800138000", "bank_name": "Demo Bank", "card_type": "debit", "last4": "0014"});
    let call = Call::bank(app, "/v1/partner/binding-addresses", &offer);
    // The body changed after signing (another phone): refused.
    let mut tampered = offer.clone();
    tampered["phone"] = json!("13900139000");
    let (s, v) = call
        .send_as(
            app,
            Some(&call.authorization()),
            &call.path,
            &serde_json::to_vec(&tampered).unwrap(),
        )
        .await;
    assert_eq!((s, code(&v)), (401, "signature_invalid"));
    // Signed for the bank's own API, replayed to the wallet: refused.
    let (s, _) = call
        .send_as(
            app,
            Some(&call.authorization()),
            "/bank/v1/partner/bindings/activations",
            &call.body,
        )
        .await;
    assert_eq!(s, 401);
    // The genuine call once, then its replay.
    let (s, v) = call.send(app).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call.send(app).await;
    assert_eq!((s, code(&v)), (401, "nonce_replayed"));

    // The same for a registration request (flow F2).
    let registration = json!({"reference": "ref-1", "customer": offer});
    let call = Call::bank(app, "/v1/partner/account-registrations", &registration);
    let mut tampered = registration.clone();
    tampered["customer"]["holder_name"] = json!("李四");
    let (s, v) = call
        .send_as(
            app,
            Some(&call.authorization()),
            &call.path,
            &serde_json::to_vec(&tampered).unwrap(),
        )
        .await;
    assert_eq!((s, code(&v)), (401, "signature_invalid"));
    let (s, v) = call.send(app).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call.send(app).await;
    assert_eq!((s, code(&v)), (401, "nonce_replayed"));
}

/// The bank keeps its own word: an activation names a binding the bank
/// offered, for that card, to that wallet, before the offer ran out; a
/// wallet that names anything else gets no agreement.
async fn the_bank_opens_agreements_only_for_its_own_unexpired_offers(app: &TestApp) {
    use paybridge_devices::bank_app::Offer;
    let activate = |binding: &str, card: &str| {
        let body = json!({"binding_id": binding, "card_ref": card});
        async move {
            let r: Result<Value, _> = app
                .wallet_to_bank()
                .call(
                    reqwest::Method::POST,
                    "/v1/partner/bindings/activations",
                    Some(&body),
                    Some(&format!("activate:{}", new_nonce())),
                )
                .await;
            match r {
                Ok(v) => (200, v),
                Err(paybridge_client::PartnerError::Refused { status, code, .. }) => {
                    (status, json!({"error": {"code": code}}))
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    let bank = app.bank_customer("zhang.san").await;
    let card = bank.card(0).await.unwrap();
    let other_card = bank.card(1).await.unwrap();
    // A binding the bank never offered.
    let (s, e) = activate("bnd_made_up_by_the_wallet", card.id.as_str()).await;
    assert_eq!((s, code(&e)), (404, "not_found"), "{e}");
    // An offer the bank made, but named with another card.
    let offered = bank.offer_binding(&card, Offer::Qr).await.unwrap();
    let id = offered.binding_id.clone().expect("a binding id");
    let (s, e) = activate(&id, other_card.id.as_str()).await;
    assert_eq!((s, code(&e)), (404, "not_found"), "{e}");
    // Its own offer, after it ran out.
    app.clock.advance(time::Duration::minutes(31));
    let (s, e) = activate(&id, card.id.as_str()).await;
    assert_eq!((s, code(&e)), (422, "binding_expired"), "{e}");
    // (The bank app's session ran out meanwhile too.)
    let bank = app.bank_customer("zhang.san").await;
    assert!(
        bank.bindings().await.unwrap().is_empty(),
        "no agreement was opened"
    );
    // A fresh offer, named right: the agreement opens, and a retry gets it again.
    let offered = bank.offer_binding(&card, Offer::Qr).await.unwrap();
    let id = offered.binding_id.clone().expect("a binding id");
    let (s, first) = activate(&id, card.id.as_str()).await;
    assert_eq!(s, 200, "{first}");
    let (s, again) = activate(&id, card.id.as_str()).await;
    assert_eq!((s, &again["agreement_id"]), (200, &first["agreement_id"]));
}
