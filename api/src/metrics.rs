//! Prometheus metrics at `GET /metrics`, through the `metrics` facade.
//!
//! Families (base units, `_total` counters, `_seconds` histograms):
//! - `revledger_http_requests_total{route,method,status}`, `revledger_http_request_duration_seconds{route,method}`
//! - `revledger_commands_total{aggregate,outcome}` (adapters), `revledger_events_appended_total{event_type}`,
//!   `revledger_store_append_duration_seconds`, `revledger_last_event_timestamp_seconds` (the store)
//! - `revledger_webhook_deliveries_total{provider,outcome}` (`app::webhooks`)
//! - `revledger_projection_checkpoint_position{projection}`, `revledger_projection_lag_events{projection}`,
//!   `revledger_projection_lag_seconds{projection}`, `revledger_projection_quarantined_events{projection}`,
//!   `revledger_webhook_inbox{status}` (sampled every
//!   [`GAUGE_INTERVAL`] by [`run_gauges`])
//! - `revledger_provider_reconciliation_findings{provider,kind}` (sampled: the differences the
//!   latest reconciliation of each day against Moyasar holds)
//! - `revledger_ledger_unbalanced_entries` (sampled: journal entries whose debits and credits
//!   differ, kept by the journal as it posts; must stay 0)
//! - `revledger_moyasar_sweep_{checks,recovered,failures}_total`,
//!   `revledger_moyasar_reconciliation_findings_total` (`app::moyasar_sweep`)
//! - `revledger_chain_intact` (1 or 0, set whenever `GET /api/verify` runs)
//! - `revledger_http_connections_shed_total{limit}` (connections answered 503 and closed beyond
//!   `max_connections` or `max_connections_per_client`), `revledger_http_connections_evicted_total`
//!   (connections without a request in flight closed to serve a newcomer when every slot was taken)
//! - `revledger_as_of_reads_total{projection,answer}` (`empty`, `live`, `replayed`, `busy` (429), `failed`)

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

use crate::AppState;

/// How often the gauges (lag, inbox sizes) are sampled.
pub const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Latency buckets in seconds: commands and webhooks answer in milliseconds; the tail up to
/// 10 s catches a database in trouble.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; later calls (tests start several services in one
/// process) share it. `None` when another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

/// `GET /metrics` on the main listener: business volumes are not for anyone who can reach the
/// port, so it takes the metrics token (`REVLEDGER_METRICS_TOKEN`, compared in constant time)
/// or an admin or auditor token.
pub async fn render(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let presented = crate::auth::bearer(&headers);
    let metrics_token = state.config.metrics_token.as_ref();
    let by_metrics_token = matches!((presented, metrics_token), (Some(token), Some(expected))
        if adapters::webhooks::constant_time_eq(token.as_bytes(), expected.expose().as_bytes()));
    if !by_metrics_token {
        let allowed = crate::auth::authenticate(&state, &headers)
            .await
            .and_then(|principal| principal.require_read(crate::auth::Area::Audit));
        if let Err(error) = allowed {
            return error.into_response();
        }
    }
    render_unauthenticated().await
}

/// `GET /metrics` on the metrics-only listener (`REVLEDGER_METRICS_LISTEN`), which serves
/// nothing else and is bound where only Prometheus reaches it.
pub async fn render_unauthenticated() -> Response {
    let body = install().map(|handle| handle.render()).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Counts every request by matched route (not the raw path, so ids do not explode the
/// label set) and status, and times it.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("revledger_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("revledger_http_requests_total", "route" => route, "method" => method, "status" => status).increment(1);
    response
}

/// An as-of read and how it was answered.
pub fn as_of_read(projection: &str, answer: &'static str) {
    metrics::counter!("revledger_as_of_reads_total", "projection" => projection.to_owned(), "answer" => answer).increment(1);
}

/// A connection answered 503 and closed because `limit` (`max_connections`, or
/// `max_connections_per_client`) was reached.
pub fn connection_shed(limit: &'static str) {
    metrics::counter!("revledger_http_connections_shed_total", "limit" => limit).increment(1);
}

/// A connection without a request in flight closed so that a newcomer takes its slot.
pub fn connection_evicted() {
    metrics::counter!("revledger_http_connections_evicted_total").increment(1);
}

/// Samples projection checkpoints and lag, and inbox sizes.
pub async fn sample_gauges(state: &AppState) {
    for projector in state.projectors.iter() {
        match projector.lag().await {
            Ok(lag) => {
                let name = lag.name.clone();
                metrics::gauge!("revledger_projection_checkpoint_position", "projection" => name.clone()).set(lag.checkpoint.position as f64);
                metrics::gauge!("revledger_projection_lag_events", "projection" => name.clone())
                    .set(lag.events_behind as f64);
                metrics::gauge!("revledger_projection_lag_seconds", "projection" => name)
                    .set(lag.seconds_behind as f64);
            }
            Err(error) => tracing::debug!(%error, "lag not sampled"),
        }
    }
    if let Ok(counts) = projections::quarantine::counts(&state.store.sql()).await {
        for projector in state.projectors.iter() {
            let name = projector.name();
            let count = counts
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("revledger_projection_quarantined_events", "projection" => name)
                .set(count as f64);
        }
    }
    if state.config.zatca.is_some() {
        sample_zatca(state).await;
    }
    if let Ok(counts) =
        projections::reconciliation::provider::finding_counts(&state.store.sql()).await
    {
        for kind in domain::provider_reconciliation::FindingKind::ALL {
            let count = counts
                .iter()
                .filter(|(provider, k, _)| provider == "moyasar" && k == kind.as_str())
                .map(|(_, _, n)| *n)
                .sum::<i64>();
            metrics::gauge!("revledger_provider_reconciliation_findings", "provider" => "moyasar", "kind" => kind.as_str())
                .set(count as f64);
        }
    }
    if let Ok(counters) = projections::ledger::balances::read_counters(&state.store.sql()).await {
        metrics::gauge!("revledger_ledger_unbalanced_entries")
            .set(counters.unbalanced_entries as f64);
    }
    if let Ok(counts) = adapters::inbox::counts(&state.store.sql()).await {
        for status in [
            "accepted",
            "acknowledged",
            "ignored",
            "rejected",
            "parked",
            "dead_lettered",
        ] {
            let count = counts
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("revledger_webhook_inbox", "status" => status).set(count as f64);
        }
    }
}

/// ZATCA Phase 2: how long the oldest document not yet answered for good has waited (a
/// simplified one must be reported within 24 hours of its issue), and how many ZATCA rejected.
async fn sample_zatca(state: &AppState) {
    let db = state.store.sql();
    if let Ok(oldest) = projections::zatca::oldest_pending(&db).await {
        let now = adapters::clock::unix_micros(adapters::clock::now_micros());
        let age = oldest.map_or(0, |(issued_at_us, _)| {
            (now - issued_at_us).max(0) / 1_000_000
        });
        metrics::gauge!("revledger_zatca_oldest_pending_seconds").set(age as f64);
    }
    if let Ok(rejected) = projections::zatca::rejected_count(&db).await {
        metrics::gauge!("revledger_zatca_rejected_documents").set(rejected as f64);
    }
    let Some(zatca) = &state.config.zatca else {
        return;
    };
    // Onboarded (a key and a production CSID for it) or not, and the seconds its certificate
    // has left (negative once expired; absent before onboarding).
    if let Ok(status) = app::zatca::onboarding::status(zatca) {
        metrics::gauge!("revledger_zatca_onboarded").set(f64::from(u8::from(status.is_complete())));
        if let Some(production) = status.production {
            let left = production.not_after - adapters::clock::now_micros();
            metrics::gauge!("revledger_zatca_certificate_expires_in_seconds")
                .set(left.whole_seconds() as f64);
        }
    }
}

/// Samples the gauges every [`GAUGE_INTERVAL`] until shutdown.
pub async fn run_gauges(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        sample_gauges(&state).await;
        tokio::select! {
            () = tokio::time::sleep(GAUGE_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Records the outcome of a chain verification.
pub fn chain_intact(intact: bool) {
    metrics::gauge!("revledger_chain_intact").set(if intact { 1.0 } else { 0.0 });
}
