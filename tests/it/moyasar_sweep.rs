//! The missed-payment sweep and the reconciliation against Moyasar, on both engines, against
//! the local fake of Moyasar's API ([`crate::moyasar_api::FakeMoyasar`], which pages its payment
//! list and requires Basic auth): a payment whose webhook never arrives is recovered within the
//! sweep's delay and posted once; the webhook arriving after the sweep changes nothing; the
//! reconciliation of a Riyadh day finds each kind of planted difference (and nothing on a clean
//! day), visible in `GET /api/reconciliation` with `source: "moyasar"`; `revledger reconcile
//! --provider moyasar` does the same from the command line.

use std::sync::Arc;
use std::time::Duration;

use adapters::moyasar_api::MoyasarClient;
use adapters::webhooks::moyasar::parse_payment_object;
use app::moyasar_sweep::{riyadh_date, SweepConfig, Sweeper};
use domain::invoice::{Invoice, InvoiceStatus};
use domain::provider_reconciliation::FindingKind;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::{TestApp, ADMIN_TOKEN, MOYASAR_TOKEN};
use crate::helpers::Engine;
use crate::moyasar_api::{
    client_config, eventually, invoice_events, issue, start_with, Behaviour, FakeMoyasar,
    PAYMENT_PAGE_SIZE,
};

crate::per_engine!(
    a_payment_whose_webhook_never_arrives_is_recovered_by_the_sweep_and_posted_once,
    a_webhook_arriving_after_the_sweep_changes_nothing,
    a_check_that_finds_moyasar_unavailable_is_tried_again_on_a_later_pass,
    the_daily_reconciliation_finds_each_planted_difference_and_nothing_on_a_clean_day,
    the_reconcile_command_prints_the_differences_and_exits_non_zero_until_they_are_gone,
);

/// The sweep's delay in these tests: short, so a lost webhook is looked for at once.
const SWEEP_DELAY: Duration = Duration::from_secs(1);

const FEE_HALALAS: i64 = 8_000;

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

fn fixture() -> Value {
    let path = format!(
        "{}/tests/fixtures/moyasar_payment_paid.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A Moyasar Payment object (the documented example, changed).
struct PaymentSpec {
    id: String,
    status: &'static str,
    amount: i64,
    fee: i64,
    refunded: i64,
    /// Moyasar's invoice the payment was made through.
    moyasar_invoice_id: Option<String>,
    /// Ours, in the metadata.
    our_invoice_id: Option<String>,
    created_at: OffsetDateTime,
}

/// A paid payment of a Growth invoice (344,885 halalas) named in its metadata, made `at`.
fn paid(id: &str, our_invoice_id: Option<&str>, at: OffsetDateTime) -> PaymentSpec {
    PaymentSpec {
        id: id.to_owned(),
        status: "paid",
        amount: 344_885,
        fee: FEE_HALALAS,
        refunded: 0,
        moyasar_invoice_id: None,
        our_invoice_id: our_invoice_id.map(str::to_owned),
        created_at: at,
    }
}

fn payment_object(spec: &PaymentSpec) -> Value {
    let mut payment = fixture()["data"].clone();
    payment["id"] = json!(spec.id);
    payment["status"] = json!(spec.status);
    payment["amount"] = json!(spec.amount);
    payment["fee"] = json!(spec.fee);
    payment["refunded"] = json!(spec.refunded);
    payment["invoice_id"] = json!(spec.moyasar_invoice_id);
    payment["metadata"] = match &spec.our_invoice_id {
        Some(ours) => json!({"revledger_invoice_id": ours}),
        None => json!({}),
    };
    payment["created_at"] = json!(rfc3339(spec.created_at));
    payment["updated_at"] = json!(rfc3339(spec.created_at));
    payment
}

/// The webhook Moyasar would have sent for `payment`.
fn webhook(delivery_id: &str, payment: &Value) -> Value {
    let mut body = fixture();
    body["secret_token"] = json!(MOYASAR_TOKEN);
    body["id"] = json!(delivery_id);
    body["type"] = json!(format!("payment_{}", payment["status"].as_str().unwrap()));
    body["created_at"] = payment["created_at"].clone();
    body["live"] = json!(true);
    body["data"] = payment.clone();
    body
}

async fn invoice_status(app: &TestApp, invoice_id: &str) -> Option<InvoiceStatus> {
    let (invoice, _): (Invoice, _) = app
        .handlers()
        .invoices
        .load_aggregate(invoice_id)
        .await
        .unwrap();
    invoice.status()
}

async fn payment_events(app: &TestApp, payment_id: &str) -> Vec<adapters::store::RecordedEvent> {
    app.stream(&format!("payment-{payment_id}")).await
}

/// The ledger's trial balance and the reconciliation, once everything has settled.
async fn books(app: &TestApp) -> (Value, Value) {
    app.settle().await;
    let db = app.db.store.sql();
    let ledger = projections::read_model("ledger")
        .unwrap()
        .render(&db)
        .await
        .unwrap();
    let reconciliation = projections::read_model("reconciliation")
        .unwrap()
        .render(&db)
        .await
        .unwrap();
    (ledger, reconciliation)
}

/// An invoice with its Moyasar invoice, paid at Moyasar, whose webhook never came; waits
/// until the sweep has recorded it: `(app, fake, invoice id, the payment object)`. The Moyasar
/// invoice and its payment exist before the invoice is issued, so the sweep's one check after
/// its delay finds the payment whenever it runs.
async fn recovered_by_the_sweep(engine: Engine) -> Option<(TestApp, FakeMoyasar, String, Value)> {
    let (app, fake, invoice_id, payment) = paid_without_webhook(engine, Behaviour::Normal).await?;
    wait_until_paid(&app, &invoice_id).await;
    Some((app, fake, invoice_id, payment))
}

async fn wait_until_paid(app: &TestApp, invoice_id: &str) {
    eventually(
        "the sweep records the payment and the invoice is paid",
        || async { invoice_status(app, invoice_id).await == Some(InvoiceStatus::Paid) },
    )
    .await;
}

/// The app with the fake behaving as `behaviour`, and an invoice issued with its Moyasar
/// invoice, already paid at Moyasar, whose webhook never comes.
async fn paid_without_webhook(
    engine: Engine,
    behaviour: Behaviour,
) -> Option<(TestApp, FakeMoyasar, String, Value)> {
    let (app, fake) = start_with(engine, behaviour, |config| {
        config.moyasar_sweep = SweepConfig { delay: SWEEP_DELAY };
    })
    .await?;
    let moyasar_invoice_id = Uuid::now_v7().to_string();
    fake.put_invoice(json!({
        "id": moyasar_invoice_id,
        "status": "initiated",
        "amount": 344_885,
        "currency": "SAR",
        "description": "Dealix invoice",
        "url": format!("https://checkout.moyasar.test/invoices/{moyasar_invoice_id}"),
        "metadata": null,
    }));
    let payment_id = Uuid::now_v7().to_string();
    let payment = payment_object(&PaymentSpec {
        moyasar_invoice_id: Some(moyasar_invoice_id.clone()),
        ..paid(&payment_id, None, OffsetDateTime::now_utc())
    });
    // Paid at Moyasar; the webhook is lost.
    fake.put_payment(payment.clone());
    let (invoice_id, total_halalas) = issue(&app, Some(&moyasar_invoice_id)).await;
    assert_eq!(total_halalas, 344_885);
    Some((app, fake, invoice_id, payment))
}

async fn a_payment_whose_webhook_never_arrives_is_recovered_by_the_sweep_and_posted_once(
    engine: Engine,
) {
    let Some((app, fake, invoice_id, payment)) = recovered_by_the_sweep(engine).await else {
        return;
    };
    let payment_id = payment["id"].as_str().unwrap();
    let events = payment_events(&app, payment_id).await;
    assert_eq!(events.len(), 1, "one report recorded: {events:?}");
    assert_eq!(events[0].event_type, "PaymentPaid");
    // Dated when Moyasar says it was paid, not when the sweep found it.
    let reported = parse_payment_object(payment.as_object().unwrap()).unwrap();
    let paid_at = events[0].payload["paid_at"].as_str().unwrap();
    assert_eq!(
        OffsetDateTime::parse(paid_at, &time::format_description::well_known::Rfc3339).unwrap(),
        reported.updated_at.unwrap_or(reported.created_at),
        "{:?}",
        events[0].payload
    );
    assert_eq!(
        events[0].metadata["actor"], "sweep:moyasar",
        "{:?}",
        events[0].metadata
    );
    let recorded: Vec<_> = invoice_events(&app, &invoice_id)
        .await
        .into_iter()
        .filter(|event| event.event_type == "PaymentRecorded")
        .collect();
    assert_eq!(recorded.len(), 1, "the invoice records the payment once");
    assert!(fake
        .received("GET")
        .iter()
        .any(|request| request.path.starts_with("/invoices/")));
    assert!(fake.received("GET").iter().all(|request| request
        .authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("Basic "))));

    let (ledger, reconciliation) = books(&app).await;
    assert_eq!(ledger["balanced"], true, "{ledger}");
    assert_eq!(reconciliation["reconciled"], true, "{reconciliation}");
    // Reading the same state again (another pass, the daily check) records nothing.
    let sweeper = Sweeper::new(
        app.handlers().clone(),
        Arc::new(MoyasarClient::new(&client_config(&fake)).unwrap()),
        SweepConfig { delay: SWEEP_DELAY },
    );
    let parsed = parse_payment_object(payment.as_object().unwrap()).unwrap();
    assert!(!sweeper
        .record(&parsed, OffsetDateTime::now_utc())
        .await
        .unwrap());
    assert_eq!(payment_events(&app, payment_id).await.len(), 1);
    app.stop().await;
}

async fn a_webhook_arriving_after_the_sweep_changes_nothing(engine: Engine) {
    let Some((app, _fake, invoice_id, payment)) = recovered_by_the_sweep(engine).await else {
        return;
    };
    let (ledger_before, _) = books(&app).await;
    let head_before = app.db.store.head_position().await.unwrap();

    let late = webhook("late-delivery-1", &payment);
    let answer = app.post_moyasar_webhook(&late).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "accepted", "{}", answer.body);
    assert_eq!(
        answer.body["effect"],
        app::webhooks::ALREADY_APPLIED,
        "{}",
        answer.body
    );
    // Moyasar's retry of the same delivery is answered the same.
    let again = app.post_moyasar_webhook(&late).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["effect"],
        app::webhooks::ALREADY_APPLIED,
        "{}",
        again.body
    );

    let (ledger_after, reconciliation) = books(&app).await;
    assert_eq!(
        app.db.store.head_position().await.unwrap(),
        head_before,
        "no event appended"
    );
    assert_eq!(ledger_after, ledger_before, "the ledger is unchanged");
    assert_eq!(reconciliation["reconciled"], true, "{reconciliation}");
    assert_eq!(
        payment_events(&app, payment["id"].as_str().unwrap())
            .await
            .len(),
        1
    );
    assert_eq!(
        invoice_status(&app, &invoice_id).await,
        Some(InvoiceStatus::Paid)
    );
    app.stop().await;
}

async fn a_check_that_finds_moyasar_unavailable_is_tried_again_on_a_later_pass(engine: Engine) {
    let Some((app, fake, invoice_id, payment)) =
        paid_without_webhook(engine, Behaviour::Slow).await
    else {
        return;
    };
    eventually("the sweep asked Moyasar, which timed out", || async {
        fake.received("GET")
            .iter()
            .any(|request| request.path.starts_with("/invoices/"))
    })
    .await;
    assert_eq!(
        invoice_status(&app, &invoice_id).await,
        Some(InvoiceStatus::Issued),
        "nothing recorded from a timed-out read"
    );
    // Moyasar recovers; nobody does anything by hand.
    fake.set(Behaviour::Normal);
    wait_until_paid(&app, &invoice_id).await;
    let reads = fake
        .received("GET")
        .iter()
        .filter(|request| request.path.starts_with("/invoices/"))
        .count();
    assert!(reads >= 2, "read again after the timeout: {reads}");
    assert_eq!(
        payment_events(&app, payment["id"].as_str().unwrap())
            .await
            .len(),
        1
    );
    let (ledger, _) = books(&app).await;
    assert_eq!(ledger["balanced"], true, "{ledger}");
    app.stop().await;
}

/// Records `payment` in the ledger as its webhook does.
async fn deliver(app: &TestApp, payment: &Value) {
    let answer = app
        .post_moyasar_webhook(&webhook(&Uuid::now_v7().to_string(), payment))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "accepted", "{}", answer.body);
}

async fn reconciliation_answer(app: &TestApp) -> Value {
    app.settle().await;
    let answer = app.get("/api/reconciliation", Some(ADMIN_TOKEN)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}

/// `/api/reconciliation` a mismatch at a time, through `next_cursor`: the ledger's mismatches
/// then Moyasar's findings, the same list and counts as the one page of `whole`; a cursor it
/// never gave is 400.
async fn assert_pages_of_one_concatenate_to_the_whole(app: &TestApp, whole: &Value) {
    let mut paged = Vec::new();
    let mut path = "/api/reconciliation?limit=1".to_owned();
    loop {
        let page = app.get(&path, Some(ADMIN_TOKEN)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.body["mismatch_count"], whole["mismatch_count"]);
        assert_eq!(page.body["by_kind"], whole["by_kind"]);
        paged.extend(page.body["mismatches"].as_array().unwrap().iter().cloned());
        let Some(after) = page.body["next_cursor"].as_str() else {
            break;
        };
        path = format!("/api/reconciliation?limit=1&cursor={}", urlencoding(after));
    }
    assert_eq!(Value::from(paged.clone()), whole["mismatches"]);
    assert_eq!(whole["mismatch_count"], paged.len());
    let sources: Vec<&str> = paged
        .iter()
        .map(|m| m["source"].as_str().unwrap())
        .collect();
    let ledger = sources
        .iter()
        .take_while(|source| **source == "ledger")
        .count();
    assert!(
        !sources[ledger..].is_empty() && sources[ledger..].iter().all(|s| *s == "moyasar"),
        "the ledger's first, then Moyasar's: {sources:?}"
    );
    for bad in [
        "?cursor=nowhere",
        "?cursor=ledger:xyz",
        "?limit=0",
        "?limit=1001",
    ] {
        let answer = app
            .get(&format!("/api/reconciliation{bad}"), Some(ADMIN_TOKEN))
            .await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text);
    }
}

/// `text` as a query value (cursors hold `:` and ids may hold more).
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn moyasar_findings(answer: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = answer["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|mismatch| mismatch["source"] == "moyasar")
        .map(|mismatch| {
            (
                mismatch["kind"].as_str().unwrap().to_owned(),
                mismatch["payment_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

async fn the_daily_reconciliation_finds_each_planted_difference_and_nothing_on_a_clean_day(
    engine: Engine,
) {
    let Some((app, fake)) = start_with(engine, Behaviour::Normal, |_| {}).await else {
        return;
    };
    let now = OffsetDateTime::now_utc();
    let today = riyadh_date(now);
    let sweeper = Sweeper::new(
        app.handlers().clone(),
        Arc::new(MoyasarClient::new(&client_config(&fake)).unwrap()),
        SweepConfig::default(),
    );
    // The leader's daily job reconciles the finished Riyadh day (yesterday: clean, nothing at
    // Moyasar or in the ledger) on its own.
    let yesterday = riyadh_date(now - time::Duration::days(1));
    eventually("the daily job reconciles yesterday", || async {
        app.settle().await;
        let answer = app.get("/api/reconciliation", Some(ADMIN_TOKEN)).await;
        answer.body["provider_runs"].as_array().is_some_and(|runs| {
            runs.iter()
                .any(|run| run["date"] == yesterday.as_str() && run["finding_count"] == 0)
        })
    })
    .await;

    // A clean day: more payments than one page of Moyasar's list, each in both.
    let clean_count = 2 * PAYMENT_PAGE_SIZE + 1;
    for n in 0..clean_count {
        let (invoice_id, total) =
            issue(&app, Some(&format!("mi-clean-{n}-{}", Uuid::now_v7()))).await;
        let payment = payment_object(&PaymentSpec {
            amount: total,
            ..paid(
                &format!("clean-{n}-{}", Uuid::now_v7()),
                Some(&invoice_id),
                now,
            )
        });
        deliver(&app, &payment).await;
        fake.put_payment(payment);
    }
    app.settle().await;
    let clean = sweeper.reconcile_day(&today, now).await.unwrap();
    assert!(clean.findings.is_empty(), "{:?}", clean.findings);
    assert_eq!(clean.provider_payments, clean_count);
    assert_eq!(clean.ledger_payments, clean_count);
    assert!(clean.recorded);
    let pages: Vec<String> = fake
        .received("GET")
        .iter()
        .filter(|request| request.path == "/payments")
        .filter_map(|request| request.body["page"].as_str().map(str::to_owned))
        .collect();
    assert!(
        pages.contains(&"3".to_owned()),
        "every page was read: {pages:?}"
    );
    let answer = reconciliation_answer(&app).await;
    assert!(moyasar_findings(&answer).is_empty(), "{answer}");
    let run = answer["provider_runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|run| run["date"] == today.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("today's run is listed: {answer}"));
    assert_eq!(run["provider"], "moyasar");
    assert_eq!(run["finding_count"], 0);
    assert_eq!(run["provider_payments"], clean_count);

    // Plant one difference of each kind, each payment for an invoice of its own.
    let mut invoices = Vec::new();
    for _ in 0..6 {
        invoices.push(issue(&app, Some(&format!("mi-{}", Uuid::now_v7()))).await.0);
    }
    let suffix = Uuid::now_v7().to_string();
    let id = |name: &str| format!("{name}-{suffix}");
    let spec = |name: &str, invoice: usize| paid(&id(name), Some(&invoices[invoice]), now);
    // Moyasar has it, the ledger does not (its webhook was lost).
    fake.put_payment(payment_object(&spec("missing", 0)));
    // Moyasar has it and it names no invoice of ours.
    fake.put_payment(payment_object(&paid(&id("unmatched"), None, now)));
    // The ledger has it, Moyasar does not know it.
    deliver(&app, &payment_object(&spec("unknown", 1))).await;
    // Both know it and disagree on one thing each.
    let differing = [
        (
            spec("amount", 2),
            PaymentSpec {
                amount: 300_000,
                ..spec("amount", 2)
            },
        ),
        (
            spec("status", 3),
            PaymentSpec {
                status: "voided",
                ..spec("status", 3)
            },
        ),
        (
            spec("fee", 4),
            PaymentSpec {
                fee: 9_000,
                ..spec("fee", 4)
            },
        ),
        (
            spec("refund", 5),
            PaymentSpec {
                refunded: 10_000,
                ..spec("refund", 5)
            },
        ),
    ];
    for (ours, theirs) in &differing {
        deliver(&app, &payment_object(ours)).await;
        fake.put_payment(payment_object(theirs));
    }
    app.settle().await;

    let planted = sweeper.reconcile_day(&today, now).await.unwrap();
    let mut kinds: Vec<(FindingKind, String)> = planted
        .findings
        .iter()
        .map(|finding| (finding.kind, finding.payment_id.clone()))
        .collect();
    kinds.sort();
    let mut expected = vec![
        (FindingKind::MissingInLedger, id("missing")),
        (FindingKind::MissingInLedger, id("unmatched")),
        (FindingKind::UnknownToProvider, id("unknown")),
        (FindingKind::AmountDiffers, id("amount")),
        (FindingKind::StatusDiffers, id("status")),
        (FindingKind::FeeDiffers, id("fee")),
        (FindingKind::RefundDiffers, id("refund")),
    ];
    expected.sort();
    assert_eq!(kinds, expected, "{:#?}", planted.findings);
    let missing = planted
        .findings
        .iter()
        .find(|finding| finding.payment_id == id("missing"))
        .unwrap();
    assert_eq!(
        missing.invoice_id.as_deref(),
        Some(invoices[0].as_str()),
        "matched by its metadata"
    );
    let unmatched = planted
        .findings
        .iter()
        .find(|finding| finding.payment_id == id("unmatched"))
        .unwrap();
    assert_eq!(unmatched.invoice_id, None);
    assert!(planted.recorded);
    // The same findings again add nothing.
    let again = sweeper.reconcile_day(&today, now).await.unwrap();
    assert!(!again.recorded);
    assert_eq!(again.findings, planted.findings);

    let answer = reconciliation_answer(&app).await;
    let served: Vec<(String, String)> = moyasar_findings(&answer);
    let mut wanted: Vec<(String, String)> = expected
        .iter()
        .map(|(kind, payment_id)| (kind.as_str().to_owned(), payment_id.clone()))
        .collect();
    wanted.sort();
    assert_eq!(served, wanted, "{answer}");
    assert_eq!(answer["reconciled"], false);
    assert_pages_of_one_concatenate_to_the_whole(&app, &answer).await;
    // What the metrics' gauge (and RevledgerMoyasarReconciliationDifferences) counts.
    let mut counted = projections::reconciliation::provider::finding_counts(&app.db.store.sql())
        .await
        .unwrap();
    counted.sort();
    let mut per_kind: Vec<(String, String, i64)> = FindingKind::ALL
        .iter()
        .map(|kind| {
            let n = expected.iter().filter(|(k, _)| k == kind).count() as i64;
            ("moyasar".to_owned(), kind.as_str().to_owned(), n)
        })
        .collect();
    per_kind.sort();
    assert_eq!(counted, per_kind);
    let amount = answer["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|mismatch| mismatch["kind"] == "amount_differs")
        .unwrap();
    assert_eq!(amount["expected_halalas"], 344_885, "the ledger's");
    assert_eq!(amount["actual_halalas"], 300_000, "Moyasar's");
    assert_eq!(amount["date"], today.as_str());
    assert!(answer["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|mismatch| mismatch["source"] == "moyasar" || mismatch["source"] == "ledger"));

    // The provider's tables are a fold of the log: they equal their rebuild from zero.
    let model = projections::read_model("reconciliation").unwrap();
    let rebuilt = projections::runtime::as_of(
        app.db.store.clone(),
        model.clone(),
        projections::AsOf::Position(i64::MAX),
    )
    .await
    .unwrap();
    for table in [
        "provider_payments",
        "provider_reconciliation_runs",
        "provider_reconciliation_findings",
    ] {
        let live = projections::runtime::dump_table(&app.db.store.sql(), table)
            .await
            .unwrap();
        assert!(!live.is_empty(), "{table} has rows");
        assert_eq!(
            live,
            projections::runtime::dump_table(&rebuilt, table)
                .await
                .unwrap(),
            "{table} equals its rebuild"
        );
    }

    // The dashboard's reconciliation page shows them, in English and Arabic.
    let cookie = crate::dashboard::sign_in(&app, ADMIN_TOKEN).await;
    for (lang, title, found_by) in [
        ("en", "Reconciliation against Moyasar", "Moyasar"),
        ("ar", "المطابقة مع ميسر", "ميسر"),
    ] {
        let page = app
            .request(
                "GET",
                &format!("/dashboard/reconciliation?lang={lang}"),
                &[("Cookie", cookie.clone())],
                b"",
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(page.text.contains(title), "{lang}: {}", page.text);
        assert!(
            page.text
                .contains(&format!("data-date=\"{today}\" data-findings=\"7\"")),
            "{lang}: {}",
            page.text
        );
        assert!(
            page.text.contains(&format!("<td>{found_by}</td>")),
            "{lang}"
        );
        for (kind, payment_id) in &wanted {
            assert!(
                page.text
                    .contains(&format!("data-kind=\"{kind}\" data-source=\"moyasar\"")),
                "{lang}: {kind}"
            );
            assert!(
                page.text.contains(payment_id.as_str()),
                "{lang}: {payment_id}"
            );
        }
    }
    app.stop().await;
}

async fn the_reconcile_command_prints_the_differences_and_exits_non_zero_until_they_are_gone(
    engine: Engine,
) {
    let Some(db) = crate::helpers::TestDb::new(engine).await else {
        return;
    };
    db.store.migrate().await.unwrap();
    let fake = FakeMoyasar::start(Behaviour::Normal).await;
    let now = OffsetDateTime::now_utc();
    let today = riyadh_date(now);
    let handlers = app::handlers::Handlers::new(db.store.clone());
    let sweeper = Sweeper::new(
        handlers.clone(),
        Arc::new(MoyasarClient::new(&client_config(&fake)).unwrap()),
        SweepConfig::default(),
    );
    // In both: recorded as the webhook would, through the sweep's own recording.
    let both = payment_object(&paid("cli-both", None, now));
    let parsed = parse_payment_object(both.as_object().unwrap()).unwrap();
    assert!(sweeper.record(&parsed, now).await.unwrap());
    fake.put_payment(both);
    fake.put_payment(payment_object(&paid("cli-missing", None, now)));

    let dir = crate::helpers::temp_dir();
    let run_on = |date: &str| {
        crate::cli::revledger(&dir)
            .args([
                "--database-url",
                &db.url,
                "reconcile",
                "--provider",
                "moyasar",
                "--date",
                date,
            ])
            .env("REVLEDGER_MOYASAR_API_KEY", crate::moyasar_api::API_KEY)
            .env("REVLEDGER_MOYASAR_BASE_URL", &fake.base_url)
            .output()
            .unwrap()
    };
    let output = run_on(&today);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("2 Moyasar payment(s), 1 in the ledger, 1 difference(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("missing_in_ledger") && stdout.contains("cli-missing"),
        "{stdout}"
    );

    fake.remove_payment("cli-missing");
    let output = run_on(&today);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("reconciled: Moyasar and the ledger agree"),
        "{stdout}"
    );

    let bad = run_on("2026-02-30");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a calendar day"));
    drop(fake);
    db.cleanup().await;
}
