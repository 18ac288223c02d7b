//! The fault suite: the real `carbonflow` binary against real peers (a Kafka
//! broker, a webhook receiver, WebSocket clients) while something goes wrong,
//! counting what was lost or duplicated and the engine's peak memory.
//!
//! Run it with `scripts/fault-suite.sh`, which builds the binaries and
//! writes `docs/fault-report.md`; the `fault_suite` binary is the command line.
//! Each scenario is a module:
//!
//! * [`kafka`]: Kafka → tumbling window → webhook, with the engine killed
//!   (SIGKILL) and restarted, or the broker restarted, mid-stream; compared
//!   with an uncrashed run over the same topic.
//! * [`webhook_outage`]: the partner's receiver goes down, then comes back.
//! * [`slow_client`]: WebSocket subscribers 100× slower than the stream.
//! * [`fuzzed_rows`]: a million generated rows, valid and garbage, through a
//!   file source: every bad row a dead letter, every valid one counted once.
//!
//! Peak memory is the engine process's `VmHWM` (`/proc/PID/status`), read
//! every 20 ms while it runs: the high-water mark of its resident set.

pub mod fuzzed_rows;
pub mod kafka;
pub mod slow_client;
pub mod webhook_outage;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use carbonflow_sinks::webhook::receiver::Receiver;

/// The webhook signing secret every scenario's sink and receiver share.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The variable the query files read the secret from.
pub const WEBHOOK_SECRET_VARIABLE: &str = "CARBONFLOW_FAULT_WEBHOOK_SECRET";

/// Where the suite runs: the engine binary and a scratch directory.
#[derive(Clone, Debug)]
pub struct Suite {
    /// The `carbonflow` binary under test.
    pub carbonflow: PathBuf,
    /// A directory for query files, outboxes, inputs and logs.
    pub work: PathBuf,
}

impl Suite {
    /// A fresh scratch directory for one scenario.
    pub fn scenario_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.work.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
        }
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        Ok(dir)
    }

    /// Starts `carbonflow run QUERY ARGS...`, its stderr going to `log`.
    pub fn start_engine(&self, query: &Path, args: &[&str], log: &Path) -> anyhow::Result<Engine> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| log.display().to_string())?;
        let child = Command::new(&self.carbonflow)
            .arg("run")
            .arg(query)
            .args(["--no-progress"])
            .args(args)
            .env(WEBHOOK_SECRET_VARIABLE, WEBHOOK_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", self.carbonflow.display()))?;
        Ok(Engine::watch(child))
    }
}

/// A running engine process and its memory high-water mark.
pub struct Engine {
    child: Child,
    peak_kib: Arc<AtomicU64>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    fn watch(child: Child) -> Engine {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let status = PathBuf::from(format!("/proc/{}/status", child.id()));
        let peak = peak_kib.clone();
        // Stops by itself when the process is gone (its status file with it).
        let sampler = std::thread::spawn(move || {
            while let Ok(text) = std::fs::read_to_string(&status) {
                if let Some(kib) = vm_hwm_kib(&text) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                if text.lines().any(|line| line.starts_with("State:") && line.contains("zombie")) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Engine {
            child,
            peak_kib,
            sampler: Some(sampler),
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The highest `VmHWM` read so far, in KiB.
    pub fn peak_kib(&self) -> u64 {
        self.peak_kib.load(Ordering::Relaxed)
    }

    /// SIGKILL, and waits for the process to be gone; gives the peak memory.
    pub fn kill(mut self) -> anyhow::Result<u64> {
        self.child.kill().context("SIGKILL")?;
        self.child.wait().context("waiting for the killed engine")?;
        Ok(self.finish())
    }

    /// Asks for a graceful stop (SIGINT, as Ctrl-C) and waits up to `timeout`.
    pub fn interrupt(self, timeout: Duration) -> anyhow::Result<(ExitStatus, u64)> {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .context("kill -INT")?;
        ensure!(sent.success(), "kill -INT {} failed", self.child.id());
        self.wait(timeout)
    }

    /// Waits for the process to end by itself, up to `timeout` (then kills it and fails).
    pub fn wait(mut self, timeout: Duration) -> anyhow::Result<(ExitStatus, u64)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status, self.finish()));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the engine did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn finish(&mut self) -> u64 {
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        self.peak_kib()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.sampler.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.finish();
        }
    }
}

/// `VmHWM` of a `/proc/PID/status` text, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits until `done` holds, checking every 50 ms, or fails after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        ensure!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The sink half of the webhook scenarios: a `windows` webhook table
/// posting to `receiver` through the outbox at `outbox` (retrying every
/// `retry` for a few minutes, waiting up to `drain_timeout` at the end), fed
/// by 1-minute tumbling windows of `ticks (node, ts, price)`, EMIT FINAL: one
/// alert per node and minute.
pub fn windows_to_webhook(receiver: &Receiver, outbox: &Path, retry: Duration, drain_timeout: Duration) -> String {
    let retries = format!(", {} ms", retry.as_millis()).repeat(usize::try_from(180_000 / retry.as_millis().max(1)).unwrap_or(1));
    format!(
        "CREATE TABLE windows (node STRING, window_start TIMESTAMP(3), n BIGINT, avg_price DOUBLE, top DOUBLE)
         WITH ('connector' = 'webhook', 'url' = '{url}', 'secret' = '${{{WEBHOOK_SECRET_VARIABLE}}}', 'outbox' = '{outbox}',
               'allow-private-network' = 'true', 'retry.schedule' = '0 ms{retries}', 'drain-timeout' = '{drain} s');
         INSERT INTO windows
         SELECT node, window_start, COUNT(*), AVG(price), MAX(price)
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
         GROUP BY node, window_start, window_end EMIT FINAL;",
        url = receiver.url(),
        outbox = outbox.display(),
        drain = drain_timeout.as_secs(),
    )
}

/// Runs `query` (written to `dir/reference.sql`) to its end without a
/// fault: the run a scenario compares with.
pub fn run_reference(suite: &Suite, dir: &Path, query: &str) -> anyhow::Result<()> {
    let file = dir.join("reference.sql");
    std::fs::write(&file, query).with_context(|| file.display().to_string())?;
    let log = dir.join("reference.log");
    let (status, _) = suite.start_engine(&file, &["--no-server"], &log)?.wait(Duration::from_secs(300))?;
    ensure!(status.success(), "the reference run failed: {status} (see {})", log.display());
    Ok(())
}

/// The bodies `receiver` accepted, sorted.
pub fn accepted_bodies(receiver: &Receiver) -> Vec<String> {
    let mut bodies: Vec<String> = receiver
        .accepted()
        .into_iter()
        .map(|request| String::from_utf8_lossy(&request.body).into_owned())
        .collect();
    bodies.sort();
    bodies
}

/// What one scenario found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The scenario, as the report's heading.
    pub name: String,
    /// What was done to the run.
    pub fault: String,
    /// Results (or rows) the uninterrupted run has and this one lacks.
    pub lost: u64,
    /// Results delivered more than once (each extra copy counts).
    pub duplicated: u64,
    /// Peak resident memory of the engine process(es), KiB.
    pub peak_rss_kib: u64,
    /// Anything else measured, in order.
    pub notes: Vec<String>,
}

/// The multiset difference of two lists: what `expected` has more often than
/// `got` (lost), and what `got` has more often than `expected` (extra).
pub fn compare<T: Ord + Clone>(expected: &[T], got: &[T]) -> (u64, u64) {
    let mut counts: BTreeMap<T, i64> = BTreeMap::new();
    for item in expected {
        *counts.entry(item.clone()).or_default() += 1;
    }
    for item in got {
        *counts.entry(item.clone()).or_default() -= 1;
    }
    let lost = counts.values().filter(|count| **count > 0).map(|count| count.unsigned_abs()).sum();
    let extra = counts.values().filter(|count| **count < 0).map(|count| count.unsigned_abs()).sum();
    (lost, extra)
}

/// Writes the Markdown report: the command and date, then a table per scenario.
pub fn write_report(path: &Path, command: &str, started: &str, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let mut out = String::new();
    out.push_str("# Fault suite report\n\n");
    out.push_str("Produced by the fault suite (`benches/src/fault/`), which runs the real `carbonflow`\n");
    out.push_str("binary against real peers on loopback. Lost and duplicated are counted against\n");
    out.push_str("the same input without the fault; the target for both is 0. Peak RSS is the\n");
    out.push_str("engine process's `VmHWM`, read while it ran (the larger of the two processes\n");
    out.push_str("where the engine was restarted).\n\n");
    out.push_str(&format!("- command: `{command}`\n- date: {started}\n"));
    if let Some(rev) = crate::throughput::git_rev() {
        out.push_str(&format!("- git: `{rev}`\n"));
    }
    for outcome in outcomes {
        out.push_str(&format!("\n## {}\n\n{}\n\n", outcome.name, outcome.fault));
        out.push_str("| lost | duplicated | peak RSS | notes |\n| ---: | ---: | ---: | --- |\n");
        out.push_str(&format!(
            "| {} | {} | {:.1} MiB | {} |\n",
            outcome.lost,
            outcome.duplicated,
            outcome.peak_rss_kib as f64 / 1024.0,
            outcome.notes.join("; ")
        ));
    }
    let mut file = std::fs::File::create(path).with_context(|| path.display().to_string())?;
    file.write_all(out.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_counts_missing_and_extra_copies() {
        let expected = ["a", "b", "b", "c"];
        assert_eq!(compare(&expected, &["a", "b", "b", "c"]), (0, 0));
        assert_eq!(compare(&expected, &["a", "b", "c", "c", "d"]), (1, 2));
    }

    #[test]
    fn the_high_water_mark_is_read_from_proc_status() {
        let status = "Name:\tcarbonflow\nVmPeak:\t  900 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(51_234));
        assert_eq!(vm_hwm_kib("Name:\tkthreadd\n"), None);
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(vm_hwm_kib(&own).unwrap() > 0);
    }
}
