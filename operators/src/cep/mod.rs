//! `MATCH_RECOGNIZE`: row pattern recognition over the ordered rows of one
//! partition, as a pure function the dataflow wrapper calls.
//!
//! ```sql
//! SELECT * FROM ticks MATCH_RECOGNIZE (
//!   PARTITION BY node ORDER BY ts
//!   MEASURES A.price AS base, LAST(C.price) AS spike, COUNT(B.*) AS rise_len
//!   ONE ROW PER MATCH
//!   AFTER MATCH SKIP PAST LAST ROW
//!   PATTERN (A B+ C) WITHIN INTERVAL '10' MINUTE
//!   DEFINE B AS B.price >= PREV(B.price), C AS C.price > 1.5 * A.price
//! )
//! ```
//!
//! The binder turns the clause into a [`MatchSpec`]: a [`Pattern`], one
//! [`MatchExpr`] condition per defined variable, the measures, the output mode,
//! the skip mode and `WITHIN`. [`MatchRecognizer::new`] checks and compiles it;
//! [`MatchRecognizer::find_matches`] maps a partition's rows (sorted by event
//! time, then the further `ORDER BY` columns) to its matches. No timely or
//! differential types appear here: the wrapper partitions, sorts, waits for the
//! watermark and turns changes of the match list into `(row, time, diff)`.
//!
//! # Semantics
//!
//! SQL:2016 row pattern recognition as Oracle and Trino implement it:
//!
//! * **Search.** Matching tries start rows in order. At a start row the match
//!   is the *first* one in preferment order: greedy quantifiers prefer more
//!   iterations, reluctant ones (`*?`, `+?`, `??`, `{n,m}?`) fewer, and
//!   alternatives are preferred left to right. So a greedy quantifier gives
//!   rows back when keeping them makes the rest of the pattern fail: `A+ B`
//!   with `A AS price < 5, B AS price = 3` over prices 1, 2, 3 maps 1, 2 to `A`
//!   and 3 to `B`. Concatenation is strictly contiguous: no row may be skipped
//!   between two pattern elements.
//! * **Empty matches** (possible for patterns like `A*`) are not emitted and do
//!   not consume a match number; the search moves to the next row. This is
//!   Trino's `ALL ROWS PER MATCH OMIT EMPTY MATCHES` in every output mode.
//! * **Repetitions of a body that can match zero rows** (`(A?)*`): iterations
//!   beyond the minimum must consume a row (the ECMAScript rule), so matching
//!   terminates and `(A?)*` behaves like `A*`.
//! * **AFTER MATCH SKIP** ([`AfterMatchSkip`]): `PAST LAST ROW` resumes after the
//!   match's last row, `TO NEXT ROW` after its first row, `TO FIRST v` / `TO LAST v`
//!   at the first / last row mapped to `v`. Where the standard raises an error
//!   (the target is the match's first row, which would loop forever, or no row
//!   is mapped to `v`) we resume at the row after the match's first row
//!   instead, so a bad row never stops a stream.
//! * **Output** ([`RowsPerMatch`]): `ONE ROW PER MATCH` evaluates the measures
//!   once, at the last row; `ALL ROWS PER MATCH` once per matched row, with
//!   RUNNING semantics by default and FINAL where asked (Trino's defaults), so
//!   `CLASSIFIER()` is that row's variable.
//! * **`MATCH_NUMBER()`** numbers the emitted matches of a partition 1, 2, ….
//! * **`WITHIN d`** (Flink's extension): a match whose last row's event time
//!   minus its first row's exceeds `d` is not a match; a span of exactly `d` is
//!   inside. A row whose event time is not a timestamp (NULL) cannot be part
//!   of a match under `WITHIN`.
//! * **Expression errors** (integer overflow, division by zero) make a `DEFINE`
//!   condition not TRUE and a measure NULL; each is reported as an
//!   [`EvalFailure`] with its row so the wrapper can count it and dead-letter the
//!   row. Which failures are reported depends on how far matching explored.
//!
//! The expression language, navigation and RUNNING / FINAL are described in
//! [`expr`].
//!
//! # Where this differs from Flink
//!
//! Flink implements a subset of the standard and deviates in places; where it
//! follows the standard we agree with it (the tests replay the examples of its
//! documentation). The differences, each with an example:
//!
//! * **Greedy quantifiers backtrack.** Flink's greedy loop takes a row that
//!   satisfies the loop's condition and never offers it to what follows. With
//!   `PATTERN (A+ B)`, `A AS price < 5`, `B AS price = 3` and prices 1, 2, 3,
//!   Flink finds no match (3 is swallowed by `A`); we match 1, 2 as `A` and 3
//!   as `B`. Flink also refuses a greedy quantifier on the last variable
//!   (`A B*`); we accept it.
//! * **Physical offsets.** `PREV(A.price, 2)` and `NEXT(price)` are rows of the
//!   partition, not of the match: `DEFINE A AS PREV(price) IS NULL` holds only
//!   on the partition's first row. Flink does not support `PREV`/`NEXT` with
//!   these semantics.
//! * **Alternation, groups, reluctant `??`.** `(A B | C D)+ E` and `A??` are
//!   accepted; Flink rejects them.
//! * **`ALL ROWS PER MATCH` and `CLASSIFIER()`** are supported, RUNNING by
//!   default and FINAL where asked; Flink has only `ONE ROW PER MATCH` and
//!   FINAL measures (where RUNNING and FINAL agree). With prices 10, 11, 20, 5
//!   and `A B+ C` (B rising, C falling), `LAST(B.price)` over the four output
//!   rows is NULL, 11, 20, 20 and `FINAL LAST(B.price)` is 20 on each.
//! * **Patterns that can match empty** (`A*`, `A? B*`) are accepted and their
//!   empty matches omitted; Flink rejects such patterns.
//! * **`WITHIN` at the limit.** Flink's runtime drops a partial match once
//!   `t - start >= d` (`NFA.isStateTimedOut`), so a match spanning exactly `d`
//!   is lost, although its documentation's example (a price drop from 12:00 to
//!   13:00 `WITHIN INTERVAL '1' HOUR`) shows it. We keep it: exactly `d` is inside.
//! * **`SKIP TO FIRST v` onto the match's first row, or to a `v` without rows**:
//!   Flink throws at runtime; we resume at the next row (see above).
//! * **DISTINCT aggregates** work in `DEFINE` and `MEASURES`; Flink rejects them.
//!
//! Against Trino the only differences are the omitted empty matches (Trino's
//! `ONE ROW PER MATCH` emits a row of NULL measures for them and numbers them),
//! the skip fallbacks above instead of errors, and that a navigation reads a
//! column, not an expression (`LAST(A.price * A.qty)` is for the binder to
//! rewrite or refuse).
//!
//! # How matching works
//!
//! The pattern is compiled to a Thompson NFA ([`pattern`]) and run as a Pike
//! VM: one list of threads per row, kept in preferment order, so the first
//! thread to accept is the match and the lower-preference threads behind it
//! are dropped. Backtracking is implicit: a greedy loop's "stop here" thread
//! waits behind its "one more" thread instead of being re-tried later.
//!
//! Two threads at the same instruction whose futures are identical are merged,
//! keeping the preferred one; this is what keeps `(A | B)* C` linear instead of
//! exponential. A thread's future depends on its instruction, the position and
//! what the `DEFINE` conditions can still read of its past: the rows mapped to
//! a variable that some condition reads through `FIRST`, `LAST` (other than the
//! row being classified), an aggregate, or from another variable's condition.
//! Only those rows form the merge key (hash-consed, so comparing keys is
//! comparing integers). References without a variable (`price`, `SUM(price)`)
//! do not enter the key, because every thread at a position has the same rows.
//! For `A B+ C` with `C AS C.price > 1.5 * A.price` the key is the single `A`
//! row, so each start row costs at most a few threads per row it examines.
//!
//! Cost: each start row examines at most the rows up to the end of its `WITHIN`
//! window (or the pattern's maximal length, or until every thread has died),
//! so a partition costs O(rows × rows per window × threads) in the worst case
//! and much less when conditions fail early. The number of threads is bounded
//! by the program length times the number of distinct merge keys, so it stays
//! small unless a condition reads the rows of a variable that a loop can map
//! in many ways: `(A | B)* C` with `C AS SUM(A.price) > 10` keeps one thread
//! per subset of rows mapped to `A`, which `WITHIN` keeps finite.
//!
//! # Incremental recomputation
//!
//! The search is a walk: start at row 0; a search from `s` either fails
//! (next start `s + 1`) or yields a match (next start from `AFTER MATCH
//! SKIP`, recorded as [`Match::next_start`]). A search from `s` reads rows
//! `s - lookback ..= e + lookahead`, where `e` is the last row it examined
//! ([`MatchRecognizer::lookback`] and [`MatchRecognizer::lookahead`] are the
//! largest physical offsets in the expressions), and `e` is bounded by
//! `WITHIN` and by the pattern's maximal length.
//!
//! **Appended rows** (the common case: the watermark releases rows later
//! than every row before them) continue a [`Walk`]: the searches that ran
//! out of rows keep their threads and step over the new rows, and nothing
//! else runs again ([`MatchRecognizer::advance`]; see the `walk` module).
//!
//! **A change in place** (a revision, a retraction, a late row within the
//! allowed lateness) or appended rows that an expression reads ahead
//! (`NEXT`) restart the walk. When rows `0..i` are unchanged and row `i` is
//! inserted, deleted or revised:
//!
//! 1. [`MatchRecognizer::earliest_affected_start`]`(rows, i)` is the first start
//!    whose search may read row `i` or later; every search from an earlier
//!    start reads only unchanged rows, so its result stands. It reads only
//!    `rows[..i]`, which are the same before and after the change.
//! 2. [`resume`]`(old_matches, earliest, 1)` finds where the old walk crossed
//!    that point: the old matches before it are kept, and the walk restarts at
//!    `earliest` or, if an old match's skip jumped over it, at that skip's
//!    target, with the next match number ([`Walk::restart`]).
//! 3. [`MatchRecognizer::advance`] (or [`MatchRecognizer::find_matches`])
//!    from there gives the new tail; the wrapper retracts the old tail and
//!    inserts the new one.
//!
//! Without `WITHIN` and with an unbounded pattern step 1 returns 0. The same
//! bound says which rows the wrapper may drop from the front of a
//! partition: every future change comes at or after the first row not
//! older than the allowed lateness behind the watermark, so the searches
//! before `earliest_affected_start` of that row stand, and the rows before
//! them, minus `lookback` for `PREV`, are no longer read.

mod condition;
pub mod dataflow;
pub mod expr;
mod matcher;
pub mod pattern;
mod walk;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;

use carbonflow_core::{Datum, Millis, Row, Str};

pub use expr::{BinaryOp, EvalError, Logical, MatchAggregate, MatchExpr, Navigation, ScalarFunction, Semantics};
pub use matcher::Buffers;
pub use pattern::{Pattern, VarId};
pub use walk::Walk;

use condition::Condition;
use expr::{Scope, SliceLabels};
use pattern::Program;

/// A `MATCH_RECOGNIZE` clause the binder rejected or the compiler cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CepError {
    /// The text of a `PATTERN` could not be parsed.
    #[error("pattern syntax error at byte {position}: {message}")]
    PatternSyntax {
        /// Byte offset in the pattern text.
        position: usize,
        /// What was wrong.
        message: String,
    },
    /// The pattern unrolls into too many instructions (e.g. `A{200000}`).
    #[error("the pattern is too large: more than {limit} instructions once its quantifiers are unrolled")]
    PatternTooLarge {
        /// The instruction limit.
        limit: usize,
    },
    /// A quantifier's maximum is below its minimum.
    #[error("quantifier {{{min},{max}}} has its maximum below its minimum")]
    BadQuantifier {
        /// The minimum.
        min: u32,
        /// The maximum.
        max: u32,
    },
    /// A variable index that has no name in [`MatchSpec::variables`].
    #[error("pattern variable #{0} is not declared")]
    UnknownVariable(u16),
    /// A variable is defined twice in `DEFINE`.
    #[error("pattern variable {0} is defined twice")]
    DuplicateDefinition(String),
    /// A variable is defined or skipped to but does not occur in the pattern.
    #[error("pattern variable {0} does not occur in the pattern")]
    NotInPattern(String),
    /// `FINAL` inside `DEFINE`, which the standard forbids.
    #[error("FINAL is not allowed in DEFINE (the condition of {0})")]
    FinalInDefine(String),
}

/// `ONE ROW PER MATCH` or `ALL ROWS PER MATCH`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RowsPerMatch {
    /// One output row per match: measures at the match's last row.
    #[default]
    One,
    /// One output row per matched row: RUNNING measures at that row.
    All,
}

/// `AFTER MATCH SKIP …`: where the search resumes after a match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AfterMatchSkip {
    /// `PAST LAST ROW` (the default): after the match's last row.
    #[default]
    PastLastRow,
    /// `TO NEXT ROW`: after the match's first row.
    ToNextRow,
    /// `TO FIRST v`: at the first row mapped to `v`.
    ToFirst(VarId),
    /// `TO LAST v` (also `TO v`): at the last row mapped to `v`.
    ToLast(VarId),
}

/// `WITHIN d`: the most event time a match may span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Within {
    /// The largest allowed `last.ts - first.ts`, in milliseconds (inclusive).
    pub duration: Millis,
    /// The event-time column (TIMESTAMP, or BIGINT milliseconds).
    pub time_column: usize,
}

/// A further `ORDER BY` column (after the event time), e.g. `seq DESC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrderColumn {
    /// The column.
    pub column: usize,
    /// `DESC`.
    pub descending: bool,
    /// Whether NULL comes before every value (`NULLS FIRST`) or after.
    pub nulls_first: bool,
}

impl OrderColumn {
    /// How `a` and `b`, values of the column, are ordered.
    pub fn compare(&self, a: &Datum, b: &Datum) -> Ordering {
        match (a.is_null(), b.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if self.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) => self.compare(b, a).reverse(),
            (false, false) if self.descending => b.cmp(a),
            (false, false) => a.cmp(b),
        }
    }
}

/// A bound `MATCH_RECOGNIZE` clause, minus `PARTITION BY` and the ordering
/// by event time (the wrapper's business).
#[derive(Clone, Debug)]
pub struct MatchSpec {
    /// The names of the pattern variables; [`VarId`] `i` is `variables[i]`.
    pub variables: Vec<String>,
    /// `PATTERN (...)`.
    pub pattern: Pattern,
    /// `DEFINE v AS condition`; a variable without a condition matches every row.
    pub define: Vec<(VarId, MatchExpr)>,
    /// `MEASURES`, in output order.
    pub measures: Vec<MatchExpr>,
    /// `ONE ROW PER MATCH` or `ALL ROWS PER MATCH`.
    pub rows_per_match: RowsPerMatch,
    /// `AFTER MATCH SKIP`.
    pub skip: AfterMatchSkip,
    /// `WITHIN`, if any.
    pub within: Option<Within>,
    /// The `ORDER BY` columns after the event time, which order rows of
    /// equal event time. The wrapper orders the rows; the matcher takes them
    /// in order.
    pub order_by: Vec<OrderColumn>,
}

impl MatchSpec {
    /// A spec with the pattern parsed from `pattern` (see [`Pattern::parse`]),
    /// no conditions or measures, `ONE ROW PER MATCH`, `SKIP PAST LAST ROW`
    /// and no `WITHIN`. Fill in the rest with the fields.
    pub fn parse(pattern: &str) -> Result<MatchSpec, CepError> {
        let mut variables = Vec::new();
        let pattern = Pattern::parse(pattern, &mut variables)?;
        Ok(MatchSpec {
            variables,
            pattern,
            define: Vec::new(),
            measures: Vec::new(),
            rows_per_match: RowsPerMatch::One,
            skip: AfterMatchSkip::PastLastRow,
            within: None,
            order_by: Vec::new(),
        })
    }

    /// The variable called `name`, if the pattern has one.
    pub fn var(&self, name: &str) -> Option<VarId> {
        let index = self.variables.iter().position(|known| known == name)?;
        u16::try_from(index).ok().map(VarId)
    }
}

/// One match of the pattern in a partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Match {
    /// `MATCH_NUMBER()`: 1 for the partition's first emitted match.
    pub number: u64,
    /// The index of the match's first row in the partition.
    pub start: usize,
    /// One past the index of its last row (a match is never empty).
    pub end: usize,
    /// The variable of each row `start..end` (`CLASSIFIER()`).
    pub labels: Vec<VarId>,
    /// The measures: one row for `ONE ROW PER MATCH`, one per matched row for
    /// `ALL ROWS PER MATCH`.
    pub measures: Vec<Row>,
    /// Where the search resumed after this match (`AFTER MATCH SKIP`), always
    /// after `start`.
    pub next_start: usize,
}

/// An expression that failed on a row. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EvalFailure {
    /// The row being classified (a `DEFINE` condition) or output (a measure).
    pub row: usize,
    /// What went wrong.
    pub message: String,
}

/// The result of [`MatchRecognizer::find_matches`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The matches, in order of their start rows.
    pub matches: Vec<Match>,
    /// Expression failures, sorted by row and without duplicates.
    pub failures: Vec<EvalFailure>,
}

/// Where a recomputation after a change resumes. See [`resume`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resume {
    /// How many of the old matches stand (a prefix of them).
    pub kept: usize,
    /// The start row of the first search to run again.
    pub start: usize,
    /// The match number the next match gets.
    pub match_number: u64,
}

/// Where to recompute from after a change at or after row `earliest` (see
/// [`MatchRecognizer::earliest_affected_start`]), given the matches found
/// before the change, in order. `first_number` is the number the partition's
/// first match gets (1, unless older matches were retired).
pub fn resume(old_matches: &[Match], earliest: usize, first_number: u64) -> Resume {
    let kept = old_matches.partition_point(|m| m.start < earliest);
    match kept.checked_sub(1).map(|i| &old_matches[i]) {
        None => Resume {
            kept,
            start: earliest,
            match_number: first_number,
        },
        // The searches between a match's start and its skip target never ran.
        Some(last) => Resume {
            kept,
            start: earliest.max(last.next_start),
            match_number: last.number + 1,
        },
    }
}

/// A checked, compiled `MATCH_RECOGNIZE`; cheap to share between partitions.
#[derive(Clone, Debug)]
pub struct MatchRecognizer {
    program: Program,
    names: Vec<Str>,
    /// The `DEFINE` condition of each variable, by [`VarId`].
    conditions: Vec<Option<Condition>>,
    /// By [`VarId`]: whether some condition reads the rows mapped to the variable.
    history: Vec<bool>,
    measures: Vec<MatchExpr>,
    rows_per_match: RowsPerMatch,
    skip: AfterMatchSkip,
    within: Option<Within>,
    order_by: Vec<OrderColumn>,
    max_len: Option<u64>,
    lookback: usize,
    lookahead: usize,
    uses_match_number: bool,
    /// Whether a `DEFINE` condition reads `MATCH_NUMBER()`, so a search depends on its number.
    define_uses_match_number: bool,
}

impl MatchRecognizer {
    /// Checks `spec` and compiles its pattern.
    pub fn new(spec: MatchSpec) -> Result<MatchRecognizer, CepError> {
        let vars = spec.variables.len();
        let known = |var: VarId| if var.index() < vars { Ok(var) } else { Err(CepError::UnknownVariable(var.0)) };
        let mut in_pattern = vec![false; vars];
        let mut unknown = None;
        spec.pattern.for_each_var(&mut |var| match known(var) {
            Ok(var) => in_pattern[var.index()] = true,
            Err(error) => unknown = Some(error),
        });
        check_quantifiers(&spec.pattern)?;
        if let Some(error) = unknown {
            return Err(error);
        }
        let name = |var: VarId| spec.variables[var.index()].clone();
        let used = |var: VarId| -> Result<VarId, CepError> {
            if in_pattern[known(var)?.index()] {
                Ok(var)
            } else {
                Err(CepError::NotInPattern(name(var)))
            }
        };
        if let AfterMatchSkip::ToFirst(var) | AfterMatchSkip::ToLast(var) = spec.skip {
            used(var)?;
        }

        let mut conditions = vec![None; vars];
        let mut history = vec![false; vars];
        let (mut lookback, mut lookahead, mut uses_match_number) = (0i64, 0i64, false);
        let mut define_uses_match_number = false;
        let mut reach = |expr: &MatchExpr| {
            if let MatchExpr::Column(navigation) = expr {
                lookback = lookback.max(-navigation.physical);
                lookahead = lookahead.max(navigation.physical);
            }
            uses_match_number |= matches!(expr, MatchExpr::MatchNumber);
        };
        for (var, condition) in &spec.define {
            used(*var)?;
            if conditions[var.index()].is_some() {
                return Err(CepError::DuplicateDefinition(name(*var)));
            }
            let mut error = None;
            condition.visit(&mut |expr| {
                reach(expr);
                define_uses_match_number |= matches!(expr, MatchExpr::MatchNumber);
                let (read, semantics, only_current) = match expr {
                    MatchExpr::Column(navigation) => (navigation.var, navigation.semantics, navigation.logical == Logical::Last(0)),
                    MatchExpr::Aggregate(aggregate) => (aggregate.var, aggregate.semantics, false),
                    MatchExpr::Classifier(semantics) => (None, *semantics, true),
                    _ => return,
                };
                if semantics == Semantics::Final {
                    error = Some(CepError::FinalInDefine(name(*var)));
                }
                match read.map(known) {
                    Some(Ok(read)) if !(read == *var && only_current) => history[read.index()] = true,
                    Some(Err(unknown)) => error = Some(unknown),
                    _ => {}
                }
            });
            if let Some(error) = error {
                return Err(error);
            }
            conditions[var.index()] = Some(Condition::new(condition.clone(), *var));
        }
        for measure in &spec.measures {
            let mut error = None;
            measure.visit(&mut |expr| {
                reach(expr);
                let read = match expr {
                    MatchExpr::Column(navigation) => navigation.var,
                    MatchExpr::Aggregate(aggregate) => aggregate.var,
                    _ => None,
                };
                if let Some(Err(unknown)) = read.map(known) {
                    error = Some(unknown);
                }
            });
            if let Some(error) = error {
                return Err(error);
            }
        }

        Ok(MatchRecognizer {
            program: Program::compile(&spec.pattern)?,
            names: spec.variables.iter().map(|name| Str::from(name.as_str())).collect(),
            conditions,
            history,
            measures: spec.measures,
            rows_per_match: spec.rows_per_match,
            skip: spec.skip,
            within: spec.within,
            order_by: spec.order_by,
            max_len: spec.pattern.max_len(),
            lookback: usize::try_from(lookback).unwrap_or(usize::MAX),
            lookahead: usize::try_from(lookahead).unwrap_or(usize::MAX),
            uses_match_number,
            define_uses_match_number,
        })
    }

    /// The matches among `rows` (one partition, in order) found by a search
    /// walk that begins at row `from` with match number `first_number`.
    /// `find_matches(rows, 0, 1)` is the whole partition; other arguments come
    /// from [`resume`].
    pub fn find_matches(&self, rows: &[Row], from: usize, first_number: u64) -> Scan {
        let mut failures = Vec::new();
        let matches = self.scan_to_end(rows, from, first_number, &mut failures);
        failures.sort();
        failures.dedup();
        Scan { matches, failures }
    }

    /// The match of `start..start + labels.len()` with these variables and number.
    fn found(&self, rows: &[Row], start: usize, labels: Vec<VarId>, number: u64, failures: &mut Vec<EvalFailure>) -> Match {
        let end = start + labels.len();
        Match {
            number,
            start,
            end,
            next_start: self.next_start(start, end, &labels),
            measures: self.measures(rows, start, &labels, number, failures),
            labels,
        }
    }

    /// The first start row whose search may read row `changed` or a later
    /// one. Reads only `rows[..changed]`. See the module documentation.
    pub fn earliest_affected_start(&self, rows: &[Row], changed: usize) -> usize {
        let changed = changed.min(rows.len());
        // The first row whose condition may read row `changed`.
        let first_reader = changed.saturating_sub(self.lookahead);
        let mut earliest = match self.max_len {
            // A search from `s` examines rows `s .. s + max_len` at most.
            Some(max_len) => first_reader.saturating_sub(usize::try_from(max_len).unwrap_or(usize::MAX).saturating_sub(1)),
            None => 0,
        };
        if let Some(within) = self.within {
            // Rows are examined contiguously from the start, each within `WITHIN`
            // of it; the latest unchanged row at or before `first_reader` is a
            // witness: a start too far before it cannot examine it or anything later.
            if changed == 0 {
                return 0;
            }
            let witness = first_reader.min(changed - 1);
            let Some(limit) = event_time(&rows[witness], within.time_column) else {
                // No search examines a row without a time, so none gets past it.
                return earliest.max(witness + 1).min(changed);
            };
            let mut start = witness;
            while start > earliest {
                match event_time(&rows[start - 1], within.time_column) {
                    Some(time) if limit.saturating_sub(time) > within.duration => break,
                    _ => start -= 1,
                }
            }
            earliest = earliest.max(start);
        }
        earliest.min(changed)
    }

    /// The `ORDER BY` columns after the event time.
    pub fn order_by(&self) -> &[OrderColumn] {
        &self.order_by
    }

    /// The most rows before a match's first row that an expression can read (`PREV`).
    pub fn lookback(&self) -> usize {
        self.lookback
    }

    /// The most rows after the row being classified or output that an
    /// expression can read (`NEXT`).
    pub fn lookahead(&self) -> usize {
        self.lookahead
    }

    /// Whether an expression uses `MATCH_NUMBER()`, so that a match added or
    /// removed early in a partition changes the output of every later match.
    pub fn uses_match_number(&self) -> bool {
        self.uses_match_number
    }

    /// The variable names, by [`VarId`].
    pub fn variables(&self) -> &[Str] {
        &self.names
    }

    /// The row the search resumes at after a match of `start..end`.
    fn next_start(&self, start: usize, end: usize, labels: &[VarId]) -> usize {
        let target = match self.skip {
            AfterMatchSkip::PastLastRow => end,
            AfterMatchSkip::ToNextRow => start + 1,
            AfterMatchSkip::ToFirst(var) => labels.iter().position(|label| *label == var).map_or(start, |offset| start + offset),
            AfterMatchSkip::ToLast(var) => labels.iter().rposition(|label| *label == var).map_or(start, |offset| start + offset),
        };
        // The standard's errors (back to the start, or no such row) become TO NEXT ROW.
        target.max(start + 1)
    }

    fn measures(&self, rows: &[Row], start: usize, labels: &[VarId], number: u64, failures: &mut Vec<EvalFailure>) -> Vec<Row> {
        let last = start + labels.len() - 1;
        let outputs = match self.rows_per_match {
            RowsPerMatch::One => last..=last,
            RowsPerMatch::All => start..=last,
        };
        outputs
            .map(|current| {
                let scope = Scope {
                    rows,
                    start,
                    current,
                    last,
                    labels: SliceLabels { start, labels },
                    match_number: number,
                    names: &self.names,
                };
                self.measures
                    .iter()
                    .map(|measure| {
                        scope.eval(measure).unwrap_or_else(|error| {
                            failures.push(EvalFailure {
                                row: current,
                                message: error.0,
                            });
                            Datum::Null
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

/// A row's event time: a TIMESTAMP, or BIGINT milliseconds; `None` otherwise.
fn event_time(row: &Row, column: usize) -> Option<Millis> {
    match row.get(column) {
        Datum::Timestamp(millis) | Datum::Int(millis) => Some(*millis),
        _ => None,
    }
}

fn check_quantifiers(pattern: &Pattern) -> Result<(), CepError> {
    match pattern {
        Pattern::Var(_) => Ok(()),
        Pattern::Concat(parts) | Pattern::Alt(parts) => parts.iter().try_for_each(check_quantifiers),
        Pattern::Group(inner) => check_quantifiers(inner),
        Pattern::Repeat { inner, min, max, .. } => match max {
            Some(max) if max < min => Err(CepError::BadQuantifier { min: *min, max: *max }),
            _ => check_quantifiers(inner),
        },
    }
}
