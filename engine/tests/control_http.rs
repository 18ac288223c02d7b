//! The control API and the metrics over real HTTP against the real binary
//! (`carbonflow serve`), and `carbonflow submit|list|drop` over it: a bad
//! file is refused with its line and column, a good one runs and is listed
//! with its counts, dropping frees the name, tokens without `control` may
//! read but not submit, and `/metrics` counts what the queries did.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKENS: &str = r#"
[[token]]
token = "ops"
views = ["*"]
control = true

[[token]]
token = "reader"
views = ["*"]
"#;

/// A simulator query with a view and a counting sink; `rows` bounds it.
fn simulator_query(view: &str, rows: u64) -> String {
    format!(
        "CREATE TABLE sim (market STRING, node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
         WITH ('connector' = 'simulator', 'nodes' = '20', 'number-of-rows' = '{rows}', 'revision-probability' = '0', 'rows-per-second' = '5000');
         CREATE VIEW {view} AS SELECT market, node, ts, price FROM sim WHERE price > 0;
         CREATE TABLE counts (market STRING, n BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO counts SELECT market, COUNT(*) FROM sim GROUP BY market;"
    )
}

struct Engine {
    child: Child,
    base: String,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Engine {
    std::fs::write(dir.join("tokens.toml"), TOKENS).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_carbonflow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-progress", "--auth"])
        .arg(dir.join("tokens.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.split("http://").nth(1) {
                let _ = sender.send(address.split_whitespace().next().unwrap_or("").trim_end_matches('/').to_owned());
            }
        }
    });
    let address = receiver.recv_timeout(Duration::from_secs(30)).expect("the engine says where it listens");
    Engine {
        child,
        base: format!("http://{address}"),
    }
}

fn request(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = carbonflow_sinks::http_client::builder().build().unwrap();
        let mut request = client.request(method.parse().unwrap(), url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await.expect("the engine answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn cli(engine: &Engine, args: &[&str], token: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_carbonflow"))
        .args(args)
        .args(["--server", &engine.base, "--token", token])
        .output()
        .unwrap()
}

#[test]
fn queries_are_submitted_listed_and_dropped_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let engine = serve(dir.path());
    let queries = format!("{}/v1/queries", engine.base);

    assert_eq!(request("GET", &queries, None, None).0, 401, "a token is required");
    assert_eq!(request("GET", &format!("{}/healthz", engine.base), None, None).0, 200);
    assert_eq!(request("GET", &format!("{}/readyz", engine.base), None, None).0, 200);

    // A file that does not check: 400 with the position of the bad token.
    let bad = "CREATE TABLE t (a STRING) WITH ('connector' = 'blackhole');\nSELECT a, nope FROM t;";
    let (status, body) = request("POST", &format!("{queries}?name=bad"), Some("ops"), Some(bad));
    assert_eq!(status, 400, "{body}");
    let error = json(&body);
    assert_eq!((error["line"].as_u64(), error["column"].as_u64()), (Some(2), Some(11)), "{body}");
    assert!(error["rendered"].as_str().unwrap().contains('^'), "{body}");

    // A reader may list but not submit.
    let sql = simulator_query("live_prices", 1_000_000);
    assert_eq!(request("POST", &format!("{queries}?name=live"), Some("reader"), Some(&sql)).0, 403);
    let (status, body) = request("POST", &format!("{queries}?name=live"), Some("ops"), Some(&sql));
    assert_eq!(status, 201, "{body}");
    assert_eq!(json(&body)["views"][0], "live_prices");
    assert_eq!(request("POST", &format!("{queries}?name=live"), Some("ops"), Some(&sql)).0, 409);

    // The CLI submits a second, small query from a file.
    let file = dir.path().join("small.sql");
    std::fs::write(&file, simulator_query("small_prices", 500)).unwrap();
    let submitted = cli(&engine, &["submit", file.to_str().unwrap()], "ops");
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));

    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let listed = json(&request("GET", &queries, Some("reader"), None).1);
        let by_name = |name: &str| listed["queries"].as_array().unwrap().iter().find(|q| q["name"] == name).cloned();
        let live = by_name("live").expect("live is listed");
        let small = by_name("small").expect("small is listed");
        if live["rows_in"].as_u64().unwrap() > 0 && small["status"] == "finished" {
            break listed;
        }
        assert!(Instant::now() < deadline, "the queries did not progress: {listed}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let small = listed["queries"].as_array().unwrap().iter().find(|q| q["name"] == "small").unwrap();
    assert_eq!(small["rows_in"], 500, "{small}");
    let one = json(&request("GET", &format!("{queries}/live"), Some("reader"), None).1);
    assert_eq!(one["status"], "running");
    assert!(one["plan"].as_str().unwrap().contains("live_prices"), "{one}");
    let list = cli(&engine, &["list"], "reader");
    let printed = String::from_utf8_lossy(&list.stdout);
    assert!(
        printed.contains("live") && printed.contains("small") && printed.contains("finished"),
        "{printed}"
    );

    // The metrics count what the queries did.
    let (status, metrics) = request("GET", &format!("{}/metrics", engine.base), None, None);
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"carbonflow_source_rows_total{query="small",source="sim"} 500"#), "{metrics}");
    assert!(
        metrics.contains(r#"carbonflow_sink_changes_total{query="live",sink="live_prices"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"carbonflow_ingest_to_emit_seconds_count{query="live",sink="live_prices"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"carbonflow_queries{status="running"} 1"#), "{metrics}");

    // Dropping: gone from the list, the name and the view name are free again.
    assert_eq!(request("DELETE", &format!("{queries}/live"), Some("reader"), None).0, 403);
    let dropped = cli(&engine, &["drop", "live"], "ops");
    assert!(dropped.status.success(), "{}", String::from_utf8_lossy(&dropped.stderr));
    assert_eq!(request("GET", &format!("{queries}/live"), Some("ops"), None).0, 404);
    assert_eq!(request("DELETE", &format!("{queries}/live"), Some("ops"), None).0, 404);
    let views = json(&request("GET", &format!("{}/v1/views", engine.base), Some("ops"), None).1);
    assert!(views["views"].as_array().unwrap().iter().all(|view| view["name"] != "live_prices"), "{views}");
    let (status, body) = request("POST", &format!("{queries}?name=live"), Some("ops"), Some(&sql));
    assert_eq!(status, 201, "{body}");
}
