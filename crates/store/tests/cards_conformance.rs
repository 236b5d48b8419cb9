//! Conformance of flow F5's stores (virtual card applications, card tokens,
//! secure element keys; at the issuer, its review, the issue of a card and
//! the token vault) on SQLite and PostgreSQL (`sqlite::…`,
//! `postgres::…`): one application at a time, versions hold, an issue is
//! written whole or not at all, cards per person hold under a race.

use paybridge_domain::account::AccountStatus;
use paybridge_domain::binding::{BindingState, BindingStatus};
use paybridge_domain::card::{CardStatus, CardType};
use paybridge_domain::card_application::{ApplicantKind, ApplicationState, ApplicationStatus};
use paybridge_domain::card_issuing::ReviewState;
use paybridge_domain::card_token::{TokenActor, TokenState};
use paybridge_domain::credentials::PasswordGuard;
use paybridge_domain::device::{DeviceStatus, DeviceType};
use paybridge_domain::ids::{
    BindingId, CardApplicationId, CardId, CardTokenId, CustomerId, DeviceId, QuickPayAgreementId,
    UserId,
};
use paybridge_domain::ledger::{Account, AccountFlags, AccountId};
use paybridge_domain::{agreement::AgreementStatus, Currency, ErrorCode, Timestamp};
use paybridge_store::conformance;
use paybridge_store::testing::TestDb;
use paybridge_store::*;
use time::Duration;

fn t0() -> Timestamp {
    time::macros::datetime!(2026-12-07 08:00 UTC)
}

conformance!(
    an_account_has_one_application_under_way_and_it_moves_at_its_version,
    issuing_writes_the_quick_binding_and_token_with_the_application_or_nothing,
    photos_and_frames_stay_sealed_until_their_purge_time,
    unbinding_deactivates_the_token_in_the_same_transaction,
    a_phone_has_one_secure_element_key,
    the_issuer_receives_an_application_once,
    an_issue_is_written_whole_and_cards_per_person_hold_under_a_race,
    the_vault_detokenises_by_blind_index_and_tokens_move_at_their_version,
    a_token_accepts_only_rising_transaction_counters_once_under_a_race,
    audit_names_a_quick_binding_without_its_application_and_a_live_token_of_an_unbound_card,
);

fn rand_suffix() -> String {
    DeviceId::generate().as_str()[4..].to_owned()
}

/// An account with its phone.
async fn household(s: &Store) -> (StoredUser, StoredDevice) {
    let u = StoredUser {
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
    };
    s.user_create(&u, &[]).await.unwrap();
    let phone = StoredDevice {
        id: DeviceId::generate(),
        user_id: u.id.clone(),
        device_type: DeviceType::Phone,
        name: "Phone".into(),
        status: DeviceStatus::Active,
        created_at: t0(),
        last_seen_at: t0(),
        has_credential: false,
        key: Some(DeviceKeyRecord {
            public_key: "{}".into(),
            thumbprint: format!("jkt-{}", rand_suffix()),
        }),
        paired_by: None,
    };
    s.device_create(&phone, &[]).await.unwrap();
    (u, phone)
}

fn application(u: &StoredUser, phone: &StoredDevice) -> StoredCardApplication {
    StoredCardApplication {
        id: CardApplicationId::generate(),
        user_id: u.id.clone(),
        device_id: phone.id.clone(),
        issuer_id: "demo-bank".into(),
        product: "virtual_credit".into(),
        applicant_sealed: "pb1.applicant".into(),
        applicant_kind: None,
        status: ApplicationStatus::forwarded(t0()),
        otp_id: None,
        phone_sealed: None,
        phone_masked: None,
        video_policy: None,
        reference_sealed: None,
        match_score: None,
        binding_id: BindingId::generate().to_string(),
        card_code: None,
        token_id: None,
        media_purge_at: None,
        created_at: t0(),
        updated_at: t0(),
        version: 0,
    }
}

/// `a` saved through the first-card path to `identity_checked`.
async fn identity_checked(s: &Store, a: &StoredCardApplication) -> StoredCardApplication {
    let mut next = a.clone();
    next.applicant_kind = Some(ApplicantKind::FirstCard);
    next.status = a
        .status
        .answered(ApplicantKind::FirstCard, t0())
        .unwrap()
        .photos_received(t0())
        .unwrap()
        .identity_checked(t0())
        .unwrap();
    next.match_score = Some(93);
    next.reference_sealed = Some("pb1.ref".into());
    assert!(s.card_application_update(&next, &[], &[]).await.unwrap());
    s.card_application(&a.id).await.unwrap().unwrap()
}

fn quick_binding(a: &StoredCardApplication) -> StoredBinding {
    StoredBinding {
        id: a.binding_id.parse().unwrap(),
        issuer_id: a.issuer_id.clone(),
        card_ref: "CC0123456789AB".into(),
        channel: "virtual_card".into(),
        address_hash: None,
        user_id: Some(a.user_id.clone()),
        status: BindingStatus::quick_bound(t0()),
        holder_name_sealed: "pb1.name".into(),
        holder_name_masked: "*敏".into(),
        holder_id_number_sealed: "pb1.id".into(),
        holder_id_number_index: "idx".into(),
        phone_sealed: "pb1.phone".into(),
        phone_masked: "138****8000".into(),
        bank_name: "Demo Bank".into(),
        card_type: "credit".into(),
        last4: "0042".into(),
        otp_id: None,
        agreement_sealed: Some("pb1.agreement".into()),
        created_at: t0(),
        updated_at: t0(),
        version: 0,
    }
}

fn wallet_token(a: &StoredCardApplication) -> StoredCardToken {
    StoredCardToken {
        id: CardTokenId::generate(),
        issuer_id: a.issuer_id.clone(),
        user_id: a.user_id.clone(),
        device_id: a.device_id.clone(),
        application_id: a.id.to_string(),
        binding_id: a.binding_id.clone(),
        card_code: format!("CC{}", &rand_suffix()[..12]).to_uppercase(),
        token_sealed: "pb1.token".into(),
        token_last4: "4321".into(),
        key_box: Some("hpke1.box".into()),
        state: TokenState::Active,
        installed_at: None,
        created_at: t0(),
        updated_at: t0(),
        version: 0,
    }
}

/// `a` issued with its quick binding and token.
async fn issued(
    s: &Store,
    a: &StoredCardApplication,
) -> (StoredCardApplication, StoredBinding, StoredCardToken) {
    let checked = identity_checked(s, a).await;
    let (b, t) = (quick_binding(a), wallet_token(a));
    let mut next = checked.clone();
    next.status = checked.status.issued(t0()).unwrap();
    next.card_code = Some(t.card_code.clone());
    next.token_id = Some(t.id.to_string());
    let issuance = Issuance {
        binding: &b,
        token: &t,
    };
    assert!(s
        .card_application_issue(&next, issuance, &[])
        .await
        .unwrap());
    (
        s.card_application(&a.id).await.unwrap().unwrap(),
        s.binding(&b.id).await.unwrap().unwrap(),
        s.card_token(&t.id).await.unwrap().unwrap(),
    )
}

async fn an_account_has_one_application_under_way_and_it_moves_at_its_version(db: &TestDb) {
    let s = &db.store;
    let (u, phone) = household(s).await;
    let a = application(&u, &phone);
    assert_eq!(
        s.card_application_start(&a, &[]).await.unwrap(),
        ApplicationStart::Started
    );
    assert_eq!(s.card_application(&a.id).await.unwrap().unwrap(), a);
    // A second one while the first is under way: refused, even racing.
    let racers = (0..6).map(|_| {
        let s = s.clone();
        let b = application(&u, &phone);
        tokio::spawn(async move { s.card_application_start(&b, &[]).await.unwrap() })
    });
    for r in futures::future::join_all(racers).await {
        assert_eq!(r.unwrap(), ApplicationStart::Pending);
    }
    assert_eq!(
        s.card_application_pending_of(&u.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        a.id
    );
    // It moves at its version only.
    let mut otp = a.clone();
    otp.applicant_kind = Some(ApplicantKind::ExistingCardholder);
    otp.status = a
        .status
        .answered(ApplicantKind::ExistingCardholder, t0())
        .unwrap();
    otp.otp_id = Some("otp_x".into());
    otp.phone_masked = Some("138****8000".into());
    assert!(s.card_application_update(&otp, &[], &[]).await.unwrap());
    assert!(!s.card_application_update(&otp, &[], &[]).await.unwrap());
    let stored = s.card_application(&a.id).await.unwrap().unwrap();
    assert_eq!(stored.status.state, ApplicationState::OtpSent);
    assert_eq!(
        stored.applicant_kind,
        Some(ApplicantKind::ExistingCardholder)
    );
    assert_eq!(stored.version, 1);
    // Past its expiry it is due for the sweep; rejected, it frees the account.
    let late = t0() + Duration::hours(1);
    assert_eq!(s.card_applications_due(late, 10).await.unwrap()[0].id, a.id);
    assert!(s.card_applications_due(t0(), 10).await.unwrap().is_empty());
    let mut rejected = stored.clone();
    rejected.status = stored
        .status
        .rejected(ErrorCode::CardLimitReached, t0())
        .unwrap();
    assert!(s
        .card_application_update(&rejected, &[], &[])
        .await
        .unwrap());
    let back = s.card_application(&a.id).await.unwrap().unwrap();
    assert_eq!(
        back.status.state.rejection(),
        Some(ErrorCode::CardLimitReached)
    );
    assert!(s
        .card_application_pending_of(&u.id)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.card_application_start(&application(&u, &phone), &[])
            .await
            .unwrap(),
        ApplicationStart::Started
    );
}

async fn issuing_writes_the_quick_binding_and_token_with_the_application_or_nothing(db: &TestDb) {
    let s = &db.store;
    let (u, phone) = household(s).await;
    let a = application(&u, &phone);
    s.card_application_start(&a, &[]).await.unwrap();
    let checked = identity_checked(s, &a).await;
    let (b, t) = (quick_binding(&a), wallet_token(&a));
    let mut next = checked.clone();
    next.status = checked.status.issued(t0()).unwrap();
    // Read at an old version: nothing is written.
    let old = StoredCardApplication {
        version: 0,
        ..next.clone()
    };
    let issuance = Issuance {
        binding: &b,
        token: &t,
    };
    assert!(!s.card_application_issue(&old, issuance, &[]).await.unwrap());
    assert!(s.binding(&b.id).await.unwrap().is_none());
    assert!(s.card_token(&t.id).await.unwrap().is_none());
    // The binding exists already (a replay after a crash): nothing either.
    s.binding_create(&b, &[]).await.unwrap();
    assert!(!s
        .card_application_issue(&next, issuance, &[])
        .await
        .unwrap());
    assert!(s.card_token(&t.id).await.unwrap().is_none());
    assert_eq!(
        s.card_application(&a.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .state,
        ApplicationState::IdentityChecked
    );

    let (u2, phone2) = household(s).await;
    let a2 = application(&u2, &phone2);
    s.card_application_start(&a2, &[]).await.unwrap();
    let (stored, binding, token) = issued(s, &a2).await;
    assert_eq!(stored.status.state, ApplicationState::Issued);
    assert_eq!(binding.status.state, BindingState::Active);
    assert_eq!(binding.channel, "virtual_card");
    assert_eq!(token.state, TokenState::Active);
    assert_eq!(token.key_box.as_deref(), Some("hpke1.box"));
    assert_eq!(
        s.card_token_by_binding(&a2.binding_id)
            .await
            .unwrap()
            .unwrap(),
        token
    );
    assert_eq!(s.card_tokens_of(&u2.id).await.unwrap(), vec![token]);
}

fn media(a: &StoredCardApplication, slot: &str) -> StoredMedia {
    StoredMedia {
        application_id: a.id.clone(),
        slot: slot.into(),
        content_type: "image/jpeg".into(),
        size_bytes: 2048,
        content_sealed: format!("pb1.{slot}"),
        created_at: t0(),
    }
}

async fn photos_and_frames_stay_sealed_until_their_purge_time(db: &TestDb) {
    let s = &db.store;
    let (u, phone) = household(s).await;
    let a = application(&u, &phone);
    s.card_application_start(&a, &[]).await.unwrap();
    let mut photos = a.clone();
    photos.status = a
        .status
        .answered(ApplicantKind::FirstCard, t0())
        .unwrap()
        .photos_received(t0())
        .unwrap();
    let uploaded = [media(&a, "id_front"), media(&a, "id_back")];
    assert!(s
        .card_application_update(&photos, &uploaded, &[])
        .await
        .unwrap());
    // A stale step brings no media with it.
    assert!(!s
        .card_application_update(&photos, &[media(&a, "frame_00")], &[])
        .await
        .unwrap());
    let kept = s.card_application_media(&a.id).await.unwrap();
    assert_eq!(kept, vec![uploaded[1].clone(), uploaded[0].clone()]);

    // Decided with a retention of one day: kept until then, then gone.
    let mut decided = s.card_application(&a.id).await.unwrap().unwrap();
    decided.status = decided
        .status
        .rejected(ErrorCode::ScoreTooLow, t0())
        .unwrap();
    decided.media_purge_at = Some(t0() + Duration::days(1));
    assert!(s.card_application_update(&decided, &[], &[]).await.unwrap());
    assert_eq!(
        s.card_application_media_purge(t0() + Duration::hours(23))
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.card_application_media(&a.id).await.unwrap().len(), 2);
    assert_eq!(
        s.card_application_media_purge(t0() + Duration::days(1))
            .await
            .unwrap(),
        2
    );
    assert!(s.card_application_media(&a.id).await.unwrap().is_empty());
}

async fn unbinding_deactivates_the_token_in_the_same_transaction(db: &TestDb) {
    let s = &db.store;
    let (u, phone) = household(s).await;
    let a = application(&u, &phone);
    s.card_application_start(&a, &[]).await.unwrap();
    let (_, binding, token) = issued(s, &a).await;

    let mut off = token.clone();
    off.state = token.state.deactivate(TokenActor::Cardholder).unwrap();
    let mut unbound = binding.clone();
    unbound.status = binding.status.unbind().unwrap();
    // The binding moved meanwhile: the token stays as it was.
    let stale = StoredBinding {
        version: binding.version + 1,
        ..unbound.clone()
    };
    assert!(!s.card_token_change(&off, Some(&stale), &[]).await.unwrap());
    assert_eq!(s.card_token(&token.id).await.unwrap().unwrap(), token);
    assert!(s
        .card_token_change(&off, Some(&unbound), &[])
        .await
        .unwrap());
    assert_eq!(
        s.card_token(&token.id).await.unwrap().unwrap().state,
        TokenState::Deactivated {
            by: TokenActor::Cardholder
        }
    );
    assert_eq!(
        s.binding(&binding.id).await.unwrap().unwrap().status.state,
        BindingState::Unbound
    );
    // A token installed: its box is gone, the time is kept.
    let (u2, phone2) = household(s).await;
    let a2 = application(&u2, &phone2);
    s.card_application_start(&a2, &[]).await.unwrap();
    let (_, _, t2) = issued(s, &a2).await;
    let mut installed = t2.clone();
    installed.key_box = None;
    installed.installed_at = Some(t0());
    assert!(s.card_token_change(&installed, None, &[]).await.unwrap());
    assert!(!s.card_token_change(&installed, None, &[]).await.unwrap());
    let back = s.card_token(&t2.id).await.unwrap().unwrap();
    assert_eq!((back.key_box, back.installed_at), (None, Some(t0())));
    assert!(s.audit().await.unwrap().breaches.is_empty());
}

async fn a_phone_has_one_secure_element_key(db: &TestDb) {
    let s = &db.store;
    let (_, phone) = household(s).await;
    assert!(s.secure_element_key(&phone.id).await.unwrap().is_none());
    let first = StoredSecureElementKey {
        device_id: phone.id.clone(),
        public_key: "first".into(),
        registered_at: t0(),
    };
    s.secure_element_key_set(&first, &[]).await.unwrap();
    let reset = StoredSecureElementKey {
        public_key: "after-reset".into(),
        registered_at: t0() + Duration::minutes(5),
        ..first.clone()
    };
    s.secure_element_key_set(&reset, &[]).await.unwrap();
    assert_eq!(s.secure_element_key(&phone.id).await.unwrap(), Some(reset));
}

// ---- the issuer's side ----

async fn bank_customer(s: &Store, id_index: &str) -> StoredCustomer {
    let c = StoredCustomer {
        id: CustomerId::generate(),
        username: format!("user-{}", rand_suffix()),
        password_hash: "$argon2id$test".into(),
        name_sealed: "pb1.name".into(),
        name_masked: "*三".into(),
        id_number_sealed: "pb1.id".into(),
        id_number_index: id_index.into(),
        phone_sealed: "pb1.phone".into(),
        phone_index: format!("phone-{}", rand_suffix()),
        phone_masked: "138****8000".into(),
        created_at: t0(),
    };
    assert_eq!(
        s.bank_customer_create(&c).await.unwrap(),
        BankCreate::Created
    );
    c
}

fn bank_application(id_index: &str, customer: Option<&CustomerId>) -> StoredBankApplication {
    let kind = if customer.is_some() {
        ApplicantKind::ExistingCardholder
    } else {
        ApplicantKind::FirstCard
    };
    StoredBankApplication {
        id: CardApplicationId::generate(),
        wallet_id: "paybridge-wallet".into(),
        product: "virtual_credit".into(),
        applicant_sealed: "pb1.applicant".into(),
        id_number_index: id_index.into(),
        binding_id: BindingId::generate().to_string(),
        applicant_kind: kind,
        customer_id: customer.cloned(),
        state: ReviewState::received(kind),
        match_score: None,
        card_id: None,
        token_id: None,
        agreement_id: None,
        created_at: t0(),
        updated_at: t0(),
        version: 0,
    }
}

/// What an issue of `a` to `customer` writes, with fresh numbers.
struct Parts {
    card: StoredCard,
    account: Account,
    agreement: StoredAgreement,
    token: StoredVaultToken,
}

fn parts(a: &StoredBankApplication, customer: &CustomerId, card_code: &str) -> Parts {
    let card_id = CardId::generate();
    let account = Account::new(
        AccountId::generate(),
        Currency::CNY,
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
        500_000,
    );
    let n = rand_suffix();
    Parts {
        card: StoredCard {
            id: card_id.clone(),
            customer_id: customer.clone(),
            pan_sealed: "pb1.pan".into(),
            pan_index: format!("pan-{n}"),
            last4: "0042".into(),
            card_type: CardType::Credit,
            expiry: "12/31".into(),
            account_id: account.id.clone(),
            status: CardStatus::Active,
            created_at: t0(),
            card_code: Some(card_code.into()),
            product: Some(a.product.clone()),
        },
        agreement: StoredAgreement {
            id: QuickPayAgreementId::generate(),
            number_sealed: "pb1.number".into(),
            number_index: format!("agr-{n}"),
            card_id: card_id.clone(),
            customer_id: customer.clone(),
            wallet_id: a.wallet_id.clone(),
            binding_id: a.binding_id.clone(),
            status: AgreementStatus::Active,
            created_at: t0(),
        },
        token: vault_token(&card_id, &format!("tok-{n}")),
        account,
    }
}

fn vault_token(card: &CardId, index: &str) -> StoredVaultToken {
    StoredVaultToken {
        id: CardTokenId::generate(),
        token_index: index.into(),
        token_sealed: "pb1.token".into(),
        card_id: card.clone(),
        wallet_id: "paybridge-wallet".into(),
        device_id: "dev_phone".into(),
        channels: "nfc,online".into(),
        psn: "01".into(),
        expiry: "12/31".into(),
        state: TokenState::Active,
        created_at: t0(),
        updated_at: t0(),
        version: 0,
    }
}

fn issue<'a>(p: &'a Parts, new_customer: Option<&'a StoredCustomer>) -> CardIssue<'a> {
    CardIssue {
        new_customer,
        card: &p.card,
        account: &p.account,
        agreement: &p.agreement,
        token: &p.token,
        max_per_person: 1,
    }
}

fn decided(a: &StoredBankApplication, p: &Parts) -> StoredBankApplication {
    StoredBankApplication {
        state: a.state.decided(Ok(())).unwrap(),
        customer_id: Some(p.card.customer_id.clone()),
        card_id: Some(p.card.id.to_string()),
        token_id: Some(p.token.id.to_string()),
        agreement_id: Some(p.agreement.id.to_string()),
        ..a.clone()
    }
}

async fn the_issuer_receives_an_application_once(db: &TestDb) {
    let s = &db.store;
    let c = bank_customer(s, "idx-receive").await;
    let a = bank_application("idx-receive", Some(&c.id));
    let (first, new) = s.bank_application_receive(&a, &[]).await.unwrap();
    assert!(new);
    assert_eq!(first, a);
    // The wallet forwards it again (a lost answer): the same one comes back.
    let again = StoredBankApplication {
        product: "other".into(),
        ..a.clone()
    };
    let (second, new) = s.bank_application_receive(&again, &[]).await.unwrap();
    assert!(!new);
    assert_eq!(second, a);
    let mut rejected = a.clone();
    rejected.state = a.state.decided(Err(ErrorCode::IdentityBlocked)).unwrap();
    assert!(s.bank_application_update(&rejected, &[]).await.unwrap());
    assert!(!s.bank_application_update(&rejected, &[]).await.unwrap());
    let back = s.bank_application(&a.id).await.unwrap().unwrap();
    assert_eq!(back.state.reason(), Some(ErrorCode::IdentityBlocked));
}

async fn an_issue_is_written_whole_and_cards_per_person_hold_under_a_race(db: &TestDb) {
    let s = &db.store;
    let c = bank_customer(s, "idx-issue").await;
    // A card code already in use: nothing of the issue is written.
    let first = bank_application("idx-issue", Some(&c.id));
    s.bank_application_receive(&first, &[]).await.unwrap();
    let p = parts(&first, &c.id, "CCAAAAAAAAAAAA");
    assert_eq!(
        s.bank_application_issue(&decided(&first, &p), issue(&p, None), &[])
            .await
            .unwrap(),
        IssueOutcome::Issued
    );
    let second = bank_application("idx-issue-2", None);
    s.bank_application_receive(&second, &[]).await.unwrap();
    let newcomer = StoredCustomer {
        id: CustomerId::generate(),
        username: format!("vc-{}", rand_suffix()),
        password_hash: "!".into(),
        name_sealed: "pb1.name".into(),
        name_masked: "*敏".into(),
        id_number_sealed: "pb1.id".into(),
        id_number_index: "idx-issue-2".into(),
        phone_sealed: "pb1.phone".into(),
        phone_index: format!("phone-{}", rand_suffix()),
        phone_masked: "138****8000".into(),
        created_at: t0(),
    };
    let clash = parts(&second, &newcomer.id, "CCAAAAAAAAAAAA");
    assert_eq!(
        s.bank_application_issue(
            &decided(&second, &clash),
            issue(&clash, Some(&newcomer)),
            &[]
        )
        .await
        .unwrap(),
        IssueOutcome::Collision
    );
    assert!(s.bank_customer(&newcomer.id).await.unwrap().is_none());
    assert!(s.bank_card(&clash.card.id).await.unwrap().is_none());
    assert!(s.vault_token(&clash.token.id).await.unwrap().is_none());
    assert_eq!(
        s.bank_application(&second.id).await.unwrap().unwrap().state,
        ReviewState::AwaitingIdentity
    );
    // With its own numbers it is issued, customer and all.
    let fresh = parts(&second, &newcomer.id, "CCBBBBBBBBBBBB");
    assert_eq!(
        s.bank_application_issue(
            &decided(&second, &fresh),
            issue(&fresh, Some(&newcomer)),
            &[]
        )
        .await
        .unwrap(),
        IssueOutcome::Issued
    );
    let card = s.bank_card(&fresh.card.id).await.unwrap().unwrap();
    assert_eq!(card.card_code.as_deref(), Some("CCBBBBBBBBBBBB"));
    assert_eq!(card.product.as_deref(), Some("virtual_credit"));
    assert!(s.bank_customer(&newcomer.id).await.unwrap().is_some());
    assert!(s
        .agreement_by_binding(&second.binding_id)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.bank_product_holdings("idx-issue-2", "virtual_credit")
            .await
            .unwrap(),
        1
    );

    // Eight applications of one person race for a product of one card per
    // person: one is issued.
    let racer = bank_customer(s, "idx-race").await;
    let mut handles = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let cid = racer.id.clone();
        handles.push(tokio::spawn(async move {
            let a = bank_application("idx-race", Some(&cid));
            s.bank_application_receive(&a, &[]).await.unwrap();
            let p = parts(&a, &cid, &format!("CCRACE{i:08}"));
            s.bank_application_issue(&decided(&a, &p), issue(&p, None), &[])
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.await.unwrap());
    }
    let won = outcomes
        .iter()
        .filter(|o| **o == IssueOutcome::Issued)
        .count();
    assert_eq!(won, 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, IssueOutcome::Issued | IssueOutcome::LimitReached)));
    assert_eq!(
        s.bank_product_holdings("idx-race", "virtual_credit")
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.bank_cards_of(&racer.id).await.unwrap().len(), 1);
    assert!(s.audit().await.unwrap().breaches.is_empty());
}

async fn the_vault_detokenises_by_blind_index_and_tokens_move_at_their_version(db: &TestDb) {
    let s = &db.store;
    let c = bank_customer(s, "idx-vault").await;
    let a = bank_application("idx-vault", Some(&c.id));
    s.bank_application_receive(&a, &[]).await.unwrap();
    let p = parts(&a, &c.id, "CCVAULT0000001");
    s.bank_application_issue(&decided(&a, &p), issue(&p, None), &[])
        .await
        .unwrap();
    let found = s
        .vault_detokenise(&p.token.token_index)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.token, p.token);
    assert_eq!(found.pan_sealed, "pb1.pan");
    assert!(s.vault_detokenise("no-such").await.unwrap().is_none());
    // A second token of the card; a number taken is refused.
    let second = vault_token(&p.card.id, "tok-second");
    assert!(s.vault_token_insert(&second, &[]).await.unwrap());
    let same_number = vault_token(&p.card.id, "tok-second");
    assert!(!s.vault_token_insert(&same_number, &[]).await.unwrap());
    assert_eq!(s.vault_tokens_of_card(&p.card.id).await.unwrap().len(), 2);
    // Its state moves at its version.
    let mut held = second.clone();
    held.state = second.state.suspend(TokenActor::Issuer).unwrap();
    assert!(s.vault_token_update(&held, &[]).await.unwrap());
    assert!(!s.vault_token_update(&held, &[]).await.unwrap());
    assert_eq!(
        s.vault_token(&second.id).await.unwrap().unwrap().state,
        TokenState::Suspended {
            by: TokenActor::Issuer
        }
    );
}

async fn a_token_accepts_only_rising_transaction_counters_once_under_a_race(db: &TestDb) {
    let s = &db.store;
    let c = bank_customer(s, "idx-atc").await;
    let a = bank_application("idx-atc", Some(&c.id));
    s.bank_application_receive(&a, &[]).await.unwrap();
    let p = parts(&a, &c.id, "CCATC000000001");
    s.bank_application_issue(&decided(&a, &p), issue(&p, None), &[])
        .await
        .unwrap();
    let id = &p.token.id;
    assert_eq!(s.vault_token_highest_atc(id).await.unwrap(), None);
    assert!(s.vault_token_accept_atc(id, 1).await.unwrap());
    assert!(!s.vault_token_accept_atc(id, 1).await.unwrap(), "replayed");
    assert!(s.vault_token_accept_atc(id, 5).await.unwrap());
    assert!(!s.vault_token_accept_atc(id, 3).await.unwrap(), "older");
    assert_eq!(s.vault_token_highest_atc(id).await.unwrap(), Some(5));
    let nobody = CardTokenId::generate();
    assert!(!s.vault_token_accept_atc(&nobody, 9).await.unwrap());
    // Eight taps with one cryptogram at once: one is accepted.
    let racers = (0..8).map(|_| {
        let (s, id) = (s.clone(), id.clone());
        tokio::spawn(async move { s.vault_token_accept_atc(&id, 6).await.unwrap() })
    });
    let accepted = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(accepted, 1);
    assert_eq!(s.vault_token_highest_atc(id).await.unwrap(), Some(6));
    assert_eq!(s.vault_token_highest_atc(&nobody).await.unwrap(), None);
}

async fn audit_names_a_quick_binding_without_its_application_and_a_live_token_of_an_unbound_card(
    db: &TestDb,
) {
    let s = &db.store;
    let (u, phone) = household(s).await;
    // A quick binding nobody issued.
    let stray = application(&u, &phone);
    s.binding_create(&quick_binding(&stray), &[]).await.unwrap();
    // An unbound quick binding whose token stayed active.
    let (u2, phone2) = household(s).await;
    let a = application(&u2, &phone2);
    s.card_application_start(&a, &[]).await.unwrap();
    let (_, binding, _) = issued(s, &a).await;
    let mut unbound = binding.clone();
    unbound.status = binding.status.unbind().unwrap();
    assert_eq!(
        s.binding_update(&unbound, &[]).await.unwrap(),
        BindingWrite::Done
    );
    let text = s.audit().await.unwrap().breaches.join("\n");
    assert!(
        text.contains("quick bindings without an issued application"),
        "{text}"
    );
    assert!(
        text.contains("card tokens whose quick binding is unbound"),
        "{text}"
    );
}
