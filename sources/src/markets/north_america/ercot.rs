//! ERCOT settlement point prices CSV (`ercot-spp`): the real-time report
//! NP6-905-CD (`DeliveryDate, DeliveryHour, DeliveryInterval,
//! SettlementPointName, SettlementPointType, SettlementPointPrice, DSTFlag`,
//! 15-minute intervals) and the day-ahead report NP4-190-CD (`DeliveryDate,
//! HourEnding, SettlementPoint, SettlementPointPrice, DSTFlag`, hourly).
//!
//! * Time: US Central prevailing (America/Chicago), hour-ending: the hour is
//!   `DeliveryHour` (1–24) or `HourEnding` (`01:00`–`24:00`), and in the
//!   real-time report `DeliveryInterval` 1–4 is the quarter within it, so an
//!   interval starts at the hour's start + 15 min × (interval − 1).
//! * The autumn repeated hour is written twice, the repeat with `DSTFlag` =
//!   `Y` (standard time); without a `DSTFlag` column, by order per node. On
//!   the spring day the hour after HE01 is labelled HE03 (see
//!   [`super::clock`]); a row labelled HE02 on that day is a dead letter.
//! * Run RT (15 min) when the file has `DeliveryInterval`, else DA (1 h).
//! * Price `SettlementPointPrice` (ERCOT publishes no components here).
//! * Node `SettlementPointName`/`SettlementPoint`; node type from
//!   `SettlementPointType`: `HU`, `SH`, `AH` → `HUB`, `LZ`, `LZEW`, `LZ_DC`,
//!   `LZDCEW` → `ZONE`, `RN` → `GEN`, others as written.

use std::borrow::Cow;

use chrono::{NaiveTime, TimeDelta};
use chrono_tz::America::Chicago;

use super::clock::{Repeat, Resolver, hour_ending};
use super::{CsvTable, HOUR_S, MILLIS, Output, Prices, Row, RowError, us_date};
use crate::markets::{MarketFormat, Parsed};

/// The `ercot-spp` format.
pub(super) struct ErcotSpp;

const EXPECTED: &str = "'DeliveryDate', 'DeliveryHour' or 'HourEnding', 'SettlementPointName' or 'SettlementPoint', 'SettlementPointPrice'";

/// Seconds in a real-time settlement interval.
const QUARTER_S: i64 = 900;

fn node_type(kind: &str) -> Cow<'_, str> {
    let is = |codes: &[&str]| codes.iter().any(|code| kind.eq_ignore_ascii_case(code));
    if is(&["HU", "SH", "AH"]) {
        "HUB".into()
    } else if is(&["LZ", "LZEW", "LZ_DC", "LZDCEW"]) {
        "ZONE".into()
    } else if is(&["RN"]) {
        "GEN".into()
    } else if kind.bytes().any(|b| b.is_ascii_lowercase()) {
        kind.to_ascii_uppercase().into()
    } else {
        kind.into()
    }
}

/// `7`, `07` or `07:00`: the hour ending 1–24.
fn hour(row: &Row<'_>, index: usize) -> Result<u32, RowError> {
    let text = row.required(index)?;
    let hour = match text.split_once(':') {
        Some((hour, "00")) => hour,
        Some(_) => "",
        None => text,
    };
    hour.parse::<u32>()
        .ok()
        .filter(|h| (1..=24).contains(h))
        .ok_or_else(|| RowError::value(row.column(index), text, "an hour ending 1-24"))
}

impl MarketFormat for ErcotSpp {
    fn name(&self) -> &'static str {
        "ercot-spp"
    }

    fn description(&self) -> &'static str {
        "ERCOT settlement point prices CSV (NP6-905-CD RT 15 min, NP4-190-CD DA hourly), hour-ending US Central prevailing with DSTFlag for the repeated hour, USD"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = Output::new(table, file, "ERCOT", "USD");
        let is_header = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case("DeliveryDate"));
        let Some(csv) = CsvTable::open(bytes, &mut out, EXPECTED, is_header, |_, _| {}) else {
            return out.finish();
        };
        let header = &csv.header;
        let columns = (|| {
            Ok::<_, RowError>((
                header.require(&["DeliveryDate"])?,
                header.require(&["DeliveryHour", "HourEnding"])?,
                header.require(&["SettlementPointName", "SettlementPoint"])?,
                header.require(&["SettlementPointPrice"])?,
            ))
        })();
        let (date_column, hour_column, node_column, price_column) = match columns {
            Ok(columns) => columns,
            Err(error) => {
                csv.reject_header(&mut out, &error);
                return out.finish();
            }
        };
        let interval_column = header.find(&["DeliveryInterval"]);
        let (type_column, flag_column) = (header.find(&["SettlementPointType"]), header.find(&["DSTFlag"]));
        let (run, interval_s) = if interval_column.is_some() { ("RT", QUARTER_S) } else { ("DA", HOUR_S) };
        let run = out.intern(run);
        let mut resolver = Resolver::new(Chicago);
        csv.for_each_row(&mut out, |out, row| {
            let price = row.number(price_column)?;
            let text = row.required(date_column)?;
            let day = us_date(text).ok_or_else(|| RowError::value(row.column(date_column), text, "a date MM/DD/YYYY"))?;
            let hour = hour(row, hour_column)?;
            let quarter = match interval_column {
                None => 0,
                Some(index) => {
                    let text = row.required(index)?;
                    text.parse::<i64>()
                        .ok()
                        .filter(|q| (1..=4).contains(q))
                        .ok_or_else(|| RowError::value(row.column(index), text, "an interval 1-4"))?
                        - 1
                }
            };
            let repeat = match flag_column {
                None => Repeat::ByOrder,
                Some(index) => match row.required(index)? {
                    flag if flag.eq_ignore_ascii_case("Y") => Repeat::Marked(true),
                    flag if flag.eq_ignore_ascii_case("N") => Repeat::Marked(false),
                    other => return Err(RowError::value(row.column(index), other, "Y or N")),
                },
            };
            let node = out.intern(row.required(node_column)?);
            // The label's nominal end names the hour in errors and orders repeats.
            let local = day.and_time(NaiveTime::MIN) + TimeDelta::hours(i64::from(hour)) + TimeDelta::seconds(quarter * QUARTER_S);
            let hour_start = resolver.pick(hour_ending(Chicago, day, hour), local, &node, repeat)?;
            let node_type = match type_column.map(|index| row.text(index)).transpose()? {
                Some(kind) if !kind.is_empty() => Some(out.intern(&node_type(kind))),
                _ => None,
            };
            let prices = Prices {
                price: Some(price),
                ..Prices::default()
            };
            out.push(node, node_type, hour_start + quarter * QUARTER_S * MILLIS, interval_s, run.clone(), prices, 0);
            Ok(())
        });
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{tick, utc};

    /// Written from ERCOT's report specifications, not operator data: see the fixture README.
    const REAL_TIME: &[u8] = include_bytes!("../../../tests/fixtures/markets/north_america/ercot_rt_spp_20241103.csv");
    const DAY_AHEAD: &[u8] = include_bytes!("../../../tests/fixtures/markets/north_america/ercot_dam_spp_20240310.csv");

    #[test]
    fn dst_autumn_repeat_follows_dst_flag_in_the_real_time_fixture() {
        let parsed = ErcotSpp.parse("t", "ercot_rt_spp_20241103.csv", REAL_TIME);
        assert_eq!(parsed.ticks.len(), 7);
        assert!(parsed.dead_letters.is_empty());
        // Line 2: hour 1, interval 4 — 00:45 CDT.
        let first = tick(&parsed.ticks, "HB_HOUSTON", "2024-11-03 05:45:00");
        assert_eq!(
            (first.price, first.interval_s, &*first.run, first.node_type.as_deref()),
            (Some(18.52), 900, "RT", Some("HUB"))
        );
        // Lines 3-4: hour 2 (DSTFlag N) starts 01:00 CDT = 06:00Z.
        assert_eq!(tick(&parsed.ticks, "HB_HOUSTON", "2024-11-03 06:00:00").price, Some(17.90));
        assert_eq!(tick(&parsed.ticks, "HB_HOUSTON", "2024-11-03 06:45:00").price, Some(17.44));
        // Lines 5-6: the repeated hour 2 (DSTFlag Y) starts 01:00 CST = 07:00Z.
        assert_eq!(tick(&parsed.ticks, "HB_HOUSTON", "2024-11-03 07:00:00").price, Some(16.75));
        assert_eq!(tick(&parsed.ticks, "HB_HOUSTON", "2024-11-03 07:45:00").price, Some(16.31));
        let zone = tick(&parsed.ticks, "LZ_NORTH", "2024-11-03 07:00:00");
        assert_eq!((zone.price, zone.node_type.as_deref()), (Some(16.02), Some("ZONE")));
        // Line 8: hour 3 starts 02:00 CST = 08:00Z.
        assert_eq!(tick(&parsed.ticks, "HB_HOUSTON", "2024-11-03 08:00:00").price, Some(15.98));
    }

    #[test]
    fn dst_spring_gap_in_the_day_ahead_fixture() {
        let parsed = ErcotSpp.parse("t", "ercot_dam_spp_20240310.csv", DAY_AHEAD);
        let starts: Vec<(i64, f64)> = parsed.ticks.iter().map(|t| (t.ts, t.price.unwrap_or(f64::NAN))).collect();
        // HE01 starts 00:00 CST = 06:00Z; HE03 is 01:00 CST–03:00 CDT (07:00Z); HE24 starts 23:00 CDT.
        assert_eq!(
            starts,
            vec![
                (utc("2024-03-10 06:00:00"), 21.37),
                (utc("2024-03-10 07:00:00"), 19.86),
                (utc("2024-03-10 08:00:00"), 19.02),
                (utc("2024-03-11 04:00:00"), 24.75)
            ]
        );
        assert_eq!(
            (&*parsed.ticks[0].run, parsed.ticks[0].interval_s, parsed.ticks[0].node_type.as_deref()),
            ("DA", 3600, None)
        );
        // Line 6 carries HE02, which the spring day does not have.
        assert_eq!(parsed.dead_letters.len(), 1);
        assert_eq!(parsed.dead_letters[0].position, "ercot_dam_spp_20240310.csv:6");
        assert!(parsed.dead_letters[0].detail.contains("does not exist in America/Chicago"));
    }

    #[test]
    fn without_dst_flag_the_repeat_goes_by_order_and_bad_rows_are_dead_letters() {
        let text = "DeliveryDate,DeliveryHour,SettlementPoint,SettlementPointPrice\n11/03/2024,2,HB_WEST,10\n11/03/2024,2,HB_WEST,11\n11/03/2024,25,HB_WEST,12\n11/03/2024,3,HB_WEST,\n";
        let parsed = ErcotSpp.parse("t", "x.csv", text.as_bytes());
        let starts: Vec<i64> = parsed.ticks.iter().map(|t| t.ts).collect();
        assert_eq!(starts, vec![utc("2024-11-03 06:00:00"), utc("2024-11-03 07:00:00")]);
        let positions: Vec<&str> = parsed.dead_letters.iter().map(|l| l.position.as_str()).collect();
        assert_eq!(positions, vec!["x.csv:4", "x.csv:5"]);
    }
}
