//! Primary-key upserts: how a price revision becomes a retraction plus an insertion.
//!
//! A source table with `PRIMARY KEY (...) NOT ENFORCED` is a changelog keyed
//! by that key: ISOs republish an interval with a corrected price under the
//! same (node, interval). The first row for a key is inserted; a later row
//! with the same key retracts the previous one and inserts itself, so every
//! window, join and alert downstream corrects itself.
//!
//! State is bounded by event time: a key is forgotten once the watermark is
//! more than `retention` past its row's event time, and a revision of a
//! forgotten key is late (dead-lettered) rather than double counted.

use std::collections::{BTreeMap, HashMap};

use carbonflow_core::{DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row};

use crate::dataflow::{CoreContext, TimedCore};

/// The upsert core. Input: `(key, row)` with the row's event time at `time_column`.
pub struct Upsert {
    table: String,
    time_column: Option<usize>,
    retention: Millis,
    current: HashMap<Row, Row>,
    /// Keys by the event time of their current row, for eviction.
    by_time: BTreeMap<Millis, Vec<Row>>,
}

impl Upsert {
    /// An upsert for `table`, evicting keys `retention` behind the watermark
    /// when rows have an event time.
    pub fn new(table: impl Into<String>, time_column: Option<usize>, retention: Millis) -> Self {
        Upsert {
            table: table.into(),
            time_column,
            retention,
            current: HashMap::new(),
            by_time: BTreeMap::new(),
        }
    }

    /// How many keys are held.
    pub fn keys(&self) -> usize {
        self.current.len()
    }

    fn event_time(&self, row: &Row) -> Option<Millis> {
        self.time_column.and_then(|c| row.get(c).as_timestamp())
    }

    fn horizon(&self, watermark: Millis) -> Option<Millis> {
        (watermark != Millis::MIN && self.time_column.is_some()).then(|| watermark.saturating_sub(self.retention))
    }
}

impl TimedCore for Upsert {
    type Input = (Row, Row);

    fn on_update(&mut self, (key, row): (Row, Row), diff: Diff, context: &mut CoreContext) {
        if diff < 0 {
            // An upstream retraction removes the row only if it is the current one.
            if self.current.get(&key) == Some(&row) {
                self.current.remove(&key);
                context.output.push((row, -1));
            }
            return;
        }
        let time = self.event_time(&row);
        if let (Some(time), Some(horizon)) = (time, self.horizon(context.watermark))
            && time < horizon
        {
            context.dead_letters.push(DeadLetter {
                origin: self.table.clone(),
                reason: DeadLetterReason::Late,
                detail: format!("row older than the upsert retention ({} ms behind the watermark)", self.retention),
                position: "event time".into(),
                record: row.to_string(),
            });
            return;
        }
        if let Some(previous) = self.current.insert(key.clone(), row.clone()) {
            if previous == row {
                return;
            }
            context.output.push((previous, -1));
        }
        if let Some(time) = time {
            self.by_time.entry(time).or_default().push(key);
        }
        context.output.push((row, 1));
    }

    fn on_epoch_end(&mut self, _epoch: Epoch, context: &mut CoreContext) {
        let Some(horizon) = self.horizon(context.watermark) else { return };
        while let Some((&time, _)) = self.by_time.first_key_value() {
            if time >= horizon {
                break;
            }
            for key in self.by_time.remove(&time).unwrap_or_default() {
                // A key revised to a later event time is indexed there too; keep it.
                let current_time = self.current.get(&key).and_then(|row| self.event_time(row));
                if current_time.is_some_and(|t| t < horizon) {
                    self.current.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbonflow_core::Datum;

    fn tick(node: &str, ts: Millis, price: f64) -> (Row, Row) {
        let row = Row::new(vec![Datum::string(node), Datum::Timestamp(ts), Datum::float(price)]);
        (row.project(&[0, 1]), row)
    }

    fn apply(core: &mut Upsert, updates: Vec<(Row, Row)>, watermark: Millis) -> (Vec<(Row, Diff)>, usize) {
        let (mut output, mut dead) = (Vec::new(), Vec::new());
        let mut context = CoreContext {
            watermark,
            output: &mut output,
            dead_letters: &mut dead,
        };
        for update in updates {
            core.on_update(update, 1, &mut context);
        }
        core.on_epoch_end(0, &mut context);
        (output, dead.len())
    }

    #[test]
    fn a_revision_retracts_the_previous_row() {
        let mut core = Upsert::new("ticks", Some(1), 1_000);
        let (out, _) = apply(&mut core, vec![tick("A", 0, 10.0), tick("B", 0, 20.0)], Millis::MIN);
        assert_eq!(out.len(), 2);
        let (out, _) = apply(&mut core, vec![tick("A", 0, 11.0)], Millis::MIN);
        assert_eq!(out, vec![(tick("A", 0, 10.0).1, -1), (tick("A", 0, 11.0).1, 1)]);
        // Republishing the same row changes nothing.
        let (out, _) = apply(&mut core, vec![tick("A", 0, 11.0)], Millis::MIN);
        assert!(out.is_empty());
    }

    #[test]
    fn state_is_bounded_and_old_revisions_are_late() {
        let mut core = Upsert::new("ticks", Some(1), 1_000);
        apply(&mut core, vec![tick("A", 0, 10.0), tick("A", 5_000, 12.0)], Millis::MIN);
        assert_eq!(core.keys(), 2);
        let (_, dead) = apply(&mut core, vec![], 3_000);
        assert_eq!(dead, 0);
        assert_eq!(core.keys(), 1, "the key at t=0 is 3 s behind a 1 s retention");
        let (out, dead) = apply(&mut core, vec![tick("A", 0, 99.0)], 3_000);
        assert!(out.is_empty());
        assert_eq!(dead, 1);
    }
}
