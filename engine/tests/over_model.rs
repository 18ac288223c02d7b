//! OVER calls through the whole engine against a model: random ticks with
//! revisions (primary-key upserts, i.e. retractions), some of them arriving
//! after the watermark passed the tick they revise (inside the allowed
//! lateness, so the results after it are recomputed in place), out-of-order
//! arrival inside the watermark delay, random batch sizes, 1, 2 or 4 workers.
//!
//! The model applies the upserts, orders each node's ticks by event time and
//! computes the plain aggregates naively (COUNT over a RANGE frame, AVG and
//! MAX over a ROWS frame, from each row's frame) and the analytics functions
//! with the pure operator core run once over the final rows
//! ([`OverPartition`], itself tested against the functions' definitions in
//! the operators crate). The engine's final output must equal it exactly.

use std::sync::Arc;

mod common;

use carbonflow_core::{DataType, Datum, Millis};
use carbonflow_operators::aggregate::{AggregateFunction, AggregateSpec};
use carbonflow_operators::analytics::{CusumParams, Decay, DetectorOutput, Frame, HmmModel, OverCall, OverFunction, OverPartition};
use carbonflow_sinks::text::csv_field;
use common::{Tick, read_sorted, run_sql};
use proptest::prelude::*;

const TS: usize = 1;
const PRICE: usize = 2;
const HMM: &str = r#"{"observation": "difference", "initial": [0.5, 0.5], "transition": [[0.9, 0.1], [0.2, 0.8]], "means": [0, 5], "std_devs": [3, 9]}"#;

/// Ticks, then late revisions: a tick repeated later with a new price, at
/// most 5 minutes of event time behind the latest tick (the watermark delay
/// is 1 minute and the allowed lateness 10).
fn ticks() -> impl Strategy<Value = Vec<Tick>> {
    (
        common::ticks(3, 12, 1..40, 1..50),
        prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 1i64..40), 0..8),
    )
        .prop_map(|(mut ticks, revisions)| {
            for (target, at, price) in revisions {
                let at = at.index(ticks.len()) + 1;
                let latest = ticks[..at].iter().map(|t| t.second).max().unwrap_or(0);
                let candidates: Vec<&Tick> = ticks[..at].iter().filter(|t| t.second >= latest - 300).collect();
                let revised = Tick {
                    price,
                    ..candidates[target.index(candidates.len())].clone()
                };
                ticks.insert(at, revised);
            }
            ticks
        })
}

/// The analytics calls of the query, as the binder builds them over `(node, ts, price)`.
fn analytics_calls() -> Vec<OverCall> {
    let unbounded = |function| OverCall {
        function,
        args: vec![PRICE],
        frame: Frame::Unbounded,
    };
    vec![
        OverCall {
            function: OverFunction::ZScore,
            args: vec![PRICE],
            frame: Frame::Rows(3),
        },
        OverCall {
            function: OverFunction::Aggregate(AggregateSpec::new(AggregateFunction::StddevPop, DataType::Float)),
            args: vec![PRICE],
            frame: Frame::Range(30_000),
        },
        unbounded(OverFunction::EwmaZScore(Decay::Time(20_000))),
        unbounded(OverFunction::Cusum(CusumParams { k: 0.5, h: 3.0, warmup: 3 }, DetectorOutput::Statistic)),
        unbounded(OverFunction::HmmState(Arc::new(HmmModel::from_json(HMM).unwrap()))),
    ]
}

fn model(ticks: &[Tick]) -> Vec<String> {
    let latest = common::latest(ticks);
    let calls = analytics_calls();
    let mut lines = Vec::new();
    for node in 0..3u8 {
        let rows = common::node_rows(&latest, node);
        let times: Vec<Millis> = rows.iter().map(|r| r.get(TS).as_timestamp().unwrap()).collect();
        let mut partition = OverPartition::new(&calls);
        for (row, time) in rows.iter().zip(&times) {
            partition.insert(*time, row.clone(), 1);
        }
        let mut analytics = Vec::new();
        partition.recompute(&mut analytics);
        analytics.sort_by_key(|(row, _)| row.get(TS).as_timestamp());
        for (j, (row, (computed, _))) in rows.iter().zip(&analytics).enumerate() {
            let price = |i: usize| rows[i].get(PRICE).as_f64().unwrap();
            let last_four: Vec<f64> = (j.saturating_sub(3)..=j).map(price).collect();
            let in_range = times.iter().filter(|t| **t >= times[j] - 30_000 && **t <= times[j]).count();
            let naive = [
                Datum::Int(in_range as i64),
                Datum::float(last_four.iter().sum::<f64>() / last_four.len() as f64),
                Datum::float(last_four.iter().copied().fold(f64::MIN, f64::max)),
            ];
            let fields: Vec<String> = row
                .iter()
                .chain(&naive)
                .chain(&computed[row.len()..])
                .map(|d| csv_field(d).into_owned())
                .collect();
            lines.push(fields.join(","));
        }
    }
    lines.sort();
    lines
}

fn engine(ticks: &[Tick], workers: usize, batch_size: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("ticks.csv"), dir.path().join("scores.csv"));
    common::write_ticks(&input, ticks);
    let sql = format!(
        "SET 'table.exec.emit.allowed-lateness' = '10 min';
         CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE,
            PRIMARY KEY (node, ts) NOT ENFORCED,
            WATERMARK FOR ts AS ts - INTERVAL '60' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE scores (node STRING, ts TIMESTAMP(3), price DOUBLE, n BIGINT, avg4 DOUBLE, max4 DOUBLE,
            z DOUBLE, sd30 DOUBLE, ez DOUBLE, cusum DOUBLE, regime BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO scores
         SELECT node, ts, price,
                COUNT(*) OVER (PARTITION BY node ORDER BY ts RANGE BETWEEN INTERVAL '30' SECOND PRECEDING AND CURRENT ROW),
                AVG(price) OVER w, MAX(price) OVER w, ZSCORE(price) OVER w,
                STDDEV_POP(price) OVER (PARTITION BY node ORDER BY ts RANGE BETWEEN INTERVAL '30' SECOND PRECEDING AND CURRENT ROW),
                EWMA_ZSCORE(price, INTERVAL '20' SECOND) OVER (PARTITION BY node ORDER BY ts),
                CUSUM(price, 0.5, 3, 3) OVER (PARTITION BY node ORDER BY ts),
                HMM_STATE(price, '{HMM}') OVER (PARTITION BY node ORDER BY ts)
         FROM ticks
         WINDOW w AS (PARTITION BY node ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW);",
        input.display(),
        output.display()
    );
    let summary = run_sql(&sql, workers, batch_size);
    assert_eq!(summary.dead_letter_total(), 0, "{:?}", summary.dead_letters);
    read_sorted(&output)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn oracle_over_with_revisions(
        ticks in ticks(),
        workers in prop::sample::select(vec![1usize, 2, 4]),
        batch_size in 1usize..6,
    ) {
        prop_assert_eq!(engine(&ticks, workers, batch_size), model(&ticks));
    }
}

#[test]
fn over_errors_name_the_problem() {
    let table = "CREATE TABLE t (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts)
        WITH ('connector' = 'filesystem', 'path' = 'x', 'format' = 'csv');\n";
    let by_node = "(PARTITION BY node ORDER BY ts)";
    let cases = [
        (format!("SELECT ZSCORE(price) OVER {by_node} FROM t"), "needs a bounded frame"),
        (
            "SELECT EWMA(price, 10) OVER (PARTITION BY node ORDER BY ts ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) FROM t".to_owned(),
            "all preceding rows",
        ),
        (
            format!("SELECT EWMA(price, 10) OVER {by_node}, EWMA(price, 5) OVER (ORDER BY ts) FROM t"),
            "same PARTITION BY",
        ),
        (
            "SELECT EWMA(price, 10) OVER (PARTITION BY node ORDER BY price) FROM t".to_owned(),
            "ORDER BY the event-time column",
        ),
        (
            "SELECT AVG(price) OVER (ORDER BY ts ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM t".to_owned(),
            "must end at CURRENT ROW",
        ),
        ("SELECT AVG(price) OVER w FROM t".to_owned(), "no window named 'w'"),
        (format!("SELECT node FROM t WHERE EWMA(price, 3) OVER {by_node} > 1"), "SELECT items only"),
        (
            "SELECT node FROM t WINDOW w AS (PARTITION BY node ORDER BY ts)".to_owned(),
            "window 'w' is defined but no OVER uses it",
        ),
        (
            format!("SELECT HMM_PROBABILITY(price, '{HMM}', 2) OVER {by_node} FROM t"),
            "the model has states 0 to 1",
        ),
        (
            format!("SELECT HMM_STATE(price, 'no/such/model.json') OVER {by_node} FROM t"),
            "cannot read the model file",
        ),
        (
            format!("SELECT GARCH_VOLATILITY(price, 0.1, 0.5, 0.6) OVER {by_node} FROM t"),
            "alpha + beta < 1",
        ),
        (
            format!("SELECT SEASONAL_ZSCORE(price, 4, 'Mars/Olympus') OVER {by_node} FROM t"),
            "unknown time zone",
        ),
        (format!("SELECT CUSUM(price, 0.5) OVER {by_node} FROM t"), "CUSUM(x, k, h [, warmup])"),
        (format!("SELECT MEDIAN_SHIFT(price) OVER {by_node} FROM t"), "unknown OVER function"),
        (format!("SELECT ZSCORE(node) OVER {by_node} FROM t"), "needs a numeric argument"),
    ];
    for (query, message) in cases {
        let error = carbonflow::cli::check_text(&format!("{table}{query}")).unwrap_err();
        assert!(error.message.contains(message), "{query}: {}", error.message);
    }
}

#[test]
fn unaliased_calls_and_named_windows_with_an_added_frame() {
    let program = carbonflow::cli::check_text(
        "CREATE TABLE t (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts)
           WITH ('connector' = 'filesystem', 'path' = 'x', 'format' = 'csv');
         SELECT node, ZSCORE(price) OVER (w ROWS BETWEEN 4 PRECEDING AND CURRENT ROW), COUNT(*) OVER v AS n
         FROM t WINDOW w AS (PARTITION BY node ORDER BY ts), v AS (PARTITION BY node ORDER BY ts ROWS 9 PRECEDING);",
    )
    .unwrap_or_else(|e| panic!("{}", e.message));
    let schema = program.outputs[0].plan.schema.to_string();
    assert_eq!(schema, "(node STRING, EXPR$1 DOUBLE, n BIGINT)");
    let plan = program.to_string();
    assert!(plan.contains("calls=[ZSCORE($2) rows=4, COUNT(*) rows=9]"), "{plan}");
}
