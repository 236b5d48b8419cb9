//! The phone's **secure element** (安全芯片) model, for flow F5's card
//! tokens. What a real element guarantees, this model keeps as its API:
//!
//! - it makes its own encryption key pair (X25519) and shows only the
//!   public half, which the wallet registers under the phone's device key;
//! - it takes a token's key material only as an HPKE box sealed to it by
//!   the issuer ([`SecureElement::install`]); nothing outside it can open
//!   the box;
//! - what it keeps (the token and its master key) is sealed at rest under
//!   its own storage key (AES-256-GCM envelopes, bound to the card code);
//! - it exposes card operations only: the token's public data and an
//!   application cryptogram over a transaction's data, with its ATC rising
//!   on every one ([`SecureElement::generate_cryptogram`]), and through
//!   them the contactless card application a POS talks to
//!   ([`SecureElement::card_application`]); it never hands out a key;
//! - it follows the token's lifecycle: a suspended token makes no
//!   cryptogram until resumed, a deactivated one is gone.

use std::collections::HashMap;
use std::sync::Mutex;

use paybridge_api::virtual_card::{TokenKeyMaterial, TOKEN_KEYS_INFO};
use paybridge_crypto::emv::{application_cryptogram, session_key, Padding};
use paybridge_crypto::envelope::{Kek, Keyring};
use paybridge_crypto::hpke_box::SecureElementKey;
use paybridge_domain::card_token::TokenStage;
use paybridge_emv::apdu::StatusWord;
use paybridge_emv::card::{Cryptograms, TokenProfile};
use paybridge_emv::ContactlessCard;

/// Why the element refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureElementError {
    #[error("the key material does not open with this element's key, for this token")]
    Unreadable,
    #[error("the key material is not of the expected form")]
    Malformed,
    #[error("no token with this card code is in the element")]
    NoSuchToken,
    #[error("the token is {0}: it makes no cryptogram")]
    Inactive(&'static str),
    #[error("the token's transaction counter is exhausted")]
    CounterExhausted,
}

/// What a token shows of itself (no key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPublicData {
    pub card_code: String,
    pub token_id: String,
    /// The card token, as a POS reads it (track 2 equivalent data carries it).
    pub token: String,
    pub psn: String,
    pub expiry: String,
}

/// An application cryptogram and the counter it was made at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cryptogram {
    pub atc: u16,
    pub arqc: [u8; 8],
}

/// One token of the element, as the card application asks it for
/// cryptograms.
#[derive(Debug)]
pub struct CardSlot<'a> {
    element: &'a SecureElement,
    card_code: String,
}

impl Cryptograms for CardSlot<'_> {
    fn arqc(&self, data: &[u8]) -> Result<(u16, [u8; 8]), StatusWord> {
        match self.element.generate_cryptogram(&self.card_code, data) {
            Ok(c) => Ok((c.atc, c.arqc)),
            // Suspended, or the counter at its end: not now.
            Err(SecureElementError::Inactive(_) | SecureElementError::CounterExhausted) => {
                Err(StatusWord::CONDITIONS_NOT_SATISFIED)
            }
            Err(SecureElementError::NoSuchToken) => Err(StatusWord::REFERENCED_DATA_NOT_FOUND),
            Err(SecureElementError::Unreadable | SecureElementError::Malformed) => {
                Err(StatusWord::NO_PRECISE_DIAGNOSIS)
            }
        }
    }
}

/// A token as the element keeps it: its key material sealed at rest.
struct Slot {
    public: TokenPublicData,
    sealed: String,
    atc: u16,
    state: TokenStage,
}

pub struct SecureElement {
    encryption: SecureElementKey,
    storage: Keyring,
    slots: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for SecureElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map(|s| s.len()).unwrap_or_default();
        write!(f, "SecureElement({n} tokens)")
    }
}

impl Default for SecureElement {
    fn default() -> Self {
        Self::new()
    }
}

fn storage_context(card_code: &str) -> String {
    format!("secure-element.token:{card_code}")
}

impl SecureElement {
    /// A fresh element: its encryption key pair and storage key made now.
    pub fn new() -> Self {
        Self {
            encryption: SecureElementKey::generate(),
            storage: Keyring::new(Kek::generate(), []),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The public half of the element's encryption key (base64url X25519).
    pub fn encryption_public_key(&self) -> String {
        self.encryption.public_base64()
    }

    /// Writes a token into the element: opens the issuer's HPKE box (for
    /// this token id only), checks it, and keeps it sealed at rest.
    pub fn install(
        &self,
        card_code: &str,
        token_id: &str,
        boxed: &str,
    ) -> Result<TokenPublicData, SecureElementError> {
        let plain = self
            .encryption
            .open(boxed, TOKEN_KEYS_INFO, token_id.as_bytes())
            .map_err(|_| SecureElementError::Unreadable)?;
        let material: TokenKeyMaterial =
            serde_json::from_slice(&plain).map_err(|_| SecureElementError::Malformed)?;
        let mk_ok = hex::decode(&material.mk_ac).is_ok_and(|k| k.len() == 16);
        if material.token_id != token_id || !mk_ok {
            return Err(SecureElementError::Malformed);
        }
        let public = TokenPublicData {
            card_code: card_code.to_owned(),
            token_id: material.token_id.clone(),
            token: material.token.clone(),
            psn: material.psn.clone(),
            expiry: material.expiry.clone(),
        };
        let sealed = self.storage.seal(&plain, &storage_context(card_code));
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).insert(
            card_code.to_owned(),
            Slot {
                public: public.clone(),
                sealed,
                atc: 0,
                state: TokenStage::Active,
            },
        );
        Ok(public)
    }

    /// The token's public data (select and read records, in card terms).
    pub fn public_data(&self, card_code: &str) -> Result<TokenPublicData, SecureElementError> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .get(card_code)
            .map(|s| s.public.clone())
            .ok_or(SecureElementError::NoSuchToken)
    }

    /// An application cryptogram (ARQC) over a transaction's data (the
    /// terminal's values in order, and the AIP) followed by the ATC: the ATC
    /// rises first and is appended inside, the session key for it is
    /// derived from the token's master key inside, and only the cryptogram
    /// and the ATC come out.
    pub fn generate_cryptogram(
        &self,
        card_code: &str,
        transaction_data: &[u8],
    ) -> Result<Cryptogram, SecureElementError> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots
            .get_mut(card_code)
            .ok_or(SecureElementError::NoSuchToken)?;
        if slot.state != TokenStage::Active {
            return Err(SecureElementError::Inactive(slot.state.as_str()));
        }
        let atc = slot
            .atc
            .checked_add(1)
            .ok_or(SecureElementError::CounterExhausted)?;
        let plain = self
            .storage
            .open(&slot.sealed, &storage_context(card_code))
            .map_err(|_| SecureElementError::Unreadable)?;
        let material: TokenKeyMaterial =
            serde_json::from_slice(plain.expose()).map_err(|_| SecureElementError::Malformed)?;
        let mut mk = zeroize::Zeroizing::new([0u8; 16]);
        hex::decode_to_slice(&material.mk_ac, mk.as_mut_slice())
            .map_err(|_| SecureElementError::Malformed)?;
        let sk = session_key(&mk, atc);
        slot.atc = atc;
        let mut covered = transaction_data.to_vec();
        covered.extend_from_slice(&atc.to_be_bytes());
        Ok(Cryptogram {
            atc,
            arqc: application_cryptogram(&sk, &covered, Padding::Method2),
        })
    }

    /// Follows the token's lifecycle as the wallet tells it: a suspended
    /// token makes no cryptogram; a deactivated one is removed for good.
    pub fn follow(&self, card_code: &str, state: TokenStage) -> Result<(), SecureElementError> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if state == TokenStage::Deactivated {
            return slots
                .remove(card_code)
                .map(|_| ())
                .ok_or(SecureElementError::NoSuchToken);
        }
        let slot = slots
            .get_mut(card_code)
            .ok_or(SecureElementError::NoSuchToken)?;
        slot.state = state;
        Ok(())
    }

    /// The contactless card application for one of its tokens, for one tap
    /// (host card emulation in front of the element: the element makes the
    /// cryptogram, the application only carries it).
    pub fn card_application(
        &self,
        card_code: &str,
    ) -> Result<ContactlessCard<CardSlot<'_>>, SecureElementError> {
        let public = self.public_data(card_code)?;
        // MM/YY as the issuer sends it; YYMM on the card.
        let (mm, yy) = public
            .expiry
            .split_once('/')
            .ok_or(SecureElementError::Malformed)?;
        let profile = TokenProfile {
            token: public.token,
            expiry_yymm: format!("{yy}{mm}"),
            psn: public.psn,
        };
        Ok(ContactlessCard::new(
            profile,
            CardSlot {
                element: self,
                card_code: card_code.to_owned(),
            },
        ))
    }

    /// The card codes of the tokens it holds.
    pub fn card_codes(&self) -> Vec<String> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut codes: Vec<String> = slots.keys().cloned().collect();
        codes.sort();
        codes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paybridge_crypto::emv::icc_master_key;
    use paybridge_crypto::hpke_box::seal_to;

    const IMK: [u8; 16] = [0x42; 16];
    const TOKEN: &str = "4895370012345671";

    /// What the issuer does: derive the token's master key, seal the
    /// material to the element's key for this token.
    fn provision(se: &SecureElement, token_id: &str) -> String {
        let mk = icc_master_key(&IMK, TOKEN, "01").unwrap();
        let material = TokenKeyMaterial {
            token_id: token_id.into(),
            token: TOKEN.into(),
            psn: "01".into(),
            expiry: "12/29".into(),
            mk_ac: hex::encode_upper(*mk),
        };
        seal_to(
            &se.encryption_public_key(),
            TOKEN_KEYS_INFO,
            token_id.as_bytes(),
            &serde_json::to_vec(&material).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn an_installed_token_makes_cryptograms_the_issuer_can_check_with_a_rising_atc() {
        let se = SecureElement::new();
        let public = se
            .install("CC0000000000AA", "ctk_1", &provision(&se, "ctk_1"))
            .unwrap();
        assert_eq!(public.token, TOKEN);
        assert_eq!(se.card_codes(), ["CC0000000000AA"]);
        let data = b"amount 000000003800 UN 3804823E";
        let first = se.generate_cryptogram("CC0000000000AA", data).unwrap();
        let second = se.generate_cryptogram("CC0000000000AA", data).unwrap();
        assert_eq!((first.atc, second.atc), (1, 2));
        assert_ne!(first.arqc, second.arqc, "each ATC its own session key");
        // The issuer, holding only the issuer master key, gets the same
        // over the data and the ATC.
        let mk = icc_master_key(&IMK, TOKEN, "01").unwrap();
        let covered = [&data[..], &[0x00, 0x02]].concat();
        let expected = application_cryptogram(&session_key(&mk, 2), &covered, Padding::Method2);
        assert_eq!(second.arqc, expected);
    }

    #[test]
    fn a_box_for_another_element_or_token_does_not_install() {
        let se = SecureElement::new();
        let other = SecureElement::new();
        assert_eq!(
            se.install("CC1", "ctk_1", &provision(&other, "ctk_1"))
                .unwrap_err(),
            SecureElementError::Unreadable
        );
        assert_eq!(
            se.install("CC1", "ctk_2", &provision(&se, "ctk_1"))
                .unwrap_err(),
            SecureElementError::Unreadable
        );
        assert!(se.card_codes().is_empty());
    }

    #[test]
    fn it_follows_the_token_lifecycle() {
        let se = SecureElement::new();
        se.install("CC1", "ctk_1", &provision(&se, "ctk_1"))
            .unwrap();
        se.follow("CC1", TokenStage::Suspended).unwrap();
        assert_eq!(
            se.generate_cryptogram("CC1", b"x").unwrap_err(),
            SecureElementError::Inactive("suspended")
        );
        se.follow("CC1", TokenStage::Active).unwrap();
        assert_eq!(se.generate_cryptogram("CC1", b"x").unwrap().atc, 1);
        se.follow("CC1", TokenStage::Deactivated).unwrap();
        assert_eq!(
            se.generate_cryptogram("CC1", b"x").unwrap_err(),
            SecureElementError::NoSuchToken
        );
        assert_eq!(
            se.public_data("CC1").unwrap_err(),
            SecureElementError::NoSuchToken
        );
    }

    #[test]
    fn a_pos_tap_reads_the_token_and_a_cryptogram_the_issuer_can_check() {
        use paybridge_emv::terminal::{read_emv_data, Tap, Transaction};
        let se = SecureElement::new();
        se.install("CC1", "ctk_1", &provision(&se, "ctk_1"))
            .unwrap();
        let tap = |se: &SecureElement| {
            let mut card = se.card_application("CC1").unwrap();
            let mut tap = Tap::new(Transaction {
                amount_minor: 3_800,
                currency: 156,
                country: 156,
                date: "261208".into(),
                transaction_type: 0,
                unpredictable_number: [7, 7, 7, 7],
            });
            while let Some((_, command)) = tap.next_command() {
                let response = card.process(&command.encode());
                tap.on_response(&response)?;
            }
            tap.card_data()
        };
        let data = tap(&se).unwrap();
        assert_eq!(
            (data.token.as_str(), data.expiry_yymm.as_str()),
            (TOKEN, "2912")
        );
        let read = read_emv_data(&data.emv_data).unwrap();
        let mk = icc_master_key(&IMK, TOKEN, "01").unwrap();
        let expected = application_cryptogram(
            &session_key(&mk, read.atc),
            &read.cryptogram_data,
            Padding::Method2,
        );
        assert_eq!(data.arqc, expected);
        // A suspended token answers the POS "conditions not satisfied".
        se.follow("CC1", TokenStage::Suspended).unwrap();
        let refused = tap(&se).unwrap_err();
        assert!(refused.to_string().contains("6985"), "{refused}");
    }
}
