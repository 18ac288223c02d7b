//! The webhook sink against a real HTTP receiver on loopback
//! ([`super::receiver`]), which verifies every signature with the library
//! verifier and can be told to be down, to fail, to answer 410 or to recover.
//! The outbox is read through the same handle the sink holds, as the sink
//! writes it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carbonflow_core::{DataType, Datum, Field, Schema};
use reqwest::Url;

use super::audit::{AttemptFilter, AttemptRecord, Outcome};
use super::outbox::{MessageState, ReplaySelection};
use super::receiver::{Receiver, Reply};
use super::signature::SigningSecret;
use super::*;
use crate::{create_sink, validate_sink};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

fn secrets() -> Vec<SigningSecret> {
    SigningSecret::parse_list(SECRET).unwrap()
}

/// A declaration from option pairs (a later pair overrides an earlier one).
pub(super) fn declaration(table: &str, schema: Schema, options: &[(&str, &str)]) -> ConnectorConfig {
    ConnectorConfig {
        table: table.into(),
        schema,
        event_time_column: None,
        primary_key: None,
        options: options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

fn config(table: &str, url: &str, outbox: &Path, options: &[(&str, &str)]) -> ConnectorConfig {
    let mut all = vec![
        ("connector", "webhook"),
        ("url", url),
        ("secret", SECRET),
        ("outbox", outbox.to_str().unwrap()),
        ("allow-private-network", "true"),
        ("drain-timeout", "20 s"),
    ];
    all.extend_from_slice(options);
    let schema = Schema::new(vec![
        Field::new("node", DataType::String),
        Field::new("ts", DataType::Timestamp),
        Field::new("price", DataType::Float),
    ]);
    declaration(table, schema, &all)
}

/// A temporary outbox and a receiver, for sinks of a table `alerts`.
struct Fixture {
    _dir: tempfile::TempDir,
    outbox_path: PathBuf,
    receiver: Receiver,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        Fixture {
            outbox_path: dir.path().join("outbox.redb"),
            _dir: dir,
            receiver: Receiver::start(secrets()).unwrap(),
        }
    }

    fn sink(&self, options: &[(&str, &str)]) -> WebhookSink {
        WebhookSink::new(&config("alerts", &self.receiver.url(), &self.outbox_path, options)).unwrap()
    }

    /// The outbox, shared with any sink that has it open.
    fn outbox(&self) -> Arc<Outbox> {
        Outbox::open(&self.outbox_path).unwrap()
    }
}

fn alert(node: usize, price: f64) -> Row {
    Row::new(vec![
        Datum::string(&format!("N{node}")),
        Datum::Timestamp(1_704_067_200_000 + node as i64),
        Datum::float(price),
    ])
}

fn alerts(count: usize) -> Vec<(Row, Diff)> {
    (0..count).map(|node| (alert(node, 100.0 + node as f64), 1)).collect()
}

fn ids(requests: &[receiver::ReceivedRequest]) -> Vec<String> {
    requests.iter().map(|request| request.id.clone()).collect()
}

fn attempts(outbox: &Outbox, message: &str) -> Vec<AttemptRecord> {
    outbox
        .attempts(&AttemptFilter {
            message: Some(message.into()),
            ..AttemptFilter::default()
        })
        .unwrap()
}

#[test]
fn every_alert_arrives_once_signed_and_audited() {
    let fixture = Fixture::new();
    let receiver = &fixture.receiver;
    let mut sink = fixture.sink(&[]);
    sink.on_batch(1, &alerts(5)).unwrap();
    sink.on_batch(2, &[(alert(9, 250.5), 1), (alert(0, 100.0), -1)]).unwrap();
    sink.finish().unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 6, "five alerts, one more, and no retraction");
    assert!(requests.iter().all(|request| request.accepted() && request.content_type == "application/json"));
    let bodies: BTreeSet<String> = requests.iter().map(|request| String::from_utf8(request.body.clone()).unwrap()).collect();
    assert!(bodies.contains(r#"{"node":"N9","ts":"2024-01-01 00:00:00.009","price":250.5}"#), "{bodies:?}");
    let outbox = fixture.outbox();
    let messages = outbox.messages().unwrap();
    assert_eq!(
        messages.iter().map(|(id, _)| id.clone()).collect::<BTreeSet<_>>(),
        ids(&requests).into_iter().collect()
    );
    for (id, record) in &messages {
        assert_eq!(record.state, MessageState::Delivered);
        let trail = attempts(&outbox, id);
        assert_eq!(trail.len(), 1);
        assert_eq!(
            (trail[0].status, trail[0].outcome, trail[0].response.as_str()),
            (Some(200), Outcome::Delivered, "ok")
        );
    }
}

#[test]
fn a_receiver_down_then_failing_then_recovered_gets_every_alert_once() {
    let fixture = Fixture::new();
    let receiver = &fixture.receiver;
    receiver.go_down();
    let schedule = format!("0 ms{}", ", 50 ms".repeat(200));
    let mut sink = fixture.sink(&[("retry.schedule", &schedule)]);
    sink.on_batch(1, &alerts(8)).unwrap();
    let outbox = fixture.outbox();
    let all_failed = |outbox: &Outbox, check: &dyn Fn(&AttemptRecord) -> bool| {
        let failed: BTreeSet<String> = outbox
            .attempts(&AttemptFilter::default())
            .unwrap()
            .into_iter()
            .filter(|a| check(a))
            .map(|a| a.message)
            .collect();
        failed.len() == 8
    };
    assert!(
        wait_for(|| all_failed(&outbox, &|attempt| attempt.status.is_none() && attempt.error.is_some())),
        "connection errors are recorded"
    );
    receiver.reply_with(Reply::Status(500));
    receiver.come_up().unwrap();
    assert!(receiver.wait_until(WAIT, |requests| requests.iter().map(|r| &r.id).collect::<BTreeSet<_>>().len() == 8));
    assert!(wait_for(|| all_failed(&outbox, &|attempt| attempt.status == Some(500))), "500s are recorded");
    receiver.reply_with(Reply::OK);
    sink.finish().unwrap();

    let accepted = receiver.accepted();
    let distinct: BTreeSet<String> = ids(&accepted).into_iter().collect();
    assert_eq!((accepted.len(), distinct.len()), (8, 8), "every alert once");
    for (id, record) in outbox.messages().unwrap() {
        assert_eq!(record.state, MessageState::Delivered);
        let trail = attempts(&outbox, &id);
        // The trail shows every attempt: each request the receiver answered,
        // and before those the ones that found no receiver.
        let answered = receiver.requests().iter().filter(|request| request.id == id).count();
        assert_eq!(trail.iter().filter(|attempt| attempt.status.is_some()).count(), answered);
        assert!(
            trail
                .iter()
                .any(|attempt| attempt.error.as_deref().is_some_and(|error| error.contains("request failed")))
        );
        assert_eq!(trail.last().unwrap().outcome, Outcome::Delivered);
        assert!(trail[..trail.len() - 1].iter().all(|attempt| matches!(attempt.outcome, Outcome::Retry { .. })));
        assert_eq!(
            trail.iter().map(|attempt| attempt.attempt).collect::<Vec<_>>(),
            (1..=trail.len() as u32).collect::<Vec<_>>()
        );
    }
}

#[test]
fn gone_disables_the_endpoint_until_a_replay() {
    let fixture = Fixture::new();
    let receiver = &fixture.receiver;
    receiver.reply_with(Reply::Status(410));
    let options = [("max-in-flight", "1")];
    let mut sink = fixture.sink(&options);
    sink.on_batch(1, &alerts(3)).unwrap();
    sink.finish().unwrap();
    drop(sink);
    assert_eq!(receiver.requests().len(), 1, "nothing is sent after the 410");
    {
        let outbox = fixture.outbox();
        let endpoint = &outbox.endpoints().unwrap()[0];
        assert_eq!(
            endpoint.record.disabled.as_ref().map(|d| d.reason.as_str()),
            Some("the endpoint answered 410 Gone")
        );
        assert_eq!(endpoint.messages.get(&MessageState::Pending), Some(&3));
        assert_eq!(outbox.attempts(&AttemptFilter::default()).unwrap()[0].outcome, Outcome::Parked);
    }
    // A new run keeps the endpoint disabled.
    receiver.reply_with(Reply::OK);
    let mut sink = fixture.sink(&options);
    sink.finish().unwrap();
    assert_eq!(receiver.requests().len(), 1);
    let report = fixture.outbox().replay(&ReplaySelection::Endpoint("alerts".into()), 0).unwrap();
    assert_eq!((report.messages, report.enabled), (0, vec!["alerts".to_owned()]));
    drop(sink);
    let mut sink = fixture.sink(&options);
    sink.finish().unwrap();
    assert_eq!(receiver.accepted().len(), 3);
}

#[test]
fn exhausted_messages_are_dead_letters_that_a_replay_delivers() {
    let fixture = Fixture::new();
    let receiver = &fixture.receiver;
    receiver.reply_with(Reply::Status(500));
    let options = [("retry.schedule", "0 ms, 20 ms")];
    let mut sink = fixture.sink(&options);
    sink.on_batch(1, &alerts(2)).unwrap();
    sink.finish().unwrap();
    drop(sink);
    {
        let outbox = fixture.outbox();
        for (id, record) in outbox.messages().unwrap() {
            assert_eq!((record.state, record.attempts), (MessageState::Dead, 2));
            let outcomes: Vec<Outcome> = attempts(&outbox, &id).iter().map(|attempt| attempt.outcome).collect();
            assert!(matches!(outcomes.as_slice(), [Outcome::Retry { .. }, Outcome::Dead]), "{outcomes:?}");
        }
        assert_eq!(outbox.replay(&ReplaySelection::AllDead, 0).unwrap().messages, 2);
    }
    assert_eq!(receiver.accepted().len(), 0);
    receiver.reply_with(Reply::OK);
    let mut sink = fixture.sink(&options);
    sink.finish().unwrap();
    assert_eq!(receiver.accepted().len(), 2);
}

#[test]
fn replaying_the_input_sends_nothing_twice() {
    let fixture = Fixture::new();
    let receiver = &fixture.receiver;
    for _ in 0..2 {
        let mut sink = fixture.sink(&[]);
        sink.on_batch(1, &alerts(4)).unwrap();
        sink.on_batch(2, &[(alert(7, 300.0), 1)]).unwrap();
        sink.finish().unwrap();
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(ids(&requests).into_iter().collect::<BTreeSet<_>>().len(), 5);
}

#[test]
fn attempts_are_counted_by_outcome_and_the_depth_follows_the_pending_alerts() {
    use carbonflow_core::metrics::{WEBHOOK_ATTEMPTS, WEBHOOK_OUTBOX_DEPTH};
    let fixture = Fixture::new();
    let receiver = &fixture.receiver;
    // Metrics are per process: a table of its own keeps this test's counts apart.
    let table = carbonflow_sources::kafka::testkit::unique_topic("counted");
    let sink = |options: &[(&str, &str)]| WebhookSink::new(&config(&table, &receiver.url(), &fixture.outbox_path, options)).unwrap();
    let attempts = |outcome: &str| WEBHOOK_ATTEMPTS.with_label_values(&[table.as_str(), outcome]).get();
    let depth = WEBHOOK_OUTBOX_DEPTH.with_label_values(&[table.as_str()]);

    receiver.go_down();
    let schedule = format!("0 ms{}", ", 50 ms".repeat(200));
    let mut retrying = sink(&[("retry.schedule", &schedule)]);
    retrying.on_batch(1, &alerts(3)).unwrap();
    assert!(wait_for(|| attempts("retry") >= 3), "every alert failed at least once");
    assert_eq!(depth.get(), 3, "all three wait");
    receiver.reply_with(Reply::OK);
    receiver.come_up().unwrap();
    retrying.finish().unwrap();
    drop(retrying);
    assert_eq!((attempts("delivered"), depth.get()), (3, 0));

    receiver.reply_with(Reply::Status(500));
    let mut dying = sink(&[("retry.schedule", "0 ms")]);
    dying.on_batch(2, &[(alert(7, 300.0), 1)]).unwrap();
    dying.finish().unwrap();
    drop(dying);
    assert_eq!((attempts("dead"), depth.get()), (1, 0), "a dead alert no longer waits");

    receiver.reply_with(Reply::Status(410));
    let mut gone = sink(&[("max-in-flight", "1")]);
    gone.on_batch(3, &[(alert(8, 300.0), 1), (alert(9, 300.0), 1)]).unwrap();
    gone.finish().unwrap();
    assert_eq!(
        (attempts("gone"), attempts("failed"), depth.get()),
        (1, 0, 2),
        "parked on the disabled endpoint"
    );
}

#[test]
fn retry_after_delays_the_next_attempt() {
    let fixture = Fixture::new();
    let receiver = &fixture.receiver;
    receiver.reply_first([Reply::StatusRetryAfter(503, 1)]);
    let mut sink = fixture.sink(&[("retry.schedule", "0 ms, 10 ms, 5 s")]);
    sink.on_batch(1, &alerts(1)).unwrap();
    sink.finish().unwrap();
    assert_eq!(receiver.accepted().len(), 1);
    let trail = fixture.outbox().attempts(&AttemptFilter::default()).unwrap();
    let Outcome::Retry { at_ms } = trail[0].outcome else {
        panic!("the 503 is retried: {trail:?}")
    };
    assert!(at_ms - trail[0].at_ms >= 1_000, "Retry-After: 1 outweighs the 10 ms of the schedule");
    assert!(trail[1].at_ms >= at_ms);
}

#[test]
fn batches_of_msgpack_events_carry_each_id() {
    let fixture = Fixture::new();
    let receiver = &fixture.receiver;
    receiver.go_down();
    let options = [
        ("batch.size", "4"),
        ("format", "msgpack"),
        ("retry.schedule", "0 ms, 100 ms, 100 ms, 100 ms, 100 ms, 100 ms"),
    ];
    let mut sink = fixture.sink(&options);
    // Enqueued while the receiver is down, so that retries gather them into batches.
    sink.on_batch(1, &alerts(10)).unwrap();
    receiver.come_up().unwrap();
    sink.finish().unwrap();
    let mut delivered = Vec::new();
    for request in receiver.accepted() {
        assert_eq!(request.content_type, "application/msgpack");
        let events: Vec<serde_json::Value> = rmp_serde::from_slice(&request.body).unwrap();
        assert!(!events.is_empty() && events.len() <= 4);
        let members: Vec<&str> = events.iter().map(|event| event["id"].as_str().unwrap()).collect();
        assert_eq!(request.id, event::batch_id(&members));
        delivered.extend(
            events
                .iter()
                .map(|event| (event["id"].as_str().unwrap().to_owned(), event["data"]["node"].as_str().unwrap().to_owned())),
        );
    }
    let outbox = fixture.outbox();
    let expected: BTreeSet<String> = outbox.messages().unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(delivered.len(), 10);
    assert_eq!(delivered.iter().map(|(id, _)| id.clone()).collect::<BTreeSet<_>>(), expected);
}

#[test]
fn the_rate_limit_spaces_requests() {
    let fixture = Fixture::new();
    let mut sink = fixture.sink(&[("rate-limit", "20/s")]);
    sink.on_batch(1, &alerts(4)).unwrap();
    sink.finish().unwrap();
    let mut starts: Vec<i64> = fixture.outbox().attempts(&AttemptFilter::default()).unwrap().iter().map(|a| a.at_ms).collect();
    starts.sort_unstable();
    assert_eq!(starts.len(), 4);
    // 20 requests a second: 50 ms apart at least (a millisecond of rounding allowed).
    assert!(starts.windows(2).all(|pair| pair[1] - pair[0] >= 49), "{starts:?}");
}

#[test]
fn a_hung_endpoint_holds_up_neither_the_dataflow_nor_other_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections and never answers.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_url = format!("http://{}/hook", hung.local_addr().unwrap());
    let receiver = Receiver::start(secrets()).unwrap();
    let shared_outbox = dir.path().join("outbox.redb");
    let mut stuck = WebhookSink::new(&config("stuck", &hung_url, &shared_outbox, &[("timeout", "1 min"), ("drain-timeout", "0 s")])).unwrap();
    let mut healthy = WebhookSink::new(&config("healthy", &receiver.url(), &shared_outbox, &[])).unwrap();
    for epoch in 1..=20 {
        // Returns once the messages are in the outbox, whatever the endpoint does.
        stuck.on_batch(epoch, &[(alert(epoch as usize, 1.0), 1)]).unwrap();
        healthy.on_batch(epoch, &[(alert(epoch as usize, 1.0), 1)]).unwrap();
    }
    assert!(receiver.wait_until(WAIT, |requests| requests.len() == 20));
    let outbox = Outbox::open(&shared_outbox).unwrap();
    let stuck_attempts = AttemptFilter {
        endpoint: Some("stuck".into()),
        ..AttemptFilter::default()
    };
    assert!(outbox.attempts(&stuck_attempts).unwrap().is_empty(), "its requests are still waiting");
    healthy.finish().unwrap();
    stuck.finish().unwrap();
    let endpoints = outbox.endpoints().unwrap();
    assert_eq!(
        endpoints.iter().map(|e| (e.name.as_str(), e.messages.clone())).collect::<Vec<_>>(),
        [
            ("healthy", BTreeMap::from([(MessageState::Delivered, 20)])),
            ("stuck", BTreeMap::from([(MessageState::Pending, 20)])),
        ]
    );
}

#[test]
fn a_loopback_url_is_refused_without_the_allow_option() {
    let dir = tempfile::tempdir().unwrap();
    let outbox_path = dir.path().join("outbox.redb");
    let mut options = config("alerts", "http://127.0.0.1:8080/hook", &outbox_path, &[]);
    options.options.remove("allow-private-network");
    let error = validate_sink(&options).unwrap_err();
    assert_eq!(error.option_key(), Some("url"));
    assert!(error.to_string().contains("allow-private-network"), "{error}");
    assert!(matches!(create_sink(&options), Err(SinkError::Declaration(_))));
    assert!(!outbox_path.exists(), "nothing is created for a refused declaration");
}

#[test]
fn delivery_refuses_names_that_resolve_to_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(secrets()).unwrap();
    let outbox = Outbox::open(&dir.path().join("outbox.redb")).unwrap();
    // `localhost` is refused at declaration; this builds the delivery loop
    // directly to show that the check at connection time holds by itself.
    let url = Url::parse(&format!("http://localhost:{}/hook", receiver.address().port())).unwrap();
    let record = outbox.register_endpoint("alerts", url.as_str()).unwrap();
    let config = delivery::DeliveryConfig {
        endpoint: "alerts".into(),
        url,
        secrets: secrets(),
        format: BodyFormat::Json,
        batch_size: 1,
        rate_limit: None,
        timeout: Duration::from_secs(5),
        max_in_flight: 1,
        schedule: retry::RetrySchedule::parse("0 ms").unwrap(),
        disable_after: Duration::from_secs(3_600),
        allow_private_network: false,
    };
    let mut delivery = Delivery::start(config, outbox.clone(), &record, Vec::new()).unwrap();
    let message = event::NewMessage {
        id: "msg_0".into(),
        body: b"{}".to_vec(),
    };
    delivery.enqueued(outbox.enqueue("alerts", now_ms(), &[message]).unwrap());
    let report = delivery.drain(WAIT);
    assert_eq!((report.dead, report.delivered), (1, 0));
    assert!(receiver.requests().is_empty());
    let error = outbox.attempts(&AttemptFilter::default()).unwrap()[0].error.clone().unwrap();
    assert!(error.contains("not a public address"), "{error}");
}

#[test]
fn secrets_stay_out_of_errors_and_debug_output() {
    let fixture = Fixture::new();
    let receiver = &fixture.receiver;
    let config = config("alerts", &receiver.url(), &fixture.outbox_path, &[]);
    assert!(!format!("{config:?}").contains("MfKQ9r8G"));
    let mut broken = config.clone();
    broken.options.insert("secret".into(), "whsec_MfKQ9r8GKYqrTwjUPD8".into());
    let error = create_sink(&broken).err().unwrap();
    assert!(!error.to_string().contains("MfKQ9r8G") && !format!("{error:?}").contains("MfKQ9r8G"), "{error}");
}

/// Polls `done` until it holds or [`WAIT`] passes.
fn wait_for(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}
