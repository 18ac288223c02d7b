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
//! Partition state is not yet trimmed behind the watermark (WITHIN bounds how
//! far back a change can reach, so the prefix before it could be dropped):
//! recorded as open work on issue 4.

use std::collections::{BTreeMap, HashMap};

use carbonflow_core::{DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row};

use super::{Match, MatchRecognizer, resume};
use crate::dataflow::{CoreContext, TimedCore};

/// The `MatchRecognize` operator core. Input: `(partition key, row)`.
pub struct MatchRecognize {
    name: String,
    recognizer: MatchRecognizer,
    time_column: usize,
    partitions: HashMap<Row, Partition>,
}

#[derive(Default)]
struct Partition {
    /// Rows the watermark has not passed yet, by event time.
    pending: BTreeMap<(Millis, Row), Diff>,
    /// Released rows in event-time order (then row order), one entry per copy.
    rows: Vec<Row>,
    /// The matches over `rows`, in order.
    matches: Vec<Match>,
    /// The first index of `rows` changed since the matches were computed.
    changed_from: Option<usize>,
}

impl MatchRecognize {
    /// A core matching with `recognizer` over rows whose event time is at `time_column`.
    pub fn new(name: impl Into<String>, recognizer: MatchRecognizer, time_column: usize) -> Self {
        MatchRecognize {
            name: name.into(),
            recognizer,
            time_column,
            partitions: HashMap::new(),
        }
    }

    fn time(&self, row: &Row) -> Option<Millis> {
        row.get(self.time_column).as_timestamp()
    }

    /// The output row of a match: the partition key, then its measures.
    fn output(partition: &Row, found: &Match) -> Row {
        let measures = found.measures.first().map_or(&[][..], |row| row.datums());
        partition.iter().chain(measures).cloned().collect()
    }
}

impl TimedCore for MatchRecognize {
    type Input = (Row, Row);

    fn on_update(&mut self, (partition, row): (Row, Row), diff: Diff, context: &mut CoreContext) {
        let Some(ts) = self.time(&row) else {
            context.dead_letters.push(DeadLetter {
                origin: self.name.clone(),
                reason: DeadLetterReason::Eval,
                detail: "a row without event time cannot be ordered for MATCH_RECOGNIZE".into(),
                position: "event time".into(),
                record: row.to_string(),
            });
            return;
        };
        let time_column = self.time_column;
        let state = self.partitions.entry(partition).or_default();
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
        for (partition, state) in &mut self.partitions {
            // Release what the watermark passed: all of it is later than every released row.
            if watermark != Millis::MIN && state.pending.first_key_value().is_some_and(|((ts, _), _)| *ts <= watermark) {
                let later = state.pending.split_off(&(watermark.saturating_add(1), Row::empty()));
                let ready = std::mem::replace(&mut state.pending, later);
                let from = state.rows.len();
                for ((_, row), count) in ready {
                    state.rows.extend(std::iter::repeat_n(row, count.max(0) as usize));
                }
                if state.rows.len() > from {
                    state.changed_from = Some(state.changed_from.map_or(from, |c| c.min(from)));
                }
            }
            let Some(changed) = state.changed_from.take() else { continue };
            let earliest = self.recognizer.earliest_affected_start(&state.rows, changed);
            let resumed = resume(&state.matches, earliest, 1);
            let scan = self.recognizer.find_matches(&state.rows, resumed.start, resumed.match_number);
            for old in state.matches.drain(resumed.kept..) {
                context.output.push((Self::output(partition, &old), -1));
            }
            for found in &scan.matches {
                context.output.push((Self::output(partition, found), 1));
            }
            state.matches.extend(scan.matches);
            for failure in scan.failures {
                context.dead_letters.push(DeadLetter {
                    origin: self.name.clone(),
                    reason: DeadLetterReason::Eval,
                    detail: failure.message.to_string(),
                    position: "MATCH_RECOGNIZE".into(),
                    record: state.rows.get(failure.row).map_or_else(String::new, ToString::to_string),
                });
            }
        }
    }
}
