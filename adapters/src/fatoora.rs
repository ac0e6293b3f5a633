//! ZATCA's e-invoicing API (Fatoora), the online half of Phase 2: onboarding an EGS unit
//! (compliance CSID, compliance checks, production CSID, renewal) and submitting its signed
//! documents (clearance of standard documents, reporting of simplified ones). The documents
//! themselves are written, hashed and stamped offline by the `zatca` crate; this module only
//! carries them. The facts it relies on, and what was found about Fatoora's behaviour, are
//! summarised in `docs/zatca.md`; the decisions taken where the sources disagree or are
//! uncertain are marked **Decision** below.
//!
//! # Requests
//!
//! Every request carries `Accept-Version: V2` (anything else is a 406), `Accept-Language: en`
//! (ZATCA's messages in English) and JSON bodies. Every call except `POST /compliance` is
//! authenticated with HTTP Basic: the `binarySecurityToken` exactly as ZATCA returned it as the
//! user name, the `secret` as the password. The OTP (`POST /compliance`, `PATCH
//! /production/csids`) goes in an `OTP` header. Clearance sends `Clearance-Status: 1` and
//! reporting `Clearance-Status: 0`, as ZATCA's Swagger shows (a `0` on clearance has been seen
//! to earn a 303). Redirects are not followed, so the credentials never leave the configured
//! host and a 303 reaches the classification below.
//!
//! # What a submission's answer means ([`SubmissionOutcome`])
//!
//! | answer | outcome |
//! |---|---|
//! | 200 or 202, `CLEARED` with `clearedInvoice` (clearance) | [`SubmissionOutcome::Cleared`] with the decoded XML and the warnings |
//! | 200 or 202, `REPORTED` (reporting) | [`SubmissionOutcome::Reported`] with the warnings |
//! | 208, or 409 (either endpoint) | [`SubmissionOutcome::AlreadyAccepted`], with the cleared XML when the body has it |
//! | 400 with validation results, `NOT_CLEARED` / `NOT_REPORTED` | [`SubmissionOutcome::Rejected`] with the errors and warnings |
//! | 303 (clearance) | [`SubmissionOutcome::ClearanceSwitchedOff`] |
//! | 401 | [`SubmissionOutcome::Unauthorized`] |
//! | timeout, refused connection, cut-off answer, 408, 413, 429, 5xx | [`SubmissionOutcome::RetryLater`] with a [`RetryReason`] |
//! | 400 without validation results, 406, any other status, an unreadable 200 on clearance | a [`FatooraError`] |
//!
//! What the caller does with each: a document is persisted (its exact signed bytes) before it
//! is first sent, and is only ever resent byte for byte. `Cleared`, `Reported` and
//! `AlreadyAccepted` are final successes: ZATCA keys duplicates on the invoice hash for 24
//! hours and answers 208/409 only when the first submission was accepted, so a resend after a
//! lost answer is the only status lookup there is. `Rejected` is final: the correction is a new
//! document with the next ICV. `Unauthorized` is a credentials problem, not a verdict on the
//! document: fix the credentials and resend the same document. `RetryLater` means ZATCA did
//! not take the document: resend the same bytes after a backoff. `ClearanceSwitchedOff` is
//! ZATCA's disaster switch: the document may then go through reporting, and only then.
//!
//! **413, payload too large**, is "invoice not received" in ZATCA's table, so it is a
//! [`RetryReason::PayloadTooLarge`]: nothing was accepted, and the same bytes are the only
//! thing that may be sent for that document (re-rendering it smaller would make a second
//! invoice with the same number). Unlike the others it will not clear up by itself unless the
//! limit was a passing one at ZATCA's gateway, so the caller should back off for long and raise
//! an alert rather than retry at the usual pace; the lasting fix is upstream, in keeping
//! documents small when they are issued.
//!
//! **Decision: the body's status decides over the HTTP code.** For a 200, 202 or 400 the
//! endpoint's own field (`clearanceStatus` for clearance, `reportingStatus` for reporting)
//! decides between accepted and rejected when it holds a known value; the HTTP code decides
//! only when the field is missing, null or unknown. So a 200 carrying `NOT_CLEARED` is
//! `Rejected` (there is no cleared invoice to hand the buyer, and one implementation reports
//! seeing exactly that), and a 400 carrying `REPORTED` is `Reported`. Two exceptions, where the
//! code is the documented meaning and the body is known to say otherwise: 208 and 409 are
//! always `AlreadyAccepted` (ZATCA's own 409 body says `NOT_REPORTED`), and a 400 whose body
//! has neither validation results nor a status is the request refused before any document was
//! judged, a [`FatooraError::Refused`], not a rejection of the document.
//!
//! **Decision: 409 on clearance** is `AlreadyAccepted` like 208, since one implementation
//! reports ZATCA moved clearance duplicates to 409; and a duplicate answer without
//! `clearedInvoice` is still `AlreadyAccepted` (with `cleared_xml: None`): the caller keeps the
//! cleared invoice of the first answer, which is the legal copy.
//!
//! **Decision: 303 on reporting** is a [`FatooraError::UnexpectedStatus`]: the one account of a
//! reporting 303 is unverified, and it would not mean "clearance switched off".
//!
//! # Onboarding answers
//!
//! The CSID calls answer [`Credentials`] or a [`FatooraError`]: 400 (`Invalid-OTP`,
//! `Missing-ComplianceSteps`, in either of ZATCA's two error shapes) and 406 are
//! [`FatooraError::Refused`], 401 is [`FatooraError::Unauthorized`], the transient statuses
//! above are [`FatooraError::RetryLater`], and a 200 whose `dispositionMessage` is not
//! `ISSUED` is [`FatooraError::NotIssued`]. A renewal answered 428 gives
//! [`Renewal::NotCompliantYet`]: the new certificate is a compliance CSID that must pass the
//! compliance checks before a production CSID is asked for with its request id.
//!
//! **Decision: `compliance_request_id`** is sent as a JSON number when the `requestID` is all
//! digits (ZATCA returns a number, and the clients tested live send it back as one), else as
//! the string received. ZATCA's Swagger example shows a string; both are reported to work.
//!
//! # Secrets
//!
//! The OTP and the CSID secret live in [`Secret`]s and go only into request headers, which are
//! marked sensitive. The `binarySecurityToken` is the certificate (every signed invoice embeds
//! it) but is treated like the secret it is paired with: [`Credentials`]' `Debug` leaves both
//! out, and no error carries either: an error keeps only the codes and messages of ZATCA's
//! error bodies (which hold no credentials), never a CSID answer's text (a `serde` error could
//! quote a value from it, so only its kind and position are kept). This module logs nothing.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::header::{HeaderValue, ACCEPT, ACCEPT_LANGUAGE};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zatca::InvoiceHash;

use crate::webhooks::Secret;

mod answers;
#[cfg(test)]
mod tests;

use answers::{
    classify_compliance_check, classify_submission, invalid, issued_credentials, CsidAnswer,
};

/// The longest one request to Fatoora may take, connecting included. ZATCA answers in a second
/// or two when it is well; during its incidents requests have hung for minutes. A submission
/// that has not been answered after this long is treated as not received and resent, byte for
/// byte, later (safe: a duplicate of an accepted document is answered 208/409).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The largest answer read. A cleared invoice is the submitted document plus ZATCA's stamp and
/// QR, a few KiB over the document, and a document has at most `zatca::document::MAX_LINES`
/// lines (well under 4 MiB even base64-encoded); anything larger is not an answer we can use.
pub const MAX_RESPONSE_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Validation messages kept per list. ZATCA returns a handful; a document that breaks more
/// rules than this has enough to fix already, and the lists are stored with the outcome.
pub const MAX_MESSAGES_PER_LIST: usize = 100;

/// Characters kept of a plain-text error body (the 406 answer is one sentence).
pub const MAX_ERROR_TEXT_CHARS: usize = 500;

/// The API version every request asks for; ZATCA answers 406 to anything else.
pub const ACCEPT_VERSION: &str = "V2";

/// The language of ZATCA's messages (`en` or `ar`).
pub const MESSAGE_LANGUAGE: &str = "en";

/// Which of ZATCA's environments to talk to; an onboarding in one is worth nothing in another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatooraEnvironment {
    /// The developer portal (integration sandbox): OTP `123345`, fixed certificates, no
    /// compliance gate before the production CSID.
    DeveloperPortal,
    /// Simulation: a real onboarding from the Fatoora portal's simulation mode, gate enforced.
    Simulation,
    /// Production ("core").
    Production,
}

impl FatooraEnvironment {
    /// The base URL every path hangs off.
    pub fn base_url(self) -> &'static str {
        match self {
            FatooraEnvironment::DeveloperPortal => {
                "https://gw-fatoora.zatca.gov.sa/e-invoicing/developer-portal"
            }
            FatooraEnvironment::Simulation => {
                "https://gw-fatoora.zatca.gov.sa/e-invoicing/simulation"
            }
            FatooraEnvironment::Production => "https://gw-fatoora.zatca.gov.sa/e-invoicing/core",
        }
    }
}

/// How to reach Fatoora; from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatooraConfig {
    /// Where the API lives: an environment's [`FatooraEnvironment::base_url`], or a test's fake.
    pub base_url: String,
    /// The longest one request may take.
    pub timeout: Duration,
}

impl FatooraConfig {
    /// `environment` with [`DEFAULT_TIMEOUT`].
    pub fn new(environment: FatooraEnvironment) -> FatooraConfig {
        FatooraConfig::with_base_url(environment.base_url())
    }

    /// An explicit base URL (a fake in tests) with [`DEFAULT_TIMEOUT`].
    pub fn with_base_url(base_url: impl Into<String>) -> FatooraConfig {
        FatooraConfig {
            base_url: base_url.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// ZATCA's `requestID` for an issued CSID: what the production CSID is asked for with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub fn new(value: impl Into<String>) -> RequestId {
        RequestId(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// As sent in `compliance_request_id`: a number when it is one (see the module docs).
    fn to_json(&self) -> Value {
        match self.0.parse::<u64>() {
            Ok(number) if !self.0.starts_with('0') || self.0 == "0" => Value::from(number),
            _ => Value::from(self.0.clone()),
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(u64),
            Text(String),
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Number(number) => RequestId(number.to_string()),
            Form::Text(text) => RequestId(text),
        })
    }
}

/// A CSID as the API issues it: a compliance CSID (for compliance checks and for asking for
/// the production CSID) or a production CSID (for clearance, reporting and renewal).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub request_id: RequestId,
    /// The certificate as the API returns it (base64 of the base64 DER text), and the Basic
    /// auth user name exactly as is.
    pub binary_security_token: String,
    /// The Basic auth password.
    pub secret: Secret,
}

impl Credentials {
    /// The certificate the unit stamps its documents with.
    pub fn certificate(&self) -> Result<zatca::Certificate, zatca::CertificateError> {
        zatca::Certificate::from_binary_security_token(&self.binary_security_token)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("request_id", &self.request_id)
            .field("binary_security_token", &"[redacted]")
            .field("secret", &self.secret)
            .finish()
    }
}

/// The answer to a renewal (`PATCH /production/csids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// A new production CSID.
    Issued(Credentials),
    /// 428: the renewed certificate is a compliance CSID that has not passed the compliance
    /// checks yet. Run them with it, then ask for the production CSID with its request id.
    NotCompliantYet(Credentials),
}

/// One entry of `validationResults` (`{type, code, category, message, status}`). Every field
/// is optional: ZATCA's own 409 example has `code` and `category` null, and nothing here is
/// relied on to classify an answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ValidationMessage {
    /// `INFO`, `WARNING` or `ERROR`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The rule (`BR-KSA-98`, `invalid-invoice-hash`, `XSD_ZATCA_VALID`).
    #[serde(default)]
    pub code: Option<String>,
    /// `KSA`, `EN_16931`, `INVOICE_HASHING_ERRORS`, `CERTIFICATE_ERRORS`, …
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// `PASS`, `WARNING` or `ERROR`.
    #[serde(default)]
    pub status: Option<String>,
}

impl fmt::Display for ValidationMessage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code.as_deref().unwrap_or("-");
        let message = self.message.as_deref().unwrap_or("");
        write!(formatter, "{code}: {message}")
    }
}

/// ZATCA's `validationResults`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationResults {
    pub info: Vec<ValidationMessage>,
    pub warnings: Vec<ValidationMessage>,
    pub errors: Vec<ValidationMessage>,
    /// `PASS`, `WARNING` or `ERROR`.
    pub status: Option<String>,
}

/// A message list as ZATCA writes it: an array, or (seen defended against) a single object.
#[derive(Deserialize)]
#[serde(untagged)]
enum MessageList {
    Many(Vec<ValidationMessage>),
    One(ValidationMessage),
}

impl MessageList {
    fn into_bounded(list: Option<MessageList>) -> Vec<ValidationMessage> {
        let mut messages = match list {
            None => Vec::new(),
            Some(MessageList::Many(messages)) => messages,
            Some(MessageList::One(message)) => vec![message],
        };
        messages.truncate(MAX_MESSAGES_PER_LIST);
        messages
    }
}

#[derive(Deserialize)]
struct RawValidationResults {
    #[serde(default, rename = "infoMessages")]
    info: Option<MessageList>,
    #[serde(default, rename = "warningMessages")]
    warnings: Option<MessageList>,
    /// The Swagger schema misspells it `erroMessages` (and, in an older model, `erros`); live
    /// answers say `errorMessages`. Any one of them is read.
    #[serde(
        default,
        rename = "errorMessages",
        alias = "erroMessages",
        alias = "erros"
    )]
    errors: Option<MessageList>,
    #[serde(default)]
    status: Option<String>,
}

impl From<RawValidationResults> for ValidationResults {
    fn from(raw: RawValidationResults) -> ValidationResults {
        ValidationResults {
            info: MessageList::into_bounded(raw.info),
            warnings: MessageList::into_bounded(raw.warnings),
            errors: MessageList::into_bounded(raw.errors),
            status: raw.status,
        }
    }
}

/// The answer to a compliance check (`POST /compliance/invoices`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceCheck {
    /// Whether the document passed (ZATCA counts the step as done).
    pub passed: bool,
    pub validation: ValidationResults,
}

/// What became of a submitted document; see the module docs for the table and what the caller
/// does with each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmissionOutcome {
    /// Cleared (200, or 202 with warnings): `cleared_xml` is ZATCA's stamped copy, the one the
    /// buyer gets, decoded from `clearedInvoice`. Its invoice hash is the submitted one.
    Cleared {
        cleared_xml: String,
        warnings: Vec<ValidationMessage>,
    },
    /// Reported (200, or 202 with warnings).
    Reported { warnings: Vec<ValidationMessage> },
    /// A duplicate of a document ZATCA accepted within the last 24 hours (208, 409): the
    /// first submission was accepted. Clearance duplicates may carry the cleared invoice.
    AlreadyAccepted { cleared_xml: Option<String> },
    /// Rejected (400, `NOT_CLEARED` / `NOT_REPORTED`): final for this document.
    Rejected {
        errors: Vec<ValidationMessage>,
        warnings: Vec<ValidationMessage>,
    },
    /// 303: ZATCA has switched clearance off; standard documents go through reporting.
    ClearanceSwitchedOff,
    /// 401: the credentials were refused; fix them and resend the same document.
    Unauthorized,
    /// ZATCA did not take the document; resend the same bytes later.
    RetryLater { reason: RetryReason },
}

/// Why a request is worth sending again later, unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryReason {
    /// No answer within the timeout (or a 408 from ZATCA's gateway).
    #[error("timed out")]
    TimedOut,
    /// No connection, or the answer was cut off.
    #[error("unreachable: {detail}")]
    Unreachable { detail: String },
    /// 429.
    #[error("rate limited (HTTP 429)")]
    RateLimited,
    /// 413: see the module docs; back off for long and alert.
    #[error("payload too large (HTTP 413)")]
    PayloadTooLarge,
    /// 5xx.
    #[error("server error (HTTP {status})")]
    ServerError { status: u16 },
}

/// One entry of ZATCA's error bodies (`{"errors":[{code,message}]}` or flat `{code,message}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ErrorEntry {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl fmt::Display for ErrorEntry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => write!(formatter, "{code}: {message}"),
            (Some(text), None) | (None, Some(text)) => formatter.write_str(text),
            (None, None) => formatter.write_str("no message"),
        }
    }
}

/// Why a call did not give what was asked. No variant carries a secret, an OTP or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FatooraError {
    /// ZATCA read the request and refused it (400 `Invalid-OTP`, `Missing-ComplianceSteps`,
    /// 406, other 4xx): sending it again gives the same answer.
    #[error("Fatoora refused the request with HTTP {status}: {}", summary(errors))]
    Refused {
        status: u16,
        errors: Vec<ErrorEntry>,
    },
    /// 401: the credentials (or, on `POST /compliance`, nothing) were refused.
    #[error("Fatoora refused the credentials (HTTP 401)")]
    Unauthorized,
    /// A CSID answer whose `dispositionMessage` is not `ISSUED`.
    #[error("Fatoora did not issue the CSID: dispositionMessage {disposition_message:?}")]
    NotIssued { disposition_message: Option<String> },
    /// ZATCA did not take the request; send it again later.
    #[error("Fatoora is unavailable: {reason}")]
    RetryLater { reason: RetryReason },
    /// An answer that is not what the API documents. ZATCA may have acted on the request: a
    /// submission is resent unchanged (a duplicate answer then tells).
    #[error("Fatoora's answer cannot be read: {reason}")]
    InvalidResponse { reason: String },
    /// A status this client has no meaning for (a redirect, 2xx other than 200/202, …).
    #[error("Fatoora answered with the unexpected HTTP {status}")]
    UnexpectedStatus { status: u16 },
    /// The client or a request cannot be built (a base URL that is not http(s), an OTP that
    /// is not a header value).
    #[error("invalid Fatoora client configuration: {reason}")]
    Configuration { reason: String },
}

impl FatooraError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FatooraError::RetryLater { .. } | FatooraError::InvalidResponse { .. }
        )
    }

    /// Whether a refusal names `code` (`Invalid-OTP`, `Missing-ComplianceSteps`).
    pub fn has_code(&self, code: &str) -> bool {
        matches!(self, FatooraError::Refused { errors, .. }
            if errors.iter().any(|entry| entry.code.as_deref() == Some(code)))
    }
}

fn summary(errors: &[ErrorEntry]) -> String {
    if errors.is_empty() {
        return "no message".to_owned();
    }
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A client of Fatoora in one environment; cheap to share (`Arc`), safe to call concurrently.
/// Credentials are passed with each call, since one client serves every EGS unit.
#[derive(Debug)]
pub struct FatooraClient {
    base_url: String,
    http: reqwest::Client,
}

/// The two submission endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Submission {
    Clearance,
    Reporting,
}

impl Submission {
    fn path(self) -> &'static str {
        match self {
            Submission::Clearance => "/invoices/clearance/single",
            Submission::Reporting => "/invoices/reporting/single",
        }
    }

    fn clearance_status_header(self) -> &'static str {
        match self {
            Submission::Clearance => "1",
            Submission::Reporting => "0",
        }
    }
}

impl FatooraClient {
    /// A client for `config`; fails when the base URL is not an http(s) URL.
    pub fn new(config: &FatooraConfig) -> Result<FatooraClient, FatooraError> {
        let configuration = |reason: String| FatooraError::Configuration { reason };
        match reqwest::Url::parse(&config.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            Ok(_) => {
                return Err(configuration(
                    "the base URL must be http(s) with a host".into(),
                ))
            }
            Err(error) => return Err(configuration(format!("the base URL is not a URL: {error}"))),
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("revledger/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| configuration(format!("cannot build the HTTP client: {error}")))?;
        Ok(FatooraClient {
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// `POST /compliance`: a compliance CSID for the unit's CSR (base64 of its PEM text,
    /// `zatca::csr::Csr::base64_pem`), with the OTP from the Fatoora portal.
    pub async fn compliance_csid(
        &self,
        csr_pem_base64: &str,
        otp: &Secret,
    ) -> Result<Credentials, FatooraError> {
        let request = self
            .request(Method::POST, "/compliance")
            .header("OTP", sensitive(otp)?)
            .json(&serde_json::json!({ "csr": csr_pem_base64 }));
        let (status, body) = self.send(request).await?;
        issued_credentials(status, &body)
    }

    /// `POST /compliance/invoices`: one compliance check of a signed document with the
    /// compliance CSID.
    pub async fn compliance_check(
        &self,
        credentials: &Credentials,
        invoice_hash: &InvoiceHash,
        uuid: &str,
        signed_xml: &str,
    ) -> Result<ComplianceCheck, FatooraError> {
        let request = self
            .request(Method::POST, "/compliance/invoices")
            .basic_auth(
                &credentials.binary_security_token,
                Some(credentials.secret.expose()),
            )
            .json(&invoice_body(invoice_hash, uuid, signed_xml));
        let (status, body) = self.send(request).await?;
        classify_compliance_check(status, &body)
    }

    /// `POST /production/csids`: the production CSID, asked for with the compliance CSID and
    /// its request id once the compliance checks have passed.
    pub async fn production_csid(
        &self,
        compliance: &Credentials,
        request_id: &RequestId,
    ) -> Result<Credentials, FatooraError> {
        let request = self
            .request(Method::POST, "/production/csids")
            .basic_auth(
                &compliance.binary_security_token,
                Some(compliance.secret.expose()),
            )
            .json(&serde_json::json!({ "compliance_request_id": request_id.to_json() }));
        let (status, body) = self.send(request).await?;
        issued_credentials(status, &body)
    }

    /// `PATCH /production/csids`: renews the production CSID with a new CSR and an OTP.
    pub async fn renew_production_csid(
        &self,
        production: &Credentials,
        csr_pem_base64: &str,
        otp: &Secret,
    ) -> Result<Renewal, FatooraError> {
        let request = self
            .request(Method::PATCH, "/production/csids")
            .basic_auth(
                &production.binary_security_token,
                Some(production.secret.expose()),
            )
            .header("OTP", sensitive(otp)?)
            .json(&serde_json::json!({ "csr": csr_pem_base64 }));
        let (status, body) = self.send(request).await?;
        if status == StatusCode::PRECONDITION_REQUIRED {
            return CsidAnswer::parse(&body)?
                .into_credentials()
                .map(Renewal::NotCompliantYet);
        }
        issued_credentials(status, &body).map(Renewal::Issued)
    }

    /// `POST /invoices/clearance/single`: clears a signed standard document with the
    /// production CSID.
    pub async fn clear(
        &self,
        credentials: &Credentials,
        invoice_hash: &InvoiceHash,
        uuid: &str,
        signed_xml: &str,
    ) -> Result<SubmissionOutcome, FatooraError> {
        self.submit(
            Submission::Clearance,
            credentials,
            invoice_hash,
            uuid,
            signed_xml,
        )
        .await
    }

    /// `POST /invoices/reporting/single`: reports a signed simplified document with the
    /// production CSID.
    pub async fn report(
        &self,
        credentials: &Credentials,
        invoice_hash: &InvoiceHash,
        uuid: &str,
        signed_xml: &str,
    ) -> Result<SubmissionOutcome, FatooraError> {
        self.submit(
            Submission::Reporting,
            credentials,
            invoice_hash,
            uuid,
            signed_xml,
        )
        .await
    }

    async fn submit(
        &self,
        submission: Submission,
        credentials: &Credentials,
        invoice_hash: &InvoiceHash,
        uuid: &str,
        signed_xml: &str,
    ) -> Result<SubmissionOutcome, FatooraError> {
        let request = self
            .request(Method::POST, submission.path())
            .basic_auth(
                &credentials.binary_security_token,
                Some(credentials.secret.expose()),
            )
            .header("Clearance-Status", submission.clearance_status_header())
            .json(&invoice_body(invoice_hash, uuid, signed_xml));
        match self.send(request).await {
            Ok((status, body)) => classify_submission(submission, status, &body),
            Err(FatooraError::RetryLater { reason }) => {
                Ok(SubmissionOutcome::RetryLater { reason })
            }
            Err(error) => Err(error),
        }
    }

    /// A request to `path` with the headers every call carries.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .header("Accept-Version", ACCEPT_VERSION)
            .header(ACCEPT_LANGUAGE, MESSAGE_LANGUAGE)
            .header(ACCEPT, "application/json")
    }

    /// Sends `request` and reads at most [`MAX_RESPONSE_BODY_BYTES`] of the answer.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), FatooraError> {
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BODY_BYTES {
                return Err(invalid(&format!(
                    "the answer is larger than {MAX_RESPONSE_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// The body of a compliance check, clearance or reporting request.
fn invoice_body(invoice_hash: &InvoiceHash, uuid: &str, signed_xml: &str) -> Value {
    serde_json::json!({
        "invoiceHash": invoice_hash.to_base64(),
        "uuid": uuid,
        "invoice": BASE64.encode(signed_xml.as_bytes()),
    })
}

/// A header value that is never printed (reqwest leaves sensitive values out of `Debug`).
fn sensitive(secret: &Secret) -> Result<HeaderValue, FatooraError> {
    let mut value =
        HeaderValue::from_str(secret.expose()).map_err(|_| FatooraError::Configuration {
            reason: "the OTP is not a valid header value".to_owned(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Transport failures (no connection, timeout, a cut-off answer) are worth retrying. The error
/// text names the kind; the URL is dropped (it carries nothing secret, but adds nothing).
fn transport_error(error: reqwest::Error) -> FatooraError {
    let reason = if error.is_timeout() {
        RetryReason::TimedOut
    } else {
        let kind = if error.is_connect() {
            "connection failed"
        } else if error.is_body() || error.is_decode() {
            "the answer was cut off"
        } else {
            "request failed"
        };
        RetryReason::Unreachable {
            detail: format!("{kind}: {}", error.without_url()),
        }
    };
    FatooraError::RetryLater { reason }
}
