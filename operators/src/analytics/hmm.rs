//! `HMM_PROBABILITY` and `HMM_STATE`: the forward filter of a hidden Markov
//! model with Gaussian emissions, over a partition's observations.
//!
//! The model is fitted offline (`examples/models/fit_hmm.py` fits one with
//! Baum-Welch and writes this JSON) or written by hand:
//!
//! ```json
//! {
//!   "observation": "log_return",
//!   "initial": [0.5, 0.5],
//!   "transition": [[0.98, 0.02], [0.05, 0.95]],
//!   "means": [0.0, 0.0],
//!   "std_devs": [0.02, 0.10]
//! }
//! ```
//!
//! `observation` says what the filter sees of the argument series: the value,
//! its difference or its log return ([`Observation`]); `transition[i][j]` is
//! the probability of moving from state `i` to `j`.
//!
//! With `α_{t-1}` the filtered distribution after the previous observation
//! (the `initial` distribution before the first), the filter predicts
//! `p_j = Σ_i α_{t-1,i} A_ij` (for the first observation, `p = initial`) and
//! corrects with the emission density, `α_{t,j} ∝ p_j · N(o_t; μ_j, σ_j)`,
//! normalised to sum 1 (computed in log space, so an outlier far in the
//! tails does not underflow every state to 0). `HMM_PROBABILITY(x, model, k)`
//! is `α_{t,k}`; `HMM_STATE(x, model)` is the most probable state (the lowest
//! index on a tie). A row without an observation (the first one of a
//! difference or log return) gives NULL and leaves the filter as it was.

use std::sync::Arc;

use carbonflow_core::{Datum, Millis, Row};
use serde::Deserialize;

use super::Observation;
use super::recurrent::Recurrence;

/// The most states a model may have.
pub const MAX_STATES: usize = 4;

/// A Gaussian hidden Markov model. See the module documentation.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmmModel {
    /// What the filter observes of the series.
    #[serde(default)]
    pub observation: Observation,
    /// The distribution of the first state.
    pub initial: Vec<f64>,
    /// `transition[i][j]`: the probability of moving from state `i` to `j`.
    pub transition: Vec<Vec<f64>>,
    /// The mean of each state's observations.
    pub means: Vec<f64>,
    /// The standard deviation of each state's observations.
    pub std_devs: Vec<f64>,
}

impl HmmModel {
    /// Parses and checks a model written as JSON.
    pub fn from_json(text: &str) -> Result<HmmModel, String> {
        let model: HmmModel = serde_json::from_str(text).map_err(|error| format!("not an HMM model: {error}"))?;
        model.check()?;
        Ok(model)
    }

    /// The number of states.
    pub fn states(&self) -> usize {
        self.initial.len()
    }

    fn check(&self) -> Result<(), String> {
        let k = self.states();
        if !(2..=MAX_STATES).contains(&k) {
            return Err(format!("an HMM needs 2 to {MAX_STATES} states, this one has {k}"));
        }
        if self.transition.len() != k || self.transition.iter().any(|row| row.len() != k) || self.means.len() != k || self.std_devs.len() != k {
            return Err(format!("every part of the model must have {k} states (transition {k}x{k}, means, std_devs)"));
        }
        let distribution = |name: &str, p: &[f64]| {
            let valid = p.iter().all(|v| v.is_finite() && *v >= 0.0) && (p.iter().sum::<f64>() - 1.0).abs() < 1e-6;
            if valid {
                Ok(())
            } else {
                Err(format!("{name} must be probabilities summing to 1, got {p:?}"))
            }
        };
        distribution("initial", &self.initial)?;
        for (i, row) in self.transition.iter().enumerate() {
            distribution(&format!("transition row {i}"), row)?;
        }
        if !self.means.iter().all(|m| m.is_finite()) || !self.std_devs.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err("means must be finite and std_devs positive".to_owned());
        }
        Ok(())
    }
}

/// The forward filter as a [`Recurrence`].
pub(crate) struct HmmFilter {
    model: Arc<HmmModel>,
    column: usize,
    /// The state whose probability is the result; `None`: the most probable state.
    state: Option<usize>,
}

impl HmmFilter {
    pub(crate) fn new(model: Arc<HmmModel>, column: usize, state: Option<usize>) -> Self {
        HmmFilter { model, column, state }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FilterState {
    /// The filtered distribution (the first `states()` entries).
    probabilities: [f64; MAX_STATES],
    started: bool,
    previous: Option<f64>,
}

impl Recurrence for HmmFilter {
    type State = FilterState;

    fn initial(&self) -> FilterState {
        FilterState::default()
    }

    fn step(&self, state: &mut FilterState, row: &Row, _time: Millis) -> Datum {
        let Some(x) = row.get(self.column).as_f64() else { return Datum::Null };
        let observed = self.model.observation.of(x, state.previous);
        state.previous = Some(x);
        let Some(o) = observed else { return Datum::Null };
        let model = &*self.model;
        let k = model.states();
        let mut prior = [0.0; MAX_STATES];
        for (j, p) in prior.iter_mut().enumerate().take(k) {
            *p = if state.started {
                (0..k).map(|i| state.probabilities[i] * model.transition[i][j]).sum()
            } else {
                model.initial[j]
            };
        }
        let mut log_likelihood = [f64::NEG_INFINITY; MAX_STATES];
        for (j, ll) in log_likelihood.iter_mut().enumerate().take(k) {
            let z = (o - model.means[j]) / model.std_devs[j];
            *ll = -0.5 * z * z - model.std_devs[j].ln();
        }
        let top = log_likelihood[..k].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut posterior = [0.0; MAX_STATES];
        for j in 0..k {
            posterior[j] = prior[j] * (log_likelihood[j] - top).exp();
        }
        let total: f64 = posterior[..k].iter().sum();
        // A NaN observation says nothing: keep the prediction.
        let filtered = if total > 0.0 && total.is_finite() {
            posterior.map(|p| p / total)
        } else {
            prior
        };
        state.probabilities = filtered;
        state.started = true;
        match self.state {
            Some(wanted) => Datum::float(filtered[wanted]),
            None => {
                let best = (0..k).fold(0, |best, j| if filtered[j] > filtered[best] { j } else { best });
                Datum::Int(best as i64)
            }
        }
    }
}
