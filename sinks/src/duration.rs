//! Durations in connector options, in Flink's form (`'500 ms'`, `'1 s'`, `'2 min'`).

use std::time::Duration;

/// Parses Flink's duration form: a whole number and a unit (`ms`, `s`,
/// `min`, `h`, `d`, or their long names), with or without a space between;
/// a bare number is milliseconds, as in Flink.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let millis_per_unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(millis_per_unit).map(Duration::from_millis)
}

/// What a duration option expects, for error messages.
pub(crate) const DURATION_FORM: &str = "duration (such as '500 ms', '1 s', '2 min')";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_flink_units() {
        assert_eq!(parse_duration("1 s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("500 ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2 min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3 Hours"), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(parse_duration("1 d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0 ms"), Some(Duration::ZERO));
        for bad in ["", "s", "1.5 s", "-1 s", "1 fortnight", "99999999999999999999 d"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
