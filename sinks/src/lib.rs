//! Sinks of carbonflow: the [`Sink`] trait and its connectors.
//!
//! The engine gathers a sink's changes on one worker, consolidates them per
//! ingest epoch and hands them over in epoch order. A sink never sees timely
//! or differential types, and a sink that is slow must not stall workers:
//! connectors that talk to the network queue behind a bounded channel.
//!
//! Connectors are listed in one place, [`create_sink`]:
//! * `print` ([`print`](mod@print)): `+I[...]` / `-D[...]` lines on standard output.
//! * `blackhole` ([`blackhole`]): discards everything (for benchmarks).
//! * `filesystem` ([`filesystem`]): CSV or JSON lines, either the final
//!   consolidated rows (the default) or the changelog.
//! * `kafka` ([`kafka`]): the changelog as JSON, CSV or MessagePack messages
//!   on a Kafka topic, optionally keyed.
//! * `webhook` ([`webhook`]): signed HTTP POSTs to a partner, through a
//!   durable outbox, with retries and an audit trail.
//! * `websocket` ([`websocket`]): served live to subscribers by the run's
//!   WebSocket server; the engine creates its publisher, so [`create_sink`]
//!   only checks the declaration.

pub mod blackhole;
mod change_id;
mod duration;
pub mod encode;
pub mod error;
pub mod filesystem;
pub mod http_client;
pub mod kafka;
pub mod print;
pub mod text;
pub mod webhook;
pub mod websocket;

pub use error::SinkError;

use carbonflow_core::{ConnectorConfig, Diff, Epoch, OptionError, Row, Watermark};

/// A running sink.
///
/// Contract:
/// * `on_batch` is called once per epoch that has changes, epochs strictly
///   increasing, with the changes of that epoch consolidated (no row twice,
///   no zero diff) and sorted by row. Retractions (`diff < 0`) come before
///   nothing in particular: apply the whole batch.
/// * `on_progress` says that every epoch up to and including `epoch` has been
///   delivered and that the view is complete up to event time `watermark`.
/// * `finish` is called once, when every input ended or the run is shutting
///   down gracefully; output must be complete and durable when it returns.
pub trait Sink: Send {
    /// The changes of one epoch.
    fn on_batch(&mut self, epoch: Epoch, updates: &[(Row, Diff)]) -> Result<(), SinkError>;

    /// Progress: epochs up to `epoch` are complete; event time up to `watermark`.
    fn on_progress(&mut self, _epoch: Epoch, _watermark: Watermark) -> Result<(), SinkError> {
        Ok(())
    }

    /// The end of the run.
    fn finish(&mut self) -> Result<(), SinkError>;
}

/// The connector names that [`create_sink`] accepts.
pub const CONNECTORS: &[&str] = &["print", "blackhole", "filesystem", "kafka", "webhook", websocket::CONNECTOR];

/// Checks a sink table's options without creating anything.
pub fn validate_sink(config: &ConnectorConfig) -> Result<(), OptionError> {
    match config.connector()? {
        "print" => print::PrintSinkOptions::parse(config).map(|_| ()),
        "blackhole" => blackhole::validate(config),
        "filesystem" => filesystem::FilesystemSinkOptions::parse(config).map(|_| ()),
        "kafka" => kafka::KafkaSinkOptions::parse(config).map(|_| ()),
        "webhook" => webhook::WebhookSinkOptions::parse(config).map(|_| ()),
        websocket::CONNECTOR => websocket::validate(config),
        other => Err(OptionError::unknown_connector(other, CONNECTORS)),
    }
}

/// Creates the sink of a table. A `websocket` table is published by the
/// run's server instead, so asking for one here is an error.
pub fn create_sink(config: &ConnectorConfig) -> Result<Box<dyn Sink>, SinkError> {
    match config.connector()? {
        "print" => Ok(Box::new(print::PrintSink::stdout(config)?)),
        "blackhole" => Ok(Box::new(blackhole::BlackholeSink::new(config)?)),
        "filesystem" => Ok(Box::new(filesystem::FilesystemSink::new(config)?)),
        "kafka" => Ok(Box::new(kafka::KafkaSink::new(config)?)),
        "webhook" => Ok(Box::new(webhook::WebhookSink::new(config)?)),
        websocket::CONNECTOR => Err(SinkError::Unserved { table: config.table.clone() }),
        other => Err(OptionError::unknown_connector(other, CONNECTORS).into()),
    }
}

#[cfg(test)]
mod tests {
    use carbonflow_core::Schema;

    use super::*;

    fn config(options: &[(&str, &str)]) -> ConnectorConfig {
        let options = options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ConnectorConfig {
            table: "t".into(),
            schema: Schema::default(),
            event_time_column: None,
            primary_key: None,
            options,
        }
    }

    #[test]
    fn every_listed_connector_validates_and_creates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        for options in [
            vec![("connector", "print")],
            vec![("connector", "blackhole")],
            vec![("connector", "filesystem"), ("path", path.to_str().unwrap()), ("format", "csv")],
        ] {
            let config = config(&options);
            assert!(CONNECTORS.contains(&config.connector().unwrap()));
            validate_sink(&config).unwrap();
            create_sink(&config).unwrap().finish().unwrap();
        }
        assert!(path.is_file());
    }

    #[test]
    fn unknown_connectors_and_options_are_declaration_errors() {
        assert!(matches!(validate_sink(&config(&[("connector", "nats")])), Err(OptionError::UnknownConnector { name, .. }) if name == "nats"));
        assert!(matches!(create_sink(&config(&[("connector", "nats")])), Err(SinkError::Declaration(_))));
        assert!(matches!(validate_sink(&config(&[])), Err(OptionError::Missing { key }) if key == "connector"));
        assert!(matches!(
            create_sink(&config(&[("connector", "print"), ("path", "x")])),
            Err(SinkError::Declaration(OptionError::Unknown { .. }))
        ));
    }
}
