//! The seller's document sequence: the gap-free ZATCA invoice counter (ICV) and the
//! previous-invoice-hash (PIH) chain that every tax invoice (388) and credit note (381)
//! a seller issues must carry.
//!
//! The counter is an aggregate of its own, one stream per seller (the id is the seller's
//! VAT number), because the store appends to one stream at a time: taking the next ICV
//! and recording the document that carries it cannot be one write. So the allocation
//! records everything the document needs ([`DocumentAllocated`] holds the full
//! [`IssueInvoice`] or [`CreditNoteAllocation`]), and the document follows from it
//! deterministically: a process manager issues the invoice or refund from the event,
//! again after a crash, so no ICV is left without its document.
//!
//! To keep that promise an allocation is refused when its document could not be issued:
//! an invoice is run through [`Invoice::decide`] itself at the place it would take, so
//! the sequence and the invoice can never disagree on what is issuable, and the hash
//! allocated is the one the invoice will record (both go through
//! [`crate::invoice::InvoiceHashInput`]). Allocating the same document again with the
//! same content is a no-op, so a retried command never takes a second ICV.
//!
//! [`DocumentAllocated`]: SequenceEvent::DocumentAllocated

use std::collections::BTreeMap;

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::invoice::{Invoice, InvoiceError, InvoiceEvent, IssueInvoice};
use crate::money::Currency;
use crate::phase2::Phase2Details;
use crate::zatca::{self, CREDIT_NOTE_TYPE_CODE, FIRST_INVOICE_PIH, TAX_INVOICE_TYPE_CODE};

/// A credit note's content as allocated: what the invoice's `Refund` command needs
/// besides its ICV, PIH and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNoteAllocation {
    /// The invoice the credit note corrects.
    pub invoice_id: String,
    /// The refund the credit note documents; also the credit note's document id.
    pub refund_id: String,
    /// The refunded amount, VAT included.
    pub amount_halalas: i64,
    /// Why the money was handed back (ZATCA BR-KSA-17).
    pub reason: String,
}

/// The fields a credit note's hash covers, in the order they are hashed.
#[derive(Debug, Clone, Copy)]
pub struct CreditNoteHashInput<'a> {
    pub seller_vat_number: &'a str,
    pub credit_note: &'a CreditNoteAllocation,
    pub icv: u64,
    pub previous_invoice_hash: &'a str,
    pub issued_at: OffsetDateTime,
}

impl CreditNoteHashInput<'_> {
    /// The canonical text of the credit note: each field length-prefixed
    /// ([`zatca::push_canonical_field`]), times as Unix nanoseconds, amounts as halalas.
    pub fn canonical(&self) -> String {
        let mut text = String::new();
        let mut field = |value: &str| zatca::push_canonical_field(&mut text, value);
        field("credit_note");
        field(&CREDIT_NOTE_TYPE_CODE.to_string());
        field(self.seller_vat_number);
        field(&self.credit_note.refund_id);
        field(&self.credit_note.invoice_id);
        field(&self.icv.to_string());
        field(self.previous_invoice_hash);
        field(&self.issued_at.unix_timestamp_nanos().to_string());
        field(Currency::Sar.code());
        field(&self.credit_note.amount_halalas.to_string());
        field(&self.credit_note.reason);
        text
    }

    /// Base64 SHA-256 of [`Self::canonical`]: the next document's PIH.
    pub fn hash(&self) -> String {
        zatca::sha256_base64(self.canonical().as_bytes())
    }
}

/// What can be asked of a seller's document sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SequenceCommand {
    /// Take the next place in the chain for a tax invoice (on a ZATCA Phase 2 EGS unit's chain
    /// when `phase2` is given).
    AllocateInvoice {
        issue: IssueInvoice,
        #[serde(default)]
        phase2: Option<Box<Phase2Details>>,
    },
    /// Take the next place in the chain for the credit note of a refund.
    AllocateCreditNote {
        invoice_id: String,
        refund_id: String,
        amount_halalas: i64,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// What happened to a seller's document sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SequenceEvent {
    /// A document took the next ICV. Exactly one of `issue` (type 388) and
    /// `credit_note` (type 381) is set, and it is all the document needs.
    DocumentAllocated {
        seller_vat_number: String,
        /// The invoice id, or the refund id for a credit note.
        document_id: String,
        /// [`TAX_INVOICE_TYPE_CODE`] or [`CREDIT_NOTE_TYPE_CODE`].
        document_type_code: u16,
        icv: u64,
        /// PIH: the previous document's hash, or [`FIRST_INVOICE_PIH`].
        previous_invoice_hash: String,
        /// The hash the document records; the next document's PIH.
        document_hash: String,
        /// The invoice's issue time, or the credit note's.
        #[serde(with = "time::serde::rfc3339")]
        allocated_at: OffsetDateTime,
        issue: Option<IssueInvoice>,
        credit_note: Option<CreditNoteAllocation>,
        /// A ZATCA Phase 2 document's details (for a credit note, its invoice's): then
        /// `document_hash` is the UBL document's invoice hash.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase2: Option<Box<Phase2Details>>,
    },
}

crate::events::event_types!(SequenceEvent { DocumentAllocated });

/// The rules an allocation can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SequenceError {
    #[error("document {document_id} already holds ICV {icv} with different content")]
    DocumentAlreadyAllocated { document_id: String, icv: u64 },
    #[error(
        "this sequence belongs to seller {sequence_vat_number}, \
         not {document_vat_number}"
    )]
    SellerMismatch {
        sequence_vat_number: String,
        document_vat_number: String,
    },
    #[error("the invoice could not be issued: {0}")]
    InvalidInvoice(#[source] InvoiceError),
    #[error("a credit note needs its refund id")]
    RefundIdRequired,
    #[error("a credit note needs a reason")]
    CreditNoteReasonRequired,
    #[error("a credit note must be positive, got {amount_halalas} halalas")]
    CreditNoteAmountNotPositive { amount_halalas: i64 },
    #[error("invoice {invoice_id} was not allocated by this seller's sequence")]
    CreditNoteForUnknownInvoice { invoice_id: String },
    #[error("the invoice counter has no value left")]
    IcvExhausted,
    /// A document for another chain (Phase 1, or another EGS unit's) than this one.
    #[error("this is the chain of {chain}; a document of {document} belongs to another")]
    ChainMismatch { chain: String, document: String },
    /// A ZATCA Phase 2 credit note breaks one of ZATCA's rules (the message names it).
    #[error("as a ZATCA Phase 2 document: {0}")]
    Phase2(String),
}

/// One document's place in the chain, and what was allocated there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Allocation {
    document_type_code: u16,
    icv: u64,
    previous_invoice_hash: String,
    document_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    allocated_at: OffsetDateTime,
    issue: Option<IssueInvoice>,
    credit_note: Option<CreditNoteAllocation>,
    #[serde(default)]
    phase2: Option<Box<Phase2Details>>,
}

impl Allocation {
    /// Whether a request to allocate would produce this same document.
    fn has_content(
        &self,
        issue: Option<&IssueInvoice>,
        credit_note: Option<&CreditNoteAllocation>,
        phase2: Option<&Phase2Details>,
        at: OffsetDateTime,
    ) -> bool {
        self.issue.as_ref() == issue
            && self.credit_note.as_ref() == credit_note
            && (credit_note.is_some() || self.phase2.as_deref() == phase2)
            && self.allocated_at == at
    }
}

/// One seller's ICV counter and PIH chain, folded from its allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSequence {
    /// Empty until the first allocation.
    seller_vat_number: String,
    /// Zero until the first allocation.
    last_icv: u64,
    /// Empty until the first allocation.
    last_document_hash: String,
    /// Every allocated document, by document id. Kept in full so a repeated request
    /// can be told apart from a conflicting one.
    allocations: BTreeMap<String, Allocation>,
    /// The ZATCA Phase 2 EGS unit whose chain this is; `None` for the seller's Phase 1 chain.
    #[serde(default)]
    egs_unit: Option<String>,
}

impl DocumentSequence {
    /// The seller's VAT number; empty before the first allocation.
    pub fn seller_vat_number(&self) -> &str {
        &self.seller_vat_number
    }

    /// The ICV the next document will take. Saturates at `u64::MAX`, where
    /// [`Self::decide`] refuses with [`SequenceError::IcvExhausted`].
    pub fn next_icv(&self) -> u64 {
        self.last_icv.saturating_add(1)
    }

    /// The hash of the last document allocated; `None` before the first.
    pub fn last_document_hash(&self) -> Option<&str> {
        if self.last_document_hash.is_empty() {
            None
        } else {
            Some(&self.last_document_hash)
        }
    }

    /// The PIH the next document will carry: the last document's hash, or
    /// [`FIRST_INVOICE_PIH`] for the first.
    pub fn next_previous_invoice_hash(&self) -> &str {
        self.last_document_hash().unwrap_or(FIRST_INVOICE_PIH)
    }

    /// A document's place in the chain: `(icv, previous_invoice_hash, document_hash)`.
    pub fn allocation(&self, document_id: &str) -> Option<(u64, &str, &str)> {
        self.allocations.get(document_id).map(|allocation| {
            (
                allocation.icv,
                allocation.previous_invoice_hash.as_str(),
                allocation.document_hash.as_str(),
            )
        })
    }

    /// The invoice allocated as `invoice_id`, as it was issued.
    pub fn issued(&self, invoice_id: &str) -> Option<&IssueInvoice> {
        self.allocations.get(invoice_id)?.issue.as_ref()
    }

    /// The ZATCA Phase 2 document allocated as `document_id`, rebuilt from what the allocation
    /// recorded (the same document whose hash the chain links); `None` when there is no such
    /// Phase 2 document here.
    pub fn phase2_document(&self, document_id: &str) -> Option<::zatca::Document> {
        let allocation = self.allocations.get(document_id)?;
        let details = allocation.phase2.as_deref()?;
        match (&allocation.issue, &allocation.credit_note) {
            (Some(issue), _) => Some(crate::phase2::invoice_document(
                issue,
                details,
                allocation.icv,
                &allocation.previous_invoice_hash,
            )),
            (None, Some(credit_note)) => {
                let original = self
                    .allocations
                    .get(&credit_note.invoice_id)?
                    .issue
                    .as_ref()?;
                Some(crate::phase2::credit_note_document(
                    original,
                    details,
                    credit_note,
                    allocation.icv,
                    &allocation.previous_invoice_hash,
                    allocation.allocated_at,
                ))
            }
            (None, None) => None,
        }
    }

    /// Decides what a command means for this sequence, without changing it.
    pub fn decide(&self, command: SequenceCommand) -> Result<Vec<SequenceEvent>, SequenceError> {
        match command {
            SequenceCommand::AllocateInvoice { issue, phase2 } => {
                self.allocate_invoice(issue, phase2)
            }
            SequenceCommand::AllocateCreditNote {
                invoice_id,
                refund_id,
                amount_halalas,
                reason,
                at,
            } => self.allocate_credit_note(
                CreditNoteAllocation {
                    invoice_id,
                    refund_id,
                    amount_halalas,
                    reason,
                },
                at,
            ),
        }
    }

    fn allocate_invoice(
        &self,
        issue: IssueInvoice,
        phase2: Option<Box<Phase2Details>>,
    ) -> Result<Vec<SequenceEvent>, SequenceError> {
        let at = issue.issued_at;
        if self.is_already_allocated(
            &issue.invoice_id,
            Some(&issue),
            None,
            phase2.as_deref(),
            at,
        )? {
            return Ok(Vec::new());
        }
        let egs_unit = phase2.as_ref().map(|details| details.egs_unit.as_str());
        if self.last_icv > 0 && self.egs_unit.as_deref() != egs_unit {
            return Err(SequenceError::ChainMismatch {
                chain: self.chain_name(),
                document: egs_unit
                    .map_or_else(|| "Phase 1".to_owned(), |unit| format!("EGS unit {unit}")),
            });
        }
        if !self.seller_vat_number.is_empty() && issue.seller.vat_number != self.seller_vat_number {
            return Err(SequenceError::SellerMismatch {
                sequence_vat_number: self.seller_vat_number.clone(),
                document_vat_number: issue.seller.vat_number,
            });
        }
        let icv = self.checked_next_icv()?;
        let previous_invoice_hash = self.next_previous_invoice_hash().to_owned();
        let document_hash =
            issuable_invoice_hash(&issue, phase2.clone(), icv, &previous_invoice_hash)?;
        Ok(vec![SequenceEvent::DocumentAllocated {
            seller_vat_number: issue.seller.vat_number.clone(),
            document_id: issue.invoice_id.clone(),
            document_type_code: TAX_INVOICE_TYPE_CODE,
            icv,
            previous_invoice_hash,
            document_hash,
            allocated_at: at,
            issue: Some(issue),
            credit_note: None,
            phase2,
        }])
    }

    /// This chain, as errors name it.
    fn chain_name(&self) -> String {
        self.egs_unit
            .as_ref()
            .map_or_else(|| "Phase 1".to_owned(), |unit| format!("EGS unit {unit}"))
    }

    fn allocate_credit_note(
        &self,
        credit_note: CreditNoteAllocation,
        at: OffsetDateTime,
    ) -> Result<Vec<SequenceEvent>, SequenceError> {
        if self.is_already_allocated(&credit_note.refund_id, None, Some(&credit_note), None, at)? {
            return Ok(Vec::new());
        }
        self.check_credit_note(&credit_note)?;
        let icv = self.checked_next_icv()?;
        let previous_invoice_hash = self.next_previous_invoice_hash().to_owned();
        let original = self.allocations.get(&credit_note.invoice_id);
        let phase2 = original.and_then(|original| original.phase2.clone());
        let document_hash = match (original.and_then(|o| o.issue.as_ref()), &phase2) {
            (Some(issue), Some(details)) => {
                let document = crate::phase2::credit_note_document(
                    issue,
                    details,
                    &credit_note,
                    icv,
                    &previous_invoice_hash,
                    at,
                );
                document
                    .validate()
                    .map_err(|error| SequenceError::Phase2(error.to_string()))?;
                crate::phase2::document_hash(&document)
                    .map_err(|error| SequenceError::Phase2(error.to_string()))?
            }
            _ => CreditNoteHashInput {
                seller_vat_number: &self.seller_vat_number,
                credit_note: &credit_note,
                icv,
                previous_invoice_hash: &previous_invoice_hash,
                issued_at: at,
            }
            .hash(),
        };
        Ok(vec![SequenceEvent::DocumentAllocated {
            seller_vat_number: self.seller_vat_number.clone(),
            document_id: credit_note.refund_id.clone(),
            document_type_code: CREDIT_NOTE_TYPE_CODE,
            icv,
            previous_invoice_hash,
            document_hash,
            allocated_at: at,
            issue: None,
            credit_note: Some(credit_note),
            phase2,
        }])
    }

    /// `Ok(true)` when this exact document was allocated before (a retry, which
    /// changes nothing); an error when its id was allocated with other content.
    fn is_already_allocated(
        &self,
        document_id: &str,
        issue: Option<&IssueInvoice>,
        credit_note: Option<&CreditNoteAllocation>,
        phase2: Option<&Phase2Details>,
        at: OffsetDateTime,
    ) -> Result<bool, SequenceError> {
        match self.allocations.get(document_id) {
            None => Ok(false),
            Some(allocation) if allocation.has_content(issue, credit_note, phase2, at) => Ok(true),
            Some(allocation) => Err(SequenceError::DocumentAlreadyAllocated {
                document_id: document_id.to_owned(),
                icv: allocation.icv,
            }),
        }
    }

    /// What the invoice's `Refund` would reject and the sequence can know. Whether the
    /// refund exceeds what was paid only the invoice knows.
    fn check_credit_note(&self, credit_note: &CreditNoteAllocation) -> Result<(), SequenceError> {
        if credit_note.refund_id.trim().is_empty() {
            return Err(SequenceError::RefundIdRequired);
        }
        if credit_note.reason.trim().is_empty() {
            return Err(SequenceError::CreditNoteReasonRequired);
        }
        if credit_note.amount_halalas <= 0 {
            return Err(SequenceError::CreditNoteAmountNotPositive {
                amount_halalas: credit_note.amount_halalas,
            });
        }
        // A credit note corrects one of this seller's invoices (ZATCA BR-KSA-56), which
        // is also what tells the sequence its seller before the credit note is hashed.
        let corrects_an_invoice = self
            .allocations
            .get(&credit_note.invoice_id)
            .is_some_and(|allocation| allocation.document_type_code == TAX_INVOICE_TYPE_CODE);
        if !corrects_an_invoice {
            return Err(SequenceError::CreditNoteForUnknownInvoice {
                invoice_id: credit_note.invoice_id.clone(),
            });
        }
        Ok(())
    }

    fn checked_next_icv(&self) -> Result<u64, SequenceError> {
        self.last_icv
            .checked_add(1)
            .ok_or(SequenceError::IcvExhausted)
    }
}

/// The hash the invoice will record at this place in the chain. The invoice's own
/// `decide` judges whether it can be issued there, so an ICV is never given to an
/// invoice that would then be refused.
fn issuable_invoice_hash(
    issue: &IssueInvoice,
    phase2: Option<Box<Phase2Details>>,
    icv: u64,
    previous_invoice_hash: &str,
) -> Result<String, SequenceError> {
    let events = Invoice::default()
        .decide(
            issue
                .clone()
                .into_command(icv, previous_invoice_hash.to_owned(), phase2),
        )
        .map_err(SequenceError::InvalidInvoice)?;
    events
        .into_iter()
        .find_map(|event| match event {
            InvoiceEvent::InvoiceIssued { invoice_hash, .. } => Some(invoice_hash),
            _ => None,
        })
        .ok_or(SequenceError::InvalidInvoice(
            InvoiceError::InvoiceNotIssued,
        ))
}

impl Aggregate for DocumentSequence {
    const TYPE: &'static str = "document_sequence";
    type Command = SequenceCommand;
    type Event = SequenceEvent;
    type Error = SequenceError;
    type Services = ();

    crate::events::handle_by_deciding!();

    fn apply(&mut self, event: Self::Event) {
        match event {
            SequenceEvent::DocumentAllocated {
                seller_vat_number,
                document_id,
                document_type_code,
                icv,
                previous_invoice_hash,
                document_hash,
                allocated_at,
                issue,
                credit_note,
                phase2,
            } => {
                if self.last_icv == 0 {
                    self.egs_unit = phase2.as_ref().map(|details| details.egs_unit.clone());
                }
                self.seller_vat_number = seller_vat_number;
                self.last_icv = icv;
                self.last_document_hash.clone_from(&document_hash);
                self.allocations.insert(
                    document_id,
                    Allocation {
                        document_type_code,
                        icv,
                        previous_invoice_hash,
                        document_hash,
                        allocated_at,
                        issue,
                        credit_note,
                        phase2,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
