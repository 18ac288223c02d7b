//! The `kafka` connector: reads a Kafka topic, with Flink's option names so a
//! Flink DDL works unchanged.
//!
//! ```sql
//! CREATE TABLE ticks (
//!   node STRING, ts TIMESTAMP(3), price DOUBLE,
//!   WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
//! ) WITH (
//!   'connector' = 'kafka',
//!   'topic' = 'ticks',
//!   'properties.bootstrap.servers' = '127.0.0.1:9092',
//!   'properties.group.id' = 'carbonflow-ticks',
//!   'scan.startup.mode' = 'group-offsets',      -- the default
//!   'scan.watermark.idle-timeout' = '10 s',     -- optional
//!   'format' = 'json'                           -- or csv, msgpack, pjm-lmp, ...
//! )
//! ```
//!
//! Options:
//! * `topic` (required): one topic.
//! * `properties.bootstrap.servers` (required), `properties.group.id`, and
//!   any other `properties.<name>`: passed to librdkafka as `<name>`.
//!   `enable.auto.commit`, `enable.auto.offset.store` and
//!   `enable.partition.eof` are the connector's own and cannot be set.
//! * `format` (required): a record format of [`crate::decode`]; every
//!   message is one record (a JSON or MessagePack object, one or more CSV
//!   lines, or one market document), with its `csv.*` options for CSV.
//! * `scan.startup.mode`: `group-offsets` (the default, as in Flink: the
//!   group's committed offsets, and where it has none,
//!   `properties.auto.offset.reset`, librdkafka's default being `latest`),
//!   `earliest-offset`, `latest-offset`, or `timestamp` with
//!   `scan.startup.timestamp-millis` (the first message at or after it).
//!   `group-offsets` needs `properties.group.id`.
//! * `scan.bounded.mode`: `unbounded` (the default) or `latest-offset`: each
//!   partition stops the first time the reader catches up with its end, so
//!   the run finishes (replays, tests, benchmarks). Unlike Flink, the end is
//!   not fixed from the broker's offsets at startup (a broker may report them
//!   stale), but found by reading: on a topic still written to, a partition
//!   stops where the reader first reaches its end.
//! * `scan.watermark.idle-timeout`: a partition with no message for this long
//!   stops holding the watermark back (see [`watermark`]); unset, a quiet
//!   partition holds it forever, as in Flink.
//!
//! How it reads:
//! * Partitions are spread over workers without a consumer-group rebalance:
//!   partition `p` is read by worker `p % peers`, through librdkafka's
//!   `assign()` (a group join takes many seconds before the first message,
//!   and would move partitions between workers behind the engine's back).
//!   A worker left without a partition finishes at once, and so does not
//!   hold the watermark back.
//! * Offsets are committed to `properties.group.id` only for rows every
//!   output has absorbed ([`Source::commit`]): at most once a second, and
//!   only a second after the outputs absorbed them, so that a sink's own
//!   background delivery (the Kafka sink's producer queue) has landed them;
//!   in full when a run stops cleanly ([`Source::close`]). Commits run on a
//!   thread of their own, so a worker never waits on the broker. Without a group id nothing is
//!   committed (librdkafka still needs one to assign partitions:
//!   `carbonflow-<table>`).
//! * A restarted run resumes with the operators' state empty. With a
//!   [`Retention`](crate::Retention) other than nothing, it first reads
//!   again what the operators need ([`replay`]): from the replay starts the
//!   previous run committed to `<group.id>.replay` up to the group's offsets,
//!   without reporting those messages' dead letters again. For a span it
//!   first rebuilds each partition's event-time clock from those messages, so
//!   the watermark is back before any re-read row goes out, and skips the
//!   re-read rows older than the span. `docs/recovery.md` tells the whole story.
//! * `carbonflow_kafka_consumer_lag{query, source}`: the partitions' end
//!   offsets (from librdkafka's statistics, `statistics.interval.ms`, one
//!   second unless set) minus the offsets handed to the engine, summed over
//!   the table's instances, refreshed at most once a second.
//! * A message that does not decode becomes a dead letter positioned at
//!   `topic/partition@offset` (plus `:line` for CSV and market documents); a
//!   message without a payload (a tombstone) too. Neither stops the run.
//! * Polls never wait: `poll` takes what the consumer has already fetched
//!   and returns [`SourceStatus::Idle`] when that is nothing.

mod commit;
mod replay;
mod source;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
mod watermark;

use std::collections::BTreeMap;
use std::time::Duration;

use carbonflow_core::time::parse_duration;
use carbonflow_core::{ConnectorConfig, Millis, OptionError};

use crate::decode::RecordFormat;
use crate::{Source, SourceContext, SourceError};

pub use self::source::KafkaSource;

/// The options besides `properties.*` and the format's own.
const OPTIONS: &[&str] = &[
    "topic",
    "format",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.bounded.mode",
    "scan.watermark.idle-timeout",
];

/// The prefix of options passed to librdkafka.
const PROPERTIES: &str = "properties.";

/// librdkafka properties the connector sets itself: committing follows the
/// engine's progress, and end-of-partition events serve bounded reads.
const MANAGED_PROPERTIES: &[&str] = &["enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof"];

/// The checked options of a `kafka` source table.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaSourceOptions {
    /// The topic (`topic`).
    pub topic: String,
    /// librdkafka properties (`properties.<name>`), keyed by `<name>`;
    /// `bootstrap.servers` is always there.
    pub properties: BTreeMap<String, String>,
    /// The record format (`format`, `csv.*`).
    pub format: RecordFormat,
    /// Where reading starts (`scan.startup.mode`).
    pub startup: StartupMode,
    /// Where reading stops (`scan.bounded.mode`).
    pub bounded: BoundedMode,
    /// How long a partition may be silent before it stops holding the
    /// watermark back (`scan.watermark.idle-timeout`); never when unset.
    pub idle_timeout: Option<Duration>,
}

/// Where a source starts reading each partition (`scan.startup.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartupMode {
    /// The group's committed offsets (`group-offsets`).
    GroupOffsets,
    /// The oldest message (`earliest-offset`).
    EarliestOffset,
    /// After the newest message (`latest-offset`).
    LatestOffset,
    /// The first message with a timestamp at or after this one
    /// (`timestamp`, `scan.startup.timestamp-millis`).
    Timestamp(Millis),
}

/// Where a source stops reading (`scan.bounded.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundedMode {
    /// Never: the source runs until the engine stops (`unbounded`).
    Unbounded,
    /// Where the reader first catches up with each partition (`latest-offset`).
    LatestOffset,
}

impl KafkaSourceOptions {
    /// Checks the options and columns of a `kafka` source table without
    /// contacting the broker.
    pub fn parse(config: &ConnectorConfig) -> Result<Self, OptionError> {
        let properties = properties(config)?;
        let known: Vec<&str> = OPTIONS
            .iter()
            .copied()
            .chain(config.options.keys().map(String::as_str).filter(|key| key.starts_with(PROPERTIES)))
            .collect();
        let format = RecordFormat::parse(config, &known)?;
        let topic = config.required("topic")?;
        if topic.trim().is_empty() || topic.contains(';') {
            return Err(OptionError::Invalid {
                key: "topic".into(),
                value: topic.into(),
                expected: "topic name (one topic)".into(),
            });
        }
        let startup = match config.option("scan.startup.mode").unwrap_or("group-offsets") {
            "group-offsets" => StartupMode::GroupOffsets,
            "earliest-offset" => StartupMode::EarliestOffset,
            "latest-offset" => StartupMode::LatestOffset,
            "timestamp" => StartupMode::Timestamp(
                config
                    .parsed("scan.startup.timestamp-millis", "timestamp in milliseconds since 1970", |text| {
                        text.trim().parse::<Millis>().ok()
                    })?
                    .ok_or_else(|| OptionError::Missing {
                        key: "scan.startup.timestamp-millis".into(),
                    })?,
            ),
            other => {
                return Err(OptionError::Invalid {
                    key: "scan.startup.mode".into(),
                    value: other.into(),
                    expected: "startup mode (group-offsets, earliest-offset, latest-offset or timestamp)".into(),
                });
            }
        };
        if startup == StartupMode::GroupOffsets && !properties.contains_key("group.id") {
            return Err(OptionError::Missing {
                key: "properties.group.id".into(),
            });
        }
        let bounded = config
            .parsed("scan.bounded.mode", "bounded mode (unbounded or latest-offset)", |text| match text {
                "unbounded" => Some(BoundedMode::Unbounded),
                "latest-offset" => Some(BoundedMode::LatestOffset),
                _ => None,
            })?
            .unwrap_or(BoundedMode::Unbounded);
        let idle_timeout = config
            .parsed("scan.watermark.idle-timeout", "duration (such as '10 s' or '1 min')", parse_duration)?
            .map(|millis| Duration::from_millis(millis.unsigned_abs()));
        Ok(KafkaSourceOptions {
            topic: topic.to_owned(),
            properties,
            format,
            startup,
            bounded,
            idle_timeout,
        })
    }
}

/// The `properties.*` options, without the prefix; `bootstrap.servers` is required.
fn properties(config: &ConnectorConfig) -> Result<BTreeMap<String, String>, OptionError> {
    let properties = config.options_with_prefix(PROPERTIES);
    if let Some((name, value)) = properties.iter().find(|(name, _)| MANAGED_PROPERTIES.contains(&name.as_str())) {
        return Err(OptionError::Invalid {
            key: format!("{PROPERTIES}{name}"),
            value: value.clone(),
            expected: "setting: the connector manages this property itself".into(),
        });
    }
    if !properties.contains_key("bootstrap.servers") {
        return Err(OptionError::Missing {
            key: "properties.bootstrap.servers".into(),
        });
    }
    Ok(properties)
}

/// Opens this worker's share of the topic's partitions.
pub fn open(config: &ConnectorConfig, context: SourceContext) -> Result<Box<dyn Source>, SourceError> {
    let options = KafkaSourceOptions::parse(config)?;
    Ok(Box::new(KafkaSource::open(config, options, context)?))
}

#[cfg(test)]
mod tests;
