//! SMS budgets over real HTTP on both stores: beyond a phone's own hourly
//! budget, the codes requests from one client address cause, and the codes
//! the whole wallet sends, are checked and counted with each send, so
//! spreading a flood over many phone numbers (SMS pumping: the attacker is
//! paid per text by a premium-rate carrier) stays within them.

use paybridge_store::Backend;
use paybridge_testkit::{code, TestApp};
use serde_json::json;

async fn start(app: &TestApp, phone: String) -> (u16, serde_json::Value) {
    app.call(
        "POST",
        "/v1/accounts",
        None,
        Some(json!({ "phone": phone })),
    )
    .await
}

/// Attack: 60 registrations at once, each for another number, from one
/// address. The address's budget (50 an hour) holds under the race.
async fn one_address_gets_at_most_its_budget_of_codes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let answers =
        futures::future::join_all((0..60).map(|i| start(&app, format!("1370000{i:04}")))).await;
    let sent = answers.iter().filter(|(s, _)| *s == 202).count();
    assert_eq!(sent, 50, "{answers:?}");
    for (s, e) in answers.iter().filter(|(s, _)| *s != 202) {
        assert_eq!((*s, code(e)), (429, "otp_rate_limited"), "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("network"));
    }
    app.stop().await;
}

/// Attack: the same spread over addresses too. The wallet's own hourly
/// ceiling (here 3) is the last line.
async fn the_wallet_sends_at_most_its_hourly_ceiling(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        let w = c.wallet.as_mut().unwrap();
        w.sms_global_hourly_cap = Some(3);
        w.sms_ip_hourly_cap = Some(0);
    })
    .await
    else {
        return;
    };
    for i in 0..3 {
        let (s, v) = start(&app, format!("1360000{i:04}")).await;
        assert_eq!(s, 202, "{v}");
    }
    let (s, e) = start(&app, "13600009999".into()).await;
    assert_eq!((s, code(&e)), (429, "otp_rate_limited"), "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("too many codes right now"));
    app.stop().await;
}

#[tokio::test]
async fn sqlite_one_address_gets_at_most_its_budget_of_codes() {
    one_address_gets_at_most_its_budget_of_codes(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_one_address_gets_at_most_its_budget_of_codes() {
    one_address_gets_at_most_its_budget_of_codes(Backend::Postgres).await;
}

#[tokio::test]
async fn sqlite_the_wallet_sends_at_most_its_hourly_ceiling() {
    the_wallet_sends_at_most_its_hourly_ceiling(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_the_wallet_sends_at_most_its_hourly_ceiling() {
    the_wallet_sends_at_most_its_hourly_ceiling(Backend::Postgres).await;
}
