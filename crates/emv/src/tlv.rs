//! BER-TLV data objects as EMV uses them (EMV 4.4 Book 3, Annex B; ISO/IEC
//! 8825-1 for the tag and length forms).
//!
//! ```text
//! tag     1 to 3 bytes: first byte b8-b7 class, b6 constructed, b5-b1 the
//!         number, or 11111 when more bytes follow (each with b8 set but the
//!         last)
//! length  0xxxxxxx (0 to 127) | 81 xx (128 to 255) | 82 xx xx (256 to 65535)
//! value   bytes (primitive), or more data objects (constructed)
//! ```
//!
//! The parser is strict so that one value has one encoding: a tag or a
//! length not in its shortest form, the indefinite length (`80`), padding
//! (`00` or `FF` where a tag should be) and trailing bytes are refused. And it
//! is bounded: at most [`MAX_TAG_BYTES`], lengths of at most two bytes,
//! [`MAX_DEPTH`] constructed levels and [`MAX_OBJECTS`] objects in one parse.
//! A parse that succeeds re-encodes to exactly the bytes it read.

use thiserror::Error;

/// Tag bytes at most (EMV's tags have one or two; three is the format's
/// room for proprietary ones).
pub const MAX_TAG_BYTES: usize = 3;
/// Constructed templates nested at most. EMV's deepest is the FCI of a
/// SELECT answer: `6F` > `A5` > `BF0C` > `61` (four).
pub const MAX_DEPTH: usize = 4;
/// Data objects, at every level together, in one parse: an EMV message
/// carries a few dozen.
pub const MAX_OBJECTS: usize = 256;
/// The longest value a two-byte length can say.
pub const MAX_VALUE_LEN: usize = 0xFFFF;

/// A tag, as its bytes read big-endian (`9F02` is `Tag(0x9F02)`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(u32);

impl std::fmt::Debug for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tag({})", self)
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode_upper(self.bytes()))
    }
}

impl Tag {
    /// A tag from its bytes read big-endian; `None` unless they are a
    /// well-formed tag in its shortest form.
    pub fn new(raw: u32) -> Option<Tag> {
        let bytes = Tag(raw).bytes();
        match read_tag(&bytes) {
            Ok((tag, n)) if n == bytes.len() => Some(tag),
            _ => None,
        }
    }

    /// A tag of this crate's dictionary, written by hand (its test checks
    /// each is one [`Tag::new`] accepts).
    pub(crate) const fn known(raw: u32) -> Tag {
        Tag(raw)
    }

    /// The tag's bytes, 1 to 3.
    pub fn bytes(self) -> Vec<u8> {
        let all = self.0.to_be_bytes();
        let skip = all.iter().take(3).take_while(|b| **b == 0).count();
        all[skip..].to_vec()
    }

    /// Whether its value is more data objects (bit 6 of the first byte).
    pub fn is_constructed(self) -> bool {
        self.first_byte() & 0x20 != 0
    }

    /// The first of its bytes: the highest byte that is not zero.
    fn first_byte(self) -> u8 {
        self.0
            .to_be_bytes()
            .into_iter()
            .find(|b| *b != 0)
            .unwrap_or(0)
    }
}

/// A data object's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Primitive(Vec<u8>),
    Constructed(Vec<Tlv>),
}

/// A data object: its tag and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    tag: Tag,
    value: Value,
}

/// What is wrong with TLV bytes, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("BER-TLV at byte {offset}: {kind}")]
pub struct TlvError {
    pub kind: TlvErrorKind,
    /// Where in the whole input it went wrong.
    pub offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TlvErrorKind {
    #[error("the data ends inside a data object")]
    Truncated,
    #[error("padding or an invalid first tag byte (00 or FF)")]
    InvalidTag,
    #[error("a tag of more than {MAX_TAG_BYTES} bytes")]
    TagTooLong,
    #[error("a tag not in its shortest form")]
    TagNotMinimal,
    #[error("the indefinite length (80) is not used in EMV")]
    IndefiniteLength,
    #[error("a length of more than two bytes")]
    LengthTooLong,
    #[error("a length not in its shortest form")]
    LengthNotMinimal,
    #[error("templates nested more than {MAX_DEPTH} deep")]
    TooDeep,
    #[error("more than {MAX_OBJECTS} data objects")]
    TooMany,
    #[error("a primitive tag where a constructed one is needed, or the reverse")]
    WrongForm,
    #[error("a value longer than {MAX_VALUE_LEN} bytes")]
    ValueTooLong,
}

fn fail(kind: TlvErrorKind, offset: usize) -> TlvError {
    TlvError { kind, offset }
}

/// Reads a tag at the start of `input`: the tag and how many bytes it took.
/// Offsets in its errors are relative to `input`.
pub(crate) fn read_tag(input: &[u8]) -> Result<(Tag, usize), TlvError> {
    use TlvErrorKind::*;
    let first = *input.first().ok_or(fail(Truncated, 0))?;
    if first == 0x00 || first == 0xFF {
        return Err(fail(InvalidTag, 0));
    }
    let mut raw = u32::from(first);
    if first & 0x1F != 0x1F {
        return Ok((Tag(raw), 1));
    }
    for i in 1..MAX_TAG_BYTES {
        let b = *input.get(i).ok_or(fail(Truncated, i))?;
        // The number's leading 7-bit group may not be zero. (A number under
        // 31 in two bytes is fine: EMV's own tags do it, 9F02 and BF0C.)
        if i == 1 && b == 0x80 {
            return Err(fail(TagNotMinimal, i));
        }
        raw = (raw << 8) | u32::from(b);
        if b & 0x80 == 0 {
            return Ok((Tag(raw), i + 1));
        }
    }
    Err(fail(TagTooLong, MAX_TAG_BYTES))
}

/// Reads a length at the start of `input`: the length and its size.
pub(crate) fn read_len(input: &[u8]) -> Result<(usize, usize), TlvError> {
    use TlvErrorKind::*;
    let first = *input.first().ok_or(fail(Truncated, 0))?;
    match first {
        0x00..=0x7F => Ok((usize::from(first), 1)),
        0x80 => Err(fail(IndefiniteLength, 0)),
        0x81 => {
            let n = *input.get(1).ok_or(fail(Truncated, 1))?;
            if n < 0x80 {
                return Err(fail(LengthNotMinimal, 0));
            }
            Ok((usize::from(n), 2))
        }
        0x82 => {
            let hi = *input.get(1).ok_or(fail(Truncated, 1))?;
            let lo = *input.get(2).ok_or(fail(Truncated, 2))?;
            let n = usize::from(u16::from_be_bytes([hi, lo]));
            if n < 0x100 {
                return Err(fail(LengthNotMinimal, 0));
            }
            Ok((n, 3))
        }
        _ => Err(fail(LengthTooLong, 0)),
    }
}

pub(crate) fn write_len(len: usize, out: &mut Vec<u8>) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        _ => {
            out.push(0x82);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
}

/// Parses a sequence of data objects that fills `input` exactly.
pub fn parse(input: &[u8]) -> Result<Vec<Tlv>, TlvError> {
    let mut count = 0;
    parse_level(input, 0, 0, &mut count)
}

/// Parses exactly one data object that fills `input`.
pub fn parse_one(input: &[u8]) -> Result<Tlv, TlvError> {
    let mut all = parse(input)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(fail(TlvErrorKind::Truncated, 0)),
        _ => {
            let first_len = all[0].encode().len();
            Err(fail(TlvErrorKind::WrongForm, first_len))
        }
    }
}

fn parse_level(
    input: &[u8],
    base: usize,
    depth: usize,
    count: &mut usize,
) -> Result<Vec<Tlv>, TlvError> {
    let at = |e: TlvError, pos: usize| fail(e.kind, base + pos + e.offset);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        *count += 1;
        if *count > MAX_OBJECTS {
            return Err(fail(TlvErrorKind::TooMany, base + pos));
        }
        let (tag, n) = read_tag(&input[pos..]).map_err(|e| at(e, pos))?;
        pos += n;
        let (len, n) = read_len(&input[pos..]).map_err(|e| at(e, pos))?;
        pos += n;
        if len > input.len() - pos {
            return Err(fail(TlvErrorKind::Truncated, base + input.len()));
        }
        let body = &input[pos..pos + len];
        let value = if tag.is_constructed() {
            if depth + 1 > MAX_DEPTH {
                return Err(fail(TlvErrorKind::TooDeep, base + pos));
            }
            Value::Constructed(parse_level(body, base + pos, depth + 1, count)?)
        } else {
            Value::Primitive(body.to_vec())
        };
        pos += len;
        out.push(Tlv { tag, value });
    }
    Ok(out)
}

/// Encodes data objects one after another.
pub fn encode_all(objects: &[Tlv]) -> Vec<u8> {
    let mut out = Vec::new();
    for o in objects {
        o.encode_into(&mut out);
    }
    out
}

impl Tlv {
    /// A primitive data object; refused for a constructed tag or a value
    /// too long for a two-byte length.
    pub fn primitive(tag: Tag, value: impl Into<Vec<u8>>) -> Result<Tlv, TlvError> {
        let value = value.into();
        if tag.is_constructed() {
            return Err(fail(TlvErrorKind::WrongForm, 0));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(fail(TlvErrorKind::ValueTooLong, 0));
        }
        Ok(Tlv {
            tag,
            value: Value::Primitive(value),
        })
    }

    /// A template; refused for a primitive tag, or when its content
    /// encodes longer than a two-byte length says.
    pub fn constructed(tag: Tag, children: Vec<Tlv>) -> Result<Tlv, TlvError> {
        if !tag.is_constructed() {
            return Err(fail(TlvErrorKind::WrongForm, 0));
        }
        if encode_all(&children).len() > MAX_VALUE_LEN {
            return Err(fail(TlvErrorKind::ValueTooLong, 0));
        }
        Ok(Tlv {
            tag,
            value: Value::Constructed(children),
        })
    }

    pub fn tag(&self) -> Tag {
        self.tag
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// A primitive object's bytes; `None` for a template.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::Primitive(v) => Some(v),
            Value::Constructed(_) => None,
        }
    }

    /// A template's data objects; empty for a primitive one.
    pub fn children(&self) -> &[Tlv] {
        match &self.value {
            Value::Primitive(_) => &[],
            Value::Constructed(c) => c,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag.bytes());
        match &self.value {
            Value::Primitive(v) => {
                write_len(v.len(), out);
                out.extend_from_slice(v);
            }
            Value::Constructed(children) => {
                let inner = encode_all(children);
                write_len(inner.len(), out);
                out.extend_from_slice(&inner);
            }
        }
    }
}

/// The first data object with `tag`, depth first, among `objects` and the
/// templates inside them.
pub fn find(objects: &[Tlv], tag: Tag) -> Option<&Tlv> {
    objects.iter().find_map(|o| {
        if o.tag == tag {
            Some(o)
        } else {
            find(o.children(), tag)
        }
    })
}

/// The bytes of the first primitive data object with `tag` (see [`find`]).
pub fn find_bytes(objects: &[Tlv], tag: Tag) -> Option<&[u8]> {
    find(objects, tag).and_then(Tlv::bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn kind(bytes: &[u8]) -> TlvErrorKind {
        parse(bytes).unwrap_err().kind
    }

    #[test]
    fn an_fci_template_parses_and_encodes_back() {
        // SELECT 2PAY.SYS.DDF01's answer: FCI 6F > 84, A5 > BF0C > 61 > 4F, 87.
        let fci = h("6F 23 84 0E 325041592E5359532E4444463031 A5 11 BF0C 0E 61 0C 4F 07 A0000000041010 87 01 01");
        let parsed = parse(&fci).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(
            find_bytes(&parsed, Tag::new(0x4F).unwrap()),
            Some(&h("A0000000041010")[..])
        );
        assert_eq!(
            find_bytes(&parsed, Tag::new(0x87).unwrap()),
            Some(&[1u8][..])
        );
        assert!(find(&parsed, Tag::new(0xBF0C).unwrap()).is_some());
        assert_eq!(encode_all(&parsed), fci);
    }

    #[test]
    fn tags_lengths_and_forms() {
        assert_eq!(Tag::new(0x9F02).unwrap().bytes(), [0x9F, 0x02]);
        assert!(!Tag::new(0x9F02).unwrap().is_constructed());
        assert!(Tag::new(0x6F).unwrap().is_constructed());
        assert!(Tag::new(0xBF0C).unwrap().is_constructed());
        assert_eq!(Tag::new(0x9F02).unwrap().to_string(), "9F02");
        assert_eq!(Tag::new(0x9F80), None, "a zero leading group");
        assert_eq!(
            Tag::new(0x9F8181),
            None,
            "a tag that says more bytes follow"
        );
        assert_eq!(Tag::new(0xFF01), None, "FF is padding, not a tag");
        assert_eq!(Tag::new(0x9F8102).unwrap().bytes(), [0x9F, 0x81, 0x02]);
        assert_eq!(Tag::new(0x9F), None, "a first byte that promises more");
        assert_eq!(Tag::new(0x00), None);
        // Lengths: 127 in one byte, 128 in two, 256 in three.
        for len in [0usize, 127, 128, 255, 256, 1000] {
            let o = Tlv::primitive(Tag::new(0x57).unwrap(), vec![7; len]).unwrap();
            let bytes = o.encode();
            assert_eq!(parse_one(&bytes).unwrap(), o, "{len}");
        }
        assert_eq!(
            Tlv::primitive(Tag::new(0x6F).unwrap(), vec![])
                .unwrap_err()
                .kind,
            TlvErrorKind::WrongForm
        );
        assert_eq!(
            Tlv::primitive(Tag::new(0x57).unwrap(), vec![0; MAX_VALUE_LEN + 1])
                .unwrap_err()
                .kind,
            TlvErrorKind::ValueTooLong
        );
    }

    #[test]
    fn every_malformation_is_refused_with_its_kind() {
        use TlvErrorKind::*;
        assert_eq!(kind(&h("57 05 0102")), Truncated);
        assert_eq!(kind(&h("9F")), Truncated);
        assert_eq!(kind(&h("57")), Truncated);
        assert_eq!(kind(&h("00 57 01 01")), InvalidTag, "padding");
        assert_eq!(kind(&h("57 01 01 FF")), InvalidTag);
        assert_eq!(kind(&h("9F 80 02 01 00")), TagNotMinimal);
        assert_eq!(kind(&h("9F 80 81 01 00")), TagNotMinimal);
        assert_eq!(kind(&h("9F 81 81 81 01 00")), TagTooLong);
        assert_eq!(kind(&h("57 80 01 00 00")), IndefiniteLength);
        assert_eq!(kind(&h("57 81 05 0102030405")), LengthNotMinimal);
        assert_eq!(kind(&h("57 82 0005 0102030405")), LengthNotMinimal);
        assert_eq!(kind(&h("57 83 000001 00")), LengthTooLong);
        assert_eq!(kind(&h("57 82 FFFF 00")), Truncated, "a huge length");
        // Five templates deep.
        assert_eq!(kind(&h("6F 0A 6F 08 6F 06 6F 04 6F 02 6F 00")), TooDeep);
        assert!(
            parse(&h("6F 08 6F 06 6F 04 6F 02 57 00")).is_ok(),
            "four is fine"
        );
        // A template whose content overruns it.
        assert_eq!(kind(&h("6F 03 57 05 01")), Truncated);
        let many: Vec<u8> = std::iter::repeat_n([0x57u8, 0x00], MAX_OBJECTS + 1)
            .flatten()
            .collect();
        assert_eq!(kind(&many), TooMany);
        assert_eq!(
            parse_one(&h("57 00 57 00")).unwrap_err().kind,
            WrongForm,
            "one object, not two"
        );
        // Where: the offset of the bad byte in the whole input.
        let e = parse(&h("6F 04 57 02 01")).unwrap_err();
        assert_eq!((e.kind, e.offset), (Truncated, 5));
        let e = parse(&h("57 00 9F 80 02")).unwrap_err();
        assert_eq!((e.kind, e.offset), (TagNotMinimal, 3));
    }

    fn tag_strategy(constructed: bool) -> impl Strategy<Value = Tag> {
        let form = if constructed { 0x20u32 } else { 0 };
        prop_oneof![
            // One byte: class, form, number 1..=30.
            (0u32..4, 1u32..31).prop_map(move |(class, n)| (class << 6) | form | n),
            // Two bytes (EMV writes numbers under 31 so too: 9F02).
            (0u32..4, 0u32..128)
                .prop_map(move |(class, n)| (((class << 6) | form | 0x1F) << 8) | n),
        ]
        // FF (class 3, constructed, more bytes) is padding, never a tag.
        .prop_filter_map("a well-formed tag", Tag::new)
    }

    fn tlv_strategy() -> impl Strategy<Value = Tlv> {
        let leaf = (
            tag_strategy(false),
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(t, v)| Tlv::primitive(t, v).unwrap());
        leaf.prop_recursive(MAX_DEPTH as u32, 64, 4, |inner| {
            (tag_strategy(true), prop::collection::vec(inner, 0..4))
                .prop_map(|(t, c)| Tlv::constructed(t, c).unwrap())
        })
    }

    proptest! {
        #[test]
        fn what_is_encoded_parses_back_the_same(objects in prop::collection::vec(tlv_strategy(), 0..4)) {
            let bytes = encode_all(&objects);
            // Objects past the limit are refused whole, never half-read.
            match parse(&bytes) {
                Ok(parsed) => prop_assert_eq!(parsed, objects),
                Err(e) => prop_assert_eq!(e.kind, TlvErrorKind::TooMany),
            }
        }

        #[test]
        fn any_bytes_parse_or_are_refused_and_a_parse_is_canonical(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(parsed) = parse(&bytes) {
                prop_assert_eq!(encode_all(&parsed), bytes);
            }
        }

        #[test]
        fn a_cut_or_flipped_encoding_never_panics(object in tlv_strategy(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let bytes = object.encode();
            let _ = parse(&bytes[..cut.index(bytes.len() + 1)]);
            let mut flipped = bytes.clone();
            if !flipped.is_empty() {
                let i = flip.index(flipped.len());
                flipped[i] ^= 1 << bit;
                if let Ok(parsed) = parse(&flipped) {
                    prop_assert_eq!(encode_all(&parsed), flipped);
                }
            }
        }
    }
}
