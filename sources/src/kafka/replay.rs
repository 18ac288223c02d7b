//! Where a restarted run must start reading each partition again, so that
//! the operators downstream get their state back ([`Retention`]).
//!
//! The group's committed offsets (`properties.group.id`) stay where they
//! always were: after the last row every output absorbed, so lag tools read
//! them as usual. The replay start of each partition is committed beside
//! them, to the group `<group.id>.replay` ([`replay_group`]):
//!
//! * [`Retention::Everything`]: the first offset this group ever read, for
//!   good: a restart reads the whole input again.
//! * [`Retention::Span`]: the first offset of the oldest epoch that may hold
//!   a row within the span of the instance's *floor*: the lowest event time
//!   any of its partitions had reached (each partition's largest event time,
//!   its clock) when that epoch was sealed. A restart first reads from the
//!   replay start to the group's committed offset without handing anything
//!   out, to rebuild every partition's clock, so the watermark is back where
//!   it was before any re-read row reaches an operator (`docs/recovery.md`).
//!
//! Memory stays bounded: per partition, a queue of the sealed epochs in
//! which it produced rows, each with the first offset and the largest event
//! time of its rows, never one entry per row. Epochs whose rows are all older
//! than the span leave the queue once absorbed; when a queue is full, pairs
//! of adjacent entries merge (the replay then starts earlier, never later).

use std::collections::VecDeque;

use carbonflow_core::{Epoch, Millis};

use crate::Retention;

/// The group the replay starts of `group` are committed to.
pub(crate) fn replay_group(group: &str) -> String {
    format!("{group}.replay")
}

/// How many entries a partition's queue holds before adjacent ones merge.
const QUEUE_CAPACITY: usize = 512;

/// One instance's record of what a restart must read again.
#[derive(Debug)]
pub(crate) enum ReplayLog {
    /// [`Retention::Everything`]: each partition's first offset.
    Everything(Vec<Option<i64>>),
    /// [`Retention::Span`].
    Span(SpanLog),
}

/// The epochs of each partition that a restart may still need.
#[derive(Debug)]
pub(crate) struct SpanLog {
    span: Millis,
    partitions: Vec<PartitionLog>,
    /// The instance's floor at each sealed epoch not yet absorbed, oldest first.
    floors: VecDeque<(Epoch, Option<Millis>)>,
    /// The floor at the latest absorbed epoch; `None` before the first.
    absorbed_floor: Option<Option<Millis>>,
}

#[derive(Debug, Default)]
struct PartitionLog {
    /// Sealed epochs that produced rows, oldest first.
    sealed: VecDeque<Entry>,
    /// The rows of the epoch being read, once it produced one.
    open: Option<Entry>,
}

/// The rows a partition produced in one epoch (or several merged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// The (last) epoch.
    epoch: Epoch,
    /// The offset of the first message with a row in it.
    first_offset: i64,
    /// The largest event time among its rows.
    max_event_time: Option<Millis>,
}

impl ReplayLog {
    /// The log of an instance reading `partitions` partitions with
    /// `retention`, where earlier runs left the replay starts `starts`
    /// (`None` for a partition without one); `None` when a restart needs
    /// nothing read again.
    pub(crate) fn new(retention: Retention, starts: Vec<Option<i64>>) -> Option<ReplayLog> {
        match retention {
            Retention::Nothing => None,
            Retention::Everything => Some(ReplayLog::Everything(starts)),
            Retention::Span(span) => Some(ReplayLog::Span(SpanLog {
                span,
                partitions: starts.iter().map(|_| PartitionLog::default()).collect(),
                floors: VecDeque::new(),
                absorbed_floor: None,
            })),
        }
    }

    /// A row of the message at `offset` of partition `slot` went out, with `event_time`.
    pub(crate) fn record(&mut self, slot: usize, offset: i64, event_time: Option<Millis>) {
        match self {
            ReplayLog::Everything(firsts) => {
                firsts[slot].get_or_insert(offset);
            }
            ReplayLog::Span(log) => {
                let entry = log.partitions[slot].open.get_or_insert(Entry {
                    epoch: 0,
                    first_offset: offset,
                    max_event_time: None,
                });
                entry.max_event_time = entry.max_event_time.max(event_time);
            }
        }
    }

    /// Every row recorded so far belongs to `epoch`, sealed when the
    /// instance's floor was `floor` (`None`: a partition without rows was
    /// holding the watermark, so its position cannot be rebuilt).
    pub(crate) fn seal(&mut self, epoch: Epoch, floor: Option<Millis>) {
        let ReplayLog::Span(log) = self else { return };
        for partition in &mut log.partitions {
            if let Some(mut entry) = partition.open.take() {
                entry.epoch = epoch;
                if partition.sealed.len() == QUEUE_CAPACITY {
                    partition.merge_pairs();
                }
                partition.sealed.push_back(entry);
            }
        }
        log.floors.push_back((epoch, floor));
    }

    /// The replay starts once every output has absorbed `absorbed`, given
    /// the offsets read by then (`heads`): per partition, where a restart
    /// must read from (`None` where nothing was read). `None` when the
    /// instance's position at `absorbed` cannot be rebuilt, so that nothing
    /// should be committed for it.
    pub(crate) fn starts(&mut self, absorbed: Epoch, heads: &[Option<i64>]) -> Option<Vec<Option<i64>>> {
        match self {
            ReplayLog::Everything(firsts) => Some(firsts.clone()),
            ReplayLog::Span(log) => {
                while let Some(&(epoch, floor)) = log.floors.front()
                    && epoch <= absorbed
                {
                    log.absorbed_floor = Some(floor);
                    log.floors.pop_front();
                }
                let floor = log.absorbed_floor??;
                let cutoff = floor.saturating_sub(log.span);
                let starts = log
                    .partitions
                    .iter_mut()
                    .zip(heads)
                    .map(|(partition, head)| {
                        while partition
                            .sealed
                            .front()
                            .is_some_and(|entry| entry.epoch <= absorbed && entry.max_event_time < Some(cutoff))
                        {
                            partition.sealed.pop_front();
                        }
                        let oldest = partition.sealed.front().map(|entry| entry.first_offset);
                        match (oldest, head) {
                            (Some(oldest), Some(head)) => Some(oldest.min(*head)),
                            (oldest, head) => oldest.or(*head),
                        }
                    })
                    .collect();
                Some(starts)
            }
        }
    }
}

impl PartitionLog {
    /// Halves the queue by merging adjacent entries: the later epoch, the
    /// earlier first offset, the larger event time.
    fn merge_pairs(&mut self) {
        let entries: Vec<Entry> = self.sealed.drain(..).collect();
        self.sealed = entries
            .chunks(2)
            .map(|pair| {
                let last = pair[pair.len() - 1];
                Entry {
                    epoch: last.epoch,
                    first_offset: pair[0].first_offset,
                    max_event_time: pair[0].max_event_time.max(last.max_event_time),
                }
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(millis: Millis, partitions: usize) -> ReplayLog {
        ReplayLog::new(Retention::Span(millis), vec![None; partitions]).expect("a span keeps a log")
    }

    /// Records `rows` (partition, offset, event time) in `epoch`, sealed with `floor`.
    fn epoch(log: &mut ReplayLog, epoch: Epoch, rows: &[(usize, i64, Millis)], floor: Option<Millis>) {
        for &(slot, offset, time) in rows {
            log.record(slot, offset, Some(time));
        }
        log.seal(epoch, floor);
    }

    #[test]
    fn nothing_keeps_no_log_and_everything_keeps_the_first_offsets() {
        assert!(ReplayLog::new(Retention::Nothing, vec![None]).is_none());
        let mut log = ReplayLog::new(Retention::Everything, vec![Some(7), None]).unwrap();
        log.record(0, 12, Some(5));
        log.record(1, 40, Some(5));
        log.record(1, 41, Some(9));
        log.seal(0, Some(5));
        assert_eq!(
            log.starts(0, &[Some(13), Some(42)]),
            Some(vec![Some(7), Some(40)]),
            "an earlier run's start stands"
        );
    }

    #[test]
    fn the_start_is_the_oldest_absorbed_epoch_that_may_hold_a_row_within_the_span() {
        let mut log = span(100, 1);
        // Epoch 0: offsets 0..2 at times up to 50; epoch 1: 3..4 up to 160; epoch 2: 5 at 300.
        epoch(&mut log, 0, &[(0, 0, 10), (0, 1, 50)], Some(50));
        epoch(&mut log, 1, &[(0, 3, 120), (0, 4, 160)], Some(160));
        epoch(&mut log, 2, &[(0, 5, 300)], Some(300));
        assert_eq!(log.starts(0, &[Some(2)]), Some(vec![Some(0)]), "floor 50: everything from 0 is within 100");
        assert_eq!(
            log.starts(1, &[Some(5)]),
            Some(vec![Some(3)]),
            "floor 160, cutoff 60: epoch 0 (up to 50) is older"
        );
        assert_eq!(
            log.starts(2, &[Some(6)]),
            Some(vec![Some(5)]),
            "floor 300, cutoff 200: epoch 1 (up to 160) is older"
        );
    }

    #[test]
    fn an_out_of_order_epoch_keeps_everything_after_it() {
        let mut log = span(100, 1);
        epoch(&mut log, 0, &[(0, 0, 500)], Some(500));
        epoch(&mut log, 1, &[(0, 1, 10)], Some(500));
        epoch(&mut log, 2, &[(0, 2, 20)], Some(550));
        // Cutoff 450: epoch 0 may hold a needed row, so the later, older epochs stay too.
        assert_eq!(log.starts(2, &[Some(3)]), Some(vec![Some(0)]));
    }

    #[test]
    fn epochs_not_absorbed_are_kept_and_the_head_bounds_the_start() {
        let mut log = span(10, 2);
        epoch(&mut log, 0, &[(0, 0, 5)], Some(5));
        epoch(&mut log, 1, &[(0, 1, 100)], Some(100));
        // Only epoch 0 is absorbed: its floor is 5, nothing is old enough.
        assert_eq!(log.starts(0, &[Some(1), None]), Some(vec![Some(0), None]), "partition 1 read nothing");
        // Epoch 1 absorbed: cutoff 90 drops epoch 0; epoch 1 starts at 1.
        assert_eq!(log.starts(1, &[Some(2), None]), Some(vec![Some(1), None]));
        log.seal(2, Some(100));
        assert_eq!(log.starts(2, &[Some(2), None]), Some(vec![Some(1), None]), "still within the span");
        epoch(&mut log, 3, &[(0, 2, 500)], Some(500));
        assert_eq!(log.starts(3, &[Some(3), None]), Some(vec![Some(2), None]));
        log.seal(4, Some(1000));
        assert_eq!(
            log.starts(4, &[Some(3), None]),
            Some(vec![Some(3), None]),
            "every row is older than the span: the start is the head"
        );
    }

    #[test]
    fn an_epoch_sealed_without_a_floor_is_not_committed() {
        let mut log = span(10, 1);
        epoch(&mut log, 0, &[(0, 0, 5)], None);
        assert_eq!(log.starts(0, &[Some(1)]), None);
        log.seal(1, Some(100));
        assert_eq!(log.starts(1, &[Some(1)]), Some(vec![Some(1)]));
    }

    #[test]
    fn a_full_queue_merges_entries_and_never_starts_later_than_the_exact_answer() {
        let mut log = span(1_000, 1);
        let epochs = QUEUE_CAPACITY as u64 * 3;
        for number in 0..epochs {
            let offset = number as i64;
            epoch(&mut log, number, &[(0, offset, offset * 10)], Some(offset * 10));
        }
        let ReplayLog::Span(inner) = &log else { unreachable!() };
        assert!(inner.partitions[0].sealed.len() <= QUEUE_CAPACITY);
        let last = epochs as i64 - 1;
        let start = log.starts(epochs - 1, &[Some(last + 1)]).unwrap()[0].unwrap();
        // Exactly: the first row at or after (last * 10 - 1000) / 10 = last - 100.
        assert!(start <= last - 100, "{start}");
        assert!(start > last - 400, "merging costs at most a few entries' worth: {start}");
    }
}
