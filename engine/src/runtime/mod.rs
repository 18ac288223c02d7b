//! Running queries: the engine's worker threads, its queries and their life.
//!
//! An [`Engine`] starts the timely workers of this process (of a cluster,
//! with [`Cluster`]) and keeps them running the queries it is given: the file
//! it was started with, and those submitted and dropped while it runs through
//! the control API ([`Engine::submit`], [`Engine::drop_query`]). Each query is
//! its own dataflow with its own sources and epochs ([`worker`]); the
//! [`registry`] tracks each one's status, counts and watermarks for the
//! control API and the metrics. [`run`] is the simple form: one program, run
//! to completion.
//!
//! * [`worker`]: the worker loop, the commands every worker applies in one
//!   order, and how a query's sources feed its dataflow.
//! * [`registry`]: what the process knows of each query.
//! * [`dead_letters`]: the dead-letter output.
//! * `progress`: the progress bar of long replays.

pub mod dead_letters;
mod progress;
pub mod registry;
pub mod worker;

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carbonflow_core::{ConnectorConfig, Epoch};

pub use dead_letters::DeadLetters;
use progress::Progress;
use registry::{Conflict, QueryShared, QueryStatus, Registry};
use worker::Command;

use crate::plan::Program;

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
    /// Keep running after every query has finished, until `stop` (a server
    /// taking queries through the control API); otherwise leave then.
    pub keep_running: bool,
    /// The other processes of a timely cluster; `None` runs alone.
    pub cluster: Option<Cluster>,
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
            keep_running: false,
            cluster: None,
        }
    }
}

/// This process's place in a timely cluster: every process runs the same
/// number of workers and knows every process's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// This process, `0..addresses.len()`.
    pub process: usize,
    /// The `host:port` timely listens on, of every process in order.
    pub addresses: Vec<String>,
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

/// Engine options a table may carry besides its connector's own.
pub const ENGINE_TABLE_OPTIONS: &[&str] = &["upsert.retention"];

/// The table's declaration as its connector sees it: engine options removed.
pub fn connector_view(config: &ConnectorConfig) -> ConnectorConfig {
    let mut view = config.clone();
    view.options.retain(|key, _| !ENGINE_TABLE_OPTIONS.contains(&key.as_str()));
    view
}

/// What the workers of this process share.
pub(crate) struct Shared {
    options: RunOptions,
    dead_letters: DeadLetters,
    registry: Registry,
    /// Commands this process received, for its first worker to sequence.
    submitted: Mutex<Vec<Command>>,
    /// The sequencer's clock.
    started: Instant,
    /// Worker threads in this process.
    local_workers: usize,
    /// Processes in the cluster, and which one this is.
    processes: usize,
    process: usize,
    keep_running: bool,
    progress: Option<Progress>,
    /// Set once the workers have left: nothing more can be submitted.
    closed: AtomicBool,
}

impl Shared {
    fn take_submitted(&self) -> Vec<Command> {
        std::mem::take(&mut *self.submitted.lock().expect("submitted commands"))
    }

    fn has_submissions(&self) -> bool {
        !self.submitted.lock().expect("submitted commands").is_empty()
    }

    fn submit(&self, command: Command) {
        self.submitted.lock().expect("submitted commands").push(command);
    }

    /// The global index of the first worker of every process: where published views are served.
    fn process_leaders(&self) -> Vec<usize> {
        (0..self.processes).map(|process| process * self.local_workers).collect()
    }

    /// The query an install command names: registered by this process, or
    /// parsed from the text another process sequenced (and then registered
    /// and published here too).
    fn query_for(&self, name: &str, sql: Option<&str>) -> Option<Arc<QueryShared>> {
        if let Some(query) = self.registry.get(name) {
            return Some(query);
        }
        let sql = sql?;
        let program = match crate::cli::check_text(sql) {
            Ok(program) => Arc::new(program),
            Err(error) => {
                eprintln!("error: query '{name}' from another process does not check here: {}", error.render(name, sql));
                return None;
            }
        };
        match self.registry.register(name, program, Some(sql.to_owned())) {
            Ok(query) => {
                if let Err(message) = self.publish(&query) {
                    eprintln!("error: query '{name}': {message}");
                }
                Some(query)
            }
            // Another worker of this process registered it first.
            Err(_) => self.registry.get(name),
        }
    }

    /// Makes the query's views subscribable on this process's server.
    fn publish(&self, query: &QueryShared) -> Result<(), String> {
        match &self.options.server {
            Some(server) => server.add_views(crate::serve::subscribable_views(&query.program)),
            None => Ok(()),
        }
    }

    /// Removes the query's views from this process's server.
    fn unpublish(&self, query: &QueryShared) {
        if let Some(server) = &self.options.server {
            let names: Vec<String> = crate::serve::subscribable_views(&query.program).into_iter().map(|view| view.name).collect();
            server.remove_views(&names);
        }
    }

    /// Forgets a dropped query: its views and its registry entry.
    fn forget(&self, name: &str) {
        if let Some(query) = self.registry.get(name) {
            self.unpublish(&query);
        }
        self.registry.remove(name);
    }
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The query file does not check.
    #[error("{0}")]
    Invalid(crate::sql::SqlError),
    /// The name or a view name is taken.
    #[error("{0}")]
    Conflict(#[from] Conflict),
    /// The name is not usable.
    #[error("a query name is 1 to 64 letters, digits, '_', '-' or '.'; got '{0}'")]
    BadName(String),
    /// The query could not be started.
    #[error("{0}")]
    Failed(RunFailure),
    /// The engine is shutting down.
    #[error("the engine is shutting down")]
    Closed,
}

/// How long a submission or a drop waits for every worker.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The running engine of this process.
pub struct Engine {
    shared: Arc<Shared>,
    guards: Mutex<Option<timely::communication::initialize::WorkerGuards<()>>>,
    started: Instant,
}

impl Engine {
    /// Starts the workers with the `initial` queries (name, program, text),
    /// which every process of a cluster must be given alike.
    pub fn start(options: RunOptions, initial: Vec<(String, Arc<Program>, Option<String>)>) -> Result<Engine, RunFailure> {
        let started = Instant::now();
        let local_workers = options.workers.max(1);
        let dead_letters = DeadLetters::new(options.dead_letter_path.as_deref())?;
        let (processes, process) = options.cluster.as_ref().map_or((1, 0), |cluster| (cluster.addresses.len(), cluster.process));
        let progress = (options.show_progress && std::io::stderr().is_terminal()).then(|| Progress::new(local_workers));
        let config = match &options.cluster {
            None => timely::Config::process(local_workers),
            Some(cluster) => timely::Config {
                communication: timely::CommunicationConfig::Cluster {
                    threads: local_workers,
                    process: cluster.process,
                    addresses: cluster.addresses.clone(),
                    report: false,
                    zerocopy: false,
                },
                worker: timely::WorkerConfig::default(),
            },
        };
        let shared = Arc::new(Shared {
            keep_running: options.keep_running,
            options,
            dead_letters,
            registry: Registry::default(),
            submitted: Mutex::new(Vec::new()),
            started,
            local_workers,
            processes,
            process,
            progress,
            closed: AtomicBool::new(false),
        });
        let mut commands = VecDeque::new();
        for (name, program, sql) in initial {
            if program.outputs.is_empty() && shared.options.server.is_none() {
                return Err(RunFailure::NothingToDo);
            }
            shared
                .registry
                .register(&name, program, sql)
                .map_err(|conflict| RunFailure::Workers(conflict.to_string()))?;
            commands.push_back(Command::Install { name, sql: None });
        }
        let worker_shared = shared.clone();
        let guards = timely::execute(config, move |worker| worker::run_worker(worker, &worker_shared, commands.clone()))
            .map_err(|e| RunFailure::Workers(e.to_string()))?;
        Ok(Engine {
            shared,
            guards: Mutex::new(Some(guards)),
            started,
        })
    }

    /// The queries of this process.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Whether the engine is serving: every query built and none starting.
    pub fn ready(&self) -> bool {
        !self.shared.closed.load(Ordering::Relaxed) && self.shared.registry.all().iter().all(|query| query.status() != QueryStatus::Starting)
    }

    /// Checks `sql`, registers it as `name`, publishes its views and has
    /// every worker build it; waits until it runs (or failed to start).
    pub fn submit(&self, name: &str, sql: &str) -> Result<Arc<QueryShared>, SubmitError> {
        let valid_name = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid_name {
            return Err(SubmitError::BadName(name.to_owned()));
        }
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(SubmitError::Closed);
        }
        let program = crate::cli::check_text(sql).map_err(SubmitError::Invalid)?;
        if program.outputs.is_empty() && self.shared.options.server.is_none() {
            return Err(SubmitError::Failed(RunFailure::NothingToDo));
        }
        let query = self.shared.registry.register(name, Arc::new(program), Some(sql.to_owned()))?;
        if let Err(message) = self.shared.publish(&query) {
            self.shared.registry.remove(name);
            return Err(SubmitError::Failed(RunFailure::Sink {
                sink: name.to_owned(),
                message,
            }));
        }
        self.shared.submit(Command::Install {
            name: name.to_owned(),
            sql: Some(sql.to_owned()),
        });
        self.shared.registry.wait_for(name, COMMAND_TIMEOUT, |status| status != QueryStatus::Starting);
        match query.failure.get() {
            Some(failure) if query.status() == QueryStatus::Failed => Err(SubmitError::Failed(failure)),
            _ => Ok(query),
        }
    }

    /// Drops a query on every worker, freeing its state, and forgets it.
    /// `false` when there is no such query.
    pub fn drop_query(&self, name: &str) -> bool {
        if self.shared.registry.get(name).is_none() {
            return false;
        }
        self.shared.submit(Command::Drop { name: name.to_owned() });
        self.shared.registry.wait_for(name, COMMAND_TIMEOUT, |_| false);
        true
    }

    /// Waits for the workers to leave (every query finished, or a stop) and
    /// sums up; the first failure of any query is the error. Only the first
    /// call waits; later ones find the workers gone.
    pub fn wait(&self) -> Result<RunSummary, RunFailure> {
        let Engine { shared, guards, started } = self;
        let Some(guards) = guards.lock().expect("worker guards").take() else {
            return Err(RunFailure::Workers("the engine was already waited for".into()));
        };
        let joined = guards.join();
        shared.closed.store(true, Ordering::Relaxed);
        if let Some(progress) = &shared.progress {
            progress.bar.finish_and_clear();
        }
        // Joining the guards waits for every worker; a panicking worker is a bug, reported as such.
        if let Some(Err(message)) = joined.into_iter().find(Result::is_err) {
            return Err(RunFailure::Workers(message));
        }
        let counts = shared.dead_letters.finish()?;
        let queries = shared.registry.all();
        if let Some(failure) = queries.iter().find_map(|query| query.failure.get()) {
            return Err(failure);
        }
        Ok(RunSummary {
            rows_read: queries.iter().map(|query| query.rows_in.load(Ordering::Relaxed)).sum(),
            dead_letters: counts,
            elapsed: started.elapsed(),
        })
    }
}

/// Runs a program to completion (bounded sources) or until `options.stop`,
/// as the query `main`.
pub fn run(program: Arc<Program>, options: RunOptions) -> Result<RunSummary, RunFailure> {
    Engine::start(options, vec![("main".to_owned(), program, None)])?.wait()
}

/// The print sink of a bare SELECT.
pub(crate) fn print_config() -> ConnectorConfig {
    ConnectorConfig {
        table: "select".into(),
        schema: Default::default(),
        event_time_column: None,
        primary_key: None,
        options: BTreeMap::from([("connector".to_owned(), "print".to_owned())]),
    }
}
