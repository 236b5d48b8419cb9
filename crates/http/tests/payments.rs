//! Paying an order with a bound card over real HTTP on both stores: the
//! bank debits the card by agreement, the order is paid, the merchant's
//! webhook event is written; retries and concurrent duplicates debit once;
//! a wrong payment password or missing funds change nothing.

use paybridge_api::merchant::{CreateOrder, OrderBody, PayOrder};
use paybridge_api::partner::{DebitAnswer, DebitRequest, DebitStatus};
use paybridge_api::wallet::MoneyBody;
use paybridge_domain::event::Destination;
use paybridge_domain::ids::OrderId;
use paybridge_domain::order::OrderState;
use paybridge_testkit::code;
use paybridge_testkit::{app_tests, TestApp, TEST_LOGIN_PASSWORD};
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use paybridge_wallet::payments::{ABSENT_IS_FINAL_AFTER_SECS, SETTLE_AFTER_SECS};
use serde_json::{json, Value};

app_tests!(
    an_order_is_paid_once_even_under_concurrent_retries,
    a_wrong_password_or_missing_funds_debit_nothing,
    debits_are_refused_without_a_valid_agreement,
    a_payment_left_half_done_is_settled_by_asking_the_bank,
    an_unknown_debit_outcome_never_reopens_the_order,
    a_paying_order_resumes_only_with_the_binding_that_started_it,
    an_order_in_a_currency_the_merchant_does_not_hold_is_refused,
    the_bank_answers_for_a_debit_it_made_whatever_became_of_the_agreement,
    posts_that_move_money_or_credentials_need_an_idempotency_key,
);

const PHONE: &str = "13800138000";

async fn order(app: &TestApp, reference: &str, amount: i64) -> String {
    let order = CreateOrder {
        amount: MoneyBody {
            amount,
            currency: "CNY".into(),
        },
        description: "tea".into(),
        reference: reference.into(),
        expires_in_secs: None,
    };
    let created = app
        .merchant(SANDBOX_MERCHANT_KEY)
        .create_order(&order)
        .await;
    created.expect("the order is created").id.to_string()
}

/// Pays `order` with `binding`: the paid order, or the server's status and code.
async fn pay(
    app: &TestApp,
    token: &str,
    order: &str,
    binding: &str,
    pin: &str,
) -> Result<OrderBody, (u16, String)> {
    let body = PayOrder {
        binding_id: binding.into(),
        payment_password: pin.into(),
    };
    let order: OrderId = order.parse().expect("an order id");
    app.app_of(token)
        .pay_order(&order, &body)
        .await
        .map_err(|e| (e.status().unwrap_or(0), e.code().unwrap_or("").to_owned()))
}

fn refused(code: &str, status: u16) -> Result<OrderBody, (u16, String)> {
    Err((status, code.to_owned()))
}

async fn an_order_is_paid_once_even_under_concurrent_retries(app: &TestApp) {
    let (token, binding) = app.payer("zhang.san", 0, PHONE, "482916").await;
    let before = app.card_balance("zhang.san", 0).await;
    let id = order(app, "p-1", 2_400).await;
    // Eight identical submissions at once (a double tap and retries).
    let calls = (0..8).map(|_| pay(app, &token, &id, &binding, "482916"));
    let answers = futures::future::join_all(calls).await;
    let paid = answers
        .iter()
        .filter(|a| matches!(a, Ok(o) if o.state == OrderState::Paid))
        .count();
    assert!(paid >= 1, "{answers:?}");
    for a in &answers {
        assert!(
            a.is_ok() || *a == refused("order_not_payable", 409),
            "{a:?}"
        );
    }
    // A later retry answers paid; the card was debited once.
    let again = pay(app, &token, &id, &binding, "482916").await;
    assert_eq!(again.map(|o| o.state), Ok(OrderState::Paid));
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 2_400);
    assert_eq!(app.order_state(&id).await, "paid");
    // The merchant's webhook event, and a balanced bank ledger.
    let merchant = app
        .wallet
        .authenticate_merchant(SANDBOX_MERCHANT_KEY)
        .await
        .unwrap()
        .merchant_id;
    let events = app
        .wallet
        .store
        .outbox_events_for(&Destination::Merchant(merchant), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.topic.as_str() == "order.paid")
            .count(),
        1
    );
    let totals = app.issuer.store.ledger_totals().await.unwrap();
    assert_eq!(totals.debits_posted, totals.credits_posted);
    // The payer's later retry answers paid again, still one debit.
    let retry = pay(app, &token, &id, &binding, "482916").await;
    assert!(retry.is_ok(), "the payer's retry: {retry:?}");
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 2_400);
}

async fn a_wrong_password_or_missing_funds_debit_nothing(app: &TestApp) {
    // Card 1 holds ¥50.00.
    let (token, binding) = app.payer("zhang.san", 1, PHONE, "482916").await;
    let id = order(app, "p-2", 10_000).await;
    assert_eq!(
        pay(app, &token, &id, &binding, "000001").await,
        refused("payment_password_invalid", 403)
    );
    assert_eq!(
        pay(app, &token, &id, &binding, "482916").await,
        refused("insufficient_funds", 422)
    );
    assert_eq!(app.card_balance("zhang.san", 1).await, 5_000);
    assert_eq!(
        app.order_state(&id).await,
        "open",
        "open again for another try"
    );
    // A cheaper order goes through; an unknown order or binding is 404.
    let cheap = order(app, "p-3", 1_000).await;
    assert!(pay(app, &token, &cheap, &binding, "482916").await.is_ok());
    assert_eq!(app.card_balance("zhang.san", 1).await, 4_000);
    // (A malformed id is the wire's business: the typed client cannot send one.)
    let (s, e) = app
        .call(
            "POST",
            "/v1/orders/ord_nonsense/payments",
            Some(&token),
            Some(json!({"binding_id": binding, "payment_password": "482916"})),
        )
        .await;
    assert_eq!((s, code(&e)), (404, "not_found"));
    assert_eq!(
        pay(app, &token, &id, "bnd_nonsense", "482916").await,
        refused("not_found", 404)
    );
}

async fn debits_are_refused_without_a_valid_agreement(app: &TestApp) {
    let body = json!({"payment_id": "ord_x", "agreement_number": "QP00000000000000000000",
        "amount": {"amount": 100, "currency": "CNY"}, "description": "x"});
    let r: Result<Value, _> = app
        .wallet_to_bank()
        .call(
            reqwest::Method::POST,
            "/v1/partner/debits",
            Some(&body),
            Some("d-1"),
        )
        .await;
    match r {
        Err(paybridge_client::PartnerError::Refused { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "not_found"))
        }
        other => panic!("{other:?}"),
    }
    let (s, e) = app
        .call("POST", "/bank/v1/partner/debits", None, Some(body))
        .await;
    assert_eq!((s, code(&e)), (401, "signature_missing"));
}

/// Puts an order back to `paying` by `payer` with `binding`, as a crash
/// between the payment's steps would leave it.
async fn leave_paying(app: &TestApp, order: &str, payer: &str, binding: &str) {
    let mut o = app
        .wallet
        .store
        .order(&order.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    o.status.state = OrderState::Paying;
    o.payer_user_id = Some(payer.to_owned());
    o.binding_id = Some(binding.to_owned());
    assert!(app.wallet.store.order_update(&o, &[]).await.unwrap());
}

async fn a_payment_left_half_done_is_settled_by_asking_the_bank(app: &TestApp) {
    let (token, binding) = app.payer("zhang.san", 0, PHONE, "482916").await;
    let me = app.app_of(&token).me().await.unwrap();
    let payer = me.id.as_str();
    let card = app.card_balance("zhang.san", 0).await;
    let merchant = app.merchant_balance(SANDBOX_MERCHANT_KEY).await;
    // Stopped after "paying" was saved, before the bank was called.
    let before_debit = order(app, "stall-1", 1_000).await;
    leave_paying(app, &before_debit, payer, &binding).await;
    // Stopped after the debit and the merchant's credit, before "paid".
    let after_debit = order(app, "stall-2", 700).await;
    assert!(pay(app, &token, &after_debit, &binding, "482916")
        .await
        .is_ok());
    leave_paying(app, &after_debit, payer, &binding).await;

    // Too fresh: a request may still be working on them.
    assert_eq!(app.wallet.reconcile_paying_orders().await.unwrap(), 0);
    assert_eq!(app.order_state(&before_debit).await, "paying");

    // The bank holds the second debit: it is paid. It holds none of the
    // first, but a debit request of ours could still be accepted: it waits.
    app.clock
        .advance(time::Duration::seconds(SETTLE_AFTER_SECS + 1));
    assert_eq!(app.wallet.reconcile_paying_orders().await.unwrap(), 1);
    assert_eq!(app.order_state(&after_debit).await, "paid");
    assert_eq!(app.order_state(&before_debit).await, "paying");

    // Past any debit request's validity: nothing was debited, it opens again.
    app.clock
        .advance(time::Duration::seconds(ABSENT_IS_FINAL_AFTER_SECS));
    assert_eq!(app.wallet.reconcile_paying_orders().await.unwrap(), 1);
    assert_eq!(app.order_state(&before_debit).await, "open");
    // Each debit once, and none the payer did not make: never a second debit.
    assert_eq!(app.card_balance("zhang.san", 0).await, card - 700);
    assert_eq!(
        app.merchant_balance(SANDBOX_MERCHANT_KEY).await,
        merchant + 700
    );
    assert_eq!(app.wallet.reconcile_paying_orders().await.unwrap(), 0);
}

/// Holds the bank's idempotency key of the wallet's debit of `order`, as a
/// bank that crashed mid-debit (or another request with that key) would:
/// the wallet's debit is answered with an error that says nothing of the
/// money.
async fn hold_bank_debit_key(app: &TestApp, order: &str) -> Vec<String> {
    let scopes: Vec<String> = ["/v1/partner/debits", "/bank/v1/partner/debits"]
        .iter()
        .map(|path| format!("partner:{}|{path}", paybridge_testkit::wallet_id()))
        .collect();
    for scope in &scopes {
        app.issuer
            .store
            .idempotency_begin(
                scope,
                &format!("pay:{order}"),
                "another request",
                app.clock_now(),
            )
            .await
            .unwrap();
    }
    scopes
}

async fn an_unknown_debit_outcome_never_reopens_the_order(app: &TestApp) {
    let (token, binding) = app.payer("zhang.san", 0, PHONE, "482916").await;
    let card = app.card_balance("zhang.san", 0).await;
    let id = order(app, "unknown-1", 1_500).await;
    let scopes = hold_bank_debit_key(app, &id).await;
    // The bank's answer is no decline: the order stays paying.
    assert_eq!(
        pay(app, &token, &id, &binding, "482916").await,
        refused("payment_pending", 409)
    );
    assert_eq!(app.order_state(&id).await, "paying");
    // Nothing can end it meanwhile: no cancel, no expiry (it is not open).
    let cancel = app
        .merchant(SANDBOX_MERCHANT_KEY)
        .cancel_order(&id.parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), Some("order_not_payable"));
    app.clock.advance(time::Duration::hours(1));
    assert_eq!(
        app.order_state(&id).await,
        "paying",
        "reading it expires an open order, not this one"
    );
    // The bank is itself again: the payer's retry with the same card pays once.
    for scope in &scopes {
        app.issuer
            .store
            .idempotency_abandon(scope, &format!("pay:{id}"))
            .await
            .unwrap();
    }
    assert!(pay(app, &token, &id, &binding, "482916").await.is_ok());
    assert_eq!(app.order_state(&id).await, "paid");
    assert_eq!(app.card_balance("zhang.san", 0).await, card - 1_500);
}

async fn a_paying_order_resumes_only_with_the_binding_that_started_it(app: &TestApp) {
    // Two cards bound: the first binding sets the payment password, the
    // second asks for it with the code.
    let mut phone = app.phone(PHONE);
    phone.register(TEST_LOGIN_PASSWORD).await.unwrap();
    let token = phone
        .log_in(TEST_LOGIN_PASSWORD)
        .await
        .unwrap()
        .token
        .clone();
    let first = app.bind_card("zhang.san", 0, PHONE, &token, "482916").await;
    let second = app.bind_card("zhang.san", 1, PHONE, &token, "482916").await;
    let me = app.app_of(&token).me().await.unwrap();
    let id = order(app, "resume-1", 800).await;
    leave_paying(app, &id, me.id.as_str(), &first).await;
    let (card0, card1) = (
        app.card_balance("zhang.san", 0).await,
        app.card_balance("zhang.san", 1).await,
    );
    assert_eq!(
        pay(app, &token, &id, &second, "482916").await,
        refused("order_not_payable", 409),
        "another card may not take over a payment in progress"
    );
    assert!(pay(app, &token, &id, &first, "482916").await.is_ok());
    assert_eq!(app.card_balance("zhang.san", 0).await, card0 - 800);
    assert_eq!(app.card_balance("zhang.san", 1).await, card1);
}

async fn an_order_in_a_currency_the_merchant_does_not_hold_is_refused(app: &TestApp) {
    let usd = CreateOrder {
        amount: MoneyBody {
            amount: 100,
            currency: "USD".into(),
        },
        description: "tea".into(),
        reference: "usd-1".into(),
        expires_in_secs: None,
    };
    let e = app
        .merchant(SANDBOX_MERCHANT_KEY)
        .create_order(&usd)
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(422), Some("invalid_request")));
    assert!(e.to_string().contains("holds CNY"), "{e}");
}

async fn the_bank_answers_for_a_debit_it_made_whatever_became_of_the_agreement(app: &TestApp) {
    let (token, binding) = app.payer("zhang.san", 0, PHONE, "482916").await;
    let id = order(app, "replay-1", 900).await;
    assert!(pay(app, &token, &id, &binding, "482916").await.is_ok());
    let card = app.card_balance("zhang.san", 0).await;
    let bank = app.wallet_to_bank();
    let status = |payment: String| {
        let bank = bank.clone();
        async move {
            bank.call::<(), DebitStatus>(
                reqwest::Method::GET,
                &format!("/v1/partner/debits?payment_id={payment}"),
                None,
                None,
            )
            .await
            .unwrap()
        }
    };
    let known = status(id.clone()).await;
    assert_eq!(
        (known.status.as_str(), known.amount.map(|a| a.amount)),
        ("debited", Some(900))
    );
    assert_eq!(status("ord_never".into()).await.status, "absent");
    // The same debit again, under another key and with an agreement that
    // no longer matches: the bank answers with the debit it made, and
    // debits nothing more (so its refusals are always a definite "no").
    let again: DebitAnswer = bank
        .call(
            reqwest::Method::POST,
            "/v1/partner/debits",
            Some(&DebitRequest {
                payment_id: id.clone(),
                agreement_number: "QP00000000000000000000".into(),
                amount: MoneyBody {
                    amount: 900,
                    currency: "CNY".into(),
                },
                description: "tea".into(),
            }),
            Some("another-key"),
        )
        .await
        .unwrap();
    assert_eq!(Some(again.transfer_id), known.transfer_id);
    assert_eq!(app.card_balance("zhang.san", 0).await, card);
    // Reading a debit needs the wallet's signature too.
    let (s, e) = app
        .call(
            "GET",
            &format!("/bank/v1/partner/debits?payment_id={id}"),
            None,
            None,
        )
        .await;
    assert_eq!((s, code(&e)), (401, "signature_missing"));
}

/// Paying, approving, completing a binding and setting the payment password
/// take an `Idempotency-Key` (security issue §4): without one, 400 and
/// nothing happens.
async fn posts_that_move_money_or_credentials_need_an_idempotency_key(app: &TestApp) {
    let (token, binding) = app.payer("zhang.san", 0, PHONE, "482916").await;
    let id = order(app, "no-key-1", 300).await;
    let card = app.card_balance("zhang.san", 0).await;
    let client = reqwest::Client::new();
    for (path, body) in [
        (
            format!("/v1/orders/{id}/payments"),
            json!({"binding_id": binding, "payment_password": "482916"}),
        ),
        (
            "/v1/payment-requests/pay_00000000000000000000000000/approvals".to_owned(),
            json!({"binding_id": binding, "payment_password": "482916"}),
        ),
        (
            format!("/v1/bindings/{binding}/completion"),
            json!({"code": "123456"}),
        ),
        (
            "/v1/me/payment-password".to_owned(),
            json!({"new_password": "590317", "current_password": "482916"}),
        ),
    ] {
        let resp = client
            .post(format!("{}{path}", app.base_url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let e: Value = resp.json().await.unwrap();
        assert_eq!(
            (status, code(&e)),
            (400, "idempotency_key_missing"),
            "{path}: {e}"
        );
    }
    assert_eq!(app.card_balance("zhang.san", 0).await, card);
    assert_eq!(app.order_state(&id).await, "open");
    assert!(
        pay(app, &token, &id, &binding, "482916").await.is_ok(),
        "the old password still pays"
    );
}
