//! The `simulator` connector: a seeded, multi-market real-time LMP feed, the
//! embedded default source that needs no server.
//!
//! ```sql
//! CREATE TABLE ticks (
//!   market STRING, node STRING, ts TIMESTAMP(3), price DOUBLE, revision BIGINT,
//!   WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE,
//!   PRIMARY KEY (market, node, ts) NOT ENFORCED
//! ) WITH (
//!   'connector' = 'simulator',
//!   'seed' = '42', 'nodes' = '1000', 'markets' = 'PJM,ERCOT',
//!   'interval' = '5 min', 'start' = '2024-01-01 00:00:00',
//!   'number-of-rows' = '1000000', 'rows-per-second' = '50000',
//!   'revision-probability' = '0.001'
//! )
//! ```
//!
//! The table may declare any subset of the canonical tick's columns, by name
//! (case-insensitive), with their types: `market STRING, node STRING,
//! node_type STRING, ts TIMESTAMP, interval_s BIGINT, price DOUBLE, energy
//! DOUBLE, congestion DOUBLE, loss DOUBLE, currency STRING, unit STRING, run
//! STRING, revision BIGINT`. How prices move is described in [`model`].
//!
//! One more column is the simulator's own: `ingest_ns BIGINT`, the wall-clock
//! time (nanoseconds since the Unix epoch) at which the instance emitted the
//! row. It is not part of the canonical tick and is not deterministic; latency
//! harnesses carry it through a query to measure ingest-to-client time.
//!
//! Stream shape and determinism:
//! * `nodes` nodes are split over the markets in contiguous blocks; each
//!   market's first nodes are real-looking hubs and zones, then generated
//!   `GEN`/`LOAD` nodes named like `PJM-N00042`.
//! * Interval `k` starts at `start + k * interval`, where `start` is rounded
//!   down to a multiple of the interval (intervals begin on their boundary,
//!   as at the ISOs). `interval_s` is the interval in whole seconds.
//! * Node `i` is produced by the worker with `worker_index == i % peers`, from
//!   its own generator; the market paths are computed identically on every
//!   worker. The union of all workers' rows is thus the same for any worker
//!   count. Within an instance rows come interval by interval, nodes in order.
//! * `number-of-rows` cuts the global order, interval-major and node-minor:
//!   tick `(k, i)` is emitted iff `k * nodes + i` is below the limit.
//!   Revisions are not counted; an instance finishes once it has emitted its
//!   last tick and every revision pending for it.
//! * With `revision-probability` a tick is republished one to three intervals
//!   later (at its node's turn in that interval) with the same market, node and
//!   ts, `revision + 1` and slightly corrected components. A revision may itself
//!   be revised.
//! * `rows-per-second` paces the total (revisions included) over all
//!   instances, each taking `rate / peers`.

pub mod model;

use std::time::{Duration, Instant};

use carbonflow_core::time::parse_timestamp;
use carbonflow_core::{ConnectorConfig, DataType, Datum, Field, Interner, Millis, OptionError, Row, Str};

use crate::tick::TickColumn;

use self::model::{Market, MarketModel, NodeDynamics, NodeModel, Tick};
use crate::{Source, SourceBatch, SourceContext, SourceError, SourceStatus};

const OPTIONS: &[&str] = &[
    "seed",
    "nodes",
    "markets",
    "interval",
    "start",
    "number-of-rows",
    "rows-per-second",
    "revision-probability",
];

/// The checked options of a `simulator` table.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatorOptions {
    /// The seed of every generator (`seed`, default 42).
    pub seed: u64,
    /// Nodes across all markets (`nodes`, default 1000).
    pub nodes: u64,
    /// The markets, in order (`markets`, default `PJM,MISO,SPP,ERCOT`).
    pub markets: Vec<Market>,
    /// Simulated time between a node's ticks, in milliseconds (`interval`, default `'5 min'`).
    pub interval_ms: Millis,
    /// The first interval's start, rounded down to a multiple of the interval
    /// (`start`, default `2024-01-01 00:00:00`).
    pub start: Millis,
    /// Total first publications over all instances (`number-of-rows`); `None` is unbounded.
    pub number_of_rows: Option<u64>,
    /// Total rows per second over all instances (`rows-per-second`); `None` is as fast as possible.
    pub rows_per_second: Option<f64>,
    /// The chance that a publication is later revised (`revision-probability`, default 0.001).
    pub revision_probability: f64,
    /// The declared columns, in order.
    pub columns: Vec<SimulatorColumn>,
}

/// A column a simulator table may declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimulatorColumn {
    /// A canonical tick column.
    Tick(TickColumn),
    /// `ingest_ns BIGINT`: when the row was emitted, wall-clock nanoseconds since the Unix epoch.
    IngestNs,
}

impl SimulatorColumn {
    /// The name of the [`SimulatorColumn::IngestNs`] column.
    pub const INGEST_NS: &str = "ingest_ns";

    fn resolve(field: &Field) -> Result<Self, OptionError> {
        if !field.name.eq_ignore_ascii_case(Self::INGEST_NS) {
            return TickColumn::resolve_field(field, "the simulator").map(SimulatorColumn::Tick);
        }
        if field.data_type != DataType::Int {
            return Err(OptionError::Column {
                column: field.name.clone(),
                message: format!("the simulator's {} is {}, not {}", Self::INGEST_NS, DataType::Int, field.data_type),
            });
        }
        Ok(SimulatorColumn::IngestNs)
    }
}

impl SimulatorOptions {
    /// Checks the options and the declared columns.
    pub fn parse(config: &ConnectorConfig) -> Result<Self, OptionError> {
        config.reject_unknown_options(OPTIONS)?;
        let columns = config.schema.fields.iter().map(SimulatorColumn::resolve).collect::<Result<Vec<_>, _>>()?;
        let start = config.parsed("start", "timestamp", parse_timestamp)?.unwrap_or(1_704_067_200_000);
        let interval_ms = config
            .parsed("interval", "interval (a positive integer and ms, s, min or h, e.g. '5 min')", parse_interval)?
            .unwrap_or(300_000);
        Ok(SimulatorOptions {
            seed: config
                .parsed("seed", "seed (an unsigned integer)", |text| text.trim().parse().ok())?
                .unwrap_or(42),
            nodes: config
                .parsed("nodes", "node count (a positive integer)", |text| text.trim().parse().ok().filter(|n| *n > 0))?
                .unwrap_or(1000),
            markets: config
                .parsed(
                    "markets",
                    "market list (comma-separated, from PJM, MISO, SPP, ERCOT, no repeats)",
                    parse_markets,
                )?
                .unwrap_or(Market::ALL.to_vec()),
            interval_ms,
            start: start - start.rem_euclid(interval_ms),
            number_of_rows: config.parsed("number-of-rows", "row count (an unsigned integer)", |text| text.trim().parse().ok())?,
            rows_per_second: config
                .parsed("rows-per-second", "rate (a non-negative number)", |text| {
                    text.trim().parse::<f64>().ok().filter(|r| r.is_finite() && *r >= 0.0)
                })?
                .filter(|rate| *rate > 0.0),
            revision_probability: config
                .parsed("revision-probability", "probability (a number from 0 to 1)", |text| {
                    text.trim().parse::<f64>().ok().filter(|p| (0.0..=1.0).contains(p))
                })?
                .unwrap_or(0.001),
            columns,
        })
    }
}

/// `'5 min'`, `'1 s'`, `'100 ms'`, `'2h'` in milliseconds.
fn parse_interval(text: &str) -> Option<Millis> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let amount: Millis = text[..digits].parse().ok()?;
    let unit = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    amount.checked_mul(unit).filter(|ms| *ms > 0)
}

fn parse_markets(text: &str) -> Option<Vec<Market>> {
    let mut markets = Vec::new();
    for code in text.split(',') {
        let market = *Market::ALL.iter().find(|market| market.code().eq_ignore_ascii_case(code.trim()))?;
        if markets.contains(&market) {
            return None;
        }
        markets.push(market);
    }
    Some(markets)
}

/// Opens the instance of the simulator that produces this worker's nodes.
pub fn open(config: &ConnectorConfig, context: SourceContext) -> Result<Box<dyn Source>, SourceError> {
    let options = SimulatorOptions::parse(config)?;
    Ok(Box::new(Simulator::new(options, context)))
}

/// Strings shared by every row.
struct Constants {
    markets: Vec<Str>,
    usd: Str,
    mwh: Str,
    rt: Str,
}

/// A `simulator` source instance.
struct Simulator {
    options: SimulatorOptions,
    constants: Constants,
    markets: Vec<MarketModel>,
    /// This instance's nodes, ascending by global index.
    nodes: Vec<NodeModel>,
    dynamics: NodeDynamics,
    /// The interval being produced, and the next of this instance's nodes in it.
    interval: u64,
    cursor: usize,
    /// The system energy price of each market in the current interval.
    energies: Vec<f64>,
    /// Rows of the last node that did not fit in the previous batch.
    overflow: Vec<Row>,
    /// Revisions due this interval for the current node (a reused buffer).
    revisions: Vec<Tick>,
    /// Revisions pending over all nodes.
    pending_revisions: usize,
    throttle: Option<Throttle>,
}

impl Simulator {
    fn new(options: SimulatorOptions, context: SourceContext) -> Self {
        let mut interner = Interner::default();
        let peers = context.peers.max(1) as u64;
        let market_count = options.markets.len() as u64;
        let mut nodes = Vec::new();
        for (slot, market) in options.markets.iter().enumerate() {
            let (first, end) = (options.nodes * slot as u64 / market_count, options.nodes * (slot as u64 + 1) / market_count);
            for index in (first..end).filter(|index| index % peers == context.worker_index as u64) {
                nodes.push(NodeModel::new(options.seed, index, *market, slot, (index - first) as usize, &mut interner));
            }
        }
        let constants = Constants {
            markets: options.markets.iter().map(|market| interner.intern(market.code())).collect(),
            usd: interner.intern("USD"),
            mwh: interner.intern("MWh"),
            rt: interner.intern("RT"),
        };
        Simulator {
            markets: options
                .markets
                .iter()
                .map(|market| MarketModel::new(*market, options.seed, options.interval_ms))
                .collect(),
            energies: vec![0.0; options.markets.len()],
            dynamics: NodeDynamics::new(options.interval_ms, options.revision_probability),
            throttle: options.rows_per_second.map(|rate| Throttle {
                rate: rate / peers as f64,
                start: None,
                emitted: 0,
            }),
            options,
            constants,
            nodes,
            interval: 0,
            cursor: 0,
            overflow: Vec::new(),
            revisions: Vec::new(),
            pending_revisions: 0,
        }
    }

    /// Whether tick `(interval, node)` is within `number-of-rows`.
    fn emits(&self, interval: u64, node: u64) -> bool {
        self.options
            .number_of_rows
            .is_none_or(|limit| interval.saturating_mul(self.options.nodes).saturating_add(node) < limit)
    }

    /// Whether nothing is left. The next tick position has the smallest
    /// global index of all positions to come, so if it is past the limit, so
    /// are all the others.
    fn exhausted(&self) -> bool {
        self.overflow.is_empty() && self.pending_revisions == 0 && self.nodes.get(self.cursor).is_none_or(|node| !self.emits(self.interval, node.index))
    }

    fn row(&self, node: &NodeModel, tick: &Tick, ingest_ns: i64) -> Row {
        let interval_ms = self.options.interval_ms;
        self.options
            .columns
            .iter()
            .map(|column| match column {
                SimulatorColumn::IngestNs => Datum::Int(ingest_ns),
                SimulatorColumn::Tick(column) => match column {
                    TickColumn::Market => Datum::Str(self.constants.markets[node.market].clone()),
                    TickColumn::Node => Datum::Str(node.name.clone()),
                    TickColumn::NodeType => Datum::Str(node.node_type.clone()),
                    TickColumn::Ts => Datum::Timestamp(self.options.start.saturating_add((tick.interval as Millis).saturating_mul(interval_ms))),
                    TickColumn::IntervalS => Datum::Int(interval_ms / 1000),
                    TickColumn::Price => Datum::float(tick.price),
                    TickColumn::Energy => Datum::float(tick.energy),
                    TickColumn::Congestion => Datum::float(tick.congestion),
                    TickColumn::Loss => Datum::float(tick.loss),
                    TickColumn::Currency => Datum::Str(self.constants.usd.clone()),
                    TickColumn::Unit => Datum::Str(self.constants.mwh.clone()),
                    TickColumn::Run => Datum::Str(self.constants.rt.clone()),
                    TickColumn::Revision => Datum::Int(tick.revision),
                },
            })
            .collect()
    }

    /// Produces up to `max_rows` rows into `batch`.
    fn generate(&mut self, batch: &mut SourceBatch, max_rows: usize) {
        let ingest_ns = wall_clock_ns();
        let take = self.overflow.len().min(max_rows);
        batch.rows.extend(self.overflow.drain(..take));
        let mut budget = max_rows - take;
        while budget > 0 && !self.exhausted() {
            if self.cursor == 0 {
                let ts = self
                    .options
                    .start
                    .saturating_add((self.interval as Millis).saturating_mul(self.options.interval_ms));
                for (energy, market) in self.energies.iter_mut().zip(&mut self.markets) {
                    *energy = market.step(ts);
                }
            }
            let interval = self.interval;
            let emits = self.emits(interval, self.nodes[self.cursor].index);
            let node = &mut self.nodes[self.cursor];
            let pending_before = node.pending_revisions();
            let tick = emits.then(|| node.tick(interval, self.energies[node.market], &self.dynamics));
            let mut revisions = std::mem::take(&mut self.revisions);
            node.due_revisions(interval, &self.dynamics, &mut revisions);
            self.pending_revisions = self.pending_revisions + node.pending_revisions() - pending_before;
            let node = &self.nodes[self.cursor];
            for tick in tick.iter().chain(&revisions) {
                let row = self.row(node, tick, ingest_ns);
                if budget > 0 {
                    batch.rows.push(row);
                    budget -= 1;
                } else {
                    self.overflow.push(row);
                }
            }
            revisions.clear();
            self.revisions = revisions;
            self.cursor += 1;
            if self.cursor == self.nodes.len() {
                self.cursor = 0;
                self.interval += 1;
            }
        }
    }
}

/// Nanoseconds since the Unix epoch, by the wall clock.
fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
}

/// Paces an instance at `rate` rows per second from its first poll.
struct Throttle {
    rate: f64,
    start: Option<Instant>,
    emitted: u64,
}

impl Throttle {
    /// How many rows may go now, and how long until the next one otherwise.
    fn allowance(&mut self, now: Instant) -> (u64, Duration) {
        let start = *self.start.get_or_insert(now);
        let due = (now.duration_since(start).as_secs_f64() * self.rate) as u64 + 1;
        let allowed = due.saturating_sub(self.emitted);
        let next = Duration::from_secs_f64(self.emitted as f64 / self.rate).saturating_sub(now.duration_since(start));
        (allowed, next)
    }
}

/// The longest a paced poll sleeps before returning [`SourceStatus::Idle`].
const MAX_SLEEP: Duration = Duration::from_millis(1);

impl Source for Simulator {
    fn poll(&mut self, batch: &mut SourceBatch, max_rows: usize) -> Result<SourceStatus, SourceError> {
        if self.exhausted() {
            return Ok(SourceStatus::Finished);
        }
        let budget = match self.throttle.as_mut() {
            None => max_rows,
            Some(throttle) => {
                let (allowed, wait) = throttle.allowance(Instant::now());
                if allowed == 0 {
                    std::thread::sleep(wait.min(MAX_SLEEP));
                    return Ok(SourceStatus::Idle);
                }
                max_rows.min(usize::try_from(allowed).unwrap_or(usize::MAX))
            }
        };
        let before = batch.rows.len();
        self.generate(batch, budget);
        if let Some(throttle) = self.throttle.as_mut() {
            throttle.emitted += (batch.rows.len() - before) as u64;
        }
        // Even an empty poll says Ready: the next one reports Finished, so the
        // last rows never travel with `Finished`.
        Ok(SourceStatus::Ready)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use carbonflow_core::{DataType, Field, Schema};

    use super::*;

    const ALL_COLUMNS: &[(&str, DataType)] = &[
        ("market", DataType::String),
        ("node", DataType::String),
        ("node_type", DataType::String),
        ("ts", DataType::Timestamp),
        ("interval_s", DataType::Int),
        ("price", DataType::Float),
        ("energy", DataType::Float),
        ("congestion", DataType::Float),
        ("loss", DataType::Float),
        ("currency", DataType::String),
        ("unit", DataType::String),
        ("run", DataType::String),
        ("revision", DataType::Int),
    ];

    fn table(columns: &[(&str, DataType)], options: &[(&str, &str)]) -> ConnectorConfig {
        let mut map = BTreeMap::from([("connector".to_owned(), "simulator".to_owned())]);
        map.extend(options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        ConnectorConfig {
            table: "ticks".into(),
            schema: Schema::new(columns.iter().map(|(name, data_type)| Field::new(*name, *data_type)).collect()),
            event_time_column: None,
            primary_key: None,
            options: map,
        }
    }

    fn read_all(config: &ConnectorConfig, context: SourceContext) -> Vec<Row> {
        let mut source = crate::create_source(config, context).expect("simulator opens");
        let mut batch = SourceBatch::default();
        let mut rows = Vec::new();
        loop {
            batch.clear();
            let status = source.poll(&mut batch, 1000).expect("poll");
            assert!(batch.rows.len() <= 1000);
            rows.append(&mut batch.rows);
            if status == SourceStatus::Finished {
                return rows;
            }
        }
    }

    /// A tick as plain values, by column name.
    struct View<'a>(&'a Row);

    impl<'a> View<'a> {
        fn text(&self, column: &str) -> &'a str {
            self.0.get(index(column)).as_str().expect("string column")
        }
        fn float(&self, column: &str) -> f64 {
            self.0.get(index(column)).as_f64().expect("float column")
        }
        fn int(&self, column: &str) -> i64 {
            self.0.get(index(column)).as_i64().expect("int column")
        }
        fn ts(&self) -> Millis {
            self.0.get(index("ts")).as_timestamp().expect("ts")
        }
        fn key(&self) -> (String, String, Millis) {
            (self.text("market").to_owned(), self.text("node").to_owned(), self.ts())
        }
    }

    fn index(column: &str) -> usize {
        ALL_COLUMNS.iter().position(|(name, _)| *name == column).expect("known column")
    }

    const START: Millis = 1_704_067_200_000;

    #[test]
    fn same_seed_same_rows_and_another_seed_other_rows() {
        let options = [("nodes", "30"), ("number-of-rows", "3000"), ("revision-probability", "0.05")];
        let a = read_all(&table(ALL_COLUMNS, &options), SourceContext::SINGLE);
        let b = read_all(&table(ALL_COLUMNS, &options), SourceContext::SINGLE);
        assert_eq!(a, b);
        let c = read_all(
            &table(
                ALL_COLUMNS,
                &[("seed", "7"), ("nodes", "30"), ("number-of-rows", "3000"), ("revision-probability", "0.05")],
            ),
            SourceContext::SINGLE,
        );
        assert_ne!(a, c);
    }

    #[test]
    fn the_union_over_workers_is_the_same_for_1_2_and_4_workers() {
        let config = table(ALL_COLUMNS, &[("nodes", "37"), ("number-of-rows", "4001"), ("revision-probability", "0.05")]);
        let mut single = read_all(&config, SourceContext::SINGLE);
        single.sort();
        for peers in [2, 4] {
            let mut union: Vec<Row> = (0..peers)
                .flat_map(|worker_index| read_all(&config, SourceContext::worker(worker_index, peers)))
                .collect();
            union.sort();
            assert_eq!(union, single, "{peers} workers");
        }
    }

    #[test]
    fn number_of_rows_cuts_the_global_order_exactly() {
        let nodes = 40;
        for (limit, peers) in [(1000u64, 1), (1013, 3), (7, 2), (0, 1)] {
            let limit_text = limit.to_string();
            let config = table(
                ALL_COLUMNS,
                &[("nodes", "40"), ("number-of-rows", &limit_text), ("revision-probability", "0.01")],
            );
            let rows: Vec<Row> = (0..peers)
                .flat_map(|worker_index| read_all(&config, SourceContext::worker(worker_index, peers)))
                .collect();
            let mut per_interval: BTreeMap<Millis, u64> = BTreeMap::new();
            for row in rows.iter().map(View).filter(|row| row.int("revision") == 0) {
                *per_interval.entry(row.ts()).or_default() += 1;
            }
            assert_eq!(per_interval.values().sum::<u64>(), limit, "limit {limit}, {peers} workers");
            for (k, (ts, count)) in per_interval.iter().enumerate() {
                assert_eq!(*ts, START + k as Millis * 300_000, "intervals come without gaps");
                assert_eq!(*count, (limit - k as u64 * nodes).min(nodes), "every interval is full but the last");
            }
        }
    }

    #[test]
    fn prices_add_up_to_the_cent_and_rows_are_canonical() {
        let config = table(ALL_COLUMNS, &[("nodes", "20"), ("number-of-rows", "20000"), ("start", "2024-03-01 00:02:30")]);
        let first = carbonflow_core::time::parse_timestamp("2024-03-01 00:00:00").unwrap();
        for row in read_all(&config, SourceContext::SINGLE).iter().map(View) {
            let (price, energy, congestion, loss) = (row.float("price"), row.float("energy"), row.float("congestion"), row.float("loss"));
            assert!((price - (energy + congestion + loss)).abs() < 0.005, "{:?}", row.0);
            for value in [price, energy, congestion, loss] {
                assert!(((value * 100.0).round() - value * 100.0).abs() < 1e-6, "{value} is in cents");
            }
            assert!(loss.abs() <= 0.06 * energy.abs() + 0.01, "loss is a small fraction of energy: {:?}", row.0);
            assert_eq!((row.ts() - first) % 300_000, 0, "ts is an interval start");
            assert!(row.ts() >= first);
            assert_eq!(row.int("interval_s"), 300);
            assert_eq!((row.text("currency"), row.text("unit"), row.text("run")), ("USD", "MWh", "RT"));
            assert!(["HUB", "ZONE", "GEN", "LOAD"].contains(&row.text("node_type")));
        }
    }

    #[test]
    fn nodes_have_real_hub_names_then_generated_ones() {
        let config = table(ALL_COLUMNS, &[("nodes", "80"), ("number-of-rows", "80")]);
        let rows = read_all(&config, SourceContext::SINGLE);
        let names: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(View)
            .map(|row| (row.text("market"), row.text("node"), row.text("node_type")))
            .collect();
        assert_eq!(names.len(), 80);
        assert_eq!(names[0], ("PJM", "PJM-WESTERN HUB", "HUB"));
        assert_eq!(names[1], ("PJM", "AEP-DAYTON HUB", "HUB"));
        assert_eq!(names[20].0, "MISO");
        assert_eq!(names[20].1, "MISO-ILLINOIS.HUB");
        assert_eq!(names[40].1, "SPP-NORTH HUB");
        assert_eq!(names[60].1, "HB_NORTH");
        assert_eq!(names[19].1, "PJM-N00019");
        assert!(["GEN", "LOAD"].contains(&names[19].2));
        let distinct: std::collections::HashSet<_> = names.iter().map(|(market, node, _)| (*market, *node)).collect();
        assert_eq!(distinct.len(), 80, "node names are unique");
        // Strings are shared, not allocated per row.
        let later = read_all(&table(ALL_COLUMNS, &[("nodes", "80"), ("number-of-rows", "160")]), SourceContext::SINGLE);
        let (Datum::Str(a), Datum::Str(b)) = (later[0].get(1), later[80].get(1)) else {
            panic!("strings")
        };
        assert!(std::sync::Arc::ptr_eq(a, b));
    }

    #[test]
    fn revisions_correct_an_earlier_tick_one_to_three_intervals_later() {
        let config = table(ALL_COLUMNS, &[("nodes", "25"), ("number-of-rows", "5000"), ("revision-probability", "0.2")]);
        let rows = read_all(&config, SourceContext::SINGLE);
        let last_interval = START + (5000 / 25 - 1) * 300_000;
        let mut seen: HashMap<(String, String, Millis), (i64, f64)> = HashMap::new();
        let (mut current, mut revisions) = (START, 0);
        for row in rows.iter().map(View) {
            let revision = row.int("revision");
            let previous = seen.insert(row.key(), (revision, row.float("price")));
            if revision == 0 {
                assert!(previous.is_none(), "one first publication per key");
                current = row.ts();
                continue;
            }
            revisions += 1;
            let (earlier, price) = previous.expect("a revision follows the publication it corrects");
            assert_eq!(earlier, revision - 1);
            assert!((price - row.float("price")).abs() < 25.0, "a correction is slight");
            if revision == 1 && current < last_interval {
                let delay = (current - row.ts()) / 300_000;
                assert!((1..=3).contains(&delay), "first revision {delay} intervals later");
            }
        }
        assert!((700..=1400).contains(&revisions), "about 20% + 4% + ... of 5000 ticks are revised: {revisions}");
        let none = read_all(
            &table(ALL_COLUMNS, &[("nodes", "25"), ("number-of-rows", "5000"), ("revision-probability", "0")]),
            SourceContext::SINGLE,
        );
        assert_eq!(none.len(), 5000);
    }

    #[test]
    fn prices_follow_a_daily_shape_and_go_negative_mostly_in_spp_and_ercot() {
        // 60 days of hourly ticks at 40 nodes.
        let config = table(
            ALL_COLUMNS,
            &[("nodes", "40"), ("interval", "1 h"), ("number-of-rows", "57600"), ("revision-probability", "0")],
        );
        let mut by_market_hour: HashMap<(String, i64), (f64, u32)> = HashMap::new();
        let mut negative: HashMap<String, u32> = HashMap::new();
        let mut energies: HashMap<String, Vec<f64>> = HashMap::new();
        for row in read_all(&config, SourceContext::SINGLE).iter().map(View) {
            let market = row.text("market").to_owned();
            let utc_hour = (row.ts() / 3_600_000).rem_euclid(24);
            let entry = by_market_hour.entry((market.clone(), utc_hour)).or_default();
            entry.0 += row.float("energy");
            entry.1 += 1;
            if row.float("price") < 0.0 {
                *negative.entry(market.clone()).or_default() += 1;
            }
            energies.entry(market).or_default().push(row.float("energy"));
        }
        let mean = |market: &str, local_hour: i64, offset: i64| {
            let (sum, count) = by_market_hour[&(market.to_owned(), (local_hour - offset).rem_euclid(24))];
            sum / f64::from(count)
        };
        for (market, offset) in [("PJM", -5), ("MISO", -6), ("SPP", -6), ("ERCOT", -6)] {
            let (night, evening) = (mean(market, 4, offset), mean(market, 19, offset));
            assert!((10.0..32.0).contains(&night), "{market} night trough {night}");
            assert!((45.0..95.0).contains(&evening), "{market} evening peak {evening}");
        }
        let spread = |market: &str| {
            let values = &energies[market];
            let average = values.iter().sum::<f64>() / values.len() as f64;
            (values.iter().map(|v| (v - average).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
        };
        assert!(spread("ERCOT") > spread("PJM"), "ERCOT is more volatile");
        let count = |market: &str| negative.get(market).copied().unwrap_or(0);
        assert!(count("SPP") + count("ERCOT") > 0, "negative prices happen");
        assert!(count("SPP") + count("ERCOT") > 3 * (count("PJM") + count("MISO")), "{negative:?}");
    }

    #[test]
    fn a_subset_of_columns_in_any_order_and_case() {
        let config = table(
            &[("PRICE", DataType::Float), ("Node", DataType::String)],
            &[("nodes", "4"), ("number-of-rows", "8"), ("markets", "ercot")],
        );
        let rows = read_all(&config, SourceContext::SINGLE);
        assert_eq!(rows.len(), 8);
        assert!(
            rows.iter()
                .all(|row| row.len() == 2 && row.get(0).as_f64().is_some() && row.get(1).as_str().is_some())
        );
        assert_eq!(rows[0].get(1).as_str(), Some("HB_NORTH"));
    }

    #[test]
    fn ingest_ns_is_the_wall_clock_at_emission() {
        let config = table(
            &[("node", DataType::String), ("INGEST_NS", DataType::Int)],
            &[("nodes", "4"), ("number-of-rows", "8")],
        );
        let before = wall_clock_ns();
        let rows = read_all(&config, SourceContext::SINGLE);
        let after = wall_clock_ns();
        assert_eq!(rows.len(), 8);
        for row in &rows {
            let stamp = row.get(1).as_i64().unwrap();
            assert!((before..=after).contains(&stamp), "{stamp} outside {before}..={after}");
        }
        let wrong_type = table(&[("ingest_ns", DataType::Timestamp)], &[]);
        assert_eq!(crate::validate_source(&wrong_type).unwrap_err().column(), Some("ingest_ns"));
    }

    #[test]
    fn bad_columns_and_options_are_rejected() {
        let unknown = table(&[("price", DataType::Float), ("foo", DataType::Int)], &[]);
        assert_eq!(crate::validate_source(&unknown).unwrap_err().column(), Some("foo"));
        let wrong_type = table(&[("price", DataType::Int)], &[]);
        let error = crate::validate_source(&wrong_type).unwrap_err();
        assert_eq!(error.column(), Some("price"), "{error}");
        for (key, value) in [
            ("markets", "PJM,FOO"),
            ("markets", "PJM,pjm"),
            ("markets", ""),
            ("interval", "5 minutes"),
            ("interval", "0 s"),
            ("interval", "min"),
            ("nodes", "0"),
            ("seed", "-1"),
            ("revision-probability", "1.5"),
            ("rows-per-second", "-3"),
            ("number-of-rows", "many"),
            ("start", "tomorrow"),
        ] {
            let config = table(ALL_COLUMNS, &[(key, value)]);
            assert!(
                matches!(crate::validate_source(&config), Err(OptionError::Invalid { key: k, .. }) if k == key),
                "{key} = {value}"
            );
        }
        let typo = table(ALL_COLUMNS, &[("row-per-second", "10")]);
        assert!(matches!(crate::validate_source(&typo), Err(OptionError::Unknown { .. })));
        let options = SimulatorOptions::parse(&table(ALL_COLUMNS, &[("interval", "100 ms"), ("markets", " spp , PJM")])).unwrap();
        assert_eq!((options.interval_ms, options.markets), (100, vec![Market::Spp, Market::Pjm]));
        assert_eq!(parse_interval("2h"), Some(7_200_000));
        assert_eq!(parse_interval("1 S"), Some(1000));
    }

    #[test]
    fn instances_without_nodes_finish_at_once() {
        let config = table(ALL_COLUMNS, &[("nodes", "2")]);
        let mut source = crate::create_source(&config, SourceContext::worker(3, 4)).unwrap();
        assert_eq!(source.poll(&mut SourceBatch::default(), 10).unwrap(), SourceStatus::Finished);
    }

    #[test]
    fn rows_per_second_paces_each_instance_at_its_share() {
        // 40 000 rows/s over 2 workers: 1000 rows on one instance take ~50 ms.
        let config = table(ALL_COLUMNS, &[("nodes", "100"), ("rows-per-second", "40000"), ("revision-probability", "0")]);
        let mut source = crate::create_source(&config, SourceContext::worker(0, 2)).unwrap();
        let start = Instant::now();
        let (mut rows, mut idle) = (0, 0);
        let mut batch = SourceBatch::default();
        while rows < 1000 {
            batch.clear();
            let poll_start = Instant::now();
            if source.poll(&mut batch, 100).unwrap() == SourceStatus::Idle {
                idle += 1;
            }
            assert!(
                poll_start.elapsed() < Duration::from_millis(200),
                "a poll never blocks for long (generous for a loaded machine)"
            );
            rows += batch.rows.len();
        }
        let elapsed = start.elapsed();
        assert!(idle >= 5, "the source waits in short idle polls, not by blocking: {idle}");
        assert!(elapsed >= Duration::from_millis(45), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }
}
