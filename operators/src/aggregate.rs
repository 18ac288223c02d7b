//! SQL aggregate functions whose state accepts retractions.
//!
//! Every input reaches an aggregate as `(value, event_time, diff)`: a positive
//! `diff` inserts copies of a row, a negative one retracts them (a revised
//! price, a row leaving a window). The state is exact: after any sequence of
//! insertions and retractions, [`Accumulator::result`] equals, bit for bit, the
//! result of a fresh accumulator fed only the surviving rows, in any order.
//! That is what lets differential dataflow replay, reorder and consolidate
//! updates without the answers drifting.
//!
//! Semantics follow Flink SQL where it defines them:
//!
//! | function | input | result | over no non-NULL value |
//! | --- | --- | --- | --- |
//! | `COUNT(*)` | any | BIGINT: rows, NULLs included | 0 |
//! | `COUNT(x)` | any | BIGINT: non-NULL values | 0 |
//! | `SUM(x)` | BIGINT / DOUBLE | same type | NULL |
//! | `AVG(x)` | BIGINT / DOUBLE | same type; BIGINT truncates toward zero | NULL |
//! | `MIN(x)`, `MAX(x)` | any ordered type | same type | NULL |
//! | `VAR_POP`, `VAR_SAMP` (`VARIANCE`), `STDDEV_POP`, `STDDEV_SAMP` (`STDDEV`) | BIGINT / DOUBLE | DOUBLE | NULL (SAMP of one value too) |
//! | `FIRST_VALUE(x)`, `LAST_VALUE(x)` | any | same type | NULL |
//!
//! * NULL arguments are ignored by every function but `COUNT(*)`. A datum of
//!   another type than the declared input (the planner casts, so this means a
//!   bug upstream) is ignored like NULL rather than panicking.
//! * BIGINT sums accumulate in `i128`, so they are exact however the updates
//!   are ordered; the result wraps to 64 bits as Flink's `long` arithmetic does.
//! * DOUBLE sums (SUM, AVG and the sums of `x` and `x²` behind the variances)
//!   use [`ExactSum`], which yields the correctly rounded sum of the surviving
//!   values. AVG divides that by the count; the variances use Flink's
//!   rewrite `(Σx² − (Σx)²/n) / n` (or `/ (n − 1)`), clamped at zero, with
//!   `x²` rounded once per value. NaN and infinities propagate as IEEE says
//!   and stop doing so once retracted.
//! * MIN/MAX order values as [`Datum`] does: floats by `total_cmp`, so NaN is
//!   above `+inf`, as in Java's `Double.compare`.
//! * FIRST_VALUE / LAST_VALUE return the value at the smallest / largest event
//!   time among the rows with a non-NULL argument, ties broken by the smaller /
//!   larger value. **This differs from Flink**, which takes arrival order: in
//!   an incremental engine arrival order is not reproducible, event time is.
//! * DISTINCT keeps a multiset of values; the inner aggregate sees a value
//!   when its multiplicity goes from 0 to positive and loses it when it falls
//!   back to 0. For MIN, MAX, FIRST_VALUE and LAST_VALUE DISTINCT cannot change
//!   the answer, so it is ignored there.
//!
//! **Append-only inputs.** A collection that never retracts (a source with no
//! primary key, through filters, projections and windows) needs none of the
//! retraction machinery: [`Accumulator::append_only`] keeps MIN and MAX as
//! the one extreme seen and FIRST_VALUE / LAST_VALUE as the one (event time,
//! value) pair, instead of a multiset. Such accumulators also
//! [merge](Accumulator::merge): a worker pre-aggregates an epoch's rows per
//! group and ships the partial state, which joins the group's state exactly
//! (integer and exact float sums add, extremes compare), so the result is the
//! same bit for bit as if every row had been folded in one place. They take
//! no retraction; handing them one is a planner bug and panics.

use std::collections::hash_map::HashMap;
use std::fmt;

use carbonflow_core::{DataType, Datum, Diff, Millis};
use serde::{Deserialize, Serialize};

use crate::exact_sum::ExactSum;
use crate::multiset::Multiset;

/// An aggregate function of SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggregateFunction {
    /// `COUNT(*)`: all rows, NULLs included.
    CountStar,
    /// `COUNT(x)`: rows whose argument is not NULL.
    Count,
    /// `SUM(x)`.
    Sum,
    /// `AVG(x)`.
    Avg,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `STDDEV_POP(x)`.
    StddevPop,
    /// `STDDEV_SAMP(x)`, also spelt `STDDEV`.
    StddevSamp,
    /// `VAR_POP(x)`.
    VarPop,
    /// `VAR_SAMP(x)`, also spelt `VARIANCE`.
    VarSamp,
    /// `FIRST_VALUE(x)`: the value at the smallest event time.
    FirstValue,
    /// `LAST_VALUE(x)`: the value at the largest event time.
    LastValue,
}

/// SQL names and their functions; aliases map to the same function.
const NAMES: [(&str, AggregateFunction); 13] = [
    ("COUNT", AggregateFunction::Count),
    ("SUM", AggregateFunction::Sum),
    ("AVG", AggregateFunction::Avg),
    ("MIN", AggregateFunction::Min),
    ("MAX", AggregateFunction::Max),
    ("STDDEV_POP", AggregateFunction::StddevPop),
    ("STDDEV_SAMP", AggregateFunction::StddevSamp),
    ("STDDEV", AggregateFunction::StddevSamp),
    ("VAR_POP", AggregateFunction::VarPop),
    ("VAR_SAMP", AggregateFunction::VarSamp),
    ("VARIANCE", AggregateFunction::VarSamp),
    ("FIRST_VALUE", AggregateFunction::FirstValue),
    ("LAST_VALUE", AggregateFunction::LastValue),
];

impl AggregateFunction {
    /// The function called `name` in SQL (case-insensitive), if it is an
    /// aggregate. `COUNT` is [`AggregateFunction::Count`]; the planner turns
    /// `COUNT(*)` into [`AggregateFunction::CountStar`].
    pub fn from_name(name: &str) -> Option<Self> {
        NAMES.iter().find(|(sql, _)| sql.eq_ignore_ascii_case(name)).map(|&(_, function)| function)
    }

    /// The SQL name (`COUNT` for both counts).
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunction::CountStar | AggregateFunction::Count => "COUNT",
            AggregateFunction::Sum => "SUM",
            AggregateFunction::Avg => "AVG",
            AggregateFunction::Min => "MIN",
            AggregateFunction::Max => "MAX",
            AggregateFunction::StddevPop => "STDDEV_POP",
            AggregateFunction::StddevSamp => "STDDEV_SAMP",
            AggregateFunction::VarPop => "VAR_POP",
            AggregateFunction::VarSamp => "VAR_SAMP",
            AggregateFunction::FirstValue => "FIRST_VALUE",
            AggregateFunction::LastValue => "LAST_VALUE",
        }
    }

    /// The result type for an argument of type `input`, or an error a person
    /// can act on, such as `SUM needs a numeric argument, found STRING`.
    pub fn result_type(self, input: DataType) -> Result<DataType, String> {
        use AggregateFunction::*;
        if matches!(self, CountStar | Count) {
            return Ok(DataType::Int);
        }
        if input == DataType::Null {
            return Err(format!("{self} needs a typed argument, found NULL; cast it, e.g. CAST(NULL AS DOUBLE)"));
        }
        match self {
            CountStar | Count => Ok(DataType::Int),
            Sum | Avg => match input {
                DataType::Int | DataType::Float => Ok(input),
                _ => Err(format!("{self} needs a numeric argument, found {input}")),
            },
            StddevPop | StddevSamp | VarPop | VarSamp => match input {
                DataType::Int | DataType::Float => Ok(DataType::Float),
                _ => Err(format!("{self} needs a numeric argument, found {input}")),
            },
            Min | Max | FirstValue | LastValue => Ok(input),
        }
    }
}

impl fmt::Display for AggregateFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One aggregate call of a query: `function([DISTINCT] arg)` with the
/// argument's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AggregateSpec {
    /// The function.
    pub function: AggregateFunction,
    /// The argument's type (ignored by `COUNT(*)`).
    pub input_type: DataType,
    /// Whether the call says `DISTINCT`.
    pub distinct: bool,
}

impl AggregateSpec {
    /// A call without `DISTINCT`.
    pub fn new(function: AggregateFunction, input_type: DataType) -> Self {
        AggregateSpec {
            function,
            input_type,
            distinct: false,
        }
    }

    /// The same call with `DISTINCT`.
    pub fn distinct(self) -> Self {
        AggregateSpec { distinct: true, ..self }
    }

    /// Whether `DISTINCT` changes the result (it cannot for the extremes and
    /// FIRST_VALUE / LAST_VALUE), so the distinct values must be kept.
    fn keeps_distinct_values(&self) -> bool {
        use AggregateFunction::*;
        self.distinct && matches!(self.function, Count | Sum | Avg | StddevPop | StddevSamp | VarPop | VarSamp)
    }

    /// Whether the call has an append-only, mergeable form
    /// ([`Accumulator::append_only`]): every call but those whose DISTINCT
    /// values must be counted.
    pub fn has_append_only_form(&self) -> bool {
        !self.keeps_distinct_values()
    }
}

/// What an aggregate keeps, beyond the count of non-NULL values.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum State {
    /// COUNT(*) and COUNT(x): the count is everything.
    Count,
    /// SUM and AVG of BIGINT.
    IntSum(i128),
    /// SUM and AVG of DOUBLE. Boxed: the accumulator is 560 bytes and most
    /// aggregates are smaller, so the enum stays small.
    FloatSum(Box<ExactSum>),
    /// The variances: the sums of `x` and of `x²`.
    Moments(Box<[ExactSum; 2]>),
    /// MIN and MAX: the multiset of values.
    Values(Multiset<Datum>),
    /// FIRST_VALUE and LAST_VALUE: the multiset of (event time, value).
    Timed(Multiset<(Millis, Datum)>),
    /// MIN and MAX over an append-only input: the extreme so far.
    Extreme(Option<Datum>),
    /// FIRST_VALUE and LAST_VALUE over an append-only input: the extreme
    /// (event time, value) so far.
    TimedExtreme(Option<(Millis, Datum)>),
}

/// Whether `candidate` replaces `current` as the smallest (MIN, FIRST_VALUE)
/// or the largest (MAX, LAST_VALUE) key seen.
fn replaces<K: Ord>(function: AggregateFunction, current: &Option<K>, candidate: &K) -> bool {
    let smallest = matches!(function, AggregateFunction::Min | AggregateFunction::FirstValue);
    current
        .as_ref()
        .is_none_or(|current| if smallest { candidate < current } else { candidate > current })
}

/// The state of one aggregate over one group. See the module documentation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Accumulator {
    function: AggregateFunction,
    /// Net multiplicity of the values the state holds (rows for `COUNT(*)`).
    count: Diff,
    state: State,
    /// Multiplicities of the distinct values, for DISTINCT calls.
    distinct: Option<HashMap<Datum, Diff>>,
}

impl Accumulator {
    /// An empty accumulator for `spec`.
    pub fn new(spec: &AggregateSpec) -> Self {
        Self::with_form(spec, false)
    }

    /// An empty accumulator for `spec` over an input that never retracts,
    /// which can [merge](Self::merge) with others of its kind; `None` where
    /// the spec has no such form ([`AggregateSpec::has_append_only_form`]).
    pub fn append_only(spec: &AggregateSpec) -> Option<Self> {
        spec.has_append_only_form().then(|| Self::with_form(spec, true))
    }

    fn with_form(spec: &AggregateSpec, append_only: bool) -> Self {
        use AggregateFunction::*;
        let float = spec.input_type == DataType::Float;
        let state = match spec.function {
            CountStar | Count => State::Count,
            Sum | Avg if float => State::FloatSum(Box::default()),
            Sum | Avg => State::IntSum(0),
            StddevPop | StddevSamp | VarPop | VarSamp => State::Moments(Box::default()),
            Min | Max if append_only => State::Extreme(None),
            Min | Max => State::Values(Multiset::default()),
            FirstValue | LastValue if append_only => State::TimedExtreme(None),
            FirstValue | LastValue => State::Timed(Multiset::default()),
        };
        Accumulator {
            function: spec.function,
            count: 0,
            state,
            distinct: spec.keeps_distinct_values().then(HashMap::new),
        }
    }

    /// Adds the rows `other` holds, as if each had been added here. Both must
    /// be [append-only](Self::append_only) accumulators of the same spec.
    pub fn merge(&mut self, other: Accumulator) {
        debug_assert_eq!(self.function, other.function, "merging the states of different aggregates");
        self.count += other.count;
        match (&mut self.state, other.state) {
            (State::Count, State::Count) => {}
            (State::IntSum(sum), State::IntSum(other)) => *sum += other,
            (State::FloatSum(sum), State::FloatSum(other)) => sum.merge(&other),
            (State::Moments(sums), State::Moments(other)) => {
                sums[0].merge(&other[0]);
                sums[1].merge(&other[1]);
            }
            (State::Extreme(extreme), State::Extreme(Some(other))) => {
                if replaces(self.function, extreme, &other) {
                    *extreme = Some(other);
                }
            }
            (State::TimedExtreme(extreme), State::TimedExtreme(Some(other))) => {
                if replaces(self.function, extreme, &other) {
                    *extreme = Some(other);
                }
            }
            (State::Extreme(_), State::Extreme(None)) | (State::TimedExtreme(_), State::TimedExtreme(None)) => {}
            (state, other) => unreachable!("only append-only states of one aggregate merge: {state:?} and {other:?}"),
        }
    }

    /// Adds `diff` copies of a row whose argument is `value` and whose event
    /// time is `event_time`; a negative `diff` retracts.
    #[inline]
    pub fn update(&mut self, value: &Datum, event_time: Millis, diff: Diff) {
        if self.function == AggregateFunction::CountStar {
            self.count += diff;
            return;
        }
        if value.is_null() || diff == 0 {
            return;
        }
        let diff = match &mut self.distinct {
            None => diff,
            Some(multiplicities) => {
                let (before, after) = match multiplicities.get_mut(value) {
                    Some(count) => {
                        let before = *count;
                        *count += diff;
                        let after = *count;
                        if after == 0 {
                            multiplicities.remove(value);
                        }
                        (before, after)
                    }
                    None => {
                        multiplicities.insert(value.clone(), diff);
                        (0, diff)
                    }
                };
                Diff::from(after > 0) - Diff::from(before > 0)
            }
        };
        if diff != 0 {
            self.apply(value, event_time, diff);
        }
    }

    fn apply(&mut self, value: &Datum, event_time: Millis, diff: Diff) {
        match &mut self.state {
            State::Count => {}
            State::IntSum(sum) => match value {
                Datum::Int(v) => *sum += i128::from(*v) * i128::from(diff),
                _ => return,
            },
            State::FloatSum(sum) => match value.as_f64() {
                Some(v) => sum.add_times(v, diff),
                None => return,
            },
            State::Moments(sums) => match value.as_f64() {
                Some(v) => {
                    sums[0].add_times(v, diff);
                    sums[1].add_times(v * v, diff);
                }
                None => return,
            },
            State::Values(values) => values.add(value.clone(), diff),
            State::Timed(values) => values.add((event_time, value.clone()), diff),
            State::Extreme(extreme) => {
                assert!(diff > 0, "the append-only {} was sent a retraction", self.function);
                if replaces(self.function, extreme, value) {
                    *extreme = Some(value.clone());
                }
            }
            State::TimedExtreme(extreme) => {
                assert!(diff > 0, "the append-only {} was sent a retraction", self.function);
                let timed = (event_time, value.clone());
                if replaces(self.function, extreme, &timed) {
                    *extreme = Some(timed);
                }
            }
        }
        self.count += diff;
    }

    /// The aggregate over the rows held now.
    pub fn result(&self) -> Datum {
        use AggregateFunction::*;
        if matches!(self.function, CountStar | Count) {
            return Datum::Int(self.count);
        }
        if self.count <= 0 {
            return Datum::Null;
        }
        let n = self.count;
        match (&self.state, self.function) {
            (State::IntSum(sum), Sum) => Datum::Int(*sum as i64),
            (State::IntSum(sum), _) => Datum::Int((*sum / i128::from(n)) as i64),
            (State::FloatSum(sum), Sum) => Datum::float(sum.value()),
            (State::FloatSum(sum), _) => Datum::float(sum.value() / n as f64),
            (State::Moments(sums), function) => {
                let sample = matches!(function, StddevSamp | VarSamp);
                if sample && n == 1 {
                    return Datum::Null;
                }
                let (sum, squares, n) = (sums[0].value(), sums[1].value(), n as f64);
                let deviation = squares - sum * sum / n;
                // Rounding can push a zero spread slightly negative; NaN stays.
                let deviation = if deviation < 0.0 { 0.0 } else { deviation };
                let variance = deviation / if sample { n - 1.0 } else { n };
                Datum::float(if matches!(function, StddevPop | StddevSamp) {
                    variance.sqrt()
                } else {
                    variance
                })
            }
            (State::Values(values), Min) => values.first().cloned().unwrap_or(Datum::Null),
            (State::Values(values), _) => values.last().cloned().unwrap_or(Datum::Null),
            (State::Timed(values), FirstValue) => values.first().map_or(Datum::Null, |(_, v)| v.clone()),
            (State::Timed(values), _) => values.last().map_or(Datum::Null, |(_, v)| v.clone()),
            (State::Extreme(extreme), _) => extreme.clone().unwrap_or(Datum::Null),
            (State::TimedExtreme(extreme), _) => extreme.as_ref().map_or(Datum::Null, |(_, v)| v.clone()),
            (State::Count, _) => Datum::Int(n),
        }
    }
}

/// All aggregates of one group, plus the group's row count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupAccumulator {
    rows: Diff,
    accumulators: Vec<Accumulator>,
}

impl GroupAccumulator {
    /// An empty group computing `specs`.
    pub fn new(specs: &[AggregateSpec]) -> Self {
        GroupAccumulator {
            rows: 0,
            accumulators: specs.iter().map(Accumulator::new).collect(),
        }
    }

    /// An empty group computing `specs` over an input that never retracts
    /// ([`Accumulator::append_only`]); `None` unless every spec has that form.
    pub fn append_only(specs: &[AggregateSpec]) -> Option<Self> {
        Some(GroupAccumulator {
            rows: 0,
            accumulators: specs.iter().map(Accumulator::append_only).collect::<Option<_>>()?,
        })
    }

    /// Adds the rows of `other`, an append-only group of the same specs.
    pub fn merge(&mut self, other: GroupAccumulator) {
        debug_assert_eq!(self.accumulators.len(), other.accumulators.len(), "one state per aggregate");
        self.rows += other.rows;
        for (accumulator, other) in self.accumulators.iter_mut().zip(other.accumulators) {
            accumulator.merge(other);
        }
    }

    /// Adds `diff` copies of a row. `args[i]` is the argument of the `i`-th
    /// spec (anything, e.g. NULL, for `COUNT(*)`).
    #[inline]
    pub fn update(&mut self, args: &[Datum], event_time: Millis, diff: Diff) {
        debug_assert_eq!(args.len(), self.accumulators.len(), "one argument per aggregate");
        self.rows += diff;
        for (accumulator, arg) in self.accumulators.iter_mut().zip(args) {
            accumulator.update(arg, event_time, diff);
        }
    }

    /// Appends one result per spec to `out`.
    pub fn results(&self, out: &mut Vec<Datum>) {
        out.extend(self.accumulators.iter().map(Accumulator::result));
    }

    /// The net number of rows. Zero means the group is empty and must produce
    /// no output row.
    pub fn row_count(&self) -> Diff {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AggregateFunction::*;
    use proptest::prelude::*;

    const ALL: [AggregateFunction; 12] = [
        CountStar, Count, Sum, Avg, Min, Max, StddevPop, StddevSamp, VarPop, VarSamp, FirstValue, LastValue,
    ];

    fn run(spec: AggregateSpec, rows: &[(Datum, Millis, Diff)]) -> Datum {
        let mut accumulator = Accumulator::new(&spec);
        for (value, time, diff) in rows {
            accumulator.update(value, *time, *diff);
        }
        accumulator.result()
    }

    fn ints(values: &[i64]) -> Vec<(Datum, Millis, Diff)> {
        values.iter().enumerate().map(|(i, &v)| (Datum::Int(v), i as Millis, 1)).collect()
    }

    #[test]
    fn names_parse_case_insensitively_with_aliases() {
        assert_eq!(AggregateFunction::from_name("count"), Some(Count));
        assert_eq!(AggregateFunction::from_name("Stddev"), Some(StddevSamp));
        assert_eq!(AggregateFunction::from_name("variance"), Some(VarSamp));
        assert_eq!(AggregateFunction::from_name("last_value"), Some(LastValue));
        assert_eq!(AggregateFunction::from_name("median"), None);
        for function in ALL.into_iter().filter(|&f| f != CountStar) {
            assert_eq!(AggregateFunction::from_name(function.name()), Some(function));
        }
    }

    #[test]
    fn result_types_and_errors() {
        assert_eq!(Sum.result_type(DataType::Int), Ok(DataType::Int));
        assert_eq!(Avg.result_type(DataType::Float), Ok(DataType::Float));
        assert_eq!(VarPop.result_type(DataType::Int), Ok(DataType::Float));
        assert_eq!(Max.result_type(DataType::String), Ok(DataType::String));
        assert_eq!(Min.result_type(DataType::Timestamp), Ok(DataType::Timestamp));
        assert_eq!(Count.result_type(DataType::String), Ok(DataType::Int));
        assert_eq!(Sum.result_type(DataType::String), Err("SUM needs a numeric argument, found STRING".to_owned()));
        assert!(
            StddevSamp
                .result_type(DataType::Bool)
                .unwrap_err()
                .contains("STDDEV_SAMP needs a numeric argument")
        );
        assert!(Max.result_type(DataType::Null).unwrap_err().contains("CAST"));
    }

    #[test]
    fn empty_groups() {
        for function in ALL {
            for input_type in [DataType::Int, DataType::Float] {
                let expected = if matches!(function, CountStar | Count) { Datum::Int(0) } else { Datum::Null };
                assert_eq!(run(AggregateSpec::new(function, input_type), &[]), expected, "{function}");
            }
        }
    }

    #[test]
    fn nulls_are_ignored_except_by_count_star() {
        let rows = [(Datum::Null, 0, 1), (Datum::Int(4), 1, 1), (Datum::Null, 2, 1)];
        assert_eq!(run(AggregateSpec::new(CountStar, DataType::Int), &rows), Datum::Int(3));
        assert_eq!(run(AggregateSpec::new(Count, DataType::Int), &rows), Datum::Int(1));
        assert_eq!(run(AggregateSpec::new(Avg, DataType::Int), &rows), Datum::Int(4));
        assert_eq!(run(AggregateSpec::new(FirstValue, DataType::Int), &rows), Datum::Int(4));
        let only_nulls = [(Datum::Null, 0, 1)];
        assert_eq!(run(AggregateSpec::new(Sum, DataType::Float), &only_nulls), Datum::Null);
        assert_eq!(run(AggregateSpec::new(Max, DataType::Float), &only_nulls), Datum::Null);
    }

    #[test]
    fn integer_sum_and_average_truncation() {
        assert_eq!(
            run(AggregateSpec::new(Sum, DataType::Int), &ints(&[i64::MAX, i64::MAX, -i64::MAX])),
            Datum::Int(i64::MAX)
        );
        assert_eq!(run(AggregateSpec::new(Avg, DataType::Int), &ints(&[1, 2])), Datum::Int(1));
        assert_eq!(run(AggregateSpec::new(Avg, DataType::Int), &ints(&[-1, -2])), Datum::Int(-1));
        assert_eq!(
            run(AggregateSpec::new(Avg, DataType::Int), &ints(&[i64::MAX, i64::MAX - 2])),
            Datum::Int(i64::MAX - 1)
        );
        assert_eq!(
            run(
                AggregateSpec::new(Avg, DataType::Float),
                &[(Datum::float(1.0), 0, 1), (Datum::float(2.0), 0, 1)]
            ),
            Datum::float(1.5)
        );
    }

    #[test]
    fn float_sum_survives_retraction_exactly() {
        let spec = AggregateSpec::new(Sum, DataType::Float);
        let rows = [
            (Datum::float(1e16), 0, 1),
            (Datum::float(1.0), 1, 1),
            (Datum::float(1e16), 0, -1),
            (Datum::float(0.1), 2, 3),
        ];
        assert_eq!(run(spec, &rows), Datum::float(1.3));
    }

    #[test]
    fn min_max_of_strings_and_retracting_the_extreme() {
        let rows = [
            (Datum::string("b"), 0, 1),
            (Datum::string("a"), 1, 1),
            (Datum::string("c"), 2, 1),
            (Datum::string("a"), 1, -1),
        ];
        assert_eq!(run(AggregateSpec::new(Min, DataType::String), &rows), Datum::string("b"));
        assert_eq!(run(AggregateSpec::new(Max, DataType::String), &rows), Datum::string("c"));
    }

    #[test]
    fn variance_of_known_values() {
        let rows: Vec<_> = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].iter().map(|&v| (Datum::float(v), 0, 1)).collect();
        assert_eq!(run(AggregateSpec::new(VarPop, DataType::Float), &rows), Datum::float(4.0));
        assert_eq!(run(AggregateSpec::new(StddevPop, DataType::Float), &rows), Datum::float(2.0));
        assert_eq!(run(AggregateSpec::new(VarSamp, DataType::Float), &rows), Datum::float(32.0 / 7.0));
        assert_eq!(run(AggregateSpec::new(StddevSamp, DataType::Int), &ints(&[1, 3])), Datum::float(2f64.sqrt()));
    }

    #[test]
    fn sample_statistics_of_one_value_are_null() {
        assert_eq!(run(AggregateSpec::new(StddevSamp, DataType::Float), &[(Datum::float(3.0), 0, 1)]), Datum::Null);
        assert_eq!(run(AggregateSpec::new(VarSamp, DataType::Int), &ints(&[3])), Datum::Null);
        assert_eq!(run(AggregateSpec::new(VarPop, DataType::Int), &ints(&[3])), Datum::float(0.0));
    }

    #[test]
    fn first_and_last_go_by_event_time_then_value() {
        let rows = [
            (Datum::Int(5), 20, 1),
            (Datum::Int(7), 10, 1),
            (Datum::Int(3), 10, 1),
            (Datum::Int(9), 20, 1),
            (Datum::Null, 5, 1),
        ];
        assert_eq!(run(AggregateSpec::new(FirstValue, DataType::Int), &rows), Datum::Int(3));
        assert_eq!(run(AggregateSpec::new(LastValue, DataType::Int), &rows), Datum::Int(9));
        let mut retracted = rows.to_vec();
        retracted.push((Datum::Int(3), 10, -1));
        assert_eq!(run(AggregateSpec::new(FirstValue, DataType::Int), &retracted), Datum::Int(7));
    }

    #[test]
    fn distinct_counts_values_once() {
        let nodes = ["a", "b", "a", "c", "a"];
        let mut rows: Vec<_> = nodes.iter().map(|n| (Datum::string(n), 0, 1)).collect();
        let spec = AggregateSpec::new(Count, DataType::String).distinct();
        assert_eq!(run(spec, &rows), Datum::Int(3));
        rows.push((Datum::string("a"), 0, -2));
        assert_eq!(run(spec, &rows), Datum::Int(3));
        rows.push((Datum::string("a"), 0, -1));
        assert_eq!(run(spec, &rows), Datum::Int(2));
        let sum = AggregateSpec::new(Sum, DataType::Int).distinct();
        assert_eq!(run(sum, &ints(&[2, 2, 3, 3, 3])), Datum::Int(5));
    }

    #[test]
    fn retracted_infinity_stops_poisoning_the_average() {
        let spec = AggregateSpec::new(Avg, DataType::Float);
        let rows = [
            (Datum::float(f64::NEG_INFINITY), 0, 1),
            (Datum::float(f64::INFINITY), 0, 1),
            (Datum::float(3.0), 0, 1),
        ];
        assert!(run(spec, &rows).as_f64().is_some_and(f64::is_nan));
        let mut retracted = rows.to_vec();
        retracted.push((Datum::float(f64::NEG_INFINITY), 0, -1));
        assert_eq!(run(spec, &retracted), Datum::float(f64::INFINITY));
    }

    #[test]
    fn group_accumulator_counts_rows() {
        let specs = [AggregateSpec::new(CountStar, DataType::Null), AggregateSpec::new(Max, DataType::Float)];
        let mut group = GroupAccumulator::new(&specs);
        group.update(&[Datum::Null, Datum::float(2.0)], 0, 1);
        group.update(&[Datum::Null, Datum::float(5.0)], 0, 1);
        group.update(&[Datum::Null, Datum::float(5.0)], 0, -1);
        let mut out = Vec::new();
        group.results(&mut out);
        assert_eq!(out, vec![Datum::Int(1), Datum::float(2.0)]);
        assert_eq!(group.row_count(), 1);
        group.update(&[Datum::Null, Datum::float(2.0)], 0, -1);
        assert_eq!(group.row_count(), 0);
    }

    /// The definition of each aggregate over a multiset of (value, event time),
    /// written from scratch. Exact sums reuse [`ExactSum`], tested on its own.
    fn naive(spec: &AggregateSpec, rows: &[(Datum, Millis)]) -> Datum {
        if spec.function == CountStar {
            return Datum::Int(rows.len() as i64);
        }
        let mut present: Vec<&(Datum, Millis)> = rows.iter().filter(|(v, _)| !v.is_null()).collect();
        let mut values: Vec<Datum> = present.iter().map(|(v, _)| v.clone()).collect();
        if spec.distinct {
            values.sort();
            values.dedup();
        }
        if spec.function == Count {
            return Datum::Int(values.len() as i64);
        }
        if values.is_empty() {
            return Datum::Null;
        }
        let n = values.len();
        let exact = |f: &dyn Fn(f64) -> f64| {
            let mut sum = ExactSum::new();
            values.iter().for_each(|v| sum.add(f(v.as_f64().unwrap())));
            sum.value()
        };
        let int_sum = || values.iter().map(|v| i128::from(v.as_i64().unwrap())).sum::<i128>();
        let float = spec.input_type == DataType::Float;
        match spec.function {
            Sum if float => Datum::float(exact(&|x| x)),
            Sum => Datum::Int(int_sum() as i64),
            Avg if float => Datum::float(exact(&|x| x) / n as f64),
            Avg => Datum::Int((int_sum() / n as i128) as i64),
            Min => values.iter().min().cloned().unwrap(),
            Max => values.iter().max().cloned().unwrap(),
            FirstValue | LastValue => {
                present.sort_by(|(a, at), (b, bt)| (at, a).cmp(&(bt, b)));
                let row = if spec.function == FirstValue {
                    present[0]
                } else {
                    present[present.len() - 1]
                };
                row.0.clone()
            }
            _ => {
                let sample = matches!(spec.function, StddevSamp | VarSamp);
                if sample && n == 1 {
                    return Datum::Null;
                }
                let mean_square = exact(&|x| x * x) - exact(&|x| x).powi(2) / n as f64;
                let variance = mean_square.max(0.0) / (n as f64 - if sample { 1.0 } else { 0.0 });
                if mean_square.is_nan() {
                    Datum::float(f64::NAN)
                } else if matches!(spec.function, StddevPop | StddevSamp) {
                    Datum::float(variance.sqrt())
                } else {
                    Datum::float(variance)
                }
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(Datum, Millis),
        /// Retract the surviving row at this index (modulo their number).
        Retract(usize),
    }

    fn value(input_type: DataType) -> BoxedStrategy<Datum> {
        if input_type == DataType::Int {
            prop_oneof![
                1 => Just(Datum::Null),
                4 => (-4i64..4).prop_map(Datum::Int),
                2 => any::<i64>().prop_map(Datum::Int),
            ]
            .boxed()
        } else {
            prop_oneof![
                1 => Just(Datum::Null),
                3 => prop::sample::select(vec![0.1, 0.2, 0.3, -0.5, 1e16, 3.0]).prop_map(Datum::float),
                3 => (-1e9f64..1e9).prop_map(Datum::float),
                1 => prop::sample::select(vec![f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e300, -0.0]).prop_map(Datum::float),
            ]
            .boxed()
        }
    }

    fn ops(input_type: DataType) -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            3 => (value(input_type), 0i64..6).prop_map(|(v, t)| Op::Insert(v, t)),
            2 => any::<usize>().prop_map(Op::Retract),
        ];
        prop::collection::vec(op, 0..60)
    }

    fn all_specs(input_type: DataType) -> Vec<AggregateSpec> {
        ALL.iter()
            .flat_map(|&function| {
                let spec = AggregateSpec::new(function, input_type);
                if function == CountStar { vec![spec] } else { vec![spec, spec.distinct()] }
            })
            .collect()
    }

    fn check_against_model(input_type: DataType, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let specs = all_specs(input_type);
        let mut group = GroupAccumulator::new(&specs);
        let mut live: Vec<(Datum, Millis)> = Vec::new();
        let mut out = Vec::new();
        for op in ops {
            let (row, diff) = match op {
                Op::Insert(value, time) => {
                    live.push((value.clone(), time));
                    ((value, time), 1)
                }
                Op::Retract(_) if live.is_empty() => continue,
                Op::Retract(index) => (live.swap_remove(index % live.len()), -1),
            };
            let args = vec![row.0.clone(); specs.len()];
            group.update(&args, row.1, diff);
            out.clear();
            group.results(&mut out);
            prop_assert_eq!(group.row_count(), live.len() as Diff);
            for (spec, got) in specs.iter().zip(&out) {
                prop_assert_eq!(got, &naive(spec, &live), "{:?} over {:?}", spec, live);
            }
            // A fresh group fed the survivors in reverse order agrees too.
            let mut fresh = GroupAccumulator::new(&specs);
            for (value, time) in live.iter().rev() {
                fresh.update(&vec![value.clone(); specs.len()], *time, 1);
            }
            let mut fresh_out = Vec::new();
            fresh.results(&mut fresh_out);
            prop_assert_eq!(&fresh_out, &out);
        }
        Ok(())
    }

    /// Insertions cut into parts, each folded into its own append-only group
    /// (a worker's epoch), then merged in reverse order, half of them after a
    /// trip through timely's wire format (another process): the result equals, bit for bit,
    /// what the naive model and a retractable group fed every row say.
    fn check_append_only_against_model(input_type: DataType, rows: Vec<(Datum, Millis)>, cuts: Vec<prop::sample::Index>) -> Result<(), TestCaseError> {
        let specs: Vec<AggregateSpec> = all_specs(input_type).into_iter().filter(AggregateSpec::has_append_only_form).collect();
        prop_assert!(specs.iter().any(|spec| spec.distinct), "DISTINCT extremes keep their append-only form");
        let mut bounds: Vec<usize> = cuts.iter().map(|cut| cut.index(rows.len() + 1)).collect();
        bounds.extend([0, rows.len()]);
        bounds.sort_unstable();
        let mut merged = GroupAccumulator::append_only(&specs).unwrap();
        for (i, part) in bounds.windows(2).enumerate().rev() {
            let mut partial = GroupAccumulator::append_only(&specs).unwrap();
            for (value, time) in &rows[part[0]..part[1]] {
                partial.update(&vec![value.clone(); specs.len()], *time, 1);
            }
            if i % 2 == 0 {
                partial = crate::over_the_wire(partial);
            }
            merged.merge(partial);
        }
        let mut retractable = GroupAccumulator::new(&specs);
        for (value, time) in &rows {
            retractable.update(&vec![value.clone(); specs.len()], *time, 1);
        }
        let (mut got, mut expected) = (Vec::new(), Vec::new());
        merged.results(&mut got);
        retractable.results(&mut expected);
        prop_assert_eq!(merged.row_count(), rows.len() as Diff);
        for ((spec, got), expected) in specs.iter().zip(&got).zip(&expected) {
            prop_assert_eq!(got, &naive(spec, &rows), "{:?} over {:?}", spec, rows);
            prop_assert_eq!(got, expected, "{:?}", spec);
        }
        Ok(())
    }

    fn inserts(input_type: DataType) -> impl Strategy<Value = Vec<(Datum, Millis)>> {
        prop::collection::vec((value(input_type), 0i64..6), 0..60)
    }

    #[test]
    fn an_append_only_extreme_panics_on_a_retraction() {
        let mut max = Accumulator::append_only(&AggregateSpec::new(Max, DataType::Int)).unwrap();
        max.update(&Datum::Int(3), 0, 1);
        let retracted = std::panic::catch_unwind(move || max.update(&Datum::Int(3), 0, -1));
        assert!(retracted.is_err());
        assert!(Accumulator::append_only(&AggregateSpec::new(Sum, DataType::Int).distinct()).is_none());
        assert!(Accumulator::append_only(&AggregateSpec::new(Min, DataType::Int).distinct()).is_some());
    }

    proptest! {
        #[test]
        fn oracle_append_only_parts_merge_on_bigint(rows in inserts(DataType::Int), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..5)) {
            check_append_only_against_model(DataType::Int, rows, cuts)?;
        }

        #[test]
        fn oracle_append_only_parts_merge_on_double(rows in inserts(DataType::Float), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..5)) {
            check_append_only_against_model(DataType::Float, rows, cuts)?;
        }

        #[test]
        fn oracle_every_aggregate_on_bigint(ops in ops(DataType::Int)) {
            check_against_model(DataType::Int, ops)?;
        }

        #[test]
        fn oracle_every_aggregate_on_double(ops in ops(DataType::Float)) {
            check_against_model(DataType::Float, ops)?;
        }
    }
}
