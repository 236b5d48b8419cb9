//! The EMV data elements paybridge's card emulation and POS terminal use:
//! tag, name and format (EMV 4.4 Book 3, Annex A), so a trace can say what
//! each data object is, and a data object list can pad or cut a value the
//! way its format wants.

use crate::tlv::Tag;

/// How a data element's value is written (EMV Book 3, 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Binary.
    B,
    /// Numeric: BCD, right-aligned, padded with leading zero nibbles.
    N,
    /// Compressed numeric: BCD, left-aligned, padded with trailing F nibbles.
    Cn,
    /// Alphanumeric special (ASCII).
    Ans,
    /// A template of other data objects.
    Template,
}

/// A data element of the dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element {
    pub tag: Tag,
    pub name: &'static str,
    pub format: Format,
}

macro_rules! elements {
    ($($constant:ident $tag:literal $format:ident $name:literal,)*) => {
        $(
            #[doc = $name]
            pub const $constant: Tag = Tag::known($tag);
        )*
        /// Every element this crate knows.
        pub const ELEMENTS: &[Element] = &[
            $(Element { tag: $constant, name: $name, format: Format::$format },)*
        ];
    };
}

elements! {
    AID 0x4F B "Application Identifier (AID)",
    APPLICATION_LABEL 0x50 Ans "Application Label",
    TRACK2 0x57 B "Track 2 Equivalent Data",
    PAN 0x5A Cn "Application PAN",
    EXPIRY 0x5F24 N "Application Expiration Date",
    CURRENCY 0x5F2A N "Transaction Currency Code",
    PSN 0x5F34 N "PAN Sequence Number",
    APPLICATION_TEMPLATE 0x61 Template "Application Template",
    FCI 0x6F Template "File Control Information (FCI) Template",
    RECORD 0x70 Template "Record Template",
    RESPONSE_FORMAT_2 0x77 Template "Response Message Template Format 2",
    RESPONSE_FORMAT_1 0x80 B "Response Message Template Format 1",
    AIP 0x82 B "Application Interchange Profile",
    COMMAND_TEMPLATE 0x83 B "Command Template",
    DF_NAME 0x84 B "Dedicated File (DF) Name",
    PRIORITY 0x87 B "Application Priority Indicator",
    CDOL1 0x8C B "Card Risk Management Data Object List 1 (CDOL1)",
    AFL 0x94 B "Application File Locator",
    TVR 0x95 B "Terminal Verification Results",
    TRANSACTION_DATE 0x9A N "Transaction Date",
    TRANSACTION_TYPE 0x9C N "Transaction Type",
    AMOUNT_AUTHORISED 0x9F02 N "Amount, Authorised (Numeric)",
    AMOUNT_OTHER 0x9F03 N "Amount, Other (Numeric)",
    ISSUER_APPLICATION_DATA 0x9F10 B "Issuer Application Data",
    TERMINAL_COUNTRY 0x9F1A N "Terminal Country Code",
    APPLICATION_CRYPTOGRAM 0x9F26 B "Application Cryptogram",
    CRYPTOGRAM_INFORMATION 0x9F27 B "Cryptogram Information Data",
    ATC 0x9F36 B "Application Transaction Counter (ATC)",
    UNPREDICTABLE_NUMBER 0x9F37 B "Unpredictable Number",
    PDOL 0x9F38 B "Processing Options Data Object List (PDOL)",
    TTQ 0x9F66 B "Terminal Transaction Qualifiers (TTQ)",
    FCI_PROPRIETARY 0xA5 Template "FCI Proprietary Template",
    FCI_ISSUER_DISCRETIONARY 0xBF0C Template "FCI Issuer Discretionary Data",
}

/// The dictionary's element for `tag`, if it knows it.
pub fn element(tag: Tag) -> Option<&'static Element> {
    ELEMENTS.iter().find(|e| e.tag == tag)
}

/// A tag's name for a trace, or "unknown".
pub fn name(tag: Tag) -> &'static str {
    element(tag).map_or("unknown", |e| e.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_is_a_well_formed_tag_of_its_form_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for e in ELEMENTS {
            // Written by hand above: each must be what `Tag::new` accepts.
            let raw = e
                .tag
                .bytes()
                .iter()
                .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            assert_eq!(Tag::new(raw), Some(e.tag), "{}", e.name);
            assert_eq!(
                e.tag.is_constructed(),
                e.format == Format::Template,
                "{}",
                e.name
            );
            assert!(seen.insert(e.tag), "{} twice", e.tag);
        }
        assert_eq!(name(AMOUNT_AUTHORISED), "Amount, Authorised (Numeric)");
        assert_eq!(name(Tag::new(0x9F7F).unwrap()), "unknown");
    }
}
