//! Flow F3 end to end over real HTTP on both stores: a smart TV pairs by
//! its user code and pays through the phone, with the user (biometric) or
//! directly for small amounts; declines, expiry, the completion grace, and
//! the agreement's encryption at rest.

use paybridge_api::delegated::{Decision, TransferPaymentBody};
use paybridge_domain::event::Destination;
use paybridge_domain::ids::OrderId;
use paybridge_domain::transfer_payment::TransferPaymentStage;
use paybridge_testkit::delegated::{cny, every_payment_terms, small_amounts_terms, F3Household};
use paybridge_testkit::{app_tests, TestApp};
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use time::Duration;

app_tests!(
    a_tv_pairs_by_its_code_and_pays_through_the_phone_with_the_biometric,
    a_small_amount_goes_direct_without_a_prompt_and_a_larger_one_asks,
    a_declined_payment_is_told_to_both_devices_and_gives_its_amount_back,
    unanswered_steps_expire_and_a_quiet_phone_is_completed_by_the_wallet,
    the_agreement_is_sealed_for_its_id_user_and_device,
    an_unknown_debit_outcome_is_followed_never_repeated,
);

/// The TV asks to pay a new order of `amount`.
async fn tv_asks(app: &TestApp, h: &F3Household, amount: i64) -> (OrderId, TransferPaymentBody) {
    let o = app.shop_order(amount).await;
    let p = h
        .tv_pays(&o, amount)
        .await
        .expect("the TV's request is admitted");
    (o, p)
}

async fn a_tv_pairs_by_its_code_and_pays_through_the_phone_with_the_biometric(app: &TestApp) {
    let h = app.f3_household(every_payment_terms).await;
    let agreement = serde_json::to_value(&h.agreement).unwrap();
    assert_eq!(agreement["state"], "active");
    assert_eq!(agreement["device"]["type"], "tv");
    assert_eq!(agreement["device"]["name"], "Living-room TV");
    assert_eq!(agreement["device"]["model"], "Bravia XR-55A80L");
    assert_eq!(agreement["card"]["last4"], "0014");
    // The TV reads its own agreement's public part with its own session.
    let own = h.tv.agreement().await.unwrap();
    assert_eq!(own.left_today, cny(8_000));
    assert_eq!(own.id, h.agreement.id);

    let before = app.card_balance("zhang.san", 0).await;
    let merchant_before = app.merchant_balance(SANDBOX_MERCHANT_KEY).await;
    let (o, p) = tv_asks(app, &h, 1_500).await;
    assert!(p.id.as_str().starts_with("tpy_"));
    assert_eq!(p.state, TransferPaymentStage::AwaitingConfirmation);
    assert!(p.task.is_none(), "the TV never sees the task");
    // The transfer payment message on the phone: what, to whom, who asks, for what.
    let message = app
        .pushed_about(&h.phone_id(), "transfer_payment.message", p.id.as_str())
        .await;
    assert_eq!(message.len(), 1);
    assert_eq!(message[0]["amount"]["amount"], 1500);
    assert_eq!(message[0]["merchant"]["name"], "Demo Shop");
    assert_eq!(message[0]["requested_by"]["name"], "Living-room TV");
    assert_eq!(message[0]["usage"]["purpose"], "4K film rental");
    assert_eq!(message[0]["usage"]["category"], "in_app");

    // The phone approves: the confirm payment request gives it the task.
    let confirmed = h
        .phone
        .answer_transfer_payment(&p, Decision::Approve)
        .await
        .unwrap();
    assert_eq!(confirmed.state, TransferPaymentStage::TaskIssued);
    let task = confirmed
        .task
        .clone()
        .expect("the phone's view carries the task");
    assert!(task.biometric_required);
    let pushed_task = app
        .pushed_about(
            &h.phone_id(),
            "transfer_payment.execution_task",
            p.id.as_str(),
        )
        .await;
    assert_eq!(pushed_task[0]["task_hash"], task.task_hash.as_str());
    let claims = h
        .phone
        .check_task(&confirmed)
        .expect("signed by the pinned wallet key");
    assert_eq!(claims.amount, cny(1_500));
    assert_eq!(claims.order_id, o);

    // The phone executes it with the biometric; the bank debits; it completes.
    let mut h = h;
    let phone = &mut h.phone;
    let executed = phone.execute_task(&confirmed).await.unwrap();
    assert_eq!(
        executed.state,
        TransferPaymentStage::Debited,
        "{executed:?}"
    );
    assert_eq!(app.order_state(o.as_str()).await, "paid");
    let done = phone.complete_transfer_payment(&confirmed).await.unwrap();
    assert_eq!(done.state, TransferPaymentStage::Paid);
    assert_eq!(done.completed_by.map(|c| c.as_str()), Some("phone"));

    // Both devices have the payment result notification; the money moved once.
    let (tv_id, phone_id) = (h.tv_id(), h.phone_id());
    let phone = &mut h.phone;
    for device in [&tv_id, &phone_id] {
        let results = app
            .pushed_about(device, "transfer_payment.result", p.id.as_str())
            .await;
        assert_eq!(results.len(), 1, "{device}");
        assert_eq!(results[0]["result"], "paid");
        assert_eq!(results[0]["completed_by"], "phone");
    }
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 1_500);
    assert_eq!(
        app.merchant_balance(SANDBOX_MERCHANT_KEY).await,
        merchant_before + 1_500
    );
    // The agreement recorded the usage.
    let own = h.tv.agreement().await.unwrap();
    assert_eq!((own.left_today.amount, own.last_counter), (6_500, 1));
    let listed = phone
        .app()
        .unwrap()
        .transfer_agreement(&own.id)
        .await
        .unwrap();
    assert_eq!(listed.usage.spent_today, cny(1_500));
    assert_eq!(listed.usage.recent.len(), 1);
    assert_eq!(listed.usage.recent[0].transfer_payment_id, p.id);
    // Completing again changes nothing; executing again has no task.
    assert_eq!(
        phone
            .complete_transfer_payment(&confirmed)
            .await
            .unwrap()
            .state,
        TransferPaymentStage::Paid
    );
    let again = phone.execute_task(&confirmed).await.unwrap_err();
    assert_eq!(again.code(), Some("execution_task_invalid"));
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 1_500);
}

async fn a_small_amount_goes_direct_without_a_prompt_and_a_larger_one_asks(app: &TestApp) {
    let mut h = app.f3_household(small_amounts_terms).await;
    let before = app.card_balance("zhang.san", 0).await;
    let (_, small) = tv_asks(app, &h, 1_500).await;
    assert_eq!(small.route.as_str(), "direct");
    // No message to confirm: the task is issued at once.
    assert_eq!(small.state, TransferPaymentStage::TaskIssued);
    assert!(app
        .pushed_about(&h.phone_id(), "transfer_payment.message", small.id.as_str())
        .await
        .is_empty());
    let task = app
        .pushed_about(
            &h.phone_id(),
            "transfer_payment.execution_task",
            small.id.as_str(),
        )
        .await;
    assert_eq!(task[0]["biometric_required"], false);
    let on_phone = h
        .phone
        .app()
        .unwrap()
        .transfer_payment(&small.id)
        .await
        .unwrap();
    let done = h.phone.execute_and_complete(&on_phone).await.unwrap();
    assert_eq!(done.state, TransferPaymentStage::Paid);
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 1_500);

    // Above the ceiling the user is asked, and the task needs the biometric.
    let (_, large) = tv_asks(app, &h, 3_000).await;
    assert_eq!(large.route.as_str(), "with_user");
    assert_eq!(large.state, TransferPaymentStage::AwaitingConfirmation);
    let confirmed = h
        .phone
        .answer_transfer_payment(&large, Decision::Approve)
        .await
        .unwrap();
    assert!(confirmed.task.as_ref().unwrap().biometric_required);
    let done = h.phone.execute_and_complete(&confirmed).await.unwrap();
    assert_eq!(done.state, TransferPaymentStage::Paid);
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 4_500);
}

async fn a_declined_payment_is_told_to_both_devices_and_gives_its_amount_back(app: &TestApp) {
    let h = app.f3_household(every_payment_terms).await;
    let before = app.card_balance("zhang.san", 0).await;
    let (o, p) = tv_asks(app, &h, 4_000).await;
    assert_eq!(h.tv.agreement().await.unwrap().left_today.amount, 4_000);
    let declined = h
        .phone
        .answer_transfer_payment(&p, Decision::Decline)
        .await
        .unwrap();
    assert_eq!(declined.state, TransferPaymentStage::Declined);
    // Given back: the whole day's limit is there again.
    assert_eq!(h.tv.agreement().await.unwrap().left_today.amount, 8_000);
    let tv_id = h.tv_id();
    for device in [&tv_id, &h.phone_id()] {
        let r = app
            .pushed_about(device, "transfer_payment.result", p.id.as_str())
            .await;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["result"], "declined");
    }
    // A decline followed by an approve: closed.
    let e = h
        .phone
        .answer_transfer_payment(&p, Decision::Approve)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("transfer_payment_closed"));
    assert_eq!(app.order_state(o.as_str()).await, "open");
    assert_eq!(app.card_balance("zhang.san", 0).await, before);
    // The order is free for another payment.
    let again = h.tv_pays(&o, 4_000).await.unwrap();
    assert_eq!(again.state, TransferPaymentStage::AwaitingConfirmation);
}

async fn unanswered_steps_expire_and_a_quiet_phone_is_completed_by_the_wallet(app: &TestApp) {
    let mut h = app.f3_household(every_payment_terms).await;
    let before = app.card_balance("zhang.san", 0).await;
    // Nobody answers the message: after two minutes it expires, given back.
    let (_, p) = tv_asks(app, &h, 2_000).await;
    app.clock.advance(Duration::seconds(121));
    assert!(paybridge_http::background::expire_once(&app.wallet).await >= 1);
    let tv_id = h.tv_id();
    for device in [&tv_id, &h.phone_id()] {
        let r = app
            .pushed_about(device, "transfer_payment.result", p.id.as_str())
            .await;
        assert_eq!(r[0]["result"], "expired", "{device}");
    }
    assert_eq!(h.tv.agreement().await.unwrap().left_today.amount, 8_000);
    let late = h
        .phone
        .answer_transfer_payment(&p, Decision::Approve)
        .await
        .unwrap_err();
    assert_eq!(late.code(), Some("transfer_payment_expired"));

    // The phone executes a task but never sends its completion message:
    // the money moved, so after the grace the wallet completes it.
    let (o, p) = tv_asks(app, &h, 2_500).await;
    let confirmed = h
        .phone
        .answer_transfer_payment(&p, Decision::Approve)
        .await
        .unwrap();
    let executed = h.phone.execute_task(&confirmed).await.unwrap();
    assert_eq!(executed.state, TransferPaymentStage::Debited);
    app.clock.advance(Duration::seconds(31));
    paybridge_http::background::expire_once(&app.wallet).await;
    for device in [&tv_id, &h.phone_id()] {
        let r = app
            .pushed_about(device, "transfer_payment.result", p.id.as_str())
            .await;
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0]["result"].as_str(), r[0]["completed_by"].as_str()),
            (Some("paid"), Some("wallet"))
        );
    }
    assert_eq!(app.order_state(o.as_str()).await, "paid");
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 2_500);
    // A late completion message finds it closed.
    let late = h
        .phone
        .complete_transfer_payment(&confirmed)
        .await
        .unwrap_err();
    assert_eq!(late.code(), Some("transfer_payment_closed"));
}

async fn the_agreement_is_sealed_for_its_id_user_and_device(app: &TestApp) {
    let h = app.f3_household(every_payment_terms).await;
    let id = h.agreement.id.clone();
    let row = app
        .wallet
        .store
        .transfer_agreement(&id)
        .await
        .unwrap()
        .unwrap();
    assert!(row.info_sealed.starts_with("pb1."));
    for clear in [
        "Bravia",
        "Sony",
        "5000",
        "in_app",
        "usr_",
        "bnd_",
        "Living-room",
    ] {
        assert!(!row.info_sealed.contains(clear), "{clear} in clear");
    }
    // No event of the agreement names its terms or its device info.
    let events = app
        .wallet
        .store
        .outbox_events_for(&Destination::Internal, 0, 500)
        .await
        .unwrap();
    for e in events
        .iter()
        .filter(|e| e.topic.as_str().starts_with("transfer_agreement."))
    {
        let text = e.payload.to_string();
        assert!(!text.contains("Bravia") && !text.contains("5000"), "{text}");
    }
}

/// A payment whose execution reached the wallet and started the order's
/// debit, then crashed (the bank's answer never came back): the payment is
/// `executing`, the order `paying`. Returns the payment and the order.
async fn crashed_mid_debit(
    app: &TestApp,
    h: &F3Household,
    amount: i64,
) -> (paybridge_store::StoredTransferPayment, OrderId) {
    let (o, p) = tv_asks(app, h, amount).await;
    let confirmed = h
        .phone
        .answer_transfer_payment(&p, Decision::Approve)
        .await
        .unwrap();
    assert_eq!(confirmed.state, TransferPaymentStage::TaskIssued);
    let store = &app.wallet.store;
    let mut payment = store.transfer_payment(&p.id).await.unwrap().unwrap();
    let now = app.clock_now();
    payment.status = payment.status.executing(now).unwrap();
    assert!(store
        .transfer_payment_update(&payment, None, &[])
        .await
        .unwrap());
    payment.version += 1;
    let mut order = store.order(&o).await.unwrap().unwrap();
    let row = store
        .transfer_agreement(&payment.agreement_id)
        .await
        .unwrap()
        .unwrap();
    order.status = order.status.start_paying(now).unwrap();
    order.payer_user_id = Some(row.user_id.to_string());
    order.binding_id = Some(h.binding.clone());
    assert!(store.order_update(&order, &[]).await.unwrap());
    (payment, o)
}

async fn an_unknown_debit_outcome_is_followed_never_repeated(app: &TestApp) {
    let mut h = app.f3_household(every_payment_terms).await;
    let before = app.card_balance("zhang.san", 0).await;
    let result = |device, payment: String| async move {
        app.pushed_about(&device, "transfer_payment.result", &payment)
            .await
    };

    // The bank never took the debit: the payment waits while the order is
    // paying, and fails (its amount given back) once the order's saga
    // knows for sure there is no debit and opens the order again.
    let (lost, o) = crashed_mid_debit(app, &h, 3_000).await;
    app.clock.advance(Duration::seconds(31));
    paybridge_http::background::expire_once(&app.wallet).await;
    let now = app
        .wallet
        .store
        .transfer_payment(&lost.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.status.state.stage(), TransferPaymentStage::Executing);
    // The phone executing again cannot start a second debit.
    let e = h
        .phone
        .execute_task(
            &h.phone
                .app()
                .unwrap()
                .transfer_payment(&lost.id)
                .await
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("execution_task_invalid"));
    app.clock.advance(Duration::seconds(361));
    assert_eq!(app.wallet.reconcile_paying_orders().await.unwrap(), 1);
    assert_eq!(app.order_state(o.as_str()).await, "open");
    paybridge_http::background::expire_once(&app.wallet).await;
    let failed = app
        .wallet
        .store
        .transfer_payment(&lost.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failed.status.state.failure(),
        Some(paybridge_domain::ErrorCode::PartnerUnreachable)
    );
    for device in [h.tv_id(), h.phone_id()] {
        let r = result(device, lost.id.to_string()).await;
        assert_eq!(
            (r[0]["result"].as_str(), r[0]["reason"].as_str()),
            (Some("failed"), Some("partner_unreachable"))
        );
    }
    assert_eq!(h.tv.agreement().await.unwrap().left_today.amount, 8_000);
    assert_eq!(app.card_balance("zhang.san", 0).await, before);

    // The bank debited, but its answer was lost: the order's saga learns
    // the debit, the payment follows, and the wallet completes it for the
    // quiet phone. The card is debited once.
    let (debited, o) = crashed_mid_debit(app, &h, 2_000).await;
    let user = app
        .wallet
        .store
        .transfer_agreement(&debited.agreement_id)
        .await
        .unwrap()
        .unwrap()
        .user_id;
    let agreement_number = app
        .wallet
        .agreement_number(&user, &h.binding.parse().unwrap())
        .await
        .unwrap();
    let _: serde_json::Value = app
        .wallet_to_bank()
        .call(
            reqwest::Method::POST,
            "/v1/partner/debits",
            Some(&paybridge_api::partner::DebitRequest {
                payment_id: o.to_string(),
                agreement_number,
                amount: cny(2_000),
                description: "4K film rental".into(),
            }),
            Some(&format!("pay:{o}")),
        )
        .await
        .unwrap();
    app.clock.advance(Duration::seconds(31));
    assert_eq!(app.wallet.reconcile_paying_orders().await.unwrap(), 1);
    assert_eq!(app.order_state(o.as_str()).await, "paid");
    paybridge_http::background::expire_once(&app.wallet).await;
    assert_eq!(
        app.wallet
            .store
            .transfer_payment(&debited.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .state
            .stage(),
        TransferPaymentStage::Debited
    );
    app.clock.advance(Duration::seconds(31));
    paybridge_http::background::expire_once(&app.wallet).await;
    for device in [h.tv_id(), h.phone_id()] {
        let r = result(device, debited.id.to_string()).await;
        assert_eq!(
            (r[0]["result"].as_str(), r[0]["completed_by"].as_str()),
            (Some("paid"), Some("wallet"))
        );
    }
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 2_000);
}
