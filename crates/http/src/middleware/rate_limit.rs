//! Rate limits per client IP and per credential (GCRA, `governor`): an
//! answer over the limit is `429 rate_limited` with `Retry-After`, before
//! any work is done. The credential is the `Authorization` header's value
//! (a session, bank session or merchant key), or for a signed partner call
//! the partner it names; only a hash of it is kept. The client IP is the
//! TCP peer's (behind a proxy, every client shares the proxy's address:
//! raise `per_ip` or put the limit in the proxy).
//!
//! These limits stop floods and scripted guessing; what an attacker can
//! guess is bounded anyway by the per-phone and per-account counters.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use paybridge_domain::ErrorCode;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// A sustained rate and the burst above it a client may spend at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// Which limits apply; `None` switches one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub per_ip: Option<Rate>,
    pub per_credential: Option<Rate>,
}

/// Per client IP: 500 requests/s, bursts of 1,000. Far above an app's or
/// a checkout's needs, far below what a flood sends.
pub const DEFAULT_PER_IP: Rate = Rate {
    per_second: 500,
    burst: 1_000,
};
/// Per credential: 100 requests/s, bursts of 200 (Stripe allows a live
/// key 100 requests/s).
pub const DEFAULT_PER_CREDENTIAL: Rate = Rate {
    per_second: 100,
    burst: 200,
};

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_ip: Some(DEFAULT_PER_IP),
            per_credential: Some(DEFAULT_PER_CREDENTIAL),
        }
    }
}

impl RateLimitConfig {
    /// No limits (the benches, which measure the ceiling from one address).
    pub const OFF: Self = Self {
        per_ip: None,
        per_credential: None,
    };
}

/// Keys kept before idle ones are dropped (a key is a few dozen bytes).
const PRUNE_ABOVE_KEYS: usize = 100_000;
/// How often (in requests) the key count is looked at: counting the keys
/// visits every shard, too much for every request.
const PRUNE_CHECK_EVERY: u64 = 4096;

type Limiter<K> = DefaultKeyedRateLimiter<K>;

#[derive(Debug)]
pub struct RateLimits {
    per_ip: Option<Limiter<IpAddr>>,
    per_credential: Option<Limiter<[u8; 16]>>,
    checked: std::sync::atomic::AtomicU64,
}

fn limiter<K: Hash + Eq + Clone>(rate: Rate) -> Option<Limiter<K>> {
    let per_second = NonZeroU32::new(rate.per_second)?;
    let burst = NonZeroU32::new(rate.burst.max(rate.per_second)).unwrap_or(per_second);
    Some(RateLimiter::keyed(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

/// Drops idle keys once there are many.
fn prune<K: Hash + Eq + Clone>(limiter: &Limiter<K>) {
    if limiter.len() > PRUNE_ABOVE_KEYS {
        limiter.retain_recent();
    }
}

/// Whole seconds until `limiter` lets `key` through again, if it does not now.
fn wait_secs<K: Hash + Eq + Clone>(limiter: &Limiter<K>, key: &K) -> Option<u64> {
    limiter.check_key(key).err().map(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    })
}

impl RateLimits {
    pub fn new(config: RateLimitConfig) -> Arc<Self> {
        Arc::new(Self {
            per_ip: config.per_ip.and_then(limiter),
            per_credential: config.per_credential.and_then(limiter),
            checked: Default::default(),
        })
    }

    fn check(&self, ip: Option<IpAddr>, credential: Option<[u8; 16]>) -> Option<u64> {
        let n = self
            .checked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % PRUNE_CHECK_EVERY == PRUNE_CHECK_EVERY - 1 {
            self.per_ip.iter().for_each(prune);
            self.per_credential.iter().for_each(prune);
        }
        let by_ip = match (&self.per_ip, ip) {
            (Some(l), Some(ip)) => wait_secs(l, &ip),
            _ => None,
        };
        by_ip.or_else(|| match (&self.per_credential, credential) {
            (Some(l), Some(c)) => wait_secs(l, &c),
            _ => None,
        })
    }
}

/// What a request is counted against as a credential: a signed partner
/// call by its partner (each signature differs), anything else by the
/// whole header value. Hashed, so no token is kept in memory.
fn credential_key(req: &Request) -> Option<[u8; 16]> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let counted = match value.strip_prefix(paybridge_crypto::signing::SCHEME) {
        Some(params) => params
            .split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("partner="))
            .unwrap_or(params),
        None => value,
    };
    let digest = Sha256::digest(counted.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    Some(key)
}

pub async fn rate_limit(
    State(limits): State<Arc<RateLimits>>,
    req: Request,
    next: Next,
) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match limits.check(ip, credential_key(&req)) {
        None => next.run(req).await,
        Some(secs) => {
            let mut response = ApiError::new(
                ErrorCode::RateLimited,
                format!("too many requests; retry in {secs} s"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_client_waits_and_others_do_not() {
        let limits = RateLimits::new(RateLimitConfig {
            per_ip: Some(Rate {
                per_second: 1,
                burst: 3,
            }),
            per_credential: None,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limits.check(Some(a), None), None);
        }
        assert_eq!(limits.check(Some(a), None), Some(1), "wait about a second");
        assert_eq!(
            limits.check(Some(b), None),
            None,
            "another client is not held up"
        );
    }

    #[test]
    fn a_partner_is_one_credential_whatever_it_signs() {
        let signed = |sig: &str| {
            Request::builder()
                .header(
                    header::AUTHORIZATION,
                    format!(
                        r#"PAYBRIDGE-ED25519 partner="demo-bank",to="wallet",key_id="k1",timestamp="1",nonce="n",signature="{sig}""#
                    ),
                )
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(
            credential_key(&signed("AAAA")),
            credential_key(&signed("BBBB"))
        );
        let bearer = |t: &str| {
            Request::builder()
                .header(header::AUTHORIZATION, format!("Bearer {t}"))
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_ne!(credential_key(&bearer("a")), credential_key(&bearer("b")));
    }

    #[test]
    fn a_zero_rate_switches_the_limit_off() {
        let limits = RateLimits::new(RateLimitConfig {
            per_ip: Some(Rate {
                per_second: 0,
                burst: 0,
            }),
            per_credential: None,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10_000 {
            assert_eq!(limits.check(Some(a), None), None);
        }
    }
}
