//! The bank app's API (served by an issuer under `/bank/v1/app/…`): a
//! customer logs in with the sandbox credentials and sees their own cards,
//! masked.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wallet::MoneyBody;

#[derive(Clone, Deserialize, ToSchema)]
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
    /// `debit` or `credit`.
    #[serde(rename = "type")]
    pub card_type: String,
    #[schema(example = "0014")]
    pub last4: String,
    #[schema(example = "•••• 0014")]
    pub masked: String,
    #[schema(example = "12/30")]
    pub expiry: String,
    pub status: String,
    pub balance: MoneyBody,
    /// Balance less holds, plus any credit line.
    pub available: MoneyBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardList {
    pub cards: Vec<CardBody>,
}

redacted_debug!(BankLogin);
