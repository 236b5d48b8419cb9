//! The bank app's API (served by an issuer under `/bank/v1/app/…`): a
//! customer logs in with the sandbox credentials and sees their own cards,
//! masked.

use paybridge_domain::agreement::AgreementStatus;
use paybridge_domain::card::{CardStatus, CardType};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wallet::MoneyBody;

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankLogin {
    #[schema(example = "zhang.san")]
    pub username: String,
    #[schema(example = "Sandbox#2026")]
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CustomerBody {
    #[schema(example = "cus_…")]
    pub id: String,
    #[schema(example = "*三")]
    pub name_masked: String,
    #[schema(example = "138****8000")]
    pub phone_masked: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BankSessionBody {
    pub session_id: String,
    /// Shown once. Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub customer: CustomerBody,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardBody {
    #[schema(example = "card_…")]
    pub id: String,
    #[schema(example = "Demo Bank")]
    pub bank_name: String,
    #[serde(rename = "type")]
    #[schema(schema_with = crate::wire_enum::<CardType>)]
    pub card_type: CardType,
    #[schema(example = "0014")]
    pub last4: String,
    #[schema(example = "•••• 0014")]
    pub masked: String,
    #[schema(example = "12/30")]
    pub expiry: String,
    #[schema(schema_with = crate::wire_enum::<CardStatus>)]
    pub status: CardStatus,
    pub balance: MoneyBody,
    /// Balance less holds, plus any credit line.
    pub available: MoneyBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardList {
    pub cards: Vec<CardBody>,
    /// The cursor of the next page (`?after=`), when there may be one.
    #[serde(default)]
    pub next: Option<String>,
}

redacted_debug!(BankLogin);

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartWalletBinding {
    /// `qr`: show a QR code for the wallet app; `push`: send a binding message to it.
    #[schema(schema_with = binding_modes)]
    pub mode: String,
}

/// The ways a bank app offers a card to the wallet.
fn binding_modes() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["qr", "push"]))
        .build()
}

/// What the bank app shows after "bind to wallet".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WalletBindingStarted {
    pub mode: String,
    /// `qr_ready`, `pushed`, or `no_wallet_user` (offer wallet registration).
    pub status: String,
    pub binding_id: Option<String>,
    /// The binding address (QR mode).
    pub url: Option<String>,
    pub qr_svg: Option<String>,
    pub qr_png_base64: Option<String>,
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BankBindingBody {
    #[schema(example = "agr_…")]
    pub id: String,
    pub card_id: String,
    pub last4: String,
    pub wallet: String,
    pub binding_id: String,
    #[schema(schema_with = crate::wire_enum::<AgreementStatus>)]
    pub status: AgreementStatus,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BankBindingList {
    pub bindings: Vec<BankBindingBody>,
    /// The cursor of the next page (`?after=`), when there may be one.
    #[serde(default)]
    pub next: Option<String>,
}

/// What the bank app shows after "open the wallet and bind this card".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WalletRegistrationStarted {
    /// `registered` (a new wallet account, card bound) or `existing_account`
    /// (a binding message was pushed to the customer's wallet app instead).
    pub status: String,
    pub account_id: Option<String>,
    pub binding_id: Option<String>,
}

/// A card token of one of the customer's virtual cards (flow F5), as the
/// bank app shows it: never the token's full number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BankTokenBody {
    #[schema(example = "ctk_…")]
    pub id: String,
    pub card_id: String,
    /// The token's last four digits.
    pub token_last4: String,
    /// `active`, `suspended`, `deactivated`.
    pub state: String,
    /// Who suspended or deactivated it: `cardholder` or `issuer`.
    pub state_by: Option<String>,
    /// The wallet it was issued to, and the channels it may pay in.
    pub wallet: String,
    pub channels: Vec<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BankTokenList {
    pub tokens: Vec<BankTokenBody>,
}
