//! Given/when/then tests of every lead transition and rejection.

use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use cqrs_es::DomainEvent;
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

type LeadTest = TestFramework<Lead>;

const LEAD: &str = "lead-1";
const BOOKING: &str = "booking-1";

fn at(day: u8) -> OffsetDateTime {
    datetime!(2025-03-01 09:00 UTC) + Duration::days(i64::from(day))
}

fn capture_command() -> LeadCommand {
    LeadCommand::Capture {
        lead_id: LEAD.into(),
        name: "Noura Al-Harbi".into(),
        company: Some("Harbi Logistics".into()),
        email: Some("noura@example.sa".into()),
        phone: None,
        source: "landing_page".into(),
        partner_id: Some("partner-1".into()),
        utm: Some(Utm {
            source: Some("linkedin".into()),
            medium: Some("cpc".into()),
            campaign: Some("ramadan".into()),
        }),
        owner: Some("sales-1".into()),
        at: at(0),
    }
}

fn captured() -> LeadEvent {
    LeadEvent::LeadCaptured {
        lead_id: LEAD.into(),
        name: "Noura Al-Harbi".into(),
        company: Some("Harbi Logistics".into()),
        email: Some("noura@example.sa".into()),
        phone: None,
        source: "landing_page".into(),
        partner_id: Some("partner-1".into()),
        utm: Some(Utm {
            source: Some("linkedin".into()),
            medium: Some("cpc".into()),
            campaign: Some("ramadan".into()),
        }),
        owner: Some("sales-1".into()),
        captured_at: at(0),
    }
}

fn qualified() -> LeadEvent {
    LeadEvent::LeadQualified {
        lead_id: LEAD.into(),
        from_stage: LeadStage::New,
        qualified_at: at(1),
    }
}

fn demo_booked(from_stage: LeadStage) -> LeadEvent {
    LeadEvent::DemoBooked {
        lead_id: LEAD.into(),
        booking_id: BOOKING.into(),
        from_stage,
        scheduled_for: at(5),
        booked_at: at(2),
    }
}

fn proposal_sent(from_stage: LeadStage) -> LeadEvent {
    LeadEvent::ProposalSent {
        lead_id: LEAD.into(),
        plan: Plan::Growth,
        from_stage,
        sent_at: at(6),
    }
}

fn paid(from_stage: LeadStage) -> LeadEvent {
    LeadEvent::LeadPaid {
        lead_id: LEAD.into(),
        invoice_id: "invoice-1".into(),
        partner_id: Some("partner-1".into()),
        from_stage,
        paid_at: at(8),
    }
}

fn onboarding_started() -> LeadEvent {
    LeadEvent::OnboardingStarted {
        lead_id: LEAD.into(),
        started_at: at(9),
    }
}

fn archived(reason: ArchiveReason, from_stage: LeadStage) -> LeadEvent {
    LeadEvent::LeadArchived {
        lead_id: LEAD.into(),
        reason,
        from_stage,
        archived_at: at(20),
    }
}

fn book_demo() -> LeadCommand {
    LeadCommand::BookDemo {
        booking_id: BOOKING.into(),
        scheduled_for: at(5),
        at: at(2),
    }
}

fn mark_paid() -> LeadCommand {
    LeadCommand::MarkPaid {
        invoice_id: "invoice-1".into(),
        at: at(8),
    }
}

fn through_paid() -> Vec<LeadEvent> {
    vec![
        captured(),
        qualified(),
        demo_booked(LeadStage::Qualified),
        proposal_sent(LeadStage::DemoBooked),
        paid(LeadStage::Proposal),
    ]
}

// --- capture ---------------------------------------------------------------

#[test]
fn a_new_lead_is_captured_with_its_source_and_attribution() {
    LeadTest::with(())
        .given_no_previous_events()
        .when(capture_command())
        .then_expect_events(vec![captured()]);
}

#[test]
fn capturing_the_same_lead_twice_is_rejected() {
    LeadTest::with(())
        .given(vec![captured()])
        .when(capture_command())
        .then_expect_error(LeadError::LeadAlreadyCaptured);
}

#[test]
fn a_lead_without_an_id_is_rejected() {
    let mut command = capture_command();
    if let LeadCommand::Capture { lead_id, .. } = &mut command {
        *lead_id = " ".into();
    }
    LeadTest::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(LeadError::LeadIdRequired);
}

#[test]
fn a_lead_without_a_name_is_rejected() {
    let mut command = capture_command();
    if let LeadCommand::Capture { name, .. } = &mut command {
        *name = String::new();
    }
    LeadTest::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(LeadError::LeadNameRequired);
}

#[test]
fn a_lead_without_an_email_or_phone_is_rejected() {
    let mut command = capture_command();
    if let LeadCommand::Capture { email, phone, .. } = &mut command {
        *email = Some(String::new());
        *phone = None;
    }
    LeadTest::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(LeadError::LeadContactRequired);
}

#[test]
fn any_command_before_capture_is_rejected() {
    LeadTest::with(())
        .given_no_previous_events()
        .when(LeadCommand::Qualify { at: at(1) })
        .then_expect_error(LeadError::LeadNotCaptured);
    LeadTest::with(())
        .given_no_previous_events()
        .when(LeadCommand::LogFollowUp {
            channel: FollowUpChannel::Email,
            note: "hello".into(),
            responded: false,
            at: at(1),
        })
        .then_expect_error(LeadError::LeadNotCaptured);
}

// --- forward moves before paid --------------------------------------------

#[test]
fn a_new_lead_is_qualified() {
    LeadTest::with(())
        .given(vec![captured()])
        .when(LeadCommand::Qualify { at: at(1) })
        .then_expect_events(vec![qualified()]);
}

#[test]
fn qualifying_a_qualified_lead_again_is_rejected() {
    LeadTest::with(())
        .given(vec![captured(), qualified()])
        .when(LeadCommand::Qualify { at: at(1) })
        .then_expect_error(LeadError::AlreadyInStage {
            stage: LeadStage::Qualified,
        });
}

#[test]
fn a_booking_moves_a_new_lead_straight_to_demo_booked() {
    LeadTest::with(())
        .given(vec![captured()])
        .when(book_demo())
        .then_expect_events(vec![demo_booked(LeadStage::New)]);
}

#[test]
fn a_qualified_lead_books_a_demo() {
    LeadTest::with(())
        .given(vec![captured(), qualified()])
        .when(book_demo())
        .then_expect_events(vec![demo_booked(LeadStage::Qualified)]);
}

#[test]
fn booking_a_second_demo_while_one_is_booked_is_rejected() {
    LeadTest::with(())
        .given(vec![captured(), demo_booked(LeadStage::New)])
        .when(book_demo())
        .then_expect_error(LeadError::AlreadyInStage {
            stage: LeadStage::DemoBooked,
        });
}

#[test]
fn qualifying_a_lead_with_a_booked_demo_would_go_back_and_is_rejected() {
    LeadTest::with(())
        .given(vec![captured(), demo_booked(LeadStage::New)])
        .when(LeadCommand::Qualify { at: at(3) })
        .then_expect_error(LeadError::StageWouldGoBack {
            from: LeadStage::DemoBooked,
            to: LeadStage::Qualified,
        });
}

#[test]
fn a_proposal_is_sent_after_the_demo() {
    LeadTest::with(())
        .given(vec![captured(), demo_booked(LeadStage::New)])
        .when(LeadCommand::SendProposal {
            plan: Plan::Growth,
            at: at(6),
        })
        .then_expect_events(vec![proposal_sent(LeadStage::DemoBooked)]);
}

#[test]
fn booking_a_demo_after_the_proposal_would_go_back_and_is_rejected() {
    LeadTest::with(())
        .given(vec![captured(), proposal_sent(LeadStage::New)])
        .when(book_demo())
        .then_expect_error(LeadError::StageWouldGoBack {
            from: LeadStage::Proposal,
            to: LeadStage::DemoBooked,
        });
}

#[test]
fn sending_a_second_proposal_is_rejected() {
    LeadTest::with(())
        .given(vec![captured(), proposal_sent(LeadStage::New)])
        .when(LeadCommand::SendProposal {
            plan: Plan::Scale,
            at: at(7),
        })
        .then_expect_error(LeadError::AlreadyInStage {
            stage: LeadStage::Proposal,
        });
}

// --- demo cancel and no-show ----------------------------------------------

#[test]
fn a_canceled_demo_returns_the_lead_to_qualified() {
    let events = LeadTest::with(())
        .given(vec![captured(), demo_booked(LeadStage::New)])
        .when(LeadCommand::CancelDemo {
            booking_id: BOOKING.into(),
            reason: "travelling".into(),
            rescheduled: true,
            at: at(3),
        })
        .inspect_result()
        .unwrap();
    assert_eq!(
        events,
        vec![LeadEvent::DemoCanceled {
            lead_id: LEAD.into(),
            booking_id: BOOKING.into(),
            reason: "travelling".into(),
            rescheduled: true,
            canceled_at: at(3),
        }]
    );
    let mut lead = Lead::default();
    for event in [captured(), demo_booked(LeadStage::New)]
        .into_iter()
        .chain(events)
    {
        lead.apply(event);
    }
    assert_eq!(lead.stage(), Some(LeadStage::Qualified));
    assert_eq!(lead.demo_booking_id(), None);
}

#[test]
fn canceling_a_demo_that_is_not_booked_is_rejected() {
    LeadTest::with(())
        .given(vec![captured(), qualified()])
        .when(LeadCommand::CancelDemo {
            booking_id: BOOKING.into(),
            reason: "n/a".into(),
            rescheduled: false,
            at: at(3),
        })
        .then_expect_error(LeadError::NoDemoBooked {
            stage: LeadStage::Qualified,
        });
}

#[test]
fn canceling_a_different_booking_is_rejected() {
    LeadTest::with(())
        .given(vec![captured(), demo_booked(LeadStage::New)])
        .when(LeadCommand::CancelDemo {
            booking_id: "booking-other".into(),
            reason: "n/a".into(),
            rescheduled: false,
            at: at(3),
        })
        .then_expect_error(LeadError::DemoBookingMismatch {
            booked: BOOKING.into(),
            requested: "booking-other".into(),
        });
}

#[test]
fn canceling_a_demo_of_an_archived_lead_is_rejected() {
    LeadTest::with(())
        .given(vec![
            captured(),
            demo_booked(LeadStage::New),
            archived(ArchiveReason::Cold, LeadStage::DemoBooked),
        ])
        .when(LeadCommand::CancelDemo {
            booking_id: BOOKING.into(),
            reason: "n/a".into(),
            rescheduled: false,
            at: at(21),
        })
        .then_expect_error(LeadError::LeadIsArchived);
}

#[test]
fn a_no_show_is_recorded_and_the_lead_stays_in_demo_booked() {
    LeadTest::with(())
        .given(vec![captured(), demo_booked(LeadStage::New)])
        .when(LeadCommand::RecordNoShow {
            booking_id: BOOKING.into(),
            at: at(5),
        })
        .then_expect_events(vec![LeadEvent::DemoNoShowRecorded {
            lead_id: LEAD.into(),
            booking_id: BOOKING.into(),
            recorded_at: at(5),
        }]);
}

#[test]
fn a_no_show_without_a_booked_demo_is_rejected() {
    LeadTest::with(())
        .given(vec![captured()])
        .when(LeadCommand::RecordNoShow {
            booking_id: BOOKING.into(),
            at: at(5),
        })
        .then_expect_error(LeadError::NoDemoBooked {
            stage: LeadStage::New,
        });
}

// --- paid, onboarding, active ---------------------------------------------

#[test]
fn a_paid_invoice_moves_a_lead_with_a_proposal_to_paid() {
    LeadTest::with(())
        .given(vec![captured(), proposal_sent(LeadStage::New)])
        .when(mark_paid())
        .then_expect_events(vec![paid(LeadStage::Proposal)]);
}

#[test]
fn a_paid_invoice_moves_an_earlier_stage_lead_to_paid() {
    LeadTest::with(())
        .given(vec![captured()])
        .when(mark_paid())
        .then_expect_events(vec![paid(LeadStage::New)]);
}

#[test]
fn marking_a_paid_lead_paid_again_is_rejected() {
    LeadTest::with(())
        .given(through_paid())
        .when(mark_paid())
        .then_expect_error(LeadError::AlreadyInStage {
            stage: LeadStage::Paid,
        });
}

#[test]
fn marking_an_onboarding_lead_paid_would_go_back_and_is_rejected() {
    let mut given = through_paid();
    given.push(onboarding_started());
    LeadTest::with(())
        .given(given)
        .when(mark_paid())
        .then_expect_error(LeadError::StageWouldGoBack {
            from: LeadStage::Onboarding,
            to: LeadStage::Paid,
        });
}

#[test]
fn an_archived_lead_cannot_be_marked_paid_until_reopened() {
    LeadTest::with(())
        .given(vec![
            captured(),
            archived(ArchiveReason::Cold, LeadStage::New),
        ])
        .when(mark_paid())
        .then_expect_error(LeadError::LeadIsArchived);
}

#[test]
fn a_proposal_after_payment_would_go_back_and_is_rejected() {
    LeadTest::with(())
        .given(through_paid())
        .when(LeadCommand::SendProposal {
            plan: Plan::Scale,
            at: at(9),
        })
        .then_expect_error(LeadError::StageWouldGoBack {
            from: LeadStage::Paid,
            to: LeadStage::Proposal,
        });
}

#[test]
fn onboarding_starts_after_payment() {
    LeadTest::with(())
        .given(through_paid())
        .when(LeadCommand::StartOnboarding { at: at(9) })
        .then_expect_events(vec![onboarding_started()]);
}

#[test]
fn onboarding_before_payment_is_rejected() {
    LeadTest::with(())
        .given(vec![captured(), proposal_sent(LeadStage::New)])
        .when(LeadCommand::StartOnboarding { at: at(9) })
        .then_expect_error(LeadError::OnboardingRequiresPaid {
            stage: LeadStage::Proposal,
        });
}

#[test]
fn starting_onboarding_twice_is_rejected() {
    let mut given = through_paid();
    given.push(onboarding_started());
    LeadTest::with(())
        .given(given)
        .when(LeadCommand::StartOnboarding { at: at(9) })
        .then_expect_error(LeadError::AlreadyInStage {
            stage: LeadStage::Onboarding,
        });
}

#[test]
fn an_onboarded_lead_is_activated_with_its_partner() {
    let mut given = through_paid();
    given.push(onboarding_started());
    LeadTest::with(())
        .given(given)
        .when(LeadCommand::Activate { at: at(10) })
        .then_expect_events(vec![LeadEvent::LeadActivated {
            lead_id: LEAD.into(),
            partner_id: Some("partner-1".into()),
            activated_at: at(10),
        }]);
}

#[test]
fn activating_a_lead_that_is_not_onboarding_is_rejected() {
    LeadTest::with(())
        .given(through_paid())
        .when(LeadCommand::Activate { at: at(10) })
        .then_expect_error(LeadError::ActivationRequiresOnboarding {
            stage: LeadStage::Paid,
        });
}

#[test]
fn activating_an_active_lead_again_is_rejected() {
    let mut given = through_paid();
    given.push(onboarding_started());
    given.push(LeadEvent::LeadActivated {
        lead_id: LEAD.into(),
        partner_id: None,
        activated_at: at(10),
    });
    LeadTest::with(())
        .given(given.clone())
        .when(LeadCommand::Activate { at: at(11) })
        .then_expect_error(LeadError::AlreadyInStage {
            stage: LeadStage::Active,
        });
    LeadTest::with(())
        .given(given)
        .when(LeadCommand::StartOnboarding { at: at(11) })
        .then_expect_error(LeadError::StageWouldGoBack {
            from: LeadStage::Active,
            to: LeadStage::Onboarding,
        });
}

// --- archive and reopen ----------------------------------------------------

#[test]
fn a_silent_lead_is_archived_as_cold() {
    LeadTest::with(())
        .given(vec![captured(), qualified()])
        .when(LeadCommand::Archive {
            reason: ArchiveReason::Cold,
            at: at(20),
        })
        .then_expect_events(vec![archived(ArchiveReason::Cold, LeadStage::Qualified)]);
}

#[test]
fn a_lost_lead_is_archived_with_its_note() {
    let reason = ArchiveReason::Lost {
        note: "chose a competitor".into(),
    };
    LeadTest::with(())
        .given(vec![captured(), proposal_sent(LeadStage::New)])
        .when(LeadCommand::Archive {
            reason: reason.clone(),
            at: at(20),
        })
        .then_expect_events(vec![archived(reason, LeadStage::Proposal)]);
}

#[test]
fn a_lost_lead_without_a_note_is_rejected() {
    LeadTest::with(())
        .given(vec![captured()])
        .when(LeadCommand::Archive {
            reason: ArchiveReason::Lost { note: " ".into() },
            at: at(20),
        })
        .then_expect_error(LeadError::LossNoteRequired);
}

#[test]
fn archiving_a_lead_after_payment_is_rejected() {
    LeadTest::with(())
        .given(through_paid())
        .when(LeadCommand::Archive {
            reason: ArchiveReason::Cold,
            at: at(20),
        })
        .then_expect_error(LeadError::CannotArchiveAfterPaid {
            stage: LeadStage::Paid,
        });
}

#[test]
fn archiving_an_archived_lead_is_rejected() {
    LeadTest::with(())
        .given(vec![
            captured(),
            archived(ArchiveReason::Cold, LeadStage::New),
        ])
        .when(LeadCommand::Archive {
            reason: ArchiveReason::Cold,
            at: at(21),
        })
        .then_expect_error(LeadError::LeadAlreadyArchived);
}

#[test]
fn an_archived_lead_cannot_move_forward_until_reopened() {
    LeadTest::with(())
        .given(vec![
            captured(),
            archived(ArchiveReason::Cold, LeadStage::New),
        ])
        .when(LeadCommand::Qualify { at: at(21) })
        .then_expect_error(LeadError::LeadIsArchived);
    LeadTest::with(())
        .given(vec![
            captured(),
            archived(ArchiveReason::Cold, LeadStage::New),
        ])
        .when(LeadCommand::StartOnboarding { at: at(21) })
        .then_expect_error(LeadError::LeadIsArchived);
}

#[test]
fn reopening_returns_the_lead_to_the_stage_it_was_archived_from() {
    LeadTest::with(())
        .given(vec![
            captured(),
            demo_booked(LeadStage::New),
            archived(ArchiveReason::Cold, LeadStage::DemoBooked),
        ])
        .when(LeadCommand::Reopen { at: at(25) })
        .then_expect_events(vec![LeadEvent::LeadReopened {
            lead_id: LEAD.into(),
            stage: LeadStage::DemoBooked,
            reopened_at: at(25),
        }]);
}

#[test]
fn reopening_a_lead_that_is_not_archived_is_rejected() {
    LeadTest::with(())
        .given(vec![captured()])
        .when(LeadCommand::Reopen { at: at(25) })
        .then_expect_error(LeadError::LeadNotArchived);
}

// --- follow-ups -------------------------------------------------------------

#[test]
fn a_follow_up_is_logged() {
    LeadTest::with(())
        .given(vec![captured()])
        .when(LeadCommand::LogFollowUp {
            channel: FollowUpChannel::Whatsapp,
            note: "sent the deck".into(),
            responded: false,
            at: at(1),
        })
        .then_expect_events(vec![LeadEvent::FollowUpLogged {
            lead_id: LEAD.into(),
            channel: FollowUpChannel::Whatsapp,
            note: "sent the deck".into(),
            responded: false,
            logged_at: at(1),
        }]);
}

#[test]
fn a_response_resets_the_follow_up_cadence_and_the_silence_clock() {
    let follow_up = |responded: bool, day: u8| LeadEvent::FollowUpLogged {
        lead_id: LEAD.into(),
        channel: FollowUpChannel::Email,
        note: String::new(),
        responded,
        logged_at: at(day),
    };
    let mut lead = Lead::default();
    lead.apply(captured());
    assert_eq!(lead.next_follow_up_due(), Some(at(1)));
    lead.apply(follow_up(false, 1));
    assert_eq!(lead.next_follow_up_due(), Some(at(3)));
    lead.apply(follow_up(false, 3));
    lead.apply(follow_up(false, 7));
    assert_eq!(lead.follow_ups_since_response(), 3);
    assert_eq!(lead.next_follow_up_due(), None);
    lead.apply(follow_up(true, 9));
    assert_eq!(lead.silence_started_at(), Some(at(9)));
    assert_eq!(lead.next_follow_up_due(), Some(at(10)));
}

#[test]
fn follow_ups_fall_due_on_days_one_three_and_seven() {
    let last_contact = at(0);
    assert_eq!(next_follow_up_due(last_contact, 0), Some(at(1)));
    assert_eq!(next_follow_up_due(last_contact, 1), Some(at(3)));
    assert_eq!(next_follow_up_due(last_contact, 2), Some(at(7)));
    assert_eq!(next_follow_up_due(last_contact, 3), None);
    assert_eq!(next_follow_up_due(last_contact, u32::MAX), None);
}

#[test]
fn a_lead_is_cold_after_fourteen_days_without_a_response() {
    let last = at(0);
    assert!(!is_cold(
        last,
        last + Duration::days(14) - Duration::seconds(1)
    ));
    assert!(is_cold(last, last + Duration::days(14)));
    assert!(!is_cold(last, last));
}

// --- serialization ------------------------------------------------------------

#[test]
fn events_are_named_for_their_variant_at_their_current_version() {
    assert_eq!(captured().event_type(), "LeadCaptured");
    assert_eq!(paid(LeadStage::New).event_type(), "LeadPaid");
    // Version 2: the personal fields are sealed at the store boundary (domain::upcast).
    assert_eq!(captured().event_version(), "2");
    assert_eq!(paid(LeadStage::New).event_version(), "1");
}

#[test]
fn events_serialize_as_a_tagged_object_with_rfc3339_times() {
    let json = serde_json::to_value(qualified()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "LeadQualified": {
                "lead_id": LEAD,
                "from_stage": "new",
                "qualified_at": "2025-03-02T09:00:00Z"
            }
        })
    );
    let archived_json = serde_json::to_value(archived(
        ArchiveReason::Lost { note: "x".into() },
        LeadStage::New,
    ))
    .unwrap();
    assert_eq!(
        archived_json["LeadArchived"]["reason"],
        serde_json::json!({"kind": "lost", "note": "x"})
    );
    let back: LeadEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, qualified());
}

#[test]
fn the_aggregate_state_round_trips_through_json() {
    let mut lead = Lead::default();
    for event in through_paid() {
        lead.apply(event);
    }
    let json = serde_json::to_string(&lead).unwrap();
    let back: Lead = serde_json::from_str(&json).unwrap();
    assert_eq!(back, lead);
    assert_eq!(back.stage(), Some(LeadStage::Paid));
    assert_eq!(back.invoice_id(), Some("invoice-1"));
}

fn any_command() -> impl Strategy<Value = LeadCommand> {
    let t = at(3);
    prop_oneof![
        Just(capture_command()),
        Just(LeadCommand::Qualify { at: t }),
        Just(book_demo()),
        Just(LeadCommand::CancelDemo {
            booking_id: BOOKING.into(),
            reason: "r".into(),
            rescheduled: false,
            at: t
        }),
        Just(LeadCommand::RecordNoShow {
            booking_id: BOOKING.into(),
            at: t
        }),
        Just(LeadCommand::SendProposal {
            plan: Plan::Starter,
            at: t
        }),
        Just(mark_paid()),
        Just(LeadCommand::StartOnboarding { at: t }),
        Just(LeadCommand::Activate { at: t }),
        Just(LeadCommand::Archive {
            reason: ArchiveReason::Cold,
            at: t
        }),
        Just(LeadCommand::Reopen { at: t }),
    ]
}

proptest! {
    #[test]
    fn a_lead_never_leaves_paid_or_later_for_an_earlier_stage(
        commands in proptest::collection::vec(any_command(), 0..30)
    ) {
        let mut lead = Lead::default();
        let mut reached_paid = false;
        for command in commands {
            if let Ok(events) = lead.decide(command) {
                for event in events {
                    lead.apply(event);
                }
            }
            let stage = lead.stage();
            if stage == Some(LeadStage::Paid) {
                reached_paid = true;
            }
            if reached_paid {
                let stage = stage.unwrap();
                prop_assert!(matches!(
                    stage,
                    LeadStage::Paid | LeadStage::Onboarding | LeadStage::Active
                ));
            }
        }
    }
}

fn follow_up(responded: bool, day: u8) -> LeadEvent {
    LeadEvent::FollowUpLogged {
        lead_id: LEAD.into(),
        channel: FollowUpChannel::Email,
        note: "checking in".into(),
        responded,
        logged_at: at(day),
    }
}

#[test]
fn a_lead_silent_for_fourteen_days_is_archived_as_cold() {
    LeadTest::with(())
        .given(vec![captured(), follow_up(false, 1), follow_up(false, 3)])
        .when(LeadCommand::ArchiveIfCold { at: at(14) })
        .then_expect_events(vec![LeadEvent::LeadArchived {
            lead_id: LEAD.into(),
            reason: ArchiveReason::Cold,
            from_stage: LeadStage::New,
            archived_at: at(14),
        }]);
}

#[test]
fn a_lead_silent_for_thirteen_days_is_not_archived_as_cold() {
    LeadTest::with(())
        .given(vec![captured()])
        .when(LeadCommand::ArchiveIfCold { at: at(13) })
        .then_expect_error(LeadError::LeadNotCold {
            silent_since: at(0),
        });
}

#[test]
fn a_response_restarts_the_silence_before_the_cold_archive() {
    LeadTest::with(())
        .given(vec![captured(), follow_up(true, 5)])
        .when(LeadCommand::ArchiveIfCold { at: at(14) })
        .then_expect_error(LeadError::LeadNotCold {
            silent_since: at(5),
        });
}

#[test]
fn a_reopened_lead_starts_a_new_silence_and_is_not_cold_at_once() {
    LeadTest::with(())
        .given(vec![
            captured(),
            LeadEvent::LeadArchived {
                lead_id: LEAD.into(),
                reason: ArchiveReason::Cold,
                from_stage: LeadStage::New,
                archived_at: at(14),
            },
            LeadEvent::LeadReopened {
                lead_id: LEAD.into(),
                stage: LeadStage::New,
                reopened_at: at(20),
            },
        ])
        .when(LeadCommand::ArchiveIfCold { at: at(21) })
        .then_expect_error(LeadError::LeadNotCold {
            silent_since: at(20),
        });
}

// --- schema fixtures ------------------------------------------------------------------------

/// One of each lead event, as the rules above decide them: the source of the stored schema
/// fixtures (`crate::upcast`). The captured lead has every contact field, so the fixture of
/// `LeadCaptured` shows each personal-data field the store keeps.
pub(crate) fn samples() -> Vec<LeadEvent> {
    let mut captured = captured();
    if let LeadEvent::LeadCaptured { phone, .. } = &mut captured {
        *phone = Some("+966501234567".into());
    }
    vec![
        captured,
        qualified(),
        demo_booked(LeadStage::Qualified),
        LeadEvent::DemoCanceled {
            lead_id: LEAD.into(),
            booking_id: BOOKING.into(),
            reason: "travelling".into(),
            rescheduled: true,
            canceled_at: at(3),
        },
        LeadEvent::DemoNoShowRecorded {
            lead_id: LEAD.into(),
            booking_id: BOOKING.into(),
            recorded_at: at(5),
        },
        proposal_sent(LeadStage::DemoBooked),
        paid(LeadStage::Proposal),
        onboarding_started(),
        LeadEvent::LeadActivated {
            lead_id: LEAD.into(),
            partner_id: Some("partner-1".into()),
            activated_at: at(10),
        },
        archived(ArchiveReason::Cold, LeadStage::DemoBooked),
        LeadEvent::LeadReopened {
            lead_id: LEAD.into(),
            stage: LeadStage::DemoBooked,
            reopened_at: at(25),
        },
        follow_up(true, 3),
    ]
}
