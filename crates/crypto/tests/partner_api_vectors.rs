//! The test vectors of `docs/PARTNER-API.md`, checked against our signer and
//! verifier. The values are read from the document itself, so the page a
//! bank implements from and the code cannot drift apart.

use std::collections::HashMap;
use std::path::Path;

use paybridge_crypto::digest::sha256_hex;
use paybridge_crypto::signing::{
    verify_response, AuthorizationParams, Received, SignedHeaders, SignedRequest, SignedResponse,
};
use paybridge_crypto::PartnerKeyPair;
use paybridge_domain::partner::PartnerId;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/PARTNER-API.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `name  value` lines of the fenced block opened by ```` ```text <tag> ````.
fn vector(doc: &str, tag: &str) -> HashMap<String, String> {
    let start = doc
        .find(&format!("```text {tag}\n"))
        .unwrap_or_else(|| panic!("no `{tag}` block in docs/PARTNER-API.md"));
    let block = &doc[start..];
    let block = &block[block.find('\n').expect("a line") + 1..];
    let block = &block[..block.find("```").expect("the block's end")];
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.split_once("  ").expect("`name  value`");
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

fn key(v: &HashMap<String, String>) -> PartnerKeyPair {
    let seed: [u8; 32] = hex::decode(&v["seed"]).unwrap().try_into().unwrap();
    PartnerKeyPair::from_seed(&seed)
}

fn id(s: &str) -> PartnerId {
    s.parse().unwrap()
}

/// The canonical string as the document writes it: one line per field, `\n` shown as `⏎`.
fn shown(canonical: &str) -> String {
    canonical.replace('\n', "⏎")
}

#[test]
fn the_request_vector_signs_and_verifies_as_documented() {
    let doc = doc();
    let v = vector(&doc, "request-vector");
    let key = key(&v);
    assert_eq!(key.public().to_base64(), v["public key"]);
    assert_eq!(key.public().key_id(), v["key_id"]);
    let (from, to) = (id(&v["from"]), id(&v["to"]));
    let request = SignedRequest {
        method: &v["method"],
        path_and_query: &v["path_and_query"],
        from: &from,
        to: &to,
        timestamp: v["timestamp"].parse().unwrap(),
        nonce: &v["nonce"],
        headers: SignedHeaders {
            content_type: &v["content-type"],
            idempotency_key: &v["idempotency-key"],
        },
        body: v["body"].as_bytes(),
    };
    assert_eq!(sha256_hex(v["body"].as_bytes()), v["body sha256"]);
    assert_eq!(shown(&request.canonical()), v["canonical"]);
    let authorization = request.authorization(&key);
    assert_eq!(authorization, v["authorization"]);
    // And what a receiver does with it.
    let params = AuthorizationParams::parse(&authorization).unwrap();
    assert_eq!(params.signature, v["signature"]);
    let now = request.timestamp + 10;
    params
        .verify(
            &to,
            &key.public(),
            &Received {
                method: request.method,
                path_and_query: request.path_and_query,
                headers: request.headers,
                body: request.body,
            },
            now,
        )
        .expect("the documented request verifies");
    assert!(
        params
            .verify(
                &to,
                &key.public(),
                &Received {
                    method: request.method,
                    path_and_query: "/bank/v1/partner/debits?",
                    headers: request.headers,
                    body: request.body,
                },
                now
            )
            .is_err(),
        "the path is signed byte for byte"
    );
}

#[test]
fn the_response_vector_signs_and_verifies_as_documented() {
    let doc = doc();
    let v = vector(&doc, "response-vector");
    let key = key(&v);
    let from = id(&v["from"]);
    let response = SignedResponse {
        from: &from,
        status: v["status"].parse().unwrap(),
        request_nonce: &v["request nonce"],
        timestamp: v["timestamp"].parse().unwrap(),
        nonce: &v["nonce"],
        body: v["body"].as_bytes(),
    };
    assert_eq!(shown(&response.canonical()), v["canonical"]);
    let header = response.header(&key);
    assert_eq!(header, v["paybridge-signature"]);
    verify_response(
        Some(&header),
        &from,
        &[key.public()],
        response.status,
        response.request_nonce,
        response.body,
        response.timestamp,
    )
    .expect("the documented response verifies");
}
