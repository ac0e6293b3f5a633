//! Given/when/then tests of a provider's reconciliation of one day.

use cqrs_es::test::TestFramework;
use time::macros::datetime;

use super::*;

type ReconciliationTest = TestFramework<ProviderReconciliation>;

fn payment(id: &str, status: &str, amount: i64, fee: i64, refunded: i64) -> PaymentSnapshot {
    PaymentSnapshot {
        payment_id: id.into(),
        status: status.into(),
        amount_halalas: amount,
        fee_halalas: fee,
        refunded_halalas: refunded,
        invoice_id: Some(format!("invoice-of-{id}")),
    }
}

fn run(
    provider: Vec<PaymentSnapshot>,
    ledger: Vec<PaymentSnapshot>,
) -> ProviderReconciliationCommand {
    ProviderReconciliationCommand::RecordRun {
        provider: "moyasar".into(),
        date: "2026-12-06".into(),
        provider_payments: provider,
        ledger_payments: ledger,
        at: datetime!(2026-12-07 00:05 UTC),
    }
}

fn recorded(
    run: u32,
    provider_payments: u64,
    ledger_payments: u64,
    findings: Vec<Finding>,
) -> ProviderReconciliationEvent {
    ProviderReconciliationEvent::ReconciliationRecorded {
        provider: "moyasar".into(),
        date: "2026-12-06".into(),
        run,
        provider_payments,
        ledger_payments,
        findings,
        at: datetime!(2026-12-07 00:05 UTC),
    }
}

#[test]
fn a_clean_day_is_recorded_with_no_findings() {
    let same = payment("p1", "paid", 344_885, 8_000, 0);
    ReconciliationTest::with(())
        .given_no_previous_events()
        .when(run(vec![same.clone()], vec![same]))
        .then_expect_events(vec![recorded(1, 1, 1, vec![])]);
}

/// Provider and ledger payments that differ in every way a finding names, one payment each.
fn one_of_each_difference() -> (Vec<PaymentSnapshot>, Vec<PaymentSnapshot>) {
    let provider = vec![
        payment("missing", "paid", 1_000, 10, 0),
        payment("amount", "paid", 2_000, 10, 0),
        payment("status", "refunded", 3_000, 10, 3_000),
        payment("fee", "paid", 4_000, 99, 0),
        payment("refund", "refunded", 5_000, 10, 2_500),
    ];
    let ledger = vec![
        payment("unknown", "paid", 6_000, 10, 0),
        payment("amount", "paid", 2_100, 10, 0),
        payment("status", "paid", 3_000, 10, 3_000),
        payment("fee", "paid", 4_000, 10, 0),
        payment("refund", "refunded", 5_000, 10, 1_000),
    ];
    (provider, ledger)
}

#[test]
fn each_kind_of_difference_is_a_finding_of_its_own() {
    let (provider, ledger) = one_of_each_difference();
    let findings = compare(&provider, &ledger).unwrap();
    let kinds: Vec<(FindingKind, &str)> = findings
        .iter()
        .map(|finding| (finding.kind, finding.payment_id.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (FindingKind::MissingInLedger, "missing"),
            (FindingKind::UnknownToProvider, "unknown"),
            (FindingKind::AmountDiffers, "amount"),
            (FindingKind::StatusDiffers, "status"),
            (FindingKind::FeeDiffers, "fee"),
            (FindingKind::RefundDiffers, "refund"),
        ]
    );
    let amount = &findings[2];
    assert_eq!(amount.ledger.as_deref(), Some("2100"));
    assert_eq!(amount.provider.as_deref(), Some("2000"));
    ReconciliationTest::with(())
        .given_no_previous_events()
        .when(run(provider, ledger))
        .then_expect_events(vec![recorded(1, 5, 5, findings)]);
}

#[test]
fn a_provider_payment_naming_no_invoice_of_ours_is_missing_and_unmatched() {
    let mut stray = payment("stray", "paid", 1_000, 10, 0);
    stray.invoice_id = None;
    let findings = compare(&[stray], &[]).unwrap();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, FindingKind::MissingInLedger);
    assert_eq!(findings[0].invoice_id, None);
    assert!(findings[0].detail.contains("names no invoice of ours"));
}

#[test]
fn a_run_that_finds_what_the_last_one_found_adds_nothing() {
    let missing = payment("missing", "paid", 1_000, 10, 0);
    let findings = compare(std::slice::from_ref(&missing), &[]).unwrap();
    ReconciliationTest::with(())
        .given(vec![recorded(1, 1, 0, findings)])
        .when(run(vec![missing], vec![]))
        .then_expect_events(vec![]);
}

#[test]
fn a_run_after_the_difference_was_fixed_records_the_clean_state() {
    let missing = payment("missing", "paid", 1_000, 10, 0);
    let findings = compare(std::slice::from_ref(&missing), &[]).unwrap();
    ReconciliationTest::with(())
        .given(vec![recorded(1, 1, 0, findings)])
        .when(run(vec![missing.clone()], vec![missing]))
        .then_expect_events(vec![recorded(2, 1, 1, vec![])]);
}

#[test]
fn a_payment_listed_twice_is_refused() {
    let twice = payment("p1", "paid", 1_000, 10, 0);
    ReconciliationTest::with(())
        .given_no_previous_events()
        .when(run(vec![twice.clone(), twice], vec![]))
        .then_expect_error(ProviderReconciliationError::DuplicatePayment {
            payment_id: "p1".into(),
            side: "provider",
        });
}

#[test]
fn a_day_that_is_not_a_calendar_day_is_refused() {
    for date in ["2026-02-30", "2026-13-01", "26-12-06", "2026/12/06", ""] {
        let command = ProviderReconciliationCommand::RecordRun {
            provider: "moyasar".into(),
            date: date.into(),
            provider_payments: vec![],
            ledger_payments: vec![],
            at: datetime!(2026-12-07 00:05 UTC),
        };
        ReconciliationTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(ProviderReconciliationError::InvalidDate { date: date.into() });
    }
    assert!(is_calendar_day("2028-02-29"));
}

#[test]
fn a_run_of_another_day_on_this_stream_is_refused() {
    let command = ProviderReconciliationCommand::RecordRun {
        provider: "moyasar".into(),
        date: "2026-12-05".into(),
        provider_payments: vec![],
        ledger_payments: vec![],
        at: datetime!(2026-12-07 00:05 UTC),
    };
    ReconciliationTest::with(())
        .given(vec![recorded(1, 0, 0, vec![])])
        .when(command)
        .then_expect_error(ProviderReconciliationError::OtherDay {
            recorded: "moyasar:2026-12-06".into(),
            reported: "moyasar:2026-12-05".into(),
        });
}

// --- schema fixtures ------------------------------------------------------------------------

/// A run with a finding of every kind, as `decide` records it: the source of the stored schema
/// fixture (`crate::upcast`).
pub(crate) fn samples() -> Vec<ProviderReconciliationEvent> {
    let (provider, ledger) = one_of_each_difference();
    ProviderReconciliation::default()
        .decide(run(provider, ledger))
        .unwrap()
}
