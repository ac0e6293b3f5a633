//! The finance routes over HTTP, with tokens and roles: statements (JSON and CSV, a partner
//! sees only its own), the trial balance, reconciliation, payouts with an Idempotency-Key.

use api::auth::Role;
use domain::partner::PartnerTier;
use domain::plan::Plan;
use serde_json::json;
use time::{Duration as Span, OffsetDateTime};

use crate::app::{create_token, envelope, spawn_app, TestApp, ADMIN_TOKEN};
use crate::helpers::Engine;

crate::on_both_apps!(
    a_partner_reads_its_own_statement_as_json_and_csv_and_never_another_partners,
    finance_reads_the_trial_balance_and_reconciliation_and_an_auditor_changes_nothing,
    a_payout_request_with_an_idempotency_key_is_applied_once,
);

pub(crate) async fn token(app: &TestApp, role: Role, partner: Option<&str>) -> String {
    create_token(app.handlers(), role, partner, Some("test"))
        .await
        .1
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {token}")),
        ("Content-Type", "application/json".into()),
    ]
}

/// A referred, invoiced, paid lead whose commission is approved: returns the month of its lines.
pub(crate) async fn earn(app: &TestApp, partner_id: &str, lead: &str) -> String {
    let (commission_id, month) = accrue(app, partner_id, lead).await;
    let approve = domain::commission::CommissionCommand::Approve {
        actor: "finance".into(),
        at: OffsetDateTime::now_utc(),
    };
    app.handlers()
        .commissions
        .execute(envelope(&commission_id, approve))
        .await
        .unwrap();
    app.settle().await;
    month
}

/// A referred, invoiced, paid lead whose commission is accrued (held): returns the
/// commission's id and the month of its lines.
pub(crate) async fn accrue(app: &TestApp, partner_id: &str, lead: &str) -> (String, String) {
    let handlers = app.handlers();
    let now = OffsetDateTime::now_utc();
    let enroll = domain::partner::PartnerCommand::Enroll {
        partner_id: partner_id.into(),
        name: partner_id.into(),
        email: format!("{partner_id}@partners.sa"),
        tier: PartnerTier::Referral,
        at: now - Span::days(60),
    };
    let _ = handlers
        .partners
        .execute(envelope(partner_id, enroll))
        .await;
    let email = format!("{lead}@example.sa");
    let refer = domain::partner::PartnerCommand::RecordReferral {
        lead_email: email.clone(),
        clicked_at: now - Span::days(50),
        at: now - Span::days(50),
    };
    handlers
        .partners
        .execute(envelope(partner_id, refer))
        .await
        .unwrap();
    let capture = domain::lead::LeadCommand::Capture {
        lead_id: lead.into(),
        name: lead.into(),
        company: None,
        email: Some(email),
        phone: None,
        source: "partner".into(),
        partner_id: None,
        utm: None,
        owner: None,
        at: now - Span::days(45),
    };
    handlers
        .leads
        .execute(envelope(lead, capture))
        .await
        .unwrap();
    let (invoice_id, total) = app
        .issue_invoice(lead, Plan::Growth, None, now - Span::days(40))
        .await;
    let pay = domain::payment::PaymentCommand::RecordGatewayStatus {
        payment_id: format!("pay-{lead}"),
        invoice_id: Some(invoice_id.clone()),
        moyasar_invoice_id: None,
        status: domain::payment::PaymentStatus::Paid,
        amount_halalas: total,
        fee_halalas: 500,
        captured_halalas: 0,
        refunded_halalas: 0,
        currency: "SAR".into(),
        at: now - Span::days(40),
    };
    handlers
        .payments
        .execute(envelope(&format!("pay-{lead}"), pay))
        .await
        .unwrap();
    app.settle().await;
    let commission_id = app::process::commissions::commission_id_for(&invoice_id);
    let accrued = now - Span::days(40);
    let month = format!("{:04}-{:02}", accrued.year(), u8::from(accrued.month()));
    (commission_id, month)
}

async fn a_partner_reads_its_own_statement_as_json_and_csv_and_never_another_partners(
    app: &TestApp,
) {
    let month = earn(app, "p-own", "own-lead").await;
    earn(app, "p-other", "other-lead").await;
    let own = token(app, Role::Partner, Some("p-own")).await;
    let answer = app
        .get(
            &format!("/api/partners/p-own/statements/{month}"),
            Some(&own),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["accrued_halalas"], 29_990);
    assert_eq!(
        answer.body["closing_balance_halalas"],
        answer.body["opening_balance_halalas"].as_i64().unwrap() + 29_990
    );
    assert_eq!(answer.body["lines"][0]["kind"], "accrued");
    assert!(
        answer.body["lines"][0]["event_id"].as_str().unwrap().len() > 30,
        "each line names its event"
    );
    let csv = app
        .get(
            &format!("/api/partners/p-own/statements/{month}.csv"),
            Some(&own),
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.text.starts_with("occurred_at,kind,commission_id"),
        "{}",
        csv.text
    );
    assert!(
        csv.text.contains(",accrued,") && csv.text.contains("29990"),
        "{}",
        csv.text
    );

    for path in [
        format!("/api/partners/p-other/statements/{month}"),
        format!("/api/partners/p-other/statements/{month}.csv"),
        format!("/api/partners/p-other/statements/{month}?as_of=1"),
        "/api/partners/no-such-partner/statements/2026-01".to_owned(),
    ] {
        let denied = app.get(&path, Some(&own)).await;
        assert_eq!(denied.status, 404, "{path}: {}", denied.text);
        assert!(!denied.text.contains("29990"));
    }
    let finance = token(app, Role::Finance, None).await;
    assert_eq!(
        app.get(
            &format!("/api/partners/p-other/statements/{month}"),
            Some(&finance)
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.get("/api/partners/p-own/statements/2026-13", Some(&own))
            .await
            .status,
        400
    );
    assert_eq!(
        app.get(&format!("/api/partners/p-own/statements/{month}"), None)
            .await
            .status,
        401
    );
    assert_eq!(
        app.get(
            &format!("/api/partners/p-own/statements/{month}"),
            Some("rl_forged")
        )
        .await
        .status,
        401
    );
}

async fn finance_reads_the_trial_balance_and_reconciliation_and_an_auditor_changes_nothing(
    app: &TestApp,
) {
    earn(app, "p-books", "books-lead").await;
    let finance = token(app, Role::Finance, None).await;
    let trial = app.get("/api/ledger/trial-balance", Some(&finance)).await;
    assert_eq!(trial.status, 200, "{}", trial.text);
    assert_eq!(trial.body["balanced"], true);
    let accounts: Vec<&str> = trial.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert!(
        accounts.contains(&"vat_payable") && accounts.contains(&"revenue:growth"),
        "{accounts:?}"
    );
    let account = app
        .get("/api/ledger/accounts/vat_payable", Some(&finance))
        .await;
    assert_eq!(account.status, 200, "{}", account.text);
    let reconciliation = app.get("/api/reconciliation", Some(&finance)).await;
    assert_eq!(
        (
            reconciliation.status,
            reconciliation.body["reconciled"].as_bool()
        ),
        (200, Some(true)),
        "{}",
        reconciliation.text
    );
    let as_of_start = app
        .get("/api/ledger/trial-balance?as_of=0", Some(&finance))
        .await;
    assert_eq!(
        as_of_start.body["accounts"].as_array().map(Vec::len),
        Some(0),
        "{}",
        as_of_start.text
    );
    assert_eq!(
        app.get("/api/ledger/trial-balance?as_of=yesterday", Some(&finance))
            .await
            .status,
        400
    );

    let auditor = token(app, Role::Auditor, None).await;
    assert_eq!(
        app.get("/api/ledger/trial-balance", Some(&auditor))
            .await
            .status,
        200
    );
    let payout = app
        .request("POST", "/api/payouts", &bearer(&auditor), b"{}")
        .await;
    assert_eq!(payout.status, 403, "{}", payout.text);
    let sales = token(app, Role::Sales, None).await;
    assert_eq!(
        app.get("/api/ledger/trial-balance", Some(&sales))
            .await
            .status,
        403
    );
}

async fn a_payout_request_with_an_idempotency_key_is_applied_once(app: &TestApp) {
    earn(app, "p-pay", "pay-lead").await;
    let mut headers = bearer(ADMIN_TOKEN);
    headers.push(("Idempotency-Key", "payout-2026-11".into()));
    let body = serde_json::to_vec(&json!({"partner_id": "p-pay"})).unwrap();
    let first = app.request("POST", "/api/payouts", &headers, &body).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["payouts"][0]["outcome"], "created");
    assert_eq!(first.body["payouts"][0]["net_halalas"], 29_990);
    let again = app.request("POST", "/api/payouts", &headers, &body).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    let other = serde_json::to_vec(&json!({"partner_id": "someone-else"})).unwrap();
    let reused = app.request("POST", "/api/payouts", &headers, &other).await;
    assert_eq!(reused.status, 422, "{}", reused.text);
    app.settle().await;
    let payouts = app
        .db
        .store
        .sql()
        .fetch_optional(
            "SELECT COUNT(DISTINCT stream_id) FROM events WHERE stream_type = 'payout'",
            &[],
        )
        .await
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap();
    assert_eq!(payouts, 1);
    let _ = spawn_app;
    let _ = Engine::Sqlite;
}
