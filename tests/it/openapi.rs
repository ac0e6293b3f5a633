//! `GET /openapi.json`: the document parses, is OpenAPI 3.0.3, and its operations are exactly
//! the routes the router serves (the dashboard's HTML aside). Three views must agree: the list
//! kept here, the document, and the `.route(…)` calls in `api/src`, so a route added without
//! documentation fails this test even if its author never opens this file. `ops/schemathesis.sh`
//! checks the schemas themselves against real answers.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::app::spawn_app;
use crate::helpers::Engine;

/// Every documented operation, as (method, path template).
const DOCUMENTED: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/metrics"),
    ("post", "/webhooks/moyasar"),
    ("post", "/webhooks/calendly"),
    ("post", "/webhooks/partners"),
    ("get", "/api/webhooks/dead-letters"),
    ("post", "/api/webhooks/dead-letters/{id}/replay"),
    ("post", "/api/leads"),
    ("get", "/api/leads/{id}"),
    ("post", "/api/leads/{id}/qualify"),
    ("post", "/api/leads/{id}/book-demo"),
    ("post", "/api/leads/{id}/cancel-demo"),
    ("post", "/api/leads/{id}/no-show"),
    ("post", "/api/leads/{id}/proposal"),
    ("post", "/api/leads/{id}/onboard"),
    ("post", "/api/leads/{id}/activate"),
    ("post", "/api/leads/{id}/archive"),
    ("post", "/api/leads/{id}/reopen"),
    ("post", "/api/leads/{id}/follow-ups"),
    ("get", "/api/funnel"),
    ("get", "/api/crm/board"),
    ("get", "/api/crm/follow-ups"),
    ("post", "/api/invoices"),
    ("get", "/api/invoices/{id}"),
    ("post", "/api/invoices/{id}/cancel"),
    ("post", "/api/invoices/{id}/reissue"),
    ("get", "/api/invoices/{id}/xml"),
    ("post", "/api/partners"),
    ("get", "/api/partners/{id}"),
    ("post", "/api/partners/{id}/referrals"),
    ("post", "/api/partners/{id}/tier"),
    ("get", "/api/partners/{id}/statements/{month}"),
    ("get", "/api/commissions"),
    ("get", "/api/commissions/{id}"),
    ("post", "/api/commissions/{id}/approve"),
    ("post", "/api/commissions/{id}/reject"),
    ("post", "/api/payouts"),
    ("get", "/api/ledger/trial-balance"),
    ("get", "/api/ledger/accounts/{account}"),
    ("get", "/api/reconciliation"),
    ("get", "/api/revenue"),
    ("get", "/api/projections"),
    ("get", "/api/audit"),
    ("get", "/api/streams/{stream_id}/events"),
    ("get", "/api/events"),
    ("get", "/api/verify"),
    ("get", "/api/tokens"),
    ("post", "/api/tokens"),
    ("post", "/api/tokens/{id}/revoke"),
    ("post", "/api/admin/erasures"),
    ("get", "/api/admin/subjects/export"),
];

/// Routes outside the document: the dashboard is server-rendered HTML for people, not an API.
const UNDOCUMENTED_PREFIX: &str = "/dashboard";

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

type Route = (String, String);

fn documented() -> BTreeSet<Route> {
    DOCUMENTED
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect()
}

fn operations_in(document: &Value) -> BTreeSet<Route> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.insert((method.clone(), path.clone()));
        }
    }
    operations
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// The `(method, path)` of every `.route("path", method(…)…)` call in the api crate.
fn declared_routes() -> BTreeSet<Route> {
    let source_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("api/src");
    let mut routes = BTreeSet::new();
    for file in rust_files(&source_dir) {
        let source = std::fs::read_to_string(file).expect("source");
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let call = up_to_closing_parenthesis(rest);
            let path = call.split('"').nth(1).expect("a route's path literal");
            for method in METHODS.iter().filter(|method| calls(call, method)) {
                routes.insert((method.to_string(), path.to_owned()));
            }
        }
    }
    routes
}

/// `text` up to the `)` that closes the parenthesis opened just before it.
fn up_to_closing_parenthesis(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return &text[..i],
            ')' => depth -= 1,
            _ => {}
        }
    }
    text
}

/// Whether `call` calls the method router `method(` (not some `other_method(`).
fn calls(call: &str, method: &str) -> bool {
    call.match_indices(&format!("{method}(")).any(|(i, _)| {
        !call[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Whether the router's pattern serves the documented path: same segments, a router `{param}`
/// standing for any one segment (a documented `/api/leads/{id}/qualify` is one action of
/// `/api/leads/{id}/{action}`).
fn serves(pattern: &str, documented: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let documented: Vec<&str> = documented.split('/').collect();
    pattern.len() == documented.len()
        && pattern
            .iter()
            .zip(&documented)
            .all(|(p, d)| p.starts_with('{') || p == d)
}

#[tokio::test]
async fn the_document_is_openapi_3_0_3_and_lists_exactly_the_documented_operations() {
    let app = spawn_app(Engine::Sqlite).await.unwrap();
    let answer = app.get("/openapi.json", None).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let document = answer.body;
    assert_eq!(document["openapi"], "3.0.3");
    assert_eq!(operations_in(&document), documented());
    app.stop().await;
}

#[test]
fn every_route_the_router_declares_is_documented_and_every_documented_one_is_declared() {
    let declared: BTreeSet<Route> = declared_routes()
        .into_iter()
        .filter(|(_, path)| !path.starts_with(UNDOCUMENTED_PREFIX))
        .collect();
    assert!(
        declared.len() > 30,
        "the source scan found only {declared:?}"
    );
    let documented = documented();
    let undocumented: Vec<&Route> = declared
        .iter()
        .filter(|(method, pattern)| {
            !documented
                .iter()
                .any(|(m, path)| m == method && serves(pattern, path))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document (api/src/openapi/) and this list: {undocumented:?}"
    );
    let unserved: Vec<&Route> = documented
        .iter()
        .filter(|(method, path)| {
            !declared
                .iter()
                .any(|(m, pattern)| m == method && serves(pattern, path))
        })
        .collect();
    assert!(
        unserved.is_empty(),
        "documented but not routed: {unserved:?}"
    );
}

/// A path with each `{param}` filled in with a value the route will parse.
fn example_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{month}" => "2026-01",
            s if s.starts_with('{') => "unknown",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app(Engine::Sqlite).await.unwrap();
    for (method, template) in DOCUMENTED {
        let path = example_path(template);
        let answer = app.request(&method.to_uppercase(), &path, &[], b"").await;
        // An unrouted request gets axum's bare 404 (no body) or 405; every route answers a
        // request without credentials with a status and, but for the health checks, JSON.
        assert_ne!(answer.status, 405, "{method} {path}");
        assert!(
            answer.status != 404 || answer.body.is_object(),
            "{method} {path} is not routed"
        );
    }
    app.stop().await;
}

#[test]
fn every_reference_in_the_document_resolves() {
    let document = api::openapi::build();
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{reference} is not local"));
        assert!(
            document.pointer(pointer).is_some(),
            "{reference} resolves to nothing"
        );
    }
}

fn collect_references(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            if let Some(Value::String(reference)) = fields.get("$ref") {
                into.push(reference.clone());
            }
            fields.values().for_each(|v| collect_references(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, into)),
        _ => {}
    }
}
