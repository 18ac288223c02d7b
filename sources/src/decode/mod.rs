//! Bytes to rows: the record formats that the file and Kafka sources share.
//!
//! * [`csv`]: delimited text, fields by position (Flink's `csv` format).
//! * [`object`]: one JSON or MessagePack object per record, keys by column
//!   name (Flink's `json` format, and `msgpack`).
//! * [`market`]: a market operator's native document, normalised to the
//!   canonical tick ([`crate::markets`]).
//!
//! A file source reads files of these formats (see [`crate::filesystem`]);
//! a Kafka source decodes each message as one record with a
//! [`RecordDecoder`]. Every format turns what it cannot use into a dead
//! letter with the reason and the record's position, never an error.

pub mod csv;
pub mod market;
pub mod object;
mod text;

use carbonflow_core::{ConnectorConfig, OptionError};

use self::csv::{CsvOptions, RecordParser};
use self::market::MarketDecoder;
use self::object::{Encoding, ObjectDecoder};
use crate::SourceBatch;
use crate::markets::MarketFormat;
use crate::tick::TickColumn;

/// How many distinct strings a decoder remembers for sharing.
const INTERNER_CAPACITY: usize = 100_000;

/// The format of self-contained records (Kafka messages), from `'format'`.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordFormat {
    /// One or more CSV lines per record (`'format' = 'csv'`, with `csv.*` options).
    Csv(CsvOptions),
    /// One object per record (`'format' = 'json'` or `'msgpack'`).
    Object(Encoding),
    /// One market document per record (`'format' = 'pjm-lmp'`, ...), and the
    /// tick columns the table declares.
    Market(&'static dyn MarketFormat, Vec<TickColumn>),
}

impl RecordFormat {
    /// Reads `format` and its options, failing on any option outside
    /// `connector_options` and the format's own.
    pub fn parse(config: &ConnectorConfig, connector_options: &[&str]) -> Result<Self, OptionError> {
        let name = config.required("format")?.to_ascii_lowercase();
        let (format, format_options) = match name.as_str() {
            "csv" => (RecordFormat::Csv(CsvOptions::parse(config)?), csv::OPTIONS),
            "json" | "msgpack" => {
                let encoding = if name == "json" { Encoding::Json } else { Encoding::MessagePack };
                object::check_columns(config, encoding)?;
                (RecordFormat::Object(encoding), &[][..])
            }
            other => match crate::markets::find(other) {
                Some(format) => (RecordFormat::Market(format, market::check_columns(config, format)?), &[][..]),
                None => return Err(unknown_format(other, &["csv", "json", "msgpack"])),
            },
        };
        config.reject_unknown_options(&[connector_options, format_options].concat())?;
        Ok(format)
    }
}

/// The error for a `format` that is neither one of `built_in` nor a market format.
pub(crate) fn unknown_format(value: &str, built_in: &[&str]) -> OptionError {
    let known: Vec<&str> = built_in
        .iter()
        .copied()
        .chain(crate::markets::formats().iter().map(|format| format.name()))
        .collect();
    OptionError::Invalid {
        key: "format".into(),
        value: value.into(),
        expected: format!("format (one of {})", known.join(", ")),
    }
}

/// Decodes records of one format into rows of one table: what a Kafka source
/// does with each message, public so the fuzz targets (`fuzz/`) feed it
/// arbitrary bytes exactly as a message would arrive.
pub struct RecordDecoder(Decoder);

enum Decoder {
    /// CSV lines.
    Csv(RecordParser),
    /// JSON or MessagePack objects.
    Object(ObjectDecoder),
    /// Market documents.
    Market(MarketDecoder),
}

impl RecordDecoder {
    /// A decoder of `format` for the table's columns.
    pub fn new(config: &ConnectorConfig, format: RecordFormat) -> Self {
        RecordDecoder(match format {
            RecordFormat::Csv(options) => Decoder::Csv(RecordParser::new(config, options)),
            RecordFormat::Object(encoding) => Decoder::Object(ObjectDecoder::new(config, encoding)),
            RecordFormat::Market(format, columns) => Decoder::Market(MarketDecoder::new(config, format, columns)),
        })
    }

    /// Appends the rows of one record, and dead letters for what does not
    /// parse, to `batch`. `position` says where the record is (a Kafka
    /// topic, partition and offset); formats with lines add `:<line>`.
    pub fn decode(&mut self, bytes: &[u8], position: &str, batch: &mut SourceBatch) {
        match &mut self.0 {
            Decoder::Csv(parser) => parser.parse_all(bytes, position, batch),
            Decoder::Object(decoder) => decoder.decode(bytes, position, batch),
            Decoder::Market(decoder) => decoder.decode(bytes, position, &mut batch.rows, &mut batch.dead_letters),
        }
    }
}
