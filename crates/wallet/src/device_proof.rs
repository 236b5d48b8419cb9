//! Checking devices' proofs of possession (DPoP, RFC 9449) against the
//! wallet's state: its nonces, the request the proof came with, and the
//! proofs already seen. The signature and token checks are
//! [`paybridge_crypto::device_proof`]'s.
//!
//! Replays: a proof's `jti` is remembered for as long as its nonce is
//! accepted (one to two [`NONCE_WINDOW_SECS`] windows), in memory. Instances
//! share nonces (they derive the key from the shared master key) but not
//! what they have seen, so a proof captured in transit could be replayed
//! once to another instance within two minutes, and only for the same
//! method, URL and token; TLS is what keeps it from being captured.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use paybridge_crypto::device_proof::{
    htu_matches, verify_proof, DeviceJwk, NonceKey, VerifiedProof, NONCE_WINDOW_SECS,
};
use paybridge_domain::{ErrorCode, ServiceError, Timestamp};
use sha2::{Digest, Sha256};

/// At most this many proofs are remembered per nonce window; past it, new
/// proofs are refused with `use_dpop_nonce` until the next window (a bound
/// on memory: about 64 MB, far above what one instance serves).
pub const MAX_PROOFS_PER_WINDOW: usize = 1_000_000;

/// The request a proof came with, as the HTTP layer saw it.
#[derive(Debug, Clone, Copy)]
pub struct PresentedProof<'a> {
    /// The `DPoP` header, if the request had exactly one.
    pub proof: Option<&'a str>,
    pub method: &'a str,
    /// The request's path (no query).
    pub path: &'a str,
    /// The `Host` header, if any: `htu` may name it or the public origin.
    pub host: Option<&'a str>,
}

impl PresentedProof<'static> {
    /// A request without a proof (a login naming no device).
    pub const NONE: Self = Self {
        proof: None,
        method: "",
        path: "",
        host: None,
    };
}

#[derive(Debug)]
pub struct DeviceProofs {
    nonces: NonceKey,
    /// The authority of the wallet's public origin (`pay.example.com`).
    public_authority: String,
    seen: Mutex<HashMap<i64, HashSet<[u8; 16]>>>,
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::rejected(ErrorCode::DpopProofInvalid, message)
}

fn use_nonce() -> ServiceError {
    ServiceError::rejected(
        ErrorCode::UseDpopNonce,
        "sign the DPoP proof with the nonce of the `DPoP-Nonce` header of this answer",
    )
}

impl DeviceProofs {
    pub fn new(nonces: NonceKey, public_origin: &str) -> Self {
        let authority = public_origin
            .split_once("://")
            .map_or(public_origin, |(_, rest)| rest)
            .trim_end_matches('/');
        Self {
            nonces,
            public_authority: authority.to_owned(),
            seen: Mutex::default(),
        }
    }

    /// A fresh nonce for the `DPoP-Nonce` header.
    pub fn nonce(&self, now: Timestamp) -> String {
        self.nonces.issue(now.unix_timestamp())
    }

    /// Checks a proof for one request: form, signature, method, URL, token
    /// (`ath`, when the request carries one), nonce, and that it was not
    /// used before. Returns the proving key.
    pub fn check(
        &self,
        presented: &PresentedProof<'_>,
        access_token: Option<&str>,
        now: Timestamp,
    ) -> Result<VerifiedProof, ServiceError> {
        let proof = presented.proof.ok_or_else(|| {
            invalid("this needs a proof of the device's key: send a `DPoP` header (RFC 9449)")
        })?;
        let verified = verify_proof(proof, presented.method, access_token)
            .map_err(|e| invalid(e.to_string()))?;
        let mut authorities = vec![self.public_authority.as_str()];
        authorities.extend(presented.host);
        if !htu_matches(&verified.htu, presented.path, &authorities) {
            return Err(invalid("the DPoP proof names another URL (htu)"));
        }
        let window = verified
            .nonce
            .as_deref()
            .and_then(|n| self.nonces.check(n, now.unix_timestamp()))
            .ok_or_else(use_nonce)?;
        self.first_use(window, &verified)?;
        Ok(verified)
    }

    /// Records the proof's `jti` for its nonce window; a second use is refused.
    fn first_use(&self, window: i64, proof: &VerifiedProof) -> Result<(), ServiceError> {
        let mut digest = Sha256::new();
        digest.update(proof.thumbprint.as_bytes());
        digest.update(b"\n");
        digest.update(proof.jti.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest.finalize()[..16]);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Windows whose nonces are no longer accepted need no memory.
        seen.retain(|w, _| *w >= window - 1);
        let in_window = seen.entry(window).or_default();
        if in_window.len() >= MAX_PROOFS_PER_WINDOW {
            tracing::warn!(
                window_secs = NONCE_WINDOW_SECS,
                "too many device proofs in one nonce window; refusing until the next"
            );
            return Err(use_nonce());
        }
        if !in_window.insert(id) {
            return Err(invalid(
                "this DPoP proof was used before: make one per request",
            ));
        }
        Ok(())
    }
}

/// The device key a request body names, checked to be a usable public key.
pub fn device_key(jwk: &DeviceJwk) -> Result<(), ServiceError> {
    jwk.verifying_key()
        .map(|_| ())
        .map_err(|e| ServiceError::rejected(ErrorCode::InvalidRequest, format!("public_key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use paybridge_crypto::device_proof::{DeviceKey, ProofTarget};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_timestamp(secs).unwrap()
    }

    #[test]
    fn a_proof_passes_once_with_a_fresh_nonce_for_its_url() {
        let proofs = DeviceProofs::new(NonceKey::from_bytes([3; 32]), "https://pay.example");
        let now = at(1_763_884_800);
        let key = DeviceKey::generate();
        let nonce = proofs.nonce(now);
        let sign = |url: &str, nonce: Option<&str>| {
            key.prove(&ProofTarget {
                method: "GET",
                url,
                access_token: Some("ses_x"),
                nonce,
                iat: 0,
            })
        };
        let request = |proof: &str| -> Result<VerifiedProof, ServiceError> {
            proofs.check(
                &PresentedProof {
                    proof: Some(proof),
                    method: "GET",
                    path: "/v1/me",
                    host: Some("127.0.0.1:8080"),
                },
                Some("ses_x"),
                now,
            )
        };
        let code = |r: Result<VerifiedProof, ServiceError>| r.unwrap_err().code();
        let good = sign("https://pay.example/v1/me", Some(&nonce));
        assert_eq!(
            request(&good).unwrap().thumbprint,
            key.public_jwk().thumbprint()
        );
        assert_eq!(
            code(request(&good)),
            ErrorCode::DpopProofInvalid,
            "a replay"
        );
        // The Host header's authority is accepted as well as the origin's.
        assert!(request(&sign("http://127.0.0.1:8080/v1/me", Some(&nonce))).is_ok());
        assert_eq!(
            code(request(&sign(
                "https://pay.example/v1/devices",
                Some(&nonce)
            ))),
            ErrorCode::DpopProofInvalid
        );
        assert_eq!(
            code(request(&sign("https://pay.example/v1/me", None))),
            ErrorCode::UseDpopNonce
        );
        let stale = proofs.nonce(at(1_763_884_800 - 3 * NONCE_WINDOW_SECS));
        assert_eq!(
            code(request(&sign("https://pay.example/v1/me", Some(&stale)))),
            ErrorCode::UseDpopNonce
        );
    }
}
