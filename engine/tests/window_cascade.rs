//! Cascading windows: a window aggregation grouped by `window_time` keeps it
//! as a time attribute, so a second TUMBLE reads the aggregated view. Five-
//! minute bars rolled up into hours must equal hours aggregated from the ticks
//! directly, over the rows each admits.
//!
//! Property test of the whole engine against a naive model: random ticks with
//! revisions (primary-key upserts, i.e. retractions), out-of-order rows inside
//! the watermark delay, late rows up to 40 minutes behind and revisions of
//! any earlier row (some within the allowed lateness of 10 or 90 minutes,
//! some beyond it), random batch sizes, 1, 2 or 4 workers, each stage in
//! either emit mode. The one file runs both the cascade and the direct hourly
//! aggregation over the same input.
//!
//! The model replays the input epoch by epoch: the watermark an epoch's rows
//! meet is the largest event time of the earlier epochs minus the delay (a
//! single file is read by one worker, `batch_size` rows an epoch), and a
//! change to a window is admitted unless the watermark has reached
//! `window_end - 1 + lateness`. The cascade must equal the hourly aggregates
//! of the changes its five-minute stage admitted, the direct query those of
//! the changes its hourly stage admitted; the hourly stage of the cascade
//! never rejects a bar (a bar's changes end when its window retires, before
//! its hour's does), so the dead letters are exactly the two stages'
//! rejections. Where both stages admitted the same changes, the cascade
//! equals the direct query line for line.
//!
//! SESSION windows grouped by `window_time` cascade the same way, with the
//! watermark of the stage above them held back by the gap (see
//! `Plan::watermark_lag`): windows over sessions must equal the windows of
//! the final sessions of the rows the session stage admitted, and only the
//! session stage may reject a change.

use std::collections::BTreeMap;

mod common;

use carbonflow_core::Millis;
use carbonflow_core::time::format_timestamp;
use common::{BASE, read_sorted, run_sql};
use proptest::prelude::*;

const DELAY: Millis = 60_000;
const BAR: Millis = 300_000;
const HOUR: Millis = 3_600_000;

/// A row as it arrives: node `N{node}`, event time `BASE + second` seconds, a price.
#[derive(Clone, Debug, PartialEq)]
struct Arrival {
    node: u8,
    second: i64,
    price: i64,
}

impl Arrival {
    fn time(&self) -> Millis {
        BASE + self.second * 1000
    }
}

/// Rows whose event times drift forward by up to 4 minutes: most within the
/// watermark delay of the latest, one in ten up to `max_behind` seconds
/// behind it, one in ten revising an earlier row (same node and time, new price).
fn arrivals(max_behind: i64) -> impl Strategy<Value = Vec<Arrival>> {
    let raw = (0..2u8, 0..240i64, 0..10u8, 0..max_behind, -50i64..200, any::<prop::sample::Index>());
    prop::collection::vec(raw, 1..80).prop_map(|raw| {
        let mut clock = 0;
        let mut arrivals: Vec<Arrival> = Vec::new();
        for (node, step, kind, behind, price, revised) in raw {
            clock += step;
            let arrival = match kind {
                0..=7 => Arrival {
                    node,
                    second: (clock - behind % 60).max(0),
                    price,
                },
                8 => Arrival {
                    node,
                    second: (clock - behind).max(0),
                    price,
                },
                _ if arrivals.is_empty() => Arrival { node, second: clock, price },
                _ => Arrival {
                    price,
                    ..arrivals[revised.index(arrivals.len())].clone()
                },
            };
            arrivals.push(arrival);
        }
        arrivals
    })
}

/// When a TUMBLE of `size` rejects a change at `time`: once the watermark
/// is `lateness` past its window's last instant.
fn tumble_late_from(size: Millis, lateness: Millis) -> impl Fn(Millis) -> Millis {
    move |time| time - (time - BASE).rem_euclid(size) + size - 1 + lateness
}

/// What one aggregation stage admits from the upserted input, given the
/// watermark from which it rejects a change at an event time: the rows it
/// holds at the end by (node, second), and how many changes it rejected as late.
fn admitted(arrivals: &[Arrival], batch_size: usize, late_from: impl Fn(Millis) -> Millis) -> (BTreeMap<(u8, i64), i64>, u64) {
    let mut current: BTreeMap<(u8, i64), i64> = BTreeMap::new();
    let mut held = BTreeMap::new();
    let mut rejected = 0;
    let mut latest: Option<Millis> = None;
    for epoch in arrivals.chunks(batch_size) {
        let watermark = latest.map(|t| t - DELAY);
        for arrival in epoch {
            let key = (arrival.node, arrival.second);
            let changes = match current.insert(key, arrival.price) {
                Some(previous) if previous == arrival.price => continue,
                Some(_) => 2,
                None => 1,
            };
            if watermark.is_some_and(|w| w >= late_from(arrival.time())) {
                rejected += changes;
            } else {
                held.insert(key, arrival.price);
            }
        }
        latest = epoch.iter().map(Arrival::time).chain(latest).max();
    }
    (held, rejected)
}

/// `N{node},hour start,count,sum,min,max` per hour of `rows`, sorted.
fn hourly(rows: &BTreeMap<(u8, i64), i64>) -> Vec<String> {
    let mut hours: BTreeMap<(u8, Millis), (i64, i64, i64, i64)> = BTreeMap::new();
    for (&(node, second), &price) in rows {
        let time = BASE + second * 1000;
        let entry = hours.entry((node, time - (time - BASE).rem_euclid(HOUR))).or_insert((0, 0, i64::MAX, i64::MIN));
        entry.0 += 1;
        entry.1 += price;
        entry.2 = entry.2.min(price);
        entry.3 = entry.3.max(price);
    }
    hours
        .into_iter()
        .map(|((node, start), (count, sum, min, max))| format!("N{node},{},{count},{sum},{min},{max}", format_timestamp(start)))
        .collect()
}

/// Writes `arrivals` to `ticks.csv` in `dir` and returns the statements
/// declaring it as the upserted table `ticks` (watermark `DELAY` behind)
/// under `lateness`.
fn ticks_table(dir: &std::path::Path, arrivals: &[Arrival], lateness: Millis) -> String {
    let input = dir.join("ticks.csv");
    let csv: String = arrivals
        .iter()
        .map(|a| format!("N{},{},{}\n", a.node, format_timestamp(a.time()), a.price))
        .collect();
    std::fs::write(&input, csv).unwrap();
    format!(
        "SET 'table.exec.emit.allowed-lateness' = '{} s';
         CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price BIGINT,
            PRIMARY KEY (node, ts) NOT ENFORCED,
            WATERMARK FOR ts AS ts - INTERVAL '{}' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');",
        lateness / 1000,
        DELAY / 1000,
        input.display()
    )
}

/// A CSV sink `name` writing to `path`: `node`, `hour`, then `columns` (BIGINT each).
fn hourly_sink(name: &str, path: &std::path::Path, columns: &[&str]) -> String {
    let columns: String = columns.iter().map(|c| format!(", {c} BIGINT")).collect();
    format!(
        "CREATE TABLE {name} (node STRING, hour TIMESTAMP(3){columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');",
        path.display()
    )
}

/// The cascade's and the direct query's final lines, and the dead letters.
fn engine(arrivals: &[Arrival], workers: usize, batch_size: usize, lateness: Millis, bar_emit: &str, hour_emit: &str) -> (Vec<String>, Vec<String>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (cascade, direct) = (dir.path().join("cascade.csv"), dir.path().join("direct.csv"));
    let columns = ["n", "total", "low", "high"];
    let sql = format!(
        "{}
         {}
         {}
         CREATE VIEW bars AS
         SELECT node, window_start AS bar_start, window_time AS bar_time, COUNT(*) AS n, SUM(price) AS total, MIN(price) AS low, MAX(price) AS high
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '5' MINUTE))
         GROUP BY node, window_start, window_end, window_time {bar_emit};
         INSERT INTO cascade
         SELECT node, window_start, SUM(n), SUM(total), MIN(low), MAX(high)
         FROM TABLE(TUMBLE(TABLE bars, DESCRIPTOR(bar_time), INTERVAL '1' HOUR))
         GROUP BY node, window_start, window_end {hour_emit};
         INSERT INTO direct
         SELECT node, window_start, COUNT(*), SUM(price), MIN(price), MAX(price)
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' HOUR))
         GROUP BY node, window_start, window_end {hour_emit};",
        ticks_table(dir.path(), arrivals, lateness),
        hourly_sink("cascade", &cascade, &columns),
        hourly_sink("direct", &direct, &columns),
    );
    let summary = run_sql(&sql, workers, batch_size);
    (read_sorted(&cascade), read_sorted(&direct), summary.dead_letter_total())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn oracle_five_minute_bars_rolled_up_equal_hours_from_ticks(
        arrivals in arrivals(2400),
        workers in prop::sample::select(vec![1usize, 2, 4]),
        batch_size in 1usize..8,
        lateness in prop::sample::select(vec![600_000, 5_400_000]),
        bar_emit in prop::sample::select(vec!["EMIT CHANGES", "EMIT FINAL"]),
        hour_emit in prop::sample::select(vec!["EMIT CHANGES", "EMIT FINAL"]),
    ) {
        let (bars_held, bars_rejected) = admitted(&arrivals, batch_size, tumble_late_from(BAR, lateness));
        let (hours_held, hours_rejected) = admitted(&arrivals, batch_size, tumble_late_from(HOUR, lateness));
        let (cascade, direct, dead_letters) = engine(&arrivals, workers, batch_size, lateness, bar_emit, hour_emit);
        prop_assert_eq!(&cascade, &hourly(&bars_held));
        prop_assert_eq!(&direct, &hourly(&hours_held));
        prop_assert_eq!(dead_letters, bars_rejected + hours_rejected);
        if bars_held == hours_held {
            prop_assert_eq!(cascade, direct);
        }
    }
}

/// A window aggregation keeps a time attribute only through `window_time`
/// in its GROUP BY; without it, a second window over the view is refused
/// with the reason. With it, a second window and OVER read the view.
#[test]
fn a_window_over_an_aggregation_needs_its_window_time() {
    let query = |group_by: &str| {
        format!(
            "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
             WITH ('connector' = 'filesystem', 'path' = 'ticks.csv', 'format' = 'csv');
             CREATE VIEW bars AS
             SELECT node, window_end AS bar_end, MAX(window_time) AS latest, AVG(price) AS price
             FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '5' MINUTE))
             GROUP BY {group_by};
             SELECT node, window_start, AVG(price) FROM TABLE(TUMBLE(TABLE bars, DESCRIPTOR(bar_end), INTERVAL '1' HOUR))
             GROUP BY node, window_start, window_end;"
        )
    };
    let error = carbonflow::cli::check_text(&query("node, window_start, window_end")).expect_err("window_end is not a time attribute");
    assert!(error.message.contains("'bar_end' is not a time attribute"), "{}", error.message);
    assert!(error.message.contains("window_time of a window aggregation grouped by it"), "{}", error.message);

    let grouped = query("node, window_start, window_end, window_time")
        .replace("window_end AS bar_end, MAX(window_time) AS latest", "window_time AS bar_time")
        .replace("DESCRIPTOR(bar_end)", "DESCRIPTOR(bar_time)");
    carbonflow::cli::check_text(&grouped).unwrap_or_else(|e| panic!("{}", e.message));

    // The same holds for HOP, and OVER reads the view as a second window does.
    let hop_over = grouped
        .replace(
            "TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '5' MINUTE)",
            "HOP(TABLE ticks, DESCRIPTOR(ts), INTERVAL '5' MINUTE, INTERVAL '15' MINUTE)",
        )
        .replace(
            "SELECT node, window_start, AVG(price) FROM TABLE(TUMBLE(TABLE bars, DESCRIPTOR(bar_time), INTERVAL '1' HOUR))
             GROUP BY node, window_start, window_end;",
            "SELECT node, bar_time, ZSCORE(price) OVER (PARTITION BY node ORDER BY bar_time ROWS BETWEEN 11 PRECEDING AND CURRENT ROW) FROM bars;",
        );
    assert!(hop_over.contains("HOP(") && hop_over.contains("ZSCORE("), "{hop_over}");
    carbonflow::cli::check_text(&hop_over).unwrap_or_else(|e| panic!("{}", e.message));
}

/// The rows of a session (or of the sessions of a window): count, sum, min, max.
#[derive(Clone, Copy)]
struct Prices {
    n: i64,
    total: i64,
    low: i64,
    high: i64,
}

impl Prices {
    fn of(price: i64) -> Self {
        Prices {
            n: 1,
            total: price,
            low: price,
            high: price,
        }
    }

    fn merge(self, other: Prices) -> Self {
        Prices {
            n: self.n + other.n,
            total: self.total + other.total,
            low: self.low.min(other.low),
            high: self.high.max(other.high),
        }
    }
}

/// `N{node},window start,sessions,n,total,low,high` per TUMBLE of `size`
/// over the sessions' `window_time` of `rows`: each node's rows split where
/// `gap` or more separates two.
fn sessions_by_window(rows: &BTreeMap<(u8, i64), i64>, gap: Millis, size: Millis) -> Vec<String> {
    // Each node's sessions: (node, last row's time, prices), in order.
    let mut sessions: Vec<(u8, Millis, Prices)> = Vec::new();
    for (&(node, second), &price) in rows {
        let time = BASE + second * 1000;
        match sessions.last_mut() {
            Some((n, last, prices)) if *n == node && time - *last < gap => {
                *last = time;
                *prices = prices.merge(Prices::of(price));
            }
            _ => sessions.push((node, time, Prices::of(price))),
        }
    }
    let mut windows: BTreeMap<(u8, Millis), (i64, Prices)> = BTreeMap::new();
    for (node, last, prices) in sessions {
        let window_time = last + gap - 1;
        let start = window_time - (window_time - BASE).rem_euclid(size);
        windows
            .entry((node, start))
            .and_modify(|(count, sum)| {
                *count += 1;
                *sum = sum.merge(prices);
            })
            .or_insert((1, prices));
    }
    windows
        .into_iter()
        .map(|((node, start), (count, p))| format!("N{node},{},{count},{},{},{},{}", format_timestamp(start), p.n, p.total, p.low, p.high))
        .collect()
}

/// TUMBLEs of `size` over sessions through the engine: the final lines and the dead letters.
#[allow(clippy::too_many_arguments)] // the generated case, spelled out
fn session_engine(
    arrivals: &[Arrival],
    workers: usize,
    batch_size: usize,
    lateness: Millis,
    gap: Millis,
    size: Millis,
    session_emit: &str,
    window_emit: &str,
) -> (Vec<String>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("windows.csv");
    let sql = format!(
        "{}
         {}
         CREATE VIEW sessions AS
         SELECT node, window_time AS session_time, COUNT(*) AS n, SUM(price) AS total, MIN(price) AS low, MAX(price) AS high
         FROM TABLE(SESSION(TABLE ticks PARTITION BY node, DESCRIPTOR(ts), INTERVAL '{}' SECOND))
         GROUP BY node, window_start, window_end, window_time {session_emit};
         INSERT INTO windows
         SELECT node, window_start, COUNT(*), SUM(n), SUM(total), MIN(low), MAX(high)
         FROM TABLE(TUMBLE(TABLE sessions, DESCRIPTOR(session_time), INTERVAL '{}' SECOND))
         GROUP BY node, window_start, window_end {window_emit};",
        ticks_table(dir.path(), arrivals, lateness),
        hourly_sink("windows", &output, &["sessions", "n", "total", "low", "high"]),
        gap / 1000,
        size / 1000,
    );
    let summary = run_sql(&sql, workers, batch_size);
    (read_sorted(&output), summary.dead_letter_total())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// SESSION windows as a time attribute: five-minute or hourly windows of
    /// sessions equal the batch computation over the final sessions of the
    /// rows the session stage admitted (a change at `ts` unless the
    /// watermark has reached `ts + gap + lateness`), and the second stage,
    /// whose watermark trails the tables' by the gap, rejects none of the
    /// sessions' changes.
    #[test]
    fn oracle_windows_of_sessions_equal_windows_of_the_final_sessions(
        // Late rows mostly within a gap of the watermark, where they extend,
        // merge and split sessions the watermark has passed.
        arrivals in arrivals(600),
        workers in prop::sample::select(vec![1usize, 2]),
        batch_size in 1usize..8,
        lateness in prop::sample::select(vec![0, 300_000]),
        gap in prop::sample::select(vec![120_000, 300_000]),
        size in prop::sample::select(vec![BAR, HOUR]),
        session_emit in prop::sample::select(vec!["EMIT CHANGES", "EMIT FINAL"]),
        window_emit in prop::sample::select(vec!["EMIT CHANGES", "EMIT FINAL"]),
    ) {
        let (held, rejected) = admitted(&arrivals, batch_size, |time| time + gap + lateness);
        let (windows, dead_letters) = session_engine(&arrivals, workers, batch_size, lateness, gap, size, session_emit, window_emit);
        prop_assert_eq!(windows, sessions_by_window(&held, gap, size));
        prop_assert_eq!(dead_letters, rejected);
    }
}

/// A late row that extends a session retracts the session's old row, whose
/// `window_time` the watermark has passed: node N0's session [170 s, 290 s)
/// (`window_time` 289 s, in the window [0, 300 s)) is extended to 380 s by a
/// row at 260 s arriving when the watermark is at 340 s. The session stage
/// admits it (260 + 120 > 340); the five-minute stage must take the
/// retraction too, which it does because its watermark trails by the gap
/// (220 s, before the window's last instant).
#[test]
fn a_late_row_extending_a_session_reaches_the_window_over_it() {
    let arrivals = [(170, 1), (400, 2), (260, 4)].map(|(second, price)| Arrival { node: 0, second, price });
    for workers in [1, 2] {
        let (held, rejected) = admitted(&arrivals, 1, |time| time + 120_000);
        assert_eq!(rejected, 0);
        let (windows, dead_letters) = session_engine(&arrivals, workers, 1, 0, 120_000, BAR, "EMIT CHANGES", "EMIT CHANGES");
        assert_eq!(windows, sessions_by_window(&held, 120_000, BAR));
        // Both sessions, [170 s, 380 s) and [400 s, 520 s), end in the second window.
        assert_eq!(windows, [format!("N0,{},2,3,7,1,4", format_timestamp(BASE + BAR))]);
        assert_eq!(dead_letters, 0);
    }
}
