//! The Fatoora client (`adapters::fatoora`) against the local fake of ZATCA's API
//! ([`crate::fake_fatoora`]): onboarding (compliance CSID, the six compliance checks, the
//! production CSID, renewal) and every outcome of a clearance or a report. The documents are
//! written and stamped with the `zatca` crate by a test EGS unit whose key made the CSR, so the
//! certificate the fake issues is the one the documents are signed under.

use std::time::{Duration, Instant};

use adapters::fatoora::{
    ComplianceCheck, Credentials, FatooraClient, FatooraConfig, FatooraError, Renewal, RetryReason,
    SubmissionOutcome, ValidationMessage,
};
use adapters::webhooks::Secret;
use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use k256::ecdsa::signature::Verifier as _;
use k256::ecdsa::{Signature, SigningKey};
use sha2::{Digest, Sha256};
use time::macros::{date, datetime, time};
use x509_cert::der::Encode as _;
use zatca::csr::{build_csr, CsrFields, Environment};
use zatca::{
    Address, BillingReference, Buyer, Document, DocumentKind, InvoiceSubtype, Line, PaymentMeans,
    Seller, SignedDocument,
};

use crate::fake_fatoora::{
    Behaviour, ComplianceStep, FakeFatoora, FakeMessage, Gate, RenewalAnswer, HANG_FOR, OTP,
};

/// The client's timeout in these tests: short, so a hanging fake is a timeout quickly.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(300);

/// The PIH of a unit's first document: base64 of the hex SHA-256 of "0".
const FIRST_PIH: &str =
    "NWZlY2ViNjZmZmM4NmYzOGQ5NTI3ODZjNmQ2OTZjNzljMmRiYzIzOWRkNGU5MWI0NjcyOWQ3M2EyN2ZiNTdlOQ==";

/// A test EGS unit: its key (SHA-256 of a label, no randomness), the CSR it is onboarded
/// with, and the documents it writes and stamps.
struct Egs {
    key: SigningKey,
}

impl Egs {
    fn new(label: &str) -> Egs {
        let secret: [u8; 32] = Sha256::digest(label.as_bytes()).into();
        Egs {
            key: SigningKey::from_bytes(&secret.into()).unwrap(),
        }
    }

    /// The CSR for `environment`, base64 of its PEM as the API takes it.
    fn csr(&self, environment: Environment) -> String {
        let fields = CsrFields {
            environment,
            common_name: "TST-EGS-310122393500003".to_owned(),
            egs_serial_number: "1-revledger|2-api|3-test-unit".to_owned(),
            vat_number: "310122393500003".to_owned(),
            organizational_unit: "Riyadh Branch".to_owned(),
            organization: "Dealix".to_owned(),
            invoice_types: "1100".to_owned(),
            location: "RRRD2929".to_owned(),
            industry: "Software".to_owned(),
        };
        build_csr(&fields, &self.key).unwrap().base64_pem()
    }

    /// Document number `number` of `kind` and `subtype`, at ICV `number`.
    fn document(&self, kind: DocumentKind, subtype: InvoiceSubtype, number: u64) -> Document {
        let standard = subtype == InvoiceSubtype::Standard;
        Document {
            kind,
            subtype,
            id: format!("DOC-{number:04}"),
            uuid: format!("8e6000cf-1a98-4174-b3e7-{number:012}"),
            issue_date: date!(2025 - 01 - 15),
            issue_time: time!(13:30:00),
            supply_date: (standard && kind == DocumentKind::Invoice)
                .then_some(date!(2025 - 01 - 15)),
            icv: number,
            previous_invoice_hash: FIRST_PIH.to_owned(),
            seller: seller(),
            buyer: standard.then(buyer),
            payment_means: PaymentMeans::BankCard,
            billing_reference: kind.is_note().then(|| BillingReference {
                original_invoice_id: "DOC-0001".to_owned(),
                reason: "Plan changed".to_owned(),
            }),
            lines: vec![Line {
                name: "Growth plan".to_owned(),
                quantity: 1,
                unit_price_halalas: 299_900 + i64::try_from(number).unwrap(),
            }],
        }
    }

    /// `document` stamped under the certificate of `credentials`.
    fn sign(&self, document: &Document, credentials: &Credentials) -> SignedDocument {
        let certificate = credentials.certificate().unwrap();
        zatca::sign(
            document,
            &self.key,
            &certificate,
            datetime!(2025-01-15 10:30:00),
        )
        .unwrap()
    }
}

fn seller() -> Seller {
    Seller {
        registration_name: "Dealix".to_owned(),
        vat_number: "310122393500003".to_owned(),
        commercial_registration_number: "1010010000".to_owned(),
        address: address("2322", "23333"),
    }
}

fn buyer() -> Buyer {
    Buyer {
        registration_name: "Fatoora Samples LTD".to_owned(),
        vat_number: Some("399999999800003".to_owned()),
        address: Some(address("1111", "12222")),
    }
}

fn address(building_number: &str, postal_code: &str) -> Address {
    Address {
        street: "Prince Sultan".to_owned(),
        building_number: building_number.to_owned(),
        district: "Al-Murabba".to_owned(),
        city: "Riyadh".to_owned(),
        postal_code: postal_code.to_owned(),
        country_code: "SA".to_owned(),
    }
}

fn client(fake: &FakeFatoora) -> FatooraClient {
    FatooraClient::new(&FatooraConfig {
        timeout: CLIENT_TIMEOUT,
        ..FatooraConfig::with_base_url(fake.base_url.clone())
    })
    .unwrap()
}

fn otp() -> Secret {
    Secret::new(OTP)
}

/// The six documents of the compliance checks, in the order Saleh7's client sends them.
fn six_kinds() -> [(DocumentKind, InvoiceSubtype); 6] {
    let (standard, simplified) = (InvoiceSubtype::Standard, InvoiceSubtype::Simplified);
    [
        (DocumentKind::Invoice, standard),
        (DocumentKind::CreditNote, standard),
        (DocumentKind::DebitNote, standard),
        (DocumentKind::Invoice, simplified),
        (DocumentKind::CreditNote, simplified),
        (DocumentKind::DebitNote, simplified),
    ]
}

async fn check(
    client: &FatooraClient,
    egs: &Egs,
    compliance: &Credentials,
    kind: DocumentKind,
    subtype: InvoiceSubtype,
    number: u64,
) -> ComplianceCheck {
    let document = egs.document(kind, subtype, number);
    let signed = egs.sign(&document, compliance);
    client
        .compliance_check(
            compliance,
            &signed.invoice_hash,
            &document.uuid,
            &signed.xml,
        )
        .await
        .unwrap()
}

/// A unit onboarded on a simulation fake: compliance CSID, the six checks, production CSID.
async fn onboarded(fake: &FakeFatoora, egs: &Egs) -> Credentials {
    let client = client(fake);
    let compliance = client
        .compliance_csid(&egs.csr(Environment::Simulation), &otp())
        .await
        .unwrap();
    for (number, (kind, subtype)) in (1..).zip(six_kinds()) {
        assert!(
            check(&client, egs, &compliance, kind, subtype, number)
                .await
                .passed
        );
    }
    client
        .production_csid(&compliance, &compliance.request_id)
        .await
        .unwrap()
}

/// Submits `document`, signed with `credentials`, to the endpoint its subtype goes to.
async fn submit(
    client: &FatooraClient,
    credentials: &Credentials,
    document: &Document,
    signed: &SignedDocument,
) -> SubmissionOutcome {
    let submitted = match document.subtype {
        InvoiceSubtype::Standard => {
            client
                .clear(
                    credentials,
                    &signed.invoice_hash,
                    &document.uuid,
                    &signed.xml,
                )
                .await
        }
        InvoiceSubtype::Simplified => {
            client
                .report(
                    credentials,
                    &signed.invoice_hash,
                    &document.uuid,
                    &signed.xml,
                )
                .await
        }
    };
    submitted.unwrap()
}

/// A simulation fake, a unit onboarded on it, and its production credentials.
async fn onboarded_unit() -> (FakeFatoora, Egs, Credentials) {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let egs = Egs::new("egs unit");
    let credentials = onboarded(&fake, &egs).await;
    (fake, egs, credentials)
}

fn standard_invoice(egs: &Egs, number: u64) -> Document {
    egs.document(DocumentKind::Invoice, InvoiceSubtype::Standard, number)
}

fn simplified_invoice(egs: &Egs, number: u64) -> Document {
    egs.document(DocumentKind::Invoice, InvoiceSubtype::Simplified, number)
}

fn codes(messages: &[ValidationMessage]) -> Vec<&str> {
    messages
        .iter()
        .map(|message| message.code.as_deref().unwrap_or("-"))
        .collect()
}

#[tokio::test]
async fn a_unit_is_onboarded_through_the_six_compliance_checks_and_its_production_csid_renewed() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let egs = Egs::new("egs unit");
    let client = client(&fake);

    let compliance = client
        .compliance_csid(&egs.csr(Environment::Simulation), &otp())
        .await
        .unwrap();
    let certificate = compliance.certificate().unwrap();
    assert_eq!(
        certificate.verifying_key().unwrap(),
        *egs.key.verifying_key(),
        "the compliance certificate is for the unit's own key"
    );
    assert_eq!(
        certificate.issuer_name(),
        "CN=FAKE-FATOORA-CA, DC=fake, DC=local"
    );
    let ca_signature = Signature::from_der(certificate.signature_bytes()).unwrap();
    let tbs = certificate.x509().tbs_certificate.to_der().unwrap();
    fake.ca_verifying_key()
        .verify(&tbs, &ca_signature)
        .expect("signed by the fake's CA");

    let mut numbers = 1..;
    for (kind, subtype) in six_kinds().into_iter().take(5) {
        let number = numbers.next().unwrap();
        let passed = check(&client, &egs, &compliance, kind, subtype, number).await;
        assert!(passed.passed, "{kind:?} {subtype:?}: {passed:?}");
        assert_eq!(codes(&passed.validation.info), ["XSD_ZATCA_VALID"]);
    }
    let early = client
        .production_csid(&compliance, &compliance.request_id)
        .await
        .unwrap_err();
    assert!(early.has_code("Missing-ComplianceSteps"), "{early:?}");
    assert!(
        early
            .to_string()
            .contains("[simplified-debit-note-compliant]"),
        "names the one step missing: {early}"
    );

    let (kind, subtype) = six_kinds()[5];
    let last = check(
        &client,
        &egs,
        &compliance,
        kind,
        subtype,
        numbers.next().unwrap(),
    )
    .await;
    assert!(last.passed);
    assert_eq!(
        fake.passed_steps(&compliance.binary_security_token),
        ComplianceStep::ALL
    );

    let production = client
        .production_csid(&compliance, &compliance.request_id)
        .await
        .unwrap();
    assert_ne!(production.request_id, compliance.request_id);
    assert_ne!(
        production.binary_security_token,
        compliance.binary_security_token
    );
    let document = simplified_invoice(&egs, 1);
    let signed = egs.sign(&document, &production);
    assert_eq!(
        submit(&client, &production, &document, &signed).await,
        SubmissionOutcome::Reported { warnings: vec![] }
    );

    let renewed = client
        .renew_production_csid(&production, &egs.csr(Environment::Simulation), &otp())
        .await
        .unwrap();
    let Renewal::Issued(renewed) = renewed else {
        panic!("not renewed: {renewed:?}");
    };
    let document = simplified_invoice(&egs, 2);
    let signed = egs.sign(&document, &renewed);
    assert_eq!(
        submit(&client, &renewed, &document, &signed).await,
        SubmissionOutcome::Reported { warnings: vec![] },
        "the renewed CSID submits"
    );

    let production_request = &fake.received_on("POST /production/csids")[1];
    assert_eq!(
        production_request.body["compliance_request_id"],
        serde_json::json!(compliance.request_id.as_str().parse::<u64>().unwrap())
    );
}

#[tokio::test]
async fn a_wrong_or_missing_otp_is_refused_and_never_shows_in_the_error() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let client = client(&fake);
    let csr = Egs::new("egs unit").csr(Environment::Simulation);
    let error = client
        .compliance_csid(&csr, &Secret::new("999999"))
        .await
        .unwrap_err();
    assert!(error.has_code("Invalid-OTP"), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("999999"));
    assert!(!error.is_retryable());
    let error = client.compliance_csid(&csr, &Secret::new("")).await;
    assert!(error.is_err());
    let received = fake.received_on("POST /compliance");
    assert_eq!(received[0].header("otp"), Some("999999"));
    assert_eq!(
        received[0].header("authorization"),
        None,
        "no auth on POST /compliance"
    );
}

#[tokio::test]
async fn a_csr_for_another_environment_is_refused() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let csr = Egs::new("egs unit").csr(Environment::Production);
    let error = client(&fake)
        .compliance_csid(&csr, &otp())
        .await
        .unwrap_err();
    assert!(error.has_code("Invalid-CSR"), "{error:?}");
}

#[tokio::test]
async fn the_developer_portal_issues_the_production_csid_without_compliance_checks() {
    let fake = FakeFatoora::start(Gate::DeveloperPortal).await;
    let egs = Egs::new("egs unit");
    let client = client(&fake);
    let compliance = client
        .compliance_csid(&egs.csr(Environment::DeveloperPortal), &otp())
        .await
        .unwrap();
    assert_eq!(compliance.request_id.as_str(), "1234567890123");
    let production = client
        .production_csid(&compliance, &compliance.request_id)
        .await
        .unwrap();
    assert_eq!(
        production.certificate().unwrap().verifying_key().unwrap(),
        *egs.key.verifying_key()
    );
}

#[tokio::test]
async fn a_compliance_check_recomputes_the_hash_and_fails_a_document_that_does_not_match() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let egs = Egs::new("egs unit");
    let client = client(&fake);
    let compliance = client
        .compliance_csid(&egs.csr(Environment::Simulation), &otp())
        .await
        .unwrap();
    let document = standard_invoice(&egs, 1);
    let signed = egs.sign(&document, &compliance);
    let other = egs.sign(&standard_invoice(&egs, 2), &compliance);
    let failed = client
        .compliance_check(
            &compliance,
            &other.invoice_hash,
            &document.uuid,
            &signed.xml,
        )
        .await
        .unwrap();
    assert!(!failed.passed);
    assert_eq!(codes(&failed.validation.errors), ["invalid-invoice-hash"]);
    assert!(fake
        .passed_steps(&compliance.binary_security_token)
        .is_empty());

    fake.set(Behaviour::Reject(vec![FakeMessage::new(
        "BR-CO-15",
        "EN_16931",
        "Invoice total amount with VAT (BT-112) ",
    )]));
    let rejected = check(
        &client,
        &egs,
        &compliance,
        DocumentKind::CreditNote,
        InvoiceSubtype::Standard,
        3,
    )
    .await;
    assert!(!rejected.passed);
    assert_eq!(codes(&rejected.validation.errors), ["BR-CO-15"]);
    assert!(fake
        .passed_steps(&compliance.binary_security_token)
        .is_empty());
}

#[tokio::test]
async fn a_renewal_not_compliant_yet_is_onboarded_again_through_the_compliance_checks() {
    let (fake, egs, production) = onboarded_unit().await;
    let client = client(&fake);
    fake.set_renewal(RenewalAnswer::NotCompliantYet);
    let renewal = client
        .renew_production_csid(&production, &egs.csr(Environment::Simulation), &otp())
        .await
        .unwrap();
    let Renewal::NotCompliantYet(compliance) = renewal else {
        panic!("renewed without compliance: {renewal:?}");
    };
    let received = &fake.received_on("PATCH /production/csids")[0];
    assert_eq!(received.header("otp"), Some(OTP));
    assert!(client
        .production_csid(&compliance, &compliance.request_id)
        .await
        .unwrap_err()
        .has_code("Missing-ComplianceSteps"));
    for (number, (kind, subtype)) in (1..).zip(six_kinds()) {
        assert!(
            check(&client, &egs, &compliance, kind, subtype, number)
                .await
                .passed
        );
    }
    let renewed = client
        .production_csid(&compliance, &compliance.request_id)
        .await
        .unwrap();
    let document = standard_invoice(&egs, 1);
    let signed = egs.sign(&document, &renewed);
    assert!(matches!(
        submit(&client, &renewed, &document, &signed).await,
        SubmissionOutcome::Cleared { .. }
    ));
}

#[tokio::test]
async fn a_standard_invoice_is_cleared_and_the_cleared_copy_keeps_the_submitted_hash() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let document = standard_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    let outcome = submit(&client(&fake), &credentials, &document, &signed).await;
    let SubmissionOutcome::Cleared {
        cleared_xml,
        warnings,
    } = outcome
    else {
        panic!("not cleared: {outcome:?}");
    };
    assert!(warnings.is_empty());
    assert_ne!(cleared_xml, signed.xml, "ZATCA's stamp was added");
    assert!(cleared_xml.contains("urn:fake-fatoora:clearance-stamp"));
    assert_eq!(
        zatca::invoice_hash(&cleared_xml).unwrap(),
        signed.invoice_hash
    );
    assert_eq!(
        zatca::read::read_qr(&cleared_xml).unwrap().as_deref(),
        Some(signed.qr_base64.as_str())
    );
    let clearance = &fake.received_on("POST /invoices/clearance/single")[0];
    assert_eq!(clearance.header("clearance-status"), Some("1"));
    assert_eq!(clearance.body["uuid"], document.uuid.as_str());
    assert_eq!(
        clearance.body["invoiceHash"],
        signed.invoice_hash.to_base64().as_str()
    );
    assert_eq!(
        clearance.body["invoice"],
        BASE64.encode(signed.xml.as_bytes()).as_str()
    );
}

#[tokio::test]
async fn every_request_asks_for_v2_in_english_with_basic_credentials_and_json() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let document = simplified_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    submit(&client(&fake), &credentials, &document, &signed).await;
    let received = fake.received();
    assert_eq!(
        received.len(),
        9,
        "compliance CSID, six checks, production CSID, report"
    );
    for request in &received {
        assert_eq!(
            request.header("accept-version"),
            Some("V2"),
            "{}",
            request.route
        );
        assert_eq!(request.header("accept-language"), Some("en"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("accept"), Some("application/json"));
    }
    let report = received.last().unwrap();
    assert_eq!(report.route, "POST /invoices/reporting/single");
    assert_eq!(report.header("clearance-status"), Some("0"));
    assert_eq!(report.header("otp"), None);
    let expected = format!(
        "Basic {}",
        BASE64.encode(format!(
            "{}:{}",
            credentials.binary_security_token,
            credentials.secret.expose()
        ))
    );
    assert_eq!(report.header("authorization"), Some(expected.as_str()));
}

#[tokio::test]
async fn a_simplified_invoice_is_reported_and_a_standard_one_sent_to_reporting_is_rejected() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    let document = simplified_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    assert_eq!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::Reported { warnings: vec![] }
    );
    let standard = standard_invoice(&egs, 2);
    let signed = egs.sign(&standard, &credentials);
    let outcome = client
        .report(
            &credentials,
            &signed.invoice_hash,
            &standard.uuid,
            &signed.xml,
        )
        .await
        .unwrap();
    let SubmissionOutcome::Rejected { errors, .. } = outcome else {
        panic!("not rejected: {outcome:?}");
    };
    assert_eq!(codes(&errors), ["XML-INVOICE-ERROR"]);
    assert_eq!(
        errors[0].message.as_deref(),
        Some("XML Submitted using reporting API is not a simplified document")
    );
}

#[tokio::test]
async fn warnings_are_accepted_with_202_on_both_endpoints() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    let late = FakeMessage::new(
        "BR-KSA-98",
        "KSA",
        "[BR-KSA-98] - The simplified invoice should be submitted within 24 hours of issuing the invoice.",
    );
    fake.set(Behaviour::AcceptWithWarnings(vec![late]));
    let document = simplified_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    let SubmissionOutcome::Reported { warnings } =
        submit(&client, &credentials, &document, &signed).await
    else {
        panic!("not reported");
    };
    assert_eq!(codes(&warnings), ["BR-KSA-98"]);
    assert_eq!(warnings[0].kind.as_deref(), Some("WARNING"));
    let document = standard_invoice(&egs, 2);
    let signed = egs.sign(&document, &credentials);
    let SubmissionOutcome::Cleared { warnings, .. } =
        submit(&client, &credentials, &document, &signed).await
    else {
        panic!("not cleared");
    };
    assert_eq!(codes(&warnings), ["BR-KSA-98"]);
}

#[tokio::test]
async fn a_resent_cleared_invoice_is_already_accepted_with_the_first_cleared_copy() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    let document = standard_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    let SubmissionOutcome::Cleared { cleared_xml, .. } =
        submit(&client, &credentials, &document, &signed).await
    else {
        panic!("not cleared");
    };
    assert_eq!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::AlreadyAccepted {
            cleared_xml: Some(cleared_xml)
        },
        "208 with the cleared invoice"
    );
    fake.set_clearance_duplicate_status(StatusCode::CONFLICT);
    assert_eq!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::AlreadyAccepted { cleared_xml: None },
        "409 without it"
    );
}

#[tokio::test]
async fn a_resent_reported_invoice_is_already_accepted_though_zatca_says_not_reported() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    let document = simplified_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    assert!(matches!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::Reported { .. }
    ));
    assert_eq!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::AlreadyAccepted { cleared_xml: None }
    );
}

#[tokio::test]
async fn a_rejected_document_carries_zatcas_messages_and_is_not_remembered_as_accepted() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    fake.set(Behaviour::Reject(vec![FakeMessage::new(
        "certificate-permissions",
        "CERTIFICATE_ERRORS",
        "User only allowed to use the vat number that exists in the authentication certificate",
    )]));
    for document in [standard_invoice(&egs, 1), simplified_invoice(&egs, 2)] {
        let signed = egs.sign(&document, &credentials);
        let outcome = submit(&client, &credentials, &document, &signed).await;
        let SubmissionOutcome::Rejected { errors, warnings } = outcome else {
            panic!("not rejected: {outcome:?}");
        };
        assert_eq!(codes(&errors), ["certificate-permissions"]);
        assert_eq!(errors[0].category.as_deref(), Some("CERTIFICATE_ERRORS"));
        assert!(warnings.is_empty());
        fake.set(Behaviour::Accept);
        assert!(
            !matches!(
                submit(&client, &credentials, &document, &signed).await,
                SubmissionOutcome::AlreadyAccepted { .. }
            ),
            "a rejected first submission never makes a duplicate"
        );
        fake.set(Behaviour::Reject(vec![FakeMessage::new(
            "certificate-permissions",
            "CERTIFICATE_ERRORS",
            "User only allowed to use the vat number that exists in the authentication certificate",
        )]));
    }
}

#[tokio::test]
async fn a_document_changed_after_signing_is_rejected_by_the_recomputed_hash_and_stamp() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    let document = simplified_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    let changed = signed.xml.replacen("Growth plan", "Growth plam", 1);
    assert_ne!(changed, signed.xml);
    let outcome = client
        .report(&credentials, &signed.invoice_hash, &document.uuid, &changed)
        .await
        .unwrap();
    let SubmissionOutcome::Rejected { errors, .. } = outcome else {
        panic!("not rejected: {outcome:?}");
    };
    assert_eq!(
        codes(&errors),
        [
            "invalid-invoice-hash",
            "fake-invalid-signature",
            "invoiceHash_QRCODE_INVALID"
        ]
    );

    // The right hash for the changed XML does not help: the stamp is over the old one.
    let rehashed = zatca::invoice_hash(&changed).unwrap();
    let outcome = client
        .report(&credentials, &rehashed, &document.uuid, &changed)
        .await
        .unwrap();
    let SubmissionOutcome::Rejected { errors, .. } = outcome else {
        panic!("not rejected: {outcome:?}");
    };
    assert_eq!(
        codes(&errors),
        ["fake-invalid-signature", "invoiceHash_QRCODE_INVALID"]
    );

    // The signing time is outside the hash but inside the signed properties.
    let retimed = signed.xml.replacen(
        "<xades:SigningTime>2025-01-15T10:30:00",
        "<xades:SigningTime>2025-01-15T10:31:00",
        1,
    );
    assert_ne!(retimed, signed.xml);
    let outcome = client
        .report(&credentials, &signed.invoice_hash, &document.uuid, &retimed)
        .await
        .unwrap();
    let SubmissionOutcome::Rejected { errors, .. } = outcome else {
        panic!("not rejected: {outcome:?}");
    };
    assert_eq!(codes(&errors), ["fake-invalid-signature"]);
}

#[tokio::test]
async fn a_document_signed_under_another_certificate_is_accepted_with_zatcas_warning() {
    let (fake, _, production) = onboarded_unit().await;
    let client = client(&fake);
    let other_unit = Egs::new("another unit");
    let other = onboarded(&fake, &other_unit).await;
    let document = simplified_invoice(&other_unit, 1);
    let signed = other_unit.sign(&document, &other);
    let SubmissionOutcome::Reported { warnings } =
        submit(&client, &production, &document, &signed).await
    else {
        panic!("not reported");
    };
    assert_eq!(codes(&warnings), ["invalid-signing-certificate"]);
}

#[tokio::test]
async fn clearance_switched_off_answers_303_and_reporting_then_takes_the_standard_document() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    fake.set(Behaviour::ClearanceSwitchedOff);
    let document = standard_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    assert_eq!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::ClearanceSwitchedOff
    );
    assert_eq!(
        client
            .report(
                &credentials,
                &signed.invoice_hash,
                &document.uuid,
                &signed.xml
            )
            .await
            .unwrap(),
        SubmissionOutcome::Reported { warnings: vec![] }
    );
}

#[tokio::test]
async fn bad_credentials_are_unauthorized_and_the_same_document_goes_through_once_fixed() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    let document = standard_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    let wrong = Credentials {
        secret: Secret::new("not the secret"),
        ..credentials.clone()
    };
    assert_eq!(
        submit(&client, &wrong, &document, &signed).await,
        SubmissionOutcome::Unauthorized
    );
    assert!(matches!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::Cleared { .. }
    ));
    assert_eq!(
        client
            .production_csid(&wrong, &wrong.request_id)
            .await
            .unwrap_err(),
        FatooraError::Unauthorized
    );
}

#[tokio::test]
async fn statuses_of_a_document_not_received_are_retried_later_and_then_accepted() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    let document = simplified_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    for (status, reason) in [
        (500, RetryReason::ServerError { status: 500 }),
        (503, RetryReason::ServerError { status: 503 }),
        (502, RetryReason::ServerError { status: 502 }),
        (504, RetryReason::ServerError { status: 504 }),
        (429, RetryReason::RateLimited),
        (413, RetryReason::PayloadTooLarge),
    ] {
        fake.set(Behaviour::Fail(StatusCode::from_u16(status).unwrap()));
        assert_eq!(
            submit(&client, &credentials, &document, &signed).await,
            SubmissionOutcome::RetryLater { reason },
            "{status}"
        );
    }
    fake.set(Behaviour::Fail(StatusCode::INTERNAL_SERVER_ERROR));
    assert!(matches!(
        client
            .compliance_csid(&egs.csr(Environment::Simulation), &otp())
            .await,
        Err(FatooraError::RetryLater { .. })
    ));
    fake.set(Behaviour::Accept);
    assert_eq!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::Reported { warnings: vec![] },
        "none of the failures took the document"
    );
}

#[tokio::test]
async fn a_hanging_fatoora_is_a_timeout_within_the_clients_bound() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    fake.set(Behaviour::Hang);
    let document = standard_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    let started = Instant::now();
    assert_eq!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::RetryLater {
            reason: RetryReason::TimedOut
        }
    );
    let waited = started.elapsed();
    assert!(
        waited >= CLIENT_TIMEOUT && waited < HANG_FOR / 2,
        "gave up after {waited:?}"
    );
    fake.set(Behaviour::Accept);
    assert!(matches!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::Cleared { .. }
    ));
}

#[tokio::test]
async fn a_lost_answer_is_found_accepted_when_the_same_bytes_are_resent() {
    let (fake, egs, credentials) = onboarded_unit().await;
    let client = client(&fake);
    fake.set(Behaviour::AcceptThenHang);
    let document = standard_invoice(&egs, 1);
    let signed = egs.sign(&document, &credentials);
    assert_eq!(
        submit(&client, &credentials, &document, &signed).await,
        SubmissionOutcome::RetryLater {
            reason: RetryReason::TimedOut
        }
    );
    fake.set(Behaviour::Accept);
    let outcome = submit(&client, &credentials, &document, &signed).await;
    let SubmissionOutcome::AlreadyAccepted {
        cleared_xml: Some(cleared_xml),
    } = outcome
    else {
        panic!("not a duplicate with the cleared copy: {outcome:?}");
    };
    assert_eq!(
        zatca::invoice_hash(&cleared_xml).unwrap(),
        signed.invoice_hash
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_later() {
    // Bind a port, then free it, so nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = FatooraClient::new(&FatooraConfig {
        timeout: CLIENT_TIMEOUT,
        ..FatooraConfig::with_base_url(format!("http://{address}/e-invoicing/simulation"))
    })
    .unwrap();
    let credentials = Credentials {
        request_id: adapters::fatoora::RequestId::new("1"),
        binary_security_token: "token".to_owned(),
        secret: Secret::new("secret"),
    };
    let hash = zatca::invoice_hash("<Invoice/>").unwrap();
    let outcome = client
        .report(&credentials, &hash, "uuid", "<Invoice/>")
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            SubmissionOutcome::RetryLater {
                reason: RetryReason::Unreachable { .. }
            }
        ),
        "{outcome:?}"
    );
}
