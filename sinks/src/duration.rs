//! Durations in connector options, in Flink's form (`'500 ms'`, `'1 s'`, `'2 min'`).

use std::time::Duration;

/// Flink's duration form ([`carbonflow_core::time::parse_duration`]: a whole
/// number and a unit, a bare number being milliseconds) as a [`Duration`].
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    carbonflow_core::time::parse_duration(text)
        .and_then(|millis| u64::try_from(millis).ok())
        .map(Duration::from_millis)
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
