//! End-to-end latency: from a tick's ingest to a WebSocket client holding
//! the view row it changed, on loopback.
//!
//! ```text
//! cargo run --release -p carbonflow-benches --bin ws_latency -- --rate 100000 --seconds 20
//! cargo run --release -p carbonflow-benches --bin ws_latency -- --rate 100000 --seconds 20 --deflate per-message
//! ```
//!
//! An open-loop generator (the `simulator` source paced at `--rate` ticks a
//! second, whatever the engine does) stamps every tick with its wall-clock
//! emission time (`ingest_ns`). The engine maintains the latest-price board of
//! `--nodes` nodes,
//!
//! ```sql
//! CREATE VIEW board AS
//! SELECT market, node, COUNT(*) AS ticks, MAX(price) AS high, MAX(ingest_ns) AS ingest_ns
//! FROM ticks GROUP BY market, node
//! ```
//!
//! served by the real WebSocket server; the real client library
//! (`carbonflow_sinks::websocket::client::Subscriber`, MessagePack) subscribes
//! over loopback. For every upserted row the client receives, the latency is
//! its receive time minus the row's `ingest_ns`: the age of the newest tick
//! that row reflects. The first `--warmup-seconds` are not recorded. It prints
//! p50/p99/p99.9/max from an HDR histogram, the rate achieved and the bytes
//! the client read from the socket (`--deflate` has it offer
//! permessage-deflate, against the server's `Compression` of that name).

// The allocator of the `carbonflow` binary (see engine/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use carbonflow::runtime::{RunOptions, run};
use carbonflow_sinks::websocket::client::{ClientOptions, EventKind, Subscriber};
use carbonflow_sinks::websocket::{Compression, Server, ServerConfig};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;

/// Measures ingest → WebSocket client latency at a fixed input rate.
#[derive(Debug, Parser)]
#[command(name = "ws_latency")]
struct Args {
    /// Ticks per second offered by the generator.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// How long to offer them.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Nodes on the board (keys of the view).
    #[arg(long, default_value_t = 1000)]
    nodes: u64,
    /// Engine worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Rows a source reads per epoch at most.
    #[arg(long, default_value_t = 4096)]
    batch_size: usize,
    /// Seconds at the start not recorded.
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// permessage-deflate: `off` (the client does not offer it), or offered
    /// to a server compressing each message on its own, or keeping its context.
    #[arg(long, value_enum, default_value_t = Deflate::Off)]
    deflate: Deflate,
}

/// What the client offers and the server does with it.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Deflate {
    Off,
    PerMessage,
    ContextTakeover,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
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
    let ticks = args.rate * args.seconds;
    let sql = format!(
        "CREATE TABLE ticks (market STRING, node STRING, ts TIMESTAMP(3), price DOUBLE, ingest_ns BIGINT,
             WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
         WITH ('connector' = 'simulator', 'seed' = '1', 'nodes' = '{nodes}', 'number-of-rows' = '{ticks}',
               'rows-per-second' = '{rate}', 'revision-probability' = '0');
         CREATE VIEW board AS
         SELECT market, node, window_start, COUNT(*) AS ticks, LAST_VALUE(price) AS price, MAX(ingest_ns) AS ingest_ns
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' HOUR))
         GROUP BY market, node, window_start, window_end;",
        nodes = args.nodes,
        rate = args.rate,
    );
    let program = Arc::new(carbonflow::cli::check_text(&sql).map_err(|e| anyhow::anyhow!("{}", e.render("ws_latency.sql", &sql)))?);
    let server = Arc::new(Server::start(
        ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            compression: match args.deflate {
                Deflate::Off | Deflate::PerMessage => Compression::PerMessage,
                Deflate::ContextTakeover => Compression::ContextTakeover,
            },
            ..ServerConfig::default()
        },
        carbonflow::serve::subscribable_views(&program),
    )?);
    let url = format!("ws://{}/v1/stream", server.local_addr());
    let client_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let options = ClientOptions {
        deflate: !matches!(args.deflate, Deflate::Off),
        ..ClientOptions::new(url)
    };
    let mut subscriber = Subscriber::new(options, "board", BTreeMap::new());
    let first = client_runtime.block_on(subscriber.next())?;
    if first.kind != EventKind::Snapshot {
        bail!("expected a snapshot first, got {first:?}");
    }
    let ingest_column = subscriber
        .replica()
        .columns()
        .iter()
        .position(|c| c.name == "ingest_ns")
        .context("ingest_ns column")?;

    let engine_server = server.clone();
    let (workers, batch_size) = (args.workers, args.batch_size);
    let started = Instant::now();
    let engine = std::thread::spawn(move || {
        run(
            program,
            RunOptions {
                workers,
                batch_size,
                server: Some(engine_server),
                ..RunOptions::default()
            },
        )
    });

    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let warmup = Duration::from_secs(args.warmup_seconds);
    let mut diffs = 0u64;
    client_runtime.block_on(async {
        loop {
            let event = subscriber.next().await?;
            let received = now_ns();
            if event.kind == EventKind::Diff {
                diffs += 1;
                if started.elapsed() >= warmup {
                    for row in subscriber.last_added() {
                        let ingest = row.get(ingest_column).as_i64().context("ingest_ns is an integer")?;
                        histogram.record(u64::try_from((received - ingest) / 1000).unwrap_or(0).max(1))?;
                    }
                }
            }
            if event.frontier == Some(i64::MAX) {
                return anyhow::Ok(());
            }
        }
    })?;
    let summary = engine.join().map_err(|_| anyhow::anyhow!("the engine panicked"))??;
    let elapsed = started.elapsed();
    if summary.rows_read != ticks {
        bail!("the engine read {} rows, expected {ticks}", summary.rows_read);
    }
    let counted: i64 = subscriber.replica().rows().iter().map(|row| row.get(3).as_i64().unwrap_or(0)).sum();
    if counted != ticks as i64 {
        bail!("the client's board counts {counted} ticks, expected {ticks}");
    }
    let micros = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "offered {} ticks/s for {} s ({} workers, deflate {:?}): achieved {:.0} ticks/s; {} diffs, {} row samples, {} bytes received; ingest -> client latency ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        args.rate,
        args.seconds,
        args.workers,
        args.deflate,
        ticks as f64 / elapsed.as_secs_f64(),
        diffs,
        histogram.len(),
        subscriber.bytes_received(),
        micros(0.5),
        micros(0.99),
        micros(0.999),
        histogram.max() as f64 / 1000.0
    );
    if let Ok(server) = Arc::try_unwrap(server) {
        server.shutdown(Duration::from_secs(2));
    }
    Ok(())
}
