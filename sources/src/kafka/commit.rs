//! Offset commits on a thread of their own, so a worker never waits on the
//! broker, and in order: a partition's read position (to the group) before
//! its replay start (to the replay group, see [`super::replay`]). A crash
//! between the two leaves the replay start of an earlier commit, which only
//! makes a restart read more again, never less.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// Offsets to commit, by position in the instance's partitions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Positions {
    /// Where the outputs' absorbed input ends: to the group.
    pub(crate) heads: Vec<Option<i64>>,
    /// Where a restart must read from: to the replay group, when one is kept.
    pub(crate) starts: Option<Vec<Option<i64>>>,
}

struct Request {
    positions: Positions,
    /// Told the outcome once the commit is done.
    done: Option<Sender<Result<(), String>>>,
}

/// The committing thread of one source instance.
///
/// Dropping it lets the thread finish what it was given, then end, without
/// waiting for it: an unreachable broker must not hold up a failing run.
pub(crate) struct Committer {
    requests: Sender<Request>,
    failure: Arc<Mutex<Option<String>>>,
}

/// The clients the thread commits with: one in the group, one in the replay group.
pub(crate) struct CommitClients {
    pub(crate) topic: String,
    pub(crate) partitions: Vec<i32>,
    pub(crate) group: BaseConsumer,
    pub(crate) replay: Option<BaseConsumer>,
}

impl Committer {
    /// Starts the thread.
    pub(crate) fn start(clients: CommitClients) -> Committer {
        let (requests, received) = mpsc::channel();
        let failure = Arc::new(Mutex::new(None));
        let thread_failure = failure.clone();
        thread::Builder::new()
            .name(format!("kafka-commit-{}", clients.topic))
            .spawn(move || run(&clients, &received, &thread_failure))
            .expect("the commit thread starts");
        Committer { requests, failure }
    }

    /// Queues a commit; a later one replaces it if the thread has not started on it.
    pub(crate) fn commit(&self, positions: Positions) {
        // The thread ends only when this handle drops its sender.
        let _ = self.requests.send(Request { positions, done: None });
    }

    /// Commits and waits until the broker has the offsets.
    pub(crate) fn flush(&self, positions: Positions) -> Result<(), String> {
        let stopped = || "the commit thread stopped".to_owned();
        let (done, outcome) = mpsc::channel();
        self.requests.send(Request { positions, done: Some(done) }).map_err(|_| stopped())?;
        outcome.recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// The first commit that failed, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().expect("commit failure").clone()
    }
}

fn run(clients: &CommitClients, received: &Receiver<Request>, failure: &Mutex<Option<String>>) {
    while let Ok(mut request) = received.recv() {
        // Only the newest positions matter; an older waiter is told with them.
        let mut waiting = Vec::new();
        while let Ok(newer) = received.try_recv() {
            waiting.extend(request.done.take());
            request = newer;
        }
        waiting.extend(request.done.take());
        let result = commit(clients, &request.positions);
        if let Err(message) = &result {
            failure.lock().expect("commit failure").get_or_insert_with(|| message.clone());
        }
        for done in waiting {
            let _ = done.send(result.clone());
        }
    }
}

fn commit(clients: &CommitClients, positions: &Positions) -> Result<(), String> {
    commit_offsets(clients, &clients.group, &positions.heads).map_err(|error| format!("committing offsets: {error}"))?;
    if let (Some(replay), Some(starts)) = (&clients.replay, &positions.starts) {
        commit_offsets(clients, replay, starts).map_err(|error| format!("committing replay starts: {error}"))?;
    }
    Ok(())
}

/// Commits the known `offsets` of the instance's partitions with `consumer`'s group.
fn commit_offsets(clients: &CommitClients, consumer: &BaseConsumer, offsets: &[Option<i64>]) -> rdkafka::error::KafkaResult<()> {
    let mut list = TopicPartitionList::new();
    for (&partition, offset) in clients.partitions.iter().zip(offsets) {
        if let Some(offset) = offset {
            list.add_partition_offset(&clients.topic, partition, Offset::Offset(*offset))?;
        }
    }
    if list.count() == 0 {
        return Ok(());
    }
    consumer.commit(&list, CommitMode::Sync)
}
