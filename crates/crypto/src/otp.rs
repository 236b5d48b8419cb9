//! One-time passwords: six digits from the OS CSPRNG, stored only as a keyed
//! hash (HMAC-SHA256 bound to the challenge id, so equal codes of two
//! challenges hash differently and a stolen table is no dictionary), compared
//! in constant time.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// Digits in a code.
pub const OTP_DIGITS: usize = 6;

/// A fresh code, uniformly from 000000 to 999999.
pub fn generate_code() -> Secret<String> {
    let n: u32 = rand::rngs::OsRng.gen_range(0..1_000_000);
    Secret::new(format!("{n:06}"))
}

/// Whether `text` has the shape of a code (so junk is refused before hashing).
pub fn well_formed(text: &str) -> bool {
    text.len() == OTP_DIGITS && text.bytes().all(|b| b.is_ascii_digit())
}

/// The key OTP hashes are made with.
#[derive(Clone)]
pub struct OtpHasher(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for OtpHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpHasher(***)")
    }
}

impl OtpHasher {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    fn mac(&self, challenge_id: &str, code: &str) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.0.as_slice()).expect("HMAC takes any key length");
        mac.update(challenge_id.as_bytes());
        mac.update(&[0]);
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The stored form of `code` for `challenge_id` (hex).
    pub fn hash(&self, challenge_id: &str, code: &str) -> String {
        hex::encode(self.mac(challenge_id, code))
    }

    /// Whether `code` matches `stored`, in time independent of where they differ.
    pub fn matches(&self, stored: &str, challenge_id: &str, code: &str) -> bool {
        let Ok(stored) = hex::decode(stored) else {
            return false;
        };
        stored.ct_eq(&self.mac(challenge_id, code)).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> =
            (0..200).map(|_| generate_code().expose().clone()).collect();
        assert!(codes.len() > 190);
        assert!(codes.iter().all(|c| well_formed(c)));
        assert!(!well_formed("12345") && !well_formed("12345a") && !well_formed("1234567"));
    }

    #[test]
    fn hashes_are_keyed_and_bound_to_the_challenge() {
        let h = OtpHasher::from_bytes([3; 32]);
        let stored = h.hash("otp_a", "123456");
        assert!(!stored.contains("123456"));
        assert!(h.matches(&stored, "otp_a", "123456"));
        assert!(!h.matches(&stored, "otp_a", "123457"));
        assert!(
            !h.matches(&stored, "otp_b", "123456"),
            "bound to its challenge"
        );
        assert!(
            !OtpHasher::from_bytes([4; 32]).matches(&stored, "otp_a", "123456"),
            "keyed"
        );
        assert!(!h.matches("not hex", "otp_a", "123456"));
    }
}
