//! Our own documents, written and stamped: the stamp verifies, the hash a verifier recomputes
//! is the one embedded, and the QR says what the document says.

use zatca::document::{sar_text, DocumentError};
use zatca::qr::decode_tlv;
use zatca::read::{read_qr, read_stamp};
use zatca::stamp::{signed_properties_digest, verify_hash_signature};
use zatca::{sign, to_unsigned_xml, Buyer, DocumentKind, SignError};

use crate::kit::{
    credit_note, sample, signing_time, simplified_invoice, standard_invoice, test_certificate,
    test_key, text_at, text_of,
};

fn stamped(document: &zatca::Document) -> zatca::SignedDocument {
    let key = test_key("egs unit");
    let certificate = test_certificate(&key, &test_key("ca"));
    sign(document, &key, &certificate, signing_time()).unwrap()
}

#[test]
fn our_signed_documents_verify_with_our_key_over_the_hash_recomputed_from_their_xml() {
    let key = test_key("egs unit");
    let certificate = test_certificate(&key, &test_key("ca"));
    for document in [simplified_invoice(), standard_invoice(), credit_note()] {
        let signed = sign(&document, &key, &certificate, signing_time()).unwrap();
        let recomputed = zatca::invoice_hash(&signed.xml).unwrap();
        assert_eq!(recomputed, signed.invoice_hash);
        let stamp = read_stamp(&signed.xml).unwrap();
        assert_eq!(stamp.invoice_digest_base64, signed.invoice_hash.to_base64());
        assert_eq!(stamp.signature_base64, signed.signature_base64);
        verify_hash_signature(
            &recomputed,
            &stamp.signature_base64,
            &certificate.verifying_key().unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn the_unsigned_and_the_signed_document_have_the_same_hash() {
    for document in [simplified_invoice(), standard_invoice(), credit_note()] {
        let unsigned = to_unsigned_xml(&document).unwrap();
        assert!(!unsigned.contains("UBLExtensions") && !unsigned.contains("cac:Signature"));
        assert_eq!(
            zatca::invoice_hash(&unsigned).unwrap(),
            stamped(&document).invoice_hash
        );
    }
}

#[test]
fn the_embedded_signed_properties_digest_and_certificate_fields_are_recomputed_from_the_xml() {
    let key = test_key("egs unit");
    let certificate = test_certificate(&key, &test_key("ca"));
    let signed = sign(&simplified_invoice(), &key, &certificate, signing_time()).unwrap();
    let stamp = read_stamp(&signed.xml).unwrap();
    assert_eq!(
        signed_properties_digest(&signed.xml).unwrap(),
        stamp.signed_properties_digest_base64
    );
    assert_eq!(stamp.certificate_digest_base64, certificate.digest_base64());
    assert_eq!(stamp.issuer_name, "CN=TEST-CA, DC=test, DC=local");
    assert_eq!(stamp.serial_number, certificate.serial_number_decimal());
    assert_eq!(stamp.signing_time, "2025-01-15T10:30:00");
    assert_eq!(stamp.certificate_base64, certificate.base64_der());
}

#[test]
fn the_stamp_block_is_laid_out_like_the_sdk_sample() {
    // The same XAdES skeleton as ZATCA's simplified sample: compare the sequence of element
    // names (values differ) between the sample's and our signature.
    fn skeleton(xml: &str) -> Vec<String> {
        let document = zatca::tree::parse(xml).unwrap();
        let signature = zatca::tree::find_descendant(&document.root, "ext:UBLExtensions").unwrap();
        let mut names = Vec::new();
        fn walk(element: &zatca::tree::Element, names: &mut Vec<String>) {
            let mut attributes: Vec<String> = element
                .attributes
                .iter()
                .filter(|(name, _)| !matches!(name.as_str(), "Id" | "URI" | "Target"))
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            attributes.sort();
            names.push(format!("{} {}", element.name, attributes.join(" ")));
            for child in element.child_elements() {
                walk(child, names);
            }
        }
        walk(signature, &mut names);
        names
    }
    let ours = stamped(&simplified_invoice()).xml;
    assert_eq!(
        skeleton(&ours),
        skeleton(&sample("sdk_simplified_invoice.xml"))
    );
}

#[test]
fn the_qr_carries_the_document_and_its_stamp() {
    let key = test_key("egs unit");
    let certificate = test_certificate(&key, &test_key("ca"));
    let signed = sign(&simplified_invoice(), &key, &certificate, signing_time()).unwrap();
    assert_eq!(
        read_qr(&signed.xml).unwrap().as_deref(),
        Some(signed.qr_base64.as_str())
    );
    let tags = decode_tlv(&signed.qr_base64).unwrap();
    let text = |tag: u8| String::from_utf8(tags[usize::from(tag) - 1].1.clone()).unwrap();
    assert_eq!(text(1), "شركة ديليكس | Dealix");
    assert_eq!(text(2), "310122393500003");
    assert_eq!(text(3), "2025-01-15T13:30:00");
    assert_eq!(
        text(4),
        text_at(
            &signed.xml,
            &["cac:LegalMonetaryTotal", "cbc:PayableAmount"]
        )
    );
    assert_eq!(
        text(5),
        text_at(&signed.xml, &["cac:TaxTotal", "cbc:TaxAmount"])
    );
    assert_eq!(text(6), signed.invoice_hash.to_base64());
    assert_eq!(text(7), signed.signature_base64);
    assert_eq!(tags[7], (8, certificate.public_key_info_der()));
    assert_eq!(tags[8], (9, certificate.signature_bytes().to_vec()));
    assert_eq!(tags.len(), 9);

    let standard = stamped(&standard_invoice());
    assert_eq!(
        decode_tlv(&standard.qr_base64).unwrap().len(),
        8,
        "no tag 9 on a standard document"
    );
}

#[test]
fn signing_the_same_document_twice_gives_the_same_bytes() {
    assert_eq!(stamped(&standard_invoice()), stamped(&standard_invoice()));
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let certificate = test_certificate(&test_key("egs unit"), &test_key("ca"));
    assert_eq!(
        sign(
            &simplified_invoice(),
            &test_key("another unit"),
            &certificate,
            signing_time()
        ),
        Err(SignError::KeyDoesNotMatchCertificate)
    );
}

#[test]
fn the_totals_of_the_sample_lines_are_the_sdk_samples_totals() {
    // simplified_invoice() has the lines of ZATCA's simplified sample; the amounts it writes
    // must be the ones the SDK wrote.
    let ours = to_unsigned_xml(&simplified_invoice()).unwrap();
    let sdk = sample("sdk_simplified_invoice.xml");
    for element in [
        "cbc:LineExtensionAmount",
        "cbc:TaxExclusiveAmount",
        "cbc:TaxInclusiveAmount",
        "cbc:PayableAmount",
    ] {
        assert_eq!(
            text_at(&ours, &["cac:LegalMonetaryTotal", element]),
            text_at(&sdk, &["cac:LegalMonetaryTotal", element]),
            "{element}"
        );
    }
    let subtotal = ["cac:TaxTotal", "cac:TaxSubtotal"];
    let ours_tax_totals = zatca::tree::parse(&ours).unwrap();
    let sdk_tax_totals = zatca::tree::parse(&sdk).unwrap();
    let breakdown = |document: &zatca::tree::Document, name: &str| {
        document
            .root
            .child_elements()
            .filter(|element| element.name == "cac:TaxTotal")
            .find_map(|total| zatca::tree::find(total, &[subtotal[1], name]))
            .unwrap()
            .text()
    };
    for name in ["cbc:TaxableAmount", "cbc:TaxAmount"] {
        assert_eq!(
            breakdown(&ours_tax_totals, name),
            breakdown(&sdk_tax_totals, name),
            "{name}"
        );
    }
    let line_amounts = |document: &zatca::tree::Document| -> Vec<(String, String, String)> {
        document
            .root
            .child_elements()
            .filter(|element| element.name == "cac:InvoiceLine")
            .map(|line| {
                let text = |path: &[&str]| zatca::tree::find(line, path).unwrap().text();
                (
                    text(&["cbc:LineExtensionAmount"]),
                    text(&["cac:TaxTotal", "cbc:TaxAmount"]),
                    text(&["cac:TaxTotal", "cbc:RoundingAmount"]),
                )
            })
            .collect()
    };
    assert_eq!(
        line_amounts(&ours_tax_totals),
        line_amounts(&sdk_tax_totals)
    );
    assert_eq!(
        sar_text(simplified_invoice().totals().vat_halalas),
        text_of(&sdk, "cbc:TaxAmount")
    );
}

#[test]
fn a_credit_note_names_the_invoice_it_corrects_and_why() {
    let xml = to_unsigned_xml(&credit_note()).unwrap();
    assert_eq!(text_at(&xml, &["cbc:InvoiceTypeCode"]), "381");
    assert_eq!(
        text_at(
            &xml,
            &[
                "cac:BillingReference",
                "cac:InvoiceDocumentReference",
                "cbc:ID"
            ]
        ),
        "INV-2025-0001"
    );
    assert_eq!(
        text_at(&xml, &["cac:PaymentMeans", "cbc:InstructionNote"]),
        "Refund of the Growth plan | استرداد"
    );
    let debit_note = zatca::Document {
        kind: DocumentKind::DebitNote,
        ..credit_note()
    };
    assert_eq!(
        text_at(
            &to_unsigned_xml(&debit_note).unwrap(),
            &["cbc:InvoiceTypeCode"]
        ),
        "383"
    );
}

#[test]
fn every_text_value_is_escaped_and_reads_back_as_given() {
    let xml = to_unsigned_xml(&standard_invoice()).unwrap();
    assert!(xml.contains("Fatoora Samples LTD &amp; Co &lt;B2B&gt;"));
    assert_eq!(
        text_at(
            &xml,
            &[
                "cac:AccountingCustomerParty",
                "cac:Party",
                "cac:PartyLegalEntity",
                "cbc:RegistrationName"
            ]
        ),
        "Fatoora Samples LTD & Co <B2B>"
    );
}

#[test]
fn the_type_code_and_transaction_code_are_written_as_zatca_asks() {
    let document = zatca::tree::parse(&to_unsigned_xml(&standard_invoice()).unwrap()).unwrap();
    let code = zatca::tree::find(&document.root, &["cbc:InvoiceTypeCode"]).unwrap();
    assert_eq!(
        (code.text().as_str(), code.attribute("name")),
        ("388", Some("0100000"))
    );
    let document = zatca::tree::parse(&to_unsigned_xml(&simplified_invoice()).unwrap()).unwrap();
    let code = zatca::tree::find(&document.root, &["cbc:InvoiceTypeCode"]).unwrap();
    assert_eq!(code.attribute("name"), Some("0200000"));
}

#[test]
fn a_standard_document_without_the_buyers_vat_number_or_address_names_the_field() {
    let without_vat = zatca::Document {
        buyer: Some(Buyer {
            vat_number: None,
            ..crate::kit::buyer()
        }),
        ..standard_invoice()
    };
    assert!(matches!(
        to_unsigned_xml(&without_vat),
        Err(DocumentError::MissingField {
            field: "buyer.vat_number",
            ..
        })
    ));
    let without_address = zatca::Document {
        buyer: Some(Buyer {
            address: None,
            ..crate::kit::buyer()
        }),
        ..standard_invoice()
    };
    assert!(matches!(
        to_unsigned_xml(&without_address),
        Err(DocumentError::MissingField {
            field: "buyer.address",
            ..
        })
    ));
    let without_buyer = zatca::Document {
        buyer: None,
        ..standard_invoice()
    };
    assert!(matches!(
        to_unsigned_xml(&without_buyer),
        Err(DocumentError::MissingField { field: "buyer", .. })
    ));
}

#[test]
fn a_note_without_a_reference_and_an_invoice_with_one_are_refused() {
    let note = zatca::Document {
        billing_reference: None,
        ..credit_note()
    };
    assert_eq!(
        to_unsigned_xml(&note),
        Err(DocumentError::MissingBillingReference)
    );
    let invoice = zatca::Document {
        kind: DocumentKind::Invoice,
        ..credit_note()
    };
    assert_eq!(
        to_unsigned_xml(&invoice),
        Err(DocumentError::UnexpectedBillingReference)
    );
}

#[test]
fn malformed_seller_fields_are_refused_naming_the_rule() {
    let mut document = simplified_invoice();
    document.seller.vat_number = "300000000000000".to_owned();
    assert!(matches!(
        to_unsigned_xml(&document),
        Err(DocumentError::InvalidVatNumber {
            rule: "BR-KSA-40",
            ..
        })
    ));
    let mut document = simplified_invoice();
    document.seller.address.building_number = "123".to_owned();
    assert!(matches!(
        to_unsigned_xml(&document),
        Err(DocumentError::InvalidBuildingNumber { .. })
    ));
    let mut document = simplified_invoice();
    document.seller.address.postal_code = "1234".to_owned();
    assert!(matches!(
        to_unsigned_xml(&document),
        Err(DocumentError::InvalidPostalCode {
            rule: "BR-KSA-66",
            ..
        })
    ));
    let mut document = simplified_invoice();
    document.seller.address.country_code = "AE".to_owned();
    assert!(matches!(
        to_unsigned_xml(&document),
        Err(DocumentError::SellerOutsideSaudiArabia { .. })
    ));
    let mut document = simplified_invoice();
    document.seller.commercial_registration_number = "10-10".to_owned();
    assert!(matches!(
        to_unsigned_xml(&document),
        Err(DocumentError::InvalidCommercialRegistration { .. })
    ));
    let mut document = simplified_invoice();
    document.seller.registration_name = "line\nbreak".to_owned();
    assert!(matches!(
        to_unsigned_xml(&document),
        Err(DocumentError::ControlCharacter { .. })
    ));
}

#[test]
fn lines_must_exist_and_stay_within_their_limits() {
    let mut document = simplified_invoice();
    document.lines.clear();
    assert_eq!(to_unsigned_xml(&document), Err(DocumentError::NoLines));
    let mut document = simplified_invoice();
    document.lines[1].quantity = 0;
    assert_eq!(
        to_unsigned_xml(&document),
        Err(DocumentError::InvalidQuantity {
            line_number: 2,
            quantity: 0
        })
    );
    let mut document = simplified_invoice();
    document.lines[0].unit_price_halalas = -1;
    assert_eq!(
        to_unsigned_xml(&document),
        Err(DocumentError::InvalidUnitPrice {
            line_number: 1,
            unit_price_halalas: -1
        })
    );
    let mut document = simplified_invoice();
    document.lines = vec![document.lines[0].clone(); zatca::document::MAX_LINES + 1];
    assert!(matches!(
        to_unsigned_xml(&document),
        Err(DocumentError::TooManyLines { .. })
    ));
}

#[test]
fn a_standard_invoice_needs_its_supply_date_and_a_bad_uuid_or_pih_is_refused() {
    let document = zatca::Document {
        supply_date: None,
        ..standard_invoice()
    };
    assert!(matches!(
        to_unsigned_xml(&document),
        Err(DocumentError::MissingField {
            field: "supply_date",
            rule: "BR-KSA-15"
        })
    ));
    let document = zatca::Document {
        uuid: "not-a-uuid".to_owned(),
        ..simplified_invoice()
    };
    assert!(matches!(
        to_unsigned_xml(&document),
        Err(DocumentError::InvalidUuid { .. })
    ));
    let document = zatca::Document {
        previous_invoice_hash: "not base64!".to_owned(),
        ..simplified_invoice()
    };
    assert_eq!(
        to_unsigned_xml(&document),
        Err(DocumentError::InvalidPreviousInvoiceHash)
    );
}
