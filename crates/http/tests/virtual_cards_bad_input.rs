//! Flow F5's bad input over real HTTP on both stores: each refusal has its
//! own code, and none leaves a card, a token or a quick binding behind.
//! The application's start (payment password, device-bound session,
//! identity, secure element, one under way), the OTP path (codes, another
//! user's application, OTP proofs the bank refuses, a forged partner call),
//! the photo and video path (images, sizes, frames, reference numbers the
//! bank cannot look up, a failing score), the bank's pre-verification
//! (a blocked identity, a second card) and secure element registrations.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use paybridge_adapters::identity::{IdentitySubmission, IdentityVerdict};
use paybridge_api::virtual_card::{
    CardApplicationBody, CardApplicationPhotos, CardApplicationVideo, CardIssued, OtpProof,
    RegisterSecureElementKey, ResubmitCardApplication, SecureElementKeyClaims,
    StartCardApplication,
};
use paybridge_client::{DeviceSigner, PartnerError};
use paybridge_crypto::signed_message::MessageType;
use paybridge_devices::phone_virtual_card::{sandbox_jpeg, Face};
use paybridge_devices::Phone;
use paybridge_domain::ids::CardApplicationId;
use paybridge_testkit::virtual_card::{
    F5_ISSUER, F5_PIN, F5_PRODUCT, QIAN_WEI, ZHAO_MIN, ZHOU_JIE,
};
use paybridge_testkit::{app_tests, bank_id, code, wallet_id, TestApp, TEST_LOGIN_PASSWORD};
use serde_json::json;
use time::Duration;

app_tests!(
    starting_an_application_is_refused_for_each_bad_input,
    only_one_application_is_under_way_when_starts_race,
    the_otp_path_refuses_wrong_codes_foreign_proofs_and_forged_calls,
    the_photo_and_video_path_refuses_each_bad_input,
    a_reference_number_is_looked_up_only_for_its_application_and_id_number,
    the_bank_refuses_a_blocked_identity_and_a_card_over_the_limit,
    secure_element_registrations_are_refused_for_each_bad_input,
);

const ZHANG_SAN: (&str, &str) = ("张三", "110105199003071239");

fn id(text: &str) -> CardApplicationId {
    text.parse().unwrap()
}

fn start(name: &str, id_number: &str, pin: &str) -> StartCardApplication {
    StartCardApplication {
        payment_password: pin.into(),
        issuer: F5_ISSUER.into(),
        product: F5_PRODUCT.into(),
        name: name.into(),
        id_number: id_number.into(),
    }
}

/// Nothing was issued to the phone's account: no card token, no quick
/// binding, and no card at the bank for the application (when there is
/// one).
async fn nothing_issued(app: &TestApp, phone: &Phone, application: Option<&str>) {
    let user = phone.session().unwrap().user_id.clone();
    assert!(app
        .wallet
        .store
        .card_tokens_of(&user)
        .await
        .unwrap()
        .is_empty());
    assert!(app
        .wallet
        .store
        .bindings_of(&user)
        .await
        .unwrap()
        .iter()
        .all(|b| b.channel != "virtual_card"));
    if let Some(a) = application {
        if let Some(review) = app.issuer.store.bank_application(&id(a)).await.unwrap() {
            assert!(review.card_id.is_none() && review.token_id.is_none());
        }
    }
    app.assert_invariants().await;
}

async fn starting_an_application_is_refused_for_each_bad_input(app: &TestApp) {
    // Zhang San's trusted phone, before its secure element's key is known.
    let (phone, _) = app.f3_phone(0, F5_PIN).await;
    let wallet_app = phone.app().unwrap().clone();
    let (name, number) = ZHANG_SAN;
    let refused = |body: StartCardApplication| {
        let wallet_app = wallet_app.clone();
        async move {
            let e = wallet_app.start_card_application(&body).await.unwrap_err();
            (e.status().unwrap_or(0), e.code().unwrap_or("").to_owned())
        }
    };
    assert_eq!(
        refused(start(name, number, F5_PIN)).await,
        (409, "secure_element_missing".into())
    );
    phone.register_secure_element().await.unwrap();

    // The payment password comes first, and is counted.
    assert_eq!(
        refused(start(name, number, "000000")).await,
        (403, "payment_password_invalid".into())
    );
    // Only the account's own identity.
    assert_eq!(
        refused(start("李四", number, F5_PIN)).await,
        (422, "identity_mismatch".into())
    );
    assert_eq!(
        refused(start(name, ZHAO_MIN.id_number, F5_PIN)).await,
        (422, "identity_mismatch".into())
    );
    assert_eq!(
        refused(start(name, "11010519900307123X", F5_PIN)).await,
        (422, "identity_invalid".into()),
        "a check digit that does not add up"
    );
    let mut body = start(name, number, F5_PIN);
    body.issuer = "no-such-bank".into();
    assert_eq!(refused(body).await.1, "partner_unknown");
    let mut body = start(name, number, F5_PIN);
    body.product = "x".repeat(65);
    assert_eq!(refused(body).await, (422, "invalid_request".into()));

    // A session the phone's key does not hold is not enough.
    let (s, plain) = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": "13800138000", "password": TEST_LOGIN_PASSWORD})),
        )
        .await;
    assert_eq!(s, 201, "{plain}");
    let (s, e) = app
        .call(
            "POST",
            "/v1/card-applications",
            plain["token"].as_str(),
            Some(serde_json::to_value(start(name, number, F5_PIN)).unwrap()),
        )
        .await;
    assert_eq!((s, code(&e)), (403, "device_proof_required"), "{e}");
    // Unknown fields and missing ones.
    let (s, e) = wallet_app
        .client()
        .call_raw(
            reqwest::Method::POST,
            "/v1/card-applications",
            Some(&json!({"payment_password": F5_PIN, "issuer": F5_ISSUER})),
            Some("bad-body-1"),
        )
        .await
        .unwrap();
    assert_eq!(s, 422, "{e}");
    nothing_issued(app, &phone, None).await;

    // A product the bank does not offer: the bank refuses, the
    // application is rejected and is no longer under way.
    let mut body = start(name, number, F5_PIN);
    body.product = "virtual_gold".into();
    assert_eq!(refused(body).await, (404, "not_found".into()));
    let a = phone
        .apply_for_virtual_card(F5_ISSUER, F5_PRODUCT, name, number, F5_PIN)
        .await
        .unwrap();
    assert_eq!(a.state, "otp_sent");
    nothing_issued(app, &phone, Some(&a.id)).await;
}

async fn only_one_application_is_under_way_when_starts_race(app: &TestApp) {
    let phone = app.f5_cardholder().await;
    let wallet_app = phone.app().unwrap().clone();
    let (name, number) = ZHANG_SAN;
    let starts = (0..6).map(|_| {
        let wallet_app = wallet_app.clone();
        tokio::spawn(async move {
            wallet_app
                .start_card_application(&start(name, number, F5_PIN))
                .await
        })
    });
    let mut started = Vec::new();
    for answer in futures::future::join_all(starts).await {
        match answer.unwrap() {
            Ok(a) => started.push(a),
            Err(e) => assert_eq!(e.code(), Some("application_pending"), "{e}"),
        }
    }
    assert_eq!(started.len(), 1, "exactly one application is under way");
    // One OTP went to the reserved phone, for the one application.
    let issued = phone
        .answer_card_otp(&id(&started[0].id), phone.inbox())
        .await
        .unwrap();
    assert_eq!(issued.state, "issued");
    let user = phone.session().unwrap().user_id.clone();
    assert_eq!(
        app.wallet.store.card_tokens_of(&user).await.unwrap().len(),
        1
    );
    app.assert_invariants().await;
}

/// Sends a resubmission to the bank as the wallet (signed with `client`).
async fn resubmit_at_bank(
    client: &paybridge_client::PartnerClient,
    application: &str,
    body: &ResubmitCardApplication,
) -> Result<CardIssued, PartnerError> {
    client
        .call(
            reqwest::Method::POST,
            &format!("/v1/partner/card-applications/{application}/resubmissions"),
            Some(body),
            Some(&format!("test-{}", rand::random::<u64>())),
        )
        .await
}

fn refusal(e: PartnerError) -> (u16, String) {
    match e {
        PartnerError::Refused { status, code, .. } => (status, code),
        other => panic!("not a refusal: {other}"),
    }
}

async fn the_otp_path_refuses_wrong_codes_foreign_proofs_and_forged_calls(app: &TestApp) {
    let phone = app.f5_cardholder().await;
    let (name, number) = ZHANG_SAN;
    let a = phone
        .apply_for_virtual_card(F5_ISSUER, F5_PRODUCT, name, number, F5_PIN)
        .await
        .unwrap();
    let wallet_app = phone.app().unwrap().clone();

    // A wrong code is refused and counted; photos are not this path's step.
    let e = wallet_app
        .card_application_otp(
            &id(&a.id),
            &paybridge_api::virtual_card::CardApplicationOtp {
                code: "000000".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("otp_invalid"), "{e}");
    let photos = CardApplicationPhotos {
        front: B64.encode(sandbox_jpeg("front", Face::Applicant, 8 * 1024)),
        back: B64.encode(sandbox_jpeg("back", Face::Applicant, 8 * 1024)),
    };
    let e = wallet_app
        .card_application_photos(&id(&a.id), &photos)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("application_step"), "{e}");

    // Another account cannot see or answer it.
    let other = app.f5_first_card(ZHOU_JIE).await;
    let e = other
        .app()
        .unwrap()
        .card_application(&id(&a.id))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), Some("not_found")));
    let e = other
        .answer_card_otp(&id(&a.id), phone.inbox())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("not_found"), "{e}");

    // At the bank: an OTP proof must name this application and the
    // reserved phone, and be verified during it.
    let bank = app.wallet_to_bank();
    let device = phone.device_id().unwrap().to_string();
    let se_key = phone.secure_element().encryption_public_key();
    let now = app.clock_now();
    let proof = |application: &str, phone_number: &str, at: time::OffsetDateTime| OtpProof {
        application_id: application.into(),
        otp_id: "otp_0000000000000000000000000000".into(),
        phone: phone_number.into(),
        verified_at: at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    };
    let resubmission = |p: Option<OtpProof>, reference: Option<&str>| ResubmitCardApplication {
        otp_proof: p,
        identity_reference: reference.map(str::to_owned),
        device_id: device.clone(),
        secure_element_key: se_key.clone(),
    };
    let other_application = CardApplicationId::generate().to_string();
    for (what, body) in [
        (
            "for another application",
            resubmission(Some(proof(&other_application, "13800138000", now)), None),
        ),
        (
            "to another phone",
            resubmission(Some(proof(&a.id, "13900139000", now)), None),
        ),
        (
            "before the application",
            resubmission(
                Some(proof(&a.id, "13800138000", now - Duration::hours(1))),
                None,
            ),
        ),
        (
            "in the future",
            resubmission(
                Some(proof(&a.id, "13800138000", now + Duration::minutes(5))),
                None,
            ),
        ),
    ] {
        let e = resubmit_at_bank(&bank, &a.id, &body).await.unwrap_err();
        assert_eq!(refusal(e), (422, "otp_proof_invalid".into()), "{what}");
    }
    let both = resubmission(Some(proof(&a.id, "13800138000", now)), Some("IDA00"));
    let e = resubmit_at_bank(&bank, &a.id, &both).await.unwrap_err();
    assert_eq!(refusal(e), (422, "invalid_request".into()));
    let mut bad_key = resubmission(Some(proof(&a.id, "13800138000", now)), None);
    bad_key.secure_element_key = "not-a-key".into();
    let e = resubmit_at_bank(&bank, &a.id, &bad_key).await.unwrap_err();
    assert_eq!(refusal(e), (422, "invalid_request".into()));
    // A first card's evidence on an existing cardholder's application.
    let e = resubmit_at_bank(&bank, &a.id, &resubmission(None, Some("IDA00")))
        .await
        .unwrap_err();
    assert_eq!(refusal(e), (409, "application_step".into()));

    // A call signed by a key that is not the wallet's is not the wallet.
    let forged = app.signed_client(
        wallet_id(),
        Arc::new(paybridge_crypto::signing::PartnerKeyPair::generate()),
        bank_id(),
        app.issuer_key.clone(),
        &format!("{}/bank", app.base_url),
    );
    let good = resubmission(Some(proof(&a.id, "13800138000", now)), None);
    let e = resubmit_at_bank(&forged, &a.id, &good).await.unwrap_err();
    assert_eq!(refusal(e).0, 401);
    // The wallet's own signature over one body, sent with another (a proof
    // for this application in place of one for another): refused.
    let path = format!("/bank/v1/partner/card-applications/{}/resubmissions", a.id);
    let signed_body = serde_json::to_vec(&resubmission(
        Some(proof(&other_application, "13800138000", now)),
        None,
    ))
    .unwrap();
    let sent_body = serde_json::to_vec(&good).unwrap();
    let (nonce, key) = (paybridge_crypto::signing::new_nonce(), "tamper-1");
    let authorization = paybridge_crypto::signing::SignedRequest {
        method: "POST",
        path_and_query: &path,
        from: &wallet_id(),
        to: &bank_id(),
        timestamp: now.unix_timestamp(),
        nonce: &nonce,
        headers: paybridge_crypto::signing::SignedHeaders {
            content_type: "application/json",
            idempotency_key: key,
        },
        body: &signed_body,
    }
    .authorization(&app.wallet_key);
    let tampered = reqwest::Client::new()
        .post(format!("{}{path}", app.base_url))
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(sent_body)
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status().as_u16(), 401);
    nothing_issued(app, &phone, Some(&a.id)).await;

    // The code expires after five minutes; resuming sends a new one, and
    // none of the above hurt the application: the new code issues the card.
    app.clock.advance(Duration::minutes(6));
    let e = phone
        .answer_card_otp(&id(&a.id), phone.inbox())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("otp_expired"), "{e}");
    let resumed = wallet_app
        .resume_card_application(&id(&a.id))
        .await
        .unwrap();
    assert_eq!(resumed.state, "otp_sent");
    let issued = phone
        .answer_card_otp(&id(&a.id), phone.inbox())
        .await
        .unwrap();
    assert_eq!(issued.state, "issued");
    // Answered, the OTP step is over.
    let e = phone
        .answer_card_otp(&id(&a.id), phone.inbox())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("application_step"), "{e}");
    app.assert_invariants().await;
}

async fn first_card_application(app: &TestApp) -> (Phone, CardApplicationBody) {
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
    (phone, a)
}

async fn the_photo_and_video_path_refuses_each_bad_input(app: &TestApp) {
    let (phone, a) = first_card_application(app).await;
    let wallet_app = phone.app().unwrap().clone();
    let application = id(&a.id);
    let jpeg = |size| B64.encode(sandbox_jpeg("ID card", Face::Applicant, size));
    let photos = |front: String, back: String| CardApplicationPhotos { front, back };
    let refused = |body: CardApplicationPhotos| {
        let wallet_app = wallet_app.clone();
        let application = application.clone();
        async move {
            let e = wallet_app
                .card_application_photos(&application, &body)
                .await
                .unwrap_err();
            (e.status().unwrap_or(0), e.code().unwrap_or("").to_owned())
        }
    };
    // Not base64, not an image, an image over 2 MiB.
    assert_eq!(
        refused(photos("%%%".into(), jpeg(8 * 1024))).await,
        (422, "image_invalid".into())
    );
    assert_eq!(
        refused(photos(
            jpeg(8 * 1024),
            B64.encode(b"GIF89a not what we take")
        ))
        .await,
        (422, "image_invalid".into())
    );
    assert_eq!(
        refused(photos(jpeg(3 * 1024 * 1024), jpeg(8 * 1024))).await,
        (413, "image_too_large".into())
    );
    // A body over the upload limit is cut off before it is read whole.
    let (s, e) = wallet_app
        .client()
        .call_raw(
            reqwest::Method::POST,
            &format!("/v1/card-applications/{}/photos", a.id),
            Some(&json!({"front": "A".repeat(10 * 1024 * 1024), "back": ""})),
            Some("too-large-1"),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&e)), (413, "body_too_large"), "{e}");
    // Frames before photos; the OTP is not this path's step.
    let e = wallet_app
        .card_application_video(
            &application,
            &CardApplicationVideo {
                frames: vec![jpeg(4096); 4],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("application_step"), "{e}");
    let e = wallet_app
        .card_application_otp(
            &application,
            &paybridge_api::virtual_card::CardApplicationOtp {
                code: "123456".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("application_step"), "{e}");
    assert!(app
        .wallet
        .store
        .card_application_media(&application)
        .await
        .unwrap()
        .is_empty());

    let with_photos = phone
        .upload_id_photos(&application, Face::Applicant)
        .await
        .unwrap();
    let policy = with_photos.video_policy.clone().unwrap();
    let video = |frames: Vec<String>| CardApplicationVideo { frames };
    let refused_video = |body: CardApplicationVideo| {
        let wallet_app = wallet_app.clone();
        let application = application.clone();
        async move {
            let e = wallet_app
                .card_application_video(&application, &body)
                .await
                .unwrap_err();
            (e.status().unwrap_or(0), e.code().unwrap_or("").to_owned())
        }
    };
    // Too few frames, too many, one that is no image, one too large.
    let few = (policy.frames_min as usize).saturating_sub(1);
    assert_eq!(
        refused_video(video(vec![jpeg(4096); few])).await,
        (422, "video_frames_invalid".into())
    );
    assert_eq!(
        refused_video(video(vec![jpeg(4096); policy.frames_max as usize + 1])).await,
        (422, "video_frames_invalid".into())
    );
    let mut frames: Vec<String> =
        paybridge_devices::phone_virtual_card::video_frames(&policy, Face::Applicant)
            .iter()
            .map(|f| B64.encode(f))
            .collect();
    let good = frames.clone();
    frames[1] = B64.encode(b"plain text");
    assert_eq!(
        refused_video(video(frames.clone())).await,
        (422, "image_invalid".into())
    );
    frames[1] = jpeg(policy.frame_max_bytes as usize + 1);
    assert_eq!(refused_video(video(frames)).await.0, 413);
    // The same frame over and over is no video.
    assert_eq!(
        refused_video(video(vec![good[0].clone(); good.len()])).await,
        (422, "video_frames_invalid".into())
    );
    nothing_issued(app, &phone, Some(&a.id)).await;

    // Someone else on camera: the bank refuses the score, and the
    // application is over (a new one may start).
    let e = phone
        .record_video_face_check(&with_photos, Face::SomeoneElse)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("score_too_low"), "{e}");
    let after = wallet_app.card_application(&application).await.unwrap();
    assert_eq!(
        (after.state.as_str(), after.reason.as_deref()),
        ("rejected", Some("score_too_low"))
    );
    let e = refused_video(video(good)).await;
    assert_eq!(e, (409, "application_step".into()));
    nothing_issued(app, &phone, Some(&a.id)).await;
    let again = phone
        .apply_for_virtual_card(
            F5_ISSUER,
            F5_PRODUCT,
            ZHAO_MIN.name,
            ZHAO_MIN.id_number,
            F5_PIN,
        )
        .await
        .unwrap();
    assert_eq!(again.state, "photos_requested");
    assert_ne!(again.id, a.id);
}

async fn a_reference_number_is_looked_up_only_for_its_application_and_id_number(app: &TestApp) {
    let (phone, a) = first_card_application(app).await;
    phone
        .upload_id_photos(&id(&a.id), Face::Applicant)
        .await
        .unwrap();
    let authority = app.wallet.identity.clone().unwrap();
    let reference_for = |application: String, citizen: (&str, &str)| {
        let authority = authority.clone();
        let submission = IdentitySubmission {
            application,
            name: citizen.0.into(),
            id_number: citizen.1.into(),
            photo_front: sandbox_jpeg("front", Face::Applicant, 1024),
            photo_back: sandbox_jpeg("back", Face::Applicant, 1024),
            video_frames: vec![sandbox_jpeg("frame", Face::Applicant, 1024)],
        };
        async move {
            match authority.check(&submission).await.unwrap() {
                IdentityVerdict::Scored { score, reference } => {
                    assert!(score >= 85);
                    reference
                }
                IdentityVerdict::UnknownCitizen => panic!("a sandbox citizen"),
            }
        }
    };
    let zhao = (ZHAO_MIN.name, ZHAO_MIN.id_number);
    let zhou = (ZHOU_JIE.name, ZHOU_JIE.id_number);
    let bank = app.wallet_to_bank();
    let resubmission = |reference: String| ResubmitCardApplication {
        otp_proof: None,
        identity_reference: Some(reference),
        device_id: phone.device_id().unwrap().to_string(),
        secure_element_key: phone.secure_element().encryption_public_key(),
    };
    for (what, reference) in [
        ("made up", "IDA0011223344556677".to_owned()),
        (
            "another application's",
            reference_for(CardApplicationId::generate().to_string(), zhao).await,
        ),
        (
            "another ID number's",
            reference_for(a.id.clone(), zhou).await,
        ),
    ] {
        let e = resubmit_at_bank(&bank, &a.id, &resubmission(reference))
            .await
            .unwrap_err();
        assert_eq!(refusal(e), (422, "reference_invalid".into()), "{what}");
    }
    // An OTP proof on a first card's application is not its evidence.
    let proof = ResubmitCardApplication {
        otp_proof: Some(OtpProof {
            application_id: a.id.clone(),
            otp_id: "otp_0000000000000000000000000000".into(),
            phone: ZHAO_MIN.phone.into(),
            verified_at: app
                .clock_now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        }),
        identity_reference: None,
        ..resubmission(String::new())
    };
    let e = resubmit_at_bank(&bank, &a.id, &proof).await.unwrap_err();
    assert_eq!(refusal(e), (409, "application_step".into()));
    nothing_issued(app, &phone, Some(&a.id)).await;

    // The wallet's own check, made for this application, issues it.
    let current = phone
        .app()
        .unwrap()
        .card_application(&id(&a.id))
        .await
        .unwrap();
    let issued = phone
        .record_video_face_check(&current, Face::Applicant)
        .await
        .unwrap();
    assert_eq!(issued.state, "issued", "{issued:?}");
    app.assert_invariants().await;
}

async fn the_bank_refuses_a_blocked_identity_and_a_card_over_the_limit(app: &TestApp) {
    // Blocked at the bank: refused when the application arrives, before
    // any photo is taken.
    let blocked = app.f5_first_card(QIAN_WEI).await;
    let e = blocked
        .app()
        .unwrap()
        .start_card_application(&start(QIAN_WEI.name, QIAN_WEI.id_number, F5_PIN))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("identity_blocked"))
    );
    nothing_issued(app, &blocked, None).await;

    // One virtual credit card per person: the second is refused at once.
    let phone = app.f5_cardholder().await;
    let (name, number) = ZHANG_SAN;
    let a = phone
        .apply_for_virtual_card(F5_ISSUER, F5_PRODUCT, name, number, F5_PIN)
        .await
        .unwrap();
    phone
        .answer_card_otp(&id(&a.id), phone.inbox())
        .await
        .unwrap();
    let e = phone
        .app()
        .unwrap()
        .start_card_application(&start(name, number, F5_PIN))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("card_limit_reached"))
    );
    let user = phone.session().unwrap().user_id.clone();
    assert_eq!(
        app.wallet.store.card_tokens_of(&user).await.unwrap().len(),
        1,
        "the first card only"
    );
    // The debit product allows two.
    let debit = phone
        .apply_for_virtual_card(F5_ISSUER, "virtual_debit", name, number, F5_PIN)
        .await
        .unwrap();
    assert_eq!(debit.state, "otp_sent");
    app.assert_invariants().await;
}

async fn secure_element_registrations_are_refused_for_each_bad_input(app: &TestApp) {
    let (phone, _) = app.f3_phone(0, F5_PIN).await;
    let wallet_app = phone.app().unwrap().clone();
    let device = phone.device_id().unwrap().to_string();
    let now = app.clock_now().unix_timestamp();
    let claims = |device_id: &str, public_key: String, iat: i64| SecureElementKeyClaims {
        device_id: device_id.into(),
        public_key,
        iat,
    };
    let good_key = phone.secure_element().encryption_public_key();
    let register = |signer: Arc<DeviceSigner>, typ: MessageType, c: SecureElementKeyClaims| {
        let wallet_app = wallet_app.clone();
        async move {
            let registration = signer.sign_message(typ, &c);
            wallet_app
                .register_secure_element_key(&RegisterSecureElementKey { registration })
                .await
                .map(|_| ())
                .map_err(|e| e.code().unwrap_or("").to_owned())
        }
    };
    let own = phone.signer().clone();
    let other_key = DeviceSigner::generate();
    for (what, signer, typ, c, expected) in [
        (
            "another device named",
            own.clone(),
            MessageType::SecureElementKey,
            claims("dev_0000000000000000000000000000", good_key.clone(), now),
            "message_mismatch",
        ),
        (
            "not an X25519 key",
            own.clone(),
            MessageType::SecureElementKey,
            claims(&device, "c2hvcnQ".into(), now),
            "invalid_request",
        ),
        (
            "signed ten minutes ago",
            own.clone(),
            MessageType::SecureElementKey,
            claims(&device, good_key.clone(), now - 600),
            "message_mismatch",
        ),
        (
            "signed by another key",
            other_key,
            MessageType::SecureElementKey,
            claims(&device, good_key.clone(), now),
            "device_signature_invalid",
        ),
        (
            "another kind of message",
            own.clone(),
            MessageType::ConfirmPayment,
            claims(&device, good_key.clone(), now),
            "device_signature_invalid",
        ),
    ] {
        let e = register(signer, typ, c).await.unwrap_err();
        assert_eq!(e, expected, "{what}");
    }
    assert!(app
        .wallet
        .store
        .secure_element_key(phone.device_id().unwrap())
        .await
        .unwrap()
        .is_none());
    // The right one registers; an older one than it is refused after.
    register(
        own.clone(),
        MessageType::SecureElementKey,
        claims(&device, good_key.clone(), now),
    )
    .await
    .unwrap();
    let e = register(
        own,
        MessageType::SecureElementKey,
        claims(&device, good_key, now - 60),
    )
    .await
    .unwrap_err();
    assert_eq!(e, "message_mismatch");
}
