//! Conformance of flow F3's stores (business binding requests, transfer
//! payment agreements, transfer payments) on SQLite and PostgreSQL
//! (`sqlite::…`, `postgres::…`): caps and versions hold under races, and
//! every multi-row step is written whole or not at all.

use std::sync::Arc;

use paybridge_crypto::master::MasterKey;
use paybridge_domain::account::AccountStatus;
use paybridge_domain::credentials::PasswordGuard;
use paybridge_domain::device::{DeviceStatus, DeviceType, MAX_ACTIVE_DEVICES};
use paybridge_domain::device_pairing::{PairingState, PairingStatus};
use paybridge_domain::ids::{
    ApiKeyId, DeviceId, MerchantId, OrderId, PairingId, SessionId, TransferAgreementId,
    TransferPaymentId, UserId,
};
use paybridge_domain::ledger::{Account, AccountFlags, AccountId};
use paybridge_domain::order::OrderStatus;
use paybridge_domain::transfer_agreement::{
    AgreementState, ConfirmRoute, DeviceUsage, UsageCategory,
};
use paybridge_domain::transfer_payment::{
    TransferPaymentState, TransferPaymentStatus, MAX_PENDING_PER_DEVICE,
};
use paybridge_domain::{Currency, ErrorCode, Money, Timestamp};
use paybridge_store::conformance;
use paybridge_store::testing::TestDb;
use paybridge_store::*;
use time::Duration;

fn t0() -> Timestamp {
    time::macros::datetime!(2026-11-23 08:00 UTC)
}

conformance!(
    pairing_starts_race_within_the_address_cap_and_codes_are_unique_while_open,
    approving_a_pairing_writes_the_device_and_agreement_together_or_not_at_all,
    collecting_a_pairing_writes_its_session_once,
    racing_transfer_payment_requests_count_once_against_the_agreement,
    an_order_has_one_open_transfer_payment,
    a_payment_and_its_agreement_move_together_at_their_versions,
    revoking_an_agreement_stops_its_payments_and_revokes_its_device,
    the_payment_agreement_information_opens_only_for_its_agreement_user_and_device,
    audit_names_a_transfer_payment_left_executing_and_an_orphaned_agreement,
);

fn user() -> StoredUser {
    StoredUser {
        id: UserId::generate(),
        phone_sealed: "pb1.sealed".into(),
        phone_index: format!("phone-{}", rand_suffix()),
        phone_masked: "138****8000".into(),
        password_hash: Some("$argon2id$test".into()),
        pay_password_hash: None,
        pay_guard: PasswordGuard::default(),
        status: AccountStatus::Active,
        registered_by: None,
        identity: None,
        created_at: t0(),
        version: 0,
    }
}

fn rand_suffix() -> String {
    DeviceId::generate().as_str()[4..].to_owned()
}

fn device(user: &UserId, t: DeviceType) -> StoredDevice {
    StoredDevice {
        id: DeviceId::generate(),
        user_id: user.clone(),
        device_type: t,
        name: "Living-room TV".into(),
        status: DeviceStatus::Active,
        created_at: t0(),
        last_seen_at: t0(),
        has_credential: false,
        key: Some(DeviceKeyRecord {
            public_key: "{}".into(),
            thumbprint: format!("jkt-{}", rand_suffix()),
        }),
        paired_by: None,
    }
}

/// An account with its phone.
async fn household(s: &Store) -> (StoredUser, StoredDevice) {
    let u = user();
    s.user_create(&u, &[]).await.unwrap();
    let phone = device(&u.id, DeviceType::Phone);
    s.device_create(&phone, &[]).await.unwrap();
    (u, phone)
}

fn pairing(code: &str, client: Option<&str>) -> StoredPairing {
    StoredPairing {
        id: PairingId::generate(),
        user_code_hash: code.into(),
        device_type: DeviceType::Tv,
        device_info_sealed: "pb1.info".into(),
        key: DeviceKeyRecord {
            public_key: "{}".into(),
            thumbprint: format!("jkt-{}", rand_suffix()),
        },
        status: PairingStatus::started(t0()),
        client_index: client.map(str::to_owned),
        claimed: None,
        approved: None,
        created_at: t0(),
        updated_at: t0(),
        version: 0,
    }
}

fn caps() -> PairingCaps {
    PairingCaps {
        per_address: 20,
        since: t0() - Duration::hours(1),
        open: 100_000,
    }
}

fn agreement(u: &UserId, device: &DeviceId, phone: &DeviceId) -> StoredTransferAgreement {
    StoredTransferAgreement {
        id: TransferAgreementId::generate(),
        user_id: u.clone(),
        device_id: device.clone(),
        phone_id: phone.clone(),
        state: AgreementState::Active,
        info_sealed: "pb1.agreement".into(),
        created_at: t0(),
        updated_at: t0(),
        version: 0,
    }
}

/// An account, its phone, a paired TV and its agreement, stored.
async fn paired(
    s: &Store,
) -> (
    StoredUser,
    StoredDevice,
    StoredDevice,
    StoredTransferAgreement,
) {
    paired_sealed_by(s, None).await
}

/// [`paired`], with every sealed value really sealed by `vault` when given
/// (a rotation then re-wraps them all).
async fn paired_sealed_by(
    s: &Store,
    vault: Option<&KeyVault>,
) -> (
    StoredUser,
    StoredDevice,
    StoredDevice,
    StoredTransferAgreement,
) {
    let mut u = user();
    let mut p = pairing(&format!("code-{}", rand_suffix()), None);
    if let Some(v) = vault {
        u.phone_sealed = v
            .seal(&SEALED_COLUMNS[5], u.id.as_str(), b"13800138000")
            .await;
        p.device_info_sealed = v.seal(&PAIRING_DEVICE_INFO, p.id.as_str(), b"{}").await;
    }
    s.user_create(&u, &[]).await.unwrap();
    let phone = device(&u.id, DeviceType::Phone);
    s.device_create(&phone, &[]).await.unwrap();
    s.pairing_create(&p, caps(), &[]).await.unwrap();
    let tv = device(&u.id, DeviceType::Tv);
    let a = agreement(&u.id, &tv.id, &phone.id);
    p.status = p.status.claim(t0()).unwrap().approve(t0()).unwrap();
    p.claimed = Some((u.id.clone(), phone.id.clone()));
    p.approved = Some((tv.id.clone(), a.id.clone()));
    assert_eq!(
        s.pairing_approve(&p, &tv, &a, &[]).await.unwrap(),
        PairingApprove::Approved
    );
    (u, phone, tv, a)
}

async fn order(s: &Store, amount: i64) -> (MerchantId, OrderId) {
    let merchant = StoredMerchant {
        id: MerchantId::generate(),
        name: "Film Shop".into(),
        account_id: AccountId::generate(),
        created_at: t0(),
        webhook_url: None,
        webhook_secret_sealed: None,
    };
    let account = Account::new(
        merchant.account_id.clone(),
        Currency::CNY,
        AccountFlags::default(),
        0,
    );
    let key = StoredApiKey {
        id: ApiKeyId::generate(),
        merchant_id: merchant.id.clone(),
        prefix: "sk_test_x".into(),
        key_hash: format!("hash-{}", rand_suffix()),
        created_at: t0(),
        revoked_at: None,
    };
    assert!(s.merchant_create(&merchant, &account, &key).await.unwrap());
    let o = StoredOrder {
        id: OrderId::generate(),
        merchant_id: merchant.id.clone(),
        reference: format!("ref-{}", rand_suffix()),
        description: "4K film rental".into(),
        status: OrderStatus::open(Money::new(amount, Currency::CNY), t0(), 3600).unwrap(),
        payer_user_id: None,
        binding_id: None,
        created_at: t0(),
        updated_at: t0(),
        version: 0,
    };
    assert_eq!(s.order_create(&o, &[]).await.unwrap(), OrderCreate::Created);
    (merchant.id, o.id)
}

fn payment(
    a: &StoredTransferAgreement,
    merchant: &MerchantId,
    order: &OrderId,
    counter: u64,
) -> StoredTransferPayment {
    StoredTransferPayment {
        id: TransferPaymentId::generate(),
        agreement_id: a.id.clone(),
        user_id: a.user_id.clone(),
        device_id: a.device_id.clone(),
        phone_id: a.phone_id.clone(),
        order_id: order.clone(),
        merchant_id: merchant.clone(),
        amount: Money::new(1_500, Currency::CNY),
        usage: DeviceUsage {
            category: UsageCategory::InApp,
            counter,
            purpose: "4K film rental".into(),
        },
        status: TransferPaymentStatus::requested(ConfirmRoute::WithUser, t0()),
        task: None,
        completed_by: None,
        counted_at: t0(),
        created_at: t0(),
        updated_at: t0(),
        version: 0,
    }
}

/// `a` with new sealed information, as a service writes it after counting.
fn recounted(a: &StoredTransferAgreement, info: &str) -> StoredTransferAgreement {
    StoredTransferAgreement {
        info_sealed: info.into(),
        ..a.clone()
    }
}

async fn pairing_starts_race_within_the_address_cap_and_codes_are_unique_while_open(db: &TestDb) {
    let s = &db.store;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let p = pairing(&format!("code-{i}"), Some("addr-1"));
            s.pairing_create(&p, caps(), &[]).await.unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            PairingCreate::Created => created += 1,
            PairingCreate::AddressBusy => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 20, "one address starts at most its hourly share");
    // Another address is not held up; an hour later the first one neither.
    assert_eq!(
        s.pairing_create(&pairing("code-x", Some("addr-2")), caps(), &[])
            .await
            .unwrap(),
        PairingCreate::Created
    );
    let later = PairingCaps {
        since: t0() + Duration::minutes(61),
        ..caps()
    };
    let mut next_hour = pairing("code-y", Some("addr-1"));
    next_hour.created_at = t0() + Duration::minutes(61);
    assert_eq!(
        s.pairing_create(&next_hour, later, &[]).await.unwrap(),
        PairingCreate::Created
    );
    // A code is unique among open requests, and found while open.
    assert_eq!(
        s.pairing_create(&pairing("code-x", None), caps(), &[])
            .await
            .unwrap(),
        PairingCreate::CodeTaken
    );
    let found = s.pairing_by_code("code-x").await.unwrap().unwrap();
    assert_eq!(found.client_index.as_deref(), Some("addr-2"));
    // The wallet-wide cap on open requests.
    let full = PairingCaps { open: 1, ..caps() };
    assert_eq!(
        s.pairing_create(&pairing("code-z", None), full, &[])
            .await
            .unwrap(),
        PairingCreate::WalletBusy
    );
    // Expired requests free their codes.
    let expired = s
        .pairings_expire(t0() + Duration::hours(2), 1_000)
        .await
        .unwrap();
    assert_eq!(expired, 22);
    assert!(s.pairing_by_code("code-x").await.unwrap().is_none());
    assert_eq!(
        s.pairing_create(&pairing("code-x", None), caps(), &[])
            .await
            .unwrap(),
        PairingCreate::Created
    );
}

async fn approving_a_pairing_writes_the_device_and_agreement_together_or_not_at_all(db: &TestDb) {
    let s = &db.store;
    let (u, phone) = household(s).await;
    let p = pairing("code-a", None);
    s.pairing_create(&p, caps(), &[]).await.unwrap();
    let mut claimed = p.clone();
    claimed.status = p.status.claim(t0()).unwrap();
    claimed.claimed = Some((u.id.clone(), phone.id.clone()));
    assert!(s.pairing_update(&claimed, &[]).await.unwrap());
    assert!(!s.pairing_update(&claimed, &[]).await.unwrap(), "stale");
    let stored = s.pairing(&p.id).await.unwrap().unwrap();
    assert_eq!(stored.status.state, PairingState::Claimed);
    assert_eq!(stored.claimed, claimed.claimed);

    let tv = device(&u.id, DeviceType::Tv);
    let a = agreement(&u.id, &tv.id, &phone.id);
    let mut approved = stored.clone();
    approved.status = stored.status.approve(t0()).unwrap();
    approved.approved = Some((tv.id.clone(), a.id.clone()));
    // Read at an old version: nothing is written.
    let old = StoredPairing {
        version: 0,
        ..approved.clone()
    };
    assert_eq!(
        s.pairing_approve(&old, &tv, &a, &[]).await.unwrap(),
        PairingApprove::Stale
    );
    assert!(s.device(&tv.id).await.unwrap().is_none());
    assert!(s.transfer_agreement(&a.id).await.unwrap().is_none());
    // No room for another device: nothing is written either.
    let mut fillers = Vec::new();
    for _ in 1..MAX_ACTIVE_DEVICES {
        let d = device(&u.id, DeviceType::Iot);
        s.device_create(&d, &[]).await.unwrap();
        fillers.push(d);
    }
    assert_eq!(
        s.pairing_approve(&approved, &tv, &a, &[]).await.unwrap(),
        PairingApprove::DeviceLimitReached
    );
    assert!(s.transfer_agreement(&a.id).await.unwrap().is_none());
    assert_eq!(
        s.pairing(&p.id).await.unwrap().unwrap().status.state,
        PairingState::Claimed
    );
    s.device_revoke(&u.id, &fillers[0].id, t0(), &[])
        .await
        .unwrap();
    assert_eq!(
        s.pairing_approve(&approved, &tv, &a, &[]).await.unwrap(),
        PairingApprove::Approved
    );
    let stored = s.pairing(&p.id).await.unwrap().unwrap();
    assert_eq!(stored.status.state, PairingState::Approved);
    assert_eq!(stored.approved, Some((tv.id.clone(), a.id.clone())));
    assert_eq!(s.transfer_agreement(&a.id).await.unwrap().unwrap(), a);
    assert_eq!(s.device(&tv.id).await.unwrap().unwrap().key, tv.key);
    // The agreement query result: the account's agreements.
    assert_eq!(s.transfer_agreements_of(&u.id).await.unwrap(), vec![a]);
}

async fn collecting_a_pairing_writes_its_session_once(db: &TestDb) {
    let s = &db.store;
    let (u, phone) = household(s).await;
    let mut p = pairing("code-c", None);
    s.pairing_create(&p, caps(), &[]).await.unwrap();
    let tv = device(&u.id, DeviceType::Tv);
    let a = agreement(&u.id, &tv.id, &phone.id);
    p.status = p.status.claim(t0()).unwrap().approve(t0()).unwrap();
    p.claimed = Some((u.id.clone(), phone.id.clone()));
    p.approved = Some((tv.id.clone(), a.id.clone()));
    assert_eq!(
        s.pairing_approve(&p, &tv, &a, &[]).await.unwrap(),
        PairingApprove::Approved
    );
    p.version += 1;
    let mut collected = p.clone();
    collected.status = p.status.collect(t0()).unwrap();
    let session = |hash: String| StoredSession {
        id: SessionId::generate(),
        token_hash: hash,
        subject: u.id.to_string(),
        device_id: Some(tv.id.clone()),
        key_thumbprint: tv.key.as_ref().map(|k| k.thumbprint.clone()),
        created_at: t0(),
        expires_at: t0() + Duration::hours(1),
        revoked_at: None,
    };
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let (s, c, sess) = (s.clone(), collected.clone(), session(format!("h-{i}")));
            tokio::spawn(async move { s.pairing_collect(&c, &sess, &[]).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1, "one collection, one session");
    let mut live = 0;
    for i in 0..8 {
        live += usize::from(
            s.session_by_token(&format!("h-{i}"))
                .await
                .unwrap()
                .is_some(),
        );
    }
    assert_eq!(live, 1, "the losers' sessions were not written");
    assert_eq!(
        s.pairing(&p.id).await.unwrap().unwrap().status.state,
        PairingState::Collected
    );
}

async fn racing_transfer_payment_requests_count_once_against_the_agreement(db: &TestDb) {
    let s = &db.store;
    let (_u, _phone, _tv, a) = paired(s).await;
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let s = s.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let (m, o) = order(&s, 1_500).await;
            let p = payment(&a, &m, &o, i + 1);
            let counted = recounted(&a, &format!("pb1.counted-{i}"));
            s.transfer_payment_create(&p, &counted, t0() - Duration::minutes(10), &[])
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let created = outcomes
        .iter()
        .filter(|o| **o == TransferCreate::Created)
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    // The losers read the agreement before the winner moved it (stale), or
    // came after and found the device's one pending payment (paced).
    assert!(outcomes.iter().all(|o| matches!(
        o,
        TransferCreate::Created | TransferCreate::Stale | TransferCreate::Paced(_)
    )));
    // The agreement moved once: it holds the winner's count.
    let now = s.transfer_agreement(&a.id).await.unwrap().unwrap();
    assert_eq!(now.version, 1);
    assert!(now.info_sealed.starts_with("pb1.counted-"));
    // Read again, the device has its one pending payment: paced.
    let (m, o) = order(s, 1_500).await;
    let again = s
        .transfer_payment_create(
            &payment(&now, &m, &o, 99),
            &recounted(&now, "pb1.again"),
            t0() - Duration::minutes(10),
            &[],
        )
        .await
        .unwrap();
    match again {
        TransferCreate::Paced(p) => assert_eq!(p.device_pending, MAX_PENDING_PER_DEVICE),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.transfer_agreement(&a.id).await.unwrap().unwrap().version,
        1,
        "a refused request leaves the agreement as it was"
    );
}

async fn an_order_has_one_open_transfer_payment(db: &TestDb) {
    let s = &db.store;
    let (_u, _phone, _tv, a) = paired(s).await;
    let (_u2, _phone2, _tv2, b) = paired(s).await;
    let (m, o) = order(s, 1_500).await;
    let first = payment(&a, &m, &o, 1);
    assert_eq!(
        s.transfer_payment_create(&first, &recounted(&a, "pb1.a"), t0(), &[])
            .await
            .unwrap(),
        TransferCreate::Created
    );
    assert_eq!(
        s.transfer_payment_create(&payment(&b, &m, &o, 1), &recounted(&b, "pb1.b"), t0(), &[])
            .await
            .unwrap(),
        TransferCreate::OrderBusy
    );
    // Declined, it frees the order.
    let mut declined = first.clone();
    declined.status = first.status.decline(t0()).unwrap();
    assert!(s
        .transfer_payment_update(&declined, None, &[])
        .await
        .unwrap());
    let b = s.transfer_agreement(&b.id).await.unwrap().unwrap();
    assert_eq!(
        s.transfer_payment_create(&payment(&b, &m, &o, 1), &recounted(&b, "pb1.b"), t0(), &[])
            .await
            .unwrap(),
        TransferCreate::Created
    );
}

async fn a_payment_and_its_agreement_move_together_at_their_versions(db: &TestDb) {
    let s = &db.store;
    let (_u, _phone, _tv, a) = paired(s).await;
    let (m, o) = order(s, 1_500).await;
    let p = payment(&a, &m, &o, 1);
    s.transfer_payment_create(&p, &recounted(&a, "pb1.1"), t0(), &[])
        .await
        .unwrap();
    let a = s.transfer_agreement(&a.id).await.unwrap().unwrap();
    // The payment moved on; the agreement is stale: neither is written.
    let mut next = p.clone();
    next.status = p.status.approve(t0()).unwrap();
    let stale_agreement = StoredTransferAgreement {
        version: 0,
        ..recounted(&a, "pb1.stale")
    };
    assert!(!s
        .transfer_payment_update(&next, Some(&stale_agreement), &[])
        .await
        .unwrap());
    assert_eq!(
        s.transfer_payment(&p.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .state,
        TransferPaymentState::AwaitingConfirmation
    );
    assert!(s
        .transfer_payment_update(&next, Some(&recounted(&a, "pb1.2")), &[])
        .await
        .unwrap());
    let stored = s.transfer_payment(&p.id).await.unwrap().unwrap();
    assert_eq!(stored.status.state, TransferPaymentState::Confirmed);
    assert_eq!(stored.version, 1);
    assert_eq!(stored.usage, p.usage);
    assert_eq!(
        s.transfer_agreement(&a.id)
            .await
            .unwrap()
            .unwrap()
            .info_sealed,
        "pb1.2"
    );
    // A task, a failure with its reason and a completion round-trip.
    let mut tasked = stored.clone();
    tasked.status = stored.status.task_issued(t0()).unwrap();
    tasked.task = Some(IssuedTask {
        jws: "a.b.c".into(),
        hash: "h".into(),
    });
    assert!(s.transfer_payment_update(&tasked, None, &[]).await.unwrap());
    let mut failed = s.transfer_payment(&p.id).await.unwrap().unwrap();
    assert_eq!(failed.task, tasked.task);
    failed.status = failed
        .status
        .executing(t0())
        .unwrap()
        .debit_failed(ErrorCode::InsufficientFunds)
        .unwrap();
    assert!(s.transfer_payment_update(&failed, None, &[]).await.unwrap());
    let stored = s.transfer_payment(&p.id).await.unwrap().unwrap();
    assert_eq!(
        stored.status.state.failure(),
        Some(ErrorCode::InsufficientFunds)
    );
    assert!(s.transfer_payments_open_of(&a.id).await.unwrap().is_empty());
}

async fn revoking_an_agreement_stops_its_payments_and_revokes_its_device(db: &TestDb) {
    let s = &db.store;
    let (u, _phone, tv, a) = paired(s).await;
    let session = StoredSession {
        id: SessionId::generate(),
        token_hash: "tv-session".into(),
        subject: u.id.to_string(),
        device_id: Some(tv.id.clone()),
        key_thumbprint: Some("jkt".into()),
        created_at: t0(),
        expires_at: t0() + Duration::hours(1),
        revoked_at: None,
    };
    s.session_create(&session).await.unwrap();
    let (m, o) = order(s, 1_500).await;
    let p = payment(&a, &m, &o, 1);
    s.transfer_payment_create(&p, &recounted(&a, "pb1.1"), t0(), &[])
        .await
        .unwrap();
    let a = s.transfer_agreement(&a.id).await.unwrap().unwrap();
    let open = s.transfer_payments_open_of(&a.id).await.unwrap();
    assert_eq!(open.len(), 1);
    let stopped: Vec<StoredTransferPayment> = open
        .iter()
        .map(|p| StoredTransferPayment {
            status: p.status.stopped(t0()).unwrap(),
            ..p.clone()
        })
        .collect();
    let revoked = StoredTransferAgreement {
        state: AgreementState::Revoked,
        ..a.clone()
    };
    // A stale stop (the payment moved meanwhile) writes nothing.
    let stale: Vec<StoredTransferPayment> = stopped
        .iter()
        .map(|p| StoredTransferPayment {
            version: 7,
            ..p.clone()
        })
        .collect();
    let change = AgreementChange {
        stopped: &stale,
        revoke_device: true,
    };
    assert!(!s
        .transfer_agreement_change(&revoked, change, &[])
        .await
        .unwrap());
    assert!(s
        .session_by_token("tv-session")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_none());
    let change = AgreementChange {
        stopped: &stopped,
        revoke_device: true,
    };
    assert!(s
        .transfer_agreement_change(&revoked, change, &[])
        .await
        .unwrap());
    assert_eq!(
        s.transfer_agreement(&a.id).await.unwrap().unwrap().state,
        AgreementState::Revoked
    );
    assert_eq!(
        s.transfer_payment(&p.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .state
            .failure(),
        Some(ErrorCode::AgreementInactive)
    );
    assert!(!s.device(&tv.id).await.unwrap().unwrap().status.is_active());
    assert!(s
        .session_by_token("tv-session")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    assert!(s.audit().await.unwrap().is_clean(), "{:?}", s.audit().await);
}

async fn the_payment_agreement_information_opens_only_for_its_agreement_user_and_device(
    db: &TestDb,
) {
    let s = &db.store;
    let master = MasterKey::from_bytes(zeroize::Zeroizing::new([9u8; 32]));
    let vault = KeyVault::open(Arc::new(s.clone()), master, "wallet", t0())
        .await
        .unwrap();
    let (u, _phone, tv, a) = paired_sealed_by(s, Some(&vault)).await;
    let key = transfer_agreement_seal_key(a.id.as_str(), u.id.as_str(), tv.id.as_str());
    let sealed = vault
        .seal(&TRANSFER_AGREEMENT_INFO, &key, b"{\"limits\":1}")
        .await;
    let a = StoredTransferAgreement {
        info_sealed: sealed.clone(),
        ..a
    };
    assert!(s
        .transfer_agreement_change(&a, AgreementChange::default(), &[])
        .await
        .unwrap());
    let opened = vault
        .open_value(&TRANSFER_AGREEMENT_INFO, &key, &sealed)
        .await
        .unwrap();
    assert_eq!(opened.expose().as_slice(), b"{\"limits\":1}");
    // Named for another user or another device, it does not open.
    for other in [
        transfer_agreement_seal_key(a.id.as_str(), UserId::generate().as_str(), tv.id.as_str()),
        transfer_agreement_seal_key(a.id.as_str(), u.id.as_str(), DeviceId::generate().as_str()),
    ] {
        assert!(vault
            .open_value(&TRANSFER_AGREEMENT_INFO, &other, &sealed)
            .await
            .is_err());
    }
    // Rotation re-wraps it through the same key expression, and it opens after.
    let report = vault.rotate(t0()).await.unwrap();
    assert!(report.rewrapped >= 1, "{report:?}");
    let stored = s.transfer_agreement(&a.id).await.unwrap().unwrap();
    assert_ne!(stored.info_sealed, sealed);
    assert!(stored.info_sealed.contains(&report.active));
    let opened = vault
        .open_value(&TRANSFER_AGREEMENT_INFO, &key, &stored.info_sealed)
        .await
        .unwrap();
    assert_eq!(opened.expose().as_slice(), b"{\"limits\":1}");
}

async fn audit_names_a_transfer_payment_left_executing_and_an_orphaned_agreement(db: &TestDb) {
    let s = &db.store;
    let (u, _phone, tv, a) = paired(s).await;
    let (m, o) = order(s, 1_500).await;
    let p = payment(&a, &m, &o, 1);
    s.transfer_payment_create(&p, &recounted(&a, "pb1.1"), t0(), &[])
        .await
        .unwrap();
    let mut executing = p.clone();
    executing.status = p
        .status
        .approve(t0())
        .unwrap()
        .task_issued(t0())
        .unwrap()
        .executing(t0())
        .unwrap();
    assert!(s
        .transfer_payment_update(&executing, None, &[])
        .await
        .unwrap());
    // The device revoked behind the agreement's back.
    s.device_revoke(&u.id, &tv.id, t0(), &[]).await.unwrap();
    let report = s.audit().await.unwrap();
    let text = report.breaches.join("\n");
    assert!(text.contains("transfer payments left executing"), "{text}");
    assert!(
        text.contains("transfer agreements not revoked whose first device is"),
        "{text}"
    );
}
