//! Compare-and-set writes that lose to a concurrent change are judged again
//! on the fresh row. [`on_conflict`] is the one loop that does it: an
//! attempt reads, decides and writes with the version it read; a lost write
//! is [`Attempt::Lost`] and the attempt runs again, up to
//! [`CAS_ATTEMPTS`] times. Losing every time is `409 contended`: the
//! client may retry at once, which is not what `429 rate_limited` means.

use std::future::Future;

use paybridge_domain::{ErrorCode, ServiceError};

/// Attempts of one compare-and-set before answering `contended`. Eight
/// racing writers on one row (the race tests' width) each win within eight.
pub const CAS_ATTEMPTS: usize = 8;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    /// Written (or decided without a write): the answer.
    Done(T),
    /// Another writer moved the row first: judge again.
    Lost,
}

/// Runs `attempt` until it is [`Attempt::Done`] or has lost
/// [`CAS_ATTEMPTS`] times; `what` names the contended thing in the answer
/// ("the order", "the payment request").
pub async fn on_conflict<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, ServiceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Attempt<T>, ServiceError>>,
{
    for _ in 0..CAS_ATTEMPTS {
        if let Attempt::Done(v) = attempt().await? {
            return Ok(v);
        }
    }
    Err(contended(what))
}

/// The answer when `what` kept changing under concurrent requests.
pub fn contended(what: &str) -> ServiceError {
    ServiceError::rejected(
        ErrorCode::Contended,
        format!("{what} changed under concurrent requests on every try; retry"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn retries_a_lost_write_and_gives_up_as_contended() {
        let tries = Cell::new(0);
        let won = on_conflict("the row", || async {
            tries.set(tries.get() + 1);
            Ok(if tries.get() < 3 {
                Attempt::Lost
            } else {
                Attempt::Done(tries.get())
            })
        })
        .await
        .unwrap();
        assert_eq!(won, 3);

        tries.set(0);
        let lost = on_conflict("the row", || async {
            tries.set(tries.get() + 1);
            Ok(Attempt::<()>::Lost)
        })
        .await
        .unwrap_err();
        assert_eq!(
            (lost.code(), tries.get()),
            (ErrorCode::Contended, CAS_ATTEMPTS)
        );
    }

    #[tokio::test]
    async fn an_error_ends_the_loop_at_once() {
        let tries = Cell::new(0);
        let e = on_conflict("the row", || async {
            tries.set(tries.get() + 1);
            Err::<Attempt<()>, _>(ServiceError::rejected(ErrorCode::NotFound, "gone"))
        })
        .await
        .unwrap_err();
        assert_eq!((e.code(), tries.get()), (ErrorCode::NotFound, 1));
    }
}
