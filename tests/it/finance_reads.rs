//! The reads an integrator needs (issue 23), asserted step by step along the end-to-end story
//! of [`crate::finance`] on both engines: the invoice's payments, credit notes, refund standing
//! and chain; the commissions list and one commission's history, partners kept apart; webhook
//! answers naming what they touched; a Moyasar payment for an unknown invoice answered and
//! reported.

use api::auth::Role;
use serde_json::{json, Value};

use crate::app::{create_token, TestApp, ADMIN_TOKEN};

/// `GET /api/invoices/{id}` as the admin.
pub async fn invoice(app: &TestApp, invoice_id: &str) -> Value {
    let answer = app
        .get(&format!("/api/invoices/{invoice_id}"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}

/// The invoice shows `status`, its one payment as the gateway last reported it, and one
/// credit note per refund of `refunds` (amounts, VAT included), each with its own place in the
/// chain right after the document before it.
pub async fn assert_invoice(
    app: &TestApp,
    invoice_id: &str,
    status: &str,
    payment: (&str, i64, &str, i64),
    refunds: &[i64],
) {
    let view = invoice(app, invoice_id).await;
    assert_eq!(view["status"], status, "{view}");
    assert_eq!(view["collection_status"], "paid", "{view}");
    let (payment_id, amount, gateway_status, refunded) = payment;
    let payments = view["payments"].as_array().expect("payments");
    assert_eq!(payments.len(), 1, "{view}");
    assert_eq!(payments[0]["payment_id"], payment_id);
    assert_eq!(payments[0]["amount_halalas"], amount);
    assert_eq!(payments[0]["status"], gateway_status);
    assert_eq!(payments[0]["refunded_halalas"], refunded);
    assert!(payments[0]["fee_halalas"].is_i64(), "{view}");
    assert!(payments[0]["paid_at"].is_string(), "{view}");
    assert!(view["icv"].as_u64().unwrap() >= 1, "{view}");
    assert!(!view["invoice_hash"].as_str().unwrap().is_empty());
    assert!(!view["previous_invoice_hash"].as_str().unwrap().is_empty());
    let notes = view["credit_notes"].as_array().expect("credit notes");
    let amounts: Vec<i64> = notes
        .iter()
        .map(|note| note["amount_halalas"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, refunds, "{view}");
    let mut before = (view["icv"].as_u64().unwrap(), view["invoice_hash"].clone());
    for note in notes {
        assert_eq!(note["document_type_code"], 381);
        assert!(note["icv"].as_u64().unwrap() > before.0, "{view}");
        assert_eq!(
            note["reason"],
            app::process::invoices::GATEWAY_REFUND_REASON
        );
        let hash = note["invoice_hash"].as_str().expect("a credit note's hash");
        assert!(
            !hash.is_empty() && note["invoice_hash"] != before.1,
            "{view}"
        );
        assert!(note["previous_invoice_hash"].is_string(), "{view}");
        assert_eq!(
            note["subtotal_halalas"].as_i64().unwrap() + note["vat_halalas"].as_i64().unwrap(),
            note["amount_halalas"].as_i64().unwrap()
        );
        before = (note["icv"].as_u64().unwrap(), note["invoice_hash"].clone());
    }
}

/// The webhook answer names what it touched.
pub fn assert_touched(
    answer: &Value,
    lead_id: Option<&str>,
    invoice_id: Option<&str>,
    payment_id: Option<&str>,
) {
    assert_eq!(
        answer["touched"],
        json!({"lead_id": lead_id, "invoice_id": invoice_id, "payment_id": payment_id, "partner_id": null}),
        "{answer}"
    );
}

/// The commissions routes after a full refund: the list filtered by partner, status and
/// period, the commission's history with a rejection's actor and reason, and a partner token
/// that sees only its own partner's.
pub async fn assert_commissions(
    app: &TestApp,
    partner_id: &str,
    commission_id: &str,
    invoice_id: &str,
) {
    let list = app
        .get(
            &format!("/api/commissions?partner_id={partner_id}"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let items = list.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", list.text);
    let row = &items[0];
    assert_eq!(row["commission_id"], commission_id);
    assert_eq!(row["invoice_id"], invoice_id);
    assert_eq!(row["accrued_halalas"], 29_990);
    assert_eq!(row["net_halalas"], 0, "fully clawed back: {row}");
    assert_eq!(list.body["next_cursor"], Value::Null);
    let period = &row["accrued_at"].as_str().unwrap()[..7];
    for (query, expected) in [
        (format!("status=rejected&partner_id={partner_id}"), 1),
        (format!("status=held&partner_id={partner_id}"), 0),
        (format!("period={period}&partner_id={partner_id}"), 1),
        (format!("period=2001-01&partner_id={partner_id}"), 0),
        (
            format!("from=2001-01-01T00:00:00Z&to=2002-01-01T00:00:00Z&partner_id={partner_id}"),
            0,
        ),
    ] {
        let answer = app
            .get(&format!("/api/commissions?{query}"), Some(ADMIN_TOKEN))
            .await;
        assert_eq!(answer.status, 200, "{query}: {}", answer.text);
        assert_eq!(
            answer.body["items"].as_array().unwrap().len(),
            expected,
            "{query}: {}",
            answer.text
        );
    }
    for (query, field) in [
        ("status=paid", "status"),
        ("period=2026-13", "period"),
        ("from=yesterday", "from"),
        ("cursor=nope", "cursor"),
    ] {
        let answer = app
            .get(&format!("/api/commissions?{query}"), Some(ADMIN_TOKEN))
            .await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
        assert_eq!(answer.body["field"], field, "{query}: {}", answer.text);
    }

    let one = app
        .get(
            &format!("/api/commissions/{commission_id}"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["status"], "rejected");
    let history = one.body["history"].as_array().expect("history");
    let events: Vec<&str> = history
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["accrued", "clawed_back", "clawed_back", "rejected"],
        "{}",
        one.text
    );
    assert_eq!(history[0]["amount_halalas"], 29_990);
    assert_eq!(history[0]["reference"], invoice_id);
    let clawed: i64 = history[1..3]
        .iter()
        .map(|h| h["amount_halalas"].as_i64().unwrap())
        .sum();
    assert_eq!(clawed, -29_990);
    assert_eq!(
        history[3]["actor"],
        format!("token:{}", api::auth::BOOTSTRAP_ADMIN_TOKEN_ID)
    );
    assert_eq!(history[3]["reason"], "the customer was refunded in full");
    assert!(history
        .iter()
        .all(|h| h["at"].is_string() && h["position"].is_i64()));

    // A partner token sees its own partner's commissions and nothing of another partner's.
    let (_, own) = create_token(app.handlers(), Role::Partner, Some(partner_id), Some("own")).await;
    let (_, other) = create_token(
        app.handlers(),
        Role::Partner,
        Some("p-other"),
        Some("other"),
    )
    .await;
    let mine = app.get("/api/commissions", Some(&own)).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(
        mine.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        mine.text
    );
    let mine = app
        .get(&format!("/api/commissions/{commission_id}"), Some(&own))
        .await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    let theirs = app.get("/api/commissions", Some(&other)).await;
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    assert_eq!(theirs.body["items"], json!([]), "{}", theirs.text);
    for path in [
        format!("/api/commissions/{commission_id}"),
        format!("/api/commissions?partner_id={partner_id}"),
    ] {
        let answer = app.get(&path, Some(&other)).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.text);
        assert!(!answer.text.contains(invoice_id), "{path}: {}", answer.text);
    }
}

/// A Moyasar payment naming an invoice nobody issued: answered 200 `unmatched_invoice` (kept,
/// not retried), and listed by `/api/reconciliation` as a payment without invoice.
pub async fn assert_unknown_invoice_reported(app: &TestApp, body: &Value, payment_id: &str) {
    let answer = app.post_moyasar_webhook(body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.body["status"], "unmatched_invoice",
        "{}",
        answer.text
    );
    assert!(
        answer.body["reason"]
            .as_str()
            .unwrap()
            .contains("no-such-invoice"),
        "{}",
        answer.text
    );
    assert_touched(&answer.body, None, None, Some(payment_id));
    let again = app.post_moyasar_webhook(body).await;
    assert_eq!(again.body, answer.body, "a repeat gets the first answer");
    app.settle().await;
    let reconciliation = app.get("/api/reconciliation", Some(ADMIN_TOKEN)).await;
    assert_eq!(reconciliation.status, 200, "{}", reconciliation.text);
    assert_eq!(
        reconciliation.body["reconciled"], false,
        "{}",
        reconciliation.text
    );
    let stream = format!("payment-{payment_id}");
    let found = reconciliation.body["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "payment_without_invoice")
        .filter(|m| {
            m["streams"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| *s == stream.as_str()))
        })
        .count();
    assert_eq!(found, 1, "{}", reconciliation.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_commissions_are_listed_a_page_at_a_time_and_read_as_of_a_past_moment() {
    let app = crate::app::spawn_app(crate::helpers::Engine::Sqlite)
        .await
        .unwrap();
    commissions_are_listed_a_page_at_a_time_and_read_as_of_a_past_moment(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_commissions_are_listed_a_page_at_a_time_and_read_as_of_a_past_moment() {
    let Some(app) = crate::app::spawn_app(crate::helpers::Engine::Postgres).await else {
        return;
    };
    commissions_are_listed_a_page_at_a_time_and_read_as_of_a_past_moment(&app).await;
    app.stop().await;
}

async fn commissions_are_listed_a_page_at_a_time_and_read_as_of_a_past_moment(app: &TestApp) {
    let (held_a, _) = crate::finance_api::accrue(app, "p-page", "page-a").await;
    let (held_b, _) = crate::finance_api::accrue(app, "p-page", "page-b").await;
    crate::finance_api::earn(app, "p-page", "page-c").await;
    app.settle().await;

    let mut seen: Vec<Value> = Vec::new();
    let mut path = "/api/commissions?partner_id=p-page&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = app.get(&path, Some(ADMIN_TOKEN)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        pages += 1;
        seen.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/commissions?partner_id=p-page&limit=2&cursor={cursor}")
            }
            None => break,
        }
        assert!(pages < 5, "the pages never end: {}", page.text);
    }
    assert_eq!(pages, 2);
    let ids: std::collections::BTreeSet<&str> = seen
        .iter()
        .map(|row| row["commission_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{seen:?}");
    assert!(ids.contains(held_a.as_str()) && ids.contains(held_b.as_str()));
    let accrued: Vec<&str> = seen
        .iter()
        .map(|row| row["accrued_at"].as_str().unwrap())
        .collect();
    assert!(
        accrued.windows(2).all(|pair| pair[0] <= pair[1]),
        "{accrued:?}"
    );
    let approved: Vec<&Value> = seen
        .iter()
        .filter(|row| row["status"] == "approved")
        .collect();
    assert_eq!(approved.len(), 1, "{seen:?}");
    let approved_id = approved[0]["commission_id"].as_str().unwrap().to_owned();
    for (query, expected) in [
        ("status=held", 2),
        ("status=approved", 1),
        ("status=paid_out", 0),
    ] {
        let answer = app
            .get(
                &format!("/api/commissions?partner_id=p-page&{query}"),
                Some(ADMIN_TOKEN),
            )
            .await;
        assert_eq!(
            answer.body["items"].as_array().unwrap().len(),
            expected,
            "{query}: {}",
            answer.text
        );
    }

    // Staff roles: the auditor reads, sales does not.
    let (_, auditor) = create_token(app.handlers(), Role::Auditor, None, Some("audit")).await;
    let (_, sales) = create_token(app.handlers(), Role::Sales, None, Some("sales")).await;
    let audited = app
        .get("/api/commissions?partner_id=p-page", Some(&auditor))
        .await;
    assert_eq!(
        audited.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        audited.text
    );
    assert_eq!(app.get("/api/commissions", Some(&sales)).await.status, 403);
    assert_eq!(
        app.get(&format!("/api/commissions/{approved_id}"), Some(&sales))
            .await
            .status,
        403
    );
    assert_eq!(
        app.get("/api/commissions/no-such-commission", Some(ADMIN_TOKEN))
            .await
            .status,
        404
    );

    // Now: approved by finance. As of the moment before the approval: held, accrued only.
    let now = app
        .get(
            &format!("/api/commissions/{approved_id}"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(now.status, 200, "{}", now.text);
    let history = now.body["history"].as_array().unwrap();
    let events: Vec<&str> = history
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["accrued", "approved"], "{}", now.text);
    assert_eq!(history[1]["actor"], "finance");
    let before = history[1]["position"].as_i64().unwrap() - 1;
    let then = app
        .get(
            &format!("/api/commissions/{approved_id}?as_of={before}"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(then.status, 200, "{}", then.text);
    assert_eq!(then.body["status"], "held", "{}", then.text);
    let events: Vec<&str> = then.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["accrued"], "{}", then.text);
}
