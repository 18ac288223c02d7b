//! European, Australian, Japanese, gas and FX formats: ENTSO-E, EPEX SPOT,
//! Nord Pool, AEMO, JEPX, EIA, ECB.
//!
//! One module per publisher, each documenting its own conventions (time
//! zone, interval-ending or -beginning, placeholders). What they share lives
//! here: `FileOutput` collects a file's ticks and dead letters with interned
//! strings, `Series` holds the fields the ticks of one series share.
//!
//! Every format emits `ts` = interval start in UTC, `interval_s`, and
//! revision 0. The version numbers some documents carry (ENTSO-E
//! `revisionNumber`, Nord Pool `version`) number whole documents, not the
//! publications of one interval, so they are not copied; a republished file
//! is a new tick for the same key and the engine's primary-key upsert
//! retracts the old one.

pub mod aemo;
pub mod ecb;
pub mod eia;
pub mod entsoe;
pub mod epex;
pub mod jepx;
pub mod nordpool;

use carbonflow_core::{Millis, Str};

use super::{FileOutput, MarketFormat, record_text};
use crate::tick::CanonicalTick;

/// The international, gas and FX formats.
pub static FORMATS: &[&dyn MarketFormat] = &[
    &entsoe::EntsoeA44,
    &epex::EpexSpot,
    &nordpool::NordPoolDayAhead,
    &aemo::AemoPrice,
    &jepx::JepxSpot,
    &eia::EiaGas,
    &ecb::EcbFx,
];

/// Milliseconds in a second, for `interval_s` arithmetic on [`Millis`].
const MILLIS: i64 = 1_000;

/// Seconds in a day.
const DAY_S: i64 = 86_400;

/// The fields every tick of one series shares.
struct Series {
    market: Str,
    node_type: Option<Str>,
    currency: Str,
    unit: Str,
    run: Str,
}

impl Series {
    /// Interns the shared fields once per series.
    fn new(out: &mut FileOutput<'_>, market: &str, node_type: &str, currency: &str, unit: &str, run: &str) -> Self {
        Series {
            market: out.intern(market),
            node_type: Some(out.intern(node_type)),
            currency: out.intern(currency),
            unit: out.intern(unit),
            run: out.intern(run),
        }
    }

    /// The tick of `node` for the interval `[ts, ts + interval_s)`.
    fn tick(&self, node: Str, ts: Millis, interval_s: i64, price: f64) -> CanonicalTick {
        CanonicalTick {
            market: self.market.clone(),
            node,
            node_type: self.node_type.clone(),
            ts,
            interval_s,
            price: Some(price),
            energy: None,
            congestion: None,
            loss: None,
            currency: self.currency.clone(),
            unit: self.unit.clone(),
            run: self.run.clone(),
            revision: 0,
        }
    }
}

/// A finite number, or `None` for blanks, placeholders (`N/A`, `-`) and text.
fn parse_price(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|value| value.is_finite())
}

/// The 1-based line a CSV record starts on.
fn record_line(record: &csv::ByteRecord) -> u64 {
    record.position().map_or(0, |position| position.line())
}

/// Reads every record of a comma-separated file, tolerating ragged lines
/// (preambles, trailing commas) and bytes that are not UTF-8 (Shift_JIS
/// headers). A record the reader cannot split is a dead letter.
fn csv_records(out: &mut FileOutput<'_>, bytes: &[u8]) -> Vec<csv::ByteRecord> {
    // A UTF-8 byte-order mark would otherwise stick to the first header name.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut records = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => records.push(record.clone()),
            Ok(false) => break,
            Err(error) => {
                // Ragged byte records read from memory cannot fail to split;
                // should one, the rest of the file has no record boundaries left.
                let line = error.position().map_or(0, |position| position.line());
                out.dead_letter(out.at_line(line), format!("unreadable CSV record: {error}"), String::new());
                break;
            }
        }
    }
    records
}

/// A field of a CSV record as trimmed text (`""` when absent or not UTF-8).
fn field(record: &csv::ByteRecord, index: usize) -> &str {
    record.get(index).and_then(|bytes| std::str::from_utf8(bytes).ok()).unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use carbonflow_core::{DataType, Datum};

    use crate::SourceContext;
    use crate::filesystem::tests::{read_all, table};
    use crate::markets::testkit::{market_data, utc};

    #[test]
    fn every_format_is_registered_by_its_sql_name() {
        for name in ["entsoe-a44", "epex-spot", "nordpool-dayahead", "aemo-price", "jepx-spot", "eia-gas", "ecb-fx"] {
            assert_eq!(crate::markets::find(name).map(|f| f.name()), Some(name));
        }
    }

    #[test]
    fn filesystem_source_reads_an_entsoe_sample_into_declared_columns() {
        let Some(dir) = market_data() else { return };
        let path = dir.join("entsoe/ES_day_ahead_price_A44_20250928_20251002.xml");
        let columns = [
            ("ts", DataType::Timestamp),
            ("node", DataType::String),
            ("price", DataType::Float),
            ("interval_s", DataType::Int),
        ];
        let config = table(&path, "entsoe-a44", &columns, &[]);
        let (rows, dead) = read_all(&config, SourceContext::SINGLE);
        assert_eq!((rows.len(), dead.len()), (240, 0));
        // The file's first point (lines 31-34): position 1 = 51.6 from 2025-09-28T22:00Z, hourly.
        let first: Vec<Datum> = rows[0].datums().to_vec();
        assert_eq!(
            first,
            vec![
                Datum::Timestamp(utc("2025-09-28 22:00:00")),
                Datum::string("10YES-REE------0"),
                Datum::float(51.6),
                Datum::Int(3_600)
            ]
        );
    }

    #[test]
    fn filesystem_source_reads_an_epex_fixture_with_the_area_of_its_file_name() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/markets/auction_spot_prices_germany_luxembourg_2024.csv");
        let columns = [
            ("node", DataType::String),
            ("ts", DataType::Timestamp),
            ("price", DataType::Float),
            ("run", DataType::String),
        ];
        let config = table(&path, "epex-spot", &columns, &[]);
        let (rows, dead) = read_all(&config, SourceContext::SINGLE);
        assert_eq!((rows.len(), dead.len()), (94, 3));
        // Line 3: 27/10/2024 Hour 1 = 88.60, from 22:00 UTC the day before (CEST).
        assert_eq!(
            rows[0].datums(),
            vec![
                Datum::string("GERMANY_LUXEMBOURG"),
                Datum::Timestamp(utc("2024-10-26 22:00:00")),
                Datum::float(88.60),
                Datum::string("DA")
            ]
        );
        assert_eq!(dead[0].position, "auction_spot_prices_germany_luxembourg_2024.csv:5");
    }

    #[test]
    fn filesystem_source_routes_placeholders_to_dead_letters() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("rates.csv"), "Date,USD,CYP,\n2024-01-02,1.0956,N/A,\n").expect("write");
        let config = table(dir.path(), "ecb-fx", &[("node", DataType::String), ("price", DataType::Float)], &[]);
        let (rows, dead) = read_all(&config, SourceContext::SINGLE);
        let rates: Vec<&[Datum]> = rows.iter().map(|row| row.datums()).collect();
        assert_eq!(
            rates,
            vec![
                &[Datum::string("EUR"), Datum::float(1.0)][..],
                &[Datum::string("USD"), Datum::float(1.0956)][..]
            ]
        );
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].origin.as_str(), dead[0].position.as_str()), ("ticks", "rates.csv:2"));
        assert!(dead[0].detail.contains("CYP"));
    }
}
