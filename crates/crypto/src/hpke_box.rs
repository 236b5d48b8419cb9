//! Key material sealed to one device's secure element: HPKE (RFC 9180) in
//! base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM.
//!
//! A phone's WebAuthn passkey signs but cannot decrypt, so its secure
//! element makes an encryption key pair of its own ([`SecureElementKey`]);
//! the public half is registered with the wallet under the device key's
//! signature, and the issuer seals a token's key material to it
//! ([`seal_to`]). Only the secure element opens it: not the wallet, not the
//! app around the secure element, not anything in between. The `info`
//! names what is sealed and the `aad` binds it to its token, so a box moved
//! to another token, or opened for another purpose, fails.
//!
//! A sealed box travels as text: `hpke1.<base64url enc>.<base64url ciphertext>`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

type Suite = X25519HkdfSha256;
type PrivateKey = <Suite as Kem>::PrivateKey;
type PublicKey = <Suite as Kem>::PublicKey;
type EncappedKey = <Suite as Kem>::EncappedKey;

const PREFIX: &str = "hpke1";
/// A sealed box longer than this (as text) is refused before it is parsed.
pub const BOX_MAX_LEN: usize = 16 * 1024;

/// Why a box could not be sealed or opened. Says what, never echoes input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HpkeBoxError {
    #[error("not an X25519 public key (32 bytes)")]
    BadPublicKey,
    #[error("not a sealed box of the form hpke1.<enc>.<ciphertext>")]
    Malformed,
    #[error("the sealed box does not open with this key, info and associated data")]
    Open,
    #[error("sealing failed")]
    Seal,
}

/// A secure element's encryption key pair. The private half never leaves it.
pub struct SecureElementKey {
    private: PrivateKey,
    public: PublicKey,
}

impl std::fmt::Debug for SecureElementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecureElementKey(public={})", self.public_base64())
    }
}

impl SecureElementKey {
    /// A key pair made now from the OS's randomness.
    pub fn generate() -> Self {
        let (private, public) = Suite::gen_keypair(&mut rand::rngs::OsRng);
        Self { private, public }
    }

    /// The key pair a secure element keeps as 32 private bytes (sealed at
    /// rest by the element's own storage key).
    pub fn from_private_bytes(bytes: &[u8; 32]) -> Result<Self, HpkeBoxError> {
        let private = PrivateKey::from_bytes(bytes).map_err(|_| HpkeBoxError::BadPublicKey)?;
        let public = Suite::sk_to_pk(&private);
        Ok(Self { private, public })
    }

    /// The private half, to be kept sealed by the secure element.
    pub fn private_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.private.to_bytes().to_vec())
    }

    /// The public half, base64url: what the wallet registers.
    pub fn public_base64(&self) -> String {
        B64URL.encode(self.public.to_bytes())
    }

    /// Opens a box sealed to this key for `info` and `aad`.
    pub fn open(
        &self,
        sealed: &str,
        info: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HpkeBoxError> {
        if sealed.len() > BOX_MAX_LEN {
            return Err(HpkeBoxError::Malformed);
        }
        let mut parts = sealed.split('.');
        let (Some(PREFIX), Some(enc), Some(ct), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HpkeBoxError::Malformed);
        };
        let enc = B64URL.decode(enc).map_err(|_| HpkeBoxError::Malformed)?;
        let ct = B64URL.decode(ct).map_err(|_| HpkeBoxError::Malformed)?;
        let encapped = EncappedKey::from_bytes(&enc).map_err(|_| HpkeBoxError::Malformed)?;
        hpke::single_shot_open::<AesGcm256, HkdfSha256, Suite>(
            &OpModeR::Base,
            &self.private,
            &encapped,
            info,
            &ct,
            aad,
        )
        .map(Zeroizing::new)
        .map_err(|_| HpkeBoxError::Open)
    }
}

/// Whether `public` (base64url) is an X25519 public key a box can be sealed to.
pub fn check_public_key(public: &str) -> Result<(), HpkeBoxError> {
    public_key(public).map(|_| ())
}

fn public_key(public: &str) -> Result<PublicKey, HpkeBoxError> {
    let bytes = B64URL
        .decode(public)
        .map_err(|_| HpkeBoxError::BadPublicKey)?;
    if bytes.len() != 32 {
        return Err(HpkeBoxError::BadPublicKey);
    }
    PublicKey::from_bytes(&bytes).map_err(|_| HpkeBoxError::BadPublicKey)
}

/// Seals `plaintext` to the secure element whose public key is `public`
/// (base64url), for `info` and bound to `aad`.
pub fn seal_to(
    public: &str,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<String, HpkeBoxError> {
    let pk = public_key(public)?;
    let (encapped, ct) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Suite, _>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        aad,
        &mut rand::rngs::OsRng,
    )
    .map_err(|_| HpkeBoxError::Seal)?;
    Ok(format!(
        "{PREFIX}.{}.{}",
        B64URL.encode(encapped.to_bytes()),
        B64URL.encode(ct)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secure_element_opens_what_was_sealed_to_it_for_that_purpose() {
        let se = SecureElementKey::generate();
        let boxed = seal_to(&se.public_base64(), b"token-keys", b"ctk_1", b"secret key").unwrap();
        assert!(boxed.starts_with("hpke1."));
        assert_eq!(
            se.open(&boxed, b"token-keys", b"ctk_1").unwrap().as_slice(),
            b"secret key"
        );
        // Another key, another purpose, another token, a changed box: no.
        let other = SecureElementKey::generate();
        assert_eq!(
            other.open(&boxed, b"token-keys", b"ctk_1").unwrap_err(),
            HpkeBoxError::Open
        );
        assert_eq!(
            se.open(&boxed, b"other", b"ctk_1").unwrap_err(),
            HpkeBoxError::Open
        );
        assert_eq!(
            se.open(&boxed, b"token-keys", b"ctk_2").unwrap_err(),
            HpkeBoxError::Open
        );
        let mut tampered = boxed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(se.open(&tampered, b"token-keys", b"ctk_1").is_err());
        for bad in ["", "hpke1.a", "hpke2.AA.AA", "hpke1.!!.AA"] {
            assert_eq!(
                se.open(bad, b"", b"").unwrap_err(),
                HpkeBoxError::Malformed,
                "{bad}"
            );
        }
        // Each seal is fresh (a new ephemeral key).
        assert_ne!(
            seal_to(&se.public_base64(), b"i", b"a", b"p").unwrap(),
            seal_to(&se.public_base64(), b"i", b"a", b"p").unwrap()
        );
    }

    #[test]
    fn a_key_pair_survives_its_private_bytes_and_bad_public_keys_are_refused() {
        let se = SecureElementKey::generate();
        let bytes: [u8; 32] = se.private_bytes().as_slice().try_into().unwrap();
        let again = SecureElementKey::from_private_bytes(&bytes).unwrap();
        assert_eq!(again.public_base64(), se.public_base64());
        let boxed = seal_to(&se.public_base64(), b"i", b"a", b"p").unwrap();
        assert_eq!(again.open(&boxed, b"i", b"a").unwrap().as_slice(), b"p");
        for bad in ["", "AAAA", &B64URL.encode([0u8; 31])] {
            assert_eq!(
                check_public_key(bad).unwrap_err(),
                HpkeBoxError::BadPublicKey
            );
        }
        assert!(check_public_key(&se.public_base64()).is_ok());
        assert!(!format!("{se:?}").contains(&B64URL.encode(bytes)));
    }
}
