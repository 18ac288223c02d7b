//! One worker's Kafka source instance: its partitions, their offsets and
//! event-time clocks, and the commits that follow the engine's progress.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use carbonflow_core::{ConnectorConfig, DeadLetter, DeadLetterReason, Epoch, Row};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::watermark::PartitionClocks;
use super::{BoundedMode, KafkaSourceOptions, StartupMode};
use crate::decode::RecordDecoder;
use crate::{EventTimeProgress, Source, SourceBatch, SourceContext, SourceError, SourceStatus};

/// How long opening may wait for the broker (metadata, offsets).
const BROKER_TIMEOUT: Duration = Duration::from_secs(30);

/// The least time between two commits while running.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// A `kafka` source instance: the partitions of its worker.
pub struct KafkaSource {
    consumer: BaseConsumer,
    topic: String,
    /// The partitions this instance reads, in increasing order; the
    /// per-partition vectors below are indexed like it.
    partitions: Vec<i32>,
    /// The offset after the last message handed to the engine.
    next_offsets: Vec<Option<i64>>,
    /// Partitions whose bounded read is done.
    done: Vec<bool>,
    decoder: RecordDecoder,
    origin: String,
    time_column: Option<usize>,
    clocks: PartitionClocks,
    commits: Commits,
    /// The rows of the last message read, not yet handed out.
    pending: PendingMessage,
    /// What the decoder wrote for the last message.
    scratch: SourceBatch,
    /// The position of the message being decoded, reused across messages.
    position: String,
}

/// The message whose rows are being handed out, in batches of at most
/// `max_rows` (a market document or a CSV message may hold thousands).
#[derive(Default)]
struct PendingMessage {
    rows: VecDeque<Row>,
    /// The partition's slot.
    slot: usize,
    /// The message's offset, until its last row is out.
    offset: Option<i64>,
}

/// What has been read, what the outputs absorbed, and what was committed.
struct Commits {
    /// Whether offsets are committed at all (a group id is set).
    enabled: bool,
    /// Offsets at the end of each sealed epoch not yet absorbed, oldest first
    /// (only epochs in which something was read).
    sealed: VecDeque<(Epoch, Vec<Option<i64>>)>,
    /// The offsets of the latest sealed epoch.
    last_sealed: Vec<Option<i64>>,
    /// Absorbed by every output, not yet committed.
    ready: Option<Vec<Option<i64>>>,
    last_commit: Instant,
}

impl KafkaSource {
    /// Connects, finds the topic's partitions, and assigns this worker's
    /// share at the configured start offsets.
    pub fn open(config: &ConnectorConfig, options: KafkaSourceOptions, context: SourceContext) -> Result<Self, SourceError> {
        let broker_error = |message: String| SourceError::Broker {
            topic: options.topic.clone(),
            message,
        };
        let bounded = options.bounded == BoundedMode::LatestOffset;
        let mut client = ClientConfig::new();
        for (name, value) in &options.properties {
            client.set(name, value);
        }
        if !options.properties.contains_key("group.id") {
            // librdkafka assigns partitions only within a group; this one
            // serves that alone and is never committed to.
            client.set("group.id", format!("carbonflow-{}", config.table));
        }
        client
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", if bounded { "true" } else { "false" });
        let consumer: BaseConsumer = client.create().map_err(|error| broker_error(error.to_string()))?;

        let metadata = consumer
            .fetch_metadata(Some(&options.topic), BROKER_TIMEOUT)
            .map_err(|error| broker_error(format!("reading the topic's metadata: {error}")))?;
        let topic = metadata
            .topics()
            .iter()
            .find(|topic| topic.name() == options.topic)
            .ok_or_else(|| broker_error("the broker does not know the topic".into()))?;
        if let Some(error) = topic.error() {
            return Err(broker_error(format!("{:?}", rdkafka::types::RDKafkaErrorCode::from(error))));
        }
        let mut all: Vec<i32> = topic.partitions().iter().map(|partition| partition.id()).collect();
        if all.is_empty() {
            return Err(broker_error("the topic has no partitions".into()));
        }
        all.sort_unstable();
        let partitions: Vec<i32> = all
            .into_iter()
            .filter(|p| p.unsigned_abs() as usize % context.peers.max(1) == context.worker_index)
            .collect();

        let mut assignment = TopicPartitionList::new();
        for &partition in &partitions {
            let start = match options.startup {
                StartupMode::GroupOffsets => Offset::Stored,
                StartupMode::EarliestOffset => Offset::Beginning,
                StartupMode::LatestOffset => Offset::End,
                // Replaced by the offsets the broker finds for the time below.
                StartupMode::Timestamp(millis) => Offset::Offset(millis),
            };
            assignment
                .add_partition_offset(&options.topic, partition, start)
                .map_err(|error| broker_error(error.to_string()))?;
        }
        if let StartupMode::Timestamp(_) = options.startup
            && !partitions.is_empty()
        {
            assignment = consumer
                .offsets_for_times(assignment, BROKER_TIMEOUT)
                .map_err(|error| broker_error(format!("finding offsets for the startup timestamp: {error}")))?;
        }
        consumer.assign(&assignment).map_err(|error| broker_error(error.to_string()))?;

        let count = partitions.len();
        Ok(KafkaSource {
            consumer,
            topic: options.topic,
            partitions,
            next_offsets: vec![None; count],
            done: vec![false; count],
            decoder: RecordDecoder::new(config, options.format),
            origin: config.table.clone(),
            time_column: config.event_time_column,
            clocks: PartitionClocks::new(count, options.idle_timeout, Instant::now()),
            commits: Commits {
                enabled: options.properties.contains_key("group.id"),
                sealed: VecDeque::new(),
                last_sealed: vec![None; count],
                ready: None,
                last_commit: Instant::now(),
            },
            pending: PendingMessage::default(),
            scratch: SourceBatch::default(),
            position: String::new(),
        })
    }

    /// The partitions this instance reads.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    fn slot(&self, partition: i32) -> Option<usize> {
        self.partitions.binary_search(&partition).ok()
    }

    /// Ends the bounded read of the partition in `slot`.
    fn finish_partition(&mut self, slot: usize) {
        if !self.done[slot] {
            self.done[slot] = true;
            self.clocks.finish(slot);
            let mut paused = TopicPartitionList::new();
            paused.add_partition(&self.topic, self.partitions[slot]);
            // Only saves fetching what would be dropped; failing to pause changes nothing.
            let _ = self.consumer.pause(&paused);
        }
    }

    /// Decodes the next message the consumer has fetched: its dead letters
    /// into `batch`, its rows into `pending`. `false` when there is none.
    fn read_message(&mut self, batch: &mut SourceBatch, now: Instant) -> Result<bool, SourceError> {
        loop {
            let message = match self.consumer.poll(Duration::ZERO) {
                None => return Ok(false),
                Some(Ok(message)) => message,
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    if let Some(slot) = self.slot(partition) {
                        // End-of-partition events are enabled for bounded reads only.
                        self.finish_partition(slot);
                    }
                    continue;
                }
                Some(Err(KafkaError::MessageConsumption(code))) => {
                    // librdkafka retries these itself (a broker restarting, a
                    // leader moving); the run goes on.
                    eprintln!("kafka topic '{}': {code:?}; retrying", self.topic);
                    continue;
                }
                Some(Err(error)) => return Err(self.broker_error(error.to_string())),
            };
            let (partition, offset) = (message.partition(), message.offset());
            // Fetched before the partition was paused at its end, or not ours.
            let Some(slot) = self.slot(partition).filter(|&slot| !self.done[slot]) else {
                continue;
            };
            self.position.clear();
            let _ = write!(self.position, "{}/{partition}@{offset}", self.topic);
            self.scratch.clear();
            match message.payload() {
                Some(payload) => self.decoder.decode(payload, &self.position, &mut self.scratch),
                None => self.scratch.dead_letters.push(DeadLetter {
                    origin: self.origin.clone(),
                    reason: DeadLetterReason::Parse,
                    detail: "message without a value".into(),
                    position: self.position.clone(),
                    record: String::new(),
                }),
            }
            // Even a message of dead letters shows the partition is alive.
            self.clocks.observe(slot, None, now);
            batch.dead_letters.append(&mut self.scratch.dead_letters);
            self.pending.rows.extend(self.scratch.rows.drain(..));
            self.pending.slot = slot;
            self.pending.offset = Some(offset);
            return Ok(true);
        }
    }

    fn broker_error(&self, message: String) -> SourceError {
        SourceError::Broker {
            topic: self.topic.clone(),
            message,
        }
    }

    /// Commits `offsets` (those known) to the group.
    fn commit_offsets(&self, offsets: &[Option<i64>], mode: CommitMode) -> Result<(), SourceError> {
        let mut list = TopicPartitionList::new();
        for (&partition, offset) in self.partitions.iter().zip(offsets) {
            if let Some(offset) = offset {
                list.add_partition_offset(&self.topic, partition, Offset::Offset(*offset))
                    .map_err(|error| self.broker_error(error.to_string()))?;
            }
        }
        if list.count() == 0 {
            return Ok(());
        }
        self.consumer
            .commit(&list, mode)
            .map_err(|error| self.broker_error(format!("committing offsets: {error}")))
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, batch: &mut SourceBatch, max_rows: usize) -> Result<SourceStatus, SourceError> {
        let before = batch.rows.len() + batch.dead_letters.len();
        let now = Instant::now();
        let mut budget = max_rows;
        loop {
            // The rows of a message go out before the next message is read;
            // its offset counts as consumed once the last of them is out.
            while budget > 0
                && let Some(row) = self.pending.rows.pop_front()
            {
                let event_time = self.time_column.and_then(|column| row.get(column).as_timestamp());
                self.clocks.observe(self.pending.slot, event_time, now);
                batch.rows.push(row);
                budget -= 1;
            }
            if !self.pending.rows.is_empty() {
                break;
            }
            if let Some(offset) = self.pending.offset.take() {
                self.next_offsets[self.pending.slot] = Some(offset + 1);
            }
            if budget == 0 || !self.read_message(batch, now)? {
                break;
            }
            budget = max_rows.saturating_sub(batch.rows.len() + batch.dead_letters.len() - before);
        }
        Ok(if batch.rows.len() + batch.dead_letters.len() > before {
            SourceStatus::Ready
        } else if self.done.iter().all(|&done| done) {
            // Also a worker without partitions: it holds nothing back.
            SourceStatus::Finished
        } else {
            SourceStatus::Idle
        })
    }

    fn event_time_progress(&self) -> Option<EventTimeProgress> {
        Some(self.clocks.progress(Instant::now()))
    }

    fn seal_epoch(&mut self, epoch: Epoch) {
        if self.commits.enabled && self.next_offsets != self.commits.last_sealed {
            self.commits.last_sealed.clone_from(&self.next_offsets);
            self.commits.sealed.push_back((epoch, self.next_offsets.clone()));
        }
    }

    fn commit(&mut self, epoch: Epoch) -> Result<(), SourceError> {
        while self.commits.sealed.front().is_some_and(|(sealed, _)| *sealed <= epoch) {
            self.commits.ready = self.commits.sealed.pop_front().map(|(_, offsets)| offsets);
        }
        if self.commits.last_commit.elapsed() < COMMIT_INTERVAL {
            return Ok(());
        }
        if let Some(offsets) = self.commits.ready.take() {
            self.commits.last_commit = Instant::now();
            self.commit_offsets(&offsets, CommitMode::Async)?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SourceError> {
        if self.commits.enabled {
            self.commit_offsets(&self.next_offsets, CommitMode::Sync)?;
        }
        Ok(())
    }
}
