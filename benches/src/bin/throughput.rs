//! End-to-end throughput: how many price ticks a second carbonflow pushes
//! through a tumbling 1-minute aggregation, and how far that is from a
//! hand-written loop doing the same work.
//!
//! ```text
//! cargo run --release -p carbonflow-benches --bin throughput -- --ticks 1000000 --nodes 1000 --workers 1
//! ```
//!
//! The workload is `--ticks` ticks over `--nodes` nodes, one tick per node a
//! simulated second, aggregated per node and minute into a `blackhole` sink:
//!
//! ```sql
//! SELECT node, window_start, window_end, COUNT(*), AVG(price), MIN(price), MAX(price), SUM(price)
//! FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTES))
//! GROUP BY node, window_start, window_end
//! ```
//!
//! `--source` picks how the ticks arrive:
//! * `memory`: the engine runs the `simulator` connector (generated in
//!   process, no I/O).
//! * `csv`: the same ticks are first written as header-less CSV to a temporary
//!   directory, one file per worker (untimed), then the engine reads them with
//!   the `filesystem` source (timed).
//! * `handloop`: the ceiling; the same ticks are first generated into a `Vec`
//!   (untimed), then one thread aggregates them with a `HashMap` and emits each
//!   window once the watermark passes it (timed). `--workers` is ignored.
//!
//! It prints one line with ticks/s, the timed wall-clock and the peak memory,
//! which is the process's peak resident set size (`VmHWM` from
//! `/proc/self/status`, read at the end): everything the process ever held,
//! tick generation included. With `--output-csv FILE` it appends a row
//! (`timestamp,mode,workers,ticks,nodes,elapsed_s,ticks_per_s,peak_rss_mb,git_rev`).
//! The engine modes fail unless the engine read exactly `--ticks` rows and
//! produced no dead letters.

// The allocator of the `carbonflow` binary (see engine/src/main.rs), so the
// harness measures what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use carbonflow_benches::throughput::{Emit, Mode, ResultRow, Workload, git_rev, measure, peak_rss_mib};
use clap::Parser;

/// Measures ticks/s of a tumbling 1-minute aggregation, engine against hand loop.
#[derive(Debug, Parser)]
#[command(name = "throughput")]
struct Args {
    /// Ticks in all.
    #[arg(long, default_value_t = 1_000_000)]
    ticks: u64,
    /// Distinct nodes.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    nodes: u64,
    /// How the ticks arrive.
    #[arg(long, value_enum, default_value_t = Mode::Memory)]
    source: Mode,
    /// Engine worker threads (the hand loop always uses one).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    workers: u64,
    /// Rows read from a source per epoch at most (the hand loop's step size too).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// The simulator's seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The engine's emit mode.
    #[arg(long, value_enum, default_value_t = Emit::Final)]
    emit: Emit,
    /// Append the result as a CSV row to this file (with a header if it is new).
    #[arg(long)]
    output_csv: Option<PathBuf>,
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
    let workload = Workload {
        ticks: args.ticks,
        nodes: args.nodes,
        seed: args.seed,
        emit: args.emit,
    };
    let workers = if args.source.is_hand_loop() { 1 } else { usize::try_from(args.workers)? };
    let batch_size = usize::try_from(args.batch_size)?;
    let measurement = measure(args.source, &workload, workers, batch_size).with_context(|| format!("{} run", args.source.as_str()))?;
    let peak = peak_rss_mib();
    let windows = measurement.windows.map_or_else(String::new, |windows| format!(", {windows} windows"));
    println!(
        "{mode:<8} emit={emit} workers={workers} ticks={ticks} nodes={nodes}: {rate:.0} ticks/s, {elapsed:.3} s, peak RSS {peak}{windows}",
        mode = args.source.as_str(),
        emit = if args.source.is_hand_loop() { "final" } else { args.emit.as_str() },
        ticks = workload.ticks,
        nodes = workload.nodes,
        rate = measurement.ticks_per_second(&workload),
        elapsed = measurement.elapsed.as_secs_f64(),
        peak = peak.map_or_else(|| "unknown".to_owned(), |mib| format!("{mib:.1} MiB")),
    );
    if let Some(path) = &args.output_csv {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let row = ResultRow {
            timestamp: carbonflow_core::time::format_timestamp(i64::try_from(now.as_millis())?),
            mode: args.source,
            workers,
            workload,
            measurement,
            peak_rss_mib: peak,
            git_rev: git_rev(),
        };
        row.append_to(path)?;
    }
    Ok(())
}
