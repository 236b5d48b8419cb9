//! Data object lists (EMV 4.4 Book 3, 5.4): what a card asks the terminal
//! for, as tags and lengths without values (its PDOL for GET PROCESSING
//! OPTIONS, its CDOL1 for GENERATE AC). The terminal answers with the
//! values concatenated in that order, each at the asked length: a numeric
//! value padded or cut on the left, any other on the right, an unknown one
//! as zeros. The card reads its own list back the same way.

use crate::dictionary::{self, Format};
use crate::tlv::{self, Tag, TlvError, TlvErrorKind};

/// Entries in one list at most: EMV's lists ask for about a dozen.
pub const MAX_ENTRIES: usize = 32;
/// The data a list may ask for, all entries together: it must fit one
/// short command APDU.
pub const MAX_DATA_LEN: usize = 252;

/// One entry: a tag and the length of the value asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tag: Tag,
    pub len: usize,
}

/// A data object list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dol(Vec<Entry>);

impl Dol {
    /// A list from its entries (at most [`MAX_ENTRIES`], asking for at most
    /// [`MAX_DATA_LEN`] bytes; constructed tags are not asked for).
    pub fn new(entries: Vec<Entry>) -> Result<Dol, TlvError> {
        let bad = |kind| TlvError { kind, offset: 0 };
        if entries.len() > MAX_ENTRIES {
            return Err(bad(TlvErrorKind::TooMany));
        }
        if entries.iter().any(|e| e.tag.is_constructed()) {
            return Err(bad(TlvErrorKind::WrongForm));
        }
        if entries.iter().map(|e| e.len).sum::<usize>() > MAX_DATA_LEN {
            return Err(bad(TlvErrorKind::ValueTooLong));
        }
        Ok(Dol(entries))
    }

    /// Parses a list: tags and lengths, strictly as in BER-TLV.
    pub fn parse(bytes: &[u8]) -> Result<Dol, TlvError> {
        let mut entries = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let (tag, n) = tlv::read_tag(&bytes[pos..]).map_err(|e| TlvError {
                offset: pos + e.offset,
                ..e
            })?;
            pos += n;
            let (len, n) = tlv::read_len(&bytes[pos..]).map_err(|e| TlvError {
                offset: pos + e.offset,
                ..e
            })?;
            pos += n;
            entries.push(Entry { tag, len });
            if entries.len() > MAX_ENTRIES {
                return Err(TlvError {
                    kind: TlvErrorKind::TooMany,
                    offset: pos,
                });
            }
        }
        Dol::new(entries).map_err(|e| TlvError {
            offset: bytes.len(),
            ..e
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.0 {
            out.extend_from_slice(&e.tag.bytes());
            tlv::write_len(e.len, &mut out);
        }
        out
    }

    pub fn entries(&self) -> &[Entry] {
        &self.0
    }

    /// The bytes the list asks for, in all.
    pub fn data_len(&self) -> usize {
        self.0.iter().map(|e| e.len).sum()
    }

    /// The terminal's answer: each asked value from `value_of`, fitted to
    /// its length by its format; zeros for what it does not have.
    pub fn fill(&self, value_of: impl Fn(Tag) -> Option<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data_len());
        for e in &self.0 {
            let value = value_of(e.tag).unwrap_or_default();
            let numeric = dictionary::element(e.tag).is_some_and(|d| d.format == Format::N);
            out.extend_from_slice(&fit(&value, e.len, numeric));
        }
        out
    }

    /// The card reads an answer back into its values, in list order; `None`
    /// unless it is exactly as long as the list asks.
    pub fn split<'a>(&self, data: &'a [u8]) -> Option<Vec<(Tag, &'a [u8])>> {
        if data.len() != self.data_len() {
            return None;
        }
        let mut pos = 0;
        Some(
            self.0
                .iter()
                .map(|e| {
                    let value = &data[pos..pos + e.len];
                    pos += e.len;
                    (e.tag, value)
                })
                .collect(),
        )
    }
}

/// `value` at `len` bytes: numeric right-aligned (leading zeros, or its
/// leftmost bytes cut), anything else left-aligned (trailing zeros, or its
/// rightmost bytes cut).
fn fit(value: &[u8], len: usize, numeric: bool) -> Vec<u8> {
    if value.len() >= len {
        return if numeric {
            value[value.len() - len..].to_vec()
        } else {
            value[..len].to_vec()
        };
    }
    let pad = vec![0u8; len - value.len()];
    if numeric {
        [pad.as_slice(), value].concat()
    } else {
        [value, pad.as_slice()].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::{AMOUNT_AUTHORISED, CURRENCY, TTQ, UNPREDICTABLE_NUMBER};
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn a_pdol_is_read_and_filled_by_format() {
        let pdol = Dol::parse(&h("9F66 04 9F02 06 5F2A 02 9F37 04 9F7F 02")).unwrap();
        assert_eq!(pdol.entries().len(), 5);
        assert_eq!(pdol.data_len(), 18);
        assert_eq!(pdol.encode(), h("9F66 04 9F02 06 5F2A 02 9F37 04 9F7F 02"));
        let data = pdol.fill(|t| match t {
            t if t == TTQ => Some(h("36004000")),
            // Amount 12.34: numeric, so padded on the left.
            t if t == AMOUNT_AUTHORISED => Some(h("1234")),
            t if t == CURRENCY => Some(h("0156")),
            t if t == UNPREDICTABLE_NUMBER => Some(h("DEADBEEF01")),
            _ => None,
        });
        assert_eq!(
            data,
            h("36004000 000000001234 0156 DEADBEEF 0000"),
            "binary cut on the right; unknown as zeros"
        );
        let back = pdol.split(&data).unwrap();
        assert_eq!(back[1], (AMOUNT_AUTHORISED, &h("000000001234")[..]));
        assert!(pdol.split(&data[1..]).is_none());
    }

    #[test]
    fn bad_lists_are_refused() {
        assert_eq!(
            Dol::parse(&h("9F66")).unwrap_err().kind,
            TlvErrorKind::Truncated
        );
        assert_eq!(
            Dol::parse(&h("6F 02")).unwrap_err().kind,
            TlvErrorKind::WrongForm
        );
        assert_eq!(
            Dol::parse(&h("57 81 FD")).unwrap_err().kind,
            TlvErrorKind::ValueTooLong
        );
        let many: Vec<u8> = std::iter::repeat_n([0x57u8, 0x01], MAX_ENTRIES + 1)
            .flatten()
            .collect();
        assert_eq!(Dol::parse(&many).unwrap_err().kind, TlvErrorKind::TooMany);
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_or_refused_and_a_read_list_encodes_back(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(dol) = Dol::parse(&bytes) {
                prop_assert_eq!(dol.encode(), bytes);
                let filled = dol.fill(|_| Some(vec![0xAB; 7]));
                prop_assert_eq!(filled.len(), dol.data_len());
                prop_assert!(dol.split(&filled).is_some());
            }
        }
    }
}
