//! Read models and process managers over a generated history, on both engines: rebuild equals
//! live, crashes around the commit lose and double nothing, as-of equals what was live then,
//! and every process-manager effect happens once across a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapters::sql::SqlValue;
use app::handlers::Handlers;
use app::process::{archive_cold_leads, process_managers, ProcessRunner};
use projections::runtime::{as_of, dump_table, FaultPoint};
use projections::{AsOf, Projector};
use serde_json::Value;
use time::macros::datetime;
use time::Duration as Span;

use crate::app::envelope;
use crate::helpers::TestDb;
use crate::history::{event_types, run_process_managers, run_projections, Generator};

crate::on_both_engines!(
    a_rebuild_equals_the_live_read_models_after_ten_thousand_events_of_every_type,
    a_crash_before_or_after_a_projection_commit_loses_and_doubles_nothing,
    replay_as_of_a_middle_position_equals_the_live_read_models_captured_then,
    every_process_manager_effect_happens_once_across_a_crash_mid_burst,
    a_payment_before_its_invoice_is_recorded_once_the_invoice_is_issued,
    a_payment_and_its_invoice_in_one_batch_are_recorded_once,
    leads_silent_for_fourteen_days_are_archived_cold_once,
    the_third_activated_customer_makes_a_referral_partner_certified,
    the_funnel_counts_conversion_and_time_in_stage,
    indexes_an_older_rebuild_deferred_are_restored,
);

/// Every read model's secondary indexes, as the catalog defines them.
async fn read_model_indexes(
    db: &adapters::sql::SqlDb,
) -> Vec<projections::deferred_indexes::DeferredIndex> {
    let tables: Vec<&str> = projections::read_models()
        .iter()
        .flat_map(|projection| projection.tables().iter().copied())
        .collect();
    let mut tx = db.begin_derived().await.unwrap();
    let indexes = projections::deferred_indexes::secondary_indexes(&mut tx, &tables)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    indexes
}

async fn deferred_rows(db: &adapters::sql::SqlDb) -> i64 {
    let row = db
        .fetch_optional("SELECT COUNT(*) FROM deferred_indexes", &[])
        .await
        .unwrap()
        .unwrap();
    row.i64(0).unwrap()
}

async fn indexes_an_older_rebuild_deferred_are_restored(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 5);
    generator.partners().await;
    generator.until(2_000).await;
    let sql = db.store.sql();
    let live = live_tables(&sql).await;
    let indexes = read_model_indexes(&sql).await;
    assert!(!indexes.is_empty());

    // Rebuilds before the swapping one dropped the indexes in place and recorded them; one
    // that stopped half way left them so.
    for index in &indexes {
        sql.execute(
            "INSERT INTO deferred_indexes (name, table_name, definition) VALUES (?, ?, ?)",
            &[
                index.name.as_str().into(),
                index.table.as_str().into(),
                index.definition.as_str().into(),
            ],
        )
        .await
        .unwrap();
        sql.execute(&format!("DROP INDEX \"{}\"", index.name), &[])
            .await
            .unwrap();
    }
    assert!(read_model_indexes(&sql).await.is_empty());

    // The read models' worker creates them again when it starts, once.
    let restored = projections::deferred_indexes::restore(&sql).await.unwrap();
    assert_eq!(restored, indexes.len());
    assert_eq!(read_model_indexes(&sql).await, indexes);
    assert_eq!(deferred_rows(&sql).await, 0);
    assert_eq!(
        projections::deferred_indexes::restore(&sql).await.unwrap(),
        0
    );
    run_projections(&handlers).await.unwrap();
    assert_tables_equal(&live, &live_tables(&sql).await, "after the restore");
}

type Tables = BTreeMap<String, Vec<Vec<SqlValue>>>;

async fn live_tables(db: &adapters::sql::SqlDb) -> Tables {
    let mut tables = Tables::new();
    for projection in projections::read_models() {
        for table in projection.tables() {
            tables.insert(table.to_string(), dump_table(db, table).await.unwrap());
        }
    }
    tables
}

/// Every read model rebuilt from position zero into a scratch database equals the live tables
/// (the events each money read model set aside included).
pub async fn assert_rebuild_equals_live(db: &TestDb) {
    let mut live = live_tables(&db.store.sql()).await;
    live.insert(
        "quarantined_events".into(),
        dump_table(&db.store.sql(), "quarantined_events")
            .await
            .unwrap(),
    );
    let scratch = adapters::sql::SqlDb::scratch().await.unwrap();
    for projection in projections::read_models() {
        Projector::new(db.store.clone(), projection)
            .with_db(scratch.clone())
            .catch_up()
            .await
            .unwrap();
    }
    let mut rebuilt = live_tables(&scratch).await;
    rebuilt.insert(
        "quarantined_events".into(),
        dump_table(&scratch, "quarantined_events").await.unwrap(),
    );
    assert_tables_equal(&live, &rebuilt, "rebuilt into a scratch database");
}

async fn rendered(handlers: &Arc<Handlers>, db: &adapters::sql::SqlDb) -> BTreeMap<String, Value> {
    let mut states = BTreeMap::new();
    for projection in projections::read_models() {
        states.insert(
            projection.name().to_owned(),
            projection.render(db).await.unwrap(),
        );
    }
    let _ = handlers;
    states
}

fn assert_tables_equal(left: &Tables, right: &Tables, what: &str) {
    for (table, rows) in left {
        let other = &right[table];
        assert_eq!(
            rows.len(),
            other.len(),
            "{what}: {table} has {} rows, expected {}",
            other.len(),
            rows.len()
        );
        for (index, (a, b)) in rows.iter().zip(other).enumerate() {
            assert_eq!(a, b, "{what}: {table} row {index} differs");
        }
    }
}

async fn a_rebuild_equals_the_live_read_models_after_ten_thousand_events_of_every_type(
    db: &TestDb,
) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 7);
    generator.partners().await;
    // Projections tail the log while it grows, as they do in `serve`.
    for target in [2_500, 5_000, 7_500, 10_000] {
        generator.until(target).await;
        run_projections(&handlers).await.unwrap();
    }
    let types = event_types(&handlers).await;
    for expected in [
        "LeadCaptured",
        "LeadQualified",
        "DemoBooked",
        "DemoCanceled",
        "DemoNoShowRecorded",
        "ProposalSent",
        "LeadPaid",
        "OnboardingStarted",
        "LeadActivated",
        "LeadArchived",
        "LeadReopened",
        "FollowUpLogged",
        "DocumentAllocated",
        "InvoiceIssued",
        "PaymentRecorded",
        "InvoicePaid",
        "InvoiceOverpaid",
        "InvoiceRefunded",
        "InvoiceCanceled",
        "InvoiceExpired",
        "MoyasarInvoiceLinked",
        "PaymentInitiated",
        "PaymentAuthorized",
        "PaymentCaptured",
        "PaymentPaid",
        "PaymentFailed",
        "PaymentRefunded",
        "PaymentVoided",
        "PaymentVerified",
        "PartnerApplied",
        "PartnerEnrolled",
        "PartnerTierChanged",
        "PartnerSuspended",
        "PartnerReinstated",
        "PartnerCustomerActivated",
        "StrategicSlotTaken",
        "StrategicSlotReleased",
        "CommissionAccrued",
        "CommissionApproved",
        "CommissionRejected",
        "CommissionPaidOut",
        "CommissionClawedBack",
        "CommissionAdjusted",
    ] {
        assert!(
            types.contains_key(expected),
            "the history has no {expected}: {types:?}"
        );
    }
    let total: u64 = types.values().sum();
    assert!(total >= 10_000, "{total} events");

    let live = live_tables(&db.store.sql()).await;
    assert!(live["crm_board"].len() > 500 && live["audit_log"].len() as u64 == total);

    // Rebuilt into a scratch database from position zero...
    let head = db.store.head_position().await.unwrap();
    let scratch = as_of(
        db.store.clone(),
        projections::read_model("audit_log").unwrap(),
        AsOf::Position(head),
    )
    .await
    .unwrap();
    for projection in projections::read_models()
        .into_iter()
        .filter(|p| p.name() != "audit_log")
    {
        Projector::new(db.store.clone(), projection)
            .with_db(scratch.clone())
            .catch_up()
            .await
            .unwrap();
    }
    assert_tables_equal(&live, &live_tables(&scratch).await, "scratch rebuild");

    // ...and in place, each projector reset and caught up alone.
    for projection in projections::read_models() {
        let projector = Projector::new(db.store.clone(), projection);
        projector.reset().await.unwrap();
        projector.catch_up().await.unwrap();
    }
    assert_tables_equal(
        &live,
        &live_tables(&db.store.sql()).await,
        "in-place rebuild",
    );

    // ...and in one pass with 5,000-event batches into a scratch file, swapped in at the
    // end, as `revledger rebuild` does; each member also again in batches of 7, which split
    // nearly every lead's events across batches.
    let indexes = read_model_indexes(&db.store.sql()).await;
    assert!(indexes.len() >= 10, "{indexes:?}");
    projections::Rebuild::start(db.store.clone(), projections::read_models())
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_tables_equal(
        &live,
        &live_tables(&db.store.sql()).await,
        "single-pass rebuild",
    );
    assert_eq!(
        read_model_indexes(&db.store.sql()).await,
        indexes,
        "indexes after the rebuild"
    );
    assert_eq!(deferred_rows(&db.store.sql()).await, 0);
    for projection in projections::read_models() {
        let projector = Projector::new(db.store.clone(), projection).with_batch_size(7);
        projector.reset().await.unwrap();
        projector.catch_up().await.unwrap();
    }
    assert_tables_equal(
        &live,
        &live_tables(&db.store.sql()).await,
        "rebuild in batches of 7",
    );
    let seals = projections::audit_log::verify_seals(db.store.as_ref(), &db.store.sql())
        .await
        .unwrap();
    assert!(seals.first_break.is_none(), "{seals:?}");
    assert!(seals.seals_checked >= 40, "{seals:?}");
}

async fn a_crash_before_or_after_a_projection_commit_loses_and_doubles_nothing(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 11);
    generator.partners().await;
    generator.until(1_500).await;
    for point in [FaultPoint::BeforeCommit, FaultPoint::AfterCommit] {
        for projection in projections::read_models() {
            let name = projection.name();
            let crashes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counter = crashes.clone();
            // Crash on the third batch only, then run on like a restarted process.
            let projector = Projector::new(db.store.clone(), projection.clone())
                .with_batch_size(100)
                .with_fault(Arc::new(move |at| {
                    at == point && counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2
                }));
            projector.reset().await.unwrap();
            let mut failures = 0;
            loop {
                match projector.step().await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(projections::ProjectionError::Injected(_)) => failures += 1,
                    Err(other) => panic!("{name}: {other}"),
                }
            }
            assert_eq!(failures, 1, "{name}: the fault fired once");
            let (_, applied) = projector.checkpoint().await.unwrap();
            assert_eq!(
                applied,
                db.store.head_position().await.unwrap(),
                "{name} ({point:?}): every event applied once"
            );
            let clean = as_of(
                db.store.clone(),
                projection.clone(),
                AsOf::Position(i64::MAX),
            )
            .await
            .unwrap();
            for table in projection.tables() {
                assert_eq!(
                    dump_table(&db.store.sql(), table).await.unwrap(),
                    dump_table(&clean, table).await.unwrap(),
                    "{name} ({point:?}): {table} equals a clean fold"
                );
            }
        }
    }
}

async fn replay_as_of_a_middle_position_equals_the_live_read_models_captured_then(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 23);
    generator.partners().await;
    generator.until(1_500).await;
    run_projections(&handlers).await.unwrap();
    let middle = db.store.head_position().await.unwrap();
    let captured = rendered(&handlers, &db.store.sql()).await;
    let captured_at = time::OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    generator.until(3_000).await;
    run_projections(&handlers).await.unwrap();
    assert_ne!(
        captured,
        rendered(&handlers, &db.store.sql()).await,
        "the history moved on"
    );

    for moment in [AsOf::Position(middle), AsOf::Time(captured_at)] {
        for projection in projections::read_models() {
            let then = as_of(db.store.clone(), projection.clone(), moment)
                .await
                .unwrap();
            assert_eq!(
                projection.render(&then).await.unwrap(),
                captured[projection.name()],
                "{} as of {moment:?}",
                projection.name()
            );
        }
    }
}

async fn stream_types(db: &TestDb, stream_id: &str) -> Vec<String> {
    db.store
        .read_stream(stream_id, 1, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn every_process_manager_effect_happens_once_across_a_crash_mid_burst(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 5);
    generator.partners().await;
    generator.until(800).await;
    let before = event_types(&handlers).await;

    // Replay every process manager from zero, crashing each twice mid-batch before its
    // checkpoint moves, then running on: nothing may be appended twice.
    for process in process_managers() {
        let name = process.name();
        db.store
            .sql()
            .execute(
                "DELETE FROM projection_checkpoints WHERE name = ?",
                &[format!("process:{name}").into()],
            )
            .await
            .unwrap();
        for crash_at in [37, 5] {
            let crashing =
                ProcessRunner::new(handlers.clone(), process.clone()).crashing_after(crash_at);
            while crashing.step().await.is_ok() {}
        }
    }
    run_process_managers(&handlers).await;
    assert_eq!(
        before,
        event_types(&handlers).await,
        "a replay with crashes appended nothing new"
    );
    // And each invoice records each payment once, each paid lead is paid once.
    let invoices = db
        .store
        .sql()
        .fetch_all(
            "SELECT DISTINCT stream_id FROM events WHERE stream_type = 'invoice'",
            &[],
        )
        .await
        .unwrap();
    for row in invoices {
        let stream = row.text(0).unwrap();
        let types = stream_types(db, &stream).await;
        assert!(
            types.iter().filter(|t| *t == "PaymentRecorded").count() <= 1,
            "{stream}: {types:?}"
        );
        assert!(
            types.iter().filter(|t| *t == "InvoicePaid").count() <= 1,
            "{stream}: {types:?}"
        );
    }
    let paid_leads = db.store.sql().fetch_all("SELECT stream_id, COUNT(*) FROM events WHERE event_type = 'LeadPaid' GROUP BY stream_id", &[]).await.unwrap();
    assert!(!paid_leads.is_empty());
    for row in paid_leads {
        assert_eq!(row.i64(1).unwrap(), 1, "{} paid once", row.text(0).unwrap());
    }
}

async fn a_payment_before_its_invoice_is_recorded_once_the_invoice_is_issued(db: &TestDb) {
    payment_then_invoice(db, true).await;
}

/// The payment process manager reacts to the payment and the invoice it waits for in one
/// step: the payment is parked and released within it, and nothing stays parked.
async fn a_payment_and_its_invoice_in_one_batch_are_recorded_once(db: &TestDb) {
    payment_then_invoice(db, false).await;
    assert_eq!(parked_payments(db).await, 0);
}

/// How many payments wait for their invoice.
async fn parked_payments(db: &TestDb) -> i64 {
    db.store
        .sql()
        .fetch_optional("SELECT COUNT(*) FROM pm_parked_payments", &[])
        .await
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap()
}

/// A payment naming only its Moyasar invoice, then the invoice that carries that id; the
/// process managers react in between when `react_between`.
async fn payment_then_invoice(db: &TestDb, react_between: bool) {
    use domain::payment::{PaymentCommand, PaymentStatus};
    use domain::plan::Plan;
    let handlers = Handlers::new(db.store.clone());
    let at = datetime!(2026-10-01 10:00 UTC);
    let capture = domain::lead::LeadCommand::Capture {
        lead_id: "lead-early".into(),
        name: "Early Payer".into(),
        company: None,
        email: Some("early@example.sa".into()),
        phone: None,
        source: "landing_page".into(),
        partner_id: None,
        utm: None,
        owner: None,
        at,
    };
    handlers
        .leads
        .execute(envelope("lead-early", capture))
        .await
        .unwrap();
    handlers
        .leads
        .execute(envelope(
            "lead-early",
            domain::lead::LeadCommand::SendProposal {
                plan: Plan::Growth,
                at,
            },
        ))
        .await
        .unwrap();
    let pay = PaymentCommand::RecordGatewayStatus {
        payment_id: "pay-early".into(),
        invoice_id: None,
        moyasar_invoice_id: Some("moy-early".into()),
        status: PaymentStatus::Paid,
        amount_halalas: 344_885,
        fee_halalas: 1_000,
        captured_halalas: 0,
        refunded_halalas: 0,
        currency: "SAR".into(),
        at,
    };
    handlers
        .payments
        .execute(envelope("pay-early", pay))
        .await
        .unwrap();
    if react_between {
        run_process_managers(&handlers).await;
        assert_eq!(
            parked_payments(db).await,
            1,
            "the payment waits for its invoice"
        );
    }

    let app_issue = domain::invoice::IssueInvoice {
        invoice_id: "invoice-early".into(),
        customer: domain::invoice::Customer {
            lead_id: "lead-early".into(),
            name: "Early".into(),
        },
        lines: vec![domain::invoice::InvoiceLine {
            description: "Growth".into(),
            quantity: 1,
            unit_price_halalas: Plan::Growth.price_halalas(),
            plan: Some(Plan::Growth),
        }],
        issued_at: at + Span::minutes(5),
        due_at: at + Span::days(14),
        seller: domain::invoice::Seller {
            name: "Dealix".into(),
            vat_number: crate::app::SELLER_VAT.into(),
        },
        moyasar_invoice_id: Some("moy-early".into()),
    };
    crate::app::issue_through_sequence(&handlers, app_issue).await;
    run_process_managers(&handlers).await;
    run_process_managers(&handlers).await;
    let types = stream_types(db, "invoice-invoice-early").await;
    assert_eq!(types, ["InvoiceIssued", "PaymentRecorded", "InvoicePaid"]);
    assert_eq!(
        stream_types(db, "lead-lead-early")
            .await
            .last()
            .map(String::as_str),
        Some("LeadPaid")
    );
}

async fn leads_silent_for_fourteen_days_are_archived_cold_once(db: &TestDb) {
    use domain::lead::LeadCommand;
    let handlers = Handlers::new(db.store.clone());
    let t0 = datetime!(2026-09-01 09:00 UTC);
    for (lead, responded_on_day) in [("silent", None), ("answered", Some(10))] {
        let capture = LeadCommand::Capture {
            lead_id: lead.into(),
            name: lead.into(),
            company: None,
            email: Some(format!("{lead}@example.sa")),
            phone: None,
            source: "landing_page".into(),
            partner_id: None,
            utm: None,
            owner: None,
            at: t0,
        };
        handlers
            .leads
            .execute(envelope(lead, capture))
            .await
            .unwrap();
        if let Some(day) = responded_on_day {
            let follow_up = LeadCommand::LogFollowUp {
                channel: domain::lead::FollowUpChannel::Phone,
                note: "interested".into(),
                responded: true,
                at: t0 + Span::days(day),
            };
            handlers
                .leads
                .execute(envelope(lead, follow_up))
                .await
                .unwrap();
        }
    }
    run_projections(&handlers).await.unwrap();
    assert_eq!(
        archive_cold_leads(&handlers, t0 + Span::days(13))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        archive_cold_leads(&handlers, t0 + Span::days(14))
            .await
            .unwrap(),
        1
    );
    // A sweep before the board caught up sees the same lead again: it is not archived twice.
    assert_eq!(
        archive_cold_leads(&handlers, t0 + Span::days(15))
            .await
            .unwrap(),
        0
    );
    run_projections(&handlers).await.unwrap();
    let board = projections::read_model("crm_board")
        .unwrap()
        .render(&db.store.sql())
        .await
        .unwrap();
    let silent = board["leads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lead_id"] == "silent")
        .unwrap()
        .clone();
    assert_eq!(
        (silent["stage"].as_str(), silent["archived_reason"].as_str()),
        (Some("archived"), Some("cold"))
    );
    assert_eq!(
        stream_types(db, "lead-silent")
            .await
            .iter()
            .filter(|t| *t == "LeadArchived")
            .count(),
        1
    );
    assert_eq!(
        stream_types(db, "lead-answered").await,
        ["LeadCaptured", "FollowUpLogged"]
    );
}

async fn the_third_activated_customer_makes_a_referral_partner_certified(db: &TestDb) {
    use domain::lead::LeadCommand;
    use domain::partner::{PartnerCommand, PartnerTier};
    let handlers = Handlers::new(db.store.clone());
    let at = datetime!(2026-09-01 09:00 UTC);
    let enroll = PartnerCommand::Enroll {
        partner_id: "p1".into(),
        name: "P1".into(),
        email: "p1@partners.sa".into(),
        tier: PartnerTier::Referral,
        at,
    };
    handlers
        .partners
        .execute(envelope("p1", enroll))
        .await
        .unwrap();
    let mut generator = Generator::new(handlers.clone(), 3);
    let _ = &mut generator;
    for n in 0..3 {
        let lead = format!("ref-{n}");
        let capture = LeadCommand::Capture {
            lead_id: lead.clone(),
            name: lead.clone(),
            company: None,
            email: Some(format!("{lead}@example.sa")),
            phone: None,
            source: "partner".into(),
            partner_id: Some("p1".into()),
            utm: None,
            owner: None,
            at,
        };
        handlers
            .leads
            .execute(envelope(&lead, capture))
            .await
            .unwrap();
        let (invoice_id, total) = issue_for(&handlers, &lead, at).await;
        pay(&handlers, &format!("pay-{n}"), &invoice_id, total, at).await;
        run_process_managers(&handlers).await;
        handlers
            .leads
            .execute(envelope(&lead, LeadCommand::StartOnboarding { at }))
            .await
            .unwrap();
        handlers
            .leads
            .execute(envelope(&lead, LeadCommand::Activate { at }))
            .await
            .unwrap();
        run_process_managers(&handlers).await;
    }
    let types = stream_types(db, "partner-p1").await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "PartnerCustomerActivated")
            .count(),
        3,
        "{types:?}"
    );
    assert_eq!(types.last().map(String::as_str), Some("PartnerTierChanged"));
    let (partner, _) = handlers.partners.load_aggregate("p1").await.unwrap();
    assert_eq!(partner.tier(), Some(PartnerTier::Certified));
}

async fn issue_for(
    handlers: &Arc<Handlers>,
    lead: &str,
    at: time::OffsetDateTime,
) -> (String, i64) {
    use domain::plan::Plan;
    let invoice_id = format!("inv-{lead}");
    let issue = domain::invoice::IssueInvoice {
        invoice_id: invoice_id.clone(),
        customer: domain::invoice::Customer {
            lead_id: lead.into(),
            name: lead.into(),
        },
        lines: vec![domain::invoice::InvoiceLine {
            description: "Starter".into(),
            quantity: 1,
            unit_price_halalas: Plan::Starter.price_halalas(),
            plan: Some(Plan::Starter),
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
    (invoice_id, invoice.total_halalas())
}

async fn pay(
    handlers: &Arc<Handlers>,
    payment_id: &str,
    invoice_id: &str,
    amount: i64,
    at: time::OffsetDateTime,
) {
    use domain::payment::{PaymentCommand, PaymentStatus};
    let pay = PaymentCommand::RecordGatewayStatus {
        payment_id: payment_id.into(),
        invoice_id: Some(invoice_id.into()),
        moyasar_invoice_id: None,
        status: PaymentStatus::Paid,
        amount_halalas: amount,
        fee_halalas: 100,
        captured_halalas: 0,
        refunded_halalas: 0,
        currency: "SAR".into(),
        at,
    };
    handlers
        .payments
        .execute(envelope(payment_id, pay))
        .await
        .unwrap();
}

async fn the_funnel_counts_conversion_and_time_in_stage(db: &TestDb) {
    use domain::lead::LeadCommand;
    let handlers = Handlers::new(db.store.clone());
    let t0 = datetime!(2026-11-02 09:00 UTC); // a Monday: ISO week 2026-W45
    for (n, qualify_after_hours) in [(1, Some(2)), (2, Some(4)), (3, Some(6)), (4, None)] {
        let lead = format!("f-{n}");
        let capture = LeadCommand::Capture {
            lead_id: lead.clone(),
            name: lead.clone(),
            company: None,
            email: Some(format!("{lead}@example.sa")),
            phone: None,
            source: if n % 2 == 0 {
                "calendly".into()
            } else {
                "landing_page".into()
            },
            partner_id: (n == 1).then(|| "p9".into()),
            utm: None,
            owner: None,
            at: t0,
        };
        handlers
            .leads
            .execute(envelope(&lead, capture))
            .await
            .unwrap();
        if let Some(hours) = qualify_after_hours {
            handlers
                .leads
                .execute(envelope(
                    &lead,
                    LeadCommand::Qualify {
                        at: t0 + Span::hours(hours),
                    },
                ))
                .await
                .unwrap();
        }
    }
    let book = LeadCommand::BookDemo {
        booking_id: "b1".into(),
        scheduled_for: t0 + Span::days(2),
        at: t0 + Span::days(1),
    };
    handlers.leads.execute(envelope("f-1", book)).await.unwrap();
    run_projections(&handlers).await.unwrap();
    let funnel = projections::read_model("funnel")
        .unwrap()
        .render(&db.store.sql())
        .await
        .unwrap();
    assert_eq!(funnel["leads"], 4);
    let stage = |name: &str| {
        funnel["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == name)
            .unwrap()["leads"]
            .clone()
    };
    assert_eq!(
        (stage("new"), stage("qualified"), stage("demo_booked")),
        (1.into(), 2.into(), 1.into())
    );
    let first = &funnel["conversion"][0];
    assert_eq!(
        (
            first["from"].as_str(),
            first["reached_from"].as_i64(),
            first["reached_to"].as_i64(),
            first["rate_bps"].as_i64()
        ),
        (Some("new"), Some(4), Some(3), Some(7_500))
    );
    assert_eq!(funnel["conversion"][1]["rate_bps"], 3_333);
    // Completed stays in `new`: 2 h, 4 h, 6 h -> median 4 h.
    assert_eq!(
        funnel["median_seconds_in_stage"]["new"]["median_seconds"],
        4 * 3_600
    );
    assert_eq!(funnel["by_week"][0]["key"], "2026-W45");
    let sources: Vec<&str> = funnel["by_source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["calendly", "landing_page"]);
    assert!(funnel["by_partner"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["key"] == "p9" && p["leads"] == 1));
}
