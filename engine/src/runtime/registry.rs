//! What this process knows of its queries: for the control API, the metrics
//! and the runtime's own bookkeeping.
//!
//! Every worker thread of the process reports into the same [`Registry`]: it
//! marks a query built and, later, finished; it counts rows in and out and
//! records its sources' watermarks. The control API reads it, and waits on it
//! until a submitted query is built.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use carbonflow_core::{Epoch, Millis, metrics};

use super::RunFailure;
use crate::dataflow::RunFailureSlot;
use crate::plan::Program;

/// Where a query is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryStatus {
    /// Submitted; the workers are building its dataflow.
    Starting,
    /// Built; reading its sources.
    Running,
    /// Its sources are exhausted (or the run was stopped) and every output drained.
    Finished,
    /// A source, sink or model failed; the dataflow was dropped.
    Failed,
}

impl QueryStatus {
    /// The label of the `carbonflow_queries` gauge.
    pub fn label(self) -> &'static str {
        match self {
            QueryStatus::Starting => "starting",
            QueryStatus::Running => "running",
            QueryStatus::Finished => "finished",
            QueryStatus::Failed => "failed",
        }
    }
}

/// One query as the process's workers share it.
pub struct QueryShared {
    /// The name it runs under.
    pub name: String,
    /// The checked program.
    pub program: Arc<Program>,
    /// The query file's text, when it came through the control API or a file.
    pub sql: Option<String>,
    /// The first failure of any worker.
    pub failure: Arc<RunFailureSlot>,
    /// Rows read by this process's workers.
    pub rows_in: AtomicU64,
    /// Changes handed to this process's sinks.
    pub rows_out: AtomicU64,
    /// When each epoch was first sealed by a worker of this process, for the
    /// ingest-to-emit latency of the sinks; trimmed as outputs absorb epochs.
    pub sealed_at: Mutex<BTreeMap<Epoch, Instant>>,
    /// When the query was installed.
    pub started_at: SystemTime,
    state: Mutex<QueryState>,
}

struct QueryState {
    status: QueryStatus,
    built: usize,
    finished: usize,
    /// Per source table, per local worker: the watermark it last reported.
    watermarks: BTreeMap<String, Vec<Option<Millis>>>,
    /// (when, rows in, rows out), the last few seconds, for rates.
    samples: VecDeque<(Instant, u64, u64)>,
}

impl std::fmt::Debug for QueryShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryShared")
            .field("name", &self.name)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl QueryShared {
    /// The status now.
    pub fn status(&self) -> QueryStatus {
        self.lock().status
    }

    fn lock(&self) -> MutexGuard<'_, QueryState> {
        self.state.lock().expect("query state")
    }

    /// Records the ingest instant of an epoch (the first worker to seal it wins).
    pub fn sealed(&self, epoch: Epoch) {
        self.sealed_at.lock().expect("sealed epochs").entry(epoch).or_insert_with(Instant::now);
    }

    /// The ingest instant of an epoch, if still known.
    pub fn ingest_instant(&self, epoch: Epoch) -> Option<Instant> {
        self.sealed_at.lock().expect("sealed epochs").get(&epoch).copied()
    }

    /// Forgets the ingest instants of epochs up to `absorbed`, which every output has passed.
    pub fn absorbed(&self, absorbed: Epoch) {
        let mut sealed = self.sealed_at.lock().expect("sealed epochs");
        *sealed = sealed.split_off(&(absorbed + 1));
    }

    /// Records a worker's watermark of a source.
    pub fn report_watermark(&self, source: &str, local_worker: usize, workers: usize, watermark: Millis) {
        let mut state = self.lock();
        let slots = state.watermarks.entry(source.to_owned()).or_insert_with(|| vec![None; workers]);
        slots[local_worker] = Some(watermark);
    }

    /// Per source: the lag of the slowest local worker's watermark behind the wall clock.
    pub fn watermark_lag(&self) -> BTreeMap<String, Millis> {
        let now = chrono::Utc::now().timestamp_millis();
        self.lock()
            .watermarks
            .iter()
            .filter_map(|(source, slots)| {
                let slowest = slots.iter().map(|slot| slot.unwrap_or(Millis::MIN)).min()?;
                (slowest > Millis::MIN && slowest < Millis::MAX).then(|| (source.clone(), now.saturating_sub(slowest).max(0)))
            })
            .collect()
    }

    /// Rows in and out per second over the last few seconds.
    pub fn rates(&self) -> (f64, f64) {
        let state = self.lock();
        match (state.samples.front(), state.samples.back()) {
            (Some(first), Some(last)) if last.0 > first.0 => {
                let seconds = (last.0 - first.0).as_secs_f64();
                ((last.1 - first.1) as f64 / seconds, (last.2 - first.2) as f64 / seconds)
            }
            _ => (0.0, 0.0),
        }
    }

    /// Takes a rate sample and refreshes the watermark-lag gauges.
    fn sample(&self) {
        let now = Instant::now();
        let sample = (now, self.rows_in.load(Ordering::Relaxed), self.rows_out.load(Ordering::Relaxed));
        {
            let mut state = self.lock();
            state.samples.push_back(sample);
            while state.samples.front().is_some_and(|first| now - first.0 > RATE_WINDOW) {
                state.samples.pop_front();
            }
        }
        for (source, lag) in self.watermark_lag() {
            metrics::WATERMARK_LAG.with_label_values(&[self.name.as_str(), source.as_str()]).set(lag / 1000);
        }
    }
}

/// The span rates are averaged over.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// The queries of this process.
#[derive(Default)]
pub struct Registry {
    queries: Mutex<BTreeMap<String, Arc<QueryShared>>>,
    changed: Condvar,
}

/// Why a query could not be registered.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// A query of that name exists.
    #[error("a query named '{0}' exists; drop it first or choose another name")]
    Name(String),
    /// Another query publishes a view of that name.
    #[error("query '{query}' already publishes a view named '{view}'")]
    View {
        /// The other query.
        query: String,
        /// The view.
        view: String,
    },
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<QueryShared>>> {
        self.queries.lock().expect("query registry")
    }

    /// Registers a query as starting, unless its name or one of its published names is taken.
    pub fn register(&self, name: &str, program: Arc<Program>, sql: Option<String>) -> Result<Arc<QueryShared>, Conflict> {
        let mut queries = self.lock();
        if queries.contains_key(name) {
            return Err(Conflict::Name(name.to_owned()));
        }
        let published = crate::serve::subscribable_views(&program);
        for other in queries.values() {
            let taken = crate::serve::subscribable_views(&other.program);
            if let Some(view) = published.iter().find(|view| taken.iter().any(|t| t.name.eq_ignore_ascii_case(&view.name))) {
                return Err(Conflict::View {
                    query: other.name.clone(),
                    view: view.name.clone(),
                });
            }
        }
        let shared = Arc::new(QueryShared {
            name: name.to_owned(),
            program,
            sql,
            failure: Arc::new(RunFailureSlot::default()),
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            sealed_at: Mutex::new(BTreeMap::new()),
            started_at: SystemTime::now(),
            state: Mutex::new(QueryState {
                status: QueryStatus::Starting,
                built: 0,
                finished: 0,
                watermarks: BTreeMap::new(),
                samples: VecDeque::new(),
            }),
        });
        queries.insert(name.to_owned(), shared.clone());
        drop(queries);
        refresh_status_gauge_with(self);
        Ok(shared)
    }

    /// The query of that name.
    pub fn get(&self, name: &str) -> Option<Arc<QueryShared>> {
        self.lock().get(name).cloned()
    }

    /// Every query, by name.
    pub fn all(&self) -> Vec<Arc<QueryShared>> {
        self.lock().values().cloned().collect()
    }

    /// Forgets a query (dropped, or failed before it was built) and its metric series.
    pub fn remove(&self, name: &str) -> Option<Arc<QueryShared>> {
        let removed = self.lock().remove(name);
        if let Some(query) = &removed {
            for table in query.program.tables.iter() {
                let _ = metrics::SOURCE_ROWS.remove_label_values(&[name, table.name()]);
                let _ = metrics::SINK_CHANGES.remove_label_values(&[name, table.name()]);
                let _ = metrics::WATERMARK_LAG.remove_label_values(&[name, table.name()]);
            }
            for view in query.program.views.iter() {
                let _ = metrics::SINK_CHANGES.remove_label_values(&[name, view.name.as_str()]);
            }
        }
        self.changed.notify_all();
        refresh_status_gauge_with(self);
        removed
    }

    /// A worker built its part of the query; with all `workers` built it runs.
    pub fn built(&self, query: &QueryShared, workers: usize) {
        let mut state = query.lock();
        state.built += 1;
        if state.built == workers && state.status == QueryStatus::Starting {
            state.status = QueryStatus::Running;
        }
        drop(state);
        self.changed.notify_all();
        refresh_status_gauge_with(self);
    }

    /// A worker finished the query; with all `workers` finished it is finished (or failed).
    pub fn finished(&self, query: &QueryShared, workers: usize) {
        let mut state = query.lock();
        state.finished += 1;
        if state.finished == workers {
            state.status = if query.failure.is_set() { QueryStatus::Failed } else { QueryStatus::Finished };
        }
        drop(state);
        self.changed.notify_all();
        refresh_status_gauge_with(self);
    }

    /// Marks a query failed at once (its dataflow is being dropped).
    pub fn failed(&self, query: &QueryShared, failure: RunFailure) {
        query.failure.set(failure);
        query.lock().status = QueryStatus::Failed;
        self.changed.notify_all();
        refresh_status_gauge_with(self);
    }

    /// Waits until `ready` holds for the query (or it is gone), at most `timeout`.
    pub fn wait_for(&self, name: &str, timeout: Duration, ready: impl Fn(QueryStatus) -> bool) -> Option<QueryStatus> {
        let deadline = Instant::now() + timeout;
        let mut queries = self.lock();
        loop {
            let status = queries.get(name).map(|query| query.status());
            if status.is_none_or(&ready) {
                return status;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return status;
            }
            queries = self.changed.wait_timeout(queries, left).expect("query registry").0;
        }
    }

    /// Whether every query has finished or failed.
    pub fn all_done(&self) -> bool {
        self.lock()
            .values()
            .all(|query| matches!(query.status(), QueryStatus::Finished | QueryStatus::Failed))
    }

    /// Takes rate samples and refreshes the gauges (called about twice a second).
    pub fn sample(&self) {
        for query in self.all() {
            query.sample();
        }
    }
}

fn refresh_status_gauge_with(registry: &Registry) {
    let mut counts: BTreeMap<&'static str, i64> = [QueryStatus::Starting, QueryStatus::Running, QueryStatus::Finished, QueryStatus::Failed]
        .into_iter()
        .map(|status| (status.label(), 0))
        .collect();
    for query in registry.all() {
        *counts.entry(query.status().label()).or_default() += 1;
    }
    for (label, count) in counts {
        metrics::QUERIES.with_label_values(&[label]).set(count);
    }
}
