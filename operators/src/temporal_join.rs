//! Event-time temporal joins: each probe row joined with the version of a
//! versioned table that was valid at the probe's event time.
//!
//! ```sql
//! SELECT t.node, t.ts, t.price * r.price AS price_usd
//! FROM ticks AS t
//! JOIN fx FOR SYSTEM_TIME AS OF t.ts AS r ON r.node = t.currency
//! ```
//!
//! Flink's event-time temporal join: for a probe row at time `t` and key `k`,
//! the version is the set of versioned rows with key `k` at the greatest
//! version time `v <= t`. An exchange rate published on Friday therefore
//! converts Saturday's and Sunday's prices, when the ECB publishes none.
//!
//! As in Flink, a probe row is joined once the versioned table's watermark
//! has passed its time: no version at or before that time can arrive any
//! more, so the result is final and emitted once (a live probe waits for the
//! rates of its time; give the versioned table a small watermark delay).
//! Until then the probe row waits in state. A probe retraction retracts its
//! joined row (or just leaves the waiting rows); a version at or behind the
//! watermark would change final results: it is late and goes to the
//! dead-letter output. Every version is kept, for retractions of old probe
//! rows (versioned tables such as exchange rates or node metadata are small).

use std::collections::BTreeMap;

use carbonflow_core::{DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row};
use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use crate::dataflow::{CoreContext, TimedCore};

/// Which input a row of a temporal join comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum JoinSide {
    /// The probe side (left), joined as of its event time.
    Probe,
    /// The versioned table (right).
    Version,
}

/// Rows with multiplicities at one event time.
type Bag = Vec<(Row, Diff)>;

/// Adds `diff` copies of `row` at `time`, dropping rows and times that reach zero.
fn add_at(bags: &mut BTreeMap<Millis, Bag>, time: Millis, row: Row, diff: Diff) {
    let bag = bags.entry(time).or_default();
    match bag.iter_mut().find(|(r, _)| *r == row) {
        Some((_, count)) => *count += diff,
        None => bag.push((row, diff)),
    }
    bag.retain(|(_, count)| *count != 0);
    if bag.is_empty() {
        bags.remove(&time);
    }
}

#[derive(Default)]
struct KeyState {
    /// Version time → the versioned rows at that time.
    versions: BTreeMap<Millis, Bag>,
    /// Probe time → probe rows waiting for the watermark to pass their time.
    waiting_probes: BTreeMap<Millis, Bag>,
}

impl KeyState {
    /// The version valid at `time`: the rows at the greatest version time `<= time`.
    fn version_at(&self, time: Millis) -> &[(Row, Diff)] {
        self.versions.range(..=time).next_back().map_or(&[], |(_, bag)| bag.as_slice())
    }
}

/// The temporal join core. Input: `(key, (side, row))`.
pub struct TemporalJoin {
    name: String,
    probe_time: usize,
    version_time: usize,
    keys: HashMap<Row, KeyState>,
}

impl TemporalJoin {
    /// A join whose probe rows carry their event time at `probe_time` and
    /// versioned rows theirs at `version_time`. `name` labels dead letters.
    pub fn new(name: impl Into<String>, probe_time: usize, version_time: usize) -> Self {
        TemporalJoin {
            name: name.into(),
            probe_time,
            version_time,
            keys: HashMap::default(),
        }
    }

    /// Probe rows waiting for the versioned table's watermark.
    pub fn waiting_probes(&self) -> usize {
        self.keys.values().map(|state| state.waiting_probes.values().map(Vec::len).sum::<usize>()).sum()
    }
}

/// `probe ++ version` with the product of their multiplicities.
fn emit_joined(probe: &Row, probe_diff: Diff, version: &[(Row, Diff)], sign: Diff, output: &mut Vec<(Row, Diff)>) {
    for (row, count) in version {
        let mut datums = probe.datums().to_vec();
        datums.extend(row.datums().iter().cloned());
        output.push((Row::new(datums), probe_diff * count * sign));
    }
}

impl TimedCore for TemporalJoin {
    type Input = (Row, (JoinSide, Row));

    fn on_update(&mut self, (key, (side, row)): (Row, (JoinSide, Row)), diff: Diff, context: &mut CoreContext) {
        match side {
            JoinSide::Probe => {
                // A NULL time is as of no version: an inner join drops the row.
                let Some(time) = row.get(self.probe_time).as_timestamp() else { return };
                let state = self.keys.entry(key).or_default();
                if time <= context.watermark {
                    emit_joined(&row, diff, state.version_at(time), 1, context.output);
                } else {
                    add_at(&mut state.waiting_probes, time, row, diff);
                }
            }
            JoinSide::Version => {
                let Some(time) = row.get(self.version_time).as_timestamp() else { return };
                if time <= context.watermark {
                    context.dead_letters.push(DeadLetter {
                        origin: self.name.clone(),
                        reason: DeadLetterReason::Late,
                        detail: "a version at or behind the versioned table's watermark would change final join results".into(),
                        position: "event time".into(),
                        record: row.to_string(),
                    });
                    return;
                }
                // Every probe this version may cover is still waiting: nothing to re-join.
                let state = self.keys.entry(key).or_default();
                add_at(&mut state.versions, time, row, diff);
            }
        }
    }

    fn on_epoch_end(&mut self, _epoch: Epoch, context: &mut CoreContext) {
        if context.watermark == Millis::MIN {
            return;
        }
        let watermark = context.watermark;
        for state in self.keys.values_mut() {
            let still_waiting = state.waiting_probes.split_off(&watermark.saturating_add(1));
            for (time, probes) in std::mem::replace(&mut state.waiting_probes, still_waiting) {
                for (probe, count) in probes {
                    emit_joined(&probe, count, state.version_at(time), 1, context.output);
                }
            }
        }
        self.keys.retain(|_, state| !state.versions.is_empty() || !state.waiting_probes.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use carbonflow_core::Datum;
    use proptest::prelude::*;

    use super::*;

    /// Probe rows `(key, time, id)`, versioned rows `(key, time, rate)`.
    fn probe(key: &str, time: Millis, id: i64) -> Row {
        Row::new(vec![Datum::string(key), Datum::Timestamp(time), Datum::Int(id)])
    }

    fn version(key: &str, time: Millis, rate: i64) -> Row {
        Row::new(vec![Datum::string(key), Datum::Timestamp(time), Datum::Int(rate)])
    }

    fn key(row: &Row) -> Row {
        row.project(&[0])
    }

    struct Harness {
        join: TemporalJoin,
        output: BTreeMap<Row, Diff>,
        dead: usize,
        watermark: Millis,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                join: TemporalJoin::new("fx", 1, 1),
                output: BTreeMap::new(),
                dead: 0,
                watermark: Millis::MIN,
            }
        }

        fn update(&mut self, side: JoinSide, row: Row, diff: Diff) {
            let (mut output, mut dead) = (Vec::new(), Vec::new());
            let mut context = CoreContext {
                watermark: self.watermark,
                output: &mut output,
                dead_letters: &mut dead,
            };
            self.join.on_update((key(&row), (side, row)), diff, &mut context);
            self.absorb(output, dead.len());
        }

        fn advance(&mut self, watermark: Millis) {
            self.watermark = watermark;
            let (mut output, mut dead) = (Vec::new(), Vec::new());
            let mut context = CoreContext {
                watermark,
                output: &mut output,
                dead_letters: &mut dead,
            };
            self.join.on_epoch_end(0, &mut context);
            self.absorb(output, dead.len());
        }

        fn absorb(&mut self, output: Vec<(Row, Diff)>, dead: usize) {
            self.dead += dead;
            for (row, diff) in output {
                let count = self.output.entry(row.clone()).or_default();
                *count += diff;
                if *count == 0 {
                    self.output.remove(&row);
                }
            }
        }
    }

    /// The naive model: every probe joined with the greatest version time <= its time.
    fn model(probes: &BTreeMap<Row, Diff>, versions: &BTreeMap<Row, Diff>) -> BTreeMap<Row, Diff> {
        let mut out = BTreeMap::new();
        for (p, pc) in probes {
            let time = p.get(1).as_timestamp().unwrap();
            let best = versions
                .keys()
                .filter(|v| v.get(0) == p.get(0) && v.get(1).as_timestamp().unwrap() <= time)
                .map(|v| v.get(1).as_timestamp().unwrap())
                .max();
            for (v, vc) in versions
                .iter()
                .filter(|(v, _)| v.get(0) == p.get(0) && Some(v.get(1).as_timestamp().unwrap()) == best)
            {
                let mut datums = p.datums().to_vec();
                datums.extend(v.datums().iter().cloned());
                *out.entry(Row::new(datums)).or_default() += pc * vc;
            }
        }
        out.retain(|_, d| *d != 0);
        out
    }

    #[test]
    fn a_weekend_probe_takes_fridays_rate_once_the_watermark_passes_and_a_late_version_is_dead_lettered() {
        let mut h = Harness::new();
        h.update(JoinSide::Version, version("USD", 10, 110), 1);
        h.update(JoinSide::Probe, probe("USD", 12, 1), 1);
        h.update(JoinSide::Probe, probe("USD", 9, 2), 1);
        h.update(JoinSide::Version, version("USD", 11, 111), 1);
        assert!(h.output.is_empty(), "probes wait for the watermark");
        h.advance(12);
        let joined: Vec<(i64, i64)> = h.output.keys().map(|r| (r.get(2).as_i64().unwrap(), r.get(5).as_i64().unwrap())).collect();
        assert_eq!(joined, vec![(1, 111)], "the probe at 12 takes the version at 11; the one at 9 has none");
        assert_eq!(h.join.waiting_probes(), 0);
        h.update(JoinSide::Version, version("USD", 12, 112), 1);
        assert_eq!(h.dead, 1);
        // A retraction of a joined probe retracts its joined row at once.
        h.update(JoinSide::Probe, probe("USD", 12, 1), -1);
        assert!(h.output.is_empty());
    }

    proptest! {
        /// Random probes, versions and retractions in random order, with a
        /// rising watermark: the join equals the naive model of what was
        /// applied (late versions excluded).
        #[test]
        fn matches_the_naive_model(
            ops in prop::collection::vec((any::<bool>(), 0u8..2, 0i64..30, 0i64..4, any::<bool>(), 0i64..3), 1..80),
        ) {
            let mut h = Harness::new();
            let (mut probes, mut versions) = (BTreeMap::<Row, Diff>::new(), BTreeMap::<Row, Diff>::new());
            for (is_probe, k, time, value, retract, advance) in ops {
                let key = ["A", "B"][k as usize];
                let bag = if is_probe { &mut probes } else { &mut versions };
                let row = if is_probe { probe(key, time, value) } else { version(key, time, value) };
                // Retract only what is there, as a consolidated input would.
                let diff = if retract && bag.get(&row).is_some_and(|c| *c > 0) { -1 } else { 1 };
                let late = !is_probe && time <= h.watermark;
                h.update(if is_probe { JoinSide::Probe } else { JoinSide::Version }, row.clone(), diff);
                if !late {
                    *bag.entry(row.clone()).or_default() += diff;
                    if bag[&row] == 0 { bag.remove(&row); }
                }
                if advance == 0 {
                    let watermark = h.watermark.max(time - 5);
                    h.advance(watermark);
                    // Exactly the probes the watermark passed are joined, with their final version.
                    let released = probes.iter().filter(|(p, _)| p.get(1).as_timestamp().unwrap() <= watermark).map(|(p, d)| (p.clone(), *d)).collect();
                    prop_assert_eq!(&h.output, &model(&released, &versions));
                }
            }
            h.advance(Millis::MAX - 1);
            prop_assert_eq!(&h.output, &model(&probes, &versions));
        }
    }
}
