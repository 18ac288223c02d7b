//! The control API: queries submitted, listed, inspected and dropped over
//! HTTP while the engine runs, and `carbonflow submit|list|drop` over it.
//!
//! The server (`carbonflow_sinks::websocket`) owns the port and checks the
//! token; [`ControlApi`] answers the `/v1/queries` routes from the engine's
//! [`Registry`](crate::runtime::registry::Registry). Submitting and dropping
//! need a token with `control = true` when the server runs with tokens.
//! `docs/control-api.yaml` describes the API in OpenAPI 3.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use carbonflow_sinks::websocket::api::{ApiHandler, ApiRequest, ApiResponse};
use serde_json::{Value, json};

use crate::runtime::registry::QueryShared;
use crate::runtime::{Engine, SubmitError};

/// Where the queries collection lives.
const QUERIES_PATH: &str = "/v1/queries";

/// The engine's answers to `/v1/queries`.
pub struct ControlApi {
    engine: Arc<Engine>,
}

impl ControlApi {
    /// The API over `engine`.
    pub fn new(engine: Arc<Engine>) -> ControlApi {
        ControlApi { engine }
    }
}

impl ApiHandler for ControlApi {
    fn handle(&self, request: ApiRequest) -> Option<ApiResponse> {
        let name = match request.path.strip_prefix(QUERIES_PATH)? {
            "" | "/" => None,
            rest => Some(rest.strip_prefix('/')?.to_owned()),
        };
        let may_control = request.grant.as_ref().is_none_or(|grant| grant.control);
        Some(match (request.method.as_str(), name) {
            ("GET", None) => {
                let queries: Vec<Value> = self.engine.registry().all().iter().map(|query| describe(query)).collect();
                ApiResponse::json(200, &json!({ "queries": queries }))
            }
            ("GET", Some(name)) => match self.engine.registry().get(&name) {
                Some(query) => {
                    let mut described = describe(&query);
                    described["sql"] = json!(query.sql);
                    described["plan"] = json!(format!("{}\n{}", query.program, crate::explain::dataflow(&query.program)));
                    ApiResponse::json(200, &described)
                }
                None => ApiResponse::error(404, &format!("no query named '{name}'")),
            },
            ("POST", None) | ("DELETE", Some(_)) if !may_control => ApiResponse::error(403, "this token may not submit or drop queries (control = false)"),
            ("POST", None) => self.submit(&request),
            ("DELETE", Some(name)) => match self.engine.drop_query(&name) {
                true => ApiResponse {
                    status: 204,
                    content_type: "application/json",
                    body: Vec::new(),
                },
                false => ApiResponse::error(404, &format!("no query named '{name}'")),
            },
            _ => ApiResponse::error(405, "use GET or POST on /v1/queries, GET or DELETE on /v1/queries/NAME"),
        })
    }

    fn ready(&self) -> bool {
        self.engine.ready()
    }
}

impl ControlApi {
    fn submit(&self, request: &ApiRequest) -> ApiResponse {
        let Some(name) = request.parameter("name") else {
            return ApiResponse::error(400, "name the query: POST /v1/queries?name=NAME");
        };
        let Ok(sql) = std::str::from_utf8(&request.body) else {
            return ApiResponse::error(400, "the query file is not UTF-8");
        };
        match self.engine.submit(&name, sql) {
            Ok(query) => ApiResponse::json(201, &describe(&query)),
            Err(SubmitError::Invalid(error)) => {
                let (line, column) = (error.span.start.line, error.span.start.column);
                ApiResponse::json(
                    400,
                    &json!({
                        "error": error.to_string(),
                        "line": line,
                        "column": column,
                        "rendered": error.render(&format!("{name}.sql"), sql),
                    }),
                )
            }
            Err(error @ SubmitError::Conflict(_)) => ApiResponse::error(409, &error.to_string()),
            Err(error @ SubmitError::BadName(_)) => ApiResponse::error(400, &error.to_string()),
            Err(error @ SubmitError::Failed(_)) => ApiResponse::error(422, &error.to_string()),
            Err(error @ SubmitError::Closed) => ApiResponse::error(503, &error.to_string()),
        }
    }
}

/// A query as the API shows it.
fn describe(query: &QueryShared) -> Value {
    let program = &query.program;
    let sources: Vec<&str> = program
        .tables
        .iter()
        .filter(|table| table.role == crate::plan::TableRole::Source)
        .map(|table| table.name())
        .collect();
    let sinks: Vec<&str> = program
        .outputs
        .iter()
        .map(|output| match output.target {
            crate::plan::OutputTarget::Table(table) => program.tables[table].name(),
            crate::plan::OutputTarget::View(view) => program.views[view].name.as_str(),
            crate::plan::OutputTarget::Print => "select",
        })
        .collect();
    let views: Vec<String> = crate::serve::subscribable_views(program).into_iter().map(|view| view.name).collect();
    let (rows_in_per_sec, rows_out_per_sec) = query.rates();
    json!({
        "name": query.name,
        "status": query.status(),
        "error": query.failure.get().map(|failure| failure.to_string()),
        "sources": sources,
        "sinks": sinks,
        "views": views,
        "rows_in": query.rows_in.load(Ordering::Relaxed),
        "rows_out": query.rows_out.load(Ordering::Relaxed),
        "rows_in_per_sec": rows_in_per_sec,
        "rows_out_per_sec": rows_out_per_sec,
        "watermark_lag_ms": query.watermark_lag(),
        "started_at": chrono::DateTime::<chrono::Utc>::from(query.started_at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// Where a running engine is, for `carbonflow submit|list|drop`.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// The engine's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "CARBONFLOW_SERVER")]
    pub server: String,
    /// A bearer token (one with `control = true` to submit or drop).
    #[arg(long, env = "CARBONFLOW_TOKEN")]
    pub token: Option<String>,
}

impl Remote {
    /// Sends one request and gives the status and body.
    fn request(&self, method: reqwest::Method, path: &str, body: Option<String>) -> Result<(u16, String), String> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        runtime.block_on(async {
            let client = carbonflow_sinks::http_client::builder().build().map_err(|e| e.to_string())?;
            let mut request = client.request(method, &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/sql").body(body);
            }
            let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = response.status().as_u16();
            let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
            Ok((status, text))
        })
    }
}

/// Prints an answer: the body on success, the error (rendered with the
/// caret when the file did not check) otherwise.
fn report(outcome: Result<(u16, String), String>, print: impl Fn(&Value)) -> ExitCode {
    match outcome {
        Ok((status, body)) if (200..300).contains(&status) => {
            if let Ok(value) = serde_json::from_str::<Value>(&body) {
                print(&value);
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let value: Value = serde_json::from_str(&body).unwrap_or_else(|_| json!({ "error": body }));
            match value.get("rendered").and_then(Value::as_str) {
                Some(rendered) => eprint!("{rendered}"),
                None => eprintln!("error ({status}): {}", value.get("error").and_then(Value::as_str).unwrap_or(&body)),
            }
            ExitCode::from(1)
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// `carbonflow submit FILE [--name NAME]`.
pub fn submit(remote: &Remote, file: &Path, name: Option<&str>) -> ExitCode {
    let sql = match std::fs::read_to_string(file) {
        Ok(sql) => sql,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", file.display());
            return ExitCode::from(2);
        }
    };
    let name = name.map_or_else(
        || file.file_stem().map_or_else(|| "main".to_owned(), |stem| stem.to_string_lossy().into_owned()),
        str::to_owned,
    );
    let path = format!("{QUERIES_PATH}?name={name}");
    report(remote.request(reqwest::Method::POST, &path, Some(sql)), |query| {
        println!("{}: {}", query["name"].as_str().unwrap_or(&name), query["status"].as_str().unwrap_or("?"));
    })
}

/// `carbonflow list`.
pub fn list(remote: &Remote) -> ExitCode {
    report(remote.request(reqwest::Method::GET, QUERIES_PATH, None), |answer| {
        println!("{:<24} {:<9} {:>12} {:>12} {:>10}  views", "NAME", "STATUS", "ROWS IN", "ROWS OUT", "IN/S");
        for query in answer["queries"].as_array().into_iter().flatten() {
            let views: Vec<&str> = query["views"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            println!(
                "{:<24} {:<9} {:>12} {:>12} {:>10.0}  {}",
                query["name"].as_str().unwrap_or("?"),
                query["status"].as_str().unwrap_or("?"),
                query["rows_in"],
                query["rows_out"],
                query["rows_in_per_sec"].as_f64().unwrap_or(0.0),
                views.join(", ")
            );
        }
    })
}

/// `carbonflow drop NAME`.
pub fn drop(remote: &Remote, name: &str) -> ExitCode {
    report(remote.request(reqwest::Method::DELETE, &format!("{QUERIES_PATH}/{name}"), None), |_| {
        println!("{name}: dropped");
    })
}
