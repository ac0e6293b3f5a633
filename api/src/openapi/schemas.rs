//! The schema vocabulary: primitives, the shapes shared by several answers (invoices, pages,
//! board rows, audit rows, recorded events, lag) and the lead action requests.

use serde_json::{json, Map, Value};

use super::*;

// ---------------------------------------------------------------------------------------------
// Components

pub(super) fn string() -> Value {
    json!({"type": "string"})
}

pub(super) fn integer() -> Value {
    json!({"type": "integer", "format": "int64"})
}

/// A statement total, signed by its effect on the partner's balance: `sign` 0 is never
/// negative, -1 never positive, 1 either.
pub(super) fn signed_total(sign: i8, description: &str) -> Value {
    let mut schema = integer();
    schema["description"] = description.into();
    match sign {
        0 => schema["minimum"] = 0.into(),
        -1 => schema["maximum"] = 0.into(),
        _ => {}
    }
    schema
}

pub(super) fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// `schema` or null (a null is added to an enum, as OpenAPI 3.0.3 asks).
pub(super) fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = Value::Bool(true);
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    schema
}

pub(super) fn string_enum(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

pub(super) fn plan() -> Value {
    string_enum(&["pilot", "starter", "growth", "scale"])
}

pub(super) fn partner_tier() -> Value {
    string_enum(&["referral", "certified", "strategic"])
}

pub(super) fn lead_stage() -> Value {
    string_enum(&[
        "new",
        "qualified",
        "demo_booked",
        "proposal",
        "paid",
        "onboarding",
        "active",
        "archived",
    ])
}

/// An object with these properties, the `required` ones always present.
pub(super) fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// A request body struct with `deny_unknown_fields`.
pub(super) fn closed(required: &[&str], properties: Value) -> Value {
    let mut schema = object(required, properties);
    schema["additionalProperties"] = Value::Bool(false);
    schema
}

pub(super) fn page_of(item: Value) -> Value {
    object(
        &["items", "next_cursor"],
        json!({
            "items": {"type": "array", "items": item},
            "next_cursor": nullable(string()),
        }),
    )
}

/// The properties of every command answer.
pub(super) fn command_answer_properties() -> Map<String, Value> {
    let properties = json!({
        "stream_id": string(),
        "version": integer(),
        "position": nullable(integer()),
        "events": integer(),
        "replayed": {"type": "boolean"},
    });
    properties.as_object().cloned().unwrap_or_default()
}

pub(super) const COMMAND_ANSWER_REQUIRED: [&str; 5] =
    ["stream_id", "version", "position", "events", "replayed"];

/// A command answer with more properties.
pub(super) fn command_answer_with(extra: Value) -> Value {
    let mut properties = command_answer_properties();
    let mut required: Vec<&str> = COMMAND_ANSWER_REQUIRED.to_vec();
    for (name, schema) in extra.as_object().into_iter().flatten() {
        required.push(name);
        properties.insert(name.clone(), schema.clone());
    }
    object(&required, Value::Object(properties))
}

pub(super) fn invoice_properties() -> Value {
    json!({
        "invoice_id": string(),
        "lead_id": string(),
        "status": nullable(described(string_enum(&["issued", "partially_paid", "paid", "partially_refunded", "refunded", "canceled", "expired"]),
            "What the invoice is now: `refunded` once everything paid went back, `partially_refunded` after a smaller refund.")),
        "collection_status": nullable(described(string_enum(&["issued", "partially_paid", "paid", "canceled", "expired"]),
            "Whether the invoice was paid, refunds aside: a refunded invoice stays `paid` here (and its lead stays a customer); `status` shows the refund.")),
        "currency": string_enum(&["SAR"]),
        "subtotal_halalas": integer(),
        "vat_halalas": integer(),
        "total_halalas": integer(),
        "paid_halalas": integer(),
        "refunded_halalas": integer(),
        "outstanding_halalas": integer(),
        "due_at": nullable(date_time()),
        "icv": described(integer(), "ICV: the invoice's counter value in its chain (its EGS unit's under Phase 2, its seller's under Phase 1)."),
        "invoice_hash": described(string(), "The invoice document's hash (base64 SHA-256), the next document's PIH."),
        "previous_invoice_hash": described(string(), "PIH: the hash of the document before it in its chain."),
        "qr_code": string(),
        "zatca": reference("InvoiceZatca"),
        "moyasar_invoice_id": nullable(string()),
        "payment_url": nullable(string()),
    })
}

/// An invoice's ZATCA block: its phase and, under Phase 2, its unit, UUID, type, status and
/// documents (on `GET /api/invoices/{id}`).
pub(super) fn invoice_zatca() -> Value {
    object(
        &["phase"],
        json!({
            "phase": {"type": "integer", "enum": [1, 2]},
            "egs_unit": string(),
            "uuid": string(),
            "type": string_enum(&["standard", "simplified"]),
            "status": string_enum(&["pending", "cleared", "reported", "rejected"]),
            "correction": object(&["method", "path", "explains"], json!({
                "method": string(), "path": string(), "explains": string(),
            })),
            "documents": {"type": "array", "items": reference("ZatcaDocument")},
        }),
    )
}

/// One Phase 2 document (the invoice, a credit note) and where it stands with ZATCA.
pub(super) fn zatca_document() -> Value {
    object(
        &[
            "document_id",
            "invoice_id",
            "kind",
            "flow",
            "egs_unit",
            "icv",
            "uuid",
            "invoice_hash",
            "previous_invoice_hash",
            "status",
            "issued_at",
            "attempts",
            "messages",
            "xml",
        ],
        json!({
            "document_id": string(),
            "invoice_id": string(),
            "kind": string_enum(&["invoice", "credit_note", "debit_note"]),
            "flow": string_enum(&["clearance", "reporting"]),
            "egs_unit": string(),
            "icv": integer(),
            "uuid": string(),
            "invoice_hash": string(),
            "previous_invoice_hash": string(),
            "status": string_enum(&["pending", "cleared", "reported", "rejected"]),
            "issued_at": date_time(),
            "signed_at": nullable(date_time()),
            "attempts": integer(),
            "next_attempt_at": nullable(date_time()),
            "last_reason": nullable(string()),
            "messages": {"type": "array", "items": object(&["kind", "message"], json!({
                "kind": string(), "code": nullable(string()), "category": nullable(string()),
                "message": string(),
            }))},
            "answered_at": nullable(date_time()),
            "xml": {"type": "string", "description": "Where its legal XML is served."},
        }),
    )
}

pub(super) fn invoice() -> Value {
    let properties = invoice_properties();
    let mut required: Vec<&str> = properties
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| name.as_str())
        .collect();
    required.extend(["version", "payments", "credit_notes"]);
    let mut schema = object(&required, properties.clone());
    schema["properties"]["version"] = integer();
    schema["properties"]["payments"] = json!({"type": "array", "items": invoice_payment()});
    schema["properties"]["credit_notes"] = json!({"type": "array", "items": invoice_credit_note()});
    schema
}

/// `schema` with a description.
pub(super) fn described(mut schema: Value, description: &str) -> Value {
    schema["description"] = description.into();
    schema
}

/// A payment on `GET /api/invoices/{id}`.
fn invoice_payment() -> Value {
    object(
        &[
            "payment_id",
            "amount_halalas",
            "paid_at",
            "status",
            "fee_halalas",
            "refunded_halalas",
        ],
        json!({
            "payment_id": string(),
            "amount_halalas": described(integer(), "What the invoice recorded as paid by it."),
            "paid_at": date_time(),
            "status": nullable(described(string_enum(&["initiated", "authorized", "captured", "paid", "failed", "refunded", "voided", "verified"]),
                "The gateway's last reported status; null when the payment was recorded without a gateway report.")),
            "fee_halalas": nullable(described(integer(), "The gateway's fee, when it reported one.")),
            "refunded_halalas": described(integer(), "What the gateway refunded of it so far."),
        }),
    )
}

/// A credit note on `GET /api/invoices/{id}`.
fn invoice_credit_note() -> Value {
    object(
        &[
            "credit_note_id",
            "document_type_code",
            "icv",
            "previous_invoice_hash",
            "invoice_hash",
            "reason",
            "amount_halalas",
            "subtotal_halalas",
            "vat_halalas",
            "issued_at",
        ],
        json!({
            "credit_note_id": described(string(), "The refund it documents; also its document id (`/api/invoices/{id}/xml?document=`)."),
            "document_type_code": {"type": "integer", "enum": [381]},
            "icv": described(integer(), "Its own counter value in the invoice's chain."),
            "previous_invoice_hash": described(string(), "PIH: the hash of the document before it in the chain."),
            "invoice_hash": nullable(described(string(), "Its own hash, the next document's PIH.")),
            "reason": string(),
            "amount_halalas": described(integer(), "The refunded amount, VAT included."),
            "subtotal_halalas": integer(),
            "vat_halalas": integer(),
            "issued_at": date_time(),
        }),
    )
}

pub(super) fn board_row() -> Value {
    object(
        &[
            "lead_id",
            "name",
            "source",
            "stage",
            "captured_at",
            "follow_ups_since_response",
        ],
        json!({
            "lead_id": string(),
            "name": string(),
            "company": nullable(string()),
            "email": nullable(string()),
            "phone": nullable(string()),
            "source": string(),
            "partner_id": nullable(string()),
            "owner": nullable(string()),
            "stage": lead_stage(),
            "captured_at": string(),
            "last_contact_at": string(),
            "follow_ups_since_response": integer(),
            "next_follow_up_due": nullable(string()),
            "archived_reason": nullable(string()),
        }),
    )
}

pub(super) fn audit_row() -> Value {
    object(
        &[
            "seq",
            "position",
            "event_id",
            "stream_id",
            "version",
            "event_type",
            "recorded_at",
            "event_hash",
            "running_hash",
        ],
        json!({
            "seq": integer(),
            "position": integer(),
            "event_id": string(),
            "stream_id": string(),
            "stream_type": string(),
            "version": integer(),
            "event_type": string(),
            "actor": nullable(string()),
            "command_id": nullable(string()),
            "correlation_id": nullable(string()),
            "causation_id": nullable(string()),
            "request_id": nullable(string()),
            "delivery_id": nullable(string()),
            "source": nullable(string()),
            "recorded_at": string(),
            "event_hash": string(),
            "running_hash": string(),
        }),
    )
}

pub(super) fn recorded_event() -> Value {
    object(
        &[
            "position",
            "event_id",
            "stream_id",
            "stream_type",
            "version",
            "event_type",
            "payload",
            "metadata",
            "recorded_at",
            "prev_hash",
            "hash",
        ],
        json!({
            "position": integer(),
            "transaction_id": integer(),
            "event_id": {"type": "string", "format": "uuid"},
            "stream_id": string(),
            "stream_type": string(),
            "version": integer(),
            "event_type": string(),
            "schema_version": integer(),
            "payload": {"description": "The event's data, as its type defines it."},
            "metadata": {"type": "object"},
            "command_id": nullable(string()),
            "recorded_at": date_time(),
            "prev_hash": string(),
            "hash": string(),
        }),
    )
}

pub(super) fn lag() -> Value {
    object(
        &["name", "checkpoint", "events_behind", "seconds_behind"],
        json!({
            "name": string(),
            "checkpoint": object(&["transaction_id", "position"], json!({"transaction_id": integer(), "position": integer()})),
            "events_applied": integer(),
            "head_position": integer(),
            "events_behind": integer(),
            "seconds_behind": integer(),
        }),
    )
}

/// A string with something other than white space in it (the domain refuses blank ones, 422).
pub(super) fn non_blank() -> Value {
    json!({"type": "string", "pattern": "\\S"})
}

/// The body of the lead action at `path`, with the fields it `needs` required. Archiving takes
/// `cold` or `lost` as its reason; canceling a demo, any text.
pub(super) fn lead_action_request(path: &str, needs: &[&str]) -> Value {
    let reason = if path.ends_with("/archive") {
        string_enum(&["cold", "lost"])
    } else {
        nullable(string())
    };
    let mut schema = closed(
        needs,
        json!({
            "booking_id": nullable(string()),
            "scheduled_for": nullable(date_time()),
            "plan": nullable(plan()),
            "reason": reason,
            "note": nullable(string()),
            "rescheduled": nullable(json!({"type": "boolean"})),
            "channel": nullable(string_enum(&["email", "whatsapp", "phone", "sms", "linkedin", "meeting", "other"])),
            "responded": nullable(json!({"type": "boolean"})),
        }),
    );
    for field in needs {
        // A needed field may not be null either.
        if let Some(property) = schema["properties"].get_mut(*field) {
            property.as_object_mut().map(|p| p.remove("nullable"));
            if let Some(values) = property.get_mut("enum").and_then(Value::as_array_mut) {
                values.retain(|v| !v.is_null());
            }
        }
    }
    schema
}

/// A lead to capture: a name that is not blank, and an email or a phone that is not.
pub(super) fn capture_lead_request() -> Value {
    let mut schema = closed(
        &["name", "source"],
        json!({
            "lead_id": {"type": "string", "pattern": "\\S", "nullable": true, "description": "A new id is assigned when absent."},
            "name": non_blank(),
            "company": nullable(string()),
            "email": nullable(string()),
            "phone": nullable(string()),
            "source": {"type": "string", "description": "e.g. website, referral, calendly."},
            "partner_id": nullable(string()),
            "utm": nullable(json!({"type": "object", "properties": {"source": nullable(string()), "medium": nullable(string()), "campaign": nullable(string())}})),
            "owner": nullable(string()),
        }),
    );
    schema["anyOf"] = json!([
        {"required": ["email"], "properties": {"email": non_blank()}},
        {"required": ["phone"], "properties": {"phone": non_blank()}},
    ]);
    schema
}
