//! Device keys and their proofs of possession: DPoP (RFC 9449) with
//! Ed25519 keys (`alg: EdDSA`, RFC 8037).
//!
//! Every device (phone, PC, TV, car, IoT box) makes its own key pair and
//! registers the public key, as a JWK, when it is paired. A request that
//! speaks for the device carries a `DPoP` header: a compact JWS
//!
//! ```text
//! header  {"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"…"}}
//! payload {"jti":"…","htm":"POST","htu":"https://wallet.example/v1/…","iat":1763884800,
//!          "nonce":"<server nonce>","ath":"<base64url sha256(access token)>"}
//! ```
//!
//! signed by the device key. The server checks the signature with the JWK
//! in the header, that the JWK is the device's (its RFC 7638 thumbprint),
//! that `htm`/`htu` name this request, that `ath` names this token, and
//! that the nonce is one it issued recently. Freshness comes from the
//! nonce, not from `iat` (RFC 9449 §11.1): a device with a wrong clock
//! still works, and a test clock moved by hours does too. The nonce is
//! stateless ([`NonceKey`]: an HMAC over a time window), so every instance
//! sharing the master key accepts every other's nonces.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The request header carrying a proof.
pub const PROOF_HEADER: &str = "dpop";
/// The response header carrying a fresh server nonce.
pub const NONCE_HEADER: &str = "dpop-nonce";
/// The JWS `typ` of a proof.
pub const PROOF_TYPE: &str = "dpop+jwt";
/// The only signature algorithm accepted.
pub const PROOF_ALG: &str = "EdDSA";
/// A proof longer than this is refused before it is parsed.
pub const PROOF_MAX_LEN: usize = 2048;
/// A nonce is issued for a window of this many seconds and accepted during
/// that window and the next one: it lives one to two windows.
pub const NONCE_WINDOW_SECS: i64 = 60;
/// `jti` bounds, in characters.
pub const JTI_MIN_LEN: usize = 16;
pub const JTI_MAX_LEN: usize = 64;

/// A device's public key as a JWK (RFC 8037 `OKP` / `Ed25519`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
}

/// Why a public key or a proof was refused. Messages name what was wrong,
/// never echo what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the device key must be an Ed25519 JWK: {{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"<base64url of 32 bytes>\"}}")]
    BadKey,
    #[error("the DPoP proof is not a compact JWS of the expected form: {0}")]
    Malformed(&'static str),
    #[error("the DPoP proof's signature does not verify with its key")]
    BadSignature,
    #[error("the DPoP proof names another method (htm)")]
    WrongMethod,
    #[error("the DPoP proof names another URL (htu)")]
    WrongUrl,
    #[error("the DPoP proof is for another access token (ath)")]
    WrongToken,
}

impl DeviceJwk {
    /// The verifying key, if this is a well-formed Ed25519 public key that
    /// is not a weak (small-order) point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, ProofError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(ProofError::BadKey);
        }
        let bytes = B64URL.decode(&self.x).map_err(|_| ProofError::BadKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| ProofError::BadKey)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| ProofError::BadKey)?;
        if key.is_weak() {
            return Err(ProofError::BadKey);
        }
        Ok(key)
    }

    /// The RFC 7638 thumbprint: base64url SHA-256 of the required members
    /// in lexicographic order, no whitespace. Sessions and devices are
    /// bound to this.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
            self.crv, self.kty, self.x
        );
        B64URL.encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// A device's own key pair. It never leaves the device.
pub struct DeviceKey {
    signing: SigningKey,
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey({})", self.public_jwk().thumbprint())
    }
}

/// What a proof is about: the request it goes with.
#[derive(Debug, Clone, Copy)]
pub struct ProofTarget<'a> {
    /// `GET`, `POST`…
    pub method: &'a str,
    /// The request's URL; query and fragment are left out of the proof.
    pub url: &'a str,
    /// The access token the request carries, if any (bound by `ath`).
    pub access_token: Option<&'a str>,
    /// The server's latest nonce, if the device has one.
    pub nonce: Option<&'a str>,
    /// The device's own clock, Unix seconds.
    pub iat: i64,
}

impl DeviceKey {
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut_slice());
        Self {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    pub fn public_jwk(&self) -> DeviceJwk {
        DeviceJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: B64URL.encode(self.signing.verifying_key().as_bytes()),
        }
    }

    /// Signs a flow F3 message (see [`crate::signed_message`]) with the device key.
    pub fn sign_message(&self, typ: crate::signed_message::MessageType, payload: &[u8]) -> String {
        crate::signed_message::sign(&self.signing, typ, None, payload)
    }

    /// A fresh proof (new `jti`) for one request.
    pub fn prove(&self, target: &ProofTarget<'_>) -> String {
        let header = serde_json::json!({
            "typ": PROOF_TYPE,
            "alg": PROOF_ALG,
            "jwk": self.public_jwk(),
        });
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let mut claims = serde_json::json!({
            "jti": B64URL.encode(jti),
            "htm": target.method,
            "htu": without_query(target.url),
            "iat": target.iat,
        });
        if let Some(nonce) = target.nonce {
            claims["nonce"] = nonce.into();
        }
        if let Some(token) = target.access_token {
            claims["ath"] = access_token_hash(token).into();
        }
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let signature = self.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64URL.encode(signature.to_bytes()))
    }
}

/// `ath`: base64url SHA-256 of the access token.
pub fn access_token_hash(token: &str) -> String {
    B64URL.encode(Sha256::digest(token.as_bytes()))
}

fn without_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// A proof whose signature, method and token binding hold. Its URL, nonce
/// and `jti` are for the caller to check against its own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    pub jwk: DeviceJwk,
    /// The key's RFC 7638 thumbprint (`jkt`).
    pub thumbprint: String,
    pub jti: String,
    pub htu: String,
    pub nonce: Option<String>,
    pub iat: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofHeader {
    typ: String,
    alg: String,
    jwk: DeviceJwk,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    ath: Option<String>,
}

fn part<T: serde::de::DeserializeOwned>(text: &str, what: &'static str) -> Result<T, ProofError> {
    let bytes = B64URL
        .decode(text)
        .map_err(|_| ProofError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| ProofError::Malformed(what))
}

/// Checks a proof's form, signature (strict Ed25519), method and, when the
/// request carries an access token, its `ath` (RFC 9449 §4.3, steps 1–10
/// and 12; the URL, nonce and replay checks need the server's state).
pub fn verify_proof(
    proof: &str,
    method: &str,
    access_token: Option<&str>,
) -> Result<VerifiedProof, ProofError> {
    if proof.len() > PROOF_MAX_LEN {
        return Err(ProofError::Malformed("too long"));
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed(
            "three base64url parts joined by dots",
        ));
    };
    let header: ProofHeader = part(h, "header")?;
    if header.typ != PROOF_TYPE {
        return Err(ProofError::Malformed("typ must be dpop+jwt"));
    }
    if header.alg != PROOF_ALG {
        return Err(ProofError::Malformed("alg must be EdDSA"));
    }
    let key = header.jwk.verifying_key()?;
    let signature = B64URL
        .decode(s)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or(ProofError::Malformed("signature"))?;
    let signing_input = &proof[..h.len() + 1 + c.len()];
    key.verify_strict(signing_input.as_bytes(), &signature)
        .map_err(|_| ProofError::BadSignature)?;
    let claims: ProofClaims = part(c, "claims")?;
    if !(JTI_MIN_LEN..=JTI_MAX_LEN).contains(&claims.jti.len()) {
        return Err(ProofError::Malformed("jti length"));
    }
    if claims.htm != method {
        return Err(ProofError::WrongMethod);
    }
    match (access_token, claims.ath.as_deref()) {
        (Some(token), Some(ath)) => {
            let expected = access_token_hash(token);
            if !bool::from(expected.as_bytes().ct_eq(ath.as_bytes())) {
                return Err(ProofError::WrongToken);
            }
        }
        (Some(_), None) => return Err(ProofError::WrongToken),
        (None, _) => {}
    }
    Ok(VerifiedProof {
        thumbprint: header.jwk.thumbprint(),
        jwk: header.jwk,
        jti: claims.jti,
        htu: claims.htu,
        nonce: claims.nonce,
        iat: claims.iat,
    })
}

/// Whether a proof's `htu` names this request: the same path, at one of
/// the authorities the server answers as (its `Host` header, its public
/// origin), over http or https. Query and fragment are not part of `htu`.
pub fn htu_matches(htu: &str, path: &str, authorities: &[&str]) -> bool {
    let Some(rest) = htu
        .strip_prefix("https://")
        .or_else(|| htu.strip_prefix("http://"))
    else {
        return false;
    };
    let (authority, htu_path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    htu_path == path
        && authorities
            .iter()
            .any(|a| a.eq_ignore_ascii_case(authority))
}

/// The server's nonces: `base64url(window || HMAC(window)[..16])`. A nonce
/// names the window it was issued in, so a proof carrying it is at most
/// two windows old; no state is kept for it.
#[derive(Clone)]
pub struct NonceKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(***)")
    }
}

impl NonceKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    fn window(now: i64) -> i64 {
        now.div_euclid(NONCE_WINDOW_SECS)
    }

    fn tag(&self, window: i64) -> [u8; 16] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.0.as_slice()).expect("HMAC takes any key length");
        mac.update(b"dpop-nonce-v1");
        mac.update(&window.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }

    /// The nonce to hand out at `now` (Unix seconds).
    pub fn issue(&self, now: i64) -> String {
        let window = Self::window(now);
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&window.to_be_bytes());
        bytes[8..].copy_from_slice(&self.tag(window));
        B64URL.encode(bytes)
    }

    /// The window a nonce was issued in, if it is ours and still fresh at
    /// `now` (issued in this window or the one before).
    pub fn check(&self, nonce: &str, now: i64) -> Option<i64> {
        let bytes = B64URL.decode(nonce).ok()?;
        let bytes: [u8; 24] = bytes.try_into().ok()?;
        let window = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        let current = Self::window(now);
        if window != current && Some(window) != current.checked_sub(1) {
            return None;
        }
        bool::from(self.tag(window).ct_eq(&bytes[8..])).then_some(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://wallet.example/v1/me";

    fn target<'a>(nonce: Option<&'a str>, token: Option<&'a str>) -> ProofTarget<'a> {
        ProofTarget {
            method: "GET",
            url: URL,
            access_token: token,
            nonce,
            iat: 1_763_884_800,
        }
    }

    #[test]
    fn a_proof_verifies_and_names_its_key_request_and_nonce() {
        let key = DeviceKey::generate();
        let proof = key.prove(&target(Some("n1"), Some("ses_token")));
        let v = verify_proof(&proof, "GET", Some("ses_token")).unwrap();
        assert_eq!(v.thumbprint, key.public_jwk().thumbprint());
        assert_eq!(v.htu, URL);
        assert_eq!(v.nonce.as_deref(), Some("n1"));
        assert!(htu_matches(&v.htu, "/v1/me", &["wallet.example"]));
        assert!(!htu_matches(&v.htu, "/v1/devices", &["wallet.example"]));
        assert!(!htu_matches(&v.htu, "/v1/me", &["evil.example"]));
    }

    #[test]
    fn each_proof_has_its_own_jti() {
        let key = DeviceKey::generate();
        let a = verify_proof(&key.prove(&target(None, None)), "GET", None).unwrap();
        let b = verify_proof(&key.prove(&target(None, None)), "GET", None).unwrap();
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn a_proof_for_another_method_or_token_is_refused() {
        let key = DeviceKey::generate();
        let proof = key.prove(&target(None, Some("ses_a")));
        assert_eq!(
            verify_proof(&proof, "POST", Some("ses_a")),
            Err(ProofError::WrongMethod)
        );
        assert_eq!(
            verify_proof(&proof, "GET", Some("ses_b")),
            Err(ProofError::WrongToken)
        );
        let no_ath = key.prove(&target(None, None));
        assert_eq!(
            verify_proof(&no_ath, "GET", Some("ses_a")),
            Err(ProofError::WrongToken)
        );
    }

    #[test]
    fn a_tampered_or_resigned_proof_is_refused() {
        let key = DeviceKey::generate();
        let proof = key.prove(&target(None, None));
        let (input, _) = proof.rsplit_once('.').unwrap();
        // Another key's signature over the same input: the header's JWK
        // does not verify it.
        let other = DeviceKey::generate();
        let forged = format!(
            "{input}.{}",
            B64URL.encode(other.signing.sign(input.as_bytes()).to_bytes())
        );
        assert_eq!(
            verify_proof(&forged, "GET", None),
            Err(ProofError::BadSignature)
        );
        // Claims swapped for another URL under the original signature.
        let mut parts: Vec<&str> = proof.split('.').collect();
        let claims = B64URL.encode(
            r#"{"jti":"aaaaaaaaaaaaaaaaaaaa","htm":"GET","htu":"https://x/v1/me","iat":1}"#,
        );
        parts[1] = &claims;
        assert_eq!(
            verify_proof(&parts.join("."), "GET", None),
            Err(ProofError::BadSignature)
        );
        assert!(matches!(
            verify_proof("a.b", "GET", None),
            Err(ProofError::Malformed(_))
        ));
        assert!(matches!(
            verify_proof(&"x".repeat(PROOF_MAX_LEN + 1), "GET", None),
            Err(ProofError::Malformed(_))
        ));
    }

    #[test]
    fn only_ed25519_keys_of_32_bytes_are_accepted() {
        let good = DeviceKey::generate().public_jwk();
        assert!(good.verifying_key().is_ok());
        let mut p256 = good.clone();
        p256.kty = "EC".into();
        assert_eq!(p256.verifying_key(), Err(ProofError::BadKey));
        let mut short = good.clone();
        short.x = B64URL.encode([7u8; 31]);
        assert_eq!(short.verifying_key(), Err(ProofError::BadKey));
        // The identity point is a small-order (weak) key.
        let mut weak = good;
        let mut identity = [0u8; 32];
        identity[0] = 1;
        weak.x = B64URL.encode(identity);
        assert_eq!(weak.verifying_key(), Err(ProofError::BadKey));
    }

    #[test]
    fn the_thumbprint_follows_rfc_7638() {
        // RFC 8037 appendix A.3's Ed25519 key and its thumbprint.
        let jwk = DeviceJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn a_nonce_is_good_for_its_window_and_the_next_only() {
        let key = NonceKey::from_bytes([9; 32]);
        let t = 1_763_884_800;
        let n = key.issue(t);
        assert!(key.check(&n, t).is_some());
        assert!(key.check(&n, t + NONCE_WINDOW_SECS).is_some());
        assert!(key.check(&n, t + 2 * NONCE_WINDOW_SECS).is_none());
        assert!(key.check(&n, t - NONCE_WINDOW_SECS).is_none());
        assert!(NonceKey::from_bytes([8; 32]).check(&n, t).is_none());
        assert!(key.check("not-a-nonce", t).is_none());
        assert!(key.check(&key.issue(i64::MIN), i64::MIN).is_some());
    }
}
