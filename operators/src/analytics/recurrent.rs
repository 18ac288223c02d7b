//! Recurrent functions: a small state folded over all preceding rows.
//!
//! [`Recurrent`] keeps the state after every row that may still be
//! recomputed, plus the state before the first row it holds, so a change at
//! row `i` restarts the fold from the state after row `i - 1`. The formulas
//! are on the [`Recurrence`] implementations and in `docs/analytics.md`.

use carbonflow_core::{Datum, Millis, Row};

use super::hmm::HmmFilter;
use super::partition::{Evaluator, Lookback, Reach, Rows};
use super::window::standardize;
use super::{CusumParams, Decay, DetectorOutput, GarchParams, OverCall, OverFunction, PageHinkleyParams};

/// A fold over a partition's rows in order.
pub(crate) trait Recurrence: Send + 'static {
    /// What is carried from row to row.
    type State: Clone + Send;

    /// The state before the first row.
    fn initial(&self) -> Self::State;

    /// Folds in one row and returns its result.
    fn step(&self, state: &mut Self::State, row: &Row, time: Millis) -> Datum;
}

/// A [`Recurrence`] with the state after each held row.
pub(crate) struct Recurrent<R: Recurrence> {
    recurrence: R,
    /// The state before the first held row.
    base: R::State,
    /// `states[i]`: the state after row `i`, for the rows computed so far.
    states: Vec<R::State>,
    current: R::State,
}

impl<R: Recurrence> Recurrent<R> {
    pub(crate) fn new(recurrence: R) -> Self {
        let base = recurrence.initial();
        Recurrent {
            current: base.clone(),
            base,
            states: Vec::new(),
            recurrence,
        }
    }
}

impl<R: Recurrence> Evaluator for Recurrent<R> {
    fn restart(&mut self, _rows: Rows, start: usize) {
        self.states.truncate(start);
        self.current = self.states.last().unwrap_or(&self.base).clone();
    }

    fn next(&mut self, rows: Rows, index: usize) -> Datum {
        debug_assert_eq!(index, self.states.len(), "rows are folded in order");
        let result = self.recurrence.step(&mut self.current, &rows.rows[index], rows.times[index]);
        self.states.push(self.current.clone());
        result
    }

    fn trim(&mut self, count: usize) {
        let count = count.min(self.states.len());
        if count > 0 {
            self.base = self.states[count - 1].clone();
            self.states.drain(..count);
        }
    }

    fn reach(&self) -> Reach {
        Reach::All
    }

    fn lookback(&self) -> Lookback {
        Lookback::State
    }
}

/// The evaluator of a recurrent function.
pub(crate) fn recurrent_evaluator(call: &OverCall) -> Box<dyn Evaluator> {
    let column = call.args[0];
    match &call.function {
        OverFunction::Ewma(decay) => Box::new(Recurrent::new(Ewma {
            column,
            decay: *decay,
            zscore: false,
        })),
        OverFunction::EwmaZScore(decay) => Box::new(Recurrent::new(Ewma {
            column,
            decay: *decay,
            zscore: true,
        })),
        OverFunction::Cusum(params, output) => Box::new(Recurrent::new(Cusum {
            column,
            params: *params,
            output: *output,
        })),
        OverFunction::PageHinkley(params, output) => Box::new(Recurrent::new(PageHinkley {
            column,
            params: *params,
            output: *output,
        })),
        OverFunction::Garch(params) => Box::new(Recurrent::new(Garch { column, params: *params })),
        OverFunction::HmmProbability { model, state } => Box::new(Recurrent::new(HmmFilter::new(model.clone(), column, Some(*state)))),
        OverFunction::HmmState(model) => Box::new(Recurrent::new(HmmFilter::new(model.clone(), column, None))),
        other => unreachable!("{} is a frame function", other.name()),
    }
}

/// `EWMA` and `EWMA_ZSCORE`: exponentially weighted mean and variance.
///
/// Row `i` (of the non-NULL rows before and including the current one `j`)
/// weighs `w_i = 2^(-(t_j - t_i) / half_life)`, with `t` the event time or the
/// row's position among the non-NULL rows. With `W = Σ w_i`, the mean is
/// `Σ w_i x_i / W` and the variance `Σ w_i (x_i - mean)² / W`, updated as a
/// weighted Welford recurrence: with the decay `λ` since the last row,
/// `W' = λW + 1`, `δ = x - mean`, `mean' = mean + δ / W'`,
/// `S' = λS + δ (x - mean')`, variance `S' / W'`.
///
/// `EWMA` is the mean including the row; `EWMA_ZSCORE` is
/// `(x - mean) / sqrt(variance)` of the rows before it (NULL for the first
/// row and while the variance is 0).
struct Ewma {
    column: usize,
    decay: Decay,
    zscore: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Weighted {
    weight: f64,
    mean: f64,
    deviations: f64,
    last_time: Millis,
}

impl Recurrence for Ewma {
    type State = Weighted;

    fn initial(&self) -> Weighted {
        Weighted::default()
    }

    fn step(&self, state: &mut Weighted, row: &Row, time: Millis) -> Datum {
        let Some(x) = row.get(self.column).as_f64() else { return Datum::Null };
        let prior = (state.weight > 0.0).then(|| standardize(x, state.mean, state.deviations / state.weight));
        let decay = if state.weight == 0.0 {
            0.0
        } else {
            match self.decay {
                Decay::Rows(half_life) => (-1.0 / half_life).exp2(),
                Decay::Time(half_life) => (-((time - state.last_time) as f64) / half_life as f64).exp2(),
            }
        };
        let weight = decay * state.weight + 1.0;
        let delta = x - state.mean;
        let mean = state.mean + delta / weight;
        *state = Weighted {
            weight,
            mean,
            deviations: decay * state.deviations + delta * (x - mean),
            last_time: time,
        };
        if self.zscore { prior.unwrap_or(Datum::Null) } else { Datum::float(mean) }
    }
}

/// `CUSUM` and `CUSUM_ALARM`: the self-starting two-sided tabular CUSUM.
///
/// Each value is standardized with the mean and sample standard deviation of
/// the values since the last alarm, `z = (x - mean) / sd`; once `warmup`
/// values are in, `S⁺ = max(0, S⁺ + z - k)` and `S⁻ = max(0, S⁻ - z - k)`.
/// The statistic is `S⁺` when `S⁺ >= S⁻`, else `-S⁻`; the alarm is
/// `max(S⁺, S⁻) > h`, after which both sums and the reference restart from the
/// current value (the first of the new regime).
struct Cusum {
    column: usize,
    params: CusumParams,
    output: DetectorOutput,
}

/// Welford's running mean and sum of squared deviations.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Running {
    count: u32,
    mean: f64,
    squares: f64,
}

impl Running {
    fn add(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / f64::from(self.count);
        self.squares += delta * (x - self.mean);
    }

    fn sample_sd(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            (self.squares / f64::from(self.count - 1)).sqrt()
        }
    }

    fn started(x: f64) -> Self {
        let mut running = Running::default();
        running.add(x);
        running
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CusumState {
    reference: Running,
    high: f64,
    low: f64,
}

/// The signed statistic of a two-sided detector: the larger side, negative for a fall.
fn signed(up: f64, down: f64) -> f64 {
    if up >= down { up } else { -down }
}

fn detector_result(output: DetectorOutput, statistic: f64, alarm: bool) -> Datum {
    match output {
        DetectorOutput::Statistic => Datum::float(statistic),
        DetectorOutput::Alarm => Datum::Bool(alarm),
    }
}

impl Recurrence for Cusum {
    type State = CusumState;

    fn initial(&self) -> CusumState {
        CusumState::default()
    }

    fn step(&self, state: &mut CusumState, row: &Row, _time: Millis) -> Datum {
        let Some(x) = row.get(self.column).as_f64() else { return Datum::Null };
        let sd = state.reference.sample_sd();
        if state.reference.count >= self.params.warmup.max(2) && sd > 0.0 {
            let z = (x - state.reference.mean) / sd;
            state.high = (state.high + z - self.params.k).max(0.0);
            state.low = (state.low - z - self.params.k).max(0.0);
        }
        let statistic = signed(state.high, state.low);
        let alarm = state.high.max(state.low) > self.params.h;
        if alarm {
            *state = CusumState {
                reference: Running::started(x),
                high: 0.0,
                low: 0.0,
            };
        } else {
            state.reference.add(x);
        }
        detector_result(self.output, statistic, alarm)
    }
}

/// `PAGE_HINKLEY` and `PAGE_HINKLEY_ALARM`: the two-sided Page-Hinkley test.
///
/// With `mean_t` the mean of the values since the last alarm (the current
/// one included), `m⁺ += x - mean_t - δ` and `m⁻ += x - mean_t + δ`; the
/// statistics are `PH⁺ = m⁺ - min m⁺` (a rise) and `PH⁻ = max m⁻ - m⁻` (a
/// fall), the minimum and maximum taken since the last alarm, starting at 0.
/// The result is `PH⁺` when `PH⁺ >= PH⁻`, else `-PH⁻`; the alarm is
/// `max(PH⁺, PH⁻) > λ`, after which everything restarts empty.
struct PageHinkley {
    column: usize,
    params: PageHinkleyParams,
    output: DetectorOutput,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PageHinkleyState {
    count: u32,
    mean: f64,
    up: f64,
    up_min: f64,
    down: f64,
    down_max: f64,
}

impl Recurrence for PageHinkley {
    type State = PageHinkleyState;

    fn initial(&self) -> PageHinkleyState {
        PageHinkleyState::default()
    }

    fn step(&self, state: &mut PageHinkleyState, row: &Row, _time: Millis) -> Datum {
        let Some(x) = row.get(self.column).as_f64() else { return Datum::Null };
        state.count += 1;
        state.mean += (x - state.mean) / f64::from(state.count);
        state.up += x - state.mean - self.params.delta;
        state.up_min = state.up_min.min(state.up);
        state.down += x - state.mean + self.params.delta;
        state.down_max = state.down_max.max(state.down);
        let (rise, fall) = (state.up - state.up_min, state.down_max - state.down);
        let alarm = rise.max(fall) > self.params.lambda;
        if alarm {
            *state = PageHinkleyState::default();
        }
        detector_result(self.output, signed(rise, fall), alarm)
    }
}

/// `GARCH_VOLATILITY`: the GARCH(1,1) conditional volatility with given
/// parameters, returns taken as having mean 0.
///
/// The variance starts at the unconditional `ω / (1 - α - β)`; each return
/// `r_t` (the row's observation, see [`super::Observation`]) updates it to
/// `σ²_{t+1} = ω + α r_t² + β σ²_t`, and the result is `σ_{t+1}`: the
/// volatility expected for the next return, given everything up to this row.
/// A row without a return (the first one for a difference) gives NULL.
struct Garch {
    column: usize,
    params: GarchParams,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GarchState {
    variance: f64,
    previous: Option<f64>,
}

impl Recurrence for Garch {
    type State = GarchState;

    fn initial(&self) -> GarchState {
        let GarchParams { omega, alpha, beta, .. } = self.params;
        GarchState {
            variance: omega / (1.0 - alpha - beta),
            previous: None,
        }
    }

    fn step(&self, state: &mut GarchState, row: &Row, _time: Millis) -> Datum {
        let Some(x) = row.get(self.column).as_f64() else { return Datum::Null };
        let observed = self.params.observation.of(x, state.previous);
        state.previous = Some(x);
        let Some(r) = observed else { return Datum::Null };
        let GarchParams { omega, alpha, beta, .. } = self.params;
        state.variance = omega + alpha * r * r + beta * state.variance;
        Datum::float(state.variance.sqrt())
    }
}
