//! Rows as lines of CSV or JSON, optionally tagged with a change's op.
//!
//! [`LineFormat`] is what a sink keeps; it makes a buffered [`LineWriter`]
//! over the file being written (a whole rewrite, or the changelog).

use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use carbonflow_core::{Row, Schema};

use super::options::{FileFormat, FilesystemSinkOptions, OP_KEY};
use crate::text::{csv_field, json_value};

/// How rows become lines: the format and what it needs.
pub(super) struct LineFormat {
    format: FileFormat,
    delimiter: u8,
    /// `"name":` per column, JSON-escaped once; shared by every writer.
    keys: Arc<[String]>,
}

impl LineFormat {
    /// The line format of a sink's options and columns.
    pub(super) fn new(options: &FilesystemSinkOptions, schema: &Schema) -> LineFormat {
        LineFormat {
            format: options.format,
            delimiter: options.field_delimiter,
            keys: schema.names().map(json_key).collect(),
        }
    }

    /// A writer of lines into `out`.
    pub(super) fn writer<W: Write>(&self, out: W) -> LineWriter<W> {
        match self.format {
            // The csv writer buffers by itself and quotes fields only where needed.
            FileFormat::Csv => LineWriter::Csv(Box::new(
                csv::WriterBuilder::new().delimiter(self.delimiter).has_headers(false).from_writer(out),
            )),
            FileFormat::Json => LineWriter::Json {
                out: BufWriter::new(out),
                keys: Arc::clone(&self.keys),
                line: Vec::new(),
            },
        }
    }
}

/// Writes rows as lines into a buffered `W`.
pub(super) enum LineWriter<W: Write> {
    /// CSV records (boxed: the csv writer holds its state inline).
    Csv(Box<csv::Writer<W>>),
    /// JSON objects, written by hand rather than through a `serde_json::Map`
    /// so that keys keep schema order.
    Json {
        /// The destination.
        out: BufWriter<W>,
        /// `"name":` per column.
        keys: Arc<[String]>,
        /// The line being encoded, reused across rows.
        line: Vec<u8>,
    },
}

impl<W: Write> LineWriter<W> {
    /// Writes `copies` lines of `row`, each with `op` (`+I`/`-D`) as the first
    /// field or key when given. The row is encoded once.
    pub(super) fn write(&mut self, op: Option<&str>, row: &Row, copies: u64) -> io::Result<()> {
        match self {
            LineWriter::Csv(writer) => {
                let fields: Vec<_> = row.iter().map(csv_field).collect();
                for _ in 0..copies {
                    writer.write_record(op.into_iter().chain(fields.iter().map(|field| &**field)))?;
                }
            }
            LineWriter::Json { out, keys, line } => {
                line.clear();
                line.push(b'{');
                if let Some(op) = op {
                    line.extend_from_slice(json_key(OP_KEY).as_bytes());
                    serde_json::to_writer(&mut *line, op)?;
                }
                for (i, (key, datum)) in keys.iter().zip(row.iter()).enumerate() {
                    if i > 0 || op.is_some() {
                        line.push(b',');
                    }
                    line.extend_from_slice(key.as_bytes());
                    serde_json::to_writer(&mut *line, &json_value(datum))?;
                }
                line.extend_from_slice(b"}\n");
                for _ in 0..copies {
                    out.write_all(line)?;
                }
            }
        }
        Ok(())
    }

    /// Pushes buffered lines into `W`.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        match self {
            LineWriter::Csv(writer) => writer.flush(),
            LineWriter::Json { out, .. } => out.flush(),
        }
    }

    /// The destination (flush first to see every line in it).
    pub(super) fn get_ref(&self) -> &W {
        match self {
            LineWriter::Csv(writer) => writer.get_ref(),
            LineWriter::Json { out, .. } => out.get_ref(),
        }
    }
}

/// `"name":`, escaped as a JSON string.
fn json_key(name: &str) -> String {
    format!("{}:", serde_json::Value::from(name))
}
