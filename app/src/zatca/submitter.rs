//! The submitter: every prepared Phase 2 document is signed once and sent to ZATCA until ZATCA
//! answers for good (cleared, reported or rejected); each step is a command on the document's
//! submission stream (`domain::submission`), so a crash between any two loses and doubles
//! nothing:
//!
//! - **Signing** happens once, before the first send, and its bytes are recorded
//!   (`DocumentSigned`). A crash before the record leaves nothing sent; the next run signs
//!   again (the signing time may differ, nothing else), and only the recorded bytes are ever
//!   sent. Two submitters racing sign under one command id: one record wins, and both send
//!   what was recorded.
//! - **Sending** always sends the recorded bytes. A crash after a send and before its answer is
//!   recorded means ZATCA may have the document already: the next run sends the same bytes,
//!   which ZATCA answers "already accepted" (208/409) when the first one was taken, and the
//!   answer is recorded as the final one. Each attempt's record carries a command id derived
//!   from the document and the attempt's number, so two records of one attempt are one.
//! - **Answers** map onto the outbox: cleared (with ZATCA's copy, the legal XML), reported,
//!   rejected (ZATCA's messages), or tried again later with backoff for everything that is not
//!   ZATCA's verdict on the document (no answer, 5xx, 429, refused credentials, an unreadable
//!   answer). When ZATCA has switched clearance off (303), a standard document is reported
//!   instead, as ZATCA's fallback rules say.
//!
//! A document waits unsent while the unit has no production CSID: nothing is recorded for it
//! (there is nothing to sign with), the oldest-pending metric and its alert tell, and it goes
//! out on the first round after onboarding.

use std::sync::Arc;
use std::time::Duration;

use adapters::fatoora::{
    Credentials, FatooraClient, FatooraError, SubmissionOutcome, ValidationMessage,
};
use adapters::sql::SqlDb;
use adapters::store::EventMetadata;
use adapters::zatca_keys::{KeyStoreError, PRODUCTION_FILE};
use domain::submission::{AttemptOutcome, Flow, Submission, SubmissionCommand, ZatcaMessage};
use k256::ecdsa::SigningKey;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::command::{CommandEnvelope, CommandError};
use crate::handlers::Handlers;
use crate::process::command_id;
use crate::zatca::ZatcaConfig;

/// How often the submitter looks for due documents.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Documents sent per round at most (one at a time, in order of when they fell due).
pub const ROUND_LIMIT: i64 = 100;

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("reading the documents due: {0}")]
    Read(#[from] projections::ProjectionError),
    #[error("the unit's key store: {0}")]
    Keys(#[from] KeyStoreError),
    #[error("the production certificate cannot be read: {0}")]
    Certificate(#[from] zatca::CertificateError),
    #[error("document {document_id} cannot be rebuilt from its sequence")]
    NotInSequence { document_id: String },
    #[error("document {document_id} cannot be signed: {reason}")]
    Sign { document_id: String, reason: String },
    #[error("recording document {document_id}'s submission: {reason}")]
    Record { document_id: String, reason: String },
    #[error("Fatoora client: {0}")]
    Client(FatooraError),
}

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Documents due.
    pub due: usize,
    /// Documents given a final answer (cleared, reported, rejected).
    pub answered: usize,
    /// Documents left for a later attempt.
    pub deferred: usize,
    /// Documents left unsent because the unit has no production CSID yet.
    pub waiting_for_onboarding: usize,
}

/// The EGS unit's submitter.
pub struct Submitter {
    handlers: Arc<Handlers>,
    db: SqlDb,
    config: ZatcaConfig,
    client: FatooraClient,
}

/// What a document is signed with: the unit's key and its production CSID.
struct Signer {
    key: SigningKey,
    credentials: Credentials,
    certificate: zatca::Certificate,
}

impl Submitter {
    pub fn new(handlers: Arc<Handlers>, config: ZatcaConfig) -> Result<Submitter, SubmitError> {
        let client = FatooraClient::new(&config.fatoora).map_err(SubmitError::Client)?;
        Ok(Submitter {
            db: handlers.store.sql(),
            handlers,
            config,
            client,
        })
    }

    /// Runs rounds every [`POLL_INTERVAL`] until `stopped`.
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        loop {
            match self.round(adapters::clock::now_micros()).await {
                Ok(round) if round.due > 0 => tracing::info!(
                    due = round.due,
                    answered = round.answered,
                    deferred = round.deferred,
                    waiting_for_onboarding = round.waiting_for_onboarding,
                    "ZATCA submissions"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "ZATCA submission round failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    /// Sends every document due at `now`.
    pub async fn round(&self, now: OffsetDateTime) -> Result<Round, SubmitError> {
        let now_us = adapters::clock::unix_micros(now);
        let due = projections::zatca::due(&self.db, now_us, ROUND_LIMIT).await?;
        let mut round = Round {
            due: due.len(),
            ..Round::default()
        };
        if due.is_empty() {
            return Ok(round);
        }
        let Some(signer) = self.signer()? else {
            round.waiting_for_onboarding = due.len();
            metrics::counter!("revledger_zatca_waiting_for_onboarding_total")
                .increment(due.len() as u64);
            return Ok(round);
        };
        for document in due {
            match self.submit(&signer, &document.document_id, now).await? {
                Some(true) => round.answered += 1,
                Some(false) => round.deferred += 1,
                None => {}
            }
        }
        Ok(round)
    }

    /// The key and the production CSID, `None` until the unit is onboarded.
    fn signer(&self) -> Result<Option<Signer>, SubmitError> {
        let Some(credentials) = self.config.keys.credentials(PRODUCTION_FILE)? else {
            return Ok(None);
        };
        let Some(key) = self.config.keys.existing_key()? else {
            return Ok(None);
        };
        let certificate = credentials.certificate()?;
        Ok(Some(Signer {
            key,
            credentials,
            certificate,
        }))
    }

    /// Signs (once) and sends one document: `Some(true)` when ZATCA answered for good,
    /// `Some(false)` when it is to be tried again, `None` when it was no longer pending.
    async fn submit(
        &self,
        signer: &Signer,
        document_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<bool>, SubmitError> {
        let submission = self.load(document_id).await?;
        if submission.is_final() || submission.status().is_none() {
            return Ok(None);
        }
        let submission = match submission.signed_xml() {
            Some(_) => submission,
            None => self.sign(signer, &submission, now).await?,
        };
        let signed_xml = submission.signed_xml().unwrap_or_default();
        let hash = zatca::invoice_hash(signed_xml).map_err(|error| SubmitError::Sign {
            document_id: document_id.to_owned(),
            reason: error.to_string(),
        })?;
        let flow = submission.flow().unwrap_or(Flow::Reporting);
        let answer = match flow {
            Flow::Clearance => {
                self.client
                    .clear(&signer.credentials, &hash, submission.uuid(), signed_xml)
                    .await
            }
            Flow::Reporting => {
                self.client
                    .report(&signer.credentials, &hash, submission.uuid(), signed_xml)
                    .await
            }
        };
        let answer = match answer {
            Ok(SubmissionOutcome::ClearanceSwitchedOff) => {
                tracing::warn!(%document_id, "ZATCA has switched clearance off; reporting the standard document");
                self.client
                    .report(&signer.credentials, &hash, submission.uuid(), signed_xml)
                    .await
            }
            other => other,
        };
        let outcome = attempt_outcome(flow, answer);
        let is_final = !matches!(outcome, AttemptOutcome::RetryLater { .. });
        metrics::counter!("revledger_zatca_attempts_total", "outcome" => outcome_label(&outcome))
            .increment(1);
        let attempt = submission.attempts() + 1;
        let command = SubmissionCommand::RecordAttempt {
            outcome,
            at: adapters::clock::now_micros(),
        };
        self.execute(document_id, "zatca_attempt", attempt, command)
            .await?;
        Ok(Some(is_final))
    }

    /// Builds the document from its sequence, stamps it and records the stamped bytes; the
    /// submission as it is then (with the bytes another submitter recorded, if it was first).
    async fn sign(
        &self,
        signer: &Signer,
        submission: &Submission,
        now: OffsetDateTime,
    ) -> Result<Submission, SubmitError> {
        let document_id = submission.document_id();
        let document = self
            .handlers
            .sequences
            .inspect(submission.egs_unit(), |sequence, _| {
                sequence.phase2_document(document_id)
            })
            .await
            .map_err(|error| record_error(document_id, error))?
            .ok_or_else(|| SubmitError::NotInSequence {
                document_id: document_id.to_owned(),
            })?;
        let (date, time) = domain::phase2::riyadh_local(now);
        let signed = zatca::sign(
            &document,
            &signer.key,
            &signer.certificate,
            time::PrimitiveDateTime::new(date, time),
        )
        .map_err(|error| SubmitError::Sign {
            document_id: document_id.to_owned(),
            reason: error.to_string(),
        })?;
        let command = SubmissionCommand::RecordSigned {
            signed_xml: signed.xml,
            signed_hash: signed.invoice_hash.to_base64(),
            qr_code: signed.qr_base64,
            at: now,
        };
        match self.execute(document_id, "zatca_sign", 0, command).await {
            Ok(()) => {}
            // Another submitter signed first: its bytes are the ones sent.
            Err(SubmitError::Record { .. }) if self.is_signed(document_id).await? => {}
            Err(error) => return Err(error),
        }
        self.load(document_id).await
    }

    async fn load(&self, document_id: &str) -> Result<Submission, SubmitError> {
        let (submission, _) = self
            .handlers
            .submissions
            .load_aggregate(document_id)
            .await
            .map_err(|error| record_error(document_id, error))?;
        Ok(submission)
    }

    async fn is_signed(&self, document_id: &str) -> Result<bool, SubmitError> {
        self.handlers
            .submissions
            .inspect(document_id, |submission, _| {
                submission.signed_xml().is_some()
            })
            .await
            .map_err(|error| record_error(document_id, error))
    }

    async fn execute(
        &self,
        document_id: &str,
        step: &str,
        number: u32,
        command: SubmissionCommand,
    ) -> Result<(), SubmitError> {
        let id = command_id(step, document_id, number);
        self.handlers
            .submissions
            .execute(CommandEnvelope {
                aggregate_id: document_id.to_owned(),
                command_id: id,
                command,
                metadata: EventMetadata {
                    actor: Some("process:zatca_submitter".into()),
                    source: Some("process:zatca_submitter".into()),
                    command_id: Some(id),
                    ..Default::default()
                },
                inbox: None,
                fresh_id: false,
            })
            .await
            .map(|_| ())
            .map_err(|error| record_error(document_id, error))
    }
}

fn record_error<E: std::error::Error>(document_id: &str, error: CommandError<E>) -> SubmitError {
    SubmitError::Record {
        document_id: document_id.to_owned(),
        reason: error.to_string(),
    }
}

/// What one send's answer means for the outbox (see the module docs and
/// `adapters::fatoora`'s table).
pub fn attempt_outcome(
    flow: Flow,
    answer: Result<SubmissionOutcome, FatooraError>,
) -> AttemptOutcome {
    match answer {
        Ok(SubmissionOutcome::Cleared {
            cleared_xml,
            warnings,
        }) => AttemptOutcome::Cleared {
            cleared_xml: Some(cleared_xml),
            warnings: messages(warnings),
        },
        Ok(SubmissionOutcome::Reported { warnings }) => AttemptOutcome::Reported {
            warnings: messages(warnings),
        },
        Ok(SubmissionOutcome::AlreadyAccepted { cleared_xml }) => match flow {
            Flow::Clearance if cleared_xml.is_some() => AttemptOutcome::Cleared {
                cleared_xml,
                warnings: Vec::new(),
            },
            // A standard document reported while clearance was off, or cleared earlier
            // without the copy reaching us: ZATCA holds it, the signed bytes are what it holds.
            Flow::Clearance => AttemptOutcome::Cleared {
                cleared_xml: None,
                warnings: Vec::new(),
            },
            Flow::Reporting => AttemptOutcome::Reported {
                warnings: Vec::new(),
            },
        },
        Ok(SubmissionOutcome::Rejected { errors, warnings }) => AttemptOutcome::Rejected {
            errors: messages(errors),
            warnings: messages(warnings),
        },
        Ok(SubmissionOutcome::ClearanceSwitchedOff) => AttemptOutcome::RetryLater {
            reason: "ZATCA has switched clearance off and reporting did not take it".to_owned(),
        },
        Ok(SubmissionOutcome::Unauthorized) => AttemptOutcome::RetryLater {
            reason: "Fatoora refused the production CSID (HTTP 401); renew it or check the key \
                     store, the document is sent again unchanged"
                .to_owned(),
        },
        Ok(SubmissionOutcome::RetryLater { reason }) => AttemptOutcome::RetryLater {
            reason: format!("Fatoora did not take the document: {reason}"),
        },
        Err(error) => AttemptOutcome::RetryLater {
            reason: error.to_string(),
        },
    }
}

fn messages(list: Vec<ValidationMessage>) -> Vec<ZatcaMessage> {
    list.into_iter()
        .map(|message| ZatcaMessage {
            kind: message.kind.unwrap_or_else(|| "ERROR".to_owned()),
            code: message.code,
            category: message.category,
            message: message.message.unwrap_or_default(),
        })
        .collect()
}

fn outcome_label(outcome: &AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Cleared { .. } => "cleared",
        AttemptOutcome::Reported { .. } => "reported",
        AttemptOutcome::Rejected { .. } => "rejected",
        AttemptOutcome::RetryLater { .. } => "retry_later",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapters::fatoora::RetryReason;

    #[test]
    fn only_zatcas_verdicts_are_final_and_a_duplicate_is_the_first_answer() {
        let duplicate = |flow| {
            attempt_outcome(
                flow,
                Ok(SubmissionOutcome::AlreadyAccepted { cleared_xml: None }),
            )
        };
        assert!(matches!(
            duplicate(Flow::Reporting),
            AttemptOutcome::Reported { .. }
        ));
        assert!(matches!(
            duplicate(Flow::Clearance),
            AttemptOutcome::Cleared {
                cleared_xml: None,
                ..
            }
        ));
        for answer in [
            Ok(SubmissionOutcome::Unauthorized),
            Ok(SubmissionOutcome::RetryLater {
                reason: RetryReason::TimedOut,
            }),
            Err(FatooraError::UnexpectedStatus { status: 302 }),
            Err(FatooraError::InvalidResponse {
                reason: "cut off".into(),
            }),
        ] {
            let outcome = attempt_outcome(Flow::Clearance, answer);
            assert!(
                matches!(outcome, AttemptOutcome::RetryLater { .. }),
                "{outcome:?}"
            );
        }
        let rejected = attempt_outcome(
            Flow::Reporting,
            Ok(SubmissionOutcome::Rejected {
                errors: vec![ValidationMessage {
                    code: Some("BR-KSA-98".into()),
                    message: Some("late".into()),
                    ..Default::default()
                }],
                warnings: Vec::new(),
            }),
        );
        let AttemptOutcome::Rejected { errors, .. } = rejected else {
            panic!("{rejected:?}")
        };
        assert_eq!(errors[0].code.as_deref(), Some("BR-KSA-98"));
        assert_eq!(errors[0].kind, "ERROR");
    }
}
