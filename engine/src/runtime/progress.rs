//! The progress bar of a long replay: every worker reports its own sources'
//! progress into its slot; the bar shows the sum.

use std::sync::atomic::{AtomicU64, Ordering};

use super::worker::SourceState;

/// A progress bar over every worker's sources.
pub(super) struct Progress {
    pub(super) bar: indicatif::ProgressBar,
    /// Per worker: units done and units in total.
    slots: Vec<(AtomicU64, AtomicU64)>,
}

impl Progress {
    pub(super) fn new(workers: usize) -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}").expect("valid template"));
        Progress {
            bar,
            slots: (0..workers).map(|_| (AtomicU64::new(0), AtomicU64::new(0))).collect(),
        }
    }

    pub(super) fn report<'a>(&self, worker: usize, sources: impl Iterator<Item = &'a SourceState>, rows: u64) {
        let (done, total) = sources
            .filter_map(|s| s.source.progress())
            .fold((0, 0), |(d, t), p| (d + p.done, t + p.total.unwrap_or(0)));
        self.slots[worker].0.store(done, Ordering::Relaxed);
        self.slots[worker].1.store(total, Ordering::Relaxed);
        let done: u64 = self.slots.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
        let total: u64 = self.slots.iter().map(|s| s.1.load(Ordering::Relaxed)).sum();
        if total > 0 {
            self.bar.set_length(total);
            self.bar.set_position(done);
        }
        let rate = rows as f64 / self.bar.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
    }
}
