//! Login judgement against the real stores (`sqlite::…`, `postgres::…`):
//! racing wrong tries each count, and a correct try after the lock resets.

use std::sync::Arc;

use paybridge_domain::credentials::{PasswordGuard, LOGIN_LOCK_SECS};
use paybridge_domain::{ErrorCode, ManualClock, Timestamp};
use paybridge_kernel::login::{judge, LoginTry};
use paybridge_store::conformance;
use paybridge_store::testing::TestDb;
use paybridge_store::SessionStore;
use time::Duration;

fn t0() -> Timestamp {
    time::macros::datetime!(2026-11-23 08:00 UTC)
}

conformance!(login_counts_every_racing_wrong_try);

fn attempt(correct: bool) -> LoginTry<'static> {
    LoginTry {
        login_index: "login-index",
        correct,
        lock_secs: LOGIN_LOCK_SECS,
        wrong: "wrong login name or password",
    }
}

async fn login_counts_every_racing_wrong_try(db: &TestDb) {
    let clock = ManualClock::new(t0());
    let store = Arc::new(db.store.clone());
    let tasks = (0..12).map(|_| {
        let (store, clock) = (store.clone(), clock.clone());
        tokio::spawn(async move {
            judge(store.as_ref(), &clock, attempt(false))
                .await
                .unwrap_err()
                .code()
        })
    });
    let codes: Vec<ErrorCode> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let count = |c: ErrorCode| codes.iter().filter(|x| **x == c).count();
    // Every try that was judged is counted: four "wrong", then locked.
    assert_eq!(count(ErrorCode::CredentialsInvalid), 4, "{codes:?}");
    assert_eq!(
        count(ErrorCode::CredentialsInvalid)
            + count(ErrorCode::PasswordLocked)
            + count(ErrorCode::Contended),
        12,
        "{codes:?}"
    );
    let guard = db.store.login_guard("login-index").await.unwrap();
    assert_eq!(guard.failed_attempts, 5);
    assert_eq!(
        guard.locked_until,
        Some(t0() + Duration::seconds(LOGIN_LOCK_SECS))
    );
    // After the lock a correct try resets the counter.
    clock.advance(Duration::seconds(LOGIN_LOCK_SECS));
    judge(store.as_ref(), &clock, attempt(true)).await.unwrap();
    assert_eq!(
        db.store.login_guard("login-index").await.unwrap(),
        PasswordGuard::default()
    );
}
