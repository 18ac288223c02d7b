//! MISO LMP market reports (`miso-lmp`), in the two layouts MISO publishes;
//! the header row tells which one a file is.
//!
//! **Wide hourly reports**: `YYYYMMDD_da_lmp.csv` and its successors
//! `_da_expost_lmp.csv` / `_da_exante_lmp.csv`, and the real-time
//! `_rt_lmp_final.csv` / `_rt_lmp_prelim.csv`. A preamble (the title, the
//! operating day `MM/DD/YYYY`, a note that hours are EST), then `Node, Type,
//! Value, HE 1 … HE 24`, one row per node and value type: `LMP`, `MCC`
//! (congestion), `MLC` (loss), grouped by value type.
//!
//! * Run from the title: `Realtime Market LMPs` (any title naming real time)
//!   is RT, `Day Ahead Market LMPs` DA.
//! * Time: hour-ending 1–24 in Eastern Standard Time all year (UTC−5, MISO's
//!   market clock has no DST), so HE 1 starts at 05:00 UTC.
//! * One tick per node and hour, assembled from the node's three rows: price
//!   `LMP`, congestion `MCC`, loss `MLC`, energy `LMP − MCC − MLC` (MISO's
//!   `LMP = MEC + MCC + MLC`). A component whose row is missing or rejected
//!   stays empty; an hour with no value at all gives no tick.
//! * Node type from `Type`: `Hub` → `HUB`, `Loadzone` → `ZONE`, `Gennode` →
//!   `GEN`, `Interface` → `INTERFACE`.
//! * Numbers are written without a leading zero (`.07`, `-.13`).
//!
//! **Long five-minute real-time reports**, one row per node and interval,
//! run RT, 5 minutes, no node type (these files carry none):
//!
//! * the weekly *Real-Time 5-Min LMP* market report (`YYYYMMDD_5MIN_LMP.zip`,
//!   the final ex-post prices with corrections; the CSV inside): a preamble,
//!   then `MKTHOUR_EST, PNODENAME, LMP, CON_LMP, LOSS_LMP`, the time written
//!   `MM/DD/YYYY HH:MM`, and a closing disclaimer line. `MKTHOUR_EST` stamps
//!   the interval **start**: a week's file begins at Monday 00:00.
//! * the *real-time five-minute ex-post LMP* feed as CSV (`INTERVAL, CPNODE,
//!   LMP, MLC, MCC`), whose `INTERVAL` stamps the interval **end**.
//!
//! Both are EST all year like the hourly reports: 5-minute times never
//! repeat or skip. Congestion is `CON_LMP` / `MCC`, loss `LOSS_LMP` / `MLC`,
//! energy the rest of the LMP. MISO publishes no specification of these two
//! layouts; the column names, time formats and stamps above are those the
//! gridstatus readers rely on: `gridstatus/miso.py` skips four preamble
//! lines and one footer line of the weekly file and reads `MKTHOUR_EST` as
//! the interval start, with a test that a week starts at Monday 00:00; its
//! pull request 946 found that "MISO's public five-minute LMP feed labels
//! `INTERVAL` with the interval-ending timestamp".
//!
//! Lines without a comma after the last record (the disclaimer) are not
//! records and are dropped; any other malformed row is a dead letter.

use std::collections::HashMap;

use carbonflow_core::Str;
use chrono::{NaiveDate, NaiveDateTime};

use super::clock::{EST_ALL_YEAR, Local, Repeat, Resolver, hour_ending, instant};
use super::{CsvTable, HOUR_S, Header, MILLIS, Output, Prices, RowError, us_date, us_date_time};
use crate::markets::{MarketFormat, Parsed};

/// The `miso-lmp` format.
pub(super) struct MisoLmp;

const EXPECTED: &str = "'Node', 'Type', 'Value', 'HE 1' … 'HE 24' (hourly) or 'MKTHOUR_EST'/'INTERVAL', 'PNODENAME'/'CPNODE', 'LMP' (5-minute)";

/// A five-minute interval.
const FIVE_MINUTES_S: i64 = 300;

/// Which of MISO's layouts a header row starts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// `Node, Type, Value, HE 1 … HE 24`.
    WideHourly,
    /// One row per node and five-minute interval, stamped at its start or end.
    FiveMinute(Stamp),
}

/// Which end of its interval a five-minute row's time names.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stamp {
    Start,
    End,
}

impl Layout {
    fn of(names: &[String]) -> Option<Self> {
        let has = |name: &str| names.iter().any(|n| n.eq_ignore_ascii_case(name));
        if names.first().is_some_and(|n| n.eq_ignore_ascii_case("Node")) && (has("HE 1") || has("HE1")) {
            Some(Layout::WideHourly)
        } else if has("MKTHOUR_EST") && has("PNODENAME") {
            Some(Layout::FiveMinute(Stamp::Start))
        } else if has("INTERVAL") && has("CPNODE") {
            Some(Layout::FiveMinute(Stamp::End))
        } else {
            None
        }
    }
}

/// The values of one node, per hour.
struct NodeHours {
    node: Str,
    node_type: Option<Str>,
    hours: [Prices; 24],
    /// Which of `LMP`, `MCC`, `MLC` rows were read, to reject a second one.
    seen: [bool; 3],
}

fn node_type(kind: &str) -> String {
    match kind.to_ascii_lowercase().as_str() {
        "hub" => "HUB".into(),
        "loadzone" => "ZONE".into(),
        "gennode" => "GEN".into(),
        _ => kind.to_ascii_uppercase(),
    }
}

/// What the preamble of a wide report says.
#[derive(Default)]
struct Preamble {
    /// The first line, e.g. `Day Ahead Market LMPs`.
    title: Option<String>,
    /// The operating day.
    day: Option<NaiveDate>,
}

impl Preamble {
    fn read(&mut self, record: &csv::ByteRecord) {
        let first = record
            .get(0)
            .and_then(|field| std::str::from_utf8(field).ok())
            .map(str::trim)
            .unwrap_or_default();
        if self.title.is_none() {
            self.title = Some(first.to_owned());
        }
        if self.day.is_none() {
            self.day = us_date(first);
        }
    }

    /// RT for a real-time report, DA otherwise.
    fn run(&self) -> &'static str {
        let title = self.title.as_deref().unwrap_or_default().to_ascii_lowercase();
        if title.contains("realtime") || title.contains("real-time") || title.contains("real time") {
            "RT"
        } else {
            "DA"
        }
    }
}

impl MarketFormat for MisoLmp {
    fn name(&self) -> &'static str {
        "miso-lmp"
    }

    fn description(&self) -> &'static str {
        "MISO LMP reports: wide HE 1-24 day-ahead and real-time hourly (YYYYMMDD_da_expost_lmp.csv, _rt_lmp_final.csv), hour-ending, one tick per node and hour from its LMP, MCC and MLC rows; \
         5-minute real-time (weekly 5MIN_LMP MKTHOUR_EST interval-start, INTERVAL/CPNODE feed interval-ending); EST year-round, USD"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = Output::new(table, file, "MISO", "USD");
        let mut preamble = Preamble::default();
        let is_header = |names: &[String]| Layout::of(names).is_some();
        let Some(csv) = CsvTable::open(without_footer(bytes), &mut out, EXPECTED, is_header, |_, record| preamble.read(record)) else {
            return out.finish();
        };
        // The header row is one of the layouts' (`is_header`), so what is not 5-minute is wide.
        match Layout::of(&csv.header.names) {
            Some(Layout::FiveMinute(stamp)) => read_five_minute(csv, &mut out, stamp),
            _ => read_wide(csv, &mut out, &preamble),
        }
        out.finish()
    }
}

/// The file without the lines after its last record that hold no comma
/// (blank lines and the disclaimer that closes MISO's weekly file).
fn without_footer(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    loop {
        let body = bytes[..end].trim_ascii_end();
        let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |newline| newline + 1);
        if start == 0 || body[start..].contains(&b',') {
            return &bytes[..end];
        }
        end = start;
    }
}

/// The wide hourly layout: one tick per node and hour from the node's rows.
fn read_wide(csv: CsvTable<'_>, out: &mut Output<'_>, preamble: &Preamble) {
    let header = &csv.header;
    let columns = (|| {
        let mut hours = [0; 24];
        for (hour, index) in hours.iter_mut().enumerate() {
            *index = header.require(&[&format!("HE {}", hour + 1), &format!("HE{}", hour + 1)])?;
        }
        let day = preamble.day.ok_or(RowError::MissingColumn {
            expected: "operating day MM/DD/YYYY in the preamble".into(),
        })?;
        Ok::<_, RowError>((day, header.require(&["Node"])?, header.require(&["Type"])?, header.require(&["Value"])?, hours))
    })();
    let (day, node_column, type_column, value_column, hour_columns) = match columns {
        Ok(columns) => columns,
        Err(error) => {
            csv.reject_header(out, &error);
            return;
        }
    };
    let mut nodes: Vec<NodeHours> = Vec::new();
    let mut index_of: HashMap<Str, usize> = HashMap::new();
    csv.for_each_row(out, |out, row| {
        let kind = row.required(value_column)?;
        let slot = ["LMP", "MCC", "MLC"]
            .iter()
            .position(|name| kind.eq_ignore_ascii_case(name))
            .ok_or_else(|| RowError::value(row.column(value_column), kind, "LMP, MCC or MLC"))?;
        let mut values = [None; 24];
        for (value, index) in values.iter_mut().zip(hour_columns) {
            *value = row.optional_number(index)?;
        }
        let node = out.intern(row.required(node_column)?);
        let entry = *index_of.entry(node.clone()).or_insert_with(|| {
            nodes.push(NodeHours {
                node: node.clone(),
                node_type: None,
                hours: [Prices::default(); 24],
                seen: [false; 3],
            });
            nodes.len() - 1
        });
        let hours = &mut nodes[entry];
        if std::mem::replace(&mut hours.seen[slot], true) {
            return Err(RowError::value(
                row.column(value_column),
                kind,
                "given once per node (a second row for this node)",
            ));
        }
        if hours.node_type.is_none() {
            let kind = row.text(type_column)?;
            hours.node_type = (!kind.is_empty()).then(|| out.intern(&node_type(kind)));
        }
        for (prices, value) in hours.hours.iter_mut().zip(values) {
            match slot {
                0 => prices.price = value,
                1 => prices.congestion = value,
                _ => prices.loss = value,
            }
        }
        Ok(())
    });
    let run = out.intern(preamble.run());
    let starts: Vec<Option<i64>> = (1..=24)
        .map(|hour| match hour_ending(EST_ALL_YEAR, day, hour) {
            Local::One(start) => Some(start),
            Local::Two(..) | Local::Gap => None,
        })
        .collect();
    for hours in nodes {
        for (prices, start) in hours.hours.iter().zip(&starts) {
            let (Some(start), true) = (start, prices.price.is_some() || prices.congestion.is_some() || prices.loss.is_some()) else {
                continue;
            };
            let prices = Prices::with_energy_from_rest(prices.price, prices.congestion, prices.loss);
            out.push(hours.node.clone(), hours.node_type.clone(), *start, HOUR_S, run.clone(), prices, 0);
        }
    }
}

/// The columns of a five-minute report.
struct FiveMinuteColumns {
    time: usize,
    node: usize,
    lmp: usize,
    congestion: usize,
    loss: usize,
}

impl FiveMinuteColumns {
    fn find(header: &Header) -> Result<Self, RowError> {
        Ok(FiveMinuteColumns {
            time: header.require(&["MKTHOUR_EST", "INTERVAL"])?,
            node: header.require(&["PNODENAME", "CPNODE"])?,
            lmp: header.require(&["LMP"])?,
            congestion: header.require(&["CON_LMP", "MCC"])?,
            loss: header.require(&["LOSS_LMP", "MLC"])?,
        })
    }
}

/// A five-minute report's time: `MM/DD/YYYY HH:MM[:SS][ AM|PM]` or ISO 8601
/// without an offset (`2024-11-03T01:05:00`).
fn five_minute_time(text: &str) -> Option<NaiveDateTime> {
    us_date_time(text).or_else(|| {
        ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    })
}

/// The long five-minute layout: one tick per row.
fn read_five_minute(csv: CsvTable<'_>, out: &mut Output<'_>, stamp: Stamp) {
    let columns = match FiveMinuteColumns::find(&csv.header) {
        Ok(columns) => columns,
        Err(error) => {
            csv.reject_header(out, &error);
            return;
        }
    };
    let run = out.intern("RT");
    let mut resolver = Resolver::new(EST_ALL_YEAR);
    csv.for_each_row(out, |out, row| {
        let price = row.number(columns.lmp)?;
        let congestion = row.optional_number(columns.congestion)?;
        let loss = row.optional_number(columns.loss)?;
        let text = row.required(columns.time)?;
        let local = five_minute_time(text).ok_or_else(|| RowError::value(row.column(columns.time), text, "a date-time MM/DD/YYYY HH:MM"))?;
        let node = out.intern(row.required(columns.node)?);
        let stamped = resolver.pick(instant(EST_ALL_YEAR, local), local, &node, Repeat::ByOrder)?;
        let ts = match stamp {
            Stamp::Start => stamped,
            Stamp::End => stamped - FIVE_MINUTES_S * MILLIS,
        };
        let prices = Prices::with_energy_from_rest(Some(price), congestion, loss);
        out.push(node, None, ts, FIVE_MINUTES_S, run.clone(), prices, 0);
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, close, parse_sample, tick, utc};

    /// Written from the layout readers document (see `tests/fixtures/markets/north_america/README.md`).
    const WEEKLY_FIVE_MINUTE: &[u8] = include_bytes!("../../../tests/fixtures/markets/north_america/miso_20240318_5MIN_LMP.csv");
    const FIVE_MINUTE_FEED: &[u8] = include_bytes!("../../../tests/fixtures/markets/north_america/miso_rt_5min_expost_20241103.csv");

    fn starts_of(parsed: &Parsed, node: &str) -> Vec<i64> {
        parsed.ticks.iter().filter(|t| &*t.node == node).map(|t| t.ts).collect()
    }

    fn positions(parsed: &Parsed) -> Vec<&str> {
        parsed.dead_letters.iter().map(|l| l.position.as_str()).collect()
    }

    fn header() -> String {
        let hours: Vec<String> = (1..=24).map(|h| format!("HE {h}")).collect();
        format!(
            "Day Ahead Market LMPs\n07/16/2011\n\n,,,All Hours-Ending are Eastern Standard Time (EST)\nNode,Type,Value,{}\n",
            hours.join(",")
        )
    }

    fn row(node: &str, kind: &str, value: &str) -> String {
        format!("{node},Hub,{kind},{}\n", vec![value; 24].join(","))
    }

    #[test]
    fn sample_day_ahead() {
        let Some(parsed) = parse_sample(&MisoLmp, "miso/20110716_da_lmp.csv") else {
            return;
        };
        // 1,797 nodes × 24 hours; every node has its LMP, MCC and MLC rows.
        assert_eq!(parsed.ticks.len(), 43_128);
        assert_eq!(parsed.dead_letters.len(), 0);
        // Lines 6, 1803, 3600: AEC,Interface HE 1: LMP 26.82, MCC 1.66, MLC -.21 — HE 1 EST starts 05:00 UTC.
        let aec = tick(&parsed.ticks, "AEC", "2011-07-16 05:00:00");
        assert_eq!((aec.price, aec.congestion, aec.loss), (Some(26.82), Some(1.66), Some(-0.21)));
        assert!(close(aec.energy, 25.37));
        assert_eq!(
            (&*aec.market, aec.node_type.as_deref(), aec.interval_s, &*aec.run),
            ("MISO", Some("INTERFACE"), 3600, "DA")
        );
        // Line 1000: GRE.CHANDLERWD,Gennode,LMP, HE 12 = 42.35 (starts 16:00 UTC).
        assert_price(&parsed.ticks, "GRE.CHANDLERWD", "2011-07-16 16:00:00", 42.35);
        assert_eq!(tick(&parsed.ticks, "GRE.CHANDLERWD", "2011-07-16 16:00:00").node_type.as_deref(), Some("GEN"));
        // Line 201: AMIL.BGS6,Loadzone,LMP, HE 24 = 29.9 (starts 04:00 UTC the next day).
        assert_price(&parsed.ticks, "AMIL.BGS6", "2011-07-17 04:00:00", 29.9);
        // Lines 1802, 3599, 5396: YAD HE 24: LMP 34.08, MCC 2.94, MLC .27.
        let yad = tick(&parsed.ticks, "YAD", "2011-07-17 04:00:00");
        assert_eq!((yad.price, yad.congestion, yad.loss), (Some(34.08), Some(2.94), Some(0.27)));
        assert!(close(yad.energy, 30.87));
    }

    #[test]
    fn rows_of_a_node_make_one_tick_per_hour() {
        let text = format!(
            "{}{}{}{}",
            header(),
            row("HUB.A", "LMP", "30"),
            row("HUB.A", "MCC", "2"),
            row("HUB.A", "MLC", "-.5")
        );
        let parsed = MisoLmp.parse("t", "x.csv", text.as_bytes());
        assert_eq!(parsed.ticks.len(), 24);
        assert!(parsed.dead_letters.is_empty());
        let first = &parsed.ticks[0];
        assert_eq!(
            (first.ts, first.price, first.congestion, first.loss, first.energy),
            (utc("2011-07-16 05:00:00"), Some(30.0), Some(2.0), Some(-0.5), Some(28.5))
        );
        assert_eq!(parsed.ticks[23].ts, utc("2011-07-17 04:00:00"));
    }

    #[test]
    fn bad_rows_are_dead_letters_and_leave_the_other_components() {
        let text = format!(
            "{}{}{}{}{}",
            header(),
            row("HUB.A", "LMP", "x"),
            row("HUB.A", "MCC", "2"),
            row("HUB.A", "MCC", "3"),
            row("HUB.A", "MEC", "1")
        );
        let parsed = MisoLmp.parse("t", "x.csv", text.as_bytes());
        let positions: Vec<&str> = parsed.dead_letters.iter().map(|l| l.position.as_str()).collect();
        assert_eq!(positions, vec!["x.csv:6", "x.csv:8", "x.csv:9"]);
        assert_eq!(parsed.ticks.len(), 24);
        assert_eq!(
            (parsed.ticks[0].price, parsed.ticks[0].congestion, parsed.ticks[0].energy),
            (None, Some(2.0), None)
        );
    }

    #[test]
    fn a_file_without_operating_day_is_rejected_at_its_header() {
        let text = header().replace("07/16/2011", "sometime") + &row("HUB.A", "LMP", "1");
        let parsed = MisoLmp.parse("t", "x.csv", text.as_bytes());
        assert!(parsed.ticks.is_empty());
        assert_eq!(parsed.dead_letters.len(), 1);
        assert_eq!(parsed.dead_letters[0].position, "x.csv:5");
    }

    #[test]
    fn real_time_hourly_reports_are_rt() {
        let text = header().replace("Day Ahead Market LMPs", "Realtime Market LMPs") + &row("HUB.A", "LMP", "25");
        let parsed = MisoLmp.parse("t", "20240310_rt_lmp_final.csv", text.as_bytes());
        assert_eq!(parsed.ticks.len(), 24);
        assert!(parsed.ticks.iter().all(|t| &*t.run == "RT" && t.interval_s == 3600));
        let day_ahead = MisoLmp.parse("t", "x.csv", (header() + &row("HUB.A", "LMP", "25")).as_bytes());
        assert!(day_ahead.ticks.iter().all(|t| &*t.run == "DA"));
    }

    #[test]
    fn fixture_weekly_five_minute_report_on_the_spring_dst_day() {
        let parsed = MisoLmp.parse("t", "20240318_5MIN_LMP.csv", WEEKLY_FIVE_MINUTE);
        // 13 data rows: 10 ticks; an empty LMP, a time 24:00 and a short row are dead letters; the disclaimer is no record.
        assert_eq!(parsed.ticks.len(), 10);
        assert_eq!(
            positions(&parsed),
            vec!["20240318_5MIN_LMP.csv:11", "20240318_5MIN_LMP.csv:16", "20240318_5MIN_LMP.csv:18"]
        );
        assert!(parsed.dead_letters[0].detail.contains("'LMP' is empty"), "{}", parsed.dead_letters[0].detail);
        // Line 6: 03/10/2024 01:55,ILLINOIS.HUB,21.40,-0.52,-0.31 — starts 01:55 EST = 06:55 UTC.
        let first = tick(&parsed.ticks, "ILLINOIS.HUB", "2024-03-10 06:55:00");
        assert_eq!((first.price, first.congestion, first.loss), (Some(21.40), Some(-0.52), Some(-0.31)));
        assert!(close(first.energy, 22.23));
        assert_eq!(
            (&*first.market, first.node_type.as_deref(), first.interval_s, &*first.run, &*first.currency),
            ("MISO", None, 300, "RT", "USD")
        );
        // Line 8: 02:00 EST, which US Eastern prevailing time skips that morning, is 07:00 UTC.
        assert_price(&parsed.ticks, "ILLINOIS.HUB", "2024-03-10 07:00:00", 22.15);
        // Line 13: MINN.HUB 02:55 EST = 07:55 UTC; line 14: ILLINOIS.HUB 03:00 EST = 08:00 UTC.
        assert_price(&parsed.ticks, "MINN.HUB", "2024-03-10 07:55:00", 19.35);
        assert_price(&parsed.ticks, "ILLINOIS.HUB", "2024-03-10 08:00:00", 24.50);
        // Line 17: 23:55 EST = 04:55 UTC the next day, MISO's `.05` / `-.22` numbers.
        let last = tick(&parsed.ticks, "ILLINOIS.HUB", "2024-03-11 04:55:00");
        assert_eq!((last.price, last.congestion, last.loss), (Some(20.11), Some(0.05), Some(-0.22)));
        // No DST shift: the node's intervals stay five minutes apart across 02:00.
        let expected = ["06:55", "07:00", "07:05", "07:55", "08:00"].map(|time| utc(&format!("2024-03-10 {time}:00")));
        assert_eq!(starts_of(&parsed, "ILLINOIS.HUB")[..5], expected);
    }

    #[test]
    fn fixture_five_minute_feed_on_the_autumn_dst_day_is_interval_ending() {
        let parsed = MisoLmp.parse("t", "rt_5min.csv", FIVE_MINUTE_FEED);
        assert_eq!(parsed.ticks.len(), 6);
        assert_eq!(positions(&parsed), vec!["rt_5min.csv:7"]);
        assert!(parsed.dead_letters[0].detail.contains("'MLC'"), "{}", parsed.dead_letters[0].detail);
        // Line 2: the interval ending 00:00 EST started at 23:55 EST the day before = 04:55 UTC.
        let midnight = tick(&parsed.ticks, "ARKANSAS.HUB", "2024-11-03 04:55:00");
        assert_eq!((midnight.price, midnight.loss, midnight.congestion), (Some(24.10), Some(-0.40), Some(0.0)));
        assert!(close(midnight.energy, 24.50));
        // Lines 3, 5, 6: ending 01:05, 01:10 and 02:00 EST. US Eastern repeats 01:00-02:00 that night; EST does not.
        assert_eq!(
            starts_of(&parsed, "ARKANSAS.HUB"),
            ["04:55", "06:00", "06:05", "06:55"].map(|time| utc(&format!("2024-11-03 {time}:00")))
        );
        assert_price(&parsed.ticks, "ARKANSAS.HUB", "2024-11-03 06:00:00", 23.55);
        // Line 8: TEXAS.HUB ending 02:05 EST starts 07:00 UTC; MLC is the loss, MCC the congestion.
        let texas = tick(&parsed.ticks, "TEXAS.HUB", "2024-11-03 07:00:00");
        assert_eq!((texas.price, texas.loss, texas.congestion), (Some(22.44), Some(-0.58), Some(-0.30)));
        assert!(close(texas.energy, 23.32));
    }

    #[test]
    fn a_five_minute_header_without_a_component_is_rejected_at_its_line() {
        let parsed = MisoLmp.parse("t", "x.csv", b"MKTHOUR_EST,PNODENAME,LMP,CON_LMP\n03/10/2024 01:55,A,1,0\n");
        assert!(parsed.ticks.is_empty());
        assert_eq!(positions(&parsed), vec!["x.csv:1"]);
        assert!(
            parsed.dead_letters[0].detail.contains("'LOSS_LMP' or 'MLC'"),
            "{}",
            parsed.dead_letters[0].detail
        );
    }

    #[test]
    fn only_trailing_lines_without_a_comma_are_a_footer() {
        assert_eq!(without_footer(b"a,b\n1,2\n\nDisclaimer.\r\n\n"), b"a,b\n1,2\n\n");
        assert_eq!(without_footer(b"a,b\n1,2\nnote\nmore notes\n"), b"a,b\n1,2\n");
        assert_eq!(without_footer(b"a,b\n1,2\n"), b"a,b\n1,2\n");
        assert_eq!(without_footer(b"title\n"), b"title\n");
        // A short row in the middle stays, and becomes a dead letter.
        assert_eq!(without_footer(b"a,b\nx\n1,2\n"), b"a,b\nx\n1,2\n");
    }
}
