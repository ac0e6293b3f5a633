//! Issuing an invoice: one workflow for everyone who issues one (the API, the demo history, the
//! benchmark, the tests) and the one command the invoice-issuer process manager repeats.
//!
//! An invoice takes the next place in its seller's ZATCA chain (the gap-free ICV and the
//! previous document's hash, PIH) before it exists: the seller's [`DocumentSequence`] stream
//! **allocates** the place, recording the whole document there, and then the invoice stream
//! **issues** it at that place. Both steps are commands with ids that make them idempotent, and
//! the issue's id is derived from the invoice id alone ([`issue_command_id`]), so whoever gets
//! there first (the request that allocated, or the process manager that reacts to every
//! allocation in case that request died between the two steps) issues it, exactly once.

use domain::invoice::{Invoice, InvoiceCommand, InvoiceError, IssueInvoice};
use domain::phase2::{BuyerRegistration, Phase2Details};
use domain::sequence::{DocumentSequence, SequenceCommand, SequenceError};
use uuid::Uuid;

use adapters::store::EventMetadata;

use crate::command::{CommandEnvelope, CommandError, CommandHandler, CommandOutcome};
use crate::handlers::Handlers;

/// The command id that issues the invoice allocated for `invoice_id`: the same for the request
/// that allocated it and for the process manager that reacts to the allocation.
pub fn issue_command_id(invoice_id: &str) -> Uuid {
    crate::process::command_id("invoice_issuer", invoice_id, 0)
}

/// The command that issues `issue` at its allocated place, and the id it is issued under.
pub fn issue_allocated(
    issue: IssueInvoice,
    icv: u64,
    previous_invoice_hash: String,
    phase2: Option<Box<Phase2Details>>,
) -> (Uuid, InvoiceCommand) {
    let id = issue_command_id(&issue.invoice_id);
    (id, issue.into_command(icv, previous_invoice_hash, phase2))
}

/// The sequence stream a document takes its place in: its EGS unit's under ZATCA Phase 2, the
/// seller's own (by VAT number) under Phase 1.
pub fn sequence_id(issue: &IssueInvoice, phase2: Option<&Phase2Details>) -> String {
    phase2.map_or_else(
        || issue.seller.vat_number.clone(),
        |details| details.egs_unit.clone(),
    )
}

/// How a request to issue an invoice is identified.
#[derive(Clone, Copy, Debug)]
pub struct IssueRequest {
    /// The allocation's command id (a retry carries the same one).
    pub command_id: Uuid,
    /// No earlier attempt can have run under `command_id`: the sequence is not asked whether
    /// this invoice was allocated already (a read of the seller's one hot stream, in its turn,
    /// before the allocation takes that turn again).
    pub fresh: bool,
}

/// Why an invoice was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Allocation(CommandError<SequenceError>),
    #[error(transparent)]
    Issue(CommandError<InvoiceError>),
    /// An earlier attempt allocated this invoice and has not issued it yet.
    #[error("invoice {invoice_id} is allocated and being issued; retry")]
    BeingIssued { invoice_id: String },
    /// The sequence answered the allocation without it (it cannot, short of a bug).
    #[error("{invoice_id} was not allocated")]
    NotAllocated { invoice_id: String },
}

/// Allocates `issue` in its seller's sequence and issues it there; the issue's outcome and the
/// invoice as it is now. A request resuming an earlier attempt finds its invoice allocated (and
/// usually issued) and answers with it.
pub async fn issue(
    handlers: &Handlers,
    request: IssueRequest,
    issue: IssueInvoice,
    metadata: EventMetadata,
) -> Result<(CommandOutcome, Invoice), IssueError> {
    issue_with(handlers, request, issue, None, metadata).await
}

/// [`issue`], under ZATCA Phase 2 when `phase2` is given: on its EGS unit's chain, with the
/// UBL document's hash.
pub async fn issue_with(
    handlers: &Handlers,
    request: IssueRequest,
    issue: IssueInvoice,
    phase2: Option<Phase2Details>,
    metadata: EventMetadata,
) -> Result<(CommandOutcome, Invoice), IssueError> {
    let sequence = sequence_id(&issue, phase2.as_ref());
    let phase2 = phase2.map(Box::new);
    let invoice_id = issue.invoice_id.clone();
    if !request.fresh {
        let allocated = handlers
            .sequences
            .inspect(&sequence, |sequence, _| {
                sequence.allocation(&invoice_id).is_some()
            })
            .await
            .map_err(IssueError::Allocation)?;
        if allocated {
            return already_issued(handlers, &invoice_id).await;
        }
    }
    // The seller's sequence is the one stream every invoice writes to: allocations that wait
    // for its turn at the same time take their places in one append.
    let allocated = invoice_id.clone();
    let (_, allocation) = handlers
        .sequences
        .execute_together(
            CommandEnvelope {
                aggregate_id: sequence,
                command_id: request.command_id,
                command: SequenceCommand::AllocateInvoice {
                    issue: issue.clone(),
                    phase2: phase2.clone(),
                },
                metadata: metadata.clone(),
                inbox: None,
                fresh_id: request.fresh,
            },
            move |sequence: &DocumentSequence, _| {
                sequence
                    .allocation(&allocated)
                    .map(|(icv, previous_hash, _)| (icv, previous_hash.to_owned()))
            },
        )
        .await
        .map_err(IssueError::Allocation)?;
    let (icv, previous_invoice_hash) = allocation.ok_or_else(|| IssueError::NotAllocated {
        invoice_id: invoice_id.clone(),
    })?;
    let (command_id, command) = issue_allocated(issue, icv, previous_invoice_hash, phase2);
    handlers
        .invoices
        .execute_then(
            CommandEnvelope {
                aggregate_id: invoice_id,
                command_id,
                command,
                metadata,
                inbox: None,
                fresh_id: false,
            },
            |invoice, _| invoice.clone(),
        )
        .await
        .map_err(IssueError::Issue)
}

/// The answer for an invoice an earlier attempt allocated: its issue's original outcome.
async fn already_issued(
    handlers: &Handlers,
    invoice_id: &str,
) -> Result<(CommandOutcome, Invoice), IssueError> {
    let (invoice, version) = handlers
        .invoices
        .load_aggregate(invoice_id)
        .await
        .map_err(IssueError::Issue)?;
    if version == 0 || invoice.status().is_none() {
        return Err(IssueError::BeingIssued {
            invoice_id: invoice_id.to_owned(),
        });
    }
    let original = handlers
        .store
        .find_command(issue_command_id(invoice_id))
        .await
        .map_err(|error| IssueError::Issue(CommandError::Store(error)))?;
    let outcome = CommandOutcome {
        stream_id: CommandHandler::<Invoice>::stream_id(invoice_id),
        version,
        first_position: original.as_ref().map(|o| o.first_position),
        last_position: original.as_ref().map(|o| o.last_position),
        events_appended: 0,
        replayed: true,
    };
    Ok((outcome, invoice))
}

/// What a correction changes of an invoice whose document ZATCA rejected: the buyer (a
/// standard invoice's VAT number or address is what ZATCA most often refuses) and the name the
/// customer is billed under. What is not given is kept.
#[derive(Debug, Clone, Default)]
pub struct Correction {
    pub buyer: Option<BuyerRegistration>,
    pub customer_name: Option<String>,
}

/// Why a rejected invoice was not reissued.
#[derive(Debug, thiserror::Error)]
pub enum ReissueError {
    #[error("invoice {invoice_id} is not a ZATCA Phase 2 invoice")]
    NotPhase2 { invoice_id: String },
    #[error("invoice {invoice_id}'s document is {status} with ZATCA, not rejected: only a rejected document is corrected by a new one")]
    NotRejected { invoice_id: String, status: String },
    #[error("invoice {invoice_id} cannot be withdrawn: {source}")]
    Cancel {
        invoice_id: String,
        #[source]
        source: CommandError<InvoiceError>,
    },
    #[error(transparent)]
    Submission(CommandError<domain::submission::SubmissionError>),
    #[error(transparent)]
    Issue(#[from] IssueError),
}

/// The id of the invoice that corrects `invoice_id`: one per rejected invoice, whoever asks and
/// however often.
pub fn correction_id(invoice_id: &str) -> String {
    crate::process::command_id("invoice_reissue", invoice_id, 0).to_string()
}

/// Corrects an invoice whose Phase 2 document ZATCA rejected, the way ZATCA wants it: the
/// rejected document keeps its place in the chain (no ICV is reused, none is skipped), the
/// invoice is withdrawn (it was never valid, and nothing was paid on it), and a new invoice
/// for the same lines takes the next place, with `correction` applied. Both steps run under
/// ids derived from the rejected invoice, so a retry, or a second request, finishes the same
/// correction rather than making another.
pub async fn reissue(
    handlers: &Handlers,
    zatca: &crate::zatca::ZatcaConfig,
    invoice_id: &str,
    correction: Correction,
    metadata: EventMetadata,
) -> Result<(CommandOutcome, Invoice), ReissueError> {
    let (invoice, _) = handlers
        .invoices
        .load_aggregate(invoice_id)
        .await
        .map_err(|source| ReissueError::Cancel {
            invoice_id: invoice_id.to_owned(),
            source,
        })?;
    let Some(details) = invoice.phase2().cloned() else {
        return Err(ReissueError::NotPhase2 {
            invoice_id: invoice_id.to_owned(),
        });
    };
    let status = handlers
        .submissions
        .inspect(invoice_id, |submission, _| submission.status())
        .await
        .map_err(ReissueError::Submission)?;
    if status != Some(domain::submission::SubmissionStatus::Rejected) {
        return Err(ReissueError::NotRejected {
            invoice_id: invoice_id.to_owned(),
            status: status
                .map_or("not submitted yet", |status| status.as_str())
                .to_owned(),
        });
    }
    let original = handlers
        .sequences
        .inspect(&details.egs_unit, |sequence, _| {
            sequence.issued(invoice_id).cloned()
        })
        .await
        .map_err(|error| ReissueError::Issue(IssueError::Allocation(error)))?
        .ok_or_else(|| {
            ReissueError::Issue(IssueError::NotAllocated {
                invoice_id: invoice_id.to_owned(),
            })
        })?;
    let new_id = correction_id(invoice_id);
    if invoice.status() != Some(domain::invoice::InvoiceStatus::Canceled) {
        let at = adapters::clock::now_micros();
        handlers
            .invoices
            .execute(CommandEnvelope {
                aggregate_id: invoice_id.to_owned(),
                command_id: crate::process::command_id("invoice_reissue", invoice_id, 1),
                command: InvoiceCommand::Cancel {
                    reason: format!("ZATCA rejected its document; corrected by invoice {new_id}"),
                    at,
                },
                metadata: metadata.clone(),
                inbox: None,
                fresh_id: false,
            })
            .await
            .map_err(|source| ReissueError::Cancel {
                invoice_id: invoice_id.to_owned(),
                source,
            })?;
    }
    let issued_at = adapters::clock::now_micros();
    let payable_for = original.due_at - original.issued_at;
    let mut customer = original.customer.clone();
    if let Some(name) = correction.customer_name {
        customer.name = name;
    }
    let issue = IssueInvoice {
        invoice_id: new_id,
        customer,
        lines: original.lines.clone(),
        issued_at,
        due_at: issued_at + payable_for,
        seller: original.seller.clone(),
        moyasar_invoice_id: None,
    };
    let buyer = correction.buyer.or(details.buyer);
    let request = IssueRequest {
        command_id: crate::process::command_id("invoice_reissue", invoice_id, 2),
        fresh: false,
    };
    Ok(issue_with(
        handlers,
        request,
        issue,
        Some(zatca.details(buyer)),
        metadata,
    )
    .await?)
}
