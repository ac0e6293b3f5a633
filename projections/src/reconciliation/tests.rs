//! The comparison rules on hand-written facts, and the maintained set's order key.

use proptest::prelude::*;

use super::maintained::order_key;
use super::*;

fn invoice(status: &str, total: i64, paid: i64, payments: &[(&str, i64)]) -> InvoiceFact {
    InvoiceFact {
        stream_id: "invoice-inv-1".into(),
        moyasar_invoice_id: Some("moy-1".into()),
        subtotal_halalas: total * 100 / 115,
        total_halalas: total,
        due_at_us: 1_000,
        status: status.into(),
        paid_halalas: paid,
        refunded_halalas: 0,
        refunded_base_halalas: 0,
        refunds: 0,
        payments: payments
            .iter()
            .map(|(id, a)| (id.to_string(), *a))
            .collect(),
    }
}

fn payment(invoice_id: Option<&str>, amount: i64) -> PaymentFact {
    PaymentFact {
        stream_id: "payment-pay-1".into(),
        invoice_id: invoice_id.map(str::to_owned),
        moyasar_invoice_id: Some("moy-1".into()),
        status: "paid".into(),
        amount_halalas: amount,
        collected: true,
        refunded_halalas: 0,
    }
}

fn commission(id: &str, partner: &str, payout: &str) -> CommissionFact {
    CommissionFact {
        stream_id: format!("commission-{id}"),
        partner_id: partner.into(),
        invoice_id: "inv-1".into(),
        status: "paid_out".into(),
        accrued_halalas: 1_000,
        clawed_back_halalas: 0,
        adjusted_halalas: 0,
        payout_id: Some(payout.into()),
        paid_out_halalas: 1_000,
        net_at_payout_halalas: Some(1_000),
    }
}

fn kinds(facts: &Facts) -> Vec<&'static str> {
    find_mismatches(facts).into_iter().map(|m| m.kind).collect()
}

#[test]
fn a_payment_naming_only_the_moyasar_invoice_is_matched_through_it() {
    let mut facts = Facts::default();
    facts.invoices.insert(
        "inv-1".into(),
        invoice("paid", 11_500, 11_500, &[("pay-1", 11_500)]),
    );
    facts.payments.insert("pay-1".into(), payment(None, 11_500));
    assert!(kinds(&facts).is_empty());
    // Recorded nowhere, though its invoice exists: not applied, naming both streams.
    facts.invoices.get_mut("inv-1").unwrap().payments.clear();
    let found = find_mismatches(&facts);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].kind, "payment_not_applied");
    assert_eq!(found[0].streams, ["invoice-inv-1", "payment-pay-1"]);
}

#[test]
fn a_partly_paid_invoice_is_an_underpayment_only_once_past_due() {
    let mut facts = Facts::default();
    facts.invoices.insert(
        "inv-1".into(),
        invoice("partially_paid", 11_500, 5_000, &[("pay-1", 5_000)]),
    );
    facts
        .payments
        .insert("pay-1".into(), payment(Some("inv-1"), 5_000));
    facts.now_us = 1_000;
    assert!(kinds(&facts).is_empty());
    facts.now_us = 1_001;
    assert_eq!(kinds(&facts), ["underpayment"]);
}

#[test]
fn a_payout_of_two_partners_commissions_is_a_mismatch() {
    let mut facts = Facts::default();
    facts.invoices.insert(
        "inv-1".into(),
        invoice("paid", 11_500, 11_500, &[("pay-1", 11_500)]),
    );
    facts
        .payments
        .insert("pay-1".into(), payment(Some("inv-1"), 11_500));
    facts
        .commissions
        .insert("c-1".into(), commission("c-1", "p-1", "payout-1"));
    facts
        .commissions
        .insert("c-2".into(), commission("c-2", "p-2", "payout-1"));
    let found = find_mismatches(&facts);
    assert_eq!(kinds(&facts), ["payout_mixes_partners"]);
    assert_eq!(found[0].streams, ["commission-c-1", "commission-c-2"]);
}

#[test]
fn a_refund_within_a_halala_of_its_clawback_reconciles() {
    let mut facts = Facts::default();
    let mut refunded = invoice("paid", 344_885, 344_885, &[("pay-1", 344_885)]);
    refunded.subtotal_halalas = 299_900;
    refunded.refunded_base_halalas = 99_967;
    refunded.refunds = 1;
    refunded.refunded_halalas = 114_962;
    facts.invoices.insert("inv-1".into(), refunded);
    let mut paid = payment(Some("inv-1"), 344_885);
    paid.refunded_halalas = 114_962;
    facts.payments.insert("pay-1".into(), paid);
    let mut earned = commission("c-1", "p-1", "payout-1");
    earned.accrued_halalas = 29_990;
    earned.paid_out_halalas = 29_990;
    earned.net_at_payout_halalas = Some(29_990);
    // A third of 29,990 is 9,996.67: 9,996 or 9,998 are within rounding, 9,990 is not.
    for (clawed, reconciled) in [(-9_996, true), (-9_998, true), (-9_990, false)] {
        earned.clawed_back_halalas = clawed;
        facts.commissions.insert("c-1".into(), earned.clone());
        assert_eq!(
            kinds(&facts).is_empty(),
            reconciled,
            "{clawed}: {:?}",
            kinds(&facts)
        );
    }
}

/// A mismatch of `kind` naming `streams` (sorted by [`Mismatch::new`]).
fn named(kind: usize, streams: Vec<String>) -> Mismatch {
    Mismatch::new(rules::KINDS[kind], streams, String::new())
}

/// Stream ids of the id grammar's alphabet, short so that prefixes of one another are common.
fn stream_ids() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[A-Za-z0-9._:-]{1,4}", 1..4)
}

proptest! {
    /// The stored order key sorts ledger mismatches as [`Mismatch`] does (by kind, then
    /// streams), whichever owner found them, so a page read by key is in the report's order.
    #[test]
    fn the_order_key_sorts_as_mismatches_do(
        (kind_a, streams_a, kind_b, streams_b) in (0..rules::KINDS.len(), stream_ids(), 0..rules::KINDS.len(), stream_ids()),
        (owner_a, owner_b) in ("[a-z0-9-]{1,6}", "[a-z0-9-]{1,6}"),
    ) {
        let (a, b) = (named(kind_a, streams_a), named(kind_b, streams_b));
        let (owner_a, owner_b) = (Owner::Payment(owner_a), Owner::Commission(owner_b));
        let by_key = order_key(&owner_a, &a).cmp(&order_key(&owner_b, &b));
        let by_mismatch = (a.kind, &a.streams).cmp(&(b.kind, &b.streams));
        if by_mismatch.is_ne() {
            prop_assert_eq!(by_key, by_mismatch, "{:?} {:?}", a, b);
        } else {
            prop_assert!(by_key.is_ne(), "the owner tells two apart");
        }
    }
}
