//! The deployment files, checked where `cargo test --workspace` runs:
//!
//! - `k8s/` renders and validates (`scripts/k8s-validate.sh`: kustomize,
//!   the Kubernetes JSON schemas, the ServiceMonitor's CRD types, and the
//!   references between objects), and a misspelled field fails that check;
//! - the `Dockerfile` passes hadolint (`scripts/dockerfile-lint.sh`);
//! - the query files `k8s/` deploys check;
//! - the Grafana dashboard reads only metric series that
//!   `core/src/metrics.rs` defines, and shows every family defined there.
//!
//! The scripts install their tools on first use (PyPI into target/python-env,
//! npm into target/node-env), so the first run needs `python3`, `node` and the
//! registries; the tests are skipped, with the reason printed, without python3.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn python3_missing() -> bool {
    let missing = Command::new("python3").arg("--version").output().is_err();
    if missing {
        eprintln!("skipped: python3 is not installed");
    }
    missing
}

fn run_script(script: &str, args: &[&Path]) -> Output {
    Command::new("bash").arg(repo_root().join(script)).args(args).output().expect("bash runs")
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a check script on the repository's own files and asserts it passes;
/// `None` where it is skipped.
fn passing_script(script: &str) -> Option<Output> {
    if python3_missing() {
        return None;
    }
    let output = run_script(script, &[]);
    assert!(output.status.success(), "{script} failed: {}", describe(&output));
    Some(output)
}

#[test]
fn the_k8s_manifests_render_and_validate() {
    let Some(output) = passing_script("scripts/k8s-validate.sh") else {
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    for kind in ["StatefulSet", "Service", "ConfigMap", "ServiceMonitor", "PodDisruptionBudget"] {
        assert!(stdout.contains(kind), "no {kind} was validated: {}", describe(&output));
    }
}

/// Copies `k8s/` with one edit applied to one file, for a validation that must fail.
fn broken_copy(file: &str, from: &str, to: &str) -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &to.join(entry.file_name()));
            } else {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    }
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("k8s"), copy.path());
    let path = copy.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{file} should hold {from:?} once");
    std::fs::write(&path, text.replace(from, to)).unwrap();
    copy
}

#[test]
fn a_misspelled_field_fails_the_k8s_validation() {
    if python3_missing() {
        return;
    }
    // One built-in kind (the Kubernetes schemas) and the CRD (its TypeScript types).
    for (file, from, to, reported) in [
        ("statefulset.yaml", "containerPort: 2101", "containerPrt: 2101", "containerPort"),
        ("servicemonitor.yaml", "path: /metrics", "pth: /metrics", "pth"),
    ] {
        let broken = broken_copy(file, from, to);
        let output = run_script("scripts/k8s-validate.sh", &[broken.path()]);
        assert!(!output.status.success(), "{to:?} in {file} passed the validation: {}", describe(&output));
        assert!(
            String::from_utf8_lossy(&output.stdout).contains(reported),
            "the failure does not name {reported:?}: {}",
            describe(&output)
        );
    }
}

#[test]
fn the_dockerfile_passes_hadolint() {
    passing_script("scripts/dockerfile-lint.sh");
}

#[test]
fn the_deployed_query_files_check() {
    let dir = repo_root().join("k8s/queries");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "sql") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(error) = carbonflow::cli::check_text(&text) {
                panic!("{}", error.render(&path.display().to_string(), &text));
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no query file in {}", dir.display());
}

/// The series each metric family of `core/src/metrics.rs` exposes, read from
/// the calls that define them: `counter("name", ...)`, `gauge("name", ...)`,
/// `gauge_vec("name", ...)` and `histogram("name", ...)`, all prefixed `carbonflow_`.
fn defined_families() -> Vec<(String, Vec<String>)> {
    let source = std::fs::read_to_string(repo_root().join("core/src/metrics.rs")).unwrap();
    let mut families = Vec::new();
    for constructor in ["counter", "gauge", "gauge_vec", "histogram"] {
        let call = format!("{constructor}(");
        for (at, _) in source.match_indices(&call) {
            // Skips longer names ending the same (`my_counter(`) and the
            // constructor's own definition (`fn counter(name: &str, ...)`).
            if source[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let Some(quoted) = source[at + call.len()..].trim_start().strip_prefix('"') else {
                continue;
            };
            let family = format!("carbonflow_{}", &quoted[..quoted.find('"').unwrap()]);
            let series = match constructor {
                "histogram" => ["_bucket", "_sum", "_count"].iter().map(|suffix| format!("{family}{suffix}")).collect(),
                _ => vec![family.clone()],
            };
            families.push((family, series));
        }
    }
    families
}

/// The `carbonflow_*` names a PromQL expression reads (label values in quotes skipped).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_quotes = false;
    let mut name = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if !in_quotes && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            name.push(c);
        } else if !name.is_empty() {
            let word = std::mem::take(&mut name);
            if word.starts_with("carbonflow_") {
                names.push(word);
            }
        }
    }
    names
}

/// Every PromQL expression of the dashboard: panel targets (rows' nested panels
/// included) and query variables.
fn dashboard_expressions(dashboard: &serde_json::Value) -> Vec<String> {
    fn panels(list: &serde_json::Value, out: &mut Vec<String>) {
        for panel in list.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push(target["expr"].as_str().expect("every target has a PromQL expr").to_owned());
            }
            panels(&panel["panels"], out);
        }
    }
    let mut expressions = Vec::new();
    panels(&dashboard["panels"], &mut expressions);
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] == "query" {
            expressions.push(variable["query"]["query"].as_str().expect("a query variable has a query").to_owned());
        }
    }
    expressions
}

fn dashboard() -> serde_json::Value {
    let path = repo_root().join("k8s/grafana/carbonflow.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[test]
fn the_grafana_dashboard_reads_only_defined_metric_series() {
    let families = defined_families();
    assert!(
        families.len() >= 10,
        "core/src/metrics.rs defines only {families:?}: did its constructors change?"
    );
    let series: BTreeSet<String> = families.iter().flat_map(|(_, series)| series.iter().cloned()).collect();
    let expressions = dashboard_expressions(&dashboard());
    assert!(!expressions.is_empty(), "the dashboard has no PromQL");
    for expr in &expressions {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr:?} reads no carbonflow metric");
        for name in names {
            assert!(
                series.contains(&name),
                "{expr:?} reads {name}, which core/src/metrics.rs does not expose; it does: {series:?}"
            );
        }
    }
}

#[test]
fn the_grafana_dashboard_shows_every_metric_family() {
    let read: BTreeSet<String> = dashboard_expressions(&dashboard()).iter().flat_map(|expr| metric_names(expr)).collect();
    for (family, series) in defined_families() {
        assert!(series.iter().any(|name| read.contains(name)), "no panel of the dashboard reads {family}");
    }
}

#[test]
fn the_grafana_dashboard_panels_are_well_formed() {
    let dashboard = dashboard();
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(variables.contains(&"datasource"), "the dashboard has no datasource variable: {variables:?}");
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("every panel has an id")),
            "panel id of {title:?} repeats"
        );
        assert!(
            panel["gridPos"]["w"].as_u64().is_some_and(|w| w > 0 && w <= 24),
            "{title:?} has no valid gridPos"
        );
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title:?} does not read the chosen data source");
            assert!(panel["targets"].as_array().is_some_and(|targets| !targets.is_empty()), "{title:?} has no query");
        }
    }
}
