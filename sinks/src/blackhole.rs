//! The `blackhole` connector: discards every change, so a benchmark measures
//! the dataflow rather than the output. It only counts what it was given.

use carbonflow_core::{ConnectorConfig, Diff, Epoch, OptionError, Row};

use crate::{Sink, SinkError};

/// Checks a `blackhole` table: it takes no options besides `connector`.
pub fn validate(config: &ConnectorConfig) -> Result<(), OptionError> {
    config.reject_unknown_options(&[])
}

/// Discards changes, counting them.
#[derive(Debug, Default)]
pub struct BlackholeSink {
    changes: u64,
}

impl BlackholeSink {
    /// A sink for a `blackhole` table.
    pub fn new(config: &ConnectorConfig) -> Result<BlackholeSink, SinkError> {
        validate(config)?;
        Ok(BlackholeSink::default())
    }

    /// The changes received so far: an update `(row, diff)` counts `|diff|`
    /// changes, as many as the print sink would print lines.
    pub fn changes(&self) -> u64 {
        self.changes
    }
}

impl Sink for BlackholeSink {
    fn on_batch(&mut self, _epoch: Epoch, updates: &[(Row, Diff)]) -> Result<(), SinkError> {
        self.changes += updates.iter().map(|(_, diff)| diff.unsigned_abs()).sum::<u64>();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use carbonflow_core::{Datum, Schema};

    use super::*;

    fn config(options: &[(&str, &str)]) -> ConnectorConfig {
        let mut config = ConnectorConfig {
            table: "t".into(),
            schema: Schema::default(),
            event_time_column: None,
            primary_key: None,
            options: Default::default(),
        };
        config.options.insert("connector".into(), "blackhole".into());
        for (key, value) in options {
            config.options.insert((*key).into(), (*value).into());
        }
        config
    }

    #[test]
    fn counts_changes_by_magnitude() {
        let mut sink = BlackholeSink::new(&config(&[])).unwrap();
        sink.on_batch(1, &[(Row::new(vec![Datum::Int(1)]), 2), (Row::new(vec![Datum::Int(2)]), -3)])
            .unwrap();
        sink.on_batch(2, &[(Row::new(vec![Datum::Int(1)]), -1)]).unwrap();
        sink.finish().unwrap();
        assert_eq!(sink.changes(), 6);
    }

    #[test]
    fn rejects_any_option() {
        assert!(matches!(validate(&config(&[("path", "/tmp")])), Err(OptionError::Unknown { key, .. }) if key == "path"));
        assert!(BlackholeSink::new(&config(&[("format", "csv")])).is_err());
    }
}
