//! MISO day-ahead LMP report, the wide layout (`miso-lmp`):
//! `YYYYMMDD_da_lmp.csv` and its successors `_da_expost_lmp.csv` /
//! `_da_exante_lmp.csv`.
//!
//! A preamble (title, the operating day `MM/DD/YYYY`, a note that hours are
//! EST), then `Node, Type, Value, HE 1 … HE 24`, one row per node and value
//! type: `LMP`, `MCC` (congestion), `MLC` (loss), grouped by value type.
//!
//! * Time: hour-ending 1–24 in Eastern Standard Time all year (UTC−5, MISO's
//!   market clock has no DST), so HE 1 starts at 05:00 UTC.
//! * One tick per node and hour, assembled from the node's three rows: price
//!   `LMP`, congestion `MCC`, loss `MLC`, energy `LMP − MCC − MLC` (MISO's
//!   `LMP = MEC + MCC + MLC`). A component whose row is missing or rejected
//!   stays empty; an hour with no value at all gives no tick.
//! * Node type from `Type`: `Hub` → `HUB`, `Loadzone` → `ZONE`, `Gennode` →
//!   `GEN`, `Interface` → `INTERFACE`.
//! * Numbers are written without a leading zero (`.07`, `-.13`).

use std::collections::HashMap;

use carbonflow_core::Str;
use chrono::NaiveDate;

use super::clock::{EST_ALL_YEAR, Local, hour_ending};
use super::{CsvTable, HOUR_S, Output, Prices, RowError, us_date};
use crate::markets::{MarketFormat, Parsed};

/// The `miso-lmp` format.
pub(super) struct MisoLmp;

const EXPECTED: &str = "'Node', 'Type', 'Value', 'HE 1' … 'HE 24'";

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

impl MarketFormat for MisoLmp {
    fn name(&self) -> &'static str {
        "miso-lmp"
    }

    fn description(&self) -> &'static str {
        "MISO day-ahead LMP report, wide HE 1-24 layout (YYYYMMDD_da_lmp.csv), hour-ending EST year-round, USD; one tick per node and hour from its LMP, MCC and MLC rows"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = Output::new(table, file, "MISO", "USD");
        let mut day: Option<NaiveDate> = None;
        let is_header =
            |names: &[String]| names.first().is_some_and(|n| n.eq_ignore_ascii_case("Node")) && names.iter().any(|n| n.eq_ignore_ascii_case("HE 1"));
        let preamble = |_, record: &csv::ByteRecord| {
            if day.is_none() {
                day = record
                    .get(0)
                    .and_then(|field| std::str::from_utf8(field).ok())
                    .and_then(|text| us_date(text.trim()));
            }
        };
        let Some(csv) = CsvTable::open(bytes, &mut out, EXPECTED, is_header, preamble) else {
            return out.finish();
        };
        let header = &csv.header;
        let columns = (|| {
            let mut hours = [0; 24];
            for (hour, index) in hours.iter_mut().enumerate() {
                *index = header.require(&[&format!("HE {}", hour + 1), &format!("HE{}", hour + 1)])?;
            }
            let day = day.ok_or(RowError::MissingColumn {
                expected: "operating day MM/DD/YYYY in the preamble".into(),
            })?;
            Ok::<_, RowError>((day, header.require(&["Node"])?, header.require(&["Type"])?, header.require(&["Value"])?, hours))
        })();
        let (day, node_column, type_column, value_column, hour_columns) = match columns {
            Ok(columns) => columns,
            Err(error) => {
                csv.reject_header(&mut out, &error);
                return out.finish();
            }
        };
        let mut nodes: Vec<NodeHours> = Vec::new();
        let mut index_of: HashMap<Str, usize> = HashMap::new();
        csv.for_each_row(&mut out, |out, row| {
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
        let run = out.intern("DA");
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
                let prices = Prices {
                    energy: prices.energy_from_rest(),
                    ..*prices
                };
                out.push(hours.node.clone(), hours.node_type.clone(), *start, HOUR_S, run.clone(), prices, 0);
            }
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, close, parse_sample, tick, utc};

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
}
