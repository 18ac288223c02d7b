//! Text fields to datums: how a CSV field, or a string in a JSON or
//! MessagePack object, becomes a value of its declared column type.
//!
//! The rules follow Flink's CSV format: an empty field is NULL for every type
//! but STRING (where it is the empty string), booleans are case-insensitive,
//! numbers may be padded with spaces, DOUBLE accepts whatever `f64`'s parser
//! accepts (`1`, `1.5`, `-2e3`, `NaN`, `inf`) and timestamps take the forms of
//! [`carbonflow_core::time::parse_timestamp`]. Parsing works on bytes and
//! allocates nothing except new, not yet interned strings.

use carbonflow_core::time::parse_timestamp;
use carbonflow_core::{DataType, Datum, Field, Interner, OptionError};

/// Fails for a column type that text formats cannot carry.
pub(super) fn check_text_column(field: &Field, format: &str) -> Result<(), OptionError> {
    match field.data_type {
        DataType::Bool | DataType::Int | DataType::Float | DataType::String | DataType::Timestamp => Ok(()),
        DataType::Interval | DataType::Null => Err(OptionError::Column {
            column: field.name.clone(),
            message: format!("type {} is not supported by the {format} format", field.data_type),
        }),
    }
}

/// Parses one field as a value of `data_type`; `None` when it does not parse.
pub(super) fn parse_field(bytes: &[u8], data_type: DataType, interner: &mut Interner) -> Option<Datum> {
    if data_type == DataType::String {
        return std::str::from_utf8(bytes).ok().map(|text| Datum::Str(interner.intern(text)));
    }
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Some(Datum::Null);
    }
    match data_type {
        DataType::Bool => {
            if text.eq_ignore_ascii_case(b"true") {
                Some(Datum::Bool(true))
            } else if text.eq_ignore_ascii_case(b"false") {
                Some(Datum::Bool(false))
            } else {
                None
            }
        }
        DataType::Int => utf8(text)?.parse::<i64>().ok().map(Datum::Int),
        DataType::Float => utf8(text)?.parse::<f64>().ok().map(Datum::float),
        DataType::Timestamp => parse_timestamp(utf8(text)?).map(Datum::Timestamp),
        // Validation rejects these columns before any file is read.
        DataType::String | DataType::Interval | DataType::Null => None,
    }
}

fn utf8(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// The dead-letter detail for a field that did not parse.
pub(super) fn field_error(column: &str, data_type: DataType, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if data_type == DataType::String {
        format!("column {column}: '{text}' is not valid UTF-8")
    } else {
        format!("column {column}: '{text}' is not a {}", data_type.sql_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, data_type: DataType) -> Option<Datum> {
        parse_field(text.as_bytes(), data_type, &mut Interner::default())
    }

    #[test]
    fn parses_each_type_like_flink() {
        assert_eq!(parse("TRUE", DataType::Bool), Some(Datum::Bool(true)));
        assert_eq!(parse(" false ", DataType::Bool), Some(Datum::Bool(false)));
        assert_eq!(parse("yes", DataType::Bool), None);
        assert_eq!(parse(" -42 ", DataType::Int), Some(Datum::Int(-42)));
        assert_eq!(parse("4.2", DataType::Int), None);
        assert_eq!(parse("9223372036854775808", DataType::Int), None);
        assert_eq!(parse("1", DataType::Float), Some(Datum::float(1.0)));
        assert_eq!(parse("-2e3", DataType::Float), Some(Datum::float(-2000.0)));
        assert_eq!(parse("NaN", DataType::Float), Some(Datum::float(f64::NAN)));
        assert_eq!(parse("abc", DataType::Float), None);
        assert_eq!(parse("2024-01-01 00:00:00.025", DataType::Timestamp), Some(Datum::Timestamp(1_704_067_200_025)));
        assert_eq!(parse("yesterday", DataType::Timestamp), None);
        assert_eq!(parse(" padded ", DataType::String), Some(Datum::string(" padded ")));
    }

    #[test]
    fn empty_is_null_except_for_strings() {
        for data_type in [DataType::Bool, DataType::Int, DataType::Float, DataType::Timestamp] {
            assert_eq!(parse("", data_type), Some(Datum::Null));
            assert_eq!(parse("  ", data_type), Some(Datum::Null));
        }
        assert_eq!(parse("", DataType::String), Some(Datum::string("")));
    }

    #[test]
    fn strings_are_interned_and_must_be_utf8() {
        let mut interner = Interner::default();
        let (Some(Datum::Str(a)), Some(Datum::Str(b))) = (
            parse_field(b"PJM-WH", DataType::String, &mut interner),
            parse_field(b"PJM-WH", DataType::String, &mut interner),
        ) else {
            panic!("strings parse");
        };
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert_eq!(parse_field(b"\xff", DataType::String, &mut interner), None);
        assert_eq!(field_error("node", DataType::String, b"\xff"), "column node: '\u{fffd}' is not valid UTF-8");
        assert_eq!(field_error("price", DataType::Float, b"abc"), "column price: 'abc' is not a DOUBLE");
    }

    #[test]
    fn intervals_are_rejected_at_validation() {
        let error = check_text_column(&Field::new("gap", DataType::Interval), "csv").unwrap_err();
        assert_eq!(error.column(), Some("gap"));
        assert!(check_text_column(&Field::new("ts", DataType::Timestamp), "csv").is_ok());
    }
}
