//! The WebSocket server: `GET /v1/stream` on its own tokio runtime.
//!
//! The handshake checks the path, the bearer token and the subprotocol. Each
//! connection then runs one task that reads client messages, drains its
//! subscriptions' pending changes into diffs when the hub signals, sends
//! heartbeats on a timer and, when a subscription's pending changes outgrow
//! the bound, closes with [`CLOSE_SLOW_CONSUMER`], interrupting a send stuck
//! on a full socket. At shutdown every connection gets what is pending and a
//! close frame (1001, going away).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use super::auth::{AuthConfig, Grant};
use super::hub::{ConnectionSignal, Hub, HubChannel, HubLimits, Publisher, Start, Subscription};
use super::protocol::{
    CLOSE_SLOW_CONSUMER, ClientMessage, Encoding, ErrorCode, JSON_PROTOCOL, MSGPACK_PROTOCOL, STREAM_PATH, ServerMessage, SubscriptionId, WireRow,
};
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth: None,
            heartbeat: Duration::from_secs(1),
            limits: HubLimits::default(),
            send_buffer: 64 * 1024,
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
}

/// A running WebSocket server.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    hub: Arc<Hub>,
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
struct Context {
    hub: Arc<Hub>,
    auth: Option<AuthConfig>,
    heartbeat: Duration,
    send_buffer: usize,
}

impl Server {
    /// Binds the address and starts serving `views`.
    pub fn start(config: ServerConfig, views: Vec<ViewSchema>) -> Result<Server, ServerError> {
        if config.auth.is_none() && !config.listen.ip().is_loopback() {
            return Err(ServerError::Unauthenticated(config.listen));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
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
        let first_version = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let hub = Arc::new(Hub::new(views, config.limits, first_version));
        let (channel, hub_task) = HubChannel::spawn(hub.clone(), runtime.handle());
        let (shutdown, shutdown_signal) = watch::channel(false);
        let context = Arc::new(Context {
            hub: hub.clone(),
            auth: config.auth,
            heartbeat: config.heartbeat,
            send_buffer: config.send_buffer,
        });
        let accept_task = runtime.spawn(accept_loop(listener, context, shutdown_signal));
        Ok(Server {
            runtime,
            hub,
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
        &self.hub
    }

    /// Adds views to serve. (Interim: only views already served are accepted
    /// until the hub can add views while running.)
    pub fn add_views(&self, views: Vec<ViewSchema>) -> Result<(), String> {
        match views.iter().find(|view| self.hub.view_index(&view.name).is_none()) {
            None => Ok(()),
            Some(view) => Err(format!("view '{}' cannot be added while the server runs yet", view.name)),
        }
    }

    /// Stops serving views. (Interim: a no-op until the hub can remove views.)
    pub fn remove_views(&self, _names: &[String]) {}

    /// Installs the control API. (Interim: not routed until the server speaks HTTP.)
    pub fn set_api(&self, _api: std::sync::Arc<dyn super::api::ApiHandler>) {}

    /// A sink publishing the changes of the named view, if the server serves it.
    pub fn publisher(&self, view: &str) -> Option<Publisher> {
        self.hub.view_index(view).map(|index| self.channel.publisher(index))
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

/// Answers a connection over the limit with HTTP 503.
#[allow(clippy::result_large_err)] // the handshake callback's contract, see `admit`
async fn turn_away(stream: TcpStream) {
    let refusal = |_: &Request, _: Response| Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "too many connections; retry later"));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, tokio_tungstenite::accept_hdr_async(stream, refusal)).await;
}

/// What the handshake settled.
struct Admission {
    encoding: Encoding,
    grant: Option<Grant>,
}

fn refuse(status: StatusCode, message: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(format!("{message}\n")));
    *response.status_mut() = status;
    response
}

/// The token of a request: `Authorization: Bearer ...`, or `?token=` for browsers.
fn presented_token(request: &Request) -> Option<String> {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|token| token.trim().to_owned());
    from_header.or_else(|| {
        request
            .uri()
            .query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_owned)
    })
}

/// Whether the request comes from a program (no `Origin`) or a page served
/// locally (`file://` pages send `null`; `http://localhost:...`, `http://127.0.0.1:...`).
fn local_origin(request: &Request) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN).and_then(|value| value.to_str().ok()) else {
        return true;
    };
    let host = origin.split("://").nth(1).unwrap_or("");
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(host, _)| host);
    origin == "null" || matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// Checks path, token and subprotocol; on success records what was agreed.
/// (The error type is tungstenite's handshake callback contract.)
#[allow(clippy::result_large_err)]
fn admit(request: &Request, mut response: Response, auth: Option<&AuthConfig>, admission: &mut Option<Admission>) -> Result<Response, ErrorResponse> {
    if request.uri().path() != STREAM_PATH {
        return Err(refuse(StatusCode::NOT_FOUND, &format!("carbonflow streams at {STREAM_PATH}")));
    }
    let grant = match auth {
        None if !local_origin(request) => {
            // Without tokens, a page from another site in the user's browser must not read the views.
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "without tokens only local pages (file:// or localhost) may connect",
            ));
        }
        None => None,
        Some(auth) => {
            let token = presented_token(request).ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "a bearer token is required"))?;
            Some(auth.grant(&token).cloned().ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "unknown token"))?)
        }
    };
    let offered: Vec<&str> = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let encoding = if offered.is_empty() {
        Encoding::MessagePack
    } else {
        let chosen = [MSGPACK_PROTOCOL, JSON_PROTOCOL]
            .into_iter()
            .find(|ours| offered.contains(ours))
            .ok_or_else(|| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("unsupported subprotocols {offered:?}; offer {MSGPACK_PROTOCOL} or {JSON_PROTOCOL}"),
                )
            })?;
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(chosen));
        Encoding::from_protocol(chosen).expect("one of ours")
    };
    *admission = Some(Admission { encoding, grant });
    Ok(response)
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
}

/// Why a connection ends early.
enum Ending {
    /// The peer went away or the socket failed.
    Gone,
    /// Pending changes outgrew the bound.
    TooSlow,
}

type Socket = WebSocketStream<TcpStream>;

#[allow(clippy::result_large_err)] // the handshake callback's contract, see `admit`
async fn serve_connection(stream: TcpStream, context: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(context.send_buffer);
    let mut admission = None;
    let config = WebSocketConfig::default().max_message_size(Some(1 << 20)).max_frame_size(Some(1 << 20));
    let accepted = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        |request: &Request, response: Response| admit(request, response, context.auth.as_ref(), &mut admission),
        Some(config),
    )
    .await;
    let (Ok(socket), Some(admission)) = (accepted, admission) else {
        return;
    };
    let mut connection = Connection {
        context: context.clone(),
        encoding: admission.encoding,
        grant: admission.grant,
        signal: Arc::new(ConnectionSignal::default()),
        subscriptions: HashMap::new(),
    };
    let ending = connection.run(socket, &mut shutdown).await;
    for state in connection.subscriptions.values() {
        context.hub.unsubscribe(&state.shared);
    }
    if let Some(Ending::TooSlow) = ending {
        context.hub.stats().slow_consumers_dropped.fetch_add(1, Ordering::Relaxed);
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
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Some(Ending::Gone),
                    Some(Ok(frame)) => self.on_frame(&frame, &mut outgoing),
                },
                () = self.signal.changed.notified() => self.drain(&mut outgoing),
                _ = heartbeat.tick() => {
                    self.drain(&mut outgoing);
                    self.heartbeats(&mut outgoing);
                }
                _ = shutdown.changed() => {
                    self.drain(&mut outgoing);
                    closing = Some(CloseFrame { code: CloseCode::Away, reason: "the run finished".into() });
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
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.send(Message::Close(Some(frame)))).await;
                return None;
            }
        }
    }

    fn on_frame(&mut self, frame: &Message, outgoing: &mut Vec<ServerMessage>) {
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
        let index = hub
            .view_index(view)
            .ok_or_else(|| (ErrorCode::UnknownView, format!("no view or websocket table named '{view}'")))?;
        let schema = hub.schema(index);
        let mut row_filter = RowFilter::new(&schema, filter).map_err(|message| (ErrorCode::BadFilter, message))?;
        if let Some(grant) = &self.grant {
            if !grant.may_read(&schema.name) {
                return Err((ErrorCode::Forbidden, format!("this token may not read view '{}'", schema.name)));
            }
            if let Some(markets) = grant.market_filter(&schema).map_err(|message| (ErrorCode::Forbidden, message))? {
                row_filter.intersect(&markets);
            }
        }
        let (shared, start) = hub.subscribe(index, row_filter, resume.map(|(_, version)| version), self.signal.clone());
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
            },
        );
        Ok(message)
    }

    /// One diff per subscription with pending changes.
    fn drain(&mut self, outgoing: &mut Vec<ServerMessage>) {
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

type Writer = futures_util::stream::SplitSink<Socket, Message>;

async fn send_all(writer: &mut Writer, frames: Vec<Message>) -> Result<(), Ending> {
    if frames.is_empty() {
        return Ok(());
    }
    for frame in frames {
        writer.feed(frame).await.map_err(|_| Ending::Gone)?;
    }
    writer.flush().await.map_err(|_| Ending::Gone)
}

async fn close(writer: &mut Writer, code: CloseCode, reason: String) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.send(Message::Close(Some(frame)))).await;
}

#[cfg(test)]
mod tests {
    use carbonflow_core::{DataType, Field, Schema};

    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn admitted(request: &Request, auth: Option<&AuthConfig>) -> Result<(Option<String>, Encoding, bool), StatusCode> {
        let mut admission = None;
        match admit(request, Response::new(()), auth, &mut admission) {
            Ok(response) => {
                let protocol = response.headers().get(header::SEC_WEBSOCKET_PROTOCOL).map(|v| v.to_str().unwrap().to_owned());
                let admission = admission.expect("recorded");
                Ok((protocol, admission.encoding, admission.grant.is_some()))
            }
            Err(refusal) => Err(refusal.status()),
        }
    }

    #[test]
    fn the_handshake_checks_path_subprotocol_origin_and_token() {
        assert_eq!(admitted(&request("/other", &[]), None), Err(StatusCode::NOT_FOUND));
        assert_eq!(admitted(&request("/v1/stream", &[]), None), Ok((None, Encoding::MessagePack, false)));
        let json = request("/v1/stream", &[("sec-websocket-protocol", "x, carbonflow.v1.json")]);
        assert_eq!(admitted(&json, None), Ok((Some(JSON_PROTOCOL.into()), Encoding::Json, false)));
        let both = request("/v1/stream", &[("sec-websocket-protocol", "carbonflow.v1.json, carbonflow.v1.msgpack")]);
        assert_eq!(admitted(&both, None).unwrap().1, Encoding::MessagePack);
        assert_eq!(
            admitted(&request("/v1/stream", &[("sec-websocket-protocol", "mqtt")]), None),
            Err(StatusCode::BAD_REQUEST)
        );

        for origin in ["null", "http://localhost:5173", "http://127.0.0.1", "http://[::1]:8000"] {
            assert!(admitted(&request("/v1/stream", &[("origin", origin)]), None).is_ok(), "{origin}");
        }
        for origin in ["https://evil.example", "http://localhost.evil.example", "http://127.0.0.1.nip.io:80"] {
            assert_eq!(
                admitted(&request("/v1/stream", &[("origin", origin)]), None),
                Err(StatusCode::FORBIDDEN),
                "{origin}"
            );
        }

        let auth = AuthConfig::parse("[[token]]\ntoken = \"t0k\"\nviews = [\"*\"]").unwrap();
        assert_eq!(admitted(&request("/v1/stream", &[]), Some(&auth)), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(
            admitted(&request("/v1/stream", &[("authorization", "Bearer nope")]), Some(&auth)),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert!(admitted(&request("/v1/stream", &[("authorization", "Bearer t0k")]), Some(&auth)).unwrap().2);
        let from_browser = request("/v1/stream?view=x&token=t0k", &[("origin", "https://desk.example")]);
        assert!(admitted(&from_browser, Some(&auth)).unwrap().2, "with tokens any origin may connect");
    }

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
            let (mut first, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
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
                let frame = first.next().await.unwrap().unwrap();
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
            match tokio_tungstenite::connect_async(url.as_str()).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE),
                other => panic!("a second connection: {:?}", other.map(|_| ())),
            }
        });
        server.shutdown(Duration::from_secs(1));
    }
}
