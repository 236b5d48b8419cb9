//! Flow F4 over HTTP: the first terminal's payment request, the phone's
//! gesture, scan, approval and decline (wallet sessions), and the OS push
//! relay's signed gesture call.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use paybridge_api::wallet::{
    ApprovePayment, CeremonyBody, CreatePaymentRequest, GestureBody, PaymentDevice,
    PaymentMerchant, PaymentQr, PaymentRequestBody, RelayedGesture, ReportGesture, ScanPaymentCode,
};
use paybridge_api::{rfc3339, ErrorBody};
use paybridge_domain::ids::{BindingId, DeviceId, MerchantId, OrderId, PaymentRequestId};
use paybridge_domain::payment_request::{Gesture, GestureRoute, OpenWith, PaymentRequestState};
use paybridge_domain::ErrorCode;
use paybridge_wallet::accounts::SessionUser;
use paybridge_wallet::cross_device::{PaymentApproval, PaymentRequestOptions};
use paybridge_wallet::views::{DeviceView, PaymentPageView};
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Authenticated};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::partner_auth::{partner_auth, PartnerAuth};
use crate::middleware::session_auth::wallet_session;
use crate::routes::devices::ceremony_body;

fn invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

fn payment_id(text: &str) -> Result<PaymentRequestId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "no such payment request"))
}

fn gesture(text: &str) -> Result<Gesture, ApiError> {
    Gesture::parse(text).ok_or_else(|| invalid("gesture: one of swipe, tap, raise"))
}

fn device(d: &DeviceView) -> PaymentDevice {
    PaymentDevice {
        device_id: d.id.clone(),
        name: d.name.clone(),
        device_type: d.device_type,
    }
}

pub(crate) fn payment_request_body(
    p: &PaymentPageView,
    qr: Option<PaymentQr>,
) -> PaymentRequestBody {
    let r = &p.request;
    PaymentRequestBody {
        id: r.id.clone(),
        state: r.status.state.stage(),
        order_id: p.order.id.clone(),
        amount: p.order.status.amount.into(),
        description: p.order.description.clone(),
        match_code: p.match_code.clone(),
        merchant: PaymentMerchant {
            id: p.order.merchant_id.clone(),
            name: p.merchant_name.clone(),
        },
        requested_by: device(&p.terminal),
        phone: p.phone.as_ref().map(device),
        gesture_required: r.gesture_required,
        open_with: r.open_with,
        gesture: r
            .gesture
            .map(|(g, route)| GestureBody { gesture: g, route }),
        show_qr: r.status.state == PaymentRequestState::AwaitingScan,
        qr,
        approved_with: r.status.state.payment().map(|(_, by)| by),
        expires_at: rfc3339(r.status.expires_at),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

/// A first terminal asks for an order to be paid by the account's phone.
/// With a correspondence (a live phone of the account) the phone gets the
/// payment response (or, first, a gesture prompt); without one the answer
/// says to show the QR code. Supersedes the terminal's older pending request.
#[utoipa::path(post, path = "/v1/payment-requests", tag = "payments",
    security(("session" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = CreatePaymentRequest,
    responses(
        (status = 201, body = PaymentRequestBody), (status = 401, body = ErrorBody),
        (status = 403, description = "terminal_not_of_account, account_restricted, device_proof_required (not the terminal's own session)", body = ErrorBody),
        (status = 404, description = "no such order of this merchant", body = ErrorBody),
        (status = 409, description = "order_not_payable", body = ErrorBody),
        (status = 422, description = "order_expired, invalid_request", body = ErrorBody),
        (status = 429, description = "too_many_pending_payments", body = ErrorBody)))]
async fn create(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiJson(req): ApiJson<CreatePaymentRequest>,
) -> ApiResult<(StatusCode, ApiJson<PaymentRequestBody>)> {
    let not_found = || ApiError::new(ErrorCode::NotFound, "no such order of this merchant");
    let merchant: MerchantId = req.merchant_id.parse().map_err(|_| not_found())?;
    let order: OrderId = req.order_id.parse().map_err(|_| not_found())?;
    let terminal: DeviceId = req.terminal_id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::TerminalNotOfAccount,
            "the terminal is not a device of this account (or not this session's)",
        )
    })?;
    let open_with = match req.open_with.as_deref() {
        None => OpenWith::default(),
        Some(s) => {
            OpenWith::parse(s).ok_or_else(|| invalid("open_with: payment_page or scanner"))?
        }
    };
    let options = PaymentRequestOptions {
        gesture_required: req.gesture_required.unwrap_or(false),
        open_with,
    };
    let created = w
        .request_payment(
            &user.user_id,
            user.device_id.as_ref(),
            &terminal,
            &merchant,
            &order,
            options,
        )
        .await?;
    let (svg, png_base64) = paybridge_wallet::qr::render(&created.scan_url).map_err(|e| {
        tracing::error!(error = %e, "cannot render the payment QR code");
        ApiError::new(
            ErrorCode::InternalError,
            "internal error; it has been logged",
        )
    })?;
    let qr = PaymentQr {
        url: created.scan_url,
        svg,
        png_base64,
    };
    Ok((
        StatusCode::CREATED,
        ApiJson(payment_request_body(&created.page, Some(qr))),
    ))
}

/// A payment request of the account, for the terminal that asked or the
/// phone that answers (a pending one past its expiry is expired on the way).
#[utoipa::path(get, path = "/v1/payment-requests/{payment_id}", tag = "payments",
    security(("session" = [])),
    params(("payment_id" = String, Path)),
    responses(
        (status = 200, body = PaymentRequestBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn read(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<PaymentRequestId>,
) -> ApiResult<ApiJson<PaymentRequestBody>> {
    let page = w.payment_request(&user.user_id, &id).await?;
    Ok(ApiJson(payment_request_body(&page, None)))
}

fn session_phone(user: &SessionUser) -> Result<&DeviceId, ApiError> {
    user.device_id.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::TerminalNotOfAccount,
            "use a session on the phone the payment request was sent to",
        )
    })
}

/// The phone reports the user's gesture (swipe, tap, raise); the payment
/// page (or scanner) opens with the payment response that follows.
#[utoipa::path(post, path = "/v1/payment-requests/{payment_id}/gestures", tag = "payments",
    security(("session" = [])),
    params(("payment_id" = String, Path)),
    request_body = ReportGesture,
    responses(
        (status = 200, body = PaymentRequestBody), (status = 401, body = ErrorBody),
        (status = 403, description = "terminal_not_of_account", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "gesture_not_expected (another phone, or no gesture awaited), payment_request_closed", body = ErrorBody),
        (status = 422, description = "payment_request_expired, invalid_request", body = ErrorBody)))]
async fn report_gesture(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<PaymentRequestId>,
    ApiJson(req): ApiJson<ReportGesture>,
) -> ApiResult<ApiJson<PaymentRequestBody>> {
    let page = w
        .report_gesture(
            &id,
            session_phone(&user)?,
            Some(&user.user_id),
            gesture(&req.gesture)?,
            GestureRoute::Direct,
        )
        .await?;
    Ok(ApiJson(payment_request_body(&page, None)))
}

/// Starts the phone's biometric approval (WebAuthn), bound to this payment's
/// id, order, amount and payee: an assertion for other data is refused.
#[utoipa::path(post, path = "/v1/payment-requests/{payment_id}/approval-challenges", tag = "payments",
    security(("session" = [])),
    params(("payment_id" = String, Path)),
    responses(
        (status = 201, body = CeremonyBody), (status = 401, body = ErrorBody),
        (status = 403, description = "terminal_not_of_account", body = ErrorBody),
        (status = 404, description = "no such request, or the phone has no credential", body = ErrorBody),
        (status = 409, description = "payment_request_closed", body = ErrorBody),
        (status = 422, description = "payment_request_expired", body = ErrorBody)))]
async fn approval_challenge(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<PaymentRequestId>,
) -> ApiResult<(StatusCode, ApiJson<CeremonyBody>)> {
    let c = w
        .start_payment_approval(&user.user_id, user.device_id.as_ref(), &id)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(ceremony_body(c)?)))
}

/// The user approves on the payment page with the payment password or the
/// biometric; the bound card is debited once (retries and concurrent
/// duplicates included), the order paid, the terminal and merchant told.
#[utoipa::path(post, path = "/v1/payment-requests/{payment_id}/approvals", tag = "payments",
    security(("session" = [])),
    params(("payment_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = ApprovePayment,
    responses(
        (status = 400, description = "idempotency_key_missing, idempotency_key_invalid", body = ErrorBody),
        (status = 200, body = PaymentRequestBody), (status = 401, body = ErrorBody),
        (status = 403, description = "payment_password_invalid, webauthn_rejected (e.g. approval for other data), terminal_not_of_account", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "payment_request_closed, order_not_payable, ceremony_used", body = ErrorBody),
        (status = 422, description = "payment_request_expired, order_expired, insufficient_funds, invalid_request", body = ErrorBody),
        (status = 429, description = "password_locked", body = ErrorBody),
        (status = 502, description = "the bank could not be reached; retry: it cannot debit twice", body = ErrorBody)))]
async fn approve(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<PaymentRequestId>,
    ApiJson(req): ApiJson<ApprovePayment>,
) -> ApiResult<ApiJson<PaymentRequestBody>> {
    let id = id.clone();
    let binding: BindingId = req
        .binding_id
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "no such binding"))?;
    let approval = match (req.payment_password, req.webauthn) {
        (Some(pin), None) => PaymentApproval::PaymentPassword(pin),
        (None, Some(a)) => PaymentApproval::Webauthn {
            ceremony: a
                .ceremony_id
                .parse()
                .map_err(|_| ApiError::new(ErrorCode::NotFound, "no such ceremony"))?,
            credential: Box::new(serde_json::from_value(a.credential).map_err(|_| {
                invalid("webauthn.credential: not a WebAuthn PublicKeyCredential in JSON form")
            })?),
        },
        _ => return Err(invalid("give exactly one of payment_password and webauthn")),
    };
    let page = w
        .approve_payment(
            &user.user_id,
            user.device_id.as_ref(),
            &id,
            &binding,
            approval,
        )
        .await?;
    Ok(ApiJson(payment_request_body(&page, None)))
}

/// The user declines on the phone; the terminal is told.
#[utoipa::path(post, path = "/v1/payment-requests/{payment_id}/decline", tag = "payments",
    security(("session" = [])),
    params(("payment_id" = String, Path)),
    responses(
        (status = 200, body = PaymentRequestBody), (status = 401, body = ErrorBody),
        (status = 403, description = "terminal_not_of_account", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "payment_request_closed", body = ErrorBody),
        (status = 422, description = "payment_request_expired", body = ErrorBody)))]
async fn decline(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<PaymentRequestId>,
) -> ApiResult<ApiJson<PaymentRequestBody>> {
    let page = w
        .decline_payment(&user.user_id, user.device_id.as_ref(), &id)
        .await?;
    Ok(ApiJson(payment_request_body(&page, None)))
}

/// A phone of the account scanned the QR code the terminal shows: the
/// payment page opens on it.
#[utoipa::path(post, path = "/v1/payment-scans", tag = "payments",
    security(("session" = [])),
    request_body = ScanPaymentCode,
    responses(
        (status = 200, body = PaymentRequestBody), (status = 401, body = ErrorBody),
        (status = 403, description = "terminal_not_of_account (not a phone of this account)", body = ErrorBody),
        (status = 404, description = "no such payment code", body = ErrorBody),
        (status = 409, description = "payment_request_closed", body = ErrorBody),
        (status = 422, description = "payment_request_expired", body = ErrorBody)))]
async fn scan(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiJson(req): ApiJson<ScanPaymentCode>,
) -> ApiResult<ApiJson<PaymentRequestBody>> {
    let page = w
        .scan_payment_code(&user.user_id, session_phone(&user)?, &req.code)
        .await?;
    Ok(ApiJson(payment_request_body(&page, None)))
}

/// The OS push relay relays a gesture made on a phone (signed partner call
/// from a registered relay).
#[utoipa::path(post, path = "/v1/relay/gestures", tag = "partner",
    security(("partner_signature" = [])),
    request_body = RelayedGesture,
    responses(
        (status = 200, body = PaymentRequestBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "gesture_not_expected (another phone, or no gesture awaited)", body = ErrorBody),
        (status = 422, description = "payment_request_expired, invalid_request", body = ErrorBody)))]
async fn relayed_gesture(
    State(w): State<Wallet>,
    ApiJson(req): ApiJson<RelayedGesture>,
) -> ApiResult<ApiJson<PaymentRequestBody>> {
    let phone: DeviceId = req.device_id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::GestureNotExpected,
            "this payment request was not sent to that phone",
        )
    })?;
    let page = w
        .report_gesture(
            &payment_id(&req.payment_id)?,
            &phone,
            None,
            gesture(&req.gesture)?,
            GestureRoute::Relay,
        )
        .await?;
    Ok(ApiJson(payment_request_body(&page, None)))
}

pub fn router(wallet: Wallet, idem: Arc<Idempotency>) -> OpenApiRouter {
    // Creating a request, and approving one (it moves money), take an Idempotency-Key.
    let creating = OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(approve))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency));
    OpenApiRouter::new()
        .routes(routes!(read))
        .routes(routes!(report_gesture))
        .routes(routes!(approval_challenge))
        .routes(routes!(decline))
        .routes(routes!(scan))
        .merge(creating)
        .layer(axum::middleware::from_fn_with_state(
            wallet.clone(),
            wallet_session,
        ))
        .with_state(wallet)
}

/// The relays' route, checked against the relays' keys only (a relay is
/// not a bank: it cannot call the banks' partner routes, nor they this).
pub fn relay_router(wallet: Wallet, relays: Arc<PartnerAuth>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(relayed_gesture))
        .layer(axum::middleware::from_fn_with_state(relays, partner_auth))
        .with_state(wallet)
}
