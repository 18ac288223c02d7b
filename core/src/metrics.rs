//! The engine's Prometheus metrics, in one registry every crate writes to.
//!
//! The definitions live here, in the crate every other crate depends on, so a
//! source, a sink and the runtime count into the same families and the names
//! are written down once. `GET /metrics` renders [`render`]; the Grafana
//! dashboard in `k8s/` reads these names.
//!
//! Labels: `query` is the name a query file runs under (its file stem, or the
//! name given to `POST /v1/queries`); `source` and `sink` are table names
//! (`select` for a bare SELECT, the view name for a published view).

use std::sync::LazyLock;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

pub use prometheus::{Histogram, IntCounter};

/// The registry `/metrics` renders.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry::new_custom(Some("carbonflow".into()), None).expect("valid prefix"));

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
    REGISTRY.register(Box::new(metric.clone())).expect("registered once");
    metric
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
    REGISTRY.register(Box::new(metric.clone())).expect("registered once");
    metric
}

fn gauge(name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid gauge");
    REGISTRY.register(Box::new(metric.clone())).expect("registered once");
    metric
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    // 50 µs to about 3 s: the engine's latencies are sub-millisecond when
    // healthy and seconds when something is wrong.
    let buckets = prometheus::exponential_buckets(50e-6, 2.0, 17).expect("valid buckets");
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid histogram");
    REGISTRY.register(Box::new(metric.clone())).expect("registered once");
    metric
}

/// `carbonflow_source_rows_total{query, source}`: rows read from each source.
pub static SOURCE_ROWS: LazyLock<IntCounterVec> = LazyLock::new(|| counter("source_rows_total", "Rows read from a source table", &["query", "source"]));

/// `carbonflow_sink_changes_total{query, sink}`: changes (insertions and retractions) handed to each sink.
pub static SINK_CHANGES: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter("sink_changes_total", "Changes handed to a sink or published view", &["query", "sink"]));

/// `carbonflow_dead_letters_total{query, origin, reason}`: rows the engine could not use.
pub static DEAD_LETTERS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter("dead_letters_total", "Rows routed to the dead-letter output", &["query", "origin", "reason"]));

/// `carbonflow_late_events_total{query, origin}`: events behind the watermark, dropped (also dead letters).
pub static LATE_EVENTS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter("late_events_total", "Events that arrived behind the watermark", &["query", "origin"]));

/// `carbonflow_watermark_lag_seconds{query, source}`: wall clock minus the source's watermark.
pub static WATERMARK_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "watermark_lag_seconds",
        "Wall-clock time minus the source's event-time watermark, in seconds",
        &["query", "source"],
    )
});

/// `carbonflow_kafka_consumer_lag{query, source}`: messages between the consumer's position and the partitions' ends.
pub static KAFKA_CONSUMER_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "kafka_consumer_lag",
        "Messages not yet read from a Kafka source's assigned partitions",
        &["query", "source"],
    )
});

/// `carbonflow_operator_batch_seconds{query, operator}`: time an operator spent on one epoch's batch.
pub static OPERATOR_BATCH_SECONDS: LazyLock<HistogramVec> =
    LazyLock::new(|| histogram("operator_batch_seconds", "Time an operator spent on one epoch's input", &["query", "operator"]));

/// `carbonflow_ingest_to_emit_seconds{query, sink}`: from reading an epoch's rows to the sink receiving its changes.
pub static INGEST_TO_EMIT_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "ingest_to_emit_seconds",
        "Time from reading a batch at the source to its changes reaching a sink",
        &["query", "sink"],
    )
});

/// `carbonflow_queries{status}`: queries by status (`running`, `finished`, `failed`).
pub static QUERIES: LazyLock<IntGaugeVec> = LazyLock::new(|| gauge_vec("queries", "Queries known to this process, by status", &["status"]));

/// `carbonflow_websocket_connections`: open WebSocket connections.
pub static WEBSOCKET_CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| gauge("websocket_connections", "Open WebSocket connections"));

/// `carbonflow_websocket_subscriptions`: active subscriptions over all connections.
pub static WEBSOCKET_SUBSCRIPTIONS: LazyLock<IntGauge> = LazyLock::new(|| gauge("websocket_subscriptions", "Active WebSocket subscriptions"));

/// `carbonflow_websocket_slow_consumers_dropped_total`: connections closed for reading too slowly (close code 4008).
pub static WEBSOCKET_SLOW_CONSUMERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "websocket_slow_consumers_dropped_total",
        "WebSocket connections closed because they read too slowly",
        &[],
    )
});

/// `carbonflow_webhook_attempts_total{sink, outcome}`: delivery attempts by outcome
/// (`delivered`, `retry`, `gone`, `failed`, `dead`).
pub static WEBHOOK_ATTEMPTS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter("webhook_attempts_total", "Webhook delivery attempts by outcome", &["sink", "outcome"]));

/// `carbonflow_webhook_outbox_depth{sink}`: alerts in the outbox not yet delivered.
pub static WEBHOOK_OUTBOX_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| gauge_vec("webhook_outbox_depth", "Webhook alerts waiting in the outbox", &["sink"]));

/// Every metric in the Prometheus text format.
pub fn render() -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&REGISTRY.gather(), &mut buffer)
        .expect("the text encoder writes to memory");
    String::from_utf8(buffer).expect("the text format is UTF-8")
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_families_carry_the_prefix_and_labels() {
        SOURCE_ROWS.with_label_values(&["q", "ticks"]).inc_by(3);
        INGEST_TO_EMIT_SECONDS.with_label_values(&["q", "out"]).observe(0.002);
        let text = render();
        assert!(text.contains("carbonflow_source_rows_total{query=\"q\",source=\"ticks\"} 3"), "{text}");
        assert!(
            text.contains("carbonflow_ingest_to_emit_seconds_bucket{query=\"q\",sink=\"out\",le=\"0.0032\"} 1"),
            "{text}"
        );
    }
}
