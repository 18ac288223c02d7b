//! The server's port end to end, over real loopback connections: plain
//! HTTP/1.1 requests written on a TCP socket and yawc WebSocket clients against a running [`Server`].
//!
//! * Every route answers: the dashboard, health, readiness, metrics, the list
//!   of views (following views added and removed while running), 404, 405,
//!   426, and the local-only rule without tokens.
//! * The control API reaches the installed handler with the token's grant,
//!   bodies are bounded, readiness follows the handler.
//! * A removed view ends its subscriptions (`view_removed`) and its name can
//!   be served again, without the old view's rows or publisher.
//! * The WebSocket metric families count connections, subscriptions and
//!   slow consumers.
//! * permessage-deflate, seen on the wire by a hand-written client: agreed
//!   when offered, a compressed subscribe understood, compressed frames
//!   (RSV1) that inflate to the same messages a plain client gets; plain
//!   frames without the offer; an offer limiting the server's window declined.
//!
//! The metrics are process-wide, so the tests of this file run one at a time
//! ([`serial`]) and each shuts its server down, which waits for its
//! connections to end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use carbonflow_core::{DataType, Datum, Diff, Epoch, Field, Row, Schema, Watermark};
use carbonflow_sinks::Sink;
use carbonflow_sinks::websocket::api::{ApiHandler, ApiRequest, ApiResponse};
use carbonflow_sinks::websocket::auth::AuthConfig;
use carbonflow_sinks::websocket::http::{DASHBOARD, MAX_BODY};
use carbonflow_sinks::websocket::hub::HubLimits;
use carbonflow_sinks::websocket::protocol::{ClientMessage, Encoding, ErrorCode, ServerMessage};
use carbonflow_sinks::websocket::{Server, ServerConfig, ViewSchema};
use futures_util::{SinkExt, StreamExt};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: they all move the process-wide WebSocket gauges.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn prices() -> ViewSchema {
    ViewSchema {
        name: "hub_prices".into(),
        schema: Schema::new(vec![Field::new("node", DataType::String), Field::new("price", DataType::Float)]),
        key: Some(vec![0]),
    }
}

fn spreads() -> ViewSchema {
    ViewSchema {
        name: "spreads".into(),
        schema: Schema::new(vec![Field::new("pair", DataType::String), Field::new("spread", DataType::Float)]),
        key: None,
    }
}

fn start(auth: Option<&str>, limits: HubLimits) -> Server {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        auth: auth.map(|text| AuthConfig::parse(text).unwrap()),
        limits,
        ..ServerConfig::default()
    };
    Server::start(config, vec![prices(), spreads()]).expect("the server starts")
}

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// The header lines.
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .lines()
            .find_map(|line| line.split_once(':').filter(|(field, _)| field.eq_ignore_ascii_case(name)))
            .map(|(_, value)| value.trim())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Host: 127.0.0.1` unless given).
fn http(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        head.push_str("host: 127.0.0.1\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A refused body may be cut short by the server's answer; what matters is the answer.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Reply {
        status: status_line.split(' ').nth(1).unwrap().parse().unwrap(),
        headers: headers.to_owned(),
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, target: &str) -> Reply {
    http(addr, "GET", target, &[], b"")
}

fn view_names(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|view| view["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_port_serves_health_metrics_the_dashboard_and_the_views() {
    let _serial = serial();
    let server = start(None, HubLimits::default());
    let addr = server.local_addr();

    let health = get(addr, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert_eq!(get(addr, "/readyz").status, 200, "ready without a handler");
    let metrics = get(addr, "/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.header("content-type"), Some(carbonflow_core::metrics::CONTENT_TYPE));
    assert!(metrics.body.contains("carbonflow_websocket_connections "), "{}", metrics.body);
    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.body, DASHBOARD);

    let views = get(addr, "/v1/views");
    assert_eq!(views.header("content-type"), Some("application/json"));
    assert_eq!(
        views.json(),
        serde_json::json!({"views": [
            {"name": "hub_prices", "columns": [{"name": "node", "type": "STRING"}, {"name": "price", "type": "DOUBLE"}], "key": ["node"]},
            {"name": "spreads", "columns": [{"name": "pair", "type": "STRING"}, {"name": "spread", "type": "DOUBLE"}], "key": null},
        ]})
    );
    let forecasts = ViewSchema {
        name: "forecasts".into(),
        ..spreads()
    };
    server.add_views(vec![forecasts]).unwrap();
    assert!(server.add_views(vec![spreads()]).is_err(), "a served name is refused");
    assert_eq!(view_names(&get(addr, "/v1/views")), ["hub_prices", "spreads", "forecasts"]);
    server.remove_views(&["spreads".to_owned()]);
    assert_eq!(view_names(&get(addr, "/v1/views")), ["hub_prices", "forecasts"]);

    assert_eq!(get(addr, "/nowhere").status, 404);
    assert_eq!(http(addr, "POST", "/healthz", &[], b"").status, 405);
    let plain = get(addr, "/v1/stream");
    assert_eq!(plain.status, 426, "the stream wants an upgrade: {plain:?}");
    assert_eq!(plain.header("upgrade"), Some("websocket"));
    let control = get(addr, "/v1/queries");
    assert_eq!(control.status, 404, "no control API without a handler");
    assert!(control.json()["error"].is_string());

    // Without tokens: only local pages and loopback hosts reach /v1/.
    let rebound = http(addr, "GET", "/v1/views", &[("host", "evil.example:8080")], b"");
    assert_eq!(rebound.status, 403, "{rebound:?}");
    let cross_site = http(addr, "POST", "/v1/queries?name=x", &[("origin", "https://evil.example")], b"SELECT 1");
    assert_eq!(cross_site.status, 403, "{cross_site:?}");
    assert_eq!(http(addr, "GET", "/v1/views", &[("origin", "http://localhost:3000")], b"").status, 200);
    assert_eq!(http(addr, "GET", "/healthz", &[("host", "pod-3.engine:8080")], b"").status, 200);
    server.shutdown(Duration::from_secs(2));
}

/// The engine's side of the control API, as a test stands it in: it
/// answers `/v1/queries` with what it was asked and counts its calls.
#[derive(Default)]
struct EchoHandler {
    calls: AtomicUsize,
    ready: AtomicBool,
}

impl ApiHandler for EchoHandler {
    fn handle(&self, request: ApiRequest) -> Option<ApiResponse> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (request.path == "/v1/queries").then(|| {
            ApiResponse::json(
                200,
                &serde_json::json!({
                    "method": request.method,
                    "name": request.parameter("name"),
                    "control": request.grant.as_ref().map(|grant| grant.control),
                    "body": String::from_utf8_lossy(&request.body),
                }),
            )
        })
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

const TOKENS: &str = r#"
    [[token]]
    token = "reader"
    views = ["hub_prices"]

    [[token]]
    token = "operator"
    views = ["*"]
    control = true
"#;

#[test]
fn the_control_api_reaches_the_engine_handler_with_the_tokens_grant() {
    let _serial = serial();
    let server = start(Some(TOKENS), HubLimits::default());
    let addr = server.local_addr();
    let handler = Arc::new(EchoHandler::default());
    server.set_api(handler.clone());

    let anonymous = get(addr, "/v1/queries");
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    assert_eq!(http(addr, "GET", "/v1/queries", &[("authorization", "Bearer guess")], b"").status, 401);
    assert_eq!(get(addr, "/v1/views").status, 401);
    assert_eq!(handler.calls.load(Ordering::SeqCst), 0, "refused before the handler");

    let read = get(addr, "/v1/queries?token=reader");
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json(), serde_json::json!({"method": "GET", "name": null, "control": false, "body": ""}));
    let sql = "CREATE VIEW v AS SELECT 1;";
    let submit = http(
        addr,
        "POST",
        "/v1/queries?name=spike%20watch",
        &[("authorization", "Bearer operator"), ("content-type", "application/sql")],
        sql.as_bytes(),
    );
    assert_eq!(
        submit.json(),
        serde_json::json!({"method": "POST", "name": "spike watch", "control": true, "body": sql})
    );
    let calls = handler.calls.load(Ordering::SeqCst);
    let huge = vec![b'-'; MAX_BODY + 1];
    let refused = http(addr, "POST", "/v1/queries?name=big", &[("authorization", "Bearer operator")], &huge);
    assert_eq!(refused.status, 413, "{refused:?}");
    assert_eq!(handler.calls.load(Ordering::SeqCst), calls, "an oversized body never reaches the handler");
    let unknown = get(addr, "/v1/queries/unknown/route?token=operator");
    assert_eq!(unknown.status, 404, "the handler knows no such route");

    assert_eq!(get(addr, "/readyz").status, 503, "the handler is not ready");
    handler.ready.store(true, Ordering::SeqCst);
    assert_eq!(get(addr, "/readyz").status, 200);
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(get(addr, "/metrics").status, 200);
    assert_eq!(get(addr, "/").status, 200, "the page asks for the token itself");

    assert_eq!(view_names(&get(addr, "/v1/views?token=reader")), ["hub_prices"], "only what the token may read");
    assert_eq!(view_names(&get(addr, "/v1/views?token=operator")), ["hub_prices", "spreads"]);
    server.shutdown(Duration::from_secs(2));
}

type Client = yawc::TcpWebSocket;

async fn connect(server_addr: SocketAddr) -> Client {
    let url = format!("ws://{server_addr}/v1/stream").parse().expect("a url");
    yawc::WebSocket::connect(url).await.expect("connected")
}

async fn send(client: &mut Client, message: ClientMessage) {
    client.send(Encoding::MessagePack.encode(&message)).await.unwrap();
}

/// The next protocol message (heartbeats skipped).
async fn receive(client: &mut Client) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), client.next())
            .await
            .expect("a message in time")
            .expect("the connection is open");
        match Encoding::MessagePack.decode::<ServerMessage>(&frame).unwrap() {
            Some(ServerMessage::Heartbeat { .. }) | None => continue,
            Some(message) => return message,
        }
    }
}

fn subscribe(id: u64, view: &str) -> ClientMessage {
    ClientMessage::Subscribe {
        id,
        view: view.into(),
        filter: Default::default(),
        resume_from: None,
        resume_version: None,
    }
}

fn row(key: &str, value: f64) -> Row {
    Row::new(vec![Datum::string(key), Datum::float(value)])
}

/// Publishes one epoch of insertions (the publisher blocks, so not on an async thread).
fn publish(publisher: &mut impl Sink, epoch: Epoch, rows: &[Row]) {
    let updates: Vec<(Row, Diff)> = rows.iter().map(|row| (row.clone(), 1)).collect();
    publisher.on_batch(epoch, &updates).unwrap();
    publisher.on_progress(epoch, Watermark(epoch as i64)).unwrap();
}

fn upserted(message: &ServerMessage) -> Vec<Row> {
    match message {
        ServerMessage::Diff { upserts, .. } => upserts.iter().map(|row| row.0.clone()).collect(),
        other => panic!("expected a diff, got {other:?}"),
    }
}

#[test]
fn a_removed_view_ends_its_subscriptions_and_its_name_can_be_served_again() {
    let _serial = serial();
    let server = start(None, HubLimits::default());
    let client_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut client = client_runtime.block_on(connect(server.local_addr()));
    let mut old_publisher = server.publisher("hub_prices").unwrap();
    client_runtime.block_on(async {
        send(&mut client, subscribe(1, "hub_prices")).await;
        assert!(matches!(receive(&mut client).await, ServerMessage::Snapshot { sub: 1, .. }));
    });
    publish(&mut old_publisher, 1, &[row("PJM-WEST", 40.0)]);
    let first = client_runtime.block_on(receive(&mut client));
    assert_eq!(upserted(&first), [row("PJM-WEST", 40.0)]);

    server.remove_views(&["hub_prices".to_owned()]);
    client_runtime.block_on(async {
        match receive(&mut client).await {
            ServerMessage::Error { sub, code, message } => {
                assert_eq!((sub, code), (Some(1), ErrorCode::ViewRemoved));
                assert!(message.contains("hub_prices"), "{message}");
            }
            other => panic!("expected view_removed, got {other:?}"),
        }
        send(&mut client, ClientMessage::Unsubscribe { id: 1 }).await;
        assert!(
            matches!(
                receive(&mut client).await,
                ServerMessage::Error {
                    code: ErrorCode::UnknownSubscription,
                    ..
                }
            ),
            "the subscription has ended"
        );
        send(&mut client, subscribe(2, "hub_prices")).await;
        assert!(matches!(
            receive(&mut client).await,
            ServerMessage::Error {
                code: ErrorCode::UnknownView,
                ..
            }
        ));
    });

    server.add_views(vec![prices()]).unwrap();
    let mut new_publisher = server.publisher("hub_prices").unwrap();
    client_runtime.block_on(async {
        send(&mut client, subscribe(3, "hub_prices")).await;
        match receive(&mut client).await {
            ServerMessage::Snapshot { sub: 3, rows, .. } => assert!(rows.is_empty(), "the new view starts empty: {rows:?}"),
            other => panic!("expected a snapshot, got {other:?}"),
        }
    });
    // The old publisher's rows go nowhere; the new one's arrive, in order behind them.
    publish(&mut old_publisher, 2, &[row("STALE", 1.0)]);
    publish(&mut new_publisher, 1, &[row("NYC", 51.0)]);
    let next = client_runtime.block_on(receive(&mut client));
    assert_eq!(upserted(&next), [row("NYC", 51.0)]);

    drop((old_publisher, new_publisher));
    client_runtime.block_on(client.close()).unwrap();
    server.shutdown(Duration::from_secs(2));
}

/// The value of an unlabelled metric in `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = get(addr, "/metrics").body;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} is not in\n{text}"))
        .parse()
        .unwrap()
}

/// Waits for a metric to reach `expected` (connections end asynchronously).
fn await_metric(addr: SocketAddr, name: &str, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = metric(addr, name);
        if value == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{name} stayed at {value}, expected {expected}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn websocket_metrics_count_connections_subscriptions_and_slow_consumers() {
    let _serial = serial();
    const CONNECTIONS: &str = "carbonflow_websocket_connections";
    const SUBSCRIPTIONS: &str = "carbonflow_websocket_subscriptions";
    const SLOW: &str = "carbonflow_websocket_slow_consumers_dropped_total";
    let limits = HubLimits {
        pending: 4,
        ..HubLimits::default()
    };
    let server = start(None, limits);
    let addr = server.local_addr();
    let slow_before = metric(addr, SLOW);
    assert_eq!((metric(addr, CONNECTIONS), metric(addr, SUBSCRIPTIONS)), (0.0, 0.0));

    let client_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (mut reader, stalled) = client_runtime.block_on(async {
        let mut reader = connect(addr).await;
        let mut stalled = connect(addr).await;
        send(&mut reader, subscribe(1, "hub_prices")).await;
        send(&mut reader, subscribe(2, "spreads")).await;
        send(&mut stalled, subscribe(1, "spreads")).await;
        for _ in 0..2 {
            assert!(matches!(receive(&mut reader).await, ServerMessage::Snapshot { .. }));
        }
        assert!(matches!(receive(&mut stalled).await, ServerMessage::Snapshot { .. }));
        (reader, stalled)
    });
    assert_eq!((metric(addr, CONNECTIONS), metric(addr, SUBSCRIPTIONS)), (2.0, 3.0));
    client_runtime.block_on(async {
        send(&mut reader, ClientMessage::Unsubscribe { id: 2 }).await;
        assert!(matches!(receive(&mut reader).await, ServerMessage::Unsubscribed { sub: 2 }));
    });
    assert_eq!(metric(addr, SUBSCRIPTIONS), 2.0);

    // More changes in one version than a subscription may have pending: the
    // connection of `spreads` is dropped as a slow consumer.
    let mut publisher = server.publisher("spreads").unwrap();
    let rows: Vec<Row> = (0..10).map(|i| row(&format!("pair-{i}"), f64::from(i))).collect();
    publish(&mut publisher, 1, &rows);
    await_metric(addr, CONNECTIONS, 1.0);
    assert_eq!(metric(addr, SLOW), slow_before + 1.0);
    assert_eq!(metric(addr, SUBSCRIPTIONS), 1.0);
    assert_eq!(server.hub().stats().slow_consumers_dropped.load(Ordering::Relaxed), 1);

    server.remove_views(&["hub_prices".to_owned()]);
    client_runtime.block_on(async {
        assert!(matches!(
            receive(&mut reader).await,
            ServerMessage::Error {
                code: ErrorCode::ViewRemoved,
                ..
            }
        ));
    });
    assert_eq!(metric(addr, SUBSCRIPTIONS), 0.0, "a removed view's subscriptions are gone");
    client_runtime.block_on(reader.close()).unwrap();
    await_metric(addr, CONNECTIONS, 0.0);
    drop((stalled, publisher));
    server.shutdown(Duration::from_secs(2));
}

/// A WebSocket client written by hand on a blocking socket, to see the
/// frames as they travel: the handshake's headers, RSV1 (the
/// permessage-deflate bit) and the payload bytes.
struct RawWebSocket {
    stream: TcpStream,
}

/// FIN and the binary opcode, the first byte of a one-frame binary message.
const FIN_BINARY: u8 = 0x82;
/// RSV1: the message is compressed (RFC 7692).
const RSV1: u8 = 0x40;
/// What a sender strips from the end of a compressed message and the receiver appends.
const DEFLATE_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

impl RawWebSocket {
    /// Upgrades a fresh connection, offering `extensions` if any; gives the 101's header lines.
    fn connect(addr: SocketAddr, extensions: Option<&str>) -> (RawWebSocket, Reply) {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut head = String::from(
            "GET /v1/stream HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
             sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             sec-websocket-protocol: carbonflow.v1.msgpack\r\n",
        );
        if let Some(extensions) = extensions {
            head.push_str(&format!("sec-websocket-extensions: {extensions}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        let mut response = Vec::new();
        while !response.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            stream.read_exact(&mut byte).unwrap();
            response.push(byte[0]);
        }
        let response = String::from_utf8(response).unwrap();
        let (status_line, headers) = response.split_once("\r\n").unwrap();
        let reply = Reply {
            status: status_line.split(' ').nth(1).unwrap().parse().unwrap(),
            headers: headers.to_owned(),
            body: String::new(),
        };
        (RawWebSocket { stream }, reply)
    }

    /// Sends one masked frame (clients must mask) with the given first byte.
    fn send(&mut self, first_byte: u8, payload: &[u8]) {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![first_byte];
        match payload.len() {
            length @ 0..126 => frame.push(0x80 | length as u8),
            length => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&u16::try_from(length).unwrap().to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ mask[i % 4]));
        self.stream.write_all(&frame).unwrap();
    }

    /// The next frame from the server (unmasked): its first byte and payload.
    fn receive(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0; 2];
        self.stream.read_exact(&mut head).unwrap();
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let length = match head[1] & 0x7f {
            126 => {
                let mut length = [0; 2];
                self.stream.read_exact(&mut length).unwrap();
                usize::from(u16::from_be_bytes(length))
            }
            127 => {
                let mut length = [0; 8];
                self.stream.read_exact(&mut length).unwrap();
                usize::try_from(u64::from_be_bytes(length)).unwrap()
            }
            length => usize::from(length),
        };
        let mut payload = vec![0; length];
        self.stream.read_exact(&mut payload).unwrap();
        (head[0], payload)
    }

    /// The next message that is not a heartbeat, decompressed when RSV1 says so;
    /// with whether it was compressed.
    fn receive_message(&mut self) -> (ServerMessage, bool) {
        loop {
            let (first_byte, payload) = self.receive();
            assert_eq!(first_byte & !RSV1, FIN_BINARY, "one binary frame per message");
            let compressed = first_byte & RSV1 != 0;
            let bytes = if compressed { inflate(&payload) } else { payload };
            match rmp_serde::from_slice(&bytes).expect("a protocol message") {
                ServerMessage::Heartbeat { .. } => continue,
                message => return (message, compressed),
            }
        }
    }
}

/// A message compressed as permessage-deflate sends it (raw deflate, flushed, tail stripped).
fn deflate(message: &[u8]) -> Vec<u8> {
    let mut compressor = flate2::Compress::new(flate2::Compression::fast(), false);
    let mut compressed = Vec::with_capacity(message.len() + 64);
    compressor.compress_vec(message, &mut compressed, flate2::FlushCompress::Sync).unwrap();
    assert!(compressed.ends_with(&DEFLATE_TAIL));
    compressed.truncate(compressed.len() - DEFLATE_TAIL.len());
    compressed
}

/// A permessage-deflate payload decompressed.
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut decompressor = flate2::Decompress::new(false);
    let input = [payload, &DEFLATE_TAIL].concat();
    let mut message = Vec::with_capacity(64 * payload.len() + 1024);
    decompressor.decompress_vec(&input, &mut message, flate2::FlushDecompress::Sync).unwrap();
    assert_eq!(decompressor.total_in(), input.len() as u64, "the whole payload inflated");
    message
}

fn many_rows(epoch: Epoch) -> Vec<Row> {
    (0..50).map(|i| row(&format!("PJM-NODE-{i:03}"), epoch as f64 * 100.0 + f64::from(i))).collect()
}

#[test]
fn permessage_deflate_is_negotiated_when_offered_and_compresses_both_ways() {
    let _serial = serial();
    let server = start(None, HubLimits::default());
    let addr = server.local_addr();
    let mut publisher = server.publisher("hub_prices").unwrap();
    let subscribe_bytes = rmp_serde::to_vec_named(&subscribe(1, "hub_prices")).unwrap();

    // Offered (as a browser offers it): agreed, with no context takeover imposed both ways.
    let (mut compressed, reply) = RawWebSocket::connect(addr, Some("permessage-deflate; client_max_window_bits"));
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(
        reply.header("sec-websocket-extensions"),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    assert_eq!(reply.header("sec-websocket-protocol"), Some("carbonflow.v1.msgpack"));
    // A compressed subscribe is understood: the snapshot answers it.
    compressed.send(FIN_BINARY | RSV1, &deflate(&subscribe_bytes));
    let (snapshot, snapshot_compressed) = compressed.receive_message();
    assert!(matches!(snapshot, ServerMessage::Snapshot { sub: 1, .. }), "{snapshot:?}");
    assert!(!snapshot_compressed, "an empty snapshot is under the compression threshold");
    // Not offered: plain frames.
    let (mut plain, reply) = RawWebSocket::connect(addr, None);
    assert_eq!((reply.status, reply.header("sec-websocket-extensions")), (101, None), "{reply:?}");
    plain.send(FIN_BINARY, &subscribe_bytes);
    assert!(matches!(plain.receive_message(), (ServerMessage::Snapshot { sub: 1, .. }, false)));

    publish(&mut publisher, 1, &many_rows(1));
    let sorted_upserts = |message: &ServerMessage| {
        let mut rows = upserted(message);
        rows.sort();
        rows
    };
    let (diff, diff_compressed) = compressed.receive_message();
    assert!(diff_compressed, "a diff of 50 rows travels compressed");
    assert_eq!(sorted_upserts(&diff), many_rows(1));
    let (plain_diff, plain_compressed) = plain.receive_message();
    assert!(!plain_compressed);
    assert_eq!(sorted_upserts(&plain_diff), many_rows(1), "the same changes either way");

    // A limit on the server's window, which the full-window deflate cannot honour, is declined.
    let (_, reply) = RawWebSocket::connect(addr, Some("permessage-deflate; server_max_window_bits=10"));
    assert_eq!((reply.status, reply.header("sec-websocket-extensions")), (101, None), "{reply:?}");
    drop((compressed, plain, publisher));
    server.shutdown(Duration::from_secs(2));
}
