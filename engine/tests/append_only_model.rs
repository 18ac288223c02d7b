//! Property test of the combined aggregation path against a naive model: a
//! table without a primary key never retracts, so the planner pre-aggregates
//! each epoch's rows per worker and merges the partial states after the
//! exchange. Random ticks (a repeated (node, second) is a second row, not a
//! revision), out-of-order event times within the watermark delay, with
//! several workers two input files read by different workers, random batch
//! sizes, 1, 2 or 4 workers and
//! both emit modes: the consolidated output must equal every window
//! recomputed from scratch, DOUBLE sums correctly rounded.

use std::collections::BTreeMap;

mod common;

use carbonflow_core::datum::format_double;
use carbonflow_core::time::Millis;
use carbonflow_core::time::format_timestamp;
use carbonflow_operators::ExactSum;
use common::{BASE, Tick, read_sorted, run_sql};
use proptest::prelude::*;

fn ticks() -> impl Strategy<Value = Vec<Tick>> {
    common::ticks(3, 30, -50..200, 1..60)
}

/// A tick's price as a DOUBLE: fractions whose sums round.
fn price(tick: &Tick) -> f64 {
    tick.price as f64 / 10.0
}

/// (node, window_start) -> every row's (second, price), then the aggregates
/// of the query, each from its definition.
fn model(ticks: &[Tick]) -> Vec<String> {
    let mut windows: BTreeMap<(u8, i64), Vec<(i64, f64)>> = BTreeMap::new();
    for tick in ticks {
        let start = tick.second - tick.second.rem_euclid(60);
        windows.entry((tick.node, start)).or_default().push((tick.second, price(tick)));
    }
    let mut lines: Vec<String> = windows
        .into_iter()
        .map(|((node, start), rows)| {
            let mut sum = ExactSum::new();
            rows.iter().for_each(|(_, price)| sum.add(*price));
            let prices = || rows.iter().map(|(_, price)| *price);
            let min = prices().fold(f64::INFINITY, f64::min);
            let max = prices().fold(f64::NEG_INFINITY, f64::max);
            // FIRST_VALUE and LAST_VALUE by the rows' event time (`ts`, not
            // the `window_time` every row of a window shares); rows of the
            // same time are ordered by value.
            let by_time = |(second, price): &(i64, f64)| (*second, carbonflow_core::F64::new(*price));
            let first = rows.iter().map(by_time).min().unwrap().1.get();
            let last = rows.iter().map(by_time).max().unwrap().1.get();
            format!(
                "N{node},{},{},{},{},{},{},{},{}",
                format_timestamp(BASE + start * 1000),
                rows.len(),
                format_double(sum.value()),
                format_double(sum.value() / rows.len() as f64),
                format_double(min),
                format_double(max),
                format_double(first),
                format_double(last),
            )
        })
        .collect();
    lines.sort();
    lines
}

/// Writes the ticks as `parts` CSV files (ticks dealt round-robin), so that
/// with as many workers each reads one and the partial states of a group
/// come from several. (One worker reads the files one after the other, so it
/// gets one file: a second would start behind the watermark.)
fn write_files(dir: &std::path::Path, ticks: &[Tick], parts: usize) {
    for part in 0..parts {
        let csv: String = ticks
            .iter()
            .skip(part)
            .step_by(parts)
            .map(|t| format!("N{},{},{}\n", t.node, format_timestamp(BASE + t.second * 1000 as Millis), price(t)))
            .collect();
        std::fs::write(dir.join(format!("part-{part}.csv")), csv).unwrap();
    }
}

fn engine(ticks: &[Tick], workers: usize, batch_size: usize, emit: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks");
    std::fs::create_dir(&input).unwrap();
    let output = dir.path().join("windows.csv");
    write_files(&input, ticks, workers.min(2));
    let sql = format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE,
            WATERMARK FOR ts AS ts - INTERVAL '60' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE windows (node STRING, window_start TIMESTAMP(3), n BIGINT, total DOUBLE, mean DOUBLE,
            low DOUBLE, high DOUBLE, first_price DOUBLE, last_price DOUBLE)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO windows
         SELECT node, window_start, COUNT(*), SUM(price), AVG(price), MIN(price), MAX(price), FIRST_VALUE(price), LAST_VALUE(price)
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
         GROUP BY node, window_start, window_end {emit};",
        input.display(),
        output.display()
    );
    let program = carbonflow::cli::check_text(&sql).unwrap();
    let plan = &program.outputs[0].plan;
    let aggregate = std::iter::successors(Some(plan), |plan| plan.inputs().first().copied())
        .find(|plan| plan.aggregate_strategy(&program).is_some())
        .expect("an aggregation");
    assert_eq!(aggregate.aggregate_strategy(&program), Some(carbonflow::plan::AggregateStrategy::Combined));
    let summary = run_sql(&sql, workers, batch_size);
    assert_eq!(summary.dead_letter_total(), 0);
    read_sorted(&output)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn oracle_combined_tumbling_aggregate(
        ticks in ticks(),
        workers in prop::sample::select(vec![1usize, 2, 4]),
        batch_size in 1usize..8,
        emit in prop::sample::select(vec!["EMIT CHANGES", "EMIT FINAL"]),
    ) {
        prop_assert_eq!(engine(&ticks, workers, batch_size, emit), model(&ticks));
    }
}
