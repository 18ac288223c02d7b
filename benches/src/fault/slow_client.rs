//! WebSocket subscribers 100× slower than the stream: the simulator feeds
//! 20,000 ticks a second for 20 s into two views, `latest` (keyed: a row per
//! node) and `every_tick` (a row per tick, no key). Each view has a fast
//! subscriber that reads as it comes and a slow one (the library's
//! [`Subscriber`], with a 4 KiB receive buffer) that reads messages at a
//! hundredth of the fast one's rate: after each diff it pauses 100 times the
//! fast subscriber's mean time between diffs, until the fast one has the
//! whole view; then it reads what is left without pausing, so the final
//! replicas can be compared. The server must stay bounded:
//! conflate the slow client's changes, or close it with 4008 (slow
//! consumer), after which it reconnects and resumes. At the end each slow
//! replica is compared with the fast one.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use carbonflow_core::Row;
use carbonflow_sinks::websocket::client::{ClientOptions, EventKind, Subscriber};

use super::{Outcome, Suite, compare};

/// Ticks a second the simulator emits.
const STREAM_ROWS_PER_SECOND: u64 = 20_000;
const ROWS: u64 = 400_000;
/// How many times fewer messages the slow clients read than the fast ones.
const SLOWDOWN: u32 = 100;

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

/// The pace of a fast subscriber's diffs: the first and last arrival and how many.
#[derive(Default)]
struct Pace {
    first: Option<Instant>,
    last: Option<Instant>,
    diffs: u32,
    /// The fast subscriber has the complete view.
    done: bool,
}

impl Pace {
    fn record(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.diffs += 1;
    }

    /// The mean time between diffs so far (none before the second).
    fn mean_gap(&self) -> Option<Duration> {
        let (first, last) = (self.first?, self.last?);
        (self.diffs > 1).then(|| (last - first) / (self.diffs - 1))
    }
}

/// What one subscriber ended with.
struct Reading {
    rows: Vec<Row>,
    diffs: u64,
    reconnects: u64,
    close_code: Option<u16>,
    paused: Duration,
}

/// Reads `view` until it is complete (frontier at the end of time). A fast
/// reader records its pace; a slow one pauses after each diff for
/// [`SLOWDOWN`] times the fast reader's mean gap.
async fn read(url: String, view: &str, pace: Arc<Mutex<Pace>>, slow: bool) -> anyhow::Result<Reading> {
    let mut options = ClientOptions::new(url);
    options.max_attempts = Some(50);
    if slow {
        options.receive_buffer = Some(4096);
    }
    let mut subscriber = Subscriber::new(options, view, BTreeMap::new());
    let (mut diffs, mut close_code, mut paused) = (0, None, Duration::ZERO);
    loop {
        let event = subscriber.next().await.with_context(|| format!("reading {view}"))?;
        close_code = subscriber.last_close_code().or(close_code);
        if event.kind == EventKind::Diff {
            diffs += 1;
            if slow {
                let pause = {
                    let pace = pace.lock().expect("pace");
                    let gap = pace.mean_gap().unwrap_or(Duration::from_millis(10));
                    if pace.done { Duration::ZERO } else { gap * SLOWDOWN }
                };
                paused += pause;
                tokio::time::sleep(pause).await;
            } else {
                pace.lock().expect("pace").record(Instant::now());
            }
        }
        if event.frontier == Some(i64::MAX) {
            if !slow {
                pace.lock().expect("pace").done = true;
            }
            break;
        }
    }
    Ok(Reading {
        rows: subscriber.replica().rows(),
        diffs,
        reconnects: subscriber.reconnects(),
        close_code,
        paused,
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What the server did with a slow subscriber, for the report.
fn behaviour(fast: &Reading, slow: &Reading) -> String {
    let reads = format!(
        "the slow client read {} diffs (pausing {:.0} s in all), the fast one {}",
        slow.diffs,
        slow.paused.as_secs_f64(),
        fast.diffs
    );
    match (slow.close_code, slow.reconnects) {
        (None, 0) => format!("conflated, never closed: {reads}"),
        (Some(4008), reconnects) => format!("closed with 4008 (slow consumer), reconnected {reconnects} times and resumed: {reads}"),
        (Some(code), reconnects) => format!("closed with {code}, reconnected {reconnects} times: {reads}"),
        (None, reconnects) => format!("dropped without a close frame reaching it, reconnected {reconnects} times: {reads}"),
    }
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
        let mut tasks = Vec::new();
        for view in ["latest", "every_tick"] {
            let pace = Arc::new(Mutex::new(Pace::default()));
            tasks.push(tokio::spawn(read(url.clone(), view, pace.clone(), false)));
            tasks.push(tokio::spawn(read(url.clone(), view, pace, true)));
        }
        let mut readings = Vec::new();
        for task in tasks {
            readings.push(
                tokio::time::timeout(Duration::from_secs(900), task)
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
        outcomes.push(Outcome {
            name: format!("slow-websocket-client ({view})"),
            fault: format!(
                "The simulator streams {STREAM_ROWS_PER_SECOND} ticks/s for {} s into the view `{view}` ({}). A fast subscriber reads it as it comes; a slow one (4 KiB receive buffer) pauses {SLOWDOWN} times the fast one's mean time between diffs after each diff, until the fast one has the whole view. Both read to the end of the view, and the slow replica is compared with the fast one. Both views are served by one engine process, so the peak RSS is that process's.",
                ROWS / STREAM_ROWS_PER_SECOND,
                if view == "latest" { "keyed by market and node: 200 rows" } else { "no key: a row per tick" },
            ),
            lost,
            duplicated,
            peak_rss_kib: peak_kib,
            notes: vec![
                behaviour(&fast, &slow),
                format!("{} rows in the final view", fast.rows.len()),
                format!("all caught up after {:.1} s", elapsed.as_secs_f64()),
            ],
        });
    }
    Ok(outcomes)
}
