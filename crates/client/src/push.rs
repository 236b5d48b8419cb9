//! A device's push channel as the device reads it: the server-sent event
//! stream of `GET /v1/devices/{id}/events`, one [`DeviceEvent`] per event.

use std::collections::VecDeque;
use std::time::Duration;

use paybridge_api::wallet::DeviceEvent;

use crate::ApiError;

/// An open push channel. Events come in order of their sequence number;
/// keep-alive comments are skipped.
#[derive(Debug)]
pub struct PushChannel {
    response: reqwest::Response,
    /// Text received but not yet a whole event (events end with a blank line).
    partial: String,
    ready: VecDeque<DeviceEvent>,
    /// The sequence number of the last event read: where to resume.
    last_seq: i64,
}

/// Why waiting on a push channel ended without the awaited event.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("no {awaited} within {within:?}")]
    TimedOut { awaited: String, within: Duration },
    #[error("the push channel closed")]
    Closed,
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl PushChannel {
    pub(crate) fn reading(response: reqwest::Response) -> Self {
        Self {
            response,
            partial: String::new(),
            ready: VecDeque::new(),
            last_seq: 0,
        }
    }

    /// The sequence number of the last event read (0 before any).
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// The next event, or `None` once the server closed the channel.
    pub async fn next(&mut self) -> Result<Option<DeviceEvent>, ApiError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                self.last_seq = event.seq;
                return Ok(Some(event));
            }
            let url = self.response.url().to_string();
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|source| ApiError::Unreachable { url, source })?;
            let Some(chunk) = chunk else {
                return Ok(None);
            };
            self.partial.push_str(&String::from_utf8_lossy(&chunk));
            self.take_whole_events()?;
        }
    }

    /// Reads until an event with `topic` whose data satisfies `wanted`
    /// arrives (other events are passed over), for at most `within`.
    pub async fn wait_for(
        &mut self,
        topic: &str,
        within: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<DeviceEvent, PushError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.next())
                .await
                .map_err(|_| PushError::TimedOut {
                    awaited: topic.to_owned(),
                    within,
                })??;
            match next {
                Some(event) if event.topic == topic && wanted(&event.data) => return Ok(event),
                Some(_) => continue,
                None => return Err(PushError::Closed),
            }
        }
    }

    fn take_whole_events(&mut self) -> Result<(), ApiError> {
        // SSE allows CRLF line ends; normalise so one separator is searched.
        if self.partial.contains('\r') {
            self.partial = self.partial.replace("\r\n", "\n");
        }
        while let Some(end) = self.partial.find("\n\n") {
            let block: String = self.partial.drain(..end + 2).collect();
            if let Some(event) = parse_event(&block)? {
                self.ready.push_back(event);
            }
        }
        Ok(())
    }
}

/// One SSE block: its `data:` lines joined are a [`DeviceEvent`]; a block
/// of only comments (`: keep-alive`) is none.
fn parse_event(block: &str) -> Result<Option<DeviceEvent>, ApiError> {
    let data: Vec<&str> = block
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|v| v.strip_prefix(' ').unwrap_or(v))
        .collect();
    if data.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&data.join("\n"))
        .map(Some)
        .map_err(ApiError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_of_data_lines_is_one_event_and_comments_are_none() {
        let id = paybridge_domain::ids::EventId::generate();
        let json = serde_json::json!({"seq": 3, "id": id, "topic": "payment.requested",
            "occurred_at": "2026-12-01T00:00:00Z", "data": {}})
        .to_string();
        // A server may split one event's data over several `data:` lines.
        let split = json.find(",\"topic\"").expect("a topic field");
        let (head, tail) = json.split_at(split);
        let block = format!("id: 3\nevent: payment.requested\ndata: {head}\ndata:{tail}\n\n");
        let event = parse_event(&block).unwrap().unwrap();
        assert_eq!(
            (event.seq, event.topic.as_str(), event.id),
            (3, "payment.requested", id)
        );
        assert!(parse_event(": keep-alive\n\n").unwrap().is_none());
        assert!(parse_event("data: {not json}\n\n").is_err());
    }
}
