//! The service started in this process for a bench (the test kit's, with the bench's own
//! tokens), and how the bench waits for it.

use adapters::store::EventStore;
use adapters::webhooks::Secret;
use anyhow::{bail, Context};
use app::process::{process_managers_configured, ProcessRunner};
use projections::Projector;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::*;

// ---------------------------------------------------------------------------------------------
// The service, in this process

/// The service started on a bench database, serving on loopback until stopped.
pub(super) struct RunningService {
    pub(super) address: SocketAddr,
    pub(super) state: api::AppState,
    pub(super) admin_token: String,
    pub(super) moyasar_token: String,
    served: kit::Served,
}

impl RunningService {
    pub(super) async fn start(store: Arc<dyn EventStore>) -> anyhow::Result<RunningService> {
        let admin_token = format!("bench-admin-{}", Uuid::new_v4().simple());
        let moyasar_token = format!("bench-moyasar-{}", Uuid::new_v4().simple());
        let config = api::Config {
            moyasar_secret_tokens: vec![Secret::new(moyasar_token.clone())],
            admin_token: Some(Secret::new(admin_token.clone())),
            run_workers: true,
            ..api::Config::default()
        };
        let served = kit::Served::start(store, config)
            .await
            .context("starting the service")?;
        let running = RunningService {
            address: served.address,
            state: served.state.clone(),
            admin_token,
            moyasar_token,
            served,
        };
        running.wait_for_leadership().await?;
        Ok(running)
    }

    /// Workers start once this replica holds the leadership lock; the bench waits for that.
    pub(super) async fn wait_for_leadership(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + LEADERSHIP_DEADLINE;
        while !self.state.leader.load(Ordering::SeqCst) {
            if Instant::now() >= deadline {
                bail!("the service did not start its workers within {LEADERSHIP_DEADLINE:?}");
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
        Ok(())
    }

    /// Waits until every projection and process manager has applied everything committed;
    /// returns how long that took.
    pub(super) async fn wait_caught_up(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let runners = [ProcessRunner::group(
            self.state.handlers.clone(),
            process_managers_configured(&self.state.config.program, None),
        )];
        loop {
            if everything_caught_up(&self.state.projectors, &runners).await? {
                return Ok(started.elapsed());
            }
            if started.elapsed() > CATCH_UP_DEADLINE {
                bail!("projections did not catch up within {CATCH_UP_DEADLINE:?}");
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
    }

    /// A connection to the service that stays open, as one busy caller's does.
    pub(super) async fn connect(&self) -> anyhow::Result<kit::Connection> {
        kit::Connection::open(self.address)
            .await
            .with_context(|| format!("connecting to {}", self.address))
    }

    /// Drains requests, stops the workers (they commit their batch) and waits for both.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        Ok(self.served.stop().await?)
    }
}

pub(super) async fn everything_caught_up(
    projectors: &[Projector],
    runners: &[ProcessRunner],
) -> anyhow::Result<bool> {
    for projector in projectors {
        if !projector.is_caught_up().await? {
            return Ok(false);
        }
    }
    for runner in runners {
        if !runner.is_caught_up().await? {
            return Ok(false);
        }
    }
    Ok(true)
}
