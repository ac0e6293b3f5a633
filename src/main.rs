//! `revledger`: the command line that wires the crates together.
//!
//! `serve` runs the HTTP service, `migrate` applies the schema, `verify` recomputes every hash
//! chain, `events` prints the global log as NDJSON. The database is `sqlite://revledger.db` by
//! default (created on first use) or any `postgres://` URL.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use adapters::store::{self, Checkpoint, MAX_READ_BATCH};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "revledger", version, about = "Event-sourced revenue ledger")]
struct Cli {
    /// Where the events live: sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "REVLEDGER_DATABASE_URL",
        default_value = "sqlite://revledger.db",
        global = true
    )]
    database_url: String,

    /// Log line format on stderr.
    #[arg(long, env = "REVLEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (migrates the database first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "REVLEDGER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Apply the embedded migrations and exit.
    Migrate,
    /// Recompute every per-stream hash chain and the audit seals; exit 0 when intact, 1 naming
    /// the first event that does not match.
    Verify,
    /// Rebuild read models from position zero (all of them when no name is given).
    Rebuild {
        /// Read models to rebuild: audit_log, funnel, crm_board, revenue, …
        names: Vec<String>,
    },
    /// Print a read model as it was at a past position or time.
    Replay {
        /// A global position (`1234`) or an RFC 3339 time (`2026-11-01T00:00:00Z`).
        #[arg(long)]
        as_of: String,
        /// The read model to compute.
        #[arg(long)]
        projection: String,
    },
    /// Print the global log as NDJSON, one event per line.
    Events {
        /// Print only events with a position greater than this.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("revledger: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("revledger: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = store::open(&cli.database_url)
        .await
        .with_context(|| format!("opening the {} store", engine_name(&cli.database_url)))?;
    match cli.command {
        Command::Serve { listen } => {
            store.migrate().await.context("migrating the database")?;
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let workers: Vec<_> = projections::read_models()
                .into_iter()
                .map(|projection| {
                    let projector = projections::Projector::new(store.clone(), projection);
                    tokio::spawn(projector.run(stopped.clone()))
                })
                .collect();
            let app = api::Application::build(listen, api::AppState { store })
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(address = %app.local_addr()?, "revledger listening");
            app.run(shutdown_signal()).await?;
            // Requests are drained; let each projector finish (and commit) its current batch.
            let _ = stop.send(true);
            for worker in workers {
                let _ = worker.await;
            }
            tracing::info!("revledger stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            store.migrate().await.context("migrating the database")?;
            println!("migrations applied ({})", store.engine());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => verify(store).await,
        Command::Rebuild { names } => {
            store.migrate().await.context("migrating the database")?;
            rebuild(store, &names).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { as_of, projection } => {
            let moment = projections::AsOf::parse(&as_of).map_err(anyhow::Error::msg)?;
            let projection = projections::read_model(&projection)?;
            let scratch = projections::runtime::as_of(store, projection.clone(), moment).await?;
            let state = projection.render(&scratch).await?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Events { after, limit } => {
            print_events(store.as_ref(), after, limit.unwrap_or(u64::MAX)).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Checks the per-stream chains, then the audit trail's running hash and seals.
async fn verify(store: std::sync::Arc<dyn store::EventStore>) -> anyhow::Result<ExitCode> {
    let report = store::verify(store.as_ref()).await?;
    if let Some(broken) = &report.first_break {
        println!(
            "BROKEN: stream {} version {} position {}: {}",
            broken.stream_id, broken.version, broken.position, broken.reason
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "intact: {} events in {} streams verified",
        report.events_checked, report.streams_checked
    );
    if !store.is_migrated().await? {
        println!("audit trail not checked: the database has not been migrated by this version");
        return Ok(ExitCode::SUCCESS);
    }
    let seals = projections::audit_log::verify_seals(store.as_ref(), &store.sql()).await;
    match seals {
        Ok(seals) => match seals.first_break {
            None => {
                println!(
                    "audit trail intact: {} events against the running hash, {} seals",
                    seals.events_checked, seals.seals_checked
                );
                Ok(ExitCode::SUCCESS)
            }
            Some(broken) => {
                let position = broken
                    .position
                    .map_or("the end of the log".to_owned(), |p| format!("position {p}"));
                println!(
                    "BROKEN: audit sequence {} at {position}: {}",
                    broken.seq, broken.reason
                );
                Ok(ExitCode::FAILURE)
            }
        },
        Err(error) => Err(error.into()),
    }
}

/// Empties and refolds the named read models (all when none is named), with a progress bar.
async fn rebuild(
    store: std::sync::Arc<dyn store::EventStore>,
    names: &[String],
) -> anyhow::Result<()> {
    let selected = if names.is_empty() {
        projections::read_models()
    } else {
        names
            .iter()
            .map(|name| projections::read_model(name))
            .collect::<Result<_, _>>()?
    };
    let head = store.head_position().await?;
    for projection in selected {
        let projector = projections::Projector::new(store.clone(), projection.clone());
        projector.reset().await?;
        let bar = indicatif::ProgressBar::new(u64::try_from(head).unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>12} [{bar:40}] {pos}/{len} positions {per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(projection.name());
        let started = std::time::Instant::now();
        let mut events = 0u64;
        loop {
            let applied = projector.step().await?;
            if applied == 0 {
                break;
            }
            events += applied as u64;
            let (checkpoint, _) = projector.checkpoint().await?;
            bar.set_position(u64::try_from(checkpoint.position).unwrap_or(0));
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            events as f64 / seconds
        } else {
            0.0
        };
        println!(
            "rebuilt {}: {events} events in {seconds:.2} s ({rate:.0} events/s)",
            projection.name()
        );
    }
    Ok(())
}

/// Prints committed events in checkpoint order (position order on SQLite) to stdout, batch by
/// batch, skipping those at or below `after`.
async fn print_events(store: &dyn store::EventStore, after: i64, limit: u64) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    // Position order is commit order only on SQLite; elsewhere start from the beginning.
    let mut checkpoint = match store.engine() {
        "sqlite" => Checkpoint {
            transaction_id: 0,
            position: after,
        },
        _ => Checkpoint::START,
    };
    while printed < limit {
        let batch = store.read_committed(checkpoint, MAX_READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        checkpoint = Checkpoint::after(last);
        for event in batch.iter().filter(|event| event.position > after) {
            if printed == limit {
                break;
            }
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
            printed += 1;
        }
    }
    out.flush()?;
    Ok(())
}

fn engine_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REVLEDGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining");
}
