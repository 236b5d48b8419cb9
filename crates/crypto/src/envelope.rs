//! Envelope encryption for data at rest (PANs, ID numbers, agreements).
//!
//! Each value is encrypted with its own random data key (AES-256-GCM); the
//! data key is wrapped with a key-encryption key (KEK) from the [`Keyring`],
//! named by its key id. The associated data binds a ciphertext to where it
//! belongs (`"card.pan:card_…"`), so a ciphertext copied to another row does
//! not decrypt. Sealed values are text:
//!
//! ```text
//! pb1.<kek id>.<base64 nonce‖wrapped data key>.<base64 nonce‖ciphertext>
//! ```
//!
//! Rotation: a new KEK becomes active; values sealed under older KEKs stay
//! readable, and [`Keyring::rewrap`] moves one to the active KEK by
//! re-wrapping only its data key (the ciphertext is untouched), which is what
//! `paybridge keys rotate` does row by row.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::digest::sha256;
use crate::secret::Secret;

const VERSION: &str = "pb1";
const NONCE_BYTES: usize = 12;

/// A key-encryption key and its id (a fingerprint, so ids never collide).
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl Kek {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let id = format!(
            "k{}",
            hex::encode(&sha256(&[b"paybridge-kek:".as_slice(), &key].concat())[..6])
        );
        Self {
            id,
            key: Zeroizing::new(key),
        }
    }

    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::from_bytes(key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({})", self.id)
    }
}

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a sealed value")]
    Malformed,
    #[error("sealed under a key this keyring does not have")]
    UnknownKey,
    #[error("the value or its context was altered, or the key is wrong")]
    Tampered,
}

/// The KEKs: one active (used to seal), all usable to open.
#[derive(Clone)]
pub struct Keyring {
    active: String,
    keys: BTreeMap<String, Kek>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Keyring(active={}, keys={:?})",
            self.active,
            self.keys.keys().collect::<Vec<_>>()
        )
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

fn gcm_seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce = random::<NONCE_BYTES>();
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of in-memory data cannot fail");
    [nonce.as_slice(), &ct].concat()
}

fn gcm_open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.len() < NONCE_BYTES + 16 {
        return Err(EnvelopeError::Malformed);
    }
    let (nonce, ct) = sealed.split_at(NONCE_BYTES);
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| EnvelopeError::Tampered)
}

struct Parts<'a> {
    kek_id: &'a str,
    wrapped: Vec<u8>,
    body: Vec<u8>,
}

fn parse(sealed: &str) -> Result<Parts<'_>, EnvelopeError> {
    let mut it = sealed.split('.');
    let (Some(VERSION), Some(kek_id), Some(wrapped), Some(body), None) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return Err(EnvelopeError::Malformed);
    };
    Ok(Parts {
        kek_id,
        wrapped: B64.decode(wrapped).map_err(|_| EnvelopeError::Malformed)?,
        body: B64.decode(body).map_err(|_| EnvelopeError::Malformed)?,
    })
}

impl Keyring {
    /// A keyring whose active key is `active`, also able to open values
    /// sealed under `older`.
    pub fn new(active: Kek, older: impl IntoIterator<Item = Kek>) -> Self {
        let mut keys: BTreeMap<String, Kek> =
            older.into_iter().map(|k| (k.id.clone(), k)).collect();
        let id = active.id.clone();
        keys.insert(id.clone(), active);
        Self { active: id, keys }
    }

    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// Encrypts `plaintext` for the place named by `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let kek = &self.keys[&self.active];
        let data_key = Zeroizing::new(random::<32>());
        let body = gcm_seal(&data_key, plaintext, context.as_bytes());
        let wrapped = gcm_seal(kek.bytes(), data_key.as_slice(), kek.id.as_bytes());
        format!(
            "{VERSION}.{}.{}.{}",
            kek.id,
            B64.encode(wrapped),
            B64.encode(body)
        )
    }

    fn data_key(&self, parts: &Parts<'_>) -> Result<Zeroizing<[u8; 32]>, EnvelopeError> {
        let kek = self
            .keys
            .get(parts.kek_id)
            .ok_or(EnvelopeError::UnknownKey)?;
        let key = Zeroizing::new(gcm_open(kek.bytes(), &parts.wrapped, kek.id.as_bytes())?);
        let key: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| EnvelopeError::Malformed)?;
        Ok(Zeroizing::new(key))
    }

    /// Decrypts a value sealed for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret<Vec<u8>>, EnvelopeError> {
        let parts = parse(sealed)?;
        let data_key = self.data_key(&parts)?;
        gcm_open(&data_key, &parts.body, context.as_bytes()).map(Secret::new)
    }

    /// Whether `sealed` is under an older KEK.
    pub fn needs_rewrap(&self, sealed: &str) -> Result<bool, EnvelopeError> {
        Ok(parse(sealed)?.kek_id != self.active)
    }

    /// Moves a value to the active KEK: its data key is re-wrapped, its
    /// ciphertext kept. The context is checked on the way.
    pub fn rewrap(&self, sealed: &str, context: &str) -> Result<String, EnvelopeError> {
        let parts = parse(sealed)?;
        let data_key = self.data_key(&parts)?;
        gcm_open(&data_key, &parts.body, context.as_bytes())?;
        let kek = &self.keys[&self.active];
        let wrapped = gcm_seal(kek.bytes(), data_key.as_slice(), kek.id.as_bytes());
        Ok(format!(
            "{VERSION}.{}.{}.{}",
            kek.id,
            B64.encode(wrapped),
            B64.encode(&parts.body)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAN: &[u8] = b"6222020200112233445";

    #[test]
    fn seals_and_opens_for_its_context_only() {
        let ring = Keyring::new(Kek::generate(), []);
        let sealed = ring.seal(PAN, "card.pan:card_1");
        assert!(sealed.starts_with(&format!("pb1.{}.", ring.active_id())));
        assert!(!sealed.contains("6222020200112233445"));
        assert_eq!(ring.open(&sealed, "card.pan:card_1").unwrap().expose(), PAN);
        assert_eq!(
            ring.open(&sealed, "card.pan:card_2").unwrap_err(),
            EnvelopeError::Tampered
        );
        // Two seals of the same value differ (fresh data key and nonces).
        assert_ne!(ring.seal(PAN, "c"), ring.seal(PAN, "c"));
    }

    #[test]
    fn tampering_is_detected() {
        let ring = Keyring::new(Kek::generate(), []);
        let sealed = ring.seal(PAN, "ctx");
        let mut parts: Vec<String> = sealed.split('.').map(String::from).collect();
        let mut body = B64.decode(&parts[3]).unwrap();
        body[15] ^= 1;
        parts[3] = B64.encode(body);
        assert_eq!(
            ring.open(&parts.join("."), "ctx").unwrap_err(),
            EnvelopeError::Tampered
        );
        assert_eq!(
            ring.open("pb1.x.y", "ctx").unwrap_err(),
            EnvelopeError::Malformed
        );
        assert_eq!(
            ring.open("plain text", "ctx").unwrap_err(),
            EnvelopeError::Malformed
        );
        let other = Keyring::new(Kek::generate(), []);
        assert_eq!(
            other.open(&sealed, "ctx").unwrap_err(),
            EnvelopeError::UnknownKey
        );
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_rewraps_them() {
        let old = Kek::generate();
        let before = Keyring::new(old.clone(), []);
        let sealed = before.seal(PAN, "ctx");
        let after = Keyring::new(Kek::generate(), [old]);
        assert!(after.needs_rewrap(&sealed).unwrap());
        assert_eq!(after.open(&sealed, "ctx").unwrap().expose(), PAN);
        let moved = after.rewrap(&sealed, "ctx").unwrap();
        assert!(!after.needs_rewrap(&moved).unwrap());
        assert_eq!(
            moved.rsplit('.').next(),
            sealed.rsplit('.').next(),
            "the ciphertext is kept"
        );
        assert_eq!(after.open(&moved, "ctx").unwrap().expose(), PAN);
        assert_eq!(
            after.rewrap(&sealed, "other").unwrap_err(),
            EnvelopeError::Tampered
        );
        // Once the old key is dropped, only the re-wrapped value opens.
        let only_new = Keyring::new(after.keys[after.active_id()].clone(), []);
        assert!(only_new.open(&moved, "ctx").is_ok());
        assert_eq!(
            only_new.open(&sealed, "ctx").unwrap_err(),
            EnvelopeError::UnknownKey
        );
    }

    #[test]
    fn debug_shows_ids_only() {
        let kek = Kek::from_bytes([7; 32]);
        let ring = Keyring::new(kek.clone(), []);
        let shown = format!("{ring:?} {kek:?}");
        assert!(shown.contains(kek.id()));
        assert!(!shown.contains("0707"));
    }
}
