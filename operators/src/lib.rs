//! Incremental operators of carbonflow: the pure cores of aggregation,
//! event-time windows, pattern matching and forecasts.
//!
//! Each operator is a plain Rust state machine with no timely or differential
//! types, unit- and property-tested against a naive model; a thin dataflow
//! wrapper exchanges rows by key, holds one core per key and calls it in time
//! order. Every core takes retractions (`diff < 0`) as first-class updates,
//! because a revised price must update every view downstream; only where the
//! planner has proven an input append-only do leaner states serve (see
//! [`aggregate`] and [`grouped::Combiner`]).
//!
//! Modules:
//!
//! * [`aggregate`]: SQL aggregate functions (`COUNT`, `SUM`, `AVG`, `MIN`,
//!   `MAX`, the variances, `FIRST_VALUE`, `LAST_VALUE`, `DISTINCT`) whose
//!   state is exact under retraction, and [`GroupAccumulator`] for one group.
//! * [`analytics`]: OVER functions per partition in event-time order: the
//!   SQL aggregates over ROWS / RANGE frames, anomaly scores (rolling,
//!   EWMA, robust and seasonal z-scores) and regime detectors (HMM filter,
//!   CUSUM, Page-Hinkley, GARCH volatility, correlation shifts).
//! * [`cep`]: `MATCH_RECOGNIZE` over one partition's ordered rows: patterns
//!   with backtracking quantifiers, `DEFINE` / `MEASURES` expressions, skip
//!   modes, `WITHIN`, and the bounds an incremental wrapper recomputes from.
//! * [`forecast`]: `FORECAST`, multi-horizon quantile forecasts per key from
//!   a model over the last N values, batched across keys; ONNX models run by
//!   ONNX Runtime, reloaded when their file changes.
//! * [`exact_sum`]: order-independent, correctly rounded summation of doubles,
//!   so that DOUBLE sums do not drift as rows come and go.
//! * [`windows`]: TUMBLE, HOP and CUMULATE assignment ([`WindowSpec`]) and
//!   SESSION windows with merging and splitting ([`SessionWindows`]).
//! * [`multiset`]: the ordered multiset behind MIN, MAX, FIRST_VALUE, LAST_VALUE.
//! * [`grouped`]: the windowed / plain GROUP BY aggregation core, with
//!   watermark-driven completion (`EMIT FINAL`) and retirement of old windows,
//!   and the per-worker combiner that pre-aggregates append-only inputs.
//! * [`session_aggregate`]: SESSION windows driven by epochs and the watermark.
//! * [`upsert`]: primary-key tables, where a revision retracts the row it replaces.
//! * [`dataflow`]: the one timely wrapper every stateful core runs in
//!   ([`dataflow::timed_operator`]), the watermark stream it reads, and the
//!   per-epoch combiner in front of an aggregation ([`dataflow::combine_per_epoch`]).

pub mod aggregate;
pub mod analytics;
pub mod cep;
pub mod dataflow;
pub mod exact_sum;
pub mod forecast;
pub mod grouped;
pub mod multiset;
pub mod session_aggregate;
pub mod temporal_join;
pub mod upsert;
pub mod windows;

#[cfg(test)]
/// Sends `value` through timely's wire format, as an exchange between
/// processes does.
pub(crate) fn over_the_wire<T: timely::ExchangeData>(value: T) -> T {
    use timely::communication::Bytesable;
    let mut bytes = Vec::new();
    timely::Bincode::from(value).into_bytes(&mut bytes);
    timely::Bincode::<T>::from_bytes(timely::bytes::arc::BytesMut::from(bytes).freeze()).payload
}

pub use aggregate::{Accumulator, AggregateFunction, AggregateSpec, GroupAccumulator};
pub use exact_sum::ExactSum;
pub use windows::{SessionChange, SessionWindows, WindowSpec};
