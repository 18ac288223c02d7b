//! `DEFINE` conditions compiled for the matcher, which evaluates them for
//! every thread at every row it examines.
//!
//! [`Scope::eval`] walks a [`MatchExpr`] tree and decides at every node what
//! the node is and, for a navigation, which row it reads. In a condition most
//! of that is known when the recognizer is built: `C.price` in `C`'s own
//! condition is always the row being classified, `A.price` is the latest row
//! mapped to `A` in the thread's key, a literal is a constant. A [`Condition`]
//! makes those decisions once, in two forms:
//!
//! * **The general form** keeps one closure per node for literals, binary
//!   operators and `LAST(.., 0)` navigations without a physical offset
//!   (`var.column`, `column`); every other node (aggregates, `PREV`/`NEXT`,
//!   `FIRST`, `CASE`, calls …) is evaluated by [`Scope::eval`] on its
//!   subtree, so the two share the semantics of everything else.
//! * **The float form**, for conditions that compare float arithmetic over
//!   such navigations and literals, joined by `AND` / `OR` (prices:
//!   `C.price > 1.5 * A.price`), computes on [`F64`] without building a [`Datum`]. It
//!   gives up (`None`) as soon as a value is not a float (NULL, an integer, a
//!   missing row), and the general form decides instead. Where it does
//!   decide it computes what `float_binary` computes, and float arithmetic
//!   cannot fail, so both forms agree on every row.

use std::fmt;

use carbonflow_core::{Datum, F64, scalar};

use super::expr::{BinaryOp, EvalError, Labels, Logical, MatchExpr, Navigation, Scope, Semantics, float_binary};
use super::matcher::KeyLabels;
use super::pattern::VarId;

/// A compiled node: its value in the scope of a thread at the row being classified.
type Eval = Box<dyn for<'s, 'r, 'k> Fn(&'s Scope<'r, KeyLabels<'k>>) -> Result<Datum, EvalError> + Send + Sync>;

/// The `DEFINE` condition of one variable, compiled. See the module documentation.
pub(super) struct Condition {
    general: Eval,
    float: Option<FloatTest>,
    /// The condition as written, for `Debug` and to compile copies.
    source: MatchExpr,
    var: VarId,
}

impl Condition {
    /// Compiles `source`, the condition of `var`.
    pub(super) fn new(source: MatchExpr, var: VarId) -> Condition {
        Condition {
            general: compile(&source, var),
            float: FloatTest::new(&source, var),
            source,
            var,
        }
    }

    /// Whether the condition is TRUE (not FALSE, not NULL) in `scope`,
    /// exactly as [`Scope::holds`] decides it.
    pub(super) fn holds(&self, scope: &Scope<'_, KeyLabels<'_>>) -> Result<bool, EvalError> {
        if let Some(decided) = self.float.as_ref().and_then(|test| test.eval(scope)) {
            return Ok(decided);
        }
        Ok(matches!((self.general)(scope)?, Datum::Bool(true)))
    }
}

impl Clone for Condition {
    fn clone(&self) -> Self {
        Condition::new(self.source.clone(), self.var)
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").field("source", &self.source).field("var", &self.var).finish()
    }
}

/// A column read in place: of the row being classified, or of the latest
/// row mapped to another variable.
#[derive(Clone, Copy, Debug)]
enum Read {
    Current(usize),
    Latest(VarId, usize),
}

/// NULL, for a navigation that leads nowhere.
static NULL: Datum = Datum::Null;

impl Read {
    /// `expr` inside the condition of `own`, if it is a `LAST(.., 0)`
    /// navigation without a physical offset.
    fn new(expr: &MatchExpr, own: VarId) -> Option<Read> {
        let &MatchExpr::Column(Navigation {
            var,
            column,
            logical: Logical::Last(0),
            physical: 0,
            semantics: Semantics::Running,
        }) = expr
        else {
            return None;
        };
        Some(match var {
            // The row being classified is mapped to `own`, and without a
            // physical offset the read cannot leave the partition.
            None => Read::Current(column),
            Some(var) if var == own => Read::Current(column),
            Some(var) => Read::Latest(var, column),
        })
    }

    fn datum<'a>(self, scope: &'a Scope<'_, KeyLabels<'_>>) -> &'a Datum {
        match self {
            Read::Current(column) => scope.rows[scope.current].get(column),
            Read::Latest(var, column) => scope.labels.latest(var, scope.current).map_or(&NULL, |row| scope.rows[row].get(column)),
        }
    }
}

/// Gives a closure the signature of [`Eval`] (closures passed to a function
/// with a higher-ranked bound get their signature from it).
fn node(eval: impl for<'s, 'r, 'k> Fn(&'s Scope<'r, KeyLabels<'k>>) -> Result<Datum, EvalError> + Send + Sync + 'static) -> Eval {
    Box::new(eval)
}

/// The general form of `expr` inside the condition of `own`.
fn compile(expr: &MatchExpr, own: VarId) -> Eval {
    if let Some(read) = Read::new(expr, own) {
        return node(move |scope| Ok(read.datum(scope).clone()));
    }
    match expr {
        MatchExpr::Literal(value) => {
            let value = value.clone();
            node(move |_| Ok(value.clone()))
        }
        MatchExpr::Binary { op, left, right } => {
            let (op, left, right) = (*op, compile(left, own), compile(right, own));
            node(move |scope| {
                let left = left(scope)?;
                // FALSE AND x is FALSE and TRUE OR x is TRUE whatever x is: skip evaluating it.
                if let (BinaryOp::And, Datum::Bool(false)) | (BinaryOp::Or, Datum::Bool(true)) = (op, &left) {
                    return Ok(left);
                }
                let right = right(scope)?;
                match float_binary(op, &left, &right) {
                    Some(value) => Ok(value),
                    None => scalar::binary(op, left, right),
                }
            })
        }
        other => {
            let other = other.clone();
            node(move |scope| scope.eval(&other))
        }
    }
}

/// The float form of a condition: comparisons of [`FloatValue`]s joined by `AND` / `OR`.
#[derive(Debug)]
enum FloatTest {
    Compare(BinaryOp, FloatValue, FloatValue),
    And(Box<FloatTest>, Box<FloatTest>),
    Or(Box<FloatTest>, Box<FloatTest>),
}

impl FloatTest {
    fn new(expr: &MatchExpr, own: VarId) -> Option<FloatTest> {
        let MatchExpr::Binary { op, left, right } = expr else {
            return None;
        };
        Some(match op {
            BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => {
                FloatTest::Compare(*op, FloatValue::new(left, own)?, FloatValue::new(right, own)?)
            }
            BinaryOp::And => FloatTest::And(Box::new(FloatTest::new(left, own)?), Box::new(FloatTest::new(right, own)?)),
            BinaryOp::Or => FloatTest::Or(Box::new(FloatTest::new(left, own)?), Box::new(FloatTest::new(right, own)?)),
            _ => return None,
        })
    }

    /// The truth of the test, or `None` where a value is not a float.
    /// `AND` / `OR` decide by their left side first, as the general form
    /// does, so a right side it would not evaluate cannot make this give up.
    fn eval(&self, scope: &Scope<'_, KeyLabels<'_>>) -> Option<bool> {
        match self {
            FloatTest::Compare(op, left, right) => {
                let ordering = left.eval(scope)?.cmp(&right.eval(scope)?);
                Some(match op {
                    BinaryOp::Eq => ordering.is_eq(),
                    BinaryOp::NotEq => ordering.is_ne(),
                    BinaryOp::Lt => ordering.is_lt(),
                    BinaryOp::LtEq => ordering.is_le(),
                    BinaryOp::Gt => ordering.is_gt(),
                    _ => ordering.is_ge(),
                })
            }
            FloatTest::And(left, right) => match left.eval(scope)? {
                false => Some(false),
                true => right.eval(scope),
            },
            FloatTest::Or(left, right) => match left.eval(scope)? {
                true => Some(true),
                false => right.eval(scope),
            },
        }
    }
}

/// Float arithmetic over literals and in-place reads.
#[derive(Debug)]
enum FloatValue {
    Literal(F64),
    Read(Read),
    Arithmetic(BinaryOp, Box<FloatValue>, Box<FloatValue>),
}

impl FloatValue {
    fn new(expr: &MatchExpr, own: VarId) -> Option<FloatValue> {
        if let Some(read) = Read::new(expr, own) {
            return Some(FloatValue::Read(read));
        }
        Some(match expr {
            MatchExpr::Literal(Datum::Float(value)) => FloatValue::Literal(*value),
            MatchExpr::Binary { op, left, right }
                if matches!(
                    op,
                    BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide | BinaryOp::Modulo
                ) =>
            {
                FloatValue::Arithmetic(*op, Box::new(FloatValue::new(left, own)?), Box::new(FloatValue::new(right, own)?))
            }
            _ => return None,
        })
    }

    /// The value, or `None` where a read is not a float.
    fn eval(&self, scope: &Scope<'_, KeyLabels<'_>>) -> Option<F64> {
        match self {
            FloatValue::Literal(value) => Some(*value),
            FloatValue::Read(read) => match read.datum(scope) {
                Datum::Float(value) => Some(*value),
                _ => None,
            },
            FloatValue::Arithmetic(op, left, right) => {
                let (left, right) = (left.eval(scope)?.get(), right.eval(scope)?.get());
                Some(F64::new(match op {
                    BinaryOp::Add => left + right,
                    BinaryOp::Subtract => left - right,
                    BinaryOp::Multiply => left * right,
                    BinaryOp::Divide => left / right,
                    _ => left % right,
                }))
            }
        }
    }
}
