//! The partner goes away: a file replayed at a fixed pace → tumbling
//! 1-minute window (EMIT FINAL) → webhook, and the receiver (a real HTTP
//! server on loopback) closes its port once a third of the alerts arrived,
//! and listens again 5 s later. The sink keeps retrying from its outbox; the
//! run ends when the file is read and the outbox drained. Compared with the
//! same run into a receiver that stays up.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use carbonflow_core::time::format_timestamp;
use carbonflow_sinks::webhook::receiver::Receiver;
use carbonflow_sinks::webhook::signature::SigningSecret;

use super::{Outcome, Suite, WEBHOOK_SECRET, accepted_bodies, compare, run_reference, wait_for, windows_to_webhook};

/// 2024-01-01 00:00:00 UTC.
const BASE: i64 = 1_704_067_200_000;
const NODES: u32 = 30;
/// Simulated seconds: 30 windows per node.
const SECONDS: i64 = 1_800;
/// Event time × this: the replay takes about 12 s.
const SPEED: u32 = 150;
/// How long the receiver stays down.
const OUTAGE: Duration = Duration::from_secs(5);

fn query(ticks: &Path, receiver: &Receiver, outbox: &Path) -> String {
    format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'replay.speed' = '{SPEED}');
         {}",
        ticks.display(),
        windows_to_webhook(receiver, outbox, Duration::from_millis(250), Duration::from_secs(120))
    )
}

/// Runs the scenario.
pub fn run(suite: &Suite) -> anyhow::Result<Outcome> {
    let dir = suite.scenario_dir("webhook-outage")?;
    let ticks = dir.join("ticks.csv");
    let mut csv = String::new();
    for second in 0..SECONDS {
        for node in 0..NODES {
            let price = f64::from((node * 13 + u32::try_from(second % 997)? * 7) % 120) - 10.5;
            csv.push_str(&format!("N{node},{},{price}\n", format_timestamp(BASE + second * 1000)));
        }
    }
    std::fs::write(&ticks, csv)?;
    let secrets = SigningSecret::parse_list(WEBHOOK_SECRET).context("the secret")?;
    let expected_windows = NODES as usize * (SECONDS / 60) as usize;

    let receiver = Receiver::start(secrets.clone())?;
    let faulty = dir.join("outage.sql");
    std::fs::write(&faulty, query(&ticks, &receiver, &dir.join("outage-outbox.redb")))?;
    let engine = suite.start_engine(&faulty, &["--no-server"], &dir.join("engine.log"))?;
    wait_for("a third of the alerts", Duration::from_secs(120), || {
        receiver.accepted().len() * 3 >= expected_windows
    })?;
    receiver.go_down();
    let at_outage = receiver.accepted().len();
    std::thread::sleep(OUTAGE);
    receiver.come_up()?;
    let (status, peak_kib) = engine.wait(Duration::from_secs(300))?;
    ensure!(status.success(), "the run failed: {status}");
    let got = accepted_bodies(&receiver);

    let reference_receiver = Receiver::start(secrets)?;
    run_reference(suite, &dir, &query(&ticks, &reference_receiver, &dir.join("reference-outbox.redb")))?;
    let expected = accepted_bodies(&reference_receiver);
    ensure!(
        expected.len() == expected_windows,
        "the reference delivered {} windows, not {expected_windows}",
        expected.len()
    );
    let (lost, extra) = compare(&expected, &got);
    Ok(Outcome {
        name: "webhook-receiver-down-then-up".into(),
        fault: format!(
            "A CSV file ({NODES} nodes × {SECONDS} s) replayed at {SPEED}× event time → 1-minute tumbling window, EMIT FINAL → webhook with its outbox. The receiver (hyper on loopback, verifying signatures) closes its port once a third of the alerts arrived and listens again {} s later.",
            OUTAGE.as_secs()
        ),
        lost,
        duplicated: extra,
        peak_rss_kib: peak_kib,
        notes: vec![
            format!("{} of {expected_windows} alerts accepted", got.len()),
            format!("the receiver went down after {at_outage} alerts"),
        ],
    })
}
