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

use crate::queries::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

mod bodies;
mod operations;
mod schemas;

use bodies::*;
use operations::*;
use schemas::*;

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
            {"name": "personal", "description": "A person's data (PDPL): erasure and subject access. Admin only."},
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
