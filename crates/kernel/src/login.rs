//! Judging a login try, for the wallet's accounts and the bank app's
//! customers alike. The counter of wrong tries belongs to the login name
//! (its blind index), not to an account, so tries at a phone with no account
//! count and lock the same way. The domain's [`PasswordGuard`] decides;
//! this loop re-judges when racing tries moved the counter, so every wrong
//! try counts.
//!
//! [`PasswordGuard`]: paybridge_domain::credentials::PasswordGuard

use paybridge_domain::{Clock, ErrorCode, ServiceError};
use paybridge_store::SessionStore;

use crate::retry::{on_conflict, Attempt};

/// What is judged: one try at one login name.
#[derive(Debug, Clone, Copy)]
pub struct LoginTry<'a> {
    /// The blind index of the login name (phone or bank user name).
    pub login_index: &'a str,
    /// Whether the password was right (checked by the caller beforehand,
    /// with the same cost for an unknown name).
    pub correct: bool,
    /// How long the fifth wrong try locks the name.
    pub lock_secs: i64,
    /// The refusal's wording for this kind of login, e.g. "wrong phone
    /// number or password".
    pub wrong: &'a str,
}

/// Counts the try; `Ok` only for a correct try on a name that is not locked.
pub async fn judge(
    store: &dyn SessionStore,
    clock: &dyn Clock,
    login: LoginTry<'_>,
) -> Result<(), ServiceError> {
    on_conflict("the login counter", || async move {
        let now = clock.now();
        let guard = store.login_guard(login.login_index).await?;
        let refused = |refusal: paybridge_domain::credentials::GuardRefusal| {
            let mut e = refusal.into_error(ErrorCode::CredentialsInvalid, now);
            if e.code == ErrorCode::CredentialsInvalid {
                e.message = format!("{}; {}", login.wrong, e.message);
            }
            ServiceError::from(e)
        };
        if let Err(refusal) = guard.admit(now) {
            return Err(refused(refusal));
        }
        let (next, outcome) = guard.record(login.correct, now, login.lock_secs);
        if next != guard
            && !store
                .login_guard_replace(login.login_index, &guard, &next)
                .await?
        {
            return Ok(Attempt::Lost);
        }
        outcome.map(Attempt::Done).map_err(refused)
    })
    .await
}
