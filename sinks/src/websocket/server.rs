//! The server: one port for HTTP and the WebSocket stream, on its own tokio
//! runtime.
//!
//! Every connection speaks HTTP/1.1 (hyper; the routes are in
//! [`super::http`]) until `GET /v1/stream` upgrades it to a WebSocket (yawc),
//! compressed with permessage-deflate when the client offers it (see
//! [`Compression`] for the parameters and the memory they cost). The
//! upgraded connection then runs one task that reads client messages, drains
//! its subscriptions' pending changes into diffs when the hub signals, sends
//! heartbeats on a timer and, when a subscription's pending changes outgrow
//! the bound, closes with [`CLOSE_SLOW_CONSUMER`], interrupting a send stuck
//! on a full socket. A subscription whose view is removed gets what was
//! pending and a `view_removed` error, and ends. At shutdown every connection
//! gets what is pending and a close frame (1001, going away).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use carbonflow_core::metrics::{WEBSOCKET_CONNECTIONS, WEBSOCKET_SLOW_CONSUMERS, WEBSOCKET_SUBSCRIPTIONS};
use futures_util::{SinkExt, StreamExt};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::IntGauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use yawc::close::CloseCode;
use yawc::{CompressionLevel, DeflatePool, Frame, HttpWebSocket, OpCode, Options};

use super::api::ApiHandler;
use super::auth::{AuthConfig, Grant};
use super::http::{self, Admission, Upgrade, UpgradeSlot};
use super::hub::{ConnectionSignal, Hub, HubChannel, HubLimits, Publisher, Start, Subscription};
use super::protocol::{CLOSE_SLOW_CONSUMER, ClientMessage, Encoding, ErrorCode, ServerMessage, SubscriptionId, WireRow};
use super::view::{RowFilter, ViewSchema};

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen (`127.0.0.1:8080` by default; port 0 picks a free port).
    pub listen: SocketAddr,
    /// The accepted tokens; `None` admits everyone, on loopback only.
    pub auth: Option<AuthConfig>,
    /// How often each subscription gets a heartbeat.
    pub heartbeat: Duration,
    /// Memory bounds.
    pub limits: HubLimits,
    /// The kernel send buffer of each connection. Kept small so that a slow
    /// reader's backlog stays in the server, where it is conflated by key,
    /// rather than queuing stale frames in the kernel.
    pub send_buffer: usize,
    /// permessage-deflate for the clients that offer it.
    pub compression: Compression,
}

/// How frames are compressed for a client that offers permessage-deflate
/// (RFC 7692); a client that does not offer it always gets plain frames.
///
/// Deflate state is the memory that matters: about 350 KiB for a compressor
/// (310 KiB: window, hash tables, LZ and output buffers) and a decompressor
/// (43 KiB), with their 32 KiB windows (yawc's pure Rust backend always uses
/// the full window). Kept per connection, that is up to
/// [`HubLimits::connections`] times as much, whatever the clients do, hence
/// the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Never negotiated: plain frames for everyone.
    Off,
    /// Every message compressed on its own, both ways
    /// (`server_no_context_takeover; client_no_context_takeover`, which the
    /// server may impose on any offer). Deflate state is borrowed from one
    /// pool for the time of one message, so an idle connection holds none
    /// and the server holds at most one state per runtime thread at rest.
    /// Messages under [`COMPRESSION_THRESHOLD`] bytes go uncompressed.
    #[default]
    PerMessage,
    /// Each direction keeps its window across messages: smaller frames for
    /// streams of small diffs, at about 350 KiB per connection that
    /// compressed anything (bounded by the connection limit).
    ContextTakeover,
}

/// Messages shorter than this go uncompressed under [`Compression::PerMessage`]:
/// deflate cannot shrink a heartbeat much without earlier messages to refer to.
pub const COMPRESSION_THRESHOLD: usize = 128;

/// The threads of the server's runtime: connection tasks and the hub.
const RUNTIME_THREADS: usize = 1;

/// The largest message a client may send (decompressed, too); subscribes are small.
const MAX_CLIENT_MESSAGE: usize = 1 << 20;

impl Compression {
    /// The WebSocket options of every connection.
    fn options(self) -> Options {
        let limits = Options::default().with_limits(MAX_CLIENT_MESSAGE, MAX_CLIENT_MESSAGE);
        match self {
            Compression::Off => limits,
            // Compression runs on the runtime's threads, one message at a time on each.
            Compression::PerMessage => limits
                .with_compression_level(CompressionLevel::fast())
                .server_no_context_takeover()
                .client_no_context_takeover()
                .with_deflate_pool(DeflatePool::new(RUNTIME_THREADS))
                .with_compression_threshold(COMPRESSION_THRESHOLD),
            Compression::ContextTakeover => limits.with_compression_level(CompressionLevel::fast()),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth: None,
            heartbeat: Duration::from_secs(1),
            limits: HubLimits::default(),
            send_buffer: 64 * 1024,
            compression: Compression::default(),
        }
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the address failed (in use, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Without tokens the server only listens on loopback.
    #[error("refusing to listen on {0} without authentication: give a token file, or listen on 127.0.0.1")]
    Unauthenticated(SocketAddr),
    /// The async runtime could not start.
    #[error("cannot start the server runtime: {0}")]
    Runtime(std::io::Error),
    /// Two initial views share a name.
    #[error("cannot serve the views: {0}")]
    Views(String),
}

/// A running server.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    context: Arc<Context>,
    channel: HubChannel,
    hub_task: tokio::task::JoinHandle<()>,
    shutdown: watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<()>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

/// What every connection task shares.
pub(super) struct Context {
    pub(super) hub: Arc<Hub>,
    pub(super) auth: Option<AuthConfig>,
    heartbeat: Duration,
    send_buffer: usize,
    /// The options of every WebSocket, permessage-deflate included.
    pub(super) websocket: Options,
    api: RwLock<Option<Arc<dyn ApiHandler>>>,
}

impl Context {
    /// The engine's handler of the control API, once installed.
    pub(super) fn api(&self) -> Option<Arc<dyn ApiHandler>> {
        self.api.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl Server {
    /// Binds the address and starts serving `views` (more can be added while it runs).
    pub fn start(config: ServerConfig, views: Vec<ViewSchema>) -> Result<Server, ServerError> {
        if config.auth.is_none() && !config.listen.ip().is_loopback() {
            return Err(ServerError::Unauthenticated(config.listen));
        }
        expose_metrics();
        let hub = Arc::new(Hub::new(config.limits));
        hub.add_views(views).map_err(ServerError::Views)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("carbonflow-ws")
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let bind = |source| ServerError::Bind { addr: config.listen, source };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let local_addr = listener.local_addr().map_err(bind)?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener).map_err(bind)?
        };
        let (channel, hub_task) = HubChannel::spawn(hub.clone(), runtime.handle());
        let (shutdown, shutdown_signal) = watch::channel(false);
        let context = Arc::new(Context {
            hub,
            auth: config.auth,
            heartbeat: config.heartbeat,
            send_buffer: config.send_buffer,
            websocket: config.compression.options(),
            api: RwLock::new(None),
        });
        let accept_task = runtime.spawn(accept_loop(listener, context.clone(), shutdown_signal));
        Ok(Server {
            runtime,
            context,
            channel,
            hub_task,
            shutdown,
            accept_task,
            local_addr,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The hub (views, subscriptions, counters).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.context.hub
    }

    /// A sink publishing the changes of the named view, if the server serves it.
    pub fn publisher(&self, view: &str) -> Option<Publisher> {
        self.context.hub.view_id(view).map(|id| self.channel.publisher(id))
    }

    /// Starts serving more views, empty; an error, and nothing added, when a
    /// name is already served (names are case-insensitive).
    pub fn add_views(&self, views: Vec<ViewSchema>) -> Result<(), String> {
        self.context.hub.add_views(views)
    }

    /// Stops serving the named views: their subscribers get `view_removed`
    /// and their subscriptions end, their memory is freed, and a later view
    /// may take a name again. Their publishers' changes are dropped from now on.
    pub fn remove_views(&self, names: &[String]) {
        self.context.hub.remove_views(names);
    }

    /// Installs the engine's handler of the control API (every route under
    /// `/v1/` but the stream and the list of views) and of `/readyz`.
    pub fn set_api(&self, handler: Arc<dyn ApiHandler>) {
        *self.context.api.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(handler);
    }

    /// Stops the server once every publisher is gone: all published changes
    /// are applied and sent, then each connection is closed (1001). Waits at
    /// most `grace` for publishers and connections.
    pub fn shutdown(self, grace: Duration) {
        let Server {
            runtime,
            channel,
            hub_task,
            shutdown,
            accept_task,
            ..
        } = self;
        drop(channel);
        runtime.block_on(async move {
            let _ = tokio::time::timeout(grace, hub_task).await;
            let _ = shutdown.send(true);
            let _ = tokio::time::timeout(grace, accept_task).await;
        });
        runtime.shutdown_timeout(grace);
    }
}

async fn accept_loop(listener: TcpListener, context: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    if connections.len() < context.hub.limits().connections {
                        connections.spawn(serve_connection(stream, context.clone(), shutdown.clone()));
                    } else {
                        connections.spawn(turn_away(stream));
                    }
                }
            }
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    while connections.join_next().await.is_some() {}
}

/// Answers a connection over the limit with HTTP 503, whatever it asks.
async fn turn_away(stream: TcpStream) {
    let service = service_fn(|_| async { Ok::<_, Infallible>(http::too_many_connections()) });
    let refusal = http1::Builder::new().keep_alive(false).serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, refusal).await;
}

/// Registers the WebSocket metric families, so that `/metrics` shows them
/// at zero before the first connection.
fn expose_metrics() {
    LazyLock::force(&WEBSOCKET_CONNECTIONS);
    LazyLock::force(&WEBSOCKET_SUBSCRIPTIONS);
    WEBSOCKET_SLOW_CONSUMERS.with_label_values(&[] as &[&str]);
}

/// One for as long as it lives, in a gauge.
struct Counted(&'static IntGauge);

impl Counted {
    fn new(gauge: &'static IntGauge) -> Counted {
        gauge.inc();
        Counted(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A subscription as its connection tracks it.
struct SubscriptionState {
    shared: Arc<Subscription>,
    schema: ViewSchema,
    /// The last sequence number sent.
    seq: u64,
    /// The view version and frontier the client is at.
    version: u64,
    frontier: Option<i64>,
    /// In the subscriptions gauge while it lives.
    _counted: Counted,
}

/// Why a connection ends early.
enum Ending {
    /// The peer went away or the socket failed.
    Gone,
    /// Pending changes outgrew the bound.
    TooSlow,
}

type Socket = HttpWebSocket;

/// Serves a connection's HTTP requests and, once one is upgraded, its WebSocket.
async fn serve_connection(stream: TcpStream, context: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(context.send_buffer);
    let slot = UpgradeSlot::default();
    let service = {
        let (context, slot) = (context.clone(), slot.clone());
        service_fn(move |request| http::answer(request, context.clone(), slot.clone()))
    };
    let http = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut http = std::pin::pin!(http);
    tokio::select! {
        _ = http.as_mut() => {}
        _ = shutdown.changed() => {
            http.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, http).await;
            return;
        }
    }
    let upgrade = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    let Some(Upgrade { socket, admission }) = upgrade else {
        return;
    };
    let Ok(socket) = socket.await else {
        return;
    };
    serve_websocket(socket, admission, context, &mut shutdown).await;
}

async fn serve_websocket(socket: Socket, admission: Admission, context: Arc<Context>, shutdown: &mut watch::Receiver<bool>) {
    let _open = Counted::new(&WEBSOCKET_CONNECTIONS);
    let mut connection = Connection {
        context: context.clone(),
        encoding: admission.encoding,
        grant: admission.grant,
        signal: Arc::new(ConnectionSignal::default()),
        subscriptions: HashMap::new(),
    };
    let ending = connection.run(socket, shutdown).await;
    for state in connection.subscriptions.values() {
        context.hub.unsubscribe(&state.shared);
    }
    if let Some(Ending::TooSlow) = ending {
        context.hub.stats().slow_consumers_dropped.fetch_add(1, Ordering::Relaxed);
        WEBSOCKET_SLOW_CONSUMERS.with_label_values(&[] as &[&str]).inc();
    }
}

struct Connection {
    context: Arc<Context>,
    encoding: Encoding,
    grant: Option<Grant>,
    signal: Arc<ConnectionSignal>,
    subscriptions: HashMap<SubscriptionId, SubscriptionState>,
}

impl Connection {
    /// Serves until the client leaves (`Some(Gone)`), is too slow
    /// (`Some(TooSlow)`) or the server shuts down (`None`).
    async fn run(&mut self, socket: Socket, shutdown: &mut watch::Receiver<bool>) -> Option<Ending> {
        let (mut writer, mut reader) = socket.split();
        let mut heartbeat = tokio::time::interval(self.context.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();
        loop {
            let mut outgoing = Vec::new();
            let mut closing = None;
            tokio::select! {
                frame = reader.next() => match frame {
                    Some(frame) if frame.opcode() != OpCode::Close => self.on_frame(&frame, &mut outgoing),
                    _ => return Some(Ending::Gone),
                },
                () = self.signal.changed.notified() => self.drain(&mut outgoing),
                _ = heartbeat.tick() => {
                    self.drain(&mut outgoing);
                    self.heartbeats(&mut outgoing);
                }
                _ = shutdown.changed() => {
                    self.drain(&mut outgoing);
                    closing = Some(Frame::close(CloseCode::Away, "the run finished"));
                }
            }
            if self.signal.overflowed.load(Ordering::Acquire) {
                let reason = format!("slow consumer: more than {} changes pending", self.context.hub.limits().pending);
                close(&mut writer, CloseCode::from(CLOSE_SLOW_CONSUMER), reason).await;
                return Some(Ending::TooSlow);
            }
            let frames = outgoing.iter().map(|message| self.encoding.encode(message)).collect::<Vec<_>>();
            let sent = tokio::select! {
                sent = send_all(&mut writer, frames) => sent,
                () = self.signal.overflow.notified() => Err(Ending::TooSlow),
            };
            match sent {
                Ok(()) => {}
                Err(Ending::TooSlow) => {
                    let reason = format!("slow consumer: more than {} changes pending", self.context.hub.limits().pending);
                    close(&mut writer, CloseCode::from(CLOSE_SLOW_CONSUMER), reason).await;
                    return Some(Ending::TooSlow);
                }
                Err(ending) => return Some(ending),
            }
            if let Some(frame) = closing {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.send(frame)).await;
                return None;
            }
        }
    }

    fn on_frame(&mut self, frame: &Frame, outgoing: &mut Vec<ServerMessage>) {
        let message = match self.encoding.decode::<ClientMessage>(frame) {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(error) => {
                outgoing.push(error_message(None, ErrorCode::BadRequest, format!("cannot decode the message: {error}")));
                return;
            }
        };
        match message {
            ClientMessage::Ping => outgoing.push(ServerMessage::Pong),
            ClientMessage::Unsubscribe { id } => match self.subscriptions.remove(&id) {
                Some(state) => {
                    self.context.hub.unsubscribe(&state.shared);
                    outgoing.push(ServerMessage::Unsubscribed { sub: id });
                }
                None => outgoing.push(error_message(
                    Some(id),
                    ErrorCode::UnknownSubscription,
                    format!("subscription {id} is not active"),
                )),
            },
            ClientMessage::Subscribe {
                id,
                view,
                filter,
                resume_from,
                resume_version,
            } => match self.subscribe(id, &view, &filter, resume_from.zip(resume_version)) {
                Ok(first) => outgoing.push(first),
                Err((code, message)) => outgoing.push(error_message(Some(id), code, message)),
            },
        }
    }

    fn subscribe(
        &mut self,
        id: SubscriptionId,
        view: &str,
        filter: &std::collections::BTreeMap<String, super::protocol::FilterValues>,
        resume: Option<(u64, u64)>,
    ) -> Result<ServerMessage, (ErrorCode, String)> {
        if self.subscriptions.contains_key(&id) {
            return Err((
                ErrorCode::DuplicateSubscription,
                format!("subscription {id} is already active on this connection"),
            ));
        }
        let hub = &self.context.hub;
        let limit = hub.limits().subscriptions_per_connection;
        if self.subscriptions.len() >= limit {
            return Err((ErrorCode::TooManySubscriptions, format!("a connection may hold {limit} subscriptions")));
        }
        let unknown = || (ErrorCode::UnknownView, format!("no view or websocket table named '{view}'"));
        let view_id = hub.view_id(view).ok_or_else(unknown)?;
        let schema = hub.schema(view_id).ok_or_else(unknown)?;
        let mut row_filter = RowFilter::new(&schema, filter).map_err(|message| (ErrorCode::BadFilter, message))?;
        if let Some(grant) = &self.grant {
            if !grant.may_read(&schema.name) {
                return Err((ErrorCode::Forbidden, format!("this token may not read view '{}'", schema.name)));
            }
            if let Some(markets) = grant.market_filter(&schema).map_err(|message| (ErrorCode::Forbidden, message))? {
                row_filter.intersect(&markets);
            }
        }
        let (shared, start) = hub
            .subscribe(view_id, row_filter, resume.map(|(_, version)| version), self.signal.clone())
            .ok_or_else(unknown)?;
        let resumed_seq = resume.map_or(0, |(seq, _)| seq);
        let (message, seq, version, frontier) = match start {
            Start::Snapshot { rows, version, frontier } => {
                let seq = resumed_seq + 1;
                let message = ServerMessage::Snapshot {
                    sub: id,
                    seq,
                    version,
                    frontier,
                    columns: schema.columns(),
                    key: schema.key_names(),
                    rows: rows.into_iter().map(WireRow).collect(),
                };
                (message, seq, version, frontier)
            }
            Start::Resume { changes, version, frontier } if changes.is_empty() => (
                ServerMessage::Heartbeat {
                    sub: id,
                    seq: resumed_seq,
                    version,
                    frontier,
                },
                resumed_seq,
                version,
                frontier,
            ),
            Start::Resume { changes, version, frontier } => {
                let seq = resumed_seq + 1;
                (diff_message(id, seq, version, frontier, schema.key.is_some(), changes), seq, version, frontier)
            }
        };
        self.subscriptions.insert(
            id,
            SubscriptionState {
                shared,
                schema,
                seq,
                version,
                frontier,
                _counted: Counted::new(&WEBSOCKET_SUBSCRIPTIONS),
            },
        );
        Ok(message)
    }

    /// One diff per subscription with pending changes; a `view_removed`
    /// error after it for each subscription whose view was removed, which ends.
    fn drain(&mut self, outgoing: &mut Vec<ServerMessage>) {
        let mut ended = Vec::new();
        for (id, state) in &mut self.subscriptions {
            let pending = state.shared.take_pending(&state.schema);
            state.version = pending.version;
            state.frontier = pending.frontier;
            if !pending.changes.is_empty() {
                state.seq += 1;
                outgoing.push(diff_message(
                    *id,
                    state.seq,
                    pending.version,
                    pending.frontier,
                    state.schema.key.is_some(),
                    pending.changes,
                ));
            }
            if pending.removed {
                ended.push(*id);
                let message = format!("view '{}' is no longer served: its query was dropped", state.schema.name);
                outgoing.push(error_message(Some(*id), ErrorCode::ViewRemoved, message));
            }
        }
        for id in ended {
            self.subscriptions.remove(&id);
        }
    }

    fn heartbeats(&self, outgoing: &mut Vec<ServerMessage>) {
        for (id, state) in &self.subscriptions {
            outgoing.push(ServerMessage::Heartbeat {
                sub: *id,
                seq: state.seq,
                version: state.version,
                frontier: state.frontier,
            });
        }
    }
}

fn diff_message(sub: SubscriptionId, seq: u64, version: u64, frontier: Option<i64>, keyed: bool, changes: super::view::Changes) -> ServerMessage {
    let (added, removed) = changes.into_parts();
    let added: Vec<WireRow> = added.into_iter().map(WireRow).collect();
    let (upserts, inserts) = if keyed { (added, Vec::new()) } else { (Vec::new(), added) };
    ServerMessage::Diff {
        sub,
        seq,
        version,
        frontier,
        upserts,
        inserts,
        deletes: removed.into_iter().map(WireRow).collect(),
    }
}

fn error_message(sub: Option<SubscriptionId>, code: ErrorCode, message: String) -> ServerMessage {
    ServerMessage::Error { sub, code, message }
}

/// How long a close frame may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

type Writer = futures_util::stream::SplitSink<Socket, Frame>;

async fn send_all(writer: &mut Writer, frames: Vec<Frame>) -> Result<(), Ending> {
    if frames.is_empty() {
        return Ok(());
    }
    for frame in frames {
        writer.feed(frame).await.map_err(|_| Ending::Gone)?;
    }
    writer.flush().await.map_err(|_| Ending::Gone)
}

async fn close(writer: &mut Writer, code: CloseCode, reason: String) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.send(Frame::close(code, reason))).await;
}

#[cfg(test)]
mod tests {
    use carbonflow_core::{DataType, Field, Schema};
    use yawc::{WebSocket, WebSocketError};

    use super::super::protocol::STREAM_PATH;
    use super::*;

    #[test]
    fn connections_and_subscriptions_per_connection_are_bounded() {
        let view = ViewSchema {
            name: "v".into(),
            schema: Schema::new(vec![Field::new("k", DataType::Int)]),
            key: Some(vec![0]),
        };
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            limits: HubLimits {
                connections: 1,
                subscriptions_per_connection: 2,
                ..HubLimits::default()
            },
            ..ServerConfig::default()
        };
        let server = Server::start(config, vec![view]).unwrap();
        let url = format!("ws://{}{STREAM_PATH}", server.local_addr());
        let client = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        client.block_on(async {
            let mut first = WebSocket::connect(url.parse().unwrap()).await.unwrap();
            let mut replies = Vec::new();
            for id in 1..=3 {
                let subscribe = ClientMessage::Subscribe {
                    id,
                    view: "v".into(),
                    filter: Default::default(),
                    resume_from: None,
                    resume_version: None,
                };
                first.send(Encoding::MessagePack.encode(&subscribe)).await.unwrap();
                let frame = first.next().await.unwrap();
                replies.push(Encoding::MessagePack.decode::<ServerMessage>(&frame).unwrap().unwrap());
            }
            assert!(matches!(replies[0], ServerMessage::Snapshot { sub: 1, .. }));
            assert!(matches!(replies[1], ServerMessage::Snapshot { sub: 2, .. }));
            assert!(
                matches!(
                    replies[2],
                    ServerMessage::Error {
                        code: ErrorCode::TooManySubscriptions,
                        ..
                    }
                ),
                "{:?}",
                replies[2]
            );
            match WebSocket::connect(url.parse().unwrap()).await {
                Err(WebSocketError::InvalidStatusCode(status)) => assert_eq!(status, 503),
                other => panic!("a second connection: {:?}", other.map(|_| ())),
            }
        });
        server.shutdown(Duration::from_secs(1));
    }
}
