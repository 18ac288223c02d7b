//! The `carbonflow` binary: a thin shell over [`carbonflow::cli`].

use clap::Parser;

// Rows are allocated on the worker that reads them and freed on the worker
// that aggregates them. glibc's malloc serialises such cross-thread frees on
// the allocating arena's lock (thousands of futex waits a second with two
// workers); mimalloc frees into per-thread queues. Measured in BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    carbonflow::cli::run(carbonflow::cli::Cli::parse())
}
