//! Flink's text forms of datums and changes, shared by every sink.
//!
//! A query that runs on Flink and on carbonflow should write byte-identical
//! files, so the forms follow Flink's: doubles as Java's `Double.toString`,
//! timestamps as `2024-01-01 00:01:00.000`, changes tagged with Flink's
//! `RowKind` short strings (`+I`, `-D`).

use std::borrow::Cow;
use std::fmt;

use carbonflow_core::datum::format_double;
use carbonflow_core::time::{format_interval, format_timestamp};
use carbonflow_core::{Datum, Diff, Row};

/// A datum as a CSV field, before quoting (the CSV writer quotes when needed).
///
/// NULL is the empty field (Flink's default `csv.null-literal`), booleans are
/// `true`/`false`, and everything else is its Flink text form.
pub fn csv_field(datum: &Datum) -> Cow<'_, str> {
    match datum {
        Datum::Null => Cow::Borrowed(""),
        Datum::Bool(value) => Cow::Borrowed(if *value { "true" } else { "false" }),
        Datum::Int(value) => Cow::Owned(value.to_string()),
        Datum::Float(value) => Cow::Owned(format_double(value.get())),
        Datum::Str(value) => Cow::Borrowed(value),
        Datum::Timestamp(millis) => Cow::Owned(format_timestamp(*millis)),
        Datum::Interval(millis) => Cow::Owned(format_interval(*millis)),
    }
}

/// A datum as a JSON value.
///
/// Numbers are JSON numbers, except a non-finite double, which JSON cannot
/// hold: it becomes the string `"NaN"`, `"Infinity"` or `"-Infinity"` (what
/// Flink's JSON format writes). Timestamps and intervals are their text forms.
pub fn json_value(datum: &Datum) -> serde_json::Value {
    use serde_json::Value;
    match datum {
        Datum::Null => Value::Null,
        Datum::Bool(value) => Value::Bool(*value),
        Datum::Int(value) => Value::from(*value),
        Datum::Float(value) => {
            let value = value.get();
            serde_json::Number::from_f64(value).map_or_else(|| Value::String(format_double(value)), Value::Number)
        }
        Datum::Str(value) => Value::String(value.to_string()),
        Datum::Timestamp(millis) => Value::String(format_timestamp(*millis)),
        Datum::Interval(millis) => Value::String(format_interval(*millis)),
    }
}

/// Flink's `RowKind` short string of a change: `+I` for an insertion, `-D`
/// for a retraction. A differential update has no update-before/after pair,
/// so `-U`/`+U` never occur.
pub fn row_kind(diff: Diff) -> &'static str {
    if diff < 0 { "-D" } else { "+I" }
}

/// The print form of a row, `[node1, 2024-01-01 00:00:00.000, 3.5]`: the
/// datums' `Display` forms (NULL as `NULL`) between brackets.
#[derive(Clone, Copy, Debug)]
pub struct PrintRow<'a>(pub &'a Row);

impl fmt::Display for PrintRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE_PAST_NEW_YEAR_2024: i64 = 1_704_067_260_000;

    #[test]
    fn csv_fields_use_flink_text_forms() {
        assert_eq!(csv_field(&Datum::Null), "");
        assert_eq!(csv_field(&Datum::Bool(true)), "true");
        assert_eq!(csv_field(&Datum::Bool(false)), "false");
        assert_eq!(csv_field(&Datum::Int(-42)), "-42");
        assert_eq!(csv_field(&Datum::float(1.0)), "1.0");
        assert_eq!(csv_field(&Datum::float(0.0001)), "1.0E-4");
        assert_eq!(csv_field(&Datum::float(f64::NAN)), "NaN");
        assert_eq!(csv_field(&Datum::string("a,\"b\"")), "a,\"b\"");
        assert_eq!(csv_field(&Datum::Timestamp(MINUTE_PAST_NEW_YEAR_2024)), "2024-01-01 00:01:00.000");
        assert_eq!(csv_field(&Datum::Interval(60_000)), "+0 00:01:00.000");
    }

    #[test]
    fn json_values_are_typed() {
        use serde_json::json;
        assert_eq!(json_value(&Datum::Null), json!(null));
        assert_eq!(json_value(&Datum::Bool(true)), json!(true));
        assert_eq!(json_value(&Datum::Int(7)), json!(7));
        assert_eq!(json_value(&Datum::float(3.5)), json!(3.5));
        assert_eq!(json_value(&Datum::float(f64::NAN)), json!("NaN"));
        assert_eq!(json_value(&Datum::float(f64::INFINITY)), json!("Infinity"));
        assert_eq!(json_value(&Datum::float(f64::NEG_INFINITY)), json!("-Infinity"));
        assert_eq!(json_value(&Datum::string("x\"y")), json!("x\"y"));
        assert_eq!(json_value(&Datum::Timestamp(MINUTE_PAST_NEW_YEAR_2024)), json!("2024-01-01 00:01:00.000"));
        assert_eq!(json_value(&Datum::Interval(-1_000)), json!("-0 00:00:01.000"));
        assert_eq!(serde_json::to_string(&json_value(&Datum::float(1.0))).unwrap(), "1.0");
    }

    #[test]
    fn print_form_brackets_display_forms() {
        let row = Row::new(vec![
            Datum::string("node1"),
            Datum::Timestamp(MINUTE_PAST_NEW_YEAR_2024),
            Datum::float(3.5),
            Datum::Null,
            Datum::Bool(true),
        ]);
        assert_eq!(PrintRow(&row).to_string(), "[node1, 2024-01-01 00:01:00.000, 3.5, NULL, TRUE]");
        assert_eq!(PrintRow(&Row::empty()).to_string(), "[]");
    }

    #[test]
    fn row_kinds_follow_the_sign() {
        assert_eq!(row_kind(1), "+I");
        assert_eq!(row_kind(3), "+I");
        assert_eq!(row_kind(-2), "-D");
    }
}
