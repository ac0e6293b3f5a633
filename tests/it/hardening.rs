//! The attack review's findings (issue 20), each as a test on both engines that failed before
//! its fix: bounded as-of work, amount ceilings, idempotency under concurrency, test-mode
//! payments, CSV formulas, secrets at rest and rotation, tokens, identifiers and the smaller
//! ones.

use std::time::{Duration, Instant};

use projections::as_of::AsOfAnswer;
use serde_json::json;

use crate::app::{spawn_app_seeded_with, TestApp, ADMIN_TOKEN};
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
                        assert!(retry_after >= 1, "{}", answer.head);
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

fn admin_json() -> Vec<(&'static str, String)> {
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
