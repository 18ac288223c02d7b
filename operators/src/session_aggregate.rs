//! The `SessionWindowAggregate` operator core: [`SessionWindows`] driven by
//! epochs and the watermark.
//!
//! Output rows are `partition keys ++ [window_start, window_end, window_time]
//! ++ aggregate results`, with `window_time = window_end - 1` as in Flink.
//! Changes are emitted at the end of every epoch (`EMIT CHANGES`); a row that
//! could only touch a retired session is late and dead-lettered.

use carbonflow_core::{Datum, DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row};

use crate::aggregate::AggregateSpec;
use crate::dataflow::{CoreContext, TimedCore};
use crate::windows::{SessionChange, SessionWindows};

/// Session windows as a timed core. Input: `(partition key, args ++ [event time])`.
pub struct SessionAggregate {
    name: String,
    sessions: SessionWindows,
    gap: Millis,
    allowed_lateness: Millis,
    changes: Vec<SessionChange>,
}

impl SessionAggregate {
    /// A core for sessions separated by `gap`, accepting rows up to `allowed_lateness` behind the watermark.
    pub fn new(name: impl Into<String>, gap: Millis, specs: Vec<AggregateSpec>, allowed_lateness: Millis) -> Self {
        SessionAggregate { name: name.into(), sessions: SessionWindows::new(gap, specs), gap, allowed_lateness, changes: Vec::new() }
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
            context.output.push((Row::new(datums), diff));
        }
        if context.watermark != Millis::MIN {
            self.sessions.retire(context.watermark, self.allowed_lateness);
        }
    }
}
