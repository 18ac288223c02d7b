-- V-shaped reversals with MATCH_RECOGNIZE: a sell-off of three or more
-- falling ticks that takes the price at least 5 % below where it started,
-- then three or more rising ticks, all within an hour, per node.
--
--   cargo run --release -- run queries/v_reversal.sql
--
-- A is the peak: any tick, but the first D must be below it, so the
-- earliest start that can match is the tick where the fall begins. D{3,}
-- and U{3,} are greedy: the fall runs to its bottom and the rise to its top,
-- and a match is reported once the tick after the top falls (or the data
-- ends). PREV compares each tick with the one before it in the partition.
-- In the data: node V reverses twice (the second fall starts at 98.5, the
-- tick that ended the first rise, and runs five ticks to 85.0); X dips only
-- 3 %; Y rises only twice; Z reverses deeply, but its third rise comes 90
-- minutes after the peak. Flink refuses PREV ("physical offsets within
-- partition"), so this query runs on carbonflow only.

CREATE TABLE ticks (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH (
  'connector' = 'filesystem',
  'path' = 'queries/data/reversals.csv',
  'format' = 'csv'
);

SELECT *
FROM ticks
MATCH_RECOGNIZE (
  PARTITION BY node
  ORDER BY ts
  MEASURES
    A.ts AS peak_ts,
    A.price AS peak,
    LAST(D.ts) AS bottom_ts,
    LAST(D.price) AS bottom,
    LAST(U.ts) AS top_ts,
    LAST(U.price) AS top,
    COUNT(D.price) AS falls,
    COUNT(U.price) AS rises
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (A D{3,} U{3,}) WITHIN INTERVAL '1' HOUR
  DEFINE
    D AS D.price < PREV(D.price),
    U AS U.price > PREV(U.price) AND LAST(D.price) <= 0.95 * A.price
) AS reversals;
