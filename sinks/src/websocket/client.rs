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

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foldhash::HashMap;

use carbonflow_core::{Diff, Row};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

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
}

impl ClientOptions {
    /// Options for a server at `url`, MessagePack, backoff from 50 ms to 5 s, retrying forever.
    pub fn new(url: impl Into<String>) -> Self {
        ClientOptions {
            url: url.into(),
            token: None,
            encoding: Encoding::MessagePack,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            max_attempts: None,
            receive_buffer: None,
        }
    }
}

/// Why a subscriber gave up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the connection (bad token, wrong path): retrying will not help.
    #[error("the server refused the connection: HTTP {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's explanation.
        body: String,
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

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
            let frame = match socket.next().await {
                Some(Ok(frame)) => frame,
                Some(Err(_)) | None => {
                    self.socket = None;
                    continue;
                }
            };
            if let tokio_tungstenite::tungstenite::Message::Close(close) = &frame {
                self.last_close = close.as_ref().map(|c| u16::from(c.code));
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
        let mut request = self.options.url.as_str().into_client_request().map_err(|e| {
            Attempt::Refused(ClientError::Refused {
                status: 0,
                body: format!("bad url {}: {e}", self.options.url),
            })
        })?;
        let headers = request.headers_mut();
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(self.options.encoding.protocol()));
        if let Some(token) = &self.options.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Attempt::Refused(ClientError::Refused {
                    status: 0,
                    body: "the token is not a valid header value".into(),
                })
            })?;
            headers.insert(header::AUTHORIZATION, value);
        }
        let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
        let connected = match self.options.receive_buffer {
            None => tokio_tungstenite::connect_async_with_config(request, Some(config), true).await,
            Some(size) => {
                let stream = connect_with_receive_buffer(&request, size).await.map_err(|e| Attempt::Failed(e.to_string()))?;
                tokio_tungstenite::client_async_with_config(request, MaybeTlsStream::Plain(stream), Some(config)).await
            }
        };
        match connected {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) if response.status().is_client_error() => {
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                    .unwrap_or_default();
                Err(Attempt::Refused(ClientError::Refused {
                    status: response.status().as_u16(),
                    body,
                }))
            }
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

/// A TCP connection to the request's host with a small receive buffer (plain `ws://` only).
async fn connect_with_receive_buffer(request: &tokio_tungstenite::tungstenite::handshake::client::Request, size: u32) -> std::io::Result<TcpStream> {
    let uri = request.uri();
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(80);
    let address = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} has no address")))?;
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_recv_buffer_size(size)?;
    let stream = socket.connect(address).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
