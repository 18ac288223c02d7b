//! The README's main job, watched live from Python: `carbonflow run
//! queries/quickstart.sql` on the default address (127.0.0.1:8080) and
//! `examples/python/subscribe.py` receiving and decoding `hub_prices` while
//! it runs, over permessage-deflate (which `websockets` offers). The Python
//! environment comes from `scripts/python-env.sh`; the test is skipped, with
//! the reason printed, where no python3 exists.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

#[test]
fn the_python_example_decodes_the_quickstart_view_live_on_the_default_address() {
    let root = repo_root();
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let env = Command::new("bash").arg(root.join("scripts/python-env.sh")).output().expect("bash runs");
    assert!(env.status.success(), "scripts/python-env.sh failed:\n{}", String::from_utf8_lossy(&env.stderr));
    let python = String::from_utf8(env.stdout).unwrap().trim().to_owned();

    let mut engine = Command::new(env!("CARGO_BIN_EXE_carbonflow"))
        .current_dir(&root)
        .args(["run", "queries/quickstart.sql", "--no-progress", "--linger-secs", "5"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("carbonflow starts");
    let started = Instant::now();
    while TcpStream::connect("127.0.0.1:8080").is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not listen on the default address 127.0.0.1:8080"
        );
        assert!(engine.try_wait().unwrap().is_none(), "carbonflow exited early (is port 8080 taken?)");
        std::thread::sleep(Duration::from_millis(20));
    }
    let subscriber = Command::new(&python)
        .current_dir(&root)
        .args([
            "examples/python/subscribe.py",
            "hub_prices",
            "--print-messages",
            "--exit-when-complete",
            "--filter",
            "market=PJM",
        ])
        .output()
        .expect("the example runs");
    let _ = engine.kill();
    let engine_output = engine.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&subscriber.stdout);
    assert!(
        subscriber.status.success(),
        "subscribe.py failed:\n{stdout}\n{}\nengine: {}",
        String::from_utf8_lossy(&subscriber.stderr),
        String::from_utf8_lossy(&engine_output.stderr)
    );
    let messages: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line per message"))
        .collect();
    let snapshot = &messages[0];
    assert_eq!(snapshot["type"], "snapshot");
    let columns: Vec<&str> = snapshot["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["market", "node", "ts", "price"]);
    assert_eq!(snapshot["key"], serde_json::json!(["market", "node", "ts"]));
    let upserts: Vec<&serde_json::Value> = messages
        .iter()
        .filter(|m| m["type"] == "diff")
        .flat_map(|m| m["upserts"].as_array().into_iter().flatten())
        .collect();
    assert!(
        messages.iter().filter(|m| m["type"] == "diff").count() > 1,
        "the view changed live: {} messages",
        messages.len()
    );
    assert!(!upserts.is_empty());
    for row in upserts {
        assert_eq!(row[0], "PJM", "the filter keeps PJM rows only: {row}");
        assert!(row[2].as_i64().is_some() && row[3].as_f64().is_some(), "{row}");
    }
    // websockets offers permessage-deflate (and then compresses its subscribe).
    let stderr = String::from_utf8_lossy(&subscriber.stderr);
    assert!(
        stderr.contains("extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        "deflate agreed: {stderr}"
    );
    let seqs: Vec<u64> = messages.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1), "gap-free: {seqs:?}");
    assert_eq!(messages.last().unwrap()["frontier"], i64::MAX, "the example stopped when the view was complete");
}
