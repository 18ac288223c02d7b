//! The small shared core of carbonflow: the row format, its types and schemas,
//! event time, and the dead-letter record.
//!
//! Every other crate (`operators`, `sources`, `sinks`, `engine`) depends on this
//! one and on nothing else of ours, so the dependency graph never has a cycle.
//! Keep it small: only what two or more crates must agree on lives here.
//!
//! * [`Datum`] and [`Row`]: the values that flow through every dataflow. A row
//!   is a boxed slice of datums; strings are reference counted ([`Str`]) so a
//!   node id repeated in a million ticks is allocated once (see [`Interner`]).
//! * [`DataType`], [`Field`] and [`Schema`]: what a table or view holds.
//! * [`time`]: event time as UTC milliseconds, with Flink's text forms.
//! * [`ConnectorConfig`]: a source's or sink's table and `WITH` options.
//! * [`scalar`]: SQL's arithmetic, comparison and three-valued logic on datums.
//! * [`metrics`]: the Prometheus metrics every crate counts into.
//! * [`DeadLetter`]: a row the engine could not use, with the reason and where
//!   it came from. Bad input is data, never a crash.

pub mod connector;
pub mod datum;
pub mod dead_letter;
pub mod intern;
pub mod metrics;
pub mod scalar;
pub mod schema;
pub mod time;

pub use connector::{ConnectorConfig, OptionError};
pub use datum::{Datum, F64, Row, Str};
pub use dead_letter::{DeadLetter, DeadLetterReason};
pub use intern::Interner;
pub use schema::{DataType, Field, Schema};
pub use time::{Millis, Watermark};

/// A change to a collection: `+1` inserts one copy of a row, `-1` retracts one.
pub type Diff = i64;

/// The logical time of the dataflow: the ingest epoch. Each batch read from the
/// sources is stamped with the next epoch; event time lives in the data.
pub type Epoch = u64;
