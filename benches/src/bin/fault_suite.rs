//! The fault suite's command line: runs the scenarios of
//! [`carbonflow_benches::fault`] against a `carbonflow` binary and writes the
//! report.
//!
//! ```text
//! scripts/fault-suite.sh                       # builds, runs every scenario, writes docs/fault-report.md
//! cargo run -p carbonflow-benches --bin fault_suite -- --carbonflow target/debug/carbonflow --only fuzzed-rows
//! ```
//!
//! The Kafka scenarios start a broker of their own with durable storage
//! (`scripts/kafka-broker.sh start --durable`), whatever
//! `CARBONFLOW_KAFKA_BOOTSTRAP` says, since one of them restarts it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use carbonflow_benches::fault::{self, Outcome, Suite, kafka};
use carbonflow_core::time::format_timestamp;
use clap::Parser;

/// Runs the fault scenarios and writes a Markdown report.
#[derive(Debug, Parser)]
#[command(name = "fault_suite")]
struct Args {
    /// The `carbonflow` binary under test.
    #[arg(long)]
    carbonflow: PathBuf,
    /// Scratch directory (query files, inputs, outboxes, engine logs).
    #[arg(long, default_value = "target/fault-suite")]
    work: PathBuf,
    /// Where to write the report.
    #[arg(long, default_value = "docs/fault-report.md")]
    report: PathBuf,
    /// The command line to print in the report (the script passes its own).
    #[arg(long)]
    command: Option<String>,
    /// Run only these scenarios.
    #[arg(long, value_enum)]
    only: Vec<Scenario>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    KafkaSigkill,
    KafkaBrokerRestart,
    WebhookOutage,
    SlowClient,
    FuzzedRows,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let started = format_timestamp(i64::try_from(started.as_millis())?)[..19].to_owned() + " UTC";
    std::fs::create_dir_all(&args.work).with_context(|| args.work.display().to_string())?;
    let suite = Suite {
        carbonflow: args.carbonflow.canonicalize().with_context(|| args.carbonflow.display().to_string())?,
        work: args.work.canonicalize()?,
    };
    let wanted = |scenario| args.only.is_empty() || args.only.contains(&scenario);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut report = |outcome: Outcome| {
        eprintln!(
            "{}: lost {}, duplicated {}, peak RSS {:.1} MiB; {}",
            outcome.name,
            outcome.lost,
            outcome.duplicated,
            outcome.peak_rss_kib as f64 / 1024.0,
            outcome.notes.join("; ")
        );
        outcomes.push(outcome);
    };
    if wanted(Scenario::KafkaSigkill) || wanted(Scenario::KafkaBrokerRestart) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka-broker.sh");
        let broker = kafka::Broker::start(&script, &suite.work.join("broker"))?;
        if wanted(Scenario::KafkaSigkill) {
            report(kafka::run(&suite, &broker, kafka::Fault::KillEngine)?);
        }
        if wanted(Scenario::KafkaBrokerRestart) {
            report(kafka::run(&suite, &broker, kafka::Fault::RestartBroker)?);
        }
    }
    if wanted(Scenario::WebhookOutage) {
        report(fault::webhook_outage::run(&suite)?);
    }
    if wanted(Scenario::SlowClient) {
        for outcome in fault::slow_client::run(&suite)? {
            report(outcome);
        }
    }
    if wanted(Scenario::FuzzedRows) {
        report(fault::fuzzed_rows::run(&suite)?);
    }
    let command = args.command.unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    fault::write_report(&args.report, &command, &started, &outcomes)?;
    eprintln!("report written to {}", args.report.display());
    Ok(())
}
