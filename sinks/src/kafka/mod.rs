//! The `kafka` connector: writes a view's changes to a Kafka topic, with
//! Flink's option names.
//!
//! ```sql
//! CREATE TABLE hub_avg_out (node STRING, window_start TIMESTAMP(3), avg_price DOUBLE) WITH (
//!   'connector' = 'kafka',
//!   'topic' = 'hub-avg',
//!   'properties.bootstrap.servers' = '127.0.0.1:9092',
//!   'format' = 'json',          -- or csv, msgpack
//!   'key.fields' = 'node'       -- optional: the message key
//! )
//! ```
//!
//! Options: `topic` and `properties.bootstrap.servers` (required), any other
//! `properties.<name>` (passed to librdkafka's producer as `<name>`),
//! `format` (`json`, `csv` or `msgpack`, see [`crate::encode`]),
//! `csv.field-delimiter` for CSV, `key.fields` (column names separated by
//! `;`; by default the table's `PRIMARY KEY (...) NOT ENFORCED`, if it
//! declares one) and `key.format` (the key's format, the value's by default).
//!
//! A topic is a log, so the sink writes the changelog: one message per
//! change, its op first (`+I` for an insertion, `-D` for a retraction; the
//! `op` key in JSON and MessagePack, the first field in CSV), `|diff|`
//! messages for a change of several copies. Within an epoch the retractions
//! go out before the insertions, so a consumer that upserts by key (the key
//! being the table's primary key, declared with `key.fields`) sees a revised
//! row's old version deleted before the new one arrives, never after. Keyed
//! messages go to the partition of their key (librdkafka's consistent hash),
//! so every change of one key stays in order.
//!
//! Every message carries a `carbonflow-id` header, the same for the same
//! result in every run, and a starting sink reads back the last messages of
//! its topic (`sink.dedupe.max-messages` per partition, 100 000 by default,
//! `0` for none) so that the results a restarted run writes again are not
//! written twice ([`delivered`]).
//!
//! The worker never waits on the network: messages go into librdkafka's
//! queue and a background thread delivers them. A full queue is the one
//! back-pressure: the sink waits for room, failing the run after
//! [`BACKPRESSURE_LIMIT`]. A message librdkafka gives up on (after its
//! `message.timeout.ms`) fails the run at the next batch. [`Sink::finish`]
//! waits until every message is delivered.

mod delivered;

pub use delivered::ID_HEADER;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carbonflow_core::{ConnectorConfig, Diff, Epoch, OptionError, Row, Watermark};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use self::delivered::Delivered;
use crate::change_id::change_id;
use crate::encode::{Encoding, OP_KEY, RecordEncoder};
use crate::text::row_kind;
use crate::{Sink, SinkError};

/// How long a full producer queue may keep a batch waiting before the run fails.
pub const BACKPRESSURE_LIMIT: Duration = Duration::from_secs(60);

/// How long [`Sink::finish`] waits for the last messages to be delivered.
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);

const OPTIONS: &[&str] = &["topic", "format", "csv.field-delimiter", "key.fields", "key.format", "sink.dedupe.max-messages"];

/// How many of each partition's last messages a starting sink reads back, unless set.
const DEDUPE_MESSAGES: usize = 100_000;

/// Keeps the message ids apart from those of other uses (bumped if the derivation changes).
const ID_DOMAIN: &[u8] = b"carbonflow-kafka-id-v1";

/// The checked options of a `kafka` sink table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSinkOptions {
    /// The topic (`topic`).
    pub topic: String,
    /// librdkafka producer properties (`properties.<name>`), keyed by
    /// `<name>`; `bootstrap.servers` is always there.
    pub properties: std::collections::BTreeMap<String, String>,
    /// The value format (`format`, `csv.field-delimiter`).
    pub value: Encoding,
    /// The key's columns and format (`key.fields`, `key.format`), if keyed.
    pub key: Option<(Vec<usize>, Encoding)>,
    /// How many of each partition's last messages are read back at start to
    /// recognise results written again (`sink.dedupe.max-messages`).
    pub dedupe_messages: usize,
}

impl KafkaSinkOptions {
    /// Reads and checks the options of a `kafka` sink table.
    pub fn parse(config: &ConnectorConfig) -> Result<Self, OptionError> {
        let properties = config.options_with_prefix("properties.");
        let known: Vec<&str> = OPTIONS
            .iter()
            .copied()
            .chain(config.options.keys().map(String::as_str).filter(|key| key.starts_with("properties.")))
            .collect();
        config.reject_unknown_options(&known)?;
        if !properties.contains_key("bootstrap.servers") {
            return Err(OptionError::Missing {
                key: "properties.bootstrap.servers".into(),
            });
        }
        let topic = config.required("topic")?;
        if topic.trim().is_empty() {
            return Err(OptionError::Invalid {
                key: "topic".into(),
                value: topic.into(),
                expected: "topic name".into(),
            });
        }
        let delimiter = config
            .parsed("csv.field-delimiter", "field delimiter (one ASCII character, or '\\t')", |text| {
                match text.as_bytes() {
                    b"\\t" => Some(b'\t'),
                    [byte] if byte.is_ascii() && !matches!(byte, b'"' | b'\n' | b'\r') => Some(*byte),
                    _ => None,
                }
            })?
            .unwrap_or(b',');
        let encoding = |key: &str| {
            config.parsed(key, "format ('json', 'csv' or 'msgpack')", |text| match text.to_ascii_lowercase().as_str() {
                "json" => Some(Encoding::Json),
                "csv" => Some(Encoding::Csv { delimiter }),
                "msgpack" => Some(Encoding::MessagePack),
                _ => None,
            })
        };
        let value = encoding("format")?.ok_or_else(|| OptionError::Missing { key: "format".into() })?;
        if value != (Encoding::Csv { delimiter }) && config.option("csv.field-delimiter").is_some() {
            return Err(OptionError::Unknown {
                key: "csv.field-delimiter".into(),
                known: OPTIONS.iter().filter(|key| !key.starts_with("csv.")).map(|key| (*key).to_owned()).collect(),
            });
        }
        if value != (Encoding::Csv { delimiter }) && config.schema.index_of(OP_KEY).is_some() {
            return Err(OptionError::Column {
                column: OP_KEY.into(),
                message: "clashes with the changelog's 'op' key; rename the column".into(),
            });
        }
        let key = match config.option("key.fields") {
            // Without `key.fields`, the table's PRIMARY KEY keys the messages.
            None => match &config.primary_key {
                Some(columns) => Some((columns.clone(), encoding("key.format")?.unwrap_or(value))),
                None if config.option("key.format").is_some() => return Err(OptionError::Missing { key: "key.fields".into() }),
                None => None,
            },
            Some(fields) => {
                let columns = fields
                    .split(';')
                    .map(|name| {
                        config.schema.index_of(name.trim()).ok_or_else(|| OptionError::Invalid {
                            key: "key.fields".into(),
                            value: fields.into(),
                            expected: format!("list of the table's columns separated by ';' ('{}' is not one)", name.trim()),
                        })
                    })
                    .collect::<Result<Vec<usize>, OptionError>>()?;
                Some((columns, encoding("key.format")?.unwrap_or(value)))
            }
        };
        let dedupe_messages = config
            .parsed("sink.dedupe.max-messages", "number of messages (0 for none)", |text| text.trim().parse().ok())?
            .unwrap_or(DEDUPE_MESSAGES);
        Ok(KafkaSinkOptions {
            topic: topic.to_owned(),
            properties,
            value,
            key,
            dedupe_messages,
        })
    }
}

/// Writes a table's changes to a Kafka topic.
pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryReports>,
    table: String,
    topic: String,
    /// What the topic held at start, to recognise results written again.
    delivered: Delivered,
    /// Messages not written because the topic had them.
    recognised: u64,
    columns: usize,
    value: RecordEncoder,
    key: Option<(Vec<usize>, RecordEncoder)>,
}

/// Counts what librdkafka could not deliver; called on its polling thread.
#[derive(Default)]
struct DeliveryReports {
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl ClientContext for DeliveryReports {}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((error, _message)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.first_failure.lock().expect("delivery failure").get_or_insert_with(|| error.to_string());
        }
    }
}

impl KafkaSink {
    /// Reads back the end of the topic, then creates the producer of a
    /// `kafka` table (it connects in the background).
    pub fn new(config: &ConnectorConfig) -> Result<KafkaSink, SinkError> {
        let options = KafkaSinkOptions::parse(config)?;
        let delivered = match options.dedupe_messages {
            0 => Delivered::default(),
            messages => Delivered::read(&options.properties, &options.topic, messages, options.key.is_some())
                .map_err(|error| topic_error(&options.topic, format!("reading back its last messages: {error}")))?,
        };
        let mut client = ClientConfig::new();
        for (name, value) in &options.properties {
            client.set(name, value);
        }
        let producer = client
            .create_with_context(DeliveryReports::default())
            .map_err(|error| topic_error(&options.topic, error))?;
        Ok(KafkaSink {
            producer,
            table: config.table.clone(),
            delivered,
            recognised: 0,
            columns: config.schema.len(),
            value: RecordEncoder::new(options.value, &config.schema),
            key: options.key.map(|(columns, encoding)| {
                let key_schema = carbonflow_core::Schema::new(columns.iter().map(|&column| config.schema.fields[column].clone()).collect());
                (columns, RecordEncoder::new(encoding, &key_schema))
            }),
            topic: options.topic,
        })
    }

    /// The first delivery failure, as an error, if any message was lost.
    fn check_deliveries(&self) -> Result<(), SinkError> {
        let context = self.producer.context();
        match context.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            failed => {
                let first = context.first_failure.lock().expect("delivery failure").clone().unwrap_or_default();
                Err(topic_error(&self.topic, format!("{failed} messages could not be delivered (first: {first})")))
            }
        }
    }

    /// Queues the messages of one change, one per copy, waiting for room in
    /// a full queue; a message the topic already had is not written again.
    fn send(&mut self, row: &Row, diff: Diff) -> Result<(), SinkError> {
        let kind = row_kind(diff);
        let value = self.value.encode(Some(kind), row).map_err(|error| topic_error(&self.topic, error))?;
        let key = match &mut self.key {
            Some((columns, encoder)) => Some(encoder.encode(None, &row.project(columns)).map_err(|error| topic_error(&self.topic, error))?),
            None => None,
        };
        for copy in 0..diff.unsigned_abs() {
            let id = change_id(ID_DOMAIN, &self.table, kind, copy, row);
            if self.delivered.take(key.unwrap_or_default(), &id) {
                self.recognised += 1;
                continue;
            }
            let headers = OwnedHeaders::new().insert(Header {
                key: ID_HEADER,
                value: Some(id.as_bytes()),
            });
            let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(value).headers(headers);
            if let Some(key) = key {
                record = record.key(key);
            }
            let mut waiting_since: Option<Instant> = None;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        let since = *waiting_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > BACKPRESSURE_LIMIT {
                            return Err(topic_error(&self.topic, format!("the producer queue stayed full for {BACKPRESSURE_LIMIT:?}")));
                        }
                        record = returned;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((error, _)) => return Err(topic_error(&self.topic, error)),
                }
            }
        }
        Ok(())
    }
}

impl Sink for KafkaSink {
    fn on_batch(&mut self, _epoch: Epoch, updates: &[(Row, Diff)]) -> Result<(), SinkError> {
        if let Some((row, _)) = updates.iter().find(|(row, _)| row.len() != self.columns) {
            return Err(SinkError::Inconsistent {
                sink: format!("kafka topic '{}'", self.topic),
                message: format!("row {} has {} columns, the table has {}", crate::text::PrintRow(row), row.len(), self.columns),
            });
        }
        for (row, diff) in updates.iter().filter(|(_, diff)| *diff < 0).chain(updates.iter().filter(|(_, diff)| *diff > 0)) {
            self.send(row, *diff)?;
        }
        self.check_deliveries()
    }

    fn on_progress(&mut self, _epoch: Epoch, _watermark: Watermark) -> Result<(), SinkError> {
        self.check_deliveries()
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if self.recognised > 0 {
            eprintln!(
                "kafka topic '{}': {} messages were in the topic already and not written again",
                self.topic, self.recognised
            );
        }
        self.producer.flush(FINISH_TIMEOUT).map_err(|error| {
            topic_error(
                &self.topic,
                format!("{} messages undelivered after {FINISH_TIMEOUT:?}: {error}", self.producer.in_flight_count()),
            )
        })?;
        self.check_deliveries()
    }
}

fn topic_error(topic: &str, error: impl std::fmt::Display) -> SinkError {
    SinkError::Io {
        path: format!("kafka topic '{topic}'"),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use carbonflow_core::{DataType, Datum, Field, Schema};
    use carbonflow_sources::kafka::testkit::{self, Record};

    use super::*;

    fn table(topic: &str, bootstrap: &str, options: &[(&str, &str)]) -> ConnectorConfig {
        ConnectorConfig {
            table: "out".into(),
            schema: Schema::new(vec![Field::new("node", DataType::String), Field::new("price", DataType::Float)]),
            event_time_column: None,
            primary_key: None,
            options: testkit::table_options(topic, bootstrap, options),
        }
    }

    fn row(node: &str, price: f64) -> Row {
        Row::new(vec![Datum::string(node), Datum::float(price)])
    }

    fn values(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|record| String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned())
            .collect()
    }

    #[test]
    fn options_are_checked_without_a_broker() {
        let parse = |options: &[(&str, &str)]| KafkaSinkOptions::parse(&table("t", "127.0.0.1:1", options));
        let mut with_primary_key = table("t", "127.0.0.1:1", &[]);
        with_primary_key.primary_key = Some(vec![0]);
        assert_eq!(
            KafkaSinkOptions::parse(&with_primary_key).unwrap().key,
            Some((vec![0], Encoding::Json)),
            "the primary key keys the messages"
        );
        let keyed = parse(&[("key.fields", "node"), ("key.format", "csv")]).unwrap();
        assert_eq!(keyed.key, Some((vec![0], Encoding::Csv { delimiter: b',' })));
        assert_eq!(parse(&[("key.fields", "price; node")]).unwrap().key, Some((vec![1, 0], Encoding::Json)));
        assert_eq!(
            parse(&[("format", "csv"), ("csv.field-delimiter", "\\t")]).unwrap().value,
            Encoding::Csv { delimiter: b'\t' }
        );
        assert!(matches!(parse(&[("key.fields", "nodes")]), Err(OptionError::Invalid { key, .. }) if key == "key.fields"));
        assert!(matches!(parse(&[("key.format", "json")]), Err(OptionError::Missing { key }) if key == "key.fields"));
        assert!(matches!(parse(&[("format", "avro")]), Err(OptionError::Invalid { key, .. }) if key == "format"));
        assert!(matches!(parse(&[("csv.field-delimiter", ";")]), Err(OptionError::Unknown { key, .. }) if key == "csv.field-delimiter"));
        assert!(matches!(parse(&[("sink.partitioner", "fixed")]), Err(OptionError::Unknown { .. })));
        assert_eq!(parse(&[]).unwrap().dedupe_messages, 100_000);
        assert_eq!(parse(&[("sink.dedupe.max-messages", "0")]).unwrap().dedupe_messages, 0);
        assert!(matches!(parse(&[("sink.dedupe.max-messages", "all")]), Err(OptionError::Invalid { key, .. }) if key == "sink.dedupe.max-messages"));
        let mut op_column = table("t", "127.0.0.1:1", &[]);
        op_column.schema = Schema::new(vec![Field::new("op", DataType::String)]);
        assert_eq!(KafkaSinkOptions::parse(&op_column).unwrap_err().column(), Some("op"));
        let mut no_servers = table("t", "127.0.0.1:1", &[]);
        no_servers.options.remove("properties.bootstrap.servers");
        assert!(matches!(crate::validate_sink(&no_servers), Err(OptionError::Missing { key }) if key == "properties.bootstrap.servers"));
    }

    #[test]
    fn the_changelog_goes_out_keyed_with_retractions_before_insertions() {
        let bootstrap = testkit::bootstrap();
        let topic = testkit::unique_topic("sink");
        testkit::create_topic(&bootstrap, &topic, 1);
        let mut sink = crate::create_sink(&table(&topic, &bootstrap, &[("key.fields", "node")])).unwrap();
        sink.on_batch(1, &[(row("A", 10.0), 1), (row("B", 5.0), 2)]).unwrap();
        // A revision: sorted by row, the new version comes first, but must go out last.
        sink.on_batch(2, &[(row("A", 8.0), 1), (row("A", 10.0), -1)]).unwrap();
        sink.finish().unwrap();
        let records = testkit::consume_all(&bootstrap, &topic);
        assert_eq!(
            values(&records),
            [
                r#"{"op":"+I","node":"A","price":10.0}"#,
                r#"{"op":"+I","node":"B","price":5.0}"#,
                r#"{"op":"+I","node":"B","price":5.0}"#,
                r#"{"op":"-D","node":"A","price":10.0}"#,
                r#"{"op":"+I","node":"A","price":8.0}"#,
            ]
        );
        let keys: Vec<&[u8]> = records.iter().map(|record| record.key.as_deref().unwrap()).collect();
        assert_eq!(
            keys,
            [
                &br#"{"node":"A"}"#[..],
                br#"{"node":"B"}"#,
                br#"{"node":"B"}"#,
                br#"{"node":"A"}"#,
                br#"{"node":"A"}"#
            ]
        );
    }

    #[test]
    fn csv_and_msgpack_values_and_unkeyed_messages() {
        let bootstrap = testkit::bootstrap();
        let mut written = BTreeMap::new();
        for format in ["csv", "msgpack"] {
            let topic = testkit::unique_topic(format);
            testkit::create_topic(&bootstrap, &topic, 1);
            let mut sink = crate::create_sink(&table(&topic, &bootstrap, &[("format", format)])).unwrap();
            sink.on_batch(1, &[(row("A", 1.5), -1)]).unwrap();
            sink.finish().unwrap();
            let [record] = <[Record; 1]>::try_from(testkit::consume_all(&bootstrap, &topic)).expect("one message");
            assert_eq!((record.partition, record.key), (0, None), "{format}");
            written.insert(format, record.value.unwrap());
        }
        assert_eq!(written["csv"], b"-D,A,1.5");
        let msgpack: serde_json::Value = rmp_serde::from_slice(&written["msgpack"]).unwrap();
        assert_eq!(msgpack, serde_json::json!({"op": "-D", "node": "A", "price": 1.5}));
    }

    #[test]
    fn a_restarted_sink_writes_only_what_the_topic_does_not_have_yet() {
        let bootstrap = testkit::bootstrap();
        let topic = testkit::unique_topic("again");
        testkit::create_topic(&bootstrap, &topic, 2);
        let mut first = crate::create_sink(&table(&topic, &bootstrap, &[])).unwrap();
        first.on_batch(1, &[(row("A", 1.0), 1), (row("B", 2.0), 2)]).unwrap();
        first.on_batch(2, &[(row("A", 1.0), -1)]).unwrap();
        first.finish().unwrap();
        // The restart writes everything again, then something new.
        let mut second = crate::create_sink(&table(&topic, &bootstrap, &[])).unwrap();
        second.on_batch(1, &[(row("A", 1.0), 1), (row("B", 2.0), 3)]).unwrap();
        second.on_batch(2, &[(row("A", 1.0), -1), (row("C", 3.0), 1)]).unwrap();
        second.finish().unwrap();
        let mut written = values(&testkit::consume_all(&bootstrap, &topic));
        written.sort();
        assert_eq!(
            written,
            [
                r#"{"op":"+I","node":"A","price":1.0}"#,
                r#"{"op":"+I","node":"B","price":2.0}"#,
                r#"{"op":"+I","node":"B","price":2.0}"#,
                r#"{"op":"+I","node":"B","price":2.0}"#,
                r#"{"op":"+I","node":"C","price":3.0}"#,
                r#"{"op":"-D","node":"A","price":1.0}"#,
            ],
            "the third copy of B and C are new"
        );
        let ids = testkit::header_values(&bootstrap, &topic, ID_HEADER);
        assert!(ids.iter().all(|id| id.as_ref().is_some_and(|id| id.len() == 32)), "{ids:?}");
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 6, "each copy of a change has an id of its own");

        // Reading nothing back writes everything again.
        let mut blind = crate::create_sink(&table(&topic, &bootstrap, &[("sink.dedupe.max-messages", "0")])).unwrap();
        blind.on_batch(1, &[(row("A", 1.0), 1)]).unwrap();
        blind.finish().unwrap();
        let written = values(&testkit::consume_all(&bootstrap, &topic));
        assert_eq!(written.len(), 7);
        // Both orders list messages partition by partition in offset order.
        let ids = testkit::header_values(&bootstrap, &topic, ID_HEADER);
        let inserted_a: Vec<_> = written
            .iter()
            .zip(&ids)
            .filter(|(value, _)| value.as_str() == r#"{"op":"+I","node":"A","price":1.0}"#)
            .map(|(_, id)| id)
            .collect();
        assert_eq!(inserted_a.len(), 2);
        assert_eq!(inserted_a[0], inserted_a[1], "the same change, the same id");
    }

    #[test]
    fn a_keyed_topic_writes_every_later_change_of_a_key_once_one_was_new() {
        let bootstrap = testkit::bootstrap();
        let topic = testkit::unique_topic("keyed-again");
        testkit::create_topic(&bootstrap, &topic, 1);
        let keyed = table(&topic, &bootstrap, &[("key.fields", "node")]);
        let mut first = crate::create_sink(&keyed).unwrap();
        first.on_batch(1, &[(row("A", 1.0), 1), (row("B", 5.0), 1)]).unwrap();
        first.finish().unwrap();
        // A's result comes out through a value the first run never wrote;
        // B's comes out the same. An upserting reader must end with A at 1.0.
        let mut second = crate::create_sink(&keyed).unwrap();
        second.on_batch(1, &[(row("A", 0.5), 1), (row("B", 5.0), 1)]).unwrap();
        second.on_batch(2, &[(row("A", 0.5), -1), (row("A", 1.0), 1)]).unwrap();
        second.finish().unwrap();
        assert_eq!(
            values(&testkit::consume_all(&bootstrap, &topic)),
            [
                r#"{"op":"+I","node":"A","price":1.0}"#,
                r#"{"op":"+I","node":"B","price":5.0}"#,
                r#"{"op":"+I","node":"A","price":0.5}"#,
                r#"{"op":"-D","node":"A","price":0.5}"#,
                r#"{"op":"+I","node":"A","price":1.0}"#,
            ]
        );
    }

    #[test]
    fn an_unreachable_broker_fails_the_sink_at_finish_not_silently() {
        // Nothing listens on port 1; librdkafka gives up after message.timeout.ms.
        let config = table(
            "t",
            "127.0.0.1:1",
            &[("properties.message.timeout.ms", "500"), ("sink.dedupe.max-messages", "0")],
        );
        let mut sink = crate::create_sink(&config).unwrap();
        sink.on_batch(1, &[(row("A", 1.0), 1)]).unwrap();
        let error = sink.finish().unwrap_err();
        assert!(error.to_string().contains("could not be delivered"), "{error}");
    }
}
