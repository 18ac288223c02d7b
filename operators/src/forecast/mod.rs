//! `FORECAST`: multi-horizon quantile forecasts from a model over the last
//! `context` values of each key, in event-time order, with retractions.
//!
//! The core ([`Forecast`]) keeps, per key, the values of one column by event
//! time. A value counts once the watermark has passed its time; every such
//! time is a forecast *origin*, and its context is the `context` values
//! ending there, one per `step`. When an epoch ends, every origin whose
//! context changed (new origins the watermark passed, and origins whose
//! context holds a late revision) is gathered across all keys into one batch
//! and sent to the model in one call: batching is what makes a model fast
//! over thousands of nodes. The old forecasts of those origins are retracted
//! and the new ones inserted, one row per horizon step: the key columns,
//! `forecast_time` (the origin), `horizon`, `target_time`, `forecast` (the
//! median), `p10`, `p50`, `p90`.
//!
//! An origin forecasts only when its context is complete: `context` times
//! exactly `step` apart, each with one non-NULL value. A gap, a duplicate
//! time or a NULL gives no forecast for the origins that see it (the model
//! was trained on regular series), rather than a forecast from shifted data.
//!
//! State is bounded by the allowed lateness, as for `MATCH_RECOGNIZE`: a
//! change more than the allowed lateness behind the watermark is dead-
//! lettered, so once an origin is that far behind its forecasts stand and
//! are forgotten, and values are kept only while a kept origin can see them.
//!
//! The model is a trait ([`ForecastModel`]) so the core is tested without
//! ONNX; [`onnx::OnnxModel`] runs an ONNX file through ONNX Runtime and
//! reloads it when the file changes.
//!
//! An epoch end is on the latency path of every forecast, so its own work is
//! kept small next to the model's: keys are hashed once per update (series
//! live in a slab the batch refers to by index), each key keeps a ring
//! buffer of its newest complete run so that the usual context is copied in
//! one piece, the scratch buffers of the batch are reused, and output rows
//! are written straight into the output.

pub mod onnx;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use carbonflow_core::{Datum, DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row};

use foldhash::HashMap;

use crate::dataflow::{CoreContext, TimedCore};

/// The quantile levels every forecast model returns, in this order.
pub const QUANTILES: [f64; 3] = [0.1, 0.5, 0.9];

/// The names of the columns a forecast adds after the key columns.
pub const OUTPUT_COLUMNS: [&str; 7] = ["forecast_time", "horizon", "target_time", "forecast", "p10", "p50", "p90"];

/// The tensor shapes of a forecast model, without the batch dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelShape {
    /// Values per context (input `[batch, context]`).
    pub context: usize,
    /// Forecast steps (output `[batch, horizon, 3]`).
    pub horizon: usize,
}

impl fmt::Display for ModelShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input [batch, {}] -> output [batch, {}, {}]", self.context, self.horizon, QUANTILES.len())
    }
}

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No ONNX Runtime library was found, or it could not be opened.
    #[error("{0}")]
    Runtime(String),
    /// The model file could not be read or parsed.
    #[error("model {path}: {message}")]
    Load {
        /// The model file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The model's inputs or outputs are not the forecast contract.
    #[error("model {path}: {message}")]
    Shape {
        /// The model file.
        path: String,
        /// Which tensor is wrong and what was expected.
        message: String,
    },
    /// Running the model failed.
    #[error("model {path}: inference failed: {message}")]
    Run {
        /// The model file.
        path: String,
        /// The runtime's message.
        message: String,
    },
}

/// A forecast model as the core uses it.
///
/// Contract: [`ForecastModel::predict`] maps `batch` contexts (row-major,
/// `batch * shape().context` values, oldest first) to `batch * horizon * 3`
/// values, row-major `[batch][horizon][quantile]` with the quantiles of
/// [`QUANTILES`] in order and non-decreasing. Its shape never changes.
pub trait ForecastModel: 'static {
    /// The context length and horizon.
    fn shape(&self) -> ModelShape;

    /// Runs the model on a batch, replacing the contents of `out`.
    fn predict(&mut self, contexts: &[f32], batch: usize, out: &mut Vec<f32>) -> Result<(), ModelError>;

    /// Picks up a changed model, called before each batch. Returns what
    /// happened when something did: a reload, or a refused one (the model in
    /// use stays).
    fn refresh(&mut self) -> Option<Result<String, ModelError>> {
        None
    }
}

/// What a `FORECAST` reads from its input rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForecastSpec {
    /// The event-time column.
    pub time_column: usize,
    /// The column forecast (numeric).
    pub value_column: usize,
    /// The spacing of the series: a context is `context` values this far apart,
    /// and horizon step `h` targets `origin + h * step`.
    pub step: Millis,
    /// How far behind the watermark a change is still accepted.
    pub allowed_lateness: Millis,
}

/// The `Forecast` operator core. Input: `(key, row)`.
pub struct Forecast<M> {
    name: String,
    spec: ForecastSpec,
    model: M,
    /// Each key's position in `series`.
    index: HashMap<Row, usize>,
    /// The series of every key, in no particular order.
    series: Vec<Series>,
    /// The watermark at the last epoch end: origins up to it have been considered.
    released_to: Millis,
    /// Scratch, reused by every epoch: the origins of one series to recompute,
    /// and the batch being assembled (contexts, then the series and origin of
    /// each, then the model's quantiles).
    origins: Vec<Millis>,
    contexts: Vec<f32>,
    batch: Vec<(usize, Millis)>,
    predictions: Vec<f32>,
}

/// One key's values and the forecasts emitted from them.
struct Series {
    /// The partition key, the first columns of every output row.
    key: Row,
    /// The values by event time, in order, one entry per time. Contiguous,
    /// so that gathering a context reads one run of memory; new times are
    /// almost always the latest, and old ones leave from the front.
    values: VecDeque<(Millis, Slot)>,
    /// Times of changes the watermark had already passed (late revisions).
    late_changes: BTreeSet<Millis>,
    /// The quantiles emitted for each origin, to retract them when the origin is recomputed.
    emitted: BTreeMap<Millis, Vec<f32>>,
    /// A ring buffer of the newest complete run, as the model reads it: the
    /// values of the latest entries of `values` that each hold one non-NULL
    /// value exactly one step after the one before, at most one context long,
    /// oldest first. Kept up to date as values arrive, so that the usual
    /// context, the one ending at the newest time, is two slice copies rather
    /// than a gather that checks every value.
    recent: VecDeque<f32>,
}

/// The values at one event time with their multiplicities. Almost always one
/// value, held inline, so that reading a context touches no other memory.
enum Slot {
    One(Option<f64>, Diff),
    Many(Vec<(Option<f64>, Diff)>),
}

impl Slot {
    /// Adds `diff` copies of `value`; false when no value is left.
    fn add(&mut self, value: Option<f64>, diff: Diff) -> bool {
        let same = |v: Option<f64>| v.map(f64::to_bits) == value.map(f64::to_bits);
        match *self {
            Slot::One(v, ref mut count) if same(v) => *count += diff,
            Slot::One(v, count) => *self = Slot::Many(vec![(v, count), (value, diff)]),
            Slot::Many(ref mut entries) => {
                match entries.iter_mut().find(|(v, _)| same(*v)) {
                    Some(entry) => entry.1 += diff,
                    None => entries.push((value, diff)),
                }
                entries.retain(|(_, count)| *count != 0);
                if let [(v, count)] = entries[..] {
                    *self = Slot::One(v, count);
                }
            }
        }
        match self {
            Slot::One(_, count) => *count != 0,
            Slot::Many(entries) => !entries.is_empty(),
        }
    }

    /// The value, if there is exactly one copy of one value and it is not NULL.
    fn value(&self) -> Option<f64> {
        match *self {
            Slot::One(value, 1) => value,
            _ => None,
        }
    }
}

impl Series {
    fn new(key: Row) -> Series {
        Series {
            key,
            values: VecDeque::new(),
            late_changes: BTreeSet::new(),
            emitted: BTreeMap::new(),
            recent: VecDeque::new(),
        }
    }

    /// Adds `diff` copies of `value` at `ts`, for contexts of `length`
    /// values `step` apart.
    fn add(&mut self, ts: Millis, value: Option<f64>, diff: Diff, length: usize, step: Millis) {
        if self.values.back().is_none_or(|(last, _)| *last < ts) {
            // The usual case, a new latest time: the run grows or starts again.
            let follows = self.values.back().is_some_and(|(last, _)| last.checked_add(step) == Some(ts));
            let slot = Slot::One(value, diff);
            match slot.value() {
                Some(value) => {
                    if !follows {
                        self.recent.clear();
                    }
                    if self.recent.len() == length {
                        self.recent.pop_front();
                    }
                    self.recent.push_back(value as f32);
                }
                None => self.recent.clear(),
            }
            self.values.push_back((ts, slot));
            return;
        }
        match self.values.binary_search_by_key(&ts, |(t, _)| *t) {
            Ok(index) => {
                if !self.values[index].1.add(value, diff) {
                    self.values.remove(index);
                }
            }
            Err(index) => self.values.insert(index, (ts, Slot::One(value, diff))),
        }
        // A revision or an out-of-order value: rare, so the run is read again.
        self.rebuild_recent(length, step);
    }

    /// Recomputes `recent` from `values`.
    fn rebuild_recent(&mut self, length: usize, step: Millis) {
        self.recent.clear();
        let mut expected = None;
        for (ts, slot) in self.values.iter().rev().take(length) {
            match slot.value() {
                Some(value) if expected.is_none_or(|e| e == Some(*ts)) => {
                    self.recent.push_front(value as f32);
                    expected = Some(ts.checked_sub(step));
                }
                _ => break,
            }
        }
    }

    /// Drops the values before `from`.
    fn forget_values_before(&mut self, from: Millis) {
        while self.values.front().is_some_and(|(ts, _)| *ts < from) {
            self.values.pop_front();
        }
        // `recent` mirrors the newest entries: those dropped leave it too.
        while self.recent.len() > self.values.len() {
            self.recent.pop_front();
        }
    }

    /// The times holding values in `from..=to`.
    fn times(&self, from: Millis, to: Millis) -> impl Iterator<Item = Millis> + '_ {
        let start = self.values.partition_point(|(t, _)| *t < from);
        let end = self.values.partition_point(|(t, _)| *t <= to).max(start);
        self.values.range(start..end).map(|(t, _)| *t)
    }

    /// Appends the context ending at `origin` to `out`, if it is complete.
    fn context(&self, origin: Millis, length: usize, step: Millis, out: &mut Vec<f32>) -> bool {
        if self.values.back().is_some_and(|(newest, _)| *newest == origin) {
            if self.recent.len() < length {
                return false;
            }
            let (front, back) = self.recent.as_slices();
            out.extend_from_slice(front);
            out.extend_from_slice(back);
            return true;
        }
        let Ok(last) = self.values.binary_search_by_key(&origin, |(t, _)| *t) else {
            return false;
        };
        if last + 1 < length {
            return false;
        }
        let first = origin - (length as Millis - 1) * step;
        let start = out.len();
        for (offset, (ts, slot)) in self.values.range(last + 1 - length..=last).enumerate() {
            match slot.value() {
                Some(value) if *ts == first + offset as Millis * step => out.push(value as f32),
                _ => {
                    out.truncate(start);
                    return false;
                }
            }
        }
        true
    }
}

impl<M: ForecastModel> Forecast<M> {
    /// A core forecasting with `model` as `spec` says.
    pub fn new(name: impl Into<String>, spec: ForecastSpec, model: M) -> Self {
        Forecast {
            name: name.into(),
            spec,
            model,
            index: HashMap::default(),
            series: Vec::new(),
            released_to: Millis::MIN,
            origins: Vec::new(),
            contexts: Vec::new(),
            batch: Vec::new(),
            predictions: Vec::new(),
        }
    }

    /// The model, for inspection.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Values held over all keys (bounded by the allowed lateness and the context).
    pub fn held_values(&self) -> usize {
        self.series.iter().map(|s| s.values.len()).sum()
    }

    fn late_before(&self, watermark: Millis) -> Option<Millis> {
        (watermark != Millis::MIN).then(|| watermark.saturating_sub(self.spec.allowed_lateness))
    }

    /// Sends what the core cannot use to the dead-letter output.
    fn reject(&self, context: &mut CoreContext, reason: DeadLetterReason, detail: String, position: &str, record: String) {
        context.dead_letters.push(DeadLetter {
            origin: self.name.clone(),
            reason,
            detail,
            position: position.into(),
            record,
        });
    }

    /// Puts into `origins`, in time order, the origins of `series` to
    /// recompute now that the watermark moved from `previous` to `watermark`.
    fn affected_origins(series: &mut Series, previous: Millis, watermark: Millis, reach: Millis, origins: &mut Vec<Millis>) {
        origins.clear();
        // Newly released times are the latest ones (or pending beyond the watermark): read from the back.
        let released = series.values.iter().rev().map(|(t, _)| *t).take_while(|t| *t > previous);
        origins.extend(released.filter(|t| *t <= watermark));
        origins.reverse();
        if series.late_changes.is_empty() {
            return;
        }
        for changed in std::mem::take(&mut series.late_changes) {
            let last = changed.saturating_add(reach).min(watermark);
            origins.extend(series.times(changed, last));
            origins.extend(series.emitted.range(changed..=last).map(|(ts, _)| *ts));
        }
        origins.sort_unstable();
        origins.dedup();
    }

    /// Appends one origin's forecast to `output` with multiplicity `diff`,
    /// one row per horizon step: the key columns, then [`OUTPUT_COLUMNS`].
    fn push_rows(output: &mut Vec<(Row, Diff)>, key: &Row, origin: Millis, step: Millis, quantiles: &[f32], diff: Diff) {
        for (index, q) in quantiles.chunks_exact(QUANTILES.len()).enumerate() {
            let horizon = index as i64 + 1;
            let (p10, p50, p90) = (f64::from(q[0]), f64::from(q[1]), f64::from(q[2]));
            let mut datums = Vec::with_capacity(key.len() + OUTPUT_COLUMNS.len());
            datums.extend(key.iter().cloned());
            datums.extend([
                Datum::Timestamp(origin),
                Datum::Int(horizon),
                Datum::Timestamp(origin + horizon * step),
                Datum::float(p50),
                Datum::float(p10),
                Datum::float(p50),
                Datum::float(p90),
            ]);
            output.push((Row::new(datums), diff));
        }
    }

    /// Forgets the series and forecasts no accepted change can reach any
    /// more: values before `keep_values_from`, forecasts of origins before `late`.
    fn retire(&mut self, keep_values_from: Millis, late: Millis) {
        let mut position = 0;
        while position < self.series.len() {
            let series = &mut self.series[position];
            series.forget_values_before(keep_values_from);
            while series.emitted.first_key_value().is_some_and(|(ts, _)| *ts < late) {
                series.emitted.pop_first();
            }
            if !series.values.is_empty() || !series.emitted.is_empty() {
                position += 1;
                continue;
            }
            let retired = self.series.swap_remove(position);
            self.index.remove(&retired.key);
            if let Some(moved) = self.series.get(position) {
                *self.index.get_mut(&moved.key).expect("every series is indexed") = position;
            }
        }
    }
}

impl<M: ForecastModel> TimedCore for Forecast<M> {
    type Input = (Row, Row);

    fn on_update(&mut self, (key, row): (Row, Row), diff: Diff, context: &mut CoreContext) {
        let Some(ts) = row.get(self.spec.time_column).as_timestamp() else {
            let detail = "a row without event time cannot be placed in a series".into();
            return self.reject(context, DeadLetterReason::Eval, detail, "event time", row.to_string());
        };
        if self.late_before(context.watermark).is_some_and(|late| ts < late) {
            let detail = "the row is further behind the watermark than the allowed lateness".into();
            return self.reject(context, DeadLetterReason::Late, detail, "event time", row.to_string());
        }
        let value = row.get(self.spec.value_column).as_f64();
        let position = match self.index.get(&key) {
            Some(&position) => position,
            None => {
                self.index.insert(key.clone(), self.series.len());
                self.series.push(Series::new(key));
                self.series.len() - 1
            }
        };
        let series = &mut self.series[position];
        series.add(ts, value, diff, self.model.shape().context, self.spec.step);
        if context.watermark != Millis::MIN && ts <= context.watermark {
            series.late_changes.insert(ts);
        }
    }

    fn on_epoch_end(&mut self, _epoch: Epoch, context: &mut CoreContext) {
        let watermark = context.watermark;
        if let Some(outcome) = self.model.refresh() {
            let (reason, detail) = match outcome {
                Ok(message) => (None, message),
                Err(error) => (Some(DeadLetterReason::Eval), format!("{error}; the previous model stays in use")),
            };
            eprintln!("{}: {detail}", self.name);
            if let Some(reason) = reason {
                self.reject(context, reason, detail, "model file", String::new());
            }
        }
        let ModelShape { context: length, horizon } = self.model.shape();
        let step = self.spec.step;
        let reach = (length as Millis - 1) * step;
        let previous = self.released_to;
        self.released_to = self.released_to.max(watermark);
        self.contexts.clear();
        self.batch.clear();
        if watermark != Millis::MIN {
            for (position, series) in self.series.iter_mut().enumerate() {
                Self::affected_origins(series, previous, watermark, reach, &mut self.origins);
                for &origin in &self.origins {
                    if let Some(old) = series.emitted.remove(&origin) {
                        Self::push_rows(context.output, &series.key, origin, step, &old, -1);
                    }
                    if series.context(origin, length, step, &mut self.contexts) {
                        self.batch.push((position, origin));
                    }
                }
            }
        }
        if !self.batch.is_empty() {
            match self.model.predict(&self.contexts, self.batch.len(), &mut self.predictions) {
                Ok(()) => {
                    let per_origin = horizon * QUANTILES.len();
                    context.output.reserve(self.batch.len() * horizon);
                    for (&(position, origin), quantiles) in self.batch.iter().zip(self.predictions.chunks_exact(per_origin)) {
                        let series = &mut self.series[position];
                        Self::push_rows(context.output, &series.key, origin, step, quantiles, 1);
                        series.emitted.insert(origin, quantiles.to_vec());
                    }
                }
                Err(error) => {
                    let (position, origin) = self.batch[0];
                    let record = format!("{} origins, first {} at {origin}", self.batch.len(), self.series[position].key);
                    self.reject(context, DeadLetterReason::Eval, error.to_string(), "FORECAST", record);
                }
            }
        }
        if let Some(late) = self.late_before(watermark) {
            self.retire(late.saturating_sub(reach), late);
        }
    }
}

#[cfg(test)]
mod tests;
