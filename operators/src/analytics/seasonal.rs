//! `SEASONAL_ZSCORE` and `SEASONAL_BASELINE`: a value against the values of
//! the same local hour of day and the same day type (weekday or weekend) in
//! the preceding weeks.
//!
//! The baseline of a row at event time `t` is the set of preceding rows of
//! its partition (earlier in event-time order) with `t - weeks · 7 days <= ts`
//! whose local hour (in the given time zone, daylight saving included) and
//! day type equal the row's. `SEASONAL_BASELINE` is their mean,
//! `SEASONAL_ZSCORE` is `(x - mean) / stddev_pop` over them (NULL with fewer
//! than two values or no spread). Holidays count as the weekday they fall on.

use carbonflow_core::{Datum, Millis, Row};
use chrono::{Datelike, Timelike};

use super::window::{Moments, WindowState, standardize};

const WEEK: Millis = 7 * 24 * 3_600_000;

/// Hours of the day times two day types.
const BUCKETS: usize = 48;

/// The parameters of a seasonal baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Seasonal {
    /// How many weeks back the baseline reaches.
    pub weeks: u32,
    /// The time zone whose hours and days count.
    pub zone: chrono_tz::Tz,
    /// `SEASONAL_BASELINE` (the mean) rather than `SEASONAL_ZSCORE`.
    pub baseline_only: bool,
}

impl Seasonal {
    /// How much event time before a row its baseline reaches.
    pub fn lookback(&self) -> Millis {
        WEEK.saturating_mul(Millis::from(self.weeks))
    }

    /// The bucket of an event time: the local hour, plus 24 on a Saturday or Sunday.
    pub fn bucket(&self, time: Millis) -> Option<usize> {
        let local = chrono::DateTime::from_timestamp_millis(time)?.with_timezone(&self.zone);
        let weekend = matches!(local.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        Some(local.hour() as usize + if weekend { 24 } else { 0 })
    }
}

/// The window state: the moments of each bucket's values.
pub(crate) struct SeasonalWindow {
    seasonal: Seasonal,
    column: usize,
    buckets: Vec<Option<Box<Moments>>>,
}

impl SeasonalWindow {
    pub(crate) fn new(seasonal: Seasonal, column: usize) -> Self {
        SeasonalWindow {
            seasonal,
            column,
            buckets: (0..BUCKETS).map(|_| None).collect(),
        }
    }

    fn update(&mut self, row: &Row, time: Millis, diff: i64) {
        if let (Some(x), Some(bucket)) = (row.get(self.column).as_f64(), self.seasonal.bucket(time)) {
            self.buckets[bucket].get_or_insert_with(|| Box::new(Moments::new())).update(x, diff);
        }
    }
}

impl WindowState for SeasonalWindow {
    fn add(&mut self, row: &Row, time: Millis) {
        self.update(row, time, 1);
    }

    fn remove(&mut self, row: &Row, time: Millis) {
        self.update(row, time, -1);
    }

    fn clear(&mut self) {
        self.buckets.iter_mut().for_each(|bucket| *bucket = None);
    }

    fn result(&self, current: &Row, time: Millis) -> Datum {
        let Some(x) = current.get(self.column).as_f64() else { return Datum::Null };
        let Some(moments) = self.seasonal.bucket(time).and_then(|bucket| self.buckets[bucket].as_deref()) else {
            return Datum::Null;
        };
        match moments.mean_variance() {
            Some((mean, _)) if self.seasonal.baseline_only => Datum::float(mean),
            Some((mean, variance)) if moments.count() >= 2 => standardize(x, mean, variance),
            _ => Datum::Null,
        }
    }
}
