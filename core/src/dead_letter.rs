//! Dead letters: rows the engine could not use, kept with the reason.
//!
//! A malformed CSV line, a placeholder value or an event later than its window
//! allows never stops a run and is never dropped silently: it becomes a
//! [`DeadLetter`], is counted, and goes to the dead-letter output.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a row was dead-lettered. Counters are kept per reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadLetterReason {
    /// The raw record could not be parsed into the table's columns.
    Parse,
    /// The event arrived after its window (plus allowed lateness) was retired.
    Late,
    /// The row was parsed but an expression on it failed (e.g. a bad CAST).
    Eval,
}

impl DeadLetterReason {
    /// The stable name used in counters and the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Parse => "parse",
            DeadLetterReason::Late => "late",
            DeadLetterReason::Eval => "eval",
        }
    }
}

/// One row that could not be used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The table or operator it came from, e.g. `ticks` or `hub_avg/TumbleAggregate`.
    pub origin: String,
    /// The class of failure.
    pub reason: DeadLetterReason,
    /// What went wrong, for a person: `column price: "abc" is not a DOUBLE`.
    pub detail: String,
    /// Where in the input it was: `ticks.csv:17`, a Kafka offset, an event time.
    pub position: String,
    /// The raw record, or the row as text.
    pub record: String,
}

impl fmt::Display for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] at {}: {} | {}",
            self.origin,
            self.reason.as_str(),
            self.position,
            self.detail,
            self.record
        )
    }
}
