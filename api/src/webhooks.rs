//! Webhook endpoints: each handler hands the raw delivery to [`app::webhooks::Deliveries`],
//! which verifies, keeps, applies and answers it, and sends back the answer it made. The
//! dead-letter routes list and replay what never applied.

use std::time::Duration;

use app::webhooks::{Answer, DeadLetter, DeliveryError, Provider, SignatureHeaders};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::auth::{Area, Principal};
use crate::{ApiError, AppState};

/// How often the retry worker looks for parked deliveries that are due.
pub const RETRY_POLL: Duration = Duration::from_secs(1);

impl From<DeliveryError> for ApiError {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::NotEnabled(_) | DeliveryError::NoDeadLetter(_) => {
                ApiError::NotFound(error.to_string())
            }
            DeliveryError::Busy { .. } => ApiError::Unavailable(error.to_string()),
            other => ApiError::internal(other),
        }
    }
}

fn answered(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    (status, Json(answer.body)).into_response()
}

async fn deliver(
    state: &AppState,
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signatures = SignatureHeaders {
        calendly: header(adapters::webhooks::calendly::SIGNATURE_HEADER),
        webhook_id: header(adapters::webhooks::standard::ID_HEADER),
        webhook_timestamp: header(adapters::webhooks::standard::TIMESTAMP_HEADER),
        webhook_signature: header(adapters::webhooks::standard::SIGNATURE_HEADER),
    };
    match state.deliveries.receive(provider, signatures, body).await {
        Ok(answer) => answered(answer),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// `POST /webhooks/moyasar`: `secret_token` in the body.
pub async fn moyasar(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    deliver(&state, Provider::Moyasar, &headers, &body).await
}

/// `POST /webhooks/calendly`: `Calendly-Webhook-Signature: t=…,v1=…`.
pub async fn calendly(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    deliver(&state, Provider::Calendly, &headers, &body).await
}

/// `POST /webhooks/partners`: Standard Webhooks.
pub async fn partners(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    deliver(&state, Provider::Partners, &headers, &body).await
}

/// Retries parked deliveries that are due, until shutdown.
pub async fn run_retries(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(error) = state
            .deliveries
            .retry_due(adapters::clock::now_micros())
            .await
        {
            tracing::warn!(%error, "webhook retry pass failed");
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY_POLL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
}

fn listed(letter: &DeadLetter) -> Value {
    json!({
        "id": letter.id,
        "provider": letter.provider,
        "delivery_id": letter.delivery_id,
        "received_at": projections::rfc3339(letter.received_at_us),
        "attempts": letter.attempts,
        "reason": letter.reason,
        "body": letter.body,
    })
}

/// `GET /api/webhooks/dead-letters`: deliveries that never applied, with the reason.
pub async fn list_dead_letters(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    principal.require_read(Area::Audit)?;
    let letters = state
        .deliveries
        .dead_letters(query.limit.unwrap_or(50))
        .await?;
    let items: Vec<Value> = letters.iter().map(listed).collect();
    Ok(Json(json!({"dead_letters": items})))
}

/// `POST /api/webhooks/dead-letters/{id}/replay`: tries one dead letter again now.
pub async fn replay_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Finance)?;
    Ok(answered(
        state.deliveries.replay(&id, &principal.actor()).await?,
    ))
}
