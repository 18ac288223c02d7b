-- Sustained ramps with MATCH_RECOGNIZE: at least four rising intervals in a
-- row within an hour, adding up to a rise of more than 10 % over the price
-- before them, per node.
--
--   cargo run --release -- run queries/sustained_ramp.sql
--
-- T is the rising step that brings the total above 10 %; greedy U{3,}
-- makes it the last such step of the ramp. A ramp that flattens out below
-- 10 % does not match.

CREATE TABLE ticks (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH (
  'connector' = 'filesystem',
  'path' = 'queries/data/ramps.csv',
  'format' = 'csv'
);

SELECT *
FROM ticks
MATCH_RECOGNIZE (
  PARTITION BY node
  ORDER BY ts
  MEASURES
    S.ts AS ramp_start,
    T.ts AS ramp_end,
    S.price AS start_price,
    T.price AS end_price,
    COUNT(*) - 1 AS rising_intervals
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (S U{3,} T) WITHIN INTERVAL '1' HOUR
  DEFINE
    U AS U.price > PREV(U.price),
    T AS T.price > PREV(T.price) AND T.price > 1.1 * S.price
) AS ramps;
