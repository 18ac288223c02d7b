//! Sources of carbonflow: the [`Source`] trait and its connectors.
//!
//! A source is created once per worker ([`SourceContext`]) and polled by that
//! worker's loop for batches of rows. It appends parsed rows and dead letters
//! to a [`SourceBatch`] and says whether more may come ([`SourceStatus`]). The
//! engine stamps each batch with an ingest epoch, computes the watermark from
//! the table's declared event-time column and feeds the rows into the dataflow;
//! sources know nothing of timely or differential.
//!
//! Connectors are listed in one place, [`create_source`]:
//! * `filesystem` ([`filesystem`]): CSV and Parquet files or directories, as
//!   fast as possible or paced at event time × a factor.
//! * `simulator` ([`simulator`]): a seeded multi-market price simulator, the
//!   embedded default that needs no server.

pub mod error;
pub mod filesystem;
pub mod markets;
pub mod simulator;
pub mod tick;

pub use error::SourceError;

use carbonflow_core::{ConnectorConfig, DeadLetter, OptionError, Row};

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
pub trait Source: Send {
    /// Reads the next rows into `batch`.
    fn poll(&mut self, batch: &mut SourceBatch, max_rows: usize) -> Result<SourceStatus, SourceError>;

    /// Progress so far, for sources that know it.
    fn progress(&self) -> Option<SourceProgress> {
        None
    }
}

/// The connector names that [`create_source`] accepts.
pub const CONNECTORS: &[&str] = &["filesystem", "simulator"];

/// Checks a table's connector options without opening anything that may not
/// exist yet: unknown connectors, unknown or malformed options and columns the
/// connector cannot provide are errors.
pub fn validate_source(config: &ConnectorConfig) -> Result<(), OptionError> {
    match config.connector()? {
        "filesystem" => filesystem::FilesystemSourceOptions::parse(config).map(|_| ()),
        "simulator" => simulator::SimulatorOptions::parse(config).map(|_| ()),
        other => Err(OptionError::unknown_connector(other, CONNECTORS)),
    }
}

/// Opens the instance of a table's source that runs on the worker `context`.
pub fn create_source(config: &ConnectorConfig, context: SourceContext) -> Result<Box<dyn Source>, SourceError> {
    match config.connector()? {
        "filesystem" => filesystem::open(config, context),
        "simulator" => simulator::open(config, context),
        other => Err(OptionError::unknown_connector(other, CONNECTORS).into()),
    }
}

/// Which worker an instance runs on, so instances can split the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceContext {
    /// This worker's index, `0..peers`.
    pub worker_index: usize,
    /// How many workers run the dataflow (across all processes).
    pub peers: usize,
}

impl SourceContext {
    /// The only worker of a single-threaded run.
    pub const SINGLE: SourceContext = SourceContext { worker_index: 0, peers: 1 };
}
