//! `carbonflow webhooks log|status|replay`: the operator's view of a webhook
//! sink's outbox (see `docs/webhooks.md`).
//!
//! The commands open the outbox file directly, so they work while no run
//! holds it; against a running engine they say the file is busy (redb lets
//! one process hold a file).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use carbonflow_core::time::format_timestamp;
use carbonflow_sinks::webhook::audit::{AttemptFilter, AttemptRecord, Outcome};
use carbonflow_sinks::webhook::outbox::{EndpointSummary, MessageState, Outbox, OutboxError, ReplaySelection};
use clap::{Args, Subcommand};

/// The `webhooks` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List delivery attempts, oldest first: time, message, endpoint, attempt, status, latency, outcome.
    Log {
        /// The outbox.
        #[command(flatten)]
        outbox: OutboxArg,
        /// Only this message's attempts.
        #[arg(long)]
        id: Option<String>,
        /// Only this endpoint's (sink table's) attempts.
        #[arg(long)]
        endpoint: Option<String>,
        /// Only attempts that did not deliver.
        #[arg(long)]
        failed: bool,
        /// The most recent N attempts.
        #[arg(long)]
        last: Option<usize>,
    },
    /// Per endpoint: its URL, whether it is enabled, and its messages by state.
    Status {
        /// The outbox.
        #[command(flatten)]
        outbox: OutboxArg,
    },
    /// Send dead messages again (and re-enable their endpoints) on the next run.
    Replay {
        /// The outbox.
        #[command(flatten)]
        outbox: OutboxArg,
        /// This message (dead or delivered).
        #[arg(long, conflicts_with_all = ["endpoint", "all_dead"])]
        id: Option<String>,
        /// Every dead message of this endpoint; re-enables it even if none is dead.
        #[arg(long, conflicts_with = "all_dead")]
        endpoint: Option<String>,
        /// Every dead message.
        #[arg(long)]
        all_dead: bool,
    },
}

/// The outbox file a command reads.
#[derive(Debug, Args)]
pub struct OutboxArg {
    /// The outbox file (the table's 'outbox' option).
    #[arg(long)]
    outbox: PathBuf,
}

/// Runs a `webhooks` subcommand; prints its result or error.
pub fn run(command: WebhooksCommand) -> ExitCode {
    let result = match command {
        WebhooksCommand::Log {
            outbox,
            id,
            endpoint,
            failed,
            last,
        } => open(&outbox.outbox).and_then(|outbox| {
            let filter = AttemptFilter {
                message: id,
                endpoint,
                failed_only: failed,
                last,
            };
            outbox.attempts(&filter).map(|attempts| log_listing(&attempts))
        }),
        WebhooksCommand::Status { outbox } => open(&outbox.outbox).and_then(|outbox| outbox.endpoints().map(|endpoints| status_listing(&endpoints))),
        WebhooksCommand::Replay {
            outbox,
            id,
            endpoint,
            all_dead,
        } => {
            let selection = match (id, endpoint, all_dead) {
                (Some(id), _, _) => ReplaySelection::Message(id),
                (None, Some(endpoint), _) => ReplaySelection::Endpoint(endpoint),
                (None, None, true) => ReplaySelection::AllDead,
                (None, None, false) => {
                    eprintln!("error: say what to replay: --id MESSAGE, --endpoint TABLE or --all-dead");
                    return ExitCode::from(1);
                }
            };
            let now = chrono::Utc::now().timestamp_millis();
            open(&outbox.outbox).and_then(|outbox| outbox.replay(&selection, now)).map(|report| {
                let mut text = format!("{} messages will be sent again by the next run\n", report.messages);
                for endpoint in report.enabled {
                    text.push_str(&format!("endpoint {endpoint} is enabled again\n"));
                }
                text
            })
        }
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn open(path: &Path) -> Result<std::sync::Arc<Outbox>, OutboxError> {
    Outbox::open_existing(path)
}

/// One line per attempt.
pub fn log_listing(attempts: &[AttemptRecord]) -> String {
    let mut out = String::new();
    for attempt in attempts {
        let status = attempt.status.map_or("-".to_owned(), |status| status.to_string());
        let outcome = match attempt.outcome {
            Outcome::Delivered => "delivered".to_owned(),
            Outcome::Retry { at_ms } => format!("retry at {}", format_timestamp(at_ms)),
            Outcome::Dead => "dead".to_owned(),
            Outcome::Parked => "parked (endpoint disabled)".to_owned(),
        };
        out.push_str(&format!(
            "{}  {}  {}  #{}  {status}  {:.1} ms  {outcome}",
            format_timestamp(attempt.at_ms),
            attempt.message,
            attempt.endpoint,
            attempt.attempt,
            attempt.latency_us as f64 / 1_000.0,
        ));
        if attempt.request != attempt.message {
            out.push_str(&format!("  (in batch {})", attempt.request));
        }
        if let Some(error) = &attempt.error {
            out.push_str(&format!("  error: {error}"));
        } else if !attempt.response.is_empty() && !attempt.succeeded() {
            out.push_str(&format!("  response: {}", attempt.response.escape_debug()));
        }
        out.push('\n');
    }
    if attempts.is_empty() {
        out.push_str("no attempts\n");
    }
    out
}

/// One paragraph per endpoint.
pub fn status_listing(endpoints: &[EndpointSummary]) -> String {
    let mut out = String::new();
    for endpoint in endpoints {
        let count = |state| endpoint.messages.get(&state).copied().unwrap_or(0);
        let health = match (&endpoint.record.disabled, endpoint.record.failing_since_ms) {
            (Some(disabled), _) => format!("DISABLED since {}: {}", format_timestamp(disabled.at_ms), disabled.reason),
            (None, Some(since)) => format!("enabled, failing since {}", format_timestamp(since)),
            (None, None) => "enabled".to_owned(),
        };
        out.push_str(&format!("{}  {}  {health}\n", endpoint.name, endpoint.record.url));
        out.push_str(&format!(
            "  pending {}  delivered {}  dead {}",
            count(MessageState::Pending),
            count(MessageState::Delivered),
            count(MessageState::Dead)
        ));
        if let Some(next) = endpoint.next_attempt_ms {
            out.push_str(&format!("  next attempt {}", format_timestamp(next)));
        }
        out.push('\n');
    }
    if endpoints.is_empty() {
        out.push_str("no endpoints\n");
    }
    out
}
