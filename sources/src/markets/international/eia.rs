//! `eia-gas`: EIA natural gas series as downloaded from the dnav series
//! pages ("Download Data (CSV)"): daily Henry Hub spot price, weekly working
//! gas in storage, and other two-column series of the same shape.
//!
//! Layout: a free-text preamble (title, page URL, download time, source,
//! sometimes `Series Link` / `Series Key`), then a two-column header
//! (`Day,<series> <unit>` or `Week of,<series> <unit>`), then `M/D/YYYY,value`
//! rows, newest first, with the day not zero-padded. The header is found as
//! the line just before the first line that starts with such a date; the
//! preamble above it is metadata, not data, and produces nothing.
//!
//! Conventions:
//! * `Day` series: `ts` = the trading date at 00:00 UTC, `interval_s` one day
//!   (the price is a daily assessment without a time of day).
//! * `Week of` series: EIA dates a storage week by its **ending Friday**; the
//!   week is the seven days through that Friday, so `ts` = Friday − 6 days
//!   (the Saturday) at 00:00 UTC and `interval_s` one week, the interval ending
//!   at the end of the Friday the stock was measured.
//! * The unit comes from the header's tail: `Dollars per Million Btu` →
//!   currency `USD`, unit `MMBtu`; `BCF` → unit `Bcf`; `MMcf` → unit `MMcf`.
//!   Volume series are **quantities, not prices**: the value goes in `price`
//!   (the tick has no quantity column) and `currency` is the empty string, so
//!   a query selecting on a currency never takes a volume for a price.
//! * `market` `EIA`. A spot price series `<Hub> Natural Gas Spot Price` has
//!   `node` the hub in capitals (`HENRY HUB`), `node_type` `HUB`, `run` `SPOT`;
//!   any other series has `node` the series name as the header gives it
//!   (`Lower 48 States Natural Gas Working Underground Storage`), `node_type`
//!   `SERIES`, `run` `REPORT`.
//! * A row after the header whose date or value does not parse is a dead letter
//!   at `file:line`; so is every row of a series whose period column is
//!   neither `Day` nor `Week of`.

use chrono::NaiveDate;

use super::{DAY_S, FileOutput, MILLIS, Series, field, parse_price, record_line, record_text};
use crate::markets::{MarketFormat, Parsed};

/// The `eia-gas` format.
pub struct EiaGas;

impl MarketFormat for EiaGas {
    fn name(&self) -> &'static str {
        "eia-gas"
    }

    fn description(&self) -> &'static str {
        "EIA natural gas CSV after a free-text preamble: daily Henry Hub spot (USD/MMBtu, node HENRY HUB, run SPOT), \
         weekly storage (Bcf in price, week ending Friday -> ts = Saturday); ts 00:00 UTC"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = FileOutput::new(table, file);
        let records = super::csv_records(&mut out, bytes);
        let first_data = records.iter().position(|row| row.len() >= 2 && parse_mdy(field(row, 0)).is_some());
        let Some(first_data) = first_data else {
            let line = records.last().map_or(1, record_line);
            out.dead_letter(out.at_line(line), "no M/D/YYYY data rows after the preamble", String::new());
            return out.finish();
        };
        let header = first_data.checked_sub(1).and_then(|i| records.get(i));
        let layout = header.ok_or_else(|| "no header line before the first data row".to_owned()).and_then(Layout::of);
        let (layout, series) = match layout {
            Ok(layout) => {
                let series = Series::new(&mut out, "EIA", layout.node_type, layout.currency, layout.unit, layout.run);
                (layout, series)
            }
            Err(detail) => {
                for row in &records[first_data..] {
                    out.dead_letter(out.at_line(record_line(row)), detail.clone(), record_text(row));
                }
                return out.finish();
            }
        };
        let node = out.intern(&layout.node);
        for row in &records[first_data..] {
            let date = parse_mdy(field(row, 0));
            match (date, parse_price(field(row, 1))) {
                (Some(date), Some(value)) => {
                    let day = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default();
                    let ts = day - layout.back_days * DAY_S * MILLIS;
                    out.push(series.tick(node.clone(), ts, layout.interval_s, value));
                }
                (None, _) => out.dead_letter(
                    out.at_line(record_line(row)),
                    format!("'{}' is not an M/D/YYYY date", field(row, 0)),
                    record_text(row),
                ),
                (Some(_), None) => out.dead_letter(
                    out.at_line(record_line(row)),
                    format!("value '{}' is not a number", field(row, 1)),
                    record_text(row),
                ),
            }
        }
        out.finish()
    }
}

/// What the header says about the series.
struct Layout {
    node: String,
    node_type: &'static str,
    currency: &'static str,
    unit: &'static str,
    run: &'static str,
    interval_s: i64,
    /// Days from the row's date back to the interval start.
    back_days: i64,
}

impl Layout {
    fn of(header: &csv::ByteRecord) -> Result<Layout, String> {
        let (interval_s, back_days) = match field(header, 0) {
            "Day" => (DAY_S, 0),
            "Week of" => (7 * DAY_S, 6),
            other => return Err(format!("period column '{other}' is neither 'Day' nor 'Week of'")),
        };
        let title = field(header, 1);
        let (name, currency, unit) = [("Dollars per Million Btu", "USD", "MMBtu"), ("BCF", "", "Bcf"), ("MMcf", "", "MMcf")]
            .iter()
            .find_map(|(suffix, currency, unit)| {
                let cut = title.len().checked_sub(suffix.len())?;
                let (name, tail) = (title.get(..cut)?, title.get(cut..)?);
                tail.eq_ignore_ascii_case(suffix).then(|| (name.trim(), *currency, *unit))
            })
            .ok_or_else(|| format!("unknown unit in series title '{title}'"))?;
        let layout = match name.strip_suffix(" Natural Gas Spot Price") {
            Some(hub) => Layout {
                node: hub.to_uppercase(),
                node_type: "HUB",
                currency,
                unit,
                run: "SPOT",
                interval_s,
                back_days,
            },
            None => Layout {
                node: name.to_owned(),
                node_type: "SERIES",
                currency,
                unit,
                run: "REPORT",
                interval_s,
                back_days,
            },
        };
        Ok(layout)
    }
}

/// `12/9/2016` or `01/7/1997`: month and day with or without a leading zero.
fn parse_mdy(text: &str) -> Option<NaiveDate> {
    let mut parts = text.split('/');
    let mut number = || parts.next().filter(|p| (1..=4).contains(&p.len())).and_then(|p| p.parse::<u32>().ok());
    let (month, day, year) = (number()?, number()?, number()?);
    if parts.next().is_some() || year < 1000 {
        return None;
    }
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, distinct, parse_sample, tick};

    #[test]
    fn henry_hub_sample() {
        let Some(parsed) = parse_sample(&EiaGas, "eia/Henry_Hub_Natural_Gas_Spot_Price.csv") else {
            return;
        };
        // 4 preamble lines, the header on line 5, 5,008 daily rows.
        assert_eq!(parsed.ticks.len(), 5_008);
        assert_eq!(parsed.dead_letters.len(), 0);
        assert_eq!(distinct(&parsed.ticks, |t| &t.node), vec!["HENRY HUB"]);
        assert!(
            parsed
                .ticks
                .iter()
                .all(|t| t.interval_s == 86_400 && &*t.unit == "MMBtu" && &*t.currency == "USD" && &*t.run == "SPOT")
        );
        // Line 6: 12/12/2016,3.6; line 7: 12/9/2016,3.75 (unpadded day); last line: 01/7/1997,3.82.
        assert_price(&parsed.ticks, "HENRY HUB", "2016-12-12 00:00:00", 3.6);
        assert_price(&parsed.ticks, "HENRY HUB", "2016-12-09 00:00:00", 3.75);
        assert_price(&parsed.ticks, "HENRY HUB", "1997-01-07 00:00:00", 3.82);
    }

    #[test]
    fn storage_sample() {
        let Some(parsed) = parse_sample(&EiaGas, "eia/Weekly_Working_Gas_in_Underground_Storage.csv") else {
            return;
        };
        // 6 preamble lines, the header on line 7, 596 weekly rows.
        assert_eq!(parsed.ticks.len(), 596);
        assert_eq!(parsed.dead_letters.len(), 0);
        let node = "Lower 48 States Natural Gas Working Underground Storage";
        assert_eq!(distinct(&parsed.ticks, |t| &t.node), vec![node]);
        assert!(
            parsed
                .ticks
                .iter()
                .all(|t| t.interval_s == 7 * 86_400 && &*t.unit == "Bcf" && t.currency.is_empty())
        );
        // Line 8: 05/28/2021 (a Friday),2313 -> the week Saturday 2021-05-22 .. Friday 2021-05-28.
        assert_price(&parsed.ticks, node, "2021-05-22 00:00:00", 2313.0);
        // Line 9: 05/21/2021,2215.
        assert_price(&parsed.ticks, node, "2021-05-15 00:00:00", 2215.0);
        // Last line: 01/1/2010,3117 -> week from Saturday 2009-12-26.
        assert_price(&parsed.ticks, node, "2009-12-26 00:00:00", 3117.0);
        let first = tick(&parsed.ticks, node, "2021-05-22 00:00:00");
        assert_eq!(&*first.run, "REPORT");
    }

    #[test]
    fn bad_rows_and_unknown_layouts() {
        let text = b"Title\nhttp://x\nDay,Henry Hub Natural Gas Spot Price Dollars per Million Btu\n1/2/2020,2.1\n1/3/2020,\n13/1/2020,2\n";
        let parsed = EiaGas.parse("t", "hh.csv", text);
        assert_eq!(parsed.ticks.len(), 1);
        let positions: Vec<&str> = parsed.dead_letters.iter().map(|d| d.position.as_str()).collect();
        assert_eq!(positions, vec!["hh.csv:5", "hh.csv:6"]);

        let monthly = EiaGas.parse(
            "t",
            "m.csv",
            b"Month,Henry Hub Natural Gas Spot Price Dollars per Million Btu\n1/1/2020,2\n2/1/2020,2\n",
        );
        assert_eq!((monthly.ticks.len(), monthly.dead_letters.len()), (0, 2));
        assert!(monthly.dead_letters[0].detail.contains("'Month'"));

        assert_eq!(EiaGas.parse("t", "e.csv", b"just a title\n").dead_letters.len(), 1);
    }

    #[test]
    fn dates() {
        assert_eq!(parse_mdy("01/7/1997"), NaiveDate::from_ymd_opt(1997, 1, 7));
        assert_eq!(parse_mdy("12/12/2016"), NaiveDate::from_ymd_opt(2016, 12, 12));
        assert_eq!(parse_mdy("2/30/2016"), None);
        assert_eq!(parse_mdy("20:41:18 GMT-0600 (Central Standard Time)"), None);
        assert_eq!(parse_mdy("1/2/3"), None);
    }
}
