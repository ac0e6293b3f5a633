//! Given/when/then tests of every payout-batch rule, and properties of its arithmetic.

use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use cqrs_es::DomainEvent;
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

type PayoutTest = TestFramework<PayoutBatch>;

const MINIMUM: i64 = 10_000;

fn day(days: i64) -> OffsetDateTime {
    datetime!(2025-04-01 09:00 UTC) + Duration::days(days)
}

fn item(commission_id: &str, amount_halalas: i64) -> PayoutItem {
    PayoutItem {
        commission_id: commission_id.into(),
        amount_halalas,
    }
}

fn carry(commission_id: &str, amount_halalas: i64) -> CarriedItem {
    CarriedItem {
        commission_id: commission_id.into(),
        amount_halalas,
    }
}

fn items() -> Vec<PayoutItem> {
    vec![item("commission-1", 29_990), item("commission-2", 15_000)]
}

fn carried() -> Vec<CarriedItem> {
    vec![carry("commission-0", -5_000)]
}

fn create_with(items: Vec<PayoutItem>, carried: Vec<CarriedItem>) -> PayoutCommand {
    PayoutCommand::Create {
        payout_id: "payout-1".into(),
        partner_id: "partner-1".into(),
        items,
        carried,
        minimum_halalas: MINIMUM,
        at: day(0),
    }
}

fn create() -> PayoutCommand {
    create_with(items(), carried())
}

fn created() -> PayoutEvent {
    PayoutEvent::PayoutCreated {
        payout_id: "payout-1".into(),
        partner_id: "partner-1".into(),
        items: items(),
        carried: carried(),
        gross_halalas: 44_990,
        carried_halalas: -5_000,
        net_halalas: 39_990,
        created_at: day(0),
    }
}

fn paid() -> PayoutEvent {
    PayoutEvent::PayoutPaid {
        payout_id: "payout-1".into(),
        partner_id: "partner-1".into(),
        net_halalas: 39_990,
        reference: "bank-transfer-77".into(),
        paid_at: day(2),
    }
}

fn canceled() -> PayoutEvent {
    PayoutEvent::PayoutCanceled {
        payout_id: "payout-1".into(),
        partner_id: "partner-1".into(),
        reason: "wrong IBAN".into(),
        canceled_at: day(1),
    }
}

fn mark_paid() -> PayoutCommand {
    PayoutCommand::MarkPaid {
        reference: "bank-transfer-77".into(),
        at: day(2),
    }
}

fn cancel() -> PayoutCommand {
    PayoutCommand::Cancel {
        reason: "wrong IBAN".into(),
        at: day(1),
    }
}

// --- create ---------------------------------------------------------------------------------

#[test]
fn a_payout_nets_its_commissions_less_the_clawbacks_it_carries() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create())
        .then_expect_events(vec![created()]);
}

#[test]
fn a_payout_without_carried_clawbacks_nets_its_gross() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create_with(items(), vec![]))
        .then_expect_events(vec![PayoutEvent::PayoutCreated {
            payout_id: "payout-1".into(),
            partner_id: "partner-1".into(),
            items: items(),
            carried: vec![],
            gross_halalas: 44_990,
            carried_halalas: 0,
            net_halalas: 44_990,
            created_at: day(0),
        }]);
}

#[test]
fn a_payout_netting_exactly_the_minimum_is_created() {
    let event = PayoutBatch::default()
        .decide(create_with(
            vec![item("commission-1", 15_000)],
            vec![carry("commission-0", -5_000)],
        ))
        .unwrap();
    assert!(matches!(
        event.as_slice(),
        [PayoutEvent::PayoutCreated {
            net_halalas: MINIMUM,
            ..
        }]
    ));
}

#[test]
fn a_payout_one_halala_below_the_minimum_is_rejected() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create_with(
            vec![item("commission-1", 15_000)],
            vec![carry("commission-0", -5_001)],
        ))
        .then_expect_error(PayoutError::BelowMinimum {
            net_halalas: 9_999,
            minimum_halalas: MINIMUM,
        });
}

#[test]
fn a_payout_whose_clawbacks_outweigh_its_commissions_is_below_the_minimum() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create_with(
            vec![item("commission-1", 1_000)],
            vec![carry("commission-0", -3_000)],
        ))
        .then_expect_error(PayoutError::BelowMinimum {
            net_halalas: -2_000,
            minimum_halalas: MINIMUM,
        });
}

#[test]
fn a_payout_netting_zero_is_rejected_even_without_a_minimum() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(PayoutCommand::Create {
            payout_id: "payout-1".into(),
            partner_id: "partner-1".into(),
            items: vec![item("commission-1", 3_000)],
            carried: vec![carry("commission-0", -3_000)],
            minimum_halalas: 0,
            at: day(0),
        })
        .then_expect_error(PayoutError::NothingToPay { net_halalas: 0 });
}

#[test]
fn a_negative_minimum_is_rejected() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(PayoutCommand::Create {
            payout_id: "payout-1".into(),
            partner_id: "partner-1".into(),
            items: items(),
            carried: vec![],
            minimum_halalas: -1,
            at: day(0),
        })
        .then_expect_error(PayoutError::NegativeMinimum {
            minimum_halalas: -1,
        });
}

#[test]
fn a_payout_without_commissions_is_rejected() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create_with(vec![], carried()))
        .then_expect_error(PayoutError::NoCommissions);
}

#[test]
fn an_item_of_zero_or_less_is_rejected() {
    for amount_halalas in [0, -1] {
        PayoutTest::with(())
            .given_no_previous_events()
            .when(create_with(
                vec![
                    item("commission-1", 50_000),
                    item("commission-2", amount_halalas),
                ],
                vec![],
            ))
            .then_expect_error(PayoutError::NonPositiveItem {
                commission_id: "commission-2".into(),
                amount_halalas,
            });
    }
}

#[test]
fn a_carried_amount_of_zero_or_more_is_rejected() {
    for amount_halalas in [0, 1] {
        PayoutTest::with(())
            .given_no_previous_events()
            .when(create_with(
                items(),
                vec![carry("commission-0", amount_halalas)],
            ))
            .then_expect_error(PayoutError::NonNegativeCarried {
                commission_id: "commission-0".into(),
                amount_halalas,
            });
    }
}

#[test]
fn a_commission_paid_twice_in_one_payout_is_rejected() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create_with(
            vec![item("commission-1", 20_000), item("commission-1", 20_000)],
            vec![],
        ))
        .then_expect_error(PayoutError::DuplicateCommission {
            commission_id: "commission-1".into(),
        });
}

#[test]
fn a_commission_both_paid_and_carried_in_one_payout_is_rejected() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create_with(items(), vec![carry("commission-2", -1_000)]))
        .then_expect_error(PayoutError::DuplicateCommission {
            commission_id: "commission-2".into(),
        });
}

#[test]
fn a_line_without_a_commission_id_is_rejected() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create_with(vec![item(" ", 20_000)], vec![]))
        .then_expect_error(PayoutError::CommissionIdRequired);
}

#[test]
fn a_payout_without_a_payout_id_or_a_partner_id_is_rejected() {
    let cases = [
        ("", "partner-1", PayoutError::PayoutIdRequired),
        ("payout-1", " ", PayoutError::PartnerIdRequired),
    ];
    for (payout_id, partner_id, error) in cases {
        PayoutTest::with(())
            .given_no_previous_events()
            .when(PayoutCommand::Create {
                payout_id: payout_id.into(),
                partner_id: partner_id.into(),
                items: items(),
                carried: vec![],
                minimum_halalas: MINIMUM,
                at: day(0),
            })
            .then_expect_error(error);
    }
}

#[test]
fn a_payout_with_too_many_lines_is_rejected() {
    let items: Vec<PayoutItem> = (0..=MAX_PAYOUT_LINES)
        .map(|n| item(&format!("commission-{n}"), 100))
        .collect();
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create_with(items, vec![]))
        .then_expect_error(PayoutError::TooManyLines {
            lines: MAX_PAYOUT_LINES + 1,
            max: MAX_PAYOUT_LINES,
        });
}

#[test]
fn a_gross_that_overflows_is_an_error_not_a_panic() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create_with(
            vec![item("commission-1", i64::MAX), item("commission-2", 1)],
            vec![],
        ))
        .then_expect_error(PayoutError::Money(MoneyError::Overflow));
}

#[test]
fn carried_clawbacks_that_overflow_are_an_error_not_a_panic() {
    PayoutTest::with(())
        .given_no_previous_events()
        .when(create_with(
            items(),
            vec![carry("commission-8", i64::MIN), carry("commission-9", -1)],
        ))
        .then_expect_error(PayoutError::Money(MoneyError::Overflow));
}

#[test]
fn creating_the_same_payout_again_changes_nothing() {
    let later_retry = PayoutCommand::Create {
        payout_id: "payout-1".into(),
        partner_id: "partner-1".into(),
        items: items(),
        carried: carried(),
        minimum_halalas: 20_000,
        at: day(5),
    };
    for history in [
        vec![created()],
        vec![created(), paid()],
        vec![created(), canceled()],
    ] {
        PayoutTest::with(())
            .given(history.clone())
            .when(create())
            .then_expect_events(vec![]);
        PayoutTest::with(())
            .given(history)
            .when(later_retry.clone())
            .then_expect_events(vec![]);
    }
}

#[test]
fn creating_a_different_payout_under_the_same_id_is_rejected() {
    let different = [
        create_with(vec![item("commission-1", 29_990)], carried()),
        create_with(items(), vec![]),
        PayoutCommand::Create {
            payout_id: "payout-1".into(),
            partner_id: "partner-2".into(),
            items: items(),
            carried: carried(),
            minimum_halalas: MINIMUM,
            at: day(0),
        },
    ];
    for command in different {
        PayoutTest::with(())
            .given(vec![created()])
            .when(command)
            .then_expect_error(PayoutError::PayoutAlreadyCreated);
    }
}

// --- pay --------------------------------------------------------------------------------------

#[test]
fn a_created_payout_is_paid_with_its_transfer_reference() {
    PayoutTest::with(())
        .given(vec![created()])
        .when(mark_paid())
        .then_expect_events(vec![paid()]);
}

#[test]
fn paying_a_payout_twice_is_rejected() {
    PayoutTest::with(())
        .given(vec![created(), paid()])
        .when(mark_paid())
        .then_expect_error(PayoutError::PayoutAlreadyPaid);
}

#[test]
fn paying_without_a_reference_is_rejected() {
    PayoutTest::with(())
        .given(vec![created()])
        .when(PayoutCommand::MarkPaid {
            reference: "  ".into(),
            at: day(2),
        })
        .then_expect_error(PayoutError::PaymentReferenceRequired);
}

#[test]
fn paying_a_canceled_payout_is_rejected() {
    PayoutTest::with(())
        .given(vec![created(), canceled()])
        .when(mark_paid())
        .then_expect_error(PayoutError::PayoutAlreadyCanceled);
}

#[test]
fn paying_or_canceling_a_payout_never_created_is_rejected() {
    for command in [mark_paid(), cancel()] {
        PayoutTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(PayoutError::PayoutNotCreated);
    }
}

// --- cancel ----------------------------------------------------------------------------------

#[test]
fn a_created_payout_is_canceled_with_a_reason() {
    PayoutTest::with(())
        .given(vec![created()])
        .when(cancel())
        .then_expect_events(vec![canceled()]);
}

#[test]
fn canceling_without_a_reason_is_rejected() {
    PayoutTest::with(())
        .given(vec![created()])
        .when(PayoutCommand::Cancel {
            reason: String::new(),
            at: day(1),
        })
        .then_expect_error(PayoutError::CancellationReasonRequired);
}

#[test]
fn canceling_a_paid_payout_is_rejected() {
    PayoutTest::with(())
        .given(vec![created(), paid()])
        .when(cancel())
        .then_expect_error(PayoutError::PayoutAlreadyPaid);
}

#[test]
fn canceling_a_canceled_payout_is_rejected() {
    PayoutTest::with(())
        .given(vec![created(), canceled()])
        .when(cancel())
        .then_expect_error(PayoutError::PayoutAlreadyCanceled);
}

// --- state and serialization -------------------------------------------------------------

#[test]
fn a_payout_remembers_its_partner_lines_amounts_and_status() {
    let mut payout = PayoutBatch::default();
    assert_eq!(payout.status(), None);
    payout.apply(created());
    assert_eq!(payout.payout_id(), "payout-1");
    assert_eq!(payout.partner_id(), "partner-1");
    assert_eq!(payout.status(), Some(PayoutStatus::Created));
    assert_eq!(payout.items(), items().as_slice());
    assert_eq!(payout.carried(), carried().as_slice());
    assert_eq!(payout.gross_halalas(), 44_990);
    assert_eq!(payout.carried_halalas(), -5_000);
    assert_eq!(payout.net_halalas(), 39_990);
    assert_eq!(payout.reference(), None);
    payout.apply(paid());
    assert_eq!(payout.status(), Some(PayoutStatus::Paid));
    assert_eq!(payout.reference(), Some("bank-transfer-77"));

    let mut canceled_payout = PayoutBatch::default();
    canceled_payout.apply(created());
    canceled_payout.apply(canceled());
    assert_eq!(canceled_payout.status(), Some(PayoutStatus::Canceled));
}

#[test]
fn payout_events_are_named_for_their_variant_and_serialize_flat() {
    assert_eq!(created().event_type(), "PayoutCreated");
    assert_eq!(paid().event_type(), "PayoutPaid");
    assert_eq!(canceled().event_type(), "PayoutCanceled");
    assert_eq!(paid().event_version(), "1");
    assert_eq!(PayoutBatch::TYPE, "payout");

    let json = serde_json::to_value(created()).unwrap();
    let body = &json["PayoutCreated"];
    assert_eq!(body["net_halalas"], 39_990);
    assert_eq!(body["carried"][0]["commission_id"], "commission-0");
    assert_eq!(body["carried"][0]["amount_halalas"], -5_000);
    assert_eq!(body["created_at"], "2025-04-01T09:00:00Z");
    let back: PayoutEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, created());
    assert_eq!(
        serde_json::to_value(PayoutStatus::Canceled).unwrap(),
        "canceled"
    );
}

// --- properties ----------------------------------------------------------------------------

fn lines(item_amounts: &[i64], carried_amounts: &[i64]) -> (Vec<PayoutItem>, Vec<CarriedItem>) {
    let items = item_amounts
        .iter()
        .enumerate()
        .map(|(n, amount)| item(&format!("item-{n}"), *amount))
        .collect();
    let carried = carried_amounts
        .iter()
        .enumerate()
        .map(|(n, amount)| carry(&format!("carried-{n}"), *amount))
        .collect();
    (items, carried)
}

proptest! {
    #[test]
    fn a_created_payout_nets_gross_plus_carried_and_never_below_the_minimum(
        item_amounts in proptest::collection::vec(1i64..5_000_000, 1..20),
        carried_amounts in proptest::collection::vec(-5_000_000i64..=-1, 0..10),
        minimum_halalas in 0i64..20_000_000,
    ) {
        let (items, carried) = lines(&item_amounts, &carried_amounts);
        let gross: i64 = item_amounts.iter().sum();
        let carried_sum: i64 = carried_amounts.iter().sum();
        let decision = PayoutBatch::default().decide(PayoutCommand::Create {
            payout_id: "payout-1".into(),
            partner_id: "partner-1".into(),
            items,
            carried,
            minimum_halalas,
            at: day(0),
        });
        match decision {
            Ok(events) => {
                let [PayoutEvent::PayoutCreated {
                    gross_halalas,
                    carried_halalas,
                    net_halalas,
                    ..
                }] = events.as_slice() else {
                    panic!("expected one PayoutCreated, got {events:?}");
                };
                prop_assert_eq!(*gross_halalas, gross);
                prop_assert_eq!(*carried_halalas, carried_sum);
                prop_assert_eq!(*net_halalas, gross_halalas + carried_halalas);
                prop_assert!(*carried_halalas <= 0);
                prop_assert!(*net_halalas >= minimum_halalas);
                prop_assert!(*net_halalas > 0);
            }
            Err(PayoutError::BelowMinimum { net_halalas, minimum_halalas: minimum }) => {
                prop_assert_eq!(net_halalas, gross + carried_sum);
                prop_assert_eq!(minimum, minimum_halalas);
                prop_assert!(net_halalas < minimum);
            }
            Err(PayoutError::NothingToPay { net_halalas }) => {
                prop_assert_eq!(net_halalas, gross + carried_sum);
                prop_assert!(net_halalas <= 0);
                prop_assert_eq!(minimum_halalas, 0);
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn creating_a_payout_never_panics_on_extreme_amounts(
        item_amounts in proptest::collection::vec(any::<i64>(), 0..6),
        carried_amounts in proptest::collection::vec(any::<i64>(), 0..6),
        minimum_halalas in any::<i64>(),
    ) {
        let (items, carried) = lines(&item_amounts, &carried_amounts);
        let decision = PayoutBatch::default().decide(PayoutCommand::Create {
            payout_id: "payout-1".into(),
            partner_id: "partner-1".into(),
            items,
            carried,
            minimum_halalas,
            at: day(0),
        });
        if let Ok(events) = decision {
            let [PayoutEvent::PayoutCreated { gross_halalas, carried_halalas, net_halalas, .. }] =
                events.as_slice() else {
                panic!("expected one PayoutCreated, got {events:?}");
            };
            prop_assert_eq!(
                i128::from(*net_halalas),
                i128::from(*gross_halalas) + i128::from(*carried_halalas)
            );
            prop_assert!(*net_halalas >= minimum_halalas);
        }
    }
}

// --- schema fixtures ------------------------------------------------------------------------

/// One of each payout event, as the rules above decide them: the source of the stored schema
/// fixtures (`crate::upcast`).
pub(crate) fn samples() -> Vec<PayoutEvent> {
    vec![created(), paid(), canceled()]
}
