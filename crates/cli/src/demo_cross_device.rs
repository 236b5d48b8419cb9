//! `paybridge demo cross-device` (flow F4): the merchant, the PC, the phone
//! and the OS push relay, over HTTP. The merchant registers a webhook
//! endpoint served by a small receiver this demo runs, and creates an order;
//! the PC asks for it to be paid; the phone gets a gesture prompt, the
//! gesture comes back through the OS push relay, the payment page opens on
//! the phone, which pays with the payment password; the PC hears it on its
//! push channel and the merchant through its signed webhook. Exits non-zero
//! unless all three happened.

use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::demo::{
    latest_code, money, play_bind, say, wallet_login, DemoArgs, Http, Server,
    DEMO_PAYMENT_PASSWORD, RESERVED_PHONE,
};

/// The sandbox merchant's documented test key.
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;

/// Zhang San's ID number ends so (seeded bank data), for security authentication.
const ID_LAST4: &str = "1239";
const PC_NAME: &str = "Demo PC";
const PHONE_NAME: &str = "Demo phone";
/// How long to wait for a push or a webhook.
const WAIT: Duration = Duration::from_secs(30);

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let server = Server::start(&args).await?;
    let http = Http {
        base: server.base.clone(),
        client: reqwest::Client::new(),
    };
    let result = play(&http).await;
    server.stop().await;
    result
}

/// A webhook received: signature header and body.
type Hook = (String, Bytes);

async fn receive(
    State(tx): State<mpsc::UnboundedSender<Hook>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers
        .get("paybridge-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let _ = tx.send((signature, body));
    StatusCode::NO_CONTENT
}

/// The merchant's webhook receiver, on a free local port.
async fn start_receiver() -> anyhow::Result<(String, mpsc::UnboundedReceiver<Hook>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    let app = Router::new().route("/hooks", post(receive)).with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, rx))
}

/// Opens a device's push channel; its events (topic, data) arrive on the receiver.
async fn open_channel(
    http: &Http,
    token: &str,
    device: &str,
) -> anyhow::Result<mpsc::UnboundedReceiver<(String, Value)>> {
    let mut resp = http
        .client
        .get(format!("{}/v1/devices/{device}/events", http.base))
        .bearer_auth(token)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("the push channel answered {}", resp.status());
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut topic, mut data) = (None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        topic = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = serde_json::from_str::<Value>(v.trim()).ok();
                    }
                }
                if let (Some(t), Some(d)) = (topic, data) {
                    if tx.send((t, d)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// Waits for `topic` about `payment` on a channel.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<(String, Value)>,
    topic: &str,
    payment: &str,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .with_context(|| format!("no {topic} within {WAIT:?}"))?
            .context("the push channel closed")?;
        // Events carry the payment id either at the top or in `data`.
        let data = if next.1.get("data").is_some() {
            next.1["data"].clone()
        } else {
            next.1.clone()
        };
        if next.0 == topic && data["payment_id"] == payment {
            return Ok(data);
        }
    }
}

/// An active device of the account named `name`, registered if missing.
async fn device(http: &Http, token: &str, kind: &str, name: &str) -> anyhow::Result<String> {
    let list = http
        .ok(Method::GET, "/v1/devices", Some(token), None)
        .await?;
    if let Some(d) = list["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["name"] == name && d["type"] == kind && d["status"] == "active")
    {
        return Ok(d["id"].as_str().unwrap_or_default().to_owned());
    }
    let d = http
        .ok(
            Method::POST,
            "/v1/devices",
            Some(token),
            Some(json!({"type": kind, "name": name})),
        )
        .await?;
    Ok(d["id"].as_str().unwrap_or_default().to_owned())
}

/// A session on the phone: a login naming it, after security
/// authentication the first time (a new device).
async fn phone_session(http: &Http, phone: &str) -> anyhow::Result<String> {
    let login = json!({"phone": RESERVED_PHONE, "password": crate::demo::WALLET_PASSWORD, "device_id": phone});
    let (status, v) = http
        .call(Method::POST, "/v1/sessions", None, Some(login.clone()))
        .await?;
    if status == 201 {
        return Ok(v["token"].as_str().unwrap_or_default().to_owned());
    }
    if v["error"]["code"] != "security_auth_required" {
        bail!("phone login answered {status}: {v}");
    }
    say("phone", "a new device: security authentication first");
    let auth = http
        .ok(
            Method::POST,
            "/v1/security-authentications",
            None,
            Some(json!({"phone": RESERVED_PHONE, "device_id": phone,
                "environment": {"emulator": false, "rooted": false, "os": "android", "os_version": "14"}})),
        )
        .await?;
    let id = auth["id"].as_str().unwrap_or_default().to_owned();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let code = latest_code(http, RESERVED_PHONE).await?;
    let mut passwords = json!({});
    for needed in auth["passwords_needed"].as_array().into_iter().flatten() {
        if needed == "payment" {
            passwords["payment_password"] = DEMO_PAYMENT_PASSWORD.into();
        }
    }
    for (step, body) in [
        ("otp", json!({"code": code})),
        ("identity", json!({"id_number_last4": ID_LAST4})),
        ("passwords", passwords),
    ] {
        http.ok(
            Method::POST,
            &format!("/v1/security-authentications/{id}/{step}"),
            None,
            Some(body),
        )
        .await
        .with_context(|| format!("security authentication, step {step}"))?;
    }
    say("phone", "device trusted");
    let s = http
        .ok(Method::POST, "/v1/sessions", None, Some(login))
        .await?;
    Ok(s["token"].as_str().unwrap_or_default().to_owned())
}

async fn play(http: &Http) -> anyhow::Result<()> {
    println!("— setup: Zhang San binds a card to the wallet (flow F1) —\n");
    let binding = play_bind(http, paybridge_issuer::bindings::BindingMode::Qr).await?;
    println!("\n— flow F4: a PC asks, the phone pays —\n");
    let mut shop = merchant_with_order(http).await?;
    let mut user = user_devices(http).await?;
    let payment = pc_asks(http, &shop, &mut user).await?;
    relayed_swipe(http, &mut user, &payment).await?;
    phone_pays(http, &user, &payment, &binding).await?;
    pc_and_merchant_told(http, &mut shop, &mut user, &payment).await?;
    println!(
        "\norder {} is paid, the PC was told and the merchant's webhook received",
        shop.order_id
    );
    Ok(())
}

/// The merchant: its webhook receiver, the endpoint's secret, the order.
struct Shop {
    hooks: mpsc::UnboundedReceiver<Hook>,
    secret: String,
    order_id: String,
    merchant_id: String,
}

/// The user's account session, the PC and the phone with their channels.
struct UserDevices {
    account: String,
    pc: String,
    phone: String,
    phone_token: String,
    pc_channel: mpsc::UnboundedReceiver<(String, Value)>,
    phone_channel: mpsc::UnboundedReceiver<(String, Value)>,
}

/// The merchant sets its webhook endpoint (our receiver) and creates an order.
async fn merchant_with_order(http: &Http) -> anyhow::Result<Shop> {
    // The merchant: a webhook endpoint (our receiver) and an order.
    let (hook_url, hooks) = start_receiver().await?;
    let endpoint = http
        .ok(
            Method::PUT,
            "/v1/webhook-endpoint",
            Some(SANDBOX_MERCHANT_KEY),
            Some(json!({ "url": hook_url })),
        )
        .await?;
    let secret = endpoint["secret"].as_str().unwrap_or_default().to_owned();
    say("merchant", format!("webhooks go to {hook_url} (signed)"));
    let reference = format!("demo-{:08x}", rand::random::<u32>());
    let order = http
        .ok(
            Method::POST,
            "/v1/orders",
            Some(SANDBOX_MERCHANT_KEY),
            Some(json!({"amount": {"amount": 12_800, "currency": "CNY"},
                "description": "Noise-cancelling headphones", "reference": reference})),
        )
        .await?;
    let order_id = order["id"].as_str().unwrap_or_default().to_owned();
    say(
        "merchant",
        format!(
            "order {order_id}: {} — {}",
            order["description"].as_str().unwrap_or(""),
            money(&order["amount"])
        ),
    );
    let merchant_id = order["merchant_id"].as_str().unwrap_or_default().to_owned();
    Ok(Shop {
        hooks,
        secret,
        order_id,
        merchant_id,
    })
}

/// The card holder's PC (the first terminal) and phone, both listening.
async fn user_devices(http: &Http) -> anyhow::Result<UserDevices> {
    // The user's devices: the PC (first terminal) and the phone.
    let account = wallet_login(http, RESERVED_PHONE).await?;
    let me = http.ok(Method::GET, "/v1/me", Some(&account), None).await?;
    if me["has_payment_password"] != true {
        http.ok(
            Method::POST,
            "/v1/me/payment-password",
            Some(&account),
            Some(json!({ "new_password": DEMO_PAYMENT_PASSWORD })),
        )
        .await?;
        say("wallet app", "set a payment password");
    }
    let pc = device(http, &account, "pc", PC_NAME).await?;
    let phone = device(http, &account, "phone", PHONE_NAME).await?;
    let phone_token = phone_session(http, &phone).await?;
    let pc_channel = open_channel(http, &account, &pc).await?;
    let phone_channel = open_channel(http, &phone_token, &phone).await?;
    say(
        "PC",
        format!("{PC_NAME} is logged in to the wallet; push channel open"),
    );
    say(
        "phone",
        format!("{PHONE_NAME} is logged in; push channel open"),
    );
    Ok(UserDevices {
        account,
        pc,
        phone,
        phone_token,
        pc_channel,
        phone_channel,
    })
}

/// The PC asks; the wallet finds the phone and waits for a gesture on it.
async fn pc_asks(http: &Http, shop: &Shop, user: &mut UserDevices) -> anyhow::Result<String> {
    let (merchant_id, order_id, pc) = (&shop.merchant_id, &shop.order_id, &user.pc);
    // The PC asks; the wallet finds the phone and waits for a gesture.
    let request = http
        .ok(
            Method::POST,
            "/v1/payment-requests",
            Some(&user.account),
            Some(json!({"merchant_id": merchant_id, "order_id": order_id, "terminal_id": pc, "gesture_required": true})),
        )
        .await?;
    let payment = request["id"].as_str().unwrap_or_default().to_owned();
    say(
        "PC",
        format!(
            "checkout: payment request {payment} — {} (phone: {})",
            request["state"].as_str().unwrap_or(""),
            request["phone"]["name"]
                .as_str()
                .unwrap_or("none: show the QR code")
        ),
    );
    if request["state"] != "awaiting_gesture" {
        bail!("expected the phone to be asked for a gesture: {request}");
    }
    let prompt = wait_for(
        &mut user.phone_channel,
        "payment_request.gesture_requested",
        &payment,
    )
    .await?;
    say(
        "phone",
        format!(
            "lock screen: \"{} asks to pay — swipe to open\"",
            prompt["requested_by"]["name"].as_str().unwrap_or("")
        ),
    );
    Ok(payment)
}

/// The swipe comes back through the OS push relay (a signed call); the
/// payment page opens on the phone.
async fn relayed_swipe(http: &Http, user: &mut UserDevices, payment: &str) -> anyhow::Result<()> {
    let phone = &user.phone;
    // The swipe comes back through the OS push relay (a signed call).
    let relayed = http
        .ok(
            Method::POST,
            "/v1/sandbox/push-relay/gestures",
            None,
            Some(json!({"payment_id": payment, "device_id": phone, "gesture": "swipe"})),
        )
        .await?;
    say(
        "OS relay",
        format!(
            "relayed the swipe: request {}",
            relayed["state"].as_str().unwrap_or("")
        ),
    );
    let page = wait_for(
        &mut user.phone_channel,
        "payment_request.presented",
        payment,
    )
    .await?;
    say(
        "phone",
        format!(
            "payment page: {} to {} for \"{}\", asked by {}",
            money(&page["amount"]),
            page["merchant"]["name"].as_str().unwrap_or(""),
            page["description"].as_str().unwrap_or(""),
            page["requested_by"]["name"].as_str().unwrap_or("")
        ),
    );
    Ok(())
}

/// The phone pays with the bound card and the payment password.
async fn phone_pays(
    http: &Http,
    user: &UserDevices,
    payment: &str,
    binding: &str,
) -> anyhow::Result<()> {
    // The phone pays with the bound card and the payment password.
    let paid = http
        .ok(
            Method::POST,
            &format!("/v1/payment-requests/{payment}/approvals"),
            Some(&user.phone_token),
            Some(json!({"binding_id": binding, "payment_password": DEMO_PAYMENT_PASSWORD})),
        )
        .await?;
    say(
        "phone",
        format!(
            "entered the payment password: {}",
            paid["state"].as_str().unwrap_or("")
        ),
    );
    Ok(())
}

/// The PC is told on its push channel; the merchant by a signed webhook; the
/// order is paid.
async fn pc_and_merchant_told(
    http: &Http,
    shop: &mut Shop,
    user: &mut UserDevices,
    payment: &str,
) -> anyhow::Result<()> {
    let order_id = shop.order_id.clone();
    // The PC is told on its push channel; the merchant by webhook.
    let told = wait_for(&mut user.pc_channel, "payment_request.paid", payment).await?;
    say("PC", format!("\"Paid — {}\"", money(&told["amount"])));
    let deadline = tokio::time::Instant::now() + WAIT;
    let event = loop {
        let (signature, body) = tokio::time::timeout_at(deadline, shop.hooks.recv())
            .await
            .context("no webhook within 30 s")?
            .context("the receiver stopped")?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if !paybridge_crypto::webhook::verify(&shop.secret, &signature, &body, now) {
            bail!("a webhook with a bad signature arrived");
        }
        let event: Value = serde_json::from_slice(&body)?;
        if event["type"] == "order.paid" && event["data"]["order_id"] == order_id.as_str() {
            break event;
        }
    };
    say(
        "merchant",
        format!(
            "webhook {} order.paid (signature verified)",
            event["id"].as_str().unwrap_or("")
        ),
    );
    let order = http
        .ok(
            Method::GET,
            &format!("/v1/orders/{order_id}"),
            Some(SANDBOX_MERCHANT_KEY),
            None,
        )
        .await?;
    if order["state"] != "paid" {
        bail!("the order is {}", order["state"]);
    }
    Ok(())
}
