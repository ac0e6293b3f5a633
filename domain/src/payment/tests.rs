//! Given/when/then tests of every payment transition and rejection.

use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;
use proptest::prelude::*;
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use PaymentStatus::*;

type PaymentTest = TestFramework<Payment>;

const AMOUNT: i64 = 344_885;
const FEE: i64 = 9_000;

fn at() -> OffsetDateTime {
    datetime!(2025-03-01 10:00 UTC)
}

fn report(status: PaymentStatus, refunded_halalas: i64) -> PaymentCommand {
    PaymentCommand::RecordGatewayStatus {
        payment_id: "pay-1".into(),
        invoice_id: Some("invoice-1".into()),
        moyasar_invoice_id: Some("moy-1".into()),
        status,
        amount_halalas: AMOUNT,
        fee_halalas: FEE,
        captured_halalas: AMOUNT,
        refunded_halalas,
        currency: "SAR".into(),
        at: at(),
    }
}

fn report_with(change: impl FnOnce(&mut PaymentCommand)) -> PaymentCommand {
    let mut command = report(Paid, 0);
    change(&mut command);
    command
}

fn snapshot(refunded_halalas: i64) -> GatewayPayment {
    GatewayPayment {
        payment_id: "pay-1".into(),
        invoice_id: Some("invoice-1".into()),
        moyasar_invoice_id: Some("moy-1".into()),
        amount_halalas: AMOUNT,
        fee_halalas: FEE,
        captured_halalas: AMOUNT,
        refunded_halalas,
        currency: Currency::Sar,
    }
}

fn event(status: PaymentStatus, refunded_halalas: i64, delta: i64) -> PaymentEvent {
    PaymentEvent::new(status, snapshot(refunded_halalas), delta, at())
}

// --- every legal transition ----------------------------------------------------

#[test]
fn every_legal_transition_records_its_event() {
    let legal = [
        (Initiated, Authorized),
        (Initiated, Paid),
        (Initiated, Failed),
        (Initiated, Verified),
        (Authorized, Captured),
        (Authorized, Voided),
        (Authorized, Failed),
        (Captured, Paid),
        (Captured, Refunded),
        (Paid, Refunded),
        (Verified, Paid),
        (Verified, Failed),
    ];
    for (from, to) in legal {
        let refunded = if to == Refunded { 1_000 } else { 0 };
        PaymentTest::with(())
            .given(vec![event(from, 0, 0)])
            .when(report(to, refunded))
            .then_expect_events(vec![event(to, refunded, refunded)]);
    }
}

#[test]
fn every_other_transition_is_illegal() {
    let all = [
        Initiated, Authorized, Captured, Paid, Failed, Refunded, Voided, Verified,
    ];
    for from in all {
        for to in all {
            if from == to || from.can_move_to(to) {
                continue;
            }
            let given_refunded = if from == Refunded { 1_000 } else { 0 };
            let refunded = if to == Refunded {
                2_000
            } else {
                given_refunded
            };
            PaymentTest::with(())
                .given(vec![event(from, given_refunded, given_refunded)])
                .when(report(to, refunded))
                .then_expect_error(PaymentError::IllegalTransition { from, to });
        }
    }
}

#[test]
fn a_paid_payment_is_recorded_when_it_is_the_first_report() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(report(Paid, 0))
        .then_expect_events(vec![event(Paid, 0, 0)]);
}

#[test]
fn a_further_partial_refund_is_recorded_with_its_delta() {
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0), event(Refunded, 1_000, 1_000)])
        .when(report(Refunded, 5_000))
        .then_expect_events(vec![event(Refunded, 5_000, 4_000)]);
}

#[test]
fn the_same_report_twice_adds_nothing() {
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0)])
        .when(report(Paid, 0))
        .then_expect_events(vec![]);
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0), event(Refunded, 1_000, 1_000)])
        .when(report(Refunded, 1_000))
        .then_expect_events(vec![]);
}

#[test]
fn the_same_status_with_different_amounts_is_rejected() {
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0)])
        .when(report_with(|command| {
            let PaymentCommand::RecordGatewayStatus { fee_halalas, .. } = command;
            *fee_halalas = 1;
        }))
        .then_expect_error(PaymentError::AmountsChangedWithoutTransition { status: Paid });
}

// --- amount rules ------------------------------------------------------------------

#[test]
fn a_payment_without_an_id_is_rejected() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(report_with(|command| {
            let PaymentCommand::RecordGatewayStatus { payment_id, .. } = command;
            payment_id.clear();
        }))
        .then_expect_error(PaymentError::PaymentIdRequired);
}

#[test]
fn a_report_for_another_payment_is_rejected() {
    PaymentTest::with(())
        .given(vec![event(Initiated, 0, 0)])
        .when(report_with(|command| {
            let PaymentCommand::RecordGatewayStatus { payment_id, .. } = command;
            *payment_id = "pay-2".into();
        }))
        .then_expect_error(PaymentError::PaymentIdMismatch {
            recorded: "pay-1".into(),
            reported: "pay-2".into(),
        });
}

#[test]
fn a_report_for_another_invoice_is_rejected() {
    PaymentTest::with(())
        .given(vec![event(Initiated, 0, 0)])
        .when(report_with(|command| {
            let PaymentCommand::RecordGatewayStatus { invoice_id, .. } = command;
            *invoice_id = Some("invoice-2".into());
        }))
        .then_expect_error(PaymentError::InvoiceIdMismatch {
            recorded: "invoice-1".into(),
            reported: "invoice-2".into(),
        });
}

#[test]
fn a_report_without_an_invoice_keeps_the_known_one() {
    let command = report_with(|command| {
        let PaymentCommand::RecordGatewayStatus { invoice_id, .. } = command;
        *invoice_id = None;
    });
    PaymentTest::with(())
        .given(vec![event(Initiated, 0, 0)])
        .when(command)
        .then_expect_events(vec![event(Paid, 0, 0)]);
}

#[test]
fn a_currency_other_than_sar_is_rejected() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(report_with(|command| {
            let PaymentCommand::RecordGatewayStatus { currency, .. } = command;
            *currency = "USD".into();
        }))
        .then_expect_error(PaymentError::UnsupportedCurrency {
            currency: "USD".into(),
        });
}

#[test]
fn an_amount_that_is_not_positive_is_rejected() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(report_with(|command| {
            let PaymentCommand::RecordGatewayStatus { amount_halalas, .. } = command;
            *amount_halalas = 0;
        }))
        .then_expect_error(PaymentError::AmountNotPositive { amount_halalas: 0 });
}

#[test]
fn a_fee_above_the_amount_or_negative_is_rejected() {
    for fee in [-1, AMOUNT + 1] {
        PaymentTest::with(())
            .given_no_previous_events()
            .when(report_with(|command| {
                let PaymentCommand::RecordGatewayStatus { fee_halalas, .. } = command;
                *fee_halalas = fee;
            }))
            .then_expect_error(PaymentError::FeeOutOfRange {
                fee_halalas: fee,
                amount_halalas: AMOUNT,
            });
    }
}

#[test]
fn a_captured_amount_above_the_amount_is_rejected() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(report_with(|command| {
            let PaymentCommand::RecordGatewayStatus {
                captured_halalas, ..
            } = command;
            *captured_halalas = AMOUNT + 1;
        }))
        .then_expect_error(PaymentError::CapturedOutOfRange {
            captured_halalas: AMOUNT + 1,
            amount_halalas: AMOUNT,
        });
}

#[test]
fn a_refund_above_the_amount_is_rejected() {
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0)])
        .when(report(Refunded, AMOUNT + 1))
        .then_expect_error(PaymentError::RefundedOutOfRange {
            refunded_halalas: AMOUNT + 1,
            amount_halalas: AMOUNT,
        });
}

#[test]
fn a_refunded_status_without_a_refunded_amount_is_rejected() {
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0)])
        .when(report(Refunded, 0))
        .then_expect_error(PaymentError::RefundedStatusWithoutRefund);
}

#[test]
fn a_decreasing_refunded_amount_is_rejected() {
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0), event(Refunded, 5_000, 5_000)])
        .when(report(Refunded, 1_000))
        .then_expect_error(PaymentError::RefundedDecreased {
            recorded_halalas: 5_000,
            reported_halalas: 1_000,
        });
}

#[test]
fn a_changed_payment_amount_is_rejected() {
    PaymentTest::with(())
        .given(vec![event(Initiated, 0, 0)])
        .when(report_with(|command| {
            let PaymentCommand::RecordGatewayStatus { amount_halalas, .. } = command;
            *amount_halalas = AMOUNT + 1;
        }))
        .then_expect_error(PaymentError::AmountChanged {
            recorded_halalas: AMOUNT,
            reported_halalas: AMOUNT + 1,
        });
}

// --- events and state ----------------------------------------------------------------

#[test]
fn payment_events_are_flat_objects_named_for_their_variant() {
    let paid = event(Paid, 0, 0);
    assert_eq!(paid.event_type(), "PaymentPaid");
    assert_eq!(paid.event_version(), "1");
    let json = serde_json::to_value(&paid).unwrap();
    assert_eq!(json["PaymentPaid"]["amount_halalas"], AMOUNT);
    assert_eq!(json["PaymentPaid"]["currency"], "SAR");
    assert_eq!(json["PaymentPaid"]["paid_at"], "2025-03-01T10:00:00Z");
    let back: PaymentEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, paid);
    let refunded = serde_json::to_value(event(Refunded, 10, 10)).unwrap();
    assert_eq!(refunded["PaymentRefunded"]["refund_delta_halalas"], 10);
    assert_eq!(serde_json::to_value(Verified).unwrap(), "verified");
}

#[test]
fn net_collected_is_the_amount_minus_refunds() {
    let mut payment = Payment::default();
    payment.apply(event(Paid, 0, 0));
    assert_eq!(payment.net_collected_halalas(), AMOUNT);
    payment.apply(event(Refunded, 1_000, 1_000));
    assert_eq!(payment.net_collected_halalas(), AMOUNT - 1_000);
    assert_eq!(payment.status(), Some(Refunded));
}

fn any_status() -> impl Strategy<Value = PaymentStatus> {
    prop_oneof![
        Just(Initiated),
        Just(Authorized),
        Just(Captured),
        Just(Paid),
        Just(Failed),
        Just(Refunded),
        Just(Voided),
        Just(Verified),
    ]
}

proptest! {
    #[test]
    fn refunded_never_decreases_nor_exceeds_the_amount(
        reports in proptest::collection::vec((any_status(), 0..=AMOUNT + 10), 1..20)
    ) {
        let mut payment = Payment::default();
        let mut last_refunded = 0;
        for (status, refunded) in reports {
            if let Ok(events) = payment.decide(report(status, refunded)) {
                for event in events {
                    payment.apply(event);
                }
            }
            if let Some(snapshot) = payment.snapshot() {
                prop_assert!(snapshot.refunded_halalas >= last_refunded);
                prop_assert!(snapshot.refunded_halalas <= snapshot.amount_halalas);
                last_refunded = snapshot.refunded_halalas;
            }
        }
    }
}
