//! The `webhook` connector: alerts to partners as signed HTTPS POSTs, with
//! a durable outbox, retries and an audit trail.
//!
//! ```sql
//! CREATE TABLE partner_alerts (
//!   node STRING, ts TIMESTAMP(3), price DOUBLE,
//!   PRIMARY KEY (node, ts) NOT ENFORCED
//! ) WITH (
//!   'connector' = 'webhook',
//!   'url' = 'https://partner.example.com/carbonflow',
//!   'secret' = '${PARTNER_WEBHOOK_SECRET}',
//!   'outbox' = 'state/partner_alerts.redb'
//! );
//! INSERT INTO partner_alerts SELECT node, ts, price FROM ticks WHERE price > 250;
//! ```
//!
//! Each change to the table becomes a message ([`event`]: which changes,
//! their deterministic ids, their bodies). [`WebhookSink::on_batch`] writes
//! the epoch's messages to the outbox ([`outbox`]) and commits before it
//! returns, and hands them to the endpoint's delivery loop ([`delivery`]),
//! which runs on its own thread: the dataflow never waits on a partner.
//! Requests carry Standard Webhooks signatures ([`signature`], which also
//! holds the verifier partners can use); failures are retried on a schedule
//! with jitter, endpoints that answer `410 Gone` or keep failing are
//! disabled, and exhausted messages are dead letters an operator can replay
//! ([`retry`]). Every attempt is recorded ([`audit`]) and listed by
//! `carbonflow webhooks log|status|replay`. URLs that reach loopback,
//! private or link-local addresses are refused unless allowed ([`network`]).
//!
//! The options are documented on [`WebhookSinkOptions`]; the whole story,
//! for operators and partners, is `docs/webhooks.md`.

pub mod audit;
pub mod delivery;
pub mod event;
pub mod network;
pub mod options;
pub mod outbox;
#[cfg(any(test, feature = "receiver"))]
pub mod receiver;
pub mod retry;
pub mod signature;

pub use options::{BodyFormat, Retractions, WebhookSinkOptions};

use std::sync::Arc;
use std::time::Duration;

use carbonflow_core::{ConnectorConfig, Diff, Epoch, Row};

use self::delivery::{Delivery, DeliveryConfig, now_ms};
use self::event::EventEncoder;
use self::network::redacted_url;
use self::outbox::Outbox;
use crate::text::PrintRow;
use crate::{Sink, SinkError};

/// Delivers a table's changes to a partner's endpoint.
pub struct WebhookSink {
    table: String,
    columns: usize,
    outbox: Arc<Outbox>,
    encoder: EventEncoder,
    delivery: Delivery,
    drain_timeout: Duration,
}

impl WebhookSink {
    /// Opens the table's outbox (creating it), prunes delivered messages past
    /// their retention, and starts delivering what it holds pending.
    pub fn new(config: &ConnectorConfig) -> Result<WebhookSink, SinkError> {
        let options = WebhookSinkOptions::parse(config)?;
        let outbox = Outbox::open(&options.outbox)?;
        let retention_ms = i64::try_from(options.retention.as_millis()).unwrap_or(i64::MAX);
        outbox.prune(now_ms().saturating_sub(retention_ms))?;
        let url = redacted_url(&options.url);
        let record = outbox.register_endpoint(&config.table, &url)?;
        let pending = outbox.pending(&config.table)?;
        if let Some(disabled) = &record.disabled {
            eprintln!(
                "webhook '{}': endpoint {url} is disabled ({}); {} messages wait in {} (re-enable with `carbonflow webhooks replay --outbox {} --endpoint {}`)",
                config.table,
                disabled.reason,
                pending.len(),
                options.outbox.display(),
                options.outbox.display(),
                config.table,
            );
        }
        let delivery_config = DeliveryConfig {
            endpoint: config.table.clone(),
            url: options.url.clone(),
            secrets: options.secrets.clone(),
            format: options.format,
            batch_size: options.batch_size,
            rate_limit: options.rate_limit,
            timeout: options.timeout,
            max_in_flight: options.max_in_flight,
            schedule: options.retry_schedule.clone(),
            disable_after: options.disable_after,
            allow_private_network: options.allow_private_network,
        };
        let delivery = Delivery::start(delivery_config, outbox.clone(), &record, pending).map_err(|error| SinkError::Io {
            path: url,
            message: format!("cannot build the HTTP client: {error}"),
        })?;
        Ok(WebhookSink {
            table: config.table.clone(),
            columns: config.schema.len(),
            encoder: EventEncoder::new(&config.table, &config.schema, config.primary_key.clone(), options.format, options.retractions),
            outbox,
            delivery,
            drain_timeout: options.drain_timeout,
        })
    }

    fn delivery_failure(&self) -> Result<(), SinkError> {
        match self.delivery.failure() {
            Some(message) => Err(SinkError::Io {
                path: self.outbox.path().display().to_string(),
                message,
            }),
            None => Ok(()),
        }
    }
}

impl Sink for WebhookSink {
    fn on_batch(&mut self, _epoch: Epoch, updates: &[(Row, Diff)]) -> Result<(), SinkError> {
        self.delivery_failure()?;
        if let Some((row, _)) = updates.iter().find(|(row, _)| row.len() != self.columns) {
            return Err(SinkError::Inconsistent {
                sink: self.table.clone(),
                message: format!("row {} has {} columns, the table has {}", PrintRow(row), row.len(), self.columns),
            });
        }
        let messages = self.encoder.messages(updates);
        if messages.is_empty() {
            return Ok(());
        }
        let added = self.outbox.enqueue(&self.table, now_ms(), &messages)?;
        if !added.is_empty() {
            self.delivery.enqueued(added);
        }
        Ok(())
    }

    /// Waits up to `drain-timeout` for pending deliveries; what is still
    /// pending then stays in the outbox for the next run.
    fn finish(&mut self) -> Result<(), SinkError> {
        let report = self.delivery.drain(self.drain_timeout);
        if report.pending > 0 || report.dead > 0 || report.disabled.is_some() {
            let disabled = report.disabled.map(|reason| format!("; endpoint disabled: {reason}")).unwrap_or_default();
            eprintln!(
                "webhook '{}': {} delivered, {} dead, {} pending in {}{disabled}",
                self.table,
                report.delivered,
                report.dead,
                report.pending,
                self.outbox.path().display()
            );
        }
        match report.failure {
            Some(message) => Err(SinkError::Io {
                path: self.outbox.path().display().to_string(),
                message,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
