//! The hub between the dataflow and the connections.
//!
//! Publishers ([`Publisher`], one [`Sink`] per view on worker 0) send each
//! epoch's changes through one bounded channel; the hub task applies them to
//! the views ([`ViewState`]) and merges each version's changes into the
//! pending changes of every subscription, then wakes its connection. A
//! connection drains whatever is pending into one diff per subscription, so a
//! slow reader gets its changes conflated by key instead of queued; once a
//! subscription's pending changes exceed the bound the connection is told to
//! close. Worker threads thus never wait on a socket, and server memory is the
//! views, their bounded histories and at most the bound per subscription.

use foldhash::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use carbonflow_core::{Diff, Epoch, Millis, Row, Watermark};
use tokio::sync::{Notify, mpsc};

use super::view::{Changes, RowFilter, ViewSchema, ViewState};
use crate::{Sink, SinkError};

/// Bounds that keep the server's memory finite.
#[derive(Clone, Copy, Debug)]
pub struct HubLimits {
    /// Changed keys or rows a view keeps of its recent versions for resumes.
    pub history: usize,
    /// Changed keys or rows a subscription may have pending before its
    /// connection is closed as a slow consumer.
    pub pending: usize,
    /// Batches queued between the publishers and the hub.
    pub channel: usize,
    /// Open connections; more are refused (HTTP 503).
    pub connections: usize,
    /// Subscriptions on one connection; more are refused (`too_many_subscriptions`).
    pub subscriptions_per_connection: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            history: 100_000,
            pending: 50_000,
            channel: 1024,
            connections: 1024,
            subscriptions_per_connection: 64,
        }
    }
}

/// What publishers send to the hub. A batch travels with the frontier of its
/// epoch, so a version and its frontier are applied together.
enum HubEvent {
    Batch {
        view: usize,
        updates: Vec<(Row, Diff)>,
        frontier: Option<Millis>,
    },
    Frontier {
        view: usize,
        frontier: Millis,
    },
}

/// Counters of the hub, for tests, metrics and logs.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Versions applied over all views.
    pub versions: AtomicU64,
    /// Connections closed because they read too slowly.
    pub slow_consumers_dropped: AtomicU64,
    /// The most changes any subscription had pending at once.
    pub max_pending: AtomicUsize,
}

/// The pending state of one subscription, shared by the hub and its connection.
pub struct Subscription {
    view: usize,
    filter: RowFilter,
    pending: Mutex<Pending>,
    connection: Arc<ConnectionSignal>,
}

/// What a subscription has not sent yet.
pub struct Pending {
    /// Changes since the last message, conflated by key or row.
    pub changes: Changes,
    /// The view version the changes lead to.
    pub version: u64,
    /// The view's frontier at that version.
    pub frontier: Option<Millis>,
}

/// Wakes a connection's task: new changes, or "close: too slow".
#[derive(Default)]
pub struct ConnectionSignal {
    /// Something is pending.
    pub changed: Notify,
    /// Set once a subscription's pending changes outgrew the bound.
    pub overflowed: AtomicBool,
    /// Notified with `overflowed`, to interrupt a send stuck on a full socket.
    pub overflow: Notify,
}

impl Subscription {
    /// The view subscribed to.
    pub fn view(&self) -> usize {
        self.view
    }

    /// Takes what is pending, leaving no changes (the version and frontier stay).
    pub fn take_pending(&self, view: &ViewSchema) -> Pending {
        let mut pending = lock(&self.pending);
        let changes = std::mem::replace(&mut pending.changes, Changes::empty(view));
        Pending {
            changes,
            version: pending.version,
            frontier: pending.frontier,
        }
    }
}

struct ViewEntry {
    state: ViewState,
    subscribers: Vec<Arc<Subscription>>,
}

/// The views and their subscribers.
pub struct Hub {
    names: HashMap<String, usize>,
    views: Vec<Mutex<ViewEntry>>,
    limits: HubLimits,
    stats: HubStats,
}

/// What a new subscription starts with.
pub enum Start {
    /// Send the snapshot, at the view's version and frontier.
    Snapshot {
        /// The rows passing the filter.
        rows: Vec<Row>,
        /// The view version.
        version: u64,
        /// The view's frontier.
        frontier: Option<Millis>,
    },
    /// The resumed client is missing these changes (possibly none): send them
    /// as the next diff, or a heartbeat when there are none.
    Resume {
        /// The missed changes, filtered.
        changes: Changes,
        /// The view version they lead to.
        version: u64,
        /// The view's frontier.
        frontier: Option<Millis>,
    },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a hub lock is a bug; the data stays consistent
    // enough to keep serving the other views.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// A hub over these views; versions start at `first_version` (the
    /// server's start time in microseconds, so that versions of an earlier
    /// server run are never taken for this run's).
    pub fn new(views: Vec<ViewSchema>, limits: HubLimits, first_version: u64) -> Hub {
        Hub {
            names: views.iter().enumerate().map(|(index, view)| (view.name.to_ascii_lowercase(), index)).collect(),
            views: views
                .into_iter()
                .map(|schema| {
                    Mutex::new(ViewEntry {
                        state: ViewState::new(schema, first_version, limits.history),
                        subscribers: Vec::new(),
                    })
                })
                .collect(),
            limits,
            stats: HubStats::default(),
        }
    }

    /// The index of a view by name (case-insensitive).
    pub fn view_index(&self, name: &str) -> Option<usize> {
        self.names.get(&name.to_ascii_lowercase()).copied()
    }

    /// A view's name, columns and key.
    pub fn schema(&self, view: usize) -> ViewSchema {
        lock(&self.views[view]).state.schema().clone()
    }

    /// The memory bounds.
    pub fn limits(&self) -> HubLimits {
        self.limits
    }

    /// The counters.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    /// Registers a subscription atomically with its starting point, so no
    /// change falls between the snapshot (or the replayed changes) and the
    /// first diff. With `resume_version` the client's missed changes are
    /// replayed from the view's history when it still reaches back that far.
    pub fn subscribe(&self, view: usize, filter: RowFilter, resume_version: Option<u64>, connection: Arc<ConnectionSignal>) -> (Arc<Subscription>, Start) {
        let mut entry = lock(&self.views[view]);
        let state = &entry.state;
        let (version, frontier) = (state.version(), state.frontier());
        let start = match resume_version.and_then(|v| state.changes_since(v, &filter)) {
            Some(changes) => Start::Resume { changes, version, frontier },
            None => Start::Snapshot {
                rows: state.snapshot(&filter),
                version,
                frontier,
            },
        };
        let subscription = Arc::new(Subscription {
            view,
            pending: Mutex::new(Pending {
                changes: Changes::empty(state.schema()),
                version,
                frontier,
            }),
            filter,
            connection,
        });
        entry.subscribers.push(subscription.clone());
        (subscription, start)
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, subscription: &Arc<Subscription>) {
        lock(&self.views[subscription.view]).subscribers.retain(|s| !Arc::ptr_eq(s, subscription));
    }

    fn apply(&self, event: HubEvent) {
        match event {
            HubEvent::Batch { view, updates, frontier } => {
                let mut entry = lock(&self.views[view]);
                let ViewEntry { state, subscribers } = &mut *entry;
                state.apply(&updates);
                if let Some(frontier) = frontier {
                    state.advance_frontier(frontier);
                }
                let changes = state.latest_changes().expect("a version was just applied");
                self.stats.versions.fetch_add(1, Ordering::Relaxed);
                let (version, frontier) = (state.version(), state.frontier());
                for subscription in subscribers.iter() {
                    let mut pending = lock(&subscription.pending);
                    pending.changes.merge(changes, state.schema(), &subscription.filter);
                    pending.version = version;
                    pending.frontier = frontier;
                    let size = pending.changes.len();
                    self.stats.max_pending.fetch_max(size, Ordering::Relaxed);
                    if size > self.limits.pending {
                        // The connection is closed; what it missed need not be kept.
                        pending.changes = Changes::empty(state.schema());
                        subscription.connection.overflowed.store(true, Ordering::Release);
                        subscription.connection.overflow.notify_one();
                    }
                    subscription.connection.changed.notify_one();
                }
            }
            HubEvent::Frontier { view, frontier } => {
                let mut entry = lock(&self.views[view]);
                entry.state.advance_frontier(frontier);
                let frontier = entry.state.frontier();
                for subscription in &entry.subscribers {
                    lock(&subscription.pending).frontier = frontier;
                }
            }
        }
    }

    /// The current version and frontier of a view.
    pub fn position(&self, view: usize) -> (u64, Option<Millis>) {
        let entry = lock(&self.views[view]);
        (entry.state.version(), entry.state.frontier())
    }
}

/// The publishers' side of the channel and the hub's receiving task.
pub struct HubChannel {
    sender: mpsc::Sender<HubEvent>,
}

impl HubChannel {
    /// Starts the task that applies published changes to `hub`. It ends when
    /// every [`HubChannel`] and [`Publisher`] is dropped, after applying all
    /// that was sent.
    pub fn spawn(hub: Arc<Hub>, runtime: &tokio::runtime::Handle) -> (HubChannel, tokio::task::JoinHandle<()>) {
        let (sender, mut receiver) = mpsc::channel(hub.limits.channel);
        let task = runtime.spawn(async move {
            while let Some(event) = receiver.recv().await {
                hub.apply(event);
            }
        });
        (HubChannel { sender }, task)
    }

    /// A sink that publishes the changes of view `view`.
    pub fn publisher(&self, view: usize) -> Publisher {
        Publisher {
            view,
            sender: self.sender.clone(),
            frontier: None,
            batch: None,
        }
    }
}

/// Publishes one view's changes to the hub (runs on worker 0). The engine
/// calls `on_progress` right after `on_batch` for the same epoch; the batch
/// waits for it so that it reaches the hub with its frontier.
pub struct Publisher {
    view: usize,
    sender: mpsc::Sender<HubEvent>,
    frontier: Option<Millis>,
    batch: Option<Vec<(Row, Diff)>>,
}

impl Publisher {
    fn send(&self, event: HubEvent) -> Result<(), SinkError> {
        // Blocks only while the hub is behind by a full channel, never on a socket.
        self.sender.blocking_send(event).map_err(|_| SinkError::Closed {
            path: "websocket server".into(),
        })
    }

    fn send_batch(&mut self) -> Result<(), SinkError> {
        match self.batch.take() {
            Some(updates) => self.send(HubEvent::Batch {
                view: self.view,
                updates,
                frontier: self.frontier,
            }),
            None => Ok(()),
        }
    }
}

impl Sink for Publisher {
    fn on_batch(&mut self, _epoch: Epoch, updates: &[(Row, Diff)]) -> Result<(), SinkError> {
        self.send_batch()?;
        self.batch = Some(updates.to_vec());
        Ok(())
    }

    fn on_progress(&mut self, _epoch: Epoch, watermark: Watermark) -> Result<(), SinkError> {
        let advanced = watermark != Watermark::MIN && self.frontier != Some(watermark.0);
        if advanced {
            self.frontier = Some(watermark.0);
        }
        if self.batch.is_some() {
            self.send_batch()
        } else if advanced {
            self.send(HubEvent::Frontier {
                view: self.view,
                frontier: watermark.0,
            })
        } else {
            Ok(())
        }
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.send_batch()
    }
}
