//! Argon2id is meant to be slow (tens of milliseconds, 19 MiB): it runs on
//! the blocking pool, never on the async threads that serve requests, and
//! at most one per core at a time. Without that bound a burst of logins
//! multiplies the 19 MiB by the burst: 1,000 concurrent logins took the
//! process to 11 GB resident; with it they queue, and memory stays flat.

use std::sync::LazyLock;

use paybridge_crypto::password::PasswordHasher;
use paybridge_crypto::Secret;
use paybridge_domain::ServiceError;
use tokio::sync::Semaphore;

/// Argon2id computations at once in this process: one per core (more
/// would only share the cores, holding more memory).
pub fn argon2_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

static PERMITS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(argon2_concurrency()));

/// Runs one Argon2id computation on the blocking pool once a permit is free.
async fn bounded<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let _permit = PERMITS
        .acquire()
        .await
        .expect("the Argon2 semaphore is never closed");
    tokio::task::spawn_blocking(work).await
}

/// Hashes `password` for storage.
pub async fn hash(hasher: &PasswordHasher, password: &str) -> Result<String, ServiceError> {
    let hasher = hasher.clone();
    let password = Secret::new(password.to_owned());
    bounded(move || hasher.hash(password.expose()))
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
    bounded(move || hasher.verify_or_dummy(stored.as_deref(), password.expose()))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_than_one_computation_per_core_runs_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks = (0..32).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            tokio::spawn(bounded(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            }))
        });
        for t in futures::future::join_all(tasks).await {
            t.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most >= 1 && most <= argon2_concurrency(), "{most} at once");
    }
}
