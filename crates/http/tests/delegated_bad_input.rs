//! Flow F3's bad input over real HTTP on both stores: each refusal has its
//! own code and nothing is debited. Pairing (proofs, codes, answers,
//! expiry), transfer payment requests (unpaired, suspended and revoked
//! devices, signatures, replays, counters, amounts), confirm payment
//! messages, executed tasks and completion messages, and an agreement that
//! decrypts to another user (an invariant: no payment, ever).

use paybridge_api::delegated::{
    CompleteTransferPayment, ConfirmTransferPayment, Decision, DeviceInfoBody, ExecuteTask,
    PaymentCompletionClaims, StartPairing, TransferPaymentBody,
};
use paybridge_client::DeviceSigner;
use paybridge_crypto::signed_message::MessageType;
use paybridge_devices::phone::public_key_of;
use paybridge_devices::{FirstDevice, FirstDeviceModel};
use paybridge_domain::device::DeviceType;
use paybridge_domain::transfer_agreement::UsageCategory;
use paybridge_domain::transfer_payment::TransferPaymentStage;
use paybridge_testkit::delegated::{cny, every_payment_terms, F3Household, F3_PIN};
use paybridge_testkit::{app_tests, code, TestApp};
use serde_json::json;
use time::Duration;

app_tests!(
    a_device_proves_its_key_and_describes_itself_to_start_pairing,
    user_codes_are_guarded_answered_once_and_expire,
    the_device_polls_with_its_key_at_its_pace_and_collects_once,
    an_approval_binds_the_terms_the_user_saw,
    a_transfer_payment_request_is_refused_for_each_bad_input,
    confirm_payment_messages_are_refused_for_each_bad_input,
    executions_and_completions_are_refused_for_each_bad_input,
    an_agreement_that_decrypts_to_another_user_never_pays,
);

fn info(kind: DeviceType) -> DeviceInfoBody {
    DeviceInfoBody {
        device_type: kind,
        model: "Bravia".into(),
        vendor: "Sony".into(),
        serial: "SN-1".into(),
    }
}

async fn a_device_proves_its_key_and_describes_itself_to_start_pairing(app: &TestApp) {
    let key = DeviceSigner::generate();
    let body = |kind| {
        serde_json::to_value(StartPairing {
            device: info(kind),
            public_key: public_key_of(&key),
        })
        .unwrap()
    };
    // No proof at all.
    let (s, e) = app
        .call(
            "POST",
            "/v1/device-pairings",
            None,
            Some(body(DeviceType::Tv)),
        )
        .await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"), "{e}");
    // A proof by another key than the one named.
    let other = DeviceSigner::generate();
    let (s, e) = app
        .call_on(
            &other,
            "POST",
            "/v1/device-pairings",
            None,
            Some(body(DeviceType::Tv)),
        )
        .await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"), "{e}");
    // A phone is no first device; info fields are bounded.
    let (s, e) = app
        .call_on(
            &key,
            "POST",
            "/v1/device-pairings",
            None,
            Some(body(DeviceType::Phone)),
        )
        .await;
    assert_eq!((s, code(&e)), (422, "invalid_request"), "{e}");
    let mut long = body(DeviceType::Tv);
    long["device"]["model"] = json!("x".repeat(65));
    let (s, e) = app
        .call_on(&key, "POST", "/v1/device-pairings", None, Some(long))
        .await;
    assert_eq!((s, code(&e)), (422, "invalid_request"), "{e}");
    let (s, started) = app
        .call_on(
            &key,
            "POST",
            "/v1/device-pairings",
            None,
            Some(body(DeviceType::Tv)),
        )
        .await;
    assert_eq!(s, 201, "{started}");
    let user_code = started["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert!(started["verification_uri_complete"]
        .as_str()
        .unwrap()
        .ends_with(&format!("user_code={user_code}")));
    assert!(started["qr"]["svg"].as_str().unwrap().starts_with("<?xml"));
    assert_eq!(started["interval"], 5);
}

async fn user_codes_are_guarded_answered_once_and_expire(app: &TestApp) {
    let (phone, _) = app.f3_phone(0, F3_PIN).await;
    let mut tv = FirstDevice::new(&app.base_url, FirstDeviceModel::smart_tv());
    let right = tv.start_pairing().await.unwrap().user_code.clone();
    // Not a code at all: refused, not counted.
    for malformed in ["", "BDFG-HJK", "AEIO-UAEI", "1234-5678"] {
        let e = phone.enter_pairing_code(malformed).await.unwrap_err();
        assert_eq!(e.code(), Some("user_code_invalid"), "{malformed:?}");
    }
    // Wrong codes are counted for the account: the fifth locks entry, and
    // then even the right code waits.
    for i in 0..5 {
        let e = phone.enter_pairing_code("BCDF-GHJK").await.unwrap_err();
        let expected = if i < 4 {
            "user_code_invalid"
        } else {
            "password_locked"
        };
        assert_eq!(e.code(), Some(expected), "wrong code {i}");
    }
    let e = phone.enter_pairing_code(&right).await.unwrap_err();
    assert_eq!(e.code(), Some("password_locked"));
    app.clock.advance(Duration::minutes(16));
    // The lock ran out; a scanned URL and lower case are fine. But the
    // pairing expired meanwhile (10 minutes).
    let e = phone
        .enter_pairing_code(&right.to_lowercase())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("pairing_expired"));
    assert_eq!(
        tv.poll_pairing().await.unwrap_err().code(),
        Some("pairing_expired")
    );

    // A fresh request: the first phone to enter it claims it; another
    // account's phone is refused; the same phone entering again is fine.
    let scanned = tv
        .start_pairing()
        .await
        .unwrap()
        .verification_uri_complete
        .clone();
    let claimed = phone.enter_pairing_code(&scanned).await.unwrap();
    assert_eq!(claimed.state.as_str(), "claimed");
    assert_eq!(claimed.device.model, "Bravia XR-55A80L");
    assert_eq!(
        phone.enter_pairing_code(&scanned).await.unwrap().id,
        claimed.id
    );
    let (other, _) = app
        .f3_phone_of("li.si", "13900139000", "4567", 0, F3_PIN)
        .await;
    let e = other.enter_pairing_code(&scanned).await.unwrap_err();
    assert_eq!(e.code(), Some("pairing_closed"));
    // Another account cannot read or answer it.
    let e = other.app().unwrap().pairing(&claimed.id).await.unwrap_err();
    assert_eq!(e.code(), Some("not_found"));
    let e = other.deny_pairing(&claimed.id).await.unwrap_err();
    assert_eq!(e.code(), Some("not_found"));
    // Denied: the device is told; it cannot be approved after.
    assert_eq!(
        phone
            .deny_pairing(&claimed.id)
            .await
            .unwrap()
            .state
            .as_str(),
        "denied"
    );
    assert_eq!(
        tv.poll_pairing().await.unwrap_err().code(),
        Some("pairing_denied")
    );
    let e = phone.deny_pairing(&claimed.id).await.unwrap_err();
    assert_eq!(e.code(), Some("pairing_closed"));
}

async fn the_device_polls_with_its_key_at_its_pace_and_collects_once(app: &TestApp) {
    let (mut phone, binding) = app.f3_phone(0, F3_PIN).await;
    let mut tv = FirstDevice::new(&app.base_url, FirstDeviceModel::smart_tv());
    let started = tv.start_pairing().await.unwrap().clone();
    let path = format!("/v1/device-pairings/{}/session", started.id);
    // Another key asking about it finds nothing.
    let stranger = DeviceSigner::generate();
    let (s, e) = app.call_on(&stranger, "POST", &path, None, None).await;
    assert_eq!((s, code(&e)), (404, "not_found"), "{e}");
    assert_eq!(
        tv.poll_pairing().await.unwrap_err().code(),
        Some("pairing_pending")
    );
    // Asking again within the interval: slow down (and the poll counts).
    assert_eq!(
        tv.poll_pairing().await.unwrap_err().code(),
        Some("slow_down")
    );
    let claimed = phone.enter_pairing_code(&started.user_code).await.unwrap();
    phone
        .approve_pairing(&claimed.id, &every_payment_terms(&binding))
        .await
        .unwrap();
    app.clock.advance(Duration::seconds(5));
    let agreement = tv.poll_pairing().await.unwrap();
    assert_eq!(agreement.state.as_str(), "active");
    // Collected once.
    app.clock.advance(Duration::seconds(5));
    assert_eq!(
        tv.poll_pairing().await.unwrap_err().code(),
        Some("pairing_closed")
    );
    // Its session is bound to its key: the token alone does nothing.
    let token = tv.app().unwrap().client().bearer().unwrap().to_owned();
    let (s, e) = app
        .call("GET", "/v1/device-agreement", Some(&token), None)
        .await;
    assert_eq!((s, code(&e)), (401, "dpop_proof_invalid"), "{e}");
}

async fn an_approval_binds_the_terms_the_user_saw(app: &TestApp) {
    let (mut phone, binding) = app.f3_phone(0, F3_PIN).await;
    let mut tv = FirstDevice::new(&app.base_url, FirstDeviceModel::smart_tv());
    let code_shown = tv.start_pairing().await.unwrap().user_code.clone();
    let claimed = phone.enter_pairing_code(&code_shown).await.unwrap();
    let terms = every_payment_terms(&binding);
    // The biometric was for these terms; the approval names larger limits.
    let app_phone = phone.app().unwrap().clone();
    let ceremony = app_phone
        .pairing_approval_challenge(&claimed.id, &terms)
        .await
        .unwrap();
    let answer = phone.passkey().get(&ceremony).unwrap();
    let mut larger = terms.clone();
    larger.limits.per_payment = cny(8_000);
    let body = json!({"terms": larger, "webauthn": {
        "ceremony_id": ceremony.ceremony_id, "credential": answer.credential}});
    let token = app_phone.client().bearer().unwrap().to_owned();
    app.remember_device_session(&token, phone.signer().clone());
    let path = format!("/v1/device-pairings/{}/approval", claimed.id);
    let (s, e) = app.call("POST", &path, Some(&token), Some(body)).await;
    assert_eq!((s, code(&e)), (403, "webauthn_rejected"), "{e}");
    // Terms that make no sense, or a card that is not bound, are refused first.
    let mut silly = terms.clone();
    silly.limits.per_day = cny(100);
    let e = app_phone
        .pairing_approval_challenge(&claimed.id, &silly)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_request"));
    let mut no_card = terms.clone();
    no_card.binding_id = "bnd_nope".into();
    let e = app_phone
        .pairing_approval_challenge(&claimed.id, &no_card)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("not_found"));
    let mut mixed = terms.clone();
    mixed.limits.per_month.currency = "USD".into();
    let e = app_phone
        .pairing_approval_challenge(&claimed.id, &mixed)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_request"));
    // Nothing was paired by the refused approval; the right one pairs.
    assert_eq!(
        tv.poll_pairing().await.unwrap_err().code(),
        Some("pairing_pending")
    );
    phone.approve_pairing(&claimed.id, &terms).await.unwrap();
    // Approving twice: the request is answered.
    let e = phone
        .approve_pairing(&claimed.id, &terms)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("pairing_closed"));
    // Pairing needs a trusted phone's session: the account's plain session is refused.
    let (s, plain) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(
                json!({"phone": "13800138000", "password": paybridge_testkit::TEST_LOGIN_PASSWORD}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{plain}");
    let (s, e) = app
        .call(
            "POST",
            "/v1/device-pairings/claims",
            plain["token"].as_str(),
            Some(json!({"user_code": "BCDF-GHJK"})),
        )
        .await;
    assert_eq!((s, code(&e)), (403, "device_proof_required"), "{e}");
}

/// A paid-nothing check: the card's balance is what it was.
async fn nothing_debited(app: &TestApp, before: i64) {
    assert_eq!(app.card_balance("zhang.san", 0).await, before);
}

async fn a_transfer_payment_request_is_refused_for_each_bad_input(app: &TestApp) {
    let h = app.f3_household(every_payment_terms).await;
    let before = app.card_balance("zhang.san", 0).await;
    let o = app.shop_order(1_000).await;
    let send = |request: String| async { h.tv.send_request(request).await.unwrap_err() };
    let sign = |counter: u64, amount: i64, category: UsageCategory| {
        h.tv.sign_request_with(&h.merchant, &o, &cny(amount), category, "film", counter)
            .unwrap()
    };
    // A signature by another key, a tampered payload, another kind of message.
    let stranger = DeviceSigner::generate();
    let forged = stranger.sign_message(
        MessageType::TransferPaymentRequest,
        &json!({"device_id": h.tv_id(), "merchant_id": h.merchant, "order_id": o,
                "amount": cny(1_000), "usage": {"category": "in_app", "counter": 1, "purpose": "x"}}),
    );
    assert_eq!(send(forged).await.code(), Some("device_signature_invalid"));
    let good = sign(1, 1_000, UsageCategory::InApp);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    assert_eq!(
        send(parts.join(".")).await.code(),
        Some("device_signature_invalid")
    );
    let other_kind = h.tv.signer().sign_message(
        MessageType::ConfirmPayment,
        &json!({"transfer_payment_id": "tpy_x", "decision": "approve", "amount": cny(1_000)}),
    );
    assert_eq!(
        send(other_kind).await.code(),
        Some("device_signature_invalid")
    );
    // Another amount than the order's; a limit; a category.
    assert_eq!(
        send(sign(1, 900, UsageCategory::InApp)).await.code(),
        Some("message_mismatch")
    );
    let big = app.shop_order(6_000).await;
    let over =
        h.tv.sign_request_with(&h.merchant, &big, &cny(6_000), UsageCategory::InApp, "x", 1)
            .unwrap();
    assert_eq!(send(over).await.code(), Some("amount_over_limit"));
    assert_eq!(
        send(sign(1, 1_000, UsageCategory::Parking)).await.code(),
        Some("category_not_allowed")
    );
    // An unknown order; a malformed one.
    let unknown =
        h.tv.sign_request_with(
            &h.merchant,
            &paybridge_domain::ids::OrderId::generate(),
            &cny(1_000),
            UsageCategory::InApp,
            "x",
            1,
        )
        .unwrap();
    assert_eq!(send(unknown).await.code(), Some("not_found"));
    // Admitted once; the same signed request again is a replay; a counter
    // at or below the last one too.
    let first = sign(5, 1_000, UsageCategory::InApp);
    let admitted = h.tv.send_request(first.clone()).await.unwrap();
    h.phone
        .answer_transfer_payment(&admitted, Decision::Decline)
        .await
        .unwrap();
    assert_eq!(send(first).await.code(), Some("device_counter_replayed"));
    assert_eq!(
        send(sign(5, 1_000, UsageCategory::InApp)).await.code(),
        Some("device_counter_replayed")
    );
    assert_eq!(
        send(sign(4, 1_000, UsageCategory::InApp)).await.code(),
        Some("device_counter_replayed")
    );
    // A device of the account with no agreement (a phone-paired PC): none.
    let phone_token = h.phone.app().unwrap().client().bearer().unwrap().to_owned();
    app.remember_device_session(&phone_token, h.phone.signer().clone());
    let (pc, pc_token) = app
        .pair_terminal(&phone_token, "13800138000", "pc", "Study PC")
        .await;
    let pc_key = app.device_key(&pc).unwrap();
    let pc_request = pc_key.sign_message(
        MessageType::TransferPaymentRequest,
        &json!({"device_id": pc, "merchant_id": h.merchant, "order_id": o,
                "amount": cny(1_000), "usage": {"category": "in_app", "counter": 1, "purpose": "x"}}),
    );
    let (s, e) = app
        .call(
            "POST",
            "/v1/transfer-payments",
            Some(&pc_token),
            Some(json!({"request": pc_request})),
        )
        .await;
    assert_eq!((s, code(&e)), (404, "no_agreement"), "{e}");
    // The TV's request on the PC's session: the PC's key does not verify it.
    let tv_request = sign(9, 1_000, UsageCategory::InApp);
    let (s, e) = app
        .call(
            "POST",
            "/v1/transfer-payments",
            Some(&pc_token),
            Some(json!({"request": tv_request})),
        )
        .await;
    assert_eq!((s, code(&e)), (401, "device_signature_invalid"), "{e}");
    // Suspended, then revoked.
    let phone = h.phone.app().unwrap().clone();
    phone
        .suspend_transfer_agreement(&h.agreement.id)
        .await
        .unwrap();
    assert_eq!(
        send(sign(10, 1_000, UsageCategory::InApp)).await.code(),
        Some("agreement_inactive")
    );
    phone
        .revoke_transfer_agreement(&h.agreement.id)
        .await
        .unwrap();
    assert_eq!(
        send(sign(11, 1_000, UsageCategory::InApp)).await.code(),
        Some("session_invalid")
    );
    nothing_debited(app, before).await;
}

/// The TV asks for `amount`; answers the phone's view of it.
async fn asked(app: &TestApp, h: &F3Household, amount: i64) -> TransferPaymentBody {
    let o = app.shop_order(amount).await;
    h.tv_pays(&o, amount).await.unwrap()
}

async fn confirm_payment_messages_are_refused_for_each_bad_input(app: &TestApp) {
    let h = app.f3_household(every_payment_terms).await;
    let before = app.card_balance("zhang.san", 0).await;
    let p = asked(app, &h, 2_000).await;
    let phone = h.phone.app().unwrap().clone();
    let post = |message: String| {
        let phone = phone.clone();
        let id = p.id.clone();
        async move {
            phone
                .confirm_transfer_payment(&id, &ConfirmTransferPayment { message })
                .await
                .unwrap_err()
        }
    };
    // Signed by another key than this phone's.
    let stranger = DeviceSigner::generate();
    let forged = stranger.sign_message(
        MessageType::ConfirmPayment,
        &json!({"transfer_payment_id": p.id, "decision": "approve", "amount": cny(2_000)}),
    );
    assert_eq!(post(forged).await.code(), Some("device_signature_invalid"));
    // For another payment, or another amount than the user was shown.
    let signer = h.phone.signer().clone();
    let other = signer.sign_message(
        MessageType::ConfirmPayment,
        &json!({"transfer_payment_id": paybridge_domain::ids::TransferPaymentId::generate(),
                "decision": "approve", "amount": cny(2_000)}),
    );
    assert_eq!(post(other).await.code(), Some("message_mismatch"));
    let cheaper = signer.sign_message(
        MessageType::ConfirmPayment,
        &json!({"transfer_payment_id": p.id, "decision": "approve", "amount": cny(20)}),
    );
    assert_eq!(post(cheaper).await.code(), Some("message_mismatch"));
    // Another phone of the account (trusted) may not answer it.
    let (other_phone, _) = app
        .f3_phone_of("li.si", "13900139000", "4567", 0, F3_PIN)
        .await;
    let e = other_phone
        .answer_transfer_payment(&p, Decision::Approve)
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("not_found"),
        "another account's payment is unknown"
    );
    // The TV cannot answer its own request.
    let e =
        h.tv.app()
            .unwrap()
            .confirm_transfer_payment(
                &p.id,
                &ConfirmTransferPayment {
                    message: h.phone.sign_confirmation(&p, Decision::Approve),
                },
            )
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("terminal_not_of_account"));
    // After expiry.
    app.clock.advance(Duration::seconds(121));
    let late = h.phone.sign_confirmation(&p, Decision::Approve);
    assert_eq!(post(late).await.code(), Some("transfer_payment_expired"));
    nothing_debited(app, before).await;
}

async fn executions_and_completions_are_refused_for_each_bad_input(app: &TestApp) {
    let mut h = app.f3_household(every_payment_terms).await;
    let before = app.card_balance("zhang.san", 0).await;
    let phone = h.phone.app().unwrap().clone();
    let p = asked(app, &h, 2_000).await;
    // No task yet: an execution or a completion has none.
    let execution = h.phone.sign_execution(&p.id, "no-task");
    let e = phone
        .execute_task(
            &p.id,
            &ExecuteTask {
                execution,
                webauthn: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("execution_task_invalid"));
    let signer = h.phone.signer().clone();
    let completion = |task_hash: &str| CompleteTransferPayment {
        message: signer.sign_message(
            MessageType::PaymentCompletion,
            &PaymentCompletionClaims {
                transfer_payment_id: p.id.to_string(),
                task_hash: task_hash.to_owned(),
                result: TransferPaymentStage::Paid,
            },
        ),
    };
    let e = phone
        .complete_transfer_payment(&p.id, &completion("no-task"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("execution_task_invalid"));
    let confirmed = h
        .phone
        .answer_transfer_payment(&p, Decision::Approve)
        .await
        .unwrap();
    let task = confirmed.task.clone().unwrap();
    // A tampered task: the phone's own check refuses it, and the wallet
    // refuses an execution of any task but the one it issued.
    let mut tampered = confirmed.clone();
    tampered.task.as_mut().unwrap().task = task.task.replacen('e', "f", 1);
    assert!(h.phone.check_task(&tampered).is_err());
    let other_hash = h.phone.sign_execution(&p.id, "another-task-hash");
    let e = phone
        .execute_task(
            &p.id,
            &ExecuteTask {
                execution: other_hash,
                webauthn: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("execution_task_invalid"));
    // The task asks for the biometric: without it, refused.
    let right = h.phone.sign_execution(&p.id, &task.task_hash);
    let e = phone
        .execute_task(
            &p.id,
            &ExecuteTask {
                execution: right.clone(),
                webauthn: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("webauthn_rejected"));
    // Signed by another key.
    let forged = DeviceSigner::generate().sign_message(
        MessageType::TaskExecution,
        &json!({"transfer_payment_id": p.id, "task_hash": task.task_hash}),
    );
    let e = phone
        .execute_task(
            &p.id,
            &ExecuteTask {
                execution: forged,
                webauthn: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("device_signature_invalid"));
    nothing_debited(app, before).await;
    // Executed properly; then replayed: no task is waiting any more.
    let executed = h.phone.execute_task(&confirmed).await.unwrap();
    assert_eq!(executed.state, TransferPaymentStage::Debited);
    let e = phone
        .execute_task(
            &p.id,
            &ExecuteTask {
                execution: right,
                webauthn: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("execution_task_invalid"));
    // A completion for another task.
    let e = phone
        .complete_transfer_payment(&p.id, &completion("another-task-hash"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("execution_task_invalid"));
    let done = phone
        .complete_transfer_payment(&p.id, &completion(&task.task_hash))
        .await
        .unwrap();
    assert_eq!(done.state, TransferPaymentStage::Paid);
    assert_eq!(app.card_balance("zhang.san", 0).await, before - 2_000);
}

async fn an_agreement_that_decrypts_to_another_user_never_pays(app: &TestApp) {
    use paybridge_store::{transfer_agreement_seal_key, AgreementChange, TRANSFER_AGREEMENT_INFO};
    let h = app.f3_household(every_payment_terms).await;
    let before = app.card_balance("zhang.san", 0).await;
    // A bug that sealed another user's information for this row: the
    // cipher opens it (the row's ids are its associated data), its content
    // names someone else.
    let store = &app.wallet.store;
    let row = store
        .transfer_agreement(&h.agreement.id)
        .await
        .unwrap()
        .unwrap();
    let key = transfer_agreement_seal_key(
        row.id.as_str(),
        row.user_id.as_str(),
        row.device_id.as_str(),
    );
    let plain = app
        .wallet
        .vault
        .open_value(&TRANSFER_AGREEMENT_INFO, &key, &row.info_sealed)
        .await
        .unwrap();
    let mut info: serde_json::Value = serde_json::from_slice(plain.expose()).unwrap();
    info["user"]["user_id"] = json!(paybridge_domain::ids::UserId::generate());
    let resealed = app
        .wallet
        .vault
        .seal(&TRANSFER_AGREEMENT_INFO, &key, info.to_string().as_bytes())
        .await;
    let tampered = paybridge_store::StoredTransferAgreement {
        info_sealed: resealed,
        ..row.clone()
    };
    assert!(store
        .transfer_agreement_change(&tampered, AgreementChange::default(), &[])
        .await
        .unwrap());
    let o = app.shop_order(1_000).await;
    let e = h.tv_pays(&o, 1_000).await.unwrap_err();
    assert_eq!(e.code(), Some("internal_error"), "{e}");
    nothing_debited(app, before).await;
    assert_eq!(app.order_state(o.as_str()).await, "open");
    // Put right again, so the invariants at the end read a sound store.
    let fixed = paybridge_store::StoredTransferAgreement {
        version: row.version + 1,
        ..row
    };
    assert!(store
        .transfer_agreement_change(&fixed, AgreementChange::default(), &[])
        .await
        .unwrap());
}
