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
use domain::phase2::Phase2Details;
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
    let (_, allocation) = handlers
        .sequences
        .execute_then(
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
            |sequence: &DocumentSequence, _| {
                sequence
                    .allocation(&invoice_id)
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
