//! Any bytes: parsed as BER-TLV or refused, never a panic; a parse
//! re-encodes to exactly the bytes read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge_emv::tlv;

fuzz_target!(|data: &[u8]| {
    if let Ok(objects) = tlv::parse(data) {
        assert_eq!(tlv::encode_all(&objects), data);
    }
});
