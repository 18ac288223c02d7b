//! The dataflow builder: a checked [`Program`] becomes timely/differential operators.
//!
//! Every plan node maps onto one operator over differential collections of
//! `(Row, epoch, diff)`:
//!
//! | plan node | operator |
//! | --- | --- |
//! | table scan | an input session, then an `Upsert` for primary-key tables |
//! | filter, project | `flat_map` (rows whose expressions fail are dead-lettered) |
//! | TUMBLE / HOP / CUMULATE | `flat_map` assigning each row to its windows |
//! | aggregate | [`GroupedAggregate`] in the shared [`timed_operator`]; over an append-only input, after a per-worker [`combine_per_epoch`] |
//! | session aggregate | [`SessionAggregate`] in the same wrapper |
//! | OVER calls | [`Over`] in the same wrapper, keyed by partition |
//! | MATCH_RECOGNIZE | [`MatchRecognize`](carbonflow_operators::cep::dataflow::MatchRecognize) in the same wrapper |
//! | FORECAST | [`Forecast`] over an [`OnnxModel`] (one session per worker) in the same wrapper |
//! | join | differential's arranged `join_map` |
//! | temporal join | [`TemporalJoin`] in the same wrapper, keyed by join key |
//! | UNION ALL | `concatenate` |
//! | output | a sink core on worker 0 (a published view: on the first worker of every process), fed consolidated changes per epoch |
//!
//! A view used twice is built once (its collection is cloned).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use differential_dataflow::VecCollection;
use differential_dataflow::collection::AsCollection;
use differential_dataflow::input::{Input as _, InputSession};
use timely::dataflow::operators::Input as _;
use timely::dataflow::operators::probe::Probe;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::{InputHandleVec, ProbeHandle, Scope, Stream};

use carbonflow_core::metrics::{self, Histogram};
use carbonflow_core::{ConnectorConfig, Datum, DeadLetter, DeadLetterReason, Diff, Epoch, Millis, Row, Watermark};
use carbonflow_operators::aggregate::GroupAccumulator;
use carbonflow_operators::analytics::dataflow::{Over, partition_hash};
use carbonflow_operators::cep::MatchRecognizer;
use carbonflow_operators::dataflow::{CoreContext, Route, TimedCore, WatermarkSource, WatermarkUpdate, combine_per_epoch, route_hash, timed_operator};
use carbonflow_operators::forecast::onnx::OnnxModel;
use carbonflow_operators::forecast::{Forecast, ForecastModel, ForecastSpec};
use carbonflow_operators::grouped::{Combiner, EmitMode, GroupedAggregate, WindowKey};
use carbonflow_operators::session_aggregate::SessionAggregate;
use carbonflow_operators::temporal_join::{JoinSide, TemporalJoin};
use carbonflow_operators::upsert::Upsert;
use carbonflow_operators::windows::WindowSpec;
use carbonflow_sinks::Sink;

use crate::plan::{AggregateCall, AggregateStrategy, Expr, ForecastModelSpec, Node, OutputTarget, Plan, Program};
use crate::runtime::registry::QueryShared;
use crate::runtime::{DeadLetters, RunFailure};
use crate::sql::Emit;

/// How long a primary-key table remembers a key behind the watermark, unless
/// the table sets `'upsert.retention'`.
pub const DEFAULT_UPSERT_RETENTION: Millis = 24 * 3_600_000;

/// The handles a worker drives its dataflow with.
pub struct DataflowHandles {
    /// One input per source table (by table index).
    pub inputs: BTreeMap<usize, InputSession<Epoch, Row, Diff>>,
    /// Watermark reports of this worker's source instances.
    pub watermarks: InputHandleVec<Epoch, WatermarkUpdate>,
    /// Passes an epoch once every output has absorbed it.
    pub probe: ProbeHandle<Epoch>,
}

/// Creates a sink for an output on a worker that serves it.
pub type SinkFactory<'a> = &'a dyn Fn(&OutputTarget) -> Result<Box<dyn Sink>, RunFailure>;

/// What building a query's dataflow needs besides the program.
pub struct BuildContext<'a> {
    /// The query, for its failure slot, counters and metric labels.
    pub query: Arc<QueryShared>,
    /// Whether every view is also an output (for the WebSocket server).
    pub publish_views: bool,
    /// Where rejected rows go.
    pub dead_letters: DeadLetters,
    /// Creates the sinks.
    pub make_sink: SinkFactory<'a>,
    /// The workers that publish views: the first of every process, so each
    /// process's server serves every view.
    pub publishers: Vec<usize>,
}

type Collection<'s> = VecCollection<'s, Epoch, Row, Diff>;

struct Builder<'s, 'p> {
    scope: Scope<'s, Epoch>,
    program: &'p Program,
    watermarks: Stream<'s, Epoch, Vec<WatermarkUpdate>>,
    tables: BTreeMap<usize, Collection<'s>>,
    inputs: BTreeMap<usize, InputSession<Epoch, Row, Diff>>,
    views: BTreeMap<usize, Collection<'s>>,
    dead_letters: DeadLetters,
    /// The query's name, the label of its metrics.
    query: String,
    /// This worker's sessions of the FORECAST models, by file.
    forecast_models: HashMap<String, Vec<OnnxModel>>,
}

/// Builds the dataflow of `program` in `scope`.
pub fn build<'s>(scope: Scope<'s, Epoch>, program: &Program, context: &BuildContext) -> Result<DataflowHandles, RunFailure> {
    let (watermark_input, watermark_stream) = scope.new_input::<Vec<WatermarkUpdate>>();
    let watermarks = watermark_stream.broadcast();
    let mut builder = Builder {
        scope,
        program,
        watermarks,
        tables: BTreeMap::new(),
        inputs: BTreeMap::new(),
        views: BTreeMap::new(),
        dead_letters: context.dead_letters.clone(),
        query: context.query.name.clone(),
        forecast_models: load_forecast_models(program)?,
    };
    let probe = ProbeHandle::new();
    let published_views = program
        .views
        .iter()
        .enumerate()
        .filter(|_| context.publish_views)
        .map(|(index, view)| (OutputTarget::View(index), &view.plan));
    let outputs = program.outputs.iter().map(|output| (output.target, &output.plan)).chain(published_views);
    for (target, plan) in outputs {
        let collection = match target {
            OutputTarget::View(view) => builder.view(view),
            _ => builder.plan(plan),
        };
        let name = match target {
            OutputTarget::Table(table) => program.tables[table].name().to_owned(),
            OutputTarget::Print => "select".to_owned(),
            OutputTarget::View(view) => program.views[view].name.clone(),
        };
        // Every worker that serves the output gets every change.
        let served_by: Vec<u64> = match crate::serve::published_name(program, target) {
            Some(_) => context.publishers.iter().map(|&worker| worker as u64).collect(),
            None => vec![0],
        };
        let sink = if served_by.contains(&(scope.index() as u64)) {
            Some((context.make_sink)(&target)?)
        } else {
            None
        };
        let core = SinkCore {
            sink,
            buffer: Vec::new(),
            query: context.query.clone(),
            changes: metrics::SINK_CHANGES.with_label_values(&[context.query.name.as_str(), name.as_str()]),
            latency: metrics::INGEST_TO_EMIT_SECONDS.with_label_values(&[context.query.name.as_str(), name.as_str()]),
            name: name.clone(),
        };
        // One worker (the usual case) takes the row as it is; several share a copy each.
        let addressed = match served_by[..] {
            [only] => collection.map(move |row| (only, row)),
            _ => {
                let served_by: std::rc::Rc<[u64]> = served_by.into();
                collection.flat_map(move |row| {
                    let targets = served_by.clone();
                    (0..targets.len()).map(move |i| (targets[i], row.clone()))
                })
            }
        };
        let dead_letters = builder.dead_letters.clone();
        timed_operator(
            addressed.inner,
            builder.watermarks.clone(),
            |(worker, _)| *worker,
            watermark_source(program, plan),
            &format!("Sink[{name}]"),
            builder.batch_seconds(&format!("Sink[{name}]")),
            core,
            move |letter| dead_letters.push(letter),
        )
        .probe_with(&probe);
    }
    Ok(DataflowHandles {
        inputs: builder.inputs,
        watermarks: watermark_input,
        probe,
    })
}

/// One session per `FORECAST` node of the program, by model file, each
/// checked against the shape the query was bound with (the file may have
/// changed since).
fn load_forecast_models(program: &Program) -> Result<HashMap<String, Vec<OnnxModel>>, RunFailure> {
    fn visit<'p>(plan: &'p Plan, found: &mut Vec<&'p ForecastModelSpec>) {
        if let Node::Forecast { model, .. } = &plan.node {
            found.push(model);
        }
        plan.inputs().into_iter().for_each(|input| visit(input, found));
    }
    let mut specs = Vec::new();
    let plans = program.views.iter().map(|v| &v.plan).chain(program.outputs.iter().map(|o| &o.plan));
    plans.for_each(|plan| visit(plan, &mut specs));
    let mut models: HashMap<String, Vec<OnnxModel>> = HashMap::new();
    for spec in specs {
        let model = OnnxModel::load(Path::new(&spec.path)).map_err(|error| RunFailure::Model(error.to_string()))?;
        if model.shape() != spec.shape {
            return Err(RunFailure::Model(format!(
                "{} changed since the query was checked: it now has {}, the query expects {}",
                spec.path,
                model.shape(),
                spec.shape
            )));
        }
        models.entry(spec.path.clone()).or_default().push(model);
    }
    Ok(models)
}

/// The watermark of the rows of `plan`: its tables', less the lag of its time attribute.
fn watermark_source(program: &Program, plan: &Plan) -> WatermarkSource {
    WatermarkSource {
        tables: plan.watermark_tables.iter().map(|t| *t as u32).collect(),
        lag: plan.watermark_lag(program),
    }
}

impl<'s> Builder<'s, '_> {
    /// The batch-latency histogram of one of this query's operators.
    fn batch_seconds(&self, operator: &str) -> Histogram {
        metrics::OPERATOR_BATCH_SECONDS.with_label_values(&[self.query.as_str(), operator])
    }

    /// A view's collection, built once however many readers it has.
    fn view(&mut self, view: usize) -> Collection<'s> {
        if let Some(collection) = self.views.get(&view) {
            return collection.clone();
        }
        let collection = self.plan(&self.program.views[view].plan);
        self.views.insert(view, collection.clone());
        collection
    }

    fn plan(&mut self, plan: &Plan) -> Collection<'s> {
        match &plan.node {
            Node::TableScan { table } => self.table(*table),
            Node::ViewScan { view } => self.view(*view),
            Node::Filter { input, predicate } => {
                let input = self.plan(input);
                let predicate = predicate.clone();
                let dead_letters = self.dead_letters.clone();
                input.flat_map(move |row| match predicate.eval(&row) {
                    Ok(Datum::Bool(true)) => Some(row),
                    Ok(_) => None,
                    Err(error) => {
                        dead_letters.push(eval_failure("Filter", &row, &error.to_string()));
                        None
                    }
                })
            }
            Node::Project { input, exprs } => {
                let input = self.plan(input);
                let exprs = RowBuilder::new(exprs);
                let dead_letters = self.dead_letters.clone();
                let mut scratch = Vec::new();
                input.flat_map(move |row| match exprs.build(RowView { row: &row, window: &[] }, &mut scratch) {
                    Ok(projected) => Some(projected),
                    Err(error) => {
                        dead_letters.push(eval_failure("Project", &row, &error.to_string()));
                        None
                    }
                })
            }
            Node::WindowAssign { input, window, time_column } => {
                let input = self.plan(input);
                let mut windowing = Windowing::new(*window, *time_column);
                input.flat_map(move |row| {
                    let mut widened = Produced::default();
                    windowing.for_each(&row, |view| widened.push(view.row.iter().chain(view.window).cloned().collect()));
                    widened
                })
            }
            Node::Aggregate {
                input,
                keys,
                aggregates,
                window,
                emit,
            } => {
                // A window TVF right below is fused in: rows are widened in a
                // reused buffer instead of being materialised once per window.
                // FIRST_VALUE and LAST_VALUE order a group's rows by event
                // time: below a window TVF that is the rows' own time column,
                // not `window_time`, which all rows of a window share. The
                // widened rows extend the TVF input's layout, so its column
                // index holds.
                let order_time = window_event_time(input).or(input.rowtime);
                // Plain GROUP BY groups never close, so they need no watermark.
                let watermark = if window.is_some() {
                    watermark_source(self.program, input)
                } else {
                    WatermarkSource::default()
                };
                let (input, windowing) = match &input.node {
                    Node::WindowAssign {
                        input: inner,
                        window,
                        time_column,
                    } => (inner.as_ref(), Some(Windowing::new(*window, *time_column))),
                    _ => (input.as_ref(), None),
                };
                let input = self.plan(input);
                let arguments = GroupArguments::new(windowing, keys, aggregates, order_time);
                let window = window.map(|w| WindowKey {
                    end: w.end,
                    allowed_lateness: self.program.allowed_lateness,
                    emit: if *emit == Emit::Final { EmitMode::Final } else { EmitMode::Changes },
                });
                let name = plan.operator_name();
                let specs: Vec<_> = aggregates.iter().map(|a| a.spec).collect();
                match plan.aggregate_strategy(self.program) {
                    Some(AggregateStrategy::Combined) => {
                        let partials = combined_arguments(input, arguments, specs.clone(), self.dead_letters.clone());
                        let core = GroupedAggregate::<GroupAccumulator>::new(name, specs, window);
                        self.keyed(partials, watermark, name, core)
                    }
                    _ => {
                        let keyed = keyed_arguments(input, arguments, self.dead_letters.clone());
                        self.keyed(keyed, watermark, name, GroupedAggregate::<Row>::new(name, specs, window))
                    }
                }
            }
            Node::SessionAggregate {
                input,
                partition,
                time_column,
                gap,
                aggregates,
                emit,
            } => {
                let watermark = watermark_source(self.program, input);
                let input = self.plan(input);
                let keys: Vec<Expr> = partition.iter().map(|c| Expr::Column(*c)).collect();
                let arguments = GroupArguments::new(None, &keys, aggregates, Some(*time_column));
                let keyed = keyed_arguments(input, arguments, self.dead_letters.clone());
                let emit = if *emit == Emit::Final { EmitMode::Final } else { EmitMode::Changes };
                let core = SessionAggregate::new(
                    "SessionWindowAggregate",
                    *gap,
                    aggregates.iter().map(|a| a.spec).collect(),
                    self.program.allowed_lateness,
                    emit,
                );
                self.keyed(keyed, watermark, "SessionWindowAggregate", core)
            }
            Node::MatchRecognize {
                input,
                partition,
                time_column,
                spec,
            } => {
                let keyed = self.partitioned(input, partition);
                let recognizer = MatchRecognizer::new(spec.clone()).expect("checked by the binder");
                let core = carbonflow_operators::cep::dataflow::MatchRecognize::new("MatchRecognize", recognizer, *time_column, self.program.allowed_lateness);
                self.keyed(keyed, watermark_source(self.program, input), "MatchRecognize", core)
            }
            Node::Over {
                input,
                partition,
                time_column,
                calls,
            } => {
                let watermark = watermark_source(self.program, input);
                let columns = partition.clone();
                let hashed = self.plan(input).map(move |row| (partition_hash(&row, &columns), row));
                let core = Over::new("Over", calls.clone(), partition.clone(), *time_column, self.program.allowed_lateness);
                self.routed(hashed, |(hash, _)| *hash, watermark, "Over", core)
            }
            Node::Forecast {
                input,
                partition,
                time_column,
                value_column,
                model,
            } => {
                let keyed = self.partitioned(input, partition);
                let spec = ForecastSpec {
                    time_column: *time_column,
                    value_column: *value_column,
                    step: model.step,
                    allowed_lateness: self.program.allowed_lateness,
                };
                let loaded = self.forecast_models.get_mut(&model.path).and_then(Vec::pop);
                let core = Forecast::new("Forecast", spec, loaded.expect("one model loaded per FORECAST node"));
                self.keyed(keyed, watermark_source(self.program, input), "Forecast", core)
            }
            Node::Join {
                left,
                right,
                left_keys,
                right_keys,
            } => {
                let left = self.plan(left);
                let right = self.plan(right);
                let (left_keys, right_keys) = (left_keys.clone(), right_keys.clone());
                // SQL equality: a NULL key joins nothing.
                let left = left.flat_map(move |row| {
                    let key = row.project(&left_keys);
                    (!key.iter().any(Datum::is_null)).then_some((key, row))
                });
                let right = right.flat_map(move |row| {
                    let key = row.project(&right_keys);
                    (!key.iter().any(Datum::is_null)).then_some((key, row))
                });
                left.join_map(right, |_key, l, r| {
                    let mut datums = l.to_vec();
                    datums.extend(r.iter().cloned());
                    Row::new(datums)
                })
            }
            Node::Union { inputs } => {
                let collections: Vec<Collection<'s>> = inputs.iter().map(|input| self.plan(input)).collect();
                differential_dataflow::collection::concatenate(self.scope, collections)
            }
            Node::TemporalJoin {
                left,
                right,
                left_keys,
                right_keys,
                probe_time,
                version_time,
            } => {
                let tagged = |collection: Collection<'s>, keys: &[usize], side: JoinSide| {
                    let keys = keys.to_vec();
                    collection.flat_map(move |row| {
                        let key = row.project(&keys);
                        (!key.iter().any(Datum::is_null)).then_some((key, (side, row)))
                    })
                };
                let probes = tagged(self.plan(left), left_keys, JoinSide::Probe);
                let versions = tagged(self.plan(right), right_keys, JoinSide::Version);
                let core = TemporalJoin::new("TemporalJoin", *probe_time, *version_time);
                // Probe results become final as the versioned table's watermark passes them.
                self.keyed(probes.concat(versions), watermark_source(self.program, right), "TemporalJoin", core)
            }
        }
    }

    /// The rows of `input` keyed by their `partition` columns.
    fn partitioned(&mut self, input: &Plan, partition: &[usize]) -> VecCollection<'s, Epoch, (Row, Row), Diff> {
        let partition = partition.to_vec();
        self.plan(input).map(move |row| (row.project(&partition), row))
    }

    /// A timed operator over `keyed` rows, each sent to the worker its key hashes to.
    fn keyed<V: timely::ExchangeData, C: TimedCore<Input = (Row, V)>>(
        &self,
        keyed: VecCollection<'s, Epoch, (Row, V), Diff>,
        watermark: WatermarkSource,
        name: &str,
        core: C,
    ) -> Collection<'s> {
        self.routed(keyed, |(key, _)| route_hash(key), watermark, name, core)
    }

    /// A timed operator over `data`, each update sent to the worker `route` picks.
    fn routed<D: timely::ExchangeData, C: TimedCore<Input = D>>(
        &self,
        data: VecCollection<'s, Epoch, D, Diff>,
        route: Route<D>,
        watermark: WatermarkSource,
        name: &str,
        core: C,
    ) -> Collection<'s> {
        let dead_letters = self.dead_letters.clone();
        timed_operator(
            data.inner,
            self.watermarks.clone(),
            route,
            watermark,
            name,
            self.batch_seconds(name),
            core,
            move |letter| dead_letters.push(letter),
        )
        .as_collection()
    }

    fn table(&mut self, index: usize) -> Collection<'s> {
        if let Some(collection) = self.tables.get(&index) {
            return collection.clone();
        }
        let table = &self.program.tables[index];
        let (input, collection) = self.scope.new_collection::<Row, Diff>();
        self.inputs.insert(index, input);
        let collection = match &table.primary_key {
            Some(key) => {
                let key = key.clone();
                let keyed = collection.map(move |row| (row.project(&key), row));
                let retention = upsert_retention(&table.connector);
                let core = Upsert::new(table.name(), table.watermark.map(|w| w.column), retention);
                let watermark = WatermarkSource {
                    tables: table.watermark.iter().map(|_| index as u32).collect(),
                    lag: 0,
                };
                self.keyed(keyed, watermark, "Upsert", core)
            }
            None => collection,
        };
        self.tables.insert(index, collection.clone());
        collection
    }
}

/// The `'upsert.retention'` option of a primary-key table (checked by the binder).
pub fn upsert_retention(connector: &ConnectorConfig) -> Millis {
    connector
        .option("upsert.retention")
        .and_then(crate::plan::bind::parse_duration)
        .unwrap_or(DEFAULT_UPSERT_RETENTION)
}

/// The time column of the window TVF that `plan` reads, through filters.
fn window_event_time(plan: &Plan) -> Option<usize> {
    match &plan.node {
        Node::WindowAssign { time_column, .. } => Some(*time_column),
        Node::Filter { input, .. } => window_event_time(input),
        _ => None,
    }
}

/// What an aggregation reads from each row: the group key and the aggregate
/// arguments followed by the event time, once per window of the row when a
/// window TVF is fused in, built in reused buffers.
struct GroupArguments {
    windowing: Option<Windowing>,
    keys: RowBuilder,
    args: RowBuilder,
    key: Vec<Datum>,
    arguments: Vec<Datum>,
    scratch: Vec<Datum>,
}

impl GroupArguments {
    fn new(windowing: Option<Windowing>, keys: &[Expr], aggregates: &[AggregateCall], order_time: Option<usize>) -> Self {
        let args: Vec<Expr> = aggregates
            .iter()
            .map(|a| a.arg.clone().unwrap_or(Expr::Literal(Datum::Null)))
            .chain(std::iter::once(order_time.map_or(Expr::Literal(Datum::Null), Expr::Column)))
            .collect();
        GroupArguments {
            windowing,
            keys: RowBuilder::new(keys),
            args: RowBuilder::new(&args),
            key: Vec::new(),
            arguments: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Calls `each(key, arguments)` for every window of `row` (once without
    /// a window TVF); the callee may take the datums out of the buffers. A
    /// row whose expressions fail is dead-lettered.
    fn for_each(&mut self, row: &Row, dead_letters: &DeadLetters, mut each: impl FnMut(&mut Vec<Datum>, &mut Vec<Datum>)) {
        let GroupArguments {
            windowing,
            keys,
            args,
            key,
            arguments,
            scratch,
        } = self;
        let mut failure = None;
        let mut emit = |view: RowView| {
            let built = keys.build_into(view, scratch, key).and_then(|()| args.build_into(view, scratch, arguments));
            match built {
                Ok(()) => each(key, arguments),
                Err(error) => failure = Some(error),
            }
        };
        match windowing.as_mut() {
            Some(windowing) => windowing.for_each(row, &mut emit),
            None => emit(RowView { row, window: &[] }),
        }
        if let Some(error) = failure {
            dead_letters.push(eval_failure("Aggregate", row, &error.to_string()));
        }
    }
}

/// Maps rows to `(group key, aggregate arguments ++ [event time])`.
fn keyed_arguments<'s>(input: Collection<'s>, mut arguments: GroupArguments, dead_letters: DeadLetters) -> VecCollection<'s, Epoch, (Row, Row), Diff> {
    input.flat_map(move |row| {
        let mut produced = Produced::default();
        arguments.for_each(&row, &dead_letters, |key, args| {
            produced.push((key.drain(..).collect(), args.drain(..).collect()))
        });
        produced
    })
}

/// Folds an append-only input's rows per epoch and group into partial
/// states on the worker that reads them ([`combine_per_epoch`]).
fn combined_arguments<'s>(
    input: Collection<'s>,
    mut arguments: GroupArguments,
    specs: Vec<carbonflow_operators::AggregateSpec>,
    dead_letters: DeadLetters,
) -> VecCollection<'s, Epoch, (Row, GroupAccumulator), Diff> {
    let new_combiner = move || Combiner::new(&specs).expect("the planner combines only aggregates with an append-only form");
    combine_per_epoch(input.inner, "Combine", new_combiner, move |row: Row, diff, combiner| {
        arguments.for_each(&row, &dead_letters, |key, args| combiner.update(key, args, diff));
    })
    .as_collection()
}

/// A row as expressions see it: its own columns, then (under a window TVF)
/// `window_start`, `window_end`, `window_time`, without copying them together.
#[derive(Clone, Copy)]
struct RowView<'a> {
    row: &'a [Datum],
    window: &'a [Datum],
}

impl RowView<'_> {
    fn get(&self, index: usize) -> &Datum {
        self.row.get(index).unwrap_or_else(|| &self.window[index - self.row.len()])
    }
}

/// Expressions that build one output row. Plain column references and
/// constants (nearly every group key and aggregate argument) are copied
/// straight from the row; only a general expression makes the view contiguous
/// (in a reused buffer) and evaluates.
struct RowBuilder {
    steps: Vec<Step>,
    general: bool,
}

enum Step {
    Column(usize),
    Literal(Datum),
    Expr(Expr),
}

impl RowBuilder {
    fn new(exprs: &[Expr]) -> Self {
        let steps: Vec<Step> = exprs
            .iter()
            .map(|e| match e {
                Expr::Column(index) => Step::Column(*index),
                Expr::Literal(datum) => Step::Literal(datum.clone()),
                other => Step::Expr(other.clone()),
            })
            .collect();
        let general = steps.iter().any(|s| matches!(s, Step::Expr(_)));
        RowBuilder { steps, general }
    }

    /// The output row for `view`, allocated once.
    fn build(&self, view: RowView, scratch: &mut Vec<Datum>) -> Result<Row, crate::plan::expr::EvalError> {
        let mut datums = Vec::with_capacity(self.steps.len());
        self.build_into(view, scratch, &mut datums)?;
        Ok(Row::new(datums))
    }

    /// The output row for `view`, in place of what `datums` held.
    fn build_into(&self, view: RowView, scratch: &mut Vec<Datum>, datums: &mut Vec<Datum>) -> Result<(), crate::plan::expr::EvalError> {
        let contiguous: &[Datum] = if self.general && !view.window.is_empty() {
            scratch.clear();
            scratch.extend_from_slice(view.row);
            scratch.extend_from_slice(view.window);
            scratch
        } else {
            view.row
        };
        datums.clear();
        for step in &self.steps {
            datums.push(match step {
                Step::Column(index) => view.get(*index).clone(),
                Step::Literal(datum) => datum.clone(),
                Step::Expr(expr) => expr.eval(contiguous)?,
            });
        }
        Ok(())
    }
}

/// A TUMBLE, HOP or CUMULATE window applied row by row, with a reused buffer.
struct Windowing {
    window: WindowSpec,
    time_column: usize,
    windows: Vec<(Millis, Millis)>,
}

impl Windowing {
    fn new(window: WindowSpec, time_column: usize) -> Self {
        Windowing {
            window,
            time_column,
            windows: Vec::new(),
        }
    }

    /// Calls `f` once per window of `row`, with the row viewed as followed by
    /// `window_start`, `window_end` and `window_time` (`end - 1`, as in Flink).
    fn for_each(&mut self, row: &Row, mut f: impl FnMut(RowView)) {
        self.windows.clear();
        if let Some(ts) = row.get(self.time_column).as_timestamp() {
            self.window.assign(ts, &mut self.windows);
        }
        for &(start, end) in &self.windows {
            let bounds = [Datum::Timestamp(start), Datum::Timestamp(end), Datum::Timestamp(end - 1)];
            f(RowView { row, window: &bounds });
        }
    }
}

/// What one input row produces: usually one output, sometimes none or several
/// (HOP, CUMULATE), without a vector allocation in the common case.
#[derive(Default)]
enum Produced<T> {
    #[default]
    None,
    One(T),
    Many(Vec<T>),
}

impl<T> Produced<T> {
    fn push(&mut self, item: T) {
        *self = match std::mem::take(self) {
            Produced::None => Produced::One(item),
            Produced::One(first) => Produced::Many(vec![first, item]),
            Produced::Many(mut items) => {
                items.push(item);
                Produced::Many(items)
            }
        };
    }
}

impl<T> IntoIterator for Produced<T> {
    type Item = T;
    type IntoIter = std::iter::Chain<std::option::IntoIter<T>, std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            Produced::None => None.into_iter().chain(Vec::new()),
            Produced::One(item) => Some(item).into_iter().chain(Vec::new()),
            Produced::Many(items) => None.into_iter().chain(items),
        }
    }
}

fn eval_failure(operator: &str, row: &Row, detail: &str) -> DeadLetter {
    DeadLetter {
        origin: operator.to_owned(),
        reason: DeadLetterReason::Eval,
        detail: detail.to_owned(),
        position: "expression".into(),
        record: row.to_string(),
    }
}

/// The first failure of a run, shared by the workers so every one of them stops.
#[derive(Default)]
pub struct RunFailureSlot(std::sync::Mutex<Option<RunFailure>>);

impl RunFailureSlot {
    /// Records a failure (the first one wins).
    pub fn set(&self, failure: RunFailure) {
        let mut slot = self.0.lock().expect("failure slot");
        slot.get_or_insert(failure);
    }

    /// The failure, if any.
    pub fn get(&self) -> Option<RunFailure> {
        self.0.lock().expect("failure slot").clone()
    }

    /// Whether a failure was recorded.
    pub fn is_set(&self) -> bool {
        self.0.lock().expect("failure slot").is_some()
    }
}

/// Hands an output's consolidated changes to its sink, epoch by epoch, on
/// the workers that serve it (each update arrives addressed to its worker).
struct SinkCore {
    sink: Option<Box<dyn Sink>>,
    buffer: Vec<(Row, Diff)>,
    query: Arc<QueryShared>,
    changes: metrics::IntCounter,
    latency: Histogram,
    name: String,
}

impl SinkCore {
    fn check(&mut self, result: Result<(), carbonflow_sinks::SinkError>) {
        if let Err(error) = result {
            let failure = match error {
                carbonflow_sinks::SinkError::Closed { .. } => RunFailure::OutputClosed { sink: self.name.clone() },
                other => RunFailure::Sink {
                    sink: self.name.clone(),
                    message: other.to_string(),
                },
            };
            self.query.failure.set(failure);
            self.sink = None;
        }
    }
}

impl TimedCore for SinkCore {
    type Input = (u64, Row);

    fn on_update(&mut self, (_worker, row): (u64, Row), diff: Diff, _context: &mut CoreContext) {
        self.buffer.push((row, diff));
    }

    fn on_epoch_end(&mut self, epoch: Epoch, context: &mut CoreContext) {
        let Some(sink) = self.sink.as_mut() else {
            self.buffer.clear();
            return;
        };
        differential_dataflow::consolidation::consolidate(&mut self.buffer);
        let mut result = Ok(());
        if !self.buffer.is_empty() {
            result = sink.on_batch(epoch, &self.buffer);
            let changes = self.buffer.len() as u64;
            self.changes.inc_by(changes);
            self.query.rows_out.fetch_add(changes, std::sync::atomic::Ordering::Relaxed);
            if let Some(ingested) = self.query.ingest_instant(epoch) {
                self.latency.observe(ingested.elapsed().as_secs_f64());
            }
        }
        if result.is_ok() {
            result = sink.on_progress(epoch, Watermark(context.watermark));
        }
        self.buffer.clear();
        self.check(result);
    }

    fn on_finish(&mut self) {
        if let Some(mut sink) = self.sink.take() {
            let result = sink.finish();
            self.sink = Some(sink);
            self.check(result);
        }
    }
}
