//! timely's cluster mode end to end: the real binary started as two
//! processes on loopback (`--processes 2 --process-id I --host-list ...`)
//! gives the same results as one process, and each process's WebSocket
//! server serves every view, whichever process computed its rows.
//!
//! The query aggregates windows (rows exchanged between the processes by
//! key), joins a node table (an arrangement across processes) and publishes
//! a keyed view.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use carbonflow_core::Row;
use carbonflow_sinks::websocket::client::{ClientOptions, Subscriber};
use common::{Tick, read_sorted, write_ticks};

/// The query: 1-minute windows per node and zone, written to `out` and published as `zone_minutes`.
fn query(dir: &Path) -> String {
    format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE,
             WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{dir}/ticks.csv', 'format' = 'csv');
         CREATE TABLE nodes (node STRING, zone STRING)
         WITH ('connector' = 'filesystem', 'path' = '{dir}/nodes.csv', 'format' = 'csv');
         CREATE TABLE out (zone STRING, node STRING, window_start TIMESTAMP(3), n BIGINT, total DOUBLE, high DOUBLE)
         WITH ('connector' = 'filesystem', 'path' = '{dir}/out.csv', 'format' = 'csv');
         CREATE VIEW zone_minutes AS
             SELECT n.zone, w.node, w.window_start, COUNT(*) AS n, SUM(w.price) AS total, MAX(w.price) AS high
             FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTES)) AS w
             JOIN nodes AS n ON w.node = n.node
             GROUP BY n.zone, w.node, w.window_start, w.window_end;
         INSERT INTO out SELECT * FROM zone_minutes;",
        dir = dir.display()
    )
}

/// Writes the inputs: ticks over 12 nodes for 20 minutes, with revisions-free jitter.
fn write_inputs(dir: &Path) {
    let ticks: Vec<Tick> = (0..4_000i64)
        .map(|i| Tick {
            node: (i % 12) as u8,
            second: i * 300 / 1000 + (i % 7),
            price: 20 + (i * 37 % 90),
        })
        .collect();
    write_ticks(&dir.join("ticks.csv"), &ticks);
    let nodes: String = (0..12).map(|node| format!("N{node},Z{}\n", node % 3)).collect();
    std::fs::write(dir.join("nodes.csv"), nodes).unwrap();
}

/// Starts the two processes of a cluster on loopback, each with `args`.
fn start_cluster(dir: &Path, args: &[&str]) -> Vec<Child> {
    // Free ports for timely's connections: bound, read, released.
    let listeners: Vec<std::net::TcpListener> = (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let hosts: Vec<String> = listeners.iter().map(|listener| listener.local_addr().unwrap().to_string()).collect();
    drop(listeners);
    let hosts = hosts.join(",");
    (0..2)
        .map(|process| {
            let process = process.to_string();
            let cluster_args = ["--processes", "2", "--process-id", &process, "--host-list", &hosts];
            let args: Vec<&str> = args.iter().copied().chain(cluster_args).collect();
            carbonflow(dir, &args).spawn().unwrap()
        })
        .collect()
}

fn carbonflow(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_carbonflow"));
    command
        .current_dir(dir)
        .arg("run")
        .arg(dir.join("cluster.sql"))
        .args(["--no-progress"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

#[test]
fn two_processes_give_the_results_of_one() {
    let single = tempfile::tempdir().unwrap();
    write_inputs(single.path());
    std::fs::write(single.path().join("cluster.sql"), query(single.path())).unwrap();
    let alone = carbonflow(single.path(), &["--no-server", "--workers", "2"]).output().unwrap();
    assert!(alone.status.success(), "one process: {}", String::from_utf8_lossy(&alone.stderr));
    let expected = read_sorted(&single.path().join("out.csv"));
    assert!(expected.len() > 100, "the query produced {} rows", expected.len());

    let cluster = tempfile::tempdir().unwrap();
    write_inputs(cluster.path());
    std::fs::write(cluster.path().join("cluster.sql"), query(cluster.path())).unwrap();
    let processes = start_cluster(cluster.path(), &["--no-server"]);
    for (process, child) in processes.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "process {process}: {}", String::from_utf8_lossy(&output.stderr));
    }
    assert_eq!(read_sorted(&cluster.path().join("out.csv")), expected);
}

/// Reads a process's stderr until it says where it serves; gives the address.
fn served_address(child: &mut Child) -> String {
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.split("ws://").nth(1) {
                let _ = sender.send(address.trim_end_matches("/v1/stream").to_owned());
            }
        }
    });
    receiver.recv_timeout(Duration::from_secs(30)).expect("the process says where it serves")
}

/// The complete view as one process's server gives it.
fn complete_view(address: &str) -> BTreeMap<Row, Row> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut subscriber = Subscriber::new(ClientOptions::new(format!("ws://{address}/v1/stream")), "zone_minutes", BTreeMap::new());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "the view on {address} did not complete");
            let event = tokio::time::timeout(Duration::from_secs(30), subscriber.next())
                .await
                .expect("a message")
                .expect("no error");
            if event.frontier == Some(i64::MAX) {
                let rows = subscriber.replica().rows();
                return rows.into_iter().map(|row| (row.project(&[0, 1, 2]), row)).collect();
            }
        }
    })
}

#[test]
fn every_process_serves_every_view() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    std::fs::write(dir.path().join("cluster.sql"), query(dir.path())).unwrap();
    let mut processes = start_cluster(dir.path(), &["--listen", "127.0.0.1:0", "--serve"]);
    let addresses: Vec<String> = processes.iter_mut().map(served_address).collect();
    let views: Vec<BTreeMap<Row, Row>> = addresses.iter().map(|address| complete_view(address)).collect();
    for child in &mut processes {
        // SIGTERM: a graceful stop.
        let _ = Command::new("kill").arg(child.id().to_string()).status();
    }
    for child in &mut processes {
        assert!(child.wait().unwrap().success());
    }
    let written = read_sorted(&dir.path().join("out.csv"));
    assert!(!views[0].is_empty());
    assert_eq!(views[0], views[1], "both processes serve the same view");
    assert_eq!(views[0].len(), written.len(), "the view holds every row the sink wrote");
}

/// The rows a process says it read ("read N rows in ...").
fn rows_read(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|line| line.strip_prefix("read ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no summary in: {stderr}"))
}

#[test]
fn kafka_partitions_spread_over_the_workers_of_every_process() {
    use carbonflow_sources::kafka::testkit::{self, Record};
    let bootstrap = testkit::bootstrap();
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    // The same ticks in a topic of 4 partitions; node n lives on partition n % 4.
    let topic = testkit::unique_topic("cluster-ticks");
    testkit::create_topic(&bootstrap, &topic, 4);
    let csv = std::fs::read_to_string(dir.path().join("ticks.csv")).unwrap();
    let records: Vec<Record> = csv
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let node: i32 = fields[0][1..].parse().unwrap();
            Record::value(
                node % 4,
                format!(r#"{{"node": "{}", "ts": "{}", "price": {}}}"#, fields[0], fields[1], fields[2]),
            )
        })
        .collect();
    // Rows read: the ticks, and the node table's 12 rows.
    let total = records.len() as u64 + 12;
    testkit::produce(&bootstrap, &topic, records);

    let from_file = query(dir.path());
    let from_kafka = from_file.replace(
        &format!(
            "WITH ('connector' = 'filesystem', 'path' = '{}/ticks.csv', 'format' = 'csv')",
            dir.path().display()
        ),
        &format!(
            "WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json',
                   'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset')"
        ),
    );
    assert_ne!(from_file, from_kafka);
    std::fs::write(dir.path().join("cluster.sql"), &from_file).unwrap();
    let alone = carbonflow(dir.path(), &["--no-server"]).output().unwrap();
    assert!(alone.status.success(), "{}", String::from_utf8_lossy(&alone.stderr));
    let expected = read_sorted(&dir.path().join("out.csv"));
    std::fs::remove_file(dir.path().join("out.csv")).unwrap();

    std::fs::write(dir.path().join("cluster.sql"), &from_kafka).unwrap();
    // Two processes of two workers: partition p goes to worker p % 4, so each process reads two partitions.
    let processes = start_cluster(dir.path(), &["--no-server", "--workers", "2"]);
    let mut read = Vec::new();
    for (process, child) in processes.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "process {process}: {stderr}");
        read.push(rows_read(&stderr));
    }
    assert!(read.iter().all(|&rows| rows > 0), "every process read its partitions: {read:?}");
    assert_eq!(read.iter().sum::<u64>(), total, "{read:?}");
    assert_eq!(read_sorted(&dir.path().join("out.csv")), expected);
}
