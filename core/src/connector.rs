//! What a connector (source or sink) is told: its table, columns and options,
//! and the option errors both kinds report.

use std::collections::BTreeMap;

use crate::schema::Schema;

/// A table's connector declaration, as checked by the SQL front end.
#[derive(Clone, Debug)]
pub struct ConnectorConfig {
    /// The table name, used in dead letters and metrics.
    pub table: String,
    /// The declared columns; rows must match them exactly.
    pub schema: Schema,
    /// The index of the event-time column (the one with a WATERMARK), if any.
    pub event_time_column: Option<usize>,
    /// The `WITH (...)` options, keys lower-cased, including `connector`.
    pub options: BTreeMap<String, String>,
}

impl ConnectorConfig {
    /// The `connector` option.
    pub fn connector(&self) -> Result<&str, OptionError> {
        self.required("connector")
    }

    /// An option's value, if set.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// An option that must be set.
    pub fn required(&self, key: &str) -> Result<&str, OptionError> {
        self.option(key).ok_or_else(|| OptionError::Missing { key: key.into() })
    }

    /// The options whose key starts with `prefix`, keyed by the rest of the
    /// key: with `properties.`, `properties.group.id` becomes `group.id`.
    pub fn options_with_prefix(&self, prefix: &str) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(key, value)| Some((key.strip_prefix(prefix)?.to_owned(), value.clone())))
            .collect()
    }

    /// Fails on any option not in `known` (besides `connector`), so a typo is
    /// an error rather than silently ignored.
    pub fn reject_unknown_options(&self, known: &[&str]) -> Result<(), OptionError> {
        match self.options.keys().find(|key| key.as_str() != "connector" && !known.contains(&key.as_str())) {
            Some(key) => Err(OptionError::Unknown {
                key: key.clone(),
                known: known.iter().map(|k| (*k).to_owned()).collect(),
            }),
            None => Ok(()),
        }
    }

    /// Parses an option with `parse`; `expected` says what a valid value is.
    pub fn parsed<T>(&self, key: &str, expected: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<Option<T>, OptionError> {
        match self.option(key) {
            None => Ok(None),
            Some(text) => parse(text).map(Some).ok_or_else(|| OptionError::Invalid {
                key: key.into(),
                value: text.into(),
                expected: expected.into(),
            }),
        }
    }

    /// A boolean option (`'true'`/`'false'`), with its default.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, OptionError> {
        Ok(self
            .parsed(key, "boolean ('true' or 'false')", |text| match text.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            })?
            .unwrap_or(default))
    }
}

/// A connector declaration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// A required option is not set.
    #[error("missing option '{key}'")]
    Missing {
        /// The option name.
        key: String,
    },
    /// An option this connector does not know (a typo, or another connector's).
    #[error("unknown option '{key}' (known options: {})", known.join(", "))]
    Unknown {
        /// The option name.
        key: String,
        /// The options the connector accepts.
        known: Vec<String>,
    },
    /// An option's value does not parse.
    #[error("option '{key}': '{value}' is not a valid {expected}")]
    Invalid {
        /// The option name.
        key: String,
        /// The value given.
        value: String,
        /// What a valid value is, for a person.
        expected: String,
    },
    /// The `connector` option names no known connector.
    #[error("unknown connector '{name}' (known connectors: {})", known.join(", "))]
    UnknownConnector {
        /// The name given.
        name: String,
        /// The connectors that exist.
        known: Vec<String>,
    },
    /// A declared column the connector cannot provide or write, or of the wrong type.
    #[error("column '{column}': {message}")]
    Column {
        /// The column name.
        column: String,
        /// What is wrong with it.
        message: String,
    },
}

impl OptionError {
    /// The error for an unknown `connector` value.
    pub fn unknown_connector(name: &str, known: &[&str]) -> Self {
        OptionError::UnknownConnector {
            name: name.into(),
            known: known.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    /// The option this error is about, so the SQL front end can point at it.
    pub fn option_key(&self) -> Option<&str> {
        match self {
            OptionError::Missing { key } | OptionError::Unknown { key, .. } | OptionError::Invalid { key, .. } => Some(key),
            OptionError::UnknownConnector { .. } => Some("connector"),
            OptionError::Column { .. } => None,
        }
    }

    /// The column this error is about, so the SQL front end can point at it.
    pub fn column(&self) -> Option<&str> {
        match self {
            OptionError::Column { column, .. } => Some(column),
            _ => None,
        }
    }
}
