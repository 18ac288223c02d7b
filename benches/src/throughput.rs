//! The end-to-end throughput workload: N price ticks over K nodes through a
//! tumbling 1-minute aggregation (COUNT, AVG, MIN, MAX, SUM per node and
//! window), measured three ways ([`Mode`]).
//!
//! Every mode sees the same ticks. They come from the `simulator` connector
//! with fixed options ([`Workload::simulator_options`]): in [`Mode::Memory`]
//! the engine runs the simulator itself; for [`Mode::Csv`] and
//! [`Mode::Handloop`] the harness polls the same simulator directly
//! ([`simulate`]) and writes the ticks to CSV files or keeps them in a `Vec`.
//! The simulator emits interval by interval, nodes in order, one tick per node
//! a second, so event time never goes backwards and no row is ever late.
//!
//! [`hand_loop`] is the ceiling: one thread, one `HashMap`, the same window
//! assignment, watermark and completion rule as the engine (a window is done
//! once the watermark reaches `end - 1`), no timely and no rows. It computes
//! the engine's very output: its sums are exact ([`ExactSum`], correctly
//! rounded), as the engine's are, not a running `f64` whose last bits depend
//! on the order of the additions.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carbonflow::runtime::{RunFailure, RunOptions, RunSummary};
use carbonflow_core::time::format_timestamp;
use carbonflow_core::{ConnectorConfig, DataType, Field, Millis, Schema, Str};
use carbonflow_operators::ExactSum;
use carbonflow_sources::{SourceBatch, SourceContext, SourceStatus};

/// The tumbling window size: one minute.
pub const WINDOW_MS: Millis = 60_000;

/// The declared watermark delay of the ticks table, which the hand loop uses too.
pub const WATERMARK_DELAY_MS: Millis = 5_000;

/// The aggregation every mode computes; `{sink}` is the output table.
const AGGREGATION: &str = "SELECT node, window_start, window_end, COUNT(*), AVG(price), MIN(price), MAX(price), SUM(price) \
     FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTES)) \
     GROUP BY node, window_start, window_end";

/// Rows polled from the simulator at a time when the harness generates ticks.
const GENERATE_BATCH: usize = 8192;

/// Why a measurement could not be taken, or is not to be trusted.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The generated query text does not check (a harness bug, or an engine regression).
    #[error("the benchmark query does not check:\n{0}")]
    Query(String),
    /// The engine run failed.
    #[error("the engine run failed: {0}")]
    Run(#[from] RunFailure),
    /// The engine read another number of rows than the workload has.
    #[error("the engine read {read} rows, not the {expected} ticks of the workload")]
    RowsRead {
        /// Ticks in the workload.
        expected: u64,
        /// Rows the engine reported.
        read: u64,
    },
    /// The engine dead-lettered rows, which this workload never should.
    #[error("the engine produced {total} dead letters ({detail}); the workload has no bad or late rows")]
    DeadLetters {
        /// All dead letters.
        total: u64,
        /// Counts per origin and reason.
        detail: String,
    },
    /// The simulator could not be opened or read, or gave another number of ticks.
    #[error("the simulator: {0}")]
    Simulator(String),
    /// A file could not be written or read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl HarnessError {
    fn file(path: &Path, error: impl std::fmt::Display) -> Self {
        HarnessError::File {
            path: path.to_owned(),
            message: error.to_string(),
        }
    }
}

/// How the ticks reach the aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The engine with the `simulator` source: generated in process, no I/O.
    Memory,
    /// The engine with the `filesystem` CSV source over pre-written files.
    Csv,
    /// The hand-written single-thread loop over ticks already in memory,
    /// nodes as integer ids: the ceiling of the target.
    Handloop,
    /// The same loop with the nodes as the engine holds them (shared strings),
    /// to tell the cost of the data representation from the engine's own.
    HandloopStrings,
}

impl Mode {
    /// The name used on the command line and in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Memory => "memory",
            Mode::Csv => "csv",
            Mode::Handloop => "handloop",
            Mode::HandloopStrings => "handloop-strings",
        }
    }

    /// Whether this is one of the hand loops (one thread, final windows only).
    pub fn is_hand_loop(self) -> bool {
        matches!(self, Mode::Handloop | Mode::HandloopStrings)
    }
}

/// The ticks to aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Ticks in all (`number-of-rows`).
    pub ticks: u64,
    /// Distinct nodes; each ticks once a simulated second.
    pub nodes: u64,
    /// The simulator's seed.
    pub seed: u64,
    /// The engine's emit mode (the hand loop always emits final windows).
    pub emit: Emit,
}

/// When the engine emits windows: every change, or once per complete window
/// (what Flink's window aggregations and the hand loop do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// `EMIT CHANGES`: every epoch republishes each changed window.
    Changes,
    /// `EMIT FINAL`: each window once, when the watermark passes its end.
    Final,
}

impl Emit {
    /// The clause as written in SQL.
    pub fn clause(self) -> &'static str {
        match self {
            Emit::Changes => "EMIT CHANGES",
            Emit::Final => "EMIT FINAL",
        }
    }

    /// The name used in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Emit::Changes => "changes",
            Emit::Final => "final",
        }
    }
}

impl Workload {
    /// The `simulator` options that produce this workload: one tick per node
    /// a second (many windows per node) and no revisions, so exactly
    /// `ticks` rows.
    pub fn simulator_options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("seed", self.seed.to_string()),
            ("nodes", self.nodes.to_string()),
            ("number-of-rows", self.ticks.to_string()),
            ("interval", "1 s".to_owned()),
            ("revision-probability", "0".to_owned()),
        ]
    }
}

/// Where the engine reads the ticks from.
#[derive(Clone, Copy, Debug)]
pub enum EngineInput<'a> {
    /// The `simulator` connector.
    Simulator,
    /// A `filesystem` CSV file or directory as written by [`write_csv`].
    Csv(&'a Path),
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The query file of an engine run: the ticks table, the output table with
/// the given `WITH` options (e.g. `'connector' = 'blackhole'`) and the
/// aggregation into it.
pub fn query_text(workload: &Workload, input: EngineInput, sink_options: &str) -> String {
    let source_options: Vec<String> = match input {
        EngineInput::Simulator => std::iter::once(("connector", "simulator".to_owned()))
            .chain(workload.simulator_options())
            .map(|(key, value)| format!("{} = {}", literal(key), literal(&value)))
            .collect(),
        EngineInput::Csv(path) => vec![
            "'connector' = 'filesystem'".to_owned(),
            format!("'path' = {}", literal(&path.display().to_string())),
            "'format' = 'csv'".to_owned(),
        ],
    };
    format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, \
             WATERMARK FOR ts AS ts - INTERVAL '{delay}' SECOND) WITH ({source});\n\
         CREATE TABLE windows (node STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), ticks BIGINT, \
             avg_price DOUBLE, min_price DOUBLE, max_price DOUBLE, sum_price DOUBLE) WITH ({sink_options});\n\
         INSERT INTO windows {AGGREGATION} {emit};\n",
        delay = WATERMARK_DELAY_MS / 1000,
        source = source_options.join(", "),
        emit = workload.emit.clause(),
    )
}

/// Checks and runs `query` (from [`query_text`]) and checks that the engine
/// read every tick of `workload` and dead-lettered none.
pub fn run_engine(workload: &Workload, query: &str, workers: usize, batch_size: usize) -> Result<RunSummary, HarnessError> {
    let program = carbonflow::cli::check_text(query).map_err(|error| HarnessError::Query(error.render("throughput.sql", query)))?;
    let options = RunOptions {
        workers,
        batch_size,
        ..Default::default()
    };
    let summary = carbonflow::runtime::run(Arc::new(program), options)?;
    if summary.rows_read != workload.ticks {
        return Err(HarnessError::RowsRead {
            expected: workload.ticks,
            read: summary.rows_read,
        });
    }
    let total = summary.dead_letter_total();
    if total != 0 {
        let detail = summary
            .dead_letters
            .iter()
            .map(|((origin, reason), count)| format!("{origin} [{reason}]: {count}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(HarnessError::DeadLetters { total, detail });
    }
    Ok(summary)
}

/// Polls the simulator configured as in [`Workload::simulator_options`] as a
/// single instance and calls `each(node id, node name, ts, price)` for every
/// tick, in the simulator's order. Node ids count from 0 in order of first
/// appearance, which is the simulator's node order.
pub fn simulate(workload: &Workload, mut each: impl FnMut(u32, &str, Millis, f64)) -> Result<(), HarnessError> {
    let mut options: std::collections::BTreeMap<String, String> =
        workload.simulator_options().into_iter().map(|(key, value)| (key.to_owned(), value)).collect();
    options.insert("connector".into(), "simulator".into());
    let config = ConnectorConfig {
        table: "ticks".into(),
        schema: Schema::new(vec![
            Field::new("node", DataType::String),
            Field::new("ts", DataType::Timestamp),
            Field::new("price", DataType::Float),
        ]),
        event_time_column: Some(1),
        primary_key: None,
        options,
    };
    let simulator_error = |error: &dyn std::fmt::Display| HarnessError::Simulator(error.to_string());
    let mut source = carbonflow_sources::create_source(&config, SourceContext::SINGLE).map_err(|e| simulator_error(&e))?;
    let mut ids: HashMap<Str, u32> = HashMap::new();
    let mut batch = SourceBatch::default();
    let mut count = 0u64;
    loop {
        batch.clear();
        let status = source.poll(&mut batch, GENERATE_BATCH).map_err(|e| simulator_error(&e))?;
        for row in &batch.rows {
            let (Some(name), Some(ts), Some(price)) = (row.get(0).as_str(), row.get(1).as_timestamp(), row.get(2).as_f64()) else {
                return Err(HarnessError::Simulator(format!("unexpected row {row:?}")));
            };
            let next = ids.len() as u32;
            let id = *ids.entry(Str::from(name)).or_insert(next);
            each(id, name, ts, price);
            count += 1;
        }
        if status == SourceStatus::Finished {
            break;
        }
    }
    if count != workload.ticks {
        return Err(HarnessError::Simulator(format!("gave {count} ticks, not {}", workload.ticks)));
    }
    Ok(())
}

/// One tick as the hand loop sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick<N = u32> {
    /// The node: an id (an index into [`Ticks::names`]) or its name.
    pub node: N,
    /// Event time, epoch milliseconds.
    pub ts: Millis,
    /// The price.
    pub price: f64,
}

/// The workload's ticks in memory, in the simulator's order.
#[derive(Clone, Debug, Default)]
pub struct Ticks {
    /// Node names by id.
    pub names: Vec<String>,
    /// The ticks.
    pub ticks: Vec<Tick>,
}

/// Generates the workload's ticks into memory (see [`simulate`]).
pub fn generate(workload: &Workload) -> Result<Ticks, HarnessError> {
    let mut ticks = Ticks {
        names: Vec::new(),
        ticks: Vec::with_capacity(usize::try_from(workload.ticks).unwrap_or(0)),
    };
    simulate(workload, |node, name, ts, price| {
        if node as usize == ticks.names.len() {
            ticks.names.push(name.to_owned());
        }
        ticks.ticks.push(Tick { node, ts, price });
    })?;
    Ok(ticks)
}

/// Writes the workload's ticks as header-less CSV `node,ts,price` into
/// `parts` files `part-0000.csv`, ... in `dir`, node `i` into part
/// `i % parts`, so each file is in event-time order and `parts` workers of the
/// `filesystem` source read one file each. Ticks stream from the simulator to
/// the files without being held in memory. Returns the files.
pub fn write_csv(workload: &Workload, dir: &Path, parts: usize) -> Result<Vec<PathBuf>, HarnessError> {
    let paths: Vec<PathBuf> = (0..parts.max(1)).map(|part| dir.join(format!("part-{part:04}.csv"))).collect();
    let mut writers = paths
        .iter()
        .map(|path| {
            File::create(path)
                .map(|file| csv::WriterBuilder::new().has_headers(false).from_writer(file))
                .map_err(|e| HarnessError::file(path, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut failure = None;
    simulate(workload, |node, name, ts, price| {
        let part = node as usize % writers.len();
        // `Display` of an f64 is its shortest exact form, so the CSV source reads back the very same price.
        if let Err(error) = writers[part].write_record([name, &format_timestamp(ts), &price.to_string()]) {
            failure.get_or_insert_with(|| HarnessError::file(&paths[part], error));
        }
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    for (writer, path) in writers.iter_mut().zip(&paths) {
        writer.flush().map_err(|e| HarnessError::file(path, e))?;
    }
    Ok(paths)
}

/// The running aggregate of one node and window.
#[derive(Clone, Debug)]
pub struct WindowAggregate {
    /// Ticks in the window.
    pub count: u64,
    /// Their price sum, exact.
    pub sum: ExactSum,
    /// The lowest price.
    pub min: f64,
    /// The highest price.
    pub max: f64,
}

impl WindowAggregate {
    fn first(price: f64) -> Self {
        let mut sum = ExactSum::new();
        sum.add(price);
        WindowAggregate {
            count: 1,
            sum,
            min: price,
            max: price,
        }
    }

    fn add(&mut self, price: f64) {
        self.count += 1;
        self.sum.add(price);
        self.min = self.min.min(price);
        self.max = self.max.max(price);
    }

    /// The average price: the correctly rounded sum over the count, as the engine's AVG.
    pub fn avg(&self) -> f64 {
        self.sum.value() / self.count as f64
    }
}

/// What [`hand_loop`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandLoopStats {
    /// Windows emitted.
    pub windows: u64,
    /// Ticks dropped because their window was already complete.
    pub late: u64,
}

/// The hand-written ceiling: aggregates `ticks` per (node, 1-minute window) in
/// one `HashMap`, `batch_size` ticks per step like the engine's epochs. After
/// each step the watermark becomes the largest event time seen minus
/// [`WATERMARK_DELAY_MS`], and every window it completes is emitted through
/// `emit(node, window_start, aggregate, watermark)` and dropped; at the end the
/// watermark jumps to `Millis::MAX` and the rest is emitted. A tick for a
/// complete window is late and dropped, as the engine would.
pub fn hand_loop<N: std::hash::Hash + Eq + Clone>(
    ticks: &[Tick<N>],
    batch_size: usize,
    mut emit: impl FnMut(&N, Millis, &WindowAggregate, Millis),
) -> HandLoopStats {
    let mut open: HashMap<(N, Millis), WindowAggregate> = HashMap::new();
    let mut stats = HandLoopStats::default();
    let mut max_ts = Millis::MIN;
    let mut watermark = Millis::MIN;
    // The earliest end of an open window: until the watermark reaches it there is nothing to scan for.
    let mut first_end = Millis::MAX;
    let done = |end: Millis, watermark: Millis| watermark != Millis::MIN && watermark >= end - 1;
    for step in ticks.chunks(batch_size.max(1)) {
        for tick in step {
            let start = tick.ts - tick.ts.rem_euclid(WINDOW_MS);
            if done(start + WINDOW_MS, watermark) {
                stats.late += 1;
                continue;
            }
            max_ts = max_ts.max(tick.ts);
            first_end = first_end.min(start + WINDOW_MS);
            open.entry((tick.node.clone(), start))
                .and_modify(|aggregate| aggregate.add(tick.price))
                .or_insert_with(|| WindowAggregate::first(tick.price));
        }
        watermark = watermark.max(max_ts.saturating_sub(WATERMARK_DELAY_MS));
        if done(first_end, watermark) {
            first_end = Millis::MAX;
            open.retain(|(node, start), aggregate| {
                let start = *start;
                if done(start + WINDOW_MS, watermark) {
                    emit(node, start, aggregate, watermark);
                    stats.windows += 1;
                    false
                } else {
                    first_end = first_end.min(start + WINDOW_MS);
                    true
                }
            });
        }
    }
    for ((node, start), aggregate) in open.drain() {
        emit(&node, start, &aggregate, Millis::MAX);
        stats.windows += 1;
    }
    stats
}

/// Times [`hand_loop`] over ticks already in memory, its output kept alive by `black_box`.
fn time_hand_loop<N: std::hash::Hash + Eq + Clone>(ticks: &[Tick<N>], batch_size: usize) -> Measurement {
    let started = std::time::Instant::now();
    let stats = hand_loop(ticks, batch_size, |node, start, aggregate, _| {
        std::hint::black_box((
            node,
            start,
            start + WINDOW_MS,
            aggregate.count,
            aggregate.avg(),
            aggregate.min,
            aggregate.max,
            aggregate.sum.value(),
        ));
    });
    Measurement {
        elapsed: started.elapsed(),
        windows: Some(stats.windows),
    }
}

/// One measurement of a mode.
#[derive(Clone, Copy, Debug)]
pub struct Measurement {
    /// The timed part: the engine run, or the hand loop; never tick generation.
    pub elapsed: Duration,
    /// Windows emitted, where the mode knows (the hand loop).
    pub windows: Option<u64>,
}

impl Measurement {
    /// Ticks per second of wall-clock time.
    pub fn ticks_per_second(&self, workload: &Workload) -> f64 {
        workload.ticks as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs one mode on `workload` into a `blackhole` sink (the engine modes) or
/// into [`std::hint::black_box`] (the hand loop) and times it.
pub fn measure(mode: Mode, workload: &Workload, workers: usize, batch_size: usize) -> Result<Measurement, HarnessError> {
    const BLACKHOLE: &str = "'connector' = 'blackhole'";
    match mode {
        Mode::Memory => {
            let summary = run_engine(workload, &query_text(workload, EngineInput::Simulator, BLACKHOLE), workers, batch_size)?;
            Ok(Measurement {
                elapsed: summary.elapsed,
                windows: None,
            })
        }
        Mode::Csv => {
            let dir = tempfile::tempdir().map_err(|e| HarnessError::file(&std::env::temp_dir(), e))?;
            write_csv(workload, dir.path(), workers)?;
            let summary = run_engine(workload, &query_text(workload, EngineInput::Csv(dir.path()), BLACKHOLE), workers, batch_size)?;
            Ok(Measurement {
                elapsed: summary.elapsed,
                windows: None,
            })
        }
        Mode::Handloop => {
            let ticks = generate(workload)?;
            Ok(time_hand_loop(&ticks.ticks, batch_size))
        }
        Mode::HandloopStrings => {
            let ticks = generate(workload)?;
            let names: Vec<Str> = ticks.names.iter().map(|name| Str::from(name.as_str())).collect();
            let ticks: Vec<Tick<Str>> = ticks
                .ticks
                .iter()
                .map(|t| Tick {
                    node: names[t.node as usize].clone(),
                    ts: t.ts,
                    price: t.price,
                })
                .collect();
            Ok(time_hand_loop(&ticks, batch_size))
        }
    }
}

/// The process's peak resident set size (`VmHWM` in `/proc/self/status`) in
/// MiB: the whole process since it started, tick generation included; `None`
/// where `/proc` is unavailable.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_hwm_kib(&status).map(|kib| kib as f64 / 1024.0)
}

/// The `VmHWM:   1234 kB` line of a `/proc/<pid>/status` text, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// `git rev-parse --short HEAD` of the working directory, if git answers.
pub fn git_rev() -> Option<String> {
    let output = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().ok()?;
    let rev = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !rev.is_empty()).then_some(rev)
}

/// One line of the results file.
#[derive(Clone, Debug)]
pub struct ResultRow {
    /// When the run finished, `YYYY-MM-DD HH:MM:SS.mmm` UTC.
    pub timestamp: String,
    /// The mode.
    pub mode: Mode,
    /// Worker threads (1 for the hand loop).
    pub workers: usize,
    /// The workload.
    pub workload: Workload,
    /// The measurement.
    pub measurement: Measurement,
    /// Peak RSS in MiB, if known.
    pub peak_rss_mib: Option<f64>,
    /// The commit, if known.
    pub git_rev: Option<String>,
}

/// The header of the results file.
pub const RESULT_COLUMNS: [&str; 10] = [
    "timestamp",
    "mode",
    "emit",
    "workers",
    "ticks",
    "nodes",
    "elapsed_s",
    "ticks_per_s",
    "peak_rss_mb",
    "git_rev",
];

impl ResultRow {
    /// The row's fields, in [`RESULT_COLUMNS`] order; unknown values are empty.
    pub fn fields(&self) -> [String; 10] {
        [
            self.timestamp.clone(),
            self.mode.as_str().to_owned(),
            if self.mode.is_hand_loop() { "final" } else { self.workload.emit.as_str() }.to_owned(),
            self.workers.to_string(),
            self.workload.ticks.to_string(),
            self.workload.nodes.to_string(),
            format!("{:.6}", self.measurement.elapsed.as_secs_f64()),
            format!("{:.0}", self.measurement.ticks_per_second(&self.workload)),
            self.peak_rss_mib.map_or_else(String::new, |mib| format!("{mib:.1}")),
            self.git_rev.clone().unwrap_or_default(),
        ]
    }

    /// Appends the row to the CSV file at `path`, creating it (and its
    /// directory) with a header line first if it is new or empty.
    pub fn append_to(&self, path: &Path) -> Result<(), HarnessError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| HarnessError::file(parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| HarnessError::file(path, e))?;
        let empty = file.metadata().map_err(|e| HarnessError::file(path, e))?.len() == 0;
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        if empty {
            writer.write_record(RESULT_COLUMNS).map_err(|e| HarnessError::file(path, e))?;
        }
        writer.write_record(self.fields()).map_err(|e| HarnessError::file(path, e))?;
        writer.flush().map_err(|e| HarnessError::file(path, e))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use carbonflow_core::time::parse_timestamp;

    use super::*;

    /// Per (node name, window start): count, sum, min, max, avg.
    type Windows = BTreeMap<(String, Millis), (u64, f64, f64, f64, f64)>;

    fn workload(ticks: u64, nodes: u64) -> Workload {
        Workload {
            ticks,
            nodes,
            seed: 7,
            emit: Emit::Changes,
        }
    }

    fn hand_loop_windows(ticks: &Ticks, batch_size: usize) -> Windows {
        let mut windows = Windows::new();
        hand_loop(&ticks.ticks, batch_size, |&node, start, a, _| {
            let previous = windows.insert((ticks.names[node as usize].clone(), start), (a.count, a.sum.value(), a.min, a.max, a.avg()));
            assert!(previous.is_none(), "a window is emitted once");
        });
        windows
    }

    /// The engine's output, read back from a `filesystem` CSV sink.
    fn engine_windows(workload: &Workload, input: EngineInput, workers: usize) -> Windows {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("windows.csv");
        let sink = format!("'connector' = 'filesystem', 'path' = {}, 'format' = 'csv'", literal(&out.display().to_string()));
        let summary = run_engine(workload, &query_text(workload, input, &sink), workers, 512).unwrap();
        assert_eq!(summary.rows_read, workload.ticks);
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_path(&out).unwrap();
        let mut windows = Windows::new();
        for record in reader.records() {
            let record = record.unwrap();
            let float = |i: usize| record[i].parse::<f64>().unwrap();
            let start = parse_timestamp(&record[1]).unwrap();
            assert_eq!(parse_timestamp(&record[2]).unwrap(), start + WINDOW_MS);
            let previous = windows.insert(
                (record[0].to_owned(), start),
                (record[3].parse().unwrap(), float(7), float(5), float(6), float(4)),
            );
            assert!(previous.is_none(), "one row per node and window: {record:?}");
        }
        windows
    }

    fn assert_same_windows(engine: &Windows, hand: &Windows, what: &str) {
        assert_eq!(engine.len(), hand.len(), "{what}: window count");
        // Both sum exactly, so every figure agrees to the bit.
        for (key, e) in engine {
            let h = hand.get(key).unwrap_or_else(|| panic!("{what}: the hand loop has no window {key:?}"));
            assert_eq!(e.0, h.0, "{what}: count of {key:?}");
            assert_eq!(
                (e.1.to_bits(), e.4.to_bits()),
                (h.1.to_bits(), h.4.to_bits()),
                "{what}: sum/avg of {key:?}: {e:?} vs {h:?}"
            );
            assert_eq!((e.2, e.3), (h.2, h.3), "{what}: min/max of {key:?}");
        }
    }

    #[test]
    fn the_engine_modes_and_the_hand_loop_compute_the_same_windows() {
        let workload = workload(5_000, 37);
        let ticks = generate(&workload).unwrap();
        let hand = hand_loop_windows(&ticks, 512);
        assert!(hand.len() > 37, "several windows per node: {}", hand.len());
        assert_same_windows(&engine_windows(&workload, EngineInput::Simulator, 1), &hand, "memory, 1 worker");
        assert_same_windows(&engine_windows(&workload, EngineInput::Simulator, 2), &hand, "memory, 2 workers");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(write_csv(&workload, dir.path(), 2).unwrap().len(), 2);
        assert_same_windows(&engine_windows(&workload, EngineInput::Csv(dir.path()), 2), &hand, "csv, 2 files");
    }

    #[test]
    fn the_hand_loop_matches_a_naive_model_and_emits_as_the_watermark_passes() {
        let workload = workload(4_321, 23);
        let ticks = generate(&workload).unwrap();
        assert_eq!(ticks.ticks.len(), 4_321);
        assert_eq!(ticks.names.len(), 23);
        // Node i ticks every second from the first interval while k * nodes + i < ticks.
        let expected_windows: u64 = (0..workload.nodes).map(|i| (workload.ticks - i).div_ceil(workload.nodes).div_ceil(60)).sum();
        let mut naive: BTreeMap<(u32, Millis), Vec<f64>> = BTreeMap::new();
        for tick in &ticks.ticks {
            naive
                .entry((tick.node, tick.ts.div_euclid(WINDOW_MS) * WINDOW_MS))
                .or_default()
                .push(tick.price);
        }
        let mut emitted = BTreeMap::new();
        let mut before_the_end = 0;
        let stats = hand_loop(&ticks.ticks, 100, |&node, start, aggregate, watermark| {
            assert!(watermark >= start + WINDOW_MS - 1, "emitted only once complete");
            before_the_end += u64::from(watermark != Millis::MAX);
            emitted.insert((node, start), aggregate.clone());
        });
        assert_eq!(
            stats,
            HandLoopStats {
                windows: expected_windows,
                late: 0
            }
        );
        assert!(
            before_the_end >= expected_windows - workload.nodes,
            "all but the last windows close on the way: {before_the_end}"
        );
        assert_eq!(emitted.len(), naive.len());
        for (key, prices) in &naive {
            let aggregate = &emitted[key];
            assert_eq!(aggregate.count, prices.len() as u64);
            assert!((aggregate.sum.value() - prices.iter().sum::<f64>()).abs() < 1e-6);
            assert_eq!(aggregate.min, prices.iter().copied().fold(f64::INFINITY, f64::min));
            assert_eq!(aggregate.max, prices.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
    }

    #[test]
    fn the_hand_loop_drops_ticks_of_complete_windows() {
        let tick = |ts: Millis| Tick { node: 0, ts, price: 1.0 };
        // After the first step the watermark is 130 s - 5 s: [0, 60 s) is complete, so
        // the tick at 59 s is late, while [120 s, 180 s) still takes the one at 125 s.
        let ticks = [tick(0), tick(130_000), tick(59_000), tick(125_000)];
        let mut windows = Vec::new();
        let stats = hand_loop(&ticks, 2, |_, start, aggregate, watermark| windows.push((start, aggregate.count, watermark)));
        assert_eq!(stats, HandLoopStats { windows: 2, late: 1 });
        assert_eq!(windows, [(0, 1, 125_000), (120_000, 2, Millis::MAX)]);
    }

    #[test]
    fn an_engine_run_with_missing_rows_or_dead_letters_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ticks.csv"),
            "A,2024-01-01 00:00:00,1.5\nB,2024-01-01 00:00:01,oops\nA,2024-01-01 00:00:02,2.5\n",
        )
        .unwrap();
        let run = |ticks| {
            let workload = workload(ticks, 2);
            run_engine(
                &workload,
                &query_text(&workload, EngineInput::Csv(dir.path()), "'connector' = 'blackhole'"),
                1,
                16,
            )
        };
        assert!(matches!(run(3), Err(HarnessError::RowsRead { expected: 3, read: 2 })));
        assert!(matches!(run(2), Err(HarnessError::DeadLetters { total: 1, .. })));
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        assert_eq!(vm_hwm_kib("Name:\tx\nVmPeak:\t  99 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 1 kB\n"), Some(51_200));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
        assert!(peak_rss_mib().is_none_or(|mib| mib > 0.0));
    }

    #[test]
    fn results_get_a_header_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results").join("throughput.csv");
        let row = ResultRow {
            timestamp: "2024-01-01 00:00:00.000".into(),
            mode: Mode::Csv,
            workers: 2,
            workload: workload(1_000, 10),
            measurement: Measurement {
                elapsed: Duration::from_millis(500),
                windows: None,
            },
            peak_rss_mib: None,
            git_rev: Some("abc1234".into()),
        };
        row.append_to(&path).unwrap();
        row.append_to(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let line = "2024-01-01 00:00:00.000,csv,changes,2,1000,10,0.500000,2000,,abc1234";
        assert_eq!(text, format!("{}\n{line}\n{line}\n", RESULT_COLUMNS.join(",")));
    }

    #[test]
    fn the_query_quotes_paths_and_names_every_simulator_option() {
        let workload = workload(10, 2);
        let text = query_text(&workload, EngineInput::Csv(Path::new("/tmp/it's")), "'connector' = 'blackhole'");
        assert!(text.contains("'path' = '/tmp/it''s'"), "{text}");
        let text = query_text(&workload, EngineInput::Simulator, "'connector' = 'blackhole'");
        assert!(carbonflow::cli::check_text(&text).is_ok(), "{text}");
        for (key, value) in workload.simulator_options() {
            assert!(text.contains(&format!("'{key}' = '{value}'")), "{key} in {text}");
        }
    }

    #[test]
    fn the_string_hand_loop_computes_the_same_windows() {
        let ticks = generate(&workload(5_000, 40)).unwrap();
        let by_id = hand_loop_windows(&ticks, 64);
        let named: Vec<Tick<String>> = ticks
            .ticks
            .iter()
            .map(|t| Tick {
                node: ticks.names[t.node as usize].clone(),
                ts: t.ts,
                price: t.price,
            })
            .collect();
        let mut by_name = Windows::new();
        hand_loop(&named, 64, |node, start, a, _| {
            by_name.insert((node.clone(), start), (a.count, a.sum.value(), a.min, a.max, a.avg()));
        });
        assert!(!by_id.is_empty());
        assert_eq!(by_name, by_id);
    }
}
