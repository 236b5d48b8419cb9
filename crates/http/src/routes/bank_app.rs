//! The bank app's API, served by an issuer (under `/bank`): a customer logs
//! in with their sandbox credentials and sees their own cards, masked.

use axum::extract::State;
use axum::http::StatusCode;
use paybridge_api::bank::{
    BankBindingBody, BankBindingList, BankLogin, BankSessionBody, BankTokenBody, BankTokenList,
    CardBody, CardList, CustomerBody, StartWalletBinding, WalletBindingStarted,
    WalletRegistrationStarted,
};
use paybridge_api::rfc3339;
use paybridge_api::{ErrorBody, PageQuery};
use paybridge_domain::ids::{CardId, CardTokenId, QuickPayAgreementId};
use paybridge_domain::ErrorCode;
use paybridge_issuer::bindings::{BindingMode, BindingStart, RegistrationStart};
use paybridge_issuer::customers::{BankSessionCustomer, CardView, CustomerView};
use paybridge_issuer::virtual_cards::{BankTokenAction, TokenView};
use paybridge_issuer::Issuer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};
use crate::middleware::idempotency::{idempotency, Idempotency};
use crate::middleware::session_auth::bank_session;
use crate::routes::page_cursor;
use std::sync::Arc;

fn customer_body(c: CustomerView) -> CustomerBody {
    CustomerBody {
        id: c.id.to_string(),
        name_masked: c.name_masked,
        phone_masked: c.phone_masked,
    }
}

fn card_body(c: CardView) -> CardBody {
    CardBody {
        id: c.id.to_string(),
        bank_name: c.bank_name,
        card_type: c.card_type,
        last4: c.last4,
        masked: c.masked,
        expiry: c.expiry,
        status: c.status,
        balance: c.balance.into(),
        available: c.available.into(),
    }
}

/// Logs a customer in to the bank app. Five wrong passwords lock the login
/// name for 15 minutes; unknown names answer the same way.
#[utoipa::path(post, path = "/v1/app/sessions", tag = "bank app",
    request_body = BankLogin,
    responses(
        (status = 201, body = BankSessionBody),
        (status = 401, description = "credentials_invalid", body = ErrorBody),
        (status = 429, description = "password_locked", body = ErrorBody)))]
async fn login(
    State(issuer): State<Issuer>,
    ApiJson(req): ApiJson<BankLogin>,
) -> ApiResult<(StatusCode, ApiJson<BankSessionBody>)> {
    let s = issuer.bank_login(&req.username, &req.password).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(BankSessionBody {
            session_id: s.id.to_string(),
            token: s.token.expose().clone(),
            customer: customer_body(s.customer),
            expires_at: rfc3339(s.expires_at),
        }),
    ))
}

/// Ends the current bank app session.
#[utoipa::path(delete, path = "/v1/app/sessions/current", tag = "bank app",
    security(("session" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
) -> ApiResult<StatusCode> {
    issuer.bank_logout(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The logged-in customer, masked.
#[utoipa::path(get, path = "/v1/app/me", tag = "bank app",
    security(("session" = [])),
    responses((status = 200, body = CustomerBody), (status = 401, body = ErrorBody)))]
async fn me(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
) -> ApiResult<ApiJson<CustomerBody>> {
    Ok(ApiJson(customer_body(
        issuer.customer_view(&c.customer_id).await?,
    )))
}

/// The customer's cards (last four digits, balances), oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/app/cards", tag = "bank app",
    security(("session" = [])),
    params(PageQuery),
    responses((status = 200, body = CardList), (status = 401, body = ErrorBody),
        (status = 422, description = "invalid_request: limit out of 1 to 100, or an unknown cursor", body = ErrorBody)))]
async fn cards(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<CardList>> {
    let after: Option<CardId> = page_cursor(page.after.as_deref(), "a card of this customer")?;
    let (cards, next) = issuer
        .customer_cards(&c.customer_id, page.limit, after.as_ref())
        .await?;
    Ok(ApiJson(CardList {
        cards: cards.into_iter().map(card_body).collect(),
        next: next.map(|c| c.to_string()),
    }))
}

/// One of the customer's cards (another customer's card is 404).
#[utoipa::path(get, path = "/v1/app/cards/{card_id}", tag = "bank app",
    security(("session" = [])),
    params(("card_id" = String, Path)),
    responses((status = 200, body = CardBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn card(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
    ApiPath(id): ApiPath<CardId>,
) -> ApiResult<ApiJson<CardBody>> {
    Ok(ApiJson(card_body(
        issuer.customer_card(&c.customer_id, &id).await?,
    )))
}

/// "Bind to wallet" on one of the customer's cards: a QR code for the
/// wallet app, or a binding message pushed to it.
#[utoipa::path(post, path = "/v1/app/cards/{card_id}/wallet-bindings", tag = "bank app",
    security(("session" = [])),
    params(("card_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry: the same offer comes back")),
    request_body = StartWalletBinding,
    responses(
        (status = 201, body = WalletBindingStarted), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "binding_exists: the card is bound to the wallet already", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn start_binding(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
    ApiPath(card): ApiPath<CardId>,
    ApiJson(req): ApiJson<StartWalletBinding>,
) -> ApiResult<(StatusCode, ApiJson<WalletBindingStarted>)> {
    let mode = match req.mode.as_str() {
        "qr" => BindingMode::Qr,
        "push" => BindingMode::Push,
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "mode: `qr` or `push`",
            ))
        }
    };
    let started = issuer
        .start_wallet_binding(&c.customer_id, &card, mode)
        .await?;
    let none = WalletBindingStarted {
        mode: req.mode.clone(),
        status: String::new(),
        binding_id: None,
        url: None,
        qr_svg: None,
        qr_png_base64: None,
        expires_at: None,
    };
    let body = match started {
        BindingStart::Qr(a) => WalletBindingStarted {
            status: "qr_ready".into(),
            binding_id: Some(a.binding_id),
            url: Some(a.url),
            qr_svg: Some(a.qr_svg),
            qr_png_base64: Some(a.qr_png_base64),
            expires_at: Some(a.expires_at),
            ..none
        },
        BindingStart::Pushed {
            binding_id,
            expires_at,
        } => WalletBindingStarted {
            status: "pushed".into(),
            binding_id: Some(binding_id),
            expires_at: Some(expires_at),
            ..none
        },
        BindingStart::NoWalletUser => WalletBindingStarted {
            status: "no_wallet_user".into(),
            ..none
        },
    };
    Ok((StatusCode::CREATED, ApiJson(body)))
}

/// Flow F2, "open the wallet and bind this card": registers a wallet
/// account for the customer (restricted until they authenticate in the
/// wallet app) with the card bound, or, when they have an account, pushes a
/// binding message to it.
#[utoipa::path(post, path = "/v1/app/cards/{card_id}/wallet-registrations", tag = "bank app",
    security(("session" = [])),
    params(("card_id" = String, Path), ("Idempotency-Key" = String, Header, description = "Reuse it to retry: the same answer comes back")),
    responses(
        (status = 201, body = WalletRegistrationStarted), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "binding_exists: the card is bound to the wallet already", body = ErrorBody),
        (status = 502, body = ErrorBody)))]
async fn start_registration(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
    ApiPath(card): ApiPath<CardId>,
) -> ApiResult<(StatusCode, ApiJson<WalletRegistrationStarted>)> {
    let body = match issuer
        .start_wallet_registration(&c.customer_id, &card)
        .await?
    {
        RegistrationStart::Registered {
            account_id,
            binding_id,
        } => WalletRegistrationStarted {
            status: "registered".into(),
            account_id: Some(account_id),
            binding_id: Some(binding_id),
        },
        RegistrationStart::ExistingAccount { binding_id } => WalletRegistrationStarted {
            status: "existing_account".into(),
            account_id: None,
            binding_id,
        },
    };
    Ok((StatusCode::CREATED, ApiJson(body)))
}

/// The customer's cards bound to wallets, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/app/bindings", tag = "bank app",
    security(("session" = [])),
    params(PageQuery),
    responses((status = 200, body = BankBindingList), (status = 401, body = ErrorBody),
        (status = 422, description = "invalid_request: limit out of 1 to 100, or an unknown cursor", body = ErrorBody)))]
async fn bindings(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<BankBindingList>> {
    let after: Option<QuickPayAgreementId> =
        page_cursor(page.after.as_deref(), "a binding of this customer")?;
    let (list, next) = issuer
        .customer_bindings(&c.customer_id, page.limit, after.as_ref())
        .await?;
    Ok(ApiJson(BankBindingList {
        bindings: list
            .into_iter()
            .map(|a| BankBindingBody {
                id: a.id.to_string(),
                card_id: a.card_id.to_string(),
                last4: a.last4,
                wallet: a.wallet_id,
                binding_id: a.binding_id,
                status: a.status,
                created_at: rfc3339(a.created_at),
            })
            .collect(),
        next: next.map(|a| a.to_string()),
    }))
}

/// Unbinds a card from the wallet; the wallet is told.
#[utoipa::path(delete, path = "/v1/app/bindings/{agreement_id}", tag = "bank app",
    security(("session" = [])),
    params(("agreement_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unbind(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
    ApiPath(id): ApiPath<QuickPayAgreementId>,
) -> ApiResult<StatusCode> {
    issuer.unbind_from_bank(&c.customer_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn token_body(t: TokenView) -> BankTokenBody {
    BankTokenBody {
        id: t.id.to_string(),
        card_id: t.card_id.to_string(),
        token_last4: t.token_last4,
        state: t.state.stage().as_str().to_owned(),
        state_by: t.state.actor().map(|a| a.as_str().to_owned()),
        wallet: t.wallet,
        channels: t.channels,
        created_at: rfc3339(t.created_at),
    }
}

/// Flow F5: the card tokens of one of the customer's virtual cards.
#[utoipa::path(get, path = "/v1/app/cards/{card_id}/tokens", tag = "bank app",
    security(("session" = [])),
    params(("card_id" = String, Path)),
    responses((status = 200, body = BankTokenList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn card_tokens(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
    ApiPath(card): ApiPath<CardId>,
) -> ApiResult<ApiJson<BankTokenList>> {
    Ok(ApiJson(BankTokenList {
        tokens: issuer
            .card_tokens(&c.customer_id, &card)
            .await?
            .into_iter()
            .map(token_body)
            .collect(),
    }))
}

async fn token_action(
    issuer: &Issuer,
    c: &BankSessionCustomer,
    id: &CardTokenId,
    action: BankTokenAction,
) -> ApiResult<ApiJson<BankTokenBody>> {
    Ok(ApiJson(token_body(
        issuer.bank_token_action(&c.customer_id, id, action).await?,
    )))
}

/// Flow F5: the bank holds a token (a phone reported lost, fraud): it pays
/// nowhere until the bank lifts the hold. The wallet and the phone are told.
#[utoipa::path(post, path = "/v1/app/tokens/{token_id}/suspend", tag = "bank app",
    security(("session" = [])),
    params(("token_id" = String, Path)),
    responses((status = 200, body = BankTokenBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "token_inactive", body = ErrorBody)))]
async fn suspend_token(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
    ApiPath(id): ApiPath<CardTokenId>,
) -> ApiResult<ApiJson<BankTokenBody>> {
    token_action(&issuer, &c, &id, BankTokenAction::Suspend).await
}

/// Flow F5: the bank lifts a hold (its own or the cardholder's).
#[utoipa::path(post, path = "/v1/app/tokens/{token_id}/resume", tag = "bank app",
    security(("session" = [])),
    params(("token_id" = String, Path)),
    responses((status = 200, body = BankTokenBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "token_inactive", body = ErrorBody)))]
async fn resume_token(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
    ApiPath(id): ApiPath<CardTokenId>,
) -> ApiResult<ApiJson<BankTokenBody>> {
    token_action(&issuer, &c, &id, BankTokenAction::Resume).await
}

/// Flow F5: the bank deletes a token: it never pays again, and the wallet
/// unbinds its quick binding.
#[utoipa::path(post, path = "/v1/app/tokens/{token_id}/delete", tag = "bank app",
    security(("session" = [])),
    params(("token_id" = String, Path)),
    responses((status = 200, body = BankTokenBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "token_inactive", body = ErrorBody)))]
async fn delete_token(
    State(issuer): State<Issuer>,
    Authenticated(c): Authenticated<BankSessionCustomer>,
    ApiPath(id): ApiPath<CardTokenId>,
) -> ApiResult<ApiJson<BankTokenBody>> {
    token_action(&issuer, &c, &id, BankTokenAction::Delete).await
}

pub fn router(issuer: Issuer, idem: Arc<Idempotency>) -> OpenApiRouter {
    // Offering a card to the wallet takes an Idempotency-Key: a retry gets
    // the same offer (sealed at rest: it carries the binding address).
    let offering = OpenApiRouter::new()
        .routes(routes!(start_binding))
        .routes(routes!(start_registration))
        .layer(axum::middleware::from_fn_with_state(idem, idempotency));
    let authed = OpenApiRouter::new()
        .merge(offering)
        .routes(routes!(bindings))
        .routes(routes!(unbind))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(cards))
        .routes(routes!(card))
        .routes(routes!(card_tokens))
        .routes(routes!(suspend_token))
        .routes(routes!(resume_token))
        .routes(routes!(delete_token))
        .layer(axum::middleware::from_fn_with_state(
            issuer.clone(),
            bank_session,
        ));
    OpenApiRouter::new()
        .routes(routes!(login))
        .merge(authed)
        .with_state(issuer)
}
