//! The SQL front end: query files parsed into [`Statement`]s.
//!
//! A query file holds several statements separated by `;`. sqlparser parses
//! the standard ones (`CREATE VIEW`, `INSERT INTO ... SELECT`, a bare `SELECT`)
//! through our [`dialect::FlinkDialect`]; Flink's `CREATE TABLE` with
//! `PRIMARY KEY ... NOT ENFORCED`, `WATERMARK FOR ... AS ...` and `WITH (...)`
//! is parsed here with the same parser's token primitives, so every span
//! points into the user's original file. A query may end with
//! `EMIT CHANGES` (the default: every change is emitted as it happens) or
//! `EMIT FINAL` (a window is emitted once, when the watermark passes its end).

pub mod dialect;
pub mod error;

use sqlparser::ast::{self, DataType as SqlType, Expr, Ident, Query, Spanned};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Span, Token, TokenWithSpan, Tokenizer};

pub use error::{SqlError, SqlResult};

use dialect::FlinkDialect;

/// One statement of a query file.
#[derive(Clone, Debug)]
pub enum Statement {
    /// `CREATE TABLE`: a source or a sink.
    CreateTable(Box<CreateTable>),
    /// `CREATE VIEW name AS query`.
    CreateView {
        /// The view name.
        name: Ident,
        /// Its query.
        query: Box<Query>,
        /// When its windows emit.
        emit: Emit,
    },
    /// `INSERT INTO table query`.
    Insert {
        /// The sink table.
        table: Ident,
        /// The query feeding it.
        query: Box<Query>,
        /// When its windows emit.
        emit: Emit,
    },
    /// `SET 'key' = 'value'`: a setting for the whole file.
    Set {
        /// The setting name.
        key: String,
        /// Its value.
        value: String,
        /// Where it is written.
        span: Span,
    },
    /// A bare `SELECT`, whose changes are printed.
    Select {
        /// The query.
        query: Box<Query>,
        /// When its windows emit.
        emit: Emit,
    },
}

/// When a windowed aggregation emits its results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Emit {
    /// `EMIT CHANGES`: every input change updates its window right away.
    #[default]
    Changes,
    /// `EMIT FINAL`: a window is emitted once the watermark passes its end.
    Final,
}

/// A `CREATE TABLE` statement.
#[derive(Clone, Debug)]
pub struct CreateTable {
    /// The table name.
    pub name: Ident,
    /// The physical columns, in order.
    pub columns: Vec<ColumnDecl>,
    /// `PRIMARY KEY (...) NOT ENFORCED`: later rows with the same key revise earlier ones.
    pub primary_key: Option<Vec<Ident>>,
    /// `WATERMARK FOR column AS expression`.
    pub watermark: Option<WatermarkDecl>,
    /// The `WITH ('key' = 'value', ...)` options, keys as written.
    pub options: Vec<TableOption>,
}

/// A column of a `CREATE TABLE`.
#[derive(Clone, Debug)]
pub struct ColumnDecl {
    /// The column name.
    pub name: Ident,
    /// The declared SQL type.
    pub data_type: SqlType,
    /// Where the type is written.
    pub type_span: Span,
    /// `NOT NULL` was given.
    pub not_null: bool,
}

/// `WATERMARK FOR column AS expression`.
#[derive(Clone, Debug)]
pub struct WatermarkDecl {
    /// The event-time column.
    pub column: Ident,
    /// The watermark expression, usually `column - INTERVAL 'n' SECOND`.
    pub expression: Expr,
}

/// One `'key' = 'value'` of a `WITH` clause.
#[derive(Clone, Debug)]
pub struct TableOption {
    /// The key as written.
    pub key: String,
    /// The value.
    pub value: String,
    /// Where the pair is written, for errors about it.
    pub span: Span,
}

/// A parsed query file.
#[derive(Clone, Debug)]
pub struct ParsedFile {
    /// The statements, in order.
    pub statements: Vec<Statement>,
    /// Every `WITHIN INTERVAL ...` of a `MATCH_RECOGNIZE` (sqlparser does not
    /// parse it; it is taken out of the token stream and matched to its
    /// clause by position when binding).
    pub withins: Vec<WithinClause>,
}

/// `WITHIN INTERVAL 'n' UNIT` after a `MATCH_RECOGNIZE` pattern.
#[derive(Clone, Debug)]
pub struct WithinClause {
    /// Where it is written.
    pub span: Span,
    /// The interval expression, parsed on its own.
    pub interval: Expr,
}

/// Parses a whole query file.
pub fn parse_file(text: &str) -> SqlResult<ParsedFile> {
    parse_statements(text).map_err(|error| point_at_end_if_unplaced(error, text))
}

/// Takes `WITHIN INTERVAL 'n' UNIT` out of the tokens, keeping the rest (and
/// every position) as it was.
fn take_within_clauses(tokens: Vec<TokenWithSpan>) -> SqlResult<(Vec<TokenWithSpan>, Vec<WithinClause>)> {
    let dialect = FlinkDialect;
    let mut kept = Vec::with_capacity(tokens.len());
    let mut withins = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(token) = iter.next() {
        let is_within = matches!(&token.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("WITHIN"));
        if !is_within {
            kept.push(token);
            continue;
        }
        // The interval: INTERVAL, its literal and its unit (whitespace kept out).
        let mut interval = Vec::new();
        while interval.len() < 3 {
            match iter.next() {
                Some(next) if matches!(next.token, Token::Whitespace(_)) => {}
                Some(next) => interval.push(next),
                None => break,
            }
        }
        let end = interval.last().map_or(token.span, |t| t.span);
        let mut parser = Parser::new(&dialect).with_tokens_with_locations(interval);
        let expression = parser
            .parse_expr()
            .map_err(|_| SqlError::new("expected WITHIN INTERVAL 'n' UNIT", token.span.union(&end)))?;
        withins.push(WithinClause {
            span: token.span.union(&end),
            interval: expression,
        });
    }
    Ok((kept, withins))
}

/// sqlparser reports "found: EOF" with no position; point at the end of the file.
fn point_at_end_if_unplaced(mut error: SqlError, text: &str) -> SqlError {
    if error.span.start.line == 0 && !text.trim().is_empty() {
        let trimmed = text.trim_end();
        let line = trimmed.lines().count() as u64;
        let column = trimmed.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
        let end = sqlparser::tokenizer::Location::new(line, column);
        error.span = Span::new(end, end);
    }
    error
}

fn parse_statements(text: &str) -> SqlResult<ParsedFile> {
    let dialect = FlinkDialect;
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::from_parser(e.into()))?;
    let (tokens, withins) = take_within_clauses(tokens)?;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token_ref().token == Token::EOF {
            break;
        }
        statements.push(parse_statement(&mut parser)?);
        let next = parser.peek_token();
        if !matches!(next.token, Token::SemiColon | Token::EOF) {
            return Err(SqlError::new(format!("expected ';' or the end of the file, found {}", next.token), next.span));
        }
    }
    if statements.is_empty() {
        return Err(SqlError::general("the file holds no statement"));
    }
    Ok(ParsedFile { statements, withins })
}

fn parse_statement(parser: &mut Parser) -> SqlResult<Statement> {
    if parser.peek_keyword(Keyword::CREATE) && is_create_table(parser) {
        return parse_create_table(parser).map(|table| Statement::CreateTable(Box::new(table)));
    }
    let start = parser.peek_token().span;
    let [first, second] = parser.peek_tokens_with_location();
    let is_flink_set = matches!(&first.token, Token::Word(w) if w.keyword == Keyword::SET) && matches!(second.token, Token::SingleQuotedString(_));
    if is_flink_set {
        parser.next_token();
        let key = p(parser.parse_literal_string())?;
        p(parser.expect_token(&Token::Eq))?;
        let value = p(parser.parse_literal_string())?;
        return Ok(Statement::Set {
            key,
            value,
            span: start.union(&parser.get_current_token().span),
        });
    }
    let statement = parser.parse_statement().map_err(SqlError::from_parser)?;
    let emit = parse_emit(parser)?;
    match statement {
        ast::Statement::Query(query) => Ok(Statement::Select { query, emit }),
        ast::Statement::CreateView(view) => {
            if view.materialized || view.or_replace || !view.columns.is_empty() {
                return Err(SqlError::at(&view.name, "only plain `CREATE VIEW name AS query` is supported"));
            }
            let name = single_name(&view.name)?;
            Ok(Statement::CreateView { name, query: view.query, emit })
        }
        ast::Statement::Insert(insert) => {
            let ast::TableObject::TableName(table) = &insert.table else {
                return Err(SqlError::at(&insert.table, "INSERT needs a table name"));
            };
            let table = single_name(table)?;
            if !insert.columns.is_empty() || insert.overwrite || insert.partitioned.is_some() {
                return Err(SqlError::new(
                    "only `INSERT INTO table SELECT ...` is supported (no column list, OVERWRITE or PARTITION)",
                    table.span,
                ));
            }
            let Some(query) = insert.source else {
                return Err(SqlError::new("INSERT needs a SELECT", table.span));
            };
            Ok(Statement::Insert { table, query, emit })
        }
        other => Err(SqlError::new(
            format!("unsupported statement: {}", first_words(&other.to_string())),
            start.union(&other.span()),
        )),
    }
}

fn first_words(text: &str) -> String {
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Table and view names are single identifiers (no catalogs or databases yet).
fn single_name(name: &ast::ObjectName) -> SqlResult<Ident> {
    match name.0.as_slice() {
        [ast::ObjectNamePart::Identifier(ident)] => Ok(ident.clone()),
        _ => Err(SqlError::at(
            name,
            format!("'{name}': catalogs and databases are not supported; use a plain name"),
        )),
    }
}

fn is_create_table(parser: &Parser) -> bool {
    let [_, second] = parser.peek_tokens_with_location();
    matches!(&second.token, Token::Word(word) if word.keyword == Keyword::TABLE)
}

fn parse_emit(parser: &mut Parser) -> SqlResult<Emit> {
    if !parse_word(parser, dialect::EMIT) {
        return Ok(Emit::Changes);
    }
    let token = parser.next_token();
    match &token.token {
        Token::Word(word) if word.value.eq_ignore_ascii_case("CHANGES") => Ok(Emit::Changes),
        Token::Word(word) if word.value.eq_ignore_ascii_case("FINAL") => Ok(Emit::Final),
        other => Err(SqlError::new(format!("expected CHANGES or FINAL after EMIT, found {other}"), token.span)),
    }
}

fn parse_create_table(parser: &mut Parser) -> SqlResult<CreateTable> {
    p(parser.expect_keywords(&[Keyword::CREATE, Keyword::TABLE]))?;
    let _ = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = single_name(&p(parser.parse_object_name(false))?)?;
    p(parser.expect_token(&Token::LParen))?;
    let mut table = CreateTable {
        name,
        columns: Vec::new(),
        primary_key: None,
        watermark: None,
        options: Vec::new(),
    };
    loop {
        let keyword_span = parser.peek_token().span;
        if parser.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
            p(parser.expect_token(&Token::LParen))?;
            let columns = p(parser.parse_comma_separated(|p| p.parse_identifier()))?;
            p(parser.expect_token(&Token::RParen))?;
            if !parser.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]) {
                return Err(SqlError::new("Flink requires `PRIMARY KEY (...) NOT ENFORCED`", keyword_span));
            }
            if table.primary_key.is_some() {
                return Err(SqlError::new("a table has one PRIMARY KEY", keyword_span));
            }
            table.primary_key = Some(columns);
        } else if parse_word(parser, "WATERMARK") {
            p(parser.expect_keyword(Keyword::FOR))?;
            let column = p(parser.parse_identifier())?;
            p(parser.expect_keyword(Keyword::AS))?;
            let expression = p(parser.parse_expr())?;
            if table.watermark.is_some() {
                return Err(SqlError::new("a table has one WATERMARK", column.span));
            }
            table.watermark = Some(WatermarkDecl { column, expression });
        } else {
            table.columns.push(parse_column(parser)?);
        }
        if parser.consume_token(&Token::RParen) {
            break;
        }
        p(parser.expect_token(&Token::Comma))?;
    }
    if parser.parse_keyword(Keyword::COMMENT) {
        p(parser.parse_literal_string())?;
    }
    p(parser.expect_keyword(Keyword::WITH))?;
    p(parser.expect_token(&Token::LParen))?;
    loop {
        let start = parser.peek_token().span;
        let key = p(parser.parse_literal_string())?;
        p(parser.expect_token(&Token::Eq))?;
        let value = p(parser.parse_literal_string())?;
        let span = start.union(&parser.get_current_token().span);
        table.options.push(TableOption { key, value, span });
        if parser.consume_token(&Token::RParen) {
            break;
        }
        p(parser.expect_token(&Token::Comma))?;
    }
    Ok(table)
}

/// Consumes the next token if it is the word `word` (for Flink words that
/// are not sqlparser keywords).
fn parse_word(parser: &mut Parser, word: &str) -> bool {
    let matches = matches!(&parser.peek_token_ref().token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
    if matches {
        parser.next_token();
    }
    matches
}

/// Positions sqlparser's errors.
fn p<T>(result: Result<T, sqlparser::parser::ParserError>) -> SqlResult<T> {
    result.map_err(SqlError::from_parser)
}

fn parse_column(parser: &mut Parser) -> SqlResult<ColumnDecl> {
    let name = parser.parse_identifier().map_err(SqlError::from_parser)?;
    if parser.peek_keyword(Keyword::AS) {
        return Err(SqlError::new(
            "computed columns (`name AS expression`) are not supported; compute it in a view",
            name.span,
        ));
    }
    let type_start = parser.peek_token().span;
    let data_type = parser.parse_data_type().map_err(SqlError::from_parser)?;
    let type_span = type_start.union(&parser.get_current_token().span);
    if parser.peek_keyword(Keyword::METADATA) {
        return Err(SqlError::new("metadata columns are not supported", parser.peek_token().span));
    }
    let not_null = parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]);
    Ok(ColumnDecl {
        name,
        data_type,
        type_span,
        not_null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLINK_DDL: &str = "
        CREATE TABLE ticks (
            node STRING,
            ts TIMESTAMP(3),
            price DOUBLE,
            volume BIGINT,
            PRIMARY KEY (node, ts) NOT ENFORCED,
            WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
        ) WITH ('connector' = 'filesystem', 'path' = 'ticks.csv', 'format' = 'csv');
        INSERT INTO out
        SELECT node, window_start, window_end, AVG(price)
        FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTES))
        GROUP BY node, window_start, window_end EMIT FINAL;
        SELECT * FROM ticks
    ";

    #[test]
    fn parses_flink_ddl_windows_and_emit() {
        let statements = parse_file(FLINK_DDL).unwrap().statements;
        assert_eq!(statements.len(), 3);
        let Statement::CreateTable(table) = &statements[0] else {
            panic!("expected CREATE TABLE")
        };
        assert_eq!(table.name.value, "ticks");
        assert_eq!(table.columns.len(), 4);
        assert_eq!(table.primary_key.as_ref().unwrap().len(), 2);
        assert_eq!(table.watermark.as_ref().unwrap().column.value, "ts");
        assert_eq!(table.options.len(), 3);
        assert_eq!(table.options[1].value, "ticks.csv");
        assert!(matches!(statements[1], Statement::Insert { emit: Emit::Final, .. }));
        assert!(matches!(statements[2], Statement::Select { emit: Emit::Changes, .. }));
    }

    #[test]
    fn session_partition_by_parses() {
        let sql = "SELECT * FROM TABLE(SESSION(TABLE ticks PARTITION BY node, DESCRIPTOR(ts), INTERVAL '5' MINUTES))";
        parse_file(sql).unwrap();
        let sql = "SELECT * FROM TABLE(SESSION(TABLE ticks PARTITION BY (market, node), DESCRIPTOR(ts), INTERVAL '5' MINUTES))";
        parse_file(sql).unwrap();
    }

    #[test]
    fn running_and_final_mark_the_call_after_them_only() {
        let statements = parse_file("SELECT FINAL LAST(A.price) - RUNNING SUM(price) FROM t").unwrap().statements;
        let shown = format!("{:?}", statements[0]);
        assert!(shown.contains(dialect::FINAL) && shown.contains(dialect::RUNNING), "{shown}");
        // A column called `running` is a column, even before a word and a parenthesis.
        let statements = parse_file("SELECT running FROM t WHERE running IN (1, 2)").unwrap().statements;
        assert!(!format!("{:?}", statements[0]).contains(dialect::RUNNING));
    }

    #[test]
    fn errors_point_at_the_token() {
        let error = parse_file("SELECT a FROM t;\nSELECT FROM WHERE").unwrap_err();
        assert_eq!(error.span.start.line, 2);
        let error = parse_file("CREATE TABLE t (a INT, PRIMARY KEY (a)) WITH ('connector' = 'print')").unwrap_err();
        assert!(error.message.contains("NOT ENFORCED"), "{error}");
        assert_eq!((error.span.start.line, error.span.start.column), (1, 24));
    }

    #[test]
    fn unsupported_statements_are_named() {
        let error = parse_file("DROP TABLE t").unwrap_err();
        assert!(error.message.starts_with("unsupported statement: DROP TABLE"), "{error}");
    }
}
