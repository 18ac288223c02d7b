-- Price anomalies: anomaly scores over hourly hub prices, turned into alerts
-- where detectors agree.
--
--   cargo run --release -- run queries/price_anomalies.sql
--
-- queries/data/regimes.csv is synthetic (examples/models/synthetic_series.py):
-- HUB_B spikes by +60 on Saturday Jan 6 at 18:00; both hubs have volatile
-- spells (HUB_A Jan 9-13, HUB_B Jan 15-18) in which a few hours stray far
-- from what that hour usually costs.
--
-- * a spike: the robust z-score over the last 24 hours (median and MAD, which
--   one outlier cannot drag) and the EWMA z-score (6-hour half-life) agree;
-- * an off-season price: far from the same hour of the same day type over the
--   last two weeks (seasonal z-score) and unusual for the last day too.
--
-- Scores are computed once the watermark passes each hour (OVER emits then,
-- as in Flink); a revised price would retract and re-emit the scores it changes.

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

CREATE VIEW scored AS
SELECT node, ts, price,
       ZSCORE(price) OVER last_day AS z,
       ROBUST_ZSCORE(price) OVER last_day AS robust_z,
       EWMA_ZSCORE(price, INTERVAL '6' HOUR) OVER (PARTITION BY node ORDER BY ts) AS ewma_z,
       SEASONAL_ZSCORE(price, 2, 'UTC') OVER (PARTITION BY node ORDER BY ts) AS seasonal_z
FROM ticks
WINDOW last_day AS (PARTITION BY node ORDER BY ts ROWS BETWEEN 23 PRECEDING AND CURRENT ROW);

SELECT node, ts,
       CASE WHEN ABS(robust_z) > 4 AND ABS(ewma_z) > 5 THEN 'spike' ELSE 'off-season' END AS alert,
       price,
       ROUND(z, 2) AS z,
       ROUND(robust_z, 2) AS robust_z,
       ROUND(ewma_z, 2) AS ewma_z,
       ROUND(seasonal_z, 2) AS seasonal_z
FROM scored
WHERE (ABS(robust_z) > 4 AND ABS(ewma_z) > 5)
   OR (ABS(seasonal_z) > 8 AND ABS(z) > 2.5);
