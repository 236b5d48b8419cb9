//! Replays the committed `cargo fuzz` corpus (`fuzz/corpus/`) through the
//! parsers on every `cargo test`: each input is parsed or refused, never a
//! panic, and what parses re-encodes to the very bytes read. The fuzz
//! targets check the same on inputs they make up.

use std::path::Path;

use paybridge_emv::apdu::{Command, Response};
use paybridge_emv::{tlv, Dol};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn the_tlv_corpus_parses_canonically_or_is_refused() {
    let inputs = corpus("tlv");
    assert!(inputs.len() >= 10, "the corpus is committed");
    let mut parsed = 0;
    for (name, bytes) in &inputs {
        if let Ok(objects) = tlv::parse(bytes) {
            assert_eq!(&tlv::encode_all(&objects), bytes, "{name}");
            parsed += 1;
        }
    }
    // The hand-written seeds include well-formed EMV messages.
    assert!(parsed >= 3, "{parsed} of {} parse", inputs.len());
    for name in ["fci_ppse", "gpo_format2", "two_byte_length"] {
        let bytes = &inputs.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(tlv::parse(bytes).is_ok(), "{name}");
    }
}

#[test]
fn the_apdu_corpus_parses_canonically_or_is_refused() {
    let inputs = corpus("apdu");
    assert!(inputs.len() >= 8, "the corpus is committed");
    for (name, bytes) in &inputs {
        if let Ok(c) = Command::parse(bytes) {
            assert_eq!(&c.encode(), bytes, "{name}");
        }
        if let Ok(r) = Response::parse(bytes) {
            assert_eq!(&r.encode(), bytes, "{name}");
        }
    }
}

#[test]
fn the_dol_corpus_reads_canonically_or_is_refused() {
    let inputs = corpus("dol");
    assert!(inputs.len() >= 4, "the corpus is committed");
    for (name, bytes) in &inputs {
        if let Ok(dol) = Dol::parse(bytes) {
            assert_eq!(&dol.encode(), bytes, "{name}");
            let filled = dol.fill(|_| Some(bytes.clone()));
            assert!(dol.split(&filled).is_some(), "{name}");
        }
    }
    for name in ["pdol", "cdol1"] {
        let bytes = &inputs.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(Dol::parse(bytes).is_ok(), "{name}");
    }
}
