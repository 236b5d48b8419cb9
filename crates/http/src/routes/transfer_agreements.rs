//! Flow F3's transfer payment agreements over HTTP: the phone lists them,
//! reads one, changes its terms (with the payment password), suspends,
//! resumes and revokes it; the first device reads its own agreement's
//! public part and unpairs itself. Also the wire forms of an agreement's
//! terms, shared with the pairing routes.

use axum::extract::State;
use paybridge_api::delegated::{
    AgreementCard, AgreementDevice, AgreementLimitsBody, AgreementUsageBody, ApprovalBody,
    ChangeTransferAgreement, DeviceAgreementBody, TransferAgreementBody, TransferAgreementList,
    UsageRecordBody,
};
use paybridge_api::wallet::{MoneyBody, PageQuery};
use paybridge_api::{rfc3339, ErrorBody};
use paybridge_domain::ids::TransferAgreementId;
use paybridge_domain::transfer_agreement::{AgreementLimits, ApprovalPolicy};
use paybridge_domain::{Currency, ErrorCode, Money};
use paybridge_wallet::accounts::SessionUser;
use paybridge_wallet::transfer_agreements::TermsChange;
use paybridge_wallet::views::{AgreementView, DeviceAgreementView};
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};
use crate::middleware::session_auth::wallet_session;

fn invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

fn money(currency: Currency, minor: i64) -> MoneyBody {
    Money::new(minor, currency).into()
}

/// The limits a body names, all in one currency.
pub(crate) fn limits_of(b: &AgreementLimitsBody) -> ApiResult<AgreementLimits> {
    let currency: Currency = b
        .per_payment
        .currency
        .parse()
        .map_err(|_| invalid("limits.per_payment.currency: an ISO 4217 code we support"))?;
    if b.per_day.currency != b.per_payment.currency
        || b.per_month.currency != b.per_payment.currency
    {
        return Err(invalid("limits: every limit in the same currency"));
    }
    Ok(AgreementLimits {
        currency,
        per_payment: b.per_payment.amount,
        per_day: b.per_day.amount,
        per_month: b.per_month.amount,
    })
}

/// The approval policy a body names; a direct ceiling in the limits' currency.
pub(crate) fn policy_of(b: &ApprovalBody, currency: Currency) -> ApiResult<ApprovalPolicy> {
    let ceiling = match &b.direct_ceiling {
        Some(m) if m.currency != currency.code() => {
            return Err(invalid(
                "approval.direct_ceiling: in the currency of the limits",
            ))
        }
        Some(m) => Some(m.amount),
        None => None,
    };
    Ok(ApprovalPolicy::from_parts(b.mode, ceiling)?)
}

pub(crate) fn limits_body(l: &AgreementLimits) -> AgreementLimitsBody {
    AgreementLimitsBody {
        per_payment: money(l.currency, l.per_payment),
        per_day: money(l.currency, l.per_day),
        per_month: money(l.currency, l.per_month),
    }
}

pub(crate) fn approval_body(p: ApprovalPolicy, currency: Currency) -> ApprovalBody {
    ApprovalBody {
        mode: p.mode(),
        direct_ceiling: p.ceiling().map(|c| money(currency, c)),
    }
}

pub(crate) fn agreement_body(v: AgreementView) -> TransferAgreementBody {
    let c = v.limits.currency;
    TransferAgreementBody {
        id: v.id,
        state: v.state,
        device: AgreementDevice {
            device_id: v.device.device_id,
            name: v.device.name,
            device_type: v.device.device_type,
            model: v.device.model,
            vendor: v.device.vendor,
        },
        card: AgreementCard {
            binding_id: v.binding_id,
            bank_name: v.bank_name,
            last4: v.last4,
        },
        phone_id: v.phone_id,
        limits: limits_body(&v.limits),
        categories: v.categories,
        approval: approval_body(v.policy, c),
        usage: AgreementUsageBody {
            spent_today: money(c, v.usage.spent_day),
            spent_this_month: money(c, v.usage.spent_month),
            left_today: money(c, v.left_today),
            left_this_month: money(c, v.left_this_month),
            last_counter: v.usage.last_counter,
            recent: v
                .recent
                .into_iter()
                .map(|r| UsageRecordBody {
                    transfer_payment_id: r.transfer_payment_id,
                    category: r.category,
                    counter: r.counter,
                    amount: r.amount.into(),
                    at: rfc3339(r.at),
                })
                .collect(),
        },
        created_at: rfc3339(v.created_at),
        updated_at: rfc3339(v.updated_at),
    }
}

pub(crate) fn device_agreement_body(v: DeviceAgreementView) -> DeviceAgreementBody {
    let c = v.limits.currency;
    DeviceAgreementBody {
        id: v.id,
        state: v.state,
        limits: limits_body(&v.limits),
        categories: v.categories,
        approval: approval_body(v.policy, c),
        left_today: money(c, v.left_today),
        left_this_month: money(c, v.left_this_month),
        last_counter: v.last_counter,
    }
}

/// The account's agreements, newest first, a page at a time (on its phone).
#[utoipa::path(get, path = "/v1/transfer-agreements", tag = "delegated",
    security(("session" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = TransferAgreementList), (status = 401, body = ErrorBody),
        (status = 403, description = "device_proof_required: a session on the account's phone", body = ErrorBody),
        (status = 422, description = "invalid_request (a limit or cursor that is not one)", body = ErrorBody)))]
async fn list_transfer_agreements(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<TransferAgreementList>> {
    let after = super::page_cursor(q.after.as_deref(), "transfer payment agreement")?;
    let (views, next) = w
        .transfer_agreements(&user, q.limit, after.as_ref())
        .await?;
    Ok(ApiJson(TransferAgreementList {
        agreements: views.into_iter().map(agreement_body).collect(),
        next,
    }))
}

/// One agreement of the account: the device, the card, the terms, and
/// the usage so far.
#[utoipa::path(get, path = "/v1/transfer-agreements/{agreement_id}", tag = "delegated",
    security(("session" = [])),
    params(("agreement_id" = String, Path)),
    responses(
        (status = 200, body = TransferAgreementBody), (status = 401, body = ErrorBody),
        (status = 403, description = "device_proof_required", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn read_transfer_agreement(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<TransferAgreementId>,
) -> ApiResult<ApiJson<TransferAgreementBody>> {
    Ok(ApiJson(agreement_body(
        w.transfer_agreement(&user, &id).await?,
    )))
}

/// Changes the limits, categories or approval policy: a sensitive
/// operation (a trusted phone and the payment password).
#[utoipa::path(patch, path = "/v1/transfer-agreements/{agreement_id}", tag = "delegated",
    security(("session" = [])),
    params(("agreement_id" = String, Path)),
    request_body = ChangeTransferAgreement,
    responses(
        (status = 200, body = TransferAgreementBody), (status = 401, body = ErrorBody),
        (status = 403, description = "payment_password_invalid, security_auth_required, device_proof_required", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "agreement_inactive (revoked)", body = ErrorBody),
        (status = 422, description = "invalid_request (limits that do not make sense together)", body = ErrorBody),
        (status = 429, description = "password_locked", body = ErrorBody)))]
async fn change_transfer_agreement(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<TransferAgreementId>,
    ApiJson(req): ApiJson<ChangeTransferAgreement>,
) -> ApiResult<ApiJson<TransferAgreementBody>> {
    let limits = req.limits.as_ref().map(limits_of).transpose()?;
    let approval = req
        .approval
        .as_ref()
        .map(|a| {
            let ceiling = a
                .direct_ceiling
                .as_ref()
                .map(|m| {
                    let currency: Currency = m.currency.parse().map_err(|_| {
                        invalid("approval.direct_ceiling.currency: an ISO 4217 code we support")
                    })?;
                    Ok::<_, ApiError>(Money::new(m.amount, currency))
                })
                .transpose()?;
            Ok::<_, ApiError>((a.mode, ceiling))
        })
        .transpose()?;
    let change = TermsChange {
        limits,
        categories: req.categories,
        approval,
    };
    let v = w
        .change_transfer_agreement(&user, &id, change, &req.payment_password)
        .await?;
    Ok(ApiJson(agreement_body(v)))
}

/// Suspends an agreement: the device's pending payments stop, and it may
/// not pay until resumed.
#[utoipa::path(post, path = "/v1/transfer-agreements/{agreement_id}/suspend", tag = "delegated",
    security(("session" = [])),
    params(("agreement_id" = String, Path)),
    responses(
        (status = 200, body = TransferAgreementBody), (status = 401, body = ErrorBody),
        (status = 403, description = "security_auth_required, device_proof_required", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "agreement_inactive (not active)", body = ErrorBody)))]
async fn suspend_transfer_agreement(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<TransferAgreementId>,
) -> ApiResult<ApiJson<TransferAgreementBody>> {
    Ok(ApiJson(agreement_body(
        w.suspend_transfer_agreement(&user, &id).await?,
    )))
}

/// Resumes a suspended agreement.
#[utoipa::path(post, path = "/v1/transfer-agreements/{agreement_id}/resume", tag = "delegated",
    security(("session" = [])),
    params(("agreement_id" = String, Path)),
    responses(
        (status = 200, body = TransferAgreementBody), (status = 401, body = ErrorBody),
        (status = 403, description = "security_auth_required, device_proof_required", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "agreement_inactive (not suspended)", body = ErrorBody)))]
async fn resume_transfer_agreement(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<TransferAgreementId>,
) -> ApiResult<ApiJson<TransferAgreementBody>> {
    Ok(ApiJson(agreement_body(
        w.resume_transfer_agreement(&user, &id).await?,
    )))
}

/// Revokes an agreement: its pending payments stop and its first device
/// is revoked (its session ends). A lost device is revoked in this one call.
#[utoipa::path(post, path = "/v1/transfer-agreements/{agreement_id}/revoke", tag = "delegated",
    security(("session" = [])),
    params(("agreement_id" = String, Path)),
    responses(
        (status = 200, body = TransferAgreementBody), (status = 401, body = ErrorBody),
        (status = 403, description = "security_auth_required, device_proof_required", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn revoke_transfer_agreement(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
    ApiPath(id): ApiPath<TransferAgreementId>,
) -> ApiResult<ApiJson<TransferAgreementBody>> {
    Ok(ApiJson(agreement_body(
        w.revoke_transfer_agreement(&user, &id).await?,
    )))
}

/// The first device reads its own agreement's public part: its limits and
/// what is left of them today and this month.
#[utoipa::path(get, path = "/v1/device-agreement", tag = "delegated",
    security(("session" = [])),
    responses(
        (status = 200, body = DeviceAgreementBody), (status = 401, body = ErrorBody),
        (status = 403, description = "device_proof_required: the first device's own session", body = ErrorBody),
        (status = 404, description = "no_agreement", body = ErrorBody)))]
async fn read_device_agreement(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
) -> ApiResult<ApiJson<DeviceAgreementBody>> {
    Ok(ApiJson(device_agreement_body(
        w.device_transfer_agreement(&user).await?,
    )))
}

/// The first device unpairs itself: its agreement is revoked, and the
/// device with it (this session ends).
#[utoipa::path(post, path = "/v1/device-agreement/unpair", tag = "delegated",
    security(("session" = [])),
    responses(
        (status = 200, body = DeviceAgreementBody), (status = 401, body = ErrorBody),
        (status = 403, description = "device_proof_required", body = ErrorBody),
        (status = 404, description = "no_agreement", body = ErrorBody)))]
async fn unpair_device(
    State(w): State<Wallet>,
    Authenticated(user): Authenticated<SessionUser>,
) -> ApiResult<ApiJson<DeviceAgreementBody>> {
    Ok(ApiJson(device_agreement_body(
        w.unpair_device(&user).await?,
    )))
}

pub fn router(wallet: Wallet) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_transfer_agreements))
        .routes(routes!(read_transfer_agreement, change_transfer_agreement))
        .routes(routes!(suspend_transfer_agreement))
        .routes(routes!(resume_transfer_agreement))
        .routes(routes!(revoke_transfer_agreement))
        .routes(routes!(read_device_agreement))
        .routes(routes!(unpair_device))
        .layer(axum::middleware::from_fn_with_state(
            wallet.clone(),
            wallet_session,
        ))
        .with_state(wallet)
}
