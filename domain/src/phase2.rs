//! ZATCA Phase 2 in the domain: the registration details a UBL document needs, and the
//! documents themselves, built from what the domain already holds and hashed as ZATCA does.
//!
//! The XML, its canonical hash, the stamp and the QR are the pure `zatca` crate's; this module
//! maps an [`IssueInvoice`] (or a refund's credit note, with the invoice it corrects) onto a
//! [`ubl::Document`] and computes its invoice hash, so that the seller's sequence can chain
//! those hashes (the next document's PIH) and the invoice can record its own — both through the
//! same function, as Phase 1's chain already does.
//!
//! **Which chain.** A Phase 2 document carries its [`Phase2Details`]: the EGS unit it is issued
//! on, the seller's registration and, for a standard invoice, the buyer's. Such a document
//! belongs to that unit's own chain, which starts at ICV 1 with the PIH of "0"
//! (ZATCA: one counter and one hash chain per CSID, whatever the document type). Documents
//! without one continue the seller's Phase 1 chain, whose hashes are Phase 1's own. The Phase 1
//! chain is not continued into Phase 2 (its hashes are not UBL hashes) and is never reset: it
//! simply takes no more documents once the seller is onboarded.
//!
//! **Times.** ZATCA's issue date and time are written as Saudi local time (UTC+3, which keeps no
//! daylight saving), as its SDK samples write them; the instant itself is the domain's UTC one.
//!
//! **Amounts.** Every amount is positive; a credit note says it is one by its type (381). VAT is
//! 15% of each document's net, rounded once for the document (BR-S-09), so a credit note is
//! built from a net amount: [`credit_note_net`] finds the net whose total is the refunded gross.

use ::zatca as ubl;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::invoice::IssueInvoice;
use crate::sequence::CreditNoteAllocation;

/// The namespace of documents' UUIDs (uuid v5 of the document id): a document keeps its UUID
/// however often it is rebuilt.
pub const DOCUMENT_UUID_NAMESPACE: Uuid =
    Uuid::from_u128(0x2d6a_51c0_7e3b_4f19_9a0e_5c44_8b21_e7d3);

/// Saudi Arabia's offset from UTC, all year.
pub const RIYADH_OFFSET_HOURS: i8 = 3;

/// A national address (for a foreign buyer, its equivalent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NationalAddress {
    pub street: String,
    /// Four digits in Saudi Arabia (BR-KSA-37).
    pub building_number: String,
    /// The district (city subdivision).
    pub district: String,
    pub city: String,
    /// Five digits in Saudi Arabia (BR-KSA-66).
    pub postal_code: String,
    /// ISO 3166-1 alpha-2; `SA` for the seller.
    pub country_code: String,
}

impl NationalAddress {
    /// The address as the UBL document writes it.
    pub fn to_ubl(&self) -> ubl::Address {
        ubl::Address {
            street: self.street.clone(),
            building_number: self.building_number.clone(),
            district: self.district.clone(),
            city: self.city.clone(),
            postal_code: self.postal_code.clone(),
            country_code: self.country_code.clone(),
        }
    }
}

/// What Phase 2 needs of the seller besides its name and VAT number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerRegistration {
    /// The commercial registration number (CRN).
    pub commercial_registration_number: String,
    pub address: NationalAddress,
}

/// A business buyer: with it, an invoice is a standard (B2B) tax invoice, cleared by ZATCA
/// before the buyer gets it; without it, a simplified (B2C) one, reported within 24 hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerRegistration {
    /// 15 digits, first and last 3.
    pub vat_number: String,
    pub address: NationalAddress,
}

/// What a document issued under Phase 2 carries besides the invoice itself: the EGS unit whose
/// chain it takes, the seller's registration, and the buyer's when it is a standard invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase2Details {
    /// The EGS unit (its serial, as in its CSR): one ICV counter and PIH chain per unit.
    pub egs_unit: String,
    pub seller: SellerRegistration,
    /// A business buyer makes a standard (B2B) invoice; none, a simplified (B2C) one.
    pub buyer: Option<BuyerRegistration>,
}

impl Phase2Details {
    /// A standard (B2B) document, cleared by ZATCA, names a business buyer; a simplified (B2C)
    /// one, reported, does not.
    pub fn is_standard(&self) -> bool {
        self.buyer.is_some()
    }
}

/// Why a Phase 2 document cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Phase2Error {
    #[error("{0}")]
    Document(#[from] ubl::DocumentError),
    #[error("the document's XML cannot be hashed: {0}")]
    Xml(String),
    #[error("the invoice {invoice_id} a credit note corrects is not in this chain")]
    OriginalNotInChain { invoice_id: String },
}

/// The UUID of the document `document_id` (an invoice id, or a refund id for its credit note).
pub fn document_uuid(document_id: &str) -> Uuid {
    Uuid::new_v5(&DOCUMENT_UUID_NAMESPACE, document_id.as_bytes())
}

/// The issue date and time as ZATCA writes them: Saudi local time.
pub fn riyadh_local(at: OffsetDateTime) -> (time::Date, time::Time) {
    let offset = UtcOffset::from_hms(RIYADH_OFFSET_HOURS, 0, 0).unwrap_or(UtcOffset::UTC);
    let local = at.to_offset(offset);
    (
        local.date(),
        local.time().replace_nanosecond(0).unwrap_or(local.time()),
    )
}

fn seller(issue: &IssueInvoice, details: &Phase2Details) -> ubl::Seller {
    ubl::Seller {
        registration_name: issue.seller.name.clone(),
        vat_number: issue.seller.vat_number.clone(),
        commercial_registration_number: details.seller.commercial_registration_number.clone(),
        address: details.seller.address.to_ubl(),
    }
}

fn buyer(issue: &IssueInvoice, details: &Phase2Details) -> Option<ubl::Buyer> {
    details.buyer.as_ref().map(|buyer| ubl::Buyer {
        registration_name: issue.customer.name.clone(),
        vat_number: Some(buyer.vat_number.clone()),
        address: Some(buyer.address.to_ubl()),
    })
}

/// Standard when the document names a business buyer, simplified otherwise.
pub fn subtype(details: &Phase2Details) -> ubl::InvoiceSubtype {
    if details.is_standard() {
        ubl::InvoiceSubtype::Standard
    } else {
        ubl::InvoiceSubtype::Simplified
    }
}

/// The tax invoice `issue` is, at its place in the chain.
pub fn invoice_document(
    issue: &IssueInvoice,
    details: &Phase2Details,
    icv: u64,
    previous_invoice_hash: &str,
) -> ubl::Document {
    let (issue_date, issue_time) = riyadh_local(issue.issued_at);
    let subtype = subtype(details);
    ubl::Document {
        kind: ubl::DocumentKind::Invoice,
        subtype,
        id: issue.invoice_id.clone(),
        uuid: document_uuid(&issue.invoice_id).to_string(),
        issue_date,
        issue_time,
        supply_date: (subtype == ubl::InvoiceSubtype::Standard).then_some(issue_date),
        icv,
        previous_invoice_hash: previous_invoice_hash.to_owned(),
        seller: seller(issue, details),
        buyer: buyer(issue, details),
        payment_means: ubl::PaymentMeans::BankCard,
        billing_reference: None,
        lines: issue
            .lines
            .iter()
            .map(|line| ubl::Line {
                name: line.description.clone(),
                quantity: i64::from(line.quantity),
                unit_price_halalas: line.unit_price_halalas,
            })
            .collect(),
    }
}

/// The credit note of a refund of the invoice `original`, at its place in the chain.
pub fn credit_note_document(
    original: &IssueInvoice,
    details: &Phase2Details,
    credit_note: &CreditNoteAllocation,
    icv: u64,
    previous_invoice_hash: &str,
    at: OffsetDateTime,
) -> ubl::Document {
    let (issue_date, issue_time) = riyadh_local(at);
    ubl::Document {
        kind: ubl::DocumentKind::CreditNote,
        subtype: subtype(details),
        id: credit_note.refund_id.clone(),
        uuid: document_uuid(&credit_note.refund_id).to_string(),
        issue_date,
        issue_time,
        supply_date: None,
        icv,
        previous_invoice_hash: previous_invoice_hash.to_owned(),
        seller: seller(original, details),
        buyer: buyer(original, details),
        payment_means: ubl::PaymentMeans::BankCard,
        billing_reference: Some(ubl::BillingReference {
            original_invoice_id: original.invoice_id.clone(),
            reason: credit_note.reason.clone(),
        }),
        lines: vec![ubl::Line {
            name: format!("Refund of invoice {}", original.invoice_id),
            quantity: 1,
            unit_price_halalas: credit_note_net(credit_note.amount_halalas),
        }],
    }
}

/// The net amount of a credit note for a refund of `gross_halalas` (VAT included): the net
/// whose total with its VAT is the gross, and where no net gives exactly that (VAT is rounded
/// to the halala, so a few grosses are skipped by every net), the largest whose total stays
/// below it.
pub fn credit_note_net(gross_halalas: i64) -> i64 {
    let estimate = gross_halalas.saturating_mul(100) / 115;
    (estimate.saturating_sub(2)..=estimate.saturating_add(2))
        .rev()
        .find(|net| net + ubl::document::vat_halalas(*net) <= gross_halalas)
        .unwrap_or(0)
}

/// The invoice hash of `document`: base64 SHA-256 of its canonical XML, the next document's
/// PIH.
pub fn document_hash(document: &ubl::Document) -> Result<String, Phase2Error> {
    let xml = ubl::to_unsigned_xml(document)?;
    let hash = ubl::invoice_hash(&xml).map_err(|error| Phase2Error::Xml(error.to_string()))?;
    Ok(hash.to_base64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credit_note_net_adds_up_to_the_refund_wherever_a_net_can() {
        assert_eq!(credit_note_net(344_885), 299_900);
        assert_eq!(credit_note_net(115), 100);
        for gross in 1..2_000 {
            let net = credit_note_net(gross);
            let total = net + ubl::document::vat_halalas(net);
            assert!(total <= gross, "{gross}: {net} + VAT = {total}");
            assert!(
                credit_note_net(gross + 1) >= net,
                "the net never falls as the refund grows ({gross})"
            );
        }
    }

    #[test]
    fn an_instant_is_written_in_riyadh_time() {
        let at = time::macros::datetime!(2026-12-06 22:30:15.5 UTC);
        let (date, time) = riyadh_local(at);
        assert_eq!(date, time::macros::date!(2026 - 12 - 07));
        assert_eq!(time, time::macros::time!(01:30:15));
    }
}
