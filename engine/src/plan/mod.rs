//! The checked logical plan of a query file.
//!
//! [`bind::bind_program`] turns the parsed statements into a [`Program`]: the
//! declared tables with their connectors, the views, and the outputs (each
//! `INSERT INTO` and the trailing bare `SELECT`), every name resolved and every
//! expression typed. The dataflow builder turns a program into timely and
//! differential operators; `carbonflow explain` prints it.

pub mod bind;
pub mod expr;
pub mod functions;
pub mod retention;

use std::collections::BTreeSet;
use std::fmt;

use carbonflow_core::{ConnectorConfig, Millis, Schema};
use carbonflow_operators::aggregate::{AggregateFunction, AggregateSpec};
use carbonflow_operators::analytics::{Decay, Frame, OverCall, OverFunction};
use carbonflow_operators::cep::MatchSpec;
use carbonflow_operators::forecast::ModelShape;
use carbonflow_operators::windows::WindowSpec;

pub use bind::bind_program;
pub use expr::Expr;

use crate::sql::Emit;

/// A checked query file.
#[derive(Clone, Debug)]
pub struct Program {
    /// Every `CREATE TABLE`, in file order.
    pub tables: Vec<Table>,
    /// Every `CREATE VIEW`, in file order.
    pub views: Vec<View>,
    /// What the file produces: `INSERT INTO` statements and a bare `SELECT`.
    pub outputs: Vec<Output>,
    /// How long a window keeps accepting late rows after the watermark passed
    /// its end (`SET 'table.exec.emit.allowed-lateness' = '...'`; default 0, as Flink).
    pub allowed_lateness: Millis,
}

/// A declared table: a source when queries read it, a sink when one inserts into it.
#[derive(Clone, Debug)]
pub struct Table {
    /// The connector declaration (name, columns, options).
    pub connector: ConnectorConfig,
    /// `PRIMARY KEY (...) NOT ENFORCED`, as column indices: a later row with the
    /// same key revises (retracts and replaces) the earlier one.
    pub primary_key: Option<Vec<usize>>,
    /// The watermark, when declared.
    pub watermark: Option<WatermarkSpec>,
    /// Whether queries read it (a source) or write it (a sink).
    pub role: TableRole,
}

impl Table {
    /// The table name.
    pub fn name(&self) -> &str {
        &self.connector.table
    }
}

/// `WATERMARK FOR column AS column - INTERVAL 'delay'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatermarkSpec {
    /// The event-time column.
    pub column: usize,
    /// The bounded out-of-orderness: the watermark is the largest event time seen minus this.
    pub delay: Millis,
}

/// How a table is used by the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableRole {
    /// Declared but not used.
    Unused,
    /// Read by queries.
    Source,
    /// Written by `INSERT INTO`.
    Sink,
}

/// A `CREATE VIEW`.
#[derive(Clone, Debug)]
pub struct View {
    /// The view name.
    pub name: String,
    /// Its plan.
    pub plan: Plan,
}

/// One result of the file.
#[derive(Clone, Debug)]
pub struct Output {
    /// Where the changes go.
    pub target: OutputTarget,
    /// The query producing them.
    pub plan: Plan,
}

/// Where an output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputTarget {
    /// `INSERT INTO` the sink table at this index of [`Program::tables`].
    Table(usize),
    /// A bare `SELECT`: its changes are printed.
    Print,
    /// A view at this index of [`Program::views`], published to WebSocket
    /// subscribers. The runtime adds these outputs when a server runs.
    View(usize),
}

/// A relational plan node with its output schema and time properties.
#[derive(Clone, Debug)]
pub struct Plan {
    /// What this node computes.
    pub node: Node,
    /// The columns it produces.
    pub schema: Schema,
    /// The event-time column (a time attribute), if the rows still have one.
    pub rowtime: Option<usize>,
    /// The tables whose watermarks bound this node's event time.
    pub watermark_tables: BTreeSet<usize>,
    /// `window_start`, `window_end` columns from a window table function, while they survive.
    pub window: Option<WindowColumns>,
}

/// Where a window TVF's columns are in a plan's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowColumns {
    /// `window_start`.
    pub start: usize,
    /// `window_end`.
    pub end: usize,
}

/// One aggregate of an aggregation.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateCall {
    /// The function, its input type and DISTINCT.
    pub spec: AggregateSpec,
    /// Its argument (none for `COUNT(*)`).
    pub arg: Option<Expr>,
}

/// How a GROUP BY aggregation is built ([`Plan::aggregate_strategy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateStrategy {
    /// Rows are exchanged by group key and folded into state that takes
    /// retractions (ordered multisets for MIN and MAX).
    Retractable,
    /// The input never retracts: each worker folds an epoch's rows per group
    /// into append-only partial states (one extreme for MIN and MAX), which
    /// are exchanged by group key and merged.
    Combined,
}

/// The model of a `FORECAST`, as checked when binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForecastModelSpec {
    /// The ONNX file, as written in the query (relative to the working directory).
    pub path: String,
    /// The spacing of the input series.
    pub step: Millis,
    /// The model's context length and horizon when the query was checked.
    pub shape: ModelShape,
}

/// Plan nodes.
#[derive(Clone, Debug)]
pub enum Node {
    /// Rows of a source table.
    TableScan {
        /// Index into [`Program::tables`].
        table: usize,
    },
    /// Rows of a view.
    ViewScan {
        /// Index into [`Program::views`].
        view: usize,
    },
    /// Rows for which the predicate is TRUE.
    Filter {
        /// The input.
        input: Box<Plan>,
        /// A BOOLEAN expression.
        predicate: Expr,
    },
    /// Computed columns.
    Project {
        /// The input.
        input: Box<Plan>,
        /// One expression per output column.
        exprs: Vec<Expr>,
    },
    /// `TUMBLE`, `HOP` or `CUMULATE`: each row once per window containing it,
    /// with `window_start`, `window_end`, `window_time` appended.
    WindowAssign {
        /// The input.
        input: Box<Plan>,
        /// The window shape.
        window: WindowSpec,
        /// The event-time column the windows are over.
        time_column: usize,
    },
    /// `GROUP BY keys` with aggregates: output is the keys, then the aggregates.
    Aggregate {
        /// The input.
        input: Box<Plan>,
        /// The grouping expressions.
        keys: Vec<Expr>,
        /// The aggregates.
        aggregates: Vec<AggregateCall>,
        /// When grouped by a window TVF's `window_start, window_end`: their
        /// positions among `keys`. Such groups close when the watermark passes.
        window: Option<WindowColumns>,
        /// When results are emitted.
        emit: Emit,
    },
    /// `SESSION` windows grouped by their partition keys: output is the
    /// partition keys, `window_start`, `window_end`, `window_time`, then the aggregates.
    SessionAggregate {
        /// The input.
        input: Box<Plan>,
        /// The partition key columns.
        partition: Vec<usize>,
        /// The event-time column.
        time_column: usize,
        /// The inactivity gap that ends a session.
        gap: Millis,
        /// The aggregates.
        aggregates: Vec<AggregateCall>,
        /// When results are emitted.
        emit: Emit,
    },
    /// `MATCH_RECOGNIZE`, one row per match: output is the partition
    /// columns, then the measures.
    MatchRecognize {
        /// The input.
        input: Box<Plan>,
        /// The `PARTITION BY` columns.
        partition: Vec<usize>,
        /// The event-time column the rows are ordered by (then by `spec.order_by`).
        time_column: usize,
        /// The pattern, conditions, measures, skip mode, `WITHIN` and further ordering.
        spec: MatchSpec,
    },
    /// `JOIN versioned FOR SYSTEM_TIME AS OF left.time`: each left row joined
    /// with the right rows of its key at the greatest right event time not
    /// after its own. Output is the left row followed by the right row.
    TemporalJoin {
        /// The probe side.
        left: Box<Plan>,
        /// The versioned table.
        right: Box<Plan>,
        /// Left key columns.
        left_keys: Vec<usize>,
        /// Right key columns, pairwise equal to the left ones.
        right_keys: Vec<usize>,
        /// The left column whose time selects the version.
        probe_time: usize,
        /// The right column holding each version's time (its event-time attribute).
        version_time: usize,
    },
    /// `UNION ALL`: the rows of every input (same column types).
    Union {
        /// The inputs, in query order.
        inputs: Vec<Plan>,
    },
    /// OVER calls (`ZSCORE(price) OVER w`, …): each input row once the
    /// watermark passes it, followed by one column per call.
    Over {
        /// The input.
        input: Box<Plan>,
        /// The `PARTITION BY` columns.
        partition: Vec<usize>,
        /// The event-time column the rows are ordered by.
        time_column: usize,
        /// The calls, with their argument columns and frames.
        calls: Vec<OverCall>,
    },
    /// `FORECAST`: per partition, quantile forecasts over the last values of
    /// a column. Output: the partition columns, then `forecast_time`,
    /// `horizon`, `target_time`, `forecast`, `p10`, `p50`, `p90`.
    Forecast {
        /// The input.
        input: Box<Plan>,
        /// The `PARTITION BY` columns.
        partition: Vec<usize>,
        /// The event-time column the series is ordered by.
        time_column: usize,
        /// The column forecast.
        value_column: usize,
        /// The model and the series' step.
        model: ForecastModelSpec,
    },
    /// An inner equi-join: output is the left row followed by the right row.
    Join {
        /// The left input.
        left: Box<Plan>,
        /// The right input.
        right: Box<Plan>,
        /// Left key columns.
        left_keys: Vec<usize>,
        /// Right key columns, pairwise equal to the left ones.
        right_keys: Vec<usize>,
    },
}

impl Plan {
    /// How far the watermark of this plan's rows trails the watermark of its
    /// tables: the gaps of the `SESSION` aggregations below it, added up
    /// along each path to a table, the largest over the paths (0 without
    /// one). Sinks report progress with it too.
    ///
    /// A late row admitted within a gap and the allowed lateness of the
    /// watermark changes sessions whose `window_time` is at or after its own
    /// event time, so every change to a session row with `window_time` t
    /// comes while the watermark is below `t + gap + allowed lateness`.
    /// Behind a watermark lagging by the gap, session rows thus take changes
    /// exactly as long as a table's rows or a TUMBLE's `window_time` do (until
    /// the watermark is the allowed lateness past them), and a window, OVER,
    /// MATCH_RECOGNIZE or FORECAST over them never rejects one.
    pub fn watermark_lag(&self, program: &Program) -> Millis {
        match &self.node {
            Node::ViewScan { view } => program.views[*view].plan.watermark_lag(program),
            Node::SessionAggregate { input, gap, .. } => input.watermark_lag(program).saturating_add(*gap),
            _ => self.inputs().into_iter().map(|input| input.watermark_lag(program)).max().unwrap_or(0),
        }
    }

    /// The direct inputs of this node.
    pub fn inputs(&self) -> Vec<&Plan> {
        match &self.node {
            Node::TableScan { .. } | Node::ViewScan { .. } => vec![],
            Node::Filter { input, .. }
            | Node::Project { input, .. }
            | Node::WindowAssign { input, .. }
            | Node::Aggregate { input, .. }
            | Node::SessionAggregate { input, .. }
            | Node::MatchRecognize { input, .. }
            | Node::Over { input, .. }
            | Node::Forecast { input, .. } => {
                vec![input]
            }
            Node::Join { left, right, .. } | Node::TemporalJoin { left, right, .. } => vec![left, right],
            Node::Union { inputs } => inputs.iter().collect(),
        }
    }

    /// Columns whose values identify a row: no two rows of the plan's result
    /// share them at any time. Known for a primary-key table, a GROUP BY
    /// (its keys), a session aggregate (partition and window start), and what
    /// filters, projections that keep those columns, window assignment and
    /// joins of keyed inputs preserve. WebSocket subscribers of a keyed view
    /// get upserts and deletes by key instead of retractions and insertions.
    pub fn unique_key(&self, program: &Program) -> Option<Vec<usize>> {
        match &self.node {
            Node::TableScan { table } => program.tables[*table].primary_key.clone(),
            Node::ViewScan { view } => program.views[*view].plan.unique_key(program),
            Node::Filter { input, .. } => input.unique_key(program),
            Node::Project { input, exprs } => input
                .unique_key(program)?
                .iter()
                .map(|column| exprs.iter().position(|expr| matches!(expr, Expr::Column(c) if c == column)))
                .collect(),
            Node::WindowAssign { input, .. } => {
                let mut key = input.unique_key(program)?;
                key.push(input.schema.fields.len());
                Some(key)
            }
            Node::Aggregate { keys, .. } => Some((0..keys.len()).collect()),
            Node::SessionAggregate { partition, .. } => Some((0..=partition.len()).collect()),
            Node::MatchRecognize { .. } | Node::TemporalJoin { .. } | Node::Union { .. } => None,
            // One output row per input row, whose results may be revised.
            Node::Over { input, .. } => input.unique_key(program),
            Node::Forecast { partition, .. } => Some((0..partition.len() + 2).collect()),
            Node::Join { left, right, .. } => {
                let mut key = left.unique_key(program)?;
                let width = left.schema.fields.len();
                key.extend(right.unique_key(program)?.into_iter().map(|column| column + width));
                Some(key)
            }
        }
    }

    /// Whether the plan's result only ever grows: none of its updates is a
    /// retraction. A source table without a primary key only inserts (a key
    /// turns a later row into a revision), and filters, projections, window
    /// assignment, UNION ALL and inner joins of such inputs only insert too.
    /// Every other operator may revise what it emitted.
    pub fn append_only(&self, program: &Program) -> bool {
        match &self.node {
            Node::TableScan { table } => program.tables[*table].primary_key.is_none(),
            Node::ViewScan { view } => program.views[*view].plan.append_only(program),
            Node::Filter { input, .. } | Node::Project { input, .. } | Node::WindowAssign { input, .. } => input.append_only(program),
            Node::Union { inputs } => inputs.iter().all(|input| input.append_only(program)),
            Node::Join { left, right, .. } => left.append_only(program) && right.append_only(program),
            Node::Aggregate { .. }
            | Node::SessionAggregate { .. }
            | Node::MatchRecognize { .. }
            | Node::TemporalJoin { .. }
            | Node::Over { .. }
            | Node::Forecast { .. } => false,
        }
    }

    /// How an `Aggregate` node runs (`None` for other nodes): combined when
    /// its input is [append-only](Self::append_only) and every aggregate has
    /// a mergeable append-only form (all but COUNT, SUM, AVG and the
    /// variances with DISTINCT).
    pub fn aggregate_strategy(&self, program: &Program) -> Option<AggregateStrategy> {
        let Node::Aggregate { input, aggregates, .. } = &self.node else {
            return None;
        };
        let combinable = input.append_only(program) && aggregates.iter().all(|call| call.spec.has_append_only_form());
        Some(if combinable {
            AggregateStrategy::Combined
        } else {
            AggregateStrategy::Retractable
        })
    }

    /// The operator name used in `explain`, logs and metrics.
    pub fn operator_name(&self) -> &'static str {
        match &self.node {
            Node::TableScan { .. } => "TableScan",
            Node::ViewScan { .. } => "ViewScan",
            Node::MatchRecognize { .. } => "MatchRecognize",
            Node::Over { .. } => "Over",
            Node::Forecast { .. } => "Forecast",
            Node::Filter { .. } => "Filter",
            Node::Project { .. } => "Project",
            Node::WindowAssign {
                window: WindowSpec::Tumble { .. },
                ..
            } => "Tumble",
            Node::WindowAssign {
                window: WindowSpec::Hop { .. },
                ..
            } => "Hop",
            Node::WindowAssign {
                window: WindowSpec::Cumulate { .. },
                ..
            } => "Cumulate",
            Node::Aggregate { window: Some(_), .. } => "WindowAggregate",
            Node::Aggregate { window: None, .. } => "Aggregate",
            Node::SessionAggregate { .. } => "SessionWindowAggregate",
            Node::Join { .. } => "Join",
            Node::TemporalJoin { .. } => "TemporalJoin",
            Node::Union { .. } => "UnionAll",
        }
    }

    /// Writes the plan as an indented tree, for `explain`.
    pub fn explain(&self, program: &Program, depth: usize, out: &mut String) {
        let indent = "  ".repeat(depth);
        let detail = match &self.node {
            Node::TableScan { table } => program.tables[*table].name().to_owned(),
            Node::ViewScan { view } => program.views[*view].name.clone(),
            Node::Filter { predicate, .. } => predicate.to_string(),
            Node::Project { exprs, .. } => join(exprs),
            Node::WindowAssign { window, time_column, .. } => format!("{} over ${time_column}", describe_window(window)),
            Node::Aggregate { keys, aggregates, emit, .. } => format!("keys=[{}] aggregates=[{}] emit={emit:?}", join(keys), aggregate_list(aggregates)),
            Node::SessionAggregate {
                partition,
                time_column,
                gap,
                aggregates,
                emit,
                ..
            } => {
                format!(
                    "partition={partition:?} time=${time_column} gap={gap}ms aggregates=[{}] emit={emit:?}",
                    aggregate_list(aggregates)
                )
            }
            Node::Join { left_keys, right_keys, .. } => format!("left{left_keys:?} = right{right_keys:?}"),
            Node::Union { inputs } => format!("{} inputs", inputs.len()),
            Node::TemporalJoin {
                left_keys,
                right_keys,
                probe_time,
                version_time,
                ..
            } => format!("left{left_keys:?} = right{right_keys:?} as of left ${probe_time} (versions by right ${version_time})"),
            Node::MatchRecognize {
                partition, time_column, spec, ..
            } => {
                let within = spec.within.map_or(String::new(), |w| format!(" within={}", duration(w.duration)));
                let then: String = spec
                    .order_by
                    .iter()
                    .map(|order| {
                        let direction = if order.descending { " DESC" } else { "" };
                        let nulls = if order.nulls_first == order.descending {
                            if order.nulls_first { " NULLS FIRST" } else { " NULLS LAST" }
                        } else {
                            ""
                        };
                        format!(",${}{direction}{nulls}", order.column)
                    })
                    .collect();
                format!(
                    "partition={partition:?} order=${time_column}{then} pattern=({}){within} skip={:?} measures={}",
                    spec.pattern.display(&spec.variables),
                    spec.skip,
                    spec.measures.len()
                )
            }
            Node::Over {
                partition, time_column, calls, ..
            } => {
                let calls: Vec<String> = calls.iter().map(describe_call).collect();
                format!("partition={partition:?} order=${time_column} calls=[{}]", calls.join(", "))
            }
            Node::Forecast {
                partition,
                time_column,
                value_column,
                model,
                ..
            } => format!(
                "partition={partition:?} time=${time_column} value=${value_column} step={} model={} ({})",
                duration(model.step),
                model.path,
                model.shape
            ),
        };
        out.push_str(&format!("{indent}{} {detail}\n{indent}  -> {}", self.operator_name(), self.schema));
        if let Some(rowtime) = self.rowtime {
            out.push_str(&format!(" rowtime=${rowtime}"));
        }
        out.push('\n');
        for input in self.inputs() {
            input.explain(program, depth + 1, out);
        }
    }
}

/// A window as `explain` shows it: `size=1 min`, `slide=5 min size=15 min`.
fn describe_window(window: &WindowSpec) -> String {
    let (parts, offset) = match *window {
        WindowSpec::Tumble { size, offset } => (vec![("size", size)], offset),
        WindowSpec::Hop { slide, size, offset } => (vec![("slide", slide), ("size", size)], offset),
        WindowSpec::Cumulate { step, max_size, offset } => (vec![("step", step), ("max", max_size)], offset),
    };
    let mut text: Vec<String> = parts.into_iter().map(|(name, millis)| format!("{name}={}", duration(millis))).collect();
    if offset != 0 {
        text.push(format!("offset={}", duration(offset)));
    }
    text.join(" ")
}

/// An OVER call as `explain` shows it: `ZSCORE($2) rows=19`,
/// `EWMA_ZSCORE($2 half-life=1 h)`, `CUSUM($2 k=0.5 h=5 warmup=20)`.
fn describe_call(call: &OverCall) -> String {
    let args: Vec<String> = match &call.function {
        OverFunction::Aggregate(spec) if spec.function == AggregateFunction::CountStar => vec!["*".to_owned()],
        _ => call.args.iter().map(|a| format!("${a}")).collect(),
    };
    let parameters = match &call.function {
        OverFunction::Aggregate(spec) if spec.distinct => " distinct".to_owned(),
        OverFunction::Ewma(decay) | OverFunction::EwmaZScore(decay) => match decay {
            Decay::Rows(rows) => format!(" half-life={rows} rows"),
            Decay::Time(millis) => format!(" half-life={}", duration(*millis)),
        },
        OverFunction::Seasonal(seasonal) => format!(" weeks={} zone={}", seasonal.weeks, seasonal.zone),
        OverFunction::HmmProbability { model, state } => format!(" states={} state={state} observation={}", model.states(), model.observation.name()),
        OverFunction::HmmState(model) => format!(" states={} observation={}", model.states(), model.observation.name()),
        OverFunction::Cusum(p, _) => format!(" k={} h={} warmup={}", p.k, p.h, p.warmup),
        OverFunction::PageHinkley(p, _) => format!(" delta={} lambda={}", p.delta, p.lambda),
        OverFunction::Garch(p) => format!(" omega={} alpha={} beta={} observation={}", p.omega, p.alpha, p.beta, p.observation.name()),
        _ => String::new(),
    };
    let frame = match call.frame {
        Frame::Rows(n) => format!(" rows={n}"),
        Frame::Range(millis) => format!(" range={}", duration(millis)),
        Frame::Unbounded => String::new(),
    };
    format!("{}({}{parameters}){frame}", call.function.name(), args.join(", "))
}

/// Milliseconds in the largest unit that divides them: `90 s`, `15 min`, `1 d`.
pub(crate) fn duration(millis: Millis) -> String {
    const UNITS: [(Millis, &str); 5] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1_000, "s"), (1, "ms")];
    let (size, unit) = UNITS.iter().find(|(size, _)| millis % size == 0).copied().unwrap_or((1, "ms"));
    format!("{} {unit}", millis / size)
}

fn join(exprs: &[Expr]) -> String {
    exprs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn aggregate_list(aggregates: &[AggregateCall]) -> String {
    aggregates
        .iter()
        .map(|call| {
            let distinct = if call.spec.distinct { "DISTINCT " } else { "" };
            let arg = call.arg.as_ref().map_or("*".to_owned(), ToString::to_string);
            format!("{}({distinct}{arg})", call.spec.function.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Program {
    /// The whole checked program, as `carbonflow explain` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for table in &self.tables {
            let role = match table.role {
                TableRole::Unused => "unused",
                TableRole::Source => "source",
                TableRole::Sink => "sink",
            };
            write!(
                f,
                "table {} {} [{role}] connector={}",
                table.name(),
                table.connector.schema,
                table.connector.option("connector").unwrap_or("?")
            )?;
            if let Some(key) = &table.primary_key {
                write!(f, " primary_key={key:?}")?;
            }
            if let Some(watermark) = &table.watermark {
                write!(f, " watermark=${} - {}ms", watermark.column, watermark.delay)?;
            }
            writeln!(f)?;
        }
        if self.allowed_lateness > 0 {
            writeln!(f, "allowed lateness: {}ms", self.allowed_lateness)?;
        }
        for view in &self.views {
            let mut tree = String::new();
            view.plan.explain(self, 1, &mut tree);
            write!(f, "\nview {}\n{tree}", view.name)?;
        }
        for output in &self.outputs {
            let target = match output.target {
                OutputTarget::Table(table) => format!("insert into {}", self.tables[table].name()),
                OutputTarget::Print => "select (printed)".to_owned(),
                OutputTarget::View(view) => format!("publish view {}", self.views[view].name),
            };
            let mut tree = String::new();
            output.plan.explain(self, 1, &mut tree);
            write!(f, "\n{target}\n{tree}")?;
        }
        Ok(())
    }
}
