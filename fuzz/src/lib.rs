//! What the fuzz targets check, in one place: each target in `fuzz_targets/`
//! is a line that hands libFuzzer's bytes to a function here.
//!
//! * The SQL front end ([`check_sql`], [`mutate_shipped_query`]): arbitrary
//!   text, and the shipped queries with tokens deleted, repeated, swapped or
//!   replaced, through parse and bind (`carbonflow::cli::check_text`). A
//!   file that checks is also printed and explained; one that does not has
//!   its error rendered with the caret, as `carbonflow check` would.
//! * The record decoders ([`decode_record`], [`decode_csv`]): bytes as one
//!   Kafka message or one market file, through the decoder the Kafka and
//!   file sources use. Every row must have the table's width and every value
//!   its column's type (or NULL); what does not parse is a dead letter.
//!
//! A panic, an overflow (the fuzz profile keeps overflow checks), a hang or
//! a failed check is a finding.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use carbonflow_core::{ConnectorConfig, DataType, Datum, Field, Schema};
use carbonflow_sources::SourceBatch;
use carbonflow_sources::decode::{RecordDecoder, RecordFormat};
use carbonflow_sources::tick::TickColumn;

/// Parses and checks `bytes` as a query file (invalid UTF-8 is no query file).
pub fn check_sql(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        check_text(text);
    }
}

fn check_text(text: &str) {
    match carbonflow::cli::check_text(text) {
        Ok(program) => {
            let _ = program.to_string();
            let _ = carbonflow::explain::dataflow(&program);
        }
        Err(error) => {
            let rendered = error.render("fuzz.sql", text);
            assert!(rendered.starts_with("error: "), "{rendered}");
        }
    }
}

/// Words a mutation may put in place of a token: keywords, functions, types,
/// literals and punctuation the grammar reacts to.
const SQL_WORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "ORDER",
    "AS",
    "ON",
    "JOIN",
    "UNION",
    "ALL",
    "DISTINCT",
    "INSERT",
    "INTO",
    "CREATE",
    "TABLE",
    "VIEW",
    "WITH",
    "WATERMARK",
    "FOR",
    "PRIMARY",
    "KEY",
    "NOT",
    "ENFORCED",
    "TUMBLE",
    "HOP",
    "CUMULATE",
    "SESSION",
    "DESCRIPTOR",
    "PARTITION",
    "INTERVAL",
    "'1'",
    "'0'",
    "'-1'",
    "SECOND",
    "MINUTE",
    "HOUR",
    "DAY",
    "EMIT",
    "FINAL",
    "CHANGES",
    "COUNT(*)",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "FIRST_VALUE",
    "LAST_VALUE",
    "OVER",
    "ROWS",
    "RANGE",
    "BETWEEN",
    "PRECEDING",
    "CURRENT",
    "ROW",
    "MATCH_RECOGNIZE",
    "PATTERN",
    "DEFINE",
    "MEASURES",
    "PREV",
    "LAST",
    "WITHIN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "NULL",
    "TRUE",
    "FALSE",
    "AND",
    "OR",
    "IN",
    "LIKE",
    "IS",
    "STRING",
    "DOUBLE",
    "BIGINT",
    "TIMESTAMP(3)",
    "BOOLEAN",
    "0",
    "1",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "0.5",
    "(",
    ")",
    ",",
    ";",
    "*",
    "/",
    "+",
    "-",
    "%",
    "=",
    "<>",
    "<",
    ">=",
    ".",
    "''",
    "'x'",
    "ts",
    "price",
    "node",
    "window_start",
    "window_end",
    "window_time",
    "FOR SYSTEM_TIME AS OF",
    "CONVERT_TZ",
    "FLOOR",
    "EXTRACT",
    "ZSCORE",
    "EWMA",
    "FORECAST",
];

/// The shipped query files (`queries/*.sql`), read once.
fn shipped_queries() -> &'static [String] {
    static QUERIES: OnceLock<Vec<String>> = OnceLock::new();
    QUERIES.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../queries");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|error| panic!("{dir}: {error}"))
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|extension| extension == "sql"))
            .collect();
        paths.sort();
        paths.iter().map(|path| std::fs::read_to_string(path).expect("a shipped query")).collect()
    })
}

/// The tokens of a query: runs of word characters, runs of white space, and
/// single other characters, so that joining them gives the text back.
fn tokens(text: &str) -> Vec<&str> {
    let class = |c: char| {
        if c.is_alphanumeric() || c == '_' {
            0
        } else if c.is_whitespace() {
            1
        } else {
            2
        }
    };
    let mut tokens = Vec::new();
    let mut start = 0;
    let mut previous = None;
    for (index, c) in text.char_indices() {
        let current = class(c);
        if index > start && (previous != Some(current) || current == 2) {
            tokens.push(&text[start..index]);
            start = index;
        }
        previous = Some(current);
    }
    if start < text.len() {
        tokens.push(&text[start..]);
    }
    tokens
}

/// Checks a shipped query after edits that `bytes` spell: the first byte
/// picks the query, then each group of three is (operation, token, argument).
pub fn mutate_shipped_query(bytes: &[u8]) {
    let queries = shipped_queries();
    let Some((&choice, edits)) = bytes.split_first() else { return };
    let query = &queries[usize::from(choice) % queries.len()];
    let mut tokens: Vec<&str> = tokens(query);
    for edit in edits.chunks_exact(3) {
        if tokens.is_empty() {
            break;
        }
        let (operation, at, argument) = (edit[0], usize::from(edit[1]) * 7 % tokens.len(), usize::from(edit[2]));
        let other = argument * 7 % tokens.len();
        match operation % 5 {
            0 => {
                tokens.remove(at);
            }
            1 => tokens.insert(at, tokens[at]),
            2 => tokens[at] = SQL_WORDS[argument % SQL_WORDS.len()],
            3 => tokens.swap(at, other),
            _ => tokens[at] = tokens[other],
        }
    }
    check_text(&tokens.concat());
}

/// The columns of the table CSV, JSON and MessagePack records are decoded
/// into: one of every type a record can fill.
const RECORD_COLUMNS: &[(&str, DataType)] = &[
    ("node", DataType::String),
    ("ts", DataType::Timestamp),
    ("price", DataType::Float),
    ("volume", DataType::Int),
    ("firm", DataType::Bool),
];

fn config(columns: impl IntoIterator<Item = (&'static str, DataType)>, options: &[(&str, &str)]) -> ConnectorConfig {
    ConnectorConfig {
        table: "fuzzed".into(),
        schema: Schema::new(columns.into_iter().map(|(name, data_type)| Field::new(name, data_type)).collect()),
        event_time_column: None,
        primary_key: None,
        options: options
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn fits(datum: &Datum, data_type: DataType) -> bool {
    matches!(
        (datum, data_type),
        (Datum::Null, _)
            | (Datum::Bool(_), DataType::Bool)
            | (Datum::Int(_), DataType::Int)
            | (Datum::Float(_), DataType::Float)
            | (Datum::Str(_), DataType::String)
            | (Datum::Timestamp(_), DataType::Timestamp)
    )
}

/// Decodes `bytes` as one record of `config`'s format and checks what came out.
fn decode(config: &ConnectorConfig, bytes: &[u8]) {
    let format = RecordFormat::parse(config, &["format"]).unwrap_or_else(|error| panic!("the fuzzed table is valid: {error}"));
    let mut decoder = RecordDecoder::new(config, format);
    let mut batch = SourceBatch::default();
    decoder.decode(bytes, "topic:0:0", &mut batch);
    let types: Vec<DataType> = config.schema.fields.iter().map(|field| field.data_type).collect();
    for row in &batch.rows {
        assert_eq!(row.len(), types.len(), "a row of the table's width: {row:?}");
        for (datum, data_type) in row.datums().iter().zip(&types) {
            assert!(fits(datum, *data_type), "{datum:?} in a {data_type} column");
        }
    }
    for letter in &batch.dead_letters {
        assert_eq!(letter.origin, "fuzzed");
    }
}

/// Decodes `bytes` as one message of `format`: `json`, `msgpack`, or a
/// market format (into every canonical tick column).
pub fn decode_record(format: &str, bytes: &[u8]) {
    let options = [("connector", "kafka"), ("format", format)];
    match format {
        "json" | "msgpack" => decode(&config(RECORD_COLUMNS.iter().copied(), &options), bytes),
        _ => decode(&config(TickColumn::ALL.iter().map(|(_, name, data_type)| (*name, *data_type)), &options), bytes),
    }
}

/// Decodes `bytes` as CSV lines; the first byte chooses the `csv.*` options
/// (comments, ignored parse errors, a null literal, `;` and `'`).
pub fn decode_csv(bytes: &[u8]) {
    let Some((&flags, record)) = bytes.split_first() else { return };
    let mut options = vec![("connector", "kafka"), ("format", "csv")];
    let flag = |bit: u8| flags & (1 << bit) != 0;
    if flag(0) {
        options.push(("csv.allow-comments", "true"));
    }
    if flag(1) {
        options.push(("csv.ignore-parse-errors", "true"));
    }
    if flag(2) {
        options.push(("csv.null-literal", "NULL"));
    }
    if flag(3) {
        options.push(("csv.field-delimiter", ";"));
    }
    if flag(4) {
        options.push(("csv.quote-character", "'"));
    }
    decode(&config(RECORD_COLUMNS.iter().copied(), &options), record);
}
