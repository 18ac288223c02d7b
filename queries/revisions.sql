-- args: --batch-size 1
-- A price revision flows through everything: the retraction of the old tick
-- and the insertion of the new one correct every window that held it.
--
--   cargo run --release -- run queries/revisions.sql --batch-size 1
--
-- queries/data/revisions.csv republishes PJM-WESTERN HUB at 00:05 (32.00,
-- then 44.00) and AEP-DAYTON HUB at 00:10 with an unchanged price. With one
-- row per epoch (--batch-size 1) the printed changelog shows each step:
-- the 15-minute window of PJM-WESTERN HUB is retracted (-D) and re-inserted
-- (+I) with the corrected average; the unchanged republication changes nothing.

CREATE TABLE ticks (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  PRIMARY KEY (node, ts) NOT ENFORCED,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE
) WITH (
  'connector' = 'filesystem',
  'path' = 'queries/data/revisions.csv',
  'format' = 'csv'
);

SELECT node, window_start, COUNT(*) AS ticks, AVG(price) AS avg_price, MAX(price) AS max_price
FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '15' MINUTES))
GROUP BY node, window_start, window_end;
