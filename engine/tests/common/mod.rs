//! Helpers shared by the engine's integration tests: run a query file's text
//! and read what a filesystem sink wrote.

use std::path::Path;
use std::sync::Arc;

use carbonflow::cli::check_text;
use carbonflow::runtime::{RunOptions, RunSummary, run};

/// Checks and runs `sql` with this many workers and rows per epoch; panics
/// with the rendered error when the query does not check.
pub(crate) fn run_sql(sql: &str, workers: usize, batch_size: usize) -> RunSummary {
    let program = check_text(sql).unwrap_or_else(|e| panic!("{}", e.render("test.sql", sql)));
    run(
        Arc::new(program),
        RunOptions {
            workers,
            batch_size,
            ..RunOptions::default()
        },
    )
    .expect("the run succeeds")
}

/// The lines of a sink's file, sorted (workers may interleave them).
pub(crate) fn read_sorted(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path).expect("sink file").lines().map(str::to_owned).collect();
    lines.sort();
    lines
}
