//! The partner program and the money trail, both engines: the end-to-end story of issue 5,
//! the Strategic slot race, the attribution window edges, the hold period, partial refunds,
//! clawback after payout, the payout minimum and partner statements.

use std::sync::Arc;

use adapters::store::EventMetadata;
use app::handlers::Handlers;
use app::partners::{change_partner_tier, TierChangeError};
use app::process::commissions::commission_id_for;
use app::process::payouts::create_payouts;
use domain::commission::{CommissionCommand, CommissionError};
use domain::lead::LeadCommand;
use domain::partner::{PartnerCommand, PartnerProgramError, PartnerTier};
use domain::payment::{PaymentCommand, PaymentStatus};
use domain::plan::Plan;
use serde_json::{json, Value};
use time::macros::datetime;
use time::{Duration as Span, OffsetDateTime};
use uuid::Uuid;

use crate::app::{envelope, spawn_app, TestApp, MOYASAR_TOKEN};
use crate::finance_reads;
use crate::helpers::{Engine, TestDb};
use crate::history::{run_process_managers, run_process_managers_except, run_projections};

crate::on_both_engines!(
    two_concurrent_promotions_cannot_both_take_the_third_strategic_slot,
    a_referral_attributes_a_lead_captured_on_day_thirty_but_not_on_day_thirty_one,
    in_one_batch_a_referral_before_the_payment_counts_and_one_after_it_does_not,
    a_payment_and_its_refund_in_one_batch_accrue_and_claw_back,
    a_commission_is_held_until_its_hold_period_ends,
    a_partial_refund_claws_back_the_commission_pro_rata,
    a_clawback_after_payout_is_carried_against_the_next_payout,
    a_partner_below_the_payout_minimum_is_not_paid_out,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_the_whole_story_from_referral_to_refund_balances_to_the_halala() {
    let app = spawn_app(Engine::Sqlite).await.unwrap();
    the_whole_story_from_referral_to_refund_balances_to_the_halala(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_the_whole_story_from_referral_to_refund_balances_to_the_halala() {
    let Some(app) = spawn_app(Engine::Postgres).await else {
        return;
    };
    the_whole_story_from_referral_to_refund_balances_to_the_halala(&app).await;
    app.stop().await;
}

const T0: OffsetDateTime = datetime!(2026-09-01 09:00 UTC);

async fn enroll(handlers: &Handlers, partner_id: &str, tier: PartnerTier) {
    let enroll = PartnerCommand::Enroll {
        partner_id: partner_id.into(),
        name: partner_id.into(),
        email: format!("{partner_id}@partners.sa"),
        tier: PartnerTier::Referral,
        at: T0,
    };
    handlers
        .partners
        .execute(envelope(partner_id, enroll))
        .await
        .unwrap();
    if tier != PartnerTier::Referral {
        change_partner_tier(
            handlers,
            partner_id,
            tier,
            "contract signed",
            T0,
            Uuid::now_v7(),
            EventMetadata::default(),
        )
        .await
        .unwrap();
    }
}

async fn refer(handlers: &Handlers, partner_id: &str, email: &str, clicked_at: OffsetDateTime) {
    let referral = PartnerCommand::RecordReferral {
        lead_email: email.into(),
        clicked_at,
        at: clicked_at,
    };
    handlers
        .partners
        .execute(envelope(partner_id, referral))
        .await
        .unwrap();
}

async fn capture(handlers: &Handlers, lead_id: &str, email: &str, at: OffsetDateTime) {
    let capture = LeadCommand::Capture {
        lead_id: lead_id.into(),
        name: lead_id.into(),
        company: Some("Co".into()),
        email: Some(email.into()),
        phone: None,
        source: "landing_page".into(),
        partner_id: None,
        utm: None,
        owner: None,
        at,
    };
    handlers
        .leads
        .execute(envelope(lead_id, capture))
        .await
        .unwrap();
}

/// Issues a `plan` invoice for the lead and pays it in full through the gateway; returns the
/// invoice id and the payment id.
async fn invoice_and_pay(
    handlers: &Arc<Handlers>,
    lead_id: &str,
    plan: Plan,
    at: OffsetDateTime,
) -> (String, String) {
    invoice_and_pay_except(handlers, lead_id, plan, at, None).await
}

/// [`invoice_and_pay`], with every process manager but `except` reacting.
async fn invoice_and_pay_except(
    handlers: &Arc<Handlers>,
    lead_id: &str,
    plan: Plan,
    at: OffsetDateTime,
    except: Option<&str>,
) -> (String, String) {
    let invoice_id = format!("inv-{lead_id}");
    let issue = domain::invoice::IssueInvoice {
        invoice_id: invoice_id.clone(),
        customer: domain::invoice::Customer {
            lead_id: lead_id.into(),
            name: lead_id.into(),
        },
        lines: vec![domain::invoice::InvoiceLine {
            description: plan.as_str().into(),
            quantity: 1,
            unit_price_halalas: plan.price_halalas(),
            plan: Some(plan),
        }],
        issued_at: at,
        due_at: at + Span::days(14),
        seller: domain::invoice::Seller {
            name: "Dealix".into(),
            vat_number: crate::app::SELLER_VAT.into(),
        },
        moyasar_invoice_id: None,
    };
    crate::app::issue_through_sequence(handlers, issue).await;
    let (invoice, _) = handlers.invoices.load_aggregate(&invoice_id).await.unwrap();
    let payment_id = format!("pay-{lead_id}");
    report(
        handlers,
        &payment_id,
        &invoice_id,
        PaymentStatus::Paid,
        invoice.total_halalas(),
        0,
        at,
    )
    .await;
    run_process_managers_except(handlers, except).await;
    (invoice_id, payment_id)
}

async fn report(
    handlers: &Handlers,
    payment_id: &str,
    invoice_id: &str,
    status: PaymentStatus,
    amount: i64,
    refunded: i64,
    at: OffsetDateTime,
) {
    let command = PaymentCommand::RecordGatewayStatus {
        payment_id: payment_id.into(),
        invoice_id: Some(invoice_id.into()),
        moyasar_invoice_id: None,
        status,
        amount_halalas: amount,
        fee_halalas: 1_000,
        captured_halalas: 0,
        refunded_halalas: refunded,
        currency: "SAR".into(),
        at,
    };
    handlers
        .payments
        .execute(envelope(payment_id, command))
        .await
        .unwrap();
}

async fn commission_events(db: &TestDb, invoice_id: &str) -> Vec<adapters::store::RecordedEvent> {
    db.store
        .read_stream(
            &format!("commission-{}", commission_id_for(invoice_id)),
            1,
            100,
        )
        .await
        .unwrap()
}

async fn two_concurrent_promotions_cannot_both_take_the_third_strategic_slot(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    enroll(&handlers, "s1", PartnerTier::Strategic).await;
    enroll(&handlers, "s2", PartnerTier::Strategic).await;
    for round in 0..5 {
        let (a, b) = (format!("r{round}a"), format!("r{round}b"));
        enroll(&handlers, &a, PartnerTier::Referral).await;
        enroll(&handlers, &b, PartnerTier::Referral).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let racers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|partner| {
                // Two replicas: each its own handlers (and aggregate cache), one store.
                let handlers = Handlers::new(db.store.clone());
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    change_partner_tier(
                        &handlers,
                        &partner,
                        PartnerTier::Strategic,
                        "promoted",
                        T0,
                        Uuid::now_v7(),
                        EventMetadata::default(),
                    )
                    .await
                })
            })
            .collect();
        let mut promoted = Vec::new();
        for (racer, partner) in racers.into_iter().zip([a.clone(), b.clone()]) {
            match racer.await.unwrap() {
                Ok(_) => promoted.push(partner),
                Err(TierChangeError::Program(app::CommandError::Rejected(
                    PartnerProgramError::StrategicSlotsFull { max: 3 },
                ))) => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(
            promoted.len(),
            1,
            "round {round}: exactly one promotion takes the third slot"
        );
        let (program, _) = handlers
            .partner_program
            .load_aggregate(domain::partner::PARTNER_PROGRAM_ID)
            .await
            .unwrap();
        assert_eq!(program.slots_taken(), 3);
        // Free the slot for the next round.
        change_partner_tier(
            &handlers,
            &promoted[0],
            PartnerTier::Certified,
            "stepped down",
            T0,
            Uuid::now_v7(),
            EventMetadata::default(),
        )
        .await
        .unwrap();
    }
}

async fn a_referral_attributes_a_lead_captured_on_day_thirty_but_not_on_day_thirty_one(
    db: &TestDb,
) {
    let handlers = Handlers::new(db.store.clone());
    enroll(&handlers, "p-window", PartnerTier::Referral).await;
    refer(&handlers, "p-window", "inside@example.sa", T0).await;
    refer(&handlers, "p-window", "outside@example.sa", T0).await;
    capture(
        &handlers,
        "inside",
        "inside@example.sa",
        T0 + Span::days(30) + Span::hours(23),
    )
    .await;
    capture(
        &handlers,
        "outside",
        "Outside@Example.sa",
        T0 + Span::days(31),
    )
    .await;
    let (inside, _) = invoice_and_pay(&handlers, "inside", Plan::Growth, T0 + Span::days(32)).await;
    let (outside, _) =
        invoice_and_pay(&handlers, "outside", Plan::Growth, T0 + Span::days(32)).await;
    let accrued = commission_events(db, &inside).await;
    assert_eq!(accrued.len(), 1);
    assert_eq!(accrued[0].payload["amount_halalas"], 29_990);
    assert_eq!(accrued[0].payload["rate_bps"], 1_000);
    assert!(
        commission_events(db, &outside).await.is_empty(),
        "day 31 earns nothing"
    );
}

/// The commissions process manager reads and writes its own tables once per batch; within a
/// batch each event must still see only what came before it, as one at a time would. Every
/// event here waits for one batch: a referral and a capture before a payment earn, a click
/// from before a capture that is recorded after the payment does not.
async fn in_one_batch_a_referral_before_the_payment_counts_and_one_after_it_does_not(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    enroll(&handlers, "p-before", PartnerTier::Referral).await;
    enroll(&handlers, "p-after", PartnerTier::Referral).await;
    refer(&handlers, "p-before", "before@example.sa", T0).await;
    capture(&handlers, "before", "before@example.sa", T0 + Span::days(1)).await;
    capture(&handlers, "after", "after@example.sa", T0 + Span::days(1)).await;
    let at = T0 + Span::days(2);
    let except = Some("commissions");
    let (before, _) = invoice_and_pay_except(&handlers, "before", Plan::Growth, at, except).await;
    let (after, _) = invoice_and_pay_except(&handlers, "after", Plan::Growth, at, except).await;
    refer(&handlers, "p-after", "after@example.sa", T0).await;
    assert!(commission_events(db, &before).await.is_empty());

    let commissions = app::process::process_managers()
        .into_iter()
        .find(|process| process.name() == "commissions")
        .expect("the commissions process manager");
    let runner = app::process::ProcessRunner::new(handlers.clone(), commissions);
    let start = adapters::store::Checkpoint::START;
    let total = db.store.read_committed(start, 1_000).await.unwrap().len();
    assert!(
        total <= app::process::BATCH_SIZE,
        "{total} events fit one batch"
    );
    let first = runner.step().await.unwrap();
    // On PostgreSQL another test's open transaction can hold the first read back (the
    // results below hold however the events are cut); on SQLite nothing does.
    if db.engine == Engine::Sqlite {
        assert_eq!(first, total, "one step reacts to them all");
    }
    runner.catch_up().await.unwrap();

    let accrued = commission_events(db, &before).await;
    assert_eq!(accrued.len(), 1);
    assert_eq!(accrued[0].payload["partner_id"], "p-before");
    assert!(
        commission_events(db, &after).await.is_empty(),
        "a click recorded after the payment does not earn it"
    );
}

async fn a_commission_is_held_until_its_hold_period_ends(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    enroll(&handlers, "p-hold", PartnerTier::Certified).await;
    refer(&handlers, "p-hold", "held@example.sa", T0).await;
    capture(&handlers, "held", "held@example.sa", T0 + Span::days(1)).await;
    let paid_at = T0 + Span::days(2);
    let (invoice_id, _) = invoice_and_pay(&handlers, "held", Plan::Starter, paid_at).await;
    let commission_id = commission_id_for(&invoice_id);
    let events = commission_events(db, &invoice_id).await;
    assert_eq!(
        events[0].payload["rate_bps"], 1_500,
        "the Certified rate is locked in"
    );
    assert_eq!(events[0].payload["amount_halalas"], 14_985);
    let early = CommissionCommand::Approve {
        actor: "finance".into(),
        at: paid_at + Span::days(30) - Span::seconds(1),
    };
    let error = handlers
        .commissions
        .execute(envelope(&commission_id, early))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            app::CommandError::Rejected(CommissionError::CommissionStillHeld { .. })
        ),
        "{error:?}"
    );
    let on_time = CommissionCommand::Approve {
        actor: "finance".into(),
        at: paid_at + Span::days(30),
    };
    handlers
        .commissions
        .execute(envelope(&commission_id, on_time))
        .await
        .unwrap();
}

async fn a_partial_refund_claws_back_the_commission_pro_rata(db: &TestDb) {
    partial_refund(db, None).await;
}

/// The commissions process manager meets the paid invoice and its refund in one step: it
/// accrues the commission and claws it back in that step.
async fn a_payment_and_its_refund_in_one_batch_accrue_and_claw_back(db: &TestDb) {
    partial_refund(db, Some("commissions")).await;
}

/// A referred lead's invoice paid, then half refunded; the process manager named `held_back`
/// reacts only once both have happened.
async fn partial_refund(db: &TestDb, held_back: Option<&str>) {
    let handlers = Handlers::new(db.store.clone());
    enroll(&handlers, "p-part", PartnerTier::Referral).await;
    refer(&handlers, "p-part", "part@example.sa", T0).await;
    capture(&handlers, "part", "part@example.sa", T0).await;
    let (invoice_id, payment_id) = invoice_and_pay_except(
        &handlers,
        "part",
        Plan::Growth,
        T0 + Span::days(1),
        held_back,
    )
    .await;
    if held_back.is_some() {
        assert!(commission_events(db, &invoice_id).await.is_empty());
    }
    report(
        &handlers,
        &payment_id,
        &invoice_id,
        PaymentStatus::Refunded,
        344_885,
        172_443,
        T0 + Span::days(3),
    )
    .await;
    run_process_managers_except(&handlers, held_back).await;
    run_process_managers(&handlers).await;
    let events = commission_events(db, &invoice_id).await;
    let clawback = events
        .iter()
        .find(|e| e.event_type == "CommissionClawedBack")
        .expect("clawed back");
    // 172,443 of 344,885 refunded: its amount before VAT is 149,950 of 299,900, half of 29,990.
    assert_eq!(clawback.payload["refunded_base_halalas"], 149_950);
    assert_eq!(clawback.payload["amount_halalas"], -14_995);
    let invoice = db
        .store
        .read_stream(&format!("invoice-{invoice_id}"), 1, 100)
        .await
        .unwrap();
    let refunded = invoice
        .iter()
        .find(|e| e.event_type == "InvoiceRefunded")
        .unwrap();
    assert_eq!(refunded.payload["credit_note"]["document_type_code"], 381);
}

async fn approve(handlers: &Handlers, invoice_id: &str, at: OffsetDateTime) {
    let approve = CommissionCommand::Approve {
        actor: "finance".into(),
        at,
    };
    handlers
        .commissions
        .execute(envelope(&commission_id_for(invoice_id), approve))
        .await
        .unwrap();
}

async fn payouts(
    handlers: &Arc<Handlers>,
    minimum: i64,
    partner: &str,
    at: OffsetDateTime,
) -> Vec<app::process::payouts::PayoutResult> {
    run_projections(handlers).await.unwrap();
    let results = create_payouts(
        handlers,
        minimum,
        Some(partner),
        at,
        Uuid::now_v7(),
        EventMetadata::default(),
    )
    .await
    .unwrap();
    run_process_managers(handlers).await;
    run_projections(handlers).await.unwrap();
    results
}

async fn a_clawback_after_payout_is_carried_against_the_next_payout(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    enroll(&handlers, "p-carry", PartnerTier::Referral).await;
    for lead in ["carry-1", "carry-2"] {
        refer(&handlers, "p-carry", &format!("{lead}@example.sa"), T0).await;
        capture(&handlers, lead, &format!("{lead}@example.sa"), T0).await;
    }
    let (first, first_payment) =
        invoice_and_pay(&handlers, "carry-1", Plan::Growth, T0 + Span::days(1)).await;
    approve(&handlers, &first, T0 + Span::days(40)).await;
    let paid = payouts(&handlers, 10_000, "p-carry", T0 + Span::days(41)).await;
    assert_eq!(
        (paid[0].outcome.as_str(), paid[0].net_halalas),
        ("created", 29_990)
    );

    // Fully refunded after the payout: the partner now owes 29,990.
    report(
        &handlers,
        &first_payment,
        &first,
        PaymentStatus::Refunded,
        344_885,
        344_885,
        T0 + Span::days(45),
    )
    .await;
    run_process_managers(&handlers).await;
    let clawback = commission_events(db, &first)
        .await
        .into_iter()
        .find(|e| e.event_type == "CommissionClawedBack")
        .unwrap();
    assert_eq!(
        (
            clawback.payload["amount_halalas"].as_i64(),
            clawback.payload["after_payout"].as_bool()
        ),
        (Some(-29_990), Some(true))
    );

    // The next commission (a Scale plan: 79,990) is paid out net of what is carried.
    let (second, _) = invoice_and_pay(&handlers, "carry-2", Plan::Scale, T0 + Span::days(46)).await;
    approve(&handlers, &second, T0 + Span::days(80)).await;
    let next = payouts(&handlers, 10_000, "p-carry", T0 + Span::days(81)).await;
    assert_eq!(
        (next[0].outcome.as_str(), next[0].net_halalas),
        ("created", 79_990 - 29_990)
    );

    // And nothing is carried twice.
    let again = payouts(&handlers, 10_000, "p-carry", T0 + Span::days(82)).await;
    assert!(
        again.is_empty() || again[0].payout_id.is_none(),
        "{again:?}"
    );

    let statement = projections::statements::statement(&db.store.sql(), "p-carry", "2026-10")
        .await
        .unwrap();
    assert_eq!(statement["clawbacks_halalas"], -29_990, "{statement}");
    let all = projections::read_model("partner_statements")
        .unwrap()
        .render(&db.store.sql())
        .await
        .unwrap();
    let balance = all["partners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partner_id"] == "p-carry")
        .unwrap()["balance_halalas"]
        .clone();
    assert_eq!(
        balance, 0,
        "everything earned was paid out or recovered: {all}"
    );
}

async fn a_partner_below_the_payout_minimum_is_not_paid_out(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    enroll(&handlers, "p-min", PartnerTier::Referral).await;
    refer(&handlers, "p-min", "min@example.sa", T0).await;
    capture(&handlers, "min", "min@example.sa", T0).await;
    let (invoice_id, _) =
        invoice_and_pay(&handlers, "min", Plan::Starter, T0 + Span::days(1)).await;
    approve(&handlers, &invoice_id, T0 + Span::days(40)).await;
    let below = payouts(&handlers, 10_000, "p-min", T0 + Span::days(41)).await;
    assert_eq!(below[0].payout_id, None);
    assert!(below[0].outcome.contains("minimum"), "{below:?}");
    assert!(commission_events(db, &invoice_id)
        .await
        .iter()
        .all(|e| e.event_type != "CommissionPaidOut"));
    let met = payouts(&handlers, 9_990, "p-min", T0 + Span::days(41)).await;
    assert_eq!(
        (met[0].outcome.as_str(), met[0].net_halalas),
        ("created", 9_990)
    );
    assert!(commission_events(db, &invoice_id)
        .await
        .iter()
        .any(|e| e.event_type == "CommissionPaidOut"));
}

fn moyasar(
    delivery_id: &str,
    kind: &str,
    payment_id: &str,
    amount: i64,
    refunded: i64,
    invoice_id: &str,
) -> Value {
    let path = format!(
        "{}/tests/fixtures/moyasar_payment_paid.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    body["secret_token"] = json!(MOYASAR_TOKEN);
    body["id"] = json!(delivery_id);
    body["type"] = json!(kind);
    body["live"] = json!(true);
    body["data"]["id"] = json!(payment_id);
    body["data"]["status"] = json!(if refunded > 0 { "refunded" } else { "paid" });
    body["data"]["amount"] = json!(amount);
    body["data"]["refunded"] = json!(refunded);
    body["data"]["invoice_id"] = Value::Null;
    body["data"]["metadata"] = json!({"invoice_id": invoice_id});
    body
}

async fn assert_books_balance(app: &TestApp, step: &str) {
    app.settle().await;
    let db = app.db.store.sql();
    let trial = projections::read_model("ledger")
        .unwrap()
        .render(&db)
        .await
        .unwrap();
    assert_eq!(trial["balanced"], true, "{step}: {trial}");
    let reconciliation = projections::read_model("reconciliation")
        .unwrap()
        .render(&db)
        .await
        .unwrap();
    assert_eq!(
        reconciliation["reconciled"], true,
        "{step}: {reconciliation}"
    );
}

async fn the_whole_story_from_referral_to_refund_balances_to_the_halala(app: &TestApp) {
    let handlers = app.handlers().clone();
    let now = OffsetDateTime::now_utc();
    enroll(&handlers, "p-story", PartnerTier::Referral).await;
    refer(&handlers, "p-story", "noura@harbi.sa", now - Span::days(2)).await;
    assert_books_balance(app, "after the referral").await;

    // The lead books a demo through Calendly: captured from the booking, demo booked.
    let path = format!(
        "{}/tests/fixtures/calendly_invitee_created.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut booking: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    booking["payload"]["email"] = json!("noura@harbi.sa");
    booking["payload"]["name"] = json!("Noura Al-Harbi");
    let stamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    booking["created_at"] = json!(stamp);
    booking["payload"]["created_at"] = json!(stamp);
    let booked = app
        .post_calendly_webhook(&booking, now.unix_timestamp())
        .await;
    assert_eq!(booked.status, 200, "{}", booked.text);
    // The answer names the lead it touched: nothing is read out of `stream_id`.
    let lead_id = booked.body["touched"]["lead_id"]
        .as_str()
        .expect("the booking's lead")
        .to_owned();
    finance_reads::assert_touched(&booked.body, Some(&lead_id), None, None);
    let lead_stream = format!("lead-{lead_id}");
    assert_eq!(booked.body["stream_id"], lead_stream.as_str());
    handlers
        .leads
        .execute(envelope(
            &lead_id,
            LeadCommand::SendProposal {
                plan: Plan::Growth,
                at: now,
            },
        ))
        .await
        .unwrap();
    assert_books_balance(app, "after the proposal").await;

    let (invoice_id, total) = app.issue_invoice(&lead_id, Plan::Growth, None, now).await;
    assert_eq!(total, 344_885);
    assert_books_balance(app, "after the invoice").await;

    let paid = app
        .post_moyasar_webhook(&moyasar(
            "evt-story-paid",
            "payment_paid",
            "pay-story",
            total,
            0,
            &invoice_id,
        ))
        .await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    assert_eq!(paid.body["status"], "accepted", "{}", paid.text);
    finance_reads::assert_touched(
        &paid.body,
        Some(&lead_id),
        Some(&invoice_id),
        Some("pay-story"),
    );
    assert_books_balance(app, "after the payment").await;
    let view = finance_reads::invoice(app, &invoice_id).await;
    assert_eq!(view["status"], "paid", "{view}");
    finance_reads::assert_invoice(
        app,
        &invoice_id,
        "paid",
        ("pay-story", total, "paid", 0),
        &[],
    )
    .await;
    let commission = app
        .stream(&format!("commission-{}", commission_id_for(&invoice_id)))
        .await;
    assert_eq!(commission[0].event_type, "CommissionAccrued");
    assert_eq!(commission[0].payload["amount_halalas"], 29_990);
    assert_eq!(
        app.stream(&lead_stream).await.last().unwrap().event_type,
        "LeadPaid"
    );

    // Half is refunded first, then the rest: the invoice says so at each step.
    let half = 172_443;
    let partly = app
        .post_moyasar_webhook(&moyasar(
            "evt-story-partial-refund",
            "payment_refunded",
            "pay-story",
            total,
            half,
            &invoice_id,
        ))
        .await;
    assert_eq!(partly.status, 200, "{}", partly.text);
    finance_reads::assert_touched(
        &partly.body,
        Some(&lead_id),
        Some(&invoice_id),
        Some("pay-story"),
    );
    assert_books_balance(app, "after the partial refund").await;
    finance_reads::assert_invoice(
        app,
        &invoice_id,
        "partially_refunded",
        ("pay-story", total, "refunded", half),
        &[half],
    )
    .await;
    let refunded = app
        .post_moyasar_webhook(&moyasar(
            "evt-story-refund",
            "payment_refunded",
            "pay-story",
            total,
            total,
            &invoice_id,
        ))
        .await;
    assert_eq!(refunded.status, 200, "{}", refunded.text);
    assert_books_balance(app, "after the refund").await;
    finance_reads::assert_invoice(
        app,
        &invoice_id,
        "refunded",
        ("pay-story", total, "refunded", total),
        &[half, total - half],
    )
    .await;
    let invoice = app.stream(&format!("invoice-{invoice_id}")).await;
    let credit_notes: Vec<(Option<i64>, Option<i64>)> = invoice
        .iter()
        .filter(|e| e.event_type == "InvoiceRefunded")
        .map(|e| &e.payload["credit_note"])
        .map(|note| {
            (
                note["document_type_code"].as_i64(),
                note["total_halalas"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        credit_notes,
        [(Some(381), Some(half)), (Some(381), Some(total - half))]
    );
    let commission = app
        .stream(&format!("commission-{}", commission_id_for(&invoice_id)))
        .await;
    let clawed_back: i64 = commission
        .iter()
        .filter(|e| e.event_type == "CommissionClawedBack")
        .map(|e| e.payload["amount_halalas"].as_i64().unwrap())
        .sum();
    assert_eq!(clawed_back, -29_990);

    // Finance rejects what is left of the commission (nothing) with a reason; the commissions
    // routes show it, its history, and keep partners apart.
    let commission_id = commission_id_for(&invoice_id);
    let rejected = app
        .request(
            "POST",
            &format!("/api/commissions/{commission_id}/reject"),
            &[
                (
                    "Authorization",
                    format!("Bearer {}", crate::app::ADMIN_TOKEN),
                ),
                ("Content-Type", "application/json".into()),
            ],
            br#"{"reason": "the customer was refunded in full"}"#,
        )
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text);
    assert_books_balance(app, "after the rejection").await;
    enroll(&handlers, "p-other", PartnerTier::Referral).await;
    finance_reads::assert_commissions(app, "p-story", &commission_id, &invoice_id).await;

    // Last, as it leaves the books unreconciled: a payment for an invoice nobody issued.
    let mut stray = moyasar(
        "evt-story-stray",
        "payment_paid",
        "pay-stray",
        10_000,
        0,
        "no-such-invoice",
    );
    stray["data"]["invoice_id"] = json!("no-such-moyasar-invoice");
    finance_reads::assert_unknown_invoice_reported(app, &stray, "pay-stray").await;
}
