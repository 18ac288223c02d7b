//! Test helpers shared by every market format: the shared sample files and
//! hand-checked spot values.

use std::path::{Path, PathBuf};

use carbonflow_core::time::parse_timestamp;
use carbonflow_core::{Millis, Str};

use crate::markets::{MarketFormat, Parsed};
use crate::tick::CanonicalTick;

/// The environment variable naming the shared `markets/` sample directory.
const DATA_DIR: &str = "CARBONFLOW_MARKET_DATA";

/// The shared markets directory, or `None` (after saying so) when
/// `CARBONFLOW_MARKET_DATA` is not set. A relative value is taken from the
/// workspace root, where `.ci/run` and the README's commands run, not from
/// this crate's folder, where cargo runs its tests.
pub(crate) fn market_data() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os(DATA_DIR) else {
        println!("skipped: {DATA_DIR} is not set");
        return None;
    };
    let dir = PathBuf::from(dir);
    if dir.is_absolute() {
        return Some(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate sits in the workspace");
    Some(workspace.join(dir))
}

/// Parses the sample `relative` (e.g. `nyiso/x.csv`) of the markets directory
/// with `format`, or says the test is skipped when the variable is unset.
pub(crate) fn parse_sample(format: &dyn MarketFormat, relative: &str) -> Option<Parsed> {
    let path = market_data()?.join(relative);
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let file = path.file_name().map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    Some(format.parse("samples", &file, &bytes))
}

/// A UTC timestamp written `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn utc(text: &str) -> Millis {
    parse_timestamp(text).unwrap_or_else(|| panic!("bad timestamp {text}"))
}

/// The one tick of `node` starting at `start` (UTC).
pub(crate) fn tick<'a>(ticks: &'a [CanonicalTick], node: &str, start: &str) -> &'a CanonicalTick {
    let ts = utc(start);
    let mut found = ticks.iter().filter(|tick| &*tick.node == node && tick.ts == ts);
    let first = found.next().unwrap_or_else(|| panic!("no tick for {node} at {start}"));
    assert!(found.next().is_none(), "several ticks for {node} at {start}");
    first
}

/// Checks a spot value: the price of `node` in the interval starting at `start` (UTC).
pub(crate) fn assert_price(ticks: &[CanonicalTick], node: &str, start: &str, price: f64) {
    let got = tick(ticks, node, start).price;
    assert!(close(got, price), "{node} at {start}: {got:?} != {price}");
}

/// `a` and `b` agree to the last decimal the operators publish.
pub(crate) fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

/// The distinct values of a string column.
pub(crate) fn distinct(ticks: &[CanonicalTick], column: impl Fn(&CanonicalTick) -> &Str) -> Vec<String> {
    let mut values: Vec<String> = ticks.iter().map(|t| column(t).to_string()).collect();
    values.sort();
    values.dedup();
    values
}
