//! `UNION ALL`: rows of several queries in one collection (e.g. several
//! markets' feeds in one regional view), aggregated downstream, with
//! revisions in either input flowing through; and its errors.

mod common;

use carbonflow::cli::check_text;
use common::{read_sorted, run_sql};

#[test]
fn union_all_feeds_one_aggregation_and_revisions_flow_through() {
    for workers in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("a.csv"),
            "A1,2024-01-01 00:00:00,10\nA1,2024-01-01 00:10:00,20\nA1,2024-01-01 00:10:00,30\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.csv"), "B1,2024-01-01 00:30:00,40\nB1,2024-01-01 01:30:00,50\n").unwrap();
        let sql = format!(
            "CREATE TABLE a (node STRING, ts TIMESTAMP(3), price DOUBLE, PRIMARY KEY (node, ts) NOT ENFORCED,
                 WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
             WITH ('connector' = 'filesystem', 'path' = '{d}/a.csv', 'format' = 'csv');
             CREATE TABLE b (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
             WITH ('connector' = 'filesystem', 'path' = '{d}/b.csv', 'format' = 'csv');
             CREATE TABLE out (market STRING, hour TIMESTAMP(3), n BIGINT, total DOUBLE)
             WITH ('connector' = 'filesystem', 'path' = '{d}/out.csv', 'format' = 'csv');
             CREATE VIEW region AS
                 SELECT 'A' AS market, ts, price FROM a
                 UNION ALL SELECT 'B', ts, price FROM b
                 UNION ALL SELECT 'ALL', ts, price FROM (SELECT ts, price FROM a UNION ALL SELECT ts, price FROM b);
             INSERT INTO out
             SELECT market, window_start, COUNT(*), SUM(price)
             FROM TABLE(TUMBLE(TABLE region, DESCRIPTOR(ts), INTERVAL '1' HOUR))
             GROUP BY market, window_start, window_end;"
        );
        run_sql(&sql, workers, 1);
        assert_eq!(
            read_sorted(&dir.path().join("out.csv")),
            vec![
                "A,2024-01-01 00:00:00.000,2,40.0",
                "ALL,2024-01-01 00:00:00.000,3,80.0",
                "ALL,2024-01-01 01:00:00.000,1,50.0",
                "B,2024-01-01 00:00:00.000,1,40.0",
                "B,2024-01-01 01:00:00.000,1,50.0",
            ],
            "{workers} workers"
        );
    }
}

#[test]
fn union_needs_all_and_matching_columns() {
    let table = "CREATE TABLE a (node STRING, n BIGINT, x DOUBLE) WITH ('connector' = 'filesystem', 'path' = 'a.csv', 'format' = 'csv');";
    for (query, message) in [
        ("SELECT node FROM a UNION SELECT node FROM a", "only UNION ALL is supported"),
        ("SELECT node, n FROM a UNION ALL SELECT node FROM a", "UNION ALL of 2 columns with 1 columns"),
        (
            "SELECT node, n FROM a UNION ALL SELECT node, x FROM a",
            "column 2 ('n') is BIGINT on the left and DOUBLE on the right",
        ),
        ("SELECT node FROM a EXCEPT SELECT node FROM a", "only SELECT and UNION ALL"),
    ] {
        let sql = format!("{table}\n{query};");
        let error = check_text(&sql).unwrap_err().render("q.sql", &sql);
        assert!(error.contains(message), "{query}: {error}");
    }
}
