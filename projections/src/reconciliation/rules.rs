//! The reconciliation rules, pure: what in the facts of invoices, payments, commissions and
//! payouts is a mismatch, each naming the streams involved.

use domain::commission::pro_rata_clawback_halalas;
use std::collections::{BTreeMap, BTreeSet};

use super::*;

pub(super) fn invoice_mismatches(facts: &Facts, found: &mut Vec<Mismatch>) {
    for (invoice_id, invoice) in &facts.invoices {
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
        let past_due = invoice.due_at_us < facts.now_us;
        if invoice.status == "partially_paid" && past_due {
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
}

pub(super) fn payment_mismatches(facts: &Facts, found: &mut Vec<Mismatch>) {
    let recorded: BTreeSet<&str> = facts
        .invoices
        .values()
        .flat_map(|invoice| invoice.payments.keys().map(String::as_str))
        .collect();
    let by_moyasar_id: BTreeMap<&str, &str> = facts
        .invoices
        .iter()
        .filter_map(|(id, invoice)| Some((invoice.moyasar_invoice_id.as_deref()?, id.as_str())))
        .collect();
    for (payment_id, payment) in &facts.payments {
        if !payment.collected || recorded.contains(payment_id.as_str()) {
            continue;
        }
        let mismatch = match facts.invoice_of(payment, &by_moyasar_id) {
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
}

pub(super) fn commission_mismatches(facts: &Facts, found: &mut Vec<Mismatch>) {
    for (commission_id, commission) in &facts.commissions {
        if commission.status == "rejected" {
            continue;
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
            continue;
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
            continue;
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
}

pub(super) fn payout_mismatches(facts: &Facts, found: &mut Vec<Mismatch>) {
    let mut payouts: BTreeMap<&str, Vec<(&String, &CommissionFact)>> = BTreeMap::new();
    for (commission_id, commission) in &facts.commissions {
        if let Some(payout_id) = &commission.payout_id {
            payouts
                .entry(payout_id)
                .or_default()
                .push((commission_id, commission));
        }
        if let Some(net) = commission.net_at_payout_halalas {
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
    }
    for (payout_id, commissions) in payouts {
        let partners: BTreeSet<&str> = commissions
            .iter()
            .map(|(_, c)| c.partner_id.as_str())
            .collect();
        if partners.len() > 1 {
            found.push(Mismatch::new(
                "payout_mixes_partners",
                commissions.iter().map(|(_, c)| c.stream_id.clone()),
                format!(
                    "payout {payout_id} pays commissions of {} partners: {}",
                    partners.len(),
                    partners.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
}
