//! The MATCH_RECOGNIZE core on the issue's spike pattern, without the
//! dataflow runtime: `PATTERN (A B+ C)`, `DEFINE C AS C.price > 1.5 * A.price`,
//! `WITHIN INTERVAL '10' MINUTE`, over 1,000 partitions (nodes) of 100 ticks,
//! one tick a minute, with a price spike now and then.
//!
//! ```text
//! cargo bench -p carbonflow-benches --bench cep
//! ```
//!
//! Two measurements:
//!
//! * `spike_A_Bplus_C_within_10_min`: rows scanned per second by
//!   `MatchRecognizer::find_matches`, each partition scanned from its first
//!   row (what the wrapper does after a change near a partition's start: the
//!   worst case of incremental recompute).
//! * `operator_epochs_of_4_ticks_per_node`: rows per second through the
//!   dataflow core `cep::dataflow::MatchRecognize` (buffering, release on the
//!   watermark, the walk, trimming, output), fed the same ticks in epochs of 4
//!   ticks per node as the engine's default 4,096-row batches over 1,000 nodes
//!   give it, without timely.

use std::hint::black_box;

use carbonflow_core::{Datum, Millis, Row};
use carbonflow_operators::cep::dataflow::MatchRecognize;
use carbonflow_operators::cep::{AfterMatchSkip, BinaryOp, MatchExpr, MatchRecognizer, MatchSpec, Within};
use carbonflow_operators::dataflow::{CoreContext, TimedCore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const NODES: usize = 1_000;
const TICKS_PER_NODE: usize = 100;
const MINUTE: Millis = 60_000;
const PRICE: usize = 0;
const TS: usize = 1;

/// Seeded prices: a slow walk around 40 with a spike of 2-3x about every 50 ticks.
fn partitions() -> Vec<Vec<Row>> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..NODES)
        .map(|_| {
            let mut price = 40.0;
            (0..TICKS_PER_NODE)
                .map(|i| {
                    price = (price + (next() % 200) as f64 / 100.0 - 1.0).max(1.0);
                    let spike = if next() % 50 == 0 { 2.0 + (next() % 100) as f64 / 100.0 } else { 1.0 };
                    Row::new(vec![Datum::float(price * spike), Datum::Timestamp(i as Millis * MINUTE)])
                })
                .collect()
        })
        .collect()
}

fn spike_recognizer() -> MatchRecognizer {
    let mut spec = MatchSpec::parse("A B+ C").expect("valid pattern");
    let (a, c) = (spec.var("A").expect("A"), spec.var("C").expect("C"));
    let threshold = MatchExpr::binary(BinaryOp::Multiply, MatchExpr::literal(Datum::float(1.5)), MatchExpr::column(Some(a), PRICE));
    spec.define
        .push((c, MatchExpr::binary(BinaryOp::Gt, MatchExpr::column(Some(c), PRICE), threshold)));
    spec.measures = vec![MatchExpr::column(Some(a), PRICE), MatchExpr::column(Some(c), PRICE)];
    spec.skip = AfterMatchSkip::PastLastRow;
    spec.within = Some(Within {
        duration: 10 * MINUTE,
        time_column: TS,
    });
    MatchRecognizer::new(spec).expect("valid spec")
}

/// Feeds `partitions` to a fresh operator core, `per_epoch` ticks of every
/// node an epoch, the watermark one minute behind the latest tick; returns
/// the number of output changes.
fn run_operator(recognizer: &MatchRecognizer, partitions: &[Vec<Row>], keys: &[Row], per_epoch: usize) -> usize {
    let mut core = MatchRecognize::new("MatchRecognize", recognizer.clone(), TS, 0);
    let (mut output, mut dead_letters) = (Vec::new(), Vec::new());
    let mut changes = 0;
    let mut watermark = Millis::MIN;
    for (epoch, first) in (0..TICKS_PER_NODE).step_by(per_epoch).enumerate() {
        let mut context = CoreContext {
            watermark,
            output: &mut output,
            dead_letters: &mut dead_letters,
        };
        let last = (first + per_epoch).min(TICKS_PER_NODE);
        for (key, rows) in keys.iter().zip(partitions) {
            for row in &rows[first..last] {
                core.on_update((key.clone(), row.clone()), 1, &mut context);
            }
        }
        watermark = (last as Millis - 2) * MINUTE;
        context.watermark = watermark;
        core.on_epoch_end(epoch as u64, &mut context);
        changes += output.len();
        output.clear();
    }
    changes
}

fn bench_spike(c: &mut Criterion) {
    let partitions = partitions();
    let recognizer = spike_recognizer();
    let matches: usize = partitions.iter().map(|rows| recognizer.find_matches(rows, 0, 1).matches.len()).sum();
    assert!(matches > 100, "the workload must contain spikes to find ({matches} matches)");
    let mut group = c.benchmark_group("match_recognize");
    group.throughput(Throughput::Elements((NODES * TICKS_PER_NODE) as u64));
    group.bench_function("spike_A_Bplus_C_within_10_min", |b| {
        b.iter(|| {
            for rows in &partitions {
                black_box(recognizer.find_matches(rows, 0, 1));
            }
        })
    });
    let keys: Vec<Row> = (0..NODES).map(|node| Row::new(vec![Datum::string(&format!("N{node}"))])).collect();
    assert!(run_operator(&recognizer, &partitions, &keys, 4) > 100, "the operator must find the spikes");
    group.bench_function("operator_epochs_of_4_ticks_per_node", |b| {
        b.iter(|| black_box(run_operator(&recognizer, &partitions, &keys, 4)))
    });
    group.finish();
}

criterion_group!(benches, bench_spike);
criterion_main!(benches);
