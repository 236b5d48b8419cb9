//! `paybridge demo delegated` (flow F3): a smart TV, the phone and a
//! merchant, over HTTP. The TV makes its key pair and sends a business
//! binding request; the phone enters its code, sees the device and approves
//! it with the biometric, choosing the card, limits, categories and
//! approval policy; the wallet makes the transfer payment agreement
//! (sealed) and the TV collects its session. The merchant creates an
//! order; the TV sends a signed transfer payment request; the phone
//! answers the transfer payment message with a signed confirm payment
//! message (or, with `--direct`, the small amount needs none); the phone
//! checks the wallet's payment execution task, executes it (biometric
//! unless direct) and sends the payment completion message; both devices
//! receive the payment result notification. Exits non-zero unless both
//! did and the order is paid.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use paybridge_api::delegated::{
    AgreementLimitsBody, AgreementTermsBody, ApprovalBody, Decision, TransferAgreementBody,
    TransferPaymentBody,
};
use paybridge_api::merchant::CreateOrder;
use paybridge_api::wallet::MoneyBody;
use paybridge_client::{MerchantApi, PushChannel};
use paybridge_devices::{FirstDevice, FirstDeviceModel, Phone};
use paybridge_domain::device::DeviceType;
use paybridge_domain::ids::{BindingId, TransferPaymentId};
use paybridge_domain::order::OrderState;
use paybridge_domain::transfer_agreement::{ApprovalMode, UsageCategory};
use paybridge_domain::transfer_payment::TransferPaymentStage;
use paybridge_issuer::bindings::BindingMode;
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use serde_json::Value;

use crate::demo::{money, play_bind, say, trusted_phone, DemoArgs, Server, DEMO_PAYMENT_PASSWORD};

/// The name the user gives the TV on the phone.
const TV_NAME: &str = "Living-room TV";
/// How long to wait for a push or the TV's pairing.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Args)]
pub struct DelegatedDemoArgs {
    #[command(flatten)]
    pub demo: DemoArgs,
    /// Play the small-amount route: the agreement lets payments up to
    /// CNY 20.00 go through without a prompt (小额免密), and the TV asks for one.
    #[arg(long)]
    pub direct: bool,
}

pub async fn run(args: DelegatedDemoArgs) -> anyhow::Result<()> {
    let server = Server::start(&args.demo).await?;
    let result = play(&server.base, args.direct).await;
    server.stop().await;
    result
}

fn cny(amount: i64) -> MoneyBody {
    MoneyBody {
        amount,
        currency: "CNY".into(),
    }
}

/// What the user chooses on the phone for the TV.
fn terms(binding: &BindingId, direct: bool) -> AgreementTermsBody {
    AgreementTermsBody {
        binding_id: binding.to_string(),
        name: Some(TV_NAME.into()),
        limits: AgreementLimitsBody {
            per_payment: cny(20_000),
            per_day: cny(50_000),
            per_month: cny(200_000),
        },
        categories: vec![UsageCategory::InApp, UsageCategory::Subscription],
        approval: ApprovalBody {
            mode: if direct {
                ApprovalMode::SmallAmountsDirect
            } else {
                ApprovalMode::EveryPayment
            },
            direct_ceiling: direct.then(|| cny(2_000)),
        },
    }
}

async fn play(base: &str, direct: bool) -> anyhow::Result<()> {
    println!("— setup: Zhang San binds a card to the wallet (flow F1) —\n");
    let bound = play_bind(base, BindingMode::Qr).await?;
    let binding = bound.binding.clone();
    if !bound.wallet.app()?.me().await?.has_payment_password {
        bound
            .wallet
            .set_payment_password(DEMO_PAYMENT_PASSWORD)
            .await?;
    }
    let mut phone = match bound.trusted {
        Some(phone) => phone,
        None => trusted_phone(base).await?,
    };
    phone.register_passkey().await?;
    phone.pin_wallet_keys().await?;
    say(
        "phone",
        "registered its passkey (the biometric) and pinned the wallet's task key",
    );
    println!("\n— flow F3: a smart TV pays through the phone —\n");
    // A run against the same server pairs the TV anew: the one an earlier
    // run paired is revoked first, and its agreement with it.
    phone.retire_devices_named(DeviceType::Tv, TV_NAME).await?;
    let mut tv = FirstDevice::new(base, FirstDeviceModel::smart_tv());
    let agreement = pair(&mut tv, &mut phone, &binding, direct).await?;
    let mut tv_channel = tv.open_push_channel().await?;
    let mut phone_channel = phone.open_push_channel().await?;
    let shop = MerchantApi::new(base, SANDBOX_MERCHANT_KEY);
    let (amount, purpose) = if direct {
        (800, "one episode")
    } else {
        (3_800, "4K film rental")
    };
    let order = shop
        .create_order(&CreateOrder {
            amount: cny(amount),
            description: format!("{purpose} on the living-room TV"),
            reference: format!("tv-{:08x}", rand::random::<u32>()),
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
    let requested = tv
        .request_payment(
            &order.merchant_id,
            &order.id,
            &order.amount,
            UsageCategory::InApp,
            purpose,
        )
        .await?;
    say(
        "smart TV",
        format!(
            "transfer payment request {} signed with its key: {} for \"{}\" (device usage: in_app, counter {})",
            requested.id,
            money(&requested.amount),
            purpose,
            requested.usage.counter
        ),
    );
    say(
        "wallet",
        format!(
            "login info from the TV's session → agreement query result: {} → first agreement state holds; usage recorded, sealed again",
            agreement.id
        ),
    );
    let tasked = confirm(&phone, &mut phone_channel, &requested).await?;
    let done = execute(&mut phone, &mut phone_channel, &tasked).await?;
    told(&mut tv_channel, "smart TV", &done.id).await?;
    told(&mut phone_channel, "phone", &done.id).await?;
    let order = shop.order(&order.id).await?;
    if order.state != OrderState::Paid {
        bail!("the order is {}", order.state.as_str());
    }
    let left = tv.agreement().await?;
    say(
        "smart TV",
        format!(
            "agreement: {} left today, {} this month",
            money(&left.left_today),
            money(&left.left_this_month)
        ),
    );
    println!(
        "\norder {} is paid; the TV and the phone both have the payment result notification",
        order.id
    );
    Ok(())
}

/// The business binding request, approved on the phone; the TV collects
/// its session.
async fn pair(
    tv: &mut FirstDevice,
    phone: &mut Phone,
    binding: &BindingId,
    direct: bool,
) -> anyhow::Result<TransferAgreementBody> {
    let started = tv.start_pairing().await?.clone();
    let model = tv.model().clone();
    say(
        "smart TV",
        format!(
            "business binding request with its device info ({} {}, serial {}) and public key",
            model.vendor, model.model, model.serial
        ),
    );
    say(
        "smart TV",
        format!(
            "shows: \"Enter {} in your wallet app, or scan:\" (expires {})",
            started.user_code, started.expires_at
        ),
    );
    if let Ok(code) = qrcode::QrCode::new(started.verification_uri_complete.as_bytes()) {
        let art = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build();
        for line in art.lines() {
            println!("{:13}{line}", "");
        }
    }
    let claimed = phone
        .enter_pairing_code(&started.verification_uri_complete)
        .await?;
    say(
        "phone",
        format!(
            "scanned the code: \"{} {} ({}) wants to pay through this phone\"",
            claimed.device.vendor,
            claimed.device.model,
            claimed.device.device_type.as_str()
        ),
    );
    let terms = terms(binding, direct);
    let agreement = phone.approve_pairing(&claimed.id, &terms).await?;
    say(
        "phone",
        format!(
            "approved with the biometric: card {} ****{}, up to {} a payment, {} a day, {} a month, {}; {}",
            agreement.card.bank_name,
            agreement.card.last4,
            money(&agreement.limits.per_payment),
            money(&agreement.limits.per_day),
            money(&agreement.limits.per_month),
            agreement
                .categories
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(" and "),
            match &agreement.approval.direct_ceiling {
                Some(c) => format!("no prompt up to {}", money(c)),
                None => "the biometric for every payment".into(),
            }
        ),
    );
    say(
        "wallet",
        format!(
            "transfer payment agreement {} made from the device info and the user identity info (sealed)",
            agreement.id
        ),
    );
    let own = tv
        .wait_until_paired(WAIT)
        .await
        .context("the TV's pairing")?;
    say(
        "smart TV",
        format!(
            "paired: its session is bound to its key; {} left today",
            money(&own.left_today)
        ),
    );
    Ok(agreement)
}

/// Waits on a push channel for `topic` about `payment`.
async fn wait_for(
    channel: &mut PushChannel,
    topic: &str,
    payment: &TransferPaymentId,
) -> anyhow::Result<Value> {
    let event = channel
        .wait_for(topic, WAIT, |data| {
            data["transfer_payment_id"] == payment.as_str()
        })
        .await?;
    Ok(event.data)
}

/// With the user: the transfer payment message and the phone's confirm
/// payment message. Direct: nothing to confirm. Either way the phone then
/// holds the payment execution task.
async fn confirm(
    phone: &Phone,
    channel: &mut PushChannel,
    requested: &TransferPaymentBody,
) -> anyhow::Result<TransferPaymentBody> {
    if requested.state == TransferPaymentStage::AwaitingConfirmation {
        let message = wait_for(channel, "transfer_payment.message", &requested.id).await?;
        say(
            "phone",
            format!(
                "transfer payment message: \"{} asks to pay {} to {} for {}\" [Approve] [Decline]",
                message["requested_by"]["name"].as_str().unwrap_or(""),
                money(&requested.amount),
                message["merchant"]["name"].as_str().unwrap_or(""),
                message["usage"]["purpose"].as_str().unwrap_or("")
            ),
        );
        let confirmed = phone
            .answer_transfer_payment(requested, Decision::Approve)
            .await?;
        say(
            "phone",
            "confirm payment message: approve, signed with the phone's key",
        );
        say(
            "wallet",
            format!(
                "confirm payment request → second agreement state holds → payment execution task: {}",
                confirmed.state.as_str()
            ),
        );
        Ok(confirmed)
    } else {
        say(
            "wallet",
            "within the direct ceiling: the confirm payment request made from the first agreement state and the device usage alone → second agreement state holds → payment execution task",
        );
        Ok(phone.app()?.transfer_payment(&requested.id).await?)
    }
}

/// The phone checks and executes the task and sends its completion message.
async fn execute(
    phone: &mut Phone,
    channel: &mut PushChannel,
    tasked: &TransferPaymentBody,
) -> anyhow::Result<TransferPaymentBody> {
    let pushed = wait_for(channel, "transfer_payment.execution_task", &tasked.id).await?;
    let claims = phone.check_task(tasked)?;
    say(
        "phone",
        format!(
            "payment execution task {}…: the wallet's signature checks; pay {} to {} (order {}), biometric {}",
            &pushed["task_hash"].as_str().unwrap_or("")[..8.min(pushed["task_hash"].as_str().unwrap_or("").len())],
            money(&claims.amount),
            claims.payee.name,
            claims.order_id,
            if claims.biometric_required { "required" } else { "not required" }
        ),
    );
    let executed = phone.execute_task(tasked).await?;
    say(
        "phone",
        if claims.biometric_required {
            "passed the biometric; executed the task, signed with its key"
        } else {
            "executed the task without a prompt (a small amount), signed with its key"
        },
    );
    say(
        "bank",
        format!("debited the card: {}", executed.state.as_str()),
    );
    if executed.state != TransferPaymentStage::Debited {
        bail!("the debit did not go through: {executed:?}");
    }
    let done = phone.complete_transfer_payment(tasked).await?;
    say(
        "phone",
        format!("payment completion message sent: {}", done.state.as_str()),
    );
    Ok(done)
}

/// A device's payment result notification.
async fn told(
    channel: &mut PushChannel,
    who: &str,
    payment: &TransferPaymentId,
) -> anyhow::Result<()> {
    let result = wait_for(channel, "transfer_payment.result", payment).await?;
    say(
        who,
        format!(
            "payment result notification: {} — {} to {}",
            result["result"].as_str().unwrap_or(""),
            serde_json::from_value::<MoneyBody>(result["amount"].clone())
                .map(|m| money(&m))
                .unwrap_or_default(),
            result["merchant"]["name"].as_str().unwrap_or("")
        ),
    );
    if result["result"] != "paid" {
        bail!("{who} was told {}", result["result"]);
    }
    Ok(())
}
