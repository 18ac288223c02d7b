//! Bearer tokens and what each may read.
//!
//! The token file is TOML, one `[[token]]` table per token:
//!
//! ```toml
//! [[token]]
//! token = "desk-7f3a"          # sent as `Authorization: Bearer desk-7f3a` (or `?token=` from browsers)
//! views = ["hub_prices", "*"]   # view names, or "*" for every view
//! markets = ["PJM", "MISO"]     # optional: only rows whose `market` is one of these
//! control = true                # optional: may submit and drop queries (POST, DELETE); false by default
//! ```
//!
//! Every token may read the control API (`GET /v1/queries`); the engine
//! refuses changes (403) to a token without `control`.
//!
//! Without a token file the server admits everyone; it then refuses to listen
//! anywhere but on a loopback address, so the embedded desk default needs no
//! set-up and nothing is exposed by accident.

use std::collections::BTreeMap;
use std::path::Path;

use carbonflow_core::Datum;
use serde::Deserialize;

use super::protocol::{FilterValues, WireDatum};
use super::view::{RowFilter, ViewSchema};

/// The tokens the server accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Every accepted token with its entitlements.
    #[serde(rename = "token", default)]
    pub tokens: Vec<Grant>,
}

/// One token and what it may read.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The bearer token.
    pub token: String,
    /// View names (case-insensitive), or `*` for all.
    pub views: Vec<String>,
    /// When set, only rows whose `market` column holds one of these.
    #[serde(default)]
    pub markets: Option<Vec<String>>,
    /// Whether the token may change what runs: submit (`POST /v1/queries`)
    /// and drop (`DELETE /v1/queries/{name}`) queries. The server passes the
    /// grant to the engine, which decides.
    #[serde(default)]
    pub control: bool,
}

impl std::fmt::Debug for Grant {
    /// Never prints the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("token", &"<redacted>")
            .field("views", &self.views)
            .field("markets", &self.markets)
            .field("control", &self.control)
            .finish()
    }
}

/// The column a market entitlement filters on.
const MARKET_COLUMN: &str = "market";

impl AuthConfig {
    /// Reads a token file.
    pub fn load(path: &Path) -> Result<AuthConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the TOML of a token file.
    pub fn parse(text: &str) -> Result<AuthConfig, String> {
        let config: AuthConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(grant) = config.tokens.iter().find(|grant| grant.token.trim().is_empty()) {
            return Err(format!("a token with views {:?} is empty", grant.views));
        }
        Ok(config)
    }

    /// The grant of a presented token.
    pub fn grant(&self, token: &str) -> Option<&Grant> {
        self.tokens.iter().find(|grant| constant_time_eq(grant.token.as_bytes(), token.as_bytes()))
    }
}

/// Compares without returning early at the first difference, so response
/// times do not reveal how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Grant {
    /// Whether the token may read the view at all.
    pub fn may_read(&self, view: &str) -> bool {
        self.views.iter().any(|v| v == "*" || v.eq_ignore_ascii_case(view))
    }

    /// The filter a market entitlement adds to every subscription of `view`,
    /// or why the view cannot be served under it.
    pub fn market_filter(&self, view: &ViewSchema) -> Result<Option<RowFilter>, String> {
        let Some(markets) = &self.markets else {
            return Ok(None);
        };
        let values = FilterValues::Any(markets.iter().map(|m| WireDatum(Datum::string(m))).collect());
        RowFilter::new(view, &BTreeMap::from([(MARKET_COLUMN.to_owned(), values)]))
            .map(Some)
            .map_err(|why| {
                format!(
                    "this token may read markets {} only, and view '{}' cannot be narrowed to them: {why}",
                    markets.join(", "),
                    view.name
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use carbonflow_core::{DataType, Field, Row, Schema};

    use super::*;

    const FILE: &str = r#"
        [[token]]
        token = "desk"
        views = ["*"]

        [[token]]
        token = "partner"
        views = ["hub_prices"]
        markets = ["PJM"]

        [[token]]
        token = "operator"
        views = ["*"]
        control = true
    "#;

    #[test]
    fn tokens_grant_views_and_markets() {
        let config = AuthConfig::parse(FILE).unwrap();
        assert!(config.grant("nope").is_none());
        assert!(config.grant("des").is_none());
        let desk = config.grant("desk").unwrap();
        assert!(desk.may_read("anything"));
        assert!(!desk.control, "control is off unless granted");
        assert!(config.grant("operator").unwrap().control);
        let partner = config.grant("partner").unwrap();
        assert!(partner.may_read("HUB_PRICES") && !partner.may_read("spreads"));
        assert!(!format!("{partner:?}").contains("partner\""), "tokens are not printed");

        let keyed_by_market = ViewSchema {
            name: "hub_prices".into(),
            schema: Schema::new(vec![Field::new("market", DataType::String), Field::new("price", DataType::Float)]),
            key: Some(vec![0]),
        };
        let filter = partner.market_filter(&keyed_by_market).unwrap().unwrap();
        assert!(filter.accepts(&Row::new(vec![Datum::string("PJM"), Datum::float(1.0)])));
        assert!(!filter.accepts(&Row::new(vec![Datum::string("MISO"), Datum::float(1.0)])));
        let without_market = ViewSchema {
            key: Some(vec![1]),
            ..keyed_by_market
        };
        assert!(partner.market_filter(&without_market).unwrap_err().contains("markets PJM only"));
    }

    #[test]
    fn malformed_files_are_refused() {
        assert!(AuthConfig::parse("[[token]]\ntoken = \"\"\nviews = []").is_err());
        assert!(AuthConfig::parse("[[token]]\ntoken = \"x\"\nview = []").is_err());
    }
}
