//! The service in this process, on a loopback port.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use adapters::store::EventStore;
use api::{AppState, Config, Service, StartError};

use crate::Client;

/// The service serving `store` on loopback until [`Served::stop`]. Dropping it starts the same
/// shutdown without waiting for it to finish.
pub struct Served {
    /// Where the API listens (`127.0.0.1:<port>`).
    pub address: SocketAddr,
    /// The metrics-only listener, when the configuration asks for one.
    pub metrics_address: Option<SocketAddr>,
    /// The service's state: its handlers, projectors and configuration, for a test to look at.
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl Served {
    /// Starts the service on `store` with `config`, listening on a port the system picks
    /// (whatever `config.listen` says, the address is loopback's, port 0).
    pub async fn start(
        store: Arc<dyn EventStore>,
        mut config: Config,
    ) -> Result<Served, StartError> {
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let service = Service::start(store, config).await?;
        let address = service.local_addr()?;
        let metrics_address = service.metrics_addr().transpose()?;
        let state = service.state().clone();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(service.run(async move {
            let _ = stopped.await;
        }));
        Ok(Served {
            address,
            metrics_address,
            state,
            shutdown: Some(shutdown),
            server: Some(server),
        })
    }

    /// A client of this service: a fresh connection per request.
    pub fn client(&self) -> Client {
        Client::new(self.address)
    }

    /// Stops the service as `serve` stops on SIGTERM: requests drain, the workers commit the
    /// batch they are on, and this returns once all of them have.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.server.take() {
            Some(server) => server.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}
