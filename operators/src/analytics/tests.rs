//! Property tests of [`OverPartition`] against naive batch computations.
//!
//! A random sequence of batches inserts and retracts rows `(x, ts, y)`; after
//! each batch the partition recomputes and forgets what the next batches can
//! no longer reach (each batch only changes rows at or after its frontier,
//! like the watermark minus the allowed lateness). The consolidated output
//! must be exactly one row per surviving input row, with the results the
//! definitions give when computed from scratch over the surviving rows: the
//! frame functions by collecting each row's frame, the recurrent ones by a
//! plain loop written from their formulas (in probability space for the HMM,
//! with two-pass statistics for CUSUM).

use std::collections::BTreeMap;
use std::sync::Arc;

use carbonflow_core::{DataType, Datum, Diff, Millis, Row};
use proptest::prelude::*;

use super::*;
use crate::aggregate::{Accumulator, AggregateFunction};
use crate::analytics::window::{MAD_SCALE, median_absolute_deviation, median_of_sorted};

const X: usize = 0;
const TS: usize = 1;
const Y: usize = 2;
/// 2024-03-09 00:00 UTC: America/New_York changes to summer time the next day.
const BASE: Millis = 1_709_942_400_000;
const MINUTE: Millis = 60_000;

fn row(x: Option<i64>, time: Millis, y: i64) -> Row {
    Row::new(vec![
        x.map_or(Datum::Null, |x| Datum::float(x as f64)),
        Datum::Timestamp(time),
        Datum::float(y as f64),
    ])
}

fn model() -> Arc<HmmModel> {
    Arc::new(
        HmmModel::from_json(
            r#"{"observation": "difference", "initial": [0.6, 0.4],
                "transition": [[0.9, 0.1], [0.2, 0.8]], "means": [0.0, 1.0], "std_devs": [2.0, 6.0]}"#,
        )
        .unwrap(),
    )
}

fn seasonal(baseline_only: bool) -> Seasonal {
    Seasonal {
        weeks: 1,
        zone: chrono_tz::America::New_York,
        baseline_only,
    }
}

fn frame_calls(frame: Frame) -> Vec<OverCall> {
    let call = |function, args: Vec<usize>| OverCall { function, args, frame };
    let aggregate = |function| OverFunction::Aggregate(crate::AggregateSpec::new(function, DataType::Float));
    vec![
        call(aggregate(AggregateFunction::CountStar), vec![X]),
        call(aggregate(AggregateFunction::Avg), vec![X]),
        call(aggregate(AggregateFunction::Min), vec![X]),
        call(aggregate(AggregateFunction::StddevSamp), vec![X]),
        call(OverFunction::ZScore, vec![X]),
        call(OverFunction::RobustZScore, vec![X]),
        call(OverFunction::Corr, vec![X, Y]),
        call(OverFunction::CorrShift, vec![X, Y]),
    ]
}

/// Calls without a frame; the EWMA's half-life is two time units, so that
/// weights stay well conditioned whatever the unit.
/// Thresholds are odd numbers so that integer data does not hit them exactly,
/// where rounding would decide an alarm.
fn unbounded_calls(unit: Millis) -> Vec<OverCall> {
    let call = |function| OverCall {
        function,
        args: vec![X],
        frame: Frame::Unbounded,
    };
    vec![
        call(OverFunction::Ewma(Decay::Rows(3.0))),
        call(OverFunction::EwmaZScore(Decay::Time(2 * unit))),
        call(OverFunction::Seasonal(seasonal(false))),
        call(OverFunction::Seasonal(seasonal(true))),
        call(OverFunction::HmmProbability { model: model(), state: 1 }),
        call(OverFunction::HmmState(model())),
        call(OverFunction::Cusum(CusumParams { k: 0.37, h: 3.17, warmup: 3 }, DetectorOutput::Statistic)),
        call(OverFunction::Cusum(CusumParams { k: 0.37, h: 3.17, warmup: 3 }, DetectorOutput::Alarm)),
        call(OverFunction::PageHinkley(
            PageHinkleyParams { delta: 0.37, lambda: 7.9 },
            DetectorOutput::Statistic,
        )),
        call(OverFunction::PageHinkley(PageHinkleyParams { delta: 0.37, lambda: 7.9 }, DetectorOutput::Alarm)),
        call(OverFunction::Garch(GarchParams {
            omega: 0.5,
            alpha: 0.1,
            beta: 0.8,
            observation: Observation::Difference,
        })),
    ]
}

/// The frame of row `j` among `rows` (sorted), as indices.
fn frame_indices(rows: &[(Millis, Row)], j: usize, frame: Frame) -> Vec<usize> {
    let t = rows[j].0;
    match frame {
        Frame::Rows(n) => (j.saturating_sub(n)..=j).collect(),
        Frame::Range(d) => (0..rows.len()).filter(|&i| rows[i].0 >= t - d && rows[i].0 <= t).collect(),
        Frame::Unbounded => (0..=j).collect(),
    }
}

fn values(rows: &[(Millis, Row)], indices: &[usize], column: usize) -> Vec<f64> {
    indices.iter().filter_map(|&i| rows[i].1.get(column).as_f64()).collect()
}

/// Two-pass mean and population variance.
fn mean_variance(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    Some((mean, values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n))
}

fn z(x: f64, mean: f64, variance: f64) -> Datum {
    if variance > 0.0 {
        Datum::float((x - mean) / variance.sqrt())
    } else {
        Datum::Null
    }
}

fn pearson(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 2 {
        return None;
    }
    let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let (mx, vx) = mean_variance(&xs)?;
    let (my, vy) = mean_variance(&ys)?;
    let cov = pairs.iter().map(|(x, y)| (x - mx) * (y - my)).sum::<f64>() / pairs.len() as f64;
    (vx > 0.0 && vy > 0.0).then(|| (cov / (vx * vy).sqrt()).clamp(-1.0, 1.0))
}

fn pairs(rows: &[(Millis, Row)], indices: impl Iterator<Item = usize>) -> Vec<(f64, f64)> {
    indices.filter_map(|i| Some((rows[i].1.get(X).as_f64()?, rows[i].1.get(Y).as_f64()?))).collect()
}

/// The result of a frame function for row `j`, from its definition.
fn naive_frame(call: &OverCall, rows: &[(Millis, Row)], j: usize) -> Datum {
    let indices = frame_indices(rows, j, call.frame);
    let x = rows[j].1.get(X).as_f64();
    match &call.function {
        OverFunction::Aggregate(spec) => {
            let mut accumulator = Accumulator::new(spec);
            indices.iter().for_each(|&i| accumulator.update(rows[i].1.get(X), rows[i].0, 1));
            accumulator.result()
        }
        OverFunction::ZScore => match (x, mean_variance(&values(rows, &indices, X))) {
            (Some(x), Some((mean, variance))) => z(x, mean, variance),
            _ => Datum::Null,
        },
        OverFunction::RobustZScore => {
            let mut sorted = values(rows, &indices, X);
            sorted.sort_by(f64::total_cmp);
            match x {
                Some(x) if !sorted.is_empty() => {
                    let median = median_of_sorted(&sorted);
                    let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - median).abs()).collect();
                    deviations.sort_by(f64::total_cmp);
                    z(x, median, (MAD_SCALE * median_of_sorted(&deviations)).powi(2))
                }
                _ => Datum::Null,
            }
        }
        OverFunction::Corr => pearson(&pairs(rows, indices.into_iter())).map_or(Datum::Null, Datum::float),
        OverFunction::CorrShift => {
            let t = rows[j].0;
            let before: Vec<usize> = match call.frame {
                Frame::Rows(n) => (0..rows.len()).filter(|&i| i + 2 * n + 1 >= j && i + n < j).collect(),
                Frame::Range(d) => (0..rows.len()).filter(|&i| rows[i].0 >= t - 2 * d && rows[i].0 < t - d).collect(),
                Frame::Unbounded => unreachable!(),
            };
            let (recent, before) = (pairs(rows, indices.into_iter()), pairs(rows, before.into_iter()));
            match (pearson(&recent), pearson(&before)) {
                (Some(r1), Some(r0)) if recent.len() > 3 && before.len() > 3 => {
                    let clamp = |r: f64| r.clamp(-0.999_999_999, 0.999_999_999).atanh();
                    let spread = (1.0 / (recent.len() - 3) as f64 + 1.0 / (before.len() - 3) as f64).sqrt();
                    Datum::float((clamp(r1) - clamp(r0)) / spread)
                }
                _ => Datum::Null,
            }
        }
        other => unreachable!("{} is not a frame function", other.name()),
    }
}

/// The results of a recurrent or seasonal function for every row, from its definition.
fn naive_series(call: &OverCall, rows: &[(Millis, Row)]) -> Vec<Datum> {
    let xs: Vec<Option<f64>> = rows.iter().map(|(_, r)| r.get(X).as_f64()).collect();
    let times: Vec<Millis> = rows.iter().map(|(t, _)| *t).collect();
    let present: Vec<usize> = (0..rows.len()).filter(|&i| xs[i].is_some()).collect();
    match &call.function {
        OverFunction::Ewma(decay) | OverFunction::EwmaZScore(decay) => (0..rows.len())
            .map(|j| {
                let Some(x) = xs[j] else { return Datum::Null };
                let rank = |i: usize| present.iter().position(|&p| p == i).unwrap() as f64;
                let weigh = |i: usize| match decay {
                    Decay::Rows(h) => 2f64.powf(-(rank(j) - rank(i)) / h),
                    Decay::Time(h) => 2f64.powf(-((times[j] - times[i]) as f64) / *h as f64),
                };
                let zscore = matches!(call.function, OverFunction::EwmaZScore(_));
                let used: Vec<usize> = present.iter().copied().filter(|&i| if zscore { i < j } else { i <= j }).collect();
                if used.is_empty() {
                    return Datum::Null;
                }
                let weight: f64 = used.iter().map(|&i| weigh(i)).sum();
                let mean = used.iter().map(|&i| weigh(i) * xs[i].unwrap()).sum::<f64>() / weight;
                if !zscore {
                    return Datum::float(mean);
                }
                // Weighted means of equal values need not round back to the value.
                let spread = used.iter().any(|&i| xs[i] != xs[used[0]]);
                let variance = used.iter().map(|&i| weigh(i) * (xs[i].unwrap() - mean).powi(2)).sum::<f64>() / weight;
                let variance = if spread { variance } else { 0.0 };
                z(x, mean, variance)
            })
            .collect(),
        OverFunction::Seasonal(seasonal) => (0..rows.len())
            .map(|j| {
                let Some(x) = xs[j] else { return Datum::Null };
                let bucket = seasonal.bucket(times[j]);
                let baseline: Vec<f64> = (0..j)
                    .filter(|&i| times[i] >= times[j] - seasonal.lookback() && seasonal.bucket(times[i]) == bucket)
                    .filter_map(|i| xs[i])
                    .collect();
                match mean_variance(&baseline) {
                    Some((mean, _)) if seasonal.baseline_only => Datum::float(mean),
                    Some((mean, variance)) if baseline.len() >= 2 => z(x, mean, variance),
                    _ => Datum::Null,
                }
            })
            .collect(),
        OverFunction::HmmProbability { model, .. } | OverFunction::HmmState(model) => {
            let k = model.states();
            let mut alpha: Option<Vec<f64>> = None;
            let mut previous: Option<f64> = None;
            xs.iter()
                .map(|x| {
                    let x = (*x)?;
                    let o = model.observation.of(x, previous.replace(x))?;
                    let density = |j: usize| {
                        let s = model.std_devs[j];
                        (-0.5 * ((o - model.means[j]) / s).powi(2)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
                    };
                    let prior: Vec<f64> = match &alpha {
                        None => model.initial.clone(),
                        Some(a) => (0..k).map(|j| (0..k).map(|i| a[i] * model.transition[i][j]).sum()).collect(),
                    };
                    let joint: Vec<f64> = (0..k).map(|j| prior[j] * density(j)).collect();
                    let total: f64 = joint.iter().sum();
                    let filtered: Vec<f64> = joint.iter().map(|p| p / total).collect();
                    alpha = Some(filtered.clone());
                    Some(filtered)
                })
                .map(|filtered| match (&call.function, filtered) {
                    (_, None) => Datum::Null,
                    (OverFunction::HmmProbability { state, .. }, Some(f)) => Datum::float(f[*state]),
                    (_, Some(f)) => Datum::Int((0..k).fold(0, |b, j| if f[j] > f[b] { j } else { b }) as i64),
                })
                .collect()
        }
        OverFunction::Cusum(params, output) => {
            let mut since_reset: Vec<f64> = Vec::new();
            let (mut high, mut low) = (0.0f64, 0.0f64);
            xs.iter()
                .map(|x| {
                    let x = (*x)?;
                    if since_reset.len() >= params.warmup.max(2) as usize {
                        let (mean, variance) = mean_variance(&since_reset).unwrap();
                        let n = since_reset.len() as f64;
                        let sd = (variance * n / (n - 1.0)).sqrt();
                        if sd > 0.0 {
                            high = (high + (x - mean) / sd - params.k).max(0.0);
                            low = (low - (x - mean) / sd - params.k).max(0.0);
                        }
                    }
                    let statistic = if high >= low { high } else { -low };
                    let alarm = high.max(low) > params.h;
                    if alarm {
                        since_reset.clear();
                        (high, low) = (0.0, 0.0);
                    }
                    since_reset.push(x);
                    Some(if *output == DetectorOutput::Alarm {
                        Datum::Bool(alarm)
                    } else {
                        Datum::float(statistic)
                    })
                })
                .map(|d| d.unwrap_or(Datum::Null))
                .collect()
        }
        OverFunction::PageHinkley(params, output) => {
            let mut since_reset: Vec<f64> = Vec::new();
            let (mut up, mut down) = (vec![0.0f64], vec![0.0f64]);
            xs.iter()
                .map(|x| {
                    let x = (*x)?;
                    since_reset.push(x);
                    // The running mean as the core updates it: a tie between a rise and
                    // a fall must not be decided by rounding differently.
                    let mean = since_reset.iter().enumerate().fold(0.0, |mean, (i, v)| mean + (v - mean) / (i + 1) as f64);
                    up.push(up.last().unwrap() + (x - mean - params.delta));
                    down.push(down.last().unwrap() + (x - mean + params.delta));
                    let rise = up.last().unwrap() - up.iter().copied().fold(f64::INFINITY, f64::min);
                    let fall = down.iter().copied().fold(f64::NEG_INFINITY, f64::max) - down.last().unwrap();
                    let alarm = rise.max(fall) > params.lambda;
                    if alarm {
                        since_reset.clear();
                        (up, down) = (vec![0.0], vec![0.0]);
                    }
                    Some(if *output == DetectorOutput::Alarm {
                        Datum::Bool(alarm)
                    } else {
                        Datum::float(if rise >= fall { rise } else { -fall })
                    })
                })
                .map(|d| d.unwrap_or(Datum::Null))
                .collect()
        }
        OverFunction::Garch(params) => {
            let mut variance = params.omega / (1.0 - params.alpha - params.beta);
            let mut previous = None;
            xs.iter()
                .map(|x| {
                    let x = (*x)?;
                    let r = params.observation.of(x, previous.replace(x))?;
                    variance = params.omega + params.alpha * r * r + params.beta * variance;
                    Some(Datum::float(variance.sqrt()))
                })
                .map(|d| d.unwrap_or(Datum::Null))
                .collect()
        }
        _ => (0..rows.len()).map(|j| naive_frame(call, rows, j)).collect(),
    }
}

/// The expected output rows over the surviving rows, sorted.
fn naive(calls: &[OverCall], live: &BTreeMap<(Millis, Row), usize>) -> Vec<Row> {
    let rows: Vec<(Millis, Row)> = live.iter().flat_map(|((t, r), n)| std::iter::repeat_n((*t, r.clone()), *n)).collect();
    let columns: Vec<Vec<Datum>> = calls.iter().map(|call| naive_series(call, &rows)).collect();
    let mut out: Vec<Row> = (0..rows.len())
        .map(|j| rows[j].1.iter().cloned().chain(columns.iter().map(|c| c[j].clone())).collect())
        .collect();
    out.sort();
    out
}

fn close(a: &Datum, b: &Datum) -> bool {
    match (a, b) {
        (Datum::Float(a), Datum::Float(b)) => {
            let (a, b) = (a.get(), b.get());
            a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
        }
        _ => a == b,
    }
}

/// One batch: insertions `(minute offset from the frontier, x, y)` and
/// retractions of surviving rows at or after the frontier (by index).
#[derive(Clone, Debug)]
struct Batch {
    advance: i64,
    inserts: Vec<(i64, Option<i64>, i64)>,
    retracts: Vec<usize>,
}

fn batches() -> impl Strategy<Value = Vec<Batch>> {
    let batch = (
        0i64..4,
        prop::collection::vec((0i64..6, prop::option::weighted(0.9, -6i64..6), -4i64..4), 0..6),
        prop::collection::vec(any::<usize>(), 0..3),
    )
        .prop_map(|(advance, inserts, retracts)| Batch { advance, inserts, retracts });
    prop::collection::vec(batch, 1..16)
}

fn check(calls: Vec<OverCall>, unit: Millis, batches: Vec<Batch>) -> Result<(), TestCaseError> {
    for call in &calls {
        call.check().map_err(TestCaseError::fail)?;
    }
    let mut partition = OverPartition::new(&calls);
    let mut live: BTreeMap<(Millis, Row), usize> = BTreeMap::new();
    let mut output: Vec<(Row, Diff)> = Vec::new();
    let mut frontier = 0i64;
    for batch in batches {
        for (offset, x, y) in batch.inserts {
            let time = BASE + (frontier + offset) * unit;
            let row = row(x, time, y);
            partition.insert(time, row.clone(), 1);
            *live.entry((time, row)).or_default() += 1;
        }
        for pick in batch.retracts {
            let changeable: Vec<(Millis, Row)> = live.range((BASE + frontier * unit, Row::empty())..).map(|(k, _)| k.clone()).collect();
            if changeable.is_empty() {
                continue;
            }
            let (time, row) = changeable[pick % changeable.len()].clone();
            partition.remove(time, &row, 1, &mut output);
            let count = live.get_mut(&(time, row.clone())).unwrap();
            *count -= 1;
            if *count == 0 {
                live.remove(&(time, row));
            }
        }
        partition.recompute(&mut output);
        frontier += batch.advance;
        partition.trim(BASE + frontier * unit);
    }
    differential_dataflow::consolidation::consolidate(&mut output);
    prop_assert!(output.iter().all(|(_, diff)| *diff > 0), "a retraction without its row: {:?}", output);
    let mut got: Vec<Row> = output.iter().flat_map(|(r, n)| std::iter::repeat_n(r.clone(), *n as usize)).collect();
    got.sort();
    let expected = naive(&calls, &live);
    prop_assert_eq!(got.len(), expected.len(), "one output row per surviving row");
    // Copies of one input row have different results (each sees the one
    // before it), which rounding may order differently: pair them by closeness.
    for e in &expected {
        let found = got.iter().position(|g| g.iter().zip(e.iter()).all(|(a, b)| close(a, b)));
        prop_assert!(found.is_some(), "expected {:?}\namong {:?}", e, got);
        got.swap_remove(found.unwrap());
    }
    Ok(())
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![(0usize..6).prop_map(Frame::Rows), (0i64..8).prop_map(|m| Frame::Range(m * MINUTE))]
}

/// Every call, each function once: frame functions over `frame`, the others
/// without a frame.
fn all_calls(frame: Frame, unit: Millis) -> Vec<OverCall> {
    let mut calls = frame_calls(frame);
    calls.extend(unbounded_calls(unit));
    calls
}

/// A random non-empty selection of [`all_calls`], so that each function's
/// reach and look-back are also tested alone, not only under the widest.
fn some_calls(unit: Millis) -> impl Strategy<Value = Vec<OverCall>> {
    frame().prop_flat_map(move |frame| {
        let calls = all_calls(frame, unit);
        let count = calls.len();
        prop::sample::subsequence(calls, 1..=count)
    })
}

proptest! {
    #[test]
    fn oracle_each_function_with_retractions_and_trimming(calls in some_calls(MINUTE), batches in batches()) {
        check(calls, MINUTE, batches)?;
    }

    #[test]
    fn oracle_over_weeks_with_retractions_and_trimming(calls in some_calls(7 * 60 * MINUTE), batches in batches()) {
        // Seven-hour steps: seasonal buckets differ and the one-week look-back trims.
        check(calls, 7 * 60 * MINUTE, batches)?;
    }

    #[test]
    fn oracle_all_functions_together(frame in frame(), batches in batches()) {
        check(all_calls(frame, 30 * MINUTE), 30 * MINUTE, batches)?;
    }
}

proptest! {
    /// The selection from the two runs of deviations equals sorting them all,
    /// bit for bit, ties (few distinct values) included.
    #[test]
    fn median_absolute_deviation_equals_sorting_the_deviations(
        mut values in prop_oneof![
            prop::collection::vec((-4i32..4).prop_map(f64::from), 1..30),
            prop::collection::vec(-1e3f64..1e3, 1..30),
        ],
    ) {
        values.sort_by(f64::total_cmp);
        let median = median_of_sorted(&values);
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        prop_assert_eq!(median_absolute_deviation(&values, median).to_bits(), median_of_sorted(&deviations).to_bits());
    }
}

#[test]
fn median_absolute_deviation_of_known_values() {
    let values = [1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0];
    let median = median_of_sorted(&values);
    assert_eq!(median, 2.0);
    // Deviations 1, 1, 0, 0, 2, 4, 7: their median is 1.
    assert_eq!(median_absolute_deviation(&values, median), 1.0);
    assert_eq!(median_absolute_deviation(&[1.0, 2.0, 3.0, 10.0], 2.5), 1.0);
}

#[test]
fn garch_volatility_converges_to_its_fixed_point_under_constant_returns() {
    let params = GarchParams {
        omega: 0.1,
        alpha: 0.2,
        beta: 0.7,
        observation: Observation::Value,
    };
    let calls = [OverCall {
        function: OverFunction::Garch(params),
        args: vec![X],
        frame: Frame::Unbounded,
    }];
    let mut partition = OverPartition::new(&calls);
    for i in 0..200 {
        partition.insert(BASE + i, row(Some(2), BASE + i, 0), 1);
    }
    let mut output = Vec::new();
    partition.recompute(&mut output);
    // σ² = ω + α·4 + β·σ²  ⇒  σ² = (0.1 + 0.8) / 0.3 = 3.
    let last = output.iter().max_by_key(|(r, _)| r.get(TS).as_timestamp()).unwrap();
    assert!((last.0.get(3).as_f64().unwrap() - 3f64.sqrt()).abs() < 1e-9);
}

#[test]
fn the_hmm_filter_follows_a_regime_switch() {
    let model = Arc::new(
        HmmModel::from_json(r#"{"initial": [0.5, 0.5], "transition": [[0.95, 0.05], [0.05, 0.95]], "means": [0.0, 10.0], "std_devs": [1.0, 1.0]}"#).unwrap(),
    );
    let calls = [OverCall {
        function: OverFunction::HmmState(model),
        args: vec![X],
        frame: Frame::Unbounded,
    }];
    let mut partition = OverPartition::new(&calls);
    for i in 0..40 {
        partition.insert(BASE + i, row(Some(if i < 20 { 0 } else { 10 }), BASE + i, 0), 1);
    }
    let mut output = Vec::new();
    partition.recompute(&mut output);
    output.sort_by_key(|(r, _)| r.get(TS).as_timestamp());
    let states: Vec<i64> = output.iter().map(|(r, _)| r.get(3).as_i64().unwrap()).collect();
    assert_eq!(states, [vec![0; 20], vec![1; 20]].concat());
}

#[test]
fn models_that_are_not_distributions_are_refused() {
    let bad = [
        r#"{"initial": [1.0], "transition": [[1.0]], "means": [0.0], "std_devs": [1.0]}"#,
        r#"{"initial": [0.5, 0.6], "transition": [[1, 0], [0, 1]], "means": [0, 0], "std_devs": [1, 1]}"#,
        r#"{"initial": [0.5, 0.5], "transition": [[1, 0], [0, 1]], "means": [0, 0], "std_devs": [1, 0]}"#,
        r#"{"initial": [0.5, 0.5], "transition": [[1, 0]], "means": [0, 0], "std_devs": [1, 1]}"#,
        r#"{"initial": [0.5, 0.5], "transition": [[1, 0], [0, 1]], "means": [0, 0], "std_devs": [1, 1], "extra": 1}"#,
    ];
    for text in bad {
        assert!(HmmModel::from_json(text).is_err(), "{text}");
    }
}

#[test]
fn calls_check_their_frames() {
    let call = |function, frame| OverCall {
        function,
        args: vec![X],
        frame,
    };
    assert!(call(OverFunction::ZScore, Frame::Unbounded).check().unwrap_err().contains("bounded frame"));
    assert!(
        call(OverFunction::Ewma(Decay::Rows(2.0)), Frame::Rows(3))
            .check()
            .unwrap_err()
            .contains("all preceding rows")
    );
    assert!(call(OverFunction::ZScore, Frame::Rows(3)).check().is_ok());
    assert!(call(OverFunction::Corr, Frame::Rows(3)).check().unwrap_err().contains("2 value argument"));
}
