//! `MatchRecognize`: a [`MatchRecognizer`] driven by epochs and the watermark,
//! per partition, with retractions.
//!
//! Rows wait in a per-partition buffer until the watermark passes their event
//! time, because a pattern must see a partition's rows in event-time order;
//! then they are appended to the partition's ordered rows and the matches are
//! recomputed from the earliest start a change can affect
//! ([`MatchRecognizer::earliest_affected_start`], [`resume`]). A row that
//! arrives, or is retracted, after the watermark passed it (a late revision)
//! changes the ordered rows in place and recomputes the same way. Output is
//! differential: the matches that no longer hold are retracted and the new
//! ones inserted, one row per match: the partition key, then the measures.
//!
//! A change more than the allowed lateness behind the watermark is late and
//! goes to the dead-letter output, as for windows. State is bounded by
//! `WITHIN`: a match spans at most `WITHIN`, so once a row is more than
//! `WITHIN` behind the first time a change may still come from, no future
//! change can reach a match holding it. Such rows are dropped (keeping the
//! few `PREV` can still reach), together with the matches wholly before them
//! (their output stands); a match is kept until it is wholly behind, so a
//! partition holds at most about two `WITHIN` spans of rows. Without
//! `WITHIN` nothing bounds how far back a change can reach, and partitions
//! keep their rows.

use std::collections::{BTreeMap, HashMap};

use carbonflow_core::{DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row};

use super::{Match, MatchRecognizer, RowsPerMatch, resume};
use crate::dataflow::{CoreContext, EventTimeOrder, TimedCore, release_passed};

/// The `MatchRecognize` operator core. Input: `(partition key, row)`.
pub struct MatchRecognize {
    order: EventTimeOrder,
    recognizer: MatchRecognizer,
    partitions: HashMap<Row, Partition>,
}

struct Partition {
    /// Rows the watermark has not passed yet, by event time.
    pending: BTreeMap<(Millis, Row), Diff>,
    /// Released rows in event-time order (then row order), one entry per copy.
    rows: Vec<Row>,
    /// The matches over `rows`, in order.
    matches: Vec<Match>,
    /// The output rows emitted for each match (parallel to `matches`), retracted as they were.
    emitted: Vec<Vec<Row>>,
    /// The first index of `rows` changed since the matches were computed.
    changed_from: Option<usize>,
    /// The match number of `matches[0]` (earlier matches were trimmed).
    first_number: u64,
}

impl Partition {
    /// Drops the rows before `cut` and the matches wholly before them.
    fn trim(&mut self, cut: usize) {
        // A kept match must keep its rows' indices, and one whose skip target
        // lies past the cut still constrains where the next match may start.
        let cut = self
            .matches
            .iter()
            .find(|m| m.next_start > cut || m.end > cut)
            .map_or(cut, |m| m.start.min(cut));
        if cut == 0 {
            return;
        }
        let dropped = self.matches.iter().take_while(|m| m.end <= cut && m.next_start <= cut).count();
        self.matches.drain(..dropped);
        self.emitted.drain(..dropped);
        self.first_number += dropped as u64;
        self.rows.drain(..cut);
        for found in &mut self.matches {
            found.start -= cut;
            found.end -= cut;
            found.next_start -= cut;
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
            partitions: HashMap::new(),
        }
    }

    /// Rows held over all partitions (bounded by `WITHIN` and the watermark).
    pub fn held_rows(&self) -> usize {
        self.partitions.values().map(|p| p.rows.len() + p.pending.len()).sum()
    }

    /// Event time before which rows can no longer be part of a changing
    /// match: a match spans at most `WITHIN`, and no change comes from before
    /// [`Self::late_before`].
    fn horizon(&self, watermark: Millis) -> Option<Millis> {
        let within = self.recognizer.within?;
        self.order.late_before(watermark).map(|late| late.saturating_sub(within.duration))
    }

    /// The output rows of a match. `ONE ROW PER MATCH`: the partition key,
    /// then the measures. `ALL ROWS PER MATCH`: each matched row, then its
    /// (running) measures.
    fn outputs(recognizer: &MatchRecognizer, partition: &Row, rows: &[Row], found: &Match) -> Vec<Row> {
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

impl TimedCore for MatchRecognize {
    type Input = (Row, Row);

    fn on_update(&mut self, (partition, row): (Row, Row), diff: Diff, context: &mut CoreContext) {
        let Some(ts) = self.order.admit(&row, context.watermark, context.dead_letters) else {
            return;
        };
        let time_column = self.order.time_column;
        let state = self.partitions.entry(partition).or_insert_with(|| Partition {
            pending: BTreeMap::new(),
            rows: Vec::new(),
            matches: Vec::new(),
            emitted: Vec::new(),
            changed_from: None,
            first_number: 1,
        });
        let released = context.watermark != Millis::MIN && ts <= context.watermark;
        if !released {
            let count = state.pending.entry((ts, row)).or_default();
            *count += diff;
            return;
        }
        // A late row or revision: change the ordered rows in place.
        let key = |r: &Row| (r.get(time_column).as_timestamp().unwrap_or(Millis::MIN), r.clone());
        let position = state.rows.partition_point(|r| key(r) < (ts, row.clone()));
        if diff > 0 {
            state.rows.splice(position..position, std::iter::repeat_n(row, diff as usize));
        } else {
            let copies = state.rows[position..]
                .iter()
                .take_while(|r| **r == row)
                .count()
                .min(diff.unsigned_abs() as usize);
            state.rows.drain(position..position + copies);
        }
        state.changed_from = Some(state.changed_from.map_or(position, |c| c.min(position)));
    }

    fn on_epoch_end(&mut self, _epoch: Epoch, context: &mut CoreContext) {
        let watermark = context.watermark;
        let horizon = self.horizon(watermark);
        let (recognizer, time_column) = (&self.recognizer, self.order.time_column);
        for (partition, state) in &mut self.partitions {
            // Release what the watermark passed: all of it is later than every released row.
            let from = state.rows.len();
            for ((_, row), count) in release_passed(&mut state.pending, watermark) {
                state.rows.extend(std::iter::repeat_n(row, count.max(0) as usize));
            }
            if state.rows.len() > from {
                state.changed_from = Some(state.changed_from.map_or(from, |c| c.min(from)));
            }
            if let Some(changed) = state.changed_from.take() {
                let earliest = recognizer.earliest_affected_start(&state.rows, changed);
                let resumed = resume(&state.matches, earliest, state.first_number);
                let scan = recognizer.find_matches(&state.rows, resumed.start, resumed.match_number);
                state.matches.truncate(resumed.kept);
                for old in state.emitted.drain(resumed.kept..) {
                    context.output.extend(old.into_iter().map(|row| (row, -1)));
                }
                for found in &scan.matches {
                    let rows = Self::outputs(recognizer, partition, &state.rows, found);
                    context.output.extend(rows.iter().map(|row| (row.clone(), 1)));
                    state.emitted.push(rows);
                }
                state.matches.extend(scan.matches);
                for failure in scan.failures {
                    context.dead_letters.push(DeadLetter {
                        origin: self.order.origin.clone(),
                        reason: DeadLetterReason::Eval,
                        detail: failure.message.to_string(),
                        position: "MATCH_RECOGNIZE".into(),
                        record: state.rows.get(failure.row).map_or_else(String::new, ToString::to_string),
                    });
                }
            }
            if let Some(horizon) = horizon {
                let behind = state.rows.partition_point(|r| r.get(time_column).as_timestamp().is_some_and(|ts| ts < horizon));
                state.trim(behind.saturating_sub(recognizer.lookback()));
            }
        }
        self.partitions
            .retain(|_, state| !state.rows.is_empty() || !state.pending.is_empty() || !state.matches.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cep::{BinaryOp, MatchExpr, MatchSpec, Within};
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
