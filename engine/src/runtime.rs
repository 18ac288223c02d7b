//! Running a program: worker threads, epochs, watermarks, dead letters, progress.
//!
//! Each worker builds the same dataflow, opens its instance of every source
//! table and loops: poll each source for a batch, feed the rows in at the
//! current epoch, report each source's watermark, seal the epoch with the
//! sources, advance it and step the dataflow. At most [`MAX_EPOCHS_IN_FLIGHT`]
//! epochs may be unfinished, which bounds memory when sources outrun the
//! operators. When every source is exhausted (or Ctrl-C asked for a stop) the
//! inputs close and the worker steps until every output has drained.
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
//! upstream; after a run that drained without a failure, each source is
//! closed, acknowledging everything it read. A failed run acknowledges
//! nothing more, so a restart re-reads what may not have been written.
//!
//! The watermark an operator sees for an epoch is the one reported at the end
//! of the previous epoch, so which rows are late depends only on the order and
//! batching of the input, never on thread timing: runs are reproducible.
//! Idle timeouts are the exception: they follow the wall clock by design.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carbonflow_core::{ConnectorConfig, DeadLetter, Epoch, Millis, Watermark};
use carbonflow_operators::dataflow::WatermarkUpdate;
use carbonflow_sinks::Sink;
use carbonflow_sources::{EventTimeProgress, SourceBatch, SourceContext, SourceStatus, create_source};

use crate::dataflow::{RunFailureSlot, build};
use crate::plan::{OutputTarget, Program};

/// How many epochs may be in flight before a worker waits for its outputs.
pub const MAX_EPOCHS_IN_FLIGHT: Epoch = 64;

/// Why a run stopped early.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunFailure {
    /// A source could not be opened or read.
    #[error("source '{table}': {message}")]
    Source {
        /// The table.
        table: String,
        /// What went wrong.
        message: String,
    },
    /// A sink could not be created or written.
    #[error("sink '{sink}': {message}")]
    Sink {
        /// The sink table (or `select`).
        sink: String,
        /// What went wrong.
        message: String,
    },
    /// The reader of a printed output went away (stdout piped into `head`):
    /// the run stopped early on purpose.
    #[error("sink '{sink}': the reader closed the output")]
    OutputClosed {
        /// The sink table (or `select`).
        sink: String,
    },
    /// The dead-letter file could not be written.
    #[error("dead-letter output {path}: {message}")]
    DeadLetterOutput {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The file's only results are views, and no server publishes them.
    #[error("the file's only results are views, which only the WebSocket server publishes (run it without --no-server)")]
    NothingToDo,
    /// A FORECAST model could not be loaded.
    #[error("FORECAST: {0}")]
    Model(String),
    /// timely could not start its workers.
    #[error("could not start the workers: {0}")]
    Workers(String),
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads in this process.
    pub workers: usize,
    /// Rows read from one source per epoch at most.
    pub batch_size: usize,
    /// Where dead letters go as JSON lines; without it they are summarised on stderr.
    pub dead_letter_path: Option<PathBuf>,
    /// Draw a progress bar on a terminal.
    pub show_progress: bool,
    /// Set to ask the run to stop gracefully (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// The WebSocket server that publishes every view and `websocket` table
    /// (see [`crate::serve`]); without one, views are not published and a
    /// `websocket` table is an error.
    pub server: Option<Arc<carbonflow_sinks::websocket::Server>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 1,
            batch_size: 4096,
            dead_letter_path: None,
            show_progress: false,
            stop: Arc::new(AtomicBool::new(false)),
            server: None,
        }
    }
}

/// What a finished run did.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Rows read from all sources.
    pub rows_read: u64,
    /// Dead letters per (origin, reason).
    pub dead_letters: BTreeMap<(String, String), u64>,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl RunSummary {
    /// All dead letters.
    pub fn dead_letter_total(&self) -> u64 {
        self.dead_letters.values().sum()
    }
}

/// The dead-letter output, shared by every worker and operator.
#[derive(Clone)]
pub struct DeadLetters(Arc<Mutex<DeadLetterState>>);

struct DeadLetterState {
    file: Option<(String, BufWriter<File>)>,
    counts: BTreeMap<(String, String), u64>,
    shown_on_stderr: usize,
    error: Option<RunFailure>,
}

/// How many dead letters are printed on stderr when no file is given.
const STDERR_DEAD_LETTERS: usize = 10;

impl DeadLetters {
    /// A dead-letter output writing JSON lines to `path`, or summarising on stderr.
    pub fn new(path: Option<&Path>) -> Result<Self, RunFailure> {
        let file = match path {
            Some(path) => {
                let file = File::create(path).map_err(|e| RunFailure::DeadLetterOutput {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                Some((path.display().to_string(), BufWriter::new(file)))
            }
            None => None,
        };
        Ok(DeadLetters(Arc::new(Mutex::new(DeadLetterState {
            file,
            counts: BTreeMap::new(),
            shown_on_stderr: 0,
            error: None,
        }))))
    }

    /// Counts a dead letter and writes it out.
    pub fn push(&self, letter: DeadLetter) {
        let mut state = self.0.lock().expect("dead letters");
        *state.counts.entry((letter.origin.clone(), letter.reason.as_str().to_owned())).or_default() += 1;
        match &mut state.file {
            Some((path, writer)) => {
                let written = serde_json::to_writer(&mut *writer, &letter)
                    .map_err(|e| e.to_string())
                    .and_then(|()| writer.write_all(b"\n").map_err(|e| e.to_string()));
                if let Err(message) = written {
                    let path = path.clone();
                    state.error.get_or_insert(RunFailure::DeadLetterOutput { path, message });
                }
            }
            None => {
                state.shown_on_stderr += 1;
                if state.shown_on_stderr <= STDERR_DEAD_LETTERS {
                    eprintln!("dead letter: {letter}");
                } else if state.shown_on_stderr == STDERR_DEAD_LETTERS + 1 {
                    eprintln!("dead letter: more rows are only counted (use --dead-letter FILE to keep them all)");
                }
            }
        }
    }

    /// Flushes the file and gives the counts, or the first write error.
    pub fn finish(&self) -> Result<BTreeMap<(String, String), u64>, RunFailure> {
        let mut state = self.0.lock().expect("dead letters");
        if let Some((path, writer)) = &mut state.file
            && let Err(e) = writer.flush()
        {
            let path = path.clone();
            state.error.get_or_insert(RunFailure::DeadLetterOutput { path, message: e.to_string() });
        }
        match state.error.take() {
            Some(error) => Err(error),
            None => Ok(state.counts.clone()),
        }
    }
}

/// Engine options a table may carry besides its connector's own.
pub const ENGINE_TABLE_OPTIONS: &[&str] = &["upsert.retention"];

/// The table's declaration as its connector sees it: engine options removed.
pub fn connector_view(config: &ConnectorConfig) -> ConnectorConfig {
    let mut view = config.clone();
    view.options.retain(|key, _| !ENGINE_TABLE_OPTIONS.contains(&key.as_str()));
    view
}

struct SourceState {
    table: usize,
    name: String,
    source: Box<dyn carbonflow_sources::Source>,
    finished: bool,
    /// Stopped by Ctrl-C or a failure rather than exhausted: its watermark stays.
    interrupted: bool,
    time_column: Option<usize>,
    delay: Millis,
    max_event_time: Option<Millis>,
    /// The last watermark sent, and whether it said idle.
    reported: Option<(Millis, bool)>,
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

/// Runs a program to completion (bounded sources) or until `options.stop`.
pub fn run(program: Arc<Program>, options: RunOptions) -> Result<RunSummary, RunFailure> {
    if program.outputs.is_empty() && options.server.is_none() {
        return Err(RunFailure::NothingToDo);
    }
    let started = Instant::now();
    let dead_letters = DeadLetters::new(options.dead_letter_path.as_deref())?;
    let failure = Arc::new(RunFailureSlot::default());
    let rows_read = Arc::new(AtomicU64::new(0));
    let progress = (options.show_progress && std::io::stderr().is_terminal()).then(|| Arc::new(Progress::new(options.workers.max(1))));
    let worker_program = program.clone();
    let worker_failure = failure.clone();
    let worker_rows = rows_read.clone();
    let worker_dead_letters = dead_letters.clone();
    let worker_progress = progress.clone();
    let guards = timely::execute(timely::Config::process(options.workers.max(1)), move |worker| {
        let program = &worker_program;
        let make_sink = |target: &OutputTarget| -> Result<Box<dyn Sink>, RunFailure> {
            if let Some(name) = crate::serve::published_name(program, *target) {
                let publisher = options.server.as_ref().and_then(|server| server.publisher(name));
                return match publisher {
                    Some(publisher) => Ok(Box::new(publisher)),
                    None => Err(RunFailure::Sink {
                        sink: name.to_owned(),
                        message: carbonflow_sinks::SinkError::Unserved { table: name.to_owned() }.to_string(),
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
        let built = worker.dataflow::<Epoch, _, _>(|scope| {
            build(
                scope,
                program,
                options.server.is_some(),
                worker_dead_letters.clone(),
                &make_sink,
                worker_failure.clone(),
            )
        });
        let mut handles = match built {
            Ok(handles) => handles,
            Err(error) => {
                worker_failure.set(error);
                return;
            }
        };
        // One unnamed query per process: its sources' metrics carry an empty `query` label.
        let context = SourceContext::worker(worker.index(), worker.peers());
        let retention = crate::plan::retention::retention(program);
        let mut sources = Vec::new();
        for &table in handles.inputs.keys() {
            let declaration = &program.tables[table];
            let config = connector_view(&declaration.connector);
            let table_context = SourceContext {
                retention: retention[table],
                ..context.clone()
            };
            match create_source(&config, table_context) {
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
                }),
                Err(error) => worker_failure.set(RunFailure::Source {
                    table: config.table.clone(),
                    message: error.to_string(),
                }),
            }
        }
        let mut batch = SourceBatch::default();
        let mut epoch: Epoch = 0;
        let mut committed: Option<Epoch> = None;
        let mut last_progress = Instant::now();
        loop {
            let stopping = options.stop.load(Ordering::Relaxed) || worker_failure.is_set();
            let mut any_ready = false;
            for state in sources.iter_mut().filter(|s| !s.finished) {
                if stopping {
                    state.finished = true;
                    state.interrupted = true;
                    continue;
                }
                batch.clear();
                let status = match state.source.poll(&mut batch, options.batch_size) {
                    Ok(status) => status,
                    Err(error) => {
                        worker_failure.set(state.failure(error));
                        SourceStatus::Finished
                    }
                };
                let input = handles.inputs.get_mut(&state.table).expect("an input per source");
                worker_rows.fetch_add(batch.rows.len() as u64, Ordering::Relaxed);
                for row in batch.rows.drain(..) {
                    if let Some(ts) = state.time_column.and_then(|c| row.get(c).as_timestamp()) {
                        state.max_event_time = Some(state.max_event_time.map_or(ts, |m| m.max(ts)));
                    }
                    input.update(row, 1);
                }
                batch.dead_letters.drain(..).for_each(|letter| worker_dead_letters.push(letter));
                match status {
                    SourceStatus::Ready => any_ready = true,
                    SourceStatus::Idle => {}
                    SourceStatus::Finished => state.finished = true,
                }
            }
            for state in sources.iter_mut().filter(|s| s.time_column.is_some()) {
                let (watermark, idle) = state.watermark();
                if state.reported != Some((watermark, idle)) {
                    state.reported = Some((watermark, idle));
                    handles.watermarks.send(WatermarkUpdate {
                        table: state.table as u32,
                        instance: context.worker_index as u32,
                        watermark,
                        idle,
                    });
                }
            }
            if sources.iter().all(|s| s.finished) {
                break;
            }
            for state in &mut sources {
                state.source.seal_epoch(epoch);
            }
            epoch += 1;
            for input in handles.inputs.values_mut() {
                input.advance_to(epoch);
                input.flush();
            }
            handles.watermarks.advance_to(epoch);
            handles.watermarks.flush();
            while handles.probe.less_than(&epoch.saturating_sub(MAX_EPOCHS_IN_FLIGHT)) {
                worker.step();
            }
            if any_ready {
                worker.step();
            } else {
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
            // Epochs below the probe's frontier have reached every output.
            let absorbed = handles.probe.with_frontier(|frontier| frontier.first().map(|first| first.checked_sub(1)));
            if let Some(Some(absorbed)) = absorbed
                && committed != Some(absorbed)
                && !worker_failure.is_set()
            {
                committed = Some(absorbed);
                for state in &mut sources {
                    if let Err(error) = state.source.commit(absorbed) {
                        worker_failure.set(state.failure(error));
                    }
                }
            }
            if let Some(progress) = worker_progress.as_ref().filter(|_| last_progress.elapsed() > Duration::from_millis(100)) {
                last_progress = Instant::now();
                progress.report(context.worker_index, &sources, worker_rows.load(Ordering::Relaxed));
            }
        }
        for input in handles.inputs.values_mut() {
            input.flush();
        }
        drop(handles.inputs);
        drop(handles.watermarks);
        while !handles.probe.done() {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
        if !worker_failure.is_set() {
            for state in &mut sources {
                if let Err(error) = state.source.close() {
                    worker_failure.set(state.failure(error));
                }
            }
        }
    })
    .map_err(|e| RunFailure::Workers(e.to_string()))?;
    // Joining the guards waits for every worker; a panicking worker is a bug, reported as such.
    for result in guards.join() {
        if let Err(message) = result {
            failure.set(RunFailure::Workers(message));
        }
    }
    if let Some(progress) = progress {
        progress.bar.finish_and_clear();
    }
    let counts = dead_letters.finish()?;
    if let Some(error) = failure.take() {
        return Err(error);
    }
    Ok(RunSummary {
        rows_read: rows_read.load(Ordering::Relaxed),
        dead_letters: counts,
        elapsed: started.elapsed(),
    })
}

/// The print sink of a bare SELECT.
fn print_config() -> ConnectorConfig {
    ConnectorConfig {
        table: "select".into(),
        schema: Default::default(),
        event_time_column: None,
        primary_key: None,
        options: BTreeMap::from([("connector".to_owned(), "print".to_owned())]),
    }
}

/// The progress bar of a long replay: every worker reports its own sources'
/// progress into its slot; the bar shows the sum.
struct Progress {
    bar: indicatif::ProgressBar,
    /// Per worker: units done and units in total.
    slots: Vec<(AtomicU64, AtomicU64)>,
}

impl Progress {
    fn new(workers: usize) -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}").expect("valid template"));
        Progress {
            bar,
            slots: (0..workers).map(|_| (AtomicU64::new(0), AtomicU64::new(0))).collect(),
        }
    }

    fn report(&self, worker: usize, sources: &[SourceState], rows: u64) {
        let (done, total) = sources
            .iter()
            .filter_map(|s| s.source.progress())
            .fold((0, 0), |(d, t), p| (d + p.done, t + p.total.unwrap_or(0)));
        self.slots[worker].0.store(done, Ordering::Relaxed);
        self.slots[worker].1.store(total, Ordering::Relaxed);
        let done: u64 = self.slots.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
        let total: u64 = self.slots.iter().map(|s| s.1.load(Ordering::Relaxed)).sum();
        if total > 0 {
            self.bar.set_length(total);
            self.bar.set_position(done);
        }
        let rate = rows as f64 / self.bar.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
    }
}
