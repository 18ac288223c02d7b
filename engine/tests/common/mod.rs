//! Helpers shared by the engine's integration tests: run a query file's text,
//! read what a filesystem sink wrote, and generate ticks with revisions.
// Every test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use carbonflow::cli::check_text;
use carbonflow::runtime::{RunOptions, RunSummary, run};

/// Checks and runs `sql` with this many workers and rows per epoch; panics
/// with the rendered error when the query does not check.
pub(crate) fn run_sql(sql: &str, workers: usize, batch_size: usize) -> RunSummary {
    let program = check_text(sql).unwrap_or_else(|e| panic!("{}", e.render("test.sql", sql)));
    run(
        Arc::new(program),
        RunOptions {
            workers,
            batch_size,
            ..RunOptions::default()
        },
    )
    .expect("the run succeeds")
}

/// The lines of a sink's file, sorted (workers may interleave them).
pub(crate) fn read_sorted(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path).expect("sink file").lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// Issue 2's ticks `node,ts,price,volume` as Flink's filesystem CSV source
/// reads them. Rows are out of order within the 2-second watermark delay,
/// except the 00:00:40 row, which arrives when the watermark is already past
/// its tumbling window: Flink drops it, and so do we (into the dead-letter
/// output). The row `not,a,valid row` ([`MALFORMED_TICK`]) is malformed.
pub(crate) const FLINK_COMPAT_TICKS: &str = "\
A,2024-01-01 00:00:00.025,10.0,5
B,2024-01-01 00:00:10.000,20.0,3
A,2024-01-01 00:00:30.000,14.0,2
A,2024-01-01 00:00:59.999,12.0,1
B,2024-01-01 00:00:58.000,22.0,4
A,2024-01-01 00:01:01.000,11.0,7
A,2024-01-01 00:00:59.000,16.0,1
not,a,valid row
B,2024-01-01 00:01:30.000,21.0,2
A,2024-01-01 00:00:40.000,99.0,1
A,2024-01-01 00:02:05.000,13.0,1
";

/// The line of [`FLINK_COMPAT_TICKS`] with three fields instead of four.
pub(crate) const MALFORMED_TICK: &str = "not,a,valid row\n";

/// Issue 2's source: `ticks`, a header-less CSV `node,ts,price,volume` at
/// `input` with a 2-second watermark; `options` is added to its `WITH` list.
pub(crate) fn flink_compat_ticks_table(input: &Path, options: &str) -> String {
    format!(
        "CREATE TABLE ticks (
            node STRING,
            ts TIMESTAMP(3),
            price DOUBLE,
            volume BIGINT,
            WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
        ) WITH (
            'connector' = 'filesystem',
            'path' = '{}',
            'format' = 'csv'{options}
        );",
        input.display()
    )
}

/// Issue 2's aggregation of `ticks` over `window` (a window table function
/// call) into a CSV sink `table` at `output`: its `CREATE TABLE` and `INSERT`.
pub(crate) fn flink_compat_window_stats(table: &str, output: &Path, window: &str) -> String {
    format!(
        "CREATE TABLE {table} (
            node STRING,
            window_start TIMESTAMP(3),
            window_end TIMESTAMP(3),
            cnt BIGINT,
            avg_price DOUBLE,
            min_price DOUBLE,
            max_price DOUBLE,
            volume BIGINT
        ) WITH (
            'connector' = 'filesystem',
            'path' = '{}',
            'format' = 'csv'
        );
        INSERT INTO {table}
        SELECT node, window_start, window_end, COUNT(*), AVG(price), MIN(price), MAX(price), SUM(volume)
        FROM TABLE({window})
        GROUP BY node, window_start, window_end;",
        output.display()
    )
}

/// 2024-01-01 00:00:00 UTC: the event time of second 0 of generated ticks.
pub(crate) const BASE: i64 = 1_704_067_200_000;

/// A generated tick: node `N{node}`, event time `BASE + second` seconds, a price.
#[derive(Clone, Debug)]
pub(crate) struct Tick {
    pub(crate) node: u8,
    pub(crate) second: i64,
    pub(crate) price: i64,
}

/// Random ticks whose event times drift forward by up to `max_step` seconds
/// with up to 20 s of backward jitter (inside a 60 s watermark delay, so no
/// row is late); a repeated (node, second) is a revision.
pub(crate) fn ticks(
    nodes: u8,
    max_step: i64,
    prices: std::ops::Range<i64>,
    count: std::ops::Range<usize>,
) -> impl proptest::strategy::Strategy<Value = Vec<Tick>> {
    use proptest::prelude::*;
    prop::collection::vec((0..nodes, 0..max_step, -20i64..=0, prices), count).prop_map(|raw| {
        let mut clock = 0;
        raw.into_iter()
            .map(|(node, step, jitter, price)| {
                clock += step;
                Tick {
                    node,
                    second: (clock + jitter).max(0),
                    price,
                }
            })
            .collect()
    })
}

/// The ticks after their revisions: the last price per (node, second).
pub(crate) fn latest(ticks: &[Tick]) -> std::collections::BTreeMap<(u8, i64), i64> {
    ticks.iter().map(|t| ((t.node, t.second), t.price)).collect()
}

/// One node's rows `(node STRING, ts TIMESTAMP, price DOUBLE)` after the
/// revisions ([`latest`]), in event-time order.
pub(crate) fn node_rows(latest: &std::collections::BTreeMap<(u8, i64), i64>, node: u8) -> Vec<carbonflow_core::Row> {
    use carbonflow_core::Datum;
    latest
        .iter()
        .filter(|((n, _), _)| *n == node)
        .map(|((_, second), price)| {
            carbonflow_core::Row::new(vec![
                Datum::string(&format!("N{node}")),
                Datum::Timestamp(BASE + second * 1000),
                Datum::float(*price as f64),
            ])
        })
        .collect()
}

/// Writes ticks as header-less CSV `node,ts,price`, in their order.
pub(crate) fn write_ticks(path: &Path, ticks: &[Tick]) {
    let csv: String = ticks
        .iter()
        .map(|t| format!("N{},{},{}\n", t.node, carbonflow_core::time::format_timestamp(BASE + t.second * 1000), t.price))
        .collect();
    std::fs::write(path, csv).unwrap();
}
