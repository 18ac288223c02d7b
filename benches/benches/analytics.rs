//! Isolates the per-tick cost of each OVER analytics function's pure core
//! ([`OverPartition`]) from the dataflow runtime: no exchange, no
//! watermark buffering, no output sink.
//!
//! ```text
//! cargo bench -p carbonflow-benches --bench analytics
//! ```
//!
//! Each iteration streams 100 ticks into each of 1,000 partitions (100,000
//! ticks) the way the operator does once the watermark passes them: one tick
//! per partition at a time, then `recompute` (which computes and emits the
//! new row) and `trim` (which drops what the frame no longer needs). State
//! carries over between iterations, as in a long stream. Prices are a seeded
//! random walk around 40 $/MWh; one tick a second per partition.

use std::hint::black_box;
use std::sync::Arc;

use carbonflow_core::{DataType, Datum, Millis, Row};
use carbonflow_operators::analytics::{
    CusumParams, Decay, DetectorOutput, Frame, GarchParams, HmmModel, Observation, OverCall, OverFunction, OverPartition, PageHinkleyParams, Seasonal,
};
use carbonflow_operators::{AggregateFunction, AggregateSpec};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PARTITIONS: usize = 1_000;
const TICKS_PER_PARTITION: usize = 100;
const PRICE: usize = 0;
const HMM: &str = r#"{"observation": "difference", "initial": [0.5, 0.5], "transition": [[0.99, 0.01], [0.05, 0.95]], "means": [0, 0], "std_devs": [0.5, 3]}"#;

fn calls() -> Vec<(&'static str, OverCall)> {
    let last_20 = |function| OverCall {
        function,
        args: vec![PRICE],
        frame: Frame::Rows(19),
    };
    let unbounded = |function| OverCall {
        function,
        args: vec![PRICE],
        frame: Frame::Unbounded,
    };
    vec![
        (
            "avg_rows_20",
            last_20(OverFunction::Aggregate(AggregateSpec::new(AggregateFunction::Avg, DataType::Float))),
        ),
        ("zscore_rows_20", last_20(OverFunction::ZScore)),
        ("robust_zscore_rows_20", last_20(OverFunction::RobustZScore)),
        ("ewma_zscore_1_min", unbounded(OverFunction::EwmaZScore(Decay::Time(60_000)))),
        (
            "seasonal_zscore_1_week",
            unbounded(OverFunction::Seasonal(Seasonal {
                weeks: 1,
                zone: chrono_tz::UTC,
                baseline_only: false,
            })),
        ),
        (
            "hmm_probability_2_states",
            unbounded(OverFunction::HmmProbability {
                model: Arc::new(HmmModel::from_json(HMM).expect("a valid model")),
                state: 1,
            }),
        ),
        (
            "cusum",
            unbounded(OverFunction::Cusum(CusumParams { k: 0.5, h: 5.0, warmup: 20 }, DetectorOutput::Statistic)),
        ),
        (
            "page_hinkley",
            unbounded(OverFunction::PageHinkley(
                PageHinkleyParams { delta: 0.5, lambda: 50.0 },
                DetectorOutput::Statistic,
            )),
        ),
        (
            "garch_volatility",
            unbounded(OverFunction::Garch(GarchParams {
                omega: 0.05,
                alpha: 0.1,
                beta: 0.85,
                observation: Observation::Difference,
            })),
        ),
        (
            "corr_rows_20",
            OverCall {
                function: OverFunction::Corr,
                args: vec![PRICE, 2],
                frame: Frame::Rows(19),
            },
        ),
        (
            "corr_shift_rows_20",
            OverCall {
                function: OverFunction::CorrShift,
                args: vec![PRICE, 2],
                frame: Frame::Rows(19),
            },
        ),
    ]
}

/// A seeded random walk per partition: `(price, ts, other price)` rows.
struct Ticks {
    state: u64,
    prices: Vec<f64>,
    second: Millis,
}

impl Ticks {
    fn new() -> Self {
        Ticks {
            state: 0x2545_f491_4f6c_dd1d,
            prices: vec![40.0; PARTITIONS],
            second: 0,
        }
    }

    fn step(&mut self) -> f64 {
        self.state = self.state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 2.0
    }

    /// The next tick of every partition.
    fn next_second(&mut self) -> Vec<(Millis, Row)> {
        self.second += 1;
        let time = self.second * 1000;
        (0..PARTITIONS)
            .map(|p| {
                let step = self.step();
                self.prices[p] = (self.prices[p] + step).max(1.0);
                let other = self.prices[p] * 0.5 + self.step();
                (time, Row::new(vec![Datum::float(self.prices[p]), Datum::Timestamp(time), Datum::float(other)]))
            })
            .collect()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("over_core");
    group.throughput(Throughput::Elements((PARTITIONS * TICKS_PER_PARTITION) as u64));
    group.sample_size(10);
    for (name, call) in calls() {
        let mut partitions: Vec<OverPartition> = (0..PARTITIONS).map(|_| OverPartition::new(std::slice::from_ref(&call))).collect();
        let mut ticks = Ticks::new();
        let mut output = Vec::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..TICKS_PER_PARTITION {
                    for (partition, (time, row)) in partitions.iter_mut().zip(ticks.next_second()) {
                        partition.insert(time, row, 1);
                        partition.recompute(&mut output);
                        partition.trim(time);
                    }
                    black_box(&output);
                    output.clear();
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
