//! Routers per role. Each returns an `OpenApiRouter` so its routes are
//! documented as they are added.

pub mod bank_app;
pub mod binding_partner;
pub mod bindings;
pub mod cross_device;
pub mod devices;
pub mod merchant_api;
pub mod partner;
pub mod payments;
pub mod sandbox;
pub mod security_auth;
pub mod system;
pub mod wallet_app;
