//! Webhook deliveries: each one an idempotent command, from the raw bytes to the answer.
//!
//! [`Deliveries::receive`] takes every provider's delivery through the same steps:
//! 1. **verify** authenticity on the raw bytes ([`Provider`] says how: Moyasar's `secret_token`,
//!    Calendly's HMAC, Standard Webhooks): a forgery is answered 401 and has no effect;
//! 2. **look the delivery id up in the inbox**: a repeat with the same body gets the first answer
//!    again without touching any aggregate; with another body it is a conflict (409), kept;
//! 3. **parse**: a malformed delivery is answered 400 naming the field, its raw body kept;
//! 4. **map to a command** whose id is derived from `(provider, delivery id)` and execute it with
//!    the inbox row, which the store writes in the same transaction as the events.
//!
//! A delivery that refers to something not known yet (a cancel before its booking, a payment
//! report out of order) is **parked** (202) and retried with backoff ([`Deliveries::retry_due`]);
//! after `inbox::MAX_ATTEMPTS` it is a **dead letter**, listed and replayable by operators. A
//! command the domain refuses for good is answered 200 `refused` with the rule (a 4xx would only
//! make the provider retry something that can never apply), and kept in the inbox. A Moyasar
//! test-mode payment on a live ledger is kept and answered `ignored_test_mode`, never applied.
//! A Moyasar payment is matched to its invoice by the invoice id our checkout put in its
//! `metadata.revledger_invoice_id` (or `metadata.invoice_id`), else by its Moyasar `invoice_id`
//! when revledger created that Moyasar invoice; one that names no invoice we know is applied to
//! its payment stream and answered 200 [`UNMATCHED_INVOICE`].
//!
//! Every answer names what the delivery touched ([`Touched`]: lead, invoice, payment, partner).
//!
//! Every answer is an [`Answer`]: the status and JSON body the provider gets, the same whether
//! the delivery is new, repeated, retried by the worker or replayed by an operator.

use std::sync::Arc;
use std::time::Duration;

use adapters::inbox::{self, InboxEntry, InboxRecord};
use adapters::store::{EventStore, StoreError};
use adapters::webhooks::{calendly, moyasar, standard, Secret, WebhookError};
use projections::Projector;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::handlers::Handlers;

mod commands;

pub use commands::{moyasar_payment_command, moyasar_payment_command_id, payment_status};

/// How long a Calendly delivery waits for the CRM board to catch up before matching the
/// invitee's email to a lead (it must see a lead captured a moment earlier).
pub const EMAIL_LOOKUP_WAIT: Duration = Duration::from_secs(2);

/// How long a Moyasar payment that names only a Moyasar invoice id waits for the
/// reconciliation's invoice facts to catch up before it is answered `unmatched_invoice`: the
/// invoice may have been linked a moment earlier. Only a payment not found at once waits.
pub const INVOICE_LOOKUP_WAIT: Duration = Duration::from_secs(2);

/// Who sent a delivery, and so how it is authenticated and parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Moyasar,
    Calendly,
    /// Partner and lead sources, signed the Standard Webhooks way.
    Partners,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Moyasar => "moyasar",
            Provider::Calendly => "calendly",
            Provider::Partners => "partners",
        }
    }

    fn of(name: &str) -> Provider {
        match name {
            "moyasar" => Provider::Moyasar,
            "calendly" => Provider::Calendly,
            _ => Provider::Partners,
        }
    }
}

/// The secrets and rules deliveries are received with.
#[derive(Clone, Debug, Default)]
pub struct DeliveryConfig {
    /// Moyasar's `secret_token`s: several while one is being rotated.
    pub moyasar_secret_tokens: Vec<Secret>,
    pub calendly_signing_key: Option<Secret>,
    pub calendly_tolerance_secs: i64,
    /// Standard Webhooks `whsec_…` secrets; several while one is being rotated.
    pub partner_webhook_secrets: Vec<Secret>,
    pub partner_tolerance_secs: i64,
    /// A sandbox ledger: test-mode payments apply and live ones are ignored.
    pub sandbox: bool,
    /// Whether this process runs the read models (else a Calendly delivery does not wait for
    /// the CRM board to catch up: another process moves it).
    pub run_workers: bool,
}

/// The signature headers a delivery came with (each absent when not sent).
#[derive(Clone, Copy, Debug, Default)]
pub struct SignatureHeaders<'a> {
    /// `Calendly-Webhook-Signature`.
    pub calendly: Option<&'a str>,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` (Standard Webhooks).
    pub webhook_id: Option<&'a str>,
    pub webhook_timestamp: Option<&'a str>,
    pub webhook_signature: Option<&'a str>,
}

/// What the provider is answered: a status and a JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    fn new(status: u16, body: Value) -> Answer {
        Answer { status, body }
    }

    fn stored(entry: &InboxEntry) -> Answer {
        Answer::new(entry.http_status, entry.response.clone())
    }
}

/// What a delivery touched, named in its answer (`touched`) so an integrator reads ids instead
/// of taking `stream_id` apart. Each is `null` when the delivery did not touch one.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Touched {
    pub lead_id: Option<String>,
    pub invoice_id: Option<String>,
    pub payment_id: Option<String>,
    pub partner_id: Option<String>,
}

impl Touched {
    /// Writes itself into `response` as its `touched` member.
    fn write_into(self, response: &mut Value) {
        response["touched"] = serde_json::to_value(self).unwrap_or(Value::Null);
    }
}

/// The `status` of the answer to a Moyasar payment that names no invoice we know: it is kept
/// and recorded on its payment stream (applied to its invoice if that is issued later), and
/// listed by `/api/reconciliation` as `payment_without_invoice` meanwhile. Answered 200, like
/// every kept delivery, so Moyasar does not retry it.
pub const UNMATCHED_INVOICE: &str = "unmatched_invoice";

/// Why a delivery could not be answered at all (the provider retries).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The provider's endpoint has no secret configured.
    #[error("{0} webhooks are not enabled on this server")]
    NotEnabled(&'static str),
    /// The delivery's stream kept changing concurrently.
    #[error("{stream_id} is busy; retry the delivery")]
    Busy { stream_id: String },
    /// No dead letter with this id.
    #[error("no dead letter {0}")]
    NoDeadLetter(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] projections::ProjectionError),
    #[error("command failed: {0}")]
    Command(String),
}

/// What became of a delivery.
enum Outcome {
    /// Events were appended (the inbox row went with them). The answer that row holds when
    /// this attempt wrote it; `None` when an earlier attempt did (the row says what it answered).
    Accepted(Option<Value>),
    /// Nothing to change (a repeat report, a verification ping); recorded as it is.
    Acknowledged(&'static str),
    /// Kept, but never applied: a test-mode payment on a live ledger (or a live one in a
    /// sandbox). The answer's `status` says which.
    Ignored {
        status: &'static str,
        reason: &'static str,
    },
    /// Refers to something not known yet: try again later.
    Park(String),
    /// The domain refuses it for good.
    Refused(String),
}

/// A parsed delivery, ready to apply.
enum Delivery {
    Moyasar(moyasar::MoyasarEvent),
    Calendly(calendly::CalendlyEvent),
    Partner(standard::PartnerSourceEvent),
}

fn now() -> OffsetDateTime {
    adapters::clock::now_micros()
}

/// Every outcome [`count`] records.
pub const OUTCOMES: [&str; 8] = [
    "accepted",
    "duplicate",
    "conflict",
    "ignored",
    "refused",
    "parked",
    "dead_lettered",
    "forged",
];

/// Sets every provider's delivery counters to zero at start-up. A counter that first appears
/// with the value 1 has no earlier sample, so Prometheus's `increase()` sees no increase: the
/// first dead letter after a start would never fire `RevledgerDeadLettersGrowing`.
pub fn register_metrics() {
    for provider in [Provider::Moyasar, Provider::Calendly, Provider::Partners] {
        for outcome in OUTCOMES {
            metrics::counter!("revledger_webhook_deliveries_total", "provider" => provider.as_str(), "outcome" => outcome).increment(0);
        }
    }
}

/// Counts one delivery's outcome (`revledger_webhook_deliveries_total{provider,outcome}`).
fn count(provider: &str, outcome: &'static str) {
    metrics::counter!("revledger_webhook_deliveries_total", "provider" => provider.to_owned(), "outcome" => outcome).increment(1);
}

fn forged(provider: Provider, error: &WebhookError) -> Answer {
    let reason = match error {
        WebhookError::Unauthenticated { reason } => reason.as_str(),
        WebhookError::Malformed { .. } => "malformed",
    };
    tracing::warn!(
        provider = provider.as_str(),
        reason,
        "webhook delivery failed authentication"
    );
    count(provider.as_str(), "forged");
    Answer::new(
        401,
        json!({"error": "unauthenticated", "detail": format!("the delivery could not be authenticated ({reason})")}),
    )
}

/// The envelope `id` of a JSON body, if it has one.
fn envelope_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        id: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Envelope<'_>>(body)
        .ok()?
        .id
        .map(|id| id.into_owned())
        // An id with a NUL cannot be stored (PostgreSQL text): key such a body by its hash.
        .filter(|id| !id.is_empty() && !id.contains('\0'))
}

fn parse(provider: Provider, body: &[u8]) -> Result<Delivery, WebhookError> {
    Ok(match provider {
        Provider::Moyasar => Delivery::Moyasar(moyasar::parse(body)?),
        Provider::Calendly => Delivery::Calendly(calendly::parse(body)?),
        Provider::Partners => Delivery::Partner(standard::parse(body)?),
    })
}

/// A dead letter as listed: the stored body with any secret it carried redacted.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub provider: String,
    pub delivery_id: String,
    pub received_at_us: i64,
    pub attempts: i64,
    pub reason: Option<String>,
    pub body: String,
}

/// The webhook deliveries of one service.
pub struct Deliveries {
    store: Arc<dyn EventStore>,
    handlers: Arc<Handlers>,
    config: DeliveryConfig,
    /// The CRM board's projector: a Calendly invitee is matched to a lead through it.
    crm_board: Projector,
    /// The reconciliation's projector: a Moyasar invoice id is matched to our invoice through
    /// its invoice facts.
    reconciliation: Projector,
}

impl Deliveries {
    pub fn new(
        store: Arc<dyn EventStore>,
        handlers: Arc<Handlers>,
        config: DeliveryConfig,
    ) -> Deliveries {
        let crm_board = Projector::new(store.clone(), Arc::new(projections::crm_board::CrmBoard));
        let reconciliation = Projector::new(
            store.clone(),
            Arc::new(projections::reconciliation::Reconciliation),
        );
        Deliveries {
            store,
            handlers,
            config,
            crm_board,
            reconciliation,
        }
    }

    /// Takes one delivery through the steps of the module docs; the answer for its sender.
    pub async fn receive(
        &self,
        provider: Provider,
        headers: SignatureHeaders<'_>,
        body: &[u8],
    ) -> Result<Answer, DeliveryError> {
        let (kept, delivery_id) = match self.authenticate(provider, headers, body)? {
            Ok(authenticated) => authenticated,
            Err(forgery) => return Ok(forgery),
        };
        self.record(provider, delivery_id, &kept).await
    }

    /// Step 1: the body to keep and the delivery id, or the 401 of a forgery.
    #[allow(clippy::type_complexity)]
    fn authenticate(
        &self,
        provider: Provider,
        headers: SignatureHeaders<'_>,
        body: &[u8],
    ) -> Result<Result<(Vec<u8>, Option<String>), Answer>, DeliveryError> {
        let config = &self.config;
        let now_unix = now().unix_timestamp();
        let verified = match provider {
            Provider::Moyasar => {
                if config.moyasar_secret_tokens.is_empty() {
                    return Err(DeliveryError::NotEnabled(provider.as_str()));
                }
                moyasar::verify(body, &config.moyasar_secret_tokens)
            }
            Provider::Calendly => {
                let Some(key) = &config.calendly_signing_key else {
                    return Err(DeliveryError::NotEnabled(provider.as_str()));
                };
                calendly::verify(
                    headers.calendly,
                    body,
                    key,
                    now_unix,
                    config.calendly_tolerance_secs,
                )
            }
            Provider::Partners => {
                if config.partner_webhook_secrets.is_empty() {
                    return Err(DeliveryError::NotEnabled(provider.as_str()));
                }
                let signed = standard::StandardWebhookHeaders {
                    id: headers.webhook_id,
                    timestamp: headers.webhook_timestamp,
                    signature: headers.webhook_signature,
                };
                standard::verify(
                    signed,
                    body,
                    &config.partner_webhook_secrets,
                    now_unix,
                    config.partner_tolerance_secs,
                )
            }
        };
        if let Err(error) = verified {
            return Ok(Err(forged(provider, &error)));
        }
        // Moyasar's token is our secret: the body is kept with it redacted.
        let kept = match provider {
            Provider::Moyasar => moyasar::redact_secret_token(body).into_owned(),
            _ => body.to_vec(),
        };
        let delivery_id = match provider {
            Provider::Moyasar => envelope_id(&kept),
            Provider::Calendly => calendly::parse(&kept).ok().map(|event| event.delivery_id),
            Provider::Partners => headers.webhook_id.map(str::to_owned),
        };
        Ok(Ok((kept, delivery_id)))
    }

    /// Steps 2-4, after authentication.
    async fn record(
        &self,
        provider: Provider,
        delivery_id: Option<String>,
        body: &[u8],
    ) -> Result<Answer, DeliveryError> {
        let name = provider.as_str();
        // A body we cannot even find an id in is still kept, under the hash of its bytes.
        let delivery_id =
            delivery_id.unwrap_or_else(|| format!("unparsed:{}", inbox::body_sha256(body)));
        let mut record = InboxRecord::new(name, &delivery_id, body, now());
        self.seal(&mut record).await?;
        let db = self.store.sql();
        match inbox::find(&db, name, &delivery_id).await? {
            Some(seen) if seen.body_sha256 == record.body_sha256 && seen.status != "parked" => {
                count(name, "duplicate");
                return Ok(Answer::stored(&seen));
            }
            Some(seen) if seen.body_sha256 != record.body_sha256 => {
                inbox::record_conflict(&db, &record).await?;
                tracing::warn!(provider = name, %delivery_id, "delivery id reused with a different body");
                count(name, "conflict");
                return Ok(Answer::new(
                    409,
                    json!({"error": "conflict", "detail": format!(
                        "delivery {delivery_id} was already received with a different body; this one is kept for review"
                    )}),
                ));
            }
            _ => {}
        }
        let delivery = match parse(provider, body) {
            Ok(delivery) => delivery,
            Err(WebhookError::Malformed { field, detail }) => {
                record.http_status = 400;
                record.response = json!({"error": "malformed", "field": field, "detail": detail});
                inbox::record_without_events(&db, &record, "rejected", Some(&detail)).await?;
                return Ok(Answer::new(400, record.response));
            }
            Err(other) => return Ok(forged(provider, &other)),
        };
        self.settle(record, delivery).await
    }

    /// Applies a parsed delivery and records what became of it; the answer for the sender.
    async fn settle(
        &self,
        mut record: InboxRecord,
        delivery: Delivery,
    ) -> Result<Answer, DeliveryError> {
        record.response = json!({"status": "accepted", "provider": record.provider, "delivery_id": record.delivery_id});
        let db = self.store.sql();
        let outcome = self.apply(&mut record, delivery).await?;
        let provider = record.provider.clone();
        // What `apply` found the delivery touches goes into every answer, applied or not.
        let touched = match record.response["touched"].take() {
            Value::Null => serde_json::to_value(Touched::default()).unwrap_or(Value::Null),
            touched => touched,
        };
        let answer = |mut body: Value| {
            body["touched"] = touched.clone();
            body
        };
        match outcome {
            Outcome::Accepted(Some(written)) => {
                count(&provider, "accepted");
                // What the row written with the events says, without reading it back.
                Ok(Answer::new(record.http_status, written))
            }
            Outcome::Accepted(None) => {
                count(&provider, "accepted");
                // The row was written with the events by an earlier attempt; answer what it says.
                match inbox::find(&db, &record.provider, &record.delivery_id).await? {
                    Some(entry) => Ok(Answer::stored(&entry)),
                    None => {
                        // The same command was applied before without this delivery: the
                        // missed-payment sweep recorded the same payment state under the same
                        // command id. Nothing changes; the delivery is kept and says so.
                        record.response =
                            answer(json!({"status": "accepted", "provider": record.provider,
                            "delivery_id": record.delivery_id, "effect": ALREADY_APPLIED}));
                        inbox::record_without_events(&db, &record, "acknowledged", None).await?;
                        Ok(Answer::new(200, record.response))
                    }
                }
            }
            Outcome::Acknowledged(why) => {
                count(&provider, "accepted");
                record.response = answer(json!({"status": "accepted", "provider": record.provider,
                    "delivery_id": record.delivery_id, "effect": why}));
                inbox::record_without_events(&db, &record, "acknowledged", None).await?;
                Ok(Answer::new(200, record.response))
            }
            Outcome::Ignored { status, reason } => {
                count(&provider, "ignored");
                record.response = answer(json!({"status": status, "provider": record.provider,
                    "delivery_id": record.delivery_id, "reason": reason}));
                inbox::record_without_events(&db, &record, "ignored", Some(reason)).await?;
                Ok(Answer::new(200, record.response))
            }
            Outcome::Refused(rule) => {
                count(&provider, "refused");
                record.response = answer(json!({"status": "refused", "provider": record.provider,
                    "delivery_id": record.delivery_id, "reason": rule}));
                inbox::record_without_events(&db, &record, "rejected", Some(&rule)).await?;
                Ok(Answer::new(200, record.response))
            }
            Outcome::Park(reason) => {
                record.http_status = 202;
                record.response = answer(json!({"status": "parked", "provider": record.provider,
                    "delivery_id": record.delivery_id, "reason": reason}));
                let status = inbox::park(&db, &record, &reason, now()).await?;
                count(
                    &provider,
                    if status == "dead_lettered" {
                        "dead_lettered"
                    } else {
                        "parked"
                    },
                );
                tracing::info!(provider = %record.provider, delivery_id = %record.delivery_id, %reason, status, "delivery parked");
                Ok(Answer::new(
                    202,
                    answer(json!({"status": status, "provider": record.provider,
                        "delivery_id": record.delivery_id, "reason": reason})),
                ))
            }
        }
    }

    /// One retry pass over parked deliveries due at `now`; returns how many were tried.
    pub async fn retry_due(&self, now: OffsetDateTime) -> Result<usize, DeliveryError> {
        let due = inbox::due_for_retry(&self.store.sql(), now, inbox::MAX_LIST).await?;
        for entry in &due {
            self.retry(entry).await?;
        }
        Ok(due.len())
    }

    /// Tries a kept delivery again, from its stored body (already authenticated).
    async fn retry(&self, entry: &InboxEntry) -> Result<Answer, DeliveryError> {
        self.try_again(entry, None).await
    }

    /// [`Self::retry`], by the worker (`replayed_by` none) or by an operator.
    async fn try_again(
        &self,
        entry: &InboxEntry,
        replayed_by: Option<&str>,
    ) -> Result<Answer, DeliveryError> {
        let body = self.body_of(entry).await?;
        let provider = Provider::of(&entry.provider);
        let mut record = InboxRecord::new(
            provider.as_str(),
            &entry.delivery_id,
            &body,
            adapters::clock::from_unix_micros(entry.received_at_us).unwrap_or_else(now),
        );
        self.seal(&mut record).await?;
        record.replayed_by = replayed_by.map(str::to_owned);
        match parse(provider, &body) {
            Ok(delivery) => self.settle(record, delivery).await,
            Err(error) => {
                let detail = error.to_string();
                record.http_status = 400;
                record.response = json!({"error": "malformed", "detail": detail});
                inbox::record_without_events(&self.store.sql(), &record, "rejected", Some(&detail))
                    .await?;
                Ok(Answer::new(400, record.response))
            }
        }
    }

    /// Replays one dead letter now (operators: the API, the dashboard and the CLI); the events
    /// it appends carry `actor` (the operator) as their actor, and `replay:webhook:<provider>`
    /// as their source.
    pub async fn replay(&self, inbox_id: &str, actor: &str) -> Result<Answer, DeliveryError> {
        let entry = inbox::find_by_id(&self.store.sql(), inbox_id)
            .await?
            .filter(|entry| entry.status == "dead_lettered")
            .ok_or_else(|| DeliveryError::NoDeadLetter(inbox_id.to_owned()))?;
        self.try_again(&entry, Some(actor)).await
    }

    /// The dead letters, oldest first, at most `limit`.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>, DeliveryError> {
        let letters = inbox::dead_letters(&self.store.sql(), limit).await?;
        let mut listed = Vec::with_capacity(letters.len());
        for entry in &letters {
            listed.push(DeadLetter {
                id: entry.inbox_id.clone(),
                provider: entry.provider.clone(),
                delivery_id: entry.delivery_id.clone(),
                received_at_us: entry.received_at_us,
                attempts: entry.attempts,
                reason: entry.last_error.clone(),
                body: listed_body(&entry.provider, &self.body_of(entry).await?),
            });
        }
        Ok(listed)
    }

    /// Seals a delivery's raw body under a key of its own (`delivery-<inbox id>`): webhook
    /// bodies carry names and emails, and are kept. Erasing the lead or partner its answer
    /// names as touched erases it too ([`adapters::personal::Vault::linked_subjects_of`]).
    async fn seal(&self, record: &mut InboxRecord) -> Result<(), DeliveryError> {
        let Some(vault) = self.store.vault() else {
            return Ok(());
        };
        let subject = format!("delivery-{}", record.inbox_id());
        record.raw_body = vault.seal_text(&subject, &record.raw_body).await?;
        record.body_encoding = inbox::sealed_encoding(record.body_encoding);
        Ok(())
    }

    /// A kept delivery's body, opened when it was sealed (`[erased]` once its person is).
    async fn body_of(&self, entry: &InboxEntry) -> Result<Vec<u8>, DeliveryError> {
        let Some(encoding) = entry
            .body_encoding
            .strip_prefix(inbox::SEALED_ENCODING_PREFIX)
        else {
            return Ok(entry.body());
        };
        let vault = self.store.vault().ok_or_else(|| {
            DeliveryError::Command("a sealed delivery needs the key store".into())
        })?;
        let opened = vault.open_text(&entry.raw_body).await?;
        Ok(inbox::decode_body(&opened, encoding))
    }
}

/// A dead letter's body as listed. Moyasar bodies are stored with their `secret_token`
/// redacted already; one kept by an older version is redacted here too.
fn listed_body(provider: &str, body: &[u8]) -> String {
    if provider == Provider::Moyasar.as_str() {
        return String::from_utf8_lossy(&moyasar::redact_secret_token(body)).into_owned();
    }
    String::from_utf8_lossy(body).into_owned()
}

/// The `effect` of a delivery whose command was applied before under the same command id by
/// something other than a delivery (the missed-payment sweep): a duplicate, nothing changed.
pub const ALREADY_APPLIED: &str = "already applied (duplicate of a state recorded before)";
