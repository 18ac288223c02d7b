-- Hub 5-minute averages per market, with a 15-minute rolling view (HOP).
--
--   cargo run --release -- run queries/hub_5min.sql
--
-- Every 5-minute interval: the average hub price of each market and how many
-- hubs reported. A HOP window of 15 minutes sliding by 5 gives the smoothed
-- price traders watch for ramps.

CREATE TABLE ticks (
  market STRING,
  node STRING,
  node_type STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  PRIMARY KEY (market, node, ts) NOT ENFORCED,
  WATERMARK FOR ts AS ts - INTERVAL '20' MINUTE
) WITH (
  'connector' = 'simulator',
  'seed' = '11',
  'nodes' = '400',
  'markets' = 'PJM,ERCOT',
  'interval' = '5 min',
  'start' = '2024-01-15 12:00:00',
  'number-of-rows' = '4800'
);

CREATE VIEW hub_5min AS
SELECT market, window_start, window_end,
       ROUND(AVG(price), 2) AS avg_price,
       COUNT(DISTINCT node) AS hubs
FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '5' MINUTES))
WHERE node_type = 'HUB'
GROUP BY market, window_start, window_end;

-- The 5-minute view printed with a '5min>' prefix by a print sink table.
CREATE TABLE five_minute_print (
  market STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), avg_price DOUBLE, hubs BIGINT
) WITH ('connector' = 'print', 'print-identifier' = '5min');

INSERT INTO five_minute_print SELECT * FROM hub_5min;

SELECT market, window_start, window_end,
       ROUND(AVG(price), 2) AS avg_15min,
       ROUND(MAX(price) - MIN(price), 2) AS range_15min
FROM TABLE(HOP(TABLE ticks, DESCRIPTOR(ts), INTERVAL '5' MINUTES, INTERVAL '15' MINUTES))
WHERE node_type = 'HUB'
GROUP BY market, window_start, window_end
EMIT FINAL;
