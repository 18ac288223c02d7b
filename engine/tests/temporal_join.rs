//! Event-time temporal joins end to end: prices converted with the exchange
//! rate valid at each price's time (`JOIN fx FOR SYSTEM_TIME AS OF t.ts`),
//! including weekend prices that take Friday's rate, a revised rate that
//! re-converts the prices it covers, with 1 and 2 workers; and the errors a
//! misuse gets.

mod common;

use std::path::Path;

use carbonflow::cli::check_text;
use common::{read_sorted, run_sql};

fn query(dir: &Path) -> String {
    format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, currency STRING,
             PRIMARY KEY (node, ts) NOT ENFORCED,
             WATERMARK FOR ts AS ts - INTERVAL '1' HOUR)
         WITH ('connector' = 'filesystem', 'path' = '{dir}/ticks.csv', 'format' = 'csv');
         CREATE TABLE fx (currency STRING, ts TIMESTAMP(3), usd_per_unit DOUBLE,
             PRIMARY KEY (currency, ts) NOT ENFORCED,
             WATERMARK FOR ts AS ts - INTERVAL '1' DAY)
         WITH ('connector' = 'filesystem', 'path' = '{dir}/fx.csv', 'format' = 'csv');
         CREATE TABLE out (node STRING, ts TIMESTAMP(3), price_usd DOUBLE, rate_day TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'path' = '{dir}/out.csv', 'format' = 'csv');
         INSERT INTO out
         SELECT t.node, t.ts, ROUND(t.price * r.usd_per_unit, 4), r.ts AS rate_day
         FROM ticks AS t
         JOIN fx FOR SYSTEM_TIME AS OF t.ts AS r ON r.currency = t.currency;",
        dir = dir.display()
    )
}

#[test]
fn prices_take_the_rate_valid_at_their_time_and_follow_a_revised_rate() {
    for workers in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        // Friday 2024-01-05 and Monday 2024-01-08 rates; Friday's CAD rate is revised.
        std::fs::write(
            dir.path().join("fx.csv"),
            "CAD,2024-01-05 00:00:00,0.75\nEUR,2024-01-05 00:00:00,1.10\nCAD,2024-01-05 00:00:00,0.74\n\
             CAD,2024-01-08 00:00:00,0.76\nEUR,2024-01-08 00:00:00,1.09\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("ticks.csv"),
            "AESO,2024-01-04 23:00:00,100,CAD\n\
             AESO,2024-01-05 10:00:00,100,CAD\n\
             AESO,2024-01-06 12:00:00,200,CAD\n\
             DE-LU,2024-01-07 12:00:00,50,EUR\n\
             AESO,2024-01-08 00:00:00,300,CAD\n\
             AESO,2024-01-08 09:00:00,10,CAD\n\
             DE-LU,2024-01-08 09:00:00,60,EUR\n\
             AESO,2024-01-08 09:00:00,20,CAD\n",
        )
        .unwrap();
        let summary = run_sql(&query(dir.path()), workers, 2);
        assert_eq!(summary.dead_letter_total(), 0);
        assert_eq!(
            read_sorted(&dir.path().join("out.csv")),
            vec![
                // Before the first rate: no version, no row (an inner join).
                "AESO,2024-01-05 10:00:00.000,74.0,2024-01-05 00:00:00.000",
                "AESO,2024-01-06 12:00:00.000,148.0,2024-01-05 00:00:00.000",
                "AESO,2024-01-08 00:00:00.000,228.0,2024-01-08 00:00:00.000",
                "AESO,2024-01-08 09:00:00.000,15.2,2024-01-08 00:00:00.000",
                "DE-LU,2024-01-07 12:00:00.000,55.0,2024-01-05 00:00:00.000",
                "DE-LU,2024-01-08 09:00:00.000,65.4,2024-01-08 00:00:00.000",
            ],
            "{workers} workers"
        );
    }
}

#[test]
fn misuses_are_errors_at_the_right_place() {
    let dir = tempfile::tempdir().unwrap();
    let sql = query(dir.path());
    let no_watermark = sql.replace(",\n             WATERMARK FOR ts AS ts - INTERVAL '1' DAY)", ")");
    let error = check_text(&no_watermark).unwrap_err().render("q.sql", &no_watermark);
    assert!(error.contains("needs an event-time attribute"), "{error}");
    let not_time = sql.replace("AS OF t.ts", "AS OF t.node");
    let error = check_text(&not_time).unwrap_err().render("q.sql", &not_time);
    assert!(error.contains("takes a TIMESTAMP column"), "{error}");
    let on_its_own = sql.replace(
        "FROM ticks AS t\n         JOIN fx FOR SYSTEM_TIME AS OF t.ts AS r ON r.currency = t.currency",
        "FROM fx FOR SYSTEM_TIME AS OF ts AS r",
    );
    let error = check_text(&on_its_own).unwrap_err().render("q.sql", &on_its_own);
    assert!(error.contains("belongs to the versioned table on the right of a JOIN"), "{error}");
}
