//! The durable outbox: every message to deliver, its state, the endpoints'
//! health and the audit trail, in one redb file.
//!
//! A message is written (and the transaction committed, so on disk) before
//! its first attempt, so a crash or a kill never loses one; a message whose
//! id is already in the outbox is not written again, so replaying the input
//! after a crash does not deliver twice. Its states:
//!
//! ```text
//!   pending ──2xx──▶ delivered ──(outbox.retention)──▶ pruned
//!      │  ▲
//!      │  └────────── replay
//!      └─last attempt fails──▶ dead
//! ```
//!
//! A pending message of a disabled endpoint stays pending ("parked") until
//! a replay re-enables the endpoint. Delivered messages and their attempts
//! are pruned when a run opens the outbox, once older than the table's
//! `outbox.retention`; dead and pending ones are kept.
//!
//! Tables (values are JSON, readable with any redb tool):
//! `messages` (id → [`MessageRecord`]), `bodies` (id → encoded event),
//! `pending` (id → endpoint, the run's work list), `attempts` (sequence →
//! [`AttemptRecord`]), `endpoints` (name → [`EndpointRecord`]) and `meta`
//! (counters).
//!
//! redb lets one process hold the file. Within a process, sinks naming the
//! same file share one handle ([`Outbox::open`]); another process (the
//! `carbonflow webhooks` commands while a run holds the file) gets
//! [`OutboxError::Busy`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::audit::{AttemptFilter, AttemptRecord, Outcome};
use super::event::NewMessage;

const MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("messages");
const BODIES: TableDefinition<&str, &[u8]> = TableDefinition::new("bodies");
const PENDING: TableDefinition<&str, &str> = TableDefinition::new("pending");
const ATTEMPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("attempts");
const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("endpoints");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The `meta` key of the next message sequence number.
const NEXT_SEQ: &str = "next-seq";

/// A message's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageState {
    /// Waiting for its next attempt (or for its endpoint to be re-enabled).
    Pending,
    /// Accepted by the partner.
    Delivered,
    /// Every scheduled attempt failed; waits for an operator's replay.
    Dead,
}

/// What the outbox knows of a message besides its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The endpoint (sink table) it goes to.
    pub endpoint: String,
    /// Its place in the order messages were written, which is the order they are first sent in.
    pub seq: u64,
    /// When it was written, Unix milliseconds.
    pub created_ms: i64,
    /// Its state.
    pub state: MessageState,
    /// Attempts made so far (since the last replay).
    pub attempts: u32,
    /// When a pending message's next attempt is due, Unix milliseconds.
    pub next_attempt_ms: i64,
    /// When it was delivered or died, Unix milliseconds.
    pub finished_ms: Option<i64>,
}

/// An endpoint: where its messages go and whether it is healthy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The URL, without credentials or query (which may hold tokens).
    pub url: String,
    /// Since when every attempt has failed, Unix milliseconds.
    pub failing_since_ms: Option<i64>,
    /// Set while the endpoint gets no requests.
    pub disabled: Option<Disabled>,
}

/// Why and since when an endpoint is disabled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Why, for a person.
    pub reason: String,
}

/// A pending message as the delivery loop schedules it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scheduled {
    pub(crate) id: String,
    pub(crate) seq: u64,
    pub(crate) attempts: u32,
    pub(crate) due_ms: i64,
}

/// An endpoint's counts, for `carbonflow webhooks status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointSummary {
    /// The endpoint's name (its sink table).
    pub name: String,
    /// Its record.
    pub record: EndpointRecord,
    /// Messages per state.
    pub messages: BTreeMap<MessageState, u64>,
    /// The earliest next attempt of its pending messages, Unix milliseconds.
    pub next_attempt_ms: Option<i64>,
}

/// Which messages a replay sends again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplaySelection {
    /// This message, dead or delivered.
    Message(String),
    /// Every dead message of this endpoint.
    Endpoint(String),
    /// Every dead message.
    AllDead,
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Messages made pending again.
    pub messages: usize,
    /// Endpoints that were disabled and are enabled again.
    pub enabled: Vec<String>,
}

/// The outbox could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Another process holds the file.
    #[error("outbox {path} is held by another process (a running carbonflow?); stop it first")]
    Busy {
        /// The file.
        path: String,
    },
    /// The file does not exist (and was asked not to be created).
    #[error("outbox {path} does not exist")]
    Missing {
        /// The file.
        path: String,
    },
    /// The file cannot be read or written.
    #[error("outbox {path}: {message}")]
    Storage {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A replay names a message the outbox does not hold, or one still pending.
    #[error("outbox {path}: {message}")]
    Replay {
        /// The file.
        path: String,
        /// Which message and why.
        message: String,
    },
}

/// An open outbox file.
pub struct Outbox {
    db: Database,
    path: PathBuf,
}

/// A failure of redb, as text: redb's own error type is too large to pass around.
struct StoreError(String);

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(error: E) -> StoreError {
        StoreError(error.into().to_string())
    }
}

type Stored<T> = Result<T, StoreError>;

/// The outboxes this process has open, by canonical path.
fn open_outboxes() -> &'static Mutex<HashMap<PathBuf, Weak<Outbox>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Outbox>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

impl Outbox {
    /// Opens (creating it and its directory if need be) the outbox at `path`,
    /// or shares the handle this process already has on it.
    pub fn open(path: &Path) -> Result<Arc<Outbox>, OutboxError> {
        let shown = path.display().to_string();
        let storage = |message: String| OutboxError::Storage { path: shown.clone(), message };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| storage(error.to_string()))?;
        }
        let canonical = canonical(path).map_err(|error| storage(error.to_string()))?;
        let mut open = open_outboxes().lock().expect("outbox registry");
        if let Some(outbox) = open.get(&canonical).and_then(Weak::upgrade) {
            return Ok(outbox);
        }
        let db = Database::create(path).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => OutboxError::Busy { path: shown.clone() },
            other => storage(other.to_string()),
        })?;
        let outbox = Arc::new(Outbox { db, path: path.to_owned() });
        outbox.create_tables().map_err(|error| outbox.error(error))?;
        open.retain(|_, outbox| outbox.strong_count() > 0);
        open.insert(canonical, Arc::downgrade(&outbox));
        Ok(outbox)
    }

    /// Opens an outbox that must already exist (for the operator's commands,
    /// so that a mistyped path is an error rather than a new empty file).
    pub fn open_existing(path: &Path) -> Result<Arc<Outbox>, OutboxError> {
        if !path.is_file() {
            return Err(OutboxError::Missing {
                path: path.display().to_string(),
            });
        }
        Outbox::open(path)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs redb work, naming the file in its error.
    fn stored<T>(&self, work: impl FnOnce() -> Stored<T>) -> Result<T, OutboxError> {
        work().map_err(|error| self.error(error))
    }

    fn error(&self, error: StoreError) -> OutboxError {
        OutboxError::Storage {
            path: self.path.display().to_string(),
            message: error.0,
        }
    }

    fn create_tables(&self) -> Stored<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(MESSAGES)?;
        txn.open_table(BODIES)?;
        txn.open_table(PENDING)?;
        txn.open_table(ATTEMPTS)?;
        txn.open_table(ENDPOINTS)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(())
    }

    /// Records the endpoint's URL (it may have changed since the last run)
    /// and gives what the outbox knows of its health.
    pub(crate) fn register_endpoint(&self, name: &str, url: &str) -> Result<EndpointRecord, OutboxError> {
        self.stored(|| -> Stored<EndpointRecord> {
            let txn = self.db.begin_write()?;
            let record = {
                let mut endpoints = txn.open_table(ENDPOINTS)?;
                let mut record: EndpointRecord = read_json(&endpoints, name)?.unwrap_or_default();
                record.url = url.to_owned();
                endpoints.insert(name, json(&record).as_slice())?;
                record
            };
            txn.commit()?;
            Ok(record)
        })
    }

    /// Writes the messages not already held, pending for `endpoint` and due
    /// at `now_ms`, and commits: when this returns they are on disk. Gives
    /// the new ones, in order.
    pub(crate) fn enqueue(&self, endpoint: &str, now_ms: i64, messages: &[NewMessage]) -> Result<Vec<Scheduled>, OutboxError> {
        self.stored(|| -> Stored<Vec<Scheduled>> {
            let txn = self.db.begin_write()?;
            let mut added = Vec::new();
            {
                let mut records = txn.open_table(MESSAGES)?;
                let mut bodies = txn.open_table(BODIES)?;
                let mut pending = txn.open_table(PENDING)?;
                let mut meta = txn.open_table(META)?;
                let mut seq = meta.get(NEXT_SEQ)?.map_or(0, |guard| guard.value());
                for message in messages {
                    if records.get(message.id.as_str())?.is_some() {
                        continue;
                    }
                    let record = MessageRecord {
                        endpoint: endpoint.to_owned(),
                        seq,
                        created_ms: now_ms,
                        state: MessageState::Pending,
                        attempts: 0,
                        next_attempt_ms: now_ms,
                        finished_ms: None,
                    };
                    records.insert(message.id.as_str(), json(&record).as_slice())?;
                    bodies.insert(message.id.as_str(), message.body.as_slice())?;
                    pending.insert(message.id.as_str(), endpoint)?;
                    added.push(Scheduled {
                        id: message.id.clone(),
                        seq,
                        attempts: 0,
                        due_ms: now_ms,
                    });
                    seq += 1;
                }
                meta.insert(NEXT_SEQ, seq)?;
            }
            if added.is_empty() {
                txn.abort()?;
            } else {
                txn.commit()?;
            }
            Ok(added)
        })
    }

    /// The pending messages of an endpoint, as a run starts.
    pub(crate) fn pending(&self, endpoint: &str) -> Result<Vec<Scheduled>, OutboxError> {
        self.stored(|| -> Stored<Vec<Scheduled>> {
            let txn = self.db.begin_read()?;
            let pending = txn.open_table(PENDING)?;
            let records = txn.open_table(MESSAGES)?;
            let mut scheduled = Vec::new();
            for entry in pending.iter()? {
                let (id, owner) = entry?;
                if owner.value() != endpoint {
                    continue;
                }
                let record: MessageRecord = read_json(&records, id.value())?.ok_or_else(|| corrupt(format!("pending message {} has no record", id.value())))?;
                scheduled.push(Scheduled {
                    id: id.value().to_owned(),
                    seq: record.seq,
                    attempts: record.attempts,
                    due_ms: record.next_attempt_ms,
                });
            }
            Ok(scheduled)
        })
    }

    /// The encoded event of a message.
    pub(crate) fn body(&self, id: &str) -> Result<Vec<u8>, OutboxError> {
        self.stored(|| -> Stored<Vec<u8>> {
            let txn = self.db.begin_read()?;
            let bodies = txn.open_table(BODIES)?;
            let body = bodies.get(id)?.ok_or_else(|| corrupt(format!("message {id} has no body")))?;
            Ok(body.value().to_vec())
        })
    }

    /// Appends attempts to the audit trail, moves their messages to their
    /// new states and stores the endpoint's health, in one transaction.
    pub(crate) fn record(&self, attempts: &[AttemptRecord], endpoints: &[(&str, &EndpointRecord)]) -> Result<(), OutboxError> {
        self.stored(|| -> Stored<()> {
            let txn = self.db.begin_write()?;
            {
                let mut log = txn.open_table(ATTEMPTS)?;
                let mut records = txn.open_table(MESSAGES)?;
                let mut pending = txn.open_table(PENDING)?;
                let first = log.last()?.map_or(0, |(key, _)| key.value() + 1);
                for (key, attempt) in (first..).zip(attempts) {
                    log.insert(key, json(attempt).as_slice())?;
                    let Some(mut record): Option<MessageRecord> = read_json(&records, &attempt.message)? else {
                        return Err(corrupt(format!("attempt of unknown message {}", attempt.message)));
                    };
                    record.attempts = attempt.attempt;
                    match attempt.outcome {
                        Outcome::Delivered | Outcome::Dead => {
                            record.state = if attempt.outcome == Outcome::Delivered {
                                MessageState::Delivered
                            } else {
                                MessageState::Dead
                            };
                            record.finished_ms = Some(attempt.at_ms);
                            pending.remove(attempt.message.as_str())?;
                        }
                        Outcome::Retry { at_ms } => record.next_attempt_ms = at_ms,
                        Outcome::Parked => record.next_attempt_ms = attempt.at_ms,
                    }
                    records.insert(attempt.message.as_str(), json(&record).as_slice())?;
                }
                let mut table = txn.open_table(ENDPOINTS)?;
                for (name, record) in endpoints {
                    table.insert(*name, json(record).as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
    }

    /// Removes delivered messages finished before `cutoff_ms`, with their
    /// bodies and attempts. Gives how many messages went.
    pub(crate) fn prune(&self, cutoff_ms: i64) -> Result<usize, OutboxError> {
        self.stored(|| -> Stored<usize> {
            let txn = self.db.begin_write()?;
            let removed = {
                let mut records = txn.open_table(MESSAGES)?;
                let mut expired = HashSet::new();
                for entry in records.iter()? {
                    let (id, value) = entry?;
                    let record: MessageRecord = parse_json(value.value())?;
                    if record.state == MessageState::Delivered && record.finished_ms.is_some_and(|at| at < cutoff_ms) {
                        expired.insert(id.value().to_owned());
                    }
                }
                let mut bodies = txn.open_table(BODIES)?;
                for id in &expired {
                    records.remove(id.as_str())?;
                    bodies.remove(id.as_str())?;
                }
                let mut log = txn.open_table(ATTEMPTS)?;
                let mut keep_error = None;
                log.retain(|_, value| match serde_json::from_slice::<AttemptRecord>(value) {
                    Ok(attempt) => !expired.contains(&attempt.message),
                    Err(error) => {
                        keep_error.get_or_insert(error);
                        true
                    }
                })?;
                if let Some(error) = keep_error {
                    return Err(corrupt(error.to_string()));
                }
                expired.len()
            };
            txn.commit()?;
            Ok(removed)
        })
    }

    /// A message's record.
    pub fn message(&self, id: &str) -> Result<Option<MessageRecord>, OutboxError> {
        self.stored(|| -> Stored<Option<MessageRecord>> {
            let txn = self.db.begin_read()?;
            read_json(&txn.open_table(MESSAGES)?, id)
        })
    }

    /// Every message with its record, in the order they were written.
    pub fn messages(&self) -> Result<Vec<(String, MessageRecord)>, OutboxError> {
        self.stored(|| -> Stored<Vec<(String, MessageRecord)>> {
            let txn = self.db.begin_read()?;
            let mut all = Vec::new();
            for entry in txn.open_table(MESSAGES)?.iter()? {
                let (id, value) = entry?;
                all.push((id.value().to_owned(), parse_json::<MessageRecord>(value.value())?));
            }
            all.sort_by_key(|(_, record)| record.seq);
            Ok(all)
        })
    }

    /// Every endpoint with its message counts, by name.
    pub fn endpoints(&self) -> Result<Vec<EndpointSummary>, OutboxError> {
        let mut summaries: BTreeMap<String, EndpointSummary> = BTreeMap::new();
        let records = self.stored(|| -> Stored<Vec<(String, EndpointRecord)>> {
            let txn = self.db.begin_read()?;
            let mut all = Vec::new();
            for entry in txn.open_table(ENDPOINTS)?.iter()? {
                let (name, value) = entry?;
                all.push((name.value().to_owned(), parse_json(value.value())?));
            }
            Ok(all)
        })?;
        for (name, record) in records {
            summaries.insert(
                name.clone(),
                EndpointSummary {
                    name,
                    record,
                    ..Default::default()
                },
            );
        }
        for (_, message) in self.messages()? {
            let summary = summaries.entry(message.endpoint.clone()).or_insert_with(|| EndpointSummary {
                name: message.endpoint.clone(),
                ..Default::default()
            });
            *summary.messages.entry(message.state).or_default() += 1;
            if message.state == MessageState::Pending {
                summary.next_attempt_ms = Some(summary.next_attempt_ms.map_or(message.next_attempt_ms, |at| at.min(message.next_attempt_ms)));
            }
        }
        Ok(summaries.into_values().collect())
    }

    /// The attempts `filter` selects, oldest first.
    pub fn attempts(&self, filter: &AttemptFilter) -> Result<Vec<AttemptRecord>, OutboxError> {
        self.stored(|| -> Stored<Vec<AttemptRecord>> {
            let txn = self.db.begin_read()?;
            let mut selected = Vec::new();
            for entry in txn.open_table(ATTEMPTS)?.iter()? {
                let (_, value) = entry?;
                let attempt: AttemptRecord = parse_json(value.value())?;
                if filter.matches(&attempt) {
                    selected.push(attempt);
                }
            }
            if let Some(last) = filter.last {
                selected.drain(..selected.len().saturating_sub(last));
            }
            Ok(selected)
        })
    }

    /// Makes the selected messages pending again with a fresh schedule, due
    /// at `now_ms`, and re-enables their endpoints. The next run delivers them.
    pub fn replay(&self, selection: &ReplaySelection, now_ms: i64) -> Result<ReplayReport, OutboxError> {
        let replay_error = |message: String| OutboxError::Replay {
            path: self.path.display().to_string(),
            message,
        };
        let chosen: Vec<(String, MessageRecord)> = match selection {
            ReplaySelection::Message(id) => {
                let record = self.message(id)?.ok_or_else(|| replay_error(format!("no message {id}")))?;
                if record.state == MessageState::Pending {
                    return Err(replay_error(format!("message {id} is still pending")));
                }
                vec![(id.clone(), record)]
            }
            ReplaySelection::Endpoint(endpoint) => {
                if !self.endpoints()?.iter().any(|summary| summary.name == *endpoint) {
                    return Err(replay_error(format!("no endpoint {endpoint}")));
                }
                self.messages()?
                    .into_iter()
                    .filter(|(_, record)| record.state == MessageState::Dead && record.endpoint == *endpoint)
                    .collect()
            }
            ReplaySelection::AllDead => self.messages()?.into_iter().filter(|(_, record)| record.state == MessageState::Dead).collect(),
        };
        let mut endpoints: Vec<&str> = chosen.iter().map(|(_, record)| record.endpoint.as_str()).collect();
        if let ReplaySelection::Endpoint(endpoint) = selection {
            endpoints.push(endpoint);
        }
        let enabled = self.stored(|| -> Stored<Vec<String>> {
            let txn = self.db.begin_write()?;
            let mut enabled = Vec::new();
            {
                let mut records = txn.open_table(MESSAGES)?;
                let mut pending = txn.open_table(PENDING)?;
                for (id, record) in &chosen {
                    let replayed = MessageRecord {
                        state: MessageState::Pending,
                        attempts: 0,
                        next_attempt_ms: now_ms,
                        finished_ms: None,
                        ..record.clone()
                    };
                    records.insert(id.as_str(), json(&replayed).as_slice())?;
                    pending.insert(id.as_str(), record.endpoint.as_str())?;
                }
                let mut table = txn.open_table(ENDPOINTS)?;
                for name in endpoints.iter().copied().collect::<HashSet<_>>() {
                    let Some(mut record): Option<EndpointRecord> = read_json(&table, name)? else {
                        continue;
                    };
                    if record.disabled.take().is_some() {
                        enabled.push(name.to_owned());
                    }
                    record.failing_since_ms = None;
                    table.insert(name, json(&record).as_slice())?;
                }
            }
            txn.commit()?;
            enabled.sort();
            Ok(enabled)
        })?;
        Ok(ReplayReport {
            messages: chosen.len(),
            enabled,
        })
    }
}

/// The path with its directory resolved (the file itself may not exist yet).
fn canonical(path: &Path) -> std::io::Result<PathBuf> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    Ok(parent.canonicalize()?.join(name))
}

fn json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise")
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Stored<T> {
    serde_json::from_slice(bytes).map_err(|error| corrupt(error.to_string()))
}

fn read_json<T: DeserializeOwned>(table: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Stored<Option<T>> {
    table.get(key)?.map(|value| parse_json(value.value())).transpose()
}

fn corrupt(message: String) -> StoreError {
    StoreError(format!("corrupted: {message}"))
}
