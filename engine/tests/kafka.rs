//! The Kafka connectors end to end against a real broker (tansu, started by
//! `scripts/kafka-broker.sh` unless `CARBONFLOW_KAFKA_BOOTSTRAP` names one):
//! Kafka → engine → Kafka agrees with the same query over a file, in JSON and
//! a market format; revisions upsert from Kafka; a restarted group resumes
//! from its committed offsets, reading again what its state needs; an idle
//! partition does not hold the watermark back; malformed messages become
//! dead letters. The crash-recovery test is `recovery.rs`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use carbonflow::cli::check_text;
use carbonflow::runtime::{RunOptions, RunSummary, run};
use carbonflow_core::time::format_timestamp;
use carbonflow_sources::kafka::testkit::{self, Record};
use common::{BASE, read_sorted, run_sql};

/// Runs `sql` until `done` holds (checked every 50 ms, for a minute at
/// most), then stops it the way Ctrl-C does.
fn run_until(sql: &str, workers: usize, done: impl Fn() -> bool) -> RunSummary {
    let program = Arc::new(check_text(sql).unwrap_or_else(|e| panic!("{}", e.render("test.sql", sql))));
    let stop = Arc::new(AtomicBool::new(false));
    let options = RunOptions {
        workers,
        stop: stop.clone(),
        ..RunOptions::default()
    };
    let running = std::thread::spawn(move || run(program, options));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(!running.is_finished(), "the run ended by itself");
        assert!(Instant::now() < deadline, "the run never reached its goal");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    running.join().expect("the run does not panic").expect("the run succeeds")
}

/// The rows a JSON changelog topic nets to, as JSON objects without the op,
/// with their counts; rows that cancel out are gone.
fn net_changelog(bootstrap: &str, topic: &str) -> BTreeMap<String, i64> {
    let mut net: BTreeMap<String, i64> = BTreeMap::new();
    for record in testkit::consume_all(bootstrap, topic) {
        let text = String::from_utf8(record.value.expect("a value")).unwrap();
        let (sign, row) = if let Some(row) = text.strip_prefix(r#"{"op":"+I","#) {
            (1, row)
        } else if let Some(row) = text.strip_prefix(r#"{"op":"-D","#) {
            (-1, row)
        } else {
            panic!("not a changelog message: {text}")
        };
        *net.entry(format!("{{{row}")).or_default() += sign;
    }
    net.retain(|_, count| *count != 0);
    net
}

/// The lines of a JSON sink file, each counted once per copy.
fn file_rows(path: &Path) -> BTreeMap<String, i64> {
    let mut rows = BTreeMap::new();
    for line in read_sorted(path) {
        *rows.entry(line).or_default() += 1;
    }
    rows
}

fn ts(second: i64) -> String {
    format_timestamp(BASE + second * 1000)
}

fn kafka_table(name: &str, columns: &str, topic: &str, bootstrap: &str, options: &str) -> String {
    format!(
        "CREATE TABLE {name} ({columns}) WITH ('connector' = 'kafka', 'topic' = '{topic}',
           'properties.bootstrap.servers' = '{bootstrap}' {options});"
    )
}

const TICK_COLUMNS: &str = "node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND";
const WINDOW_COLUMNS: &str = "node STRING, window_start TIMESTAMP(3), n BIGINT, total DOUBLE, top DOUBLE";
const WINDOW_QUERY: &str = "SELECT node, window_start, COUNT(*), SUM(price), MAX(price)
    FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY node, window_start, window_end";

#[test]
fn kafka_to_kafka_agrees_with_the_same_query_over_a_file() {
    let bootstrap = testkit::bootstrap();
    let dir = tempfile::tempdir().unwrap();
    // Six nodes over five minutes; node n lives on partition n % 3, so each
    // partition is in event-time order and no row is late.
    let mut ticks = Vec::new();
    for second in (0..300).step_by(7) {
        for node in 0..6i32 {
            let price = f64::from((second as i32 * 13 + node * 7) % 50) - 5.0;
            ticks.push((node, second, price));
        }
    }
    let csv: String = ticks.iter().map(|(node, second, price)| format!("N{node},{},{price}\n", ts(*second))).collect();
    std::fs::write(dir.path().join("ticks.csv"), csv).unwrap();
    let input = testkit::unique_topic("ticks");
    testkit::create_topic(&bootstrap, &input, 3);
    let mut messages: Vec<Record> = ticks
        .iter()
        .map(|(node, second, price)| Record::value(node % 3, format!(r#"{{"node": "N{node}", "ts": "{}", "price": {price}}}"#, ts(*second))))
        .collect();
    messages.insert(10, Record::value(0, r#"{"node": "N0", "ts": "2024-01-01 00:00:01", "price": "n/a"}"#));
    messages.insert(20, Record::value(1, "{not json"));
    testkit::produce(&bootstrap, &input, messages);

    let file_output = dir.path().join("windows.json");
    run_sql(
        &format!(
            "CREATE TABLE ticks ({TICK_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             CREATE TABLE windows ({WINDOW_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
             INSERT INTO windows {WINDOW_QUERY};",
            dir.path().join("ticks.csv").display(),
            file_output.display()
        ),
        1,
        64,
    );
    let expected = file_rows(&file_output);
    assert_eq!(expected.len(), 30, "6 nodes x 5 windows");

    for workers in [1, 2] {
        let output = testkit::unique_topic("windows");
        testkit::create_topic(&bootstrap, &output, 2);
        let dead_letters = dir.path().join(format!("dead-{workers}.json"));
        let sql = format!(
            "{} {} INSERT INTO windows {WINDOW_QUERY};",
            kafka_table(
                "ticks",
                TICK_COLUMNS,
                &input,
                &bootstrap,
                ", 'format' = 'json', 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'"
            ),
            kafka_table("windows", WINDOW_COLUMNS, &output, &bootstrap, ", 'format' = 'json', 'key.fields' = 'node'"),
        );
        let program = Arc::new(check_text(&sql).unwrap_or_else(|e| panic!("{}", e.render("test.sql", &sql))));
        let options = RunOptions {
            workers,
            batch_size: 64,
            dead_letter_path: Some(dead_letters.clone()),
            ..RunOptions::default()
        };
        let summary = run(program, options).expect("the run succeeds");
        assert_eq!(summary.rows_read, ticks.len() as u64, "{workers} workers");
        assert_eq!(summary.dead_letter_total(), 2, "{workers} workers");
        let letters = std::fs::read_to_string(&dead_letters).unwrap();
        assert!(letters.contains(&format!(r#""position":"{input}/0@"#)), "{letters}");
        assert!(letters.contains(&format!(r#""position":"{input}/1@"#)), "{letters}");
        assert!(letters.contains("column price"), "{letters}");
        assert_eq!(net_changelog(&bootstrap, &output), expected, "{workers} workers");
    }
}

#[test]
fn a_market_format_reads_the_same_from_a_message_as_from_a_file() {
    let bootstrap = testkit::bootstrap();
    let dir = tempfile::tempdir().unwrap();
    // An AESO pool price report (fixture written from the report's layout):
    // hour-ending Alberta time, a '-' placeholder for an unsettled hour.
    let report = "\"Pool Price\"\n\n\"Date (HE)\",\"Price ($)\",\"30Ravg ($)\",\"AIL Demand (MW)\"\n\
                  \"01/15/2024 01\",\"95.42\",\"80.00\",\"10000\"\n\"01/15/2024 02\",\"101.10\",\"80.10\",\"10100\"\n\
                  \"01/15/2024 03\",\"-\",\"80.20\",\"10200\"\n";
    std::fs::write(dir.path().join("aeso.csv"), report).unwrap();
    let topic = testkit::unique_topic("aeso");
    testkit::create_topic(&bootstrap, &topic, 1);
    testkit::produce(&bootstrap, &topic, [Record::value(0, report)]);
    let columns = "market STRING, node STRING, ts TIMESTAMP(3), price DOUBLE, currency STRING";
    let sink = |path: &Path| {
        format!(
            "CREATE TABLE prices ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
             INSERT INTO prices SELECT * FROM aeso;",
            path.display()
        )
    };
    let from_file = dir.path().join("file.json");
    let file_summary = run_sql(
        &format!(
            "CREATE TABLE aeso ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'aeso-pool-price'); {}",
            dir.path().join("aeso.csv").display(),
            sink(&from_file)
        ),
        1,
        64,
    );
    let from_kafka = dir.path().join("kafka.json");
    let kafka_summary = run_sql(
        &format!(
            "{} {}",
            kafka_table(
                "aeso",
                columns,
                &topic,
                &bootstrap,
                ", 'format' = 'aeso-pool-price', 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'"
            ),
            sink(&from_kafka)
        ),
        2,
        64,
    );
    assert_eq!(read_sorted(&from_kafka), read_sorted(&from_file));
    assert_eq!(
        read_sorted(&from_kafka),
        [
            // HE01 in Edmonton (UTC-7 in January) starts at 07:00 UTC.
            r#"{"market":"AESO","node":"ALBERTA","ts":"2024-01-15 07:00:00.000","price":95.42,"currency":"CAD"}"#,
            r#"{"market":"AESO","node":"ALBERTA","ts":"2024-01-15 08:00:00.000","price":101.1,"currency":"CAD"}"#,
        ]
    );
    assert_eq!(
        (kafka_summary.rows_read, kafka_summary.dead_letter_total()),
        (2, 1),
        "the '-' hour is a dead letter"
    );
    assert_eq!(kafka_summary.dead_letters, file_summary.dead_letters);
}

#[test]
fn revisions_from_kafka_retract_the_old_tick_end_to_end() {
    let bootstrap = testkit::bootstrap();
    let input = testkit::unique_topic("revised");
    testkit::create_topic(&bootstrap, &input, 2);
    let tick = |node: &str, second: i64, price: f64| format!(r#"{{"node": "{node}", "ts": "{}", "price": {price}}}"#, ts(second));
    // A's tick at 00:00:30 is published at 10.0, then revised to 40.0.
    testkit::produce(
        &bootstrap,
        &input,
        [
            Record::value(0, tick("A", 10, 20.0)),
            Record::value(1, tick("B", 15, 1.0)),
            Record::value(0, tick("A", 30, 10.0)),
            Record::value(0, tick("A", 50, 30.0)),
            Record::value(0, tick("A", 30, 40.0)),
        ],
    );
    let output = testkit::unique_topic("revised-windows");
    testkit::create_topic(&bootstrap, &output, 1);
    let columns = "node STRING, ts TIMESTAMP(3), price DOUBLE, PRIMARY KEY (node, ts) NOT ENFORCED,
                   WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE";
    let sql = format!(
        "{} {} INSERT INTO windows SELECT node, window_start, SUM(price), MAX(price)
           FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY node, window_start, window_end;",
        kafka_table(
            "ticks",
            columns,
            &input,
            &bootstrap,
            ", 'format' = 'json', 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'"
        ),
        kafka_table(
            "windows",
            "node STRING, window_start TIMESTAMP(3), total DOUBLE, top DOUBLE",
            &output,
            &bootstrap,
            ", 'format' = 'json'"
        ),
    );
    // One message per epoch, so the window's result before the revision goes out and is retracted.
    run_sql(&sql, 1, 1);
    let changelog: Vec<String> = testkit::consume_all(&bootstrap, &output)
        .into_iter()
        .map(|record| String::from_utf8(record.value.unwrap()).unwrap())
        .collect();
    let before_revision = format!(r#"{{"op":"-D","node":"A","window_start":"{}","total":60.0,"top":30.0}}"#, ts(0));
    assert!(changelog.contains(&before_revision), "{changelog:#?}");
    assert_eq!(
        net_changelog(&bootstrap, &output),
        BTreeMap::from([
            (format!(r#"{{"node":"A","window_start":"{}","total":90.0,"top":40.0}}"#, ts(0)), 1),
            (format!(r#"{{"node":"B","window_start":"{}","total":1.0,"top":1.0}}"#, ts(0)), 1),
        ])
    );
}

#[test]
fn a_restarted_group_resumes_after_its_committed_offsets_and_rereads_what_its_state_needs() {
    let bootstrap = testkit::bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let input = testkit::unique_topic("resume");
    testkit::create_topic(&bootstrap, &input, 3);
    let batch = |from: i64, count: i64| (from..from + count).map(|i| Record::value((i % 3) as i32, format!(r#"{{"node": "N{}", "v": {i}}}"#, i % 4)));
    testkit::produce(&bootstrap, &input, batch(0, 60));
    let sql = |output: &Path, group: &str, query: &str, bounded: &str| {
        format!(
            "{} CREATE TABLE counts (node STRING, n BIGINT, total BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             INSERT INTO counts {query};",
            kafka_table(
                "events",
                "node STRING, v BIGINT",
                &input,
                &bootstrap,
                &format!(", 'format' = 'json', 'properties.group.id' = '{group}', 'properties.auto.offset.reset' = 'earliest' {bounded}")
            ),
            output.display()
        )
    };
    let totals = |path: &Path| -> (i64, i64) {
        std::fs::read_to_string(path).unwrap_or_default().lines().fold((0, 0), |(n, total), line| {
            let fields: Vec<&str> = line.split(',').collect();
            (n + fields[1].parse::<i64>().unwrap(), total + fields[2].parse::<i64>().unwrap())
        })
    };
    // A stateless query needs nothing read again; a plain GROUP BY keeps
    // state built from every row, so its restart reads the topic again.
    let stateless = "SELECT node, 1, v FROM events";
    let grouped = "SELECT node, COUNT(*), SUM(v) FROM events GROUP BY node";
    let groups = [testkit::unique_topic("stateless"), testkit::unique_topic("grouped")];
    for (query, group) in [stateless, grouped].into_iter().zip(&groups) {
        // A live run, stopped (as by Ctrl-C) once the outputs have absorbed
        // every row: the source commits only absorbed rows, so the group's
        // offsets say when. (The sink's file is only complete once the run ends.)
        let first = dir.path().join(format!("{group}-first.csv"));
        run_until(&sql(&first, group, query, ""), 2, || {
            testkit::committed_offsets(&bootstrap, &input, group) == vec![Some(20); 3]
        });
        assert_eq!(totals(&first), (60, (0..60).sum()), "{query}: every committed row is in the output");
    }
    testkit::produce(&bootstrap, &input, batch(60, 30));
    for (query, group, expected) in [(stateless, &groups[0], (30, (60..90).sum())), (grouped, &groups[1], (90, (0..90).sum()))] {
        let second = dir.path().join(format!("{group}-second.csv"));
        run_sql(&sql(&second, group, query, ", 'scan.bounded.mode' = 'latest-offset'"), 1, 7);
        assert_eq!(totals(&second), expected, "{query}: none lost, none twice");
    }
}

#[test]
fn an_idle_partition_does_not_hold_the_watermark_back() {
    let bootstrap = testkit::bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let input = testkit::unique_topic("idle");
    testkit::create_topic(&bootstrap, &input, 2);
    // Partition 0 runs to 00:02:30; partition 1 says one thing at 00:00:05 and falls silent.
    let tick = |second: i64| format!(r#"{{"node": "A", "ts": "{}", "price": 1.0}}"#, ts(second));
    let mut messages: Vec<Record> = (0..=150).step_by(10).map(|second| Record::value(0, tick(second))).collect();
    messages.push(Record::value(1, tick(5)));
    testkit::produce(&bootstrap, &input, messages);
    let sql = |output: &Path, group: &str, idle: &str| {
        format!(
            "{} CREATE TABLE windows (window_start TIMESTAMP(3), n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv',
               'sink.flush-interval' = '50 ms');
             INSERT INTO windows SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
             GROUP BY window_start, window_end EMIT FINAL;",
            kafka_table(
                "ticks",
                "node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND",
                &input,
                &bootstrap,
                &format!(", 'format' = 'json', 'scan.startup.mode' = 'earliest-offset', 'properties.group.id' = '{group}' {idle}")
            ),
            output.display()
        )
    };
    let closed = [format!("{},7", ts(0)), format!("{},6", ts(60))];
    for workers in [1, 2] {
        // With an idle timeout the quiet partition stops counting: the
        // watermark follows partition 0 and the first two windows close.
        let output = dir.path().join(format!("idle-{workers}.csv"));
        let group = testkit::unique_topic("idle-group");
        run_until(&sql(&output, &group, ", 'scan.watermark.idle-timeout' = '500 ms'"), workers, || {
            std::fs::read_to_string(&output).is_ok_and(|text| text.lines().count() >= 2)
        });
        assert_eq!(read_sorted(&output), closed, "{workers} workers");

        // Without one, partition 1 holds the watermark at 00:00:04 forever:
        // every row is read (the group's offsets say so) and no window closes.
        let output = dir.path().join(format!("held-{workers}.csv"));
        let group = testkit::unique_topic("held-group");
        run_until(&sql(&output, &group, ""), workers, || {
            testkit::committed_offsets(&bootstrap, &input, &group) == vec![Some(16), Some(1)]
        });
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "", "{workers} workers");
    }
}
