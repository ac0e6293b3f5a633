//! Verifying and parsing inbound webhooks, with no I/O.
//!
//! Each provider module turns the raw bytes of one HTTP delivery into a typed event, in two
//! steps that the HTTP layer calls in this order:
//!
//! 1. **`verify`** checks authenticity on the **raw body bytes**, before anything trusts the
//!    content: Moyasar's `secret_token` in the body ([`moyasar`]), Calendly's
//!    `Calendly-Webhook-Signature` HMAC ([`calendly`]), and the Standard Webhooks signature used
//!    by our own partner and lead sources ([`standard`]). Every comparison of a secret or a
//!    signature is constant-time ([`constant_time_eq`]). Failure is
//!    [`WebhookError::Unauthenticated`] (HTTP 401).
//! 2. **`parse`** reads the JSON into a typed event and checks what we rely on (currency,
//!    signs of amounts, email shape). Failure is [`WebhookError::Malformed`] (HTTP 400), naming
//!    the JSON field that is wrong so the sender can fix it.
//!
//! Neither step reads a clock: `now_unix` is passed in, so timestamp tolerances are tested with
//! fixed times. Neither step panics on any input: parsers are fed arbitrary bytes in the tests.
//! Secrets are held in [`Secret`], whose `Debug` and `Display` print `[redacted]`, and no error
//! carries a secret or an expected signature.
//!
//! What happens after parsing (the inbox, idempotency by delivery id, parking, dead letters)
//! lives with the HTTP handlers; each parsed event says which delivery id the inbox should key on.

use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub mod calendly;
#[cfg(test)]
mod fuzz;
pub mod moyasar;
pub mod standard;

/// The largest webhook body the HTTP layer should accept (413 above it). Provider payloads are
/// a few KiB (the Standard Webhooks spec recommends under 20 KB); 256 KiB leaves ample room for
/// metadata while bounding what one request can make us parse and store in the inbox.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 256 * 1024;

/// The longest signature header we parse. Real headers are under 200 bytes (a timestamp and one
/// or two signatures); anything far larger is garbage or an attempt to make us do work.
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 2 * 1024;

/// The most signatures one header may carry. Key rotation needs two; a sender with more than a
/// handful of live keys is misconfigured, and each entry costs an HMAC comparison.
pub const MAX_SIGNATURES_PER_HEADER: usize = 8;

/// The longest piece of sender-controlled text quoted back in an error detail.
const MAX_QUOTED_CHARS: usize = 64;

/// Why a delivery failed authentication. Safe to log and to use as a metric label: no variant
/// carries a secret, a signature, or anything computed from a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// A required header is absent (its name is given).
    MissingHeader(&'static str),
    /// A header is present but not in the documented form (or too long).
    MalformedHeader(&'static str),
    /// Moyasar: the body has no readable `secret_token` string.
    MissingToken,
    /// The token or every signature in the header differs from what our secret gives.
    SignatureMismatch,
    /// The signed timestamp is outside the tolerance, in the past or the future.
    StaleTimestamp,
    /// None of the configured secrets is usable (empty list, or not `whsec_<base64>`): a
    /// configuration error on our side, logged as such.
    NoUsableSecret,
}

impl AuthFailure {
    /// A short, stable name for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthFailure::MissingHeader(_) => "missing_header",
            AuthFailure::MalformedHeader(_) => "malformed_header",
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::SignatureMismatch => "signature_mismatch",
            AuthFailure::StaleTimestamp => "stale_timestamp",
            AuthFailure::NoUsableSecret => "no_usable_secret",
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::MissingHeader(name) => write!(f, "missing header {name}"),
            AuthFailure::MalformedHeader(name) => write!(f, "malformed header {name}"),
            AuthFailure::MissingToken => f.write_str("missing or unreadable secret_token"),
            AuthFailure::SignatureMismatch => f.write_str("signature mismatch"),
            AuthFailure::StaleTimestamp => f.write_str("timestamp outside the tolerance"),
            AuthFailure::NoUsableSecret => f.write_str("no usable secret is configured"),
        }
    }
}

/// Why a webhook delivery was refused. Each variant maps to one HTTP status
/// ([`WebhookError::status_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Not shown to come from the provider: 401, and the delivery has no effect.
    #[error("unauthenticated: {reason}")]
    Unauthenticated { reason: AuthFailure },
    /// Authentic but not usable: 400, with `field` naming the JSON path (`data.currency`,
    /// `payload.email`, or `body` when the JSON itself does not parse).
    #[error("malformed field {field}: {detail}")]
    Malformed { field: String, detail: String },
}

impl WebhookError {
    /// The HTTP status this error answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            WebhookError::Unauthenticated { .. } => 401,
            WebhookError::Malformed { .. } => 400,
        }
    }

    pub(crate) fn unauthenticated(reason: AuthFailure) -> Self {
        WebhookError::Unauthenticated { reason }
    }

    pub(crate) fn malformed(field: impl Into<String>, detail: impl Into<String>) -> Self {
        WebhookError::Malformed {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// A secret (token, signing key) that must never be printed or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that computes or compares with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Compares two byte strings in constant time, including their lengths: both sides are hashed
/// with SHA-256 first, so neither where they first differ nor how long the expected value is
/// shows in the timing. Used for every secret and signature comparison in this module.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    let left = Sha256::digest(left);
    let right = Sha256::digest(right);
    left.ct_eq(&right).into()
}

/// Checks a signed Unix timestamp against `now_unix`, in both directions. A negative tolerance
/// is treated as zero. `abs_diff` cannot overflow, whatever the sender wrote.
pub(crate) fn check_timestamp(
    signed_unix: i64,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
    if signed_unix.abs_diff(now_unix) > tolerance {
        return Err(WebhookError::unauthenticated(AuthFailure::StaleTimestamp));
    }
    Ok(())
}

/// Quotes sender-controlled text in an error detail, cut to a bounded length.
pub(crate) fn quoted(text: &str) -> String {
    let mut cut: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("`{cut}`")
}

/// Parses a whole body as a JSON object. Invalid UTF-8, bad syntax, numbers out of range and
/// nesting deeper than serde_json's recursion limit all come back as errors, never panics.
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, WebhookError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| WebhookError::malformed("body", format!("malformed JSON: {error}")))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(WebhookError::malformed(
            "body",
            format!("expected a JSON object, found {}", kind_of(&other)),
        )),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON object being read, with the path that names its fields in errors.
///
/// Reading through this instead of `#[derive(Deserialize)]` is what lets every error name the
/// exact field (`data.amount`, `payload.scheduled_event.start_time`), which the API returns to
/// the sender.
pub(crate) struct Fields<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn root(map: &'a Map<String, Value>) -> Self {
        Fields {
            path: String::new(),
            map,
        }
    }

    /// The full path of a field of this object.
    pub(crate) fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> WebhookError {
        WebhookError::malformed(
            self.path_of(key),
            format!("expected {expected}, found {}", kind_of(found)),
        )
    }

    fn missing(&self, key: &str) -> WebhookError {
        WebhookError::malformed(self.path_of(key), "missing field")
    }

    /// The value, or `None` when the field is absent or `null`.
    fn present(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// An optional string, under the same text rule as the API's ([`domain::input`]): no NUL
    /// (PostgreSQL text cannot hold one) and at most the bound of a field of this name.
    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, WebhookError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(text)) => {
                domain::input::check_text(key, text).map_err(|error| self.refused(key, error))?;
                Ok(Some(text))
            }
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// The input rule `error` broke, as a malformed field named by its full path.
    fn refused(&self, key: &str, error: domain::input::InputError) -> WebhookError {
        let detail = match error {
            domain::input::InputError::TooLong { max_chars, .. } => {
                format!("longer than {max_chars} characters")
            }
            domain::input::InputError::Nul { .. } => "contains a NUL character".to_owned(),
            other => other.to_string(),
        };
        WebhookError::malformed(self.path_of(key), detail)
    }

    /// A required identifier (it names a stream): the API's grammar ([`domain::input::is_id`]).
    pub(crate) fn id(&self, key: &str) -> Result<String, WebhookError> {
        let value = self.text(key)?;
        domain::input::check_id(key, &value).map_err(|error| self.refused(key, error))?;
        Ok(value)
    }

    /// An optional identifier; blank counts as absent.
    pub(crate) fn opt_id(&self, key: &str) -> Result<Option<String>, WebhookError> {
        let value = self.opt_text(key)?;
        if let Some(id) = &value {
            domain::input::check_id(key, id).map_err(|error| self.refused(key, error))?;
        }
        Ok(value)
    }

    pub(crate) fn str(&self, key: &str) -> Result<&'a str, WebhookError> {
        self.opt_str(key)?.ok_or_else(|| self.missing(key))
    }

    /// A required string that is not blank, trimmed.
    pub(crate) fn text(&self, key: &str) -> Result<String, WebhookError> {
        let value = self.str(key)?.trim();
        if value.is_empty() {
            return Err(WebhookError::malformed(
                self.path_of(key),
                "must not be empty",
            ));
        }
        Ok(value.to_owned())
    }

    /// An optional string, trimmed; blank counts as absent.
    pub(crate) fn opt_text(&self, key: &str) -> Result<Option<String>, WebhookError> {
        Ok(self
            .opt_str(key)?
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned))
    }

    /// A required email address: trimmed, lowercased, and containing an `@` between two
    /// non-empty parts. Deliberately no stricter: the address is a matching key, not a route.
    pub(crate) fn email(&self, key: &str) -> Result<String, WebhookError> {
        let email = self.text(key)?.to_lowercase();
        match email.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(email),
            _ => Err(WebhookError::malformed(
                self.path_of(key),
                "not an email address (expected local@domain)",
            )),
        }
    }

    pub(crate) fn opt_i64(&self, key: &str) -> Result<Option<i64>, WebhookError> {
        match self.present(key) {
            None => Ok(None),
            Some(value @ Value::Number(number)) => number
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a whole number within 64 bits", value)),
            Some(other) => Err(self.wrong_type(key, "a whole number", other)),
        }
    }

    pub(crate) fn i64(&self, key: &str) -> Result<i64, WebhookError> {
        self.opt_i64(key)?.ok_or_else(|| self.missing(key))
    }

    /// A required whole number that is zero or more.
    pub(crate) fn non_negative(&self, key: &str) -> Result<i64, WebhookError> {
        let value = self.i64(key)?;
        if value < 0 {
            return Err(WebhookError::malformed(
                self.path_of(key),
                format!("must not be negative, found {value}"),
            ));
        }
        Ok(value)
    }

    /// A required amount in halalas: zero or more, and within the amount ceiling
    /// ([`domain::money::MAX_AMOUNT_HALALAS`]).
    pub(crate) fn amount_halalas(&self, key: &str) -> Result<i64, WebhookError> {
        let value = self.non_negative(key)?;
        domain::money::Halalas(value)
            .within_ceiling(&self.path_of(key))
            .map_err(|error| WebhookError::malformed(self.path_of(key), error.to_string()))?;
        Ok(value)
    }

    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>, WebhookError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<bool, WebhookError> {
        self.opt_bool(key)?.ok_or_else(|| self.missing(key))
    }

    pub(crate) fn opt_object(&self, key: &str) -> Result<Option<Fields<'a>>, WebhookError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields {
                path: self.path_of(key),
                map,
            })),
            Some(other) => Err(self.wrong_type(key, "an object", other)),
        }
    }

    pub(crate) fn object(&self, key: &str) -> Result<Fields<'a>, WebhookError> {
        self.opt_object(key)?.ok_or_else(|| self.missing(key))
    }

    /// An object field as a map; absent or `null` is an empty map.
    pub(crate) fn map_or_empty(&self, key: &str) -> Result<Map<String, Value>, WebhookError> {
        Ok(self
            .opt_object(key)?
            .map(|fields| fields.map.clone())
            .unwrap_or_default())
    }

    pub(crate) fn opt_datetime(&self, key: &str) -> Result<Option<OffsetDateTime>, WebhookError> {
        let Some(text) = self.opt_str(key)? else {
            return Ok(None);
        };
        OffsetDateTime::parse(text, &Rfc3339)
            .map(Some)
            .map_err(|_| {
                WebhookError::malformed(
                    self.path_of(key),
                    format!("expected an RFC 3339 timestamp, found {}", quoted(text)),
                )
            })
    }

    pub(crate) fn datetime(&self, key: &str) -> Result<OffsetDateTime, WebhookError> {
        self.opt_datetime(key)?.ok_or_else(|| self.missing(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_prints_as_redacted_in_debug_and_display() {
        let secret = Secret::new("hunter2-super-secret");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose(), "hunter2-super-secret");
    }

    #[test]
    fn constant_time_eq_tells_equal_from_different_values_of_any_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn each_error_maps_to_its_http_status() {
        let unauthenticated = WebhookError::unauthenticated(AuthFailure::SignatureMismatch);
        let malformed = WebhookError::malformed("data.currency", "expected SAR");
        assert_eq!(unauthenticated.status_code(), 401);
        assert_eq!(malformed.status_code(), 400);
        assert_eq!(
            malformed.to_string(),
            "malformed field data.currency: expected SAR"
        );
    }

    #[test]
    fn a_timestamp_is_accepted_up_to_the_tolerance_in_both_directions() {
        assert!(check_timestamp(1_000, 1_000, 0).is_ok());
        assert!(check_timestamp(820, 1_000, 180).is_ok());
        assert!(check_timestamp(1_180, 1_000, 180).is_ok());
        assert!(check_timestamp(819, 1_000, 180).is_err());
        assert!(check_timestamp(1_181, 1_000, 180).is_err());
        assert!(check_timestamp(i64::MIN, i64::MAX, 180).is_err());
        assert!(check_timestamp(1_000, 1_000, -5).is_ok());
        assert!(check_timestamp(1_001, 1_000, -5).is_err());
    }

    #[test]
    fn a_quoted_detail_is_cut_to_a_bounded_length() {
        let long = "x".repeat(1_000);
        assert!(quoted(&long).chars().count() < 70);
        assert_eq!(quoted("short"), "`short`");
    }

    #[test]
    fn an_email_is_trimmed_lowercased_and_must_have_two_parts() {
        let map = parse_object(br#"{"a":"  Ali@Example.COM ","b":"no-at","c":"@x","d":"x@"}"#)
            .expect("valid json");
        let fields = Fields::root(&map);
        assert_eq!(fields.email("a").unwrap(), "ali@example.com");
        for key in ["b", "c", "d"] {
            let error = fields.email(key).unwrap_err();
            assert!(matches!(error, WebhookError::Malformed { ref field, .. } if field == key));
        }
    }
}
