//! The `print` connector: one line per change, as Flink's print sink writes
//! them (`+I[node1, 2024-01-01 00:00:00.000, 3.5]`, `-D[...]`).
//!
//! Meant for a person watching a terminal, so every batch is flushed as soon
//! as it is written rather than when a buffer happens to fill.

use std::io::{self, BufWriter, Write};

use carbonflow_core::{ConnectorConfig, Diff, Epoch, OptionError, Row};

use crate::text::{PrintRow, row_kind};
use crate::{Sink, SinkError};

/// The options of a `print` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrintSinkOptions {
    /// `print-identifier`: written as `identifier> ` before each line; none by default.
    pub identifier: Option<String>,
    /// `standard-error`: print to standard error instead of standard output; false by default.
    pub standard_error: bool,
}

impl PrintSinkOptions {
    /// Reads and checks the options of a `print` table.
    pub fn parse(config: &ConnectorConfig) -> Result<PrintSinkOptions, OptionError> {
        config.reject_unknown_options(&["print-identifier", "standard-error"])?;
        Ok(PrintSinkOptions {
            identifier: config.option("print-identifier").map(str::to_owned),
            standard_error: config.flag("standard-error", false)?,
        })
    }
}

/// Prints changes as `+I[...]` / `-D[...]` lines.
pub struct PrintSink {
    /// `identifier> `, or empty.
    prefix: String,
    out: BufWriter<Box<dyn Write + Send>>,
    /// Names the output in errors.
    target: &'static str,
}

impl PrintSink {
    /// A sink printing to standard output, or to standard error with `'standard-error' = 'true'`.
    pub fn stdout(config: &ConnectorConfig) -> Result<PrintSink, SinkError> {
        let options = PrintSinkOptions::parse(config)?;
        let (out, target): (Box<dyn Write + Send>, _) = if options.standard_error {
            (Box::new(io::stderr()), "<stderr>")
        } else {
            (Box::new(io::stdout()), "<stdout>")
        };
        Ok(PrintSink::with_options(&options, out, target))
    }

    /// A sink printing to `out` (the engine and tests capture output this
    /// way); `standard-error` is checked but has no effect.
    pub fn to_writer(config: &ConnectorConfig, out: Box<dyn Write + Send>) -> Result<PrintSink, SinkError> {
        Ok(PrintSink::with_options(&PrintSinkOptions::parse(config)?, out, "<writer>"))
    }

    fn with_options(options: &PrintSinkOptions, out: Box<dyn Write + Send>, target: &'static str) -> PrintSink {
        let prefix = options.identifier.as_ref().map(|identifier| format!("{identifier}> ")).unwrap_or_default();
        PrintSink {
            prefix,
            out: BufWriter::new(out),
            target,
        }
    }

    fn io_error(&self, error: io::Error) -> SinkError {
        if error.kind() == io::ErrorKind::BrokenPipe {
            return SinkError::Closed { path: self.target.to_owned() };
        }
        SinkError::Io {
            path: self.target.to_owned(),
            message: error.to_string(),
        }
    }
}

impl Sink for PrintSink {
    fn on_batch(&mut self, _epoch: Epoch, updates: &[(Row, Diff)]) -> Result<(), SinkError> {
        let mut line = String::new();
        for (row, diff) in updates {
            line.clear();
            line.push_str(&self.prefix);
            line.push_str(row_kind(*diff));
            line.push_str(&PrintRow(row).to_string());
            line.push('\n');
            for _ in 0..diff.unsigned_abs() {
                self.out.write_all(line.as_bytes()).map_err(|error| self.io_error(error))?;
            }
        }
        self.out.flush().map_err(|error| self.io_error(error))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|error| self.io_error(error))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use carbonflow_core::{Datum, Schema};

    use super::*;

    /// A writer whose bytes the test can read while the sink still owns it.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn config(options: &[(&str, &str)]) -> ConnectorConfig {
        let mut map: BTreeMap<String, String> = options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        map.insert("connector".into(), "print".into());
        ConnectorConfig {
            table: "out".into(),
            schema: Schema::default(),
            event_time_column: None,
            primary_key: None,
            options: map,
        }
    }

    fn row(node: &str, price: f64) -> Row {
        Row::new(vec![Datum::string(node), Datum::Timestamp(1_704_067_200_000), Datum::float(price)])
    }

    #[test]
    fn prints_insertions_and_retractions_repeated_by_diff() {
        let captured = Captured::default();
        let mut sink = PrintSink::to_writer(&config(&[]), Box::new(captured.clone())).unwrap();
        sink.on_batch(1, &[(row("node1", 3.5), 1), (row("node2", 1.0), 2)]).unwrap();
        // Flushed per batch, before finish: a person watching sees it now.
        assert_eq!(
            captured.text(),
            "+I[node1, 2024-01-01 00:00:00.000, 3.5]\n+I[node2, 2024-01-01 00:00:00.000, 1.0]\n+I[node2, 2024-01-01 00:00:00.000, 1.0]\n"
        );
        sink.on_batch(2, &[(row("node1", 3.5), -1)]).unwrap();
        sink.finish().unwrap();
        assert!(captured.text().ends_with("1.0]\n-D[node1, 2024-01-01 00:00:00.000, 3.5]\n"));
    }

    #[test]
    fn identifier_prefixes_every_line() {
        let captured = Captured::default();
        let mut sink = PrintSink::to_writer(&config(&[("print-identifier", "prices")]), Box::new(captured.clone())).unwrap();
        sink.on_batch(1, &[(Row::new(vec![Datum::Null, Datum::Int(4)]), -2)]).unwrap();
        assert_eq!(captured.text(), "prices> -D[NULL, 4]\nprices> -D[NULL, 4]\n");
    }

    #[test]
    fn options_are_checked() {
        assert_eq!(
            PrintSinkOptions::parse(&config(&[("print-identifier", "x"), ("standard-error", "TRUE")])),
            Ok(PrintSinkOptions {
                identifier: Some("x".into()),
                standard_error: true
            })
        );
        assert!(matches!(PrintSinkOptions::parse(&config(&[("standard-error", "yes")])), Err(OptionError::Invalid { key, .. }) if key == "standard-error"));
        assert!(matches!(PrintSinkOptions::parse(&config(&[("path", "/tmp")])), Err(OptionError::Unknown { key, .. }) if key == "path"));
    }
}
