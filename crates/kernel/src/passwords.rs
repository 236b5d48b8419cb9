//! Argon2id is meant to be slow (tens of milliseconds, 19 MiB): it runs on
//! the blocking pool, never on the async threads that serve requests.

use paybridge_crypto::password::PasswordHasher;
use paybridge_crypto::Secret;
use paybridge_domain::ServiceError;

/// Hashes `password` for storage.
pub async fn hash(hasher: &PasswordHasher, password: &str) -> Result<String, ServiceError> {
    let hasher = hasher.clone();
    let password = Secret::new(password.to_owned());
    tokio::task::spawn_blocking(move || hasher.hash(password.expose()))
        .await
        .map_err(ServiceError::internal)
}

/// Checks `password` against `stored`; with no stored hash it spends the
/// same time on a dummy and answers `false` (see
/// [`PasswordHasher::verify_or_dummy`]), so an unknown account costs what a
/// wrong password costs.
pub async fn verify(hasher: &PasswordHasher, stored: Option<String>, password: &str) -> bool {
    let hasher = hasher.clone();
    let password = Secret::new(password.to_owned());
    tokio::task::spawn_blocking(move || {
        hasher.verify_or_dummy(stored.as_deref(), password.expose())
    })
    .await
    .unwrap_or(false)
}
