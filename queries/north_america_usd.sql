-- needs: CARBONFLOW_MARKET_DATA
-- dead-letters: 70474
-- North America in US dollars: seven feeds in their operators' own formats
-- (PJM, MISO, SPP, NYISO in USD; IESO and AESO in CAD) as canonical ticks in
-- one regional view, converted with the ECB rates valid at each price's time,
-- and the region's common 5-minute and hourly USD/MWh views.
--
--   CARBONFLOW_MARKET_DATA=../shared/data/markets cargo run --release -- run queries/north_america_usd.sql
--
-- See europe_usd.sql for the conversion pattern. AESO's nine '-' rows for
-- unsettled hours, one SPP row and the ECB file's 70,464 N/A cells are
-- dead letters.
-- The printed summary: per market, run and week, the intervals, their
-- time-weighted average and range in USD/MWh.

-- PJM day-ahead hourly LMPs (Data Miner export).
CREATE TABLE pjm_da (
  market STRING, node STRING, run STRING, ts TIMESTAMP(3), interval_s BIGINT, price DOUBLE, currency STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH ('connector' = 'filesystem', 'path' = '${CARBONFLOW_MARKET_DATA}/pjm/da_hrl_lmps.csv', 'format' = 'pjm-lmp');

-- PJM real-time hourly LMPs.
CREATE TABLE pjm_rt (
  market STRING, node STRING, run STRING, ts TIMESTAMP(3), interval_s BIGINT, price DOUBLE, currency STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH ('connector' = 'filesystem', 'path' = '${CARBONFLOW_MARKET_DATA}/pjm/rt_hrl_lmps.csv', 'format' = 'pjm-lmp');

-- MISO day-ahead, the wide HE1-HE24 layout.
CREATE TABLE miso_da (
  market STRING, node STRING, run STRING, ts TIMESTAMP(3), interval_s BIGINT, price DOUBLE, currency STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH ('connector' = 'filesystem', 'path' = '${CARBONFLOW_MARKET_DATA}/miso/20110716_da_lmp.csv', 'format' = 'miso-lmp');

-- SPP: the day-ahead file and six 5-minute RTBM files (the folder).
CREATE TABLE spp_rtbm (
  market STRING, node STRING, run STRING, ts TIMESTAMP(3), interval_s BIGINT, price DOUBLE, currency STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH ('connector' = 'filesystem', 'path' = '${CARBONFLOW_MARKET_DATA}/spp', 'format' = 'spp-lmp');

-- NYISO real-time zonal LBMP, 5-minute.
CREATE TABLE nyiso_rt (
  market STRING, node STRING, run STRING, ts TIMESTAMP(3), interval_s BIGINT, price DOUBLE, currency STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH ('connector' = 'filesystem', 'path' = '${CARBONFLOW_MARKET_DATA}/nyiso/realtime_zone_20160218_sample.csv', 'format' = 'nyiso-lbmp');

-- IESO day-ahead Ontario zonal prices (CAD).
CREATE TABLE ieso_da (
  market STRING, node STRING, run STRING, ts TIMESTAMP(3), interval_s BIGINT, price DOUBLE, currency STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH ('connector' = 'filesystem', 'path' = '${CARBONFLOW_MARKET_DATA}/ieso/PUB_DAHourlyOntarioZonalPrice_20260528.xml', 'format' = 'ieso-price');

-- AESO pool price (CAD).
CREATE TABLE aeso (
  market STRING, node STRING, run STRING, ts TIMESTAMP(3), interval_s BIGINT, price DOUBLE, currency STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH ('connector' = 'filesystem', 'path' = '${CARBONFLOW_MARKET_DATA}/aeso/HistoricalPoolPriceReportServlet.csv', 'format' = 'aeso-pool-price');

CREATE TABLE fx (
  node STRING, ts TIMESTAMP(3), price DOUBLE,
  PRIMARY KEY (node, ts) NOT ENFORCED,
  WATERMARK FOR ts AS ts - INTERVAL '1' DAY
) WITH ('connector' = 'filesystem', 'path' = '${CARBONFLOW_MARKET_DATA}/../fx/eurofxref-hist.csv', 'format' = 'ecb-fx');

CREATE VIEW north_america_ticks AS
SELECT market, node, run, ts, interval_s, price, currency, 'USD' AS usd FROM pjm_da
UNION ALL
SELECT market, node, run, ts, interval_s, price, currency, 'USD' AS usd FROM pjm_rt
UNION ALL
SELECT market, node, run, ts, interval_s, price, currency, 'USD' AS usd FROM miso_da
UNION ALL
SELECT market, node, run, ts, interval_s, price, currency, 'USD' AS usd FROM spp_rtbm
UNION ALL
SELECT market, node, run, ts, interval_s, price, currency, 'USD' AS usd FROM nyiso_rt
UNION ALL
SELECT market, node, run, ts, interval_s, price, currency, 'USD' AS usd FROM ieso_da
UNION ALL
SELECT market, node, run, ts, interval_s, price, currency, 'USD' AS usd FROM aeso;

CREATE VIEW north_america_usd AS
SELECT t.market, t.node, t.run, t.ts, t.interval_s, t.price * u.price / l.price AS price_usd
FROM north_america_ticks AS t
JOIN fx FOR SYSTEM_TIME AS OF t.ts AS l ON l.node = t.currency
JOIN fx FOR SYSTEM_TIME AS OF t.ts AS u ON u.node = t.usd;

-- The common views, served live to WebSocket subscribers: 5-minute prices of
-- the feeds that publish 5-minute (or finer) intervals, and hourly prices of
-- every feed (the time-weighted average of the intervals in the hour).
CREATE VIEW north_america_5min_usd AS
SELECT market, node, run, window_start, SUM(price_usd * interval_s) / SUM(interval_s) AS usd_per_mwh
FROM TABLE(TUMBLE(TABLE north_america_usd, DESCRIPTOR(ts), INTERVAL '5' MINUTE))
WHERE interval_s <= 300
GROUP BY market, node, run, window_start, window_end
EMIT FINAL;

CREATE VIEW north_america_hourly_usd AS
SELECT market, node, run, window_start, SUM(price_usd * interval_s) / SUM(interval_s) AS usd_per_mwh
FROM TABLE(TUMBLE(TABLE north_america_usd, DESCRIPTOR(ts), INTERVAL '1' HOUR))
GROUP BY market, node, run, window_start, window_end
EMIT FINAL;

SELECT market, run, window_start AS week,
       COUNT(*) AS intervals,
       ROUND(SUM(price_usd * interval_s) / SUM(interval_s), 2) AS avg_usd_per_mwh,
       ROUND(MIN(price_usd), 2) AS min_usd_per_mwh,
       ROUND(MAX(price_usd), 2) AS max_usd_per_mwh
FROM TABLE(TUMBLE(TABLE north_america_usd, DESCRIPTOR(ts), INTERVAL '7' DAY))
GROUP BY market, run, window_start, window_end
EMIT FINAL;
