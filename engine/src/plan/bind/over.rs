//! Binding OVER calls (Flink's over aggregation, with carbonflow's analytics
//! functions) to an [`Node::Over`] plan.
//!
//! ```sql
//! SELECT node, ts, price,
//!        ZSCORE(price) OVER w AS z,
//!        EWMA_ZSCORE(price, INTERVAL '1' HOUR) OVER (PARTITION BY node ORDER BY ts) AS ez
//! FROM ticks
//! WINDOW w AS (PARTITION BY node ORDER BY ts ROWS BETWEEN 19 PRECEDING AND CURRENT ROW)
//! ```
//!
//! Every call of a SELECT must share one `PARTITION BY` (columns, possibly
//! none) and `ORDER BY` the event-time column ascending, as in Flink; each
//! call has its own frame: `ROWS BETWEEN n PRECEDING AND CURRENT ROW`,
//! `RANGE BETWEEN INTERVAL '...' PRECEDING AND CURRENT ROW`, or none for the
//! functions that fold all preceding rows. The plan is the input, a
//! projection appending the call arguments that are not plain columns, the
//! `Over` node (input columns, then one column per call), and the SELECT
//! list over that, in which each call is a column reference. The functions
//! and their parameters are described in `docs/analytics.md`.

use std::ops::ControlFlow;
use std::sync::Arc;

use sqlparser::ast::{
    self, Expr as Ast, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, NamedWindowExpr, SelectItem, Spanned, UnaryOperator, Value, WindowFrameBound,
    WindowFrameUnits, WindowSpec, WindowType,
};
use sqlparser::tokenizer::Span;

use carbonflow_core::{DataType, Field, Schema};
use carbonflow_operators::aggregate::{AggregateFunction, AggregateSpec};
use carbonflow_operators::analytics::{
    CusumParams, Decay, DetectorOutput, Frame, GarchParams, HmmModel, Observation, OverCall, OverFunction, PageHinkleyParams, Seasonal,
};

use super::{Binder, Scope, ScopeColumn, TIME_ATTRIBUTES, default_name, interval_millis, project};
use crate::plan::{Expr, Node, Plan};
use crate::sql::{SqlError, SqlResult};

/// The column name an OVER call's result has between the `Over` node and the
/// SELECT list (not writable as a plain identifier, so never a user's column).
fn call_column(index: usize) -> String {
    format!("over${index}")
}

/// Whether a SELECT item calls a function with OVER.
pub(super) fn has_over(select: &ast::Select) -> bool {
    let mut found = false;
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item {
            let _ = ast::visit_expressions(expr, |e: &Ast| {
                if matches!(e, Ast::Function(f) if f.over.is_some()) {
                    found = true;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
        }
    }
    found
}

/// The `PARTITION BY` and `ORDER BY` every call of the SELECT shares.
struct Shared {
    partition: Vec<usize>,
    /// The first call's window, for errors about the others.
    span: Span,
}

impl Binder {
    /// Plans a SELECT whose items call OVER functions, over `input` (already filtered by WHERE).
    pub(super) fn over_select(&mut self, select: &ast::Select, input: Plan, scope: &Scope) -> SqlResult<Plan> {
        let span = select.select_token.0.span;
        let Some(time_column) = input.rowtime else {
            return Err(SqlError::new(format!("OVER needs rows with a time attribute: {TIME_ATTRIBUTES}"), span));
        };
        let mut items = select.projection.clone();
        let mut calls: Vec<OverCall> = Vec::new();
        let mut call_types: Vec<DataType> = Vec::new();
        let mut extra_args: Vec<(Expr, DataType)> = Vec::new();
        let mut shared: Option<Shared> = None;
        for (position, item) in items.iter_mut().enumerate() {
            if let SelectItem::UnnamedExpr(expr) = item
                && matches!(expr, Ast::Function(f) if f.over.is_some())
            {
                // Flink's name for an unaliased call, kept once the call becomes a column reference.
                let alias = Ident::new(default_name(expr, position));
                *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias };
            }
            let (SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) = item else {
                continue;
            };
            let flow = ast::visit_expressions_mut(expr, |e: &mut Ast| {
                let Ast::Function(function) = e else { return ControlFlow::Continue(()) };
                let Some(over) = &function.over else { return ControlFlow::Continue(()) };
                let bound = self.over_call(function, over, select, scope, time_column, &mut shared, input.schema.len(), &mut extra_args);
                match bound {
                    Ok((call, data_type)) => {
                        *e = Ast::Identifier(Ident::new(call_column(calls.len())));
                        calls.push(call);
                        call_types.push(data_type);
                        ControlFlow::Continue(())
                    }
                    Err(error) => ControlFlow::Break(error),
                }
            });
            if let ControlFlow::Break(error) = flow {
                return Err(error);
            }
        }
        let partition = shared.map(|s| s.partition).unwrap_or_default();

        // Arguments that are not columns are computed by a projection below.
        let mut over_scope = scope.clone();
        let input = if extra_args.is_empty() {
            input
        } else {
            let width = input.schema.len();
            let mut exprs: Vec<Expr> = (0..width).map(Expr::Column).collect();
            let mut fields = input.schema.fields.clone();
            for (index, (expr, data_type)) in extra_args.into_iter().enumerate() {
                let name = format!("over$arg{index}");
                over_scope.columns.push(ScopeColumn {
                    qualifier: None,
                    name: name.clone(),
                    data_type,
                });
                fields.push(Field::new(name, data_type));
                exprs.push(expr);
            }
            project(input, exprs, Schema::new(fields))
        };
        let mut fields = input.schema.fields.clone();
        for (index, data_type) in call_types.iter().enumerate() {
            over_scope.columns.push(ScopeColumn {
                qualifier: None,
                name: call_column(index),
                data_type: *data_type,
            });
            fields.push(Field::new(call_column(index), *data_type));
        }
        let over = Plan {
            schema: Schema::new(fields),
            rowtime: input.rowtime,
            window: None,
            watermark_tables: input.watermark_tables.clone(),
            node: Node::Over {
                input: Box::new(input),
                partition,
                time_column,
                calls,
            },
        };
        let (exprs, schema) = self.projection(&items, &over_scope, None)?;
        Ok(project(over, exprs, schema))
    }

    /// Binds one `f(...) OVER window`: the call and its result type.
    #[allow(clippy::too_many_arguments)]
    fn over_call(
        &mut self,
        function: &ast::Function,
        over: &WindowType,
        select: &ast::Select,
        scope: &Scope,
        time_column: usize,
        shared: &mut Option<Shared>,
        input_width: usize,
        extra_args: &mut Vec<(Expr, DataType)>,
    ) -> SqlResult<(OverCall, DataType)> {
        let name = function.name.to_string().to_ascii_uppercase();
        let at = |message: String| SqlError::at(&function.name, message);
        if function.filter.is_some() || function.null_treatment.is_some() || !function.within_group.is_empty() {
            return Err(at(format!("{name}: FILTER, IGNORE NULLS and WITHIN GROUP are not supported with OVER")));
        }
        let window = resolve_window(over, select)?;
        let (partition, frame) = self.window(&window, scope, time_column)?;
        match shared {
            None => {
                *shared = Some(Shared {
                    partition,
                    span: function.name.span(),
                })
            }
            Some(first) if first.partition != partition => {
                return Err(at(format!(
                    "every OVER call of a SELECT must have the same PARTITION BY (the first one, at line {}, differs)",
                    first.span.start.line
                )));
            }
            Some(_) => {}
        }
        let FunctionArguments::List(list) = &function.args else {
            return Err(at(format!("{name} needs arguments")));
        };
        let distinct = matches!(list.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct));
        let args: Vec<&FunctionArg> = list.args.iter().collect();
        // A value argument: a column of the input, or an expression computed below the operator.
        let mut value = |binder: &mut Binder, arg: &FunctionArg, numeric: bool| -> SqlResult<(usize, DataType)> {
            let FunctionArg::Unnamed(FunctionArgExpr::Expr(ast)) = arg else {
                return Err(SqlError::at(arg, format!("{name} takes positional arguments")));
            };
            let (expr, data_type) = binder.expr(ast, scope, None)?;
            if numeric && !data_type.is_numeric() {
                return Err(SqlError::at(ast, format!("{name} needs a numeric argument, found {data_type}")));
            }
            Ok(match expr.as_column() {
                Some(column) => (column, data_type),
                None => {
                    extra_args.push((expr, data_type));
                    (input_width + extra_args.len() - 1, data_type)
                }
            })
        };
        if let Some(aggregate) = AggregateFunction::from_name(&name) {
            let (column, input_type, aggregate) = match args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if aggregate == AggregateFunction::Count && !distinct => {
                    (time_column, DataType::Int, AggregateFunction::CountStar)
                }
                [arg] => {
                    let (column, data_type) = value(self, arg, false)?;
                    (column, data_type, aggregate)
                }
                _ => return Err(at(format!("{name} takes one argument"))),
            };
            let result = aggregate.result_type(input_type).map_err(at)?;
            let spec = AggregateSpec {
                function: aggregate,
                input_type,
                distinct,
            };
            let call = OverCall {
                function: OverFunction::Aggregate(spec),
                args: vec![column],
                frame,
            };
            call.check().map_err(at)?;
            return Ok((call, result));
        }
        if distinct {
            return Err(at("DISTINCT is only for aggregates".to_owned()));
        }
        let usage = usage(&name).ok_or_else(|| at(format!("unknown OVER function {name} (see docs/analytics.md)")))?;
        let (values, parameters) = (usage.values, args.len().saturating_sub(usage.values));
        if args.len() < usage.values || parameters < usage.required || parameters > usage.required + usage.optional {
            return Err(at(format!("wrong arguments: {}", usage.signature)));
        }
        let mut columns = Vec::new();
        for arg in &args[..values] {
            columns.push(value(self, arg, true)?.0);
        }
        let params = Parameters {
            args: &args[values..],
            signature: usage.signature,
        };
        let function = match name.as_str() {
            "ZSCORE" => OverFunction::ZScore,
            "ROBUST_ZSCORE" => OverFunction::RobustZScore,
            "CORR" => OverFunction::Corr,
            "CORR_SHIFT" => OverFunction::CorrShift,
            "EWMA" => OverFunction::Ewma(params.decay(0)?),
            "EWMA_ZSCORE" => OverFunction::EwmaZScore(params.decay(0)?),
            "SEASONAL_ZSCORE" | "SEASONAL_BASELINE" => {
                let weeks = params.integer(0)?;
                let weeks = u32::try_from(weeks)
                    .ok()
                    .filter(|w| *w > 0)
                    .ok_or_else(|| params.error(0, "the number of weeks must be a positive integer"))?;
                let zone = match params.args.get(1) {
                    Some(_) => {
                        let text = params.string(1)?;
                        text.parse::<chrono_tz::Tz>()
                            .map_err(|_| params.error(1, &format!("unknown time zone '{text}'")))?
                    }
                    None => chrono_tz::UTC,
                };
                OverFunction::Seasonal(Seasonal {
                    weeks,
                    zone,
                    baseline_only: name == "SEASONAL_BASELINE",
                })
            }
            "HMM_PROBABILITY" | "HMM_STATE" => {
                let text = params.string(0)?;
                let model = load_model(&text).map_err(|message| params.error(0, &message))?;
                if name == "HMM_STATE" {
                    OverFunction::HmmState(Arc::new(model))
                } else {
                    let state = params.integer(1)?;
                    let state = usize::try_from(state)
                        .ok()
                        .filter(|s| *s < model.states())
                        .ok_or_else(|| params.error(1, &format!("the model has states 0 to {}", model.states() - 1)))?;
                    OverFunction::HmmProbability { model: Arc::new(model), state }
                }
            }
            "CUSUM" | "CUSUM_ALARM" => {
                let warmup = match params.args.get(2) {
                    Some(_) => u32::try_from(params.integer(2)?).map_err(|_| params.error(2, "the warm-up is a count of rows"))?,
                    None => DEFAULT_CUSUM_WARMUP,
                };
                let cusum = CusumParams {
                    k: params.non_negative(0)?,
                    h: params.non_negative(1)?,
                    warmup,
                };
                OverFunction::Cusum(cusum, if name == "CUSUM" { DetectorOutput::Statistic } else { DetectorOutput::Alarm })
            }
            "PAGE_HINKLEY" | "PAGE_HINKLEY_ALARM" => {
                let page_hinkley = PageHinkleyParams {
                    delta: params.non_negative(0)?,
                    lambda: params.non_negative(1)?,
                };
                let output = if name == "PAGE_HINKLEY" {
                    DetectorOutput::Statistic
                } else {
                    DetectorOutput::Alarm
                };
                OverFunction::PageHinkley(page_hinkley, output)
            }
            "GARCH_VOLATILITY" => {
                let observation = match params.args.get(3) {
                    Some(_) => {
                        let text = params.string(3)?;
                        Observation::from_name(&text).ok_or_else(|| params.error(3, "the observation is 'value', 'difference' or 'log_return'"))?
                    }
                    None => Observation::Value,
                };
                let garch = GarchParams {
                    omega: params.number(0)?,
                    alpha: params.number(1)?,
                    beta: params.number(2)?,
                    observation,
                };
                garch.check().map_err(at)?;
                OverFunction::Garch(garch)
            }
            _ => unreachable!("usage() knows {name}"),
        };
        let data_type = function.result_type();
        let call = OverCall {
            function,
            args: columns,
            frame,
        };
        call.check().map_err(at)?;
        Ok((call, data_type))
    }

    /// The partition columns and the frame of a window, checking its `ORDER BY`.
    fn window(&mut self, window: &WindowSpec, scope: &Scope, time_column: usize) -> SqlResult<(Vec<usize>, Frame)> {
        let partition = scope.partition_columns(&window.partition_by)?;
        let time_name = &scope.columns[time_column].name;
        match window.order_by.as_slice() {
            [only] if self.expr(&only.expr, scope, None).ok().and_then(|(e, _)| e.as_column()) == Some(time_column) => {
                if matches!(only.options.sort, Some(ast::OrderBySort::Desc)) {
                    return Err(SqlError::at(&only.expr, "OVER orders by event time ascending only"));
                }
            }
            [] => {
                return Err(SqlError::new(
                    format!("OVER needs ORDER BY the event-time column '{time_name}'"),
                    window.window_name.as_ref().map_or(Span::empty(), |n| n.span),
                ));
            }
            [first, ..] => {
                return Err(SqlError::at(
                    &first.expr,
                    format!("OVER must ORDER BY the event-time column '{time_name}' alone"),
                ));
            }
        }
        let Some(frame) = &window.window_frame else {
            return Ok((partition, Frame::Unbounded));
        };
        let end = frame.end_bound.as_ref().unwrap_or(&WindowFrameBound::CurrentRow);
        if *end != WindowFrameBound::CurrentRow {
            return Err(SqlError::new(
                "a frame must end at CURRENT ROW (a streaming OVER cannot see following rows)",
                Span::empty(),
            ));
        }
        let frame = match (&frame.units, &frame.start_bound) {
            (_, WindowFrameBound::Preceding(None)) => Frame::Unbounded,
            (WindowFrameUnits::Rows, WindowFrameBound::CurrentRow) => Frame::Rows(0),
            (WindowFrameUnits::Range, WindowFrameBound::CurrentRow) => Frame::Range(0),
            (WindowFrameUnits::Rows, WindowFrameBound::Preceding(Some(count))) => Frame::Rows(match count.as_ref() {
                Ast::Value(v) => match &v.value {
                    Value::Number(text, _) => text.parse().map_err(|_| SqlError::at(count.as_ref(), "ROWS takes a count of rows"))?,
                    _ => return Err(SqlError::at(count.as_ref(), "ROWS takes a count of rows")),
                },
                other => return Err(SqlError::at(other, "ROWS takes a count of rows")),
            }),
            (WindowFrameUnits::Range, WindowFrameBound::Preceding(Some(interval))) => Frame::Range(interval_millis(interval)?),
            (WindowFrameUnits::Groups, _) => return Err(SqlError::new("GROUPS frames are not supported; use ROWS or RANGE", Span::empty())),
            (_, WindowFrameBound::Following(_)) => {
                return Err(SqlError::new("a frame cannot start after the current row; use n PRECEDING", Span::empty()));
            }
        };
        Ok((partition, frame))
    }
}

/// The warm-up of `CUSUM` when the call gives none: rows since the last
/// alarm before the statistic accumulates.
const DEFAULT_CUSUM_WARMUP: u32 = 20;

/// The inline window of a call, or the named one it refers to.
fn resolve_window(over: &WindowType, select: &ast::Select) -> SqlResult<WindowSpec> {
    let named = |name: &Ident| -> SqlResult<WindowSpec> {
        let mut name = name.clone();
        // A named window may be defined as another one (WINDOW a AS b); follow a few steps.
        for _ in 0..=select.named_window.len() {
            let definition = select
                .named_window
                .iter()
                .find(|d| d.0.value.eq_ignore_ascii_case(&name.value))
                .ok_or_else(|| SqlError::new(format!("no window named '{}' in this SELECT's WINDOW clause", name.value), name.span))?;
            match &definition.1 {
                NamedWindowExpr::WindowSpec(spec) => return Ok(spec.clone()),
                NamedWindowExpr::NamedWindow(next) => name = next.clone(),
            }
        }
        Err(SqlError::new(format!("window '{}' is defined in a cycle", name.value), name.span))
    };
    match over {
        WindowType::NamedWindow(name) => named(name),
        WindowType::WindowSpec(spec) => match &spec.window_name {
            None => Ok(spec.clone()),
            // `OVER (w ROWS ...)`: the named window with a frame added.
            Some(base) => {
                if !spec.partition_by.is_empty() || !spec.order_by.is_empty() {
                    return Err(SqlError::new(
                        format!("OVER ({} ...) may add a frame to the window, not PARTITION BY or ORDER BY", base.value),
                        base.span,
                    ));
                }
                let mut resolved = named(base)?;
                if spec.window_frame.is_some() {
                    resolved.window_frame = spec.window_frame.clone();
                }
                Ok(resolved)
            }
        },
    }
}

/// How an analytics function is called.
struct Usage {
    /// Value arguments (columns or expressions), first.
    values: usize,
    /// Literal parameters after them, required then optional.
    required: usize,
    optional: usize,
    signature: &'static str,
}

fn usage(name: &str) -> Option<Usage> {
    let (values, required, optional, signature) = match name {
        "ZSCORE" => (1, 0, 0, "ZSCORE(x) OVER (... frame)"),
        "ROBUST_ZSCORE" => (1, 0, 0, "ROBUST_ZSCORE(x) OVER (... frame)"),
        "CORR" => (2, 0, 0, "CORR(x, y) OVER (... frame)"),
        "CORR_SHIFT" => (2, 0, 0, "CORR_SHIFT(x, y) OVER (... frame)"),
        "EWMA" => (1, 1, 0, "EWMA(x, half_life) where half_life is INTERVAL '...' or a number of rows"),
        "EWMA_ZSCORE" => (1, 1, 0, "EWMA_ZSCORE(x, half_life) where half_life is INTERVAL '...' or a number of rows"),
        "SEASONAL_ZSCORE" => (1, 1, 1, "SEASONAL_ZSCORE(x, weeks [, 'time zone'])"),
        "SEASONAL_BASELINE" => (1, 1, 1, "SEASONAL_BASELINE(x, weeks [, 'time zone'])"),
        "HMM_PROBABILITY" => (1, 2, 0, "HMM_PROBABILITY(x, 'model.json' or '{...}', state)"),
        "HMM_STATE" => (1, 1, 0, "HMM_STATE(x, 'model.json' or '{...}')"),
        "CUSUM" => (1, 2, 1, "CUSUM(x, k, h [, warmup])"),
        "CUSUM_ALARM" => (1, 2, 1, "CUSUM_ALARM(x, k, h [, warmup])"),
        "PAGE_HINKLEY" => (1, 2, 0, "PAGE_HINKLEY(x, delta, lambda)"),
        "PAGE_HINKLEY_ALARM" => (1, 2, 0, "PAGE_HINKLEY_ALARM(x, delta, lambda)"),
        "GARCH_VOLATILITY" => (1, 3, 1, "GARCH_VOLATILITY(x, omega, alpha, beta [, 'value' | 'difference' | 'log_return'])"),
        _ => return None,
    };
    Some(Usage {
        values,
        required,
        optional,
        signature,
    })
}

/// A model given inline (`'{...}'`) or as the path of a JSON file.
fn load_model(text: &str) -> Result<HmmModel, String> {
    if text.trim_start().starts_with('{') {
        return HmmModel::from_json(text);
    }
    let json = std::fs::read_to_string(text).map_err(|error| format!("cannot read the model file '{text}': {error}"))?;
    HmmModel::from_json(&json).map_err(|message| format!("{text}: {message}"))
}

/// The literal parameters of a call.
struct Parameters<'a> {
    args: &'a [&'a FunctionArg],
    signature: &'static str,
}

impl Parameters<'_> {
    fn error(&self, index: usize, message: &str) -> SqlError {
        SqlError::at(self.args[index], format!("{message}: {}", self.signature))
    }

    fn ast(&self, index: usize) -> SqlResult<&Ast> {
        match self.args[index] {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(ast)) => Ok(ast),
            _ => Err(self.error(index, "expected a literal")),
        }
    }

    fn number(&self, index: usize) -> SqlResult<f64> {
        let (negative, ast) = match self.ast(index)? {
            Ast::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => (true, expr.as_ref()),
            other => (false, other),
        };
        match ast {
            Ast::Value(v) => match &v.value {
                Value::Number(text, _) => text
                    .parse::<f64>()
                    .map(|n| if negative { -n } else { n })
                    .map_err(|_| self.error(index, "expected a number")),
                _ => Err(self.error(index, "expected a number")),
            },
            _ => Err(self.error(index, "expected a number literal")),
        }
    }

    fn non_negative(&self, index: usize) -> SqlResult<f64> {
        let value = self.number(index)?;
        if value >= 0.0 && value.is_finite() {
            Ok(value)
        } else {
            Err(self.error(index, "expected a non-negative number"))
        }
    }

    fn integer(&self, index: usize) -> SqlResult<i64> {
        let value = self.number(index)?;
        if value.fract() == 0.0 && value.abs() < 1e15 {
            Ok(value as i64)
        } else {
            Err(self.error(index, "expected an integer"))
        }
    }

    fn string(&self, index: usize) -> SqlResult<String> {
        match self.ast(index)? {
            Ast::Value(v) => match &v.value {
                Value::SingleQuotedString(text) => Ok(text.clone()),
                _ => Err(self.error(index, "expected a quoted string")),
            },
            _ => Err(self.error(index, "expected a quoted string")),
        }
    }

    /// A half-life: `INTERVAL '...'` (event time) or a positive number of rows.
    fn decay(&self, index: usize) -> SqlResult<Decay> {
        if let Ast::Interval(_) = self.ast(index)? {
            let millis = interval_millis(self.ast(index)?)?;
            return if millis > 0 {
                Ok(Decay::Time(millis))
            } else {
                Err(self.error(index, "the half-life must be positive"))
            };
        }
        let rows = self.number(index)?;
        if rows > 0.0 && rows.is_finite() {
            Ok(Decay::Rows(rows))
        } else {
            Err(self.error(index, "the half-life must be positive"))
        }
    }
}
