//! The audit trail: one record per attempt to deliver a message, kept in
//! the outbox next to the messages, for `carbonflow webhooks log`.

use serde::{Deserialize, Serialize};

/// How many bytes of a response body an attempt keeps.
pub const RESPONSE_SNIPPET_BYTES: usize = 256;

/// One attempt to deliver one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The message's `webhook-id`.
    pub message: String,
    /// The endpoint: the sink table's name.
    pub endpoint: String,
    /// The request's `webhook-id`: the message's own, or the batch's when it travelled in one.
    pub request: String,
    /// Which attempt of the message this was (1 for the first).
    pub attempt: u32,
    /// When the request started, Unix milliseconds.
    pub at_ms: i64,
    /// From the request's start to the response's end (or the failure), microseconds.
    pub latency_us: u64,
    /// The response status, when a response came.
    pub status: Option<u16>,
    /// The start of the response body, as text.
    pub response: String,
    /// Why no usable response came (connection refused, timeout), when none did.
    pub error: Option<String>,
    /// What became of the message.
    pub outcome: Outcome,
}

/// What became of a message after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Outcome {
    /// Delivered (a 2xx response).
    Delivered,
    /// Failed; the next attempt is due at this time (Unix milliseconds).
    Retry {
        /// When.
        at_ms: i64,
    },
    /// Failed for the last time in the schedule: a dead letter.
    Dead,
    /// Failed, and the endpoint is disabled: the message waits for a replay.
    Parked,
}

impl AttemptRecord {
    /// Whether the partner accepted the request.
    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Delivered
    }
}

/// The first [`RESPONSE_SNIPPET_BYTES`] of a body as text, cut at a character boundary.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(RESPONSE_SNIPPET_BYTES)]);
    // A multi-byte character cut in two shows as one replacement character at the end.
    text.into_owned()
}

/// Which attempts to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttemptFilter {
    /// Only this message's.
    pub message: Option<String>,
    /// Only this endpoint's.
    pub endpoint: Option<String>,
    /// Only attempts that did not deliver.
    pub failed_only: bool,
    /// The most recent this many at most (all when `None`).
    pub last: Option<usize>,
}

impl AttemptFilter {
    pub(crate) fn matches(&self, record: &AttemptRecord) -> bool {
        self.message.as_ref().is_none_or(|id| *id == record.message)
            && self.endpoint.as_ref().is_none_or(|endpoint| *endpoint == record.endpoint)
            && !(self.failed_only && record.succeeded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_bounded_text() {
        assert_eq!(snippet(b"ok"), "ok");
        assert_eq!(snippet(&[b'x'; 1000]).len(), RESPONSE_SNIPPET_BYTES);
        let mut cut = vec![b'a'; RESPONSE_SNIPPET_BYTES - 1];
        cut.extend_from_slice("é".as_bytes());
        assert!(snippet(&cut).ends_with('\u{FFFD}'));
    }

    #[test]
    fn outcomes_serialise_with_a_kind() {
        let text = serde_json::to_string(&Outcome::Retry { at_ms: 5 }).unwrap();
        assert_eq!(text, r#"{"kind":"retry","at_ms":5}"#);
        assert_eq!(serde_json::from_str::<Outcome>(r#"{"kind":"dead"}"#).unwrap(), Outcome::Dead);
    }
}
