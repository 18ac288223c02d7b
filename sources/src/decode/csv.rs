//! CSV records to rows, the way Flink's `csv` format reads them: fields map to
//! the declared columns by position, an empty field is NULL except in STRING
//! columns, and `csv.null-literal` names a text read as NULL in any column.
//!
//! Options: `csv.field-delimiter` (one character, default `,`; `\t` is
//! accepted for a tab), `csv.quote-character` (default `"`),
//! `csv.allow-comments` (skip lines starting with `#`), `csv.ignore-parse-errors`,
//! `csv.null-literal`, and for files `csv.header`.
//!
//! Malformed records never stop a run:
//! * By default a record with the wrong number of fields, or with a field that
//!   does not parse as its column's type, becomes a [`DeadLetter`] (reason
//!   [`DeadLetterReason::Parse`], position `<file or message>:<line>`, the
//!   record as CSV text) and reading goes on with the next record.
//! * With `'csv.ignore-parse-errors' = 'true'` (Flink's meaning) a field that
//!   does not parse becomes NULL and the row is kept. A record with the wrong
//!   number of fields is still dead-lettered: there is no telling which field
//!   went missing, so no column could be trusted.
//!
//! [`RecordParser`] parses fields from bytes, so the only allocations per row
//! are the row itself and strings not seen before (the rest are shared through
//! an [`Interner`]).

use carbonflow_core::{ConnectorConfig, DataType, Datum, DeadLetter, DeadLetterReason, Interner, OptionError, Row};
use csv::ByteRecord;

use super::INTERNER_CAPACITY;
use super::text::{check_text_column, field_error, parse_field};
use crate::SourceBatch;

/// The `csv.*` options every CSV input accepts.
pub(crate) const OPTIONS: &[&str] = &[
    "csv.field-delimiter",
    "csv.quote-character",
    "csv.allow-comments",
    "csv.ignore-parse-errors",
    "csv.null-literal",
];

/// The option of inputs made of files, whose first record may be a header.
pub(crate) const HEADER_OPTION: &str = "csv.header";

/// The checked `csv.*` options of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// The byte between fields (`csv.field-delimiter`, default `,`).
    pub field_delimiter: u8,
    /// The byte that quotes a field (`csv.quote-character`, default `"`).
    pub quote_character: u8,
    /// Whether lines starting with `#` are skipped (`csv.allow-comments`, default false).
    pub allow_comments: bool,
    /// Whether a field that does not parse becomes NULL instead of
    /// dead-lettering its record (`csv.ignore-parse-errors`, default false).
    pub ignore_parse_errors: bool,
    /// A field text read as NULL in any column (`csv.null-literal`, unset by default).
    pub null_literal: Option<String>,
    /// Whether each file's first record is a header to skip (`csv.header`,
    /// default false; files only).
    pub header: bool,
}

impl CsvOptions {
    /// Reads the `csv.*` options and checks that every column has a text form.
    pub(crate) fn parse(config: &ConnectorConfig) -> Result<Self, OptionError> {
        for field in &config.schema.fields {
            check_text_column(field, "csv")?;
        }
        let single_byte = |text: &str| match text {
            "\\t" => Some(b'\t'),
            _ if text.len() == 1 && text.is_ascii() => Some(text.as_bytes()[0]),
            _ => None,
        };
        Ok(CsvOptions {
            field_delimiter: config
                .parsed("csv.field-delimiter", "delimiter (a single ASCII character)", single_byte)?
                .unwrap_or(b','),
            quote_character: config
                .parsed("csv.quote-character", "quote character (a single ASCII character)", single_byte)?
                .unwrap_or(b'"'),
            allow_comments: config.flag("csv.allow-comments", false)?,
            ignore_parse_errors: config.flag("csv.ignore-parse-errors", false)?,
            null_literal: config.option("csv.null-literal").map(str::to_owned),
            header: config.flag(HEADER_OPTION, false)?,
        })
    }

    /// A CSV reader over `input` with these options (the header is the
    /// caller's business).
    pub(crate) fn reader<R: std::io::Read>(&self, capacity: usize, input: R) -> csv::Reader<R> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.field_delimiter)
            .quote(self.quote_character)
            .comment(self.allow_comments.then_some(b'#'))
            .buffer_capacity(capacity)
            .from_reader(input)
    }
}

/// Turns records into rows or dead letters.
pub(crate) struct RecordParser {
    origin: String,
    options: CsvOptions,
    /// Name and type of each declared column.
    columns: Vec<(String, DataType)>,
    interner: Interner,
}

impl RecordParser {
    /// A parser for the table's columns.
    pub(crate) fn new(config: &ConnectorConfig, options: CsvOptions) -> Self {
        RecordParser {
            origin: config.table.clone(),
            options,
            columns: config.schema.fields.iter().map(|field| (field.name.clone(), field.data_type)).collect(),
            interner: Interner::with_capacity(INTERNER_CAPACITY),
        }
    }

    /// The options the parser was made with.
    pub(crate) fn options(&self) -> &CsvOptions {
        &self.options
    }

    /// Appends the row of `record`, or its dead letter positioned at
    /// `<input>:<line>`, to `batch`.
    pub(crate) fn parse(&mut self, record: &ByteRecord, input: &str, batch: &mut SourceBatch) {
        if record.len() != self.columns.len() {
            let detail = format!("expected {} fields, found {}", self.columns.len(), record.len());
            batch.dead_letters.push(self.dead_letter(record, input, detail));
            return;
        }
        let mut datums = Vec::with_capacity(self.columns.len());
        for (bytes, (name, data_type)) in record.iter().zip(&self.columns) {
            let datum = if self.options.null_literal.as_ref().is_some_and(|null| null.as_bytes() == bytes) {
                Some(Datum::Null)
            } else {
                parse_field(bytes, *data_type, &mut self.interner)
            };
            match datum {
                Some(datum) => datums.push(datum),
                None if self.options.ignore_parse_errors => datums.push(Datum::Null),
                None => {
                    let detail = field_error(name, *data_type, bytes);
                    batch.dead_letters.push(self.dead_letter(record, input, detail));
                    return;
                }
            }
        }
        batch.rows.push(Row::new(datums));
    }

    /// Appends the rows of every record in `bytes` (one message or document),
    /// positioned at `<input>:<line>`.
    pub(crate) fn parse_all(&mut self, bytes: &[u8], input: &str, batch: &mut SourceBatch) {
        let mut reader = self.options.reader(bytes.len().max(1), bytes);
        let mut record = ByteRecord::new();
        // Reading from memory with `flexible` records cannot fail.
        while reader.read_byte_record(&mut record).unwrap_or(false) {
            self.parse(&record, input, batch);
        }
    }

    fn dead_letter(&self, record: &ByteRecord, input: &str, detail: String) -> DeadLetter {
        let line = record.position().map_or(0, csv::Position::line);
        DeadLetter {
            origin: self.origin.clone(),
            reason: DeadLetterReason::Parse,
            detail,
            position: format!("{input}:{line}"),
            record: record_text(record, &self.options),
        }
    }
}

/// The record written back as one CSV line (quoted where needed), since the
/// reader keeps fields, not raw lines.
fn record_text(record: &ByteRecord, options: &CsvOptions) -> String {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(options.field_delimiter)
        .quote(options.quote_character)
        .from_writer(Vec::new());
    let bytes = match writer
        .write_byte_record(record)
        .map_err(|error| error.to_string())
        .and_then(|()| writer.into_inner().map_err(|error| error.to_string()))
    {
        Ok(bytes) => bytes,
        // Writing to memory cannot fail; keep the fields rather than nothing if it ever does.
        Err(_) => record.iter().collect::<Vec<_>>().join(&options.field_delimiter),
    };
    String::from_utf8_lossy(bytes.strip_suffix(b"\n").unwrap_or(&bytes)).into_owned()
}
