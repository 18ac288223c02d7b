//! Market file formats: each operator's native files normalised to the
//! canonical tick ([`crate::tick`]), usable as `'format' = '<name>'` on the
//! `filesystem` source.
//!
//! ```sql
//! CREATE TABLE pjm (market STRING, node STRING, ts TIMESTAMP(3), price DOUBLE)
//! WITH ('connector' = 'filesystem', 'path' = 'data/pjm/', 'format' = 'pjm-lmp');
//! ```
//!
//! A format parses one whole file (the operators publish a day, a report or
//! a document per file) into ticks and dead letters. Its conventions (time
//! zone, interval-ending or -beginning hours, repeated DST hours, currency)
//! are its own and written in its module doc. A row a format cannot use (a
//! placeholder, a malformed line) becomes a dead letter with the reason and
//! its position in the file; it never stops a run.
//!
//! Every format is listed once, in [`formats`].

pub mod international;
pub mod north_america;
#[cfg(test)]
mod testkit;

use carbonflow_core::{DeadLetter, DeadLetterReason, Interner, Str};

use crate::tick::CanonicalTick;

/// What parsing one file produced.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The ticks, in the file's order.
    pub ticks: Vec<CanonicalTick>,
    /// The records that could not be used.
    pub dead_letters: Vec<DeadLetter>,
}

/// One file's ticks and dead letters, with its repeated strings interned:
/// what every format's parser writes into.
pub(crate) struct FileOutput<'a> {
    table: &'a str,
    file: &'a str,
    strings: Interner,
    parsed: Parsed,
}

impl<'a> FileOutput<'a> {
    /// An empty output for `file` of `table`.
    pub(crate) fn new(table: &'a str, file: &'a str) -> Self {
        FileOutput {
            table,
            file,
            strings: Interner::default(),
            parsed: Parsed::default(),
        }
    }

    /// The shared copy of a repeated string (node names, codes).
    pub(crate) fn intern(&mut self, text: &str) -> Str {
        self.strings.intern(text)
    }

    /// `file:line`, the position of a record in a text file.
    pub(crate) fn at_line(&self, line: u64) -> String {
        format!("{}:{line}", self.file)
    }

    /// `file: path`, the position of a value in a document without useful lines.
    pub(crate) fn at_path(&self, path: &str) -> String {
        format!("{}: {path}", self.file)
    }

    /// A record the format cannot use.
    pub(crate) fn dead_letter(&mut self, position: String, detail: impl Into<String>, record: impl Into<String>) {
        self.parsed.dead_letters.push(DeadLetter {
            origin: self.table.to_owned(),
            reason: DeadLetterReason::Parse,
            detail: detail.into(),
            position,
            record: record.into(),
        });
    }

    /// A parsed tick.
    pub(crate) fn push(&mut self, tick: CanonicalTick) {
        self.parsed.ticks.push(tick);
    }

    /// Everything the file gave.
    pub(crate) fn finish(self) -> Parsed {
        self.parsed
    }
}

/// A CSV record as text, for its dead letter.
pub(crate) fn record_text(record: &csv::ByteRecord) -> String {
    record.iter().map(String::from_utf8_lossy).collect::<Vec<_>>().join(",")
}

/// A market operator's native file format.
pub trait MarketFormat: Sync {
    /// The name used as `'format' = '...'`, e.g. `pjm-lmp`.
    fn name(&self) -> &'static str;

    /// One line for `carbonflow formats`: the operator, the files and their conventions.
    fn description(&self) -> &'static str;

    /// Parses one whole file. `table` and `file` name the origin and position
    /// of dead letters (`table`, `file:line`).
    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed;
}

impl PartialEq for &'static dyn MarketFormat {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl std::fmt::Debug for &'static dyn MarketFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every market format, in the order `carbonflow formats` lists them.
pub fn formats() -> Vec<&'static dyn MarketFormat> {
    north_america::FORMATS.iter().chain(international::FORMATS).copied().collect()
}

/// The format called `name` (case-insensitive).
pub fn find(name: &str) -> Option<&'static dyn MarketFormat> {
    formats().into_iter().find(|format| format.name().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = formats().iter().map(|f| f.name()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
    }
}
