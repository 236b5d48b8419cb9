//! Every list is paged over real HTTP on both stores: `limit` (1 to 100,
//! default 50) and a cursor (`after`, the `next` of the page before) walk
//! the whole list once, in its order, and a bad page is a `422`.

use paybridge_api::merchant::{CreateOrder, CreateRefund, PayOrder};
use paybridge_api::wallet::MoneyBody;
use paybridge_domain::ids::{ApiKeyId, CardId, EventId, QuickPayAgreementId, RefundId};
use paybridge_testkit::{app_tests, code, TestApp};
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use serde_json::{json, Value};

app_tests!(the_merchant_and_bank_app_lists_are_paged_with_a_limit_and_a_cursor);

const PHONE: &str = "13800138000";

/// An item's id (a delivery is named by its event).
fn item_id(item: &Value) -> String {
    item.get("event_id")
        .unwrap_or(&item["id"])
        .as_str()
        .unwrap()
        .to_owned()
}

/// Walks `path` a page of `limit` at a time: the ids of `list`, in order.
async fn walk(app: &TestApp, path: &str, token: &str, list: &str, limit: u32) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut ids = Vec::new();
    let mut query = format!("{sep}limit={limit}");
    for _ in 0..100 {
        let (s, v) = app
            .call("GET", &format!("{path}{query}"), Some(token), None)
            .await;
        assert_eq!(s, 200, "{path}{query}: {v}");
        let items = v[list].as_array().unwrap();
        assert!(items.len() <= limit as usize, "{path}: {v}");
        ids.extend(items.iter().map(item_id));
        match v["next"].as_str() {
            Some(next) => query = format!("{sep}limit={limit}&after={next}"),
            None => return ids,
        }
    }
    panic!("{path} never ends");
}

/// The whole list in one page, and the same list walked in small pages.
async fn pages_walk_the_whole_list(app: &TestApp, path: &str, token: &str, list: &str) -> usize {
    let (s, all) = app.call("GET", path, Some(token), None).await;
    assert_eq!(s, 200, "{path}: {all}");
    assert!(all["next"].is_null(), "{path}: one page holds it all");
    let whole: Vec<String> = all[list].as_array().unwrap().iter().map(item_id).collect();
    for limit in [1, 2] {
        assert_eq!(
            walk(app, path, token, list, limit).await,
            whole,
            "{path} by {limit}"
        );
    }
    whole.len()
}

/// Out of range, not an id, or an id that is not in this list: `422`.
async fn bad_pages_are_refused(app: &TestApp, path: &str, token: &str, stranger: &str) {
    let sep = if path.contains('?') { '&' } else { '?' };
    for bad in [
        "limit=0".to_owned(),
        "limit=101".to_owned(),
        "limit=-1".to_owned(),
        "after=nonsense".to_owned(),
        format!("after={stranger}"),
    ] {
        let (s, e) = app
            .call("GET", &format!("{path}{sep}{bad}"), Some(token), None)
            .await;
        assert_eq!((s, code(&e)), (422, "invalid_request"), "{path} {bad}: {e}");
    }
}

fn cny(amount: i64) -> MoneyBody {
    MoneyBody {
        amount,
        currency: "CNY".into(),
    }
}

async fn the_merchant_and_bank_app_lists_are_paged_with_a_limit_and_a_cursor(app: &TestApp) {
    let key = SANDBOX_MERCHANT_KEY;
    // Five API keys.
    for _ in 0..4 {
        assert_eq!(
            app.call("POST", "/v1/api-keys", Some(key), None).await.0,
            201
        );
    }
    assert_eq!(
        pages_walk_the_whole_list(app, "/v1/api-keys", key, "keys").await,
        5
    );
    bad_pages_are_refused(app, "/v1/api-keys", key, ApiKeyId::generate().as_str()).await;

    // A paid order with three refunds, and the merchant's events of them.
    let (token, binding) = app.payer("zhang.san", 0, PHONE, "482916").await;
    let order = app
        .merchant(key)
        .create_order(&CreateOrder {
            amount: cny(1_000),
            description: "tea".into(),
            reference: "paged-1".into(),
            expires_in_secs: None,
        })
        .await
        .unwrap();
    let pay = PayOrder {
        binding_id: binding,
        payment_password: "482916".into(),
    };
    app.app_of(&token).pay_order(&order.id, &pay).await.unwrap();
    for i in 0..3 {
        app.merchant(key)
            .refund_order(
                &order.id,
                &CreateRefund {
                    amount: cny(100),
                    reference: format!("paged-refund-{i}"),
                },
            )
            .await
            .unwrap();
    }
    let refunds = format!("/v1/orders/{}/refunds", order.id);
    assert_eq!(
        pages_walk_the_whole_list(app, &refunds, key, "refunds").await,
        3
    );
    bad_pages_are_refused(app, &refunds, key, RefundId::generate().as_str()).await;
    let events = pages_walk_the_whole_list(app, "/v1/webhook-deliveries", key, "deliveries").await;
    assert!(events >= 4, "the payment and three refunds: {events}");
    bad_pages_are_refused(
        app,
        "/v1/webhook-deliveries",
        key,
        EventId::generate().as_str(),
    )
    .await;

    // The bank app: the customer's cards and bindings.
    let (s, session) = app
        .call(
            "POST",
            "/bank/v1/app/sessions",
            None,
            Some(json!({"username": "zhang.san", "password": "Sandbox#2026"})),
        )
        .await;
    assert_eq!(s, 201, "{session}");
    let bank = session["token"].as_str().unwrap().to_owned();
    let cards = pages_walk_the_whole_list(app, "/bank/v1/app/cards", &bank, "cards").await;
    assert!(cards >= 2, "{cards}");
    bad_pages_are_refused(
        app,
        "/bank/v1/app/cards",
        &bank,
        CardId::generate().as_str(),
    )
    .await;
    let bound = pages_walk_the_whole_list(app, "/bank/v1/app/bindings", &bank, "bindings").await;
    assert_eq!(bound, 1);
    bad_pages_are_refused(
        app,
        "/bank/v1/app/bindings",
        &bank,
        QuickPayAgreementId::generate().as_str(),
    )
    .await;
}
