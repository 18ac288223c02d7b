//! PJM Data Miner 2 LMP exports (`pjm-lmp`): `da_hrl_lmps.csv` (day-ahead
//! hourly), `rt_hrl_lmps.csv` (real-time hourly) and
//! `rt_fivemin_hrl_lmps.csv` (real-time 5-minute).
//!
//! Columns `datetime_beginning_utc, datetime_beginning_ept, pnode_id,
//! pnode_name, voltage, equipment, type, zone, system_energy_price_da|rt,
//! total_lmp_da|rt, congestion_price_da|rt, marginal_loss_price_da|rt,
//! row_is_current, version_nbr`.
//!
//! * Time: interval-beginning, `M/D/YYYY h:mm:ss AM/PM`. `datetime_beginning_utc`
//!   is used as is; only an export without it falls back to
//!   `datetime_beginning_ept` (US Eastern prevailing, autumn repeat by order
//!   per node).
//! * Run from the column suffix (`total_lmp_da` is DA, `total_lmp_rt` RT);
//!   interval 1 h, or 5 min for a file named `…fivemin…`.
//! * Price `total_lmp`, energy `system_energy_price`, congestion
//!   `congestion_price`, loss `marginal_loss_price`.
//! * Node `pnode_name`, node type the `type` column (`HUB`, `ZONE`, `GEN`, ...).
//! * Revision: PJM numbers the postings of a row (`version_nbr`, 1 first); the
//!   tick's revision is `version_nbr − 1`, 0 when the column is absent.

use chrono_tz::America::New_York;

use super::clock::{Repeat, Resolver, instant};
use super::{CsvTable, HOUR_S, Output, Prices, RowError, us_date_time};
use crate::markets::{MarketFormat, Parsed};

/// The `pjm-lmp` format.
pub(super) struct PjmLmp;

const EXPECTED: &str = "'datetime_beginning_utc' or 'datetime_beginning_ept', 'pnode_name', 'total_lmp_da' or 'total_lmp_rt'";

impl MarketFormat for PjmLmp {
    fn name(&self) -> &'static str {
        "pjm-lmp"
    }

    fn description(&self) -> &'static str {
        "PJM Data Miner 2 LMP CSV (da_hrl_lmps, rt_hrl_lmps, rt_fivemin_hrl_lmps), interval-beginning datetime_beginning_utc, USD; total LMP, system energy, congestion, marginal loss; revision = version_nbr - 1"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = Output::new(table, file, "PJM", "USD");
        let is_header = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case("pnode_name"));
        let Some(csv) = CsvTable::open(bytes, &mut out, EXPECTED, is_header, |_, _| {}) else {
            return out.finish();
        };
        let header = &csv.header;
        let columns = (|| {
            let (run, lmp) = match header.find(&["total_lmp_da"]) {
                Some(index) => ("DA", index),
                None => ("RT", header.require(&["total_lmp_da", "total_lmp_rt"])?),
            };
            let suffix = if run == "DA" { "_da" } else { "_rt" };
            let component = |name: &str| header.find(&[&format!("{name}{suffix}")]);
            let components = (
                component("system_energy_price"),
                component("congestion_price"),
                component("marginal_loss_price"),
            );
            let start = match header.find(&["datetime_beginning_utc"]) {
                Some(index) => (index, None),
                None => (
                    header.require(&["datetime_beginning_utc", "datetime_beginning_ept"])?,
                    Some(Resolver::new(New_York)),
                ),
            };
            Ok::<_, RowError>((run, lmp, components, start, header.require(&["pnode_name"])?))
        })();
        let (run, lmp, (energy, congestion, loss), (start, mut eastern), name) = match columns {
            Ok(columns) => columns,
            Err(error) => {
                csv.reject_header(&mut out, &error);
                return out.finish();
            }
        };
        let (node_type, version) = (header.find(&["type"]), header.find(&["version_nbr"]));
        let run = out.intern(run);
        let interval_s = if file.to_ascii_lowercase().contains("fivemin") { 300 } else { HOUR_S };
        csv.for_each_row(&mut out, |out, row| {
            let component = |index: Option<usize>| index.map_or(Ok(None), |index| row.optional_number(index));
            let prices = Prices {
                price: Some(row.number(lmp)?),
                energy: component(energy)?,
                congestion: component(congestion)?,
                loss: component(loss)?,
            };
            let revision = match version {
                None => 0,
                Some(index) => match row.text(index)? {
                    "" => 0,
                    text => text
                        .parse::<i64>()
                        .ok()
                        .filter(|version| *version >= 1)
                        .map(|version| version - 1)
                        .ok_or_else(|| RowError::value(row.column(index), text, "a version number from 1"))?,
                },
            };
            let node = out.intern(row.required(name)?);
            let text = row.required(start)?;
            let local = us_date_time(text).ok_or_else(|| RowError::value(row.column(start), text, "a date-time M/D/YYYY h:mm:ss AM/PM"))?;
            let ts = match eastern.as_mut() {
                None => local.and_utc().timestamp_millis(),
                Some(resolver) => resolver.pick(instant(New_York, local), local, &node, Repeat::ByOrder)?,
            };
            let node_type = match node_type.map(|index| row.text(index)).transpose()? {
                Some(kind) if kind.bytes().any(|b| b.is_ascii_lowercase()) => Some(out.intern(&kind.to_ascii_uppercase())),
                Some(kind) if !kind.is_empty() => Some(out.intern(kind)),
                _ => None,
            };
            out.push(node, node_type, ts, interval_s, run.clone(), prices, revision);
            Ok(())
        });
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, parse_sample, tick, utc};

    const HEADER: &str = "datetime_beginning_utc,datetime_beginning_ept,pnode_id,pnode_name,voltage,equipment,type,zone,system_energy_price_rt,total_lmp_rt,congestion_price_rt,marginal_loss_price_rt,row_is_current,version_nbr\n";

    fn starts(parsed: &Parsed) -> Vec<i64> {
        parsed.ticks.iter().map(|tick| tick.ts).collect()
    }

    #[test]
    fn sample_day_ahead() {
        let Some(parsed) = parse_sample(&PjmLmp, "pjm/da_hrl_lmps.csv") else {
            return;
        };
        assert_eq!(parsed.ticks.len(), 16_992);
        assert_eq!(parsed.dead_letters.len(), 0);
        // Line 2: 5/1/2025 4:00:00 AM,...,51217,EASTERN HUB,,,HUB,,30.98,24.966949,-6.094939,0.081888,True,1
        assert_price(&parsed.ticks, "EASTERN HUB", "2025-05-01 04:00:00", 24.966949);
        let hub = tick(&parsed.ticks, "EASTERN HUB", "2025-05-01 04:00:00");
        assert_eq!((hub.energy, hub.congestion, hub.loss), (Some(30.98), Some(-6.094939), Some(0.081888)));
        assert_eq!(
            (&*hub.market, hub.node_type.as_deref(), hub.interval_s, &*hub.run, hub.revision),
            ("PJM", Some("HUB"), 3600, "DA", 0)
        );
        // Line 8000: 5/28/2025 10:00:00 PM,5/28/2025 6:00:00 PM,33092315,N ILLINOIS HUB,...,32.57,33.561976,...
        assert_price(&parsed.ticks, "N ILLINOIS HUB", "2025-05-28 22:00:00", 33.561976);
        // Line 16993: 6/29/2025 3:00:00 AM,6/28/2025 11:00:00 PM,116013751,ATSI GEN HUB,...,33.94,33.791591,...
        assert_price(&parsed.ticks, "ATSI GEN HUB", "2025-06-29 03:00:00", 33.791591);
    }

    #[test]
    fn sample_real_time() {
        let Some(parsed) = parse_sample(&PjmLmp, "pjm/rt_hrl_lmps.csv") else {
            return;
        };
        assert_eq!(parsed.ticks.len(), 16_992);
        assert_eq!(parsed.dead_letters.len(), 0);
        // Line 3: 5/1/2025 4:00:00 AM,...,51287,WEST INT HUB,,,HUB,,23.710000,23.259768,...
        assert_price(&parsed.ticks, "WEST INT HUB", "2025-05-01 04:00:00", 23.259768);
        assert_eq!(&*tick(&parsed.ticks, "WEST INT HUB", "2025-05-01 04:00:00").run, "RT");
        // Line 8000: 5/28/2025 10:00:00 PM,...,N ILLINOIS HUB,...,25.450000,24.808924,...
        assert_price(&parsed.ticks, "N ILLINOIS HUB", "2025-05-28 22:00:00", 24.808924);
        // Line 16993: 6/29/2025 3:00:00 AM,...,ATSI GEN HUB,...,33.210000,32.780379,...
        assert_price(&parsed.ticks, "ATSI GEN HUB", "2025-06-29 03:00:00", 32.780379);
    }

    /// Rows of one hub with these UTC and EPT beginnings, as Data Miner writes them.
    fn rows(times: &[(&str, &str)]) -> String {
        times
            .iter()
            .map(|(utc, ept)| format!("{utc},{ept},51217,EASTERN HUB,,,HUB,,30,31,0.5,0.5,True,1\n"))
            .collect()
    }

    #[test]
    fn dst_both_transitions_from_utc_and_from_eastern_time() {
        // Spring 2024-03-10: 1 AM EST is 06:00Z, the next hour 3 AM EDT is 07:00Z.
        let spring = [
            ("3/10/2024 6:00:00 AM", "3/10/2024 1:00:00 AM"),
            ("3/10/2024 7:00:00 AM", "3/10/2024 3:00:00 AM"),
        ];
        // Autumn 2024-11-03: 1 AM EDT is 05:00Z, 1 AM EST 06:00Z, 2 AM EST 07:00Z.
        let autumn = [
            ("11/3/2024 5:00:00 AM", "11/3/2024 1:00:00 AM"),
            ("11/3/2024 6:00:00 AM", "11/3/2024 1:00:00 AM"),
            ("11/3/2024 7:00:00 AM", "11/3/2024 2:00:00 AM"),
        ];
        let spring_starts = vec![utc("2024-03-10 06:00:00"), utc("2024-03-10 07:00:00")];
        let autumn_starts = vec![utc("2024-11-03 05:00:00"), utc("2024-11-03 06:00:00"), utc("2024-11-03 07:00:00")];
        let parse = |text: String| PjmLmp.parse("t", "rt_hrl_lmps.csv", text.as_bytes());
        assert_eq!(starts(&parse(format!("{HEADER}{}", rows(&spring)))), spring_starts);
        assert_eq!(starts(&parse(format!("{HEADER}{}", rows(&autumn)))), autumn_starts);
        // An export without the UTC column: the EPT column through America/New_York.
        let ept_only = |times: &[(&str, &str)]| {
            let header = HEADER.replacen("datetime_beginning_utc,", "", 1);
            let body: String = rows(times)
                .lines()
                .map(|line| format!("{}\n", line.split_once(',').map_or(line, |(_, rest)| rest)))
                .collect();
            parse(format!("{header}{body}"))
        };
        assert_eq!(starts(&ept_only(&spring)), spring_starts);
        assert_eq!(starts(&ept_only(&autumn)), autumn_starts);
        let gap = ept_only(&[("", "3/10/2024 2:00:00 AM")]);
        assert!(gap.ticks.is_empty());
        assert!(gap.dead_letters[0].detail.contains("does not exist in America/New_York"));
    }

    #[test]
    fn versions_are_revisions_and_fivemin_files_are_five_minutes() {
        let text = format!("{HEADER}5/1/2025 4:05:00 AM,5/1/2025 12:05:00 AM,51217,EASTERN HUB,,,hub,,30,31,0.5,0.5,True,3\n");
        let parsed = PjmLmp.parse("t", "rt_fivemin_hrl_lmps.csv", text.as_bytes());
        let t = &parsed.ticks[0];
        assert_eq!((t.revision, t.interval_s, t.node_type.as_deref()), (2, 300, Some("HUB")));
        let bad = PjmLmp.parse(
            "t",
            "rt.csv",
            format!("{HEADER}5/1/2025 4:05:00 AM,x,1,H,,,HUB,,30,31,0.5,0.5,True,0\n").as_bytes(),
        );
        assert!(bad.dead_letters[0].detail.contains("version_nbr"));
    }
}
