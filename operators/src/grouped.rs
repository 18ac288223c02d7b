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
//!
//! A group folds in one of two kinds of [`GroupInput`]: a row's aggregate
//! arguments (any input, retractions included), or, when the input is
//! append-only, a partial aggregate made by a [`Combiner`] on the worker that
//! read the rows. The combiner folds an epoch's rows per group before the
//! exchange, so an epoch of 4,096 ticks over 1,000 nodes crosses it as about
//! 1,000 partial states instead of 4,096 rows, and the group here merges one
//! state per worker and epoch instead of folding every row.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::marker::PhantomData;

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

/// What a group folds in; see the module documentation.
pub trait GroupInput: Sized {
    /// The state of a new group whose first input is `diff` copies of this one.
    fn start_group(self, specs: &[AggregateSpec], diff: Diff) -> GroupAccumulator;

    /// Folds `diff` copies of the input into `group`.
    fn fold_into(self, group: &mut GroupAccumulator, diff: Diff);

    /// How many dead letters a late input makes: one per row it stands for.
    fn rows(&self) -> usize;
}

/// A row's aggregate arguments, one datum per aggregate, followed by its
/// event time (a TIMESTAMP, or NULL).
impl GroupInput for Row {
    fn start_group(self, specs: &[AggregateSpec], diff: Diff) -> GroupAccumulator {
        let mut group = GroupAccumulator::new(specs);
        fold_arguments(&mut group, &self, diff);
        group
    }

    fn fold_into(self, group: &mut GroupAccumulator, diff: Diff) {
        fold_arguments(group, &self, diff);
    }

    fn rows(&self) -> usize {
        1
    }
}

/// A partial aggregate from a [`Combiner`]: an append-only state, sent once
/// (diff 1) per group, worker and epoch.
impl GroupInput for GroupAccumulator {
    fn start_group(self, _specs: &[AggregateSpec], diff: Diff) -> GroupAccumulator {
        debug_assert_eq!(diff, 1, "a partial aggregate is sent once");
        self
    }

    fn fold_into(self, group: &mut GroupAccumulator, diff: Diff) {
        debug_assert_eq!(diff, 1, "a partial aggregate is sent once");
        group.merge(self);
    }

    fn rows(&self) -> usize {
        usize::try_from(self.row_count()).unwrap_or(0)
    }
}

/// Folds `diff` copies of a row's `args` (aggregate arguments, then event time) into `group`.
fn fold_arguments(group: &mut GroupAccumulator, args: &[Datum], diff: Diff) {
    let (values, time) = args.split_at(args.len() - 1);
    group.update(values, time[0].as_timestamp().unwrap_or(Millis::MIN), diff);
}

/// Per-worker pre-aggregation of an append-only input: the rows of one
/// epoch folded per group key into [append-only](GroupAccumulator::append_only)
/// partial states, handed on when the epoch is complete. Keys are looked up
/// as borrowed datums; a key row is built once per group and epoch.
pub struct Combiner {
    /// The state of a new group, cloned for each.
    empty: GroupAccumulator,
    groups: HashMap<Row, GroupAccumulator>,
}

impl Combiner {
    /// A combiner for these aggregates; `None` unless every one has an
    /// append-only form ([`AggregateSpec::has_append_only_form`]).
    pub fn new(specs: &[AggregateSpec]) -> Option<Self> {
        Some(Combiner {
            empty: GroupAccumulator::append_only(specs)?,
            groups: HashMap::default(),
        })
    }

    /// Folds `diff` copies of a row with group key `key` and aggregate
    /// arguments `args` (followed by its event time). Panics on a retraction:
    /// the planner combines append-only inputs only.
    pub fn update(&mut self, key: &[Datum], args: &[Datum], diff: Diff) {
        assert!(diff > 0, "a combiner was sent a retraction: its input is not append-only");
        if let Some(group) = self.groups.get_mut(key) {
            fold_arguments(group, args, diff);
            return;
        }
        let mut group = self.empty.clone();
        fold_arguments(&mut group, args, diff);
        self.groups.insert(Row::from(key.to_vec()), group);
    }

    /// Whether no row was folded since the last drain.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The partial state of every group folded since the last drain, by key.
    pub fn drain(&mut self) -> impl Iterator<Item = (Row, GroupAccumulator)> + '_ {
        self.groups.drain()
    }
}

struct Group {
    accumulator: GroupAccumulator,
    /// The output row currently published for this group, if any.
    published: Option<Row>,
    /// Changed since it was last published.
    dirty: bool,
}

/// The grouped aggregation core. Input: `(key, input)` where `input` is a
/// [`GroupInput`]: a row of aggregate arguments (`I = Row`, the default) or
/// a [`Combiner`]'s partial state (`I = GroupAccumulator`).
///
/// A key row is cloned only when its group is created and when the group
/// first changes in an epoch, never per update.
pub struct GroupedAggregate<I = Row> {
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
    input: PhantomData<fn(I)>,
}

impl<I: GroupInput> GroupedAggregate<I> {
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
            input: PhantomData,
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

    /// Applies one change. A late one changes nothing and comes back.
    pub fn update(&mut self, key: Row, input: I, diff: Diff, watermark: Millis) -> Result<(), (Row, I)> {
        let window_end = self.window_end(&key);
        if let Some(end) = window_end
            && self.is_retired(end, watermark)
        {
            return Err((key, input));
        }
        // With EMIT FINAL an incomplete window is published when it completes, not now.
        let publish_now = !self.final_mode() || window_end.is_some_and(|end| Self::is_complete(end, watermark));
        match self.groups.entry(key) {
            Entry::Occupied(mut entry) => {
                if !entry.get().dirty {
                    entry.get_mut().dirty = true;
                    if publish_now {
                        self.to_publish.push(entry.key().clone());
                    }
                }
                input.fold_into(&mut entry.get_mut().accumulator, diff);
            }
            Entry::Vacant(entry) => {
                if let Some(end) = window_end {
                    self.by_window_end.entry(end).or_default().push(entry.key().clone());
                }
                if publish_now {
                    self.to_publish.push(entry.key().clone());
                }
                entry.insert(Group {
                    accumulator: input.start_group(&self.specs, diff),
                    published: None,
                    dirty: true,
                });
            }
        }
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

impl<I: GroupInput + 'static> TimedCore for GroupedAggregate<I> {
    type Input = (Row, I);

    fn on_update(&mut self, (key, input): (Row, I), diff: Diff, context: &mut CoreContext) {
        if let Err((key, input)) = self.update(key, input, diff, context.watermark) {
            let letter = self.late_row(&key, context.watermark);
            context.dead_letters.extend(std::iter::repeat_n(letter, input.rows()));
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

    fn args(value: i64) -> Row {
        Row::new(vec![Datum::Int(value), Datum::Null])
    }

    fn row(end: Millis, sum: i64) -> Row {
        Row::new(vec![Datum::string("A"), Datum::Timestamp(end), Datum::Int(sum)])
    }

    #[test]
    fn emit_final_waits_for_the_watermark_then_corrects_within_lateness() {
        let mut core = sum_core(EmitMode::Final, 10_000);
        let mut out = Vec::new();
        core.update(key(60_000), args(5), 1, Millis::MIN).unwrap();
        core.update(key(60_000), args(7), 1, Millis::MIN).unwrap();
        core.advance(59_998, &mut out);
        assert!(out.is_empty(), "incomplete window must not emit: {out:?}");
        core.advance(59_999, &mut out);
        assert_eq!(out, vec![(row(60_000, 12), 1)]);
        out.clear();
        // A late row inside the allowed lateness corrects the published result.
        core.update(key(60_000), args(1), 1, 59_999).unwrap();
        core.advance(65_000, &mut out);
        assert_eq!(out, vec![(row(60_000, 12), -1), (row(60_000, 13), 1)]);
        out.clear();
        // Past end - 1 + lateness the window is retired: state gone, row late.
        core.advance(69_999, &mut out);
        assert_eq!(core.groups(), 0);
        assert!(core.update(key(60_000), args(1), 1, 69_999).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn emit_changes_publishes_every_epoch_and_retracts_emptied_groups() {
        let mut core = sum_core(EmitMode::Changes, 0);
        let mut out = Vec::new();
        core.update(key(60_000), args(5), 1, Millis::MIN).unwrap();
        core.advance(Millis::MIN, &mut out);
        assert_eq!(out, vec![(row(60_000, 5), 1)]);
        out.clear();
        core.update(key(60_000), args(5), -1, Millis::MIN).unwrap();
        core.advance(Millis::MIN, &mut out);
        assert_eq!(out, vec![(row(60_000, 5), -1)], "a group with no rows has no output row");
        out.clear();
        // Several changes in one epoch publish once.
        core.update(key(60_000), args(2), 1, Millis::MIN).unwrap();
        core.update(key(60_000), args(3), 1, Millis::MIN).unwrap();
        core.advance(Millis::MIN, &mut out);
        assert_eq!(out, vec![(row(60_000, 5), 1)]);
    }

    #[test]
    fn partials_of_two_combiners_give_the_rows_results_and_a_late_one_counts_each_row() {
        use AggregateFunction::*;
        let specs: Vec<AggregateSpec> = [CountStar, Sum, Min, Max].into_iter().map(|f| AggregateSpec::new(f, DataType::Int)).collect();
        let window = Some(WindowKey {
            end: 1,
            allowed_lateness: 0,
            emit: EmitMode::Final,
        });
        let mut by_rows: GroupedAggregate = GroupedAggregate::new("rows", specs.clone(), window);
        let mut by_partials: GroupedAggregate<GroupAccumulator> = GroupedAggregate::new("partials", specs.clone(), window);
        let mut workers = [Combiner::new(&specs).unwrap(), Combiner::new(&specs).unwrap()];
        let arguments = |value: i64| vec![Datum::Int(value); 4].into_iter().chain([Datum::Null]).collect::<Vec<_>>();
        for (i, (end, value)) in [(60_000, 5), (60_000, -2), (120_000, 7), (60_000, 9), (120_000, 1)].into_iter().enumerate() {
            by_rows.update(key(end), Row::new(arguments(value)), 1, Millis::MIN).unwrap();
            workers[i % 2].update(&key(end), &arguments(value), 1);
        }
        for combiner in &mut workers {
            for (key, partial) in combiner.drain() {
                by_partials.update(key, partial, 1, Millis::MIN).unwrap();
            }
            assert!(combiner.is_empty());
        }
        let (mut from_rows, mut from_partials) = (Vec::new(), Vec::new());
        by_rows.advance(Millis::MAX - 1, &mut from_rows);
        by_partials.advance(Millis::MAX - 1, &mut from_partials);
        from_rows.sort();
        from_partials.sort();
        assert_eq!(from_partials.len(), 2);
        assert_eq!(from_partials, from_rows);
        // Three rows of a retired window, combined into one partial: three dead letters.
        for value in [1, 2, 3] {
            workers[0].update(&key(60_000), &arguments(value), 1);
        }
        let (partial_key, partial) = workers[0].drain().next().unwrap();
        let (mut output, mut dead_letters) = (Vec::new(), Vec::new());
        let mut context = CoreContext {
            watermark: Millis::MAX - 1,
            output: &mut output,
            dead_letters: &mut dead_letters,
        };
        by_partials.on_update((partial_key, partial), 1, &mut context);
        assert_eq!(dead_letters.len(), 3);
        assert!(output.is_empty());
    }

    #[test]
    #[should_panic(expected = "not append-only")]
    fn a_combiner_refuses_a_retraction() {
        let mut combiner = Combiner::new(&[AggregateSpec::new(AggregateFunction::CountStar, DataType::Int)]).unwrap();
        combiner.update(&key(60_000), &[Datum::Null, Datum::Null], -1);
    }

    #[test]
    fn plain_group_by_forgets_empty_groups() {
        let specs = vec![AggregateSpec::new(AggregateFunction::CountStar, DataType::Int)];
        let mut core: GroupedAggregate = GroupedAggregate::new("test", specs, None);
        let mut out = Vec::new();
        core.update(Row::new(vec![Datum::string("A")]), Row::new(vec![Datum::Null, Datum::Null]), 1, Millis::MIN)
            .unwrap();
        core.advance(Millis::MIN, &mut out);
        core.update(Row::new(vec![Datum::string("A")]), Row::new(vec![Datum::Null, Datum::Null]), -1, Millis::MIN)
            .unwrap();
        core.advance(Millis::MAX, &mut out);
        assert_eq!(core.groups(), 0);
        assert_eq!(out.len(), 2);
    }
}
