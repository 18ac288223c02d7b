-- needs: CARBONFLOW_MARKET_DATA
-- dead-letters: 9
-- Alberta pool price, week by week, from AESO's own report file.
--
--   CARBONFLOW_MARKET_DATA=../shared/data/markets cargo run --release -- run queries/aeso_weekly.sql
--
-- The file (format 'aeso-pool-price') has hour-ending Alberta prevailing
-- times, with the repeated autumn hour written 02*; its last nine rows are
-- '-' placeholders for hours not yet settled, which go to the dead-letter
-- output instead of stopping the run.

CREATE TABLE pool_price (
  node STRING,
  ts TIMESTAMP(3),
  price DOUBLE,
  currency STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (
  'connector' = 'filesystem',
  'path' = '${CARBONFLOW_MARKET_DATA}/aeso/HistoricalPoolPriceReportServlet.csv',
  'format' = 'aeso-pool-price'
);

SELECT node, currency, window_start,
       ROUND(AVG(price), 2) AS avg_price,
       MIN(price) AS min_price,
       MAX(price) AS max_price,
       COUNT(*) AS hours
FROM TABLE(TUMBLE(TABLE pool_price, DESCRIPTOR(ts), INTERVAL '7' DAY))
GROUP BY node, currency, window_start, window_end
EMIT FINAL;
