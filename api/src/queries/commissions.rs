//! `GET /api/commissions` and `GET /api/commissions/{id}`: where each commission stands and
//! what happened to it, read from the `partner_statements` read model
//! ([`projections::commissions`]) and the commission's own stream.
//!
//! Finance, admin and auditor tokens read every commission; a partner token reads only its own
//! partner's (any other partner or commission is 404, so ids cannot be probed); sales reads none.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::commissions::{CommissionFilter, CommissionHistoryEntry, CommissionRow};
use serde::Serialize;

use super::{bad_param, included, parse_time, pending, ReadQuery};
use crate::auth::{Area, Principal, Role};
use crate::finance::{read_db, valid_month};
use crate::{ApiError, AppState};

/// The read model the routes read (and `after_position` waits for).
const READ_MODEL: &str = "partner_statements";

/// The partner whose commissions `principal` may read: its own for a partner token (asking
/// for another is 404), the one asked for (or all) otherwise.
fn partner_scope(principal: &Principal, asked: Option<&str>) -> Result<Option<String>, ApiError> {
    if principal.role != Role::Partner {
        principal.require_read(Area::Finance)?;
        return Ok(asked.map(str::to_owned));
    }
    let own = principal
        .partner_id
        .clone()
        .ok_or_else(|| ApiError::Forbidden("this partner token names no partner".into()))?;
    match asked {
        Some(asked) if asked != own => Err(ApiError::NotFound(format!("no partner {asked}"))),
        _ => Ok(Some(own)),
    }
}

/// A list cursor: `<accrued microseconds>:<commission id>`.
fn cursor(text: &str) -> Result<(i64, String), ApiError> {
    text.split_once(':')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| bad_param("cursor", format!("{text:?} is not a cursor this list gave")))
}

/// `GET /api/commissions?partner_id=&status=&period=YYYY-MM&from=&to=&cursor=&limit=`:
/// commissions by when they accrued.
pub(super) async fn commissions(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    let partner_id = partner_scope(&principal, query.partner_id.as_deref())?;
    let limit = query.limit()?;
    query.as_of()?;
    if let Some(status) = query.status.as_deref() {
        if !projections::commissions::STATUSES.contains(&status) {
            return Err(bad_param(
                "status",
                format!(
                    "no commission status {status:?}: use {}",
                    projections::commissions::STATUSES.join(", ")
                ),
            ));
        }
    }
    if let Some(period) = query.period.as_deref() {
        if !valid_month(period) {
            return Err(bad_param(
                "period",
                format!("{period:?} is not a month: use YYYY-MM, e.g. 2026-11"),
            ));
        }
    }
    let micros = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| parse_time(field, text).map(adapters::clock::unix_micros))
            .transpose()
    };
    let (from_us, to_us) = (micros("from", &query.from)?, micros("to", &query.to)?);
    if let (Some(from), Some(to)) = (from_us, to_us) {
        if from > to {
            return Err(bad_param("to", "to is before from".into()));
        }
    }
    let filter = CommissionFilter {
        partner_id: partner_id.as_deref(),
        status: query.status.as_deref(),
        period: query.period.as_deref(),
        from_us,
        to_us,
        after: query.cursor.as_deref().map(cursor).transpose()?,
        limit,
    };
    if let Some(answer) = pending(&state, READ_MODEL, query.after_position).await? {
        return Ok(answer);
    }
    let db = read_db(&state, READ_MODEL, query.as_of.as_deref()).await?;
    let page = projections::commissions::list(&db, &filter).await?;
    Ok(Json(page).into_response())
}

/// One commission with its history.
#[derive(Serialize)]
struct CommissionView {
    #[serde(flatten)]
    standing: CommissionRow,
    history: Vec<CommissionHistoryEntry>,
}

/// `GET /api/commissions/{id}`: where the commission stands and everything that happened to
/// it (accrued, approved or rejected with actor and reason, adjusted, clawed back, paid out).
pub(super) async fn commission(
    State(state): State<AppState>,
    principal: Principal,
    Path(commission_id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    let own_partner = partner_scope(&principal, None)?;
    let as_of = query.as_of()?;
    if let Some(answer) = pending(&state, READ_MODEL, query.after_position).await? {
        return Ok(answer);
    }
    let db = read_db(&state, READ_MODEL, query.as_of.as_deref()).await?;
    let not_found = || ApiError::NotFound(format!("no commission {commission_id}"));
    let standing = projections::commissions::one(&db, &commission_id)
        .await?
        .filter(|row| {
            own_partner
                .as_ref()
                .is_none_or(|own| *own == row.partner_id)
        })
        .ok_or_else(not_found)?;
    let history =
        projections::commissions::history(state.store.as_ref(), &commission_id, |event| {
            as_of.is_none_or(|moment| included(moment, event))
        })
        .await?;
    Ok(Json(CommissionView { standing, history }).into_response())
}
