//! What happens after an attempt: the retry schedule with jitter,
//! `Retry-After`, dead letters, and when an endpoint is disabled.
//!
//! The schedule lists the delay before each attempt, counted from the failure
//! of the previous one (the first entry, usually 0, from the moment the
//! message is written). Each delay is stretched or shrunk by up to a fifth at
//! random, so that messages which failed together do not all come back at the
//! same instant. A `Retry-After` header on a failed response (seconds or an
//! HTTP date) lengthens the next delay to at least what it asks, but never
//! past the schedule's longest delay, so a partner cannot park a message
//! indefinitely. A message whose last scheduled attempt fails is dead: it
//! stays in the outbox until an operator replays it.
//!
//! An endpoint is disabled when it answers `410 Gone` (the partner asks us to
//! stop), or when it has failed without a single success for longer than
//! `disable-after`. A disabled endpoint gets no requests; its messages stay
//! pending until an operator re-enables it by replaying.

use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::duration::parse_duration;

/// The delays before successive attempts of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    /// Svix's schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        RetrySchedule(vec![
            Duration::ZERO,
            Duration::from_secs(5),
            minutes(5),
            minutes(30),
            minutes(120),
            minutes(300),
            minutes(600),
            minutes(600),
        ])
    }
}

impl RetrySchedule {
    /// Reads a comma-separated list of durations (`'0 s, 100 ms, 1 min'`); at least one.
    pub fn parse(text: &str) -> Option<RetrySchedule> {
        let delays = text.split(',').map(parse_duration).collect::<Option<Vec<_>>>()?;
        (!delays.is_empty()).then_some(RetrySchedule(delays))
    }

    /// How many attempts a message gets.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    /// The delay before attempt `attempt` (0 for the first), if the schedule has one.
    pub fn delay_before(&self, attempt: u32) -> Option<Duration> {
        self.0.get(attempt as usize).copied()
    }

    /// The longest delay in the schedule: the cap on `Retry-After`.
    pub fn longest(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }
}

/// `delay` scaled by a random factor between 0.8 and 1.2.
pub(crate) fn jittered(delay: Duration, rng: &mut impl Rng) -> Duration {
    if delay.is_zero() {
        return delay;
    }
    delay.mul_f64(rng.random_range(0.8..=1.2))
}

/// A `Retry-After` value: whole seconds, or an HTTP date (taken relative to `now`).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).ok()?);
    Some(at.duration_since(now).unwrap_or_default())
}

/// How an attempt ended, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// A 2xx response.
    Success,
    /// `410 Gone`: the partner wants no more.
    Gone,
    /// Any other status, a timeout or a connection error; with the `Retry-After` it asked for.
    Failure {
        /// The response's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
}

/// What becomes of a message after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Delivered: done.
    Delivered,
    /// Try again after this delay.
    RetryAfter(Duration),
    /// Every scheduled attempt failed: a dead letter.
    Dead,
    /// The endpoint is disabled; the message waits for it to be re-enabled.
    Parked,
}

/// The failure history of an endpoint, which decides when it is disabled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EndpointHealth {
    /// Since when (Unix ms) every attempt has failed; none while the last attempt succeeded.
    pub(crate) failing_since_ms: Option<i64>,
    /// Why and when the endpoint was disabled.
    pub(crate) disabled: Option<(i64, String)>,
}

/// Decides what follows an attempt of a message that has now had `attempts`
/// attempts, updating the endpoint's health. `now_ms` is Unix milliseconds.
pub(crate) fn next_step(
    reply: Reply,
    attempts: u32,
    schedule: &RetrySchedule,
    disable_after: Duration,
    health: &mut EndpointHealth,
    now_ms: i64,
    rng: &mut impl Rng,
) -> Next {
    match reply {
        Reply::Success => {
            health.failing_since_ms = None;
            return Next::Delivered;
        }
        Reply::Gone => {
            health.disabled.get_or_insert((now_ms, "the endpoint answered 410 Gone".into()));
        }
        Reply::Failure { .. } => {
            let since = *health.failing_since_ms.get_or_insert(now_ms);
            let failing_for = Duration::from_millis(u64::try_from(now_ms - since).unwrap_or(0));
            if failing_for >= disable_after && health.disabled.is_none() {
                health.disabled = Some((now_ms, format!("every attempt failed for {} s", failing_for.as_secs())));
            }
        }
    }
    if health.disabled.is_some() {
        return Next::Parked;
    }
    let Some(delay) = schedule.delay_before(attempts) else {
        return Next::Dead;
    };
    let mut delay = jittered(delay, rng);
    if let Reply::Failure { retry_after: Some(asked) } = reply {
        delay = delay.max(asked.min(schedule.longest()));
    }
    Next::RetryAfter(delay)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn schedule(text: &str) -> RetrySchedule {
        RetrySchedule::parse(text).unwrap()
    }

    const FAILURE: Reply = Reply::Failure { retry_after: None };
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn the_default_schedule_is_svix_s() {
        let default = RetrySchedule::default();
        assert_eq!(default, schedule("0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h"));
        assert_eq!(default.attempts(), 8);
        assert_eq!(default.longest(), Duration::from_secs(36_000));
        assert_eq!(default.delay_before(1), Some(Duration::from_secs(5)));
        assert_eq!(default.delay_before(8), None);
        assert_eq!(RetrySchedule::parse(""), None);
        assert_eq!(RetrySchedule::parse("1 s, soon"), None);
    }

    #[test]
    fn jitter_stays_within_a_fifth_and_varies() {
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..1_000).map(|_| jittered(Duration::from_secs(100), &mut rng)).collect();
        assert!(delays.iter().all(|d| (Duration::from_secs(80)..=Duration::from_secs(120)).contains(d)));
        assert!(delays.iter().any(|d| *d < Duration::from_secs(90)) && delays.iter().any(|d| *d > Duration::from_secs(110)));
        assert_eq!(jittered(Duration::ZERO, &mut rng), Duration::ZERO);
    }

    #[test]
    fn failures_follow_the_schedule_then_die() {
        let mut rng = StdRng::seed_from_u64(1);
        let schedule = schedule("0 s, 100 ms, 200 ms");
        let mut health = EndpointHealth::default();
        let mut step = |attempts| next_step(FAILURE, attempts, &schedule, DAY, &mut health, 1_000, &mut rng);
        assert!(matches!(step(1), Next::RetryAfter(d) if (80..=120).contains(&d.as_millis())));
        assert!(matches!(step(2), Next::RetryAfter(d) if (160..=240).contains(&d.as_millis())));
        assert_eq!(step(3), Next::Dead);
        assert_eq!(health.failing_since_ms, Some(1_000));
        assert_eq!(next_step(Reply::Success, 1, &schedule, DAY, &mut health, 2_000, &mut rng), Next::Delivered);
        assert_eq!(health.failing_since_ms, None);
    }

    #[test]
    fn retry_after_lengthens_the_delay_up_to_the_longest_one() {
        let mut rng = StdRng::seed_from_u64(2);
        let schedule = schedule("0 s, 1 s, 10 s");
        let mut health = EndpointHealth::default();
        let asked = |seconds| Reply::Failure {
            retry_after: Some(Duration::from_secs(seconds)),
        };
        assert_eq!(
            next_step(asked(5), 1, &schedule, DAY, &mut health, 0, &mut rng),
            Next::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            next_step(asked(3_600), 1, &schedule, DAY, &mut health, 0, &mut rng),
            Next::RetryAfter(Duration::from_secs(10))
        );
        // A shorter Retry-After does not shorten the schedule.
        assert!(matches!(next_step(asked(0), 1, &schedule, DAY, &mut health, 0, &mut rng), Next::RetryAfter(d) if d >= Duration::from_millis(800)));
    }

    #[test]
    fn gone_disables_and_parks() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut health = EndpointHealth::default();
        assert_eq!(
            next_step(Reply::Gone, 1, &RetrySchedule::default(), DAY, &mut health, 42, &mut rng),
            Next::Parked
        );
        assert_eq!(health.disabled, Some((42, "the endpoint answered 410 Gone".into())));
        // Later results of requests already under way change nothing.
        assert_eq!(next_step(FAILURE, 1, &RetrySchedule::default(), DAY, &mut health, 50, &mut rng), Next::Parked);
        assert_eq!(health.disabled.as_ref().map(|d| d.0), Some(42));
    }

    #[test]
    fn failing_past_disable_after_disables() {
        let mut rng = StdRng::seed_from_u64(4);
        let schedule = RetrySchedule::default();
        let mut health = EndpointHealth::default();
        let hour = Duration::from_secs(3_600);
        assert!(matches!(next_step(FAILURE, 1, &schedule, hour, &mut health, 0, &mut rng), Next::RetryAfter(_)));
        assert!(matches!(
            next_step(FAILURE, 2, &schedule, hour, &mut health, 3_599_999, &mut rng),
            Next::RetryAfter(_)
        ));
        assert_eq!(health.disabled, None);
        assert_eq!(next_step(FAILURE, 3, &schedule, hour, &mut health, 3_600_000, &mut rng), Next::Parked);
        assert_eq!(health.disabled, Some((3_600_000, "every attempt failed for 3600 s".into())));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
