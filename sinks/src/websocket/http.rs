//! The HTTP side of the server's port: every connection speaks HTTP/1.1
//! (hyper) until `GET /v1/stream` upgrades it to a WebSocket.
//!
//! | route | answer | token |
//! | --- | --- | --- |
//! | `GET /` | the live dashboard ([`DASHBOARD`]) | no: the page asks for one |
//! | `GET /healthz` | 200 while the process is up | no |
//! | `GET /readyz` | 200 when [`ApiHandler::ready`](super::api::ApiHandler::ready) (no handler: ready), else 503 | no |
//! | `GET /metrics` | Prometheus text, [`carbonflow_core::metrics::render`] | no |
//! | `GET /v1/stream` | the WebSocket upgrade ([`admit`]) | yes |
//! | `GET /v1/views` | the views served, as JSON | yes |
//! | any other `/v1/...` | the engine's [`ApiHandler`](super::api::ApiHandler), off the async threads | yes |
//!
//! "Token" means: when the server runs with tokens, a valid one as
//! `Authorization: Bearer` or `?token=` (401 otherwise). Without tokens the
//! server listens on loopback only and refuses (403) requests from a page of
//! another site (`Origin`), so a web page the user opens cannot read the
//! views or submit queries; the HTTP routes under `/v1/` also require a
//! loopback `Host`, so a site that rebinds its DNS name to 127.0.0.1 cannot
//! read them either. Whether a grant may change queries is the engine's call:
//! the request carries the grant.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use yawc::{HttpWebSocket, UpgradeFut};

use super::api::{ApiRequest, ApiResponse};
use super::auth::{AuthConfig, Grant};
use super::protocol::{Encoding, JSON_PROTOCOL, MSGPACK_PROTOCOL, STREAM_PATH};
use super::server::Context;

/// The live dashboard: one HTML page with its own script (no build step).
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// The list of views.
pub const VIEWS_PATH: &str = "/v1/views";

/// The largest request body the control API reads; larger ones get 413.
pub const MAX_BODY: usize = 1 << 20;

/// What an answer of the server is.
pub(super) type HttpResponse = Response<Full<Bytes>>;

/// What a WebSocket handshake settled.
#[derive(Debug)]
pub(super) struct Admission {
    /// The encoding of every message.
    pub(super) encoding: Encoding,
    /// The subprotocol to confirm, when the client offered any.
    pub(super) protocol: Option<&'static str>,
    /// The token's entitlements; `None` without tokens.
    pub(super) grant: Option<Grant>,
}

/// An agreed upgrade, left by the request handler for the connection task,
/// which serves the WebSocket once hyper has sent the 101.
pub(super) struct Upgrade {
    /// The WebSocket, with the extensions the handshake agreed, once the 101 is sent.
    pub(super) socket: UpgradeFut,
    pub(super) admission: Admission,
}

/// Where a connection's request handler leaves an agreed upgrade.
pub(super) type UpgradeSlot = Arc<Mutex<Option<Upgrade>>>;

/// A refused request: its status and why, for a person.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// As plain text (the WebSocket handshake and the routes outside `/v1/`).
    fn text(self) -> HttpResponse {
        text(self.status, "text/plain; charset=utf-8", format!("{}\n", self.message))
    }

    /// As `{"error": ...}` (the routes under `/v1/`); a 401 names the scheme.
    fn json(self) -> HttpResponse {
        let mut response = from_api(ApiResponse::error(self.status.as_u16(), &self.message));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn from_api(answer: ApiResponse) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(status, answer.content_type, answer.body)
}

/// Answers one request; a `GET /v1/stream` that is admitted leaves its
/// upgrade in `upgrade` and answers 101.
pub(super) async fn answer(request: Request<Incoming>, context: Arc<Context>, upgrade: UpgradeSlot) -> Result<HttpResponse, Infallible> {
    let path = request.uri().path();
    let response = if path == STREAM_PATH {
        upgrade_to_websocket(request, &context, &upgrade)
    } else if path == VIEWS_PATH {
        match read_only(&request).and_then(|()| authorize_api(&request, &context)) {
            Ok(grant) => list_views(&context, grant.as_ref()),
            Err(refusal) => refusal.json(),
        }
    } else if path.starts_with("/v1/") {
        control(request, &context).await
    } else {
        match read_only(&request) {
            Err(refusal) => refusal.text(),
            Ok(()) => match path {
                "/" => {
                    let mut page = text(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD);
                    page.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                    page
                }
                "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
                "/readyz" => readiness(&context).await,
                "/metrics" => text(StatusCode::OK, carbonflow_core::metrics::CONTENT_TYPE, carbonflow_core::metrics::render()),
                _ => Refusal::new(StatusCode::NOT_FOUND, format!("no page at {path}; the dashboard is at /")).text(),
            },
        }
    };
    Ok(response)
}

/// The server's own routes only read: GET (and HEAD).
fn read_only<B>(request: &Request<B>) -> Result<(), Refusal> {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        Ok(())
    } else {
        Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} takes GET only", request.uri().path())))
    }
}

async fn readiness(context: &Context) -> HttpResponse {
    let ready = match context.api() {
        None => true,
        Some(api) => tokio::task::spawn_blocking(move || api.ready()).await.unwrap_or(false),
    };
    if ready {
        text(StatusCode::OK, "text/plain; charset=utf-8", "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "not ready\n")
    }
}

/// `{"views": [{"name", "columns": [{"name", "type"}], "key": [names] or null}]}`,
/// only the views the grant may read.
fn list_views(context: &Context, grant: Option<&Grant>) -> HttpResponse {
    let views: Vec<serde_json::Value> = context
        .hub
        .views()
        .into_iter()
        .filter(|view| grant.is_none_or(|grant| grant.may_read(&view.name)))
        .map(|view| serde_json::json!({ "name": view.name, "columns": view.columns(), "key": view.key_names() }))
        .collect();
    from_api(ApiResponse::json(200, &serde_json::json!({ "views": views })))
}

/// The control API: the engine's handler, called off the async threads.
async fn control(request: Request<Incoming>, context: &Context) -> HttpResponse {
    let grant = match authorize_api(&request, context) {
        Ok(grant) => grant,
        Err(refusal) => return refusal.json(),
    };
    let no_route = || Refusal::new(StatusCode::NOT_FOUND, format!("no route {} {}", request.method(), request.uri().path()));
    let Some(api) = context.api() else {
        return no_route().json();
    };
    let not_found = no_route();
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_BODY} bytes")).json();
        }
        Err(error) => return Refusal::new(StatusCode::BAD_REQUEST, format!("cannot read the body: {error}")).json(),
    };
    let request = ApiRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        grant,
        body,
    };
    match tokio::task::spawn_blocking(move || api.handle(request)).await {
        Ok(Some(answer)) => from_api(answer),
        Ok(None) => not_found.json(),
        Err(_) => Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "the request handler failed").json(),
    }
}

/// Checks the token (or, without tokens, that the request is local) of an
/// HTTP route under `/v1/`.
fn authorize_api<B>(request: &Request<B>, context: &Context) -> Result<Option<Grant>, Refusal> {
    if context.auth.is_none() && !local_host(request.headers()) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "without tokens only requests to localhost or a loopback address are served",
        ));
    }
    authorize(request, context.auth.as_ref())
}

/// The grant of the request's token; without tokens, `None` for a local page or program.
fn authorize<B>(request: &Request<B>, auth: Option<&AuthConfig>) -> Result<Option<Grant>, Refusal> {
    match auth {
        // Without tokens, a page from another site in the user's browser must not read the views.
        None if !local_origin(request.headers()) => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "without tokens only local pages (file:// or localhost) may connect",
        )),
        None => Ok(None),
        Some(auth) => {
            let token = presented_token(request).ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "a bearer token is required"))?;
            let grant = auth.grant(&token).ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "unknown token"))?;
            Ok(Some(grant.clone()))
        }
    }
}

/// The token of a request: `Authorization: Bearer ...`, or `?token=` for browsers.
fn presented_token<B>(request: &Request<B>) -> Option<String> {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|token| token.trim().to_owned());
    from_header.or_else(|| {
        request
            .uri()
            .query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_owned)
    })
}

/// The host of a `host[:port]`, without the port.
fn without_port(authority: &str) -> &str {
    authority
        .rsplit_once(':')
        .filter(|(host, port)| port.chars().all(|c| c.is_ascii_digit()) && (!host.contains(':') || host.ends_with(']')))
        .map_or(authority, |(host, _)| host)
}

/// Whether the request comes from a program (no `Origin`) or a page served
/// locally (`file://` pages send `null`; `http://localhost:...`, `http://127.0.0.1:...`).
fn local_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else {
        return true;
    };
    let host = without_port(origin.split("://").nth(1).unwrap_or(""));
    origin == "null" || matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// Whether the request was addressed to `localhost` or a loopback address
/// (or names no host, as HTTP/1.0 may).
fn local_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()) else {
        return true;
    };
    let host = without_port(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks token and subprotocol of a WebSocket request and settles what was agreed.
pub(super) fn admit<B>(request: &Request<B>, auth: Option<&AuthConfig>) -> Result<Admission, Refusal> {
    let grant = authorize(request, auth)?;
    let offered: Vec<&str> = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    if offered.is_empty() {
        return Ok(Admission {
            encoding: Encoding::MessagePack,
            protocol: None,
            grant,
        });
    }
    let chosen = [MSGPACK_PROTOCOL, JSON_PROTOCOL]
        .into_iter()
        .find(|ours| offered.contains(ours))
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("unsupported subprotocols {offered:?}; offer {MSGPACK_PROTOCOL} or {JSON_PROTOCOL}"),
            )
        })?;
    Ok(Admission {
        encoding: Encoding::from_protocol(chosen).expect("one of ours"),
        protocol: Some(chosen),
        grant,
    })
}

/// Whether a header lists `token` (comma-separated, case-insensitive).
fn lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|listed| listed.trim().eq_ignore_ascii_case(token))
}

/// `GET /v1/stream`: a valid WebSocket request that [`admit`] accepts gets
/// 101, its upgrade left in `slot`. yawc settles the accept key and
/// permessage-deflate (the server's [`Context::websocket`] options against
/// the client's offer).
fn upgrade_to_websocket(mut request: Request<Incoming>, context: &Context, slot: &UpgradeSlot) -> HttpResponse {
    if request.method() != Method::GET {
        return Refusal::new(StatusCode::METHOD_NOT_ALLOWED, format!("{STREAM_PATH} is a WebSocket: GET with an upgrade")).text();
    }
    let headers = request.headers();
    let valid = headers.contains_key(header::SEC_WEBSOCKET_KEY)
        && lists(headers, header::CONNECTION, "upgrade")
        && lists(headers, header::UPGRADE, "websocket")
        && headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|version| version == "13");
    if !valid {
        let mut response = Refusal::new(StatusCode::UPGRADE_REQUIRED, format!("{STREAM_PATH} is a WebSocket (version 13)")).text();
        response.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    let admission = match admit(&request, context.auth.as_ref()) {
        Ok(admission) => admission,
        Err(refusal) => return refusal.text(),
    };
    if asks_for_a_smaller_server_window(request.headers()) {
        request.headers_mut().remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    let (agreed, socket) = match HttpWebSocket::upgrade_with_options(&mut request, context.websocket.clone()) {
        Ok(upgrade) => upgrade,
        Err(error) => return Refusal::new(StatusCode::BAD_REQUEST, format!("cannot upgrade: {error}")).text(),
    };
    let (parts, _) = agreed.into_parts();
    let mut response = Response::from_parts(parts, Full::default());
    if let Some(protocol) = admission.protocol {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    }
    *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Upgrade { socket, admission });
    response
}

/// Whether a permessage-deflate offer limits the server's window
/// (`server_max_window_bits` below 15). The pure Rust deflate of the server
/// always uses the full 32 KiB window, and RFC 7692 (7.1.2.1) has a server
/// that cannot honour the limit decline the offer: such a client gets plain frames.
fn asks_for_a_smaller_server_window(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split([',', ';']))
        .filter_map(|parameter| parameter.split_once('='))
        .any(|(name, bits)| name.trim() == "server_max_window_bits" && bits.trim().trim_matches('"').parse::<u8>().is_ok_and(|bits| bits < 15))
}

/// The answer to every request of a connection over the limit.
pub(super) fn too_many_connections() -> HttpResponse {
    Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "too many connections; retry later").text()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn admitted(request: &Request<()>, auth: Option<&AuthConfig>) -> Result<(Option<&'static str>, Encoding, bool), StatusCode> {
        admit(request, auth)
            .map(|admission| (admission.protocol, admission.encoding, admission.grant.is_some()))
            .map_err(|refusal| refusal.status)
    }

    #[test]
    fn the_handshake_checks_subprotocol_origin_and_token() {
        assert_eq!(admitted(&request("/v1/stream", &[]), None), Ok((None, Encoding::MessagePack, false)));
        let json = request("/v1/stream", &[("sec-websocket-protocol", "x, carbonflow.v1.json")]);
        assert_eq!(admitted(&json, None), Ok((Some(JSON_PROTOCOL), Encoding::Json, false)));
        let both = request("/v1/stream", &[("sec-websocket-protocol", "carbonflow.v1.json, carbonflow.v1.msgpack")]);
        assert_eq!(admitted(&both, None).unwrap().1, Encoding::MessagePack);
        assert_eq!(
            admitted(&request("/v1/stream", &[("sec-websocket-protocol", "mqtt")]), None),
            Err(StatusCode::BAD_REQUEST)
        );

        for origin in ["null", "http://localhost:5173", "http://127.0.0.1", "http://[::1]:8000"] {
            assert!(admitted(&request("/v1/stream", &[("origin", origin)]), None).is_ok(), "{origin}");
        }
        for origin in ["https://evil.example", "http://localhost.evil.example", "http://127.0.0.1.nip.io:80"] {
            assert_eq!(
                admitted(&request("/v1/stream", &[("origin", origin)]), None),
                Err(StatusCode::FORBIDDEN),
                "{origin}"
            );
        }

        let auth = AuthConfig::parse("[[token]]\ntoken = \"t0k\"\nviews = [\"*\"]").unwrap();
        assert_eq!(admitted(&request("/v1/stream", &[]), Some(&auth)), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(
            admitted(&request("/v1/stream", &[("authorization", "Bearer nope")]), Some(&auth)),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert!(admitted(&request("/v1/stream", &[("authorization", "Bearer t0k")]), Some(&auth)).unwrap().2);
        let from_browser = request("/v1/stream?view=x&token=t0k", &[("origin", "https://desk.example")]);
        assert!(admitted(&from_browser, Some(&auth)).unwrap().2, "with tokens any origin may connect");
    }

    #[test]
    fn without_tokens_only_loopback_hosts_are_served() {
        let host = |value: &str| request("/v1/views", &[("host", value)]);
        for local in ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080", "127.0.0.2"] {
            assert!(local_host(host(local).headers()), "{local}");
        }
        assert!(local_host(request("/v1/views", &[]).headers()), "HTTP/1.0 names no host");
        for foreign in ["evil.example:8080", "localhost.evil.example", "10.0.0.1:8080", "[::2]:80", "127.0.0.1.nip.io"] {
            assert!(!local_host(host(foreign).headers()), "{foreign}");
        }
    }
}
