//! Blind indexes: a keyed HMAC-SHA256 of a normalised value, stored beside
//! its ciphertext so that an encrypted column (an ID number, a phone) can be
//! looked up by equality without being decrypted. The key is separate from
//! the encryption keys; without it the index reveals nothing useful (it is
//! not a plain hash, which would fall to a dictionary of all ID numbers).
//! Each kind of value has its own domain tag, so equal strings of different
//! kinds do not share an index.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

#[derive(Clone)]
pub struct BlindIndexKey(Zeroizing<[u8; 32]>);

impl BlindIndexKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// The index of `value` in domain `tag` (e.g. `"id_number"`), hex.
    pub fn index(&self, tag: &str, value: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.0.as_slice()).expect("HMAC takes any key length");
        mac.update(tag.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindIndexKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_index_equally_under_one_key_only() {
        let k = BlindIndexKey::from_bytes([1; 32]);
        let id = "11010519491231002X";
        assert_eq!(k.index("id_number", id), k.index("id_number", id));
        assert_ne!(
            k.index("id_number", id),
            k.index("phone", id),
            "domains are separate"
        );
        assert_ne!(
            k.index("id_number", id),
            BlindIndexKey::from_bytes([2; 32]).index("id_number", id)
        );
        assert_eq!(k.index("id_number", id).len(), 64);
        assert!(!format!("{k:?}").contains('1'));
    }
}
