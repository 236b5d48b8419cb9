//! Signed messages of flows F3 and F5: each message a device or the wallet signs
//! is a compact JWS (RFC 7515) with Ed25519 (`alg: EdDSA`, RFC 8037) whose
//! payload is the message itself, in JSON:
//!
//! ```text
//! header  {"typ":"confirm-payment+jwt","alg":"EdDSA"}            (a device's message)
//! header  {"typ":"payment-execution-task+jwt","alg":"EdDSA","kid":"…"}  (the wallet's task)
//! payload {"transfer_payment_id":"tpy_…","decision":"approve",…}
//! ```
//!
//! The receiver reads the message from the verified payload, never from
//! fields beside it, so what was signed is what is acted on and no JSON
//! canonicalisation is needed (as OpenID CIBA's signed requests and RFC
//! 9101's request objects do). Each kind of message has its own `typ`
//! ([`MessageType`]): a signature over a confirm payment message cannot
//! pass as an executed task. Freshness and replay are the receiver's: the
//! messages carry a counter, an id or a nonce for it to check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::device_proof::DeviceJwk;

/// The only signature algorithm accepted.
pub const MESSAGE_ALG: &str = "EdDSA";
/// A signed message longer than this is refused before it is parsed.
pub const MESSAGE_MAX_LEN: usize = 8 * 1024;

/// The kinds of signed messages, each with its own JWS `typ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 转移支付请求: a first device asks to pay (signed by its device key).
    TransferPaymentRequest,
    /// 确认支付消息: the phone approves or declines (signed by the phone's key).
    ConfirmPayment,
    /// 支付执行任务: the wallet's task for the phone (signed by the wallet).
    ExecutionTask,
    /// The phone's execution of a task (signed by the phone's key).
    TaskExecution,
    /// 支付完成消息: the phone's completion message (signed by the phone's key).
    PaymentCompletion,
    /// Flow F5: a phone registers its secure element's encryption key
    /// (signed by the phone's device key).
    SecureElementKey,
}

impl MessageType {
    pub fn typ(self) -> &'static str {
        match self {
            MessageType::TransferPaymentRequest => "transfer-payment-request+jwt",
            MessageType::ConfirmPayment => "confirm-payment+jwt",
            MessageType::ExecutionTask => "payment-execution-task+jwt",
            MessageType::TaskExecution => "task-execution+jwt",
            MessageType::PaymentCompletion => "payment-completion+jwt",
            MessageType::SecureElementKey => "secure-element-key+jwt",
        }
    }
}

/// Why a signed message was refused. Messages name what was wrong, never
/// echo what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the signed message is not a compact JWS of the expected form: {0}")]
    Malformed(&'static str),
    #[error("the signed message is another kind of message (typ)")]
    WrongType,
    #[error("the signed message's signature does not verify with the signer's key")]
    BadSignature,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    typ: String,
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Signs `payload` (JSON bytes) as a message of kind `typ`, naming the
/// signing key `kid` when given.
pub fn sign(key: &SigningKey, typ: MessageType, kid: Option<&str>, payload: &[u8]) -> String {
    let mut header = serde_json::json!({ "typ": typ.typ(), "alg": MESSAGE_ALG });
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let signing_input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(payload)
    );
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(signature.to_bytes()))
}

/// A message whose form, kind and signature hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMessage {
    pub kid: Option<String>,
    /// The signed payload (JSON), for the receiver to parse.
    pub payload: Vec<u8>,
}

/// Checks a message's form, kind (`typ`) and signature (strict Ed25519)
/// with `key`.
pub fn verify(
    jws: &str,
    typ: MessageType,
    key: &VerifyingKey,
) -> Result<VerifiedMessage, MessageError> {
    if jws.len() > MESSAGE_MAX_LEN {
        return Err(MessageError::Malformed("too long"));
    }
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MessageError::Malformed(
            "three base64url parts joined by dots",
        ));
    };
    let header_bytes = B64URL
        .decode(h)
        .map_err(|_| MessageError::Malformed("header"))?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|_| MessageError::Malformed("header"))?;
    if header.alg != MESSAGE_ALG {
        return Err(MessageError::Malformed("alg must be EdDSA"));
    }
    if header.typ != typ.typ() {
        return Err(MessageError::WrongType);
    }
    let signature = B64URL
        .decode(s)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or(MessageError::Malformed("signature"))?;
    let signing_input = &jws[..h.len() + 1 + p.len()];
    key.verify_strict(signing_input.as_bytes(), &signature)
        .map_err(|_| MessageError::BadSignature)?;
    let payload = B64URL
        .decode(p)
        .map_err(|_| MessageError::Malformed("payload"))?;
    Ok(VerifiedMessage {
        kid: header.kid,
        payload,
    })
}

/// A message's hash: base64url SHA-256 of its compact form. What a later
/// message (and a biometric approval) binds to.
pub fn message_hash(jws: &str) -> String {
    B64URL.encode(Sha256::digest(jws.as_bytes()))
}

/// The wallet's key for signing payment execution tasks. Derived from the
/// master key, so every instance sharing the master key signs alike, and
/// kept apart from the partner signing key (one key, one purpose).
pub struct MessageKey {
    signing: SigningKey,
}

impl std::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageKey({})", self.kid())
    }
}

impl MessageKey {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The public key as a JWK, for phones to pin.
    pub fn public_jwk(&self) -> DeviceJwk {
        DeviceJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: B64URL.encode(self.signing.verifying_key().as_bytes()),
        }
    }

    /// The key's id: its RFC 7638 thumbprint.
    pub fn kid(&self) -> String {
        self.public_jwk().thumbprint()
    }

    pub fn sign(&self, typ: MessageType, payload: &[u8]) -> String {
        sign(&self.signing, typ, Some(&self.kid()), payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_verifies_once_for_its_kind_and_key_and_any_change_is_refused() {
        let key = MessageKey::from_seed(&[7; 32]);
        let vk = key.public_jwk().verifying_key().unwrap();
        let payload = br#"{"transfer_payment_id":"tpy_x","amount":100}"#;
        let jws = key.sign(MessageType::ExecutionTask, payload);
        let ok = verify(&jws, MessageType::ExecutionTask, &vk).unwrap();
        assert_eq!(ok.payload, payload);
        assert_eq!(ok.kid.as_deref(), Some(key.kid().as_str()));
        assert_eq!(
            verify(&jws, MessageType::TaskExecution, &vk).unwrap_err(),
            MessageError::WrongType
        );
        let other = MessageKey::from_seed(&[8; 32]);
        let other_vk = other.public_jwk().verifying_key().unwrap();
        assert_eq!(
            verify(&jws, MessageType::ExecutionTask, &other_vk).unwrap_err(),
            MessageError::BadSignature
        );
        // A changed payload (the amount) under the same signature.
        let parts: Vec<&str> = jws.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            B64URL.encode(br#"{"transfer_payment_id":"tpy_x","amount":1}"#),
            parts[2]
        );
        assert_eq!(
            verify(&tampered, MessageType::ExecutionTask, &vk).unwrap_err(),
            MessageError::BadSignature
        );
        assert_ne!(message_hash(&jws), message_hash(&tampered));
        for bad in ["", "a.b", "a.b.c.d", &"x".repeat(MESSAGE_MAX_LEN + 1)] {
            assert!(matches!(
                verify(bad, MessageType::ExecutionTask, &vk),
                Err(MessageError::Malformed(_))
            ));
        }
    }
}
