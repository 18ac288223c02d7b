//! Sources of carbonflow: the [`Source`] trait and its connectors.
//!
//! A source is created once per worker ([`SourceContext`]) and polled by that
//! worker's loop for batches of rows. It appends parsed rows and dead letters
//! to a [`SourceBatch`] and says whether more may come ([`SourceStatus`]). The
//! engine stamps each batch with an ingest epoch, computes the watermark from
//! the table's declared event-time column and feeds the rows into the dataflow;
//! sources know nothing of timely or differential.
//!
//! Two optional parts of the contract serve sources that read from a
//! service rather than a file:
//! * Event time ([`Source::event_time_progress`]): a source that interleaves
//!   several ordered streams (Kafka partitions) tracks each stream's event
//!   time itself, so the table's watermark is the minimum over the streams,
//!   and streams that went idle do not hold it back.
//! * Acknowledgement ([`Source::seal_epoch`], [`Source::commit`],
//!   [`Source::close`]): the engine says which epochs every output has
//!   absorbed, so a source can commit its read position upstream (Kafka
//!   offsets) and a restarted run resumes where this one stopped.
//! * Recovery ([`SourceContext::retention`]): how much absorbed input a
//!   restarted run must read again so that windows and other operator state
//!   are rebuilt, computed by the engine from the query's plan
//!   (`docs/recovery.md`).
//!
//! Connectors are listed in one place, [`create_source`]:
//! * `filesystem` ([`filesystem`]): CSV and Parquet files or directories, as
//!   fast as possible or paced at event time × a factor.
//! * `simulator` ([`simulator`]): a seeded multi-market price simulator, the
//!   embedded default that needs no server.
//! * `kafka` ([`kafka`]): a Kafka topic, its partitions spread over the
//!   workers, in any record format of [`decode`].

pub mod decode;
pub mod error;
pub mod filesystem;
pub mod kafka;
pub mod markets;
pub mod simulator;
pub mod tick;

pub use error::SourceError;

use carbonflow_core::{ConnectorConfig, DeadLetter, Epoch, Millis, OptionError, Row};

/// What a poll produced, reused across polls to avoid reallocating.
#[derive(Debug, Default)]
pub struct SourceBatch {
    /// Parsed rows, in the source's order, each matching the table's schema.
    pub rows: Vec<Row>,
    /// Records that could not be parsed, with the reason and position.
    pub dead_letters: Vec<DeadLetter>,
}

impl SourceBatch {
    /// Empties the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.dead_letters.clear();
    }
}

/// Whether a source may produce more after this poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceStatus {
    /// More rows are available now; poll again.
    Ready,
    /// Nothing right now (waiting on pacing or a live feed); poll again later.
    Idle,
    /// This instance is exhausted and will never produce again.
    Finished,
}

/// How far a bounded source has read, for progress bars on long replays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceProgress {
    /// Units (bytes or rows) done so far.
    pub done: u64,
    /// Units in total, when known.
    pub total: Option<u64>,
}

/// How far in event time a source instance's input has come, by the
/// source's own account (see [`Source::event_time_progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventTimeProgress {
    /// Every active stream of the instance has produced rows up to this event
    /// time: the minimum over the active streams of the largest event time
    /// each has produced, or `None` while an active stream has produced no
    /// row with an event time yet.
    Through(Option<Millis>),
    /// Every stream of the instance is idle: the instance should not hold the
    /// table's watermark back until one of them produces again. Carries the
    /// largest event time any of its streams produced (nothing is pending, so
    /// the instance is complete up to there), `None` if none produced a row.
    Idle(Option<Millis>),
}

/// A running source instance on one worker.
///
/// Contract:
/// * `poll` appends at most `max_rows` rows (plus any dead letters) and never
///   blocks for long: a paced or live source returns [`SourceStatus::Idle`]
///   instead of sleeping past a few milliseconds.
/// * Rows come in the source's natural order; the engine relies on that order
///   for a deterministic watermark.
/// * After [`SourceStatus::Finished`] the source is not polled again.
/// * Instances of one table on different workers split the input between
///   them (each row is produced by exactly one instance).
///
/// The engine stamps the rows of each poll with the current ingest epoch and
/// tells the source about epochs in this order: [`seal_epoch`](Source::seal_epoch)
/// once after each epoch's polls, [`commit`](Source::commit) with increasing
/// epochs as the outputs absorb them, and, after a run that drained without
/// a failure, [`close`](Source::close). Sources with nothing to acknowledge
/// keep the no-op defaults.
pub trait Source: Send {
    /// Reads the next rows into `batch`.
    fn poll(&mut self, batch: &mut SourceBatch, max_rows: usize) -> Result<SourceStatus, SourceError>;

    /// Progress so far, for sources that know it.
    fn progress(&self) -> Option<SourceProgress> {
        None
    }

    /// The instance's event-time progress, for a source that interleaves
    /// several independently ordered streams and tracks each one's event time
    /// (from the column [`ConnectorConfig::event_time_column`] names). `None`,
    /// the default, lets the engine take the largest event time of the rows
    /// polled, which is right for a single ordered stream (a file). The engine
    /// subtracts the table's declared watermark delay either way.
    ///
    /// The engine asks after every poll, and operators apply the rows of a
    /// poll under the watermark that followed the previous one. A source that
    /// restores its progress on a restart ([`Retention::Span`]) therefore
    /// returns no row from the poll that restores it.
    fn event_time_progress(&self) -> Option<EventTimeProgress> {
        None
    }

    /// Every row returned by `poll` so far entered the dataflow at `epoch` or
    /// an earlier epoch.
    fn seal_epoch(&mut self, _epoch: Epoch) {}

    /// Every output has absorbed every epoch up to and including `epoch`: the
    /// input sealed into those epochs is consumed and may be acknowledged
    /// upstream. Never blocks for long; a source may acknowledge lazily.
    fn commit(&mut self, _epoch: Epoch) -> Result<(), SourceError> {
        Ok(())
    }

    /// The run has drained without a failure: every row returned by `poll`
    /// has reached every output. Acknowledges all of it before returning (a
    /// restarted run must find it); the source is dropped next.
    fn close(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// The connector names that [`create_source`] accepts.
pub const CONNECTORS: &[&str] = &["filesystem", "simulator", "kafka"];

/// Checks a table's connector options without opening anything that may not
/// exist yet: unknown connectors, unknown or malformed options and columns the
/// connector cannot provide are errors.
pub fn validate_source(config: &ConnectorConfig) -> Result<(), OptionError> {
    match config.connector()? {
        "filesystem" => filesystem::FilesystemSourceOptions::parse(config).map(|_| ()),
        "simulator" => simulator::SimulatorOptions::parse(config).map(|_| ()),
        "kafka" => kafka::KafkaSourceOptions::parse(config).map(|_| ()),
        other => Err(OptionError::unknown_connector(other, CONNECTORS)),
    }
}

/// Opens the instance of a table's source that runs on the worker `context`.
pub fn create_source(config: &ConnectorConfig, context: SourceContext) -> Result<Box<dyn Source>, SourceError> {
    match config.connector()? {
        "filesystem" => filesystem::open(config, context),
        "simulator" => simulator::open(config, context),
        "kafka" => kafka::open(config, context),
        other => Err(OptionError::unknown_connector(other, CONNECTORS).into()),
    }
}

/// Where an instance runs and what the engine asks of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceContext {
    /// This worker's index, `0..peers`, so instances can split the input.
    pub worker_index: usize,
    /// How many workers run the dataflow (across all processes).
    pub peers: usize,
    /// The name the query runs under, for the `query` label of metrics.
    pub query: String,
    /// How much absorbed input a restarted run must read again.
    pub retention: Retention,
}

impl SourceContext {
    /// The only worker of a single-threaded run, in a query without state to recover.
    pub const SINGLE: SourceContext = SourceContext::worker(0, 1);

    /// Worker `worker_index` of `peers`, in an unnamed query without state to recover.
    pub const fn worker(worker_index: usize, peers: usize) -> SourceContext {
        SourceContext {
            worker_index,
            peers,
            query: String::new(),
            retention: Retention::Nothing,
        }
    }
}

/// How much of a table's input, already absorbed by every output, a restarted
/// run must read again so that the operators downstream of the table have
/// their state back. The engine derives it from the query's plan; a source
/// that commits its read position upstream commits accordingly, and a source
/// that cannot re-read ignores it. Ordered from the least to the most input.
///
/// Only state that restoring the watermark keeps consistent has a span:
/// window aggregations close a window for good once the watermark passes it,
/// so a restart that restores the watermark rejects (as late) the re-read
/// rows of windows that were closed, and rebuilds the open ones from the
/// re-read rows. Operators that keep rows behind the watermark as history
/// (`MATCH_RECOGNIZE`, OVER, `FORECAST`, joins) would reject that history as
/// late, and without the restored watermark the first results of a replay
/// would be computed from part of their input: their tables need everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Retention {
    /// No operator keeps state built from the table's rows: a restart
    /// resumes after the last absorbed row.
    #[default]
    Nothing,
    /// A restart reads again the rows within this much event time of the
    /// table's event-time progress (the largest event time read, before the
    /// watermark delay) at the point it resumes from, and restores that
    /// progress before handing out the first re-read row.
    Span(Millis),
    /// A restart reads the input again from where the first run started,
    /// with the watermark starting afresh.
    Everything,
}
