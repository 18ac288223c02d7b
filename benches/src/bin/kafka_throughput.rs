//! Kafka → engine → Kafka throughput: how many ticks a second carbonflow
//! reads from a topic, aggregates and writes back to a topic.
//!
//! ```text
//! bash benches/run-kafka-throughput.sh          # starts a broker, builds in release, runs 1 and 2 workers
//! CARBONFLOW_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo run --release -p carbonflow-benches --bin kafka_throughput -- --workers 2
//! ```
//!
//! Untimed: the ticks of the `throughput` workload (the simulator, one tick
//! per node a simulated second, no revisions) are produced as JSON (or
//! MessagePack) messages to a fresh topic of `--partitions` partitions,
//! node `n` on partition `n % partitions`. Timed: the engine run of
//!
//! ```sql
//! INSERT INTO windows  -- 'connector' = 'kafka', 'format' = 'json', 'key.fields' = 'node'
//! SELECT node, window_start, window_end, COUNT(*), AVG(price), MIN(price), MAX(price), SUM(price)
//! FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTES))
//! GROUP BY node, window_start, window_end EMIT FINAL
//! ```
//!
//! reading the topic from the earliest offset to its end (`scan.bounded.mode`
//! = `latest-offset`) and ending when the sink has delivered every window to
//! the output topic (the sink's `finish` waits for the broker's acks). The
//! rate is ticks over that wall-clock time. The run fails unless the engine
//! read exactly `--ticks` rows with no dead letter and the output topic holds
//! one message per window. With `--output-csv FILE` it appends
//! `timestamp,format,workers,partitions,ticks,nodes,elapsed_s,ticks_per_s,windows,git_rev`.

// The allocator of the `carbonflow` binary (see engine/src/main.rs), so the
// harness measures what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, ensure};
use carbonflow::runtime::{RunOptions, run};
use carbonflow_benches::throughput::{Emit, WATERMARK_DELAY_MS, WINDOW_MS, Workload, git_rev, simulate};
use carbonflow_core::time::format_timestamp;
use carbonflow_sources::kafka::testkit::{self, Record};
use clap::Parser;

/// Measures ticks/s from a Kafka topic through a tumbling 1-minute aggregation to a Kafka topic.
#[derive(Debug, Parser)]
#[command(name = "kafka_throughput")]
struct Args {
    /// Ticks in all.
    #[arg(long, default_value_t = 1_000_000)]
    ticks: u64,
    /// Distinct nodes.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    nodes: u64,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Engine worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    workers: u64,
    /// Rows read from a source per epoch at most.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// The message format of the input topic.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// The simulator's seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Append the result as a CSV row to this file (with a header if it is new).
    #[arg(long)]
    output_csv: Option<PathBuf>,
}

/// The message format of the input topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Json,
    Msgpack,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Msgpack => "msgpack",
        }
    }

    /// One tick as a message value.
    fn encode(self, node: &str, ts: i64, price: f64) -> anyhow::Result<Vec<u8>> {
        let tick = serde_json::json!({"node": node, "ts": format_timestamp(ts), "price": price});
        Ok(match self {
            Format::Json => serde_json::to_vec(&tick)?,
            Format::Msgpack => rmp_serde::to_vec_named(&tick)?,
        })
    }
}

fn main() -> ExitCode {
    match measure(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn measure(args: Args) -> anyhow::Result<()> {
    let bootstrap = testkit::bootstrap();
    let workload = Workload {
        ticks: args.ticks,
        nodes: args.nodes,
        seed: args.seed,
        emit: Emit::Final,
    };
    let input = testkit::unique_topic("bench-ticks");
    let output = testkit::unique_topic("bench-windows");
    testkit::create_topic(&bootstrap, &input, args.partitions);
    testkit::create_topic(&bootstrap, &output, args.partitions);
    let mut messages = Vec::with_capacity(usize::try_from(args.ticks)?);
    // Every (node, minute) with a tick is one window of the output.
    let mut windows_expected = std::collections::HashSet::new();
    let mut encoded = Ok(());
    simulate(&workload, |id, node, ts, price| {
        windows_expected.insert((id, ts.div_euclid(WINDOW_MS)));
        match args.format.encode(node, ts, price) {
            Ok(value) => messages.push(Record::value(i32::try_from(id).unwrap_or(0) % args.partitions, value)),
            Err(error) => encoded = Err(error),
        }
    })?;
    encoded?;
    let preload = std::time::Instant::now();
    testkit::produce(&bootstrap, &input, messages);
    eprintln!("preloaded {} ticks in {:.1} s", args.ticks, preload.elapsed().as_secs_f64());

    let sql = format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '{delay}' SECOND)
         WITH ('connector' = 'kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{bootstrap}', 'format' = '{format}',
               'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
         CREATE TABLE windows (node STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT,
                               avg_price DOUBLE, low DOUBLE, high DOUBLE, total DOUBLE)
         WITH ('connector' = 'kafka', 'topic' = '{output}', 'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json',
               'key.fields' = 'node');
         INSERT INTO windows
         SELECT node, window_start, window_end, COUNT(*), AVG(price), MIN(price), MAX(price), SUM(price)
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTES))
         GROUP BY node, window_start, window_end EMIT FINAL;",
        delay = WATERMARK_DELAY_MS / 1000,
        format = args.format.as_str(),
    );
    let program = carbonflow::cli::check_text(&sql).map_err(|error| anyhow::anyhow!("{}", error.render("kafka_throughput.sql", &sql)))?;
    let options = RunOptions {
        workers: usize::try_from(args.workers)?,
        batch_size: usize::try_from(args.batch_size)?,
        ..RunOptions::default()
    };
    let summary = run(Arc::new(program), options).context("the engine run")?;
    ensure!(
        summary.rows_read == args.ticks,
        "the engine read {} rows, not {}",
        summary.rows_read,
        args.ticks
    );
    ensure!(summary.dead_letter_total() == 0, "the engine produced dead letters: {:?}", summary.dead_letters);
    let windows = testkit::consume_all(&bootstrap, &output).len();
    ensure!(
        windows == windows_expected.len(),
        "{windows} windows in the output topic, not {}",
        windows_expected.len()
    );

    let elapsed = summary.elapsed.as_secs_f64();
    let rate = args.ticks as f64 / elapsed;
    println!(
        "kafka {format} workers={workers} partitions={partitions} ticks={ticks} nodes={nodes}: {rate:.0} ticks/s, {elapsed:.3} s, {windows} windows",
        format = args.format.as_str(),
        workers = args.workers,
        partitions = args.partitions,
        ticks = args.ticks,
        nodes = args.nodes,
    );
    if let Some(path) = &args.output_csv {
        let new = !path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| path.display().to_string())?;
        if new {
            writeln!(file, "timestamp,format,workers,partitions,ticks,nodes,elapsed_s,ticks_per_s,windows,git_rev")?;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        writeln!(
            file,
            "{},{},{},{},{},{},{elapsed:.3},{rate:.0},{windows},{}",
            format_timestamp(i64::try_from(now.as_millis())?),
            args.format.as_str(),
            args.workers,
            args.partitions,
            args.ticks,
            args.nodes,
            git_rev().unwrap_or_default(),
        )?;
    }
    Ok(())
}
