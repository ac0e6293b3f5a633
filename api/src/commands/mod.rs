//! Command routes: leads (the sales area), invoices and partner enrollment (the finance area).
//!
//! Every route authenticates and checks the role first (so a caller without the right learns
//! nothing about ids or bodies), then parses the body, then runs the command under
//! [`finance::idempotent`]: the same `Idempotency-Key` with the same body gets the first answer
//! again, with another body 422. Ids the server makes up (a lead's, an invoice's, a partner's)
//! are derived from the Idempotency-Key when there is one, so a retry after a lost answer lands
//! on the same aggregate and its command id is recognised by the store.
//!
//! Times are the server's clock ([`adapters::clock::now_micros`]) except where the time is
//! business data the caller knows (a demo's `scheduled_for`).
//!
//! Each answer carries the resulting stream version and global position (see
//! [`finance::command_answer`]); pass the position as `after_position` to a query to read
//! your own write.

use app::command::{CommandEnvelope, CommandHandler, CommandOutcome};
use app::partners::{change_partner_tier, TierChangeError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use domain::lead::{ArchiveReason, FollowUpChannel, LeadCommand, Utm};
use domain::partner::{
    Partner, PartnerCommand, PartnerTier, MAX_STRATEGIC_PARTNERS, PARTNER_PROGRAM_ID,
};
use domain::plan::Plan;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{Area, Principal};
use crate::finance::{command_answer, command_error, idempotent, metadata, RequestId};
use crate::input::{parse_body as parse, parse_optional_body};
use crate::{ApiError, AppState};

mod invoices;

pub use invoices::invoice_view;
use invoices::{cancel_invoice, create_invoice, reissue_invoice};

/// Days an invoice is payable when the request does not say.
pub const DEFAULT_DUE_DAYS: i64 = 14;

/// The longest payment term accepted: a year covers every plan's billing period with room.
pub const MAX_DUE_DAYS: i64 = 365;

/// Most lines one invoice may carry. Invoices here sell a plan or a handful of services; the
/// bound keeps one allocation (which stores the whole document) small.
pub const MAX_INVOICE_LINES: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/leads", post(capture_lead))
        .route("/api/leads/{id}/{action}", post(lead_action))
        .route("/api/invoices", post(create_invoice))
        .route("/api/invoices/{id}/cancel", post(cancel_invoice))
        .route("/api/invoices/{id}/reissue", post(reissue_invoice))
        .route("/api/partners", post(enroll_partner))
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!("no {what} {id}"))
}

fn bad_field(field: &str, detail: String) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_field",
        detail,
        field: Some(field.to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// Leads

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureRequest {
    lead_id: Option<String>,
    name: String,
    company: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    source: String,
    partner_id: Option<String>,
    utm: Option<Utm>,
    owner: Option<String>,
}

/// An id the caller may leave out, but not send blank.
fn not_blank(field: &'static str, id: Option<&str>) -> Result<(), ApiError> {
    if id.is_some_and(|id| id.trim().is_empty()) {
        return Err(bad_field(field, format!("{field} must not be empty")));
    }
    Ok(())
}

/// `POST /api/leads`: capture a lead (201).
async fn capture_lead(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Sales)?;
    let request: CaptureRequest = parse(&body)?;
    not_blank("lead_id", request.lead_id.as_deref())?;
    let (state, principal, headers) = (&state, &principal, &headers);
    idempotent(
        state,
        principal,
        headers,
        "POST /api/leads",
        &body,
        |id: RequestId| async move {
            let lead_id = request.lead_id.unwrap_or_else(|| id.assigned_id());
            let envelope = id.envelope(
                lead_id.clone(),
                LeadCommand::Capture {
                    lead_id: lead_id.clone(),
                    name: request.name,
                    company: request.company,
                    email: request.email,
                    phone: request.phone,
                    source: request.source,
                    partner_id: request.partner_id,
                    utm: request.utm,
                    owner: request.owner,
                    at: adapters::clock::now_micros(),
                },
                metadata(principal, headers),
            );
            let outcome = state
                .handlers
                .leads
                .execute(envelope)
                .await
                .map_err(command_error)?;
            Ok((StatusCode::CREATED, with_id("lead_id", &lead_id, &outcome)))
        },
    )
    .await
}

/// The body of every lead action; each action reads the fields it needs.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LeadActionRequest {
    booking_id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    scheduled_for: Option<OffsetDateTime>,
    plan: Option<Plan>,
    /// `cold` or `lost` when archiving; why, when canceling a demo.
    reason: Option<String>,
    note: Option<String>,
    rescheduled: Option<bool>,
    channel: Option<FollowUpChannel>,
    responded: Option<bool>,
}

fn required<T>(value: Option<T>, field: &str, action: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::BadRequest {
        code: "missing_field",
        detail: format!("{action} needs the field {field:?}"),
        field: Some(field.to_owned()),
    })
}

/// The lead command an action path and body ask for.
fn lead_command(
    action: &str,
    request: LeadActionRequest,
    at: OffsetDateTime,
) -> Result<LeadCommand, ApiError> {
    Ok(match action {
        "qualify" => LeadCommand::Qualify { at },
        "book-demo" => LeadCommand::BookDemo {
            booking_id: required(request.booking_id, "booking_id", action)?,
            scheduled_for: required(request.scheduled_for, "scheduled_for", action)?,
            at,
        },
        "cancel-demo" => LeadCommand::CancelDemo {
            booking_id: required(request.booking_id, "booking_id", action)?,
            reason: request.reason.unwrap_or_default(),
            rescheduled: request.rescheduled.unwrap_or(false),
            at,
        },
        "no-show" => LeadCommand::RecordNoShow {
            booking_id: required(request.booking_id, "booking_id", action)?,
            at,
        },
        "proposal" => LeadCommand::SendProposal {
            plan: required(request.plan, "plan", action)?,
            at,
        },
        "onboard" => LeadCommand::StartOnboarding { at },
        "activate" => LeadCommand::Activate { at },
        "archive" => {
            let reason = match required(request.reason, "reason", action)?.as_str() {
                "cold" => ArchiveReason::Cold,
                "lost" => ArchiveReason::Lost {
                    note: request.note.unwrap_or_default(),
                },
                other => {
                    return Err(bad_field(
                        "reason",
                        format!("archive reason {other:?} is neither \"cold\" nor \"lost\""),
                    ))
                }
            };
            LeadCommand::Archive { reason, at }
        }
        "reopen" => LeadCommand::Reopen { at },
        "follow-ups" => LeadCommand::LogFollowUp {
            channel: required(request.channel, "channel", action)?,
            note: request.note.unwrap_or_default(),
            responded: request.responded.unwrap_or(false),
            at,
        },
        other => {
            return Err(ApiError::NotFound(format!(
                "no lead action {other:?}: use qualify, book-demo, cancel-demo, no-show, \
                 proposal, onboard, activate, archive, reopen or follow-ups"
            )))
        }
    })
}

/// `POST /api/leads/{id}/{action}`: move a lead through the funnel or log a follow-up.
async fn lead_action(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path((lead_id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Sales)?;
    let request: LeadActionRequest = parse_optional_body(&body)?;
    let command = lead_command(&action, request, adapters::clock::now_micros())?;
    let status = if action == "follow-ups" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let path = format!("POST /api/leads/{lead_id}/{action}");
    let (state, principal, headers) = (&state, &principal, &headers);
    idempotent(
        state,
        principal,
        headers,
        &path,
        &body,
        |id: RequestId| async move {
            let envelope = id.envelope(lead_id.clone(), command, metadata(principal, headers));
            let outcome = state
                .handlers
                .leads
                .execute_existing(envelope)
                .await
                .map_err(command_error)?
                .ok_or_else(|| not_found("lead", &lead_id))?;
            Ok((status, with_id("lead_id", &lead_id, &outcome)))
        },
    )
    .await
}

/// 404 unless the aggregate has at least one event.
async fn require_existing<A>(
    handler: &CommandHandler<A>,
    id: &str,
    what: &str,
) -> Result<A, ApiError>
where
    A: cqrs_es::Aggregate<Services = ()> + Clone,
    A::Error: 'static,
    A::Command: Clone,
{
    let (aggregate, version) = handler.load_aggregate(id).await.map_err(command_error)?;
    if version == 0 {
        return Err(not_found(what, id));
    }
    Ok(aggregate)
}

/// The command answer with the aggregate's id in front.
fn with_id(name: &str, id: &str, outcome: &CommandOutcome) -> Value {
    let mut answer = command_answer(outcome);
    answer[name] = Value::from(id);
    answer
}

// ---------------------------------------------------------------------------------------------
// Partners

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    partner_id: Option<String>,
    name: String,
    email: String,
    #[serde(default = "referral")]
    tier: PartnerTier,
}

fn referral() -> PartnerTier {
    PartnerTier::Referral
}

/// `POST /api/partners`: enroll a partner (201). A Strategic partner is enrolled as Referral
/// and then promoted through the program's slots, so the limit of
/// [`MAX_STRATEGIC_PARTNERS`] holds however the partner arrives.
async fn enroll_partner(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Finance)?;
    let request: EnrollRequest = parse(&body)?;
    not_blank("partner_id", request.partner_id.as_deref())?;
    let (state, principal, headers) = (&state, &principal, &headers);
    idempotent(
        state,
        principal,
        headers,
        "POST /api/partners",
        &body,
        |id: RequestId| async move {
            let partner_id = request
                .partner_id
                .clone()
                .unwrap_or_else(|| id.assigned_id());
            let strategic = request.tier == PartnerTier::Strategic;
            if strategic {
                require_strategic_slot(state).await?;
            }
            let enroll_tier = if strategic {
                PartnerTier::Referral
            } else {
                request.tier
            };
            let at = adapters::clock::now_micros();
            let mut outcome = state
                .handlers
                .partners
                .execute(CommandEnvelope {
                    aggregate_id: partner_id.clone(),
                    command_id: id.command_id,
                    command: PartnerCommand::Enroll {
                        partner_id: partner_id.clone(),
                        name: request.name.clone(),
                        email: request.email.clone(),
                        tier: enroll_tier,
                        at,
                    },
                    metadata: metadata(principal, headers),
                    inbox: None,
                    fresh_id: false,
                })
                .await
                .map_err(command_error)?;
            if strategic {
                outcome =
                    promote_to_strategic(state, principal, headers, &partner_id, id.command_id, at)
                        .await?;
            }
            let mut answer = with_id("partner_id", &partner_id, &outcome);
            answer["tier"] = json!(request.tier);
            Ok((StatusCode::CREATED, answer))
        },
    )
    .await
}

/// 422 when every Strategic slot is taken (checked again, atomically, by the promotion).
async fn require_strategic_slot(state: &AppState) -> Result<(), ApiError> {
    let slots_taken = state
        .handlers
        .partner_program
        .inspect(PARTNER_PROGRAM_ID, |program, _| program.slots_taken())
        .await
        .map_err(command_error)?;
    if slots_taken >= MAX_STRATEGIC_PARTNERS {
        return Err(ApiError::Unprocessable {
            code: "rejected",
            detail: format!(
                "all {MAX_STRATEGIC_PARTNERS} Strategic slots are taken; enroll at another tier"
            ),
            field: None,
        });
    }
    Ok(())
}

async fn promote_to_strategic(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    partner_id: &str,
    enroll_command_id: Uuid,
    at: OffsetDateTime,
) -> Result<CommandOutcome, ApiError> {
    let (partner, _): (Partner, u64) = state
        .handlers
        .partners
        .load_aggregate(partner_id)
        .await
        .map_err(command_error)?;
    let promotion_id = Uuid::new_v5(
        &adapters::inbox::INBOX_NAMESPACE,
        format!("{enroll_command_id}:strategic").as_bytes(),
    );
    if partner.tier() == Some(PartnerTier::Strategic) {
        // A retry of an enrollment whose promotion already happened.
        if let Some(original) = state.store.find_command(promotion_id).await? {
            return Ok(CommandOutcome {
                stream_id: original.stream_id,
                version: original.last_version,
                first_position: Some(original.first_position),
                last_position: Some(original.last_position),
                events_appended: original.last_version - original.first_version + 1,
                replayed: true,
            });
        }
    }
    change_partner_tier(
        &state.handlers,
        partner_id,
        PartnerTier::Strategic,
        "enrolled as a Strategic partner",
        at,
        promotion_id,
        metadata(principal, headers),
    )
    .await
    .map_err(|error| match error {
        TierChangeError::Program(e) => ApiError::Unprocessable {
            code: "rejected",
            detail: format!("{e}; partner {partner_id} stays enrolled as Referral"),
            field: None,
        },
        TierChangeError::Partner(e) => command_error(e),
    })
}
