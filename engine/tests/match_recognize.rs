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

/// Runs `SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node {clause}) AS m`
/// over `csv` (a table `t (node STRING, ts TIMESTAMP(3), {columns})` with
/// the watermark at `ts`) into a CSV table of `out_columns`; returns its
/// lines, sorted.
fn match_csv(csv: &str, columns: &str, out_columns: &str, clause: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("ticks.csv"), dir.path().join("out.csv"));
    std::fs::write(&input, csv).unwrap();
    let sql = format!(
        "CREATE TABLE t (node STRING, ts TIMESTAMP(3), {columns}, WATERMARK FOR ts AS ts)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE out ({out_columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO out SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node {clause}) AS m;",
        input.display(),
        output.display()
    );
    run(Arc::new(check_text(&sql).unwrap()), RunOptions::default()).unwrap();
    read_sorted(&output)
}

#[test]
fn distinct_aggregates_count_distinct_values() {
    // One run of rising prices in which 2 appears twice: 4 rows, 3 distinct prices.
    let lines = match_csv(
        "N,2024-01-01 00:00:00,1\nN,2024-01-01 00:00:01,2\nN,2024-01-01 00:00:02,2\nN,2024-01-01 00:00:03,3\nN,2024-01-01 00:00:04,0\n",
        "price DOUBLE",
        "node STRING, n BIGINT, distinct_prices BIGINT",
        "ORDER BY ts MEASURES COUNT(A.price) AS n, COUNT(DISTINCT A.price) AS distinct_prices PATTERN (A+) DEFINE A AS A.price >= 1",
    );
    assert_eq!(lines, ["N,4,3"]);
}

#[test]
fn between_in_define_includes_both_bounds() {
    // Runs of prices from 10 to 20, bounds included; 9 and 21 end a run, NOT BETWEEN marks them.
    let lines = match_csv(
        "N,2024-01-01 00:00:00,10\nN,2024-01-01 00:00:01,20\nN,2024-01-01 00:00:02,21\nN,2024-01-01 00:00:03,15\nN,2024-01-01 00:00:04,9\n",
        "price DOUBLE",
        "node STRING, n BIGINT, outside DOUBLE",
        "ORDER BY ts MEASURES COUNT(A.price) AS n, X.price AS outside PATTERN (A+ X)
         DEFINE A AS A.price BETWEEN 10 AND 20, X AS X.price NOT BETWEEN 10 AND 20",
    );
    assert_eq!(lines, ["N,1,9.0", "N,2,21.0"]);
}

/// A rise `A B+` then a fall `C`, over prices 10, 11, 20, 5.
const RISE_THEN_FALL: &str = "N,2024-01-01 00:00:00,10\nN,2024-01-01 00:00:01,11\nN,2024-01-01 00:00:02,20\nN,2024-01-01 00:00:03,5\n";

#[test]
fn all_rows_per_match_gives_every_row_with_running_measures() {
    let lines = match_csv(
        RISE_THEN_FALL,
        "price DOUBLE",
        "node STRING, ts TIMESTAMP(3), price DOUBLE, var STRING, running_max DOUBLE, n BIGINT",
        "ORDER BY ts MEASURES CLASSIFIER() AS var, MAX(price) AS running_max, MATCH_NUMBER() AS n
         ALL ROWS PER MATCH
         PATTERN (A B+ C) DEFINE B AS B.price > PREV(B.price), C AS C.price < PREV(C.price)",
    );
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

/// SQL:2016 `RUNNING` (the default) and `FINAL` in MEASURES: with ALL ROWS
/// PER MATCH a running navigation or aggregate sees the match up to the
/// output row, a final one all of it; with ONE ROW PER MATCH both are the
/// value at the last row.
#[test]
fn running_and_final_measures() {
    let measures = "MEASURES CLASSIFIER() AS var, LAST(B.price) AS last_b, RUNNING LAST(B.price) AS running_last_b,
        FINAL LAST(B.price) AS final_last_b, FINAL COUNT(B.*) AS final_bs, RUNNING COUNT(*) AS running_rows,
        final count(*) AS final_rows, PREV(FINAL LAST(B.price), 1) AS before_final_b, FINAL FIRST(price, 1) AS second_price";
    let pattern = "PATTERN (A B+ C) DEFINE B AS B.price > PREV(B.price), C AS C.price < PREV(C.price)";
    let out = "var STRING, last_b DOUBLE, running_last_b DOUBLE, final_last_b DOUBLE, final_bs BIGINT, running_rows BIGINT,
        final_rows BIGINT, before_final_b DOUBLE, second_price DOUBLE";
    let all_rows = match_csv(
        RISE_THEN_FALL,
        "price DOUBLE",
        &format!("node STRING, ts TIMESTAMP(3), price DOUBLE, {out}"),
        &format!("ORDER BY ts {measures} ALL ROWS PER MATCH {pattern}"),
    );
    assert_eq!(
        all_rows,
        [
            "N,2024-01-01 00:00:00.000,10.0,A,,,20.0,2,1,4,11.0,11.0",
            "N,2024-01-01 00:00:01.000,11.0,B,11.0,11.0,20.0,2,2,4,11.0,11.0",
            "N,2024-01-01 00:00:02.000,20.0,B,20.0,20.0,20.0,2,3,4,11.0,11.0",
            "N,2024-01-01 00:00:03.000,5.0,C,20.0,20.0,20.0,2,4,4,11.0,11.0",
        ]
    );
    let one_row = match_csv(
        RISE_THEN_FALL,
        "price DOUBLE",
        &format!("node STRING, {out}"),
        &format!("ORDER BY ts {measures} ONE ROW PER MATCH {pattern}"),
    );
    assert_eq!(one_row, ["N,C,20.0,20.0,20.0,2,4,4,11.0,11.0"]);
}

/// `ORDER BY ts, seq [DESC]`: rows of equal event time take the order of
/// `seq`, whatever order they arrive in; the order decides the match.
#[test]
fn rows_of_equal_time_are_ordered_by_the_further_columns() {
    // Two ticks at 00:00:00, in the file in the order seq 2, seq 1.
    let csv = "N,2024-01-01 00:00:00,2,30\nN,2024-01-01 00:00:00,1,10\nN,2024-01-01 00:00:01,1,20\n";
    let rise = |order: &str| {
        match_csv(
            csv,
            "seq BIGINT, price DOUBLE",
            "node STRING, a_price DOUBLE, b_price DOUBLE",
            &format!("ORDER BY {order} MEASURES A.price AS a_price, B.price AS b_price PATTERN (A B) DEFINE B AS B.price > A.price"),
        )
    };
    // 10 (seq 1), 30 (seq 2), 20: the rise from 10 to 30.
    assert_eq!(rise("ts, seq"), ["N,10.0,30.0"]);
    assert_eq!(rise("ts ASC, seq ASC NULLS FIRST"), ["N,10.0,30.0"]);
    // 30 (seq 2), 10 (seq 1), 20: the rise from 10 to 20.
    assert_eq!(rise("ts, seq DESC"), ["N,10.0,20.0"]);
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
            "SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts MEASURES A.price AS p PATTERN (A B) DEFINE B AS B.price > FINAL LAST(A.price)) AS m",
            "FINAL is not allowed in DEFINE",
        ),
        (
            "SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts MEASURES FINAL PREV(A.price) AS p PATTERN (A) DEFINE A AS A.price > 1) AS m",
            "RUNNING and FINAL apply to FIRST, LAST and aggregates",
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
