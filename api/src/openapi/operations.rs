//! Every operation of the API: its path, method, access, parameters, body and answers.

use crate::queries::{DEFAULT_FEED_EVENTS, MAX_FEED_EVENTS};
use serde_json::{json, Value};

use super::*;

pub(super) fn operations() -> Vec<Operation> {
    [
        health(),
        webhooks(),
        leads(),
        finance(),
        queries(),
        audit(),
        tokens(),
        personal(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub(super) fn health() -> Vec<Operation> {
    vec![
        operation(
            "get",
            "/healthz",
            "healthz",
            "health",
            "Liveness",
            Access::Public,
        )
        .respond(200, "The process answers.", reference("Health")),
        operation(
            "get",
            "/readyz",
            "readyz",
            "health",
            "Readiness",
            Access::Public,
        )
        .respond(
            200,
            "The database answers and every migration is applied.",
            reference("Ready"),
        )
        .error(503, "The database is unreachable or not migrated."),
        operation(
            "get",
            "/openapi.json",
            "openapi",
            "health",
            "This document",
            Access::Public,
        )
        .respond(
            200,
            "The OpenAPI 3.0.3 document.",
            json!({"type": "object", "required": ["openapi", "paths"]}),
        ),
        operation(
            "get",
            "/metrics",
            "metrics",
            "health",
            "Prometheus metrics",
            Access::Bearer(AUDIT_READ),
        )
        .describe(
            "Also the metrics token (`REVLEDGER_METRICS_TOKEN`) as a bearer token; or, without any \
             token, on the metrics-only listener (`REVLEDGER_METRICS_LISTEN`).",
        )
        .respond_with(
            200,
            json!({
                "description": "The Prometheus text exposition format (version 0.0.4).",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }),
        ),
    ]
}

pub(super) fn webhook(path: &'static str, id: &str, summary: &str, how: &'static str) -> Operation {
    operation("post", path, id, "webhooks", summary, Access::Signed(how))
        .body(reference("WebhookDelivery"), true)
        .respond(200, "Applied, acknowledged, or refused for good by the domain (`status` says which); a repeat gets the first answer.", reference("WebhookAnswer"))
        .respond(202, "Refers to something not known yet: parked and retried.", reference("WebhookAnswer"))
        .error(404, "This provider's webhooks are not enabled on this server.")
        .error(409, "The delivery id was already received with another body.")
        .error(503, "The aggregate is busy; the provider should retry.")
}

pub(super) fn webhooks() -> Vec<Operation> {
    vec![
        webhook("/webhooks/moyasar", "moyasarWebhook", "A Moyasar payment event", "Authenticated by the `secret_token` field of the body.")
            .describe("A payment is matched to its invoice by the invoice id in its `metadata.revledger_invoice_id` (or `metadata.invoice_id`), else by its Moyasar `invoice_id` when revledger created that Moyasar invoice for one of ours. A payment that names no invoice we know is still kept and recorded on its payment stream (applied if that invoice is issued later) and answered 200 with `status: unmatched_invoice`; `/api/reconciliation` lists it as `payment_without_invoice` once collected. `touched` names the invoice, its lead and the payment."),
        webhook("/webhooks/calendly", "calendlyWebhook", "A Calendly invitee event", "Authenticated by the `Calendly-Webhook-Signature: t=…,v1=…` HMAC.")
            .header("Calendly-Webhook-Signature", "`t=<unix seconds>,v1=<hex HMAC-SHA256>`."),
        webhook("/webhooks/partners", "partnerWebhook", "A partner source event (Standard Webhooks)", "Authenticated by Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`).")
            .header("webhook-id", "The delivery id.")
            .header("webhook-timestamp", "Unix seconds.")
            .header("webhook-signature", "`v1,<base64 HMAC-SHA256>`, space-separated."),
        operation("get", "/api/webhooks/dead-letters", "listDeadLetters", "audit", "Deliveries that never applied", Access::Bearer(AUDIT_READ))
            .parameter(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 200, "default": 50}, "description": "Clamped to 1..=200."}))
            .respond(200, "The dead letters, oldest first.", reference("DeadLetters")),
        operation("post", "/api/webhooks/dead-letters/{id}/replay", "replayDeadLetter", "audit", "Try a dead letter again now", Access::Bearer(FINANCE_CHANGE))
            .respond(200, "What became of the delivery this time.", reference("WebhookAnswer"))
            .respond(202, "Parked again.", reference("WebhookAnswer"))
            .error(404, "No dead letter with this id.")
            .error(409, "The delivery conflicts with one already received.")
            .error(503, "The aggregate is busy; retry."),
    ]
}

/// A lead action: every action reads the same body (unknown fields refused), each needs its
/// own fields of it.
pub(super) fn lead_action(
    path: &'static str,
    id: &str,
    summary: &str,
    needs: &[&str],
) -> Operation {
    let status = if path.ends_with("follow-ups") {
        201
    } else {
        200
    };
    operation(
        "post",
        path,
        id,
        "leads",
        summary,
        Access::Bearer(SALES_CHANGE),
    )
    .body(lead_action_request(path, needs), !needs.is_empty())
    .command()
    .respond(
        status,
        "The lead's stream version and the position of the last event appended.",
        reference("LeadAnswer"),
    )
    .error(404, "No lead with this id.")
}

pub(super) fn leads() -> Vec<Operation> {
    vec![
        operation("post", "/api/leads", "captureLead", "leads", "Capture a lead", Access::Bearer(SALES_CHANGE))
            .body(reference("CaptureLeadRequest"), true)
            .command()
            .respond(201, "Captured; `lead_id` is the given one or a new one (derived from the Idempotency-Key when there is one).", reference("LeadAnswer")),
        lead_action("/api/leads/{id}/qualify", "qualifyLead", "Qualify a lead", &[]),
        lead_action("/api/leads/{id}/book-demo", "bookDemo", "Book a demo", &["booking_id", "scheduled_for"]),
        lead_action("/api/leads/{id}/cancel-demo", "cancelDemo", "Cancel a demo", &["booking_id"]),
        lead_action("/api/leads/{id}/no-show", "recordNoShow", "Record a demo no-show", &["booking_id"]),
        lead_action("/api/leads/{id}/proposal", "sendProposal", "Send a proposal", &["plan"]),
        lead_action("/api/leads/{id}/onboard", "startOnboarding", "Start onboarding", &[]),
        lead_action("/api/leads/{id}/activate", "activateLead", "Activate a customer", &[]),
        lead_action("/api/leads/{id}/archive", "archiveLead", "Archive a lead", &["reason"]),
        lead_action("/api/leads/{id}/reopen", "reopenLead", "Reopen an archived lead", &[]),
        lead_action("/api/leads/{id}/follow-ups", "logFollowUp", "Log a follow-up", &["channel"]),
        operation("get", "/api/leads/{id}", "getLead", "leads", "One lead", Access::Bearer(SALES_READ))
            .parameters(&["AsOf", "AfterPosition"])
            .respond(200, "The lead aggregate with its CRM board row.", reference("Lead"))
            .may_be_pending()
            .error(404, "No lead with this id (by `as_of`)."),
        operation("get", "/api/funnel", "getFunnel", "leads", "The funnel", Access::Bearer(SALES_READ))
            .parameters(&["AsOf", "AfterPosition"])
            .respond(200, "Leads per stage, conversion, by week, source and partner.", reference("Funnel"))
            .may_be_pending(),
        operation("get", "/api/crm/board", "getCrmBoard", "leads", "The CRM board, by lead id", Access::Bearer(SALES_READ))
            .parameters(&["AsOf", "AfterPosition", "Limit"])
            .parameter(json!({"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "The `next_cursor` of the previous page."}))
            .parameter(json!({"name": "stage", "in": "query", "schema": lead_stage()}))
            .respond(200, "One page of leads.", reference("BoardPage"))
            .may_be_pending(),
        operation("get", "/api/crm/follow-ups", "getFollowUps", "leads", "Leads with a follow-up due", Access::Bearer(SALES_READ))
            .parameters(&["AsOf", "AfterPosition", "Limit"])
            .parameter(json!({"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^-?[0-9]{1,18}:.*$"}, "description": "`<due microseconds>:<lead id>`, the `next_cursor` of the previous page."}))
            .parameter(json!({"name": "due_before", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "RFC 3339; now when absent."}))
            .respond(200, "One page of leads, soonest due first.", reference("FollowUpPage"))
            .may_be_pending(),
    ]
}

pub(super) fn finance() -> Vec<Operation> {
    vec![
        operation("post", "/api/invoices", "createInvoice", "finance", "Issue an invoice", Access::Bearer(FINANCE_CHANGE))
            .describe("Allocates the next place in the seller's ZATCA chain (ICV, previous invoice hash) and issues the invoice there.")
            .body(reference("CreateInvoiceRequest"), true)
            .command()
            .respond(201, "The invoice with its ICV, totals, QR code and payment URL.", reference("InvoiceAnswer"))
            .error(404, "No lead with this `lead_id`."),
        operation("post", "/api/invoices/{id}/cancel", "cancelInvoice", "finance", "Cancel an unpaid invoice", Access::Bearer(FINANCE_CHANGE))
            .body(reference("CancelInvoiceRequest"), true)
            .command()
            .respond(200, "Canceled.", reference("InvoiceCommandAnswer"))
            .error(404, "No invoice with this id."),
        operation("post", "/api/invoices/{id}/reissue", "reissueInvoice", "finance", "Correct an invoice ZATCA rejected", Access::Bearer(FINANCE_CHANGE))
            .describe("ZATCA Phase 2: withdraws an unpaid invoice whose document ZATCA rejected and issues a new one for the same lines at the next ICV, with the corrections given. Asked again, it answers the same correction.")
            .body(reference("ReissueInvoiceRequest"), false)
            .respond(201, "The new invoice; `replaces` names the rejected one.", reference("InvoiceAnswer"))
            .error(404, "No invoice with this id.")
            .error(422, "The invoice's document is not rejected, the invoice was paid, or Phase 2 is off."),
        operation("get", "/api/invoices/{id}/xml", "getInvoiceXml", "finance", "A Phase 2 document's legal XML", Access::Bearer(FINANCE_READ))
            .describe("ZATCA's cleared copy of a standard document, the stamped one of a simplified document; its ZATCA status in `X-Zatca-Status`. `document` picks one of the invoice's credit notes.")
            .parameter(json!({"name": "document", "in": "query", "schema": {"type": "string"}, "description": "A document of the invoice (a credit note's id); the invoice's own when absent."}))
            .respond_with(200, json!({
                "description": "The UBL 2.1 XML.",
                "headers": {"X-Zatca-Status": {"schema": string_enum(&["pending", "cleared", "reported", "rejected"])}},
                "content": {"application/xml": {"schema": {"type": "string"}}},
            }))
            .error(404, "No such Phase 2 document, or not stamped yet."),
        operation("get", "/api/invoices/{id}", "getInvoice", "finance", "One invoice", Access::Bearer(FINANCE_READ))
            .describe("Read from the invoice's stream, so always current: `after_position` never waits.")
            .parameters(&["AsOf", "AfterPosition"])
            .respond(200, "The invoice.", reference("Invoice"))
            .error(404, "No invoice with this id (by `as_of`)."),
        operation("post", "/api/partners", "enrollPartner", "finance", "Enroll a partner", Access::Bearer(FINANCE_CHANGE))
            .describe("A Strategic partner takes one of the program's Strategic slots.")
            .body(reference("EnrollPartnerRequest"), true)
            .command()
            .respond(201, "Enrolled.", reference("PartnerAnswer")),
        operation("get", "/api/partners/{id}", "getPartner", "finance", "One partner", Access::Bearer(OWN_PARTNER_READ))
            .describe("A partner token sees only its own partner; any other id is 404.")
            .parameters(&["AsOf", "AfterPosition"])
            .respond(200, "The partner.", reference("Partner"))
            .error(404, "No partner with this id (or not the token's own)."),
        operation("post", "/api/partners/{id}/referrals", "recordReferral", "finance", "Record a referral click", Access::Bearer(FINANCE_CHANGE))
            .body(reference("ReferralRequest"), true)
            .command()
            .respond(201, "Recorded.", reference("CommandAnswer")),
        operation("post", "/api/partners/{id}/tier", "changeTier", "finance", "Change a partner's tier", Access::Bearer(FINANCE_CHANGE))
            .body(reference("TierRequest"), true)
            .command()
            .respond(200, "Changed.", reference("CommandAnswer")),
        operation("get", "/api/partners/{id}/statements/{month}", "getStatement", "finance", "A partner's monthly statement", Access::Bearer(OWN_PARTNER_READ))
            .describe("JSON for `YYYY-MM`, CSV for `YYYY-MM.csv` (one row per line, then one row per total named without `_halalas`). A partner token sees only its own. Every amount is signed by its effect on what we owe the partner: closing = opening + accrued + rejected + adjusted + clawbacks + paid_out + carried, where `rejected`, `clawbacks`, `paid_out` and `carried` are never positive.")
            .parameters(&["AsOf"])
            .respond_with(200, json!({
                "description": "The statement.",
                "content": {
                    "application/json": {"schema": reference("Statement")},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }))
            .error(404, "No such partner, or not the partner token's own partner."),
        operation("get", "/api/commissions", "listCommissions", "finance", "Commissions, filtered", Access::Bearer(OWN_PARTNER_READ))
            .describe("Commissions by when they accrued (then id). A partner token sees only its own partner's (`partner_id` of another partner is 404); finance, admin and auditor see all.")
            .parameters(&["AsOf", "AfterPosition", "Limit"])
            .parameter(json!({"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^-?[0-9]{1,18}:.+$"}, "description": "`<accrued microseconds>:<commission id>`, the `next_cursor` of the previous page."}))
            .parameter(json!({"name": "partner_id", "in": "query", "schema": {"type": "string"}, "description": "Only this partner's."}))
            .parameter(json!({"name": "status", "in": "query", "schema": string_enum(&projections::commissions::STATUSES)}))
            .parameter(json!({"name": "period", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}, "description": "Accrued in this month (`YYYY-MM`, UTC)."}))
            .parameter(json!({"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "Accrued at or after (RFC 3339)."}))
            .parameter(json!({"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "Accrued before (RFC 3339)."}))
            .respond(200, "One page of commissions.", reference("CommissionPage"))
            .may_be_pending()
            .error(404, "A partner token asked for another partner."),
        operation("get", "/api/commissions/{id}", "getCommission", "finance", "One commission and its history", Access::Bearer(OWN_PARTNER_READ))
            .describe("Where it stands, and every event of its stream in order: accrued, approved or rejected (actor, reason), adjusted, clawed back (the refund), paid out (the payout). A partner token sees only its own partner's.")
            .parameters(&["AsOf", "AfterPosition"])
            .respond(200, "The commission.", reference("Commission"))
            .may_be_pending()
            .error(404, "No commission with this id (by `as_of`), or not the partner token's own."),
        operation("post", "/api/commissions/{id}/approve", "approveCommission", "finance", "Approve a commission", Access::Bearer(FINANCE_CHANGE))
            .body(reference("DecisionRequest"), false)
            .command()
            .respond(200, "Approved.", reference("CommandAnswer")),
        operation("post", "/api/commissions/{id}/reject", "rejectCommission", "finance", "Reject a commission", Access::Bearer(FINANCE_CHANGE))
            .body(reference("DecisionRequest"), false)
            .command()
            .respond(200, "Rejected.", reference("CommandAnswer")),
        operation("post", "/api/payouts", "createPayouts", "finance", "Create payouts", Access::Bearer(FINANCE_CHANGE))
            .describe("A payout for every partner (or the one named) whose approved commissions reach the minimum.")
            .body(reference("PayoutRequest"), false)
            .command()
            .respond(200, "What became of each partner's payout.", reference("Payouts")),
        operation("get", "/api/ledger/trial-balance", "getTrialBalance", "finance", "The trial balance", Access::Bearer(FINANCE_READ))
            .parameters(&["AsOf"])
            .parameter(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 10000, "default": 1000}, "description": "Accounts to list, in name order; clamped to 1..=10000. The totals always cover every account."}))
            .parameter(json!({"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "List the accounts after this name: the previous page's `next_cursor`."}))
            .respond(200, "Every account's debits, credits and balance (a page of accounts; the journal's totals), kept as lines are posted: the read does not sum the lines.", reference("TrialBalance")),
        operation("get", "/api/ledger/accounts/{account}", "getLedgerAccount", "finance", "One ledger account", Access::Bearer(FINANCE_READ))
            .parameters(&["AsOf"])
            .parameter(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 1000, "default": 100}, "description": "The newest lines to list; clamped to 1..=1000."}))
            .respond(200, "The account's totals and newest lines.", reference("LedgerAccount"))
            .error(404, "Nothing was ever posted to this account (by `as_of`)."),
        operation("get", "/api/reconciliation", "getReconciliation", "finance", "Reconciliation", Access::Bearer(FINANCE_READ))
            .describe("The open mismatch set, kept up to date as events arrive: `reconciled`, `mismatch_count`, `by_kind` and `checked` cover all of it; `mismatches` is one page of it, the ledger's own (by kind, then streams) before the providers' findings (newest day first), and `next_cursor` the cursor of the next page (`null` on the last).")
            .parameters(&["AsOf"])
            .parameter(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": projections::reconciliation::MAX_PAGE_MISMATCHES, "default": projections::reconciliation::DEFAULT_PAGE_MISMATCHES}, "description": "Mismatches in a page."}))
            .parameter(json!({"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[a-z]+:.+$"}, "description": "The `next_cursor` of the previous page: `ledger:<hex order key>` or `<provider>:<YYYY-MM-DD>:<kind>:<payment id>`."}))
            .respond(200, "Invoices, payments and commissions checked against each other (`source: ledger`), and the daily reconciliation of each Riyadh day against Moyasar's payments (`source: moyasar`, `provider_runs`).", reference("Reconciliation")),
        operation("get", "/api/revenue", "getRevenue", "finance", "Revenue", Access::Bearer(FINANCE_READ))
            .parameters(&["AsOf", "AfterPosition"])
            .respond(200, "MRR, ARPU, plan mix, pilot conversion.", reference("Revenue"))
            .may_be_pending(),
    ]
}

pub(super) fn queries() -> Vec<Operation> {
    vec![operation(
        "get",
        "/api/projections",
        "getProjections",
        "audit",
        "Projection lag",
        Access::Bearer(STAFF),
    )
    .respond(
        200,
        "Each projection's checkpoint and lag.",
        reference("Projections"),
    )]
}

pub(super) fn audit() -> Vec<Operation> {
    vec![
        operation("get", "/api/audit", "getAudit", "audit", "The audit trail", Access::Bearer(AUDIT_READ))
            .parameters(&["AsOf", "AfterPosition", "Limit"])
            .parameter(json!({"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}, "description": "The `next_cursor` (an audit sequence number) of the previous page."}))
            .parameter(json!({"name": "stream", "in": "query", "schema": {"type": "string"}}))
            .parameter(json!({"name": "actor", "in": "query", "schema": {"type": "string"}, "description": "e.g. `token:<token id>`, `webhook:moyasar`."}))
            .parameter(json!({"name": "event_type", "in": "query", "schema": {"type": "string"}}))
            .parameter(json!({"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}}))
            .parameter(json!({"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}}))
            .respond(200, "One page of the trail, oldest first.", reference("AuditPage"))
            .error(503, "With `as_of`: the live trail has not reached the row the trail as of then starts from (its projector is catching up or rebuilding); retry.")
            .may_be_pending(),
        operation("get", "/api/streams/{stream_id}/events", "getStreamEvents", "audit", "A stream's events as stored", Access::Bearer(AUDIT_READ))
            .parameters(&["Limit"])
            .parameter(json!({"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"}, "description": "The `next_cursor` (a stream version) of the previous page."}))
            .respond(200, "One page of the stream, in version order, with hashes.", reference("StreamPage"))
            .error(404, "No stream with this id."),
        operation("get", "/api/events", "getEvents", "audit", "The event log as NDJSON", Access::Bearer(AUDIT_READ))
            .parameter(json!({"name": "after", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 0, "default": 0}, "description": "Send the events after this position."}))
            .parameter(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_FEED_EVENTS, "default": DEFAULT_FEED_EVENTS}}))
            .respond_with(200, json!({
                "description": "Every committed event after `after`, in commit order, one JSON object (a RecordedEvent) per line, streamed.",
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            })),
        operation("get", "/api/verify", "verify", "audit", "Verify the hash chains and audit seals", Access::Bearer(AUDIT_READ))
            .respond(200, "Whether every chain and seal is intact, and the first break if not.", reference("Verify")),
    ]
}

pub(super) fn tokens() -> Vec<Operation> {
    vec![
        operation("get", "/api/tokens", "listTokens", "tokens", "List tokens", Access::Bearer(ADMIN))
            .describe("Newest first, revoked and expired ones included; never a token or its hash.")
            .respond(200, "The tokens.", reference("TokenList")),
        operation("post", "/api/tokens", "createToken", "tokens", "Create a token", Access::Bearer(ADMIN))
            .describe("The token is in this answer and never again (only its SHA-256 is stored); no Idempotency-Key, since replaying the answer would mean keeping the token.")
            .body(reference("CreateTokenRequest"), true)
            .respond(201, "Created; `token` is shown this once.", reference("CreatedToken"))
            .error(422, "`partner_id` names no enrolled partner (`unknown_partner`)."),
        operation("post", "/api/tokens/{id}/revoke", "revokeToken", "tokens", "Revoke a token", Access::Bearer(ADMIN))
            .describe("Refused from now on (401) and its dashboard sessions ended. Again is the same answer, with the first revocation time.")
            .respond(200, "Revoked.", reference("RevokedToken"))
            .error(404, "No token with this id (`bootstrap-admin` is REVLEDGER_ADMIN_TOKEN, a setting)."),
    ]
}

pub(super) fn personal() -> Vec<Operation> {
    vec![
        operation("post", "/api/admin/erasures", "eraseSubject", "personal", "Erase a person's data", Access::Bearer(ADMIN))
            .describe("Deletes the data keys of everything held about the person (their lead, partner contact, the emails indexed for them and the webhook deliveries that named them) and appends `SubjectErased`, which holds no personal data: their names, emails, phones and notes read `[erased]` everywhere from now on, and every hash chain stays valid. Logged first in the erasure log kept apart from the database, so a restored backup is erased again. Again is the same answer with `already_erased`.")
            .body(reference("SubjectRequest"), true)
            .respond(200, "Erased (or erased before).", reference("Erasure"))
            .error(404, "No lead, partner contact or referral is held for this subject.")
            .error(409, "The lead was captured before personal data was sealed (schema version 1, in clear in the hash-chained log): erasing it would break verify.")
            .error(503, "No erasure log is configured (`REVLEDGER_ERASURE_LOG`)."),
        operation("get", "/api/admin/subjects/export", "exportSubject", "personal", "Export a person's data", Access::Bearer(ADMIN))
            .describe("Everything held about the person, personal values opened (or `[erased]`): their own streams, the referral clicks recorded for their email, their invoices and their CRM row.")
            .parameter(json!({
                "name": "subject", "in": "query", "required": true,
                "description": "A lead id, or an email address.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 254},
            }))
            .respond(200, "What is held.", reference("SubjectExport"))
            .error(404, "No lead, partner contact or referral is held for this subject."),
    ]
}

pub(super) fn token_properties() -> Value {
    json!({
        "token_id": string(),
        "role": token_role(),
        "partner_id": nullable(string()),
        "label": nullable(string()),
        "created_at": date_time(),
        "expires_at": nullable(date_time()),
        "revoked_at": nullable(date_time()),
        "status": string_enum(&["active", "expired", "revoked"]),
    })
}

pub(super) const TOKEN_REQUIRED: [&str; 8] = [
    "token_id",
    "role",
    "partner_id",
    "label",
    "created_at",
    "expires_at",
    "revoked_at",
    "status",
];

pub(super) fn token_role() -> Value {
    string_enum(&["admin", "sales", "finance", "auditor", "partner"])
}

/// A token as listed, with more properties.
pub(super) fn token_with(extra: Value) -> Value {
    let mut schema = object(&TOKEN_REQUIRED, token_properties());
    for (name, property) in extra.as_object().into_iter().flatten() {
        schema["properties"][name] = property.clone();
        schema["required"]
            .as_array_mut()
            .expect("required is an array")
            .push(Value::from(name.clone()));
    }
    schema
}
