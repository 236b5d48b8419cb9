//! Flow F3's payments over HTTP: the first device's signed transfer
//! payment request (its session), the phone's confirm payment message,
//! biometric challenge, task execution and completion message (the
//! phone's session), reading a payment, and the wallet's task keys.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use paybridge_api::delegated::{
    CompleteTransferPayment, ConfirmTransferPayment, CreateTransferPayment, DeviceUsageBody,
    ExecuteTask, ExecutionTaskBody, TransferPaymentBody, WalletKey, WalletKeys,
};
use paybridge_api::wallet::{CeremonyBody, PaymentDevice, PaymentMerchant};
use paybridge_api::{rfc3339, ErrorBody};
use paybridge_domain::ids::TransferPaymentId;
use paybridge_domain::ErrorCode;
use paybridge_wallet::accounts::SessionUser;
use paybridge_wallet::views::TransferPaymentView;
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Authenticated};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::session_auth::wallet_session;
use crate::routes::devices::ceremony_body;

pub(crate) fn transfer_payment_body(v: TransferPaymentView) -> TransferPaymentBody {
    TransferPaymentBody {
        id: v.id,
        state: v.state.stage(),
        failure: v.state.failure().map(|c| c.as_str().to_owned()),
        route: v.route,
        agreement_id: v.agreement_id,
        requested_by: PaymentDevice {
            device_id: v.requested_by.id,
            name: v.requested_by.name,
            device_type: v.requested_by.device_type,
        },
        phone_id: v.phone_id,
        order_id: v.order_id,
        merchant: PaymentMerchant {
            id: v.merchant_id,
            name: v.merchant_name,
        },
        description: v.description,
        amount: v.amount.into(),
        usage: DeviceUsageBody {
            category: v.usage.category,
            counter: v.usage.counter,
            purpose: v.usage.purpose,
        },
        task: v.task.map(|t| ExecutionTaskBody {
            task: t.jws,
            task_hash: t.hash,
            biometric_required: t.biometric_required,
            expires_at: rfc3339(t.expires_at),
        }),
        completed_by: v.completed_by,
        expires_at: rfc3339(v.expires_at),
        created_at: rfc3339(v.created_at),
        updated_at: rfc3339(v.updated_at),
    }
}

/// The transfer payment request (转移支付请求): a first device, on its own
/// session, asks to pay an order within its agreement. The body is a JWS
/// signed by the device's key. With the user: the phone gets the transfer
/// payment message. Direct (a small amount): the task goes to the phone.
#[utoipa::path(post, path = "/v1/transfer-payments", tag = "delegated",
    security(("session" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = CreateTransferPayment,
    responses(
        (status = 201, body = TransferPaymentBody),
        (status = 401, description = "device_signature_invalid, session_invalid (an unpaired or revoked device has no session)", body = ErrorBody),
        (status = 403, description = "device_proof_required (not the device's own session)", body = ErrorBody),
        (status = 404, description = "no_agreement, no such order of this merchant", body = ErrorBody),
        (status = 409, description = "agreement_inactive (suspended), device_counter_replayed, order_not_payable", body = ErrorBody),
        (status = 422, description = "amount_over_limit, category_not_allowed, message_mismatch (another device, another amount than the order's), order_expired, invalid_request", body = ErrorBody),
        (status = 429, description = "too_many_pending_payments, payment_requests_throttled", body = ErrorBody)))]
async fn request_transfer_payment(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiJson(req): ApiJson<CreateTransferPayment>,
) -> ApiResult<(StatusCode, ApiJson<TransferPaymentBody>)> {
    let v = w.request_transfer_payment(&user, &req.request).await?;
    Ok((StatusCode::CREATED, ApiJson(transfer_payment_body(v))))
}

/// A transfer payment, for the first device that asked or the phone that
/// answers (the phone's view carries the payment execution task).
#[utoipa::path(get, path = "/v1/transfer-payments/{transfer_payment_id}", tag = "delegated",
    security(("session" = [])),
    params(("transfer_payment_id" = String, Path)),
    responses(
        (status = 200, body = TransferPaymentBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn read_transfer_payment(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<TransferPaymentId>,
) -> ApiResult<ApiJson<TransferPaymentBody>> {
    Ok(ApiJson(transfer_payment_body(
        w.transfer_payment(&user, &id).await?,
    )))
}

/// The confirm payment message (确认支付消息): the user approves or
/// declines the transfer payment message, signed with the phone's key. An
/// approval makes the confirm payment request: the answer carries the
/// payment execution task (or the failure, if the agreement's second state
/// refused).
#[utoipa::path(post, path = "/v1/transfer-payments/{transfer_payment_id}/confirmation", tag = "delegated",
    security(("session" = [])),
    params(("transfer_payment_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = ConfirmTransferPayment,
    responses(
        (status = 200, body = TransferPaymentBody),
        (status = 401, description = "device_signature_invalid (not signed by this phone's key)", body = ErrorBody),
        (status = 403, description = "terminal_not_of_account (another phone)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "transfer_payment_closed (answered already, e.g. declined)", body = ErrorBody),
        (status = 422, description = "transfer_payment_expired, message_mismatch (another payment or amount)", body = ErrorBody)))]
async fn confirm_transfer_payment(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<TransferPaymentId>,
    ApiJson(req): ApiJson<ConfirmTransferPayment>,
) -> ApiResult<ApiJson<TransferPaymentBody>> {
    Ok(ApiJson(transfer_payment_body(
        w.confirm_transfer_payment(&user, &id, &req.message).await?,
    )))
}

/// Starts the phone's biometric approval of the payment execution task,
/// bound to the task's hash.
#[utoipa::path(post, path = "/v1/transfer-payments/{transfer_payment_id}/approval-challenges", tag = "delegated",
    security(("session" = [])),
    params(("transfer_payment_id" = String, Path)),
    responses(
        (status = 201, body = CeremonyBody), (status = 401, body = ErrorBody),
        (status = 403, description = "terminal_not_of_account, execution_task_invalid (no task waiting)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "transfer_payment_expired", body = ErrorBody)))]
async fn task_approval_challenge(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<TransferPaymentId>,
) -> ApiResult<(StatusCode, ApiJson<CeremonyBody>)> {
    let c = w.start_task_approval(&user, &id).await?;
    Ok((StatusCode::CREATED, ApiJson(ceremony_body(c)?)))
}

/// The phone executes the payment execution task: its signature over the
/// task's hash and, unless the task is direct, the biometric. The card is
/// debited (once, whatever the retries); the answer is `debited`, `failed`
/// (with why) or `executing` (the bank's answer is not known yet).
#[utoipa::path(post, path = "/v1/transfer-payments/{transfer_payment_id}/execution", tag = "delegated",
    security(("session" = [])),
    params(("transfer_payment_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = ExecuteTask,
    responses(
        (status = 200, body = TransferPaymentBody),
        (status = 401, description = "device_signature_invalid", body = ErrorBody),
        (status = 403, description = "execution_task_invalid (replayed or tampered task), webauthn_rejected, terminal_not_of_account", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "transfer_payment_closed, ceremony_used", body = ErrorBody),
        (status = 422, description = "transfer_payment_expired, message_mismatch", body = ErrorBody)))]
async fn execute_task(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<TransferPaymentId>,
    ApiJson(req): ApiJson<ExecuteTask>,
) -> ApiResult<ApiJson<TransferPaymentBody>> {
    let biometric = match req.webauthn {
        None => None,
        Some(a) => Some((
            a.ceremony_id
                .parse()
                .map_err(|_| ApiError::new(ErrorCode::NotFound, "no such ceremony"))?,
            Box::new(serde_json::from_value(a.credential).map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "webauthn.credential: not a WebAuthn PublicKeyCredential in JSON form",
                )
            })?),
        )),
    };
    let v = w
        .execute_task(&user, &id, &req.execution, biometric)
        .await?;
    Ok(ApiJson(transfer_payment_body(v)))
}

/// The payment completion message (支付完成消息): the phone reports the
/// task it executed and the result it showed; the payment result
/// notification goes to both devices.
#[utoipa::path(post, path = "/v1/transfer-payments/{transfer_payment_id}/completion", tag = "delegated",
    security(("session" = [])),
    params(("transfer_payment_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = CompleteTransferPayment,
    responses(
        (status = 200, body = TransferPaymentBody),
        (status = 401, description = "device_signature_invalid", body = ErrorBody),
        (status = 403, description = "execution_task_invalid (a completion without a task, or for another task)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "payment_pending (the debit is not confirmed yet), transfer_payment_closed", body = ErrorBody),
        (status = 422, description = "message_mismatch", body = ErrorBody)))]
async fn complete_transfer_payment(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<TransferPaymentId>,
    ApiJson(req): ApiJson<CompleteTransferPayment>,
) -> ApiResult<ApiJson<TransferPaymentBody>> {
    Ok(ApiJson(transfer_payment_body(
        w.complete_transfer_payment(&user, &id, &req.message)
            .await?,
    )))
}

/// The wallet's public keys that sign payment execution tasks (a JWK
/// set): the phone app pins them and checks every task against them.
#[utoipa::path(get, path = "/v1/wallet-keys", tag = "delegated",
    responses((status = 200, body = WalletKeys)))]
async fn wallet_keys(State(w): State<Wallet>) -> ApiJson<WalletKeys> {
    ApiJson(WalletKeys {
        keys: w
            .task_keys()
            .into_iter()
            .map(|(kid, jwk)| WalletKey {
                kid,
                kty: jwk.kty,
                crv: jwk.crv,
                x: jwk.x,
                key_use: "sig".into(),
                alg: "EdDSA".into(),
            })
            .collect(),
    })
}

pub fn router(wallet: Wallet, idem: Arc<Idempotency>) -> OpenApiRouter {
    // Requests, answers and executions create or move something: they
    // take an Idempotency-Key.
    let moving = OpenApiRouter::new()
        .routes(routes!(request_transfer_payment))
        .routes(routes!(confirm_transfer_payment))
        .routes(routes!(execute_task))
        .routes(routes!(complete_transfer_payment))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency));
    let public = OpenApiRouter::new()
        .routes(routes!(wallet_keys))
        .with_state(wallet.clone());
    OpenApiRouter::new()
        .routes(routes!(read_transfer_payment))
        .routes(routes!(task_approval_challenge))
        .merge(moving)
        .layer(axum::middleware::from_fn_with_state(
            wallet.clone(),
            wallet_session,
        ))
        .with_state(wallet)
        .merge(public)
}
