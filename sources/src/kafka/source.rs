//! One worker's Kafka source instance: its partitions, their offsets and
//! event-time clocks, the commits that follow the engine's progress, and a
//! restart's reading again of what an earlier run absorbed ([`super::replay`]).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use carbonflow_core::metrics::KAFKA_CONSUMER_LAG;
use carbonflow_core::{ConnectorConfig, DeadLetter, DeadLetterReason, Epoch, Millis, Row};
use prometheus::IntGauge;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::commit::{CommitClients, Committer, Positions};
use super::replay::{ReplayLog, replay_group};
use super::watermark::PartitionClocks;
use super::{BoundedMode, KafkaSourceOptions, StartupMode};
use crate::decode::RecordDecoder;
use crate::{EventTimeProgress, Retention, Source, SourceBatch, SourceContext, SourceError, SourceStatus};

/// How long opening may wait for the broker (metadata, offsets).
const BROKER_TIMEOUT: Duration = Duration::from_secs(30);

/// The least time between two commits while running, and between two
/// refreshes of the consumer lag. Also how long a commit waits after the
/// outputs absorbed what it covers: sinks that deliver in the background (a
/// Kafka producer's queue) have had that long to land it.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// The least time between two positions kept for a later commit.
const POSITIONS_INTERVAL: Duration = Duration::from_millis(100);

/// A `kafka` source instance: the partitions of its worker.
pub struct KafkaSource {
    consumer: BaseConsumer<PartitionEnds>,
    topic: String,
    /// The partitions this instance reads, in increasing order; the
    /// per-partition vectors below are indexed like it.
    partitions: Vec<i32>,
    /// The offset after the last message handed to the engine.
    next_offsets: Vec<Option<i64>>,
    /// Partitions whose bounded read is done.
    done: Vec<bool>,
    bounded: bool,
    decoder: RecordDecoder,
    origin: String,
    time_column: Option<usize>,
    clocks: PartitionClocks,
    /// `None` without a group id: nothing is committed.
    commits: Option<Commits>,
    replay: Replay,
    /// The rows of the last message read, not yet handed out.
    pending: PendingMessage,
    /// What the decoder wrote for the last message.
    scratch: SourceBatch,
    /// The position of the message being decoded, reused across messages.
    position: String,
    lag: ConsumerLag,
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

/// What has been read, what the outputs absorbed, and what goes to the committer.
struct Commits {
    committer: Committer,
    /// Offsets at the end of each sealed epoch not yet absorbed, oldest first
    /// (only epochs in which something was read).
    sealed: VecDeque<(Epoch, Vec<Option<i64>>)>,
    /// The offsets of the latest sealed epoch.
    last_sealed: Vec<Option<i64>>,
    /// The offsets read by the latest absorbed epoch.
    absorbed: Vec<Option<i64>>,
    /// Where a restart must read from, unless it needs nothing read again.
    log: Option<ReplayLog>,
    /// Positions absorbed but not yet committed, with when they were, oldest first.
    absorbed_positions: VecDeque<(Instant, Positions)>,
    /// What the committer was last given.
    committed: Positions,
    last_commit: Instant,
}

/// What an earlier run of the group had read and absorbed, read again.
struct Replay {
    /// Per partition, where the earlier run's absorbed input ended: messages
    /// before it were read before, and their dead letters reported.
    heads: Vec<Option<i64>>,
    /// [`Retention::Span`]: re-read rows older than this reach no open
    /// window (nor upsert key) and are skipped.
    cutoff: Option<Millis>,
    /// While the clocks are being rebuilt: the span, the full assignment to
    /// read from afterwards, and which partitions are still being rebuilt.
    rebuild: Option<Rebuild>,
}

impl Replay {
    /// Whether reading `heads` far leaves some of what the earlier run had
    /// absorbed still to be read again. Until then nothing is committed: the
    /// last commit's positions are the ones a restart can rebuild from.
    fn pending(&self, heads: &[Option<i64>]) -> bool {
        self.heads.iter().zip(heads).any(|(earlier, now)| earlier.is_some() && now < earlier)
    }
}

struct Rebuild {
    span: Millis,
    assignment: TopicPartitionList,
    partitions: Vec<bool>,
}

/// Keeps the newest end offset librdkafka's statistics report for each
/// partition of the topic (`statistics.interval.ms`), for the consumer lag.
struct PartitionEnds {
    topic: String,
    ends: Mutex<HashMap<i32, i64>>,
}

impl ClientContext for PartitionEnds {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        let mut ends = self.ends.lock().expect("partition ends");
        for (partition, stats) in &topic.partitions {
            if *partition >= 0 && stats.hi_offset >= 0 {
                ends.insert(*partition, stats.hi_offset);
            }
        }
    }
}

impl ConsumerContext for PartitionEnds {}

/// This instance's share of `carbonflow_kafka_consumer_lag{query, source}`:
/// the gauge sums every instance of the table.
struct ConsumerLag {
    gauge: IntGauge,
    reported: i64,
    refreshed: Instant,
}

impl ConsumerLag {
    fn set(&mut self, lag: i64) {
        self.gauge.add(lag - self.reported);
        self.reported = lag;
    }
}

impl Drop for ConsumerLag {
    fn drop(&mut self) {
        self.set(0);
    }
}

impl KafkaSource {
    /// Connects, finds the topic's partitions, and assigns this worker's
    /// share at the configured start offsets, or where a restart must read
    /// again from.
    pub fn open(config: &ConnectorConfig, options: KafkaSourceOptions, context: SourceContext) -> Result<Self, SourceError> {
        let broker_error = |message: String| SourceError::Broker {
            topic: options.topic.clone(),
            message,
        };
        let bounded = options.bounded == BoundedMode::LatestOffset;
        let group = options.properties.get("group.id").cloned();
        let client = |group: &str| {
            let mut client = ClientConfig::new();
            for (name, value) in &options.properties {
                client.set(name, value);
            }
            client.set("group.id", group).set("enable.auto.commit", "false");
            client
        };
        // librdkafka assigns partitions only within a group; without one, this
        // one serves that alone and is never committed to.
        let mut consumer_config = client(group.as_deref().unwrap_or(&format!("carbonflow-{}", config.table)));
        if !options.properties.contains_key("statistics.interval.ms") {
            consumer_config.set("statistics.interval.ms", COMMIT_INTERVAL.as_millis().to_string());
        }
        consumer_config
            .set("enable.auto.offset.store", "false")
            // End-of-partition events end bounded reads and rebuilds.
            .set("enable.partition.eof", "true");
        let consumer: BaseConsumer<PartitionEnds> = consumer_config
            .create_with_context(PartitionEnds {
                topic: options.topic.clone(),
                ends: Mutex::default(),
            })
            .map_err(|error| broker_error(error.to_string()))?;

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
        let count = partitions.len();

        // The replay group keeps where a restart must read again from.
        let replay_client = match (&group, context.retention) {
            (Some(group), Retention::Span(_) | Retention::Everything) => Some(
                client(&replay_group(group))
                    .create::<BaseConsumer>()
                    .map_err(|error| broker_error(error.to_string()))?,
            ),
            _ => None,
        };
        // A restart reads again only when it resumes from the group's offsets.
        let (starts, heads) = match &replay_client {
            Some(replay) if options.startup == StartupMode::GroupOffsets && count > 0 => {
                let read = |offsets: rdkafka::error::KafkaResult<Vec<Option<i64>>>| {
                    offsets.map_err(|error| broker_error(format!("reading committed offsets: {error}")))
                };
                (
                    read(committed_offsets(replay, &options.topic, &partitions))?,
                    read(committed_offsets(&consumer, &options.topic, &partitions))?,
                )
            }
            _ => (vec![None; count], vec![None; count]),
        };

        let mut assignment = TopicPartitionList::new();
        for (&partition, start) in partitions.iter().zip(&starts) {
            let start = match (start, options.startup) {
                (Some(start), _) => Offset::Offset(*start),
                (None, StartupMode::GroupOffsets) => Offset::Stored,
                (None, StartupMode::EarliestOffset) => Offset::Beginning,
                (None, StartupMode::LatestOffset) => Offset::End,
                // Replaced by the offsets the broker finds for the time below.
                (None, StartupMode::Timestamp(millis)) => Offset::Offset(millis),
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

        // A span restores the clocks first, from the partitions re-read up to their heads.
        let rebuilding: Vec<bool> = starts
            .iter()
            .zip(&heads)
            .map(|(start, head)| matches!((start, head), (Some(s), Some(h)) if s < h))
            .collect();
        let rebuild = match context.retention {
            Retention::Span(span) if rebuilding.contains(&true) => {
                let mut first = TopicPartitionList::new();
                for (slot, &partition) in partitions.iter().enumerate().filter(|(slot, _)| rebuilding[*slot]) {
                    let start = starts[slot].expect("a rebuilt partition has a start");
                    first
                        .add_partition_offset(&options.topic, partition, Offset::Offset(start))
                        .map_err(|error| broker_error(error.to_string()))?;
                }
                consumer.assign(&first).map_err(|error| broker_error(error.to_string()))?;
                Some(Rebuild {
                    span,
                    assignment,
                    partitions: rebuilding,
                })
            }
            _ => {
                consumer.assign(&assignment).map_err(|error| broker_error(error.to_string()))?;
                None
            }
        };

        let commits = match group {
            Some(group) => Some(Commits {
                committer: Committer::start(CommitClients {
                    topic: options.topic.clone(),
                    partitions: partitions.clone(),
                    group: client(&group).create().map_err(|error| broker_error(error.to_string()))?,
                    replay: replay_client,
                }),
                sealed: VecDeque::new(),
                last_sealed: vec![None; count],
                absorbed: vec![None; count],
                log: ReplayLog::new(context.retention, starts),
                absorbed_positions: VecDeque::new(),
                committed: Positions::default(),
                last_commit: Instant::now(),
            }),
            None => None,
        };
        Ok(KafkaSource {
            consumer,
            topic: options.topic,
            partitions,
            next_offsets: vec![None; count],
            done: vec![false; count],
            bounded,
            decoder: RecordDecoder::new(config, options.format),
            origin: config.table.clone(),
            time_column: config.event_time_column,
            clocks: PartitionClocks::new(count, options.idle_timeout, Instant::now()),
            commits,
            replay: Replay { heads, cutoff: None, rebuild },
            pending: PendingMessage::default(),
            scratch: SourceBatch::default(),
            position: String::new(),
            lag: ConsumerLag {
                gauge: KAFKA_CONSUMER_LAG.with_label_values(&[context.query.as_str(), config.table.as_str()]),
                reported: 0,
                refreshed: Instant::now(),
            },
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

    /// The next message the consumer has fetched, as (slot, offset, payload
    /// decoded into `scratch`), skipping those of partitions that are done;
    /// `None` when there is none. End-of-partition events go to `on_end`.
    fn next_message(&mut self, mut on_end: impl FnMut(&mut Self, usize)) -> Result<Option<(usize, i64)>, SourceError> {
        loop {
            let message = match self.consumer.poll(Duration::ZERO) {
                None => return Ok(None),
                Some(Ok(message)) => message,
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    if let Some(slot) = self.slot(partition) {
                        on_end(self, slot);
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
            return Ok(Some((slot, offset)));
        }
    }

    fn event_time(&self, row: &Row) -> Option<Millis> {
        self.time_column.and_then(|column| row.get(column).as_timestamp())
    }

    /// Decodes the next message: its dead letters into `batch`, its rows
    /// into `pending`. `false` when there is none. A message an earlier run
    /// absorbed has had its dead letters reported, and its rows older than
    /// the span would only be late.
    fn read_message(&mut self, batch: &mut SourceBatch, now: Instant) -> Result<bool, SourceError> {
        let on_end = |source: &mut Self, slot: usize| {
            if source.bounded {
                source.finish_partition(slot);
            }
        };
        let Some((slot, offset)) = self.next_message(on_end)? else {
            return Ok(false);
        };
        // Even a message of dead letters shows the partition is alive.
        self.clocks.observe(slot, None, now);
        if self.replay.heads[slot].is_some_and(|head| offset < head) {
            self.scratch.dead_letters.clear();
            if let Some(cutoff) = self.replay.cutoff {
                let time_column = self.time_column;
                self.scratch
                    .rows
                    .retain(|row| time_column.and_then(|column| row.get(column).as_timestamp()).is_none_or(|time| time >= cutoff));
            }
        }
        batch.dead_letters.append(&mut self.scratch.dead_letters);
        self.pending.rows.extend(self.scratch.rows.drain(..));
        self.pending.slot = slot;
        self.pending.offset = Some(offset);
        Ok(true)
    }

    /// Reads the partitions being rebuilt up to their heads, into the clocks
    /// only. Once every one is there, reads from the full assignment again.
    fn rebuild_clocks(&mut self, now: Instant) -> Result<(), SourceError> {
        let on_end = |source: &mut Self, slot: usize| {
            if let Some(rebuild) = &mut source.replay.rebuild {
                rebuild.partitions[slot] = false;
            }
        };
        while let Some((slot, offset)) = self.next_message(on_end)? {
            let head = self.replay.heads[slot].expect("a rebuilt partition has a head");
            if offset < head {
                for index in 0..self.scratch.rows.len() {
                    let time = self.event_time(&self.scratch.rows[index]);
                    self.clocks.observe(slot, time, now);
                }
            }
            if offset + 1 >= head
                && let Some(rebuild) = &mut self.replay.rebuild
            {
                rebuild.partitions[slot] = false;
            }
        }
        if self.replay.rebuild.as_ref().is_some_and(|rebuild| !rebuild.partitions.contains(&true)) {
            let rebuild = self.replay.rebuild.take().expect("checked");
            self.consumer
                .assign(&rebuild.assignment)
                .map_err(|error| self.broker_error(error.to_string()))?;
            self.clocks.rebuilt();
            self.replay.cutoff = self.clocks.floor(now).map(|floor| floor.saturating_sub(rebuild.span));
        }
        Ok(())
    }

    fn broker_error(&self, message: String) -> SourceError {
        SourceError::Broker {
            topic: self.topic.clone(),
            message,
        }
    }

    /// Refreshes this instance's share of the consumer lag: the partitions'
    /// newest end offsets minus the offsets handed out.
    fn refresh_lag(&mut self, now: Instant) {
        if now.saturating_duration_since(self.lag.refreshed) < COMMIT_INTERVAL {
            return;
        }
        self.lag.refreshed = now;
        let lag: i64 = {
            let ends = self.consumer.context().ends.lock().expect("partition ends");
            self.partitions
                .iter()
                .zip(&self.next_offsets)
                .filter_map(|(partition, next)| Some((ends.get(partition)? - (*next)?).max(0)))
                .sum()
        };
        self.lag.set(lag);
    }
}

/// The offsets committed to `consumer`'s group for `partitions` of `topic`,
/// in their order (`None` where there is none).
fn committed_offsets<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partitions: &[i32]) -> rdkafka::error::KafkaResult<Vec<Option<i64>>> {
    let mut list = TopicPartitionList::new();
    for &partition in partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, BROKER_TIMEOUT)?;
    Ok(partitions
        .iter()
        .map(|&partition| {
            committed
                .find_partition(topic, partition)
                .and_then(|element| element.offset().to_raw())
                .filter(|offset| *offset >= 0)
        })
        .collect())
}

impl Source for KafkaSource {
    fn poll(&mut self, batch: &mut SourceBatch, max_rows: usize) -> Result<SourceStatus, SourceError> {
        let now = Instant::now();
        if self.replay.rebuild.is_some() {
            // The restored clocks must be reported before the first re-read row goes out.
            self.rebuild_clocks(now)?;
            return Ok(SourceStatus::Idle);
        }
        let before = batch.rows.len() + batch.dead_letters.len();
        let mut budget = max_rows;
        loop {
            // The rows of a message go out before the next message is read;
            // its offset counts as consumed once the last of them is out.
            while budget > 0
                && let Some(row) = self.pending.rows.pop_front()
            {
                let event_time = self.event_time(&row);
                self.clocks.observe(self.pending.slot, event_time, now);
                if let (Some(log), Some(offset)) = (self.commits.as_mut().and_then(|commits| commits.log.as_mut()), self.pending.offset) {
                    log.record(self.pending.slot, offset, event_time);
                }
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
        // After reading: librdkafka hands over its statistics while polled.
        self.refresh_lag(now);
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
        if self.replay.rebuild.is_some() {
            return Some(EventTimeProgress::Through(None));
        }
        Some(self.clocks.progress(Instant::now()))
    }

    fn seal_epoch(&mut self, epoch: Epoch) {
        let Some(commits) = self.commits.as_mut() else { return };
        if self.next_offsets != commits.last_sealed {
            commits.last_sealed.clone_from(&self.next_offsets);
            commits.sealed.push_back((epoch, self.next_offsets.clone()));
        }
        if let Some(log) = commits.log.as_mut() {
            log.seal(epoch, self.clocks.floor(Instant::now()));
        }
    }

    fn commit(&mut self, epoch: Epoch) -> Result<(), SourceError> {
        let Some(commits) = self.commits.as_mut() else { return Ok(()) };
        if let Some(message) = commits.committer.failure() {
            return Err(self.broker_error(message));
        }
        while let Some((sealed, _)) = commits.sealed.front()
            && *sealed <= epoch
        {
            commits.absorbed = commits.sealed.pop_front().expect("checked").1;
        }
        let now = Instant::now();
        let absorbed = commits.absorbed.clone();
        if let Some(positions) = commits.positions(epoch, absorbed)
            && !self.replay.pending(&positions.heads)
            && commits
                .absorbed_positions
                .back()
                .is_none_or(|(at, last)| now.saturating_duration_since(*at) >= POSITIONS_INTERVAL && *last != positions)
        {
            commits.absorbed_positions.push_back((now, positions));
        }
        if now.saturating_duration_since(commits.last_commit) < COMMIT_INTERVAL {
            return Ok(());
        }
        let mut due = None;
        while let Some((at, _)) = commits.absorbed_positions.front()
            && now.saturating_duration_since(*at) >= COMMIT_INTERVAL
        {
            due = commits.absorbed_positions.pop_front().map(|(_, positions)| positions);
        }
        if let Some(positions) = due.filter(|positions| *positions != commits.committed) {
            commits.last_commit = now;
            commits.committed = positions.clone();
            commits.committer.commit(positions);
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SourceError> {
        let Some(commits) = self.commits.as_mut() else { return Ok(()) };
        // Every row handed out has reached every output: all of it is absorbed.
        if let Some(log) = commits.log.as_mut() {
            log.seal(Epoch::MAX, self.clocks.floor(Instant::now()));
        }
        let Some(positions) = commits.positions(Epoch::MAX, self.next_offsets.clone()) else {
            return Ok(());
        };
        if self.replay.pending(&positions.heads) {
            return Ok(());
        }
        let result = commits.committer.flush(positions);
        result.map_err(|message| self.broker_error(message))
    }
}

impl Commits {
    /// What to commit once every output absorbed `epoch`, having read up to
    /// `heads` by then: `None` when the replay start cannot be, so that the
    /// group's offsets and the replay starts of the last commit stay a pair
    /// that a restart can rebuild its position from.
    fn positions(&mut self, epoch: Epoch, heads: Vec<Option<i64>>) -> Option<Positions> {
        let starts = match self.log.as_mut() {
            Some(log) => Some(log.starts(epoch, &heads)?),
            None => None,
        };
        Some(Positions { heads, starts })
    }
}
