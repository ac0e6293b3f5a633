//! The HTTP interface of revledger (axum): health, webhooks, and (as they land) the API.
//!
//! [`service::Service::start`] builds everything the process runs; [`router`] assembles the
//! routes with their limits. Errors map to statuses in one place ([`error::ApiError`]).

pub mod auth;
pub mod commands;
pub mod connections;
pub mod dashboard;
pub mod error;
pub mod finance;
pub mod input;
pub mod metrics;
pub mod openapi;
pub mod personal;
pub mod queries;
pub mod service;
pub mod sessions;
pub mod signin;
pub mod tokens;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use adapters::store::EventStore;
use app::handlers::Handlers;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use projections::Projector;
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Every request gets an id (the caller's `x-request-id`, or a new uuid), echoed in the answer,
/// carried by the request's log span and stored in the metadata of the events it causes.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub use error::ApiError;
pub use service::{Config, Service, StartError};

/// Largest request body accepted anywhere (413 above it). Webhook payloads and commands are a
/// few KiB; the bound keeps a hostile client from holding memory.
pub const MAX_BODY_BYTES: usize = adapters::webhooks::MAX_WEBHOOK_BODY_BYTES;

/// A request that takes longer than this by default is answered 408 (`Config::request_timeout`).
pub const REQUEST_TIMEOUT: Duration = service::DEFAULT_REQUEST_TIMEOUT;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub handlers: Arc<Handlers>,
    pub projectors: Arc<Vec<Projector>>,
    pub config: Arc<Config>,
    /// Whether this replica runs the background workers now.
    pub leader: Arc<std::sync::atomic::AtomicBool>,
    /// Webhook deliveries: verified, kept, applied and answered.
    pub deliveries: Arc<app::webhooks::Deliveries>,
    /// Sign-in attempts per client on the dashboard's form.
    pub sign_in: Arc<signin::SignInThrottle>,
    /// As-of reads: their shortcuts and their bounded replay threads.
    pub as_of: Arc<projections::as_of::AsOfReads>,
}

impl AppState {
    pub fn projector(&self, name: &str) -> Option<&Projector> {
        self.projectors.iter().find(|p| p.name() == name)
    }
}

/// All routes with their limits.
pub fn router(state: AppState) -> Router {
    let request_timeout = state.config.request_timeout;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::document))
        .route("/webhooks/moyasar", post(webhooks::moyasar))
        .route("/webhooks/calendly", post(webhooks::calendly))
        .route("/webhooks/partners", post(webhooks::partners))
        .route(
            "/api/webhooks/dead-letters",
            get(webhooks::list_dead_letters),
        )
        .route(
            "/api/webhooks/dead-letters/{id}/replay",
            post(webhooks::replay_dead_letter),
        )
        .route("/api/ledger/trial-balance", get(finance::trial_balance))
        .route(
            "/api/ledger/accounts/{account}",
            get(finance::ledger_account),
        )
        .route("/api/reconciliation", get(finance::reconciliation))
        .route(
            "/api/partners/{id}/statements/{month}",
            get(finance::statement),
        )
        .route(
            "/api/partners/{id}/referrals",
            post(finance::record_referral),
        )
        .route("/api/partners/{id}/tier", post(finance::change_tier))
        .route(
            "/api/commissions/{id}/{decision}",
            post(finance::decide_commission),
        )
        .route("/api/payouts", post(finance::create_payouts))
        .merge(commands::routes())
        .merge(queries::routes())
        .merge(dashboard::routes())
        .merge(tokens::routes())
        .merge(personal::routes())
        .route_layer(axum::middleware::from_fn(input::check_request))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            personal::reveal,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn(metrics::track_http))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::map_response(limits_as_json))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // The path only: query strings may carry cursors or filters, never secrets,
                // but they are not needed to follow a request.
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(axum::http::HeaderName::from_static(REQUEST_ID_HEADER)))
        .layer(SetRequestIdLayer::new(axum::http::HeaderName::from_static(REQUEST_ID_HEADER), MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unusable_request_id))
}

/// A caller's `x-request-id` is kept (in the log span, the answer, and the metadata of every
/// event the request causes, which is permanent) only when it is an identifier
/// ([`domain::input::is_id`]: at most 128 characters of a small alphabet); any other is
/// dropped here, so the request gets a fresh one instead of storing 60 KB of a client's choosing.
async fn drop_unusable_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let usable = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .map(|value| value.to_str().is_ok_and(domain::input::is_id));
    if usable == Some(false) {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    request
}

/// The 413 of the body limits and the 408 of the timeout come from layers with plain-text or
/// empty bodies; every other error is JSON, so these are too.
async fn limits_as_json(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE if !is_json => {
            ApiError::TooLarge(MAX_BODY_BYTES).into_response()
        }
        StatusCode::REQUEST_TIMEOUT if !is_json => ApiError::Timeout.into_response(),
        _ => response,
    }
}

/// Liveness: the process answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// How long `/readyz` waits for the database. A pool whose server is down keeps retrying to
/// connect until its acquire timeout (10 s per query), so without a bound a probe would hang
/// for twice that before saying 503; a readiness answer is only useful when it is quick.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness: the database answers (within [`READY_TIMEOUT`]) and every migration is applied.
async fn readyz(State(state): State<AppState>) -> Response {
    let checked = tokio::time::timeout(READY_TIMEOUT, async {
        state.store.ping().await?;
        state.store.is_migrated().await
    })
    .await;
    match checked {
        Ok(Ok(true)) => {
            let leader = state.leader.load(std::sync::atomic::Ordering::SeqCst);
            Json(json!({"status": "ready", "engine": state.store.engine(), "leader": leader}))
                .into_response()
        }
        Ok(Ok(false)) => ApiError::Unavailable("migrations not applied".into()).into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "database not reachable");
            ApiError::Unavailable("database unreachable".into()).into_response()
        }
        Err(_) => {
            tracing::warn!(timeout = ?READY_TIMEOUT, "database did not answer in time");
            ApiError::Unavailable("database did not answer in time".into()).into_response()
        }
    }
}
