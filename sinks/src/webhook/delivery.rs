//! Delivery: one thread per endpoint, behind the outbox.
//!
//! The sink (on a dataflow worker) only writes messages to the outbox and
//! tells this loop about them; it never waits on the network. The loop runs
//! on its own thread with a single-threaded tokio runtime, so a slow or dead
//! endpoint holds up nothing but its own messages. It keeps the endpoint's
//! pending messages in memory, ordered by when they are due and then by the
//! order they were written, and sends those that are due, at most
//! `max-in-flight` requests at a time, `batch.size` messages a request,
//! spaced to `rate-limit`. Each request is signed afresh (the timestamp is
//! the attempt's). What each attempt did is decided by [`super::retry`] and
//! written to the outbox in the background, many attempts a transaction, so
//! disk syncs never delay a request.
//!
//! Each attempt counts into `carbonflow_webhook_attempts_total{sink, outcome}`
//! (`delivered`, `retry`, `dead`, `gone` for a 410 that disables the endpoint,
//! `failed` for a failure that leaves the message waiting on a disabled
//! endpoint), and `carbonflow_webhook_outbox_depth{sink}` follows the pending
//! messages, in flight or waiting.
//!
//! Delivery is at least once: an attempt the partner accepted is recorded
//! shortly after; if the process dies in between, the message is sent again
//! on the next run, with the same `webhook-id`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};

use carbonflow_core::metrics::{WEBHOOK_ATTEMPTS, WEBHOOK_OUTBOX_DEPTH};
use prometheus::IntGauge;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Client, Url};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::audit::{AttemptRecord, Outcome, snippet};
use super::event::{batch_body, batch_id};
use super::network::PublicOnlyResolver;
use super::options::BodyFormat;
use super::outbox::{Disabled, EndpointRecord, Outbox, OutboxError, Scheduled};
use super::retry::{EndpointHealth, Next, Reply, RetrySchedule, next_step, parse_retry_after};
use super::signature::{SigningSecret, sign};

/// What the delivery loop of one endpoint needs to know.
#[derive(Clone, Debug)]
pub(crate) struct DeliveryConfig {
    /// The endpoint's name (its sink table).
    pub(crate) endpoint: String,
    pub(crate) url: Url,
    pub(crate) secrets: Vec<SigningSecret>,
    pub(crate) format: BodyFormat,
    pub(crate) batch_size: usize,
    /// Requests per second, if limited.
    pub(crate) rate_limit: Option<f64>,
    pub(crate) timeout: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) schedule: RetrySchedule,
    pub(crate) disable_after: Duration,
    pub(crate) allow_private_network: bool,
}

/// What a drained delivery loop reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DrainReport {
    /// Messages delivered during this run.
    pub(crate) delivered: u64,
    /// Messages that died during this run.
    pub(crate) dead: u64,
    /// Messages still pending in the outbox.
    pub(crate) pending: usize,
    /// Why the endpoint is disabled, if it is.
    pub(crate) disabled: Option<String>,
    /// The first error writing the outbox, if any.
    pub(crate) failure: Option<String>,
}

enum Command {
    /// Messages just committed to the outbox.
    Enqueued(Vec<Scheduled>),
    /// Finish what can be finished by the deadline, then stop and report.
    Drain {
        deadline: Instant,
        done: std::sync::mpsc::Sender<DrainReport>,
    },
}

/// The sink's handle on its endpoint's delivery loop.
pub(crate) struct Delivery {
    commands: mpsc::UnboundedSender<Command>,
    thread: Option<thread::JoinHandle<()>>,
    /// The first error writing the outbox, set by the loop.
    failure: Arc<Mutex<Option<String>>>,
}

impl Delivery {
    /// Starts the loop of an endpoint whose health and pending messages the outbox holds.
    pub(crate) fn start(config: DeliveryConfig, outbox: Arc<Outbox>, record: &EndpointRecord, pending: Vec<Scheduled>) -> Result<Delivery, reqwest::Error> {
        let mut client = crate::http_client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .user_agent(concat!("carbonflow/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private_network {
            client = client.dns_resolver(PublicOnlyResolver);
        }
        let client = client.build()?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let failure = Arc::new(Mutex::new(None));
        let health = EndpointHealth {
            failing_since_ms: record.failing_since_ms,
            disabled: record.disabled.as_ref().map(|disabled| (disabled.at_ms, disabled.reason.clone())),
        };
        let mut dispatcher = Dispatcher {
            queue: BTreeMap::new(),
            requests: JoinSet::new(),
            in_flight: 0,
            depth: WEBHOOK_OUTBOX_DEPTH.with_label_values(&[config.endpoint.as_str()]),
            recording: None,
            unrecorded: Vec::new(),
            health_changed: false,
            url_shown: record.url.clone(),
            pacer: Pacer::new(config.rate_limit),
            report: DrainReport::default(),
            failure: failure.clone(),
            secrets: config.secrets.clone().into(),
            config,
            client,
            outbox,
            health,
        };
        for message in pending {
            dispatcher.schedule(message);
        }
        let thread = thread::Builder::new()
            .name(format!("webhook-{}", dispatcher.config.endpoint))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a single-threaded tokio runtime starts");
                runtime.block_on(dispatcher.run(receiver));
            })
            .expect("a delivery thread starts");
        Ok(Delivery {
            commands,
            thread: Some(thread),
            failure,
        })
    }

    /// Hands over messages just committed to the outbox.
    pub(crate) fn enqueued(&self, messages: Vec<Scheduled>) {
        // A send fails only if the loop has ended, which happens after `drain`.
        let _ = self.commands.send(Command::Enqueued(messages));
    }

    /// The first error the loop had writing the outbox.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().expect("delivery failure").clone()
    }

    /// Delivers what can be delivered within `timeout`, stops the loop and reports.
    pub(crate) fn drain(&mut self, timeout: Duration) -> DrainReport {
        let (done, report) = std::sync::mpsc::channel();
        let deadline = Instant::now() + timeout;
        let report = match self.commands.send(Command::Drain { deadline, done }) {
            Ok(()) => report.recv().unwrap_or_default(),
            Err(_) => DrainReport::default(),
        };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        report
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Not drained (the run failed): stop now; pending messages stay in the outbox.
            self.drain(Duration::ZERO);
        }
    }
}

/// A pending message waiting in memory for its turn.
struct Waiting {
    id: String,
    attempts: u32,
}

/// A message in a request under way.
struct InFlight {
    id: String,
    seq: u64,
    attempts: u32,
}

/// What a request got back.
struct Response {
    /// The messages it carried.
    messages: Vec<InFlight>,
    /// Its `webhook-id`.
    request: String,
    at_ms: i64,
    latency: Duration,
    status: Option<u16>,
    retry_after: Option<Duration>,
    body: String,
    error: Option<String>,
}

/// Spaces requests to a rate: the next may start at `next`, then one interval later.
struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(rate_per_second: Option<f64>) -> Pacer {
        Pacer {
            interval: rate_per_second.map(|rate| Duration::from_secs_f64(1.0 / rate)),
            next: Instant::now(),
        }
    }

    /// When the next request may start, if not now.
    fn wait_until(&self, now: Instant) -> Option<Instant> {
        (self.interval.is_some() && self.next > now).then_some(self.next)
    }

    fn take(&mut self, now: Instant) {
        if let Some(interval) = self.interval {
            self.next = self.next.max(now) + interval;
        }
    }
}

struct Dispatcher {
    config: DeliveryConfig,
    secrets: Arc<[SigningSecret]>,
    client: Client,
    outbox: Arc<Outbox>,
    /// Pending messages by (due time in Unix ms, write order).
    queue: BTreeMap<(i64, u64), Waiting>,
    requests: JoinSet<Response>,
    /// Messages in the requests under way.
    in_flight: usize,
    /// `carbonflow_webhook_outbox_depth` of this endpoint.
    depth: IntGauge,
    /// The outbox write under way, if any.
    recording: Option<JoinHandle<Result<(), OutboxError>>>,
    /// Attempts decided but not yet handed to an outbox write.
    unrecorded: Vec<AttemptRecord>,
    health: EndpointHealth,
    health_changed: bool,
    url_shown: String,
    pacer: Pacer,
    report: DrainReport,
    failure: Arc<Mutex<Option<String>>>,
}

impl Dispatcher {
    fn schedule(&mut self, message: Scheduled) {
        self.queue.insert(
            (message.due_ms, message.seq),
            Waiting {
                id: message.id,
                attempts: message.attempts,
            },
        );
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut draining: Option<(Instant, std::sync::mpsc::Sender<DrainReport>)> = None;
        loop {
            self.launch();
            self.start_recording();
            self.depth.set((self.queue.len() + self.in_flight) as i64);
            if let Some((deadline, _)) = &draining
                && self.drained(*deadline)
            {
                break;
            }
            let wake = [
                self.next_due(),
                self.pacer.wait_until(Instant::now()),
                draining.as_ref().map(|(deadline, _)| *deadline),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Enqueued(messages)) => messages.into_iter().for_each(|message| self.schedule(message)),
                    Some(Command::Drain { deadline, done }) => draining = Some((deadline, done)),
                    // The sink went away without draining: stop.
                    None => break,
                },
                Some(joined) = self.requests.join_next(), if !self.requests.is_empty() => {
                    let response = joined.expect("a request task does not panic");
                    self.settle(response);
                }
                Some(written) = wait_for(&mut self.recording), if self.recording.is_some() => {
                    self.recording = None;
                    self.note_failure(written);
                }
                () = sleep_until(wake), if wake.is_some() => {}
            }
        }
        // Requests still under way at the deadline are abandoned: their
        // messages stay pending and are sent again by the next run.
        self.requests.abort_all();
        if let Some(recording) = self.recording.take() {
            let written = recording.await.expect("an outbox write does not panic");
            self.note_failure(written);
        }
        if !self.unrecorded.is_empty() || self.health_changed {
            let attempts = std::mem::take(&mut self.unrecorded);
            let written = self.write(attempts);
            self.note_failure(written);
        }
        self.report.pending = self.queue.len() + self.requests.len();
        self.depth.set((self.queue.len() + self.in_flight) as i64);
        self.report.disabled = self.health.disabled.as_ref().map(|(_, reason)| reason.clone());
        self.report.failure = self.failure.lock().expect("delivery failure").clone();
        if let Some((_, done)) = draining {
            let _ = done.send(self.report);
        }
    }

    /// Whether a drain with this deadline is over: nothing left, nothing
    /// that can happen before the deadline, or the deadline passed.
    fn drained(&self, deadline: Instant) -> bool {
        let idle = self.requests.is_empty();
        let nothing_due_in_time = self.health.disabled.is_some() || self.next_due().is_none_or(|due| due > deadline);
        (idle && nothing_due_in_time) || Instant::now() >= deadline
    }

    /// When the first waiting message is due (none while the endpoint is disabled).
    fn next_due(&self) -> Option<Instant> {
        if self.health.disabled.is_some() {
            return None;
        }
        let (&(due_ms, _), _) = self.queue.first_key_value()?;
        let wait = u64::try_from(due_ms - now_ms()).unwrap_or(0);
        Some(Instant::now() + Duration::from_millis(wait))
    }

    /// Starts requests for due messages while slots and the rate allow.
    fn launch(&mut self) {
        while self.health.disabled.is_none() && self.requests.len() < self.config.max_in_flight {
            let now = Instant::now();
            if self.pacer.wait_until(now).is_some() {
                return;
            }
            let now_ms = now_ms();
            let mut messages = Vec::new();
            while messages.len() < self.config.batch_size
                && let Some(entry) = self.queue.first_entry()
                && entry.key().0 <= now_ms
            {
                let ((_, seq), waiting) = entry.remove_entry();
                messages.push(InFlight {
                    id: waiting.id,
                    seq,
                    attempts: waiting.attempts,
                });
            }
            if messages.is_empty() {
                return;
            }
            let (request, body) = match self.request_body(&messages) {
                Ok(request) => request,
                Err(error) => {
                    // The outbox cannot be read: put the messages back for the next run.
                    self.note_failure(Err(error));
                    for message in messages {
                        self.schedule(Scheduled {
                            id: message.id,
                            seq: message.seq,
                            attempts: message.attempts,
                            due_ms: i64::MAX,
                        });
                    }
                    return;
                }
            };
            self.pacer.take(now);
            self.in_flight += messages.len();
            let post = self
                .client
                .post(self.config.url.clone())
                .header(CONTENT_TYPE, self.config.format.content_type());
            self.requests.spawn(send(post, self.secrets.clone(), request, body, messages));
        }
    }

    /// The `webhook-id` and body of a request carrying `messages`.
    fn request_body(&self, messages: &[InFlight]) -> Result<(String, Vec<u8>), OutboxError> {
        if self.config.batch_size == 1 {
            return Ok((messages[0].id.clone(), self.outbox.body(&messages[0].id)?));
        }
        let bodies = messages.iter().map(|message| self.outbox.body(&message.id)).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<&str> = messages.iter().map(|message| message.id.as_str()).collect();
        let events: Vec<(&str, &[u8])> = ids.iter().copied().zip(bodies.iter().map(Vec::as_slice)).collect();
        Ok((batch_id(&ids), batch_body(self.config.format, &events)))
    }

    /// Decides what follows a response for each message it carried.
    fn settle(&mut self, response: Response) {
        let reply = match response.status {
            Some(status) if (200..300).contains(&status) => Reply::Success,
            Some(410) => Reply::Gone,
            _ => Reply::Failure {
                retry_after: response.retry_after,
            },
        };
        let was_disabled = self.health.disabled.is_some();
        let health_before = self.health.clone();
        let now_ms = now_ms();
        self.in_flight -= response.messages.len();
        for message in response.messages {
            let attempt = message.attempts + 1;
            let next = next_step(
                reply,
                attempt,
                &self.config.schedule,
                self.config.disable_after,
                &mut self.health,
                now_ms,
                &mut rand::rng(),
            );
            let label = match (next, reply) {
                (Next::Delivered, _) => "delivered",
                (Next::RetryAfter(_), _) => "retry",
                (Next::Dead, _) => "dead",
                (Next::Parked, Reply::Gone) => "gone",
                (Next::Parked, _) => "failed",
            };
            WEBHOOK_ATTEMPTS.with_label_values(&[self.config.endpoint.as_str(), label]).inc();
            let outcome = match next {
                Next::Delivered => {
                    self.report.delivered += 1;
                    Outcome::Delivered
                }
                Next::Dead => {
                    self.report.dead += 1;
                    Outcome::Dead
                }
                Next::RetryAfter(delay) => {
                    let at_ms = now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                    self.requeue(&message, attempt, at_ms);
                    Outcome::Retry { at_ms }
                }
                Next::Parked => {
                    self.requeue(&message, attempt, now_ms);
                    Outcome::Parked
                }
            };
            self.unrecorded.push(AttemptRecord {
                message: message.id,
                endpoint: self.config.endpoint.clone(),
                request: response.request.clone(),
                attempt,
                at_ms: response.at_ms,
                latency_us: u64::try_from(response.latency.as_micros()).unwrap_or(u64::MAX),
                status: response.status,
                response: response.body.clone(),
                error: response.error.clone(),
                outcome,
            });
        }
        self.health_changed |= self.health != health_before;
        if !was_disabled && let Some((_, reason)) = &self.health.disabled {
            eprintln!(
                "webhook '{}': endpoint {} disabled: {reason}; its messages wait in {} (re-enable with `carbonflow webhooks replay --outbox {} --endpoint {}`)",
                self.config.endpoint,
                self.url_shown,
                self.outbox.path().display(),
                self.outbox.path().display(),
                self.config.endpoint,
            );
        }
    }

    fn requeue(&mut self, message: &InFlight, attempts: u32, due_ms: i64) {
        self.schedule(Scheduled {
            id: message.id.clone(),
            seq: message.seq,
            attempts,
            due_ms,
        });
    }

    /// Hands the attempts decided so far to a background outbox write, unless one is under way.
    fn start_recording(&mut self) {
        if self.recording.is_some() || (self.unrecorded.is_empty() && !self.health_changed) {
            return;
        }
        let attempts = std::mem::take(&mut self.unrecorded);
        let outbox = self.outbox.clone();
        let endpoint = self.config.endpoint.clone();
        let record = self.endpoint_record();
        self.health_changed = false;
        self.recording = Some(tokio::task::spawn_blocking(move || outbox.record(&attempts, &[(&endpoint, &record)])));
    }

    /// Writes attempts and health now (when stopping).
    fn write(&mut self, attempts: Vec<AttemptRecord>) -> Result<(), OutboxError> {
        self.health_changed = false;
        self.outbox.record(&attempts, &[(&self.config.endpoint, &self.endpoint_record())])
    }

    fn endpoint_record(&self) -> EndpointRecord {
        EndpointRecord {
            url: self.url_shown.clone(),
            failing_since_ms: self.health.failing_since_ms,
            disabled: self.health.disabled.as_ref().map(|(at_ms, reason)| Disabled {
                at_ms: *at_ms,
                reason: reason.clone(),
            }),
        }
    }

    fn note_failure(&self, written: Result<(), OutboxError>) {
        if let Err(error) = written {
            self.failure.lock().expect("delivery failure").get_or_insert(error.to_string());
        }
    }
}

/// Sends one signed request and reads its response.
async fn send(post: reqwest::RequestBuilder, secrets: Arc<[SigningSecret]>, request: String, body: Vec<u8>, messages: Vec<InFlight>) -> Response {
    let at = SystemTime::now();
    let started = Instant::now();
    let timestamp = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let signature = sign(&secrets, &request, timestamp, &body);
    let sent = post
        .header("webhook-id", request.as_str())
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let mut response = Response {
        messages,
        request,
        at_ms: unix_ms(at),
        latency: Duration::ZERO,
        status: None,
        retry_after: None,
        body: String::new(),
        error: None,
    };
    match sent {
        Ok(mut reply) => {
            response.status = Some(reply.status().as_u16());
            response.retry_after = reply
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now()));
            let mut start = Vec::new();
            // Only the start of the body is kept; the rest is read (so the
            // connection can be reused) only while it is short.
            while start.len() < super::audit::RESPONSE_SNIPPET_BYTES {
                match reply.chunk().await {
                    Ok(Some(chunk)) => start.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(error) => {
                        response.error = Some(describe(&error));
                        break;
                    }
                }
            }
            response.body = snippet(&start);
        }
        Err(error) => response.error = Some(describe(&error)),
    }
    response.latency = started.elapsed();
    response
}

/// An HTTP error and its causes, without the URL (whose query may hold a token).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        String::from("request failed")
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn wait_for(recording: &mut Option<JoinHandle<Result<(), OutboxError>>>) -> Option<Result<(), OutboxError>> {
    match recording {
        Some(handle) => Some(handle.await.expect("an outbox write does not panic")),
        None => None,
    }
}

async fn sleep_until(wake: Option<Instant>) {
    if let Some(wake) = wake {
        tokio::time::sleep_until(wake).await;
    }
}

fn unix_ms(at: SystemTime) -> i64 {
    i64::try_from(at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(i64::MAX)
}

/// The wall clock, Unix milliseconds: due times survive restarts, so they are wall-clock times.
pub(crate) fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_spaces_requests_to_the_rate() {
        let mut pacer = Pacer::new(Some(10.0));
        let start = Instant::now();
        assert_eq!(pacer.wait_until(start), None);
        pacer.take(start);
        assert_eq!(pacer.wait_until(start), Some(start + Duration::from_millis(100)));
        pacer.take(start + Duration::from_millis(100));
        assert_eq!(pacer.wait_until(start + Duration::from_millis(150)), Some(start + Duration::from_millis(200)));
        let mut unlimited = Pacer::new(None);
        unlimited.take(start);
        assert_eq!(unlimited.wait_until(start), None);
    }
}
