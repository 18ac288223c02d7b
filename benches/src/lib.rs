//! Benchmarks of carbonflow, and the code they share.
//!
//! The criterion micro benchmarks live in `benches/`; the end-to-end
//! throughput harness is the `throughput` binary, a thin command line over
//! [`throughput`], which holds the workload, the engine runs and the
//! hand-written ceiling so that tests can check they all do the same work.
//! The `analytics_throughput` binary runs [`analytics`]: the same ticks
//! through the OVER anomaly and regime functions. The `fault_suite` binary
//! runs the scenarios of [`fault`] against the real `carbonflow` binary.

pub mod analytics;
pub mod fault;
pub mod throughput;
