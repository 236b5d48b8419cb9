//! The signed partner API between the wallet and the issuers. Every request
//! and response here travels with a `PAYBRIDGE-ED25519` signature.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Answer to a signed ping: who answered, and its clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartnerPing {
    /// The answering partner's id, e.g. `wallet` or `demo-bank`.
    pub partner: String,
    /// `wallet` or `issuer`.
    pub role: String,
    /// The caller, as authenticated by its signature.
    pub caller: String,
    /// The answering server's time (RFC 3339), to diagnose clock skew.
    pub time: String,
}

/// An event delivered to the other party's callback endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerEvent {
    /// Stable across redeliveries: de-duplicate on it.
    #[schema(example = "evt_0c5m3v1f7q9d2k4h8j6n0p2r4t")]
    pub id: String,
    #[schema(example = "binding.activated")]
    pub topic: String,
    /// RFC 3339.
    pub occurred_at: String,
    /// Topic-specific data; never a PAN, ID number, phone number or OTP.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Acknowledgement of a [`PartnerEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartnerEventAck {
    pub id: String,
    /// `true` when this event had been received before (and was not acted on again).
    pub duplicate: bool,
}

/// What a bank sends to start a binding (flow F1): who the customer is, the
/// reserved phone, and how the card is shown. Never the card number.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingOffer {
    /// The bank's id of the card, quoted back when the binding completes.
    #[schema(example = "card_…")]
    pub card_ref: String,
    #[schema(example = "张三")]
    pub holder_name: String,
    #[schema(example = "110105199003071239")]
    pub holder_id_number: String,
    /// The phone number reserved at the bank; the OTP goes there.
    #[schema(example = "13800138000")]
    pub phone: String,
    #[schema(example = "Demo Bank")]
    pub bank_name: String,
    /// `debit` or `credit`.
    pub card_type: String,
    #[schema(example = "0014")]
    pub last4: String,
}

crate::redacted_debug!(BindingOffer);

/// A binding address: single use, unguessable, five minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BindingAddress {
    #[schema(example = "bnd_…")]
    pub binding_id: String,
    /// What the QR code holds; the wallet app claims it.
    pub url: String,
    /// The QR code as an SVG document.
    pub qr_svg: String,
    /// The QR code as a PNG, base64.
    pub qr_png_base64: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// The answer to a binding operation request (push path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BindingRequestAnswer {
    /// `pushed`: a binding message went to the wallet user's devices;
    /// `no_wallet_user`: nobody with this phone and identity (use registration).
    pub status: String,
    pub binding_id: Option<String>,
    /// RFC 3339, when pushed.
    pub expires_at: Option<String>,
}

/// The wallet asks the bank to open the quick-pay agreement of a binding
/// whose OTP passed. Idempotent on `binding_id`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateBinding {
    pub binding_id: String,
    pub card_ref: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct AgreementIssued {
    #[schema(example = "agr_…")]
    pub agreement_id: String,
    /// The quick-pay agreement number the wallet debits the card with.
    pub agreement_number: String,
}

crate::redacted_debug!(AgreementIssued);

/// Does this customer have a wallet account? (Flow F2; the answer says only that.)
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountLookup {
    pub phone: String,
    pub holder_id_number: String,
}

crate::redacted_debug!(AccountLookup);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountLookupAnswer {
    pub exists: bool,
}

/// A bank registers a wallet account for its customer, with the card to bind.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountRegistration {
    /// The bank's own reference: a retry with it returns the same account.
    #[schema(example = "reg:card_…")]
    pub reference: String,
    /// What the bank verified, and the card (as for a binding).
    pub customer: BindingOffer,
}

crate::redacted_debug!(AccountRegistration);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountRegistered {
    #[schema(example = "usr_…")]
    pub account_id: String,
    /// The card's binding, waiting for the bank's agreement.
    pub binding_id: String,
    /// `restricted` until the owner passes security authentication.
    pub status: String,
    /// `false` when this reference was registered before.
    pub created: bool,
}

/// The bank opened the agreement of a registration's binding.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingAgreement {
    pub agreement_number: String,
}

crate::redacted_debug!(BindingAgreement);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BindingState {
    pub binding_id: String,
    pub state: String,
}

/// The wallet debits a bound card by its quick-pay agreement. Idempotent on
/// `payment_id`: a retry answers the same, and never debits twice.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DebitRequest {
    pub payment_id: String,
    pub agreement_number: String,
    pub amount: crate::wallet::MoneyBody,
    /// What the customer sees on the statement.
    pub description: String,
}

crate::redacted_debug!(DebitRequest);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DebitAnswer {
    /// The bank's ledger transfer.
    pub transfer_id: String,
    /// `posted`.
    pub status: String,
}

/// Which debit the wallet asks about.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DebitStatusQuery {
    /// The `payment_id` of the debit (the wallet's order id).
    pub payment_id: String,
}

/// What the bank knows of a debit by its payment id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DebitStatus {
    pub payment_id: String,
    /// `debited`, or `absent` (the bank holds no debit with this payment id).
    #[schema(example = "debited")]
    pub status: String,
    /// The bank's ledger transfer, when debited.
    pub transfer_id: Option<String>,
    /// What was debited.
    pub amount: Option<crate::wallet::MoneyBody>,
}

/// The wallet returns (part of) a payment to the card it was debited from.
/// At most the debited amount in all; idempotent on `refund_id`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    pub refund_id: String,
    /// The debit's `payment_id`.
    pub payment_id: String,
    pub amount: crate::wallet::MoneyBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundAnswer {
    /// The bank's ledger transfer back to the card.
    pub transfer_id: String,
    /// `posted`.
    pub status: String,
}
