//! The double-entry journal: every money-moving event posted as a balanced journal entry.
//!
//! The posting rules are one pure function, [`postings`]: an event (decoded into a
//! [`MoneyEvent`]) and the little the journal must remember across events ([`Known`]: who owes
//! each invoice and how it was posted, how much of each payment was collected and at what fee)
//! give the entries. The projection only loads that memory from its tables, calls
//! [`postings`], writes the entries and stores what the event adds to the memory
//! ([`memory_of`]). So the rules can be checked, by proptest, without a database.
//!
//! # Accounts
//!
//! | account | kind | holds |
//! |---|---|---|
//! | `accounts_receivable:<lead_id>` | asset | what a customer owes; negative is a customer credit (overpayment) |
//! | `revenue:<plan>`, `revenue:other` | revenue | invoice lines before VAT, by the plan they sell |
//! | `vat_payable` | liability | output VAT invoiced minus VAT given back on credit notes |
//! | `gateway_clearing` | asset | money the gateway took that has not been settled to us yet |
//! | `gateway_fees` | expense | the gateway's fees |
//! | `cash` | asset | money in the bank |
//! | `unapplied_payments` | liability | money received and not yet applied to an invoice (or handed back and not yet credited) |
//! | `refunds` | contra-revenue | the net part of credit notes |
//! | `commission_expense` | expense | partner commissions earned |
//! | `commission_payable:<partner_id>` | liability | what we owe a partner; negative after a clawback of a paid commission |
//! | `suspense` | — | never expected: takes the difference of an entry whose event did not add up |
//!
//! # Rules
//!
//! Amounts on a line are never negative: a negative amount is posted on the other side; a zero
//! amount is not posted; an entry with no lines is not written. Each entry's id is
//! `<event_id>/<index>` with a fixed index per kind of entry, so a rebuild writes the same ids.
//!
//! - **InvoiceIssued**: Dr `accounts_receivable:<lead>` total; Cr `revenue:<plan>` each line's
//!   net (quantity × unit price); Cr `vat_payable` the document's VAT (rounded once per
//!   document, so the credits add up to the total exactly).
//! - **PaymentCaptured / PaymentPaid**, amount A, fee F, the first report that says the gateway
//!   took the money: entry 0, the capture, Dr `gateway_clearing` A / Cr `unapplied_payments` A;
//!   entry 1, the settlement, Dr `cash` A − F, Dr `gateway_fees` F / Cr `gateway_clearing` A. So
//!   the clearing account is back at zero once a payment settles (Stripe's clearing-account
//!   check). `captured` counts as collected because it is the money-taking state of Moyasar's
//!   authorize/capture flow, which may never report `paid`. A later `paid` for a captured
//!   payment posts only what changed (a larger amount than the capture, a different fee), by
//!   the same two entries on the differences; usually nothing.
//! - **PaymentRecorded** (the invoice applies the money): Dr `unapplied_payments` amount / Cr
//!   `accounts_receivable:<lead>` amount. An overpayment leaves the receivable negative: the
//!   customer's credit.
//! - **InvoiceRefunded** (credit note, gross R of which V is VAT): Dr `refunds` R − V, Dr
//!   `vat_payable` V / Cr `unapplied_payments` R.
//! - **PaymentRefunded** (the gateway handed back D more): Dr `unapplied_payments` D / Cr `cash`
//!   D. Together with the credit note, `unapplied_payments` returns to where it was.
//! - **InvoiceCanceled / InvoiceExpired** (only an unpaid invoice can be): the issue entry
//!   reversed, from what was remembered of it.
//! - **CommissionAccrued** C: Dr `commission_expense` C / Cr `commission_payable:<partner>` C.
//! - **CommissionRejected** (what was owed, N): Dr `commission_payable:<partner>` N / Cr
//!   `commission_expense` N.
//! - **CommissionPaidOut** P: Dr `commission_payable:<partner>` P / Cr `cash` P.
//! - **CommissionClawedBack** (−X) and **CommissionAdjusted** (signed): posted like an accrual
//!   of the signed amount, so a clawback is Dr `commission_payable:<partner>` X / Cr
//!   `commission_expense` X. After a payout the payable goes negative and is carried against
//!   the next payout.
//!
//! Every other event moves no money and posts nothing.

use std::collections::BTreeMap;

use adapters::sql::{SqlDb, SqlTx};
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::commission::{CommissionEvent, PartnerCommission};
use domain::invoice::{Invoice, InvoiceEvent, InvoiceLine};
use domain::payment::{Payment, PaymentEvent};
use domain::payout::{PayoutBatch, PayoutEvent};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::{decode, micros, rfc3339, Projection, ProjectionError};

pub struct Ledger;

/// Lines `account()` returns at most: an account statement is paged from the newest line.
pub const MAX_ACCOUNT_LINES: i64 = 1_000;

/// Account names.
pub mod accounts {
    pub const VAT_PAYABLE: &str = "vat_payable";
    pub const GATEWAY_CLEARING: &str = "gateway_clearing";
    pub const GATEWAY_FEES: &str = "gateway_fees";
    pub const CASH: &str = "cash";
    pub const UNAPPLIED_PAYMENTS: &str = "unapplied_payments";
    pub const REFUNDS: &str = "refunds";
    pub const COMMISSION_EXPENSE: &str = "commission_expense";
    /// Takes the difference of an entry that does not balance by itself; never expected.
    pub const SUSPENSE: &str = "suspense";
    /// Revenue of lines that sell no plan.
    pub const REVENUE_OTHER: &str = "revenue:other";

    pub fn receivable(lead_id: &str) -> String {
        format!("accounts_receivable:{lead_id}")
    }

    pub fn revenue(plan: Option<domain::plan::Plan>) -> String {
        plan.map_or_else(
            || REVENUE_OTHER.to_owned(),
            |plan| format!("revenue:{}", plan.as_str()),
        )
    }

    pub fn commission_payable(partner_id: &str) -> String {
        format!("commission_payable:{partner_id}")
    }

    /// What kind of account a name is, for the trial balance.
    pub fn kind(account: &str) -> &'static str {
        let prefix = account.split(':').next().unwrap_or(account);
        match prefix {
            "accounts_receivable" | "gateway_clearing" | "cash" => "asset",
            "vat_payable" | "unapplied_payments" | "commission_payable" => "liability",
            "revenue" => "revenue",
            "refunds" => "contra_revenue",
            "gateway_fees" | "commission_expense" => "expense",
            _ => "suspense",
        }
    }
}

/// An event the journal reads, back in its domain enum.
#[derive(Debug, Clone, PartialEq)]
pub enum MoneyEvent {
    Invoice(InvoiceEvent),
    Payment(PaymentEvent),
    Commission(CommissionEvent),
    Payout(PayoutEvent),
}

impl MoneyEvent {
    /// The domain event in a stored one, `None` for streams that move no money.
    pub fn from_recorded(event: &RecordedEvent) -> Result<Option<MoneyEvent>, ProjectionError> {
        let stream_type = event.stream_type.as_str();
        Ok(if stream_type == Invoice::TYPE {
            Some(MoneyEvent::Invoice(decode(event)?))
        } else if stream_type == Payment::TYPE {
            Some(MoneyEvent::Payment(decode(event)?))
        } else if stream_type == PartnerCommission::TYPE {
            Some(MoneyEvent::Commission(decode(event)?))
        } else if stream_type == PayoutBatch::TYPE {
            Some(MoneyEvent::Payout(decode(event)?))
        } else {
            None
        })
    }
}

/// What the journal remembers of an issued invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownInvoice {
    pub lead_id: String,
    pub vat_halalas: i64,
    pub total_halalas: i64,
    /// Net revenue posted per revenue account.
    pub revenue: BTreeMap<String, i64>,
}

/// What has been posted for a payment's collection so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collection {
    pub collected_halalas: i64,
    pub fee_halalas: i64,
}

/// Everything [`postings`] needs to know besides the event itself. The projection fills only
/// the parts an event needs; a pure fold keeps all of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub invoices: BTreeMap<String, KnownInvoice>,
    pub collections: BTreeMap<String, Collection>,
}

/// What one event adds to [`Known`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memory {
    Invoice {
        invoice_id: String,
        invoice: KnownInvoice,
    },
    Collection {
        payment_id: String,
        collection: Collection,
    },
}

impl Known {
    pub fn remember(&mut self, memory: Memory) {
        match memory {
            Memory::Invoice {
                invoice_id,
                invoice,
            } => {
                self.invoices.insert(invoice_id, invoice);
            }
            Memory::Collection {
                payment_id,
                collection,
            } => {
                self.collections.insert(payment_id, collection);
            }
        }
    }

    /// Folds an event into the memory (what the projection's tables do).
    pub fn observe(&mut self, event: &MoneyEvent) {
        if let Some(memory) = memory_of(event) {
            self.remember(memory);
        }
    }
}

/// One line: exactly one of the two amounts is positive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalLine {
    pub account: String,
    pub debit_halalas: i64,
    pub credit_halalas: i64,
}

/// A balanced journal entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalEntry {
    /// `<event_id>/<index>`.
    pub entry_id: String,
    pub index: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub description: String,
    pub lines: Vec<JournalLine>,
}

impl JournalEntry {
    pub fn debit_halalas(&self) -> i128 {
        self.lines.iter().map(|l| i128::from(l.debit_halalas)).sum()
    }

    pub fn credit_halalas(&self) -> i128 {
        self.lines
            .iter()
            .map(|l| i128::from(l.credit_halalas))
            .sum()
    }

    pub fn is_balanced(&self) -> bool {
        self.debit_halalas() == self.credit_halalas()
    }
}

/// An entry being written; signed amounts go to the side their sign says.
struct Draft {
    index: u32,
    occurred_at: OffsetDateTime,
    description: String,
    lines: Vec<JournalLine>,
}

impl Draft {
    fn new(index: u32, occurred_at: OffsetDateTime, description: String) -> Draft {
        Draft {
            index,
            occurred_at,
            description,
            lines: Vec::new(),
        }
    }

    fn debit(mut self, account: impl Into<String>, amount_halalas: i64) -> Draft {
        self.push(account.into(), amount_halalas);
        self
    }

    fn credit(mut self, account: impl Into<String>, amount_halalas: i64) -> Draft {
        self.push(account.into(), amount_halalas.saturating_neg());
        self
    }

    /// Positive debits, negative credits, zero nothing.
    fn push(&mut self, account: String, signed_halalas: i64) {
        let line = match signed_halalas {
            0 => return,
            debit if debit > 0 => JournalLine {
                account,
                debit_halalas: debit,
                credit_halalas: 0,
            },
            credit => JournalLine {
                account,
                debit_halalas: 0,
                credit_halalas: credit.saturating_neg(),
            },
        };
        self.lines.push(line);
    }

    /// The entry, or `None` when nothing moved. An entry that does not balance by itself (an
    /// event whose amounts do not add up) gets a `suspense` line, so the journal still
    /// balances and the difference is visible rather than lost.
    fn finish(mut self, event_id: &str) -> Option<JournalEntry> {
        let difference: i128 = self
            .lines
            .iter()
            .map(|l| i128::from(l.debit_halalas) - i128::from(l.credit_halalas))
            .sum();
        if difference != 0 {
            let clamped = i64::try_from(difference).unwrap_or(if difference > 0 {
                i64::MAX
            } else {
                i64::MIN
            });
            self.push(accounts::SUSPENSE.to_owned(), clamped.saturating_neg());
        }
        if self.lines.is_empty() {
            return None;
        }
        Some(JournalEntry {
            entry_id: format!("{event_id}/{}", self.index),
            index: self.index,
            occurred_at: self.occurred_at,
            description: self.description,
            lines: self.lines,
        })
    }
}

fn line_net_halalas(line: &InvoiceLine) -> i64 {
    i64::from(line.quantity).saturating_mul(line.unit_price_halalas)
}

/// What an event adds to the journal's memory.
pub fn memory_of(event: &MoneyEvent) -> Option<Memory> {
    match event {
        MoneyEvent::Invoice(InvoiceEvent::InvoiceIssued {
            invoice_id,
            customer,
            lines,
            vat_halalas,
            total_halalas,
            ..
        }) => {
            let mut revenue = BTreeMap::new();
            for line in lines {
                let net: &mut i64 = revenue.entry(accounts::revenue(line.plan)).or_default();
                *net = net.saturating_add(line_net_halalas(line));
            }
            Some(Memory::Invoice {
                invoice_id: invoice_id.clone(),
                invoice: KnownInvoice {
                    lead_id: customer.lead_id.clone(),
                    vat_halalas: *vat_halalas,
                    total_halalas: *total_halalas,
                    revenue,
                },
            })
        }
        MoneyEvent::Payment(payment_event) => {
            collection_target(payment_event).map(|collection| Memory::Collection {
                payment_id: payment_event.payment().payment_id.clone(),
                collection,
            })
        }
        _ => None,
    }
}

/// The collection a `captured` or `paid` report says happened (`None` for other statuses).
fn collection_target(event: &PaymentEvent) -> Option<Collection> {
    match event {
        PaymentEvent::PaymentCaptured { payment, .. } => {
            // A partial capture takes less than the authorized amount.
            let captured = payment.captured_halalas;
            let collected_halalas = if captured > 0 && captured <= payment.amount_halalas {
                captured
            } else {
                payment.amount_halalas
            };
            Some(Collection {
                collected_halalas,
                fee_halalas: payment.fee_halalas,
            })
        }
        PaymentEvent::PaymentPaid { payment, .. } => Some(Collection {
            collected_halalas: payment.amount_halalas,
            fee_halalas: payment.fee_halalas,
        }),
        _ => None,
    }
}

/// The journal entries an event posts. Pure: see the module docs for the rules.
pub fn postings(event_id: &str, event: &MoneyEvent, known: &Known) -> Vec<JournalEntry> {
    let drafts = match event {
        MoneyEvent::Invoice(event) => invoice_postings(event, known),
        MoneyEvent::Payment(event) => payment_postings(event, known),
        MoneyEvent::Commission(event) => commission_postings(event),
        MoneyEvent::Payout(event) => payout_postings(event),
    };
    drafts
        .into_iter()
        .filter_map(|draft| draft.finish(event_id))
        .collect()
}

fn receivable_of(known: &Known, invoice_id: &str) -> String {
    // An invoice stream always starts with its issue, so the lead is known; the fallback keeps
    // a damaged history visible instead of dropping the money.
    known.invoices.get(invoice_id).map_or_else(
        || accounts::receivable("(unknown)"),
        |i| accounts::receivable(&i.lead_id),
    )
}

fn invoice_postings(event: &InvoiceEvent, known: &Known) -> Vec<Draft> {
    match event {
        InvoiceEvent::InvoiceIssued {
            invoice_id,
            customer,
            lines,
            vat_halalas,
            total_halalas,
            issued_at,
            ..
        } => {
            let mut draft = Draft::new(
                0,
                *issued_at,
                format!("invoice {invoice_id} issued to {}", customer.lead_id),
            )
            .debit(accounts::receivable(&customer.lead_id), *total_halalas);
            for line in lines {
                draft = draft.credit(accounts::revenue(line.plan), line_net_halalas(line));
            }
            vec![draft.credit(accounts::VAT_PAYABLE, *vat_halalas)]
        }
        InvoiceEvent::PaymentRecorded {
            invoice_id,
            payment_id,
            amount_halalas,
            recorded_at,
            ..
        } => vec![Draft::new(
            0,
            *recorded_at,
            format!("payment {payment_id} applied to invoice {invoice_id}"),
        )
        .debit(accounts::UNAPPLIED_PAYMENTS, *amount_halalas)
        .credit(receivable_of(known, invoice_id), *amount_halalas)],
        InvoiceEvent::InvoiceRefunded {
            invoice_id,
            refund_id,
            credit_note,
            refunded_at,
            ..
        } => vec![Draft::new(
            0,
            *refunded_at,
            format!(
                "credit note {} for invoice {invoice_id} (refund {refund_id})",
                credit_note.credit_note_icv
            ),
        )
        .debit(accounts::REFUNDS, credit_note.subtotal_halalas)
        .debit(accounts::VAT_PAYABLE, credit_note.vat_halalas)
        .credit(accounts::UNAPPLIED_PAYMENTS, credit_note.total_halalas)],
        InvoiceEvent::InvoiceCanceled {
            invoice_id,
            canceled_at,
            ..
        } => reverse_issue(known, invoice_id, *canceled_at, "canceled"),
        InvoiceEvent::InvoiceExpired {
            invoice_id,
            expired_at,
            ..
        } => reverse_issue(known, invoice_id, *expired_at, "expired"),
        InvoiceEvent::InvoicePaid { .. }
        | InvoiceEvent::InvoiceOverpaid { .. }
        | InvoiceEvent::MoyasarInvoiceLinked { .. } => Vec::new(),
    }
}

fn reverse_issue(known: &Known, invoice_id: &str, at: OffsetDateTime, why: &str) -> Vec<Draft> {
    let Some(invoice) = known.invoices.get(invoice_id) else {
        return Vec::new();
    };
    let mut draft = Draft::new(0, at, format!("invoice {invoice_id} {why}: issue reversed"));
    for (account, net) in &invoice.revenue {
        draft = draft.debit(account.as_str(), *net);
    }
    vec![draft
        .debit(accounts::VAT_PAYABLE, invoice.vat_halalas)
        .credit(
            accounts::receivable(&invoice.lead_id),
            invoice.total_halalas,
        )]
}

fn payment_postings(event: &PaymentEvent, known: &Known) -> Vec<Draft> {
    let payment = event.payment();
    let payment_id = &payment.payment_id;
    if let PaymentEvent::PaymentRefunded {
        refund_delta_halalas,
        refunded_at,
        ..
    } = event
    {
        return vec![Draft::new(
            0,
            *refunded_at,
            format!("payment {payment_id} refunded through the gateway"),
        )
        .debit(accounts::UNAPPLIED_PAYMENTS, *refund_delta_halalas)
        .credit(accounts::CASH, *refund_delta_halalas)];
    }
    let Some(target) = collection_target(event) else {
        return Vec::new();
    };
    let at = match event {
        PaymentEvent::PaymentCaptured { captured_at, .. } => *captured_at,
        PaymentEvent::PaymentPaid { paid_at, .. } => *paid_at,
        _ => return Vec::new(),
    };
    let before = known
        .collections
        .get(payment_id)
        .copied()
        .unwrap_or_default();
    let amount = target
        .collected_halalas
        .saturating_sub(before.collected_halalas);
    let fee = target.fee_halalas.saturating_sub(before.fee_halalas);
    let status = event.status();
    vec![
        Draft::new(
            0,
            at,
            format!("payment {payment_id} {status}: collected by the gateway"),
        )
        .debit(accounts::GATEWAY_CLEARING, amount)
        .credit(accounts::UNAPPLIED_PAYMENTS, amount),
        Draft::new(
            1,
            at,
            format!("payment {payment_id} {status}: settled less the gateway fee"),
        )
        .debit(accounts::CASH, amount.saturating_sub(fee))
        .debit(accounts::GATEWAY_FEES, fee)
        .credit(accounts::GATEWAY_CLEARING, amount),
    ]
}

/// A payout that nets clawbacks carried from an earlier payout: each commission in it posts its
/// own `CommissionPaidOut` (payable to cash, gross), and the carried amounts come back as if
/// the partner had repaid them (cash to payable), so cash falls by exactly the payout's net.
fn payout_postings(event: &PayoutEvent) -> Vec<Draft> {
    match event {
        PayoutEvent::PayoutCreated {
            payout_id,
            partner_id,
            carried,
            created_at,
            ..
        } if !carried.is_empty() => {
            let recovered: i64 = carried
                .iter()
                .map(|c| c.amount_halalas.saturating_neg())
                .sum();
            vec![Draft::new(
                0,
                *created_at,
                format!("payout {payout_id} nets clawbacks {partner_id} owed"),
            )
            .debit(accounts::CASH, recovered)
            .credit(accounts::commission_payable(partner_id), recovered)]
        }
        _ => Vec::new(),
    }
}

fn commission_postings(event: &CommissionEvent) -> Vec<Draft> {
    // Accruals, clawbacks (negative) and adjustments (signed) all move the expense and the
    // payable together; the sign picks the sides.
    let earned = |at, description: String, partner_id: &str, amount: i64| {
        vec![Draft::new(0, at, description)
            .debit(accounts::COMMISSION_EXPENSE, amount)
            .credit(accounts::commission_payable(partner_id), amount)]
    };
    match event {
        CommissionEvent::CommissionAccrued {
            commission_id,
            partner_id,
            invoice_id,
            amount_halalas,
            accrued_at,
            ..
        } => earned(
            *accrued_at,
            format!("commission {commission_id} accrued to {partner_id} on invoice {invoice_id}"),
            partner_id,
            *amount_halalas,
        ),
        CommissionEvent::CommissionClawedBack {
            commission_id,
            partner_id,
            refund_id,
            amount_halalas,
            clawed_back_at,
            ..
        } => earned(
            *clawed_back_at,
            format!(
                "commission {commission_id} clawed back from {partner_id} (refund {refund_id})"
            ),
            partner_id,
            *amount_halalas,
        ),
        CommissionEvent::CommissionAdjusted {
            commission_id,
            partner_id,
            amount_halalas,
            reason,
            adjusted_at,
            ..
        } => earned(
            *adjusted_at,
            format!("commission {commission_id} of {partner_id} adjusted: {reason}"),
            partner_id,
            *amount_halalas,
        ),
        CommissionEvent::CommissionRejected {
            commission_id,
            partner_id,
            amount_halalas,
            reason,
            rejected_at,
            ..
        } => earned(
            *rejected_at,
            format!("commission {commission_id} of {partner_id} rejected: {reason}"),
            partner_id,
            amount_halalas.saturating_neg(),
        ),
        CommissionEvent::CommissionPaidOut {
            commission_id,
            partner_id,
            payout_id,
            amount_halalas,
            paid_out_at,
        } => vec![Draft::new(
            0,
            *paid_out_at,
            format!("commission {commission_id} paid out to {partner_id} in payout {payout_id}"),
        )
        .debit(accounts::commission_payable(partner_id), *amount_halalas)
        .credit(accounts::CASH, *amount_halalas)],
        CommissionEvent::CommissionApproved { .. } => Vec::new(),
    }
}

/// Loads into `known` the part of the memory `event` needs, unless it is there already.
async fn load_known(
    tx: &mut SqlTx,
    event: &MoneyEvent,
    known: &mut Known,
) -> Result<(), ProjectionError> {
    match event {
        MoneyEvent::Invoice(
            InvoiceEvent::PaymentRecorded { invoice_id, .. }
            | InvoiceEvent::InvoiceCanceled { invoice_id, .. }
            | InvoiceEvent::InvoiceExpired { invoice_id, .. },
        ) if !known.invoices.contains_key(invoice_id) => {
            let row = tx
                .fetch_optional(
                    "SELECT lead_id, vat_halalas, total_halalas FROM ledger_invoices WHERE invoice_id = ?",
                    &[invoice_id.as_str().into()],
                )
                .await?;
            let Some(row) = row else { return Ok(()) };
            let mut invoice = KnownInvoice {
                lead_id: row.text(0)?,
                vat_halalas: row.i64(1)?,
                total_halalas: row.i64(2)?,
                revenue: BTreeMap::new(),
            };
            for row in tx
                .fetch_all(
                    "SELECT account, net_halalas FROM ledger_invoice_revenue WHERE invoice_id = ?",
                    &[invoice_id.as_str().into()],
                )
                .await?
            {
                invoice.revenue.insert(row.text(0)?, row.i64(1)?);
            }
            known.invoices.insert(invoice_id.clone(), invoice);
        }
        MoneyEvent::Payment(
            payment_event @ (PaymentEvent::PaymentCaptured { .. }
            | PaymentEvent::PaymentPaid { .. }),
        ) if !known
            .collections
            .contains_key(&payment_event.payment().payment_id) =>
        {
            let payment_id = &payment_event.payment().payment_id;
            let row = tx
                .fetch_optional(
                    "SELECT collected_halalas, fee_halalas FROM ledger_payments WHERE payment_id = ?",
                    &[payment_id.as_str().into()],
                )
                .await?;
            if let Some(row) = row {
                known.collections.insert(
                    payment_id.clone(),
                    Collection {
                        collected_halalas: row.i64(0)?,
                        fee_halalas: row.i64(1)?,
                    },
                );
            }
        }
        _ => {}
    }
    Ok(())
}

/// Stores what an event adds to the memory (the SQL twin of [`Known::remember`]).
async fn store_memory(tx: &mut SqlTx, memory: Memory) -> Result<(), ProjectionError> {
    match memory {
        Memory::Invoice {
            invoice_id,
            invoice,
        } => {
            tx.write(
                "INSERT INTO ledger_invoices (invoice_id, lead_id, vat_halalas, total_halalas) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (invoice_id) DO UPDATE SET lead_id = excluded.lead_id, \
                 vat_halalas = excluded.vat_halalas, total_halalas = excluded.total_halalas",
                &[
                    invoice_id.as_str().into(),
                    invoice.lead_id.into(),
                    invoice.vat_halalas.into(),
                    invoice.total_halalas.into(),
                ],
            )
            .await?;
            tx.write(
                "DELETE FROM ledger_invoice_revenue WHERE invoice_id = ?",
                &[invoice_id.as_str().into()],
            )
            .await?;
            for (account, net) in invoice.revenue {
                tx.write(
                    "INSERT INTO ledger_invoice_revenue (invoice_id, account, net_halalas) VALUES (?, ?, ?)",
                    &[invoice_id.as_str().into(), account.into(), net.into()],
                )
                .await?;
            }
        }
        Memory::Collection {
            payment_id,
            collection,
        } => {
            tx.write(
                "INSERT INTO ledger_payments (payment_id, collected_halalas, fee_halalas) VALUES (?, ?, ?) \
                 ON CONFLICT (payment_id) DO UPDATE SET collected_halalas = excluded.collected_halalas, \
                 fee_halalas = excluded.fee_halalas",
                &[
                    payment_id.into(),
                    collection.collected_halalas.into(),
                    collection.fee_halalas.into(),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

/// Writes the entries (each with the event it posts), all entry rows first, then all lines:
/// each table's rows in one run, which PostgreSQL takes as one statement per table.
async fn write_entries(
    tx: &mut SqlTx,
    entries: Vec<(&RecordedEvent, JournalEntry)>,
) -> Result<(), ProjectionError> {
    for (event, entry) in &entries {
        write_entry_row(tx, event, entry).await?;
    }
    for (_, entry) in entries {
        write_lines(tx, entry).await?;
    }
    Ok(())
}

async fn write_entry_row(
    tx: &mut SqlTx,
    event: &RecordedEvent,
    entry: &JournalEntry,
) -> Result<(), ProjectionError> {
    tx.write(
        "INSERT INTO ledger_entries (entry_id, position, entry_index, event_id, event_type, stream_id, \
         occurred_at_us, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            entry.entry_id.as_str().into(),
            event.position.into(),
            i64::from(entry.index).into(),
            event.event_id.to_string().into(),
            event.event_type.as_str().into(),
            event.stream_id.as_str().into(),
            micros(entry.occurred_at).into(),
            entry.description.as_str().into(),
        ],
    )
    .await?;
    Ok(())
}

async fn write_lines(tx: &mut SqlTx, entry: JournalEntry) -> Result<(), ProjectionError> {
    for (line_no, line) in entry.lines.into_iter().enumerate() {
        tx.write(
            "INSERT INTO ledger_lines (entry_id, line_no, account, debit_halalas, credit_halalas) \
             VALUES (?, ?, ?, ?, ?)",
            &[
                entry.entry_id.as_str().into(),
                (line_no as i64).into(),
                line.account.into(),
                line.debit_halalas.into(),
                line.credit_halalas.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Projection for Ledger {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "ledger_entries",
            "ledger_lines",
            "ledger_invoices",
            "ledger_invoice_revenue",
            "ledger_payments",
        ]
    }

    fn folds_money(&self) -> bool {
        true
    }

    /// Keeps the memory a batch has loaded or made, so an event whose invoice or payment came
    /// earlier in the batch (most payments follow their invoice closely) posts without reading
    /// it back: a read is a round trip, and on PostgreSQL one that first sends every write
    /// queued before it.
    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut known = Known::default();
        let mut entries = Vec::new();
        let mut memories = Vec::new();
        for event in events {
            let Some(money) = MoneyEvent::from_recorded(event)? else {
                continue;
            };
            load_known(tx, &money, &mut known).await?;
            let posted = postings(&event.event_id.to_string(), &money, &known);
            entries.extend(posted.into_iter().map(|entry| (event, entry)));
            if let Some(memory) = memory_of(&money) {
                memories.push(memory.clone());
                known.remember(memory);
            }
        }
        // Written once the batch is folded: nothing above reads the journal, and a memory it
        // wrote is in `known`, which is looked up before the tables.
        write_entries(tx, entries).await?;
        for memory in memories {
            store_memory(tx, memory).await?;
        }
        Ok(())
    }

    /// The trial balance.
    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
        trial_balance(db).await
    }
}

/// Every account with its debit and credit totals and its balance (debit minus credit:
/// positive for a debit balance), the grand totals, and whether the journal balances: grand
/// debits equal grand credits and no single entry is off.
pub async fn trial_balance(db: &SqlDb) -> Result<Value, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT account, CAST(SUM(debit_halalas) AS BIGINT), CAST(SUM(credit_halalas) AS BIGINT) \
             FROM ledger_lines GROUP BY account ORDER BY account",
            &[],
        )
        .await?;
    let (mut total_debit, mut total_credit) = (0i64, 0i64);
    let mut listed = Vec::with_capacity(rows.len());
    for row in rows {
        let (account, debit, credit) = (row.text(0)?, row.i64(1)?, row.i64(2)?);
        total_debit = total_debit.saturating_add(debit);
        total_credit = total_credit.saturating_add(credit);
        listed.push(json!({
            "account": account,
            "kind": accounts::kind(&account),
            "debit_halalas": debit,
            "credit_halalas": credit,
            "balance_halalas": debit.saturating_sub(credit),
        }));
    }
    let entries = count(db, "SELECT COUNT(*) FROM ledger_entries").await?;
    let unbalanced = count(
        db,
        "SELECT COUNT(*) FROM (SELECT entry_id FROM ledger_lines GROUP BY entry_id \
         HAVING SUM(debit_halalas) <> SUM(credit_halalas)) AS unbalanced",
    )
    .await?;
    Ok(json!({
        "currency": "SAR",
        "entries": entries,
        "accounts": listed,
        "total_debit_halalas": total_debit,
        "total_credit_halalas": total_credit,
        "unbalanced_entries": unbalanced,
        "balanced": total_debit == total_credit && unbalanced == 0,
    }))
}

async fn count(db: &SqlDb, sql: &str) -> Result<i64, ProjectionError> {
    Ok(match db.fetch_optional(sql, &[]).await? {
        Some(row) => row.i64(0)?,
        None => 0,
    })
}

/// One account's lines, the newest `limit` (at most [`MAX_ACCOUNT_LINES`]) in posting order,
/// each with the running balance (debit minus credit) after it, for
/// `GET /api/ledger/accounts/{account}`.
pub async fn account(db: &SqlDb, account: &str, limit: i64) -> Result<Value, ProjectionError> {
    let limit = limit.clamp(1, MAX_ACCOUNT_LINES);
    let totals = db
        .fetch_optional(
            "SELECT COUNT(*), CAST(COALESCE(SUM(debit_halalas), 0) AS BIGINT), \
             CAST(COALESCE(SUM(credit_halalas), 0) AS BIGINT) FROM ledger_lines WHERE account = ?",
            &[account.into()],
        )
        .await?;
    let (line_count, debit, credit) = match totals {
        Some(row) => (row.i64(0)?, row.i64(1)?, row.i64(2)?),
        None => (0, 0, 0),
    };
    let mut rows = db
        .fetch_all(
            "SELECT l.entry_id, l.line_no, e.position, e.event_type, e.stream_id, e.occurred_at_us, \
             e.description, l.debit_halalas, l.credit_halalas \
             FROM ledger_lines l JOIN ledger_entries e ON e.entry_id = l.entry_id \
             WHERE l.account = ? ORDER BY e.position DESC, e.entry_index DESC, l.line_no DESC LIMIT ?",
            &[account.into(), limit.into()],
        )
        .await?;
    rows.reverse();
    let balance = debit.saturating_sub(credit);
    let shown: i64 = rows
        .iter()
        .map(|row| Ok(row.i64(7)? - row.i64(8)?))
        .sum::<Result<i64, adapters::store::StoreError>>()?;
    let opening = balance.saturating_sub(shown);
    let mut running = opening;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        let (line_debit, line_credit) = (row.i64(7)?, row.i64(8)?);
        running = running.saturating_add(line_debit - line_credit);
        lines.push(json!({
            "entry_id": row.text(0)?,
            "line_no": row.i64(1)?,
            "position": row.i64(2)?,
            "event_type": row.text(3)?,
            "stream_id": row.text(4)?,
            "occurred_at": rfc3339(row.i64(5)?),
            "description": row.text(6)?,
            "debit_halalas": line_debit,
            "credit_halalas": line_credit,
            "balance_halalas": running,
        }));
    }
    Ok(json!({
        "account": account,
        "kind": accounts::kind(account),
        "currency": "SAR",
        "lines_total": line_count,
        "debit_halalas": debit,
        "credit_halalas": credit,
        "balance_halalas": balance,
        "opening_balance_halalas": opening,
        "truncated": line_count > lines.len() as i64,
        "lines": lines,
    }))
}

#[cfg(test)]
mod tests {
    //! The posting rules without a database: worked examples, and a proptest that drives the
    //! real aggregates through random valid histories and folds their events through
    //! [`postings`].

    use cqrs_es::Aggregate;
    use domain::commission::{CommissionCommand, CommissionStatus, PartnerCommission};
    use domain::invoice::{Customer, Invoice, InvoiceCommand, InvoiceStatus, Seller};
    use domain::payment::{Payment, PaymentCommand, PaymentStatus};
    use domain::plan::Plan;
    use domain::zatca::FIRST_INVOICE_PIH;
    use proptest::prelude::*;
    use time::macros::datetime;
    use time::Duration;

    use super::*;

    const SELLER_VAT: &str = "300000000000003";

    fn issue(
        invoice_id: &str,
        lead_id: &str,
        lines: Vec<InvoiceLine>,
        at: OffsetDateTime,
    ) -> InvoiceCommand {
        InvoiceCommand::Issue {
            invoice_id: invoice_id.into(),
            customer: Customer {
                lead_id: lead_id.into(),
                name: lead_id.into(),
            },
            lines,
            issued_at: at,
            due_at: at + Duration::days(14),
            seller: Seller {
                name: "Dealix".into(),
                vat_number: SELLER_VAT.into(),
            },
            icv: 1,
            previous_invoice_hash: FIRST_INVOICE_PIH.into(),
            moyasar_invoice_id: None,
            phase2: None,
        }
    }

    fn plan_line(plan: Plan) -> InvoiceLine {
        InvoiceLine {
            description: plan.as_str().into(),
            quantity: 1,
            unit_price_halalas: plan.price_halalas(),
            plan: Some(plan),
        }
    }

    fn report(
        payment_id: &str,
        invoice_id: &str,
        status: PaymentStatus,
        amount: i64,
        fee: i64,
        refunded: i64,
        at: OffsetDateTime,
    ) -> PaymentCommand {
        PaymentCommand::RecordGatewayStatus {
            payment_id: payment_id.into(),
            invoice_id: Some(invoice_id.into()),
            moyasar_invoice_id: None,
            status,
            amount_halalas: amount,
            fee_halalas: fee,
            captured_halalas: if status == PaymentStatus::Captured {
                amount
            } else {
                0
            },
            refunded_halalas: refunded,
            currency: "SAR".into(),
            at,
        }
    }

    /// A fold of money events through [`postings`], checking each entry as it is posted.
    #[derive(Default)]
    struct Journal {
        known: Known,
        events: u64,
        entries: Vec<JournalEntry>,
        balances: BTreeMap<String, i64>,
        debits: i128,
        credits: i128,
    }

    impl Journal {
        fn post(&mut self, event: MoneyEvent) {
            self.events += 1;
            let event_id = format!("event-{}", self.events);
            for entry in postings(&event_id, &event, &self.known) {
                assert!(entry.is_balanced(), "unbalanced {entry:?} for {event:?}");
                assert!(entry.entry_id.starts_with(&event_id));
                assert!(!entry.lines.is_empty());
                for line in &entry.lines {
                    assert_ne!(line.account, accounts::SUSPENSE, "{entry:?} for {event:?}");
                    let one_sided = (line.debit_halalas > 0 && line.credit_halalas == 0)
                        || (line.credit_halalas > 0 && line.debit_halalas == 0);
                    assert!(one_sided, "{line:?} in {entry:?}");
                    *self.balances.entry(line.account.clone()).or_default() +=
                        line.debit_halalas - line.credit_halalas;
                }
                self.debits += entry.debit_halalas();
                self.credits += entry.credit_halalas();
                self.entries.push(entry);
            }
            self.known.observe(&event);
        }

        fn balance(&self, account: &str) -> i64 {
            self.balances.get(account).copied().unwrap_or(0)
        }
    }

    #[test]
    fn a_growth_invoice_paid_through_the_gateway_posts_receivable_revenue_vat_cash_and_fee() {
        let at = datetime!(2026-09-01 10:00 UTC);
        let mut journal = Journal::default();
        let invoice = Invoice::default();
        let issued = invoice
            .decide(issue("inv-1", "lead-1", vec![plan_line(Plan::Growth)], at))
            .unwrap();
        journal.post(MoneyEvent::Invoice(issued[0].clone()));
        let entry = &journal.entries[0];
        assert_eq!(entry.entry_id, "event-1/0");
        assert_eq!(
            entry.lines,
            vec![
                JournalLine {
                    account: "accounts_receivable:lead-1".into(),
                    debit_halalas: 344_885,
                    credit_halalas: 0
                },
                JournalLine {
                    account: "revenue:growth".into(),
                    debit_halalas: 0,
                    credit_halalas: 299_900
                },
                JournalLine {
                    account: "vat_payable".into(),
                    debit_halalas: 0,
                    credit_halalas: 44_985
                },
            ]
        );
        let paid = Payment::default()
            .decide(report(
                "pay-1",
                "inv-1",
                PaymentStatus::Paid,
                344_885,
                6_897,
                0,
                at,
            ))
            .unwrap();
        journal.post(MoneyEvent::Payment(paid[0].clone()));
        assert_eq!(journal.balance(accounts::GATEWAY_CLEARING), 0);
        assert_eq!(journal.balance(accounts::CASH), 344_885 - 6_897);
        assert_eq!(journal.balance(accounts::GATEWAY_FEES), 6_897);
        assert_eq!(journal.balance(accounts::UNAPPLIED_PAYMENTS), -344_885);
        let mut invoice = invoice;
        invoice.apply(issued[0].clone());
        for event in invoice
            .decide(InvoiceCommand::RecordPayment {
                payment_id: "pay-1".into(),
                amount_halalas: 344_885,
                at,
            })
            .unwrap()
        {
            journal.post(MoneyEvent::Invoice(event));
        }
        assert_eq!(journal.balance("accounts_receivable:lead-1"), 0);
        assert_eq!(journal.balance(accounts::UNAPPLIED_PAYMENTS), 0);
        assert_eq!(journal.debits, journal.credits);
    }

    #[test]
    fn a_captured_payment_is_collected_once_and_a_later_paid_posts_only_a_changed_fee() {
        let at = datetime!(2026-09-01 10:00 UTC);
        let mut journal = Journal::default();
        let mut payment = Payment::default();
        for (status, fee) in [
            (PaymentStatus::Authorized, 0),
            (PaymentStatus::Captured, 100),
            (PaymentStatus::Paid, 150),
        ] {
            for event in payment
                .decide(report("pay-1", "inv-1", status, 10_000, fee, 0, at))
                .unwrap()
            {
                journal.post(MoneyEvent::Payment(event.clone()));
                payment.apply(event);
            }
            assert_eq!(journal.balance(accounts::GATEWAY_CLEARING), 0);
        }
        assert_eq!(journal.balance(accounts::UNAPPLIED_PAYMENTS), -10_000);
        assert_eq!(journal.balance(accounts::GATEWAY_FEES), 150);
        assert_eq!(journal.balance(accounts::CASH), 9_850);
        let fee_true_up: Vec<_> = journal
            .entries
            .iter()
            .map(|e| e.entry_id.as_str())
            .collect();
        assert_eq!(fee_true_up, ["event-2/0", "event-2/1", "event-3/1"]);
    }

    #[test]
    fn a_clawback_after_payout_leaves_the_partner_owing_us() {
        let at = datetime!(2026-09-01 10:00 UTC);
        let mut journal = Journal::default();
        let mut commission = PartnerCommission::default();
        let commands = [
            CommissionCommand::Accrue {
                commission_id: "c-1".into(),
                partner_id: "p-1".into(),
                invoice_id: "inv-1".into(),
                lead_id: "lead-1".into(),
                base_halalas: 299_900,
                rate_bps: 1_000,
                hold_days: 0,
                at,
            },
            CommissionCommand::Approve {
                actor: "finance".into(),
                at,
            },
            CommissionCommand::MarkPaidOut {
                payout_id: "payout-1".into(),
                at,
            },
            CommissionCommand::ClawBack {
                refund_id: "r-1".into(),
                refunded_base_halalas: 299_900,
                invoice_base_halalas: 299_900,
                at,
            },
        ];
        for command in commands {
            for event in commission.decide(command).unwrap() {
                journal.post(MoneyEvent::Commission(event.clone()));
                commission.apply(event);
            }
        }
        assert_eq!(journal.balance("commission_payable:p-1"), 29_990);
        assert_eq!(journal.balance(accounts::COMMISSION_EXPENSE), 0);
        assert_eq!(journal.balance(accounts::CASH), -29_990);
    }

    /// One step of a random history; indexes pick among what exists (modulo its count).
    #[derive(Debug, Clone)]
    enum Step {
        Issue {
            lead: u8,
            lines: Vec<(u32, i64, Option<usize>)>,
        },
        Pay {
            invoice: usize,
            percent_of_total: i64,
            fee_bps: i64,
            flow: usize,
        },
        Refund {
            payment: usize,
            percent_of_refundable: i64,
        },
        Cancel {
            invoice: usize,
        },
        Expire {
            invoice: usize,
        },
        Accrue {
            invoice: usize,
            partner: u8,
            rate_bps: u32,
        },
        Approve {
            commission: usize,
        },
        Reject {
            commission: usize,
        },
        PayOut {
            commission: usize,
        },
        ClawBack {
            commission: usize,
            percent_of_base: i64,
        },
        Adjust {
            commission: usize,
            amount_halalas: i64,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        let line = (1u32..=3, 0i64..=1_000_000, proptest::option::of(0usize..4));
        prop_oneof![
            3 => (0u8..6, proptest::collection::vec(line, 1..4))
                .prop_map(|(lead, lines)| Step::Issue { lead, lines }),
            4 => (any::<usize>(), prop_oneof![Just(100i64), 1i64..=130], 0i64..=500, 0usize..5).prop_map(
                |(invoice, percent_of_total, fee_bps, flow)| Step::Pay { invoice, percent_of_total, fee_bps, flow }
            ),
            2 => (any::<usize>(), 1i64..=100)
                .prop_map(|(payment, percent_of_refundable)| Step::Refund { payment, percent_of_refundable }),
            1 => any::<usize>().prop_map(|invoice| Step::Cancel { invoice }),
            1 => any::<usize>().prop_map(|invoice| Step::Expire { invoice }),
            2 => (any::<usize>(), 0u8..3, 1u32..=2_500)
                .prop_map(|(invoice, partner, rate_bps)| Step::Accrue { invoice, partner, rate_bps }),
            2 => any::<usize>().prop_map(|commission| Step::Approve { commission }),
            1 => any::<usize>().prop_map(|commission| Step::Reject { commission }),
            2 => any::<usize>().prop_map(|commission| Step::PayOut { commission }),
            1 => (any::<usize>(), 1i64..=100)
                .prop_map(|(commission, percent_of_base)| Step::ClawBack { commission, percent_of_base }),
            1 => (any::<usize>(), -5_000i64..=5_000)
                .prop_map(|(commission, amount_halalas)| Step::Adjust { commission, amount_halalas }),
        ]
    }

    struct CommissionState {
        id: String,
        partner_id: String,
        base_halalas: i64,
        aggregate: PartnerCommission,
    }

    /// The aggregates of a history, driven only through `decide`, with the process managers'
    /// reactions (payment paid -> payment recorded, gateway refund -> credit note) mirrored.
    struct History {
        at: OffsetDateTime,
        journal: Journal,
        invoices: Vec<(String, Invoice)>,
        payments: Vec<(String, String, Payment)>,
        commissions: Vec<CommissionState>,
        paid_out_halalas: BTreeMap<String, i64>,
        gateway_refunds_halalas: i64,
    }

    fn pick<T>(items: &[T], index: usize) -> Option<usize> {
        (!items.is_empty()).then(|| index % items.len())
    }

    impl History {
        fn new() -> History {
            History {
                at: datetime!(2026-08-01 08:00 UTC),
                journal: Journal::default(),
                invoices: Vec::new(),
                payments: Vec::new(),
                commissions: Vec::new(),
                paid_out_halalas: BTreeMap::new(),
                gateway_refunds_halalas: 0,
            }
        }

        fn tick(&mut self) -> OffsetDateTime {
            self.at += Duration::hours(1);
            self.at
        }

        fn invoice_command(&mut self, index: usize, command: InvoiceCommand) -> bool {
            let Ok(events) = self.invoices[index].1.decide(command) else {
                return false;
            };
            for event in events {
                self.journal.post(MoneyEvent::Invoice(event.clone()));
                self.invoices[index].1.apply(event);
            }
            true
        }

        fn payment_command(&mut self, index: usize, command: PaymentCommand) -> Vec<PaymentEvent> {
            let Ok(events) = self.payments[index].2.decide(command) else {
                return Vec::new();
            };
            for event in &events {
                self.journal.post(MoneyEvent::Payment(event.clone()));
                self.payments[index].2.apply(event.clone());
                // Stripe's check: a settled payment leaves nothing in clearing.
                assert_eq!(
                    self.journal.balance(accounts::GATEWAY_CLEARING),
                    0,
                    "{event:?}"
                );
            }
            events
        }

        fn commission_command(&mut self, index: usize, command: CommissionCommand) {
            let Ok(events) = self.commissions[index].aggregate.decide(command) else {
                return;
            };
            for event in events {
                if let CommissionEvent::CommissionPaidOut {
                    partner_id,
                    amount_halalas,
                    ..
                } = &event
                {
                    *self.paid_out_halalas.entry(partner_id.clone()).or_default() += amount_halalas;
                }
                self.journal.post(MoneyEvent::Commission(event.clone()));
                self.commissions[index].aggregate.apply(event);
            }
        }

        fn run(&mut self, step: Step) {
            match step {
                Step::Issue { lead, lines } => {
                    let invoice_id = format!("inv-{}", self.invoices.len());
                    let lines = lines
                        .into_iter()
                        .map(|(quantity, unit_price_halalas, plan)| InvoiceLine {
                            description: "line".into(),
                            quantity,
                            unit_price_halalas,
                            plan: plan.map(|p| Plan::ALL[p]),
                        })
                        .collect();
                    let at = self.tick();
                    let command = issue(&invoice_id, &format!("lead-{lead}"), lines, at);
                    self.invoices.push((invoice_id, Invoice::default()));
                    if !self.invoice_command(self.invoices.len() - 1, command) {
                        self.invoices.pop();
                    }
                }
                Step::Pay {
                    invoice,
                    percent_of_total,
                    fee_bps,
                    flow,
                } => self.pay(invoice, percent_of_total, fee_bps, flow),
                Step::Refund {
                    payment,
                    percent_of_refundable,
                } => self.refund(payment, percent_of_refundable),
                Step::Cancel { invoice } => {
                    let Some(index) = pick(&self.invoices, invoice) else {
                        return;
                    };
                    let at = self.tick();
                    self.invoice_command(
                        index,
                        InvoiceCommand::Cancel {
                            reason: "changed plan".into(),
                            at,
                        },
                    );
                }
                Step::Expire { invoice } => {
                    let Some(index) = pick(&self.invoices, invoice) else {
                        return;
                    };
                    let Some(due_at) = self.invoices[index].1.due_at() else {
                        return;
                    };
                    self.invoice_command(
                        index,
                        InvoiceCommand::Expire {
                            at: due_at + Duration::days(1),
                        },
                    );
                }
                Step::Accrue {
                    invoice,
                    partner,
                    rate_bps,
                } => {
                    let Some(index) = pick(&self.invoices, invoice) else {
                        return;
                    };
                    let (invoice_id, invoice) = &self.invoices[index];
                    if invoice.status() != Some(InvoiceStatus::Paid) {
                        return;
                    }
                    let state = CommissionState {
                        id: format!("c-{}", self.commissions.len()),
                        partner_id: format!("p-{partner}"),
                        base_halalas: invoice.subtotal_halalas(),
                        aggregate: PartnerCommission::default(),
                    };
                    let command = CommissionCommand::Accrue {
                        commission_id: state.id.clone(),
                        partner_id: state.partner_id.clone(),
                        invoice_id: invoice_id.clone(),
                        lead_id: invoice.lead_id().to_owned(),
                        base_halalas: state.base_halalas,
                        rate_bps,
                        hold_days: 0,
                        at: self.at,
                    };
                    self.commissions.push(state);
                    self.commission_command(self.commissions.len() - 1, command);
                }
                Step::Approve { commission } => {
                    self.on_commission(commission, |at| CommissionCommand::Approve {
                        actor: "finance".into(),
                        at,
                    })
                }
                Step::Reject { commission } => {
                    self.on_commission(commission, |at| CommissionCommand::Reject {
                        actor: "finance".into(),
                        reason: "self-referral".into(),
                        at,
                    })
                }
                Step::PayOut { commission } => {
                    self.on_commission(commission, |at| CommissionCommand::MarkPaidOut {
                        payout_id: format!("payout-{}", at.unix_timestamp()),
                        at,
                    })
                }
                Step::ClawBack {
                    commission,
                    percent_of_base,
                } => {
                    let Some(index) = pick(&self.commissions, commission) else {
                        return;
                    };
                    let base = self.commissions[index].base_halalas;
                    let at = self.tick();
                    let command = CommissionCommand::ClawBack {
                        refund_id: format!("refund-{}", at.unix_timestamp()),
                        refunded_base_halalas: (base * percent_of_base / 100).max(1),
                        invoice_base_halalas: base,
                        at,
                    };
                    self.commission_command(index, command);
                }
                Step::Adjust {
                    commission,
                    amount_halalas,
                } => self.on_commission(commission, |at| CommissionCommand::Adjust {
                    amount_halalas,
                    reason: "agreement".into(),
                    actor: "finance".into(),
                    at,
                }),
            }
        }

        fn on_commission(
            &mut self,
            commission: usize,
            command: impl FnOnce(OffsetDateTime) -> CommissionCommand,
        ) {
            let Some(index) = pick(&self.commissions, commission) else {
                return;
            };
            let at = self.tick();
            self.commission_command(index, command(at));
        }

        fn pay(&mut self, invoice: usize, percent_of_total: i64, fee_bps: i64, flow: usize) {
            let Some(index) = pick(&self.invoices, invoice) else {
                return;
            };
            let invoice_id = self.invoices[index].0.clone();
            let total = self.invoices[index].1.total_halalas();
            let amount = (total * percent_of_total / 100).max(1);
            let fee = amount * fee_bps / 10_000;
            let payment_id = format!("pay-{}", self.payments.len());
            self.payments
                .push((payment_id.clone(), invoice_id, Payment::default()));
            let payment = self.payments.len() - 1;
            let statuses: &[PaymentStatus] = match flow {
                0 => &[PaymentStatus::Initiated, PaymentStatus::Paid],
                1 => &[
                    PaymentStatus::Initiated,
                    PaymentStatus::Authorized,
                    PaymentStatus::Captured,
                    PaymentStatus::Paid,
                ],
                2 => &[PaymentStatus::Authorized, PaymentStatus::Captured],
                3 => &[PaymentStatus::Verified, PaymentStatus::Paid],
                _ => &[PaymentStatus::Initiated, PaymentStatus::Failed],
            };
            for status in statuses {
                let at = self.tick();
                let command = report(
                    &payment_id,
                    &self.payments[payment].1,
                    *status,
                    amount,
                    fee,
                    0,
                    at,
                );
                let events = self.payment_command(payment, command);
                if events
                    .iter()
                    .any(|e| matches!(e, PaymentEvent::PaymentPaid { .. }))
                {
                    // The payments_to_invoices process manager.
                    self.invoice_command(
                        index,
                        InvoiceCommand::RecordPayment {
                            payment_id: payment_id.clone(),
                            amount_halalas: amount,
                            at,
                        },
                    );
                }
            }
        }

        fn refund(&mut self, payment: usize, percent_of_refundable: i64) {
            let Some(index) = pick(&self.payments, payment) else {
                return;
            };
            let (payment_id, invoice_id, aggregate) = &self.payments[index];
            let Some(snapshot) = aggregate.snapshot().cloned() else {
                return;
            };
            if aggregate.net_collected_halalas() <= 0 {
                return;
            }
            let (payment_id, invoice_id) = (payment_id.clone(), invoice_id.clone());
            let refundable = snapshot.amount_halalas - snapshot.refunded_halalas;
            let delta = (refundable * percent_of_refundable / 100).max(1);
            let at = self.tick();
            let command = report(
                &payment_id,
                &invoice_id,
                PaymentStatus::Refunded,
                snapshot.amount_halalas,
                snapshot.fee_halalas,
                snapshot.refunded_halalas + delta,
                at,
            );
            let events = self.payment_command(index, command);
            if events.is_empty() {
                return;
            }
            self.gateway_refunds_halalas += delta;
            let invoice = self.invoices.iter().position(|(id, _)| *id == invoice_id);
            if let Some(invoice) = invoice {
                // The payments_to_invoices process manager: a credit note for the refund.
                self.invoice_command(
                    invoice,
                    InvoiceCommand::Refund {
                        refund_id: format!(
                            "{payment_id}:refund:{}",
                            snapshot.refunded_halalas + delta
                        ),
                        amount_halalas: delta,
                        reason: "refunded through the payment gateway".into(),
                        credit_note_icv: 2,
                        credit_note_previous_hash: FIRST_INVOICE_PIH.into(),
                        at,
                    },
                );
            }
        }

        /// The balances the journal must show, computed from the aggregates.
        fn check_balances(&self) {
            let journal = &self.journal;
            assert_eq!(
                journal.debits, journal.credits,
                "total debits equal total credits"
            );
            assert_eq!(journal.balance(accounts::GATEWAY_CLEARING), 0);
            let mut receivable: BTreeMap<String, i64> = BTreeMap::new();
            for (_, invoice) in &self.invoices {
                let open = !matches!(
                    invoice.status(),
                    Some(InvoiceStatus::Canceled | InvoiceStatus::Expired)
                );
                let owed = if open { invoice.total_halalas() } else { 0 };
                *receivable
                    .entry(accounts::receivable(invoice.lead_id()))
                    .or_default() += owed - invoice.paid_halalas();
            }
            for (account, owed) in &receivable {
                assert_eq!(journal.balance(account), *owed, "{account}");
            }
            let collected_net: i64 = self
                .payments
                .iter()
                .filter_map(|(_, _, p)| {
                    let snapshot = p.snapshot()?;
                    let collected = matches!(
                        p.status(),
                        Some(
                            PaymentStatus::Captured | PaymentStatus::Paid | PaymentStatus::Refunded
                        )
                    );
                    collected.then(|| snapshot.amount_halalas - snapshot.fee_halalas)
                })
                .sum();
            let paid_out: i64 = self.paid_out_halalas.values().sum();
            assert_eq!(
                journal.balance(accounts::CASH),
                collected_net - self.gateway_refunds_halalas - paid_out,
                "cash"
            );
            let mut payable: BTreeMap<String, i64> = BTreeMap::new();
            for commission in &self.commissions {
                let Some(status) = commission.aggregate.status() else {
                    continue;
                };
                let owed = if status == CommissionStatus::Rejected {
                    0
                } else {
                    commission.aggregate.net_halalas()
                };
                *payable.entry(commission.partner_id.clone()).or_default() += owed;
            }
            for (partner_id, owed) in payable {
                let paid = self.paid_out_halalas.get(&partner_id).copied().unwrap_or(0);
                assert_eq!(
                    journal.balance(&accounts::commission_payable(&partner_id)),
                    -(owed - paid),
                    "payable to {partner_id}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_entry_of_a_random_valid_history_balances_and_clearing_returns_to_zero(
            steps in proptest::collection::vec(step(), 1..60)
        ) {
            let mut history = History::new();
            for step in steps {
                history.run(step);
            }
            history.check_balances();
        }
    }
}
