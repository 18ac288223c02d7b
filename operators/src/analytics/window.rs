//! Frame functions: a window state slid over the partition's rows.
//!
//! A row's window is the index range `[lower(j), upper(j))`, both edges
//! moving forward with `j` ([`Edge`]). [`Sliding`] adds the rows entering at
//! the upper edge and removes those leaving at the lower edge; a restart
//! before a changed row rebuilds the state from that row's window (a restart
//! right after the last computed row, the streaming case, just carries on).
//! Window states are exact under removal, so a result depends on the
//! window's rows only.

use carbonflow_core::{Datum, Millis, Row};

use super::partition::{Evaluator, Lookback, Reach, Rows, frame_extent};
use super::seasonal::SeasonalWindow;
use super::{Frame, OverCall, OverFunction};
use crate::aggregate::Accumulator;
use crate::exact_sum::ExactSum;

/// An edge of a window, as a function of the current row `j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Edge {
    /// Index `j + 1 - k` (at least 0): `Rows(0)` is just after the row.
    Rows(usize),
    /// The first row whose event time is after `t_j - d`: `Time(0)` is just
    /// after the row's last peer, `Time(d + 1)` the first row at or after `t_j - d`.
    Time(Millis),
}

impl Edge {
    fn at(self, rows: Rows, j: usize) -> usize {
        match self {
            Edge::Rows(k) => (j + 1).saturating_sub(k),
            Edge::Time(d) => rows.first_after(rows.times[j].saturating_sub(d)),
        }
    }

    /// Moves `position` forward to this edge for row `j`: a scan, since the
    /// edge moves a row or two at a time.
    fn advance(self, rows: Rows, j: usize, position: usize) -> usize {
        match self {
            Edge::Rows(k) => (j + 1).saturating_sub(k).max(position),
            Edge::Time(d) => {
                let limit = rows.times[j].saturating_sub(d);
                let mut position = position;
                while position < rows.len() && rows.times[position] <= limit {
                    position += 1;
                }
                position
            }
        }
    }
}

/// The edges of a frame: `[lower, upper)`.
pub(crate) fn frame_edges(frame: Frame) -> (Edge, Edge) {
    match frame {
        Frame::Rows(n) => (Edge::Rows(n + 1), Edge::Rows(0)),
        Frame::Range(d) => (Edge::Time(d.saturating_add(1)), Edge::Time(0)),
        Frame::Unbounded => unreachable!("frame functions have a bounded frame (checked by OverCall::check)"),
    }
}

/// What a window holds: rows enter and leave, the result reads the current row too.
pub(crate) trait WindowState: Send {
    fn add(&mut self, row: &Row, time: Millis);
    fn remove(&mut self, row: &Row, time: Millis);
    fn clear(&mut self);
    fn result(&self, current: &Row, time: Millis) -> Datum;
}

/// A window state slid over `[lower(j), upper(j))`.
pub(crate) struct Sliding<S> {
    pub(crate) state: S,
    lower_edge: Edge,
    upper_edge: Edge,
    lower: usize,
    upper: usize,
    /// The row the window was last slid to, while its state is still valid.
    last: Option<usize>,
}

impl<S: WindowState> Sliding<S> {
    pub(crate) fn new(state: S, lower_edge: Edge, upper_edge: Edge) -> Self {
        Sliding {
            state,
            lower_edge,
            upper_edge,
            lower: 0,
            upper: 0,
            last: None,
        }
    }

    /// Prepares to slide to `start`. When the window was last at the row just
    /// before and holds no row from `start` on (which may have changed), it
    /// carries on: appending a row costs one slide, not a rebuild.
    pub(crate) fn restart(&mut self, rows: Rows, start: usize) {
        if start > 0 && self.last == Some(start - 1) && self.upper <= start {
            return;
        }
        self.state.clear();
        let lower = if start < rows.len() { self.lower_edge.at(rows, start) } else { start };
        self.lower = lower;
        self.upper = lower;
        self.last = None;
    }

    /// The first `count` rows were dropped: positions move down, or the state
    /// is given up if the window held one of them.
    pub(crate) fn trim(&mut self, count: usize) {
        match self.last {
            Some(last) if self.lower >= count && last >= count => {
                self.lower -= count;
                self.upper -= count;
                self.last = Some(last - count);
            }
            _ => self.last = None,
        }
    }

    /// Moves the window to row `j`.
    pub(crate) fn slide(&mut self, rows: Rows, j: usize) {
        let upper = self.upper_edge.advance(rows, j, self.upper);
        for index in self.upper..upper {
            self.state.add(&rows.rows[index], rows.times[index]);
        }
        self.upper = upper;
        let lower = self.lower_edge.advance(rows, j, self.lower).min(self.upper);
        for index in self.lower..lower {
            self.state.remove(&rows.rows[index], rows.times[index]);
        }
        self.lower = lower;
        self.last = Some(j);
    }
}

/// An evaluator made of one sliding window.
struct WindowEvaluator<S> {
    sliding: Sliding<S>,
    reach: Reach,
    lookback: Lookback,
}

impl<S: WindowState> Evaluator for WindowEvaluator<S> {
    fn restart(&mut self, rows: Rows, start: usize) {
        self.sliding.restart(rows, start);
    }

    fn next(&mut self, rows: Rows, index: usize) -> Datum {
        self.sliding.slide(rows, index);
        self.sliding.state.result(&rows.rows[index], rows.times[index])
    }

    fn trim(&mut self, count: usize) {
        self.sliding.trim(count);
    }

    fn reach(&self) -> Reach {
        self.reach
    }

    fn lookback(&self) -> Lookback {
        self.lookback
    }
}

fn boxed<S: WindowState + 'static>(state: S, frame: Frame) -> Box<dyn Evaluator> {
    let (lower, upper) = frame_edges(frame);
    let (reach, lookback) = frame_extent(frame, 1);
    Box::new(WindowEvaluator {
        sliding: Sliding::new(state, lower, upper),
        reach,
        lookback,
    })
}

/// The evaluator of a frame function (or `SEASONAL_*`).
pub(crate) fn window_evaluator(call: &OverCall) -> Box<dyn Evaluator> {
    let x = call.args[0];
    match &call.function {
        OverFunction::Aggregate(spec) => boxed(
            AggregateWindow {
                accumulator: Accumulator::new(spec),
                spec: *spec,
                column: x,
            },
            call.frame,
        ),
        OverFunction::ZScore => boxed(MomentsWindow::new(x), call.frame),
        OverFunction::RobustZScore => boxed(SortedWindow { column: x, values: Vec::new() }, call.frame),
        OverFunction::Corr => boxed(CorrWindow::new(x, call.args[1]), call.frame),
        OverFunction::CorrShift => Box::new(CorrShift::new(x, call.args[1], call.frame)),
        OverFunction::Seasonal(seasonal) => {
            let lookback = seasonal.lookback();
            // Rows of the last `weeks` weeks strictly before the current one.
            Box::new(WindowEvaluator {
                sliding: Sliding::new(SeasonalWindow::new(seasonal.clone(), x), Edge::Time(lookback.saturating_add(1)), Edge::Rows(1)),
                reach: Reach::Time(lookback),
                lookback: Lookback::Time(lookback),
            })
        }
        other => unreachable!("{} is recurrent", other.name()),
    }
}

/// A SQL aggregate over the frame.
struct AggregateWindow {
    accumulator: Accumulator,
    spec: crate::aggregate::AggregateSpec,
    column: usize,
}

impl WindowState for AggregateWindow {
    fn add(&mut self, row: &Row, time: Millis) {
        self.accumulator.update(row.get(self.column), time, 1);
    }

    fn remove(&mut self, row: &Row, time: Millis) {
        self.accumulator.update(row.get(self.column), time, -1);
    }

    fn clear(&mut self) {
        self.accumulator = Accumulator::new(&self.spec);
    }

    fn result(&self, _current: &Row, _time: Millis) -> Datum {
        self.accumulator.result()
    }
}

/// Count, exact sum and exact sum of squares of the non-NULL values: mean and
/// population variance for `ZSCORE`.
pub(crate) struct Moments {
    count: i64,
    sum: ExactSum,
    squares: ExactSum,
}

impl Moments {
    pub(crate) fn new() -> Self {
        Moments {
            count: 0,
            sum: ExactSum::new(),
            squares: ExactSum::new(),
        }
    }

    pub(crate) fn update(&mut self, x: f64, diff: i64) {
        self.count += diff;
        self.sum.add_times(x, diff);
        self.squares.add_times(x * x, diff);
    }

    pub(crate) fn count(&self) -> i64 {
        self.count
    }

    /// Mean and population variance (`(Σx² − (Σx)²/n) / n`, clamped at 0), if any value is held.
    pub(crate) fn mean_variance(&self) -> Option<(f64, f64)> {
        if self.count <= 0 {
            return None;
        }
        let n = self.count as f64;
        let sum = self.sum.value();
        let deviation = self.squares.value() - sum * sum / n;
        Some((sum / n, if deviation < 0.0 { 0.0 } else { deviation / n }))
    }
}

/// `(x - mean) / sd`, or NULL where the spread is zero or unknown.
pub(crate) fn standardize(x: f64, mean: f64, variance: f64) -> Datum {
    let sd = variance.sqrt();
    if sd > 0.0 && sd.is_finite() {
        Datum::float((x - mean) / sd)
    } else {
        Datum::Null
    }
}

/// `ZSCORE`: moments of the frame.
struct MomentsWindow {
    column: usize,
    moments: Moments,
}

impl MomentsWindow {
    fn new(column: usize) -> Self {
        MomentsWindow {
            column,
            moments: Moments::new(),
        }
    }
}

impl WindowState for MomentsWindow {
    fn add(&mut self, row: &Row, _time: Millis) {
        if let Some(x) = row.get(self.column).as_f64() {
            self.moments.update(x, 1);
        }
    }

    fn remove(&mut self, row: &Row, _time: Millis) {
        if let Some(x) = row.get(self.column).as_f64() {
            self.moments.update(x, -1);
        }
    }

    fn clear(&mut self) {
        self.moments = Moments::new();
    }

    fn result(&self, current: &Row, _time: Millis) -> Datum {
        match (current.get(self.column).as_f64(), self.moments.mean_variance()) {
            (Some(x), Some((mean, variance))) => standardize(x, mean, variance),
            _ => Datum::Null,
        }
    }
}

/// The consistency constant that makes the MAD estimate the standard
/// deviation of normal data: `1 / Φ⁻¹(3/4)`.
pub(crate) const MAD_SCALE: f64 = 1.482_602_218_505_602;

/// `ROBUST_ZSCORE`: the frame's values, sorted.
struct SortedWindow {
    column: usize,
    values: Vec<f64>,
}

impl WindowState for SortedWindow {
    fn add(&mut self, row: &Row, _time: Millis) {
        if let Some(x) = row.get(self.column).as_f64().filter(|x| !x.is_nan()) {
            let at = self.values.partition_point(|v| v.total_cmp(&x).is_lt());
            self.values.insert(at, x);
        }
    }

    fn remove(&mut self, row: &Row, _time: Millis) {
        if let Some(x) = row.get(self.column).as_f64().filter(|x| !x.is_nan()) {
            let at = self.values.partition_point(|v| v.total_cmp(&x).is_lt());
            if self.values.get(at).is_some_and(|v| v.total_cmp(&x).is_eq()) {
                self.values.remove(at);
            }
        }
    }

    fn clear(&mut self) {
        self.values.clear();
    }

    fn result(&self, current: &Row, _time: Millis) -> Datum {
        let Some(x) = current.get(self.column).as_f64() else { return Datum::Null };
        if self.values.is_empty() {
            return Datum::Null;
        }
        let median = median_of_sorted(&self.values);
        let mad = median_absolute_deviation(&self.values, median);
        standardize(x, median, (MAD_SCALE * mad).powi(2))
    }
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
pub(crate) fn median_of_sorted(values: &[f64]) -> f64 {
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The median of `|v - median|` over sorted `values`: the deviations below
/// and above the median are each sorted (descending and ascending), so the
/// k-th smallest comes from merging the two runs.
pub(crate) fn median_absolute_deviation(values: &[f64], median: f64) -> f64 {
    let n = values.len();
    // The runs' next deviations are `median - values[below - 1]` and `values[above] - median`.
    let split = values.partition_point(|v| *v < median);
    let (mut below, mut above) = (split, split);
    let mut next = || {
        if below > 0 && (above == n || median - values[below - 1] <= values[above] - median) {
            below -= 1;
            median - values[below]
        } else {
            above += 1;
            values[above - 1] - median
        }
    };
    let mut previous = 0.0;
    for _ in 0..n / 2 {
        previous = next();
    }
    let middle = next();
    if n % 2 == 1 { middle } else { (previous + middle) / 2.0 }
}

/// `CORR`: exact sums over the pairs where both values are present.
pub(crate) struct CorrWindow {
    x: usize,
    y: usize,
    count: i64,
    sums: Box<[ExactSum; 5]>,
}

impl CorrWindow {
    pub(crate) fn new(x: usize, y: usize) -> Self {
        CorrWindow {
            x,
            y,
            count: 0,
            sums: Box::default(),
        }
    }

    fn update(&mut self, row: &Row, diff: i64) {
        if let (Some(x), Some(y)) = (row.get(self.x).as_f64(), row.get(self.y).as_f64()) {
            self.count += diff;
            for (sum, value) in self.sums.iter_mut().zip([x, y, x * y, x * x, y * y]) {
                sum.add_times(value, diff);
            }
        }
    }

    /// Pearson's r and the number of pairs, if at least two pairs with spread are held.
    pub(crate) fn correlation(&self) -> Option<(f64, i64)> {
        if self.count < 2 {
            return None;
        }
        let n = self.count as f64;
        let [x, y, xy, xx, yy] = [0, 1, 2, 3, 4].map(|i| self.sums[i].value());
        let sxy = xy - x * y / n;
        let sxx = xx - x * x / n;
        let syy = yy - y * y / n;
        let r = sxy / (sxx * syy).sqrt();
        (sxx > 0.0 && syy > 0.0 && r.is_finite()).then_some((r.clamp(-1.0, 1.0), self.count))
    }
}

impl WindowState for CorrWindow {
    fn add(&mut self, row: &Row, _time: Millis) {
        self.update(row, 1);
    }

    fn remove(&mut self, row: &Row, _time: Millis) {
        self.update(row, -1);
    }

    fn clear(&mut self) {
        self.count = 0;
        *self.sums = Default::default();
    }

    fn result(&self, _current: &Row, _time: Millis) -> Datum {
        self.correlation().map_or(Datum::Null, |(r, _)| Datum::float(r))
    }
}

/// `CORR_SHIFT`: the correlation in the frame against the one in the frame
/// of the same size just before it, as Fisher's z statistic
/// `(atanh r₁ − atanh r₀) / √(1/(n₁−3) + 1/(n₀−3))`.
struct CorrShift {
    recent: Sliding<CorrWindow>,
    before: Sliding<CorrWindow>,
    reach: Reach,
    lookback: Lookback,
}

impl CorrShift {
    fn new(x: usize, y: usize, frame: Frame) -> Self {
        let (lower, upper) = frame_edges(frame);
        // The frame before: ROWS n covers the n + 1 rows before the frame;
        // RANGE d covers [t - 2d, t - d).
        let (before_lower, before_upper) = match frame {
            Frame::Rows(n) => (Edge::Rows(2 * (n + 1)), Edge::Rows(n + 1)),
            Frame::Range(d) => (Edge::Time(d.saturating_mul(2).saturating_add(1)), Edge::Time(d.saturating_add(1))),
            Frame::Unbounded => unreachable!("checked by OverCall::check"),
        };
        let (reach, lookback) = frame_extent(frame, 2);
        CorrShift {
            recent: Sliding::new(CorrWindow::new(x, y), lower, upper),
            before: Sliding::new(CorrWindow::new(x, y), before_lower, before_upper),
            reach,
            lookback,
        }
    }
}

impl Evaluator for CorrShift {
    fn restart(&mut self, rows: Rows, start: usize) {
        self.recent.restart(rows, start);
        self.before.restart(rows, start);
    }

    fn next(&mut self, rows: Rows, index: usize) -> Datum {
        self.recent.slide(rows, index);
        self.before.slide(rows, index);
        match (self.recent.state.correlation(), self.before.state.correlation()) {
            (Some((r1, n1)), Some((r0, n0))) if n1 > 3 && n0 > 3 => {
                let spread = (1.0 / (n1 - 3) as f64 + 1.0 / (n0 - 3) as f64).sqrt();
                let z = (fisher(r1) - fisher(r0)) / spread;
                if z.is_finite() { Datum::float(z) } else { Datum::Null }
            }
            _ => Datum::Null,
        }
    }

    fn trim(&mut self, count: usize) {
        self.recent.trim(count);
        self.before.trim(count);
    }

    fn reach(&self) -> Reach {
        self.reach
    }

    fn lookback(&self) -> Lookback {
        self.lookback
    }
}

/// Fisher's transformation `atanh r`, finite for |r| = 1 (clamped just inside).
pub(crate) fn fisher(r: f64) -> f64 {
    r.clamp(-0.999_999_999, 0.999_999_999).atanh()
}
