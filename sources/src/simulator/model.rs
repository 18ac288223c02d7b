//! The price model of the simulator: a system energy price per market and a
//! congestion and loss component per node.
//!
//! * Energy: each market's system price mean-reverts (an Ornstein-Uhlenbeck
//!   process, stepped exactly so any interval length behaves the same) around
//!   a daily shape: a night trough, a morning shoulder and an evening peak,
//!   scaled to the market's level, in the market's local time. A fixed UTC
//!   offset per market is enough here: a simulator does not need DST-exact
//!   shapes. Rare positive scarcity spikes decay over about half an hour
//!   (most often in ERCOT). SPP and ERCOT have low, volatile night troughs, so
//!   negative prices show up there at night and almost never elsewhere.
//! * Congestion: per node, a small fixed bias plus small mean-reverting noise,
//!   plus a jump process: spikes (mostly positive at loads, mostly negative at
//!   generators, rarely large) that decay exponentially. Hubs see little of it.
//! * Loss: a fixed per-node fraction of energy (marginal loss factor).
//!
//! The components are rounded to cents and the price is their sum, so
//! `price = energy + congestion + loss` holds to the cent.
//!
//! Randomness: each node draws from its own generator seeded from
//! `(seed, global node index)` and each market from `(seed, market)`, so a
//! node's ticks do not depend on which other nodes or workers exist.

use carbonflow_core::{Interner, Millis, Str};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Exp1, StandardNormal};

/// A market the simulator knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Market {
    /// PJM Interconnection (US Mid-Atlantic), prices in Eastern time.
    Pjm,
    /// Midcontinent ISO, prices in Central time.
    Miso,
    /// Southwest Power Pool, prices in Central time.
    Spp,
    /// ERCOT (Texas), prices in Central time.
    Ercot,
}

/// The kind of pricing node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeType {
    Hub,
    Zone,
    Gen,
    Load,
}

impl NodeType {
    fn as_str(self) -> &'static str {
        match self {
            NodeType::Hub => "HUB",
            NodeType::Zone => "ZONE",
            NodeType::Gen => "GEN",
            NodeType::Load => "LOAD",
        }
    }

    /// How strongly the node sees congestion, and how often a spike is positive.
    fn congestion(self) -> (f64, f64) {
        match self {
            NodeType::Hub => (0.3, 0.6),
            NodeType::Zone => (0.6, 0.65),
            NodeType::Gen => (1.3, 0.35),
            NodeType::Load => (1.0, 0.7),
        }
    }
}

/// The shape of a day, 0 at the night trough and 1 at the evening peak, by
/// local hour; interpolated linearly in between.
const DAILY_SHAPE: [f64; 24] = [
    0.15, 0.08, 0.03, 0.0, 0.0, 0.05, 0.2, 0.38, 0.48, 0.45, 0.4, 0.37, 0.35, 0.35, 0.38, 0.45, 0.6, 0.8, 0.97, 1.0, 0.85, 0.6, 0.4, 0.25,
];

/// How a market's system price moves.
struct MarketParams {
    /// Local standard time as an offset from UTC, in hours.
    utc_offset_h: i64,
    /// Price at the night trough and at the evening peak, $/MWh.
    trough: f64,
    peak: f64,
    /// Stationary standard deviation and half-life of the deviation from the shape.
    sd: f64,
    half_life_h: f64,
    /// Scarcity spikes per hour and their mean size, $/MWh.
    spike_rate_h: f64,
    spike_mean: f64,
}

impl Market {
    /// Every market, in the default order.
    pub const ALL: [Market; 4] = [Market::Pjm, Market::Miso, Market::Spp, Market::Ercot];

    /// The market's code, as in the `market` column and the `markets` option.
    pub fn code(self) -> &'static str {
        match self {
            Market::Pjm => "PJM",
            Market::Miso => "MISO",
            Market::Spp => "SPP",
            Market::Ercot => "ERCOT",
        }
    }

    fn params(self) -> MarketParams {
        match self {
            Market::Pjm => MarketParams {
                utc_offset_h: -5,
                trough: 24.0,
                peak: 68.0,
                sd: 5.0,
                half_life_h: 2.0,
                spike_rate_h: 0.01,
                spike_mean: 40.0,
            },
            Market::Miso => MarketParams {
                utc_offset_h: -6,
                trough: 22.0,
                peak: 58.0,
                sd: 5.0,
                half_life_h: 2.0,
                spike_rate_h: 0.01,
                spike_mean: 40.0,
            },
            Market::Spp => MarketParams {
                utc_offset_h: -6,
                trough: 18.0,
                peak: 55.0,
                sd: 8.0,
                half_life_h: 1.5,
                spike_rate_h: 0.02,
                spike_mean: 40.0,
            },
            Market::Ercot => MarketParams {
                utc_offset_h: -6,
                trough: 21.0,
                peak: 70.0,
                sd: 11.0,
                half_life_h: 1.0,
                spike_rate_h: 0.05,
                spike_mean: 150.0,
            },
        }
    }

    /// Real-looking hubs and zones, the market's first nodes.
    fn named_nodes(self) -> &'static [(&'static str, NodeType)] {
        use NodeType::{Hub, Zone};
        match self {
            Market::Pjm => &[
                ("PJM-WESTERN HUB", Hub),
                ("AEP-DAYTON HUB", Hub),
                ("PJM-EASTERN HUB", Hub),
                ("DOMINION HUB", Hub),
                ("N ILLINOIS HUB", Hub),
                ("NEW JERSEY HUB", Hub),
                ("COMED", Zone),
                ("PSEG", Zone),
                ("BGE", Zone),
                ("PECO", Zone),
            ],
            Market::Miso => &[
                ("MISO-ILLINOIS.HUB", Hub),
                ("MISO-INDIANA.HUB", Hub),
                ("MISO-MICHIGAN.HUB", Hub),
                ("MISO-MINN.HUB", Hub),
                ("MISO-ARKANSAS.HUB", Hub),
                ("MISO-LOUISIANA.HUB", Hub),
                ("MISO-TEXAS.HUB", Hub),
            ],
            Market::Spp => &[
                ("SPP-NORTH HUB", Hub),
                ("SPP-SOUTH HUB", Hub),
                ("SPP-OKGE", Zone),
                ("SPP-WR", Zone),
                ("SPP-SPS", Zone),
            ],
            Market::Ercot => &[
                ("HB_NORTH", Hub),
                ("HB_HOUSTON", Hub),
                ("HB_SOUTH", Hub),
                ("HB_WEST", Hub),
                ("HB_PAN", Hub),
                ("LZ_NORTH", Zone),
                ("LZ_HOUSTON", Zone),
                ("LZ_SOUTH", Zone),
                ("LZ_WEST", Zone),
            ],
        }
    }
}

/// Mixes two words into a seed (SplitMix64's finaliser), so nearby inputs
/// give unrelated generators.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Keeps market and node seeds apart even for equal indices.
const MARKET_DOMAIN: u64 = 0x4D41_524B_4554_0000;

/// A mean-reverting process stepped at a fixed interval: `x' = phi x + noise`.
#[derive(Clone, Copy, Debug)]
struct Reversion {
    phi: f64,
    noise_sd: f64,
}

impl Reversion {
    fn new(sd: f64, half_life_h: f64, dt_h: f64) -> Self {
        let phi = (-dt_h * std::f64::consts::LN_2 / half_life_h).exp();
        Reversion {
            phi,
            noise_sd: sd * (1.0 - phi * phi).sqrt(),
        }
    }

    fn step(self, value: f64, rng: &mut SmallRng) -> f64 {
        value * self.phi + self.noise_sd * rng.sample::<f64, _>(StandardNormal)
    }
}

/// The probability of at least one event of a Poisson process in an interval.
fn chance(rate_h: f64, dt_h: f64) -> f64 {
    1.0 - (-rate_h * dt_h).exp()
}

/// The half-life of spikes, system and congestion alike.
const SPIKE_HALF_LIFE_H: f64 = 0.5;

/// A market's system energy price path.
pub(super) struct MarketModel {
    params: MarketParams,
    rng: SmallRng,
    deviation: f64,
    spike: f64,
    reversion: Reversion,
    spike_chance: f64,
    spike_decay: f64,
}

impl MarketModel {
    pub(super) fn new(market: Market, seed: u64, interval_ms: Millis) -> Self {
        let params = market.params();
        let dt_h = interval_ms as f64 / 3_600_000.0;
        let mut rng = SmallRng::seed_from_u64(mix(seed, MARKET_DOMAIN | market as u64));
        let deviation = params.sd * rng.sample::<f64, _>(StandardNormal);
        MarketModel {
            reversion: Reversion::new(params.sd, params.half_life_h, dt_h),
            spike_chance: chance(params.spike_rate_h, dt_h),
            spike_decay: Reversion::new(0.0, SPIKE_HALF_LIFE_H, dt_h).phi,
            params,
            rng,
            deviation,
            spike: 0.0,
        }
    }

    /// The system energy price of the interval starting at `ts`; called once
    /// per interval, in order.
    pub(super) fn step(&mut self, ts: Millis) -> f64 {
        self.deviation = self.reversion.step(self.deviation, &mut self.rng);
        self.spike *= self.spike_decay;
        if self.rng.random::<f64>() < self.spike_chance {
            self.spike += self.params.spike_mean * self.rng.sample::<f64, _>(Exp1);
        }
        let local_ms = (ts + self.params.utc_offset_h * 3_600_000).rem_euclid(86_400_000);
        let hour = local_ms as f64 / 3_600_000.0;
        let (index, fraction) = (hour as usize % 24, hour.fract());
        let shape = DAILY_SHAPE[index] + (DAILY_SHAPE[(index + 1) % 24] - DAILY_SHAPE[index]) * fraction;
        self.params.trough + (self.params.peak - self.params.trough) * shape + self.deviation + self.spike
    }
}

/// Rounds to cents.
fn cents(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// One publication of a node's price for one interval.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tick {
    /// The interval's number since the start.
    pub(super) interval: u64,
    pub(super) price: f64,
    pub(super) energy: f64,
    pub(super) congestion: f64,
    pub(super) loss: f64,
    pub(super) revision: i64,
}

/// A revision waiting for its interval.
#[derive(Clone, Copy, Debug)]
struct Pending {
    due: u64,
    tick: Tick,
}

/// Per-step constants of the node processes, shared by all nodes.
#[derive(Clone, Copy, Debug)]
pub(super) struct NodeDynamics {
    noise: Reversion,
    spike_chance: f64,
    spike_decay: f64,
    revision_probability: f64,
}

impl NodeDynamics {
    pub(super) fn new(interval_ms: Millis, revision_probability: f64) -> Self {
        let dt_h = interval_ms as f64 / 3_600_000.0;
        NodeDynamics {
            noise: Reversion::new(0.4, 1.0, dt_h),
            spike_chance: chance(0.15, dt_h),
            spike_decay: Reversion::new(0.0, SPIKE_HALF_LIFE_H, dt_h).phi,
            revision_probability,
        }
    }
}

/// One pricing node and its state.
pub(super) struct NodeModel {
    /// The global node index, `0..nodes`.
    pub(super) index: u64,
    /// The position of its market in the simulator's market list.
    pub(super) market: usize,
    pub(super) name: Str,
    pub(super) node_type: Str,
    rng: SmallRng,
    bias: f64,
    loss_factor: f64,
    scale: f64,
    positive_share: f64,
    noise: f64,
    spike: f64,
    pending: Vec<Pending>,
}

impl NodeModel {
    /// Node `index`, the `local`-th node of `market` (at position `market_slot`).
    pub(super) fn new(seed: u64, index: u64, market: Market, market_slot: usize, local: usize, interner: &mut Interner) -> Self {
        let mut rng = SmallRng::seed_from_u64(mix(seed, index));
        let (name, node_type) = match market.named_nodes().get(local) {
            Some((name, node_type)) => ((*name).to_owned(), *node_type),
            None => (
                format!("{}-N{local:05}", market.code()),
                if rng.random::<bool>() { NodeType::Gen } else { NodeType::Load },
            ),
        };
        let (scale, positive_share) = node_type.congestion();
        let hub_like = matches!(node_type, NodeType::Hub | NodeType::Zone);
        let loss_spread = if hub_like { 0.005 } else { 0.015 };
        let loss_factor = (0.01 + loss_spread * rng.sample::<f64, _>(StandardNormal)).clamp(-0.04, 0.06);
        let bias = 0.8 * scale * rng.sample::<f64, _>(StandardNormal);
        let noise = 0.4 * rng.sample::<f64, _>(StandardNormal);
        NodeModel {
            index,
            market: market_slot,
            name: interner.intern(&name),
            node_type: interner.intern(node_type.as_str()),
            rng,
            bias,
            loss_factor,
            scale,
            positive_share,
            noise,
            spike: 0.0,
            pending: Vec::new(),
        }
    }

    /// The node's first publication for `interval`, given the system energy
    /// price; may schedule a revision.
    pub(super) fn tick(&mut self, interval: u64, energy: f64, dynamics: &NodeDynamics) -> Tick {
        self.noise = dynamics.noise.step(self.noise, &mut self.rng);
        self.spike *= dynamics.spike_decay;
        if self.rng.random::<f64>() < dynamics.spike_chance {
            let mean = if self.rng.random::<f64>() < 0.05 { 60.0 } else { 6.0 };
            let sign = if self.rng.random::<f64>() < self.positive_share { 1.0 } else { -1.0 };
            self.spike += sign * self.scale * mean * self.rng.sample::<f64, _>(Exp1);
        }
        let congestion = self.bias + self.scale * self.noise + self.spike;
        let tick = self.priced(interval, energy, congestion, 0);
        self.maybe_revise(tick, interval, dynamics);
        tick
    }

    /// Revisions due at `interval`, appended to `out`; each may be revised again.
    pub(super) fn due_revisions(&mut self, interval: u64, dynamics: &NodeDynamics, out: &mut Vec<Tick>) {
        if self.pending.is_empty() {
            return;
        }
        let start = out.len();
        self.pending.retain(|pending| {
            let due = pending.due == interval;
            if due {
                out.push(pending.tick);
            }
            !due
        });
        for tick in &out[start..] {
            self.maybe_revise(*tick, interval, dynamics);
        }
    }

    /// How many revisions wait.
    pub(super) fn pending_revisions(&self) -> usize {
        self.pending.len()
    }

    fn priced(&self, interval: u64, energy: f64, congestion: f64, revision: i64) -> Tick {
        let (energy, congestion) = (cents(energy), cents(congestion));
        let loss = cents(energy * self.loss_factor);
        Tick {
            interval,
            price: cents(energy + congestion + loss),
            energy,
            congestion,
            loss,
            revision,
        }
    }

    /// With the revision probability, schedules a corrected copy of `tick` one
    /// to three intervals after `now`, where `now` is when `tick` is published.
    fn maybe_revise(&mut self, tick: Tick, now: u64, dynamics: &NodeDynamics) {
        if self.rng.random::<f64>() >= dynamics.revision_probability {
            return;
        }
        let delay = self.rng.random_range(1..=3u64);
        let energy = tick.energy + 0.25 * self.rng.sample::<f64, _>(StandardNormal);
        let congestion = tick.congestion + (0.1 + 0.05 * tick.congestion.abs()) * self.rng.sample::<f64, _>(StandardNormal);
        let revised = self.priced(tick.interval, energy, congestion, tick.revision + 1);
        self.pending.push(Pending {
            due: now + delay,
            tick: revised,
        });
    }
}
