-- needs: CARBONFLOW_MARKET_DATA
-- PJM hubs, day-ahead against real-time: the weekly average DA - RT spread
-- per hub from PJM's own Data Miner files, two market-format tables joined
-- on (node, hour).
--
--   CARBONFLOW_MARKET_DATA=../shared/data/markets cargo run --release -- run queries/pjm_da_rt_spread.sql
--
-- The files are PJM's native CSV (format 'pjm-lmp'): interval-beginning hours
-- in UTC. Weeks are 7-day tumbling windows aligned like Flink's (to
-- 1970-01-01, a Thursday).

CREATE TABLE pjm_da (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (
  'connector' = 'filesystem',
  'path' = '${CARBONFLOW_MARKET_DATA}/pjm/da_hrl_lmps.csv',
  'format' = 'pjm-lmp'
);

CREATE TABLE pjm_rt (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (
  'connector' = 'filesystem',
  'path' = '${CARBONFLOW_MARKET_DATA}/pjm/rt_hrl_lmps.csv',
  'format' = 'pjm-lmp'
);

CREATE VIEW hourly_spread AS
SELECT d.node, d.ts, d.price AS da_price, r.price AS rt_price, d.price - r.price AS spread
FROM pjm_da AS d
JOIN pjm_rt AS r ON d.node = r.node AND d.ts = r.ts;

SELECT node, window_start,
       ROUND(AVG(da_price), 2) AS avg_da,
       ROUND(AVG(rt_price), 2) AS avg_rt,
       ROUND(AVG(spread), 2) AS avg_spread,
       ROUND(MAX(ABS(spread)), 2) AS worst_hour,
       COUNT(*) AS hours
FROM TABLE(TUMBLE(TABLE hourly_spread, DESCRIPTOR(ts), INTERVAL '7' DAY))
GROUP BY node, window_start, window_end
EMIT FINAL;
