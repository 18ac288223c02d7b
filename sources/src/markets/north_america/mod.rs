//! North American ISO formats: NYISO, SPP, PJM, MISO, CAISO, ERCOT, IESO,
//! AESO.
//!
//! One module per operator, each documenting its own conventions; the table
//! below is the summary. Every tick has `ts` = interval start in UTC, unit
//! `MWh`, and the operator's run (`DA`/`RT`).
//!
//! | format | clock of the file | stamp | interval | currency |
//! |---|---|---|---|---|
//! | `nyiso-lbmp` | US Eastern prevailing | RT: end, DA: start | RT 5 min, DA 1 h | USD |
//! | `spp-lmp` | `GMTIntervalEnd` (UTC) | end | RTBM 5 min, DA 1 h | USD |
//! | `pjm-lmp` | `datetime_beginning_utc` | start | 1 h (5 min for `fivemin` files) | USD |
//! | `miso-lmp` | EST year-round (UTC−5) | hourly: hour ending; 5 min: weekly file start, feed end | 1 h, RT 5 min | USD |
//! | `caiso-oasis-lmp` | `INTERVALSTARTTIME_GMT` | start | end − start | USD |
//! | `ercot-spp` | US Central prevailing | hour ending (+ 15-min interval) | RT 15 min, DA 1 h | USD |
//! | `ieso-price` | EST year-round (UTC−5) | hour ending (RT: interval 1–12 of the hour) | DA and HOEP 1 h, RT 5 min | CAD |
//! | `aeso-pool-price` | Alberta prevailing | hour ending, `02*` repeat | 1 h | CAD |
//!
//! Where a file carries UTC the formats use it and never re-derive it from the
//! local column; local clocks go through chrono-tz ([`clock`]). The price
//! components follow `price = energy + congestion + loss` for every operator,
//! which for NYISO means flipping the sign of its published congestion.
//!
//! What the operators share lives here: [`Output`] collects a file's ticks and
//! dead letters with interned strings, [`CsvTable`] finds a CSV file's header
//! behind any preamble and hands out its rows with their line numbers, and
//! [`RowError`] says why a record became a dead letter.

mod aeso;
mod caiso;
mod clock;
mod ercot;
mod ieso;
mod miso;
mod nyiso;
mod pjm;
mod spp;

use carbonflow_core::{Millis, Str};
use chrono::{NaiveDate, NaiveDateTime};
use csv::ByteRecord;

use super::{FileOutput, MarketFormat, Parsed, record_text};
use crate::tick::CanonicalTick;

/// The North American formats.
pub static FORMATS: &[&dyn MarketFormat] = &[
    &nyiso::NyisoLbmp,
    &spp::SppLmp,
    &pjm::PjmLmp,
    &miso::MisoLmp,
    &caiso::CaisoOasisLmp,
    &ercot::ErcotSpp,
    &ieso::IesoPrice,
    &aeso::AesoPoolPrice,
];

/// Milliseconds in a second.
const MILLIS: i64 = 1_000;

/// Seconds in an hour.
const HOUR_S: i64 = 3_600;

/// Why a record, or a whole file, could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum RowError {
    /// The record has a different number of fields than the header.
    #[error("expected {expected} fields as in the header, found {found}")]
    FieldCount { expected: usize, found: usize },
    /// A field is not UTF-8 text.
    #[error("column '{column}' is not UTF-8 text")]
    Encoding { column: String },
    /// A required field is empty.
    #[error("column '{column}' is empty")]
    Empty { column: String },
    /// A field does not hold what its column should.
    #[error("column '{column}': {text:?} is not {expected}")]
    Value { column: String, text: String, expected: &'static str },
    /// The operator's placeholder for a value not published yet.
    #[error("placeholder {text:?} in column '{column}': {meaning}")]
    Placeholder { column: String, text: String, meaning: &'static str },
    /// A local time in the spring DST gap.
    #[error("local time {local} does not exist in {zone} (the hour skipped when DST starts)")]
    Gap { local: NaiveDateTime, zone: &'static str },
    /// The file marks a repeated hour that its time zone does not repeat.
    #[error("local time {local} is marked as the repeated DST hour, but {zone} does not repeat it")]
    NotRepeated { local: NaiveDateTime, zone: &'static str },
    /// The CSV reader failed.
    #[error("unreadable CSV: {0}")]
    Csv(String),
    /// No header row with the format's columns was found.
    #[error("no header row with the columns {expected}")]
    NoHeader { expected: &'static str },
    /// The header lacks a column the format needs.
    #[error("the header has no column {expected}")]
    MissingColumn { expected: String },
}

impl RowError {
    fn value(column: &str, text: &str, expected: &'static str) -> Self {
        RowError::Value {
            column: column.to_owned(),
            text: text.to_owned(),
            expected,
        }
    }
}

/// The price and its components, as one row publishes them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Prices {
    price: Option<f64>,
    energy: Option<f64>,
    congestion: Option<f64>,
    loss: Option<f64>,
}

impl Prices {
    /// The prices of an operator that publishes the total, congestion and
    /// loss: the energy component is the rest, implied by `price = energy +
    /// congestion + loss`, and empty unless all three are published.
    fn with_energy_from_rest(price: Option<f64>, congestion: Option<f64>, loss: Option<f64>) -> Self {
        let energy = price.zip(congestion).zip(loss).map(|((price, congestion), loss)| price - congestion - loss);
        Prices {
            price,
            energy,
            congestion,
            loss,
        }
    }
}

/// One file's ticks and dead letters, for a market with one currency: the
/// shared [`FileOutput`] plus the strings every tick of the file repeats.
struct Output<'a> {
    base: FileOutput<'a>,
    market: Str,
    currency: Str,
    unit: Str,
}

impl<'a> Output<'a> {
    fn new(table: &'a str, file: &'a str, market: &str, currency: &str) -> Self {
        let mut base = FileOutput::new(table, file);
        Output {
            market: base.intern(market),
            currency: base.intern(currency),
            unit: base.intern("MWh"),
            base,
        }
    }

    fn intern(&mut self, text: &str) -> Str {
        self.base.intern(text)
    }

    /// A tick of this file's market and currency.
    // One argument per tick field that the row decides; a builder would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn push(&mut self, node: Str, node_type: Option<Str>, ts: Millis, interval_s: i64, run: Str, prices: Prices, revision: i64) {
        let tick = CanonicalTick {
            market: self.market.clone(),
            node,
            node_type,
            ts,
            interval_s,
            price: prices.price,
            energy: prices.energy,
            congestion: prices.congestion,
            loss: prices.loss,
            currency: self.currency.clone(),
            unit: self.unit.clone(),
            run,
            revision,
        };
        self.base.push(tick);
    }

    /// Routes the record at `line` to the dead letters.
    fn reject(&mut self, line: u64, error: &RowError, record: String) {
        let position = self.base.at_line(line);
        self.base.dead_letter(position, error.to_string(), record);
    }

    fn finish(self) -> Parsed {
        self.base.finish()
    }
}

/// The header row of a CSV file.
struct Header {
    names: Vec<String>,
    line: u64,
}

impl Header {
    /// The index of the first column named one of `names` (case-insensitive).
    fn find(&self, names: &[&str]) -> Option<usize> {
        self.names.iter().position(|have| names.iter().any(|want| have.eq_ignore_ascii_case(want)))
    }

    /// Like [`Header::find`], but the column must exist.
    fn require(&self, names: &[&str]) -> Result<usize, RowError> {
        self.find(names).ok_or_else(|| RowError::MissingColumn {
            expected: names.iter().map(|name| format!("'{name}'")).collect::<Vec<_>>().join(" or "),
        })
    }

    /// The index of the first column whose name starts with `prefix`
    /// (case-insensitive), for names that carry a unit suffix.
    fn require_prefix(&self, prefix: &str) -> Result<usize, RowError> {
        self.names
            .iter()
            .position(|have| have.get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix)))
            .ok_or_else(|| RowError::MissingColumn {
                expected: format!("'{prefix}...'"),
            })
    }
}

/// A CSV file positioned after its header row.
struct CsvTable<'b> {
    bytes: &'b [u8],
    reader: csv::Reader<&'b [u8]>,
    header: Header,
}

impl<'b> CsvTable<'b> {
    /// Reads up to the header: the first record for which `is_header` holds
    /// (on its trimmed field texts). Earlier records go to `preamble` with
    /// their line numbers. A file without such a record leaves one dead
    /// letter, unless it holds no record at all (an empty upstream file).
    fn open(
        bytes: &'b [u8],
        out: &mut Output<'_>,
        expected: &'static str,
        is_header: impl Fn(&[String]) -> bool,
        mut preamble: impl FnMut(u64, &ByteRecord),
    ) -> Option<Self> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
        let mut record = ByteRecord::new();
        let mut first_line = None;
        while read_record(&mut reader, &mut record, out) {
            let line = line_of(bytes, &record);
            first_line.get_or_insert(line);
            let names: Vec<String> = record.iter().map(|field| String::from_utf8_lossy(field).trim().to_owned()).collect();
            if is_header(&names) {
                return Some(CsvTable {
                    bytes,
                    reader,
                    header: Header { names, line },
                });
            }
            preamble(line, &record);
        }
        if let Some(line) = first_line {
            out.reject(line, &RowError::NoHeader { expected }, String::new());
        }
        None
    }

    /// Reports a column missing from the header as a dead letter at the header line.
    fn reject_header(&self, out: &mut Output<'_>, error: &RowError) {
        out.reject(self.header.line, error, self.header.names.join(","));
    }

    /// Calls `handle` on every row after the header. A row with a different
    /// field count than the header, or one `handle` rejects, becomes a dead
    /// letter at its line.
    fn for_each_row(mut self, out: &mut Output<'_>, mut handle: impl FnMut(&mut Output<'_>, &Row<'_>) -> Result<(), RowError>) {
        let mut record = ByteRecord::new();
        while read_record(&mut self.reader, &mut record, out) {
            let line = line_of(self.bytes, &record);
            let row = Row {
                record: &record,
                header: &self.header,
            };
            let outcome = if record.len() == self.header.names.len() {
                handle(out, &row)
            } else {
                Err(RowError::FieldCount {
                    expected: self.header.names.len(),
                    found: record.len(),
                })
            };
            if let Err(error) = outcome {
                out.reject(line, &error, record_text(&record));
            }
        }
    }
}

/// Reads the next record. The reader cannot fail on a byte slice with
/// flexible records; should it anyway, the error is a dead letter and the
/// file ends there rather than looping on it.
fn read_record(reader: &mut csv::Reader<&[u8]>, record: &mut ByteRecord, out: &mut Output<'_>) -> bool {
    match reader.read_byte_record(record) {
        Ok(more) => more,
        Err(error) => {
            let line = error.position().map_or(reader.position().line(), csv::Position::line);
            out.reject(line, &RowError::Csv(error.to_string()), String::new());
            false
        }
    }
}

/// The line a record is on. The reader positions a record that follows blank
/// lines (which it skips) at the first of them, so those are counted here.
fn line_of(bytes: &[u8], record: &ByteRecord) -> u64 {
    let Some(position) = record.position() else {
        return 0;
    };
    let start = usize::try_from(position.byte()).map_or(bytes.len(), |start| start.min(bytes.len()));
    let blank = bytes[start..]
        .iter()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .filter(|&&b| b == b'\n')
        .count();
    position.line() + blank as u64
}

/// One data row of a [`CsvTable`].
struct Row<'r> {
    record: &'r ByteRecord,
    header: &'r Header,
}

impl Row<'_> {
    fn column(&self, index: usize) -> &str {
        self.header.names.get(index).map_or("?", String::as_str)
    }

    /// The trimmed text of a field (empty when absent).
    fn text(&self, index: usize) -> Result<&str, RowError> {
        let bytes = self.record.get(index).unwrap_or_default();
        std::str::from_utf8(bytes).map(str::trim).map_err(|_| RowError::Encoding {
            column: self.column(index).to_owned(),
        })
    }

    /// A field that must not be empty.
    fn required(&self, index: usize) -> Result<&str, RowError> {
        let text = self.text(index)?;
        if text.is_empty() {
            return Err(RowError::Empty {
                column: self.column(index).to_owned(),
            });
        }
        Ok(text)
    }

    /// A number that may be left empty.
    fn optional_number(&self, index: usize) -> Result<Option<f64>, RowError> {
        let text = self.text(index)?;
        if text.is_empty() {
            return Ok(None);
        }
        number(text).map(Some).ok_or_else(|| RowError::value(self.column(index), text, "a number"))
    }

    /// A number that must be there.
    fn number(&self, index: usize) -> Result<f64, RowError> {
        let text = self.required(index)?;
        number(text).ok_or_else(|| RowError::value(self.column(index), text, "a number"))
    }
}

/// A finite decimal number, also in the `.07` / `-.13` style MISO writes.
fn number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

/// `M/D/YYYY`, the US date the operators write (leading zeros optional).
fn us_date(text: &str) -> Option<NaiveDate> {
    let mut parts = text.split('/');
    let month = small_number(parts.next()?)?;
    let day = small_number(parts.next()?)?;
    let year = parts.next()?;
    if parts.next().is_some() || year.len() != 4 {
        return None;
    }
    NaiveDate::from_ymd_opt(i32::try_from(small_number(year)?).ok()?, month, day)
}

/// `M/D/YYYY H:MM[:SS][ AM|PM]`: the date-times of NYISO, SPP and PJM files.
fn us_date_time(text: &str) -> Option<NaiveDateTime> {
    let (date, time) = text.trim().split_once(' ')?;
    let date = us_date(date)?;
    let (clock, meridiem) = match time.trim().rsplit_once(' ') {
        Some((clock, meridiem)) => (clock, Some(meridiem)),
        None => (time.trim(), None),
    };
    let mut parts = clock.split(':');
    let mut hour = small_number(parts.next()?)?;
    let minute = small_number(parts.next()?)?;
    let second = parts.next().map_or(Some(0), small_number)?;
    if parts.next().is_some() {
        return None;
    }
    match meridiem {
        None => {}
        Some(am) if am.eq_ignore_ascii_case("AM") && (1..=12).contains(&hour) => hour %= 12,
        Some(pm) if pm.eq_ignore_ascii_case("PM") && (1..=12).contains(&hour) => hour = hour % 12 + 12,
        Some(_) => return None,
    }
    date.and_hms_opt(hour, minute, second)
}

/// One to four ASCII digits.
fn small_number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_dates_and_times_in_every_operator_style() {
        let at = |y, m, d, h, min, s| NaiveDate::from_ymd_opt(y, m, d).and_then(|date| date.and_hms_opt(h, min, s));
        assert_eq!(us_date_time("02/18/2016 00:15:00"), at(2016, 2, 18, 0, 15, 0));
        assert_eq!(us_date_time("5/1/2025 4:00:00 AM"), at(2025, 5, 1, 4, 0, 0));
        assert_eq!(us_date_time("5/1/2025 12:00:00 AM"), at(2025, 5, 1, 0, 0, 0));
        assert_eq!(us_date_time("6/28/2025 12:00:00 PM"), at(2025, 6, 28, 12, 0, 0));
        assert_eq!(us_date_time("6/28/2025 11:00:00 PM"), at(2025, 6, 28, 23, 0, 0));
        assert_eq!(us_date_time("03/19/2025 01:00"), at(2025, 3, 19, 1, 0, 0));
        for bad in [
            "2025-03-19 01:00:00",
            "13/01/2025 00:00:00",
            "03/19/25 01:00:00",
            "03/19/2025 13:00:00 PM",
            "03/19/2025 0:00:00 AM",
            "03/19/2025",
        ] {
            assert_eq!(us_date_time(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// Reference model: chrono's own formatting of the operators' styles.
        #[test]
        fn us_date_times_read_back_what_chrono_writes(seconds in 0i64..2_000_000_000) {
            let time = chrono::DateTime::from_timestamp(seconds, 0).map(|t| t.naive_utc());
            let Some(time) = time else { return Ok(()) };
            for style in ["%m/%d/%Y %H:%M:%S", "%-m/%-d/%Y %-I:%M:%S %p", "%-m/%-d/%Y %-I:%M:%S %P"] {
                let text = time.format(style).to_string();
                proptest::prop_assert_eq!(us_date_time(&text), Some(time), "{}", text);
            }
        }
    }

    #[test]
    fn numbers_accept_miso_style_and_reject_non_finite() {
        assert_eq!(number(".07"), Some(0.07));
        assert_eq!(number("-.13"), Some(-0.13));
        assert_eq!(number("-3.0542"), Some(-3.0542));
        for bad in ["", "-", "NaN", "inf", "1,5", "abc"] {
            assert_eq!(number(bad), None, "{bad}");
        }
    }

    #[test]
    fn csv_table_skips_preamble_and_dead_letters_bad_rows() {
        let mut out = Output::new("t", "f.csv", "X", "USD");
        let mut preamble = Vec::new();
        let bytes = b"Title\n07/16/2011\n\na,b\n1,2\n3\n\r\n\n4,x\n";
        let table = CsvTable::open(
            bytes,
            &mut out,
            "'a', 'b'",
            |names| names.first().is_some_and(|n| n == "a"),
            |line, record| preamble.push((line, record_text(record))),
        );
        let Some(table) = table else { panic!("header not found") };
        assert_eq!(table.header.line, 4);
        let mut seen = Vec::new();
        table.for_each_row(&mut out, |_, row| {
            seen.push((row.number(0)?, row.number(1)?));
            Ok(())
        });
        assert_eq!(preamble, vec![(1, "Title".to_owned()), (2, "07/16/2011".to_owned())]);
        assert_eq!(seen, vec![(1.0, 2.0)]);
        let parsed = out.finish();
        let letters: Vec<(&str, &str)> = parsed.dead_letters.iter().map(|l| (l.position.as_str(), l.detail.as_str())).collect();
        assert_eq!(
            letters,
            vec![
                ("f.csv:6", "expected 2 fields as in the header, found 1"),
                ("f.csv:9", "column 'b': \"x\" is not a number")
            ]
        );
    }

    #[test]
    fn a_file_without_header_is_one_dead_letter_and_an_empty_file_none() {
        let mut out = Output::new("t", "f.csv", "X", "USD");
        assert!(CsvTable::open(b"x,y\n1,2\n", &mut out, "'a'", |_| false, |_, _| {}).is_none());
        assert!(CsvTable::open(b"", &mut out, "'a'", |_| false, |_, _| {}).is_none());
        let parsed = out.finish();
        assert_eq!(parsed.dead_letters.len(), 1);
        assert_eq!(parsed.dead_letters[0].position, "f.csv:1");
    }

    /// Reads a market file through `create_source` in batches of at most
    /// `max_rows`; returns the rows, dead letters and number of batches.
    fn read_through_source(path: &std::path::Path, format: &str, max_rows: usize) -> (Vec<carbonflow_core::Row>, Vec<carbonflow_core::DeadLetter>, usize) {
        use carbonflow_core::DataType;
        let columns = [
            ("market", DataType::String),
            ("node", DataType::String),
            ("ts", DataType::Timestamp),
            ("price", DataType::Float),
        ];
        let config = crate::filesystem::tests::table(path, format, &columns, &[]);
        let mut source = crate::create_source(&config, crate::SourceContext::SINGLE).expect("source opens");
        let mut batch = crate::SourceBatch::default();
        let (mut rows, mut dead, mut batches) = (Vec::new(), Vec::new(), 0);
        loop {
            batch.clear();
            let status = source.poll(&mut batch, max_rows).expect("poll");
            if status == crate::SourceStatus::Finished {
                return (rows, dead, batches);
            }
            assert!(
                batch.rows.len() + batch.dead_letters.len() <= max_rows,
                "a batch holds at most max_rows records"
            );
            batches += 1;
            rows.append(&mut batch.rows);
            dead.append(&mut batch.dead_letters);
        }
    }

    #[test]
    fn end_to_end_sample_through_the_filesystem_source() {
        use carbonflow_core::Datum;
        let Some(dir) = crate::markets::testkit::market_data() else {
            return;
        };
        let path = dir.join("aeso/HistoricalPoolPriceReportServlet.csv");
        let (rows, dead, batches) = read_through_source(&path, "aeso-pool-price", 1_000);
        assert_eq!((rows.len(), dead.len()), (8_799, 9));
        assert!(batches >= 9, "{batches} batches");
        // Line 6: "10/12/2022 01","74.72".
        assert_eq!(
            rows[0].datums(),
            vec![
                Datum::Str("AESO".into()),
                Datum::Str("ALBERTA".into()),
                Datum::Timestamp(crate::markets::testkit::utc("2022-10-12 06:00:00")),
                Datum::float(74.72)
            ]
        );
        assert_eq!(
            (dead[0].origin.as_str(), dead[0].position.as_str()),
            ("ticks", "HistoricalPoolPriceReportServlet.csv:8805")
        );
    }

    #[test]
    fn end_to_end_fixture_through_the_filesystem_source() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/markets/north_america/ercot_dam_spp_20240310.csv");
        let (rows, dead, batches) = read_through_source(&path, "ercot-spp", 2);
        assert_eq!((rows.len(), dead.len(), batches), (4, 1, 3));
        assert_eq!(
            rows[1].get(2),
            &carbonflow_core::Datum::Timestamp(crate::markets::testkit::utc("2024-03-10 07:00:00"))
        );
    }
}
