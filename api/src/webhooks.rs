//! Webhook endpoints: each delivery is an idempotent command.
//!
//! For every provider the steps are the same ([`receive`]):
//! 1. verify authenticity on the raw bytes (401, no effect, counted in the log without secrets);
//! 2. find the delivery id and look it up in the inbox: a repeat with the same body gets the
//!    first answer again without touching any aggregate; with another body, 409 (kept);
//! 3. parse (400 naming the field, raw body kept in the inbox);
//! 4. map to a command whose id is derived from `(provider, delivery id)` and execute it with
//!    the inbox row, which the store writes in the same transaction as the events.
//!
//! A delivery that refers to something not known yet (a cancel before its booking, a payment
//! report out of order) is parked (202) and retried with backoff by [`run_retries`]; after
//! `inbox::MAX_ATTEMPTS` it is a dead letter, listed and replayable by operators. A command the
//! domain refuses for good is answered 200 `refused` with the rule (a 4xx would only make the
//! provider retry something that can never apply), and kept in the inbox.

use std::time::Duration;

use adapters::inbox::{self, InboxEntry, InboxRecord, INBOX_NAMESPACE};
use adapters::store::EventMetadata;
use adapters::webhooks::{calendly, moyasar, standard, WebhookError};
use app::command::{CommandEnvelope, CommandError, CommandHandler, CommandOutcome};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cqrs_es::Aggregate;
use domain::lead::{LeadCommand, LeadError, Utm};
use domain::partner::{PartnerCommand, PartnerTier};
use domain::payment::{PaymentCommand, PaymentError, PaymentStatus};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{ApiError, AppState};

/// How often the retry worker looks for parked deliveries that are due.
pub const RETRY_POLL: Duration = Duration::from_secs(1);

/// How long a Calendly delivery waits for the CRM board to catch up before matching the
/// invitee's email to a lead (it must see a lead captured a moment earlier).
pub const EMAIL_LOOKUP_WAIT: Duration = Duration::from_secs(2);

const MOYASAR: &str = "moyasar";
const CALENDLY: &str = "calendly";
const PARTNERS: &str = "partners";

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

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn forged(provider: &str, error: &WebhookError) -> Response {
    let reason = match error {
        WebhookError::Unauthenticated { reason } => reason.as_str(),
        WebhookError::Malformed { .. } => "malformed",
    };
    tracing::warn!(provider, reason, "webhook delivery failed authentication");
    crate::metrics::webhook(provider, "forged");
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({"error": "unauthenticated", "detail": format!("the delivery could not be authenticated ({reason})")}),
    )
}

fn not_configured(provider: &str) -> Response {
    ApiError::NotFound(format!(
        "{provider} webhooks are not enabled on this server"
    ))
    .into_response()
}

/// `POST /webhooks/moyasar`: `secret_token` in the body (any of the configured ones). The body
/// is kept with the token redacted: it is our secret, and backups of the inbox must not hold it.
pub async fn moyasar(State(state): State<AppState>, body: Bytes) -> Response {
    let tokens = &state.config.moyasar_secret_tokens;
    if tokens.is_empty() {
        return not_configured(MOYASAR);
    }
    if let Err(error) = moyasar::verify(&body, tokens) {
        return forged(MOYASAR, &error);
    }
    let stored = match moyasar::redact_secret_token(&body) {
        std::borrow::Cow::Borrowed(_) => body,
        std::borrow::Cow::Owned(redacted) => Bytes::from(redacted),
    };
    let delivery_id = envelope_id(&stored);
    receive(&state, MOYASAR, delivery_id, stored).await
}

/// `POST /webhooks/calendly`: `Calendly-Webhook-Signature: t=…,v1=…`.
pub async fn calendly(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(key) = state.config.calendly_signing_key.clone() else {
        return not_configured(CALENDLY);
    };
    let header = headers
        .get(calendly::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let now_unix = now().unix_timestamp();
    if let Err(error) = calendly::verify(
        header,
        &body,
        &key,
        now_unix,
        state.config.calendly_tolerance_secs,
    ) {
        return forged(CALENDLY, &error);
    }
    let delivery_id = calendly::parse(&body).ok().map(|event| event.delivery_id);
    receive(&state, CALENDLY, delivery_id, body).await
}

/// `POST /webhooks/partners`: Standard Webhooks.
pub async fn partners(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if state.config.partner_webhook_secrets.is_empty() {
        return not_configured(PARTNERS);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = standard::StandardWebhookHeaders {
        id: header(standard::ID_HEADER),
        timestamp: header(standard::TIMESTAMP_HEADER),
        signature: header(standard::SIGNATURE_HEADER),
    };
    let now_unix = now().unix_timestamp();
    let secrets = &state.config.partner_webhook_secrets;
    if let Err(error) = standard::verify(
        signed,
        &body,
        secrets,
        now_unix,
        state.config.partner_tolerance_secs,
    ) {
        return forged(PARTNERS, &error);
    }
    let delivery_id = header(standard::ID_HEADER).map(str::to_owned);
    receive(&state, PARTNERS, delivery_id, body).await
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

fn parse(provider: &str, body: &[u8]) -> Result<Delivery, WebhookError> {
    Ok(match provider {
        MOYASAR => Delivery::Moyasar(moyasar::parse(body)?),
        CALENDLY => Delivery::Calendly(calendly::parse(body)?),
        _ => Delivery::Partner(standard::parse(body)?),
    })
}

/// Steps 2–4 of the module docs, after authentication.
async fn receive(
    state: &AppState,
    provider: &'static str,
    delivery_id: Option<String>,
    body: Bytes,
) -> Response {
    let received_at = now();
    // A body we cannot even find an id in is still kept, under the hash of its bytes.
    let delivery_id =
        delivery_id.unwrap_or_else(|| format!("unparsed:{}", inbox::body_sha256(&body)));
    let mut record = InboxRecord::new(provider, &delivery_id, &body, received_at);
    let db = state.store.sql();
    match inbox::find(&db, provider, &delivery_id).await {
        Ok(Some(seen)) if seen.body_sha256 == record.body_sha256 && seen.status != "parked" => {
            crate::metrics::webhook(provider, "duplicate");
            return stored_answer(&seen);
        }
        Ok(Some(seen)) if seen.body_sha256 != record.body_sha256 => {
            if let Err(error) = inbox::record_conflict(&db, &record).await {
                return ApiError::from(error).into_response();
            }
            tracing::warn!(provider, %delivery_id, "delivery id reused with a different body");
            crate::metrics::webhook(provider, "conflict");
            return ApiError::Conflict(format!(
                "delivery {delivery_id} was already received with a different body; this one is kept for review"
            ))
            .into_response();
        }
        Ok(_) => {}
        Err(error) => return ApiError::from(error).into_response(),
    }
    let delivery = match parse(provider, &body) {
        Ok(delivery) => delivery,
        Err(WebhookError::Malformed { field, detail }) => {
            record.http_status = 400;
            record.response = json!({"error": "malformed", "field": field, "detail": detail});
            if let Err(error) =
                inbox::record_without_events(&db, &record, "rejected", Some(&detail)).await
            {
                return ApiError::from(error).into_response();
            }
            return json_response(StatusCode::BAD_REQUEST, record.response);
        }
        Err(other) => return forged(provider, &other),
    };
    match settle(state, record, delivery).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Applies a parsed delivery and records what became of it; the answer for the sender.
async fn settle(
    state: &AppState,
    mut record: InboxRecord,
    delivery: Delivery,
) -> Result<Response, ApiError> {
    record.response = json!({"status": "accepted", "provider": record.provider, "delivery_id": record.delivery_id});
    let db = state.store.sql();
    let outcome = apply(state, &record, delivery).await?;
    let counted = match &outcome {
        Outcome::Accepted(_) | Outcome::Acknowledged(_) => "accepted",
        Outcome::Ignored { .. } => "ignored",
        Outcome::Refused(_) => "refused",
        Outcome::Park(_) => "parked",
    };
    let (status, response) = match outcome {
        Outcome::Accepted(Some(written)) => {
            crate::metrics::webhook(&record.provider, counted);
            // What the row written with the events says, without reading it back.
            return Ok(answer_as_stored(record.http_status, written));
        }
        Outcome::Accepted(None) => {
            crate::metrics::webhook(&record.provider, counted);
            // The row was written with the events by an earlier attempt; answer what it says.
            return match inbox::find(&db, &record.provider, &record.delivery_id).await? {
                Some(entry) => Ok(stored_answer(&entry)),
                None => Ok(json_response(StatusCode::OK, record.response)),
            };
        }
        Outcome::Acknowledged(why) => {
            crate::metrics::webhook(&record.provider, counted);
            record.response = json!({"status": "accepted", "provider": record.provider,
                "delivery_id": record.delivery_id, "effect": why});
            inbox::record_without_events(&db, &record, "acknowledged", None).await?;
            (StatusCode::OK, record.response.clone())
        }
        Outcome::Ignored { status, reason } => {
            crate::metrics::webhook(&record.provider, counted);
            record.response = json!({"status": status, "provider": record.provider,
                "delivery_id": record.delivery_id, "reason": reason});
            inbox::record_without_events(&db, &record, "ignored", Some(reason)).await?;
            (StatusCode::OK, record.response.clone())
        }
        Outcome::Refused(rule) => {
            crate::metrics::webhook(&record.provider, counted);
            record.response = json!({"status": "refused", "provider": record.provider,
                "delivery_id": record.delivery_id, "reason": rule});
            inbox::record_without_events(&db, &record, "rejected", Some(&rule)).await?;
            (StatusCode::OK, record.response.clone())
        }
        Outcome::Park(reason) => {
            record.http_status = 202;
            record.response = json!({"status": "parked", "provider": record.provider,
                "delivery_id": record.delivery_id, "reason": reason});
            let status = inbox::park(&db, &record, &reason, now()).await?;
            crate::metrics::webhook(
                &record.provider,
                if status == "dead_lettered" {
                    "dead_lettered"
                } else {
                    counted
                },
            );
            tracing::info!(provider = %record.provider, delivery_id = %record.delivery_id, %reason, status, "delivery parked");
            (
                StatusCode::ACCEPTED,
                json!({"status": status, "provider": record.provider,
                "delivery_id": record.delivery_id, "reason": reason}),
            )
        }
    };
    Ok(json_response(status, response))
}

fn stored_answer(entry: &InboxEntry) -> Response {
    answer_as_stored(entry.http_status, entry.response.clone())
}

/// The answer an inbox row with this status and response gives.
fn answer_as_stored(http_status: u16, response: Value) -> Response {
    let status = StatusCode::from_u16(http_status).unwrap_or(StatusCode::OK);
    json_response(status, response)
}

fn envelope<C>(
    record: &InboxRecord,
    aggregate_id: &str,
    command: C,
    command_id: Uuid,
    with_inbox: bool,
) -> CommandEnvelope<C> {
    CommandEnvelope {
        aggregate_id: aggregate_id.to_owned(),
        command_id,
        command,
        metadata: EventMetadata {
            actor: Some(format!("webhook:{}", record.provider)),
            source: Some(format!("webhook:{}", record.provider)),
            delivery_id: Some(record.delivery_id.clone()),
            correlation_id: Some(record.command_id()),
            ..Default::default()
        },
        inbox: with_inbox.then(|| record.clone()),
        fresh_id: false,
    }
}

/// The outcome of the delivery's main command.
async fn run_main<A>(
    handler: &CommandHandler<A>,
    record: &InboxRecord,
    aggregate_id: &str,
    command: A::Command,
    park_when: impl Fn(&A::Error) -> bool,
) -> Result<Outcome, ApiError>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    let envelope = envelope(record, aggregate_id, command, record.command_id(), true);
    match handler.execute(envelope).await {
        Ok(outcome) if outcome.replayed => Ok(Outcome::Accepted(None)),
        Ok(CommandOutcome {
            stream_id,
            version,
            first_position: Some(first_position),
            last_position: Some(last_position),
            ..
        }) => Ok(Outcome::Accepted(Some(inbox::accepted_response(
            &record.response,
            &stream_id,
            version,
            first_position,
            last_position,
        )))),
        Ok(_) => Ok(Outcome::Acknowledged("no change")),
        Err(CommandError::Rejected(rule)) if park_when(&rule) => {
            Ok(Outcome::Park(rule.to_string()))
        }
        Err(CommandError::Rejected(rule)) => Ok(Outcome::Refused(rule.to_string())),
        Err(CommandError::Conflict { stream_id }) => Err(ApiError::Unavailable(format!(
            "{stream_id} is busy; retry the delivery"
        ))),
        Err(other) => Err(ApiError::internal(other)),
    }
}

async fn apply(
    state: &AppState,
    record: &InboxRecord,
    delivery: Delivery,
) -> Result<Outcome, ApiError> {
    match delivery {
        Delivery::Moyasar(event) => apply_moyasar(state, record, event).await,
        Delivery::Calendly(event) => apply_calendly(state, record, event).await,
        Delivery::Partner(event) => apply_partner(state, record, event).await,
    }
}

fn payment_status(status: moyasar::MoyasarPaymentStatus) -> PaymentStatus {
    use moyasar::MoyasarPaymentStatus as M;
    match status {
        M::Initiated => PaymentStatus::Initiated,
        M::Authorized => PaymentStatus::Authorized,
        M::Captured => PaymentStatus::Captured,
        M::Paid => PaymentStatus::Paid,
        M::Failed => PaymentStatus::Failed,
        M::Refunded => PaymentStatus::Refunded,
        M::Voided => PaymentStatus::Voided,
        M::Verified => PaymentStatus::Verified,
    }
}

async fn apply_moyasar(
    state: &AppState,
    record: &InboxRecord,
    event: moyasar::MoyasarEvent,
) -> Result<Outcome, ApiError> {
    let Some(payment) = event.payment() else {
        return Ok(Outcome::Acknowledged("webhook verification"));
    };
    match (event.live, state.config.sandbox) {
        (false, false) => {
            return Ok(Outcome::Ignored {
                status: "ignored_test_mode",
                reason: "a test-mode payment (live: false) never changes a live ledger",
            })
        }
        (true, true) => {
            return Ok(Outcome::Ignored {
                status: "ignored_live_mode",
                reason: "a live payment is not recorded in a sandbox ledger (REVLEDGER_SANDBOX)",
            })
        }
        _ => {}
    }
    let command = PaymentCommand::RecordGatewayStatus {
        payment_id: payment.id.clone(),
        invoice_id: payment.our_invoice_reference().map(str::to_owned),
        moyasar_invoice_id: payment.invoice_id.clone(),
        status: payment_status(payment.status),
        amount_halalas: payment.amount_halalas,
        fee_halalas: payment.fee_halalas,
        captured_halalas: payment.captured_halalas,
        refunded_halalas: payment.refunded_halalas,
        currency: payment.currency.clone(),
        at: event.created_at,
    };
    // A report that cannot follow what we know may be ahead of one still on its way.
    let out_of_order =
        |error: &PaymentError| matches!(error, PaymentError::IllegalTransition { .. });
    run_main(
        &state.handlers.payments,
        record,
        &payment.id,
        command,
        out_of_order,
    )
    .await
}

/// The lead with this email, waiting (bounded) for the CRM board to see every lead captured
/// before now.
async fn lead_by_email(state: &AppState, email: &str) -> Result<Option<String>, ApiError> {
    if let Some(board) = state.projector("crm_board") {
        if state.config.run_workers {
            board.wait_caught_up(EMAIL_LOOKUP_WAIT).await?;
        }
    }
    let row = state
        .store
        .sql()
        .fetch_optional(
            "SELECT lead_id FROM crm_board WHERE email = ? ORDER BY captured_at_us, lead_id LIMIT 1",
            &[email.to_lowercase().into()],
        )
        .await?;
    Ok(row.map(|row| row.text(0)).transpose()?)
}

/// The id a lead captured from a webhook gets: derived from what identifies it, so a repeat or
/// a concurrent delivery about the same person lands on the same lead.
fn derived_lead_id(key: &str) -> String {
    Uuid::new_v5(&INBOX_NAMESPACE, format!("lead:{key}").as_bytes()).to_string()
}

async fn apply_calendly(
    state: &AppState,
    record: &InboxRecord,
    event: calendly::CalendlyEvent,
) -> Result<Outcome, ApiError> {
    let invitee = &event.invitee;
    let known = lead_by_email(state, &invitee.email).await?;
    let lead_id = match (&event.kind, known) {
        (_, Some(lead_id)) => lead_id,
        (calendly::CalendlyEventKind::InviteeCreated, None) => {
            let lead_id = derived_lead_id(&format!("email:{}", invitee.email));
            let tracking = &invitee.tracking;
            let utm = (tracking.utm_source.is_some()
                || tracking.utm_medium.is_some()
                || tracking.utm_campaign.is_some())
            .then(|| Utm {
                source: tracking.utm_source.clone(),
                medium: tracking.utm_medium.clone(),
                campaign: tracking.utm_campaign.clone(),
            });
            let capture = LeadCommand::Capture {
                lead_id: lead_id.clone(),
                name: invitee.name.clone(),
                company: None,
                email: Some(invitee.email.clone()),
                phone: None,
                source: CALENDLY.to_owned(),
                partner_id: None,
                utm,
                owner: None,
                at: event.created_at,
            };
            let capture_id = Uuid::new_v5(
                &INBOX_NAMESPACE,
                format!("capture:{}", record.command_id()).as_bytes(),
            );
            match state
                .handlers
                .leads
                .execute(envelope(record, &lead_id, capture, capture_id, false))
                .await
            {
                Ok(_) | Err(CommandError::Rejected(LeadError::LeadAlreadyCaptured)) => {}
                Err(CommandError::Rejected(rule)) => return Ok(Outcome::Refused(rule.to_string())),
                Err(other) => return Err(ApiError::internal(other)),
            }
            lead_id
        }
        (_, None) => {
            return Ok(Outcome::Park(format!(
                "no lead with email {} yet",
                invitee.email
            )))
        }
    };
    let (command, waits_for_booking) = match &event.kind {
        calendly::CalendlyEventKind::InviteeCreated => (
            LeadCommand::BookDemo {
                booking_id: invitee.uri.clone(),
                scheduled_for: invitee.start_time,
                at: event.created_at,
            },
            false,
        ),
        calendly::CalendlyEventKind::InviteeCanceled {
            rescheduled,
            reason,
        } => (
            LeadCommand::CancelDemo {
                booking_id: invitee.uri.clone(),
                reason: reason
                    .clone()
                    .unwrap_or_else(|| "canceled by the invitee".to_owned()),
                rescheduled: *rescheduled,
                at: event.created_at,
            },
            true,
        ),
        calendly::CalendlyEventKind::InviteeNoShowCreated => (
            LeadCommand::RecordNoShow {
                booking_id: invitee.uri.clone(),
                at: event.created_at,
            },
            true,
        ),
    };
    // A cancel or no-show for a booking we have not seen yet waits for its invitee.created.
    let before_booking = move |error: &LeadError| {
        waits_for_booking
            && matches!(
                error,
                LeadError::NoDemoBooked { .. } | LeadError::DemoBookingMismatch { .. }
            )
    };
    run_main(
        &state.handlers.leads,
        record,
        &lead_id,
        command,
        before_booking,
    )
    .await
}

async fn apply_partner(
    state: &AppState,
    record: &InboxRecord,
    event: standard::PartnerSourceEvent,
) -> Result<Outcome, ApiError> {
    match event.kind {
        standard::PartnerSourceEventKind::LeadCaptured(lead) => {
            let lead_id = derived_lead_id(&format!("partners:{}", record.delivery_id));
            // The click that brought the lead is a referral of its own: the 30-day attribution
            // window runs from it, not from when the form was posted.
            if let (Some(partner_id), Some(clicked_at), false) =
                (&lead.partner_id, lead.referred_at, lead.email.is_empty())
            {
                let referral = PartnerCommand::RecordReferral {
                    lead_email: lead.email.clone(),
                    clicked_at,
                    at: event.occurred_at,
                };
                let id = Uuid::new_v5(
                    &INBOX_NAMESPACE,
                    format!("referral:{}", record.command_id()).as_bytes(),
                );
                match state
                    .handlers
                    .partners
                    .execute(envelope(record, partner_id, referral, id, false))
                    .await
                {
                    Ok(_) | Err(CommandError::Rejected(_)) => {}
                    Err(other) => return Err(ApiError::internal(other)),
                }
            }
            let command = LeadCommand::Capture {
                lead_id: lead_id.clone(),
                name: lead.name,
                company: Some(lead.company).filter(|c| !c.is_empty()),
                email: Some(lead.email).filter(|e| !e.is_empty()),
                phone: Some(lead.phone).filter(|p| !p.is_empty()),
                source: lead.source,
                partner_id: lead.partner_id,
                utm: None,
                owner: None,
                at: event
                    .occurred_at
                    .max(lead.referred_at.unwrap_or(event.occurred_at)),
            };
            run_main(&state.handlers.leads, record, &lead_id, command, |_| false).await
        }
        standard::PartnerSourceEventKind::PartnerApplied(applied) => {
            let partner_id = derived_lead_id(&format!("partner:{}", applied.email.to_lowercase()));
            let requested_tier = match applied.requested_tier {
                standard::RequestedTier::Referral => PartnerTier::Referral,
                standard::RequestedTier::Certified => PartnerTier::Certified,
                standard::RequestedTier::Strategic => PartnerTier::Strategic,
            };
            let command = PartnerCommand::Apply {
                partner_id: partner_id.clone(),
                name: applied.name,
                email: applied.email,
                requested_tier,
                at: event.occurred_at,
            };
            run_main(
                &state.handlers.partners,
                record,
                &partner_id,
                command,
                |_| false,
            )
            .await
        }
    }
}

/// Retries parked deliveries that are due, until shutdown.
pub async fn run_retries(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(error) = retry_due(&state, now()).await {
            tracing::warn!(%error, "webhook retry pass failed");
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY_POLL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One retry pass over parked deliveries due at `now`; returns how many were tried.
pub async fn retry_due(state: &AppState, now: OffsetDateTime) -> Result<usize, ApiError> {
    let due = inbox::due_for_retry(&state.store.sql(), now, inbox::MAX_LIST).await?;
    for entry in &due {
        retry(state, entry).await?;
    }
    Ok(due.len())
}

async fn retry(state: &AppState, entry: &InboxEntry) -> Result<Response, ApiError> {
    let body = entry.body();
    let provider: &'static str = match entry.provider.as_str() {
        MOYASAR => MOYASAR,
        CALENDLY => CALENDLY,
        _ => PARTNERS,
    };
    let mut record = InboxRecord::new(
        provider,
        &entry.delivery_id,
        &body,
        adapters::clock::from_unix_micros(entry.received_at_us).unwrap_or_else(now),
    );
    match parse(provider, &body) {
        Ok(delivery) => settle(state, record, delivery).await,
        Err(error) => {
            let detail = error.to_string();
            record.http_status = 400;
            record.response = json!({"error": "malformed", "detail": detail});
            inbox::record_without_events(&state.store.sql(), &record, "rejected", Some(&detail))
                .await?;
            Ok(json_response(StatusCode::BAD_REQUEST, record.response))
        }
    }
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
}

/// `GET /api/webhooks/dead-letters`: deliveries that never applied, with the reason.
/// A dead letter's body as listed. Moyasar authenticates by a `secret_token` field in the body,
/// which is our secret: it is listed as `[redacted]` (a replay uses the stored bytes).
fn listed_body(provider: &str, body: &[u8]) -> String {
    if provider == MOYASAR {
        if let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) {
            if map.contains_key("secret_token") {
                map.insert("secret_token".into(), json!("[redacted]"));
                return Value::Object(map).to_string();
            }
        }
    }
    String::from_utf8_lossy(body).into_owned()
}

pub async fn list_dead_letters(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    crate::auth::authenticate(&state, &headers)
        .await?
        .require_read(crate::auth::Area::Audit)?;
    let letters = inbox::dead_letters(&state.store.sql(), query.limit.unwrap_or(50)).await?;
    let items: Vec<Value> = letters
        .iter()
        .map(|entry| {
            json!({
                "id": entry.inbox_id,
                "provider": entry.provider,
                "delivery_id": entry.delivery_id,
                "received_at": projections::rfc3339(entry.received_at_us),
                "attempts": entry.attempts,
                "reason": entry.last_error,
                "body": listed_body(&entry.provider, &entry.body()),
            })
        })
        .collect();
    Ok(Json(json!({"dead_letters": items})))
}

/// `POST /api/webhooks/dead-letters/{id}/replay`: tries one dead letter again now.
pub async fn replay_dead_letter(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    crate::auth::authenticate(&state, &headers)
        .await?
        .require_change(crate::auth::Area::Finance)?;
    replay(&state, &id).await
}

/// Replays one dead letter (HTTP and CLI share this).
pub async fn replay(state: &AppState, inbox_id: &str) -> Result<Response, ApiError> {
    let entry = inbox::find_by_id(&state.store.sql(), inbox_id)
        .await?
        .filter(|entry| entry.status == "dead_lettered")
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {inbox_id}")))?;
    retry(state, &entry).await
}
