//! One worker thread: the queries it runs and the loop that drives them.
//!
//! Every worker of every process applies the same [`Command`]s in the same
//! order: they travel through timely's [`Sequencer`], which is how a query
//! submitted to one process's control API is built by all workers of the
//! cluster, each building the same dataflows in the same order as timely
//! requires. The first worker of each process feeds the commands its process
//! received into the sequencer.
//!
//! Per query, the worker loop polls each source for a batch, feeds the rows
//! in at the query's current epoch, reports each source's watermark, seals
//! the epoch with the sources, advances it and steps the dataflows. At most
//! [`MAX_EPOCHS_IN_FLIGHT`] epochs of a query may be unfinished, which bounds
//! memory when sources outrun the operators. When a query's sources are
//! exhausted (or a stop was asked for) its inputs close and the query
//! finishes once every output has drained.
//!
//! A source's watermark is its event-time progress minus the declared delay:
//! the largest event time seen, or the source's own account when it tracks
//! several streams (Kafka partitions, see
//! [`carbonflow_sources::Source::event_time_progress`]); `MAX` once a bounded
//! source is exhausted. An instance whose streams are all idle reports itself
//! idle and holds no operator back.
//!
//! As the outputs absorb epochs (the probe passes them), each source is told
//! so ([`carbonflow_sources::Source::commit`]) and may acknowledge its input
//! upstream; after a query drained without a failure, each source is closed,
//! acknowledging everything it read. A query that fails is dropped by every
//! worker (a sequenced [`Command::Abort`]) and acknowledges nothing more, so a
//! restart re-reads what may not have been written.
//!
//! The watermark an operator sees for an epoch is the one reported at the end
//! of the previous epoch, so which rows are late depends only on the order and
//! batching of the input, never on thread timing: runs are reproducible.
//! Idle timeouts are the exception: they follow the wall clock by design.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use carbonflow_core::{Diff, Epoch, Millis, Row, Watermark, metrics};
use carbonflow_operators::dataflow::WatermarkUpdate;
use carbonflow_sinks::Sink;
use carbonflow_sources::{EventTimeProgress, SourceBatch, SourceContext, SourceStatus, create_source};
use differential_dataflow::input::InputSession;
use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely::synchronization::Sequencer;
use timely::worker::Worker;

use super::registry::QueryShared;
use super::{MAX_EPOCHS_IN_FLIGHT, RunFailure, Shared, connector_view, print_config};
use crate::dataflow::{BuildContext, build};
use crate::plan::OutputTarget;

/// What every worker applies, in the order the sequencer gives.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// Build and start a query. A process that registered the query (its own
    /// submission, or the file it was started with) takes it from its
    /// registry; another process parses `sql`.
    Install {
        /// The query's name.
        name: String,
        /// The query file's text.
        sql: Option<String>,
    },
    /// Drop a query's dataflow, freeing its state.
    Drop {
        /// The query's name.
        name: String,
    },
    /// A worker saw the query fail: every worker drops its dataflow.
    Abort {
        /// The query's name.
        name: String,
    },
    /// A process has no query left to run and is ready to leave; the workers
    /// leave once every process is.
    Leave {
        /// The process.
        process: usize,
    },
}

/// A source instance on this worker.
pub(super) struct SourceState {
    table: usize,
    name: String,
    pub(super) source: Box<dyn carbonflow_sources::Source>,
    finished: bool,
    /// Stopped by a stop request rather than exhausted: its watermark stays.
    interrupted: bool,
    time_column: Option<usize>,
    delay: Millis,
    max_event_time: Option<Millis>,
    /// The last watermark sent, and whether it said idle.
    reported: Option<(Millis, bool)>,
    rows_metric: metrics::IntCounter,
}

impl SourceState {
    /// The watermark to report, and whether the instance is idle.
    fn watermark(&self) -> (Millis, bool) {
        if self.finished && !self.interrupted {
            return (Watermark::MAX.0, false);
        }
        let delayed = |time: Option<Millis>| time.map_or(Millis::MIN, |t| t.saturating_sub(self.delay));
        match self.source.event_time_progress() {
            None => (delayed(self.max_event_time), false),
            Some(EventTimeProgress::Through(time)) => (delayed(time), false),
            Some(EventTimeProgress::Idle(time)) => (delayed(time), true),
        }
    }

    fn failure(&self, error: carbonflow_sources::SourceError) -> RunFailure {
        RunFailure::Source {
            table: self.name.clone(),
            message: error.to_string(),
        }
    }
}

/// A query's inputs on one worker: a session per source table, and the watermark reports.
type QueryInputs = (BTreeMap<usize, InputSession<Epoch, Row, Diff>>, InputHandleVec<Epoch, WatermarkUpdate>);

/// A query as one worker runs it.
struct QueryRun {
    shared: Arc<QueryShared>,
    /// timely's identifier of its dataflow.
    dataflow: usize,
    /// The inputs, until the sources are done.
    inputs: Option<QueryInputs>,
    probe: ProbeHandle<Epoch>,
    sources: Vec<SourceState>,
    /// Where its sources' bad records go, counted under its name.
    dead_letters: super::DeadLetters,
    epoch: Epoch,
    committed: Option<Epoch>,
    /// This worker asked every worker to drop the failed query.
    abort_announced: bool,
}

impl QueryRun {
    fn name(&self) -> &str {
        &self.shared.name
    }

    /// Reads a batch from each source, reports watermarks and seals an epoch;
    /// closes the inputs once every source is done. Whether a source had more ready.
    fn feed(&mut self, shared: &Shared, worker_index: usize, local_index: usize, batch: &mut SourceBatch) -> bool {
        let Some((inputs, watermarks)) = self.inputs.as_mut() else {
            return false;
        };
        let stopping = shared.options.stop.load(Ordering::Relaxed);
        let failure = &self.shared.failure;
        let mut any_ready = false;
        for state in self.sources.iter_mut().filter(|s| !s.finished) {
            if stopping || failure.is_set() {
                state.finished = true;
                state.interrupted = true;
                continue;
            }
            batch.clear();
            let status = match state.source.poll(batch, shared.options.batch_size) {
                Ok(status) => status,
                Err(error) => {
                    failure.set(state.failure(error));
                    SourceStatus::Finished
                }
            };
            let input = inputs.get_mut(&state.table).expect("an input per source");
            let rows = batch.rows.len() as u64;
            self.shared.rows_in.fetch_add(rows, Ordering::Relaxed);
            state.rows_metric.inc_by(rows);
            for row in batch.rows.drain(..) {
                if let Some(ts) = state.time_column.and_then(|c| row.get(c).as_timestamp()) {
                    state.max_event_time = Some(state.max_event_time.map_or(ts, |m| m.max(ts)));
                }
                input.update(row, 1);
            }
            batch.dead_letters.drain(..).for_each(|letter| self.dead_letters.push(letter));
            match status {
                SourceStatus::Ready => any_ready = true,
                SourceStatus::Idle => {}
                SourceStatus::Finished => state.finished = true,
            }
        }
        for state in self.sources.iter_mut().filter(|s| s.time_column.is_some()) {
            let (watermark, idle) = state.watermark();
            if state.reported != Some((watermark, idle)) {
                state.reported = Some((watermark, idle));
                self.shared.report_watermark(&state.name, local_index, shared.local_workers, watermark);
                watermarks.send(WatermarkUpdate {
                    table: state.table as u32,
                    instance: worker_index as u32,
                    watermark,
                    idle,
                });
            }
        }
        if self.sources.iter().all(|s| s.finished) {
            // Closing the inputs lets the dataflow drain to completion.
            self.inputs = None;
            return false;
        }
        for state in &mut self.sources {
            state.source.seal_epoch(self.epoch);
        }
        self.shared.sealed(self.epoch);
        self.epoch += 1;
        for input in inputs.values_mut() {
            input.advance_to(self.epoch);
            input.flush();
        }
        watermarks.advance_to(self.epoch);
        watermarks.flush();
        any_ready
    }

    /// Whether the query has too many epochs in flight to read more.
    fn backlogged(&self) -> bool {
        self.inputs.is_some() && self.probe.less_than(&self.epoch.saturating_sub(MAX_EPOCHS_IN_FLIGHT))
    }

    /// Tells the sources which epochs every output has absorbed.
    fn commit_absorbed(&mut self) {
        // Epochs below the probe's frontier have reached every output.
        let absorbed = self.probe.with_frontier(|frontier| frontier.first().map(|first| first.checked_sub(1)));
        if let Some(Some(absorbed)) = absorbed
            && self.committed != Some(absorbed)
            && !self.shared.failure.is_set()
        {
            self.committed = Some(absorbed);
            self.shared.absorbed(absorbed);
            for state in &mut self.sources {
                if let Err(error) = state.source.commit(absorbed) {
                    self.shared.failure.set(state.failure(error));
                }
            }
        }
    }

    /// Whether the inputs are closed and every output has drained.
    fn drained(&self) -> bool {
        self.inputs.is_none() && self.probe.done()
    }

    /// Acknowledges everything read, after a drain without failure.
    fn close_sources(&mut self) {
        if self.shared.failure.is_set() {
            return;
        }
        for state in &mut self.sources {
            if let Err(error) = state.source.close() {
                self.shared.failure.set(state.failure(error));
            }
        }
    }
}

/// Runs one worker until every process has left.
pub(super) fn run_worker(worker: &mut Worker, shared: &Shared, initial: VecDeque<Command>) {
    let local_index = worker.index() % shared.local_workers;
    let is_leader = local_index == 0;
    let worker_index = worker.index();
    let mut sequencer: Sequencer<Command> = Sequencer::preloaded(worker, shared.started, initial);
    let mut queries: Vec<QueryRun> = Vec::new();
    let mut batch = SourceBatch::default();
    let mut left = BTreeSet::new();
    let mut announced_leave = false;
    let mut last_report = Instant::now();
    loop {
        if is_leader {
            for command in shared.take_submitted() {
                sequencer.push(command);
            }
        }
        while let Some(command) = sequencer.next() {
            match command {
                Command::Install { name, sql } => {
                    if let Some(query) = install(worker, shared, &mut sequencer, &name, sql.as_deref()) {
                        queries.push(query);
                    }
                }
                Command::Drop { name } => {
                    if let Some(position) = queries.iter().position(|q| q.name() == name) {
                        let query = queries.swap_remove(position);
                        worker.drop_dataflow(query.dataflow);
                    }
                    if is_leader {
                        shared.forget(&name);
                    }
                }
                Command::Abort { name } => {
                    // The worker that failed to build the query has already dropped it.
                    if let Some(position) = queries.iter().position(|q| q.name() == name) {
                        let query = queries.swap_remove(position);
                        worker.drop_dataflow(query.dataflow);
                        shared.registry.finished(&query.shared, shared.local_workers);
                    }
                    if is_leader && let Some(query) = shared.registry.get(&name) {
                        shared.unpublish(&query);
                    }
                }
                Command::Leave { process } => {
                    left.insert(process);
                }
            }
        }
        if left.len() == shared.processes {
            break;
        }
        let mut any_ready = false;
        for query in queries.iter_mut().filter(|q| !q.backlogged()) {
            any_ready |= query.feed(shared, worker_index, local_index, &mut batch);
        }
        if any_ready {
            worker.step();
        } else {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
        let mut index = 0;
        while index < queries.len() {
            let query = &mut queries[index];
            query.commit_absorbed();
            if query.shared.failure.is_set() {
                if !query.abort_announced {
                    query.abort_announced = true;
                    sequencer.push(Command::Abort { name: query.name().to_owned() });
                }
            } else if query.drained() {
                query.close_sources();
                let query = queries.swap_remove(index);
                shared.registry.finished(&query.shared, shared.local_workers);
                continue;
            }
            index += 1;
        }
        if last_report.elapsed() > Duration::from_millis(100) {
            last_report = Instant::now();
            if let Some(progress) = &shared.progress {
                let rows = queries.iter().map(|q| q.shared.rows_in.load(Ordering::Relaxed)).sum();
                progress.report(local_index, queries.iter().flat_map(|q| q.sources.iter()), rows);
            }
            if is_leader {
                shared.registry.sample();
            }
        }
        let leaving = shared.options.stop.load(Ordering::Relaxed) || !shared.keep_running;
        if is_leader && !announced_leave && leaving && shared.registry.all_done() && !shared.has_submissions() {
            announced_leave = true;
            sequencer.push(Command::Leave { process: shared.process });
        }
    }
    // Dropping the sequencer releases its dataflow, so the worker can finish.
    drop(sequencer);
}

/// Builds a query's dataflow on this worker and opens its source instances.
/// A worker that cannot build it asks every worker to drop it.
fn install(worker: &mut Worker, shared: &Shared, sequencer: &mut Sequencer<Command>, name: &str, sql: Option<&str>) -> Option<QueryRun> {
    let query = shared.query_for(name, sql)?;
    let program = query.program.clone();
    let make_sink = |target: &OutputTarget| -> Result<Box<dyn Sink>, RunFailure> {
        if let Some(published) = crate::serve::published_name(&program, *target) {
            let publisher = shared.options.server.as_ref().and_then(|server| server.publisher(published));
            return match publisher {
                Some(publisher) => Ok(Box::new(publisher)),
                None => Err(RunFailure::Sink {
                    sink: published.to_owned(),
                    message: carbonflow_sinks::SinkError::Unserved { table: published.to_owned() }.to_string(),
                }),
            };
        }
        match target {
            OutputTarget::View(_) => unreachable!("views are published"),
            OutputTarget::Table(table) => {
                let config = connector_view(&program.tables[*table].connector);
                carbonflow_sinks::create_sink(&config).map_err(|e| RunFailure::Sink {
                    sink: config.table.clone(),
                    message: e.to_string(),
                })
            }
            OutputTarget::Print => Ok(Box::new(
                carbonflow_sinks::print::PrintSink::to_writer(&print_config(), Box::new(std::io::stdout())).map_err(|e| RunFailure::Sink {
                    sink: "select".into(),
                    message: e.to_string(),
                })?,
            )),
        }
    };
    let dataflow = worker.next_dataflow_index();
    let build_context = BuildContext {
        query: query.clone(),
        publish_views: shared.options.server.is_some(),
        dead_letters: shared.dead_letters.for_query(name),
        make_sink: &make_sink,
        publishers: shared.process_leaders(),
    };
    let built = worker.dataflow::<Epoch, _, _>(|scope| build(scope, &program, &build_context));
    let handles = match built {
        Ok(handles) => handles,
        Err(error) => {
            query.failure.set(error);
            sequencer.push(Command::Abort { name: name.to_owned() });
            worker.drop_dataflow(dataflow);
            shared.registry.finished(&query, shared.local_workers);
            return None;
        }
    };
    let retention = crate::plan::retention::retention(&program);
    let mut sources = Vec::new();
    for &table in handles.inputs.keys() {
        let declaration = &program.tables[table];
        let config = connector_view(&declaration.connector);
        let context = SourceContext {
            worker_index: worker.index(),
            peers: worker.peers(),
            query: name.to_owned(),
            retention: crate::plan::retention::for_workers(retention[table], worker.peers()),
        };
        match create_source(&config, context) {
            Ok(source) => sources.push(SourceState {
                table,
                name: config.table.clone(),
                source,
                finished: false,
                interrupted: false,
                time_column: declaration.watermark.map(|w| w.column),
                delay: declaration.watermark.map_or(0, |w| w.delay),
                max_event_time: None,
                reported: None,
                rows_metric: metrics::SOURCE_ROWS.with_label_values(&[name, config.table.as_str()]),
            }),
            Err(error) => query.failure.set(RunFailure::Source {
                table: config.table.clone(),
                message: error.to_string(),
            }),
        }
    }
    shared.registry.built(&query, shared.local_workers);
    Some(QueryRun {
        shared: query,
        dataflow,
        inputs: Some((handles.inputs, handles.watermarks)),
        probe: handles.probe,
        sources,
        dead_letters: shared.dead_letters.for_query(name),
        epoch: 0,
        committed: None,
        abort_announced: false,
    })
}
