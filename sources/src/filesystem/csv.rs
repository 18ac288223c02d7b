//! CSV files, read the way Flink's `csv` format reads them (the record rules
//! and options are in [`crate::decode::csv`]).
//!
//! Files are header-less by default and fields map to the declared columns by
//! position; `'csv.header' = 'true'` (our extension) skips each file's first
//! record. Dead letters are positioned at `file name:line`.
//!
//! The reader reuses one [`ByteRecord`] across the records of every file.

use std::fs::File;
use std::path::Path;

use carbonflow_core::ConnectorConfig;
use csv::ByteRecord;

use super::{FormatReader, file_name};
use crate::decode::csv::{CsvOptions, RecordParser};
use crate::{SourceBatch, SourceError};

/// Reads CSV files record by record into rows.
pub(super) struct CsvReader {
    parser: RecordParser,
    record: ByteRecord,
    /// The file being read and its short name.
    current: Option<(csv::Reader<File>, String)>,
}

impl CsvReader {
    /// A reader for the table's columns.
    pub(super) fn new(config: &ConnectorConfig, options: CsvOptions) -> Self {
        CsvReader {
            parser: RecordParser::new(config, options),
            record: ByteRecord::new(),
            current: None,
        }
    }
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> SourceError {
    SourceError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

impl FormatReader for CsvReader {
    fn measure(&mut self, path: &Path) -> Result<u64, SourceError> {
        Ok(std::fs::metadata(path).map_err(|error| io_error(path, error))?.len())
    }

    fn start(&mut self, path: &Path) -> Result<(), SourceError> {
        let file = File::open(path).map_err(|error| io_error(path, error))?;
        let mut reader = self.parser.options().reader(1 << 16, file);
        if self.parser.options().header {
            reader.read_byte_record(&mut self.record).map_err(|error| io_error(path, error))?;
        }
        self.current = Some((reader, file_name(path)));
        Ok(())
    }

    fn read(&mut self, batch: &mut SourceBatch, max_records: usize) -> Result<bool, SourceError> {
        let Some((reader, name)) = self.current.as_mut() else { return Ok(false) };
        for _ in 0..max_records {
            // With `flexible` and byte records the only possible error is I/O.
            if !reader.read_byte_record(&mut self.record).map_err(|error| io_error(Path::new(name), error))? {
                return Ok(false);
            }
            self.parser.parse(&self.record, name, batch);
        }
        Ok(true)
    }

    fn done_in_file(&self) -> u64 {
        self.current.as_ref().map_or(0, |(reader, _)| reader.position().byte())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use carbonflow_core::time::format_timestamp;
    use carbonflow_core::{DataType, Datum, DeadLetter, DeadLetterReason, OptionError, Row};
    use proptest::prelude::*;

    use super::super::tests::{read_all, table};
    use super::*;
    use crate::SourceContext;

    const TICK: &[(&str, DataType)] = &[
        ("node", DataType::String),
        ("ts", DataType::Timestamp),
        ("price", DataType::Float),
        ("revision", DataType::Int),
        ("final", DataType::Bool),
    ];

    fn read_text(text: &str, columns: &[(&str, DataType)], options: &[(&str, &str)]) -> (Vec<Row>, Vec<DeadLetter>) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ticks.csv"), text).unwrap();
        read_all(&table(&dir.path().join("ticks.csv"), "csv", columns, options), SourceContext::SINGLE)
    }

    fn row(node: &str, ts: Option<&str>, price: Option<f64>, revision: Option<i64>, is_final: Option<bool>) -> Row {
        Row::new(vec![
            Datum::string(node),
            ts.map_or(Datum::Null, |ts| Datum::Timestamp(carbonflow_core::time::parse_timestamp(ts).unwrap())),
            price.map_or(Datum::Null, Datum::float),
            revision.map_or(Datum::Null, Datum::Int),
            is_final.map_or(Datum::Null, Datum::Bool),
        ])
    }

    #[test]
    fn reads_every_type_and_empty_fields_as_null() {
        let text = "PJM-WH,2024-01-01 00:00:00.025,31.5,0,true\nHB_NORTH,2024-01-01 00:05:00,-2e3,2,FALSE\n,,,,\n";
        let (rows, dead) = read_text(text, TICK, &[]);
        assert!(dead.is_empty(), "{dead:?}");
        assert_eq!(
            rows,
            vec![
                row("PJM-WH", Some("2024-01-01 00:00:00.025"), Some(31.5), Some(0), Some(true)),
                row("HB_NORTH", Some("2024-01-01 00:05:00"), Some(-2000.0), Some(2), Some(false)),
                row("", None, None, None, None),
            ]
        );
    }

    #[test]
    fn repeated_strings_share_one_allocation() {
        let (rows, _) = read_text("A\nA\n", &[("node", DataType::String)], &[]);
        let (Datum::Str(a), Datum::Str(b)) = (rows[0].get(0), rows[1].get(0)) else {
            panic!("strings")
        };
        assert!(std::sync::Arc::ptr_eq(a, b));
    }

    #[test]
    fn quoting_and_custom_delimiters() {
        let text = "\"PJM, WESTERN \"\"HUB\"\"\",2024-01-01 00:00:00,1,0,true\n";
        let (rows, _) = read_text(text, TICK, &[]);
        assert_eq!(
            rows,
            vec![row("PJM, WESTERN \"HUB\"", Some("2024-01-01 00:00:00"), Some(1.0), Some(0), Some(true))]
        );
        let text = "'a;b';2024-01-01 00:00:00;1;0;true\n";
        let (rows, _) = read_text(text, TICK, &[("csv.field-delimiter", ";"), ("csv.quote-character", "'")]);
        assert_eq!(rows, vec![row("a;b", Some("2024-01-01 00:00:00"), Some(1.0), Some(0), Some(true))]);
        let (rows, _) = read_text("x\t1\n", &[("node", DataType::String), ("v", DataType::Int)], &[("csv.field-delimiter", "\\t")]);
        assert_eq!(rows, vec![Row::new(vec![Datum::string("x"), Datum::Int(1)])]);
    }

    #[test]
    fn comments_are_skipped_only_when_allowed() {
        let text = "# a comment\n1\n";
        let (rows, dead) = read_text(text, &[("v", DataType::Int)], &[("csv.allow-comments", "true")]);
        assert_eq!((rows.len(), dead.len()), (1, 0));
        let (rows, dead) = read_text(text, &[("v", DataType::Int)], &[]);
        assert_eq!((rows.len(), dead.len()), (1, 1));
        assert_eq!(dead[0].position, "ticks.csv:1");
    }

    #[test]
    fn header_option_skips_the_first_line_of_each_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.csv"), "v\n1\n").unwrap();
        fs::write(dir.path().join("b.csv"), "v\n2\n").unwrap();
        let config = table(dir.path(), "csv", &[("v", DataType::Int)], &[("csv.header", "true")]);
        let (rows, dead) = read_all(&config, SourceContext::SINGLE);
        assert!(dead.is_empty());
        assert_eq!(rows, vec![Row::new(vec![Datum::Int(1)]), Row::new(vec![Datum::Int(2)])]);
        let headerless = table(dir.path(), "csv", &[("v", DataType::Int)], &[]);
        assert_eq!(
            read_all(&headerless, SourceContext::SINGLE).1.len(),
            2,
            "without the option the headers are bad rows"
        );
    }

    #[test]
    fn bad_records_are_dead_lettered_with_positions_and_reading_goes_on() {
        let text = "A,2024-01-01 00:00:00,1.5,0,true\nB,2024-01-01 00:00:00,abc,0,true\n\"C,D\",2024-01-01 00:00:00,2\nE,2024-01-01 00:00:00,3,0,true\n";
        let (rows, dead) = read_text(text, TICK, &[]);
        assert_eq!(rows.iter().map(|row| row.get(0).as_str().unwrap().to_owned()).collect::<Vec<_>>(), ["A", "E"]);
        assert_eq!(
            dead,
            vec![
                DeadLetter {
                    origin: "ticks".into(),
                    reason: DeadLetterReason::Parse,
                    detail: "column price: 'abc' is not a DOUBLE".into(),
                    position: "ticks.csv:2".into(),
                    record: "B,2024-01-01 00:00:00,abc,0,true".into(),
                },
                DeadLetter {
                    origin: "ticks".into(),
                    reason: DeadLetterReason::Parse,
                    detail: "expected 5 fields, found 3".into(),
                    position: "ticks.csv:3".into(),
                    record: "\"C,D\",2024-01-01 00:00:00,2".into(),
                },
            ]
        );
    }

    #[test]
    fn ignore_parse_errors_nulls_bad_fields_but_not_bad_field_counts() {
        let text = "B,yesterday,abc,1.5,maybe\nC,2024-01-01 00:00:00\n";
        let (rows, dead) = read_text(text, TICK, &[("csv.ignore-parse-errors", "true")]);
        assert_eq!(rows, vec![row("B", None, None, None, None)]);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].detail, "expected 5 fields, found 2");
    }

    #[test]
    fn null_literal_is_null_in_any_column() {
        let (rows, _) = read_text("\\N,\\N,\\N,\\N,\\N\n", TICK, &[("csv.null-literal", "\\N")]);
        assert_eq!(rows, vec![Row::new(vec![Datum::Null; 5])]);
    }

    #[test]
    fn bad_option_values_and_columns_are_rejected() {
        let path = Path::new("x.csv");
        for (key, value) in [
            ("csv.field-delimiter", ";;"),
            ("csv.quote-character", ""),
            ("csv.allow-comments", "yes"),
            ("csv.header", "1"),
        ] {
            let config = table(path, "csv", TICK, &[(key, value)]);
            assert!(
                matches!(crate::validate_source(&config), Err(OptionError::Invalid { key: k, .. }) if k == key),
                "{key}"
            );
        }
        let interval = table(path, "csv", &[("gap", DataType::Interval)], &[]);
        assert_eq!(crate::validate_source(&interval).unwrap_err().column(), Some("gap"));
    }

    #[test]
    fn progress_counts_bytes() {
        let text = "1\n2\n3\n";
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.csv"), text).unwrap();
        let mut source = crate::create_source(&table(dir.path(), "csv", &[("v", DataType::Int)], &[]), SourceContext::SINGLE).unwrap();
        assert_eq!(source.progress(), Some(crate::SourceProgress { done: 0, total: Some(6) }));
        source.poll(&mut SourceBatch::default(), 1).unwrap();
        let done = source.progress().unwrap().done;
        assert!(done > 0 && done < 6, "{done}");
    }

    /// A naive model of one CSV row: what the writer is given and what the
    /// reader must give back.
    fn arbitrary_row() -> impl Strategy<Value = (Option<bool>, Option<i64>, Option<f64>, String, Option<i64>)> {
        (
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(-1e12f64..1e12),
            "[a-zA-Z0-9 ,\"'#\n]{0,12}",
            proptest::option::of(0i64..4_102_444_800_000),
        )
    }

    proptest! {
        #[test]
        fn written_rows_read_back_identically(rows in proptest::collection::vec(arbitrary_row(), 0..40)) {
            let mut writer = csv::Writer::from_writer(Vec::new());
            for (flag, int, float, text, ts) in &rows {
                writer.write_record([
                    flag.map(|v| v.to_string()).unwrap_or_default(),
                    int.map(|v| v.to_string()).unwrap_or_default(),
                    float.map(|v| v.to_string()).unwrap_or_default(),
                    text.clone(),
                    ts.map(format_timestamp).unwrap_or_default(),
                ]).unwrap();
            }
            let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
            let columns = [("b", DataType::Bool), ("i", DataType::Int), ("f", DataType::Float), ("s", DataType::String), ("t", DataType::Timestamp)];
            let (read, dead) = read_text(&text, &columns, &[]);
            prop_assert!(dead.is_empty(), "{:?}", dead);
            let expected: Vec<Row> = rows.iter().map(|(flag, int, float, text, ts)| Row::new(vec![
                flag.map_or(Datum::Null, Datum::Bool),
                int.map_or(Datum::Null, Datum::Int),
                float.map_or(Datum::Null, Datum::float),
                Datum::string(text),
                ts.map_or(Datum::Null, Datum::Timestamp),
            ])).collect();
            prop_assert_eq!(read, expected);
        }
    }
}
