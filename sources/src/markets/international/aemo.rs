//! `aemo-price`: AEMO National Electricity Market regional prices, in the
//! three layouts AEMO publishes them:
//!
//! * **Dashboard JSON** (`{"5MIN": [{"SETTLEMENTDATE", "REGIONID", "RRP",
//!   "PERIODTYPE", ...}]}`, the NEM data dashboard's 5-minute price and
//!   demand report). A bare array of such records is read the same way.
//! * **PRICE_AND_DEMAND CSV** (`REGION,SETTLEMENTDATE,TOTALDEMAND,RRP,PERIODTYPE`,
//!   the monthly files of aemo.com.au's aggregated price and demand data).
//! * **NEMweb MMS CSV** (`C`/`I`/`D` records, e.g. `PUBLIC_DISPATCHIS_*.CSV`):
//!   the `D` rows of the `DISPATCH,PRICE` and `TRADING,PRICE` tables, whose
//!   columns the preceding `I` row names. Other tables in the same file
//!   (`DISPATCH,REGIONSUM`, ...) are not prices and are passed over.
//!
//! The layout is recognised from the first bytes (`{`/`[`, `C,`, otherwise a
//! header line).
//!
//! Conventions:
//! * `SETTLEMENTDATE` is NEM time, AEST (UTC+10:00) all year: the NEM ignores
//!   daylight saving, so there is no DST to handle. It is interval-**ending**:
//!   `ts` = SETTLEMENTDATE − interval − 10 h.
//! * The interval is 5 minutes for dispatch prices (always) and for trading
//!   prices since five-minute settlement; trading prices (PRICE_AND_DEMAND,
//!   `TRADING,PRICE`) of intervals ending at or before 2021-10-01 04:00 NEM
//!   time, the start of the first 5MS trading day, are 30-minute prices.
//! * `market` `AEMO`, `node` the region (`NSW1`, `QLD1`, `SA1`, `TAS1`, `VIC1`),
//!   `node_type` `REGION`, `price` = RRP, `currency` `AUD`, `unit` `MWh`.
//! * `run`: `RT` for actual dispatch/trading prices (`PERIODTYPE` `ACTUAL` or
//!   `TRADE`, and every MMS price row), `PD` (pre-dispatch) for `FORECAST`
//!   rows, other period types as published.
//! * MMS `DISPATCH,PRICE` rows with `INTERVENTION` ≠ 0 are dead letters that
//!   say so: during an intervention AEMO publishes a second, "what if" pricing
//!   run next to the market price (INTERVENTION = 0), and two prices for one
//!   interval would read as a revision.
//! * Dead letters: `file: 5MIN[i]` for JSON records (the report is one line),
//!   `file:line` for CSV rows.

use carbonflow_core::Millis;
use chrono::NaiveDateTime;
use serde_json::Value;

use super::{FileOutput, MILLIS, Series, field, parse_price, record_line, record_text};
use crate::markets::{MarketFormat, Parsed};

/// The `aemo-price` format.
pub struct AemoPrice;

impl MarketFormat for AemoPrice {
    fn name(&self) -> &'static str {
        "aemo-price"
    }

    fn description(&self) -> &'static str {
        "AEMO NEM regional prices: dashboard 5MIN JSON, PRICE_AND_DEMAND CSV, NEMweb MMS DISPATCH/TRADING PRICE CSV; \
         SETTLEMENTDATE AEST (UTC+10, no DST) interval-ending; node = region, price = RRP, AUD/MWh, run RT (PD for forecasts)"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = FileOutput::new(table, file);
        let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes).trim_ascii_start();
        match text {
            [b'{' | b'[', ..] => read_json(&mut out, text),
            [b'C', b',', ..] => read_mms(&mut out, bytes),
            _ => read_price_and_demand(&mut out, bytes),
        }
        out.finish()
    }
}

/// Dispatch runs every 5 minutes.
const FIVE_MINUTES_S: i64 = 300;

/// Trading intervals before five-minute settlement.
const HALF_HOUR_S: i64 = 1_800;

/// The interval-ending time of the last 30-minute trading interval, NEM time.
const LAST_HALF_HOUR_END: &str = "2021-10-01 04:00:00";

/// NEM time is UTC+10 all year.
const NEM_OFFSET_S: i64 = 10 * 3_600;

/// Whether a price is a dispatch price (5-minute since the NEM began) or a
/// trading price (30-minute before 5MS).
#[derive(Clone, Copy)]
enum Kind {
    Dispatch,
    Trading,
}

/// `2021/10/06 15:05:00` (CSV) or `2021-10-06T15:05:00` (JSON), NEM time.
fn parse_nem_time(text: &str) -> Option<NaiveDateTime> {
    ["%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text.trim(), format).ok())
}

/// The UTC start and length of the interval ending at `end` (NEM time).
fn interval(end: NaiveDateTime, kind: Kind) -> (Millis, i64) {
    let seconds = match kind {
        Kind::Trading if end <= last_half_hour_end() => HALF_HOUR_S,
        _ => FIVE_MINUTES_S,
    };
    let end_utc = end.and_utc().timestamp_millis() - NEM_OFFSET_S * MILLIS;
    (end_utc - seconds * MILLIS, seconds)
}

fn last_half_hour_end() -> NaiveDateTime {
    // A constant that parses: the fallback is never taken.
    NaiveDateTime::parse_from_str(LAST_HALF_HOUR_END, "%Y-%m-%d %H:%M:%S").unwrap_or_default()
}

fn run_of(period_type: &str) -> &str {
    match period_type {
        "" | "ACTUAL" | "TRADE" => "RT",
        "FORECAST" => "PD",
        other => other,
    }
}

/// The run's series, interned once per distinct run.
struct Runs(Vec<(String, Series)>);

impl Runs {
    fn get(&mut self, out: &mut FileOutput<'_>, run: &str) -> &Series {
        let index = match self.0.iter().position(|(name, _)| name == run) {
            Some(index) => index,
            None => {
                self.0.push((run.to_owned(), Series::new(out, "AEMO", "REGION", "AUD", "MWh", run)));
                self.0.len() - 1
            }
        };
        &self.0[index].1
    }
}

/// Makes the tick of one record, or says what is wrong with it.
fn tick(out: &mut FileOutput<'_>, runs: &mut Runs, region: &str, settlement: &str, rrp: Option<f64>, run: &str, kind: Kind) -> Result<(), String> {
    if region.is_empty() {
        return Err("no region".into());
    }
    let end = parse_nem_time(settlement).ok_or_else(|| format!("SETTLEMENTDATE '{settlement}' is not a NEM date and time"))?;
    let price = rrp.ok_or_else(|| "RRP is not a number".to_owned())?;
    let (ts, seconds) = interval(end, kind);
    let node = out.intern(region);
    let tick = runs.get(out, run).tick(node, ts, seconds, price);
    out.push(tick);
    Ok(())
}

fn read_json(out: &mut FileOutput<'_>, bytes: &[u8]) {
    let (records, key) = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(records)) => (records, ""),
        Ok(Value::Object(mut object)) => match object.remove("5MIN") {
            Some(Value::Array(records)) => (records, "5MIN"),
            _ => {
                out.dead_letter(out.at_path("5MIN"), "not an AEMO 5MIN report: no \"5MIN\" array", String::new());
                return;
            }
        },
        Ok(_) => {
            out.dead_letter(out.at_path(""), "not an AEMO 5MIN report: neither an object nor an array", String::new());
            return;
        }
        Err(error) => {
            let line = u64::try_from(error.line()).unwrap_or(0);
            out.dead_letter(out.at_line(line), format!("not JSON: {error}"), String::new());
            return;
        }
    };
    let mut runs = Runs(Vec::new());
    for (index, record) in records.iter().enumerate() {
        let text = |name: &str| record.get(name).and_then(Value::as_str).unwrap_or_default();
        let region = if text("REGIONID").is_empty() { text("REGION") } else { text("REGIONID") };
        let rrp = record.get("RRP").and_then(Value::as_f64).filter(|p| p.is_finite());
        if let Err(detail) = tick(out, &mut runs, region, text("SETTLEMENTDATE"), rrp, run_of(text("PERIODTYPE")), Kind::Dispatch) {
            let position = out.at_path(&format!("{key}[{index}]"));
            out.dead_letter(position, detail, record.to_string());
        }
    }
}

fn read_price_and_demand(out: &mut FileOutput<'_>, bytes: &[u8]) {
    let records = super::csv_records(out, bytes);
    let Some((header, rows)) = records.split_first() else { return };
    let column = |name: &str| header.iter().position(|f| f.eq_ignore_ascii_case(name.as_bytes()));
    let (Some(region), Some(settlement), Some(rrp)) = (column("REGION").or(column("REGIONID")), column("SETTLEMENTDATE"), column("RRP")) else {
        out.dead_letter(
            out.at_line(record_line(header)),
            "header lacks REGION, SETTLEMENTDATE or RRP",
            record_text(header),
        );
        return;
    };
    let period_type = column("PERIODTYPE");
    let mut runs = Runs(Vec::new());
    for row in rows {
        let run = run_of(period_type.map_or("", |i| field(row, i)));
        if let Err(detail) = tick(
            out,
            &mut runs,
            field(row, region),
            field(row, settlement),
            parse_price(field(row, rrp)),
            run,
            Kind::Trading,
        ) {
            out.dead_letter(out.at_line(record_line(row)), detail, record_text(row));
        }
    }
}

/// The columns of the MMS price table in force (from its last `I` row).
struct PriceColumns {
    kind: Kind,
    region: Option<usize>,
    settlement: Option<usize>,
    rrp: Option<usize>,
    intervention: Option<usize>,
}

fn read_mms(out: &mut FileOutput<'_>, bytes: &[u8]) {
    let mut columns: Option<PriceColumns> = None;
    let mut runs = Runs(Vec::new());
    for row in super::csv_records(out, bytes) {
        let table = (field(&row, 1), field(&row, 2));
        let kind = match table {
            ("DISPATCH", "PRICE") => Some(Kind::Dispatch),
            ("TRADING", "PRICE") => Some(Kind::Trading),
            _ => None,
        };
        match (field(&row, 0), kind) {
            ("I", Some(kind)) => {
                let column = |name: &str| row.iter().position(|f| f == name.as_bytes());
                columns = Some(PriceColumns {
                    kind,
                    region: column("REGIONID"),
                    settlement: column("SETTLEMENTDATE"),
                    rrp: column("RRP"),
                    intervention: column("INTERVENTION"),
                });
            }
            ("D", Some(_)) => {
                let result = match &columns {
                    None => Err("price row before its I header row".to_owned()),
                    Some(c) => match c.intervention.map(|i| field(&row, i)) {
                        Some(flag) if flag != "0" => Err(format!(
                            "intervention pricing run (INTERVENTION={flag}); the market price is the INTERVENTION=0 row"
                        )),
                        _ => {
                            let at = |index: Option<usize>| index.map_or("", |i| field(&row, i));
                            tick(out, &mut runs, at(c.region), at(c.settlement), parse_price(at(c.rrp)), "RT", c.kind)
                        }
                    },
                };
                if let Err(detail) = result {
                    out.dead_letter(out.at_line(record_line(&row)), detail, record_text(&row));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, distinct, parse_sample, tick, utc};

    /// Written from AEMO's published layouts (see `tests/fixtures/markets/README.md`);
    /// the 15:05 and 15:10 prices repeat those of the JSON sample for a cross-check.
    const PRICE_AND_DEMAND: &[u8] = include_bytes!("../../../tests/fixtures/markets/aemo_price_and_demand.csv");
    const DISPATCHIS: &[u8] = include_bytes!("../../../tests/fixtures/markets/aemo_public_dispatchis.csv");

    #[test]
    fn json_sample() {
        let Some(parsed) = parse_sample(&AemoPrice, "aemo/aemo_5min_data.json") else {
            return;
        };
        // 5 regions x 576 five-minute intervals, all ACTUAL.
        assert_eq!(parsed.ticks.len(), 2_880);
        assert_eq!(parsed.dead_letters.len(), 0);
        assert_eq!(distinct(&parsed.ticks, |t| &t.node), vec!["NSW1", "QLD1", "SA1", "TAS1", "VIC1"]);
        assert_eq!(distinct(&parsed.ticks, |t| &t.run), vec!["RT"]);
        assert!(parsed.ticks.iter().all(|t| t.interval_s == 300 && &*t.currency == "AUD"));
        // Record 0: NSW1, SETTLEMENTDATE 2021-10-06T15:00:00 (AEST, ending) RRP 0.0
        // -> interval 14:55-15:00 AEST = 04:55Z.
        assert_price(&parsed.ticks, "NSW1", "2021-10-06 04:55:00", 0.0);
        // Record 4: NSW1 2021-10-06T15:20:00 RRP 15.82342 -> starts 05:15Z.
        assert_price(&parsed.ticks, "NSW1", "2021-10-06 05:15:00", 15.82342);
        // Record 5: NSW1 2021-10-06T15:25:00 RRP 26.50576 -> starts 05:20Z.
        assert_price(&parsed.ticks, "NSW1", "2021-10-06 05:20:00", 26.50576);
        // Last record: VIC1 2021-10-08T14:55:00 RRP -38.01 -> starts 04:50Z.
        assert_price(&parsed.ticks, "VIC1", "2021-10-08 04:50:00", -38.01);
    }

    #[test]
    fn price_and_demand_csv() {
        let parsed = AemoPrice.parse("t", "PRICE_AND_DEMAND.csv", PRICE_AND_DEMAND);
        // 2 five-minute intervals x 5 regions, one 30-minute row before 5MS, one malformed row.
        assert_eq!(parsed.ticks.len(), 11);
        assert_eq!(parsed.dead_letters.len(), 1);
        assert_eq!(parsed.dead_letters[0].position, "PRICE_AND_DEMAND.csv:13");
        // Line 2: NSW1 2021/10/06 15:05:00 RRP 0.0001 -> 05:00Z, the JSON sample's record 1.
        assert_price(&parsed.ticks, "NSW1", "2021-10-06 05:00:00", 0.0001);
        let pre_5ms = tick(&parsed.ticks, "NSW1", "2021-09-30 17:30:00");
        assert_eq!((pre_5ms.interval_s, pre_5ms.price), (1_800, Some(61.84)));
        assert_eq!(distinct(&parsed.ticks, |t| &t.run), vec!["RT"]);
    }

    #[test]
    fn csv_and_json_agree() {
        let Some(json) = parse_sample(&AemoPrice, "aemo/aemo_5min_data.json") else {
            return;
        };
        let csv = AemoPrice.parse("t", "PRICE_AND_DEMAND.csv", PRICE_AND_DEMAND);
        let mut checked = 0;
        for tick in csv.ticks.iter().filter(|t| t.ts >= utc("2021-10-06 05:00:00")) {
            let same = json
                .ticks
                .iter()
                .find(|j| j.node == tick.node && j.ts == tick.ts)
                .expect("the JSON has the interval");
            assert_eq!(same, tick);
            checked += 1;
        }
        assert_eq!(checked, 10);
    }

    #[test]
    fn nemweb_mms_csv() {
        let parsed = AemoPrice.parse("t", "PUBLIC_DISPATCHIS.CSV", DISPATCHIS);
        // 5 regions at 15:10: QLD1 has an intervention twin (line 7), TAS1 a
        // malformed RRP (line 9); the CASESOLUTION and REGIONSUM tables are passed over.
        assert_eq!(parsed.ticks.len(), 4);
        let details: Vec<(&str, &str)> = parsed.dead_letters.iter().map(|d| (d.position.as_str(), d.detail.as_str())).collect();
        assert_eq!(details.len(), 2, "{details:?}");
        assert_eq!(details[0].0, "PUBLIC_DISPATCHIS.CSV:7");
        assert!(details[0].1.contains("INTERVENTION=1"));
        assert_eq!(details[1].0, "PUBLIC_DISPATCHIS.CSV:9");
        assert!(details[1].1.contains("RRP"));
        // Line 5: NSW1 "2021/10/06 15:10:00" RRP 0 -> 05:05Z; line 8: SA1 -25.53853.
        assert_price(&parsed.ticks, "NSW1", "2021-10-06 05:05:00", 0.0);
        assert_price(&parsed.ticks, "SA1", "2021-10-06 05:05:00", -25.53853);
        assert!(parsed.ticks.iter().all(|t| t.interval_s == 300));
    }

    #[test]
    fn interval_ending_to_start() {
        let end = parse_nem_time("2021/10/01 04:05:00").unwrap();
        assert_eq!(interval(end, Kind::Trading), (utc("2021-09-30 18:00:00"), 300));
        let end = parse_nem_time("2021/10/01 04:00:00").unwrap();
        assert_eq!(interval(end, Kind::Trading), (utc("2021-09-30 17:30:00"), 1_800));
        assert_eq!(interval(end, Kind::Dispatch), (utc("2021-09-30 17:55:00"), 300));
    }

    #[test]
    fn json_forecasts_and_bad_records() {
        let json = br#"{"5MIN":[
            {"SETTLEMENTDATE":"2021-10-06T15:05:00","REGIONID":"SA1","RRP":-12.5,"PERIODTYPE":"FORECAST"},
            {"SETTLEMENTDATE":"yesterday","REGIONID":"SA1","RRP":1,"PERIODTYPE":"ACTUAL"},
            {"SETTLEMENTDATE":"2021-10-06T15:05:00","REGIONID":"SA1","RRP":null,"PERIODTYPE":"ACTUAL"}]}"#;
        let parsed = AemoPrice.parse("t", "5min.json", json);
        assert_eq!(parsed.ticks.len(), 1);
        assert_eq!(&*parsed.ticks[0].run, "PD");
        let positions: Vec<&str> = parsed.dead_letters.iter().map(|d| d.position.as_str()).collect();
        assert_eq!(positions, vec!["5min.json: 5MIN[1]", "5min.json: 5MIN[2]"]);
        assert_eq!(AemoPrice.parse("t", "x.json", b"{\"other\":[]}").dead_letters.len(), 1);
    }
}
