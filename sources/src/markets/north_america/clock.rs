//! Operator clocks to UTC, through chrono-tz.
//!
//! Two shapes of local time occur in these files:
//!
//! * a wall-clock instant (`02/18/2016 00:15:00`), resolved by [`instant`];
//! * an hour-ending label on a delivery day (`11/06/2022 02`, HE 1–24),
//!   resolved by [`hour_ending`] to the start of the hour it names.
//!
//! Either may be ambiguous in the autumn, when the clock repeats an hour.
//! [`Resolver`] picks one of the two readings by the file's own marker where
//! it has one (AESO's `02*`, ERCOT's `DSTFlag`, NYISO's `Time Zone`), and
//! otherwise by order: the first occurrence of a local time at a node is the
//! earlier (daylight) reading, any later one the standard-time reading. A
//! local time in the spring gap is an error only when a row really carries it.
//!
//! Hour-ending labels follow the convention the Alberta and ERCOT files show:
//! on the spring day the hour `01:00–02:00` standard time is labelled HE03
//! (its end read on the new clock, 03:00 daylight) and HE02 does not exist;
//! on the autumn day the hour whose start repeats is labelled twice, HE02 and
//! its marked repeat (AESO `02*`, ERCOT `DSTFlag = Y`), and HE03 starts at
//! 02:00 standard time.

use std::collections::HashSet;

use carbonflow_core::{Millis, Str};
use chrono::{LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone};
use chrono_tz::Tz;

use super::{HOUR_S, MILLIS, RowError};

/// Eastern Standard Time all year (UTC−5), the market clock of MISO and IESO.
/// chrono-tz's POSIX-style name has the inverted sign: `Etc/GMT+5` is UTC−5.
pub(super) const EST_ALL_YEAR: Tz = chrono_tz::Etc::GMTPlus5;

/// A local time read in a time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Local {
    /// One UTC instant.
    One(Millis),
    /// The autumn repeat: the earlier (daylight) and the later (standard) instant.
    Two(Millis, Millis),
    /// The spring gap: no instant.
    Gap,
}

/// A wall-clock instant.
pub(super) fn instant(zone: Tz, local: NaiveDateTime) -> Local {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(time) => Local::One(time.timestamp_millis()),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.timestamp_millis(), b.timestamp_millis());
            Local::Two(a.min(b), a.max(b))
        }
        LocalResult::None => Local::Gap,
    }
}

/// The start of the hour labelled hour-ending `hour` (1–24) on `day`.
///
/// The hour is read from its start; when the start falls in the spring gap
/// the label names the hour that ends at `hour:00` on the new clock, and a
/// label whose end falls in the gap does not exist.
pub(super) fn hour_ending(zone: Tz, day: NaiveDate, hour: u32) -> Local {
    let midnight = day.and_time(chrono::NaiveTime::MIN);
    let start = midnight + TimeDelta::hours(i64::from(hour) - 1);
    let end = midnight + TimeDelta::hours(i64::from(hour));
    match instant(zone, start) {
        Local::Two(earlier, later) => Local::Two(earlier, later),
        Local::One(start) => match instant(zone, end) {
            Local::Gap => Local::Gap,
            _ => Local::One(start),
        },
        Local::Gap => match instant(zone, end) {
            Local::One(end) => Local::One(end - HOUR_S * MILLIS),
            Local::Two(earlier, later) => Local::Two(earlier - HOUR_S * MILLIS, later - HOUR_S * MILLIS),
            Local::Gap => Local::Gap,
        },
    }
}

/// How a row says which reading of a repeated local time it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Repeat {
    /// The file marks it: `true` for the repeat (standard time).
    Marked(bool),
    /// The file does not: the first occurrence at a node is the earlier one.
    ByOrder,
}

/// Picks the instant of ambiguous local times for one file.
pub(super) struct Resolver {
    zone: Tz,
    /// (node, local time) of ambiguous times already seen, for [`Repeat::ByOrder`].
    seen: HashSet<(Str, NaiveDateTime)>,
}

impl Resolver {
    pub(super) fn new(zone: Tz) -> Self {
        Resolver { zone, seen: HashSet::new() }
    }

    /// The UTC instant of `reading`, the reading of the local time `local`
    /// written in the row of `node`.
    pub(super) fn pick(&mut self, reading: Local, local: NaiveDateTime, node: &Str, repeat: Repeat) -> Result<Millis, RowError> {
        let zone = self.zone.name();
        match (reading, repeat) {
            (Local::Gap, _) => Err(RowError::Gap { local, zone }),
            (Local::One(_), Repeat::Marked(true)) => Err(RowError::NotRepeated { local, zone }),
            (Local::One(at), _) => Ok(at),
            (Local::Two(earlier, later), Repeat::Marked(repeated)) => Ok(if repeated { later } else { earlier }),
            (Local::Two(earlier, later), Repeat::ByOrder) => Ok(if self.seen.insert((node.clone(), local)) { earlier } else { later }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbonflow_core::time::parse_timestamp;

    fn utc(text: &str) -> Millis {
        parse_timestamp(text).unwrap_or_else(|| panic!("bad timestamp {text}"))
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_else(|| panic!("bad date"))
    }

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        day(y, m, d).and_hms_opt(h, min, 0).unwrap_or_else(|| panic!("bad time"))
    }

    #[test]
    fn instants_at_both_transitions() {
        let ny = chrono_tz::America::New_York;
        assert_eq!(instant(ny, at(2016, 3, 13, 1, 55)), Local::One(utc("2016-03-13 06:55:00")));
        assert_eq!(instant(ny, at(2016, 3, 13, 2, 30)), Local::Gap);
        assert_eq!(instant(ny, at(2016, 3, 13, 3, 0)), Local::One(utc("2016-03-13 07:00:00")));
        assert_eq!(
            instant(ny, at(2016, 11, 6, 1, 30)),
            Local::Two(utc("2016-11-06 05:30:00"), utc("2016-11-06 06:30:00"))
        );
        assert_eq!(instant(ny, at(2016, 11, 6, 2, 0)), Local::One(utc("2016-11-06 07:00:00")));
    }

    #[test]
    fn hour_ending_labels_as_alberta_writes_them() {
        let ab = chrono_tz::America::Edmonton;
        // Spring 2023-03-12: HE01, HE03, HE04 (AESO's file has no HE02).
        assert_eq!(hour_ending(ab, day(2023, 3, 12), 1), Local::One(utc("2023-03-12 07:00:00")));
        assert_eq!(hour_ending(ab, day(2023, 3, 12), 2), Local::Gap);
        assert_eq!(hour_ending(ab, day(2023, 3, 12), 3), Local::One(utc("2023-03-12 08:00:00")));
        assert_eq!(hour_ending(ab, day(2023, 3, 12), 4), Local::One(utc("2023-03-12 09:00:00")));
        // Autumn 2022-11-06: HE01, HE02, HE02*, HE03.
        assert_eq!(hour_ending(ab, day(2022, 11, 6), 1), Local::One(utc("2022-11-06 06:00:00")));
        assert_eq!(
            hour_ending(ab, day(2022, 11, 6), 2),
            Local::Two(utc("2022-11-06 07:00:00"), utc("2022-11-06 08:00:00"))
        );
        assert_eq!(hour_ending(ab, day(2022, 11, 6), 3), Local::One(utc("2022-11-06 09:00:00")));
        assert_eq!(hour_ending(ab, day(2022, 11, 6), 24), Local::One(utc("2022-11-07 06:00:00")));
        // A fixed-offset market clock never repeats nor skips.
        assert_eq!(hour_ending(EST_ALL_YEAR, day(2011, 7, 16), 1), Local::One(utc("2011-07-16 05:00:00")));
        assert_eq!(hour_ending(EST_ALL_YEAR, day(2011, 7, 16), 24), Local::One(utc("2011-07-17 04:00:00")));
    }

    #[test]
    fn resolver_uses_the_marker_or_else_the_order_per_node() {
        let ny = chrono_tz::America::New_York;
        let mut resolver = Resolver::new(ny);
        let local = at(2016, 11, 6, 1, 30);
        let reading = instant(ny, local);
        let (a, b): (Str, Str) = ("A".into(), "B".into());
        let (earlier, later) = (utc("2016-11-06 05:30:00"), utc("2016-11-06 06:30:00"));
        assert_eq!(resolver.pick(reading, local, &a, Repeat::ByOrder), Ok(earlier));
        assert_eq!(resolver.pick(reading, local, &b, Repeat::ByOrder), Ok(earlier));
        assert_eq!(resolver.pick(reading, local, &a, Repeat::ByOrder), Ok(later));
        assert_eq!(resolver.pick(reading, local, &a, Repeat::Marked(false)), Ok(earlier));
        assert_eq!(resolver.pick(reading, local, &a, Repeat::Marked(true)), Ok(later));
        let plain = at(2016, 11, 6, 3, 0);
        assert!(matches!(
            resolver.pick(instant(ny, plain), plain, &a, Repeat::Marked(true)),
            Err(RowError::NotRepeated { .. })
        ));
        let gap = at(2016, 3, 13, 2, 30);
        assert!(matches!(resolver.pick(instant(ny, gap), gap, &a, Repeat::ByOrder), Err(RowError::Gap { .. })));
    }

    proptest::proptest! {
        /// Reference model: the hours of a local day, walked in UTC from its
        /// first to its last instant. The readings of HE01–HE24 (both readings
        /// of a repeated hour, none of a skipped one) are exactly those hours.
        #[test]
        fn hour_ending_labels_cover_each_local_day_exactly_once(days in 0i64..12_000, zone in 0usize..4) {
            let zone = [chrono_tz::America::Edmonton, chrono_tz::America::Chicago, chrono_tz::America::New_York, EST_ALL_YEAR][zone];
            let day = day(2000, 1, 1) + TimeDelta::days(days);
            let midnight = |day: NaiveDate| match instant(zone, day.and_time(chrono::NaiveTime::MIN)) {
                Local::One(at) => at,
                other => panic!("midnight is {other:?}"),
            };
            let (first, end) = (midnight(day), midnight(day + TimeDelta::days(1)));
            let expected: Vec<Millis> = (first..end).step_by(3_600_000).collect();
            let mut readings = Vec::new();
            for hour in 1..=24 {
                match hour_ending(zone, day, hour) {
                    Local::One(start) => readings.push(start),
                    Local::Two(earlier, later) => readings.extend([earlier, later]),
                    Local::Gap => {}
                }
            }
            proptest::prop_assert_eq!(readings, expected);
        }
    }
}
