//! Webhook alert latency and delivery throughput to a local receiver.
//!
//! ```text
//! cargo run --release -p carbonflow-benches --bin webhook_latency -- --rate 500 --alerts 10000
//! cargo run --release -p carbonflow-benches --bin webhook_latency -- --rate 0 --alerts 20000
//! ```
//!
//! The engine runs (in this process, one worker) a query over the
//! `simulator` source whose every tick is an alert:
//!
//! ```sql
//! INSERT INTO partner_alerts SELECT node, ts, price, ingest_ns FROM ticks
//! ```
//!
//! into a `webhook` sink posting to a verifying receiver on loopback
//! (`carbonflow_sinks::webhook::receiver`, which checks every signature).
//! `--rate` paces the simulator (ticks, hence alerts, per second; 0 for as
//! fast as it goes). Latency runs from `ingest_ns`, the wall clock when the
//! simulator emitted the tick, to the moment the receiver had the whole
//! request and answered 200: source, dataflow, outbox commit (an fsync per
//! epoch), signing and HTTP included. Latencies go into an HDR histogram
//! (microseconds, 3 significant digits). Throughput is deliveries per second
//! between the first and the last request the receiver accepted.
//!
//! The run fails unless the receiver accepted every alert exactly once, each
//! verified. The outbox lives in a temporary directory (`--outbox-dir` to put
//! it on another disk).

// The allocator of the `carbonflow` binary (see engine/src/main.rs), so the
// harness measures what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use hdrhistogram::Histogram;

use carbonflow::cli::check_text;
use carbonflow::runtime::{RunOptions, run};
use carbonflow_sinks::webhook::receiver::Receiver;
use carbonflow_sinks::webhook::signature::SigningSecret;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Webhook alert latency (ingest to the receiver's 200) and deliveries/s.
#[derive(Debug, Parser)]
struct Args {
    /// Alerts (simulator ticks) in the run.
    #[arg(long, default_value_t = 10_000)]
    alerts: u64,
    /// Alerts offered per second; 0 for as fast as the simulator goes.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// The sink's 'max-in-flight'.
    #[arg(long, default_value_t = 16)]
    max_in_flight: usize,
    /// The sink's 'batch.size'.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// The sink's 'format': json or msgpack.
    #[arg(long, default_value = "json")]
    format: String,
    /// Where the outbox file goes (a temporary directory by default).
    #[arg(long)]
    outbox_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.format == "json", "latency is read from JSON bodies; --format msgpack is not measured here");
    let receiver = Receiver::start(SigningSecret::parse_list(SECRET)?)?;
    let temporary = tempfile::tempdir()?;
    let outbox = args.outbox_dir.clone().unwrap_or_else(|| temporary.path().to_owned()).join("bench-outbox.redb");
    let rate = if args.rate == 0 {
        String::new()
    } else {
        format!(", 'rows-per-second' = '{}'", args.rate)
    };
    let sql = format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, ingest_ns BIGINT)
         WITH ('connector' = 'simulator', 'nodes' = '100', 'number-of-rows' = '{alerts}', 'revision-probability' = '0'{rate});
         CREATE TABLE partner_alerts (node STRING, ts TIMESTAMP(3), price DOUBLE, ingest_ns BIGINT)
         WITH ('connector' = 'webhook', 'url' = '{url}', 'secret' = '{SECRET}', 'outbox' = '{outbox}',
               'allow-private-network' = 'true', 'max-in-flight' = '{in_flight}', 'batch.size' = '{batch}',
               'drain-timeout' = '10 min');
         INSERT INTO partner_alerts SELECT node, ts, price, ingest_ns FROM ticks;",
        alerts = args.alerts,
        url = receiver.url(),
        outbox = outbox.display(),
        in_flight = args.max_in_flight,
        batch = args.batch_size,
    );
    let program = check_text(&sql).map_err(|error| anyhow::anyhow!(error.render("bench.sql", &sql)))?;
    let summary = run(Arc::new(program), RunOptions::default()).context("the engine run")?;
    ensure!(summary.rows_read == args.alerts, "read {} rows, expected {}", summary.rows_read, args.alerts);

    let requests = receiver.requests();
    ensure!(requests.iter().all(|request| request.accepted()), "every request verifies and is accepted");
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut seen = HashSet::new();
    for request in &requests {
        let body: serde_json::Value = serde_json::from_slice(&request.body)?;
        let events: Vec<&serde_json::Value> = match &body {
            serde_json::Value::Array(batch) => batch.iter().map(|event| &event["data"]).collect(),
            single => vec![single],
        };
        let received_ns = request.received_at.duration_since(SystemTime::UNIX_EPOCH)?.as_nanos() as i64;
        for event in events {
            let ingest_ns = event["ingest_ns"].as_i64().context("an ingest_ns in every alert")?;
            if !seen.insert((event["node"].to_string(), event["ts"].to_string(), ingest_ns)) {
                bail!("an alert arrived twice: {event}");
            }
            histogram.record(u64::try_from((received_ns - ingest_ns) / 1_000).unwrap_or(0))?;
        }
    }
    ensure!(seen.len() as u64 == args.alerts, "{} alerts arrived, expected {}", seen.len(), args.alerts);
    let first = requests.iter().map(|request| request.received_at).min().context("requests")?;
    let last = requests.iter().map(|request| request.received_at).max().context("requests")?;
    let span = last.duration_since(first).unwrap_or(Duration::ZERO).as_secs_f64();
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1_000.0;
    println!(
        "alerts {} rate {} in-flight {} batch {}: {} requests, {:.0} deliveries/s, latency ms p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        args.alerts,
        if args.rate == 0 { "unpaced".to_owned() } else { format!("{}/s", args.rate) },
        args.max_in_flight,
        args.batch_size,
        requests.len(),
        seen.len() as f64 / span.max(1e-9),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1_000.0,
    );
    Ok(())
}
