//! Finance routes: the ledger, reconciliation, partner statements, payouts, referrals, tiers
//! and commission decisions.

use adapters::command::{CommandEnvelope, CommandError, CommandOutcome};
use adapters::store::EventMetadata;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::commission::CommissionCommand;
use domain::money::MoneyError;
use domain::partner::{PartnerCommand, PartnerTier};
use projections::as_of::AsOfAnswer;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{authenticate, Area, Principal};
use crate::{ApiError, AppState};

/// How long a command that reads a read model first waits for it to catch up.
pub const READ_MODEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Deserialize)]
pub struct AsOfQuery {
    as_of: Option<String>,
    limit: Option<i64>,
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

pub async fn trial_balance(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AsOfQuery>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers)
        .await?
        .require_read(Area::Finance)?;
    let db = read_db(&state, "ledger", query.as_of.as_deref()).await?;
    Ok(Json(projections::ledger::trial_balance(&db).await?))
}

pub async fn ledger_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(account): Path<String>,
    Query(query): Query<AsOfQuery>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers)
        .await?
        .require_read(Area::Finance)?;
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

pub async fn reconciliation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AsOfQuery>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers)
        .await?
        .require_read(Area::Finance)?;
    let db = read_db(&state, "reconciliation", query.as_of.as_deref()).await?;
    let model = projections::read_model("reconciliation")?;
    Ok(Json(model.render(&db).await?))
}

fn valid_month(month: &str) -> bool {
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
    headers: HeaderMap,
    Path((partner_id, month)): Path<(String, String)>,
    Query(query): Query<AsOfQuery>,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers)
        .await?
        .require_partner(&partner_id)?;
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
    let statement = projections::statements::statement(&db, &partner_id, &month).await?;
    if csv {
        let body = projections::statements::statement_csv(&statement);
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

pub fn metadata(principal: &Principal, headers: &HeaderMap) -> EventMetadata {
    EventMetadata {
        actor: Some(principal.actor()),
        source: Some("api".into()),
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ..Default::default()
    }
}

fn idempotency_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("idempotency-key").and_then(|v| v.to_str().ok())
}

/// Whether [`command_id`] mints a new id for this request (it carries no usable
/// `Idempotency-Key`), so no earlier run of its command can exist.
pub fn minted_command_id(headers: &HeaderMap) -> bool {
    idempotency_key(headers).is_none()
}

/// The command id of a request: derived from its `Idempotency-Key` (per principal), so a
/// retried request is applied once; a fresh id otherwise.
pub fn command_id(principal: &Principal, headers: &HeaderMap) -> Uuid {
    match idempotency_key(headers) {
        Some(key) => Uuid::new_v5(
            &adapters::inbox::INBOX_NAMESPACE,
            format!("api:{}:{key}", principal.token_id).as_bytes(),
        ),
        None => Uuid::now_v7(),
    }
}

pub fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::BadRequest {
        code: "invalid_body",
        detail: format!("the JSON body is not what this command takes: {error}"),
        field: None,
    })
}

/// Runs `command` under the Stripe-style idempotency contract when the request carries an
/// `Idempotency-Key`: the same key and body get the first answer again; the same key with
/// another body is 422.
pub async fn idempotent<F, Fut>(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    request: &str,
    body: &Bytes,
    command: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        let (status, value) = command().await?;
        return Ok((status, Json(value)).into_response());
    };
    let db = state.store.sql();
    let body_sha256 = adapters::inbox::body_sha256(body);
    let seen = db
        .fetch_optional(
            "SELECT request, body_sha256, status, response FROM idempotency_keys WHERE principal = ? AND idempotency_key = ?",
            &[principal.token_id.as_str().into(), key.as_str().into()],
        )
        .await?;
    if let Some(row) = seen {
        if row.text(0)? != request || row.text(1)? != body_sha256 {
            return Err(ApiError::Unprocessable {
                code: "idempotency_key_reused",
                detail: format!(
                    "Idempotency-Key {key:?} was used for a different request; use a new key"
                ),
                field: None,
            });
        }
        let status = StatusCode::from_u16(u16::try_from(row.i64(2)?).unwrap_or(200))
            .unwrap_or(StatusCode::OK);
        let value: Value = serde_json::from_str(&row.text(3)?).unwrap_or(Value::Null);
        return Ok((status, Json(value)).into_response());
    }
    let (status, value) = command().await?;
    db.execute(
        "INSERT INTO idempotency_keys (principal, idempotency_key, request, body_sha256, status, response, created_at_us) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (principal, idempotency_key) DO NOTHING",
        &[
            principal.token_id.as_str().into(),
            key.as_str().into(),
            request.into(),
            body_sha256.into(),
            i64::from(status.as_u16()).into(),
            value.to_string().into(),
            adapters::clock::unix_micros(adapters::clock::now_micros()).into(),
        ],
    )
    .await?;
    Ok((status, Json(value)).into_response())
}

#[derive(Deserialize)]
struct PayoutRequest {
    partner_id: Option<String>,
}

/// `POST /api/payouts`: a payout batch for every partner (or one) whose approved
/// commissions reach the minimum.
pub async fn create_payouts(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers).await?;
    principal.require_change(Area::Finance)?;
    let request: PayoutRequest = if body.is_empty() {
        PayoutRequest { partner_id: None }
    } else {
        parse_body(&body)?
    };
    let request_id = command_id(&principal, &headers);
    idempotent(&state, &principal, &headers, "POST /api/payouts", &body, || async {
        if let Some(statements) = state.projector("partner_statements") {
            statements.wait_caught_up(READ_MODEL_WAIT).await?;
        }
        let results = projections::payouts::create_payouts(
            &state.handlers,
            state.config.program.payout_minimum_halalas,
            request.partner_id.as_deref(),
            OffsetDateTime::now_utc(),
            request_id,
            metadata(&principal, &headers),
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
    headers: HeaderMap,
    Path(partner_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers).await?;
    principal.require_change(Area::Finance)?;
    let request: ReferralRequest = parse_body(&body)?;
    let envelope = CommandEnvelope {
        aggregate_id: partner_id.clone(),
        command_id: command_id(&principal, &headers),
        command: PartnerCommand::RecordReferral {
            lead_email: request.lead_email,
            clicked_at: request.clicked_at,
            at: OffsetDateTime::now_utc(),
        },
        metadata: metadata(&principal, &headers),
        inbox: None,
        fresh_id: minted_command_id(&headers),
    };
    let path = format!("POST /api/partners/{partner_id}/referrals");
    idempotent(&state, &principal, &headers, &path, &body, || async {
        let outcome = state
            .handlers
            .partners
            .execute(envelope)
            .await
            .map_err(command_error)?;
        Ok((StatusCode::CREATED, command_answer(&outcome)))
    })
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
    headers: HeaderMap,
    Path(partner_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers).await?;
    principal.require_change(Area::Finance)?;
    let request: TierRequest = parse_body(&body)?;
    let id = command_id(&principal, &headers);
    let path = format!("POST /api/partners/{partner_id}/tier");
    idempotent(&state, &principal, &headers, &path, &body, || async {
        let outcome = adapters::services::change_partner_tier(
            &state.handlers,
            &partner_id,
            request.tier,
            &request.reason,
            OffsetDateTime::now_utc(),
            id,
            metadata(&principal, &headers),
        )
        .await
        .map_err(|error| match error {
            adapters::services::TierChangeError::Program(e) => command_error(e),
            adapters::services::TierChangeError::Partner(e) => command_error(e),
        })?;
        Ok((StatusCode::OK, command_answer(&outcome)))
    })
    .await
}

#[derive(Deserialize)]
struct DecisionRequest {
    reason: Option<String>,
}

/// `POST /api/commissions/{id}/{approve|reject}`.
pub async fn decide_commission(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((commission_id, decision)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers).await?;
    principal.require_change(Area::Finance)?;
    let request: DecisionRequest = if body.is_empty() {
        DecisionRequest { reason: None }
    } else {
        parse_body(&body)?
    };
    let at = OffsetDateTime::now_utc();
    let command = match decision.as_str() {
        "approve" => CommissionCommand::Approve {
            actor: principal.actor(),
            at,
        },
        "reject" => CommissionCommand::Reject {
            actor: principal.actor(),
            reason: request.reason.unwrap_or_default(),
            at,
        },
        other => {
            return Err(ApiError::NotFound(format!(
                "no commission action {other:?}: use approve or reject"
            )))
        }
    };
    let envelope = CommandEnvelope {
        aggregate_id: commission_id.clone(),
        command_id: command_id(&principal, &headers),
        command,
        metadata: metadata(&principal, &headers),
        inbox: None,
        fresh_id: minted_command_id(&headers),
    };
    let path = format!("POST /api/commissions/{commission_id}/{decision}");
    idempotent(&state, &principal, &headers, &path, &body, || async {
        let outcome = state
            .handlers
            .commissions
            .execute(envelope)
            .await
            .map_err(command_error)?;
        Ok((StatusCode::OK, command_answer(&outcome)))
    })
    .await
}
