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

use carbonflow_core::DeadLetter;

use crate::tick::CanonicalTick;

/// What parsing one file produced.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The ticks, in the file's order.
    pub ticks: Vec<CanonicalTick>,
    /// The records that could not be used.
    pub dead_letters: Vec<DeadLetter>,
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
