//! The `kafka` source against a real broker ([`super::testkit`]): partitions
//! over workers, bounded reads, startup modes, dead letters, commits and
//! per-partition event time. Option checks need no broker.

use std::time::{Duration, Instant};

use carbonflow_core::{ConnectorConfig, DataType, Datum, DeadLetter, Field, OptionError, Row, Schema};

use super::testkit::{self, Record};
use crate::{EventTimeProgress, Retention, Source, SourceBatch, SourceContext, SourceStatus};

const COLUMNS: &[(&str, DataType)] = &[("node", DataType::String), ("ts", DataType::Timestamp), ("price", DataType::Float)];

fn table(topic: &str, bootstrap: &str, options: &[(&str, &str)]) -> ConnectorConfig {
    let mut map = testkit::table_options(topic, bootstrap, &[("scan.startup.mode", "earliest-offset")]);
    map.extend(options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    ConnectorConfig {
        table: "ticks".into(),
        schema: Schema::new(COLUMNS.iter().map(|(name, data_type)| Field::new(*name, *data_type)).collect()),
        event_time_column: Some(1),
        primary_key: None,
        options: map,
    }
}

/// A table that starts from `group`'s offsets, and from the earliest where it has none.
fn resuming(topic: &str, bootstrap: &str, group: &str, options: &[(&str, &str)]) -> ConnectorConfig {
    let mut all = vec![
        ("scan.startup.mode", "group-offsets"),
        ("properties.group.id", group),
        ("properties.auto.offset.reset", "earliest"),
    ];
    all.extend_from_slice(options);
    table(topic, bootstrap, &all)
}

fn tick(node: &str, second: i64, price: f64) -> Vec<u8> {
    format!(r#"{{"node": "{node}", "ts": {}, "price": {price}}}"#, second * 1000).into_bytes()
}

fn row(node: &str, second: i64, price: f64) -> Row {
    Row::new(vec![Datum::string(node), Datum::Timestamp(second * 1000), Datum::float(price)])
}

fn open(config: &ConnectorConfig, context: SourceContext) -> Box<dyn Source> {
    crate::create_source(config, context).expect("source opens")
}

/// Polls until the source finishes (bounded reads); sealing and committing
/// every poll as the engine would with outputs that keep up.
fn read_to_end(source: &mut dyn Source) -> (Vec<Row>, Vec<DeadLetter>) {
    let mut batch = SourceBatch::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    for epoch in 0.. {
        assert!(Instant::now() < deadline, "the bounded read never finished");
        let status = source.poll(&mut batch, 3).expect("poll");
        source.seal_epoch(epoch);
        source.commit(epoch).expect("commit");
        match status {
            SourceStatus::Finished => break,
            SourceStatus::Idle => std::thread::sleep(Duration::from_millis(5)),
            SourceStatus::Ready => {}
        }
    }
    source.close().expect("close");
    (batch.rows, batch.dead_letters)
}

/// Polls until `count` rows came (unbounded reads).
fn read_rows(source: &mut dyn Source, count: usize) -> Vec<Row> {
    let mut batch = SourceBatch::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while batch.rows.len() < count {
        assert!(Instant::now() < deadline, "only {} of {count} rows came", batch.rows.len());
        if source.poll(&mut batch, 100).expect("poll") == SourceStatus::Idle {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    batch.rows
}

#[test]
fn options_are_checked_without_a_broker() {
    let config = |options: &[(&str, &str)]| table("t", "127.0.0.1:1", options);
    assert!(crate::validate_source(&config(&[])).is_ok());
    assert!(crate::validate_source(&config(&[("properties.client.id", "x"), ("scan.watermark.idle-timeout", "10 s")])).is_ok());
    let error = |options: &[(&str, &str)]| crate::validate_source(&config(options)).unwrap_err();
    assert!(matches!(error(&[("scan.startup.mode", "beginning")]), OptionError::Invalid { key, .. } if key == "scan.startup.mode"));
    assert!(matches!(error(&[("scan.startup.mode", "group-offsets")]), OptionError::Missing { key } if key == "properties.group.id"));
    assert!(matches!(error(&[("scan.startup.mode", "timestamp")]), OptionError::Missing { key } if key == "scan.startup.timestamp-millis"));
    assert!(matches!(error(&[("scan.bounded.mode", "forever")]), OptionError::Invalid { key, .. } if key == "scan.bounded.mode"));
    assert!(matches!(error(&[("scan.watermark.idle-timeout", "soon")]), OptionError::Invalid { key, .. } if key == "scan.watermark.idle-timeout"));
    assert!(matches!(error(&[("properties.enable.auto.commit", "true")]), OptionError::Invalid { key, .. } if key == "properties.enable.auto.commit"));
    assert!(matches!(error(&[("topic", "a;b")]), OptionError::Invalid { key, .. } if key == "topic"));
    assert!(matches!(
        error(&[("scan.topic-partition-discovery.interval", "1 s")]),
        OptionError::Unknown { .. }
    ));
    assert!(
        matches!(error(&[("csv.field-delimiter", ";")]), OptionError::Unknown { .. }),
        "csv options need format csv"
    );
    assert!(matches!(error(&[("format", "avro")]), OptionError::Invalid { key, .. } if key == "format"));
    let mut no_servers = config(&[]);
    no_servers.options.remove("properties.bootstrap.servers");
    assert_eq!(
        crate::validate_source(&no_servers),
        Err(OptionError::Missing {
            key: "properties.bootstrap.servers".into()
        })
    );
    let csv = config(&[("format", "csv"), ("csv.field-delimiter", ";")]);
    assert!(crate::validate_source(&csv).is_ok());
    let csv_header = config(&[("format", "csv"), ("csv.header", "true")]);
    assert!(
        matches!(crate::validate_source(&csv_header), Err(OptionError::Unknown { key, .. }) if key == "csv.header"),
        "messages have no header"
    );
    let market = config(&[("format", "pjm-lmp")]);
    assert!(crate::validate_source(&market).is_ok(), "node, ts and price are tick columns");
}

#[test]
fn an_unknown_topic_fails_at_open_with_the_brokers_word() {
    let bootstrap = testkit::bootstrap();
    let error = crate::create_source(&table(&testkit::unique_topic("missing"), &bootstrap, &[]), SourceContext::SINGLE)
        .err()
        .expect("no such topic");
    assert!(matches!(error, crate::SourceError::Broker { .. }), "{error}");
}

#[test]
fn workers_split_partitions_by_index_and_together_read_everything() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("split");
    testkit::create_topic(&bootstrap, &topic, 3);
    let mut records = Vec::new();
    let mut expected = Vec::new();
    for partition in 0..3 {
        for second in 0..4 {
            let node = format!("p{partition}");
            records.push(Record::value(partition, tick(&node, second, f64::from(partition))));
            expected.push(row(&node, second, f64::from(partition)));
        }
    }
    testkit::produce(&bootstrap, &topic, records);
    let config = table(&topic, &bootstrap, &[("scan.bounded.mode", "latest-offset")]);
    let mut union = Vec::new();
    for worker_index in 0..2 {
        let mut source = open(&config, SourceContext::worker(worker_index, 2));
        let (rows, dead) = read_to_end(source.as_mut());
        assert!(dead.is_empty(), "{dead:?}");
        for row in &rows {
            let partition: usize = row.get(0).as_str().unwrap()[1..].parse().unwrap();
            assert_eq!(partition % 2, worker_index, "partition p goes to worker p % peers");
        }
        // Each partition keeps its order.
        for node in ["p0", "p1", "p2"] {
            let times: Vec<i64> = rows
                .iter()
                .filter(|r| r.get(0).as_str() == Some(node))
                .map(|r| r.get(1).as_timestamp().unwrap())
                .collect();
            assert!(times.is_sorted(), "{node}: {times:?}");
        }
        union.extend(rows);
    }
    union.sort();
    expected.sort();
    assert_eq!(union, expected);
    // More workers than partitions: the extra one finishes at once.
    let mut idle = open(&config, SourceContext::worker(3, 4));
    assert_eq!(idle.poll(&mut SourceBatch::default(), 10).unwrap(), SourceStatus::Finished);
}

#[test]
fn bad_messages_are_dead_letters_positioned_by_topic_partition_and_offset() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("dead");
    testkit::create_topic(&bootstrap, &topic, 1);
    testkit::produce(
        &bootstrap,
        &topic,
        [
            Record::value(0, tick("A", 1, 1.0)),
            Record::value(0, r#"{"node": "B", "price": "abc"}"#),
            Record {
                partition: 0,
                key: Some(b"k".to_vec()),
                value: None,
            },
            Record::value(0, "not json"),
            Record::value(0, tick("C", 2, 3.0)),
        ],
    );
    let mut source = open(&table(&topic, &bootstrap, &[("scan.bounded.mode", "latest-offset")]), SourceContext::SINGLE);
    let (rows, dead) = read_to_end(source.as_mut());
    assert_eq!(rows, vec![row("A", 1, 1.0), row("C", 2, 3.0)]);
    let positions: Vec<&str> = dead.iter().map(|letter| letter.position.as_str()).collect();
    assert_eq!(positions, [format!("{topic}/0@1"), format!("{topic}/0@2"), format!("{topic}/0@3")]);
    assert!(dead[0].detail.contains("column price"), "{}", dead[0].detail);
    assert_eq!(dead[0].record, r#"{"node": "B", "price": "abc"}"#);
    assert_eq!(dead[1].detail, "message without a value");
    assert!(dead.iter().all(|letter| letter.origin == "ticks"));
}

#[test]
fn csv_and_market_messages_decode_like_files() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("csv");
    testkit::create_topic(&bootstrap, &topic, 1);
    testkit::produce(
        &bootstrap,
        &topic,
        [
            Record::value(0, "A;2024-01-01 00:00:01;1.5"),
            Record::value(0, "B;2024-01-01 00:00:02;2\nC;bad;3"),
        ],
    );
    let config = table(
        &topic,
        &bootstrap,
        &[("format", "csv"), ("csv.field-delimiter", ";"), ("scan.bounded.mode", "latest-offset")],
    );
    let (rows, dead) = read_to_end(open(&config, SourceContext::SINGLE).as_mut());
    let new_year = 1_704_067_200;
    assert_eq!(rows, vec![row("A", new_year + 1, 1.5), row("B", new_year + 2, 2.0)]);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].position, format!("{topic}/0@1:2"), "second line of the second message");

    // An AESO pool price report: one message holds one document.
    let topic = testkit::unique_topic("aeso");
    testkit::create_topic(&bootstrap, &topic, 1);
    let report = "\"Date (HE)\",\"Price ($)\",\"30Day AVG ($)\",\"AIL Demand (MW)\"\n\"01/15/2024 01\",\"95.42\",\"80.00\",\"10000\"\n\"01/15/2024 02\",\"-\",\"80.00\",\"10000\"\n";
    testkit::produce(&bootstrap, &topic, [Record::value(0, report)]);
    let mut config = table(&topic, &bootstrap, &[("format", "aeso-pool-price"), ("scan.bounded.mode", "latest-offset")]);
    config.schema = Schema::new(vec![
        Field::new("node", DataType::String),
        Field::new("ts", DataType::Timestamp),
        Field::new("price", DataType::Float),
    ]);
    let (rows, dead) = read_to_end(open(&config, SourceContext::SINGLE).as_mut());
    let file_rows = crate::markets::find("aeso-pool-price").unwrap().parse("ticks", "report.csv", report.as_bytes());
    assert_eq!(rows.len(), file_rows.ticks.len());
    assert_eq!(rows.len(), 1, "one priced hour");
    assert_eq!(rows[0].get(2), &Datum::float(95.42));
    assert_eq!(dead.len(), 1, "the '-' placeholder row");
    assert!(dead[0].position.starts_with(&format!("{topic}/0@0:")), "{}", dead[0].position);
}

#[test]
fn a_message_of_many_rows_goes_out_in_batches_and_is_consumed_after_its_last_row() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("lines");
    let group = testkit::unique_topic("group");
    testkit::create_topic(&bootstrap, &topic, 1);
    let lines: String = (1..=5).map(|second| format!("A,2024-01-01 00:00:0{second},{second}\n")).collect();
    testkit::produce(&bootstrap, &topic, [Record::value(0, lines)]);
    let config = table(&topic, &bootstrap, &[("format", "csv"), ("properties.group.id", group.as_str())]);
    let mut source = open(&config, SourceContext::SINGLE);
    let mut batch = SourceBatch::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while batch.rows.is_empty() {
        assert!(Instant::now() < deadline, "the message never came");
        source.poll(&mut batch, 2).unwrap();
    }
    assert_eq!(batch.rows.len(), 2, "at most max_rows rows a poll");
    source.close().unwrap();
    assert_eq!(
        testkit::committed_offsets(&bootstrap, &topic, &group),
        vec![None],
        "3 rows of the message are still out"
    );
    let mut polls = 1;
    while batch.rows.len() < 5 {
        let before = batch.rows.len();
        source.poll(&mut batch, 2).unwrap();
        assert!(batch.rows.len() - before <= 2);
        polls += 1;
    }
    assert_eq!(polls, 3);
    let times: Vec<i64> = batch.rows.iter().map(|row| row.get(1).as_timestamp().unwrap()).collect();
    assert!(times.is_sorted() && times.len() == 5, "{times:?}");
    source.close().unwrap();
    assert_eq!(testkit::committed_offsets(&bootstrap, &topic, &group), vec![Some(1)]);
}

#[test]
fn commits_let_a_restarted_group_resume_after_the_last_absorbed_row() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("commit");
    let group = testkit::unique_topic("group");
    testkit::create_topic(&bootstrap, &topic, 2);
    testkit::produce(&bootstrap, &topic, (0..6).map(|i| Record::value(i % 2, tick("A", i.into(), 1.0))));
    let config = resuming(&topic, &bootstrap, &group, &[]);
    let mut first = open(&config, SourceContext::SINGLE);
    assert_eq!(read_rows(first.as_mut(), 6).len(), 6);
    first.seal_epoch(0);
    // Nothing was absorbed yet: dropping the instance commits nothing.
    drop(first);
    assert_eq!(testkit::committed_offsets(&bootstrap, &topic, &group), vec![None, None]);

    let mut second = open(&config, SourceContext::SINGLE);
    assert_eq!(read_rows(second.as_mut(), 6).len(), 6, "the uncommitted rows are read again");
    second.close().unwrap();
    assert_eq!(testkit::committed_offsets(&bootstrap, &topic, &group), vec![Some(3), Some(3)]);

    testkit::produce(&bootstrap, &topic, [Record::value(1, tick("B", 10, 2.0))]);
    let mut third = open(&config, SourceContext::SINGLE);
    assert_eq!(read_rows(third.as_mut(), 1), vec![row("B", 10, 2.0)], "only the new message");
    std::thread::sleep(Duration::from_millis(300));
    let mut batch = SourceBatch::default();
    assert_eq!(third.poll(&mut batch, 10).unwrap(), SourceStatus::Idle, "and nothing else");
}

#[test]
fn commits_follow_absorbed_epochs_not_polls() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("epochs");
    let group = testkit::unique_topic("group");
    testkit::create_topic(&bootstrap, &topic, 1);
    testkit::produce(&bootstrap, &topic, (0..4).map(|i| Record::value(0, tick("A", i, 1.0))));
    let config = table(&topic, &bootstrap, &[("properties.group.id", group.as_str())]);
    let mut source = open(&config, SourceContext::SINGLE);
    let mut batch = SourceBatch::default();
    let mut first_row_epoch = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    for epoch in 0.. {
        assert!(Instant::now() < deadline, "only {} of 4 rows came", batch.rows.len());
        source.poll(&mut batch, 1).unwrap();
        source.seal_epoch(epoch);
        if !batch.rows.is_empty() {
            first_row_epoch.get_or_insert(epoch);
        }
        if batch.rows.len() == 4 {
            break;
        }
    }
    // The outputs absorbed only the epoch of the first row. A commit goes
    // out a second after the outputs absorbed what it covers.
    let deadline = Instant::now() + Duration::from_secs(30);
    while testkit::committed_offsets(&bootstrap, &topic, &group) != vec![Some(1)] {
        assert!(
            Instant::now() < deadline,
            "offset 1 never committed: {:?}",
            testkit::committed_offsets(&bootstrap, &topic, &group)
        );
        source.commit(first_row_epoch.unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn latest_and_timestamp_startup_modes_skip_older_messages() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("startup");
    testkit::create_topic(&bootstrap, &topic, 1);
    testkit::produce(&bootstrap, &topic, [Record::value(0, tick("old", 1, 1.0))]);
    let mut latest = open(&table(&topic, &bootstrap, &[("scan.startup.mode", "latest-offset")]), SourceContext::SINGLE);
    // Let the consumer settle at the end before the new message exists.
    let mut batch = SourceBatch::default();
    for _ in 0..20 {
        latest.poll(&mut batch, 10).unwrap();
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(batch.rows.is_empty(), "{:?}", batch.rows);
    let between = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    std::thread::sleep(Duration::from_millis(20));
    testkit::produce(&bootstrap, &topic, [Record::value(0, tick("new", 2, 2.0))]);
    assert_eq!(read_rows(latest.as_mut(), 1), vec![row("new", 2, 2.0)]);

    let by_time = table(
        &topic,
        &bootstrap,
        &[
            ("scan.startup.mode", "timestamp"),
            ("scan.startup.timestamp-millis", between.as_str()),
            ("scan.bounded.mode", "latest-offset"),
        ],
    );
    let (rows, _) = read_to_end(open(&by_time, SourceContext::SINGLE).as_mut());
    assert_eq!(rows, vec![row("new", 2, 2.0)]);
}

#[test]
fn event_time_progress_is_the_slowest_partition_until_it_goes_idle() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("clocks");
    testkit::create_topic(&bootstrap, &topic, 2);
    testkit::produce(
        &bootstrap,
        &topic,
        [
            Record::value(0, tick("A", 100, 1.0)),
            Record::value(0, tick("A", 300, 1.0)),
            Record::value(1, tick("B", 50, 1.0)),
        ],
    );
    let config = table(&topic, &bootstrap, &[("scan.watermark.idle-timeout", "1500 ms")]);
    let mut source = open(&config, SourceContext::SINGLE);
    assert_eq!(source.event_time_progress(), Some(EventTimeProgress::Through(None)));
    read_rows(source.as_mut(), 3);
    assert_eq!(
        source.event_time_progress(),
        Some(EventTimeProgress::Through(Some(50_000))),
        "partition 1 is behind"
    );
    // Partition 0 keeps producing; partition 1 goes quiet past the timeout.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut second = 301;
    while source.event_time_progress() != Some(EventTimeProgress::Through(Some(second * 1000 - 1000))) {
        assert!(Instant::now() < deadline, "partition 1 never went idle: {:?}", source.event_time_progress());
        testkit::produce(&bootstrap, &topic, [Record::value(0, tick("A", second, 1.0))]);
        read_rows(source.as_mut(), 1);
        second += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(
        source.event_time_progress(),
        Some(EventTimeProgress::Idle(Some((second - 1) * 1000))),
        "both partitions quiet: complete up to the newest row"
    );
}

/// A context for one instance of a query named uniquely (so that its metrics are its own).
fn recovering(retention: Retention) -> SourceContext {
    SourceContext {
        query: testkit::unique_topic("query"),
        retention,
        ..SourceContext::SINGLE
    }
}

/// Polls one row per epoch, sealing each, until `count` rows came; then
/// closes, as after a run that drained. Returns the rows and dead letters.
fn read_then_close(source: &mut dyn Source, count: usize) -> (Vec<Row>, Vec<DeadLetter>) {
    let mut batch = SourceBatch::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    for epoch in 0.. {
        assert!(Instant::now() < deadline, "only {} of {count} rows came", batch.rows.len());
        if source.poll(&mut batch, 1).expect("poll") == SourceStatus::Idle {
            std::thread::sleep(Duration::from_millis(5));
        }
        source.seal_epoch(epoch);
        if batch.rows.len() == count {
            break;
        }
    }
    source.close().expect("close");
    (batch.rows, batch.dead_letters)
}

#[test]
fn a_span_restart_rebuilds_the_clocks_then_rereads_the_span_without_its_dead_letters() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("span");
    let group = testkit::unique_topic("group");
    testkit::create_topic(&bootstrap, &topic, 2);
    // Partition 0: 0, 50, ... 300 s with a bad message second; partition 1: 10, 60, ... 310 s.
    let mut records: Vec<Record> = (0..7).map(|i| Record::value(0, tick("A", i * 50, 1.0))).collect();
    records.insert(1, Record::value(0, "not json"));
    records.extend((0..7).map(|i| Record::value(1, tick("B", 10 + i * 50, 2.0))));
    testkit::produce(&bootstrap, &topic, records);
    let config = resuming(&topic, &bootstrap, &group, &[]);
    let span = Retention::Span(100_000);
    let (rows, dead) = read_then_close(open(&config, recovering(span)).as_mut(), 14);
    assert_eq!((rows.len(), dead.len()), (14, 1));
    assert_eq!(
        testkit::committed_offsets(&bootstrap, &topic, &group),
        vec![Some(8), Some(7)],
        "where reading resumes"
    );
    // The floor is 300 s (partition 0's clock), the cutoff 200 s: partition 0
    // is read again from its row at 200 s (offset 5), partition 1 from 210 s (offset 4).
    assert_eq!(
        testkit::committed_offsets(&bootstrap, &topic, &testkit::replay_group(&group)),
        vec![Some(5), Some(4)]
    );

    let mut restarted = open(&config, recovering(span));
    let mut batch = SourceBatch::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while restarted.event_time_progress() != Some(EventTimeProgress::Through(Some(300_000))) {
        assert!(
            Instant::now() < deadline,
            "the clocks were never rebuilt: {:?}",
            restarted.event_time_progress()
        );
        assert_eq!(restarted.poll(&mut batch, 100).unwrap(), SourceStatus::Idle);
        assert!(batch.rows.is_empty(), "no row goes out before the clocks are back: {:?}", batch.rows);
        std::thread::sleep(Duration::from_millis(5));
    }
    // Stopped before it has read again all it had absorbed, it commits nothing:
    // the earlier positions are the ones a restart can rebuild from.
    let mut first = SourceBatch::default();
    while first.rows.is_empty() {
        assert!(Instant::now() < deadline, "the span never came");
        restarted.poll(&mut first, 1).unwrap();
    }
    restarted.seal_epoch(0);
    restarted.close().unwrap();
    assert_eq!(testkit::committed_offsets(&bootstrap, &topic, &group), vec![Some(8), Some(7)]);
    assert_eq!(
        testkit::committed_offsets(&bootstrap, &topic, &testkit::replay_group(&group)),
        vec![Some(5), Some(4)]
    );
    testkit::produce(&bootstrap, &topic, [Record::value(0, "still not json"), Record::value(0, tick("A", 350, 1.0))]);
    let mut rows = read_rows(restarted.as_mut(), 6);
    rows.append(&mut first.rows);
    let mut expected: Vec<Row> = [200, 250, 300, 350].into_iter().map(|second| row("A", second, 1.0)).collect();
    expected.extend([210, 260, 310].into_iter().map(|second| row("B", second, 2.0)));
    let mut sorted = rows.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "the span, then the new row");
    let mut batch = SourceBatch::default();
    restarted.poll(&mut batch, 100).unwrap();
    assert_eq!(
        batch.dead_letters.len(),
        0,
        "the old bad message is not reported again; the new one came with the rows"
    );
}

#[test]
fn everything_rereads_from_the_first_offset_ever_read() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("everything");
    let group = testkit::unique_topic("group");
    testkit::create_topic(&bootstrap, &topic, 1);
    testkit::produce(
        &bootstrap,
        &topic,
        [Record::value(0, tick("A", 1, 1.0)), Record::value(0, "x"), Record::value(0, tick("A", 2, 1.0))],
    );
    let config = resuming(&topic, &bootstrap, &group, &[]);
    let (_, dead) = read_then_close(open(&config, recovering(Retention::Everything)).as_mut(), 2);
    assert_eq!(dead.len(), 1);
    testkit::produce(&bootstrap, &topic, [Record::value(0, tick("A", 3, 1.0))]);
    let (rows, dead) = read_then_close(open(&config, recovering(Retention::Everything)).as_mut(), 3);
    assert_eq!(rows, vec![row("A", 1, 1.0), row("A", 2, 1.0), row("A", 3, 1.0)]);
    assert!(dead.is_empty(), "reported by the first run: {dead:?}");
    assert_eq!(testkit::committed_offsets(&bootstrap, &topic, &group), vec![Some(4)]);
    assert_eq!(testkit::committed_offsets(&bootstrap, &topic, &testkit::replay_group(&group)), vec![Some(0)]);
}

#[test]
fn nothing_is_committed_while_a_silent_partition_holds_the_watermark() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("silent");
    testkit::create_topic(&bootstrap, &topic, 2);
    testkit::produce(&bootstrap, &topic, [Record::value(0, tick("A", 1, 1.0))]);
    for (idle, committed) in [(None, None), (Some("200 ms"), Some(1))] {
        let group = testkit::unique_topic("group");
        let idle: Vec<(&str, &str)> = idle.map(|idle| ("scan.watermark.idle-timeout", idle)).into_iter().collect();
        let mut source = open(&resuming(&topic, &bootstrap, &group, &idle), recovering(Retention::Span(1_000)));
        read_rows(source.as_mut(), 1);
        // Past the timeout, partition 1 no longer holds the watermark.
        std::thread::sleep(Duration::from_millis(300));
        source.seal_epoch(0);
        source.close().unwrap();
        assert_eq!(
            testkit::committed_offsets(&bootstrap, &topic, &group),
            vec![committed, None],
            "idle timeout {idle:?}"
        );
    }
}

#[test]
fn the_consumer_lag_counts_the_messages_not_handed_out() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("lag");
    testkit::create_topic(&bootstrap, &topic, 1);
    testkit::produce(&bootstrap, &topic, (0..60).map(|i| Record::value(0, tick("A", i, 1.0))));
    let context = recovering(Retention::Nothing);
    let lag = carbonflow_core::metrics::KAFKA_CONSUMER_LAG.with_label_values(&[context.query.as_str(), "ticks"]);
    let mut source = open(&table(&topic, &bootstrap, &[]), context);
    let mut batch = SourceBatch::default();
    // One row every 50 ms: the statistics (once a second) report the
    // partition's end while most rows are still to be handed out.
    while batch.rows.len() + lag.get() as usize != 60 {
        assert!(batch.rows.len() < 60, "the lag never showed the rows left: {}", lag.get());
        source.poll(&mut batch, 1).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(lag.get() > 0);
    drop(source);
    assert_eq!(lag.get(), 0, "a dropped instance takes its share away");
}
