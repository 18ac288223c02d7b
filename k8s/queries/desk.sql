-- The query the Kubernetes deployment runs (k8s/README.md): a live market
-- feed that never ends, so its views stay up and the dashboards have rates,
-- lags and latencies to show.
--
--   carbonflow check k8s/queries/desk.sql
--
-- The simulator spreads its nodes over every worker of every process, so the
-- same file runs on one pod or on a cluster. A production deployment reads
-- Kafka instead: replace the WITH clause with the kafka connector's options
-- (docs/kafka.md); partitions are then spread over all workers.

CREATE TABLE ticks (
  market STRING,
  node STRING,
  node_type STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  revision BIGINT,
  PRIMARY KEY (market, node, ts) NOT ENFORCED,
  -- Revisions arrive up to 3 intervals late.
  WATERMARK FOR ts AS ts - INTERVAL '20' MINUTE
) WITH (
  'connector' = 'simulator',
  'seed' = '7',
  'nodes' = '1000',
  'interval' = '5 min',
  'start' = '2024-07-01 00:00:00',
  -- Unbounded: no 'number-of-rows'. 2,000 prices a second is 10 simulated
  -- minutes a second for 1,000 nodes.
  'rows-per-second' = '2000'
);

-- The latest price of every trading hub, corrected by revisions.
CREATE VIEW hub_prices AS
SELECT market, node, ts, price
FROM ticks
WHERE node_type = 'HUB';

-- Hourly hub statistics, updated as every price arrives (EMIT CHANGES).
CREATE VIEW hub_hourly AS
SELECT market, node, window_start, window_end,
       ROUND(AVG(price), 2) AS avg_price,
       MIN(price) AS min_price,
       MAX(price) AS max_price,
       COUNT(*) AS ticks
FROM TABLE(TUMBLE(TABLE hub_prices, DESCRIPTOR(ts), INTERVAL '1' HOUR))
GROUP BY market, node, window_start, window_end;
