//! Isolates the per-row cost of windowed aggregation from the dataflow
//! runtime: aggregate updates, window assignment, and the keyed
//! insert-then-retire loop that the dataflow wrapper runs per worker.
//!
//! ```text
//! cargo bench -p carbonflow-benches --bench window_aggregation
//! ```
//!
//! * `group_update`: one `GroupAccumulator` with a single aggregate over
//!   doubles; each iteration inserts then retracts 4,096 prices, so state stays
//!   bounded and retractions are measured as well as insertions.
//! * `assign`: `WindowSpec::assign` for TUMBLE, HOP (5 windows a row) and
//!   CUMULATE (up to 15 windows a row) over 4,096 event times.
//! * `tumble_insert_retire`: 1,000 keys × 1-minute tumbling windows held in a
//!   `HashMap<(Row, Millis), GroupAccumulator>`, as the wrapper holds them;
//!   each iteration streams 5 minutes of ticks (one per key every 10 s) and
//!   retires every window the watermark passes, reading its results.

use std::collections::HashMap;
use std::hint::black_box;

use carbonflow_core::{DataType, Datum, Millis, Row};
use carbonflow_operators::{AggregateFunction, AggregateSpec, GroupAccumulator, WindowSpec};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const MINUTE: Millis = 60_000;

/// Deterministic prices around 40 $/MWh with two decimals, like real ticks.
fn prices(n: usize) -> Vec<Datum> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            Datum::float((state % 10_000) as f64 / 100.0 + 10.0)
        })
        .collect()
}

fn group_update(c: &mut Criterion) {
    let values = prices(4096);
    let mut group = c.benchmark_group("group_update");
    group.throughput(Throughput::Elements(2 * values.len() as u64));
    let functions = [
        ("count", AggregateFunction::Count),
        ("sum", AggregateFunction::Sum),
        ("avg", AggregateFunction::Avg),
        ("min", AggregateFunction::Min),
        ("max", AggregateFunction::Max),
    ];
    for (name, function) in functions {
        let specs = [AggregateSpec::new(function, DataType::Float)];
        let mut accumulator = GroupAccumulator::new(&specs);
        group.bench_function(name, |b| {
            b.iter(|| {
                for (i, value) in values.iter().enumerate() {
                    accumulator.update(std::slice::from_ref(value), i as Millis, 1);
                }
                for (i, value) in values.iter().enumerate() {
                    accumulator.update(std::slice::from_ref(value), i as Millis, -1);
                }
                black_box(accumulator.row_count())
            })
        });
    }
    group.finish();
}

fn assign(c: &mut Criterion) {
    let times: Vec<Millis> = (0..4096).map(|i| 1_700_000_000_000 + i * 7_919).collect();
    let specs = [
        ("tumble", WindowSpec::Tumble { size: MINUTE, offset: 0 }),
        (
            "hop",
            WindowSpec::Hop {
                slide: MINUTE,
                size: 5 * MINUTE,
                offset: 0,
            },
        ),
        (
            "cumulate",
            WindowSpec::Cumulate {
                step: MINUTE,
                max_size: 15 * MINUTE,
                offset: 0,
            },
        ),
    ];
    let mut group = c.benchmark_group("assign");
    group.throughput(Throughput::Elements(times.len() as u64));
    for (name, spec) in specs {
        let mut out = Vec::with_capacity(16);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut windows = 0;
                for &ts in &times {
                    out.clear();
                    spec.assign(black_box(ts), &mut out);
                    windows += out.len();
                }
                black_box(windows)
            })
        });
    }
    group.finish();
}

fn tumble_insert_retire(c: &mut Criterion) {
    const KEYS: usize = 1_000;
    const MINUTES: Millis = 5;
    const TICK: Millis = 10_000;
    let keys: Vec<Row> = (0..KEYS).map(|k| Row::new(vec![Datum::string(&format!("NODE_{k:04}"))])).collect();
    let values = prices(4096);
    let specs: Vec<AggregateSpec> = [
        AggregateFunction::Count,
        AggregateFunction::Sum,
        AggregateFunction::Avg,
        AggregateFunction::Min,
        AggregateFunction::Max,
    ]
    .into_iter()
    .map(|function| AggregateSpec::new(function, DataType::Float))
    .collect();
    let window = WindowSpec::Tumble { size: MINUTE, offset: 0 };
    let events = KEYS as u64 * (MINUTES * MINUTE / TICK) as u64;

    let mut group = c.benchmark_group("tumble_insert_retire");
    group.throughput(Throughput::Elements(events));
    group.bench_function("1000_keys_1_minute", |b| {
        let mut state: HashMap<(Row, Millis), GroupAccumulator> = HashMap::with_capacity(2 * KEYS);
        let mut windows = Vec::with_capacity(1);
        let mut args = vec![Datum::Null; specs.len()];
        let mut results = Vec::with_capacity(specs.len());
        b.iter(|| {
            let mut emitted = 0usize;
            let mut value = values.iter().cycle();
            for ts in (0..MINUTES * MINUTE).step_by(TICK as usize) {
                for key in &keys {
                    let price = value.next().expect("cycle never ends");
                    args.fill(price.clone());
                    windows.clear();
                    window.assign(ts, &mut windows);
                    for &(start, _) in &windows {
                        state
                            .entry((key.clone(), start))
                            .or_insert_with(|| GroupAccumulator::new(&specs))
                            .update(&args, ts, 1);
                    }
                }
                // The watermark is the tick time: retire the windows it closed.
                let watermark = ts + TICK;
                state.retain(|&(_, start), group| {
                    let open = start + MINUTE > watermark;
                    if !open {
                        results.clear();
                        group.results(&mut results);
                        emitted += results.len();
                    }
                    open
                });
            }
            black_box(emitted)
        })
    });
    group.finish();
}

criterion_group!(benches, group_update, assign, tumble_insert_retire);
criterion_main!(benches);
