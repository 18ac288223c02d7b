//! Conformance tests of `MATCH_RECOGNIZE`, a brute-force reference matcher and
//! property tests against it (full scans and incremental recomputation), and
//! a property test of the dataflow core against full scans.
//!
//! Rows have two columns: `price` (BIGINT, possibly NULL) and `ts` (TIMESTAMP).
//! Where an example comes from Flink's documentation the test says so, and
//! where our answer differs from Flink's the comment says why.

use carbonflow_core::{DataType, Datum, Diff, Millis, Row};
use proptest::prelude::*;

use super::expr::{Scope, SliceLabels};
use super::*;
use crate::aggregate::{AggregateFunction, AggregateSpec};

const PRICE: usize = 0;
const TS: usize = 1;
const MINUTE: Millis = 60_000;

/// Rows with these prices, one minute apart.
fn prices(prices: &[i64]) -> Vec<Row> {
    let timed: Vec<_> = prices.iter().enumerate().map(|(i, p)| (Some(*p), i as Millis * MINUTE)).collect();
    rows(&timed)
}

/// Rows of (price, event time).
fn rows(rows: &[(Option<i64>, Millis)]) -> Vec<Row> {
    rows.iter()
        .map(|(price, ts)| Row::new(vec![price.map_or(Datum::Null, Datum::Int), Datum::Timestamp(*ts)]))
        .collect()
}

fn spec(pattern: &str) -> MatchSpec {
    MatchSpec::parse(pattern).expect("valid pattern")
}

fn vars<const N: usize>(spec: &MatchSpec, names: [&str; N]) -> [Option<VarId>; N] {
    names.map(|name| Some(spec.var(name).expect("declared variable")))
}

fn define(spec: &mut MatchSpec, name: &str, condition: MatchExpr) {
    let var = spec.var(name).expect("declared variable");
    spec.define.push((var, condition));
}

fn price(var: Option<VarId>) -> MatchExpr {
    MatchExpr::column(var, PRICE)
}

fn int(value: i64) -> MatchExpr {
    MatchExpr::literal(Datum::Int(value))
}

fn op(left: MatchExpr, op: BinaryOp, right: MatchExpr) -> MatchExpr {
    MatchExpr::binary(op, left, right)
}

fn and(left: MatchExpr, right: MatchExpr) -> MatchExpr {
    op(left, BinaryOp::And, right)
}

fn or(left: MatchExpr, right: MatchExpr) -> MatchExpr {
    op(left, BinaryOp::Or, right)
}

fn is_null(expr: MatchExpr) -> MatchExpr {
    MatchExpr::IsNull {
        expr: Box::new(expr),
        negated: false,
    }
}

fn agg(function: AggregateFunction, var: Option<VarId>, column: Option<usize>) -> MatchExpr {
    MatchExpr::aggregate(AggregateSpec::new(function, DataType::Int), var, column)
}

fn count(var: Option<VarId>) -> MatchExpr {
    agg(AggregateFunction::CountStar, var, None)
}

fn scan(spec: MatchSpec, rows: &[Row]) -> Scan {
    MatchRecognizer::new(spec).expect("valid spec").find_matches(rows, 0, 1)
}

/// Each match as `start:VARIABLES`, e.g. `0:A B B C`.
fn shapes(spec: MatchSpec, rows: &[Row]) -> Vec<String> {
    let names = spec.variables.clone();
    scan(spec, rows)
        .matches
        .iter()
        .map(|m| {
            let labels: Vec<&str> = m.labels.iter().map(|v| names[v.index()].as_str()).collect();
            format!("{}:{}", m.start, labels.join(" "))
        })
        .collect()
}

/// The single measure of each match (ONE ROW PER MATCH).
fn measure(spec: MatchSpec, rows: &[Row]) -> Vec<Datum> {
    scan(spec, rows).matches.iter().map(|m| m.measures[0].get(0).clone()).collect()
}

#[test]
fn strict_contiguity() {
    let mut spec = spec("A B");
    define(&mut spec, "A", op(price(None), BinaryOp::Eq, int(1)));
    define(&mut spec, "B", op(price(None), BinaryOp::Eq, int(2)));
    // The 3 between the first 1 and the 2 breaks the first candidate.
    assert_eq!(shapes(spec, &prices(&[1, 3, 2, 1, 2])), ["3:A B"]);
}

fn within_pair(span: Millis) -> Vec<String> {
    let mut spec = spec("A B");
    define(&mut spec, "A", op(price(None), BinaryOp::Eq, int(1)));
    define(&mut spec, "B", op(price(None), BinaryOp::Eq, int(2)));
    spec.within = Some(Within {
        duration: 10 * MINUTE,
        time_column: TS,
    });
    shapes(spec, &rows(&[(Some(1), 1_000), (Some(2), 1_000 + span)]))
}

#[test]
fn within_span_exactly_at_the_limit_matches() {
    assert_eq!(within_pair(10 * MINUTE), ["0:A B"]);
}

#[test]
fn within_span_just_inside_matches() {
    assert_eq!(within_pair(10 * MINUTE - 1), ["0:A B"]);
}

#[test]
fn within_span_just_outside_does_not_match() {
    assert!(within_pair(10 * MINUTE + 1).is_empty());
}

/// Flink's documentation: a drop of more than 10 within an hour. The only
/// match spans exactly one hour (12:00 to 13:00), so it exists only because
/// the limit is inclusive.
#[test]
fn flink_docs_price_drop_within_one_hour() {
    let mut spec = spec("A B* C");
    let [a, b, c] = vars(&spec, ["A", "B", "C"]);
    let ten_below_a = || op(price(a), BinaryOp::Subtract, int(10));
    define(&mut spec, "B", op(price(b), BinaryOp::Gt, ten_below_a()));
    define(&mut spec, "C", op(price(c), BinaryOp::Lt, ten_below_a()));
    spec.measures = vec![MatchExpr::column(c, TS), op(price(a), BinaryOp::Subtract, price(c))];
    spec.within = Some(Within {
        duration: 60 * MINUTE,
        time_column: TS,
    });
    let ticks = [20, 17, 18, 11, 14, 9, 15, 14, 24, 1, 19];
    let rows = rows(&ticks.iter().enumerate().map(|(i, p)| (Some(*p), i as Millis * 20 * MINUTE)).collect::<Vec<_>>());
    let matches = scan(spec, &rows).matches;
    assert_eq!(matches.len(), 1);
    assert_eq!((matches[0].start, matches[0].end), (6, 10));
    assert_eq!(matches[0].measures, [Row::new(vec![Datum::Timestamp(9 * 20 * MINUTE), Datum::Int(14)])]);
}

#[test]
fn null_in_define_is_not_true() {
    let nullable = rows(&[(None, 0), (Some(1), 1), (Some(3), 2), (None, 3)]);
    let mut greater = spec("A");
    define(&mut greater, "A", op(price(None), BinaryOp::Gt, int(2)));
    assert_eq!(shapes(greater, &nullable), ["2:A"]);
    // NOT NULL is NULL, so negating does not pick the NULL rows up either.
    let mut negated = spec("A");
    define(&mut negated, "A", MatchExpr::Not(Box::new(op(price(None), BinaryOp::Gt, int(2)))));
    assert_eq!(shapes(negated, &nullable), ["1:A"]);
    // Comparing with a NULL from another variable fails too.
    let mut pair = spec("A B");
    let [a, b] = vars(&pair, ["A", "B"]);
    define(&mut pair, "B", op(price(b), BinaryOp::Gt, price(a)));
    assert_eq!(shapes(pair, &nullable), ["1:A B"]);
}

/// Flink's documentation of LAST with offsets: B must rise, and more than
/// double the price two B rows back.
#[test]
fn first_and_last_with_offsets() {
    let mut spec = spec("A B+");
    let [a, b] = vars(&spec, ["A", "B"]);
    let last = |n| MatchExpr::last(b, PRICE, n);
    define(&mut spec, "A", op(price(a), BinaryOp::GtEq, int(10)));
    define(
        &mut spec,
        "B",
        and(
            or(is_null(last(1)), op(price(b), BinaryOp::Gt, last(1))),
            or(is_null(last(2)), op(price(b), BinaryOp::Gt, op(int(2), BinaryOp::Multiply, last(2)))),
        ),
    );
    spec.measures = vec![
        MatchExpr::first(b, PRICE, 1),
        MatchExpr::last(b, PRICE, 2),
        MatchExpr::first(b, PRICE, 3),
        MatchExpr::first(None, PRICE, 0),
    ];
    let matches = scan(spec, &prices(&[10, 15, 20, 31, 35])).matches;
    assert_eq!(matches.len(), 1);
    // 35 is not mapped: 35 < 2 * 20.
    assert_eq!((matches[0].start, matches[0].end), (0, 4));
    assert_eq!(
        matches[0].measures,
        [Row::new(vec![Datum::Int(20), Datum::Int(15), Datum::Null, Datum::Int(10)])]
    );
}

#[test]
fn prev_past_the_partition_start_is_null() {
    let mut first_only = spec("A");
    define(&mut first_only, "A", is_null(MatchExpr::prev(None, PRICE, 1)));
    first_only.skip = AfterMatchSkip::ToNextRow;
    assert_eq!(shapes(first_only, &prices(&[5, 5, 5])), ["0:A"]);

    let mut two_back = spec("A");
    let [a] = vars(&two_back, ["A"]);
    define(&mut two_back, "A", is_null(MatchExpr::prev(a, PRICE, 2)));
    two_back.skip = AfterMatchSkip::ToNextRow;
    two_back.measures = vec![MatchExpr::prev(a, PRICE, 1)];
    assert_eq!(measure(two_back, &prices(&[5, 6, 7])), [Datum::Null, Datum::Int(5)]);

    // PREV of a match's first row is the row before it, outside the match.
    let mut rise = spec("A");
    define(&mut rise, "A", op(price(None), BinaryOp::Gt, MatchExpr::prev(None, PRICE, 1)));
    assert_eq!(shapes(rise, &prices(&[1, 2, 2, 3])), ["1:A", "3:A"]);
}

#[test]
fn aggregates_in_define_count_of_absent_variable_is_zero_and_sum_is_null() {
    let mut spec = spec("A B");
    let [a, b] = vars(&spec, ["A", "B"]);
    let empty_b = [
        op(count(b), BinaryOp::Eq, int(0)),
        op(agg(AggregateFunction::Count, b, Some(PRICE)), BinaryOp::Eq, int(0)),
        is_null(agg(AggregateFunction::Sum, b, Some(PRICE))),
        is_null(agg(AggregateFunction::Avg, b, Some(PRICE))),
        is_null(agg(AggregateFunction::Min, b, Some(PRICE))),
        is_null(agg(AggregateFunction::Max, b, Some(PRICE))),
    ];
    define(&mut spec, "A", empty_b.into_iter().reduce(and).expect("conditions"));
    // In B's condition the candidate row already counts as B.
    define(
        &mut spec,
        "B",
        and(
            op(count(b), BinaryOp::Eq, int(1)),
            op(agg(AggregateFunction::Sum, a, Some(PRICE)), BinaryOp::Eq, int(3)),
        ),
    );
    assert_eq!(shapes(spec, &prices(&[3, 4, 5])), ["0:A B"]);
}

/// Flink's documentation of aggregates in DEFINE: B rows while the running
/// sums stay below their limits.
#[test]
fn aggregates_in_define_are_running() {
    let mut spec = spec("A B+");
    let [a, b] = vars(&spec, ["A", "B"]);
    define(&mut spec, "A", op(price(a), BinaryOp::GtEq, int(10)));
    define(
        &mut spec,
        "B",
        and(
            op(price(b), BinaryOp::Gt, price(a)),
            and(
                op(agg(AggregateFunction::Sum, None, Some(PRICE)), BinaryOp::Lt, int(100)),
                op(agg(AggregateFunction::Sum, b, Some(PRICE)), BinaryOp::Lt, int(80)),
            ),
        ),
    );
    spec.measures = vec![agg(AggregateFunction::Sum, b, Some(PRICE)), agg(AggregateFunction::Sum, None, Some(PRICE))];
    let matches = scan(spec, &prices(&[10, 15, 20, 31, 35])).matches;
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].end, 4);
    assert_eq!(matches[0].measures, [Row::new(vec![Datum::Int(66), Datum::Int(76)])]);

    // A running average: 1, 2 average 1.5; adding 6 makes it 3.
    let mut average = super::tests::spec("A+");
    let [a] = vars(&average, ["A"]);
    define(&mut average, "A", op(agg(AggregateFunction::Avg, a, Some(PRICE)), BinaryOp::Lt, int(3)));
    assert_eq!(shapes(average, &prices(&[1, 2, 6, 1, 1])), ["0:A A", "3:A A"]);
}

/// Flink's documentation of the skip strategies: `A+ C` with
/// `SUM(A.price) < 30`. Each entry is (start, end, SUM(A.price)).
fn flink_skip_example(skip: AfterMatchSkip) -> Vec<(usize, usize, Datum)> {
    let mut spec = spec("A+ C");
    let [a] = vars(&spec, ["A"]);
    define(&mut spec, "A", op(agg(AggregateFunction::Sum, a, Some(PRICE)), BinaryOp::Lt, int(30)));
    spec.measures = vec![agg(AggregateFunction::Sum, a, Some(PRICE))];
    spec.skip = skip;
    let matches = scan(spec, &prices(&[7, 9, 10, 5, 10, 7, 14])).matches;
    matches.iter().map(|m| (m.start, m.end, m.measures[0].get(0).clone())).collect()
}

#[test]
fn skip_past_last_row_with_overlapping_candidates() {
    assert_eq!(
        flink_skip_example(AfterMatchSkip::PastLastRow),
        [(0, 4, Datum::Int(26)), (4, 7, Datum::Int(17))]
    );
}

/// Flink lists the first five matches only: at row 5 its greedy `A+` takes
/// 7 and 14 and never gives 14 back to `C`; ours backtracks to `A = 7, C = 14`.
#[test]
fn skip_to_next_row_with_overlapping_candidates() {
    let expected = [(0, 4, 26), (1, 5, 24), (2, 6, 25), (3, 7, 22), (4, 7, 17), (5, 7, 7)].map(|(s, e, sum)| (s, e, Datum::Int(sum)));
    assert_eq!(flink_skip_example(AfterMatchSkip::ToNextRow), expected);
}

/// As in Flink's documentation plus the backtracking match at row 5 (see above).
#[test]
fn skip_to_last_var_with_overlapping_candidates() {
    let spec = spec("A+ C");
    let a = spec.var("A").expect("declared");
    let expected = [(0, 4, 26), (2, 6, 25), (4, 7, 17), (5, 7, 7)].map(|(s, e, sum)| (s, e, Datum::Int(sum)));
    assert_eq!(flink_skip_example(AfterMatchSkip::ToLast(a)), expected);
}

/// Flink throws at runtime (the first A is the match's first row); we resume
/// at the next row, so the answer equals SKIP TO NEXT ROW.
#[test]
fn skip_to_first_var_onto_the_match_start_resumes_at_the_next_row() {
    let spec = spec("A+ C");
    let a = spec.var("A").expect("declared");
    assert_eq!(flink_skip_example(AfterMatchSkip::ToFirst(a)), flink_skip_example(AfterMatchSkip::ToNextRow));
}

#[test]
fn skip_to_first_and_last_of_a_loop_variable() {
    let rising = |skip: fn(VarId) -> AfterMatchSkip| {
        let mut spec = spec("A B+");
        let [b] = vars(&spec, ["B"]);
        define(&mut spec, "B", op(price(b), BinaryOp::Gt, MatchExpr::prev(b, PRICE, 1)));
        spec.skip = skip(b.expect("declared"));
        shapes(spec, &prices(&[1, 2, 3, 4]))
    };
    assert_eq!(rising(AfterMatchSkip::ToFirst), ["0:A B B B", "1:A B B", "2:A B"]);
    assert_eq!(rising(AfterMatchSkip::ToLast), ["0:A B B B"]);
}

#[test]
fn skip_to_a_variable_without_rows_resumes_at_the_next_row() {
    let mut spec = spec("(A | B) C");
    define(&mut spec, "A", op(price(None), BinaryOp::Eq, int(1)));
    define(&mut spec, "B", op(price(None), BinaryOp::Eq, int(2)));
    let b = spec.var("B").expect("declared");
    spec.skip = AfterMatchSkip::ToLast(b);
    // The first match has no B row; PAST LAST ROW would have skipped row 1.
    assert_eq!(shapes(spec, &prices(&[1, 2, 5])), ["0:A C", "1:B C"]);
}

/// Flink's documentation of greedy and reluctant quantifiers.
#[test]
fn reluctant_vs_greedy() {
    let query = |pattern: &str| {
        let mut spec = spec(pattern);
        let [a, b, c] = vars(&spec, ["A", "B", "C"]);
        define(&mut spec, "A", op(price(a), BinaryOp::Gt, int(10)));
        define(&mut spec, "B", op(price(b), BinaryOp::Lt, int(15)));
        define(&mut spec, "C", op(price(c), BinaryOp::Gt, int(12)));
        spec.measures = vec![price(c)];
        measure(spec, &prices(&[10, 11, 12, 13, 14, 16]))
    };
    assert_eq!(query("A B* C"), [Datum::Int(16)]);
    assert_eq!(query("A B*? C"), [Datum::Int(13), Datum::Int(16)]);
    // Optional: greedy takes the B, reluctant leaves it to C.
    assert_eq!(shapes(spec("A B? C"), &prices(&[1, 2, 3])), ["0:A B C"]);
    assert_eq!(shapes(spec("A B?? C"), &prices(&[1, 2, 3])), ["0:A C"]);
    assert_eq!(shapes(spec("A{1,3}? B"), &prices(&[1, 2, 3, 4])), ["0:A B", "2:A B"]);
    assert_eq!(shapes(spec("A{1,3} B"), &prices(&[1, 2, 3, 4])), ["0:A A A B"]);
}

#[test]
fn alternation_and_groups() {
    let mut left_first = spec("(A | B) C");
    define(&mut left_first, "A", op(price(None), BinaryOp::LtEq, int(2)));
    define(&mut left_first, "B", op(price(None), BinaryOp::LtEq, int(3)));
    assert_eq!(shapes(left_first, &prices(&[1, 9, 3, 9])), ["0:A C", "2:B C"]);

    // The left alternative fails later, so the right one is used.
    let mut later = spec("(A B | A C) D");
    define(&mut later, "A", op(price(None), BinaryOp::Eq, int(1)));
    define(&mut later, "B", op(price(None), BinaryOp::Eq, int(2)));
    define(&mut later, "C", op(price(None), BinaryOp::Eq, int(3)));
    assert_eq!(shapes(later, &prices(&[1, 3, 9])), ["0:A C D"]);

    let mut group = spec("(A B)+ C");
    define(&mut group, "A", op(price(None), BinaryOp::Eq, int(1)));
    define(&mut group, "B", op(price(None), BinaryOp::Eq, int(2)));
    define(&mut group, "C", op(price(None), BinaryOp::Eq, int(3)));
    assert_eq!(shapes(group, &prices(&[1, 2, 1, 2, 3, 1, 3])), ["0:A B A B C"]);
}

/// The example: the last A row is also the only B candidate. Flink's
/// greedy `A+` keeps the 3 and finds nothing.
#[test]
fn backtracking_greedy_quantifier_gives_back_its_last_row() {
    let mut spec = spec("A+ B");
    define(&mut spec, "A", op(price(None), BinaryOp::Lt, int(5)));
    define(&mut spec, "B", op(price(None), BinaryOp::Eq, int(3)));
    assert_eq!(shapes(spec, &prices(&[1, 2, 3])), ["0:A A B"]);
}

#[test]
fn backtracking_through_an_alternation_loop() {
    let mut spec = spec("(A | B)* C");
    define(&mut spec, "A", op(price(None), BinaryOp::Lt, int(5)));
    define(&mut spec, "B", op(price(None), BinaryOp::Lt, int(9)));
    define(&mut spec, "C", op(price(None), BinaryOp::Eq, int(3)));
    // The loop would take all four rows; C needs the 3, so the loop gives back two.
    assert_eq!(shapes(spec, &prices(&[1, 6, 3, 7])), ["0:A B C"]);
}

#[test]
fn backtracking_into_earlier_iterations_of_a_group() {
    let mut spec = spec("(A B+)+ B C");
    define(&mut spec, "A", op(price(None), BinaryOp::Eq, int(1)));
    define(&mut spec, "B", op(price(None), BinaryOp::Eq, int(2)));
    define(&mut spec, "C", op(price(None), BinaryOp::Eq, int(9)));
    // The second iteration's B+ must leave its last row to the B after the group.
    assert_eq!(shapes(spec, &prices(&[1, 2, 1, 2, 2, 9])), ["0:A B A B B C"]);
}

#[test]
fn all_rows_per_match_running_and_final_measures() {
    let query = |rows_per_match| {
        let mut spec = spec("A B+");
        let [b] = vars(&spec, ["B"]);
        define(&mut spec, "B", op(price(b), BinaryOp::Gt, MatchExpr::prev(b, PRICE, 1)));
        spec.rows_per_match = rows_per_match;
        spec.measures = vec![
            MatchExpr::Classifier(Semantics::Running),
            count(b),
            count(b).into_final(),
            MatchExpr::first(b, PRICE, 0),
            MatchExpr::MatchNumber,
            price(None),
            MatchExpr::Classifier(Semantics::Final),
        ];
        scan(spec, &prices(&[5, 6, 7, 1])).matches
    };
    let row = |classifier: &str, count: i64, first_b: Datum, price: i64| {
        Row::new(vec![
            Datum::string(classifier),
            Datum::Int(count),
            Datum::Int(2),
            first_b,
            Datum::Int(1),
            Datum::Int(price),
            Datum::string("B"),
        ])
    };
    let all = query(RowsPerMatch::All);
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0].measures,
        [row("A", 0, Datum::Null, 5), row("B", 1, Datum::Int(6), 6), row("B", 2, Datum::Int(6), 7)]
    );
    let one = query(RowsPerMatch::One);
    assert_eq!(one[0].measures, [row("B", 2, Datum::Int(6), 7)]);
}

#[test]
fn match_numbers_count_emitted_matches_of_the_partition() {
    let mut spec = spec("A");
    define(&mut spec, "A", op(price(None), BinaryOp::Eq, int(1)));
    spec.measures = vec![MatchExpr::MatchNumber];
    let recognizer = MatchRecognizer::new(spec).expect("valid");
    let rows = prices(&[1, 0, 1, 1]);
    let numbers = |scan: Scan| {
        scan.matches
            .iter()
            .map(|m| (m.start, m.number, m.measures[0].get(0).clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        numbers(recognizer.find_matches(&rows, 0, 1)),
        [(0, 1, Datum::Int(1)), (2, 2, Datum::Int(2)), (3, 3, Datum::Int(3))]
    );
    assert_eq!(
        numbers(recognizer.find_matches(&rows, 2, 10)),
        [(2, 10, Datum::Int(10)), (3, 11, Datum::Int(11))]
    );
}

#[test]
fn empty_matches_are_not_emitted() {
    let mut greedy = spec("A*");
    define(&mut greedy, "A", op(price(None), BinaryOp::Eq, int(1)));
    greedy.measures = vec![MatchExpr::MatchNumber];
    let matches = scan(greedy, &prices(&[0, 1, 1, 0])).matches;
    assert_eq!(matches.iter().map(|m| (m.start, m.end, m.number)).collect::<Vec<_>>(), [(1, 3, 1)]);
    // The reluctant star prefers the empty match at every row.
    assert!(shapes(spec("A*?"), &prices(&[1, 1])).is_empty());
}

#[test]
fn loops_over_bodies_that_can_match_nothing_terminate() {
    let mut optional = spec("(A?)* B");
    define(&mut optional, "A", op(price(None), BinaryOp::Eq, int(1)));
    define(&mut optional, "B", op(price(None), BinaryOp::Eq, int(2)));
    assert_eq!(shapes(optional, &prices(&[1, 1, 2])), ["0:A A B"]);

    let mut nested = spec("(A | B?)* C");
    define(&mut nested, "A", op(price(None), BinaryOp::Eq, int(1)));
    define(&mut nested, "B", op(price(None), BinaryOp::Eq, int(2)));
    define(&mut nested, "C", op(price(None), BinaryOp::Eq, int(3)));
    assert_eq!(shapes(nested, &prices(&[1, 2, 3, 3])), ["0:A B C", "3:C"]);

    // Iterations up to the minimum may be empty.
    let mut minimum = spec("(A?){2} B");
    define(&mut minimum, "A", op(price(None), BinaryOp::Eq, int(1)));
    assert_eq!(shapes(minimum, &prices(&[1, 5])), ["0:A B"]);
}

/// Iterations beyond the minimum must consume a row: the empty way through
/// `B?` does not count as an iteration, so "take A" is preferred to "stop".
#[test]
fn bounded_repetition_of_a_nullable_body_prefers_consuming_iterations() {
    let mut spec = spec("(B? | A)? D");
    define(&mut spec, "A", op(price(None), BinaryOp::Eq, int(1)));
    define(&mut spec, "B", op(price(None), BinaryOp::Eq, int(2)));
    assert_eq!(shapes(spec, &prices(&[1, 5])), ["0:A D"]);
}

/// Two threads at the same instruction whose pasts a condition tells apart
/// must both survive: here the preferred one (A) fails at C.
#[test]
fn threads_with_different_pasts_are_not_merged() {
    let mut spec = spec("(A | B) C");
    let [b] = vars(&spec, ["B"]);
    define(&mut spec, "C", op(count(b), BinaryOp::Eq, int(1)));
    assert_eq!(shapes(spec, &prices(&[1, 1])), ["0:B C"]);
}

#[test]
fn expression_errors_are_reported_not_raised() {
    let mut spec = spec("A");
    // 10 / price fails on price 0: the condition is not TRUE there.
    define(&mut spec, "A", op(op(int(10), BinaryOp::Divide, price(None)), BinaryOp::Gt, int(1)));
    spec.measures = vec![op(int(1), BinaryOp::Divide, op(price(None), BinaryOp::Subtract, int(5)))];
    let scan = scan(spec, &prices(&[0, 5, 2]));
    let found: Vec<_> = scan.matches.iter().map(|m| (m.start, m.measures[0].get(0).clone())).collect();
    assert_eq!(found, [(1, Datum::Null), (2, Datum::Int(0))]);
    let failed_rows: Vec<_> = scan.failures.iter().map(|f| f.row).collect();
    assert_eq!(failed_rows, [0, 1]);
    assert!(scan.failures.iter().all(|f| f.message.contains("division by zero")));
}

/// The benchmark's pattern: a spike of more than 50 % over the first price
/// within ten minutes. Greedy `B+` takes the last qualifying C in the window.
#[test]
fn spike_pattern_within_ten_minutes() {
    let query = |pattern: &str| {
        let mut spec = spec(pattern);
        let [a, c] = vars(&spec, ["A", "C"]);
        define(
            &mut spec,
            "C",
            op(price(c), BinaryOp::Gt, op(MatchExpr::literal(Datum::float(1.5)), BinaryOp::Multiply, price(a))),
        );
        spec.within = Some(Within {
            duration: 10 * MINUTE,
            time_column: TS,
        });
        let ticks = [(0, 10), (1, 11), (2, 12), (3, 16), (4, 12), (5, 17), (11, 30)];
        shapes(spec, &rows(&ticks.map(|(minute, p)| (Some(p), minute * MINUTE))))
    };
    assert_eq!(query("A B+ C"), ["0:A B B B B C"]);
    assert_eq!(query("A B+? C"), ["0:A B B C", "4:A B C"]);
}

#[test]
fn alternation_loops_stay_linear() {
    // Without merging equal threads these would try 2^300 paths per start row.
    let rows = prices(&[1; 300]);
    let mut plain = spec("(A | B)* C");
    define(&mut plain, "A", op(price(None), BinaryOp::Lt, int(5)));
    define(&mut plain, "B", op(price(None), BinaryOp::Lt, int(9)));
    define(&mut plain, "C", op(price(None), BinaryOp::Eq, int(100)));
    assert!(shapes(plain, &rows).is_empty());

    // C reads A's row: threads differ only in that one row, so still linear.
    let mut keyed = spec("A (B | D)* C");
    let [a, c] = vars(&keyed, ["A", "C"]);
    define(&mut keyed, "C", op(price(c), BinaryOp::Gt, price(a)));
    assert!(shapes(keyed, &rows).is_empty());
}

#[test]
fn earliest_affected_start_is_bounded_by_within_and_pattern_length() {
    let rows = rows(&[0, 4, 8, 12, 16, 20].map(|minute| (Some(1), minute * MINUTE)));
    let recognizer = |pattern: &str, within: bool, next: bool| {
        let mut spec = spec(pattern);
        if next {
            define(&mut spec, "A", is_null(MatchExpr::next(None, PRICE, 2)));
        }
        spec.within = within.then_some(Within {
            duration: 10 * MINUTE,
            time_column: TS,
        });
        MatchRecognizer::new(spec).expect("valid")
    };
    // A pattern of at most two rows: only the start just before can reach row 5.
    assert_eq!(recognizer("A B", false, false).earliest_affected_start(&rows, 5), 4);
    assert_eq!(recognizer("A B+", false, false).earliest_affected_start(&rows, 5), 0);
    // Row 4 (16 min) is within 10 minutes of row 2 (8 min) but not of row 1.
    assert_eq!(recognizer("A B+", true, false).earliest_affected_start(&rows, 5), 2);
    // NEXT(price, 2) lets row 3 read row 5; row 3 (12 min) is within reach of row 1 (4 min).
    assert_eq!(recognizer("A B+", true, true).earliest_affected_start(&rows, 5), 1);
    assert_eq!(recognizer("A B+", true, true).lookahead(), 2);
    assert_eq!(recognizer("A B+", true, false).earliest_affected_start(&rows, 0), 0);
}

#[test]
fn invalid_specs_are_refused() {
    let mut undeclared = spec("A B");
    undeclared.define.push((VarId(7), int(1)));
    assert!(matches!(MatchRecognizer::new(undeclared), Err(CepError::UnknownVariable(7))));

    let mut final_in_define = spec("A B");
    let [a] = vars(&final_in_define, ["A"]);
    define(&mut final_in_define, "B", is_null(price(a).into_final()));
    assert!(matches!(MatchRecognizer::new(final_in_define), Err(CepError::FinalInDefine(name)) if name == "B"));

    let mut twice = spec("A");
    define(&mut twice, "A", int(1));
    define(&mut twice, "A", int(2));
    assert!(matches!(MatchRecognizer::new(twice), Err(CepError::DuplicateDefinition(_))));

    let mut outside = spec("A");
    outside.variables.push("Z".into());
    outside.skip = AfterMatchSkip::ToLast(VarId(1));
    assert!(matches!(MatchRecognizer::new(outside), Err(CepError::NotInPattern(name)) if name == "Z"));

    let mut bad_bounds = spec("A");
    bad_bounds.pattern = Pattern::Repeat {
        inner: Box::new(Pattern::Var(VarId(0))),
        min: 3,
        max: Some(1),
        greedy: true,
    };
    assert!(matches!(MatchRecognizer::new(bad_bounds), Err(CepError::BadQuantifier { min: 3, max: 1 })));
}

// ---------------------------------------------------------------------------
// The brute-force reference.

/// A plain backtracking search, the textbook definition of the semantics: at
/// each start row, walk the pattern's ways of mapping rows depth first in
/// preference order (one more greedy iteration before stopping, fewer first
/// for reluctant ones, alternatives left to right), check each row's
/// condition against the mapping so far and `WITHIN`, and take the first
/// complete mapping. Iterations beyond a quantifier's minimum must consume a
/// row. No compiled program, thread lists or merging.
struct Reference<'a> {
    spec: &'a MatchSpec,
    rows: &'a [Row],
    names: &'a [Str],
    start: usize,
    number: u64,
    /// The mapping so far: the variable of each row from `start`.
    labels: Vec<VarId>,
    /// Rows it may still try to map; the walk gives up at zero.
    budget: usize,
}

/// What to do with the rest of the rows once a part of the pattern has been
/// mapped up to a position: true when it completes the match.
type Then<'k, 'a> = dyn FnMut(&mut Reference<'a>, usize) -> bool + 'k;

impl<'a> Reference<'a> {
    fn walk(&mut self, pattern: &Pattern, pos: usize, then: &mut Then<'_, 'a>) -> bool {
        match pattern {
            Pattern::Var(var) => {
                if self.budget == 0 || !self.fits(*var, pos) {
                    return false;
                }
                self.budget -= 1;
                self.labels.push(*var);
                let found = then(self, pos + 1);
                if !found {
                    self.labels.pop();
                }
                found
            }
            Pattern::Concat(parts) => self.sequence(parts, pos, then),
            Pattern::Alt(parts) => parts.iter().any(|part| self.walk(part, pos, then)),
            Pattern::Group(inner) => self.walk(inner, pos, then),
            Pattern::Repeat { inner, min, max, greedy } => self.repeat(inner, (*min, *max, *greedy), 0, pos, then),
        }
    }

    fn sequence(&mut self, parts: &[Pattern], pos: usize, then: &mut Then<'_, 'a>) -> bool {
        match parts.split_first() {
            None => then(self, pos),
            Some((first, rest)) => self.walk(first, pos, &mut |me: &mut Reference<'a>, end| me.sequence(rest, end, then)),
        }
    }

    fn repeat(&mut self, inner: &Pattern, bounds: (u32, Option<u32>, bool), done: u32, pos: usize, then: &mut Then<'_, 'a>) -> bool {
        let (min, max, greedy) = bounds;
        if done < min {
            return self.walk(inner, pos, &mut |me: &mut Reference<'a>, end| me.repeat(inner, bounds, done + 1, end, then));
        }
        let more = |me: &mut Reference<'a>, then: &mut Then<'_, 'a>| {
            max.is_none_or(|max| done < max)
                && me.walk(inner, pos, &mut |me: &mut Reference<'a>, end| {
                    end > pos && me.repeat(inner, bounds, done + 1, end, then)
                })
        };
        // Greedy: one more iteration first; reluctant: stopping first.
        let iterate_first = if greedy { [true, false] } else { [false, true] };
        iterate_first
            .into_iter()
            .any(|iterate| if iterate { more(self, then) } else { then(self, pos) })
    }

    /// Whether row `pos` may be mapped to `var` after the mapping so far.
    fn fits(&self, var: VarId, pos: usize) -> bool {
        if pos >= self.rows.len() {
            return false;
        }
        if let Some(within) = self.spec.within {
            let time = |row: usize| event_time(&self.rows[row], within.time_column);
            if !matches!((time(self.start), time(pos)), (Some(first), Some(t)) if t - first <= within.duration) {
                return false;
            }
        }
        let Some((_, condition)) = self.spec.define.iter().find(|(defined, _)| *defined == var) else {
            return true;
        };
        let labels = [self.labels.as_slice(), &[var]].concat();
        let scope = Scope {
            rows: self.rows,
            start: self.start,
            current: pos,
            last: pos,
            labels: SliceLabels {
                start: self.start,
                labels: &labels,
            },
            match_number: self.number,
            names: self.names,
        };
        scope.holds(condition).unwrap_or(false)
    }
}

/// The matches of `rows` by the reference search, or `None` if it ran out of budget.
fn reference(spec: &MatchSpec, rows: &[Row]) -> Option<Vec<Match>> {
    let recognizer = MatchRecognizer::new(spec.clone()).expect("valid spec");
    let mut search = Reference {
        spec,
        rows,
        names: recognizer.variables(),
        start: 0,
        number: 1,
        labels: Vec::new(),
        budget: 200_000,
    };
    let mut matches = Vec::new();
    while search.start < rows.len() {
        let start = search.start;
        search.labels.clear();
        let mut end = start;
        let found = search.walk(&spec.pattern, start, &mut |_, at| {
            end = at;
            true
        });
        if search.budget == 0 {
            return None;
        }
        let labels = std::mem::take(&mut search.labels);
        if !found || end == start {
            search.start += 1;
            continue;
        }
        let target = match spec.skip {
            AfterMatchSkip::PastLastRow => Some(end),
            AfterMatchSkip::ToNextRow => Some(start + 1),
            AfterMatchSkip::ToFirst(var) => labels.iter().position(|l| *l == var).map(|i| start + i),
            AfterMatchSkip::ToLast(var) => labels.iter().rposition(|l| *l == var).map(|i| start + i),
        };
        let next_start = target.filter(|t| *t > start).unwrap_or(start + 1);
        let measures = recognizer.measures(rows, start, &labels, search.number, &mut Vec::new());
        matches.push(Match {
            number: search.number,
            start,
            end,
            labels,
            measures,
            next_start,
        });
        search.number += 1;
        search.start = next_start;
    }
    Some(matches)
}

// ---------------------------------------------------------------------------
// Property tests.

const NAMES: [&str; 3] = ["A", "B", "C"];

fn arb_pattern() -> impl Strategy<Value = Pattern> {
    // Optional leaves make nullable loop bodies common, to exercise the progress check.
    let leaf = ((0u16..3), 0u8..6).prop_map(|(v, optional)| match optional {
        0 | 1 => Pattern::Repeat {
            inner: Box::new(Pattern::Var(VarId(v))),
            min: 0,
            max: Some(1),
            greedy: optional == 0,
        },
        _ => Pattern::Var(VarId(v)),
    });
    leaf.prop_recursive(4, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..=3).prop_map(Pattern::Concat),
            prop::collection::vec(inner.clone(), 2..=3).prop_map(Pattern::Alt),
            inner.clone().prop_map(|p| Pattern::Group(Box::new(p))),
            (inner, 0u32..3, prop::option::of(0u32..3), any::<bool>()).prop_map(|(p, min, extra, greedy)| Pattern::Repeat {
                inner: Box::new(p),
                min,
                max: extra.map(|extra| min + extra),
                greedy,
            }),
        ]
    })
}

/// A condition for `own` from a small menu covering every kind of reference.
fn condition(template: u8, own: VarId, other: VarId, k: i64) -> Option<MatchExpr> {
    let (own, other) = (Some(own), Some(other));
    let last_own = || MatchExpr::last(own, PRICE, 1);
    Some(match template {
        1 => op(price(own), BinaryOp::Lt, int(k)),
        2 => op(price(own), BinaryOp::GtEq, int(k)),
        3 => op(price(own), BinaryOp::Gt, MatchExpr::prev(own, PRICE, 1)),
        4 => op(price(own), BinaryOp::LtEq, price(other)),
        5 => op(count(own), BinaryOp::LtEq, int(k.max(1))),
        6 => or(
            is_null(agg(AggregateFunction::Sum, other, Some(PRICE))),
            op(agg(AggregateFunction::Sum, other, Some(PRICE)), BinaryOp::Lt, int(2 * k)),
        ),
        7 => or(is_null(last_own()), op(price(own), BinaryOp::NotEq, last_own())),
        8 => op(MatchExpr::first(None, PRICE, 0), BinaryOp::LtEq, price(None)),
        9 => op(MatchExpr::next(None, PRICE, 1), BinaryOp::Gt, price(None)),
        10 => op(MatchExpr::first(other, PRICE, 1), BinaryOp::NotEq, int(k)),
        11 => op(agg(AggregateFunction::Max, None, Some(PRICE)), BinaryOp::LtEq, int(k + 1)),
        _ => return None,
    })
}

#[derive(Clone, Debug)]
struct Case {
    spec: MatchSpec,
    rows: Vec<Row>,
}

fn arb_rows(max: usize) -> impl Strategy<Value = Vec<Row>> {
    let value = prop_oneof![1 => Just(None), 7 => (0i64..5).prop_map(Some)];
    prop::collection::vec((value, 0i64..3), 1..max).prop_map(|ticks| {
        let mut time = 0;
        let timed: Vec<_> = ticks
            .into_iter()
            .map(|(price, gap)| {
                time += gap;
                (price, time)
            })
            .collect();
        rows(&timed)
    })
}

fn arb_case(max_rows: usize) -> impl Strategy<Value = Case> {
    let conditions = prop::collection::vec((0u8..14, 0u16..3, 0i64..5), 3);
    let skip = (0u8..4, 0u16..3);
    let within = prop::option::of(0i64..4);
    (arb_pattern(), conditions, skip, within, any::<bool>(), arb_rows(max_rows)).prop_map(|(pattern, conditions, skip, within, all_rows, rows)| {
        let mut used = [false; 3];
        pattern.for_each_var(&mut |var| used[var.index()] = true);
        let define = conditions
            .iter()
            .enumerate()
            .filter(|(i, _)| used[*i])
            .filter_map(|(i, &(template, other, k))| {
                let own = VarId(i as u16);
                condition(template, own, VarId(other), k).map(|condition| (own, condition))
            })
            .collect();
        let target = VarId(skip.1);
        let skip = match skip.0 {
            _ if !used[target.index()] => AfterMatchSkip::PastLastRow,
            0 => AfterMatchSkip::PastLastRow,
            1 => AfterMatchSkip::ToNextRow,
            2 => AfterMatchSkip::ToFirst(target),
            _ => AfterMatchSkip::ToLast(target),
        };
        let [a, b, c] = [0, 1, 2].map(|v| Some(VarId(v)));
        let spec = MatchSpec {
            variables: NAMES.map(String::from).to_vec(),
            pattern,
            define,
            measures: vec![
                MatchExpr::Classifier(Semantics::Running),
                MatchExpr::MatchNumber,
                MatchExpr::first(a, PRICE, 0),
                MatchExpr::last(b, PRICE, 1).into_final(),
                count(c),
                agg(AggregateFunction::Sum, None, Some(PRICE)).into_final(),
                MatchExpr::prev(None, PRICE, 1),
            ],
            rows_per_match: if all_rows { RowsPerMatch::All } else { RowsPerMatch::One },
            skip,
            within: within.map(|duration| Within { duration, time_column: TS }),
            order_by: Vec::new(),
        };
        Case { spec, rows }
    })
}

/// One change to a partition: the prefix before `at` stays as it was.
#[derive(Clone, Debug)]
enum Edit {
    Insert(Option<i64>),
    Delete,
    Revise(Option<i64>),
}

fn arb_edit() -> impl Strategy<Value = (Edit, prop::sample::Index)> {
    let price = prop_oneof![1 => Just(None), 7 => (0i64..5).prop_map(Some)];
    let edit = prop_oneof![price.clone().prop_map(Edit::Insert), Just(Edit::Delete), price.prop_map(Edit::Revise)];
    (edit, any::<prop::sample::Index>())
}

/// Applies `edit` at an index chosen by `index`, keeping event times sorted;
/// returns the edited rows and the first changed index.
fn apply(rows: &[Row], edit: &Edit, index: prop::sample::Index) -> (Vec<Row>, usize) {
    let mut edited = rows.to_vec();
    let time = |row: &Row| row.get(TS).clone();
    let priced = |price: &Option<i64>, ts: Datum| Row::new(vec![price.map_or(Datum::Null, Datum::Int), ts]);
    match edit {
        Edit::Insert(price) => {
            let at = index.index(rows.len() + 1);
            // Take the time of a neighbour, so that order is kept.
            let ts = rows.get(at).or(rows.last()).map_or(Datum::Timestamp(0), time);
            edited.insert(at, priced(price, ts));
            (edited, at)
        }
        Edit::Delete if !rows.is_empty() => {
            let at = index.index(rows.len());
            edited.remove(at);
            (edited, at)
        }
        Edit::Revise(price) if !rows.is_empty() => {
            let at = index.index(rows.len());
            edited[at] = priced(price, time(&rows[at]));
            (edited, at)
        }
        _ => (edited, 0),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn matcher_agrees_with_brute_force_reference(case in arb_case(10)) {
        let recognizer = MatchRecognizer::new(case.spec.clone()).expect("valid spec");
        let got = recognizer.find_matches(&case.rows, 0, 1).matches;
        let expected = reference(&case.spec, &case.rows);
        prop_assume!(expected.is_some(), "the reference search gave up");
        prop_assert_eq!(Some(got), expected, "pattern {}", case.spec.pattern.display(&case.spec.variables));
    }

    #[test]
    fn recomputing_from_the_resume_point_agrees_with_a_full_scan(case in arb_case(10), (edit, index) in arb_edit()) {
        let recognizer = MatchRecognizer::new(case.spec.clone()).expect("valid spec");
        let old = recognizer.find_matches(&case.rows, 0, 1).matches;
        let (rows, changed) = apply(&case.rows, &edit, index);
        // Only the unchanged prefix is passed: the bound must not read past it.
        let earliest = recognizer.earliest_affected_start(&rows[..changed], changed);
        let resume = resume(&old, earliest, 1);
        let mut incremental = old[..resume.kept].to_vec();
        incremental.extend(recognizer.find_matches(&rows, resume.start, resume.match_number).matches);
        prop_assert_eq!(incremental, recognizer.find_matches(&rows, 0, 1).matches, "pattern {}", case.spec.pattern.display(&case.spec.variables));
    }

    /// Conditions of float arithmetic take the matcher's float form (see
    /// the `condition` module); over float prices with NaN, infinities,
    /// NULL and an integer among them it must decide as the interpreted
    /// expression of the reference does.
    #[test]
    fn float_conditions_agree_with_brute_force_reference(
        pattern in arb_pattern(),
        templates in prop::collection::vec((0u8..4, 0u16..3), 3),
        prices in prop::collection::vec(0usize..10, 1..10),
    ) {
        let values = [0.0, 1.0, 1.5, 2.0, 3.5, -2.0, f64::NAN, f64::INFINITY].map(Datum::float);
        let rows: Vec<Row> = prices
            .iter()
            .enumerate()
            .map(|(i, &price)| {
                let price = match price {
                    8 => Datum::Null,
                    9 => Datum::Int(2),
                    _ => values[price].clone(),
                };
                Row::new(vec![price, Datum::Timestamp(i as Millis * MINUTE)])
            })
            .collect();
        let float = |value: f64| MatchExpr::literal(Datum::float(value));
        let mut spec = MatchSpec {
            variables: NAMES.map(String::from).to_vec(),
            pattern,
            define: Vec::new(),
            measures: vec![MatchExpr::Classifier(Semantics::Running), MatchExpr::first(Some(VarId(0)), PRICE, 0)],
            rows_per_match: RowsPerMatch::One,
            skip: AfterMatchSkip::PastLastRow,
            within: None,
            order_by: Vec::new(),
        };
        let mut used = [false; 3];
        spec.pattern.for_each_var(&mut |var| used[var.index()] = true);
        for (i, &(template, other)) in templates.iter().enumerate().filter(|(i, _)| used[*i]) {
            let (own, other) = (Some(VarId(i as u16)), Some(VarId(other)));
            let condition = match template {
                0 => op(price(own), BinaryOp::Gt, op(float(1.5), BinaryOp::Multiply, price(other))),
                1 => and(
                    op(price(own), BinaryOp::LtEq, op(price(other), BinaryOp::Add, float(0.5))),
                    op(price(own), BinaryOp::GtEq, op(price(other), BinaryOp::Subtract, float(0.5))),
                ),
                2 => or(
                    op(price(own), BinaryOp::Eq, price(other)),
                    op(op(price(None), BinaryOp::Divide, price(other)), BinaryOp::Gt, float(2.0)),
                ),
                _ => op(op(price(own), BinaryOp::Modulo, float(2.0)), BinaryOp::NotEq, float(0.0)),
            };
            spec.define.push((VarId(i as u16), condition));
        }
        let recognizer = MatchRecognizer::new(spec.clone()).expect("valid spec");
        let got = recognizer.find_matches(&rows, 0, 1).matches;
        let expected = reference(&spec, &rows);
        prop_assume!(expected.is_some(), "the reference search gave up");
        prop_assert_eq!(Some(got), expected, "pattern {}", spec.pattern.display(&spec.variables));
    }
}

// ---------------------------------------------------------------------------
// The dataflow core against full scans.

/// How one tick reaches the operator: its arrival delay (in event time, so
/// delays beyond the watermark lag make it late) and an optional revision of
/// its price, published one epoch after the tick itself.
#[derive(Clone, Debug)]
struct Arrival {
    delay: Millis,
    revision: Option<Option<i64>>,
}

fn arb_arrivals(count: usize) -> impl Strategy<Value = Vec<Arrival>> {
    let revision = prop::option::weighted(0.2, prop_oneof![1 => Just(None), 7 => (0i64..5).prop_map(Some)]);
    prop::collection::vec(((0i64..4), revision).prop_map(|(delay, revision)| Arrival { delay, revision }), count)
}

/// Drives [`dataflow::MatchRecognize`] epoch by epoch, `per_epoch` ticks at
/// a time in arrival order, with the watermark one millisecond behind the
/// latest tick, and returns the difference between its consolidated output
/// and the output of a full scan of the rows it holds, after the first epoch
/// where they differ.
fn operator_against_full_scans(case: &Case, arrivals: &[Arrival], per_epoch: usize, lateness: Millis) -> Result<(), String> {
    use crate::dataflow::{CoreContext, TimedCore};
    use std::collections::HashMap;

    let recognizer = MatchRecognizer::new(case.spec.clone()).expect("valid spec");
    let mut core = dataflow::MatchRecognize::new("test", recognizer.clone(), TS, lateness);
    let partition = Row::new(vec![Datum::string("P")]);
    // Updates in arrival order: each tick, and its revision (old out, new in) an epoch later.
    let mut arriving: Vec<(Millis, usize, Row, Diff)> = Vec::new();
    for (i, (row, arrival)) in case.rows.iter().zip(arrivals).enumerate() {
        let ts = row.get(TS).as_timestamp().expect("timed");
        let at = ts + arrival.delay;
        arriving.push((at, 2 * i, row.clone(), 1));
        if let Some(price) = arrival.revision {
            let revised = Row::new(vec![price.map_or(Datum::Null, Datum::Int), Datum::Timestamp(ts)]);
            arriving.push((at + 1, 2 * i + 1, row.clone(), -1));
            arriving.push((at + 1, 2 * i + 1, revised, 1));
        }
    }
    arriving.sort_by_key(|(at, order, _, _)| (*at, *order));

    let (mut output, mut dead) = (Vec::new(), Vec::new());
    let mut consolidated: HashMap<Row, Diff> = HashMap::new();
    // The model: the rows the operator accepted, and which of them the watermark released.
    let mut accepted: Vec<(Row, Diff)> = Vec::new();
    let (mut watermark, mut latest) = (Millis::MIN, Millis::MIN);
    for (epoch, batch) in arriving.chunks(per_epoch).enumerate() {
        let mut context = CoreContext {
            watermark,
            output: &mut output,
            dead_letters: &mut dead,
        };
        for (_, _, row, diff) in batch {
            let ts = row.get(TS).as_timestamp().expect("timed");
            latest = latest.max(ts);
            if watermark == Millis::MIN || ts >= watermark - lateness {
                accepted.push((row.clone(), *diff));
            }
            core.on_update((partition.clone(), row.clone()), *diff, &mut context);
        }
        watermark = watermark.max(latest - 1);
        let mut context = CoreContext {
            watermark,
            output: &mut output,
            dead_letters: &mut dead,
        };
        core.on_epoch_end(epoch as u64, &mut context);
        for (row, diff) in output.drain(..) {
            *consolidated.entry(row).or_default() += diff;
        }
        consolidated.retain(|_, diff| *diff != 0);

        let mut released: Vec<Row> = Vec::new();
        let mut counts: HashMap<&Row, Diff> = HashMap::new();
        for (row, diff) in &accepted {
            *counts.entry(row).or_default() += diff;
        }
        for (row, count) in counts {
            if row.get(TS).as_timestamp().is_some_and(|ts| ts <= watermark) {
                released.extend(std::iter::repeat_n(row.clone(), count.max(0) as usize));
            }
        }
        released.sort_by_key(|row| (row.get(TS).as_timestamp(), row.clone()));
        let mut expected: HashMap<Row, Diff> = HashMap::new();
        for found in recognizer.find_matches(&released, 0, 1).matches {
            for row in dataflow::MatchRecognize::outputs(&recognizer, &partition, &released, &found) {
                *expected.entry(row).or_default() += 1;
            }
        }
        if consolidated != expected {
            return Err(format!(
                "after epoch {epoch} (watermark {watermark}) over {released:?}:\n operator {consolidated:?}\n full scan {expected:?}"
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Appended rows take the walk's fast path; late rows inside the allowed
    /// lateness, revisions and `NEXT` in a condition take the restart; the
    /// watermark expires searches and trims rows. After every epoch the
    /// output equals a full scan of what the watermark released.
    #[test]
    fn operator_agrees_with_full_scans_after_every_epoch(
        case in arb_case(20),
        arrivals in arb_arrivals(20),
        per_epoch in 1usize..5,
        lateness in 0i64..3,
    ) {
        let result = operator_against_full_scans(&case, &arrivals, per_epoch, lateness);
        prop_assert_eq!(result, Ok(()), "pattern {}", case.spec.pattern.display(&case.spec.variables));
    }
}
