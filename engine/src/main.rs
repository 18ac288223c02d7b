//! The `carbonflow` binary: a thin shell over [`carbonflow::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    carbonflow::cli::run(carbonflow::cli::Cli::parse())
}
