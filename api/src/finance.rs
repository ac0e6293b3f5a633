//! Finance routes: the ledger, reconciliation, partner statements, payouts, referrals, tiers
//! and commission decisions.

use adapters::idempotency::{self, Claim};
use adapters::store::EventMetadata;
use app::command::{CommandEnvelope, CommandError, CommandOutcome};
use app::commissions::Decision;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::money::MoneyError;
use domain::partner::{PartnerCommand, PartnerTier};
use projections::as_of::AsOfAnswer;
use projections::reconciliation::{
    Cursor, PageRequest, ReconciliationReport, DEFAULT_PAGE_MISMATCHES, MAX_PAGE_MISMATCHES,
};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{Area, Principal};
use crate::input::parse_body;
use crate::queries::bad_param;
use crate::{ApiError, AppState};

/// How long a command that reads a read model first waits for it to catch up.
pub const READ_MODEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Deserialize)]
pub struct AsOfQuery {
    as_of: Option<String>,
    limit: Option<i64>,
    /// The trial balance's page: accounts after this name.
    cursor: Option<String>,
}

/// The database a read model is read from: live, or computed as of a past moment.
pub async fn read_db(
    state: &AppState,
    projection: &str,
    as_of: Option<&str>,
) -> Result<adapters::sql::SqlDb, ApiError> {
    let Some(text) = as_of else {
        return Ok(state.store.sql());
    };
    let moment = projections::AsOf::parse(text).map_err(|detail| ApiError::BadRequest {
        code: "invalid_as_of",
        detail,
        field: Some("as_of".into()),
    })?;
    let projector = state
        .projector(projection)
        .ok_or_else(|| ApiError::internal(format!("no projector {projection}")))?;
    let answered = state.as_of.read_db(projector, moment).await;
    let label = match &answered {
        Ok((_, answer)) => answer.as_str(),
        Err(projections::as_of::AsOfError::Busy { .. }) => AsOfAnswer::Busy.as_str(),
        Err(_) => "failed",
    };
    crate::metrics::as_of_read(projection, label);
    Ok(answered?.0)
}

/// Accounts a trial balance lists when the caller names no `limit`.
const TRIAL_BALANCE_PAGE: i64 = 1_000;

pub async fn trial_balance(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<AsOfQuery>,
) -> Result<Json<Value>, ApiError> {
    principal.require_read(Area::Finance)?;
    let db = read_db(&state, "ledger", query.as_of.as_deref()).await?;
    let limit = query.limit.unwrap_or(TRIAL_BALANCE_PAGE);
    Ok(Json(
        projections::ledger::trial_balance(&db, query.cursor.as_deref(), Some(limit)).await?,
    ))
}

pub async fn ledger_account(
    State(state): State<AppState>,
    principal: Principal,
    Path(account): Path<String>,
    Query(query): Query<AsOfQuery>,
) -> Result<Json<Value>, ApiError> {
    principal.require_read(Area::Finance)?;
    let db = read_db(&state, "ledger", query.as_of.as_deref()).await?;
    let limit = query
        .limit
        .unwrap_or(100)
        .clamp(1, projections::ledger::MAX_ACCOUNT_LINES);
    let answer = projections::ledger::account(&db, &account, limit).await?;
    // An account exists once something is posted to it; a name never posted to is a typo or a
    // guess, not an empty account.
    if answer["lines_total"].as_i64() == Some(0) {
        return Err(ApiError::NotFound(format!(
            "no account {account} in the journal (nothing posted to it)"
        )));
    }
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub struct ReconciliationQuery {
    as_of: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/reconciliation?limit=&cursor=&as_of=`: the counts of the whole open mismatch set
/// and one page of it.
pub async fn reconciliation(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ReconciliationQuery>,
) -> Result<Json<ReconciliationReport>, ApiError> {
    principal.require_read(Area::Finance)?;
    let limit = query
        .limit
        .unwrap_or(DEFAULT_PAGE_MISMATCHES as i64)
        .try_into()
        .ok()
        .filter(|limit| (1..=MAX_PAGE_MISMATCHES).contains(limit))
        .ok_or_else(|| {
            bad_param(
                "limit",
                format!("limit is outside 1..={MAX_PAGE_MISMATCHES}"),
            )
        })?;
    let after = query
        .cursor
        .as_deref()
        .map(|text| {
            Cursor::parse(text).ok_or_else(|| {
                bad_param("cursor", format!("{text:?} is not a cursor this list gave"))
            })
        })
        .transpose()?;
    let db = read_db(&state, "reconciliation", query.as_of.as_deref()).await?;
    let page = PageRequest { after, limit };
    Ok(Json(
        projections::reconciliation::report_page(&db, &page).await?,
    ))
}

pub(crate) fn valid_month(month: &str) -> bool {
    let bytes = month.as_bytes();
    bytes.len() == 7
        && bytes[4] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || b.is_ascii_digit())
        && matches!(month[5..].parse::<u8>(), Ok(1..=12))
}

/// `GET /api/partners/{id}/statements/{YYYY-MM}` (JSON) or `…/{YYYY-MM}.csv`.
pub async fn statement(
    State(state): State<AppState>,
    principal: Principal,
    Path((partner_id, month)): Path<(String, String)>,
    Query(query): Query<AsOfQuery>,
) -> Result<Response, ApiError> {
    principal.require_partner(&partner_id)?;
    let (_, version) = state
        .handlers
        .partners
        .load_aggregate(&partner_id)
        .await
        .map_err(command_error)?;
    if version == 0 {
        return Err(ApiError::NotFound(format!("no partner {partner_id}")));
    }
    let (month, csv) = match month.strip_suffix(".csv") {
        Some(month) => (month.to_owned(), true),
        None => (month, false),
    };
    if !valid_month(&month) {
        return Err(ApiError::BadRequest {
            code: "invalid_month",
            detail: format!("{month:?} is not a month: use YYYY-MM, e.g. 2026-11"),
            field: Some("month".into()),
        });
    }
    let db = read_db(&state, "partner_statements", query.as_of.as_deref()).await?;
    let mut statement = projections::statements::statement(&db, &partner_id, &month).await?;
    if csv {
        // Opened before the CSV is written, so that its guard against formulas sees the values
        // (the edge's `personal::reveal` leaves CSV alone).
        if let Some(vault) = state.store.vault() {
            vault.reveal_json(&mut statement).await?;
        }
        let body = projections::statements::statement_csv(&statement)?;
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(Json(statement).into_response())
}

/// The answer to a command: where it landed.
pub fn command_answer(outcome: &CommandOutcome) -> Value {
    json!({
        "stream_id": outcome.stream_id,
        "version": outcome.version,
        "position": outcome.last_position,
        "events": outcome.events_appended,
        "replayed": outcome.replayed,
    })
}

/// A refused, conflicting or failed command as an API error.
pub fn command_error<E: std::error::Error + 'static>(error: CommandError<E>) -> ApiError {
    match error {
        CommandError::Rejected(rule) => ApiError::Unprocessable {
            code: "rejected",
            detail: rule.to_string(),
            field: field_at_fault(&rule),
        },
        CommandError::Conflict { stream_id } => {
            ApiError::Conflict(format!("{stream_id} changed concurrently; retry"))
        }
        CommandError::Store(error) => error.into(),
        other => ApiError::internal(other),
    }
}

/// The field a refusal names, when a rule about one field was broken (an amount beyond the
/// ceiling), found through the error's sources.
fn field_at_fault(rule: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(rule);
    while let Some(error) = cause {
        if let Some(MoneyError::AboveCeiling { field, .. }) = error.downcast_ref::<MoneyError>() {
            return Some(field.clone());
        }
        cause = error.source();
    }
    None
}

/// The metadata of an API request's events: who asked, through the API, under which request id.
pub fn metadata(principal: &Principal, headers: &HeaderMap) -> EventMetadata {
    metadata_from(principal, headers, "api")
}

/// The metadata of events a signed-in principal's request causes through `source` (`api`,
/// `dashboard`).
pub fn metadata_from(principal: &Principal, headers: &HeaderMap, source: &str) -> EventMetadata {
    EventMetadata {
        actor: Some(principal.actor()),
        source: Some(source.into()),
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ..Default::default()
    }
}

/// The command id a request runs under.
#[derive(Clone, Copy, Debug)]
pub struct RequestId {
    pub command_id: Uuid,
    /// No earlier attempt can have run under this id (it was minted for this request), so the
    /// command log need not be asked about it ([`CommandEnvelope::fresh_id`]).
    pub fresh: bool,
    /// The request carries an `Idempotency-Key`: a retry runs under the same id.
    pub keyed: bool,
}

impl RequestId {
    /// The envelope of the one command this request runs, under this request's id.
    pub fn envelope<C>(
        &self,
        aggregate_id: String,
        command: C,
        metadata: EventMetadata,
    ) -> CommandEnvelope<C> {
        CommandEnvelope {
            aggregate_id,
            command_id: self.command_id,
            command,
            metadata,
            inbox: None,
            fresh_id: self.fresh,
        }
    }

    /// The id of an aggregate this request creates when the caller names none: the command id
    /// under a key (so a retry names the same aggregate), a fresh time-ordered id otherwise.
    pub fn assigned_id(&self) -> String {
        if self.keyed {
            self.command_id.to_string()
        } else {
            Uuid::now_v7().to_string()
        }
    }
}

/// How long a claimed key may go without an answer before another request with it takes it
/// over: a request is cut off at the request timeout, and its claim released as it ends, so a
/// claim older than that (plus a margin for the release itself) belongs to a process that died.
fn claim_stale_after(state: &AppState) -> std::time::Duration {
    state.config.request_timeout + CLAIM_RELEASE_MARGIN
}

/// What [`claim_stale_after`] adds to the request timeout.
const CLAIM_RELEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `command` under Stripe's idempotency contract when the request carries an
/// `Idempotency-Key` ([`adapters::idempotency`]): the key is claimed before the command runs;
/// while it runs, the same key is 409; once it has succeeded, the same key and body get that
/// answer again (with `Idempotent-Replayed: true`), another request or body 422. An error is
/// not kept: the same key and body run again (under the same command id). An empty or
/// malformed key is 400. Without a key the command runs under a fresh id.
pub async fn idempotent<F, Fut>(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    request: &str,
    body: &Bytes,
    command: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(RequestId) -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let Some(raw_key) = headers.get("idempotency-key") else {
        let id = RequestId {
            command_id: Uuid::now_v7(),
            fresh: true,
            keyed: false,
        };
        let (status, value) = command(id).await?;
        return Ok((status, Json(value)).into_response());
    };
    let bad_key = |detail: String| ApiError::BadRequest {
        code: "invalid_idempotency_key",
        detail,
        field: Some("Idempotency-Key".into()),
    };
    let key = raw_key
        .to_str()
        .map_err(|_| bad_key(idempotency::KeyError::NotPrintable.to_string()))?;
    idempotency::validate_key(key).map_err(|error| bad_key(error.to_string()))?;
    let db = state.store.sql();
    let body_sha256 = adapters::inbox::body_sha256(body);
    let keyed = idempotency::KeyedRequest {
        principal: &principal.token_id,
        key,
        request,
        body_sha256: &body_sha256,
    };
    let now = adapters::clock::now_micros();
    let (command_id, fresh) =
        match idempotency::claim(&db, keyed, now, claim_stale_after(state)).await? {
            Claim::Fresh { command_id } => (command_id, true),
            Claim::Resumed { command_id } => (command_id, false),
            Claim::Done { status, response } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                let value: Value = serde_json::from_str(&response).unwrap_or(Value::Null);
                return Ok((status, [(REPLAYED_HEADER, "true")], Json(value)).into_response());
            }
            Claim::InProgress => {
                return Err(ApiError::Conflict(format!(
                "a request with Idempotency-Key {key:?} is in progress; retry once it has answered"
            )))
            }
            Claim::Mismatch => {
                return Err(ApiError::Unprocessable {
                    code: "idempotency_key_reused",
                    detail: format!(
                        "Idempotency-Key {key:?} was used for a different request; use a new key"
                    ),
                    field: None,
                })
            }
        };
    let mut claim = HeldClaim {
        db: db.clone(),
        principal: principal.token_id.clone(),
        key: key.to_owned(),
        command_id,
        held: true,
    };
    let id = RequestId {
        command_id,
        fresh,
        keyed: true,
    };
    // A refusal or a failure appended nothing, and may not hold later (onboarding waits for
    // the payment): it is not kept. Dropping the claim releases it, so the next request with
    // the key runs the command again, under the same command id.
    let (status, value) = command(id).await?;
    idempotency::complete(&db, keyed, command_id, status.as_u16(), &value.to_string()).await?;
    claim.held = false;
    Ok((status, Json(value)).into_response())
}

/// Marks an answer sent again from an earlier request with the same `Idempotency-Key`.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A claimed key whose request has not stored an answer: released when dropped (the request
/// failed without a final answer, or was abandoned mid-way), so a retry can resume it at once
/// under the same command id instead of waiting for the claim to go stale.
struct HeldClaim {
    db: adapters::sql::SqlDb,
    principal: String,
    key: String,
    command_id: Uuid,
    held: bool,
}

impl Drop for HeldClaim {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let (db, principal, key, command_id) = (
            self.db.clone(),
            std::mem::take(&mut self.principal),
            std::mem::take(&mut self.key),
            self.command_id,
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = idempotency::release(&db, &principal, &key, command_id).await {
                    tracing::warn!(%error, "an idempotency claim was not released; it frees itself once stale");
                }
            });
        }
    }
}

#[derive(Deserialize)]
struct PayoutRequest {
    partner_id: Option<String>,
}

/// `POST /api/payouts`: a payout batch for every partner (or one) whose approved
/// commissions reach the minimum.
pub async fn create_payouts(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Finance)?;
    let request: PayoutRequest = if body.is_empty() {
        PayoutRequest { partner_id: None }
    } else {
        parse_body(&body)?
    };
    let (state, principal, headers) = (&state, &principal, &headers);
    idempotent(state, principal, headers, "POST /api/payouts", &body, |id: RequestId| async move {
        if let Some(statements) = state.projector("partner_statements") {
            statements.wait_caught_up(READ_MODEL_WAIT).await?;
        }
        let results = app::process::payouts::create_payouts(
            &state.handlers,
            state.config.program.payout_minimum_halalas,
            request.partner_id.as_deref(),
            adapters::clock::now_micros(),
            id.command_id,
            metadata(principal, headers),
        )
        .await?;
        Ok((StatusCode::OK, json!({"payouts": results, "minimum_halalas": state.config.program.payout_minimum_halalas})))
    })
    .await
}

#[derive(Deserialize)]
struct ReferralRequest {
    lead_email: String,
    #[serde(with = "time::serde::rfc3339")]
    clicked_at: OffsetDateTime,
}

/// `POST /api/partners/{id}/referrals`: a partner's referral click.
pub async fn record_referral(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(partner_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Finance)?;
    let request: ReferralRequest = parse_body(&body)?;
    let path = format!("POST /api/partners/{partner_id}/referrals");
    let (state, principal, headers) = (&state, &principal, &headers);
    idempotent(
        state,
        principal,
        headers,
        &path,
        &body,
        |id: RequestId| async move {
            let envelope = id.envelope(
                partner_id.clone(),
                PartnerCommand::RecordReferral {
                    lead_email: request.lead_email,
                    clicked_at: request.clicked_at,
                    at: adapters::clock::now_micros(),
                },
                metadata(principal, headers),
            );
            let outcome = state
                .handlers
                .partners
                .execute(envelope)
                .await
                .map_err(command_error)?;
            Ok((StatusCode::CREATED, command_answer(&outcome)))
        },
    )
    .await
}

#[derive(Deserialize)]
struct TierRequest {
    tier: PartnerTier,
    reason: String,
}

/// `POST /api/partners/{id}/tier`: a tier change (Strategic through the program's three slots).
pub async fn change_tier(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(partner_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Finance)?;
    let request: TierRequest = parse_body(&body)?;
    let path = format!("POST /api/partners/{partner_id}/tier");
    let (state, principal, headers) = (&state, &principal, &headers);
    idempotent(
        state,
        principal,
        headers,
        &path,
        &body,
        |id: RequestId| async move {
            let outcome = app::partners::change_partner_tier(
                &state.handlers,
                &partner_id,
                request.tier,
                &request.reason,
                adapters::clock::now_micros(),
                id.command_id,
                metadata(principal, headers),
            )
            .await
            .map_err(|error| match error {
                app::partners::TierChangeError::Program(e) => command_error(e),
                app::partners::TierChangeError::Partner(e) => command_error(e),
            })?;
            Ok((StatusCode::OK, command_answer(&outcome)))
        },
    )
    .await
}

#[derive(Deserialize)]
struct DecisionRequest {
    reason: Option<String>,
}

/// `POST /api/commissions/{id}/{approve|reject}`: [`app::commissions::decide`], as the
/// dashboard's desk does.
pub async fn decide_commission(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path((commission_id, decision)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Finance)?;
    let request: DecisionRequest = if body.is_empty() {
        DecisionRequest { reason: None }
    } else {
        parse_body(&body)?
    };
    let Some(decision_made) = Decision::parse(&decision, request.reason) else {
        return Err(ApiError::NotFound(format!(
            "no commission action {decision:?}: use approve or reject"
        )));
    };
    let path = format!("POST /api/commissions/{commission_id}/{decision}");
    let (state, principal, headers) = (&state, &principal, &headers);
    idempotent(
        state,
        principal,
        headers,
        &path,
        &body,
        |id: RequestId| async move {
            let outcome = app::commissions::decide(
                &state.handlers,
                &commission_id,
                decision_made,
                adapters::clock::now_micros(),
                id.command_id,
                id.fresh,
                metadata(principal, headers),
            )
            .await
            .map_err(command_error)?;
            Ok((StatusCode::OK, command_answer(&outcome)))
        },
    )
    .await
}
