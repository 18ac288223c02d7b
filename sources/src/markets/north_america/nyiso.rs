//! NYISO LBMP CSV (`nyiso-lbmp`): the MIS public files
//! `YYYYMMDDrealtime_zone.csv` (P-24A), `…realtime_gen.csv` (P-24B),
//! `…damlbmp_zone.csv` (P-2A) and `…damlbmp_gen.csv` (P-2B).
//!
//! Columns `Time Stamp, Name, PTID, LBMP ($/MWHr), Marginal Cost Losses
//! ($/MWHr), Marginal Cost Congestion ($/MWHr)`, sometimes with `Time Zone`.
//!
//! * Time: `MM/DD/YYYY HH:MM:SS`, US Eastern prevailing. Real-time files stamp
//!   the end of each 5-minute RTD interval, day-ahead files the start of each
//!   hour. The autumn repeat is resolved by `Time Zone` (EDT/EST) when the
//!   file has it, else by order per node.
//! * Run and interval come from the file name, as NYISO names its files:
//!   `damlbmp` is DA, 1 h; anything else is RT, 5 min. Not from the gaps
//!   between time stamps: an excerpt (such as the shared sample, rows at
//!   15-minute marks only) would give the wrong length, and the RTD interval
//!   is 5 minutes by market design.
//! * Components: NYISO publishes congestion with the opposite sign to the
//!   other ISOs (`LBMP = energy + losses − congestion`). The tick's
//!   `congestion` is the negated column, so `price = energy + congestion +
//!   loss` holds, and `energy = LBMP − loss − congestion`.
//! * Node: `Name` (a zone, an external proxy such as `H Q`, or a generator);
//!   node type `GEN` for generator files (name contains `gen`), else `ZONE`.

use chrono_tz::America::New_York;

use super::clock::{Repeat, Resolver, instant};
use super::{CsvTable, HOUR_S, MILLIS, Output, Prices, RowError, us_date_time};
use crate::markets::{MarketFormat, Parsed};

/// The `nyiso-lbmp` format.
pub(super) struct NyisoLbmp;

const EXPECTED: &str = "'Time Stamp', 'Name', 'LBMP ($/MWHr)'";

impl MarketFormat for NyisoLbmp {
    fn name(&self) -> &'static str {
        "nyiso-lbmp"
    }

    fn description(&self) -> &'static str {
        "NYISO zonal/generator LBMP CSV (realtime_*: RT 5 min interval-ending; damlbmp_*: DA hourly interval-beginning), US Eastern prevailing, USD; congestion sign flipped to price = energy + congestion + loss"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = Output::new(table, file, "NYISO", "USD");
        let lower = file.to_ascii_lowercase();
        let day_ahead = lower.contains("damlbmp");
        let (run, interval_s) = if day_ahead { ("DA", HOUR_S) } else { ("RT", 300) };
        let run = out.intern(run);
        let node_type = Some(out.intern(if lower.contains("gen") { "GEN" } else { "ZONE" }));
        let Some(csv) = CsvTable::open(
            bytes,
            &mut out,
            EXPECTED,
            |names| names.iter().any(|n| n.eq_ignore_ascii_case("Time Stamp")),
            |_, _| {},
        ) else {
            return out.finish();
        };
        let header = &csv.header;
        let columns = (|| {
            Ok::<_, RowError>((
                header.require(&["Time Stamp"])?,
                header.require(&["Name"])?,
                header.require_prefix("LBMP")?,
                header.require_prefix("Marginal Cost Losses")?,
                header.require_prefix("Marginal Cost Congestion")?,
            ))
        })();
        let (time, name, lbmp, losses, congestion) = match columns {
            Ok(columns) => columns,
            Err(error) => {
                csv.reject_header(&mut out, &error);
                return out.finish();
            }
        };
        let time_zone = header.find(&["Time Zone"]);
        let mut resolver = Resolver::new(New_York);
        csv.for_each_row(&mut out, |out, row| {
            let price = row.number(lbmp)?;
            let loss = row.optional_number(losses)?;
            let congestion = row.optional_number(congestion)?.map(|published| -published);
            let text = row.required(time)?;
            let local = us_date_time(text).ok_or_else(|| RowError::value(row.column(time), text, "a date-time MM/DD/YYYY HH:MM:SS"))?;
            let repeat = match time_zone {
                None => Repeat::ByOrder,
                Some(index) => match row.required(index)? {
                    zone if zone.eq_ignore_ascii_case("EDT") => Repeat::Marked(false),
                    zone if zone.eq_ignore_ascii_case("EST") => Repeat::Marked(true),
                    other => return Err(RowError::value(row.column(index), other, "EDT or EST")),
                },
            };
            let node = out.intern(row.required(name)?);
            let stamp = resolver.pick(instant(New_York, local), local, &node, repeat)?;
            let ts = if day_ahead { stamp } else { stamp - interval_s * MILLIS };
            let prices = Prices::with_energy_from_rest(Some(price), congestion, loss);
            out.push(node, node_type.clone(), ts, interval_s, run.clone(), prices, 0);
            Ok(())
        });
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, close, parse_sample, tick, utc};

    const HEADER: &str = "\"Time Stamp\",\"Name\",\"PTID\",\"LBMP ($/MWHr)\",\"Marginal Cost Losses ($/MWHr)\",\"Marginal Cost Congestion ($/MWHr)\"\n";

    fn parse(file: &str, text: &str) -> Parsed {
        NyisoLbmp.parse("t", file, text.as_bytes())
    }

    fn starts(parsed: &Parsed) -> Vec<i64> {
        parsed.ticks.iter().map(|tick| tick.ts).collect()
    }

    #[test]
    fn sample_realtime_zone() {
        let Some(parsed) = parse_sample(&NyisoLbmp, "nyiso/realtime_zone_20160218_sample.csv") else {
            return;
        };
        assert_eq!(parsed.ticks.len(), 45);
        assert_eq!(parsed.dead_letters.len(), 0);
        // Line 3: "02/18/2016 00:15:00","CAPITL",61757,21.53,1.69,0.00 — ends 00:15 EST = 05:15 UTC.
        assert_price(&parsed.ticks, "CAPITL", "2016-02-18 05:10:00", 21.53);
        let capitl = tick(&parsed.ticks, "CAPITL", "2016-02-18 05:10:00");
        assert_eq!((capitl.loss, capitl.congestion), (Some(1.69), Some(0.0)));
        assert!(close(capitl.energy, 19.84));
        assert_eq!(
            (&*capitl.market, capitl.node_type.as_deref(), capitl.interval_s, &*capitl.run),
            ("NYISO", Some("ZONE"), 300, "RT")
        );
        // Line 7: "02/18/2016 00:15:00","H Q",61844,19.21,-0.64,0.00
        assert_price(&parsed.ticks, "H Q", "2016-02-18 05:10:00", 19.21);
        // Line 18: "02/18/2016 00:30:00","CAPITL",61757,21.42,1.68,0.00
        assert_price(&parsed.ticks, "CAPITL", "2016-02-18 05:25:00", 21.42);
        // Line 43: "02/18/2016 00:45:00","NORTH",61755,18.62,-1.12,0.00
        assert_price(&parsed.ticks, "NORTH", "2016-02-18 05:40:00", 18.62);
    }

    #[test]
    fn congestion_sign_is_flipped_to_the_common_convention() {
        let parsed = parse(
            "x_realtime_zone.csv",
            &format!("{HEADER}\"07/01/2016 12:05:00\",\"N.Y.C.\",61761,30.00,1.00,-4.00\n"),
        );
        let t = &parsed.ticks[0];
        assert_eq!((t.price, t.loss, t.congestion), (Some(30.0), Some(1.0), Some(4.0)));
        assert!(close(t.energy, 25.0));
        // 12:05 EDT ends the interval 16:00–16:05 UTC.
        assert_eq!(t.ts, utc("2016-07-01 16:00:00"));
    }

    #[test]
    fn dst_spring_gap_realtime() {
        let text = format!(
            "{HEADER}\"03/13/2016 01:55:00\",\"WEST\",1,10,0,0\n\"03/13/2016 02:30:00\",\"WEST\",1,11,0,0\n\"03/13/2016 03:00:00\",\"WEST\",1,12,0,0\n\"03/13/2016 03:05:00\",\"WEST\",1,13,0,0\n"
        );
        let parsed = parse("20160313realtime_zone.csv", &text);
        assert_eq!(
            starts(&parsed),
            vec![utc("2016-03-13 06:50:00"), utc("2016-03-13 06:55:00"), utc("2016-03-13 07:00:00")]
        );
        assert_eq!(parsed.dead_letters.len(), 1);
        assert_eq!(parsed.dead_letters[0].position, "20160313realtime_zone.csv:3");
        assert!(
            parsed.dead_letters[0].detail.contains("does not exist in America/New_York"),
            "{}",
            parsed.dead_letters[0].detail
        );
    }

    #[test]
    fn dst_autumn_repeat_by_order_and_by_time_zone_column() {
        // Without a Time Zone column the first 01:xx at a node is EDT, the second EST.
        let rows = [
            ("01:00", "WEST"),
            ("01:00", "NORTH"),
            ("01:30", "WEST"),
            ("01:00", "WEST"),
            ("01:30", "WEST"),
            ("02:00", "WEST"),
        ];
        let text: String = rows
            .iter()
            .map(|(time, node)| format!("\"11/06/2016 {time}:00\",\"{node}\",1,10,0,0\n"))
            .collect();
        let parsed = parse("20161106realtime_zone.csv", &format!("{HEADER}{text}"));
        let expected = ["04:55", "04:55", "05:25", "05:55", "06:25", "06:55"].map(|time| utc(&format!("2016-11-06 {time}:00")));
        assert_eq!(starts(&parsed), expected);
        // With it, the column decides even against the order.
        let header = HEADER.replace("\"Name\"", "\"Time Zone\",\"Name\"");
        let text = format!("{header}\"11/06/2016 01:30:00\",\"EST\",\"WEST\",1,10,0,0\n\"11/06/2016 01:30:00\",\"EDT\",\"WEST\",1,10,0,0\n");
        let parsed = parse("20161106realtime_zone.csv", &text);
        assert_eq!(starts(&parsed), vec![utc("2016-11-06 06:25:00"), utc("2016-11-06 05:25:00")]);
    }

    #[test]
    fn day_ahead_files_are_hour_beginning_and_generator_files_gen() {
        let text = format!(
            "{HEADER}\"11/06/2016 01:00\",\"ROSETON\",1,20,0,0\n\"11/06/2016 01:00\",\"ROSETON\",1,21,0,0\n\"11/06/2016 02:00\",\"ROSETON\",1,22,0,0\n"
        );
        let parsed = parse("20161106damlbmp_gen.csv", &text);
        assert_eq!(
            starts(&parsed),
            vec![utc("2016-11-06 05:00:00"), utc("2016-11-06 06:00:00"), utc("2016-11-06 07:00:00")]
        );
        let t = &parsed.ticks[0];
        assert_eq!((t.interval_s, &*t.run, t.node_type.as_deref()), (3600, "DA", Some("GEN")));
    }

    #[test]
    fn malformed_rows_are_dead_letters() {
        let text =
            format!("{HEADER}\"02/30/2016 00:15:00\",\"WEST\",1,10,0,0\n\"02/18/2016 00:15:00\",\"WEST\",1,abc,0,0\n\"02/18/2016 00:15:00\",\"WEST\",1\n");
        let parsed = parse("x_realtime_zone.csv", &text);
        assert!(parsed.ticks.is_empty());
        let positions: Vec<&str> = parsed.dead_letters.iter().map(|l| l.position.as_str()).collect();
        assert_eq!(positions, vec!["x_realtime_zone.csv:2", "x_realtime_zone.csv:3", "x_realtime_zone.csv:4"]);
        let missing = parse("x.csv", "\"Time Stamp\",\"Name\",\"PTID\"\n\"02/18/2016 00:15:00\",\"WEST\",1\n");
        assert_eq!(missing.dead_letters.len(), 1);
        assert!(missing.dead_letters[0].detail.contains("'LBMP...'"));
    }
}
