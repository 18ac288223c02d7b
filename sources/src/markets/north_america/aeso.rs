//! AESO historical pool price report (`aeso-pool-price`): the ETS CSV
//! `HistoricalPoolPriceReportServlet.csv`.
//!
//! A preamble (`Pool Price` and blank lines), then `Date (HE), Price ($),
//! 30Ravg ($), AIL Demand (MW)`, every field quoted.
//!
//! * Time: `MM/DD/YYYY HH`, hour-ending 01–24 in Alberta prevailing time
//!   (America/Edmonton). At the autumn change the repeated hour is written
//!   twice, the second time with an asterisk (`11/06/2022 02*`): the plain
//!   label is the daylight hour, the starred one the standard hour. On the
//!   spring day the file goes from HE01 to HE03 (see [`super::clock`]).
//! * Node `ALBERTA` (the one pool price, node type `REGION`), run RT (the
//!   pool price settles in real time), CAD. The 30-day average and the
//!   demand columns are not price ticks and are not kept.
//! * Hours not settled when the report was produced are written `-`: such a
//!   row is a dead letter naming the placeholder, at its line.

use chrono::{NaiveTime, TimeDelta};
use chrono_tz::America::Edmonton;

use super::clock::{Repeat, Resolver, hour_ending};
use super::{CsvTable, HOUR_S, Output, Prices, RowError, number, us_date};
use crate::markets::{MarketFormat, Parsed};

/// The `aeso-pool-price` format.
pub(super) struct AesoPoolPrice;

const EXPECTED: &str = "'Date (HE)', 'Price ($)'";

impl MarketFormat for AesoPoolPrice {
    fn name(&self) -> &'static str {
        "aeso-pool-price"
    }

    fn description(&self) -> &'static str {
        "AESO historical pool price report CSV, MM/DD/YYYY HH hour-ending Alberta prevailing time with the repeated hour marked 02*, CAD; '-' placeholder rows are dead letters"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = Output::new(table, file, "AESO", "CAD");
        let is_header = |names: &[String]| names.first().is_some_and(|n| n.eq_ignore_ascii_case("Date (HE)"));
        let Some(csv) = CsvTable::open(bytes, &mut out, EXPECTED, is_header, |_, _| {}) else {
            return out.finish();
        };
        let columns = (|| Ok::<_, RowError>((csv.header.require(&["Date (HE)"])?, csv.header.require(&["Price ($)"])?)))();
        let (date_column, price_column) = match columns {
            Ok(columns) => columns,
            Err(error) => {
                csv.reject_header(&mut out, &error);
                return out.finish();
            }
        };
        let node = out.intern("ALBERTA");
        let node_type = Some(out.intern("REGION"));
        let run = out.intern("RT");
        let mut resolver = Resolver::new(Edmonton);
        csv.for_each_row(&mut out, |out, row| {
            let text = row.required(price_column)?;
            if text == "-" {
                return Err(RowError::Placeholder {
                    column: row.column(price_column).to_owned(),
                    text: text.to_owned(),
                    meaning: "the pool price of this hour was not settled when the report was produced",
                });
            }
            let price = number(text).ok_or_else(|| RowError::value(row.column(price_column), text, "a number"))?;
            let label = row.required(date_column)?;
            let bad_label = || RowError::value(row.column(date_column), label, "MM/DD/YYYY HH with HH 01-24, the repeated hour marked *");
            let (day, hour) = label.split_once(' ').ok_or_else(bad_label)?;
            let day = us_date(day).ok_or_else(bad_label)?;
            let (hour, repeated) = match hour.strip_suffix('*') {
                Some(hour) => (hour, true),
                None => (hour, false),
            };
            let hour = hour.parse::<u32>().ok().filter(|h| (1..=24).contains(h)).ok_or_else(bad_label)?;
            // The label's nominal end, `HH:00`, names the hour in errors.
            let local = day.and_time(NaiveTime::MIN) + TimeDelta::hours(i64::from(hour));
            let ts = resolver.pick(hour_ending(Edmonton, day, hour), local, &node, Repeat::Marked(repeated))?;
            let prices = Prices {
                price: Some(price),
                ..Prices::default()
            };
            out.push(node.clone(), node_type.clone(), ts, HOUR_S, run.clone(), prices, 0);
            Ok(())
        });
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, parse_sample, utc};
    use carbonflow_core::DeadLetterReason;

    const PREAMBLE: &str = "Pool Price\n\n\"\"\n\nDate (HE),Price ($),30Ravg ($),AIL Demand (MW)\n";

    fn parse(rows: &[(&str, &str)]) -> Parsed {
        let body: String = rows
            .iter()
            .map(|(label, price)| format!("\"{label}\",\"{price}\",\"1.00\",\"9000.0\"\n"))
            .collect();
        AesoPoolPrice.parse("t", "pool.csv", format!("{PREAMBLE}{body}").as_bytes())
    }

    fn starts(parsed: &Parsed) -> Vec<i64> {
        parsed.ticks.iter().map(|tick| tick.ts).collect()
    }

    #[test]
    fn sample_pool_price() {
        let Some(parsed) = parse_sample(&AesoPoolPrice, "aeso/HistoricalPoolPriceReportServlet.csv") else {
            return;
        };
        // 8,808 hourly rows, the last 9 (2023-10-13 HE16–HE24) are "-" placeholders.
        assert_eq!(parsed.ticks.len(), 8_799);
        assert_eq!(parsed.dead_letters.len(), 9);
        let first = &parsed.dead_letters[0];
        assert_eq!(
            (first.reason, first.position.as_str()),
            (DeadLetterReason::Parse, "HistoricalPoolPriceReportServlet.csv:8805")
        );
        assert!(first.detail.contains("placeholder \"-\""), "{}", first.detail);
        assert_eq!(parsed.dead_letters[8].position, "HistoricalPoolPriceReportServlet.csv:8813");
        // Line 6: "10/12/2022 01","74.72" — HE01 MDT starts 06:00 UTC.
        assert_price(&parsed.ticks, "ALBERTA", "2022-10-12 06:00:00", 74.72);
        // Lines 607-609: "11/06/2022 02" 54.11, "11/06/2022 02*" 48.54, "11/06/2022 03" 53.74.
        assert_price(&parsed.ticks, "ALBERTA", "2022-11-06 07:00:00", 54.11);
        assert_price(&parsed.ticks, "ALBERTA", "2022-11-06 08:00:00", 48.54);
        assert_price(&parsed.ticks, "ALBERTA", "2022-11-06 09:00:00", 53.74);
        // Lines 3631-3632: "03/12/2023 01" 276.58 (00:00 MST), then "03/12/2023 03" 63.55 (01:00 MST).
        assert_price(&parsed.ticks, "ALBERTA", "2023-03-12 07:00:00", 276.58);
        assert_price(&parsed.ticks, "ALBERTA", "2023-03-12 08:00:00", 63.55);
        // Line 8804: "10/13/2023 15","36.90" — the last settled hour, 14:00 MDT.
        assert_price(&parsed.ticks, "ALBERTA", "2023-10-13 20:00:00", 36.90);
        // The year of hours is gapless and without duplicates across both DST changes.
        assert!(parsed.ticks.windows(2).all(|pair| pair[1].ts - pair[0].ts == 3_600_000));
    }

    #[test]
    fn dst_spring_gap() {
        let parsed = parse(&[("03/12/2023 01", "1"), ("03/12/2023 03", "3"), ("03/12/2023 04", "4"), ("03/12/2023 02", "2")]);
        assert_eq!(
            starts(&parsed),
            vec![utc("2023-03-12 07:00:00"), utc("2023-03-12 08:00:00"), utc("2023-03-12 09:00:00")]
        );
        // HE02 does not exist on the spring day: a row that carries it is a dead letter.
        assert_eq!(parsed.dead_letters.len(), 1);
        assert_eq!(parsed.dead_letters[0].position, "pool.csv:9");
        assert!(parsed.dead_letters[0].detail.contains("America/Edmonton"));
    }

    #[test]
    fn dst_autumn_repeat_follows_the_asterisk() {
        let parsed = parse(&[("11/06/2022 01", "1"), ("11/06/2022 02*", "3"), ("11/06/2022 02", "2"), ("11/06/2022 03", "4")]);
        let expected = ["06:00", "08:00", "07:00", "09:00"].map(|time| utc(&format!("2022-11-06 {time}:00")));
        assert_eq!(starts(&parsed), expected);
        // An asterisk on an hour that is not repeated is a contradiction, not a guess.
        let wrong = parse(&[("11/07/2022 02*", "1")]);
        assert!(wrong.ticks.is_empty());
        assert!(wrong.dead_letters[0].detail.contains("repeated"));
    }

    #[test]
    fn malformed_labels_and_prices_are_dead_letters() {
        let parsed = parse(&[("10/12/2022 25", "1"), ("10/12/2022", "1"), ("10/12/2022 01", "abc"), ("2022-10-12 01", "1")]);
        assert!(parsed.ticks.is_empty());
        let positions: Vec<&str> = parsed.dead_letters.iter().map(|l| l.position.as_str()).collect();
        assert_eq!(positions, vec!["pool.csv:6", "pool.csv:7", "pool.csv:8", "pool.csv:9"]);
    }
}
