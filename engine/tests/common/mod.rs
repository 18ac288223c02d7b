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
