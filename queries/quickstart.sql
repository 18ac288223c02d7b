-- carbonflow quickstart: hourly hub prices from the built-in market simulator.
--
--   cargo run --release -- run queries/quickstart.sql
--
-- The simulator publishes a real-time LMP for 1,000 nodes in PJM, MISO, SPP
-- and ERCOT every 5 minutes of simulated time (6 hours here, at 20,000 prices
-- a second) and now and then revises a price it already published. The
-- primary key turns each revision into a retraction plus an insertion, so the
-- hourly averages below are always computed from the corrected prices.

CREATE TABLE ticks (
  market STRING,
  node STRING,
  node_type STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  revision BIGINT,
  PRIMARY KEY (market, node, ts) NOT ENFORCED,
  -- Revisions arrive up to 3 intervals late; 20 minutes of bounded
  -- out-of-orderness keeps every one of them on time.
  WATERMARK FOR ts AS ts - INTERVAL '20' MINUTE
) WITH (
  'connector' = 'simulator',
  'seed' = '7',
  'nodes' = '1000',
  'interval' = '5 min',
  'start' = '2024-07-01 00:00:00',
  'number-of-rows' = '72000',
  'rows-per-second' = '20000'
);

-- Trading hubs only: the prices a desk quotes. Every view is live over
-- WebSocket while the query runs (ws://127.0.0.1:8080/v1/stream), e.g.
--   python3 examples/python/subscribe.py hub_prices
CREATE VIEW hub_prices AS
SELECT market, node, ts, price
FROM ticks
WHERE node_type = 'HUB';

-- One row per hub and hour, printed once the hour is complete (EMIT FINAL).
SELECT market, node, window_start,
       ROUND(AVG(price), 2) AS avg_price,
       MIN(price) AS min_price,
       MAX(price) AS max_price,
       COUNT(*) AS ticks
FROM TABLE(TUMBLE(TABLE hub_prices, DESCRIPTOR(ts), INTERVAL '1' HOUR))
GROUP BY market, node, window_start, window_end
EMIT FINAL;
