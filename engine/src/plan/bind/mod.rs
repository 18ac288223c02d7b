//! The binder: parsed statements to a checked [`Program`].
//!
//! It resolves table, view and column names, types every expression, plans
//! window table functions and aggregations, and rejects anything it does not
//! support with an error at the offending token. Nothing is silently ignored.

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::ast::{
    self, BinaryOperator, CeilFloorKind, DataType as SqlType, Expr as Ast, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Query,
    SelectItem, SetExpr, Spanned, TableFactor, UnaryOperator, Value,
};
use sqlparser::tokenizer::Span;

/// Durations in settings and options (`'5 min'`), re-exported for the CLI and the dataflow builder.
pub use carbonflow_core::time::parse_duration;
use carbonflow_core::time::parse_timestamp;
use carbonflow_core::{ConnectorConfig, DataType, Datum, Field, Millis, OptionError, Schema};
use carbonflow_operators::aggregate::{AggregateFunction, AggregateSpec};
use carbonflow_operators::windows::WindowSpec;

use super::expr::{BinaryOp, Expr, unit_millis};
use super::functions::Function;
mod forecast;
mod match_recognize;
mod over;

use super::{AggregateCall, Node, Output, OutputTarget, Plan, Program, Table, TableRole, View, WatermarkSpec, WindowColumns};
use crate::sql::dialect::TABLE_ARGUMENT;
use crate::sql::{CreateTable, Emit, ParsedFile, SqlError, SqlResult, Statement, WithinClause};

/// What a time attribute is, for errors about a column that is not one.
const TIME_ATTRIBUTES: &str = "time attributes are a table's WATERMARK column, a view's column selecting one unchanged, \
     and the window_time of a window aggregation grouped by it";

/// The Flink setting for allowed lateness of windows.
const ALLOWED_LATENESS: &str = "table.exec.emit.allowed-lateness";

/// Binds a parsed file. `check_connector` validates each table's connector
/// options (the sources and sinks crates own those rules).
pub fn bind_program(file: &ParsedFile, check_connector: &dyn Fn(&ConnectorConfig, TableRole) -> Result<(), OptionError>) -> SqlResult<Program> {
    let statements = &file.statements;
    let mut binder = Binder {
        withins: file.withins.clone(),
        program: Program {
            tables: vec![],
            views: vec![],
            outputs: vec![],
            allowed_lateness: 0,
        },
        table_spans: vec![],
    };
    for statement in statements {
        match statement {
            Statement::CreateTable(table) => binder.create_table(table)?,
            Statement::CreateView { name, query, emit } => {
                binder.check_new_name(name)?;
                let plan = binder.query(query, *emit)?;
                binder.program.views.push(View {
                    name: name.value.clone(),
                    plan,
                });
            }
            Statement::Insert { table, query, emit } => binder.insert(table, query, *emit)?,
            Statement::Select { query, emit } => {
                let plan = binder.query(query, *emit)?;
                binder.program.outputs.push(Output {
                    target: OutputTarget::Print,
                    plan,
                });
            }
            Statement::Set { key, value, span } => binder.set(key, value, *span)?,
        }
    }
    if binder.program.outputs.is_empty() && binder.program.views.is_empty() {
        return Err(SqlError::general("the file has no CREATE VIEW, INSERT INTO or SELECT, so it produces nothing"));
    }
    for (table, span) in binder.program.tables.iter().zip(&binder.table_spans) {
        if table.role == TableRole::Unused {
            continue;
        }
        check_connector(&table.connector, table.role).map_err(|error| span.error_for(error))?;
    }
    Ok(binder.program)
}

/// Where a table's parts are written, to point connector errors at them.
struct TableSpans {
    name: Span,
    options: BTreeMap<String, Span>,
    columns: BTreeMap<String, Span>,
}

impl TableSpans {
    fn error_for(&self, error: OptionError) -> SqlError {
        let span = error
            .option_key()
            .and_then(|key| self.options.get(key))
            .or_else(|| error.column().and_then(|column| self.columns.get(&column.to_ascii_lowercase())))
            .copied()
            .unwrap_or(self.name);
        SqlError::new(error.to_string(), span)
    }
}

struct Binder {
    /// The file's `WITHIN` clauses, claimed by their MATCH_RECOGNIZE.
    withins: Vec<WithinClause>,
    program: Program,
    table_spans: Vec<TableSpans>,
}

/// A column visible to expressions: its qualifier (table alias), name and type.
#[derive(Clone, Debug)]
struct ScopeColumn {
    qualifier: Option<String>,
    name: String,
    data_type: DataType,
}

/// The columns an expression may reference, in plan column order.
#[derive(Clone, Debug, Default)]
struct Scope {
    columns: Vec<ScopeColumn>,
}

impl Scope {
    /// The columns of a `PARTITION BY` (of MATCH_RECOGNIZE or OVER), which must be plain columns.
    fn partition_columns(&self, keys: &[Ast]) -> SqlResult<Vec<usize>> {
        keys.iter()
            .map(|key| match key {
                Ast::Identifier(ident) => self.resolve(None, ident),
                Ast::CompoundIdentifier(parts) if parts.len() == 2 => self.resolve(Some(&parts[0]), &parts[1]),
                other => Err(SqlError::at(other, "PARTITION BY takes columns")),
            })
            .collect()
    }

    fn of(schema: &Schema, qualifier: Option<&str>) -> Scope {
        Scope {
            columns: schema
                .fields
                .iter()
                .map(|f| ScopeColumn {
                    qualifier: qualifier.map(str::to_ascii_lowercase),
                    name: f.name.clone(),
                    data_type: f.data_type,
                })
                .collect(),
        }
    }

    fn resolve(&self, qualifier: Option<&Ident>, name: &Ident) -> SqlResult<usize> {
        let matches: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.name.eq_ignore_ascii_case(&name.value) && qualifier.is_none_or(|q| c.qualifier.as_deref() == Some(q.value.to_ascii_lowercase().as_str()))
            })
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [index] => Ok(*index),
            [] => {
                let full = qualifier.map_or(name.value.clone(), |q| format!("{}.{}", q.value, name.value));
                let known: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
                Err(SqlError::new(
                    format!("unknown column '{full}' (columns here: {})", known.join(", ")),
                    name.span,
                ))
            }
            _ => Err(SqlError::new(
                format!("column '{}' is ambiguous; qualify it with a table name", name.value),
                name.span,
            )),
        }
    }
}

/// Aggregation context: expressions are rewritten over the aggregate's output
/// (keys first, then aggregates).
struct Aggregation<'a> {
    input: &'a Scope,
    keys: Vec<Expr>,
    key_types: Vec<DataType>,
    calls: Vec<AggregateCall>,
    call_types: Vec<DataType>,
}

impl Binder {
    fn check_new_name(&self, name: &Ident) -> SqlResult<()> {
        let taken = self.program.tables.iter().any(|t| t.name().eq_ignore_ascii_case(&name.value))
            || self.program.views.iter().any(|v| v.name.eq_ignore_ascii_case(&name.value));
        if taken {
            Err(SqlError::new(format!("'{}' is already declared", name.value), name.span))
        } else {
            Ok(())
        }
    }

    fn set(&mut self, key: &str, value: &str, span: Span) -> SqlResult<()> {
        if !key.eq_ignore_ascii_case(ALLOWED_LATENESS) {
            return Err(SqlError::new(format!("unknown setting '{key}' (supported: '{ALLOWED_LATENESS}')"), span));
        }
        self.program.allowed_lateness =
            parse_duration(value).ok_or_else(|| SqlError::new(format!("'{value}' is not a duration like '30 s' or '5 min'"), span))?;
        Ok(())
    }

    fn create_table(&mut self, table: &CreateTable) -> SqlResult<()> {
        self.check_new_name(&table.name)?;
        let mut fields = Vec::new();
        let mut column_spans = BTreeMap::new();
        for column in &table.columns {
            if fields.iter().any(|f: &Field| f.name.eq_ignore_ascii_case(&column.name.value)) {
                return Err(SqlError::new(format!("column '{}' is declared twice", column.name.value), column.name.span));
            }
            let data_type =
                sql_type(&column.data_type).ok_or_else(|| SqlError::new(format!("unsupported column type {}", column.data_type), column.type_span))?;
            fields.push(Field {
                name: column.name.value.clone(),
                data_type,
                nullable: !column.not_null,
            });
            column_spans.insert(column.name.value.to_ascii_lowercase(), column.name.span);
        }
        let schema = Schema::new(fields);
        let column_index = |ident: &Ident| {
            schema
                .index_of(&ident.value)
                .ok_or_else(|| SqlError::new(format!("unknown column '{}' in table '{}'", ident.value, table.name.value), ident.span))
        };
        let primary_key = match &table.primary_key {
            Some(columns) => Some(columns.iter().map(column_index).collect::<SqlResult<Vec<_>>>()?),
            None => None,
        };
        let watermark = match &table.watermark {
            Some(declaration) => {
                let column = column_index(&declaration.column)?;
                if schema.fields[column].data_type != DataType::Timestamp {
                    return Err(SqlError::new(
                        format!("the watermark column '{}' must be a TIMESTAMP", declaration.column.value),
                        declaration.column.span,
                    ));
                }
                let delay = watermark_delay(&declaration.expression, &declaration.column)?;
                Some(WatermarkSpec { column, delay })
            }
            None => None,
        };
        let mut options = BTreeMap::new();
        let mut option_spans = BTreeMap::new();
        for option in &table.options {
            let key = option.key.to_ascii_lowercase();
            let value = substitute_env(&option.value).map_err(|message| SqlError::new(format!("option '{}': {message}", option.key), option.span))?;
            if options.insert(key.clone(), value).is_some() {
                return Err(SqlError::new(format!("option '{}' is given twice", option.key), option.span));
            }
            option_spans.insert(key, option.span);
        }
        let connector = ConnectorConfig {
            table: table.name.value.clone(),
            schema,
            event_time_column: watermark.map(|w| w.column),
            primary_key: primary_key.clone(),
            options,
        };
        if connector.option("connector").is_none() {
            return Err(SqlError::new(
                format!("table '{}' needs a 'connector' option", table.name.value),
                table.name.span,
            ));
        }
        self.program.tables.push(Table {
            connector,
            primary_key,
            watermark,
            role: TableRole::Unused,
        });
        self.table_spans.push(TableSpans {
            name: table.name.span,
            options: option_spans,
            columns: column_spans,
        });
        Ok(())
    }

    fn insert(&mut self, table: &Ident, query: &Query, emit: Emit) -> SqlResult<()> {
        let index = self.find_table(table)?;
        match self.program.tables[index].role {
            TableRole::Source => {
                return Err(SqlError::new(
                    format!("'{}' is read by a query, so it cannot also be written", table.value),
                    table.span,
                ));
            }
            _ => self.program.tables[index].role = TableRole::Sink,
        }
        let plan = self.query(query, emit)?;
        let sink_schema = self.program.tables[index].connector.schema.clone();
        if plan.schema.len() != sink_schema.len() {
            return Err(SqlError::new(
                format!(
                    "the query produces {} columns {} but '{}' has {} columns {}",
                    plan.schema.len(),
                    plan.schema,
                    table.value,
                    sink_schema.len(),
                    sink_schema
                ),
                query.body.span(),
            ));
        }
        let mut exprs = Vec::new();
        for (i, (produced, wanted)) in plan.schema.fields.iter().zip(&sink_schema.fields).enumerate() {
            if !produced.data_type.coerces_to(wanted.data_type) {
                return Err(SqlError::new(
                    format!(
                        "column {} ('{}') is {} but sink column '{}' is {}",
                        i + 1,
                        produced.name,
                        produced.data_type,
                        wanted.name,
                        wanted.data_type
                    ),
                    query.body.span(),
                ));
            }
            let column = Expr::Column(i);
            exprs.push(if produced.data_type == wanted.data_type {
                column
            } else {
                Expr::Cast {
                    expr: Box::new(column),
                    to: wanted.data_type,
                }
            });
        }
        // Cast to the sink's types only where needed, so DOUBLE columns print as doubles.
        let plan = if exprs.iter().all(|e| e.as_column().is_some()) {
            plan
        } else {
            project(plan, exprs, sink_schema)
        };
        self.program.outputs.push(Output {
            target: OutputTarget::Table(index),
            plan,
        });
        Ok(())
    }

    fn find_table(&self, name: &Ident) -> SqlResult<usize> {
        self.program
            .tables
            .iter()
            .position(|t| t.name().eq_ignore_ascii_case(&name.value))
            .ok_or_else(|| SqlError::new(format!("unknown table '{}'", name.value), name.span))
    }

    fn query(&mut self, query: &Query, emit: Emit) -> SqlResult<Plan> {
        if let Some(with) = &query.with {
            return Err(SqlError::at(with, "WITH (common table expressions) is not supported; use CREATE VIEW"));
        }
        if let Some(order_by) = &query.order_by {
            return Err(SqlError::at(order_by, "ORDER BY is not supported on a continuous query"));
        }
        if let Some(limit) = &query.limit_clause {
            return Err(SqlError::at(limit, "LIMIT is not supported on a continuous query"));
        }
        self.set_expr(&query.body, emit)
    }

    fn set_expr(&mut self, body: &SetExpr, emit: Emit) -> SqlResult<Plan> {
        match body {
            SetExpr::Select(select) => self.select(select, emit),
            SetExpr::Query(inner) => self.query(inner, emit),
            SetExpr::SetOperation {
                op: ast::SetOperator::Union,
                set_quantifier: ast::SetQuantifier::All,
                left,
                right,
            } => {
                let left = self.set_expr(left, emit)?;
                let right_plan = self.set_expr(right, emit)?;
                union_all(left, right_plan, right)
            }
            SetExpr::SetOperation {
                op: ast::SetOperator::Union, ..
            } => Err(SqlError::at(
                body,
                "only UNION ALL is supported (a continuous UNION would keep every row to remove duplicates)",
            )),
            other => Err(SqlError::at(
                other,
                "only SELECT and UNION ALL are supported here (no VALUES, INTERSECT or EXCEPT)",
            )),
        }
    }

    fn select(&mut self, select: &ast::Select, emit: Emit) -> SqlResult<Plan> {
        if let Some(having) = select
            .having
            .as_ref()
            .filter(|_| matches!(&select.group_by, GroupByExpr::Expressions(keys, _) if keys.is_empty()) && !has_aggregate_items(select))
        {
            return Err(SqlError::at(having, "HAVING needs GROUP BY or an aggregate"));
        }
        if let Some(qualify) = &select.qualify {
            return Err(SqlError::at(qualify, "QUALIFY is not supported"));
        }
        let (mut plan, scope, session) = match select.from.as_slice() {
            [from] => self.from(from)?,
            [] => {
                return Err(SqlError::new(
                    "a query needs FROM (a table, a view or a window table function)",
                    select.select_token.0.span,
                ));
            }
            [_, second, ..] => return Err(SqlError::at(&second.relation, "comma joins are not supported; use JOIN ... ON")),
        };
        if let Some(condition) = &select.selection {
            if session.is_some() && references_window_columns(condition) {
                return Err(SqlError::at(condition, "a WHERE over SESSION windows cannot use the window columns"));
            }
            let (predicate, data_type) = self.expr(condition, &scope, None)?;
            expect_bool(data_type, condition)?;
            plan = filter(plan, predicate);
        }
        let keys = match &select.group_by {
            GroupByExpr::Expressions(keys, modifiers) if modifiers.is_empty() => keys.clone(),
            other => return Err(SqlError::at(other, "only plain GROUP BY expressions are supported")),
        };
        let distinct = match &select.distinct {
            None | Some(ast::Distinct::All) => false,
            Some(ast::Distinct::Distinct) => true,
            Some(other) => return Err(SqlError::new(format!("unsupported {other}"), select.select_token.0.span)),
        };
        if over::has_over(select) {
            if session.is_some() || !keys.is_empty() || has_aggregate_items(select) || distinct || emit == Emit::Final {
                return Err(SqlError::new(
                    "OVER calls cannot be mixed with GROUP BY, aggregates without OVER, DISTINCT, SESSION windows or EMIT FINAL in one SELECT; use a view",
                    select.select_token.0.span,
                ));
            }
            return self.over_select(select, plan, &scope);
        }
        if let Some(window) = select.named_window.first() {
            return Err(SqlError::new(
                format!("window '{}' is defined but no OVER uses it", window.0.value),
                window.0.span,
            ));
        }
        if !keys.is_empty() || has_aggregate_items(select) || session.is_some() {
            if distinct {
                return Err(SqlError::new("SELECT DISTINCT with GROUP BY is not supported", select.select_token.0.span));
            }
            return self.aggregate(select, plan, &scope, &keys, session, emit);
        }
        if emit == Emit::Final && plan.window.is_none() {
            return Err(SqlError::new("EMIT FINAL applies to window aggregations only", select.select_token.0.span));
        }
        let (exprs, schema) = self.projection(&select.projection, &scope, None)?;
        let rowtime = plan.rowtime.and_then(|t| exprs.iter().position(|e| e.as_column() == Some(t)));
        let window = plan.window.and_then(|w| {
            let start = exprs.iter().position(|e| e.as_column() == Some(w.start))?;
            let end = exprs.iter().position(|e| e.as_column() == Some(w.end))?;
            Some(WindowColumns { start, end })
        });
        let mut plan = project(plan, exprs, schema);
        plan.rowtime = rowtime;
        plan.window = window;
        if distinct {
            let keys = (0..plan.schema.len()).map(Expr::Column).collect();
            let schema = plan.schema.clone();
            return Ok(Plan {
                rowtime: None,
                window: None,
                watermark_tables: plan.watermark_tables.clone(),
                schema,
                node: Node::Aggregate {
                    input: Box::new(plan),
                    keys,
                    aggregates: vec![],
                    window: None,
                    emit,
                },
            });
        }
        Ok(plan)
    }

    /// Binds SELECT items. Without aggregation they are bound over `scope`.
    fn projection(&mut self, items: &[SelectItem], scope: &Scope, mut aggregation: Option<&mut Aggregation>) -> SqlResult<(Vec<Expr>, Schema)> {
        let mut exprs = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        for item in items {
            match item {
                SelectItem::Wildcard(_) => {
                    if aggregation.is_some() {
                        return Err(SqlError::at(item, "SELECT * cannot be used with GROUP BY"));
                    }
                    for (i, column) in scope.columns.iter().enumerate() {
                        exprs.push(Expr::Column(i));
                        fields.push(Field::new(column.name.clone(), column.data_type));
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let qualifier = kind.to_string().trim_end_matches(".*").to_ascii_lowercase();
                    let before = exprs.len();
                    for (i, column) in scope
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.qualifier.as_deref() == Some(qualifier.as_str()))
                    {
                        exprs.push(Expr::Column(i));
                        fields.push(Field::new(column.name.clone(), column.data_type));
                    }
                    if exprs.len() == before || aggregation.is_some() {
                        return Err(SqlError::at(item, format!("'{qualifier}.*' matches no table here")));
                    }
                }
                SelectItem::UnnamedExpr(ast) | SelectItem::ExprWithAlias { expr: ast, .. } => {
                    let (expr, data_type) = self.expr(ast, scope, aggregation.as_deref_mut())?;
                    let name = match item {
                        SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                        _ => default_name(ast, fields.len()),
                    };
                    exprs.push(expr);
                    fields.push(Field::new(name, data_type));
                }
                other => return Err(SqlError::at(other, "unsupported SELECT item")),
            }
        }
        // Flink renames duplicate output names (EXPR$0, x0); we ask for aliases instead.
        for (i, field) in fields.iter().enumerate() {
            if fields[..i].iter().any(|f| f.name.eq_ignore_ascii_case(&field.name)) {
                let span = items.get(i).map_or(Span::empty(), Spanned::span);
                return Err(SqlError::new(
                    format!("two output columns are named '{}'; give one an alias with AS", field.name),
                    span,
                ));
            }
        }
        Ok((exprs, Schema::new(fields)))
    }

    fn aggregate(&mut self, select: &ast::Select, input: Plan, scope: &Scope, keys: &[Ast], session: Option<SessionTvf>, emit: Emit) -> SqlResult<Plan> {
        let mut aggregation = Aggregation {
            input: scope,
            keys: vec![],
            key_types: vec![],
            calls: vec![],
            call_types: vec![],
        };
        for key in keys {
            if contains_aggregate(key) {
                return Err(SqlError::at(key, "GROUP BY cannot contain an aggregate"));
            }
            let (expr, data_type) = self.expr(key, scope, None)?;
            aggregation.keys.push(expr);
            aggregation.key_types.push(data_type);
        }
        let (select_exprs, select_schema) = self.projection(&select.projection, scope, Some(&mut aggregation))?;
        let having = match &select.having {
            Some(ast) => {
                let (predicate, data_type) = self.expr(ast, scope, Some(&mut aggregation))?;
                expect_bool(data_type, ast)?;
                Some(predicate)
            }
            None => None,
        };
        let Aggregation {
            keys: key_exprs,
            key_types,
            calls,
            call_types,
            ..
        } = aggregation;
        let key_names: Vec<String> = key_exprs
            .iter()
            .enumerate()
            .map(|(i, e)| match e.as_column() {
                Some(c) => scope.columns[c].name.clone(),
                None => format!("key${i}"),
            })
            .collect();
        let mut fields: Vec<Field> = key_names.iter().zip(&key_types).map(|(n, t)| Field::new(n.clone(), *t)).collect();
        fields.extend(
            calls
                .iter()
                .zip(&call_types)
                .enumerate()
                .map(|(i, (call, t))| Field::new(format!("{}${i}", call.spec.function.name()), *t)),
        );
        let watermark_tables = input.watermark_tables.clone();
        let span = select.select_token.0.span;

        let aggregate = match session {
            Some(session) => {
                // SESSION windows: GROUP BY must be exactly the partition keys plus
                // window_start, window_end, and optionally window_time, which then
                // stays the rows' time attribute (see `Plan::watermark_lag`).
                let window_start = session.input_width;
                let window_end = session.input_width + 1;
                let window_time = session.input_width + 2;
                let mut partition_positions = Vec::new();
                let mut has_start_end = (false, false);
                for (i, key) in key_exprs.iter().enumerate() {
                    match key.as_column() {
                        Some(c) if c == window_start => has_start_end.0 = true,
                        Some(c) if c == window_end => has_start_end.1 = true,
                        Some(c) if c == window_time => {}
                        Some(c) if session.partition.contains(&c) => partition_positions.push((i, c)),
                        _ => {
                            return Err(SqlError::at(
                                &keys[i],
                                "a SESSION window groups only by its PARTITION BY columns, window_start, window_end and window_time",
                            ));
                        }
                    }
                }
                if has_start_end != (true, true) || partition_positions.len() != session.partition.len() {
                    return Err(SqlError::new(
                        "a SESSION window aggregation must GROUP BY window_start, window_end and every PARTITION BY column",
                        span,
                    ));
                }
                // The operator's output is partition keys, window_start, window_end, window_time, aggregates;
                // map each GROUP BY key position onto it.
                let mut key_to_output = vec![0; key_exprs.len()];
                for (i, key) in key_exprs.iter().enumerate() {
                    let c = key.as_column().expect("checked");
                    key_to_output[i] = if c == window_start {
                        session.partition.len()
                    } else if c == window_end {
                        session.partition.len() + 1
                    } else if c == window_time {
                        session.partition.len() + 2
                    } else {
                        session.partition.iter().position(|p| *p == c).expect("checked")
                    };
                }
                let mut session_fields: Vec<Field> = session
                    .partition
                    .iter()
                    .map(|c| Field::new(scope.columns[*c].name.clone(), scope.columns[*c].data_type))
                    .collect();
                session_fields.extend(["window_start", "window_end", "window_time"].map(|n| Field::new(n, DataType::Timestamp)));
                session_fields.extend(fields[key_exprs.len()..].iter().cloned());
                let session_plan = Plan {
                    schema: Schema::new(session_fields),
                    rowtime: Some(session.partition.len() + 2),
                    window: Some(WindowColumns {
                        start: session.partition.len(),
                        end: session.partition.len() + 1,
                    }),
                    watermark_tables,
                    node: Node::SessionAggregate {
                        input: Box::new(input),
                        partition: session.partition.clone(),
                        time_column: session.time_column,
                        gap: session.gap,
                        aggregates: calls,
                        emit,
                    },
                };
                // Re-express the aggregate-output layout (keys, then calls) over the session output.
                let remap: Vec<Expr> = key_to_output
                    .iter()
                    .map(|&o| Expr::Column(o))
                    .chain((0..call_types.len()).map(|i| Expr::Column(session.partition.len() + 3 + i)))
                    .collect();
                project(session_plan, remap, Schema::new(fields))
            }
            None => {
                let window = input.window.and_then(|w| {
                    let start = key_exprs.iter().position(|e| e.as_column() == Some(w.start))?;
                    let end = key_exprs.iter().position(|e| e.as_column() == Some(w.end))?;
                    Some(WindowColumns { start, end })
                });
                if emit == Emit::Final && window.is_none() {
                    return Err(SqlError::new(
                        "EMIT FINAL needs GROUP BY window_start, window_end of a window table function",
                        span,
                    ));
                }
                // Grouped by `window_time` too, a window aggregation's rows keep it
                // as their time attribute, as in Flink: a window's rows all carry
                // its last instant, which the watermark passes when the window
                // completes, and a window takes changes only until the watermark
                // is the allowed lateness past that instant. The tables' watermark
                // therefore bounds the aggregated rows as it bounds their input,
                // and a second window, OVER, MATCH_RECOGNIZE or FORECAST reads them.
                let rowtime = window
                    .and(input.rowtime)
                    .and_then(|time| key_exprs.iter().position(|e| e.as_column() == Some(time)));
                Plan {
                    schema: Schema::new(fields),
                    rowtime,
                    window,
                    watermark_tables,
                    node: Node::Aggregate {
                        input: Box::new(input),
                        keys: key_exprs,
                        aggregates: calls,
                        window,
                        emit,
                    },
                }
            }
        };
        let aggregate_window = aggregate.window;
        let filtered = match having {
            Some(predicate) => filter(aggregate, predicate),
            None => aggregate,
        };
        let window = aggregate_window.and_then(|w| {
            let start = select_exprs.iter().position(|e| e.as_column() == Some(w.start))?;
            let end = select_exprs.iter().position(|e| e.as_column() == Some(w.end))?;
            Some(WindowColumns { start, end })
        });
        let mut plan = project(filtered, select_exprs, select_schema);
        plan.window = window;
        Ok(plan)
    }

    fn from(&mut self, from: &ast::TableWithJoins) -> SqlResult<(Plan, Scope, Option<SessionTvf>)> {
        if let Some(version) = as_of(&from.relation) {
            return Err(SqlError::at(
                version,
                "FOR SYSTEM_TIME AS OF belongs to the versioned table on the right of a JOIN",
            ));
        }
        let (mut plan, mut scope, session) = self.table_factor(&from.relation)?;
        for join in &from.joins {
            if session.is_some() {
                return Err(SqlError::at(&join.relation, "joins with a SESSION window table function are not supported"));
            }
            let constraint = match &join.join_operator {
                ast::JoinOperator::Join(c) | ast::JoinOperator::Inner(c) => c,
                _ => return Err(SqlError::at(&join.relation, "only inner equi-joins (JOIN ... ON a = b) are supported")),
            };
            let ast::JoinConstraint::On(condition) = constraint else {
                return Err(SqlError::at(&join.relation, "a join needs ON with equality conditions"));
            };
            let (right, right_scope, right_session) = self.table_factor(&join.relation)?;
            if right_session.is_some() {
                return Err(SqlError::at(&join.relation, "joins with a SESSION window table function are not supported"));
            }
            let temporal = as_of(&join.relation)
                .map(|time| self.temporal_times(time, &scope, &right, &join.relation))
                .transpose()?;
            let left_width = scope.columns.len();
            let mut joined = scope.clone();
            joined.columns.extend(right_scope.columns.iter().cloned());
            let mut left_keys = Vec::new();
            let mut right_keys = Vec::new();
            let mut residual = Vec::new();
            for conjunct in conjuncts(condition) {
                let (expr, data_type) = self.expr(conjunct, &joined, None)?;
                expect_bool(data_type, conjunct)?;
                match &expr {
                    Expr::Binary { op: BinaryOp::Eq, left, right } => match (left.as_column(), right.as_column()) {
                        (Some(l), Some(r)) if l < left_width && r >= left_width => {
                            left_keys.push(l);
                            right_keys.push(r - left_width);
                        }
                        (Some(l), Some(r)) if r < left_width && l >= left_width => {
                            left_keys.push(r);
                            right_keys.push(l - left_width);
                        }
                        _ => residual.push(expr),
                    },
                    _ => residual.push(expr),
                }
            }
            if left_keys.is_empty() {
                return Err(SqlError::at(condition, "a join needs at least one equality between a left and a right column"));
            }
            for (l, r) in left_keys.iter().zip(&right_keys) {
                let (lt, rt) = (joined.columns[*l].data_type, right_scope.columns[*r].data_type);
                if lt.unify(rt).is_none() {
                    return Err(SqlError::at(
                        condition,
                        format!(
                            "join keys '{}' ({lt}) and '{}' ({rt}) have different types",
                            joined.columns[*l].name, right_scope.columns[*r].name
                        ),
                    ));
                }
            }
            let mut fields = plan.schema.fields.clone();
            fields.extend(right.schema.fields.iter().cloned());
            let mut watermark_tables = plan.watermark_tables.clone();
            watermark_tables.extend(right.watermark_tables.iter().copied());
            let (rowtime, node) = match temporal {
                // A temporal join keeps the probe's time: its rows are the probe's rows.
                Some((probe_time, version_time)) => (
                    plan.rowtime,
                    Node::TemporalJoin {
                        left: Box::new(plan),
                        right: Box::new(right),
                        left_keys,
                        right_keys,
                        probe_time,
                        version_time,
                    },
                ),
                None => (
                    plan.rowtime.or(right.rowtime.map(|t| t + left_width)),
                    Node::Join {
                        left: Box::new(plan),
                        right: Box::new(right),
                        left_keys,
                        right_keys,
                    },
                ),
            };
            plan = Plan {
                schema: Schema::new(fields),
                rowtime,
                window: None,
                watermark_tables,
                node,
            };
            for predicate in residual {
                plan = filter(plan, predicate);
            }
            scope = joined;
        }
        Ok((plan, scope, session))
    }

    /// The probe's time column (`FOR SYSTEM_TIME AS OF left.ts`) and the
    /// versioned table's time column of a temporal join.
    fn temporal_times(&mut self, time: &Ast, left_scope: &Scope, right: &Plan, relation: &TableFactor) -> SqlResult<(usize, usize)> {
        let (expr, data_type) = self.expr(time, left_scope, None)?;
        let probe_time = match expr.as_column() {
            Some(column) if data_type == DataType::Timestamp => column,
            _ => return Err(SqlError::at(time, "FOR SYSTEM_TIME AS OF takes a TIMESTAMP column of the left side, e.g. t.ts")),
        };
        match right.rowtime {
            Some(version_time) if !right.watermark_tables.is_empty() => Ok((probe_time, version_time)),
            _ => Err(SqlError::at(
                relation,
                "a versioned table needs an event-time attribute: declare WATERMARK FOR its time column",
            )),
        }
    }

    fn table_factor(&mut self, factor: &TableFactor) -> SqlResult<(Plan, Scope, Option<SessionTvf>)> {
        match factor {
            TableFactor::Table { version: Some(version), .. } if !matches!(version, ast::TableVersion::ForSystemTimeAsOf(_)) => Err(SqlError::at(
                factor,
                format!("unsupported table version '{version}': use FOR SYSTEM_TIME AS OF in a JOIN"),
            )),
            TableFactor::Table { name, alias, args: None, .. } => {
                let ident = single_ident(name)?;
                let qualifier = alias.as_ref().map_or(ident.value.as_str(), |a| a.name.value.as_str()).to_owned();
                let plan = self.relation(&ident)?;
                let scope = Scope::of(&plan.schema, Some(&qualifier));
                Ok((plan, scope, None))
            }
            TableFactor::Derived {
                subquery,
                alias,
                lateral: false,
                ..
            } => {
                let plan = self.query(subquery, Emit::Changes)?;
                let qualifier = alias.as_ref().map(|a| a.name.value.clone());
                let scope = Scope::of(&plan.schema, qualifier.as_deref());
                Ok((plan, scope, None))
            }
            TableFactor::TableFunction { expr, alias } => {
                let (plan, session) = if forecast::is_forecast(expr) {
                    (self.forecast(expr)?, None)
                } else {
                    self.window_tvf(expr)?
                };
                let qualifier = alias.as_ref().map(|a| a.name.value.clone());
                let scope = Scope::of(&plan.schema, qualifier.as_deref());
                Ok((plan, scope, session))
            }
            TableFactor::MatchRecognize { alias, .. } => {
                let plan = self.match_recognize(factor)?;
                let scope = Scope::of(&plan.schema, alias.as_ref().map(|a| a.name.value.as_str()));
                Ok((plan, scope, None))
            }
            other => Err(SqlError::at(
                other,
                "unsupported FROM item: use a table, a view, a subquery, TABLE(TUMBLE|HOP|CUMULATE|SESSION|FORECAST(...)) or MATCH_RECOGNIZE",
            )),
        }
    }

    /// A table or view by name, marking tables as sources.
    fn relation(&mut self, name: &Ident) -> SqlResult<Plan> {
        if let Some(view) = self.program.views.iter().position(|v| v.name.eq_ignore_ascii_case(&name.value)) {
            let plan = &self.program.views[view].plan;
            return Ok(Plan {
                schema: plan.schema.clone(),
                rowtime: plan.rowtime,
                window: plan.window,
                watermark_tables: plan.watermark_tables.clone(),
                node: Node::ViewScan { view },
            });
        }
        let index = self.find_table(name)?;
        let table = &mut self.program.tables[index];
        if table.role == TableRole::Sink {
            return Err(SqlError::new(
                format!("'{}' is written by INSERT INTO, so it cannot also be read", name.value),
                name.span,
            ));
        }
        table.role = TableRole::Source;
        let watermark_tables = if table.watermark.is_some() {
            BTreeSet::from([index])
        } else {
            BTreeSet::new()
        };
        Ok(Plan {
            schema: table.connector.schema.clone(),
            rowtime: table.watermark.map(|w| w.column),
            window: None,
            watermark_tables,
            node: Node::TableScan { table: index },
        })
    }

    /// `TUMBLE`, `HOP`, `CUMULATE` (planned here) and `SESSION` (planned by the aggregation above it).
    fn window_tvf(&mut self, expr: &Ast) -> SqlResult<(Plan, Option<SessionTvf>)> {
        let Ast::Function(function) = expr else {
            return Err(SqlError::at(expr, "expected a window table function: TUMBLE, HOP, CUMULATE or SESSION"));
        };
        let name = function.name.to_string().to_ascii_uppercase();
        let args = function_args(function)?;
        let expected = match name.as_str() {
            "TUMBLE" => "TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])",
            "HOP" => "HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])",
            "CUMULATE" => "CUMULATE(TABLE t, DESCRIPTOR(ts), step, max_size [, offset])",
            "SESSION" => "SESSION(TABLE t [PARTITION BY key], DESCRIPTOR(ts), gap)",
            _ => {
                return Err(SqlError::at(
                    expr,
                    format!("unknown window table function {name} (use TUMBLE, HOP, CUMULATE or SESSION)"),
                ));
            }
        };
        let Some(first) = args.first() else {
            return Err(SqlError::at(expr, format!("wrong number of arguments: {expected}")));
        };
        let (table_ref, partition_idents) = table_argument(first, expected)?;
        let input = self.relation(&table_ref)?;
        let scope = Scope::of(&input.schema, Some(&table_ref.value));
        let Some(second) = args.get(1) else {
            return Err(SqlError::at(expr, format!("wrong number of arguments: {expected}")));
        };
        let time_column = descriptor(&scope, second, expected)?;
        if input.rowtime != Some(time_column) {
            let column = &input.schema.fields[time_column];
            return Err(SqlError::at(args[1], format!("'{}' is not a time attribute: {TIME_ATTRIBUTES}", column.name)));
        }
        let durations = args[2..].iter().map(|a| interval_millis(a)).collect::<SqlResult<Vec<_>>>()?;
        if !partition_idents.is_empty() && name != "SESSION" {
            return Err(SqlError::at(expr, format!("PARTITION BY is only for SESSION windows: {expected}")));
        }
        let width = input.schema.len();
        let window = match (name.as_str(), durations.as_slice()) {
            ("TUMBLE", [size]) => WindowSpec::Tumble { size: *size, offset: 0 },
            ("TUMBLE", [size, offset]) => WindowSpec::Tumble { size: *size, offset: *offset },
            ("HOP", [slide, size]) => WindowSpec::Hop {
                slide: *slide,
                size: *size,
                offset: 0,
            },
            ("HOP", [slide, size, offset]) => WindowSpec::Hop {
                slide: *slide,
                size: *size,
                offset: *offset,
            },
            ("CUMULATE", [step, max]) => WindowSpec::Cumulate {
                step: *step,
                max_size: *max,
                offset: 0,
            },
            ("CUMULATE", [step, max, offset]) => WindowSpec::Cumulate {
                step: *step,
                max_size: *max,
                offset: *offset,
            },
            ("SESSION", [gap]) => {
                if *gap <= 0 {
                    return Err(SqlError::at(args[2], "the session gap must be positive"));
                }
                let partition = partition_idents.iter().map(|p| scope.resolve(None, p)).collect::<SqlResult<Vec<_>>>()?;
                let mut fields = input.schema.fields.clone();
                fields.extend(["window_start", "window_end", "window_time"].map(|n| Field::new(n, DataType::Timestamp)));
                let plan = Plan {
                    schema: Schema::new(fields),
                    rowtime: input.rowtime,
                    window: None,
                    watermark_tables: input.watermark_tables.clone(),
                    node: input.node,
                };
                return Ok((
                    plan,
                    Some(SessionTvf {
                        partition,
                        time_column,
                        gap: *gap,
                        input_width: width,
                    }),
                ));
            }
            _ => return Err(SqlError::at(expr, format!("wrong number of arguments: {expected}"))),
        };
        window.validate().map_err(|message| SqlError::at(expr, message))?;
        let mut fields = input.schema.fields.clone();
        fields.extend(["window_start", "window_end", "window_time"].map(|n| Field::new(n, DataType::Timestamp)));
        let plan = Plan {
            schema: Schema::new(fields),
            rowtime: Some(width + 2),
            window: Some(WindowColumns { start: width, end: width + 1 }),
            watermark_tables: input.watermark_tables.clone(),
            node: Node::WindowAssign {
                input: Box::new(input),
                window,
                time_column,
            },
        };
        Ok((plan, None))
    }

    /// Binds and types a scalar expression. With `aggregation`, the expression
    /// is over the aggregate's output: group keys and aggregate calls.
    fn expr(&mut self, ast: &Ast, scope: &Scope, mut aggregation: Option<&mut Aggregation>) -> SqlResult<(Expr, DataType)> {
        if let Some(agg) = aggregation.as_deref_mut()
            && !contains_aggregate(ast)
        {
            if let Ok((expr, _)) = self.expr(ast, agg.input, None)
                && let Some(position) = agg.keys.iter().position(|k| *k == expr)
            {
                return Ok((Expr::Column(position), agg.key_types[position]));
            }
            if matches!(ast, Ast::Identifier(_) | Ast::CompoundIdentifier(_)) {
                return Err(SqlError::at(ast, format!("'{ast}' must appear in GROUP BY or inside an aggregate")));
            }
        }
        let recurse = |binder: &mut Binder, ast: &Ast, aggregation: &mut Option<&mut Aggregation>| binder.expr(ast, scope, aggregation.as_deref_mut());
        Ok(match ast {
            Ast::Identifier(ident) => {
                let index = scope.resolve(None, ident)?;
                (Expr::Column(index), scope.columns[index].data_type)
            }
            Ast::CompoundIdentifier(parts) => match parts.as_slice() {
                [qualifier, name] => {
                    let index = scope.resolve(Some(qualifier), name)?;
                    (Expr::Column(index), scope.columns[index].data_type)
                }
                _ => return Err(SqlError::at(ast, "use table.column (no catalogs or nested fields)")),
            },
            Ast::Value(value) => literal(&value.value, value.span)?,
            Ast::Nested(inner) => recurse(self, inner, &mut aggregation)?,
            Ast::Interval(_) => (Expr::Literal(Datum::Interval(interval_millis(ast)?)), DataType::Interval),
            Ast::TypedString(typed) => {
                let text = match &typed.value.value {
                    Value::SingleQuotedString(text) => text.clone(),
                    _ => return Err(SqlError::at(ast, "expected a quoted literal")),
                };
                match sql_type(&typed.data_type) {
                    Some(DataType::Timestamp) => {
                        let millis = parse_timestamp(&text).ok_or_else(|| SqlError::at(ast, format!("'{text}' is not a timestamp")))?;
                        (Expr::Literal(Datum::Timestamp(millis)), DataType::Timestamp)
                    }
                    _ => return Err(SqlError::at(ast, format!("unsupported typed literal {}", typed.data_type))),
                }
            }
            Ast::UnaryOp { op, expr } => {
                let (inner, data_type) = recurse(self, expr, &mut aggregation)?;
                match op {
                    UnaryOperator::Not => {
                        expect_bool(data_type, expr)?;
                        (Expr::Not(Box::new(inner)), DataType::Bool)
                    }
                    UnaryOperator::Minus if data_type.is_numeric() || data_type == DataType::Interval => (Expr::Negate(Box::new(inner)), data_type),
                    UnaryOperator::Plus if data_type.is_numeric() => (inner, data_type),
                    _ => return Err(SqlError::at(ast, format!("operator {op} does not apply to {data_type}"))),
                }
            }
            Ast::BinaryOp { left, op, right } => {
                let (l, lt) = recurse(self, left, &mut aggregation)?;
                let (r, rt) = recurse(self, right, &mut aggregation)?;
                binary(op, l, lt, r, rt, ast)?
            }
            Ast::IsNull(inner) | Ast::IsNotNull(inner) => {
                let (inner_expr, _) = recurse(self, inner, &mut aggregation)?;
                (
                    Expr::IsNull {
                        expr: Box::new(inner_expr),
                        negated: matches!(ast, Ast::IsNotNull(_)),
                    },
                    DataType::Bool,
                )
            }
            Ast::Between { expr, negated, low, high } => {
                let (e, et) = recurse(self, expr, &mut aggregation)?;
                let (lo, lot) = recurse(self, low, &mut aggregation)?;
                let (hi, hit) = recurse(self, high, &mut aggregation)?;
                let (lower, _) = binary(&BinaryOperator::GtEq, e.clone(), et, lo, lot, ast)?;
                let (upper, _) = binary(&BinaryOperator::LtEq, e, et, hi, hit, ast)?;
                let both = Expr::Binary {
                    op: BinaryOp::And,
                    left: Box::new(lower),
                    right: Box::new(upper),
                };
                (if *negated { Expr::Not(Box::new(both)) } else { both }, DataType::Bool)
            }
            Ast::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                global: false,
            } => {
                let (e, et) = recurse(self, expr, &mut aggregation)?;
                let mut items = Vec::new();
                for item in list {
                    let (candidate, ct) = recurse(self, item, &mut aggregation)?;
                    if et.unify(ct).is_none() {
                        return Err(SqlError::at(item, format!("IN list item is {ct} but the value is {et}")));
                    }
                    items.push(candidate);
                }
                (
                    Expr::InList {
                        expr: Box::new(e),
                        list: items,
                        negated: *negated,
                    },
                    DataType::Bool,
                )
            }
            Ast::Like {
                negated,
                expr,
                pattern,
                escape_char: None,
                any: false,
            } => {
                let (e, et) = recurse(self, expr, &mut aggregation)?;
                let (p, pt) = recurse(self, pattern, &mut aggregation)?;
                if !et.coerces_to(DataType::String) || !pt.coerces_to(DataType::String) {
                    return Err(SqlError::at(ast, "LIKE compares strings"));
                }
                (
                    Expr::Like {
                        expr: Box::new(e),
                        pattern: Box::new(p),
                        negated: *negated,
                    },
                    DataType::Bool,
                )
            }
            Ast::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = match operand {
                    Some(operand) => Some(recurse(self, operand, &mut aggregation)?),
                    None => None,
                };
                let mut branches = Vec::new();
                let mut result_type = DataType::Null;
                for when in conditions {
                    let (condition, ct) = recurse(self, &when.condition, &mut aggregation)?;
                    let condition = match &operand {
                        Some((o, ot)) => binary(&BinaryOperator::Eq, o.clone(), *ot, condition, ct, &when.condition)?.0,
                        None => {
                            expect_bool(ct, &when.condition)?;
                            condition
                        }
                    };
                    let (value, vt) = recurse(self, &when.result, &mut aggregation)?;
                    result_type = result_type
                        .unify(vt)
                        .ok_or_else(|| SqlError::at(&when.result, format!("CASE branches have different types ({result_type} and {vt})")))?;
                    branches.push((condition, value));
                }
                let otherwise = match else_result {
                    Some(e) => {
                        let (value, vt) = recurse(self, e, &mut aggregation)?;
                        result_type = result_type
                            .unify(vt)
                            .ok_or_else(|| SqlError::at(e.as_ref(), format!("CASE branches have different types ({result_type} and {vt})")))?;
                        value
                    }
                    None => Expr::Literal(Datum::Null),
                };
                let branches = branches.into_iter().map(|(c, v)| (c, widen(v, result_type))).collect();
                (
                    Expr::Case {
                        branches,
                        otherwise: Box::new(widen(otherwise, result_type)),
                    },
                    result_type,
                )
            }
            Ast::Cast { kind, expr, data_type, .. } => {
                if !matches!(kind, ast::CastKind::Cast) {
                    return Err(SqlError::at(ast, "only CAST(x AS type) is supported"));
                }
                let (inner, _) = recurse(self, expr, &mut aggregation)?;
                let to = sql_type(data_type).ok_or_else(|| SqlError::at(ast, format!("unsupported type {data_type}")))?;
                (Expr::Cast { expr: Box::new(inner), to }, to)
            }
            Ast::Extract { field, expr, .. } => {
                let function = match field.to_string().to_ascii_uppercase().as_str() {
                    "YEAR" => Function::Year,
                    "MONTH" => Function::Month,
                    "DAY" => Function::DayOfMonth,
                    "DOW" | "DAYOFWEEK" => Function::DayOfWeek,
                    "DOY" | "DAYOFYEAR" => Function::DayOfYear,
                    "HOUR" => Function::Hour,
                    "MINUTE" => Function::Minute,
                    "SECOND" => Function::Second,
                    other => return Err(SqlError::at(ast, format!("EXTRACT of {other} is not supported"))),
                };
                let (inner, it) = recurse(self, expr, &mut aggregation)?;
                let data_type = function.return_type(&[it]).map_err(|m| SqlError::at(ast, m))?;
                (Expr::Call { function, args: vec![inner] }, data_type)
            }
            Ast::Floor { expr, field } | Ast::Ceil { expr, field } => {
                let is_floor = matches!(ast, Ast::Floor { .. });
                let (inner, it) = recurse(self, expr, &mut aggregation)?;
                match field {
                    CeilFloorKind::DateTimeField(unit) if !matches!(unit, ast::DateTimeField::NoDateTime) => {
                        let millis = unit_millis(&unit.to_string()).ok_or_else(|| SqlError::at(ast, format!("cannot round a timestamp to {unit}")))?;
                        let function = if is_floor { Function::TimestampFloor } else { Function::TimestampCeil };
                        let data_type = function.return_type(&[it, DataType::Int]).map_err(|m| SqlError::at(ast, m))?;
                        (
                            Expr::Call {
                                function,
                                args: vec![inner, Expr::Literal(Datum::Int(millis))],
                            },
                            data_type,
                        )
                    }
                    CeilFloorKind::DateTimeField(_) => {
                        let function = if is_floor { Function::Floor } else { Function::Ceil };
                        let data_type = function.return_type(&[it]).map_err(|m| SqlError::at(ast, m))?;
                        (Expr::Call { function, args: vec![inner] }, data_type)
                    }
                    CeilFloorKind::Scale(_) => return Err(SqlError::at(ast, "FLOOR/CEIL with a scale is not supported; use ROUND")),
                }
            }
            Ast::Function(function) => self.function(function, ast, scope, aggregation)?,
            other => return Err(SqlError::at(other, format!("unsupported expression: {other}"))),
        })
    }

    fn function(&mut self, function: &ast::Function, ast: &Ast, scope: &Scope, mut aggregation: Option<&mut Aggregation>) -> SqlResult<(Expr, DataType)> {
        if function.over.is_some() {
            return Err(SqlError::at(
                ast,
                "OVER calls are allowed in SELECT items only (filter their results through a view)",
            ));
        }
        if function.filter.is_some() {
            return Err(SqlError::at(ast, "FILTER on aggregates is not supported; use CASE inside the aggregate"));
        }
        let name = function.name.to_string();
        if let Some(aggregate) = AggregateFunction::from_name(&name) {
            let Some(agg) = aggregation else {
                return Err(SqlError::at(
                    ast,
                    format!("aggregate {name} is not allowed here (only in SELECT or HAVING of an aggregation)"),
                ));
            };
            let FunctionArguments::List(list) = &function.args else {
                return Err(SqlError::at(ast, format!("{name} needs an argument")));
            };
            let distinct = matches!(list.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct));
            let (arg, input_type, aggregate) = match list.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if aggregate == AggregateFunction::Count && !distinct => {
                    (None, DataType::Int, AggregateFunction::CountStar)
                }
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] => {
                    if contains_aggregate(arg) {
                        return Err(SqlError::at(arg, "aggregates cannot be nested"));
                    }
                    let (expr, data_type) = self.expr(arg, agg.input, None)?;
                    (Some(expr), data_type, aggregate)
                }
                _ => return Err(SqlError::at(ast, format!("{name} takes one argument"))),
            };
            let spec = AggregateSpec {
                function: aggregate,
                input_type,
                distinct,
            };
            let result_type = aggregate.result_type(input_type).map_err(|m| SqlError::at(ast, m))?;
            let call = AggregateCall { spec, arg };
            let position = match agg.calls.iter().position(|c| *c == call) {
                Some(position) => position,
                None => {
                    agg.calls.push(call);
                    agg.call_types.push(result_type);
                    agg.calls.len() - 1
                }
            };
            return Ok((Expr::Column(agg.keys.len() + position), result_type));
        }
        let scalar = Function::from_name(&name).ok_or_else(|| SqlError::at(&function.name, format!("unknown function {name}")))?;
        let mut args = Vec::new();
        let mut types = Vec::new();
        for arg in function_args(function)? {
            let (expr, data_type) = self.expr(arg, scope, aggregation.as_deref_mut())?;
            args.push(expr);
            types.push(data_type);
        }
        let data_type = scalar.return_type(&types).map_err(|m| SqlError::at(ast, m))?;
        let args = if matches!(scalar, Function::Coalesce | Function::Greatest | Function::Least | Function::If) {
            args.into_iter().map(|a| widen(a, data_type)).collect()
        } else {
            args
        };
        Ok((Expr::Call { function: scalar, args }, data_type))
    }
}

/// What a SESSION table function in FROM leaves for the aggregation to plan.
struct SessionTvf {
    partition: Vec<usize>,
    time_column: usize,
    gap: Millis,
    input_width: usize,
}

/// A filter. Below a TUMBLE, HOP or CUMULATE it goes under the window when
/// it reads no window column, so rows are dropped before they are copied per
/// window (and the window stays next to its aggregation, where it is fused).
fn filter(input: Plan, predicate: Expr) -> Plan {
    if let Node::WindowAssign {
        input: inner,
        window,
        time_column,
    } = input.node
    {
        if predicate.max_column().is_none_or(|c| c < inner.schema.len()) {
            let node = Node::WindowAssign {
                input: Box::new(filter(*inner, predicate)),
                window,
                time_column,
            };
            return Plan { node, ..input };
        }
        let node = Node::WindowAssign {
            input: inner,
            window,
            time_column,
        };
        return filter_node(Plan { node, ..input }, predicate);
    }
    filter_node(input, predicate)
}

fn filter_node(input: Plan, predicate: Expr) -> Plan {
    Plan {
        schema: input.schema.clone(),
        rowtime: input.rowtime,
        window: input.window,
        watermark_tables: input.watermark_tables.clone(),
        node: Node::Filter {
            input: Box::new(input),
            predicate,
        },
    }
}

/// A projection; one that keeps every input column in place only renames,
/// so it adds no operator.
fn project(input: Plan, exprs: Vec<Expr>, schema: Schema) -> Plan {
    let is_identity = exprs.len() == input.schema.len() && exprs.iter().enumerate().all(|(i, e)| e.as_column() == Some(i));
    if is_identity {
        return Plan { schema, window: None, ..input };
    }
    let rowtime = input.rowtime.and_then(|t| exprs.iter().position(|e| e.as_column() == Some(t)));
    Plan {
        schema,
        rowtime,
        window: None,
        watermark_tables: input.watermark_tables.clone(),
        node: Node::Project { input: Box::new(input), exprs },
    }
}

/// Casts an integer expression to DOUBLE where the common type is DOUBLE.
fn widen(expr: Expr, to: DataType) -> Expr {
    match (&expr, to) {
        (Expr::Literal(Datum::Int(v)), DataType::Float) => Expr::Literal(Datum::float(*v as f64)),
        (_, DataType::Float) => Expr::Cast { expr: Box::new(expr), to },
        _ => expr,
    }
}

fn expect_bool(data_type: DataType, ast: &Ast) -> SqlResult<()> {
    if data_type.coerces_to(DataType::Bool) {
        Ok(())
    } else {
        Err(SqlError::at(ast, format!("expected a BOOLEAN condition, found {data_type}")))
    }
}

fn binary(op: &BinaryOperator, left: Expr, lt: DataType, right: Expr, rt: DataType, ast: &Ast) -> SqlResult<(Expr, DataType)> {
    let (op, result) = binary_type(op, lt, rt, ast)?;
    Ok((
        Expr::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        },
        result,
    ))
}

/// The operator of a SQL binary expression and its result type, or why the
/// operand types do not fit.
fn binary_type(op: &BinaryOperator, lt: DataType, rt: DataType, ast: &Ast) -> SqlResult<(BinaryOp, DataType)> {
    use DataType::*;
    let op = match op {
        BinaryOperator::Plus => BinaryOp::Add,
        BinaryOperator::Minus => BinaryOp::Subtract,
        BinaryOperator::Multiply => BinaryOp::Multiply,
        BinaryOperator::Divide => BinaryOp::Divide,
        BinaryOperator::Modulo => BinaryOp::Modulo,
        BinaryOperator::Eq => BinaryOp::Eq,
        BinaryOperator::NotEq => BinaryOp::NotEq,
        BinaryOperator::Lt => BinaryOp::Lt,
        BinaryOperator::LtEq => BinaryOp::LtEq,
        BinaryOperator::Gt => BinaryOp::Gt,
        BinaryOperator::GtEq => BinaryOp::GtEq,
        BinaryOperator::And => BinaryOp::And,
        BinaryOperator::Or => BinaryOp::Or,
        BinaryOperator::StringConcat => BinaryOp::Concat,
        other => return Err(SqlError::at(ast, format!("operator {other} is not supported"))),
    };
    let mismatch = || SqlError::at(ast, format!("operator {} does not apply to {lt} and {rt}", op.symbol()));
    let result = match op {
        BinaryOp::And | BinaryOp::Or => {
            if !lt.coerces_to(Bool) || !rt.coerces_to(Bool) {
                return Err(mismatch());
            }
            Bool
        }
        _ if op.is_comparison() => {
            if lt.unify(rt).is_none() {
                return Err(mismatch());
            }
            Bool
        }
        BinaryOp::Concat => {
            if !lt.coerces_to(String) || !rt.coerces_to(String) {
                return Err(mismatch());
            }
            String
        }
        BinaryOp::Add | BinaryOp::Subtract => match (lt, rt) {
            (Timestamp, Interval) | (Interval, Timestamp) if op == BinaryOp::Add || lt == Timestamp => Timestamp,
            (Timestamp, Timestamp) if op == BinaryOp::Subtract => Interval,
            (Interval, Interval) => Interval,
            _ if lt.is_numeric() && rt.is_numeric() => lt.unify(rt).ok_or_else(mismatch)?,
            _ => return Err(mismatch()),
        },
        _ => {
            if !lt.is_numeric() || !rt.is_numeric() {
                return Err(mismatch());
            }
            lt.unify(rt).ok_or_else(mismatch)?
        }
    };
    Ok((op, result))
}

fn literal(value: &Value, span: Span) -> SqlResult<(Expr, DataType)> {
    Ok(match value {
        Value::Number(text, _) => {
            if let Ok(v) = text.parse::<i64>() {
                (Expr::Literal(Datum::Int(v)), DataType::Int)
            } else {
                let v: f64 = text.parse().map_err(|_| SqlError::new(format!("'{text}' is not a number"), span))?;
                (Expr::Literal(Datum::float(v)), DataType::Float)
            }
        }
        Value::SingleQuotedString(text) | Value::DoubleQuotedString(text) => (Expr::Literal(Datum::string(text)), DataType::String),
        Value::Boolean(v) => (Expr::Literal(Datum::Bool(*v)), DataType::Bool),
        Value::Null => (Expr::Literal(Datum::Null), DataType::Null),
        other => return Err(SqlError::new(format!("unsupported literal {other}"), span)),
    })
}

/// The value of `INTERVAL 'n' UNIT` in milliseconds.
fn interval_millis(ast: &Ast) -> SqlResult<Millis> {
    let Ast::Interval(interval) = ast else {
        return Err(SqlError::at(ast, "expected an interval like INTERVAL '5' MINUTES"));
    };
    if interval.last_field.is_some() {
        return Err(SqlError::at(ast, "only single-unit intervals like INTERVAL '90' SECOND are supported"));
    }
    let text = match interval.value.as_ref() {
        Ast::Value(v) => match &v.value {
            Value::SingleQuotedString(text) | Value::Number(text, _) => text.clone(),
            _ => return Err(SqlError::at(ast, "expected a quoted number in the interval")),
        },
        _ => return Err(SqlError::at(ast, "expected a quoted number in the interval")),
    };
    let unit = interval.leading_field.as_ref().map_or("SECOND".to_owned(), ToString::to_string);
    let millis =
        unit_millis(&unit).ok_or_else(|| SqlError::at(ast, format!("unsupported interval unit {unit} (use MILLISECOND, SECOND, MINUTE, HOUR or DAY)")))?;
    let amount: f64 = text.trim().parse().map_err(|_| SqlError::at(ast, format!("'{text}' is not a number")))?;
    Ok((amount * millis as f64).round() as Millis)
}

/// `ts - INTERVAL 'n' UNIT` or `ts`: the bounded out-of-orderness.
fn watermark_delay(expression: &Ast, column: &Ident) -> SqlResult<Millis> {
    let is_column = |e: &Ast| matches!(e, Ast::Identifier(i) if i.value.eq_ignore_ascii_case(&column.value));
    match expression {
        e if is_column(e) => Ok(0),
        Ast::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_column(left) => interval_millis(right),
        other => Err(SqlError::at(
            other,
            format!("the watermark must be `{0}` or `{0} - INTERVAL 'n' UNIT`", column.value),
        )),
    }
}

/// Replaces `${NAME}` in an option value with the environment variable
/// `NAME`, so paths and secrets need not be written into query files. `$$`
/// is a literal `$`. The substituted value never appears in plans or errors.
pub fn substitute_env(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail.find('}').ok_or_else(|| "an unclosed ${ (write $$ for a literal $)".to_owned())?;
            let name = &tail[..end];
            let resolved = std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
            out.push_str(&resolved);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The SQL types we support, mapped onto ours.
fn sql_type(data_type: &SqlType) -> Option<DataType> {
    Some(match data_type {
        SqlType::Boolean | SqlType::Bool => DataType::Bool,
        SqlType::TinyInt(_) | SqlType::SmallInt(_) | SqlType::Int(_) | SqlType::Integer(_) | SqlType::BigInt(_) => DataType::Int,
        SqlType::Float(_) | SqlType::Real | SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Decimal(_) | SqlType::Numeric(_) => DataType::Float,
        SqlType::String(_) | SqlType::Varchar(_) | SqlType::Char(_) | SqlType::Text => DataType::String,
        SqlType::Timestamp(_, _) | SqlType::Datetime(_) => DataType::Timestamp,
        SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("TIMESTAMP_LTZ") => DataType::Timestamp,
        _ => return None,
    })
}

fn single_ident(name: &ast::ObjectName) -> SqlResult<Ident> {
    match name.0.as_slice() {
        [ast::ObjectNamePart::Identifier(ident)] => Ok(ident.clone()),
        _ => Err(SqlError::at(name, "use a plain table name")),
    }
}

fn function_args(function: &ast::Function) -> SqlResult<Vec<&Ast>> {
    match &function.args {
        FunctionArguments::None => Ok(vec![]),
        FunctionArguments::List(list) => {
            if list.duplicate_treatment.is_some() {
                return Err(SqlError::at(&function.name, "DISTINCT is only for aggregates"));
            }
            list.args
                .iter()
                .map(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr),
                    other => Err(SqlError::at(other, "only positional arguments are supported")),
                })
                .collect()
        }
        FunctionArguments::Subquery(query) => Err(SqlError::at(query.as_ref(), "subqueries as arguments are not supported")),
    }
}

/// `TABLE t [PARTITION BY k, ...]`, the first argument of a table function
/// (the dialect marks it as [`TABLE_ARGUMENT`]): the table and the keys.
fn table_argument(arg: &Ast, expected: &str) -> SqlResult<(Ident, Vec<Ident>)> {
    match arg {
        Ast::Function(marker) if marker.name.to_string() == TABLE_ARGUMENT => {
            let idents: Vec<Ident> = function_args(marker)?
                .into_iter()
                .map(|a| match a {
                    Ast::Identifier(ident) => ident.clone(),
                    _ => unreachable!("the dialect builds identifiers"),
                })
                .collect();
            Ok((idents[0].clone(), idents[1..].to_vec()))
        }
        _ => Err(SqlError::at(arg, format!("the first argument must be TABLE name: {expected}"))),
    }
}

/// The column of a `DESCRIPTOR(column)` argument.
fn descriptor(scope: &Scope, arg: &Ast, expected: &str) -> SqlResult<usize> {
    match arg {
        Ast::Function(descriptor) if descriptor.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => match function_args(descriptor)?.as_slice() {
            [Ast::Identifier(ident)] => scope.resolve(None, ident),
            _ => Err(SqlError::at(descriptor, "DESCRIPTOR takes one column")),
        },
        _ => Err(SqlError::at(arg, format!("expected DESCRIPTOR(column): {expected}"))),
    }
}

fn conjuncts(expr: &Ast) -> Vec<&Ast> {
    match expr {
        Ast::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        Ast::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

fn is_aggregate_call(ast: &Ast) -> bool {
    matches!(ast, Ast::Function(f) if f.over.is_none() && AggregateFunction::from_name(&f.name.to_string()).is_some())
}

/// Whether an expression contains an aggregate call anywhere.
fn contains_aggregate(ast: &Ast) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(ast, |e: &Ast| {
        if is_aggregate_call(e) {
            found = true;
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

fn references_window_columns(ast: &Ast) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(ast, |e: &Ast| {
        let name = match e {
            Ast::Identifier(i) => Some(&i.value),
            Ast::CompoundIdentifier(parts) => parts.last().map(|i| &i.value),
            _ => None,
        };
        if name.is_some_and(|n| ["window_start", "window_end", "window_time"].iter().any(|w| n.eq_ignore_ascii_case(w))) {
            found = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

fn has_aggregate_items(select: &ast::Select) -> bool {
    select.projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => contains_aggregate(e),
        _ => false,
    }) || select.having.as_ref().is_some_and(contains_aggregate)
}

/// Flink names an unaliased column after the column it is, else `EXPR$n`.
fn default_name(ast: &Ast, position: usize) -> String {
    match ast {
        Ast::Identifier(ident) => ident.value.clone(),
        Ast::CompoundIdentifier(parts) => parts.last().map_or_else(|| format!("EXPR${position}"), |i| i.value.clone()),
        _ => format!("EXPR${position}"),
    }
}

/// The `FOR SYSTEM_TIME AS OF` time of a table in FROM, if it has one.
fn as_of(factor: &TableFactor) -> Option<&Ast> {
    match factor {
        TableFactor::Table {
            version: Some(ast::TableVersion::ForSystemTimeAsOf(time)),
            ..
        } => Some(time),
        _ => None,
    }
}

/// `left UNION ALL right`: the rows of both, under the left side's column
/// names; the columns must have the same types. Nested unions become one.
fn union_all(left: Plan, right: Plan, right_ast: &SetExpr) -> SqlResult<Plan> {
    if left.schema.fields.len() != right.schema.fields.len() {
        return Err(SqlError::at(
            right_ast,
            format!("UNION ALL of {} columns with {} columns", left.schema.fields.len(), right.schema.fields.len()),
        ));
    }
    for (index, (l, r)) in left.schema.fields.iter().zip(&right.schema.fields).enumerate() {
        if l.data_type != r.data_type {
            return Err(SqlError::at(
                right_ast,
                format!(
                    "UNION ALL column {} ('{}') is {} on the left and {} on the right; CAST one side",
                    index + 1,
                    l.name,
                    l.data_type,
                    r.data_type
                ),
            ));
        }
    }
    let rowtime = left.rowtime.filter(|time| right.rowtime == Some(*time));
    let mut watermark_tables = left.watermark_tables.clone();
    watermark_tables.extend(right.watermark_tables.iter().copied());
    let schema = left.schema.clone();
    let mut inputs = match left.node {
        Node::Union { inputs } => inputs,
        _ => vec![left],
    };
    inputs.push(right);
    Ok(Plan {
        schema,
        rowtime,
        watermark_tables,
        window: None,
        node: Node::Union { inputs },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_key_reaches_the_connector_declaration() {
        let program = crate::cli::check_text(
            "CREATE TABLE src (node STRING) WITH ('connector' = 'simulator');
             CREATE TABLE out (a STRING, b INT, PRIMARY KEY (b, a) NOT ENFORCED) WITH ('connector' = 'blackhole');
             INSERT INTO out SELECT node, 1 FROM src;",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(program.tables[1].connector.primary_key, Some(vec![1, 0]));
        assert_eq!(program.tables[0].connector.primary_key, None);
    }

    #[test]
    fn environment_variables_are_substituted_in_option_values() {
        // PATH is set in every environment the tests run in.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(substitute_env("${PATH}/x").unwrap(), format!("{path}/x"));
        assert_eq!(substitute_env("cost $$5 and $ alone").unwrap(), "cost $5 and $ alone");
        assert_eq!(
            substitute_env("${CARBONFLOW_SURELY_UNSET_VARIABLE}").unwrap_err(),
            "environment variable CARBONFLOW_SURELY_UNSET_VARIABLE is not set"
        );
        assert!(substitute_env("${PATH").is_err());
    }
}
