//! CAISO OASIS LMP CSV (`caiso-oasis-lmp`): the reports `PRC_LMP` (day-ahead
//! hourly, price column `MW`), `PRC_INTVL_LMP` (real-time 5-minute, `VALUE`)
//! and `PRC_RTPD_LMP` (15-minute, `PRC`), as OASIS returns them with
//! `resultformat=6`.
//!
//! Long layout: one row per node, interval and `LMP_TYPE`, with
//! `INTERVALSTARTTIME_GMT`, `INTERVALENDTIME_GMT`, `NODE`, `MARKET_RUN_ID`,
//! `LMP_TYPE` and the value; the local `OPR_DT`/`OPR_HR` columns are not used.
//!
//! * Time: `INTERVALSTARTTIME_GMT` (`2024-11-03T07:00:00-00:00`) is the tick's
//!   `ts`; the interval is `INTERVALENDTIME_GMT − INTERVALSTARTTIME_GMT`. Both
//!   carry their offset, so the Pacific DST changes need no arithmetic here.
//! * The rows of one node, interval and run are pivoted into one tick, in the
//!   order their first row appears: `LMP` is the price, `MCE` the energy,
//!   `MCC` the congestion and `MCL` the loss component. `MGHG` (the
//!   greenhouse-gas component of EIM nodes) has no tick column and is
//!   skipped; any other `LMP_TYPE` is a dead letter. A component whose row is
//!   missing or rejected stays empty.
//! * Run from `MARKET_RUN_ID`: `DAM` is DA; `RTM`, `RTPD` and `HASP` are RT.
//! * CAISO's nodes carry no type in these reports; `node_type` is empty.

use std::collections::HashMap;

use carbonflow_core::time::parse_timestamp;
use carbonflow_core::{Millis, Str};

use super::{CsvTable, MILLIS, Output, Prices, Row, RowError};
use crate::markets::{MarketFormat, Parsed};

/// The `caiso-oasis-lmp` format.
pub(super) struct CaisoOasisLmp;

const EXPECTED: &str = "'INTERVALSTARTTIME_GMT', 'INTERVALENDTIME_GMT', 'NODE', 'MARKET_RUN_ID', 'LMP_TYPE', 'MW' or 'VALUE' or 'PRC'";

/// The tick being assembled for one node, interval and run.
struct Interval {
    node: Str,
    ts: Millis,
    interval_s: i64,
    run: Str,
    prices: Prices,
}

fn time(row: &Row<'_>, index: usize) -> Result<Millis, RowError> {
    let text = row.required(index)?;
    parse_timestamp(text).ok_or_else(|| RowError::value(row.column(index), text, "an ISO 8601 time with offset"))
}

fn run_name(market_run: &str) -> &str {
    match market_run {
        "DAM" => "DA",
        "RTM" | "RTPD" | "HASP" => "RT",
        other => other,
    }
}

impl MarketFormat for CaisoOasisLmp {
    fn name(&self) -> &'static str {
        "caiso-oasis-lmp"
    }

    fn description(&self) -> &'static str {
        "CAISO OASIS LMP CSV (PRC_LMP, PRC_INTVL_LMP, PRC_RTPD_LMP), long rows per LMP_TYPE pivoted by node and interval, ts = INTERVALSTARTTIME_GMT, USD; LMP, MCE, MCC, MCL"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = Output::new(table, file, "CAISO", "USD");
        let is_header = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case("INTERVALSTARTTIME_GMT"));
        let Some(csv) = CsvTable::open(bytes, &mut out, EXPECTED, is_header, |_, _| {}) else {
            return out.finish();
        };
        let header = &csv.header;
        let columns = (|| {
            Ok::<_, RowError>((
                header.require(&["INTERVALSTARTTIME_GMT"])?,
                header.require(&["INTERVALENDTIME_GMT"])?,
                header.require(&["NODE", "NODE_ID"])?,
                header.require(&["MARKET_RUN_ID"])?,
                header.require(&["LMP_TYPE"])?,
                header.require(&["MW", "VALUE", "PRC"])?,
            ))
        })();
        let (start, end, node_column, run_column, kind_column, value_column) = match columns {
            Ok(columns) => columns,
            Err(error) => {
                csv.reject_header(&mut out, &error);
                return out.finish();
            }
        };
        let mut intervals: Vec<Interval> = Vec::new();
        let mut index_of: HashMap<(Str, Millis, Str), usize> = HashMap::new();
        csv.for_each_row(&mut out, |out, row| {
            let kind = row.required(kind_column)?;
            let value = row.optional_number(value_column)?;
            let set: fn(&mut Prices, Option<f64>) = match kind {
                "LMP" => |prices, value| prices.price = value,
                "MCE" => |prices, value| prices.energy = value,
                "MCC" => |prices, value| prices.congestion = value,
                "MCL" => |prices, value| prices.loss = value,
                "MGHG" => return Ok(()),
                _ => return Err(RowError::value(row.column(kind_column), kind, "LMP, MCE, MCC, MCL or MGHG")),
            };
            let (ts, until) = (time(row, start)?, time(row, end)?);
            if until <= ts {
                return Err(RowError::value(row.column(end), row.text(end)?, "after INTERVALSTARTTIME_GMT"));
            }
            let node = out.intern(row.required(node_column)?);
            let run = out.intern(run_name(row.required(run_column)?));
            let slot = *index_of.entry((node.clone(), ts, run.clone())).or_insert_with(|| {
                intervals.push(Interval {
                    node,
                    ts,
                    interval_s: (until - ts) / MILLIS,
                    run,
                    prices: Prices::default(),
                });
                intervals.len() - 1
            });
            set(&mut intervals[slot].prices, value);
            Ok(())
        });
        for interval in intervals {
            let prices = interval.prices;
            if prices != Prices::default() {
                out.push(interval.node, None, interval.ts, interval.interval_s, interval.run, prices, 0);
            }
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{tick, utc};

    /// Written from the OASIS specification, not operator data: see the fixture README.
    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/markets/north_america/caiso_prc_lmp_dam_20241103.csv");

    const HEADER: &str = "INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,OPR_DT,OPR_HR,OPR_INTERVAL,NODE_ID_XML,NODE_ID,NODE,MARKET_RUN_ID,LMP_TYPE,XML_DATA_ITEM,PNODE_RESMRID,GRP_TYPE,POS,VALUE,GROUP\n";

    fn row(start: &str, end: &str, hour: u32, node: &str, run: &str, kind: &str, value: &str) -> String {
        format!("{start},{end},2024-03-10,{hour},1,{node},{node},{node},{run},{kind},x,{node},ALL_APNODES,1,{value},1\n")
    }

    #[test]
    fn fixture_pivots_by_node_and_interval_across_the_autumn_change() {
        let parsed = CaisoOasisLmp.parse("t", "caiso_prc_lmp_dam_20241103.csv", FIXTURE);
        assert_eq!(parsed.ticks.len(), 4);
        // Line 16: the MCL of TH_SP15_GEN-APND is "n/a".
        assert_eq!(parsed.dead_letters.len(), 1);
        assert_eq!(parsed.dead_letters[0].position, "caiso_prc_lmp_dam_20241103.csv:16");
        // OPR_HR 1 (lines 2-5): starts 00:00 PDT.
        let np15 = tick(&parsed.ticks, "TH_NP15_GEN-APND", "2024-11-03 07:00:00");
        assert_eq!(
            (np15.price, np15.energy, np15.congestion, np15.loss),
            (Some(47.0), Some(45.1), Some(1.2), Some(0.7))
        );
        assert_eq!(
            (&*np15.market, np15.interval_s, &*np15.run, np15.node_type.as_deref()),
            ("CAISO", 3600, "DA", None)
        );
        // OPR_HR 2 and 3 both start at 01:00 local (PDT, then PST): one UTC hour apart.
        assert_eq!(tick(&parsed.ticks, "TH_NP15_GEN-APND", "2024-11-03 08:00:00").price, Some(41.9));
        assert_eq!(tick(&parsed.ticks, "TH_NP15_GEN-APND", "2024-11-03 09:00:00").price, Some(40.6));
        // The MGHG row is skipped and the rejected MCL leaves the loss empty.
        let sp15 = tick(&parsed.ticks, "TH_SP15_GEN-APND", "2024-11-03 09:00:00");
        assert_eq!((sp15.price, sp15.loss), (Some(43.15), None));
    }

    #[test]
    fn dst_spring_interval_lmp_in_five_minute_intervals() {
        // 2024-03-10: 01:55 PST starts 09:55Z, the next interval 03:00 PDT starts 10:00Z.
        let text = format!(
            "{HEADER}{}{}{}",
            row("2024-03-10T09:55:00-00:00", "2024-03-10T10:00:00-00:00", 2, "N1", "RTM", "LMP", "30.5"),
            row("2024-03-10T10:00:00-00:00", "2024-03-10T10:05:00-00:00", 3, "N1", "RTM", "LMP", "31.5"),
            row("2024-03-10T10:00:00-00:00", "2024-03-10T10:05:00-00:00", 3, "N1", "RTM", "MCC", "-1.25"),
        );
        let parsed = CaisoOasisLmp.parse("t", "prc_intvl_lmp.csv", text.as_bytes());
        let starts: Vec<(i64, i64)> = parsed.ticks.iter().map(|t| (t.ts, t.interval_s)).collect();
        assert_eq!(starts, vec![(utc("2024-03-10 09:55:00"), 300), (utc("2024-03-10 10:00:00"), 300)]);
        assert_eq!((&*parsed.ticks[1].run, parsed.ticks[1].congestion), ("RT", Some(-1.25)));
    }

    #[test]
    fn unknown_types_and_bad_times_are_dead_letters() {
        let text = format!(
            "{HEADER}{}{}{}",
            row("2024-03-10T09:55:00-00:00", "2024-03-10T10:00:00-00:00", 2, "N1", "RTM", "XYZ", "1"),
            row("2024-03-10 09:55", "2024-03-10T10:00:00-00:00", 2, "N1", "RTM", "LMP", "1").replace("2024-03-10 09:55", "yesterday"),
            row("2024-03-10T10:00:00-00:00", "2024-03-10T10:00:00-00:00", 2, "N1", "RTM", "LMP", "1"),
        );
        let parsed = CaisoOasisLmp.parse("t", "x.csv", text.as_bytes());
        assert!(parsed.ticks.is_empty());
        let positions: Vec<&str> = parsed.dead_letters.iter().map(|l| l.position.as_str()).collect();
        assert_eq!(positions, vec!["x.csv:2", "x.csv:3", "x.csv:4"]);
    }
}
