//! Queries submitted to and dropped from a running engine ([`Engine::submit`],
//! [`Engine::drop_query`]), with the workers of the first query still running:
//! a submitted query's results equal a run of the same file on its own, a bad
//! file is refused with its line and column, names and view names are unique,
//! and a dropped query is gone from every worker (its name is free again).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use carbonflow::cli::check_text;
use carbonflow::runtime::registry::QueryStatus;
use carbonflow::runtime::{Engine, RunOptions, SubmitError};
use common::{Tick, read_sorted, run_sql, write_ticks};

/// A file query: hourly-style windows of the ticks in `dir`, written to `out_name`.
fn windows_query(dir: &std::path::Path, out_name: &str) -> String {
    format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{dir}/ticks.csv', 'format' = 'csv');
         CREATE TABLE {out_name} (node STRING, window_start TIMESTAMP(3), n BIGINT, high DOUBLE)
         WITH ('connector' = 'filesystem', 'path' = '{dir}/{out_name}.csv', 'format' = 'csv');
         INSERT INTO {out_name}
         SELECT node, window_start, COUNT(*), MAX(price)
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTES))
         GROUP BY node, window_start, window_end;",
        dir = dir.display()
    )
}

/// An endless simulator query that keeps the engine busy.
const ENDLESS: &str = "
    CREATE TABLE sim (market STRING, node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
    WITH ('connector' = 'simulator', 'nodes' = '50', 'rows-per-second' = '2000');
    CREATE TABLE sim_out (market STRING, n BIGINT) WITH ('connector' = 'blackhole');
    INSERT INTO sim_out SELECT market, COUNT(*) FROM sim GROUP BY market;";

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn queries_come_and_go_while_the_engine_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ticks: Vec<Tick> = (0..3_000i64)
        .map(|i| Tick {
            node: (i % 9) as u8,
            second: i / 4,
            price: 10 + (i * 13 % 70),
        })
        .collect();
    write_ticks(&dir.path().join("ticks.csv"), &ticks);
    run_sql(&windows_query(dir.path(), "alone"), 2, 128);
    let expected = read_sorted(&dir.path().join("alone.csv"));
    assert!(expected.len() > 50);

    let options = RunOptions {
        workers: 2,
        batch_size: 128,
        keep_running: true,
        ..RunOptions::default()
    };
    let stop = options.stop.clone();
    let endless = Arc::new(check_text(ENDLESS).unwrap());
    let engine = Arc::new(Engine::start(options, vec![("endless".into(), endless, None)]).unwrap());
    let registry_engine = engine.clone();
    wait_until("the first query runs", || {
        registry_engine.registry().get("endless").is_some_and(|q| q.rows_in.load(Ordering::Relaxed) > 0)
    });

    // A bad file: refused with the position of the bad token; nothing registered.
    let bad = "CREATE TABLE t (a STRING) WITH ('connector' = 'blackhole');\nSELECT nope FROM t;";
    match engine.submit("bad", bad) {
        Err(SubmitError::Invalid(error)) => assert_eq!((error.span.start.line, error.span.start.column), (2, 8)),
        other => panic!("expected a check error, got {other:?}"),
    }
    assert!(engine.registry().get("bad").is_none());
    assert!(matches!(engine.submit("bad name!", ENDLESS), Err(SubmitError::BadName(_))));

    // A file query submitted while the first one runs: the same results as alone.
    let submitted = engine.submit("windows", &windows_query(dir.path(), "submitted")).expect("the query starts");
    assert_ne!(submitted.status(), QueryStatus::Starting);
    assert!(matches!(
        engine.submit("windows", &windows_query(dir.path(), "again")),
        Err(SubmitError::Conflict(_))
    ));
    wait_until("the submitted query finishes", || submitted.status() == QueryStatus::Finished);
    assert_eq!(read_sorted(&dir.path().join("submitted.csv")), expected);
    assert!(submitted.rows_in.load(Ordering::Relaxed) == 3_000);

    // Dropping the endless query removes it; its name is free again and the engine still runs queries.
    assert!(engine.drop_query("endless"));
    assert!(engine.registry().get("endless").is_none());
    assert!(!engine.drop_query("endless"));
    let again = engine.submit("endless", ENDLESS).expect("the name is free again");
    wait_until("the resubmitted query reads", || again.rows_in.load(Ordering::Relaxed) > 0);

    stop.store(true, Ordering::SeqCst);
    let summary = engine.wait().expect("a clean stop");
    assert!(summary.rows_read >= 3_000);
}
