//! A market operator's native document (a file, or a Kafka message holding
//! one) to rows of the table's declared canonical tick columns.

use carbonflow_core::{ConnectorConfig, DeadLetter, OptionError, Row};

use crate::markets::MarketFormat;
use crate::tick::TickColumn;

/// Checks that the table's columns are canonical tick columns.
pub fn check_columns(config: &ConnectorConfig, format: &dyn MarketFormat) -> Result<Vec<TickColumn>, OptionError> {
    TickColumn::resolve(&config.schema, &format!("format '{}'", format.name()))
}

/// Parses whole documents of one market format into rows.
pub(crate) struct MarketDecoder {
    format: &'static dyn MarketFormat,
    table: String,
    columns: Vec<TickColumn>,
}

impl MarketDecoder {
    /// A decoder filling the table's tick columns.
    pub(crate) fn new(config: &ConnectorConfig, format: &'static dyn MarketFormat, columns: Vec<TickColumn>) -> Self {
        MarketDecoder {
            format,
            table: config.table.clone(),
            columns,
        }
    }

    /// Parses one document; `document` names it in dead-letter positions
    /// (`<document>:<line>`).
    pub(crate) fn decode(&self, bytes: &[u8], document: &str, rows: &mut impl Extend<Row>, dead_letters: &mut impl Extend<DeadLetter>) {
        let parsed = self.format.parse(&self.table, document, bytes);
        rows.extend(parsed.ticks.iter().map(|tick| tick.to_row(&self.columns)));
        dead_letters.extend(parsed.dead_letters);
    }
}
