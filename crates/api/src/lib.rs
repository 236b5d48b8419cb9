//! Wire types of the paybridge HTTP APIs, shared by the server (which derives
//! its OpenAPI document from them) and the typed client.
//!
//! - [`error`]: the error envelope every 4xx/5xx answer carries.
//! - [`system`]: health, readiness.
//! - [`partner`]: the signed server-to-server API between wallet and issuers.
//! - [`sandbox`]: the sandbox parties' mailboxes.
//! - [`wallet`]: the wallet app's API (accounts, sessions, devices, WebAuthn, push channel).
//! - [`bank`]: the bank app's API (sessions, cards).
//! - [`merchant`]: the merchant API (orders, refunds, API keys, webhooks).
//! - [`delegated`]: flow F3 (pairing a first device, transfer payment
//!   agreements, transfer payments, the signed messages' payloads).
//! - [`virtual_card`]: flow F5 (virtual card applications, card tokens, the
//!   secure element's key, the partner calls that issue a card, and a
//!   token's key material as the issuer seals it to a secure element).

/// `Debug` that prints only the type's name: for request bodies carrying
/// passwords, PINs or personal data.
#[macro_export]
macro_rules! redacted_debug {
    ($($t:ty),* $(,)?) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), " { <redacted> }"))
            }
        }
    )*};
}

pub mod bank;
pub mod delegated;
pub mod error;
pub mod merchant;
pub mod partner;
pub mod sandbox;
pub mod system;
pub mod virtual_card;
pub mod wallet;

pub use error::{ErrorBody, ErrorDetail};
pub use wallet::PageQuery;

/// The OpenAPI schema of a name-only enum: a string, one of its names.
pub fn wire_enum<E: paybridge_domain::WireName>() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(E::wire_names()))
        .build()
}

/// The OpenAPI schema of an optional name-only enum: one of its names, or null.
pub fn wire_enum_or_null<E: paybridge_domain::WireName>() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut values: Vec<serde_json::Value> = E::wire_names().into_iter().map(Into::into).collect();
    values.push(serde_json::Value::Null);
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(values))
        .build()
}

/// The OpenAPI schema of a list of a name-only enum's values.
pub fn wire_enum_list<E: paybridge_domain::WireName>() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(wire_enum::<E>())
        .build()
}

/// Format of every time on the wire: RFC 3339, UTC.
pub use paybridge_domain::clock::rfc3339;
