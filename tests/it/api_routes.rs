//! The command and query routes over HTTP: the role matrix over every route, Idempotency-Key,
//! read-your-writes, as-of, the NDJSON feed, pagination, and the commands' own rules.

use std::collections::BTreeSet;

use adapters::store::{Checkpoint, MAX_READ_BATCH};
use api::auth::Role;
use app::command::CommandHandler;
use domain::lead::Lead;
use serde_json::{json, Value};

use crate::app::{create_token, Answer, TestApp, ADMIN_TOKEN};

crate::on_both_apps!(
    every_route_answers_every_role_as_the_matrix_says_and_never_fails,
    the_same_idempotency_key_and_body_get_the_first_answer_and_append_once,
    an_idempotency_key_reused_with_another_body_is_refused_with_422,
    an_invoice_created_twice_under_one_key_takes_one_place_in_the_zatca_chain,
    a_query_after_a_commands_position_sees_the_write,
    a_query_after_a_position_not_yet_written_answers_202_with_the_lag,
    the_funnel_as_of_a_position_before_a_capture_does_not_count_that_lead,
    the_event_feed_streams_every_event_once_in_order_and_after_skips,
    walking_the_board_cursor_visits_every_lead_once_and_past_the_end_is_empty,
    a_lead_moves_through_its_actions_and_broken_rules_are_422_unknown_leads_404_bad_bodies_400,
    an_invoice_by_plan_or_by_lines_is_issued_through_the_seller_sequence_and_can_be_canceled,
    a_strategic_enrollment_takes_a_slot_and_the_fourth_is_refused,
    follow_ups_list_the_leads_due_and_the_audit_trail_names_the_actor,
    the_auditor_reads_a_streams_events_verifies_the_chains_and_sees_projection_lag,
);

// ---------------------------------------------------------------------------------------------
// Helpers

async fn token(app: &TestApp, role: Role, partner: Option<&str>) -> String {
    create_token(app.handlers(), role, partner, Some("test"))
        .await
        .1
}

fn headers(token: Option<&str>, key: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    if let Some(token) = token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key.to_owned()));
    }
    headers
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> Answer {
    post_keyed(app, token, path, body, None).await
}

async fn post_keyed(
    app: &TestApp,
    token: &str,
    path: &str,
    body: &Value,
    key: Option<&str>,
) -> Answer {
    let bytes = serde_json::to_vec(body).unwrap();
    app.request("POST", path, &headers(Some(token), key), &bytes)
        .await
}

/// Captures a lead through the API; returns its position.
async fn capture(app: &TestApp, token: &str, lead_id: &str) -> i64 {
    let answer = post(
        app,
        token,
        "/api/leads",
        &json!({"lead_id": lead_id, "name": format!("Lead {lead_id}"), "company": "Acme",
                "email": format!("{lead_id}@example.sa"), "source": "website"}),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.body["position"].as_i64().unwrap()
}

fn lead_stream(lead_id: &str) -> String {
    CommandHandler::<Lead>::stream_id(lead_id)
}

// ---------------------------------------------------------------------------------------------
// The role matrix

/// Who may use a route.
#[derive(Clone, Copy, Debug)]
enum Access {
    /// No bearer token involved (health, webhooks with their own signatures): every caller
    /// gets the same answer.
    Public,
    /// These roles; everyone else with a token 403, without one 401.
    Roles(&'static [&'static str]),
    /// A partner record: the partner holding it, and these staff roles; another partner 404.
    Partner {
        own: bool,
        staff: &'static [&'static str],
    },
}

struct Route {
    method: &'static str,
    path: String,
    body: Value,
    access: Access,
    /// The statuses an allowed caller may get (a command another role already ran may be
    /// refused by the domain, 422; an id nobody created is 404).
    ok: &'static [u16],
}

const SALES_READERS: &[&str] = &["admin", "sales", "finance", "auditor"];
const SALES_CHANGERS: &[&str] = &["admin", "sales"];
const FINANCE_READERS: &[&str] = &["admin", "finance", "auditor"];
const FINANCE_CHANGERS: &[&str] = &["admin", "finance"];
const AUDITORS: &[&str] = &["admin", "auditor"];
const STAFF: &[&str] = &["admin", "sales", "finance", "auditor"];
const ADMINS: &[&str] = &["admin"];

fn route(
    method: &'static str,
    path: impl Into<String>,
    body: Value,
    access: Access,
    ok: &'static [u16],
) -> Route {
    Route {
        method,
        path: path.into(),
        body,
        access,
        ok,
    }
}

/// Every route of api/src/lib.rs, commands.rs, queries.rs and finance.rs.
fn routes(invoice_id: &str) -> Vec<Route> {
    use Access::*;
    let none = Value::Null;
    let lead = lead_stream("lead-m");
    vec![
        // lib.rs
        route("GET", "/healthz", none.clone(), Public, &[200]),
        route("GET", "/readyz", none.clone(), Public, &[200]),
        route(
            "POST",
            "/webhooks/moyasar",
            json!({}),
            Public,
            &[400, 401, 422],
        ),
        route(
            "POST",
            "/webhooks/calendly",
            json!({}),
            Public,
            &[400, 401, 422],
        ),
        route(
            "POST",
            "/webhooks/partners",
            json!({}),
            Public,
            &[400, 401, 422],
        ),
        route(
            "GET",
            "/api/webhooks/dead-letters",
            none.clone(),
            Roles(AUDITORS),
            &[200],
        ),
        route(
            "POST",
            "/api/webhooks/dead-letters/dl-none/replay",
            json!({}),
            Roles(FINANCE_CHANGERS),
            &[404],
        ),
        // finance.rs
        route(
            "GET",
            "/api/ledger/trial-balance",
            none.clone(),
            Roles(FINANCE_READERS),
            &[200],
        ),
        route(
            "GET",
            "/api/ledger/accounts/accounts_receivable",
            none.clone(),
            Roles(FINANCE_READERS),
            &[200, 404],
        ),
        route(
            "GET",
            "/api/reconciliation",
            none.clone(),
            Roles(FINANCE_READERS),
            &[200],
        ),
        route(
            "GET",
            "/api/partners/p-1/statements/2026-01",
            none.clone(),
            Partner {
                own: true,
                staff: FINANCE_READERS,
            },
            &[200],
        ),
        route(
            "GET",
            "/api/partners/p-2/statements/2026-01",
            none.clone(),
            Partner {
                own: false,
                staff: FINANCE_READERS,
            },
            &[200],
        ),
        route(
            "POST",
            "/api/partners/p-1/referrals",
            json!({"lead_email": "ref@example.sa", "clicked_at": "2026-01-05T10:00:00Z"}),
            Roles(FINANCE_CHANGERS),
            &[201],
        ),
        route(
            "POST",
            "/api/partners/p-2/tier",
            json!({"tier": "certified", "reason": "three activations"}),
            Roles(FINANCE_CHANGERS),
            &[200, 422],
        ),
        route(
            "POST",
            "/api/commissions/c-none/approve",
            json!({}),
            Roles(FINANCE_CHANGERS),
            &[404, 422],
        ),
        route(
            "POST",
            "/api/commissions/c-none/reject",
            json!({"reason": "duplicate"}),
            Roles(FINANCE_CHANGERS),
            &[404, 422],
        ),
        route(
            "POST",
            "/api/payouts",
            json!({}),
            Roles(FINANCE_CHANGERS),
            &[200],
        ),
        // commands.rs
        route(
            "POST",
            "/api/leads",
            json!({"name": "Matrix", "email": "matrix@example.sa", "source": "website"}),
            Roles(SALES_CHANGERS),
            &[201],
        ),
        route(
            "POST",
            "/api/leads/lead-m/qualify",
            json!({}),
            Roles(SALES_CHANGERS),
            &[200, 422],
        ),
        route(
            "POST",
            "/api/leads/lead-m/book-demo",
            json!({"booking_id": "b-1", "scheduled_for": "2026-03-01T09:00:00Z"}),
            Roles(SALES_CHANGERS),
            &[200, 422],
        ),
        route(
            "POST",
            "/api/leads/lead-m/proposal",
            json!({"plan": "growth"}),
            Roles(SALES_CHANGERS),
            &[200, 422],
        ),
        route(
            "POST",
            "/api/leads/lead-m/onboard",
            json!({}),
            Roles(SALES_CHANGERS),
            &[200, 422],
        ),
        route(
            "POST",
            "/api/leads/lead-m/activate",
            json!({}),
            Roles(SALES_CHANGERS),
            &[200, 422],
        ),
        route(
            "POST",
            "/api/leads/lead-m/archive",
            json!({"reason": "lost", "note": "budget"}),
            Roles(SALES_CHANGERS),
            &[200, 422],
        ),
        route(
            "POST",
            "/api/leads/lead-m/reopen",
            json!({}),
            Roles(SALES_CHANGERS),
            &[200, 422],
        ),
        route(
            "POST",
            "/api/leads/lead-m/follow-ups",
            json!({"channel": "email", "note": "sent deck", "responded": false}),
            Roles(SALES_CHANGERS),
            &[201, 422],
        ),
        route(
            "POST",
            "/api/invoices",
            json!({"lead_id": "lead-m", "plan": "growth"}),
            Roles(FINANCE_CHANGERS),
            &[201],
        ),
        route(
            "POST",
            format!("/api/invoices/{invoice_id}/cancel"),
            json!({"reason": "wrong plan"}),
            Roles(FINANCE_CHANGERS),
            &[200, 422],
        ),
        route(
            "POST",
            "/api/partners",
            json!({"name": "Matrix Partner", "email": "mp@partners.sa", "tier": "referral"}),
            Roles(FINANCE_CHANGERS),
            &[201],
        ),
        // queries.rs
        route(
            "GET",
            "/api/leads/lead-m",
            none.clone(),
            Roles(SALES_READERS),
            &[200],
        ),
        route(
            "GET",
            format!("/api/invoices/{invoice_id}"),
            none.clone(),
            Roles(FINANCE_READERS),
            &[200],
        ),
        route(
            "GET",
            "/api/partners/p-1",
            none.clone(),
            Partner {
                own: true,
                staff: FINANCE_READERS,
            },
            &[200],
        ),
        route(
            "GET",
            "/api/partners/p-2",
            none.clone(),
            Partner {
                own: false,
                staff: FINANCE_READERS,
            },
            &[200],
        ),
        route(
            "GET",
            "/api/funnel",
            none.clone(),
            Roles(SALES_READERS),
            &[200],
        ),
        route(
            "GET",
            "/api/crm/board",
            none.clone(),
            Roles(SALES_READERS),
            &[200],
        ),
        route(
            "GET",
            "/api/crm/follow-ups",
            none.clone(),
            Roles(SALES_READERS),
            &[200],
        ),
        route("GET", "/api/audit", none.clone(), Roles(AUDITORS), &[200]),
        route(
            "GET",
            "/api/revenue",
            none.clone(),
            Roles(FINANCE_READERS),
            &[200],
        ),
        route(
            "GET",
            format!("/api/streams/{lead}/events"),
            none.clone(),
            Roles(AUDITORS),
            &[200],
        ),
        route("GET", "/api/events", none.clone(), Roles(AUDITORS), &[200]),
        route("GET", "/api/verify", none.clone(), Roles(AUDITORS), &[200]),
        route(
            "GET",
            "/api/projections",
            none.clone(),
            Roles(STAFF),
            &[200],
        ),
        // tokens.rs
        route("GET", "/api/tokens", none.clone(), Roles(ADMINS), &[200]),
        route(
            "POST",
            "/api/tokens",
            json!({"role": "auditor", "label": "matrix", "expires_in_days": 1}),
            Roles(ADMINS),
            &[201],
        ),
        route(
            "POST",
            "/api/tokens/no-such-token/revoke",
            none,
            Roles(ADMINS),
            &[404],
        ),
    ]
}

/// What a caller should get from `route`: `Ok` for any of its `ok` statuses, else one status.
fn expected(route: &Route, caller: &str) -> Result<(), u16> {
    match (route.access, caller) {
        (Access::Public, _) => Ok(()),
        (_, "none" | "forged") => Err(401),
        (Access::Roles(roles), role) if roles.contains(&role) => Ok(()),
        (Access::Roles(_), _) => Err(403),
        (Access::Partner { own, .. }, "partner") => {
            if own {
                Ok(())
            } else {
                Err(404)
            }
        }
        (Access::Partner { staff, .. }, role) if staff.contains(&role) => Ok(()),
        (Access::Partner { .. }, _) => Err(403),
    }
}

async fn every_route_answers_every_role_as_the_matrix_says_and_never_fails(app: &TestApp) {
    for (partner_id, name) in [("p-1", "One"), ("p-2", "Two")] {
        let answer = post(
            app,
            ADMIN_TOKEN,
            "/api/partners",
            &json!({"partner_id": partner_id, "name": name, "email": format!("{partner_id}@partners.sa")}),
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    }
    capture(app, ADMIN_TOKEN, "lead-m").await;
    let invoice = post(
        app,
        ADMIN_TOKEN,
        "/api/invoices",
        &json!({"lead_id": "lead-m", "plan": "starter"}),
    )
    .await;
    assert_eq!(invoice.status, 201, "{}", invoice.text);
    let invoice_id = invoice.body["invoice_id"].as_str().unwrap().to_owned();
    app.settle().await;

    let callers: Vec<(&str, Option<String>)> = vec![
        ("admin", Some(ADMIN_TOKEN.to_owned())),
        ("admin", Some(token(app, Role::Admin, None).await)),
        ("sales", Some(token(app, Role::Sales, None).await)),
        ("finance", Some(token(app, Role::Finance, None).await)),
        ("auditor", Some(token(app, Role::Auditor, None).await)),
        (
            "partner",
            Some(token(app, Role::Partner, Some("p-1")).await),
        ),
        ("none", None),
        (
            "forged",
            Some("rl_forged0000000000000000000000000000".to_owned()),
        ),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in routes(&invoice_id) {
        let mut public_answers = BTreeSet::new();
        for (caller, token) in &callers {
            let body = if route.body.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&route.body).unwrap()
            };
            let answer = app
                .request(
                    route.method,
                    &route.path,
                    &headers(token.as_deref(), None),
                    &body,
                )
                .await;
            checked += 1;
            let good = match expected(&route, caller) {
                Ok(()) => route.ok.contains(&answer.status),
                Err(status) => answer.status == status,
            };
            if !good || answer.status >= 500 || answer.status == 0 {
                failures.push(format!(
                    "{} {} as {caller}: {} {}",
                    route.method, route.path, answer.status, answer.text
                ));
            }
            if matches!(route.access, Access::Public) {
                public_answers.insert(answer.status);
            }
        }
        assert!(
            public_answers.len() <= 1,
            "{} {} answers callers differently: {public_answers:?}",
            route.method,
            route.path
        );
    }
    assert!(checked >= 40 * 8, "only {checked} requests were checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Idempotency-Key

async fn the_same_idempotency_key_and_body_get_the_first_answer_and_append_once(app: &TestApp) {
    let sales = token(app, Role::Sales, None).await;
    let body = json!({"name": "Huda", "email": "huda@example.sa", "source": "website"});
    let first = post_keyed(app, &sales, "/api/leads", &body, Some("key-1")).await;
    let second = post_keyed(app, &sales, "/api/leads", &body, Some("key-1")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(second.status, first.status);
    assert_eq!(second.body, first.body);
    let lead_id = first.body["lead_id"].as_str().unwrap();
    assert_eq!(app.stream(&lead_stream(lead_id)).await.len(), 1);

    // A follow-up logged twice under one key is logged once.
    let follow_up = json!({"channel": "whatsapp", "note": "called", "responded": true});
    let path = format!("/api/leads/{lead_id}/follow-ups");
    let one = post_keyed(app, &sales, &path, &follow_up, Some("key-2")).await;
    let two = post_keyed(app, &sales, &path, &follow_up, Some("key-2")).await;
    assert_eq!(one.status, 201, "{}", one.text);
    assert_eq!((two.status, &two.body), (one.status, &one.body));
    assert_eq!(app.stream(&lead_stream(lead_id)).await.len(), 2);

    // The key belongs to its token: another token's same key is another request.
    let other = token(app, Role::Sales, None).await;
    let third = post_keyed(app, &other, "/api/leads", &body, Some("key-1")).await;
    assert_eq!(third.status, 201, "{}", third.text);
    assert_ne!(third.body["lead_id"], first.body["lead_id"]);
}

async fn an_idempotency_key_reused_with_another_body_is_refused_with_422(app: &TestApp) {
    let sales = token(app, Role::Sales, None).await;
    let body = json!({"name": "Omar", "email": "omar@example.sa", "source": "website"});
    let first = post_keyed(app, &sales, "/api/leads", &body, Some("reused")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let changed = json!({"name": "Omar", "email": "omar2@example.sa", "source": "website"});
    let refused = post_keyed(app, &sales, "/api/leads", &changed, Some("reused")).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.body["error"], "idempotency_key_reused");
    let lead_id = first.body["lead_id"].as_str().unwrap();
    assert_eq!(app.stream(&lead_stream(lead_id)).await.len(), 1);
    // The same key on another route is another request too.
    let elsewhere = post_keyed(
        app,
        &sales,
        &format!("/api/leads/{lead_id}/qualify"),
        &json!({}),
        Some("reused"),
    )
    .await;
    assert_eq!(elsewhere.status, 422, "{}", elsewhere.text);
}

async fn an_invoice_created_twice_under_one_key_takes_one_place_in_the_zatca_chain(app: &TestApp) {
    capture(app, ADMIN_TOKEN, "lead-key").await;
    let finance = token(app, Role::Finance, None).await;
    let body = json!({"lead_id": "lead-key", "plan": "growth"});
    let first = post_keyed(app, &finance, "/api/invoices", &body, Some("inv-1")).await;
    let second = post_keyed(app, &finance, "/api/invoices", &body, Some("inv-1")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!((second.status, &second.body), (first.status, &first.body));
    let vat = &app.state.config.seller.vat_number;
    let sequence = app
        .stream(&CommandHandler::<domain::sequence::DocumentSequence>::stream_id(vat))
        .await;
    assert_eq!(sequence.len(), 1, "one allocation");
    let invoice_id = first.body["invoice_id"].as_str().unwrap();
    assert_eq!(
        app.stream(&CommandHandler::<domain::invoice::Invoice>::stream_id(
            invoice_id
        ))
        .await
        .len(),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Read-your-writes and as_of

async fn a_query_after_a_commands_position_sees_the_write(app: &TestApp) {
    let sales = token(app, Role::Sales, None).await;
    let position = capture(app, &sales, "lead-ryw").await;
    let lead = app
        .get(
            &format!("/api/leads/lead-ryw?after_position={position}"),
            Some(&sales),
        )
        .await;
    assert_eq!(lead.status, 200, "{}", lead.text);
    assert_eq!(lead.body["stage"], "new");
    assert_eq!(lead.body["board"]["stage"], "new");
    assert_eq!(lead.body["board"]["company"], "Acme");

    let qualified = post(app, &sales, "/api/leads/lead-ryw/qualify", &json!({})).await;
    assert_eq!(qualified.status, 200, "{}", qualified.text);
    let position = qualified.body["position"].as_i64().unwrap();
    let board = app
        .get(
            &format!("/api/crm/board?stage=qualified&after_position={position}"),
            Some(&sales),
        )
        .await;
    assert_eq!(board.status, 200, "{}", board.text);
    assert_eq!(board.body["items"][0]["lead_id"], "lead-ryw");
    let funnel = app
        .get(
            &format!("/api/funnel?after_position={position}"),
            Some(&sales),
        )
        .await;
    assert_eq!(funnel.status, 200, "{}", funnel.text);
    assert_eq!(funnel.body["leads"], 1);
    let audit = app
        .get(
            &format!(
                "/api/audit?after_position={position}&stream={}",
                lead_stream("lead-ryw")
            ),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 2);
}

async fn a_query_after_a_position_not_yet_written_answers_202_with_the_lag(app: &TestApp) {
    capture(app, ADMIN_TOKEN, "lead-lag").await;
    let answer = app
        .get("/api/funnel?after_position=1000000", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert_eq!(answer.body["status"], "pending");
    assert_eq!(answer.body["lag"]["name"], "funnel");
    assert!(answer.body["lag"]["head_position"].as_i64().unwrap() >= 1);
    let board = app
        .get("/api/crm/board?after_position=1000000", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(board.status, 202, "{}", board.text);
}

async fn the_funnel_as_of_a_position_before_a_capture_does_not_count_that_lead(app: &TestApp) {
    let first = capture(app, ADMIN_TOKEN, "lead-early").await;
    let second = capture(app, ADMIN_TOKEN, "lead-late").await;
    assert!(second > first);
    let now = app
        .get(
            &format!("/api/funnel?after_position={second}"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(now.body["leads"], 2, "{}", now.text);
    let before = app
        .get(&format!("/api/funnel?as_of={first}"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(before.status, 200, "{}", before.text);
    assert_eq!(before.body["leads"], 1);
    let nothing = app.get("/api/funnel?as_of=0", Some(ADMIN_TOKEN)).await;
    assert_eq!(nothing.body["leads"], 0);
    // The same moment on the board and on the lead itself.
    let board = app
        .get(&format!("/api/crm/board?as_of={first}"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(board.body["items"].as_array().unwrap().len(), 1);
    let late = app
        .get(
            &format!("/api/leads/lead-late?as_of={first}"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(late.status, 404, "{}", late.text);
    let bad = app
        .get("/api/funnel?as_of=yesterday", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

// ---------------------------------------------------------------------------------------------
// The NDJSON feed

async fn the_event_feed_streams_every_event_once_in_order_and_after_skips(app: &TestApp) {
    for i in 0..5 {
        let lead_id = format!("lead-feed-{i}");
        capture(app, ADMIN_TOKEN, &lead_id).await;
        post(
            app,
            ADMIN_TOKEN,
            &format!("/api/leads/{lead_id}/qualify"),
            &json!({}),
        )
        .await;
    }
    let stored = app
        .db
        .store
        .read_committed(Checkpoint::START, MAX_READ_BATCH)
        .await
        .unwrap();
    let positions: Vec<i64> = stored.iter().map(|e| e.position).collect();
    assert_eq!(positions.len(), 10);

    let auditor = token(app, Role::Auditor, None).await;
    let feed = app.get("/api/events", Some(&auditor)).await;
    assert_eq!(feed.status, 200, "{}", feed.text);
    let lines: Vec<Value> = feed
        .text
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    let fed: Vec<i64> = lines
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert_eq!(fed, positions, "every event once, in commit order");
    assert!(lines
        .iter()
        .all(|e| e["hash"].is_string() && e["prev_hash"].is_string()));

    let after = positions[3];
    let rest = app
        .get(&format!("/api/events?after={after}"), Some(&auditor))
        .await;
    let fed: Vec<i64> = rest
        .text
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["position"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(fed, positions[4..].to_vec());
    let limited = app
        .get(
            &format!("/api/events?after={after}&limit=2"),
            Some(&auditor),
        )
        .await;
    assert_eq!(limited.text.lines().filter(|l| !l.is_empty()).count(), 2);
    let past = app
        .get(
            &format!("/api/events?after={}", positions[9]),
            Some(&auditor),
        )
        .await;
    assert_eq!(past.status, 200);
    assert!(
        past.text.trim().is_empty() || past.text.trim() == "0",
        "{:?}",
        past.text
    );
}

// ---------------------------------------------------------------------------------------------
// Pagination

async fn walking_the_board_cursor_visits_every_lead_once_and_past_the_end_is_empty(app: &TestApp) {
    let mut last = 0;
    for i in 0..7 {
        last = capture(app, ADMIN_TOKEN, &format!("lead-page-{i}")).await;
    }
    let sales = token(app, Role::Sales, None).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/crm/board?limit=3&after_position={last}&cursor={cursor}"),
            None => format!("/api/crm/board?limit=3&after_position={last}"),
        };
        let page = app.get(&path, Some(&sales)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        pages += 1;
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["lead_id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the cursor does not end");
    }
    assert_eq!(pages, 3);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (7, 7), "{seen:?}");

    let beyond = app
        .get("/api/crm/board?limit=3&cursor=zzzzzzzz", Some(&sales))
        .await;
    assert_eq!(beyond.status, 200, "{}", beyond.text);
    assert_eq!(beyond.body["items"], json!([]));
    assert_eq!(beyond.body["next_cursor"], Value::Null);
    for bad in ["limit=0", "limit=201", "stage=won"] {
        let answer = app
            .get(&format!("/api/crm/board?{bad}"), Some(&sales))
            .await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text);
    }
    let audit = app.get("/api/audit?limit=4", Some(ADMIN_TOKEN)).await;
    assert_eq!(audit.body["next_cursor"], "4", "{}", audit.text);
    let audit = app
        .get("/api/audit?limit=4&cursor=1000000", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(audit.body["items"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// The commands' own rules

async fn a_lead_moves_through_its_actions_and_broken_rules_are_422_unknown_leads_404_bad_bodies_400(
    app: &TestApp,
) {
    let sales = token(app, Role::Sales, None).await;
    capture(app, &sales, "lead-flow").await;
    for (action, body, stage) in [
        ("qualify", json!({}), "qualified"),
        (
            "book-demo",
            json!({"booking_id": "bk-1", "scheduled_for": "2026-04-01T10:00:00+03:00"}),
            "demo_booked",
        ),
        ("proposal", json!({"plan": "scale"}), "proposal"),
        (
            "archive",
            json!({"reason": "lost", "note": "chose a competitor"}),
            "archived",
        ),
        ("reopen", json!({}), "proposal"),
    ] {
        let answer = post(
            app,
            &sales,
            &format!("/api/leads/lead-flow/{action}"),
            &body,
        )
        .await;
        assert_eq!(answer.status, 200, "{action}: {}", answer.text);
        assert!(answer.body["version"].as_u64().unwrap() >= 2);
        let lead = app.get("/api/leads/lead-flow", Some(&sales)).await;
        assert_eq!(lead.body["stage"], stage, "after {action}");
    }
    let lead = app.get("/api/leads/lead-flow", Some(&sales)).await;
    assert_eq!(lead.body["proposed_plan"], "scale");

    // Domain refusals name the rule.
    let early = post(app, &sales, "/api/leads/lead-flow/onboard", &json!({})).await;
    assert_eq!(early.status, 422, "{}", early.text);
    assert!(early.body["detail"]
        .as_str()
        .unwrap()
        .contains("after payment"));
    let again = post(
        app,
        &sales,
        "/api/leads",
        &json!({"lead_id": "lead-flow", "name": "X", "email": "x@example.sa", "source": "web"}),
    )
    .await;
    assert_eq!(again.status, 422, "{}", again.text);
    let no_contact = post(
        app,
        &sales,
        "/api/leads",
        &json!({"name": "No Contact", "source": "web"}),
    )
    .await;
    assert_eq!(no_contact.status, 422, "{}", no_contact.text);

    // Unknown ids and actions.
    let unknown = post(app, &sales, "/api/leads/nobody/qualify", &json!({})).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(app.get("/api/leads/nobody", Some(&sales)).await.status, 404);
    let action = post(app, &sales, "/api/leads/lead-flow/teleport", &json!({})).await;
    assert_eq!(action.status, 404, "{}", action.text);

    // Bad bodies name the field.
    let missing = post(
        app,
        &sales,
        "/api/leads",
        &json!({"email": "a@example.sa", "source": "web"}),
    )
    .await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    assert!(
        missing.body["detail"].as_str().unwrap().contains("name"),
        "{}",
        missing.text
    );
    let demo = post(
        app,
        &sales,
        "/api/leads/lead-flow/book-demo",
        &json!({"booking_id": "bk-2"}),
    )
    .await;
    assert_eq!(demo.status, 400, "{}", demo.text);
    assert_eq!(demo.body["field"], "scheduled_for");
    let archive = post(
        app,
        &sales,
        "/api/leads/lead-flow/archive",
        &json!({"reason": "bored"}),
    )
    .await;
    assert_eq!(archive.status, 400, "{}", archive.text);
    let garbage = app
        .request(
            "POST",
            "/api/leads",
            &headers(Some(&sales), None),
            b"{not json",
        )
        .await;
    assert_eq!(garbage.status, 400, "{}", garbage.text);
    // NUL characters (which PostgreSQL cannot store) are refused, not a server error.
    let nul = post(
        app,
        &sales,
        "/api/leads",
        &json!({"name": "Nul\u{0}", "email": "nul@example.sa", "source": "web"}),
    )
    .await;
    assert_eq!(nul.status, 400, "{}", nul.text);
    assert_eq!(nul.body["field"], "name");
    assert_eq!(app.get("/api/leads/a%00b", Some(&sales)).await.status, 400);
    let nul_path = post(app, &sales, "/api/leads/a%00b/qualify", &json!({})).await;
    assert_eq!(nul_path.status, 400, "{}", nul_path.text);
    let nul_filter = app.get("/api/audit?actor=x%00", Some(ADMIN_TOKEN)).await;
    assert_eq!(nul_filter.status, 400, "{}", nul_filter.text);

    // The actor is the token id, in the stored metadata.
    let events = app.stream(&lead_stream("lead-flow")).await;
    assert!(events
        .iter()
        .all(|e| e.metadata["actor"].as_str().unwrap().starts_with("token:")));
}

async fn an_invoice_by_plan_or_by_lines_is_issued_through_the_seller_sequence_and_can_be_canceled(
    app: &TestApp,
) {
    capture(app, ADMIN_TOKEN, "lead-bill").await;
    let finance = token(app, Role::Finance, None).await;
    let by_plan = post(
        app,
        &finance,
        "/api/invoices",
        &json!({"lead_id": "lead-bill", "plan": "growth"}),
    )
    .await;
    assert_eq!(by_plan.status, 201, "{}", by_plan.text);
    assert_eq!(by_plan.body["icv"], 1);
    assert_eq!(by_plan.body["subtotal_halalas"], 299_900);
    assert_eq!(by_plan.body["vat_halalas"], 44_985);
    assert_eq!(by_plan.body["total_halalas"], 344_885);
    assert_eq!(by_plan.body["status"], "issued");
    assert!(!by_plan.body["qr_code"].as_str().unwrap().is_empty());
    assert!(by_plan.body["position"].as_i64().unwrap() > 0);
    assert_eq!(by_plan.body["version"], 1);

    let by_lines = post(
        app,
        &finance,
        "/api/invoices",
        &json!({"lead_id": "lead-bill", "customer_name": "Acme Trading", "due_days": 30,
                "lines": [{"description": "Setup", "quantity": 2, "unit_price_halalas": 10_000},
                          {"description": "Starter", "quantity": 1, "unit_price_halalas": 99_900, "plan": "starter"}]}),
    )
    .await;
    assert_eq!(by_lines.status, 201, "{}", by_lines.text);
    assert_eq!(by_lines.body["icv"], 2, "the next place in the chain");
    assert_eq!(by_lines.body["subtotal_halalas"], 119_900);
    let first_hash = by_plan.body["invoice_hash"].as_str().unwrap();
    assert!(!first_hash.is_empty());

    let invoice_id = by_lines.body["invoice_id"].as_str().unwrap();
    let read = app
        .get(&format!("/api/invoices/{invoice_id}"), Some(&finance))
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        read.body["outstanding_halalas"],
        by_lines.body["total_halalas"]
    );
    assert_eq!(read.body["paid_halalas"], 0);
    let cancel = post(
        app,
        &finance,
        &format!("/api/invoices/{invoice_id}/cancel"),
        &json!({"reason": "duplicate"}),
    )
    .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);
    let read = app
        .get(&format!("/api/invoices/{invoice_id}"), Some(&finance))
        .await;
    assert_eq!(read.body["status"], "canceled");
    let twice = post(
        app,
        &finance,
        &format!("/api/invoices/{invoice_id}/cancel"),
        &json!({"reason": "again"}),
    )
    .await;
    assert_eq!(twice.status, 422, "{}", twice.text);

    for (body, status) in [
        (json!({"lead_id": "nobody", "plan": "growth"}), 404),
        (json!({"lead_id": "lead-bill"}), 400),
        (
            json!({"lead_id": "lead-bill", "plan": "growth", "lines": []}),
            400,
        ),
        (json!({"lead_id": "lead-bill", "plan": "platinum"}), 400),
        (
            json!({"lead_id": "lead-bill", "plan": "growth", "due_days": 9999}),
            400,
        ),
        (json!({"lead_id": "lead-bill", "lines": []}), 422),
        (
            json!({"lead_id": "lead-bill", "lines": [{"description": "x", "quantity": 0, "unit_price_halalas": 5}]}),
            422,
        ),
    ] {
        let answer = post(app, &finance, "/api/invoices", &body).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
    }
    let unknown = post(
        app,
        &finance,
        "/api/invoices/nothing/cancel",
        &json!({"reason": "x"}),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(
        app.get("/api/invoices/nothing", Some(&finance))
            .await
            .status,
        404
    );
}

async fn a_strategic_enrollment_takes_a_slot_and_the_fourth_is_refused(app: &TestApp) {
    let finance = token(app, Role::Finance, None).await;
    for i in 0..3 {
        let answer = post(
            app,
            &finance,
            "/api/partners",
            &json!({"partner_id": format!("s-{i}"), "name": format!("Strategic {i}"),
                    "email": format!("s{i}@partners.sa"), "tier": "strategic"}),
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        let partner = app
            .get(&format!("/api/partners/s-{i}"), Some(&finance))
            .await;
        assert_eq!(partner.body["tier"], "strategic", "{}", partner.text);
        assert_eq!(partner.body["commission_rate_bps"], 2_000);
    }
    let fourth = post(
        app,
        &finance,
        "/api/partners",
        &json!({"partner_id": "s-3", "name": "Fourth", "email": "s3@partners.sa", "tier": "strategic"}),
    )
    .await;
    assert_eq!(fourth.status, 422, "{}", fourth.text);
    assert_eq!(
        app.get("/api/partners/s-3", Some(&finance)).await.status,
        404
    );

    let referral = post(
        app,
        &finance,
        "/api/partners",
        &json!({"name": "Plain", "email": "plain@partners.sa"}),
    )
    .await;
    assert_eq!(referral.status, 201, "{}", referral.text);
    let partner_id = referral.body["partner_id"].as_str().unwrap();
    let partner = app
        .get(&format!("/api/partners/{partner_id}"), Some(&finance))
        .await;
    assert_eq!(partner.body["tier"], "referral");
    assert_eq!(partner.body["status"], "active");
    let again = post(
        app,
        &finance,
        "/api/partners",
        &json!({"partner_id": partner_id, "name": "Plain", "email": "plain@partners.sa"}),
    )
    .await;
    assert_eq!(again.status, 422, "{}", again.text);
    let no_email = post(
        app,
        &finance,
        "/api/partners",
        &json!({"name": "Bad", "email": "  "}),
    )
    .await;
    assert_eq!(no_email.status, 422, "{}", no_email.text);
}

async fn follow_ups_list_the_leads_due_and_the_audit_trail_names_the_actor(app: &TestApp) {
    let (sales_id, sales) = create_token(app.handlers(), Role::Sales, None, Some("t")).await;
    capture(app, &sales, "lead-due-a").await;
    let position = capture(app, &sales, "lead-due-b").await;
    // The first follow-up is due a day after capture: nothing is due now, both are in two days.
    let now = app
        .get(
            &format!("/api/crm/follow-ups?after_position={position}"),
            Some(&sales),
        )
        .await;
    assert_eq!(now.status, 200, "{}", now.text);
    assert_eq!(now.body["items"], json!([]));
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let later = later.replace('+', "%2B");
    let first = app
        .get(
            &format!("/api/crm/follow-ups?due_before={later}&limit=1"),
            Some(&sales),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 1);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(
            &format!("/api/crm/follow-ups?due_before={later}&limit=1&cursor={cursor}"),
            Some(&sales),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    let ids: BTreeSet<&str> = [&first, &second]
        .iter()
        .map(|page| page.body["items"][0]["lead_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from(["lead-due-a", "lead-due-b"]));
    assert_eq!(second.body["next_cursor"], Value::Null);

    let actor = format!("token:{sales_id}");
    let audit = app
        .get(
            &format!("/api/audit?actor={actor}&event_type=LeadCaptured&after_position={position}"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    let items = audit.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|row| row["actor"] == actor.as_str()));
    let none = app
        .get("/api/audit?to=2000-01-01T00:00:00Z", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(none.body["items"], json!([]));
    assert_eq!(
        app.get("/api/audit?from=soon", Some(ADMIN_TOKEN))
            .await
            .status,
        400
    );
}

async fn the_auditor_reads_a_streams_events_verifies_the_chains_and_sees_projection_lag(
    app: &TestApp,
) {
    capture(app, ADMIN_TOKEN, "lead-audit").await;
    post(
        app,
        ADMIN_TOKEN,
        "/api/leads/lead-audit/qualify",
        &json!({}),
    )
    .await;
    let auditor = token(app, Role::Auditor, None).await;
    let stream = lead_stream("lead-audit");
    let events = app
        .get(&format!("/api/streams/{stream}/events"), Some(&auditor))
        .await;
    assert_eq!(events.status, 200, "{}", events.text);
    let items = events.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["prev_hash"], items[0]["hash"]);
    let page = app
        .get(
            &format!("/api/streams/{stream}/events?limit=1&cursor=1"),
            Some(&auditor),
        )
        .await;
    assert_eq!(page.body["items"][0]["version"], 2, "{}", page.text);
    assert_eq!(
        app.get("/api/streams/lead-nobody/events", Some(&auditor))
            .await
            .status,
        404
    );

    app.settle().await;
    let verify = app.get("/api/verify", Some(&auditor)).await;
    assert_eq!(verify.status, 200, "{}", verify.text);
    assert_eq!(verify.body["intact"], true);
    assert_eq!(verify.body["chains"]["events_checked"], 2);

    let lag = app.get("/api/projections", Some(&auditor)).await;
    assert_eq!(lag.status, 200, "{}", lag.text);
    let projections = lag.body["projections"].as_array().unwrap();
    assert_eq!(projections.len(), projections::read_models().len());
    assert!(
        projections.iter().all(|p| p["events_behind"] == 0),
        "{}",
        lag.text
    );
}
