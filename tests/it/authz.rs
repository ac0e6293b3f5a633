//! Authorisation over every operation the service documents (`GET /openapi.json`, so a route
//! added later is covered without touching this file):
//! - partner A's token gets no byte of partner B's data from any route: B's ids guessed into
//!   every path parameter, with `as_of=` (a position and a future time), CSV (`.csv`,
//!   `format=csv`, `Accept: text/csv`) and the NDJSON feed's parameters;
//! - an auditor's (and a partner's) token is refused (403) by every operation that is not a
//!   GET, and the store's event count does not move;
//! - no token, or a forged one, is 401 everywhere but the public routes (health, readiness,
//!   the document, metrics); webhooks answer 401 to anything unsigned, whatever the bearer;
//! - the real binary at `debug` log level never writes a token, secret or signature to its
//!   stdout or stderr, and no answer's body carries one.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use adapters::webhooks::{calendly, standard, Secret};
use api::auth::Role;
use serde_json::{json, Value};

use crate::app::{create_token, http_request, Answer, TestApp, ADMIN_TOKEN};
use crate::helpers::{temp_dir, Engine};

/// Who may call an operation, as the document says.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Access {
    /// `security: []` and no 401: anyone.
    Public,
    /// `security: []` with a 401: the provider's own signature.
    Signed,
    /// A bearer token of one of these roles.
    Bearer(Vec<String>),
}

#[derive(Clone, Debug)]
struct Operation {
    method: String,
    template: String,
    access: Access,
}

/// Every operation of the service's own document.
async fn documented_operations(app: &TestApp) -> Vec<Operation> {
    let document = app.get("/openapi.json", None).await;
    assert_eq!(document.status, 200, "{}", document.text);
    let mut operations = Vec::new();
    for (path, item) in document.body["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let security = operation["security"].as_array().expect("security");
            let access = if !security.is_empty() {
                let roles = operation["x-roles"].as_array().expect("x-roles");
                Access::Bearer(
                    roles
                        .iter()
                        .map(|r| r.as_str().unwrap().to_owned())
                        .collect(),
                )
            } else if operation["responses"].get("401").is_some() {
                Access::Signed
            } else {
                Access::Public
            };
            operations.push(Operation {
                method: method.to_uppercase(),
                template: path.clone(),
                access,
            });
        }
    }
    assert!(
        operations.len() >= 40,
        "the document lists {} operations",
        operations.len()
    );
    operations
}

/// Routes whose answer to a partner token is that token's own partner's data, though no
/// partner id is in the path.
const SCOPED_TO_OWN_PARTNER: [&str; 1] = ["/api/commissions"];

/// Partner B's data, as markers that must never reach partner A.
struct Other {
    partner_id: String,
    ids: Vec<String>,
    stream_ids: Vec<String>,
    markers: BTreeSet<String>,
}

async fn one_text_column(app: &TestApp, sql: &str, params: &[&str]) -> Vec<String> {
    let params: Vec<adapters::sql::SqlValue> = params.iter().map(|p| (*p).into()).collect();
    app.db
        .store
        .sql()
        .fetch_all(sql, &params)
        .await
        .unwrap()
        .iter()
        .map(|row| row.text(0).unwrap())
        .collect()
}

async fn other_partner(app: &TestApp, partner_id: &str, lead_id: &str) -> Other {
    let (lead, _) = app.handlers().leads.load_aggregate(lead_id).await.unwrap();
    let invoice_id = lead.invoice_id().expect("the lead was invoiced").to_owned();
    let commission_id = app::process::commissions::commission_id_for(&invoice_id);
    let ids = vec![
        partner_id.to_owned(),
        lead_id.to_owned(),
        invoice_id.clone(),
        commission_id.clone(),
        format!("pay-{lead_id}"),
    ];
    let mut stream_ids = BTreeSet::new();
    for id in &ids {
        let like = format!("%{id}%");
        stream_ids.extend(
            one_text_column(
                app,
                "SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE ?",
                &[&like],
            )
            .await,
        );
    }
    let stream_ids: Vec<String> = stream_ids.into_iter().collect();
    assert!(stream_ids.len() >= 4, "{stream_ids:?}");
    let mut markers: BTreeSet<String> = ids.iter().cloned().collect();
    markers.extend(stream_ids.iter().cloned());
    markers.insert(format!("{partner_id}@partners.sa"));
    markers.insert(format!("{lead_id}@example.sa"));
    for stream in &stream_ids {
        markers.extend(
            app.stream(stream)
                .await
                .iter()
                .map(|event| event.event_id.to_string()),
        );
    }
    Other {
        partner_id: partner_id.to_owned(),
        ids,
        stream_ids,
        markers,
    }
}

/// Every concrete path of `template`, each parameter replaced by each candidate.
fn expand(template: &str, candidates: &dyn Fn(&str) -> Vec<String>) -> Vec<String> {
    let mut paths = vec![String::new()];
    for segment in template.split('/').skip(1) {
        let values = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => candidates(name),
            None => vec![segment.to_owned()],
        };
        paths = paths
            .iter()
            .flat_map(|path| values.iter().map(move |value| format!("{path}/{value}")))
            .collect();
    }
    paths
}

fn bearer(token: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    if let Some(token) = token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    headers
}

async fn event_count(app: &TestApp) -> i64 {
    app.db
        .store
        .sql()
        .fetch_optional("SELECT COUNT(*) FROM events", &[])
        .await
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap()
}

async fn events_by(app: &TestApp, token_id: &str) -> i64 {
    let actor = format!("%token:{token_id}%");
    app.db
        .store
        .sql()
        .fetch_optional(
            "SELECT COUNT(*) FROM events WHERE CAST(metadata AS TEXT) LIKE ?",
            &[actor.as_str().into()],
        )
        .await
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap()
}

/// The markers of `other` in `answer` that the request did not itself carry.
fn leaked<'a>(other: &'a Other, request: &str, answer: &Answer) -> Vec<&'a String> {
    other
        .markers
        .iter()
        .filter(|marker| {
            answer.text.contains(marker.as_str()) && !request.contains(marker.as_str())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_every_documented_operation_keeps_partners_apart_and_auditors_read_only() {
    let app = crate::app::spawn_app(Engine::Sqlite).await.unwrap();
    every_documented_operation_keeps_partners_apart_and_auditors_read_only(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_every_documented_operation_keeps_partners_apart_and_auditors_read_only() {
    let Some(app) = crate::app::spawn_app(Engine::Postgres).await else {
        return;
    };
    every_documented_operation_keeps_partners_apart_and_auditors_read_only(&app).await;
    app.stop().await;
}

async fn every_documented_operation_keeps_partners_apart_and_auditors_read_only(app: &TestApp) {
    let month = crate::finance_api::earn(app, "p-alpha", "alpha-lead").await;
    crate::finance_api::earn(app, "p-beta", "beta-lead").await;
    let other = other_partner(app, "p-beta", "beta-lead").await;
    let (partner_id, partner) =
        create_token(app.handlers(), Role::Partner, Some("p-alpha"), Some("a")).await;
    let (auditor_id, auditor) =
        create_token(app.handlers(), Role::Auditor, None, Some("audit")).await;
    let operations = documented_operations(app).await;

    // Candidates for each path parameter: every id of partner B, partner A's own id, and one
    // that exists nowhere.
    let accounts: Vec<String> = app
        .get("/api/ledger/trial-balance", Some(ADMIN_TOKEN))
        .await
        .body["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| a["account"].as_str().unwrap().to_owned())
        .collect();
    let candidates = |name: &str| -> Vec<String> {
        match name {
            "month" => vec![month.clone(), format!("{month}.csv")],
            "account" => accounts.clone(),
            "stream_id" => other.stream_ids.clone(),
            _ => other
                .ids
                .iter()
                .cloned()
                .chain(["p-alpha".to_owned(), "no-such-id".to_owned()])
                .collect(),
        }
    };
    let head = app.db.store.head_position().await.unwrap();
    let queries = [
        String::new(),
        format!("?as_of={head}"),
        "?as_of=2999-01-01T00:00:00Z".to_owned(),
        "?format=csv".to_owned(),
        "?after=0&limit=100000".to_owned(),
        "?cursor=0&limit=200".to_owned(),
    ];

    app.settle().await;
    let events_before = event_count(app).await;
    let mut requests = 0;
    let mut statuses: std::collections::BTreeMap<u16, usize> = Default::default();
    for operation in &operations {
        for path in expand(&operation.template, &candidates) {
            let names_other = other.ids.iter().any(|id| path.contains(id.as_str()))
                || other.stream_ids.iter().any(|id| path.contains(id.as_str()));
            if operation.method == "GET" {
                let mut variants: Vec<(String, Vec<(&str, String)>)> = queries
                    .iter()
                    .map(|query| (format!("{path}{query}"), bearer(Some(&partner))))
                    .collect();
                let mut csv = bearer(Some(&partner));
                csv.push(("Accept", "text/csv".into()));
                variants.push((path.clone(), csv));
                for (target, headers) in variants {
                    let answer = app.request("GET", &target, &headers, b"").await;
                    requests += 1;
                    *statuses.entry(answer.status).or_default() += 1;
                    assert!(
                        (200..500).contains(&answer.status),
                        "GET {target}: {} {}",
                        answer.status,
                        answer.text
                    );
                    let leaks = leaked(&other, &target, &answer);
                    assert!(
                        leaks.is_empty(),
                        "partner A's token read {leaks:?} of partner B from GET {target}: {}",
                        answer.text
                    );
                    if (200..300).contains(&answer.status) {
                        // A partner's own data: its id in the path, or a list scoped to the
                        // token's partner whatever the query says.
                        let own = matches!(&operation.access, Access::Bearer(roles) if roles.iter().any(|r| r == "partner"))
                            && (path.contains("p-alpha")
                                || SCOPED_TO_OWN_PARTNER.contains(&path.as_str()));
                        assert!(
                            operation.access == Access::Public || (own && !names_other),
                            "partner A's token got {} from GET {target}: {}",
                            answer.status,
                            answer.text
                        );
                    }
                }
            } else {
                // Not a read: the auditor and the partner are refused, whatever the body.
                for (who, token) in [("auditor", &auditor), ("partner", &partner)] {
                    for body in [&b"{}"[..], b""] {
                        let answer = app
                            .request(&operation.method, &path, &bearer(Some(token)), body)
                            .await;
                        requests += 1;
                        *statuses.entry(answer.status).or_default() += 1;
                        let expected = match operation.access {
                            Access::Signed => 401,
                            _ => 403,
                        };
                        assert_eq!(
                            answer.status, expected,
                            "{who} token: {} {path}: {}",
                            operation.method, answer.text
                        );
                        assert!(leaked(&other, &path, &answer).is_empty(), "{}", answer.text);
                    }
                }
            }
        }
        // No token, a forged one, or another scheme: 401 unless public.
        let path = expand(&operation.template, &candidates).remove(0);
        for headers in [
            bearer(None),
            bearer(Some(
                "rl_0000000000000000000000000000000000000000000000000000000000000000",
            )),
            vec![("Authorization", format!("Basic {ADMIN_TOKEN}"))],
            vec![("Authorization", format!("bearer{ADMIN_TOKEN}"))],
        ] {
            let answer = app.request(&operation.method, &path, &headers, b"{}").await;
            requests += 1;
            *statuses.entry(answer.status).or_default() += 1;
            match operation.access {
                Access::Public => assert_eq!(answer.status, 200, "{path}: {}", answer.text),
                _ => {
                    assert_eq!(
                        answer.status, 401,
                        "{} {path} {headers:?}: {}",
                        operation.method, answer.text
                    );
                    assert!(
                        answer.body["error"].is_string(),
                        "a JSON error: {}",
                        answer.text
                    );
                }
            }
        }
    }
    app.settle().await;
    assert_eq!(
        event_count(app).await,
        events_before,
        "refused requests appended nothing"
    );
    assert_eq!(events_by(app, &auditor_id).await, 0);
    assert_eq!(events_by(app, &partner_id).await, 0);
    eprintln!(
        "authz: {} operations, {requests} requests, statuses {statuses:?}",
        operations.len()
    );

    // The control: the same routes do answer partner A about itself, and an auditor reads.
    let own = app
        .get(
            &format!("/api/partners/p-alpha/statements/{month}"),
            Some(&partner),
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.body["accrued_halalas"], 29_990);
    let feed = app.get("/api/events?after=0", Some(&auditor)).await;
    assert_eq!(feed.status, 200);
    assert!(
        feed.text.contains(&other.partner_id),
        "the auditor reads all"
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets never in logs or bodies

const ADMIN: &str = "rl-admin-4f7c1d2e9b8a";
const MOYASAR: &str = "moyasar-secret-c0ffee11";
const CALENDLY: &str = "calendly-key-5eed5eed";
/// `whsec_` and base64 of "partner-webhook-secret-abcdef".
const PARTNER_WHSEC: &str = "whsec_cGFydG5lci13ZWJob29rLXNlY3JldC1hYmNkZWY=";

/// A `revledger serve` whose stdout and stderr are both collected.
struct Logged {
    child: std::process::Child,
    address: String,
    lines: std::sync::mpsc::Receiver<String>,
}

fn serve_logged(dir: &std::path::Path, envs: &[(&str, &str)]) -> Logged {
    let mut command = crate::cli::revledger(dir);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("REVLEDGER_LOG", "debug")
        .env("RUST_LOG", "debug");
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn revledger serve");
    let (sender, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = sender.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut seen = Vec::new();
    let address = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("serve did not log its address: {seen:?}"));
        let entry: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(address) = entry["fields"]["address"].as_str() {
            break address.to_owned();
        }
        seen.push(line);
    };
    Logged {
        child,
        address,
        lines,
    }
}

/// `revledger token create`: the token printed on stdout.
fn create_token_cli(dir: &std::path::Path, args: &[&str]) -> String {
    let output = crate::cli::revledger(dir)
        .args(["token", "create"])
        .args(args)
        .output()
        .expect("token create");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn tokens_secrets_and_signatures_never_reach_logs_or_answers_at_debug_level() {
    let dir = temp_dir();
    let mut server = serve_logged(
        &dir,
        &[
            ("REVLEDGER_ADMIN_TOKEN", ADMIN),
            ("REVLEDGER_MOYASAR_SECRET_TOKEN", MOYASAR),
            ("REVLEDGER_CALENDLY_SIGNING_KEY", CALENDLY),
            ("REVLEDGER_PARTNER_WEBHOOK_SECRET", PARTNER_WHSEC),
        ],
    );
    let address = server.address.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A partner token is made only for an enrolled partner: enroll p-alpha first, then make
    // the tokens with the CLI beside the running server, as an operator would.
    let enrolled = runtime.block_on(http_request(
        &address,
        "POST",
        "/api/partners",
        &[
            ("Authorization", format!("Bearer {ADMIN}")),
            ("Content-Type", "application/json".to_owned()),
        ],
        br#"{"partner_id": "p-alpha", "name": "Alpha", "email": "alpha@partners.sa"}"#,
    ));
    assert_eq!(enrolled.status, 201, "{}", enrolled.text);
    let partner = create_token_cli(&dir, &["--role", "partner", "--partner", "p-alpha"]);
    let auditor = create_token_cli(&dir, &["--role", "auditor"]);
    assert!(partner.starts_with("rl_") && auditor.starts_with("rl_"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Presented but wrong credentials: near misses of the real ones.
    let wrong_tokens = [
        format!("{ADMIN}x"),
        format!("{}0", &partner[..partner.len() - 1]),
        "rl_forged0123456789abcdef0123456789abcdef0123456789abcdef01".to_owned(),
    ];
    let mut secrets: Vec<String> = vec![
        ADMIN.into(),
        MOYASAR.into(),
        CALENDLY.into(),
        PARTNER_WHSEC.into(),
        PARTNER_WHSEC.trim_start_matches("whsec_").into(),
        partner.clone(),
        auditor.clone(),
    ];
    secrets.extend(wrong_tokens.iter().cloned());

    let answers: Vec<(String, Answer)> = runtime.block_on(async {
        let mut answers = Vec::new();
        let mut send = |label: String, answer: Answer| answers.push((label, answer));
        let auth = |token: &str| {
            vec![
                ("Authorization", format!("Bearer {token}")),
                ("Content-Type", "application/json".to_owned()),
            ]
        };
        // Valid tokens: a command, reads, a refusal.
        let lead = json!({"name": "Secretive", "email": "s@example.sa", "source": "landing_page"});
        let lead = serde_json::to_vec(&lead).unwrap();
        for (label, token, method, path, body) in [
            ("admin lead", ADMIN, "POST", "/api/leads", &lead[..]),
            ("admin funnel", ADMIN, "GET", "/api/funnel?as_of=2999-01-01T00:00:00Z", b""),
            ("partner own", &partner, "GET", "/api/partners/p-alpha", b""),
            ("partner other", &partner, "GET", "/api/partners/p-beta/statements/2026-01.csv", b""),
            ("partner funnel", &partner, "GET", "/api/funnel", b""),
            ("auditor write", &auditor, "POST", "/api/payouts", b"{}"),
            ("auditor feed", &auditor, "GET", "/api/events", b""),
            ("admin tokens", ADMIN, "GET", "/api/tokens", b""),
        ] {
            send(label.into(), http_request(&address, method, path, &auth(token), body).await);
        }
        // Wrong tokens, other schemes, a token in the query string.
        for token in &wrong_tokens {
            send(format!("wrong {token}"), http_request(&address, "GET", "/api/funnel", &auth(token), b"").await);
        }
        send("basic".into(), http_request(&address, "GET", "/api/funnel", &[("Authorization", format!("Basic {ADMIN}"))], b"").await);
        send("query".into(), http_request(&address, "GET", &format!("/api/funnel?token={ADMIN}&access_token={partner}"), &[], b"").await);
        send("cookie".into(), http_request(&address, "GET", "/dashboard", &[("Cookie", format!("revledger_session={}", wrong_tokens[0]))], b"").await);
        // Moyasar: the right secret (an unknown payment) and a wrong one.
        for (label, token) in [("moyasar right", MOYASAR.to_owned()), ("moyasar wrong", format!("{MOYASAR}X"))] {
            let body = json!({"id": format!("evt-{label}"), "type": "payment_paid", "secret_token": token, "created_at": "2026-01-01T00:00:00Z", "data": {"id": "pay-secret", "status": "paid", "amount": 100, "currency": "SAR"}});
            send(label.into(), http_request(&address, "POST", "/webhooks/moyasar", &[("Content-Type", "application/json".into())], &serde_json::to_vec(&body).unwrap()).await);
            secrets.push(token);
        }
        // Calendly: a good signature, a signature with the wrong key, a stale one.
        let body = serde_json::to_vec(&json!({"event": "invitee.created", "created_at": "2026-01-01T00:00:00Z", "payload": {}})).unwrap();
        for (label, key, at) in [("calendly right", CALENDLY, now), ("calendly wrong", "calendly-key-WRONG", now), ("calendly stale", CALENDLY, now - 100_000)] {
            let signature = calendly::sign(&Secret::new(key), at, &body);
            send(label.into(), http_request(&address, "POST", "/webhooks/calendly", &[("Content-Type", "application/json".into()), (calendly::SIGNATURE_HEADER, signature.clone())], &body).await);
            secrets.push(signature.split_once("v1=").unwrap().1.to_owned());
        }
        // Partner source (Standard Webhooks): right, wrong secret, mangled.
        let body = serde_json::to_vec(&json!({"type": "partner.applied", "timestamp": "2026-01-01T00:00:00Z", "data": {}})).unwrap();
        for (label, secret) in [("partners right", PARTNER_WHSEC), ("partners wrong", "whsec_d3JvbmctcGFydG5lci1zZWNyZXQtMDAwMDAw")] {
            let id = format!("msg-{}", label.replace(' ', "-"));
            let signature = standard::sign(&Secret::new(secret), &id, now, &body).unwrap();
            for presented in [signature.clone(), format!("{signature}x"), signature.replace("v1,", "v2,")] {
                let headers = [
                    ("Content-Type", "application/json".to_owned()),
                    (standard::ID_HEADER, id.clone()),
                    (standard::TIMESTAMP_HEADER, now.to_string()),
                    (standard::SIGNATURE_HEADER, presented),
                ];
                send(label.into(), http_request(&address, "POST", "/webhooks/partners", &headers, &body).await);
            }
            secrets.push(signature.trim_start_matches("v1,").to_owned());
        }
        answers
    });
    let statuses: Vec<(String, u16)> = answers.iter().map(|(l, a)| (l.clone(), a.status)).collect();
    let status = |label: &str| {
        answers
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, a)| a.status)
            .unwrap()
    };
    // The requests did what they should, so the logs had something to say about each.
    assert_eq!(status("admin lead"), 201, "{statuses:?}");
    assert_eq!(status("partner own"), 200, "{statuses:?}");
    assert_eq!(status("admin tokens"), 200, "{statuses:?}");
    assert_eq!(status("partner other"), 404, "{statuses:?}");
    assert_eq!(status("partner funnel"), 403, "{statuses:?}");
    assert_eq!(status("auditor write"), 403, "{statuses:?}");
    assert_eq!(status("basic"), 401, "{statuses:?}");
    assert_eq!(status("query"), 401, "{statuses:?}");
    assert_eq!(status("moyasar wrong"), 401, "{statuses:?}");
    assert_eq!(status("calendly wrong"), 401, "{statuses:?}");
    assert_eq!(status("calendly stale"), 401, "{statuses:?}");
    assert!(status("moyasar right") != 401, "{statuses:?}");
    assert!(status("calendly right") != 401, "{statuses:?}");
    assert!(status("partners right") != 401, "{statuses:?}");

    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    server.child.wait().unwrap();
    // Both reader threads end at EOF; collect everything they sent.
    let logs: Vec<String> = server.lines.iter().collect();
    let all = logs.join("\n");
    assert!(
        all.contains("DEBUG") && all.contains("/api/funnel") && all.contains("/webhooks/partners"),
        "debug logging is on and follows the requests ({} lines)",
        logs.len()
    );
    for secret in &secrets {
        assert!(
            !all.contains(secret.as_str()),
            "{secret:?} appears in the server's output"
        );
        for (label, answer) in &answers {
            assert!(
                !answer.text.contains(secret.as_str()),
                "{secret:?} appears in the answer to {label}: {}",
                answer.text
            );
        }
    }
    eprintln!(
        "secrets: {} log lines, {} answers, {} secrets checked",
        logs.len(),
        answers.len(),
        secrets.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_letters_listing_never_shows_the_moyasar_secret_token() {
    let app = crate::app::spawn_app(Engine::Sqlite).await.unwrap();
    let body = json!({"id": "evt-dead-secret", "type": "payment_paid",
        "secret_token": crate::app::MOYASAR_TOKEN, "data": {"id": "pay-dead"}});
    let record = adapters::inbox::InboxRecord::new(
        "moyasar",
        "evt-dead-secret",
        &serde_json::to_vec(&body).unwrap(),
        time::OffsetDateTime::now_utc(),
    );
    let sql = app.db.store.sql();
    for _ in 0..adapters::inbox::MAX_ATTEMPTS {
        adapters::inbox::park(
            &sql,
            &record,
            "no such payment",
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    }
    let (_, auditor) = create_token(app.handlers(), Role::Auditor, None, None).await;
    let listed = app.get("/api/webhooks/dead-letters", Some(&auditor)).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert!(listed.text.contains("evt-dead-secret"), "{}", listed.text);
    assert!(listed.text.contains("[redacted]"), "{}", listed.text);
    assert!(
        !listed.text.contains(crate::app::MOYASAR_TOKEN),
        "the secret is listed: {}",
        listed.text
    );
    app.stop().await;
}
