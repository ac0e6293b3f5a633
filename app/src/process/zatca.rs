//! ZATCA Phase 2 documents into the submission outbox: every document allocated on an EGS
//! unit's chain (an invoice, a refund's credit note) gets its submission prepared, with its
//! place, its UUID and its invoice hash, for the submitter to sign and send
//! ([`crate::zatca`]). Phase 1 documents have nowhere to go and are passed over.

use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::phase2::{document_uuid, Phase2Details};
use domain::sequence::SequenceEvent;
use domain::submission::{DocumentKind, Flow, SubmissionCommand};
use domain::zatca::{CREDIT_NOTE_TYPE_CODE, TAX_INVOICE_TYPE_CODE};
use projections::{decode, ProjectionError};

use crate::process::{send, Context, ProcessManager};

/// Document allocated on an EGS unit -> its submission prepared.
pub struct ZatcaSubmissions;

/// The flow a document takes: a standard (B2B) one is cleared, a simplified one reported.
pub fn flow(details: &Phase2Details) -> Flow {
    if details.is_standard() {
        Flow::Clearance
    } else {
        Flow::Reporting
    }
}

#[async_trait]
impl ProcessManager for ZatcaSubmissions {
    fn name(&self) -> &'static str {
        "zatca_submissions"
    }

    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.event_type != "DocumentAllocated" {
            return Ok(());
        }
        let SequenceEvent::DocumentAllocated {
            document_id,
            document_type_code,
            icv,
            previous_invoice_hash,
            document_hash,
            allocated_at,
            issue,
            credit_note,
            phase2: Some(details),
            ..
        } = decode(event)?
        else {
            return Ok(());
        };
        let (kind, invoice_id) = match (document_type_code, issue, credit_note) {
            (TAX_INVOICE_TYPE_CODE, Some(issue), _) => (DocumentKind::Invoice, issue.invoice_id),
            (CREDIT_NOTE_TYPE_CODE, _, Some(credit_note)) => {
                (DocumentKind::CreditNote, credit_note.invoice_id)
            }
            _ => return Ok(()),
        };
        let command = SubmissionCommand::Prepare {
            document_id: document_id.clone(),
            invoice_id,
            kind,
            flow: flow(&details),
            egs_unit: details.egs_unit.clone(),
            icv,
            uuid: document_uuid(&document_id).to_string(),
            invoice_hash: document_hash,
            previous_invoice_hash,
            issued_at: allocated_at,
        };
        send(
            context,
            &context.handlers.submissions,
            self.name(),
            event,
            0,
            &document_id,
            command,
        )
        .await?;
        Ok(())
    }
}
