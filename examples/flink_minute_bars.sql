-- A Flink SQL job, unchanged: 1-minute bars from a header-less CSV.
--   cargo run --release -- run examples/flink_minute_bars.sql

CREATE TABLE ticks (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  volume BIGINT,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'examples/ticks.csv', 'format' = 'csv');

CREATE TABLE minute_bars (
  node STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3),
  n BIGINT, avg_price DOUBLE, low DOUBLE, high DOUBLE, volume BIGINT
) WITH ('connector' = 'filesystem', 'path' = 'target/minute_bars.csv', 'format' = 'csv');

INSERT INTO minute_bars
SELECT node, window_start, window_end, COUNT(*), AVG(price), MIN(price), MAX(price), SUM(volume)
FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTES))
GROUP BY node, window_start, window_end;
