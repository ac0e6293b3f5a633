//! Reconciliation: invoices against payments against commissions, with every mismatch listed.
//!
//! The projection keeps plain facts, each from its own stream: invoices (totals, what was
//! recorded paid and refunded, status), the payments recorded against each invoice, gateway
//! payments (latest Moyasar status, amount, whether money was taken, refunded so far, the
//! invoice they name) and commissions (accrued, clawed back, adjusted, paid out). One pure
//! function, [`find_mismatches`], compares them (its rules in `rules.rs`, testable without a
//! database); the open mismatch set it gives, and its counts, are kept up to date in the same
//! transaction as the facts, re-checking only what each batch may have changed
//! ([`maintained`]), so a report reads one page of mismatches and a few counts however long
//! the history ([`report_page`]).
//!
//! Kinds of mismatch (each names the streams involved):
//!
//! - `invoice_paid_without_payment`: an invoice records a payment whose gateway payment was
//!   never collected (no `captured`/`paid`/`refunded` payment with that id).
//! - `payment_without_invoice`: a collected gateway payment that names no issued invoice.
//! - `payment_not_applied`: a collected gateway payment whose invoice exists but never recorded
//!   it (the invoice was already paid, canceled or expired, or the payment was only captured).
//! - `overpayment`: an invoice recorded more than its total.
//! - `underpayment`: an invoice partly paid and past its due date.
//! - `refund_mismatch`: what the gateway handed back for an invoice's payments differs from
//!   what the invoice's credit notes refunded.
//! - `commission_invoice_not_paid`: a live (not rejected) commission on an invoice that is not
//!   paid, or was never issued.
//! - `commission_not_clawed_back` / `commission_over_clawed_back`: the clawbacks of a live
//!   commission differ from its pro-rata share of the invoice's refunded base (full refund,
//!   full clawback) by more than rounding: one halala per refund.
//! - `payout_mixes_partners`: one payout id carries commissions of several partners.
//! - `payout_amount_mismatch`: a commission was paid out more or less than it netted then.
//!
//! There is no payout-batch event with its own total yet, so a payout is checked through its
//! commissions only. "Past due" is judged against the latest business time of any money event
//! in the log (never the wall clock), so a report is the same whenever it is computed.

use std::collections::{BTreeMap, BTreeSet};

use adapters::sql::{SqlDb, SqlRow, SqlTx};
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::commission::CommissionEvent;
use domain::invoice::{Invoice, InvoiceEvent};
use domain::payment::{Payment, PaymentEvent, PaymentStatus};
use domain::provider_reconciliation::ProviderReconciliation;
use serde::Serialize;
use serde_json::{json, Value};

use crate::ledger::MoneyEvent;
use crate::{micros, Projection, ProjectionError};

mod maintained;
pub mod provider;
mod report;
mod rules;

pub use report::{
    mismatches, report, report_page, Checked, Cursor, PageRequest, ReconciliationReport,
    DEFAULT_PAGE_MISMATCHES, MAX_PAGE_MISMATCHES,
};
pub use rules::{mismatches_of, Owner, Owners};

pub struct Reconciliation;

/// The `source` of a mismatch found among our own events.
pub const LEDGER_SOURCE: &str = "ledger";

/// One thing that does not reconcile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Mismatch {
    /// Who found it: `ledger` (our events against each other) or a payment provider
    /// (`moyasar`: its answers against our events, [`provider`]).
    pub source: String,
    pub kind: &'static str,
    /// The streams involved, sorted.
    pub streams: Vec<String>,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_halalas: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_halalas: Option<i64>,
    /// For a provider's finding: the Riyadh day it was found on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// For a provider's finding: the provider's payment id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
}

impl Mismatch {
    fn new(kind: &'static str, streams: impl IntoIterator<Item = String>, detail: String) -> Self {
        let streams: BTreeSet<String> = streams.into_iter().collect();
        Mismatch {
            source: LEDGER_SOURCE.to_owned(),
            kind,
            streams: streams.into_iter().collect(),
            detail,
            expected_halalas: None,
            actual_halalas: None,
            date: None,
            payment_id: None,
        }
    }

    fn amounts(mut self, expected_halalas: i64, actual_halalas: i64) -> Self {
        self.expected_halalas = Some(expected_halalas);
        self.actual_halalas = Some(actual_halalas);
        self
    }
}

/// An invoice as its stream tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceFact {
    pub stream_id: String,
    pub moyasar_invoice_id: Option<String>,
    pub subtotal_halalas: i64,
    pub total_halalas: i64,
    pub due_at_us: i64,
    /// `issued`, `partially_paid`, `paid`, `canceled` or `expired`.
    pub status: String,
    pub paid_halalas: i64,
    pub refunded_halalas: i64,
    pub refunded_base_halalas: i64,
    pub refunds: i64,
    /// Payment id -> amount recorded.
    pub payments: BTreeMap<String, i64>,
}

/// A gateway payment as its stream tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFact {
    pub stream_id: String,
    pub invoice_id: Option<String>,
    pub moyasar_invoice_id: Option<String>,
    pub status: String,
    pub amount_halalas: i64,
    pub collected: bool,
    pub refunded_halalas: i64,
}

/// A commission as its stream tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommissionFact {
    pub stream_id: String,
    pub partner_id: String,
    pub invoice_id: String,
    pub status: String,
    pub accrued_halalas: i64,
    pub clawed_back_halalas: i64,
    pub adjusted_halalas: i64,
    pub payout_id: Option<String>,
    pub paid_out_halalas: i64,
    pub net_at_payout_halalas: Option<i64>,
}

/// Everything the comparison reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub invoices: BTreeMap<String, InvoiceFact>,
    pub payments: BTreeMap<String, PaymentFact>,
    pub commissions: BTreeMap<String, CommissionFact>,
    /// The latest business time in the log, Unix microseconds.
    pub now_us: i64,
}

fn invoice_stream(invoice_id: &str) -> String {
    domain::ids::stream_id(<Invoice as cqrs_es::Aggregate>::TYPE, invoice_id)
}

impl Facts {
    /// The issued invoice a payment names: our id first, then Moyasar's (looked up in
    /// `by_moyasar_id`, Moyasar's invoice id -> ours).
    fn invoice_of<'a>(
        &'a self,
        payment: &PaymentFact,
        by_moyasar_id: &BTreeMap<&str, &'a str>,
    ) -> Option<&'a str> {
        if let Some(ours) = &payment.invoice_id {
            if let Some((id, _)) = self.invoices.get_key_value(ours) {
                return Some(id);
            }
        }
        by_moyasar_id
            .get(payment.moyasar_invoice_id.as_deref()?)
            .copied()
    }

    fn payment_stream(&self, payment_id: &str) -> String {
        self.payments.get(payment_id).map_or_else(
            || domain::ids::stream_id(<Payment as cqrs_es::Aggregate>::TYPE, payment_id),
            |p| p.stream_id.clone(),
        )
    }
}

/// Every mismatch in `facts`, sorted by kind and streams.
pub fn find_mismatches(facts: &Facts) -> Vec<Mismatch> {
    let mut found: Vec<Mismatch> = mismatches_of(facts, &Owners::every(facts))
        .into_iter()
        .map(|(_, mismatch)| mismatch)
        .collect();
    found.sort();
    found
}

const INVOICE_COLUMNS: &str =
    "SELECT invoice_id, stream_id, moyasar_invoice_id, subtotal_halalas, total_halalas, due_at_us, \
     status, paid_halalas, refunded_halalas, refunded_base_halalas, refunds FROM reconciliation_invoices";

/// An invoice's fact (without its payments) from a row of [`INVOICE_COLUMNS`].
fn invoice_fact(row: &SqlRow) -> Result<(String, InvoiceFact), ProjectionError> {
    let fact = InvoiceFact {
        stream_id: row.text(1)?,
        moyasar_invoice_id: row.opt_text(2)?,
        subtotal_halalas: row.i64(3)?,
        total_halalas: row.i64(4)?,
        due_at_us: row.i64(5)?,
        status: row.text(6)?,
        paid_halalas: row.i64(7)?,
        refunded_halalas: row.i64(8)?,
        refunded_base_halalas: row.i64(9)?,
        refunds: row.i64(10)?,
        payments: BTreeMap::new(),
    };
    Ok((row.text(0)?, fact))
}

const INVOICE_PAYMENT_COLUMNS: &str =
    "SELECT invoice_id, payment_id, amount_halalas FROM reconciliation_invoice_payments";

/// `(invoice id, payment id, amount)` from a row of [`INVOICE_PAYMENT_COLUMNS`].
fn invoice_payment(row: &SqlRow) -> Result<(String, String, i64), ProjectionError> {
    Ok((row.text(0)?, row.text(1)?, row.i64(2)?))
}

const PAYMENT_COLUMNS: &str =
    "SELECT payment_id, stream_id, invoice_id, moyasar_invoice_id, status, amount_halalas, collected, \
     refunded_halalas FROM reconciliation_payments";

fn payment_fact(row: &SqlRow) -> Result<(String, PaymentFact), ProjectionError> {
    let fact = PaymentFact {
        stream_id: row.text(1)?,
        invoice_id: row.opt_text(2)?,
        moyasar_invoice_id: row.opt_text(3)?,
        status: row.text(4)?,
        amount_halalas: row.i64(5)?,
        collected: row.bool(6)?,
        refunded_halalas: row.i64(7)?,
    };
    Ok((row.text(0)?, fact))
}

const COMMISSION_COLUMNS: &str =
    "SELECT commission_id, stream_id, partner_id, invoice_id, status, accrued_halalas, \
     clawed_back_halalas, adjusted_halalas, payout_id, paid_out_halalas, net_at_payout_halalas \
     FROM reconciliation_commissions";

fn commission_fact(row: &SqlRow) -> Result<(String, CommissionFact), ProjectionError> {
    let fact = CommissionFact {
        stream_id: row.text(1)?,
        partner_id: row.text(2)?,
        invoice_id: row.text(3)?,
        status: row.text(4)?,
        accrued_halalas: row.i64(5)?,
        clawed_back_halalas: row.i64(6)?,
        adjusted_halalas: row.i64(7)?,
        payout_id: row.opt_text(8)?,
        paid_out_halalas: row.i64(9)?,
        net_at_payout_halalas: row.opt_i64(10)?,
    };
    Ok((row.text(0)?, fact))
}

/// The log's clock: the latest business time of any money event folded.
const CLOCK: &str = "SELECT at_us FROM reconciliation_clock WHERE name = 'latest'";

/// Reads every fact back from the tables: what a from-scratch comparison reads (the
/// maintained set is checked against it).
pub async fn load_facts(db: &SqlDb) -> Result<Facts, ProjectionError> {
    let mut facts = Facts::default();
    for row in db.fetch_all(INVOICE_COLUMNS, &[]).await? {
        let (id, invoice) = invoice_fact(&row)?;
        facts.invoices.insert(id, invoice);
    }
    for row in db.fetch_all(INVOICE_PAYMENT_COLUMNS, &[]).await? {
        let (invoice_id, payment_id, amount_halalas) = invoice_payment(&row)?;
        if let Some(invoice) = facts.invoices.get_mut(&invoice_id) {
            invoice.payments.insert(payment_id, amount_halalas);
        }
    }
    for row in db.fetch_all(PAYMENT_COLUMNS, &[]).await? {
        let (id, payment) = payment_fact(&row)?;
        facts.payments.insert(id, payment);
    }
    for row in db.fetch_all(COMMISSION_COLUMNS, &[]).await? {
        let (id, commission) = commission_fact(&row)?;
        facts.commissions.insert(id, commission);
    }
    facts.now_us = db
        .fetch_optional(CLOCK, &[])
        .await?
        .map(|row| row.i64(0))
        .transpose()?
        .unwrap_or(0);
    Ok(facts)
}

/// The business time an event happened at.
fn occurred_at(event: &MoneyEvent) -> time::OffsetDateTime {
    match event {
        MoneyEvent::Invoice(event) => match event {
            InvoiceEvent::InvoiceIssued { issued_at, .. } => *issued_at,
            InvoiceEvent::PaymentRecorded { recorded_at, .. } => *recorded_at,
            InvoiceEvent::InvoicePaid { paid_at, .. } => *paid_at,
            InvoiceEvent::InvoiceOverpaid { overpaid_at, .. } => *overpaid_at,
            InvoiceEvent::InvoiceRefunded { refunded_at, .. } => *refunded_at,
            InvoiceEvent::InvoiceCanceled { canceled_at, .. } => *canceled_at,
            InvoiceEvent::InvoiceExpired { expired_at, .. } => *expired_at,
            InvoiceEvent::MoyasarInvoiceLinked { linked_at, .. } => *linked_at,
        },
        MoneyEvent::Payment(event) => match event {
            PaymentEvent::PaymentInitiated {
                initiated_at: at, ..
            }
            | PaymentEvent::PaymentAuthorized {
                authorized_at: at, ..
            }
            | PaymentEvent::PaymentCaptured {
                captured_at: at, ..
            }
            | PaymentEvent::PaymentPaid { paid_at: at, .. }
            | PaymentEvent::PaymentFailed { failed_at: at, .. }
            | PaymentEvent::PaymentRefunded {
                refunded_at: at, ..
            }
            | PaymentEvent::PaymentVoided { voided_at: at, .. }
            | PaymentEvent::PaymentVerified {
                verified_at: at, ..
            } => *at,
        },
        MoneyEvent::Payout(event) => match event {
            domain::payout::PayoutEvent::PayoutCreated { created_at, .. } => *created_at,
            domain::payout::PayoutEvent::PayoutPaid { paid_at, .. } => *paid_at,
            domain::payout::PayoutEvent::PayoutCanceled { canceled_at, .. } => *canceled_at,
        },
        MoneyEvent::Commission(event) => match event {
            CommissionEvent::CommissionAccrued { accrued_at: at, .. }
            | CommissionEvent::CommissionApproved {
                approved_at: at, ..
            }
            | CommissionEvent::CommissionRejected {
                rejected_at: at, ..
            }
            | CommissionEvent::CommissionPaidOut {
                paid_out_at: at, ..
            }
            | CommissionEvent::CommissionClawedBack {
                clawed_back_at: at, ..
            }
            | CommissionEvent::CommissionAdjusted {
                adjusted_at: at, ..
            } => *at,
        },
    }
}

/// One money event's rows.
async fn apply_money(
    tx: &mut SqlTx,
    stream_id: &str,
    money: MoneyEvent,
) -> Result<(), ProjectionError> {
    match money {
        MoneyEvent::Invoice(event) => apply_invoice(tx, stream_id, event).await,
        MoneyEvent::Payment(event) => apply_payment(tx, stream_id, event).await,
        MoneyEvent::Commission(event) => apply_commission(tx, stream_id, event).await,
        // Payout batches are checked through the `CommissionPaidOut` events they cause.
        MoneyEvent::Payout(_) => Ok(()),
    }
}

async fn apply_invoice(
    tx: &mut SqlTx,
    stream_id: &str,
    event: InvoiceEvent,
) -> Result<(), ProjectionError> {
    match event {
        InvoiceEvent::InvoiceIssued {
            invoice_id,
            customer,
            subtotal_halalas,
            total_halalas,
            due_at,
            moyasar_invoice_id,
            ..
        } => {
            tx.write(
                "INSERT INTO reconciliation_invoices (invoice_id, stream_id, lead_id, moyasar_invoice_id, \
                 subtotal_halalas, total_halalas, due_at_us, status, paid_halalas, refunded_halalas, \
                 refunded_base_halalas, refunds) VALUES (?, ?, ?, ?, ?, ?, ?, 'issued', 0, 0, 0, 0)",
                &[
                    invoice_id.into(),
                    stream_id.into(),
                    customer.lead_id.into(),
                    moyasar_invoice_id.into(),
                    subtotal_halalas.into(),
                    total_halalas.into(),
                    micros(due_at).into(),
                ],
            )
            .await?;
        }
        InvoiceEvent::PaymentRecorded {
            invoice_id,
            payment_id,
            amount_halalas,
            paid_halalas,
            ..
        } => {
            tx.write(
                "INSERT INTO reconciliation_invoice_payments (invoice_id, payment_id, amount_halalas) \
                 VALUES (?, ?, ?) ON CONFLICT (invoice_id, payment_id) DO NOTHING",
                &[
                    invoice_id.as_str().into(),
                    payment_id.into(),
                    amount_halalas.into(),
                ],
            )
            .await?;
            tx.write(
                "UPDATE reconciliation_invoices SET paid_halalas = ?, \
                 status = CASE WHEN status = 'issued' THEN 'partially_paid' ELSE status END WHERE invoice_id = ?",
                &[paid_halalas.into(), invoice_id.into()],
            )
            .await?;
        }
        InvoiceEvent::InvoicePaid { invoice_id, .. } => {
            set_invoice_status(tx, &invoice_id, "paid").await?;
        }
        InvoiceEvent::InvoiceRefunded {
            invoice_id,
            refunded_halalas,
            credit_note,
            ..
        } => {
            tx.write(
                "UPDATE reconciliation_invoices SET refunded_halalas = ?, \
                 refunded_base_halalas = refunded_base_halalas + ?, refunds = refunds + 1 WHERE invoice_id = ?",
                &[
                    refunded_halalas.into(),
                    credit_note.subtotal_halalas.into(),
                    invoice_id.into(),
                ],
            )
            .await?;
        }
        InvoiceEvent::InvoiceCanceled { invoice_id, .. } => {
            set_invoice_status(tx, &invoice_id, "canceled").await?;
        }
        InvoiceEvent::InvoiceExpired { invoice_id, .. } => {
            set_invoice_status(tx, &invoice_id, "expired").await?;
        }
        InvoiceEvent::MoyasarInvoiceLinked {
            invoice_id,
            moyasar_invoice_id,
            ..
        } => {
            tx.write(
                "UPDATE reconciliation_invoices SET moyasar_invoice_id = ? WHERE invoice_id = ?",
                &[moyasar_invoice_id.into(), invoice_id.into()],
            )
            .await?;
        }
        InvoiceEvent::InvoiceOverpaid { .. } => {}
    }
    Ok(())
}

async fn set_invoice_status(
    tx: &mut SqlTx,
    invoice_id: &str,
    status: &str,
) -> Result<(), ProjectionError> {
    tx.write(
        "UPDATE reconciliation_invoices SET status = ? WHERE invoice_id = ?",
        &[status.into(), invoice_id.into()],
    )
    .await?;
    Ok(())
}

async fn apply_payment(
    tx: &mut SqlTx,
    stream_id: &str,
    event: PaymentEvent,
) -> Result<(), ProjectionError> {
    let status = event.status();
    let collected = matches!(
        status,
        PaymentStatus::Captured | PaymentStatus::Paid | PaymentStatus::Refunded
    );
    let payment = event.payment();
    tx.write(
        "INSERT INTO reconciliation_payments (payment_id, stream_id, invoice_id, moyasar_invoice_id, status, \
         amount_halalas, collected, refunded_halalas) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (payment_id) DO UPDATE SET \
         invoice_id = COALESCE(excluded.invoice_id, reconciliation_payments.invoice_id), \
         moyasar_invoice_id = COALESCE(excluded.moyasar_invoice_id, reconciliation_payments.moyasar_invoice_id), \
         status = excluded.status, amount_halalas = excluded.amount_halalas, \
         collected = reconciliation_payments.collected OR excluded.collected, \
         refunded_halalas = excluded.refunded_halalas",
        &[
            payment.payment_id.as_str().into(),
            stream_id.into(),
            payment.invoice_id.clone().into(),
            payment.moyasar_invoice_id.clone().into(),
            status.as_str().into(),
            payment.amount_halalas.into(),
            collected.into(),
            payment.refunded_halalas.into(),
        ],
    )
    .await?;
    Ok(())
}

async fn apply_commission(
    tx: &mut SqlTx,
    stream_id: &str,
    event: CommissionEvent,
) -> Result<(), ProjectionError> {
    match event {
        CommissionEvent::CommissionAccrued {
            commission_id,
            partner_id,
            invoice_id,
            amount_halalas,
            ..
        } => {
            tx.write(
                "INSERT INTO reconciliation_commissions (commission_id, stream_id, partner_id, invoice_id, status, \
                 accrued_halalas, clawed_back_halalas, adjusted_halalas, payout_id, paid_out_halalas, \
                 net_at_payout_halalas) VALUES (?, ?, ?, ?, 'held', ?, 0, 0, ?, 0, ?)",
                &[
                    commission_id.into(),
                    stream_id.into(),
                    partner_id.into(),
                    invoice_id.into(),
                    amount_halalas.into(),
                    None::<String>.into(),
                    None::<i64>.into(),
                ],
            )
            .await?;
        }
        CommissionEvent::CommissionApproved { commission_id, .. } => {
            set_commission_status(tx, &commission_id, "approved").await?;
        }
        CommissionEvent::CommissionRejected { commission_id, .. } => {
            set_commission_status(tx, &commission_id, "rejected").await?;
        }
        CommissionEvent::CommissionPaidOut {
            commission_id,
            payout_id,
            amount_halalas,
            ..
        } => {
            tx.write(
                "UPDATE reconciliation_commissions SET status = 'paid_out', payout_id = ?, \
                 paid_out_halalas = paid_out_halalas + ?, \
                 net_at_payout_halalas = accrued_halalas + clawed_back_halalas + adjusted_halalas \
                 WHERE commission_id = ?",
                &[
                    payout_id.into(),
                    amount_halalas.into(),
                    commission_id.into(),
                ],
            )
            .await?;
        }
        CommissionEvent::CommissionClawedBack {
            commission_id,
            amount_halalas,
            ..
        } => {
            tx.write(
                "UPDATE reconciliation_commissions SET clawed_back_halalas = clawed_back_halalas + ? \
                 WHERE commission_id = ?",
                &[amount_halalas.into(), commission_id.into()],
            )
            .await?;
        }
        CommissionEvent::CommissionAdjusted {
            commission_id,
            amount_halalas,
            ..
        } => {
            tx.write(
                "UPDATE reconciliation_commissions SET adjusted_halalas = adjusted_halalas + ? \
                 WHERE commission_id = ?",
                &[amount_halalas.into(), commission_id.into()],
            )
            .await?;
        }
    }
    Ok(())
}

async fn set_commission_status(
    tx: &mut SqlTx,
    commission_id: &str,
    status: &str,
) -> Result<(), ProjectionError> {
    tx.write(
        "UPDATE reconciliation_commissions SET status = ? WHERE commission_id = ?",
        &[status.into(), commission_id.into()],
    )
    .await?;
    Ok(())
}

/// One event of a batch, decoded.
enum Folded {
    Run(domain::provider_reconciliation::ProviderReconciliationEvent),
    Money(String, Box<MoneyEvent>),
}

#[async_trait]
impl Projection for Reconciliation {
    fn name(&self) -> &'static str {
        "reconciliation"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "reconciliation_invoices",
            "reconciliation_invoice_payments",
            "reconciliation_payments",
            "reconciliation_commissions",
            "reconciliation_clock",
            "reconciliation_mismatches",
            "reconciliation_counts",
            "provider_payments",
            "provider_reconciliation_runs",
            "provider_reconciliation_findings",
        ]
    }

    fn folds_money(&self) -> bool {
        true
    }

    /// Each money event's rows, the clock moved once for the batch to its latest event, then
    /// the open mismatch set brought up to date for what the batch may have changed
    /// ([`maintained`]: it reads what the facts written are about to change first).
    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut folded = Vec::with_capacity(events.len());
        let mut touched = maintained::Touched::default();
        for event in events {
            if event.stream_type == <ProviderReconciliation as cqrs_es::Aggregate>::TYPE {
                folded.push(Folded::Run(crate::decode(event)?));
            } else if let Some(money) = MoneyEvent::from_recorded(event)? {
                touched.note(&money);
                folded.push(Folded::Money(event.stream_id.clone(), Box::new(money)));
            }
        }
        let before = maintained::before(tx, &touched).await?;
        let mut latest = None;
        for event in folded {
            let (stream_id, money) = match event {
                Folded::Run(run) => {
                    provider::apply_run(tx, run).await?;
                    continue;
                }
                Folded::Money(stream_id, money) => (stream_id, *money),
            };
            if let MoneyEvent::Payment(payment) = &money {
                provider::apply_payment(tx, payment, occurred_at(&money)).await?;
            }
            let at = micros(occurred_at(&money));
            latest = latest.max(Some(at));
            apply_money(tx, &stream_id, money).await?;
        }
        if let Some(at) = latest {
            tx.write(
                "INSERT INTO reconciliation_clock (name, at_us) VALUES ('latest', ?) ON CONFLICT (name) DO UPDATE \
                 SET at_us = CASE WHEN excluded.at_us > reconciliation_clock.at_us THEN excluded.at_us \
                 ELSE reconciliation_clock.at_us END",
                &[at.into()],
            )
            .await?;
        }
        let now_us = latest.map_or(before.now_us, |at| at.max(before.now_us));
        maintained::refresh(tx, &touched, &before, now_us).await
    }

    /// The whole [`ReconciliationReport`]: every mismatch, no page.
    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
        Ok(json!(report(db).await?))
    }
}

/// Our invoice linked to Moyasar invoice `moyasar_invoice_id` (given at issue, or linked once
/// revledger created that Moyasar invoice), as far as this read model has seen (the greatest
/// invoice id, should one Moyasar id ever have been given to two invoices: a deterministic
/// answer). Unindexed: one pass over the invoice facts, a few thousand rows.
pub async fn invoice_of_moyasar_invoice(
    db: &SqlDb,
    moyasar_invoice_id: &str,
) -> Result<Option<String>, ProjectionError> {
    let row = db
        .fetch_optional(
            "SELECT invoice_id FROM reconciliation_invoices WHERE moyasar_invoice_id = ? \
             ORDER BY invoice_id DESC LIMIT 1",
            &[moyasar_invoice_id.into()],
        )
        .await?;
    Ok(row.map(|row| row.text(0)).transpose()?)
}

#[cfg(test)]
mod tests;
