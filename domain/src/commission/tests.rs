//! Given/when/then tests of every commission rule, and properties of its arithmetic.

use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use cqrs_es::DomainEvent;
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

type CommissionTest = TestFramework<PartnerCommission>;

const BASE: i64 = 299_900;
const AMOUNT: i64 = 29_990;

fn day(days: i64) -> OffsetDateTime {
    datetime!(2025-03-01 10:00 UTC) + Duration::days(days)
}

fn accrue() -> CommissionCommand {
    CommissionCommand::Accrue {
        commission_id: "commission-1".into(),
        partner_id: "partner-1".into(),
        invoice_id: "invoice-1".into(),
        lead_id: "lead-1".into(),
        base_halalas: BASE,
        rate_bps: 1_000,
        hold_days: 14,
        at: day(0),
    }
}

fn accrue_with(change: impl FnOnce(&mut CommissionCommand)) -> CommissionCommand {
    let mut command = accrue();
    change(&mut command);
    command
}

fn accrued() -> CommissionEvent {
    CommissionEvent::CommissionAccrued {
        commission_id: "commission-1".into(),
        partner_id: "partner-1".into(),
        invoice_id: "invoice-1".into(),
        lead_id: "lead-1".into(),
        base_halalas: BASE,
        rate_bps: 1_000,
        amount_halalas: AMOUNT,
        held_until: day(14),
        accrued_at: day(0),
    }
}

fn approved() -> CommissionEvent {
    CommissionEvent::CommissionApproved {
        commission_id: "commission-1".into(),
        partner_id: "partner-1".into(),
        amount_halalas: AMOUNT,
        actor: "finance-1".into(),
        approved_at: day(14),
    }
}

fn rejected() -> CommissionEvent {
    CommissionEvent::CommissionRejected {
        commission_id: "commission-1".into(),
        partner_id: "partner-1".into(),
        amount_halalas: AMOUNT,
        actor: "finance-1".into(),
        reason: "self-referral".into(),
        rejected_at: day(15),
    }
}

fn paid_out() -> CommissionEvent {
    CommissionEvent::CommissionPaidOut {
        commission_id: "commission-1".into(),
        partner_id: "partner-1".into(),
        payout_id: "payout-1".into(),
        amount_halalas: AMOUNT,
        paid_out_at: day(30),
    }
}

fn claw_back(refund_id: &str, refunded_base_halalas: i64) -> CommissionCommand {
    CommissionCommand::ClawBack {
        refund_id: refund_id.into(),
        refunded_base_halalas,
        invoice_base_halalas: BASE,
        at: day(40),
    }
}

fn clawed_back(
    refund_id: &str,
    amount_halalas: i64,
    refunded_base_halalas: i64,
    after_payout: bool,
) -> CommissionEvent {
    CommissionEvent::CommissionClawedBack {
        commission_id: "commission-1".into(),
        partner_id: "partner-1".into(),
        invoice_id: "invoice-1".into(),
        refund_id: refund_id.into(),
        amount_halalas,
        refunded_base_halalas,
        invoice_base_halalas: BASE,
        after_payout,
        clawed_back_at: day(40),
    }
}

fn approve(at: OffsetDateTime) -> CommissionCommand {
    CommissionCommand::Approve {
        actor: "finance-1".into(),
        at,
    }
}

fn reject() -> CommissionCommand {
    CommissionCommand::Reject {
        actor: "finance-1".into(),
        reason: "self-referral".into(),
        at: day(15),
    }
}

fn pay_out() -> CommissionCommand {
    CommissionCommand::MarkPaidOut {
        payout_id: "payout-1".into(),
        at: day(30),
    }
}

fn adjust(amount_halalas: i64) -> CommissionCommand {
    CommissionCommand::Adjust {
        amount_halalas,
        reason: "bonus for case study".into(),
        actor: "finance-1".into(),
        at: day(20),
    }
}

// --- accrue -----------------------------------------------------------------------------

#[test]
fn a_commission_accrues_on_the_base_at_the_locked_rate() {
    CommissionTest::with(())
        .given_no_previous_events()
        .when(accrue())
        .then_expect_events(vec![accrued()]);
}

#[test]
fn accruing_twice_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(accrue())
        .then_expect_error(CommissionError::CommissionAlreadyAccrued);
}

#[test]
fn an_accrual_without_ids_is_rejected() {
    CommissionTest::with(())
        .given_no_previous_events()
        .when(accrue_with(|command| {
            if let CommissionCommand::Accrue { partner_id, .. } = command {
                partner_id.clear();
            }
        }))
        .then_expect_error(CommissionError::CommissionIdsRequired);
}

#[test]
fn an_accrual_on_a_base_above_the_amount_ceiling_is_rejected() {
    CommissionTest::with(())
        .given_no_previous_events()
        .when(accrue_with(|command| {
            if let CommissionCommand::Accrue { base_halalas, .. } = command {
                *base_halalas = i64::MAX;
            }
        }))
        .then_expect_error(CommissionError::Money(
            crate::money::MoneyError::AboveCeiling {
                field: "base_halalas".into(),
                amount_halalas: i128::from(i64::MAX),
            },
        ));
}

#[test]
fn an_accrual_on_a_base_that_is_not_positive_is_rejected() {
    CommissionTest::with(())
        .given_no_previous_events()
        .when(accrue_with(|command| {
            if let CommissionCommand::Accrue { base_halalas, .. } = command {
                *base_halalas = 0;
            }
        }))
        .then_expect_error(CommissionError::BaseNotPositive { base_halalas: 0 });
}

#[test]
fn an_accrual_at_a_rate_above_one_hundred_percent_is_rejected() {
    for rate in [0, 10_001] {
        CommissionTest::with(())
            .given_no_previous_events()
            .when(accrue_with(|command| {
                if let CommissionCommand::Accrue { rate_bps, .. } = command {
                    *rate_bps = rate;
                }
            }))
            .then_expect_error(CommissionError::RateOutOfRange { rate_bps: rate });
    }
}

#[test]
fn a_hold_beyond_the_calendar_is_rejected() {
    CommissionTest::with(())
        .given_no_previous_events()
        .when(accrue_with(|command| {
            if let CommissionCommand::Accrue { hold_days, .. } = command {
                *hold_days = u32::MAX;
            }
        }))
        .then_expect_error(CommissionError::HoldPeriodOutOfRange {
            hold_days: u32::MAX,
        });
}

#[test]
fn any_command_before_accrual_is_rejected() {
    CommissionTest::with(())
        .given_no_previous_events()
        .when(approve(day(20)))
        .then_expect_error(CommissionError::CommissionNotAccrued);
}

// --- approve and reject -------------------------------------------------------------------

#[test]
fn a_commission_is_approved_once_its_hold_ends() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(approve(day(14)))
        .then_expect_events(vec![approved()]);
}

#[test]
fn approving_during_the_hold_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(approve(day(14) - Duration::seconds(1)))
        .then_expect_error(CommissionError::CommissionStillHeld { until: day(14) });
}

#[test]
fn approving_twice_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued(), approved()])
        .when(approve(day(15)))
        .then_expect_error(CommissionError::CommissionAlreadyApproved);
}

#[test]
fn approving_a_rejected_commission_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued(), rejected()])
        .when(approve(day(15)))
        .then_expect_error(CommissionError::CommissionAlreadyRejected);
}

#[test]
fn approving_a_paid_out_commission_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued(), approved(), paid_out()])
        .when(approve(day(31)))
        .then_expect_error(CommissionError::CommissionAlreadyPaidOut);
}

#[test]
fn approving_without_an_actor_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(CommissionCommand::Approve {
            actor: String::new(),
            at: day(14),
        })
        .then_expect_error(CommissionError::ActorRequired);
}

#[test]
fn a_commission_is_rejected_with_a_reason() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(reject())
        .then_expect_events(vec![rejected()]);
}

#[test]
fn rejecting_without_a_reason_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(CommissionCommand::Reject {
            actor: "finance-1".into(),
            reason: " ".into(),
            at: day(15),
        })
        .then_expect_error(CommissionError::RejectionReasonRequired);
}

#[test]
fn rejecting_a_paid_out_commission_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued(), approved(), paid_out()])
        .when(reject())
        .then_expect_error(CommissionError::CommissionAlreadyPaidOut);
}

#[test]
fn rejecting_twice_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued(), rejected()])
        .when(reject())
        .then_expect_error(CommissionError::CommissionAlreadyRejected);
}

// --- payout -------------------------------------------------------------------------------

#[test]
fn an_approved_commission_is_paid_out() {
    CommissionTest::with(())
        .given(vec![accrued(), approved()])
        .when(pay_out())
        .then_expect_events(vec![paid_out()]);
}

#[test]
fn paying_out_a_held_commission_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(pay_out())
        .then_expect_error(CommissionError::CommissionNotApproved);
}

#[test]
fn paying_out_twice_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued(), approved(), paid_out()])
        .when(pay_out())
        .then_expect_error(CommissionError::CommissionAlreadyPaidOut);
}

#[test]
fn paying_out_a_fully_clawed_back_commission_is_rejected() {
    CommissionTest::with(())
        .given(vec![
            accrued(),
            approved(),
            clawed_back("refund-1", -AMOUNT, BASE, false),
        ])
        .when(pay_out())
        .then_expect_error(CommissionError::NothingToPayOut { net_halalas: 0 });
}

// --- clawback ---------------------------------------------------------------------------------

#[test]
fn a_full_refund_claws_back_the_whole_commission() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(claw_back("refund-1", BASE))
        .then_expect_events(vec![clawed_back("refund-1", -AMOUNT, BASE, false)]);
}

#[test]
fn a_refund_after_payout_claws_back_as_money_owed() {
    CommissionTest::with(())
        .given(vec![accrued(), approved(), paid_out()])
        .when(claw_back("refund-1", BASE))
        .then_expect_events(vec![clawed_back("refund-1", -AMOUNT, BASE, true)]);
}

#[test]
fn a_partial_refund_claws_back_pro_rata() {
    // A third of the base: 29_990 / 3 = 9_996.67 -> 9_997.
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(claw_back("refund-1", BASE / 3 + 1))
        .then_expect_events(vec![clawed_back("refund-1", -9_997, BASE / 3 + 1, false)]);
}

#[test]
fn clawbacks_never_take_back_more_than_was_accrued() {
    CommissionTest::with(())
        .given(vec![
            accrued(),
            clawed_back("refund-1", -20_000, 200_000, false),
        ])
        .when(claw_back("refund-2", BASE))
        .then_expect_events(vec![clawed_back("refund-2", -9_990, BASE, false)]);
}

#[test]
fn a_clawback_after_everything_was_taken_back_is_rejected() {
    CommissionTest::with(())
        .given(vec![
            accrued(),
            clawed_back("refund-1", -AMOUNT, BASE, false),
        ])
        .when(claw_back("refund-2", 1_000))
        .then_expect_error(CommissionError::CommissionFullyClawedBack);
}

#[test]
fn the_same_refund_clawed_back_twice_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued(), clawed_back("refund-1", -100, 1_000, false)])
        .when(claw_back("refund-1", 1_000))
        .then_expect_error(CommissionError::RefundAlreadyClawedBack {
            refund_id: "refund-1".into(),
        });
}

#[test]
fn a_clawback_on_a_rejected_commission_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued(), rejected()])
        .when(claw_back("refund-1", BASE))
        .then_expect_error(CommissionError::CommissionAlreadyRejected);
}

#[test]
fn a_clawback_with_a_base_outside_the_invoice_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(claw_back("refund-1", BASE + 1))
        .then_expect_error(CommissionError::RefundedBaseOutOfRange {
            refunded_base_halalas: BASE + 1,
            invoice_base_halalas: BASE,
        });
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(CommissionCommand::ClawBack {
            refund_id: "refund-1".into(),
            refunded_base_halalas: 1,
            invoice_base_halalas: 0,
            at: day(40),
        })
        .then_expect_error(CommissionError::InvoiceBaseNotPositive {
            invoice_base_halalas: 0,
        });
}

// --- adjustments ----------------------------------------------------------------------------

#[test]
fn a_signed_adjustment_is_recorded() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(adjust(-500))
        .then_expect_events(vec![adjusted_by_minus_500()]);
}

/// What `adjust(-500)` records.
fn adjusted_by_minus_500() -> CommissionEvent {
    CommissionEvent::CommissionAdjusted {
        commission_id: "commission-1".into(),
        partner_id: "partner-1".into(),
        amount_halalas: -500,
        reason: "bonus for case study".into(),
        actor: "finance-1".into(),
        adjusted_at: day(20),
    }
}

#[test]
fn a_zero_adjustment_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(adjust(0))
        .then_expect_error(CommissionError::AdjustmentAmountZero);
}

#[test]
fn an_adjustment_without_a_reason_or_actor_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(CommissionCommand::Adjust {
            amount_halalas: 1,
            reason: String::new(),
            actor: "finance-1".into(),
            at: day(20),
        })
        .then_expect_error(CommissionError::AdjustmentReasonRequired);
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(CommissionCommand::Adjust {
            amount_halalas: 1,
            reason: "r".into(),
            actor: String::new(),
            at: day(20),
        })
        .then_expect_error(CommissionError::ActorRequired);
}

#[test]
fn an_adjustment_that_overflows_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued()])
        .when(adjust(i64::MAX))
        .then_expect_error(CommissionError::Money(MoneyError::Overflow));
}

#[test]
fn an_adjustment_on_a_rejected_commission_is_rejected() {
    CommissionTest::with(())
        .given(vec![accrued(), rejected()])
        .when(adjust(100))
        .then_expect_error(CommissionError::CommissionAlreadyRejected);
}

#[test]
fn the_net_owed_is_accrued_plus_clawbacks_plus_adjustments() {
    let mut commission = PartnerCommission::default();
    for event in [
        accrued(),
        clawed_back("refund-1", -10_000, 100_000, false),
        CommissionEvent::CommissionAdjusted {
            commission_id: "commission-1".into(),
            partner_id: "partner-1".into(),
            amount_halalas: 10,
            reason: "r".into(),
            actor: "a".into(),
            adjusted_at: day(20),
        },
    ] {
        commission.apply(event);
    }
    assert_eq!(commission.net_halalas(), AMOUNT - 10_000 + 10);
    assert_eq!(commission.status(), Some(CommissionStatus::Held));
    assert_eq!(accrued().event_type(), "CommissionAccrued");
    assert_eq!(accrued().event_version(), "1");
}

// --- arithmetic properties ------------------------------------------------------------------

#[test]
fn commission_amounts_round_half_up() {
    assert_eq!(commission_halalas(299_900, 1_000), Ok(29_990));
    assert_eq!(commission_halalas(5, 1_000), Ok(1), "0.5 rounds up");
    assert_eq!(commission_halalas(4, 1_000), Ok(0), "0.4 rounds down");
    assert_eq!(commission_halalas(15, 1_000), Ok(2), "1.5 rounds up");
    assert_eq!(commission_halalas(3, 1_500), Ok(0), "0.45 rounds down");
    assert_eq!(pro_rata_clawback_halalas(29_990, BASE, BASE), Some(-29_990));
    assert_eq!(
        pro_rata_clawback_halalas(1, 1, 2),
        Some(-1),
        "-0.5 rounds away"
    );
    assert_eq!(pro_rata_clawback_halalas(1, 1, 0), None);
}

proptest! {
    #[test]
    fn a_commission_is_within_half_a_halala_of_the_exact_rate(
        base in 1..=i64::MAX,
        rate_bps in 1u32..=10_000,
    ) {
        let amount = commission_halalas(base, rate_bps).unwrap();
        let error = i128::from(amount) * 10_000 - i128::from(base) * i128::from(rate_bps);
        prop_assert!(error.abs() <= 5_000);
        if error.abs() == 5_000 {
            prop_assert!(error > 0, "halves round up");
        }
        prop_assert!(amount <= base);
    }

    #[test]
    fn accrual_never_panics_on_extreme_inputs(
        base_halalas in any::<i64>(),
        rate_bps in any::<u32>(),
        hold_days in any::<u32>(),
    ) {
        let _ = PartnerCommission::default().decide(CommissionCommand::Accrue {
            commission_id: "c".into(),
            partner_id: "p".into(),
            invoice_id: "i".into(),
            lead_id: "l".into(),
            base_halalas,
            rate_bps,
            hold_days,
            at: day(0),
        });
    }

    #[test]
    fn clawbacks_in_total_never_exceed_the_accrual(
        base in 1i64..10_000_000,
        rate_bps in 1u32..=10_000,
        refunds in proptest::collection::vec(1i64..10_000_000, 1..8),
    ) {
        let mut commission = PartnerCommission::default();
        let accrual = commission.decide(CommissionCommand::Accrue {
            commission_id: "c".into(),
            partner_id: "p".into(),
            invoice_id: "i".into(),
            lead_id: "l".into(),
            base_halalas: base,
            rate_bps,
            hold_days: 0,
            at: day(0),
        }).unwrap();
        for event in accrual {
            commission.apply(event);
        }
        for (index, refunded) in refunds.into_iter().enumerate() {
            let command = CommissionCommand::ClawBack {
                refund_id: format!("r{index}"),
                refunded_base_halalas: refunded.min(base),
                invoice_base_halalas: base,
                at: day(1),
            };
            if let Ok(events) = commission.decide(command) {
                for event in events {
                    commission.apply(event);
                }
            }
            prop_assert!(commission.clawed_back_halalas() <= 0);
            prop_assert!(-commission.clawed_back_halalas() <= commission.accrued_halalas());
        }
    }
}

// --- schema fixtures ------------------------------------------------------------------------

/// One of each commission event, as the rules above decide them: the source of the stored
/// schema fixtures (`crate::upcast`).
pub(crate) fn samples() -> Vec<CommissionEvent> {
    vec![
        accrued(),
        approved(),
        rejected(),
        paid_out(),
        clawed_back("refund-1", -9_997, BASE / 3 + 1, false),
        adjusted_by_minus_500(),
    ]
}
