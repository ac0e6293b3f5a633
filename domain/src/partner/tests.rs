//! Given/when/then tests of every partner and partner-program rule.

use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

type PartnerTest = TestFramework<Partner>;
type ProgramTest = TestFramework<PartnerProgram>;

const PARTNER: &str = "partner-1";

fn at() -> OffsetDateTime {
    datetime!(2025-03-01 10:00 UTC)
}

fn enroll(tier: PartnerTier) -> PartnerCommand {
    PartnerCommand::Enroll {
        partner_id: PARTNER.into(),
        name: "Riyadh Digital".into(),
        email: "hello@riyadh.example".into(),
        tier,
        at: at(),
    }
}

fn enrolled(tier: PartnerTier) -> PartnerEvent {
    PartnerEvent::PartnerEnrolled {
        partner_id: PARTNER.into(),
        name: "Riyadh Digital".into(),
        email: "hello@riyadh.example".into(),
        tier,
        commission_rate_bps: tier.commission_rate_bps(),
        revenue_share_bps: tier.revenue_share_bps(),
        enrolled_at: at(),
    }
}

fn activated(lead_id: &str, activated_customers: u32) -> PartnerEvent {
    PartnerEvent::PartnerCustomerActivated {
        partner_id: PARTNER.into(),
        lead_id: lead_id.into(),
        activated_customers,
        activated_at: at(),
    }
}

fn activate(lead_id: &str) -> PartnerCommand {
    PartnerCommand::RecordCustomerActivated {
        lead_id: lead_id.into(),
        at: at(),
    }
}

fn suspended() -> PartnerEvent {
    PartnerEvent::PartnerSuspended {
        partner_id: PARTNER.into(),
        reason: "spam".into(),
        suspended_at: at(),
    }
}

// --- attribution and tiers ----------------------------------------------------------

#[test]
fn a_lead_captured_on_day_thirty_is_attributed_and_on_day_thirty_one_is_not() {
    let click = datetime!(2025-03-01 10:00 UTC);
    assert!(attributes(click, click));
    assert!(attributes(click, click + Duration::days(30)));
    assert!(attributes(
        click,
        click + Duration::days(31) - Duration::seconds(1)
    ));
    assert!(!attributes(click, click + Duration::days(31)));
    assert!(!attributes(click, click - Duration::seconds(1)));
}

#[test]
fn tiers_carry_their_rates() {
    assert_eq!(PartnerTier::Referral.commission_rate_bps(), 1_000);
    assert_eq!(PartnerTier::Certified.commission_rate_bps(), 1_500);
    assert_eq!(PartnerTier::Strategic.commission_rate_bps(), 2_000);
    assert_eq!(PartnerTier::Strategic.revenue_share_bps(), 500);
    assert_eq!(PartnerTier::Referral.revenue_share_bps(), 0);
    assert_eq!(
        serde_json::to_value(PartnerTier::Strategic).unwrap(),
        "strategic"
    );
}

// --- enroll -------------------------------------------------------------------------------

#[test]
fn a_partner_enrolls_with_its_tier_rate() {
    PartnerTest::with(())
        .given_no_previous_events()
        .when(enroll(PartnerTier::Referral))
        .then_expect_events(vec![enrolled(PartnerTier::Referral)]);
}

#[test]
fn enrolling_twice_is_rejected() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral)])
        .when(enroll(PartnerTier::Referral))
        .then_expect_error(PartnerError::PartnerAlreadyEnrolled);
}

#[test]
fn enrolling_without_an_id_a_name_or_an_email_is_rejected() {
    let cases = [
        ("", "n", "e", PartnerError::PartnerIdRequired),
        ("p", " ", "e", PartnerError::PartnerNameRequired),
        ("p", "n", "", PartnerError::PartnerEmailRequired),
    ];
    for (partner_id, name, email, error) in cases {
        PartnerTest::with(())
            .given_no_previous_events()
            .when(PartnerCommand::Enroll {
                partner_id: partner_id.into(),
                name: name.into(),
                email: email.into(),
                tier: PartnerTier::Referral,
                at: at(),
            })
            .then_expect_error(error);
    }
}

#[test]
fn any_command_before_enrollment_is_rejected() {
    PartnerTest::with(())
        .given_no_previous_events()
        .when(activate("lead-1"))
        .then_expect_error(PartnerError::PartnerNotEnrolled);
}

// --- applications ----------------------------------------------------------------------

fn apply(requested_tier: PartnerTier) -> PartnerCommand {
    PartnerCommand::Apply {
        partner_id: PARTNER.into(),
        name: "Riyadh Digital".into(),
        email: "hello@riyadh.example".into(),
        requested_tier,
        at: at(),
    }
}

fn applied(requested_tier: PartnerTier) -> PartnerEvent {
    PartnerEvent::PartnerApplied {
        partner_id: PARTNER.into(),
        name: "Riyadh Digital".into(),
        email: "hello@riyadh.example".into(),
        requested_tier,
        applied_at: at(),
    }
}

#[test]
fn an_application_on_a_new_stream_records_an_applicant() {
    PartnerTest::with(())
        .given_no_previous_events()
        .when(apply(PartnerTier::Strategic))
        .then_expect_events(vec![applied(PartnerTier::Strategic)]);
}

#[test]
fn an_applicant_has_no_tier_until_it_is_enrolled() {
    let mut partner = Partner::default();
    partner.apply(applied(PartnerTier::Strategic));
    assert_eq!(partner.partner_id(), PARTNER);
    assert_eq!(partner.tier(), None);
    assert_eq!(partner.requested_tier(), Some(PartnerTier::Strategic));
    assert_eq!(partner.status(), Some(PartnerStatus::Applied));
    assert!(!partner.is_enrolled());
    partner.apply(enrolled(PartnerTier::Referral));
    assert_eq!(partner.tier(), Some(PartnerTier::Referral));
    assert_eq!(partner.status(), Some(PartnerStatus::Active));
    assert!(partner.is_enrolled());
}

#[test]
fn applying_twice_is_rejected() {
    PartnerTest::with(())
        .given(vec![applied(PartnerTier::Referral)])
        .when(apply(PartnerTier::Certified))
        .then_expect_error(PartnerError::PartnerAlreadyApplied);
}

#[test]
fn applying_after_enrollment_is_rejected() {
    let enrolled_histories = [
        vec![enrolled(PartnerTier::Referral)],
        vec![
            applied(PartnerTier::Referral),
            enrolled(PartnerTier::Referral),
        ],
        vec![enrolled(PartnerTier::Referral), suspended()],
    ];
    for history in enrolled_histories {
        PartnerTest::with(())
            .given(history)
            .when(apply(PartnerTier::Referral))
            .then_expect_error(PartnerError::PartnerAlreadyEnrolled);
    }
}

#[test]
fn applying_without_an_id_a_name_or_an_email_is_rejected() {
    let cases = [
        (" ", "n", "e", PartnerError::PartnerIdRequired),
        ("p", "", "e", PartnerError::PartnerNameRequired),
        ("p", "n", " ", PartnerError::PartnerEmailRequired),
    ];
    for (partner_id, name, email, error) in cases {
        PartnerTest::with(())
            .given_no_previous_events()
            .when(PartnerCommand::Apply {
                partner_id: partner_id.into(),
                name: name.into(),
                email: email.into(),
                requested_tier: PartnerTier::Referral,
                at: at(),
            })
            .then_expect_error(error);
    }
}

#[test]
fn an_applicant_is_enrolled_in_the_tier_decided_not_the_tier_requested() {
    PartnerTest::with(())
        .given(vec![applied(PartnerTier::Strategic)])
        .when(enroll(PartnerTier::Referral))
        .then_expect_events(vec![enrolled(PartnerTier::Referral)]);
}

#[test]
fn enrolling_an_applicant_under_another_partner_id_is_rejected() {
    PartnerTest::with(())
        .given(vec![applied(PartnerTier::Referral)])
        .when(PartnerCommand::Enroll {
            partner_id: "partner-2".into(),
            name: "Riyadh Digital".into(),
            email: "hello@riyadh.example".into(),
            tier: PartnerTier::Referral,
            at: at(),
        })
        .then_expect_error(PartnerError::PartnerIdMismatch {
            recorded: PARTNER.into(),
            requested: "partner-2".into(),
        });
}

#[test]
fn enrolling_an_applicant_without_a_name_is_rejected() {
    PartnerTest::with(())
        .given(vec![applied(PartnerTier::Referral)])
        .when(PartnerCommand::Enroll {
            partner_id: PARTNER.into(),
            name: " ".into(),
            email: "hello@riyadh.example".into(),
            tier: PartnerTier::Referral,
            at: at(),
        })
        .then_expect_error(PartnerError::PartnerNameRequired);
}

#[test]
fn every_other_command_on_an_applicant_is_rejected_as_not_enrolled() {
    let commands = [
        PartnerCommand::ChangeTier {
            tier: PartnerTier::Certified,
            reason: "why".into(),
            at: at(),
        },
        activate("lead-1"),
        PartnerCommand::Suspend {
            reason: "spam".into(),
            at: at(),
        },
        PartnerCommand::Reinstate { at: at() },
    ];
    for command in commands {
        PartnerTest::with(())
            .given(vec![applied(PartnerTier::Referral)])
            .when(command)
            .then_expect_error(PartnerError::PartnerNotEnrolled);
    }
}

#[test]
fn an_enrolled_applicant_counts_customers_like_any_partner() {
    PartnerTest::with(())
        .given(vec![
            applied(PartnerTier::Strategic),
            enrolled(PartnerTier::Referral),
        ])
        .when(activate("lead-1"))
        .then_expect_events(vec![activated("lead-1", 1)]);
}

#[test]
fn an_application_is_a_flat_snake_case_object() {
    let json = serde_json::to_value(applied(PartnerTier::Certified)).unwrap();
    let body = &json["PartnerApplied"];
    assert_eq!(body["partner_id"], PARTNER);
    assert_eq!(body["requested_tier"], "certified");
    assert_eq!(body["applied_at"], "2025-03-01T10:00:00Z");
    let back: PartnerEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, applied(PartnerTier::Certified));
}

// --- tier changes ----------------------------------------------------------------------------

#[test]
fn a_tier_is_changed_with_a_reason() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Certified)])
        .when(PartnerCommand::ChangeTier {
            tier: PartnerTier::Strategic,
            reason: "signed strategic agreement".into(),
            at: at(),
        })
        .then_expect_events(vec![PartnerEvent::PartnerTierChanged {
            partner_id: PARTNER.into(),
            from: PartnerTier::Certified,
            to: PartnerTier::Strategic,
            reason: "signed strategic agreement".into(),
            commission_rate_bps: 2_000,
            revenue_share_bps: 500,
            changed_at: at(),
        }]);
}

#[test]
fn a_tier_change_without_a_reason_is_rejected() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral)])
        .when(PartnerCommand::ChangeTier {
            tier: PartnerTier::Certified,
            reason: " ".into(),
            at: at(),
        })
        .then_expect_error(PartnerError::TierChangeReasonRequired);
}

#[test]
fn changing_to_the_same_tier_is_rejected() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral)])
        .when(PartnerCommand::ChangeTier {
            tier: PartnerTier::Referral,
            reason: "why".into(),
            at: at(),
        })
        .then_expect_error(PartnerError::TierUnchanged {
            tier: PartnerTier::Referral,
        });
}

#[test]
fn a_suspended_partner_cannot_change_tier() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral), suspended()])
        .when(PartnerCommand::ChangeTier {
            tier: PartnerTier::Certified,
            reason: "why".into(),
            at: at(),
        })
        .then_expect_error(PartnerError::PartnerIsSuspended);
}

// --- activations and the automatic upgrade ------------------------------------------------

#[test]
fn an_activated_customer_is_counted() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral)])
        .when(activate("lead-1"))
        .then_expect_events(vec![activated("lead-1", 1)]);
}

#[test]
fn the_third_activated_customer_makes_a_referral_partner_certified() {
    PartnerTest::with(())
        .given(vec![
            enrolled(PartnerTier::Referral),
            activated("lead-1", 1),
            activated("lead-2", 2),
        ])
        .when(activate("lead-3"))
        .then_expect_events(vec![
            activated("lead-3", 3),
            PartnerEvent::PartnerTierChanged {
                partner_id: PARTNER.into(),
                from: PartnerTier::Referral,
                to: PartnerTier::Certified,
                reason: "3 activated customers".into(),
                commission_rate_bps: 1_500,
                revenue_share_bps: 0,
                changed_at: at(),
            },
        ]);
}

#[test]
fn the_third_activation_of_a_certified_partner_changes_no_tier() {
    PartnerTest::with(())
        .given(vec![
            enrolled(PartnerTier::Certified),
            activated("lead-1", 1),
            activated("lead-2", 2),
        ])
        .when(activate("lead-3"))
        .then_expect_events(vec![activated("lead-3", 3)]);
}

#[test]
fn the_same_customer_is_counted_once() {
    PartnerTest::with(())
        .given(vec![
            enrolled(PartnerTier::Referral),
            activated("lead-1", 1),
            activated("lead-2", 2),
        ])
        .when(activate("lead-2"))
        .then_expect_error(PartnerError::CustomerAlreadyActivated {
            lead_id: "lead-2".into(),
        });
}

// --- suspension -----------------------------------------------------------------------------

#[test]
fn a_partner_is_suspended_with_a_reason() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral)])
        .when(PartnerCommand::Suspend {
            reason: "spam".into(),
            at: at(),
        })
        .then_expect_events(vec![suspended()]);
}

#[test]
fn suspending_without_a_reason_is_rejected() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral)])
        .when(PartnerCommand::Suspend {
            reason: String::new(),
            at: at(),
        })
        .then_expect_error(PartnerError::SuspensionReasonRequired);
}

#[test]
fn suspending_a_suspended_partner_is_rejected() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral), suspended()])
        .when(PartnerCommand::Suspend {
            reason: "again".into(),
            at: at(),
        })
        .then_expect_error(PartnerError::PartnerAlreadySuspended);
}

#[test]
fn a_suspended_partner_is_reinstated() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral), suspended()])
        .when(PartnerCommand::Reinstate { at: at() })
        .then_expect_events(vec![PartnerEvent::PartnerReinstated {
            partner_id: PARTNER.into(),
            reinstated_at: at(),
        }]);
}

#[test]
fn reinstating_an_active_partner_is_rejected() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral)])
        .when(PartnerCommand::Reinstate { at: at() })
        .then_expect_error(PartnerError::PartnerNotSuspended);
}

// --- the program's Strategic slots ------------------------------------------------------

fn slot_taken(partner_id: &str, slots_taken: u32) -> PartnerProgramEvent {
    PartnerProgramEvent::StrategicSlotTaken {
        partner_id: partner_id.into(),
        slots_taken,
        taken_at: at(),
    }
}

fn take(partner_id: &str) -> PartnerProgramCommand {
    PartnerProgramCommand::TakeStrategicSlot {
        partner_id: partner_id.into(),
        at: at(),
    }
}

#[test]
fn a_free_strategic_slot_is_taken() {
    ProgramTest::with(())
        .given(vec![slot_taken("p1", 1), slot_taken("p2", 2)])
        .when(take("p3"))
        .then_expect_events(vec![slot_taken("p3", 3)]);
}

#[test]
fn a_fourth_strategic_partner_is_rejected() {
    ProgramTest::with(())
        .given(vec![
            slot_taken("p1", 1),
            slot_taken("p2", 2),
            slot_taken("p3", 3),
        ])
        .when(take("p4"))
        .then_expect_error(PartnerProgramError::StrategicSlotsFull { max: 3 });
}

#[test]
fn a_partner_cannot_hold_two_strategic_slots() {
    ProgramTest::with(())
        .given(vec![slot_taken("p1", 1)])
        .when(take("p1"))
        .then_expect_error(PartnerProgramError::StrategicSlotAlreadyHeld {
            partner_id: "p1".into(),
        });
}

#[test]
fn a_slot_without_a_partner_is_rejected() {
    ProgramTest::with(())
        .given_no_previous_events()
        .when(take(" "))
        .then_expect_error(PartnerProgramError::PartnerIdRequired);
}

#[test]
fn a_released_slot_can_be_taken_again() {
    let released = PartnerProgramEvent::StrategicSlotReleased {
        partner_id: "p2".into(),
        slots_taken: 2,
        released_at: at(),
    };
    ProgramTest::with(())
        .given(vec![
            slot_taken("p1", 1),
            slot_taken("p2", 2),
            slot_taken("p3", 3),
        ])
        .when(PartnerProgramCommand::ReleaseStrategicSlot {
            partner_id: "p2".into(),
            at: at(),
        })
        .then_expect_events(vec![released.clone()]);
    ProgramTest::with(())
        .given(vec![
            slot_taken("p1", 1),
            slot_taken("p2", 2),
            slot_taken("p3", 3),
            released,
        ])
        .when(take("p4"))
        .then_expect_events(vec![slot_taken("p4", 3)]);
}

#[test]
fn releasing_a_slot_that_is_not_held_is_rejected() {
    ProgramTest::with(())
        .given(vec![slot_taken("p1", 1)])
        .when(PartnerProgramCommand::ReleaseStrategicSlot {
            partner_id: "p2".into(),
            at: at(),
        })
        .then_expect_error(PartnerProgramError::NoStrategicSlotHeld {
            partner_id: "p2".into(),
        });
}

#[test]
fn partner_events_are_named_for_their_variant() {
    assert_eq!(
        enrolled(PartnerTier::Referral).event_type(),
        "PartnerEnrolled"
    );
    assert_eq!(
        applied(PartnerTier::Referral).event_type(),
        "PartnerApplied"
    );
    assert_eq!(slot_taken("p1", 1).event_type(), "StrategicSlotTaken");
    assert_eq!(suspended().event_version(), "1");
}
