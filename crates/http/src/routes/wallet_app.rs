//! The wallet app's account API: registration, login sessions, the payment
//! password, the real-name identity.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use paybridge_api::rfc3339;
use paybridge_api::wallet::{
    AccountBody, ConfirmRegistration, IdentityBody, Login, OtpBody, RegisterAccount,
    RegistrationStarted, SessionBody, SetIdentity, SetPaymentPassword, Verified,
    VerifyPaymentPassword,
};
use paybridge_api::ErrorBody;
use paybridge_domain::identity::{IdNumber, PersonName};
use paybridge_domain::ids::{DeviceId, OtpId};
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::ErrorCode;
use paybridge_wallet::accounts::{AccountView, IdentityView, SessionUser};
use paybridge_wallet::otp::IssuedOtp;
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Authenticated, ClientIp, DeviceProofRequest};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::session_auth::wallet_session;

pub(crate) fn phone(text: &str) -> Result<PhoneNumber, ApiError> {
    text.parse()
        .map_err(|e: paybridge_domain::phone::InvalidPhoneNumber| {
            ApiError::new(ErrorCode::InvalidRequest, format!("phone: {e}"))
        })
}

fn identity_body(i: IdentityView) -> IdentityBody {
    IdentityBody {
        name_masked: i.name_masked,
        id_number_masked: i.id_number_masked,
        verified_at: rfc3339(i.verified_at),
        verified: i.verified,
    }
}

fn account_body(a: AccountView) -> AccountBody {
    AccountBody {
        id: a.id,
        phone_masked: a.phone_masked,
        status: a.status,
        has_payment_password: a.has_payment_password,
        registered_by: a.registered_by,
        identity: a.identity.map(identity_body),
        created_at: rfc3339(a.created_at),
    }
}

/// What the app may see of an OTP sent.
pub(crate) fn otp_body(otp: IssuedOtp) -> OtpBody {
    OtpBody {
        id: otp.id,
        phone_masked: otp.phone_masked,
        expires_at: rfc3339(otp.expires_at),
        resend_after: rfc3339(otp.resend_after),
    }
}

/// Starts opening a wallet account: a code goes to the phone. Nothing is
/// created until it comes back; known and unknown phones get the same answer.
#[utoipa::path(post, path = "/v1/accounts", tag = "wallet",
    params(("Idempotency-Key" = String, Header, description = "Unique per registration; reuse it to retry")),
    request_body = RegisterAccount,
    responses(
        (status = 202, body = RegistrationStarted),
        (status = 422, description = "invalid_request", body = ErrorBody),
        (status = 429, description = "otp_rate_limited", body = ErrorBody)))]
async fn register(
    State(w): State<Wallet>,
    ClientIp(client_ip): ClientIp,
    ApiJson(req): ApiJson<RegisterAccount>,
) -> ApiResult<(StatusCode, ApiJson<RegistrationStarted>)> {
    let otp = w.start_registration(&phone(&req.phone)?, client_ip).await?;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(RegistrationStarted { otp: otp_body(otp) }),
    ))
}

/// Opens the account: the code sent to the phone, and a login password.
#[utoipa::path(post, path = "/v1/accounts/confirmation", tag = "wallet",
    params(("Idempotency-Key" = String, Header, description = "Unique per registration; reuse it to retry")),
    request_body = ConfirmRegistration,
    responses(
        (status = 201, body = AccountBody),
        (status = 404, description = "not_found: no such registration code", body = ErrorBody),
        (status = 409, description = "phone_already_registered, otp_already_used", body = ErrorBody),
        (status = 422, description = "invalid_request, password_too_weak, otp_invalid, otp_expired", body = ErrorBody),
        (status = 429, description = "otp_locked", body = ErrorBody)))]
async fn confirm_registration(
    State(w): State<Wallet>,
    ApiJson(req): ApiJson<ConfirmRegistration>,
) -> ApiResult<(StatusCode, ApiJson<AccountBody>)> {
    let otp: OtpId = req
        .otp_id
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "no such OTP challenge"))?;
    let account = w.register_account(&otp, &req.code, &req.password).await?;
    Ok((StatusCode::CREATED, ApiJson(account_body(account))))
}

/// Logs in: a session token for `Authorization: Bearer`. Five wrong
/// passwords lock the phone's logins for 15 minutes; unknown phones answer
/// the same way.
#[utoipa::path(post, path = "/v1/sessions", tag = "wallet",
    request_body = Login,
    responses(
        (status = 201, body = SessionBody),
        (status = 401, description = "credentials_invalid; naming a device: dpop_proof_invalid, use_dpop_nonce", body = ErrorBody),
        (status = 403, description = "security_auth_required: the device is new for the account", body = ErrorBody),
        (status = 404, description = "the device is not an active device of the account", body = ErrorBody),
        (status = 429, description = "password_locked", body = ErrorBody)))]
async fn login(
    State(w): State<Wallet>,
    proof: DeviceProofRequest,
    ApiJson(req): ApiJson<Login>,
) -> ApiResult<(StatusCode, ApiJson<SessionBody>)> {
    let device = match &req.device_id {
        None => None,
        Some(d) => Some(d.parse::<DeviceId>().map_err(|_| {
            ApiError::new(ErrorCode::NotFound, "no such active device on this account")
        })?),
    };
    let s = w
        .login(
            &phone(&req.phone)?,
            &req.password,
            device.as_ref(),
            &proof.presented(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(SessionBody {
            session_id: s.id,
            token: s.token.expose().clone(),
            user_id: s.user_id,
            device_id: s.device_id.map(|d| d.to_string()),
            expires_at: rfc3339(s.expires_at),
        }),
    ))
}

/// Ends the current session.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "wallet",
    security(("session" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
) -> ApiResult<StatusCode> {
    w.logout(&user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The logged-in account.
#[utoipa::path(get, path = "/v1/me", tag = "wallet",
    security(("session" = [])),
    responses((status = 200, body = AccountBody), (status = 401, body = ErrorBody)))]
async fn me(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
) -> ApiResult<ApiJson<AccountBody>> {
    Ok(ApiJson(account_body(w.account(&user.user_id).await?)))
}

/// Sets (or, with the current one, changes) the six-digit payment password.
#[utoipa::path(post, path = "/v1/me/payment-password", tag = "wallet",
    security(("session" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = SetPaymentPassword,
    responses(
        (status = 400, description = "idempotency_key_missing, idempotency_key_invalid", body = ErrorBody),
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, description = "payment_password_invalid (the current one); security_auth_required (changing it needs a session on a trusted device)", body = ErrorBody),
        (status = 422, description = "password_too_weak", body = ErrorBody),
        (status = 429, description = "password_locked", body = ErrorBody)))]
async fn set_payment_password(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiJson(req): ApiJson<SetPaymentPassword>,
) -> ApiResult<StatusCode> {
    w.set_payment_password(
        &user.user_id,
        user.device_id.as_ref(),
        req.current_password.as_deref(),
        &req.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the payment password. Five wrong tries lock it for 30 minutes.
#[utoipa::path(post, path = "/v1/me/payment-password/verify", tag = "wallet",
    security(("session" = [])),
    request_body = VerifyPaymentPassword,
    responses(
        (status = 200, body = Verified),
        (status = 401, body = ErrorBody),
        (status = 403, description = "payment_password_invalid", body = ErrorBody),
        (status = 409, description = "payment_password_not_set", body = ErrorBody),
        (status = 429, description = "password_locked", body = ErrorBody)))]
async fn verify_payment_password(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiJson(req): ApiJson<VerifyPaymentPassword>,
) -> ApiResult<ApiJson<Verified>> {
    w.verify_payment_password(&user.user_id, &req.password)
        .await?;
    Ok(ApiJson(Verified { verified: true }))
}

/// Records the account's real-name identity (once; one account per person).
#[utoipa::path(post, path = "/v1/me/identity", tag = "wallet",
    security(("session" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = SetIdentity,
    responses(
        (status = 201, body = IdentityBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "identity_already_verified, identity_in_use", body = ErrorBody),
        (status = 422, description = "identity_invalid", body = ErrorBody)))]
async fn set_identity(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiJson(req): ApiJson<SetIdentity>,
) -> ApiResult<(StatusCode, ApiJson<IdentityBody>)> {
    let name = PersonName::parse(&req.name)?;
    let number = IdNumber::parse(&req.id_number)?;
    let identity = w.set_identity(&user.user_id, &name, &number).await?;
    Ok((StatusCode::CREATED, ApiJson(identity_body(identity))))
}

pub fn router(wallet: Wallet, idem: Arc<Idempotency>) -> OpenApiRouter {
    let creating = OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(confirm_registration))
        .layer(axum::middleware::from_fn_with_state(
            idem.clone(),
            idempotency,
        ));
    let public = OpenApiRouter::new().routes(routes!(login));
    // Setting an identity or a payment password takes an Idempotency-Key.
    let authed_creating = OpenApiRouter::new()
        .routes(routes!(set_identity))
        .routes(routes!(set_payment_password))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency));
    let authed = OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(verify_payment_password))
        .merge(authed_creating)
        .layer(axum::middleware::from_fn_with_state(
            wallet.clone(),
            wallet_session,
        ));
    creating.merge(public).merge(authed).with_state(wallet)
}
