//! `MatchRecognize`: a [`MatchRecognizer`] driven by epochs and the watermark,
//! per partition, with retractions.
//!
//! Rows wait in a per-partition buffer until the watermark passes their event
//! time, because a pattern must see a partition's rows in event-time order
//! (rows of equal time ordered by the further `ORDER BY` columns, then by
//! value); then they are appended to the partition's ordered rows and the
//! partition's [`Walk`] continues over them: only the searches still waiting
//! for rows step over the new ones, and new searches start at the new rows.
//! A row that arrives, or is retracted, after the watermark passed it (a late
//! revision) changes the ordered rows in place; the walk then restarts from
//! the earliest start the change can affect
//! ([`MatchRecognizer::earliest_affected_start`], [`resume`]), as it does for
//! appended rows when an expression reads rows ahead (`NEXT`). Output is
//! differential: the matches that no longer hold are retracted and the new
//! ones inserted, one row per match: the partition key, then the measures.
//!
//! A change more than the allowed lateness behind the watermark is late and
//! goes to the dead-letter output, as for windows. State is bounded by
//! `WITHIN`: a match spans at most `WITHIN`, so once a row is more than
//! `WITHIN` behind the first time a change may still come from, no future
//! change can reach a match holding it. The searches starting there end
//! ([`Walk::expire`]) and such rows are dropped (keeping the few `PREV` can
//! still reach), together with the matches wholly before them (their output
//! stands); a match is kept until it is wholly behind, so a partition holds
//! at most about two `WITHIN` spans of rows. Without `WITHIN` nothing bounds
//! how far back a change can reach, and partitions keep their rows.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use carbonflow_core::{DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row};
use foldhash::HashMap;

use super::{Buffers, EvalFailure, Match, MatchRecognizer, OrderColumn, RowsPerMatch, Walk, resume};
use crate::dataflow::{CoreContext, EventTimeOrder, TimedCore, release_passed};

/// The `MatchRecognize` operator core. Input: `(partition key, row)`.
pub struct MatchRecognize {
    order: EventTimeOrder,
    recognizer: MatchRecognizer,
    partitions: HashMap<Row, Partition>,
    buffers: Buffers,
}

struct Partition {
    /// Rows the watermark has not passed yet, by event time.
    pending: BTreeMap<(Millis, Row), Diff>,
    /// Released rows in event-time order (then row order), one entry per copy.
    rows: Vec<Row>,
    /// How many of `rows` the walk has seen.
    walked: usize,
    /// The search walk over `rows`, from its first open search on.
    walk: Walk,
    /// The matches over `rows`, in order.
    matches: Vec<Match>,
    /// The output rows emitted for each match (parallel to `matches`), retracted as they were.
    emitted: Vec<Vec<Row>>,
    /// The first index of `rows` changed in place since the walk saw them.
    changed_from: Option<usize>,
    /// The match number of `matches[0]` (earlier matches were trimmed).
    first_number: u64,
}

impl Default for Partition {
    fn default() -> Self {
        Partition {
            pending: BTreeMap::new(),
            rows: Vec::new(),
            walked: 0,
            walk: Walk::default(),
            matches: Vec::new(),
            emitted: Vec::new(),
            changed_from: None,
            first_number: 1,
        }
    }
}

impl Partition {
    /// Drops the rows before `cut` (at most the walk's first open search), or
    /// fewer, and the matches wholly before them.
    fn trim(&mut self, cut: usize) {
        // A kept match must keep its rows' indices, and one whose skip target
        // lies past the cut still constrains where the next match may start.
        // Matches start in order (they may overlap), so the first kept one
        // has the smallest start of all kept ones.
        let dropped = self.matches.iter().take_while(|m| m.end <= cut && m.next_start <= cut).count();
        let cut = self.matches.get(dropped).map_or(cut, |m| m.start.min(cut));
        if cut == 0 {
            return;
        }
        self.matches.drain(..dropped);
        self.emitted.drain(..dropped);
        self.first_number += dropped as u64;
        self.rows.drain(..cut);
        self.walked -= cut;
        self.walk.shift(cut);
        for found in &mut self.matches {
            found.start -= cut;
            found.end -= cut;
            found.next_start -= cut;
        }
    }

    /// Brings the matches up to date with `rows` and emits the difference.
    fn rematch(&mut self, partition: &Row, recognizer: &MatchRecognizer, buffers: &mut Buffers, context: &mut CoreContext, origin: &str) {
        let appended = self.rows.len() > self.walked;
        // The walk has not seen rows past `walked` either; and appended rows
        // change what earlier rows see through NEXT.
        let changed = match self.changed_from.take() {
            Some(changed) => Some(changed.min(self.walked)),
            None if appended && recognizer.lookahead() > 0 => Some(self.walked),
            None => None,
        };
        if let Some(changed) = changed {
            let earliest = recognizer.earliest_affected_start(&self.rows, changed);
            let resumed = resume(&self.matches, earliest, self.first_number);
            self.walk.restart(resumed.start, resumed.match_number);
        } else if !appended {
            return;
        }
        let kept = self.matches.partition_point(|m| m.start < self.walk.first_open());
        let mut failures = Vec::new();
        let tail = recognizer.advance(&mut self.walk, &self.rows, buffers, &mut failures);
        self.walked = self.rows.len();
        // Matches the walk found again need no output, unless a change in
        // place moved the rows under their indices.
        let same = match changed {
            Some(_) => 0,
            None => self.matches[kept..].iter().zip(&tail).take_while(|(old, new)| old == new).count(),
        };
        self.matches.truncate(kept + same);
        for old in self.emitted.drain(kept + same..) {
            context.output.extend(old.into_iter().map(|row| (row, -1)));
        }
        for found in tail.into_iter().skip(same) {
            let rows = MatchRecognize::outputs(recognizer, partition, &self.rows, &found);
            context.output.extend(rows.iter().map(|row| (row.clone(), 1)));
            self.emitted.push(rows);
            self.matches.push(found);
        }
        failures.sort();
        failures.dedup();
        for EvalFailure { row, message } in failures {
            context.dead_letters.push(DeadLetter {
                origin: origin.to_owned(),
                reason: DeadLetterReason::Eval,
                detail: message,
                position: "MATCH_RECOGNIZE".into(),
                record: self.rows.get(row).map_or_else(String::new, ToString::to_string),
            });
        }
    }
}

impl MatchRecognize {
    /// A core matching with `recognizer` over rows whose event time is at
    /// `time_column`, accepting changes up to `allowed_lateness` behind the watermark.
    pub fn new(name: impl Into<String>, recognizer: MatchRecognizer, time_column: usize, allowed_lateness: Millis) -> Self {
        MatchRecognize {
            order: EventTimeOrder {
                origin: name.into(),
                time_column,
                allowed_lateness,
            },
            recognizer,
            partitions: HashMap::default(),
            buffers: Buffers::default(),
        }
    }

    /// Rows held over all partitions (bounded by `WITHIN` and the watermark).
    pub fn held_rows(&self) -> usize {
        self.partitions.values().map(|p| p.rows.len() + p.pending.len()).sum()
    }

    /// The output rows of a match. `ONE ROW PER MATCH`: the partition key,
    /// then the measures. `ALL ROWS PER MATCH`: each matched row, then its
    /// (running) measures.
    pub(super) fn outputs(recognizer: &MatchRecognizer, partition: &Row, rows: &[Row], found: &Match) -> Vec<Row> {
        match recognizer.rows_per_match {
            RowsPerMatch::One => {
                let measures = found.measures.first().map_or(&[][..], |row| row.datums());
                vec![partition.iter().chain(measures).cloned().collect()]
            }
            RowsPerMatch::All => rows[found.start..found.end]
                .iter()
                .zip(&found.measures)
                .map(|(row, measures)| row.iter().chain(measures.iter()).cloned().collect())
                .collect(),
        }
    }
}

/// The order of a partition's rows: event time, then the further `ORDER BY`
/// columns, then the rest of the row, so that rows equal in every ordering
/// column still take the same places on every run and worker.
fn compare_rows(time_column: usize, order_by: &[OrderColumn], a: &Row, b: &Row) -> Ordering {
    let time = |row: &Row| row.get(time_column).as_timestamp();
    time(a)
        .cmp(&time(b))
        .then_with(|| {
            order_by
                .iter()
                .map(|order| order.compare(a.get(order.column), b.get(order.column)))
                .find(|ordering| ordering.is_ne())
                .unwrap_or(Ordering::Equal)
        })
        .then_with(|| a.cmp(b))
}

impl TimedCore for MatchRecognize {
    type Input = (Row, Row);

    fn on_update(&mut self, (partition, row): (Row, Row), diff: Diff, context: &mut CoreContext) {
        let Some(ts) = self.order.admit(&row, context.watermark, context.dead_letters) else {
            return;
        };
        let state = self.partitions.entry(partition).or_default();
        let released = context.watermark != Millis::MIN && ts <= context.watermark;
        if !released {
            let count = state.pending.entry((ts, row)).or_default();
            *count += diff;
            return;
        }
        // A late row or revision: change the ordered rows in place.
        let (time_column, order_by) = (self.order.time_column, self.recognizer.order_by());
        let position = state.rows.partition_point(|r| compare_rows(time_column, order_by, r, &row).is_lt());
        if diff > 0 {
            if position < state.rows.len() {
                state.changed_from = Some(state.changed_from.map_or(position, |c| c.min(position)));
            }
            state.rows.splice(position..position, std::iter::repeat_n(row, diff as usize));
        } else {
            let copies = state.rows[position..]
                .iter()
                .take_while(|r| **r == row)
                .count()
                .min(diff.unsigned_abs() as usize);
            if copies > 0 {
                state.changed_from = Some(state.changed_from.map_or(position, |c| c.min(position)));
            }
            state.rows.drain(position..position + copies);
        }
    }

    fn on_epoch_end(&mut self, _epoch: Epoch, context: &mut CoreContext) {
        let watermark = context.watermark;
        let late_before = self.order.late_before(watermark);
        let (recognizer, time_column, origin) = (&self.recognizer, self.order.time_column, &self.order.origin);
        let compare = |a: &Row, b: &Row| compare_rows(time_column, recognizer.order_by(), a, b);
        for (partition, state) in &mut self.partitions {
            // Release what the watermark passed: all of it is later than every
            // released row. It comes ordered by time, then by value.
            let released = state.rows.len();
            for ((_, row), count) in release_passed(&mut state.pending, watermark) {
                state.rows.extend(std::iter::repeat_n(row, count.max(0) as usize));
            }
            if !recognizer.order_by().is_empty() {
                state.rows[released..].sort_by(|a, b| compare(a, b));
            }
            state.rematch(partition, recognizer, &mut self.buffers, context, origin);
            if let Some(late_before) = late_before {
                // No search starting more than WITHIN before the first time a
                // change may come from can take another row.
                if let Some(within) = recognizer.within {
                    state.walk.expire(late_before.saturating_sub(within.duration));
                }
                // Every change comes at or after this row, so the searches before
                // `settled` stand; the others, and PREV from them, need their rows.
                let changeable = state
                    .rows
                    .partition_point(|r| r.get(time_column).as_timestamp().is_some_and(|ts| ts < late_before));
                let settled = recognizer.earliest_affected_start(&state.rows, changeable);
                state.trim(settled.min(state.walk.first_open()).saturating_sub(recognizer.lookback()));
            }
        }
        self.partitions
            .retain(|_, state| !state.rows.is_empty() || !state.pending.is_empty() || !state.matches.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cep::{BinaryOp, MatchExpr, MatchSpec, OrderColumn, Within};
    use carbonflow_core::Datum;

    const MINUTE: Millis = 60_000;

    /// `A B+ C` with `C.price > 1.5 * A.price` within 10 minutes, over `(price, ts)`.
    fn core() -> MatchRecognize {
        let mut spec = MatchSpec::parse("A B+ C").unwrap();
        let (a, c) = (spec.var("A"), spec.var("C"));
        let threshold = MatchExpr::binary(BinaryOp::Multiply, MatchExpr::literal(Datum::float(1.5)), MatchExpr::column(a, 0));
        spec.define
            .push((c.unwrap(), MatchExpr::binary(BinaryOp::Gt, MatchExpr::column(c, 0), threshold)));
        spec.measures = vec![MatchExpr::column(a, 1).into_final()];
        spec.within = Some(Within {
            duration: 10 * MINUTE,
            time_column: 1,
        });
        MatchRecognize::new("test", MatchRecognizer::new(spec).unwrap(), 1, 0)
    }

    fn tick(minute: i64, price: f64) -> (Row, Row) {
        (
            Row::new(vec![Datum::string("N")]),
            Row::new(vec![Datum::float(price), Datum::Timestamp(minute * MINUTE)]),
        )
    }

    #[test]
    fn state_stays_within_the_within_horizon() {
        let mut core = core();
        let (mut output, mut dead) = (Vec::new(), Vec::new());
        let mut most = 0;
        for minute in 0..2_000 {
            let watermark = if minute == 0 { Millis::MIN } else { (minute - 1) * MINUTE };
            let mut context = CoreContext {
                watermark,
                output: &mut output,
                dead_letters: &mut dead,
            };
            // A spike every 100 minutes, so matches keep coming.
            core.on_update(tick(minute, if minute % 100 == 50 { 100.0 } else { 40.0 }), 1, &mut context);
            core.on_epoch_end(minute as u64, &mut context);
            most = most.max(core.held_rows());
        }
        assert!(dead.is_empty());
        let matches = output.iter().filter(|(_, diff)| *diff > 0).count() - output.iter().filter(|(_, diff)| *diff < 0).count();
        assert_eq!(matches, 20, "one spike match per 100 minutes");
        // A match is kept (with its rows) until the watermark passes its end,
        // so a partition holds at most about two WITHIN spans: 2 x 11 ticks here.
        assert!(most <= 23, "held {most} rows");
        assert!(most >= 11, "held {most} rows: less than one WITHIN span cannot be right");
    }

    /// Appended rows resume the open searches instead of rescanning: a row
    /// every open search stumbles over is reported once, in the epoch that
    /// releases it, although later epochs' searches cover it too.
    #[test]
    fn appended_rows_are_examined_once() {
        let mut spec = MatchSpec::parse("A B+ C").unwrap();
        let c = spec.var("C");
        // 10 / (price - 7) fails on price 7.
        let ratio = MatchExpr::binary(
            BinaryOp::Divide,
            MatchExpr::literal(Datum::Int(10)),
            MatchExpr::binary(BinaryOp::Subtract, MatchExpr::column(c, 0), MatchExpr::literal(Datum::Int(7))),
        );
        spec.define
            .push((c.unwrap(), MatchExpr::binary(BinaryOp::Gt, ratio, MatchExpr::literal(Datum::Int(20)))));
        spec.within = Some(Within {
            duration: 10 * MINUTE,
            time_column: 1,
        });
        let mut core = MatchRecognize::new("test", MatchRecognizer::new(spec).unwrap(), 1, 0);
        let (mut output, mut dead) = (Vec::new(), Vec::new());
        for minute in 0..40 {
            let mut context = CoreContext {
                watermark: minute * MINUTE,
                output: &mut output,
                dead_letters: &mut dead,
            };
            let price = if minute == 15 { 7 } else { 1 };
            let row = Row::new(vec![Datum::Int(price), Datum::Timestamp((minute + 1) * MINUTE)]);
            core.on_update((Row::new(vec![Datum::string("N")]), row), 1, &mut context);
            context.watermark = (minute + 1) * MINUTE;
            core.on_epoch_end(minute as u64, &mut context);
        }
        assert!(output.is_empty(), "no price is more than 20 x 10 / (price - 7)");
        let failed: Vec<&str> = dead.iter().map(|letter| letter.record.as_str()).collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].starts_with('7'), "{failed:?}");
    }

    /// `ORDER BY ts, seq [DESC]` over `(price, ts, seq)`: `A B` with
    /// `A AS price = 1, B AS price = 2`, measuring B's `seq`. Three rows share
    /// one time; the third arrives late, in place. Ordered by value instead
    /// the answer would be B = seq 1 both ways.
    #[test]
    fn rows_of_equal_time_follow_the_further_order_by_columns() {
        let run = |descending: bool| {
            let mut spec = MatchSpec::parse("A B").unwrap();
            let (a, b) = (spec.var("A"), spec.var("B"));
            let price_is = |var, price| MatchExpr::binary(BinaryOp::Eq, MatchExpr::column(var, 0), MatchExpr::literal(Datum::Int(price)));
            spec.define = vec![(a.unwrap(), price_is(a, 1)), (b.unwrap(), price_is(b, 2))];
            spec.measures = vec![MatchExpr::column(b, 2).into_final()];
            spec.order_by = vec![OrderColumn {
                column: 2,
                descending,
                nulls_first: !descending,
            }];
            let mut core = MatchRecognize::new("test", MatchRecognizer::new(spec).unwrap(), 1, 0);
            let (mut output, mut dead) = (Vec::new(), Vec::new());
            let tick = |price, seq| {
                (
                    Row::new(vec![Datum::string("N")]),
                    Row::new(vec![Datum::Int(price), Datum::Timestamp(MINUTE), Datum::Int(seq)]),
                )
            };
            let epochs = [(Millis::MIN, vec![tick(2, 1), tick(1, 3)]), (MINUTE, vec![tick(2, 5)])];
            let mut after_each_epoch = Vec::new();
            for (epoch, (watermark, ticks)) in epochs.into_iter().enumerate() {
                let mut context = CoreContext {
                    watermark,
                    output: &mut output,
                    dead_letters: &mut dead,
                };
                for tick in ticks {
                    core.on_update(tick, 1, &mut context);
                }
                context.watermark = MINUTE;
                core.on_epoch_end(epoch as u64, &mut context);
                let mut net: Vec<(Row, Diff)> = Vec::new();
                for (row, diff) in &output {
                    match net.iter_mut().find(|(known, _)| known == row) {
                        Some((_, total)) => *total += diff,
                        None => net.push((row.clone(), *diff)),
                    }
                }
                net.retain(|(_, diff)| *diff != 0);
                after_each_epoch.push(net);
            }
            assert!(dead.is_empty());
            after_each_epoch
        };
        let measured = |seq: i64| vec![(Row::new(vec![Datum::string("N"), Datum::Int(seq)]), 1)];
        // seq 1 (price 2), seq 3 (price 1); then seq 5 (price 2) after them.
        assert_eq!(run(false), [vec![], measured(5)]);
        // seq 3 (price 1), seq 1 (price 2); then seq 5 before them: the match stays.
        assert_eq!(run(true), [measured(1), measured(1)]);
    }

    #[test]
    fn a_change_behind_the_allowed_lateness_is_dead_lettered() {
        let mut core = core();
        let (mut output, mut dead) = (Vec::new(), Vec::new());
        let mut context = CoreContext {
            watermark: 30 * MINUTE,
            output: &mut output,
            dead_letters: &mut dead,
        };
        core.on_update(tick(29, 40.0), 1, &mut context);
        core.on_update(tick(30, 40.0), 1, &mut context);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason, DeadLetterReason::Late);
    }
}
