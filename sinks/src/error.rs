//! Errors of sinks.

use carbonflow_core::OptionError;

use crate::webhook::outbox::OutboxError;

/// A sink could not be declared or could not write.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The table's declaration does not fit the connector.
    #[error(transparent)]
    Declaration(#[from] OptionError),
    /// Writing failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or resource.
        path: String,
        /// The underlying error.
        message: String,
    },
    /// The reader of the output went away (a closed pipe, as when printed
    /// output is piped into `head`): the run should stop, quietly.
    #[error("{path}: the reader closed the output")]
    Closed {
        /// The output.
        path: String,
    },
    /// A webhook sink's outbox cannot be opened or written.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The changes received contradict each other (a retraction of a row the
    /// sink does not hold, a row of the wrong width): a bug upstream, not bad input.
    #[error("{sink}: {message}")]
    Inconsistent {
        /// The sink's output (a file) or table.
        sink: String,
        /// What contradicts what, naming the row.
        message: String,
    },
    /// A `websocket` table in a run without a WebSocket server.
    #[error("table '{table}' is served over WebSocket, but this run has no server (drop --no-server)")]
    Unserved {
        /// The table.
        table: String,
    },
}
