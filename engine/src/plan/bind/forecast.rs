//! Binding the `FORECAST` table function.
//!
//! ```sql
//! SELECT * FROM TABLE(FORECAST(
//!     TABLE hourly PARTITION BY node,      -- a table with a WATERMARK; the keys
//!     DESCRIPTOR(ts),                      -- its event-time column
//!     DESCRIPTOR(price),                   -- the numeric column forecast
//!     MODEL => 'examples/models/price_forecaster.onnx',
//!     STEP => INTERVAL '1' HOUR,           -- the spacing of the series
//!     CONTEXT => 168))                     -- optional: checked against the model
//! ```
//!
//! Output: the `PARTITION BY` columns, then `forecast_time`, `horizon`,
//! `target_time`, `forecast`, `p10`, `p50`, `p90` (see `docs/forecast.md`).
//! The model file is opened here, so `carbonflow check` reports a missing
//! runtime, an unreadable model or a model of the wrong shape at the `MODEL`
//! argument.

use sqlparser::ast::{Expr as Ast, FunctionArg, FunctionArgExpr, FunctionArguments, Value};

use carbonflow_core::{DataType, Field, Schema};
use carbonflow_operators::forecast::onnx::OnnxModel;
use carbonflow_operators::forecast::{ForecastModel, OUTPUT_COLUMNS};

use super::{Binder, Scope, TIME_ATTRIBUTES, descriptor, interval_millis, table_argument};
use crate::plan::{ForecastModelSpec, Node, Plan};
use crate::sql::{SqlError, SqlResult};

/// The syntax, for error messages.
const EXPECTED: &str =
    "FORECAST(TABLE t PARTITION BY key, DESCRIPTOR(ts), DESCRIPTOR(value), MODEL => 'file.onnx', STEP => INTERVAL '1' HOUR [, CONTEXT => n])";

/// Whether a `TABLE(...)` item calls `FORECAST`.
pub(super) fn is_forecast(expr: &Ast) -> bool {
    matches!(expr, Ast::Function(function) if function.name.to_string().eq_ignore_ascii_case("FORECAST"))
}

impl Binder {
    /// Plans `TABLE(FORECAST(...))`.
    pub(super) fn forecast(&mut self, expr: &Ast) -> SqlResult<Plan> {
        let Ast::Function(function) = expr else {
            unreachable!("called on FORECAST only");
        };
        let FunctionArguments::List(list) = &function.args else {
            return Err(SqlError::at(expr, format!("expected {EXPECTED}")));
        };
        let mut positional = Vec::new();
        let (mut model, mut step, mut context) = (None, None, None);
        for arg in &list.args {
            match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(value)) => positional.push(value),
                FunctionArg::Named {
                    name,
                    arg: FunctionArgExpr::Expr(value),
                    ..
                } => {
                    let slot = match name.value.to_ascii_uppercase().as_str() {
                        "MODEL" => &mut model,
                        "STEP" => &mut step,
                        "CONTEXT" => &mut context,
                        _ => return Err(SqlError::new(format!("unknown FORECAST argument {}: {EXPECTED}", name.value), name.span)),
                    };
                    if slot.replace((name, value)).is_some() {
                        return Err(SqlError::new(format!("{} is given twice", name.value), name.span));
                    }
                }
                other => return Err(SqlError::at(other, format!("expected {EXPECTED}"))),
            }
        }
        let [table, time, value] = positional.as_slice() else {
            return Err(SqlError::at(
                expr,
                format!("FORECAST takes three positional arguments, then named ones: {EXPECTED}"),
            ));
        };
        let (table, partition_idents) = table_argument(table, EXPECTED)?;
        let input = self.relation(&table)?;
        let scope = Scope::of(&input.schema, Some(&table.value));
        let time_column = descriptor(&scope, time, EXPECTED)?;
        if input.rowtime != Some(time_column) {
            let column = &input.schema.fields[time_column].name;
            return Err(SqlError::at(*time, format!("'{column}' is not a time attribute: {TIME_ATTRIBUTES}")));
        }
        let value_column = descriptor(&scope, value, EXPECTED)?;
        if !matches!(input.schema.fields[value_column].data_type, DataType::Float | DataType::Int) {
            return Err(SqlError::at(*value, "the forecast column must be numeric (DOUBLE or an integer type)"));
        }
        let partition = partition_idents.iter().map(|p| scope.resolve(None, p)).collect::<SqlResult<Vec<_>>>()?;

        let Some((_, step_ast)) = step else {
            return Err(SqlError::at(expr, format!("STEP is required: {EXPECTED}")));
        };
        let step = interval_millis(step_ast)?;
        if step <= 0 {
            return Err(SqlError::at(step_ast, "STEP must be positive"));
        }
        let Some((_, model_ast)) = model else {
            return Err(SqlError::at(expr, format!("MODEL is required: {EXPECTED}")));
        };
        let Ast::Value(value) = model_ast else {
            return Err(SqlError::at(model_ast, "MODEL takes the model file as a string"));
        };
        let Value::SingleQuotedString(path) = &value.value else {
            return Err(SqlError::at(model_ast, "MODEL takes the model file as a string"));
        };
        let shape = OnnxModel::load(path.as_ref())
            .map_err(|error| SqlError::at(model_ast, error.to_string()))?
            .shape();
        if let Some((name, context_ast)) = context {
            let wanted = match context_ast {
                Ast::Value(v) => match &v.value {
                    Value::Number(n, _) => n.parse::<usize>().ok(),
                    _ => None,
                },
                _ => None,
            };
            match wanted {
                Some(n) if n == shape.context => {}
                Some(n) => {
                    return Err(SqlError::at(
                        context_ast,
                        format!("CONTEXT => {n}, but the model reads {} values ({shape})", shape.context),
                    ));
                }
                None => return Err(SqlError::new(format!("{} takes a whole number", name.value), name.span)),
            }
        }

        let mut fields: Vec<Field> = partition.iter().map(|&c| input.schema.fields[c].clone()).collect();
        let types = [
            DataType::Timestamp,
            DataType::Int,
            DataType::Timestamp,
            DataType::Float,
            DataType::Float,
            DataType::Float,
            DataType::Float,
        ];
        fields.extend(OUTPUT_COLUMNS.iter().zip(types).map(|(name, data_type)| Field::new(*name, data_type)));
        Ok(Plan {
            schema: Schema::new(fields),
            rowtime: Some(partition.len()),
            window: None,
            watermark_tables: input.watermark_tables.clone(),
            node: Node::Forecast {
                input: Box::new(input),
                partition,
                time_column,
                value_column,
                model: ForecastModelSpec {
                    path: path.clone(),
                    step,
                    shape,
                },
            },
        })
    }
}
