//! Opaque bearer tokens: sessions, and the one-time handles a QR code carries
//! (binding addresses, payment codes). A token is 256 random bits shown to
//! the client once; the store keeps only its keyed hash (HMAC-SHA256), so a
//! copy of the database opens no session. Look-up is by the hash itself,
//! which is why it must be deterministic (no salt) and keyed (no dictionary).

use std::fmt;

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// What a token opens. Each kind has its own prefix, so a leaked one is
/// recognisable (secret scanners), says what it is, and a token of one kind
/// is junk where another is expected (refused before hashing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A login session (wallet account or bank app): `pbs_…`.
    Session,
    /// A binding address's secret (flow F1; the bank app's QR code): `pbb_…`.
    BindingAddress,
    /// A payment request's one-time code (flow F4; the terminal's QR code): `pbq_…`.
    PaymentCode,
}

impl TokenKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "pbs_",
            TokenKind::BindingAddress => "pbb_",
            TokenKind::PaymentCode => "pbq_",
        }
    }
}

/// A fresh token of `kind`: its prefix and 52 base32 characters.
pub fn generate_token(kind: TokenKind) -> Secret<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut_slice());
    Secret::new(format!(
        "{}{}",
        kind.prefix(),
        BASE32_NOPAD.encode(bytes.as_slice()).to_lowercase()
    ))
}

/// Whether `text` has the shape of a token of `kind`.
pub fn well_formed_token(kind: TokenKind, text: &str) -> bool {
    text.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == 52
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    })
}

#[derive(Clone)]
pub struct TokenHasher(Zeroizing<[u8; 32]>);

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher(***)")
    }
}

impl TokenHasher {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// The keyed hash (hex) of any bytes, e.g. a request body that carries
    /// a password: unlike a plain SHA-256 it cannot be brute-forced without
    /// the key.
    pub fn hash_bytes(&self, bytes: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.0.as_slice()).expect("HMAC takes any key length");
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }

    /// The stored form (hex).
    pub fn hash(&self, token: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.0.as_slice()).expect("HMAC takes any key length");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_body_hash_is_no_plain_digest_and_needs_the_key() {
        let body = br#"{"phone":"13800138000","password":"123456"}"#;
        let a = TokenHasher::from_bytes([1; 32]).hash_bytes(body);
        assert_eq!(a, TokenHasher::from_bytes([1; 32]).hash_bytes(body));
        assert_ne!(a, TokenHasher::from_bytes([2; 32]).hash_bytes(body));
        assert_ne!(
            a,
            crate::digest::sha256_hex(body),
            "not guessable without the key"
        );
    }

    #[test]
    fn tokens_are_unique_well_formed_and_hash_by_key() {
        let a = generate_token(TokenKind::Session);
        let b = generate_token(TokenKind::Session);
        assert_ne!(a.expose(), b.expose());
        assert!(well_formed_token(TokenKind::Session, a.expose()));
        assert!(!well_formed_token(TokenKind::Session, "pbs_short"));
        assert!(!well_formed_token(
            TokenKind::Session,
            &a.expose().replace("pbs_", "xyz_")
        ));
        let code = generate_token(TokenKind::PaymentCode);
        assert!(code.expose().starts_with("pbq_"));
        assert!(!well_formed_token(TokenKind::Session, code.expose()));
        assert!(generate_token(TokenKind::BindingAddress)
            .expose()
            .starts_with("pbb_"));
        let h1 = TokenHasher::from_bytes([1; 32]);
        let h2 = TokenHasher::from_bytes([2; 32]);
        assert_eq!(h1.hash(a.expose()), h1.hash(a.expose()));
        assert_ne!(h1.hash(a.expose()), h2.hash(a.expose()));
        assert!(!h1.hash(a.expose()).contains(&a.expose()[4..]));
    }
}
