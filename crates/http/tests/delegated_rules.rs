//! Flow F3's rules over real HTTP on both stores: each limit and the
//! categories at the first agreement state, the second agreement state
//! judging what changed since, racing requests and payments that never
//! pass a limit, the agreement's lifecycle (suspend, resume, revoke, a lost
//! device, unpairing) and changing its terms.

use std::sync::Arc;

use paybridge_api::delegated::{
    AgreementLimitsBody, ApprovalBody, ChangeTransferAgreement, Decision, TransferPaymentBody,
};
use paybridge_api::wallet::PageQuery;
use paybridge_devices::{DeviceResult, FirstDeviceModel, Phone};
use paybridge_domain::ids::OrderId;
use paybridge_domain::transfer_agreement::{ApprovalMode, UsageCategory};
use paybridge_domain::transfer_payment::TransferPaymentStage;
use paybridge_testkit::delegated::{
    cny, every_payment_terms, small_amounts_terms, F3Household, F3_PIN,
};
use paybridge_testkit::{app_tests, TestApp};
use time::Duration;
use tokio::sync::Mutex;

app_tests!(
    each_limit_and_the_categories_hold_at_the_first_agreement_state,
    the_second_agreement_state_judges_what_changed_since_the_request,
    racing_requests_of_one_device_count_once,
    concurrent_direct_payments_never_pass_the_daily_limit,
    suspending_stops_pending_payments_and_resuming_lets_the_device_pay,
    revoking_ends_the_device_and_a_lost_device_is_revoked_in_one_call,
    changing_the_terms_is_a_sensitive_operation,
    the_phone_lists_its_agreements_a_page_at_a_time,
);

/// Pays `amount` end to end with the user (approve, biometric, complete).
async fn pay(app: &TestApp, h: &mut F3Household, amount: i64) -> TransferPaymentBody {
    let o = app.shop_order(amount).await;
    let p = h.tv_pays(&o, amount).await.expect("admitted");
    let confirmed = h
        .phone
        .answer_transfer_payment(&p, Decision::Approve)
        .await
        .expect("confirmed");
    h.phone
        .execute_and_complete(&confirmed)
        .await
        .expect("executed")
}

async fn refused(h: &F3Household, app: &TestApp, amount: i64) -> String {
    let o = app.shop_order(amount).await;
    h.tv_pays(&o, amount)
        .await
        .expect_err("refused")
        .code()
        .unwrap_or_default()
        .to_owned()
}

async fn each_limit_and_the_categories_hold_at_the_first_agreement_state(app: &TestApp) {
    let mut h = app.f3_household(every_payment_terms).await;
    let before = app.card_balance("zhang.san", 0).await;
    // Per payment: 50.00.
    assert_eq!(refused(&h, app, 5_001).await, "amount_over_limit");
    // A category the agreement does not allow.
    let o = app.shop_order(1_000).await;
    let fuel =
        h.tv.request_payment(&h.merchant, &o, &cny(1_000), UsageCategory::Fuel, "fuel")
            .await
            .unwrap_err();
    assert_eq!(fuel.code(), Some("category_not_allowed"));
    // Per day: 80.00.
    assert_eq!(
        pay(app, &mut h, 5_000).await.state,
        TransferPaymentStage::Paid
    );
    assert_eq!(refused(&h, app, 3_001).await, "amount_over_limit");
    assert_eq!(
        pay(app, &mut h, 3_000).await.state,
        TransferPaymentStage::Paid
    );
    assert_eq!(refused(&h, app, 1).await, "amount_over_limit");
    assert_eq!(h.tv.agreement().await.unwrap().left_today.amount, 0);
    // The next UTC day starts from zero; the month goes on counting (200.00).
    let now = app.clock_now();
    let midnight = (now.date() + Duration::days(1)).midnight().assume_utc();
    app.clock.advance(midnight - now + Duration::minutes(1));
    let own = h.tv.agreement().await.unwrap();
    assert_eq!(own.left_today.amount, 8_000);
    if midnight.month() == now.month() {
        assert_eq!(own.left_this_month.amount, 20_000 - 8_000);
    } else {
        assert_eq!(own.left_this_month.amount, 20_000, "a new month too");
    }
    assert_eq!(
        pay(app, &mut h, 4_000).await.state,
        TransferPaymentStage::Paid
    );
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 12_000);
}

async fn the_second_agreement_state_judges_what_changed_since_the_request(app: &TestApp) {
    let h = app.f3_household(every_payment_terms).await;
    let before = app.card_balance("zhang.san", 0).await;
    let o = app.shop_order(4_000).await;
    let p = h.tv_pays(&o, 4_000).await.unwrap();
    // Before the user answers, they lower the per-payment limit to 30.00.
    let lower = ChangeTransferAgreement {
        limits: Some(AgreementLimitsBody {
            per_payment: cny(3_000),
            per_day: cny(8_000),
            per_month: cny(20_000),
        }),
        categories: None,
        approval: None,
        payment_password: F3_PIN.into(),
    };
    h.phone
        .app()
        .unwrap()
        .change_transfer_agreement(&h.agreement.id, &lower)
        .await
        .unwrap();
    // The approval makes the confirm payment request: the second state refuses.
    let answered = h
        .phone
        .answer_transfer_payment(&p, Decision::Approve)
        .await
        .unwrap();
    assert_eq!(answered.state, TransferPaymentStage::Failed);
    assert_eq!(answered.failure.as_deref(), Some("amount_over_limit"));
    assert!(answered.task.is_none());
    for device in [h.tv_id(), h.phone_id()] {
        let r = app
            .pushed_about(&device, "transfer_payment.result", p.id.as_str())
            .await;
        assert_eq!(r[0]["result"], "failed");
        assert_eq!(r[0]["reason"], "amount_over_limit");
    }
    // Nothing debited; the amount given back.
    assert_eq!(app.card_balance("zhang.san", 0).await, before);
    assert_eq!(app.order_state(o.as_str()).await, "open");
    assert_eq!(h.tv.agreement().await.unwrap().left_today.amount, 8_000);
}

async fn racing_requests_of_one_device_count_once(app: &TestApp) {
    let h = Arc::new(app.f3_household(every_payment_terms).await);
    let mut orders = Vec::new();
    for _ in 0..16 {
        orders.push(app.shop_order(1_000).await);
    }
    let racers: Vec<_> = orders
        .into_iter()
        .map(|o| {
            let h = h.clone();
            tokio::spawn(async move { h.tv_pays(&o, 1_000).await })
        })
        .collect();
    let mut created = 0;
    for r in racers {
        match r.await.unwrap() {
            Ok(p) => {
                assert_eq!(p.state, TransferPaymentStage::AwaitingConfirmation);
                created += 1;
            }
            // The device's one pending payment was made, the agreement
            // moved under it on every try, or a request with a higher
            // counter arrived first (a device's counter rises in the order
            // the wallet sees its requests).
            Err(e) => assert!(
                matches!(
                    e.code(),
                    Some("too_many_pending_payments")
                        | Some("contended")
                        | Some("device_counter_replayed")
                ),
                "{e}"
            ),
        }
    }
    assert_eq!(created, 1, "one pending payment per device");
    // Counted once in the agreement.
    assert_eq!(h.tv.agreement().await.unwrap().left_today.amount, 7_000);
}

/// One worker: asks for payments of `amount` until the agreement refuses
/// one for its limit, executing and completing each admitted one on the
/// phone (direct: no prompt). Answers what it paid.
async fn worker(
    app: &TestApp,
    h: &F3Household,
    phone: &Mutex<Phone>,
    amount: i64,
) -> DeviceResult<i64> {
    let mut paid = 0;
    loop {
        let o: OrderId = app.shop_order(amount).await;
        let p = loop {
            match h.tv_pays(&o, amount).await {
                Ok(p) => break p,
                // Another worker's payment is pending, or its request with a
                // higher counter arrived first: ask again (signed anew).
                Err(e)
                    if matches!(
                        e.code(),
                        Some("too_many_pending_payments")
                            | Some("contended")
                            | Some("device_counter_replayed")
                    ) =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await
                }
                Err(e) if e.code() == Some("amount_over_limit") => return Ok(paid),
                Err(e) => return Err(e),
            }
        };
        let mut phone = phone.lock().await;
        let on_phone = phone.app()?.transfer_payment(&p.id).await?;
        let done = phone.execute_and_complete(&on_phone).await?;
        assert_eq!(done.state, TransferPaymentStage::Paid, "{done:?}");
        paid += amount;
    }
}

async fn concurrent_direct_payments_never_pass_the_daily_limit(app: &TestApp) {
    let F3Household {
        phone,
        tv,
        agreement,
        binding,
        merchant,
    } = app.f3_household(small_amounts_terms).await;
    let phone = Mutex::new(phone);
    let h = F3Household {
        phone: Phone::new(&app.base_url, "13800138000"),
        tv,
        agreement,
        binding,
        merchant,
    };
    let before = app.card_balance("zhang.san", 0).await;
    let workers = (0..4).map(|_| worker(app, &h, &phone, 1_500));
    let paid: i64 = futures::future::join_all(workers)
        .await
        .into_iter()
        .map(|r| r.expect("a worker"))
        .sum();
    // 80.00 a day in payments of 15.00: five, whatever the interleaving.
    assert_eq!(paid, 7_500);
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 7_500);
    let own = h.tv.agreement().await.unwrap();
    assert_eq!(own.left_today.amount, 500);
    let listed = phone
        .lock()
        .await
        .app()
        .unwrap()
        .transfer_agreement(&own.id)
        .await
        .unwrap();
    assert_eq!(listed.usage.spent_today, cny(7_500));
    assert_eq!(listed.usage.recent.len(), 5);
}

async fn suspending_stops_pending_payments_and_resuming_lets_the_device_pay(app: &TestApp) {
    let mut h = app.f3_household(every_payment_terms).await;
    let o = app.shop_order(2_000).await;
    let pending = h.tv_pays(&o, 2_000).await.unwrap();
    let phone = h.phone.app().unwrap().clone();
    let suspended = phone
        .suspend_transfer_agreement(&h.agreement.id)
        .await
        .unwrap();
    assert_eq!(suspended.state.as_str(), "suspended");
    // The pending payment stopped; both devices were told.
    for device in [h.tv_id(), h.phone_id()] {
        let r = app
            .pushed_about(&device, "transfer_payment.result", pending.id.as_str())
            .await;
        assert_eq!(
            (r[0]["result"].as_str(), r[0]["reason"].as_str()),
            (Some("failed"), Some("agreement_inactive"))
        );
    }
    assert_eq!(suspended.usage.left_today, cny(8_000), "given back");
    assert_eq!(refused(&h, app, 1_000).await, "agreement_inactive");
    let e = h
        .phone
        .answer_transfer_payment(&pending, Decision::Approve)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("transfer_payment_closed"));
    assert_eq!(h.tv.agreement().await.unwrap().state.as_str(), "suspended");
    // Suspending twice is refused; resuming lets it pay again.
    let e = phone
        .suspend_transfer_agreement(&h.agreement.id)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("agreement_inactive"));
    phone
        .resume_transfer_agreement(&h.agreement.id)
        .await
        .unwrap();
    assert_eq!(
        pay(app, &mut h, 1_000).await.state,
        TransferPaymentStage::Paid
    );
}

async fn revoking_ends_the_device_and_a_lost_device_is_revoked_in_one_call(app: &TestApp) {
    let mut h = app.f3_household(every_payment_terms).await;
    let phone = h.phone.app().unwrap().clone();
    let revoked = phone
        .revoke_transfer_agreement(&h.agreement.id)
        .await
        .unwrap();
    assert_eq!(revoked.state.as_str(), "revoked");
    // The TV's session ended with it.
    let e = h.tv.agreement().await.unwrap_err();
    assert_eq!(e.code(), Some("session_invalid"));
    assert_eq!(refused(&h, app, 1_000).await, "session_invalid");
    // Revoking again changes nothing; resuming a revoked one is refused.
    phone
        .revoke_transfer_agreement(&h.agreement.id)
        .await
        .unwrap();
    let e = phone
        .resume_transfer_agreement(&h.agreement.id)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("agreement_inactive"));

    // A lost car: revoking the device (one call) revokes its agreement.
    let terms = every_payment_terms(&h.binding);
    let (car, car_agreement) = app
        .pair_first_device(&mut h.phone, FirstDeviceModel::car_head_unit(), &terms)
        .await;
    let o = app.shop_order(1_000).await;
    let pending = car
        .request_payment(
            &h.merchant,
            &o,
            &cny(1_000),
            UsageCategory::InApp,
            "parking",
        )
        .await
        .unwrap();
    phone.revoke_device(car.id().unwrap()).await.unwrap();
    let after = phone.transfer_agreement(&car_agreement.id).await.unwrap();
    assert_eq!(after.state.as_str(), "revoked");
    assert_eq!(
        car.agreement().await.unwrap_err().code(),
        Some("session_invalid")
    );
    let stopped = phone.transfer_payment(&pending.id).await.unwrap();
    assert_eq!(stopped.failure.as_deref(), Some("agreement_inactive"));

    // An IoT box unpairs itself.
    let (hub, hub_agreement) = app
        .pair_first_device(&mut h.phone, FirstDeviceModel::iot_box(), &terms)
        .await;
    assert_eq!(hub.unpair().await.unwrap().state.as_str(), "revoked");
    assert_eq!(
        hub.agreement().await.unwrap_err().code(),
        Some("session_invalid")
    );
    let after = phone.transfer_agreement(&hub_agreement.id).await.unwrap();
    assert_eq!(after.state.as_str(), "revoked");
}

async fn changing_the_terms_is_a_sensitive_operation(app: &TestApp) {
    let mut h = app.f3_household(every_payment_terms).await;
    let phone = h.phone.app().unwrap().clone();
    let change = |pin: &str| ChangeTransferAgreement {
        limits: Some(AgreementLimitsBody {
            per_payment: cny(2_000),
            per_day: cny(3_000),
            per_month: cny(10_000),
        }),
        categories: Some(vec![UsageCategory::InApp, UsageCategory::Fuel]),
        approval: Some(ApprovalBody {
            mode: ApprovalMode::SmallAmountsDirect,
            direct_ceiling: Some(cny(1_000)),
        }),
        payment_password: pin.into(),
    };
    let id = &h.agreement.id;
    let e = phone
        .change_transfer_agreement(id, &change("000000"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("payment_password_invalid"));
    // The TV's own session cannot change its limits.
    let e =
        h.tv.app()
            .unwrap()
            .change_transfer_agreement(id, &change(F3_PIN))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("device_proof_required"));
    // Limits that do not make sense together.
    let mut bad = change(F3_PIN);
    bad.limits.as_mut().unwrap().per_day = cny(1_000);
    let e = phone.change_transfer_agreement(id, &bad).await.unwrap_err();
    assert_eq!(e.code(), Some("invalid_request"));
    let changed = phone
        .change_transfer_agreement(id, &change(F3_PIN))
        .await
        .unwrap();
    assert_eq!(changed.limits.per_day, cny(3_000));
    assert_eq!(changed.approval.mode, ApprovalMode::SmallAmountsDirect);
    // The TV sees its new limits and pays fuel now, directly under 10.00.
    assert_eq!(h.tv.agreement().await.unwrap().left_today.amount, 3_000);
    let o = app.shop_order(800).await;
    let fuel =
        h.tv.request_payment(&h.merchant, &o, &cny(800), UsageCategory::Fuel, "fuel")
            .await
            .unwrap();
    assert_eq!(fuel.route.as_str(), "direct");
    let on_phone = phone.transfer_payment(&fuel.id).await.unwrap();
    assert_eq!(
        h.phone.execute_and_complete(&on_phone).await.unwrap().state,
        TransferPaymentStage::Paid
    );
    assert_eq!(refused(&h, app, 2_001).await, "amount_over_limit");
}

async fn the_phone_lists_its_agreements_a_page_at_a_time(app: &TestApp) {
    let mut h = app.f3_household(every_payment_terms).await;
    let terms = every_payment_terms(&h.binding);
    // Paired one after another (the manual clock stands still otherwise).
    app.clock.advance(Duration::seconds(1));
    app.pair_first_device(&mut h.phone, FirstDeviceModel::car_head_unit(), &terms)
        .await;
    app.clock.advance(Duration::seconds(1));
    app.pair_first_device(&mut h.phone, FirstDeviceModel::iot_box(), &terms)
        .await;
    let phone = h.phone.app().unwrap().clone();
    let page = |limit, after: Option<String>| PageQuery {
        limit: Some(limit),
        after,
    };
    let first = phone.transfer_agreements(&page(2, None)).await.unwrap();
    assert_eq!(first.agreements.len(), 2);
    let next = first.next.clone().expect("a next page");
    let second = phone
        .transfer_agreements(&page(2, Some(next.to_string())))
        .await
        .unwrap();
    assert_eq!(second.agreements.len(), 1);
    assert!(second.next.is_none());
    let types: Vec<&str> = first
        .agreements
        .iter()
        .chain(&second.agreements)
        .map(|a| a.device.device_type.as_str())
        .collect();
    assert_eq!(types, ["iot", "car", "tv"], "newest first");
    // The TV cannot list them: agreements are managed on the phone.
    let e =
        h.tv.app()
            .unwrap()
            .transfer_agreements(&page(2, None))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("device_proof_required"));
    let e = phone
        .transfer_agreements(&page(2, Some("tpa_nope".into())))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_request"));
}
