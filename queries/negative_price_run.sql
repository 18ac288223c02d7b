-- Negative-price runs with MATCH_RECOGNIZE: three or more consecutive
-- 5-minute intervals below zero, per node (curtailment and must-run
-- oversupply show up this way in real-time markets).
--
--   cargo run --release -- run queries/negative_price_run.sql
--
-- N{3,} is greedy: a run that is still going when more ticks arrive is
-- corrected (-D, +I) as it grows.

CREATE TABLE ticks (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH (
  'connector' = 'filesystem',
  'path' = 'queries/data/negative_prices.csv',
  'format' = 'csv'
);

SELECT *
FROM ticks
MATCH_RECOGNIZE (
  PARTITION BY node
  ORDER BY ts
  MEASURES
    FIRST(N.ts) AS run_start,
    LAST(N.ts) AS run_end,
    COUNT(*) AS intervals,
    MIN(N.price) AS lowest_price
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (N{3,}) WITHIN INTERVAL '6' HOUR
  DEFINE N AS N.price < 0
) AS runs;
