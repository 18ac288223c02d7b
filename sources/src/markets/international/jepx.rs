//! `jepx-spot`: Japan Electric Power Exchange spot (day-ahead) market results
//! CSV (`spot_summary_YYYY.csv`, formerly `spot_YYYY.csv`).
//!
//! Layout, by position as JEPX publishes it: 0 delivery date (`受渡日` or
//! `年月日`, `YYYY/MM/DD`), 1 time code (`時刻コード`, 1-48), 2-4 volumes
//! (kWh), 5 system price, 6-14 the nine area prices (Hokkaido, Tohoku, Tokyo,
//! Chubu, Hokuriku, Kansai, Chugoku, Shikoku, Kyushu), then further columns
//! that are not prices of a slot. Columns are read by position, not by
//! header name: the files are Shift_JIS, and the first line is recognised as
//! the header because its time code is not a number, whatever its encoding.
//!
//! Conventions:
//! * Time code *n* is the half hour `[00:00 + (n-1)·30 min, +30 min)` of the
//!   delivery date in JST (UTC+9, no daylight saving), so every day has 48
//!   slots and `ts` = date 00:00 − 9 h + (n-1)·30 min.
//! * One tick per slot and price column: `node` `SYSTEM` (`node_type`
//!   `SYSTEM`) for the system price, the area in English capitals (`TOKYO`,
//!   `KANSAI`, ...; `node_type` `AREA`) for area prices.
//! * `market` `JEPX`, `run` `DA`, `currency` `JPY`, `unit` `kWh`: prices stay
//!   in yen per kWh as published.
//! * A row with a bad date, a time code outside 1-48 or too few columns is one
//!   dead letter; a blank or non-numeric price cell is a dead letter for that
//!   node alone (`file:line`, the node in the detail).

use chrono::NaiveDate;

use super::{FileOutput, MILLIS, Series, field, parse_price, record_line, record_text};
use crate::markets::{MarketFormat, Parsed};

/// The `jepx-spot` format.
pub struct JepxSpot;

impl MarketFormat for JepxSpot {
    fn name(&self) -> &'static str {
        "jepx-spot"
    }

    fn description(&self) -> &'static str {
        "JEPX spot results CSV (Shift_JIS): date, time code 1-48 (30 min, JST UTC+9), system and nine area prices; \
         node SYSTEM/TOKYO/..., JPY/kWh, run DA"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = FileOutput::new(table, file);
        let system = Series::new(&mut out, "JEPX", "SYSTEM", "JPY", "kWh", "DA");
        let area = Series::new(&mut out, "JEPX", "AREA", "JPY", "kWh", "DA");
        let nodes: Vec<_> = NODES.iter().map(|name| out.intern(name)).collect();
        let records = super::csv_records(&mut out, bytes);
        for (index, row) in records.iter().enumerate() {
            if index == 0 && field(row, 1).parse::<u32>().is_err() {
                continue;
            }
            let start = match slot_start(row) {
                Ok(start) => start,
                Err(detail) => {
                    out.dead_letter(out.at_line(record_line(row)), detail, record_text(row));
                    continue;
                }
            };
            for (offset, node) in nodes.iter().enumerate() {
                let text = field(row, FIRST_PRICE + offset);
                match parse_price(text) {
                    Some(price) => {
                        let series = if offset == 0 { &system } else { &area };
                        out.push(series.tick(node.clone(), start, SLOT_S, price));
                    }
                    None => {
                        let detail = format!("{node} price '{text}' is not a number");
                        out.dead_letter(out.at_line(record_line(row)), detail, record_text(row));
                    }
                }
            }
        }
        out.finish()
    }
}

/// The column of the system price; the area prices follow it.
const FIRST_PRICE: usize = 5;

/// The nodes of the price columns, in file order.
const NODES: [&str; 10] = [
    "SYSTEM", "HOKKAIDO", "TOHOKU", "TOKYO", "CHUBU", "HOKURIKU", "KANSAI", "CHUGOKU", "SHIKOKU", "KYUSHU",
];

/// A half-hour slot.
const SLOT_S: i64 = 1_800;

/// JST is UTC+9 all year.
const JST_OFFSET_S: i64 = 9 * 3_600;

/// The UTC start of a row's slot.
fn slot_start(row: &csv::ByteRecord) -> Result<i64, String> {
    if row.len() < FIRST_PRICE + NODES.len() {
        return Err(format!("{} columns, the layout has at least {}", row.len(), FIRST_PRICE + NODES.len()));
    }
    let date_text = field(row, 0);
    let date = ["%Y/%m/%d", "%Y-%m-%d"]
        .iter()
        .find_map(|format| NaiveDate::parse_from_str(date_text, format).ok())
        .ok_or_else(|| format!("delivery date '{date_text}' is not YYYY/MM/DD"))?;
    let code_text = field(row, 1);
    let code = code_text
        .parse::<i64>()
        .ok()
        .filter(|code| (1..=48).contains(code))
        .ok_or_else(|| format!("time code '{code_text}' is not in 1..=48"))?;
    let midnight = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default();
    Ok(midnight - JST_OFFSET_S * MILLIS + (code - 1) * SLOT_S * MILLIS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, tick, utc};

    /// Written from JEPX's published column layout (see `tests/fixtures/markets/README.md`).
    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/markets/jepx_spot_summary.csv");

    #[test]
    fn fixture() {
        let parsed = JepxSpot.parse("t", "spot.csv", FIXTURE);
        // 5 good rows x 10 prices, less the blank Hokuriku cell; the code-49 row is one dead letter.
        assert_eq!(parsed.ticks.len(), 49);
        let letters: Vec<(&str, &str)> = parsed.dead_letters.iter().map(|d| (d.position.as_str(), d.detail.as_str())).collect();
        assert_eq!(
            letters,
            vec![
                ("spot.csv:4", "HOKURIKU price '' is not a number"),
                ("spot.csv:6", "time code '49' is not in 1..=48")
            ]
        );
        // Line 2: 2024/04/01 code 1 is 00:00-00:30 JST = 2024-03-31 15:00Z; system 9.85, Hokkaido 11.02.
        assert_price(&parsed.ticks, "SYSTEM", "2024-03-31 15:00:00", 9.85);
        assert_price(&parsed.ticks, "HOKKAIDO", "2024-03-31 15:00:00", 11.02);
        // Line 3: code 2 starts 00:30 JST = 15:30Z; Chubu 9.40.
        assert_price(&parsed.ticks, "CHUBU", "2024-03-31 15:30:00", 9.40);
        // Line 5: code 48 is 23:30-24:00 JST = 14:30Z the same UTC day; Kyushu 10.05.
        assert_price(&parsed.ticks, "KYUSHU", "2024-04-01 14:30:00", 10.05);
        // Line 7: 2024/04/02 code 1 follows code 48 of the day before without a gap.
        assert_eq!(tick(&parsed.ticks, "TOKYO", "2024-04-01 15:00:00").price, Some(0.01));
        let area_ticks = parsed.ticks.iter().filter(|t| t.node_type.as_deref() == Some("AREA")).count();
        assert_eq!(area_ticks, 49 - 5, "all but the five SYSTEM ticks are AREA ticks");
        assert!(parsed.ticks.iter().all(|t| t.interval_s == 1_800 && &*t.currency == "JPY" && &*t.unit == "kWh"));
        assert_eq!(tick(&parsed.ticks, "SYSTEM", "2024-03-31 15:00:00").node_type.as_deref(), Some("SYSTEM"));
    }

    #[test]
    fn shift_jis_header_is_skipped_by_position() {
        // "受渡日,時刻コード" in Shift_JIS, which is not UTF-8.
        let mut bytes: Vec<u8> = vec![
            0x8e, 0xf3, 0x93, 0x6e, 0x93, 0xfa, b',', 0x8e, 0x9e, 0x8d, 0x8f, 0x83, 0x52, 0x81, 0x5b, 0x83, 0x68, b'\n',
        ];
        bytes.extend_from_slice(b"2024/04/01,1,0,0,0,1,2,3,4,5,6,7,8,9,10\n");
        let parsed = JepxSpot.parse("t", "spot.csv", &bytes);
        assert_eq!(parsed.dead_letters.len(), 0);
        let prices: Vec<f64> = parsed.ticks.iter().map(|t| t.price.unwrap()).collect();
        assert_eq!(prices, (1..=10).map(f64::from).collect::<Vec<_>>());
        assert_eq!(parsed.ticks[3].node.as_ref(), "TOKYO");
        assert_eq!(parsed.ticks[0].ts, utc("2024-03-31 15:00:00"));
    }

    #[test]
    fn short_rows_and_bad_dates() {
        let parsed = JepxSpot.parse("t", "spot.csv", b"2024/04/01,1,0,0,0,1\n2024/13/01,1,0,0,0,1,2,3,4,5,6,7,8,9,10\n");
        assert!(parsed.ticks.is_empty());
        assert_eq!(parsed.dead_letters.len(), 2);
        assert!(parsed.dead_letters[0].detail.contains("columns"));
        assert!(parsed.dead_letters[1].detail.contains("delivery date"));
    }
}
