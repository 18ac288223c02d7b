//! Kafka → tumbling 1-minute window (EMIT FINAL) → webhook, fed live, with a
//! fault injected halfway through the feed:
//!
//! * [`Fault::KillEngine`]: the engine is killed (SIGKILL) and started again
//!   on the same consumer group and webhook outbox;
//! * [`Fault::RestartBroker`]: the broker stops and starts again on the same
//!   storage and port (`scripts/kafka-broker.sh --durable`).
//!
//! A producer writes one tick per node per simulated second to a
//! 2-partition topic at a fixed pace; the engine reads it unbounded and
//! commits offsets to its group as its outputs absorb them. After the feed,
//! a tick far ahead on every partition closes every window; once the
//! receiver has had every window (or nothing arrives for a while) the engine
//! is stopped with SIGINT. The reference is an uncrashed, bounded run over
//! the complete topic into a receiver of its own; alerts are compared by
//! body (each is one window's row).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use carbonflow_core::time::format_timestamp;
use carbonflow_sinks::webhook::receiver::Receiver;
use carbonflow_sinks::webhook::signature::SigningSecret;
use carbonflow_sources::kafka::testkit::{self, Record};

use super::{Outcome, Suite, WEBHOOK_SECRET, compare, run_reference, wait_for, windows_to_webhook};

/// 2024-01-01 00:00:00 UTC, the event time of the feed's first second.
const BASE: i64 = 1_704_067_200_000;
/// Nodes in the feed.
const NODES: u32 = 40;
/// Simulated seconds in the feed: 20 one-minute windows per node.
const SECONDS: i64 = 1_200;
/// Wall-clock time per simulated second of the feed.
const PACE: Duration = Duration::from_millis(10);
/// Simulated seconds produced at once (one producer flush each).
const CHUNK: i64 = 10;
/// Partitions of the input topic.
const PARTITIONS: i32 = 2;
/// The node of the ticks that close the last windows, left out of the comparison.
const CLOSING_NODE: &str = "~closing";

/// What goes wrong halfway through the feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the engine, then start it again.
    KillEngine,
    /// Stop the broker, wait, start it again on the same data and port.
    RestartBroker,
}

/// A broker of the suite's own, with durable storage so it can restart.
pub struct Broker {
    script: PathBuf,
    dir: PathBuf,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl Broker {
    /// Starts a broker whose files live in `dir`.
    pub fn start(script: &Path, dir: &Path) -> anyhow::Result<Broker> {
        let address = broker_command(script, &["start", "--durable", "--dir", &dir.display().to_string()])?;
        Ok(Broker {
            script: script.to_owned(),
            dir: dir.to_owned(),
            address,
        })
    }

    /// Stops the broker process, keeping its storage; starts it again after `down` on the same port.
    pub fn restart(&self, down: Duration) -> anyhow::Result<()> {
        let dir = self.dir.display().to_string();
        broker_command(&self.script, &["stop", "--keep-storage", "--dir", &dir])?;
        std::thread::sleep(down);
        let port = self.address.rsplit(':').next().unwrap_or_default();
        let address = broker_command(&self.script, &["start", "--durable", "--dir", &dir, "--port", port])?;
        ensure!(address == self.address, "the broker came back on {address}, not {}", self.address);
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = broker_command(&self.script, &["stop", "--dir", &self.dir.display().to_string()]);
    }
}

fn broker_command(script: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .with_context(|| script.display().to_string())?;
    ensure!(
        output.status.success(),
        "{} {}: {}",
        script.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn price(node: u32, second: i64) -> f64 {
    f64::from((node * 31 + u32::try_from(second % 1000).unwrap_or(0) * 17) % 100) + 0.25
}

fn tick(node: &str, second: i64, price: f64) -> Vec<u8> {
    format!(r#"{{"node":"{node}","ts":"{}","price":{price}}}"#, format_timestamp(BASE + second * 1000)).into_bytes()
}

/// The query: `bounded` reads the topic from the start to its current end
/// (the reference); otherwise it follows the topic with a consumer group.
fn query(bootstrap: &str, topic: &str, group: &str, bounded: bool, receiver: &Receiver, outbox: &Path) -> String {
    let scan = if bounded {
        "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'".to_owned()
    } else {
        format!("'properties.group.id' = '{group}', 'properties.auto.offset.reset' = 'earliest'")
    };
    format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json', {scan});
         {}",
        windows_to_webhook(receiver, outbox, Duration::from_millis(200), Duration::from_secs(60))
    )
}

/// The bodies a receiver accepted, without the closing node's windows.
fn accepted_bodies(receiver: &Receiver) -> Vec<String> {
    let mut bodies = super::accepted_bodies(receiver);
    bodies.retain(|body| !body.contains(CLOSING_NODE));
    bodies
}

/// Runs the scenario with `fault` on `broker`.
pub fn run(suite: &Suite, broker: &Broker, fault: Fault) -> anyhow::Result<Outcome> {
    let name = match fault {
        Fault::KillEngine => "kafka-sigkill",
        Fault::RestartBroker => "kafka-broker-restart",
    };
    let dir = suite.scenario_dir(name)?;
    let bootstrap = broker.address.as_str();
    let topic = testkit::unique_topic(name);
    testkit::create_topic(bootstrap, &topic, PARTITIONS);
    let secrets = SigningSecret::parse_list(WEBHOOK_SECRET).context("the secret")?;
    let receiver = Receiver::start(secrets.clone())?;
    let live = dir.join("live.sql");
    std::fs::write(&live, query(bootstrap, &topic, name, false, &receiver, &dir.join("live-outbox.redb")))?;
    let log = dir.join("engine.log");

    let mut engine = suite.start_engine(&live, &["--no-server"], &log)?;
    let mut peak_kib = 0;
    let mut notes = Vec::new();
    let started = Instant::now();
    for chunk in 0..SECONDS / CHUNK {
        let second = chunk * CHUNK;
        if second == SECONDS / 2 {
            match fault {
                Fault::KillEngine => {
                    let delivered = accepted_bodies(&receiver).len();
                    peak_kib = peak_kib.max(engine.kill()?);
                    notes.push(format!("killed at second {second} of {SECONDS}, {delivered} windows delivered by then"));
                    engine = suite.start_engine(&live, &["--no-server"], &log)?;
                }
                Fault::RestartBroker => {
                    broker.restart(Duration::from_secs(5))?;
                    notes.push(format!("broker down 5 s at second {second} of {SECONDS}"));
                    ensure!(engine.running(), "the engine exited while the broker was down (see {})", log.display());
                }
            }
        }
        let records = (second..second + CHUNK).flat_map(|second| {
            (0..NODES).map(move |node| Record::value((node % PARTITIONS as u32) as i32, tick(&format!("N{node}"), second, price(node, second))))
        });
        testkit::produce(bootstrap, &topic, records);
        let due = started + PACE * u32::try_from(second + CHUNK)?;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    // Far ahead on every partition: every window of the feed closes.
    testkit::produce(
        bootstrap,
        &topic,
        (0..PARTITIONS).map(|partition| Record::value(partition, tick(CLOSING_NODE, SECONDS + 600, 0.0))),
    );
    let expected_windows = NODES as usize * (SECONDS / 60) as usize;
    let mut last = (0, Instant::now());
    // Done when every window arrived, or nothing more did for 20 s.
    let _ = wait_for("the live run's windows", Duration::from_secs(300), || {
        let count = accepted_bodies(&receiver).len();
        if count != last.0 {
            last = (count, Instant::now());
        }
        count >= expected_windows || last.1.elapsed() > Duration::from_secs(20)
    });
    let (status, peak) = engine.interrupt(Duration::from_secs(90))?;
    peak_kib = peak_kib.max(peak);
    ensure!(status.success(), "the live run failed: {status} (see {})", log.display());
    let got = accepted_bodies(&receiver);

    // The reference: the same topic, uncrashed, into a receiver of its own.
    let reference_receiver = Receiver::start(secrets)?;
    run_reference(
        suite,
        &dir,
        &query(bootstrap, &topic, "", true, &reference_receiver, &dir.join("reference-outbox.redb")),
    )?;
    let expected = accepted_bodies(&reference_receiver);
    ensure!(
        expected.len() == expected_windows,
        "the reference run delivered {} windows, not {expected_windows}",
        expected.len()
    );
    let (lost, extra) = compare(&expected, &got);
    // An extra body is either a second copy of a reference window or a window the reference does not have (a wrong result).
    let mut distinct = got.clone();
    distinct.dedup();
    let duplicated = (got.len() - distinct.len()) as u64;
    let wrong = extra - duplicated;
    notes.push(format!("{} of {expected_windows} windows delivered", got.len()));
    if wrong > 0 {
        notes.push(format!("{wrong} delivered windows differ from the uncrashed run (partial windows)"));
    }
    Ok(Outcome {
        name: name.into(),
        fault: match fault {
            Fault::KillEngine => format!(
                "Kafka ({PARTITIONS} partitions, {NODES} nodes, one tick per node per simulated second, {SECONDS} s fed live at {} ms per second) → 1-minute tumbling window, EMIT FINAL → webhook with its outbox. The engine is killed with SIGKILL halfway through the feed and started again on the same consumer group and outbox.",
                PACE.as_millis()
            ),
            Fault::RestartBroker => format!(
                "Kafka ({PARTITIONS} partitions, {NODES} nodes, {SECONDS} s fed live) → 1-minute tumbling window, EMIT FINAL → webhook. Halfway through, the broker stops and starts again 5 s later on the same storage and port (`scripts/kafka-broker.sh stop --keep-storage`, `start --durable`); the engine keeps running."
            ),
        },
        lost,
        duplicated,
        peak_rss_kib: peak_kib,
        notes,
    })
}
