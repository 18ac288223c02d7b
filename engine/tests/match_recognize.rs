//! MATCH_RECOGNIZE through the whole engine against the pure CEP core:
//! random ticks with revisions (primary-key upserts, i.e. retractions) and
//! out-of-order arrival inside the watermark delay, random batch sizes, 1 or 2
//! workers. The model applies the upserts, orders each node's rows by event
//! time and runs the same `MatchRecognizer` over them; the engine's
//! consolidated output must equal its matches.

use std::sync::Arc;

mod common;

use carbonflow::cli::check_text;
use carbonflow::runtime::{RunOptions, run};
use carbonflow_core::Datum;
use carbonflow_operators::cep::{AfterMatchSkip, BinaryOp, MatchExpr, MatchRecognizer, MatchSpec, RowsPerMatch, Within};
use carbonflow_sinks::text::csv_field;
use common::{Tick, read_sorted, run_sql};
use proptest::prelude::*;

const PRICE: usize = 2;
const TS: usize = 1;

fn ticks() -> impl Strategy<Value = Vec<Tick>> {
    common::ticks(2, 12, 1..40, 1..50)
}

const QUERY: &str = "
    MEASURES A.ts AS a_ts, C.ts AS c_ts, A.price AS base, C.price AS peak, COUNT(B.price) AS steps, MATCH_NUMBER() AS n
    {ROWS}
    AFTER MATCH SKIP PAST LAST ROW
    PATTERN (A B+ C) WITHIN INTERVAL '30' SECOND
    DEFINE C AS C.price > 1.5 * A.price";

/// The spec `QUERY` binds to, over rows `(node, ts, price)`.
fn recognizer(all_rows: bool) -> MatchRecognizer {
    let mut spec = MatchSpec::parse("A B+ C").unwrap();
    let (a, b, c) = (spec.var("A"), spec.var("B"), spec.var("C"));
    let threshold = MatchExpr::binary(BinaryOp::Multiply, MatchExpr::literal(Datum::float(1.5)), MatchExpr::column(a, PRICE));
    spec.define
        .push((c.unwrap(), MatchExpr::binary(BinaryOp::Gt, MatchExpr::column(c, PRICE), threshold)));
    let count = MatchExpr::aggregate(
        carbonflow_operators::aggregate::AggregateSpec::new(carbonflow_operators::aggregate::AggregateFunction::Count, carbonflow_core::DataType::Float),
        b,
        Some(PRICE),
    );
    spec.measures = vec![
        MatchExpr::column(a, TS),
        MatchExpr::column(c, TS),
        MatchExpr::column(a, PRICE),
        MatchExpr::column(c, PRICE),
        count,
        MatchExpr::MatchNumber,
    ]
    .into_iter()
    .map(|m| if all_rows { m } else { m.into_final() })
    .collect();
    spec.rows_per_match = if all_rows { RowsPerMatch::All } else { RowsPerMatch::One };
    spec.skip = AfterMatchSkip::PastLastRow;
    spec.within = Some(Within {
        duration: 30_000,
        time_column: TS,
    });
    MatchRecognizer::new(spec).unwrap()
}

fn model(ticks: &[Tick], all_rows: bool) -> Vec<String> {
    let latest = common::latest(ticks);
    let recognizer = recognizer(all_rows);
    let mut lines = Vec::new();
    for node in 0..2u8 {
        let rows = common::node_rows(&latest, node);
        for found in recognizer.find_matches(&rows, 0, 1).matches {
            // ONE ROW: the node, then the measures; ALL ROWS: each matched row, then its running measures.
            let heads: Vec<Vec<Datum>> = if all_rows {
                rows[found.start..found.end].iter().map(|r| r.to_vec()).collect()
            } else {
                vec![vec![Datum::string(&format!("N{node}"))]]
            };
            for (head, measures) in heads.iter().zip(&found.measures) {
                let fields: Vec<String> = head.iter().chain(measures.iter()).map(|d| csv_field(d).into_owned()).collect();
                lines.push(fields.join(","));
            }
        }
    }
    lines.sort();
    lines
}

fn engine(ticks: &[Tick], workers: usize, batch_size: usize, all_rows: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("ticks.csv"), dir.path().join("spikes.csv"));
    common::write_ticks(&input, ticks);
    let sql = format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE,
            PRIMARY KEY (node, ts) NOT ENFORCED,
            WATERMARK FOR ts AS ts - INTERVAL '60' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE spikes ({columns}a_ts TIMESTAMP(3), c_ts TIMESTAMP(3), base DOUBLE, peak DOUBLE, steps BIGINT, n BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO spikes SELECT * FROM ticks MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts {query}) AS m;",
        input.display(),
        output.display(),
        columns = if all_rows {
            "node STRING, ts TIMESTAMP(3), price DOUBLE, "
        } else {
            "node STRING, "
        },
        query = QUERY.replace("{ROWS}", if all_rows { "ALL ROWS PER MATCH" } else { "ONE ROW PER MATCH" }),
    );
    let summary = run_sql(&sql, workers, batch_size);
    assert_eq!(summary.dead_letter_total(), 0);
    read_sorted(&output)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn oracle_match_recognize_with_revisions(
        ticks in ticks(),
        workers in prop::sample::select(vec![1usize, 2]),
        batch_size in 1usize..6,
        all_rows in any::<bool>(),
    ) {
        prop_assert_eq!(engine(&ticks, workers, batch_size, all_rows), model(&ticks, all_rows));
    }
}

#[test]
fn distinct_aggregates_count_distinct_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.csv");
    // One run of rising prices in which 2 appears twice: 4 rows, 3 distinct prices.
    std::fs::write(
        &input,
        "N,2024-01-01 00:00:00,1\nN,2024-01-01 00:00:01,2\nN,2024-01-01 00:00:02,2\nN,2024-01-01 00:00:03,3\nN,2024-01-01 00:00:04,0\n",
    )
    .unwrap();
    let output = dir.path().join("out.csv");
    let sql = format!(
        "CREATE TABLE t (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE out (node STRING, n BIGINT, distinct_prices BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO out SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts
           MEASURES COUNT(A.price) AS n, COUNT(DISTINCT A.price) AS distinct_prices
           PATTERN (A+) DEFINE A AS A.price >= 1) AS m;",
        input.display(),
        output.display()
    );
    run(Arc::new(check_text(&sql).unwrap()), RunOptions::default()).unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap().trim(), "N,4,3");
}

#[test]
fn all_rows_per_match_gives_every_row_with_running_measures() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.csv");
    std::fs::write(
        &input,
        "N,2024-01-01 00:00:00,10\nN,2024-01-01 00:00:01,11\nN,2024-01-01 00:00:02,20\nN,2024-01-01 00:00:03,5\n",
    )
    .unwrap();
    let output = dir.path().join("out.csv");
    let sql = format!(
        "CREATE TABLE t (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE out (node STRING, ts TIMESTAMP(3), price DOUBLE, var STRING, running_max DOUBLE, n BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO out SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts
           MEASURES CLASSIFIER() AS var, MAX(price) AS running_max, MATCH_NUMBER() AS n
           ALL ROWS PER MATCH
           PATTERN (A B+ C) DEFINE B AS B.price > PREV(B.price), C AS C.price < PREV(C.price)) AS m;",
        input.display(),
        output.display()
    );
    run(Arc::new(check_text(&sql).unwrap()), RunOptions::default()).unwrap();
    let mut lines: Vec<String> = std::fs::read_to_string(&output).unwrap().lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "N,2024-01-01 00:00:00.000,10.0,A,10.0,1",
            "N,2024-01-01 00:00:01.000,11.0,B,11.0,1",
            "N,2024-01-01 00:00:02.000,20.0,B,20.0,1",
            "N,2024-01-01 00:00:03.000,5.0,C,20.0,1",
        ]
    );
}

/// `ORDER BY ts, seq [DESC]`: rows of equal event time take the order of
/// `seq`, whatever order they arrive in; the order decides the match.
#[test]
fn rows_of_equal_time_are_ordered_by_the_further_columns() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.csv");
    // Two ticks at 00:00:00, in the file in the order seq 2, seq 1.
    std::fs::write(&input, "N,2024-01-01 00:00:00,2,30\nN,2024-01-01 00:00:00,1,10\nN,2024-01-01 00:00:01,1,20\n").unwrap();
    let run_with = |order: &str| {
        let output = dir.path().join(format!("out-{}.csv", order.len()));
        let sql = format!(
            "CREATE TABLE t (node STRING, ts TIMESTAMP(3), seq BIGINT, price DOUBLE, WATERMARK FOR ts AS ts)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             CREATE TABLE out (node STRING, a_price DOUBLE, b_price DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             INSERT INTO out SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node ORDER BY {order}
               MEASURES A.price AS a_price, B.price AS b_price
               PATTERN (A B) DEFINE B AS B.price > A.price) AS m;",
            input.display(),
            output.display()
        );
        run(Arc::new(check_text(&sql).unwrap()), RunOptions::default()).unwrap();
        std::fs::read_to_string(&output).unwrap().trim().to_owned()
    };
    // 10 (seq 1), 30 (seq 2), 20: the rise from 10 to 30.
    assert_eq!(run_with("ts, seq"), "N,10.0,30.0");
    assert_eq!(run_with("ts ASC, seq ASC NULLS FIRST"), "N,10.0,30.0");
    // 30 (seq 2), 10 (seq 1), 20: the rise from 10 to 20.
    assert_eq!(run_with("ts, seq DESC"), "N,10.0,20.0");
}

#[test]
fn match_recognize_errors_point_at_the_clause() {
    let table = "CREATE TABLE t (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts)
        WITH ('connector' = 'filesystem', 'path' = 'x', 'format' = 'csv');\n";
    let cases = [
        (
            "SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts MEASURES X.price AS p PATTERN (A) DEFINE A AS A.price > 1) AS m",
            "'X' is not a pattern variable",
        ),
        (
            "SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node ORDER BY price MEASURES A.price AS p PATTERN (A) DEFINE A AS A.price > 1) AS m",
            "ORDER BY must start with the event-time column 'ts' ascending",
        ),
        (
            "SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts DESC MEASURES A.price AS p PATTERN (A) DEFINE A AS A.price > 1) AS m",
            "ORDER BY must start with the event-time column 'ts' ascending",
        ),
        (
            "SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts, price * 2 MEASURES A.price AS p PATTERN (A) DEFINE A AS A.price > 1) AS m",
            "orders by columns, not expressions",
        ),
        (
            "SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts MEASURES A.price AS p PATTERN (A) DEFINE A AS A.price + 1) AS m",
            "must be BOOLEAN",
        ),
    ];
    for (query, message) in cases {
        let error = check_text(&format!("{table}{query}")).unwrap_err();
        assert!(error.message.contains(message), "{query}: {}", error.message);
        assert_eq!(error.span.start.line, 3, "{query}: the error points into the query line");
    }
}
