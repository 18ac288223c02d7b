//! The live dashboard end to end in a real browser: `carbonflow run` on the
//! quickstart serves the page at `/`, and Debian's headless Chromium, driven
//! by playwright-core (`engine/tests/dashboard/drive.cjs`), loads it, chooses
//! `hub_prices`, and sees rows appear (over permessage-deflate) and change
//! while the query runs, the chart draw, and the query list show
//! `quickstart`. It saves a screenshot to `target/dashboard.png`.
//!
//! `scripts/browser-env.sh` installs Chromium (apt-get) and playwright-core
//! (npm) when they are missing. The test is skipped, with the reason
//! printed, only where Node.js itself is missing.
//!
//! The query is the quickstart paced at 4,000 rows a second instead of
//! 20,000 and with 2,000,000 rows instead of 72,000 (same file otherwise,
//! same name): it runs until the test ends it, so the view still changes
//! when the browser subscribes, however long a loaded machine takes to
//! start Chromium (18 s were once not enough).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Kills the engine when the test ends, passed or not.
struct Engine(Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The quickstart, paced down (see the module docs), under its own name.
fn paced_quickstart(root: &Path, dir: &Path) -> PathBuf {
    let original = std::fs::read_to_string(root.join("queries/quickstart.sql")).unwrap();
    let fast = "'rows-per-second' = '20000'";
    assert!(original.contains(fast), "queries/quickstart.sql no longer says {fast}");
    let path = dir.join("quickstart.sql");
    let rows = "'number-of-rows' = '72000'";
    assert!(original.contains(rows), "queries/quickstart.sql no longer says {rows}");
    std::fs::write(
        &path,
        original
            .replace(fast, "'rows-per-second' = '4000'")
            .replace(rows, "'number-of-rows' = '2000000'"),
    )
    .unwrap();
    path
}

/// Starts the engine on a free port; gives it with the dashboard's URL (from its stderr).
fn start_engine(root: &Path, query: &Path) -> (Engine, String, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_carbonflow"))
        .current_dir(root)
        .arg("run")
        .arg(query)
        .args(["--listen", "127.0.0.1:0", "--no-progress", "--serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("carbonflow starts");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let engine = Engine(child);
    let mut seen = Vec::new();
    loop {
        let line = received
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("carbonflow printed no dashboard address:\n{}", seen.join("\n")));
        if let Some(url) = line.strip_prefix("dashboard on ") {
            return (engine, url.trim().to_owned(), received);
        }
        seen.push(line);
    }
}

#[test]
fn the_dashboard_shows_the_quickstart_view_updating_live_in_chromium() {
    let root = repo_root();
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("skipped: Node.js is not installed (it drives Chromium through playwright-core)");
        return;
    }
    let env = Command::new("bash").arg(root.join("scripts/browser-env.sh")).output().expect("bash runs");
    assert!(env.status.success(), "scripts/browser-env.sh failed:\n{}", String::from_utf8_lossy(&env.stderr));
    let browser_env = PathBuf::from(String::from_utf8(env.stdout).unwrap().trim());

    let dir = tempfile::tempdir().unwrap();
    let query = paced_quickstart(&root, dir.path());
    let (engine, url, engine_log) = start_engine(&root, &query);
    let screenshot = root.join("target/dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let driven = Command::new("node")
        .arg(root.join("engine/tests/dashboard/drive.cjs"))
        .args([url.as_str(), "hub_prices", "quickstart"])
        .arg(&screenshot)
        .arg(dir.path().join("chromium-profile"))
        .env("NODE_PATH", browser_env.join("node_modules"))
        .output()
        .expect("node runs");
    drop(engine);
    let report = String::from_utf8_lossy(&driven.stdout);
    println!("{report}");
    assert!(
        driven.status.success(),
        "the dashboard check failed:\n{report}\n{}\nengine:\n{}",
        String::from_utf8_lossy(&driven.stderr),
        engine_log.try_iter().collect::<Vec<_>>().join("\n")
    );
    for check in ["rows appear", "rows change live", "the chart has drawn", "the query list shows quickstart"] {
        assert!(report.lines().any(|line| line.starts_with(&format!("ok - {check}"))), "{check}:\n{report}");
    }
    assert!(screenshot.exists(), "no screenshot at {}", screenshot.display());
}
