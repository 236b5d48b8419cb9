//! Security authentication in the wallet app (flow F2): at first use of a
//! bank-registered account, or on a new device. No session yet: the flow
//! is carried by its id, an OTP to the account's phone and the ID number's
//! last digits.

use axum::extract::State;
use axum::http::StatusCode;
use paybridge_api::wallet::{
    SecurityAuthBody, SecurityAuthIdentity, SecurityAuthOtp, SecurityAuthPasswords, SessionBody,
    StartSecurityAuth,
};
use paybridge_api::{rfc3339, ErrorBody};
use paybridge_domain::device::DeviceType;
use paybridge_domain::ids::SecurityAuthId;
use paybridge_domain::registration::DeviceEnvironment;
use paybridge_wallet::accounts::OpenedSession;
use paybridge_wallet::registration::{AuthDevice, SecurityAuthView};
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ClientIp, DeviceProofRequest};
use crate::routes::wallet_app::phone;
use paybridge_domain::ErrorCode;

fn body(v: SecurityAuthView, session: Option<OpenedSession>) -> SecurityAuthBody {
    SecurityAuthBody {
        id: v.id,
        device_id: v.device_id,
        conditions: v.conditions,
        state: v.state,
        passwords_needed: v.passwords_needed.iter().map(|p| (*p).to_owned()).collect(),
        otp: v.otp.map(super::wallet_app::otp_body),
        session: session.map(|s| SessionBody {
            session_id: s.id,
            token: s.token.expose().clone(),
            user_id: s.user_id,
            device_id: s.device_id.map(|d| d.to_string()),
            expires_at: rfc3339(s.expires_at),
        }),
    }
}

/// Starts security authentication: the device's environment is checked
/// (emulators, rooted devices, unsupported OS versions and flagged devices
/// are refused with a reason), a new device held pending, an OTP sent.
#[utoipa::path(post, path = "/v1/security-authentications", tag = "wallet",
    request_body = StartSecurityAuth,
    responses(
        (status = 201, body = SecurityAuthBody),
        (status = 401, description = "dpop_proof_invalid, use_dpop_nonce: the request must carry a proof by the device's key", body = ErrorBody),
        (status = 404, description = "no account has this phone", body = ErrorBody),
        (status = 409, description = "security_auth_not_required, step_up_unavailable", body = ErrorBody),
        (status = 422, description = "device_environment_refused, invalid_request", body = ErrorBody),
        (status = 429, description = "otp_rate_limited", body = ErrorBody)))]
async fn start(
    State(w): State<Wallet>,
    proof: DeviceProofRequest,
    ClientIp(client_ip): ClientIp,
    ApiJson(req): ApiJson<StartSecurityAuth>,
) -> ApiResult<(StatusCode, ApiJson<SecurityAuthBody>)> {
    let device = match (&req.device, &req.device_id) {
        (Some(d), None) => AuthDevice::New {
            device_type: d.device_type.parse::<DeviceType>()?,
            name: d.name.clone(),
            public_key: crate::routes::devices::device_jwk(&d.public_key),
        },
        (None, Some(id)) => AuthDevice::Existing(id.parse().map_err(|_| {
            ApiError::new(ErrorCode::NotFound, "no such active device on this account")
        })?),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "give either `device` (a new device) or `device_id` (a registered one)",
            ))
        }
    };
    let env = DeviceEnvironment {
        emulator: req.environment.emulator,
        rooted: req.environment.rooted,
        os: req.environment.os.clone(),
        os_version: req.environment.os_version.clone(),
        attributes: req.environment.attributes.clone(),
    };
    let v = w
        .start_security_auth(
            &phone(&req.phone)?,
            &device,
            &env,
            &proof.presented(),
            client_ip,
        )
        .await?;
    Ok((StatusCode::CREATED, ApiJson(body(v, None))))
}

/// Step 2: the code sent to the account's phone.
#[utoipa::path(post, path = "/v1/security-authentications/{auth_id}/otp", tag = "wallet",
    params(("auth_id" = String, Path)),
    request_body = SecurityAuthOtp,
    responses(
        (status = 200, body = SecurityAuthBody), (status = 404, body = ErrorBody),
        (status = 409, description = "security_auth_step, security_auth_closed", body = ErrorBody),
        (status = 422, description = "otp_invalid, otp_expired", body = ErrorBody),
        (status = 429, description = "otp_locked", body = ErrorBody)))]
async fn otp(
    State(w): State<Wallet>,
    ApiPath(id): ApiPath<SecurityAuthId>,
    ApiJson(req): ApiJson<SecurityAuthOtp>,
) -> ApiResult<ApiJson<SecurityAuthBody>> {
    Ok(ApiJson(body(
        w.security_auth_otp(&id, &req.code).await?,
        None,
    )))
}

/// Step 3: the ID number's last four characters (five wrong answers fail it).
#[utoipa::path(post, path = "/v1/security-authentications/{auth_id}/identity", tag = "wallet",
    params(("auth_id" = String, Path)),
    request_body = SecurityAuthIdentity,
    responses(
        (status = 200, body = SecurityAuthBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, description = "identity_digits_wrong", body = ErrorBody),
        (status = 429, description = "security_auth_locked", body = ErrorBody)))]
async fn identity(
    State(w): State<Wallet>,
    ApiPath(id): ApiPath<SecurityAuthId>,
    ApiJson(req): ApiJson<SecurityAuthIdentity>,
) -> ApiResult<ApiJson<SecurityAuthBody>> {
    Ok(ApiJson(body(
        w.security_auth_identity(&id, &req.id_number_last4).await?,
        None,
    )))
}

/// Step 4: the passwords the account lacks. Passed: the account is active,
/// the device trusted, and a session opened on it.
#[utoipa::path(post, path = "/v1/security-authentications/{auth_id}/passwords", tag = "wallet",
    params(("auth_id" = String, Path)),
    request_body = SecurityAuthPasswords,
    responses(
        (status = 200, body = SecurityAuthBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, description = "password_too_weak, invalid_request", body = ErrorBody)))]
async fn passwords(
    State(w): State<Wallet>,
    ApiPath(id): ApiPath<SecurityAuthId>,
    ApiJson(req): ApiJson<SecurityAuthPasswords>,
) -> ApiResult<ApiJson<SecurityAuthBody>> {
    let (v, session) = w
        .security_auth_passwords(
            &id,
            req.login_password.as_deref(),
            req.payment_password.as_deref(),
        )
        .await?;
    Ok(ApiJson(body(v, Some(session))))
}

pub fn router(wallet: Wallet) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(otp))
        .routes(routes!(identity))
        .routes(routes!(passwords))
        .with_state(wallet)
}
