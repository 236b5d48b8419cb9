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
use paybridge_api::merchant::{CreateOrder, SetWebhookEndpoint};
use paybridge_api::wallet::{MoneyBody, RelayedGesture};
use paybridge_client::{MerchantApi, PushChannel, SandboxApi};
use paybridge_devices::terminal::Wake;
use paybridge_devices::{Phone, Terminal};
use paybridge_domain::device::DeviceType;
use paybridge_domain::ids::{BindingId, MerchantId, OrderId, PaymentRequestId};
use paybridge_domain::order::OrderState;
use paybridge_domain::payment_request::PaymentRequestStage;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::demo::{
    money, play_bind, say, trusted_phone, Bound, DemoArgs, Server, DEMO_PAYMENT_PASSWORD,
    PHONE_NAME, WALLET_PASSWORD,
};

/// The sandbox merchant's documented test key.
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;

/// Zhang San's ID number ends so (seeded bank data), for security authentication.
const PC_NAME: &str = "Demo PC";
/// How long to wait for a push or a webhook.
const WAIT: Duration = Duration::from_secs(30);

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let server = Server::start(&args).await?;
    let result = play(&server.base).await;
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

/// Waits on a push channel for `topic` about `payment`.
async fn wait_for(
    channel: &mut PushChannel,
    topic: &str,
    payment: &PaymentRequestId,
) -> anyhow::Result<Value> {
    let event = channel
        .wait_for(topic, WAIT, |data| data["payment_id"] == payment.as_str())
        .await?;
    Ok(event.data)
}

/// The money in an event's payload.
fn money_of(v: &Value) -> String {
    serde_json::from_value::<MoneyBody>(v.clone())
        .map(|m| money(&m))
        .unwrap_or_default()
}

async fn play(base: &str) -> anyhow::Result<()> {
    println!("— setup: Zhang San binds a card to the wallet (flow F1) —\n");
    let bound = play_bind(base, paybridge_issuer::bindings::BindingMode::Qr).await?;
    let binding = bound.binding.clone();
    println!("\n— flow F4: a PC asks, the phone pays —\n");
    let mut shop = merchant_with_order(base).await?;
    let mut user = user_devices(base, bound).await?;
    let payment = pc_asks(&shop, &mut user).await?;
    relayed_swipe(base, &mut user, &payment).await?;
    phone_pays(&user, &payment, &binding).await?;
    pc_and_merchant_told(&mut shop, &mut user, &payment).await?;
    println!(
        "\norder {} is paid, the PC was told and the merchant's webhook received",
        shop.order_id
    );
    Ok(())
}

/// The merchant: its API, webhook receiver, the endpoint's secret, the order.
struct Shop {
    api: MerchantApi,
    hooks: mpsc::UnboundedReceiver<Hook>,
    secret: String,
    order_id: OrderId,
    merchant_id: MerchantId,
}

/// The PC and the phone, each with its push channel open.
struct UserDevices {
    pc: Terminal,
    phone: Phone,
    pc_channel: PushChannel,
    phone_channel: PushChannel,
}

/// The merchant sets its webhook endpoint (our receiver) and creates an order.
async fn merchant_with_order(base: &str) -> anyhow::Result<Shop> {
    let api = MerchantApi::new(base, SANDBOX_MERCHANT_KEY);
    let (hook_url, hooks) = start_receiver().await?;
    let endpoint = api
        .set_webhook_endpoint(&SetWebhookEndpoint {
            url: hook_url.clone(),
        })
        .await?;
    say("merchant", format!("webhooks go to {hook_url} (signed)"));
    let order = api
        .create_order(&CreateOrder {
            amount: MoneyBody {
                amount: 12_800,
                currency: "CNY".into(),
            },
            description: "Noise-cancelling headphones".into(),
            reference: format!("demo-{:08x}", rand::random::<u32>()),
            expires_in_secs: None,
        })
        .await?;
    say(
        "merchant",
        format!(
            "order {}: {} — {}",
            order.id,
            order.description,
            money(&order.amount)
        ),
    );
    Ok(Shop {
        api,
        hooks,
        secret: endpoint.secret,
        order_id: order.id,
        merchant_id: order.merchant_id,
    })
}

/// The card holder's PC (the first terminal) and phone, both listening.
async fn user_devices(base: &str, bound: Bound) -> anyhow::Result<UserDevices> {
    let wallet = &bound.wallet;
    let account = wallet.app()?;
    if !account.me().await?.has_payment_password {
        wallet.set_payment_password(DEMO_PAYMENT_PASSWORD).await?;
        say("wallet app", "set a payment password");
    }
    let phone = match bound.trusted {
        Some(phone) => phone,
        None => trusted_phone(base).await?,
    };
    let pc = Terminal::pair(&phone, WALLET_PASSWORD, DeviceType::Pc, PC_NAME).await?;
    let pc_channel = pc.open_push_channel().await?;
    let phone_channel = phone.open_push_channel().await?;
    say(
        "PC",
        format!("{PC_NAME} is logged in to the wallet; push channel open"),
    );
    say(
        "phone",
        format!("{PHONE_NAME} is logged in; push channel open"),
    );
    Ok(UserDevices {
        pc,
        phone,
        pc_channel,
        phone_channel,
    })
}

/// The PC asks; the wallet finds the phone and waits for a gesture on it.
async fn pc_asks(shop: &Shop, user: &mut UserDevices) -> anyhow::Result<PaymentRequestId> {
    let request = user
        .pc
        .ask_to_pay(&shop.merchant_id, &shop.order_id, Wake::ByGesture)
        .await?;
    say(
        "PC",
        format!(
            "checkout: payment request {} — {} (phone: {})",
            request.id,
            request.state.as_str(),
            request
                .phone
                .as_ref()
                .map(|p| p.name.as_str())
                .unwrap_or("none: show the QR code")
        ),
    );
    if request.state != PaymentRequestStage::AwaitingGesture {
        bail!("expected the phone to be asked for a gesture: {request:?}");
    }
    let prompt = wait_for(
        &mut user.phone_channel,
        "payment_request.gesture_requested",
        &request.id,
    )
    .await?;
    say(
        "phone",
        format!(
            "lock screen: \"{} asks to pay — swipe to open\"",
            prompt["requested_by"]["name"].as_str().unwrap_or("")
        ),
    );
    Ok(request.id)
}

/// The swipe comes back through the OS push relay (a signed call); the
/// payment page opens on the phone.
async fn relayed_swipe(
    base: &str,
    user: &mut UserDevices,
    payment: &PaymentRequestId,
) -> anyhow::Result<()> {
    let phone = user
        .phone
        .device_id()
        .context("the phone is no device")?
        .to_string();
    let relayed = SandboxApi::new(base)
        .relay_gesture(&RelayedGesture {
            payment_id: payment.to_string(),
            device_id: phone,
            gesture: "swipe".into(),
        })
        .await?;
    say(
        "OS relay",
        format!("relayed the swipe: request {}", relayed.state.as_str()),
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
            money_of(&page["amount"]),
            page["merchant"]["name"].as_str().unwrap_or(""),
            page["description"].as_str().unwrap_or(""),
            page["requested_by"]["name"].as_str().unwrap_or("")
        ),
    );
    Ok(())
}

/// The phone pays with the bound card and the payment password.
async fn phone_pays(
    user: &UserDevices,
    payment: &PaymentRequestId,
    binding: &BindingId,
) -> anyhow::Result<()> {
    let paid = user
        .phone
        .approve_with_password(payment, binding, DEMO_PAYMENT_PASSWORD)
        .await?;
    say(
        "phone",
        format!("entered the payment password: {}", paid.state.as_str()),
    );
    Ok(())
}

/// The PC is told on its push channel; the merchant by a signed webhook; the
/// order is paid.
async fn pc_and_merchant_told(
    shop: &mut Shop,
    user: &mut UserDevices,
    payment: &PaymentRequestId,
) -> anyhow::Result<()> {
    let told = wait_for(&mut user.pc_channel, "payment_request.paid", payment).await?;
    say("PC", format!("\"Paid — {}\"", money_of(&told["amount"])));
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
        if event["type"] == "order.paid" && event["data"]["order_id"] == shop.order_id.as_str() {
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
    let order = shop.api.order(&shop.order_id).await?;
    if order.state != OrderState::Paid {
        bail!("the order is {}", order.state.as_str());
    }
    Ok(())
}
