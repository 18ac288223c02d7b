//! Errors of sources: bad declarations (user errors, shown with the option or
//! column they concern), and I/O or broker failures while running.

use carbonflow_core::OptionError;

/// A source could not be declared or could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The table's declaration does not fit the connector.
    #[error(transparent)]
    Declaration(#[from] OptionError),
    /// Reading the input failed (missing file, permission, truncated Parquet).
    #[error("{path}: {message}")]
    Io {
        /// The file or resource.
        path: String,
        /// The underlying error.
        message: String,
    },
    /// The message broker could not be reached or refused a request (no
    /// such topic, unreachable servers, a failed commit).
    #[error("kafka topic '{topic}': {message}")]
    Broker {
        /// The topic read.
        topic: String,
        /// What went wrong.
        message: String,
    },
}
