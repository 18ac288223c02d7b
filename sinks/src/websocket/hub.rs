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
//!
//! Views come and go while the server runs, as queries are submitted and
//! dropped. Each view gets a [`ViewId`] that is never reused, so a publisher
//! or subscription of a removed view can never reach a later view of the
//! same name. Removing a view ends its subscriptions (their connections send
//! `view_removed`) and frees its contents and history.
//!
//! Locks are taken in one order: the catalog of views, then one view, then a
//! subscription's pending changes.

use foldhash::{HashMap, HashSet};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

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
        view: ViewId,
        updates: Vec<(Row, Diff)>,
        frontier: Option<Millis>,
    },
    Frontier {
        view: ViewId,
        frontier: Millis,
    },
}

/// A view's identity for as long as it is served. Ids are never reused: one
/// held by a publisher or a subscription of a removed view finds nothing,
/// even when a later view takes the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewId(u64);

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
    view: ViewId,
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
    /// The view was removed: after these changes the subscription ends.
    pub removed: bool,
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
    pub fn view(&self) -> ViewId {
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
            removed: pending.removed,
        }
    }
}

struct ViewEntry {
    state: ViewState,
    subscribers: Vec<Arc<Subscription>>,
}

/// The views being served.
struct Catalog {
    /// Lower-cased names.
    names: HashMap<String, ViewId>,
    /// In the order they were added.
    views: BTreeMap<ViewId, Mutex<ViewEntry>>,
    next_id: u64,
    /// Past every version a removed view reached: a view added later starts
    /// here at the earliest, so a client's version of an earlier view of the
    /// same name is never taken for one of the new view.
    version_floor: u64,
}

/// The views and their subscribers.
pub struct Hub {
    catalog: RwLock<Catalog>,
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

// A panic while holding a hub lock is a bug; the data stays consistent
// enough to keep serving the other views.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Microseconds since the Unix epoch: where a new view's versions start, so
/// that versions of an earlier server run are never taken for this run's.
fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

impl Hub {
    /// A hub serving no view yet.
    pub fn new(limits: HubLimits) -> Hub {
        Hub {
            catalog: RwLock::new(Catalog {
                names: HashMap::default(),
                views: BTreeMap::new(),
                next_id: 0,
                version_floor: 0,
            }),
            limits,
            stats: HubStats::default(),
        }
    }

    /// Starts serving `views`, empty, each with versions from the current
    /// time in microseconds. Names are case-insensitive; when one is already
    /// served (or given twice) nothing is added.
    pub fn add_views(&self, views: Vec<ViewSchema>) -> Result<(), String> {
        let mut catalog = write(&self.catalog);
        let mut new_names = HashSet::default();
        for view in &views {
            let name = view.name.to_ascii_lowercase();
            if catalog.names.contains_key(&name) || !new_names.insert(name) {
                return Err(format!("a view named '{}' is already served", view.name));
            }
        }
        let first_version = now_micros().max(catalog.version_floor);
        for schema in views {
            let id = ViewId(catalog.next_id);
            catalog.next_id += 1;
            catalog.names.insert(schema.name.to_ascii_lowercase(), id);
            let entry = ViewEntry {
                state: ViewState::new(schema, first_version, self.limits.history),
                subscribers: Vec::new(),
            };
            catalog.views.insert(id, Mutex::new(entry));
        }
        Ok(())
    }

    /// Stops serving the named views (case-insensitive; unknown names are
    /// ignored). Each subscription of one is marked removed and its
    /// connection woken to send `view_removed`; the view's contents and
    /// history are freed, and its name is free for a later view.
    pub fn remove_views(&self, names: &[String]) {
        let mut catalog = write(&self.catalog);
        for name in names {
            let Some(id) = catalog.names.remove(&name.to_ascii_lowercase()) else {
                continue;
            };
            let entry = catalog.views.remove(&id).expect("a named view is in the catalog");
            let entry = entry.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
            catalog.version_floor = catalog.version_floor.max(entry.state.version() + 1);
            for subscription in &entry.subscribers {
                let mut pending = lock(&subscription.pending);
                pending.removed = true;
                drop(pending);
                subscription.connection.changed.notify_one();
            }
        }
    }

    /// The id of a view by name (case-insensitive).
    pub fn view_id(&self, name: &str) -> Option<ViewId> {
        read(&self.catalog).names.get(&name.to_ascii_lowercase()).copied()
    }

    /// A view's name, columns and key, while it is served.
    pub fn schema(&self, view: ViewId) -> Option<ViewSchema> {
        read(&self.catalog).views.get(&view).map(|entry| lock(entry).state.schema().clone())
    }

    /// Every view served, in the order they were added.
    pub fn views(&self) -> Vec<ViewSchema> {
        read(&self.catalog).views.values().map(|entry| lock(entry).state.schema().clone()).collect()
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
    /// `None` when the view is no longer served.
    pub fn subscribe(
        &self,
        view: ViewId,
        filter: RowFilter,
        resume_version: Option<u64>,
        connection: Arc<ConnectionSignal>,
    ) -> Option<(Arc<Subscription>, Start)> {
        let catalog = read(&self.catalog);
        let mut entry = lock(catalog.views.get(&view)?);
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
                removed: false,
            }),
            filter,
            connection,
        });
        entry.subscribers.push(subscription.clone());
        Some((subscription, start))
    }

    /// Ends a subscription (nothing to do when its view was removed).
    pub fn unsubscribe(&self, subscription: &Arc<Subscription>) {
        if let Some(entry) = read(&self.catalog).views.get(&subscription.view) {
            lock(entry).subscribers.retain(|s| !Arc::ptr_eq(s, subscription));
        }
    }

    /// Applies a publisher's event; one for a removed view is dropped.
    fn apply(&self, event: HubEvent) {
        let catalog = read(&self.catalog);
        match event {
            HubEvent::Batch { view, updates, frontier } => {
                let Some(entry) = catalog.views.get(&view) else { return };
                let mut entry = lock(entry);
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
                let Some(entry) = catalog.views.get(&view) else { return };
                let mut entry = lock(entry);
                entry.state.advance_frontier(frontier);
                let frontier = entry.state.frontier();
                for subscription in &entry.subscribers {
                    lock(&subscription.pending).frontier = frontier;
                }
            }
        }
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
    pub fn publisher(&self, view: ViewId) -> Publisher {
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
    view: ViewId,
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

#[cfg(test)]
mod tests {
    use carbonflow_core::{DataType, Datum, Field, Schema};

    use super::*;

    fn prices(name: &str) -> ViewSchema {
        ViewSchema {
            name: name.into(),
            schema: Schema::new(vec![Field::new("node", DataType::String), Field::new("price", DataType::Float)]),
            key: Some(vec![0]),
        }
    }

    fn tick(node: &str, price: f64) -> (Row, Diff) {
        (Row::new(vec![Datum::string(node), Datum::float(price)]), 1)
    }

    fn publish(hub: &Hub, view: ViewId, updates: Vec<(Row, Diff)>) {
        hub.apply(HubEvent::Batch { view, updates, frontier: None });
    }

    fn snapshot(hub: &Hub, view: ViewId) -> (Arc<Subscription>, Vec<Row>, u64) {
        match hub.subscribe(view, RowFilter::default(), None, Arc::default()).expect("the view is served") {
            (subscription, Start::Snapshot { rows, version, .. }) => (subscription, rows, version),
            (_, Start::Resume { .. }) => unreachable!("no resume was asked"),
        }
    }

    #[test]
    fn views_are_added_while_running_and_names_stay_unique() {
        let hub = Hub::new(HubLimits::default());
        hub.add_views(vec![prices("hub_prices")]).unwrap();
        let taken = hub.add_views(vec![prices("spreads"), prices("HUB_PRICES")]).unwrap_err();
        assert!(taken.contains("HUB_PRICES"), "{taken}");
        assert_eq!(hub.view_id("spreads"), None, "nothing of a refused batch is added");
        assert!(hub.add_views(vec![prices("a"), prices("A")]).is_err(), "a batch may not repeat a name");
        assert_eq!(hub.view_id("a"), None);

        hub.add_views(vec![prices("spreads")]).unwrap();
        let names: Vec<String> = hub.views().into_iter().map(|view| view.name).collect();
        assert_eq!(names, ["hub_prices", "spreads"], "in the order they were added");
        let spreads = hub.view_id("Spreads").unwrap();
        assert_ne!(spreads, hub.view_id("hub_prices").unwrap());
        assert_eq!(hub.schema(spreads).unwrap().name, "spreads");
    }

    #[test]
    fn a_removed_view_ends_its_subscriptions_frees_its_rows_and_gives_up_its_name() {
        let hub = Hub::new(HubLimits::default());
        hub.add_views(vec![prices("hub_prices"), prices("spreads")]).unwrap();
        let old = hub.view_id("hub_prices").unwrap();
        let spreads = hub.view_id("spreads").unwrap();
        publish(&hub, old, vec![tick("PJM-WEST", 40.0), tick("NYC", 51.0)]);
        let (watcher, rows, _) = snapshot(&hub, old);
        assert_eq!(rows.len(), 2);
        let (bystander, _, _) = snapshot(&hub, spreads);
        publish(&hub, old, vec![tick("ERCOT-N", 22.5)]);
        let old_version = lock(&watcher.pending).version;

        hub.remove_views(&["HUB_PRICES".to_owned(), "never_served".to_owned()]);
        let pending = watcher.take_pending(&prices("hub_prices"));
        assert!(pending.removed, "the subscription learns that its view is gone");
        assert_eq!(pending.changes.len(), 1, "what was pending still goes out first");
        assert!(!bystander.take_pending(&prices("spreads")).removed, "other views are untouched");
        assert_eq!(hub.view_id("hub_prices"), None);
        assert!(hub.schema(old).is_none() && hub.subscribe(old, RowFilter::default(), None, Arc::default()).is_none());
        hub.unsubscribe(&watcher);

        // The name is free again; the new view starts empty, with versions past the old view's,
        // and the removed view's publisher cannot reach it.
        hub.add_views(vec![prices("hub_prices")]).unwrap();
        let new = hub.view_id("hub_prices").unwrap();
        assert_ne!(new, old, "ids are never reused");
        publish(&hub, old, vec![tick("STALE", 1.0)]);
        let (_, rows, version) = snapshot(&hub, new);
        assert!(rows.is_empty(), "{rows:?}");
        assert!(version > old_version, "version {version} follows the removed view's {old_version}");
        publish(&hub, new, vec![tick("PJM-WEST", 41.0)]);
        assert_eq!(snapshot(&hub, new).1, vec![tick("PJM-WEST", 41.0).0]);
    }

    #[test]
    fn removing_a_view_wakes_the_connections_of_its_subscribers() {
        let hub = Hub::new(HubLimits::default());
        hub.add_views(vec![prices("hub_prices")]).unwrap();
        let signal = Arc::new(ConnectionSignal::default());
        let view = hub.view_id("hub_prices").unwrap();
        let _subscription = hub.subscribe(view, RowFilter::default(), None, signal.clone()).unwrap();
        hub.remove_views(&["hub_prices".to_owned()]);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let woken = runtime.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(5), signal.changed.notified()).await });
        assert!(woken.is_ok(), "the connection was notified");
    }
}
