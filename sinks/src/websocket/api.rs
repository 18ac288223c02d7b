//! The hook through which the engine answers HTTP requests on the server's port.
//!
//! The server owns the port: it upgrades `GET /v1/stream` to a WebSocket and
//! answers its own routes (the dashboard, health, metrics, the list of
//! views). Every other request under `/v1/` (the control API of running
//! queries) goes to the [`ApiHandler`] the engine installs, after the same
//! token check as a WebSocket. Handlers may block (a submission waits for its
//! dataflow to be built), so the server calls them off its async threads.

use super::auth::Grant;

/// A request for the engine, with the caller's grant already checked.
#[derive(Debug)]
pub struct ApiRequest {
    /// `GET`, `POST`, `DELETE`, ...
    pub method: String,
    /// The path, e.g. `/v1/queries/spikes`.
    pub path: String,
    /// The query string without the `?`, if any.
    pub query: Option<String>,
    /// The presented token's entitlements; `None` when the server runs without tokens.
    pub grant: Option<Grant>,
    /// The request body.
    pub body: Vec<u8>,
}

impl ApiRequest {
    /// The value of a query-string parameter (not percent-decoded beyond `+` and `%XX`).
    pub fn parameter(&self, name: &str) -> Option<String> {
        self.query
            .as_deref()?
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(percent_decode)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// A JSON body with the given status.
    pub fn json(status: u16, body: &serde_json::Value) -> ApiResponse {
        ApiResponse {
            status,
            content_type: "application/json",
            body: serde_json::to_vec_pretty(body).expect("a JSON value serialises"),
        }
    }

    /// `{"error": message}` with the given status.
    pub fn error(status: u16, message: &str) -> ApiResponse {
        ApiResponse::json(status, &serde_json::json!({ "error": message }))
    }
}

/// Answers the control API; installed with [`super::Server::set_api`].
pub trait ApiHandler: Send + Sync + 'static {
    /// Answers one request. `None`: no such route (the server answers 404).
    fn handle(&self, request: ApiRequest) -> Option<ApiResponse>;

    /// Whether the engine is ready to serve (`GET /readyz`): its queries are built and reading.
    fn ready(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded() {
        let request = ApiRequest {
            method: "POST".into(),
            path: "/v1/queries".into(),
            query: Some("name=spike%20watch&x=1&bad=%é".into()),
            grant: None,
            body: Vec::new(),
        };
        assert_eq!(request.parameter("name").as_deref(), Some("spike watch"));
        assert_eq!(request.parameter("x").as_deref(), Some("1"));
        assert_eq!(request.parameter("bad").as_deref(), Some("%é"));
        assert_eq!(request.parameter("y"), None);
    }
}
