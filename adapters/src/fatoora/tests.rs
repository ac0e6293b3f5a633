//! The classification of Fatoora's answers, without I/O, against the answer bodies of
//! ZATCA's Swagger and documentation (see `docs/zatca.md`). The client against a local fake of the
//! whole API is in `tests/it/fatoora.rs`.

use super::*;

const XSD_INFO: &str = r#"{"type":"INFO","code":"XSD_ZATCA_VALID","category":"XSD validation","message":"Complied with UBL 2.1 standards in line with ZATCA specifications","status":"PASS"}"#;

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap()
}

fn clearance(code: u16, body: &str) -> Result<SubmissionOutcome, FatooraError> {
    classify_submission(Submission::Clearance, status(code), body.as_bytes())
}

fn reporting(code: u16, body: &str) -> Result<SubmissionOutcome, FatooraError> {
    classify_submission(Submission::Reporting, status(code), body.as_bytes())
}

fn codes(messages: &[ValidationMessage]) -> Vec<&str> {
    messages
        .iter()
        .map(|message| message.code.as_deref().unwrap_or("-"))
        .collect()
}

fn cleared_body(status_text: &str, warnings: &str, xml: &str) -> String {
    format!(
        r#"{{"validationResults":{{"infoMessages":[{XSD_INFO}],"warningMessages":[{warnings}],"errorMessages":[],"status":"PASS"}},"clearanceStatus":"{status_text}","clearedInvoice":"{}"}}"#,
        BASE64.encode(xml)
    )
}

const REPORTED_WITH_WARNINGS: &str = r#"{"validationResults":{"infoMessages":[{"type":"INFO","code":"XSD_ZATCA_VALID","category":"XSD validation","message":"Complied with UBL 2.1 standards in line with ZATCA specifications","status":"PASS"}],"warningMessages":[{"type":"WARNING","code":"BR-CO-17","category":"EN_16931","message":"VAT category tax amount (BT-117) = VAT category taxable amount (BT-116) x (VAT category rate (BT-119) / 100), rounded to two decimals.","status":"WARNING"},{"type":"WARNING","code":"BR-KSA-98","category":"KSA","message":"[BR-KSA-98] - The simplified invoice should be submitted within 24 hours of issuing the invoice.","status":"WARNING"}],"errorMessages":[],"status":"WARNING"},"reportingStatus":"REPORTED"}"#;

const NOT_REPORTED: &str = r#"{"validationResults":{"infoMessages":[{"type":"INFO","code":"XSD_ZATCA_VALID","category":"XSD validation","message":"Complied with UBL 2.1 standards in line with ZATCA specifications","status":"PASS"}],"warningMessages":[],"errorMessages":[{"type":"ERROR","code":"invalid-invoice-hash","category":"INVOICE_HASHING_ERRORS","message":"The invoice hash API body does not match the (calculated) Hash of the XML","status":"ERROR"},{"type":"ERROR","code":"invoiceHash_QRCODE_INVALID","category":"QRCODE_VALIDATION","message":"Invoice xml hash does not match with qr code invoice xml hash","status":"ERROR"}],"status":"ERROR"},"reportingStatus":"NOT_REPORTED"}"#;

const NOT_CLEARED: &str = r#"{"validationResults":{"infoMessages":[{"type":"INFO","code":"XSD_ZATCA_VALID","category":"XSD validation","message":"Complied with UBL 2.1 standards in line with ZATCA specifications","status":"PASS"}],"warningMessages":[],"errorMessages":[{"type":"ERROR","code":"certificate-permissions","category":"CERTIFICATE_ERRORS","message":"User only allowed to use the vat number that exists in the authentication certificate","status":"ERROR"}],"status":"ERROR"},"clearanceStatus":"NOT_CLEARED","clearedInvoice":null}"#;

const DUPLICATE_REPORTED_SWG: &str = r#"{"validationResults":{"infoMessages":[],"warningMessages":[],"errorMessages":[{"type":"ERROR","code":null,"category":null,"message":"Invoice was already Reported successfully earlier.","status":"ERROR"}],"status":"ERROR"},"reportingStatus":"NOT_REPORTED"}"#;

#[test]
fn a_reported_document_is_reported_with_its_warnings() {
    let body = r#"{"validationResults":{"infoMessages":[],"warningMessages":[],"errorMessages":[],"status":"PASS"},"reportingStatus":"REPORTED"}"#;
    assert_eq!(
        reporting(200, body).unwrap(),
        SubmissionOutcome::Reported { warnings: vec![] }
    );
    let SubmissionOutcome::Reported { warnings } = reporting(202, REPORTED_WITH_WARNINGS).unwrap()
    else {
        panic!("not reported");
    };
    assert_eq!(codes(&warnings), ["BR-CO-17", "BR-KSA-98"]);
    assert_eq!(warnings[1].category.as_deref(), Some("KSA"));
    assert_eq!(warnings[1].kind.as_deref(), Some("WARNING"));
}

#[test]
fn a_cleared_document_comes_back_decoded_with_its_warnings() {
    let xml = "<Invoice>cleared, with ZATCA's stamp</Invoice>";
    assert_eq!(
        clearance(200, &cleared_body("CLEARED", "", xml)).unwrap(),
        SubmissionOutcome::Cleared {
            cleared_xml: xml.to_owned(),
            warnings: vec![]
        }
    );
    let warning = r#"{"type":"WARNING","code":"BR-KSA-08","category":"KSA","message":"…","status":"WARNING"}"#;
    let SubmissionOutcome::Cleared { warnings, .. } =
        clearance(202, &cleared_body("CLEARED", warning, xml)).unwrap()
    else {
        panic!("not cleared");
    };
    assert_eq!(codes(&warnings), ["BR-KSA-08"]);
}

#[test]
fn a_clearance_without_the_cleared_invoice_cannot_be_read() {
    let body = r#"{"validationResults":{"status":"PASS"},"clearanceStatus":"CLEARED"}"#;
    let error = clearance(200, body).unwrap_err();
    assert!(matches!(error, FatooraError::InvalidResponse { .. }));
    assert!(error.is_retryable(), "a resend gets the copy from the 208");
    let garbled = r#"{"clearanceStatus":"CLEARED","clearedInvoice":"not base64!"}"#;
    assert!(matches!(
        clearance(200, garbled),
        Err(FatooraError::InvalidResponse { .. })
    ));
}

#[test]
fn a_clearance_duplicate_is_already_accepted_with_the_cleared_invoice_when_it_has_one() {
    let xml = "<Invoice>first answer's copy</Invoice>";
    let warning = r#"{"type":"WARNING","code":"Invoice-Warning","category":"Duplicate-Invoice","message":"Invoice Hash Previously submitted.","status":"WARNING"}"#;
    let body = cleared_body("CLEARED", warning, xml);
    for code in [208, 409] {
        assert_eq!(
            clearance(code, &body).unwrap(),
            SubmissionOutcome::AlreadyAccepted {
                cleared_xml: Some(xml.to_owned())
            }
        );
    }
    assert_eq!(
        clearance(409, r#"{"message":"Invoice Hash Previously Submitted"}"#).unwrap(),
        SubmissionOutcome::AlreadyAccepted { cleared_xml: None }
    );
    assert_eq!(
        clearance(208, "").unwrap(),
        SubmissionOutcome::AlreadyAccepted { cleared_xml: None }
    );
}

#[test]
fn a_reporting_duplicate_is_already_accepted_though_its_body_says_not_reported() {
    let live = r#"{"validationResults":{"infoMessages":[],"warningMessages":[],"errorMessages":[{"type":"ERROR","code":"Invoice-Errors","category":"Duplicate-Invoice","message":"Invoice was already reported successfully earlier.","status":"ERROR"}],"status":"ERROR"},"reportingStatus":"NOT_REPORTED"}"#;
    let paraphrased = r#"{"message":"Invoice Hash Previously Submitted","reportingStatus":"REPORTED_SUCCESSFULLY_EARLIER"}"#;
    for body in [DUPLICATE_REPORTED_SWG, live, paraphrased] {
        assert_eq!(
            reporting(409, body).unwrap(),
            SubmissionOutcome::AlreadyAccepted { cleared_xml: None }
        );
    }
}

#[test]
fn a_rejected_document_carries_zatcas_errors_and_warnings() {
    let SubmissionOutcome::Rejected { errors, warnings } = reporting(400, NOT_REPORTED).unwrap()
    else {
        panic!("not rejected");
    };
    assert_eq!(
        codes(&errors),
        ["invalid-invoice-hash", "invoiceHash_QRCODE_INVALID"]
    );
    assert!(warnings.is_empty());
    let SubmissionOutcome::Rejected { errors, .. } = clearance(400, NOT_CLEARED).unwrap() else {
        panic!("not rejected");
    };
    assert_eq!(codes(&errors), ["certificate-permissions"]);
    assert_eq!(
        errors[0].to_string(),
        "certificate-permissions: User only allowed to use the vat number that exists in the authentication certificate"
    );
}

#[test]
fn a_standard_document_sent_to_reporting_is_rejected() {
    let body = r#"{"validationResults":{"infoMessages":[],"warningMessages":[],"errorMessages":[{"type":"ERROR","code":"XML-INVOICE-ERROR","category":"…","message":"XML Submitted using reporting API is not a simplified document","status":"ERROR"}],"status":"ERROR"},"reportingStatus":"NOT_REPORTED"}"#;
    let SubmissionOutcome::Rejected { errors, .. } = reporting(400, body).unwrap() else {
        panic!("not rejected");
    };
    assert_eq!(codes(&errors), ["XML-INVOICE-ERROR"]);
}

#[test]
fn the_bodys_status_decides_when_it_disagrees_with_the_http_code() {
    let not_cleared_with_200 = clearance(200, NOT_CLEARED).unwrap();
    assert!(
        matches!(&not_cleared_with_200, SubmissionOutcome::Rejected { errors, .. } if errors.len() == 1),
        "{not_cleared_with_200:?}"
    );
    let reported_with_400 =
        r#"{"validationResults":{"status":"PASS"},"reportingStatus":"REPORTED"}"#;
    assert_eq!(
        reporting(400, reported_with_400).unwrap(),
        SubmissionOutcome::Reported { warnings: vec![] }
    );
    // No status in the body: the HTTP code decides.
    assert_eq!(
        reporting(200, "").unwrap(),
        SubmissionOutcome::Reported { warnings: vec![] }
    );
    let errors_only =
        r#"{"validationResults":{"errorMessages":[{"code":"BR-KSA-26"}],"status":"ERROR"}}"#;
    assert!(matches!(
        reporting(400, errors_only).unwrap(),
        SubmissionOutcome::Rejected { .. }
    ));
}

#[test]
fn a_400_without_validation_results_refuses_the_request_not_the_document() {
    let error = clearance(
        400,
        r#"{"code":"Invalid-Request","message":"System failed to process your request"}"#,
    )
    .unwrap_err();
    assert!(error.has_code("Invalid-Request"), "{error:?}");
    assert!(!error.is_retryable());
}

#[test]
fn clearance_switched_off_is_its_own_outcome_and_a_303_on_reporting_is_unexpected() {
    let body = r#"{"message":"Clearance is deactivated. Please use the /invoices/reporting/single endpoint instead."}"#;
    assert_eq!(
        clearance(303, body).unwrap(),
        SubmissionOutcome::ClearanceSwitchedOff
    );
    assert_eq!(
        reporting(303, body).unwrap_err(),
        FatooraError::UnexpectedStatus { status: 303 }
    );
}

#[test]
fn a_401_is_unauthorized_on_both_endpoints() {
    let body = r#"{"timestamp":1654514661409,"status":401,"error":"Unauthorized","message":""}"#;
    assert_eq!(
        clearance(401, body).unwrap(),
        SubmissionOutcome::Unauthorized
    );
    assert_eq!(
        reporting(401, body).unwrap(),
        SubmissionOutcome::Unauthorized
    );
}

#[test]
fn not_received_statuses_are_retried_later_each_with_its_reason() {
    let server_error = r#"{"category":"HTTP-Errors","code":"500","message":"Something went wrong and caused an Internal Server Error."}"#;
    for (code, reason) in [
        (500, RetryReason::ServerError { status: 500 }),
        (502, RetryReason::ServerError { status: 502 }),
        (503, RetryReason::ServerError { status: 503 }),
        (504, RetryReason::ServerError { status: 504 }),
        (429, RetryReason::RateLimited),
        (413, RetryReason::PayloadTooLarge),
        (408, RetryReason::TimedOut),
    ] {
        for classify in [clearance, reporting] {
            assert_eq!(
                classify(code, server_error).unwrap(),
                SubmissionOutcome::RetryLater {
                    reason: reason.clone()
                },
                "{code}"
            );
        }
    }
}

#[test]
fn a_wrong_api_version_is_refused_with_zatcas_sentence() {
    let error = reporting(
        406,
        "This Version is not supported or not provided in the header.",
    )
    .unwrap_err();
    assert_eq!(
        error,
        FatooraError::Refused {
            status: 406,
            errors: vec![ErrorEntry {
                code: None,
                message: Some(
                    "This Version is not supported or not provided in the header.".to_owned()
                )
            }]
        }
    );
    assert_eq!(
        clearance(201, "{}").unwrap_err(),
        FatooraError::UnexpectedStatus { status: 201 }
    );
}

#[test]
fn the_schemas_misspelt_error_list_and_a_single_info_object_are_read() {
    let body = r#"{"validationResults":{"infoMessages":{"type":"INFO","code":"XSD_ZATCA_VALID","status":"PASS"},"warningMessages":null,"erroMessages":[{"type":"ERROR","code":"BR-KSA-26","category":"KSA","message":"PIH","status":"ERROR"}],"status":"ERROR"},"reportingStatus":"NOT_REPORTED"}"#;
    let SubmissionOutcome::Rejected { errors, warnings } = reporting(400, body).unwrap() else {
        panic!("not rejected");
    };
    assert_eq!(codes(&errors), ["BR-KSA-26"]);
    assert!(warnings.is_empty());
    let check = classify_compliance_check(status(400), body.as_bytes()).unwrap();
    assert_eq!(codes(&check.validation.info), ["XSD_ZATCA_VALID"]);
    assert!(!check.passed);
}

#[test]
fn long_message_lists_are_cut() {
    let message = r#"{"type":"WARNING","code":"W","status":"WARNING"}"#;
    let many = vec![message; MAX_MESSAGES_PER_LIST + 5].join(",");
    let body = format!(
        r#"{{"validationResults":{{"warningMessages":[{many}],"status":"WARNING"}},"reportingStatus":"REPORTED"}}"#
    );
    let SubmissionOutcome::Reported { warnings } = reporting(202, &body).unwrap() else {
        panic!("not reported");
    };
    assert_eq!(warnings.len(), MAX_MESSAGES_PER_LIST);
}

#[test]
fn compliance_checks_pass_or_fail_by_the_status_of_the_documents_kind() {
    let simplified_pass = format!(
        r#"{{"validationResults":{{"infoMessages":[{XSD_INFO}],"warningMessages":[],"errorMessages":[],"status":"PASS"}},"reportingStatus":"REPORTED","clearanceStatus":null,"qrSellertStatus":null,"qrBuyertStatus":null}}"#
    );
    let standard_pass = simplified_pass
        .replace(
            r#""reportingStatus":"REPORTED""#,
            r#""reportingStatus":null"#,
        )
        .replace(
            r#""clearanceStatus":null"#,
            r#""clearanceStatus":"CLEARED""#,
        );
    let standard_credit_failed = r#"{"validationResults":{"infoMessages":[{"type":"INFO","code":"XSD_ZATCA_VALID","category":"XSD validation","message":"Complied with UBL 2.1 standards in line with ZATCA specifications","status":"PASS"}],"warningMessages":[],"errorMessages":[{"type":"ERROR","code":"BR-CO-15","category":"EN_16931","message":"Invoice total amount with VAT (BT-112) ","status":"ERROR"},{"type":"ERROR","code":"BR-CO-14","category":"EN_16931","message":"Invoice total VAT amount (BT-110) ","status":"ERROR"}],"status":"ERROR"},"reportingStatus":null,"clearanceStatus":"NOT_CLEARED","qrSellertStatus":null,"qrBuyertStatus":null}"#;
    for body in [&simplified_pass, &standard_pass] {
        let check = classify_compliance_check(status(200), body.as_bytes()).unwrap();
        assert!(check.passed);
        assert_eq!(check.validation.status.as_deref(), Some("PASS"));
    }
    let failed = classify_compliance_check(status(400), standard_credit_failed.as_bytes()).unwrap();
    assert!(!failed.passed);
    assert_eq!(codes(&failed.validation.errors), ["BR-CO-15", "BR-CO-14"]);
    assert!(matches!(
        classify_compliance_check(status(503), b""),
        Err(FatooraError::RetryLater { .. })
    ));
    assert_eq!(
        classify_compliance_check(status(401), b"{}"),
        Err(FatooraError::Unauthorized)
    );
}

/// ZATCA's SDK test certificate as a `binarySecurityToken` (base64 of its base64 DER text),
/// the form of the Swagger's production CSID example, built from the shared sample.
fn sdk_token() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/zatca_samples/zatca_sdk_test_cert.pem"
    );
    let pem = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let certificate = zatca::Certificate::from_pem(&pem).unwrap();
    BASE64.encode(certificate.base64_der())
}

const SECRET: &str = "CkYsEXfV8c1gFHAtFWoZv73pGMvh/Qyo4LzKM2h/8Hg=";

fn csid_body(disposition: &str) -> String {
    let token = sdk_token();
    format!(
        r#"{{"requestID":1234567890123,"tokenType":"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3","dispositionMessage":"{disposition}","binarySecurityToken":"{token}","secret":"{SECRET}","errors":null}}"#
    )
}

#[test]
fn an_issued_csid_gives_credentials_whose_certificate_is_the_token() {
    let credentials = issued_credentials(status(200), csid_body("ISSUED").as_bytes()).unwrap();
    assert_eq!(credentials.request_id, RequestId::new("1234567890123"));
    assert_eq!(credentials.binary_security_token, sdk_token());
    assert_eq!(credentials.secret.expose(), SECRET);
    let certificate = credentials.certificate().unwrap();
    assert_eq!(
        certificate.issuer_name(),
        "CN=PRZEINVOICESCA4-CA, DC=extgazt, DC=gov, DC=local"
    );
    let with_text_id = csid_body("ISSUED").replace("1234567890123", r#""1642424139872""#);
    assert_eq!(
        issued_credentials(status(200), with_text_id.as_bytes())
            .unwrap()
            .request_id,
        RequestId::new("1642424139872")
    );
}

#[test]
fn a_csid_not_issued_is_an_error_even_with_200() {
    assert_eq!(
        issued_credentials(status(200), csid_body("NOT_COMPLIANT").as_bytes()).unwrap_err(),
        FatooraError::NotIssued {
            disposition_message: Some("NOT_COMPLIANT".to_owned())
        }
    );
    assert!(matches!(
        issued_credentials(
            status(200),
            br#"{"requestID":1,"dispositionMessage":"ISSUED"}"#
        ),
        Err(FatooraError::InvalidResponse { .. })
    ));
}

#[test]
fn onboarding_refusals_are_read_in_both_of_zatcas_error_shapes() {
    let wrapped = r#"{"errors":[{"code":"Missing-ComplianceSteps","message":"Compliance steps for this CSID are not yet complete"}]}"#;
    let flat = r#"{"code":"Missing-ComplianceSteps","message":"The compliance certificate is not done with the following compliance steps yet [standard-compliant,standard-credit-note-compliant,standard-debit-note-compliant,simplified-compliant,simplified-credit-note-compliant,simplified-debit-note-compliant]"}"#;
    for body in [wrapped, flat] {
        let error = issued_credentials(status(400), body.as_bytes()).unwrap_err();
        assert!(error.has_code("Missing-ComplianceSteps"), "{error:?}");
        assert!(!error.is_retryable());
    }
    let invalid_otp = r#"{"code":"Invalid-OTP","message":"The provided OTP is invalid"}"#;
    let error = issued_credentials(status(400), invalid_otp.as_bytes()).unwrap_err();
    assert!(error.has_code("Invalid-OTP"));
    assert_eq!(
        error.to_string(),
        "Fatoora refused the request with HTTP 400: Invalid-OTP: The provided OTP is invalid"
    );
    let server = r#"{"code":"Invalid-Request","message":"System failed to process your request"}"#;
    assert_eq!(
        issued_credentials(status(500), server.as_bytes()).unwrap_err(),
        FatooraError::RetryLater {
            reason: RetryReason::ServerError { status: 500 }
        }
    );
    assert_eq!(
        issued_credentials(status(401), b"{}").unwrap_err(),
        FatooraError::Unauthorized
    );
}

#[test]
fn a_renewal_not_compliant_yet_is_read_from_inside_value() {
    let token = sdk_token();
    let body = format!(
        r#"{{"value":{{"requestID":1234567890123,"tokenType":null,"dispositionMessage":"NOT_COMPLIANT","binarySecurityToken":"{token}","secret":"{SECRET}","errors":null}}}}"#
    );
    let credentials = CsidAnswer::parse(body.as_bytes())
        .unwrap()
        .into_credentials()
        .unwrap();
    assert_eq!(credentials.request_id.as_str(), "1234567890123");
    assert_eq!(credentials.binary_security_token, token);
}

#[test]
fn the_request_id_goes_back_as_a_number_when_it_is_one() {
    assert_eq!(
        RequestId::new("1234567890123").to_json(),
        serde_json::json!(1_234_567_890_123_u64)
    );
    assert_eq!(RequestId::new("0123").to_json(), serde_json::json!("0123"));
    assert_eq!(RequestId::new("abc").to_json(), serde_json::json!("abc"));
}

#[test]
fn neither_the_secret_nor_the_token_shows_in_debug_output_or_errors() {
    let token = sdk_token();
    let credentials = issued_credentials(status(200), csid_body("ISSUED").as_bytes()).unwrap();
    let debug = format!("{credentials:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains(&token[..40]),
        "{debug}"
    );
    assert!(debug.contains("1234567890123"));
    // A malformed answer whose secret has the wrong type: serde would quote the value.
    let malformed = format!(
        r#"{{"requestID":{{"not":"a number"}},"dispositionMessage":"ISSUED","binarySecurityToken":"{token}","secret":"{SECRET}"}}"#
    );
    let error = issued_credentials(status(200), malformed.as_bytes()).unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(
        !text.contains(SECRET) && !text.contains(&token[..40]),
        "{text}"
    );
    let typed_wrong = format!(r#"{{"dispositionMessage":"ISSUED","secret":{{"x":"{SECRET}"}}}}"#);
    let error = issued_credentials(status(200), typed_wrong.as_bytes()).unwrap_err();
    assert!(!format!("{error} {error:?}").contains(SECRET));
}

#[test]
fn a_base_url_that_is_not_http_is_refused() {
    for base_url in ["ftp://gw-fatoora.zatca.gov.sa", "not a url"] {
        assert!(matches!(
            FatooraClient::new(&FatooraConfig::with_base_url(base_url)),
            Err(FatooraError::Configuration { .. })
        ));
    }
    let client = FatooraClient::new(&FatooraConfig::new(FatooraEnvironment::Simulation)).unwrap();
    assert_eq!(
        client.base_url,
        "https://gw-fatoora.zatca.gov.sa/e-invoicing/simulation"
    );
}
