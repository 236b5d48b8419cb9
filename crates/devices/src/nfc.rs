//! The NFC field between a POS terminal and a phone, as the terminal sees
//! it: send a command APDU, get the response APDU. Two links:
//!
//! - [`InProcessField`]: the phone's card application in the same process
//!   (tests, demos);
//! - [`TcpField`] and [`serve_taps`]: the POS and the phone as separate
//!   processes, each APDU a frame of its two-byte big-endian length and its
//!   bytes; one connection is one tap.
//!
//! A frame is never larger than the largest short APDU, each exchange has
//! [`EXCHANGE_TIMEOUT`], and the phone serves one tap at a time, as a
//! phone held to one reader does.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use paybridge_emv::apdu::{MAX_COMMAND_LEN, MAX_RESPONSE_LEN};
use paybridge_emv::card::Cryptograms;
use paybridge_emv::ContactlessCard;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::secure_element::SecureElement;

/// How long one command may wait for its response (a contactless
/// transaction is over in well under a second; this bounds a stuck link).
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum NfcError {
    #[error("the link failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {0} bytes is larger than any APDU")]
    FrameTooLarge(usize),
    #[error("no answer within the exchange timeout")]
    Timeout,
    #[error("the card left the field")]
    Gone,
}

/// What a POS terminal talks to.
pub trait Field {
    /// Sends a command APDU and waits for the response APDU.
    fn transceive(
        &mut self,
        command: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, NfcError>> + Send;
}

/// The phone's card application, in this process.
#[derive(Debug)]
pub struct InProcessField<C> {
    card: ContactlessCard<C>,
}

impl<C> InProcessField<C> {
    pub fn new(card: ContactlessCard<C>) -> Self {
        Self { card }
    }
}

impl<C: Cryptograms + Send> Field for InProcessField<C> {
    async fn transceive(&mut self, command: &[u8]) -> Result<Vec<u8>, NfcError> {
        Ok(self.card.process(command))
    }
}

async fn write_frame(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), NfcError> {
    let len = u16::try_from(bytes.len()).map_err(|_| NfcError::FrameTooLarge(bytes.len()))?;
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(bytes);
    stream.write_all(&frame).await?;
    Ok(())
}

/// Reads one frame of at most `max` bytes; `None` when the other side
/// closed the link between frames.
async fn read_frame(stream: &mut TcpStream, max: usize) -> Result<Option<Vec<u8>>, NfcError> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len > max {
        return Err(NfcError::FrameTooLarge(len));
    }
    let mut bytes = vec![0u8; len];
    stream.read_exact(&mut bytes).await?;
    Ok(Some(bytes))
}

/// The POS terminal's end of a TCP link to a phone: one tap.
#[derive(Debug)]
pub struct TcpField {
    stream: TcpStream,
}

impl TcpField {
    /// Brings the phone into the field: connects to its NFC listener.
    pub async fn connect(addr: &str) -> Result<TcpField, NfcError> {
        let stream = tokio::time::timeout(EXCHANGE_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| NfcError::Timeout)??;
        stream.set_nodelay(true)?;
        Ok(TcpField { stream })
    }
}

impl Field for TcpField {
    async fn transceive(&mut self, command: &[u8]) -> Result<Vec<u8>, NfcError> {
        if command.len() > MAX_COMMAND_LEN {
            return Err(NfcError::FrameTooLarge(command.len()));
        }
        let exchange = async {
            write_frame(&mut self.stream, command).await?;
            read_frame(&mut self.stream, MAX_RESPONSE_LEN)
                .await?
                .ok_or(NfcError::Gone)
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .map_err(|_| NfcError::Timeout)?
    }
}

/// The phone's NFC listener: each connection is one tap, answered by the
/// card application of `card_code` in `element`, one tap at a time, until
/// `taps` taps were served (`None`: for ever). A frame larger than a
/// command APDU, or a link that stays silent past the timeout, ends that
/// tap. Returns how many taps were served.
pub async fn serve_taps(
    listener: TcpListener,
    element: Arc<SecureElement>,
    card_code: String,
    taps: Option<usize>,
) -> Result<usize, NfcError> {
    let mut served = 0;
    while taps.is_none_or(|n| served < n) {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let Ok(mut card) = element.card_application(&card_code) else {
            // No such token (any more): the phone shows no card.
            served += 1;
            continue;
        };
        loop {
            let frame =
                tokio::time::timeout(EXCHANGE_TIMEOUT, read_frame(&mut stream, MAX_COMMAND_LEN))
                    .await;
            let command = match frame {
                Ok(Ok(Some(command))) => command,
                _ => break,
            };
            let response = card.process(&command);
            if write_frame(&mut stream, &response).await.is_err() {
                break;
            }
        }
        served += 1;
    }
    Ok(served)
}
