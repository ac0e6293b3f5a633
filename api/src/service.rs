//! The whole service in one value: store, handlers, projectors, process managers, background
//! workers and the HTTP listener. `revledger serve` and the integration tests start it the
//! same way ([`Service::start`]), so tests exercise what production runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::handlers::Handlers;
use adapters::moyasar_api::MoyasarClient;
use adapters::store::EventStore;
use adapters::webhooks::Secret;
use projections::process::{process_managers_configured, run_follow_up_sweeps, ProcessRunner};
use projections::Projector;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{router, AppState};

/// Everything configurable, already parsed (the CLI maps flags and environment onto it).
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub moyasar_secret_token: Option<Secret>,
    pub calendly_signing_key: Option<Secret>,
    pub calendly_tolerance_secs: i64,
    /// Standard Webhooks secrets (`whsec_…`); several while a key is being rotated.
    pub partner_webhook_secrets: Vec<Secret>,
    pub partner_tolerance_secs: i64,
    pub admin_token: Option<Secret>,
    /// The partner program: hold period, attribution model, payout minimum.
    pub program: projections::commissions::ProgramConfig,
    /// Who issues invoices (ZATCA seller name and VAT number).
    pub seller: domain::invoice::Seller,
    /// Moyasar's API: when set, each issued invoice without a Moyasar invoice gets one.
    pub moyasar_api: Option<adapters::moyasar_api::MoyasarApiConfig>,
    /// Run projections, process managers and background sweeps in this process.
    pub run_workers: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            moyasar_secret_token: None,
            calendly_signing_key: None,
            calendly_tolerance_secs: adapters::webhooks::calendly::DEFAULT_TOLERANCE_SECS,
            partner_webhook_secrets: Vec::new(),
            partner_tolerance_secs: adapters::webhooks::standard::DEFAULT_TOLERANCE_SECS,
            admin_token: None,
            program: projections::commissions::ProgramConfig::default(),
            seller: domain::invoice::Seller {
                name: DEFAULT_SELLER_NAME.to_owned(),
                vat_number: DEFAULT_SELLER_VAT_NUMBER.to_owned(),
            },
            moyasar_api: None,
            run_workers: true,
        }
    }
}

/// The seller when none is configured: a placeholder that passes ZATCA's format checks, so the
/// embedded default works out of the box; production sets its own.
pub const DEFAULT_SELLER_NAME: &str = "Dealix";
pub const DEFAULT_SELLER_VAT_NUMBER: &str = "300000000000003";

/// How long shutdown waits for background workers to finish their current batch.
pub const WORKER_DRAIN: Duration = Duration::from_secs(10);

/// Starts every background worker: projections, process managers, the cold-lead sweep, the
/// metrics gauges and the webhook retries. Run only by the leading replica.
fn spawn_workers(
    state: &AppState,
    moyasar: Option<Arc<MoyasarClient>>,
    stopped: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut workers = Vec::new();
    for projector in state.projectors.iter() {
        workers.push(tokio::spawn(projector.clone().run(stopped.clone())));
    }
    for process in process_managers_configured(&state.config.program, moyasar) {
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
        stopped,
    )));
    workers
}

/// A started service.
pub struct Service {
    listener: TcpListener,
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
        };
        crate::metrics::install();
        let mut workers = Vec::new();
        if config.run_workers {
            let state = state.clone();
            let start_workers = move |stopped: watch::Receiver<bool>| {
                let state = state.clone();
                let moyasar = moyasar.clone();
                async move { spawn_workers(&state, moyasar, stopped) }
            };
            workers.push(tokio::spawn(crate::leadership::lead(
                store.sql(),
                leader,
                stopped.clone(),
                start_workers,
            )));
        }
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Service {
            listener,
            state,
            stop,
            workers,
        })
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
            state,
            stop,
            workers,
        } = self;
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown)
            .await?;
        let _ = stop.send(true);
        for worker in workers {
            if tokio::time::timeout(WORKER_DRAIN, worker).await.is_err() {
                tracing::warn!("a background worker did not stop in time");
            }
        }
        Ok(())
    }
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
