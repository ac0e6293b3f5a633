//! The OpenAPI 3.0.3 document of the JSON API, served at `GET /openapi.json`.
//!
//! It is written by hand rather than derived (utoipa): the handlers read their bodies as bytes
//! and parse them themselves (to refuse NUL characters, to hash the exact bytes for
//! Idempotency-Key), so there is no extractor type for a derive to see, and annotating every
//! handler would scatter the document over five files. Keeping it honest is the job of two
//! checks instead: `tests/it/openapi.rs` compares its operations with the routes the router
//! declares, and `ops/schemathesis.sh` fuzzes a running server against it (no 5xx, every
//! status, content type and body as documented).
//!
//! What it covers: every route but the dashboard's server-rendered HTML. Request schemas follow
//! the serde structs (a struct with `deny_unknown_fields` is `additionalProperties: false`);
//! response schemas name the properties that are always there and leave room for more. Limits
//! come from the constants the handlers enforce, so the two cannot drift apart.

use std::sync::LazyLock;

use axum::Json;
use serde_json::{json, Map, Value};

use crate::commands::{DEFAULT_DUE_DAYS, MAX_DUE_DAYS, MAX_INVOICE_LINES};
use crate::queries::{DEFAULT_FEED_EVENTS, DEFAULT_PAGE_SIZE, MAX_FEED_EVENTS, MAX_PAGE_SIZE};

/// The document, built once on first use.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// `GET /openapi.json`.
pub async fn document() -> Json<&'static Value> {
    Json(&DOCUMENT)
}

/// The whole document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for operation in operations() {
        let item = paths
            .entry(operation.path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[operation.method] = operation.value;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "revledger",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "An event-sourced revenue ledger: leads, invoices (ZATCA), payments, \
                partners and commissions. Commands answer with the stream version and global \
                `position` they produced; pass that position as `after_position` to a query to \
                read your own write. Errors are `{\"error\", \"detail\", \"field\"?}`.",
        },
        "tags": [
            {"name": "health", "description": "Liveness, readiness and this document."},
            {"name": "webhooks", "description": "Provider deliveries, authenticated by their own signatures."},
            {"name": "leads", "description": "The sales funnel and CRM."},
            {"name": "finance", "description": "Invoices, partners, commissions, payouts, the ledger."},
            {"name": "audit", "description": "The event log, its chains, projections and dead letters."},
            {"name": "tokens", "description": "API tokens: create (shown once), list, revoke. Admin only."},
        ],
        "paths": paths,
        "components": components(),
    })
}

// ---------------------------------------------------------------------------------------------
// Operations

/// One method on one path.
struct Operation {
    method: &'static str,
    path: &'static str,
    value: Value,
}

/// Who may call an operation.
enum Access {
    /// Anyone.
    Public,
    /// A provider, by the signature scheme described.
    Signed(&'static str),
    /// A bearer token of one of these roles (a partner token only for its own partner id).
    Bearer(&'static [&'static str]),
}

const SALES_CHANGE: &[&str] = &["admin", "sales"];
const FINANCE_CHANGE: &[&str] = &["admin", "finance"];
const SALES_READ: &[&str] = &["admin", "auditor", "sales", "finance"];
const FINANCE_READ: &[&str] = &["admin", "auditor", "finance"];
const AUDIT_READ: &[&str] = &["admin", "auditor"];
const OWN_PARTNER_READ: &[&str] = &["admin", "auditor", "finance", "partner"];
const STAFF: &[&str] = &["admin", "auditor", "sales", "finance"];
const ADMIN: &[&str] = &["admin"];

fn operation(
    method: &'static str,
    path: &'static str,
    id: &str,
    tag: &str,
    summary: &str,
    access: Access,
) -> Operation {
    let mut value = json!({
        "operationId": id,
        "tags": [tag],
        "summary": summary,
        "parameters": [],
        "responses": {},
    });
    match access {
        Access::Public => value["security"] = json!([]),
        Access::Signed(how) => {
            value["security"] = json!([]);
            value["description"] = Value::from(how);
            value["responses"]["401"] = error_response("The signature does not verify.");
        }
        Access::Bearer(roles) => {
            value["security"] = json!([{"bearerAuth": []}]);
            value["x-roles"] = json!(roles);
            value["description"] = Value::from(format!("Roles: {}.", roles.join(", ")));
            value["responses"]["401"] = error_response("No bearer token, or an unknown one.");
            value["responses"]["403"] = error_response("The token's role may not do this.");
        }
    }
    for name in path_parameters(path) {
        value["parameters"]
            .as_array_mut()
            .expect("parameters is an array")
            .push(path_parameter(name));
    }
    if path.contains('{') {
        value["responses"]["400"] = bad_request();
    }
    Operation {
        method,
        path,
        value,
    }
}

/// The `{name}` segments of a path template.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

fn path_parameter(name: &str) -> Value {
    let schema = match name {
        "month" => json!({
            "type": "string",
            "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])(\\.csv)?$",
            "description": "YYYY-MM for JSON, YYYY-MM.csv for CSV.",
            "example": "2026-11",
        }),
        name if crate::input::ID_PARAMETERS.contains(&name) => id_schema(),
        _ => json!({"type": "string", "minLength": 1}),
    };
    let mut parameter = json!({"name": name, "in": "path", "required": true, "schema": schema});
    bound_parameter(&mut parameter);
    parameter
}

/// An identifier's schema ([`domain::input`]).
fn id_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": domain::input::MAX_ID_CHARS, "pattern": domain::input::ID_PATTERN})
}

/// Gives every string under a request schema the bound the API enforces for its field
/// ([`domain::input`]): identifiers their pattern, text its `maxLength`.
fn bound_strings(schema: &mut Value) {
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, property) in properties.iter_mut() {
            if property["type"] == "string" && property.get("enum").is_none() {
                if domain::input::ID_FIELDS.contains(&name.as_str()) {
                    property["pattern"] = Value::from(domain::input::ID_PATTERN);
                    property["maxLength"] = Value::from(domain::input::MAX_ID_CHARS);
                } else {
                    property["maxLength"] = Value::from(domain::input::max_chars(name));
                }
            }
            bound_strings(property);
        }
    }
    if let Some(items) = schema.get_mut("items") {
        bound_strings(items);
    }
}

/// A string parameter's `maxLength`, from its name ([`domain::input::max_chars`]).
fn bound_parameter(parameter: &mut Value) {
    let name = parameter["name"].as_str().unwrap_or_default().to_owned();
    let schema = &mut parameter["schema"];
    if schema["type"] == "string" && schema.get("maxLength").is_none() {
        schema["maxLength"] = Value::from(domain::input::max_chars(&name));
    }
}

impl Operation {
    fn describe(mut self, text: &str) -> Self {
        let before = self.value["description"].as_str().unwrap_or_default();
        self.value["description"] = Value::from(format!("{text} {before}").trim().to_owned());
        self
    }

    fn parameter(mut self, mut parameter: Value) -> Self {
        if parameter["in"] == "query" {
            bound_parameter(&mut parameter);
        }
        if parameter["$ref"] == "#/components/parameters/AsOf" {
            self.value["responses"]["429"] = error_response(
                "Every as-of replay slot is taken (`REVLEDGER_AS_OF_MAX_CONCURRENT`): retry after the `Retry-After` seconds.",
            );
        }
        self.value["parameters"]
            .as_array_mut()
            .expect("parameters is an array")
            .push(parameter);
        self.value["responses"]["400"] = bad_request();
        self
    }

    fn parameters(self, names: &[&str]) -> Self {
        names
            .iter()
            .fold(self, |op, name| op.parameter(reference_parameter(name)))
    }

    fn header(self, name: &str, description: &str) -> Self {
        self.parameter(json!({
            "name": name, "in": "header", "required": true,
            "description": description, "schema": {"type": "string"},
        }))
    }

    /// A JSON request body; `required: false` when an empty body is accepted.
    fn body(mut self, schema: Value, required: bool) -> Self {
        self.value["requestBody"] = json!({
            "required": required,
            "content": {"application/json": {"schema": schema}},
        });
        self.value["responses"]["400"] = bad_request();
        self.value["responses"]["413"] =
            error_response("The body is larger than the server accepts (256 KiB).");
        self
    }

    /// A command: Idempotency-Key, and the answers a command can get besides success.
    fn command(self) -> Self {
        self.parameter(reference_parameter("IdempotencyKey"))
            .error(409, "The stream changed concurrently; retry.")
            .error(
                422,
                "The domain refuses the command (the rule is named), or the Idempotency-Key \
                 was used for a different request.",
            )
    }

    fn respond(mut self, status: u16, description: &str, schema: Value) -> Self {
        self.value["responses"][status.to_string()] = json!({
            "description": description,
            "content": {"application/json": {"schema": schema}},
        });
        self
    }

    fn respond_with(mut self, status: u16, response: Value) -> Self {
        self.value["responses"][status.to_string()] = response;
        self
    }

    fn error(mut self, status: u16, description: &str) -> Self {
        self.value["responses"][status.to_string()] = error_response(description);
        self
    }

    /// The 202 a read-your-writes query answers when its projection lags.
    fn may_be_pending(self) -> Self {
        self.respond(
            202,
            "The projection has not reached `after_position` within two seconds.",
            reference("Pending"),
        )
    }
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn reference_parameter(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": reference("Error")}},
    })
}

/// Our own 400s are JSON; axum's (a path or query value of the wrong type) are plain text.
fn bad_request() -> Value {
    json!({
        "description": "A parameter or the body is not what the route takes; `field` names it.",
        "content": {
            "application/json": {"schema": reference("Error")},
            "text/plain": {"schema": {"type": "string"}},
        },
    })
}

fn operations() -> Vec<Operation> {
    [
        health(),
        webhooks(),
        leads(),
        finance(),
        queries(),
        audit(),
        tokens(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn health() -> Vec<Operation> {
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

fn webhook(path: &'static str, id: &str, summary: &str, how: &'static str) -> Operation {
    operation("post", path, id, "webhooks", summary, Access::Signed(how))
        .body(reference("WebhookDelivery"), true)
        .respond(200, "Applied, acknowledged, or refused for good by the domain (`status` says which); a repeat gets the first answer.", reference("WebhookAnswer"))
        .respond(202, "Refers to something not known yet: parked and retried.", reference("WebhookAnswer"))
        .error(404, "This provider's webhooks are not enabled on this server.")
        .error(409, "The delivery id was already received with another body.")
        .error(503, "The aggregate is busy; the provider should retry.")
}

fn webhooks() -> Vec<Operation> {
    vec![
        webhook("/webhooks/moyasar", "moyasarWebhook", "A Moyasar payment event", "Authenticated by the `secret_token` field of the body."),
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
fn lead_action(path: &'static str, id: &str, summary: &str, needs: &[&str]) -> Operation {
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

fn leads() -> Vec<Operation> {
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

fn finance() -> Vec<Operation> {
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
            .describe("JSON for `YYYY-MM`, CSV for `YYYY-MM.csv`. A partner token sees only its own.")
            .parameters(&["AsOf"])
            .respond_with(200, json!({
                "description": "The statement.",
                "content": {
                    "application/json": {"schema": reference("Statement")},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }))
            .error(404, "No such partner, or not the partner token's own partner."),
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
            .respond(200, "Every account's debits, credits and balance.", reference("TrialBalance")),
        operation("get", "/api/ledger/accounts/{account}", "getLedgerAccount", "finance", "One ledger account", Access::Bearer(FINANCE_READ))
            .parameters(&["AsOf"])
            .parameter(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 1000, "default": 100}, "description": "The newest lines to list; clamped to 1..=1000."}))
            .respond(200, "The account's totals and newest lines.", reference("LedgerAccount"))
            .error(404, "Nothing was ever posted to this account (by `as_of`)."),
        operation("get", "/api/reconciliation", "getReconciliation", "finance", "Reconciliation", Access::Bearer(FINANCE_READ))
            .parameters(&["AsOf"])
            .respond(200, "Invoices, payments and commissions checked against each other.", reference("Reconciliation")),
        operation("get", "/api/revenue", "getRevenue", "finance", "Revenue", Access::Bearer(FINANCE_READ))
            .parameters(&["AsOf", "AfterPosition"])
            .respond(200, "MRR, ARPU, plan mix, pilot conversion.", reference("Revenue"))
            .may_be_pending(),
    ]
}

fn queries() -> Vec<Operation> {
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

fn audit() -> Vec<Operation> {
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

fn tokens() -> Vec<Operation> {
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

fn token_properties() -> Value {
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

const TOKEN_REQUIRED: [&str; 8] = [
    "token_id",
    "role",
    "partner_id",
    "label",
    "created_at",
    "expires_at",
    "revoked_at",
    "status",
];

fn token_role() -> Value {
    string_enum(&["admin", "sales", "finance", "auditor", "partner"])
}

/// A token as listed, with more properties.
fn token_with(extra: Value) -> Value {
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

// ---------------------------------------------------------------------------------------------
// Components

fn string() -> Value {
    json!({"type": "string"})
}

fn integer() -> Value {
    json!({"type": "integer", "format": "int64"})
}

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// `schema` or null (a null is added to an enum, as OpenAPI 3.0.3 asks).
fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = Value::Bool(true);
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    schema
}

fn string_enum(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

fn plan() -> Value {
    string_enum(&["pilot", "starter", "growth", "scale"])
}

fn partner_tier() -> Value {
    string_enum(&["referral", "certified", "strategic"])
}

fn lead_stage() -> Value {
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
fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// A request body struct with `deny_unknown_fields`.
fn closed(required: &[&str], properties: Value) -> Value {
    let mut schema = object(required, properties);
    schema["additionalProperties"] = Value::Bool(false);
    schema
}

fn page_of(item: Value) -> Value {
    object(
        &["items", "next_cursor"],
        json!({
            "items": {"type": "array", "items": item},
            "next_cursor": nullable(string()),
        }),
    )
}

/// The properties of every command answer.
fn command_answer_properties() -> Map<String, Value> {
    let properties = json!({
        "stream_id": string(),
        "version": integer(),
        "position": nullable(integer()),
        "events": integer(),
        "replayed": {"type": "boolean"},
    });
    properties.as_object().cloned().unwrap_or_default()
}

const COMMAND_ANSWER_REQUIRED: [&str; 5] =
    ["stream_id", "version", "position", "events", "replayed"];

/// A command answer with more properties.
fn command_answer_with(extra: Value) -> Value {
    let mut properties = command_answer_properties();
    let mut required: Vec<&str> = COMMAND_ANSWER_REQUIRED.to_vec();
    for (name, schema) in extra.as_object().into_iter().flatten() {
        required.push(name);
        properties.insert(name.clone(), schema.clone());
    }
    object(&required, Value::Object(properties))
}

fn invoice_properties() -> Value {
    json!({
        "invoice_id": string(),
        "lead_id": string(),
        "status": nullable(string_enum(&["issued", "partially_paid", "paid", "canceled", "expired"])),
        "currency": string_enum(&["SAR"]),
        "subtotal_halalas": integer(),
        "vat_halalas": integer(),
        "total_halalas": integer(),
        "paid_halalas": integer(),
        "refunded_halalas": integer(),
        "outstanding_halalas": integer(),
        "due_at": nullable(date_time()),
        "icv": integer(),
        "invoice_hash": string(),
        "previous_invoice_hash": string(),
        "qr_code": string(),
        "zatca": reference("InvoiceZatca"),
        "moyasar_invoice_id": nullable(string()),
        "payment_url": nullable(string()),
    })
}

/// An invoice's ZATCA block: its phase and, under Phase 2, its unit, UUID, type, status and
/// documents (on `GET /api/invoices/{id}`).
fn invoice_zatca() -> Value {
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
fn zatca_document() -> Value {
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

fn invoice() -> Value {
    let properties = invoice_properties();
    let mut required: Vec<&str> = properties
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| name.as_str())
        .collect();
    required.push("version");
    let mut schema = object(&required, properties.clone());
    schema["properties"]["version"] = integer();
    schema
}

fn board_row() -> Value {
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

fn audit_row() -> Value {
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

fn recorded_event() -> Value {
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

fn lag() -> Value {
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
fn non_blank() -> Value {
    json!({"type": "string", "pattern": "\\S"})
}

/// The body of the lead action at `path`, with the fields it `needs` required. Archiving takes
/// `cold` or `lost` as its reason; canceling a demo, any text.
fn lead_action_request(path: &str, needs: &[&str]) -> Value {
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
fn capture_lead_request() -> Value {
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

/// Request bodies, as the handlers' serde structs read them: an `Option` field may be absent
/// or null; a blank name or reason is the domain's to refuse (422), so the schema says
/// `non_blank` where it does.
fn request_schemas() -> Vec<(&'static str, Value)> {
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

fn response_schemas() -> Vec<(&'static str, Value)> {
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
                &["reconciled", "mismatch_count", "mismatches"],
                json!({
                    "reconciled": {"type": "boolean"},
                    "mismatch_count": integer(),
                    "by_kind": {"type": "object"},
                    "checked": {"type": "object"},
                    "mismatches": {"type": "array", "items": {"type": "object"}},
                }),
            ),
        ),
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
                    "accrued_halalas": integer(),
                    "rejected_halalas": integer(),
                    "adjusted_halalas": integer(),
                    "clawed_back_halalas": integer(),
                    "paid_out_halalas": integer(),
                    "carried_halalas": integer(),
                    "closing_balance_halalas": integer(),
                    "lines": {"type": "array", "items": object(&["kind", "amount_halalas", "balance_halalas"], json!({
                        "kind": string(),
                        "amount_halalas": integer(),
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
                    "status": {"type": "string", "description": "accepted, refused, parked, or dead_lettered."},
                    "provider": string(),
                    "delivery_id": string(),
                    "effect": string(),
                    "reason": string(),
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

fn query_parameters() -> Value {
    json!({
        "AsOf": {
            "name": "as_of", "in": "query",
            "description": "Read as of a past moment: a log position, or an RFC 3339 time. A moment not reached yet (a later time, a position past the head) reads everything committed so far, as without `as_of`, so that answer can still change.",
            "schema": {
                "type": "string",
                "pattern": "^([0-9]{1,18}|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$",
            },
            "example": "2026-01-01T00:00:00Z",
        },
        "AfterPosition": {
            "name": "after_position", "in": "query",
            "description": "Read-your-writes: wait (at most two seconds) until the read model has applied this position, else answer 202.",
            "schema": integer(),
        },
        "Limit": {
            "name": "limit", "in": "query",
            "description": "Rows in a page.",
            "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header",
            "description": "Claimed before the command runs: while it runs the same key is 409; once it has succeeded the same key and body get that answer again (header `Idempotent-Replayed: true`, kept 24 hours); the same key with another request is 422; an error is not kept (the same key runs again). Empty: 400.",
            "schema": {"type": "string", "minLength": 1, "maxLength": adapters::idempotency::MAX_KEY_CHARS},
        },
    })
}

/// The shared parameters, each string one with its bound.
fn bounded_parameters(mut parameters: Value) -> Value {
    for parameter in parameters
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        bound_parameter(parameter);
    }
    parameters
}

fn components() -> Value {
    let requests = request_schemas().into_iter().map(|(name, mut schema)| {
        bound_strings(&mut schema);
        (name, schema)
    });
    let schemas: Map<String, Value> = requests
        .chain(response_schemas())
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect();
    json!({
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from `revledger token create --role …`, or REVLEDGER_ADMIN_TOKEN.",
            },
        },
        "parameters": bounded_parameters(query_parameters()),
        "schemas": schemas,
    })
}
