//! The POS terminal's side of a tap, as a step machine: it says which
//! command APDU to send next and takes each response, so the same kernel
//! runs over an in-process field or a TCP link.
//!
//! ```text
//! SELECT 2PAY.SYS.DDF01 → the AID in its directory
//! SELECT <AID>          → the card's PDOL
//! GET PROCESSING OPTIONS with the PDOL filled from the transaction
//!                       → AIP, AFL, ATC, ARQC, CID, IAD
//! READ RECORD for each record of the AFL
//!                       → track 2 (the token), PSN, expiry
//! ```
//!
//! Done, it hands over what goes to the issuer in the authorisation
//! request: the token, PSN and expiry, and the EMV data (the transaction
//! data, AIP, ATC, cryptogram, CID, IAD) as one BER-TLV string. Any answer
//! out of form ends the tap with the reason.

use thiserror::Error;

use crate::apdu::{ins, Command, Response, StatusWord};
use crate::card::PPSE;
use crate::dictionary as tag;
use crate::dol::Dol;
use crate::tlv::{self, Tag, Tlv};

/// What is being paid, as the terminal knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Minor units, at most 12 digits.
    pub amount_minor: u64,
    /// ISO 4217 numeric (156 for CNY).
    pub currency: u16,
    /// ISO 3166 numeric of the terminal (156 for China).
    pub country: u16,
    /// `YYMMDD`.
    pub date: String,
    /// `00` for a purchase.
    pub transaction_type: u8,
    /// Fresh for every tap: the card's cryptogram covers it.
    pub unpredictable_number: [u8; 4],
}

/// Terminal Transaction Qualifiers: EMV mode contactless, online capable,
/// online PIN not supported, consumer device CVM supported.
pub const TTQ: [u8; 4] = [0x36, 0x00, 0x40, 0x00];

/// Packs a number as `len` bytes of BCD, right-aligned.
pub fn bcd(n: u64, len: usize) -> Vec<u8> {
    let digits = format!("{n:0width$}", width = len * 2);
    let digits = &digits[digits.len().saturating_sub(len * 2)..];
    hex::decode(digits).unwrap_or_else(|_| vec![0; len])
}

impl Transaction {
    /// The value the terminal gives for a data element a card asks for.
    pub fn value_of(&self, t: Tag) -> Option<Vec<u8>> {
        Some(match t {
            t if t == tag::TTQ => TTQ.to_vec(),
            t if t == tag::AMOUNT_AUTHORISED => bcd(self.amount_minor, 6),
            t if t == tag::AMOUNT_OTHER => bcd(0, 6),
            t if t == tag::TERMINAL_COUNTRY => bcd(u64::from(self.country), 2),
            t if t == tag::TVR => vec![0; 5],
            t if t == tag::CURRENCY => bcd(u64::from(self.currency), 2),
            t if t == tag::TRANSACTION_DATE => hex::decode(&self.date).ok()?,
            t if t == tag::TRANSACTION_TYPE => vec![self.transaction_type],
            t if t == tag::UNPREDICTABLE_NUMBER => self.unpredictable_number.to_vec(),
            _ => return None,
        })
    }
}

/// Why a tap ended without card data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TapError {
    #[error("the card answered {command}: {sw}")]
    Refused {
        command: &'static str,
        sw: StatusWord,
    },
    #[error("the card's answer to {command} is malformed: {why}")]
    Malformed {
        command: &'static str,
        why: &'static str,
    },
    #[error("the tap is over")]
    Over,
}

/// What the terminal read from the card: what the authorisation request
/// carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardData {
    /// The card token (the PAN the card shows).
    pub token: String,
    pub psn: String,
    /// `YYMM`.
    pub expiry_yymm: String,
    pub atc: u16,
    pub arqc: [u8; 8],
    /// The transaction data, AIP, ATC, cryptogram, CID and IAD, BER-TLV.
    pub emv_data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    SelectDirectory,
    SelectApplication { aid: Vec<u8> },
    GetProcessingOptions { pdol: Dol },
    ReadRecords { remaining: Vec<(u8, u8)> },
    Done,
}

/// One tap, from the terminal's side.
#[derive(Debug)]
pub struct Tap {
    transaction: Transaction,
    step: Step,
    /// Data objects collected from the card's answers.
    collected: Vec<Tlv>,
    /// The PDOL's data sent, kept for the authorisation request.
    pdol_data: Vec<(Tag, Vec<u8>)>,
}

fn malformed(command: &'static str, why: &'static str) -> TapError {
    TapError::Malformed { command, why }
}

fn command(cla: u8, ins: u8, p1: u8, p2: u8, data: Vec<u8>) -> Command {
    Command::new(cla, ins, p1, p2, data, Some(256)).expect("the terminal's own commands are short")
}

impl Tap {
    pub fn new(transaction: Transaction) -> Tap {
        Tap {
            transaction,
            step: Step::SelectDirectory,
            collected: Vec::new(),
            pdol_data: Vec::new(),
        }
    }

    /// The name of the command the current step sends.
    fn step_name(&self) -> Option<&'static str> {
        Some(match &self.step {
            Step::SelectDirectory => "SELECT 2PAY.SYS.DDF01",
            Step::SelectApplication { .. } => "SELECT application",
            Step::GetProcessingOptions { .. } => "GET PROCESSING OPTIONS",
            Step::ReadRecords { .. } => "READ RECORD",
            Step::Done => return None,
        })
    }

    /// The next command to send, with its name; `None` once done.
    pub fn next_command(&self) -> Option<(&'static str, Command)> {
        let name = self.step_name()?;
        match &self.step {
            Step::SelectDirectory => {
                Some((name, command(0x00, ins::SELECT, 0x04, 0x00, PPSE.to_vec())))
            }
            Step::SelectApplication { aid } => {
                Some((name, command(0x00, ins::SELECT, 0x04, 0x00, aid.clone())))
            }
            Step::GetProcessingOptions { pdol } => {
                let data = pdol.fill(|t| self.transaction.value_of(t));
                let template = Tlv::primitive(tag::COMMAND_TEMPLATE, data).ok()?;
                Some((
                    name,
                    command(
                        0x80,
                        ins::GET_PROCESSING_OPTIONS,
                        0x00,
                        0x00,
                        template.encode(),
                    ),
                ))
            }
            Step::ReadRecords { remaining } => remaining.first().map(|(sfi, record)| {
                (
                    name,
                    command(0x00, ins::READ_RECORD, *record, (sfi << 3) | 4, Vec::new()),
                )
            }),
            Step::Done => None,
        }
    }

    /// Takes the card's answer to the command [`Tap::next_command`] gave.
    pub fn on_response(&mut self, response: &[u8]) -> Result<(), TapError> {
        let Some(name) = self.step_name() else {
            return Err(TapError::Over);
        };
        let r = Response::parse(response).map_err(|_| malformed(name, "not a response APDU"))?;
        if !r.sw.is_ok() {
            return Err(TapError::Refused {
                command: name,
                sw: r.sw,
            });
        }
        let objects = tlv::parse(&r.data).map_err(|_| malformed(name, "not BER-TLV"))?;
        self.step = match std::mem::replace(&mut self.step, Step::Done) {
            Step::SelectDirectory => {
                let aid = tlv::find_bytes(&objects, tag::AID)
                    .ok_or(malformed(name, "no application in the directory"))?;
                Step::SelectApplication { aid: aid.to_vec() }
            }
            Step::SelectApplication { .. } => {
                let pdol = tlv::find_bytes(&objects, tag::PDOL)
                    .ok_or(malformed(name, "no PDOL"))
                    .and_then(|b| Dol::parse(b).map_err(|_| malformed(name, "a bad PDOL")))?;
                Step::GetProcessingOptions { pdol }
            }
            Step::GetProcessingOptions { pdol } => {
                let template = tlv::find(&objects, tag::RESPONSE_FORMAT_2)
                    .ok_or(malformed(name, "not response format 2"))?;
                let afl = tlv::find_bytes(template.children(), tag::AFL)
                    .ok_or(malformed(name, "no AFL"))?;
                let remaining = records_of(afl).ok_or(malformed(name, "a bad AFL"))?;
                let data = pdol.fill(|t| self.transaction.value_of(t));
                self.pdol_data = pdol
                    .split(&data)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(t, v)| (t, v.to_vec()))
                    .collect();
                self.collected.extend(template.children().iter().cloned());
                Step::ReadRecords { remaining }
            }
            Step::ReadRecords { mut remaining } => {
                let record = tlv::find(&objects, tag::RECORD)
                    .ok_or(malformed(name, "not a record template"))?;
                self.collected.extend(record.children().iter().cloned());
                remaining.remove(0);
                if remaining.is_empty() {
                    Step::Done
                } else {
                    Step::ReadRecords { remaining }
                }
            }
            Step::Done => return Err(TapError::Over),
        };
        Ok(())
    }

    /// The card data once every step is done.
    pub fn card_data(&self) -> Result<CardData, TapError> {
        if self.step != Step::Done {
            return Err(malformed("the tap", "not finished"));
        }
        let get =
            |t: Tag, why| tlv::find_bytes(&self.collected, t).ok_or(malformed("the tap", why));
        let track2 = hex::encode_upper(get(tag::TRACK2, "no track 2")?);
        let (token, rest) = track2
            .split_once('D')
            .ok_or(malformed("READ RECORD", "track 2 without its separator"))?;
        if !(12..=19).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("READ RECORD", "track 2 without a PAN"));
        }
        let expiry_yymm = rest
            .get(..4)
            .ok_or(malformed("READ RECORD", "track 2 without an expiry"))?
            .to_owned();
        let psn = hex::encode(get(tag::PSN, "no PAN sequence number")?);
        let atc = get(tag::ATC, "no ATC")?;
        let atc =
            u16::from_be_bytes(atc.try_into().map_err(|_| {
                malformed("GET PROCESSING OPTIONS", "an ATC of other than 2 bytes")
            })?);
        let arqc: [u8; 8] = get(tag::APPLICATION_CRYPTOGRAM, "no cryptogram")?
            .try_into()
            .map_err(|_| {
                malformed(
                    "GET PROCESSING OPTIONS",
                    "a cryptogram of other than 8 bytes",
                )
            })?;
        let mut emv = Vec::new();
        for (t, v) in &self.pdol_data {
            if *t != tag::TTQ {
                emv.push(
                    Tlv::primitive(*t, v.clone())
                        .map_err(|_| malformed("the tap", "a long value"))?,
                );
            }
        }
        for t in [
            tag::AIP,
            tag::ATC,
            tag::APPLICATION_CRYPTOGRAM,
            tag::CRYPTOGRAM_INFORMATION,
            tag::ISSUER_APPLICATION_DATA,
        ] {
            let v = get(t, "a data object of the cryptogram is missing")?;
            emv.push(Tlv::primitive(t, v).map_err(|_| malformed("the tap", "a long value"))?);
        }
        Ok(CardData {
            token: token.to_owned(),
            psn,
            expiry_yymm,
            atc,
            arqc,
            emv_data: tlv::encode_all(&emv),
        })
    }
}

/// The (SFI, record) pairs an AFL lists: four bytes per entry, SFI in the
/// top five bits, first and last record.
fn records_of(afl: &[u8]) -> Option<Vec<(u8, u8)>> {
    if afl.is_empty() || !afl.len().is_multiple_of(4) || afl.len() > 16 {
        return None;
    }
    let mut out = Vec::new();
    for entry in afl.chunks(4) {
        let (sfi, first, last) = (entry[0] >> 3, entry[1], entry[2]);
        if sfi == 0 || first == 0 || last < first || last - first > 8 {
            return None;
        }
        out.extend((first..=last).map(|r| (sfi, r)));
    }
    Some(out)
}

/// What the issuer takes back from the EMV data of an authorisation
/// request: the values in the order the cryptogram covers them (the PDOL's
/// transaction data, then AIP and ATC), the ATC and the cryptogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmvData {
    pub cryptogram_data: Vec<u8>,
    pub atc: u16,
    pub arqc: [u8; 8],
    pub amount_minor: u64,
    pub currency: u16,
}

/// Reads an authorisation request's EMV data; `None` if a data object the
/// cryptogram needs is missing or of the wrong length, or any is there
/// twice.
pub fn read_emv_data(bytes: &[u8]) -> Option<EmvData> {
    let objects = tlv::parse(bytes).ok()?;
    let mut seen = std::collections::HashSet::new();
    if !objects.iter().all(|o| seen.insert(o.tag())) {
        return None;
    }
    let get = |t: Tag, len: usize| tlv::find_bytes(&objects, t).filter(|v| v.len() == len);
    let mut data = Vec::new();
    for e in crate::card::pdol().entries() {
        if e.tag != tag::TTQ {
            data.extend_from_slice(get(e.tag, e.len)?);
        }
    }
    data.extend_from_slice(get(tag::AIP, 2)?);
    let atc = get(tag::ATC, 2)?;
    data.extend_from_slice(atc);
    let digits = |v: &[u8]| hex::encode(v).parse::<u64>().ok();
    Some(EmvData {
        cryptogram_data: data,
        atc: u16::from_be_bytes([atc[0], atc[1]]),
        arqc: get(tag::APPLICATION_CRYPTOGRAM, 8)?.try_into().ok()?,
        amount_minor: digits(get(tag::AMOUNT_AUTHORISED, 6)?)?,
        currency: u16::try_from(digits(get(tag::CURRENCY, 2)?)?).ok()?,
    })
}
