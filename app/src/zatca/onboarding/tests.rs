//! The compliance samples (pure: built, validated and chained with no network), which samples
//! the invoice-type flags require, the certificate's expiry, and what the errors tell the
//! operator.

use adapters::fatoora::{ErrorEntry, FatooraConfig, FatooraEnvironment, RetryReason};
use adapters::zatca_keys::KeyStore;
use domain::invoice::Seller;
use domain::phase2::{NationalAddress, SellerRegistration};
use time::macros::datetime;
use zatca::{DocumentKind, InvoiceSubtype};

use super::*;
use crate::zatca::UnitProfile;

fn config(invoice_types: &str) -> ZatcaConfig {
    let registration = SellerRegistration {
        commercial_registration_number: "1010010000".to_owned(),
        address: NationalAddress {
            street: "Prince Sultan".to_owned(),
            building_number: "2322".to_owned(),
            district: "Al-Murabba".to_owned(),
            city: "Riyadh".to_owned(),
            postal_code: "23333".to_owned(),
            country_code: "SA".to_owned(),
        },
    };
    let mut unit = UnitProfile::for_unit("egs-1", &registration);
    unit.invoice_types = invoice_types.to_owned();
    ZatcaConfig {
        environment: FatooraEnvironment::Simulation,
        fatoora: FatooraConfig::new(FatooraEnvironment::Simulation),
        egs_unit: "egs-1".to_owned(),
        seller: Seller {
            name: "Dealix".to_owned(),
            vat_number: "310122393500003".to_owned(),
        },
        registration,
        keys: KeyStore::new("unused-by-these-tests"),
        unit,
    }
}

const NOW: OffsetDateTime = datetime!(2026-03-01 09:30:00 UTC);

fn sample(kind: DocumentKind, subtype: InvoiceSubtype) -> Sample {
    Sample { kind, subtype }
}

#[test]
fn a_unit_issuing_both_kinds_checks_all_six_samples_invoice_first_in_each() {
    let (standard, simplified) = (InvoiceSubtype::Standard, InvoiceSubtype::Simplified);
    assert_eq!(
        Sample::required_by("1100").unwrap(),
        vec![
            sample(DocumentKind::Invoice, standard),
            sample(DocumentKind::CreditNote, standard),
            sample(DocumentKind::DebitNote, standard),
            sample(DocumentKind::Invoice, simplified),
            sample(DocumentKind::CreditNote, simplified),
            sample(DocumentKind::DebitNote, simplified),
        ]
    );
}

#[test]
fn a_standard_only_or_simplified_only_unit_checks_its_three_samples() {
    let standard = Sample::required_by("1000").unwrap();
    assert_eq!(standard.len(), 3);
    assert!(standard
        .iter()
        .all(|sample| sample.subtype == InvoiceSubtype::Standard));
    let simplified = Sample::required_by("0100").unwrap();
    assert_eq!(simplified.len(), 3);
    assert!(simplified
        .iter()
        .all(|sample| sample.subtype == InvoiceSubtype::Simplified));
}

#[test]
fn invoice_type_flags_that_announce_nothing_are_refused_naming_the_setting() {
    for flags in ["0000", "0011", "11", "11000", "1x00", ""] {
        let error = Sample::required_by(flags).unwrap_err().to_string();
        assert!(
            error.contains("REVLEDGER_ZATCA_INVOICE_TYPES"),
            "{flags}: {error}"
        );
    }
}

#[test]
fn every_compliance_sample_validates_and_chains_its_pih_from_the_first() {
    let documents = compliance_documents(&config("1100"), NOW).unwrap();
    assert_eq!(documents.len(), 6);
    let mut previous_hash = domain::zatca::FIRST_INVOICE_PIH.to_owned();
    for (icv, ComplianceDocument { sample, document }) in (1..).zip(&documents) {
        document
            .validate()
            .unwrap_or_else(|error| panic!("{sample}: {error}"));
        assert_eq!(document.icv, icv, "{sample}");
        assert_eq!(document.previous_invoice_hash, previous_hash, "{sample}");
        assert_eq!(
            (document.kind, document.subtype),
            (sample.kind, sample.subtype)
        );
        previous_hash = domain::phase2::document_hash(document).unwrap();
    }
}

#[test]
fn the_samples_are_the_sellers_issued_now_in_riyadh_time_each_with_its_own_uuid() {
    let documents = compliance_documents(&config("1100"), NOW).unwrap();
    let mut uuids: Vec<&str> = documents.iter().map(|d| d.document.uuid.as_str()).collect();
    uuids.sort_unstable();
    uuids.dedup();
    assert_eq!(uuids.len(), documents.len(), "one UUID each");
    for ComplianceDocument { sample, document } in &documents {
        assert_eq!(document.seller.vat_number, "310122393500003", "{sample}");
        assert_eq!(document.seller.commercial_registration_number, "1010010000");
        assert_eq!(document.issue_date, NOW.date(), "{sample}");
        assert_eq!(document.issue_time, time::macros::time!(12:30:00), "UTC+3");
    }
    let later = compliance_documents(&config("1100"), NOW + Duration::seconds(1)).unwrap();
    assert_ne!(
        later[0].document.uuid, documents[0].document.uuid,
        "another run checks other documents"
    );
}

#[test]
fn standard_samples_name_a_business_buyer_and_simplified_ones_none() {
    for ComplianceDocument { sample, document } in
        compliance_documents(&config("1100"), NOW).unwrap()
    {
        match sample.subtype {
            InvoiceSubtype::Standard => {
                let buyer = document.buyer.expect("a standard document names its buyer");
                assert!(domain::invoice::is_saudi_vat_number(
                    buyer.vat_number.as_deref().unwrap()
                ));
                assert_ne!(buyer.vat_number.as_deref(), Some("310122393500003"));
                assert!(buyer.address.is_some());
            }
            InvoiceSubtype::Simplified => assert!(document.buyer.is_none(), "{sample}"),
        }
    }
}

#[test]
fn each_sample_note_corrects_the_sample_invoice_of_its_subtype_and_says_why() {
    let documents = compliance_documents(&config("1100"), NOW).unwrap();
    for ComplianceDocument { sample, document } in &documents {
        let Some(reference) = &document.billing_reference else {
            assert_eq!(sample.kind, DocumentKind::Invoice);
            continue;
        };
        let invoice = documents
            .iter()
            .find(|other| {
                other.sample
                    == Sample {
                        kind: DocumentKind::Invoice,
                        subtype: sample.subtype,
                    }
            })
            .unwrap();
        assert_eq!(
            reference.original_invoice_id, invoice.document.id,
            "{sample}"
        );
        assert!(!reference.reason.trim().is_empty(), "{sample}");
    }
}

#[test]
fn a_standard_only_unit_has_three_samples_chained_from_the_first_pih() {
    let documents = compliance_documents(&config("1000"), NOW).unwrap();
    assert_eq!(documents.len(), 3);
    assert_eq!(
        documents[0].document.previous_invoice_hash,
        domain::zatca::FIRST_INVOICE_PIH
    );
    assert_eq!(
        documents.iter().map(|d| d.document.icv).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn a_certificate_is_valid_then_expires_soon_within_thirty_days_then_expired() {
    let not_after = datetime!(2026-06-01 00:00:00 UTC);
    assert_eq!(
        Expiry::at(not_after, not_after - Duration::days(31)),
        Expiry::Valid { days_left: 31 }
    );
    assert_eq!(
        Expiry::at(not_after, not_after - Duration::days(30)),
        Expiry::Valid { days_left: 30 }
    );
    let soon = Expiry::at(not_after, not_after - Duration::days(29));
    assert_eq!(soon, Expiry::ExpiresSoon { days_left: 29 });
    assert!(soon.is_warning() && soon.to_string().contains("zatca renew"));
    assert_eq!(
        Expiry::at(not_after, not_after - Duration::hours(1)),
        Expiry::ExpiresSoon { days_left: 0 }
    );
    assert_eq!(Expiry::at(not_after, not_after), Expiry::Expired);
    assert!(Expiry::Expired.is_warning());
    assert!(!Expiry::Valid { days_left: 31 }.is_warning());
}

#[test]
fn a_refused_otp_is_named_with_what_to_do_and_an_outage_says_to_run_again() {
    let invalid_otp = OnboardingError::Fatoora {
        step: Step::ComplianceCsid,
        error: FatooraError::Refused {
            status: 400,
            errors: vec![ErrorEntry {
                code: Some("Invalid-OTP".to_owned()),
                message: Some("The provided OTP is invalid".to_owned()),
            }],
        },
    }
    .to_string();
    assert!(
        invalid_otp.starts_with("obtaining the compliance CSID"),
        "{invalid_otp}"
    );
    assert!(invalid_otp.contains("Invalid-OTP"), "{invalid_otp}");
    assert!(invalid_otp.contains("new OTP"), "{invalid_otp}");
    let outage = OnboardingError::Fatoora {
        step: Step::ProductionCsid,
        error: FatooraError::RetryLater {
            reason: RetryReason::ServerError { status: 503 },
        },
    }
    .to_string();
    assert!(
        outage.starts_with("obtaining the production CSID"),
        "{outage}"
    );
    assert!(outage.contains("run the command again"), "{outage}");
}

#[test]
fn a_check_not_passed_names_the_document_and_zatcas_messages() {
    let error = OnboardingError::CheckNotPassed {
        sample: sample(DocumentKind::CreditNote, InvoiceSubtype::Simplified),
        icv: 5,
        errors: vec![ValidationMessage {
            code: Some("BR-KSA-56".to_owned()),
            message: Some("the billing reference is missing".to_owned()),
            ..ValidationMessage::default()
        }],
    }
    .to_string();
    assert!(error.contains("simplified credit note (ICV 5)"), "{error}");
    assert!(
        error.contains("BR-KSA-56: the billing reference is missing"),
        "{error}"
    );
}
