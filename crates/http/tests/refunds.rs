//! Refunds over real HTTP on both stores: money goes back to the card it
//! was paid with and out of the merchant's balance; retries with the same
//! reference refund once; racing refunds never return more than was paid;
//! the bank bounds refunds by the debit even if the wallet asked for more.

use paybridge_api::merchant::{CreateOrder, CreateRefund, PayOrder, RefundCreated};
use paybridge_api::partner::{RefundAnswer, RefundRequest};
use paybridge_api::wallet::MoneyBody;
use paybridge_domain::event::Destination;
use paybridge_domain::ids::{OrderId, RefundId};
use paybridge_domain::order::OrderState;
use paybridge_domain::refund::{RefundStage, RefundStatus};
use paybridge_store::StoredRefund;
use paybridge_testkit::{app_tests, TestApp};
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use paybridge_wallet::refunds::STALLED_REFUND_SECS;
use serde_json::{json, Value};

app_tests!(
    refunds_return_money_to_the_card_once_per_reference,
    racing_refunds_never_exceed_the_payment,
    the_bank_bounds_refunds_by_the_debit,
    a_refund_left_half_done_is_resumed_and_returns_the_money_once,
    the_server_sweeps_expired_ledger_holds,
);

const PHONE: &str = "13800138000";

fn cny(amount: i64) -> MoneyBody {
    MoneyBody {
        amount,
        currency: "CNY".into(),
    }
}

/// A paid order of `amount` (Zhang San's card 0, bound now); returns its id.
async fn paid_order(app: &TestApp, reference: &str, amount: i64) -> String {
    let (token, binding) = app.payer("zhang.san", 0, PHONE, "482916").await;
    let order = app
        .merchant(SANDBOX_MERCHANT_KEY)
        .create_order(&CreateOrder {
            amount: cny(amount),
            description: "tea".into(),
            reference: reference.into(),
            expires_in_secs: None,
        })
        .await
        .unwrap();
    let pay = PayOrder {
        binding_id: binding,
        payment_password: "482916".into(),
    };
    let paid = app.app_of(&token).pay_order(&order.id, &pay).await.unwrap();
    assert_eq!(paid.state, OrderState::Paid);
    order.id.to_string()
}

/// Refunds `amount` of `order` under `reference`: the refund and the order,
/// or the server's status and code.
async fn refund(
    app: &TestApp,
    order: &str,
    amount: i64,
    reference: &str,
) -> Result<RefundCreated, (u16, String)> {
    let body = CreateRefund {
        amount: cny(amount),
        reference: reference.into(),
    };
    app.merchant(SANDBOX_MERCHANT_KEY)
        .refund_order(&order.parse().expect("an order id"), &body)
        .await
        .map_err(|e| (e.status().unwrap_or(0), e.code().unwrap_or("").to_owned()))
}

fn refused(status: u16, code: &str) -> (u16, String) {
    (status, code.to_owned())
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

    let r = refund(app, &id, 4_000, "rf-1").await.unwrap();
    assert!(r.refund.id.as_str().starts_with("ref_"));
    assert_eq!(r.refund.state, RefundStage::Succeeded);
    assert_eq!(r.order.state, OrderState::PartiallyRefunded);
    assert_eq!(r.order.refunded.amount, 4_000);
    assert_eq!(app.card_balance("zhang.san", 0).await, card + 4_000);
    assert_eq!(
        app.merchant_balance(SANDBOX_MERCHANT_KEY).await,
        merchant - 4_000
    );
    balanced(app).await;

    // The same reference again: the same refund, nothing moves twice.
    let again = refund(app, &id, 4_000, "rf-1").await.unwrap();
    assert_eq!(again.refund.id, r.refund.id);
    assert_eq!(app.card_balance("zhang.san", 0).await, card + 4_000);
    let e = refund(app, &id, 1_000, "rf-1").await.unwrap_err();
    assert_eq!(e, refused(409, "order_reference_reused"));

    // More than is left; the rest; nothing more.
    let e = refund(app, &id, 6_001, "rf-2").await.unwrap_err();
    assert_eq!(e, refused(422, "order_not_refundable"));
    let r = refund(app, &id, 6_000, "rf-3").await.unwrap();
    assert_eq!(r.order.state, OrderState::Refunded);
    let e = refund(app, &id, 1, "rf-4").await.unwrap_err();
    assert_eq!(e, refused(422, "order_not_refundable"));
    assert_eq!(app.card_balance("zhang.san", 0).await, card + 10_000);
    assert_eq!(
        app.merchant_balance(SANDBOX_MERCHANT_KEY).await,
        merchant - 10_000
    );
    balanced(app).await;

    let list = app
        .merchant(SANDBOX_MERCHANT_KEY)
        .refunds(&id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(list.refunds.len(), 2);

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
    let open = app
        .merchant(SANDBOX_MERCHANT_KEY)
        .create_order(&CreateOrder {
            amount: cny(500),
            description: "x".into(),
            reference: "r-open".into(),
            expires_in_secs: None,
        })
        .await
        .unwrap();
    let e = refund(app, open.id.as_str(), 100, "rf-5")
        .await
        .unwrap_err();
    assert_eq!(e, refused(422, "order_not_refundable"));
    let e = refund(app, &id, -5, "rf-6").await.unwrap_err();
    assert_eq!(e, refused(422, "order_not_refundable"));
    // (A malformed id is the wire's business: the typed client cannot send one.)
    let (s, _) = app
        .call(
            "POST",
            "/v1/orders/ord_nonsense/refunds",
            Some(SANDBOX_MERCHANT_KEY),
            Some(json!({"amount": {"amount": 100, "currency": "CNY"}, "reference": "rf-7"})),
        )
        .await;
    assert_eq!(s, 404);
}

async fn racing_refunds_never_exceed_the_payment(app: &TestApp) {
    let id = paid_order(app, "r-2", 10_000).await;
    let card = app.card_balance("zhang.san", 0).await;
    let refs: Vec<String> = (0..8).map(|i| format!("race-{i}")).collect();
    let answers = futures::future::join_all(refs.iter().map(|r| refund(app, &id, 3_000, r))).await;
    let ok = answers.iter().filter(|a| a.is_ok()).count();
    assert!((1..=3).contains(&ok), "{answers:?}");
    for a in &answers {
        assert!(
            a.is_ok()
                || *a == Err(refused(422, "order_not_refundable"))
                || *a == Err(refused(409, "contended")),
            "{a:?}"
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

/// Records a pending refund of `amount` on `order` (its amount reserved on
/// the order), as a crash right after the refund's first step leaves it.
async fn leave_pending(app: &TestApp, order: &OrderId, amount: i64, reference: &str) -> RefundId {
    let mut o = app.wallet.store.order(order).await.unwrap().unwrap();
    let money = paybridge_domain::Money::new(amount, o.status.amount.currency);
    o.status = o.status.refund(amount).unwrap();
    let now = app.clock_now();
    let refund = StoredRefund {
        id: RefundId::generate(),
        order_id: order.clone(),
        reference: reference.to_owned(),
        amount: money,
        status: RefundStatus::Pending,
        created_at: now,
        updated_at: now,
    };
    app.wallet
        .store
        .refund_begin(&o, &refund, &[])
        .await
        .unwrap();
    refund.id
}

async fn a_refund_left_half_done_is_resumed_and_returns_the_money_once(app: &TestApp) {
    let order: OrderId = paid_order(app, "r-stall", 10_000).await.parse().unwrap();
    let merchant = app.merchant(SANDBOX_MERCHANT_KEY);
    let (card, balance) = (
        app.card_balance("zhang.san", 0).await,
        app.merchant_balance(SANDBOX_MERCHANT_KEY).await,
    );
    // Stopped after the refund was recorded, before anything moved.
    let before_bank = leave_pending(app, &order, 3_000, "rf-stall-1").await;
    // Stopped after the bank returned the money, before the wallet posted.
    let after_bank = leave_pending(app, &order, 2_000, "rf-stall-2").await;
    let _: RefundAnswer = app
        .wallet_to_bank()
        .call(
            reqwest::Method::POST,
            "/v1/partner/refunds",
            Some(&RefundRequest {
                refund_id: after_bank.to_string(),
                payment_id: order.to_string(),
                amount: MoneyBody {
                    amount: 2_000,
                    currency: "CNY".into(),
                },
            }),
            Some(&format!("refund:{after_bank}")),
        )
        .await
        .unwrap();
    assert_eq!(app.card_balance("zhang.san", 0).await, card + 2_000);

    // Too fresh: a request may still be working on them.
    assert_eq!(app.wallet.resume_stalled_refunds().await.unwrap(), 0);
    app.clock
        .advance(time::Duration::seconds(STALLED_REFUND_SECS + 1));
    assert_eq!(app.wallet.resume_stalled_refunds().await.unwrap(), 2);
    let refunds = merchant.refunds(&order).await.unwrap().refunds;
    assert!(
        refunds.iter().all(|r| r.state == RefundStage::Succeeded),
        "{refunds:?}"
    );
    // Each refund returned once, whatever was redone.
    assert_eq!(app.card_balance("zhang.san", 0).await, card + 5_000);
    assert_eq!(
        app.merchant_balance(SANDBOX_MERCHANT_KEY).await,
        balance - 5_000
    );
    assert_eq!(app.wallet.resume_stalled_refunds().await.unwrap(), 0);
    // The merchant's retry of a resumed refund answers it, moving nothing.
    let again = merchant
        .refund_order(
            &order,
            &CreateRefund {
                amount: MoneyBody {
                    amount: 3_000,
                    currency: "CNY".into(),
                },
                reference: "rf-stall-1".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (again.refund.id, again.refund.state.as_str()),
        (before_bank, "succeeded")
    );
    assert_eq!(app.card_balance("zhang.san", 0).await, card + 5_000);
    assert_eq!(again.order.refunded.amount, 5_000);
    balanced(app).await;
}

/// A hold (a pending transfer) whose timeout passed is released by the
/// server's purge round: its amount is available again, and nobody had to
/// touch the account for it.
async fn the_server_sweeps_expired_ledger_holds(app: &TestApp) {
    use paybridge_domain::ledger::{
        Account, AccountFlags, AccountId, TransferKind, TransferRequest,
    };
    use paybridge_domain::{Currency, Money};
    let store = app.wallet.store.as_ref();
    let now = app.clock_now();
    let open = |no_overdraft: bool| async move {
        let flags = AccountFlags {
            debits_must_not_exceed_credits: no_overdraft,
            ..Default::default()
        };
        let a = Account::new(AccountId::generate(), Currency::CNY, flags, 0);
        store.ledger_open_account(&a, now).await.unwrap();
        a.id
    };
    let (funding, holder, payee) = (open(false).await, open(true).await, open(false).await);
    let move_ = |id: &str, from: &AccountId, to: &AccountId, amount: i64, kind: TransferKind| {
        TransferRequest {
            id: id.parse().unwrap(),
            debit_account: from.clone(),
            credit_account: to.clone(),
            amount: Money::new(amount, Currency::CNY),
            kind,
        }
    };
    store
        .ledger_submit(
            &move_("sweep-fund", &funding, &holder, 1_000, TransferKind::Posted),
            &[],
            now,
        )
        .await
        .unwrap();
    store
        .ledger_submit(
            &move_(
                "sweep-hold",
                &holder,
                &payee,
                800,
                TransferKind::Pending { timeout_secs: 60 },
            ),
            &[],
            now,
        )
        .await
        .unwrap();
    let pending = |id: AccountId| async move {
        store
            .ledger_account(&id)
            .await
            .unwrap()
            .unwrap()
            .debits_pending
    };
    assert_eq!(pending(holder.clone()).await, 800);
    assert_eq!(
        paybridge_http::background::purge_once(&[store], now + time::Duration::seconds(59)).await,
        0
    );
    app.clock.advance(time::Duration::seconds(61));
    assert_eq!(
        paybridge_http::background::purge_once(&[store], app.clock_now()).await,
        1
    );
    assert_eq!(pending(holder).await, 0, "the hold is released");
}
