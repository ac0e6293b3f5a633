//! The service started in this process for a bench, and a small HTTP/1.1 client for it.

use adapters::store::EventStore;
use adapters::webhooks::Secret;
use anyhow::{bail, Context};
use app::process::{process_managers_configured, ProcessRunner};
use projections::Projector;
use serde_json::Value;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use super::*;

// ---------------------------------------------------------------------------------------------
// The service, in this process

/// The service started on a bench database, serving on loopback until dropped or stopped.
pub(super) struct RunningService {
    pub(super) address: SocketAddr,
    pub(super) state: api::AppState,
    pub(super) admin_token: String,
    pub(super) moyasar_token: String,
    pub(super) shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub(super) server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningService {
    pub(super) async fn start(store: Arc<dyn EventStore>) -> anyhow::Result<RunningService> {
        let admin_token = format!("bench-admin-{}", Uuid::new_v4().simple());
        let moyasar_token = format!("bench-moyasar-{}", Uuid::new_v4().simple());
        let config = api::Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            moyasar_secret_tokens: vec![Secret::new(moyasar_token.clone())],
            admin_token: Some(Secret::new(admin_token.clone())),
            run_workers: true,
            ..api::Config::default()
        };
        let service = api::Service::start(store, config)
            .await
            .context("starting the service")?;
        let address = service.local_addr()?;
        let state = service.state().clone();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(service.run(async move {
            let _ = stopped.await;
        }));
        let running = RunningService {
            address,
            state,
            admin_token,
            moyasar_token,
            shutdown: Some(shutdown),
            server: Some(server),
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

    pub(super) async fn connect(&self) -> anyhow::Result<HttpConnection> {
        HttpConnection::open(self.address).await
    }

    /// Drains requests, stops the workers (they commit their batch) and waits for both.
    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await??;
        }
        Ok(())
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

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 client: one keep-alive connection, one request at a time.

pub(super) struct HttpConnection {
    pub(super) stream: TcpStream,
    pub(super) host: String,
    pub(super) buffer: Vec<u8>,
    /// Largest answer read ([`MAX_ANSWER_BYTES`] unless a bench reads larger ones).
    pub(super) max_answer_bytes: usize,
}

pub(super) struct HttpAnswer {
    pub(super) status: u16,
    /// Each header as (lower-case name, value).
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl HttpAnswer {
    pub(super) fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).context("the answer is not JSON")
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The values of every header named `name` (lower case).
    pub(super) fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

impl HttpConnection {
    pub(super) async fn open(address: SocketAddr) -> anyhow::Result<HttpConnection> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection {
            stream,
            host: address.to_string(),
            buffer: Vec::with_capacity(8 * 1024),
            max_answer_bytes: MAX_ANSWER_BYTES,
        })
    }

    /// A JSON request, with the bearer token when given.
    pub(super) async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<HttpAnswer> {
        let authorization = token.map(|token| format!("Bearer {token}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(authorization) = &authorization {
            headers.push(("Authorization", authorization));
        }
        self.request(method, path, &headers, body).await
    }

    /// A request with these headers (besides `Host` and `Content-Length`).
    pub(super) async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<HttpAnswer> {
        let mut request = Vec::with_capacity(256 + body.len());
        write!(
            request,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        )?;
        for (name, value) in headers {
            write!(request, "{name}: {value}\r\n")?;
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        self.stream.write_all(&request).await?;
        self.read_answer()
            .await
            .with_context(|| format!("reading the answer to {method} {path}"))
    }

    pub(super) async fn read_answer(&mut self) -> anyhow::Result<HttpAnswer> {
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end])?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .context("no status code in the answer")?;
        let mut content_length = 0;
        let mut chunked = false;
        let mut headers = Vec::new();
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                content_length = value.parse()?;
            } else if name == "transfer-encoding" {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
            headers.push((name, value.to_owned()));
        }
        self.buffer.drain(..head_end);
        let body = if chunked {
            self.read_chunked().await?
        } else {
            if content_length > self.max_answer_bytes {
                bail!(
                    "an answer of {content_length} bytes; the bench reads at most {}",
                    self.max_answer_bytes
                );
            }
            while self.buffer.len() < content_length {
                self.fill().await?;
            }
            self.buffer.drain(..content_length).collect()
        };
        Ok(HttpAnswer {
            status,
            headers,
            body,
        })
    }

    pub(super) async fn read_chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buffer, b"\r\n") {
                    break end;
                }
                self.fill().await?;
            };
            let size_text = std::str::from_utf8(&self.buffer[..line_end])?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
            self.buffer.drain(..line_end + 2);
            if body.len() + size > self.max_answer_bytes {
                bail!("a chunked answer above {} bytes", self.max_answer_bytes);
            }
            while self.buffer.len() < size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buffer[..size]);
            self.buffer.drain(..size + 2);
            if size == 0 {
                return Ok(body);
            }
        }
    }

    pub(super) async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8 * 1024];
        let read = self.stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        if self.buffer.len() + read > self.max_answer_bytes + 64 * 1024 {
            bail!("the answer is larger than {} bytes", self.max_answer_bytes);
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
