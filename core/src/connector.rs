//! What a connector (source or sink) is told: its table, columns and options,
//! and the option errors both kinds report.

use std::collections::BTreeMap;
use std::fmt;

use crate::schema::Schema;

/// A table's connector declaration, as checked by the SQL front end.
///
/// Its `Debug` form masks the values of options that hold credentials (see
/// [`is_sensitive_option`]), so a declaration can be logged or shown in a
/// panic message without leaking a secret.
#[derive(Clone)]
pub struct ConnectorConfig {
    /// The table name, used in dead letters and metrics.
    pub table: String,
    /// The declared columns; rows must match them exactly.
    pub schema: Schema,
    /// The index of the event-time column (the one with a WATERMARK), if any.
    pub event_time_column: Option<usize>,
    /// The column indices of `PRIMARY KEY (...) NOT ENFORCED`, if declared.
    pub primary_key: Option<Vec<usize>>,
    /// The `WITH (...)` options, keys lower-cased, including `connector`.
    pub options: BTreeMap<String, String>,
}

/// Whether an option's value is a credential, never to be printed: its key
/// names a secret, password or token (`secret`, `sasl.password`, `auth-token`).
pub fn is_sensitive_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["secret", "password", "token", "credential"].iter().any(|marker| key.contains(marker))
}

impl fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(key, value)| (key.as_str(), if is_sensitive_option(key) { "<redacted>" } else { value.as_str() }))
            .collect();
        f.debug_struct("ConnectorConfig")
            .field("table", &self.table)
            .field("schema", &self.schema)
            .field("event_time_column", &self.event_time_column)
            .field("primary_key", &self.primary_key)
            .field("options", &options)
            .finish()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_credentials_and_keeps_the_rest() {
        let options = [
            ("connector", "webhook"),
            ("secret", "whsec_abc"),
            ("sasl.password", "hunter2"),
            ("url", "https://x"),
        ];
        let config = ConnectorConfig {
            table: "alerts".into(),
            schema: Schema::default(),
            event_time_column: None,
            primary_key: Some(vec![0]),
            options: options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("whsec_abc") && !shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("https://x") && shown.contains("<redacted>") && shown.contains("primary_key: Some([0])"),
            "{shown}"
        );
        assert!(is_sensitive_option("Auth-Token"));
        assert!(!is_sensitive_option("primary-key") && !is_sensitive_option("url"));
    }
}
