//! Webhook signatures, as Stripe makes them: the header
//! `paybridge-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`
//! with the endpoint's secret. The receiver recomputes it, compares in
//! constant time and refuses timestamps too far from its clock (replays).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Header carrying the signature.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "paybridge-signature";
/// How far a receiver should accept the timestamp from its clock.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// A fresh endpoint secret: `whsec_` and 64 hex characters.
pub fn generate_secret() -> Secret<String> {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    Secret::new(format!("whsec_{}", hex::encode(b)))
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// The header value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

/// Whether `header` is a valid signature of `body` within the tolerance of `now`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > WEBHOOK_TOLERANCE_SECS {
        return false;
    }
    let expected = mac(secret, t, body);
    sigs.iter()
        .any(|s| bool::from(s.as_slice().ct_eq(&expected)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_body_secret_and_time() {
        let secret = generate_secret();
        let body = br#"{"id":"evt_1"}"#;
        let h = sign(secret.expose(), 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert!(verify(secret.expose(), &h, body, 1_700_000_100));
        assert!(!verify(
            secret.expose(),
            &h,
            br#"{"id":"evt_2"}"#,
            1_700_000_100
        ));
        assert!(!verify("whsec_other", &h, body, 1_700_000_100));
        assert!(
            !verify(secret.expose(), &h, body, 1_700_000_400),
            "too old: a replay"
        );
        assert!(!verify(secret.expose(), "v1=00", body, 1_700_000_000));
    }
}
