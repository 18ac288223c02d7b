//! In-stream analytics as SQL OVER functions: anomaly scores and regime
//! detectors evaluated per partition, in event-time order, incrementally.
//!
//! ```sql
//! SELECT node, ts, price,
//!        ZSCORE(price) OVER w AS z,
//!        EWMA_ZSCORE(price, INTERVAL '1' HOUR) OVER (PARTITION BY node ORDER BY ts) AS ez,
//!        AVG(price) OVER w AS avg_20
//! FROM ticks
//! WINDOW w AS (PARTITION BY node ORDER BY ts ROWS BETWEEN 19 PRECEDING AND CURRENT ROW)
//! ```
//!
//! Every input row gets one output row: its own columns, then one value per
//! call ([`OverCall`]). A call is a function ([`OverFunction`]) of argument
//! columns over a [`Frame`] of the partition's rows, which are ordered by
//! event time, ties by the whole row (so the order, and every result, is the
//! same however rows arrive and however many workers run).
//!
//! Two kinds of functions, with two kinds of incremental state:
//!
//! * **Frame functions** (the SQL aggregates, `ZSCORE`, `ROBUST_ZSCORE`,
//!   `CORR`, `CORR_SHIFT`, and `SEASONAL_*` over their own look-back) see a
//!   bounded window of rows. They slide a window state over the rows (add the
//!   row entering, remove the row leaving) and, after a change, rebuild it
//!   from the rows of the first affected row's frame. Their results depend on
//!   the frame's contents only: sums are exact ([`ExactSum`]), so a rebuilt
//!   window gives the same bits as a slid one.
//! * **Recurrent functions** (`EWMA`, `EWMA_ZSCORE`, `HMM_*`, `CUSUM*`,
//!   `PAGE_HINKLEY*`, `GARCH_VOLATILITY`) fold all preceding rows into a small
//!   state. The partition keeps the state after each row it may still have to
//!   recompute from, so a change restarts the fold just before it and replays
//!   the rows after it, with the same arithmetic a fresh run would do.
//!
//! [`OverPartition`] is the pure core of one partition: ordered rows, the
//! results emitted for each, and the calls' states; a change marks an
//! event-time range dirty, and [`OverPartition::recompute`] re-evaluates the
//! rows the change can reach and emits retractions and insertions for the
//! results that differ. [`dataflow::Over`] drives partitions from epochs and
//! the watermark. The formulas of every function are in `docs/analytics.md`
//! and on the variants of [`OverFunction`].
//!
//! [`ExactSum`]: crate::ExactSum

pub mod dataflow;
pub mod hmm;
mod partition;
mod recurrent;
mod seasonal;
mod window;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use carbonflow_core::{DataType, Millis};

use crate::aggregate::AggregateSpec;

pub use hmm::HmmModel;
pub use partition::OverPartition;
pub use seasonal::Seasonal;

/// The rows of the partition a frame function sees for a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Frame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`: the row and the `n` rows before it.
    Rows(usize),
    /// `RANGE BETWEEN INTERVAL d PRECEDING AND CURRENT ROW`: the rows whose
    /// event time is in `[t - d, t]`, including the current row's peers (rows
    /// of the same event time that come after it), as SQL defines RANGE.
    Range(Millis),
    /// No frame (or `UNBOUNDED PRECEDING`): every preceding row. Only the
    /// recurrent functions and `SEASONAL_*` (which has its own look-back) take it.
    Unbounded,
}

/// How fast an exponentially weighted statistic forgets: the half-life.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decay {
    /// A row's weight halves every this many rows.
    Rows(f64),
    /// A row's weight halves every this many milliseconds of event time.
    Time(Millis),
}

/// What a series is turned into before a model of returns sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observation {
    /// The value itself.
    #[default]
    Value,
    /// `x_t - x_{t-1}` (none for a partition's first row).
    Difference,
    /// `ln(x_t / x_{t-1})` (none for the first row, or when the ratio is not positive).
    LogReturn,
}

impl Observation {
    /// The observation for value `x` after the previous value `previous`.
    pub fn of(self, x: f64, previous: Option<f64>) -> Option<f64> {
        match self {
            Observation::Value => Some(x),
            Observation::Difference => previous.map(|p| x - p),
            Observation::LogReturn => previous.map(|p| x / p).filter(|ratio| *ratio > 0.0).map(f64::ln),
        }
    }

    /// The name used in SQL and model files.
    pub fn name(self) -> &'static str {
        match self {
            Observation::Value => "value",
            Observation::Difference => "difference",
            Observation::LogReturn => "log_return",
        }
    }

    /// The observation called `name` (`value`, `difference`, `log_return`).
    pub fn from_name(name: &str) -> Option<Self> {
        [Observation::Value, Observation::Difference, Observation::LogReturn]
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }
}

/// Parameters of the self-starting two-sided CUSUM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CusumParams {
    /// The allowance `k`, in standard deviations (typically 0.5).
    pub k: f64,
    /// The decision threshold `h`, in standard deviations (typically 4 to 5).
    pub h: f64,
    /// Observations since the last alarm before the statistic accumulates.
    pub warmup: u32,
}

/// Parameters of the two-sided Page-Hinkley test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageHinkleyParams {
    /// The tolerated drift `δ`, in the series' units.
    pub delta: f64,
    /// The decision threshold `λ`, in the series' units.
    pub lambda: f64,
}

/// Parameters of GARCH(1,1): `σ²_{t+1} = ω + α r_t² + β σ²_t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GarchParams {
    /// `ω > 0`.
    pub omega: f64,
    /// `α ≥ 0`.
    pub alpha: f64,
    /// `β ≥ 0`, with `α + β < 1`.
    pub beta: f64,
    /// What the returns `r_t` are made of.
    pub observation: Observation,
}

impl GarchParams {
    /// Why the parameters do not define a stationary GARCH(1,1), if they do not.
    pub fn check(&self) -> Result<(), String> {
        let finite = [self.omega, self.alpha, self.beta].iter().all(|v| v.is_finite());
        if !finite || self.omega <= 0.0 || self.alpha < 0.0 || self.beta < 0.0 || self.alpha + self.beta >= 1.0 {
            return Err(format!(
                "GARCH(1,1) needs omega > 0, alpha >= 0, beta >= 0 and alpha + beta < 1; got omega={}, alpha={}, beta={}",
                self.omega, self.alpha, self.beta
            ));
        }
        Ok(())
    }
}

/// What a change detector outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DetectorOutput {
    /// The signed statistic: positive for an upward change, negative for a downward one.
    Statistic,
    /// Whether the statistic crossed the threshold at this row (the detector then restarts).
    Alarm,
}

/// A function computed over a partition's ordered rows. Arguments are
/// columns of the operator's input ([`OverCall::args`]); NULL values are
/// skipped by every function (the row's result is NULL, state is unchanged).
#[derive(Clone, Debug, PartialEq)]
pub enum OverFunction {
    /// A SQL aggregate (`COUNT`, `SUM`, `AVG`, `MIN`, `MAX`, the variances, …) over the frame.
    Aggregate(AggregateSpec),
    /// `ZSCORE(x)`: `(x - mean) / stddev_pop` over the frame (the current row included).
    ZScore,
    /// `ROBUST_ZSCORE(x)`: `(x - median) / (1.4826 · MAD)` over the frame.
    RobustZScore,
    /// `CORR(x, y)`: Pearson's correlation of the pairs in the frame.
    Corr,
    /// `CORR_SHIFT(x, y)`: Fisher's z test of the correlation in the frame
    /// against the correlation in the frame of the same size just before it.
    CorrShift,
    /// `EWMA(x, half_life)`: the exponentially weighted mean of the rows so far.
    Ewma(Decay),
    /// `EWMA_ZSCORE(x, half_life)`: `(x - mean) / stddev` of the weighted
    /// statistics of the preceding rows.
    EwmaZScore(Decay),
    /// `SEASONAL_ZSCORE(x, weeks, 'zone')` or `SEASONAL_BASELINE(...)`.
    Seasonal(Seasonal),
    /// `HMM_PROBABILITY(x, model, k)`: the filtered probability of state `k`.
    HmmProbability {
        /// The model.
        model: Arc<HmmModel>,
        /// The state, counted from 0.
        state: usize,
    },
    /// `HMM_STATE(x, model)`: the most probable state (counted from 0).
    HmmState(Arc<HmmModel>),
    /// `CUSUM(x, k, h [, warmup])` or `CUSUM_ALARM(...)`.
    Cusum(CusumParams, DetectorOutput),
    /// `PAGE_HINKLEY(x, delta, lambda)` or `PAGE_HINKLEY_ALARM(...)`.
    PageHinkley(PageHinkleyParams, DetectorOutput),
    /// `GARCH_VOLATILITY(x, omega, alpha, beta [, observation])`: `σ_{t+1}`.
    Garch(GarchParams),
}

impl OverFunction {
    /// The SQL name of the function.
    pub fn name(&self) -> &'static str {
        match self {
            OverFunction::Aggregate(spec) => spec.function.name(),
            OverFunction::ZScore => "ZSCORE",
            OverFunction::RobustZScore => "ROBUST_ZSCORE",
            OverFunction::Corr => "CORR",
            OverFunction::CorrShift => "CORR_SHIFT",
            OverFunction::Ewma(_) => "EWMA",
            OverFunction::EwmaZScore(_) => "EWMA_ZSCORE",
            OverFunction::Seasonal(seasonal) if seasonal.baseline_only => "SEASONAL_BASELINE",
            OverFunction::Seasonal(_) => "SEASONAL_ZSCORE",
            OverFunction::HmmProbability { .. } => "HMM_PROBABILITY",
            OverFunction::HmmState(_) => "HMM_STATE",
            OverFunction::Cusum(_, DetectorOutput::Statistic) => "CUSUM",
            OverFunction::Cusum(_, DetectorOutput::Alarm) => "CUSUM_ALARM",
            OverFunction::PageHinkley(_, DetectorOutput::Statistic) => "PAGE_HINKLEY",
            OverFunction::PageHinkley(_, DetectorOutput::Alarm) => "PAGE_HINKLEY_ALARM",
            OverFunction::Garch(_) => "GARCH_VOLATILITY",
        }
    }

    /// The type of the function's result.
    pub fn result_type(&self) -> DataType {
        match self {
            OverFunction::Aggregate(spec) => spec.function.result_type(spec.input_type).unwrap_or(DataType::Null),
            OverFunction::HmmState(_) => DataType::Int,
            OverFunction::Cusum(_, DetectorOutput::Alarm) | OverFunction::PageHinkley(_, DetectorOutput::Alarm) => DataType::Bool,
            _ => DataType::Float,
        }
    }

    /// How many value arguments the function reads (its parameters are not arguments).
    pub fn arity(&self) -> usize {
        match self {
            OverFunction::Aggregate(_) => 1,
            OverFunction::Corr | OverFunction::CorrShift => 2,
            _ => 1,
        }
    }

    /// Whether the function folds all preceding rows (so it takes no frame).
    pub fn is_recurrent(&self) -> bool {
        matches!(
            self,
            OverFunction::Ewma(_)
                | OverFunction::EwmaZScore(_)
                | OverFunction::HmmProbability { .. }
                | OverFunction::HmmState(_)
                | OverFunction::Cusum(..)
                | OverFunction::PageHinkley(..)
                | OverFunction::Garch(_)
        )
    }

    /// Whether the function needs a bounded frame (`ROWS` or `RANGE ... PRECEDING`);
    /// the others take none.
    pub fn needs_bounded_frame(&self) -> bool {
        !self.is_recurrent() && !matches!(self, OverFunction::Seasonal(_))
    }
}

/// One OVER call of a query: a function, its argument columns and its frame.
#[derive(Clone, Debug, PartialEq)]
pub struct OverCall {
    /// The function with its parameters.
    pub function: OverFunction,
    /// The argument columns of the input row (`COUNT(*)` has one pointing
    /// anywhere; it is not read).
    pub args: Vec<usize>,
    /// The frame ([`Frame::Unbounded`] for recurrent and seasonal functions).
    pub frame: Frame,
}

impl OverCall {
    /// Why the call cannot run, if it cannot: a frame that does not suit the
    /// function, or a wrong number of arguments.
    pub fn check(&self) -> Result<(), String> {
        let name = self.function.name();
        if self.args.len() != self.function.arity() {
            return Err(format!("{name} takes {} value argument(s)", self.function.arity()));
        }
        match (self.function.needs_bounded_frame(), self.frame) {
            (true, Frame::Unbounded) => Err(format!(
                "{name} needs a bounded frame: ROWS BETWEEN n PRECEDING AND CURRENT ROW or RANGE BETWEEN INTERVAL '...' PRECEDING AND CURRENT ROW"
            )),
            (false, Frame::Rows(_) | Frame::Range(_)) => Err(format!(
                "{name} is computed over all preceding rows of its partition; give it no frame, e.g. OVER (PARTITION BY node ORDER BY ts)"
            )),
            (_, Frame::Range(d)) if d < 0 => Err("a RANGE frame cannot reach into the future".to_owned()),
            _ => Ok(()),
        }
    }
}
