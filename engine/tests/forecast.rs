//! FORECAST end to end on the shipped model: `examples/forecast/hourly_forecast.sql`
//! (hourly prices) and `examples/forecast/hourly_from_5min.sql` (hourly
//! averages of 5-minute ticks, an aggregated view) run by the real binary
//! must print, for every hub and hour, exactly the quantiles ONNX Runtime
//! gives in Python for the same week of prices; and the ONNX model reloads a
//! changed file and keeps running on a bad one.
//!
//! ONNX Runtime comes from `scripts/onnxruntime.sh` (the PyPI wheel in
//! target/python-env, where the engine finds it by itself); the tests are
//! skipped, with the reason printed, where no python3 exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use carbonflow_operators::forecast::onnx::OnnxModel;
use carbonflow_operators::forecast::{ForecastModel, ModelShape};

const CONTEXT: usize = 168;
const HORIZON: usize = 24;

/// Forecasts by (node, origin as printed): p10, p50, p90 per horizon step.
type Forecasts = BTreeMap<(String, String), Vec<[f64; 3]>>;

/// One printed forecast step: the horizon and p10, p50, p90.
type Step = (usize, [f64; 3]);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The project's Python with onnxruntime, or `None` (printed) without python3.
/// The script runs once per test process: concurrent pip installs into one
/// environment would race.
fn python_with_onnxruntime() -> Option<String> {
    static PYTHON: OnceLock<Option<String>> = OnceLock::new();
    PYTHON.get_or_init(install_onnxruntime).clone()
}

fn install_onnxruntime() -> Option<String> {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 is not installed");
        return None;
    }
    let script = repo_root().join("scripts/onnxruntime.sh");
    let out = Command::new("bash").arg(&script).output().expect("bash runs");
    assert!(out.status.success(), "scripts/onnxruntime.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let library = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(library.is_file(), "the script names the runtime library: {}", library.display());
    Some(repo_root().join("target/python-env/bin/python").display().to_string())
}

/// `(node, origin)` -> the 24 x (p10, p50, p90) ONNX Runtime gives in Python
/// for the week of prices ending at `origin`, over every complete week of the
/// fixture.
fn python_forecasts(python: &str, fixture: &Path) -> Forecasts {
    let mut series: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for line in std::fs::read_to_string(fixture).expect("fixture").lines() {
        let fields: Vec<&str> = line.split(',').collect();
        series
            .entry(fields[0].to_owned())
            .or_default()
            .push((fields[1].to_owned(), fields[2].parse().unwrap()));
    }
    let mut origins = Vec::new();
    let mut contexts = Vec::new();
    for (node, points) in &series {
        for end in CONTEXT..=points.len() {
            // The fixture is whole hours in order; the origin is the last hour of the week.
            origins.push((node.clone(), points[end - 1].0.clone()));
            contexts.push(points[end - CONTEXT..end].iter().map(|(_, p)| *p).collect::<Vec<f64>>());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("contexts.json");
    std::fs::write(&input, serde_json::to_string(&contexts).unwrap()).unwrap();
    let model = repo_root().join("examples/models/price_forecaster.onnx");
    let script = "import json, sys, numpy, onnxruntime\n\
        session = onnxruntime.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n\
        contexts = numpy.array(json.load(open(sys.argv[2])), dtype=numpy.float32)\n\
        print(json.dumps(session.run(['quantiles'], {'context': contexts})[0].astype(float).tolist()))";
    let out = Command::new(python).args(["-c", script]).arg(&model).arg(&input).output().expect("python runs");
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let quantiles: Vec<Vec<[f64; 3]>> = serde_json::from_slice(&out.stdout).expect("JSON from python");
    origins.into_iter().zip(quantiles).collect()
}

/// The printed changelog (`+I[...]` / `-D[...]` of node, forecast_time,
/// horizon, target_time, forecast, p10, p50, p90) consolidated, by (node,
/// origin); and how many rows were retracted.
fn engine_forecasts(stdout: &str) -> (Forecasts, usize) {
    let mut rows: BTreeMap<&str, i64> = BTreeMap::new();
    let mut retracted = 0;
    for line in stdout.lines() {
        if let Some(body) = line.strip_prefix("+I[") {
            *rows.entry(body).or_default() += 1;
        } else if let Some(body) = line.strip_prefix("-D[") {
            *rows.entry(body).or_default() -= 1;
            retracted += 1;
        } else {
            panic!("not a change: {line}");
        }
    }
    let mut out: BTreeMap<(String, String), Vec<Step>> = BTreeMap::new();
    for (body, count) in rows {
        assert!(count == 0 || count == 1, "{count} copies of {body}");
        if count == 0 {
            continue;
        }
        let fields: Vec<&str> = body.trim_end_matches(']').split(", ").collect();
        let number = |i: usize| fields[i].parse::<f64>().unwrap();
        assert_eq!(fields[4], fields[6], "forecast is the median: {body}");
        out.entry((fields[0].to_owned(), fields[1].trim_end_matches(".000").to_owned()))
            .or_default()
            .push((fields[2].parse().unwrap(), [number(5), number(6), number(7)]));
    }
    let forecasts = out
        .into_iter()
        .map(|(origin, mut steps)| {
            steps.sort_by_key(|(h, _)| *h);
            assert_eq!(steps.iter().map(|(h, _)| *h).collect::<Vec<_>>(), (1..=HORIZON).collect::<Vec<_>>());
            (origin, steps.into_iter().map(|(_, q)| q).collect())
        })
        .collect();
    (forecasts, retracted)
}

/// Runs a query file with the real binary from the repository root, reading
/// at most `batch_size` rows per epoch; its stdout.
fn run_engine(query: &Path, workers: &str, batch_size: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_carbonflow"))
        .current_dir(repo_root())
        // The engine must find the runtime by itself.
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("CARBONFLOW_ONNXRUNTIME")
        .arg("run")
        .arg(query)
        .args(["--no-server", "--no-progress", "--workers", workers, "--batch-size", batch_size])
        .output()
        .expect("carbonflow runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "carbonflow failed with {workers} workers:\n{stderr}");
    assert!(stderr.contains("; 0 dead letters"), "{stderr}");
    String::from_utf8(output.stdout).unwrap()
}

fn assert_same_forecasts(expected: &Forecasts, got: &Forecasts) {
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (origin, quantiles) in expected {
        for (step, (want, have)) in quantiles.iter().zip(&got[origin]).enumerate() {
            for (w, h) in want.iter().zip(have) {
                assert!(
                    (w - h).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{origin:?} horizon {}: python {want:?}, engine {have:?}",
                    step + 1
                );
            }
            assert!(have[0] <= have[1] && have[1] <= have[2], "ordered quantiles {have:?}");
        }
    }
}

#[test]
fn the_example_query_prints_what_onnxruntime_gives_in_python() {
    let Some(python) = python_with_onnxruntime() else { return };
    let root = repo_root();
    let expected = python_forecasts(&python, &root.join("examples/forecast/pjm_da_hubs.csv"));
    assert_eq!(expected.len(), 3 * (240 - CONTEXT + 1), "three hubs, ten days: every complete week");
    for workers in ["1", "2"] {
        let (got, retracted) = engine_forecasts(&run_engine(Path::new("examples/forecast/hourly_forecast.sql"), workers, "4096"));
        assert_eq!(retracted, 0);
        assert_same_forecasts(&expected, &got);
    }
}

/// A price revised 35 hours after its hour (within the allowed lateness)
/// retracts the forecasts already issued from every week that held it and
/// re-issues them: the final result is the forecast of the revised series.
#[test]
fn a_late_revision_reissues_the_forecasts_that_saw_it() {
    let Some(python) = python_with_onnxruntime() else { return };
    let root = repo_root();
    let original = std::fs::read_to_string(root.join("examples/forecast/pjm_da_hubs.csv")).unwrap();
    let revised_line = original.lines().find(|l| l.starts_with("WESTERN HUB,2025-06-09 12:00:00,")).unwrap();
    let revision = format!(
        "WESTERN HUB,2025-06-09 12:00:00,{}",
        3.0 * revised_line.rsplit(',').next().unwrap().parse::<f64>().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    // The engine reads the original series, then the revision; Python reads the revised series.
    let published = dir.path().join("published.csv");
    std::fs::write(&published, format!("{original}{revision}\n")).unwrap();
    let final_series = dir.path().join("final.csv");
    std::fs::write(&final_series, original.replace(revised_line, &revision)).unwrap();
    let query = std::fs::read_to_string(root.join("examples/forecast/hourly_forecast.sql"))
        .unwrap()
        .replace("examples/forecast/pjm_da_hubs.csv", published.to_str().unwrap())
        .replace("  price DOUBLE,\n", "  price DOUBLE,\n  PRIMARY KEY (node, ts) NOT ENFORCED,\n")
        .replace("'format' = 'csv'", "'format' = 'csv', 'upsert.retention' = '3 d'");
    let query = format!("SET 'table.exec.emit.allowed-lateness' = '2 d';\n{query}");
    let query_file = dir.path().join("revised.sql");
    std::fs::write(&query_file, query).unwrap();

    let expected = python_forecasts(&python, &final_series);
    for workers in ["1", "2"] {
        // A day of rows per epoch, so the revision comes after the watermark passed its hour.
        let (got, retracted) = engine_forecasts(&run_engine(&query_file, workers, "72"));
        // Origins 2025-06-09 12:00 to 2025-06-10 22:00 had been issued; the
        // watermark (last hour - 1 h) had not passed 23:00 when the revision came.
        assert_eq!(retracted, 35 * HORIZON);
        assert_same_forecasts(&expected, &got);
    }
}

/// FORECAST over an aggregated view: `examples/forecast/hourly_from_5min.sql`
/// averages simulated 5-minute ticks into hours (a window aggregation
/// grouped by `window_time`, which stays its time attribute) and forecasts
/// every hub from them. Its forecasts must be what ONNX Runtime gives in
/// Python for the hourly means of the ticks the same file's source publishes
/// (revisions applied). Nine ticks (three intervals) an epoch, so that
/// revisions reach hours whose forecasts were already out and retract them.
#[test]
fn forecasts_over_hourly_averages_of_5_minute_ticks_equal_python() {
    let Some(python) = python_with_onnxruntime() else { return };
    let root = repo_root();
    let query = std::fs::read_to_string(root.join("examples/forecast/hourly_from_5min.sql")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ticks_query = dir.path().join("ticks.sql");
    let select = query.find("SELECT node, forecast_time").expect("the forecast SELECT");
    std::fs::write(&ticks_query, format!("{}SELECT node, ts, price FROM ticks;\n", &query[..select])).unwrap();

    // The ticks after revisions, then each hub's hourly means, stamped like the
    // view's rows with the hour's window_time.
    let mut ticks: BTreeMap<String, i64> = BTreeMap::new();
    for line in run_engine(&ticks_query, "1", "9").lines() {
        let (body, diff) = match (line.strip_prefix("+I["), line.strip_prefix("-D[")) {
            (Some(body), _) => (body, 1),
            (_, Some(body)) => (body, -1),
            _ => panic!("not a change: {line}"),
        };
        *ticks.entry(body.trim_end_matches(']').to_owned()).or_default() += diff;
    }
    let mut hours: BTreeMap<(String, String), (f64, u32)> = BTreeMap::new();
    for (tick, count) in ticks {
        assert!(count == 0 || count == 1, "{count} copies of {tick}");
        let fields: Vec<&str> = tick.split(", ").collect();
        if count == 1 {
            let hour = format!("{}:59:59.999", &fields[1][..13]);
            let slot = hours.entry((fields[0].to_owned(), hour)).or_default();
            *slot = (slot.0 + fields[2].parse::<f64>().unwrap(), slot.1 + 1);
        }
    }
    assert!(hours.values().all(|(_, n)| *n == 12), "twelve 5-minute ticks an hour");
    let fixture = dir.path().join("hourly.csv");
    let csv: String = hours
        .iter()
        .map(|((node, hour), (sum, n))| format!("{node},{hour},{}\n", sum / f64::from(*n)))
        .collect();
    std::fs::write(&fixture, csv).unwrap();
    let expected = python_forecasts(&python, &fixture);
    assert_eq!(expected.len(), 3 * (192 - CONTEXT + 1), "three hubs, eight days: every complete week");

    for workers in ["1", "2"] {
        let (got, retracted) = engine_forecasts(&run_engine(Path::new("examples/forecast/hourly_from_5min.sql"), workers, "9"));
        assert!(retracted > 0, "a revision reached an hour whose forecasts were out ({workers} workers)");
        assert_same_forecasts(&expected, &got);
    }
}

#[test]
fn a_changed_model_file_is_reloaded_and_a_bad_one_is_refused() {
    if python_with_onnxruntime().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    let shipped = std::fs::read(repo_root().join("examples/models/price_forecaster.onnx")).unwrap();
    std::fs::write(&path, &shipped).unwrap();
    let mut model = OnnxModel::load(&path).expect("the shipped model loads");
    assert_eq!(
        model.shape(),
        ModelShape {
            context: CONTEXT,
            horizon: HORIZON
        }
    );
    let context: Vec<f32> = (0..CONTEXT).map(|i| 40.0 + (i % 24) as f32).collect();
    let mut before = Vec::new();
    model.predict(&context, 1, &mut before).unwrap();
    assert_eq!(before.len(), HORIZON * 3);

    // Reloads are looked for at most once a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&path, b"not a model").unwrap();
    let refused = model.refresh().expect("the change is seen");
    let message = refused.expect_err("garbage is refused").to_string();
    assert!(message.contains("model.onnx"), "{message}");
    let mut after = Vec::new();
    model.predict(&context, 1, &mut after).expect("the previous model still runs");
    assert_eq!(before, after);

    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&path, &shipped).unwrap();
    let reloaded = model.refresh().expect("the change is seen").expect("a good file reloads");
    assert!(reloaded.contains("reloaded"), "{reloaded}");
    assert!(model.refresh().is_none(), "an unchanged file is not reloaded");
}

#[test]
fn check_rejects_a_file_that_is_not_a_forecast_model() {
    if python_with_onnxruntime().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.onnx");
    std::fs::write(&bogus, b"not a model").unwrap();
    let query = format!(
        "CREATE TABLE hourly (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1' HOUR)
         WITH ('connector' = 'filesystem', 'path' = 'examples/forecast/pjm_da_hubs.csv', 'format' = 'csv');
         SELECT * FROM TABLE(FORECAST(TABLE hourly PARTITION BY node, DESCRIPTOR(ts), DESCRIPTOR(price),
             MODEL => '{}', STEP => INTERVAL '1' HOUR));",
        bogus.display()
    );
    let error = carbonflow::cli::check_text(&query).expect_err("a bad model fails the check");
    assert!(error.to_string().contains("bogus.onnx"), "{error}");

    let shipped = repo_root().join("examples/models/price_forecaster.onnx");
    let wrong_context = query
        .replace(&bogus.display().to_string(), &shipped.display().to_string())
        .replace("HOUR));", "HOUR, CONTEXT => 24));");
    let error = carbonflow::cli::check_text(&wrong_context).expect_err("the model reads 168 values");
    assert!(error.to_string().contains("CONTEXT => 24, but the model reads 168 values"), "{error}");
}
