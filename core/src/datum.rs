//! Datums and rows: the values every operator reads and writes.
//!
//! Rows must be totally ordered, hashable and serializable because differential
//! dataflow consolidates them (sort + merge equal rows) and timely exchanges
//! them between workers and processes. Floats therefore use [`F64`], a total
//! order over `f64` in which `-0.0 == 0.0` and every NaN is one value.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::{Millis, format_interval, format_timestamp};

/// A shared, immutable string. Cloning it bumps a reference count.
pub type Str = Arc<str>;

/// An `f64` with a total order, equality and hash, so that it can live in rows.
///
/// `-0.0` is stored as `0.0` and every NaN as the canonical NaN, so values that
/// compare equal also hash equal and consolidate.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub struct F64(f64);

impl F64 {
    /// Wraps a float, normalising `-0.0` and NaN payloads.
    pub fn new(value: f64) -> Self {
        if value == 0.0 {
            F64(0.0)
        } else if value.is_nan() {
            F64(f64::NAN)
        } else {
            F64(value)
        }
    }

    /// The wrapped float.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl From<f64> for F64 {
    fn from(value: f64) -> Self {
        F64::new(value)
    }
}

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for F64 {}

impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for F64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Hash for F64 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

impl fmt::Debug for F64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// One typed value.
///
/// The variant order is the sort order across types (NULL first, like
/// `NULLS FIRST`); within a type the natural order applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Datum {
    /// SQL NULL.
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// Every integer type (TINYINT to BIGINT), as a signed 64-bit integer.
    Int(i64),
    /// FLOAT, DOUBLE and DECIMAL, as a 64-bit float.
    Float(F64),
    /// STRING, VARCHAR and CHAR.
    Str(Str),
    /// TIMESTAMP(p) and TIMESTAMP_LTZ(p): milliseconds since the Unix epoch, UTC.
    Timestamp(Millis),
    /// INTERVAL DAY TO SECOND, in milliseconds.
    Interval(Millis),
}

impl Datum {
    /// A float datum.
    pub fn float(value: f64) -> Self {
        Datum::Float(F64::new(value))
    }

    /// A string datum (allocates; use an [`crate::Interner`] on hot paths).
    pub fn string(value: &str) -> Self {
        Datum::Str(Arc::from(value))
    }

    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// The value as a float, widening integers; `None` for NULL and non-numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Datum::Int(v) => Some(*v as f64),
            Datum::Float(v) => Some(v.get()),
            _ => None,
        }
    }

    /// The value as an integer; `None` for NULL and non-integers.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Datum::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a bool; `None` for NULL and non-booleans.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Datum::Bool(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a string slice; `None` for NULL and non-strings.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Datum::Str(v) => Some(v),
            _ => None,
        }
    }

    /// The value as event time in milliseconds; `None` for NULL and non-timestamps.
    pub fn as_timestamp(&self) -> Option<Millis> {
        match self {
            Datum::Timestamp(v) => Some(*v),
            _ => None,
        }
    }
}

/// Flink SQL client's text form: `NULL` is `<NULL>`-free here (empty string in
/// CSV is the sink's business), timestamps as `2024-01-01 00:01:00.000`,
/// doubles in Java's shortest round-trip form (`1.0`, `2.5E-4`).
impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Null => f.write_str("NULL"),
            Datum::Bool(v) => f.write_str(if *v { "TRUE" } else { "FALSE" }),
            Datum::Int(v) => write!(f, "{v}"),
            Datum::Float(v) => f.write_str(&format_double(v.get())),
            Datum::Str(v) => f.write_str(v),
            Datum::Timestamp(v) => f.write_str(&format_timestamp(*v)),
            Datum::Interval(v) => f.write_str(&format_interval(*v)),
        }
    }
}

/// Formats a double the way Java's `Double.toString` does, which is what Flink
/// writes: at least one decimal digit, scientific notation below 1e-3 and at
/// or above 1e7.
pub fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let magnitude = value.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{value}");
        if text.contains('.') { text } else { format!("{text}.0") }
    } else {
        // Rust's `{:e}` gives the shortest round-trip mantissa: `1.5e-5`.
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').expect("exponent form");
        let mantissa = if mantissa.contains('.') {
            mantissa.to_owned()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exponent}")
    }
}

/// A row: the datums of one record, in schema order.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Row(Box<[Datum]>);

impl Row {
    /// A row holding these datums.
    pub fn new(datums: Vec<Datum>) -> Self {
        Row(datums.into_boxed_slice())
    }

    /// The empty row (the group key of a global aggregate).
    pub fn empty() -> Self {
        Row::default()
    }

    /// The datums in schema order.
    pub fn datums(&self) -> &[Datum] {
        &self.0
    }

    /// The datum at `index`. Panics when out of range: the planner checks indices.
    pub fn get(&self, index: usize) -> &Datum {
        &self.0[index]
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The datums, by value.
    pub fn into_vec(self) -> Vec<Datum> {
        self.0.into_vec()
    }

    /// A new row with the datums at `indices`, in that order.
    pub fn project(&self, indices: &[usize]) -> Row {
        Row(indices.iter().map(|&i| self.0[i].clone()).collect())
    }
}

impl From<Vec<Datum>> for Row {
    fn from(datums: Vec<Datum>) -> Self {
        Row::new(datums)
    }
}

impl FromIterator<Datum> for Row {
    fn from_iter<I: IntoIterator<Item = Datum>>(iter: I) -> Self {
        Row(iter.into_iter().collect())
    }
}

/// Maps keyed by rows can be probed with a borrowed slice of datums (a key
/// assembled in a reused buffer), without building a row first. A row hashes
/// and compares as its datums do, so the two agree.
impl std::borrow::Borrow<[Datum]> for Row {
    fn borrow(&self) -> &[Datum] {
        &self.0
    }
}

impl std::ops::Deref for Row {
    type Target = [Datum];
    fn deref(&self) -> &[Datum] {
        &self.0
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// Comma-separated datums, as the print sink shows them.
impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, datum) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{datum}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_zero_and_nan_are_normalised() {
        assert_eq!(F64::new(-0.0), F64::new(0.0));
        assert_eq!(F64::new(f64::NAN), F64::new(-f64::NAN));
        let mut a = std::collections::hash_map::DefaultHasher::new();
        let mut b = std::collections::hash_map::DefaultHasher::new();
        F64::new(-0.0).hash(&mut a);
        F64::new(0.0).hash(&mut b);
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(format_double(1.0), "1.0");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(0.001), "0.001");
        assert_eq!(format_double(0.0001), "1.0E-4");
        assert_eq!(format_double(1.5e-5), "1.5E-5");
        assert_eq!(format_double(12345678.0), "1.2345678E7");
        assert_eq!(format_double(9999999.0), "9999999.0");
        assert_eq!(format_double(0.0), "0.0");
        assert_eq!(format_double(33.333333333333336), "33.333333333333336");
    }

    #[test]
    fn null_sorts_first() {
        assert!(Datum::Null < Datum::Int(i64::MIN));
        assert!(Datum::Int(3) < Datum::Int(4));
    }
}
