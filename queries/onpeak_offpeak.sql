-- PJM daily on-peak / off-peak spread from 5-minute hub prices.
--
--   cargo run --release -- run queries/onpeak_offpeak.sql
--
-- PJM's on-peak block is hour-ending 08 to 23 (07:00-23:00 prevailing
-- Eastern time) on weekdays; everything else is off-peak (NERC holidays are
-- not modelled here). CONVERT_TZ gives the wall-clock time in New York, DST
-- included, so the classification is right all year.
--
-- The days are Eastern days in summer: the TUMBLE offset of 4 hours starts
-- each window at 04:00 UTC = 00:00 EDT.

CREATE TABLE ticks (
  node STRING,
  node_type STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  PRIMARY KEY (node, ts) NOT ENFORCED,
  WATERMARK FOR ts AS ts - INTERVAL '20' MINUTE
) WITH (
  'connector' = 'simulator',
  'seed' = '3',
  'nodes' = '40',
  'markets' = 'PJM',
  'interval' = '5 min',
  'start' = '2024-07-01 04:00:00',
  'number-of-rows' = '23040'
);

CREATE VIEW classified AS
SELECT node, ts, price,
       CASE
         WHEN DAYOFWEEK(CONVERT_TZ(ts, 'UTC', 'America/New_York')) BETWEEN 2 AND 6
          AND HOUR(CONVERT_TZ(ts, 'UTC', 'America/New_York')) BETWEEN 7 AND 22 THEN 'ON'
         ELSE 'OFF'
       END AS period
FROM ticks
WHERE node_type = 'HUB';

SELECT node, window_start,
       ROUND(AVG(CASE WHEN period = 'ON' THEN price END), 2) AS on_peak,
       ROUND(AVG(CASE WHEN period = 'OFF' THEN price END), 2) AS off_peak,
       ROUND(AVG(CASE WHEN period = 'ON' THEN price END) - AVG(CASE WHEN period = 'OFF' THEN price END), 2) AS spread
FROM TABLE(TUMBLE(TABLE classified, DESCRIPTOR(ts), INTERVAL '1' DAY, INTERVAL '4' HOUR))
GROUP BY node, window_start, window_end
EMIT FINAL;
