//! Our partner and lead sources (landing page, partner application form), signed with the
//! Standard Webhooks scheme.
//!
//! **Authenticity** ([`verify`]). Three headers: `webhook-id` (stable across retries: the inbox
//! key), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`, a
//! space-separated list of `v1,<base64>` entries. Each signature is the base64 HMAC-SHA256 of
//! `"{id}.{timestamp}.{raw body}"`, keyed with the bytes that the secret's `whsec_<base64>`
//! form encodes. A delivery is authentic when any `v1` entry matches under any configured
//! secret, which is how keys rotate: the sender signs with old and new keys for a while, or we
//! accept both. Entries of other versions (`v1a` is the spec's asymmetric scheme) are ignored.
//! The timestamp must be within the tolerance ([`DEFAULT_TOLERANCE_SECS`], five minutes) of
//! `now_unix` in either direction. [`sign`] produces the header for tests and senders.
//!
//! **Events** ([`parse`]). `{"type", "timestamp", "data"}` as the spec recommends: `lead.captured`
//! from the landing page or a partner's referral form, and `partner.applied`. The delivery id is
//! the `webhook-id` header, which the HTTP layer passes to the inbox; it is not in the body.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use super::{
    check_timestamp, constant_time_eq, parse_object, quoted, AuthFailure, Fields, Secret,
    WebhookError, MAX_SIGNATURES_PER_HEADER, MAX_SIGNATURE_HEADER_BYTES,
};

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The spec's prefix for symmetric secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// Five minutes either way, the tolerance the Standard Webhooks libraries use.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The longest `webhook-id` we accept. Ids are short (`msg_` and 27 characters in the spec's
/// examples); the id is also our inbox key, so it is bounded like any stored field.
pub const MAX_ID_BYTES: usize = 256;

/// The `lead.captured` source when the sender does not name one.
pub const DEFAULT_LEAD_SOURCE: &str = "landing_page";

type HmacSha256 = Hmac<Sha256>;

/// The three Standard Webhooks headers as received; `None` when absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardWebhookHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A configured secret that is not `whsec_<base64>` (or plain base64).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Standard Webhooks secret must be `whsec_` followed by base64 of at least one byte")]
pub struct InvalidSecret;

/// The HMAC key a secret stands for: the bytes after `whsec_`, base64-decoded. Like the
/// reference libraries, the prefix is optional. Call at startup on each configured secret so a
/// bad one fails loudly there instead of turning every delivery into a 401.
pub fn decode_secret(secret: &Secret) -> Result<Vec<u8>, InvalidSecret> {
    let encoded = secret.expose().trim();
    let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
    match BASE64.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err(InvalidSecret),
    }
}

/// Checks the three headers against the raw body and any of `secrets`.
///
/// Failure reasons: a missing header; a malformed one (an id that is empty, too long or holds a
/// `.`, which would make the signed content ambiguous; a timestamp that is not Unix seconds; a
/// signature header with no `version,signature` entry or too many); no usable secret; no
/// matching `v1` signature; a timestamp outside the tolerance. The signature is checked before
/// the timestamp, so "stale" is only ever said of a delivery that was genuinely signed.
pub fn verify(
    headers: StandardWebhookHeaders<'_>,
    body: &[u8],
    secrets: &[Secret],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let missing = |name| WebhookError::unauthenticated(AuthFailure::MissingHeader(name));
    let malformed = |name| WebhookError::unauthenticated(AuthFailure::MalformedHeader(name));

    let id = headers.id.ok_or_else(|| missing(ID_HEADER))?;
    let timestamp_text = headers.timestamp.ok_or_else(|| missing(TIMESTAMP_HEADER))?;
    let signature_header = headers.signature.ok_or_else(|| missing(SIGNATURE_HEADER))?;

    if id.is_empty() || id.len() > MAX_ID_BYTES || id.contains('.') {
        return Err(malformed(ID_HEADER));
    }
    let timestamp =
        parse_unix_seconds(timestamp_text).ok_or_else(|| malformed(TIMESTAMP_HEADER))?;
    let candidates = v1_signatures(signature_header)?;

    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|secret| decode_secret(secret).ok())
        .collect();
    if keys.is_empty() {
        return Err(WebhookError::unauthenticated(AuthFailure::NoUsableSecret));
    }
    let matches = keys.iter().any(|key| {
        let expected = signature_bytes(key, id, timestamp_text, body);
        candidates
            .iter()
            .any(|candidate| constant_time_eq(candidate, &expected))
    });
    if !matches {
        return Err(WebhookError::unauthenticated(
            AuthFailure::SignatureMismatch,
        ));
    }
    check_timestamp(timestamp, now_unix, tolerance_secs)
}

/// The `webhook-signature` value (`v1,<base64>`) a sender with `secret` puts on `body`.
pub fn sign(
    secret: &Secret,
    id: &str,
    timestamp_unix: i64,
    body: &[u8],
) -> Result<String, InvalidSecret> {
    let key = decode_secret(secret)?;
    let signature = signature_bytes(&key, id, &timestamp_unix.to_string(), body);
    Ok(format!("v1,{}", BASE64.encode(signature)))
}

fn signature_bytes(key: &[u8], id: &str, timestamp_text: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Plain ASCII digits only: no sign, no spaces, no fraction (the signature covers the exact
/// characters, so anything looser would let two spellings of one time both verify).
fn parse_unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The decoded `v1` signatures of a header. Entries of other versions are skipped, as are `v1`
/// entries whose signature is not base64 (they can match nothing). A header with no
/// `version,signature` entry at all, or more than [`MAX_SIGNATURES_PER_HEADER`], is malformed.
fn v1_signatures(header: &str) -> Result<Vec<Vec<u8>>, WebhookError> {
    let malformed =
        || WebhookError::unauthenticated(AuthFailure::MalformedHeader(SIGNATURE_HEADER));
    if header.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(malformed());
    }
    let entries: Vec<(&str, &str)> = header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .collect();
    if entries.is_empty() || entries.len() > MAX_SIGNATURES_PER_HEADER {
        return Err(malformed());
    }
    Ok(entries
        .into_iter()
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| BASE64.decode(signature).ok())
        .collect())
}

/// One partner or lead source delivery, verified and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerSourceEvent {
    /// The body's `timestamp`: when the event happened (not when it was delivered).
    pub occurred_at: OffsetDateTime,
    pub kind: PartnerSourceEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnerSourceEventKind {
    LeadCaptured(LeadCaptured),
    PartnerApplied(PartnerApplied),
}

/// `lead.captured`: a lead from the landing page or a partner's referral form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadCaptured {
    pub name: String,
    pub company: String,
    /// Trimmed and lowercased.
    pub email: String,
    pub phone: String,
    /// The referring partner, for leads that came through one.
    pub partner_id: Option<String>,
    pub referred_at: Option<OffsetDateTime>,
    /// Where the lead came from; [`DEFAULT_LEAD_SOURCE`] when not given.
    pub source: String,
}

/// `partner.applied`: someone applied to join the partner program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerApplied {
    pub name: String,
    /// Trimmed and lowercased.
    pub email: String,
    pub requested_tier: RequestedTier,
}

/// The partner tier an applicant asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestedTier {
    Referral,
    Certified,
    Strategic,
}

impl RequestedTier {
    pub fn from_wire(name: &str) -> Option<Self> {
        Some(match name {
            "referral" => RequestedTier::Referral,
            "certified" => RequestedTier::Certified,
            "strategic" => RequestedTier::Strategic,
            _ => return None,
        })
    }
}

/// Parses a verified partner or lead source delivery. Call [`verify`] first.
pub fn parse(body: &[u8]) -> Result<PartnerSourceEvent, WebhookError> {
    let map = parse_object(body)?;
    let envelope = Fields::root(&map);
    let event_type = envelope.str("type")?;
    let occurred_at = envelope.datetime("timestamp")?;
    let data = envelope.object("data")?;

    let kind = match event_type {
        "lead.captured" => PartnerSourceEventKind::LeadCaptured(parse_lead(&data)?),
        "partner.applied" => PartnerSourceEventKind::PartnerApplied(parse_application(&data)?),
        other => {
            return Err(WebhookError::malformed(
                "type",
                format!("unknown event type {}", quoted(other)),
            ))
        }
    };
    Ok(PartnerSourceEvent { occurred_at, kind })
}

fn parse_lead(data: &Fields<'_>) -> Result<LeadCaptured, WebhookError> {
    Ok(LeadCaptured {
        name: data.text("name")?,
        company: data.text("company")?,
        email: data.email("email")?,
        phone: data.text("phone")?,
        partner_id: data.opt_id("partner_id")?,
        referred_at: data.opt_datetime("referred_at")?,
        source: data
            .opt_text("source")?
            .unwrap_or_else(|| DEFAULT_LEAD_SOURCE.to_owned()),
    })
}

fn parse_application(data: &Fields<'_>) -> Result<PartnerApplied, WebhookError> {
    let tier_name = data.str("requested_tier")?;
    let requested_tier = RequestedTier::from_wire(tier_name).ok_or_else(|| {
        WebhookError::malformed(
            data.path_of("requested_tier"),
            format!(
                "expected referral, certified or strategic, found {}",
                quoted(tier_name)
            ),
        )
    })?;
    Ok(PartnerApplied {
        name: data.text("name")?,
        email: data.email("email")?,
        requested_tier,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use time::macros::datetime;

    use super::*;

    /// An edit applied to a fixture to make one field wrong.
    type Change = fn(&mut Value);

    // The published Standard Webhooks test vector, as it appears in the reference libraries'
    // tests (standard-webhooks and svix) and reproduced independently with openssl.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_TIMESTAMP_TEXT: &str = "1614265330";
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    // A second key, for rotation: 32 random-looking bytes in whsec_ form.
    const ROTATED_SECRET: &str = "whsec_3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=";

    fn headers<'a>(
        id: &'a str,
        timestamp: &'a str,
        signature: &'a str,
    ) -> StandardWebhookHeaders<'a> {
        StandardWebhookHeaders {
            id: Some(id),
            timestamp: Some(timestamp),
            signature: Some(signature),
        }
    }

    fn vector_secrets() -> Vec<Secret> {
        vec![Secret::new(VECTOR_SECRET)]
    }

    fn reason(result: Result<(), WebhookError>) -> AuthFailure {
        match result {
            Err(WebhookError::Unauthenticated { reason }) => reason,
            other => panic!("expected an authentication failure, got {other:?}"),
        }
    }

    fn malformed_field(result: Result<PartnerSourceEvent, WebhookError>) -> String {
        match result {
            Err(WebhookError::Malformed { field, .. }) => field,
            other => panic!("expected a malformed-field error, got {other:?}"),
        }
    }

    #[test]
    fn the_published_test_vector_signs_exactly() {
        let signature = sign(
            &Secret::new(VECTOR_SECRET),
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY,
        )
        .expect("valid secret");
        assert_eq!(signature, VECTOR_SIGNATURE);
    }

    #[test]
    fn the_published_test_vector_verifies() {
        let result = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, VECTOR_SIGNATURE),
            VECTOR_BODY,
            &vector_secrets(),
            VECTOR_TIMESTAMP,
            DEFAULT_TOLERANCE_SECS,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn a_forged_standard_signature_is_rejected() {
        let forged = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=";
        let result = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, forged),
            VECTOR_BODY,
            &vector_secrets(),
            VECTOR_TIMESTAMP,
            300,
        );
        assert_eq!(reason(result), AuthFailure::SignatureMismatch);
    }

    #[test]
    fn a_standard_signature_over_another_id_or_body_is_rejected() {
        for (id, body) in [
            ("msg_other", VECTOR_BODY),
            (VECTOR_ID, &br#"{"test": 2432232315}"#[..]),
        ] {
            let result = verify(
                headers(id, VECTOR_TIMESTAMP_TEXT, VECTOR_SIGNATURE),
                body,
                &vector_secrets(),
                VECTOR_TIMESTAMP,
                300,
            );
            assert_eq!(reason(result), AuthFailure::SignatureMismatch);
        }
    }

    #[test]
    fn a_standard_signature_with_a_stale_timestamp_is_rejected() {
        let result = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, VECTOR_SIGNATURE),
            VECTOR_BODY,
            &vector_secrets(),
            VECTOR_TIMESTAMP + 301,
            300,
        );
        assert_eq!(reason(result), AuthFailure::StaleTimestamp);

        let at_the_edge = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, VECTOR_SIGNATURE),
            VECTOR_BODY,
            &vector_secrets(),
            VECTOR_TIMESTAMP + 300,
            300,
        );
        assert_eq!(at_the_edge, Ok(()));
    }

    #[test]
    fn a_standard_signature_from_too_far_in_the_future_is_rejected() {
        let result = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, VECTOR_SIGNATURE),
            VECTOR_BODY,
            &vector_secrets(),
            VECTOR_TIMESTAMP - 301,
            300,
        );
        assert_eq!(reason(result), AuthFailure::StaleTimestamp);
    }

    #[test]
    fn a_delivery_signed_with_the_second_of_two_secrets_is_accepted() {
        let signature = sign(
            &Secret::new(ROTATED_SECRET),
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY,
        )
        .unwrap();
        let secrets = [Secret::new(VECTOR_SECRET), Secret::new(ROTATED_SECRET)];
        let result = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, &signature),
            VECTOR_BODY,
            &secrets,
            VECTOR_TIMESTAMP,
            300,
        );
        assert_eq!(result, Ok(()));

        let old_only = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, &signature),
            VECTOR_BODY,
            &vector_secrets(),
            VECTOR_TIMESTAMP,
            300,
        );
        assert_eq!(reason(old_only), AuthFailure::SignatureMismatch);
    }

    #[test]
    fn a_header_with_two_signatures_is_accepted_when_either_matches() {
        let new_signature = sign(
            &Secret::new(ROTATED_SECRET),
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY,
        )
        .unwrap();
        let both = format!("{new_signature} {VECTOR_SIGNATURE}");
        for secrets in [
            vec![Secret::new(VECTOR_SECRET)],
            vec![Secret::new(ROTATED_SECRET)],
        ] {
            let result = verify(
                headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, &both),
                VECTOR_BODY,
                &secrets,
                VECTOR_TIMESTAMP,
                300,
            );
            assert_eq!(result, Ok(()));
        }
    }

    #[test]
    fn entries_of_other_versions_are_ignored() {
        let mixed = format!("v1a,bm9wZQ== v2,abc {VECTOR_SIGNATURE}");
        let result = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, &mixed),
            VECTOR_BODY,
            &vector_secrets(),
            VECTOR_TIMESTAMP,
            300,
        );
        assert_eq!(result, Ok(()));

        // The right bytes under another version name do not count.
        let relabelled = VECTOR_SIGNATURE.replacen("v1,", "v1a,", 1);
        let result = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, &relabelled),
            VECTOR_BODY,
            &vector_secrets(),
            VECTOR_TIMESTAMP,
            300,
        );
        assert_eq!(reason(result), AuthFailure::SignatureMismatch);
    }

    #[test]
    fn a_missing_standard_header_is_named() {
        let full = headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, VECTOR_SIGNATURE);
        for (incomplete, name) in [
            (StandardWebhookHeaders { id: None, ..full }, ID_HEADER),
            (
                StandardWebhookHeaders {
                    timestamp: None,
                    ..full
                },
                TIMESTAMP_HEADER,
            ),
            (
                StandardWebhookHeaders {
                    signature: None,
                    ..full
                },
                SIGNATURE_HEADER,
            ),
        ] {
            let result = verify(
                incomplete,
                VECTOR_BODY,
                &vector_secrets(),
                VECTOR_TIMESTAMP,
                300,
            );
            assert_eq!(reason(result), AuthFailure::MissingHeader(name));
        }
    }

    #[test]
    fn malformed_standard_headers_are_rejected() {
        let long_id = "m".repeat(MAX_ID_BYTES + 1);
        let many = [VECTOR_SIGNATURE; MAX_SIGNATURES_PER_HEADER + 1].join(" ");
        let cases = [
            (
                headers("", VECTOR_TIMESTAMP_TEXT, VECTOR_SIGNATURE),
                ID_HEADER,
            ),
            (
                headers("msg.1", VECTOR_TIMESTAMP_TEXT, VECTOR_SIGNATURE),
                ID_HEADER,
            ),
            (
                headers(&long_id, VECTOR_TIMESTAMP_TEXT, VECTOR_SIGNATURE),
                ID_HEADER,
            ),
            (headers(VECTOR_ID, "", VECTOR_SIGNATURE), TIMESTAMP_HEADER),
            (
                headers(VECTOR_ID, "soon", VECTOR_SIGNATURE),
                TIMESTAMP_HEADER,
            ),
            (
                headers(VECTOR_ID, "-1614265330", VECTOR_SIGNATURE),
                TIMESTAMP_HEADER,
            ),
            (
                headers(VECTOR_ID, "1614265330.5", VECTOR_SIGNATURE),
                TIMESTAMP_HEADER,
            ),
            (
                headers(VECTOR_ID, " 1614265330", VECTOR_SIGNATURE),
                TIMESTAMP_HEADER,
            ),
            (
                headers(VECTOR_ID, "99999999999999999999999", VECTOR_SIGNATURE),
                TIMESTAMP_HEADER,
            ),
            (
                headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, ""),
                SIGNATURE_HEADER,
            ),
            (
                headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, "g0hM9SsE"),
                SIGNATURE_HEADER,
            ),
            (
                headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, &many),
                SIGNATURE_HEADER,
            ),
        ];
        for (case, name) in cases {
            let result = verify(case, VECTOR_BODY, &vector_secrets(), VECTOR_TIMESTAMP, 300);
            assert_eq!(
                reason(result),
                AuthFailure::MalformedHeader(name),
                "{case:?}"
            );
        }
    }

    #[test]
    fn a_v1_entry_that_is_not_base64_matches_nothing() {
        let result = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, "v1,***"),
            VECTOR_BODY,
            &vector_secrets(),
            VECTOR_TIMESTAMP,
            300,
        );
        assert_eq!(reason(result), AuthFailure::SignatureMismatch);
    }

    #[test]
    fn without_a_usable_secret_nothing_verifies() {
        for secrets in [
            vec![],
            vec![Secret::new("whsec_%%%")],
            vec![Secret::new("whsec_")],
        ] {
            let result = verify(
                headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, VECTOR_SIGNATURE),
                VECTOR_BODY,
                &secrets,
                VECTOR_TIMESTAMP,
                300,
            );
            assert_eq!(reason(result), AuthFailure::NoUsableSecret);
        }
    }

    #[test]
    fn a_secret_decodes_with_or_without_its_prefix() {
        let with_prefix = decode_secret(&Secret::new(VECTOR_SECRET)).unwrap();
        let without = decode_secret(&Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        assert_eq!(with_prefix, without);
        assert_eq!(
            decode_secret(&Secret::new("whsec_not base64!")),
            Err(InvalidSecret)
        );
    }

    #[test]
    fn errors_never_carry_the_secret_or_the_expected_signature() {
        let error = verify(
            headers(VECTOR_ID, VECTOR_TIMESTAMP_TEXT, "v1,AAAA"),
            VECTOR_BODY,
            &vector_secrets(),
            VECTOR_TIMESTAMP,
            300,
        )
        .unwrap_err();
        let printed = format!("{error} {error:?}");
        assert!(!printed.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(!printed.contains("g0hM9SsE"));
    }

    fn lead_body() -> Value {
        json!({
            "type": "lead.captured",
            "timestamp": "2024-05-01T09:30:00Z",
            "data": {
                "name": "Sara Al-Otaibi",
                "company": "Nakheel Logistics",
                "email": " Sara@Nakheel.SA ",
                "phone": "+966501234567",
                "partner_id": "partner-42",
                "referred_at": "2024-04-30T18:00:00+03:00"
            }
        })
    }

    fn parse_value(value: &Value) -> Result<PartnerSourceEvent, WebhookError> {
        parse(&serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn a_captured_lead_parses_with_its_partner_and_a_default_source() {
        let event = parse_value(&lead_body()).expect("parses");
        assert_eq!(event.occurred_at, datetime!(2024-05-01 09:30 UTC));
        let PartnerSourceEventKind::LeadCaptured(lead) = event.kind else {
            panic!("expected a lead");
        };
        assert_eq!(lead.name, "Sara Al-Otaibi");
        assert_eq!(lead.company, "Nakheel Logistics");
        assert_eq!(lead.email, "sara@nakheel.sa");
        assert_eq!(lead.phone, "+966501234567");
        assert_eq!(lead.partner_id.as_deref(), Some("partner-42"));
        assert_eq!(lead.referred_at, Some(datetime!(2024-04-30 15:00 UTC)));
        assert_eq!(lead.source, DEFAULT_LEAD_SOURCE);
    }

    #[test]
    fn a_lead_without_a_partner_names_its_own_source() {
        let mut body = lead_body();
        let data = body["data"].as_object_mut().unwrap();
        data.remove("partner_id");
        data.remove("referred_at");
        data.insert("source".to_owned(), json!("partner_form"));
        let PartnerSourceEventKind::LeadCaptured(lead) = parse_value(&body).unwrap().kind else {
            panic!("expected a lead");
        };
        assert_eq!(lead.partner_id, None);
        assert_eq!(lead.referred_at, None);
        assert_eq!(lead.source, "partner_form");
    }

    #[test]
    fn a_partner_application_parses_with_its_requested_tier() {
        for (wire, tier) in [
            ("referral", RequestedTier::Referral),
            ("certified", RequestedTier::Certified),
            ("strategic", RequestedTier::Strategic),
        ] {
            let body = json!({
                "type": "partner.applied",
                "timestamp": "2024-05-01T09:30:00Z",
                "data": {"name": "Omar", "email": "omar@example.com", "requested_tier": wire}
            });
            let event = parse_value(&body).expect("parses");
            assert_eq!(
                event.kind,
                PartnerSourceEventKind::PartnerApplied(PartnerApplied {
                    name: "Omar".to_owned(),
                    email: "omar@example.com".to_owned(),
                    requested_tier: tier,
                })
            );
        }
    }

    #[test]
    fn missing_or_invalid_fields_are_named() {
        let cases: [(&str, Change); 11] = [
            ("data.email", |body| {
                body["data"].as_object_mut().unwrap().remove("email");
            }),
            ("data.email", |body| {
                body["data"]["email"] = json!("no-at-sign")
            }),
            ("data.name", |body| body["data"]["name"] = json!("   ")),
            ("data.company", |body| {
                body["data"].as_object_mut().unwrap().remove("company");
            }),
            ("data.phone", |body| {
                body["data"]["phone"] = json!(966501234567_i64)
            }),
            ("data.referred_at", |body| {
                body["data"]["referred_at"] = json!("yesterday")
            }),
            ("data", |body| body["data"] = json!("lead")),
            ("timestamp", |body| {
                body.as_object_mut().unwrap().remove("timestamp");
            }),
            ("type", |body| body["type"] = json!("lead.deleted")),
            ("type", |body| body["type"] = json!(null)),
            ("data.name", |body| {
                body["data"]["name"] = json!("Sal\u{0}ma")
            }),
        ];
        for (field, change) in cases {
            let mut body = lead_body();
            change(&mut body);
            assert_eq!(malformed_field(parse_value(&body)), field);
        }
    }

    #[test]
    fn an_unknown_requested_tier_is_rejected() {
        let body = json!({
            "type": "partner.applied",
            "timestamp": "2024-05-01T09:30:00Z",
            "data": {"name": "Omar", "email": "omar@example.com", "requested_tier": "platinum"}
        });
        assert_eq!(malformed_field(parse_value(&body)), "data.requested_tier");
    }

    #[test]
    fn parse_returns_an_error_and_never_panics_on_garbage() {
        let deep = "[".repeat(100_000);
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"\"lead.captured\"",
            b"{\"type\": \"lead.captured\", \"data\": {",
            b"{\"type\": \"lead.captured\", \"timestamp\": 1e999}",
            b"{\"type\": \"lead.captured\", \"timestamp\": \"2024-05-01T09:30:00Z\", \"data\": {\"name\": 18446744073709551616}}",
            b"\x80\x81\x82",
            deep.as_bytes(),
        ] {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
