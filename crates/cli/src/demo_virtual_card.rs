//! `paybridge demo virtual-card` (flow F5, part 1), over HTTP: the phone
//! registers its secure element's key, the user applies for a virtual card
//! with the payment password, the wallet (the verification server) checks
//! the card application against the account's identity and forwards it to
//! the issuer. Zhang San, an existing cardholder, proves the reserved phone
//! with an OTP; with `--first-card`, Wu Fang, who holds no card, sends the
//! ID card photos and the video face check's frames, which the identity
//! authority scores and the issuer looks up by reference number. The
//! issuer pre-verifies, issues the card (card code, quick-pay signing,
//! PAN tokenisation), the wallet quick-binds it, and the phone writes the
//! token into its secure element. Exits non-zero unless the token is in
//! the secure element and the quick binding is active.

use anyhow::{bail, Context};
use clap::Args;
use paybridge_api::virtual_card::CardApplicationBody;
use paybridge_api::wallet::SetIdentity;
use paybridge_devices::phone_virtual_card::Face;
use paybridge_devices::Phone;
use paybridge_domain::binding::BindingStage;
use paybridge_domain::ids::{CardApplicationId, CardTokenId};
use paybridge_issuer::bindings::BindingMode;

use crate::demo::{
    money, play_bind, say, show_latest_text, trusted_phone, trusted_phone_of, wallet_login,
    DemoArgs, Server, DEMO_PAYMENT_PASSWORD, RESERVED_PHONE,
};

/// The sandbox bank and the product applied for.
const ISSUER: &str = "demo-bank";
const PRODUCT: &str = "virtual_credit";
/// Zhang San, the sandbox bank's customer (the existing cardholder).
const ZHANG_SAN: (&str, &str) = ("张三", "110105199003071239");
/// Wu Fang, of the sandbox identity authority's registry, with no card
/// anywhere (the first-card applicant), and her phone.
const WU_FANG: (&str, &str) = ("吴芳", "440106198811200033");
const WU_FANG_PHONE: &str = "13700137006";

#[derive(Debug, Clone, Args)]
pub struct VirtualCardDemoArgs {
    #[command(flatten)]
    pub demo: DemoArgs,
    /// Play the first-card applicant (第一卡用户): ID card photos and the
    /// video face check instead of the OTP to the reserved phone.
    #[arg(long)]
    pub first_card: bool,
}

pub async fn run(args: VirtualCardDemoArgs) -> anyhow::Result<()> {
    let server = Server::start(&args.demo).await?;
    let result = play(&server.base, args.first_card).await;
    server.stop().await;
    result
}

fn application_id(a: &CardApplicationBody) -> anyhow::Result<CardApplicationId> {
    a.id.parse()
        .map_err(|_| anyhow::anyhow!("the wallet answered an application id that is none"))
}

async fn play(base: &str, first_card: bool) -> anyhow::Result<()> {
    let (phone, (name, id_number)) = if first_card {
        (first_card_phone(base).await?, WU_FANG)
    } else {
        (cardholder_phone(base).await?, ZHANG_SAN)
    };
    println!(
        "\n— flow F5: a virtual card from Demo Bank, its token in the phone's secure element —\n"
    );
    phone.register_secure_element().await?;
    say(
        "phone",
        "secure element (安全芯片): made its own X25519 key pair; the public key is registered with the wallet, signed by the device key",
    );
    let app = phone.app()?.clone();
    let products = app.card_products(ISSUER).await?;
    for p in &products.products {
        say(
            "wallet app",
            format!(
                "Demo Bank offers {} ({}{}; {} per person)",
                p.name,
                p.card_type,
                p.credit_limit
                    .as_ref()
                    .map(|l| format!(", limit {}", money(l)))
                    .unwrap_or_default(),
                p.max_per_person
            ),
        );
    }
    let started = phone
        .apply_for_virtual_card(ISSUER, PRODUCT, name, id_number, DEMO_PAYMENT_PASSWORD)
        .await;
    let started = match started {
        Err(e) if e.code() == Some("card_limit_reached") => bail!(
            "the bank refused: {e}. This applicant holds the one virtual credit card a person may, from an earlier run against this server; run the demo without --server for a fresh bank"
        ),
        other => other?,
    };
    say(
        "wallet app",
        "apply for a virtual card: the account's payment password is verified (a sensitive operation, on this trusted phone)",
    );
    say(
        "wallet",
        format!(
            "verification server (验证服务器): the card application (申请卡的信息) of {} matches the account's real-name identity; forwarded to the issuer (卡发行机构服务器), signed",
            started.name_masked
        ),
    );
    let issued = match started.applicant.as_deref() {
        Some("existing_cardholder") => by_otp(&phone, &started).await?,
        Some("first_card") => by_video(&phone, &started).await?,
        other => bail!("the bank named no path: {other:?} ({})", started.state),
    };
    if issued.state != "issued" {
        bail!(
            "the application is {} ({:?})",
            issued.state,
            issued.reason.as_deref()
        );
    }
    let card_code = issued.card_code.clone().context("an issued card code")?;
    let token_id: CardTokenId = issued
        .token_id
        .as_deref()
        .context("an issued token")?
        .parse()
        .map_err(|_| anyhow::anyhow!("a token id that is none"))?;
    say(
        "issuer",
        format!(
            "pre-verification (前置验证) passed: the card is issued with card code (卡代号) {card_code}; quick-pay signing (快捷签约) made its agreement number (协议号); PAN tokenisation (主卡号的标记化): a card token (标记) in the token vault, for this wallet and this phone, over nfc and online"
        ),
    );
    say(
        "issuer",
        "the token's key material (EMV option A) is sealed by HPKE to the phone's secure element: neither the wallet nor anything between can read it",
    );
    let binding_id = issued.binding_id.clone().context("a quick binding")?;
    say(
        "wallet",
        format!("quick binding (快捷绑卡) {binding_id} is active; card code and sealed token sent to the phone"),
    );
    let (data, token) = phone.provision_token(&token_id).await?;
    say(
        "phone",
        format!(
            "wrote the card token ****{} (expires {}) into its secure element: installed = {}",
            &data.token[data.token.len().saturating_sub(4)..],
            data.expiry,
            token.installed
        ),
    );
    // What this demo exists to show: the token in the secure element and
    // the quick binding active, as the wallet sees them.
    let in_element = phone.secure_element().card_codes().contains(&card_code)
        && phone.secure_element().public_data(&card_code).is_ok();
    let binding_active = app
        .bindings()
        .await?
        .bindings
        .iter()
        .any(|b| b.id.as_str() == binding_id && b.state == BindingStage::Active);
    if !in_element || !token.installed || token.state != "active" {
        bail!("the token is not in the phone's secure element ({token:?})");
    }
    if !binding_active {
        bail!("the quick binding {binding_id} is not active");
    }
    let cryptogram = phone
        .secure_element()
        .generate_cryptogram(&card_code, &[0u8; 29])
        .map_err(|e| anyhow::anyhow!("the secure element makes no cryptogram: {e}"))?;
    say(
        "phone",
        format!(
            "secure element: ready to pay — a test cryptogram at ATC {} (the keys never leave it)",
            cryptogram.atc
        ),
    );
    println!(
        "\nvirtual card {card_code}: the token is in the phone's secure element and quick binding {binding_id} is active"
    );
    Ok(())
}

/// Zhang San: his debit card bound by flow F1 (the bank attests his
/// identity), a payment password, and a trusted phone.
async fn cardholder_phone(base: &str) -> anyhow::Result<Phone> {
    println!("— setup: Zhang San binds his card to the wallet (flow F1) —\n");
    let bound = play_bind(base, BindingMode::Qr).await?;
    if !bound.wallet.app()?.me().await?.has_payment_password {
        bound
            .wallet
            .set_payment_password(DEMO_PAYMENT_PASSWORD)
            .await?;
    }
    match bound.trusted {
        Some(phone) => Ok(phone),
        None => trusted_phone(base).await,
    }
}

/// Wu Fang: a wallet account with her declared identity, and a trusted
/// phone (security authentication sets her payment password).
async fn first_card_phone(base: &str) -> anyhow::Result<Phone> {
    println!("— setup: Wu Fang, who holds no card, opens a wallet account —\n");
    let wallet = wallet_login(base, WU_FANG_PHONE).await?;
    let me = wallet.app()?.me().await?;
    if me.identity.is_none() {
        wallet
            .app()?
            .set_identity(&SetIdentity {
                name: WU_FANG.0.into(),
                id_number: WU_FANG.1.into(),
            })
            .await?;
        say(
            "wallet app",
            "declared her real-name identity (the identity authority will check it)",
        );
    }
    trusted_phone_of(base, WU_FANG_PHONE, &WU_FANG.1[14..]).await
}

/// Existing cardholder (非第一卡用户): the OTP to the reserved phone, then
/// the application again with the proof.
async fn by_otp(phone: &Phone, a: &CardApplicationBody) -> anyhow::Result<CardApplicationBody> {
    say(
        "issuer",
        format!(
            "an existing cardholder (非第一卡用户): the wallet is to send an OTP to the reserved phone {}",
            a.otp_phone_masked.as_deref().unwrap_or("")
        ),
    );
    show_latest_text(phone.inbox(), RESERVED_PHONE).await?;
    let issued = phone
        .answer_card_otp(&application_id(a)?, phone.inbox())
        .await?;
    say(
        "wallet app",
        "entered the code; the wallet verified it and sent the card application to the issuer again, with the OTP proof bound to it",
    );
    Ok(issued)
}

/// First-card applicant (第一卡用户): the instruction policies (指令策略) for
/// the ID card photos and the video face check (视频面签), scored by the
/// identity authority (公安部系统).
async fn by_video(phone: &Phone, a: &CardApplicationBody) -> anyhow::Result<CardApplicationBody> {
    let photos = a.photo_policy.as_ref().context("a photo policy")?;
    say(
        "issuer",
        "a first-card applicant (第一卡用户): no OTP; the wallet is to check her identity",
    );
    say(
        "wallet",
        format!(
            "instruction policy (指令策略): photograph the ID card's {} ({}, up to {} KiB each)",
            photos.sides.join(" and "),
            photos.types.join(" or "),
            photos.max_bytes / 1024
        ),
    );
    let with_photos = phone
        .upload_id_photos(&application_id(a)?, Face::Applicant)
        .await?;
    say(
        "phone",
        "took and uploaded the two photos (sealed at rest by the wallet)",
    );
    let video = with_photos
        .video_policy
        .as_ref()
        .context("a video face check policy")?;
    say(
        "wallet",
        format!(
            "video face check (视频面签) instruction policy: {} (the digits shown: {})",
            video.actions.join(", "),
            video.digits
        ),
    );
    let issued = phone
        .record_video_face_check(&with_photos, Face::Applicant)
        .await?;
    say(
        "phone",
        "followed the prompts on camera; sent the frames captured",
    );
    say(
        "wallet",
        "identity authority (公安部系统): photos, frames and application scored — a match score (匹配度评分) and a reference number (备查身份号码); only the reference number goes to the issuer",
    );
    say(
        "issuer",
        "looked the score up (反查) at the authority by the reference number, for this application and ID number: above the product's threshold",
    );
    Ok(issued)
}
