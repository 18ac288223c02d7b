//! Standard Webhooks signatures: signing what the sink sends and verifying
//! what a receiver gets.
//!
//! A request carries three headers: `webhook-id` (the message's id, the same
//! on every retry), `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature`, a space-separated list of `v1,<base64 signature>`:
//! the HMAC-SHA256 of `{id}.{timestamp}.{body}` under each secret in use. A
//! secret is written `whsec_<base64 key>`; several secrets sign together while
//! one is rotated out, and a receiver accepts a request when any signature
//! matches any secret it knows.
//!
//! Secrets are never printed: [`SigningSecret`]'s `Debug` hides the key and
//! no error here quotes a secret or a signature.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;

/// How a secret is written: this prefix, then the key in standard base64.
pub const SECRET_PREFIX: &str = "whsec_";

/// The shortest key the specification allows (192 bits).
pub const MIN_KEY_BYTES: usize = 24;

/// The longest key accepted (512 bits, HMAC-SHA256's block size).
pub const MAX_KEY_BYTES: usize = 64;

/// The version tag of an HMAC-SHA256 signature.
const SCHEME: &str = "v1";

/// How far a request's timestamp may be from the receiver's clock, in either
/// direction, before it is refused as a replay (the specification's usual five minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// A `whsec_` signing secret: an HMAC-SHA256 key.
#[derive(Clone)]
pub struct SigningSecret {
    key: hmac::Key,
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// Why a secret cannot be used. The messages never quote the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No secret at all (an empty entry in a list).
    #[error("a secret is empty")]
    Empty,
    /// The text does not start with `whsec_`.
    #[error("a secret must start with '{SECRET_PREFIX}'")]
    MissingPrefix,
    /// What follows `whsec_` is not standard base64.
    #[error("a secret's key (after '{SECRET_PREFIX}') is not valid base64")]
    NotBase64,
    /// The key is too short or too long.
    #[error("a secret's key is {bytes} bytes; it must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES}")]
    Length {
        /// The decoded key's length.
        bytes: usize,
    },
}

impl SigningSecret {
    /// Reads one `whsec_<base64>` secret.
    pub fn parse(text: &str) -> Result<SigningSecret, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::Length { bytes: key.len() });
        }
        Ok(SigningSecret {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        })
    }

    /// Reads a comma-separated list of secrets (the new one and those being rotated out).
    pub fn parse_list(text: &str) -> Result<Vec<SigningSecret>, SecretError> {
        text.split(',').map(SigningSecret::parse).collect()
    }
}

/// What is signed: `{id}.{timestamp}.{body}`.
fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// The `webhook-signature` header of a request: one `v1,<base64>` per
/// secret, space-separated, in the order the secrets were given.
pub fn sign(secrets: &[SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    let content = signed_content(id, timestamp, body);
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| format!("{SCHEME},{}", BASE64.encode(hmac::sign(&secret.key, &content))))
        .collect();
    signatures.join(" ")
}

/// The three Standard Webhooks headers of a received request, as sent.
#[derive(Clone, Copy, Debug)]
pub struct WebhookHeaders<'a> {
    /// `webhook-id`.
    pub id: &'a str,
    /// `webhook-timestamp`: Unix seconds, as text.
    pub timestamp: &'a str,
    /// `webhook-signature`: space-separated `version,signature` pairs.
    pub signature: &'a str,
}

/// Why a request does not verify. The messages quote no signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-id` is empty.
    #[error("the webhook-id header is empty")]
    MissingId,
    /// `webhook-timestamp` is not a whole number of seconds.
    #[error("the webhook-timestamp header is not Unix seconds")]
    BadTimestamp,
    /// The timestamp is further from the receiver's clock than the tolerance.
    #[error("the webhook-timestamp is {seconds} s away from now, beyond the tolerance")]
    OutsideTolerance {
        /// How far from now, in seconds (negative: in the past).
        seconds: i64,
    },
    /// No `v1` signature in the header matches any of the secrets.
    #[error("no signature matches")]
    NoMatch,
}

/// Checks a received request: its timestamp within `tolerance` of `now`
/// (Unix seconds), and at least one `v1` signature matching one of `secrets`.
/// Signatures of other schemes (such as `v1a`) and malformed entries are
/// skipped, as the specification asks.
pub fn verify(secrets: &[SigningSecret], headers: WebhookHeaders<'_>, body: &[u8], now: i64, tolerance: Duration) -> Result<(), VerifyError> {
    if headers.id.is_empty() {
        return Err(VerifyError::MissingId);
    }
    let timestamp: i64 = headers.timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    let offset = timestamp.saturating_sub(now);
    if offset.unsigned_abs() > tolerance.as_secs() {
        return Err(VerifyError::OutsideTolerance { seconds: offset });
    }
    let candidates = headers
        .signature
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(scheme, _)| *scheme == SCHEME)
        .filter_map(|(_, encoded)| BASE64.decode(encoded).ok());
    let content = signed_content(headers.id, timestamp, body);
    for signature in candidates {
        // ring compares in constant time.
        if secrets.iter().any(|secret| hmac::verify(&secret.key, &content, &signature).is_ok()) {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example published with the Standard Webhooks specification's
    // reference libraries: matching it byte for byte is what says a partner's
    // off-the-shelf verifier accepts what we send.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    /// A second secret, 32 bytes of 0x2a.
    const OTHER_SECRET: &str = "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

    fn secret(text: &str) -> SigningSecret {
        SigningSecret::parse(text).unwrap()
    }

    fn headers<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> WebhookHeaders<'a> {
        WebhookHeaders { id, timestamp, signature }
    }

    #[test]
    fn signing_reproduces_the_specification_example() {
        assert_eq!(sign(&[secret(SPEC_SECRET)], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY), SPEC_SIGNATURE);
    }

    #[test]
    fn the_specification_example_verifies() {
        let secrets = [secret(SPEC_SECRET)];
        let sent = headers(SPEC_ID, "1614265330", SPEC_SIGNATURE);
        assert_eq!(verify(&secrets, sent, SPEC_BODY, SPEC_TIMESTAMP, DEFAULT_TOLERANCE), Ok(()));
        // One changed byte anywhere in the signed content breaks it.
        assert_eq!(
            verify(&secrets, sent, br#"{"test": 2432232315}"#, SPEC_TIMESTAMP, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatch)
        );
        let other_id = headers("msg_p5jXN8AQM9LWM0D4loKWxJel", "1614265330", SPEC_SIGNATURE);
        assert_eq!(
            verify(&secrets, other_id, SPEC_BODY, SPEC_TIMESTAMP, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatch)
        );
        let other_time = headers(SPEC_ID, "1614265331", SPEC_SIGNATURE);
        assert_eq!(
            verify(&secrets, other_time, SPEC_BODY, SPEC_TIMESTAMP, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&[secret(OTHER_SECRET)], sent, SPEC_BODY, SPEC_TIMESTAMP, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused() {
        let secrets = [secret(SPEC_SECRET)];
        let sent = headers(SPEC_ID, "1614265330", SPEC_SIGNATURE);
        let tolerance = Duration::from_secs(300);
        assert_eq!(verify(&secrets, sent, SPEC_BODY, SPEC_TIMESTAMP + 300, tolerance), Ok(()));
        assert_eq!(verify(&secrets, sent, SPEC_BODY, SPEC_TIMESTAMP - 300, tolerance), Ok(()));
        assert_eq!(
            verify(&secrets, sent, SPEC_BODY, SPEC_TIMESTAMP + 301, tolerance),
            Err(VerifyError::OutsideTolerance { seconds: -301 })
        );
        assert_eq!(
            verify(&secrets, sent, SPEC_BODY, SPEC_TIMESTAMP - 301, tolerance),
            Err(VerifyError::OutsideTolerance { seconds: 301 })
        );
        let garbled = headers(SPEC_ID, "16142653x0", SPEC_SIGNATURE);
        assert_eq!(verify(&secrets, garbled, SPEC_BODY, SPEC_TIMESTAMP, tolerance), Err(VerifyError::BadTimestamp));
        assert_eq!(
            verify(&secrets, headers("", "1614265330", SPEC_SIGNATURE), SPEC_BODY, SPEC_TIMESTAMP, tolerance),
            Err(VerifyError::MissingId)
        );
    }

    #[test]
    fn rotation_signs_with_every_secret_and_either_verifies() {
        let both = [secret(OTHER_SECRET), secret(SPEC_SECRET)];
        let header = sign(&both, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY);
        let signatures: Vec<&str> = header.split(' ').collect();
        assert_eq!(signatures.len(), 2);
        assert_eq!(signatures[1], SPEC_SIGNATURE);
        assert_ne!(signatures[0], SPEC_SIGNATURE);
        let sent = headers(SPEC_ID, "1614265330", &header);
        // A receiver that knows only the old secret, only the new one, or both, accepts.
        for known in [vec![secret(SPEC_SECRET)], vec![secret(OTHER_SECRET)], both.to_vec()] {
            assert_eq!(verify(&known, sent, SPEC_BODY, SPEC_TIMESTAMP, DEFAULT_TOLERANCE), Ok(()));
        }
    }

    #[test]
    fn unknown_schemes_and_malformed_entries_are_skipped() {
        let secrets = [secret(SPEC_SECRET)];
        let header = format!("v1a,c2lnbmF0dXJl v1,@@notbase64@@ garbage {SPEC_SIGNATURE}");
        assert_eq!(
            verify(&secrets, headers(SPEC_ID, "1614265330", &header), SPEC_BODY, SPEC_TIMESTAMP, DEFAULT_TOLERANCE),
            Ok(())
        );
        // The right signature under another scheme's tag does not count.
        let retagged = SPEC_SIGNATURE.replacen("v1,", "v2,", 1);
        assert_eq!(
            verify(
                &secrets,
                headers(SPEC_ID, "1614265330", &retagged),
                SPEC_BODY,
                SPEC_TIMESTAMP,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn sign_and_verify_round_trip_over_many_messages() {
        let secrets = SigningSecret::parse_list(&format!("{SPEC_SECRET}, {OTHER_SECRET}")).unwrap();
        for n in 0..200_i64 {
            let id = format!("msg_{n:032x}");
            let body = format!("{{\"n\":{n},\"text\":\"{}\"}}", "é.".repeat(n as usize % 7));
            let timestamp = SPEC_TIMESTAMP + n * 97;
            let header = sign(&secrets, &id, timestamp, body.as_bytes());
            let timestamp_text = timestamp.to_string();
            let sent = headers(&id, &timestamp_text, &header);
            assert_eq!(verify(&secrets[1..], sent, body.as_bytes(), timestamp + 10, DEFAULT_TOLERANCE), Ok(()), "{n}");
        }
    }

    #[test]
    fn bad_secrets_are_refused_without_quoting_them() {
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::MissingPrefix
        );
        assert_eq!(SigningSecret::parse("whsec_not*base64").unwrap_err(), SecretError::NotBase64);
        assert_eq!(SigningSecret::parse("whsec_c2hvcnQ=").unwrap_err(), SecretError::Length { bytes: 5 });
        assert_eq!(SigningSecret::parse_list(&format!("{SPEC_SECRET},")).unwrap_err(), SecretError::Empty);
        let secret = secret(SPEC_SECRET);
        assert!(!format!("{secret:?}").contains("MfKQ"));
        for error in [SecretError::MissingPrefix, SecretError::NotBase64, SecretError::Length { bytes: 5 }] {
            assert!(!error.to_string().contains("MfKQ"));
        }
    }
}
