//! The OpenAPI document. Routes are registered only through utoipa-axum's
//! `routes!`, which adds each handler's `#[utoipa::path]` to the document as
//! it adds the route, so the two cannot drift; `tests/openapi.rs` checks it.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Security scheme name of signed partner calls.
pub const PARTNER_SIGNATURE: &str = "partner_signature";
/// Security scheme name of wallet and bank app sessions.
pub const SESSION: &str = "session";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "paybridge",
        description = "Payment-platform core: a wallet, its issuers (banks) and the user's devices. \
Amounts are integer minor units with an ISO 4217 currency; errors are `{\"error\": {\"code\", \"message\", \"request_id\"}}`; \
creating POSTs take an `Idempotency-Key`; partner routes are signed with PAYBRIDGE-ED25519.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "system", description = "Health, readiness, metrics, this document"),
        (name = "partner", description = "Signed server-to-server calls between the wallet and the issuers"),
        (name = "wallet", description = "The wallet app: accounts, sessions, payment password, real-name identity"),
        (name = "devices", description = "The wallet account's devices, WebAuthn credentials and push channels"),
        (name = "bindings", description = "Flow F1 in the wallet app: claim, confirm and complete bindings of bank cards"),
        (name = "merchants", description = "The merchant API (secret key): orders and API keys"),
        (name = "payments", description = "Flow F4: a PC, TV, car or IoT box asks the phone to pay; gestures, QR fallback, approvals"),
        (name = "delegated", description = "Flow F3: a first device paired by a user code pays through the phone within its transfer payment agreement; signed messages (compact JWS, EdDSA)"),
        (name = "virtual_card", description = "Flow F5: apply for a virtual card (OTP, or ID card photos and a video face check), the token in the phone's secure element, its lifecycle"),
        (name = "bank app", description = "An issuer's bank app: customer sessions, cards and their tokens (under /bank)"),
        (name = "sandbox", description = "The sandbox parties (SMS gateway, OS push relay); only when the sandbox is on"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SESSION,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An opaque session token (`pbs_…`) from POST /v1/sessions (wallet) or POST /bank/v1/app/sessions (bank app). \
                         A wallet session opened on a device is bound to the device's Ed25519 key: send it as \
                         `Authorization: DPoP <token>` with a `DPoP` proof header (RFC 9449, alg EdDSA, with `ath` and \
                         the latest `DPoP-Nonce`) on every request; without one it is 401 dpop_proof_invalid, with a \
                         stale nonce 401 use_dpop_nonce (a fresh nonce is in the answer's DPoP-Nonce header).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "merchant_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A merchant's secret key (`sk_test_…`); shown once when created",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            PARTNER_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "PAYBRIDGE-ED25519 partner=\"…\",to=\"…\",key_id=\"…\",timestamp=\"…\",nonce=\"…\",signature=\"…\" \
                 (Ed25519 over method, path and query, parties, timestamp, nonce and the body's SHA-256)",
            ))),
        );
    }
}

/// Adds to every operation the answers the server's layers give whatever
/// the handler (so generated clients and fuzzers know them): `429` from
/// the rate limits; for an operation with a body, `400` (not JSON),
/// `413` (over the body limit), `415` (not `application/json`) and `422`
/// (a field missing or invalid); `401` where a credential is required.
/// An answer the handler documents itself is left as it wrote it.
/// The `Idempotency-Key` header's format, as the middleware enforces it:
/// 1 to 255 visible ASCII characters. Answers whether `op` takes one.
fn document_idempotency_key(op: &mut utoipa::openapi::path::Operation) -> bool {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let mut found = false;
    for p in op.parameters.iter_mut().flatten() {
        if p.name
            .eq_ignore_ascii_case(crate::middleware::idempotency::IDEMPOTENCY_KEY_HEADER)
        {
            p.required = utoipa::openapi::Required::True;
            p.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(
                        crate::middleware::idempotency::IDEMPOTENCY_KEY_MAX_LEN,
                    ))
                    .pattern(Some("^[!-~]+$"))
                    .into(),
            );
            found = true;
        }
    }
    found
}

/// What the handlers check across fields, which the derived schemas cannot
/// say: a security authentication names either a new `device` or a
/// registered `device_id`, never both nor neither.
pub fn document_cross_field_rules(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Type};
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    if let Some(original) = components.schemas.remove("StartSecurityAuth") {
        // Present and not null: the one named, the other absent or null.
        let named = |field: &str, kind: Type, other: &str| {
            ObjectBuilder::new()
                .required(field)
                .property(field, ObjectBuilder::new().schema_type(kind))
                .property(other, ObjectBuilder::new().schema_type(Type::Null))
        };
        let either = OneOfBuilder::new()
            .item(named("device", Type::Object, "device_id"))
            .item(named("device_id", Type::String, "device"));
        components.schemas.insert(
            "StartSecurityAuth".to_owned(),
            AllOfBuilder::new().item(original).item(either).into(),
        );
    }
}

pub fn document_common_answers(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: String| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let mut common = vec![(
                "429",
                "rate_limited: too many requests from this address or credential; retry after `Retry-After` seconds".to_owned(),
            )];
            if op.request_body.is_some() {
                common.extend([
                    ("400", "invalid_request: the body is not JSON".to_owned()),
                    (
                        "413",
                        format!(
                            "body_too_large: the body is over {} bytes ({} for photo and frame uploads)",
                            crate::MAX_BODY_BYTES,
                            crate::routes::virtual_cards::MAX_UPLOAD_BODY_BYTES
                        ),
                    ),
                    (
                        "415",
                        "unsupported_media_type: send `Content-Type: application/json`".to_owned(),
                    ),
                    (
                        "422",
                        "invalid_request: a field is missing or invalid (the message names it)"
                            .to_owned(),
                    ),
                ]);
            }
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                common.push((
                    "401",
                    "the credential is missing, unknown or expired".to_owned(),
                ));
            }
            let takes_key = document_idempotency_key(op);
            if takes_key && op.request_body.is_none() {
                common.push((
                    "400",
                    "idempotency_key_missing, idempotency_key_invalid".to_owned(),
                ));
            }
            for (status, description) in common {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description).into());
            }
        }
    }
}
