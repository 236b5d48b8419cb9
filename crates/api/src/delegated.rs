//! Flow F3's API (device-delegated transfer payment, seed 002): the
//! business binding request (pairing a first device by a user code, RFC
//! 8628 style), the transfer payment agreement and its lifecycle, the
//! transfer payment from request to result, and the signed messages'
//! payloads.
//!
//! Signed messages travel as compact JWS (Ed25519, one `typ` per kind; see
//! `paybridge_crypto::signed_message`); the `*Claims` types here are their
//! payloads. The receiver acts on the verified payload only. Freshness is
//! not a clock's: a transfer payment request carries the device's counter
//! (strictly rising), and every other message names its payment and task,
//! each answered once by the payment's state machine.

use paybridge_domain::device::DeviceType;
use paybridge_domain::device_pairing::PairingState;
use paybridge_domain::ids::{
    BindingId, DeviceId, MerchantId, OrderId, PairingId, TransferAgreementId, TransferPaymentId,
};
use paybridge_domain::transfer_agreement::{
    AgreementState, ApprovalMode, ConfirmRoute, UsageCategory,
};
use paybridge_domain::transfer_payment::{CompletedBy, TransferPaymentStage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wallet::{
    DevicePublicKey, MoneyBody, PaymentDevice, PaymentMerchant, SessionBody, WebauthnApproval,
};

/// What a first device says of itself (终端设备信息).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfoBody {
    /// `pc`, `tv`, `car` or `iot` (a phone pays for itself).
    #[serde(rename = "type")]
    #[schema(schema_with = crate::wire_enum::<DeviceType>)]
    pub device_type: DeviceType,
    #[schema(example = "Bravia XR-55A80L", min_length = 1, max_length = 64)]
    pub model: String,
    #[schema(example = "Sony", min_length = 1, max_length = 64)]
    pub vendor: String,
    #[schema(example = "SN-4K-0042", pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub serial: String,
}

/// A first device starts a business binding request (业务绑定请求). The
/// request carries a DPoP proof by the key it names (no session yet).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPairing {
    pub device: DeviceInfoBody,
    /// The key pair the device made; its session will be bound to it.
    pub public_key: DevicePublicKey,
}

/// The QR code a device shows (of `verification_uri_complete`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PairingQr {
    pub svg: String,
    pub png_base64: String,
}

/// What the device shows, and how it asks whether it was approved
/// (RFC 8628 §3.2, with the pairing's id and the device's key proof in
/// place of a device code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PairingStarted {
    #[schema(value_type = String, example = "dpr_…")]
    pub id: PairingId,
    /// Eight letters, shown as `XXXX-XXXX`: the user enters them on the phone.
    #[schema(
        example = "BDFG-HJKL",
        pattern = "^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$"
    )]
    pub user_code: String,
    /// Where the user enters the code.
    pub verification_uri: String,
    /// The same with the code in it: what the QR code holds.
    pub verification_uri_complete: String,
    pub qr: PairingQr,
    /// Seconds to wait between two polls (`slow_down` otherwise).
    pub interval: i64,
    /// RFC 3339.
    pub expires_at: String,
}

/// The phone enters (or scans) the user code.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnterUserCode {
    /// As shown (`BDFG-HJKL`) or scanned (`<origin>/pair?user_code=…`);
    /// case, spaces and dashes do not matter.
    pub user_code: String,
}

crate::redacted_debug!(EnterUserCode);

/// A business binding request as the phone that entered its code sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PairingBody {
    #[schema(value_type = String, example = "dpr_…")]
    pub id: PairingId,
    #[schema(schema_with = crate::wire_enum::<PairingState>)]
    pub state: PairingState,
    pub device: DeviceInfoBody,
    /// The RFC 7638 thumbprint of the device's key.
    pub key_thumbprint: String,
    /// The first device, once approved.
    #[schema(value_type = Option<String>)]
    pub device_id: Option<DeviceId>,
    /// Its transfer payment agreement, once approved.
    #[schema(value_type = Option<String>)]
    pub agreement_id: Option<TransferAgreementId>,
    /// RFC 3339.
    pub expires_at: String,
}

/// An agreement's limits, all in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementLimitsBody {
    pub per_payment: MoneyBody,
    pub per_day: MoneyBody,
    pub per_month: MoneyBody,
}

/// Who confirms a payment: the user each time (`every_payment`), or
/// nobody for payments up to `direct_ceiling` (`small_amounts_direct`, 小额免密).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalBody {
    #[schema(schema_with = crate::wire_enum::<ApprovalMode>)]
    pub mode: ApprovalMode,
    /// Only with `small_amounts_direct`: within the per-payment limit.
    pub direct_ceiling: Option<MoneyBody>,
}

/// What the user chooses for a first device: the card it pays with, its
/// limits, the usage categories it may pay for, the approval policy, and
/// optionally its name (else vendor and model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementTermsBody {
    #[schema(value_type = String, example = "bnd_…")]
    pub binding_id: String,
    #[schema(example = "Living-room TV")]
    pub name: Option<String>,
    pub limits: AgreementLimitsBody,
    #[schema(schema_with = crate::wire_enum_list::<UsageCategory>)]
    pub categories: Vec<UsageCategory>,
    pub approval: ApprovalBody,
}

/// The user approves the device with these terms and the biometric: the
/// assertion of a ceremony started for exactly these terms.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovePairing {
    pub terms: AgreementTermsBody,
    pub webauthn: WebauthnApproval,
}

crate::redacted_debug!(ApprovePairing);

/// What the first device receives once approved: its session (bound to
/// its key) and its agreement's public part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PairedDevice {
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    pub session: SessionBody,
    pub agreement: DeviceAgreementBody,
}

/// The card an agreement pays with, masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgreementCard {
    #[schema(value_type = String)]
    pub binding_id: BindingId,
    pub bank_name: String,
    pub last4: String,
}

/// The first device of an agreement, as the phone shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgreementDevice {
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    pub name: String,
    #[serde(rename = "type")]
    #[schema(schema_with = crate::wire_enum::<DeviceType>)]
    pub device_type: DeviceType,
    pub model: String,
    pub vendor: String,
}

/// One payment recorded in the agreement's device usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageRecordBody {
    #[schema(value_type = String)]
    pub transfer_payment_id: TransferPaymentId,
    #[schema(schema_with = crate::wire_enum::<UsageCategory>)]
    pub category: UsageCategory,
    pub counter: u64,
    pub amount: MoneyBody,
    /// RFC 3339.
    pub at: String,
}

/// What the agreement has counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgreementUsageBody {
    pub spent_today: MoneyBody,
    pub spent_this_month: MoneyBody,
    pub left_today: MoneyBody,
    pub left_this_month: MoneyBody,
    /// The device's last counter seen: its next request names a higher one.
    pub last_counter: u64,
    /// The latest payments, newest first (at most 20).
    pub recent: Vec<UsageRecordBody>,
}

/// A transfer payment agreement (转移支付协议) as the phone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferAgreementBody {
    #[schema(value_type = String, example = "tpa_…")]
    pub id: TransferAgreementId,
    #[schema(schema_with = crate::wire_enum::<AgreementState>)]
    pub state: AgreementState,
    pub device: AgreementDevice,
    pub card: AgreementCard,
    /// The phone that approved it (it confirms and executes the payments).
    #[schema(value_type = String)]
    pub phone_id: DeviceId,
    pub limits: AgreementLimitsBody,
    #[schema(schema_with = crate::wire_enum_list::<UsageCategory>)]
    pub categories: Vec<UsageCategory>,
    pub approval: ApprovalBody,
    pub usage: AgreementUsageBody,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferAgreementList {
    pub agreements: Vec<TransferAgreementBody>,
    /// The cursor of the next page (`?after=`), when there may be one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub next: Option<TransferAgreementId>,
}

/// The agreement's public part, as its first device reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceAgreementBody {
    #[schema(value_type = String, example = "tpa_…")]
    pub id: TransferAgreementId,
    #[schema(schema_with = crate::wire_enum::<AgreementState>)]
    pub state: AgreementState,
    pub limits: AgreementLimitsBody,
    #[schema(schema_with = crate::wire_enum_list::<UsageCategory>)]
    pub categories: Vec<UsageCategory>,
    pub approval: ApprovalBody,
    pub left_today: MoneyBody,
    pub left_this_month: MoneyBody,
    /// The device's next request names a counter above this one.
    pub last_counter: u64,
}

/// A change of an agreement's terms: a sensitive operation, confirmed
/// with the payment password. What is left out stays as it is.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeTransferAgreement {
    pub limits: Option<AgreementLimitsBody>,
    #[schema(schema_with = crate::wire_enum_list::<UsageCategory>)]
    pub categories: Option<Vec<UsageCategory>>,
    pub approval: Option<ApprovalBody>,
    pub payment_password: String,
}

crate::redacted_debug!(ChangeTransferAgreement);

/// A first device's device usage (设备使用信息) for one payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceUsageBody {
    #[schema(schema_with = crate::wire_enum::<UsageCategory>)]
    pub category: UsageCategory,
    /// The device's own counter: above every one it sent before.
    pub counter: u64,
    /// What it is for, shown to the user.
    #[schema(example = "4K film rental", min_length = 1, max_length = 80)]
    pub purpose: String,
}

/// The transfer payment request (转移支付请求): a compact JWS (`typ`
/// `transfer-payment-request+jwt`) signed by the first device's key, whose
/// payload is [`TransferPaymentRequestClaims`]. Sent on the device's session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTransferPayment {
    pub request: String,
}

/// The payload of a transfer payment request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferPaymentRequestClaims {
    /// The asking device (the session's).
    #[schema(value_type = String)]
    pub device_id: String,
    #[schema(value_type = String)]
    pub merchant_id: String,
    #[schema(value_type = String)]
    pub order_id: String,
    /// The order's amount: what the device asks to pay.
    pub amount: MoneyBody,
    pub usage: DeviceUsageBody,
}

/// The payment execution task (支付执行任务), as the wallet signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExecutionTaskBody {
    /// A compact JWS (`typ` `payment-execution-task+jwt`) by the wallet's
    /// task key (`GET /v1/wallet-keys`); its payload is [`ExecutionTaskClaims`].
    pub task: String,
    /// Base64url SHA-256 of `task`.
    pub task_hash: String,
    /// The phone passes the biometric before executing it.
    pub biometric_required: bool,
    /// RFC 3339.
    pub expires_at: String,
}

/// The payee of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPayee {
    #[schema(value_type = String)]
    pub merchant_id: MerchantId,
    pub name: String,
}

/// The payload of a payment execution task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionTaskClaims {
    #[schema(value_type = String)]
    pub transfer_payment_id: TransferPaymentId,
    #[schema(value_type = String)]
    pub order_id: OrderId,
    pub amount: MoneyBody,
    pub payee: TaskPayee,
    #[schema(value_type = String)]
    pub agreement_id: TransferAgreementId,
    /// The first device that asked.
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    /// The phone that executes it.
    #[schema(value_type = String)]
    pub phone_id: DeviceId,
    pub biometric_required: bool,
    /// RFC 3339.
    pub expires_at: String,
    /// 128 random bits: no two tasks alike.
    pub nonce: String,
}

/// A transfer payment, from the request to its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferPaymentBody {
    #[schema(value_type = String, example = "tpy_…")]
    pub id: TransferPaymentId,
    #[schema(schema_with = crate::wire_enum::<TransferPaymentStage>)]
    pub state: TransferPaymentStage,
    /// Why it failed (a stable error code), when it did.
    pub failure: Option<String>,
    /// `with_user` (the phone confirms) or `direct` (a small amount).
    #[schema(schema_with = crate::wire_enum::<ConfirmRoute>)]
    pub route: ConfirmRoute,
    #[schema(value_type = String)]
    pub agreement_id: TransferAgreementId,
    pub requested_by: PaymentDevice,
    #[schema(value_type = String)]
    pub phone_id: DeviceId,
    #[schema(value_type = String)]
    pub order_id: OrderId,
    pub merchant: PaymentMerchant,
    pub description: String,
    pub amount: MoneyBody,
    pub usage: DeviceUsageBody,
    /// The payment execution task, to the phone, once issued.
    pub task: Option<ExecutionTaskBody>,
    /// Who ended a paid payment: `phone` or `wallet`.
    #[schema(schema_with = crate::wire_enum_or_null::<CompletedBy>)]
    pub completed_by: Option<CompletedBy>,
    /// RFC 3339: until when its current step may be answered.
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The confirm payment message (确认支付消息): a compact JWS (`typ`
/// `confirm-payment+jwt`) by the phone's device key, whose payload is
/// [`ConfirmPaymentClaims`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTransferPayment {
    pub message: String,
}

/// The user's answer to a transfer payment message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Decline,
}

/// The payload of a confirm payment message: the payment, the answer, and
/// the amount the user saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPaymentClaims {
    #[schema(value_type = String)]
    pub transfer_payment_id: String,
    pub decision: Decision,
    pub amount: MoneyBody,
}

/// The phone executes a task: a compact JWS (`typ` `task-execution+jwt`)
/// by its device key, whose payload is [`TaskExecutionClaims`], and the
/// biometric when the task asks for it (an assertion of a ceremony started
/// for this task).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteTask {
    pub execution: String,
    pub webauthn: Option<WebauthnApproval>,
}

crate::redacted_debug!(ExecuteTask);

/// The payload of a task execution: the task's hash, as the phone received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskExecutionClaims {
    #[schema(value_type = String)]
    pub transfer_payment_id: String,
    pub task_hash: String,
}

/// The payment completion message (支付完成消息): a compact JWS (`typ`
/// `payment-completion+jwt`) by the phone's device key, whose payload is
/// [`PaymentCompletionClaims`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteTransferPayment {
    pub message: String,
}

/// The payload of a payment completion message: the task executed and the
/// result the phone showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentCompletionClaims {
    #[schema(value_type = String)]
    pub transfer_payment_id: String,
    pub task_hash: String,
    /// `paid`: the debit went through.
    #[schema(schema_with = crate::wire_enum::<TransferPaymentStage>)]
    pub result: TransferPaymentStage,
}

/// One of the wallet's public keys (a JWK), for phones to pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WalletKey {
    /// The key's RFC 7638 thumbprint: the `kid` of what it signs.
    pub kid: String,
    #[schema(example = "OKP")]
    pub kty: String,
    #[schema(example = "Ed25519")]
    pub crv: String,
    pub x: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
    /// `EdDSA`.
    pub alg: String,
}

/// The wallet's keys that sign payment execution tasks (a JWK set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WalletKeys {
    pub keys: Vec<WalletKey>,
}
