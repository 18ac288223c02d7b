-- Price spikes pushed to a partner as signed webhooks.
--
--   WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
--     cargo run -p carbonflow-sinks --features receiver --example webhook_receiver -- 8787
--   WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
--     cargo run --release -- run examples/webhook_receiver/partner_alerts.sql
--   cargo run --release -- webhooks status --outbox target/partner_alerts.redb
--
-- Each simulated tick above 100 $/MWh becomes one alert, delivered through
-- the outbox in target/: stop the receiver half-way and start it again, or
-- kill the run and start it again, and every alert still arrives once.
-- The receiver listens on loopback, hence 'allow-private-network'; a real
-- partner's https URL needs no such option.

CREATE TABLE ticks (
  market STRING,
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE
) WITH (
  'connector' = 'simulator',
  'nodes' = '200',
  'number-of-rows' = '20000',
  'rows-per-second' = '2000'
);

CREATE TABLE partner_alerts (
  market STRING,
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  PRIMARY KEY (node, ts) NOT ENFORCED
) WITH (
  'connector' = 'webhook',
  'url' = 'http://127.0.0.1:8787/hook',
  'secret' = '${WEBHOOK_SECRET}',
  'outbox' = 'target/partner_alerts.redb',
  'allow-private-network' = 'true',
  'retry.schedule' = '0 s, 1 s, 5 s, 30 s',
  'drain-timeout' = '40 s'
);

INSERT INTO partner_alerts
SELECT market, node, ts, price FROM ticks WHERE price > 100;
