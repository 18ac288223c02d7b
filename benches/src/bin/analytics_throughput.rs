//! End-to-end throughput of the OVER analytics functions: how many price
//! ticks a second carbonflow scores per node in event-time order.
//!
//! ```text
//! cargo run --release -p carbonflow-benches --bin analytics_throughput -- --functions anomaly --workers 1
//! cargo run --release -p carbonflow-benches --bin analytics_throughput -- --functions regime --workers 2
//! ```
//!
//! The ticks are the `throughput` harness's: `--ticks` over `--nodes` from
//! the `simulator` connector (one tick per node a simulated second, no
//! revisions), `WATERMARK FOR ts AS ts - INTERVAL '5' SECOND`, into a
//! `blackhole` sink. `--functions anomaly` computes `ZSCORE` and
//! `ROBUST_ZSCORE` over the last 20 ticks and `EWMA_ZSCORE` with a one-minute
//! half-life; `--functions regime` computes a two-state `HMM_PROBABILITY`,
//! `CUSUM`, `GARCH_VOLATILITY` and `CORR` over the last 20 ticks (see
//! `carbonflow_benches::analytics`). Every tick gets one output row.
//!
//! It prints ticks/s (ticks ÷ the engine run's wall-clock), the elapsed time
//! and the process's peak RSS; a run that reads another number of rows than
//! `--ticks`, or dead-letters any, fails instead.

// The allocator of the `carbonflow` binary, so the harness measures what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use carbonflow_benches::analytics::{Functions, run};
use carbonflow_benches::throughput::{Emit, Workload, peak_rss_mib};
use clap::Parser;

/// Measures ticks/s of the OVER anomaly or regime functions.
#[derive(Debug, Parser)]
#[command(name = "analytics_throughput")]
struct Args {
    /// Ticks in all.
    #[arg(long, default_value_t = 1_000_000)]
    ticks: u64,
    /// Distinct nodes (partitions).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    nodes: u64,
    /// Which functions.
    #[arg(long, value_enum, default_value_t = Functions::Anomaly)]
    functions: Functions,
    /// Engine worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    workers: u64,
    /// Rows read from the source per epoch at most.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// The simulator's seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let workload = Workload {
        ticks: args.ticks,
        nodes: args.nodes,
        seed: args.seed,
        emit: Emit::Final,
    };
    match run(&workload, args.functions, args.workers as usize, args.batch_size as usize) {
        Ok(summary) => {
            let elapsed = summary.elapsed.as_secs_f64();
            println!(
                "{functions:<7} workers={workers} ticks={ticks} nodes={nodes}: {rate:.0} ticks/s, {elapsed:.3} s, peak RSS {peak}",
                functions = args.functions.as_str(),
                workers = args.workers,
                ticks = workload.ticks,
                nodes = workload.nodes,
                rate = workload.ticks as f64 / elapsed.max(1e-9),
                peak = peak_rss_mib().map_or_else(|| "unknown".to_owned(), |mib| format!("{mib:.1} MiB")),
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
