-- Breakouts after consolidation with MATCH_RECOGNIZE: four or more ticks
-- trading within a narrow band (its high at most 2 % above its low), then a
-- tick more than 3 % above the band's high, all within an hour, per node.
--
--   cargo run --release -- run queries/breakout.sql
--
-- C{4,} is greedy: the band is the longest run of ticks that stays narrow,
-- and WITHIN trims it from the front when the whole run would take longer
-- than an hour (node S). A move out of the band that is too small (node F)
-- or a band too short (node T) is no breakout. C and B can never hold on the
-- same tick (a tick 3 % above the band's high widens the band past 2 %), so
-- Flink, whose greedy quantifiers do not backtrack, finds the same matches
-- (engine/tests/flink_reference.rs runs this file on both).

CREATE TABLE ticks (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH (
  'connector' = 'filesystem',
  'path' = 'queries/data/breakouts.csv',
  'format' = 'csv'
);

SELECT *
FROM ticks
MATCH_RECOGNIZE (
  PARTITION BY node
  ORDER BY ts
  MEASURES
    FIRST(C.ts) AS band_start,
    LAST(C.ts) AS band_end,
    COUNT(C.price) AS band_ticks,
    MIN(C.price) AS band_low,
    MAX(C.price) AS band_high,
    B.ts AS breakout_ts,
    B.price AS breakout_price
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (C{4,} B) WITHIN INTERVAL '1' HOUR
  DEFINE
    C AS MAX(C.price) <= 1.02 * MIN(C.price),
    B AS B.price > 1.03 * MAX(C.price)
) AS breakouts;
