//! The onboarding CSR: it parses back, its signature verifies, its fields are as given, and
//! its subject alternative name is encoded as ZATCA's own test certificate carries it.

use k256::ecdsa::signature::Verifier as _;
use k256::ecdsa::Signature;
use x509_cert::der::asn1::PrintableStringRef;
use x509_cert::der::{Decode as _, DecodePem as _, Encode as _};
use x509_cert::request::CertReq;
use zatca::csr::{
    build_csr, subject_alt_name_der, CsrError, CsrFields, Environment,
    CERTIFICATE_TEMPLATE_NAME_OID, EXTENSION_REQUEST_OID, SUBJECT_ALT_NAME_OID,
};

use crate::kit::{sdk_certificate, test_key};

/// The fields of ZATCA's SDK test certificate (`zatca_sdk_test_cert.pem`): its subject and
/// its subject alternative name, as `openssl x509 -text` shows them.
fn sdk_certificate_fields(environment: Environment) -> CsrFields {
    CsrFields {
        environment,
        common_name: "TST-886431145-399999999900003".to_owned(),
        egs_serial_number: "1-TST|2-TST|3-ed22f1d8-e6a2-1118-9b58-d9a8f11e445f".to_owned(),
        vat_number: "399999999900003".to_owned(),
        organizational_unit: "Riyadh Branch".to_owned(),
        organization: "Maximum Speed Tech Supply LTD".to_owned(),
        invoice_types: "1100".to_owned(),
        location: "RRRD2929".to_owned(),
        industry: "Supply activities".to_owned(),
    }
}

fn requested_extension(request: &CertReq, oid: x509_cert::der::oid::ObjectIdentifier) -> Vec<u8> {
    let attribute = request
        .info
        .attributes
        .iter()
        .find(|attribute| attribute.oid == EXTENSION_REQUEST_OID)
        .unwrap();
    let extensions = Vec::<x509_cert::ext::Extension>::from_der(
        &attribute.values.get(0).unwrap().to_der().unwrap(),
    )
    .unwrap();
    extensions
        .into_iter()
        .find(|extension| extension.extn_id == oid)
        .unwrap()
        .extn_value
        .into_bytes()
}

#[test]
fn the_csr_parses_back_and_its_signature_verifies_with_the_units_key() {
    let key = test_key("egs unit");
    let csr = build_csr(&sdk_certificate_fields(Environment::DeveloperPortal), &key).unwrap();
    let request = CertReq::from_der(&csr.der).unwrap();
    assert_eq!(CertReq::from_pem(csr.pem.as_bytes()).unwrap(), request);
    let signature = Signature::from_der(request.signature.raw_bytes()).unwrap();
    key.verifying_key()
        .verify(&request.info.to_der().unwrap(), &signature)
        .unwrap();
    assert_eq!(request.algorithm.oid, zatca::csr::ECDSA_WITH_SHA256_OID);
    let public_key = request.info.public_key.to_der().unwrap();
    assert_eq!(
        k256::ecdsa::VerifyingKey::from_sec1_bytes(
            request.info.public_key.subject_public_key.raw_bytes()
        )
        .unwrap(),
        *key.verifying_key(),
        "the CSR carries the unit's key ({} bytes of SPKI)",
        public_key.len()
    );
}

#[test]
fn the_subject_carries_country_organisation_unit_common_name_and_vat_number() {
    let fields = sdk_certificate_fields(Environment::Production);
    let csr = build_csr(&fields, &test_key("egs unit")).unwrap();
    let request = CertReq::from_der(&csr.der).unwrap();
    let rdns: Vec<(String, Vec<u8>)> = request
        .info
        .subject
        .0
        .iter()
        .map(|rdn| {
            let attribute = rdn.0.get(0).unwrap();
            (attribute.oid.to_string(), attribute.value.value().to_vec())
        })
        .collect();
    let expected: Vec<(String, Vec<u8>)> = [
        ("2.5.4.6", "SA"),
        ("2.5.4.10", fields.organization.as_str()),
        ("2.5.4.11", fields.organizational_unit.as_str()),
        ("2.5.4.3", fields.common_name.as_str()),
        ("2.5.4.97", fields.vat_number.as_str()),
    ]
    .into_iter()
    .map(|(oid, value)| (oid.to_owned(), value.as_bytes().to_vec()))
    .collect();
    assert_eq!(rdns, expected);
    // ZATCA's CA issued the SDK certificate with C, O, OU and CN in this order.
    let issued = sdk_certificate().subject_name();
    assert!(
        request.info.subject.to_string().ends_with(&issued),
        "{issued}"
    );
}

#[test]
fn the_subject_alternative_name_is_encoded_as_zatcas_test_certificate_carries_it() {
    let fields = sdk_certificate_fields(Environment::DeveloperPortal);
    let certificate = sdk_certificate();
    let issued = certificate
        .x509()
        .tbs_certificate
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .find(|extension| extension.extn_id == SUBJECT_ALT_NAME_OID)
        .unwrap()
        .extn_value
        .as_bytes()
        .to_vec();
    assert_eq!(subject_alt_name_der(&fields).unwrap(), issued);
    let csr = build_csr(&fields, &test_key("egs unit")).unwrap();
    let request = CertReq::from_der(&csr.der).unwrap();
    assert_eq!(requested_extension(&request, SUBJECT_ALT_NAME_OID), issued);
}

#[test]
fn the_certificate_template_names_the_environment() {
    for (environment, name) in [
        (Environment::DeveloperPortal, "TSTZATCA-Code-Signing"),
        (Environment::Simulation, "PREZATCA-Code-Signing"),
        (Environment::Production, "ZATCA-Code-Signing"),
    ] {
        let csr = build_csr(&sdk_certificate_fields(environment), &test_key("egs unit")).unwrap();
        let request = CertReq::from_der(&csr.der).unwrap();
        let value = requested_extension(&request, CERTIFICATE_TEMPLATE_NAME_OID);
        assert_eq!(PrintableStringRef::from_der(&value).unwrap().as_str(), name);
    }
}

#[test]
fn the_api_form_is_base64_of_the_pem_text() {
    let csr = build_csr(
        &sdk_certificate_fields(Environment::Simulation),
        &test_key("egs unit"),
    )
    .unwrap();
    assert!(csr.pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(csr.base64_pem())
        .unwrap();
    assert_eq!(decoded, csr.pem.as_bytes());
}

#[test]
fn malformed_fields_are_refused() {
    let key = test_key("egs unit");
    let mut fields = sdk_certificate_fields(Environment::Production);
    fields.egs_serial_number = "TST|TST|123".to_owned();
    assert!(matches!(
        build_csr(&fields, &key),
        Err(CsrError::InvalidEgsSerial { .. })
    ));
    let mut fields = sdk_certificate_fields(Environment::Production);
    fields.invoice_types = "0011".to_owned();
    assert!(matches!(
        build_csr(&fields, &key),
        Err(CsrError::InvalidInvoiceTypes { .. })
    ));
    let mut fields = sdk_certificate_fields(Environment::Production);
    fields.vat_number = "123".to_owned();
    assert!(matches!(
        build_csr(&fields, &key),
        Err(CsrError::InvalidVatNumber { .. })
    ));
    let mut fields = sdk_certificate_fields(Environment::Production);
    fields.common_name = " ".to_owned();
    assert!(matches!(
        build_csr(&fields, &key),
        Err(CsrError::MissingField {
            field: "common_name"
        })
    ));
}
