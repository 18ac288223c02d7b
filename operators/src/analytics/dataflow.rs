//! `Over`: [`OverPartition`]s driven by epochs and the watermark, with
//! retractions.
//!
//! Rows wait in a per-partition buffer until the watermark passes their event
//! time (Flink emits OVER results then too); they then join the partition's
//! ordered rows, and each is emitted once, with its results. A row that
//! arrives or is retracted after the watermark passed its event time, but no
//! more than the allowed lateness behind it (a late revision), changes the
//! ordered rows in place: the results it reaches are recomputed, and those
//! that differ are retracted and emitted anew. A change further behind is
//! late and goes to the dead-letter output, as for windows and
//! `MATCH_RECOGNIZE`.
//!
//! State is bounded by the lateness: no row before `watermark - allowed
//! lateness` changes any more, so a partition keeps only what the frames of
//! the rows after that point read (the `n` rows or the `d` of event time of
//! the widest frame, twice that for `CORR_SHIFT`, the weeks of a seasonal
//! baseline) and, for the recurrent functions, their state just before it.

use std::hash::{Hash, Hasher};

use carbonflow_core::{Diff, Epoch, Millis, Row};
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::{OverCall, OverPartition};
use crate::dataflow::{CoreContext, EventTimeOrder, TimedCore, route_hash};

/// The OVER operator core. Input: `(partition hash, row)`, the hash being
/// [`partition_hash`] of the row's partition columns (the worker routes by it
/// too); output: the row followed by one result per call. A row's partition
/// is found by that hash and a comparison of its columns, so no key is built
/// or hashed again per row.
pub struct Over {
    order: EventTimeOrder,
    calls: Vec<OverCall>,
    /// The `PARTITION BY` columns of the input rows.
    partition_columns: Vec<usize>,
    partitions: HashTable<Partition>,
    /// The keys of `partitions` with their hashes, in the order an epoch's
    /// end visits them: sorted (again, after a key was added). Results thus
    /// leave partition by partition in key order; where the keys lead the rows
    /// (`PARTITION BY node` over rows starting with `node`), a sink's
    /// consolidation of an epoch meets rows already sorted, which its sort
    /// finishes in one pass.
    keys: Vec<(Row, u64)>,
    keys_sorted: bool,
}

/// The hash a row is routed and found by: that of its values in `columns`.
pub fn partition_hash(row: &Row, columns: &[usize]) -> u64 {
    struct Columns<'a>(&'a Row, &'a [usize]);
    impl Hash for Columns<'_> {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.1.iter().for_each(|&column| self.0.get(column).hash(state));
        }
    }
    route_hash(&Columns(row, columns))
}

struct Partition {
    /// The partition's values of the `PARTITION BY` columns, and their [`partition_hash`].
    key: Row,
    hash: u64,
    /// Changes to rows the watermark has not passed yet, in arrival order
    /// (a few per partition: those of the watermark delay). A plain vector,
    /// sorted and consolidated when the watermark passes some of them, costs
    /// less per tick than keeping them in an ordered map.
    pending: Vec<(Millis, Row, Diff)>,
    released: OverPartition,
}

impl Partition {
    /// Whether `row` belongs here: its `columns` hold the key.
    fn holds(&self, row: &Row, columns: &[usize]) -> bool {
        self.key.iter().zip(columns).all(|(value, &column)| row.get(column) == value)
    }

    /// Moves the changes the watermark has passed into the released rows, in
    /// (event time, row) order, each row's changes summed first.
    fn release(&mut self, watermark: Millis) {
        if watermark == Millis::MIN || self.pending.iter().all(|(ts, ..)| *ts > watermark) {
            return;
        }
        self.pending.sort_unstable_by(|(t1, r1, _), (t2, r2, _)| t1.cmp(t2).then_with(|| r1.cmp(r2)));
        let passed = self.pending.partition_point(|(ts, ..)| *ts <= watermark);
        let mut changes = self.pending.drain(..passed).peekable();
        while let Some((ts, row, mut count)) = changes.next() {
            while let Some((_, _, diff)) = changes.next_if(|(t, r, _)| *t == ts && *r == row) {
                count += diff;
            }
            // A net retraction of a row that never arrived has nothing to retract.
            self.released.insert(ts, row, count.max(0) as usize);
        }
    }
}

impl Over {
    /// A core computing `calls` over rows partitioned by `partition_columns`
    /// whose event time is at `time_column`, accepting changes up to
    /// `allowed_lateness` behind the watermark.
    pub fn new(name: impl Into<String>, calls: Vec<OverCall>, partition_columns: Vec<usize>, time_column: usize, allowed_lateness: Millis) -> Self {
        Over {
            order: EventTimeOrder {
                origin: name.into(),
                time_column,
                allowed_lateness,
            },
            calls,
            partition_columns,
            partitions: HashTable::new(),
            keys: Vec::new(),
            keys_sorted: true,
        }
    }

    /// Rows held over all partitions, waiting or released.
    pub fn held_rows(&self) -> usize {
        self.partitions.iter().map(|p| p.released.len() + p.pending.len()).sum()
    }
}

impl TimedCore for Over {
    type Input = (u64, Row);

    fn on_update(&mut self, (hash, row): (u64, Row), diff: Diff, context: &mut CoreContext) {
        let Some(ts) = self.order.admit(&row, context.watermark, context.dead_letters) else {
            return;
        };
        let columns = &self.partition_columns;
        let partition = match self.partitions.entry(hash, |p| p.holds(&row, columns), |p| p.hash) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let key = row.project(columns);
                self.keys.push((key.clone(), hash));
                self.keys_sorted = false;
                entry
                    .insert(Partition {
                        key,
                        hash,
                        pending: Vec::new(),
                        released: OverPartition::new(&self.calls),
                    })
                    .into_mut()
            }
        };
        let released = context.watermark != Millis::MIN && ts <= context.watermark;
        if !released {
            partition.pending.push((ts, row, diff));
        } else if diff > 0 {
            partition.released.insert(ts, row, diff as usize);
        } else {
            partition.released.remove(ts, &row, diff.unsigned_abs() as usize, context.output);
        }
    }

    fn on_epoch_end(&mut self, _epoch: Epoch, context: &mut CoreContext) {
        let watermark = context.watermark;
        let stable = self.order.late_before(watermark);
        if !self.keys_sorted {
            self.keys.sort_unstable();
            self.keys_sorted = true;
        }
        for (key, hash) in &self.keys {
            let partition = self.partitions.find_mut(*hash, |p| p.key == *key).expect("every key has its partition");
            partition.release(watermark);
            partition.released.recompute(context.output);
            if let Some(stable) = stable {
                partition.released.trim(stable);
            }
        }
        let held = self.partitions.len();
        self.partitions.retain(|p| !p.released.is_empty() || !p.pending.is_empty());
        if self.partitions.len() < held {
            self.keys.retain(|(key, hash)| self.partitions.find(*hash, |p| p.key == *key).is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::{Decay, Frame, OverFunction};
    use carbonflow_core::{Datum, DeadLetterReason};

    const MINUTE: Millis = 60_000;

    /// Rows are `(price, ts, node)`, partitioned by node.
    const NODE: usize = 2;

    fn tick(minute: i64, price: f64) -> (u64, Row) {
        let row = Row::new(vec![Datum::float(price), Datum::Timestamp(minute * MINUTE), Datum::string("N")]);
        (partition_hash(&row, &[NODE]), row)
    }

    fn core(calls: Vec<OverCall>) -> Over {
        Over::new("test", calls, vec![NODE], 1, 0)
    }

    /// Feeds one tick per minute, the watermark one minute behind, and
    /// returns the most rows held at any time and the consolidated output count.
    fn drive(core: &mut Over, minutes: i64) -> (usize, usize) {
        let (mut output, mut dead) = (Vec::new(), Vec::new());
        let mut most = 0;
        for minute in 0..minutes {
            let watermark = if minute == 0 { Millis::MIN } else { (minute - 1) * MINUTE };
            let mut context = CoreContext {
                watermark,
                output: &mut output,
                dead_letters: &mut dead,
            };
            core.on_update(tick(minute, 40.0 + (minute % 7) as f64), 1, &mut context);
            core.on_epoch_end(minute as u64, &mut context);
            most = most.max(core.held_rows());
        }
        assert!(dead.is_empty());
        (most, output.iter().map(|(_, diff)| *diff).sum::<i64>() as usize)
    }

    #[test]
    fn state_is_bounded_by_the_widest_frame() {
        let calls = vec![
            OverCall {
                function: OverFunction::ZScore,
                args: vec![0],
                frame: Frame::Rows(19),
            },
            OverCall {
                function: OverFunction::EwmaZScore(Decay::Rows(10.0)),
                args: vec![0],
                frame: Frame::Unbounded,
            },
        ];
        let (most, emitted) = drive(&mut core(calls), 1_000);
        // 999 rows released (the last one waits for the watermark), each emitted once.
        assert_eq!(emitted, 999);
        // The 19 rows before the first changeable one, that row, and the one pending.
        assert!(most <= 21, "held {most} rows");
        assert!(most >= 20, "held {most} rows: fewer cannot serve a 20-row frame");
    }

    #[test]
    fn a_range_frame_keeps_its_span_of_event_time() {
        let calls = vec![OverCall {
            function: OverFunction::Corr,
            args: vec![0, 0],
            frame: Frame::Range(30 * MINUTE),
        }];
        let (most, _) = drive(&mut core(calls), 500);
        assert!((31..=33).contains(&most), "held {most} rows for a 30-minute frame of minute ticks");
    }

    #[test]
    fn a_change_behind_the_allowed_lateness_is_dead_lettered() {
        let mut core = core(vec![OverCall {
            function: OverFunction::ZScore,
            args: vec![0],
            frame: Frame::Rows(3),
        }]);
        let (mut output, mut dead) = (Vec::new(), Vec::new());
        let mut context = CoreContext {
            watermark: 30 * MINUTE,
            output: &mut output,
            dead_letters: &mut dead,
        };
        core.on_update(tick(29, 40.0), 1, &mut context);
        core.on_update(tick(30, 40.0), 1, &mut context);
        core.on_epoch_end(0, &mut context);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason, DeadLetterReason::Late);
        assert_eq!(output.len(), 1, "the row at the watermark is emitted");
    }
}
