//! The signed partner calls of flow F1: the bank asks the wallet for a
//! binding address or sends a binding operation request; the wallet asks the
//! bank to open a binding's quick-pay agreement.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use paybridge_api::partner::{
    AccountLookup, AccountLookupAnswer, AccountRegistered, AccountRegistration, ActivateBinding,
    AgreementIssued, BindingAddress, BindingAgreement, BindingOffer, BindingRequestAnswer,
    BindingState, DebitAnswer, DebitRequest, DebitStatus, DebitStatusQuery, RefundAnswer,
    RefundRequest,
};
use paybridge_api::{rfc3339, ErrorBody};
use paybridge_domain::identity::IdNumber;
use paybridge_domain::ids::BindingId;
use paybridge_domain::ErrorCode;
use paybridge_issuer::Issuer;
use paybridge_wallet::bindings::CheckedOffer;
use paybridge_wallet::Wallet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::partner_auth::{partner_auth, PartnerAuth, VerifiedPartner};

/// A bank asks for a binding address to show as a QR code (single use, five minutes).
#[utoipa::path(post, path = "/v1/partner/binding-addresses", tag = "partner",
    security(("partner_signature" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = BindingOffer,
    responses(
        (status = 201, body = BindingAddress),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn binding_address(
    State(w): State<Wallet>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiJson(offer): ApiJson<BindingOffer>,
) -> ApiResult<(StatusCode, ApiJson<BindingAddress>)> {
    let offer = CheckedOffer::check(&offer)?;
    let address = w.create_binding_address(&caller.0, &offer).await?;
    let (qr_svg, qr_png_base64) = paybridge_wallet::qr::render(&address.url).map_err(|e| {
        tracing::error!(error = %e, "QR rendering failed");
        ApiError::new(
            ErrorCode::InternalError,
            "internal error; it has been logged",
        )
    })?;
    Ok((
        StatusCode::CREATED,
        ApiJson(BindingAddress {
            binding_id: address.binding_id.to_string(),
            url: address.url,
            qr_svg,
            qr_png_base64,
            expires_at: rfc3339(address.expires_at),
        }),
    ))
}

/// A bank's binding operation request: a binding message is pushed to the
/// wallet account with this reserved phone and identity, if there is one.
#[utoipa::path(post, path = "/v1/partner/binding-requests", tag = "partner",
    security(("partner_signature" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = BindingOffer,
    responses(
        (status = 200, body = BindingRequestAnswer),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn binding_request(
    State(w): State<Wallet>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiJson(offer): ApiJson<BindingOffer>,
) -> ApiResult<ApiJson<BindingRequestAnswer>> {
    let offer = CheckedOffer::check(&offer)?;
    Ok(ApiJson(match w.offer_binding(&caller.0, &offer).await? {
        Some(b) => BindingRequestAnswer {
            status: "pushed".into(),
            binding_id: Some(b.id.to_string()),
            expires_at: Some(rfc3339(b.status.expires_at)),
        },
        None => BindingRequestAnswer {
            status: "no_wallet_user".into(),
            binding_id: None,
            expires_at: None,
        },
    }))
}

/// The wallet reports that a binding's OTP passed: the bank opens (or
/// returns) the binding's quick-pay agreement.
#[utoipa::path(post, path = "/v1/partner/bindings/activations", tag = "partner",
    security(("partner_signature" = [])),
    params(("Idempotency-Key" = String, Header, description = "`activate:<binding id>`")),
    request_body = ActivateBinding,
    responses(
        (status = 200, body = AgreementIssued),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn activate_binding(
    State(issuer): State<Issuer>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiJson(req): ApiJson<ActivateBinding>,
) -> ApiResult<ApiJson<AgreementIssued>> {
    Ok(ApiJson(issuer.activate_binding(&caller.0, &req).await?))
}

/// Flow F2: does the bank's customer have a wallet account (by reserved
/// phone or identity)? The answer says only that.
#[utoipa::path(post, path = "/v1/partner/account-lookups", tag = "partner",
    security(("partner_signature" = [])),
    request_body = AccountLookup,
    responses((status = 200, body = AccountLookupAnswer), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn account_lookup(
    State(w): State<Wallet>,
    ApiJson(req): ApiJson<AccountLookup>,
) -> ApiResult<ApiJson<AccountLookupAnswer>> {
    let phone = crate::routes::wallet_app::phone(&req.phone)?;
    let id = IdNumber::parse(&req.holder_id_number)?;
    Ok(ApiJson(AccountLookupAnswer {
        exists: w.account_exists(&phone, &id).await?,
    }))
}

/// Flow F2: the bank registers a restricted wallet account for its customer
/// with the identity it verified, and the card's binding (waiting for the
/// bank's agreement). Idempotent on the bank's `reference`.
#[utoipa::path(post, path = "/v1/partner/account-registrations", tag = "partner",
    security(("partner_signature" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = AccountRegistration,
    responses(
        (status = 201, body = AccountRegistered),
        (status = 401, body = ErrorBody),
        (status = 409, description = "account_exists", body = ErrorBody),
        (status = 422, description = "invalid data, or the reference reused for another registration", body = ErrorBody)))]
async fn account_registration(
    State(w): State<Wallet>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiJson(req): ApiJson<AccountRegistration>,
) -> ApiResult<(StatusCode, ApiJson<AccountRegistered>)> {
    let offer = CheckedOffer::check(&req.customer)?;
    let r = w
        .register_for_partner(&caller.0, &req.reference, &offer)
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(AccountRegistered {
            account_id: r.user_id.to_string(),
            binding_id: r.binding_id,
            status: "restricted".into(),
            created: r.created,
        }),
    ))
}

/// Flow F2: the bank opened the agreement of a registration's binding: it is
/// active at once.
#[utoipa::path(post, path = "/v1/partner/bindings/{binding_id}/agreement", tag = "partner",
    security(("partner_signature" = [])),
    params(("binding_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = BindingAgreement,
    responses(
        (status = 200, body = BindingState), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn binding_agreement(
    State(w): State<Wallet>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiPath(id): ApiPath<BindingId>,
    ApiJson(req): ApiJson<BindingAgreement>,
) -> ApiResult<ApiJson<BindingState>> {
    if req.agreement_number.is_empty() || req.agreement_number.len() > 64 {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "agreement_number: 1 to 64 characters",
        ));
    }
    let b = w
        .activate_registered_binding(&caller.0, &id, &req.agreement_number)
        .await?;
    Ok(ApiJson(BindingState {
        binding_id: b.id.to_string(),
        state: b.state.as_str().to_owned(),
    }))
}

pub fn wallet_router(
    wallet: Wallet,
    auth: Arc<PartnerAuth>,
    idem: Arc<Idempotency>,
) -> OpenApiRouter {
    // A look-up creates nothing: no Idempotency-Key.
    let lookups = OpenApiRouter::new().routes(routes!(account_lookup)).layer(
        axum::middleware::from_fn_with_state(auth.clone(), partner_auth),
    );
    OpenApiRouter::new()
        .routes(routes!(binding_address))
        .routes(routes!(binding_request))
        .routes(routes!(account_registration))
        .routes(routes!(binding_agreement))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency))
        .layer(axum::middleware::from_fn_with_state(auth, partner_auth))
        .merge(lookups)
        .with_state(wallet)
}

/// The wallet debits a bound card by its quick-pay agreement (idempotent
/// on `payment_id`: a retry never debits twice).
#[utoipa::path(post, path = "/v1/partner/debits", tag = "partner",
    security(("partner_signature" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = DebitRequest,
    responses(
        (status = 200, body = DebitAnswer), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "transfer_id_reused (the payment id with another amount)", body = ErrorBody),
        (status = 422, description = "insufficient_funds, invalid_request", body = ErrorBody)))]
async fn debit(
    State(issuer): State<Issuer>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiJson(req): ApiJson<DebitRequest>,
) -> ApiResult<ApiJson<DebitAnswer>> {
    Ok(ApiJson(issuer.debit_by_agreement(&caller.0, &req).await?))
}

/// The wallet asks what became of its debit `payment_id` (its answer was
/// lost: a timeout, a crash). Reading it changes nothing.
#[utoipa::path(get, path = "/v1/partner/debits", tag = "partner",
    security(("partner_signature" = [])),
    params(DebitStatusQuery),
    responses(
        (status = 200, body = DebitStatus), (status = 401, body = ErrorBody),
        (status = 422, description = "invalid_request", body = ErrorBody)))]
async fn debit_status(
    State(issuer): State<Issuer>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiQuery(q): ApiQuery<DebitStatusQuery>,
) -> ApiResult<ApiJson<DebitStatus>> {
    Ok(ApiJson(
        issuer.debit_status(&caller.0, &q.payment_id).await?,
    ))
}

/// The wallet returns (part of) a payment to the card it was debited from
/// (idempotent on `refund_id`; never more than was debited, in all).
#[utoipa::path(post, path = "/v1/partner/refunds", tag = "partner",
    security(("partner_signature" = [])),
    params(("Idempotency-Key" = String, Header, description = "Reuse it to retry")),
    request_body = RefundRequest,
    responses(
        (status = 200, body = RefundAnswer),
        (status = 401, body = ErrorBody), (status = 404, description = "no such payment", body = ErrorBody),
        (status = 422, description = "refund_exceeds_payment, invalid_request", body = ErrorBody)))]
async fn refund(
    State(issuer): State<Issuer>,
    Authenticated(caller): Authenticated<VerifiedPartner>,
    ApiJson(req): ApiJson<RefundRequest>,
) -> ApiResult<ApiJson<RefundAnswer>> {
    Ok(ApiJson(issuer.refund_payment(&caller.0, &req).await?))
}

pub fn issuer_router(
    issuer: Issuer,
    auth: Arc<PartnerAuth>,
    idem: Arc<Idempotency>,
) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(activate_binding))
        .routes(routes!(debit, debit_status))
        .routes(routes!(refund))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency))
        .layer(axum::middleware::from_fn_with_state(auth, partner_auth))
        .with_state(issuer)
}
