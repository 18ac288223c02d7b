-- Regime shifts and structural breaks in hourly hub prices.
--
--   cargo run --release -- run queries/regime_shift.sql
--
-- queries/data/regimes.csv is synthetic (examples/models/synthetic_series.py):
-- HUB_A turns volatile from Jan 9 to Jan 13 and its level rises by 25 from
-- Jan 17; HUB_B spikes once on Jan 6 at 18:00 and is volatile from Jan 15 to
-- Jan 18. queries/data/regimes_hmm.json is a two-state Gaussian HMM over
-- hourly price differences fitted to that file by examples/models/fit_hmm.py
-- (state 0 calm, state 1 volatile).
--
-- Three layers of OVER, each a view over the one before:
-- 1. per row: the HMM's filtered probability of the volatile state, GARCH(1,1)
--    volatility of the differences, and a self-starting CUSUM alarm on the
--    price level (a week of warm-up, k = 1, h = 10 standard deviations);
-- 2. the volatile probability averaged over the last 12 hours, so that one
--    wild hour does not flip the regime;
-- 3. a regime change is a row whose smoothed regime differs from the row
--    before it (both rows in a 2-row frame, one of them volatile).

CREATE TABLE ticks (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (
  'connector' = 'filesystem',
  'path' = 'queries/data/regimes.csv',
  'format' = 'csv'
);

CREATE VIEW regimes AS
SELECT node, ts, price,
       HMM_PROBABILITY(price, 'queries/data/regimes_hmm.json', 1) OVER by_time AS p_volatile,
       GARCH_VOLATILITY(price, 0.5, 0.1, 0.85, 'difference') OVER by_time AS garch_vol,
       CUSUM_ALARM(price, 1, 10, 168) OVER by_time AS level_shift
FROM ticks
WINDOW by_time AS (PARTITION BY node ORDER BY ts);

CREATE VIEW smoothed AS
SELECT node, ts, price, garch_vol, level_shift,
       AVG(p_volatile) OVER (PARTITION BY node ORDER BY ts ROWS BETWEEN 11 PRECEDING AND CURRENT ROW) AS p_volatile_12h
FROM regimes;

CREATE VIEW changes AS
SELECT node, ts, price, garch_vol, level_shift, p_volatile_12h,
       COUNT(*) OVER last_two AS rows_seen,
       SUM(CASE WHEN p_volatile_12h > 0.5 THEN 1 ELSE 0 END) OVER last_two AS volatile_rows
FROM smoothed
WINDOW last_two AS (PARTITION BY node ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW);

SELECT node, ts,
       CASE WHEN level_shift THEN 'level shift'
            WHEN p_volatile_12h > 0.5 THEN 'volatile regime'
            ELSE 'calm regime' END AS alert,
       price,
       ROUND(p_volatile_12h, 3) AS p_volatile_12h,
       ROUND(garch_vol, 2) AS garch_vol
FROM changes
WHERE level_shift OR (rows_seen = 2 AND volatile_rows = 1);
