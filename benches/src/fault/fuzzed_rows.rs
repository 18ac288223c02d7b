//! A million generated CSV rows through a file source: most are valid ticks,
//! the rest garbage of the kinds real feeds carry (numbers that do not parse,
//! integers that overflow, too few or too many columns, invalid UTF-8,
//! fields of hundreds of KiB, impossible timestamps, lines of noise). The run
//! must not crash, must dead-letter every bad row and count every valid one
//! exactly once: `SELECT node, COUNT(*), SUM(volume) ... GROUP BY node` into
//! a CSV file is compared with the generator's own tally.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write as _};
use std::time::Duration;

use anyhow::{Context, ensure};
use carbonflow_core::time::format_timestamp;

use super::{Outcome, Suite};

const ROWS: u64 = 1_000_000;
const NODES: u64 = 500;
/// 2024-01-01 00:00:00 UTC.
const BASE: i64 = 1_704_067_200_000;

/// A seeded xorshift generator: the same file every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The kinds of rows, with how many of each were written.
#[derive(Default)]
struct Tally {
    /// Per node: valid rows and their volume.
    valid: BTreeMap<String, (i64, i64)>,
    /// Bad rows by kind.
    bad: BTreeMap<&'static str, u64>,
}

/// Writes one row (without its newline) and records what it is.
fn write_row(random: &mut Random, index: u64, out: &mut Vec<u8>, tally: &mut Tally) {
    let node = format!("N{}", random.next() % NODES);
    let ts = format_timestamp(BASE + i64::try_from(index).unwrap_or(0) * 10);
    let price = format!("{}.{}", random.next() % 500, random.next() % 100);
    let volume = i64::try_from(random.next() % 1000).unwrap_or(0);
    let choice = random.next() % 1000;
    let mut bad = |kind: &'static str, row: Vec<u8>| {
        *tally.bad.entry(kind).or_default() += 1;
        out.extend_from_slice(&row);
    };
    // One row in 10,000 carries a field of 256 KiB.
    if index % 10_000 == 9_999 {
        let huge = "9".repeat(128 * 1024) + &"x".repeat(128 * 1024);
        return bad("huge field", format!("{node},{ts},{huge},{volume}").into_bytes());
    }
    match choice {
        0..700 => {
            let entry = tally.valid.entry(node.clone()).or_default();
            entry.0 += 1;
            entry.1 += volume;
            out.extend_from_slice(format!("{node},{ts},{price},{volume}").as_bytes());
        }
        700..750 => {
            let garbage = ["12.3.4", "abc", "1e", "--5", "0x1F", "4,2"][usize::try_from(choice % 6).unwrap_or(0)];
            // "4,2" also makes five columns: a bad row either way.
            bad("bad number", format!("{node},{ts},{garbage},{volume}").into_bytes());
        }
        750..780 => {
            let garbage = ["1.5", "99999999999999999999", "-9223372036854775809", "ten"][usize::try_from(choice % 4).unwrap_or(0)];
            bad("bad integer", format!("{node},{ts},{price},{garbage}").into_bytes());
        }
        780..830 => {
            let row = if choice.is_multiple_of(2) {
                format!("{node},{ts},{price}")
            } else {
                format!("{node},{ts},{price},{volume},{volume}")
            };
            bad("wrong column count", row.into_bytes());
        }
        830..870 => {
            let mut row = vec![b'N', 0xff, 0xfe, b'0' + (choice % 10) as u8];
            row.extend_from_slice(format!(",{ts},{price},{volume}").as_bytes());
            bad("invalid UTF-8", row);
        }
        870..930 => {
            let garbage = ["2024-13-45 25:61:00", "yesterday", "2024-02-30 00:00:00", "1704067200", "2024-01-01T"][usize::try_from(choice % 5).unwrap_or(0)];
            bad("bad timestamp", format!("{node},{garbage},{price},{volume}").into_bytes());
        }
        _ => {
            // Noise without quotes, separators or line breaks: one field, so a wrong column count.
            let length = 1 + random.next() % 60;
            let noise: Vec<u8> = (0..length)
                .map(|_| (random.next() % 256) as u8)
                .map(|byte| if matches!(byte, b'"' | b',' | b'\n' | b'\r') { b'?' } else { byte })
                .collect();
            bad("noise", noise);
        }
    }
}

/// Runs the scenario.
pub fn run(suite: &Suite) -> anyhow::Result<Outcome> {
    let dir = suite.scenario_dir("fuzzed-rows")?;
    let input = dir.join("ticks.csv");
    let mut tally = Tally::default();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut writer = BufWriter::new(std::fs::File::create(&input)?);
    let mut row = Vec::new();
    for index in 0..ROWS {
        row.clear();
        write_row(&mut random, index, &mut row, &mut tally);
        row.push(b'\n');
        writer.write_all(&row)?;
    }
    writer.flush()?;
    drop(writer);
    let output = dir.join("counts.csv");
    let dead_letters = dir.join("dead-letters.jsonl");
    let query = dir.join("fuzzed.sql");
    std::fs::write(
        &query,
        format!(
            "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, volume BIGINT)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             CREATE TABLE counts (node STRING, n BIGINT, volume BIGINT)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             INSERT INTO counts SELECT node, COUNT(*), SUM(volume) FROM ticks GROUP BY node;",
            input.display(),
            output.display()
        ),
    )?;
    let dead_letter_arg = dead_letters.display().to_string();
    let engine = suite.start_engine(&query, &["--no-server", "--dead-letter", &dead_letter_arg], &dir.join("engine.log"))?;
    let (status, peak_kib) = engine.wait(Duration::from_secs(600))?;
    ensure!(status.success(), "the run failed: {status} (see {})", dir.join("engine.log").display());

    let mut counted: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for line in std::fs::read_to_string(&output).context("the counts")?.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        ensure!(fields.len() == 3, "a counts line: {line}");
        counted.insert(fields[0].to_owned(), (fields[1].parse()?, fields[2].parse()?));
    }
    let (mut lost, mut duplicated, mut volume_mismatches) = (0, 0, 0);
    for node in tally.valid.keys().chain(counted.keys()).collect::<std::collections::BTreeSet<_>>() {
        let expected = tally.valid.get(node).copied().unwrap_or_default();
        let got = counted.get(node).copied().unwrap_or_default();
        lost += (expected.0 - got.0).max(0) as u64;
        duplicated += (got.0 - expected.0).max(0) as u64;
        volume_mismatches += u64::from(expected.0 == got.0 && expected.1 != got.1);
    }
    let valid: i64 = tally.valid.values().map(|(n, _)| n).sum();
    let bad: u64 = tally.bad.values().sum();
    let dead = std::fs::read_to_string(&dead_letters).context("the dead letters")?.lines().count() as u64;
    let mut notes = vec![
        format!("{valid} valid rows, {bad} bad rows written"),
        format!("{dead} dead letters (every bad row: {})", if dead == bad { "yes" } else { "NO" }),
        format!(
            "bad rows by kind: {}",
            tally.bad.iter().map(|(kind, count)| format!("{kind} {count}")).collect::<Vec<_>>().join(", ")
        ),
    ];
    if volume_mismatches > 0 {
        notes.push(format!("{volume_mismatches} nodes with the right count but a wrong volume sum"));
    }
    Ok(Outcome {
        name: "fuzzed-input-rows".into(),
        fault: format!(
            "{ROWS} generated CSV rows (seeded), about 70% valid ticks over {NODES} nodes and 30% garbage, through a filesystem source into `SELECT node, COUNT(*), SUM(volume) GROUP BY node`, with `--dead-letter FILE`. Lost counts valid rows missing from the result plus bad rows missing from the dead letters; duplicated, valid rows counted twice plus dead letters beyond the bad rows."
        ),
        lost: lost + bad.saturating_sub(dead),
        duplicated: duplicated + dead.saturating_sub(bad),
        peak_rss_kib: peak_kib,
        notes,
    })
}
