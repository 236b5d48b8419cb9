//! Flow F5 (part 1) end to end over real HTTP on both stores: an existing
//! cardholder gets a virtual card by the OTP to the reserved phone, a
//! first-card applicant by the ID card photos and a video face check; the
//! token reaches the phone's secure element and only the issuer's vault
//! maps it back to the PAN; the token lifecycle runs from both sides.

use paybridge_devices::phone_virtual_card::Face;
use paybridge_devices::Phone;
use paybridge_domain::card_token::TokenStage;
use paybridge_domain::ids::{CardApplicationId, CardTokenId, UserId};
use paybridge_store::Backend;
use paybridge_testkit::virtual_card::{F5_ISSUER, F5_PIN, F5_PRODUCT, ZHAO_MIN};
use paybridge_testkit::{app_tests, TestApp};
use time::Duration;

app_tests!(
    an_existing_cardholder_gets_a_virtual_card_by_the_otp_and_the_token_reaches_the_secure_element,
    a_first_card_applicant_passes_the_photos_and_the_video_face_check,
    the_cardholder_suspends_resumes_and_deletes_and_the_issuer_follows,
    the_issuer_holds_and_deletes_and_the_wallet_and_the_phone_follow,
    unbinding_the_quick_binding_deactivates_the_token,
);

fn id(text: &str) -> CardApplicationId {
    text.parse().unwrap()
}

fn token_id(text: &str) -> CardTokenId {
    text.parse().unwrap()
}

async fn deliver(app: &TestApp) {
    for _ in 0..3 {
        app.wallet.dispatcher.run_once().await.unwrap();
        app.issuer.dispatcher.run_once().await.unwrap();
    }
}

/// Zhang San's virtual card, issued by the OTP and written into his
/// phone's secure element.
async fn cardholder_with_token(app: &TestApp) -> (Phone, CardTokenId, String) {
    let t = app.f5_token().await;
    (t.phone, t.token_id, t.binding_id)
}

async fn an_existing_cardholder_gets_a_virtual_card_by_the_otp_and_the_token_reaches_the_secure_element(
    app: &TestApp,
) {
    let phone = app.f5_cardholder().await;
    let products = phone.app().unwrap().card_products(F5_ISSUER).await.unwrap();
    assert!(products.products.iter().any(|p| p.id == F5_PRODUCT));

    let a = phone
        .apply_for_virtual_card(F5_ISSUER, F5_PRODUCT, "张三", "110105199003071239", F5_PIN)
        .await
        .unwrap();
    assert!(a.id.starts_with("vca_"));
    assert_eq!(a.state, "otp_sent");
    assert_eq!(a.applicant.as_deref(), Some("existing_cardholder"));
    assert_eq!(a.otp_phone_masked.as_deref(), Some("138****8000"));
    assert!(a.photo_policy.is_none() && a.video_policy.is_none());

    let issued = phone
        .answer_card_otp(&id(&a.id), phone.inbox())
        .await
        .unwrap();
    assert_eq!(issued.state, "issued");
    let code = issued.card_code.clone().unwrap();
    assert!(code.starts_with("CC") && code.len() == 14, "{code}");
    let token = token_id(issued.token_id.as_deref().unwrap());

    // The quick binding is active at once, of the virtual card's channel.
    let user: UserId = phone.session().unwrap().user_id.clone();
    let bindings = app.wallet.store.bindings_of(&user).await.unwrap();
    let quick = bindings
        .iter()
        .find(|b| b.channel == "virtual_card")
        .expect("a quick binding");
    assert_eq!(quick.status.state.as_str(), "active");
    assert_eq!(quick.card_ref, code);
    assert_eq!(Some(quick.id.to_string()), issued.binding_id);

    // The token: the wallet keeps it sealed and the box it cannot open.
    let listed = phone.app().unwrap().card_tokens().await.unwrap();
    assert_eq!(listed.tokens.len(), 1);
    assert_eq!(listed.tokens[0].state, "active");
    assert!(!listed.tokens[0].installed);
    let (data, body) = phone.provision_token(&token).await.unwrap();
    assert!(body.installed);
    assert_eq!(data.card_code, code);
    assert!(
        data.token.starts_with("629999"),
        "a token of the token BIN range"
    );
    let stored = app.wallet.store.card_token(&token).await.unwrap().unwrap();
    assert!(stored.key_box.is_none(), "the box goes once installed");
    assert!(!stored.token_sealed.contains(&data.token));
    let after = phone
        .app()
        .unwrap()
        .card_application(&id(&a.id))
        .await
        .unwrap();
    assert_eq!(after.state, "provisioned");
    // Installed once: the box is not handed out again.
    let again = phone
        .app()
        .unwrap()
        .token_provisioning(&token)
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("application_step"));

    // Only the issuer's vault maps the token back to a PAN of the product.
    let found = app.issuer.detokenise(&data.token).await.unwrap().unwrap();
    assert!(found.pan.expose().starts_with("625999"));
    assert_ne!(found.pan.expose(), data.token);
    assert_eq!(found.pan.last4(), quick.last4);
    assert_eq!(
        found.token.device_id,
        phone.device_id().unwrap().to_string()
    );
    assert_eq!(found.token.channels, "nfc,online");

    // The secure element makes cryptograms with a rising counter.
    let first = phone
        .secure_element()
        .generate_cryptogram(&code, &[0u8; 29])
        .unwrap();
    let second = phone
        .secure_element()
        .generate_cryptogram(&code, &[0u8; 29])
        .unwrap();
    assert!(second.atc > first.atc);
    assert_ne!(first.arqc, second.arqc);
    app.assert_invariants().await;
}

async fn a_first_card_applicant_passes_the_photos_and_the_video_face_check(app: &TestApp) {
    let phone = app.f5_first_card(ZHAO_MIN).await;
    let a = phone
        .apply_for_virtual_card(
            F5_ISSUER,
            F5_PRODUCT,
            ZHAO_MIN.name,
            ZHAO_MIN.id_number,
            F5_PIN,
        )
        .await
        .unwrap();
    assert_eq!(a.state, "photos_requested");
    assert_eq!(a.applicant.as_deref(), Some("first_card"));
    assert!(a.otp_phone_masked.is_none(), "no OTP on this path");
    let policy = a.photo_policy.clone().unwrap();
    assert_eq!(policy.sides, ["id_front", "id_back"]);
    assert_eq!(policy.max_bytes, 2 * 1024 * 1024);

    let photos = phone
        .upload_id_photos(&id(&a.id), Face::Applicant)
        .await
        .unwrap();
    assert_eq!(photos.state, "video_requested");
    let video = photos.video_policy.clone().unwrap();
    assert_eq!(video.actions.first().map(String::as_str), Some("blink"));
    assert_eq!(video.digits.len(), 4);
    assert_eq!(
        app.wallet
            .store
            .card_application_media(&id(&a.id))
            .await
            .unwrap()
            .len(),
        2
    );

    let issued = phone
        .record_video_face_check(&photos, Face::Applicant)
        .await
        .unwrap();
    assert_eq!(issued.state, "issued", "{issued:?}");
    let token = token_id(issued.token_id.as_deref().unwrap());
    let (data, _) = phone.provision_token(&token).await.unwrap();
    // The bank made them a customer (no bank app login yet) with the card.
    let found = app.issuer.detokenise(&data.token).await.unwrap().unwrap();
    let card =
        paybridge_store::BankStore::bank_card(app.issuer.store.as_ref(), &found.token.card_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(card.product.as_deref(), Some(F5_PRODUCT));
    assert_eq!(card.card_code, issued.card_code);
    let stored = app
        .wallet
        .store
        .card_application(&id(&a.id))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.match_score.unwrap() >= 85);
    assert!(stored.reference_sealed.is_some());
    // Decided: with no retention the photos and frames go at the next sweep.
    paybridge_http::background::expire_once(&app.wallet).await;
    assert!(app
        .wallet
        .store
        .card_application_media(&id(&a.id))
        .await
        .unwrap()
        .is_empty());
    app.assert_invariants().await;
}

/// With a retention of an hour (`--card-media-retention-secs 3600`) the
/// photos and frames of a decided application are kept an hour, then the
/// sweep deletes them.
async fn photos_and_frames_are_kept_for_the_retention_then_deleted(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        if let Some(w) = &mut c.wallet {
            w.card_media_retention_secs = Some(3600);
        }
    })
    .await
    else {
        return;
    };
    let phone = app.f5_first_card(ZHAO_MIN).await;
    let a = phone
        .apply_for_virtual_card(
            F5_ISSUER,
            F5_PRODUCT,
            ZHAO_MIN.name,
            ZHAO_MIN.id_number,
            F5_PIN,
        )
        .await
        .unwrap();
    let photos = phone
        .upload_id_photos(&id(&a.id), Face::Applicant)
        .await
        .unwrap();
    // Someone else is on camera: refused, nothing issued.
    let refused = phone
        .record_video_face_check(&photos, Face::SomeoneElse)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("score_too_low"), "{refused}");
    let media = |app: &TestApp| {
        let store = app.wallet.store.clone();
        let id = id(&a.id);
        async move { store.card_application_media(&id).await.unwrap().len() }
    };
    paybridge_http::background::expire_once(&app.wallet).await;
    let kept = media(&app).await;
    assert!(
        kept >= 2 + 3,
        "photos and frames are kept within the retention: {kept}"
    );
    app.clock.advance(Duration::minutes(61));
    paybridge_http::background::expire_once(&app.wallet).await;
    assert_eq!(media(&app).await, 0, "and deleted after it");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_photos_and_frames_are_kept_for_the_retention_then_deleted() {
    photos_and_frames_are_kept_for_the_retention_then_deleted(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_photos_and_frames_are_kept_for_the_retention_then_deleted() {
    photos_and_frames_are_kept_for_the_retention_then_deleted(Backend::Postgres).await;
}

async fn the_cardholder_suspends_resumes_and_deletes_and_the_issuer_follows(app: &TestApp) {
    let (phone, token, _binding) = cardholder_with_token(app).await;
    let wallet_app = phone.app().unwrap().clone();
    let suspended = wallet_app
        .change_card_token(&token, "suspend")
        .await
        .unwrap();
    assert_eq!(
        (suspended.state.as_str(), suspended.state_by.as_deref()),
        ("suspended", Some("cardholder"))
    );
    deliver(app).await;
    let vault = app.issuer.store.vault_token(&token).await.unwrap().unwrap();
    assert_eq!(vault.state.stage(), TokenStage::Suspended);
    // The phone follows: a suspended token makes no cryptogram.
    let body = phone.follow_token(&token).await.unwrap();
    assert!(phone
        .secure_element()
        .generate_cryptogram(&body.card_code, &[0u8; 29])
        .is_err());

    wallet_app
        .change_card_token(&token, "resume")
        .await
        .unwrap();
    deliver(app).await;
    let vault = app.issuer.store.vault_token(&token).await.unwrap().unwrap();
    assert_eq!(vault.state.stage(), TokenStage::Active);
    phone.follow_token(&token).await.unwrap();
    assert!(phone
        .secure_element()
        .generate_cryptogram(&body.card_code, &[0u8; 29])
        .is_ok());

    let deleted = wallet_app
        .change_card_token(&token, "delete")
        .await
        .unwrap();
    assert_eq!(deleted.state, "deactivated");
    deliver(app).await;
    let vault = app.issuer.store.vault_token(&token).await.unwrap().unwrap();
    assert_eq!(vault.state.stage(), TokenStage::Deactivated);
    let binding = app
        .wallet
        .store
        .binding(&deleted.binding_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(binding.status.state.as_str(), "unbound");
    // Deleted for good: nothing brings it back.
    let again = wallet_app
        .change_card_token(&token, "resume")
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("token_inactive"));
    phone.follow_token(&token).await.unwrap();
    assert!(phone
        .secure_element()
        .generate_cryptogram(&body.card_code, &[0u8; 29])
        .is_err());
    app.assert_invariants().await;
}

async fn the_issuer_holds_and_deletes_and_the_wallet_and_the_phone_follow(app: &TestApp) {
    let (phone, token, _binding) = cardholder_with_token(app).await;
    let bank = app.bank_customer("zhang.san").await;
    let held = bank
        .app()
        .change_token(token.as_str(), "suspend")
        .await
        .unwrap();
    assert_eq!(held.state_by.as_deref(), Some("issuer"));
    deliver(app).await;
    let body = phone.follow_token(&token).await.unwrap();
    assert_eq!(
        (body.state.as_str(), body.state_by.as_deref()),
        ("suspended", Some("issuer"))
    );
    // The cardholder cannot lift the bank's hold.
    let refused = phone
        .app()
        .unwrap()
        .change_card_token(&token, "resume")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("token_inactive"));
    bank.app()
        .change_token(token.as_str(), "resume")
        .await
        .unwrap();
    deliver(app).await;
    assert_eq!(phone.follow_token(&token).await.unwrap().state, "active");
    // The bank lists the card's tokens, never their full number.
    let card = app
        .issuer
        .store
        .vault_token(&token)
        .await
        .unwrap()
        .unwrap()
        .card_id;
    let listed = bank.app().card_tokens(card.as_str()).await.unwrap();
    assert_eq!(listed.tokens.len(), 1);
    assert_eq!(listed.tokens[0].token_last4.len(), 4);

    bank.app()
        .change_token(token.as_str(), "delete")
        .await
        .unwrap();
    deliver(app).await;
    let body = phone.follow_token(&token).await.unwrap();
    assert_eq!(
        (body.state.as_str(), body.state_by.as_deref()),
        ("deactivated", Some("issuer"))
    );
    let binding = app
        .wallet
        .store
        .binding(&body.binding_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(binding.status.state.as_str(), "unbound");
    assert!(phone
        .secure_element()
        .generate_cryptogram(&body.card_code, &[0u8; 29])
        .is_err());
    app.assert_invariants().await;
}

async fn unbinding_the_quick_binding_deactivates_the_token(app: &TestApp) {
    let (phone, token, binding) = cardholder_with_token(app).await;
    phone
        .app()
        .unwrap()
        .unbind(&binding.parse().unwrap())
        .await
        .unwrap();
    let body = phone.app().unwrap().card_token(&token).await.unwrap();
    assert_eq!(
        (body.state.as_str(), body.state_by.as_deref()),
        ("deactivated", Some("cardholder"))
    );
    deliver(app).await;
    let vault = app.issuer.store.vault_token(&token).await.unwrap().unwrap();
    assert_eq!(vault.state.stage(), TokenStage::Deactivated);
    let agreement =
        paybridge_store::AgreementStore::agreement_by_binding(app.issuer.store.as_ref(), &binding)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(agreement.status.as_str(), "cancelled");
    app.assert_invariants().await;
}
