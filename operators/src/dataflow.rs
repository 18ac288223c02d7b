//! The thin timely wrapper shared by carbonflow's stateful operators.
//!
//! Every stateful operator (windowed and session aggregation, primary-key
//! upserts, sinks) has the same outer shape: it routes `(data, epoch, diff)`
//! updates to the worker owning their key, buffers them until every input
//! has passed their epoch, applies them in arrival order to a plain-Rust core,
//! then advances the core's event-time watermark and lets it emit. That shape
//! lives here once, in [`timed_operator`]; the cores implement [`TimedCore`]
//! and know nothing of timely.
//!
//! Watermarks travel beside the data on their own broadcast stream of
//! [`WatermarkUpdate`]s: each source instance reports, at every epoch, the
//! event time up to which it is complete. An operator's watermark is the
//! minimum over the source instances of the tables that feed it; an instance
//! that has not reported yet holds it at [`Millis::MIN`]. An instance that
//! reports itself idle (every Kafka partition it reads has gone quiet) is
//! left out of the minimum until it reports again without the flag; with
//! every instance idle nothing is pending anywhere, and the watermark moves
//! to the largest one reported. The watermark never moves back: an instance
//! returning from idleness behind it sees its rows treated as late.
//!
//! In front of a grouped aggregation over an append-only input,
//! [`combine_per_epoch`] pre-aggregates each epoch's rows on the worker that
//! read them, so partial states, not rows, cross the exchange.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

use carbonflow_core::metrics::Histogram;
use carbonflow_core::{DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row};

use crate::aggregate::GroupAccumulator;
use crate::grouped::Combiner;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

/// What an operator's watermark follows: the watermarks of the tables that
/// feed it, held `lag` behind them.
///
/// The lag is for rows whose time attribute may still change further behind
/// the tables' watermark than the allowed lateness: a `SESSION` aggregation's
/// `window_time` (a late row admitted within a gap of a session changes it)
/// runs a gap behind, so an operator reading it sees the tables' watermark
/// minus the gap (the README's Windows paragraph gives the reasoning).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatermarkSource {
    /// The tables (indexes in the program); with none, the watermark stays at [`Millis::MIN`].
    pub tables: BTreeSet<u32>,
    /// How far the watermark trails theirs.
    pub lag: Millis,
}

/// A source instance's progress in event time, stamped with an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkUpdate {
    /// The table (index in the program).
    pub table: u32,
    /// The worker whose instance reports.
    pub instance: u32,
    /// Event time up to which the instance is complete.
    pub watermark: Millis,
    /// The instance has nothing to say for now and holds nothing back.
    pub idle: bool,
}

/// What a core may do while it handles an epoch.
pub struct CoreContext<'a> {
    /// The operator's event-time watermark (see the module doc).
    pub watermark: Millis,
    /// Output changes, emitted at the current epoch.
    pub output: &'a mut Vec<(Row, Diff)>,
    /// Rows the core rejects (late events), for the dead-letter output.
    pub dead_letters: &'a mut Vec<DeadLetter>,
}

/// The plain-Rust state machine behind a stateful operator.
pub trait TimedCore: 'static {
    /// The data the core consumes.
    type Input;

    /// One input change, in arrival order within its epoch. The watermark in
    /// `context` is the one in force before this epoch.
    fn on_update(&mut self, input: Self::Input, diff: Diff, context: &mut CoreContext);

    /// The end of an epoch: every update of it has been applied and the
    /// watermark has advanced to the epoch's value.
    fn on_epoch_end(&mut self, epoch: Epoch, context: &mut CoreContext);

    /// Every input is exhausted; no epoch follows.
    fn on_finish(&mut self) {}
}

/// Admission by event time for the cores that order each partition's rows
/// by event time and accept changes up to an allowed lateness behind the
/// watermark (`MATCH_RECOGNIZE`, OVER): rows wait in a per-partition
/// `pending` map until the watermark passes them ([`release_passed`]); a
/// change further behind than the lateness, or a row without event time, is
/// dead-lettered.
#[derive(Clone, Debug)]
pub struct EventTimeOrder {
    /// The operator's name, for dead letters.
    pub origin: String,
    /// The event-time column (TIMESTAMP).
    pub time_column: usize,
    /// How far behind the watermark a change is still accepted.
    pub allowed_lateness: Millis,
}

impl EventTimeOrder {
    /// Event time before which a change is late: more than the allowed
    /// lateness behind the watermark (none before the first watermark).
    pub fn late_before(&self, watermark: Millis) -> Option<Millis> {
        (watermark != Millis::MIN).then(|| watermark.saturating_sub(self.allowed_lateness))
    }

    /// The event time of `row` when a change of it is accepted under
    /// `watermark`; otherwise the row goes to `dead_letters`.
    pub fn admit(&self, row: &Row, watermark: Millis, dead_letters: &mut Vec<DeadLetter>) -> Option<Millis> {
        let (reason, detail) = match row.get(self.time_column).as_timestamp() {
            None => (
                DeadLetterReason::Eval,
                format!("a row without event time cannot be ordered for {}", self.origin),
            ),
            Some(ts) if self.late_before(watermark).is_some_and(|late| ts < late) => (
                DeadLetterReason::Late,
                "the row is further behind the watermark than the allowed lateness".to_owned(),
            ),
            Some(ts) => return Some(ts),
        };
        dead_letters.push(DeadLetter {
            origin: self.origin.clone(),
            reason,
            detail,
            position: "event time".into(),
            record: row.to_string(),
        });
        None
    }
}

/// Takes the rows the watermark has passed (event time at or before it)
/// out of `pending`, in order; the later ones stay.
pub fn release_passed(pending: &mut BTreeMap<(Millis, Row), Diff>, watermark: Millis) -> BTreeMap<(Millis, Row), Diff> {
    if watermark == Millis::MIN || pending.first_key_value().is_none_or(|((ts, _), _)| *ts > watermark) {
        return BTreeMap::new();
    }
    let later = pending.split_off(&(watermark.saturating_add(1), Row::empty()));
    std::mem::replace(pending, later)
}

/// Updates to collections: differential's `(data, time, diff)` triples.
pub type Updates<D> = Vec<(D, Epoch, Diff)>;

/// Where an update goes: a worker is chosen by this hash modulo the worker count.
pub type Route<D> = fn(&D) -> u64;

/// What an operator holds for an epoch its inputs have not passed yet: the
/// capability to emit at it, the updates, and the watermark reports.
type PendingEpoch<D> = (Capability<Epoch>, Vec<(D, Diff)>, Vec<WatermarkUpdate>);

/// A stable hash for routing by key: fixed-seed foldhash, so every process
/// of a cluster sends a key to the same worker.
pub fn route_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    foldhash::fast::FixedState::with_seed(ROUTE_SEED).hash_one(key)
}

/// The seed of [`route_hash`]; changing it moves keys between workers.
const ROUTE_SEED: u64 = 0x6361_7262_6f6e_666c;

/// Builds a stateful operator around `core`.
///
/// * `data` is routed by `route`; `watermarks` must already be broadcast.
/// * `source` names the tables whose watermarks bound this operator and how
///   far behind them it runs; with no table, the core always sees [`Millis::MIN`].
/// * `batch_seconds` records the time the core spends on each epoch with input.
/// * `dead_letter` receives what the core rejects.
#[allow(clippy::too_many_arguments)] // each is a distinct part of the operator's wiring
pub fn timed_operator<'scope, D, C>(
    data: Stream<'scope, Epoch, Updates<D>>,
    watermarks: Stream<'scope, Epoch, Vec<WatermarkUpdate>>,
    route: Route<D>,
    source: WatermarkSource,
    name: &str,
    batch_seconds: Histogram,
    mut core: C,
    mut dead_letter: impl FnMut(DeadLetter) + 'static,
) -> Stream<'scope, Epoch, Updates<Row>>
where
    D: timely::ExchangeData,
    C: TimedCore<Input = D>,
{
    let peers = data.scope().peers() as u32;
    let exchange = Exchange::new(move |update: &(D, Epoch, Diff)| route(&update.0));
    data.binary_frontier::<_, CapacityContainerBuilder<Updates<Row>>, _, _, _, _>(watermarks, exchange, Pipeline, name, move |_capability, _info| {
        // Pending work per epoch: the capability to emit at it, updates, watermark reports.
        let mut pending: BTreeMap<Epoch, PendingEpoch<D>> = BTreeMap::new();
        // The update buffer of the last epoch applied, empty, kept for the
        // next one: an epoch's updates then fill capacity already there
        // instead of growing (and copying) a fresh buffer message by message.
        let mut spare: Vec<(D, Diff)> = Vec::new();
        let mut reported = InstanceWatermarks::default();
        let mut watermark = Millis::MIN;
        let mut output = Vec::new();
        let mut rejected = Vec::new();
        let mut finished = false;
        move |(data_input, data_frontier), (watermark_input, watermark_frontier), out| {
            // `for_each` keeps arrival order within an epoch (upserts depend on it).
            // Differential updates carry their own epoch, at or after the message's.
            // Updates come in runs of one epoch: its entry is looked up once a run.
            data_input.for_each(|capability, updates| {
                let mut updates = updates.drain(..).peekable();
                while let Some((d, epoch, diff)) = updates.next() {
                    let entry = pending
                        .entry(epoch)
                        .or_insert_with(|| (capability.delayed(&epoch, 0), std::mem::take(&mut spare), Vec::new()));
                    entry.1.reserve(updates.len() + 1);
                    entry.1.push((d, diff));
                    while let Some((d, _, diff)) = updates.next_if(|(_, next, _)| *next == epoch) {
                        entry.1.push((d, diff));
                    }
                }
            });
            watermark_input.for_each(|capability, updates| {
                let Some(&epoch) = capability.least() else { return };
                let entry = pending
                    .entry(epoch)
                    .or_insert_with(|| (capability.delayed(&epoch, 0), std::mem::take(&mut spare), Vec::new()));
                entry.2.extend(updates.drain(..).filter(|u| source.tables.contains(&u.table)));
            });
            while let Some(entry) = pending.first_entry() {
                let epoch = *entry.key();
                if data_frontier.less_equal(&epoch) || watermark_frontier.less_equal(&epoch) {
                    break;
                }
                let (capability, mut updates, reports) = entry.remove();
                let batch_started = (!updates.is_empty()).then(Instant::now);
                let mut context = CoreContext {
                    watermark,
                    output: &mut output,
                    dead_letters: &mut rejected,
                };
                for (update, diff) in updates.drain(..) {
                    core.on_update(update, diff, &mut context);
                }
                if updates.capacity() > spare.capacity() {
                    spare = updates;
                }
                reports.iter().for_each(|report| reported.record(report));
                if let Some(combined) = reported.combined(&source.tables, peers) {
                    watermark = watermark.max(combined.saturating_sub(source.lag));
                }
                let mut context = CoreContext {
                    watermark,
                    output: &mut output,
                    dead_letters: &mut rejected,
                };
                core.on_epoch_end(epoch, &mut context);
                if let Some(started) = batch_started {
                    batch_seconds.observe(started.elapsed().as_secs_f64());
                }
                if !output.is_empty() {
                    out.session(&capability).give_iterator(output.drain(..).map(|(row, diff)| (row, epoch, diff)));
                }
                rejected.drain(..).for_each(&mut dead_letter);
            }
            if !finished && data_frontier.is_empty() && watermark_frontier.is_empty() && pending.is_empty() {
                finished = true;
                core.on_finish();
            }
        }
    })
}

/// Builds a per-worker combiner: `fold` folds each update of `data` into the
/// [`Combiner`] of its epoch (made by `new_combiner`), and once the input has
/// passed an epoch its partial states leave at that epoch, one per group,
/// each with diff 1. Nothing is exchanged here; the caller routes the partial
/// states by key into a [`GroupedAggregate`](crate::grouped::GroupedAggregate)
/// that merges them.
pub fn combine_per_epoch<'scope, D: Clone + 'static>(
    data: Stream<'scope, Epoch, Updates<D>>,
    name: &str,
    new_combiner: impl Fn() -> Combiner + 'static,
    mut fold: impl FnMut(D, Diff, &mut Combiner) + 'static,
) -> Stream<'scope, Epoch, Updates<(Row, GroupAccumulator)>> {
    data.unary_frontier::<CapacityContainerBuilder<Updates<(Row, GroupAccumulator)>>, _, _, _>(Pipeline, name, move |_capability, _info| {
        let mut pending: BTreeMap<Epoch, (Capability<Epoch>, Combiner)> = BTreeMap::new();
        // Drained combiners, kept for their allocated tables.
        let mut spare: Vec<Combiner> = Vec::new();
        move |(input, frontier), out| {
            input.for_each(|capability, updates| {
                let mut updates = updates.drain(..).peekable();
                while let Some((d, epoch, diff)) = updates.next() {
                    let (_, combiner) = pending
                        .entry(epoch)
                        .or_insert_with(|| (capability.delayed(&epoch, 0), spare.pop().unwrap_or_else(&new_combiner)));
                    fold(d, diff, combiner);
                    while let Some((d, _, diff)) = updates.next_if(|(_, next, _)| *next == epoch) {
                        fold(d, diff, combiner);
                    }
                }
            });
            while let Some(entry) = pending.first_entry() {
                let epoch = *entry.key();
                if frontier.less_equal(&epoch) {
                    break;
                }
                let (capability, mut combiner) = entry.remove();
                if !combiner.is_empty() {
                    out.session(&capability)
                        .give_iterator(combiner.drain().map(|(key, partial)| ((key, partial), epoch, 1)));
                }
                spare.push(combiner);
            }
        }
    })
}

/// What the source instances of an operator's tables have reported.
#[derive(Debug, Default)]
struct InstanceWatermarks {
    /// Per (table, instance): the largest watermark reported, and whether the
    /// latest report said idle.
    reported: BTreeMap<(u32, u32), (Millis, bool)>,
}

impl InstanceWatermarks {
    fn record(&mut self, report: &WatermarkUpdate) {
        let slot = self.reported.entry((report.table, report.instance)).or_insert((Millis::MIN, false));
        *slot = (slot.0.max(report.watermark), report.idle);
    }

    /// The watermark the instances of `tables` on `peers` workers allow:
    /// the minimum over those not idle (one that never reported counts at
    /// [`Millis::MIN`]), or, when every one is idle, the maximum; `None`
    /// without tables.
    fn combined(&self, tables: &BTreeSet<u32>, peers: u32) -> Option<Millis> {
        let reports: Vec<(Millis, bool)> = tables
            .iter()
            .flat_map(|table| (0..peers).map(move |instance| (*table, instance)))
            .map(|key| self.reported.get(&key).copied().unwrap_or((Millis::MIN, false)))
            .collect();
        let active_minimum = reports.iter().filter(|(_, idle)| !idle).map(|(watermark, _)| *watermark).min();
        active_minimum.or_else(|| reports.iter().map(|(watermark, _)| *watermark).max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(table: u32, instance: u32, watermark: Millis, idle: bool) -> WatermarkUpdate {
        WatermarkUpdate {
            table,
            instance,
            watermark,
            idle,
        }
    }

    #[test]
    fn the_minimum_covers_every_instance_of_every_table() {
        let mut reported = InstanceWatermarks::default();
        let tables = BTreeSet::from([0, 2]);
        assert_eq!(reported.combined(&tables, 2), Some(Millis::MIN));
        for (table, instance, watermark) in [(0, 0, 50), (0, 1, 70), (2, 0, 90)] {
            reported.record(&report(table, instance, watermark, false));
        }
        assert_eq!(reported.combined(&tables, 2), Some(Millis::MIN), "table 2 instance 1 has not reported");
        reported.record(&report(2, 1, 60, false));
        assert_eq!(reported.combined(&tables, 2), Some(50));
        reported.record(&report(1, 0, 10, false));
        assert_eq!(reported.combined(&tables, 2), Some(50), "table 1 does not feed this operator");
        reported.record(&report(0, 0, 40, false));
        assert_eq!(reported.combined(&tables, 2), Some(50), "an instance's watermark never moves back");
        assert_eq!(reported.combined(&BTreeSet::new(), 2), None);
    }

    #[test]
    fn idle_instances_hold_nothing_back_until_they_report_again() {
        let mut reported = InstanceWatermarks::default();
        let tables = BTreeSet::from([0]);
        reported.record(&report(0, 0, 100, false));
        reported.record(&report(0, 1, 20, true));
        assert_eq!(reported.combined(&tables, 2), Some(100));
        reported.record(&report(0, 1, 30, false));
        assert_eq!(reported.combined(&tables, 2), Some(30), "back from idleness, it counts again");
        reported.record(&report(0, 0, 100, true));
        reported.record(&report(0, 1, 30, true));
        assert_eq!(reported.combined(&tables, 2), Some(100), "all idle: nothing is pending, the largest one holds");
    }
}
