//! Refunds over real HTTP on both stores: money goes back to the card it
//! was paid with and out of the merchant's balance; retries with the same
//! reference refund once; racing refunds never return more than was paid;
//! the bank bounds refunds by the debit even if the wallet asked for more.

use paybridge_domain::event::Destination;
use paybridge_testkit::code;
use paybridge_testkit::{app_tests, TestApp};
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use serde_json::{json, Value};

app_tests!(
    refunds_return_money_to_the_card_once_per_reference,
    racing_refunds_never_exceed_the_payment,
    the_bank_bounds_refunds_by_the_debit,
);

const PHONE: &str = "13800138000";

/// A paid order of `amount` (Zhang San's card 0, bound now); returns its id.
async fn paid_order(app: &TestApp, reference: &str, amount: i64) -> String {
    let (token, binding) = app.payer("zhang.san", 0, PHONE, "482916").await;
    let (s, o) = app
        .call(
            "POST",
            "/v1/orders",
            Some(SANDBOX_MERCHANT_KEY),
            Some(json!({"amount": {"amount": amount, "currency": "CNY"}, "description": "tea", "reference": reference})),
        )
        .await;
    assert_eq!(s, 201, "{o}");
    let id = o["id"].as_str().unwrap().to_owned();
    let (s, p) = app
        .call(
            "POST",
            &format!("/v1/orders/{id}/payments"),
            Some(&token),
            Some(json!({"binding_id": binding, "payment_password": "482916"})),
        )
        .await;
    assert_eq!((s, p["state"].as_str()), (200, Some("paid")), "{p}");
    id
}

async fn refund(app: &TestApp, order: &str, amount: i64, reference: &str) -> (u16, Value) {
    app.call(
        "POST",
        &format!("/v1/orders/{order}/refunds"),
        Some(SANDBOX_MERCHANT_KEY),
        Some(json!({"amount": {"amount": amount, "currency": "CNY"}, "reference": reference})),
    )
    .await
}

async fn balanced(app: &TestApp) {
    for totals in [
        app.wallet.store.ledger_totals().await.unwrap(),
        app.issuer.store.ledger_totals().await.unwrap(),
    ] {
        assert_eq!(totals.debits_posted, totals.credits_posted);
        assert_eq!(totals.debits_pending, totals.credits_pending);
    }
}

async fn refunds_return_money_to_the_card_once_per_reference(app: &TestApp) {
    let id = paid_order(app, "r-1", 10_000).await;
    let (card, merchant) = (
        app.card_balance("zhang.san", 0).await,
        app.merchant_balance(SANDBOX_MERCHANT_KEY).await,
    );

    let (s, r) = refund(app, &id, 4_000, "rf-1").await;
    assert_eq!(s, 201, "{r}");
    assert!(r["refund"]["id"].as_str().unwrap().starts_with("ref_"));
    assert_eq!(r["refund"]["state"], "succeeded");
    assert_eq!(r["order"]["state"], "partially_refunded");
    assert_eq!(r["order"]["refunded"]["amount"], 4_000);
    assert_eq!(app.card_balance("zhang.san", 0).await, card + 4_000);
    assert_eq!(
        app.merchant_balance(SANDBOX_MERCHANT_KEY).await,
        merchant - 4_000
    );
    balanced(app).await;

    // The same reference again: the same refund, nothing moves twice.
    let (s, again) = refund(app, &id, 4_000, "rf-1").await;
    assert_eq!(s, 201, "{again}");
    assert_eq!(again["refund"]["id"], r["refund"]["id"]);
    assert_eq!(app.card_balance("zhang.san", 0).await, card + 4_000);
    let (s, e) = refund(app, &id, 1_000, "rf-1").await;
    assert_eq!((s, code(&e)), (409, "order_reference_reused"));

    // More than is left; the rest; nothing more.
    let (s, e) = refund(app, &id, 6_001, "rf-2").await;
    assert_eq!((s, code(&e)), (422, "order_not_refundable"));
    let (s, r) = refund(app, &id, 6_000, "rf-3").await;
    assert_eq!(
        (s, r["order"]["state"].as_str()),
        (201, Some("refunded")),
        "{r}"
    );
    let (s, e) = refund(app, &id, 1, "rf-4").await;
    assert_eq!((s, code(&e)), (422, "order_not_refundable"));
    assert_eq!(app.card_balance("zhang.san", 0).await, card + 10_000);
    assert_eq!(
        app.merchant_balance(SANDBOX_MERCHANT_KEY).await,
        merchant - 10_000
    );
    balanced(app).await;

    let (_, list) = app
        .call(
            "GET",
            &format!("/v1/orders/{id}/refunds"),
            Some(SANDBOX_MERCHANT_KEY),
            None,
        )
        .await;
    assert_eq!(list["refunds"].as_array().unwrap().len(), 2);

    // The merchant heard of each refund.
    let m = app
        .wallet
        .authenticate_merchant(SANDBOX_MERCHANT_KEY)
        .await
        .unwrap()
        .merchant_id;
    let events = app
        .wallet
        .store
        .outbox_events_for(&Destination::Merchant(m), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.topic.as_str() == "order.refunded")
            .count(),
        2
    );

    // An open order, a junk amount, an unknown order.
    let (s, o) = app
        .call(
            "POST",
            "/v1/orders",
            Some(SANDBOX_MERCHANT_KEY),
            Some(json!({"amount": {"amount": 500, "currency": "CNY"}, "description": "x", "reference": "r-open"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, e) = refund(app, o["id"].as_str().unwrap(), 100, "rf-5").await;
    assert_eq!((s, code(&e)), (422, "order_not_refundable"));
    let (s, e) = refund(app, &id, -5, "rf-6").await;
    assert_eq!((s, code(&e)), (422, "order_not_refundable"));
    let (s, _) = refund(app, "ord_nonsense", 100, "rf-7").await;
    assert_eq!(s, 404);
}

async fn racing_refunds_never_exceed_the_payment(app: &TestApp) {
    let id = paid_order(app, "r-2", 10_000).await;
    let card = app.card_balance("zhang.san", 0).await;
    let refs: Vec<String> = (0..8).map(|i| format!("race-{i}")).collect();
    let answers = futures::future::join_all(refs.iter().map(|r| refund(app, &id, 3_000, r))).await;
    let ok = answers.iter().filter(|(s, _)| *s == 201).count();
    assert!((1..=3).contains(&ok), "{answers:?}");
    for (s, v) in &answers {
        assert!(
            *s == 201 || (*s == 422 && code(v) == "order_not_refundable") || *s == 429,
            "{s} {v}"
        );
    }
    assert_eq!(
        app.card_balance("zhang.san", 0).await,
        card + 3_000 * ok as i64
    );
    let o = app.sandbox_order(&id).await;
    assert_eq!(o["refunded"]["amount"], 3_000 * ok as i64);
    balanced(app).await;
}

async fn the_bank_bounds_refunds_by_the_debit(app: &TestApp) {
    let id = paid_order(app, "r-3", 1_000).await;
    let call = |refund_id: &'static str, amount: i64| {
        let body = json!({"refund_id": refund_id, "payment_id": id, "amount": {"amount": amount, "currency": "CNY"}});
        async move {
            app.wallet_to_bank()
                .call::<_, Value>(
                    reqwest::Method::POST,
                    "/v1/partner/refunds",
                    Some(&body),
                    Some(refund_id),
                )
                .await
        }
    };
    call("ref_bank_1", 700).await.expect("within the debit");
    match call("ref_bank_2", 301).await {
        Err(paybridge_client::PartnerError::Refused { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (422, "refund_exceeds_payment"))
        }
        other => panic!("{other:?}"),
    }
    call("ref_bank_3", 300).await.expect("what is left");
    let body = json!({"refund_id": "ref_x", "payment_id": "ord_unknown", "amount": {"amount": 1, "currency": "CNY"}});
    match app
        .wallet_to_bank()
        .call::<_, Value>(
            reqwest::Method::POST,
            "/v1/partner/refunds",
            Some(&body),
            Some("k"),
        )
        .await
    {
        Err(paybridge_client::PartnerError::Refused { status, .. }) => assert_eq!(status, 404),
        other => panic!("{other:?}"),
    }
    balanced(app).await;
}
