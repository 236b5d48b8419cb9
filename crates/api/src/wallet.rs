//! The wallet app's API: accounts, sessions, the payment password, the
//! real-name identity, devices, WebAuthn credentials and the push channel.
//! Personal data leaves only masked.

use paybridge_domain::account::AccountStatus;
use paybridge_domain::binding::{BindingFailure, BindingStage};
use paybridge_domain::device::{DeviceStage, DeviceType};
use paybridge_domain::ids::{
    BindingId, CeremonyId, CredentialId, DeviceId, EventId, MerchantId, OrderId, OtpId,
    PaymentRequestId, SecurityAuthId, SessionId, UserId,
};
use paybridge_domain::payment_request::{
    ApprovalMethod, Gesture, GestureRoute, OpenWith, PaymentRequestStage,
};
use paybridge_domain::registration::{AuthState, SecurityCondition};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A money amount on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MoneyBody {
    /// Integer minor units (fen, cents).
    #[schema(example = 1234)]
    pub amount: i64,
    #[schema(example = "CNY")]
    pub currency: String,
}

impl From<paybridge_domain::Money> for MoneyBody {
    fn from(m: paybridge_domain::Money) -> Self {
        Self {
            amount: m.amount_minor,
            currency: m.currency.code().to_owned(),
        }
    }
}

/// Step one of opening an account: the phone a code goes to.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAccount {
    #[schema(example = "13800138000", pattern = r"^\+?[0-9]{5,15}$")]
    pub phone: String,
}

/// The code is on its way; nothing is created yet. The answer is the same
/// whether or not the phone already has an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistrationStarted {
    pub otp: OtpBody,
}

/// Step two: the code from the text message and the login password.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRegistration {
    #[schema(value_type = String, example = "otp_…")]
    pub otp_id: String,
    /// The six digits from the text message.
    pub code: String,
    /// 8 to 128 characters mixing at least two of: lower case, upper case, digits, symbols.
    #[schema(example = "correct horse 9")]
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentityBody {
    #[schema(example = "*三")]
    pub name_masked: String,
    #[schema(example = "110***********1239")]
    pub id_number_masked: String,
    /// When it was recorded (RFC 3339).
    pub verified_at: String,
    /// Attested by a bank (when a card of this person bound, or the bank
    /// opened the account); `false` while only the owner declared it.
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountBody {
    #[schema(value_type = String, example = "usr_…")]
    pub id: UserId,
    #[schema(example = "138****8000")]
    pub phone_masked: String,
    /// `active`, or `restricted` until security authentication.
    #[schema(schema_with = crate::wire_enum::<AccountStatus>)]
    pub status: AccountStatus,
    pub has_payment_password: bool,
    /// The bank that registered the account, if one did.
    pub registered_by: Option<String>,
    pub identity: Option<IdentityBody>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schema(example = "13800138000", pattern = r"^\+?[0-9]{5,15}$")]
    pub phone: String,
    pub password: String,
    /// Ties the session to one of the account's devices: revoking the device ends it.
    pub device_id: Option<String>,
}

/// A session: the token is shown once, here. Send it as `Authorization: Bearer <token>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionBody {
    #[schema(value_type = String, example = "ses_…")]
    pub session_id: SessionId,
    #[schema(example = "pbs_…")]
    pub token: String,
    #[schema(value_type = String)]
    pub user_id: UserId,
    pub device_id: Option<String>,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPaymentPassword {
    /// Six digits; not all equal, not a run like 123456.
    #[schema(example = "482916")]
    pub new_password: String,
    /// Required when the account already has one.
    pub current_password: Option<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyPaymentPassword {
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Verified {
    pub verified: bool,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetIdentity {
    #[schema(example = "张三")]
    pub name: String,
    /// 17 digits and a check digit or `X`.
    #[schema(example = "110105199003071239")]
    pub id_number: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    /// `phone`, `pc`, `tv`, `car` or `iot`.
    #[schema(example = "phone", schema_with = crate::wire_enum::<DeviceType>)]
    #[serde(rename = "type")]
    pub device_type: String,
    #[schema(example = "Li's phone")]
    pub name: String,
    /// The device's own public key: it signs a proof of possession (DPoP)
    /// with the private key, which never leaves the device.
    pub public_key: DevicePublicKey,
}

/// A device's Ed25519 public key as a JWK (RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePublicKey {
    #[schema(example = "OKP", pattern = "^OKP$")]
    pub kty: String,
    #[schema(example = "Ed25519", pattern = "^Ed25519$")]
    pub crv: String,
    /// The 32-byte public key, base64url without padding.
    #[schema(
        example = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        pattern = "^[A-Za-z0-9_-]{43}$"
    )]
    pub x: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameDevice {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceBody {
    #[schema(value_type = String, example = "dev_…")]
    pub id: DeviceId,
    #[serde(rename = "type")]
    #[schema(schema_with = crate::wire_enum::<DeviceType>)]
    pub device_type: DeviceType,
    pub name: String,
    #[schema(schema_with = crate::wire_enum::<DeviceStage>)]
    pub status: DeviceStage,
    /// Whether the phone holds a WebAuthn credential.
    pub has_credential: bool,
    /// The RFC 7638 thumbprint of the device's public key (`null` for a
    /// device registered before devices had keys).
    pub key_thumbprint: Option<String>,
    /// Paired by a trusted device of the account (then trusted itself).
    pub paired: bool,
    /// RFC 3339.
    pub created_at: String,
    pub last_seen_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<DeviceBody>,
    /// The cursor of the next page (`?after=`), when there may be one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub next: Option<DeviceId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceListQuery {
    /// Also list revoked devices (default false).
    pub include_revoked: Option<bool>,
    /// Devices per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next` of the page before.
    #[serde(default)]
    pub after: Option<String>,
}

/// A WebAuthn ceremony started: hand `options` to the authenticator
/// (`navigator.credentials.create/get`), then post its answer to the ceremony.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CeremonyBody {
    #[schema(value_type = String, example = "wac_…")]
    pub ceremony_id: CeremonyId,
    /// `PublicKeyCredentialCreationOptions` or `…RequestOptions`, as WebAuthn defines them.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    /// RFC 3339.
    pub expires_at: String,
}

/// The authenticator's answer (`PublicKeyCredential` JSON, base64url fields).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CeremonyAnswer {
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialBody {
    #[schema(value_type = String, example = "cred_…")]
    pub credential_id: CredentialId,
    #[schema(value_type = String)]
    pub device_id: DeviceId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssertionBody {
    pub verified: bool,
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    /// The authenticator's signature counter after this use.
    pub counter: u32,
}

/// Where to resume the push channel (instead of the `Last-Event-ID` header).
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChannelQuery {
    /// Deliver events after this sequence number (0: from the start).
    pub after: Option<i64>,
}

/// One event on a device's push channel (the SSE `data`; the SSE `id` is `seq`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceEvent {
    pub seq: i64,
    #[schema(value_type = String, example = "evt_…")]
    pub id: EventId,
    #[schema(example = "payment.requested")]
    pub topic: String,
    /// RFC 3339.
    pub occurred_at: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

redacted_debug!(
    RegisterAccount,
    ConfirmRegistration,
    Login,
    SetPaymentPassword,
    VerifyPaymentPassword,
    SetIdentity
);

/// A binding of a bank card to the account, as the wallet app shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BindingBody {
    #[schema(value_type = String, example = "bnd_…")]
    pub id: BindingId,
    /// The bank's partner id.
    pub issuer: String,
    #[schema(schema_with = crate::wire_enum::<BindingStage>)]
    pub state: BindingStage,
    /// Why it failed (a `failed` binding only).
    #[schema(schema_with = crate::wire_enum_or_null::<BindingFailure>)]
    pub failure: Option<BindingFailure>,
    pub bank_name: String,
    pub card_type: String,
    pub last4: String,
    #[schema(example = "•••• 0014")]
    pub masked_card: String,
    #[schema(example = "*三")]
    pub holder_name_masked: String,
    #[schema(example = "138****8000")]
    pub phone_masked: String,
    /// RFC 3339: when a pending binding dies.
    pub expires_at: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BindingList {
    pub bindings: Vec<BindingBody>,
    /// The cursor of the next page (`?after=`), when there may be one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub next: Option<BindingId>,
}

/// A page of a list: at most `limit` items (1 to 100, default 50), newest
/// first, after the item `after` (the `next` of the page before).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// Claim a scanned binding address (the QR code's URL).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimAddress {
    pub address: String,
}

/// An OTP sent: where (masked) and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OtpBody {
    #[schema(value_type = String, example = "otp_…")]
    pub id: OtpId,
    #[schema(example = "138****8000")]
    pub phone_masked: String,
    pub expires_at: String,
    /// Ask for another code no sooner than this.
    pub resend_after: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BindingConfirmation {
    pub binding: BindingBody,
    pub otp: OtpBody,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBinding {
    /// The six digits from the text message.
    pub code: String,
    /// Required when the account has a payment password.
    pub payment_password: Option<String>,
}

redacted_debug!(ClaimAddress, CompleteBinding);

/// What the app reports of the device it runs on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceEnvironmentBody {
    pub emulator: bool,
    pub rooted: bool,
    /// `android`, `ios` or `harmonyos`.
    #[schema(example = "android")]
    pub os: String,
    #[schema(example = "14")]
    pub os_version: String,
    /// Attestation attributes; `risk:*` ones refuse the device.
    #[serde(default)]
    pub attributes: Vec<String>,
}

/// Start security authentication on this device (first use of a
/// bank-registered account, or a new device).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSecurityAuth {
    #[schema(example = "13800138000", pattern = r"^\+?[0-9]{5,15}$")]
    pub phone: String,
    /// A device seen for the first time…
    pub device: Option<RegisterDevice>,
    /// …or one the account registered before (it becomes trusted).
    pub device_id: Option<String>,
    pub environment: DeviceEnvironmentBody,
}

redacted_debug!(StartSecurityAuth);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecurityAuthBody {
    #[schema(value_type = String, example = "sau_…")]
    pub id: SecurityAuthId,
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    /// Why it is required.
    #[schema(schema_with = crate::wire_enum_list::<SecurityCondition>)]
    pub conditions: Vec<SecurityCondition>,
    #[schema(schema_with = crate::wire_enum::<AuthState>)]
    pub state: AuthState,
    /// Passwords still to set at the last step: `login`, `payment`.
    pub passwords_needed: Vec<String>,
    pub otp: Option<OtpBody>,
    /// Once passed: the session on this (now trusted) device.
    pub session: Option<SessionBody>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityAuthOtp {
    pub code: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityAuthIdentity {
    /// The last four characters of the ID number.
    pub id_number_last4: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityAuthPasswords {
    pub login_password: Option<String>,
    pub payment_password: Option<String>,
}

redacted_debug!(SecurityAuthOtp, SecurityAuthIdentity, SecurityAuthPasswords);

/// A first terminal (PC, TV, car, IoT box) asks for an order to be paid by
/// the account's phone (flow F4). Amount, currency and payee come from the
/// order, never from the terminal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentRequest {
    #[schema(example = "mer_…")]
    pub merchant_id: String,
    #[schema(example = "ord_…")]
    pub order_id: String,
    /// The asking terminal: a device of this account (this session's, if it has one).
    #[schema(example = "dev_…")]
    pub terminal_id: String,
    /// Open the payment page only after a gesture on the phone (default false).
    pub gesture_required: Option<bool>,
    /// `payment_page` (default) or `scanner`: what the push opens on the phone.
    pub open_with: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentMerchant {
    #[schema(value_type = String)]
    pub id: MerchantId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentDevice {
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    pub name: String,
    #[serde(rename = "type")]
    #[schema(schema_with = crate::wire_enum::<DeviceType>)]
    pub device_type: DeviceType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GestureBody {
    #[schema(schema_with = crate::wire_enum::<Gesture>)]
    pub gesture: Gesture,
    /// `direct` (from the phone) or `relay` (through the OS push server).
    #[schema(schema_with = crate::wire_enum::<GestureRoute>)]
    pub route: GestureRoute,
}

/// The QR code the terminal shows (no correspondence, or the phone prefers
/// its scanner). Shown once: only a keyed hash of the code is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentQr {
    pub url: String,
    pub svg: String,
    pub png_base64: String,
}

/// A payment request and its payment page: what is paid, to whom, who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentRequestBody {
    #[schema(value_type = String, example = "pay_…")]
    pub id: PaymentRequestId,
    #[schema(schema_with = crate::wire_enum::<PaymentRequestStage>)]
    pub state: PaymentRequestStage,
    #[schema(value_type = String)]
    pub order_id: OrderId,
    pub amount: MoneyBody,
    pub description: String,
    /// Number matching: two digits the terminal shows and the phone's
    /// payment page shows too; the user approves only if they agree.
    #[schema(example = "42", pattern = "^[0-9]{2}$")]
    pub match_code: String,
    pub merchant: PaymentMerchant,
    pub requested_by: PaymentDevice,
    /// The phone of the terminal correspondence, or the one that scanned.
    pub phone: Option<PaymentDevice>,
    pub gesture_required: bool,
    #[schema(schema_with = crate::wire_enum::<OpenWith>)]
    pub open_with: OpenWith,
    pub gesture: Option<GestureBody>,
    /// The terminal should show `qr` (state `awaiting_scan`).
    pub show_qr: bool,
    /// Only in the answer that created the request.
    pub qr: Option<PaymentQr>,
    /// How it was approved, once paid.
    #[schema(schema_with = crate::wire_enum_or_null::<ApprovalMethod>)]
    pub approved_with: Option<ApprovalMethod>,
    /// RFC 3339.
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The phone reports the user's gesture.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportGesture {
    /// `swipe`, `tap`, `raise`.
    pub gesture: String,
}

/// The OS push relay relays a phone's gesture (signed partner call).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayedGesture {
    #[schema(example = "pay_…")]
    pub payment_id: String,
    /// The phone the gesture was made on.
    #[schema(example = "dev_…")]
    pub device_id: String,
    /// `swipe`, `tap`, `raise`.
    pub gesture: String,
}

/// A phone scanned the terminal's QR code.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanPaymentCode {
    /// The scanned text (`<origin>/pay/<code>`).
    pub code: String,
}

crate::redacted_debug!(ScanPaymentCode);

/// A WebAuthn approval: the ceremony started for this payment and the
/// authenticator's answer.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebauthnApproval {
    #[schema(example = "wac_…")]
    pub ceremony_id: String,
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// The user approves the payment: with the payment password, or with the
/// phone's biometric (WebAuthn) — exactly one.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovePayment {
    #[schema(example = "bnd_…")]
    pub binding_id: String,
    pub payment_password: Option<String>,
    pub webauthn: Option<WebauthnApproval>,
}

crate::redacted_debug!(ApprovePayment, WebauthnApproval);
