//! The options of a `filesystem` sink table, Flink's names and defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use carbonflow_core::{ConnectorConfig, OptionError};

use crate::duration::{DURATION_FORM, parse_duration};
use crate::encode::OP_KEY;

const PATH: &str = "path";
const FORMAT: &str = "format";
const FIELD_DELIMITER: &str = "csv.field-delimiter";
const CHANGELOG: &str = "sink.changelog";
const FLUSH_INTERVAL: &str = "sink.flush-interval";

const CSV_OPTIONS: &[&str] = &[PATH, FORMAT, FIELD_DELIMITER, CHANGELOG, FLUSH_INTERVAL];
const JSON_OPTIONS: &[&str] = &[PATH, FORMAT, CHANGELOG, FLUSH_INTERVAL];

/// The line format of the output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// CSV without a header, quoted only where needed.
    Csv,
    /// One JSON object per line, keyed by column name.
    Json,
}

impl FileFormat {
    /// The file extension, used for the part file inside a directory path.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
        }
    }
}

/// The options of a `filesystem` sink table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesystemSinkOptions {
    /// `path` (required): the output file, or a directory (existing, or
    /// written with a trailing `/`) to hold `part-0.csv` / `part-0.json`.
    /// A `file://` prefix is accepted.
    pub path: String,
    /// `format` (required): `csv` or `json`.
    pub format: FileFormat,
    /// `csv.field-delimiter`: one ASCII character, or `\t` for a tab; `,` by default.
    pub field_delimiter: u8,
    /// `sink.changelog`: append every change with an op column (`+I`/`-D`)
    /// instead of keeping the file equal to the final rows; false by default.
    pub changelog: bool,
    /// `sink.flush-interval`: the least time between two rewrites of the file
    /// in the default (final) mode, such as `'500 ms'`, `'1 s'` or `'2 min'`; 1 s by default.
    pub flush_interval: Duration,
}

impl FilesystemSinkOptions {
    /// Reads and checks the options of a `filesystem` sink table.
    pub fn parse(config: &ConnectorConfig) -> Result<FilesystemSinkOptions, OptionError> {
        config.reject_unknown_options(CSV_OPTIONS)?;
        let format = config
            .parsed(FORMAT, "format ('csv' or 'json')", |text| match text.to_ascii_lowercase().as_str() {
                "csv" => Some(FileFormat::Csv),
                "json" => Some(FileFormat::Json),
                _ => None,
            })?
            .ok_or_else(|| OptionError::Missing { key: FORMAT.into() })?;
        if format == FileFormat::Json {
            // Same check with the JSON list, so the error lists what JSON accepts.
            config.reject_unknown_options(JSON_OPTIONS)?;
        }
        let path = config.required(PATH)?;
        if path.trim().is_empty() {
            return Err(OptionError::Invalid {
                key: PATH.into(),
                value: path.into(),
                expected: "file or directory path".into(),
            });
        }
        let changelog = config.flag(CHANGELOG, false)?;
        if changelog && format == FileFormat::Json && config.schema.index_of(OP_KEY).is_some() {
            return Err(OptionError::Column {
                column: OP_KEY.into(),
                message: "clashes with the changelog's 'op' key in JSON lines; rename the column".into(),
            });
        }
        Ok(FilesystemSinkOptions {
            path: path.to_owned(),
            format,
            field_delimiter: config
                .parsed(FIELD_DELIMITER, "field delimiter (one ASCII character, or '\\t')", parse_delimiter)?
                .unwrap_or(b','),
            changelog,
            flush_interval: config.parsed(FLUSH_INTERVAL, DURATION_FORM, parse_duration)?.unwrap_or(Duration::from_secs(1)),
        })
    }

    /// The file to write: `path` itself, or `part-0.<format>` inside it when
    /// it is an existing directory or ends with `/`.
    pub fn output_file(&self) -> PathBuf {
        let path = self.path.strip_prefix("file://").unwrap_or(&self.path);
        if path.ends_with('/') || Path::new(path).is_dir() {
            Path::new(path).join(format!("part-0.{}", self.format.extension()))
        } else {
            PathBuf::from(path)
        }
    }
}

/// A delimiter the CSV writer can use unambiguously. Flink unescapes the
/// option, so `\t` is how a SQL file spells a tab.
fn parse_delimiter(text: &str) -> Option<u8> {
    let delimiter = match text.as_bytes() {
        b"\\t" => b'\t',
        [byte] => *byte,
        _ => return None,
    };
    (delimiter.is_ascii() && !matches!(delimiter, b'"' | b'\n' | b'\r')).then_some(delimiter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_one_safe_ascii_byte() {
        assert_eq!(parse_delimiter(";"), Some(b';'));
        assert_eq!(parse_delimiter("|"), Some(b'|'));
        assert_eq!(parse_delimiter("\\t"), Some(b'\t'));
        for bad in ["", ",,", "\"", "\n", "é"] {
            assert_eq!(parse_delimiter(bad), None, "{bad:?}");
        }
    }
}
