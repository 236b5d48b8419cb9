//! Flow F5 at a POS, on both stores: the phone's secure element (its token
//! issued and provisioned over real HTTP) answers a POS terminal's APDUs
//! over the in-process NFC field; the issuer checks the tap against its
//! vault. Accepted once with an ARPC; declined with its reason for a
//! replayed or older cryptogram, a changed amount, an unknown token, a
//! token suspended or outside its domain, and EMV data out of form.

use paybridge_devices::nfc::InProcessField;
use paybridge_devices::pos::PosTerminal;
use paybridge_devices::Phone;
use paybridge_domain::authorisation::DeclineReason;
use paybridge_emv::terminal::{CardData, Transaction};
use paybridge_testkit::{app_tests, TestApp};

app_tests!(
    a_tap_is_accepted_once_and_each_bad_tap_is_declined_with_its_reason,
    a_suspended_token_is_declined_and_the_phone_answers_the_pos_6985,
);

fn purchase(amount_minor: u64, un: [u8; 4]) -> Transaction {
    Transaction {
        amount_minor,
        currency: 156,
        country: 156,
        date: "261208".into(),
        transaction_type: 0,
        unpredictable_number: un,
    }
}

async fn tap(phone: &Phone, card_code: &str, t: Transaction) -> CardData {
    let card = phone.secure_element().card_application(card_code).unwrap();
    let (data, trace) = PosTerminal::new("T-0001")
        .tap(&mut InProcessField::new(card), t)
        .await;
    assert_eq!(trace.len(), 8, "{trace:?}");
    data.unwrap()
}

async fn a_tap_is_accepted_once_and_each_bad_tap_is_declined_with_its_reason(app: &TestApp) {
    let t = app.f5_token().await;
    let first = tap(&t.phone, &t.card_code, purchase(3_800, [1, 2, 3, 4])).await;
    assert!(first.token.starts_with("629999"), "the POS reads the token");
    let checked = app
        .issuer
        .check_tap(&first.token, &first.emv_data)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((checked.amount_minor, checked.currency), (3_800, 156));
    assert!(
        checked.pan.expose().starts_with("625999"),
        "the vault turns it back into the PAN"
    );
    assert_eq!(checked.atc, first.atc);
    let decline = |token: String, emv: Vec<u8>| {
        let issuer = app.issuer.clone();
        async move { issuer.check_tap(&token, &emv).await.unwrap().unwrap_err() }
    };
    // The same cryptogram again.
    assert_eq!(
        decline(first.token.clone(), first.emv_data.clone()).await,
        DeclineReason::AtcReplayed
    );
    // A later tap passes; the earlier one, never sent, is then too old.
    let older = tap(&t.phone, &t.card_code, purchase(100, [5, 5, 5, 5])).await;
    let newer = tap(&t.phone, &t.card_code, purchase(200, [6, 6, 6, 6])).await;
    assert!(app
        .issuer
        .check_tap(&newer.token, &newer.emv_data)
        .await
        .unwrap()
        .is_ok());
    assert_eq!(
        decline(older.token.clone(), older.emv_data.clone()).await,
        DeclineReason::AtcReplayed
    );
    // The amount changed between the card and the issuer.
    let fresh = tap(&t.phone, &t.card_code, purchase(3_800, [7, 7, 7, 7])).await;
    let changed = hex::decode(
        hex::encode_upper(&fresh.emv_data).replace("9F0206000000003800", "9F0206000000000100"),
    )
    .unwrap();
    assert_ne!(changed, fresh.emv_data);
    assert_eq!(
        decline(fresh.token.clone(), changed).await,
        DeclineReason::CryptogramInvalid
    );
    // A cryptogram that failed took no counter: the genuine one still passes.
    assert!(app
        .issuer
        .check_tap(&fresh.token, &fresh.emv_data)
        .await
        .unwrap()
        .is_ok());
    // A token the vault does not know; EMV data out of form.
    assert_eq!(
        decline("6299990000000000".into(), fresh.emv_data.clone()).await,
        DeclineReason::UnknownToken
    );
    assert_eq!(
        decline(fresh.token.clone(), fresh.emv_data[..10].to_vec()).await,
        DeclineReason::FormatError
    );
    app.assert_invariants().await;
}

async fn a_suspended_token_is_declined_and_the_phone_answers_the_pos_6985(app: &TestApp) {
    let t = app.f5_token().await;
    let before = tap(&t.phone, &t.card_code, purchase(3_800, [1, 1, 1, 1])).await;
    // The bank holds the token (the phone has not heard yet): the tap
    // read before is declined at the issuer.
    let bank = app.bank_customer("zhang.san").await;
    bank.app()
        .change_token(t.token_id.as_str(), "suspend")
        .await
        .unwrap();
    assert_eq!(
        app.issuer
            .check_tap(&before.token, &before.emv_data)
            .await
            .unwrap()
            .unwrap_err(),
        DeclineReason::TokenInactive
    );
    // Once the phone follows, its card answers the POS "conditions of use
    // not satisfied" and makes no cryptogram.
    for _ in 0..3 {
        app.wallet.dispatcher.run_once().await.unwrap();
        app.issuer.dispatcher.run_once().await.unwrap();
    }
    t.phone.follow_token(&t.token_id).await.unwrap();
    let card = t
        .phone
        .secure_element()
        .card_application(&t.card_code)
        .unwrap();
    let (refused, trace) = PosTerminal::new("T-0001")
        .tap(&mut InProcessField::new(card), purchase(100, [2, 2, 2, 2]))
        .await;
    assert!(refused.is_err());
    assert!(
        trace.last().unwrap().meaning.starts_with("6985"),
        "{trace:?}"
    );
    app.assert_invariants().await;
}
