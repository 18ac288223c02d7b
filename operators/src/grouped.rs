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

use std::collections::{BTreeMap, HashMap, HashSet};

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
}

/// The grouped aggregation core. Input: `(key, args)` where `args` holds one
/// datum per aggregate followed by the row's event time (a TIMESTAMP, or NULL).
pub struct GroupedAggregate {
    name: String,
    specs: Vec<AggregateSpec>,
    window: Option<WindowKey>,
    groups: HashMap<Row, Group>,
    dirty: HashSet<Row>,
    /// Open windows by end, for completion and retirement.
    by_window_end: BTreeMap<Millis, HashSet<Row>>,
    scratch: Vec<Datum>,
}

impl GroupedAggregate {
    /// A core for these aggregates; `window` when grouped by a window TVF's bounds.
    pub fn new(name: impl Into<String>, specs: Vec<AggregateSpec>, window: Option<WindowKey>) -> Self {
        GroupedAggregate { name: name.into(), specs, window, groups: HashMap::new(), dirty: HashSet::new(), by_window_end: BTreeMap::new(), scratch: Vec::new() }
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

    /// Applies one change. Returns false (and changes nothing) when the row is late.
    pub fn update(&mut self, key: Row, args: &[Datum], diff: Diff, watermark: Millis) -> bool {
        let window_end = self.window_end(&key);
        if let Some(end) = window_end {
            if self.is_retired(end, watermark) {
                return false;
            }
        }
        let (values, time) = args.split_at(args.len() - 1);
        let event_time = time[0].as_timestamp().unwrap_or(Millis::MIN);
        let specs = &self.specs;
        let group = self.groups.entry(key.clone()).or_insert_with(|| Group { accumulator: GroupAccumulator::new(specs), published: None });
        group.accumulator.update(values, event_time, diff);
        if let Some(end) = window_end {
            self.by_window_end.entry(end).or_default().insert(key.clone());
        }
        self.dirty.insert(key);
        true
    }

    /// Emits what changed and retires windows behind the watermark.
    pub fn advance(&mut self, watermark: Millis, output: &mut Vec<(Row, Diff)>) {
        let final_mode = self.window.is_some_and(|w| w.emit == EmitMode::Final);
        let dirty: Vec<Row> = self.dirty.drain().collect();
        let mut still_dirty = Vec::new();
        for key in dirty {
            let complete = self.window_end(&key).is_none_or(|end| Self::is_complete(end, watermark));
            if final_mode && !complete {
                still_dirty.push(key);
                continue;
            }
            self.publish(&key, output);
        }
        self.dirty.extend(still_dirty);
        if final_mode {
            // Windows that just completed publish even if nothing changed this epoch.
            let completed: Vec<Row> = self.by_window_end.range(..=watermark.saturating_add(1)).flat_map(|(end, keys)| keys.iter().filter(move |_| Self::is_complete(*end, watermark)).cloned()).collect();
            for key in completed {
                if self.dirty.remove(&key) {
                    self.publish(&key, output);
                }
            }
        }
        self.retire(watermark);
    }

    fn publish(&mut self, key: &Row, output: &mut Vec<(Row, Diff)>) {
        let Some(group) = self.groups.get_mut(key) else { return };
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
                self.dirty.remove(&key);
                self.groups.remove(&key);
            }
        }
    }

    /// The dead letter for a late row.
    pub fn late_row(&self, key: &Row, watermark: Millis) -> DeadLetter {
        DeadLetter {
            origin: self.name.clone(),
            reason: DeadLetterReason::Late,
            detail: format!("window ending {} was already retired (watermark {})", self.window_end(key).map_or("?".into(), carbonflow_core::time::format_timestamp), carbonflow_core::time::format_timestamp(watermark)),
            position: "event time".into(),
            record: key.to_string(),
        }
    }
}

impl TimedCore for GroupedAggregate {
    type Input = (Row, Row);

    fn on_update(&mut self, (key, args): (Row, Row), diff: Diff, context: &mut CoreContext) {
        if !self.update(key.clone(), &args, diff, context.watermark) {
            context.dead_letters.push(self.late_row(&key, context.watermark));
        }
    }

    fn on_epoch_end(&mut self, _epoch: Epoch, context: &mut CoreContext) {
        self.advance(context.watermark, context.output);
    }
}
