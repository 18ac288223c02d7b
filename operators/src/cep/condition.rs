//! `DEFINE` conditions compiled into closures, which the matcher calls for
//! every thread at every row it examines.
//!
//! [`Scope::eval`] walks a [`MatchExpr`] tree and decides at every node what
//! the node is and, for a navigation, which row it reads. In a condition most
//! of that is known when the recognizer is built: `C.price` in `C`'s own
//! condition is always the row being classified, `A.price` is the latest row
//! mapped to `A` in the thread's key, a literal is a constant. A [`Condition`]
//! makes those decisions once and keeps one closure per node.
//!
//! Binary operators get their own closures, and their operands are read in
//! place where they are literals or `LAST(.., 0)` navigations without a
//! physical offset (`var.column`, `column`), so a comparison of two prices
//! copies no value. Every other node (aggregates, `PREV`/`NEXT`, `FIRST`,
//! `CASE`, calls …) is evaluated by [`Scope::eval`] on its subtree, so the
//! compiled and the interpreted form share the semantics of everything but
//! those three.

use std::borrow::Cow;
use std::fmt;

use carbonflow_core::{Datum, scalar};

use super::expr::{BinaryOp, EvalError, Labels, Logical, MatchExpr, Navigation, Scope, Semantics, float_binary};
use super::matcher::KeyLabels;
use super::pattern::VarId;

/// A compiled node: its value in the scope of a thread at the row being classified.
type Eval = Box<dyn for<'s, 'r, 'k> Fn(&'s Scope<'r, KeyLabels<'k>>) -> Result<Datum, EvalError> + Send + Sync>;

/// The `DEFINE` condition of one variable, compiled. See the module documentation.
pub(super) struct Condition {
    eval: Eval,
    /// The condition as written, for `Debug` and to compile copies.
    source: MatchExpr,
    var: VarId,
}

impl Condition {
    /// Compiles `source`, the condition of `var`.
    pub(super) fn new(source: MatchExpr, var: VarId) -> Condition {
        Condition {
            eval: compile(&source, var),
            source,
            var,
        }
    }

    /// Whether the condition is TRUE (not FALSE, not NULL) in `scope`,
    /// exactly as [`Scope::holds`] decides it.
    pub(super) fn holds(&self, scope: &Scope<'_, KeyLabels<'_>>) -> Result<bool, EvalError> {
        Ok(matches!((self.eval)(scope)?, Datum::Bool(true)))
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

/// Gives a closure the signature of [`Eval`] (closures passed to a function
/// with a higher-ranked bound get their signature from it).
fn node(eval: impl for<'s, 'r, 'k> Fn(&'s Scope<'r, KeyLabels<'k>>) -> Result<Datum, EvalError> + Send + Sync + 'static) -> Eval {
    Box::new(eval)
}

/// A column or a constant is read in place; anything else is computed.
enum Operand {
    Literal(Datum),
    /// A column of the row being classified.
    Current(usize),
    /// A column of the latest row mapped to the variable (NULL without one).
    Latest(VarId, usize),
    Computed(Eval),
}

/// NULL, for a navigation that leads nowhere.
static NULL: Datum = Datum::Null;

impl Operand {
    /// `expr` inside the condition of `own`.
    fn new(expr: &MatchExpr, own: VarId) -> Operand {
        Operand::in_place(expr, own).unwrap_or_else(|| Operand::Computed(compile(expr, own)))
    }

    /// `expr` inside the condition of `own`, if it can be read in place.
    fn in_place(expr: &MatchExpr, own: VarId) -> Option<Operand> {
        Some(match expr {
            MatchExpr::Literal(value) => Operand::Literal(value.clone()),
            &MatchExpr::Column(Navigation {
                var,
                column,
                logical: Logical::Last(0),
                physical: 0,
                semantics: Semantics::Running,
            }) => match var {
                // The row being classified is mapped to `own`, and without a
                // physical offset the read cannot leave the partition.
                None => Operand::Current(column),
                Some(var) if var == own => Operand::Current(column),
                Some(var) => Operand::Latest(var, column),
            },
            _ => return None,
        })
    }

    fn value<'a>(&'a self, scope: &'a Scope<'_, KeyLabels<'_>>) -> Result<Cow<'a, Datum>, EvalError> {
        Ok(match self {
            Operand::Literal(value) => Cow::Borrowed(value),
            Operand::Current(column) => Cow::Borrowed(scope.rows[scope.current].get(*column)),
            Operand::Latest(var, column) => Cow::Borrowed(scope.labels.latest(*var, scope.current).map_or(&NULL, |row| scope.rows[row].get(*column))),
            Operand::Computed(eval) => Cow::Owned(eval(scope)?),
        })
    }
}

/// `expr` inside the condition of `own`.
fn compile(expr: &MatchExpr, own: VarId) -> Eval {
    match expr {
        MatchExpr::Binary { op, left, right } => {
            let (op, left, right) = (*op, Operand::new(left, own), Operand::new(right, own));
            node(move |scope| {
                let left = left.value(scope)?;
                // FALSE AND x is FALSE and TRUE OR x is TRUE whatever x is: skip evaluating it.
                if let (BinaryOp::And, Datum::Bool(false)) | (BinaryOp::Or, Datum::Bool(true)) = (op, &*left) {
                    return Ok(left.into_owned());
                }
                let right = right.value(scope)?;
                match float_binary(op, &left, &right) {
                    Some(value) => Ok(value),
                    None => scalar::binary(op, left.into_owned(), right.into_owned()),
                }
            })
        }
        other => match Operand::in_place(other, own) {
            Some(operand) => node(move |scope| operand.value(scope).map(Cow::into_owned)),
            None => {
                let other = other.clone();
                node(move |scope| scope.eval(&other))
            }
        },
    }
}
