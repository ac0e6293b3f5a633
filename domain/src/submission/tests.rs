//! Given/when/then tests of a document's submission to ZATCA.

use cqrs_es::test::TestFramework;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

type SubmissionTest = TestFramework<Submission>;

const HASH: &str = "V4U5qlZ3yXQ/Si1AC/R8SLc3F+iNy27wdVe8IWRqFAQ=";

fn issued_at() -> OffsetDateTime {
    datetime!(2026-12-06 10:00:00 UTC)
}

fn prepare(flow: Flow) -> SubmissionCommand {
    SubmissionCommand::Prepare {
        document_id: "invoice-1".into(),
        invoice_id: "invoice-1".into(),
        kind: DocumentKind::Invoice,
        flow,
        egs_unit: "egs-1".into(),
        icv: 7,
        uuid: "3cf5ee18-ee25-44ea-a444-2c37ba7f28be".into(),
        invoice_hash: HASH.into(),
        previous_invoice_hash: domain_pih(),
        issued_at: issued_at(),
    }
}

fn domain_pih() -> String {
    crate::zatca::FIRST_INVOICE_PIH.to_owned()
}

fn prepared(flow: Flow) -> SubmissionEvent {
    Submission::default()
        .decide(prepare(flow))
        .unwrap()
        .remove(0)
}

fn signed() -> SubmissionEvent {
    SubmissionEvent::DocumentSigned {
        document_id: "invoice-1".into(),
        signed_xml: "<Invoice/>".into(),
        qr_code: "AQ==".into(),
        signed_at: issued_at(),
    }
}

fn sign(hash: &str) -> SubmissionCommand {
    SubmissionCommand::RecordSigned {
        signed_xml: "<Invoice/>".into(),
        signed_hash: hash.into(),
        qr_code: "AQ==".into(),
        at: issued_at(),
    }
}

fn attempt(outcome: AttemptOutcome, after_minutes: i64) -> SubmissionCommand {
    SubmissionCommand::RecordAttempt {
        outcome,
        at: issued_at() + Duration::minutes(after_minutes),
    }
}

fn retry(reason: &str) -> AttemptOutcome {
    AttemptOutcome::RetryLater {
        reason: reason.into(),
    }
}

fn message(kind: &str, code: &str) -> ZatcaMessage {
    ZatcaMessage {
        kind: kind.into(),
        code: Some(code.into()),
        category: Some("KSA".into()),
        message: format!("{code} broken"),
    }
}

#[test]
fn a_document_is_signed_once_with_the_hash_it_was_prepared_with() {
    SubmissionTest::with(())
        .given(vec![prepared(Flow::Clearance)])
        .when(sign(HASH))
        .then_expect_events(vec![signed()]);
    SubmissionTest::with(())
        .given(vec![prepared(Flow::Clearance)])
        .when(sign("another"))
        .then_expect_error(SubmissionError::HashMismatch {
            prepared: HASH.into(),
            signed: "another".into(),
        });
    SubmissionTest::with(())
        .given(vec![prepared(Flow::Clearance), signed()])
        .when(sign(HASH))
        .then_expect_error(SubmissionError::AlreadySigned);
}

#[test]
fn nothing_is_sent_before_the_bytes_are_signed_and_kept() {
    SubmissionTest::with(())
        .given(vec![prepared(Flow::Reporting)])
        .when(attempt(AttemptOutcome::Reported { warnings: vec![] }, 1))
        .then_expect_error(SubmissionError::NotSigned);
}

#[test]
fn an_attempt_without_a_final_answer_is_retried_later_with_a_growing_wait() {
    SubmissionTest::with(())
        .given(vec![prepared(Flow::Clearance), signed()])
        .when(attempt(retry("503 Service Unavailable"), 0))
        .then_expect_events(vec![SubmissionEvent::SubmissionDeferred {
            document_id: "invoice-1".into(),
            attempt: 1,
            reason: "503 Service Unavailable".into(),
            attempted_at: issued_at(),
            next_attempt_at: issued_at() + Duration::seconds(FIRST_RETRY_SECONDS),
        }]);
    assert_eq!(retry_delay_seconds(1), 5);
    assert_eq!(retry_delay_seconds(2), 10);
    assert_eq!(retry_delay_seconds(9), MAX_RETRY_SECONDS);
    assert_eq!(retry_delay_seconds(u32::MAX), MAX_RETRY_SECONDS);
}

#[test]
fn a_standard_document_is_cleared_and_keeps_zatcas_copy_as_the_legal_one() {
    let cleared = attempt(
        AttemptOutcome::Cleared {
            cleared_xml: Some("<Invoice cleared/>".into()),
            warnings: vec![message("WARNING", "BR-KSA-08")],
        },
        3,
    );
    let events = SubmissionTest::with(())
        .given(vec![prepared(Flow::Clearance), signed()])
        .when(cleared.clone())
        .inspect_result()
        .unwrap();
    let mut submission = Submission::default();
    for event in [prepared(Flow::Clearance), signed()]
        .into_iter()
        .chain(events)
    {
        submission.apply(event);
    }
    assert_eq!(submission.status(), Some(SubmissionStatus::Cleared));
    assert_eq!(submission.legal_xml(), Some("<Invoice cleared/>"));
    assert_eq!(submission.messages().len(), 1);
    assert_eq!(submission.next_attempt_at(), None);
    assert!(submission.is_final());
}

#[test]
fn a_simplified_document_is_reported_and_cannot_be_cleared() {
    SubmissionTest::with(())
        .given(vec![prepared(Flow::Reporting), signed()])
        .when(attempt(
            AttemptOutcome::Cleared {
                cleared_xml: None,
                warnings: vec![],
            },
            1,
        ))
        .then_expect_error(SubmissionError::WrongFlow {
            flow: Flow::Reporting,
            outcome: "cleared",
        });
    SubmissionTest::with(())
        .given(vec![prepared(Flow::Reporting), signed()])
        .when(attempt(AttemptOutcome::Reported { warnings: vec![] }, 1))
        .then_expect_events(vec![SubmissionEvent::DocumentReported {
            document_id: "invoice-1".into(),
            attempt: 1,
            warnings: vec![],
            reported_at: issued_at() + Duration::minutes(1),
        }]);
}

#[test]
fn a_standard_document_is_reported_when_zatca_has_switched_clearance_off() {
    SubmissionTest::with(())
        .given(vec![prepared(Flow::Clearance), signed()])
        .when(attempt(AttemptOutcome::Reported { warnings: vec![] }, 1))
        .then_expect_events(vec![SubmissionEvent::DocumentReported {
            document_id: "invoice-1".into(),
            attempt: 1,
            warnings: vec![],
            reported_at: issued_at() + Duration::minutes(1),
        }]);
}

#[test]
fn a_rejection_is_final_and_keeps_zatcas_messages() {
    let rejected = SubmissionEvent::DocumentRejected {
        document_id: "invoice-1".into(),
        attempt: 2,
        errors: vec![message("ERROR", "BR-KSA-44")],
        warnings: vec![],
        rejected_at: issued_at() + Duration::minutes(2),
    };
    SubmissionTest::with(())
        .given(vec![
            prepared(Flow::Clearance),
            signed(),
            SubmissionEvent::SubmissionDeferred {
                document_id: "invoice-1".into(),
                attempt: 1,
                reason: "timeout".into(),
                attempted_at: issued_at(),
                next_attempt_at: issued_at() + Duration::seconds(5),
            },
        ])
        .when(attempt(
            AttemptOutcome::Rejected {
                errors: vec![message("ERROR", "BR-KSA-44")],
                warnings: vec![],
            },
            2,
        ))
        .then_expect_events(vec![rejected.clone()]);
    SubmissionTest::with(())
        .given(vec![prepared(Flow::Clearance), signed(), rejected])
        .when(attempt(retry("late answer"), 3))
        .then_expect_error(SubmissionError::AlreadyFinal {
            status: SubmissionStatus::Rejected,
        });
}

#[test]
fn messages_kept_from_one_answer_are_bounded() {
    let many = (0..MAX_MESSAGES + 10)
        .map(|n| message("ERROR", &format!("E{n}")))
        .collect();
    let events = Submission::default()
        .decide(prepare(Flow::Clearance))
        .unwrap()
        .into_iter()
        .chain([signed()])
        .fold(Submission::default(), |mut submission, event| {
            submission.apply(event);
            submission
        })
        .decide(attempt(
            AttemptOutcome::Rejected {
                errors: many,
                warnings: vec![],
            },
            1,
        ))
        .unwrap();
    let [SubmissionEvent::DocumentRejected { errors, .. }] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(errors.len(), MAX_MESSAGES);
}

#[test]
fn a_submission_is_prepared_once_and_needs_its_identifiers() {
    SubmissionTest::with(())
        .given(vec![prepared(Flow::Clearance)])
        .when(prepare(Flow::Clearance))
        .then_expect_error(SubmissionError::AlreadyPrepared);
    let SubmissionCommand::Prepare {
        document_id,
        invoice_id,
        kind,
        flow,
        egs_unit,
        icv,
        invoice_hash,
        previous_invoice_hash,
        issued_at,
        ..
    } = prepare(Flow::Clearance)
    else {
        unreachable!()
    };
    SubmissionTest::with(())
        .given_no_previous_events()
        .when(SubmissionCommand::Prepare {
            document_id,
            invoice_id,
            kind,
            flow,
            egs_unit,
            icv,
            uuid: " ".into(),
            invoice_hash,
            previous_invoice_hash,
            issued_at,
        })
        .then_expect_error(SubmissionError::FieldsRequired);
}

// --- schema fixtures ------------------------------------------------------------------------

/// The events `command` decides after `given`.
fn decided(given: &[SubmissionEvent], command: SubmissionCommand) -> Vec<SubmissionEvent> {
    let mut submission = Submission::default();
    for event in given {
        submission.apply(event.clone());
    }
    submission.decide(command).unwrap()
}

/// One of each submission event, as `decide` records them (with ZATCA's messages where an
/// answer carries them): the source of the stored schema fixtures (`crate::upcast`).
pub(crate) fn samples() -> Vec<SubmissionEvent> {
    let clearance = [prepared(Flow::Clearance), signed()];
    let reporting = [prepared(Flow::Reporting), signed()];
    let mut events = clearance.to_vec();
    events.extend(decided(
        &clearance,
        attempt(retry("503 Service Unavailable"), 0),
    ));
    events.extend(decided(
        &clearance,
        attempt(
            AttemptOutcome::Cleared {
                cleared_xml: Some("<Invoice cleared/>".into()),
                warnings: vec![message("WARNING", "BR-KSA-08")],
            },
            3,
        ),
    ));
    events.extend(decided(
        &reporting,
        attempt(
            AttemptOutcome::Reported {
                warnings: vec![message("WARNING", "BR-KSA-08")],
            },
            1,
        ),
    ));
    events.extend(decided(
        &clearance,
        attempt(
            AttemptOutcome::Rejected {
                errors: vec![message("ERROR", "BR-KSA-44")],
                warnings: vec![message("WARNING", "BR-KSA-08")],
            },
            2,
        ),
    ));
    events
}
