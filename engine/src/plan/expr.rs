//! Typed scalar expressions, checked by the planner and evaluated per row.
//!
//! An [`Expr`] refers to input columns by index; the planner resolved every
//! name and type before one is built, so evaluation never looks anything up.
//! Evaluation can still fail on data (a string that does not cast, an integer
//! division by zero): the row then goes to the dead-letter output.

use std::fmt;

use carbonflow_core::time::{format_timestamp, parse_timestamp};
use carbonflow_core::{DataType, Datum, Millis, scalar};

use super::functions::Function;

pub use carbonflow_core::scalar::{BinaryOp, EvalError};

/// A checked scalar expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// The input column at this index.
    Column(usize),
    /// A constant.
    Literal(Datum),
    /// `left op right`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// The left operand.
        left: Box<Expr>,
        /// The right operand.
        right: Box<Expr>,
    },
    /// `NOT e`.
    Not(Box<Expr>),
    /// `-e`.
    Negate(Box<Expr>),
    /// `e IS NULL` (or `IS NOT NULL` when `negated`).
    IsNull {
        /// The operand.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `e [NOT] IN (list)`.
    InList {
        /// The operand.
        expr: Box<Expr>,
        /// The candidates.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] LIKE pattern`.
    Like {
        /// The operand.
        expr: Box<Expr>,
        /// The pattern (`%` and `_` wildcards).
        pattern: Box<Expr>,
        /// `NOT LIKE`.
        negated: bool,
    },
    /// `CASE WHEN c THEN v ... ELSE e END` (a simple CASE is rewritten to this form).
    Case {
        /// The `(condition, value)` branches, in order.
        branches: Vec<(Expr, Expr)>,
        /// The `ELSE` value (NULL when absent).
        otherwise: Box<Expr>,
    },
    /// `CAST(e AS type)`.
    Cast {
        /// The operand.
        expr: Box<Expr>,
        /// The target type.
        to: DataType,
    },
    /// A scalar function call.
    Call {
        /// The function.
        function: Function,
        /// The arguments.
        args: Vec<Expr>,
    },
}

impl Expr {
    /// Evaluates the expression on a row.
    pub fn eval(&self, row: &[Datum]) -> Result<Datum, EvalError> {
        match self {
            Expr::Column(index) => Ok(row[*index].clone()),
            Expr::Literal(datum) => Ok(datum.clone()),
            Expr::Binary { op, left, right } => {
                let left = left.eval(row)?;
                // FALSE AND x is FALSE and TRUE OR x is TRUE whatever x is: skip evaluating it.
                match (op, &left) {
                    (BinaryOp::And, Datum::Bool(false)) | (BinaryOp::Or, Datum::Bool(true)) => Ok(left),
                    _ => scalar::binary(*op, left, right.eval(row)?),
                }
            }
            Expr::Not(expr) => Ok(match expr.eval(row)? {
                Datum::Bool(v) => Datum::Bool(!v),
                _ => Datum::Null,
            }),
            Expr::Negate(expr) => Ok(match expr.eval(row)? {
                Datum::Int(v) => Datum::Int(v.checked_neg().ok_or_else(|| EvalError("integer overflow in negation".into()))?),
                Datum::Float(v) => Datum::float(-v.get()),
                Datum::Interval(v) => Datum::Interval(-v),
                _ => Datum::Null,
            }),
            Expr::IsNull { expr, negated } => Ok(Datum::Bool(expr.eval(row)?.is_null() != *negated)),
            Expr::InList { expr, list, negated } => {
                let value = expr.eval(row)?;
                if value.is_null() {
                    return Ok(Datum::Null);
                }
                let mut saw_null = false;
                for candidate in list {
                    let candidate = candidate.eval(row)?;
                    match scalar::compare(&value, &candidate)? {
                        Some(std::cmp::Ordering::Equal) => return Ok(Datum::Bool(!negated)),
                        None => saw_null = true,
                        _ => {}
                    }
                }
                Ok(if saw_null { Datum::Null } else { Datum::Bool(*negated) })
            }
            Expr::Like { expr, pattern, negated } => match (expr.eval(row)?, pattern.eval(row)?) {
                (Datum::Str(text), Datum::Str(pattern)) => Ok(Datum::Bool(like(&text, &pattern) != *negated)),
                _ => Ok(Datum::Null),
            },
            Expr::Case { branches, otherwise } => {
                for (condition, value) in branches {
                    if condition.eval(row)? == Datum::Bool(true) {
                        return value.eval(row);
                    }
                }
                otherwise.eval(row)
            }
            Expr::Cast { expr, to } => cast(expr.eval(row)?, *to),
            Expr::Call { function, args } => {
                let values = args.iter().map(|arg| arg.eval(row)).collect::<Result<Vec<_>, _>>()?;
                function.eval(&values)
            }
        }
    }

    /// The highest input column the expression reads, if it reads any.
    pub fn max_column(&self) -> Option<usize> {
        let children: Vec<&Expr> = match self {
            Expr::Column(index) => return Some(*index),
            Expr::Literal(_) => return None,
            Expr::Binary { left, right, .. } => vec![left, right],
            Expr::Not(expr) | Expr::Negate(expr) | Expr::IsNull { expr, .. } | Expr::Cast { expr, .. } => vec![expr],
            Expr::InList { expr, list, .. } => std::iter::once(expr.as_ref()).chain(list).collect(),
            Expr::Like { expr, pattern, .. } => vec![expr, pattern],
            Expr::Case { branches, otherwise } => branches.iter().flat_map(|(c, v)| [c, v]).chain(std::iter::once(otherwise.as_ref())).collect(),
            Expr::Call { args, .. } => args.iter().collect(),
        };
        children.into_iter().filter_map(Expr::max_column).max()
    }

    /// The column index if this is a bare column reference.
    pub fn as_column(&self) -> Option<usize> {
        match self {
            Expr::Column(index) => Some(*index),
            _ => None,
        }
    }
}

/// `CAST`: the conversions Flink allows between our types. A string that does
/// not parse is an error (the row is dead-lettered), as in Flink's CAST.
pub fn cast(value: Datum, to: DataType) -> Result<Datum, EvalError> {
    let fail = |value: &Datum| EvalError(format!("cannot cast '{value}' to {to}"));
    Ok(match (value, to) {
        (Datum::Null, _) => Datum::Null,
        (value @ Datum::Bool(_), DataType::Bool) | (value @ Datum::Int(_), DataType::Int) | (value @ Datum::Float(_), DataType::Float) => value,
        (value @ Datum::Str(_), DataType::String) | (value @ Datum::Timestamp(_), DataType::Timestamp) | (value @ Datum::Interval(_), DataType::Interval) => {
            value
        }
        (Datum::Int(v), DataType::Float) => Datum::float(v as f64),
        (Datum::Float(v), DataType::Int) => {
            let v = v.get().trunc();
            if v.is_finite() && v >= i64::MIN as f64 && v <= i64::MAX as f64 {
                Datum::Int(v as i64)
            } else {
                return Err(fail(&Datum::float(v)));
            }
        }
        (Datum::Bool(v), DataType::Int) => Datum::Int(i64::from(v)),
        (Datum::Int(v), DataType::Bool) => Datum::Bool(v != 0),
        (Datum::Timestamp(t), DataType::Int) => Datum::Int(t.div_euclid(1000)),
        (Datum::Int(v), DataType::Timestamp) => Datum::Timestamp(v.saturating_mul(1000)),
        (Datum::Str(text), target) => {
            let trimmed = text.trim();
            let parsed = match target {
                DataType::Int => trimmed.parse().ok().map(Datum::Int),
                DataType::Float => trimmed.parse().ok().map(Datum::float),
                DataType::Bool => match trimmed.to_ascii_lowercase().as_str() {
                    "true" => Some(Datum::Bool(true)),
                    "false" => Some(Datum::Bool(false)),
                    _ => None,
                },
                DataType::Timestamp => parse_timestamp(trimmed).map(Datum::Timestamp),
                _ => None,
            };
            return parsed.ok_or_else(|| fail(&Datum::Str(text)));
        }
        (Datum::Timestamp(t), DataType::String) => Datum::string(&format_timestamp(t)),
        (value, DataType::String) => Datum::string(&value.to_string()),
        (value, _) => return Err(fail(&value)),
    })
}

/// SQL `LIKE` with `%` (any run) and `_` (one character).
fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last `%`.
    let (mut t, mut p, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '%' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '%')
}

/// Milliseconds in a unit of `INTERVAL 'n' UNIT`.
pub fn unit_millis(unit: &str) -> Option<Millis> {
    Some(match unit.to_ascii_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        "WEEK" => 7 * 86_400_000,
        _ => return None,
    })
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(index) => write!(f, "${index}"),
            Expr::Literal(Datum::Str(text)) => write!(f, "'{text}'"),
            Expr::Literal(datum) => write!(f, "{datum}"),
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(expr) => write!(f, "NOT {expr}"),
            Expr::Negate(expr) => write!(f, "-{expr}"),
            Expr::IsNull { expr, negated } => write!(f, "{expr} IS {}NULL", if *negated { "NOT " } else { "" }),
            Expr::InList { expr, list, negated } => {
                write!(f, "{expr} {}IN (", if *negated { "NOT " } else { "" })?;
                write_list(f, list)?;
                f.write_str(")")
            }
            Expr::Like { expr, pattern, negated } => write!(f, "{expr} {}LIKE {pattern}", if *negated { "NOT " } else { "" }),
            Expr::Case { branches, otherwise } => {
                f.write_str("CASE")?;
                for (condition, value) in branches {
                    write!(f, " WHEN {condition} THEN {value}")?;
                }
                write!(f, " ELSE {otherwise} END")
            }
            Expr::Cast { expr, to } => write!(f, "CAST({expr} AS {to})"),
            Expr::Call { function, args } => {
                write!(f, "{}(", function.name())?;
                write_list(f, args)?;
                f.write_str(")")
            }
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, list: &[Expr]) -> fmt::Result {
    for (i, expr) in list.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{expr}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(d: Datum) -> Box<Expr> {
        Box::new(Expr::Literal(d))
    }

    #[test]
    fn three_valued_logic() {
        let and = Expr::Binary {
            op: BinaryOp::And,
            left: lit(Datum::Null),
            right: lit(Datum::Bool(false)),
        };
        assert_eq!(and.eval(&[]).unwrap(), Datum::Bool(false));
        let or = Expr::Binary {
            op: BinaryOp::Or,
            left: lit(Datum::Null),
            right: lit(Datum::Bool(false)),
        };
        assert_eq!(or.eval(&[]).unwrap(), Datum::Null);
        let not_in = Expr::InList {
            expr: lit(Datum::Int(1)),
            list: vec![Expr::Literal(Datum::Int(2)), Expr::Literal(Datum::Null)],
            negated: true,
        };
        assert_eq!(not_in.eval(&[]).unwrap(), Datum::Null);
    }

    #[test]
    fn arithmetic_and_errors() {
        let div = Expr::Binary {
            op: BinaryOp::Divide,
            left: lit(Datum::Int(7)),
            right: lit(Datum::Int(2)),
        };
        assert_eq!(div.eval(&[]).unwrap(), Datum::Int(3));
        let by_zero = Expr::Binary {
            op: BinaryOp::Divide,
            left: lit(Datum::Int(7)),
            right: lit(Datum::Int(0)),
        };
        assert!(by_zero.eval(&[]).is_err());
        let mixed = Expr::Binary {
            op: BinaryOp::Multiply,
            left: lit(Datum::Int(3)),
            right: lit(Datum::float(1.5)),
        };
        assert_eq!(mixed.eval(&[]).unwrap(), Datum::float(4.5));
        assert!(cast(Datum::string("abc"), DataType::Float).is_err());
        assert_eq!(cast(Datum::string(" 42 "), DataType::Int).unwrap(), Datum::Int(42));
    }

    #[test]
    fn like_wildcards() {
        assert!(like("PJM-WESTERN HUB", "%HUB"));
        assert!(like("HB_NORTH", "HB\\_NORTH".replace('\\', "").as_str()));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("", "%"));
    }
}
