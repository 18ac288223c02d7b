//! carbonflow: SQL query files compiled to incremental timely/differential dataflows.
//!
//! A query file is parsed ([`sql`]), bound into a checked logical plan
//! ([`plan`]), built into a dataflow ([`dataflow`]) and run by worker threads
//! ([`runtime`]); [`serve`] publishes views to WebSocket subscribers and
//! [`control`] answers the control API. [`cli`] is the `carbonflow` command
//! line over all of it;
//! everything a test needs is in this library.
//!
//! ```no_run
//! let program = carbonflow::cli::check_text("
//!     CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE,
//!         WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
//!     WITH ('connector' = 'filesystem', 'path' = 'ticks.csv', 'format' = 'csv');
//!     SELECT node, window_start, AVG(price) AS avg_price
//!     FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTES))
//!     GROUP BY node, window_start, window_end;
//! ").unwrap();
//! carbonflow::runtime::run(std::sync::Arc::new(program), Default::default()).unwrap();
//! ```

pub mod cli;
pub mod control;
pub mod dataflow;
pub mod explain;
pub mod plan;
pub mod runtime;
pub mod serve;
pub mod sql;
pub mod webhooks_cli;
