//! The Flink SQL dialect: sqlparser's generic dialect plus the few Flink
//! constructs it rejects.
//!
//! * `TABLE t` and `TABLE t PARTITION BY k` as the first argument of a window
//!   table function (`TUMBLE(TABLE t, DESCRIPTOR(ts), ...)`). The prefix hook
//!   turns it into a call of the marker function [`TABLE_ARGUMENT`] so the
//!   planner can recognise it; spans still point into the user's file.
//! * `EMIT` is never taken as a table alias, so `... FROM t EMIT FINAL` ends
//!   the query instead of naming `t` "EMIT".
//! * `RUNNING` and `FINAL` before a call of `FIRST`, `LAST`, `PREV`, `NEXT`
//!   or an aggregate (`FINAL LAST(A.price)`, `RUNNING SUM(B.qty)`) in `MATCH_RECOGNIZE`:
//!   the prefix hook turns them into calls of the marker functions
//!   [`RUNNING`] and [`FINAL`] around the call. Only that shape is taken, so
//!   columns named `running` or `final` keep working.
//!
//! The dialect reports itself as [`GenericDialect`] so every generic parsing
//! rule that sqlparser keys on the dialect's type keeps applying.

use std::any::TypeId;

use carbonflow_operators::aggregate::AggregateFunction;
use sqlparser::ast::{Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName, ObjectNamePart};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// The name of the marker call that stands for a `TABLE t [PARTITION BY k]`
/// argument: `__table(t, k...)`.
pub const TABLE_ARGUMENT: &str = "__table";

/// The marker call that stands for `RUNNING f(...)`: `__running(f(...))`.
pub const RUNNING: &str = "__running";

/// The marker call that stands for `FINAL f(...)`: `__final(f(...))`.
pub const FINAL: &str = "__final";

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
        let [first, second, third] = parser.peek_tokens();
        // `RUNNING` / `FINAL` followed by a call of FIRST, LAST or an aggregate.
        let semantics = match &first {
            Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("RUNNING") => Some(RUNNING),
            Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("FINAL") => Some(FINAL),
            _ => None,
        };
        // PREV and NEXT are taken so that the binder can say where FINAL goes instead.
        let takes_semantics =
            |name: &str| ["FIRST", "LAST", "PREV", "NEXT"].iter().any(|known| known.eq_ignore_ascii_case(name)) || AggregateFunction::from_name(name).is_some();
        if let (Some(marker), Token::Word(function), Token::LParen) = (semantics, &second, &third)
            && function.quote_style.is_none()
            && takes_semantics(&function.value)
        {
            parser.next_token();
            return Some(parser.parse_prefix().map(|call| marker_call(marker, vec![call])));
        }
        // `TABLE <identifier>`; `TABLE(...)` and anything else fall through.
        let is_table_keyword = matches!(&first, Token::Word(word) if word.keyword == Keyword::TABLE);
        if !is_table_keyword || !matches!(second, Token::Word(_)) {
            return None;
        }
        parser.next_token();
        Some(parse_table_argument(parser))
    }
}

/// A call of the marker function `name` with `args`.
fn marker_call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|arg| FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
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
    Ok(marker_call(TABLE_ARGUMENT, arguments.into_iter().map(Expr::Identifier).collect()))
}
