//! The named request and response schemas of `components.schemas`.

use crate::commands::{DEFAULT_DUE_DAYS, MAX_DUE_DAYS, MAX_INVOICE_LINES};
use serde_json::{json, Value};

use super::*;

/// Request bodies, as the handlers' serde structs read them: an `Option` field may be absent
/// or null; a blank name or reason is the domain's to refuse (422), so the schema says
/// `non_blank` where it does.
pub(super) fn request_schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("CaptureLeadRequest", capture_lead_request()),
        (
            "InvoiceLineRequest",
            closed(
                &["description", "quantity", "unit_price_halalas"],
                json!({
                    "description": string(),
                    "quantity": {"type": "integer", "format": "int64", "minimum": 1, "maximum": domain::money::MAX_LINE_QUANTITY},
                    "unit_price_halalas": {"type": "integer", "format": "int64", "minimum": 0, "maximum": domain::money::MAX_AMOUNT_HALALAS,
                        "description": "At most 1,000,000,000,000 halalas (ten billion SAR), as is the line's net and the invoice's subtotal and total: beyond, 422 naming the field."},
                    "plan": nullable(plan()),
                }),
            ),
        ),
        (
            "CreateInvoiceRequest",
            closed(
                &["lead_id"],
                json!({
                    "lead_id": string(),
                    "plan": {"allOf": [plan()], "nullable": true, "description": "Bill one month of this plan; give `plan` or `lines`, not both."},
                    "lines": {"type": "array", "nullable": true, "minItems": 1, "maxItems": MAX_INVOICE_LINES, "items": reference("InvoiceLineRequest")},
                    "customer_name": {"type": "string", "nullable": true, "description": "The lead's company (else name) when absent."},
                    "due_days": {"type": "integer", "format": "int64", "nullable": true, "minimum": 0, "maximum": MAX_DUE_DAYS, "default": DEFAULT_DUE_DAYS},
                    "moyasar_invoice_id": nullable(string()),
                    "buyer": {"allOf": [reference("Buyer")], "nullable": true,
                        "description": "ZATCA Phase 2: a business buyer makes a standard tax invoice (cleared by ZATCA); without one, a simplified invoice (reported). 422 when Phase 2 is off."},
                }),
            ),
        ),
        (
            "Buyer",
            closed(
                &["vat_number", "address"],
                json!({
                    "vat_number": {"type": "string", "pattern": "^3[0-9]{13}3$"},
                    "address": reference("NationalAddress"),
                }),
            ),
        ),
        (
            "NationalAddress",
            closed(
                &[
                    "street",
                    "building_number",
                    "district",
                    "city",
                    "postal_code",
                ],
                json!({
                    "street": non_blank(),
                    "building_number": {"type": "string", "pattern": "^[0-9]{4}$", "description": "Four digits in Saudi Arabia (BR-KSA-37)."},
                    "district": non_blank(),
                    "city": non_blank(),
                    "postal_code": {"type": "string", "pattern": "^[0-9]{5}$", "description": "Five digits in Saudi Arabia (BR-KSA-66)."},
                    "country_code": {"type": "string", "pattern": "^[A-Z]{2}$", "nullable": true, "default": "SA"},
                }),
            ),
        ),
        (
            "ReissueInvoiceRequest",
            closed(
                &[],
                json!({
                    "buyer": {"allOf": [reference("Buyer")], "nullable": true, "description": "The corrected buyer; the rejected invoice's when absent."},
                    "customer_name": {"type": "string", "nullable": true, "description": "The corrected name; the rejected invoice's when absent."},
                }),
            ),
        ),
        (
            "CancelInvoiceRequest",
            closed(&["reason"], json!({"reason": non_blank()})),
        ),
        (
            "EnrollPartnerRequest",
            closed(
                &["name", "email"],
                json!({
                    "partner_id": {"type": "string", "pattern": "\\S", "nullable": true, "description": "A new id is assigned when absent."},
                    "name": non_blank(),
                    "email": {"type": "string", "description": "name@example.com"},
                    "tier": {"allOf": [partner_tier()], "default": "referral"},
                }),
            ),
        ),
        (
            "ReferralRequest",
            object(
                &["lead_email", "clicked_at"],
                json!({"lead_email": string(), "clicked_at": date_time()}),
            ),
        ),
        (
            "TierRequest",
            object(
                &["tier", "reason"],
                json!({"tier": partner_tier(), "reason": non_blank()}),
            ),
        ),
        (
            "DecisionRequest",
            object(
                &[],
                json!({"reason": {"type": "string", "nullable": true, "description": "Why, when rejecting."}}),
            ),
        ),
        (
            "PayoutRequest",
            object(
                &[],
                json!({"partner_id": {"type": "string", "nullable": true, "description": "Only this partner; every partner when absent."}}),
            ),
        ),
        (
            "CreateTokenRequest",
            closed(
                &["role"],
                json!({
                    "role": token_role(),
                    "partner_id": {"type": "string", "nullable": true, "description": "A partner token's partner, which must be enrolled; only a partner token takes it."},
                    "label": {"type": "string", "nullable": true, "description": "Whose token this is."},
                    "expires_in_days": {"type": "integer", "format": "int32", "nullable": true, "minimum": 1, "maximum": crate::auth::MAX_TOKEN_LIFETIME_DAYS, "description": "The token stops working this many days from now; without it, when revoked."},
                }),
            ),
        ),
        (
            "WebhookDelivery",
            json!({
                "type": "object",
                "description": "The provider's payload, read as raw bytes (the signature covers them) and parsed by the provider's own rules.",
            }),
        ),
    ]
}

pub(super) fn response_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Error",
            object(
                &["error", "detail"],
                json!({
                    "error": {"type": "string", "description": "A code, e.g. invalid_body, invalid_field, not_found, rejected, idempotency_key_reused."},
                    "detail": {"type": "string", "description": "What to fix."},
                    "field": nullable(string()),
                }),
            ),
        ),
        (
            "Health",
            object(&["status"], json!({"status": string_enum(&["ok"])})),
        ),
        ("Token", token_with(json!({}))),
        (
            "TokenList",
            object(
                &["items", "limit"],
                json!({
                    "items": {"type": "array", "items": reference("Token")},
                    "limit": {"type": "integer", "format": "int64", "description": "The most a listing holds (newest first)."},
                }),
            ),
        ),
        ("CreatedToken", token_with(json!({"token": string()}))),
        (
            "SubjectRequest",
            object(
                &["subject"],
                json!({"subject": {"type": "string", "minLength": 1, "maxLength": 254, "description": "A lead id, or an email address."}}),
            ),
        ),
        (
            "Erasure",
            object(
                &[
                    "erasure_id",
                    "subjects",
                    "linked_subjects",
                    "position",
                    "already_erased",
                ],
                json!({
                    "erasure_id": string(),
                    "subjects": {"type": "array", "items": string(), "description": "The lead and partner subjects erased (`lead-<id>`, `partner-<id>`)."},
                    "linked_subjects": {"type": "integer", "description": "Emails and webhook deliveries erased with them."},
                    "position": {"type": "integer", "format": "int64", "description": "Where `SubjectErased` is in the log (0 when erased before)."},
                    "already_erased": {"type": "boolean"},
                }),
            ),
        ),
        (
            "ExportedEvent",
            object(
                &[
                    "position",
                    "stream_id",
                    "version",
                    "event_type",
                    "recorded_at",
                    "payload",
                ],
                json!({
                    "position": integer(),
                    "stream_id": string(),
                    "version": integer(),
                    "event_type": string(),
                    "recorded_at": date_time(),
                    "payload": {"type": "object"},
                }),
            ),
        ),
        (
            "ExportedStream",
            object(
                &["stream_id", "events"],
                json!({"stream_id": string(), "events": {"type": "array", "items": reference("ExportedEvent")}}),
            ),
        ),
        (
            "SubjectExport",
            object(
                &[
                    "requested",
                    "subjects",
                    "erased",
                    "streams",
                    "referrals",
                    "invoices",
                    "crm_board",
                ],
                json!({
                    "requested": {"type": "string", "description": "The lead id asked for, or `email`."},
                    "subjects": {"type": "array", "items": string()},
                    "erased": {"type": "array", "items": string()},
                    "streams": {"type": "array", "items": reference("ExportedStream")},
                    "referrals": {"type": "array", "items": reference("ExportedEvent")},
                    "invoices": {"type": "array", "items": reference("ExportedStream")},
                    "crm_board": {"type": "object", "nullable": true},
                }),
            ),
        ),
        (
            "RevokedToken",
            token_with(json!({"sessions_ended": integer()})),
        ),
        (
            "Ready",
            object(
                &["status", "engine"],
                json!({
                    "status": string_enum(&["ready"]),
                    "engine": string_enum(&["sqlite", "postgres"]),
                    "leader": {"type": "boolean", "description": "Whether this replica runs the background workers now."},
                }),
            ),
        ),
        ("CommandAnswer", command_answer_with(json!({}))),
        (
            "LeadAnswer",
            command_answer_with(json!({"lead_id": string()})),
        ),
        (
            "InvoiceCommandAnswer",
            command_answer_with(json!({"invoice_id": string()})),
        ),
        ("InvoiceAnswer", command_answer_with(invoice_properties())),
        (
            "PartnerAnswer",
            command_answer_with(json!({"partner_id": string(), "tier": partner_tier()})),
        ),
        ("Invoice", invoice()),
        ("InvoiceZatca", invoice_zatca()),
        ("ZatcaDocument", zatca_document()),
        (
            "Lead",
            object(
                &[
                    "lead_id",
                    "stage",
                    "version",
                    "follow_ups_since_response",
                    "board",
                ],
                json!({
                    "lead_id": string(),
                    "stage": nullable(lead_stage()),
                    "version": integer(),
                    "partner_id": nullable(string()),
                    "demo_booking_id": nullable(string()),
                    "proposed_plan": nullable(plan()),
                    "invoice_id": nullable(string()),
                    "follow_ups_since_response": integer(),
                    "next_follow_up_due": nullable(date_time()),
                    "board": nullable(board_row()),
                }),
            ),
        ),
        (
            "Partner",
            object(
                &[
                    "partner_id",
                    "version",
                    "status",
                    "tier",
                    "activated_customers",
                    "referrals",
                ],
                json!({
                    "partner_id": string(),
                    "version": integer(),
                    "status": nullable(string_enum(&["applied", "active", "suspended"])),
                    "tier": nullable(partner_tier()),
                    "requested_tier": nullable(partner_tier()),
                    "commission_rate_bps": nullable(integer()),
                    "revenue_share_bps": nullable(integer()),
                    "activated_customers": integer(),
                    "referrals": integer(),
                }),
            ),
        ),
        ("BoardPage", page_of(board_row())),
        (
            "FollowUpPage",
            json!({
                "allOf": [page_of(board_row())],
                "required": ["due_before"],
                "properties": {"due_before": date_time()},
            }),
        ),
        ("AuditPage", page_of(audit_row())),
        (
            "StreamPage",
            json!({
                "allOf": [page_of(recorded_event())],
                "required": ["stream_id"],
                "properties": {"stream_id": string()},
            }),
        ),
        (
            "Pending",
            object(
                &["status", "projection", "after_position", "lag"],
                json!({
                    "status": string_enum(&["pending"]),
                    "projection": string(),
                    "after_position": integer(),
                    "lag": nullable(lag()),
                }),
            ),
        ),
        (
            "Projections",
            object(
                &["projections"],
                json!({"projections": {"type": "array", "items": lag()}}),
            ),
        ),
        (
            "Funnel",
            object(
                &["leads", "stages", "conversion"],
                json!({
                    "leads": integer(),
                    "stages": {"type": "array", "items": object(&["stage", "leads"], json!({"stage": lead_stage(), "leads": integer()}))},
                    "conversion": {"type": "array", "items": {"type": "object"}},
                    "by_week": {"type": "array", "items": {"type": "object"}},
                    "by_source": {"type": "array", "items": {"type": "object"}},
                    "by_partner": {"type": "array", "items": {"type": "object"}},
                    "median_seconds_in_stage": {"type": "object"},
                }),
            ),
        ),
        (
            "Revenue",
            object(
                &[
                    "currency",
                    "mrr_halalas",
                    "paying_customers",
                    "arpu_halalas",
                    "plan_mix",
                ],
                json!({
                    "currency": string_enum(&["SAR"]),
                    "mrr_halalas": integer(),
                    "paying_customers": integer(),
                    "arpu_halalas": integer(),
                    "plan_mix": {"type": "object"},
                    "pilots_started": integer(),
                    "pilots_converted": integer(),
                    "pilot_conversion_bps": integer(),
                }),
            ),
        ),
        (
            "TrialBalance",
            object(
                &[
                    "currency",
                    "entries",
                    "accounts",
                    "total_debit_halalas",
                    "total_credit_halalas",
                    "balanced",
                ],
                json!({
                    "currency": string_enum(&["SAR"]),
                    "entries": integer(),
                    "accounts": {"type": "array", "items": object(&["account", "debit_halalas", "credit_halalas", "balance_halalas"], json!({
                        "account": string(),
                        "kind": {},
                        "debit_halalas": integer(),
                        "credit_halalas": integer(),
                        "balance_halalas": integer(),
                    }))},
                    "next_cursor": described(nullable(string()), "The last account listed when more follow (pass it as `cursor`), else null."),
                    "total_debit_halalas": integer(),
                    "total_credit_halalas": integer(),
                    "unbalanced_entries": integer(),
                    "balanced": {"type": "boolean"},
                }),
            ),
        ),
        (
            "LedgerAccount",
            object(
                &["account", "currency", "lines_total"],
                json!({
                    "account": string(),
                    "kind": {},
                    "currency": string_enum(&["SAR"]),
                    "lines_total": integer(),
                    "debit_halalas": integer(),
                    "credit_halalas": integer(),
                    "lines": {"type": "array", "items": {"type": "object"}},
                }),
            ),
        ),
        (
            "Reconciliation",
            object(
                &["reconciled", "mismatch_count", "mismatches", "next_cursor"],
                json!({
                    "reconciled": {"type": "boolean"},
                    "mismatch_count": integer(),
                    "next_cursor": nullable(string()),
                    "by_kind": {"type": "object"},
                    "checked": {"type": "object"},
                    "mismatches": {"type": "array", "items": object(
                        &["source", "kind", "streams", "detail"],
                        json!({
                            "source": {
                                "type": "string",
                                "description": "Who found it: `ledger` (our events against each other) or `moyasar` (the daily reconciliation against Moyasar's payments).",
                                "enum": ["ledger", "moyasar"],
                            },
                            "kind": string(),
                            "streams": {"type": "array", "items": string()},
                            "detail": string(),
                            "expected_halalas": integer(),
                            "actual_halalas": integer(),
                            "date": {"type": "string", "description": "For a provider's finding: the Riyadh day (YYYY-MM-DD)."},
                            "payment_id": {"type": "string", "description": "For a provider's finding: the provider's payment id."},
                        }),
                    )},
                    "provider_runs": {"type": "array", "items": object(
                        &["provider", "date", "run", "recorded_at", "provider_payments", "ledger_payments", "finding_count"],
                        json!({
                            "provider": string_enum(&["moyasar"]),
                            "date": string(),
                            "run": integer(),
                            "recorded_at": {"type": "string", "format": "date-time"},
                            "provider_payments": integer(),
                            "ledger_payments": integer(),
                            "finding_count": integer(),
                        }),
                    )},
                }),
            ),
        ),
        ("CommissionPage", page_of(commission_row())),
        ("Commission", commission()),
        (
            "Statement",
            object(
                &[
                    "partner_id",
                    "month",
                    "currency",
                    "opening_balance_halalas",
                    "closing_balance_halalas",
                    "lines",
                ],
                json!({
                    "partner_id": string(),
                    "month": string(),
                    "currency": string_enum(&["SAR"]),
                    "opening_balance_halalas": integer(),
                    "accrued_halalas": signed_total(0, "commissions accrued this month; raises the balance"),
                    "rejected_halalas": signed_total(-1, "commissions rejected this month, negative: lowers the balance"),
                    "adjusted_halalas": signed_total(1, "manual adjustments, either sign"),
                    "clawbacks_halalas": signed_total(-1, "the pro-rata share of refunds taken back, negative: lowers the balance (also after a payout: then it is carried against the next one)"),
                    "paid_out_halalas": signed_total(-1, "paid out to the partner, negative: lowers the balance"),
                    "carried_halalas": signed_total(-1, "earlier clawbacks recovered by netting them against a payout, negative"),
                    "closing_balance_halalas": integer(),
                    "lines": {"type": "array", "items": object(&["kind", "amount_halalas", "balance_halalas"], json!({
                        "kind": string_enum(&["accrued", "rejected", "adjusted", "clawed_back", "paid_out", "carried"]),
                        "amount_halalas": signed_total(1, "the line's effect on the balance: positive raises what we owe the partner, negative lowers it"),
                        "balance_halalas": integer(),
                        "commission_id": string(),
                        "event_id": string(),
                        "position": integer(),
                        "occurred_at": string(),
                        "reference": nullable(string()),
                    }))},
                }),
            ),
        ),
        (
            "Payouts",
            object(
                &["payouts", "minimum_halalas"],
                json!({
                    "payouts": {"type": "array", "items": object(&["partner_id", "net_halalas", "commissions", "outcome"], json!({
                        "partner_id": string(),
                        "payout_id": nullable(string()),
                        "net_halalas": integer(),
                        "commissions": integer(),
                        "outcome": string(),
                        "stream_version": nullable(integer()),
                        "position": nullable(integer()),
                    }))},
                    "minimum_halalas": integer(),
                }),
            ),
        ),
        (
            "WebhookAnswer",
            object(
                &["status"],
                json!({
                    "status": {"type": "string", "description": "accepted, unmatched_invoice (a Moyasar payment naming no invoice we know: kept, applied to its payment), ignored_test_mode, ignored_live_mode, refused, parked, or dead_lettered."},
                    "provider": string(),
                    "delivery_id": string(),
                    "effect": string(),
                    "reason": string(),
                    "stream_id": string(),
                    "version": integer(),
                    "first_position": integer(),
                    "last_position": integer(),
                    "touched": object(&["lead_id", "invoice_id", "payment_id", "partner_id"], json!({
                        "lead_id": nullable(string()),
                        "invoice_id": nullable(string()),
                        "payment_id": nullable(string()),
                        "partner_id": nullable(string()),
                    })),
                }),
            ),
        ),
        (
            "DeadLetters",
            object(
                &["dead_letters"],
                json!({
                    "dead_letters": {"type": "array", "items": object(&["id", "provider", "delivery_id", "received_at", "attempts", "body"], json!({
                        "id": string(),
                        "provider": string(),
                        "delivery_id": string(),
                        "received_at": string(),
                        "attempts": integer(),
                        "reason": nullable(string()),
                        "body": string(),
                    }))},
                }),
            ),
        ),
        (
            "Verify",
            object(
                &["status", "intact", "chains", "audit"],
                json!({
                    "status": string_enum(&["intact", "broken"]),
                    "intact": {"type": "boolean"},
                    "chains": object(&["events_checked", "streams_checked", "first_break"], json!({
                        "events_checked": integer(),
                        "streams_checked": integer(),
                        "first_break": nullable(json!({"type": "object"})),
                    })),
                    "audit": object(&["events_checked", "seals_checked", "first_break"], json!({
                        "events_checked": integer(),
                        "seals_checked": integer(),
                        "first_break": nullable(json!({"type": "object"})),
                    })),
                }),
            ),
        ),
    ]
}

/// A commission as listed by `GET /api/commissions`.
fn commission_row() -> Value {
    object(
        &[
            "commission_id",
            "partner_id",
            "invoice_id",
            "lead_id",
            "status",
            "accrued_halalas",
            "net_halalas",
            "carried_halalas",
            "accrued_at",
            "held_until",
            "payout_id",
        ],
        json!({
            "commission_id": string(),
            "partner_id": string(),
            "invoice_id": string(),
            "lead_id": string(),
            "status": string_enum(&projections::commissions::STATUSES),
            "accrued_halalas": described(integer(), "What accrued, before clawbacks and adjustments."),
            "net_halalas": described(integer(), "What it is worth now: accrued plus clawbacks (negative) and adjustments; 0 once rejected."),
            "carried_halalas": signed_total(-1, "Clawed back after its payout and not yet recovered from a later payout."),
            "accrued_at": date_time(),
            "held_until": date_time(),
            "payout_id": nullable(string()),
        }),
    )
}

/// One commission with its history (`GET /api/commissions/{id}`).
fn commission() -> Value {
    let mut schema = commission_row();
    schema["required"]
        .as_array_mut()
        .expect("required")
        .push("history".into());
    schema["properties"]["history"] = json!({"type": "array", "items": object(
        &["event", "at", "amount_halalas", "actor", "reason", "reference", "version", "position", "event_id"],
        json!({
            "event": string_enum(&["accrued", "approved", "rejected", "adjusted", "clawed_back", "paid_out"]),
            "at": date_time(),
            "amount_halalas": described(integer(), "Accrued, approved (owed then), rejected (no longer owed), paid out; a clawback's is negative, an adjustment's either sign."),
            "actor": nullable(described(string(), "Who did it: `token:<id>` for a decision, the process manager or webhook otherwise.")),
            "reason": nullable(string()),
            "reference": nullable(described(string(), "The invoice it accrued on, the refund a clawback followed, the payout that paid it.")),
            "version": integer(),
            "position": integer(),
            "event_id": string(),
        }),
    )});
    schema
}
