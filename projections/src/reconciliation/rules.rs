//! The reconciliation rules, pure: what in the facts of invoices, payments, commissions and
//! payouts is a mismatch, each naming the streams involved.
//!
//! Every mismatch has an [`Owner`]: the one invoice, payment, commission or payout whose rule
//! found it. A rule reads its owner's facts and the facts they refer to, nothing else, so the
//! rules can run over a subset of the facts (the owners a batch may have changed, and what
//! those refer to) and find exactly what a run over every fact finds for those owners
//! ([`mismatches_of`]). What each owner's rule reads:
//!
//! - an invoice: itself, the gateway payments it recorded, and the log's clock (past due);
//! - a payment: itself, whether any invoice recorded it, and the invoice it names (ours, else
//!   the greatest invoice linked to its Moyasar invoice id);
//! - a commission: itself and its invoice;
//! - a payout: every commission paid out under it.

use domain::commission::pro_rata_clawback_halalas;
use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// Every kind of mismatch the rules find, so a stored kind reads back as the rules' own.
pub const KINDS: [&str; 11] = [
    "invoice_paid_without_payment",
    "overpayment",
    "underpayment",
    "refund_mismatch",
    "payment_without_invoice",
    "payment_not_applied",
    "commission_invoice_not_paid",
    "commission_not_clawed_back",
    "commission_over_clawed_back",
    "payout_amount_mismatch",
    "payout_mixes_partners",
];

/// The entity whose rule found a mismatch, by its id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    Invoice(String),
    Payment(String),
    Commission(String),
    Payout(String),
}

impl Owner {
    /// `invoice`, `payment`, `commission` or `payout`.
    pub fn kind(&self) -> &'static str {
        match self {
            Owner::Invoice(_) => "invoice",
            Owner::Payment(_) => "payment",
            Owner::Commission(_) => "commission",
            Owner::Payout(_) => "payout",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Owner::Invoice(id) | Owner::Payment(id) | Owner::Commission(id) | Owner::Payout(id) => {
                id
            }
        }
    }
}

/// The owners whose mismatches to find, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners {
    pub invoices: BTreeSet<String>,
    pub payments: BTreeSet<String>,
    pub commissions: BTreeSet<String>,
    pub payouts: BTreeSet<String>,
}

impl Owners {
    /// Every owner in `facts`: what a full run checks.
    pub fn every(facts: &Facts) -> Owners {
        Owners {
            invoices: facts.invoices.keys().cloned().collect(),
            payments: facts.payments.keys().cloned().collect(),
            commissions: facts.commissions.keys().cloned().collect(),
            payouts: facts
                .commissions
                .values()
                .filter_map(|commission| commission.payout_id.clone())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.invoices.is_empty()
            && self.payments.is_empty()
            && self.commissions.is_empty()
            && self.payouts.is_empty()
    }

    /// Each owner, invoices first.
    pub fn iter(&self) -> impl Iterator<Item = Owner> + '_ {
        let invoices = self.invoices.iter().cloned().map(Owner::Invoice);
        let payments = self.payments.iter().cloned().map(Owner::Payment);
        let commissions = self.commissions.iter().cloned().map(Owner::Commission);
        let payouts = self.payouts.iter().cloned().map(Owner::Payout);
        invoices.chain(payments).chain(commissions).chain(payouts)
    }
}

/// The mismatches of `owners`, each with its owner, in no particular order. `facts` must hold
/// each owner and what its rule reads (the module's list); an owner missing from `facts` (an
/// invoice event for an invoice never issued) has none.
pub fn mismatches_of(facts: &Facts, owners: &Owners) -> Vec<(Owner, Mismatch)> {
    let mut found = Vec::new();
    let mut collect = |owner: Owner, mismatches: Vec<Mismatch>| {
        found.extend(mismatches.into_iter().map(|m| (owner.clone(), m)));
    };
    for invoice_id in &owners.invoices {
        let mut mismatches = Vec::new();
        invoice_mismatches(facts, invoice_id, &mut mismatches);
        collect(Owner::Invoice(invoice_id.clone()), mismatches);
    }
    let links = PaymentLinks::of(facts);
    for payment_id in &owners.payments {
        let mut mismatches = Vec::new();
        payment_mismatches(facts, &links, payment_id, &mut mismatches);
        collect(Owner::Payment(payment_id.clone()), mismatches);
    }
    for commission_id in &owners.commissions {
        let mut mismatches = Vec::new();
        commission_mismatches(facts, commission_id, &mut mismatches);
        collect(Owner::Commission(commission_id.clone()), mismatches);
    }
    let members = payout_members(facts);
    for payout_id in &owners.payouts {
        let mut mismatches = Vec::new();
        payout_mismatches(&members, payout_id, &mut mismatches);
        collect(Owner::Payout(payout_id.clone()), mismatches);
    }
    found
}

fn invoice_mismatches(facts: &Facts, invoice_id: &str, found: &mut Vec<Mismatch>) {
    let Some(invoice) = facts.invoices.get(invoice_id) else {
        return;
    };
    let payment_streams = || invoice.payments.keys().map(|id| facts.payment_stream(id));
    let uncollected: Vec<&str> = invoice
        .payments
        .keys()
        .filter(|id| !facts.payments.get(*id).is_some_and(|p| p.collected))
        .map(String::as_str)
        .collect();
    if !uncollected.is_empty() {
        found.push(Mismatch::new(
            "invoice_paid_without_payment",
            std::iter::once(invoice.stream_id.clone())
                .chain(uncollected.iter().map(|id| facts.payment_stream(id))),
            format!(
                "invoice {invoice_id} recorded payment {} but the gateway never collected it",
                uncollected.join(", ")
            ),
        ));
    }
    if invoice.paid_halalas > invoice.total_halalas {
        found.push(
            Mismatch::new(
                "overpayment",
                std::iter::once(invoice.stream_id.clone()).chain(payment_streams()),
                format!(
                    "invoice {invoice_id} of {} halalas was paid {} halalas: {} too much",
                    invoice.total_halalas,
                    invoice.paid_halalas,
                    invoice.paid_halalas - invoice.total_halalas
                ),
            )
            .amounts(invoice.total_halalas, invoice.paid_halalas),
        );
    }
    if invoice.status == "partially_paid" && is_past_due(invoice, facts.now_us) {
        found.push(
            Mismatch::new(
                "underpayment",
                std::iter::once(invoice.stream_id.clone()).chain(payment_streams()),
                format!(
                    "invoice {invoice_id} is past due with {} of {} halalas paid",
                    invoice.paid_halalas, invoice.total_halalas
                ),
            )
            .amounts(invoice.total_halalas, invoice.paid_halalas),
        );
    }
    let gateway_refunded: i64 = invoice
        .payments
        .keys()
        .filter_map(|id| facts.payments.get(id))
        .map(|p| p.refunded_halalas)
        .sum();
    if gateway_refunded != invoice.refunded_halalas {
        found.push(
            Mismatch::new(
                "refund_mismatch",
                std::iter::once(invoice.stream_id.clone()).chain(payment_streams()),
                format!(
                    "the gateway refunded {gateway_refunded} halalas of invoice {invoice_id}'s payments \
                     but its credit notes refund {}",
                    invoice.refunded_halalas
                ),
            )
            .amounts(gateway_refunded, invoice.refunded_halalas),
        );
    }
}

/// Whether `invoice` is past due at `now_us`: the one rule that reads the clock.
fn is_past_due(invoice: &InvoiceFact, now_us: i64) -> bool {
    invoice.due_at_us < now_us
}

/// The due times whose [`is_past_due`] answer changes when the clock moves from `before_us`
/// to `after_us` (empty unless it moved forward): the invoices the maintained set re-checks
/// for the clock alone.
pub fn due_window(before_us: i64, after_us: i64) -> std::ops::Range<i64> {
    before_us..after_us.max(before_us)
}

/// What the payment rules read of every invoice: which payments were recorded, and which
/// invoice each Moyasar invoice id is linked to.
struct PaymentLinks<'a> {
    recorded: BTreeSet<&'a str>,
    /// Moyasar's invoice id -> ours (the greatest, should two share one).
    by_moyasar_id: BTreeMap<&'a str, &'a str>,
}

impl<'a> PaymentLinks<'a> {
    fn of(facts: &'a Facts) -> PaymentLinks<'a> {
        PaymentLinks {
            recorded: facts
                .invoices
                .values()
                .flat_map(|invoice| invoice.payments.keys().map(String::as_str))
                .collect(),
            by_moyasar_id: facts
                .invoices
                .iter()
                .filter_map(|(id, invoice)| {
                    Some((invoice.moyasar_invoice_id.as_deref()?, id.as_str()))
                })
                .collect(),
        }
    }
}

fn payment_mismatches(
    facts: &Facts,
    links: &PaymentLinks<'_>,
    payment_id: &str,
    found: &mut Vec<Mismatch>,
) {
    let Some(payment) = facts.payments.get(payment_id) else {
        return;
    };
    if !payment.collected || links.recorded.contains(payment_id) {
        return;
    }
    let mismatch = match facts.invoice_of(payment, &links.by_moyasar_id) {
        None => Mismatch::new(
            "payment_without_invoice",
            [payment.stream_id.clone()],
            format!(
                "payment {payment_id} ({}, {} halalas) names no issued invoice (ours: {}, Moyasar's: {})",
                payment.status,
                payment.amount_halalas,
                payment.invoice_id.as_deref().unwrap_or("none"),
                payment.moyasar_invoice_id.as_deref().unwrap_or("none"),
            ),
        ),
        Some(invoice_id) => Mismatch::new(
            "payment_not_applied",
            [payment.stream_id.clone(), facts.invoices[invoice_id].stream_id.clone()],
            format!(
                "payment {payment_id} ({}, {} halalas) was never recorded on invoice {invoice_id} ({})",
                payment.status, payment.amount_halalas, facts.invoices[invoice_id].status
            ),
        ),
    };
    found.push(mismatch.amounts(0, payment.amount_halalas));
}

/// A commission's own mismatches: its invoice not paid, its clawbacks against the invoice's
/// refunds, and what its payout paid against what it netted then.
fn commission_mismatches(facts: &Facts, commission_id: &str, found: &mut Vec<Mismatch>) {
    let Some(commission) = facts.commissions.get(commission_id) else {
        return;
    };
    payout_amount_mismatch(commission_id, commission, found);
    if commission.status == "rejected" {
        return;
    }
    let Some(invoice) = facts.invoices.get(&commission.invoice_id) else {
        found.push(Mismatch::new(
            "commission_invoice_not_paid",
            [
                commission.stream_id.clone(),
                invoice_stream(&commission.invoice_id),
            ],
            format!(
                "commission {commission_id} accrued on invoice {} that was never issued",
                commission.invoice_id
            ),
        ));
        return;
    };
    if invoice.status != "paid" {
        found.push(Mismatch::new(
            "commission_invoice_not_paid",
            [commission.stream_id.clone(), invoice.stream_id.clone()],
            format!(
                "commission {commission_id} accrued on invoice {} which is {}",
                commission.invoice_id, invoice.status
            ),
        ));
    }
    let refunded_base = invoice
        .refunded_base_halalas
        .clamp(0, invoice.subtotal_halalas);
    let expected = if refunded_base == 0 || invoice.subtotal_halalas <= 0 {
        0
    } else {
        pro_rata_clawback_halalas(
            commission.accrued_halalas,
            refunded_base,
            invoice.subtotal_halalas,
        )
        .unwrap_or(0)
        .max(-commission.accrued_halalas)
    };
    let actual = commission.clawed_back_halalas;
    // Each clawback is rounded on its own refund: one halala of slack per refund.
    let tolerance = invoice.refunds.max(1);
    let kind = if actual > expected + tolerance {
        "commission_not_clawed_back"
    } else if actual < expected - tolerance {
        "commission_over_clawed_back"
    } else {
        return;
    };
    found.push(
        Mismatch::new(
            kind,
            [commission.stream_id.clone(), invoice.stream_id.clone()],
            format!(
                "invoice {} refunded {} of its {} halalas before VAT: commission {commission_id} of {} \
                 should be clawed back by {}, was clawed back by {}",
                commission.invoice_id,
                refunded_base,
                invoice.subtotal_halalas,
                commission.accrued_halalas,
                -expected,
                -actual
            ),
        )
        .amounts(expected, actual),
    );
}

fn payout_amount_mismatch(
    commission_id: &str,
    commission: &CommissionFact,
    found: &mut Vec<Mismatch>,
) {
    let Some(net) = commission.net_at_payout_halalas else {
        return;
    };
    if net != commission.paid_out_halalas {
        found.push(
            Mismatch::new(
                "payout_amount_mismatch",
                [commission.stream_id.clone()],
                format!(
                    "commission {commission_id} netted {net} halalas at payout {} but {} were paid",
                    commission.payout_id.as_deref().unwrap_or("?"),
                    commission.paid_out_halalas
                ),
            )
            .amounts(net, commission.paid_out_halalas),
        );
    }
}

/// Payout id -> the commissions paid out under it.
fn payout_members(facts: &Facts) -> BTreeMap<&str, Vec<&CommissionFact>> {
    let mut payouts: BTreeMap<&str, Vec<&CommissionFact>> = BTreeMap::new();
    for commission in facts.commissions.values() {
        if let Some(payout_id) = &commission.payout_id {
            payouts.entry(payout_id).or_default().push(commission);
        }
    }
    payouts
}

fn payout_mismatches(
    members: &BTreeMap<&str, Vec<&CommissionFact>>,
    payout_id: &str,
    found: &mut Vec<Mismatch>,
) {
    let Some(commissions) = members.get(payout_id) else {
        return;
    };
    let partners: BTreeSet<&str> = commissions.iter().map(|c| c.partner_id.as_str()).collect();
    if partners.len() > 1 {
        found.push(Mismatch::new(
            "payout_mixes_partners",
            commissions.iter().map(|c| c.stream_id.clone()),
            format!(
                "payout {payout_id} pays commissions of {} partners: {}",
                partners.len(),
                partners.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
}
