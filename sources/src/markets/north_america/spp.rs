//! SPP LMP by settlement location CSV (`spp-lmp`): the Marketplace files
//! `DA-LMP-SL-YYYYMMDDHHMM.csv` (day-ahead, hourly) and
//! `RTBM-LMP-SL-YYYYMMDDHHMM.csv` (real-time balancing market, one 5-minute
//! interval per file).
//!
//! Columns `Interval, GMTIntervalEnd, Settlement Location, Pnode, LMP, MLC,
//! MCC, MEC`; `LMP = MEC + MCC + MLC`.
//!
//! * Time: `GMTIntervalEnd` is the interval end in UTC, so `ts =
//!   GMTIntervalEnd − interval` with no time-zone arithmetic. Only a file
//!   without that column falls back to `Interval`, the same end in US Central
//!   prevailing time, with the autumn repeat resolved by order per node.
//! * Run and interval: `RTBM` in the file name is RT, 5 min; `DA` at the
//!   start of the name is DA, 1 h (the two layouts have the same columns). A
//!   file named otherwise is RT when its first interval does not end on the
//!   hour, else DA.
//! * Node: `Settlement Location`; SPP gives no node type (`Pnode`, the
//!   underlying pricing node, is not kept).

use carbonflow_core::{Millis, Str};
use chrono::{NaiveDateTime, Timelike};
use chrono_tz::America::Chicago;

use super::clock::{Repeat, Resolver, instant};
use super::{CsvTable, HOUR_S, MILLIS, Output, Prices, Row, RowError, us_date_time};
use crate::markets::{MarketFormat, Parsed};

/// The `spp-lmp` format.
pub(super) struct SppLmp;

const EXPECTED: &str = "'GMTIntervalEnd' or 'Interval', 'Settlement Location', 'LMP'";

/// How the interval end is written.
enum End {
    /// `GMTIntervalEnd`: UTC.
    Utc(usize),
    /// `Interval` only: US Central prevailing.
    Central(usize, Resolver),
}

impl End {
    /// The end instant and its local minute (for telling RT from DA).
    fn read(&mut self, row: &Row<'_>, node: &Str) -> Result<(Millis, u32), RowError> {
        let index = match self {
            End::Utc(index) | End::Central(index, _) => *index,
        };
        let text = row.required(index)?;
        let local: NaiveDateTime = us_date_time(text).ok_or_else(|| RowError::value(row.column(index), text, "a date-time MM/DD/YYYY HH:MM:SS"))?;
        let end = match self {
            End::Utc(_) => local.and_utc().timestamp_millis(),
            End::Central(_, resolver) => resolver.pick(instant(Chicago, local), local, node, Repeat::ByOrder)?,
        };
        Ok((end, local.minute()))
    }
}

/// The run and interval length named by the file, if it names them.
fn run_of(file: &str) -> Option<(&'static str, i64)> {
    let lower = file.to_ascii_lowercase();
    if lower.contains("rtbm") {
        Some(("RT", 300))
    } else if lower.starts_with("da") {
        Some(("DA", HOUR_S))
    } else {
        None
    }
}

impl MarketFormat for SppLmp {
    fn name(&self) -> &'static str {
        "spp-lmp"
    }

    fn description(&self) -> &'static str {
        "SPP LMP by settlement location CSV (DA-LMP-SL: DA hourly; RTBM-LMP-SL: RT 5 min), ts = GMTIntervalEnd - interval, USD; LMP, MEC, MCC, MLC"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = Output::new(table, file, "SPP", "USD");
        let Some(csv) = CsvTable::open(
            bytes,
            &mut out,
            EXPECTED,
            |names| names.iter().any(|n| n.eq_ignore_ascii_case("Settlement Location")),
            |_, _| {},
        ) else {
            return out.finish();
        };
        let header = &csv.header;
        let columns = (|| {
            let end = match header.find(&["GMTIntervalEnd"]) {
                Some(index) => End::Utc(index),
                None => End::Central(header.require(&["Interval"])?, Resolver::new(Chicago)),
            };
            Ok::<_, RowError>((end, header.require(&["Settlement Location"])?, header.require(&["LMP"])?))
        })();
        let (mut end, location, lmp) = match columns {
            Ok(columns) => columns,
            Err(error) => {
                csv.reject_header(&mut out, &error);
                return out.finish();
            }
        };
        let (mec, mcc, mlc) = (header.find(&["MEC"]), header.find(&["MCC"]), header.find(&["MLC"]));
        let component = |row: &Row<'_>, index: Option<usize>| index.map_or(Ok(None), |index| row.optional_number(index));
        let mut run: Option<(Str, i64)> = run_of(file).map(|(run, interval_s)| (out.intern(run), interval_s));
        csv.for_each_row(&mut out, |out, row| {
            let prices = Prices {
                price: Some(row.number(lmp)?),
                energy: component(row, mec)?,
                congestion: component(row, mcc)?,
                loss: component(row, mlc)?,
            };
            let node = out.intern(row.required(location)?);
            let (end, minute) = end.read(row, &node)?;
            let (run, interval_s) = run
                .get_or_insert_with(|| if minute == 0 { (out.intern("DA"), HOUR_S) } else { (out.intern("RT"), 300) })
                .clone();
            out.push(node, None, end - interval_s * MILLIS, interval_s, run, prices, 0);
            Ok(())
        });
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, parse_sample, tick, utc};

    const HEADER: &str = "Interval,GMTIntervalEnd,Settlement Location,Pnode,LMP,MLC,MCC,MEC\n";
    const LOCAL_HEADER: &str = "Interval,Settlement Location,Pnode,LMP,MLC,MCC,MEC\n";

    fn starts(parsed: &Parsed) -> Vec<i64> {
        parsed.ticks.iter().map(|tick| tick.ts).collect()
    }

    #[test]
    fn sample_day_ahead() {
        let Some(parsed) = parse_sample(&SppLmp, "spp/DA-LMP-SL-202503190100.csv") else {
            return;
        };
        // 1,234 settlement locations × HE01–HE15.
        assert_eq!(parsed.ticks.len(), 18_510);
        assert_eq!(parsed.dead_letters.len(), 0);
        // Line 2: 03/19/2025 01:00:00,03/19/2025 06:00:00,AEC,SOUC,9.6667,0.1410,-2.1891,11.7148
        assert_price(&parsed.ticks, "AEC", "2025-03-19 05:00:00", 9.6667);
        let aec = tick(&parsed.ticks, "AEC", "2025-03-19 05:00:00");
        assert_eq!((aec.energy, aec.congestion, aec.loss), (Some(11.7148), Some(-2.1891), Some(0.141)));
        assert_eq!((&*aec.market, aec.interval_s, &*aec.run, aec.node_type.as_deref()), ("SPP", 3600, "DA", None));
        // Line 9000: 03/19/2025 08:00:00,03/19/2025 13:00:00,MIDW.LES.BKEYE,...,1.2827,...
        assert_price(&parsed.ticks, "MIDW.LES.BKEYE", "2025-03-19 12:00:00", 1.2827);
        // Line 18511 (last): 03/19/2025 15:00:00,03/19/2025 20:00:00,YAD,VACS,23.2722,...
        assert_price(&parsed.ticks, "YAD", "2025-03-19 19:00:00", 23.2722);
    }

    #[test]
    fn samples_rtbm() {
        // (file, GMT start of its interval, LMP of AEC on line 2, of OVEC on line 700, of YAD on line 1235)
        let files = [
            ("0840", "13:35", 35.6875, 34.6484, 35.4043),
            ("0850", "13:45", 29.0038, 28.9536, 28.9771),
            ("0855", "13:50", 33.9750, 33.9282, 33.9468),
            ("0900", "13:55", 28.0359, 28.0067, 28.0080),
            ("0905", "14:00", 25.3922, 25.3710, 25.3720),
            ("0910", "14:05", 21.6620, 21.9239, 21.6836),
        ];
        for (stamp, start, aec, ovec, yad) in files {
            let Some(parsed) = parse_sample(&SppLmp, &format!("spp/RTBM-LMP-SL-20250331{stamp}.csv")) else {
                return;
            };
            assert_eq!(parsed.ticks.len(), 1_234, "{stamp}");
            assert_eq!(parsed.dead_letters.len(), 0, "{stamp}");
            let start = format!("2025-03-31 {start}:00");
            assert_price(&parsed.ticks, "AEC", &start, aec);
            assert_price(&parsed.ticks, "OVEC", &start, ovec);
            assert_price(&parsed.ticks, "YAD", &start, yad);
            let t = tick(&parsed.ticks, "AEC", &start);
            assert_eq!((t.interval_s, &*t.run), (300, "RT"), "{stamp}");
        }
    }

    #[test]
    fn dst_both_transitions_from_gmt_and_from_local_time() {
        // Spring 2025-03-09: 01:00 CST ends 07:00Z, then 03:00 CDT ends 08:00Z.
        let spring = "03/09/2025 01:00:00,03/09/2025 07:00:00,A,P,1,0,0,1\n03/09/2025 03:00:00,03/09/2025 08:00:00,A,P,2,0,0,2\n";
        // Autumn 2024-11-03: 01:00 CDT ends 06:00Z, 01:00 CST ends 07:00Z, 02:00 CST ends 08:00Z.
        let autumn = "11/03/2024 01:00:00,11/03/2024 06:00:00,A,P,1,0,0,1\n11/03/2024 01:00:00,11/03/2024 07:00:00,A,P,2,0,0,2\n11/03/2024 02:00:00,11/03/2024 08:00:00,A,P,3,0,0,3\n";
        let spring_starts = vec![utc("2025-03-09 06:00:00"), utc("2025-03-09 07:00:00")];
        let autumn_starts = vec![utc("2024-11-03 05:00:00"), utc("2024-11-03 06:00:00"), utc("2024-11-03 07:00:00")];
        let with_gmt = |rows: &str| SppLmp.parse("t", "DA-LMP-SL-x.csv", format!("{HEADER}{rows}").as_bytes());
        assert_eq!(starts(&with_gmt(spring)), spring_starts);
        assert_eq!(starts(&with_gmt(autumn)), autumn_starts);
        // The same rows without GMTIntervalEnd go through America/Chicago.
        let local_only = |rows: &str| {
            let rows: String = rows
                .lines()
                .map(|line| {
                    line.splitn(3, ',')
                        .enumerate()
                        .filter(|(i, _)| *i != 1)
                        .map(|(_, f)| f)
                        .collect::<Vec<_>>()
                        .join(",")
                        + "\n"
                })
                .collect();
            SppLmp.parse("t", "DA-LMP-SL-x.csv", format!("{LOCAL_HEADER}{rows}").as_bytes())
        };
        assert_eq!(starts(&local_only(spring)), spring_starts);
        assert_eq!(starts(&local_only(autumn)), autumn_starts);
        let gap = local_only("03/09/2025 02:00:00,x,A,P,1,0,0,1\n");
        assert!(gap.ticks.is_empty());
        assert!(gap.dead_letters[0].detail.contains("does not exist in America/Chicago"));
    }

    #[test]
    fn run_comes_from_the_name_or_else_the_first_interval() {
        let rows = "03/31/2025 09:00:00,03/31/2025 14:00:00,A,P,1,0,0,1\n";
        let rt = SppLmp.parse("t", "RTBM-LMP-SL-202503310900.csv", format!("{HEADER}{rows}").as_bytes());
        assert_eq!((rt.ticks[0].ts, rt.ticks[0].interval_s), (utc("2025-03-31 13:55:00"), 300));
        let unnamed = SppLmp.parse(
            "t",
            "prices.csv",
            format!("{HEADER}03/31/2025 09:05:00,03/31/2025 14:05:00,A,P,1,0,0,1\n").as_bytes(),
        );
        assert_eq!((&*unnamed.ticks[0].run, unnamed.ticks[0].interval_s), ("RT", 300));
        let hourly = SppLmp.parse("t", "prices.csv", format!("{HEADER}{rows}").as_bytes());
        assert_eq!((&*hourly.ticks[0].run, hourly.ticks[0].interval_s), ("DA", 3600));
    }

    #[test]
    fn malformed_rows_are_dead_letters() {
        let rows =
            "03/19/2025 01:00:00,03/19/2025 06:00:00,AEC,SOUC,n/a,0,0,0\n03/19/2025 01:00:00,03/19/2025 25:00:00,AEC,SOUC,1,0,0,1\n03/19/2025 01:00:00\n";
        let parsed = SppLmp.parse("t", "DA-x.csv", format!("{HEADER}{rows}").as_bytes());
        assert!(parsed.ticks.is_empty());
        let positions: Vec<&str> = parsed.dead_letters.iter().map(|l| l.position.as_str()).collect();
        assert_eq!(positions, vec!["DA-x.csv:2", "DA-x.csv:3", "DA-x.csv:4"]);
    }
}
