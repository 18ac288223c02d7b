//! `nordpool-dayahead`: Nord Pool's day-ahead prices API JSON
//! (`GET /api/DayAheadPrices?date=...&market=DayAhead&deliveryArea=...&currency=...`).
//!
//! Layout: one delivery day per document (`deliveryDateCET`, the day in
//! Central European prevailing time), `currency`, and `multiAreaEntries`:
//! each entry has `deliveryStart` / `deliveryEnd` as UTC instants and
//! `entryPerArea`, the price per delivery area. A file may also hold a JSON
//! array of such documents.
//!
//! Conventions:
//! * `ts` = `deliveryStart`, `interval_s` = `deliveryEnd - deliveryStart`, so
//!   hourly and 15-minute (from 2025-10-01) entries need nothing special, and
//!   the 23- and 25-hour CET days are just 23 or 25 entries.
//! * `market` `NORDPOOL`, `node` the delivery area (`NO1`, `SE3`, `FI`, ...),
//!   `node_type` `ZONE`, `run` `DA`, `currency` the document's, `unit` `MWh`.
//! * An area whose price is `null` or not a number, or an entry without valid
//!   delivery times, is a dead letter positioned by its JSON path
//!   (`file: multiAreaEntries[3].entryPerArea.FI`): the document is one line
//!   as served, so lines would say nothing.

use serde_json::Value;

use super::{FileOutput, MILLIS, Series};
use crate::markets::{MarketFormat, Parsed};

/// The `nordpool-dayahead` format.
pub struct NordPoolDayAhead;

impl MarketFormat for NordPoolDayAhead {
    fn name(&self) -> &'static str {
        "nordpool-dayahead"
    }

    fn description(&self) -> &'static str {
        "Nord Pool day-ahead prices API JSON: multiAreaEntries deliveryStart/End (UTC) x entryPerArea; \
         market NORDPOOL, node = delivery area, run DA, currency as published, MWh"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = FileOutput::new(table, file);
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Array(documents)) => {
                for (index, document) in documents.iter().enumerate() {
                    read_document(&mut out, document, &format!("[{index}]."));
                }
            }
            Ok(document) => read_document(&mut out, &document, ""),
            Err(error) => {
                let line = u64::try_from(error.line()).unwrap_or(0);
                out.dead_letter(out.at_line(line), format!("not JSON: {error}"), String::new());
            }
        }
        out.finish()
    }
}

fn read_document(out: &mut FileOutput<'_>, document: &Value, prefix: &str) {
    let Some(entries) = document.get("multiAreaEntries").and_then(Value::as_array) else {
        let position = out.at_path(prefix.trim_end_matches('.'));
        out.dead_letter(position, "not a day-ahead prices document: no multiAreaEntries array", truncated(document));
        return;
    };
    let Some(currency) = document.get("currency").and_then(Value::as_str) else {
        let position = out.at_path(&format!("{prefix}currency"));
        out.dead_letter(position, "the document has no currency", String::new());
        return;
    };
    let series = Series::new(out, "NORDPOOL", "ZONE", currency, "MWh", "DA");
    for (index, entry) in entries.iter().enumerate() {
        let path = format!("{prefix}multiAreaEntries[{index}]");
        let instant = |key: &str| entry.get(key).and_then(Value::as_str).and_then(carbonflow_core::time::parse_timestamp);
        let (start, end) = match (
            instant("deliveryStart"),
            instant("deliveryEnd"),
            entry.get("entryPerArea").and_then(Value::as_object),
        ) {
            (Some(start), Some(end), Some(_)) if end > start && (end - start) % MILLIS == 0 => (start, end),
            _ => {
                let position = out.at_path(&path);
                out.dead_letter(
                    position,
                    "entry needs deliveryStart < deliveryEnd (UTC instants) and an entryPerArea object",
                    truncated(entry),
                );
                continue;
            }
        };
        let areas = entry.get("entryPerArea").and_then(Value::as_object).into_iter().flatten();
        for (area, price) in areas {
            match price.as_f64().filter(|p| p.is_finite()) {
                Some(price) => {
                    let node = out.intern(area);
                    out.push(series.tick(node, start, (end - start) / MILLIS, price));
                }
                None => {
                    let position = out.at_path(&format!("{path}.entryPerArea.{area}"));
                    let start_text = entry.get("deliveryStart").and_then(Value::as_str).unwrap_or_default();
                    out.dead_letter(position, format!("no price for {area}: {price}"), format!("{start_text} {area}={price}"));
                }
            }
        }
    }
}

/// A JSON value as a record, cut to a readable length.
fn truncated(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::markets::testkit::{assert_price, distinct, utc};

    /// Written from Nord Pool's published API format (see `tests/fixtures/markets/README.md`):
    /// the 25-hour CET day 2024-10-27, areas NO1, SE3 and FI, invented prices.
    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/markets/nordpool_dayahead_2024-10-27.json");

    #[test]
    fn fixture_spans_the_dst_end() {
        let parsed = NordPoolDayAhead.parse("t", "np.json", FIXTURE);
        assert_eq!(parsed.ticks.len(), 25 * 3);
        assert_eq!(parsed.dead_letters.len(), 0);
        assert_eq!(distinct(&parsed.ticks, |t| &t.node), vec!["FI", "NO1", "SE3"]);
        assert!(
            parsed
                .ticks
                .iter()
                .all(|t| t.interval_s == 3_600 && &*t.currency == "EUR" && &*t.market == "NORDPOOL")
        );
        // The CET delivery day 2024-10-27 starts at 22:00Z the day before and has 25 hours.
        let cet = chrono_tz::Europe::Oslo;
        let day_start = cet.with_ymd_and_hms(2024, 10, 27, 0, 0, 0).unwrap().timestamp_millis();
        let day_end = cet.with_ymd_and_hms(2024, 10, 28, 0, 0, 0).unwrap().timestamp_millis();
        let mut starts: Vec<i64> = parsed.ticks.iter().filter(|t| &*t.node == "NO1").map(|t| t.ts).collect();
        starts.sort_unstable();
        let hourly: Vec<i64> = (0..25).map(|h| day_start + h * 3_600_000).collect();
        assert_eq!(starts, hourly);
        assert_eq!(day_end, day_start + 25 * 3_600_000);
        // Spot values from the fixture: first entry, the repeated local 02:00 (00:00Z and 01:00Z), the last entry.
        assert_price(&parsed.ticks, "NO1", "2024-10-26 22:00:00", 31.05);
        assert_price(&parsed.ticks, "SE3", "2024-10-27 00:00:00", 8.75);
        assert_price(&parsed.ticks, "FI", "2024-10-27 02:00:00", -0.01);
        assert_price(&parsed.ticks, "FI", "2024-10-27 22:00:00", 3.77);
    }

    #[test]
    fn quarter_hours_and_bad_entries() {
        let json = br#"{"deliveryDateCET":"2025-10-02","currency":"SEK","market":"DayAhead","multiAreaEntries":[
            {"deliveryStart":"2025-10-01T22:00:00Z","deliveryEnd":"2025-10-01T22:15:00Z","entryPerArea":{"SE3":512.3,"SE4":null}},
            {"deliveryStart":"2025-10-01T22:15:00Z","deliveryEnd":"2025-10-01T22:15:00Z","entryPerArea":{"SE3":1}},
            {"deliveryStart":"2025-10-01T22:30:00Z","deliveryEnd":"2025-10-01T22:45:00Z","entryPerArea":{"SE3":"x"}}]}"#;
        let parsed = NordPoolDayAhead.parse("t", "np.json", json);
        assert_eq!(parsed.ticks.len(), 1);
        assert_eq!((parsed.ticks[0].interval_s, &*parsed.ticks[0].currency), (900, "SEK"));
        assert_eq!(parsed.ticks[0].ts, utc("2025-10-01 22:00:00"));
        let positions: Vec<&str> = parsed.dead_letters.iter().map(|d| d.position.as_str()).collect();
        assert_eq!(
            positions,
            vec![
                "np.json: multiAreaEntries[0].entryPerArea.SE4",
                "np.json: multiAreaEntries[1]",
                "np.json: multiAreaEntries[2].entryPerArea.SE3"
            ]
        );
        assert_eq!(NordPoolDayAhead.parse("t", "np.json", b"{\"x\":").dead_letters.len(), 1);
        assert_eq!(NordPoolDayAhead.parse("t", "np.json", b"{\"x\":1}").dead_letters.len(), 1);
    }

    #[test]
    fn arrays_of_days() {
        let one = std::str::from_utf8(FIXTURE).unwrap();
        let two = format!("[{one},{one}]");
        let parsed = NordPoolDayAhead.parse("t", "np.json", two.as_bytes());
        assert_eq!(parsed.ticks.len(), 150);
    }
}
