//! Errors in query files, with the position of the offending token.
//!
//! Every error the front end reports (parse, unknown name, type mismatch,
//! unsupported construct, bad connector option) carries a [`Span`] into the
//! user's original file, and renders like a compiler diagnostic:
//!
//! ```text
//! error: unknown column 'prise' in table 'ticks'
//!   --> queries/hub.sql:4:12
//!    |
//!  4 | SELECT node, prise FROM ticks
//!    |              ^^^^^
//! ```

use std::fmt;

use sqlparser::ast::Spanned;
use sqlparser::tokenizer::{Location, Span};

/// An error in a query file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlError {
    /// What is wrong, for a person.
    pub message: String,
    /// Where, when known (line and column are 1-based; an empty span has line 0).
    pub span: Span,
}

impl SqlError {
    /// An error at `span`.
    pub fn new(message: impl Into<String>, span: Span) -> Self {
        SqlError { message: message.into(), span }
    }

    /// An error at the source position of an AST node.
    pub fn at(node: &impl Spanned, message: impl Into<String>) -> Self {
        SqlError::new(message, node.span())
    }

    /// An error with no position (e.g. an empty file).
    pub fn general(message: impl Into<String>) -> Self {
        SqlError::new(message, Span::empty())
    }

    /// Converts sqlparser's error, whose message ends in
    /// `at Line: L, Column: C`, into a positioned error.
    pub fn from_parser(error: sqlparser::parser::ParserError) -> Self {
        let text = match error {
            sqlparser::parser::ParserError::TokenizerError(text) | sqlparser::parser::ParserError::ParserError(text) => text,
            sqlparser::parser::ParserError::RecursionLimitExceeded => "the query nests too deeply".to_owned(),
        };
        match text.rfind(" at Line: ") {
            Some(at) => {
                let location = &text[at + " at Line: ".len()..];
                let mut parts = location.split(", Column: ");
                let line = parts.next().and_then(|l| l.trim().parse().ok());
                let column = parts.next().and_then(|c| c.trim().parse().ok());
                match (line, column) {
                    (Some(line), Some(column)) => {
                        let start = Location::new(line, column);
                        SqlError::new(text[..at].to_owned(), Span::new(start, start))
                    }
                    _ => SqlError::general(text),
                }
            }
            None => SqlError::general(text),
        }
    }

    /// Renders the error with the file name, position and a caret line under
    /// the offending token.
    pub fn render(&self, file_name: &str, source: &str) -> String {
        let mut out = format!("error: {}\n", self.message);
        let start = self.span.start;
        if start.line == 0 {
            out.push_str(&format!("  --> {file_name}\n"));
            return out;
        }
        out.push_str(&format!("  --> {file_name}:{}:{}\n", start.line, start.column));
        let Some(line_text) = source.lines().nth(start.line as usize - 1) else {
            return out;
        };
        let gutter = start.line.to_string().len();
        let width = if self.span.end.line == start.line && self.span.end.column > start.column {
            (self.span.end.column - start.column) as usize
        } else {
            1
        };
        // Columns count characters; tabs are kept so the caret lines up in a terminal.
        let pad: String = line_text
            .chars()
            .take(start.column as usize - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!("{:gutter$} |\n", ""));
        out.push_str(&format!("{} | {}\n", start.line, line_text));
        out.push_str(&format!("{:gutter$} | {}{}\n", "", pad, "^".repeat(width)));
        out
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.span.start.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "{}:{}: {}", self.span.start.line, self.span.start.column, self.message)
        }
    }
}

impl std::error::Error for SqlError {}

/// Results of the front end.
pub type SqlResult<T> = Result<T, SqlError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_caret_under_the_token() {
        let source = "SELECT a\nFROM t WHERE prise > 1";
        let error = SqlError::new("unknown column 'prise'", Span::new(Location::new(2, 14), Location::new(2, 19)));
        let rendered = error.render("q.sql", source);
        assert_eq!(
            rendered,
            "error: unknown column 'prise'\n  --> q.sql:2:14\n  |\n2 | FROM t WHERE prise > 1\n  |              ^^^^^\n"
        );
    }

    #[test]
    fn parser_messages_keep_their_position() {
        let error = SqlError::from_parser(sqlparser::parser::ParserError::ParserError(
            "Expected: an expression, found: FROM at Line: 3, Column: 8".into(),
        ));
        assert_eq!(error.span.start, Location::new(3, 8));
        assert_eq!(error.message, "Expected: an expression, found: FROM");
    }
}
