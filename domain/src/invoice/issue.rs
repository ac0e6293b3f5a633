//! The documents an invoice issues: the invoice itself (what a request to issue one says,
//! [`IssueInvoice`], the checks it must pass, and the ZATCA hash it records: Phase 1's over its
//! canonical fields, Phase 2's over its UBL document) and its credit notes ([`CreditNote`]).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::money::{check_ceiling, Currency, Halalas, MAX_LINE_QUANTITY};
use crate::phase2::Phase2Details;
use crate::plan::Plan;
use crate::vat::DocumentTotals;
use crate::zatca;

use super::{
    Customer, InvoiceCommand, InvoiceError, InvoiceEvent, InvoiceLine, Seller, VAT_NUMBER_DIGITS,
};

/// Everything an invoice is issued with except its place in the ZATCA chain (ICV and
/// PIH), which the seller's [`crate::DocumentSequence`] allocates. The sequence records
/// it in full, so the invoice can be issued from the allocation alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueInvoice {
    pub invoice_id: String,
    pub customer: Customer,
    pub lines: Vec<InvoiceLine>,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    pub seller: Seller,
    pub moyasar_invoice_id: Option<String>,
}

impl IssueInvoice {
    /// The [`InvoiceCommand::Issue`] for this invoice at a place in the chain.
    pub fn into_command(
        self,
        icv: u64,
        previous_invoice_hash: String,
        phase2: Option<Box<Phase2Details>>,
    ) -> InvoiceCommand {
        let IssueInvoice {
            invoice_id,
            customer,
            lines,
            issued_at,
            due_at,
            seller,
            moyasar_invoice_id,
        } = self;
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
        }
    }

    /// Checks the invoice's content and its place in the chain, in the order
    /// [`Invoice::decide`] does, and returns what its hash covers.
    fn hash_input<'a>(
        &'a self,
        icv: u64,
        previous_invoice_hash: &'a str,
    ) -> Result<InvoiceHashInput<'a>, InvoiceError> {
        let totals = check_issue(
            &self.invoice_id,
            &self.lines,
            &self.seller,
            self.issued_at,
            self.due_at,
        )?;
        if icv == 0 {
            return Err(InvoiceError::IcvMustBePositive);
        }
        if !zatca::is_base64(previous_invoice_hash) {
            return Err(InvoiceError::InvalidPreviousInvoiceHash);
        }
        Ok(InvoiceHashInput {
            invoice_id: &self.invoice_id,
            icv,
            previous_invoice_hash,
            issued_at: self.issued_at,
            due_at: self.due_at,
            seller: &self.seller,
            customer: &self.customer,
            lines: &self.lines,
            totals,
        })
    }
}

/// The `invoice_hash` that [`Invoice::decide`] records in [`InvoiceEvent::InvoiceIssued`]
/// when `issue` is issued with this ICV and PIH: both go through the same
/// [`InvoiceHashInput`]. Fails on the content rules the hash depends on (an invoice
/// whose totals cannot be computed has no hash); the QR rules are not checked here.
pub fn invoice_hash(
    issue: &IssueInvoice,
    icv: u64,
    previous_invoice_hash: &str,
) -> Result<String, InvoiceError> {
    Ok(issue.hash_input(icv, previous_invoice_hash)?.hash())
}

/// The fields an invoice hash covers, in the order they are hashed.
#[derive(Debug, Clone, Copy)]
pub struct InvoiceHashInput<'a> {
    pub invoice_id: &'a str,
    pub icv: u64,
    pub previous_invoice_hash: &'a str,
    pub issued_at: OffsetDateTime,
    pub due_at: OffsetDateTime,
    pub seller: &'a Seller,
    pub customer: &'a Customer,
    pub lines: &'a [InvoiceLine],
    pub totals: DocumentTotals,
}

impl InvoiceHashInput<'_> {
    /// The canonical text of the invoice: each field length-prefixed
    /// ([`zatca::push_canonical_field`]), times as Unix nanoseconds, amounts as halalas.
    pub fn canonical(&self) -> String {
        let mut text = String::new();
        let mut field = |value: &str| zatca::push_canonical_field(&mut text, value);
        field("invoice");
        field(self.invoice_id);
        field(&self.icv.to_string());
        field(self.previous_invoice_hash);
        field(&self.issued_at.unix_timestamp_nanos().to_string());
        field(&self.due_at.unix_timestamp_nanos().to_string());
        field(&self.seller.name);
        field(&self.seller.vat_number);
        field(&self.customer.lead_id);
        field(&self.customer.name);
        field(&self.lines.len().to_string());
        for line in self.lines {
            field(&line.description);
            field(&line.quantity.to_string());
            field(&line.unit_price_halalas.to_string());
            field(line.plan.map_or("", Plan::as_str));
        }
        field(Currency::Sar.code());
        field(&self.totals.subtotal_halalas.to_string());
        field(&self.totals.vat_halalas.to_string());
        field(&self.totals.total_halalas.to_string());
        text
    }

    /// Base64 SHA-256 of [`Self::canonical`].
    pub fn hash(&self) -> String {
        zatca::sha256_base64(self.canonical().as_bytes())
    }
}

/// Whether `vat_number` is a Saudi VAT registration number: 15 ASCII digits, the first
/// and the last being 3.
pub fn is_saudi_vat_number(vat_number: &str) -> bool {
    vat_number.len() == VAT_NUMBER_DIGITS
        && vat_number.bytes().all(|b| b.is_ascii_digit())
        && vat_number.starts_with('3')
        && vat_number.ends_with('3')
}

/// The [`InvoiceEvent::InvoiceIssued`] for a new invoice at a place in the chain.
pub(super) fn issued_event(
    issue: IssueInvoice,
    icv: u64,
    previous_invoice_hash: String,
    phase2: Option<Box<Phase2Details>>,
) -> Result<InvoiceEvent, InvoiceError> {
    let input = issue.hash_input(icv, &previous_invoice_hash)?;
    let totals = input.totals;
    let invoice_hash = match &phase2 {
        None => input.hash(),
        Some(details) => phase2_hash(&issue, details, icv, &previous_invoice_hash)?,
    };
    let qr_code = zatca::phase1_qr(
        &issue.seller.name,
        &issue.seller.vat_number,
        issue.issued_at,
        totals.total_halalas,
        totals.vat_halalas,
    )?;
    let IssueInvoice {
        invoice_id,
        customer,
        lines,
        issued_at,
        due_at,
        seller,
        moyasar_invoice_id,
    } = issue;
    Ok(InvoiceEvent::InvoiceIssued {
        invoice_id,
        customer,
        seller,
        lines,
        currency: Currency::Sar,
        subtotal_halalas: totals.subtotal_halalas,
        vat_halalas: totals.vat_halalas,
        total_halalas: totals.total_halalas,
        issued_at,
        due_at,
        icv,
        previous_invoice_hash,
        invoice_hash,
        qr_code,
        moyasar_invoice_id,
        phase2,
    })
}

/// The invoice hash of `issue` as a ZATCA Phase 2 document (its UBL XML's), after the document
/// passed the rules ZATCA checks of it.
pub(super) fn phase2_hash(
    issue: &IssueInvoice,
    details: &Phase2Details,
    icv: u64,
    previous_invoice_hash: &str,
) -> Result<String, InvoiceError> {
    let document = crate::phase2::invoice_document(issue, details, icv, previous_invoice_hash);
    document
        .validate()
        .map_err(|error| InvoiceError::Phase2(error.to_string()))?;
    crate::phase2::document_hash(&document).map_err(|error| InvoiceError::Phase2(error.to_string()))
}

/// The rules on an invoice's content; returns its totals.
pub(super) fn check_issue(
    invoice_id: &str,
    lines: &[InvoiceLine],
    seller: &Seller,
    issued_at: OffsetDateTime,
    due_at: OffsetDateTime,
) -> Result<DocumentTotals, InvoiceError> {
    if invoice_id.trim().is_empty() {
        return Err(InvoiceError::InvoiceIdRequired);
    }
    if lines.is_empty() {
        return Err(InvoiceError::InvoiceHasNoLines);
    }
    for (line_index, line) in lines.iter().enumerate() {
        if line.quantity == 0 {
            return Err(InvoiceError::LineQuantityZero { line_index });
        }
        if line.quantity > MAX_LINE_QUANTITY {
            return Err(InvoiceError::LineQuantityAboveCeiling {
                line_index,
                quantity: line.quantity,
            });
        }
        if line.unit_price_halalas < 0 {
            return Err(InvoiceError::NegativeUnitPrice {
                line_index,
                unit_price_halalas: line.unit_price_halalas,
            });
        }
        let field = |name: &str| format!("lines[{line_index}].{name}");
        Halalas(line.unit_price_halalas).within_ceiling(&field("unit_price_halalas"))?;
        let net = i128::from(line.quantity) * i128::from(line.unit_price_halalas);
        check_ceiling(&field("net_halalas"), net)?;
    }
    let totals = DocumentTotals::from_lines(lines.iter().map(InvoiceLine::amount))?;
    Halalas(totals.subtotal_halalas).within_ceiling("subtotal_halalas")?;
    Halalas(totals.total_halalas).within_ceiling("total_halalas")?;
    if totals.total_halalas <= 0 {
        return Err(InvoiceError::InvoiceTotalNotPositive {
            total_halalas: totals.total_halalas,
        });
    }
    if due_at < issued_at {
        return Err(InvoiceError::DueBeforeIssue);
    }
    if !is_saudi_vat_number(&seller.vat_number) {
        return Err(InvoiceError::InvalidSellerVatNumber {
            vat_number: seller.vat_number.clone(),
        });
    }
    Ok(totals)
}

/// A credit note (UN/CEFACT type 381) issued for a refund. Its amounts are positive;
/// the type code is what makes them a reduction of the referenced invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNote {
    /// The credit note's own place in the ZATCA counter.
    pub credit_note_icv: u64,
    /// PIH: the hash of the seller's document before this credit note (invoice or
    /// credit note), not of the invoice it corrects.
    pub credit_note_previous_hash: String,
    /// Always [`CREDIT_NOTE_TYPE_CODE`] (381).
    pub document_type_code: u16,
    /// The invoice this credit note corrects (ZATCA BR-KSA-56).
    pub invoice_id: String,
    pub refund_id: String,
    /// Why the money was handed back (ZATCA BR-KSA-17).
    pub reason: String,
    /// Net part of the refunded amount.
    pub subtotal_halalas: i64,
    /// VAT part of the refunded amount, see [`DocumentTotals::from_gross`].
    pub vat_halalas: i64,
    /// The refunded amount, VAT included.
    pub total_halalas: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}
