//! One partition's rows in event-time order, the results emitted for them,
//! and the incremental re-evaluation after a change.

use carbonflow_core::{Datum, Diff, Millis, Row};

use super::recurrent::recurrent_evaluator;
use super::window::window_evaluator;
use super::{Frame, OverCall};

/// A partition's ordered rows as evaluators read them.
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    /// The rows, ordered by (event time, row).
    pub(crate) rows: &'a [Row],
    /// `times[i]` is the event time of `rows[i]`.
    pub(crate) times: &'a [Millis],
}

impl Rows<'_> {
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The first index whose event time is at least `time`.
    pub(crate) fn first_at_or_after(&self, time: Millis) -> usize {
        self.times.partition_point(|t| *t < time)
    }

    /// The first index whose event time is after `time`.
    pub(crate) fn first_after(&self, time: Millis) -> usize {
        self.times.partition_point(|t| *t <= time)
    }
}

/// How far after a changed row the results of a call can change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The `n` rows after it.
    Rows(usize),
    /// The rows up to this much event time after it.
    Time(Millis),
    /// Every later row.
    All,
}

/// What a call needs of the rows before the first one that may be recomputed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookback {
    /// The `n` rows before it.
    Rows(usize),
    /// The rows up to this much event time before it.
    Time(Millis),
    /// Nothing but the state it keeps itself.
    State,
}

/// The incremental state of one call over one partition.
pub(crate) trait Evaluator: Send {
    /// Prepares to compute `rows[start..]` in order. `rows[..start]` are the
    /// same as when they were last computed (they may have been trimmed from
    /// the front since, see [`Evaluator::trim`]).
    fn restart(&mut self, rows: Rows, start: usize);

    /// The result for `rows[index]`; called for `start`, `start + 1`, … after a restart.
    fn next(&mut self, rows: Rows, index: usize) -> Datum;

    /// The first `count` rows were dropped.
    fn trim(&mut self, count: usize);

    /// See [`Reach`].
    fn reach(&self) -> Reach;

    /// See [`Lookback`].
    fn lookback(&self) -> Lookback;
}

/// The evaluator of `call`; rows hold their event time at `time_column`.
fn evaluator(call: &OverCall) -> Box<dyn Evaluator> {
    if call.function.is_recurrent() {
        recurrent_evaluator(call)
    } else {
        window_evaluator(call)
    }
}

/// The pure core of one partition. See the module documentation of
/// [`super`]: rows go in with [`OverPartition::insert`] and
/// [`OverPartition::remove`], [`OverPartition::recompute`] emits what
/// changed, [`OverPartition::trim`] forgets what can no longer change.
pub struct OverPartition {
    rows: Vec<Row>,
    times: Vec<Millis>,
    evaluators: Vec<Box<dyn Evaluator>>,
    /// The results emitted for each row, one per call: those of `rows[i]` at
    /// `i * calls ..`, meaningful where `computed[i]`. One flat vector, so a
    /// row's results cost no allocation of their own.
    emitted: Vec<Datum>,
    computed: Vec<bool>,
    /// The results of the row being evaluated.
    scratch: Vec<Datum>,
    /// The event times of the changes since the last recomputation: (earliest, latest).
    dirty: Option<(Millis, Millis)>,
}

impl OverPartition {
    /// An empty partition computing `calls`.
    pub fn new(calls: &[OverCall]) -> Self {
        OverPartition {
            rows: Vec::new(),
            times: Vec::new(),
            evaluators: calls.iter().map(evaluator).collect(),
            emitted: Vec::new(),
            computed: Vec::new(),
            scratch: Vec::with_capacity(calls.len()),
            dirty: None,
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the partition holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Results per row: one per call.
    fn calls(&self) -> usize {
        self.evaluators.len()
    }

    fn mark(&mut self, time: Millis) {
        self.dirty = Some(self.dirty.map_or((time, time), |(low, high)| (low.min(time), high.max(time))));
    }

    /// Where `(time, row)` goes among the rows: after every smaller pair.
    fn position(&self, time: Millis, row: &Row) -> usize {
        let start = self.times.partition_point(|t| *t < time);
        let peers = self.times[start..].partition_point(|t| *t == time);
        start + self.rows[start..start + peers].partition_point(|r| r < row)
    }

    /// Adds `copies` copies of `row` with event time `time`.
    pub fn insert(&mut self, time: Millis, row: Row, copies: usize) {
        if copies == 0 {
            return;
        }
        let at = self.position(time, &row);
        let calls = self.calls();
        if copies == 1 {
            // Nearly every change: one row, usually appended.
            self.rows.insert(at, row);
            self.times.insert(at, time);
            self.computed.insert(at, false);
        } else {
            self.rows.splice(at..at, std::iter::repeat_n(row, copies));
            self.times.splice(at..at, std::iter::repeat_n(time, copies));
            self.computed.splice(at..at, std::iter::repeat_n(false, copies));
        }
        let placeholders = std::iter::repeat_n(Datum::Null, copies * calls);
        if at == self.emitted.len() / calls.max(1) {
            self.emitted.extend(placeholders);
        } else {
            self.emitted.splice(at * calls..at * calls, placeholders);
        }
        self.mark(time);
    }

    /// Removes up to `copies` copies of `row`, retracting their results into `output`.
    pub fn remove(&mut self, time: Millis, row: &Row, copies: usize, output: &mut Vec<(Row, Diff)>) {
        let at = self.position(time, row);
        let held = self.rows[at..].iter().take_while(|r| *r == row).count().min(copies);
        if held == 0 {
            return;
        }
        let calls = self.calls();
        for index in (at..at + held).filter(|&i| self.computed[i]) {
            output.push((output_row(&self.rows[index], &self.emitted[index * calls..(index + 1) * calls]), -1));
        }
        self.rows.drain(at..at + held);
        self.times.drain(at..at + held);
        self.computed.drain(at..at + held);
        self.emitted.drain(at * calls..(at + held) * calls);
        self.mark(time);
    }

    /// Re-evaluates every row a change since the last call can reach and
    /// emits, for each whose results differ from those emitted, a retraction
    /// of the old output row and the new one.
    pub fn recompute(&mut self, output: &mut Vec<(Row, Diff)>) {
        let Some((low, high)) = self.dirty.take() else { return };
        let rows = Rows {
            rows: &self.rows,
            times: &self.times,
        };
        let start = rows.first_at_or_after(low);
        let changed_end = rows.first_after(high);
        let end = self
            .evaluators
            .iter()
            .map(|evaluator| match evaluator.reach() {
                Reach::Rows(n) => changed_end.saturating_add(n).min(rows.len()),
                Reach::Time(d) => rows.first_after(high.saturating_add(d)),
                Reach::All => rows.len(),
            })
            .max()
            .unwrap_or(changed_end);
        for evaluator in &mut self.evaluators {
            evaluator.restart(rows, start);
        }
        let calls = self.evaluators.len();
        for index in start..end {
            let emitted = &mut self.emitted[index * calls..(index + 1) * calls];
            if !self.computed[index] {
                // A new row: its results go straight to their place.
                for (slot, evaluator) in emitted.iter_mut().zip(&mut self.evaluators) {
                    *slot = evaluator.next(rows, index);
                }
                output.push((output_row(&rows.rows[index], emitted), 1));
                self.computed[index] = true;
                continue;
            }
            self.scratch.clear();
            self.scratch.extend(self.evaluators.iter_mut().map(|evaluator| evaluator.next(rows, index)));
            if *emitted == *self.scratch {
                continue;
            }
            output.push((output_row(&rows.rows[index], emitted), -1));
            output.push((output_row(&rows.rows[index], &self.scratch), 1));
            for (slot, result) in emitted.iter_mut().zip(self.scratch.drain(..)) {
                *slot = result;
            }
        }
    }

    /// Forgets the rows that no change can reach any more, given that no row
    /// with an event time before `stable` will be inserted or removed: the
    /// rows the frames of rows at or after `stable` do not need.
    pub fn trim(&mut self, stable: Millis) {
        debug_assert!(self.dirty.is_none(), "trim after recompute");
        let rows = Rows {
            rows: &self.rows,
            times: &self.times,
        };
        let first_changeable = rows.first_at_or_after(stable);
        let keep_from = self
            .evaluators
            .iter()
            .map(|evaluator| match evaluator.lookback() {
                Lookback::Rows(n) => first_changeable.saturating_sub(n),
                Lookback::Time(d) => rows.first_at_or_after(stable.saturating_sub(d)),
                Lookback::State => first_changeable,
            })
            .min()
            .unwrap_or(first_changeable);
        if keep_from == 0 {
            return;
        }
        self.rows.drain(..keep_from);
        self.times.drain(..keep_from);
        self.computed.drain(..keep_from);
        self.emitted.drain(..keep_from * self.evaluators.len());
        for evaluator in &mut self.evaluators {
            evaluator.trim(keep_from);
        }
    }
}

/// The output row: the input row, then the calls' results.
fn output_row(row: &Row, results: &[Datum]) -> Row {
    let mut datums = Vec::with_capacity(row.len() + results.len());
    datums.extend_from_slice(row);
    datums.extend_from_slice(results);
    Row::new(datums)
}

/// The frame lookback and reach of a frame function: how many rows, or how
/// much event time, before a row its frame holds (`scale` frames' worth).
pub(crate) fn frame_extent(frame: Frame, scale: usize) -> (Reach, Lookback) {
    match frame {
        Frame::Rows(n) => {
            let rows = (n + 1).saturating_mul(scale) - 1;
            (Reach::Rows(rows), Lookback::Rows(rows))
        }
        Frame::Range(d) => {
            let time = d.saturating_mul(scale as Millis);
            (Reach::Time(time), Lookback::Time(time))
        }
        Frame::Unbounded => (Reach::All, Lookback::State),
    }
}
