//! The HTTP interface of revledger (axum).
//!
//! [`Application::build`] binds the listener and assembles the router; [`Application::run`]
//! serves until the shutdown future resolves, then drains in-flight requests. Building apart from
//! running lets tests bind port 0 and learn the real address first (zero2prod's pattern).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::EventStore;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Largest request body accepted anywhere. Webhook payloads and commands are a few KiB; the
/// bound keeps a hostile client from holding memory.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A request that takes longer than this is answered 408: nothing we do should take seconds.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn EventStore>,
}

/// The service, bound to its address and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds `listen` (port 0 picks a free port) and assembles the routes.
    pub async fn build(listen: SocketAddr, state: AppState) -> std::io::Result<Application> {
        let listener = TcpListener::bind(listen).await?;
        Ok(Application {
            listener,
            router: router(state),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// All routes with their limits.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
}

/// Liveness: the process answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the database answers.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ready", "engine": state.store.engine()})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "database not reachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not ready", "error": "database unreachable"})),
            )
                .into_response()
        }
    }
}
