//! The contactless card application a phone emulates for its card token
//! (host card emulation in front of the secure element): it answers the
//! POS terminal's command APDUs with response APDUs, as an EMV card does.
//!
//! ```text
//!  idle ──SELECT 2PAY.SYS.DDF01──▶ directory ──SELECT <AID>──▶ selected
//!                                                                │ GET PROCESSING OPTIONS
//!                                                                ▼ (the PDOL's data)
//!                                                           processed ──READ RECORD 1──▶ (its record)
//! ```
//!
//! - SELECT of the payment directory answers the FCI with the one
//!   application paybridge cards carry ([`AID`]); SELECT of that AID
//!   answers its FCI with the label and the PDOL ([`pdol`]).
//! - GET PROCESSING OPTIONS takes the PDOL's data (amount, currency,
//!   country, date, type, unpredictable number, ...): the secure element
//!   raises its ATC and makes the ARQC over the transaction data with the
//!   AIP and the ATC (EMV Book 2, 8.1.1), and the answer (format 2) holds
//!   AIP, AFL, ATC, cryptogram, its information and the issuer application
//!   data, so that one tap is one cryptogram.
//! - READ RECORD 1 of SFI 1 answers the token as track 2 equivalent data,
//!   its PAN sequence number and expiry.
//!
//! A command out of turn, malformed or unknown gets its status word and
//! changes nothing; a GET PROCESSING OPTIONS is answered once per
//! selection (the next tap selects again).

use crate::apdu::{ins, Command, Response, StatusWord};
use crate::dictionary as tag;
use crate::dol::{Dol, Entry};
use crate::tlv::{self, Tlv};

/// The payment system environment's directory name.
pub const PPSE: &[u8] = b"2PAY.SYS.DDF01";
/// paybridge's application identifier: `F0` (a proprietary, unregistered
/// RID range) and `PAYBRIDGE`.
pub const AID: &[u8] = b"\xF0PAYBRIDGE";
pub const LABEL: &str = "PAYBRIDGE";
/// Application Interchange Profile: CDA not supported, cardholder
/// verification by the phone (the wallet app unlocks the tap), terminal
/// risk management; the EMV mode of contactless (byte 2 bit 8).
pub const AIP: [u8; 2] = [0x19, 0x80];
/// Cryptogram Information Data of an ARQC.
pub const CID_ARQC: u8 = 0x80;
/// Application File Locator: SFI 1, records 1 to 1, none for offline
/// data authentication.
pub const AFL: [u8; 4] = [0x08, 0x01, 0x01, 0x00];
/// READ RECORD's P2 for SFI 1 (`SFI << 3 | 4`).
pub const SFI1_P2: u8 = (1 << 3) | 4;

/// The card's PDOL: what it asks the terminal for, in order. Everything
/// but the TTQ is the transaction data its cryptogram covers (EMV Book 2,
/// Table 26: 29 bytes), to which the card adds its AIP and ATC.
pub fn pdol() -> Dol {
    let entry = |t, len| Entry { tag: t, len };
    Dol::new(vec![
        entry(tag::TTQ, 4),
        entry(tag::AMOUNT_AUTHORISED, 6),
        entry(tag::AMOUNT_OTHER, 6),
        entry(tag::TERMINAL_COUNTRY, 2),
        entry(tag::TVR, 5),
        entry(tag::CURRENCY, 2),
        entry(tag::TRANSACTION_DATE, 3),
        entry(tag::TRANSACTION_TYPE, 1),
        entry(tag::UNPREDICTABLE_NUMBER, 4),
    ])
    .expect("the card's own PDOL is within the limits")
}

/// The transaction data a cryptogram covers, from the PDOL's data (all but
/// the TTQ), followed by the AIP: the secure element appends the ATC.
pub fn cryptogram_data(pdol_data: &[u8]) -> Option<Vec<u8>> {
    let values = pdol().split(pdol_data)?;
    let mut data: Vec<u8> = values
        .iter()
        .filter(|(t, _)| *t != tag::TTQ)
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    data.extend_from_slice(&AIP);
    Some(data)
}

/// What the card shows of its token: never a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenProfile {
    /// The card token, 12 to 19 digits.
    pub token: String,
    /// `YYMM`.
    pub expiry_yymm: String,
    /// Two digits.
    pub psn: String,
}

impl TokenProfile {
    /// Track 2 equivalent data: token, `D`, expiry, service code 201,
    /// discretionary data, padded with `F` to whole bytes.
    pub fn track2(&self) -> Vec<u8> {
        let mut nibbles = format!("{}D{}2010000000", self.token, self.expiry_yymm);
        if !nibbles.len().is_multiple_of(2) {
            nibbles.push('F');
        }
        hex::decode(nibbles).unwrap_or_default()
    }
}

/// The secure element's part: it raises its ATC and makes the ARQC over
/// `data ‖ ATC` with the token's key, which never comes out.
pub trait Cryptograms {
    /// The ATC it used and the cryptogram; `Err` with the status word to
    /// answer when it will not (a suspended token, a counter at its end).
    fn arqc(&self, data: &[u8]) -> Result<(u16, [u8; 8]), StatusWord>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Idle,
    Directory,
    Selected,
    Processed,
}

/// One tap's card application.
#[derive(Debug)]
pub struct ContactlessCard<C> {
    profile: TokenProfile,
    secure_element: C,
    stage: Stage,
}

fn answer(objects: &[Tlv]) -> Response {
    Response::new(tlv::encode_all(objects), StatusWord::OK)
        .unwrap_or_else(|_| Response::status(StatusWord::NO_PRECISE_DIAGNOSIS))
}

fn primitive(t: crate::tlv::Tag, value: impl Into<Vec<u8>>) -> Tlv {
    Tlv::primitive(t, value).expect("the card's own primitive data objects are short")
}

fn template(t: crate::tlv::Tag, children: Vec<Tlv>) -> Tlv {
    Tlv::constructed(t, children).expect("the card's own templates are short")
}

impl<C: Cryptograms> ContactlessCard<C> {
    pub fn new(profile: TokenProfile, secure_element: C) -> Self {
        Self {
            profile,
            secure_element,
            stage: Stage::Idle,
        }
    }

    /// Answers one command APDU (its bytes) with a response APDU (bytes).
    pub fn process(&mut self, command: &[u8]) -> Vec<u8> {
        let response = match Command::parse(command) {
            Ok(c) => self.answer(&c),
            Err(_) => Response::status(StatusWord::WRONG_LENGTH),
        };
        response.encode()
    }

    fn answer(&mut self, c: &Command) -> Response {
        let status = Response::status;
        if c.cla != 0x00 && c.cla != 0x80 {
            return status(StatusWord::CLA_NOT_SUPPORTED);
        }
        match c.ins {
            ins::SELECT => self.select(c),
            ins::GET_PROCESSING_OPTIONS => self.get_processing_options(c),
            ins::READ_RECORD => self.read_record(c),
            _ => status(StatusWord::INS_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, c: &Command) -> Response {
        if (c.p1, c.p2) != (0x04, 0x00) {
            return Response::status(StatusWord::WRONG_P1_P2);
        }
        if c.data == PPSE {
            self.stage = Stage::Directory;
            let entry = template(
                tag::APPLICATION_TEMPLATE,
                vec![
                    primitive(tag::AID, AID),
                    primitive(tag::APPLICATION_LABEL, LABEL),
                    primitive(tag::PRIORITY, [0x01]),
                ],
            );
            return answer(&[template(
                tag::FCI,
                vec![
                    primitive(tag::DF_NAME, PPSE),
                    template(
                        tag::FCI_PROPRIETARY,
                        vec![template(tag::FCI_ISSUER_DISCRETIONARY, vec![entry])],
                    ),
                ],
            )]);
        }
        if c.data == AID {
            self.stage = Stage::Selected;
            return answer(&[template(
                tag::FCI,
                vec![
                    primitive(tag::DF_NAME, AID),
                    template(
                        tag::FCI_PROPRIETARY,
                        vec![
                            primitive(tag::APPLICATION_LABEL, LABEL),
                            primitive(tag::PDOL, pdol().encode()),
                        ],
                    ),
                ],
            )]);
        }
        Response::status(StatusWord::FILE_NOT_FOUND)
    }

    fn get_processing_options(&mut self, c: &Command) -> Response {
        if self.stage != Stage::Selected {
            return Response::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        if (c.p1, c.p2) != (0x00, 0x00) {
            return Response::status(StatusWord::WRONG_P1_P2);
        }
        // The data field is the command template (83) with the PDOL's data.
        let pdol_data = match tlv::parse_one(&c.data) {
            Ok(t) if t.tag() == tag::COMMAND_TEMPLATE => t.bytes().unwrap_or_default().to_vec(),
            _ => return Response::status(StatusWord::WRONG_DATA),
        };
        let Some(data) = cryptogram_data(&pdol_data) else {
            return Response::status(StatusWord::WRONG_LENGTH);
        };
        let (atc, arqc) = match self.secure_element.arqc(&data) {
            Ok(made) => made,
            Err(sw) => return Response::status(sw),
        };
        self.stage = Stage::Processed;
        answer(&[template(
            tag::RESPONSE_FORMAT_2,
            vec![
                primitive(tag::AIP, AIP),
                primitive(tag::AFL, AFL),
                primitive(tag::ATC, atc.to_be_bytes()),
                primitive(tag::APPLICATION_CRYPTOGRAM, arqc),
                primitive(tag::CRYPTOGRAM_INFORMATION, [CID_ARQC]),
                // Format: length, derivation key index, cryptogram
                // version (option A, common session key), CVR.
                primitive(
                    tag::ISSUER_APPLICATION_DATA,
                    [0x06, 0x01, 0x0A, 0x03, 0xA0, 0x00, 0x00],
                ),
            ],
        )])
    }

    fn read_record(&mut self, c: &Command) -> Response {
        if self.stage != Stage::Processed {
            return Response::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        if c.p2 != SFI1_P2 || c.p1 != 1 {
            return Response::status(StatusWord::RECORD_NOT_FOUND);
        }
        let psn = hex::decode(&self.profile.psn).unwrap_or_default();
        let expiry = hex::decode(format!("{}31", self.profile.expiry_yymm)).unwrap_or_default();
        answer(&[template(
            tag::RECORD,
            vec![
                primitive(tag::TRACK2, self.profile.track2()),
                primitive(tag::PSN, psn),
                primitive(tag::EXPIRY, expiry),
            ],
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A secure element that answers with a fixed cryptogram.
    struct Fixed;

    impl Cryptograms for Fixed {
        fn arqc(&self, _data: &[u8]) -> Result<(u16, [u8; 8]), StatusWord> {
            Ok((1, [0xAA; 8]))
        }
    }

    fn profile() -> TokenProfile {
        TokenProfile {
            token: "6299990012345678".into(),
            expiry_yymm: "3112".into(),
            psn: "01".into(),
        }
    }

    #[test]
    fn track2_is_the_token_the_expiry_and_the_service_code() {
        assert_eq!(
            hex::encode_upper(profile().track2()),
            "6299990012345678D31122010000000F"
        );
        assert_eq!(pdol().data_len(), 33);
        assert_eq!(cryptogram_data(&[0; 33]).map(|d| d.len()), Some(29 + 2));
        assert_eq!(cryptogram_data(&[0; 32]), None);
    }

    proptest! {
        /// Any sequence of commands is answered with a response APDU (a
        /// status word at least), never a panic.
        #[test]
        fn any_commands_get_a_response(commands in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8)) {
            let mut card = ContactlessCard::new(profile(), Fixed);
            for c in commands {
                let r = card.process(&c);
                prop_assert!(Response::parse(&r).is_ok());
            }
        }
    }
}
