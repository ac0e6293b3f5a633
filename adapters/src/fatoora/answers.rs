//! Reading Fatoora's answers: every status and body sorted into what it means (the table in
//! the parent module's docs), without I/O, so each rule is tested on ZATCA's own bodies.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::*;

/// What a submission's body says about the document, read from the endpoint's own field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Accepted,
    NotAccepted,
    Unknown,
}

/// The body of a compliance check, clearance or reporting answer.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct InvoiceAnswer {
    #[serde(default)]
    validation_results: Option<RawValidationResults>,
    #[serde(default)]
    clearance_status: Option<String>,
    #[serde(default)]
    reporting_status: Option<String>,
    #[serde(default)]
    cleared_invoice: Option<String>,
}

impl InvoiceAnswer {
    pub(super) fn verdict(&self, submission: Submission) -> Verdict {
        let (field, accepted, not_accepted) = match submission {
            Submission::Clearance => (&self.clearance_status, "CLEARED", "NOT_CLEARED"),
            Submission::Reporting => (&self.reporting_status, "REPORTED", "NOT_REPORTED"),
        };
        match field.as_deref() {
            Some(status) if status == accepted => Verdict::Accepted,
            Some(status) if status == not_accepted => Verdict::NotAccepted,
            _ => Verdict::Unknown,
        }
    }

    /// The verdict of a compliance check, whose body carries the field of the document's kind
    /// (`clearanceStatus` for standard documents, `reportingStatus` for simplified ones).
    pub(super) fn compliance_verdict(&self) -> Verdict {
        match (
            self.verdict(Submission::Clearance),
            self.verdict(Submission::Reporting),
        ) {
            (Verdict::NotAccepted, _) | (_, Verdict::NotAccepted) => Verdict::NotAccepted,
            (Verdict::Accepted, _) | (_, Verdict::Accepted) => Verdict::Accepted,
            _ => Verdict::Unknown,
        }
    }

    pub(super) fn validation(&mut self) -> ValidationResults {
        self.validation_results
            .take()
            .map(ValidationResults::from)
            .unwrap_or_default()
    }

    /// The decoded `clearedInvoice`, if the body has one.
    pub(super) fn cleared_xml(&self) -> Result<Option<String>, FatooraError> {
        let Some(encoded) = self.cleared_invoice.as_deref() else {
            return Ok(None);
        };
        let bytes = BASE64
            .decode(encoded.trim())
            .map_err(|_| invalid("clearedInvoice is not base64"))?;
        let xml =
            String::from_utf8(bytes).map_err(|_| invalid("clearedInvoice is not UTF-8 text"))?;
        Ok(Some(xml))
    }
}

/// A CSID answer (`POST /compliance`, `POST` and `PATCH /production/csids`). No `Debug`: it
/// holds the secret.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CsidAnswer {
    #[serde(default, rename = "requestID")]
    request_id: Option<RequestId>,
    #[serde(default)]
    disposition_message: Option<String>,
    #[serde(default)]
    binary_security_token: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

impl CsidAnswer {
    /// The answer, unwrapped from the `value` a 428 puts it in.
    pub(super) fn parse(body: &[u8]) -> Result<CsidAnswer, FatooraError> {
        let value: Value = parse_json(body, "the CSID answer")?;
        let value = match value {
            Value::Object(mut object) if object.contains_key("value") => {
                object.remove("value").unwrap_or(Value::Null)
            }
            other => other,
        };
        serde_json::from_value(value).map_err(|error| {
            invalid(&format!(
                "the CSID answer is not the documented shape ({:?})",
                error.classify()
            ))
        })
    }

    pub(super) fn is_issued(&self) -> bool {
        self.disposition_message.as_deref() == Some("ISSUED")
    }

    pub(super) fn into_credentials(self) -> Result<Credentials, FatooraError> {
        match (self.request_id, self.binary_security_token, self.secret) {
            (Some(request_id), Some(token), Some(secret))
                if !token.is_empty() && !secret.is_empty() =>
            {
                Ok(Credentials {
                    request_id,
                    binary_security_token: token,
                    secret: Secret::new(secret),
                })
            }
            _ => Err(invalid(
                "the CSID answer lacks requestID, binarySecurityToken or secret",
            )),
        }
    }
}

/// The statuses ZATCA documents as "not received, send again", and what each one is.
pub(super) fn retry_reason(status: StatusCode) -> Option<RetryReason> {
    match status.as_u16() {
        408 => Some(RetryReason::TimedOut),
        413 => Some(RetryReason::PayloadTooLarge),
        429 => Some(RetryReason::RateLimited),
        500..=599 => Some(RetryReason::ServerError {
            status: status.as_u16(),
        }),
        _ => None,
    }
}

/// What a submission's answer means (the part of [`FatooraClient::clear`] and
/// [`FatooraClient::report`] without I/O); the module docs hold the table.
pub(super) fn classify_submission(
    submission: Submission,
    status: StatusCode,
    body: &[u8],
) -> Result<SubmissionOutcome, FatooraError> {
    if let Some(reason) = retry_reason(status) {
        return Ok(SubmissionOutcome::RetryLater { reason });
    }
    match status.as_u16() {
        208 | 409 => {
            // The code is the meaning; the body may say NOT_REPORTED, or not be JSON.
            let answer: InvoiceAnswer = serde_json::from_slice(body).unwrap_or_default();
            let cleared_xml = answer.cleared_xml().unwrap_or(None);
            Ok(SubmissionOutcome::AlreadyAccepted { cleared_xml })
        }
        303 if submission == Submission::Clearance => Ok(SubmissionOutcome::ClearanceSwitchedOff),
        401 => Ok(SubmissionOutcome::Unauthorized),
        200 | 202 | 400 => verdict_outcome(submission, status, body),
        400..=499 => Err(refused(status, body)),
        other => Err(FatooraError::UnexpectedStatus { status: other }),
    }
}

/// The verdict of a 200, 202 or 400: the body's status first, the HTTP code when it has none.
pub(super) fn verdict_outcome(
    submission: Submission,
    status: StatusCode,
    body: &[u8],
) -> Result<SubmissionOutcome, FatooraError> {
    let answer: Option<InvoiceAnswer> = serde_json::from_slice(body).ok();
    let verdict = answer
        .as_ref()
        .map_or(Verdict::Unknown, |answer| answer.verdict(submission));
    let judged = answer
        .as_ref()
        .is_some_and(|answer| answer.validation_results.is_some() || verdict != Verdict::Unknown);
    if status == StatusCode::BAD_REQUEST && !judged {
        return Err(refused(status, body));
    }
    let accepted = match verdict {
        Verdict::Accepted => true,
        Verdict::NotAccepted => false,
        Verdict::Unknown => status.is_success(),
    };
    let mut answer = answer.unwrap_or_default();
    let validation = answer.validation();
    if !accepted {
        return Ok(SubmissionOutcome::Rejected {
            errors: validation.errors,
            warnings: validation.warnings,
        });
    }
    match submission {
        Submission::Reporting => Ok(SubmissionOutcome::Reported {
            warnings: validation.warnings,
        }),
        Submission::Clearance => match answer.cleared_xml()? {
            Some(cleared_xml) => Ok(SubmissionOutcome::Cleared {
                cleared_xml,
                warnings: validation.warnings,
            }),
            None => Err(invalid(
                "cleared without clearedInvoice; resend the same document for the copy",
            )),
        },
    }
}

/// What a compliance check's answer means: 200/202 passed, 400 with validation results not
/// passed (the body's status deciding as for submissions), anything else an error.
pub(super) fn classify_compliance_check(
    status: StatusCode,
    body: &[u8],
) -> Result<ComplianceCheck, FatooraError> {
    if let Some(reason) = retry_reason(status) {
        return Err(FatooraError::RetryLater { reason });
    }
    match status.as_u16() {
        200 | 202 | 400 => {}
        401 => return Err(FatooraError::Unauthorized),
        400..=499 => return Err(refused(status, body)),
        other => return Err(FatooraError::UnexpectedStatus { status: other }),
    }
    let answer: Option<InvoiceAnswer> = serde_json::from_slice(body).ok();
    let Some(mut answer) = answer.filter(|answer| answer.validation_results.is_some()) else {
        return if status == StatusCode::BAD_REQUEST {
            Err(refused(status, body))
        } else {
            Err(invalid(
                "the compliance check answer has no validationResults",
            ))
        };
    };
    let passed = match answer.compliance_verdict() {
        Verdict::Accepted => true,
        Verdict::NotAccepted => false,
        Verdict::Unknown => status.is_success(),
    };
    let validation = answer.validation();
    Ok(ComplianceCheck {
        passed: passed && validation.errors.is_empty(),
        validation,
    })
}

/// What a CSID answer means (compliance CSID, production CSID, a renewal other than 428).
pub(super) fn issued_credentials(
    status: StatusCode,
    body: &[u8],
) -> Result<Credentials, FatooraError> {
    if let Some(reason) = retry_reason(status) {
        return Err(FatooraError::RetryLater { reason });
    }
    match status.as_u16() {
        200 => {}
        401 => return Err(FatooraError::Unauthorized),
        400..=499 => return Err(refused(status, body)),
        other => return Err(FatooraError::UnexpectedStatus { status: other }),
    }
    let answer = CsidAnswer::parse(body)?;
    if !answer.is_issued() {
        return Err(FatooraError::NotIssued {
            disposition_message: answer.disposition_message,
        });
    }
    answer.into_credentials()
}

/// A refusal with ZATCA's error entries, read from whichever shape the body has: `errors[]`,
/// a flat `{code, message}`, `validationResults.errorMessages`, or plain text (406).
pub(super) fn refused(status: StatusCode, body: &[u8]) -> FatooraError {
    FatooraError::Refused {
        status: status.as_u16(),
        errors: error_entries(body),
    }
}

pub(super) fn error_entries(body: &[u8]) -> Vec<ErrorEntry> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorBody {
        #[serde(default)]
        errors: Option<Vec<ErrorEntry>>,
        #[serde(default)]
        code: Option<Value>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        validation_results: Option<RawValidationResults>,
    }
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        let text: String = String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(MAX_ERROR_TEXT_CHARS)
            .collect();
        return if text.is_empty() {
            Vec::new()
        } else {
            vec![ErrorEntry {
                code: None,
                message: Some(text),
            }]
        };
    };
    let mut entries = parsed.errors.unwrap_or_default();
    if let Some(results) = parsed.validation_results {
        entries.extend(
            MessageList::into_bounded(results.errors)
                .into_iter()
                .map(|message| ErrorEntry {
                    code: message.code,
                    message: message.message,
                }),
        );
    }
    if entries.is_empty() && (parsed.code.is_some() || parsed.message.is_some()) {
        let code = parsed.code.map(|code| match code {
            Value::String(text) => text,
            other => other.to_string(),
        });
        entries.push(ErrorEntry {
            code,
            message: parsed.message.filter(|message| !message.is_empty()),
        });
    }
    entries.truncate(MAX_MESSAGES_PER_LIST);
    entries
}

/// Parses JSON without ever quoting the input in the error (it may hold a secret).
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, FatooraError> {
    serde_json::from_slice(body).map_err(|error| {
        invalid(&format!(
            "{what} is not JSON of the documented shape ({:?} at line {} column {})",
            error.classify(),
            error.line(),
            error.column()
        ))
    })
}

pub(super) fn invalid(reason: &str) -> FatooraError {
    FatooraError::InvalidResponse {
        reason: reason.to_owned(),
    }
}
