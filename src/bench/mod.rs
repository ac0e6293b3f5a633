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
//! - **reads** (`reads.rs`) times every GET route of `/openapi.json` and every dashboard page
//!   on a generated (or reused) store whose read models were just rebuilt from zero (issue 27).
//! - **as-of** (`as_of.rs`) takes every read model's snapshots over a generated (or reused)
//!   store, then times as-of reads at random positions and times (issue 24).
//!
//! Figures are wall-clock on whatever machine runs them; compare ratios taken in one run
//! (`bench/run.sh` puts pgbench beside the lifecycle figure), never absolute numbers across
//! machines.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use adapters::store::EventStore;
use anyhow::{bail, Context};
use domain::plan::Plan;
use serde_json::{json, Value};
use uuid::Uuid;

mod as_of;
mod http;
mod lifecycle;
mod reads;
mod replay;

use as_of::*;
use http::*;
use lifecycle::*;
use reads::*;
use replay::*;

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
    /// Every GET route of `/openapi.json` and every dashboard page, timed on a caught-up store.
    Reads(ReadsArgs),
    /// As-of reads from snapshots at random positions and times, every read model.
    AsOf(AsOfArgs),
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

#[derive(clap::Args)]
pub struct ReadsArgs {
    #[command(flatten)]
    target: Target,
    /// Events to generate (the store ends with at least this many).
    #[arg(long, default_value_t = 1_000_000)]
    events: i64,
    /// Measure on the events already in the store instead of generating.
    #[arg(long)]
    reuse: bool,
    /// Timed calls per route, one after another, after one warm-up call.
    #[arg(long, default_value_t = 50)]
    queries: u32,
    /// A route's calls stop early once they have taken this long together (its figures then
    /// rest on fewer calls, and say so), so one slow route cannot hold the run for hours.
    #[arg(long, default_value_t = 60)]
    route_seconds: u64,
}

#[derive(clap::Args)]
pub struct AsOfArgs {
    #[command(flatten)]
    target: Target,
    /// Events to generate (the store ends with at least this many).
    #[arg(long, default_value_t = 1_000_000)]
    events: i64,
    /// Measure on the events already in the store instead of generating.
    #[arg(long)]
    reuse: bool,
    /// Timed as-of reads, one after another.
    #[arg(long, default_value_t = 200)]
    queries: u32,
    /// Snapshots every this many events (the service's `--snapshot-every-events`).
    #[arg(long, default_value_t = projections::snapshots::DEFAULT_EVERY_EVENTS, value_parser = clap::value_parser!(u64).range(1..=projections::snapshots::MAX_EVERY_EVENTS))]
    every_events: u64,
    /// Also at each UTC day's end (a generated store is recorded within one or two days).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    at_day_end: bool,
    /// Also time one full replay per read model at the head, for comparison.
    #[arg(long)]
    compare_full: bool,
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
        BenchCommand::Reads(args) => reads(args).await?,
        BenchCommand::AsOf(args) => as_of(args).await?,
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
