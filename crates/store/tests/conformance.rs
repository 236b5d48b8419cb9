//! The store conformance suite: every test here runs against SQLite and
//! against PostgreSQL (`sqlite::…` and `postgres::…` in the test names).

use std::collections::HashSet;
use std::sync::Arc;

use paybridge_domain::event::{Destination, NewEvent};
use paybridge_domain::ids::{DeviceId, EventId, SmsId};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::Timestamp;
use paybridge_store::idempotency::{IDEMPOTENCY_LOCK_SECS, IDEMPOTENCY_TTL_SECS};
use paybridge_store::nonces::NONCE_RETENTION_SECS;
use paybridge_store::testing::TestDb;
use paybridge_store::Store;
use paybridge_store::*;
use time::Duration;

fn t0() -> Timestamp {
    time::macros::datetime!(2026-11-23 08:00 UTC)
}

fn partner(s: &str) -> PartnerId {
    s.parse().unwrap()
}

use paybridge_store::conformance;

conformance!(
    migrations_are_idempotent,
    idempotency_replays_the_saved_answer,
    idempotency_refuses_a_reused_key_with_another_body,
    idempotency_is_scoped_per_caller,
    idempotency_reports_a_concurrent_duplicate,
    idempotency_abandoned_claims_can_be_retried,
    idempotency_a_running_claim_is_renewed_and_a_dead_one_freed_within_seconds,
    idempotency_answers_expire_after_the_ttl,
    idempotency_one_winner_under_a_race,
    nonces_are_single_use_per_partner,
    nonces_are_forgotten_after_retention,
    outbox_claims_in_order_and_hides_claimed_events,
    outbox_deferred_events_come_back_at_their_time_with_no_attempt_counted,
    outbox_retries_failed_events_and_parks_dead_ones,
    outbox_events_for_a_destination_resume_after_a_sequence,
    outbox_events_roll_back_with_their_transaction,
    outbox_concurrent_dispatchers_never_share_an_event,
    inbox_records_an_event_once,
    sandbox_sms_mailbox_lists_newest_first,
    ledger_posts_and_refuses_an_overdraft,
    ledger_transfers_are_idempotent_by_id,
    ledger_two_phase_transfers_post_void_and_expire,
    ledger_race_64_concurrent_debits_never_overdraw_or_double_post,
    ledger_a_pending_transfer_is_settled_once_under_a_race,
    audit_names_a_dead_event_and_a_stuck_claim,
    otp_sends_race_200_and_stay_within_the_phone_and_address_budgets,
);

async fn migrations_are_idempotent(db: &TestDb) {
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    db.store.ping().await.unwrap();
}

async fn idempotency_replays_the_saved_answer(db: &TestDb) {
    let s = &db.store;
    assert_eq!(
        s.idempotency_begin("p:bank", "k1", "h1", t0())
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    let saved = SavedResponse {
        status: 201,
        body: b"{\"id\":1}".to_vec(),
    };
    s.idempotency_complete("p:bank", "k1", &saved, t0())
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin("p:bank", "k1", "h1", t0() + Duration::hours(23))
            .await
            .unwrap(),
        IdempotencyBegin::Replay(saved)
    );
}

async fn idempotency_refuses_a_reused_key_with_another_body(db: &TestDb) {
    let s = &db.store;
    assert_eq!(
        s.idempotency_begin("p:bank", "k1", "h1", t0())
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    // Also while the first is still in progress.
    assert_eq!(
        s.idempotency_begin("p:bank", "k1", "h2", t0())
            .await
            .unwrap(),
        IdempotencyBegin::Mismatch
    );
    let saved = SavedResponse {
        status: 201,
        body: vec![],
    };
    s.idempotency_complete("p:bank", "k1", &saved, t0())
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin("p:bank", "k1", "h2", t0())
            .await
            .unwrap(),
        IdempotencyBegin::Mismatch
    );
}

async fn idempotency_is_scoped_per_caller(db: &TestDb) {
    let s = &db.store;
    assert_eq!(
        s.idempotency_begin("p:a", "k", "h1", t0()).await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        s.idempotency_begin("p:b", "k", "h2", t0()).await.unwrap(),
        IdempotencyBegin::Started
    );
}

async fn idempotency_reports_a_concurrent_duplicate(db: &TestDb) {
    let s = &db.store;
    assert_eq!(
        s.idempotency_begin("p", "k", "h", t0()).await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        s.idempotency_begin("p", "k", "h", t0()).await.unwrap(),
        IdempotencyBegin::InProgress
    );
    // The first request died: after the lock lease, a retry takes over.
    let later = t0() + Duration::seconds(IDEMPOTENCY_LOCK_SECS + 1);
    assert_eq!(
        s.idempotency_begin("p", "k", "h", later).await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        s.idempotency_begin("p", "k", "h", later).await.unwrap(),
        IdempotencyBegin::InProgress
    );
}

/// A request renews its claim while it runs; a claim nobody renews (its
/// process is gone) is free after IDEMPOTENCY_LOCK_SECS, well under the
/// minute a crashed process used to block its key for.
async fn idempotency_a_running_claim_is_renewed_and_a_dead_one_freed_within_seconds(db: &TestDb) {
    let s = &db.store;
    const { assert!(IDEMPOTENCY_LOCK_SECS <= 10) };
    let at = |secs: i64| t0() + Duration::seconds(secs);
    assert_eq!(
        s.idempotency_begin("p", "alive", "h", at(0)).await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        s.idempotency_begin("p", "dead", "h", at(0)).await.unwrap(),
        IdempotencyBegin::Started
    );
    // Only the live request renews, every few seconds.
    for t in [3, 6, 9] {
        assert!(s.idempotency_renew("p", "alive", at(t)).await.unwrap());
    }
    let later = at(IDEMPOTENCY_LOCK_SECS + 1);
    assert_eq!(
        s.idempotency_begin("p", "alive", "h", later).await.unwrap(),
        IdempotencyBegin::InProgress,
        "a renewed claim is not taken over"
    );
    assert_eq!(
        s.idempotency_begin("p", "dead", "h", later).await.unwrap(),
        IdempotencyBegin::Started,
        "a claim nobody renews is free within seconds"
    );
    // A finished request's claim is not renewed back to life.
    s.idempotency_complete(
        "p",
        "alive",
        &SavedResponse {
            status: 201,
            body: b"{}".to_vec(),
        },
        later,
    )
    .await
    .unwrap();
    assert!(!s.idempotency_renew("p", "alive", later).await.unwrap());
}

async fn idempotency_abandoned_claims_can_be_retried(db: &TestDb) {
    let s = &db.store;
    assert_eq!(
        s.idempotency_begin("p", "k", "h", t0()).await.unwrap(),
        IdempotencyBegin::Started
    );
    s.idempotency_abandon("p", "k").await.unwrap();
    assert_eq!(
        s.idempotency_begin("p", "k", "h2", t0()).await.unwrap(),
        IdempotencyBegin::Started
    );
}

async fn idempotency_answers_expire_after_the_ttl(db: &TestDb) {
    let s = &db.store;
    s.idempotency_begin("p", "k", "h", t0()).await.unwrap();
    s.idempotency_complete(
        "p",
        "k",
        &SavedResponse {
            status: 200,
            body: vec![],
        },
        t0(),
    )
    .await
    .unwrap();
    let expired = t0() + Duration::seconds(IDEMPOTENCY_TTL_SECS + 1);
    assert_eq!(s.idempotency_purge(t0()).await.unwrap(), 0);
    assert_eq!(s.idempotency_purge(expired).await.unwrap(), 1);
    assert_eq!(
        s.idempotency_begin("p", "k", "other", expired)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
}

async fn idempotency_one_winner_under_a_race(db: &TestDb) {
    let store = Arc::new(db.store.clone());
    let tasks = (0..32).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .idempotency_begin("p", "race", "h", t0())
                .await
                .unwrap()
        })
    });
    let outcomes = futures::future::join_all(tasks).await;
    let started = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(IdempotencyBegin::Started)))
        .count();
    let in_progress = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(IdempotencyBegin::InProgress)))
        .count();
    assert_eq!((started, in_progress), (1, 31));
}

async fn nonces_are_single_use_per_partner(db: &TestDb) {
    let s = &db.store;
    let (a, b) = (partner("bank-a"), partner("bank-b"));
    assert!(s
        .nonce_first_use(&a, "n-0000000000000001", t0())
        .await
        .unwrap());
    assert!(!s
        .nonce_first_use(&a, "n-0000000000000001", t0())
        .await
        .unwrap());
    assert!(s
        .nonce_first_use(&b, "n-0000000000000001", t0())
        .await
        .unwrap());
}

async fn nonces_are_forgotten_after_retention(db: &TestDb) {
    let s = &db.store;
    let a = partner("bank-a");
    s.nonce_first_use(&a, "n-0000000000000001", t0())
        .await
        .unwrap();
    assert_eq!(
        s.nonce_purge(t0() + Duration::seconds(NONCE_RETENTION_SECS - 1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.nonce_purge(t0() + Duration::seconds(NONCE_RETENTION_SECS + 1))
            .await
            .unwrap(),
        1
    );
}

fn event(n: i64, destination: Destination) -> NewEvent {
    NewEvent::new(
        "test.happened".parse().unwrap(),
        destination,
        serde_json::json!({ "n": n }),
        t0(),
    )
}

fn bank_dest() -> Destination {
    Destination::Partner(partner("demo-bank"))
}

async fn outbox_claims_in_order_and_hides_claimed_events(db: &TestDb) {
    let s = &db.store;
    let events: Vec<_> = (0..5).map(|n| event(n, bank_dest())).collect();
    s.outbox_append(&events).await.unwrap();
    let lease = t0() + Duration::seconds(30);
    let first = s.outbox_claim_due(t0(), lease, 3).await.unwrap();
    assert_eq!(
        first
            .iter()
            .map(|e| e.payload["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(first[0].id, events[0].id);
    assert_eq!(first[0].destination, bank_dest());
    let second = s.outbox_claim_due(t0(), lease, 10).await.unwrap();
    assert_eq!(
        second.len(),
        2,
        "claimed events are hidden until their lease ends"
    );
    for e in first.iter().chain(&second) {
        s.outbox_mark_delivered(&e.id, t0()).await.unwrap();
    }
    assert!(s
        .outbox_claim_due(lease + Duration::hours(1), lease, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.outbox_stats().await.unwrap(),
        OutboxStats {
            pending: 0,
            dead: 0
        }
    );
    let (got, delivered) = s.outbox_get(&events[4].id).await.unwrap().unwrap();
    assert!(delivered);
    assert_eq!(got.payload, serde_json::json!({ "n": 4 }));
}

/// A busy destination's claimed events are handed back in one write: due
/// again at the time given, no attempt counted, a delivered one untouched.
async fn outbox_deferred_events_come_back_at_their_time_with_no_attempt_counted(db: &TestDb) {
    let s = &db.store;
    let events: Vec<_> = (0..4).map(|n| event(n, bank_dest())).collect();
    s.outbox_append(&events).await.unwrap();
    let lease = t0() + Duration::seconds(30);
    let claimed = s.outbox_claim_due(t0(), lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 4);
    s.outbox_mark_delivered(&events[0].id, t0()).await.unwrap();
    s.outbox_defer(&[], t0()).await.unwrap();
    let back = t0() + Duration::seconds(1);
    let ids: Vec<_> = events[..3].iter().map(|e| e.id.clone()).collect();
    s.outbox_defer(&ids, back).await.unwrap();
    assert!(s
        .outbox_claim_due(t0(), lease, 10)
        .await
        .unwrap()
        .is_empty());
    let again = s.outbox_claim_due(back, lease, 10).await.unwrap();
    let n: Vec<_> = again
        .iter()
        .map(|e| (e.payload["n"].as_i64().unwrap(), e.attempts))
        .collect();
    assert_eq!(
        n,
        [(1, 0), (2, 0)],
        "the delivered one stays delivered; the fourth is still leased"
    );
    assert!(s.outbox_get(&events[0].id).await.unwrap().unwrap().1);
}

async fn outbox_retries_failed_events_and_parks_dead_ones(db: &TestDb) {
    let s = &db.store;
    let e = event(1, bank_dest());
    let dead = event(2, bank_dest());
    s.outbox_append(&[e.clone(), dead.clone()]).await.unwrap();
    let lease = t0() + Duration::seconds(30);
    assert_eq!(s.outbox_claim_due(t0(), lease, 10).await.unwrap().len(), 2);
    let retry_at = t0() + Duration::seconds(2);
    s.outbox_mark_failed(&e.id, "connection refused", Some(retry_at), t0())
        .await
        .unwrap();
    s.outbox_mark_failed(&dead.id, "gave up", None, t0())
        .await
        .unwrap();
    assert!(s
        .outbox_claim_due(t0() + Duration::seconds(1), lease, 10)
        .await
        .unwrap()
        .is_empty());
    let again = s.outbox_claim_due(retry_at, lease, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id.clone(), again[0].attempts), (e.id.clone(), 1));
    assert_eq!(
        s.outbox_stats().await.unwrap(),
        OutboxStats {
            pending: 1,
            dead: 1
        }
    );
}

async fn outbox_events_for_a_destination_resume_after_a_sequence(db: &TestDb) {
    let s = &db.store;
    let phone = Destination::Device(DeviceId::generate());
    let other = Destination::Device(DeviceId::generate());
    s.outbox_append(&[
        event(1, phone.clone()),
        event(2, other.clone()),
        event(3, phone.clone()),
    ])
    .await
    .unwrap();
    let all = s.outbox_events_for(&phone, 0, 100).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|e| e.payload["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 3]
    );
    let rest = s.outbox_events_for(&phone, all[0].seq, 100).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].payload["n"], 3);
}

async fn outbox_events_roll_back_with_their_transaction(db: &TestDb) {
    let s = &db.store;
    {
        let mut tx = s.begin_write().await.unwrap();
        paybridge_store::outbox::append_events(tx.conn(), &[event(1, bank_dest())])
            .await
            .unwrap();
        // Dropped without commit: the state change failed, so must its events.
    }
    assert_eq!(s.outbox_stats().await.unwrap().pending, 0);
    let mut tx = s.begin_write().await.unwrap();
    paybridge_store::outbox::append_events(tx.conn(), &[event(2, bank_dest())])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.outbox_stats().await.unwrap().pending, 1);
}

async fn outbox_concurrent_dispatchers_never_share_an_event(db: &TestDb) {
    let s = &db.store;
    let events: Vec<_> = (0..200).map(|n| event(n, bank_dest())).collect();
    s.outbox_append(&events).await.unwrap();
    let store = Arc::new(s.clone());
    let lease = t0() + Duration::seconds(30);
    let dispatchers = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.outbox_claim_due(t0(), lease, 7).await.unwrap();
                if batch.is_empty() {
                    break mine;
                }
                mine.extend(batch.into_iter().map(|e| e.id));
            }
        })
    });
    let claimed: Vec<EventId> = futures::future::join_all(dispatchers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    let unique: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), 200, "every event claimed");
    assert_eq!(unique.len(), 200, "no event claimed twice");
}

async fn inbox_records_an_event_once(db: &TestDb) {
    let s = &db.store;
    let wallet = partner("wallet");
    let id = EventId::generate();
    let payload = serde_json::json!({"binding": "bnd_x"});
    assert!(s
        .inbox_record(&wallet, &id, "binding.activated", &payload, t0())
        .await
        .unwrap());
    assert!(!s
        .inbox_record(&wallet, &id, "binding.activated", &payload, t0())
        .await
        .unwrap());
    assert_eq!(s.inbox_count(&wallet).await.unwrap(), 1);
}

async fn sandbox_sms_mailbox_lists_newest_first(db: &TestDb) {
    let s = &db.store;
    for (i, phone) in ["13800000001", "13800000002", "13800000001"]
        .iter()
        .enumerate()
    {
        s.sms_record(&SmsMessage {
            id: SmsId::generate(),
            phone: phone.to_string(),
            body: format!("message {i}"),
            sent_at: t0() + Duration::seconds(i as i64),
        })
        .await
        .unwrap();
    }
    let inbox = s.sms_for_phone("13800000001", 10).await.unwrap();
    assert_eq!(
        inbox.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["message 2", "message 0"]
    );
    assert_eq!(s.sms_for_phone("13800000001", 1).await.unwrap().len(), 1);
    assert!(s.sms_for_phone("13900000000", 10).await.unwrap().is_empty());
}

// ---- ledger ----------------------------------------------------------------

use paybridge_domain::ledger::{
    Account, AccountFlags, AccountId, LedgerError, PendingState, TransferKind, TransferRequest,
};
use paybridge_domain::{Currency, Money};

async fn open(s: &Store, no_overdraft: bool) -> AccountId {
    let flags = AccountFlags {
        debits_must_not_exceed_credits: no_overdraft,
        ..Default::default()
    };
    let account = Account::new(AccountId::generate(), Currency::CNY, flags, 0);
    assert!(s.ledger_open_account(&account, t0()).await.unwrap());
    assert!(
        !s.ledger_open_account(&account, t0()).await.unwrap(),
        "an id is opened once"
    );
    account.id
}

fn transfer(
    id: &str,
    debit: &AccountId,
    credit: &AccountId,
    amount: i64,
    kind: TransferKind,
) -> TransferRequest {
    TransferRequest {
        id: id.parse().unwrap(),
        debit_account: debit.clone(),
        credit_account: credit.clone(),
        amount: Money::new(amount, Currency::CNY),
        kind,
    }
}

async fn submit(s: &Store, r: &TransferRequest) -> TransferOutcome {
    s.ledger_submit(r, &[], t0()).await.unwrap()
}

async fn balance(s: &Store, id: &AccountId) -> i64 {
    s.ledger_account(id)
        .await
        .unwrap()
        .unwrap()
        .balance()
        .amount_minor
}

/// Debits equal credits, and every account's totals equal its transfers.
async fn assert_ledger_balances(s: &Store) -> LedgerTotals {
    let totals = s.ledger_totals().await.unwrap();
    assert_eq!(totals.debits_posted, totals.credits_posted, "{totals:?}");
    assert_eq!(totals.debits_pending, totals.credits_pending, "{totals:?}");
    assert!(s.ledger_inconsistent_accounts().await.unwrap().is_empty());
    totals
}

async fn ledger_posts_and_refuses_an_overdraft(db: &TestDb) {
    let s = &db.store;
    let (bank, alice, shop) = (
        open(s, false).await,
        open(s, true).await,
        open(s, false).await,
    );
    assert!(matches!(
        submit(
            s,
            &transfer("fund", &bank, &alice, 1_000, TransferKind::Posted)
        )
        .await,
        TransferOutcome::Created(_)
    ));
    assert!(matches!(
        submit(
            s,
            &transfer("pay", &alice, &shop, 700, TransferKind::Posted)
        )
        .await,
        TransferOutcome::Created(_)
    ));
    assert_eq!(
        submit(
            s,
            &transfer("pay2", &alice, &shop, 301, TransferKind::Posted)
        )
        .await,
        TransferOutcome::Refused(LedgerError::ExceedsCredits)
    );
    assert_eq!(balance(s, &alice).await, 300);
    assert_eq!(
        submit(
            s,
            &transfer("x", &alice, &AccountId::generate(), 1, TransferKind::Posted)
        )
        .await,
        TransferOutcome::NotFound
    );
    assert!(
        s.ledger_transfer(&"pay2".parse().unwrap())
            .await
            .unwrap()
            .is_none(),
        "a refused transfer is not recorded"
    );
    let totals = assert_ledger_balances(s).await;
    assert_eq!((totals.accounts, totals.transfers), (3, 2));
}

async fn ledger_transfers_are_idempotent_by_id(db: &TestDb) {
    let s = &db.store;
    let (bank, alice) = (open(s, false).await, open(s, true).await);
    let fund = transfer("fund-1", &bank, &alice, 500, TransferKind::Posted);
    // A clock with sub-microsecond precision: the answer must still equal what is stored.
    let now = t0() + Duration::nanoseconds(1_234);
    let TransferOutcome::Created(first) = s.ledger_submit(&fund, &[], now).await.unwrap() else {
        panic!("created")
    };
    assert_eq!(
        s.ledger_transfer(&fund.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(submit(s, &fund).await, TransferOutcome::Exists(first));
    assert_eq!(
        submit(
            s,
            &transfer("fund-1", &bank, &alice, 501, TransferKind::Posted)
        )
        .await,
        TransferOutcome::Refused(LedgerError::ExistsWithDifferentFields)
    );
    assert_eq!(balance(s, &alice).await, 500, "credited once");
    assert_ledger_balances(s).await;
}

async fn ledger_two_phase_transfers_post_void_and_expire(db: &TestDb) {
    let s = &db.store;
    let (bank, alice, shop) = (
        open(s, false).await,
        open(s, true).await,
        open(s, false).await,
    );
    submit(
        s,
        &transfer("fund", &bank, &alice, 1_000, TransferKind::Posted),
    )
    .await;
    let hold = |id: &str, amount| {
        transfer(
            id,
            &alice,
            &shop,
            amount,
            TransferKind::Pending { timeout_secs: 60 },
        )
    };
    assert!(matches!(
        submit(s, &hold("auth-1", 600)).await,
        TransferOutcome::Created(_)
    ));
    assert_eq!(
        submit(s, &hold("auth-2", 500)).await,
        TransferOutcome::Refused(LedgerError::ExceedsCredits),
        "reserved funds are not available"
    );
    // Capture part of the first; the rest is released.
    let capture = transfer(
        "cap-1",
        &alice,
        &shop,
        450,
        TransferKind::PostPending {
            pending_id: "auth-1".parse().unwrap(),
        },
    );
    assert!(matches!(
        submit(s, &capture).await,
        TransferOutcome::Created(_)
    ));
    assert_eq!(
        submit(s, &capture).await.clone(),
        TransferOutcome::Exists(
            s.ledger_transfer(&"cap-1".parse().unwrap())
                .await
                .unwrap()
                .unwrap()
        )
    );
    let again = transfer(
        "cap-2",
        &alice,
        &shop,
        0,
        TransferKind::PostPending {
            pending_id: "auth-1".parse().unwrap(),
        },
    );
    assert_eq!(
        submit(s, &again).await,
        TransferOutcome::Refused(LedgerError::PendingAlreadyPosted)
    );
    let alice_now = s.ledger_account(&alice).await.unwrap().unwrap();
    assert_eq!(
        (alice_now.balance().amount_minor, alice_now.debits_pending),
        (550, 0)
    );
    // Void one, expire another.
    submit(s, &hold("auth-3", 100)).await;
    let void = transfer(
        "void-3",
        &alice,
        &shop,
        0,
        TransferKind::VoidPending {
            pending_id: "auth-3".parse().unwrap(),
        },
    );
    assert!(matches!(
        submit(s, &void).await,
        TransferOutcome::Created(_)
    ));
    submit(s, &hold("auth-4", 200)).await;
    assert_eq!(
        s.ledger_expire_due(t0() + Duration::seconds(59), 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.ledger_expire_due(t0() + Duration::seconds(60), 10)
            .await
            .unwrap(),
        1
    );
    let expired = s
        .ledger_transfer(&"auth-4".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expired.pending_state, Some(PendingState::Expired));
    let late = transfer(
        "cap-4",
        &alice,
        &shop,
        0,
        TransferKind::PostPending {
            pending_id: "auth-4".parse().unwrap(),
        },
    );
    assert_eq!(
        submit(s, &late).await,
        TransferOutcome::Refused(LedgerError::PendingExpired)
    );
    assert_eq!(
        s.ledger_account(&alice)
            .await
            .unwrap()
            .unwrap()
            .available()
            .amount_minor,
        550
    );
    let missing = transfer(
        "cap-5",
        &alice,
        &shop,
        0,
        TransferKind::PostPending {
            pending_id: "nope".parse().unwrap(),
        },
    );
    assert_eq!(submit(s, &missing).await, TransferOutcome::NotFound);
    assert_ledger_balances(s).await;
}

async fn ledger_race_64_concurrent_debits_never_overdraw_or_double_post(db: &TestDb) {
    let s = &db.store;
    let (bank, alice, shop) = (
        open(s, false).await,
        open(s, true).await,
        open(s, false).await,
    );
    // Enough for exactly 32 of the 64 debits.
    submit(
        s,
        &transfer("fund", &bank, &alice, 32 * 100, TransferKind::Posted),
    )
    .await;
    let before = assert_ledger_balances(s).await;
    let store = Arc::new(s.clone());
    // Each debit is submitted twice at once, as a client retrying would.
    let tasks = (0..64).flat_map(|i| {
        let r = transfer(
            &format!("debit-{i}"),
            &alice,
            &shop,
            100,
            TransferKind::Posted,
        );
        [0, 1].map(|_| {
            let (store, r) = (store.clone(), r.clone());
            tokio::spawn(async move {
                (
                    r.id.clone(),
                    store.ledger_submit(&r, &[], t0()).await.unwrap(),
                )
            })
        })
    });
    let outcomes: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let created: HashSet<_> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, TransferOutcome::Created(_)))
        .map(|(id, _)| id.clone())
        .collect();
    let created_count = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, TransferOutcome::Created(_)))
        .count();
    assert_eq!(
        created_count,
        created.len(),
        "no transfer id was created twice"
    );
    assert_eq!(created.len(), 32, "exactly the funded debits went through");
    for (id, o) in &outcomes {
        match o {
            TransferOutcome::Created(_) => {}
            TransferOutcome::Exists(t) => assert!(created.contains(id) && &t.id == id),
            TransferOutcome::Refused(LedgerError::ExceedsCredits) => assert!(!created.contains(id)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let alice_now = s.ledger_account(&alice).await.unwrap().unwrap();
    assert_eq!(
        alice_now.balance().amount_minor,
        0,
        "never below zero, nothing left"
    );
    assert_eq!(balance(s, &shop).await, 3_200);
    let after = assert_ledger_balances(s).await;
    assert_eq!(after.transfers, before.transfers + 32);
    // The sum of all balances never changes: what left alice arrived at shop.
    let sum = |t: &LedgerTotals| t.credits_posted - t.debits_posted;
    assert_eq!(sum(&before), sum(&after));
}

async fn ledger_a_pending_transfer_is_settled_once_under_a_race(db: &TestDb) {
    let s = &db.store;
    let (bank, alice, shop) = (
        open(s, false).await,
        open(s, true).await,
        open(s, false).await,
    );
    submit(
        s,
        &transfer("fund", &bank, &alice, 1_000, TransferKind::Posted),
    )
    .await;
    submit(
        s,
        &transfer(
            "auth",
            &alice,
            &shop,
            800,
            TransferKind::Pending { timeout_secs: 600 },
        ),
    )
    .await;
    let store = Arc::new(s.clone());
    let tasks = (0..16).map(|i| {
        let pending_id = "auth".parse().unwrap();
        let kind = if i % 2 == 0 {
            TransferKind::PostPending { pending_id }
        } else {
            TransferKind::VoidPending { pending_id }
        };
        let r = transfer(&format!("settle-{i}"), &alice, &shop, 0, kind);
        let store = store.clone();
        tokio::spawn(async move { store.ledger_submit(&r, &[], t0()).await.unwrap() })
    });
    let outcomes: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, TransferOutcome::Created(_)))
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    let alice_now = s.ledger_account(&alice).await.unwrap().unwrap();
    assert_eq!(alice_now.debits_pending, 0);
    assert!(alice_now.balance().amount_minor == 200 || alice_now.balance().amount_minor == 1_000);
    assert_ledger_balances(s).await;
}

async fn audit_names_a_dead_event_and_a_stuck_claim(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.audit().await.unwrap(), AuditReport::default());
    let dead = event(1, bank_dest());
    s.outbox_append(std::slice::from_ref(&dead)).await.unwrap();
    s.outbox_claim_due(t0(), t0() + Duration::seconds(30), 10)
        .await
        .unwrap();
    s.outbox_mark_failed(&dead.id, "gave up", None, t0())
        .await
        .unwrap();
    s.idempotency_begin("p", "k", "h", t0()).await.unwrap();
    assert_eq!(
        s.audit().await.unwrap().breaches,
        vec![
            "1 dead outbox events".to_owned(),
            "1 idempotency claims stuck in_progress".to_owned()
        ]
    );
    s.idempotency_abandon("p", "k").await.unwrap();
    assert_eq!(s.audit().await.unwrap().breaches.len(), 1);
}

fn challenge(phone_index: &str, now: Timestamp) -> StoredOtp {
    StoredOtp {
        id: paybridge_domain::ids::OtpId::generate(),
        purpose: "binding your bank card".into(),
        phone_sealed: "sealed".into(),
        phone_index: phone_index.into(),
        phone_masked: "138****8000".into(),
        account: None,
        code_hash: "hash".into(),
        status: paybridge_domain::otp::OtpStatus::issued(now),
        version: 0,
    }
}

/// The per-phone hourly budget is checked and counted in the send's own
/// transaction: 200 concurrent sends to one phone record exactly the
/// budget, and a resend counts against it too.
async fn otp_sends_race_200_and_stay_within_the_phone_and_address_budgets(db: &TestDb) {
    let store = Arc::new(db.store.clone());
    let budget = SendBudget::phone_per_hour("phone-a", 10);
    let tasks = (0..200).map(|_| {
        let (store, budget) = (store.clone(), budget.clone());
        tokio::spawn(async move {
            store
                .otp_create(&challenge("phone-a", t0()), t0(), &budget)
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<OtpSend> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let sent = outcomes.iter().filter(|o| **o == OtpSend::Sent).count();
    assert_eq!(sent, 10, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, OtpSend::Sent | OtpSend::BudgetSpent { limit: 0 })));
    let counted = store
        .otp_sends_since("phone-a", t0() - Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(counted, 10);
    // Another phone has its own budget; a resend is a send.
    let other = challenge("phone-b", t0());
    assert_eq!(
        store
            .otp_create(&other, t0(), &SendBudget::phone_per_hour("phone-b", 2))
            .await
            .unwrap(),
        OtpSend::Sent
    );
    let later = t0() + Duration::minutes(2);
    let resent = paybridge_domain::otp::OtpStatus::issued(later);
    let resend = |version| {
        let (store, id) = (store.clone(), other.id.clone());
        async move {
            store
                .otp_resend(
                    &id,
                    version,
                    &resent,
                    "hash-2",
                    later,
                    &SendBudget::phone_per_hour("phone-b", 2),
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(resend(0).await, OtpSend::Sent);
    assert_eq!(resend(1).await, OtpSend::BudgetSpent { limit: 0 });
    assert_eq!(
        resend(0).await,
        OtpSend::BudgetSpent { limit: 0 },
        "the budget is checked first"
    );
    // An hour later the budget is back.
    let next_hour = t0() + Duration::minutes(61);
    assert_eq!(
        store
            .otp_create(&challenge("phone-a", next_hour), next_hour, &budget)
            .await
            .unwrap(),
        OtpSend::Sent
    );
    // A wider budget (one client address) over 200 different phones at
    // once: every phone is within its own, the address's holds exactly.
    let tasks = (0..200).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let phone = format!("phone-{i}-of-one-address");
            let mut budget = SendBudget::phone_per_hour(&phone, 10);
            budget.limits.push(paybridge_store::SendLimit {
                key: "ip:one-address".into(),
                max: 50,
                window_secs: 3600,
            });
            store
                .otp_create(&challenge(&phone, next_hour), next_hour, &budget)
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<OtpSend> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == OtpSend::Sent).count(), 50);
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, OtpSend::Sent | OtpSend::BudgetSpent { limit: 1 })));
    assert_eq!(
        store
            .otp_sends_since("ip:one-address", next_hour - Duration::hours(1))
            .await
            .unwrap(),
        50
    );
    // Sends no budget counts any more are forgotten.
    let purged = store
        .otp_sends_purge(next_hour + Duration::seconds(1))
        .await
        .unwrap();
    assert!(purged >= 112, "{purged}");
    assert_eq!(
        store.otp_sends_since("ip:one-address", t0()).await.unwrap(),
        0
    );
}
