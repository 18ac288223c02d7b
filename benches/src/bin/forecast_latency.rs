//! FORECAST latency for one batch of nodes: the ONNX model alone, and the
//! whole operator epoch around it.
//!
//! ```text
//! scripts/onnxruntime.sh
//! cargo run --release -p carbonflow-benches --bin forecast_latency -- --nodes 2000 --iterations 500
//! ```
//!
//! * `model`: one [`OnnxModel::predict`] call on `--nodes` contexts of the
//!   model's length (168 hourly prices for the shipped one; input tensor
//!   built, ONNX Runtime run, output copied).
//! * `epoch`: the [`Forecast`] core over `--nodes` keys whose week is full:
//!   one new hourly price per key, then the epoch end that the watermark
//!   passing that hour triggers (contexts gathered from each key's series,
//!   one model batch, retirement of old state, 24 output rows per key).
//!
//! Both use the one session the operator would (one ONNX Runtime thread,
//! the worker's own; see `operators/src/forecast/onnx.rs`). `--model` runs
//! another model file of the same contract, e.g. an older one to compare.
//! Prices are a daily shape per node plus a deterministic wobble. Latencies
//! go into HDR histograms (microseconds); the first `--warmup` iterations
//! are not recorded.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;

use carbonflow_core::{Datum, Row};
use carbonflow_operators::dataflow::{CoreContext, TimedCore};
use carbonflow_operators::forecast::onnx::OnnxModel;
use carbonflow_operators::forecast::{Forecast, ForecastModel, ForecastSpec};

const HOUR: i64 = 3_600_000;

/// FORECAST batch latency (model alone and operator epoch).
#[derive(Debug, Parser)]
struct Args {
    /// Nodes (keys) in the batch.
    #[arg(long, default_value_t = 2_000)]
    nodes: usize,
    /// Recorded iterations of each measurement.
    #[arg(long, default_value_t = 500)]
    iterations: usize,
    /// Iterations run first and not recorded.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// The ONNX model.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/models/price_forecaster.onnx"))]
    model: PathBuf,
}

/// A price for `node` at `hour`: a daily shape, a node level and a wobble.
fn price(node: usize, hour: i64) -> f64 {
    let daily = (std::f64::consts::TAU * (hour % 24) as f64 / 24.0).sin();
    30.0 + (node % 17) as f64 + 12.0 * daily + ((hour as f64 * 0.37 + node as f64).sin() * 3.0)
}

fn report(name: &str, histogram: &Histogram<u64>, nodes: usize) {
    let ms = |us: u64| us as f64 / 1_000.0;
    println!(
        "{name:6} nodes={nodes} n={} p50={:.3} ms p99={:.3} ms max={:.3} ms mean={:.3} ms",
        histogram.len(),
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
        histogram.mean() / 1_000.0
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut model = OnnxModel::load(&args.model).with_context(|| format!("loading {}", args.model.display()))?;
    let shape = model.shape();
    let context = shape.context as i64;

    // The model alone.
    let contexts: Vec<f32> = (0..args.nodes)
        .flat_map(|node| (0..context).map(move |hour| price(node, hour) as f32))
        .collect();
    let mut out = Vec::new();
    let mut histogram = Histogram::<u64>::new(3)?;
    for iteration in 0..args.warmup + args.iterations {
        let start = Instant::now();
        model.predict(&contexts, args.nodes, &mut out)?;
        if iteration >= args.warmup {
            histogram.record(start.elapsed().as_micros() as u64)?;
        }
    }
    anyhow::ensure!(out.len() == args.nodes * shape.horizon * 3, "one forecast per node");
    report("model", &histogram, args.nodes);

    // The operator epoch around it.
    let spec = ForecastSpec {
        time_column: 0,
        value_column: 1,
        step: HOUR,
        allowed_lateness: 0,
    };
    let mut core = Forecast::new("Forecast", spec, model);
    let keys: Vec<Row> = (0..args.nodes).map(|node| Row::new(vec![Datum::string(&format!("node-{node}"))])).collect();
    let (mut output, mut dead) = (Vec::new(), Vec::new());
    let mut watermark = i64::MIN;
    let mut epoch = |hour: i64, watermark: &mut i64, output: &mut Vec<_>, dead: &mut Vec<_>| {
        let mut ctx = CoreContext {
            watermark: *watermark,
            output,
            dead_letters: dead,
        };
        for (node, key) in keys.iter().enumerate() {
            let row = Row::new(vec![Datum::Timestamp(hour * HOUR), Datum::float(price(node, hour))]);
            core.on_update((key.clone(), row), 1, &mut ctx);
        }
        *watermark = hour * HOUR;
        ctx.watermark = *watermark;
        core.on_epoch_end(hour as u64, &mut ctx);
    };
    for hour in 0..context - 1 {
        epoch(hour, &mut watermark, &mut output, &mut dead);
    }
    anyhow::ensure!(output.is_empty(), "no forecast before a full week");
    let mut histogram = Histogram::<u64>::new(3)?;
    for iteration in 0..args.warmup + args.iterations {
        let hour = context - 1 + iteration as i64;
        output.clear();
        let start = Instant::now();
        epoch(hour, &mut watermark, &mut output, &mut dead);
        let elapsed = start.elapsed();
        anyhow::ensure!(output.len() == args.nodes * shape.horizon, "24 rows per node, got {}", output.len());
        if iteration >= args.warmup {
            histogram.record(elapsed.as_micros() as u64)?;
        }
    }
    anyhow::ensure!(dead.is_empty(), "no dead letters: {:?}", dead.first());
    report("epoch", &histogram, args.nodes);
    Ok(())
}
