//! Any bytes: parsed as a command and as a response APDU or refused, never
//! a panic; a parse re-encodes to exactly the bytes read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge_emv::apdu::{Command, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Command::parse(data) {
        assert_eq!(c.encode(), data);
    }
    if let Ok(r) = Response::parse(data) {
        assert_eq!(r.encode(), data);
    }
});
