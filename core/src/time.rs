//! Event time: UTC milliseconds since the Unix epoch, and Flink's text forms.
//!
//! Event time lives in the data (a `TIMESTAMP` column); the dataflow's logical
//! time is the ingest [`crate::Epoch`]. A source's [`Watermark`] says that no
//! more rows with an event time at or below it are expected.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Milliseconds since 1970-01-01T00:00:00Z (timestamps) or a duration (intervals).
pub type Millis = i64;

/// Event time up to which a source is complete. [`Watermark::MIN`] before any
/// row, [`Watermark::MAX`] once a bounded source is exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Watermark(pub Millis);

impl Watermark {
    /// Nothing is known yet.
    pub const MIN: Watermark = Watermark(Millis::MIN);
    /// The source is exhausted: every window can close.
    pub const MAX: Watermark = Watermark(Millis::MAX);
}

/// Parses the timestamp forms found in CSV files and SQL literals:
/// `2024-01-01 00:00:00.025`, `2024-01-01 00:00:00`, `2024-01-01T00:00:00`,
/// the same with a `Z` or `+01:00` offset (converted to UTC), and a bare date.
pub fn parse_timestamp(text: &str) -> Option<Millis> {
    let text = text.trim();
    if let Some(millis) = parse_canonical(text.as_bytes()) {
        return Some(millis);
    }
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Some(with_offset.timestamp_millis());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(with_offset) = DateTime::parse_from_str(text, format) {
            return Some(with_offset.timestamp_millis());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc().timestamp_millis())
}

/// The hot path: `YYYY-MM-DD[ T]HH:MM:SS[.fff]` with no offset, parsed without
/// allocation. Anything else falls back to chrono.
fn parse_canonical(bytes: &[u8]) -> Option<Millis> {
    if bytes.len() < 19 || bytes[4] != b'-' || bytes[7] != b'-' || !(bytes[10] == b' ' || bytes[10] == b'T') || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes[range]
            .iter()
            .try_fold(0u32, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0')))
    };
    let date = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let millis = match &bytes[19..] {
        [] => 0,
        [b'.', fraction @ ..] if !fraction.is_empty() && fraction.len() <= 9 && fraction.iter().all(u8::is_ascii_digit) => {
            // Keep the first three digits (milliseconds), padding short fractions.
            let mut value = 0u32;
            for i in 0..3 {
                value = value * 10 + fraction.get(i).map_or(0, |b| u32::from(b - b'0'));
            }
            value
        }
        _ => return None,
    };
    let time = date.and_hms_milli_opt(hour, minute, second, millis)?;
    Some(time.and_utc().timestamp_millis())
}

/// Parses Flink's duration form, as options and settings spell it: a whole
/// number and a unit (`ms`, `s`, `min`, `h`, `d`, or their long names), with
/// or without a space between (`'500 ms'`, `'30s'`, `'2 min'`); a bare number
/// is milliseconds, as in Flink.
pub fn parse_duration(text: &str) -> Option<Millis> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: Millis = number.parse().ok()?;
    let millis_per_unit: Millis = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(millis_per_unit)
}

/// Flink's text form of a `TIMESTAMP(3)`: `2024-01-01 00:01:00.000`.
pub fn format_timestamp(millis: Millis) -> String {
    match DateTime::from_timestamp_millis(millis) {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => format!("<timestamp out of range: {millis}>"),
    }
}

/// Flink's text form of an `INTERVAL DAY TO SECOND`: `+0 00:01:00.000`.
pub fn format_interval(millis: Millis) -> String {
    let sign = if millis < 0 { '-' } else { '+' };
    let total = millis.unsigned_abs();
    let (days, rest) = (total / 86_400_000, total % 86_400_000);
    let (hours, rest) = (rest / 3_600_000, rest % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1000, rest % 1000);
    format!("{sign}{days} {hours:02}:{minutes:02}:{seconds:02}.{millis:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flink_csv_timestamps() {
        let base = parse_timestamp("2024-01-01 00:00:00").unwrap();
        assert_eq!(base, 1_704_067_200_000);
        assert_eq!(parse_timestamp("2024-01-01 00:00:00.025"), Some(base + 25));
        assert_eq!(parse_timestamp("2024-01-01 00:00:00.5"), Some(base + 500));
        assert_eq!(parse_timestamp("2024-01-01T00:00:00.123456"), Some(base + 123));
        assert_eq!(parse_timestamp("2024-01-01T01:00:00+01:00"), Some(base));
        assert_eq!(parse_timestamp("2024-01-01T00:00:00Z"), Some(base));
        assert_eq!(parse_timestamp("2024-01-01"), Some(base));
        assert_eq!(parse_timestamp("2024-13-01 00:00:00"), None);
        assert_eq!(parse_timestamp("not a time"), None);
    }

    #[test]
    fn formats_like_flink() {
        assert_eq!(format_timestamp(1_704_067_260_000), "2024-01-01 00:01:00.000");
        assert_eq!(format_timestamp(1_704_067_200_025), "2024-01-01 00:00:00.025");
        assert_eq!(format_timestamp(-1), "1969-12-31 23:59:59.999");
        assert_eq!(format_interval(60_000), "+0 00:01:00.000");
        assert_eq!(format_interval(-90_061_001), "-1 01:01:01.001");
    }

    #[test]
    fn durations_take_flink_units() {
        assert_eq!(parse_duration("1 s"), Some(1_000));
        assert_eq!(parse_duration("500 ms"), Some(500));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("2 min"), Some(120_000));
        assert_eq!(parse_duration("3 Hours"), Some(3 * 3_600_000));
        assert_eq!(parse_duration("1 d"), Some(86_400_000));
        assert_eq!(parse_duration("250"), Some(250));
        assert_eq!(parse_duration("0 ms"), Some(0));
        for bad in ["", "s", "1.5 s", "-1 s", "1 fortnight", "99999999999999999999 d", "9999999999999999 d"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips() {
        for millis in [0, 1, 999, 1_704_067_200_025, -86_400_001, 4_102_444_800_000] {
            assert_eq!(parse_timestamp(&format_timestamp(millis)), Some(millis));
        }
    }
}
