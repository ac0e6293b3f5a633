//! Query routes: one lead, invoice or partner; the funnel, the CRM board and its follow-ups, the
//! audit trail, revenue; and the auditor's feed (a stream's stored events, the whole log as
//! NDJSON, chain verification, projection lag).
//!
//! Every read-model route accepts:
//! - `as_of=<position|RFC 3339 time>`: the read model computed over the log up to then, in a
//!   scratch database ([`crate::finance::read_db`]); the aggregate routes fold their stream up
//!   to the same moment. A moment not reached yet reads everything committed so far.
//! - `after_position=N`: read-your-writes. The route waits, at most [`READ_YOUR_WRITES_WAIT`],
//!   until the projection it reads has applied every event up to position N (the position a
//!   command answered with), else answers 202 `{"status": "pending", "lag": …}`.
//!
//! Lists are paginated: `limit` (default [`DEFAULT_PAGE_SIZE`], at most [`MAX_PAGE_SIZE`]) and
//! the `cursor` a page returned as `next_cursor` (`null` on the last page). A cursor past the
//! end gives an empty page.

use std::time::Duration;

use adapters::store::{Checkpoint, RecordedEvent, MAX_READ_BATCH};
use app::command::{decode_event, CommandHandler};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cqrs_es::Aggregate;
use domain::lead::LeadStage;
use domain::partner::Partner;
use projections::AsOf;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::auth::{Area, Principal, Role};
use crate::finance::{command_error, read_db};
use crate::{ApiError, AppState};

/// Rows in a page when the request does not say.
pub const DEFAULT_PAGE_SIZE: i64 = 50;

/// Most rows one page returns: a page is one indexed range read and one JSON body of tens of
/// KiB at most.
pub const MAX_PAGE_SIZE: i64 = 200;

/// How long `after_position` waits for a projection before answering 202. Projections apply a
/// batch in milliseconds; two seconds behind means a backlog the caller should see, not wait on.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// How often a read-your-writes wait looks at the projection's checkpoint again.
const READ_YOUR_WRITES_POLL: Duration = Duration::from_millis(10);

/// Events the NDJSON feed sends when the request gives no `limit`.
pub const DEFAULT_FEED_EVENTS: u64 = 10_000;

/// Most events one feed request sends; a reader continues with `after=` its last position.
pub const MAX_FEED_EVENTS: u64 = 1_000_000;

/// Events read from the store per feed chunk: memory per request stays bounded by one batch.
pub const FEED_BATCH: usize = 1_000;

mod commissions;
mod invoices;

use commissions::{commission, commissions};
use invoices::{invoice, invoice_xml};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/leads/{id}", get(lead))
        .route("/api/invoices/{id}", get(invoice))
        .route("/api/invoices/{id}/xml", get(invoice_xml))
        .route("/api/partners/{id}", get(partner))
        .route("/api/commissions", get(commissions))
        .route("/api/commissions/{id}", get(commission))
        .route("/api/funnel", get(funnel))
        .route("/api/crm/board", get(crm_board))
        .route("/api/crm/follow-ups", get(follow_ups))
        .route("/api/audit", get(audit))
        .route("/api/revenue", get(revenue))
        .route("/api/streams/{stream_id}/events", get(stream_events))
        .route("/api/events", get(event_feed))
        .route("/api/verify", get(verify))
        .route("/api/projections", get(projections_lag))
}

/// The query parameters every read accepts, plus the filters of the lists.
#[derive(Deserialize, Default)]
pub struct ReadQuery {
    as_of: Option<String>,
    after_position: Option<i64>,
    cursor: Option<String>,
    limit: Option<i64>,
    stage: Option<String>,
    due_before: Option<String>,
    stream: Option<String>,
    actor: Option<String>,
    event_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    partner_id: Option<String>,
    status: Option<String>,
    period: Option<String>,
}

impl ReadQuery {
    fn as_of(&self) -> Result<Option<AsOf>, ApiError> {
        self.as_of
            .as_deref()
            .map(|text| {
                AsOf::parse(text).map_err(|detail| ApiError::BadRequest {
                    code: "invalid_as_of",
                    detail,
                    field: Some("as_of".into()),
                })
            })
            .transpose()
    }

    fn limit(&self) -> Result<i64, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if (1..=MAX_PAGE_SIZE).contains(&limit) {
            Ok(limit)
        } else {
            Err(bad_param(
                "limit",
                format!("limit {limit} is outside 1..={MAX_PAGE_SIZE}"),
            ))
        }
    }
}

pub(crate) fn bad_param(field: &str, detail: String) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_parameter",
        detail,
        field: Some(field.to_owned()),
    }
}

fn parse_time(field: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        bad_param(
            field,
            format!("{field} {text:?} is not an RFC 3339 time: {e}"),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Read-your-writes

/// Whether projection `name` has applied every committed event at or below `position`.
async fn has_applied(state: &AppState, name: &str, position: i64) -> Result<bool, ApiError> {
    let projector = state
        .projector(name)
        .ok_or_else(|| ApiError::internal(format!("no projector {name}")))?;
    Ok(projector.has_applied(position).await?)
}

/// `None` when the read may go ahead; the 202 answer when projection `name` has not reached
/// `after_position` within [`READ_YOUR_WRITES_WAIT`].
async fn pending(
    state: &AppState,
    name: &str,
    after_position: Option<i64>,
) -> Result<Option<Response>, ApiError> {
    let Some(position) = after_position else {
        return Ok(None);
    };
    let deadline = tokio::time::Instant::now() + READ_YOUR_WRITES_WAIT;
    loop {
        if has_applied(state, name, position).await? {
            return Ok(None);
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(READ_YOUR_WRITES_POLL).await;
    }
    let lag = match state.projector(name) {
        Some(projector) => serde_json::to_value(projector.lag().await?).unwrap_or(Value::Null),
        None => Value::Null,
    };
    Ok(Some(
        (
            StatusCode::ACCEPTED,
            Json(json!({
                "status": "pending",
                "projection": name,
                "after_position": position,
                "lag": lag,
            })),
        )
            .into_response(),
    ))
}

/// The aggregate `id` now, or folded from its stream up to `as_of`; 404 when it has no events
/// (by then).
async fn aggregate<A>(
    state: &AppState,
    handler: &CommandHandler<A>,
    id: &str,
    as_of: Option<AsOf>,
    what: &str,
) -> Result<(A, u64), ApiError>
where
    A: Aggregate<Services = ()> + Clone,
    A::Error: 'static,
    A::Command: Clone,
{
    let (aggregate, version) = match as_of {
        None => handler.load_aggregate(id).await.map_err(command_error)?,
        Some(moment) => aggregate_as_of::<A>(state, id, moment).await?,
    };
    if version == 0 {
        return Err(ApiError::NotFound(format!("no {what} {id}")));
    }
    Ok((aggregate, version))
}

fn included(moment: AsOf, event: &RecordedEvent) -> bool {
    match moment {
        AsOf::Position(position) => event.position <= position,
        AsOf::Time(at) => event.recorded_at <= at,
    }
}

async fn aggregate_as_of<A>(state: &AppState, id: &str, moment: AsOf) -> Result<(A, u64), ApiError>
where
    A: Aggregate<Services = ()> + Clone,
    A::Error: 'static,
    A::Command: Clone,
{
    let stream_id = CommandHandler::<A>::stream_id(id);
    let mut aggregate = A::default();
    let mut version = 0;
    loop {
        let batch = state
            .store
            .read_stream(&stream_id, version + 1, MAX_READ_BATCH)
            .await?;
        let full = batch.len() == MAX_READ_BATCH;
        // A stream's versions are appended one transaction after another, so its positions
        // and times rise with the version: the first event past the moment ends the fold.
        for event in batch {
            if !included(moment, &event) {
                return Ok((aggregate, version));
            }
            aggregate.apply(decode_event::<A>(&event).map_err(command_error)?);
            version = event.version;
        }
        if !full {
            return Ok((aggregate, version));
        }
    }
}

fn rfc3339(at: Option<OffsetDateTime>) -> Value {
    at.and_then(|at| at.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

// ---------------------------------------------------------------------------------------------
// One lead, invoice, partner

/// `GET /api/leads/{id}`: the CRM board's row with the lead aggregate's own state.
async fn lead(
    State(state): State<AppState>,
    principal: Principal,
    Path(lead_id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require_read(Area::Sales)?;
    let as_of = query.as_of()?;
    if let Some(answer) = pending(&state, "crm_board", query.after_position).await? {
        return Ok(answer);
    }
    let (lead, version) = aggregate(&state, &state.handlers.leads, &lead_id, as_of, "lead").await?;
    let db = read_db(&state, "crm_board", query.as_of.as_deref()).await?;
    let board = projections::crm_board::lead(&db, &lead_id).await?;
    Ok(Json(json!({
        "lead_id": lead_id,
        "stage": lead.stage(),
        "version": version,
        "partner_id": lead.partner_id(),
        "demo_booking_id": lead.demo_booking_id(),
        "proposed_plan": lead.proposed_plan(),
        "invoice_id": lead.invoice_id(),
        "follow_ups_since_response": lead.follow_ups_since_response(),
        "next_follow_up_due": rfc3339(lead.next_follow_up_due()),
        "board": board,
    }))
    .into_response())
}

/// `GET /api/partners/{id}`: the partner aggregate; a partner token sees only its own.
async fn partner(
    State(state): State<AppState>,
    principal: Principal,
    Path(partner_id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require_partner(&partner_id)?;
    let as_of = query.as_of()?;
    let (partner, version): (Partner, u64) = aggregate(
        &state,
        &state.handlers.partners,
        &partner_id,
        as_of,
        "partner",
    )
    .await?;
    let tier = partner.tier();
    Ok(Json(json!({
        "partner_id": partner_id,
        "version": version,
        "status": partner.status(),
        "tier": tier,
        "requested_tier": partner.requested_tier(),
        "commission_rate_bps": tier.map(|t| t.commission_rate_bps()),
        "revenue_share_bps": tier.map(|t| t.revenue_share_bps()),
        "activated_customers": partner.activated_customers(),
        "referrals": partner.referrals().count(),
    }))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Read models

/// A whole read model as its projection renders it.
async fn rendered(state: &AppState, name: &str, query: &ReadQuery) -> Result<Response, ApiError> {
    query.as_of()?;
    if let Some(answer) = pending(state, name, query.after_position).await? {
        return Ok(answer);
    }
    let db = read_db(state, name, query.as_of.as_deref()).await?;
    let model = projections::read_model(name)?;
    Ok(Json(model.render(&db).await?).into_response())
}

/// `GET /api/funnel`.
async fn funnel(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require_read(Area::Sales)?;
    rendered(&state, "funnel", &query).await
}

/// `GET /api/revenue`: MRR, ARPU, plan mix, pilot conversion.
async fn revenue(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require_read(Area::Finance)?;
    rendered(&state, "revenue", &query).await
}

/// One page of rows and where the next starts.
fn page(items: Vec<Value>, limit: i64, next: Option<String>) -> Value {
    let more = items.len() as i64 > limit;
    let items: Vec<Value> = items.into_iter().take(limit as usize).collect();
    json!({
        "items": items,
        "next_cursor": if more { next } else { None },
    })
}

/// `GET /api/crm/board?stage=&cursor=&limit=`: leads ordered by id.
async fn crm_board(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require_read(Area::Sales)?;
    let limit = query.limit()?;
    query.as_of()?;
    let stage = query
        .stage
        .as_ref()
        .map(|stage| {
            serde_json::from_value::<LeadStage>(Value::String(stage.clone())).map_err(|_| {
                bad_param(
                    "stage",
                    format!("no stage {stage:?}: use new, qualified, demo_booked, proposal, paid, onboarding, active or archived"),
                )
            })
        })
        .transpose()?;
    if let Some(answer) = pending(&state, "crm_board", query.after_position).await? {
        return Ok(answer);
    }
    let db = read_db(&state, "crm_board", query.as_of.as_deref()).await?;
    let page = projections::crm_board::board(&db, stage, query.cursor.as_deref(), limit).await?;
    Ok(Json(page).into_response())
}

/// A follow-up cursor: `<due microseconds>:<lead id>`.
fn follow_up_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    cursor
        .split_once(':')
        .and_then(|(due, lead)| Some((due.parse().ok()?, lead.to_owned())))
        .ok_or_else(|| {
            bad_param(
                "cursor",
                format!("{cursor:?} is not a cursor this list gave"),
            )
        })
}

/// `GET /api/crm/follow-ups?due_before=`: leads whose next follow-up is due (by now, or by
/// `due_before`), soonest first.
async fn follow_ups(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require_read(Area::Sales)?;
    let limit = query.limit()?;
    query.as_of()?;
    let due_before = match &query.due_before {
        Some(text) => parse_time("due_before", text)?,
        None => adapters::clock::now_micros(),
    };
    let after = query.cursor.as_deref().map(follow_up_cursor).transpose()?;
    if let Some(answer) = pending(&state, "crm_board", query.after_position).await? {
        return Ok(answer);
    }
    let db = read_db(&state, "crm_board", query.as_of.as_deref()).await?;
    let due_before_us = adapters::clock::unix_micros(due_before);
    let page = projections::crm_board::follow_ups_due(&db, due_before_us, after, limit).await?;
    let mut answer = serde_json::to_value(page).map_err(ApiError::internal)?;
    answer["due_before"] = rfc3339(Some(due_before));
    Ok(Json(answer).into_response())
}

/// `GET /api/audit?stream=&actor=&event_type=&from=&to=&cursor=&limit=`: the audit trail
/// in the order the audit projection saw it (`seq`), oldest first.
async fn audit(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require_read(Area::Audit)?;
    let limit = query.limit()?;
    query.as_of()?;
    let micros = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| parse_time(field, text).map(adapters::clock::unix_micros))
            .transpose()
    };
    let cursor = query
        .cursor
        .as_deref()
        .map(|cursor| {
            cursor.parse::<i64>().map_err(|_| {
                bad_param(
                    "cursor",
                    format!("{cursor:?} is not an audit sequence number"),
                )
            })
        })
        .transpose()?;
    let audit_query = projections::audit_log::AuditQuery {
        stream: query.stream.as_deref(),
        stream_type_too: false,
        actor: query.actor.as_deref(),
        event_type: query.event_type.as_deref(),
        from_us: micros("from", &query.from)?,
        to_us: micros("to", &query.to)?,
        cursor,
        newest_first: false,
        limit,
    };
    if let Some(answer) = pending(&state, "audit_log", query.after_position).await? {
        return Ok(answer);
    }
    let db = read_db(&state, "audit_log", query.as_of.as_deref()).await?;
    let page = projections::audit_log::entries_as_of(&state.store.sql(), &db, &audit_query).await?;
    Ok(Json(page).into_response())
}

// ---------------------------------------------------------------------------------------------
// The auditor's feed

/// `GET /api/streams/{stream_id}/events?cursor=<version>&limit=`: a stream's events as
/// stored, with their hashes, in version order.
async fn stream_events(
    State(state): State<AppState>,
    principal: Principal,
    Path(stream_id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require_read(Area::Audit)?;
    let limit = query.limit()?;
    let after_version: u64 = match &query.cursor {
        Some(cursor) => cursor
            .parse()
            .map_err(|_| bad_param("cursor", format!("{cursor:?} is not a stream version")))?,
        None => 0,
    };
    if state.store.read_stream(&stream_id, 1, 1).await?.is_empty() {
        return Err(ApiError::NotFound(format!("no stream {stream_id}")));
    }
    let events = state
        .store
        .read_stream(
            &stream_id,
            after_version.saturating_add(1),
            limit as usize + 1,
        )
        .await?;
    let next = events
        .get(limit as usize - 1)
        .map(|event| event.version.to_string());
    let items = events
        .iter()
        .map(|event| serde_json::to_value(event).map_err(ApiError::internal))
        .collect::<Result<Vec<_>, _>>()?;
    let mut answer = page(items, limit, next);
    answer["stream_id"] = stream_id.into();
    Ok(Json(answer).into_response())
}

#[derive(Deserialize)]
pub struct FeedQuery {
    after: Option<i64>,
    limit: Option<u64>,
}

/// Where the feed reads next and how much it may still send.
struct Feed {
    store: std::sync::Arc<dyn adapters::store::EventStore>,
    checkpoint: Checkpoint,
    after: i64,
    remaining: u64,
}

impl Feed {
    /// The next non-empty chunk of NDJSON lines, or `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, adapters::store::StoreError> {
        while self.remaining > 0 {
            let batch = self
                .store
                .read_committed(self.checkpoint, FEED_BATCH)
                .await?;
            let Some(last) = batch.last() else {
                return Ok(None);
            };
            self.checkpoint = Checkpoint::after(last);
            let mut chunk = Vec::new();
            for event in batch.iter().filter(|event| event.position > self.after) {
                if self.remaining == 0 {
                    break;
                }
                serde_json::to_writer(&mut chunk, event).map_err(|e| {
                    adapters::store::StoreError::Corrupt {
                        position: event.position,
                        reason: e.to_string(),
                    }
                })?;
                chunk.push(b'\n');
                self.remaining -= 1;
            }
            if !chunk.is_empty() {
                return Ok(Some(Bytes::from(chunk)));
            }
        }
        Ok(None)
    }
}

/// `GET /api/events?after=<position>&limit=`: every committed event after `after`, in commit
/// order, one JSON object per line, streamed batch by batch.
async fn event_feed(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    principal.require_read(Area::Audit)?;
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(bad_param("after", format!("after {after} is negative")));
    }
    let limit = query.limit.unwrap_or(DEFAULT_FEED_EVENTS);
    if !(1..=MAX_FEED_EVENTS).contains(&limit) {
        return Err(bad_param(
            "limit",
            format!("limit {limit} is outside 1..={MAX_FEED_EVENTS}"),
        ));
    }
    // Commit order is not position order on PostgreSQL: the store finds where the events
    // above `after` begin in commit order, and the feed skips any at or below it.
    let checkpoint = state.store.checkpoint_before(after).await?;
    let feed = Feed {
        store: state.store.clone(),
        checkpoint,
        after,
        remaining: limit,
    };
    let stream = futures_util::stream::unfold(Some(feed), |feed| async move {
        let mut feed = feed?;
        match feed.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(feed))),
            Ok(None) => None,
            Err(error) => {
                tracing::error!(%error, "the event feed stopped");
                Some((Err(std::io::Error::other(error.to_string())), None))
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `GET /api/verify`: every stream's hash chain and the audit trail's running hash and seals.
async fn verify(State(state): State<AppState>, principal: Principal) -> Result<Response, ApiError> {
    principal.require_read(Area::Audit)?;
    let chains = adapters::store::verify(state.store.as_ref()).await?;
    let seals =
        projections::audit_log::verify_seals(state.store.as_ref(), &state.store.sql()).await?;
    let intact = chains.is_intact() && seals.first_break.is_none();
    crate::metrics::chain_intact(intact);
    Ok(Json(json!({
        "status": if intact { "intact" } else { "broken" },
        "intact": intact,
        "chains": chains,
        "audit": seals,
    }))
    .into_response())
}

/// `GET /api/projections`: each projection's checkpoint and lag (any staff role: the
/// dashboard shows it to everyone who reads a projection).
async fn projections_lag(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    if principal.role == Role::Partner {
        return Err(ApiError::Forbidden(
            "the partner role cannot read this".into(),
        ));
    }
    let db = state.store.sql();
    let mut lags = Vec::with_capacity(state.projectors.len());
    for projector in state.projectors.iter() {
        let mut lag = serde_json::to_value(projector.lag().await?).map_err(ApiError::internal)?;
        let quarantined = projections::quarantine::listed(&db, projector.name()).await?;
        lag["quarantined_events"] =
            serde_json::to_value(quarantined).map_err(ApiError::internal)?;
        lags.push(lag);
    }
    Ok(Json(json!({"projections": lags})).into_response())
}
