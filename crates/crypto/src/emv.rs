//! EMV card cryptography (EMV 4.3 Book 2, Annex A), with double-length
//! Triple DES keys as the schemes still use them:
//!
//! - [`icc_master_key`]: the card's (here: the token's) master key derived
//!   from the issuer master key by **Option A** (A1.4.1): the rightmost 16
//!   digits of PAN ‖ PAN sequence number, enciphered, and enciphered again
//!   inverted; odd parity.
//! - [`session_key`]: the **common session key** (A1.3.1) for an ATC.
//! - [`application_cryptogram`]: the ARQC / TC / AAC, a MAC by **ISO/IEC
//!   9797-1 algorithm 3** (single DES CBC, the last block with the second
//!   key and back) over the transaction data, padded by method 1 or 2.
//! - [`arpc_method_1`]: the issuer's answer to an ARQC (Book 2, 8.2.1).
//!
//! An independent implementation computes the same values from the same
//! keys and data: `tests/emv_vectors.json` holds values computed by pyemv
//! (by `tests/emv_vectors.py`), and the unit tests hold its documented
//! examples. The issuer master keys live only at the issuer; a token's
//! secure element holds only its derived master key.

use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use des::{Des, TdesEde2};
use zeroize::Zeroizing;

/// A double-length Triple DES key (16 bytes).
pub type DoubleKey = Zeroizing<[u8; 16]>;

/// Why an EMV input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmvError {
    #[error("a PAN is 12 to 19 digits and a PAN sequence number 2")]
    BadPan,
}

fn tdes_ecb(key: &[u8; 16], block: [u8; 8]) -> [u8; 8] {
    let cipher = TdesEde2::new_from_slice(key).expect("16 bytes is a double-length key");
    let mut b = block.into();
    cipher.encrypt_block(&mut b);
    b.into()
}

/// Sets each byte's lowest bit so the byte has an odd number of ones (DES
/// key parity), as issuers store derived keys.
fn odd_parity(key: &mut [u8; 16]) {
    for byte in key.iter_mut() {
        let ones = (*byte >> 1).count_ones();
        *byte = (*byte & 0xFE) | u8::from(ones % 2 == 0);
    }
}

/// Packs decimal digits, two a byte.
fn bcd(digits: &str) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (i, pair) in digits.as_bytes().chunks(2).enumerate() {
        out[i] = ((pair[0] - b'0') << 4) | (pair[1] - b'0');
    }
    out
}

/// The token's (card's) master key for application cryptograms from the
/// issuer master key, by Option A: `Y` = the rightmost 16 digits of PAN ‖
/// PSN (left-padded with zeros), `MK = 3DES(IMK)[Y] ‖ 3DES(IMK)[Y ⊕ FF…]`,
/// odd parity.
pub fn icc_master_key(imk: &[u8; 16], pan: &str, psn: &str) -> Result<DoubleKey, EmvError> {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(12..=19).contains(&pan.len()) || psn.len() != 2 || !digits(pan) || !digits(psn) {
        return Err(EmvError::BadPan);
    }
    let joined = format!("{pan}{psn}");
    let y = bcd(&format!(
        "{:0>16}",
        &joined[joined.len().saturating_sub(16)..]
    ));
    let inverted = y.map(|b| !b);
    let mut mk = Zeroizing::new([0u8; 16]);
    mk[..8].copy_from_slice(&tdes_ecb(imk, y));
    mk[8..].copy_from_slice(&tdes_ecb(imk, inverted));
    odd_parity(&mut mk);
    Ok(mk)
}

/// The common session key for application cryptograms at `atc` (R = ATC ‖
/// 00 00 00 00 00 00): `3DES(MK)[R with byte 2 = F0] ‖ 3DES(MK)[R with
/// byte 2 = 0F]`, odd parity.
pub fn session_key(mk: &[u8; 16], atc: u16) -> DoubleKey {
    let mut r = [0u8; 8];
    r[..2].copy_from_slice(&atc.to_be_bytes());
    let (mut left, mut right) = (r, r);
    left[2] = 0xF0;
    right[2] = 0x0F;
    let mut sk = Zeroizing::new([0u8; 16]);
    sk[..8].copy_from_slice(&tdes_ecb(mk, left));
    sk[8..].copy_from_slice(&tdes_ecb(mk, right));
    odd_parity(&mut sk);
    sk
}

/// How the data is padded to whole 8-byte blocks before the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// ISO/IEC 9797-1 method 1: zeros, only if needed (Visa CVN 10).
    Method1,
    /// ISO/IEC 9797-1 method 2: `80`, then zeros (EMV CSK, CVN 18 and others).
    Method2,
}

fn padded(data: &[u8], padding: Padding) -> Vec<u8> {
    let mut out = data.to_vec();
    match padding {
        Padding::Method1 => {
            if out.is_empty() || !out.len().is_multiple_of(8) {
                out.resize(out.len().div_ceil(8).max(1) * 8, 0);
            }
        }
        Padding::Method2 => {
            out.push(0x80);
            out.resize(out.len().div_ceil(8) * 8, 0);
        }
    }
    out
}

/// ISO/IEC 9797-1 MAC algorithm 3 with the session key's halves: single
/// DES CBC under the left half, then the last block deciphered with the
/// right half and enciphered with the left again.
fn mac_algorithm_3(sk: &[u8; 16], data: &[u8], padding: Padding) -> [u8; 8] {
    let k1 = Des::new_from_slice(&sk[..8]).expect("8 bytes is a DES key");
    let k2 = Des::new_from_slice(&sk[8..]).expect("8 bytes is a DES key");
    let mut chain = [0u8; 8];
    for block in padded(data, padding).chunks(8) {
        for (c, d) in chain.iter_mut().zip(block) {
            *c ^= d;
        }
        let mut b = chain.into();
        k1.encrypt_block(&mut b);
        chain = b.into();
    }
    let mut b = chain.into();
    k2.decrypt_block(&mut b);
    k1.encrypt_block(&mut b);
    b.into()
}

/// The application cryptogram (ARQC, TC or AAC) over the transaction data
/// (the CDOL's values in order), with the session key for its ATC.
pub fn application_cryptogram(sk: &[u8; 16], data: &[u8], padding: Padding) -> [u8; 8] {
    mac_algorithm_3(sk, data, padding)
}

/// Whether `arqc` is the application cryptogram over `data` with `sk`,
/// compared in constant time (a forger learns nothing from timing).
pub fn cryptogram_matches(sk: &[u8; 16], data: &[u8], padding: Padding, arqc: &[u8; 8]) -> bool {
    use subtle::ConstantTimeEq;
    application_cryptogram(sk, data, padding).ct_eq(arqc).into()
}

/// The issuer's authorisation response cryptogram, method 1: `3DES(SK)[ARQC
/// ⊕ (ARC ‖ 00…)]`.
pub fn arpc_method_1(sk: &[u8; 16], arqc: &[u8; 8], arc: [u8; 2]) -> [u8; 8] {
    let mut block = *arqc;
    block[0] ^= arc[0];
    block[1] ^= arc[1];
    tdes_ecb(sk, block)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hex_text: &str) -> [u8; 16] {
        hex::decode(hex_text).unwrap().try_into().unwrap()
    }

    fn upper(bytes: &[u8]) -> String {
        hex::encode_upper(bytes)
    }

    // The examples pyemv documents for each function.
    #[test]
    fn option_a_derives_the_documented_master_key() {
        let imk = key("0123456789ABCDEFFEDCBA9876543210");
        let mk = icc_master_key(&imk, "12345678901234567", "01").unwrap();
        assert_eq!(upper(&*mk), "73AD54688CEF2934B0979857E3C719F1");
        for (pan, psn) in [
            ("1234", "01"),
            ("12345678901234567890", "01"),
            ("1234567890123x", "01"),
            ("123456789012", "1"),
        ] {
            assert_eq!(
                icc_master_key(&imk, pan, psn).unwrap_err(),
                EmvError::BadPan,
                "{pan}"
            );
        }
    }

    #[test]
    fn the_common_session_key_is_the_documented_one() {
        let mk = key("0123456789ABCDEFFEDCBA9876543210");
        assert_eq!(
            upper(&*session_key(&mk, 0x001C)),
            "E9FB384AF807B940FEDCEA613461B0C4"
        );
    }

    #[test]
    fn the_cryptogram_and_its_answer_are_the_documented_ones() {
        let sk = key("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB");
        let data = hex::decode(concat!(
            "000000002000",
            "000000000000",
            "0124",
            "0000008000",
            "0124",
            "110309",
            "00",
            "3804823E",
            "5800",
            "0001"
        ))
        .unwrap();
        let arqc = application_cryptogram(&sk, &data, Padding::Method2);
        assert_eq!(upper(&arqc), "3B76CF10FECD8789");
        let arpc = arpc_method_1(
            &sk,
            &hex::decode("1234567890ABCDEF").unwrap().try_into().unwrap(),
            [0, 0],
        );
        assert_eq!(upper(&arpc), "F5E6F44147E2F1B0");
    }

    #[test]
    fn any_change_of_the_data_changes_the_cryptogram() {
        let sk = key("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB");
        let data = b"amount 000000002000, UN 3804823E".to_vec();
        let arqc = application_cryptogram(&sk, &data, Padding::Method2);
        let mut other = data.clone();
        other[10] ^= 1;
        assert_ne!(application_cryptogram(&sk, &other, Padding::Method2), arqc);
        assert_ne!(application_cryptogram(&sk, &data, Padding::Method1), arqc);
    }
}
