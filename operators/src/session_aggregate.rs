//! The `SessionWindowAggregate` operator core: [`SessionWindows`] driven by
//! epochs and the watermark.
//!
//! Output rows are `partition keys ++ [window_start, window_end, window_time]
//! ++ aggregate results`, with `window_time = window_end - 1` as in Flink.
//! With `EMIT CHANGES` the net changes are emitted at the end of every epoch.
//! With `EMIT FINAL` a session row is held back until the watermark reaches
//! its `window_time`; a later row within the allowed lateness that changes a
//! published session retracts it and publishes the corrected one. A row that
//! could only touch a retired session is late and dead-lettered.

use std::collections::{BTreeMap, BTreeSet};

use carbonflow_core::{Datum, DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row};

use crate::aggregate::AggregateSpec;
use crate::dataflow::{CoreContext, TimedCore};
use crate::grouped::EmitMode;
use crate::windows::{SessionChange, SessionWindows};

/// Session windows as a timed core. Input: `(partition key, args ++ [event time])`.
pub struct SessionAggregate {
    name: String,
    sessions: SessionWindows,
    gap: Millis,
    allowed_lateness: Millis,
    changes: Vec<SessionChange>,
    /// `EMIT FINAL` only: output rows not yet complete, with their net count.
    held: Option<HeldBack>,
}

/// What `EMIT FINAL` holds back: pending rows by `window_time`, and the rows published.
#[derive(Default)]
struct HeldBack {
    pending: BTreeMap<(Millis, Row), Diff>,
    /// Published rows by `window_time`, kept while a late row could still retract them.
    published: BTreeSet<(Millis, Row)>,
}

impl SessionAggregate {
    /// A core for sessions separated by `gap`, accepting rows up to `allowed_lateness` behind the watermark.
    pub fn new(name: impl Into<String>, gap: Millis, specs: Vec<AggregateSpec>, allowed_lateness: Millis, emit: EmitMode) -> Self {
        let held = (emit == EmitMode::Final).then(HeldBack::default);
        SessionAggregate {
            name: name.into(),
            sessions: SessionWindows::new(gap, specs),
            gap,
            allowed_lateness,
            changes: Vec::new(),
            held,
        }
    }
}

impl HeldBack {
    /// Emits retractions of published rows at once, and insertions whose
    /// `window_time` the watermark has reached.
    fn release(&mut self, watermark: Millis, output: &mut Vec<(Row, Diff)>) {
        let complete = |window_time: Millis| watermark != Millis::MIN && watermark >= window_time;
        self.pending.retain(|key, count| {
            if *count == 0 {
                return false;
            }
            if *count < 0 {
                // Insertions are only ever released, so a net retraction is of a published row.
                if self.published.remove(key) {
                    output.push((key.1.clone(), *count));
                }
                return false;
            }
            if complete(key.0) {
                self.published.insert(key.clone());
                output.push((key.1.clone(), *count));
                return false;
            }
            true
        });
    }

    /// Forgets published rows no late row can reach any more (their session is retired).
    fn forget_before(&mut self, window_time: Millis) {
        self.published = self.published.split_off(&(window_time, Row::empty()));
    }
}

impl TimedCore for SessionAggregate {
    type Input = (Row, Row);

    fn on_update(&mut self, (partition, args): (Row, Row), diff: Diff, context: &mut CoreContext) {
        let (values, time) = args.split_at(args.len() - 1);
        let Some(ts) = time[0].as_timestamp() else {
            context.dead_letters.push(DeadLetter {
                origin: self.name.clone(),
                reason: DeadLetterReason::Eval,
                detail: "a row without event time cannot join a session".into(),
                position: "event time".into(),
                record: partition.to_string(),
            });
            return;
        };
        if context.watermark != Millis::MIN && self.sessions.is_late(ts, context.watermark, self.allowed_lateness) {
            context.dead_letters.push(DeadLetter {
                origin: self.name.clone(),
                reason: DeadLetterReason::Late,
                detail: format!("a session gap of {} ms after this row has already passed the watermark", self.gap),
                position: "event time".into(),
                record: format!("{partition} at {}", carbonflow_core::time::format_timestamp(ts)),
            });
            return;
        }
        self.sessions.update(&partition, ts, values, diff);
    }

    fn on_epoch_end(&mut self, _epoch: Epoch, context: &mut CoreContext) {
        self.sessions.drain_changes(&mut self.changes);
        for (partition, start, end, results, diff) in self.changes.drain(..) {
            let mut datums = partition.to_vec();
            datums.extend([Datum::Timestamp(start), Datum::Timestamp(end), Datum::Timestamp(end - 1)]);
            datums.extend(results);
            let row = Row::new(datums);
            match &mut self.held {
                None => context.output.push((row, diff)),
                Some(held) => {
                    let count = held.pending.entry((end - 1, row)).or_default();
                    *count += diff;
                }
            }
        }
        if let Some(held) = &mut self.held {
            held.release(context.watermark, context.output);
        }
        if context.watermark != Millis::MIN {
            self.sessions.retire(context.watermark, self.allowed_lateness);
            if let Some(held) = &mut self.held {
                // `SessionWindows::retire` drops sessions with end + gap + lateness <= watermark.
                held.forget_before(context.watermark.saturating_sub(self.gap + self.allowed_lateness) - 1);
            }
        }
    }
}
