//! The Moyasar REST API, as far as revledger calls it: creating the hosted invoice that
//! collects an issued invoice's payment, and finding the one created for an invoice before;
//! for the missed-payment sweep and the reconciliation, reading an invoice with its payments
//! (`GET /invoices/{id}`), one payment (`GET /payments/{id}`), and every payment created in a
//! time window (`GET /payments?page=N&created[gt]=…&created[lt]=…`, all pages, following
//! `meta.next_page`). A Payment object is read by the webhook's own parser
//! ([`crate::webhooks::moyasar::parse_payment_object`]), so both paths see one payment alike.
//!
//! Moyasar authenticates with HTTP Basic Auth, the secret key as the user name and an empty
//! password; it takes JSON bodies, amounts in the smallest unit (halalas), and answers errors
//! with `{ "type", "message", "errors" }`. This module maps every answer onto
//! [`MoyasarApiError`] by what the caller should do about it:
//!
//! - [`MoyasarApiError::Rejected`]: Moyasar read the request and refused it (a 4xx other than
//!   408 and 429: a validation error, a wrong key). Sending it again gives the same answer, so
//!   the caller records it and moves on.
//! - [`MoyasarApiError::Unavailable`]: the request may not have reached Moyasar, or Moyasar
//!   could not answer it (5xx, 408, 429, a timeout, a refused connection). Try again later.
//! - [`MoyasarApiError::InvalidResponse`]: an answer we cannot read (a 2xx that is not an
//!   invoice, a redirect). Moyasar may have acted on the request.
//!
//! Every request has a bounded time ([`DEFAULT_TIMEOUT`] unless configured). The key lives in a
//! [`Secret`] and goes only into the `Authorization` header of each request: it is never part
//! of a URL, a log line, an error or a `Debug` output. Redirects are not followed, so the
//! header never leaves the configured host.

use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::webhooks::moyasar::{parse_payment_object, MoyasarPayment};
use crate::webhooks::Secret;

/// Moyasar's public API, version 1 (every path is relative to it).
pub const DEFAULT_BASE_URL: &str = "https://api.moyasar.com/v1";

/// The longest one request to Moyasar may take, connecting included. Creating an invoice takes
/// well under a second; ten seconds rides out a slow moment without holding a process manager
/// (which waits for the answer) for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Characters of an error body kept in [`MoyasarApiError::Rejected`]: enough for Moyasar's
/// message and field errors, bounded because it is stored with the rejection.
pub const MAX_ERROR_BODY_CHARS: usize = 2_048;

/// Characters of an invoice description we send. Moyasar shows it to the payer on the checkout
/// page; a line summary longer than this is cut.
pub const MAX_DESCRIPTION_CHARS: usize = 255;

/// Pages of `GET /payments` read for one window at most: Moyasar pages by tens or more, so
/// this is tens of thousands of payments, far beyond a day of this business; a server whose
/// `next_page` never ends stops here with an error instead of looping.
pub const MAX_PAYMENT_PAGES: u32 = 2_000;

/// The metadata key that ties a Moyasar invoice to ours (and finds it again).
pub const INVOICE_ID_METADATA_KEY: &str = "revledger_invoice_id";

/// How to reach Moyasar; from configuration.
#[derive(Clone, Debug)]
pub struct MoyasarApiConfig {
    /// The secret key (`sk_live_…` or `sk_test_…`).
    pub api_key: Secret,
    /// Where the API lives, [`DEFAULT_BASE_URL`] in production.
    pub base_url: String,
    /// Where Moyasar POSTs the invoice once it is paid; not sent when `None`.
    pub callback_url: Option<String>,
    /// The longest one request may take.
    pub timeout: Duration,
}

impl MoyasarApiConfig {
    /// The production API with `api_key` and the default timeout.
    pub fn new(api_key: Secret) -> MoyasarApiConfig {
        MoyasarApiConfig {
            api_key,
            base_url: DEFAULT_BASE_URL.to_owned(),
            callback_url: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// What a Moyasar invoice is created with (`POST /invoices`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreateInvoice {
    /// The amount to collect, in halalas (Moyasar's `amount`, the smallest currency unit).
    #[serde(rename = "amount")]
    pub amount_halalas: i64,
    /// ISO 4217 code; always `SAR` here.
    pub currency: String,
    /// Shown to the payer on Moyasar's checkout page.
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    pub metadata: InvoiceMetadata,
}

/// The metadata we attach to a Moyasar invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvoiceMetadata {
    /// Our invoice id ([`INVOICE_ID_METADATA_KEY`]).
    pub revledger_invoice_id: String,
}

impl CreateInvoice {
    /// A request for `amount_halalas` SAR, its description cut to [`MAX_DESCRIPTION_CHARS`].
    pub fn new(
        revledger_invoice_id: &str,
        amount_halalas: i64,
        description: &str,
        callback_url: Option<String>,
    ) -> CreateInvoice {
        CreateInvoice {
            amount_halalas,
            currency: "SAR".to_owned(),
            description: description.chars().take(MAX_DESCRIPTION_CHARS).collect(),
            callback_url,
            metadata: InvoiceMetadata {
                revledger_invoice_id: revledger_invoice_id.to_owned(),
            },
        }
    }
}

/// A Moyasar invoice, as far as we use it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MoyasarInvoice {
    pub id: String,
    /// The hosted checkout page the payer is sent to.
    pub url: String,
    /// `initiated`, `paid`, `failed`, `refunded`, `canceled`, `on_hold`, `expired`, `voided`.
    pub status: String,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
}

impl MoyasarInvoice {
    /// Our invoice id, when the Moyasar invoice carries one in its metadata.
    pub fn revledger_invoice_id(&self) -> Option<&str> {
        self.metadata
            .as_ref()?
            .get(INVOICE_ID_METADATA_KEY)?
            .as_str()
    }
}

/// One page of `GET /invoices`.
#[derive(Deserialize)]
struct InvoicePage {
    invoices: Vec<MoyasarInvoice>,
}

/// A Moyasar invoice with the payments made through it (`GET /invoices/{id}`).
#[derive(Clone, Debug, PartialEq)]
pub struct MoyasarInvoiceWithPayments {
    pub invoice: MoyasarInvoice,
    pub payments: Vec<MoyasarPayment>,
}

/// Moyasar's paging block (`meta`) of a list.
#[derive(Deserialize)]
struct PageMeta {
    #[serde(default)]
    next_page: Option<u32>,
    #[serde(default)]
    total_pages: Option<u32>,
}

/// One page of `GET /payments`, its payments still raw.
#[derive(Deserialize)]
struct PaymentPage {
    payments: Vec<serde_json::Map<String, Value>>,
    #[serde(default)]
    meta: Option<PageMeta>,
}

/// Moyasar's error body.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Why a call to Moyasar did not give what was asked; see the module docs for what to do.
/// No variant carries the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoyasarApiError {
    /// Moyasar refused the request (4xx): sending it again gives the same answer.
    #[error("Moyasar refused the request with HTTP {status}: {message}")]
    Rejected {
        status: u16,
        /// Moyasar's `message` (or the status's reason when the body has none).
        message: String,
        /// The response body, cut to [`MAX_ERROR_BODY_CHARS`].
        body: String,
    },
    /// Moyasar could not be reached or could not answer now: try again later.
    #[error("Moyasar is unavailable: {reason}")]
    Unavailable { reason: String },
    /// An answer that is not what the API documents.
    #[error("Moyasar's answer cannot be read: {reason}")]
    InvalidResponse { reason: String },
    /// The client cannot be built from its configuration.
    #[error("invalid Moyasar API configuration: {reason}")]
    Configuration { reason: String },
}

impl MoyasarApiError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MoyasarApiError::Unavailable { .. } | MoyasarApiError::InvalidResponse { .. }
        )
    }

    /// Moyasar's field errors of a rejection (`amount: must be an integer; …`), if any.
    pub fn field_errors(&self) -> Option<String> {
        let MoyasarApiError::Rejected { body, .. } = self else {
            return None;
        };
        let body: Value = serde_json::from_str(body).ok()?;
        let errors = body.get("errors")?.as_object()?;
        let fields: Vec<String> = errors
            .iter()
            .map(|(field, problems)| {
                let problems = match problems {
                    Value::Array(items) => items
                        .iter()
                        .map(|item| {
                            item.as_str()
                                .map_or_else(|| item.to_string(), str::to_owned)
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                format!("{field}: {problems}")
            })
            .collect();
        (!fields.is_empty()).then(|| fields.join("; "))
    }
}

/// A client of Moyasar's API with one key; cheap to share (`Arc`), safe to call concurrently.
#[derive(Debug)]
pub struct MoyasarClient {
    base_url: String,
    api_key: Secret,
    callback_url: Option<String>,
    http: reqwest::Client,
}

impl MoyasarClient {
    /// A client for `config`; fails when the base or callback URL is not an http(s) URL.
    pub fn new(config: &MoyasarApiConfig) -> Result<MoyasarClient, MoyasarApiError> {
        let configuration = |reason: String| MoyasarApiError::Configuration { reason };
        check_http_url("base URL", &config.base_url).map_err(configuration)?;
        if let Some(callback_url) = &config.callback_url {
            check_http_url("callback URL", callback_url).map_err(configuration)?;
        }
        if config.api_key.expose().is_empty() {
            return Err(configuration("the API key is empty".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("revledger/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| configuration(format!("cannot build the HTTP client: {error}")))?;
        Ok(MoyasarClient {
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            api_key: config.api_key.clone(),
            callback_url: config.callback_url.clone(),
            http,
        })
    }

    /// The configured callback URL, for [`CreateInvoice::callback_url`].
    pub fn callback_url(&self) -> Option<&str> {
        self.callback_url.as_deref()
    }

    /// `POST /invoices`: creates the hosted invoice.
    pub async fn create_invoice(
        &self,
        request: &CreateInvoice,
    ) -> Result<MoyasarInvoice, MoyasarApiError> {
        let response = self
            .http
            .post(format!("{}/invoices", self.base_url))
            .basic_auth(self.api_key.expose(), Some(""))
            .json(request)
            .send()
            .await;
        let body = read(response).await?;
        parse_invoice(&body)
    }

    /// `GET /invoices` filtered by our invoice id in the metadata: the Moyasar invoice created
    /// for `revledger_invoice_id` before, if any. Only an invoice whose metadata does carry the
    /// id counts, so a server that ignored the filter cannot make us adopt another invoice.
    pub async fn find_invoice(
        &self,
        revledger_invoice_id: &str,
    ) -> Result<Option<MoyasarInvoice>, MoyasarApiError> {
        let response = self
            .http
            .get(format!("{}/invoices", self.base_url))
            .basic_auth(self.api_key.expose(), Some(""))
            .query(&[(
                format!("metadata[{INVOICE_ID_METADATA_KEY}]"),
                revledger_invoice_id,
            )])
            .send()
            .await;
        let body = read(response).await?;
        let page: InvoicePage =
            serde_json::from_str(&body).map_err(|error| MoyasarApiError::InvalidResponse {
                reason: format!("the invoice list is not the documented shape: {error}"),
            })?;
        Ok(page
            .invoices
            .into_iter()
            .find(|invoice| invoice.revledger_invoice_id() == Some(revledger_invoice_id)))
    }
}

impl MoyasarClient {
    /// `{base}/{collection}/{id}`, the id percent-encoded as one path segment.
    fn object_url(&self, collection: &str, id: &str) -> Result<reqwest::Url, MoyasarApiError> {
        let mut url =
            reqwest::Url::parse(&format!("{}/{collection}", self.base_url)).map_err(|error| {
                MoyasarApiError::Configuration {
                    reason: format!("the base URL cannot take a path: {error}"),
                }
            })?;
        url.path_segments_mut()
            .map_err(|()| MoyasarApiError::Configuration {
                reason: "the base URL cannot take a path".into(),
            })?
            .push(id);
        Ok(url)
    }

    /// `GET /{kind}/{id}`: the answer's body, or the error [`read`] makes of it.
    async fn get_object(&self, kind: &str, id: &str) -> Result<String, MoyasarApiError> {
        let url = self.object_url(kind, id)?;
        let response = self
            .http
            .get(url)
            .basic_auth(self.api_key.expose(), Some(""))
            .send()
            .await;
        read(response).await
    }

    /// `GET /invoices/{id}`: the Moyasar invoice and the payments made through it. A 404 is a
    /// [`MoyasarApiError::Rejected`] with status 404.
    pub async fn get_invoice(
        &self,
        moyasar_invoice_id: &str,
    ) -> Result<MoyasarInvoiceWithPayments, MoyasarApiError> {
        let body = self.get_object("invoices", moyasar_invoice_id).await?;
        let invoice = parse_invoice(&body)?;
        #[derive(Deserialize)]
        struct Payments {
            #[serde(default)]
            payments: Option<Vec<serde_json::Map<String, Value>>>,
        }
        let payments: Payments =
            serde_json::from_str(&body).map_err(|error| MoyasarApiError::InvalidResponse {
                reason: format!("the invoice's payments are not the documented shape: {error}"),
            })?;
        let payments = payments
            .payments
            .unwrap_or_default()
            .iter()
            .map(payment_of)
            .collect::<Result<_, _>>()?;
        Ok(MoyasarInvoiceWithPayments { invoice, payments })
    }

    /// `GET /payments/{id}`: one payment; `Ok(None)` when Moyasar answers 404 (it does not
    /// know the payment).
    pub async fn get_payment(
        &self,
        payment_id: &str,
    ) -> Result<Option<MoyasarPayment>, MoyasarApiError> {
        let body = match self.get_object("payments", payment_id).await {
            Ok(body) => body,
            Err(MoyasarApiError::Rejected { status: 404, .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let object: serde_json::Map<String, Value> =
            serde_json::from_str(&body).map_err(|error| MoyasarApiError::InvalidResponse {
                reason: format!("the payment is not a JSON object: {error}"),
            })?;
        payment_of(&object).map(Some)
    }

    /// `GET /payments` filtered to those created in `[from, to)`, every page (following
    /// `meta.next_page`, at most [`MAX_PAYMENT_PAGES`]). The window is checked again on each
    /// payment's `created_at`, so a server that ignored the filter cannot add another day's
    /// payments.
    pub async fn list_payments_created(
        &self,
        from: time::OffsetDateTime,
        to: time::OffsetDateTime,
    ) -> Result<Vec<MoyasarPayment>, MoyasarApiError> {
        let format = |at: time::OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339)
                .map_err(|error| MoyasarApiError::Configuration {
                    reason: format!("cannot write the window's bounds: {error}"),
                })
        };
        // Moyasar's `created[gt]`/`created[lt]` are exclusive: one microsecond before `from`.
        let after = format(from - time::Duration::microseconds(1))?;
        let before = format(to)?;
        let mut payments = Vec::new();
        let mut page = 1u32;
        loop {
            let response = self
                .http
                .get(format!("{}/payments", self.base_url))
                .basic_auth(self.api_key.expose(), Some(""))
                .query(&[
                    ("page", page.to_string()),
                    ("created[gt]", after.clone()),
                    ("created[lt]", before.clone()),
                ])
                .send()
                .await;
            let body = read(response).await?;
            let listed: PaymentPage =
                serde_json::from_str(&body).map_err(|error| MoyasarApiError::InvalidResponse {
                    reason: format!("the payment list is not the documented shape: {error}"),
                })?;
            for object in &listed.payments {
                let payment = payment_of(object)?;
                if (from..to).contains(&payment.created_at) {
                    payments.push(payment);
                }
            }
            let next = listed.meta.as_ref().and_then(|meta| {
                meta.next_page.or_else(|| {
                    meta.total_pages
                        .filter(|total| page < *total)
                        .map(|_| page + 1)
                })
            });
            match next {
                Some(next) if next > page && next <= MAX_PAYMENT_PAGES => page = next,
                Some(next) => {
                    return Err(MoyasarApiError::InvalidResponse {
                        reason: format!(
                            "the payment list's next page {next} after page {page} is not a later page within {MAX_PAYMENT_PAGES}"
                        ),
                    })
                }
                None => break,
            }
        }
        Ok(payments)
    }
}

/// A raw Payment object read as the webhook reads one.
fn payment_of(object: &serde_json::Map<String, Value>) -> Result<MoyasarPayment, MoyasarApiError> {
    parse_payment_object(object).map_err(|error| MoyasarApiError::InvalidResponse {
        reason: format!(
            "payment {} is not the documented shape: {error}",
            object
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("(no id)")
        ),
    })
}

fn check_http_url(what: &str, url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        Ok(_) => Err(format!("the {what} must be an http(s) URL with a host")),
        Err(error) => Err(format!("the {what} is not a URL: {error}")),
    }
}

/// The body of a 2xx answer, or the error the status and body stand for.
async fn read(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<String, MoyasarApiError> {
    let response = response.map_err(transport_error)?;
    let status = response.status();
    let body = response.text().await.map_err(transport_error)?;
    classify(status, body)
}

/// What an answer with `status` and `body` means (the part of [`read`] without I/O).
fn classify(status: StatusCode, body: String) -> Result<String, MoyasarApiError> {
    if status.is_success() {
        return Ok(body);
    }
    let error: Option<ErrorBody> = serde_json::from_str(&body).ok();
    let message = error
        .as_ref()
        .and_then(|error| error.message.clone().or_else(|| error.kind.clone()))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason").to_owned());
    let retry_later = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT;
    if retry_later {
        return Err(MoyasarApiError::Unavailable {
            reason: format!("HTTP {}: {message}", status.as_u16()),
        });
    }
    if status.is_client_error() {
        return Err(MoyasarApiError::Rejected {
            status: status.as_u16(),
            message,
            body: body.chars().take(MAX_ERROR_BODY_CHARS).collect(),
        });
    }
    Err(MoyasarApiError::InvalidResponse {
        reason: format!("unexpected HTTP {}", status.as_u16()),
    })
}

fn parse_invoice(body: &str) -> Result<MoyasarInvoice, MoyasarApiError> {
    let invoice: MoyasarInvoice =
        serde_json::from_str(body).map_err(|error| MoyasarApiError::InvalidResponse {
            reason: format!("the invoice is not the documented shape: {error}"),
        })?;
    if invoice.id.is_empty() || invoice.url.is_empty() {
        return Err(MoyasarApiError::InvalidResponse {
            reason: "the invoice has no id or no url".into(),
        });
    }
    Ok(invoice)
}

/// Transport failures (no connection, timeout, a body cut off) are worth retrying; the error
/// text names the kind, never a header. The URL is dropped from the error: it carries no key,
/// but a query may carry our ids, which add nothing to a log line about an outage.
fn transport_error(error: reqwest::Error) -> MoyasarApiError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the answer was cut off"
    } else {
        "request failed"
    };
    let error = error.without_url();
    MoyasarApiError::Unavailable {
        reason: format!("{kind}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16, body: &str) -> MoyasarApiError {
        classify(StatusCode::from_u16(status).unwrap(), body.to_owned()).unwrap_err()
    }

    #[test]
    fn a_validation_error_is_a_rejection_with_moyasars_message_and_field_errors() {
        let body = r#"{"type":"invalid_request_error","message":"Validation Failed","errors":{"amount":["must be an integer"]}}"#;
        let error = rejected(400, body);
        assert_eq!(
            error,
            MoyasarApiError::Rejected {
                status: 400,
                message: "Validation Failed".into(),
                body: body.into(),
            }
        );
        assert!(!error.is_retryable());
        assert_eq!(
            error.field_errors().as_deref(),
            Some("amount: must be an integer")
        );
        assert_eq!(
            error.to_string(),
            "Moyasar refused the request with HTTP 400: Validation Failed"
        );
    }

    #[test]
    fn a_wrong_key_is_a_rejection() {
        let body = r#"{"type":"authentication_error","message":"Invalid authorization credentials","errors":null}"#;
        let error = rejected(401, body);
        assert!(matches!(
            &error,
            MoyasarApiError::Rejected { status: 401, message, .. } if message == "Invalid authorization credentials"
        ));
        assert_eq!(error.field_errors(), None);
    }

    #[test]
    fn a_rejection_without_a_json_body_is_named_by_its_status() {
        let error = rejected(404, "<html>not here</html>");
        assert!(matches!(
            &error,
            MoyasarApiError::Rejected { status: 404, message, .. } if message == "Not Found"
        ));
    }

    #[test]
    fn a_long_error_body_is_cut() {
        let body = "x".repeat(MAX_ERROR_BODY_CHARS * 2);
        let MoyasarApiError::Rejected { body, .. } = rejected(422, &body) else {
            panic!("not a rejection");
        };
        assert_eq!(body.chars().count(), MAX_ERROR_BODY_CHARS);
    }

    #[test]
    fn server_errors_rate_limits_and_request_timeouts_are_retried() {
        for status in [500, 502, 503, 504, 429, 408] {
            let error = rejected(status, r#"{"type":"api_error","message":"try later"}"#);
            assert!(
                matches!(error, MoyasarApiError::Unavailable { .. }),
                "{status}: {error:?}"
            );
            assert!(error.is_retryable());
        }
    }

    #[test]
    fn a_redirect_is_not_a_readable_answer() {
        let error = classify(StatusCode::FOUND, String::new()).unwrap_err();
        assert!(matches!(error, MoyasarApiError::InvalidResponse { .. }));
    }

    #[test]
    fn a_created_invoice_is_read_and_anything_else_is_invalid() {
        let body = r#"{"id":"73bda482-5f95-4f59-87d3-3fe3615c54bc","status":"initiated","amount":6091,
            "currency":"SAR","url":"https://checkout.moyasar.com/invoices/73bda482","metadata":{"revledger_invoice_id":"inv-1"}}"#;
        let invoice = parse_invoice(body).unwrap();
        assert_eq!(invoice.id, "73bda482-5f95-4f59-87d3-3fe3615c54bc");
        assert_eq!(invoice.status, "initiated");
        assert_eq!(invoice.revledger_invoice_id(), Some("inv-1"));
        assert!(matches!(
            parse_invoice("<html>ok</html>"),
            Err(MoyasarApiError::InvalidResponse { .. })
        ));
        assert!(matches!(
            parse_invoice(r#"{"id":"","status":"initiated","url":""}"#),
            Err(MoyasarApiError::InvalidResponse { .. })
        ));
    }

    #[test]
    fn the_request_body_is_moyasars_shape() {
        let request = CreateInvoice::new(
            "inv-1",
            344_885,
            &"Growth plan ".repeat(40),
            Some("https://example.com/paid".into()),
        );
        let body = serde_json::to_value(&request).unwrap();
        assert_eq!(body["amount"], 344_885);
        assert_eq!(body["currency"], "SAR");
        assert_eq!(body["callback_url"], "https://example.com/paid");
        assert_eq!(body["metadata"]["revledger_invoice_id"], "inv-1");
        assert_eq!(
            body["description"].as_str().unwrap().chars().count(),
            MAX_DESCRIPTION_CHARS
        );
        let without_callback = CreateInvoice::new("inv-1", 100, "Pilot", None);
        let body = serde_json::to_value(&without_callback).unwrap();
        assert!(body.get("callback_url").is_none());
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let config = MoyasarApiConfig::new(Secret::new("sk_test_do_not_print"));
        let client = MoyasarClient::new(&config).unwrap();
        assert!(!format!("{config:?}").contains("sk_test_do_not_print"));
        assert!(!format!("{client:?}").contains("sk_test_do_not_print"));
    }

    #[test]
    fn a_base_url_that_is_not_http_is_refused() {
        let mut config = MoyasarApiConfig::new(Secret::new("sk_test_x"));
        config.base_url = "ftp://api.moyasar.com/v1".into();
        assert!(matches!(
            MoyasarClient::new(&config),
            Err(MoyasarApiError::Configuration { .. })
        ));
        config.base_url = DEFAULT_BASE_URL.into();
        config.callback_url = Some("not a url".into());
        assert!(matches!(
            MoyasarClient::new(&config),
            Err(MoyasarApiError::Configuration { .. })
        ));
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        // Bind a port, then free it, so nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let mut config = MoyasarApiConfig::new(Secret::new("sk_test_x"));
        config.base_url = format!("http://{address}/v1");
        config.timeout = Duration::from_secs(2);
        let client = MoyasarClient::new(&config).unwrap();
        let request = CreateInvoice::new("inv-1", 100, "Pilot", None);
        let error = client.create_invoice(&request).await.unwrap_err();
        assert!(
            matches!(error, MoyasarApiError::Unavailable { .. }),
            "{error:?}"
        );
    }
}
