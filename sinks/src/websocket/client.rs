//! A Rust subscriber of `GET /v1/stream`, used by the tests and the latency
//! harness, and the reference for client authors.
//!
//! A [`Subscriber`] keeps a [`Replica`] of one view (or the filtered part of
//! it) up to date. It checks that sequence numbers follow each other; a gap
//! makes it resubscribe from a fresh snapshot. When the connection drops it
//! reconnects with exponential backoff and jitter and resumes from the last
//! sequence number and version it applied, so nothing is missed or applied
//! twice; the server answers with the missed changes, or with a fresh
//! snapshot when its history no longer reaches back that far.
//!
//! With [`ClientOptions::deflate`] it offers permessage-deflate and takes
//! whatever parameters the server answers; [`Subscriber::bytes_received`]
//! counts what arrived on the wire, compressed or not.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foldhash::HashMap;

use carbonflow_core::{Diff, Row};
use futures_util::{SinkExt, StreamExt};
use hyper::header;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use url::Url;
use yawc::{CompressionLevel, OpCode, Options, WebSocket, WebSocketError};

use super::protocol::{ClientMessage, Column, Encoding, ErrorCode, FilterValues, ServerMessage, SubscriptionId, WireRow};

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `ws://host:port/v1/stream`.
    pub url: String,
    /// A bearer token, when the server asks for one.
    pub token: Option<String>,
    /// The subprotocol to ask for.
    pub encoding: Encoding,
    /// The first wait before reconnecting; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// Consecutive failed connection attempts before giving up (`None`: never).
    pub max_attempts: Option<u32>,
    /// The kernel receive buffer, for a client that reads slowly and prefers
    /// conflated changes to a backlog of stale ones (`None`: the system's).
    pub receive_buffer: Option<u32>,
    /// Whether to offer permessage-deflate (the server decides whether and how).
    pub deflate: bool,
}

impl ClientOptions {
    /// Options for a server at `url`, MessagePack, uncompressed, backoff from 50 ms to 5 s, retrying forever.
    pub fn new(url: impl Into<String>) -> Self {
        ClientOptions {
            url: url.into(),
            token: None,
            encoding: Encoding::MessagePack,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            max_attempts: None,
            receive_buffer: None,
            deflate: false,
        }
    }
}

/// Why a subscriber gave up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the connection (bad token, wrong path), or the
    /// request cannot be made: retrying will not help.
    #[error("the server refused the connection: HTTP {status}: {reason}")]
    Refused {
        /// The HTTP status (0 when the request could not be made).
        status: u16,
        /// The status's reason phrase, or what is wrong with the request.
        reason: String,
    },
    /// The server refused the subscription.
    #[error("the server refused the subscription ({code:?}): {message}")]
    Subscription {
        /// What kind of refusal.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// Connecting failed `max_attempts` times in a row.
    #[error("could not connect to {url} after {attempts} attempts: {last}")]
    Unreachable {
        /// The server address.
        url: String,
        /// How many attempts.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// What the last message did to the replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The replica was replaced by a snapshot.
    Snapshot,
    /// Changes were applied.
    Diff,
    /// Nothing changed; the view is complete up to a (possibly) later frontier.
    Heartbeat,
}

/// One message applied to the replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// What it was.
    pub kind: EventKind,
    /// Its sequence number.
    pub seq: u64,
    /// The view version the replica is now at.
    pub version: u64,
    /// Event time up to which the view is complete.
    pub frontier: Option<i64>,
}

/// The client's copy of a view's rows.
#[derive(Clone, Debug, Default)]
pub struct Replica {
    columns: Vec<Column>,
    key: Option<Vec<usize>>,
    keyed: HashMap<Row, Row>,
    counted: HashMap<Row, Diff>,
}

impl Replica {
    /// The columns of the view.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The rows, sorted (timestamps and intervals as integers).
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = match self.key {
            Some(_) => self.keyed.values().cloned().collect(),
            None => self
                .counted
                .iter()
                .flat_map(|(row, count)| std::iter::repeat_n(row.clone(), usize::try_from(*count).unwrap_or(0)))
                .collect(),
        };
        rows.sort();
        rows
    }

    fn reset(&mut self, columns: Vec<Column>, key: Option<Vec<String>>, rows: Vec<WireRow>) {
        self.key = key.map(|names| {
            names
                .iter()
                .map(|name| columns.iter().position(|c| &c.name == name).expect("key columns are columns"))
                .collect()
        });
        self.columns = columns;
        self.keyed.clear();
        self.counted.clear();
        self.add(rows);
    }

    fn add(&mut self, rows: Vec<WireRow>) {
        for WireRow(row) in rows {
            match &self.key {
                Some(key) => {
                    self.keyed.insert(row.project(key), row);
                }
                None => *self.counted.entry(row).or_default() += 1,
            }
        }
    }

    fn remove(&mut self, rows: Vec<WireRow>) {
        for WireRow(row) in rows {
            match &self.key {
                Some(_) => {
                    self.keyed.remove(&row);
                }
                None => {
                    let count = self.counted.entry(row.clone()).or_default();
                    *count -= 1;
                    if *count == 0 {
                        self.counted.remove(&row);
                    }
                }
            }
        }
    }
}

type Socket = WebSocket<Metered>;

/// The largest message read from the server, decompressed.
const MAX_SERVER_MESSAGE: usize = 1 << 30;

/// A subscription that survives reconnects.
pub struct Subscriber {
    options: ClientOptions,
    view: String,
    filter: BTreeMap<String, FilterValues>,
    id: SubscriptionId,
    socket: Option<Socket>,
    /// The last applied `(seq, version)`.
    position: Option<(u64, u64)>,
    replica: Replica,
    failed_attempts: u32,
    /// Whether a connection was ever established (a later one is a reconnect).
    ever_connected: bool,
    reconnects: u64,
    resyncs: u64,
    last_close: Option<u16>,
    /// The rows the last diff upserted or inserted.
    last_added: Vec<Row>,
    /// Bytes read from the network, over every connection.
    received: Arc<AtomicU64>,
}

impl Subscriber {
    /// A subscriber of `view`, filtered by `filter`; it connects on the first [`Subscriber::next`].
    pub fn new(options: ClientOptions, view: impl Into<String>, filter: BTreeMap<String, FilterValues>) -> Self {
        Subscriber {
            options,
            view: view.into(),
            filter,
            id: 1,
            socket: None,
            position: None,
            replica: Replica::default(),
            failed_attempts: 0,
            ever_connected: false,
            reconnects: 0,
            resyncs: 0,
            last_close: None,
            last_added: Vec::new(),
            received: Arc::default(),
        }
    }

    /// The replica, as of the last event.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The rows the last diff upserted or inserted (none after other events):
    /// what a screen would highlight, or a latency probe would time.
    pub fn last_added(&self) -> &[Row] {
        &self.last_added
    }

    /// How many times the connection was re-established.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// How many times a gap made it start over from a snapshot.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// The close code of the last connection the server closed.
    pub fn last_close_code(&self) -> Option<u16> {
        self.last_close
    }

    /// Bytes read from the network over every connection so far: frames as
    /// they travelled (compressed, when deflate was agreed) and the HTTP
    /// handshakes.
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Drops the connection, as a network failure would; the next call to
    /// [`Subscriber::next`] reconnects and resumes.
    pub fn disconnect(&mut self) {
        self.socket = None;
    }

    /// Waits for the next message of the subscription and applies it.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        loop {
            let socket = match self.socket.as_mut() {
                Some(socket) => socket,
                None => {
                    self.connect().await?;
                    continue;
                }
            };
            let Some(frame) = socket.next().await else {
                self.socket = None;
                continue;
            };
            if frame.opcode() == OpCode::Close {
                self.last_close = frame.close_code().map(u16::from);
                self.socket = None;
                continue;
            }
            let message = match self.options.encoding.decode::<ServerMessage>(&frame) {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(_) => {
                    // A frame we cannot read leaves the replica in doubt: start over.
                    self.resync().await;
                    continue;
                }
            };
            if let Some(event) = self.apply(message).await? {
                return Ok(event);
            }
        }
    }

    /// Applies a message; `None` when it was not for this subscription or forced a resync.
    async fn apply(&mut self, message: ServerMessage) -> Result<Option<Event>, ClientError> {
        let expected_seq = self.position.map(|(seq, _)| seq);
        self.last_added.clear();
        let event = match message {
            ServerMessage::Snapshot {
                sub,
                seq,
                version,
                frontier,
                columns,
                key,
                rows,
            } if sub == self.id => {
                self.replica.reset(columns, key, rows);
                Event {
                    kind: EventKind::Snapshot,
                    seq,
                    version,
                    frontier,
                }
            }
            ServerMessage::Diff {
                sub,
                seq,
                version,
                frontier,
                upserts,
                inserts,
                deletes,
            } if sub == self.id => {
                if expected_seq.map(|s| s + 1) != Some(seq) {
                    self.resync().await;
                    return Ok(None);
                }
                self.replica.remove(deletes);
                self.last_added.extend(upserts.iter().chain(&inserts).map(|WireRow(row)| row.clone()));
                self.replica.add(upserts);
                self.replica.add(inserts);
                Event {
                    kind: EventKind::Diff,
                    seq,
                    version,
                    frontier,
                }
            }
            ServerMessage::Heartbeat { sub, seq, version, frontier } if sub == self.id => {
                if expected_seq != Some(seq) {
                    self.resync().await;
                    return Ok(None);
                }
                Event {
                    kind: EventKind::Heartbeat,
                    seq,
                    version,
                    frontier,
                }
            }
            ServerMessage::Error { sub, code, message } if sub.is_none() || sub == Some(self.id) => {
                return Err(ClientError::Subscription { code, message });
            }
            _ => return Ok(None),
        };
        self.position = Some((event.seq, event.version));
        Ok(Some(event))
    }

    /// Starts over from a snapshot under a new subscription id.
    async fn resync(&mut self) {
        self.resyncs += 1;
        self.position = None;
        let old = self.id;
        self.id += 1;
        let unsubscribe = self.options.encoding.encode(&ClientMessage::Unsubscribe { id: old });
        let subscribe = self.options.encoding.encode(&self.subscribe_message());
        let sent = match self.socket.as_mut() {
            Some(socket) => socket.send(unsubscribe).await.is_ok() && socket.send(subscribe).await.is_ok(),
            None => true,
        };
        if !sent {
            self.socket = None;
        }
    }

    fn subscribe_message(&self) -> ClientMessage {
        ClientMessage::Subscribe {
            id: self.id,
            view: self.view.clone(),
            filter: self.filter.clone(),
            resume_from: self.position.map(|(seq, _)| seq),
            resume_version: self.position.map(|(_, version)| version),
        }
    }

    /// Connects (after a backoff when this is a reconnect) and subscribes, resuming when possible.
    async fn connect(&mut self) -> Result<(), ClientError> {
        loop {
            if self.failed_attempts > 0 || self.ever_connected {
                tokio::time::sleep(self.backoff()).await;
            }
            match self.open().await {
                Ok(mut socket) => {
                    let subscribe = self.options.encoding.encode(&self.subscribe_message());
                    if socket.send(subscribe).await.is_err() {
                        self.failed_attempts += 1;
                        continue;
                    }
                    if self.ever_connected {
                        self.reconnects += 1;
                    }
                    self.ever_connected = true;
                    self.failed_attempts = 0;
                    self.socket = Some(socket);
                    return Ok(());
                }
                Err(Attempt::Refused(error)) => return Err(error),
                Err(Attempt::Failed(last)) => {
                    self.failed_attempts += 1;
                    if self.options.max_attempts.is_some_and(|max| self.failed_attempts >= max) {
                        return Err(ClientError::Unreachable {
                            url: self.options.url.clone(),
                            attempts: self.failed_attempts,
                            last,
                        });
                    }
                }
            }
        }
    }

    async fn open(&self) -> Result<Socket, Attempt> {
        let refused = |reason: String| Attempt::Refused(ClientError::Refused { status: 0, reason });
        let url: Url = self.options.url.parse().map_err(|e| refused(format!("bad url {}: {e}", self.options.url)))?;
        let mut request = hyper::Request::builder().header(header::SEC_WEBSOCKET_PROTOCOL, self.options.encoding.protocol());
        if let Some(token) = &self.options.token {
            let value = header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| refused("the token is not a valid header value".into()))?;
            request = request.header(header::AUTHORIZATION, value);
        }
        // A snapshot of a whole view can be large; the bound only stops a broken server.
        let options = Options::default().with_limits(MAX_SERVER_MESSAGE, MAX_SERVER_MESSAGE);
        let options = if self.options.deflate {
            options.with_compression_level(CompressionLevel::fast())
        } else {
            options
        };
        let stream = connect_tcp(&url, self.options.receive_buffer)
            .await
            .map_err(|e| Attempt::Failed(e.to_string()))?;
        let stream = Metered {
            stream,
            received: self.received.clone(),
        };
        match WebSocket::handshake_with_request(url, stream, options, request).await {
            Ok(socket) => Ok(socket),
            Err(WebSocketError::InvalidStatusCode(status)) if (400..500).contains(&status) => Err(Attempt::Refused(ClientError::Refused {
                status,
                reason: hyper::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|status| status.canonical_reason())
                    .unwrap_or("refused")
                    .to_owned(),
            })),
            Err(error) => Err(Attempt::Failed(error.to_string())),
        }
    }

    /// Exponential backoff with jitter: a random half to all of the doubled wait.
    fn backoff(&self) -> Duration {
        let doubled = self.options.initial_backoff.saturating_mul(1 << self.failed_attempts.min(16));
        let ceiling = doubled.min(self.options.max_backoff);
        let jitter = f64::from(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()) % 1000) / 2000.0;
        ceiling.mul_f64(0.5 + jitter)
    }
}

/// The outcome of one connection attempt.
enum Attempt {
    Refused(ClientError),
    Failed(String),
}

/// A TCP connection to the url's host (plain `ws://`), with the given receive buffer.
async fn connect_tcp(url: &Url, receive_buffer: Option<u32>) -> std::io::Result<TcpStream> {
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let address = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} has no address")))?;
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = socket.connect(address).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A TCP stream that counts the bytes it reads into [`Subscriber::bytes_received`].
struct Metered {
    stream: TcpStream,
    received: Arc<AtomicU64>,
}

impl AsyncRead for Metered {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.received.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        polled
    }
}

impl AsyncWrite for Metered {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
