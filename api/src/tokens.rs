//! The token routes, for administrators only: create a token (shown once), list tokens
//! (never a token or its hash), revoke one (which ends its dashboard sessions too).
//!
//! The same use cases as `revledger token create|list|revoke` (`app::tokens`). Creating a
//! token takes no `Idempotency-Key`: replaying the answer would mean storing the token itself,
//! and a retry after a lost answer is safely a second token (revoke the one never received).

use app::tokens::{expiry_after_days, RevokedToken, TokenInfo, TokenRequest, MAX_TOKENS_LISTED};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::auth::{Principal, Role};
use crate::input::parse_body;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", get(list).post(create))
        .route("/api/tokens/{id}/revoke", post(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    role: Role,
    partner_id: Option<String>,
    label: Option<String>,
    expires_in_days: Option<u32>,
}

/// The answer to a creation: the token, once, beside what is stored about it.
#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    info: TokenInfo,
    token: String,
}

/// `POST /api/tokens`: a new token (201), shown in this answer and never again.
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_admin()?;
    let request: CreateRequest = parse_body(&body)?;
    let now = adapters::clock::now_micros();
    let request = TokenRequest {
        role: request.role,
        partner_id: request.partner_id,
        label: request.label,
        expires_at: expiry_after_days(now, request.expires_in_days)?,
    };
    let issued = app::tokens::create(&state.handlers, &request, now).await?;
    tracing::info!(
        token_id = issued.info.token_id,
        role = issued.info.role.as_str(),
        by = principal.actor(),
        "token created"
    );
    let answer = Created {
        info: issued.info,
        token: issued.token.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Serialize)]
struct Listing {
    items: Vec<TokenInfo>,
    /// The most a listing holds; more tokens than this are not listed.
    limit: i64,
}

/// `GET /api/tokens`: every token, newest first, without the token or its hash.
async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Listing>, ApiError> {
    principal.require_admin()?;
    let items = app::tokens::list(&state.store.sql(), adapters::clock::now_micros()).await?;
    Ok(Json(Listing {
        items,
        limit: MAX_TOKENS_LISTED,
    }))
}

/// `POST /api/tokens/{id}/revoke`: revokes the token and ends its dashboard sessions; again
/// is the same answer; an unknown id is 404.
async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(token_id): Path<String>,
) -> Result<Json<RevokedToken>, ApiError> {
    principal.require_admin()?;
    let now = adapters::clock::now_micros();
    let revoked = app::tokens::revoke(&state.store.sql(), &token_id, now).await?;
    tracing::info!(
        token_id,
        sessions_ended = revoked.sessions_ended,
        by = principal.actor(),
        "token revoked"
    );
    Ok(Json(revoked))
}
