-- needs: CARBONFLOW_MARKET_DATA
-- dead-letters: 70464
-- Asia-Pacific in US dollars: the Australian NEM's 5-minute regional prices
-- (AEMO's JSON, in AUD, NEM time without DST) converted with the ECB rates
-- valid at each price's time (AUD and USD per euro), into the common
-- 5-minute and hourly USD/MWh views. (JEPX, the other APAC format, has no
-- shared sample file; its parser is tested on a fixture.)
--
--   CARBONFLOW_MARKET_DATA=../shared/data/markets cargo run --release -- run queries/apac_usd.sql
--
-- The same pattern serves every region (see north_america_usd.sql and
-- apac_usd.sql): each feed normalised to canonical ticks, the feeds of a
-- region in one view (UNION ALL), then a temporal join with the ECB rates
-- (format 'ecb-fx': node = currency, price = units per euro, EUR = 1) for
-- the tick's currency and for USD: usd = price * usd_per_eur / local_per_eur.
-- A weekend price takes Friday's rate. The ECB file's N/A cells (currencies
-- without a rate that day) are dead letters: 70,464 of them.

CREATE TABLE aemo (
  market STRING, node STRING, run STRING, ts TIMESTAMP(3), interval_s BIGINT, price DOUBLE, currency STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (
  'connector' = 'filesystem',
  'path' = '${CARBONFLOW_MARKET_DATA}/aemo/aemo_5min_data.json',
  'format' = 'aemo-price'
);

CREATE TABLE fx (
  node STRING, ts TIMESTAMP(3), price DOUBLE,
  PRIMARY KEY (node, ts) NOT ENFORCED,
  WATERMARK FOR ts AS ts - INTERVAL '1' DAY
) WITH (
  'connector' = 'filesystem',
  'path' = '${CARBONFLOW_MARKET_DATA}/../fx/eurofxref-hist.csv',
  'format' = 'ecb-fx'
);

-- Every APAC price of this file set, as canonical ticks.
CREATE VIEW apac_ticks AS
SELECT market, node, run, ts, interval_s, price, currency, 'USD' AS usd FROM aemo;

-- Each price in USD/MWh, at the rates valid at its time.
CREATE VIEW apac_usd AS
SELECT t.market, t.node, t.run, t.ts, t.interval_s, t.price * u.price / l.price AS price_usd
FROM apac_ticks AS t
JOIN fx FOR SYSTEM_TIME AS OF t.ts AS l ON l.node = t.currency
JOIN fx FOR SYSTEM_TIME AS OF t.ts AS u ON u.node = t.usd;

-- The common 5-minute view.
CREATE VIEW apac_5min_usd AS
SELECT market, node, run, window_start, SUM(price_usd * interval_s) / SUM(interval_s) AS usd_per_mwh
FROM TABLE(TUMBLE(TABLE apac_usd, DESCRIPTOR(ts), INTERVAL '5' MINUTE))
WHERE interval_s <= 300
GROUP BY market, node, run, window_start, window_end
EMIT FINAL;

-- The common hourly view: the time-weighted average of the intervals in each
-- hour (an hourly price is its own average; four 15-minute prices average).
CREATE VIEW apac_hourly_usd AS
SELECT market, node, run, window_start,
       SUM(price_usd * interval_s) / SUM(interval_s) AS usd_per_mwh,
       COUNT(*) AS intervals
FROM TABLE(TUMBLE(TABLE apac_usd, DESCRIPTOR(ts), INTERVAL '1' HOUR))
GROUP BY market, node, run, window_start, window_end
EMIT FINAL;

-- Printed: per market, run and UTC day, the intervals, the time-weighted
-- average and the range, in USD/MWh.
SELECT market, node, run, window_start AS day,
       COUNT(*) AS intervals,
       ROUND(SUM(price_usd * interval_s) / SUM(interval_s), 2) AS avg_usd_per_mwh,
       ROUND(MIN(price_usd), 2) AS min_usd_per_mwh,
       ROUND(MAX(price_usd), 2) AS max_usd_per_mwh
FROM TABLE(TUMBLE(TABLE apac_usd, DESCRIPTOR(ts), INTERVAL '1' DAY))
GROUP BY market, node, run, window_start, window_end
EMIT FINAL;
