//! A webhook receiver that verifies signatures with [`super::signature::verify`]
//! and can be told how to answer: for tests, benchmarks and the example
//! partner (feature `receiver`).
//!
//! It is a real HTTP/1.1 server (hyper) on a loopback port, on its own
//! thread. It answers a request whose signature does not verify with 401,
//! and any other with the next scripted reply ([`Receiver::reply_first`])
//! or else the standing one ([`Receiver::reply_with`], 200 at first). It
//! can go down (the port closes and open connections drop, so senders see
//! connection errors) and come back up on the same port. Every request is
//! kept, with what it was answered.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::signature::{DEFAULT_TOLERANCE, SigningSecret, VerifyError, WebhookHeaders, verify};

/// How the receiver answers a request that verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// This status, such as 200, 500 or 410.
    Status(u16),
    /// This status with `Retry-After: <seconds>`.
    StatusRetryAfter(u16, u64),
}

impl Reply {
    /// `200 OK`.
    pub const OK: Reply = Reply::Status(200);

    fn status(self) -> u16 {
        match self {
            Reply::Status(status) | Reply::StatusRetryAfter(status, _) => status,
        }
    }
}

/// A request the receiver got, and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, as sent.
    pub timestamp: String,
    /// `content-type`.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
    /// Whether the signature verified.
    pub verified: Result<(), VerifyError>,
    /// The status answered.
    pub status: u16,
    /// When the body had arrived.
    pub received_at: SystemTime,
}

impl ReceivedRequest {
    /// Whether the request was accepted: verified and answered 2xx.
    pub fn accepted(&self) -> bool {
        self.verified.is_ok() && (200..300).contains(&self.status)
    }
}

struct Script {
    first: VecDeque<Reply>,
    then: Reply,
    requests: Vec<ReceivedRequest>,
    subscribers: Vec<std::sync::mpsc::Sender<ReceivedRequest>>,
}

struct Shared {
    secrets: Vec<SigningSecret>,
    script: Mutex<Script>,
    /// Signalled on every request.
    arrived: Condvar,
}

impl Shared {
    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().expect("receiver script")
    }
}

/// A running receiver. Dropping it stops the server.
pub struct Receiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    server: Mutex<Option<JoinHandle<()>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port, verifying with `secrets`.
    pub fn start(secrets: Vec<SigningSecret>) -> io::Result<Receiver> {
        Receiver::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), secrets)
    }

    /// Starts a receiver on `address` (port 0 for a free one).
    pub fn start_on(address: SocketAddr, secrets: Vec<SigningSecret>) -> io::Result<Receiver> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let listener = handle.block_on(TcpListener::bind(address))?;
        let address = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("webhook-receiver".into()).spawn(move || {
            // Driving the runtime until told to stop runs the tasks spawned on it.
            let _ = runtime.block_on(stopped);
        })?;
        let shared = Arc::new(Shared {
            secrets,
            script: Mutex::new(Script {
                first: VecDeque::new(),
                then: Reply::OK,
                requests: Vec::new(),
                subscribers: Vec::new(),
            }),
            arrived: Condvar::new(),
        });
        let server = handle.spawn(serve(listener, shared.clone()));
        Ok(Receiver {
            address,
            shared,
            runtime: handle,
            server: Mutex::new(Some(server)),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL to post to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    /// Answers every later request that verifies with `reply` (after any scripted first replies).
    pub fn reply_with(&self, reply: Reply) {
        self.shared.script().then = reply;
    }

    /// Answers the next requests that verify with these replies, in order.
    pub fn reply_first(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script().first.extend(replies);
    }

    /// Closes the port and drops open connections: senders get connection errors.
    pub fn go_down(&self) {
        if let Some(server) = self.server.lock().expect("receiver server").take() {
            server.abort();
            // Wait until the listener is really closed.
            let _ = self.runtime.block_on(server);
        }
    }

    /// Listens again on the same port.
    pub fn come_up(&self) -> io::Result<()> {
        let mut server = self.server.lock().expect("receiver server");
        if server.is_none() {
            let listener = self.runtime.block_on(TcpListener::bind(self.address))?;
            *server = Some(self.runtime.spawn(serve(listener, self.shared.clone())));
        }
        Ok(())
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.script().requests.clone()
    }

    /// The requests accepted so far (verified and answered 2xx).
    pub fn accepted(&self) -> Vec<ReceivedRequest> {
        self.shared.script().requests.iter().filter(|request| request.accepted()).cloned().collect()
    }

    /// A channel that gets every later request as it is answered.
    pub fn subscribe(&self) -> std::sync::mpsc::Receiver<ReceivedRequest> {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.shared.script().subscribers.push(sender);
        receiver
    }

    /// Waits until `done` holds for the requests so far, or `timeout` passes; gives whether it held.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&[ReceivedRequest]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut script = self.shared.script();
        loop {
            if done(&script.requests) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            script = self.shared.arrived.wait_timeout(script, left).expect("receiver script").0;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.go_down();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until aborted; aborting drops the listener and,
/// with the join set, every open connection.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| answer(shared.clone(), request));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
    let header = |name: &str| parts.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let (id, timestamp, signature) = (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let verified = verify(
        &shared.secrets,
        WebhookHeaders {
            id: &id,
            timestamp: &timestamp,
            signature: &signature,
        },
        &body,
        now,
        DEFAULT_TOLERANCE,
    );
    let mut script = shared.script();
    let reply = match verified {
        Ok(()) => script.first.pop_front().unwrap_or(script.then),
        Err(_) => Reply::Status(401),
    };
    let received = ReceivedRequest {
        id,
        timestamp,
        content_type: header("content-type"),
        body: body.to_vec(),
        verified,
        status: reply.status(),
        received_at: SystemTime::now(),
    };
    script.subscribers.retain(|subscriber| subscriber.send(received.clone()).is_ok());
    script.requests.push(received);
    drop(script);
    shared.arrived.notify_all();
    let mut response = Response::builder().status(reply.status());
    if let Reply::StatusRetryAfter(_, seconds) = reply {
        response = response.header("retry-after", seconds.to_string());
    }
    let text = if (200..300).contains(&reply.status()) { "ok" } else { "not accepted" };
    Ok(response.body(Full::new(Bytes::from(text))).expect("a valid response"))
}
