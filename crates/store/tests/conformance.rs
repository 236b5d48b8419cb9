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
use paybridge_store::*;
use time::Duration;

fn t0() -> Timestamp {
    time::macros::datetime!(2026-11-23 08:00 UTC)
}

fn partner(s: &str) -> PartnerId {
    s.parse().unwrap()
}

/// Runs each named test on both dialects.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = paybridge_store::testing::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = paybridge_store::testing::TestDb::postgres().await {
                        super::$name(&db).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    migrations_are_idempotent,
    idempotency_replays_the_saved_answer,
    idempotency_refuses_a_reused_key_with_another_body,
    idempotency_is_scoped_per_caller,
    idempotency_reports_a_concurrent_duplicate,
    idempotency_abandoned_claims_can_be_retried,
    idempotency_answers_expire_after_the_ttl,
    idempotency_one_winner_under_a_race,
    nonces_are_single_use_per_partner,
    nonces_are_forgotten_after_retention,
    outbox_claims_in_order_and_hides_claimed_events,
    outbox_retries_failed_events_and_parks_dead_ones,
    outbox_events_for_a_destination_resume_after_a_sequence,
    outbox_events_roll_back_with_their_transaction,
    outbox_concurrent_dispatchers_never_share_an_event,
    inbox_records_an_event_once,
    sandbox_sms_mailbox_lists_newest_first,
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
