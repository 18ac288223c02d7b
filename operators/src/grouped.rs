//! Grouped aggregation over window table functions (and plain GROUP BY): the
//! pure core behind `WindowAggregate` and `Aggregate`.
//!
//! Each group (its key row, which for a windowed aggregation includes
//! `window_start` and `window_end`) holds a [`GroupAccumulator`]. Changes are
//! applied as they come, retractions included; at the end of an epoch every
//! group that changed emits the difference between its previous output row
//! and its new one (`EMIT CHANGES`), or, with `EMIT FINAL`, waits until the
//! watermark says its window is complete.
//!
//! Time follows Flink: a window `[start, end)` is complete when the watermark
//! reaches `end - 1`, and is retired (its state dropped, its output kept)
//! once the watermark reaches `end - 1 + allowed_lateness`. A change for a
//! retired window is late: it goes to the dead-letter output instead of
//! reopening a window whose result was already published as final.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;

use foldhash::HashMap;

use carbonflow_core::{Datum, DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row};

use crate::aggregate::{AggregateSpec, GroupAccumulator};
use crate::dataflow::{CoreContext, TimedCore};

/// How a windowed aggregation emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitMode {
    /// Every change to a group is emitted at the end of its epoch.
    Changes,
    /// A window's result is emitted once complete, then only corrected by late rows within the allowed lateness.
    Final,
}

/// Where the window bounds are in the group key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowKey {
    /// Position of `window_end` in the key row.
    pub end: usize,
    /// How long after completion late rows still correct the window.
    pub allowed_lateness: Millis,
    /// When results are emitted.
    pub emit: EmitMode,
}

struct Group {
    accumulator: GroupAccumulator,
    /// The output row currently published for this group, if any.
    published: Option<Row>,
    /// Changed since it was last published.
    dirty: bool,
}

/// The grouped aggregation core. Input: `(key, args)` where `args` holds one
/// datum per aggregate followed by the row's event time (a TIMESTAMP, or NULL).
///
/// A key row is cloned only when its group is created and when the group
/// first changes in an epoch, never per update.
pub struct GroupedAggregate {
    name: String,
    specs: Vec<AggregateSpec>,
    window: Option<WindowKey>,
    groups: HashMap<Row, Group>,
    /// Groups to publish at the end of this epoch.
    to_publish: Vec<Row>,
    /// Groups by window end, for completion (`EMIT FINAL`) and retirement.
    by_window_end: BTreeMap<Millis, Vec<Row>>,
    /// The watermark up to which window completions were handled.
    completed_through: Millis,
    scratch: Vec<Datum>,
}

impl GroupedAggregate {
    /// A core for these aggregates; `window` when grouped by a window TVF's bounds.
    pub fn new(name: impl Into<String>, specs: Vec<AggregateSpec>, window: Option<WindowKey>) -> Self {
        GroupedAggregate {
            name: name.into(),
            specs,
            window,
            groups: HashMap::default(),
            to_publish: Vec::new(),
            by_window_end: BTreeMap::new(),
            completed_through: Millis::MIN,
            scratch: Vec::new(),
        }
    }

    /// How many groups hold state (bounded by the watermark for windows).
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    fn window_end(&self, key: &Row) -> Option<Millis> {
        self.window.and_then(|w| key.get(w.end).as_timestamp())
    }

    fn is_retired(&self, window_end: Millis, watermark: Millis) -> bool {
        let lateness = self.window.map_or(0, |w| w.allowed_lateness);
        watermark != Millis::MIN && watermark >= (window_end - 1).saturating_add(lateness)
    }

    fn is_complete(window_end: Millis, watermark: Millis) -> bool {
        watermark != Millis::MIN && watermark >= window_end - 1
    }

    fn final_mode(&self) -> bool {
        self.window.is_some_and(|w| w.emit == EmitMode::Final)
    }

    /// Applies one change. A late row changes nothing and its key comes back.
    pub fn update(&mut self, key: Row, args: &[Datum], diff: Diff, watermark: Millis) -> Result<(), Row> {
        let window_end = self.window_end(&key);
        if let Some(end) = window_end
            && self.is_retired(end, watermark)
        {
            return Err(key);
        }
        // With EMIT FINAL an incomplete window is published when it completes, not now.
        let publish_now = !self.final_mode() || window_end.is_some_and(|end| Self::is_complete(end, watermark));
        let (values, time) = args.split_at(args.len() - 1);
        let event_time = time[0].as_timestamp().unwrap_or(Millis::MIN);
        let group = match self.groups.entry(key) {
            Entry::Occupied(mut entry) => {
                if !entry.get().dirty {
                    entry.get_mut().dirty = true;
                    if publish_now {
                        self.to_publish.push(entry.key().clone());
                    }
                }
                entry.into_mut()
            }
            Entry::Vacant(entry) => {
                if let Some(end) = window_end {
                    self.by_window_end.entry(end).or_default().push(entry.key().clone());
                }
                if publish_now {
                    self.to_publish.push(entry.key().clone());
                }
                entry.insert(Group {
                    accumulator: GroupAccumulator::new(&self.specs),
                    published: None,
                    dirty: true,
                })
            }
        };
        group.accumulator.update(values, event_time, diff);
        Ok(())
    }

    /// Emits what changed and retires windows behind the watermark.
    pub fn advance(&mut self, watermark: Millis, output: &mut Vec<(Row, Diff)>) {
        let mut keys = std::mem::take(&mut self.to_publish);
        if self.final_mode() && watermark != Millis::MIN && watermark > self.completed_through {
            // Windows completing now (end - 1 newly at or below the watermark) publish their changed groups.
            let newly_complete = self.by_window_end.range(self.completed_through.saturating_add(2)..=watermark.saturating_add(1));
            keys.extend(newly_complete.flat_map(|(_, keys)| keys.iter().filter(|k| self.groups.get(*k).is_some_and(|g| g.dirty)).cloned()));
        }
        self.completed_through = self.completed_through.max(watermark);
        for key in keys.drain(..) {
            self.publish(&key, output);
        }
        self.to_publish = keys;
        self.retire(watermark);
    }

    fn publish(&mut self, key: &Row, output: &mut Vec<(Row, Diff)>) {
        let Some(group) = self.groups.get_mut(key) else { return };
        if !group.dirty {
            return;
        }
        group.dirty = false;
        let next = if group.accumulator.row_count() > 0 {
            self.scratch.clear();
            self.scratch.extend(key.iter().cloned());
            group.accumulator.results(&mut self.scratch);
            Some(Row::new(std::mem::take(&mut self.scratch)))
        } else {
            None
        };
        if next != group.published {
            if let Some(old) = group.published.take() {
                output.push((old, -1));
            }
            if let Some(new) = &next {
                output.push((new.clone(), 1));
            }
            group.published = next;
        }
        if group.accumulator.row_count() == 0 && self.window.is_none() {
            self.groups.remove(key);
        }
    }

    /// Drops the state of retired windows. Their groups were published by
    /// `advance` before this runs (retired implies complete), so the output
    /// keeps their final rows.
    fn retire(&mut self, watermark: Millis) {
        while let Some((&end, _)) = self.by_window_end.first_key_value() {
            if !self.is_retired(end, watermark) {
                break;
            }
            for key in self.by_window_end.remove(&end).unwrap_or_default() {
                self.groups.remove(&key);
            }
        }
    }

    /// The dead letter for a late row.
    pub fn late_row(&self, key: &Row, watermark: Millis) -> DeadLetter {
        DeadLetter {
            origin: self.name.clone(),
            reason: DeadLetterReason::Late,
            detail: format!(
                "window ending {} was already retired (watermark {})",
                self.window_end(key).map_or("?".into(), carbonflow_core::time::format_timestamp),
                carbonflow_core::time::format_timestamp(watermark)
            ),
            position: "event time".into(),
            record: key.to_string(),
        }
    }
}

impl TimedCore for GroupedAggregate {
    type Input = (Row, Row);

    fn on_update(&mut self, (key, args): (Row, Row), diff: Diff, context: &mut CoreContext) {
        if let Err(key) = self.update(key, &args, diff, context.watermark) {
            context.dead_letters.push(self.late_row(&key, context.watermark));
        }
    }

    fn on_epoch_end(&mut self, _epoch: Epoch, context: &mut CoreContext) {
        self.advance(context.watermark, context.output);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::AggregateFunction;
    use carbonflow_core::DataType;

    fn sum_core(emit: EmitMode, allowed_lateness: Millis) -> GroupedAggregate {
        let specs = vec![AggregateSpec::new(AggregateFunction::Sum, DataType::Int)];
        GroupedAggregate::new(
            "test",
            specs,
            Some(WindowKey {
                end: 1,
                allowed_lateness,
                emit,
            }),
        )
    }

    fn key(end: Millis) -> Row {
        Row::new(vec![Datum::string("A"), Datum::Timestamp(end)])
    }

    fn args(value: i64) -> Vec<Datum> {
        vec![Datum::Int(value), Datum::Null]
    }

    fn row(end: Millis, sum: i64) -> Row {
        Row::new(vec![Datum::string("A"), Datum::Timestamp(end), Datum::Int(sum)])
    }

    #[test]
    fn emit_final_waits_for_the_watermark_then_corrects_within_lateness() {
        let mut core = sum_core(EmitMode::Final, 10_000);
        let mut out = Vec::new();
        core.update(key(60_000), &args(5), 1, Millis::MIN).unwrap();
        core.update(key(60_000), &args(7), 1, Millis::MIN).unwrap();
        core.advance(59_998, &mut out);
        assert!(out.is_empty(), "incomplete window must not emit: {out:?}");
        core.advance(59_999, &mut out);
        assert_eq!(out, vec![(row(60_000, 12), 1)]);
        out.clear();
        // A late row inside the allowed lateness corrects the published result.
        core.update(key(60_000), &args(1), 1, 59_999).unwrap();
        core.advance(65_000, &mut out);
        assert_eq!(out, vec![(row(60_000, 12), -1), (row(60_000, 13), 1)]);
        out.clear();
        // Past end - 1 + lateness the window is retired: state gone, row late.
        core.advance(69_999, &mut out);
        assert_eq!(core.groups(), 0);
        assert!(core.update(key(60_000), &args(1), 1, 69_999).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn emit_changes_publishes_every_epoch_and_retracts_emptied_groups() {
        let mut core = sum_core(EmitMode::Changes, 0);
        let mut out = Vec::new();
        core.update(key(60_000), &args(5), 1, Millis::MIN).unwrap();
        core.advance(Millis::MIN, &mut out);
        assert_eq!(out, vec![(row(60_000, 5), 1)]);
        out.clear();
        core.update(key(60_000), &args(5), -1, Millis::MIN).unwrap();
        core.advance(Millis::MIN, &mut out);
        assert_eq!(out, vec![(row(60_000, 5), -1)], "a group with no rows has no output row");
        out.clear();
        // Several changes in one epoch publish once.
        core.update(key(60_000), &args(2), 1, Millis::MIN).unwrap();
        core.update(key(60_000), &args(3), 1, Millis::MIN).unwrap();
        core.advance(Millis::MIN, &mut out);
        assert_eq!(out, vec![(row(60_000, 5), 1)]);
    }

    #[test]
    fn plain_group_by_forgets_empty_groups() {
        let specs = vec![AggregateSpec::new(AggregateFunction::CountStar, DataType::Int)];
        let mut core = GroupedAggregate::new("test", specs, None);
        let mut out = Vec::new();
        core.update(Row::new(vec![Datum::string("A")]), &[Datum::Null, Datum::Null], 1, Millis::MIN)
            .unwrap();
        core.advance(Millis::MIN, &mut out);
        core.update(Row::new(vec![Datum::string("A")]), &[Datum::Null, Datum::Null], -1, Millis::MIN)
            .unwrap();
        core.advance(Millis::MAX, &mut out);
        assert_eq!(core.groups(), 0);
        assert_eq!(out.len(), 2);
    }
}
