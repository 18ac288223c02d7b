//! Session windows that accept retractions: the pure core behind Flink's
//! `SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), gap)`.
//!
//! Within a partition, rows whose event times are less than `gap` apart
//! belong to one session, and a session is the window
//! `[first_ts, last_ts + gap)`. Unlike TUMBLE or HOP, a row's window depends on
//! its neighbours: an inserted row may extend a session or bridge two into
//! one, and a retracted row may shrink a session, split it in two or remove it.
//!
//! [`SessionWindows`] keeps, per partition, the multiset of rows by event time
//! and the current sessions, each with a
//! [`GroupAccumulator`] that is maintained incrementally:
//! extending a session is one accumulator update; merging two feeds the rows
//! of the smaller into the larger's accumulator; a split rebuilds the smaller
//! half and subtracts it from the other. The cost of a change is therefore
//! bounded by the smaller side of a merge or split, never the whole partition.
//!
//! Output is reported as net changes ([`SessionWindows::drain_changes`]): a
//! session whose bounds and results end up as they were at the last drain
//! produces nothing, even if it was merged and split again in between.
//!
//! State is bounded by [`SessionWindows::retire`]: once the watermark is far
//! enough past a session that no on-time row can reach it, its rows and
//! bookkeeping are dropped and its last output stands as final.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem;
use std::ops::{Bound, RangeInclusive};

use carbonflow_core::{Datum, Diff, Millis, Row};

use crate::aggregate::{AggregateSpec, GroupAccumulator};

/// One change of the session output: `(partition, window_start, window_end,
/// aggregate results, diff)` with `diff` `+1` for a new output row and `-1`
/// for one that no longer holds.
pub type SessionChange = (Row, Millis, Millis, Vec<Datum>, Diff);

/// An output row as last reported: `(window_start, window_end, results)`.
type Emitted = (Millis, Millis, Vec<Datum>);

/// Rows at one event time: distinct argument tuples and their multiplicities.
type Bucket = Vec<(Row, Diff)>;

/// One session of a partition; its start is its key in [`Partition::sessions`].
#[derive(Debug)]
struct Session {
    /// Event time of the last row.
    last: Millis,
    aggregates: GroupAccumulator,
    /// What was last reported for this session, to retract when it changes.
    emitted: Option<Emitted>,
}

#[derive(Debug, Default)]
struct Partition {
    /// Every row by event time; a time is present iff it has a row.
    rows: BTreeMap<Millis, Bucket>,
    /// The sessions by first event time. They are disjoint and ordered, so
    /// their ends increase with their starts.
    sessions: BTreeMap<Millis, Session>,
    /// Starts of sessions changed since the last drain (some may be gone).
    dirty: BTreeSet<Millis>,
    /// Reported rows of sessions that were merged, split or emptied away.
    retracted: Vec<Emitted>,
    /// Whether the partition is in [`SessionWindows::touched`].
    touched: bool,
}

/// Session windows over every partition. See the module documentation.
#[derive(Debug)]
pub struct SessionWindows {
    gap: Millis,
    specs: Vec<AggregateSpec>,
    partitions: HashMap<Row, Partition>,
    /// Partitions with changes not yet drained.
    touched: Vec<Row>,
}

impl SessionWindows {
    /// Sessions with this `gap` (in milliseconds, positive) computing `specs`.
    pub fn new(gap: Millis, specs: Vec<AggregateSpec>) -> Self {
        debug_assert!(gap > 0, "the planner rejects non-positive gaps");
        SessionWindows {
            gap,
            specs,
            partitions: HashMap::new(),
            touched: Vec::new(),
        }
    }

    /// Adds `diff` copies of a row of `partition` at event time `ts` whose
    /// aggregate arguments are `args` (one per spec); negative `diff` retracts.
    /// Output changes are buffered until [`SessionWindows::drain_changes`].
    pub fn update(&mut self, partition: &Row, ts: Millis, args: &[Datum], diff: Diff) {
        if diff == 0 {
            return;
        }
        if !self.partitions.contains_key(partition) {
            self.partitions.insert(partition.clone(), Partition::default());
        }
        let part = self.partitions.get_mut(partition).expect("inserted above");
        if !part.touched {
            part.touched = true;
            self.touched.push(partition.clone());
        }
        let present_before = part.rows.contains_key(&ts);
        let bucket = part.rows.entry(ts).or_default();
        match bucket.iter().position(|(row, _)| row.datums() == args) {
            Some(i) => {
                bucket[i].1 += diff;
                if bucket[i].1 == 0 {
                    bucket.swap_remove(i);
                }
            }
            None => bucket.push((Row::new(args.to_vec()), diff)),
        }
        if bucket.is_empty() {
            part.rows.remove(&ts);
            part.remove_time(ts, args, diff, self.gap, &self.specs);
        } else if present_before {
            let (start, session) = part.session_at(ts);
            session.aggregates.update(args, ts, diff);
            part.dirty.insert(start);
        } else {
            part.add_time(ts, args, diff, self.gap, &self.specs);
        }
    }

    /// Appends the net output changes since the last drain, for the
    /// partitions touched since: `-1` for each reported session row that no
    /// longer holds, `+1` for each new one.
    pub fn drain_changes(&mut self, out: &mut Vec<SessionChange>) {
        for key in mem::take(&mut self.touched) {
            let Some(part) = self.partitions.get_mut(&key) else { continue };
            part.touched = false;
            let mut minus = mem::take(&mut part.retracted);
            let mut plus = Vec::new();
            for start in mem::take(&mut part.dirty) {
                let Some(session) = part.sessions.get_mut(&start) else { continue };
                minus.extend(session.emitted.take());
                let mut results = Vec::with_capacity(self.specs.len());
                session.aggregates.results(&mut results);
                let now = (start, session.last.saturating_add(self.gap), results);
                session.emitted = Some(now.clone());
                plus.push(now);
            }
            // A row both retracted and re-added (a merge undone by a split,
            // say) did not change: report neither.
            minus.sort();
            plus.sort();
            let (mut minus, mut plus) = (minus.into_iter().peekable(), plus.into_iter().peekable());
            loop {
                let order = match (minus.peek(), plus.peek()) {
                    (None, None) => break,
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(old), Some(new)) => old.cmp(new),
                };
                let (emitted, diff) = match order {
                    Ordering::Less => (minus.next(), -1),
                    Ordering::Greater => (plus.next(), 1),
                    Ordering::Equal => {
                        minus.next();
                        plus.next();
                        continue;
                    }
                };
                if let Some((start, end, results)) = emitted {
                    out.push((key.clone(), start, end, results, diff));
                }
            }
            if part.sessions.is_empty() {
                self.partitions.remove(&key);
            }
        }
    }

    /// Whether a row at `ts` must be refused (sent to the dead letters) because
    /// it could touch a session that [`SessionWindows::retire`] may have
    /// dropped at this `watermark` and `lateness`: `ts + gap + lateness <= watermark`.
    /// Retractions are rows too and obey the same rule.
    pub fn is_late(&self, ts: Millis, watermark: Millis, lateness: Millis) -> bool {
        ts.saturating_add(self.gap).saturating_add(lateness) <= watermark
    }

    /// Drops the state of every session no on-time row can touch again. Its
    /// last drained output stays final. Partitions with undrained changes are
    /// left for the next call, so call this after
    /// [`SessionWindows::drain_changes`]; watermarks must not go back.
    pub fn retire(&mut self, watermark: Millis, lateness: Millis) {
        // An on-time row has ts > watermark - lateness - gap (see `is_late`).
        // It touches a session only if ts < end (it lies within a gap after
        // the session's last row, or is inside it): its own window
        // [ts, ts + gap) overlaps the session's. So a session with
        // end <= watermark - lateness - gap is out of reach for good.
        let horizon = watermark.saturating_sub(lateness).saturating_sub(self.gap);
        let gap = self.gap;
        self.partitions.retain(|_, part| {
            if part.touched {
                return true;
            }
            while let Some(entry) = part.sessions.first_entry() {
                if entry.get().last.saturating_add(gap) > horizon {
                    break;
                }
                entry.remove();
            }
            match part.sessions.keys().next() {
                Some(&first) => part.rows = part.rows.split_off(&first),
                None => part.rows.clear(),
            }
            !part.sessions.is_empty()
        });
    }

    /// The number of partitions holding state: bounded by what the
    /// watermark has not yet retired.
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }
}

impl Partition {
    /// The session containing the present time `ts`.
    fn session_at(&mut self, ts: Millis) -> (Millis, &mut Session) {
        let (&start, session) = self.sessions.range_mut(..=ts).next_back().expect("every row belongs to a session");
        (start, session)
    }

    /// A row at a time that had none: extend, bridge or open sessions.
    fn add_time(&mut self, ts: Millis, args: &[Datum], diff: Diff, gap: Millis, specs: &[AggregateSpec]) {
        let left = self
            .sessions
            .range(..=ts)
            .next_back()
            .map(|(&start, session)| (start, session.last))
            .filter(|&(_, last)| ts.saturating_sub(last) < gap);
        let right = self
            .sessions
            .range((Bound::Excluded(ts), Bound::Unbounded))
            .next()
            .map(|(&start, _)| start)
            .filter(|&start| start.saturating_sub(ts) < gap);
        let start = match (left, right) {
            (Some((left_start, _)), Some(right_start)) => {
                let mut left = self.sessions.remove(&left_start).expect("found above");
                let mut right = self.sessions.remove(&right_start).expect("found above");
                self.retracted.extend(left.emitted.take());
                self.retracted.extend(right.emitted.take());
                let last = right.last;
                let mut merged = if left.aggregates.row_count() >= right.aggregates.row_count() {
                    feed(&self.rows, right_start..=right.last, &mut left.aggregates, 1);
                    left
                } else {
                    feed(&self.rows, left_start..=left.last, &mut right.aggregates, 1);
                    right
                };
                merged.last = last;
                merged.aggregates.update(args, ts, diff);
                self.sessions.insert(left_start, merged);
                left_start
            }
            (Some((left_start, last)), None) => {
                let session = self.sessions.get_mut(&left_start).expect("found above");
                session.last = last.max(ts);
                session.aggregates.update(args, ts, diff);
                left_start
            }
            (None, Some(right_start)) => {
                let mut session = self.sessions.remove(&right_start).expect("found above");
                session.aggregates.update(args, ts, diff);
                self.sessions.insert(ts, session);
                ts
            }
            (None, None) => {
                let mut aggregates = GroupAccumulator::new(specs);
                aggregates.update(args, ts, diff);
                self.sessions.insert(
                    ts,
                    Session {
                        last: ts,
                        aggregates,
                        emitted: None,
                    },
                );
                ts
            }
        };
        self.dirty.insert(start);
    }

    /// The last row at `ts` is gone: shrink, split or drop its session.
    fn remove_time(&mut self, ts: Millis, args: &[Datum], diff: Diff, gap: Millis, specs: &[AggregateSpec]) {
        let (start, session) = self.session_at(ts);
        session.aggregates.update(args, ts, diff);
        let last = session.last;
        let before = self.rows.range(start..ts).next_back().map(|(&time, _)| time);
        let after = self.rows.range((Bound::Excluded(ts), Bound::Included(last))).next().map(|(&time, _)| time);
        match (before, after) {
            (None, None) => {
                let session = self.sessions.remove(&start).expect("found above");
                self.retracted.extend(session.emitted);
            }
            (Some(before), None) => {
                self.session_at(start).1.last = before;
                self.dirty.insert(start);
            }
            (None, Some(after)) => {
                let session = self.sessions.remove(&start).expect("found above");
                self.sessions.insert(after, session);
                self.dirty.insert(after);
            }
            (Some(before), Some(after)) if after.saturating_sub(before) >= gap => {
                let mut whole = self.sessions.remove(&start).expect("found above");
                self.retracted.extend(whole.emitted.take());
                let (left, right) = (start..=before, after..=last);
                let left_is_smaller = shorter_first(&self.rows, left.clone(), right.clone());
                let smaller = if left_is_smaller { left } else { right };
                let mut rebuilt = GroupAccumulator::new(specs);
                feed(&self.rows, smaller.clone(), &mut rebuilt, 1);
                feed(&self.rows, smaller, &mut whole.aggregates, -1);
                let (left_aggregates, right_aggregates) = if left_is_smaller {
                    (rebuilt, whole.aggregates)
                } else {
                    (whole.aggregates, rebuilt)
                };
                self.sessions.insert(
                    start,
                    Session {
                        last: before,
                        aggregates: left_aggregates,
                        emitted: None,
                    },
                );
                self.sessions.insert(
                    after,
                    Session {
                        last,
                        aggregates: right_aggregates,
                        emitted: None,
                    },
                );
                self.dirty.insert(start);
                self.dirty.insert(after);
            }
            (Some(_), Some(_)) => {
                self.dirty.insert(start);
            }
        }
    }
}

/// Feeds the rows with event times in `times` into `aggregates`, each with
/// its multiplicity times `sign`.
fn feed(rows: &BTreeMap<Millis, Bucket>, times: RangeInclusive<Millis>, aggregates: &mut GroupAccumulator, sign: Diff) {
    for (&ts, bucket) in rows.range(times) {
        for (args, count) in bucket {
            aggregates.update(args, ts, count * sign);
        }
    }
}

/// Whether `left` holds no more event times than `right`, in time
/// proportional to the smaller of the two.
fn shorter_first(rows: &BTreeMap<Millis, Bucket>, left: RangeInclusive<Millis>, right: RangeInclusive<Millis>) -> bool {
    let (mut left, mut right) = (rows.range(left), rows.range(right));
    loop {
        match (left.next(), right.next()) {
            (None, _) => return true,
            (Some(_), None) => return false,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::AggregateFunction;
    use carbonflow_core::DataType;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const GAP: Millis = 5;

    fn specs() -> Vec<AggregateSpec> {
        vec![
            AggregateSpec::new(AggregateFunction::CountStar, DataType::Int),
            AggregateSpec::new(AggregateFunction::Sum, DataType::Int),
            AggregateSpec::new(AggregateFunction::Max, DataType::Int),
            AggregateSpec::new(AggregateFunction::FirstValue, DataType::Int),
        ]
    }

    fn args(value: i64) -> Vec<Datum> {
        vec![Datum::Null, Datum::Int(value), Datum::Int(value), Datum::Int(value)]
    }

    fn key(partition: u8) -> Row {
        Row::new(vec![Datum::Int(partition.into())])
    }

    type Output = (Row, Millis, Millis, Vec<Datum>);

    /// Sessions and their aggregates computed from scratch from the surviving
    /// rows `(partition, ts, value)`.
    fn model(rows: &[(u8, Millis, i64)]) -> HashSet<Output> {
        let mut by_partition: BTreeMap<u8, Vec<(Millis, i64)>> = BTreeMap::new();
        for &(partition, ts, value) in rows {
            by_partition.entry(partition).or_default().push((ts, value));
        }
        let mut sessions = HashSet::new();
        for (partition, mut rows) in by_partition {
            rows.sort();
            let mut current: Vec<(Millis, i64)> = Vec::new();
            let mut close = |current: &mut Vec<(Millis, i64)>| {
                let mut aggregates = GroupAccumulator::new(&specs());
                for &(ts, value) in current.iter() {
                    aggregates.update(&args(value), ts, 1);
                }
                let mut results = Vec::new();
                aggregates.results(&mut results);
                sessions.insert((key(partition), current[0].0, current[current.len() - 1].0 + GAP, results));
                current.clear();
            };
            for row in rows {
                if current.last().is_some_and(|&(last, _)| row.0 - last >= GAP) {
                    close(&mut current);
                }
                current.push(row);
            }
            close(&mut current);
        }
        sessions
    }

    /// Applies drained changes to `view`, checking that one drain never
    /// reports a row twice (which would be an unchanged session reported).
    fn apply(view: &mut HashMap<Output, Diff>, changes: Vec<SessionChange>) -> Result<(), TestCaseError> {
        let mut seen = HashSet::new();
        for (partition, start, end, results, diff) in changes {
            let row = (partition, start, end, results);
            prop_assert!(seen.insert(row.clone()), "reported twice in one drain: {:?}", row);
            let count = view.entry(row.clone()).or_insert(0);
            *count += diff;
            if *count == 0 {
                view.remove(&row);
            }
        }
        Ok(())
    }

    fn check_view(view: &HashMap<Output, Diff>, rows: &[(u8, Millis, i64)]) -> Result<(), TestCaseError> {
        prop_assert!(view.values().all(|&count| count == 1), "{:?}", view);
        let got: HashSet<Output> = view.keys().cloned().collect();
        prop_assert_eq!(got, model(rows));
        Ok(())
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert {
            partition: u8,
            ts: Millis,
            value: i64,
            drain: bool,
        },
        Retract {
            index: usize,
            drain: bool,
        },
        /// Moves the watermark forward (ignored by the test without retirement).
        Advance(Millis),
    }

    fn ops(max_time: Millis) -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            6 => (0u8..3, 0..max_time, -3i64..10, any::<bool>()).prop_map(|(partition, ts, value, drain)| Op::Insert { partition, ts, value, drain }),
            3 => (any::<usize>(), any::<bool>()).prop_map(|(index, drain)| Op::Retract { index, drain }),
            1 => (0..GAP * 3).prop_map(Op::Advance),
        ];
        prop::collection::vec(op, 0..80)
    }

    proptest! {
        #[test]
        fn oracle_sessions_with_retractions(ops in ops(40)) {
            let mut windows = SessionWindows::new(GAP, specs());
            let mut live: Vec<(u8, Millis, i64)> = Vec::new();
            let mut view = HashMap::new();
            let mut out = Vec::new();
            for op in ops {
                let drain = match op {
                    Op::Insert { partition, ts, value, drain } => {
                        live.push((partition, ts, value));
                        windows.update(&key(partition), ts, &args(value), 1);
                        drain
                    }
                    Op::Retract { index, drain } if !live.is_empty() => {
                        let (partition, ts, value) = live.swap_remove(index % live.len());
                        windows.update(&key(partition), ts, &args(value), -1);
                        drain
                    }
                    _ => false,
                };
                if drain {
                    windows.drain_changes(&mut out);
                    apply(&mut view, mem::take(&mut out))?;
                    check_view(&view, &live)?;
                    windows.drain_changes(&mut out);
                    prop_assert!(out.is_empty(), "a drain without updates reported {:?}", out);
                }
            }
            windows.drain_changes(&mut out);
            apply(&mut view, mem::take(&mut out))?;
            check_view(&view, &live)?;
        }

        /// With late rows refused, retiring sessions never changes the
        /// answer: the final output equals the model over all accepted rows,
        /// and all state goes once the watermark passes everything.
        #[test]
        fn oracle_sessions_with_retirement(ops in ops(60), lateness in 0..GAP * 2) {
            let mut windows = SessionWindows::new(GAP, specs());
            let mut live: Vec<(u8, Millis, i64)> = Vec::new();
            let mut view = HashMap::new();
            let mut out = Vec::new();
            let mut watermark = Millis::MIN;
            for op in ops {
                match op {
                    Op::Insert { partition, ts, value, .. } if !windows.is_late(ts, watermark, lateness) => {
                        live.push((partition, ts, value));
                        windows.update(&key(partition), ts, &args(value), 1);
                    }
                    Op::Retract { index, .. } if !live.is_empty() => {
                        let (partition, ts, value) = live[index % live.len()];
                        if !windows.is_late(ts, watermark, lateness) {
                            live.swap_remove(index % live.len());
                            windows.update(&key(partition), ts, &args(value), -1);
                        }
                    }
                    Op::Advance(by) => watermark = watermark.max(0) + by,
                    _ => {}
                }
                windows.drain_changes(&mut out);
                apply(&mut view, mem::take(&mut out))?;
                windows.retire(watermark, lateness);
                check_view(&view, &live)?;
            }
            windows.retire(Millis::MAX, lateness);
            prop_assert_eq!(windows.partitions(), 0);
        }
    }

    #[test]
    fn bridging_row_merges_and_its_retraction_splits() {
        let mut windows = SessionWindows::new(10, specs());
        let mut out = Vec::new();
        let k = key(0);
        windows.update(&k, 0, &args(1), 1);
        windows.update(&k, 12, &args(2), 1);
        windows.drain_changes(&mut out);
        let starts: Vec<_> = out.iter().map(|c| (c.1, c.2, c.4)).collect();
        assert_eq!(starts, vec![(0, 10, 1), (12, 22, 1)]);
        out.clear();
        windows.update(&k, 6, &args(4), 1);
        windows.drain_changes(&mut out);
        let changes: Vec<_> = out.iter().map(|c| (c.1, c.2, c.3[1].clone(), c.4)).collect();
        assert_eq!(
            changes,
            vec![(0, 10, Datum::Int(1), -1), (0, 22, Datum::Int(7), 1), (12, 22, Datum::Int(2), -1)]
        );
        out.clear();
        windows.update(&k, 6, &args(4), -1);
        windows.drain_changes(&mut out);
        let changes: Vec<_> = out.iter().map(|c| (c.1, c.2, c.4)).collect();
        assert_eq!(changes, vec![(0, 10, 1), (0, 22, -1), (12, 22, 1)]);
    }

    #[test]
    fn retire_drops_old_sessions_and_is_late_refuses_their_rows() {
        let mut windows = SessionWindows::new(10, specs());
        let mut out = Vec::new();
        windows.update(&key(0), 0, &args(1), 1);
        windows.update(&key(1), 100, &args(1), 1);
        windows.drain_changes(&mut out);
        // Session [0, 10): a row at ts touches it iff ts < 10. With lateness 5
        // all such rows are late once watermark >= 9 + 10 + 5 = 24; the
        // session goes when its end is at most watermark - 5 - 10.
        windows.retire(23, 5);
        assert_eq!(windows.partitions(), 2);
        assert!(!windows.is_late(9, 23, 5));
        windows.retire(25, 5);
        assert_eq!(windows.partitions(), 1);
        assert!(windows.is_late(9, 25, 5));
        assert!(!windows.is_late(11, 25, 5));
    }
}
