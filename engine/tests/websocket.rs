//! The WebSocket server end to end: the engine runs a query file in process
//! with a real server on loopback, and real clients (the `carbonflow_sinks`
//! subscriber, or raw yawc sockets) subscribe over TCP.
//!
//! * A keyed EMIT FINAL view: at every message, the client's replica equals
//!   the windows a naive model says are final at that message's frontier.
//! * Resume: a proxy between client and server cuts the connection several
//!   times; the client resumes without a missing or repeated change.
//! * A slow client is conflated; one that stops reading is disconnected while
//!   the server's pending state stays bounded.
//! * Tokens: an unknown token is refused, an unentitled view is forbidden, a
//!   market entitlement narrows the rows.
//! * A client offering permessage-deflate follows the same view as a plain
//!   one, in fewer bytes on the wire.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use carbonflow::cli::check_text;
use carbonflow::runtime::{RunOptions, RunSummary, run};
use carbonflow::serve::subscribable_views;
use carbonflow_core::{Datum, Row};
use carbonflow_sinks::websocket::auth::AuthConfig;
use carbonflow_sinks::websocket::client::{ClientError, ClientOptions, EventKind, Subscriber};
use carbonflow_sinks::websocket::hub::HubLimits;
use carbonflow_sinks::websocket::protocol::{CLOSE_SLOW_CONSUMER, ClientMessage, Encoding, ErrorCode, FilterValues, WireDatum};
use carbonflow_sinks::websocket::{Server, ServerConfig};
use common::{BASE, Tick, write_ticks};
use futures_util::{SinkExt, StreamExt};
use proptest::strategy::{Strategy, ValueTree};
use tokio::net::{TcpListener, TcpStream};

/// Starts a server for `sql` and gives it with the checked program.
fn serve(sql: &str, config: ServerConfig) -> (Arc<carbonflow::plan::Program>, Arc<Server>) {
    let program = Arc::new(check_text(sql).unwrap_or_else(|e| panic!("{}", e.render("test.sql", sql))));
    let server = Server::start(
        ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        },
        subscribable_views(&program),
    )
    .expect("the server starts");
    (program, Arc::new(server))
}

/// Runs the program on its own thread (the engine's workers block).
fn start_run(program: Arc<carbonflow::plan::Program>, server: &Arc<Server>, workers: usize, batch_size: usize) -> std::thread::JoinHandle<RunSummary> {
    let server = server.clone();
    std::thread::spawn(move || {
        run(
            program,
            RunOptions {
                workers,
                batch_size,
                server: Some(server),
                ..RunOptions::default()
            },
        )
        .expect("the run succeeds")
    })
}

/// Shuts the server down (it blocks, so off the async threads).
async fn stop(server: Arc<Server>) {
    let server = Arc::try_unwrap(server).expect("the run has ended");
    tokio::task::spawn_blocking(move || server.shutdown(Duration::from_secs(2))).await.unwrap();
}

fn url(server: &Server) -> String {
    format!("ws://{}/v1/stream", server.local_addr())
}

fn filter(column: &str, values: &[Datum]) -> BTreeMap<String, FilterValues> {
    BTreeMap::from([(column.to_owned(), FilterValues::Any(values.iter().cloned().map(WireDatum).collect()))])
}

/// Deterministic random ticks (no row later than the 60 s watermark delay).
fn random_ticks(seed: u8, count: usize) -> Vec<Tick> {
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        proptest::test_runner::Config::default(),
        proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[seed; 32]),
    );
    common::ticks(6, 4, 10..100, count..count + 1).new_tree(&mut runner).expect("ticks").current()
}

/// The model of the minute bars: per (node, minute) the count and sum of the
/// latest price of each (node, second), for windows final at `frontier`
/// (their end - 1 <= frontier, as Flink closes windows).
fn final_bars(ticks: &[Tick], frontier: Option<i64>, nodes: &[u8]) -> Vec<Row> {
    let Some(frontier) = frontier else { return Vec::new() };
    let mut bars: BTreeMap<(u8, i64), (i64, i64)> = BTreeMap::new();
    for ((node, second), price) in common::latest(ticks) {
        let start = BASE + second.div_euclid(60) * 60_000;
        let bar = bars.entry((node, start)).or_default();
        bar.0 += 1;
        bar.1 += price;
    }
    let mut rows: Vec<Row> = bars
        .into_iter()
        .filter(|((node, start), _)| start + 60_000 - 1 <= frontier && nodes.contains(node))
        .map(|((node, start), (count, sum))| {
            Row::new(vec![
                Datum::string(&format!("N{node}")),
                Datum::Int(start),
                Datum::Int(start + 60_000),
                Datum::Int(count),
                Datum::float(sum as f64),
            ])
        })
        .collect();
    rows.sort();
    rows
}

fn minute_bars_sql(path: &Path) -> String {
    format!(
        "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE,
             PRIMARY KEY (node, ts) NOT ENFORCED,
             WATERMARK FOR ts AS ts - INTERVAL '60' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'replay.speed' = '5000');
         CREATE VIEW minute_bars AS
         SELECT node, window_start, window_end, COUNT(*) AS n, SUM(price) AS total
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
         GROUP BY node, window_start, window_end
         EMIT FINAL;",
        path.display()
    )
}

/// Reads events until the view is complete (frontier at the maximum),
/// checking the replica against the model at every one.
async fn follow_to_the_end(subscriber: &mut Subscriber, ticks: &[Tick], nodes: &[u8]) -> usize {
    let mut events = 0;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), subscriber.next())
            .await
            .expect("an event within 30 s")
            .expect("the subscription lives");
        events += 1;
        assert_eq!(
            subscriber.replica().rows(),
            final_bars(ticks, event.frontier, nodes),
            "replica after {:?} #{} at frontier {:?}",
            event.kind,
            event.seq,
            event.frontier
        );
        if event.frontier == Some(i64::MAX) {
            return events;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_gap_free_diffs_equal_the_final_windows_at_every_frontier() {
    for workers in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticks.csv");
        let ticks = random_ticks(workers as u8, 3000);
        write_ticks(&path, &ticks);
        let (program, server) = serve(&minute_bars_sql(&path), ServerConfig::default());
        let mut everything = Subscriber::new(ClientOptions::new(url(&server)), "minute_bars", BTreeMap::new());
        let mut two_nodes_json = Subscriber::new(
            ClientOptions {
                encoding: Encoding::Json,
                ..ClientOptions::new(url(&server))
            },
            "MINUTE_BARS",
            filter("node", &[Datum::string("N1"), Datum::string("N4")]),
        );
        // Subscribe before the run starts: the first event is the empty snapshot.
        assert_eq!(everything.next().await.unwrap().kind, EventKind::Snapshot);
        assert_eq!(two_nodes_json.next().await.unwrap().kind, EventKind::Snapshot);
        let run = start_run(program, &server, workers, 50);
        let all_nodes: Vec<u8> = (0..6).collect();
        let (events, _) = tokio::join!(
            follow_to_the_end(&mut everything, &ticks, &all_nodes),
            follow_to_the_end(&mut two_nodes_json, &ticks, &[1, 4])
        );
        run.join().unwrap();
        // Paced at 5000x event time, the run lasts over a second: the client
        // sees the view at several frontiers, however far it is conflated.
        assert!(events > 2, "the view changed over the run ({events} events)");
        assert_eq!((everything.resyncs(), everything.reconnects()), (0, 0), "no gap, no reconnect");
        assert!(!everything.replica().rows().is_empty());
        stop(server).await;
    }
}

/// A TCP proxy whose connections can all be cut at once.
struct Proxy {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cuts) = tokio::sync::watch::channel(0);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, cut }
    }

    fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

/// The rows a filesystem sink wrote in final mode, parsed like the wire's values.
fn final_csv_rows(path: &Path) -> Vec<Row> {
    let mut rows: Vec<Row> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            Row::new(vec![
                Datum::string(fields[0]),
                Datum::string(fields[1]),
                Datum::Int(carbonflow_core::time::parse_timestamp(fields[2]).expect("a timestamp")),
                Datum::float(fields[3].parse().unwrap()),
            ])
        })
        .collect();
    rows.sort();
    rows
}

/// `expensive`: the ticks over 45 of a simulated market (40,000 rows in 4 s,
/// 1 % revised), also written to the CSV file `reference` in final mode.
/// No primary key: the view is a multiset, so a change applied twice or
/// missed shows as a wrong count in a replica.
fn expensive_ticks_sql(reference: &Path) -> String {
    format!(
        "CREATE TABLE ticks (market STRING, node STRING, ts TIMESTAMP(3), price DOUBLE,
             WATERMARK FOR ts AS ts - INTERVAL '20' MINUTE)
         WITH ('connector' = 'simulator', 'seed' = '3', 'nodes' = '200', 'number-of-rows' = '40000',
               'rows-per-second' = '10000', 'revision-probability' = '0.01');
         CREATE TABLE reference (market STRING, node STRING, ts TIMESTAMP(3), price DOUBLE)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE VIEW expensive AS SELECT market, node, ts, price FROM ticks WHERE price > 45;
         INSERT INTO reference SELECT * FROM expensive;",
        reference.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_after_dropped_connections_without_missing_or_repeating_a_change() {
    // `history` 1_000_000 serves every resume from history; 20 forces fresh snapshots.
    for (history, resumes_from_history) in [(1_000_000, true), (20, false)] {
        let dir = tempfile::tempdir().unwrap();
        let reference = dir.path().join("expensive.csv");
        let (program, server) = serve(
            &expensive_ticks_sql(&reference),
            ServerConfig {
                limits: HubLimits {
                    history,
                    ..HubLimits::default()
                },
                ..ServerConfig::default()
            },
        );
        let proxy = Proxy::start(server.local_addr()).await;
        let mut subscriber = Subscriber::new(ClientOptions::new(format!("ws://{}/v1/stream", proxy.addr)), "expensive", BTreeMap::new());
        assert_eq!(subscriber.next().await.unwrap().kind, EventKind::Snapshot);
        let run = start_run(program, &server, 2, 256);
        let mut kinds = HashMap::from([(EventKind::Snapshot, 1)]);
        let mut diffs_since_cut = 0;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), subscriber.next())
                .await
                .expect("an event")
                .expect("subscribed");
            *kinds.entry(event.kind).or_default() += 1;
            if event.kind == EventKind::Diff {
                diffs_since_cut += 1;
            }
            if diffs_since_cut == 5 && subscriber.reconnects() < 4 {
                proxy.cut_all();
                diffs_since_cut = 0;
            }
            if event.frontier == Some(i64::MAX) {
                break;
            }
        }
        run.join().unwrap();
        assert!(
            subscriber.reconnects() >= 3,
            "the connection was cut and re-established ({} reconnects)",
            subscriber.reconnects()
        );
        assert_eq!(subscriber.resyncs(), 0, "sequence numbers never jumped");
        let snapshots = kinds[&EventKind::Snapshot];
        if resumes_from_history {
            assert_eq!(snapshots, 1, "every resume was served from history: {kinds:?}");
        } else {
            assert!(snapshots > 1, "a resume past the history gets a fresh snapshot: {kinds:?}");
        }
        let expected = final_csv_rows(&reference);
        assert!(expected.len() > 1000, "a meaningful view ({} rows)", expected.len());
        assert_eq!(subscriber.replica().rows(), expected);
        stop(server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deflate_client_follows_the_same_view_in_fewer_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("expensive.csv");
    let (program, server) = serve(&expensive_ticks_sql(&reference), ServerConfig::default());
    let subscriber = |deflate| {
        Subscriber::new(
            ClientOptions {
                deflate,
                ..ClientOptions::new(url(&server))
            },
            "expensive",
            BTreeMap::new(),
        )
    };
    let (mut compressed, mut plain) = (subscriber(true), subscriber(false));
    assert_eq!(
        compressed.next().await.unwrap().kind,
        EventKind::Snapshot,
        "a compressed subscribe is understood"
    );
    assert_eq!(plain.next().await.unwrap().kind, EventKind::Snapshot);
    let run = start_run(program, &server, 1, 256);
    for subscriber in [&mut compressed, &mut plain] {
        while tokio::time::timeout(Duration::from_secs(30), subscriber.next())
            .await
            .expect("an event")
            .expect("subscribed")
            .frontier
            != Some(i64::MAX)
        {}
    }
    run.join().unwrap();
    let expected = final_csv_rows(&reference);
    assert!(expected.len() > 1000, "a meaningful view ({} rows)", expected.len());
    assert_eq!(compressed.replica().rows(), expected);
    assert_eq!(plain.replica().rows(), expected);
    // How the live changes fall into diffs depends on timing (a client read
    // later gets fewer, conflated diffs), so their byte counts are only
    // reported. The finished view's snapshot is the same message for
    // every client: its compression is what is asserted.
    eprintln!(
        "the view's changes took {} bytes compressed, {} plain",
        compressed.bytes_received(),
        plain.bytes_received()
    );
    let (mut compressed, mut plain) = (subscriber(true), subscriber(false));
    for subscriber in [&mut compressed, &mut plain] {
        let snapshot = subscriber.next().await.unwrap();
        assert_eq!(snapshot.kind, EventKind::Snapshot);
        assert_eq!(subscriber.replica().rows(), expected);
    }
    let (compressed_bytes, plain_bytes) = (compressed.bytes_received(), plain.bytes_received());
    eprintln!("the finished view's snapshot took {compressed_bytes} bytes compressed, {plain_bytes} plain");
    assert!(
        compressed_bytes * 10 < plain_bytes * 6,
        "deflate saves over 40 % of the snapshot: {compressed_bytes} bytes compressed, {plain_bytes} plain"
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_conflated_and_one_that_stops_reading_is_disconnected() {
    const PENDING: usize = 2000;
    const BATCH: usize = 512;
    let sql = "CREATE TABLE ticks (market STRING, node STRING, ts TIMESTAMP(3), price DOUBLE,
                   PRIMARY KEY (market, node, ts) NOT ENFORCED,
                   WATERMARK FOR ts AS ts - INTERVAL '20' MINUTE)
               WITH ('connector' = 'simulator', 'seed' = '5', 'nodes' = '100', 'number-of-rows' = '300000');
               CREATE VIEW every_tick AS SELECT market, node, ts, price FROM ticks;
               CREATE VIEW latest AS SELECT market, node, COUNT(*) AS ticks, MAX(ts) AS last_ts FROM ticks GROUP BY market, node;";
    let (program, server) = serve(
        sql,
        ServerConfig {
            limits: HubLimits {
                pending: PENDING,
                ..HubLimits::default()
            },
            ..ServerConfig::default()
        },
    );
    // The stalled client: a small receive buffer, subscribes, never reads again.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.local_addr()).await.unwrap();
    let mut stalled = yawc::WebSocket::handshake(url(&server).parse().unwrap(), stream, yawc::Options::default())
        .await
        .unwrap();
    let subscribe = ClientMessage::Subscribe {
        id: 1,
        view: "every_tick".into(),
        filter: BTreeMap::new(),
        resume_from: None,
        resume_version: None,
    };
    stalled.send(Encoding::MessagePack.encode(&subscribe)).await.unwrap();

    // The slow client reads, but only at the end.
    let mut slow = Subscriber::new(
        ClientOptions {
            receive_buffer: Some(4096),
            ..ClientOptions::new(url(&server))
        },
        "latest",
        BTreeMap::new(),
    );
    let first_version = slow.next().await.unwrap().version;
    let run = start_run(program, &server, 1, BATCH);
    // The slow client reads nothing until the run is over: whatever the
    // machine's speed, its changes pile up behind a few frames in the socket
    // buffers and are conflated in the server.
    tokio::task::spawn_blocking(move || run.join().unwrap()).await.unwrap();
    let mut diffs = 0;
    let last_version = loop {
        let event = tokio::time::timeout(Duration::from_secs(60), slow.next())
            .await
            .expect("an event")
            .expect("subscribed");
        diffs += u64::from(event.kind == EventKind::Diff);
        if event.frontier == Some(i64::MAX) {
            break event.version;
        }
    };
    let versions = last_version - first_version;
    assert!(diffs * 3 < versions, "{diffs} diffs for {versions} versions of the view: conflated");
    let stats = server.hub().stats();
    assert_eq!(slow.reconnects(), 0, "the slow reader stayed within the bound");
    let rows = slow.replica().rows();
    assert_eq!(rows.len(), 100);
    assert_eq!(
        rows.iter().map(|row| row.get(2).as_i64().unwrap()).sum::<i64>(),
        300_000,
        "every tick counted once"
    );

    assert_eq!(
        stats.slow_consumers_dropped.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the stalled client was dropped"
    );
    let max_pending = stats.max_pending.load(std::sync::atomic::Ordering::Relaxed);
    assert!(max_pending <= PENDING + BATCH, "pending changes stayed bounded: {max_pending}");
    // The stalled client finds the end of its connection: a 4008 close if it got through, else a reset.
    let mut close_code = None;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(10), stalled.next()).await {
        if frame.opcode() == yawc::OpCode::Close {
            close_code = frame.close_code().map(u16::from);
            break;
        }
    }
    assert!(close_code.is_none_or(|code| code == CLOSE_SLOW_CONSUMER), "closed with {close_code:?}");
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_and_entitlements_narrow_what_a_client_sees() {
    let auth = AuthConfig::parse(
        r#"
        [[token]]
        token = "desk"
        views = ["*"]

        [[token]]
        token = "pjm-partner"
        views = ["hub_prices"]
        markets = ["PJM"]
        "#,
    )
    .unwrap();
    let sql = "CREATE TABLE ticks (market STRING, node STRING, node_type STRING, ts TIMESTAMP(3), price DOUBLE,
                   PRIMARY KEY (market, node, ts) NOT ENFORCED, WATERMARK FOR ts AS ts - INTERVAL '20' MINUTE)
               WITH ('connector' = 'simulator', 'seed' = '9', 'nodes' = '400', 'number-of-rows' = '8000');
               CREATE VIEW hub_prices AS SELECT market, node, ts, price FROM ticks WHERE node_type = 'HUB';
               CREATE VIEW spreads AS SELECT market, MAX(price) - MIN(price) AS spread FROM ticks GROUP BY market;";
    let (program, server) = serve(
        sql,
        ServerConfig {
            auth: Some(auth),
            ..ServerConfig::default()
        },
    );
    let client = |token: Option<&str>, view: &str| {
        Subscriber::new(
            ClientOptions {
                token: token.map(str::to_owned),
                max_attempts: Some(1),
                ..ClientOptions::new(url(&server))
            },
            view,
            BTreeMap::new(),
        )
    };
    for token in [None, Some("wrong")] {
        match client(token, "hub_prices").next().await {
            Err(ClientError::Refused { status: 401, .. }) => {}
            other => panic!("token {token:?}: {other:?}"),
        }
    }
    match client(Some("pjm-partner"), "spreads").next().await {
        Err(ClientError::Subscription {
            code: ErrorCode::Forbidden, ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let mut partner = client(Some("pjm-partner"), "hub_prices");
    let mut desk = client(Some("desk"), "hub_prices");
    assert_eq!(partner.next().await.unwrap().kind, EventKind::Snapshot);
    assert_eq!(desk.next().await.unwrap().kind, EventKind::Snapshot);
    let run = start_run(program, &server, 1, 500);
    for subscriber in [&mut partner, &mut desk] {
        while subscriber.next().await.unwrap().frontier != Some(i64::MAX) {}
    }
    run.join().unwrap();
    let markets = |rows: Vec<Row>| {
        rows.iter()
            .map(|row| row.get(0).as_str().unwrap().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let partner_rows = partner.replica().rows();
    assert!(!partner_rows.is_empty());
    assert_eq!(markets(partner_rows.clone()), ["PJM".to_owned()].into());
    let desk_rows = desk.replica().rows();
    assert!(markets(desk_rows.clone()).len() > 1, "the desk sees every market");
    let desk_pjm: Vec<Row> = desk_rows.into_iter().filter(|row| row.get(0).as_str() == Some("PJM")).collect();
    assert_eq!(partner_rows, desk_pjm, "the partner sees exactly the PJM rows");
    stop(server).await;
}
