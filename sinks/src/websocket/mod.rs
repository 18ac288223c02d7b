//! Live views over WebSocket: the server that `carbonflow run` starts, its
//! protocol and a reconnecting client.
//!
//! Every view of a query file, and every table declared with
//! `'connector' = 'websocket'`, is subscribable at `GET /v1/stream`. A
//! subscriber gets a snapshot, then gap-free diffs (keyed upserts and deletes
//! for views with a key), heartbeats carrying the frontier up to which the
//! view is complete, and on reconnect the changes it missed. See
//! `docs/websocket-protocol.md` for the protocol and [`protocol`] for its types.
//!
//! * [`view`]: a view's contents, versions and history; pure logic.
//! * [`hub`]: publishers (sinks on worker 0) → bounded channel → views →
//!   per-subscription pending changes, conflated by key.
//! * [`server`]: the server on one port: connections, WebSocket sessions,
//!   views added and removed while it runs.
//! * [`http`]: the HTTP routes on that port: the WebSocket upgrade, the
//!   dashboard, health, metrics, the list of views and the control API.
//! * [`api`]: the hook through which the engine answers the control API.
//! * [`auth`]: bearer tokens and entitlements.
//! * [`client`]: the Rust client with reconnection, resume and gap detection.
//!
//! The WebSocket itself is yawc's, which negotiates permessage-deflate
//! (RFC 7692) with a client that offers it: [`Compression`] says how, and
//! what it costs in memory.

pub mod api;
pub mod auth;
pub mod client;
pub mod http;
pub mod hub;
pub mod protocol;
pub mod server;
pub mod view;

use carbonflow_core::{ConnectorConfig, OptionError};

pub use server::{Compression, Server, ServerConfig, ServerError};
pub use view::ViewSchema;

/// The connector name of a table served to WebSocket subscribers.
pub const CONNECTOR: &str = "websocket";

/// Checks a `websocket` sink table: it takes no options besides the connector.
pub fn validate(config: &ConnectorConfig) -> Result<(), OptionError> {
    config.reject_unknown_options(&[])
}
