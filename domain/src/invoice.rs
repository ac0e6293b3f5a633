//! The invoice aggregate: a ZATCA tax invoice, the payments against it, and its refunds.
//!
//! An invoice is issued once with its lines; its subtotal, VAT (rounded once per
//! document, see [`crate::vat`]) and total are fixed at that moment, together with its
//! place in the ZATCA hash chain (the invoice counter value, ICV, and the previous
//! invoice's hash, PIH), its own hash and its Phase 1 QR code. Payments are recorded
//! against it until it is covered; an overpayment is recorded as a fact of its own,
//! never silently absorbed. Refunds issue a credit note (type 381) and can never exceed
//! what was paid minus what was already refunded. An invoice with nothing paid can be
//! canceled, or expire once its due date has passed.
//!
//! Payment and refund ids are remembered, so a webhook delivered twice is rejected by
//! name rather than counted twice.

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::money::{Currency, Halalas, MoneyError, MAX_LINE_QUANTITY};
use crate::phase2::Phase2Details;
use crate::plan::Plan;
use crate::vat::{DocumentTotals, LineAmount};
use crate::zatca::{self, ZatcaError, CREDIT_NOTE_TYPE_CODE};

/// Digits in a Saudi VAT registration number.
pub const VAT_NUMBER_DIGITS: usize = 15;

/// Who is billed: the lead that became a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub lead_id: String,
    pub name: String,
}

/// Who bills: the seller as registered with ZATCA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    pub name: String,
    /// 15 digits, beginning and ending with 3 (ZATCA BR-KSA-39/40).
    pub vat_number: String,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub description: String,
    pub quantity: u32,
    /// Price of one unit before VAT.
    pub unit_price_halalas: i64,
    /// The plan this line sells, if it is a subscription.
    pub plan: Option<Plan>,
}

impl InvoiceLine {
    fn amount(&self) -> LineAmount {
        LineAmount {
            quantity: i64::from(self.quantity),
            unit_price_halalas: self.unit_price_halalas,
        }
    }
}

/// Where an invoice stands for its rules. Refunds do not change it (as with Stripe, a refunded
/// invoice stays paid, and its lead stays a customer); [`Invoice::refunded_halalas`] says how
/// much went back and [`InvoiceStanding`] is what its readers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Issued, nothing paid yet.
    Issued,
    /// Some, not all, of the total was paid.
    PartiallyPaid,
    /// The total is covered.
    Paid,
    /// Withdrawn before any payment.
    Canceled,
    /// Past its due date with nothing paid.
    Expired,
}

/// What can be asked of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvoiceCommand {
    /// Issue the invoice with its lines and its place in the ZATCA chain.
    Issue {
        invoice_id: String,
        customer: Customer,
        lines: Vec<InvoiceLine>,
        #[serde(with = "time::serde::rfc3339")]
        issued_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        due_at: OffsetDateTime,
        seller: Seller,
        icv: u64,
        /// PIH: base64 hash of the previous invoice, or [`zatca::FIRST_INVOICE_PIH`].
        previous_invoice_hash: String,
        moyasar_invoice_id: Option<String>,
        /// Issue it under ZATCA Phase 2, on this EGS unit's chain.
        #[serde(default)]
        phase2: Option<Box<Phase2Details>>,
    },
    /// Money was received against the invoice.
    RecordPayment {
        payment_id: String,
        amount_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Money is handed back; `amount_halalas` includes VAT.
    Refund {
        refund_id: String,
        amount_halalas: i64,
        reason: String,
        /// The credit note's ICV, allocated by the seller's [`crate::DocumentSequence`].
        credit_note_icv: u64,
        /// The credit note's PIH, allocated with its ICV.
        credit_note_previous_hash: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Withdraw an invoice nobody paid.
    Cancel {
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Close an unpaid invoice whose due date has passed.
    Expire {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Attach the Moyasar hosted invoice that collects the payment.
    LinkMoyasarInvoice {
        moyasar_invoice_id: String,
        payment_url: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// What happened to an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvoiceEvent {
    InvoiceIssued {
        invoice_id: String,
        customer: Customer,
        seller: Seller,
        lines: Vec<InvoiceLine>,
        currency: Currency,
        subtotal_halalas: i64,
        vat_halalas: i64,
        total_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        issued_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        due_at: OffsetDateTime,
        icv: u64,
        previous_invoice_hash: String,
        /// Base64 SHA-256 of the invoice's canonical bytes; the next invoice's PIH.
        invoice_hash: String,
        /// ZATCA Phase 1 QR payload (base64 TLV).
        qr_code: String,
        moyasar_invoice_id: Option<String>,
        /// Issued under ZATCA Phase 2: its EGS unit's chain, and `invoice_hash` is the UBL
        /// document's. Absent: a Phase 1 invoice of the seller's own chain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase2: Option<Box<Phase2Details>>,
    },
    PaymentRecorded {
        invoice_id: String,
        payment_id: String,
        amount_halalas: i64,
        /// Everything paid so far, this payment included.
        paid_halalas: i64,
        /// What is still owed after this payment (zero when covered or overpaid).
        outstanding_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        recorded_at: OffsetDateTime,
    },
    InvoicePaid {
        invoice_id: String,
        lead_id: String,
        /// The amount before VAT, on which partner commissions accrue.
        subtotal_halalas: i64,
        total_halalas: i64,
        paid_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        paid_at: OffsetDateTime,
    },
    InvoiceOverpaid {
        invoice_id: String,
        payment_id: String,
        excess_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        overpaid_at: OffsetDateTime,
    },
    InvoiceRefunded {
        invoice_id: String,
        lead_id: String,
        refund_id: String,
        amount_halalas: i64,
        /// Everything refunded so far, this refund included.
        refunded_halalas: i64,
        /// The invoice's amount before VAT, for pro-rata commission clawbacks.
        invoice_subtotal_halalas: i64,
        reason: String,
        credit_note: CreditNote,
        #[serde(with = "time::serde::rfc3339")]
        refunded_at: OffsetDateTime,
    },
    InvoiceCanceled {
        invoice_id: String,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        canceled_at: OffsetDateTime,
    },
    InvoiceExpired {
        invoice_id: String,
        #[serde(with = "time::serde::rfc3339")]
        due_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        expired_at: OffsetDateTime,
    },
    MoyasarInvoiceLinked {
        invoice_id: String,
        moyasar_invoice_id: String,
        payment_url: String,
        #[serde(with = "time::serde::rfc3339")]
        linked_at: OffsetDateTime,
    },
}

crate::events::event_types!(InvoiceEvent {
    InvoiceIssued,
    PaymentRecorded,
    InvoicePaid,
    InvoiceOverpaid,
    InvoiceRefunded,
    InvoiceCanceled,
    InvoiceExpired,
    MoyasarInvoiceLinked
});

/// The rules an invoice command can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvoiceError {
    #[error("the invoice was already issued")]
    InvoiceAlreadyIssued,
    #[error("the invoice has not been issued")]
    InvoiceNotIssued,
    #[error("an invoice id is required")]
    InvoiceIdRequired,
    #[error("an invoice needs at least one line")]
    InvoiceHasNoLines,
    #[error("line {line_index} has quantity zero")]
    LineQuantityZero { line_index: usize },
    #[error(
        "lines[{line_index}].quantity is {quantity}, above the most one line may carry ({MAX_LINE_QUANTITY})"
    )]
    LineQuantityAboveCeiling { line_index: usize, quantity: u32 },
    #[error("line {line_index} has a negative unit price ({unit_price_halalas} halalas)")]
    NegativeUnitPrice {
        line_index: usize,
        unit_price_halalas: i64,
    },
    #[error("the invoice total must be positive, got {total_halalas} halalas")]
    InvoiceTotalNotPositive { total_halalas: i64 },
    #[error("the due date is before the issue date")]
    DueBeforeIssue,
    #[error("a ZATCA invoice counter value starts at 1")]
    IcvMustBePositive,
    #[error("the previous invoice hash must be non-empty base64")]
    InvalidPreviousInvoiceHash,
    #[error("{vat_number:?} is not a Saudi VAT number (15 digits, starting and ending with 3)")]
    InvalidSellerVatNumber { vat_number: String },
    /// Displayed as the money error itself, and its `source()` (so a caller can find which
    /// field was at fault).
    #[error("{0}")]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Qr(#[from] ZatcaError),
    #[error("a payment must be positive, got {amount_halalas} halalas")]
    PaymentAmountNotPositive { amount_halalas: i64 },
    #[error("payment {payment_id} was already recorded")]
    PaymentAlreadyRecorded { payment_id: String },
    #[error("the invoice is already paid")]
    InvoiceAlreadyPaid,
    #[error("the invoice is canceled")]
    InvoiceIsCanceled,
    #[error("the invoice is expired")]
    InvoiceIsExpired,
    #[error("a refund must be positive, got {amount_halalas} halalas")]
    RefundAmountNotPositive { amount_halalas: i64 },
    #[error("a refund needs a reason for its credit note")]
    RefundReasonRequired,
    #[error("refund {refund_id} was already recorded")]
    RefundAlreadyRecorded { refund_id: String },
    #[error(
        "a refund of {requested_halalas} halalas exceeds what was paid ({paid_halalas}) \
         minus what was already refunded ({already_refunded_halalas})"
    )]
    RefundExceedsPaid {
        paid_halalas: i64,
        already_refunded_halalas: i64,
        requested_halalas: i64,
    },
    #[error("an invoice with payments ({paid_halalas} halalas) cannot be canceled; refund it")]
    CannotCancelAfterPayment { paid_halalas: i64 },
    #[error("canceling an invoice needs a reason")]
    CancelReasonRequired,
    #[error("an invoice with payments ({paid_halalas} halalas) cannot expire")]
    CannotExpireAfterPayment { paid_halalas: i64 },
    #[error("the invoice is not past its due date {due_at}")]
    NotYetDue { due_at: OffsetDateTime },
    /// The ZATCA Phase 2 document breaks one of ZATCA's rules (the message names it).
    #[error("as a ZATCA Phase 2 document: {0}")]
    Phase2(String),
    #[error("the invoice is already linked to Moyasar invoice {moyasar_invoice_id}")]
    MoyasarInvoiceAlreadyLinked { moyasar_invoice_id: String },
}

/// One invoice, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    invoice_id: String,
    lead_id: String,
    status: Option<InvoiceStatus>,
    subtotal_halalas: i64,
    vat_halalas: i64,
    total_halalas: i64,
    paid_halalas: i64,
    refunded_halalas: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    due_at: Option<OffsetDateTime>,
    icv: u64,
    invoice_hash: String,
    /// PIH: the hash of the document before it in its chain.
    #[serde(default)]
    previous_invoice_hash: String,
    qr_code: String,
    moyasar_invoice_id: Option<String>,
    payment_url: Option<String>,
    payment_ids: BTreeSet<String>,
    refund_ids: BTreeSet<String>,
    /// The payments recorded, in the order they were.
    #[serde(default)]
    payments: Vec<RecordedPayment>,
    /// The credit notes of its refunds, in the order they were issued.
    #[serde(default)]
    credit_notes: Vec<CreditNote>,
    /// The document chain it (and its credit notes) sit in: its EGS unit's under Phase 2, its
    /// seller's VAT number under Phase 1.
    #[serde(default)]
    chain: String,
    /// Issued under ZATCA Phase 2, with these details.
    #[serde(default)]
    phase2: Option<Box<Phase2Details>>,
}

impl Invoice {
    /// The ZATCA Phase 2 details it was issued with; `None` for a Phase 1 invoice.
    pub fn phase2(&self) -> Option<&Phase2Details> {
        self.phase2.as_deref()
    }

    pub fn invoice_id(&self) -> &str {
        &self.invoice_id
    }

    /// The lead billed by this invoice.
    pub fn lead_id(&self) -> &str {
        &self.lead_id
    }

    /// `None` before the invoice is issued.
    pub fn status(&self) -> Option<InvoiceStatus> {
        self.status
    }

    pub fn subtotal_halalas(&self) -> i64 {
        self.subtotal_halalas
    }

    pub fn vat_halalas(&self) -> i64 {
        self.vat_halalas
    }

    pub fn total_halalas(&self) -> i64 {
        self.total_halalas
    }

    /// Everything received, overpayments included.
    pub fn paid_halalas(&self) -> i64 {
        self.paid_halalas
    }

    pub fn refunded_halalas(&self) -> i64 {
        self.refunded_halalas
    }

    /// What is still owed; zero once covered.
    pub fn outstanding_halalas(&self) -> i64 {
        self.total_halalas.saturating_sub(self.paid_halalas).max(0)
    }

    pub fn due_at(&self) -> Option<OffsetDateTime> {
        self.due_at
    }

    pub fn icv(&self) -> u64 {
        self.icv
    }

    /// This invoice's hash, the PIH of the next invoice.
    pub fn invoice_hash(&self) -> &str {
        &self.invoice_hash
    }

    /// PIH: the hash of the document before it in its chain (its seller's under Phase 1, its
    /// EGS unit's under Phase 2).
    pub fn previous_invoice_hash(&self) -> &str {
        &self.previous_invoice_hash
    }

    pub fn qr_code(&self) -> &str {
        &self.qr_code
    }

    pub fn moyasar_invoice_id(&self) -> Option<&str> {
        self.moyasar_invoice_id.as_deref()
    }

    pub fn payment_url(&self) -> Option<&str> {
        self.payment_url.as_deref()
    }

    /// Decides what a command means for this invoice, without changing it.
    pub fn decide(&self, command: InvoiceCommand) -> Result<Vec<InvoiceEvent>, InvoiceError> {
        match command {
            InvoiceCommand::Issue {
                invoice_id,
                customer,
                lines,
                issued_at,
                due_at,
                seller,
                icv,
                previous_invoice_hash,
                moyasar_invoice_id,
                phase2,
            } => {
                if self.status.is_some() {
                    return Err(InvoiceError::InvoiceAlreadyIssued);
                }
                let issue = IssueInvoice {
                    invoice_id,
                    customer,
                    lines,
                    issued_at,
                    due_at,
                    seller,
                    moyasar_invoice_id,
                };
                Ok(vec![issued_event(
                    issue,
                    icv,
                    previous_invoice_hash,
                    phase2,
                )?])
            }
            InvoiceCommand::RecordPayment {
                payment_id,
                amount_halalas,
                at,
            } => self.record_payment(payment_id, amount_halalas, at),
            InvoiceCommand::Refund {
                refund_id,
                amount_halalas,
                reason,
                credit_note_icv,
                credit_note_previous_hash,
                at,
            } => {
                self.check_refund(
                    &refund_id,
                    amount_halalas,
                    &reason,
                    credit_note_icv,
                    &credit_note_previous_hash,
                )?;
                let split = DocumentTotals::from_gross(amount_halalas)?;
                let refunded_halalas = Halalas(self.refunded_halalas)
                    .checked_add(Halalas(amount_halalas))?
                    .get();
                Ok(vec![InvoiceEvent::InvoiceRefunded {
                    invoice_id: self.invoice_id.clone(),
                    lead_id: self.lead_id.clone(),
                    refund_id: refund_id.clone(),
                    amount_halalas,
                    refunded_halalas,
                    invoice_subtotal_halalas: self.subtotal_halalas,
                    reason: reason.clone(),
                    credit_note: CreditNote {
                        credit_note_icv,
                        credit_note_previous_hash,
                        document_type_code: CREDIT_NOTE_TYPE_CODE,
                        invoice_id: self.invoice_id.clone(),
                        refund_id,
                        reason,
                        subtotal_halalas: split.subtotal_halalas,
                        vat_halalas: split.vat_halalas,
                        total_halalas: split.total_halalas,
                        issued_at: at,
                    },
                    refunded_at: at,
                }])
            }
            InvoiceCommand::Cancel { reason, at } => {
                self.check_open()?;
                if self.paid_halalas > 0 {
                    return Err(InvoiceError::CannotCancelAfterPayment {
                        paid_halalas: self.paid_halalas,
                    });
                }
                if reason.trim().is_empty() {
                    return Err(InvoiceError::CancelReasonRequired);
                }
                Ok(vec![InvoiceEvent::InvoiceCanceled {
                    invoice_id: self.invoice_id.clone(),
                    reason,
                    canceled_at: at,
                }])
            }
            InvoiceCommand::Expire { at } => {
                self.check_open()?;
                if self.paid_halalas > 0 {
                    return Err(InvoiceError::CannotExpireAfterPayment {
                        paid_halalas: self.paid_halalas,
                    });
                }
                let due_at = self.due_at.ok_or(InvoiceError::InvoiceNotIssued)?;
                if at <= due_at {
                    return Err(InvoiceError::NotYetDue { due_at });
                }
                Ok(vec![InvoiceEvent::InvoiceExpired {
                    invoice_id: self.invoice_id.clone(),
                    due_at,
                    expired_at: at,
                }])
            }
            InvoiceCommand::LinkMoyasarInvoice {
                moyasar_invoice_id,
                payment_url,
                at,
            } => {
                self.check_issued()?;
                self.check_not_closed()?;
                match &self.moyasar_invoice_id {
                    Some(linked) if *linked != moyasar_invoice_id => {
                        return Err(InvoiceError::MoyasarInvoiceAlreadyLinked {
                            moyasar_invoice_id: linked.clone(),
                        });
                    }
                    Some(_) if self.payment_url.as_deref() == Some(payment_url.as_str()) => {
                        return Ok(Vec::new());
                    }
                    _ => {}
                }
                Ok(vec![InvoiceEvent::MoyasarInvoiceLinked {
                    invoice_id: self.invoice_id.clone(),
                    moyasar_invoice_id,
                    payment_url,
                    linked_at: at,
                }])
            }
        }
    }

    fn record_payment(
        &self,
        payment_id: String,
        amount_halalas: i64,
        at: OffsetDateTime,
    ) -> Result<Vec<InvoiceEvent>, InvoiceError> {
        self.check_issued()?;
        if self.payment_ids.contains(&payment_id) {
            return Err(InvoiceError::PaymentAlreadyRecorded { payment_id });
        }
        self.check_open()?;
        if amount_halalas <= 0 {
            return Err(InvoiceError::PaymentAmountNotPositive { amount_halalas });
        }
        Halalas(amount_halalas).within_ceiling("amount_halalas")?;
        let paid_halalas = Halalas(self.paid_halalas)
            .checked_add(Halalas(amount_halalas))?
            .get();
        let outstanding_before = self.outstanding_halalas();
        let mut events = vec![InvoiceEvent::PaymentRecorded {
            invoice_id: self.invoice_id.clone(),
            payment_id: payment_id.clone(),
            amount_halalas,
            paid_halalas,
            outstanding_halalas: outstanding_before.saturating_sub(amount_halalas).max(0),
            recorded_at: at,
        }];
        if amount_halalas >= outstanding_before {
            events.push(InvoiceEvent::InvoicePaid {
                invoice_id: self.invoice_id.clone(),
                lead_id: self.lead_id.clone(),
                subtotal_halalas: self.subtotal_halalas,
                total_halalas: self.total_halalas,
                paid_halalas,
                paid_at: at,
            });
        }
        if amount_halalas > outstanding_before {
            events.push(InvoiceEvent::InvoiceOverpaid {
                invoice_id: self.invoice_id.clone(),
                payment_id,
                excess_halalas: amount_halalas - outstanding_before,
                overpaid_at: at,
            });
        }
        Ok(events)
    }

    fn check_refund(
        &self,
        refund_id: &str,
        amount_halalas: i64,
        reason: &str,
        credit_note_icv: u64,
        credit_note_previous_hash: &str,
    ) -> Result<(), InvoiceError> {
        self.check_issued()?;
        if self.refund_ids.contains(refund_id) {
            return Err(InvoiceError::RefundAlreadyRecorded {
                refund_id: refund_id.to_owned(),
            });
        }
        if amount_halalas <= 0 {
            return Err(InvoiceError::RefundAmountNotPositive { amount_halalas });
        }
        Halalas(amount_halalas).within_ceiling("amount_halalas")?;
        if reason.trim().is_empty() {
            return Err(InvoiceError::RefundReasonRequired);
        }
        if credit_note_icv == 0 {
            return Err(InvoiceError::IcvMustBePositive);
        }
        if !zatca::is_base64(credit_note_previous_hash) {
            return Err(InvoiceError::InvalidPreviousInvoiceHash);
        }
        let refundable = Halalas(self.paid_halalas)
            .checked_sub(Halalas(self.refunded_halalas))?
            .get();
        if amount_halalas > refundable {
            return Err(InvoiceError::RefundExceedsPaid {
                paid_halalas: self.paid_halalas,
                already_refunded_halalas: self.refunded_halalas,
                requested_halalas: amount_halalas,
            });
        }
        Ok(())
    }

    fn check_issued(&self) -> Result<InvoiceStatus, InvoiceError> {
        self.status.ok_or(InvoiceError::InvoiceNotIssued)
    }

    /// Canceled and expired invoices accept nothing but refunds (of which they have none).
    fn check_not_closed(&self) -> Result<(), InvoiceError> {
        match self.check_issued()? {
            InvoiceStatus::Canceled => Err(InvoiceError::InvoiceIsCanceled),
            InvoiceStatus::Expired => Err(InvoiceError::InvoiceIsExpired),
            _ => Ok(()),
        }
    }

    /// Open means still waiting for money: not paid, canceled or expired.
    fn check_open(&self) -> Result<(), InvoiceError> {
        self.check_not_closed()?;
        if self.status == Some(InvoiceStatus::Paid) {
            return Err(InvoiceError::InvoiceAlreadyPaid);
        }
        Ok(())
    }
}

impl Aggregate for Invoice {
    const TYPE: &'static str = "invoice";
    type Command = InvoiceCommand;
    type Event = InvoiceEvent;
    type Error = InvoiceError;
    type Services = ();

    crate::events::handle_by_deciding!();

    fn apply(&mut self, event: Self::Event) {
        match event {
            InvoiceEvent::InvoiceIssued {
                invoice_id,
                customer,
                seller,
                subtotal_halalas,
                vat_halalas,
                total_halalas,
                due_at,
                icv,
                invoice_hash,
                previous_invoice_hash,
                qr_code,
                moyasar_invoice_id,
                phase2,
                ..
            } => {
                self.chain = phase2
                    .as_ref()
                    .map_or(seller.vat_number, |details| details.egs_unit.clone());
                self.phase2 = phase2;
                self.previous_invoice_hash = previous_invoice_hash;
                self.invoice_id = invoice_id;
                self.lead_id = customer.lead_id;
                self.status = Some(InvoiceStatus::Issued);
                self.subtotal_halalas = subtotal_halalas;
                self.vat_halalas = vat_halalas;
                self.total_halalas = total_halalas;
                self.due_at = Some(due_at);
                self.icv = icv;
                self.invoice_hash = invoice_hash;
                self.qr_code = qr_code;
                self.moyasar_invoice_id = moyasar_invoice_id;
            }
            InvoiceEvent::PaymentRecorded {
                payment_id,
                amount_halalas,
                paid_halalas,
                recorded_at,
                ..
            } => {
                self.payments.push(RecordedPayment {
                    payment_id: payment_id.clone(),
                    amount_halalas,
                    paid_at: recorded_at,
                });
                self.payment_ids.insert(payment_id);
                self.paid_halalas = paid_halalas;
                if self.status == Some(InvoiceStatus::Issued) {
                    self.status = Some(InvoiceStatus::PartiallyPaid);
                }
            }
            InvoiceEvent::InvoicePaid { .. } => self.status = Some(InvoiceStatus::Paid),
            InvoiceEvent::InvoiceOverpaid { .. } => {}
            InvoiceEvent::InvoiceRefunded {
                refund_id,
                refunded_halalas,
                credit_note,
                ..
            } => {
                self.credit_notes.push(credit_note);
                self.refund_ids.insert(refund_id);
                self.refunded_halalas = refunded_halalas;
            }
            InvoiceEvent::InvoiceCanceled { .. } => self.status = Some(InvoiceStatus::Canceled),
            InvoiceEvent::InvoiceExpired { .. } => self.status = Some(InvoiceStatus::Expired),
            InvoiceEvent::MoyasarInvoiceLinked {
                moyasar_invoice_id,
                payment_url,
                ..
            } => {
                self.moyasar_invoice_id = Some(moyasar_invoice_id);
                self.payment_url = Some(payment_url);
            }
        }
    }
}

mod issue;
mod reads;
#[cfg(test)]
pub(crate) mod tests;

use issue::issued_event;
pub use issue::{invoice_hash, is_saudi_vat_number, CreditNote, InvoiceHashInput, IssueInvoice};
pub use reads::{InvoiceStanding, RecordedPayment};
