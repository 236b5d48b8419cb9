//! The sandbox bank over real HTTP on both stores: the seeded demo
//! customers log in to the bank app and see their own cards, masked; cards
//! are sealed at rest and funded through the ledger; seeding is idempotent.

use paybridge_crypto::IndexPurpose;
use paybridge_issuer::customers::CARD_PAN;
use paybridge_issuer::seed::{SeedError, SeedFile, SANDBOX_SEED};
use paybridge_testkit::code;
use paybridge_testkit::{app_tests, TestApp};
use serde_json::{json, Value};
use time::Duration;

app_tests!(
    demo_customers_see_their_own_cards_masked,
    bank_logins_lock_and_unknown_names_answer_alike,
    bank_sessions_expire_and_end_on_logout,
    seeding_is_idempotent_and_checks_every_card,
    cards_are_sealed_at_rest_and_funded_through_the_ledger,
);

async fn login(app: &TestApp, username: &str, password: &str) -> (u16, Value) {
    app.call(
        "POST",
        "/bank/v1/app/sessions",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await
}

async fn token(app: &TestApp, username: &str) -> String {
    let (s, session) = login(app, username, "Sandbox#2026").await;
    assert_eq!(s, 201, "{session}");
    session["token"].as_str().unwrap().to_owned()
}

async fn demo_customers_see_their_own_cards_masked(app: &TestApp) {
    let (s, session) = login(app, "zhang.san", "Sandbox#2026").await;
    assert_eq!(s, 201, "{session}");
    assert_eq!(session["customer"]["name_masked"], "*三");
    assert_eq!(session["customer"]["phone_masked"], "138****8000");
    let zhang = session["token"].as_str().unwrap();

    let (s, cards) = app
        .call("GET", "/bank/v1/app/cards", Some(zhang), None)
        .await;
    assert_eq!(s, 200);
    let cards = cards["cards"].as_array().unwrap().clone();
    assert_eq!(cards.len(), 2);
    assert_eq!(cards[0]["last4"], "0014");
    assert_eq!(cards[0]["masked"], "•••• 0014");
    assert_eq!(cards[0]["bank_name"], "Demo Bank");
    assert_eq!(cards[0]["type"], "debit");
    assert_eq!(
        cards[0]["balance"],
        json!({"amount": 1_000_000, "currency": "CNY"})
    );
    assert_eq!(cards[1]["balance"]["amount"], 5_000);
    let text = serde_json::to_string(&cards).unwrap();
    assert!(!text.contains("6219990000000014") && !text.contains("621999"));

    let card = cards[0]["id"].as_str().unwrap();
    let (s, one) = app
        .call(
            "GET",
            &format!("/bank/v1/app/cards/{card}"),
            Some(zhang),
            None,
        )
        .await;
    assert_eq!((s, one["id"].as_str()), (200, Some(card)));

    // Wang Fang's credit card: nothing spent, the credit line available.
    let wang = token(app, "wang.fang").await;
    let (_, w) = app
        .call("GET", "/bank/v1/app/cards", Some(&wang), None)
        .await;
    assert_eq!(w["cards"][0]["type"], "credit");
    assert_eq!(w["cards"][0]["balance"]["amount"], 0);
    assert_eq!(w["cards"][0]["available"]["amount"], 2_000_000);

    // Another customer's card, a made-up id, no session: nothing to see.
    let li = token(app, "li.si").await;
    let (s, e) = app
        .call(
            "GET",
            &format!("/bank/v1/app/cards/{card}"),
            Some(&li),
            None,
        )
        .await;
    assert_eq!((s, code(&e)), (404, "not_found"));
    let (s, _) = app
        .call("GET", "/bank/v1/app/cards/card_nonsense", Some(&li), None)
        .await;
    assert_eq!(s, 404);
    let (s, e) = app.call("GET", "/bank/v1/app/cards", None, None).await;
    assert_eq!((s, code(&e)), (401, "session_invalid"));
    // A wallet session is not a bank session.
    let (s, _) = app
        .call(
            "GET",
            "/bank/v1/app/cards",
            Some("pbs_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            None,
        )
        .await;
    assert_eq!(s, 401);
}

async fn bank_logins_lock_and_unknown_names_answer_alike(app: &TestApp) {
    for attempt in 1..=4 {
        let known = login(app, "zhang.san", "Wrong#2026").await;
        let unknown = login(app, "nobody.here", "Wrong#2026").await;
        assert_eq!(
            (known.0, code(&known.1)),
            (401, "credentials_invalid"),
            "try {attempt}"
        );
        assert_eq!(known.1["error"]["message"], unknown.1["error"]["message"]);
    }
    let (s, e) = login(app, "zhang.san", "Wrong#2026").await;
    assert_eq!((s, code(&e)), (429, "password_locked"));
    assert_eq!(login(app, "zhang.san", "Sandbox#2026").await.0, 429);
    // Another customer is not affected.
    assert_eq!(login(app, "li.si", "Sandbox#2026").await.0, 201);
    app.clock.advance(Duration::minutes(15));
    assert_eq!(login(app, "zhang.san", "Sandbox#2026").await.0, 201);
}

async fn bank_sessions_expire_and_end_on_logout(app: &TestApp) {
    let t = token(app, "zhang.san").await;
    assert_eq!(
        app.call("GET", "/bank/v1/app/me", Some(&t), None).await.0,
        200
    );
    app.clock.advance(Duration::minutes(30));
    assert_eq!(
        app.call("GET", "/bank/v1/app/me", Some(&t), None).await.0,
        401
    );
    let t = token(app, "zhang.san").await;
    assert_eq!(
        app.call("DELETE", "/bank/v1/app/sessions/current", Some(&t), None)
            .await
            .0,
        204
    );
    assert_eq!(
        app.call("GET", "/bank/v1/app/me", Some(&t), None).await.0,
        401
    );
}

async fn seeding_is_idempotent_and_checks_every_card(app: &TestApp) {
    let again = app
        .issuer
        .apply_seed(&SeedFile::parse(SANDBOX_SEED).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (again.customers_created, again.cards_created, again.kept),
        (0, 0, 7)
    );

    let bad = |pan: &str| {
        format!(
            "[[customers]]\nusername = \"new.one\"\npassword = \"Sandbox#2026\"\nname = \"New One\"\n\
             id_number = \"110108197501012346\"\nphone = \"13600136000\"\n\
             [[customers.cards]]\npan = \"{pan}\"\ntype = \"debit\"\nexpiry = \"12/30\"\n\
             balance = {{ amount = 100, currency = \"CNY\" }}\n"
        )
    };
    for (pan, why) in [
        ("6219990000000015", "check digit"),
        ("4242424242424242", "BIN range"),
    ] {
        let err = app
            .issuer
            .apply_seed(&SeedFile::parse(&bad(pan)).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, SeedError::Invalid { .. }), "{why}: {err}");
        assert!(
            !err.to_string().contains(pan),
            "the PAN is not echoed: {err}"
        );
    }
    // The unknown key is refused, not ignored.
    assert!(SeedFile::parse("[[customers]]\nusername = \"x\"\nsurname = \"y\"\n").is_err());
    // A card without a PAN gets one in the bank's range.
    let fresh =
        "[[customers]]\nusername = \"new.two\"\npassword = \"Sandbox#2026\"\nname = \"New Two\"\n\
                 id_number = \"110108197501012346\"\nphone = \"13600136001\"\n\
                 [[customers.cards]]\ntype = \"debit\"\nexpiry = \"12/30\"\n\
                 balance = { amount = 100, currency = \"CNY\" }\n";
    let report = app
        .issuer
        .apply_seed(&SeedFile::parse(fresh).unwrap())
        .await
        .unwrap();
    assert_eq!((report.customers_created, report.cards_created), (1, 1));
    let t = token(app, "new.two").await;
    let (_, cards) = app.call("GET", "/bank/v1/app/cards", Some(&t), None).await;
    assert_eq!(cards["cards"][0]["balance"]["amount"], 100);
}

async fn cards_are_sealed_at_rest_and_funded_through_the_ledger(app: &TestApp) {
    let index = app
        .issuer
        .keys
        .index
        .index(IndexPurpose::Pan, "6219990000000014");
    let card = app
        .issuer
        .store
        .bank_card_by_pan(&index)
        .await
        .unwrap()
        .unwrap();
    assert!(card.pan_sealed.starts_with("pb1."));
    assert!(!card.pan_sealed.contains("6219990000000014"));
    let pan = app
        .issuer
        .vault
        .open_text(&CARD_PAN, card.id.as_str(), &card.pan_sealed)
        .await
        .unwrap();
    assert_eq!(pan.expose(), "6219990000000014");
    let account = app
        .issuer
        .store
        .ledger_account(&card.account_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.balance().amount_minor, 1_000_000);
    // Every seeded deposit is one balanced transfer from the settlement account.
    let totals = app.issuer.store.ledger_totals().await.unwrap();
    assert_eq!(totals.debits_posted, totals.credits_posted);
    assert_eq!(totals.debits_posted, 1_000_000 + 5_000 + 500_000);
    assert!(app
        .issuer
        .store
        .ledger_inconsistent_accounts()
        .await
        .unwrap()
        .is_empty());
}
