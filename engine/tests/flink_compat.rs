//! The engine-core acceptance tests: a Flink SQL file over a header-less CSV
//! runs unchanged and yields Flink's rows; results do not depend on the
//! worker count; a revision corrects every window; bad queries and bad rows
//! are reported, not fatal.

use std::path::Path;

mod common;

use carbonflow::cli::check_text;
use common::{FLINK_COMPAT_TICKS, flink_compat_ticks_table, flink_compat_window_stats, read_sorted, run_sql};

/// Issue 2's file: its ticks aggregated over `window` into `window_stats.csv`.
fn flink_file(dir: &Path, window: &str) -> String {
    let sink = flink_compat_window_stats("window_stats", &dir.join("window_stats.csv"), window);
    format!("{}\n{sink}", flink_compat_ticks_table(&dir.join("ticks.csv"), ""))
}

#[test]
fn tumble_matches_flink_with_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ticks.csv"), FLINK_COMPAT_TICKS).unwrap();
    let sql = flink_file(dir.path(), "TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTES)");
    // Computed by hand from the ticks the way Flink does: windows [start, end),
    // fired when the watermark (max ts - 2 s) reaches end - 1 ms. Flink 2.3
    // gives these rows for the file without its malformed row (on the row
    // itself its job fails): engine/tests/flink_reference.rs.
    let flink = [
        "A,2024-01-01 00:00:00.000,2024-01-01 00:01:00.000,4,13.0,10.0,16.0,9",
        "A,2024-01-01 00:01:00.000,2024-01-01 00:02:00.000,1,11.0,11.0,11.0,7",
        "A,2024-01-01 00:02:00.000,2024-01-01 00:03:00.000,1,13.0,13.0,13.0,1",
        "B,2024-01-01 00:00:00.000,2024-01-01 00:01:00.000,2,21.0,20.0,22.0,7",
        "B,2024-01-01 00:01:00.000,2024-01-01 00:02:00.000,1,21.0,21.0,21.0,2",
    ];
    for workers in [1, 2, 4] {
        // Row-at-a-time epochs make the watermark advance between rows, as in Flink.
        let summary = run_sql(&sql, workers, 1);
        assert_eq!(read_sorted(&dir.path().join("window_stats.csv")), flink, "{workers} workers");
        assert_eq!(summary.rows_read, 10);
        assert_eq!(
            summary.dead_letters.get(&("ticks".into(), "parse".into())),
            Some(&1),
            "the malformed row is counted"
        );
        assert_eq!(
            summary.dead_letters.get(&("WindowAggregate".into(), "late".into())),
            Some(&1),
            "the late row is counted"
        );
    }
}

#[test]
fn hop_matches_flink() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ticks.csv"),
        "A,2024-01-01 00:00:10.000,1.0,1\nA,2024-01-01 00:00:40.000,3.0,1\nA,2024-01-01 00:01:10.000,5.0,1\n",
    )
    .unwrap();
    let sql = flink_file(dir.path(), "HOP(TABLE ticks, DESCRIPTOR(ts), INTERVAL '30' SECONDS, INTERVAL '1' MINUTES)");
    run_sql(&sql, 2, 1);
    assert_eq!(
        read_sorted(&dir.path().join("window_stats.csv")),
        [
            "A,2023-12-31 23:59:30.000,2024-01-01 00:00:30.000,1,1.0,1.0,1.0,1",
            "A,2024-01-01 00:00:00.000,2024-01-01 00:01:00.000,2,2.0,1.0,3.0,2",
            "A,2024-01-01 00:00:30.000,2024-01-01 00:01:30.000,2,4.0,3.0,5.0,2",
            "A,2024-01-01 00:01:00.000,2024-01-01 00:02:00.000,1,5.0,5.0,5.0,1",
        ]
    );
}

#[test]
fn a_revision_corrects_every_window_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.csv");
    // The tick at 00:00:30 is published at 10.0, then revised to 40.0.
    std::fs::write(
        &input,
        "A,2024-01-01 00:00:10.000,20.0\nA,2024-01-01 00:00:30.000,10.0\nA,2024-01-01 00:00:50.000,30.0\nA,2024-01-01 00:00:30.000,40.0\n",
    )
    .unwrap();
    let sql = format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE,
            PRIMARY KEY (node, ts) NOT ENFORCED,
            WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE tumbling (node STRING, window_start TIMESTAMP(3), total DOUBLE, top DOUBLE)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE hopping (node STRING, window_start TIMESTAMP(3), total DOUBLE, top DOUBLE)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'sink.changelog' = 'true');
         INSERT INTO tumbling SELECT node, window_start, SUM(price), MAX(price)
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY node, window_start, window_end;
         INSERT INTO hopping SELECT node, window_start, SUM(price), MAX(price)
         FROM TABLE(HOP(TABLE ticks, DESCRIPTOR(ts), INTERVAL '20' SECOND, INTERVAL '40' SECOND)) GROUP BY node, window_start, window_end;",
        input.display(),
        dir.path().join("tumbling.csv").display(),
        dir.path().join("hopping.csv").display(),
    );
    for workers in [1, 2] {
        run_sql(&sql, workers, 1);
        assert_eq!(read_sorted(&dir.path().join("tumbling.csv")), ["A,2024-01-01 00:00:00.000,90.0,40.0"]);
        let changelog = std::fs::read_to_string(dir.path().join("hopping.csv")).unwrap();
        // Both 40-second windows holding 00:00:30 retract the 10.0 version...
        assert!(changelog.contains("-D,A,2024-01-01 00:00:00.000,30.0,20.0"), "{changelog}");
        assert!(changelog.contains("-D,A,2024-01-01 00:00:20.000,40.0,30.0"), "{changelog}");
        // ...and end holding the revised price.
        assert!(changelog.contains("+I,A,2024-01-01 00:00:00.000,60.0,40.0"), "{changelog}");
        assert!(changelog.contains("+I,A,2024-01-01 00:00:20.000,70.0,40.0"), "{changelog}");
    }
}

/// FIRST_VALUE and LAST_VALUE of a window take its earliest and latest
/// tick by `ts`, not by value (every row of a window shares `window_time`),
/// on the append-only path, the retractable one (a primary key), and with a
/// filter on a window column between the TVF and the aggregation.
#[test]
fn first_and_last_value_of_a_window_follow_event_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.csv");
    // Arrival order differs from event time; the first tick is neither the
    // smallest nor the largest price, nor is the last.
    std::fs::write(
        &input,
        "A,2024-01-01 00:00:30.000,10.0\nA,2024-01-01 00:00:05.000,20.0\nA,2024-01-01 00:00:50.000,5.0\nA,2024-01-01 00:00:55.000,15.0\nA,2024-01-01 00:00:20.000,30.0\n",
    )
    .unwrap();
    for key in ["", "PRIMARY KEY (node, ts) NOT ENFORCED,"] {
        let output = dir.path().join("first_last.csv");
        let sql = format!(
            "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, {key}
                WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             CREATE TABLE first_last (node STRING, opening DOUBLE, closing DOUBLE, unfused_opening DOUBLE)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             CREATE VIEW fused AS SELECT node, window_start, FIRST_VALUE(price) AS opening, LAST_VALUE(price) AS closing
             FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY node, window_start, window_end;
             CREATE VIEW unfused AS SELECT node, window_start, FIRST_VALUE(price) AS opening
             FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
             WHERE window_start >= TIMESTAMP '2024-01-01 00:00:00' GROUP BY node, window_start, window_end;
             INSERT INTO first_last SELECT f.node, f.opening, f.closing, u.opening AS unfused_opening
             FROM fused AS f JOIN unfused AS u ON f.node = u.node AND f.window_start = u.window_start;",
            input.display(),
            output.display(),
        );
        for workers in [1, 2] {
            run_sql(&sql, workers, 2);
            assert_eq!(read_sorted(&output), ["A,20.0,15.0,20.0"], "{key} {workers} workers");
        }
    }
}

#[test]
fn bad_queries_name_line_and_column() {
    let sql = "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE)\nWITH ('connector' = 'filesystem', 'path' = 'x.csv', 'format' = 'csv');\nSELECT node, prise FROM ticks;";
    let error = check_text(sql).unwrap_err();
    let rendered = error.render("bad.sql", sql);
    assert!(rendered.starts_with("error: unknown column 'prise'"), "{rendered}");
    assert!(rendered.contains("--> bad.sql:3:14"), "{rendered}");
    assert!(rendered.contains("3 | SELECT node, prise FROM ticks;\n  |              ^^^^^"), "{rendered}");

    let cases = [
        ("SELECT * FROM nowhere", "unknown table 'nowhere'", (1, 15)),
        (
            "CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = 'x', 'format' = 'csv', 'csv.delimiter' = ';');\nSELECT a FROM t",
            "unknown option 'csv.delimiter'",
            (1, 90),
        ),
        (
            "CREATE TABLE t (a INT, b STRING) WITH ('connector' = 'filesystem', 'path' = 'x', 'format' = 'csv');\nSELECT a + b FROM t",
            "operator + does not apply to BIGINT and STRING",
            (2, 8),
        ),
        (
            "CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = 'x', 'format' = 'csv');\nSELECT a FROM t ORDER BY a",
            "ORDER BY is not supported",
            (2, 26),
        ),
        (
            "CREATE TABLE t (a INT, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = 'x', 'format' = 'csv');\nSELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE))",
            "'ts' is not a time attribute",
            (2, 37),
        ),
    ];
    for (sql, message, (line, column)) in cases {
        let error = check_text(sql).unwrap_err();
        assert!(error.message.contains(message), "{sql}: {}", error.message);
        assert_eq!((error.span.start.line, error.span.start.column), (line, column), "{sql}: {}", error.message);
    }
}

#[test]
fn the_binary_exits_non_zero_with_a_caret_on_a_bad_query() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.sql");
    std::fs::write(&file, "SELECT price FROM\n  ticks WHERE").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_carbonflow"))
        .args(["check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.sql:2:"), "{stderr}");
    assert!(stderr.contains('^'), "{stderr}");
}

#[test]
fn session_windows_merge_and_emit_final_publishes_each_session_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ticks.csv");
    // A's row at 00:00:40 arrives late (within the 1-minute delay) and bridges
    // the sessions around 00:00:20 and 00:01:05 into one.
    std::fs::write(
        &input,
        "A,2024-01-01 00:00:10.000,1\nB,2024-01-01 00:00:05.000,1\nA,2024-01-01 00:00:20.000,2\nA,2024-01-01 00:01:05.000,4\n\
         A,2024-01-01 00:00:40.000,8\nB,2024-01-01 00:02:00.000,16\nA,2024-01-01 00:03:00.000,32\n",
    )
    .unwrap();
    let sql = |emit: &str, output: &Path| {
        format!(
            "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), volume BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             CREATE TABLE sessions (node STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT, volume BIGINT)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'sink.changelog' = 'true');
             INSERT INTO sessions
             SELECT node, window_start, window_end, COUNT(*), SUM(volume)
             FROM TABLE(SESSION(TABLE ticks PARTITION BY node, DESCRIPTOR(ts), INTERVAL '30' SECONDS))
             GROUP BY node, window_start, window_end {emit};",
            input.display(),
            output.display()
        )
    };
    let final_rows = [
        "+I,A,2024-01-01 00:00:10.000,2024-01-01 00:01:35.000,4,15",
        "+I,A,2024-01-01 00:03:00.000,2024-01-01 00:03:30.000,1,32",
        "+I,B,2024-01-01 00:00:05.000,2024-01-01 00:00:35.000,1,1",
        "+I,B,2024-01-01 00:02:00.000,2024-01-01 00:02:30.000,1,16",
    ];
    for workers in [1, 2] {
        let changes = dir.path().join("changes.csv");
        run_sql(&sql("", &changes), workers, 1);
        let changelog = std::fs::read_to_string(&changes).unwrap();
        assert!(
            changelog.contains("-D,A,2024-01-01 00:00:10.000,2024-01-01 00:00:50.000,2,3"),
            "EMIT CHANGES retracts the merged session:\n{changelog}"
        );
        // Net of the changelog: the four final sessions.
        let mut net: std::collections::BTreeMap<String, i64> = Default::default();
        for line in changelog.lines() {
            let (op, row) = line.split_at(3);
            *net.entry(row.to_owned()).or_default() += if op == "+I," { 1 } else { -1 };
        }
        let survivors: Vec<String> = net.into_iter().filter(|(_, n)| *n != 0).map(|(row, n)| format!("{n}:{row}")).collect();
        assert_eq!(survivors, final_rows.iter().map(|r| format!("1:{}", &r[3..])).collect::<Vec<_>>());

        let finals = dir.path().join("final.csv");
        run_sql(&sql("EMIT FINAL", &finals), workers, 1);
        assert_eq!(
            read_sorted(&finals),
            final_rows,
            "EMIT FINAL publishes each complete session once, with {workers} workers"
        );
    }
}

#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    use std::io::{BufRead, BufReader};
    // The quickstart prints 120 lines; the reader takes one and hangs up.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_carbonflow"))
        .current_dir(root)
        .args([
            "run",
            "queries/quickstart.sql",
            "--no-progress",
            "--batch-size",
            "64",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("+I["), "{first}");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status);
    assert!(!stderr.contains("error"), "{stderr}");
}
