//! `DEFINE` conditions and `MEASURES`: a small expression language over the
//! rows of a (partial) match.
//!
//! The SQL binder builds [`MatchExpr`] trees with columns already resolved to
//! indices and pattern variables to [`VarId`]s; nothing is looked up while
//! matching. What the language offers, with the semantics of SQL:2016 as Trino
//! implements them:
//!
//! * **Navigation** ([`Navigation`]): `A.price` is `LAST(A.price, 0)`, the
//!   latest row mapped to `A`; `FIRST(A.price, n)` / `LAST(A.price, n)` count
//!   `n` rows forward from the first / back from the last row mapped to `A`
//!   (logical offsets); `PREV(.., n)` / `NEXT(.., n)` then move `n` rows back /
//!   forward in the partition (physical offsets), and the combination
//!   `PREV(FIRST(A.price, 1), 2)` is one navigation. A navigation that leaves
//!   the rows of the variable or the partition gives NULL: `PREV` of the first
//!   row of the partition is NULL, but `PREV` of a match's first row is the row
//!   before it. Without a variable (`price`, `FIRST(price)`) a navigation ranges
//!   over every row of the match, whatever its variable.
//! * **Aggregates** ([`MatchAggregate`]) over the rows mapped to a variable (or
//!   all rows of the match): any [`AggregateFunction`](crate::aggregate::AggregateFunction),
//!   computed by the same [`Accumulator`] as GROUP BY, so `COUNT` of a
//!   variable without rows is 0 and `SUM`, `AVG`, `MIN`, `MAX` of no rows are NULL.
//! * `CLASSIFIER()` (the variable of a row, as a string) and `MATCH_NUMBER()`.
//! * Literals, arithmetic, comparisons, `AND`, `OR`, `NOT`, `IS [NOT] NULL`,
//!   `CASE` and calls of scalar functions the binder supplies ([`ScalarFunction`]).
//!   NULL propagates through arithmetic and comparisons; `AND` / `OR` use SQL's
//!   three-valued logic. A `DEFINE` condition holds only when it is TRUE.
//!
//! **Running and final.** In `DEFINE` the row being classified is the last row
//! of the match so far and is already mapped to the variable being defined:
//! `B.price` in `B`'s condition is the candidate row, `COUNT(B.*)` counts it,
//! and `C.price` in `B`'s condition is the latest `C` row before it. In
//! `MEASURES` every navigation and aggregate is RUNNING (up to the output row)
//! unless marked [`Semantics::Final`] (up to the last row of the match). With
//! `ONE ROW PER MATCH` the output row is the last row, so both agree. `FINAL`
//! is refused in `DEFINE`, as the standard requires.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use carbonflow_core::{Datum, Millis, Row, Str, scalar};

use super::pattern::VarId;
use crate::aggregate::{Accumulator, AggregateSpec};

/// Whether a navigation or aggregate in `MEASURES` sees the match up to the
/// output row (`RUNNING`, the default) or all of it (`FINAL`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Semantics {
    /// Up to the current row.
    #[default]
    Running,
    /// Up to the last row of the match. Only in `MEASURES`.
    Final,
}

/// A logical offset among the rows mapped to a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Logical {
    /// `FIRST(.., n)`: the `n`-th row after the first (0 is the first).
    First(u32),
    /// `LAST(.., n)`: the `n`-th row before the last (0 is the last).
    Last(u32),
}

/// `PREV/NEXT(FIRST/LAST(var.column, logical), physical)`. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Navigation {
    /// The variable whose rows are navigated; `None` for every row of the match.
    pub var: Option<VarId>,
    /// The column read from the row navigated to.
    pub column: usize,
    /// The logical offset among the variable's rows.
    pub logical: Logical,
    /// Then this many rows forward (`NEXT`, positive) or back (`PREV`, negative) in the partition.
    pub physical: i64,
    /// Running or final (measures only).
    pub semantics: Semantics,
}

/// An aggregate over the rows mapped to a variable, e.g. `AVG(A.price)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatchAggregate {
    /// The function and its argument type. `COUNT(A.*)` is `CountStar`.
    pub spec: AggregateSpec,
    /// The variable whose rows are aggregated; `None` for every row of the match.
    pub var: Option<VarId>,
    /// The argument column; `None` for `COUNT(*)`.
    pub column: Option<usize>,
    /// Running or final (measures only).
    pub semantics: Semantics,
}

pub use carbonflow_core::scalar::{BinaryOp, EvalError};

/// The signature of a [`ScalarFunction`]: arguments in, a value or a message out.
pub type ScalarFn = dyn Fn(&[Datum]) -> Result<Datum, String> + Send + Sync;

/// A scalar function the binder supplies (`ABS`, `ROUND`, a cast …), so that
/// this module need not know the engine's function table.
#[derive(Clone)]
pub struct ScalarFunction {
    name: Str,
    function: Arc<ScalarFn>,
}

impl ScalarFunction {
    /// Wraps `function` under `name` (the name is for plans and errors).
    pub fn new(name: &str, function: impl Fn(&[Datum]) -> Result<Datum, String> + Send + Sync + 'static) -> Self {
        ScalarFunction {
            name: Arc::from(name),
            function: Arc::new(function),
        }
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for ScalarFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScalarFunction({})", self.name)
    }
}

/// An expression of `DEFINE` or `MEASURES`. See the module documentation.
#[derive(Clone, Debug)]
pub enum MatchExpr {
    /// A constant.
    Literal(Datum),
    /// A column of the row a navigation leads to (NULL when it leads nowhere).
    Column(Navigation),
    /// An aggregate over the rows of a variable.
    Aggregate(MatchAggregate),
    /// `CLASSIFIER()`: the variable of the current (running) or last (final) row.
    Classifier(Semantics),
    /// `MATCH_NUMBER()`: 1 for the first match of the partition, and so on.
    MatchNumber,
    /// `left op right`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// The left operand.
        left: Box<MatchExpr>,
        /// The right operand.
        right: Box<MatchExpr>,
    },
    /// `NOT e`, three-valued.
    Not(Box<MatchExpr>),
    /// `-e`.
    Negate(Box<MatchExpr>),
    /// `e IS [NOT] NULL`.
    IsNull {
        /// The operand.
        expr: Box<MatchExpr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `CASE WHEN c THEN v … ELSE otherwise END`; only the chosen branch is evaluated.
    Case {
        /// Conditions and their values, tried in order.
        branches: Vec<(MatchExpr, MatchExpr)>,
        /// The value when no condition is TRUE.
        otherwise: Box<MatchExpr>,
    },
    /// A scalar function applied to its evaluated arguments.
    Call {
        /// The function.
        function: ScalarFunction,
        /// The arguments.
        args: Vec<MatchExpr>,
    },
}

impl MatchExpr {
    /// A constant.
    pub fn literal(value: Datum) -> Self {
        MatchExpr::Literal(value)
    }

    /// `var.column` (or a bare `column` when `var` is `None`): running `LAST(.., 0)`.
    pub fn column(var: Option<VarId>, column: usize) -> Self {
        Self::navigate(var, column, Logical::Last(0), 0)
    }

    /// `PREV(var.column, n)`.
    pub fn prev(var: Option<VarId>, column: usize, n: u32) -> Self {
        Self::navigate(var, column, Logical::Last(0), -i64::from(n))
    }

    /// `NEXT(var.column, n)`.
    pub fn next(var: Option<VarId>, column: usize, n: u32) -> Self {
        Self::navigate(var, column, Logical::Last(0), i64::from(n))
    }

    /// `FIRST(var.column, n)`.
    pub fn first(var: Option<VarId>, column: usize, n: u32) -> Self {
        Self::navigate(var, column, Logical::First(n), 0)
    }

    /// `LAST(var.column, n)`.
    pub fn last(var: Option<VarId>, column: usize, n: u32) -> Self {
        Self::navigate(var, column, Logical::Last(n), 0)
    }

    /// Any running navigation.
    pub fn navigate(var: Option<VarId>, column: usize, logical: Logical, physical: i64) -> Self {
        MatchExpr::Column(Navigation {
            var,
            column,
            logical,
            physical,
            semantics: Semantics::Running,
        })
    }

    /// A running aggregate; `column` is `None` for `COUNT(*)`.
    pub fn aggregate(spec: AggregateSpec, var: Option<VarId>, column: Option<usize>) -> Self {
        MatchExpr::Aggregate(MatchAggregate {
            spec,
            var,
            column,
            semantics: Semantics::Running,
        })
    }

    /// `left op right`.
    pub fn binary(op: BinaryOp, left: MatchExpr, right: MatchExpr) -> Self {
        MatchExpr::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        }
    }

    /// The same navigation, aggregate or classifier with `FINAL` semantics;
    /// other expressions are returned unchanged.
    pub fn into_final(self) -> Self {
        match self {
            MatchExpr::Column(navigation) => MatchExpr::Column(Navigation {
                semantics: Semantics::Final,
                ..navigation
            }),
            MatchExpr::Aggregate(aggregate) => MatchExpr::Aggregate(MatchAggregate {
                semantics: Semantics::Final,
                ..aggregate
            }),
            MatchExpr::Classifier(_) => MatchExpr::Classifier(Semantics::Final),
            other => other,
        }
    }

    /// Calls `f` on this node and every node below it.
    pub fn visit(&self, f: &mut impl FnMut(&MatchExpr)) {
        f(self);
        match self {
            MatchExpr::Literal(_) | MatchExpr::Column(_) | MatchExpr::Aggregate(_) | MatchExpr::Classifier(_) | MatchExpr::MatchNumber => {}
            MatchExpr::Binary { left, right, .. } => {
                left.visit(f);
                right.visit(f);
            }
            MatchExpr::Not(inner) | MatchExpr::Negate(inner) | MatchExpr::IsNull { expr: inner, .. } => inner.visit(f),
            MatchExpr::Case { branches, otherwise } => {
                for (condition, value) in branches {
                    condition.visit(f);
                    value.visit(f);
                }
                otherwise.visit(f);
            }
            MatchExpr::Call { args, .. } => args.iter().for_each(|arg| arg.visit(f)),
        }
    }
}

/// Which rows of the match carry which variable.
///
/// The matcher answers from its per-thread history (only what `DEFINE`
/// conditions can ask about); measures and tests answer from the full list of
/// variables ([`SliceLabels`]).
pub(crate) trait Labels {
    /// Calls `f` on the rows mapped to `var` among the match's rows up to
    /// `upto`, latest first, until `f` breaks.
    fn for_each_back(&self, var: VarId, upto: usize, f: impl FnMut(usize) -> ControlFlow<()>);

    /// The variable of `row`, which is the current row or the last row of the match.
    fn label(&self, row: usize) -> VarId;

    /// The latest row mapped to `var` up to `upto` (`var.column` reads it).
    fn latest(&self, var: VarId, upto: usize) -> Option<usize> {
        let mut found = None;
        self.for_each_back(var, upto, |row| {
            found = Some(row);
            ControlFlow::Break(())
        });
        found
    }
}

/// The variables of a whole match, one per row from its start.
pub(crate) struct SliceLabels<'a> {
    pub(crate) start: usize,
    pub(crate) labels: &'a [VarId],
}

impl Labels for SliceLabels<'_> {
    fn for_each_back(&self, var: VarId, upto: usize, mut f: impl FnMut(usize) -> ControlFlow<()>) {
        let end = (upto + 1 - self.start).min(self.labels.len());
        for (offset, label) in self.labels[..end].iter().enumerate().rev() {
            if *label == var && f(self.start + offset).is_break() {
                return;
            }
        }
    }

    fn label(&self, row: usize) -> VarId {
        self.labels[row - self.start]
    }
}

/// Everything an expression can see: the partition, the match so far and the
/// row being classified or output.
pub(crate) struct Scope<'a, L> {
    /// The partition's rows, in order.
    pub(crate) rows: &'a [Row],
    /// The first row of the match.
    pub(crate) start: usize,
    /// The row being classified (`DEFINE`) or output (`MEASURES`): where RUNNING ends.
    pub(crate) current: usize,
    /// The last row of the match: where FINAL ends (`current` in `DEFINE`).
    pub(crate) last: usize,
    /// The variables of the match's rows.
    pub(crate) labels: L,
    /// The number this match has (or will have, while matching).
    pub(crate) match_number: u64,
    /// The variable names, for `CLASSIFIER()`.
    pub(crate) names: &'a [Str],
}

impl<L: Labels> Scope<'_, L> {
    /// Whether `condition` is TRUE (not FALSE, not NULL).
    pub(crate) fn holds(&self, condition: &MatchExpr) -> Result<bool, EvalError> {
        Ok(matches!(self.eval(condition)?, Datum::Bool(true)))
    }

    /// Evaluates `expr`.
    pub(crate) fn eval(&self, expr: &MatchExpr) -> Result<Datum, EvalError> {
        Ok(match expr {
            MatchExpr::Literal(value) => value.clone(),
            MatchExpr::Column(navigation) => self
                .navigate(navigation)
                .map_or(Datum::Null, |row| self.rows[row].get(navigation.column).clone()),
            MatchExpr::Aggregate(aggregate) => {
                let mut accumulator = Accumulator::new(&aggregate.spec);
                self.for_each_row(aggregate.var, self.upto(aggregate.semantics), |row| {
                    let value = aggregate.column.map_or(&Datum::Null, |column| self.rows[row].get(column));
                    // The row index orders FIRST_VALUE / LAST_VALUE by position in the match.
                    accumulator.update(value, row as Millis, 1);
                    ControlFlow::Continue(())
                });
                accumulator.result()
            }
            MatchExpr::Classifier(semantics) => {
                let label = self.labels.label(self.upto(*semantics));
                Datum::Str(self.names[label.index()].clone())
            }
            MatchExpr::MatchNumber => Datum::Int(i64::try_from(self.match_number).unwrap_or(i64::MAX)),
            MatchExpr::Binary { op, left, right } => {
                let left = self.eval(left)?;
                // FALSE AND x is FALSE and TRUE OR x is TRUE whatever x is: skip evaluating it.
                match (op, &left) {
                    (BinaryOp::And, Datum::Bool(false)) | (BinaryOp::Or, Datum::Bool(true)) => left,
                    _ => {
                        let right = self.eval(right)?;
                        match float_binary(*op, &left, &right) {
                            Some(value) => value,
                            None => scalar::binary(*op, left, right)?,
                        }
                    }
                }
            }
            MatchExpr::Not(inner) => match scalar::truth(&self.eval(inner)?)? {
                Some(value) => Datum::Bool(!value),
                None => Datum::Null,
            },
            MatchExpr::Negate(inner) => match self.eval(inner)? {
                Datum::Null => Datum::Null,
                Datum::Int(v) => Datum::Int(v.checked_neg().ok_or_else(|| EvalError("integer overflow in -".into()))?),
                Datum::Float(v) => Datum::float(-v.get()),
                Datum::Interval(v) => Datum::Interval(v.saturating_neg()),
                other => return Err(EvalError(format!("cannot negate '{other}'"))),
            },
            MatchExpr::IsNull { expr, negated } => Datum::Bool(self.eval(expr)?.is_null() != *negated),
            MatchExpr::Case { branches, otherwise } => {
                for (condition, value) in branches {
                    if self.holds(condition)? {
                        return self.eval(value);
                    }
                }
                self.eval(otherwise)?
            }
            MatchExpr::Call { function, args } => {
                let args = args.iter().map(|arg| self.eval(arg)).collect::<Result<Vec<_>, _>>()?;
                (function.function)(&args).map_err(|message| EvalError(format!("{}: {message}", function.name)))?
            }
        })
    }

    fn upto(&self, semantics: Semantics) -> usize {
        match semantics {
            Semantics::Running => self.current,
            Semantics::Final => self.last,
        }
    }

    /// Calls `f` on the rows of `var` (every row when `None`) up to `upto`, latest first.
    fn for_each_row(&self, var: Option<VarId>, upto: usize, mut f: impl FnMut(usize) -> ControlFlow<()>) {
        match var {
            Some(var) => self.labels.for_each_back(var, upto, f),
            None => {
                for row in (self.start..=upto).rev() {
                    if f(row).is_break() {
                        return;
                    }
                }
            }
        }
    }

    /// The `n`-th row of `var` counting back from `upto` (0 is the latest).
    fn nth_back(&self, var: Option<VarId>, upto: usize, n: usize) -> Option<usize> {
        let mut seen = 0;
        let mut found = None;
        self.for_each_row(var, upto, |row| {
            if seen == n {
                found = Some(row);
                return ControlFlow::Break(());
            }
            seen += 1;
            ControlFlow::Continue(())
        });
        found
    }

    /// The row a navigation leads to, if it stays inside the variable's rows and the partition.
    fn navigate(&self, navigation: &Navigation) -> Option<usize> {
        let upto = self.upto(navigation.semantics);
        let base = match (navigation.logical, navigation.var) {
            // `var.column` and `column`, the most common navigations, directly.
            (Logical::Last(0), None) => upto,
            (Logical::Last(0), Some(var)) => self.labels.latest(var, upto)?,
            (Logical::Last(n), _) => self.nth_back(navigation.var, upto, n as usize)?,
            (Logical::First(n), _) => {
                let mut count = 0usize;
                self.for_each_row(navigation.var, upto, |_| {
                    count += 1;
                    ControlFlow::Continue(())
                });
                let back = count.checked_sub(n as usize + 1)?;
                self.nth_back(navigation.var, upto, back)?
            }
        };
        let target = i64::try_from(base).ok()?.checked_add(navigation.physical)?;
        usize::try_from(target).ok().filter(|row| *row < self.rows.len())
    }
}

/// `op` on two floats, as [`scalar::binary`] computes it (comparisons in
/// the total order of [`Datum`]), without its general dispatch: prices are
/// floats, and conditions compare and scale them on every row.
#[inline]
pub(super) fn float_binary(op: BinaryOp, left: &Datum, right: &Datum) -> Option<Datum> {
    let (Datum::Float(l), Datum::Float(r)) = (left, right) else {
        return None;
    };
    Some(match op {
        BinaryOp::Eq => Datum::Bool(l.cmp(r).is_eq()),
        BinaryOp::NotEq => Datum::Bool(l.cmp(r).is_ne()),
        BinaryOp::Lt => Datum::Bool(l.cmp(r).is_lt()),
        BinaryOp::LtEq => Datum::Bool(l.cmp(r).is_le()),
        BinaryOp::Gt => Datum::Bool(l.cmp(r).is_gt()),
        BinaryOp::GtEq => Datum::Bool(l.cmp(r).is_ge()),
        BinaryOp::Add => Datum::float(l.get() + r.get()),
        BinaryOp::Subtract => Datum::float(l.get() - r.get()),
        BinaryOp::Multiply => Datum::float(l.get() * r.get()),
        BinaryOp::Divide => Datum::float(l.get() / r.get()),
        BinaryOp::Modulo => Datum::float(l.get() % r.get()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::AggregateFunction;
    use carbonflow_core::DataType;

    const A: VarId = VarId(0);
    const B: VarId = VarId(1);

    fn rows(prices: &[Option<i64>]) -> Vec<Row> {
        prices.iter().map(|p| Row::new(vec![p.map_or(Datum::Null, Datum::Int)])).collect()
    }

    fn names() -> Vec<Str> {
        vec![Arc::from("A"), Arc::from("B")]
    }

    fn eval(rows: &[Row], labels: &[VarId], start: usize, current: usize, expr: &MatchExpr) -> Datum {
        let names = names();
        let scope = Scope {
            rows,
            start,
            current,
            last: start + labels.len() - 1,
            labels: SliceLabels { start, labels },
            match_number: 7,
            names: &names,
        };
        scope.eval(expr).expect("evaluates")
    }

    fn lit(v: i64) -> MatchExpr {
        MatchExpr::literal(Datum::Int(v))
    }

    #[test]
    fn three_valued_logic() {
        let rows = rows(&[Some(1)]);
        let null = MatchExpr::literal(Datum::Null);
        let t = MatchExpr::literal(Datum::Bool(true));
        let f = MatchExpr::literal(Datum::Bool(false));
        let cases = [
            (BinaryOp::And, &null, &f, Datum::Bool(false)),
            (BinaryOp::And, &f, &null, Datum::Bool(false)),
            (BinaryOp::And, &null, &t, Datum::Null),
            (BinaryOp::Or, &null, &t, Datum::Bool(true)),
            (BinaryOp::Or, &t, &null, Datum::Bool(true)),
            (BinaryOp::Or, &null, &f, Datum::Null),
        ];
        for (op, l, r, expected) in cases {
            assert_eq!(eval(&rows, &[A], 0, 0, &MatchExpr::binary(op, l.clone(), r.clone())), expected, "{op:?}");
        }
        assert_eq!(eval(&rows, &[A], 0, 0, &MatchExpr::Not(Box::new(null.clone()))), Datum::Null);
        assert_eq!(eval(&rows, &[A], 0, 0, &MatchExpr::binary(BinaryOp::Gt, null, lit(1))), Datum::Null);
    }

    #[test]
    fn navigation_inside_the_match_and_the_partition() {
        // Rows 0..6; the match covers rows 2..6 as A B A B.
        let rows = rows(&[Some(10), Some(11), Some(12), Some(13), Some(14), Some(15)]);
        let labels = [A, B, A, B];
        let at = |current, expr: &MatchExpr| eval(&rows, &labels, 2, current, expr);
        assert_eq!(at(5, &MatchExpr::column(Some(A), 0)), Datum::Int(14));
        assert_eq!(at(5, &MatchExpr::last(Some(A), 0, 1)), Datum::Int(12));
        assert_eq!(at(5, &MatchExpr::last(Some(A), 0, 2)), Datum::Null);
        assert_eq!(at(5, &MatchExpr::first(Some(B), 0, 1)), Datum::Int(15));
        assert_eq!(at(3, &MatchExpr::first(Some(B), 0, 1)), Datum::Null);
        // PREV leaves the match but not the partition.
        assert_eq!(at(5, &MatchExpr::prev(Some(A), 0, 3)), Datum::Int(11));
        assert_eq!(at(5, &MatchExpr::prev(Some(A), 0, 5)), Datum::Null);
        assert_eq!(at(5, &MatchExpr::next(Some(A), 0, 1)), Datum::Int(15));
        assert_eq!(at(5, &MatchExpr::next(Some(A), 0, 2)), Datum::Null);
        // PREV(FIRST(B.price), 1) and the universal variable.
        assert_eq!(at(5, &MatchExpr::navigate(Some(B), 0, Logical::First(0), -1)), Datum::Int(12));
        assert_eq!(at(4, &MatchExpr::first(None, 0, 1)), Datum::Int(13));
        assert_eq!(at(4, &MatchExpr::column(None, 0)), Datum::Int(14));
        // Running stops at the current row; final does not.
        assert_eq!(at(3, &MatchExpr::column(Some(A), 0)), Datum::Int(12));
        assert_eq!(at(3, &MatchExpr::column(Some(A), 0).into_final()), Datum::Int(14));
        assert_eq!(at(3, &MatchExpr::Classifier(Semantics::Running)), Datum::string("B"));
        assert_eq!(at(4, &MatchExpr::Classifier(Semantics::Running)), Datum::string("A"));
        assert_eq!(at(2, &MatchExpr::MatchNumber), Datum::Int(7));
    }

    #[test]
    fn aggregates_over_a_variable() {
        let rows = rows(&[Some(1), None, Some(5), Some(2)]);
        let labels = [A, A, A, A];
        let agg = |function, input_type| MatchExpr::aggregate(AggregateSpec::new(function, input_type), Some(A), Some(0));
        let count_b = MatchExpr::aggregate(AggregateSpec::new(AggregateFunction::CountStar, DataType::Null), Some(B), None);
        assert_eq!(eval(&rows, &labels, 0, 3, &agg(AggregateFunction::Sum, DataType::Int)), Datum::Int(8));
        assert_eq!(eval(&rows, &labels, 0, 3, &agg(AggregateFunction::Count, DataType::Int)), Datum::Int(3));
        assert_eq!(eval(&rows, &labels, 0, 2, &agg(AggregateFunction::Max, DataType::Int)), Datum::Int(5));
        assert_eq!(eval(&rows, &labels, 0, 1, &agg(AggregateFunction::Avg, DataType::Int)), Datum::Int(1));
        assert_eq!(eval(&rows, &labels, 0, 3, &count_b), Datum::Int(0));
        let sum_b = MatchExpr::aggregate(AggregateSpec::new(AggregateFunction::Sum, DataType::Int), Some(B), Some(0));
        assert_eq!(eval(&rows, &labels, 0, 3, &sum_b), Datum::Null);
    }

    #[test]
    fn the_float_fast_path_agrees_with_scalar_binary() {
        let values = [0.0, -0.0, 1.5, -2.25, 1e300, f64::INFINITY, f64::NAN].map(Datum::float);
        let ops = [
            BinaryOp::Add,
            BinaryOp::Subtract,
            BinaryOp::Multiply,
            BinaryOp::Divide,
            BinaryOp::Modulo,
            BinaryOp::Eq,
            BinaryOp::NotEq,
            BinaryOp::Lt,
            BinaryOp::LtEq,
            BinaryOp::Gt,
            BinaryOp::GtEq,
        ];
        for op in ops {
            for left in &values {
                for right in &values {
                    let general = scalar::binary(op, left.clone(), right.clone()).expect("floats combine");
                    assert_eq!(float_binary(op, left, right), Some(general), "{left:?} {op:?} {right:?}");
                }
            }
        }
        assert_eq!(float_binary(BinaryOp::Add, &Datum::Int(1), &Datum::float(1.0)), None);
    }

    #[test]
    fn arithmetic_errors_and_mixed_numbers() {
        let rows = rows(&[Some(1)]);
        let names = names();
        let scope = Scope {
            rows: &rows,
            start: 0,
            current: 0,
            last: 0,
            labels: SliceLabels { start: 0, labels: &[A] },
            match_number: 1,
            names: &names,
        };
        assert!(scope.eval(&MatchExpr::binary(BinaryOp::Divide, lit(1), lit(0))).is_err());
        assert!(scope.eval(&MatchExpr::binary(BinaryOp::Add, lit(i64::MAX), lit(1))).is_err());
        let half = MatchExpr::literal(Datum::float(1.5));
        assert_eq!(scope.eval(&MatchExpr::binary(BinaryOp::Multiply, half.clone(), lit(2))), Ok(Datum::float(3.0)));
        assert_eq!(scope.eval(&MatchExpr::binary(BinaryOp::Lt, lit(1), half)), Ok(Datum::Bool(true)));
        assert!(
            scope
                .eval(&MatchExpr::binary(BinaryOp::Lt, lit(1), MatchExpr::literal(Datum::string("x"))))
                .is_err()
        );
        let double = ScalarFunction::new("DOUBLE", |args| match args {
            [Datum::Int(v)] => Ok(Datum::Int(2 * v)),
            _ => Err("needs one BIGINT".into()),
        });
        let call = |args| MatchExpr::Call {
            function: double.clone(),
            args,
        };
        assert_eq!(scope.eval(&call(vec![lit(4)])), Ok(Datum::Int(8)));
        assert_eq!(scope.eval(&call(vec![])), Err(EvalError("DOUBLE: needs one BIGINT".into())));
    }
}
