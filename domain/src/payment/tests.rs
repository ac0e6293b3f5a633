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

const ALL: [PaymentStatus; 8] = [
    Initiated, Authorized, Captured, Paid, Failed, Refunded, Voided, Verified,
];

/// A report that may stand in `status`: refunded ones carry a refund.
fn refunded_in(status: PaymentStatus, refunded_halalas: i64) -> i64 {
    if status == Refunded {
        refunded_halalas
    } else {
        0
    }
}

#[test]
fn precedes_is_the_transitive_closure_of_the_legal_moves() {
    for from in ALL {
        let mut reachable: Vec<PaymentStatus> = Vec::new();
        let mut frontier = vec![from];
        while let Some(status) = frontier.pop() {
            for next in ALL {
                if status.can_move_to(next) && !reachable.contains(&next) && next != from {
                    reachable.push(next);
                    frontier.push(next);
                }
            }
        }
        for to in ALL {
            assert_eq!(
                from.precedes(to),
                reachable.contains(&to),
                "{from} precedes {to}"
            );
        }
    }
}

#[test]
fn every_forward_jump_over_a_missed_step_records_the_reported_status() {
    let jumps = ALL.iter().flat_map(|from| ALL.map(|to| (*from, to)));
    for (from, to) in jumps.filter(|(from, to)| from.precedes(*to) && !from.can_move_to(*to)) {
        let refunded = refunded_in(to, 1_000);
        let mut expected = vec![event(to, refunded, refunded)];
        if to == Refunded {
            expected.insert(0, event(Paid, 0, 0));
        }
        PaymentTest::with(())
            .given(vec![event(from, 0, 0)])
            .when(report(to, refunded))
            .then_expect_events(expected);
    }
}

#[test]
fn every_report_behind_the_current_status_is_stale() {
    for current in ALL {
        for behind in ALL.into_iter().filter(|status| status.precedes(current)) {
            let recorded = refunded_in(current, 1_000);
            PaymentTest::with(())
                .given(vec![event(current, recorded, recorded)])
                .when(report(behind, 0))
                .then_expect_events(vec![]);
        }
    }
}

#[test]
fn a_paid_report_after_its_refund_is_stale() {
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0), event(Refunded, 5_000, 5_000)])
        .when(report(Paid, 0))
        .then_expect_events(vec![]);
}

#[test]
fn an_authorized_report_after_the_capture_is_stale() {
    PaymentTest::with(())
        .given(vec![event(Authorized, 0, 0), event(Captured, 0, 0)])
        .when(report(Authorized, 0))
        .then_expect_events(vec![]);
}

#[test]
fn an_initiated_report_after_anything_is_stale() {
    for current in ALL.into_iter().filter(|status| *status != Initiated) {
        let recorded = refunded_in(current, 1_000);
        PaymentTest::with(())
            .given(vec![event(current, recorded, recorded)])
            .when(report(Initiated, 0))
            .then_expect_events(vec![]);
    }
}

#[test]
fn a_refunded_report_with_a_smaller_cumulative_refund_is_stale() {
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0), event(Refunded, 5_000, 5_000)])
        .when(report(Refunded, 1_000))
        .then_expect_events(vec![]);
}

#[test]
fn a_failed_report_after_the_payment_was_paid_is_contradictory() {
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0)])
        .when(report(Failed, 0))
        .then_expect_error(PaymentError::IllegalTransition {
            from: Paid,
            to: Failed,
        });
}

#[test]
fn a_paid_report_after_a_failure_or_a_void_is_contradictory() {
    for terminal in [Failed, Voided] {
        PaymentTest::with(())
            .given(vec![event(terminal, 0, 0)])
            .when(report(Paid, 0))
            .then_expect_error(PaymentError::IllegalTransition {
                from: terminal,
                to: Paid,
            });
    }
}

#[test]
fn a_first_report_of_refunded_records_the_missed_payment_then_the_refund() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(report(Refunded, 5_000))
        .then_expect_events(vec![event(Paid, 0, 0), event(Refunded, 5_000, 5_000)]);
}

#[test]
fn a_first_report_of_captured_records_just_the_capture() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(report(Captured, 0))
        .then_expect_events(vec![event(Captured, 0, 0)]);
}

#[test]
fn a_refund_after_a_capture_records_no_payment() {
    PaymentTest::with(())
        .given(vec![event(Authorized, 0, 0), event(Captured, 0, 0)])
        .when(report(Refunded, 1_000))
        .then_expect_events(vec![event(Refunded, 1_000, 1_000)]);
}

#[test]
fn a_refund_jumping_over_a_missed_partial_refund_records_the_difference() {
    PaymentTest::with(())
        .given(vec![event(Paid, 0, 0)])
        .when(report(Refunded, 5_000))
        .then_expect_events(vec![event(Refunded, 5_000, 5_000)]);
}

#[test]
fn a_stale_report_must_still_describe_the_same_payment() {
    let refunded = vec![event(Paid, 0, 0), event(Refunded, 5_000, 5_000)];
    let stale = |change: fn(&mut PaymentCommand)| {
        let mut command = report(Paid, 0);
        change(&mut command);
        command
    };
    PaymentTest::with(())
        .given(refunded.clone())
        .when(stale(|command| {
            let PaymentCommand::RecordGatewayStatus { amount_halalas, .. } = command;
            *amount_halalas = AMOUNT + 1;
        }))
        .then_expect_error(PaymentError::AmountChanged {
            recorded_halalas: AMOUNT,
            reported_halalas: AMOUNT + 1,
        });
    PaymentTest::with(())
        .given(refunded.clone())
        .when(stale(|command| {
            let PaymentCommand::RecordGatewayStatus { invoice_id, .. } = command;
            *invoice_id = Some("invoice-2".into());
        }))
        .then_expect_error(PaymentError::InvoiceIdMismatch {
            recorded: "invoice-1".into(),
            reported: "invoice-2".into(),
        });
    PaymentTest::with(())
        .given(refunded.clone())
        .when(stale(|command| {
            let PaymentCommand::RecordGatewayStatus { currency, .. } = command;
            *currency = "USD".into();
        }))
        .then_expect_error(PaymentError::UnsupportedCurrency {
            currency: "USD".into(),
        });
    PaymentTest::with(())
        .given(refunded)
        .when(report(Refunded, AMOUNT + 1))
        .then_expect_error(PaymentError::RefundedOutOfRange {
            refunded_halalas: AMOUNT + 1,
            amount_halalas: AMOUNT,
        });
}

#[test]
fn every_transition_neither_ahead_nor_behind_is_illegal() {
    for from in ALL {
        for to in ALL {
            if from == to || from.precedes(to) || to.precedes(from) {
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
fn an_amount_above_the_ceiling_is_rejected_naming_the_field() {
    let error = crate::money::MoneyError::AboveCeiling {
        field: "amount_halalas".into(),
        amount_halalas: 8_000_000_000_000_000_000,
    };
    PaymentTest::with(())
        .given_no_previous_events()
        .when(report_with(|command| {
            let PaymentCommand::RecordGatewayStatus { amount_halalas, .. } = command;
            *amount_halalas = 8_000_000_000_000_000_000;
        }))
        .then_expect_error(PaymentError::Money(error));
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
fn a_report_ahead_with_a_smaller_refunded_amount_is_rejected() {
    PaymentTest::with(())
        .given(vec![event(Paid, 5_000, 0)])
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

/// A realistic life of a card payment, in the order Moyasar produced it: initiated
/// (no fee yet), paid, a partial refund, then the rest refunded.
fn a_realistic_life() -> Vec<PaymentCommand> {
    let initiated = PaymentCommand::RecordGatewayStatus {
        payment_id: "pay-1".into(),
        invoice_id: Some("invoice-1".into()),
        moyasar_invoice_id: Some("moy-1".into()),
        status: Initiated,
        amount_halalas: AMOUNT,
        fee_halalas: 0,
        captured_halalas: 0,
        refunded_halalas: 0,
        currency: "SAR".into(),
        at: at(),
    };
    vec![
        initiated,
        report(Paid, 0),
        report(Refunded, 1_000),
        report(Refunded, AMOUNT),
    ]
}

/// Folds the reports in the given order, as the command handler would, and returns
/// the payment and every event recorded; every report must be accepted.
fn fold(reports: &[PaymentCommand]) -> Result<(Payment, Vec<PaymentEvent>), PaymentError> {
    let mut payment = Payment::default();
    let mut recorded = Vec::new();
    for report in reports {
        for event in payment.decide(report.clone())? {
            payment.apply(event.clone());
            recorded.push(event);
        }
    }
    Ok((payment, recorded))
}

/// Every report of the realistic life at least once, some of them again, in any order.
fn any_arrival_order() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..4_usize, 0..8).prop_flat_map(|repeats| {
        let mut arrivals = vec![0, 1, 2, 3];
        arrivals.extend(repeats);
        Just(arrivals).prop_shuffle()
    })
}

proptest! {
    #[test]
    fn any_arrival_order_of_a_payments_reports_ends_in_the_same_state(
        arrivals in any_arrival_order()
    ) {
        let life = a_realistic_life();
        let (in_order, _) = fold(&life).unwrap();
        let shuffled: Vec<PaymentCommand> =
            arrivals.iter().map(|index| life[*index].clone()).collect();
        let (payment, events) = fold(&shuffled).unwrap();
        prop_assert_eq!(&payment, &in_order);
        prop_assert_eq!(payment.status(), Some(Refunded));
        prop_assert_eq!(payment.net_collected_halalas(), 0);
        let paid = events.iter().filter(|event| event.status() == Paid).count();
        prop_assert_eq!(paid, 1);
        let refunded: i64 = events
            .iter()
            .map(|event| match event {
                PaymentEvent::PaymentRefunded { refund_delta_halalas, .. } => *refund_delta_halalas,
                _ => 0,
            })
            .sum();
        prop_assert_eq!(refunded, AMOUNT);
    }
}

// --- schema fixtures ------------------------------------------------------------------------

/// One of each payment event, one per status, as a gateway report records it: the source of
/// the stored schema fixtures (`crate::upcast`).
pub(crate) fn samples() -> Vec<PaymentEvent> {
    ALL.iter()
        .map(|&status| {
            let refunded = refunded_in(status, 100_000);
            event(status, refunded, refunded)
        })
        .collect()
}
