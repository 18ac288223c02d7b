//! Golden tests of the shipped query files: each `queries/NAME.sql` is
//! checked, then run by the real binary from the repository root with 1 and
//! 2 workers, and its printed changes must equal `queries/expected/NAME.out`
//! (compared as sorted lines, since workers may interleave). Header lines
//! at the top of a file tune its run:
//! * `-- args: ...` adds command-line arguments;
//! * `-- dead-letters: N` is how many rows the run must dead-letter (default 0);
//! * `-- needs: CARBONFLOW_MARKET_DATA` marks a query over the shared market
//!   files (its paths use `${CARBONFLOW_MARKET_DATA}`); it is skipped, with a
//!   printed reason, when the variable is unset.
//!
//! To accept new output after reviewing it: `UPDATE_GOLDEN=1 cargo test -p carbonflow --test queries`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The value of a `-- name: value` header line, if the file has one.
fn header<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines()
        .take_while(|l| l.starts_with("--"))
        .find_map(|l| l.strip_prefix(&format!("-- {name}:")).map(str::trim))
}

fn run(query: &Path, workers: usize, extra: &[String], dead_letters: u64) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_carbonflow"))
        .current_dir(repo_root())
        .args([
            "run",
            query.to_str().expect("utf-8 path"),
            "--no-progress",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            &workers.to_string(),
        ])
        .args(extra)
        .output()
        .expect("the carbonflow binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{} failed with {workers} workers:\n{stderr}", query.display());
    assert!(
        stderr.contains(&format!("; {dead_letters} dead letters")),
        "{} should dead-letter {dead_letters} rows:\n{stderr}",
        query.display()
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

#[test]
fn shipped_queries_produce_their_golden_output() {
    let root = repo_root();
    let mut queries: Vec<PathBuf> = std::fs::read_dir(root.join("queries"))
        .expect("queries/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    queries.sort();
    assert!(queries.len() >= 4, "the quickstart, hub, peak and revision queries ship");
    for query in queries {
        let relative = query.strip_prefix(&root).expect("inside the repo").to_path_buf();
        let text = std::fs::read_to_string(&query).expect("readable");
        if let Some(variable) = header(&text, "needs")
            && std::env::var_os(variable).is_none()
        {
            println!("skipped {}: {variable} is not set", relative.display());
            continue;
        }
        let args: Vec<String> = header(&text, "args")
            .map(|a| a.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let dead_letters: u64 = header(&text, "dead-letters").map_or(0, |n| n.parse().expect("a count"));
        let check = Command::new(env!("CARGO_BIN_EXE_carbonflow"))
            .current_dir(&root)
            .args(["check", relative.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "check {}: {}",
            relative.display(),
            String::from_utf8_lossy(&check.stderr)
        );

        let expected_path = root.join("queries/expected").join(query.file_stem().unwrap()).with_extension("out");
        let single = run(&relative, 1, &args, dead_letters);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_path, &single).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| panic!("missing {}", expected_path.display()));
        assert!(!expected.trim().is_empty(), "{} must produce output", relative.display());
        assert_eq!(sorted_lines(&single), sorted_lines(&expected), "{} with 1 worker", relative.display());
        let double = run(&relative, 2, &args, dead_letters);
        assert_eq!(sorted_lines(&double), sorted_lines(&expected), "{} with 2 workers", relative.display());
    }
}
