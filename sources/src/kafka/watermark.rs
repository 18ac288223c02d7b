//! Event time per partition: a source instance that reads several Kafka
//! partitions is only as far along in event time as its slowest active
//! partition.
//!
//! Each partition is ordered on its own, but messages of different partitions
//! interleave in whatever order the consumer fetches them, so the largest
//! event time seen over all of them says nothing about the partition that is
//! behind. [`PartitionClocks`] keeps, per partition, the largest event time of
//! its rows and when it last produced a record; the instance's progress is
//! the minimum over its active partitions (Flink's per-partition watermarks).
//!
//! A partition with no record for the idle timeout
//! (`scan.watermark.idle-timeout`) stops counting until it produces again,
//! so a quiet partition cannot stall every window. Records of a partition
//! that comes back may then be behind the watermark and be late, as in
//! Flink. A partition whose bounded read is done never counts again.
//! Without a timeout no partition is ever idle. When every partition is idle
//! the instance is idle, complete up to the largest event time any partition
//! produced: nothing is pending anywhere.
//!
//! A restarted run rebuilds the clocks by reading again (see `replay`);
//! [`PartitionClocks::floor`] is what it must find them at.

use std::time::{Duration, Instant};

use carbonflow_core::Millis;

use crate::EventTimeProgress;

/// The event-time clocks of one instance's partitions, by position in its
/// assignment.
#[derive(Debug)]
pub(crate) struct PartitionClocks {
    partitions: Vec<PartitionClock>,
    idle_timeout: Option<Duration>,
}

#[derive(Clone, Copy, Debug)]
struct PartitionClock {
    /// The largest event time among the partition's rows.
    max_event_time: Option<Millis>,
    /// When the partition last produced a record (or the clocks started).
    last_record: Instant,
    /// The partition's bounded read is done.
    finished: bool,
    /// Rebuilt without a row: holds nothing back until it produces.
    waiting: bool,
}

impl PartitionClocks {
    /// Clocks for `partitions` partitions, none of which has produced yet.
    pub(crate) fn new(partitions: usize, idle_timeout: Option<Duration>, now: Instant) -> Self {
        let clock = PartitionClock {
            max_event_time: None,
            last_record: now,
            finished: false,
            waiting: false,
        };
        PartitionClocks {
            partitions: vec![clock; partitions],
            idle_timeout,
        }
    }

    /// Partition `partition` produced a record at `now`, with `event_time`
    /// when it became a row with one (a dead letter has none, but still
    /// shows the partition is alive).
    pub(crate) fn observe(&mut self, partition: usize, event_time: Option<Millis>, now: Instant) {
        let clock = &mut self.partitions[partition];
        clock.last_record = now;
        clock.waiting = false;
        if let Some(time) = event_time {
            clock.max_event_time = Some(clock.max_event_time.map_or(time, |max| max.max(time)));
        }
    }

    /// Partition `partition` will produce nothing more.
    pub(crate) fn finish(&mut self, partition: usize) {
        self.partitions[partition].finished = true;
    }

    /// The clocks were rebuilt by reading again what a run had read when it
    /// committed: a partition still without a row was not holding progress
    /// back then (see [`Self::floor`]), and holds nothing back until it produces.
    pub(crate) fn rebuilt(&mut self) {
        for clock in self.partitions.iter_mut().filter(|clock| clock.max_event_time.is_none()) {
            clock.waiting = true;
        }
    }

    /// The lowest clock of any partition, idle or not: the progress a restart
    /// that rebuilds the clocks starts from. `None` while a partition without a
    /// row holds progress back (then that restart could not know it did), or
    /// when no partition has a row.
    pub(crate) fn floor(&self, now: Instant) -> Option<Millis> {
        if self.partitions.iter().any(|clock| clock.max_event_time.is_none() && self.is_active(clock, now)) {
            return None;
        }
        self.partitions.iter().filter_map(|clock| clock.max_event_time).min()
    }

    fn is_active(&self, clock: &PartitionClock, now: Instant) -> bool {
        !clock.finished
            && !clock.waiting
            && self
                .idle_timeout
                .is_none_or(|timeout| now.saturating_duration_since(clock.last_record) < timeout)
    }

    /// The instance's progress at `now`: the minimum over the active
    /// partitions, or [`EventTimeProgress::Idle`] with the maximum over all
    /// partitions when none is active.
    pub(crate) fn progress(&self, now: Instant) -> EventTimeProgress {
        let mut active = self.partitions.iter().filter(|clock| self.is_active(clock, now)).peekable();
        if active.peek().is_none() {
            return EventTimeProgress::Idle(self.partitions.iter().filter_map(|clock| clock.max_event_time).max());
        }
        // `None` (nothing yet) sorts below every time, so one silent active
        // partition holds the instance at "nothing known".
        EventTimeProgress::Through(active.map(|clock| clock.max_event_time).min().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn progress_is_the_minimum_over_partitions_not_the_maximum() {
        let start = Instant::now();
        let mut clocks = PartitionClocks::new(2, None, start);
        assert_eq!(clocks.progress(start), EventTimeProgress::Through(None));
        clocks.observe(0, Some(100), start);
        clocks.observe(0, Some(500), start);
        assert_eq!(clocks.progress(start), EventTimeProgress::Through(None), "partition 1 has produced nothing");
        clocks.observe(1, Some(200), start);
        assert_eq!(clocks.progress(start), EventTimeProgress::Through(Some(200)));
        // Out of order within a partition: its clock keeps its largest time.
        clocks.observe(1, Some(150), start);
        assert_eq!(clocks.progress(start), EventTimeProgress::Through(Some(200)));
        clocks.observe(1, Some(900), start);
        assert_eq!(clocks.progress(start), EventTimeProgress::Through(Some(500)));
    }

    #[test]
    fn without_a_timeout_a_silent_partition_holds_progress_forever() {
        let start = Instant::now();
        let mut clocks = PartitionClocks::new(2, None, start);
        clocks.observe(0, Some(100), start);
        clocks.observe(1, Some(50), start);
        clocks.observe(0, Some(10_000), start + 3600 * SECOND);
        assert_eq!(clocks.progress(start + 3600 * SECOND), EventTimeProgress::Through(Some(50)));
    }

    #[test]
    fn an_idle_partition_stops_holding_progress_until_it_produces_again() {
        let start = Instant::now();
        let mut clocks = PartitionClocks::new(2, Some(5 * SECOND), start);
        clocks.observe(1, Some(50), start);
        clocks.observe(0, Some(100), start + 2 * SECOND);
        clocks.observe(0, Some(300), start + 4 * SECOND);
        assert_eq!(clocks.progress(start + 4 * SECOND), EventTimeProgress::Through(Some(50)), "1 is not idle yet");
        // Partition 1 last produced at `start`: idle from start + 5 s.
        clocks.observe(0, Some(400), start + 6 * SECOND);
        assert_eq!(clocks.progress(start + 6 * SECOND), EventTimeProgress::Through(Some(400)));
        // It comes back behind partition 0 and counts again at once.
        clocks.observe(1, Some(60), start + 7 * SECOND);
        assert_eq!(clocks.progress(start + 7 * SECOND), EventTimeProgress::Through(Some(60)));
    }

    #[test]
    fn a_partition_that_never_produces_goes_idle_after_the_timeout_from_the_start() {
        let start = Instant::now();
        let mut clocks = PartitionClocks::new(2, Some(SECOND), start);
        clocks.observe(0, Some(100), start + 2 * SECOND);
        assert_eq!(clocks.progress(start + 2 * SECOND), EventTimeProgress::Through(Some(100)));
    }

    #[test]
    fn dead_letters_keep_a_partition_active_without_moving_its_clock() {
        let start = Instant::now();
        let mut clocks = PartitionClocks::new(2, Some(5 * SECOND), start);
        clocks.observe(0, Some(100), start);
        clocks.observe(1, Some(40), start);
        clocks.observe(1, None, start + 4 * SECOND);
        clocks.observe(0, Some(200), start + 8 * SECOND);
        assert_eq!(clocks.progress(start + 8 * SECOND), EventTimeProgress::Through(Some(40)));
    }

    #[test]
    fn all_idle_is_idle_at_the_largest_time_any_partition_reached() {
        let start = Instant::now();
        let mut clocks = PartitionClocks::new(3, Some(SECOND), start);
        clocks.observe(0, Some(900), start);
        clocks.observe(1, Some(20), start);
        assert_eq!(
            clocks.progress(start),
            EventTimeProgress::Through(None),
            "partition 2 is silent but not idle yet"
        );
        assert_eq!(clocks.progress(start + 2 * SECOND), EventTimeProgress::Idle(Some(900)));
    }

    #[test]
    fn all_idle_or_finished_is_idle() {
        let start = Instant::now();
        let mut clocks = PartitionClocks::new(2, Some(SECOND), start);
        clocks.observe(0, Some(100), start);
        clocks.finish(1);
        assert_eq!(
            clocks.progress(start),
            EventTimeProgress::Through(Some(100)),
            "a finished partition does not count"
        );
        assert_eq!(clocks.progress(start + 2 * SECOND), EventTimeProgress::Idle(Some(100)));
        assert_eq!(PartitionClocks::new(0, None, start).progress(start), EventTimeProgress::Idle(None));
    }

    #[test]
    fn the_floor_is_the_lowest_clock_idle_or_not() {
        let start = Instant::now();
        let mut clocks = PartitionClocks::new(3, Some(SECOND), start);
        clocks.observe(0, Some(900), start);
        clocks.observe(1, Some(20), start);
        assert_eq!(clocks.floor(start), None, "partition 2 has no row and holds progress back");
        let later = start + 2 * SECOND;
        assert_eq!(clocks.progress(later), EventTimeProgress::Idle(Some(900)));
        assert_eq!(clocks.floor(later), Some(20), "an idle partition's clock still counts, a silent one not");
        clocks.finish(1);
        assert_eq!(clocks.floor(later), Some(20), "nor does finishing drop it");
        let without_timeout = PartitionClocks::new(2, None, start);
        assert_eq!(without_timeout.floor(start + 3600 * SECOND), None);
    }

    #[test]
    fn rebuilt_clocks_start_from_the_floor_and_silent_partitions_wait_for_a_row() {
        let start = Instant::now();
        let mut clocks = PartitionClocks::new(3, None, start);
        clocks.observe(0, Some(500), start);
        clocks.observe(1, Some(300), start);
        clocks.rebuilt();
        assert_eq!(clocks.progress(start), EventTimeProgress::Through(Some(300)), "partition 2 waits");
        assert_eq!(clocks.floor(start), Some(300));
        clocks.observe(2, Some(100), start);
        assert_eq!(clocks.progress(start), EventTimeProgress::Through(Some(100)), "and counts once it produces");
    }
}
