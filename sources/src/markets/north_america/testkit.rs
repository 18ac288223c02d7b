//! Test helpers: the shared sample files and hand-checked spot values.

use carbonflow_core::Millis;
use carbonflow_core::time::parse_timestamp;

use crate::markets::{MarketFormat, Parsed};
use crate::tick::CanonicalTick;

/// The environment variable naming the shared `markets/` sample directory.
pub(super) const DATA_DIR: &str = "CARBONFLOW_MARKET_DATA";

/// Parses the sample `relative` (e.g. `nyiso/x.csv`) under `$CARBONFLOW_MARKET_DATA`
/// with `format`, or says the test is skipped when the variable is unset.
pub(super) fn parse_sample(format: &dyn MarketFormat, relative: &str) -> Option<Parsed> {
    let Some(dir) = std::env::var_os(DATA_DIR) else {
        println!("skipped: {DATA_DIR} is not set");
        return None;
    };
    let path = std::path::Path::new(&dir).join(relative);
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let file = path.file_name().map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    Some(format.parse("samples", &file, &bytes))
}

/// A UTC timestamp written `YYYY-MM-DD HH:MM:SS`.
pub(super) fn utc(text: &str) -> Millis {
    parse_timestamp(text).unwrap_or_else(|| panic!("bad timestamp {text}"))
}

/// The one tick of `node` starting at `start` (UTC).
pub(super) fn tick<'a>(parsed: &'a Parsed, node: &str, start: &str) -> &'a CanonicalTick {
    let ts = utc(start);
    let mut found = parsed.ticks.iter().filter(|tick| &*tick.node == node && tick.ts == ts);
    let first = found.next().unwrap_or_else(|| panic!("no tick for {node} at {start}"));
    assert!(found.next().is_none(), "several ticks for {node} at {start}");
    first
}

/// Asserts the price of the tick of `node` starting at `start`.
pub(super) fn assert_price(parsed: &Parsed, node: &str, start: &str, price: f64) {
    assert_eq!(tick(parsed, node, start).price, Some(price), "{node} at {start}");
}

/// `a` and `b` agree to the last decimal the operators publish.
pub(super) fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}
