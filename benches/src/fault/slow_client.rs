//! WebSocket subscribers 100× slower than the stream: the simulator feeds
//! 20,000 ticks a second for 20 s into two views, `latest` (keyed: a row per
//! node) and `every_tick` (a row per tick, no key). Each view has a fast
//! subscriber that reads as it comes and a slow one (the library's
//! [`Subscriber`], with a 4 KiB receive buffer) that, after each diff,
//! sleeps as long as 200 rows a second would take to process (at most 2 s).
//! The server must stay bounded: conflate the slow client's changes by key,
//! or close it with 4008 (slow consumer), after which it reconnects and
//! resumes. At the end each slow replica is compared with the fast one.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use carbonflow_core::Row;
use carbonflow_sinks::websocket::client::{ClientOptions, EventKind, Subscriber};

use super::{Outcome, Suite, compare};

/// Ticks a second the simulator emits.
const STREAM_ROWS_PER_SECOND: u64 = 20_000;
const ROWS: u64 = 400_000;
/// How much slower the slow clients process rows than the stream produces them.
const SLOWDOWN: u64 = 100;
/// The longest a slow client spends on one message.
const MAX_PAUSE: Duration = Duration::from_secs(2);

fn query() -> String {
    format!(
        "CREATE TABLE ticks (market STRING, node STRING, ts TIMESTAMP(3), price DOUBLE,
             PRIMARY KEY (market, node, ts) NOT ENFORCED, WATERMARK FOR ts AS ts - INTERVAL '20' MINUTE)
         WITH ('connector' = 'simulator', 'seed' = '11', 'nodes' = '200', 'number-of-rows' = '{ROWS}',
               'rows-per-second' = '{STREAM_ROWS_PER_SECOND}');
         CREATE VIEW every_tick AS SELECT market, node, ts, price FROM ticks;
         CREATE VIEW latest AS SELECT market, node, COUNT(*) AS ticks, MAX(ts) AS last_ts FROM ticks GROUP BY market, node;"
    )
}

/// What one subscriber ended with.
struct Reading {
    rows: Vec<Row>,
    diffs: u64,
    reconnects: u64,
    close_code: Option<u16>,
}

/// Reads `view` until it is complete (frontier at the end of time); a slow
/// reader pauses after each diff.
async fn read(url: String, view: &str, slow: bool) -> anyhow::Result<Reading> {
    let mut options = ClientOptions::new(url);
    options.max_attempts = Some(50);
    if slow {
        options.receive_buffer = Some(4096);
    }
    let mut subscriber = Subscriber::new(options, view, BTreeMap::new());
    let mut diffs = 0;
    let mut close_code = None;
    loop {
        let event = subscriber.next().await.with_context(|| format!("reading {view}"))?;
        close_code = subscriber.last_close_code().or(close_code);
        if event.kind == EventKind::Diff {
            diffs += 1;
            if slow {
                let rows = subscriber.last_added().len().max(1) as u64;
                let pause = Duration::from_secs_f64(rows as f64 * SLOWDOWN as f64 / STREAM_ROWS_PER_SECOND as f64).min(MAX_PAUSE);
                tokio::time::sleep(pause).await;
            }
        }
        if event.frontier == Some(i64::MAX) {
            break;
        }
    }
    Ok(Reading {
        rows: subscriber.replica().rows(),
        diffs,
        reconnects: subscriber.reconnects(),
        close_code,
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs the scenario; one outcome per view.
pub fn run(suite: &Suite) -> anyhow::Result<Vec<Outcome>> {
    let dir = suite.scenario_dir("slow-websocket-client")?;
    let file = dir.join("views.sql");
    std::fs::write(&file, query())?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let engine = suite.start_engine(&file, &["--listen", &address, "--linger-secs", "600"], &dir.join("engine.log"))?;
    let url = format!("ws://{address}/v1/stream");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let started = Instant::now();
    let readings = runtime.block_on(async {
        // The server is up once the engine has built its views.
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(&address).await.is_err() {
            ensure!(Instant::now() < deadline, "the engine never listened on {address}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let tasks: Vec<_> = [("latest", false), ("latest", true), ("every_tick", false), ("every_tick", true)]
            .into_iter()
            .map(|(view, slow)| tokio::spawn(read(url.clone(), view, slow)))
            .collect();
        let mut readings = Vec::new();
        for task in tasks {
            readings.push(
                tokio::time::timeout(Duration::from_secs(600), task)
                    .await
                    .context("a subscriber timed out")???,
            );
        }
        anyhow::Ok(readings)
    })?;
    let elapsed = started.elapsed();
    let (status, peak_kib) = engine.interrupt(Duration::from_secs(60))?;
    ensure!(status.success(), "the engine failed: {status}");
    let mut readings = readings.into_iter();
    let mut outcomes = Vec::new();
    for view in ["latest", "every_tick"] {
        let (fast, slow) = (readings.next().context("fast")?, readings.next().context("slow")?);
        if view == "latest" {
            let counted: i64 = fast.rows.iter().filter_map(|row| row.get(2).as_i64()).sum();
            ensure!(counted == ROWS as i64, "the fast subscriber of latest counts {counted} ticks, not {ROWS}");
        }
        let (lost, duplicated) = compare(&fast.rows, &slow.rows);
        let behaviour = match slow.close_code {
            Some(4008) => format!("closed with 4008 (slow consumer), reconnected {} times and resumed", slow.reconnects),
            Some(code) => format!("closed with {code}, reconnected {} times", slow.reconnects),
            None => format!(
                "conflated: {} diffs to the slow client against {} to the fast one, never closed",
                slow.diffs, fast.diffs
            ),
        };
        outcomes.push(Outcome {
            name: format!("slow-websocket-client ({view})"),
            fault: format!(
                "The simulator streams {STREAM_ROWS_PER_SECOND} ticks/s for {} s into the view `{view}` ({}). A fast subscriber and one {SLOWDOWN}× slower (pauses rows/{} s after each diff, at most {} s; 4 KiB receive buffer) read it to its end; the slow replica is compared with the fast one. The views of both scenarios share one engine process, so the peak RSS is that process's.",
                ROWS / STREAM_ROWS_PER_SECOND,
                if view == "latest" { "keyed by market and node: 200 rows" } else { "no key: a row per tick" },
                STREAM_ROWS_PER_SECOND / SLOWDOWN,
                MAX_PAUSE.as_secs()
            ),
            lost,
            duplicated,
            peak_rss_kib: peak_kib,
            notes: vec![behaviour, format!("{} rows in the final view", fast.rows.len()), format!("both caught up after {:.1} s", elapsed.as_secs_f64())],
        });
    }
    Ok(outcomes)
}
