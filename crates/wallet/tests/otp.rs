//! OTP challenges end to end through the sandbox SMS gateway, on both
//! stores, with a manual clock for expiry, resend waits and the hourly cap.

use std::sync::Arc;

use paybridge_adapters::sms::SandboxSmsGateway;
use paybridge_crypto::blind_index::BlindIndexKey;
use paybridge_crypto::master::MasterKey;
use paybridge_crypto::otp::OtpHasher;
use paybridge_domain::otp::{
    OTP_HOURLY_CAP, OTP_MAX_ATTEMPTS, OTP_RESEND_AFTER_SECS, OTP_TTL_SECS,
};
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::{Clock, ErrorCode, ManualClock, ServiceError};
use paybridge_store::testing::TestDb;
use paybridge_store::{KeyVault, OtpStore, SandboxStore};
use paybridge_wallet::otp::{OtpService, SendContext};
use time::Duration;

const PHONE: &str = "13812345678";

async fn service(db: &TestDb, clock: &ManualClock) -> OtpService {
    let store = Arc::new(db.store.clone());
    let vault = KeyVault::open(
        store.clone(),
        MasterKey::from_bytes(MasterKey::generate()),
        "wallet",
        clock.now(),
    )
    .await
    .unwrap();
    OtpService {
        store: store.clone(),
        sms: Arc::new(SandboxSmsGateway::new(store, Arc::new(clock.clone()))),
        hasher: OtpHasher::from_bytes([9; 32]),
        vault: Arc::new(vault),
        index_key: BlindIndexKey::from_bytes([8; 32]),
        clock: Arc::new(clock.clone()),
        caps: Default::default(),
    }
}

fn clock() -> ManualClock {
    ManualClock::new(time::macros::datetime!(2026-11-23 08:00 UTC))
}

fn phone() -> PhoneNumber {
    PHONE.parse().unwrap()
}

/// The code in the newest message to the phone.
async fn last_code(db: &TestDb) -> String {
    code_sent_to(db, &phone()).await
}

/// The code in the newest message to `phone`.
async fn code_sent_to(db: &TestDb, phone: &PhoneNumber) -> String {
    let inbox = db.store.sms_for_phone(phone.as_str(), 1).await.unwrap();
    let body = &inbox[0].body;
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned()
}

fn code_of(e: ServiceError) -> ErrorCode {
    e.code()
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(&paybridge_store::testing::TestDb::sqlite().await).await; }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Some(db) = paybridge_store::testing::TestDb::postgres().await { super::$name(&db).await; }
            }
        )* }
    };
}

both_stores!(
    a_delivered_code_verifies_once,
    five_wrong_codes_lock_the_challenge,
    codes_expire_after_five_minutes,
    resend_waits_and_replaces_the_code,
    a_phone_gets_at_most_ten_codes_an_hour,
    an_account_causes_at_most_thirty_codes_a_day_to_any_phones,
    a_hundred_wrong_codes_in_a_row_lock_the_phone_across_challenges,
    a_hundred_wrong_codes_in_a_row_lock_the_account_across_phones,
    concurrent_wrong_answers_are_all_counted,
    neither_code_nor_phone_is_stored_in_clear,
);

async fn a_delivered_code_verifies_once(db: &TestDb) {
    let c = clock();
    let otp = service(db, &c).await;
    let issued = otp
        .issue("binding", &phone(), &SendContext::default())
        .await
        .unwrap();
    assert_eq!(issued.phone_masked, "138****5678");
    assert_eq!(issued.expires_at, c.now() + Duration::seconds(OTP_TTL_SECS));
    let code = last_code(db).await;
    otp.verify(&issued.id, &code).await.unwrap();
    assert_eq!(
        code_of(otp.verify(&issued.id, &code).await.unwrap_err()),
        ErrorCode::OtpAlreadyUsed
    );
    let unknown = paybridge_domain::ids::OtpId::generate();
    assert_eq!(
        code_of(otp.verify(&unknown, &code).await.unwrap_err()),
        ErrorCode::NotFound
    );
}

async fn five_wrong_codes_lock_the_challenge(db: &TestDb) {
    let c = clock();
    let otp = service(db, &c).await;
    let issued = otp
        .issue("binding", &phone(), &SendContext::default())
        .await
        .unwrap();
    let code = last_code(db).await;
    for _ in 1..OTP_MAX_ATTEMPTS {
        assert_eq!(
            code_of(otp.verify(&issued.id, &wrong(&code)).await.unwrap_err()),
            ErrorCode::OtpInvalid
        );
    }
    // Junk counts as a wrong answer too.
    assert_eq!(
        code_of(otp.verify(&issued.id, "12ab").await.unwrap_err()),
        ErrorCode::OtpLocked
    );
    assert_eq!(
        code_of(otp.verify(&issued.id, &code).await.unwrap_err()),
        ErrorCode::OtpLocked
    );
    let stored = db.store.otp_get(&issued.id).await.unwrap().unwrap();
    assert_eq!(stored.status.attempts, OTP_MAX_ATTEMPTS);
}

async fn codes_expire_after_five_minutes(db: &TestDb) {
    let c = clock();
    let otp = service(db, &c).await;
    let issued = otp
        .issue("binding", &phone(), &SendContext::default())
        .await
        .unwrap();
    let code = last_code(db).await;
    c.advance(Duration::seconds(OTP_TTL_SECS));
    assert_eq!(
        code_of(otp.verify(&issued.id, &code).await.unwrap_err()),
        ErrorCode::OtpExpired
    );
}

async fn resend_waits_and_replaces_the_code(db: &TestDb) {
    let c = clock();
    let otp = service(db, &c).await;
    let issued = otp
        .issue("binding", &phone(), &SendContext::default())
        .await
        .unwrap();
    let first = last_code(db).await;
    assert_eq!(
        code_of(
            otp.resend(&issued.id, &SendContext::default())
                .await
                .unwrap_err()
        ),
        ErrorCode::OtpResendTooSoon
    );
    c.advance(Duration::seconds(OTP_RESEND_AFTER_SECS));
    let again = otp
        .resend(&issued.id, &SendContext::default())
        .await
        .unwrap();
    assert_eq!(again.expires_at, c.now() + Duration::seconds(OTP_TTL_SECS));
    let second = last_code(db).await;
    assert_eq!(db.store.sms_for_phone(PHONE, 10).await.unwrap().len(), 2);
    if first != second {
        assert_eq!(
            code_of(otp.verify(&issued.id, &first).await.unwrap_err()),
            ErrorCode::OtpInvalid
        );
    }
    otp.verify(&issued.id, &second).await.unwrap();
}

async fn a_phone_gets_at_most_ten_codes_an_hour(db: &TestDb) {
    let c = clock();
    let otp = service(db, &c).await;
    for _ in 0..OTP_HOURLY_CAP {
        otp.issue("binding", &phone(), &SendContext::default())
            .await
            .unwrap();
        c.advance(Duration::seconds(1));
    }
    assert_eq!(
        code_of(
            otp.issue("binding", &phone(), &SendContext::default())
                .await
                .unwrap_err()
        ),
        ErrorCode::OtpRateLimited
    );
    let other: PhoneNumber = "13900000000".parse().unwrap();
    otp.issue("binding", &other, &SendContext::default())
        .await
        .unwrap();
    c.advance(Duration::hours(1));
    otp.issue("binding", &phone(), &SendContext::default())
        .await
        .unwrap();
}

/// Attack: one account asks for codes to many phones (binding cards whose
/// reserved phones the attacker picks): its own budget holds.
async fn an_account_causes_at_most_thirty_codes_a_day_to_any_phones(db: &TestDb) {
    let c = clock();
    let otp = service(db, &c).await;
    let account: paybridge_domain::ids::UserId = paybridge_domain::ids::UserId::generate();
    let ctx = SendContext::new(Some(&account), None);
    for i in 0..paybridge_domain::otp::OTP_ACCOUNT_DAILY_CAP {
        let to: PhoneNumber = format!("1350000{i:04}").parse().unwrap();
        otp.issue("binding", &to, &ctx).await.unwrap();
        c.advance(Duration::minutes(10));
    }
    let fresh: PhoneNumber = "13599999999".parse().unwrap();
    let refused = otp.issue("binding", &fresh, &ctx).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::OtpRateLimited);
    assert!(refused.to_string().contains("account"), "{refused}");
    // Another account, and the same one a day later, may.
    otp.issue("binding", &fresh, &SendContext::default())
        .await
        .unwrap();
    c.advance(Duration::hours(24));
    otp.issue("binding", &fresh, &ctx).await.unwrap();
}

/// Attack: guess codes five at a time, asking for a new challenge after
/// each lock (NIST SP 800-63B 5.2.2: at most 100 failures in a row).
async fn a_hundred_wrong_codes_in_a_row_lock_the_phone_across_challenges(db: &TestDb) {
    let c = clock();
    let otp = service(db, &c).await;
    let ctx = SendContext::default();
    let mut wrong_in_a_row = 0;
    let mut challenges = 0;
    while wrong_in_a_row < paybridge_domain::otp::OTP_MAX_CONSECUTIVE_FAILURES {
        let issued = otp.issue("binding", &phone(), &ctx).await.unwrap();
        challenges += 1;
        let right = last_code(db).await;
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        for _ in 0..OTP_MAX_ATTEMPTS {
            otp.verify(&issued.id, wrong).await.unwrap_err();
            wrong_in_a_row += 1;
        }
        // Within the phone's hourly budget of codes.
        c.advance(Duration::minutes(7));
        if challenges == 10 {
            // A right answer in between starts the count again.
            let ok = otp.issue("binding", &phone(), &ctx).await.unwrap();
            otp.verify(&ok.id, &last_code(db).await).await.unwrap();
            wrong_in_a_row = 0;
            c.advance(Duration::minutes(7));
        }
    }
    assert_eq!(challenges, 30);
    // Locked: no new code, nor an answer to an open challenge, however right.
    let refused = otp.issue("binding", &phone(), &ctx).await.unwrap_err();
    assert_eq!(code_of(refused), ErrorCode::OtpLocked);
    c.advance(Duration::days(7));
    let refused = otp.issue("binding", &phone(), &ctx).await.unwrap_err();
    assert_eq!(
        code_of(refused),
        ErrorCode::OtpLocked,
        "time does not unlock it"
    );
    // Other phones are not affected; a step-up that is not by SMS unlocks.
    let other: PhoneNumber = "13900000000".parse().unwrap();
    otp.issue("binding", &other, &ctx).await.unwrap();
    otp.unlock_phone(&phone()).await.unwrap();
    let issued = otp.issue("binding", &phone(), &ctx).await.unwrap();
    otp.verify(&issued.id, &last_code(db).await).await.unwrap();
}

/// Attack: one account fails codes sent to many phones (a binding's code
/// goes to the bank's phone): the account's count locks its codes too.
async fn a_hundred_wrong_codes_in_a_row_lock_the_account_across_phones(db: &TestDb) {
    let c = clock();
    let otp = service(db, &c).await;
    let account = paybridge_domain::ids::UserId::generate();
    let ctx = SendContext::new(Some(&account), None);
    let phones: Vec<PhoneNumber> = (0..21)
        .map(|i| format!("1390000{i:04}").parse().unwrap())
        .collect();
    let per_challenge = OTP_MAX_ATTEMPTS;
    let needed = paybridge_domain::otp::OTP_MAX_CONSECUTIVE_FAILURES / per_challenge;
    for p in &phones[..needed as usize] {
        let issued = otp.issue("binding", p, &ctx).await.unwrap();
        let wrong = if code_sent_to(db, p).await == "000000" {
            "111111"
        } else {
            "000000"
        };
        for _ in 0..per_challenge {
            otp.verify(&issued.id, wrong).await.unwrap_err();
        }
    }
    // Locked for the account, at any phone, also an open challenge's answer.
    let last = &phones[needed as usize];
    let refused = otp.issue("binding", last, &ctx).await.unwrap_err();
    let why = format!("{refused:?}");
    assert_eq!(code_of(refused), ErrorCode::OtpLocked);
    assert!(why.contains("this account"), "{why}");
    // The phones themselves, for anyone else, are not locked (each had
    // five wrong answers), and neither is another account.
    let other = paybridge_domain::ids::UserId::generate();
    let issued = otp
        .issue("binding", last, &SendContext::new(Some(&other), None))
        .await
        .unwrap();
    otp.verify(&issued.id, &code_sent_to(db, last).await)
        .await
        .unwrap();
    // A step-up that is not by SMS unlocks the account.
    otp.unlock_account(&account).await.unwrap();
    otp.issue("binding", last, &ctx).await.unwrap();
}

async fn concurrent_wrong_answers_are_all_counted(db: &TestDb) {
    let c = clock();
    let otp = Arc::new(service(db, &c).await);
    let issued = otp
        .issue("binding", &phone(), &SendContext::default())
        .await
        .unwrap();
    let code = last_code(db).await;
    let tasks = (0..20).map(|_| {
        let (otp, id, guess) = (otp.clone(), issued.id.clone(), wrong(&code));
        tokio::spawn(async move { otp.verify(&id, &guess).await })
    });
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let invalid = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.code() == ErrorCode::OtpInvalid))
        .count();
    assert!(
        invalid <= (OTP_MAX_ATTEMPTS - 1) as usize,
        "{invalid} wrong answers judged as not yet locked"
    );
    let stored = db.store.otp_get(&issued.id).await.unwrap().unwrap();
    assert_eq!(stored.status.attempts, OTP_MAX_ATTEMPTS);
    assert_eq!(
        code_of(otp.verify(&issued.id, &code).await.unwrap_err()),
        ErrorCode::OtpLocked
    );
}

async fn neither_code_nor_phone_is_stored_in_clear(db: &TestDb) {
    let c = clock();
    let otp = service(db, &c).await;
    let issued = otp
        .issue("binding", &phone(), &SendContext::default())
        .await
        .unwrap();
    let code = last_code(db).await;
    let stored = db.store.otp_get(&issued.id).await.unwrap().unwrap();
    let row = format!("{stored:?}");
    assert!(!row.contains(&code), "{row}");
    assert!(!row.contains(PHONE), "{row}");
    assert_eq!(stored.phone_masked, "138****5678");
}
