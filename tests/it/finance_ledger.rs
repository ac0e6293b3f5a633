//! The double-entry journal and reconciliation, on both engines: over a generated history
//! (balanced, clearing back at zero, receivables equal to what invoices still ask, equal to
//! a rebuild; only the planted mismatches) and over small hand-made histories driven through
//! the real handlers, each with one thing wrong or nothing wrong.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use adapters::store::{Checkpoint, EventStore, MAX_READ_BATCH};
use app::handlers::Handlers;
use domain::commission::CommissionCommand;
use domain::invoice::{Customer, InvoiceCommand, InvoiceEvent, InvoiceLine, IssueInvoice, Seller};
use domain::payment::{PaymentCommand, PaymentStatus};
use domain::plan::Plan;
use domain::sequence::SequenceCommand;
use projections::ledger::{self, Ledger, MoneyEvent};
use projections::reconciliation::{self, Reconciliation};
use projections::runtime::{as_of, dump_table};
use projections::{AsOf, Projection, Projector};
use serde_json::Value;
use time::macros::datetime;
use time::{Duration as Span, OffsetDateTime};

use crate::app::{envelope, issue_through_sequence, SELLER_VAT};
use crate::helpers::TestDb;
use crate::history::{event_types, Generator};

crate::on_both_engines!(
    a_generated_history_posts_a_balanced_journal_equal_to_its_rebuild,
    a_generated_history_reconciles_but_for_the_mismatches_it_plants,
    a_paid_invoice_with_its_gateway_payment_reconciles,
    a_payment_for_an_unknown_invoice_is_one_mismatch_naming_the_payment_stream,
    a_refunded_invoice_whose_commission_was_not_clawed_back_is_one_mismatch_naming_both_streams,
    a_full_refund_with_a_full_clawback_reconciles_and_leaves_only_the_gateway_fee,
);

const T0: OffsetDateTime = datetime!(2026-09-01 09:00 UTC);

/// Catches the journal and reconciliation up to everything committed (and nothing else, so
/// the hand-made histories do not depend on other read models or process managers).
pub(crate) async fn project(store: &Arc<dyn EventStore>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let finance: [Arc<dyn Projection>; 2] = [Arc::new(Ledger), Arc::new(Reconciliation)];
    for projection in finance {
        let projector = Projector::new(store.clone(), projection);
        loop {
            projector.catch_up().await.unwrap();
            if projector.is_caught_up().await.unwrap() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "finance did not catch up"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

async fn trial_balance(db: &TestDb) -> Value {
    Ledger.render(&db.store.sql()).await.unwrap()
}

/// Account -> balance (debit minus credit) from a rendered trial balance.
fn balances(trial_balance: &Value) -> BTreeMap<String, i64> {
    trial_balance["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["account"].as_str().unwrap().to_owned(),
                a["balance_halalas"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn assert_balanced(trial_balance: &Value) {
    assert_eq!(trial_balance["balanced"], true, "{trial_balance:#}");
    assert_eq!(
        trial_balance["total_debit_halalas"], trial_balance["total_credit_halalas"],
        "{trial_balance:#}"
    );
    assert_eq!(trial_balance["unbalanced_entries"], 0);
    let net: i64 = balances(trial_balance).values().sum();
    assert_eq!(net, 0, "balances add up to zero");
}

pub(crate) async fn every_event(
    store: &Arc<dyn EventStore>,
) -> Vec<adapters::store::RecordedEvent> {
    let mut events = Vec::new();
    let mut after = Checkpoint::START;
    loop {
        let batch = store.read_committed(after, MAX_READ_BATCH).await.unwrap();
        let Some(last) = batch.last() else {
            return events;
        };
        after = Checkpoint::after(last);
        events.extend(batch);
    }
}

/// What each customer still owes, from the invoice events alone: totals of invoices neither
/// canceled nor expired, minus every payment recorded.
async fn receivables_from_invoices(store: &Arc<dyn EventStore>) -> BTreeMap<String, i64> {
    let mut lead_of: BTreeMap<String, String> = BTreeMap::new();
    let mut owed: BTreeMap<String, i64> = BTreeMap::new();
    for event in every_event(store).await {
        let Some(MoneyEvent::Invoice(event)) = MoneyEvent::from_recorded(&event).unwrap() else {
            continue;
        };
        match event {
            InvoiceEvent::InvoiceIssued {
                invoice_id,
                customer,
                total_halalas,
                ..
            } => {
                *owed.entry(customer.lead_id.clone()).or_default() += total_halalas;
                lead_of.insert(invoice_id, customer.lead_id);
            }
            InvoiceEvent::PaymentRecorded {
                invoice_id,
                amount_halalas,
                ..
            } => *owed.entry(lead_of[&invoice_id].clone()).or_default() -= amount_halalas,
            InvoiceEvent::InvoiceCanceled { invoice_id, .. }
            | InvoiceEvent::InvoiceExpired { invoice_id, .. } => {
                // Only an invoice with nothing paid can be canceled or expire.
                let total = issued_total(store, &invoice_id).await;
                *owed.entry(lead_of[&invoice_id].clone()).or_default() -= total;
            }
            _ => {}
        }
    }
    owed
}

async fn issued_total(store: &Arc<dyn EventStore>, invoice_id: &str) -> i64 {
    let handlers = Handlers::new(store.clone());
    let (invoice, _) = handlers.invoices.load_aggregate(invoice_id).await.unwrap();
    invoice.total_halalas()
}

async fn a_generated_history_posts_a_balanced_journal_equal_to_its_rebuild(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 31);
    generator.partners().await;
    generator.until(3_000).await;
    project(&db.store).await;

    let trial = trial_balance(db).await;
    assert_balanced(&trial);
    let balances = balances(&trial);
    assert_eq!(balances.get("gateway_clearing").copied().unwrap_or(0), 0);
    assert!(!balances.contains_key("suspense"), "{trial:#}");
    for account in ["cash", "gateway_fees", "vat_payable", "unapplied_payments"] {
        assert!(balances.contains_key(account), "{account} was posted to");
    }
    assert!(balances.keys().any(|a| a.starts_with("revenue:")));
    assert!(balances
        .keys()
        .any(|a| a.starts_with("commission_payable:")));

    let expected = receivables_from_invoices(&db.store).await;
    let posted: BTreeMap<&str, i64> = balances
        .iter()
        .filter_map(|(account, balance)| {
            Some((account.strip_prefix("accounts_receivable:")?, *balance))
        })
        .collect();
    assert!(
        expected.len() > 100,
        "{} customers invoiced",
        expected.len()
    );
    for (lead_id, owed) in &expected {
        assert_eq!(
            posted.get(lead_id.as_str()).copied().unwrap_or(0),
            *owed,
            "receivable of {lead_id}"
        );
    }
    assert!(posted.keys().all(|lead| expected.contains_key(*lead)));

    // An account statement pages from the newest line and carries the running balance.
    let statement = ledger::account(&db.store.sql(), "gateway_clearing", 10)
        .await
        .unwrap();
    let lines = statement["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 10);
    assert_eq!(statement["truncated"], true);
    assert_eq!(lines.last().unwrap()["balance_halalas"], 0);
    assert_eq!(statement["balance_halalas"], 0);

    // The tables equal a fold from zero into a scratch database.
    for projection in [
        Arc::new(Ledger) as Arc<dyn Projection>,
        Arc::new(Reconciliation),
    ] {
        let rebuilt = as_of(
            db.store.clone(),
            projection.clone(),
            AsOf::Position(i64::MAX),
        )
        .await
        .unwrap();
        for table in projection.tables() {
            let live = dump_table(&db.store.sql(), table).await.unwrap();
            // Runs against a payment provider exist only once one was recorded (not in this
            // generated history); `moyasar_sweep` checks their rebuild.
            let only_with_provider_runs = table.starts_with("provider_reconciliation_");
            assert!(
                !live.is_empty() || only_with_provider_runs,
                "{table} has rows"
            );
            assert_eq!(
                live,
                dump_table(&rebuilt, table).await.unwrap(),
                "{table} equals its rebuild"
            );
        }
        assert_eq!(
            projection.render(&db.store.sql()).await.unwrap(),
            projection.render(&rebuilt).await.unwrap(),
            "{} renders the same from its rebuild",
            projection.name()
        );
    }
}

/// Mismatch kinds the generator creates on purpose: overpayments (5 % of payments pay 1 SAR
/// too much), and commissions left as they were when their invoice was refunded (or clawed
/// back without a refund), whichever the commission process managers of the day leave.
const PLANTED: [&str; 3] = [
    "overpayment",
    "commission_not_clawed_back",
    "commission_over_clawed_back",
];

async fn a_generated_history_reconciles_but_for_the_mismatches_it_plants(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 37);
    generator.partners().await;
    generator.until(3_000).await;
    project(&db.store).await;

    let found = reconciliation::mismatches(&db.store.sql()).await.unwrap();
    let rendered = Reconciliation.render(&db.store.sql()).await.unwrap();
    assert_eq!(rendered["mismatch_count"], found.len());
    assert_eq!(rendered["reconciled"], found.is_empty());
    for mismatch in &found {
        assert!(PLANTED.contains(&mismatch.kind), "unplanted {mismatch:#?}");
        assert!(!mismatch.detail.is_empty());
        assert!(!mismatch.streams.is_empty());
        for stream in &mismatch.streams {
            let events = db.store.read_stream(stream, 1, 1).await.unwrap();
            assert!(!events.is_empty(), "{stream} named by {mismatch:?} exists");
        }
    }
    let overpaid = event_types(&handlers)
        .await
        .get("InvoiceOverpaid")
        .copied()
        .unwrap_or(0);
    assert!(overpaid > 0, "the generator planted overpayments");
    let overpayments = found.iter().filter(|m| m.kind == "overpayment").count();
    assert_eq!(overpayments as u64, overpaid, "one per overpaid invoice");
    for overpayment in found.iter().filter(|m| m.kind == "overpayment") {
        assert_eq!(
            overpayment.actual_halalas.unwrap() - overpayment.expected_halalas.unwrap(),
            100,
            "the generator overpays by 1 SAR"
        );
        assert!(overpayment
            .streams
            .iter()
            .any(|s| s.starts_with("payment-")));
        assert!(overpayment
            .streams
            .iter()
            .any(|s| s.starts_with("invoice-")));
    }
}

fn growth_invoice(invoice_id: &str, lead_id: &str) -> IssueInvoice {
    IssueInvoice {
        invoice_id: invoice_id.into(),
        customer: Customer {
            lead_id: lead_id.into(),
            name: lead_id.into(),
        },
        lines: vec![InvoiceLine {
            description: "Growth plan".into(),
            quantity: 1,
            unit_price_halalas: Plan::Growth.price_halalas(),
            plan: Some(Plan::Growth),
        }],
        issued_at: T0,
        due_at: T0 + Span::days(14),
        seller: Seller {
            name: "Dealix".into(),
            vat_number: SELLER_VAT.into(),
        },
        moyasar_invoice_id: None,
    }
}

/// A gateway report of payment `payment_id` for `invoice_id`, fee 2 %.
fn gateway(
    payment_id: &str,
    invoice_id: &str,
    status: PaymentStatus,
    amount: i64,
    refunded: i64,
) -> PaymentCommand {
    PaymentCommand::RecordGatewayStatus {
        payment_id: payment_id.into(),
        invoice_id: Some(invoice_id.into()),
        moyasar_invoice_id: None,
        status,
        amount_halalas: amount,
        fee_halalas: amount / 50,
        captured_halalas: 0,
        refunded_halalas: refunded,
        currency: "SAR".into(),
        at: T0 + Span::hours(1),
    }
}

/// The gateway reports the payment paid and the invoice records it (what the
/// `payments_to_invoices` process manager does), without running any process manager.
async fn pay(handlers: &Handlers, payment_id: &str, invoice_id: &str, amount: i64) {
    let paid = gateway(payment_id, invoice_id, PaymentStatus::Paid, amount, 0);
    handlers
        .payments
        .execute(envelope(payment_id, paid))
        .await
        .unwrap();
    let record = InvoiceCommand::RecordPayment {
        payment_id: payment_id.into(),
        amount_halalas: amount,
        at: T0 + Span::hours(1),
    };
    handlers
        .invoices
        .execute(envelope(invoice_id, record))
        .await
        .unwrap();
}

/// The gateway refunds `delta` more (`refunded` in total) and the invoice issues the credit
/// note for it.
async fn refund(
    handlers: &Handlers,
    (payment_id, invoice_id): (&str, &str),
    amount: i64,
    delta: i64,
    refunded: i64,
) {
    let report = gateway(
        payment_id,
        invoice_id,
        PaymentStatus::Refunded,
        amount,
        refunded,
    );
    handlers
        .payments
        .execute(envelope(payment_id, report))
        .await
        .unwrap();
    let refund_id = format!("{payment_id}:refund:{refunded}");
    let at = T0 + Span::days(2);
    let allocate = SequenceCommand::AllocateCreditNote {
        invoice_id: invoice_id.into(),
        refund_id: refund_id.clone(),
        amount_halalas: delta,
        reason: "customer left".into(),
        at,
    };
    handlers
        .sequences
        .execute(envelope(SELLER_VAT, allocate))
        .await
        .unwrap();
    let (sequence, _) = handlers.sequences.load_aggregate(SELLER_VAT).await.unwrap();
    let (icv, previous_hash, _) = sequence.allocation(&refund_id).unwrap();
    let command = InvoiceCommand::Refund {
        refund_id: refund_id.clone(),
        amount_halalas: delta,
        reason: "customer left".into(),
        credit_note_icv: icv,
        credit_note_previous_hash: previous_hash.to_owned(),
        at,
    };
    handlers
        .invoices
        .execute(envelope(invoice_id, command))
        .await
        .unwrap();
}

async fn accrue(handlers: &Handlers, commission_id: &str, invoice_id: &str, lead_id: &str) {
    let accrue = CommissionCommand::Accrue {
        commission_id: commission_id.into(),
        partner_id: "partner-1".into(),
        invoice_id: invoice_id.into(),
        lead_id: lead_id.into(),
        base_halalas: Plan::Growth.price_halalas(),
        rate_bps: 1_000,
        hold_days: 30,
        at: T0 + Span::hours(2),
    };
    handlers
        .commissions
        .execute(envelope(commission_id, accrue))
        .await
        .unwrap();
}

async fn a_paid_invoice_with_its_gateway_payment_reconciles(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    issue_through_sequence(&handlers, growth_invoice("inv-1", "lead-1")).await;
    pay(&handlers, "pay-1", "inv-1", 344_885).await;
    project(&db.store).await;

    let report = Reconciliation.render(&db.store.sql()).await.unwrap();
    assert_eq!(report["reconciled"], true, "{report:#}");
    assert_eq!(report["mismatches"], serde_json::json!([]));
    let trial = trial_balance(db).await;
    assert_balanced(&trial);
    let balances = balances(&trial);
    assert_eq!(balances["accounts_receivable:lead-1"], 0);
    assert_eq!(balances["revenue:growth"], -299_900);
    assert_eq!(balances["vat_payable"], -44_985);
    assert_eq!(balances["gateway_clearing"], 0);
    assert_eq!(balances["gateway_fees"], 6_897);
    assert_eq!(balances["cash"], 344_885 - 6_897);
    assert_eq!(balances["unapplied_payments"], 0);
}

async fn a_payment_for_an_unknown_invoice_is_one_mismatch_naming_the_payment_stream(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let paid = gateway(
        "pay-stray",
        "inv-never-issued",
        PaymentStatus::Paid,
        10_000,
        0,
    );
    handlers
        .payments
        .execute(envelope("pay-stray", paid))
        .await
        .unwrap();
    project(&db.store).await;

    let found = reconciliation::mismatches(&db.store.sql()).await.unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].kind, "payment_without_invoice");
    assert_eq!(found[0].streams, ["payment-pay-stray"]);
    assert!(
        found[0].detail.contains("inv-never-issued"),
        "{}",
        found[0].detail
    );
    // The money is in the bank and owed to nobody yet: unapplied.
    let balances = balances(&trial_balance(db).await);
    assert_eq!(balances["unapplied_payments"], -10_000);
    assert_eq!(balances["gateway_clearing"], 0);
}

async fn a_refunded_invoice_whose_commission_was_not_clawed_back_is_one_mismatch_naming_both_streams(
    db: &TestDb,
) {
    let handlers = Handlers::new(db.store.clone());
    issue_through_sequence(&handlers, growth_invoice("inv-2", "lead-2")).await;
    pay(&handlers, "pay-2", "inv-2", 344_885).await;
    accrue(&handlers, "commission-2", "inv-2", "lead-2").await;
    project(&db.store).await;
    assert!(reconciliation::mismatches(&db.store.sql())
        .await
        .unwrap()
        .is_empty());

    refund(&handlers, ("pay-2", "inv-2"), 344_885, 344_885, 344_885).await;
    project(&db.store).await;
    let found = reconciliation::mismatches(&db.store.sql()).await.unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].kind, "commission_not_clawed_back");
    assert_eq!(
        found[0].streams,
        ["commission-commission-2", "invoice-inv-2"]
    );
    assert_eq!(found[0].expected_halalas, Some(-29_990));
    assert_eq!(found[0].actual_halalas, Some(0));
    assert_balanced(&trial_balance(db).await);
}

async fn a_full_refund_with_a_full_clawback_reconciles_and_leaves_only_the_gateway_fee(
    db: &TestDb,
) {
    let handlers = Handlers::new(db.store.clone());
    issue_through_sequence(&handlers, growth_invoice("inv-3", "lead-3")).await;
    pay(&handlers, "pay-3", "inv-3", 344_885).await;
    accrue(&handlers, "commission-3", "inv-3", "lead-3").await;
    refund(&handlers, ("pay-3", "inv-3"), 344_885, 172_442, 172_442).await;
    let partial = CommissionCommand::ClawBack {
        refund_id: "pay-3:refund:172442".into(),
        refunded_base_halalas: 149_950,
        invoice_base_halalas: 299_900,
        at: T0 + Span::days(2),
    };
    handlers
        .commissions
        .execute(envelope("commission-3", partial))
        .await
        .unwrap();
    project(&db.store).await;
    let found = reconciliation::mismatches(&db.store.sql()).await.unwrap();
    assert!(found.is_empty(), "a pro-rata clawback matches: {found:#?}");

    refund(&handlers, ("pay-3", "inv-3"), 344_885, 172_443, 344_885).await;
    let rest = CommissionCommand::ClawBack {
        refund_id: "pay-3:refund:344885".into(),
        refunded_base_halalas: 149_950,
        invoice_base_halalas: 299_900,
        at: T0 + Span::days(3),
    };
    handlers
        .commissions
        .execute(envelope("commission-3", rest))
        .await
        .unwrap();
    project(&db.store).await;
    let report = Reconciliation.render(&db.store.sql()).await.unwrap();
    assert_eq!(report["reconciled"], true, "{report:#}");

    let trial = trial_balance(db).await;
    assert_balanced(&trial);
    let balances = balances(&trial);
    let fee = 344_885 / 50;
    assert_eq!(balances["cash"], -fee, "everything went back but the fee");
    assert_eq!(balances["gateway_fees"], fee);
    assert_eq!(balances["gateway_clearing"], 0);
    assert_eq!(balances["accounts_receivable:lead-3"], 0);
    assert_eq!(balances["unapplied_payments"], 0);
    // Revenue and its refund, VAT charged and given back, commission earned and clawed back.
    assert_eq!(balances["revenue:growth"] + balances["refunds"], 0);
    assert_eq!(balances["vat_payable"], 0);
    assert_eq!(balances["commission_expense"], 0);
    assert_eq!(balances["commission_payable:partner-1"], 0);
}
