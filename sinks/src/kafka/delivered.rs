//! The results a restarted run writes again, recognised by their id.
//!
//! Every message the sink writes carries a `carbonflow-id` header: the
//! [`change_id`](crate::change_id) of its change (op, row, and which copy of
//! the change it is), so the same result of the same table has the same id
//! in every run. A restarted run reads the input again from where the state
//! it rebuilds begins (`docs/recovery.md`), and writes again some results the
//! crashed run had written. At start the sink reads back the last messages of
//! each partition ([`Delivered::read`]) and counts their ids per message key;
//! a message whose id is still counted under its key is not written again,
//! and uses one count up ([`Delivered::take`]).
//!
//! A keyed topic is read by consumers that upsert by key, for whom the last
//! message of a key is its value: once a key gets a message that is not in
//! the topic yet (a result the crashed run never wrote, or an intermediate
//! value of an updating result that came out differently this time), every
//! later message of that key is written, so that the key ends where the
//! result ends. An unkeyed topic is read as a log: each id counts once per
//! message found.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The header holding a message's id.
pub const ID_HEADER: &str = "carbonflow-id";

/// How long reading back may wait for the broker.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The ids of a topic's last messages, by message key (empty when unkeyed).
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    by_key: HashMap<Vec<u8>, HashMap<String, u32>>,
    keyed: bool,
}

impl Delivered {
    /// Reads back the last `per_partition` messages of each partition of
    /// `topic` (none when the topic does not exist yet). `keyed`: whether
    /// the sink keys its messages.
    pub(crate) fn read(properties: &std::collections::BTreeMap<String, String>, topic: &str, per_partition: usize, keyed: bool) -> Result<Delivered, String> {
        let mut delivered = Delivered { by_key: HashMap::new(), keyed };
        let mut client = ClientConfig::new();
        for (name, value) in properties {
            client.set(name, value);
        }
        // librdkafka assigns partitions only within a group; nothing is committed to it.
        let consumer: BaseConsumer = client
            .set("group.id", "carbonflow-sink-read-back")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .map_err(|error| error.to_string())?;
        let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).map_err(|error| error.to_string())?;
        let Some(partitions) = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions())
        else {
            return Ok(delivered);
        };
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(topic, partition.id(), TIMEOUT).map_err(|error| error.to_string())?;
            let start = low.max(high.saturating_sub(i64::try_from(per_partition).unwrap_or(i64::MAX)));
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Offset(start))
                .map_err(|error| error.to_string())?;
        }
        consumer.assign(&assignment).map_err(|error| error.to_string())?;
        // The end is found by reading, not from the offsets asked for above,
        // which some brokers report stale (see docs/kafka.md).
        let mut open = assignment.count();
        let deadline = Instant::now() + TIMEOUT;
        while open > 0 {
            if Instant::now() > deadline {
                return Err(format!("{open} partitions not read back to their end within {TIMEOUT:?}"));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(message)) => {
                    let id = message
                        .headers()
                        .and_then(|headers| headers.iter().find(|header| header.key == ID_HEADER))
                        .and_then(|header| header.value)
                        .and_then(|value| std::str::from_utf8(value).ok());
                    if let Some(id) = id {
                        let key = message.key().unwrap_or_default().to_vec();
                        *delivered.by_key.entry(key).or_default().entry(id.to_owned()).or_default() += 1;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
                Some(Err(KafkaError::MessageConsumption(code))) => eprintln!("kafka topic '{topic}': {code:?} while reading back; retrying"),
                Some(Err(error)) => return Err(error.to_string()),
            }
        }
        Ok(delivered)
    }

    /// Whether a message with `id` under `key` is in the topic already: if
    /// so, that message is used up; if not, a keyed topic stops recognising
    /// anything more of `key`.
    pub(crate) fn take(&mut self, key: &[u8], id: &str) -> bool {
        let Some(ids) = self.by_key.get_mut(key) else {
            return false;
        };
        match ids.get_mut(id) {
            Some(count) => {
                *count -= 1;
                if *count == 0 {
                    ids.remove(id);
                }
                true
            }
            None => {
                if self.keyed {
                    self.by_key.remove(key);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(keyed: bool, messages: &[(&str, &str)]) -> Delivered {
        let mut delivered = Delivered { by_key: HashMap::new(), keyed };
        for (key, id) in messages {
            *delivered
                .by_key
                .entry(key.as_bytes().to_vec())
                .or_default()
                .entry((*id).to_owned())
                .or_default() += 1;
        }
        delivered
    }

    #[test]
    fn each_message_found_recognises_one_message_again() {
        let mut log = delivered(false, &[("", "a"), ("", "a"), ("", "b")]);
        assert!(log.take(b"", "a"));
        assert!(!log.take(b"", "c"), "an unkeyed topic goes on recognising after a new message");
        assert!(log.take(b"", "a"));
        assert!(!log.take(b"", "a"), "found twice, recognised twice");
        assert!(log.take(b"", "b"));
        assert!(!log.take(b"", "b"));
    }

    #[test]
    fn a_new_message_of_a_key_ends_the_recognition_of_that_key_only() {
        let mut log = delivered(true, &[("k1", "a"), ("k1", "b"), ("k2", "c")]);
        assert!(log.take(b"k1", "a"));
        assert!(!log.take(b"k1", "x"), "a value the crashed run never wrote");
        assert!(!log.take(b"k1", "b"), "so the key's later messages are all written");
        assert!(log.take(b"k2", "c"));
        assert!(!log.take(b"k2", "c"));
    }
}
