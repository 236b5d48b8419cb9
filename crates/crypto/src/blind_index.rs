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

/// What a blind index is of. Each purpose is its own HMAC domain, so equal
/// strings of different kinds never share an index. The tags are stored in
/// every index ever written: renaming one orphans every look-up by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexPurpose {
    /// A phone number, to find its account or customer.
    Phone,
    /// A PRC resident ID number: one person, one wallet account.
    IdNumber,
    /// A card number (PAN), to find a seeded or issued card.
    Pan,
    /// A quick-pay agreement number, to find the agreement a debit names.
    Agreement,
    /// A wallet login (phone): the wrong-password counter's key.
    LoginPhone,
    /// A bank app login (user name): the wrong-password counter's key.
    LoginUsername,
    /// A bank's registration request, to recognise its retry.
    Registration,
    /// A client's IP address: the key of its SMS budget (kept no longer
    /// than the budget's window, and not in clear).
    ClientIp,
    /// A card token number (flow F5), to find it in the token vault.
    Token,
}

impl IndexPurpose {
    /// The HMAC domain tag.
    pub const fn tag(self) -> &'static str {
        match self {
            IndexPurpose::Phone => "phone",
            IndexPurpose::IdNumber => "id_number",
            IndexPurpose::Pan => "pan",
            IndexPurpose::Agreement => "agreement",
            IndexPurpose::LoginPhone => "login.phone",
            IndexPurpose::LoginUsername => "login.username",
            IndexPurpose::Registration => "registration",
            IndexPurpose::Token => "token",
            IndexPurpose::ClientIp => "client_ip",
        }
    }
}

#[derive(Clone)]
pub struct BlindIndexKey(Zeroizing<[u8; 32]>);

impl BlindIndexKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// The index of `value` for `purpose`, hex.
    pub fn index(&self, purpose: IndexPurpose, value: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.0.as_slice()).expect("HMAC takes any key length");
        mac.update(purpose.tag().as_bytes());
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
        assert_eq!(
            k.index(IndexPurpose::IdNumber, id),
            k.index(IndexPurpose::IdNumber, id)
        );
        assert_ne!(
            k.index(IndexPurpose::IdNumber, id),
            k.index(IndexPurpose::Phone, id),
            "domains are separate"
        );
        assert_ne!(
            k.index(IndexPurpose::IdNumber, id),
            BlindIndexKey::from_bytes([2; 32]).index(IndexPurpose::IdNumber, id)
        );
        assert_eq!(k.index(IndexPurpose::IdNumber, id).len(), 64);
        assert!(!format!("{k:?}").contains('1'));
    }
}
