//! The posting rules, pure: which journal lines each money event makes, given what the
//! ledger already knows of its invoice and payment.

use crate::{decode, ProjectionError};
use adapters::store::RecordedEvent;
use cqrs_es::Aggregate;
use domain::commission::{CommissionEvent, PartnerCommission};
use domain::invoice::{Invoice, InvoiceEvent, InvoiceLine};
use domain::payment::{Payment, PaymentEvent};
use domain::payout::{PayoutBatch, PayoutEvent};
use std::collections::BTreeMap;
use time::OffsetDateTime;

use super::*;

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
pub(super) struct Draft {
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

pub(super) fn line_net_halalas(line: &InvoiceLine) -> i64 {
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
pub(super) fn collection_target(event: &PaymentEvent) -> Option<Collection> {
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

pub(super) fn receivable_of(known: &Known, invoice_id: &str) -> String {
    // An invoice stream always starts with its issue, so the lead is known; the fallback keeps
    // a damaged history visible instead of dropping the money.
    known.invoices.get(invoice_id).map_or_else(
        || accounts::receivable("(unknown)"),
        |i| accounts::receivable(&i.lead_id),
    )
}

pub(super) fn invoice_postings(event: &InvoiceEvent, known: &Known) -> Vec<Draft> {
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

pub(super) fn reverse_issue(
    known: &Known,
    invoice_id: &str,
    at: OffsetDateTime,
    why: &str,
) -> Vec<Draft> {
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

pub(super) fn payment_postings(event: &PaymentEvent, known: &Known) -> Vec<Draft> {
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
pub(super) fn payout_postings(event: &PayoutEvent) -> Vec<Draft> {
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

pub(super) fn commission_postings(event: &CommissionEvent) -> Vec<Draft> {
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
