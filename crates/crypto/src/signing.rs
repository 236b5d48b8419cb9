//! Signed partner calls: the `PAYBRIDGE-ED25519` scheme.
//!
//! The wallet and each issuer are different organisations. Every request one
//! sends the other carries
//!
//! ```text
//! Authorization: PAYBRIDGE-ED25519 partner="demo-bank",to="wallet",key_id="…",
//!                timestamp="1763884800",nonce="…",signature="<base64>"
//! ```
//!
//! where the signature is Ed25519 over the canonical string
//!
//! ```text
//! PAYBRIDGE-ED25519-V2\n<METHOD>\n<path?query>\n<from>\n<to>\n<timestamp>\n<nonce>\n
//! <Content-Type>\n<Idempotency-Key>\n<hex sha256(body)>\n
//! ```
//!
//! In the spirit of WeChat Pay API v3, with two additions: the audience (`to`)
//! is signed, so a request signed for one bank cannot be replayed to another,
//! and the key id is named, so keys can be rotated with both valid for a while.
//! The receiver checks the timestamp is within [`MAX_CLOCK_SKEW_SECS`] and that
//! it has never seen the nonce (the nonce check needs storage and lives above).
//!
//! Responses are signed too (header [`RESPONSE_SIGNATURE_HEADER`]) over the
//! status, the request's nonce and the body hash, so a client knows the answer
//! is the partner's and is the answer to *this* request.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use paybridge_domain::partner::PartnerId;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::digest::{sha256, sha256_hex};

/// Authorization scheme name.
pub const SCHEME: &str = "PAYBRIDGE-ED25519";
/// Header carrying the signature of a response.
pub const RESPONSE_SIGNATURE_HEADER: &str = "paybridge-signature";
/// How far a signed timestamp may be from the receiver's clock, either way.
/// Five minutes tolerates ordinary clock drift; the nonce store must keep
/// nonces at least twice this long.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// Nonce length bounds, in characters of `[A-Za-z0-9_-]`.
pub const NONCE_MIN_LEN: usize = 16;
pub const NONCE_MAX_LEN: usize = 64;

const REQUEST_PREFIX: &str = "PAYBRIDGE-ED25519-V2";
const RESPONSE_PREFIX: &str = "PAYBRIDGE-ED25519-V1-RESPONSE";

/// A role's signing key.
pub struct PartnerKeyPair {
    signing: SigningKey,
}

impl PartnerKeyPair {
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The private seed, for writing the key file only.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    pub fn public(&self) -> PartnerPublicKey {
        PartnerPublicKey(self.signing.verifying_key())
    }

    fn sign(&self, message: &[u8]) -> String {
        B64.encode(self.signing.sign(message).to_bytes())
    }
}

impl fmt::Debug for PartnerKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartnerKeyPair(key_id={})", self.public().key_id())
    }
}

/// A partner's public key, shared out of band (`paybridge keys show`).
#[derive(Clone, PartialEq, Eq)]
pub struct PartnerPublicKey(VerifyingKey);

impl PartnerPublicKey {
    /// Short fingerprint naming the key in signed headers: the first 8 bytes
    /// of SHA-256 of the key, in hex.
    pub fn key_id(&self) -> String {
        hex::encode(&sha256(self.0.as_bytes())[..8])
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }

    fn verify(&self, message: &[u8], signature_b64: &str) -> Result<(), SignatureError> {
        let bytes = B64
            .decode(signature_b64)
            .map_err(|_| SignatureError::Malformed)?;
        let sig = Signature::from_slice(&bytes).map_err(|_| SignatureError::Malformed)?;
        // Strict: no malleable (non-canonical) signatures, no small-order keys.
        self.0
            .verify_strict(message, &sig)
            .map_err(|_| SignatureError::Invalid)
    }
}

impl fmt::Debug for PartnerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartnerPublicKey({})", self.to_base64())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a base64 Ed25519 public key")]
pub struct InvalidPublicKey;

impl FromStr for PartnerPublicKey {
    type Err = InvalidPublicKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes: [u8; 32] = B64
            .decode(s.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(InvalidPublicKey)?;
        VerifyingKey::from_bytes(&bytes)
            .map(PartnerPublicKey)
            .map_err(|_| InvalidPublicKey)
    }
}

/// Why a signature was refused. Each maps to its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the request is addressed to another party")]
    WrongAudience,
    #[error("the signed timestamp is outside the accepted window")]
    Expired,
    #[error("the signature does not verify")]
    Invalid,
}

/// A fresh random nonce: 16 bytes, hex.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What a request signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// Path with its query string, exactly as sent (`/v1/partner/ping?x=1`).
    pub path_and_query: &'a str,
    pub from: &'a PartnerId,
    pub to: &'a PartnerId,
    pub timestamp: i64,
    pub nonce: &'a str,
    /// The headers that change what the request means, as sent (empty
    /// when absent): a man in the middle cannot swap the retry key of a
    /// debit or the body's media type.
    pub headers: SignedHeaders<'a>,
    pub body: &'a [u8],
}

/// The request headers a signature covers besides the authorization.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedHeaders<'a> {
    pub content_type: &'a str,
    pub idempotency_key: &'a str,
}

impl SignedRequest<'_> {
    /// The exact bytes the signature covers (see `docs/PARTNER-API.md`).
    pub fn canonical(&self) -> String {
        format!(
            "{REQUEST_PREFIX}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.method.to_ascii_uppercase(),
            self.path_and_query,
            self.from,
            self.to,
            self.timestamp,
            self.nonce,
            self.headers.content_type,
            self.headers.idempotency_key,
            sha256_hex(self.body)
        )
    }

    /// The `Authorization` header value for this request.
    pub fn authorization(&self, key: &PartnerKeyPair) -> String {
        format!(
            "{SCHEME} partner=\"{}\",to=\"{}\",key_id=\"{}\",timestamp=\"{}\",nonce=\"{}\",signature=\"{}\"",
            self.from,
            self.to,
            key.public().key_id(),
            self.timestamp,
            self.nonce,
            key.sign(self.canonical().as_bytes())
        )
    }
}

/// A request as the receiver got it: what the signature must cover.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub method: &'a str,
    /// Path with its query string, exactly as received.
    pub path_and_query: &'a str,
    pub headers: SignedHeaders<'a>,
    pub body: &'a [u8],
}

/// The parameters of a parsed `Authorization: PAYBRIDGE-ED25519 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationParams {
    pub partner: PartnerId,
    pub to: PartnerId,
    pub key_id: String,
    pub timestamp: i64,
    pub nonce: String,
    pub signature: String,
}

impl AuthorizationParams {
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let rest = header
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(SignatureError::Malformed)?;
        let params = parse_params(rest)?;
        let get = |name: &str| params.get(name).ok_or(SignatureError::Malformed);
        let nonce = get("nonce")?;
        if !valid_nonce(nonce) {
            return Err(SignatureError::Malformed);
        }
        Ok(Self {
            partner: get("partner")?
                .parse()
                .map_err(|_| SignatureError::Malformed)?,
            to: get("to")?.parse().map_err(|_| SignatureError::Malformed)?,
            key_id: get("key_id")?.to_string(),
            timestamp: canonical_timestamp(get("timestamp")?)?,
            nonce: nonce.to_string(),
            signature: get("signature")?.to_string(),
        })
    }

    /// Checks audience, freshness and the signature itself. The nonce's
    /// uniqueness is the caller's to check, after this succeeds (so that only
    /// authentic requests can fill the nonce store).
    pub fn verify(
        &self,
        me: &PartnerId,
        key: &PartnerPublicKey,
        request: &Received<'_>,
        now_unix: i64,
    ) -> Result<(), SignatureError> {
        if &self.to != me {
            return Err(SignatureError::WrongAudience);
        }
        if !fresh(now_unix, self.timestamp) {
            return Err(SignatureError::Expired);
        }
        let signed = SignedRequest {
            method: request.method,
            path_and_query: request.path_and_query,
            from: &self.partner,
            to: &self.to,
            timestamp: self.timestamp,
            nonce: &self.nonce,
            headers: request.headers,
            body: request.body,
        };
        key.verify(signed.canonical().as_bytes(), &self.signature)
    }
}

/// A timestamp as the canonical string already signs it: decimal digits,
/// no sign, no leading zero (`0` itself aside), at most 19 digits. Anything
/// else (`+1`, `01`, ` 1`) would be a second spelling of a signed value.
fn canonical_timestamp(text: &str) -> Result<i64, SignatureError> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    let canonical =
        digits && !text.is_empty() && text.len() <= 19 && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(SignatureError::Malformed);
    }
    text.parse().map_err(|_| SignatureError::Malformed)
}

/// Whether `timestamp` is within [`MAX_CLOCK_SKEW_SECS`] of `now_unix`,
/// either way, without overflow for any pair of values.
fn fresh(now_unix: i64, timestamp: i64) -> bool {
    now_unix
        .checked_sub(timestamp)
        .and_then(i64::checked_abs)
        .is_some_and(|skew| skew <= MAX_CLOCK_SKEW_SECS)
}

/// What a response signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedResponse<'a> {
    pub from: &'a PartnerId,
    pub status: u16,
    /// The nonce of the request this answers.
    pub request_nonce: &'a str,
    pub timestamp: i64,
    pub nonce: &'a str,
    pub body: &'a [u8],
}

impl SignedResponse<'_> {
    /// The exact bytes the response signature covers.
    pub fn canonical(&self) -> String {
        format!(
            "{RESPONSE_PREFIX}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.status,
            self.request_nonce,
            self.from,
            self.timestamp,
            self.nonce,
            sha256_hex(self.body)
        )
    }

    /// The [`RESPONSE_SIGNATURE_HEADER`] value.
    pub fn header(&self, key: &PartnerKeyPair) -> String {
        format!(
            "partner=\"{}\",key_id=\"{}\",timestamp=\"{}\",nonce=\"{}\",signature=\"{}\"",
            self.from,
            key.public().key_id(),
            self.timestamp,
            self.nonce,
            key.sign(self.canonical().as_bytes())
        )
    }
}

/// Verifies a response's signature header against the partner we called.
pub fn verify_response(
    header: Option<&str>,
    expected_from: &PartnerId,
    keys: &[PartnerPublicKey],
    status: u16,
    request_nonce: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let params = parse_params(header.ok_or(SignatureError::Missing)?)?;
    let get = |name: &str| params.get(name).ok_or(SignatureError::Malformed);
    if *get("partner")? != expected_from.as_str() {
        return Err(SignatureError::Invalid);
    }
    let timestamp = canonical_timestamp(get("timestamp")?)?;
    if !fresh(now_unix, timestamp) {
        return Err(SignatureError::Expired);
    }
    let key_id = get("key_id")?;
    let key = keys
        .iter()
        .find(|k| k.key_id() == *key_id)
        .ok_or(SignatureError::Invalid)?;
    let signed = SignedResponse {
        from: expected_from,
        status,
        request_nonce,
        timestamp,
        nonce: get("nonce")?,
        body,
    };
    key.verify(signed.canonical().as_bytes(), get("signature")?)
}

fn valid_nonce(nonce: &str) -> bool {
    (NONCE_MIN_LEN..=NONCE_MAX_LEN).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses `a="1",b="2"` into a map. Values may not contain quotes or commas,
/// which none of ours do (ids, digits, hex, base64).
fn parse_params(s: &str) -> Result<std::collections::HashMap<&str, &str>, SignatureError> {
    let mut map = std::collections::HashMap::new();
    for part in s.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or(SignatureError::Malformed)?;
        if map.insert(name.trim(), value).is_some() {
            return Err(SignatureError::Malformed);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_canonical_and_their_arithmetic_cannot_overflow() {
        assert_eq!(canonical_timestamp("1764576000"), Ok(1_764_576_000));
        assert_eq!(canonical_timestamp("0"), Ok(0));
        for odd in [
            "+1764576000",
            "01764576000",
            " 1",
            "1 ",
            "",
            "-1",
            "-9223372036854775808",
            "99999999999999999999",
            "1e9",
        ] {
            assert_eq!(
                canonical_timestamp(odd),
                Err(SignatureError::Malformed),
                "{odd:?}"
            );
        }
        assert!(fresh(1_000, 1_000 + MAX_CLOCK_SKEW_SECS));
        assert!(!fresh(1_000, 1_001 + MAX_CLOCK_SKEW_SECS));
        for (now, ts) in [
            (i64::MAX, i64::MIN),
            (i64::MIN, i64::MAX),
            (0, i64::MIN),
            (1_764_576_000, i64::MIN),
        ] {
            assert!(!fresh(now, ts), "{now} {ts}");
        }
    }

    fn ids() -> (PartnerId, PartnerId) {
        ("demo-bank".parse().unwrap(), "wallet".parse().unwrap())
    }

    fn signed_header(key: &PartnerKeyPair, body: &[u8], timestamp: i64) -> String {
        let (bank, wallet) = ids();
        SignedRequest {
            method: "POST",
            path_and_query: "/v1/partner/events?x=1",
            from: &bank,
            to: &wallet,
            timestamp,
            nonce: "0123456789abcdef0123",
            headers: JSON_KEYED,
            body,
        }
        .authorization(key)
    }

    fn received<'a>(
        method: &'a str,
        path_and_query: &'a str,
        headers: SignedHeaders<'a>,
        body: &'a [u8],
    ) -> Received<'a> {
        Received {
            method,
            path_and_query,
            headers,
            body,
        }
    }

    const JSON_KEYED: SignedHeaders<'static> = SignedHeaders {
        content_type: "application/json",
        idempotency_key: "debit:ord_1",
    };

    #[test]
    fn a_signed_request_verifies() {
        let key = PartnerKeyPair::generate();
        let header = signed_header(&key, b"{}", 1_000);
        let params = AuthorizationParams::parse(&header).unwrap();
        assert_eq!(params.key_id, key.public().key_id());
        let (_, wallet) = ids();
        params
            .verify(
                &wallet,
                &key.public(),
                &received("POST", "/v1/partner/events?x=1", JSON_KEYED, b"{}"),
                1_100,
            )
            .unwrap();
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let key = PartnerKeyPair::generate();
        let params = AuthorizationParams::parse(&signed_header(&key, b"{}", 1_000)).unwrap();
        let (bank, wallet) = ids();
        let pk = key.public();
        let path = "/v1/partner/events?x=1";
        let check = |m: &str, p: &str, b: &[u8]| {
            params.verify(&wallet, &pk, &received(m, p, JSON_KEYED, b), 1_000)
        };
        assert_eq!(check("PUT", path, b"{}"), Err(SignatureError::Invalid));
        assert_eq!(
            check("POST", "/v1/partner/events?x=2", b"{}"),
            Err(SignatureError::Invalid)
        );
        assert_eq!(check("POST", path, b"{ }"), Err(SignatureError::Invalid));
        // The retry key and the media type are signed too.
        for headers in [
            SignedHeaders {
                idempotency_key: "debit:ord_2",
                ..JSON_KEYED
            },
            SignedHeaders {
                idempotency_key: "",
                ..JSON_KEYED
            },
            SignedHeaders {
                content_type: "text/plain",
                ..JSON_KEYED
            },
        ] {
            assert_eq!(
                params.verify(&wallet, &pk, &received("POST", path, headers, b"{}"), 1_000),
                Err(SignatureError::Invalid),
                "{headers:?}"
            );
        }
        let other = PartnerKeyPair::generate().public();
        assert_eq!(
            params.verify(
                &wallet,
                &other,
                &received("POST", path, JSON_KEYED, b"{}"),
                1_000
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            params.verify(
                &bank,
                &pk,
                &received("POST", path, JSON_KEYED, b"{}"),
                1_000
            ),
            Err(SignatureError::WrongAudience)
        );
    }

    #[test]
    fn stale_or_future_timestamps_are_refused() {
        let key = PartnerKeyPair::generate();
        let params = AuthorizationParams::parse(&signed_header(&key, b"", 10_000)).unwrap();
        let (_, wallet) = ids();
        let verify = |now| {
            params.verify(
                &wallet,
                &key.public(),
                &received("POST", "/v1/partner/events?x=1", JSON_KEYED, b""),
                now,
            )
        };
        assert!(verify(10_000 + MAX_CLOCK_SKEW_SECS).is_ok());
        assert_eq!(
            verify(10_000 + MAX_CLOCK_SKEW_SECS + 1),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(10_000 - MAX_CLOCK_SKEW_SECS - 1),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "",
            "Bearer abc",
            "PAYBRIDGE-ED25519 partner=demo-bank",
            "PAYBRIDGE-ED25519 partner=\"demo-bank\",to=\"wallet\"",
            "PAYBRIDGE-ED25519 partner=\"demo-bank\",to=\"wallet\",key_id=\"k\",timestamp=\"x\",nonce=\"0123456789abcdef\",signature=\"s\"",
            "PAYBRIDGE-ED25519 partner=\"demo-bank\",to=\"wallet\",key_id=\"k\",timestamp=\"1\",nonce=\"short\",signature=\"s\"",
        ] {
            assert_eq!(AuthorizationParams::parse(bad), Err(SignatureError::Malformed), "{bad}");
        }
    }

    #[test]
    fn responses_are_bound_to_their_request() {
        let key = PartnerKeyPair::generate();
        let (_, wallet) = ids();
        let header = SignedResponse {
            from: &wallet,
            status: 200,
            request_nonce: "request-nonce-0001",
            timestamp: 50,
            nonce: &new_nonce(),
            body: b"{\"ok\":true}",
        }
        .header(&key);
        let keys = [key.public()];
        let verify = |status, req_nonce, body: &[u8]| {
            verify_response(Some(&header), &wallet, &keys, status, req_nonce, body, 60)
        };
        assert!(verify(200, "request-nonce-0001", b"{\"ok\":true}").is_ok());
        assert_eq!(
            verify(201, "request-nonce-0001", b"{\"ok\":true}"),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(200, "request-nonce-0002", b"{\"ok\":true}"),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(200, "request-nonce-0001", b"{\"ok\":false}"),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify_response(None, &wallet, &keys, 200, "request-nonce-0001", b"", 60),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn public_keys_round_trip_as_base64() {
        let key = PartnerKeyPair::generate();
        let text = key.public().to_base64();
        assert_eq!(text.parse::<PartnerPublicKey>().unwrap(), key.public());
        assert!("not-a-key".parse::<PartnerPublicKey>().is_err());
    }
}
