//! A tap end to end, in process: the POS terminal's kernel drives the
//! phone's card application, whose "secure element" makes option A
//! cryptograms with a rising ATC; the issuer reads the EMV data and checks
//! the cryptogram with keys it derives itself. And every command out of
//! turn or malformed gets its status word.

use std::cell::Cell;

use paybridge_crypto::emv::{application_cryptogram, icc_master_key, session_key, Padding};
use paybridge_emv::apdu::StatusWord;
use paybridge_emv::card::{Cryptograms, TokenProfile, AID, PPSE};
use paybridge_emv::terminal::{read_emv_data, Tap, TapError, Transaction};
use paybridge_emv::ContactlessCard;

const IMK: [u8; 16] = *b"\x01\x23\x45\x67\x89\xAB\xCD\xEF\xFE\xDC\xBA\x98\x76\x54\x32\x10";
const TOKEN: &str = "6299990012345678";

/// A software secure element: the token's master key and its ATC.
struct SoftElement {
    mk: [u8; 16],
    atc: Cell<u16>,
    refuse: Option<StatusWord>,
}

impl SoftElement {
    fn new() -> Self {
        Self {
            mk: *icc_master_key(&IMK, TOKEN, "01").unwrap(),
            atc: Cell::new(0),
            refuse: None,
        }
    }
}

impl Cryptograms for &SoftElement {
    fn arqc(&self, data: &[u8]) -> Result<(u16, [u8; 8]), StatusWord> {
        if let Some(sw) = self.refuse {
            return Err(sw);
        }
        let atc = self.atc.get() + 1;
        self.atc.set(atc);
        let mut covered = data.to_vec();
        covered.extend_from_slice(&atc.to_be_bytes());
        let sk = session_key(&self.mk, atc);
        Ok((atc, application_cryptogram(&sk, &covered, Padding::Method2)))
    }
}

fn profile() -> TokenProfile {
    TokenProfile {
        token: TOKEN.into(),
        expiry_yymm: "3112".into(),
        psn: "01".into(),
    }
}

fn purchase(amount_minor: u64, un: [u8; 4]) -> Transaction {
    Transaction {
        amount_minor,
        currency: 156,
        country: 156,
        date: "261208".into(),
        transaction_type: 0x00,
        unpredictable_number: un,
    }
}

/// Runs a tap to its end; the commands' names in order.
fn tap(
    card: &mut ContactlessCard<&SoftElement>,
    t: Transaction,
) -> Result<(Tap, Vec<&'static str>), TapError> {
    let mut tap = Tap::new(t);
    let mut names = Vec::new();
    while let Some((name, command)) = tap.next_command() {
        names.push(name);
        let response = card.process(&command.encode());
        tap.on_response(&response)?;
    }
    Ok((tap, names))
}

/// The issuer's check: its own keys, the EMV data's values.
fn issuer_accepts(emv_data: &[u8]) -> bool {
    let Some(d) = read_emv_data(emv_data) else {
        return false;
    };
    let mk = icc_master_key(&IMK, TOKEN, "01").unwrap();
    let sk = session_key(&mk, d.atc);
    application_cryptogram(&sk, &d.cryptogram_data, Padding::Method2) == d.arqc
}

#[test]
fn a_tap_reads_the_token_and_a_cryptogram_the_issuer_verifies() {
    let element = SoftElement::new();
    let mut card = ContactlessCard::new(profile(), &element);
    let (done, names) = tap(&mut card, purchase(3_800, [1, 2, 3, 4])).unwrap();
    assert_eq!(
        names,
        [
            "SELECT 2PAY.SYS.DDF01",
            "SELECT application",
            "GET PROCESSING OPTIONS",
            "READ RECORD"
        ]
    );
    let data = done.card_data().unwrap();
    assert_eq!(
        (
            data.token.as_str(),
            data.psn.as_str(),
            data.expiry_yymm.as_str()
        ),
        (TOKEN, "01", "3112")
    );
    assert_eq!(data.atc, 1);
    assert!(issuer_accepts(&data.emv_data));
    let read = read_emv_data(&data.emv_data).unwrap();
    assert_eq!((read.amount_minor, read.currency), (3_800, 156));

    // The next tap: a new cryptogram at a higher ATC.
    let mut card = ContactlessCard::new(profile(), &element);
    let (again, _) = tap(&mut card, purchase(3_800, [1, 2, 3, 4])).unwrap();
    let again = again.card_data().unwrap();
    assert_eq!(again.atc, 2);
    assert_ne!(again.arqc, data.arqc);
    assert!(issuer_accepts(&again.emv_data));
}

#[test]
fn a_cryptogram_over_other_data_or_from_another_key_is_refused() {
    let element = SoftElement::new();
    let mut card = ContactlessCard::new(profile(), &element);
    let (done, _) = tap(&mut card, purchase(3_800, [9, 9, 9, 9])).unwrap();
    let data = done.card_data().unwrap();
    // The amount changed after the card signed it (9F02 06 …3800 → 9800).
    let hex = hex::encode_upper(&data.emv_data);
    let tampered = hex::decode(hex.replace("9F0206000000003800", "9F0206000000009800")).unwrap();
    assert_ne!(tampered, data.emv_data);
    assert!(!issuer_accepts(&tampered));
    // Another token's key.
    let other = SoftElement {
        mk: *icc_master_key(&IMK, "6299990099999999", "01").unwrap(),
        atc: Cell::new(0),
        refuse: None,
    };
    let mut card = ContactlessCard::new(profile(), &other);
    let (done, _) = tap(&mut card, purchase(3_800, [9, 9, 9, 9])).unwrap();
    assert!(!issuer_accepts(&done.card_data().unwrap().emv_data));
    // EMV data with an object twice, or one missing, is not read.
    let mut doubled = data.emv_data.clone();
    doubled.extend_from_slice(&hex::decode("9F360200FF").unwrap());
    assert!(read_emv_data(&doubled).is_none());
    assert!(read_emv_data(&data.emv_data[..data.emv_data.len() - 4]).is_none());
}

#[test]
fn commands_out_of_turn_or_malformed_get_their_status_words() {
    let element = SoftElement::new();
    let mut card = ContactlessCard::new(profile(), &element);
    let sw = |bytes: Vec<u8>| {
        let n = bytes.len();
        u16::from_be_bytes([bytes[n - 2], bytes[n - 1]])
    };
    let select = |data: &[u8]| {
        let mut c = vec![0x00, 0xA4, 0x04, 0x00, data.len() as u8];
        c.extend_from_slice(data);
        c.push(0x00);
        c
    };
    // Processing options before the application is selected.
    assert_eq!(
        sw(card.process(&hex::decode("80A8000002830000").unwrap())),
        0x6985
    );
    assert_eq!(
        sw(card.process(&hex::decode("00B2010C00").unwrap())),
        0x6985
    );
    assert_eq!(sw(card.process(&[0x00, 0xA4])), 0x6700, "malformed");
    assert_eq!(
        sw(card.process(&hex::decode("B0A4040000").unwrap())),
        0x6E00
    );
    assert_eq!(
        sw(card.process(&hex::decode("0020000000").unwrap())),
        0x6D00
    );
    assert_eq!(sw(card.process(&select(b"\xA0\x00\x00\x00\x03"))), 0x6A82);
    assert_eq!(sw(card.process(&select(PPSE))), 0x9000);
    assert_eq!(sw(card.process(&select(AID))), 0x9000);
    // Processing options whose data is not the PDOL's length, or not 83.
    assert_eq!(
        sw(card.process(&hex::decode("80A8000002830000").unwrap())),
        0x6700
    );
    assert_eq!(
        sw(card.process(&hex::decode("80A8000002570000").unwrap())),
        0x6A80
    );
    assert_eq!(element.atc.get(), 0, "no cryptogram was made");
    // Then a right one, answered once per selection.
    let mut tap_ = Tap::new(purchase(100, [0; 4]));
    while let Some((name, c)) = tap_.next_command() {
        let bytes = c.encode();
        let r = card.process(&bytes);
        if name == "GET PROCESSING OPTIONS" {
            assert_eq!(sw(card.process(&bytes)), 0x6985, "a second time");
        }
        if name == "READ RECORD" {
            assert_eq!(
                sw(card.process(&hex::decode("00B2021400").unwrap())),
                0x6A83
            );
        }
        tap_.on_response(&r).unwrap();
    }
}

#[test]
fn a_secure_element_that_refuses_ends_the_tap_with_its_status_word() {
    let element = SoftElement {
        refuse: Some(StatusWord::CONDITIONS_NOT_SATISFIED),
        ..SoftElement::new()
    };
    let mut card = ContactlessCard::new(profile(), &element);
    let e = tap(&mut card, purchase(100, [0; 4])).unwrap_err();
    assert_eq!(
        e,
        TapError::Refused {
            command: "GET PROCESSING OPTIONS",
            sw: StatusWord::CONDITIONS_NOT_SATISFIED
        }
    );
}
