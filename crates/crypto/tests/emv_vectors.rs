//! paybridge's EMV cryptography against values an independent
//! implementation computed (pyemv 1.5.0; `emv_vectors.py` writes
//! `emv_vectors.json`): Option A master keys, common session keys,
//! application cryptograms with both paddings, and ARPCs (method 1).

use paybridge_crypto::emv::{
    application_cryptogram, arpc_method_1, icc_master_key, session_key, Padding,
};
use serde_json::Value;

fn bytes<const N: usize>(v: &Value) -> [u8; N] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn every_value_matches_the_independent_implementation() {
    let file: Value = serde_json::from_str(include_str!("emv_vectors.json")).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 20);
    for (i, v) in vectors.iter().enumerate() {
        let mk = icc_master_key(
            &bytes::<16>(&v["imk"]),
            v["pan"].as_str().unwrap(),
            v["psn"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(*mk, bytes::<16>(&v["icc_mk"]), "master key of vector {i}");
        let atc = u16::try_from(v["atc"].as_u64().unwrap()).unwrap();
        let sk = session_key(&mk, atc);
        assert_eq!(
            *sk,
            bytes::<16>(&v["session_key"]),
            "session key of vector {i}"
        );
        let data = hex::decode(v["data"].as_str().unwrap()).unwrap();
        let padding = match v["padding"].as_u64().unwrap() {
            1 => Padding::Method1,
            _ => Padding::Method2,
        };
        let arqc = application_cryptogram(&sk, &data, padding);
        assert_eq!(arqc, bytes::<8>(&v["arqc"]), "cryptogram of vector {i}");
        let arpc = arpc_method_1(&sk, &arqc, bytes::<2>(&v["arc"]));
        assert_eq!(arpc, bytes::<8>(&v["arpc"]), "ARPC of vector {i}");
    }
}
