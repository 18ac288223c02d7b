//! The `carbonflow` command line: `check`, `explain` and `run` a query file.
//!
//! Errors in the file are printed with the file, line and column and a caret
//! under the offending token; the exit code is 1 for a bad query and 2 when a
//! run fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

use crate::plan::{Program, TableRole};
use crate::runtime::{RunFailure, RunOptions, connector_view};
use crate::sql::SqlError;

/// carbonflow: incremental SQL over energy market feeds.
#[derive(Debug, Parser)]
#[command(name = "carbonflow", version, about)]
pub struct Cli {
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
    /// Run a query file: until its inputs are exhausted, or Ctrl-C.
    Run {
        /// The query file.
        file: PathBuf,
        /// Worker threads.
        #[arg(long, short = 'w', default_value_t = 1, env = "CARBONFLOW_WORKERS")]
        workers: usize,
        /// Rows read from a source per epoch at most.
        #[arg(long, default_value_t = 4096)]
        batch_size: usize,
        /// Write dead letters (bad rows, late events) to this file as JSON lines.
        #[arg(long)]
        dead_letter: Option<PathBuf>,
        /// Do not draw a progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Inspect a webhook sink's outbox: delivery attempts, endpoint status, replays.
    Webhooks {
        /// What to do.
        #[command(subcommand)]
        command: crate::webhooks_cli::WebhooksCommand,
    },
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
        Command::Run {
            file,
            workers,
            batch_size,
            dead_letter,
            no_progress,
        } => {
            let program = match load(&file) {
                Ok(program) => program,
                Err(LoadError(text)) => {
                    eprint!("{text}");
                    return ExitCode::from(1);
                }
            };
            let stop = Arc::new(AtomicBool::new(false));
            let handler_stop = stop.clone();
            // First Ctrl-C: stop reading, drain, finish sinks. Second: leave now.
            let _ = ctrlc::set_handler(move || {
                if handler_stop.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\nstopping: draining the dataflow and finishing the sinks (Ctrl-C again to quit at once)");
            });
            let options = RunOptions {
                workers,
                batch_size: batch_size.max(1),
                dead_letter_path: dead_letter,
                show_progress: !no_progress,
                stop,
            };
            match crate::runtime::run(Arc::new(program), options) {
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
    }
}
