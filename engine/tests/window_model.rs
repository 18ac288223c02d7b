//! Property test of the whole engine against a naive model: random ticks with
//! revisions (primary-key upserts, i.e. retractions), out-of-order event
//! times within the watermark delay, random batch sizes and 1, 2 or 4
//! workers, in both emit modes. The model applies the upserts to a map, then recomputes every
//! tumbling window from scratch; the engine's consolidated output must equal it.

use std::collections::BTreeMap;

mod common;

use carbonflow_core::time::format_timestamp;
use common::{BASE, Tick, read_sorted, run_sql};
use proptest::prelude::*;

fn ticks() -> impl Strategy<Value = Vec<Tick>> {
    common::ticks(3, 30, -50..200, 1..60)
}

/// (node, window_start) -> (count, sum, min, max) over the upserted ticks.
fn model(ticks: &[Tick]) -> Vec<String> {
    let latest = common::latest(ticks);
    let mut windows: BTreeMap<(u8, i64), (i64, i64, i64, i64)> = BTreeMap::new();
    for ((node, second), price) in latest {
        let start = second - second.rem_euclid(60);
        let entry = windows.entry((node, start)).or_insert((0, 0, i64::MAX, i64::MIN));
        entry.0 += 1;
        entry.1 += price;
        entry.2 = entry.2.min(price);
        entry.3 = entry.3.max(price);
    }
    let mut lines: Vec<String> = windows
        .into_iter()
        .map(|((node, start), (count, sum, min, max))| format!("N{node},{},{count},{sum},{min},{max}", format_timestamp(BASE + start * 1000)))
        .collect();
    lines.sort();
    lines
}

fn engine(ticks: &[Tick], workers: usize, batch_size: usize, emit: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.csv");
    let output = dir.path().join("windows.csv");
    common::write_ticks(&input, ticks);
    let sql = format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price BIGINT,
            PRIMARY KEY (node, ts) NOT ENFORCED,
            WATERMARK FOR ts AS ts - INTERVAL '60' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE windows (node STRING, window_start TIMESTAMP(3), n BIGINT, total BIGINT, low BIGINT, high BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO windows
         SELECT node, window_start, COUNT(*), SUM(price), MIN(price), MAX(price)
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
         GROUP BY node, window_start, window_end {emit};",
        input.display(),
        output.display()
    );
    let summary = run_sql(&sql, workers, batch_size);
    assert_eq!(summary.dead_letter_total(), 0);
    read_sorted(&output)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn oracle_tumbling_aggregate_with_revisions(
        ticks in ticks(),
        workers in prop::sample::select(vec![1usize, 2, 4]),
        batch_size in 1usize..8,
        emit in prop::sample::select(vec!["EMIT CHANGES", "EMIT FINAL"]),
    ) {
        prop_assert_eq!(engine(&ticks, workers, batch_size, emit), model(&ticks));
    }
}
