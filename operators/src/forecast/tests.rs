//! The forecast core against a batch reference over the accumulated input,
//! with a small arithmetic model in place of ONNX (the ONNX model itself is
//! tested end to end in the engine's `tests/forecast.rs`).

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const STEP: Millis = 3_600_000;

/// The live values at one key and hour, with their counts.
type Slot = Vec<(Option<f64>, Diff)>;

/// A model whose quantiles are simple functions of the whole context, so a
/// wrong, shifted or stale context changes the output. Records batch sizes.
struct ArithmeticModel {
    shape: ModelShape,
    batches: Vec<usize>,
    fail: bool,
    refresh: Option<Result<String, ModelError>>,
}

impl ArithmeticModel {
    fn new(context: usize, horizon: usize) -> Self {
        ArithmeticModel {
            shape: ModelShape { context, horizon },
            batches: Vec::new(),
            fail: false,
            refresh: None,
        }
    }

    /// The quantiles for one context: p50 at step h is the weighted sum
    /// `sum((i + 1) * x_i) / N + h`; p10 and p90 are one below and above.
    fn quantiles(context: &[f32], horizon: usize) -> Vec<f32> {
        let weighted: f32 = context.iter().enumerate().map(|(i, x)| (i as f32 + 1.0) * x).sum::<f32>() / context.len() as f32;
        (1..=horizon)
            .flat_map(|h| [weighted + h as f32 - 1.0, weighted + h as f32, weighted + h as f32 + 1.0])
            .collect()
    }
}

impl ForecastModel for ArithmeticModel {
    fn shape(&self) -> ModelShape {
        self.shape
    }

    fn predict(&mut self, contexts: &[f32], batch: usize, out: &mut Vec<f32>) -> Result<(), ModelError> {
        if self.fail {
            return Err(ModelError::Run {
                path: "test".into(),
                message: "broken".into(),
            });
        }
        assert_eq!(contexts.len(), batch * self.shape.context);
        self.batches.push(batch);
        out.clear();
        for context in contexts.chunks_exact(self.shape.context) {
            out.extend(Self::quantiles(context, self.shape.horizon));
        }
        Ok(())
    }

    fn refresh(&mut self) -> Option<Result<String, ModelError>> {
        self.refresh.take()
    }
}

fn spec(allowed_lateness: Millis) -> ForecastSpec {
    ForecastSpec {
        time_column: 0,
        value_column: 1,
        step: STEP,
        allowed_lateness,
    }
}

fn key(node: u8) -> Row {
    Row::new(vec![Datum::string(&format!("N{node}"))])
}

fn tick(node: u8, hour: i64, price: Option<f64>) -> (Row, Row) {
    (
        key(node),
        Row::new(vec![Datum::Timestamp(hour * STEP), price.map_or(Datum::Null, Datum::float)]),
    )
}

/// Drives a core: one epoch per call, the watermark moving to `watermark` at its end.
struct Driver {
    core: Forecast<ArithmeticModel>,
    watermark: Millis,
    output: Vec<(Row, Diff)>,
    dead: Vec<DeadLetter>,
}

impl Driver {
    fn new(context: usize, horizon: usize, allowed_lateness: Millis) -> Self {
        Driver {
            core: Forecast::new("Forecast", spec(allowed_lateness), ArithmeticModel::new(context, horizon)),
            watermark: Millis::MIN,
            output: Vec::new(),
            dead: Vec::new(),
        }
    }

    fn epoch(&mut self, updates: &[((Row, Row), Diff)], watermark: Millis) {
        let mut context = CoreContext {
            watermark: self.watermark,
            output: &mut self.output,
            dead_letters: &mut self.dead,
        };
        for (update, diff) in updates {
            self.core.on_update(update.clone(), *diff, &mut context);
        }
        self.watermark = self.watermark.max(watermark);
        context.watermark = self.watermark;
        self.core.on_epoch_end(0, &mut context);
    }

    fn consolidated(&self) -> HashMap<Row, Diff> {
        consolidate(self.output.iter().cloned())
    }
}

fn consolidate(updates: impl IntoIterator<Item = (Row, Diff)>) -> HashMap<Row, Diff> {
    let mut out: HashMap<Row, Diff> = HashMap::new();
    for (row, diff) in updates {
        *out.entry(row).or_default() += diff;
    }
    out.retain(|_, diff| *diff != 0);
    out
}

/// The forecasts of the accumulated input, from scratch: every origin at or
/// before the watermark whose `context` hours each hold exactly one non-NULL value.
fn reference(input: &HashMap<(u8, i64, Option<u64>), Diff>, watermark: Millis, context: usize, horizon: usize) -> HashMap<Row, Diff> {
    let mut live: HashMap<(u8, i64), Slot> = HashMap::new();
    for (&(node, hour, bits), &count) in input {
        if count != 0 {
            live.entry((node, hour)).or_default().push((bits.map(f64::from_bits), count));
        }
    }
    let value = |node: u8, hour: i64| match live.get(&(node, hour)).map(Vec::as_slice) {
        Some([(value, 1)]) => *value,
        _ => None,
    };
    let mut out = Vec::new();
    for &(node, origin) in live.keys() {
        if origin * STEP > watermark {
            continue;
        }
        let values: Option<Vec<f32>> = (0..context as i64)
            .map(|i| value(node, origin - context as i64 + 1 + i).map(|v| v as f32))
            .collect();
        let Some(values) = values else { continue };
        let quantiles = ArithmeticModel::quantiles(&values, horizon);
        Forecast::<ArithmeticModel>::push_rows(&mut out, &key(node), origin * STEP, STEP, &quantiles, 1);
    }
    consolidate(out)
}

#[test]
fn one_batch_per_epoch_across_keys() {
    let mut driver = Driver::new(3, 2, 0);
    let mut updates = Vec::new();
    for hour in 0..3 {
        for node in 0..4 {
            updates.push((tick(node, hour, Some(10.0 * f64::from(node) + hour as f64)), 1));
        }
    }
    driver.epoch(&updates, 2 * STEP);
    assert_eq!(driver.core.model().batches, vec![4], "four keys closed hour 2 together: one call");
    // Hour 3 closes for two keys only.
    driver.epoch(&[(tick(0, 3, Some(1.0)), 1), (tick(1, 3, Some(2.0)), 1)], 3 * STEP);
    assert_eq!(driver.core.model().batches, vec![4, 2]);
    assert_eq!(driver.consolidated().len(), (4 + 2) * 2);
    let first = driver
        .consolidated()
        .into_keys()
        .find(|row| row.get(0) == &Datum::string("N0") && row.get(1) == &Datum::Timestamp(2 * STEP) && row.get(2) == &Datum::Int(1));
    // Context 0, 1, 2 -> (1*0 + 2*1 + 3*2) / 3 = 8/3; p50 at h=1 is 8/3 + 1.
    let row = first.expect("N0 forecasts from hour 2");
    assert_eq!(row.get(3), &Datum::Timestamp(3 * STEP));
    assert_eq!(row.get(4).as_f64(), Some(f64::from(8.0f32 / 3.0 + 1.0)));
}

#[test]
fn a_revision_retracts_and_reissues_every_forecast_that_saw_it() {
    let mut driver = Driver::new(3, 1, 10 * STEP);
    let updates: Vec<_> = (0..6).map(|hour| (tick(0, hour, Some(hour as f64)), 1)).collect();
    driver.epoch(&updates, 5 * STEP);
    let before = driver.output.len();
    // Hour 2 is revised: origins 2, 3 and 4 saw it; 5 did not.
    driver.epoch(&[(tick(0, 2, Some(2.0)), -1), (tick(0, 2, Some(20.0)), 1)], 5 * STEP);
    let changes = &driver.output[before..];
    let retracted: Vec<_> = changes
        .iter()
        .filter(|(_, d)| *d < 0)
        .map(|(row, _)| row.get(1).as_timestamp().unwrap() / STEP)
        .collect();
    assert_eq!(retracted, vec![2, 3, 4]);
    assert_eq!(changes.len(), 6);
    assert_eq!(driver.core.model().batches.last(), Some(&3));
}

#[test]
fn a_gap_or_a_null_gives_no_forecast() {
    let mut driver = Driver::new(2, 1, 0);
    let updates = [
        (tick(0, 0, Some(1.0)), 1),
        (tick(0, 2, Some(1.0)), 1),
        (tick(1, 0, Some(1.0)), 1),
        (tick(1, 1, None), 1),
    ];
    driver.epoch(&updates, 2 * STEP);
    assert!(driver.output.is_empty(), "{:?}", driver.output);
}

#[test]
fn state_stays_bounded_by_the_lateness_and_the_context() {
    let mut driver = Driver::new(24, 4, 2 * STEP);
    let mut most = 0;
    for hour in 0..2_000 {
        driver.epoch(&[(tick(0, hour, Some((hour % 24) as f64)), 1)], hour * STEP);
        most = most.max(driver.core.held_values());
    }
    assert!(driver.dead.is_empty());
    assert_eq!(driver.consolidated().len(), (2_000 - 23) * 4);
    // Values back to the lateness plus one context: 2 + 24 hours (and the newest).
    assert!(most <= 27, "held {most} values");
}

#[test]
fn a_key_that_goes_quiet_is_forgotten_and_the_others_keep_forecasting() {
    let mut driver = Driver::new(2, 1, 0);
    let mut input: HashMap<(u8, i64, Option<u64>), Diff> = HashMap::new();
    let mut hour_of = |driver: &mut Driver, hour: i64, nodes: &[u8]| {
        let updates: Vec<_> = nodes
            .iter()
            .map(|&node| {
                let price = f64::from(node) * 10.0 + hour as f64;
                *input.entry((node, hour, Some(price.to_bits()))).or_default() += 1;
                (tick(node, hour, Some(price)), 1)
            })
            .collect();
        driver.epoch(&updates, hour * STEP);
        reference(&input, hour * STEP, 2, 1)
    };
    for hour in 0..4 {
        hour_of(&mut driver, hour, &[0, 1, 2]);
    }
    // N0 goes quiet: once no accepted change can reach its values, its
    // series is dropped (the last series takes its place in the core).
    for hour in 4..8 {
        hour_of(&mut driver, hour, &[1, 2]);
    }
    assert_eq!(driver.core.held_values(), 4, "N1 and N2 keep the hours one context can see; N0 is gone");
    // N0 comes back; everyone forecasts from complete contexts only.
    for hour in 8..10 {
        let expected = hour_of(&mut driver, hour, &[0, 1, 2]);
        assert_eq!(driver.consolidated(), expected, "hour {hour}");
    }
    assert!(driver.dead.is_empty());
}

#[test]
fn a_change_behind_the_allowed_lateness_is_dead_lettered() {
    let mut driver = Driver::new(2, 1, STEP);
    driver.epoch(&[(tick(0, 10, Some(1.0)), 1)], 10 * STEP);
    driver.epoch(&[(tick(0, 8, Some(1.0)), 1), (tick(0, 9, Some(1.0)), 1)], 10 * STEP);
    assert_eq!(driver.dead.len(), 1);
    assert_eq!(driver.dead[0].reason, DeadLetterReason::Late);
}

#[test]
fn a_failing_model_dead_letters_the_batch() {
    let mut driver = Driver::new(1, 1, 0);
    driver.core.model.fail = true;
    driver.epoch(&[(tick(0, 0, Some(1.0)), 1), (tick(1, 0, Some(1.0)), 1)], 0);
    assert!(driver.output.is_empty());
    assert_eq!(driver.dead.len(), 1);
    assert!(driver.dead[0].detail.contains("broken"), "{}", driver.dead[0].detail);
}

#[test]
fn a_refused_reload_is_dead_lettered_and_the_model_keeps_running() {
    let mut driver = Driver::new(1, 1, 0);
    driver.core.model.refresh = Some(Err(ModelError::Shape {
        path: "m.onnx".into(),
        message: "wrong".into(),
    }));
    driver.epoch(&[(tick(0, 0, Some(1.0)), 1)], 0);
    assert_eq!(driver.dead.len(), 1);
    assert!(driver.dead[0].detail.contains("previous model stays in use"));
    assert_eq!(driver.consolidated().len(), 1);
}

/// One step of a random run: updates, then the watermark advance in hours.
#[derive(Clone, Debug)]
struct Step {
    inserts: Vec<(u8, i64, Option<u8>)>,
    retracts: Vec<usize>,
    advance: i64,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let insert = (0u8..3, 0i64..16, prop::option::weighted(0.95, 0u8..5));
    let step = (prop::collection::vec(insert, 0..8), prop::collection::vec(any::<usize>(), 0..3), 0i64..4).prop_map(|(inserts, retracts, advance)| Step {
        inserts,
        retracts,
        advance,
    });
    prop::collection::vec(step, 1..25)
}

proptest! {
    /// At every epoch the consolidated output equals the reference over
    /// everything accumulated so far, through revisions, retractions,
    /// duplicates and NULLs, in any order relative to the watermark.
    #[test]
    fn oracle_forecasts_match_the_batch_reference(steps in steps(), context in 1usize..5, horizon in 1usize..3) {
        let mut driver = Driver::new(context, horizon, Millis::MAX / 4);
        let mut input: HashMap<(u8, i64, Option<u64>), Diff> = HashMap::new();
        let mut live: Vec<(u8, i64, Option<f64>)> = Vec::new();
        let mut watermark_hour = -1;
        for step in steps {
            let mut updates = Vec::new();
            for (node, hour, price) in step.inserts {
                let price = price.map(f64::from);
                live.push((node, hour, price));
                updates.push((tick(node, hour, price), 1));
                *input.entry((node, hour, price.map(f64::to_bits))).or_default() += 1;
            }
            for pick in step.retracts {
                if live.is_empty() {
                    break;
                }
                let (node, hour, price) = live.swap_remove(pick % live.len());
                updates.push((tick(node, hour, price), -1));
                *input.entry((node, hour, price.map(f64::to_bits))).or_default() -= 1;
            }
            watermark_hour += step.advance;
            let watermark = if watermark_hour < 0 { Millis::MIN } else { watermark_hour * STEP };
            driver.epoch(&updates, watermark);
            prop_assert!(driver.dead.is_empty());
            prop_assert_eq!(driver.consolidated(), reference(&input, driver.watermark, context, horizon));
        }
    }
}
