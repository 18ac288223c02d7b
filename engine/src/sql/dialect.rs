//! The Flink SQL dialect: sqlparser's generic dialect plus the few Flink
//! constructs it rejects.
//!
//! * `TABLE t` and `TABLE t PARTITION BY k` as the first argument of a window
//!   table function (`TUMBLE(TABLE t, DESCRIPTOR(ts), ...)`). The prefix hook
//!   turns it into a call of the marker function [`TABLE_ARGUMENT`] so the
//!   planner can recognise it; spans still point into the user's file.
//! * `EMIT` is never taken as a table alias, so `... FROM t EMIT FINAL` ends
//!   the query instead of naming `t` "EMIT".
//!
//! The dialect reports itself as [`GenericDialect`] so every generic parsing
//! rule that sqlparser keys on the dialect's type keeps applying.

use std::any::TypeId;

use sqlparser::ast::{Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName, ObjectNamePart};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// The name of the marker call that stands for a `TABLE t [PARTITION BY k]`
/// argument: `__table(t, k...)`.
pub const TABLE_ARGUMENT: &str = "__table";

/// The word that starts the `EMIT CHANGES | FINAL` clause (not a sqlparser keyword).
pub const EMIT: &str = "EMIT";

/// Flink SQL as carbonflow reads it.
#[derive(Debug, Default)]
pub struct FlinkDialect;

impl Dialect for FlinkDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect.is_identifier_part(ch)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_delimited_identifier_start(ch)
    }

    fn supports_group_by_expr(&self) -> bool {
        true
    }

    fn supports_match_recognize(&self) -> bool {
        true
    }

    /// `JOIN t FOR SYSTEM_TIME AS OF probe.ts`: event-time temporal joins.
    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn supports_left_associative_joins_without_parens(&self) -> bool {
        true
    }

    fn is_table_factor_alias(&self, explicit: bool, keyword: &Keyword, parser: &mut Parser) -> bool {
        // The candidate alias has just been consumed.
        let is_emit = matches!(&parser.get_current_token().token, Token::Word(word) if word.value.eq_ignore_ascii_case(EMIT));
        explicit || (!is_emit && GenericDialect.is_table_factor_alias(explicit, keyword, parser))
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        // Only `TABLE <identifier>` is ours; `TABLE(...)` and anything else fall through.
        let [first, second] = parser.peek_tokens_with_location();
        let is_table_keyword = matches!(&first.token, Token::Word(word) if word.keyword == Keyword::TABLE);
        if !is_table_keyword || !matches!(second.token, Token::Word(_)) {
            return None;
        }
        parser.next_token();
        Some(parse_table_argument(parser))
    }
}

fn parse_table_argument(parser: &mut Parser) -> Result<Expr, ParserError> {
    let table = parser.parse_identifier()?;
    let mut arguments = vec![table];
    // Flink: `PARTITION BY key` or `PARTITION BY (key1, key2)`; a bare comma
    // list would swallow the DESCRIPTOR argument that follows.
    if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        if parser.consume_token(&Token::LParen) {
            arguments.extend(parser.parse_comma_separated(|p| p.parse_identifier())?);
            parser.expect_token(&Token::RParen)?;
        } else {
            arguments.push(parser.parse_identifier()?);
        }
    }
    let args = arguments
        .into_iter()
        .map(|ident| FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(ident))))
        .collect();
    Ok(Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(TABLE_ARGUMENT))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}
