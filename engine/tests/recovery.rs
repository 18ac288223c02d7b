//! Crash recovery end to end, through the real `carbonflow` binary and a real
//! broker (tansu, started by `scripts/kafka-broker.sh` unless
//! `CARBONFLOW_KAFKA_BOOTSTRAP` names one) and webhook receiver.
//!
//! Ticks of four nodes over twenty minutes go to a Kafka topic in two
//! phases. A run reads the first phase and is killed (SIGKILL) once its
//! offsets are committed, with one-minute windows and a price spike still
//! open; a second run resumes on the same group and outbox while the second
//! phase is being produced, and is killed in turn once some of its results
//! are out; a third run finishes the topic. Every result must then be in
//! the output topics and at the receiver exactly once, with the values of a
//! run that never crashed.
//!
//! Two queries, one per kind of retention (`docs/recovery.md`):
//! * windows and `MATCH_RECOGNIZE` spikes: the pattern keeps rows behind the
//!   watermark, so a restart reads the whole topic again and the sinks drop
//!   what they had;
//! * windows alone: a restart reads the window's span again, after
//!   rebuilding the watermark, so the windows closed before the crash stay
//!   closed and the open ones are rebuilt whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use carbonflow_core::time::format_timestamp;
use carbonflow_sinks::webhook::receiver::Receiver;
use carbonflow_sinks::webhook::signature::SigningSecret;
use carbonflow_sources::kafka::testkit::{self, Record};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_VARIABLE: &str = "CARBONFLOW_TEST_WEBHOOK_SECRET";
/// 2024-01-01 00:00:00 UTC.
const BASE: i64 = 1_704_067_200_000;
const NODES: i32 = 4;
/// Ticks every 10 s from 0 to 1190 s; the first phase ends before this second.
const PHASE_TWO: i64 = 630;
const WAIT: Duration = Duration::from_secs(90);

/// A spike of node `node`: (first spiking second, number of spiking ticks).
fn spikes(node: i32) -> [(i64, i64); 4] {
    let node = i64::from(node);
    // The second one spans the two phases.
    [(100 + 40 * node, 2), (610 + 10 * (node % 2), 3), (900 + 30 * node, 1), (1100 + 20 * node, 2)]
}

fn price(node: i32, second: i64) -> f64 {
    let spiking = spikes(node).iter().any(|(start, ticks)| (*start..start + ticks * 10).contains(&second));
    let base = 100.0 + f64::from(node) * 3.0 + (second / 10 % 7) as f64;
    if spiking { base * 2.0 } else { base }
}

/// The ticks of seconds in `range`, node `n` on partition `n % 2`, each partition in event-time order.
fn ticks(range: std::ops::Range<i64>) -> Vec<Record> {
    range
        .step_by(10)
        .flat_map(|second| {
            (0..NODES).map(move |node| {
                let ts = format_timestamp(BASE + second * 1000);
                Record::value(node % 2, format!(r#"{{"node": "N{node}", "ts": "{ts}", "price": {}}}"#, price(node, second)))
            })
        })
        .collect()
}

/// Messages per partition in the first phase.
fn phase_one_ends() -> Vec<Option<i64>> {
    let per_partition = (PHASE_TWO / 10) * i64::from(NODES / 2);
    vec![Some(per_partition); 2]
}

/// Where one run of a query writes: its topics, outbox and receiver.
struct Outputs {
    windows: String,
    spikes: Option<String>,
    outbox: PathBuf,
    receiver: Receiver,
}

impl Outputs {
    fn new(bootstrap: &str, dir: &Path, name: &str, with_spike_topic: bool) -> Outputs {
        let windows = testkit::unique_topic(&format!("{name}-windows"));
        testkit::create_topic(bootstrap, &windows, 2);
        let spikes = with_spike_topic.then(|| {
            let topic = testkit::unique_topic(&format!("{name}-spikes"));
            testkit::create_topic(bootstrap, &topic, 1);
            topic
        });
        Outputs {
            windows,
            spikes,
            outbox: dir.join(format!("{name}.redb")),
            receiver: Receiver::start(SigningSecret::parse_list(SECRET).unwrap()).unwrap(),
        }
    }

    /// Every message value of `topic`, with how many times it is there.
    fn topic_values(bootstrap: &str, topic: &str) -> BTreeMap<String, usize> {
        let mut values = BTreeMap::new();
        for record in testkit::consume_all(bootstrap, topic) {
            *values.entry(String::from_utf8(record.value.unwrap()).unwrap()).or_default() += 1;
        }
        values
    }

    /// Every alert body the receiver accepted, with how many times.
    /// How many different `webhook-id`s the partner accepted each alert
    /// under. Delivery is at least once: a request accepted just before a
    /// kill, whose acknowledgement the outbox had not yet recorded, is sent
    /// again after the restart with the same id, which partners deduplicate
    /// on (docs/webhooks.md). So an alert is counted once per id, and an id
    /// must always carry the same alert.
    fn alerts(&self) -> BTreeMap<String, usize> {
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        for request in self.receiver.accepted() {
            assert!(request.verified.is_ok(), "every signature verifies");
            let body = String::from_utf8(request.body).unwrap();
            let earlier = ids.entry(request.id).or_insert_with(|| body.clone());
            assert_eq!(*earlier, body, "one id, one alert");
        }
        let mut bodies = BTreeMap::new();
        for body in ids.into_values() {
            *bodies.entry(body).or_default() += 1;
        }
        bodies
    }
}

/// One of the two queries.
struct Scenario {
    name: &'static str,
    /// The statements after the tables, given the webhook table's name.
    body: &'static str,
    /// The webhook table's columns.
    alert_columns: &'static str,
    with_spike_topic: bool,
    /// Whether its restarts read the whole topic again rather than a span.
    rereads_everything: bool,
    /// Worker threads of every run.
    workers: usize,
}

const WINDOWS: &str = "CREATE VIEW windows_view AS
    SELECT node, window_start, COUNT(*) AS n, SUM(price) AS total, MAX(price) AS top
    FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY node, window_start, window_end EMIT FINAL;
    INSERT INTO windows SELECT * FROM windows_view;";

const WITH_SPIKES: Scenario = Scenario {
    name: "spikes",
    body: "CREATE VIEW spikes_view AS SELECT * FROM ticks MATCH_RECOGNIZE (
        PARTITION BY node ORDER BY ts
        MEASURES A.ts AS spike_start, A.price AS base, MAX(B.price) AS peak, COUNT(B.price) AS spiking
        PATTERN (A B+ C) WITHIN INTERVAL '5' MINUTE
        DEFINE B AS B.price > 1.5 * A.price, C AS C.price <= 1.5 * A.price);
      INSERT INTO alerts SELECT * FROM spikes_view;
      INSERT INTO spike_log SELECT * FROM spikes_view;",
    alert_columns: "node STRING, spike_start TIMESTAMP(3), base DOUBLE, peak DOUBLE, spiking BIGINT",
    with_spike_topic: true,
    rereads_everything: true,
    workers: 1,
};

const WINDOWS_ONLY: Scenario = Scenario {
    name: "windows",
    body: "INSERT INTO alerts SELECT node, window_start, top FROM windows_view WHERE top > 150;",
    alert_columns: "node STRING, window_start TIMESTAMP(3), top DOUBLE",
    with_spike_topic: false,
    rereads_everything: false,
    workers: 1,
};

/// The windows with two workers: a span is sized per source instance, so
/// with several the restarts read everything again (see `retention::for_workers`).
const WINDOWS_TWO_WORKERS: Scenario = Scenario {
    name: "windows-2w",
    rereads_everything: true,
    workers: 2,
    ..WINDOWS_ONLY
};

impl Scenario {
    fn query(&self, bootstrap: &str, input: &str, group: &str, outputs: &Outputs, bounded: bool) -> String {
        let bounded = if bounded { ", 'scan.bounded.mode' = 'latest-offset'" } else { "" };
        let spike_log = outputs.spikes.as_ref().map_or(String::new(), |topic| {
            format!(
                "CREATE TABLE spike_log ({columns}) WITH ('connector' = 'kafka', 'topic' = '{topic}',
                   'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json');",
                columns = self.alert_columns
            )
        });
        format!(
            "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
               WITH ('connector' = 'kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{bootstrap}',
                 'properties.group.id' = '{group}', 'properties.auto.offset.reset' = 'earliest', 'format' = 'json' {bounded});
             CREATE TABLE windows (node STRING, window_start TIMESTAMP(3), n BIGINT, total DOUBLE, top DOUBLE)
               WITH ('connector' = 'kafka', 'topic' = '{windows}', 'properties.bootstrap.servers' = '{bootstrap}',
                 'format' = 'json', 'key.fields' = 'node');
             {spike_log}
             CREATE TABLE alerts ({alert_columns})
               WITH ('connector' = 'webhook', 'url' = '{url}', 'secret' = '${{{SECRET_VARIABLE}}}', 'outbox' = '{outbox}',
                 'allow-private-network' = 'true', 'retry.schedule' = '0 ms{retries}', 'drain-timeout' = '60 s');
             {WINDOWS}
             {body}",
            windows = outputs.windows,
            alert_columns = self.alert_columns,
            url = outputs.receiver.url(),
            outbox = outputs.outbox.display(),
            retries = ", 100 ms".repeat(100),
            body = self.body,
        )
    }
}

/// The binary running `query` (written to `dir/name.sql`), its standard
/// error going to `dir/name.stderr`.
fn start(dir: &Path, name: &str, query: &str, workers: usize) -> Child {
    let file = dir.join(format!("{name}.sql"));
    std::fs::write(&file, query).unwrap();
    let stderr = std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_carbonflow"))
        // Small epochs: the offsets a restart resumes from fall inside the topic's history.
        .args([
            "run",
            file.to_str().unwrap(),
            "--no-progress",
            "--no-server",
            "--batch-size",
            "8",
            "--workers",
            &workers.to_string(),
        ])
        .env(SECRET_VARIABLE, SECRET)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

fn stderr_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default()
}

/// Waits for `done`, failing with the run's standard error if it ends or takes too long.
fn wait_while_running(child: &mut Child, dir: &Path, name: &str, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{name} ended ({status}) before {what}:\n{}", stderr_of(dir, name));
        }
        assert!(Instant::now() < deadline, "{name}: never {what}:\n{}", stderr_of(dir, name));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn finish(child: Child, dir: &Path, name: &str) {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{name} failed:\n{}", stderr_of(dir, name));
}

fn crash_twice_then_finish(scenario: &Scenario) {
    let bootstrap = testkit::bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let input = testkit::unique_topic(&format!("{}-ticks", scenario.name));
    testkit::create_topic(&bootstrap, &input, 2);
    testkit::produce(&bootstrap, &input, ticks(0..PHASE_TWO));

    let group = testkit::unique_topic("recovering");
    let crashed = Outputs::new(&bootstrap, dir, "crashed", scenario.with_spike_topic);
    let windows_written = || testkit::consume_all(&bootstrap, &crashed.windows).len();

    // Run 1 reads the first phase; it is killed once the group's offsets
    // cover all of it, with the windows from 00:10 on and a spike per node still open.
    let mut first = start(dir, "run1", &scenario.query(&bootstrap, &input, &group, &crashed, false), scenario.workers);
    wait_while_running(&mut first, dir, "run1", "committed the first phase and delivered alerts", || {
        testkit::committed_offsets(&bootstrap, &input, &group) == phase_one_ends() && !crashed.receiver.accepted().is_empty()
    });
    kill(first);
    let after_first = windows_written();
    assert_eq!(after_first, 40, "four nodes' windows up to 00:10 were complete");
    let replay_starts = testkit::committed_offsets(&bootstrap, &input, &testkit::replay_group(&group));
    if scenario.rereads_everything {
        assert_eq!(replay_starts, vec![Some(0); 2], "the whole topic");
    } else {
        let heads = phase_one_ends();
        assert!(
            replay_starts
                .iter()
                .zip(&heads)
                .all(|(start, head)| start.is_some_and(|start| start > 0 && Some(start) < *head)),
            "a span inside the first phase: {replay_starts:?}"
        );
    }

    // Run 2 resumes while the second phase arrives, and is killed once some of its windows are out.
    let mut second = start(dir, "run2", &scenario.query(&bootstrap, &input, &group, &crashed, false), scenario.workers);
    let producer = {
        let (bootstrap, input) = (bootstrap.clone(), input.clone());
        std::thread::spawn(move || {
            for chunk in ticks(PHASE_TWO..1200).chunks(24) {
                testkit::produce(&bootstrap, &input, chunk.iter().cloned());
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    wait_while_running(&mut second, dir, "run2", "wrote a window of the second phase", || {
        windows_written() > after_first
    });
    kill(second);
    producer.join().unwrap();

    // Run 3 finishes the topic.
    finish(
        start(dir, "run3", &scenario.query(&bootstrap, &input, &group, &crashed, true), scenario.workers),
        dir,
        "run3",
    );

    // The same query over the same topic, never crashed.
    let reference = Outputs::new(&bootstrap, dir, "reference", scenario.with_spike_topic);
    let reference_group = testkit::unique_topic("reference");
    finish(
        start(
            dir,
            "reference",
            &scenario.query(&bootstrap, &input, &reference_group, &reference, true),
            scenario.workers,
        ),
        dir,
        "reference",
    );

    let expected_windows = Outputs::topic_values(&bootstrap, &reference.windows);
    assert_eq!(expected_windows.len(), 80, "four nodes, twenty windows each");
    assert!(expected_windows.values().all(|count| *count == 1), "each window once");
    assert_same(&Outputs::topic_values(&bootstrap, &crashed.windows), &expected_windows, "windows");

    let expected_alerts = reference.alerts();
    assert!(
        expected_alerts.len() >= 12 && expected_alerts.values().all(|count| *count == 1),
        "{expected_alerts:#?}"
    );
    // Each alert under exactly one id, however often it was sent.
    assert_same(&crashed.alerts(), &expected_alerts, "alerts");

    if let (Some(crashed_spikes), Some(reference_spikes)) = (&crashed.spikes, &reference.spikes) {
        let expected = Outputs::topic_values(&bootstrap, reference_spikes);
        assert_eq!(expected.len(), 16, "four spikes per node");
        assert_same(&Outputs::topic_values(&bootstrap, crashed_spikes), &expected, "spikes in the topic");
    }
}

/// Fails listing every result whose count differs from the uncrashed run's.
fn assert_same(got: &BTreeMap<String, usize>, expected: &BTreeMap<String, usize>, what: &str) {
    let differences: Vec<String> = expected
        .keys()
        .chain(got.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|result| got.get(*result) != expected.get(*result))
        .map(|result| {
            format!(
                "  {result}: {} times, uncrashed {}",
                got.get(result).unwrap_or(&0),
                expected.get(result).unwrap_or(&0)
            )
        })
        .collect();
    assert!(differences.is_empty(), "{what} differ from the uncrashed run's:\n{}", differences.join("\n"));
}

#[test]
fn spikes_and_windows_after_two_kills_read_everything_again_and_deliver_each_result_once() {
    crash_twice_then_finish(&WITH_SPIKES);
}

#[test]
fn windows_after_two_kills_read_their_span_again_and_deliver_each_result_once() {
    crash_twice_then_finish(&WINDOWS_ONLY);
}

#[test]
fn windows_with_two_workers_after_two_kills_deliver_each_result_once() {
    crash_twice_then_finish(&WINDOWS_TWO_WORKERS);
}
