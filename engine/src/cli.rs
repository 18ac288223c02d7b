//! The `carbonflow` command line: `check`, `explain` and `run` a query file.
//!
//! Errors in the file are printed with the file, line and column and a caret
//! under the offending token; the exit code is 1 for a bad query and 2 when a
//! run fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use carbonflow_sinks::websocket::auth::AuthConfig;
use carbonflow_sinks::websocket::{Server, ServerConfig};
use clap::{Parser, Subcommand};

use crate::plan::{Program, TableRole};
use crate::runtime::{RunFailure, RunOptions, connector_view};
use crate::sql::SqlError;

/// carbonflow: incremental SQL over energy market feeds.
#[derive(Debug, Parser)]
#[command(name = "carbonflow", version, about)]
pub struct Cli {
    /// The ONNX Runtime library FORECAST queries use (libonnxruntime.so).
    /// Without it: $CARBONFLOW_ONNXRUNTIME, $ORT_DYLIB_PATH, then
    /// target/python-env as scripts/onnxruntime.sh makes it (docs/forecast.md).
    #[arg(long, global = true, value_name = "PATH")]
    pub onnxruntime: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check a query file: names, types, connector options.
    Check {
        /// The query file.
        file: PathBuf,
    },
    /// Print the checked plan of a query file and the dataflow it becomes.
    Explain {
        /// The query file.
        file: PathBuf,
    },
    /// List the file formats of the filesystem source, market formats included.
    Formats,
    /// Run a query file: until its inputs are exhausted (with --serve: until stopped), or Ctrl-C / SIGTERM.
    Run(RunArgs),
    /// Serve the control API and views without a query file, until Ctrl-C / SIGTERM;
    /// queries come through `carbonflow submit`.
    Serve(RunArgs),
    /// Submit a query file to a running engine (`POST /v1/queries`).
    Submit {
        /// The query file.
        file: PathBuf,
        /// The name it runs under (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Where the engine is.
        #[command(flatten)]
        remote: crate::control::Remote,
    },
    /// List the queries of a running engine (`GET /v1/queries`).
    List {
        /// Where the engine is.
        #[command(flatten)]
        remote: crate::control::Remote,
    },
    /// Drop a query of a running engine, freeing its state (`DELETE /v1/queries/NAME`).
    Drop {
        /// The query's name.
        name: String,
        /// Where the engine is.
        #[command(flatten)]
        remote: crate::control::Remote,
    },
    /// Inspect a webhook sink's outbox: delivery attempts, endpoint status, replays.
    Webhooks {
        /// What to do.
        #[command(subcommand)]
        command: crate::webhooks_cli::WebhooksCommand,
    },
}

/// The arguments of `carbonflow run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The query file (`run` needs one; `serve` takes none).
    pub file: Option<PathBuf>,
    /// Worker threads.
    #[arg(long, short = 'w', default_value_t = 1, env = "CARBONFLOW_WORKERS")]
    pub workers: usize,
    /// Rows read from a source per epoch at most.
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    /// Write dead letters (bad rows, late events) to this file as JSON lines.
    #[arg(long)]
    pub dead_letter: Option<PathBuf>,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Where the WebSocket server listens (`ws://ADDR/v1/stream`); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080", env = "CARBONFLOW_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// Run without the WebSocket server (views are then not published).
    #[arg(long)]
    pub no_server: bool,
    /// Bearer tokens and their entitlements (TOML); required to listen beyond loopback.
    #[arg(long, env = "CARBONFLOW_AUTH")]
    pub auth: Option<PathBuf>,
    /// Seconds between heartbeats of each subscription.
    #[arg(long, default_value_t = 1.0)]
    pub heartbeat_secs: f64,
    /// Keep serving the final views this many seconds after the inputs end (Ctrl-C ends it early).
    #[arg(long, default_value_t = 0.0)]
    pub linger_secs: f64,
    /// Keep running after the file's inputs end, serving its views and the
    /// control API, until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub serve: bool,
    /// Processes in the timely cluster (each runs --workers threads).
    #[arg(long, default_value_t = 1, env = "CARBONFLOW_PROCESSES")]
    pub processes: usize,
    /// This process's index in the cluster, `0..processes`.
    #[arg(long, default_value_t = 0, env = "CARBONFLOW_PROCESS_ID")]
    pub process_id: usize,
    /// The cluster's `host:port` list, one a line, process 0 first (timely's
    /// own port, not the HTTP one).
    #[arg(long, env = "CARBONFLOW_HOSTS_FILE")]
    pub hosts: Option<PathBuf>,
    /// The same list, comma-separated (for Kubernetes).
    #[arg(long = "host-list", env = "CARBONFLOW_HOSTS", value_delimiter = ',', conflicts_with = "hosts")]
    pub host_list: Vec<String>,
}

impl RunArgs {
    /// This process's place in the cluster, when it runs in one.
    pub fn cluster(&self) -> Result<Option<crate::runtime::Cluster>, String> {
        let addresses: Vec<String> = match &self.hosts {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the hosts file {}: {e}", path.display()))?
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned)
                .collect(),
            None => self
                .host_list
                .iter()
                .map(|host| host.trim().to_owned())
                .filter(|host| !host.is_empty())
                .collect(),
        };
        if self.processes <= 1 && addresses.len() <= 1 {
            return Ok(None);
        }
        if addresses.len() != self.processes {
            return Err(format!(
                "--processes {} needs as many hosts, one per process; got {}",
                self.processes,
                addresses.len()
            ));
        }
        if self.process_id >= self.processes {
            return Err(format!("--process-id {} is not below --processes {}", self.process_id, self.processes));
        }
        Ok(Some(crate::runtime::Cluster {
            process: self.process_id,
            addresses,
        }))
    }
}

/// A query file that failed to load, rendered for a person.
#[derive(Debug)]
pub struct LoadError(pub String);

/// Reads, parses and checks a query file (connector options included).
pub fn load(path: &Path) -> Result<Program, LoadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| LoadError(format!("error: cannot read {name}: {e}\n")))?;
    check_text(&text).map_err(|e| LoadError(e.render(&name, &text)))
}

/// Parses and checks query text.
pub fn check_text(text: &str) -> Result<Program, SqlError> {
    let statements = crate::sql::parse_file(text)?;
    crate::plan::bind_program(&statements, &|config, role| {
        for key in crate::runtime::ENGINE_TABLE_OPTIONS {
            if let Some(value) = config.option(key) {
                if role == TableRole::Sink {
                    return Err(carbonflow_core::OptionError::Unknown {
                        key: (*key).to_owned(),
                        known: vec!["(only for source tables)".into()],
                    });
                }
                if crate::plan::bind::parse_duration(value).is_none() {
                    return Err(carbonflow_core::OptionError::Invalid {
                        key: (*key).to_owned(),
                        value: value.to_owned(),
                        expected: "duration like '2 h'".into(),
                    });
                }
            }
        }
        let view = connector_view(config);
        match role {
            TableRole::Source => carbonflow_sources::validate_source(&view),
            TableRole::Sink => carbonflow_sinks::validate_sink(&view),
            TableRole::Unused => Ok(()),
        }
    })
}

/// What `carbonflow formats` prints: every format and the columns a table over it may declare.
pub fn formats_listing() -> String {
    use carbonflow_sources::tick::TickColumn;
    let columns: Vec<String> = TickColumn::ALL.iter().map(|(_, name, data_type)| format!("{name} {data_type}")).collect();
    let mut out = String::from("Formats of 'connector' = 'filesystem':\n\n");
    let builtin = [
        ("csv", "delimited text, columns by position (Flink's csv.* options)"),
        ("parquet", "Apache Parquet, columns by name"),
    ];
    let markets = carbonflow_sources::markets::formats()
        .into_iter()
        .map(|format| (format.name(), format.description()));
    for (name, description) in builtin.into_iter().chain(markets) {
        out.push_str(&format!("  {name:<18} {description}\n"));
    }
    out.push_str(&format!(
        "\nA table over a market format declares any subset of the canonical tick columns, by name:\n  {}\n",
        columns.join(", ")
    ));
    out
}

/// Runs the command line and gives the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    if let Some(path) = &cli.onnxruntime
        && let Err(error) = carbonflow_operators::forecast::onnx::init_runtime(Some(path))
    {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Check { file } => match load(&file) {
            Ok(program) => {
                println!(
                    "{}: ok ({} tables, {} views, {} outputs)",
                    file.display(),
                    program.tables.len(),
                    program.views.len(),
                    program.outputs.len()
                );
                ExitCode::SUCCESS
            }
            Err(LoadError(text)) => {
                eprint!("{text}");
                ExitCode::from(1)
            }
        },
        Command::Explain { file } => match load(&file) {
            Ok(program) => {
                print!("{program}\n{}", crate::explain::dataflow(&program));
                ExitCode::SUCCESS
            }
            Err(LoadError(text)) => {
                eprint!("{text}");
                ExitCode::from(1)
            }
        },
        Command::Formats => {
            print!("{}", formats_listing());
            ExitCode::SUCCESS
        }
        Command::Webhooks { command } => crate::webhooks_cli::run(command),
        Command::Run(args) if args.file.is_none() => {
            eprintln!("error: `carbonflow run` needs a query file (`carbonflow serve` runs without one)");
            ExitCode::from(2)
        }
        Command::Run(args) => run_query(args),
        Command::Serve(args) => run_query(RunArgs { serve: true, ..args }),
        Command::Submit { file, name, remote } => crate::control::submit(&remote, &file, name.as_deref()),
        Command::List { remote } => crate::control::list(&remote),
        Command::Drop { name, remote } => crate::control::drop(&remote, &name),
    }
}

/// `carbonflow run` and `serve`: loads the file, starts the server and the
/// engine, waits for the queries (or a stop), lingers, shuts down.
fn run_query(args: RunArgs) -> ExitCode {
    let initial = match &args.file {
        Some(file) => match load(file) {
            Ok(program) => {
                let name = file.file_stem().map_or_else(|| "main".to_owned(), |stem| stem.to_string_lossy().into_owned());
                let sql = std::fs::read_to_string(file).ok();
                vec![(name, Arc::new(program), sql)]
            }
            Err(LoadError(text)) => {
                eprint!("{text}");
                return ExitCode::from(1);
            }
        },
        None => Vec::new(),
    };
    let cluster = match args.cluster() {
        Ok(cluster) => cluster,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = stop.clone();
    // First Ctrl-C or SIGTERM: stop reading, drain, finish sinks. Second: leave now.
    let _ = ctrlc::set_handler(move || {
        if handler_stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping: draining the dataflow and finishing the sinks (Ctrl-C again to quit at once)");
    });
    let server = if args.no_server {
        None
    } else {
        let views = initial.iter().flat_map(|(_, program, _)| crate::serve::subscribable_views(program)).collect();
        match start_server(&args, views) {
            Ok(server) => Some(Arc::new(server)),
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
        }
    };
    let options = RunOptions {
        workers: args.workers,
        batch_size: args.batch_size.max(1),
        dead_letter_path: args.dead_letter.clone(),
        show_progress: !args.no_progress,
        stop: stop.clone(),
        server: server.clone(),
        keep_running: args.serve,
        cluster,
    };
    let outcome = crate::runtime::Engine::start(options, initial).and_then(|engine| {
        let engine = Arc::new(engine);
        if let Some(server) = &server {
            server.set_api(Arc::new(crate::control::ControlApi::new(engine.clone())));
        }
        engine.wait()
    });
    if let Some(server) = server {
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(args.linger_secs.max(0.0));
        while std::time::Instant::now() < deadline && !stop.load(Ordering::SeqCst) && outcome.is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(server) = Arc::try_unwrap(server) {
            server.shutdown(Duration::from_secs(2));
        }
    }
    match outcome {
        Ok(summary) => {
            let dead = summary.dead_letter_total();
            eprintln!("read {} rows in {:.2?}; {} dead letters", summary.rows_read, summary.elapsed, dead);
            for ((origin, reason), count) in &summary.dead_letters {
                eprintln!("  {origin} [{reason}]: {count}");
            }
            ExitCode::SUCCESS
        }
        // Like any Unix filter, stop quietly when the reader has gone (`| head`).
        Err(RunFailure::OutputClosed { .. }) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn start_server(args: &RunArgs, views: Vec<carbonflow_sinks::websocket::ViewSchema>) -> Result<Server, String> {
    let auth = args.auth.as_deref().map(AuthConfig::load).transpose()?;
    let config = ServerConfig {
        listen: args.listen,
        auth,
        heartbeat: Duration::from_secs_f64(args.heartbeat_secs.max(0.001)),
        ..ServerConfig::default()
    };
    let names: Vec<String> = views.iter().map(|view| view.name.clone()).collect();
    let server = Server::start(config, views).map_err(|e| format!("{e} (choose another address with --listen, or --no-server)"))?;
    let address = server.local_addr();
    // The dashboard, the control API (/v1/queries) and /metrics share the address.
    eprintln!("dashboard on http://{address}/");
    if !names.is_empty() {
        eprintln!("serving {} on ws://{address}/v1/stream", names.join(", "));
    }
    Ok(server)
}
