-- Day-ahead forecasts from a 5-minute real-time feed: the ticks of three PJM
-- hubs are averaged into hourly prices, and the shipped ONNX model forecasts
-- the next 24 hours of each hub from its last 168 hourly averages.
--
--   scripts/onnxruntime.sh    # once: ONNX Runtime into target/python-env
--   cargo run -- run examples/forecast/hourly_from_5min.sql --no-server
--
-- The hourly view keeps `window_time` (grouped by it) as its time attribute,
-- so FORECAST can read it: an hour's average counts once the watermark
-- passes the hour's last instant (hh:59:59.999, its forecast_time). The
-- simulator revises about one tick in 100 up to 15 minutes later; a revision
-- corrects its hour's average, and when the forecasts from that hour were
-- already out it retracts and re-issues them (within the allowed lateness).

SET 'table.exec.emit.allowed-lateness' = '1 h';

CREATE TABLE ticks (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  PRIMARY KEY (node, ts) NOT ENFORCED,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'simulator',
  'seed' = '4',
  'nodes' = '3',
  'markets' = 'PJM',
  'interval' = '5 min',
  'start' = '2024-06-01 00:00:00',
  'number-of-rows' = '6912',
  'revision-probability' = '0.01'
);

CREATE VIEW hourly AS
SELECT node, window_time AS hour_time, AVG(price) AS price
FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' HOUR))
GROUP BY node, window_start, window_end, window_time;

SELECT node, forecast_time, horizon, target_time, forecast, p10, p50, p90
FROM TABLE(FORECAST(
  TABLE hourly PARTITION BY node,
  DESCRIPTOR(hour_time),
  DESCRIPTOR(price),
  MODEL => 'examples/models/price_forecaster.onnx',
  STEP => INTERVAL '1' HOUR,
  CONTEXT => 168));
