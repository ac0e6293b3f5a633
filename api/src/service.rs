//! The whole service in one value: store, handlers, projectors, process managers, background
//! workers and the HTTP listener. `revledger serve` and the integration tests start it the
//! same way ([`Service::start`]), so tests exercise what production runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::moyasar_api::MoyasarClient;
use adapters::store::EventStore;
use adapters::webhooks::Secret;
use app::handlers::Handlers;
use app::process::{process_managers_configured, run_follow_up_sweeps, ProcessRunner};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use projections::Projector;
use projections::ProjectorGroup;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::connections::{Admitted, Connections, Eviction, Refused, TrackRequests};
use crate::{router, AppState};

/// Everything configurable, already parsed (the CLI maps flags and environment onto it).
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Moyasar's webhook `secret_token`s: several while one is being rotated, each accepted.
    pub moyasar_secret_tokens: Vec<Secret>,
    /// A sandbox deployment, whose whole ledger is test data: Moyasar's test-mode payments are
    /// applied and live ones ignored. Off, test-mode payments never touch the ledger.
    pub sandbox: bool,
    pub calendly_signing_key: Option<Secret>,
    pub calendly_tolerance_secs: i64,
    /// Standard Webhooks secrets (`whsec_…`); several while a key is being rotated.
    pub partner_webhook_secrets: Vec<Secret>,
    pub partner_tolerance_secs: i64,
    pub admin_token: Option<Secret>,
    /// The partner program: hold period, attribution model, payout minimum.
    pub program: app::process::commissions::ProgramConfig,
    /// Who issues invoices (ZATCA seller name and VAT number).
    pub seller: domain::invoice::Seller,
    /// ZATCA Phase 2: the EGS unit invoices are issued on, cleared and reported from. `None`,
    /// invoices are Phase 1 documents on the seller's own chain.
    pub zatca: Option<app::zatca::ZatcaConfig>,
    /// Moyasar's API: when set, each issued invoice without a Moyasar invoice gets one, and the
    /// missed-payment sweep and the daily reconciliation run ([`app::moyasar_sweep`]).
    pub moyasar_api: Option<adapters::moyasar_api::MoyasarApiConfig>,
    /// When the missed-payment sweep asks Moyasar about an open invoice.
    pub moyasar_sweep: app::moyasar_sweep::SweepConfig,
    /// Run projections, process managers and background sweeps in this process.
    pub run_workers: bool,
    /// Longest a request may take, its body included, before it is answered 408.
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers, and an idle keep-alive
    /// connection may wait for its next request, before the connection is closed.
    pub header_read_timeout: Duration,
    /// Most connections open at once. When all are taken, a newcomer evicts the connection
    /// that has waited longest without a request in flight; only when every one has a request
    /// in flight is the newcomer answered 503 and closed ([`crate::connections`]).
    pub max_connections: usize,
    /// Most connections open at once from one client (an IP address; an IPv6 client is its
    /// /64); one beyond is answered 503 and closed.
    pub max_connections_per_client: usize,
    /// A bearer token for `GET /metrics` on the main listener (for a Prometheus scrape job);
    /// admin and auditor tokens are accepted there too. Without it or them, 401.
    pub metrics_token: Option<Secret>,
    /// A second listener serving only `GET /metrics`, without a token: for a Prometheus on a
    /// private address (bind it to loopback or an internal interface, never a public one).
    pub metrics_listen: Option<SocketAddr>,
    /// As-of reads replayed at once (each on its own low-priority thread); one beyond them is
    /// answered 429 with `Retry-After`.
    pub as_of_max_concurrent: usize,
    /// When the worker takes read models' snapshots for as-of reads.
    pub snapshots: projections::snapshots::SnapshotSettings,
    /// Where erasures are logged apart from the database (`REVLEDGER_ERASURE_LOG`); without
    /// it, the erasure route answers 503.
    pub erasure_log: Option<app::personal::ErasureLog>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            moyasar_secret_tokens: Vec::new(),
            sandbox: false,
            calendly_signing_key: None,
            calendly_tolerance_secs: adapters::webhooks::calendly::DEFAULT_TOLERANCE_SECS,
            partner_webhook_secrets: Vec::new(),
            partner_tolerance_secs: adapters::webhooks::standard::DEFAULT_TOLERANCE_SECS,
            admin_token: None,
            program: app::process::commissions::ProgramConfig::default(),
            seller: domain::invoice::Seller {
                name: DEFAULT_SELLER_NAME.to_owned(),
                vat_number: DEFAULT_SELLER_VAT_NUMBER.to_owned(),
            },
            zatca: None,
            moyasar_api: None,
            moyasar_sweep: app::moyasar_sweep::SweepConfig::default(),
            run_workers: true,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            as_of_max_concurrent: projections::as_of::DEFAULT_MAX_CONCURRENT,
            snapshots: projections::snapshots::SnapshotSettings::default(),
            metrics_token: None,
            metrics_listen: None,
            erasure_log: None,
        }
    }
}

/// An admin token shorter than this is refused by `revledger config check` (and warned about
/// by `serve`): it opens everything, and a person-chosen phrase of fewer characters is within
/// reach of guessing; 32 is the length of 128 random bits written in hex.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// A Moyasar webhook `secret_token` shorter than this is weak: anyone who guesses it can post
/// payments. Moyasar's dashboard takes any text, so the length is ours to insist on.
pub const MIN_MOYASAR_SECRET_CHARS: usize = 16;

/// The example secret of the Standard Webhooks specification and its libraries' documentation:
/// public, so a signature made with it proves nothing.
pub const PUBLIC_EXAMPLE_WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A configured secret too weak to trust, named by its setting (never its value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeakSecret {
    /// The environment variable that sets it.
    pub setting: &'static str,
    /// Which entry of a comma-separated list (1-based), when the setting takes several.
    pub entry: Option<usize>,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for WeakSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.entry {
            Some(entry) => write!(f, "{} entry {entry}: {}", self.setting, self.problem),
            None => write!(f, "{}: {}", self.setting, self.problem),
        }
    }
}

impl Config {
    /// The secrets and rules webhook deliveries are received with, from this configuration.
    pub fn delivery_config(&self) -> app::webhooks::DeliveryConfig {
        app::webhooks::DeliveryConfig {
            moyasar_secret_tokens: self.moyasar_secret_tokens.clone(),
            calendly_signing_key: self.calendly_signing_key.clone(),
            calendly_tolerance_secs: self.calendly_tolerance_secs,
            partner_webhook_secrets: self.partner_webhook_secrets.clone(),
            partner_tolerance_secs: self.partner_tolerance_secs,
            sandbox: self.sandbox,
            run_workers: self.run_workers,
        }
    }

    /// The configured secrets too weak to trust: an admin token shorter than
    /// [`MIN_ADMIN_TOKEN_CHARS`], a Moyasar secret shorter than [`MIN_MOYASAR_SECRET_CHARS`], a
    /// partner webhook secret equal to [`PUBLIC_EXAMPLE_WEBHOOK_SECRET`]. `revledger config
    /// check` exits 1 on any; `serve` starts but logs a warning for each.
    pub fn weak_secrets(&self) -> Vec<WeakSecret> {
        let mut weak = Vec::new();
        if let Some(admin) = &self.admin_token {
            if admin.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS {
                weak.push(WeakSecret {
                    setting: "REVLEDGER_ADMIN_TOKEN",
                    entry: None,
                    problem: format!("shorter than {MIN_ADMIN_TOKEN_CHARS} characters"),
                });
            }
        }
        let several = self.moyasar_secret_tokens.len() > 1;
        for (index, secret) in self.moyasar_secret_tokens.iter().enumerate() {
            if secret.expose().chars().count() < MIN_MOYASAR_SECRET_CHARS {
                weak.push(WeakSecret {
                    setting: "REVLEDGER_MOYASAR_SECRET_TOKEN",
                    entry: several.then_some(index + 1),
                    problem: format!("shorter than {MIN_MOYASAR_SECRET_CHARS} characters"),
                });
            }
        }
        let several = self.partner_webhook_secrets.len() > 1;
        for (index, secret) in self.partner_webhook_secrets.iter().enumerate() {
            if secret.expose() == PUBLIC_EXAMPLE_WEBHOOK_SECRET {
                weak.push(WeakSecret {
                    setting: "REVLEDGER_PARTNER_WEBHOOK_SECRET",
                    entry: several.then_some(index + 1),
                    problem: "the public example secret of the Standard Webhooks documentation"
                        .into(),
                });
            }
        }
        weak
    }
}

/// The seller when none is configured: a placeholder that passes ZATCA's format checks, so the
/// embedded default works out of the box; production sets its own.
pub const DEFAULT_SELLER_NAME: &str = "Dealix";
pub const DEFAULT_SELLER_VAT_NUMBER: &str = "300000000000003";

/// A request that takes longer than this is answered 408: nothing we do should take seconds.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client sends its request headers within this, or its connection is closed (slowloris).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once by default; each costs a task and a few KiB of buffers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Connections one client may hold by default. A browser opens at most 6 to a host and an
/// integration a handful, so 128 leaves room for an office behind one NAT address, while one
/// client alone can hold only an eighth of [`DEFAULT_MAX_CONNECTIONS`]. Behind a reverse proxy
/// or load balancer every connection comes from its few addresses: raise this to
/// `max_connections` there (the proxy limits its clients itself).
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 128;

/// Bytes of a shed connection's request read and discarded before it is closed.
const SHED_DRAIN_BYTES: usize = 64 * 1024;

/// How long a shed connection is given to receive its 503 before it is dropped.
const SHED_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long an evicted connection that answered a request before is given to finish sending
/// that answer (a slow reader may still be taking its last bytes) before it is dropped. A
/// connection that never had a request is dropped at once: nothing was written on it.
const EVICTION_GRACE: Duration = Duration::from_secs(1);

/// How long the accept loop waits after a failed accept (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long shutdown waits for background workers to finish their current batch.
pub const WORKER_DRAIN: Duration = adapters::leadership::WORKER_DRAIN;

/// Starts every background worker: projections and their snapshots, process managers, the cold-lead sweep, the
/// metrics gauges, the webhook retries, with Moyasar's API the missed-payment sweep and daily
/// reconciliation, and, under ZATCA Phase 2, the submitter. Run only by the
/// leading replica.
fn spawn_workers(
    state: &AppState,
    moyasar: Option<Arc<MoyasarClient>>,
    stopped: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut workers = Vec::new();
    // The read models share the store's database: one task, one transaction per batch for all.
    let read_models = state.projectors.iter().map(|p| p.projection().clone());
    let group = ProjectorGroup::new(state.store.clone(), read_models.collect());
    workers.push(tokio::spawn(group.run(stopped.clone())));
    // Snapshots for as-of reads, taken from the log (not the live tables) at their own pace,
    // when the configuration asks for them.
    if state.config.snapshots.worker {
        workers.push(tokio::spawn(projections::snapshots::run(
            state.store.clone(),
            state
                .projectors
                .iter()
                .map(|p| p.projection().clone())
                .collect(),
            state.config.snapshots,
            stopped.clone(),
        )));
    }
    // The process managers that call no outside service: one task, one log read and one
    // checkpoint transaction per step for all; each that does call out runs on its own.
    if let Some(client) = &moyasar {
        let sweeper = app::moyasar_sweep::Sweeper::new(
            state.handlers.clone(),
            client.clone(),
            state.config.moyasar_sweep.clone(),
        );
        workers.push(tokio::spawn(sweeper.run(stopped.clone())));
    }
    let (outside, inside): (Vec<_>, Vec<_>) =
        process_managers_configured(&state.config.program, moyasar)
            .into_iter()
            .partition(|process| process.calls_outside());
    workers.push(tokio::spawn(
        ProcessRunner::group(state.handlers.clone(), inside).run(stopped.clone()),
    ));
    for process in outside {
        workers.push(tokio::spawn(
            ProcessRunner::new(state.handlers.clone(), process).run(stopped.clone()),
        ));
    }
    workers.push(tokio::spawn(run_follow_up_sweeps(
        state.handlers.clone(),
        stopped.clone(),
    )));
    workers.push(tokio::spawn(crate::metrics::run_gauges(
        state.clone(),
        stopped.clone(),
    )));
    workers.push(tokio::spawn(crate::webhooks::run_retries(
        state.clone(),
        stopped.clone(),
    )));
    if let Some(zatca) = &state.config.zatca {
        match app::zatca::submitter::Submitter::new(state.handlers.clone(), zatca.clone()) {
            Ok(submitter) => workers.push(tokio::spawn(submitter.run(stopped.clone()))),
            Err(error) => tracing::error!(%error, "ZATCA submitter not started"),
        }
    }
    workers.push(tokio::spawn(purge_expired_rows(state.clone(), stopped)));
    workers
}

/// How often expired `Idempotency-Key`s and dashboard sessions are deleted. Keys live a day
/// and sessions a working day; an hour's delay in forgetting one changes nothing a client can
/// see (an expired key is a new request either way, and an expired session is refused by its
/// expiry time, not by its absence).
pub const IDEMPOTENCY_PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Deletes expired `Idempotency-Key`s and dashboard sessions now and every
/// [`IDEMPOTENCY_PURGE_INTERVAL`].
async fn purge_expired_rows(state: AppState, mut stopped: watch::Receiver<bool>) {
    loop {
        let now = adapters::clock::now_micros();
        match adapters::idempotency::purge_expired(&state.store.sql(), now).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired idempotency keys deleted"),
            Err(error) => tracing::warn!(%error, "expired idempotency keys not deleted"),
        }
        match adapters::sessions::purge_expired(&state.store.sql(), now).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired dashboard sessions deleted"),
            Err(error) => tracing::warn!(%error, "expired dashboard sessions not deleted"),
        }
        tokio::select! {
            () = tokio::time::sleep(IDEMPOTENCY_PURGE_INTERVAL) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Moyasar deliveries stored before bodies were redacted on arrival still hold the secret
/// token in clear: rewritten once at start, for the tokens configured now.
async fn redact_stored_moyasar_secrets(
    store: &Arc<dyn EventStore>,
    config: &Config,
) -> Result<(), adapters::store::StoreError> {
    let secrets: Vec<&str> = config
        .moyasar_secret_tokens
        .iter()
        .map(Secret::expose)
        .collect();
    if secrets.is_empty() {
        return Ok(());
    }
    let redact = |body: &[u8]| adapters::webhooks::moyasar::redact_secret_token(body).into_owned();
    let rewritten =
        adapters::inbox::redact_stored(&store.sql(), "moyasar", &secrets, redact).await?;
    if rewritten > 0 {
        tracing::info!(
            rewritten,
            "stored Moyasar deliveries had their secret token redacted"
        );
    }
    Ok(())
}

/// A started service.
pub struct Service {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Service {
    /// Migrates the store, starts the workers and binds the listener (port 0 picks one).
    pub async fn start(store: Arc<dyn EventStore>, config: Config) -> Result<Service, StartError> {
        store.migrate().await?;
        let moyasar = match &config.moyasar_api {
            Some(api) => Some(Arc::new(MoyasarClient::new(api)?)),
            None => None,
        };
        redact_stored_moyasar_secrets(&store, &config).await?;
        let handlers = Handlers::new(store.clone());
        let projectors: Vec<Projector> = projections::read_models()
            .into_iter()
            .map(|projection| Projector::new(store.clone(), projection))
            .collect();
        let (stop, stopped) = watch::channel(false);
        let config = Arc::new(config);
        let leader = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = AppState {
            store: store.clone(),
            handlers: handlers.clone(),
            projectors: Arc::new(projectors),
            config: config.clone(),
            leader: leader.clone(),
            deliveries: Arc::new(app::webhooks::Deliveries::new(
                store.clone(),
                handlers.clone(),
                config.delivery_config(),
            )),
            sign_in: Arc::new(crate::signin::SignInThrottle::default()),
            as_of: Arc::new(projections::as_of::AsOfReads::new(
                store.clone(),
                config.as_of_max_concurrent,
            )),
        };
        crate::metrics::install();
        app::webhooks::register_metrics();
        let mut workers = Vec::new();
        if config.run_workers {
            let state = state.clone();
            let start_workers = move |stopped: watch::Receiver<bool>| {
                let state = state.clone();
                let moyasar = moyasar.clone();
                async move { spawn_workers(&state, moyasar, stopped) }
            };
            workers.push(tokio::spawn(adapters::leadership::lead(
                store.sql(),
                leader,
                stopped.clone(),
                start_workers,
            )));
        }
        let listener = TcpListener::bind(config.listen).await?;
        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await?),
            None => None,
        };
        Ok(Service {
            listener,
            metrics_listener,
            state,
            stop,
            workers,
        })
    }

    /// Where the metrics-only listener listens, when one is configured.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics_listener.as_ref().map(TcpListener::local_addr)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, drains in-flight requests, then stops the workers
    /// and waits (bounded) for each to commit its current batch.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Service {
            listener,
            metrics_listener,
            state,
            stop,
            workers,
        } = self;
        let config = state.config.clone();
        let metrics_server = metrics_listener.map(|listener| {
            let mut stopped = stop.subscribe();
            let metrics = axum::Router::new().route(
                "/metrics",
                axum::routing::get(crate::metrics::render_unauthenticated),
            );
            tokio::spawn(async move {
                let until_stopped = async move {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                };
                if let Err(error) = axum::serve(listener, metrics)
                    .with_graceful_shutdown(until_stopped)
                    .await
                {
                    tracing::warn!(%error, "the metrics listener stopped");
                }
            })
        });
        serve(listener, router(state), &config, shutdown).await;
        let _ = stop.send(true);
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.await;
        }
        for worker in workers {
            if tokio::time::timeout(WORKER_DRAIN, worker).await.is_err() {
                tracing::warn!("a background worker did not stop in time");
            }
        }
        Ok(())
    }
}

/// A connection as hyper serves it: the router, each request counted in flight.
type HttpConnection =
    http1::Connection<TokioIo<TcpStream>, TrackRequests<TowerToHyperService<axum::Router>>>;

/// The HTTP/1.1 accept loop (what `axum::serve` does, plus limits): each connection reads its
/// request headers within `header_read_timeout`; one client holds at most
/// `max_connections_per_client` connections and all together at most `max_connections`. When
/// every slot is taken, a newcomer takes the slot of the connection that has waited longest
/// without a request in flight, and only when every slot has a request in flight is it
/// answered 503 and closed ([`crate::connections`]); so memory stays bounded under a flood,
/// and connections that never finish their headers cannot crowd out the others. When
/// `shutdown` resolves it stops accepting, closes the connections without a request in flight,
/// lets each other one finish its request, and returns once every connection has closed.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Connections::new(config.max_connections, config.max_connections_per_client);
    let (closing, closed) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Admitted {
            connection,
            eviction,
        } = match connections.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refused) => {
                tokio::spawn(shed(stream, refused));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout);
        let service = connection.track(TowerToHyperService::new(app.clone()));
        let served = builder.serve_connection(TokioIo::new(stream), service);
        let closed = closed.clone();
        tokio::spawn(async move {
            run_connection(served, eviction, closed).await;
            // Only now, the connection closed, is its slot free.
            drop(connection);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    connections.drain();
    connections.all_closed().await;
}

/// Serves one connection until it ends, is evicted, or the server shuts down (then its request
/// in flight is answered first).
async fn run_connection(
    connection: HttpConnection,
    mut eviction: oneshot::Receiver<Eviction>,
    mut closed: watch::Receiver<bool>,
) {
    let mut connection = std::pin::pin!(connection);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended");
                }
                return;
            }
            evicted = &mut eviction => {
                if evicted == Ok(Eviction::Idle) {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(EVICTION_GRACE, connection).await;
                }
                return;
            }
            _ = async { closed.wait_for(|closing| *closing).await.is_ok() }, if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answers a connection beyond a limit 503 without reading its request, then closes it.
async fn shed(mut stream: TcpStream, refused: Refused) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    crate::metrics::connection_shed(refused.limit());
    let body = serde_json::json!({"error": "unavailable", "detail": refused.detail()}).to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(SHED_WRITE_TIMEOUT, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read (and discard) what the client sent until it closes, a little at most: closing
        // with unread bytes would reset the connection before the client reads the 503.
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < SHED_DRAIN_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] adapters::store::StoreError),
    #[error("cannot bind the listener: {0}")]
    Bind(#[from] std::io::Error),
    #[error(transparent)]
    Moyasar(#[from] adapters::moyasar_api::MoyasarApiError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(weak: &[WeakSecret]) -> Vec<String> {
        weak.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn strong_secrets_and_unset_ones_are_not_weak() {
        assert_eq!(Config::default().weak_secrets(), []);
        let config = Config {
            admin_token: Some(Secret::new("a".repeat(MIN_ADMIN_TOKEN_CHARS))),
            moyasar_secret_tokens: vec![Secret::new("m".repeat(MIN_MOYASAR_SECRET_CHARS))],
            partner_webhook_secrets: vec![Secret::new(
                "whsec_c2Vjb25kLXJvdGF0ZWQta2V5LWZvci10ZXN0cw==",
            )],
            ..Config::default()
        };
        assert_eq!(config.weak_secrets(), []);
    }

    #[test]
    fn a_short_admin_token_a_short_moyasar_secret_and_the_public_example_are_weak() {
        let config = Config {
            admin_token: Some(Secret::new("demo-admin-token")),
            moyasar_secret_tokens: vec![Secret::new("short")],
            partner_webhook_secrets: vec![Secret::new(PUBLIC_EXAMPLE_WEBHOOK_SECRET)],
            ..Config::default()
        };
        assert_eq!(
            settings(&config.weak_secrets()),
            [
                "REVLEDGER_ADMIN_TOKEN: shorter than 32 characters",
                "REVLEDGER_MOYASAR_SECRET_TOKEN: shorter than 16 characters",
                "REVLEDGER_PARTNER_WEBHOOK_SECRET: the public example secret of the Standard \
                 Webhooks documentation",
            ]
        );
    }

    #[test]
    fn a_weak_entry_of_a_rotation_list_is_named_by_its_place_and_never_by_its_value() {
        let config = Config {
            moyasar_secret_tokens: vec![
                Secret::new("moyasar-secret-long-enough"),
                Secret::new("tiny-secret"),
            ],
            partner_webhook_secrets: vec![
                Secret::new("whsec_c2Vjb25kLXJvdGF0ZWQta2V5LWZvci10ZXN0cw=="),
                Secret::new(PUBLIC_EXAMPLE_WEBHOOK_SECRET),
            ],
            ..Config::default()
        };
        let named = settings(&config.weak_secrets());
        assert_eq!(
            named,
            [
                "REVLEDGER_MOYASAR_SECRET_TOKEN entry 2: shorter than 16 characters",
                "REVLEDGER_PARTNER_WEBHOOK_SECRET entry 2: the public example secret of the \
                 Standard Webhooks documentation",
            ]
        );
        let all = named.join("\n");
        assert!(!all.contains("tiny-secret") && !all.contains("MfKQ9r8G"));
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        // 16 Arabic letters are 32 bytes of UTF-8 but only 16 characters.
        let config = Config {
            admin_token: Some(Secret::new("ب".repeat(16))),
            ..Config::default()
        };
        assert_eq!(config.weak_secrets().len(), 1);
    }
}
