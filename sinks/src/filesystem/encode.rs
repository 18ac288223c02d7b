//! Rows as lines of CSV or JSON ([`crate::encode`]), optionally tagged with
//! a change's op.
//!
//! [`LineFormat`] is what a sink keeps; it makes a buffered [`LineWriter`]
//! over the file being written (a whole rewrite, or the changelog).

use std::io::{self, BufWriter, Write};

use carbonflow_core::{Row, Schema};

use super::options::{FileFormat, FilesystemSinkOptions};
use crate::encode::{Encoding, RecordEncoder};

/// How rows become lines: the encoding and the columns.
pub(super) struct LineFormat {
    encoding: Encoding,
    schema: Schema,
}

impl LineFormat {
    /// The line format of a sink's options and columns.
    pub(super) fn new(options: &FilesystemSinkOptions, schema: &Schema) -> LineFormat {
        let encoding = match options.format {
            FileFormat::Csv => Encoding::Csv {
                delimiter: options.field_delimiter,
            },
            FileFormat::Json => Encoding::Json,
        };
        LineFormat {
            encoding,
            schema: schema.clone(),
        }
    }

    /// A writer of lines into `out`.
    pub(super) fn writer<W: Write>(&self, out: W) -> LineWriter<W> {
        LineWriter {
            out: BufWriter::new(out),
            encoder: RecordEncoder::new(self.encoding, &self.schema),
        }
    }
}

/// Writes rows as lines into a buffered `W`.
pub(super) struct LineWriter<W: Write> {
    out: BufWriter<W>,
    encoder: RecordEncoder,
}

impl<W: Write> LineWriter<W> {
    /// Writes `copies` lines of `row`, each with `op` (`+I`/`-D`) as the first
    /// field or key when given. The row is encoded once.
    pub(super) fn write(&mut self, op: Option<&str>, row: &Row, copies: u64) -> io::Result<()> {
        let record = self.encoder.encode(op, row)?;
        for _ in 0..copies {
            self.out.write_all(record)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Pushes buffered lines into `W`.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The destination (flush first to see every line in it).
    pub(super) fn get_ref(&self) -> &W {
        self.out.get_ref()
    }
}
