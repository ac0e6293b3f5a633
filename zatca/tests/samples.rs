//! ZATCA's published sample documents as test vectors, read from the shared folder beside the
//! checkout (`../shared/zatca_samples/` from the workspace root); they are never copied in.

use zatca::read::read_stamp;
use zatca::stamp::{signed_properties_digest, verify_hash_signature, StampError};
use zatca::tree::{self, find_descendant};
use zatca::Certificate;

const SAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/zatca_samples/");

/// Every signed sample in the folder. All of them carry their own hash, signature, signed
/// properties digest and QR, so every vector below runs over all of them.
const SIGNED_SAMPLES: &[&str] = &[
    "sdk_simplified_invoice.xml",
    "sdk_standard_invoice.xml",
    "sdk_simplified_credit_note.xml",
    "sdk_standard_debit_note.xml",
    "sdk_standard_invoice_payable_rounding.xml",
    "sdk_standard_advance_payment_usd.xml",
    "wes4m_simplified_signed.xml",
];

fn sample(name: &str) -> String {
    let path = format!("{SAMPLES_DIR}{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

/// The DigestValue of the `ds:Reference` whose `Id` or `URI` attribute is `reference`.
fn reference_digest(xml: &str, attribute: &str, reference: &str) -> String {
    let document = tree::parse(xml).unwrap();
    let signed_info = find_descendant(&document.root, "ds:SignedInfo").unwrap();
    let found = signed_info
        .child_elements()
        .find(|element| {
            element.name == "ds:Reference" && element.attribute(attribute) == Some(reference)
        })
        .unwrap_or_else(|| panic!("no reference {reference}"));
    find_descendant(found, "ds:DigestValue").unwrap().text()
}

#[test]
fn the_sdk_hashes_published_in_the_readme_are_reproduced() {
    // The README's values, recorded from ZATCA's SDK (`fatoora -generateHash`).
    for (name, expected) in [
        (
            "sdk_standard_invoice.xml",
            "V4U5qlZ3yXQ/Si1AC/R8SLc3F+iNy27wdVe8IWRqFAQ=",
        ),
        (
            "sdk_simplified_invoice.xml",
            "z5F9qsS6oWyDhehD8u8S0DaxV+2CUiUz9Y+UsR61JgQ=",
        ),
    ] {
        assert_eq!(
            zatca::invoice_hash(&sample(name)).unwrap().to_base64(),
            expected,
            "{name}"
        );
    }
}

#[test]
fn every_signed_sample_carries_the_hash_we_compute_as_its_invoice_digest() {
    for name in SIGNED_SAMPLES {
        let xml = sample(name);
        assert_eq!(
            zatca::invoice_hash(&xml).unwrap().to_base64(),
            reference_digest(&xml, "Id", "invoiceSignedData"),
            "{name}"
        );
    }
}

fn sdk_certificate() -> Certificate {
    Certificate::from_pem(&sample("zatca_sdk_test_cert.pem")).unwrap()
}

#[test]
fn every_signed_sample_signature_verifies_over_its_invoice_hash_with_its_certificate() {
    for name in SIGNED_SAMPLES {
        let xml = sample(name);
        let stamp = read_stamp(&xml).unwrap();
        let certificate = Certificate::from_base64_der(&stamp.certificate_base64).unwrap();
        let hash = zatca::invoice_hash(&xml).unwrap();
        verify_hash_signature(
            &hash,
            &stamp.signature_base64,
            &certificate.verifying_key().unwrap(),
        )
        .unwrap_or_else(|error| panic!("{name}: {error}"));
    }
}

#[test]
fn the_sdk_samples_are_signed_by_the_sdk_test_certificate() {
    // The wes4m sample is signed with ZATCA's older sandbox certificate, which it embeds; the
    // others embed the same certificate as zatca_sdk_test_cert.pem.
    let certificate = sdk_certificate();
    for name in SIGNED_SAMPLES
        .iter()
        .filter(|name| name.starts_with("sdk_"))
    {
        let xml = sample(name);
        let stamp = read_stamp(&xml).unwrap();
        assert_eq!(stamp.certificate_base64, certificate.base64_der(), "{name}");
        let hash = zatca::invoice_hash(&xml).unwrap();
        verify_hash_signature(
            &hash,
            &stamp.signature_base64,
            &certificate.verifying_key().unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn a_signature_over_another_hash_does_not_verify() {
    let simplified = read_stamp(&sample("sdk_simplified_invoice.xml")).unwrap();
    let standard_hash = zatca::invoice_hash(&sample("sdk_standard_invoice.xml")).unwrap();
    let key = sdk_certificate().verifying_key().unwrap();
    assert_eq!(
        verify_hash_signature(&standard_hash, &simplified.signature_base64, &key),
        Err(StampError::SignatureMismatch)
    );
}

#[test]
fn every_signed_sample_signed_properties_digest_is_reproduced_from_its_own_properties() {
    for name in SIGNED_SAMPLES {
        let xml = sample(name);
        assert_eq!(
            signed_properties_digest(&xml).unwrap(),
            read_stamp(&xml).unwrap().signed_properties_digest_base64,
            "{name}"
        );
    }
}

#[test]
fn every_signed_sample_certificate_fields_in_its_signed_properties_are_reproduced() {
    for name in SIGNED_SAMPLES {
        let xml = sample(name);
        let stamp = read_stamp(&xml).unwrap();
        let certificate = Certificate::from_base64_der(&stamp.certificate_base64).unwrap();
        assert_eq!(
            certificate.digest_base64(),
            stamp.certificate_digest_base64,
            "{name}"
        );
        assert_eq!(certificate.issuer_name(), stamp.issuer_name, "{name}");
        assert_eq!(
            certificate.serial_number_decimal(),
            stamp.serial_number,
            "{name}"
        );
    }
}
