//! A ZATCA Phase 2 document's way to ZATCA: the submission outbox, one stream per document.
//!
//! A standard (B2B) document must be **cleared** by ZATCA before the buyer gets it; a
//! simplified (B2C) one must be **reported** within 24 hours of its issue. Either way the way
//! there is the same, and every step of it is an event:
//!
//! 1. **Prepared**: the document exists (its invoice was issued, its credit note allocated) with
//!    its place in its EGS unit's chain and its invoice hash.
//! 2. **Signed**: the stamped XML, fixed once and for all *before the first send*: ZATCA treats
//!    the same UUID with other bytes as a second document, so every attempt sends these bytes.
//! 3. **Attempts**: each send that got no final answer (a timeout, a 5xx, a 429, ZATCA's
//!    credentials refusal) is recorded with when to try again ([`retry_delay_seconds`]);
//!    nothing is lost across a crash, and nothing is sent twice as two documents (the same
//!    bytes again are answered "already accepted" by ZATCA within 24 hours).
//! 4. **Final**: cleared (with ZATCA's cleared XML, the legal document), reported, or
//!    rejected with ZATCA's messages. A rejected document is corrected by issuing a new one,
//!    which takes the next ICV: the chain has no gap and no place is used twice.
//!
//! The clock is an input (each command says when), as everywhere in the domain.

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

/// The first retry waits this long; each next one twice as long, up to [`MAX_RETRY_SECONDS`].
pub const FIRST_RETRY_SECONDS: i64 = 5;

/// The longest wait between two attempts: an outage of hours is retried every quarter of an
/// hour, well inside the 24 hours a simplified document has to be reported.
pub const MAX_RETRY_SECONDS: i64 = 15 * 60;

/// Messages kept from one ZATCA answer at most (ZATCA sends a handful; a bound keeps an event
/// small whatever it sends).
pub const MAX_MESSAGES: usize = 50;

/// How long after its issue a simplified document must be reported (ZATCA).
pub const REPORTING_DEADLINE_HOURS: i64 = 24;

/// What kind of document it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// Tax invoice (388).
    Invoice,
    /// Credit note (381).
    CreditNote,
    /// Debit note (383).
    DebitNote,
}

/// Standard (B2B, cleared) or simplified (B2C, reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// Cleared by ZATCA before the buyer gets it.
    Clearance,
    /// Reported to ZATCA within 24 hours.
    Reporting,
}

/// Where a submission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionStatus {
    /// Prepared or signed, not yet answered for good.
    Pending,
    Cleared,
    Reported,
    Rejected,
}

impl SubmissionStatus {
    /// The status as the API, the read model and the dashboard spell it (its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Pending => "pending",
            SubmissionStatus::Cleared => "cleared",
            SubmissionStatus::Reported => "reported",
            SubmissionStatus::Rejected => "rejected",
        }
    }
}

/// One message of ZATCA's validation results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZatcaMessage {
    /// `INFO`, `WARNING` or `ERROR`.
    pub kind: String,
    pub code: Option<String>,
    pub category: Option<String>,
    pub message: String,
}

/// What one send got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    /// Cleared; `cleared_xml` is ZATCA's stamped copy, the legal document (absent only when a
    /// duplicate answer did not carry it).
    Cleared {
        cleared_xml: Option<String>,
        warnings: Vec<ZatcaMessage>,
    },
    Reported {
        warnings: Vec<ZatcaMessage>,
    },
    Rejected {
        errors: Vec<ZatcaMessage>,
        warnings: Vec<ZatcaMessage>,
    },
    /// No final answer (a timeout, a 5xx, a 429, ZATCA's credentials refusal): send the same
    /// bytes again later.
    RetryLater {
        reason: String,
    },
}

/// What can be asked of a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubmissionCommand {
    Prepare {
        document_id: String,
        /// The invoice the document is (or corrects).
        invoice_id: String,
        kind: DocumentKind,
        flow: Flow,
        egs_unit: String,
        icv: u64,
        uuid: String,
        invoice_hash: String,
        /// PIH: the hash of the document before it in the unit's chain.
        #[serde(default)]
        previous_invoice_hash: String,
        #[serde(with = "time::serde::rfc3339")]
        issued_at: OffsetDateTime,
    },
    /// The stamped XML every attempt sends; its invoice hash must be the prepared one.
    RecordSigned {
        signed_xml: String,
        /// The hash of `signed_xml` as computed from it.
        signed_hash: String,
        qr_code: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    RecordAttempt {
        outcome: AttemptOutcome,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// What happened to a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubmissionEvent {
    SubmissionPrepared {
        document_id: String,
        invoice_id: String,
        kind: DocumentKind,
        flow: Flow,
        egs_unit: String,
        icv: u64,
        uuid: String,
        invoice_hash: String,
        /// PIH: the hash of the document before it in the unit's chain.
        #[serde(default)]
        previous_invoice_hash: String,
        #[serde(with = "time::serde::rfc3339")]
        issued_at: OffsetDateTime,
    },
    DocumentSigned {
        document_id: String,
        signed_xml: String,
        qr_code: String,
        #[serde(with = "time::serde::rfc3339")]
        signed_at: OffsetDateTime,
    },
    SubmissionDeferred {
        document_id: String,
        attempt: u32,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        attempted_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        next_attempt_at: OffsetDateTime,
    },
    DocumentCleared {
        document_id: String,
        attempt: u32,
        cleared_xml: Option<String>,
        warnings: Vec<ZatcaMessage>,
        #[serde(with = "time::serde::rfc3339")]
        cleared_at: OffsetDateTime,
    },
    DocumentReported {
        document_id: String,
        attempt: u32,
        warnings: Vec<ZatcaMessage>,
        #[serde(with = "time::serde::rfc3339")]
        reported_at: OffsetDateTime,
    },
    DocumentRejected {
        document_id: String,
        attempt: u32,
        errors: Vec<ZatcaMessage>,
        warnings: Vec<ZatcaMessage>,
        #[serde(with = "time::serde::rfc3339")]
        rejected_at: OffsetDateTime,
    },
}

crate::events::event_types!(SubmissionEvent {
    SubmissionPrepared,
    DocumentSigned,
    SubmissionDeferred,
    DocumentCleared,
    DocumentReported,
    DocumentRejected
});

/// The rules a submission command can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SubmissionError {
    #[error("the submission was already prepared")]
    AlreadyPrepared,
    #[error("the submission has not been prepared")]
    NotPrepared,
    #[error("the document is signed already; every attempt sends those bytes")]
    AlreadySigned,
    #[error("the signed XML's hash {signed} is not the document's {prepared}")]
    HashMismatch { prepared: String, signed: String },
    #[error("the document is not signed yet")]
    NotSigned,
    #[error("the document was {status:?} already")]
    AlreadyFinal { status: SubmissionStatus },
    #[error("a {flow:?} document cannot be {outcome}")]
    WrongFlow { flow: Flow, outcome: &'static str },
    #[error("a document id, an invoice id, an EGS unit, a UUID and a hash are required")]
    FieldsRequired,
}

/// One document's submission, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    document_id: String,
    invoice_id: String,
    kind: Option<DocumentKind>,
    flow: Option<Flow>,
    egs_unit: String,
    icv: u64,
    uuid: String,
    invoice_hash: String,
    previous_invoice_hash: String,
    #[serde(with = "time::serde::rfc3339::option")]
    issued_at: Option<OffsetDateTime>,
    signed_xml: Option<String>,
    attempts: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    next_attempt_at: Option<OffsetDateTime>,
    status: Option<SubmissionStatus>,
    legal_xml: Option<String>,
    messages: Vec<ZatcaMessage>,
}

/// How long to wait after the `attempt`th failed attempt: [`FIRST_RETRY_SECONDS`] doubling,
/// at most [`MAX_RETRY_SECONDS`].
pub fn retry_delay_seconds(attempt: u32) -> i64 {
    let doublings = attempt.saturating_sub(1).min(16);
    FIRST_RETRY_SECONDS
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_SECONDS)
}

fn bounded(messages: Vec<ZatcaMessage>) -> Vec<ZatcaMessage> {
    messages.into_iter().take(MAX_MESSAGES).collect()
}

impl Submission {
    pub fn document_id(&self) -> &str {
        &self.document_id
    }

    pub fn invoice_id(&self) -> &str {
        &self.invoice_id
    }

    pub fn flow(&self) -> Option<Flow> {
        self.flow
    }

    pub fn kind(&self) -> Option<DocumentKind> {
        self.kind
    }

    pub fn egs_unit(&self) -> &str {
        &self.egs_unit
    }

    pub fn icv(&self) -> u64 {
        self.icv
    }

    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    pub fn invoice_hash(&self) -> &str {
        &self.invoice_hash
    }

    /// PIH: the hash of the document before it in the unit's chain.
    pub fn previous_invoice_hash(&self) -> &str {
        &self.previous_invoice_hash
    }

    pub fn issued_at(&self) -> Option<OffsetDateTime> {
        self.issued_at
    }

    /// `None` before it is prepared.
    pub fn status(&self) -> Option<SubmissionStatus> {
        self.status
    }

    /// The stamped bytes every attempt sends; `None` before signing.
    pub fn signed_xml(&self) -> Option<&str> {
        self.signed_xml.as_deref()
    }

    /// The legal document: ZATCA's cleared copy of a standard document, the signed one of a
    /// simplified document; `None` until signed.
    pub fn legal_xml(&self) -> Option<&str> {
        self.legal_xml.as_deref().or(self.signed_xml.as_deref())
    }

    /// ZATCA's messages from its final answer (the errors of a rejection, else its warnings).
    pub fn messages(&self) -> &[ZatcaMessage] {
        &self.messages
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When the next attempt is due; `None` when no attempt is waiting.
    pub fn next_attempt_at(&self) -> Option<OffsetDateTime> {
        self.next_attempt_at
    }

    /// Whether a final answer is in.
    pub fn is_final(&self) -> bool {
        matches!(
            self.status,
            Some(
                SubmissionStatus::Cleared | SubmissionStatus::Reported | SubmissionStatus::Rejected
            )
        )
    }

    pub fn decide(
        &self,
        command: SubmissionCommand,
    ) -> Result<Vec<SubmissionEvent>, SubmissionError> {
        match command {
            SubmissionCommand::Prepare {
                document_id,
                invoice_id,
                kind,
                flow,
                egs_unit,
                icv,
                uuid,
                invoice_hash,
                previous_invoice_hash,
                issued_at,
            } => {
                if self.status.is_some() {
                    return Err(SubmissionError::AlreadyPrepared);
                }
                let required = [&document_id, &invoice_id, &egs_unit, &uuid, &invoice_hash];
                if required.iter().any(|field| field.trim().is_empty()) {
                    return Err(SubmissionError::FieldsRequired);
                }
                Ok(vec![SubmissionEvent::SubmissionPrepared {
                    document_id,
                    invoice_id,
                    kind,
                    flow,
                    egs_unit,
                    icv,
                    uuid,
                    invoice_hash,
                    previous_invoice_hash,
                    issued_at,
                }])
            }
            SubmissionCommand::RecordSigned {
                signed_xml,
                signed_hash,
                qr_code,
                at,
            } => {
                self.check_open()?;
                if self.signed_xml.is_some() {
                    return Err(SubmissionError::AlreadySigned);
                }
                if signed_hash != self.invoice_hash {
                    return Err(SubmissionError::HashMismatch {
                        prepared: self.invoice_hash.clone(),
                        signed: signed_hash,
                    });
                }
                Ok(vec![SubmissionEvent::DocumentSigned {
                    document_id: self.document_id.clone(),
                    signed_xml,
                    qr_code,
                    signed_at: at,
                }])
            }
            SubmissionCommand::RecordAttempt { outcome, at } => self.record_attempt(outcome, at),
        }
    }

    fn check_open(&self) -> Result<(), SubmissionError> {
        match self.status {
            None => Err(SubmissionError::NotPrepared),
            Some(SubmissionStatus::Pending) => Ok(()),
            Some(status) => Err(SubmissionError::AlreadyFinal { status }),
        }
    }

    fn record_attempt(
        &self,
        outcome: AttemptOutcome,
        at: OffsetDateTime,
    ) -> Result<Vec<SubmissionEvent>, SubmissionError> {
        self.check_open()?;
        if self.signed_xml.is_none() {
            return Err(SubmissionError::NotSigned);
        }
        let flow = self.flow.ok_or(SubmissionError::NotPrepared)?;
        let document_id = self.document_id.clone();
        let attempt = self.attempts.saturating_add(1);
        let event = match outcome {
            AttemptOutcome::Cleared {
                cleared_xml,
                warnings,
            } => {
                if flow != Flow::Clearance {
                    return Err(SubmissionError::WrongFlow {
                        flow,
                        outcome: "cleared",
                    });
                }
                SubmissionEvent::DocumentCleared {
                    document_id,
                    attempt,
                    cleared_xml,
                    warnings: bounded(warnings),
                    cleared_at: at,
                }
            }
            // A standard document is reported too when ZATCA has switched clearance off
            // (its fallback rule), so reporting fits either flow; clearance fits only one.
            AttemptOutcome::Reported { warnings } => SubmissionEvent::DocumentReported {
                document_id,
                attempt,
                warnings: bounded(warnings),
                reported_at: at,
            },
            AttemptOutcome::Rejected { errors, warnings } => SubmissionEvent::DocumentRejected {
                document_id,
                attempt,
                errors: bounded(errors),
                warnings: bounded(warnings),
                rejected_at: at,
            },
            AttemptOutcome::RetryLater { reason } => SubmissionEvent::SubmissionDeferred {
                document_id,
                attempt,
                reason,
                attempted_at: at,
                next_attempt_at: at + time::Duration::seconds(retry_delay_seconds(attempt)),
            },
        };
        Ok(vec![event])
    }
}

impl Aggregate for Submission {
    const TYPE: &'static str = "zatca_submission";
    type Command = SubmissionCommand;
    type Event = SubmissionEvent;
    type Error = SubmissionError;
    type Services = ();

    crate::events::handle_by_deciding!();

    fn apply(&mut self, event: Self::Event) {
        match event {
            SubmissionEvent::SubmissionPrepared {
                document_id,
                invoice_id,
                kind,
                flow,
                egs_unit,
                icv,
                uuid,
                invoice_hash,
                previous_invoice_hash,
                issued_at,
            } => {
                self.previous_invoice_hash = previous_invoice_hash;
                self.document_id = document_id;
                self.invoice_id = invoice_id;
                self.kind = Some(kind);
                self.flow = Some(flow);
                self.egs_unit = egs_unit;
                self.icv = icv;
                self.uuid = uuid;
                self.invoice_hash = invoice_hash;
                self.issued_at = Some(issued_at);
                self.status = Some(SubmissionStatus::Pending);
                self.next_attempt_at = Some(issued_at);
            }
            SubmissionEvent::DocumentSigned { signed_xml, .. } => {
                self.signed_xml = Some(signed_xml);
            }
            SubmissionEvent::SubmissionDeferred {
                attempt,
                next_attempt_at,
                ..
            } => {
                self.attempts = attempt;
                self.next_attempt_at = Some(next_attempt_at);
            }
            SubmissionEvent::DocumentCleared {
                attempt,
                cleared_xml,
                warnings,
                ..
            } => {
                self.attempts = attempt;
                self.status = Some(SubmissionStatus::Cleared);
                self.legal_xml = cleared_xml;
                self.messages = warnings;
                self.next_attempt_at = None;
            }
            SubmissionEvent::DocumentReported {
                attempt, warnings, ..
            } => {
                self.attempts = attempt;
                self.status = Some(SubmissionStatus::Reported);
                self.messages = warnings;
                self.next_attempt_at = None;
            }
            SubmissionEvent::DocumentRejected {
                attempt,
                errors,
                warnings,
                ..
            } => {
                self.attempts = attempt;
                self.status = Some(SubmissionStatus::Rejected);
                self.messages = errors.into_iter().chain(warnings).collect();
                self.next_attempt_at = None;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
