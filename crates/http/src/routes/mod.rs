//! Routers per role. Each returns an `OpenApiRouter` so its routes are
//! documented as they are added.

pub mod bank_app;
pub mod binding_partner;
pub mod bindings;
pub mod card_partner;
pub mod cross_device;
pub mod device_pairings;
pub mod devices;
pub mod merchant_api;
pub mod partner;
pub mod payments;
pub mod sandbox;
pub mod security_auth;
pub mod system;
pub mod transfer_agreements;
pub mod transfer_payments;
pub mod virtual_cards;
pub mod wallet_app;

/// The `after` of a page, parsed as the id of the list's items; one that
/// cannot be such an id names no item (`422`, like an unknown one).
pub(crate) fn page_cursor<Id: std::str::FromStr>(
    after: Option<&str>,
    what: &str,
) -> crate::error::ApiResult<Option<Id>> {
    after
        .map(|a| {
            a.parse().map_err(|_| {
                crate::error::ApiError::from(paybridge_domain::page::unknown_cursor(what))
            })
        })
        .transpose()
}
