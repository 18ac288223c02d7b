//! The end-to-end analytics workload: the throughput harness's simulated
//! ticks (one per node a second) through OVER calls into a `blackhole` sink.
//!
//! Two sets of calls ([`Functions`]): the anomaly scores and the regime
//! detectors, each per node in event-time order. The ticks and the checks on
//! a run (every tick read, no dead letter) are those of
//! [`crate::throughput`].

use carbonflow::runtime::RunSummary;

use crate::throughput::{HarnessError, WATERMARK_DELAY_MS, Workload, run_engine};

/// The two-state model the regime set filters with: calm and volatile
/// one-second price differences of the simulator.
pub const HMM_MODEL: &str =
    r#"{"observation": "difference", "initial": [0.9, 0.1], "transition": [[0.99, 0.01], [0.05, 0.95]], "means": [0, 0], "std_devs": [0.5, 3]}"#;

/// Which OVER calls a run computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Functions {
    /// `ZSCORE` and `ROBUST_ZSCORE` over the last 20 ticks, and `EWMA_ZSCORE`
    /// with a one-minute half-life.
    Anomaly,
    /// `HMM_PROBABILITY` (two states), `CUSUM`, `GARCH_VOLATILITY` and
    /// `CORR` of the price with time over the last 20 ticks (an argument
    /// computed by the projection below the operator).
    Regime,
}

impl Functions {
    /// The name used on the command line and in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Functions::Anomaly => "anomaly",
            Functions::Regime => "regime",
        }
    }

    /// The SELECT list after `node, ts, price`.
    fn calls(self) -> String {
        match self {
            Functions::Anomaly => "ZSCORE(price) OVER last_20 AS z, ROBUST_ZSCORE(price) OVER last_20 AS robust_z, \
                 EWMA_ZSCORE(price, INTERVAL '1' MINUTE) OVER by_time AS ewma_z"
                .to_owned(),
            Functions::Regime => format!(
                "HMM_PROBABILITY(price, '{HMM_MODEL}', 1) OVER by_time AS p_volatile, CUSUM(price, 0.5, 5) OVER by_time AS cusum, \
                 GARCH_VOLATILITY(price, 0.05, 0.1, 0.85, 'difference') OVER by_time AS garch_vol, \
                 CORR(price, CAST(ts AS BIGINT)) OVER last_20 AS trend"
            ),
        }
    }

    /// The columns of the sink after `node, ts, price`.
    fn sink_columns(self) -> &'static str {
        match self {
            Functions::Anomaly => "z DOUBLE, robust_z DOUBLE, ewma_z DOUBLE",
            Functions::Regime => "p_volatile DOUBLE, cusum DOUBLE, garch_vol DOUBLE, trend DOUBLE",
        }
    }
}

/// The query file of a run: the simulator's ticks, the OVER calls, a blackhole sink.
pub fn query_text(workload: &Workload, functions: Functions) -> String {
    let source: Vec<String> = std::iter::once(("connector", "simulator".to_owned()))
        .chain(workload.simulator_options())
        .map(|(key, value)| format!("'{key}' = '{value}'"))
        .collect();
    format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, \
             WATERMARK FOR ts AS ts - INTERVAL '{delay}' SECOND) WITH ({source});\n\
         CREATE TABLE scores (node STRING, ts TIMESTAMP(3), price DOUBLE, {columns}) WITH ('connector' = 'blackhole');\n\
         INSERT INTO scores SELECT node, ts, price, {calls} FROM ticks \
             WINDOW last_20 AS (PARTITION BY node ORDER BY ts ROWS BETWEEN 19 PRECEDING AND CURRENT ROW), \
                    by_time AS (PARTITION BY node ORDER BY ts);\n",
        delay = WATERMARK_DELAY_MS / 1000,
        source = source.join(", "),
        columns = functions.sink_columns(),
        calls = functions.calls(),
    )
}

/// Checks and runs the workload's query; see [`run_engine`] for the checks.
pub fn run(workload: &Workload, functions: Functions, workers: usize, batch_size: usize) -> Result<RunSummary, HarnessError> {
    run_engine(workload, &query_text(workload, functions), workers, batch_size)
}

/// The output rows of a small run written to a CSV sink instead of the
/// blackhole, for tests: `(node, ts, price, results...)` lines.
pub fn run_to_csv(workload: &Workload, functions: Functions, workers: usize, path: &std::path::Path) -> Result<RunSummary, HarnessError> {
    let query = query_text(workload, functions).replace(
        "'connector' = 'blackhole'",
        &format!("'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv'", path.display()),
    );
    run_engine(workload, &query, workers, 512)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throughput::Emit;

    fn workload() -> Workload {
        Workload {
            ticks: 3_000,
            nodes: 20,
            seed: 3,
            emit: Emit::Final,
        }
    }

    #[test]
    fn both_sets_check_and_give_one_row_per_tick_whatever_the_workers() {
        for functions in [Functions::Anomaly, Functions::Regime] {
            let mut outputs = Vec::new();
            for workers in [1, 2] {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("scores.csv");
                run_to_csv(&workload(), functions, workers, &path).unwrap();
                let mut lines: Vec<String> = std::fs::read_to_string(&path).unwrap().lines().map(str::to_owned).collect();
                lines.sort();
                assert_eq!(lines.len(), 3_000, "{functions:?}: one row per tick");
                outputs.push(lines);
            }
            assert_eq!(outputs[0], outputs[1], "{functions:?}: 1 and 2 workers agree");
        }
    }
}
