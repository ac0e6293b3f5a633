//! Moyasar payment webhooks.
//!
//! Moyasar does not sign its deliveries. Authenticity rests on the `secret_token` that we set
//! when registering the webhook and that Moyasar copies into every body; [`verify`] reads only
//! that field from the raw bytes and compares it in constant time, before anything else in the
//! body is looked at. A body with no readable token is unauthenticated (401), not malformed:
//! until the token matches we do not know who sent it, so we tell them nothing about its shape.
//!
//! [`parse`] turns the envelope into a [`MoyasarEvent`]. Its `data` is a Moyasar Payment object
//! for every `payment_*` event, and a `{webhook_id, verification_code}` pair for the
//! `webhook_verification` event Moyasar sends once when a webhook is registered (which we only
//! acknowledge). Amounts stay in halalas, Moyasar's unit; only SAR is accepted, because that is
//! the only currency we invoice in. Card data (holder name, masked number, transaction URL) is
//! dropped while parsing, so it cannot reach an event, a log line or a `Debug` print.
//!
//! The inbox key is the envelope `id` ([`MoyasarEvent::delivery_id`]); Moyasar retries a
//! failed delivery (five more times) with the same body.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::{constant_time_eq, parse_object, quoted, AuthFailure, Fields, Secret, WebhookError};

/// The only currency we accept: our invoices are issued in Saudi riyals.
pub const ACCEPTED_CURRENCY: &str = "SAR";

/// The metadata keys under which our checkout stores our invoice id, in the order they are
/// looked up by [`MoyasarPayment::our_invoice_reference`].
pub const OUR_INVOICE_METADATA_KEYS: [&str; 2] = ["revledger_invoice_id", "invoice_id"];

/// Checks the body's `secret_token` against ours, in constant time. Several secrets may be
/// configured at once while one is being rotated; the token must equal one of them, and each is
/// compared (no early exit that would tell which one came close).
///
/// Only the `secret_token` field is deserialized (no value tree is built for the rest). A body
/// that is not a JSON object, or whose token is absent, not a string, or given twice, fails
/// with [`AuthFailure::MissingToken`]; a different token with
/// [`AuthFailure::SignatureMismatch`].
pub fn verify(body: &[u8], expected_tokens: &[Secret]) -> Result<(), WebhookError> {
    #[derive(Deserialize)]
    struct TokenOnly<'a> {
        #[serde(borrow, default)]
        secret_token: Option<Cow<'a, str>>,
    }

    let token = serde_json::from_slice::<TokenOnly<'_>>(body)
        .ok()
        .and_then(|envelope| envelope.secret_token)
        .ok_or(WebhookError::unauthenticated(AuthFailure::MissingToken))?;
    let matched = expected_tokens
        .iter()
        .filter(|expected| !expected.expose().is_empty())
        .fold(false, |matched, expected| {
            constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) | matched
        });
    if !matched {
        return Err(WebhookError::unauthenticated(
            AuthFailure::SignatureMismatch,
        ));
    }
    Ok(())
}

/// What a delivery's `secret_token` is replaced with before the body is stored.
pub const REDACTED_TOKEN: &str = "\"[redacted]\"";

/// The body as it is kept (the inbox, dead letters, backups): the value of its top-level
/// `secret_token` replaced by [`REDACTED_TOKEN`], every other byte as received. The secret is
/// ours, not the delivery's: it authenticated the delivery and has no use once stored. A body
/// with no such field is returned as it is.
pub fn redact_secret_token(body: &[u8]) -> Cow<'_, [u8]> {
    #[derive(Deserialize)]
    struct TokenRaw<'a> {
        #[serde(borrow, default)]
        secret_token: Option<&'a serde_json::value::RawValue>,
    }

    let Ok(TokenRaw {
        secret_token: Some(raw),
    }) = serde_json::from_slice::<TokenRaw<'_>>(body)
    else {
        return Cow::Borrowed(body);
    };
    // The raw value borrows from `body`: its place there is where its text starts.
    let text = raw.get().as_bytes();
    let start = (text.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    let end = start.saturating_add(text.len());
    if body.get(start..end) != Some(text) {
        return Cow::Owned(reserialized_without_token(body));
    }
    let mut stored = Vec::with_capacity(body.len());
    stored.extend_from_slice(&body[..start]);
    stored.extend_from_slice(REDACTED_TOKEN.as_bytes());
    stored.extend_from_slice(&body[end..]);
    Cow::Owned(stored)
}

/// The body written again with its token replaced: only if the raw value could not be found in
/// place (it always can when the body came from `serde_json::from_slice`).
fn reserialized_without_token(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut map)) => {
            map.insert("secret_token".into(), Value::from("[redacted]"));
            Value::Object(map).to_string().into_bytes()
        }
        _ => body.to_vec(),
    }
}

/// One Moyasar delivery, verified and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct MoyasarEvent {
    /// The envelope `id`: the inbox key, the same on every retry of this delivery.
    pub delivery_id: String,
    pub event_type: MoyasarEventType,
    /// When Moyasar created the event.
    pub created_at: OffsetDateTime,
    /// `false` for test-mode events. Downstream must not mark a real invoice paid from a
    /// test-mode payment. Moyasar's `webhook_verification` example has no `live` field; it is
    /// read as `false` there.
    pub live: bool,
    pub account_name: Option<String>,
    pub data: MoyasarEventData,
}

impl MoyasarEvent {
    /// The payment, for every event type except `webhook_verification`.
    pub fn payment(&self) -> Option<&MoyasarPayment> {
        match &self.data {
            MoyasarEventData::Payment(payment) => Some(payment),
            MoyasarEventData::WebhookVerification(_) => None,
        }
    }
}

/// The envelope `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MoyasarEventType {
    PaymentPaid,
    /// `payment_failed`, or `payment_faild` as Moyasar's event table spells it.
    PaymentFailed,
    PaymentRefunded,
    PaymentVoided,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentVerified,
    /// Sent once when a webhook is registered; acknowledged with 200 and nothing else.
    WebhookVerification,
}

impl MoyasarEventType {
    /// Reads the envelope `type`, accepting Moyasar's documented misspelling `payment_faild`.
    pub fn from_wire(name: &str) -> Option<Self> {
        Some(match name {
            "payment_paid" => MoyasarEventType::PaymentPaid,
            "payment_failed" | "payment_faild" => MoyasarEventType::PaymentFailed,
            "payment_refunded" => MoyasarEventType::PaymentRefunded,
            "payment_voided" => MoyasarEventType::PaymentVoided,
            "payment_authorized" => MoyasarEventType::PaymentAuthorized,
            "payment_captured" => MoyasarEventType::PaymentCaptured,
            "payment_verified" => MoyasarEventType::PaymentVerified,
            "webhook_verification" => MoyasarEventType::WebhookVerification,
            _ => return None,
        })
    }

    /// The canonical wire name (`payment_failed` for both spellings).
    pub fn as_str(&self) -> &'static str {
        match self {
            MoyasarEventType::PaymentPaid => "payment_paid",
            MoyasarEventType::PaymentFailed => "payment_failed",
            MoyasarEventType::PaymentRefunded => "payment_refunded",
            MoyasarEventType::PaymentVoided => "payment_voided",
            MoyasarEventType::PaymentAuthorized => "payment_authorized",
            MoyasarEventType::PaymentCaptured => "payment_captured",
            MoyasarEventType::PaymentVerified => "payment_verified",
            MoyasarEventType::WebhookVerification => "webhook_verification",
        }
    }
}

/// What the envelope's `data` holds, which depends on the event type.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per request, never stored in bulk: boxing would only add an allocation"
)]
pub enum MoyasarEventData {
    Payment(MoyasarPayment),
    WebhookVerification(WebhookVerification),
}

/// The `data` of a `webhook_verification` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookVerification {
    /// Moyasar's id of the webhook registration being verified.
    pub webhook_id: String,
    /// The six-digit code to send back to Moyasar; valid for 30 minutes, so kept out of logs.
    pub verification_code: Secret,
}

/// The parts of a Moyasar Payment object that the ledger uses. Amounts are in halalas.
#[derive(Debug, Clone, PartialEq)]
pub struct MoyasarPayment {
    /// Moyasar's payment id.
    pub id: String,
    pub status: MoyasarPaymentStatus,
    pub amount_halalas: i64,
    pub fee_halalas: i64,
    pub refunded_halalas: i64,
    pub captured_halalas: i64,
    /// Always [`ACCEPTED_CURRENCY`]: anything else is rejected while parsing.
    pub currency: String,
    /// Moyasar's own invoice id, when the payment was made through a Moyasar invoice.
    pub invoice_id: Option<String>,
    pub description: Option<String>,
    /// Free-form metadata set at checkout; may carry our invoice id
    /// ([`MoyasarPayment::our_invoice_reference`]). `null` reads as empty.
    pub metadata: Map<String, Value>,
    pub created_at: OffsetDateTime,
    /// When the payment last changed (paid, refunded); absent from some payloads.
    pub updated_at: Option<OffsetDateTime>,
    pub source: Option<MoyasarSourceSummary>,
}

impl MoyasarPayment {
    /// Our invoice reference from the metadata, if the checkout put one there: the first of
    /// [`OUR_INVOICE_METADATA_KEYS`] that holds a non-empty string. Moyasar's own invoice id is
    /// [`MoyasarPayment::invoice_id`], a different thing.
    pub fn our_invoice_reference(&self) -> Option<&str> {
        OUR_INVOICE_METADATA_KEYS.iter().find_map(|key| {
            self.metadata
                .get(*key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|value| !value.is_empty())
        })
    }
}

/// A Moyasar payment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MoyasarPaymentStatus {
    Initiated,
    Authorized,
    Captured,
    Paid,
    Failed,
    Refunded,
    Voided,
    Verified,
}

impl MoyasarPaymentStatus {
    pub fn from_wire(name: &str) -> Option<Self> {
        Some(match name {
            "initiated" => MoyasarPaymentStatus::Initiated,
            "authorized" => MoyasarPaymentStatus::Authorized,
            "captured" => MoyasarPaymentStatus::Captured,
            "paid" => MoyasarPaymentStatus::Paid,
            "failed" => MoyasarPaymentStatus::Failed,
            "refunded" => MoyasarPaymentStatus::Refunded,
            "voided" => MoyasarPaymentStatus::Voided,
            "verified" => MoyasarPaymentStatus::Verified,
            _ => return None,
        })
    }
}

/// How the payment was made, without any card data: no holder name, no masked number, no
/// token, no transaction URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoyasarSourceSummary {
    /// `creditcard`, `applepay`, `stcpay`, ...
    pub kind: String,
    /// The card scheme (`visa`, `mada`, ...), when there is one.
    pub company: Option<String>,
    /// The gateway's message (`Succeeded!`, or why it failed).
    pub message: Option<String>,
    pub gateway_id: Option<String>,
    pub reference_number: Option<String>,
}

/// Parses a verified Moyasar delivery. Call [`verify`] first.
pub fn parse(body: &[u8]) -> Result<MoyasarEvent, WebhookError> {
    let map = parse_object(body)?;
    let envelope = Fields::root(&map);

    let type_name = envelope.str("type")?;
    let event_type = MoyasarEventType::from_wire(type_name).ok_or_else(|| {
        WebhookError::malformed("type", format!("unknown event type {}", quoted(type_name)))
    })?;
    let delivery_id = envelope.text("id")?;
    let created_at = envelope.datetime("created_at")?;
    let account_name = envelope.opt_text("account_name")?;
    let data_fields = envelope.object("data")?;

    let (live, data) = if event_type == MoyasarEventType::WebhookVerification {
        let verification = WebhookVerification {
            webhook_id: data_fields.text("webhook_id")?,
            verification_code: Secret::new(data_fields.text("verification_code")?),
        };
        let live = envelope.opt_bool("live")?.unwrap_or(false);
        (live, MoyasarEventData::WebhookVerification(verification))
    } else {
        let payment = parse_payment(&data_fields, event_type == MoyasarEventType::PaymentPaid)?;
        (envelope.bool("live")?, MoyasarEventData::Payment(payment))
    };

    Ok(MoyasarEvent {
        delivery_id,
        event_type,
        created_at,
        live,
        account_name,
        data,
    })
}

/// A Payment object as Moyasar's API answers it (`GET /payments/{id}`, a page of
/// `GET /payments`, an invoice's `payments`): read with the same fields and checks as a
/// webhook's `data`, so the sweep and the webhook record the same payment the same way.
pub fn parse_payment_object(object: &Map<String, Value>) -> Result<MoyasarPayment, WebhookError> {
    let fields = Fields::root(object);
    let paid = fields.str("status")? == "paid";
    parse_payment(&fields, paid)
}

/// `require_positive_amount`: a payment reported paid must have collected something.
fn parse_payment(
    data: &Fields<'_>,
    require_positive_amount: bool,
) -> Result<MoyasarPayment, WebhookError> {
    let currency = data.str("currency")?;
    if currency != ACCEPTED_CURRENCY {
        return Err(WebhookError::malformed(
            data.path_of("currency"),
            format!(
                "only {ACCEPTED_CURRENCY} is accepted, found {}",
                quoted(currency)
            ),
        ));
    }
    let status_name = data.str("status")?;
    let status = MoyasarPaymentStatus::from_wire(status_name).ok_or_else(|| {
        WebhookError::malformed(
            data.path_of("status"),
            format!("unknown payment status {}", quoted(status_name)),
        )
    })?;
    let amount_halalas = data.amount_halalas("amount")?;
    if require_positive_amount && amount_halalas == 0 {
        return Err(WebhookError::malformed(
            data.path_of("amount"),
            "a paid payment must have an amount above zero",
        ));
    }

    Ok(MoyasarPayment {
        id: data.id("id")?,
        status,
        amount_halalas,
        fee_halalas: data.amount_halalas("fee")?,
        refunded_halalas: data.amount_halalas("refunded")?,
        captured_halalas: data.amount_halalas("captured")?,
        currency: currency.to_owned(),
        invoice_id: data.opt_text("invoice_id")?,
        description: data.opt_text("description")?,
        metadata: data.map_or_empty("metadata")?,
        created_at: data.datetime("created_at")?,
        updated_at: data.opt_datetime("updated_at")?,
        source: data
            .opt_object("source")?
            .map(|source| parse_source(&source))
            .transpose()?,
    })
}

fn parse_source(source: &Fields<'_>) -> Result<MoyasarSourceSummary, WebhookError> {
    Ok(MoyasarSourceSummary {
        kind: source.text("type")?,
        company: source.opt_text("company")?,
        message: source.opt_text("message")?,
        gateway_id: source.opt_text("gateway_id")?,
        reference_number: source.opt_text("reference_number")?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    // Moyasar's docs publish no complete `payment_paid` delivery that the search could retrieve
    // (the webhook reference lists the event types and the retry schedule, not a body). This
    // fixture is therefore assembled, not verbatim: the envelope fields (`id`, `type`,
    // `created_at`, `secret_token`, `account_name`) follow the verbatim `webhook_verification`
    // example on docs.moyasar.com/api/other/webhooks/verify-webhook, plus the documented `live`
    // flag, and `data` is the Payment object verbatim from docs.moyasar.com/update-payment (a
    // paid test-mode card payment with metadata and a Moyasar invoice id).
    const PAYMENT_PAID: &[u8] = include_bytes!("../../../tests/fixtures/moyasar_payment_paid.json");
    const PAYMENT_PAID_TOKEN: &str = "moyasar-docs-example-token";

    // Verbatim from docs.moyasar.com/api/other/webhooks/verify-webhook ("Verification event").
    const WEBHOOK_VERIFICATION: &[u8] =
        include_bytes!("../../../tests/fixtures/moyasar_webhook_verification.json");

    fn fixture_with(change: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(PAYMENT_PAID).expect("fixture is JSON");
        change(&mut value);
        serde_json::to_vec(&value).expect("serializable")
    }

    fn malformed_field(result: Result<MoyasarEvent, WebhookError>) -> String {
        match result {
            Err(WebhookError::Malformed { field, .. }) => field,
            other => panic!("expected a malformed-field error, got {other:?}"),
        }
    }

    #[test]
    fn the_documented_payment_paid_example_verifies_and_parses() {
        verify(PAYMENT_PAID, &[Secret::new(PAYMENT_PAID_TOKEN)]).expect("token matches");
        let event = parse(PAYMENT_PAID).expect("parses");

        assert_eq!(event.delivery_id, "0d5b4b8e-9f1c-4f3e-8a57-2c1f6b2f8a11");
        assert_eq!(event.event_type, MoyasarEventType::PaymentPaid);
        assert_eq!(event.created_at, datetime!(2023-04-16 18:27:11.104 UTC));
        assert!(!event.live);
        assert_eq!(event.account_name.as_deref(), Some("My Store"));

        let payment = event.payment().expect("a payment event");
        assert_eq!(payment.id, "611c028e-855c-425c-a4eb-ce1e06680000");
        assert_eq!(payment.status, MoyasarPaymentStatus::Paid);
        assert_eq!(payment.amount_halalas, 4866);
        assert_eq!(payment.fee_halalas, 0);
        assert_eq!(payment.refunded_halalas, 0);
        assert_eq!(payment.captured_halalas, 0);
        assert_eq!(payment.currency, "SAR");
        assert_eq!(
            payment.invoice_id.as_deref(),
            Some("d1ee74c2-a996-445e-8c3e-fa4581d94bee")
        );
        assert_eq!(payment.description.as_deref(), Some("Order #1000"));
        assert_eq!(payment.metadata.get("test"), Some(&json!("4")));
        assert_eq!(payment.created_at, datetime!(2023-04-16 18:27:04.730 UTC));
        let source = payment.source.as_ref().expect("a source");
        assert_eq!(source.kind, "creditcard");
        assert_eq!(source.company.as_deref(), Some("visa"));
        assert_eq!(
            source.message.as_deref(),
            Some("Succeeded! (Test Environment)")
        );
    }

    #[test]
    fn the_parsed_event_keeps_no_card_data_and_no_token() {
        let printed = format!("{:?}", parse(PAYMENT_PAID).expect("parses"));
        for secret in [
            "XXXX-XXXX-XXXX-1111",
            "Abdullah Alrayes",
            "transaction_auths",
            PAYMENT_PAID_TOKEN,
        ] {
            assert!(!printed.contains(secret), "Debug output leaks {secret}");
        }
    }

    #[test]
    fn the_documented_webhook_verification_example_is_acknowledged() {
        verify(WEBHOOK_VERIFICATION, &[Secret::new("123")]).expect("token matches");
        let event = parse(WEBHOOK_VERIFICATION).expect("parses");
        assert_eq!(event.event_type, MoyasarEventType::WebhookVerification);
        assert_eq!(event.delivery_id, "7a1f0e3c-5d2b-4c8e-9f61-2b8d4f0a9c13");
        assert!(!event.live);
        assert!(event.payment().is_none());
        let MoyasarEventData::WebhookVerification(verification) = &event.data else {
            panic!("expected verification data");
        };
        assert_eq!(
            verification.webhook_id,
            "c4bc247d-5288-4673-9b40-39c082ac7fbb"
        );
        assert_eq!(verification.verification_code.expose(), "482913");
        assert!(!format!("{event:?}").contains("482913"));
    }

    #[test]
    fn a_wrong_secret_token_is_rejected() {
        let error = verify(PAYMENT_PAID, &[Secret::new("not-the-token")]).unwrap_err();
        assert_eq!(
            error,
            WebhookError::unauthenticated(AuthFailure::SignatureMismatch)
        );
        assert_eq!(error.status_code(), 401);
        assert!(!error.to_string().contains(PAYMENT_PAID_TOKEN));
    }

    #[test]
    fn a_body_without_a_readable_token_is_unauthenticated() {
        let without = fixture_with(|value| {
            value.as_object_mut().unwrap().remove("secret_token");
        });
        let numeric = fixture_with(|value| value["secret_token"] = json!(123));
        let secret = Secret::new(PAYMENT_PAID_TOKEN);
        for body in [
            without.as_slice(),
            numeric.as_slice(),
            b"",
            b"not json",
            b"[]",
            br#"{"secret_token": null}"#,
            br#"{"secret_token":"a","secret_token":"moyasar-docs-example-token"}"#,
        ] {
            assert_eq!(
                verify(body, std::slice::from_ref(&secret)),
                Err(WebhookError::unauthenticated(AuthFailure::MissingToken)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_empty_configured_token_accepts_nothing() {
        let body = br#"{"secret_token":""}"#;
        assert!(verify(body, &[Secret::new("")]).is_err());
    }

    #[test]
    fn the_misspelled_payment_faild_type_reads_as_payment_failed() {
        let body = fixture_with(|value| {
            value["type"] = json!("payment_faild");
            value["data"]["status"] = json!("failed");
        });
        let event = parse(&body).expect("parses");
        assert_eq!(event.event_type, MoyasarEventType::PaymentFailed);
        assert_eq!(event.event_type.as_str(), "payment_failed");
        assert_eq!(
            event.payment().unwrap().status,
            MoyasarPaymentStatus::Failed
        );
    }

    #[test]
    fn every_documented_payment_event_type_is_understood() {
        for (name, expected) in [
            ("payment_paid", MoyasarEventType::PaymentPaid),
            ("payment_failed", MoyasarEventType::PaymentFailed),
            ("payment_refunded", MoyasarEventType::PaymentRefunded),
            ("payment_voided", MoyasarEventType::PaymentVoided),
            ("payment_authorized", MoyasarEventType::PaymentAuthorized),
            ("payment_captured", MoyasarEventType::PaymentCaptured),
            ("payment_verified", MoyasarEventType::PaymentVerified),
        ] {
            let body = fixture_with(|value| value["type"] = json!(name));
            assert_eq!(parse(&body).expect(name).event_type, expected);
        }
    }

    #[test]
    fn a_refund_event_carries_the_refunded_amount() {
        let body = fixture_with(|value| {
            value["type"] = json!("payment_refunded");
            value["data"]["status"] = json!("refunded");
            value["data"]["refunded"] = json!(4866);
            value["data"]["refunded_at"] = json!("2023-04-17T09:00:00.000Z");
        });
        let payment = parse(&body).expect("parses").payment().cloned().unwrap();
        assert_eq!(payment.refunded_halalas, 4866);
        assert_eq!(payment.status, MoyasarPaymentStatus::Refunded);
    }

    #[test]
    fn an_unknown_event_type_is_rejected_naming_the_type_field() {
        let body = fixture_with(|value| value["type"] = json!("payout_paid"));
        assert_eq!(malformed_field(parse(&body)), "type");
    }

    #[test]
    fn a_currency_other_than_sar_is_rejected() {
        let body = fixture_with(|value| value["data"]["currency"] = json!("USD"));
        assert_eq!(malformed_field(parse(&body)), "data.currency");
    }

    #[test]
    fn a_negative_amount_is_rejected_naming_the_field() {
        for field in ["amount", "fee", "refunded", "captured"] {
            let body = fixture_with(|value| value["data"][field] = json!(-1));
            assert_eq!(malformed_field(parse(&body)), format!("data.{field}"));
        }
    }

    #[test]
    fn a_paid_payment_of_zero_is_rejected() {
        let body = fixture_with(|value| value["data"]["amount"] = json!(0));
        assert_eq!(malformed_field(parse(&body)), "data.amount");
    }

    #[test]
    fn any_of_several_configured_tokens_is_accepted_while_one_is_rotated() {
        let rotating = [
            Secret::new("the-new-token"),
            Secret::new(PAYMENT_PAID_TOKEN),
        ];
        verify(PAYMENT_PAID, &rotating).expect("the old token still matches");
        let error = verify(PAYMENT_PAID, &rotating[..1]).unwrap_err();
        assert_eq!(
            error,
            WebhookError::unauthenticated(AuthFailure::SignatureMismatch)
        );
        assert!(verify(PAYMENT_PAID, &[]).is_err(), "no token configured");
    }

    #[test]
    fn the_stored_body_has_its_secret_token_redacted_and_every_other_byte_kept() {
        let stored = redact_secret_token(PAYMENT_PAID);
        let text = std::str::from_utf8(&stored).unwrap();
        assert!(!text.contains(PAYMENT_PAID_TOKEN), "{text}");
        assert!(
            text.contains(r#""secret_token": "[redacted]""#)
                || text.contains(r#""secret_token":"[redacted]""#)
        );
        // Only the token's value changed.
        let original = std::str::from_utf8(PAYMENT_PAID).unwrap();
        let token_json = format!("\"{PAYMENT_PAID_TOKEN}\"");
        assert_eq!(text, original.replacen(&token_json, REDACTED_TOKEN, 1));
        // The stored body still parses to the same event.
        assert_eq!(parse(&stored).unwrap(), parse(PAYMENT_PAID).unwrap());
        // An escaped token is found too; a body without one is kept as it is.
        let escaped = br#"{"secret_token": "ab\u0063", "type": "payment_paid"}"#;
        let stored = redact_secret_token(escaped);
        assert_eq!(
            &stored[..],
            br#"{"secret_token": "[redacted]", "type": "payment_paid"}"#
        );
        assert_eq!(&redact_secret_token(b"{\"id\": 1}")[..], b"{\"id\": 1}");
        assert_eq!(&redact_secret_token(b"not json")[..], b"not json");
    }

    #[test]
    fn an_amount_above_the_ceiling_is_rejected_naming_the_field() {
        for field in ["amount", "fee", "refunded", "captured"] {
            let body = fixture_with(|value| {
                value["data"][field] = json!(domain::money::MAX_AMOUNT_HALALAS + 1)
            });
            assert_eq!(malformed_field(parse(&body)), format!("data.{field}"));
        }
    }

    #[test]
    fn a_fractional_amount_is_rejected_as_the_wrong_type() {
        let body = fixture_with(|value| value["data"]["amount"] = json!(48.66));
        assert_eq!(malformed_field(parse(&body)), "data.amount");
    }

    #[test]
    fn a_missing_field_is_named_in_the_error() {
        for (path, remove) in [
            ("id", &["id"][..]),
            ("live", &["live"][..]),
            ("data", &["data"][..]),
            ("data.id", &["data", "id"][..]),
            ("data.status", &["data", "status"][..]),
            ("data.currency", &["data", "currency"][..]),
            ("data.created_at", &["data", "created_at"][..]),
        ] {
            let body = fixture_with(|value| {
                let (last, parents) = remove.split_last().unwrap();
                let mut target = value;
                for parent in parents {
                    target = &mut target[*parent];
                }
                target.as_object_mut().unwrap().remove(*last);
            });
            assert_eq!(malformed_field(parse(&body)), path);
        }
    }

    #[test]
    fn an_unknown_payment_status_is_rejected() {
        let body = fixture_with(|value| value["data"]["status"] = json!("pending"));
        assert_eq!(malformed_field(parse(&body)), "data.status");
    }

    #[test]
    fn null_metadata_reads_as_empty_and_our_invoice_reference_is_found_in_metadata() {
        let body = fixture_with(|value| value["data"]["metadata"] = Value::Null);
        assert!(parse(&body).unwrap().payment().unwrap().metadata.is_empty());

        let body = fixture_with(|value| {
            value["data"]["metadata"] = json!({"revledger_invoice_id": "INV-2024-0007"});
        });
        let event = parse(&body).unwrap();
        assert_eq!(
            event.payment().unwrap().our_invoice_reference(),
            Some("INV-2024-0007")
        );

        let body = fixture_with(|value| value["data"]["metadata"] = json!({"invoice_id": "INV-9"}));
        let event = parse(&body).unwrap();
        assert_eq!(
            event.payment().unwrap().our_invoice_reference(),
            Some("INV-9")
        );
    }

    #[test]
    fn parse_returns_an_error_and_never_panics_on_garbage() {
        let deep = "[".repeat(10_000);
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"{}",
            b"{\"type\": \"payment_paid\"",
            b"{\"type\": \"payment_paid\", \"data\": {\"amount\": 1e400}}",
            b"{\"type\": \"payment_paid\", \"data\": {\"amount\": 99999999999999999999999}}",
            b"\xff\xfe\xfd",
            b"{\"type\": \"\xff\"}",
            deep.as_bytes(),
        ] {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
            assert!(verify(body, &[Secret::new("x")]).is_err());
        }
    }
}
