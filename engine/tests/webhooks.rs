//! The webhook sink end to end, through the real `carbonflow` binary: a query
//! file turns ticks into partner alerts, the process is killed (SIGKILL)
//! while deliveries are pending, and a restart on the same outbox delivers
//! every alert exactly once. The receiver is a real HTTP server on loopback
//! that verifies every signature with the library verifier.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use carbonflow_sinks::webhook::receiver::{Receiver, Reply};
use carbonflow_sinks::webhook::signature::SigningSecret;
use common::{Tick, write_ticks};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_VARIABLE: &str = "CARBONFLOW_TEST_WEBHOOK_SECRET";
const THRESHOLD: i64 = 250;

/// 300 ticks over 10 nodes with prices spread over 0..300, one per (node, second).
fn ticks() -> Vec<Tick> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..300)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            Tick {
                node: (i % 10) as u8,
                second: i64::from(i),
                price: (state % 300) as i64,
            }
        })
        .collect()
}

/// The alerts as the receiver's JSON bodies show them.
fn expected_alerts(ticks: &[Tick]) -> BTreeSet<String> {
    ticks
        .iter()
        .filter(|tick| tick.price > THRESHOLD)
        .map(|tick| {
            let ts = carbonflow_core::time::format_timestamp(common::BASE + tick.second * 1000);
            format!(r#"{{"node":"N{}","ts":"{ts}","price":{}}}"#, tick.node, tick.price)
        })
        .collect()
}

fn query(ticks_csv: &Path, url: &str, outbox: &Path) -> String {
    format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{ticks}', 'format' = 'csv');
         CREATE TABLE partner_alerts (node STRING, ts TIMESTAMP(3), price BIGINT, PRIMARY KEY (node, ts) NOT ENFORCED)
         WITH (
           'connector' = 'webhook',
           'url' = '{url}',
           'secret' = '${{{SECRET_VARIABLE}}}',
           'outbox' = '{outbox}',
           'allow-private-network' = 'true',
           'retry.schedule' = '0 ms{retries}',
           'drain-timeout' = '60 s'
         );
         INSERT INTO partner_alerts SELECT node, ts, price FROM ticks WHERE price > {THRESHOLD};",
        ticks = ticks_csv.display(),
        outbox = outbox.display(),
        retries = ", 100 ms".repeat(1_000),
    )
}

fn carbonflow(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_carbonflow"));
    command.args(args).env(SECRET_VARIABLE, SECRET);
    command
}

fn succeeded(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "carbonflow failed:\n{stderr}");
    assert!(!stderr.contains("MfKQ9r8G"), "the secret leaked:\n{stderr}");
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn a_killed_run_restarted_on_its_outbox_delivers_every_alert_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let ticks = ticks();
    let expected = expected_alerts(&ticks);
    assert!(expected.len() > 20, "the workload has alerts: {}", expected.len());
    let ticks_csv = dir.path().join("ticks.csv");
    write_ticks(&ticks_csv, &ticks);
    let outbox = dir.path().join("outbox.redb");
    let receiver = Receiver::start(SigningSecret::parse_list(SECRET).unwrap()).unwrap();
    let query_file = dir.path().join("alerts.sql");
    std::fs::write(&query_file, query(&ticks_csv, &receiver.url(), &outbox)).unwrap();
    let query_path = query_file.to_str().unwrap();

    // First run: the partner accepts five alerts, then fails everything.
    receiver.reply_first([Reply::OK; 5]);
    receiver.reply_with(Reply::Status(500));
    let mut first = carbonflow(&["run", query_path, "--no-progress", "--no-server"]).spawn().unwrap();
    // Every alert is in the outbox once the receiver has seen it; three
    // tries of each failing one (100 ms apart) also leave time for the five
    // accepted ones to be recorded as delivered.
    let all_pending_retried = |requests: &[carbonflow_sinks::webhook::receiver::ReceivedRequest]| {
        let ids: BTreeSet<&str> = requests.iter().map(|r| r.id.as_str()).collect();
        let accepted: BTreeSet<&str> = requests.iter().filter(|r| r.accepted()).map(|r| r.id.as_str()).collect();
        ids.len() == expected.len()
            && ids
                .iter()
                .all(|id| accepted.contains(id) || requests.iter().filter(|r| r.id == *id).count() >= 3)
    };
    assert!(
        receiver.wait_until(Duration::from_secs(60), all_pending_retried),
        "the first run delivers and retries"
    );
    assert_eq!(first.try_wait().unwrap(), None, "the first run is still draining");
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let accepted_before_kill = receiver.accepted().len();
    assert_eq!(accepted_before_kill, 5);

    // Second run on the same outbox, the partner healthy again: the replayed
    // input finds its alerts already in the outbox, and the pending ones go out.
    receiver.reply_with(Reply::OK);
    let started = Instant::now();
    succeeded(carbonflow(&["run", query_path, "--no-progress", "--no-server"]).output().unwrap());
    assert!(started.elapsed() < Duration::from_secs(60), "the second run drained before its timeout");

    let requests = receiver.requests();
    assert!(requests.iter().all(|request| request.verified.is_ok()), "every signature verifies");
    let accepted = receiver.accepted();
    let ids: BTreeSet<&str> = accepted.iter().map(|request| request.id.as_str()).collect();
    assert_eq!(ids.len(), expected.len(), "after deduplication by webhook-id, every alert");
    assert_eq!(accepted.len(), expected.len(), "and none twice at all");
    let bodies: BTreeSet<String> = accepted.iter().map(|request| String::from_utf8(request.body.clone()).unwrap()).collect();
    assert_eq!(bodies, expected);

    // The operator's view of what happened.
    let outbox_path = outbox.to_str().unwrap();
    let status = succeeded(carbonflow(&["webhooks", "status", "--outbox", outbox_path]).output().unwrap());
    assert!(status.starts_with(&format!("partner_alerts  {}  enabled\n", receiver.url())), "{status}");
    assert!(status.contains(&format!("pending 0  delivered {}  dead 0", expected.len())), "{status}");
    let failures = succeeded(carbonflow(&["webhooks", "log", "--outbox", outbox_path, "--failed"]).output().unwrap());
    // Attempts are recorded in batches behind the deliveries, so those of
    // the last batch before the kill may have reached the receiver but not
    // the outbox; how many depends on how slow the disk was. What the log
    // holds must be true and without holes: for every alert, its failed
    // attempts #1..=k in order, and the receiver answered that alert 500 at
    // least k times.
    assert!(failures.lines().all(|line| line.contains("  500  ") && line.contains("retry at")), "{failures}");
    let mut logged_attempts: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for line in failures.lines() {
        let fields: Vec<&str> = line.split("  ").collect();
        let attempt = fields[3]
            .strip_prefix('#')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("an attempt number: {line}"));
        logged_attempts.entry(fields[1]).or_default().push(attempt);
    }
    assert!(!logged_attempts.is_empty(), "the first run recorded failed attempts before the kill");
    for (id, attempts) in &logged_attempts {
        assert_eq!(
            *attempts,
            (1..=attempts.len() as u32).collect::<Vec<_>>(),
            "{id}'s attempts in order, none missing:\n{failures}"
        );
        let answered_500 = requests.iter().filter(|request| request.id == *id && request.status == 500).count();
        assert!(
            attempts.len() <= answered_500,
            "{id}: {} failures logged, {answered_500} answered 500",
            attempts.len()
        );
    }
    let first_id = accepted[0].id.as_str();
    let trail = succeeded(carbonflow(&["webhooks", "log", "--outbox", outbox_path, "--id", first_id]).output().unwrap());
    assert!(
        trail.lines().last().unwrap().contains("  200  ") && trail.trim_end().ends_with("delivered"),
        "{trail}"
    );
    let replay = succeeded(carbonflow(&["webhooks", "replay", "--outbox", outbox_path, "--id", first_id]).output().unwrap());
    assert_eq!(replay, "1 messages will be sent again by the next run\n");
}

#[test]
fn a_loopback_url_is_refused_when_the_file_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let query_file = dir.path().join("alerts.sql");
    let text = query(Path::new("ticks.csv"), "http://127.0.0.1:9/hook", &dir.path().join("outbox.redb")).replace("'allow-private-network' = 'true',", "");
    std::fs::write(&query_file, text).unwrap();
    let output = carbonflow(&["check", query_file.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("option 'url'") && stderr.contains("allow-private-network"), "{stderr}");
    assert!(!stderr.contains("MfKQ9r8G"), "{stderr}");
}

#[test]
fn explain_never_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let query_file = dir.path().join("alerts.sql");
    let text = query(Path::new("ticks.csv"), "http://127.0.0.1:9/hook", &dir.path().join("outbox.redb")).replace(&format!("${{{SECRET_VARIABLE}}}"), SECRET);
    std::fs::write(&query_file, text).unwrap();
    let plan = succeeded(carbonflow(&["explain", query_file.to_str().unwrap()]).output().unwrap());
    assert!(plan.contains("table partner_alerts") && plan.contains("connector=webhook"), "{plan}");
    assert!(!plan.contains("MfKQ9r8G"), "{plan}");
}
