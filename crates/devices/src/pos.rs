//! A POS terminal (POS机) of flow F5: it runs a contactless tap over an NFC
//! field with the EMV kernel of `paybridge-emv` and keeps a trace of the
//! APDUs (应用协议数据单元指令) exchanged, each as hex with its meaning, for
//! a person to read.

use paybridge_emv::apdu::Response;
use paybridge_emv::dictionary;
use paybridge_emv::terminal::{CardData, Tap, TapError, Transaction};
use paybridge_emv::tlv::{self, Tlv};

use crate::nfc::{Field, NfcError};

/// One APDU of a tap, as a trace shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    /// `POS → phone` or `phone → POS`.
    pub direction: &'static str,
    pub hex: String,
    pub meaning: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PosError {
    #[error(transparent)]
    Nfc(#[from] NfcError),
    #[error(transparent)]
    Tap(#[from] TapError),
}

/// A POS terminal of a merchant.
#[derive(Debug, Clone)]
pub struct PosTerminal {
    pub terminal_id: String,
}

impl PosTerminal {
    pub fn new(terminal_id: &str) -> Self {
        Self {
            terminal_id: terminal_id.to_owned(),
        }
    }

    /// Runs one tap for `transaction` over `field`: the card data, or why
    /// not; the trace either way.
    pub async fn tap<F: Field>(
        &self,
        field: &mut F,
        transaction: Transaction,
    ) -> (Result<CardData, PosError>, Vec<TraceLine>) {
        let mut trace = Vec::new();
        let mut tap = Tap::new(transaction);
        while let Some((name, command)) = tap.next_command() {
            let bytes = command.encode();
            trace.push(TraceLine {
                direction: "POS → phone",
                hex: hex::encode_upper(&bytes),
                meaning: name.to_owned(),
            });
            let response = match field.transceive(&bytes).await {
                Ok(r) => r,
                Err(e) => return (Err(e.into()), trace),
            };
            trace.push(TraceLine {
                direction: "phone → POS",
                hex: hex::encode_upper(&response),
                meaning: describe_response(&response),
            });
            if let Err(e) = tap.on_response(&response) {
                return (Err(e.into()), trace);
            }
        }
        (tap.card_data().map_err(PosError::from), trace)
    }
}

/// A response APDU in words: its status word, and the data objects it
/// carries by name.
pub fn describe_response(bytes: &[u8]) -> String {
    let Ok(r) = Response::parse(bytes) else {
        return "not a response APDU".into();
    };
    let mut names = Vec::new();
    if let Ok(objects) = tlv::parse(&r.data) {
        collect_names(&objects, &mut names);
    }
    if names.is_empty() {
        r.sw.to_string()
    } else {
        format!("{}: {}", r.sw, names.join(", "))
    }
}

fn collect_names(objects: &[Tlv], out: &mut Vec<String>) {
    for o in objects {
        if o.children().is_empty() {
            out.push(format!("{} {}", o.tag(), dictionary::name(o.tag())));
        } else {
            collect_names(o.children(), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfc::{serve_taps, InProcessField, TcpField};
    use crate::secure_element::SecureElement;
    use paybridge_api::virtual_card::{TokenKeyMaterial, TOKEN_KEYS_INFO};
    use paybridge_crypto::emv::icc_master_key;
    use paybridge_crypto::hpke_box::seal_to;
    use std::sync::Arc;

    const TOKEN: &str = "6299990012345678";

    /// A phone's element with one token installed as the issuer does it.
    fn element() -> Arc<SecureElement> {
        let se = Arc::new(SecureElement::new());
        let mk = icc_master_key(&[0x42; 16], TOKEN, "01").unwrap();
        let material = TokenKeyMaterial {
            token_id: "ctk_1".into(),
            token: TOKEN.into(),
            psn: "01".into(),
            expiry: "12/31".into(),
            mk_ac: hex::encode_upper(*mk),
        };
        let boxed = seal_to(
            &se.encryption_public_key(),
            TOKEN_KEYS_INFO,
            b"ctk_1",
            &serde_json::to_vec(&material).unwrap(),
        )
        .unwrap();
        se.install("CC1", "ctk_1", &boxed).unwrap();
        se
    }

    fn purchase() -> Transaction {
        Transaction {
            amount_minor: 3_800,
            currency: 156,
            country: 156,
            date: "261208".into(),
            transaction_type: 0,
            unpredictable_number: [1, 2, 3, 4],
        }
    }

    #[tokio::test]
    async fn a_tap_in_process_is_traced_apdu_by_apdu() {
        let se = element();
        let mut field = InProcessField::new(se.card_application("CC1").unwrap());
        let (data, trace) = PosTerminal::new("T-1").tap(&mut field, purchase()).await;
        assert_eq!(data.unwrap().token, TOKEN);
        assert_eq!(trace.len(), 8, "four commands, four answers");
        assert_eq!(trace[0].hex, "00A404000E325041592E5359532E444446303100");
        assert!(trace[1]
            .meaning
            .starts_with("9000 (normal processing): 84 Dedicated File"));
        assert!(trace[5].meaning.contains("9F26 Application Cryptogram"));
        assert!(trace[7].meaning.contains("57 Track 2 Equivalent Data"));
    }

    #[tokio::test]
    async fn a_tap_over_tcp_between_two_tasks() {
        let se = element();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let phone = tokio::spawn(serve_taps(listener, se.clone(), "CC1".into(), Some(2)));
        let pos = PosTerminal::new("T-1");
        let mut field = TcpField::connect(&addr).await.unwrap();
        let (first, _) = pos.tap(&mut field, purchase()).await;
        let first = first.unwrap();
        drop(field);
        let mut field = TcpField::connect(&addr).await.unwrap();
        let (second, _) = pos.tap(&mut field, purchase()).await;
        drop(field);
        assert_eq!(second.unwrap().atc, first.atc + 1, "each tap its own ATC");
        assert_eq!(phone.await.unwrap().unwrap(), 2);
    }

    #[tokio::test]
    async fn an_oversized_frame_ends_the_tap_and_the_phone_serves_the_next() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let se = element();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let phone = tokio::spawn(serve_taps(listener, se, "CC1".into(), Some(2)));
        let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
        raw.write_all(&[0xFF, 0xFF]).await.unwrap();
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the phone hung up without an answer");
        let mut field = TcpField::connect(&addr).await.unwrap();
        let (data, _) = PosTerminal::new("T-1").tap(&mut field, purchase()).await;
        assert!(data.is_ok());
        drop(field);
        assert_eq!(phone.await.unwrap().unwrap(), 2);
    }
}
