//! Binding `MATCH_RECOGNIZE` (Flink's syntax) to the CEP core's [`MatchSpec`].
//!
//! Supported now: `PARTITION BY` columns, `ORDER BY` the table's event-time
//! column ascending then further columns (`ASC` / `DESC`, `NULLS FIRST` /
//! `LAST`), `MEASURES`, `ONE ROW PER MATCH`, every `AFTER MATCH SKIP`, the
//! full `PATTERN` grammar (concatenation, `|`, groups, greedy and reluctant
//! quantifiers), `WITHIN INTERVAL`, and in `DEFINE` / `MEASURES`: columns of
//! a variable (`A.price`) or of the current row (`price`), `PREV` / `NEXT`
//! (physical offsets), `FIRST` / `LAST` (logical offsets), `SUM`, `AVG`,
//! `COUNT`, `MIN`, `MAX` over a variable's rows, `CLASSIFIER()`,
//! `MATCH_NUMBER()`, arithmetic, comparisons, `AND` / `OR` / `NOT`,
//! `IS [NOT] NULL` and the scalar functions, with `ONE ROW PER MATCH`
//! (partition columns, then FINAL measures) or `ALL ROWS PER MATCH` (every
//! input column, then RUNNING measures).

use sqlparser::ast::{
    self, AfterMatchSkip as SqlSkip, BinaryOperator, Expr as Ast, FunctionArg, FunctionArgExpr, FunctionArguments, MatchRecognizePattern, MatchRecognizeSymbol,
    RepetitionQuantifier, RowsPerMatch as SqlRowsPerMatch, Spanned, TableFactor, UnaryOperator, Value,
};

use carbonflow_core::{DataType, Datum, Field, Schema};
use carbonflow_operators::aggregate::{AggregateFunction, AggregateSpec};
use carbonflow_operators::cep::{
    AfterMatchSkip, BinaryOp, MatchAggregate, MatchExpr, MatchRecognizer, MatchSpec, Navigation, OrderColumn, Pattern, RowsPerMatch, ScalarFunction, Semantics,
    VarId, Within,
};

use super::{Binder, Scope, binary_type, interval_millis, literal};
use crate::plan::functions::Function;
use crate::plan::{Node, Plan};
use crate::sql::dialect;
use crate::sql::{SqlError, SqlResult};

impl Binder {
    /// Plans a `MATCH_RECOGNIZE` table factor: output is the partition
    /// columns, then the measures, one row per match.
    pub(super) fn match_recognize(&mut self, factor: &TableFactor) -> SqlResult<Plan> {
        let TableFactor::MatchRecognize {
            table,
            partition_by,
            order_by,
            measures,
            rows_per_match,
            after_match_skip,
            pattern,
            symbols,
            ..
        } = factor
        else {
            unreachable!("called on MATCH_RECOGNIZE only");
        };
        let (input, scope, session) = self.table_factor(table)?;
        if session.is_some() {
            return Err(SqlError::at(table.as_ref(), "MATCH_RECOGNIZE over a SESSION window is not supported"));
        }
        let Some(time_column) = input.rowtime else {
            return Err(SqlError::at(
                table.as_ref(),
                "MATCH_RECOGNIZE needs a table with an event-time column (a WATERMARK)",
            ));
        };
        let partition = scope.partition_columns(partition_by)?;
        let order_by = order_columns(order_by, &scope, time_column, &input.schema.fields[time_column].name, factor)?;
        let all_rows = matches!(rows_per_match, Some(SqlRowsPerMatch::AllRows(_)));

        let mut variables = Vec::new();
        let pattern = convert_pattern(pattern, &mut variables)?;
        let var = |ident: &ast::Ident| -> SqlResult<VarId> {
            variables
                .iter()
                .position(|v: &String| v.eq_ignore_ascii_case(&ident.value))
                .map(|i| VarId(i as u16))
                .ok_or_else(|| SqlError::new(format!("'{}' is not a pattern variable", ident.value), ident.span))
        };
        let mut spec = MatchSpec::parse("A").expect("a trivial pattern");
        let context = MatchContext {
            scope: &scope,
            variables: &variables,
        };
        spec.define = symbols
            .iter()
            .map(|d| Ok((var(&d.symbol)?, context.bool_expr(&d.definition)?)))
            .collect::<SqlResult<_>>()?;
        // ONE ROW PER MATCH: the partition columns, then the measures (FINAL).
        // ALL ROWS PER MATCH: every input column, then the measures (RUNNING, Trino's default).
        let mut fields: Vec<Field> = if all_rows {
            input.schema.fields.clone()
        } else {
            partition.iter().map(|c| Field::new(scope_name(&scope, *c), scope.columns_type(*c))).collect()
        };
        let mut measure_exprs = Vec::new();
        for measure in measures {
            let (expr, data_type) = context.expr(&measure.expr)?;
            measure_exprs.push(if all_rows { expr } else { expr.into_final() });
            fields.push(Field::new(measure.alias.value.clone(), data_type));
        }
        spec.variables = variables.clone();
        spec.pattern = pattern;
        spec.measures = measure_exprs;
        spec.rows_per_match = if all_rows { RowsPerMatch::All } else { RowsPerMatch::One };
        spec.skip = match after_match_skip {
            None | Some(SqlSkip::PastLastRow) => AfterMatchSkip::PastLastRow,
            Some(SqlSkip::ToNextRow) => AfterMatchSkip::ToNextRow,
            Some(SqlSkip::ToFirst(v)) => AfterMatchSkip::ToFirst(var(v)?),
            Some(SqlSkip::ToLast(v)) => AfterMatchSkip::ToLast(var(v)?),
        };
        spec.order_by = order_by;
        spec.within = self
            .claim_within(symbols.first().map(|d| d.symbol.span), factor)?
            .map(|duration| Within { duration, time_column });
        MatchRecognizer::new(spec.clone()).map_err(|error| SqlError::at(factor, error.to_string()))?;
        Ok(Plan {
            schema: Schema::new(fields),
            rowtime: None,
            window: None,
            watermark_tables: input.watermark_tables.clone(),
            node: Node::MatchRecognize {
                input: Box::new(input),
                partition,
                time_column,
                spec,
            },
        })
    }

    /// The `WITHIN` written in this clause: the first unclaimed one before its
    /// `DEFINE` (or anywhere in it when there is no DEFINE).
    fn claim_within(&mut self, define: Option<sqlparser::tokenizer::Span>, factor: &TableFactor) -> SqlResult<Option<i64>> {
        let clause = factor.span();
        let before = define.map_or(clause.end, |span| span.start);
        let position = self.withins.iter().position(|w| w.span.start >= clause.start && w.span.start <= before);
        match position {
            Some(index) => {
                let within = self.withins.remove(index);
                Ok(Some(interval_millis(&within.interval)?))
            }
            None => Ok(None),
        }
    }
}

/// `ORDER BY`: the event-time column ascending (as Flink requires), then
/// any further columns, each `ASC` or `DESC` with `NULLS FIRST` or `LAST`
/// (by default NULL orders before every value: first ascending, last
/// descending).
fn order_columns(order_by: &[ast::OrderByExpr], scope: &Scope, time_column: usize, time_name: &str, factor: &TableFactor) -> SqlResult<Vec<OrderColumn>> {
    let column = |item: &ast::OrderByExpr| match &item.expr {
        Ast::Identifier(ident) => scope.resolve(None, ident),
        Ast::CompoundIdentifier(parts) if parts.len() == 2 => scope.resolve(Some(&parts[0]), &parts[1]),
        other => Err(SqlError::at(other, "MATCH_RECOGNIZE orders by columns, not expressions")),
    };
    let Some((first, further)) = order_by.split_first() else {
        return Err(SqlError::at(factor, "MATCH_RECOGNIZE needs ORDER BY the event-time column"));
    };
    let descending = |item: &ast::OrderByExpr| match &item.options.sort {
        None | Some(ast::OrderBySort::Asc) => Ok(false),
        Some(ast::OrderBySort::Desc) => Ok(true),
        Some(ast::OrderBySort::Using(_)) => Err(SqlError::at(&item.expr, "ORDER BY ... USING is not supported")),
    };
    if column(first).ok() != Some(time_column) || descending(first)? {
        return Err(SqlError::at(
            &first.expr,
            format!("ORDER BY must start with the event-time column '{time_name}' ascending"),
        ));
    }
    further
        .iter()
        .map(|item| {
            let descending = descending(item)?;
            Ok(OrderColumn {
                column: column(item)?,
                descending,
                nulls_first: item.options.nulls_first.unwrap_or(!descending),
            })
        })
        .collect()
}

fn scope_name(scope: &Scope, column: usize) -> String {
    scope.columns[column].name.clone()
}

impl Scope {
    fn columns_type(&self, column: usize) -> DataType {
        self.columns[column].data_type
    }
}

/// The pattern tree, collecting variable names in order of appearance.
fn convert_pattern(pattern: &MatchRecognizePattern, variables: &mut Vec<String>) -> SqlResult<Pattern> {
    Ok(match pattern {
        MatchRecognizePattern::Symbol(MatchRecognizeSymbol::Named(ident)) => {
            let index = match variables.iter().position(|v| v.eq_ignore_ascii_case(&ident.value)) {
                Some(index) => index,
                None => {
                    variables.push(ident.value.clone());
                    variables.len() - 1
                }
            };
            Pattern::Var(VarId(index as u16))
        }
        MatchRecognizePattern::Concat(parts) => Pattern::Concat(parts.iter().map(|p| convert_pattern(p, variables)).collect::<SqlResult<_>>()?),
        MatchRecognizePattern::Alternation(parts) => Pattern::Alt(parts.iter().map(|p| convert_pattern(p, variables)).collect::<SqlResult<_>>()?),
        MatchRecognizePattern::Group(inner) => Pattern::Group(Box::new(convert_pattern(inner, variables)?)),
        MatchRecognizePattern::Repetition(inner, quantifier) => {
            let (quantifier, greedy) = match quantifier {
                RepetitionQuantifier::Reluctant(inner) => (inner.as_ref(), false),
                other => (other, true),
            };
            let (min, max) = match quantifier {
                RepetitionQuantifier::ZeroOrMore => (0, None),
                RepetitionQuantifier::OneOrMore => (1, None),
                RepetitionQuantifier::AtMostOne => (0, Some(1)),
                RepetitionQuantifier::Exactly(n) => (*n, Some(*n)),
                RepetitionQuantifier::AtLeast(n) => (*n, None),
                RepetitionQuantifier::AtMost(n) => (0, Some(*n)),
                RepetitionQuantifier::Range(a, b) => (*a, Some(*b)),
                RepetitionQuantifier::Reluctant(_) => return Err(SqlError::general(format!("unsupported quantifier in {pattern}"))),
            };
            Pattern::Repeat {
                inner: Box::new(convert_pattern(inner, variables)?),
                min,
                max,
                greedy,
            }
        }
        other => {
            return Err(SqlError::general(format!(
                "unsupported pattern element {other} (^, $, exclusion and PERMUTE are not supported)"
            )));
        }
    })
}

/// Names in scope while binding DEFINE and MEASURES.
struct MatchContext<'a> {
    scope: &'a Scope,
    variables: &'a [String],
}

impl MatchContext<'_> {
    fn var(&self, ident: &ast::Ident) -> Option<VarId> {
        self.variables
            .iter()
            .position(|v| v.eq_ignore_ascii_case(&ident.value))
            .map(|i| VarId(i as u16))
    }

    /// A column reference: `A.price` (a variable's row) or `price` (the current row).
    fn column(&self, ast: &Ast) -> SqlResult<(Option<VarId>, usize)> {
        match ast {
            Ast::Identifier(ident) => Ok((None, self.scope.resolve(None, ident)?)),
            Ast::CompoundIdentifier(parts) if parts.len() == 2 => match self.var(&parts[0]) {
                Some(var) => Ok((Some(var), self.scope.resolve(None, &parts[1])?)),
                None => Err(SqlError::new(format!("'{}' is not a pattern variable", parts[0].value), parts[0].span)),
            },
            other => Err(SqlError::at(other, "expected a column, like A.price or price")),
        }
    }

    fn bool_expr(&self, ast: &Ast) -> SqlResult<MatchExpr> {
        let (expr, data_type) = self.expr(ast)?;
        if !data_type.coerces_to(DataType::Bool) {
            return Err(SqlError::at(ast, format!("a DEFINE condition must be BOOLEAN, found {data_type}")));
        }
        Ok(expr)
    }

    fn expr(&self, ast: &Ast) -> SqlResult<(MatchExpr, DataType)> {
        Ok(match ast {
            Ast::Identifier(_) | Ast::CompoundIdentifier(_) => {
                let (var, column) = self.column(ast)?;
                (MatchExpr::column(var, column), self.scope.columns_type(column))
            }
            Ast::Value(value) => {
                let (expr, data_type) = literal(&value.value, value.span)?;
                match expr {
                    crate::plan::Expr::Literal(datum) => (MatchExpr::literal(datum), data_type),
                    _ => unreachable!("a literal binds to a literal"),
                }
            }
            Ast::Interval(_) => (MatchExpr::literal(Datum::Interval(interval_millis(ast)?)), DataType::Interval),
            Ast::Nested(inner) => self.expr(inner)?,
            Ast::UnaryOp { op: UnaryOperator::Not, expr } => (MatchExpr::Not(Box::new(self.bool_expr(expr)?)), DataType::Bool),
            Ast::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => {
                let (inner, data_type) = self.expr(expr)?;
                (MatchExpr::Negate(Box::new(inner)), data_type)
            }
            Ast::IsNull(inner) | Ast::IsNotNull(inner) => (
                MatchExpr::IsNull {
                    expr: Box::new(self.expr(inner)?.0),
                    negated: matches!(ast, Ast::IsNotNull(_)),
                },
                DataType::Bool,
            ),
            Ast::BinaryOp { left, op, right } => {
                let (l, lt) = self.expr(left)?;
                let (r, rt) = self.expr(right)?;
                let (op, data_type) = binary_type(op, lt, rt, ast)?;
                (MatchExpr::binary(op, l, r), data_type)
            }
            // `x BETWEEN low AND high` is `x >= low AND x <= high`, as in the rest of the query language.
            Ast::Between { expr, negated, low, high } => {
                let (value, value_type) = self.expr(expr)?;
                let (low, low_type) = self.expr(low)?;
                let (high, high_type) = self.expr(high)?;
                let (at_least, _) = binary_type(&BinaryOperator::GtEq, value_type, low_type, ast)?;
                let (at_most, _) = binary_type(&BinaryOperator::LtEq, value_type, high_type, ast)?;
                let both = MatchExpr::binary(
                    BinaryOp::And,
                    MatchExpr::binary(at_least, value.clone(), low),
                    MatchExpr::binary(at_most, value, high),
                );
                (if *negated { MatchExpr::Not(Box::new(both)) } else { both }, DataType::Bool)
            }
            Ast::Function(function) => self.function(function, ast)?,
            other => return Err(SqlError::at(other, format!("unsupported expression in MATCH_RECOGNIZE: {other}"))),
        })
    }

    fn function(&self, function: &ast::Function, ast: &Ast) -> SqlResult<(MatchExpr, DataType)> {
        let name = function.name.to_string().to_ascii_uppercase();
        if function.over.is_some() || function.filter.is_some() {
            return Err(SqlError::at(ast, "OVER and FILTER are not supported inside MATCH_RECOGNIZE"));
        }
        let distinct = matches!(&function.args, FunctionArguments::List(list) if matches!(list.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct)));
        // `COUNT(*)` and `COUNT(A.*)`: sqlparser passes the star as its own kind of argument.
        let star = match &function.args {
            FunctionArguments::List(list) => match list.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => Some(None),
                [FunctionArg::Unnamed(FunctionArgExpr::QualifiedWildcard(qualifier))] => Some(Some(qualifier)),
                _ => None,
            },
            _ => None,
        };
        let args: Vec<&Ast> = match &function.args {
            FunctionArguments::None => vec![],
            FunctionArguments::List(_) if star.is_some() => vec![],
            FunctionArguments::List(list) => list
                .args
                .iter()
                .map(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr),
                    other => Err(SqlError::at(other, "only positional arguments are supported")),
                })
                .collect::<SqlResult<_>>()?,
            FunctionArguments::Subquery(query) => return Err(SqlError::at(query.as_ref(), "subqueries are not supported here")),
        };
        let offset = |index: usize| -> SqlResult<u32> {
            match args.get(index) {
                None => Ok(1),
                Some(Ast::Value(v)) => match &v.value {
                    Value::Number(text, _) => text.parse().map_err(|_| SqlError::at(args[index], "the offset must be a non-negative integer")),
                    _ => Err(SqlError::at(args[index], "the offset must be a non-negative integer")),
                },
                Some(other) => Err(SqlError::at(*other, "the offset must be a non-negative integer")),
            }
        };
        match name.as_str() {
            "PREV" | "NEXT" | "FIRST" | "LAST" => {
                let Some(target) = args.first() else {
                    return Err(SqlError::at(ast, format!("{name} needs a column, like {name}(A.price)")));
                };
                if let (true, Ast::Function(_)) = (matches!(name.as_str(), "PREV" | "NEXT"), target) {
                    // PREV(LAST(A.price, 1), 2): a logical navigation, then a physical one.
                    let steps = i64::from(offset(1)?);
                    return match self.expr(target)? {
                        (MatchExpr::Column(navigation), data_type) if navigation.physical == 0 => Ok((
                            MatchExpr::Column(Navigation {
                                physical: if name == "PREV" { -steps } else { steps },
                                ..navigation
                            }),
                            data_type,
                        )),
                        _ => Err(SqlError::at(*target, format!("{name} takes a column or FIRST / LAST of one"))),
                    };
                }
                let (var, column) = self.column(target)?;
                let logical_default = if matches!(name.as_str(), "FIRST" | "LAST") {
                    offset(1).map(|n| if args.len() > 1 { n } else { 0 })?
                } else {
                    offset(1)?
                };
                let expr = match name.as_str() {
                    "PREV" => MatchExpr::prev(var, column, logical_default),
                    "NEXT" => MatchExpr::next(var, column, logical_default),
                    "FIRST" => MatchExpr::first(var, column, logical_default),
                    _ => MatchExpr::last(var, column, logical_default),
                };
                Ok((expr, self.scope.columns_type(column)))
            }
            marker if marker.eq_ignore_ascii_case(dialect::RUNNING) || marker.eq_ignore_ascii_case(dialect::FINAL) => {
                // The dialect wraps only calls of FIRST, LAST, PREV, NEXT and aggregates.
                let semantics = if marker.eq_ignore_ascii_case(dialect::FINAL) {
                    Semantics::Final
                } else {
                    Semantics::Running
                };
                let call = args.first().ok_or_else(|| SqlError::at(ast, "RUNNING / FINAL needs a call"))?;
                let (inner, data_type) = self.expr(call)?;
                let expr = match inner {
                    MatchExpr::Column(navigation) if navigation.physical == 0 => MatchExpr::Column(Navigation { semantics, ..navigation }),
                    MatchExpr::Aggregate(aggregate) => MatchExpr::Aggregate(MatchAggregate { semantics, ..aggregate }),
                    _ => {
                        return Err(SqlError::at(
                            *call,
                            "RUNNING and FINAL apply to FIRST, LAST and aggregates (PREV and NEXT take them inside: PREV(FINAL LAST(A.price), 1))",
                        ));
                    }
                };
                Ok((expr, data_type))
            }
            "CLASSIFIER" => Ok((MatchExpr::Classifier(Default::default()), DataType::String)),
            "MATCH_NUMBER" => Ok((MatchExpr::MatchNumber, DataType::Int)),
            _ => {
                if let Some(aggregate) = AggregateFunction::from_name(&name) {
                    let (var, column, input_type, aggregate) = match (star, args.as_slice()) {
                        (Some(None), _) if aggregate == AggregateFunction::Count => (None, None, DataType::Int, AggregateFunction::CountStar),
                        (Some(Some(qualifier)), _) if aggregate == AggregateFunction::Count => {
                            let ident = qualifier
                                .0
                                .last()
                                .and_then(|p| p.as_ident())
                                .ok_or_else(|| SqlError::at(ast, "COUNT(A.*) names a variable"))?;
                            let var = self
                                .var(ident)
                                .ok_or_else(|| SqlError::new(format!("'{}' is not a pattern variable", ident.value), ident.span))?;
                            (Some(var), None, DataType::Int, AggregateFunction::CountStar)
                        }
                        (Some(_), _) => return Err(SqlError::at(ast, format!("only COUNT takes *, not {name}"))),
                        (None, []) => return Err(SqlError::at(ast, format!("{name} needs an argument"))),
                        (None, [target]) => {
                            let (var, column) = self.column(target)?;
                            (var, Some(column), self.scope.columns_type(column), aggregate)
                        }
                        (None, _) => return Err(SqlError::at(ast, format!("{name} takes one argument"))),
                    };
                    let result = aggregate.result_type(input_type).map_err(|m| SqlError::at(ast, m))?;
                    let spec = AggregateSpec::new(aggregate, input_type);
                    let spec = if distinct { spec.distinct() } else { spec };
                    return Ok((MatchExpr::aggregate(spec, var, column), result));
                }
                if distinct {
                    return Err(SqlError::at(ast, "DISTINCT is only for aggregates"));
                }
                let scalar = Function::from_name(&name).ok_or_else(|| SqlError::at(&function.name, format!("unknown function {name}")))?;
                let mut bound = Vec::new();
                let mut types = Vec::new();
                for arg in args {
                    let (expr, data_type) = self.expr(arg)?;
                    bound.push(expr);
                    types.push(data_type);
                }
                let result = scalar.return_type(&types).map_err(|m| SqlError::at(ast, m))?;
                let call = ScalarFunction::new(scalar.name(), move |values: &[Datum]| scalar.eval(values).map_err(|e| e.0));
                Ok((MatchExpr::Call { function: call, args: bound }, result))
            }
        }
    }
}
