//! Conformance of the stores behind accounts, sessions, cards, devices and
//! encryption keys, on SQLite and PostgreSQL (`sqlite::…`, `postgres::…`).

use std::sync::Arc;

use paybridge_crypto::master::MasterKey;
use paybridge_domain::account::AccountStatus;
use paybridge_domain::card::CardType;
use paybridge_domain::credentials::PasswordGuard;
use paybridge_domain::device::{DeviceFilter, DeviceStatus, DeviceType, MAX_ACTIVE_DEVICES};
use paybridge_domain::ids::{
    CardId, CeremonyId, CredentialId, CustomerId, DeviceId, SessionId, UserId,
};
use paybridge_domain::ledger::{Account, AccountFlags, AccountId};
use paybridge_domain::{Currency, Timestamp};
use paybridge_store::conformance;
use paybridge_store::keys::sealed_context;
use paybridge_store::testing::TestDb;
use paybridge_store::*;
use time::Duration;

fn t0() -> Timestamp {
    time::macros::datetime!(2026-11-23 08:00 UTC)
}

conformance!(
    every_sealed_column_of_the_schema_is_rotated,
    vault_rotation_rewraps_every_value_and_running_vaults_follow,
    vault_refuses_a_different_master_key,
    sessions_are_found_by_token_hash_until_revoked_or_expired,
    bank_customers_and_cards_are_unique_and_cards_open_their_account,
    wallet_users_are_unique_by_phone_and_by_identity_under_a_race,
    devices_are_limited_and_revoking_removes_credential_and_sessions,
    a_device_keeps_its_key_and_is_trusted_when_a_trusted_device_paired_it,
    ceremonies_are_taken_once_under_a_race,
    credential_counter_updates_are_compare_and_set,
);

fn master() -> MasterKey {
    MasterKey::from_bytes(zeroize::Zeroizing::new([42u8; 32]))
}

async fn vault(db: &TestDb) -> KeyVault {
    KeyVault::open(Arc::new(db.store.clone()), master(), "issuer", t0())
        .await
        .unwrap()
}

async fn every_sealed_column_of_the_schema_is_rotated(db: &TestDb) {
    let in_schema = db.store.columns_ending_with("_sealed").await.unwrap();
    assert!(in_schema.len() >= 8, "{in_schema:?}");
    for (table, column) in &in_schema {
        assert!(
            SEALED_COLUMNS
                .iter()
                .any(|c| c.table == table && c.column == column),
            "{table}.{column} holds sealed values but is not in SEALED_COLUMNS: rotation would skip it"
        );
    }
}

async fn customer(db: &TestDb, v: &KeyVault, username: &str, id_index: &str) -> StoredCustomer {
    let id = CustomerId::generate();
    let seal = |col: usize, text: &str| {
        let (v, id) = (v, id.clone());
        let text = text.to_owned();
        async move {
            v.seal(&SEALED_COLUMNS[col], id.as_str(), text.as_bytes())
                .await
        }
    };
    let c = StoredCustomer {
        username: username.into(),
        password_hash: "$argon2id$test".into(),
        name_sealed: seal(1, "张三").await,
        name_masked: "*三".into(),
        id_number_sealed: seal(2, "110105199003071239").await,
        id_number_index: id_index.into(),
        phone_sealed: seal(3, "13800138000").await,
        phone_index: format!("phone-{username}"),
        phone_masked: "138****8000".into(),
        created_at: t0(),
        id,
    };
    assert_eq!(
        db.store.bank_customer_create(&c).await.unwrap(),
        BankCreate::Created
    );
    c
}

async fn vault_rotation_rewraps_every_value_and_running_vaults_follow(db: &TestDb) {
    let v = vault(db).await;
    let other_server = vault(db).await;
    let sealing_server = vault(db).await;
    let first_key = v.active_key_id().await;
    let c = customer(db, &v, "zhang.san", "idx-1").await;
    customer(db, &v, "li.si", "idx-2").await;

    let report = v.rotate(t0()).await.unwrap();
    assert_eq!(report.previous, first_key);
    assert_ne!(report.active, first_key);
    assert_eq!((report.rewrapped, report.current), (6, 0));

    let stored = db.store.bank_customer(&c.id).await.unwrap().unwrap();
    assert!(stored.name_sealed.contains(&report.active));
    assert_ne!(stored.name_sealed, c.name_sealed);
    // A server that started before the rotation reloads on the unknown key.
    let name = other_server
        .open_text(&SEALED_COLUMNS[1], c.id.as_str(), &stored.name_sealed)
        .await
        .unwrap();
    assert_eq!(name.expose(), "张三");
    // A server that only seals goes on with the old key until it reads
    // the ring again (the server does every KEY_REFRESH_SECS).
    assert_eq!(sealing_server.active_key_id().await, first_key);
    sealing_server.reload().await.unwrap();
    assert_eq!(sealing_server.active_key_id().await, report.active);
    let sealed = sealing_server
        .seal(&SEALED_COLUMNS[1], c.id.as_str(), "张三".as_bytes())
        .await;
    assert!(sealed.contains(&report.active));
    // And values sealed under the old key still open.
    let old = other_server
        .open_text(&SEALED_COLUMNS[1], c.id.as_str(), &c.name_sealed)
        .await
        .unwrap();
    assert_eq!(old.expose(), "张三");
    // A value moved to another row does not open there.
    assert!(v
        .open_text(&SEALED_COLUMNS[1], "cus_other", &stored.name_sealed)
        .await
        .is_err());
    assert_eq!(
        sealed_context(&SEALED_COLUMNS[1], "cus_x"),
        "bank_customers.name_sealed:cus_x"
    );

    let again = v.rotate(t0()).await.unwrap();
    assert_eq!((again.rewrapped, again.current), (6, 0));
    assert_eq!(db.store.kek_list().await.unwrap().len(), 3);
    assert_eq!(
        db.store
            .kek_list()
            .await
            .unwrap()
            .iter()
            .filter(|k| k.active)
            .count(),
        1
    );
}

async fn vault_refuses_a_different_master_key(db: &TestDb) {
    vault(db).await;
    let wrong = MasterKey::from_bytes(zeroize::Zeroizing::new([7u8; 32]));
    let err = KeyVault::open(Arc::new(db.store.clone()), wrong, "issuer", t0())
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::WrongMasterKey(_)), "{err}");
}

fn session(subject: &str, hash: &str, device: Option<DeviceId>) -> StoredSession {
    StoredSession {
        id: SessionId::generate(),
        token_hash: hash.into(),
        subject: subject.into(),
        key_thumbprint: device.as_ref().map(|d| format!("jkt-of-{d}")),
        device_id: device,
        created_at: t0(),
        expires_at: t0() + Duration::hours(1),
        revoked_at: None,
    }
}

async fn sessions_are_found_by_token_hash_until_revoked_or_expired(db: &TestDb) {
    let s = session("usr_a", "hash-a", None);
    db.store.session_create(&s).await.unwrap();
    let found = db.store.session_by_token("hash-a").await.unwrap().unwrap();
    assert_eq!(found, s);
    assert!(found.is_live(t0()));
    assert!(!found.is_live(t0() + Duration::hours(1)));
    assert!(db.store.session_by_token("hash-b").await.unwrap().is_none());
    // Only its subject can revoke it.
    assert!(!db.store.session_revoke(&s.id, "usr_b", t0()).await.unwrap());
    assert!(db.store.session_revoke(&s.id, "usr_a", t0()).await.unwrap());
    assert!(!db.store.session_revoke(&s.id, "usr_a", t0()).await.unwrap());
    let revoked = db.store.session_by_token("hash-a").await.unwrap().unwrap();
    assert!(!revoked.is_live(t0()));
}

fn card(customer: &CustomerId, pan_index: &str, account: &AccountId) -> StoredCard {
    StoredCard {
        id: CardId::generate(),
        customer_id: customer.clone(),
        pan_sealed: "pb1.sealed".into(),
        pan_index: pan_index.into(),
        last4: "0014".into(),
        card_type: CardType::Debit,
        expiry: "12/30".into(),
        account_id: account.clone(),
        status: paybridge_domain::card::CardStatus::Active,
        created_at: t0(),
        card_code: None,
        product: None,
    }
}

async fn bank_customers_and_cards_are_unique_and_cards_open_their_account(db: &TestDb) {
    let v = vault(db).await;
    let c = customer(db, &v, "zhang.san", "idx-1").await;
    // Same login name, or same ID number: refused.
    let mut dup = c.clone();
    dup.id = CustomerId::generate();
    assert_eq!(
        db.store.bank_customer_create(&dup).await.unwrap(),
        BankCreate::Duplicate
    );
    dup.username = "other".into();
    assert_eq!(
        db.store.bank_customer_create(&dup).await.unwrap(),
        BankCreate::Duplicate
    );
    assert_eq!(
        db.store
            .bank_customer_by_id_number("idx-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        c.id
    );

    let account = Account::new(
        AccountId::generate(),
        Currency::CNY,
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
        0,
    );
    let first = card(&c.id, "pan-1", &account.id);
    assert_eq!(
        db.store.bank_card_create(&first, &account).await.unwrap(),
        BankCreate::Created
    );
    assert!(db
        .store
        .ledger_account(&account.id)
        .await
        .unwrap()
        .is_some());
    // The same PAN again: refused, and no second account is left behind.
    let other_account = Account::new(
        AccountId::generate(),
        Currency::CNY,
        AccountFlags::default(),
        0,
    );
    let again = card(&c.id, "pan-1", &other_account.id);
    assert_eq!(
        db.store
            .bank_card_create(&again, &other_account)
            .await
            .unwrap(),
        BankCreate::Duplicate
    );
    assert!(db
        .store
        .ledger_account(&other_account.id)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        db.store.bank_cards_of(&c.id).await.unwrap(),
        vec![first.clone()]
    );
    assert_eq!(
        db.store
            .bank_card_by_pan("pan-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
}

fn user(phone_index: &str) -> StoredUser {
    StoredUser {
        id: UserId::generate(),
        phone_sealed: "pb1.sealed".into(),
        phone_index: phone_index.into(),
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

fn identity(index: &str) -> SealedIdentity {
    SealedIdentity {
        name_sealed: "pb1.name".into(),
        name_masked: "*三".into(),
        id_number_sealed: "pb1.id".into(),
        id_number_index: index.into(),
        verified_at: t0(),
        attested: true,
    }
}

async fn wallet_users_are_unique_by_phone_and_by_identity_under_a_race(db: &TestDb) {
    let a = user("phone-a");
    assert_eq!(
        db.store.user_create(&a, &[]).await.unwrap(),
        UserWrite::Done
    );
    let mut dup = user("phone-a");
    assert_eq!(
        db.store.user_create(&dup, &[]).await.unwrap(),
        UserWrite::Duplicate
    );
    dup.phone_index = "phone-b".into();
    let b = dup;
    assert_eq!(
        db.store.user_create(&b, &[]).await.unwrap(),
        UserWrite::Done
    );

    // Two accounts race to claim one person: one wins.
    let store = Arc::new(db.store.clone());
    let tasks = [a.id.clone(), b.id.clone()].map(|id| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .user_set_identity(&id, 0, &identity("person-1"), &[])
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == UserWrite::Done).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == UserWrite::Duplicate)
            .count(),
        1
    );
    let owner = db
        .store
        .user_by_id_number("person-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.identity.unwrap().id_number_index, "person-1");

    // A declared identity is one person's for nobody: two accounts may
    // declare the same, no look-up finds it, and a bank attesting it
    // replaces it (then it is unique again).
    let declared = SealedIdentity {
        attested: false,
        ..identity("person-2")
    };
    let mut declarers = Vec::new();
    for phone in ["phone-c", "phone-d"] {
        let u = user(phone);
        assert_eq!(
            db.store.user_create(&u, &[]).await.unwrap(),
            UserWrite::Done
        );
        assert_eq!(
            db.store
                .user_set_identity(&u.id, 0, &declared, &[])
                .await
                .unwrap(),
            UserWrite::Done
        );
        declarers.push(u.id);
    }
    assert!(db
        .store
        .user_by_id_number("person-2")
        .await
        .unwrap()
        .is_none());
    let c = db.store.user(&declarers[0]).await.unwrap().unwrap();
    let kept = c.identity.clone().unwrap();
    assert_eq!(
        (kept.attested, kept.id_number_index.as_str()),
        (false, "person-2")
    );
    assert_eq!(
        db.store
            .user_set_identity(&c.id, c.version, &identity("person-2"), &[])
            .await
            .unwrap(),
        UserWrite::Done
    );
    let found = db
        .store
        .user_by_id_number("person-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, c.id);
    assert!(found.identity.unwrap().attested);
    let d = db.store.user(&declarers[1]).await.unwrap().unwrap();
    assert_eq!(
        db.store
            .user_set_identity(&d.id, d.version, &identity("person-2"), &[])
            .await
            .unwrap(),
        UserWrite::Duplicate
    );

    // Credentials change only at the version they were read at.
    let mut fresh = db.store.user(&owner.id).await.unwrap().unwrap();
    fresh.pay_password_hash = Some("$argon2id$pin".into());
    assert_eq!(
        db.store.user_update_credentials(&fresh, &[]).await.unwrap(),
        UserWrite::Done
    );
    assert_eq!(
        db.store.user_update_credentials(&fresh, &[]).await.unwrap(),
        UserWrite::Stale
    );
}

fn device(user: &UserId, t: DeviceType) -> StoredDevice {
    StoredDevice {
        id: DeviceId::generate(),
        user_id: user.clone(),
        device_type: t,
        name: "Li's phone".into(),
        status: DeviceStatus::Active,
        created_at: t0(),
        last_seen_at: t0(),
        has_credential: false,
        key: Some(DeviceKeyRecord {
            public_key:
                r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#
                    .into(),
            thumbprint: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".into(),
        }),
        paired_by: None,
    }
}

fn credential(d: &StoredDevice, cred: &str) -> StoredCredential {
    StoredCredential {
        id: CredentialId::generate(),
        user_id: d.user_id.clone(),
        device_id: d.id.clone(),
        credential_id: cred.into(),
        passkey: "{}".into(),
        sign_count: 0,
    }
}

async fn a_device_keeps_its_key_and_is_trusted_when_a_trusted_device_paired_it(db: &TestDb) {
    let u = user("phone-k");
    db.store.user_create(&u, &[]).await.unwrap();
    let phone = device(&u.id, DeviceType::Phone);
    db.store.device_create(&phone, &[]).await.unwrap();
    let stored = db.store.device(&phone.id).await.unwrap().unwrap();
    assert_eq!(stored.key, phone.key);
    assert!(!db.store.device_trusted(&u.id, &phone.id).await.unwrap());
    let mut tv = device(&u.id, DeviceType::Tv);
    tv.paired_by = Some(phone.id.clone());
    db.store.device_create(&tv, &[]).await.unwrap();
    let stored = db.store.device_of(&u.id, &tv.id).await.unwrap().unwrap();
    assert_eq!(stored.paired_by.as_ref(), Some(&phone.id));
    assert!(db.store.device_trusted(&u.id, &tv.id).await.unwrap());
    // Another account's view of the paired device trusts nothing.
    let other = user("phone-l");
    db.store.user_create(&other, &[]).await.unwrap();
    assert!(!db.store.device_trusted(&other.id, &tv.id).await.unwrap());
    // A session keeps the key it is bound to.
    let s = session(u.id.as_str(), "hash-k", Some(tv.id.clone()));
    db.store.session_create(&s).await.unwrap();
    let found = db.store.session_by_token("hash-k").await.unwrap().unwrap();
    assert_eq!(found.key_thumbprint, s.key_thumbprint);
    assert!(found.key_thumbprint.is_some());
}

async fn devices_are_limited_and_revoking_removes_credential_and_sessions(db: &TestDb) {
    let u = user("phone-a");
    db.store.user_create(&u, &[]).await.unwrap();
    let other = user("phone-b");
    db.store.user_create(&other, &[]).await.unwrap();
    let phone = device(&u.id, DeviceType::Phone);
    assert_eq!(
        db.store.device_create(&phone, &[]).await.unwrap(),
        DeviceCreate::Created
    );
    for _ in 1..MAX_ACTIVE_DEVICES {
        db.store
            .device_create(&device(&u.id, DeviceType::Iot), &[])
            .await
            .unwrap();
    }
    assert_eq!(
        db.store
            .device_create(&device(&u.id, DeviceType::Pc), &[])
            .await
            .unwrap(),
        DeviceCreate::LimitReached
    );
    // Another account cannot see, rename or revoke it.
    assert!(db
        .store
        .device_of(&other.id, &phone.id)
        .await
        .unwrap()
        .is_none());
    assert!(!db
        .store
        .device_rename(&other.id, &phone.id, "x")
        .await
        .unwrap());
    assert!(!db
        .store
        .device_revoke(&other.id, &phone.id, t0(), &[])
        .await
        .unwrap());

    assert!(db
        .store
        .credential_create(&credential(&phone, "cred-1"), t0(), &[])
        .await
        .unwrap());
    assert!(
        db.store
            .device(&phone.id)
            .await
            .unwrap()
            .unwrap()
            .has_credential
    );
    // One credential per device.
    assert!(!db
        .store
        .credential_create(&credential(&phone, "cred-2"), t0(), &[])
        .await
        .unwrap());
    db.store
        .session_create(&session(
            u.id.as_str(),
            "hash-phone",
            Some(phone.id.clone()),
        ))
        .await
        .unwrap();

    assert!(db
        .store
        .device_revoke(&u.id, &phone.id, t0(), &[])
        .await
        .unwrap());
    assert!(!db
        .store
        .device_revoke(&u.id, &phone.id, t0(), &[])
        .await
        .unwrap());
    let revoked = db.store.device_of(&u.id, &phone.id).await.unwrap().unwrap();
    assert!(matches!(revoked.status, DeviceStatus::Revoked { .. }));
    assert!(!revoked.has_credential);
    assert!(db
        .store
        .credential_of_device(&phone.id)
        .await
        .unwrap()
        .is_none());
    let s = db
        .store
        .session_by_token("hash-phone")
        .await
        .unwrap()
        .unwrap();
    assert!(!s.is_live(t0()));
    // A revoked device gets no credential, and frees a place.
    assert!(!db
        .store
        .credential_create(&credential(&phone, "cred-3"), t0(), &[])
        .await
        .unwrap());
    assert_eq!(
        db.store
            .device_create(&device(&u.id, DeviceType::Pc), &[])
            .await
            .unwrap(),
        DeviceCreate::Created
    );
    assert_eq!(
        db.store
            .devices_of(&u.id, DeviceFilter::Active)
            .await
            .unwrap()
            .len(),
        MAX_ACTIVE_DEVICES
    );
    assert_eq!(
        db.store
            .devices_of(&u.id, DeviceFilter::WithRevoked)
            .await
            .unwrap()
            .len(),
        MAX_ACTIVE_DEVICES + 1
    );
}

async fn ceremonies_are_taken_once_under_a_race(db: &TestDb) {
    let u = user("phone-a");
    db.store.user_create(&u, &[]).await.unwrap();
    let d = device(&u.id, DeviceType::Phone);
    db.store.device_create(&d, &[]).await.unwrap();
    let c = StoredCeremony {
        id: CeremonyId::generate(),
        user_id: u.id.clone(),
        device_id: d.id.clone(),
        kind: "authentication".into(),
        purpose: "payment:pay_1:100:CNY:shop".into(),
        state: "{}".into(),
        expires_at: t0() + Duration::minutes(5),
    };
    db.store.ceremony_create(&c).await.unwrap();
    assert_eq!(
        db.store
            .ceremony_take(&UserId::generate(), &c.id, t0())
            .await
            .unwrap(),
        CeremonyTake::NotFound
    );
    let store = Arc::new(db.store.clone());
    let tasks = (0..16).map(|_| {
        let (store, user, id) = (store.clone(), u.id.clone(), c.id.clone());
        tokio::spawn(async move { store.ceremony_take(&user, &id, t0()).await.unwrap() })
    });
    let outcomes: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == CeremonyTake::Taken(c.clone()))
            .count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == CeremonyTake::AlreadyUsed)
            .count(),
        15
    );
}

async fn credential_counter_updates_are_compare_and_set(db: &TestDb) {
    let u = user("phone-a");
    db.store.user_create(&u, &[]).await.unwrap();
    let d = device(&u.id, DeviceType::Phone);
    db.store.device_create(&d, &[]).await.unwrap();
    let cred = credential(&d, "cred-1");
    db.store.credential_create(&cred, t0(), &[]).await.unwrap();
    let store = Arc::new(db.store.clone());
    let tasks = (0..8).map(|i| {
        let (store, id) = (store.clone(), cred.id.clone());
        tokio::spawn(async move {
            store
                .credential_used(&id, 0, &format!("{{\"n\":{i}}}"), 1, t0())
                .await
                .unwrap()
        })
    });
    let won = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    let now = db.store.credential_of_device(&d.id).await.unwrap().unwrap();
    assert_eq!(now.sign_count, 1);
}
