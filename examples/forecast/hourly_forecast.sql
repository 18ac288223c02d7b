-- Day-ahead forecasts of three PJM hubs with the shipped ONNX model: for
-- every hour the watermark passes, the next 24 hourly prices per hub, as a
-- median and a p10-p90 band, from the last 168 hours (one week).
--
--   scripts/onnxruntime.sh    # once: ONNX Runtime into target/python-env
--   cargo run -- run examples/forecast/hourly_forecast.sql --no-server
--
-- Input: PJM day-ahead total LMPs (USD/MWh) of three hubs, 2025-06-01 to
-- 2025-06-10, hours in UTC (interval beginning), from PJM Data Miner 2
-- (../shared/data/markets/pjm/PROVENANCE.md). A revised price retracts and
-- re-issues every forecast whose week held it. See docs/forecast.md.

CREATE TABLE hourly (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/forecast/pjm_da_hubs.csv',
  'format' = 'csv'
);

SELECT node, forecast_time, horizon, target_time, forecast, p10, p50, p90
FROM TABLE(FORECAST(
  TABLE hourly PARTITION BY node,
  DESCRIPTOR(ts),
  DESCRIPTOR(price),
  MODEL => 'examples/models/price_forecaster.onnx',
  STEP => INTERVAL '1' HOUR,
  CONTEXT => 168));
