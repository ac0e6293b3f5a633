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
    /// Recompute every per-stream hash chain; exit 0 when intact, 1 naming the first mismatch.
    Verify,
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
            let app = api::Application::build(listen, api::AppState { store })
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(address = %app.local_addr()?, "revledger listening");
            app.run(shutdown_signal()).await?;
            tracing::info!("revledger stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            store.migrate().await.context("migrating the database")?;
            println!("migrations applied ({})", store.engine());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => {
            let report = store::verify(store.as_ref()).await?;
            match &report.first_break {
                None => {
                    println!(
                        "intact: {} events in {} streams verified",
                        report.events_checked, report.streams_checked
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!(
                        "BROKEN: stream {} version {} position {}: {}",
                        broken.stream_id, broken.version, broken.position, broken.reason
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Events { after, limit } => {
            print_events(store.as_ref(), after, limit.unwrap_or(u64::MAX)).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
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
