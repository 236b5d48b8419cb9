//! Routers per role. Each returns an `OpenApiRouter` so its routes are
//! documented as they are added.

pub mod issuer_partner;
pub mod sandbox;
pub mod system;
pub mod wallet_partner;
