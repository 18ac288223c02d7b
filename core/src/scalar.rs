//! Scalar operators on datums with SQL's semantics: the one definition of
//! arithmetic, comparison and three-valued logic that the engine's
//! expressions and the CEP core both evaluate with.
//!
//! * NULL in gives NULL out (except `FALSE AND NULL`, `TRUE OR NULL`).
//! * BIGINT arithmetic is checked: overflow and integer division by zero are
//!   errors, so the row is dead-lettered rather than silently wrong.
//! * A DOUBLE on either side makes the result DOUBLE.
//! * Timestamps and intervals add and subtract (saturating at the range).

use std::cmp::Ordering;

use crate::datum::Datum;

/// A failure evaluating an expression on a row.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Subtract,
    /// `*`
    Multiply,
    /// `/`
    Divide,
    /// `%`
    Modulo,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND`, three-valued.
    And,
    /// `OR`, three-valued.
    Or,
    /// `||`
    Concat,
}

impl BinaryOp {
    /// The operator as written in SQL.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Subtract => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Concat => "||",
        }
    }

    /// Whether the operator compares its operands.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq
        )
    }
}

/// Compares two values; integers and floats compare numerically. `None` when
/// either is NULL; an error when the types cannot be compared.
pub fn compare(left: &Datum, right: &Datum) -> Result<Option<Ordering>, EvalError> {
    Ok(Some(match (left, right) {
        (Datum::Null, _) | (_, Datum::Null) => return Ok(None),
        (Datum::Int(l), Datum::Float(r)) => (*l as f64).total_cmp(&r.get()),
        (Datum::Float(l), Datum::Int(r)) => l.get().total_cmp(&(*r as f64)),
        _ if std::mem::discriminant(left) == std::mem::discriminant(right) => left.cmp(right),
        _ => return Err(EvalError(format!("cannot compare '{left}' with '{right}'"))),
    }))
}

/// A boolean operand: `None` for NULL.
pub fn truth(value: &Datum) -> Result<Option<bool>, EvalError> {
    match value {
        Datum::Null => Ok(None),
        Datum::Bool(value) => Ok(Some(*value)),
        other => Err(EvalError(format!("expected a boolean, found '{other}'"))),
    }
}

/// Applies `op` to two evaluated operands. (Callers that can skip evaluating
/// the right side of `AND`/`OR` do so before calling this.)
pub fn binary(op: BinaryOp, left: Datum, right: Datum) -> Result<Datum, EvalError> {
    use BinaryOp::*;
    if let And | Or = op {
        let (l, r) = (truth(&left)?, truth(&right)?);
        return Ok(match (op, l, r) {
            (And, Some(false), _) | (And, _, Some(false)) => Datum::Bool(false),
            (And, Some(true), Some(true)) => Datum::Bool(true),
            (Or, Some(true), _) | (Or, _, Some(true)) => Datum::Bool(true),
            (Or, Some(false), Some(false)) => Datum::Bool(false),
            _ => Datum::Null,
        });
    }
    if left.is_null() || right.is_null() {
        return Ok(Datum::Null);
    }
    if op.is_comparison() {
        let ordering = compare(&left, &right)?.expect("both are non-null");
        return Ok(Datum::Bool(match op {
            Eq => ordering.is_eq(),
            NotEq => ordering.is_ne(),
            Lt => ordering.is_lt(),
            LtEq => ordering.is_le(),
            Gt => ordering.is_gt(),
            _ => ordering.is_ge(),
        }));
    }
    let overflow = || EvalError(format!("integer overflow in {}", op.symbol()));
    Ok(match (op, left, right) {
        (Concat, l, r) => Datum::string(&format!("{l}{r}")),
        (Add, Datum::Int(l), Datum::Int(r)) => Datum::Int(l.checked_add(r).ok_or_else(overflow)?),
        (Subtract, Datum::Int(l), Datum::Int(r)) => Datum::Int(l.checked_sub(r).ok_or_else(overflow)?),
        (Multiply, Datum::Int(l), Datum::Int(r)) => Datum::Int(l.checked_mul(r).ok_or_else(overflow)?),
        (Divide | Modulo, Datum::Int(_), Datum::Int(0)) => return Err(EvalError("integer division by zero".into())),
        (Divide, Datum::Int(l), Datum::Int(r)) => Datum::Int(l.checked_div(r).ok_or_else(overflow)?),
        (Modulo, Datum::Int(l), Datum::Int(r)) => Datum::Int(l.checked_rem(r).ok_or_else(overflow)?),
        (Add, Datum::Timestamp(t), Datum::Interval(i)) | (Add, Datum::Interval(i), Datum::Timestamp(t)) => Datum::Timestamp(t.saturating_add(i)),
        (Subtract, Datum::Timestamp(t), Datum::Interval(i)) => Datum::Timestamp(t.saturating_sub(i)),
        (Subtract, Datum::Timestamp(l), Datum::Timestamp(r)) => Datum::Interval(l.saturating_sub(r)),
        (Add, Datum::Interval(l), Datum::Interval(r)) => Datum::Interval(l.saturating_add(r)),
        (Subtract, Datum::Interval(l), Datum::Interval(r)) => Datum::Interval(l.saturating_sub(r)),
        (op, left, right) => match (left.as_f64(), right.as_f64()) {
            (Some(l), Some(r)) => Datum::float(match op {
                Add => l + r,
                Subtract => l - r,
                Multiply => l * r,
                Divide => l / r,
                _ => l % r,
            }),
            _ => return Err(EvalError(format!("operator {} does not apply to '{left}' and '{right}'", op.symbol()))),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_valued_logic() {
        assert_eq!(binary(BinaryOp::And, Datum::Null, Datum::Bool(false)).unwrap(), Datum::Bool(false));
        assert_eq!(binary(BinaryOp::Or, Datum::Null, Datum::Bool(false)).unwrap(), Datum::Null);
        assert_eq!(binary(BinaryOp::Or, Datum::Null, Datum::Bool(true)).unwrap(), Datum::Bool(true));
        assert!(binary(BinaryOp::And, Datum::Int(1), Datum::Bool(true)).is_err());
    }

    #[test]
    fn arithmetic_and_comparison() {
        assert_eq!(binary(BinaryOp::Divide, Datum::Int(7), Datum::Int(2)).unwrap(), Datum::Int(3));
        assert!(binary(BinaryOp::Divide, Datum::Int(7), Datum::Int(0)).is_err());
        assert!(binary(BinaryOp::Add, Datum::Int(i64::MAX), Datum::Int(1)).is_err());
        assert_eq!(binary(BinaryOp::Multiply, Datum::Int(3), Datum::float(1.5)).unwrap(), Datum::float(4.5));
        assert_eq!(binary(BinaryOp::Lt, Datum::Int(1), Datum::float(1.5)).unwrap(), Datum::Bool(true));
        assert_eq!(binary(BinaryOp::Eq, Datum::Null, Datum::Int(1)).unwrap(), Datum::Null);
        assert!(compare(&Datum::Int(1), &Datum::string("1")).is_err());
        assert_eq!(
            binary(BinaryOp::Subtract, Datum::Timestamp(10), Datum::Interval(3)).unwrap(),
            Datum::Timestamp(7)
        );
    }
}
