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
        .then_expect_events(vec![made_strategic()]);
}

/// A Certified partner made Strategic by hand.
fn made_strategic() -> PartnerEvent {
    PartnerEvent::PartnerTierChanged {
        partner_id: PARTNER.into(),
        from: PartnerTier::Certified,
        to: PartnerTier::Strategic,
        reason: "signed strategic agreement".into(),
        commission_rate_bps: 2_000,
        revenue_share_bps: 500,
        changed_at: at(),
    }
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

// --- referrals ------------------------------------------------------------------------------

fn record_referral(lead_email: &str, clicked_at: OffsetDateTime) -> PartnerCommand {
    PartnerCommand::RecordReferral {
        lead_email: lead_email.into(),
        clicked_at,
        at: at(),
    }
}

fn referral_recorded(lead_email: &str, clicked_at: OffsetDateTime) -> PartnerEvent {
    PartnerEvent::ReferralRecorded {
        partner_id: PARTNER.into(),
        lead_email: lead_email.into(),
        clicked_at,
        recorded_at: at(),
    }
}

fn an_hour_ago() -> OffsetDateTime {
    at() - Duration::hours(1)
}

#[test]
fn an_active_partner_records_a_referral_with_a_normalized_email() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral)])
        .when(record_referral("  Sara@Example.SA ", an_hour_ago()))
        .then_expect_events(vec![referral_recorded("sara@example.sa", an_hour_ago())]);
}

#[test]
fn a_referral_clicked_at_the_moment_it_is_recorded_is_accepted() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral)])
        .when(record_referral("sara@example.sa", at()))
        .then_expect_events(vec![referral_recorded("sara@example.sa", at())]);
}

#[test]
fn the_same_referral_recorded_twice_is_recorded_once() {
    PartnerTest::with(())
        .given(vec![
            enrolled(PartnerTier::Referral),
            referral_recorded("sara@example.sa", an_hour_ago()),
        ])
        .when(record_referral("SARA@example.sa", an_hour_ago()))
        .then_expect_events(vec![]);
}

#[test]
fn the_same_email_clicking_again_later_is_another_referral() {
    PartnerTest::with(())
        .given(vec![
            enrolled(PartnerTier::Referral),
            referral_recorded("sara@example.sa", an_hour_ago() - Duration::days(2)),
        ])
        .when(record_referral("sara@example.sa", an_hour_ago()))
        .then_expect_events(vec![referral_recorded("sara@example.sa", an_hour_ago())]);
}

#[test]
fn a_referral_redelivered_after_a_suspension_is_still_recorded_once_without_error() {
    PartnerTest::with(())
        .given(vec![
            enrolled(PartnerTier::Referral),
            referral_recorded("sara@example.sa", an_hour_ago()),
            suspended(),
        ])
        .when(record_referral("sara@example.sa", an_hour_ago()))
        .then_expect_events(vec![]);
}

#[test]
fn a_suspended_partner_cannot_record_a_new_referral() {
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral), suspended()])
        .when(record_referral("sara@example.sa", an_hour_ago()))
        .then_expect_error(PartnerError::PartnerIsSuspended);
}

#[test]
fn a_reinstated_partner_records_referrals_again() {
    PartnerTest::with(())
        .given(vec![
            enrolled(PartnerTier::Referral),
            suspended(),
            PartnerEvent::PartnerReinstated {
                partner_id: PARTNER.into(),
                reinstated_at: at(),
            },
        ])
        .when(record_referral("sara@example.sa", an_hour_ago()))
        .then_expect_events(vec![referral_recorded("sara@example.sa", an_hour_ago())]);
}

#[test]
fn an_applicant_or_an_unknown_partner_cannot_record_a_referral() {
    for history in [vec![], vec![applied(PartnerTier::Referral)]] {
        PartnerTest::with(())
            .given(history)
            .when(record_referral("sara@example.sa", an_hour_ago()))
            .then_expect_error(PartnerError::PartnerNotEnrolled);
    }
}

#[test]
fn a_referral_without_a_valid_email_is_rejected() {
    let too_long = format!("{}@example.sa", "a".repeat(MAX_EMAIL_LEN));
    let invalid = [
        "",
        "   ",
        "sara.example.sa",
        "@example.sa",
        "sara@",
        "sara@@example.sa",
        "sa ra@example.sa",
        too_long.as_str(),
    ];
    for email in invalid {
        PartnerTest::with(())
            .given(vec![enrolled(PartnerTier::Referral)])
            .when(record_referral(email, an_hour_ago()))
            .then_expect_error(PartnerError::InvalidEmail {
                email: email.into(),
            });
    }
}

#[test]
fn a_referral_clicked_after_it_was_recorded_is_rejected() {
    let clicked_at = at() + Duration::seconds(1);
    PartnerTest::with(())
        .given(vec![enrolled(PartnerTier::Referral)])
        .when(record_referral("sara@example.sa", clicked_at))
        .then_expect_error(PartnerError::ReferralClickInTheFuture {
            clicked_at,
            recorded_at: at(),
        });
}

#[test]
fn a_partner_remembers_its_referrals() {
    let mut partner = Partner::default();
    partner.apply(enrolled(PartnerTier::Referral));
    partner.apply(referral_recorded("sara@example.sa", an_hour_ago()));
    partner.apply(referral_recorded("sara@example.sa", an_hour_ago()));
    let referrals: Vec<Referral> = partner.referrals().collect();
    assert_eq!(
        referrals,
        vec![Referral {
            partner_id: PARTNER.into(),
            lead_email: "sara@example.sa".into(),
            clicked_at: an_hour_ago(),
        }]
    );
    let json = serde_json::to_value(&partner).unwrap();
    let back: Partner = serde_json::from_value(json).unwrap();
    assert_eq!(back, partner);
}

#[test]
fn a_recorded_referral_is_a_flat_snake_case_object() {
    let event = referral_recorded("sara@example.sa", an_hour_ago());
    assert_eq!(event.event_type(), "ReferralRecorded");
    assert_eq!(event.event_version(), "2");
    let json = serde_json::to_value(&event).unwrap();
    let body = &json["ReferralRecorded"];
    assert_eq!(body["lead_email"], "sara@example.sa");
    assert_eq!(body["clicked_at"], "2025-03-01T09:00:00Z");
    assert_eq!(body["recorded_at"], "2025-03-01T10:00:00Z");
    let back: PartnerEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, event);
}

// --- choosing among referrals -----------------------------------------------------------

fn referral(partner_id: &str, clicked_at: OffsetDateTime) -> Referral {
    Referral {
        partner_id: partner_id.into(),
        lead_email: "sara@example.sa".into(),
        clicked_at,
    }
}

fn click_day(days: i64) -> OffsetDateTime {
    datetime!(2025-03-01 10:00 UTC) + Duration::days(days)
}

fn attributed_partner(
    referrals: &[Referral],
    captured_at: OffsetDateTime,
    model: AttributionModel,
) -> Option<&str> {
    attribute(referrals, captured_at, model).map(|referral| referral.partner_id.as_str())
}

#[test]
fn first_touch_is_the_default_attribution_model() {
    assert_eq!(AttributionModel::default(), AttributionModel::FirstTouch);
    assert_eq!(
        serde_json::to_value(AttributionModel::LastTouch).unwrap(),
        "last_touch"
    );
}

#[test]
fn first_touch_gives_the_lead_to_the_earliest_click_in_the_window() {
    let referrals = [
        referral("p-late", click_day(5)),
        referral("p-early", click_day(1)),
        referral("p-middle", click_day(3)),
    ];
    let captured_at = click_day(10);
    assert_eq!(
        attributed_partner(&referrals, captured_at, AttributionModel::FirstTouch),
        Some("p-early")
    );
}

#[test]
fn last_touch_gives_the_lead_to_the_latest_click_before_the_capture() {
    let referrals = [
        referral("p-late", click_day(5)),
        referral("p-early", click_day(1)),
        referral("p-after-capture", click_day(11)),
    ];
    let captured_at = click_day(10);
    assert_eq!(
        attributed_partner(&referrals, captured_at, AttributionModel::LastTouch),
        Some("p-late")
    );
}

#[test]
fn a_click_on_day_thirty_attributes_and_a_click_on_day_thirty_one_does_not() {
    let captured_at = click_day(31);
    let day_thirty = [referral("p-30", click_day(1))];
    let day_thirty_one = [referral("p-31", click_day(0))];
    let late_on_day_thirty = [referral("p-30-late", click_day(0) + Duration::seconds(1))];
    for model in [AttributionModel::FirstTouch, AttributionModel::LastTouch] {
        assert_eq!(
            attributed_partner(&day_thirty, captured_at, model),
            Some("p-30")
        );
        assert_eq!(
            attributed_partner(&late_on_day_thirty, captured_at, model),
            Some("p-30-late")
        );
        assert_eq!(
            attributed_partner(&day_thirty_one, captured_at, model),
            None
        );
    }
}

#[test]
fn first_touch_skips_an_earlier_click_that_fell_out_of_the_window() {
    let referrals = [
        referral("p-expired", click_day(0)),
        referral("p-in-window", click_day(2)),
    ];
    assert_eq!(
        attributed_partner(&referrals, click_day(31), AttributionModel::FirstTouch),
        Some("p-in-window")
    );
}

#[test]
fn a_lead_with_no_referral_in_the_window_is_attributed_to_no_one() {
    let captured_at = click_day(10);
    assert_eq!(
        attributed_partner(&[], captured_at, AttributionModel::FirstTouch),
        None
    );
    let only_after = [referral("p1", click_day(10) + Duration::seconds(1))];
    assert_eq!(
        attributed_partner(&only_after, captured_at, AttributionModel::LastTouch),
        None
    );
}

#[test]
fn clicks_at_the_same_instant_go_to_the_lowest_partner_id_whatever_the_order() {
    let clicked_at = click_day(1);
    let forward = [referral("p-a", clicked_at), referral("p-b", clicked_at)];
    let backward = [referral("p-b", clicked_at), referral("p-a", clicked_at)];
    for model in [AttributionModel::FirstTouch, AttributionModel::LastTouch] {
        for referrals in [&forward, &backward] {
            assert_eq!(
                attributed_partner(referrals, click_day(2), model),
                Some("p-a")
            );
        }
    }
}

#[test]
fn a_lead_email_is_normalized_for_matching() {
    assert_eq!(
        normalize_lead_email(" Sara@Example.SA\n").unwrap(),
        "sara@example.sa"
    );
}

proptest::proptest! {
    #[test]
    fn attribution_never_depends_on_the_order_of_referrals(
        clicks in proptest::collection::vec((0u8..4, 0i64..40), 0..8),
        captured_day in 0i64..45,
        last_touch in proptest::bool::ANY,
    ) {
        let model = if last_touch { AttributionModel::LastTouch } else { AttributionModel::FirstTouch };
        let referrals: Vec<Referral> = clicks
            .iter()
            .map(|(partner, day)| referral(&format!("p{partner}"), click_day(*day)))
            .collect();
        let mut reversed = referrals.clone();
        reversed.reverse();
        let captured_at = click_day(captured_day);
        let chosen = attribute(&referrals, captured_at, model);
        proptest::prop_assert_eq!(chosen, attribute(&reversed, captured_at, model));
        if let Some(chosen) = chosen {
            proptest::prop_assert!(attributes(chosen.clicked_at, captured_at));
            for other in referrals.iter().filter(|r| attributes(r.clicked_at, captured_at)) {
                match model {
                    AttributionModel::FirstTouch => proptest::prop_assert!(chosen.clicked_at <= other.clicked_at),
                    AttributionModel::LastTouch => proptest::prop_assert!(chosen.clicked_at >= other.clicked_at),
                }
            }
        } else {
            proptest::prop_assert!(referrals.iter().all(|r| !attributes(r.clicked_at, captured_at)));
        }
    }
}

// --- schema fixtures ------------------------------------------------------------------------

/// One of each partner event, as the rules above decide them: the source of the stored schema
/// fixtures (`crate::upcast`).
pub(crate) fn samples() -> Vec<PartnerEvent> {
    vec![
        applied(PartnerTier::Certified),
        enrolled(PartnerTier::Certified),
        made_strategic(),
        activated("lead-1", 1),
        suspended(),
        PartnerEvent::PartnerReinstated {
            partner_id: PARTNER.into(),
            reinstated_at: at(),
        },
        referral_recorded("noura@example.sa", an_hour_ago()),
    ]
}

/// One of each partner-program event: the source of its stored schema fixtures.
pub(crate) fn program_samples() -> Vec<PartnerProgramEvent> {
    vec![
        slot_taken(PARTNER, 1),
        PartnerProgramEvent::StrategicSlotReleased {
            partner_id: PARTNER.into(),
            slots_taken: 0,
            released_at: at(),
        },
    ]
}
