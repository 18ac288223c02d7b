-- Price spikes with MATCH_RECOGNIZE: a price that rises to more than 1.5x
-- its starting level within 10 minutes, per node.
--
--   cargo run --release -- run queries/price_spike.sql
--
-- B+ is greedy: when later ticks extend a spike, the shorter match already
-- printed is retracted (-D) and the longer one inserted (+I), as every
-- carbonflow view corrects itself. Run with --batch-size 1 to watch it.

CREATE TABLE ticks (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE
) WITH (
  'connector' = 'filesystem',
  'path' = 'queries/data/spikes.csv',
  'format' = 'csv'
);

SELECT *
FROM ticks
MATCH_RECOGNIZE (
  PARTITION BY node
  ORDER BY ts
  MEASURES
    A.ts AS spike_start,
    C.ts AS spike_peak,
    A.price AS base_price,
    C.price AS peak_price,
    COUNT(B.price) AS ticks_between
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (A B+ C) WITHIN INTERVAL '10' MINUTE
  DEFINE C AS C.price > 1.5 * A.price
) AS spikes;
