//! ISO/IEC 7816-4 APDUs in their short form, the one EMV contactless uses.
//!
//! ```text
//! command   CLA INS P1 P2                     case 1: no data, no answer data
//!           CLA INS P1 P2 Le                  case 2: answer data expected
//!           CLA INS P1 P2 Lc data             case 3: data, no answer data
//!           CLA INS P1 P2 Lc data Le          case 4: both
//! response  data SW1 SW2
//! ```
//!
//! `Lc` is 1 to 255; `Le` 00 means 256. An `Lc` of 00 starts the extended
//! form, which EMV contactless does not use and is refused, as are lengths
//! that do not add up and anything longer than a short APDU can be.

use thiserror::Error;

/// The longest short command APDU: header, Lc, 255 data bytes, Le.
pub const MAX_COMMAND_LEN: usize = 4 + 1 + 255 + 1;
/// The longest short response APDU: 256 data bytes and the status word.
pub const MAX_RESPONSE_LEN: usize = 256 + 2;

/// Instruction bytes of the commands an EMV contactless card answers.
pub mod ins {
    pub const SELECT: u8 = 0xA4;
    pub const READ_RECORD: u8 = 0xB2;
    pub const GET_PROCESSING_OPTIONS: u8 = 0xA8;
    pub const GENERATE_AC: u8 = 0xAE;
    pub const GET_DATA: u8 = 0xCA;
}

/// A command APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// 0 to 255 bytes.
    pub data: Vec<u8>,
    /// Answer bytes expected, 1 to 256; `None` when none are.
    pub le: Option<u16>,
}

/// A response APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 0 to 256 bytes.
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ApduError {
    #[error("an APDU shorter than its header (command: 4 bytes, response: 2)")]
    TooShort,
    #[error("longer than a short APDU can be")]
    TooLong,
    #[error("the extended length form (Lc 00) is not used in EMV contactless")]
    Extended,
    #[error("Lc and the data that follows do not add up")]
    WrongLength,
    #[error("more data than a short APDU carries")]
    DataTooLong,
    #[error("Le outside 1 to 256")]
    LeOutOfRange,
}

impl Command {
    /// A command with data and, when `le` is given, an answer expected.
    pub fn new(
        cla: u8,
        ins: u8,
        p1: u8,
        p2: u8,
        data: Vec<u8>,
        le: Option<u16>,
    ) -> Result<Command, ApduError> {
        if data.len() > 255 {
            return Err(ApduError::DataTooLong);
        }
        if le.is_some_and(|n| !(1..=256).contains(&n)) {
            return Err(ApduError::LeOutOfRange);
        }
        Ok(Command {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
        })
    }

    /// Parses a short command APDU of any of the four cases.
    pub fn parse(bytes: &[u8]) -> Result<Command, ApduError> {
        if bytes.len() < 4 {
            return Err(ApduError::TooShort);
        }
        if bytes.len() > MAX_COMMAND_LEN {
            return Err(ApduError::TooLong);
        }
        let (header, body) = bytes.split_at(4);
        let le_of = |b: u8| if b == 0 { 256 } else { u16::from(b) };
        let (data, le) = match body {
            [] => (Vec::new(), None),
            [le] => (Vec::new(), Some(le_of(*le))),
            [0, ..] => return Err(ApduError::Extended),
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                match rest.len() {
                    n if n == lc => (rest.to_vec(), None),
                    n if n == lc + 1 => (rest[..lc].to_vec(), Some(le_of(rest[lc]))),
                    _ => return Err(ApduError::WrongLength),
                }
            }
        };
        Ok(Command {
            cla: header[0],
            ins: header[1],
            p1: header[2],
            p2: header[3],
            data,
            le,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.cla, self.ins, self.p1, self.p2];
        if !self.data.is_empty() {
            // `new` and `parse` keep it within 255.
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            out.push(if le == 256 { 0 } else { le as u8 });
        }
        out
    }
}

impl Response {
    pub fn new(data: Vec<u8>, sw: StatusWord) -> Result<Response, ApduError> {
        if data.len() > 256 {
            return Err(ApduError::DataTooLong);
        }
        Ok(Response { data, sw })
    }

    /// A status word alone.
    pub fn status(sw: StatusWord) -> Response {
        Response {
            data: Vec::new(),
            sw,
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Response, ApduError> {
        if bytes.len() < 2 {
            return Err(ApduError::TooShort);
        }
        if bytes.len() > MAX_RESPONSE_LEN {
            return Err(ApduError::TooLong);
        }
        let (data, sw) = bytes.split_at(bytes.len() - 2);
        Ok(Response {
            data: data.to_vec(),
            sw: StatusWord(u16::from_be_bytes([sw[0], sw[1]])),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        out.extend_from_slice(&self.sw.0.to_be_bytes());
        out
    }
}

/// SW1 SW2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    pub const OK: StatusWord = StatusWord(0x9000);
    pub const WRONG_LENGTH: StatusWord = StatusWord(0x6700);
    pub const SECURITY_STATUS_NOT_SATISFIED: StatusWord = StatusWord(0x6982);
    pub const CONDITIONS_NOT_SATISFIED: StatusWord = StatusWord(0x6985);
    pub const WRONG_DATA: StatusWord = StatusWord(0x6A80);
    pub const FUNCTION_NOT_SUPPORTED: StatusWord = StatusWord(0x6A81);
    pub const FILE_NOT_FOUND: StatusWord = StatusWord(0x6A82);
    pub const RECORD_NOT_FOUND: StatusWord = StatusWord(0x6A83);
    pub const WRONG_P1_P2: StatusWord = StatusWord(0x6A86);
    pub const REFERENCED_DATA_NOT_FOUND: StatusWord = StatusWord(0x6A88);
    pub const INS_NOT_SUPPORTED: StatusWord = StatusWord(0x6D00);
    pub const CLA_NOT_SUPPORTED: StatusWord = StatusWord(0x6E00);
    pub const NO_PRECISE_DIAGNOSIS: StatusWord = StatusWord(0x6F00);

    pub fn is_ok(self) -> bool {
        self == StatusWord::OK
    }

    /// What it means, as ISO/IEC 7816-4 says (for people reading a trace).
    pub fn meaning(self) -> &'static str {
        match self.0 {
            0x9000 => "normal processing",
            0x6700 => "wrong length",
            0x6982 => "security status not satisfied",
            0x6985 => "conditions of use not satisfied",
            0x6A80 => "incorrect parameters in the data field",
            0x6A81 => "function not supported",
            0x6A82 => "file or application not found",
            0x6A83 => "record not found",
            0x6A86 => "incorrect parameters P1-P2",
            0x6A88 => "referenced data not found",
            0x6D00 => "instruction not supported",
            0x6E00 => "class not supported",
            0x6F00 => "no precise diagnosis",
            sw if sw & 0xFF00 == 0x6100 => "more response bytes available",
            sw if sw & 0xFF00 == 0x6C00 => "wrong Le: the exact length is in SW2",
            _ => "unknown status",
        }
    }
}

impl std::fmt::Display for StatusWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X} ({})", self.0, self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn the_four_cases_parse_and_encode_back() {
        // SELECT 2PAY.SYS.DDF01, case 4.
        let select = h("00 A4 04 00 0E 325041592E5359532E4444463031 00");
        let c = Command::parse(&select).unwrap();
        assert_eq!((c.cla, c.ins, c.p1, c.p2), (0x00, ins::SELECT, 0x04, 0x00));
        assert_eq!(c.data, b"2PAY.SYS.DDF01");
        assert_eq!(c.le, Some(256));
        assert_eq!(c.encode(), select);
        for (bytes, data_len, le) in [
            (h("80 CA 9F 36"), 0, None),
            (h("00 B2 01 0C 00"), 0, Some(256)),
            (h("00 B2 01 0C 10"), 0, Some(16)),
            (h("80 A8 00 00 02 8300"), 2, None),
        ] {
            let c = Command::parse(&bytes).unwrap();
            assert_eq!((c.data.len(), c.le), (data_len, le));
            assert_eq!(c.encode(), bytes);
        }
        let r = Response::parse(&h("6F00 9000")).unwrap();
        assert_eq!(
            (r.data.as_slice(), r.sw),
            (&[0x6F, 0x00][..], StatusWord::OK)
        );
        assert_eq!(r.encode(), h("6F00 9000"));
        assert_eq!(
            StatusWord::FILE_NOT_FOUND.to_string(),
            "6A82 (file or application not found)"
        );
    }

    #[test]
    fn lengths_that_do_not_add_up_are_refused() {
        assert_eq!(Command::parse(&h("00 A4 04")), Err(ApduError::TooShort));
        assert_eq!(
            Command::parse(&h("00 A4 04 00 05 0102")),
            Err(ApduError::WrongLength)
        );
        assert_eq!(
            Command::parse(&h("00 A4 04 00 02 010203 04")),
            Err(ApduError::WrongLength)
        );
        assert_eq!(
            Command::parse(&h("00 A4 04 00 00 0001 01")),
            Err(ApduError::Extended)
        );
        assert_eq!(
            Command::parse(&vec![0u8; MAX_COMMAND_LEN + 1]),
            Err(ApduError::TooLong)
        );
        assert_eq!(Response::parse(&h("90")), Err(ApduError::TooShort));
        assert_eq!(
            Response::parse(&vec![0u8; MAX_RESPONSE_LEN + 1]),
            Err(ApduError::TooLong)
        );
        assert_eq!(
            Command::new(0, 0, 0, 0, vec![0; 256], None),
            Err(ApduError::DataTooLong)
        );
        assert_eq!(
            Command::new(0, 0, 0, 0, vec![], Some(0)),
            Err(ApduError::LeOutOfRange)
        );
        assert_eq!(
            Response::new(vec![0; 257], StatusWord::OK),
            Err(ApduError::DataTooLong)
        );
    }

    proptest! {
        #[test]
        fn commands_encode_and_parse_back(header in any::<[u8; 4]>(), data in prop::collection::vec(any::<u8>(), 0..256), le in prop::option::of(1u16..=256)) {
            let c = Command::new(header[0], header[1], header[2], header[3], data, le).unwrap();
            prop_assert_eq!(Command::parse(&c.encode()).unwrap(), c);
        }

        #[test]
        fn any_bytes_parse_or_are_refused_and_a_parse_is_canonical(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(c) = Command::parse(&bytes) {
                prop_assert_eq!(c.encode(), bytes.clone());
            }
            if let Ok(r) = Response::parse(&bytes) {
                prop_assert_eq!(r.encode(), bytes);
            }
        }
    }
}
