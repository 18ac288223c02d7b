//! `epex-spot`: EPEX SPOT auction results CSV, the yearly price files of
//! EPEX SPOT's market-data service (`auction_spot_prices_<area>_<year>.csv`
//! for the day-ahead auction, `intraday_auction_spot_prices_…` for the
//! intraday auctions).
//!
//! Layout: a description line (the market, the area, the currency, e.g.
//! `… Currency: EUR`), then the header `Delivery day, Hour 1, Hour 2, Hour 3A,
//! Hour 3B, Hour 4, …, Hour 24` followed by aggregates (`Minimum`, `Maximum`,
//! `Baseload`, `Peakload`, …), then one row per delivery day written
//! `DD/MM/YYYY`. Files of sub-hourly products (the day-ahead auction's
//! 15-minute products since 2025-10-01, half-hourly auctions) split every
//! hour column into `Hour 1 Q1 … Hour 1 Q4` (or `Q1, Q2`). EPEX publishes
//! this layout only to its data subscribers; what is read here is the layout
//! as open-source readers of those files handle it (see the fixtures'
//! README).
//!
//! Conventions:
//! * Time: the delivery day and its hours are Central European prevailing
//!   time (CET/CEST, `Europe/Paris`). `Hour n` is the hour starting at
//!   `(n−1):00`, quarter `Qk` starts `(k−1)·15 min` later (`(k−1)·30 min` in
//!   a half-hourly file). The columns keep the same names every day: on the
//!   autumn day, when 02:00–03:00 happens twice, `Hour 3A` is the first pass
//!   (CEST) and `Hour 3B` the second (CET); on other days `Hour 3A` is the
//!   ordinary third hour and `Hour 3B` stays empty; on the spring day, when
//!   02:00–03:00 is skipped, `Hour 3A` stays empty too. A day has 23, 24 or
//!   25 hourly ticks (92, 96 or 100 quarter-hours).
//! * One tick per delivery day and product column: `market` `EPEX`, `node`
//!   the market area from the file name in capitals
//!   (`auction_spot_prices_germany_luxembourg_2024.csv` → `GERMANY_LUXEMBOURG`;
//!   when the name has another shape, as a Kafka message's position does, the
//!   description line, which names the area), `node_type` `ZONE`,
//!   `run` `DA` (`IDA` for `intraday_auction…` files), `unit` `MWh`,
//!   `currency` the last three-capital-letter word of the description line
//!   (`EUR` when it names none). The aggregate columns are derived from the
//!   products and are not kept.
//! * Dead letters at `file:line`: a row whose delivery day does not parse (one
//!   for the row); a cell that is not a number, that is empty although its
//!   product exists that day, or that holds a price for a time the day does
//!   not have (`Hour 3B` outside the autumn day, `Hour 3A` on the spring day),
//!   or that a plain `Hour 3` column holds on the autumn day (a file without
//!   the 3A/3B split cannot say which pass it is) (one per cell, the column
//!   in the detail). Empty cells of products the day does not have are how
//!   the layout is meant to be and produce nothing.
//!
//! Only comma-separated files with `.` decimals are read, and every file is
//! read on Central European time: EPEX's Great Britain files, whose clock
//! this module does not know, are not covered.

use chrono::{LocalResult, NaiveDate, NaiveTime, TimeDelta, TimeZone};
use chrono_tz::Tz;

use super::{FileOutput, Series, field, parse_price, record_line, record_text};
use crate::markets::{MarketFormat, Parsed};

/// The `epex-spot` format.
pub struct EpexSpot;

impl MarketFormat for EpexSpot {
    fn name(&self) -> &'static str {
        "epex-spot"
    }

    fn description(&self) -> &'static str {
        "EPEX SPOT auction results CSV (auction_spot_prices_<area>_<year>.csv): Delivery day DD/MM/YYYY x Hour 1..24 with the autumn \
         repeat as Hour 3A/3B, or Hour n Q1-Q4 15-min products; CET/CEST; node = area from the file name, run DA (IDA for intraday \
         auctions), currency from the description line, MWh"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = FileOutput::new(table, file);
        let records = super::csv_records(&mut out, bytes);
        let Some(header_index) = records.iter().position(|record| is_delivery_day(field(record, 0))) else {
            if let Some(first) = records.first() {
                let position = out.at_line(record_line(first));
                out.dead_letter(position, "no header row starting with 'Delivery day'", String::new());
            }
            return out.finish();
        };
        let header = &records[header_index];
        let products = match Products::of(header) {
            Ok(products) => products,
            Err(detail) => {
                let position = out.at_line(record_line(header));
                out.dead_letter(position, detail, record_text(header));
                return out.finish();
            }
        };
        let description = records[..header_index].iter().map(record_text).collect::<Vec<_>>().join(" ");
        let node = out.intern(&area_of(file, &description));
        let series = Series::new(&mut out, "EPEX", "ZONE", &currency_of(&description), "MWh", run_of(file));
        for row in &records[header_index + 1..] {
            read_day(&mut out, &series, &node, &products, row);
        }
        out.finish()
    }
}

/// The clock of the delivery days.
const CET: Tz = chrono_tz::Europe::Paris;

/// Seconds in an hour.
const HOUR_S: i64 = 3_600;

/// Which pass of the autumn's repeated hour a column holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pass {
    /// `Hour 3A`: the first (summer time), and the plain third hour on other days.
    First,
    /// `Hour 3B`: the second (winter time).
    Second,
}

/// A product column: `Hour <hour>[A|B][ Q<quarter>]`.
#[derive(Clone, Debug, PartialEq)]
struct Product {
    column: usize,
    name: String,
    hour: u32,
    pass: Option<Pass>,
    /// 1 for an hourly column.
    quarter: u32,
}

impl Product {
    /// The product a header name stands for, if it is one.
    fn parse(column: usize, name: &str) -> Option<Self> {
        let rest = name.get(..5).filter(|hour| hour.eq_ignore_ascii_case("Hour "))?;
        let rest = &name[rest.len()..];
        let (label, quarter) = match rest.split_once(' ') {
            Some((label, quarter)) => {
                let quarter = quarter.strip_prefix(['Q', 'q'])?.parse::<u32>().ok().filter(|q| (1..=4).contains(q))?;
                (label, quarter)
            }
            None => (rest, 1),
        };
        let (digits, pass) = match label.as_bytes().last()? {
            b'A' | b'a' => (&label[..label.len() - 1], Some(Pass::First)),
            b'B' | b'b' => (&label[..label.len() - 1], Some(Pass::Second)),
            _ => (label, None),
        };
        let hour = digits.parse::<u32>().ok().filter(|h| (1..=24).contains(h))?;
        Some(Product {
            column,
            name: name.to_owned(),
            hour,
            pass,
            quarter,
        })
    }
}

/// The product columns of a header and the length of their products.
struct Products {
    columns: Vec<Product>,
    interval_s: i64,
}

impl Products {
    fn of(header: &csv::ByteRecord) -> Result<Self, String> {
        let columns: Vec<Product> = (0..header.len()).filter_map(|index| Product::parse(index, field(header, index))).collect();
        let per_hour = columns
            .iter()
            .map(|product| product.quarter)
            .max()
            .ok_or("no 'Hour n' product columns in the header")?;
        let interval_s = match per_hour {
            1 => HOUR_S,
            2 | 4 => HOUR_S / i64::from(per_hour),
            _ => return Err(format!("the header's quarters go to Q{per_hour}; expected hourly, Q1-Q2 or Q1-Q4 columns")),
        };
        Ok(Products { columns, interval_s })
    }
}

/// Whether a product exists on a day, and when it starts.
#[derive(Debug, PartialEq)]
enum Start {
    /// The product's UTC start.
    At(i64),
    /// The day has no such time (spring gap, or a 3B column outside the autumn day).
    Absent,
}

/// Resolves a product of `day` on the CET clock.
fn start_of(day: NaiveDate, product: &Product, interval_s: i64) -> Result<Start, String> {
    let offset = i64::from(product.hour - 1) * HOUR_S + i64::from(product.quarter - 1) * interval_s;
    let local = day.and_time(NaiveTime::MIN) + TimeDelta::seconds(offset);
    let millis = |time: chrono::DateTime<Tz>| time.timestamp_millis();
    match (CET.from_local_datetime(&local), product.pass) {
        (LocalResult::Single(time), None | Some(Pass::First)) => Ok(Start::At(millis(time))),
        (LocalResult::Single(_), Some(Pass::Second)) | (LocalResult::None, _) => Ok(Start::Absent),
        (LocalResult::Ambiguous(a, b), Some(pass)) => {
            let (earlier, later) = (millis(a).min(millis(b)), millis(a).max(millis(b)));
            Ok(Start::At(if pass == Pass::First { earlier } else { later }))
        }
        (LocalResult::Ambiguous(..), None) => Err(format!(
            "{}: {local} happens twice on {day} and the column does not say which (3A/3B)",
            product.name
        )),
    }
}

/// The ticks and dead letters of one delivery day.
fn read_day(out: &mut FileOutput<'_>, series: &Series, node: &carbonflow_core::Str, products: &Products, row: &csv::ByteRecord) {
    let line = record_line(row);
    let date_text = field(row, 0);
    let Some(day) = ["%d/%m/%Y", "%Y-%m-%d"]
        .iter()
        .find_map(|format| NaiveDate::parse_from_str(date_text, format).ok())
    else {
        out.dead_letter(out.at_line(line), format!("delivery day '{date_text}' is not DD/MM/YYYY"), record_text(row));
        return;
    };
    for product in &products.columns {
        let text = field(row, product.column);
        let outcome = match (start_of(day, product, products.interval_s), text.is_empty()) {
            (Ok(Start::Absent), true) => continue,
            (Ok(Start::Absent), false) => Err(format!("{}: {day} has no such time, yet the cell holds '{text}'", product.name)),
            (Ok(Start::At(_)), true) => Err(format!("{}: no price for a product {day} has", product.name)),
            (Ok(Start::At(start)), false) => match parse_price(text) {
                Some(price) => Ok((start, price)),
                None => Err(format!("{}: '{text}' is not a number", product.name)),
            },
            (Err(detail), _) => Err(detail),
        };
        match outcome {
            Ok((start, price)) => out.push(series.tick(node.clone(), start, products.interval_s, price)),
            Err(detail) => out.dead_letter(out.at_line(line), detail, record_text(row)),
        }
    }
}

/// `Delivery day` (or `Delivery date`), the first column of the header.
fn is_delivery_day(name: &str) -> bool {
    name.eq_ignore_ascii_case("Delivery day") || name.eq_ignore_ascii_case("Delivery date")
}

/// The file's name without its folders and extension.
fn stem(file: &str) -> &str {
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

/// The market area: what follows `_prices_` in the file name, less the
/// year; the description line when the name has no such part.
fn area_of(file: &str, description: &str) -> String {
    let area = stem(file).split_once("_prices_").map(|(_, area)| match area.rsplit_once('_') {
        Some((area, year)) if year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()) => area,
        _ => area,
    });
    match area {
        Some(area) => area.to_ascii_uppercase(),
        None => description.trim_start_matches('#').trim().to_owned(),
    }
}

/// `IDA` for the intraday auctions' files, `DA` otherwise.
fn run_of(file: &str) -> &'static str {
    if stem(file).to_ascii_lowercase().starts_with("intraday") {
        "IDA"
    } else {
        "DA"
    }
}

/// The last three-capital-letter word of the description, or `EUR`.
fn currency_of(description: &str) -> String {
    description
        .split(|c: char| !c.is_ascii_alphanumeric())
        .rev()
        .find(|word| word.len() == 3 && word.bytes().all(|b| b.is_ascii_uppercase()))
        .unwrap_or("EUR")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, tick, utc};

    /// Written from the layout readers of EPEX's files document (see `tests/fixtures/markets/README.md`).
    const HOURLY_2024: &[u8] = include_bytes!("../../../tests/fixtures/markets/auction_spot_prices_germany_luxembourg_2024.csv");
    const QUARTER_HOURLY_2025: &[u8] = include_bytes!("../../../tests/fixtures/markets/auction_spot_prices_france_2025.csv");

    fn day_starts(parsed: &Parsed, day: &str) -> Vec<i64> {
        let (from, to) = (utc(&format!("{day} 00:00:00")) - 2 * HOUR_S * 1_000, utc(&format!("{day} 23:00:00")));
        parsed.ticks.iter().map(|t| t.ts).filter(|ts| (from..to).contains(ts)).collect()
    }

    fn letters(parsed: &Parsed) -> Vec<(&str, &str)> {
        parsed.dead_letters.iter().map(|l| (l.position.as_str(), l.detail.as_str())).collect()
    }

    /// A header of hourly columns and one row of `cells` (Hour 1, 2, 3A, 3B, 4 … 24).
    fn hourly(date: &str, cells: &[&str]) -> String {
        let mut names = vec!["Hour 1".to_owned(), "Hour 2".into(), "Hour 3A".into(), "Hour 3B".into()];
        names.extend((4..=24).map(|h| format!("Hour {h}")));
        format!("Prices in EUR\nDelivery day,{}\n{date},{}\n", names.join(","), cells.join(","))
    }

    #[test]
    fn fixture_hourly_day_ahead_at_both_dst_changes() {
        let parsed = EpexSpot.parse("t", "auction_spot_prices_germany_luxembourg_2024.csv", HOURLY_2024);
        // Lines 3-6: 25 (autumn) + 23 (spring) + 22 + 24 hours; line 7's day does not parse.
        assert_eq!(parsed.ticks.len(), 94);
        let file = "auction_spot_prices_germany_luxembourg_2024.csv";
        assert_eq!(
            letters(&parsed),
            vec![
                (format!("{file}:5").as_str(), "Hour 7: 'n/a' is not a number"),
                (format!("{file}:5").as_str(), "Hour 12: no price for a product 2024-01-16 has"),
                (format!("{file}:7").as_str(), "delivery day '32/01/2024' is not DD/MM/YYYY"),
            ]
        );
        let first = &parsed.ticks[0];
        assert_eq!(
            (
                &*first.market,
                &*first.node,
                first.node_type.as_deref(),
                &*first.run,
                &*first.currency,
                &*first.unit,
                first.interval_s
            ),
            ("EPEX", "GERMANY_LUXEMBOURG", Some("ZONE"), "DA", "EUR", "MWh", 3600)
        );
        // Line 3, 27/10/2024 (CEST until 03:00, then CET): Hour 1 = 88.60 from 22:00 UTC the day before,
        // Hour 3A = 100.66 from 00:00 UTC, Hour 3B = 110.97 from 01:00 UTC, Hour 4 = 96.79 from 02:00 UTC, Hour 24 = 88.22 from 22:00 UTC.
        assert_price(&parsed.ticks, "GERMANY_LUXEMBOURG", "2024-10-26 22:00:00", 88.60);
        assert_price(&parsed.ticks, "GERMANY_LUXEMBOURG", "2024-10-27 00:00:00", 100.66);
        assert_price(&parsed.ticks, "GERMANY_LUXEMBOURG", "2024-10-27 01:00:00", 110.97);
        assert_price(&parsed.ticks, "GERMANY_LUXEMBOURG", "2024-10-27 02:00:00", 96.79);
        assert_price(&parsed.ticks, "GERMANY_LUXEMBOURG", "2024-10-27 22:00:00", 88.22);
        let autumn: Vec<i64> = (0..25).map(|h| utc("2024-10-26 22:00:00") + h * HOUR_S * 1_000).collect();
        assert_eq!(day_starts(&parsed, "2024-10-27"), autumn);
        // Line 4, 31/03/2024: 3A and 3B empty; Hour 2 = 35.12 from 00:00 UTC, Hour 4 = 50.08 from 01:00 UTC (03:00 CEST).
        assert_price(&parsed.ticks, "GERMANY_LUXEMBOURG", "2024-03-31 00:00:00", 35.12);
        assert_price(&parsed.ticks, "GERMANY_LUXEMBOURG", "2024-03-31 01:00:00", 50.08);
        let spring: Vec<i64> = (0..23).map(|h| utc("2024-03-30 23:00:00") + h * HOUR_S * 1_000).collect();
        assert_eq!(day_starts(&parsed, "2024-03-31"), spring);
        // Line 6, 15/01/2024 (CET): Hour 3A = 119.29 is the ordinary third hour, 02:00 CET = 01:00 UTC.
        assert_eq!(tick(&parsed.ticks, "GERMANY_LUXEMBOURG", "2024-01-15 01:00:00").price, Some(119.29));
        assert_eq!(day_starts(&parsed, "2024-01-15").len(), 24);
    }

    #[test]
    fn fixture_quarter_hourly_day_ahead_on_the_autumn_day() {
        let parsed = EpexSpot.parse("t", "auction_spot_prices_france_2025.csv", QUARTER_HOURLY_2025);
        // Line 3: 100 quarter-hours on 26/10/2025; line 4: 96, less a '-' cell.
        assert_eq!(parsed.ticks.len(), 195);
        assert_eq!(
            letters(&parsed),
            vec![("auction_spot_prices_france_2025.csv:4", "Hour 18 Q3: '-' is not a number")]
        );
        assert!(parsed.ticks.iter().all(|t| t.interval_s == 900 && &*t.node == "FRANCE"));
        let autumn: Vec<i64> = (0..100).map(|q| utc("2025-10-25 22:00:00") + q * 900_000).collect();
        assert_eq!(day_starts(&parsed, "2025-10-26"), autumn);
        // Line 3: Hour 1 Q1 = 114.66 from 22:00 UTC, Hour 3A Q2 = 81.39 from 00:15 UTC, Hour 3B Q2 = 89.95 from 01:15 UTC,
        // Hour 24 Q4 = 81.17 from 22:45 UTC.
        assert_price(&parsed.ticks, "FRANCE", "2025-10-25 22:00:00", 114.66);
        assert_price(&parsed.ticks, "FRANCE", "2025-10-26 00:15:00", 81.39);
        assert_price(&parsed.ticks, "FRANCE", "2025-10-26 01:15:00", 89.95);
        assert_price(&parsed.ticks, "FRANCE", "2025-10-26 22:45:00", 81.17);
        // Line 4, 01/10/2025 (CEST): Hour 18 Q2 = 92.50 from 15:15 UTC; Hour 18 Q3 (15:30) is the dead letter.
        assert_price(&parsed.ticks, "FRANCE", "2025-10-01 15:15:00", 92.50);
        assert_eq!(day_starts(&parsed, "2025-10-01").len(), 95);
    }

    #[test]
    fn quarter_hours_on_the_spring_day() {
        let mut names = vec![];
        for label in ["1", "2", "3A", "3B"].into_iter().map(str::to_owned).chain((4..=24).map(|h| h.to_string())) {
            names.extend((1..=4).map(|q| format!("Hour {label} Q{q}")));
        }
        let cells: Vec<String> = names
            .iter()
            .map(|name| if name.starts_with("Hour 3") { String::new() } else { "10.5".into() })
            .collect();
        let text = format!("Currency: EUR\nDelivery day,{}\n29/03/2026,{}\n", names.join(","), cells.join(","));
        let parsed = EpexSpot.parse("t", "auction_spot_prices_germany_luxembourg_2026.csv", text.as_bytes());
        assert!(parsed.dead_letters.is_empty());
        // 02:00-03:00 does not exist: 92 quarter-hours, Hour 2 Q4 (00:45 UTC) followed by Hour 4 Q1 (01:00 UTC).
        let expected: Vec<i64> = (0..92).map(|q| utc("2026-03-28 23:00:00") + q * 900_000).collect();
        assert_eq!(parsed.ticks.iter().map(|t| t.ts).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn half_hourly_columns_are_30_minute_products() {
        let text = "EUR\nDelivery day,Hour 1 Q1,Hour 1 Q2,Hour 2 Q1,Baseload\n15/01/2024,10.5,11,12.25,11.25\n";
        let parsed = EpexSpot.parse("t", "x.csv", text.as_bytes());
        let ticks: Vec<(i64, i64, Option<f64>)> = parsed.ticks.iter().map(|t| (t.ts, t.interval_s, t.price)).collect();
        let at = |time: &str| utc(time);
        assert_eq!(
            ticks,
            vec![
                (at("2024-01-14 23:00:00"), 1800, Some(10.5)),
                (at("2024-01-14 23:30:00"), 1800, Some(11.0)),
                (at("2024-01-15 00:00:00"), 1800, Some(12.25))
            ]
        );
        let parsed = EpexSpot.parse("t", "x.csv", b"EUR\nDelivery day,Hour 1 Q1,Hour 1 Q3\n15/01/2024,1,2\n");
        assert!(parsed.ticks.is_empty());
        assert!(letters(&parsed)[0].1.contains("Q3"), "{:?}", letters(&parsed));
    }

    #[test]
    fn prices_at_times_the_day_lacks_are_dead_letters() {
        let mut spring = vec!["50"; 25];
        spring[3] = "";
        // A price in Hour 3A on the spring day.
        let parsed = EpexSpot.parse("t", "x.csv", hourly("31/03/2024", &spring).as_bytes());
        assert_eq!(parsed.ticks.len(), 23);
        assert_eq!(
            letters(&parsed),
            vec![("x.csv:3", "Hour 3A: 2024-03-31 has no such time, yet the cell holds '50'")]
        );
        // A price in Hour 3B on an ordinary day.
        let parsed = EpexSpot.parse("t", "x.csv", hourly("15/01/2024", &["50"; 25]).as_bytes());
        assert_eq!(parsed.ticks.len(), 24);
        assert_eq!(
            letters(&parsed),
            vec![("x.csv:3", "Hour 3B: 2024-01-15 has no such time, yet the cell holds '50'")]
        );
        // The autumn hour without A/B cannot be placed.
        let text = format!(
            "EUR\nDelivery day,{}\n27/10/2024,{}\n",
            (1..=24).map(|h| format!("Hour {h}")).collect::<Vec<_>>().join(","),
            vec!["50"; 24].join(",")
        );
        let parsed = EpexSpot.parse("t", "x.csv", text.as_bytes());
        assert_eq!(parsed.ticks.len(), 23);
        assert!(
            letters(&parsed)[0].1.starts_with("Hour 3: 2024-10-27 02:00:00 happens twice"),
            "{:?}",
            letters(&parsed)
        );
    }

    #[test]
    fn names_currencies_and_runs() {
        assert_eq!(area_of("data/auction_spot_prices_germany_luxembourg_2024.csv", "EUR"), "GERMANY_LUXEMBOURG");
        assert_eq!(area_of("intraday_auction_spot_prices_austria_2025.csv", "EUR"), "AUSTRIA");
        // A Kafka message's position: the description names the area.
        assert_eq!(
            area_of("epex/0@17", "# Day-Ahead Auction - Austria - Currency: EUR"),
            "Day-Ahead Auction - Austria - Currency: EUR"
        );
        assert_eq!(run_of("intraday_auction_spot_prices_austria_2025.csv"), "IDA");
        assert_eq!(run_of("auction_spot_prices_austria_2025.csv"), "DA");
        assert_eq!(currency_of("# Day-Ahead Auction - Switzerland - Currency: CHF"), "CHF");
        assert_eq!(currency_of("Prices - Germany/Luxembourg - 2024 - EUR"), "EUR");
        assert_eq!(currency_of("Auction prices"), "EUR");
        assert_eq!(
            Product::parse(3, "Hour 3B Q4").map(|p| (p.hour, p.pass, p.quarter)),
            Some((3, Some(Pass::Second), 4))
        );
        for not_a_product in ["Baseload", "Hour 25", "Hour 3C", "Hour 1 Q5", "Hours 1"] {
            assert_eq!(Product::parse(0, not_a_product), None, "{not_a_product}");
        }
    }

    #[test]
    fn files_without_products_are_one_dead_letter() {
        let parsed = EpexSpot.parse("t", "x.csv", b"EUR\nDelivery day,Baseload\n01/01/2024,50\n");
        assert_eq!(letters(&parsed), vec![("x.csv:2", "no 'Hour n' product columns in the header")]);
        let parsed = EpexSpot.parse("t", "x.csv", b"Date,Price\n2024-01-01,50\n");
        assert_eq!(letters(&parsed), vec![("x.csv:1", "no header row starting with 'Delivery day'")]);
        assert!(EpexSpot.parse("t", "x.csv", b"").dead_letters.is_empty());
    }
}
