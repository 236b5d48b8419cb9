//! The master key: the one secret an operator must keep (in the data
//! directory, `master.key`, mode 0600, or in `PAYBRIDGE_MASTER_KEY`, e.g. from
//! a secrets manager). Everything else is derived from it or wrapped by it:
//!
//! - the key-encryption keys (KEKs) of envelope encryption are random, stored
//!   in the role's database wrapped by a key derived from the master key, and
//!   rotated with `paybridge keys rotate` without touching the master key;
//! - the HMAC keys of blind indexes, OTP hashes and session-token hashes are
//!   derived (HKDF-SHA256) per role and purpose. They are not rotated: a new
//!   index key would orphan every look-up.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::blind_index::BlindIndexKey;
use crate::envelope::Kek;
use crate::otp::OtpHasher;
use crate::token::TokenHasher;

/// The environment variable that carries the master key (base64, 32 bytes).
pub const MASTER_KEY_ENV: &str = "PAYBRIDGE_MASTER_KEY";

#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// Why a wrapped KEK could not be unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "key-encryption key {0} cannot be unwrapped: the master key is not the one it was stored with"
)]
pub struct WrongMasterKey(pub String);

/// The HMAC keys a role derives from the master key.
#[derive(Debug, Clone)]
pub struct DerivedKeys {
    pub index: BlindIndexKey,
    pub otp: OtpHasher,
    pub tokens: TokenHasher,
}

impl MasterKey {
    pub fn from_bytes(key: Zeroizing<[u8; 32]>) -> Self {
        Self(key)
    }

    pub fn generate() -> Zeroizing<[u8; 32]> {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut_slice());
        k
    }

    /// A 32-byte key for `purpose` of `role`, independent of every other.
    pub fn derive(&self, role: &str, purpose: &str) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"paybridge-master-v1"), self.0.as_slice());
        let mut out = Zeroizing::new([0u8; 32]);
        hk.expand(format!("{role}/{purpose}").as_bytes(), out.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    pub fn derived_keys(&self, role: &str) -> DerivedKeys {
        DerivedKeys {
            index: BlindIndexKey::from_bytes(*self.derive(role, "blind-index")),
            otp: OtpHasher::from_bytes(*self.derive(role, "otp")),
            tokens: TokenHasher::from_bytes(*self.derive(role, "session-tokens")),
        }
    }

    /// A KEK as stored: AES-256-GCM under the role's wrapping key, bound to its id.
    pub fn wrap_kek(&self, role: &str, kek: &Kek) -> String {
        let key = self.derive(role, "kek-wrapping");
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = Aes256Gcm::new_from_slice(key.as_slice())
            .expect("32-byte key")
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: kek.bytes(),
                    aad: kek.id().as_bytes(),
                },
            )
            .expect("AES-GCM encryption of in-memory data cannot fail");
        B64.encode([nonce.as_slice(), &ct].concat())
    }

    pub fn unwrap_kek(&self, role: &str, id: &str, wrapped: &str) -> Result<Kek, WrongMasterKey> {
        let wrong = || WrongMasterKey(id.to_owned());
        let bytes = B64.decode(wrapped).map_err(|_| wrong())?;
        if bytes.len() < 12 {
            return Err(wrong());
        }
        let (nonce, ct) = bytes.split_at(12);
        let key = self.derive(role, "kek-wrapping");
        let plain = Zeroizing::new(
            Aes256Gcm::new_from_slice(key.as_slice())
                .expect("32-byte key")
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ct,
                        aad: id.as_bytes(),
                    },
                )
                .map_err(|_| wrong())?,
        );
        let arr: [u8; 32] = plain.as_slice().try_into().map_err(|_| wrong())?;
        let kek = Kek::from_bytes(arr);
        if kek.id() != id {
            return Err(wrong());
        }
        Ok(kek)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keks_round_trip_only_under_the_same_master_key_and_role() {
        let master = MasterKey::from_bytes(MasterKey::generate());
        let kek = Kek::generate();
        let wrapped = master.wrap_kek("issuer", &kek);
        let back = master.unwrap_kek("issuer", kek.id(), &wrapped).unwrap();
        assert_eq!(back.bytes(), kek.bytes());
        assert!(master.unwrap_kek("wallet", kek.id(), &wrapped).is_err());
        let other = MasterKey::from_bytes(MasterKey::generate());
        assert!(other.unwrap_kek("issuer", kek.id(), &wrapped).is_err());
    }

    #[test]
    fn derivations_differ_by_role_and_purpose_and_are_stable() {
        let master = MasterKey::from_bytes(Zeroizing::new([7u8; 32]));
        let a = master.derive("wallet", "otp");
        assert_eq!(*a, *master.derive("wallet", "otp"));
        assert_ne!(*a, *master.derive("issuer", "otp"));
        assert_ne!(*a, *master.derive("wallet", "blind-index"));
    }
}
