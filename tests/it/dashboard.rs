//! The dashboard over HTTP (sign-in, every page in both languages, roles, escaping, the funnel
//! numbers against the API), the demo data, and the same pages in a real headless Chromium.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use api::auth::Role;
use app::handlers::Handlers;
use domain::invoice::Seller;
use domain::lead::LeadCommand;
use serde_json::Value;
use time::OffsetDateTime;

use crate::app::{create_token, envelope, spawn_app, Answer, TestApp, ADMIN_TOKEN, SELLER_VAT};
use crate::chromium::{chromium_dump, chromium_or_skip, sign_in_link};
use crate::helpers::{Engine, TestDb};

/// Leads in the demo the page tests load: every stage shows, and it loads in a second.
const SMALL_DEMO_LEADS: u32 = 80;

/// Every page and whether a sales token may read it.
const PAGES: [(&str, &str, bool); 7] = [
    ("overview", "/dashboard", true),
    ("crm", "/dashboard/crm", true),
    ("commissions", "/dashboard/commissions", false),
    ("reconciliation", "/dashboard/reconciliation", false),
    ("audit", "/dashboard/audit", false),
    ("lag", "/dashboard/lag", true),
    ("dead-letters", "/dashboard/dead-letters", false),
];

fn seller() -> Seller {
    Seller {
        name: "Dealix".into(),
        vat_number: SELLER_VAT.into(),
    }
}

/// Posts the sign-in form with this (already encoded) body.
pub(crate) async fn post_sign_in_form(app: &TestApp, form: &str) -> Answer {
    let headers = [("Content-Type", "application/x-www-form-urlencoded".into())];
    app.request("POST", "/dashboard/login", &headers, form.as_bytes())
        .await
}

/// Posts the sign-out form with the session `cookie`.
pub(crate) async fn sign_out(app: &TestApp, cookie: &str) -> Answer {
    let headers = [("Cookie", cookie.to_owned())];
    app.request("POST", "/dashboard/logout", &headers, b"")
        .await
}

/// Signs in with `token` through the form; returns the `name=value` of the session cookie.
pub(crate) async fn sign_in(app: &TestApp, token: &str) -> String {
    let body = format!("token={}&next=%2Fdashboard", form_encode(token));
    let answer = post_sign_in_form(app, &body).await;
    assert_eq!(answer.status, 303, "{answer:?}");
    let cookie = answer
        .header_values("set-cookie")
        .find(|c| c.starts_with("revledger_session="))
        .expect("a session cookie")
        .to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

pub(crate) fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> Answer {
    app.request("GET", path, &[("Cookie", cookie.to_owned())], b"")
        .await
}

/// Loads the small demo through the app's own handlers and waits for every read model.
async fn app_with_demo(engine: Engine) -> Option<TestApp> {
    // As `serve --demo` does: the history is loaded before the service's workers start (the
    // cold-lead sweep would otherwise archive the demo's 90-day-old leads mid-load).
    let app = crate::app::spawn_app_seeded(engine, |handlers| async move {
        let summary = app::demo::load_demo_sized(
            &handlers,
            &seller(),
            OffsetDateTime::now_utc(),
            SMALL_DEMO_LEADS,
        )
        .await
        .expect("the demo loads");
        assert_eq!(summary.leads, SMALL_DEMO_LEADS);
    })
    .await?;
    app.settle().await;
    Some(app)
}

/// The funnel counts a page shows: `data-stage="<stage>" class="count …">N<`.
fn funnel_counts_in(html: &str) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<td data-stage=\"") {
        rest = &rest[at + "<td data-stage=\"".len()..];
        let (stage, after) = rest.split_once('"').unwrap();
        if !after.trim_start().starts_with("class=\"count") {
            continue;
        }
        let value = after.split_once('>').unwrap().1.split('<').next().unwrap();
        counts.push((stage.to_owned(), value.trim().parse().unwrap()));
    }
    counts
}

fn funnel_counts_of_api(funnel: &Value) -> Vec<(String, i64)> {
    funnel["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_owned(),
                s["leads"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn signing_in_sets_an_http_only_same_site_cookie_and_pages_need_it(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let answer = app.request("GET", "/dashboard/crm", &[], b"").await;
    assert_eq!(answer.status, 303);
    assert_eq!(
        answer.header_values("location").collect::<Vec<_>>(),
        ["/dashboard/login?next=%2Fdashboard%2Fcrm"]
    );
    let form = app
        .get("/dashboard/login?next=%2Fdashboard%2Fcrm", None)
        .await;
    assert_eq!(form.status, 200);
    assert!(form
        .text
        .contains(r#"<form class="login" method="post" action="/dashboard/login">"#));
    assert!(form.text.contains(r#"value="/dashboard/crm""#));

    let wrong = post_sign_in_form(&app, "token=not-a-token&next=%2Fdashboard").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("That token is not valid."));

    let answer = post_sign_in_form(
        &app,
        &format!("token={ADMIN_TOKEN}&next=%2Fdashboard%2Fcrm"),
    )
    .await;
    assert_eq!(answer.status, 303);
    assert_eq!(
        answer.header_values("location").collect::<Vec<_>>(),
        ["/dashboard/crm"]
    );
    let set_cookie = answer
        .header_values("set-cookie")
        .collect::<Vec<_>>()
        .join("\n");
    for attribute in [
        "revledger_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
    ] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} missing from {set_cookie}"
        );
    }
    assert!(
        !set_cookie.contains(ADMIN_TOKEN),
        "the cookie holds the token encoded, not raw"
    );
    let cookie = sign_in(&app, ADMIN_TOKEN).await;
    assert_eq!(page(&app, "/dashboard/crm", &cookie).await.status, 200);
    // An open redirect is not possible through `next`.
    let answer = post_sign_in_form(
        &app,
        &format!("token={ADMIN_TOKEN}&next=https%3A%2F%2Fevil.example%2F"),
    )
    .await;
    assert_eq!(
        answer.header_values("location").collect::<Vec<_>>(),
        ["/dashboard"]
    );
    // Signing out expires the cookie.
    let answer = sign_out(&app, &cookie).await;
    assert_eq!(answer.status, 303);
    assert!(answer.header_values("set-cookie").collect::<Vec<_>>()[0].contains("Max-Age=0"));
    // A forged cookie is no session.
    let forged = page(&app, "/dashboard", "revledger_session=6e6f7065").await;
    assert_eq!(forged.status, 303);
    app.stop().await;
}

async fn every_page_renders_for_an_admin_in_english_and_arabic(engine: Engine) {
    let Some(app) = app_with_demo(engine).await else {
        return;
    };
    let cookie = sign_in(&app, ADMIN_TOKEN).await;
    for (name, path, _) in PAGES {
        let english = page(&app, &format!("{path}?lang=en"), &cookie).await;
        assert_eq!(english.status, 200, "{name}: {}", english.text);
        assert!(
            english
                .text
                .starts_with("<!DOCTYPE html>\n<html lang=\"en\" dir=\"ltr\">"),
            "{name}"
        );
        let arabic = page(&app, &format!("{path}?lang=ar"), &cookie).await;
        assert_eq!(arabic.status, 200, "{name}: {}", arabic.text);
        assert!(
            arabic.text.contains(r#"<html lang="ar" dir="rtl">"#),
            "{name}"
        );
        // Every page's navigation and title are in Arabic.
        for label in ["نظرة عامة", "لوحة العملاء", "سجل التدقيق", "تسجيل الخروج"]
        {
            assert!(arabic.text.contains(label), "{name}: no {label}");
        }
        // No English heading is left on an Arabic page.
        for heading in [
            "Sales funnel",
            "Overview",
            "Partner balances",
            "Reconciled",
            "Recorded at",
            "Checkpoint",
        ] {
            assert!(
                !arabic.text.contains(heading),
                "{name}: {heading} on the Arabic page"
            );
        }
    }
    // The choice is remembered in a cookie.
    let answer = app
        .request(
            "GET",
            "/dashboard/lag?lang=ar",
            &[("Cookie", cookie.clone())],
            b"",
        )
        .await;
    let lang_cookie = answer
        .header_values("set-cookie")
        .find(|c| c.starts_with("revledger_lang=ar"))
        .expect("the language is remembered")
        .to_owned();
    let remembered = page(
        &app,
        "/dashboard/crm",
        &format!("{cookie}; {}", lang_cookie.split(';').next().unwrap()),
    )
    .await;
    assert!(remembered.text.contains(r#"dir="rtl""#));
    // Demo data shows: money in SAR with two decimals, the funnel chart, follow-ups due.
    let overview = page(&app, "/dashboard?lang=en", &cookie).await;
    assert!(overview.text.contains(r#"<svg id="funnel-chart""#));
    assert!(overview.text.contains(" SAR</bdi>"));
    let crm = page(&app, "/dashboard/crm?lang=en", &cookie).await;
    assert!(
        crm.text.contains(r#"<span class="badge due">Due</span>"#),
        "follow-ups due are highlighted"
    );
    let commissions = page(&app, "/dashboard/commissions?lang=ar", &cookie).await;
    assert!(commissions.text.contains(" ر.س</bdi>"));
    // The audit trail filters by stream, actor and event type.
    let filtered = page(
        &app,
        "/dashboard/audit?lang=en&event_type=PaymentFailed",
        &cookie,
    )
    .await;
    assert!(filtered.text.contains(">PaymentFailed</a>"));
    assert!(!filtered.text.contains(">LeadCaptured</a>"));
    let by_actor = page(&app, "/dashboard/audit?actor=webhook%3Amoyasar", &cookie).await;
    assert!(by_actor.text.contains(">webhook:moyasar</a>"));
    assert!(!by_actor.text.contains(">token:demo-finance</a>"));
    let by_stream = page(&app, "/dashboard/audit?stream=lead-lead-0001", &cookie).await;
    assert!(by_stream.text.contains(">lead-lead-0001</a>"));
    assert!(!by_stream.text.contains(">lead-lead-0002</a>"));
    let by_type = page(&app, "/dashboard/audit?stream=payout", &cookie).await;
    assert!(
        by_type.text.contains(">PayoutCreated</a>") || by_type.text.contains(r#"class="muted""#)
    );
    assert!(!by_type.text.contains(">LeadCaptured</a>"));
    let bad = page(&app, "/dashboard/audit?before=abc", &cookie).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("<html"));
    app.stop().await;
}

async fn a_sales_token_is_refused_the_finance_and_audit_pages(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let (_, sales) = create_token(app.handlers(), Role::Sales, None, None).await;
    let (_, finance) = create_token(app.handlers(), Role::Finance, None, None).await;
    // A partner token is made only for an enrolled partner.
    let enrolled = app
        .request(
            "POST",
            "/api/partners",
            &[
                ("Authorization", format!("Bearer {ADMIN_TOKEN}")),
                ("Content-Type", "application/json".into()),
            ],
            br#"{"partner_id": "p-riyadh-digital", "name": "Riyadh Digital", "email": "team@riyadh-digital.sa"}"#,
        )
        .await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.text);
    let (_, partner) = create_token(
        app.handlers(),
        Role::Partner,
        Some("p-riyadh-digital"),
        None,
    )
    .await;
    let sales_cookie = sign_in(&app, &sales).await;
    for (name, path, sales_may) in PAGES {
        let answer = page(&app, path, &sales_cookie).await;
        let expected = if sales_may { 200 } else { 403 };
        assert_eq!(answer.status, expected, "sales on {name}");
        assert!(answer.text.contains("<html"), "{name} answers in HTML");
        if !sales_may {
            assert!(answer.text.contains(r#"id="forbidden""#));
            let arabic = page(&app, &format!("{path}?lang=ar"), &sales_cookie).await;
            assert_eq!(arabic.status, 403);
            assert!(arabic.text.contains("غير مسموح"));
        }
    }
    let overview = page(&app, "/dashboard", &sales_cookie).await;
    assert!(
        !overview.text.contains(r#"href="/dashboard/commissions""#),
        "no link to a forbidden page"
    );
    let finance_cookie = sign_in(&app, &finance).await;
    assert_eq!(
        page(&app, "/dashboard/commissions", &finance_cookie)
            .await
            .status,
        200
    );
    assert_eq!(
        page(&app, "/dashboard/audit", &finance_cookie).await.status,
        403
    );
    let partner_cookie = sign_in(&app, &partner).await;
    // A partner's dashboard is its own page (tests/it/desk.rs); every staff page is refused.
    let answer = page(&app, "/dashboard", &partner_cookie).await;
    assert_eq!(answer.status, 303);
    assert_eq!(
        answer.header_values("location").collect::<Vec<_>>(),
        ["/dashboard/partner"]
    );
    for path in [
        "/dashboard/crm",
        "/dashboard/commissions",
        "/dashboard/audit",
    ] {
        assert_eq!(
            page(&app, path, &partner_cookie).await.status,
            403,
            "{path}"
        );
    }
    app.stop().await;
}

async fn values_from_data_are_html_escaped(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let hostile = "<script>alert(1)</script>";
    let capture = LeadCommand::Capture {
        lead_id: "lead-hostile".into(),
        name: hostile.into(),
        company: Some("\"><img src=x onerror=alert(2)>".into()),
        email: Some("x@example.sa".into()),
        phone: None,
        source: "landing_page".into(),
        partner_id: None,
        utm: None,
        owner: Some("<b>owner</b>".into()),
        at: OffsetDateTime::now_utc(),
    };
    app.handlers()
        .leads
        .execute(envelope("lead-hostile", capture))
        .await
        .unwrap();
    app.settle().await;
    let cookie = sign_in(&app, ADMIN_TOKEN).await;
    let crm = page(&app, "/dashboard/crm", &cookie).await;
    assert_eq!(crm.status, 200);
    assert!(
        crm.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        crm.text
    );
    assert!(crm
        .text
        .contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
    assert!(crm.text.contains("&lt;b&gt;owner&lt;/b&gt;"));
    assert!(!crm.text.contains(hostile));
    assert!(!crm.text.contains("<img"));
    // Filter values come back escaped too.
    let audit = page(&app, "/dashboard/audit?actor=%22%3E%3Cscript%3E", &cookie).await;
    assert!(audit.text.contains(r#"value="&quot;&gt;&lt;script&gt;""#));
    assert!(!audit.text.contains("\"><script>"));
    app.stop().await;
}

async fn the_funnel_numbers_shown_equal_the_funnel_api(engine: Engine) {
    let Some(app) = app_with_demo(engine).await else {
        return;
    };
    let cookie = sign_in(&app, ADMIN_TOKEN).await;
    let api = app.get("/api/funnel", Some(ADMIN_TOKEN)).await;
    assert_eq!(api.status, 200, "{}", api.text);
    let expected = funnel_counts_of_api(&api.body);
    assert_eq!(expected.len(), 8, "seven funnel stages and archived");
    assert!(
        expected.iter().all(|(_, n)| *n > 0),
        "the demo fills every stage: {expected:?}"
    );
    for lang in ["en", "ar"] {
        let overview = page(&app, &format!("/dashboard?lang={lang}"), &cookie).await;
        assert_eq!(funnel_counts_in(&overview.text), expected, "{lang}");
    }
    app.stop().await;
}

/// ZATCA's status on the finance page: counts by status and flow, and a rejected document
/// with ZATCA's message (escaped), in English and Arabic; a reported one is counted, not
/// listed.
async fn the_reconciliation_page_shows_each_zatca_document_not_accepted_with_zatcas_messages(
    engine: Engine,
) {
    use crate::fake_fatoora::{Behaviour, FakeMessage};
    use crate::zatca_phase2::{business_buyer, invoice_once, issue, phase2_app};
    let Some((app, fake, _config)) = phase2_app(engine).await else {
        return;
    };
    let hostile = "<script>alert('zatca')</script> the buyer's building number is not registered";
    fake.set(Behaviour::Reject(vec![FakeMessage::new(
        "BR-KSA-63",
        "KSA",
        hostile,
    )]));
    let rejected = issue(&app, "lead-zatca-rejected", Some(business_buyer("1111"))).await;
    let rejected_id = rejected["invoice_id"].as_str().unwrap();
    invoice_once(&app, rejected_id, "rejected").await;
    fake.set(Behaviour::Accept);
    let reported = issue(&app, "lead-zatca-reported", None).await;
    let reported_id = reported["invoice_id"].as_str().unwrap();
    invoice_once(&app, reported_id, "reported").await;
    app.settle().await;

    let cookie = sign_in(&app, ADMIN_TOKEN).await;
    let english = page(&app, "/dashboard/reconciliation?lang=en", &cookie).await;
    assert_eq!(english.status, 200, "{}", english.text);
    let html = &english.text;
    assert!(html.contains(r#"<section id="zatca">"#), "{html}");
    assert!(html.contains(r#"<tr data-status="rejected" data-flow="clearance"><td>Rejected</td><td>Clearance</td><td class="num">1</td></tr>"#), "{html}");
    assert!(html.contains(r#"<tr data-status="reported" data-flow="reporting"><td>Reported</td><td>Reporting</td><td class="num">1</td></tr>"#), "{html}");
    let documents = html
        .split(r#"<table id="zatca-documents">"#)
        .nth(1)
        .expect("the documents not accepted")
        .split("</table>")
        .next()
        .unwrap();
    assert!(
        documents.contains(&format!(r#"<td class="id">{rejected_id}</td>"#)),
        "{documents}"
    );
    assert!(documents.contains(r#"data-status="rejected""#));
    assert!(documents.contains("<code>BR-KSA-63</code>"), "{documents}");
    assert!(
        documents
            .contains("&lt;script&gt;alert('zatca')&lt;/script&gt; the buyer's building number"),
        "ZATCA's message, escaped: {documents}"
    );
    assert!(!html.contains("<script>"), "nothing from ZATCA is markup");
    assert!(
        !documents.contains(reported_id),
        "a reported document is accepted and not listed"
    );

    let arabic = page(&app, "/dashboard/reconciliation?lang=ar", &cookie).await;
    assert_eq!(arabic.status, 200, "{}", arabic.text);
    for label in ["الفوترة الإلكترونية", "مرفوضة", "الاعتماد", "رسائل الهيئة"]
    {
        assert!(arabic.text.contains(label), "no {label} on the Arabic page");
    }
    for english_word in [
        "Rejected",
        "Clearance",
        "ZATCA's messages",
        "Documents not accepted",
    ] {
        assert!(
            !arabic.text.contains(english_word),
            "{english_word} on the Arabic page"
        );
    }
    assert!(arabic.text.contains("<code>BR-KSA-63</code>"));
    app.stop().await;
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn signing_in_sets_an_http_only_same_site_cookie_and_pages_need_it() {
        super::signing_in_sets_an_http_only_same_site_cookie_and_pages_need_it(Engine::Sqlite)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_page_renders_for_an_admin_in_english_and_arabic() {
        super::every_page_renders_for_an_admin_in_english_and_arabic(Engine::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_sales_token_is_refused_the_finance_and_audit_pages() {
        super::a_sales_token_is_refused_the_finance_and_audit_pages(Engine::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn values_from_data_are_html_escaped() {
        super::values_from_data_are_html_escaped(Engine::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_funnel_numbers_shown_equal_the_funnel_api() {
        super::the_funnel_numbers_shown_equal_the_funnel_api(Engine::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_reconciliation_page_shows_each_zatca_document_not_accepted_with_zatcas_messages() {
        super::the_reconciliation_page_shows_each_zatca_document_not_accepted_with_zatcas_messages(
            Engine::Sqlite,
        )
        .await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_page_renders_for_an_admin_in_english_and_arabic() {
        super::every_page_renders_for_an_admin_in_english_and_arabic(Engine::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_funnel_numbers_shown_equal_the_funnel_api() {
        super::the_funnel_numbers_shown_equal_the_funnel_api(Engine::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_reconciliation_page_shows_each_zatca_document_not_accepted_with_zatcas_messages() {
        super::the_reconciliation_page_shows_each_zatca_document_not_accepted_with_zatcas_messages(
            Engine::Postgres,
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// The demo

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_demo_loads_into_an_empty_store_quickly_and_only_there() {
    let db = TestDb::sqlite().await;
    let handlers = Handlers::new(db.store.clone());
    let now = time::macros::datetime!(2026-11-15 09:00 UTC);
    let started = Instant::now();
    let summary = app::demo::load_demo(&handlers, &seller(), now)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    eprintln!("demo: {summary:?} in {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(30),
        "the demo took {elapsed:?}"
    );
    assert_eq!(summary.leads, app::demo::DEFAULT_DEMO_LEADS);
    assert_eq!(summary.partners, 5);
    assert!(summary.paid_invoices > 20 && summary.failed_payments > 0 && summary.refunds > 0);
    assert!(
        summary.overdue_invoices > 0 && summary.payouts > 0 && summary.commissions_approved > 0
    );
    // Every kind of story is in the log, including one promotion to Strategic.
    let types = crate::history::event_types(&handlers).await;
    for event_type in [
        "LeadArchived",
        "LeadReopened",
        "DemoCanceled",
        "LeadActivated",
        "PaymentFailed",
        "PaymentRefunded",
        "InvoiceRefunded",
        "InvoiceExpired",
        "InvoiceCanceled",
        "CommissionAccrued",
        "CommissionApproved",
        "CommissionRejected",
        "CommissionPaidOut",
        "CommissionClawedBack",
        "PayoutCreated",
        "PayoutPaid",
        "PartnerApplied",
        "PartnerCustomerActivated",
        "ReferralRecorded",
        "StrategicSlotTaken",
        "PartnerTierChanged",
    ] {
        assert!(
            types.contains_key(event_type),
            "no {event_type} in {types:?}"
        );
    }
    let again = app::demo::load_demo(&handlers, &seller(), now).await;
    assert!(
        matches!(again, Err(app::demo::DemoError::StoreNotEmpty { .. })),
        "{again:?}"
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_is_the_same_history_every_time() {
    let now = time::macros::datetime!(2026-11-15 09:00 UTC);
    let mut logs = Vec::new();
    for _ in 0..2 {
        let db = TestDb::sqlite().await;
        let handlers = Handlers::new(db.store.clone());
        app::demo::load_demo_sized(&handlers, &seller(), now, 40)
            .await
            .unwrap();
        let rows = db
            .store
            .sql()
            .fetch_all(
                "SELECT stream_id, version, event_type, payload FROM events ORDER BY position",
                &[],
            )
            .await
            .unwrap();
        // Personal values are sealed with a fresh nonce each time: compared opened.
        let mut events = Vec::new();
        for r in &rows {
            let payload = serde_json::from_str(&r.text(3).unwrap()).unwrap();
            events.push((
                r.text(0).unwrap(),
                r.i64(1).unwrap(),
                r.text(2).unwrap(),
                crate::helpers::opened(&db.store, payload).await.to_string(),
            ));
        }
        logs.push(events);
        db.cleanup().await;
    }
    assert_eq!(logs[0], logs[1]);
}

// ---------------------------------------------------------------------------------------------
// A real browser

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_in_a_real_browser_shows_the_apis_funnel_in_both_languages() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let app = app_with_demo(Engine::Sqlite).await.unwrap();
    let expected = funnel_counts_of_api(&app.get("/api/funnel", Some(ADMIN_TOKEN)).await.body);
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    for (name, path, _) in PAGES {
        for lang in ["en", "ar"] {
            // A one-time sign-in link: the browser gets the session cookie without the token
            // ever being in a URL.
            let url = sign_in_link(&app, ADMIN_TOKEN, lang, path).await;
            let screenshot = target.join(format!("dashboard-{name}-{lang}.png"));
            let _ = std::fs::remove_file(&screenshot);
            let chromium = chromium.clone();
            let shot = screenshot.clone();
            let dom = tokio::task::spawn_blocking(move || chromium_dump(&chromium, &url, &shot))
                .await
                .unwrap();
            let dir = if lang == "ar" { "rtl" } else { "ltr" };
            assert!(
                dom.contains(&format!(r#"<html lang="{lang}" dir="{dir}">"#)),
                "{name} {lang}: {dom}"
            );
            assert!(
                dom.contains(&format!(r#"<main id="page-{name}">"#)),
                "{name} {lang} is not the signed-in page: {dom}"
            );
            if name == "overview" {
                assert_eq!(
                    funnel_counts_in(&dom),
                    expected,
                    "{lang}: the browser's funnel"
                );
            }
            let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
            assert!(
                size > 10_000,
                "{} is missing or blank ({size} bytes)",
                screenshot.display()
            );
            eprintln!("screenshot: {}", screenshot.display());
        }
    }
    app.stop().await;
}
