//! Types and schemas of tables and views.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A column type. SQL type names map onto these (see [`DataType::from_sql_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// BOOLEAN.
    Bool,
    /// TINYINT, SMALLINT, INT, BIGINT: a signed 64-bit integer.
    Int,
    /// FLOAT, DOUBLE, DECIMAL: a 64-bit float.
    Float,
    /// STRING, VARCHAR, CHAR.
    String,
    /// TIMESTAMP(p), TIMESTAMP_LTZ(p): UTC milliseconds.
    Timestamp,
    /// INTERVAL: milliseconds.
    Interval,
    /// The type of a bare NULL literal, compatible with every type.
    Null,
}

impl DataType {
    /// Whether values of this type are numbers (integers or floats).
    pub fn is_numeric(self) -> bool {
        matches!(self, DataType::Int | DataType::Float | DataType::Null)
    }

    /// The SQL name shown in plans and errors.
    pub fn sql_name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOLEAN",
            DataType::Int => "BIGINT",
            DataType::Float => "DOUBLE",
            DataType::String => "STRING",
            DataType::Timestamp => "TIMESTAMP(3)",
            DataType::Interval => "INTERVAL",
            DataType::Null => "NULL",
        }
    }

    /// Whether a value of `self` can stand where `other` is expected without a cast.
    pub fn coerces_to(self, other: DataType) -> bool {
        self == other || self == DataType::Null || (self == DataType::Int && other == DataType::Float)
    }

    /// The common type of two branches (CASE, COALESCE, arithmetic), if any.
    pub fn unify(self, other: DataType) -> Option<DataType> {
        if self.coerces_to(other) {
            Some(other)
        } else if other.coerces_to(self) {
            Some(self)
        } else {
            None
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// A named, typed column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    /// The column name as declared (matching is case-insensitive).
    pub name: String,
    /// The column type.
    pub data_type: DataType,
    /// Whether the column may hold NULL.
    pub nullable: bool,
}

impl Field {
    /// A nullable column.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        Field {
            name: name.into(),
            data_type,
            nullable: true,
        }
    }
}

/// The columns of a table or view, in row order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schema {
    /// The columns.
    pub fields: Vec<Field>,
}

impl Schema {
    /// A schema of these columns.
    pub fn new(fields: Vec<Field>) -> Self {
        Schema { fields }
    }

    /// The index of the column named `name` (case-insensitive), if any.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|field| field.name.eq_ignore_ascii_case(name))
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The column names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|field| field.name.as_str())
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}", field.name, field.data_type)?;
        }
        f.write_str(")")
    }
}
