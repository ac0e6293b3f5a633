//! The sample documents of the compliance checks: one per kind and subtype the unit's
//! invoice-type flags cover, chained from ICV 1 like a real unit's first documents.

use std::fmt;

use time::OffsetDateTime;
use zatca::{
    Address, BillingReference, Buyer, Document, DocumentKind, InvoiceSubtype, Line, PaymentMeans,
};

use crate::zatca::ZatcaConfig;

use super::OnboardingError;

/// The net price of the sample invoices and credit notes (100.00 SAR).
pub(super) const SAMPLE_NET_HALALAS: i64 = 10_000;

/// The net price of the sample debit notes (25.00 SAR).
pub(super) const SAMPLE_DEBIT_NET_HALALAS: i64 = 2_500;

/// One of the sample documents of the compliance checks: a kind (invoice, credit note, debit
/// note) and a subtype (standard, simplified), as ZATCA counts its compliance steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub kind: DocumentKind,
    pub subtype: InvoiceSubtype,
}

impl Sample {
    /// The samples a unit with these invoice-type flags (the CSR's `title`, four flags:
    /// standard, simplified, reserved, reserved) must pass, in the order they are sent: for
    /// each subtype it issues, the invoice first, then the notes that correct it.
    pub fn required_by(invoice_types: &str) -> Result<Vec<Sample>, OnboardingError> {
        let flags = invoice_types.as_bytes();
        let well_formed = flags.len() == 4 && flags.iter().all(|flag| matches!(flag, b'0' | b'1'));
        if !well_formed || (flags[0] == b'0' && flags[1] == b'0') {
            return Err(OnboardingError::Settings(format!(
                "REVLEDGER_ZATCA_INVOICE_TYPES {invoice_types:?} must be four 0/1 flags with the \
                 first (standard) or the second (simplified) set"
            )));
        }
        let subtypes = [
            (flags[0] == b'1', InvoiceSubtype::Standard),
            (flags[1] == b'1', InvoiceSubtype::Simplified),
        ];
        Ok(subtypes
            .into_iter()
            .filter(|(issued, _)| *issued)
            .flat_map(|(_, subtype)| {
                [
                    DocumentKind::Invoice,
                    DocumentKind::CreditNote,
                    DocumentKind::DebitNote,
                ]
                .map(|kind| Sample { kind, subtype })
            })
            .collect())
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subtype = match self.subtype {
            InvoiceSubtype::Standard => "standard",
            InvoiceSubtype::Simplified => "simplified",
        };
        let kind = match self.kind {
            DocumentKind::Invoice => "tax invoice",
            DocumentKind::CreditNote => "credit note",
            DocumentKind::DebitNote => "debit note",
        };
        write!(formatter, "{subtype} {kind}")
    }
}

/// A sample document of the compliance checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceDocument {
    pub sample: Sample,
    pub document: Document,
}

/// The documents of the compliance checks the unit's flags require, issued at `now`: ICVs 1
/// to n, each chained to the one before by its invoice hash, the first to ZATCA's first PIH.
pub fn compliance_documents(
    config: &ZatcaConfig,
    now: OffsetDateTime,
) -> Result<Vec<ComplianceDocument>, OnboardingError> {
    let samples = Sample::required_by(&config.unit.invoice_types)?;
    let (issue_date, issue_time) = domain::phase2::riyadh_local(now);
    let seller = zatca::Seller {
        registration_name: config.seller.name.clone(),
        vat_number: config.seller.vat_number.clone(),
        commercial_registration_number: config.registration.commercial_registration_number.clone(),
        address: config.registration.address.to_ubl(),
    };
    let mut previous_invoice_hash = domain::zatca::FIRST_INVOICE_PIH.to_owned();
    let mut invoice_id = String::new();
    let mut documents = Vec::with_capacity(samples.len());
    for (icv, sample) in (1..).zip(samples) {
        // Unique per run and unit: ZATCA may remember what it checked.
        let id = format!("CC-{}-{icv}", now.unix_timestamp());
        if sample.kind == DocumentKind::Invoice {
            invoice_id.clone_from(&id);
        }
        let (line, reason) = sample_line(sample.kind);
        let standard = sample.subtype == InvoiceSubtype::Standard;
        let document = Document {
            kind: sample.kind,
            subtype: sample.subtype,
            uuid: domain::phase2::document_uuid(&format!("{}:{id}", config.egs_unit)).to_string(),
            id,
            issue_date,
            issue_time,
            supply_date: (standard && sample.kind == DocumentKind::Invoice).then_some(issue_date),
            icv,
            previous_invoice_hash: previous_invoice_hash.clone(),
            seller: seller.clone(),
            buyer: standard.then(sample_buyer),
            payment_means: PaymentMeans::BankCard,
            billing_reference: reason.map(|reason| BillingReference {
                original_invoice_id: invoice_id.clone(),
                reason: reason.to_owned(),
            }),
            lines: vec![line],
        };
        previous_invoice_hash =
            domain::phase2::document_hash(&document).map_err(|error| OnboardingError::Sample {
                sample,
                reason: error.to_string(),
            })?;
        documents.push(ComplianceDocument { sample, document });
    }
    Ok(documents)
}

/// A sample's one line, and for a note the reason it is issued (KSA-10).
pub(super) fn sample_line(kind: DocumentKind) -> (Line, Option<&'static str>) {
    let line = |name: &str, unit_price_halalas| Line {
        name: name.to_owned(),
        quantity: 1,
        unit_price_halalas,
    };
    match kind {
        DocumentKind::Invoice => (
            line(
                "Compliance sample: monthly subscription",
                SAMPLE_NET_HALALAS,
            ),
            None,
        ),
        DocumentKind::CreditNote => (
            line(
                "Compliance sample: subscription refunded",
                SAMPLE_NET_HALALAS,
            ),
            Some("Subscription cancelled and refunded"),
        ),
        DocumentKind::DebitNote => (
            line(
                "Compliance sample: additional usage",
                SAMPLE_DEBIT_NET_HALALAS,
            ),
            Some("Usage beyond the plan charged after the invoice"),
        ),
    }
}

/// The business buyer of the standard samples: ZATCA's own sample buyer (its SDK's VAT number
/// for buyers, 399999999800003), with a Riyadh national address.
pub(super) fn sample_buyer() -> Buyer {
    Buyer {
        registration_name: "Compliance Sample Buyer Co.".to_owned(),
        vat_number: Some("399999999800003".to_owned()),
        address: Some(Address {
            street: "Salah Al-Din".to_owned(),
            building_number: "1111".to_owned(),
            district: "Al-Murooj".to_owned(),
            city: "Riyadh".to_owned(),
            postal_code: "12222".to_owned(),
            country_code: "SA".to_owned(),
        }),
    }
}
