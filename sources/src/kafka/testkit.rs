//! A real Kafka-protocol broker and a few client calls, for the tests and
//! benchmarks of the Kafka connectors (feature `testkit`; the engine never
//! uses it).
//!
//! [`bootstrap`] is the broker's address: `CARBONFLOW_KAFKA_BOOTSTRAP` when
//! set (CI starts one broker for every test binary), otherwise a broker this
//! process starts once with `scripts/kafka-broker.sh`, which stops by itself
//! when the process exits. So a plain `cargo test` on a fresh machine runs
//! the Kafka tests too, at the price of installing the broker on first use.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// The environment variable naming a running broker (`host:port`).
pub const BOOTSTRAP_ENV: &str = "CARBONFLOW_KAFKA_BOOTSTRAP";

/// How long a helper waits for the broker before it panics.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The address of a running broker: `CARBONFLOW_KAFKA_BOOTSTRAP`, or one
/// started for this process on first call.
pub fn bootstrap() -> String {
    static STARTED: OnceLock<String> = OnceLock::new();
    if let Ok(address) = std::env::var(BOOTSTRAP_ENV)
        && !address.trim().is_empty()
    {
        return address;
    }
    STARTED.get_or_init(start_broker).clone()
}

/// Starts a broker owned by this process, in a directory of its own.
fn start_broker() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka-broker.sh");
    let dir = std::env::temp_dir().join(format!("carbonflow-kafka-{}", std::process::id()));
    eprintln!("{BOOTSTRAP_ENV} is not set: starting a broker with {}", script.display());
    let output = Command::new("bash")
        .arg(&script)
        .args(["start", "--owner", &std::process::id().to_string(), "--dir"])
        .arg(&dir)
        .output()
        .unwrap_or_else(|error| panic!("running {}: {error}", script.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{} start failed:\n{stderr}", script.display());
    let address = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(!address.is_empty(), "{} printed no address:\n{stderr}", script.display());
    address
}

/// The `WITH` options of a `kafka` table over `topic` in JSON, with
/// `extra` added (or overriding).
pub fn table_options(topic: &str, bootstrap: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut options = BTreeMap::from([
        ("connector".to_owned(), "kafka".to_owned()),
        ("topic".to_owned(), topic.to_owned()),
        ("properties.bootstrap.servers".to_owned(), bootstrap.to_owned()),
        ("format".to_owned(), "json".to_owned()),
    ]);
    options.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
    options
}

/// A topic name no other test uses, on any run against the same broker.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let sequence = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{sequence}", std::process::id())
}

/// Creates `topic` with `partitions` partitions.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = block_on(admin.create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &options)).expect("create topic");
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("creating topic {name}: {code:?}"));
    }
}

/// One message to produce or one consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The partition.
    pub partition: i32,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// A keyless message to `partition`.
    pub fn value(partition: i32, value: impl Into<Vec<u8>>) -> Self {
        Record {
            partition,
            key: None,
            value: Some(value.into()),
        }
    }
}

/// Produces `records` in order and waits until the broker has them all.
pub fn produce(bootstrap: &str, topic: &str, records: impl IntoIterator<Item = Record>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for record in records {
        let mut message = BaseRecord::<[u8], [u8]>::to(topic).partition(record.partition);
        if let Some(key) = &record.key {
            message = message.key(key);
        }
        if let Some(value) = &record.value {
            message = message.payload(value);
        }
        loop {
            match producer.send(message) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    message = returned;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => panic!("producing to {topic}: {error}"),
            }
        }
    }
    producer.flush(TIMEOUT).expect("every message delivered");
}

/// Every message in `topic` now, partition by partition in offset order.
pub fn consume_all(bootstrap: &str, topic: &str) -> Vec<Record> {
    consume(bootstrap, topic, |message| Record {
        partition: message.partition(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
    })
}

/// The value of header `name` of every message in `topic` now (`None`
/// where a message has none), in the order of [`consume_all`].
pub fn header_values(bootstrap: &str, topic: &str, name: &str) -> Vec<Option<Vec<u8>>> {
    use rdkafka::message::Headers;
    consume(bootstrap, topic, |message| {
        let headers = message.headers()?;
        headers.iter().find(|header| header.key == name)?.value.map(<[u8]>::to_vec)
    })
}

/// What `read` makes of every message in `topic` now, partition by partition in offset order.
fn consume<T>(bootstrap: &str, topic: &str, read: impl Fn(&rdkafka::message::BorrowedMessage<'_>) -> T) -> Vec<T> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka assigns partitions only within a group; nothing is committed to it.
        .set("group.id", "carbonflow-testkit")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|partition| partition.id()).collect();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut read_so_far: Vec<(i32, i64, T)> = Vec::new();
    let mut at_end = vec![false; partitions.len()];
    let deadline = Instant::now() + TIMEOUT;
    while at_end.iter().any(|done| !done) {
        assert!(Instant::now() < deadline, "{topic}: partitions still not read to the end");
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => read_so_far.push((message.partition(), message.offset(), read(&message))),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                let index = partitions.iter().position(|&p| p == partition).expect("an assigned partition");
                at_end[index] = true;
            }
            Some(Err(error)) => panic!("consuming {topic}: {error}"),
        }
    }
    read_so_far.sort_by_key(|(partition, offset, _)| (*partition, *offset));
    read_so_far.into_iter().map(|(_, _, item)| item).collect()
}

/// The offsets committed for `group` on every partition of `topic`
/// (`None` where nothing is committed), by partition.
pub fn committed_offsets(bootstrap: &str, topic: &str, group: &str) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).expect("metadata");
    let mut list = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        list.add_partition(topic, partition.id());
    }
    let committed = consumer.committed_offsets(list, TIMEOUT).expect("committed offsets");
    let mut offsets: Vec<(i32, Option<i64>)> = committed
        .elements()
        .iter()
        .map(|element| (element.partition(), element.offset().to_raw().filter(|offset| *offset >= 0)))
        .collect();
    offsets.sort_unstable();
    offsets.into_iter().map(|(_, offset)| offset).collect()
}

/// Runs `future` on this thread. The admin client's futures are completed
/// by its own background thread, so all that is needed is to wait.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}

/// The group a source with a retention commits its replay starts to, beside `group`.
pub fn replay_group(group: &str) -> String {
    super::replay::replay_group(group)
}
