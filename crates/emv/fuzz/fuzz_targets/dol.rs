//! Any bytes: read as a data object list or refused, never a panic; a list
//! read encodes back to the bytes, and filling and splitting it agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge_emv::Dol;

fuzz_target!(|data: &[u8]| {
    if let Ok(dol) = Dol::parse(data) {
        assert_eq!(dol.encode(), data);
        let filled = dol.fill(|_| Some(data.to_vec()));
        assert_eq!(filled.len(), dol.data_len());
        assert!(dol.split(&filled).is_some());
    }
});
