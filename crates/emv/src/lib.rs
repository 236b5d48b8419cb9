//! EMV contactless on the wire (flow F5, paying at a POS): what the POS
//! terminal and the phone's card emulation exchange.
//!
//! - [`tlv`]: BER-TLV data objects as EMV uses them (EMV 4.4 Book 3,
//!   Annex B): strict (one encoding per value: shortest tags and lengths,
//!   no padding, no indefinite length) and bounded (tag and length sizes,
//!   nesting depth, objects per message), so a parse that succeeds
//!   re-encodes to the very bytes it read.
//! - [`apdu`]: ISO/IEC 7816-4 command and response APDUs (short form, the
//!   only one EMV contactless uses) and status words with their meaning.
//! - [`dol`]: data object lists (a card's PDOL and CDOL1): what the
//!   terminal fills in, and the card reads back.
//! - [`dictionary`]: the EMV data elements used here, their names (for a
//!   trace) and formats.
//! - [`card`]: the contactless card application a phone emulates for its
//!   token (SELECT, GET PROCESSING OPTIONS with the ARQC from its secure
//!   element, READ RECORD), one tap at a time.
//! - [`terminal`]: the POS terminal's side of a tap as a step machine, and
//!   the issuer's reading of the EMV data an authorisation request carries.
//!
//! Everything here is pure and never panics on any input: property tests
//! check it, and `fuzz/` holds `cargo fuzz` targets with a committed corpus
//! that the ordinary tests replay.

pub mod apdu;
pub mod card;
pub mod dictionary;
pub mod dol;
pub mod terminal;
pub mod tlv;

pub use apdu::{ApduError, Command, Response, StatusWord};
pub use card::ContactlessCard;
pub use dol::Dol;
pub use tlv::{Tag, Tlv, TlvError, TlvErrorKind, Value};
