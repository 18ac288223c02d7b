//! The options of a `webhook` sink table.

use std::path::PathBuf;
use std::time::Duration;

use carbonflow_core::{ConnectorConfig, OptionError};
use reqwest::Url;

use super::network::refused_host;
use super::retry::RetrySchedule;
use super::signature::SigningSecret;
use crate::duration::{DURATION_FORM, parse_duration};

const URL: &str = "url";
const SECRET: &str = "secret";
const OUTBOX: &str = "outbox";
const FORMAT: &str = "format";
const RETRACTIONS: &str = "retractions";
const BATCH_SIZE: &str = "batch.size";
const RATE_LIMIT: &str = "rate-limit";
const TIMEOUT: &str = "timeout";
const MAX_IN_FLIGHT: &str = "max-in-flight";
const RETRY_SCHEDULE: &str = "retry.schedule";
const DISABLE_AFTER: &str = "disable-after";
const ALLOW_PRIVATE_NETWORK: &str = "allow-private-network";
const DRAIN_TIMEOUT: &str = "drain-timeout";
const RETENTION: &str = "outbox.retention";

const OPTIONS: &[&str] = &[
    URL,
    SECRET,
    OUTBOX,
    FORMAT,
    RETRACTIONS,
    BATCH_SIZE,
    RATE_LIMIT,
    TIMEOUT,
    MAX_IN_FLIGHT,
    RETRY_SCHEDULE,
    DISABLE_AFTER,
    ALLOW_PRIVATE_NETWORK,
    DRAIN_TIMEOUT,
    RETENTION,
];

/// The key an event carries its change kind under when retractions are delivered.
pub(super) const OP_KEY: &str = "op";

/// The most alerts one request may carry.
const MAX_BATCH_SIZE: usize = 1_000;

/// The most requests in flight to one endpoint.
const MAX_IN_FLIGHT_LIMIT: usize = 1_024;

/// How bodies are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`.
    Json,
    /// `application/msgpack`: the same structure as the JSON body, in MessagePack.
    MessagePack,
}

impl BodyFormat {
    /// The `content-type` header of a body.
    pub fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::MessagePack => "application/msgpack",
        }
    }
}

/// What a retraction of an alert row becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retractions {
    /// Nothing: partners receive each alert once, when it first holds. A
    /// revision that withdraws an alert sends nothing.
    Ignore,
    /// An event with `"op": "delete"`; insertions carry `"op": "insert"`.
    Deliver,
}

/// The options of a `webhook` sink table. Every option but `url`, `secret`
/// and `outbox` has a default.
#[derive(Clone, Debug)]
pub struct WebhookSinkOptions {
    /// `url` (required): the partner's `http://` or `https://` endpoint.
    pub url: Url,
    /// `secret` (required): one or more `whsec_<base64>` secrets, comma-separated;
    /// every one signs each request (rotation). Usually `'${ENV_VAR}'`.
    pub secrets: Vec<SigningSecret>,
    /// `outbox` (required): the redb file holding deliveries and their audit trail.
    pub outbox: PathBuf,
    /// `format`: `json` (the default) or `msgpack`.
    pub format: BodyFormat,
    /// `retractions`: `ignore` (the default) or `deliver`.
    pub retractions: Retractions,
    /// `batch.size`: the most alerts per request, 1 (the default) to 1000.
    /// Above 1, a body is an array of `{"id", "data"}` objects.
    pub batch_size: usize,
    /// `rate-limit`: the most requests per second to the endpoint, as `'20'`,
    /// `'20/s'`, `'100/min'` or `'500/h'`; unlimited by default.
    pub rate_limit: Option<f64>,
    /// `timeout`: how long one request may take, connection included; 15 s by default.
    pub timeout: Duration,
    /// `max-in-flight`: the most requests under way to the endpoint at once; 16 by default.
    pub max_in_flight: usize,
    /// `retry.schedule`: the delay before each attempt, comma-separated, the
    /// first usually 0; by default `'0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h'`.
    pub retry_schedule: RetrySchedule,
    /// `disable-after`: an endpoint failing without a success for this long is
    /// disabled; 5 days by default.
    pub disable_after: Duration,
    /// `allow-private-network`: allow loopback, private and link-local
    /// addresses; false by default.
    pub allow_private_network: bool,
    /// `drain-timeout`: how long the end of a run waits for pending
    /// deliveries; 30 s by default.
    pub drain_timeout: Duration,
    /// `outbox.retention`: how long delivered messages and attempts are kept
    /// (and replays of them recognised); 7 days by default.
    pub retention: Duration,
}

impl WebhookSinkOptions {
    /// Reads and checks the options of a `webhook` sink table.
    pub fn parse(config: &ConnectorConfig) -> Result<WebhookSinkOptions, OptionError> {
        config.reject_unknown_options(OPTIONS)?;
        let allow_private_network = config.flag(ALLOW_PRIVATE_NETWORK, false)?;
        let url = parse_url(config.required(URL)?, allow_private_network)?;
        let secrets = SigningSecret::parse_list(config.required(SECRET)?).map_err(|error| OptionError::Invalid {
            key: SECRET.into(),
            // Never echo a secret, even a broken one.
            value: "<redacted>".into(),
            expected: format!("list of '{}' secrets: {error}", super::signature::SECRET_PREFIX),
        })?;
        let outbox = config.required(OUTBOX)?;
        if outbox.trim().is_empty() {
            return Err(OptionError::Invalid {
                key: OUTBOX.into(),
                value: outbox.into(),
                expected: "file path".into(),
            });
        }
        let format = choice(config, FORMAT, &[("json", BodyFormat::Json), ("msgpack", BodyFormat::MessagePack)])?;
        let retractions = choice(config, RETRACTIONS, &[("ignore", Retractions::Ignore), ("deliver", Retractions::Deliver)])?;
        if retractions == Retractions::Deliver && config.schema.index_of(OP_KEY).is_some() {
            return Err(OptionError::Column {
                column: OP_KEY.into(),
                message: "clashes with the 'op' key of delivered retractions; rename the column".into(),
            });
        }
        let positive_duration = |key: &str, default: Duration| -> Result<Duration, OptionError> {
            Ok(config
                .parsed(key, &format!("positive {DURATION_FORM}"), |text| parse_duration(text).filter(|d| !d.is_zero()))?
                .unwrap_or(default))
        };
        Ok(WebhookSinkOptions {
            url,
            secrets,
            outbox: PathBuf::from(outbox),
            format,
            retractions,
            batch_size: config
                .parsed(BATCH_SIZE, &format!("count from 1 to {MAX_BATCH_SIZE}"), |text| {
                    text.trim().parse().ok().filter(|n| (1..=MAX_BATCH_SIZE).contains(n))
                })?
                .unwrap_or(1),
            rate_limit: config.parsed(RATE_LIMIT, "rate (such as '20', '20/s', '100/min', '500/h')", parse_rate)?,
            timeout: positive_duration(TIMEOUT, Duration::from_secs(15))?,
            max_in_flight: config
                .parsed(MAX_IN_FLIGHT, &format!("count from 1 to {MAX_IN_FLIGHT_LIMIT}"), |text| {
                    text.trim().parse().ok().filter(|n| (1..=MAX_IN_FLIGHT_LIMIT).contains(n))
                })?
                .unwrap_or(16),
            retry_schedule: config
                .parsed(RETRY_SCHEDULE, &format!("comma-separated list of {DURATION_FORM}"), RetrySchedule::parse)?
                .unwrap_or_default(),
            disable_after: positive_duration(DISABLE_AFTER, Duration::from_secs(5 * 86_400))?,
            allow_private_network,
            drain_timeout: config.parsed(DRAIN_TIMEOUT, DURATION_FORM, parse_duration)?.unwrap_or(Duration::from_secs(30)),
            retention: positive_duration(RETENTION, Duration::from_secs(7 * 86_400))?,
        })
    }
}

/// One of a few words (case-insensitive); the first is the default.
fn choice<T: Copy>(config: &ConnectorConfig, key: &str, choices: &[(&str, T)]) -> Result<T, OptionError> {
    let names: Vec<String> = choices.iter().map(|(name, _)| format!("'{name}'")).collect();
    let expected = format!("choice ({})", names.join(" or "));
    let chosen = config.parsed(key, &expected, |text| {
        choices.iter().find(|(name, _)| name.eq_ignore_ascii_case(text.trim())).map(|(_, value)| *value)
    })?;
    Ok(chosen.unwrap_or(choices[0].1))
}

fn parse_url(text: &str, allow_private_network: bool) -> Result<Url, OptionError> {
    let invalid = |expected: String| OptionError::Invalid {
        key: URL.into(),
        value: text.into(),
        expected,
    };
    let url = Url::parse(text.trim()).map_err(|error| invalid(format!("http(s) URL ({error})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("http(s) URL with a host".into()));
    }
    if !allow_private_network && let Some(reason) = refused_host(&url) {
        return Err(invalid(format!(
            "public URL: {reason} (set '{ALLOW_PRIVATE_NETWORK}' = 'true' to allow loopback, private and link-local addresses)"
        )));
    }
    Ok(url)
}

/// `N`, `N/s`, `N/min` or `N/h` (N may have a fraction), as requests per second.
fn parse_rate(text: &str) -> Option<f64> {
    let (count, per) = text.split_once('/').unwrap_or((text, "s"));
    let seconds = match per.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" => 1.0,
        "min" | "minute" => 60.0,
        "h" | "hour" => 3_600.0,
        _ => return None,
    };
    let count: f64 = count.trim().parse().ok()?;
    (count.is_finite() && count > 0.0).then_some(count / seconds)
}

#[cfg(test)]
mod tests {
    use carbonflow_core::{DataType, Field, Schema};

    use super::*;

    const SECRET_VALUE: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn config(options: &[(&str, &str)], columns: &[&str]) -> ConnectorConfig {
        let mut all = vec![
            ("connector", "webhook"),
            (URL, "https://partner.example.com/hook"),
            (SECRET, SECRET_VALUE),
            (OUTBOX, "out.redb"),
        ];
        all.extend_from_slice(options);
        let schema = Schema::new(columns.iter().map(|name| Field::new(*name, DataType::String)).collect());
        crate::webhook::tests::declaration("alerts", schema, &all)
    }

    #[test]
    fn defaults_follow_the_documented_values() {
        let options = WebhookSinkOptions::parse(&config(&[], &["node"])).unwrap();
        assert_eq!(options.url.as_str(), "https://partner.example.com/hook");
        assert_eq!(options.secrets.len(), 1);
        assert_eq!(options.outbox, PathBuf::from("out.redb"));
        assert_eq!(options.format, BodyFormat::Json);
        assert_eq!(options.retractions, Retractions::Ignore);
        assert_eq!(options.batch_size, 1);
        assert_eq!(options.rate_limit, None);
        assert_eq!(options.timeout, Duration::from_secs(15));
        assert_eq!(options.max_in_flight, 16);
        assert_eq!(options.retry_schedule, RetrySchedule::default());
        assert_eq!(options.disable_after, Duration::from_secs(5 * 86_400));
        assert!(!options.allow_private_network);
        assert_eq!(options.drain_timeout, Duration::from_secs(30));
        assert_eq!(options.retention, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn every_option_is_read() {
        let options = WebhookSinkOptions::parse(&config(
            &[
                (URL, "http://127.0.0.1:9/x"),
                (ALLOW_PRIVATE_NETWORK, "true"),
                (SECRET, &format!("{SECRET_VALUE},{SECRET_VALUE}")),
                (FORMAT, "MsgPack"),
                (RETRACTIONS, "deliver"),
                (BATCH_SIZE, "50"),
                (RATE_LIMIT, "120/min"),
                (TIMEOUT, "2 s"),
                (MAX_IN_FLIGHT, "4"),
                (RETRY_SCHEDULE, "0s, 100ms, 200ms"),
                (DISABLE_AFTER, "1 h"),
                (DRAIN_TIMEOUT, "0 s"),
                (RETENTION, "1 d"),
            ],
            &["node"],
        ))
        .unwrap();
        assert_eq!(options.secrets.len(), 2);
        assert_eq!(options.format, BodyFormat::MessagePack);
        assert_eq!(options.retractions, Retractions::Deliver);
        assert_eq!(options.batch_size, 50);
        assert_eq!(options.rate_limit, Some(2.0));
        assert_eq!(options.timeout, Duration::from_secs(2));
        assert_eq!(options.max_in_flight, 4);
        assert_eq!(options.retry_schedule.attempts(), 3);
        assert_eq!(options.disable_after, Duration::from_secs(3_600));
        assert_eq!(options.drain_timeout, Duration::ZERO);
        assert_eq!(options.retention, Duration::from_secs(86_400));
    }

    #[test]
    fn private_urls_need_the_allow_option() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://[::1]:80/",
            "http://10.0.0.7/",
            "http://169.254.169.254/",
        ] {
            let error = WebhookSinkOptions::parse(&config(&[(URL, url)], &[])).unwrap_err();
            assert!(matches!(&error, OptionError::Invalid { key, .. } if key == URL), "{url}: {error}");
            assert!(error.to_string().contains(ALLOW_PRIVATE_NETWORK), "{error}");
            WebhookSinkOptions::parse(&config(&[(URL, url), (ALLOW_PRIVATE_NETWORK, "true")], &[])).unwrap();
        }
        for url in ["ftp://partner.example.com/", "not a url", "mailto:ops@partner.example.com"] {
            assert!(WebhookSinkOptions::parse(&config(&[(URL, url)], &[])).is_err(), "{url}");
        }
    }

    #[test]
    fn bad_secrets_are_reported_without_their_value() {
        let leaked = "whsec_c2hvcnQ=";
        let error = WebhookSinkOptions::parse(&config(&[(SECRET, leaked)], &[])).unwrap_err();
        assert!(matches!(&error, OptionError::Invalid { key, .. } if key == SECRET));
        assert!(!error.to_string().contains("c2hvcnQ"), "{error}");
        assert!(!format!("{error:?}").contains("c2hvcnQ"), "{error:?}");
        let options = WebhookSinkOptions::parse(&config(&[], &[])).unwrap();
        assert!(!format!("{options:?}").contains("MfKQ9r8G"));
    }

    #[test]
    fn values_out_of_range_are_refused() {
        for (key, value) in [
            (BATCH_SIZE, "0"),
            (BATCH_SIZE, "1001"),
            (MAX_IN_FLIGHT, "0"),
            (RATE_LIMIT, "0"),
            (RATE_LIMIT, "5/week"),
            (TIMEOUT, "0 s"),
            (RETRY_SCHEDULE, ""),
            (RETRY_SCHEDULE, "1 s,,2 s"),
            (FORMAT, "xml"),
            (RETRACTIONS, "sometimes"),
            (OUTBOX, " "),
        ] {
            let error = WebhookSinkOptions::parse(&config(&[(key, value)], &[])).unwrap_err();
            assert!(matches!(&error, OptionError::Invalid { key: k, .. } if k == key), "{key}={value}: {error}");
        }
        assert!(matches!(
            WebhookSinkOptions::parse(&config(&[("path", "x")], &[])),
            Err(OptionError::Unknown { key, .. }) if key == "path"
        ));
        assert!(
            matches!(WebhookSinkOptions::parse(&config(&[(RETRACTIONS, "deliver")], &["op"])), Err(OptionError::Column { column, .. }) if column == OP_KEY)
        );
    }

    #[test]
    fn rates_take_a_unit() {
        assert_eq!(parse_rate("20"), Some(20.0));
        assert_eq!(parse_rate("0.5/s"), Some(0.5));
        assert_eq!(parse_rate("90 / min"), Some(1.5));
        assert_eq!(parse_rate("3600/h"), Some(1.0));
        for bad in ["", "-1", "NaN", "inf", "1/fortnight", "a/s"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }
}
