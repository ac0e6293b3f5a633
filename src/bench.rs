//! `revledger bench …`: the workloads of issue 8, each printing one JSON line of figures.
//!
//! - **lifecycle** starts the whole service in this process ([`api::Service::start`], workers
//!   running) on an empty database and drives N leads through the eight commands of a sale over
//!   HTTP/1.1 on loopback, one keep-alive connection per worker: capture, qualify, book a demo,
//!   send a proposal, issue the invoice, pay it the way Moyasar does (a `payment_paid` webhook
//!   naming our invoice in its metadata), start onboarding, activate. The lead is marked paid by
//!   the process managers, so onboarding is retried until they have; those retries are counted
//!   apart and only the accepted attempt's latency is recorded. After the last answer it waits
//!   until every projection and process manager has caught up and reports how long that took.
//! - **replay** fills a store with the same mix through the command handlers in-process (no
//!   HTTP), then empties and refolds every read model from position zero, reporting events/s and
//!   the peak RSS. Generate with `--generate-only` and measure in a second run with `--reuse`,
//!   so the peak RSS is the rebuild's alone.
//! - **webhooks** issues K invoices, then measures signed Moyasar `payment_paid` deliveries for
//!   them over C connections: once as new deliveries, then again as repeats of the same
//!   delivery ids (answered from the inbox).
//!
//! Figures are wall-clock on whatever machine runs them; compare ratios taken in one run
//! (`bench/run.sh` puts pgbench beside the lifecycle figure), never absolute numbers across
//! machines.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::store::{EventMetadata, EventStore};
use adapters::webhooks::Secret;
use anyhow::{bail, Context};
use app::command::{CommandEnvelope, CommandError};
use app::handlers::Handlers;
use app::process::{process_managers, process_managers_configured, ProcessRunner};
use domain::invoice::{Customer, InvoiceLine, IssueInvoice, Seller};
use domain::lead::LeadCommand;
use domain::partner::{PartnerCommand, PartnerTier};
use domain::payment::{PaymentCommand, PaymentStatus};
use domain::plan::Plan;
use projections::Projector;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use uuid::Uuid;

/// Partners enrolled before a lifecycle or generation run; a third of the leads name one.
const PARTNERS: usize = 3;

/// Every `REFERRED_EVERY`-th lead is referred by a partner (a third of them).
const REFERRED_EVERY: u64 = 3;

/// The plans leads buy, in turn.
const PLANS: [Plan; 4] = [Plan::Pilot, Plan::Starter, Plan::Growth, Plan::Scale];

/// How long a worker keeps retrying onboarding while the process managers mark the lead paid.
/// Seconds of lag would already be a failure of the bench's own target (1 s).
const ONBOARD_DEADLINE: Duration = Duration::from_secs(60);

/// Leads a worker has sold (payment sent) and not onboarded yet before it onboards the oldest:
/// the process managers' chain from the payment to "lead paid" takes tens of milliseconds
/// under load, a few leads' commands. Measured (2,000 leads, 8 workers): with none the
/// worker waited and retried onboarding ~4.7 times per lead; with one, two or four ~2.9, ~2.5
/// and ~2.0 times, and throughput on either engine rose by 15–40% (noisy) with little
/// difference between one and four.
const PAYING_LEADS: usize = 2;

/// First wait between onboarding attempts; doubles up to [`ONBOARD_BACKOFF_MAX`].
const ONBOARD_BACKOFF_START: Duration = Duration::from_millis(1);
const ONBOARD_BACKOFF_MAX: Duration = Duration::from_millis(20);

/// A command answered 409 (a stream changed concurrently, after the handler's own retries) or
/// 503 is sent again, at most this many times, before the bench gives up.
const MAX_TRANSIENT_RETRIES: u32 = 20;

/// How long the bench waits for projections and process managers to catch up (after setup and
/// after the run) before it reports a failure instead of a number.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(600);

/// How often the bench looks whether everything has caught up. Short, because the wait is
/// measured; each look is one indexed read per projection.
const CATCH_UP_POLL: Duration = Duration::from_millis(2);

/// How long the bench waits for the service to take leadership and start its workers.
const LEADERSHIP_DEADLINE: Duration = Duration::from_secs(30);

/// Largest answer the bench's HTTP client reads (command answers are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Invoices per seller sequence in generated replay stores. The seller's ZATCA sequence keeps
/// every allocation in its state, so one sequence of a million invoices would make each
/// allocation copy the whole history; generation rotates sellers instead (see README).
const INVOICES_PER_SELLER: u64 = 1_000;

/// Concurrent in-process lead stories while generating a replay store.
const GENERATION_CONCURRENCY: usize = 8;

/// How often (in leads started) a generating worker re-reads the head of the log.
const HEAD_REFRESH_EVERY: u64 = 64;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// N leads through the eight commands of a sale over HTTP, workers running.
    Lifecycle(LifecycleArgs),
    /// Rebuild every read model from zero over a store of the lifecycle mix.
    Replay(ReplayArgs),
    /// Signed Moyasar `payment_paid` deliveries over HTTP: unique, then repeats.
    Webhooks(WebhooksArgs),
}

/// Which database a bench runs on.
#[derive(clap::Args)]
pub struct Target {
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`. Without `--fresh` it must hold no
    /// events yet (`replay --reuse` excepted).
    #[arg(long = "database-url", env = "REVLEDGER_DATABASE_URL")]
    database_url: String,
    /// Run on a new database instead: for PostgreSQL a `revledger_bench_<uuid>` database
    /// created on the server the URL names; for SQLite a new file beside the one named.
    #[arg(long)]
    fresh: bool,
}

#[derive(clap::Args)]
pub struct LifecycleArgs {
    #[command(flatten)]
    target: Target,
    /// Leads, each taken through eight commands.
    #[arg(long, default_value_t = 2_000)]
    leads: u64,
    /// Concurrent workers (one HTTP connection each), taking leads round-robin.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    target: Target,
    /// Events to generate (the store ends with at least this many).
    #[arg(long, default_value_t = 1_000_000)]
    events: i64,
    /// Measure on the events already in the store instead of generating.
    #[arg(long, conflicts_with = "generate_only")]
    reuse: bool,
    /// Generate the store and stop (measure later with `--reuse`, in a process whose peak RSS
    /// is the rebuild's alone).
    #[arg(long)]
    generate_only: bool,
    /// How the read models are rebuilt: in one pass over the log (what `revledger rebuild`
    /// does), one after another, or concurrently each with its own pass.
    #[arg(long, value_enum, default_value_t = ReplayMode::SinglePass)]
    mode: ReplayMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayMode {
    SinglePass,
    Sequential,
    Parallel,
}

#[derive(clap::Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    target: Target,
    /// Invoices issued first; each gets one delivery, then one repeat.
    #[arg(long, default_value_t = 1_000)]
    invoices: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    let figures = match command {
        BenchCommand::Lifecycle(args) => lifecycle(args).await?,
        BenchCommand::Replay(args) => replay(args).await?,
        BenchCommand::Webhooks(args) => webhooks(args).await?,
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::to_string(&figures)?)?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// Databases

/// An opened bench database: the store and a printable name (no credentials).
struct BenchDb {
    store: Arc<dyn EventStore>,
    name: String,
}

/// Opens the target, creating a fresh database first when asked; migrated.
async fn open_target(target: &Target) -> anyhow::Result<BenchDb> {
    let url = if target.fresh {
        fresh_database(&target.database_url).await?
    } else {
        target.database_url.clone()
    };
    let store = adapters::store::open(&url)
        .await
        .context("opening the bench database")?;
    store
        .migrate()
        .await
        .context("migrating the bench database")?;
    Ok(BenchDb {
        store,
        name: database_name(&url),
    })
}

/// Opens the target and refuses it unless it holds no events: the figures are for a fresh
/// ledger, and a bench must never write into one that matters.
async fn open_empty(target: &Target) -> anyhow::Result<BenchDb> {
    let db = open_target(target).await?;
    let events = count_events(db.store.as_ref()).await?;
    if events > 0 {
        bail!(
            "refusing to run: {} already holds {events} events; give an empty database or --fresh",
            db.name
        );
    }
    Ok(db)
}

/// A new database for `url`: a uuid-named PostgreSQL database on that server, or a uuid-named
/// SQLite file in the directory of the one named.
async fn fresh_database(url: &str) -> anyhow::Result<String> {
    let suffix = Uuid::now_v7().simple().to_string();
    if let Some(path) = sqlite_path(url) {
        let directory = path.parent().filter(|p| !p.as_os_str().is_empty());
        let file = directory
            .unwrap_or_else(|| Path::new("."))
            .join(format!("revledger-bench-{suffix}.db"));
        return Ok(format!("sqlite://{}", file.display()));
    }
    let name = format!("revledger_bench_{suffix}");
    let server = adapters::store::open(url)
        .await
        .context("connecting to the PostgreSQL server to create a fresh database")?;
    server
        .sql()
        .execute(&format!("CREATE DATABASE \"{name}\""), &[])
        .await
        .with_context(|| format!("creating database {name}"))?;
    Ok(with_database(url, &name))
}

/// The path of a `sqlite:` URL, without its query.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

/// `url` with its database (the path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// What to call the database in the output: the SQLite path or the PostgreSQL database name.
fn database_name(url: &str) -> String {
    if let Some(path) = sqlite_path(url) {
        return path.display().to_string();
    }
    let base = url.split('?').next().unwrap_or(url);
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    base[authority_start..]
        .split_once('/')
        .map(|(_, name)| name.to_owned())
        .unwrap_or_default()
}

async fn count_events(store: &dyn EventStore) -> anyhow::Result<i64> {
    let row = store
        .sql()
        .fetch_optional("SELECT COUNT(*) FROM events", &[])
        .await?
        .context("COUNT(*) returned no row")?;
    Ok(row.i64(0)?)
}

// ---------------------------------------------------------------------------------------------
// The service, in this process

/// The service started on a bench database, serving on loopback until dropped or stopped.
struct RunningService {
    address: SocketAddr,
    state: api::AppState,
    admin_token: String,
    moyasar_token: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningService {
    async fn start(store: Arc<dyn EventStore>) -> anyhow::Result<RunningService> {
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
    async fn wait_for_leadership(&self) -> anyhow::Result<()> {
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
    async fn wait_caught_up(&self) -> anyhow::Result<Duration> {
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

    async fn connect(&self) -> anyhow::Result<HttpConnection> {
        HttpConnection::open(self.address).await
    }

    /// Drains requests, stops the workers (they commit their batch) and waits for both.
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await??;
        }
        Ok(())
    }
}

async fn everything_caught_up(
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

struct HttpConnection {
    stream: TcpStream,
    host: String,
    buffer: Vec<u8>,
}

struct HttpAnswer {
    status: u16,
    body: Vec<u8>,
}

impl HttpAnswer {
    fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).context("the answer is not JSON")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl HttpConnection {
    async fn open(address: SocketAddr) -> anyhow::Result<HttpConnection> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection {
            stream,
            host: address.to_string(),
            buffer: Vec::with_capacity(8 * 1024),
        })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<HttpAnswer> {
        let mut request = Vec::with_capacity(256 + body.len());
        write!(
            request,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        )?;
        if let Some(token) = token {
            write!(request, "Authorization: Bearer {token}\r\n")?;
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        self.stream.write_all(&request).await?;
        self.read_answer()
            .await
            .with_context(|| format!("reading the answer to {method} {path}"))
    }

    async fn read_answer(&mut self) -> anyhow::Result<HttpAnswer> {
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
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse()?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
        self.buffer.drain(..head_end);
        let body = if chunked {
            self.read_chunked().await?
        } else {
            if content_length > MAX_ANSWER_BYTES {
                bail!("an answer of {content_length} bytes; the bench reads at most {MAX_ANSWER_BYTES}");
            }
            while self.buffer.len() < content_length {
                self.fill().await?;
            }
            self.buffer.drain(..content_length).collect()
        };
        Ok(HttpAnswer { status, body })
    }

    async fn read_chunked(&mut self) -> anyhow::Result<Vec<u8>> {
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
            if body.len() + size > MAX_ANSWER_BYTES {
                bail!("a chunked answer above {MAX_ANSWER_BYTES} bytes");
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

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8 * 1024];
        let read = self.stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        if self.buffer.len() + read > MAX_ANSWER_BYTES + 64 * 1024 {
            bail!("the answer is larger than {MAX_ANSWER_BYTES} bytes");
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

// ---------------------------------------------------------------------------------------------
// Latencies

/// What one worker measured.
#[derive(Default)]
struct WorkerStats {
    /// Accepted requests' latencies by command, to tell which commands make the tail.
    by_command: BTreeMap<&'static str, Vec<u64>>,
    onboard_retries: u64,
    transient_retries: u64,
}

impl WorkerStats {
    fn record(&mut self, command: &'static str, latency_us: u64) {
        self.by_command.entry(command).or_default().push(latency_us);
    }

    /// Every command's latencies together, sorted.
    fn latencies_sorted(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.by_command.values().flatten().copied().collect();
        all.sort_unstable();
        all
    }

    /// Each command's p50 and p99 in milliseconds.
    fn by_command_figures(&mut self) -> Value {
        let mut figures = serde_json::Map::new();
        for (command, latencies) in &mut self.by_command {
            latencies.sort_unstable();
            figures.insert(
                (*command).to_owned(),
                json!({
                    "p50_ms": percentile_ms(latencies, 50),
                    "p99_ms": percentile_ms(latencies, 99),
                }),
            );
        }
        Value::Object(figures)
    }

    fn merge(&mut self, other: WorkerStats) {
        for (command, latencies) in other.by_command {
            self.by_command
                .entry(command)
                .or_default()
                .extend(latencies);
        }
        self.onboard_retries += other.onboard_retries;
        self.transient_retries += other.transient_retries;
    }
}

/// The nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted_us: &[u64], percent: u64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (sorted_us.len() as u64 * percent).div_ceil(100).max(1) as usize;
    sorted_us[rank.min(sorted_us.len()) - 1] as f64 / 1_000.0
}

fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        rounded(count as f64 / seconds, 1)
    } else {
        0.0
    }
}

/// Requests/s and latency percentiles of one measured phase.
fn phase_figures(stats: &WorkerStats, elapsed: Duration) -> Value {
    let latencies_us = stats.latencies_sorted();
    let count = latencies_us.len() as u64;
    json!({
        "requests": count,
        "seconds": rounded(elapsed.as_secs_f64(), 3),
        "requests_per_sec": per_second(count, elapsed),
        "p50_ms": percentile_ms(&latencies_us, 50),
        "p99_ms": percentile_ms(&latencies_us, 99),
        "max_ms": latencies_us.last().map_or(0.0, |us| *us as f64 / 1_000.0),
    })
}

// ---------------------------------------------------------------------------------------------
// lifecycle

/// One lead of a run: who it is, who referred it, what it buys.
#[derive(Clone)]
struct LeadPlan {
    index: u64,
    lead_id: String,
    email: String,
    partner_id: Option<String>,
    plan: Plan,
}

impl LeadPlan {
    fn new(index: u64) -> LeadPlan {
        let partner_id = (index % REFERRED_EVERY == 0)
            .then(|| partner_id(((index / REFERRED_EVERY) % PARTNERS as u64) as usize));
        LeadPlan {
            index,
            lead_id: format!("bench-lead-{index}"),
            email: format!("lead{index}@bench.example.sa"),
            partner_id,
            plan: PLANS[(index % PLANS.len() as u64) as usize],
        }
    }
}

fn partner_id(index: usize) -> String {
    format!("bench-partner-{index}")
}

fn rfc3339(at: OffsetDateTime) -> anyhow::Result<String> {
    Ok(at.format(&Rfc3339)?)
}

/// A worker driving leads over one connection.
struct Driver {
    connection: HttpConnection,
    admin_token: String,
    moyasar_token: String,
    stats: WorkerStats,
}

impl Driver {
    /// Sends a command until it is accepted (2xx), resending on 409/503 a bounded number of
    /// times; records the accepted attempt's latency.
    async fn command(
        &mut self,
        label: &'static str,
        method: &str,
        path: &str,
        authenticated: bool,
        body: &[u8],
    ) -> anyhow::Result<HttpAnswer> {
        let mut transient = 0;
        loop {
            let token = authenticated.then_some(self.admin_token.as_str());
            let started = Instant::now();
            let answer = self.connection.send(method, path, token, body).await?;
            let elapsed_us = started.elapsed().as_micros() as u64;
            match answer.status {
                200..=299 => {
                    self.stats.record(label, elapsed_us);
                    return Ok(answer);
                }
                409 | 503 if transient < MAX_TRANSIENT_RETRIES => {
                    transient += 1;
                    self.stats.transient_retries += 1;
                }
                status => bail!("{method} {path} answered {status}: {}", answer.text()),
            }
        }
    }

    /// Starts onboarding, retrying (with a short backoff) while the lead is not paid yet.
    async fn onboard(&mut self, lead_id: &str) -> anyhow::Result<()> {
        let path = format!("/api/leads/{lead_id}/onboard");
        let deadline = Instant::now() + ONBOARD_DEADLINE;
        let mut backoff = ONBOARD_BACKOFF_START;
        loop {
            let started = Instant::now();
            let answer = self
                .connection
                .send("POST", &path, Some(&self.admin_token), b"")
                .await?;
            let elapsed_us = started.elapsed().as_micros() as u64;
            match answer.status {
                200..=299 => {
                    self.stats.record("onboard", elapsed_us);
                    return Ok(());
                }
                422 | 409 | 503 if Instant::now() < deadline => {
                    self.stats.onboard_retries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ONBOARD_BACKOFF_MAX);
                }
                status => bail!(
                    "onboarding {lead_id} answered {status} (after {ONBOARD_DEADLINE:?} of retries at most): {}",
                    answer.text()
                ),
            }
        }
    }

    /// Captures a lead and issues its invoice (the first five commands); returns the invoice
    /// id and its total with VAT.
    async fn capture_to_invoice(&mut self, lead: &LeadPlan) -> anyhow::Result<(String, i64)> {
        let id = &lead.lead_id;
        let capture = json!({
            "lead_id": id,
            "name": format!("Lead {}", lead.index),
            "company": format!("Company {}", lead.index),
            "email": lead.email,
            "source": if lead.partner_id.is_some() { "partner" } else { "landing_page" },
            "partner_id": lead.partner_id,
            "owner": "sales-1",
        });
        self.command(
            "capture",
            "POST",
            "/api/leads",
            true,
            &serde_json::to_vec(&capture)?,
        )
        .await?;
        self.command(
            "qualify",
            "POST",
            &format!("/api/leads/{id}/qualify"),
            true,
            b"",
        )
        .await?;
        let demo = json!({
            "booking_id": format!("bench-booking-{}", lead.index),
            "scheduled_for": rfc3339(adapters::clock::now_micros() + time::Duration::days(2))?,
        });
        let path = format!("/api/leads/{id}/book-demo");
        self.command(
            "book_demo",
            "POST",
            &path,
            true,
            &serde_json::to_vec(&demo)?,
        )
        .await?;
        let proposal = json!({ "plan": lead.plan });
        let path = format!("/api/leads/{id}/proposal");
        self.command(
            "proposal",
            "POST",
            &path,
            true,
            &serde_json::to_vec(&proposal)?,
        )
        .await?;
        let invoice = json!({ "lead_id": id, "plan": lead.plan });
        let answer = self
            .command(
                "issue_invoice",
                "POST",
                "/api/invoices",
                true,
                &serde_json::to_vec(&invoice)?,
            )
            .await?
            .json()?;
        let invoice_id = answer["invoice_id"]
            .as_str()
            .context("the invoice answer has no invoice_id")?
            .to_owned();
        let total = answer["total_halalas"]
            .as_i64()
            .context("the invoice answer has no total_halalas")?;
        Ok((invoice_id, total))
    }

    /// The payment as Moyasar reports it: `payment_paid`, our invoice id in the metadata.
    async fn pay(&mut self, delivery: &[u8]) -> anyhow::Result<()> {
        let answer = self
            .command(
                "payment_webhook",
                "POST",
                "/webhooks/moyasar",
                false,
                delivery,
            )
            .await?;
        let body = answer.json()?;
        if answer.status != 200 || body["status"] != "accepted" {
            bail!(
                "the payment_paid delivery was not accepted: {}",
                answer.text()
            );
        }
        Ok(())
    }

    /// A lead's first six commands: capture to the payment webhook.
    async fn sell(&mut self, lead: &LeadPlan) -> anyhow::Result<()> {
        let sold = async {
            let (invoice_id, total) = self.capture_to_invoice(lead).await?;
            let delivery = payment_paid(
                &self.moyasar_token,
                &format!("bench-delivery-{}", lead.index),
                &format!("bench-payment-{}", lead.index),
                &invoice_id,
                total,
            )?;
            self.pay(&delivery).await
        };
        sold.await.with_context(|| format!("lead {}", lead.lead_id))
    }

    /// A paid lead's last two commands: onboard and activate.
    async fn deliver(&mut self, lead: &LeadPlan) -> anyhow::Result<()> {
        let delivered = async {
            self.onboard(&lead.lead_id).await?;
            let path = format!("/api/leads/{}/activate", lead.lead_id);
            self.command("activate", "POST", &path, true, b"").await?;
            anyhow::Ok(())
        };
        delivered
            .await
            .with_context(|| format!("lead {}", lead.lead_id))
    }

    /// Takes `leads` through their eight commands, one request at a time. A lead can be
    /// onboarded only once the process managers have marked it paid (payment → invoice paid →
    /// lead paid), so the worker does not wait for that right after the payment: it sells its
    /// next [`PAYING_LEADS`] leads first and then onboards the paid one, as a sales team goes
    /// on with its next customers while a payment clears. Onboarding still retries while the
    /// lead is not paid.
    async fn lifecycles(&mut self, leads: &[LeadPlan]) -> anyhow::Result<()> {
        let mut paying = std::collections::VecDeque::with_capacity(PAYING_LEADS + 1);
        for lead in leads {
            self.sell(lead).await?;
            paying.push_back(lead);
            if paying.len() > PAYING_LEADS {
                let paid = paying.pop_front().expect("it holds more than PAYING_LEADS");
                self.deliver(paid).await?;
            }
        }
        for paid in paying {
            self.deliver(paid).await?;
        }
        Ok(())
    }
}

/// A Moyasar `payment_paid` delivery (the documented shape) for our invoice.
fn payment_paid(
    secret_token: &str,
    delivery_id: &str,
    payment_id: &str,
    invoice_id: &str,
    amount_halalas: i64,
) -> anyhow::Result<Vec<u8>> {
    let now = rfc3339(adapters::clock::now_micros())?;
    let body = json!({
        "id": delivery_id,
        "type": "payment_paid",
        "created_at": now,
        "secret_token": secret_token,
        "account_name": "Dealix",
        "live": true,
        "data": {
            "id": payment_id,
            "status": "paid",
            "amount": amount_halalas,
            "fee": amount_halalas / 50,
            "currency": "SAR",
            "refunded": 0,
            "refunded_at": null,
            "captured": 0,
            "captured_at": null,
            "voided_at": null,
            "description": format!("Invoice {invoice_id}"),
            "invoice_id": null,
            "ip": "127.0.0.1",
            "callback_url": null,
            "created_at": now,
            "updated_at": now,
            "metadata": { "invoice_id": invoice_id },
            "source": {
                "type": "creditcard",
                "company": "mada",
                "name": "Bench Customer",
                "number": "XXXX-XXXX-XXXX-1111",
                "gateway_id": "moyasar_cc_bench",
                "reference_number": null,
                "token": null,
                "message": "Succeeded!",
                "transaction_url": null
            }
        }
    });
    Ok(serde_json::to_vec(&body)?)
}

/// Enrolls the partners and records a referral click for every referred lead (setup, not
/// measured), each partner's referrals on its own connection so they do not race one stream.
async fn enroll_partners(service: &RunningService, leads: &[LeadPlan]) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..PARTNERS {
        let partner = partner_id(index);
        let emails: Vec<String> = leads
            .iter()
            .filter(|lead| lead.partner_id.as_deref() == Some(partner.as_str()))
            .map(|lead| lead.email.clone())
            .collect();
        let mut connection = service.connect().await?;
        let token = service.admin_token.clone();
        tasks.spawn(async move {
            let enroll = json!({
                "partner_id": partner,
                "name": format!("Partner {index}"),
                "email": format!("{partner}@partners.example.sa"),
                "tier": PartnerTier::Referral,
            });
            let answer = connection
                .send(
                    "POST",
                    "/api/partners",
                    Some(&token),
                    &serde_json::to_vec(&enroll)?,
                )
                .await?;
            if answer.status != 201 {
                bail!(
                    "enrolling {partner} answered {}: {}",
                    answer.status,
                    answer.text()
                );
            }
            let path = format!("/api/partners/{partner}/referrals");
            for email in emails {
                let referral = json!({
                    "lead_email": email,
                    "clicked_at": rfc3339(adapters::clock::now_micros())?,
                });
                let answer = connection
                    .send("POST", &path, Some(&token), &serde_json::to_vec(&referral)?)
                    .await?;
                if answer.status != 201 {
                    bail!(
                        "a referral for {partner} answered {}: {}",
                        answer.status,
                        answer.text()
                    );
                }
            }
            Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

async fn lifecycle(args: LifecycleArgs) -> anyhow::Result<Value> {
    if args.concurrency == 0 || args.leads == 0 {
        bail!("--leads and --concurrency must be at least 1");
    }
    let db = open_empty(&args.target).await?;
    let engine = db.store.engine();
    let service = RunningService::start(db.store.clone()).await?;
    let leads: Vec<LeadPlan> = (1..=args.leads).map(LeadPlan::new).collect();
    enroll_partners(&service, &leads).await?;
    service.wait_caught_up().await?;

    let head_before = db.store.head_position().await?;
    let events_before = count_events(db.store.as_ref()).await?;
    let mut workers = tokio::task::JoinSet::new();
    let mut drivers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        drivers.push(Driver {
            connection: service.connect().await?,
            admin_token: service.admin_token.clone(),
            moyasar_token: service.moyasar_token.clone(),
            stats: WorkerStats::default(),
        });
    }
    let started = Instant::now();
    for (worker, mut driver) in drivers.into_iter().enumerate() {
        let mine: Vec<LeadPlan> = leads
            .iter()
            .skip(worker)
            .step_by(args.concurrency)
            .cloned()
            .collect();
        workers.spawn(async move {
            driver.lifecycles(&mine).await?;
            anyhow::Ok(driver.stats)
        });
    }
    let mut stats = WorkerStats::default();
    while let Some(result) = workers.join_next().await {
        stats.merge(result??);
    }
    let elapsed = started.elapsed();
    let catch_up = service.wait_caught_up().await?;
    let events_appended = count_events(db.store.as_ref()).await? - events_before;
    let head_after = db.store.head_position().await?;
    service.stop().await?;

    let latencies_us = stats.latencies_sorted();
    let commands = latencies_us.len() as u64;
    Ok(json!({
        "bench": "lifecycle",
        "engine": engine,
        "database": db.name,
        "leads": args.leads,
        "concurrency": args.concurrency,
        "partners": PARTNERS,
        "referred_leads": leads.iter().filter(|lead| lead.partner_id.is_some()).count(),
        "commands": commands,
        "seconds": rounded(elapsed.as_secs_f64(), 3),
        "commands_per_sec": per_second(commands, elapsed),
        "p50_ms": percentile_ms(&latencies_us, 50),
        "p99_ms": percentile_ms(&latencies_us, 99),
        "max_ms": latencies_us.last().map_or(0.0, |us| *us as f64 / 1_000.0),
        "by_command": stats.by_command_figures(),
        "events_appended": events_appended,
        "head_position": head_after,
        "first_position": head_before + 1,
        "catch_up_ms": rounded(catch_up.as_secs_f64() * 1_000.0, 1),
        "onboard_retries": stats.onboard_retries,
        "conflict_retries": stats.transient_retries,
    }))
}

// ---------------------------------------------------------------------------------------------
// webhooks

async fn webhooks(args: WebhooksArgs) -> anyhow::Result<Value> {
    if args.concurrency == 0 || args.invoices == 0 {
        bail!("--invoices and --concurrency must be at least 1");
    }
    let db = open_empty(&args.target).await?;
    let engine = db.store.engine();
    let service = RunningService::start(db.store.clone()).await?;

    // Setup: a lead and an invoice per delivery, over the same API (not measured).
    let leads: Vec<LeadPlan> = (1..=args.invoices)
        .map(|index| LeadPlan {
            partner_id: None,
            ..LeadPlan::new(index)
        })
        .collect();
    let mut setup = tokio::task::JoinSet::new();
    for worker in 0..args.concurrency {
        let mut driver = Driver {
            connection: service.connect().await?,
            admin_token: service.admin_token.clone(),
            moyasar_token: service.moyasar_token.clone(),
            stats: WorkerStats::default(),
        };
        let mine: Vec<LeadPlan> = leads
            .iter()
            .skip(worker)
            .step_by(args.concurrency)
            .cloned()
            .collect();
        setup.spawn(async move {
            let mut deliveries = Vec::with_capacity(mine.len());
            for lead in &mine {
                let (invoice_id, total) = driver.capture_to_invoice(lead).await?;
                deliveries.push(payment_paid(
                    &driver.moyasar_token,
                    &format!("bench-delivery-{}", lead.index),
                    &format!("bench-payment-{}", lead.index),
                    &invoice_id,
                    total,
                )?);
            }
            anyhow::Ok(deliveries)
        });
    }
    let mut deliveries = Vec::with_capacity(leads.len());
    while let Some(result) = setup.join_next().await {
        deliveries.extend(result??);
    }
    service.wait_caught_up().await?;
    let deliveries = Arc::new(deliveries);

    let events_before = count_events(db.store.as_ref()).await?;
    let (unique, unique_elapsed) = send_deliveries(&service, &deliveries, args.concurrency).await?;
    let events_from_unique = count_events(db.store.as_ref()).await? - events_before;
    let catch_up = service.wait_caught_up().await?;
    let events_before_repeats = count_events(db.store.as_ref()).await?;
    let (repeats, repeats_elapsed) =
        send_deliveries(&service, &deliveries, args.concurrency).await?;
    let events_from_repeats = count_events(db.store.as_ref()).await? - events_before_repeats;
    service.stop().await?;

    let unique_figures = phase_figures(&unique, unique_elapsed);
    let repeat_figures = phase_figures(&repeats, repeats_elapsed);
    Ok(json!({
        "bench": "webhooks",
        "engine": engine,
        "database": db.name,
        "invoices": args.invoices,
        "concurrency": args.concurrency,
        "unique": unique_figures,
        "repeats": repeat_figures,
        "requests_per_sec": unique_figures["requests_per_sec"],
        "p50_ms": unique_figures["p50_ms"],
        "p99_ms": unique_figures["p99_ms"],
        "repeat_requests_per_sec": repeat_figures["requests_per_sec"],
        "repeat_p50_ms": repeat_figures["p50_ms"],
        "repeat_p99_ms": repeat_figures["p99_ms"],
        "events_appended_by_unique": events_from_unique,
        "events_appended_by_repeats": events_from_repeats,
        "catch_up_after_unique_ms": rounded(catch_up.as_secs_f64() * 1_000.0, 1),
    }))
}

/// Posts every delivery once, over `concurrency` connections taking them round-robin; each
/// must be answered 200 `accepted` (a repeat gets the first answer again).
async fn send_deliveries(
    service: &RunningService,
    deliveries: &Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> anyhow::Result<(WorkerStats, Duration)> {
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        connections.push(service.connect().await?);
    }
    let mut workers = tokio::task::JoinSet::new();
    let started = Instant::now();
    for (worker, connection) in connections.into_iter().enumerate() {
        let deliveries = deliveries.clone();
        let mut driver = Driver {
            connection,
            admin_token: String::new(),
            moyasar_token: service.moyasar_token.clone(),
            stats: WorkerStats::default(),
        };
        workers.spawn(async move {
            for delivery in deliveries.iter().skip(worker).step_by(concurrency) {
                driver.pay(delivery).await?;
            }
            anyhow::Ok(driver.stats)
        });
    }
    let mut stats = WorkerStats::default();
    while let Some(result) = workers.join_next().await {
        stats.merge(result??);
    }
    Ok((stats, started.elapsed()))
}

// ---------------------------------------------------------------------------------------------
// replay

async fn replay(args: ReplayArgs) -> anyhow::Result<Value> {
    let mut generation = Value::Null;
    let db = if args.reuse {
        let db = open_target(&args.target).await?;
        if count_events(db.store.as_ref()).await? == 0 {
            bail!("--reuse: {} holds no events; generate first", db.name);
        }
        db
    } else {
        let (db, figures) = generate_store(&args.target, args.events).await?;
        generation = figures;
        db
    };
    let engine = db.store.engine();
    let events = count_events(db.store.as_ref()).await?;
    if args.generate_only {
        return Ok(json!({
            "bench": "replay",
            "engine": engine,
            "database": db.name,
            "events": events,
            "generation": generation,
            "rebuilt": false,
            "peak_rss_mb": peak_rss_mb(),
        }));
    }
    let started = Instant::now();
    let read_models = projections::read_models().len();
    let rebuilt = rebuild_all(&db.store, args.mode).await?;
    let elapsed = started.elapsed();
    let peak_rss_mb = peak_rss_mb();
    Ok(json!({
        "bench": "replay",
        "engine": engine,
        "database": db.name,
        "events": events,
        "read_models": read_models,
        "mode": format!("{:?}", args.mode),
        "seconds": rounded(elapsed.as_secs_f64(), 3),
        "events_per_sec": per_second(events as u64, elapsed),
        "applications_per_sec": per_second(events as u64 * read_models as u64, elapsed),
        "peak_rss_mb": peak_rss_mb,
        "rss_includes_generation": !args.reuse,
        "generation": generation,
        "projections": rebuilt
            .iter()
            .map(|(name, applied, seconds)| json!({
                "name": name,
                "events": applied,
                "seconds": rounded(seconds.as_secs_f64(), 3),
                "events_per_sec": per_second(*applied, *seconds),
            }))
            .collect::<Vec<_>>(),
    }))
}

/// Empties every read model and refolds it from position zero; per read model (or for all of
/// them in one pass): the name, the events applied and how long it took.
async fn rebuild_all(
    store: &Arc<dyn EventStore>,
    mode: ReplayMode,
) -> anyhow::Result<Vec<(&'static str, u64, Duration)>> {
    if mode == ReplayMode::SinglePass {
        let started = Instant::now();
        let rebuild =
            projections::Rebuild::start(store.clone(), projections::read_models()).await?;
        let applied = rebuild.run().await?;
        return Ok(vec![("all read models", applied, started.elapsed())]);
    }
    let rebuild = |projector: Projector| async move {
        let started = Instant::now();
        projector.reset().await?;
        let applied = projector.catch_up().await?;
        anyhow::Ok((projector.name(), applied, started.elapsed()))
    };
    let projectors: Vec<Projector> = projections::read_models()
        .into_iter()
        .map(|projection| Projector::new(store.clone(), projection))
        .collect();
    let mut results = Vec::with_capacity(projectors.len());
    if mode == ReplayMode::Parallel {
        let mut tasks = tokio::task::JoinSet::new();
        for projector in projectors {
            tasks.spawn(rebuild(projector));
        }
        while let Some(result) = tasks.join_next().await {
            results.push(result??);
        }
    } else {
        for projector in projectors {
            results.push(rebuild(projector).await?);
        }
    }
    Ok(results)
}

/// The process's peak resident set (`VmHWM`), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(rounded(kib / 1024.0, 1))
}

/// Executes a command through a handler, deciding it again when its stream changed
/// concurrently (a bounded number of times on top of the handler's own retries). A macro, not
/// a function, because the handler's bound names `cqrs_es::Aggregate`, which this crate does
/// not depend on.
macro_rules! execute {
    ($handler:expr, $aggregate_id:expr, $command:expr) => {
        execute!($handler, $aggregate_id, $command, Uuid::now_v7())
    };
    ($handler:expr, $aggregate_id:expr, $command:expr, $command_id:expr) => {{
        let handler = $handler;
        let aggregate_id: &str = $aggregate_id;
        let command = $command;
        let command_id: Uuid = $command_id;
        let mut attempts = 0;
        loop {
            let envelope = bench_envelope(aggregate_id, command_id, command.clone());
            match handler.execute(envelope).await {
                Err(CommandError::Conflict { .. }) if attempts < MAX_TRANSIENT_RETRIES => {
                    attempts += 1;
                }
                other => break other,
            }
        }
    }};
}

fn bench_envelope<C>(aggregate_id: &str, command_id: Uuid, command: C) -> CommandEnvelope<C> {
    CommandEnvelope {
        aggregate_id: aggregate_id.to_owned(),
        command_id,
        command,
        metadata: EventMetadata {
            actor: Some("bench".into()),
            source: Some("bench".into()),
            ..Default::default()
        },
        inbox: None,
        fresh_id: false,
    }
}

/// Fills an empty target with at least `events` events of the lifecycle mix and returns it
/// with the generation figures.
///
/// Generation is not what is measured, so it is made fast without changing what is stored:
/// on SQLite, a new file is generated on tmpfs (`/dev/shm`, where a commit's fsync costs
/// nothing) and copied into place with `VACUUM INTO`; on PostgreSQL, the database's
/// `synchronous_commit` is off while generating and reset afterwards. Events still go through
/// the command handlers and the store's append (hash chains and all), and the chains are
/// verified before the rebuild.
async fn generate_store(target: &Target, events: i64) -> anyhow::Result<(BenchDb, Value)> {
    let url = if target.fresh {
        fresh_database(&target.database_url).await?
    } else {
        target.database_url.clone()
    };
    let started = Instant::now();
    let staging = match sqlite_path(&url) {
        Some(path) if !path.exists() && Path::new("/dev/shm").is_dir() => Some(path),
        _ => None,
    };
    let generated_in = match &staging {
        Some(_) => format!(
            "sqlite:///dev/shm/revledger-bench-{}.db",
            Uuid::now_v7().simple()
        ),
        None => url.clone(),
    };
    let generated = generate_into(&url, &generated_in, staging.as_deref(), events, started).await;
    if generated.is_err() && staging.is_some() {
        remove_sqlite_files(&generated_in);
    }
    generated
}

/// Removes a SQLite database file and its WAL and shared-memory files.
fn remove_sqlite_files(url: &str) {
    if let Some(path) = sqlite_path(url) {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(format!("{}-wal", path.display()));
        let _ = std::fs::remove_file(format!("{}-shm", path.display()));
    }
}

/// [`generate_store`] once the place is chosen: generates into `generated_in`, then copies
/// it to `staging` (the target SQLite file) when staged.
async fn generate_into(
    url: &str,
    generated_in: &str,
    staging: Option<&Path>,
    events: i64,
    started: Instant,
) -> anyhow::Result<(BenchDb, Value)> {
    let store = adapters::store::open(generated_in).await?;
    store.migrate().await?;
    let existing = count_events(store.as_ref()).await?;
    if existing > 0 {
        bail!(
            "refusing to generate into {}: it already holds {existing} events (use --reuse to measure them, or --fresh)",
            database_name(url)
        );
    }
    let postgres = store.engine() == "postgres";
    let store = if postgres {
        set_synchronous_commit(store.as_ref(), false).await?;
        drop(store);
        adapters::store::open(generated_in).await?
    } else {
        store
    };
    let leads = generate_leads(store.clone(), events).await;
    if postgres {
        set_synchronous_commit(store.as_ref(), true).await?;
    }
    let leads = leads?;
    let generation_elapsed = started.elapsed();
    let verify_started = Instant::now();
    let report = adapters::store::verify(store.as_ref()).await?;
    if let Some(broken) = &report.first_break {
        bail!(
            "the generated store does not verify: stream {} version {}: {}",
            broken.stream_id,
            broken.version,
            broken.reason
        );
    }
    let verify_elapsed = verify_started.elapsed();
    let (store, copied) = match staging {
        Some(path) => {
            let copied = Instant::now();
            let into = path.display().to_string().replace('\'', "''");
            store
                .sql()
                .execute(&format!("VACUUM INTO '{into}'"), &[])
                .await?;
            drop(store);
            remove_sqlite_files(generated_in);
            (adapters::store::open(url).await?, Some(copied.elapsed()))
        }
        None => (store, None),
    };
    let figures = json!({
        "leads": leads,
        "seconds": rounded(generation_elapsed.as_secs_f64(), 3),
        "events_per_sec": per_second(report.events_checked, generation_elapsed),
        "staged_on_tmpfs": staging.is_some(),
        "copy_seconds": copied.map(|d| rounded(d.as_secs_f64(), 3)),
        "verified_events": report.events_checked,
        "verified_streams": report.streams_checked,
        "verify_seconds": rounded(verify_elapsed.as_secs_f64(), 3),
        "invoices_per_seller": INVOICES_PER_SELLER,
    });
    Ok((
        BenchDb {
            store,
            name: database_name(url),
        },
        figures,
    ))
}

/// Sets (or resets to the server default) the current database's `synchronous_commit` for new
/// connections.
async fn set_synchronous_commit(store: &dyn EventStore, on: bool) -> anyhow::Result<()> {
    let setting = if on {
        "RESET synchronous_commit"
    } else {
        "SET synchronous_commit = off"
    };
    let sql = format!(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I {setting}', current_database()); END $$"
    );
    store.sql().execute(&sql, &[]).await?;
    Ok(())
}

/// Drives lead stories through the command handlers until the log holds `events` events, with
/// the process managers running alongside; returns the number of leads.
async fn generate_leads(store: Arc<dyn EventStore>, events: i64) -> anyhow::Result<u64> {
    let handlers = Handlers::new(store.clone());
    let (stop, stopped) = watch::channel(false);
    let runner = tokio::spawn(
        ProcessRunner::group(handlers.clone(), process_managers()).run(stopped.clone()),
    );
    let result = drive_generation(&handlers, events).await;
    // The background runner stops first: two runners of one process manager would race for
    // its checkpoint.
    let _ = stop.send(true);
    let _ = runner.await;
    let leads = result?;
    settle_process_managers(&handlers).await?;
    Ok(leads)
}

async fn drive_generation(handlers: &Arc<Handlers>, events: i64) -> anyhow::Result<u64> {
    let at = adapters::clock::now_micros();
    for index in 0..PARTNERS {
        let id = partner_id(index);
        let enroll = PartnerCommand::Enroll {
            partner_id: id.clone(),
            name: format!("Partner {index}"),
            email: format!("{id}@partners.example.sa"),
            tier: PartnerTier::Referral,
            at,
        };
        execute!(&handlers.partners, &id, enroll)?;
    }
    let next_lead = Arc::new(AtomicU64::new(1));
    let head = Arc::new(AtomicI64::new(handlers.store.head_position().await?));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..GENERATION_CONCURRENCY {
        let handlers = handlers.clone();
        let next_lead = next_lead.clone();
        let head = head.clone();
        workers.spawn(async move {
            loop {
                let index = next_lead.fetch_add(1, Ordering::SeqCst);
                if index % HEAD_REFRESH_EVERY == 0 {
                    head.store(handlers.store.head_position().await?, Ordering::SeqCst);
                }
                if head.load(Ordering::SeqCst) >= events {
                    return anyhow::Ok(());
                }
                lead_in_process(&handlers, &LeadPlan::new(index))
                    .await
                    .with_context(|| format!("generating lead {index}"))?;
            }
        });
    }
    while let Some(result) = workers.join_next().await {
        result??;
    }
    Ok(next_lead
        .load(Ordering::SeqCst)
        .saturating_sub(1 + GENERATION_CONCURRENCY as u64))
}

/// Runs the process managers in this task until each has reacted to everything committed.
async fn settle_process_managers(handlers: &Arc<Handlers>) -> anyhow::Result<()> {
    let deadline = Instant::now() + CATCH_UP_DEADLINE;
    loop {
        let runner = ProcessRunner::group(handlers.clone(), process_managers());
        runner.catch_up().await?;
        if runner.is_caught_up().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("process managers did not catch up within {CATCH_UP_DEADLINE:?}");
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

/// The seller of a generated invoice: sellers rotate every [`INVOICES_PER_SELLER`] leads (valid
/// VAT numbers: 15 digits beginning and ending with 3).
fn generated_seller(index: u64) -> Seller {
    let shard = index / INVOICES_PER_SELLER;
    Seller {
        name: format!("Dealix {shard}"),
        vat_number: format!("3{:013}3", shard + 1),
    }
}

/// One lead's eight commands through the handlers, as the API would run them (the payment as
/// the Moyasar webhook records it; onboarding once the process managers marked the lead paid).
async fn lead_in_process(handlers: &Handlers, lead: &LeadPlan) -> anyhow::Result<()> {
    let id = &lead.lead_id;
    let at = adapters::clock::now_micros();
    let capture = LeadCommand::Capture {
        lead_id: id.clone(),
        name: format!("Lead {}", lead.index),
        company: Some(format!("Company {}", lead.index)),
        email: Some(lead.email.clone()),
        phone: None,
        source: if lead.partner_id.is_some() {
            "partner".into()
        } else {
            "landing_page".into()
        },
        partner_id: lead.partner_id.clone(),
        utm: None,
        owner: Some("sales-1".into()),
        at,
    };
    execute!(&handlers.leads, id, capture)?;
    execute!(&handlers.leads, id, LeadCommand::Qualify { at })?;
    let demo = LeadCommand::BookDemo {
        booking_id: format!("bench-booking-{}", lead.index),
        scheduled_for: at + time::Duration::days(2),
        at,
    };
    execute!(&handlers.leads, id, demo)?;
    let proposal = LeadCommand::SendProposal {
        plan: lead.plan,
        at,
    };
    execute!(&handlers.leads, id, proposal)?;

    let invoice_id = format!("bench-invoice-{}", lead.index);
    let seller = generated_seller(lead.index);
    let issue = IssueInvoice {
        invoice_id: invoice_id.clone(),
        customer: Customer {
            lead_id: id.clone(),
            name: format!("Company {}", lead.index),
        },
        lines: vec![InvoiceLine {
            description: format!("{} plan, one month", lead.plan.as_str()),
            quantity: 1,
            unit_price_halalas: lead.plan.price_halalas(),
            plan: Some(lead.plan),
        }],
        issued_at: at,
        due_at: at + time::Duration::days(14),
        seller: seller.clone(),
        moyasar_invoice_id: None,
    };
    let request = app::invoices::IssueRequest {
        command_id: Uuid::now_v7(),
        fresh: true,
    };
    let metadata = bench_envelope(&invoice_id, request.command_id, ()).metadata;
    let (_, invoice) = app::invoices::issue(handlers, request, issue, metadata).await?;
    let total = invoice.total_halalas();

    let payment_id = format!("bench-payment-{}", lead.index);
    let paid = PaymentCommand::RecordGatewayStatus {
        payment_id: payment_id.clone(),
        invoice_id: Some(invoice_id),
        moyasar_invoice_id: None,
        status: PaymentStatus::Paid,
        amount_halalas: total,
        fee_halalas: total / 50,
        captured_halalas: 0,
        refunded_halalas: 0,
        currency: "SAR".into(),
        at,
    };
    execute!(&handlers.payments, &payment_id, paid)?;

    let deadline = Instant::now() + ONBOARD_DEADLINE;
    let mut backoff = ONBOARD_BACKOFF_START;
    loop {
        let onboard = LeadCommand::StartOnboarding { at };
        match execute!(&handlers.leads, id, onboard) {
            Ok(_) => break,
            Err(CommandError::Rejected(_)) if Instant::now() < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ONBOARD_BACKOFF_MAX);
            }
            Err(error) => return Err(error.into()),
        }
    }
    execute!(&handlers.leads, id, LeadCommand::Activate { at })?;
    Ok(())
}
