//! Reconciliation's open mismatch set is kept, not recomputed (issue 27): at every step of a
//! growing generated history, with mismatches planted on purpose (a partly paid invoice whose
//! due time the log's clock later passes, a stray payment, a payment whose Moyasar invoice is
//! linked only later, commissions on an unpaid invoice, a payout of two partners), the
//! maintained set, its counts and its pages equal the pure rules run over every fact from
//! scratch, on both engines; and a fold of the log cut into tiny batches writes the same rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use app::handlers::Handlers;
use domain::commission::CommissionCommand;
use domain::invoice::{Customer, InvoiceCommand, InvoiceLine, IssueInvoice, Seller};
use domain::payment::{PaymentCommand, PaymentStatus};
use domain::plan::Plan;
use projections::reconciliation::{self, Checked, Cursor, Mismatch, PageRequest, Reconciliation};
use projections::runtime::dump_table;
use projections::{Projection, Projector};
use time::{Duration as Span, OffsetDateTime};

use crate::app::{envelope, issue_through_sequence, SELLER_VAT};
use crate::helpers::TestDb;
use crate::history::{run_process_managers, run_projections, Generator};

crate::on_both_engines!(the_maintained_mismatch_set_equals_a_full_recomputation_at_every_step,);

/// Mismatches per page while paging through the set: small, so a step's set spans pages.
const PAGE: usize = 7;

async fn the_maintained_mismatch_set_equals_a_full_recomputation_at_every_step(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 41);
    generator.partners().await;
    let mut seen: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for (step, events) in [600_i64, 1_200, 1_800, 2_400].into_iter().enumerate() {
        generator.until(events).await;
        let found = assert_maintained_equals_recomputed(db, &format!("step {step}")).await;
        note_kinds(&mut seen, &found);
        if step > 0 {
            // Moyasar's invoice of the step before is linked now (to an invoice then canceled):
            // its payment, unmatched until now, names an invoice that never recorded it.
            link_moyasar_invoice(&handlers, step - 1, now(db).await).await;
        }
        if step < 3 {
            plant(&handlers, step, now(db).await).await;
        }
        run_process_managers(&handlers).await;
        run_projections(&handlers).await.unwrap();
        let found = assert_maintained_equals_recomputed(db, &format!("step {step}, planted")).await;
        let underpaid = format!("invoice-planted-underpaid-{step}");
        assert!(
            !found
                .iter()
                .any(|m| m.kind == "underpayment" && m.streams.contains(&underpaid)),
            "{underpaid} is not due yet"
        );
        note_kinds(&mut seen, &found);
    }

    // The partly paid invoice was not past due when planted, and became so as the clock moved
    // on through events that never touched it.
    let underpaid = &seen["invoice-planted-underpaid-0"];
    assert!(underpaid.contains("underpayment"), "{seen:#?}");
    let planted = &seen["payment-planted-by-moyasar-0"];
    for kind in ["payment_without_invoice", "payment_not_applied"] {
        assert!(planted.contains(kind), "{kind}: {seen:#?}");
    }
    let kinds: BTreeSet<&str> = seen.values().flatten().copied().collect();
    for kind in [
        "overpayment",
        "underpayment",
        "payment_without_invoice",
        "payment_not_applied",
        "commission_invoice_not_paid",
        "payout_mixes_partners",
    ] {
        assert!(kinds.contains(kind), "{kind} was planted: {kinds:?}");
    }
    assert_a_fold_in_tiny_batches_writes_the_same_rows(db).await;
    crate::projections::assert_rebuild_equals_live(db).await;
}

/// The maintained set (and its order), counts and pages against [`reconciliation::find_mismatches`]
/// over every fact; returns the set.
async fn assert_maintained_equals_recomputed(db: &TestDb, step: &str) -> Vec<Mismatch> {
    let sql = db.store.sql();
    let facts = reconciliation::load_facts(&sql).await.unwrap();
    let recomputed = reconciliation::find_mismatches(&facts);
    let maintained = reconciliation::mismatches(&sql).await.unwrap();
    assert_eq!(maintained, recomputed, "{step}: the maintained set");

    let first = reconciliation::report_page(&sql, &PageRequest::first(PAGE))
        .await
        .unwrap();
    let mut by_kind: BTreeMap<&'static str, i64> = BTreeMap::new();
    for mismatch in &recomputed {
        *by_kind.entry(mismatch.kind).or_default() += 1;
    }
    assert_eq!(first.by_kind, by_kind, "{step}: the counts by kind");
    assert_eq!(first.mismatch_count, recomputed.len(), "{step}");
    assert_eq!(first.reconciled, recomputed.is_empty(), "{step}");
    let checked = Checked {
        invoices: facts.invoices.len(),
        payments: facts.payments.len(),
        commissions: facts.commissions.len(),
    };
    assert_eq!(first.checked, checked, "{step}: the facts checked");

    let mut paged = first.mismatches.clone();
    let mut after = first.next_cursor.clone();
    while let Some(cursor) = after {
        let page = PageRequest {
            after: Some(Cursor::parse(&cursor).expect("a cursor the report gave")),
            limit: PAGE,
        };
        let page = reconciliation::report_page(&sql, &page).await.unwrap();
        assert!(!page.mismatches.is_empty() && page.mismatches.len() <= PAGE);
        assert_eq!(page.mismatch_count, recomputed.len());
        paged.extend(page.mismatches);
        after = page.next_cursor;
    }
    assert_eq!(paged, recomputed, "{step}: the pages in order");
    assert!(!recomputed.is_empty(), "{step}: mismatches were planted");
    recomputed
}

/// Stream -> every kind of mismatch that named it at some step.
fn note_kinds(seen: &mut BTreeMap<String, BTreeSet<&'static str>>, found: &[Mismatch]) {
    for mismatch in found {
        for stream in &mismatch.streams {
            seen.entry(stream.clone())
                .or_default()
                .insert(mismatch.kind);
        }
    }
}

/// The latest business time in the reconciliation's log.
async fn now(db: &TestDb) -> OffsetDateTime {
    let facts = reconciliation::load_facts(&db.store.sql()).await.unwrap();
    projections::from_micros(facts.now_us)
}

fn invoice(invoice_id: &str, at: OffsetDateTime) -> IssueInvoice {
    IssueInvoice {
        invoice_id: invoice_id.into(),
        customer: Customer {
            lead_id: format!("lead-{invoice_id}"),
            name: invoice_id.into(),
        },
        lines: vec![InvoiceLine {
            description: "Growth plan".into(),
            quantity: 1,
            unit_price_halalas: Plan::Growth.price_halalas(),
            plan: Some(Plan::Growth),
        }],
        issued_at: at,
        due_at: at + Span::days(2),
        seller: Seller {
            name: "Dealix".into(),
            vat_number: SELLER_VAT.into(),
        },
        moyasar_invoice_id: None,
    }
}

fn paid(
    payment_id: &str,
    invoice_id: Option<&str>,
    moyasar_invoice_id: Option<&str>,
    amount_halalas: i64,
    at: OffsetDateTime,
) -> PaymentCommand {
    PaymentCommand::RecordGatewayStatus {
        payment_id: payment_id.into(),
        invoice_id: invoice_id.map(str::to_owned),
        moyasar_invoice_id: moyasar_invoice_id.map(str::to_owned),
        status: PaymentStatus::Paid,
        amount_halalas,
        fee_halalas: amount_halalas / 50,
        captured_halalas: 0,
        refunded_halalas: 0,
        currency: "SAR".into(),
        at,
    }
}

/// Step `step`'s planted mismatches, at business time `at`.
async fn plant(handlers: &Arc<Handlers>, step: usize, at: OffsetDateTime) {
    // Paid half, due in two days: an underpayment once the clock passes its due time.
    let underpaid = format!("planted-underpaid-{step}");
    issue_through_sequence(handlers, invoice(&underpaid, at)).await;
    let payment_id = format!("planted-half-{step}");
    let half = paid(&payment_id, Some(&underpaid), None, 100_000, at);
    execute_payment(handlers, &payment_id, half).await;

    // Collected, naming an invoice nobody issued.
    let stray = format!("planted-stray-{step}");
    let command = paid(&stray, Some("never-issued"), None, 5_000, at);
    execute_payment(handlers, &stray, command).await;

    // Naming only a Moyasar invoice that is linked to ours at the next step.
    let linked_later = format!("planted-linked-later-{step}");
    issue_through_sequence(handlers, invoice(&linked_later, at)).await;
    let by_moyasar = format!("planted-by-moyasar-{step}");
    let moyasar_invoice_id = format!("planted-moyasar-{step}");
    let command = paid(&by_moyasar, None, Some(&moyasar_invoice_id), 7_000, at);
    execute_payment(handlers, &by_moyasar, command).await;

    // Two partners' commissions on the unpaid invoice, paid out under one payout.
    let payout_id = format!("planted-payout-{step}");
    for partner_id in ["p-referral", "p-certified"] {
        let commission_id = format!("planted-{partner_id}-{step}");
        let accrue = CommissionCommand::Accrue {
            commission_id: commission_id.clone(),
            partner_id: partner_id.into(),
            invoice_id: underpaid.clone(),
            lead_id: format!("lead-{underpaid}"),
            base_halalas: 100_000,
            rate_bps: 1_000,
            hold_days: 0,
            at,
        };
        let approve = CommissionCommand::Approve {
            actor: "finance".into(),
            at,
        };
        let pay_out = CommissionCommand::MarkPaidOut {
            payout_id: payout_id.clone(),
            at,
        };
        for command in [accrue, approve, pay_out] {
            handlers
                .commissions
                .execute(envelope(&commission_id, command))
                .await
                .unwrap();
        }
    }
}

async fn execute_payment(handlers: &Handlers, payment_id: &str, command: PaymentCommand) {
    handlers
        .payments
        .execute(envelope(payment_id, command))
        .await
        .unwrap();
}

/// Links step `step`'s Moyasar invoice to ours, then cancels ours before any process manager
/// could record the payment on it: the payment is matched now, and never applied.
async fn link_moyasar_invoice(handlers: &Handlers, step: usize, at: OffsetDateTime) {
    let link = InvoiceCommand::LinkMoyasarInvoice {
        moyasar_invoice_id: format!("planted-moyasar-{step}"),
        payment_url: format!("https://pay.example/planted-{step}"),
        at,
    };
    let cancel = InvoiceCommand::Cancel {
        reason: "replaced".into(),
        at,
    };
    let invoice_id = format!("planted-linked-later-{step}");
    for command in [link, cancel] {
        handlers
            .invoices
            .execute(envelope(&invoice_id, command))
            .await
            .unwrap();
    }
}

/// A fold of the whole log into a scratch database, seven events per batch: the same
/// mismatches and counts as the live projector's larger, differently cut batches.
async fn assert_a_fold_in_tiny_batches_writes_the_same_rows(db: &TestDb) {
    let scratch = adapters::sql::SqlDb::scratch().await.unwrap();
    Projector::new(db.store.clone(), Arc::new(Reconciliation))
        .with_db(scratch.clone())
        .with_batch_size(7)
        .catch_up()
        .await
        .unwrap();
    for table in Reconciliation.tables() {
        assert_eq!(
            dump_table(&db.store.sql(), table).await.unwrap(),
            dump_table(&scratch, table).await.unwrap(),
            "{table} folded seven events at a time"
        );
    }
}
